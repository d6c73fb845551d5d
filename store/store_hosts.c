/*
 * store_hosts — host liveness in Redis, for the management side: the
 * heartbeat, the list `show hosts` prints, and the claim and closing of a
 * lost host's answered calls.  See store.h; the keys are documented in
 * docs/redis-schema.md ("Hosts"); the policy (when to beat, whom to close,
 * what CDR to write) is b2bua/hosts.c.
 *
 * Design note.  Every time that decides whether a host is alive is Redis's
 * own (TIME inside the scripts of store_lua.c), so the hosts' clocks do not
 * matter.  Like store_sync.c, each function opens one bounded connection,
 * runs its commands (pipelined where there are several) and closes it.
 * Closing a call is ZREM of its active entries first, then the CDR script:
 * if the closer dies between the two, the record is still there and the
 * next closer does both again (ZREM and the CDR script are idempotent).
 */
#include "store/store_sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_lua.h"

/* A CDR id is remembered this long (s): the same as the workers' (store_async.c). */
/* ZREMs per call: one per name of a record (cdr.h: CDR_RECORD_NAMES). */
#define STORE_HOSTS_NAMES_MAX 8

static uint64_t store_hosts_u64(const char *s)
{
	return s != NULL ? strtoull(s, NULL, 10) : 0;
}

/* A reply element as a number, whether Redis sent an integer or a string. */
static uint64_t store_hosts_num(const redisReply *r)
{
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer > 0 ? (uint64_t)r->integer : 0;
	if (r->type == REDIS_REPLY_STRING)
		return store_hosts_u64(r->str);
	return 0;
}

/* The host hash, claim and records keys of `node`. */
static int store_hosts_keys(const store_sync_t *s, const char *node, char host[STORE_KEY_MAX],
			    char claim[STORE_KEY_MAX], char calls[STORE_KEY_MAX])
{
	if (store_key(s->prefix, STORE_KEY_HOST, node, host, STORE_KEY_MAX) < 0
	    || store_key(s->prefix, STORE_KEY_HOST_CLAIM, node, claim, STORE_KEY_MAX) < 0
	    || store_key(s->prefix, STORE_KEY_CALLS, node, calls, STORE_KEY_MAX) < 0)
		return -ENAMETOOLONG;
	return 0;
}

/* Connect, run one command, close: its reply in *out (the caller frees it). */
static int store_hosts_once(store_sync_t *s, int argc, const char **argv, redisReply **out,
			    struct store_error *err)
{
	struct store_conn conn;
	int ret = store_conn_open(s, err, &conn);

	if (ret == 0)
		ret = store_conn_cmd(&conn, argc, argv, out);
	store_conn_close(&conn);
	return ret;
}

int store_host_beat(store_sync_t *s, const char *node, uint64_t epoch, const char *sip,
		    unsigned lease_ms, struct store_error *err)
{
	char set[STORE_KEY_MAX], host[STORE_KEY_MAX], claim[STORE_KEY_MAX], calls[STORE_KEY_MAX];
	char ep[24], lease[16];
	redisReply *rr;
	int ret;

	if (store_hosts_key(s->prefix, set, sizeof set) < 0
	    || store_hosts_keys(s, node, host, claim, calls) < 0)
		return store_fail(err, -ENAMETOOLONG, "node_id too long for a key");
	snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
	snprintf(lease, sizeof lease, "%u", lease_ms);
	const char *argv[] = { "EVAL", store_lua_host_beat, "3", set, host, calls, node, ep, sip,
			       lease };
	ret = store_hosts_once(s, 10, argv, &rr, err);
	if (ret == 0)
		freeReplyObject(rr);
	return ret;
}

