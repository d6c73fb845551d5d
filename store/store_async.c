/*
 * store_async — the workers' side of the store: the subscriber data, the
 * location service, the call limits and the CDR stream, over the worker's
 * asynchronous Redis connection.  See store.h.
 *
 * Design note.  Each function builds its keys, queues one command on rds
 * (worker/rds.c: hiredis's async API on the worker's io_uring loop) and
 * returns; the reply comes back through a small context that carries the
 * caller's callback, is checked for its expected shape here, and is handed
 * on as plain values.  So the callers (registrar.c, cdr_writer.c) see no
 * Redis reply, no key and no script.  A reply of the wrong shape is
 * reported like a lost connection (-EIO): the caller cannot tell them
 * apart anyway, and in both cases Redis is the one to look at.
 */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "shm/shm.h"
#include "store/store_lua.h"
#include "worker/rds.h"

/* A call counted for max_calls longer than this is a crashed worker's left-over. */
#define STORE_STALE_CALL_MS (24ull * 3600 * 1000)
/* A CDR id is remembered this long (seconds): a record sent again within it is stored once. */
/* The most Contacts one REGISTER hands to the script. */
#define STORE_REGISTER_CONTACTS_MAX 64

/* The caller's callback and argument, while a reply is awaited. */
struct store_async_ctx {
	union {
		store_auth_f *auth;
		store_claim_f *claim;
		store_register_f *reg;
		store_lookup_f *lookup;
		store_call_begin_f *begin;
		store_binding_drop_f *drop;
		store_cdr_f *cdr;
		store_wait_f *wait;
	} done;
	void *arg;
	enum digest_alg alg;      /* store_auth_get only */
};

static struct store_async_ctx *store_ctx_new(void *arg)
{
	struct store_async_ctx *ctx = calloc(1, sizeof *ctx);

	if (ctx != NULL)
		ctx->arg = arg;
	return ctx;
}

/* Queue a command whose reply goes to cb(ctx); ctx is freed when it cannot be queued. */
static int store_send(rds_t *rds, rds_reply_f *cb, struct store_async_ctx *ctx, int argc,
		      const char **argv)
{
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ret = rds_commandargv(rds, cb, ctx, argc, argv, NULL);
	if (ret < 0)
		free(ctx);
	return ret;
}

/* "now" and "calls older than this are left-overs", in ms. */
static void store_call_times(char now[24], char stale[24])
{
	uint64_t t = shm_now_ms();

	snprintf(now, 24, "%llu", (unsigned long long)t);
	snprintf(stale, 24, "%llu", (unsigned long long)(t - STORE_STALE_CALL_MS));
}

/* ------------------------------------------------------------ authentication */

static void store_on_auth(rds_t *rds, redisReply *r, void *arg)
{
	struct store_async_ctx *ctx = arg;
	struct store_auth auth = { 0 };

	(void)rds;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		ctx->done.auth(ctx->arg, -EIO, NULL);
		free(ctx);
		return;
	}
	auth.failures = r->element[0]->integer;
	auth.enabled = r->element[1]->type == REDIS_REPLY_STRING &&
		       strcmp(r->element[1]->str, "1") == 0;
	auth.known = r->element[2]->type == REDIS_REPLY_STRING;
	auth.ha1 = auth.known ? r->element[2]->str : NULL;
	ctx->done.auth(ctx->arg, 0, &auth);
	free(ctx);
}

int store_auth_get(rds_t *rds, const char *user, const char *source_ip, enum digest_alg alg,
		   store_auth_f *done, void *arg)
{
	char ukey[STORE_KEY_MAX], fkey[STORE_KEY_MAX];
	const char *prefix = rds_prefix(rds);
	struct store_async_ctx *ctx;

	if (store_key(prefix, STORE_KEY_USER, user, ukey, sizeof ukey) < 0 ||
	    store_key(prefix, STORE_KEY_AUTH_FAIL, source_ip, fkey, sizeof fkey) < 0)
		return -ENAMETOOLONG;
	const char *argv[] = { "EVAL", store_lua_auth, "2", ukey, fkey,
			       alg == DIGEST_SHA256 ? "ha1_sha256" : "ha1_md5" };
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.auth = done;
	return store_send(rds, store_on_auth, ctx, 6, argv);
}