int store_host_stop(store_sync_t *s, const char *node, uint64_t epoch, struct store_error *err)
{
	char host[STORE_KEY_MAX], claim[STORE_KEY_MAX], calls[STORE_KEY_MAX], ep[24];
	redisReply *rr;
	int ret;

	if (store_hosts_keys(s, node, host, claim, calls) < 0)
		return store_fail(err, -ENAMETOOLONG, "node_id too long for a key");
	snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
	const char *argv[] = { "EVAL", store_lua_host_stop, "2", host, calls, ep };
	ret = store_hosts_once(s, 6, argv, &rr, err);
	if (ret < 0)
		return ret;
	ret = rr->type == REDIS_REPLY_INTEGER && rr->integer == 1;
	freeReplyObject(rr);
	return ret;
}

/* ------------------------------------------------------------ the list */

/* One host from its HGETALL (pairs) and its two HLENs. */
static void store_hosts_fill(struct store_host *h, const redisReply *all, const redisReply *calls,
			     const redisReply *bad)
{
	for (size_t i = 0; i + 1 < all->elements; i += 2) {
		const char *f = all->element[i]->str, *v = all->element[i + 1]->str;

		if (f == NULL || v == NULL)
			continue;
		if (strcmp(f, "sip") == 0)
			snprintf(h->sip, sizeof h->sip, "%s", v);
		else if (strcmp(f, "closed_by") == 0)
			snprintf(h->closed_by, sizeof h->closed_by, "%s", v);
		else if (strcmp(f, "prev_closed_by") == 0)
			snprintf(h->prev_closed_by, sizeof h->prev_closed_by, "%s", v);
		else if (strcmp(f, "epoch") == 0)
			h->epoch = store_hosts_u64(v);
		else if (strcmp(f, "started_ms") == 0)
			h->started_ms = store_hosts_u64(v);
		else if (strcmp(f, "beat_ms") == 0)
			h->beat_ms = store_hosts_u64(v);
		else if (strcmp(f, "lease_ms") == 0)
			h->lease_ms = store_hosts_u64(v);
		else if (strcmp(f, "closed_ms") == 0)
			h->closed_ms = store_hosts_u64(v);
		else if (strcmp(f, "closed_calls") == 0)
			h->closed_calls = store_hosts_u64(v);
		else if (strcmp(f, "closed_epoch") == 0)
			h->closed_epoch = store_hosts_u64(v);
		else if (strcmp(f, "prev_closed_ms") == 0)
			h->prev_closed_ms = store_hosts_u64(v);
		else if (strcmp(f, "prev_closed_calls") == 0)
			h->prev_closed_calls = store_hosts_u64(v);
		else if (strcmp(f, "stopped_epoch") == 0)
			h->stopped_epoch = store_hosts_u64(v);
		else if (strcmp(f, "stopped_ms") == 0)
			h->stopped_ms = store_hosts_u64(v);
		else if (strcmp(f, "prev_open") == 0)
			h->prev_open = strcmp(v, "1") == 0;
	}
	h->calls = store_hosts_num(calls);
	h->bad = store_hosts_num(bad);
}

static int store_hosts_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_host *)a)->node, ((const struct store_host *)b)->node);
}

/* TIME's answer in ms. */
static int store_hosts_time(struct store_conn *conn, uint64_t *now_ms)
{
	redisReply *rr;
	int ret = store_conn_next(conn, "TIME", &rr);

	if (ret < 0)
		return ret;
	if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2)
		return store_conn_unexpected(conn, "TIME", rr);
	*now_ms = store_hosts_num(rr->element[0]) * 1000 + store_hosts_num(rr->element[1]) / 1000;
	freeReplyObject(rr);
	return 0;
}

/* For each member: HGETALL host, HLEN calls, HLEN callsbad (pipelined). */
static int store_hosts_read(struct store_conn *conn, const redisReply *members,
			    struct store_host *hosts, size_t *n)
{
	const store_sync_t *s = conn->s;
	size_t sent = 0;
	int ret = 0;