int store_auth_fail(rds_t *rds, const char *source_ip, int window_s)
{
	char key[STORE_KEY_MAX], window[16];

	if (store_key(rds_prefix(rds), STORE_KEY_AUTH_FAIL, source_ip, key, sizeof key) < 0)
		return -ENAMETOOLONG;
	snprintf(window, sizeof window, "%d", window_s);
	const char *argv[] = { "EVAL", store_lua_auth_fail, "1", key, window };
	return rds_commandargv(rds, NULL, NULL, 5, argv, NULL);
}

static void store_on_claim(rds_t *rds, redisReply *r, void *arg)
{
	struct store_async_ctx *ctx = arg;

	(void)rds;
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		ctx->done.claim(ctx->arg, -EIO, 0);
	else
		ctx->done.claim(ctx->arg, 0, r->type != REDIS_REPLY_NIL);
	free(ctx);
}

int store_nonce_claim(rds_t *rds, const char *replay_key, int ttl_s, store_claim_f *done,
		      void *arg)
{
	char key[STORE_KEY_MAX], ttl[16];
	struct store_async_ctx *ctx;

	if (store_key(rds_prefix(rds), STORE_KEY_NONCE_COUNT, replay_key, key, sizeof key) < 0)
		return -ENAMETOOLONG;
	snprintf(ttl, sizeof ttl, "%d", ttl_s);
	const char *argv[] = { "SET", key, "1", "NX", "EX", ttl };
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.claim = done;
	return store_send(rds, store_on_claim, ctx, 6, argv);
}

/* ------------------------------------------------------------ REGISTER */

/* { "ok", contact, remaining_s, ... } into the bindings left. */
static void store_register_ok(struct store_async_ctx *ctx, const redisReply *r)
{
	size_t max = (r->elements - 1) / 2, n = 0;
	struct store_binding_left *left = calloc(max + 1, sizeof *left);

	if (left == NULL) {
		ctx->done.reg(ctx->arg, -ENOMEM, STORE_REGISTERED, NULL, 0);
		return;
	}
	for (size_t i = 1; i + 1 < r->elements; i += 2) {
		if (r->element[i]->type != REDIS_REPLY_STRING ||
		    r->element[i + 1]->type != REDIS_REPLY_INTEGER)
			continue;
		left[n].contact = r->element[i]->str;
		left[n].expires_in_s = r->element[i + 1]->integer;
		n++;
	}
	ctx->done.reg(ctx->arg, 0, STORE_REGISTERED, left, n);
	free(left);
}

static void store_on_register(rds_t *rds, redisReply *r, void *arg)
{
	struct store_async_ctx *ctx = arg;

	(void)rds;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		ctx->done.reg(ctx->arg, -EIO, STORE_REGISTERED, NULL, 0);
	else if (strcmp(r->element[0]->str, "replay") == 0)
		ctx->done.reg(ctx->arg, 0, STORE_REPLAYED, NULL, 0);
	else if (strcmp(r->element[0]->str, "cseq") == 0)
		ctx->done.reg(ctx->arg, 0, STORE_OUT_OF_ORDER, NULL, 0);
	else
		store_register_ok(ctx, r);
	free(ctx);
}

int store_register(rds_t *rds, const struct store_register_req *req, store_register_f *done,
		   void *arg)
{
	const char *argv[18 + 2 * STORE_REGISTER_CONTACTS_MAX];
	char lkey[STORE_KEY_MAX], nkey[STORE_KEY_MAX], now[24], ttl[16], cseq[16], worker[16];
	char flow_worker[16];
	char exp[STORE_REGISTER_CONTACTS_MAX][16];
	const char *prefix = rds_prefix(rds);
	struct store_async_ctx *ctx;
	int argc = 0;

	if (req->n_contacts > STORE_REGISTER_CONTACTS_MAX)
		return -E2BIG;
	if (store_key(prefix, STORE_KEY_LOCATION, req->user, lkey, sizeof lkey) < 0)
		return -ENAMETOOLONG;
	nkey[0] = '\0';
	if (req->replay_key != NULL && req->replay_key[0] != '\0' &&
	    store_key(prefix, STORE_KEY_NONCE_COUNT, req->replay_key, nkey, sizeof nkey) < 0)
		return -ENAMETOOLONG;
	snprintf(now, sizeof now, "%llu", (unsigned long long)shm_now_ms());
	snprintf(ttl, sizeof ttl, "%d", req->nonce_ttl);
	snprintf(cseq, sizeof cseq, "%u", req->cseq);
	snprintf(worker, sizeof worker, "%u", req->worker);
	snprintf(flow_worker, sizeof flow_worker, "%u", req->flow_worker);

	argv[argc++] = "EVAL";
	argv[argc++] = store_lua_register;
	argv[argc++] = "2";
	argv[argc++] = lkey;
	argv[argc++] = nkey;
	argv[argc++] = now;
	argv[argc++] = ttl;
	argv[argc++] = req->call_id;
	argv[argc++] = cseq;
	argv[argc++] = req->source;
	argv[argc++] = req->transport;
	argv[argc++] = req->user_agent;
	argv[argc++] = req->host;
	argv[argc++] = worker;
	argv[argc++] = req->remove_all ? "1" : "0";
	argv[argc++] = req->host_address ? req->host_address : "";
	argv[argc++] = req->flow ? req->flow : "";
	argv[argc++] = flow_worker;
	for (unsigned i = 0; i < req->n_contacts; i++) {
		snprintf(exp[i], sizeof exp[i], "%d", req->expires[i]);
		argv[argc++] = req->contacts[i];
		argv[argc++] = exp[i];
	}
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.reg = done;
	return store_send(rds, store_on_register, ctx, argc, argv);
}

/* ------------------------------------------------------------ lookup */

static void store_copy_str(char *dst, size_t size, const redisReply *r)
{
	snprintf(dst, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
}

static enum store_lookup_result store_lookup_result_of(long long status)
{
	switch (status) {
	case 0:
		return STORE_FOUND;
	case 480:
		return STORE_NOT_REGISTERED;
	case 486:
		return STORE_AT_LIMIT;
	default:
		return STORE_UNKNOWN;
	}
}

static const char *store_str_or_empty(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING ? r->str : "";
}

/* { status, fwd_always, fwd_busy, fwd_noanswer, fwd_noanswer_timeout,
 *   contact, source, host, host_address, host_lost, transport, flow,
 *   flow_worker, ... } */
static void store_lookup_found(struct store_async_ctx *ctx, const redisReply *r,
			       enum store_lookup_result result)
{
	struct store_contact *contacts = calloc(r->elements / 8 + 1, sizeof *contacts);
	struct store_forward fwd;
	unsigned n = 0;

	if (contacts == NULL) {
		ctx->done.lookup(ctx->arg, -ENOMEM, STORE_UNKNOWN, NULL, 0, NULL);
		return;
	}
	store_copy_str(fwd.always, sizeof fwd.always, r->element[1]);
	store_copy_str(fwd.busy, sizeof fwd.busy, r->element[2]);
	store_copy_str(fwd.noanswer, sizeof fwd.noanswer, r->element[3]);
	fwd.noanswer_timeout = r->element[4]->type == REDIS_REPLY_STRING ?
			       atoi(r->element[4]->str) : 0;
	for (size_t i = 5; i + 7 < r->elements; i += 8) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		contacts[n].uri = r->element[i]->str;
		contacts[n].source = store_str_or_empty(r->element[i + 1]);
		contacts[n].host = store_str_or_empty(r->element[i + 2]);
		contacts[n].host_address = store_str_or_empty(r->element[i + 3]);
		contacts[n].host_lost = r->element[i + 4]->type == REDIS_REPLY_STRING &&
					strcmp(r->element[i + 4]->str, "1") == 0;
		contacts[n].transport = store_str_or_empty(r->element[i + 5]);
		contacts[n].flow = store_str_or_empty(r->element[i + 6]);
		contacts[n].flow_worker = r->element[i + 7]->type == REDIS_REPLY_STRING ?
					  atoi(r->element[i + 7]->str) : -1;
		n++;
	}
	if (result == STORE_FOUND && n == 0)
		result = STORE_NOT_REGISTERED;
	ctx->done.lookup(ctx->arg, 0, result, n ? contacts : NULL, n, &fwd);
	free(contacts);
}