	for (size_t i = 0; i < members->elements; i++) {
		const char *node = members->element[i]->str;
		char host[STORE_KEY_MAX], calls[STORE_KEY_MAX], bad[STORE_KEY_MAX];

		if (node == NULL || strlen(node) >= sizeof hosts[0].node
		    || store_key(s->prefix, STORE_KEY_HOST, node, host, sizeof host) < 0
		    || store_key(s->prefix, STORE_KEY_CALLS, node, calls, sizeof calls) < 0
		    || store_key(s->prefix, STORE_KEY_CALLS_BAD, node, bad, sizeof bad) < 0)
			continue;
		redisAppendCommand(conn->c, "HGETALL %s", host);
		redisAppendCommand(conn->c, "HLEN %s", calls);
		redisAppendCommand(conn->c, "HLEN %s", bad);
		memset(&hosts[sent], 0, sizeof hosts[sent]);
		snprintf(hosts[sent].node, sizeof hosts[sent].node, "%s", node);
		sent++;
	}
	*n = 0;
	for (size_t i = 0; i < sent; i++) {
		redisReply *rr[3] = { NULL, NULL, NULL };

		for (int k = 0; k < 3 && ret == 0; k++)
			ret = store_conn_next(conn, k == 0 ? "HGETALL" : "HLEN", &rr[k]);
		if (ret == 0 && rr[0]->type == REDIS_REPLY_ARRAY && rr[0]->elements > 0) {
			hosts[*n] = hosts[i];   /* a host gone meanwhile leaves no gap */
			store_hosts_fill(&hosts[(*n)++], rr[0], rr[1], rr[2]);
		}
		for (int k = 0; k < 3; k++)
			if (rr[k] != NULL)
				freeReplyObject(rr[k]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int store_hosts_list(store_sync_t *s, struct store_host **hosts, size_t *n, uint64_t *now_ms,
		     struct store_error *err)
{
	char set[STORE_KEY_MAX];
	struct store_conn conn;
	redisReply *members = NULL;
	int ret;

	*hosts = NULL;
	*n = 0;
	if (store_hosts_key(s->prefix, set, sizeof set) < 0)
		return store_fail(err, -ENAMETOOLONG, "redis_prefix too long for a key");
	ret = store_conn_open(s, err, &conn);
	if (ret < 0)
		return ret;
	redisAppendCommand(conn.c, "TIME");
	redisAppendCommand(conn.c, "SMEMBERS %s", set);
	ret = store_hosts_time(&conn, now_ms);
	if (ret == 0)
		ret = store_conn_next(&conn, "SMEMBERS", &members);
	if (ret == 0 && members->type != REDIS_REPLY_ARRAY) {
		ret = store_conn_unexpected(&conn, "SMEMBERS", members);
		members = NULL;
	}
	if (ret == 0) {
		*hosts = calloc(members->elements + 1, sizeof **hosts);
		ret = *hosts == NULL ? store_fail(err, -ENOMEM, "out of memory")
			: store_hosts_read(&conn, members, *hosts, n);
	}
	if (members != NULL)
		freeReplyObject(members);
	store_conn_close(&conn);
	if (ret == 0)
		qsort(*hosts, *n, sizeof **hosts, store_hosts_cmp);
	return ret;
}

/* ------------------------------------------------------------ closing a lost host's calls */

int store_host_claim(store_sync_t *s, const char *node, const char *me, unsigned ttl_ms,
		     struct store_host_claim *c, struct store_error *err)
{
	char host[STORE_KEY_MAX], claim[STORE_KEY_MAX], calls[STORE_KEY_MAX], ttl[16];
	redisReply *rr;
	int ret;

	if (store_hosts_keys(s, node, host, claim, calls) < 0)
		return store_fail(err, -ENAMETOOLONG, "node_id too long for a key");
	snprintf(ttl, sizeof ttl, "%u", ttl_ms);
	const char *argv[] = { "EVAL", store_lua_host_claim, "3", host, claim, calls, me, ttl };
	ret = store_hosts_once(s, 8, argv, &rr, err);
	if (ret < 0)
		return ret;
	if (rr->type != REDIS_REPLY_ARRAY || rr->elements < 1
	    || (store_hosts_num(rr->element[0]) == 1 && rr->elements != 7)) {
		freeReplyObject(rr);
		return store_fail(err, -EBADMSG, "redis %s: unexpected answer to the host claim",
				  s->address);
	}
	ret = 0;
	if (store_hosts_num(rr->element[0]) == 1) {
		*c = (struct store_host_claim){
			.dead = store_hosts_num(rr->element[1]) == 1,
			.epoch = store_hosts_num(rr->element[2]),
			.beat_ms = store_hosts_num(rr->element[3]),
			.prev_epoch = store_hosts_num(rr->element[4]),
			.prev_beat_ms = store_hosts_num(rr->element[5]),
			.now_ms = store_hosts_num(rr->element[6]),
		};
		ret = 1;
	}
	freeReplyObject(rr);
	return ret;
}

void store_call_recs_free(struct store_call_rec *recs, size_t n)
{
	for (size_t i = 0; recs != NULL && i < n; i++) {
		free(recs[i].id);
		free(recs[i].text);
	}
	free(recs);
}

int store_call_recs(store_sync_t *s, const char *node, struct store_call_rec **recs, size_t *n,
		    struct store_error *err)
{
	char calls[STORE_KEY_MAX];
	redisReply *rr;
	int ret;

	*recs = NULL;
	*n = 0;
	if (store_key(s->prefix, STORE_KEY_CALLS, node, calls, sizeof calls) < 0)
		return store_fail(err, -ENAMETOOLONG, "node_id too long for a key");
	const char *argv[] = { "HGETALL", calls };
	ret = store_hosts_once(s, 2, argv, &rr, err);
	if (ret < 0)
		return ret;
	if (rr->type != REDIS_REPLY_ARRAY || rr->elements % 2 != 0) {
		freeReplyObject(rr);
		return store_fail(err, -EBADMSG, "redis %s: unexpected answer to HGETALL",
				  s->address);
	}
	*recs = calloc(rr->elements / 2 + 1, sizeof **recs);
	for (size_t i = 0; *recs != NULL && i < rr->elements; i += 2) {
		const redisReply *f = rr->element[i], *v = rr->element[i + 1];
		struct store_call_rec *r = &(*recs)[*n];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		r->id = strndup(f->str, f->len);
		r->text = malloc(v->len + 1);
		if (r->id == NULL || r->text == NULL) {
			ret = -ENOMEM;
			break;
		}
		memcpy(r->text, v->str, v->len);
		r->text[v->len] = '\0';
		r->len = v->len;
		(*n)++;
	}
	freeReplyObject(rr);
	if (*recs == NULL || ret < 0) {
		store_call_recs_free(*recs, *n + 1);
		*recs = NULL;
		*n = 0;
		return store_fail(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int store_call_rec_aside(store_sync_t *s, const char *node, const char *id,
			 struct store_error *err)
{
	char calls[STORE_KEY_MAX], bad[STORE_KEY_MAX];
	redisReply *rr;
	int ret;

	if (store_key(s->prefix, STORE_KEY_CALLS, node, calls, sizeof calls) < 0
	    || store_key(s->prefix, STORE_KEY_CALLS_BAD, node, bad, sizeof bad) < 0)
		return store_fail(err, -ENAMETOOLONG, "node_id too long for a key");
	const char *argv[] = { "EVAL", store_lua_host_aside, "2", calls, bad, id };
	ret = store_hosts_once(s, 6, argv, &rr, err);
	if (ret == 0)
		freeReplyObject(rr);
	return ret;
}

/* Queue one call's ZREMs and CDR script; the number of replies to read. */
static int store_host_close_send(struct store_conn *conn, const char *stream,
				 const char *calls, const struct store_close_item *it)
{
	const store_sync_t *s = conn->s;
	char seen[STORE_KEY_MAX], akey[STORE_KEY_MAX];
	const char **argv;
	unsigned zrem = 0;
	int argc;

	if (it->n < 1 || store_cdr_seen_key(stream, it->id, seen, sizeof seen) < 0)
		return 0;   /* nothing queued: its outcome stays LOST */
	argv = store_lua_cdr_argv(stream, seen, calls, it->id, it->n, it->fields, it->values,
				  &argc);
	if (argv == NULL)
		return 0;
	for (unsigned k = 0; k < it->n_names && k < STORE_HOSTS_NAMES_MAX; k++) {
		if (store_key(s->prefix, STORE_KEY_ACTIVE, it->names[k], akey, sizeof akey) < 0)
			continue;
		const char *z[] = { "ZREM", akey, it->id };
		redisAppendCommandArgv(conn->c, 3, z, NULL);
		zrem++;
	}
	redisAppendCommandArgv(conn->c, argc, argv, NULL);
	free(argv);
	return (int)zrem + 1;
}

/* The CDR script's answer (the last reply of an item). */
static void store_host_close_outcome(struct store_close_item *it, const redisReply *rr)
{
	if (rr->type == REDIS_REPLY_ERROR) {
		it->outcome = STORE_CDR_REJECT;
		snprintf(it->error, sizeof it->error, "%s", rr->str);
	} else if (rr->type == REDIS_REPLY_STRING || rr->type == REDIS_REPLY_STATUS) {
		it->outcome = strcmp(rr->str, "dup") == 0 ? STORE_CDR_DUP : STORE_CDR_STORED;
	} else {
		it->outcome = STORE_CDR_REJECT;
		snprintf(it->error, sizeof it->error, "unexpected reply");
	}
}

int store_host_close(store_sync_t *s, const char *node, struct store_close_item *items,
		     size_t n, struct store_error *err)
{
	char stream[STORE_KEY_MAX], calls[STORE_KEY_MAX];
	struct store_conn conn;
	int ret, *replies;

	if (store_cdr_stream_key(s->prefix, s->cdr_stream, stream, sizeof stream) < 0
	    || store_key(s->prefix, STORE_KEY_CALLS, node, calls, sizeof calls) < 0)
		return store_fail(err, -ENAMETOOLONG, "cdr_stream or node_id too long for a key");
	replies = calloc(n + 1, sizeof *replies);
	if (replies == NULL)
		return store_fail(err, -ENOMEM, "out of memory");
	ret = store_conn_open(s, err, &conn);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		items[i].outcome = STORE_CDR_LOST;
		replies[i] = store_host_close_send(&conn, stream, calls, &items[i]);
	}
	for (size_t i = 0; ret == 0 && i < n; i++) {
		for (int k = 0; ret == 0 && k < replies[i]; k++) {
			redisReply *rr;

			ret = store_conn_next(&conn, "EVAL", &rr);
			if (ret == 0 && k == replies[i] - 1)
				store_host_close_outcome(&items[i], rr);
			if (ret == 0)
				freeReplyObject(rr);
		}
	}
	if (conn.c != NULL)
		store_conn_close(&conn);
	free(replies);
	return ret;
}

int store_host_closed(store_sync_t *s, const char *node, const char *me, uint64_t epoch,
		      int dead, uint64_t n_closed, struct store_error *err)
{
	char host[STORE_KEY_MAX], claim[STORE_KEY_MAX], calls[STORE_KEY_MAX], ep[24], nc[24];
	redisReply *rr;
	int ret;

	if (store_hosts_keys(s, node, host, claim, calls) < 0)
		return store_fail(err, -ENAMETOOLONG, "node_id too long for a key");
	snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
	snprintf(nc, sizeof nc, "%llu", (unsigned long long)n_closed);
	const char *argv[] = { "EVAL", store_lua_host_closed, "2", host, claim, me, ep,
			       dead ? "1" : "0", nc };
	ret = store_hosts_once(s, 9, argv, &rr, err);
	if (ret == 0)
		freeReplyObject(rr);
	return ret;
}