static void store_on_lookup(rds_t *rds, redisReply *r, void *arg)
{
	struct store_async_ctx *ctx = arg;
	enum store_lookup_result result;

	(void)rds;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		ctx->done.lookup(ctx->arg, -EIO, STORE_UNKNOWN, NULL, 0, NULL);
		free(ctx);
		return;
	}
	result = store_lookup_result_of(r->element[0]->integer);
	if (result == STORE_UNKNOWN || r->elements < 5)
		ctx->done.lookup(ctx->arg, 0, STORE_UNKNOWN, NULL, 0, NULL);
	else
		store_lookup_found(ctx, r, result);
	free(ctx);
}

int store_lookup(rds_t *rds, const char *user, const char *call_key, store_lookup_f *done,
		 void *arg)
{
	char ukey[STORE_KEY_MAX], lkey[STORE_KEY_MAX], akey[STORE_KEY_MAX], hkey[STORE_KEY_MAX];
	char now[24], stale[24];
	const char *prefix = rds_prefix(rds);
	struct store_async_ctx *ctx;

	if (store_key(prefix, STORE_KEY_USER, user, ukey, sizeof ukey) < 0 ||
	    store_key(prefix, STORE_KEY_LOCATION, user, lkey, sizeof lkey) < 0 ||
	    store_key(prefix, STORE_KEY_ACTIVE, user, akey, sizeof akey) < 0 ||
	    store_key(prefix, STORE_KEY_HOST, "", hkey, sizeof hkey) < 0)
		return -ENAMETOOLONG;
	store_call_times(now, stale);
	const char *argv[] = { "EVAL", store_lua_lookup, "3", ukey, lkey, akey, now,
			       call_key ? call_key : "", stale, hkey };
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.lookup = done;
	return store_send(rds, store_on_lookup, ctx, 10, argv);
}

/* ------------------------------------------------------------ call limits */

static void store_on_call_begin(rds_t *rds, redisReply *r, void *arg)
{
	struct store_async_ctx *ctx = arg;

	(void)rds;
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		ctx->done.begin(ctx->arg, -EIO, 0);
	else
		ctx->done.begin(ctx->arg, 0, r->integer == 1);
	free(ctx);
}

int store_call_begin(rds_t *rds, const char *user, const char *call_key,
		     store_call_begin_f *done, void *arg)
{
	char ukey[STORE_KEY_MAX], akey[STORE_KEY_MAX], now[24], stale[24];
	const char *prefix = rds_prefix(rds);
	struct store_async_ctx *ctx;

	if (store_key(prefix, STORE_KEY_USER, user, ukey, sizeof ukey) < 0 ||
	    store_key(prefix, STORE_KEY_ACTIVE, user, akey, sizeof akey) < 0)
		return -ENAMETOOLONG;
	store_call_times(now, stale);
	const char *argv[] = { "EVAL", store_lua_call_begin, "2", ukey, akey, call_key, now,
			       stale };
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.begin = done;
	return store_send(rds, store_on_call_begin, ctx, 8, argv);
}

int store_call_end(rds_t *rds, const char *user, const char *call_key)
{
	char akey[STORE_KEY_MAX];

	if (store_key(rds_prefix(rds), STORE_KEY_ACTIVE, user, akey, sizeof akey) < 0)
		return -ENAMETOOLONG;
	const char *argv[] = { "ZREM", akey, call_key };
	return rds_commandargv(rds, NULL, NULL, 3, argv, NULL);
}

/* ------------------------------------------------------------ dead bindings */

static void store_on_binding_drop(rds_t *rds, redisReply *r, void *arg)
{
	struct store_async_ctx *ctx = arg;

	(void)rds;
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		ctx->done.drop(ctx->arg, -EIO, 0);
	else
		ctx->done.drop(ctx->arg, 0, r->integer == 1);
	free(ctx);
}

int store_binding_drop(rds_t *rds, const char *user, const char *contact, const char *call_id,
		       uint32_t cseq, store_binding_drop_f *done, void *arg)
{
	char lkey[STORE_KEY_MAX], cs[16];
	struct store_async_ctx *ctx;

	if (store_key(rds_prefix(rds), STORE_KEY_LOCATION, user, lkey, sizeof lkey) < 0)
		return -ENAMETOOLONG;
	snprintf(cs, sizeof cs, "%u", cseq);
	const char *argv[] = { "EVAL", store_lua_binding_drop, "1", lkey, contact, call_id, cs };
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.drop = done;
	return store_send(rds, store_on_binding_drop, ctx, 7, argv);
}

/* ------------------------------------------------------------ CDRs */

int store_call_record(rds_t *rds, const char *node, const char *id, const char *text,
		      size_t len)
{
	char key[STORE_KEY_MAX];
	const char *argv[] = { "HSET", key, id, text };
	size_t lens[] = { 4, 0, strlen(id), len };

	if (store_key(rds_prefix(rds), STORE_KEY_CALLS, node, key, sizeof key) < 0)
		return -ENAMETOOLONG;
	lens[1] = strlen(key);
	return rds_commandargv(rds, NULL, NULL, 4, argv, lens);
}

/* Error replies that mean "not now" rather than "not this record". */
static int store_cdr_temporary(const char *err)
{
	static const char *const codes[] = {
		"LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "MISCONF", "TRYAGAIN",
		"NOREPLICAS", "CLUSTERDOWN", "NOAUTH", "NOPERM",
	};

	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		size_t len = strlen(codes[i]);

		if (strncmp(err, codes[i], len) == 0 && (err[len] == ' ' || err[len] == '\0'))
			return 1;
	}
	return 0;
}

static enum store_cdr_outcome store_cdr_outcome_of(const redisReply *reply)
{
	if (reply == NULL)
		return STORE_CDR_LOST;
	if (reply->type == REDIS_REPLY_ERROR)
		return store_cdr_temporary(reply->str) ? STORE_CDR_RETRY : STORE_CDR_REJECT;
	if (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS)
		return STORE_CDR_REJECT;   /* not what the script returns: say so loudly */
	return strcmp(reply->str, "dup") == 0 ? STORE_CDR_DUP : STORE_CDR_STORED;
}

static void store_on_cdr(rds_t *rds, redisReply *reply, void *arg)
{
	struct store_async_ctx *ctx = arg;
	enum store_cdr_outcome outcome = store_cdr_outcome_of(reply);
	const char *error = reply != NULL && reply->str != NULL ? reply->str : "unexpected reply";

	(void)rds;
	ctx->done.cdr(ctx->arg, outcome, outcome == STORE_CDR_LOST ? NULL : error);
	free(ctx);
}

int store_cdr_add(rds_t *rds, const char *stream_key, const char *id, const char *host,
		  int n, const char *const *fields, const char *const *values, store_cdr_f *done,
		  void *arg)
{
	const char **argv;
	char seen[STORE_KEY_MAX], calls[STORE_KEY_MAX];
	struct store_async_ctx *ctx;
	int ret, argc;

	if (n < 0)
		return -EINVAL;
	if (store_cdr_seen_key(stream_key, id, seen, sizeof seen) < 0 ||
	    store_key(rds_prefix(rds), STORE_KEY_CALLS, host, calls, sizeof calls) < 0)
		return -ENAMETOOLONG;
	argv = store_lua_cdr_argv(stream_key, seen, calls, id, n, fields, values, &argc);
	if (argv == NULL)
		return -ENOMEM;
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.cdr = done;
	ret = store_send(rds, store_on_cdr, ctx, argc, argv);
	free(argv);
	return ret;
}

/* ------------------------------------------------------------ WAIT */

static void store_on_wait(rds_t *rds, redisReply *reply, void *arg)
{
	struct store_async_ctx *ctx = arg;

	(void)rds;
	if (reply == NULL)
		ctx->done.wait(ctx->arg, -ENOTCONN, 0);
	else if (reply->type != REDIS_REPLY_INTEGER)
		ctx->done.wait(ctx->arg, -EIO, 0);
	else
		ctx->done.wait(ctx->arg, 0, reply->integer);
	free(ctx);
}

int store_wait(rds_t *rds, int replicas, int timeout_ms, store_wait_f *done, void *arg)
{
	char nrep[16], ms[16];
	struct store_async_ctx *ctx;

	if (replicas < 1 || timeout_ms < 1)
		return -EINVAL;
	snprintf(nrep, sizeof nrep, "%d", replicas);
	snprintf(ms, sizeof ms, "%d", timeout_ms);
	const char *argv[] = { "WAIT", nrep, ms };
	ctx = store_ctx_new(arg);
	if (ctx != NULL)
		ctx->done.wait = done;
	return store_send(rds, store_on_wait, ctx, 3, argv);
}
