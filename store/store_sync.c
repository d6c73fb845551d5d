/*
 * store_sync — the management side of the store: its Redis connection and
 * the changes to subscribers.  See store.h; reading (user show, user list,
 * cdr tail) is in store_query.c.
 *
 * Design note.  The management process is no worker, so a short blocking
 * call is acceptable here, but every step is bounded: each operation opens
 * a hiredis connection with STORE_REDIS_TIMEOUT_MS to connect and the same
 * per reply, runs its commands and closes it again, so a Redis that stops
 * answering costs one operation about a second, never a hung process.
 * Each change is one Lua script (store_lua.c), so that "only if the user
 * exists" (or "only if it does not") holds against concurrent CLIs and a
 * user never exists half-written.  The password is turned into the two
 * HA1 values at once and goes no further.
 *
 * With redis_sentinels, store_conn_open asks the sentinels in turn (each
 * bounded by STORE_SENTINEL_TIMEOUT_MS to connect and to answer) for the
 * primary, and takes the first one named that accepts AUTH and SELECT and
 * says ROLE master; a sentinel that answers nonsense or names a replica is
 * skipped.  Every connection checks ROLE, with or without sentinels, so a
 * replica is never written to.  An operation costs at most one ask per
 * sentinel plus one connect: a few seconds in the worst case, bounded.
 *
 * Every failure is a negative errno and one line in the caller's struct
 * store_error, worded for the operator: "redis <address>: <what went
 * wrong>", "no such user NAME", "user NAME exists".
 */
#include "store/store_sync.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "shm/shm.h"
#include "store/store_lua.h"

/* One sentinel's connect, and its answer. */
#define STORE_SENTINEL_TIMEOUT_MS 500

/* Most ARGV of store_lua_user_update / store_lua_user_forget: the four fwd_* fields and values. */
#define STORE_UPDATE_ARGS_MAX 8

/* ------------------------------------------------------------ the connection */

int store_fail(struct store_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return code;
}

static struct timeval store_timeval(uint64_t ms)
{
	return (struct timeval){
		.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000,
	};
}

/* Why a hiredis context failed, for people: a read timeout shows as EAGAIN. */
static const char *store_conn_why(const redisContext *c)
{
	if (!c)
		return "out of memory";
	if (c->err == REDIS_ERR_IO && strcmp(c->errstr, strerror(EAGAIN)) == 0)
		return "no answer within 1 s";
	if (c->err == REDIS_ERR_EOF)
		return "the server closed the connection";
	return c->errstr[0] ? c->errstr : "connection failed";
}

/* The errno that goes with store_conn_why(). */
static int store_conn_errno(const redisContext *c)
{
	if (!c)
		return -ENOMEM;
	if (c->err == REDIS_ERR_IO && strcmp(c->errstr, strerror(EAGAIN)) == 0)
		return -ETIMEDOUT;
	return -EIO;
}

/* Connect to the parsed address: 0 and *out (NULL when hiredis ran out of
 * memory), or -EINVAL for an address that is not one. */
static int store_conn_dial(const char *address, redisContext **out)
{
	struct timeval tv = store_timeval(STORE_REDIS_TIMEOUT_MS);
	struct store_address a;

	if (store_address_parse(address, &a, NULL) < 0)
		return -EINVAL;
	if (a.unix_path[0] != '\0')
		*out = redisConnectUnixWithTimeout(a.unix_path, tv);
	else
		*out = redisConnectWithTimeout(a.host, a.port, tv);
	return 0;
}

void store_conn_close(struct store_conn *conn)
{
	if (conn->c)
		redisFree(conn->c);
	conn->c = NULL;
}

/* Check one reply: 0 and *out (the caller frees it), or the failure in err. */
static int store_conn_check(struct store_conn *conn, const char *what, redisReply *rr,
			    redisReply **out)
{
	const char *address = conn->address;

	if (!rr)
		return store_fail(conn->err, store_conn_errno(conn->c), "redis %s: %s", address,
				  store_conn_why(conn->c));
	if (rr->type == REDIS_REPLY_ERROR) {
		store_fail(conn->err, -EPROTO, "redis %s: %s: %.200s", address, what, rr->str);
		freeReplyObject(rr);
		return -EPROTO;
	}
	*out = rr;
	return 0;
}

int store_conn_cmd(struct store_conn *conn, int argc, const char **argv, redisReply **out)
{
	return store_conn_check(conn, argv[0], redisCommandArgv(conn->c, argc, argv, NULL), out);
}

int store_conn_next(struct store_conn *conn, const char *what, redisReply **out)
{
	void *rr = NULL;

	if (redisGetReply(conn->c, &rr) != REDIS_OK)
		rr = NULL;
	return store_conn_check(conn, what, rr, out);
}

int store_conn_unexpected(struct store_conn *conn, const char *what, redisReply *rr)
{
	freeReplyObject(rr);
	return store_fail(conn->err, -EBADMSG, "redis %s: unexpected answer to %s",
			  conn->address, what);
}

/* Run a command whose answer does not matter beyond "not an error". */
static int store_conn_simple(struct store_conn *conn, int argc, const char **argv)
{
	redisReply *rr;
	int ret = store_conn_cmd(conn, argc, argv, &rr);

	if (ret == 0)
		freeReplyObject(rr);
	return ret;
}

/* Connect to conn->address, AUTH, SELECT: 0, or the failure in err. */
static int store_conn_handshake(const store_sync_t *s, struct store_conn *conn)
{
	const char *auth[] = { "AUTH", s->password };
	const char *select[] = { "SELECT", NULL };
	struct store_error *err = conn->err;
	char db[16];
	int ret = 0;

	if (store_conn_dial(conn->address, &conn->c) < 0)
		return store_fail(err, -EINVAL, "redis %s: not a valid address", conn->address);
	if (!conn->c || conn->c->err) {
		ret = store_fail(err, conn->c ? -ENOTCONN : -ENOMEM, "redis %s: cannot connect: %s",
				 conn->address, store_conn_why(conn->c));
		store_conn_close(conn);
		return ret;
	}
	redisSetTimeout(conn->c, store_timeval(STORE_REDIS_TIMEOUT_MS));
	if (s->password[0])
		ret = store_conn_simple(conn, 2, auth);
	if (ret == 0 && s->db != 0) {
		snprintf(db, sizeof db, "%d", s->db);
		select[1] = db;
		ret = store_conn_simple(conn, 2, select);
	}
	if (ret < 0)
		store_conn_close(conn);
	return ret;
}

/* A replica is never written to: 0 when ROLE says master. */
static int store_conn_role(struct store_conn *conn)
{
	const char *argv[] = { "ROLE" };
	redisReply *rr;
	const char *role;
	int ret = store_conn_cmd(conn, 1, argv, &rr), master;

	if (ret < 0)
		return ret;
	master = store_role_is_master(rr, &role);
	freeReplyObject(rr);
	if (!master)
		return store_fail(conn->err, -ENOTCONN, "redis %s: ROLE is %s, not master: "
				  "not used", conn->address, role);
	return 0;
}

/* Ask sentinel i for the primary: 0 and its "ip:port" in out[size], or the
 * failure in why[whylen]. */
static int store_sentinel_ask(const store_sync_t *s, size_t i, char *out, size_t size,
			      char *why, size_t whylen)
{
	struct timeval tv = store_timeval(STORE_SENTINEL_TIMEOUT_MS);
	struct store_address a;
	redisContext *c;
	redisReply *rr;
	int ret;

	if (store_sentinel_parse(s->sentinels[i], &a, NULL) < 0) {
		snprintf(why, whylen, "not a valid address");
		return -EINVAL;
	}
	c = redisConnectWithTimeout(a.host, a.port, tv);
	if (!c || c->err) {
		snprintf(why, whylen, "cannot connect: %s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return -ENOTCONN;
	}
	redisSetTimeout(c, tv);
	rr = redisCommand(c, "SENTINEL get-master-addr-by-name %s", s->master_name);
	if (!rr) {
		snprintf(why, whylen, "no answer within %d ms", STORE_SENTINEL_TIMEOUT_MS);
		ret = -EIO;
	} else {
		ret = store_sentinel_answer(rr, &a, why, whylen);
		if (ret == 0)
			store_address_format(&a, out, size);
		freeReplyObject(rr);
	}
	redisFree(c);
	return ret;
}

/* Sentinel mode: the first primary named that answers as one. */
static int store_conn_open_sentinel(const store_sync_t *s, struct store_conn *conn)
{
	char why[STORE_ERROR_MAX], all[STORE_ERROR_MAX] = "";
	size_t used = 0;

	for (size_t i = 0; i < s->n_sentinels; i++) {
		if (store_sentinel_ask(s, i, conn->address, sizeof conn->address, why,
				       sizeof why) == 0) {
			if (store_conn_handshake(s, conn) == 0 && store_conn_role(conn) == 0)
				return 0;
			store_conn_close(conn);
			snprintf(why, sizeof why, "%s", conn->err->text);
		}
		used += (size_t)snprintf(all + used, used < sizeof all ? sizeof all - used : 0,
					 "%ssentinel %s: %s", i ? "; " : "", s->sentinels[i], why);
		if (used >= sizeof all)
			break;
	}
	snprintf(conn->address, sizeof conn->address, "%s", s->address);
	return store_fail(conn->err, -ENOTCONN, "redis %s: no usable primary (%.300s)",
			  s->address, all);
}

int store_conn_open(const store_sync_t *s, struct store_error *err, struct store_conn *conn)
{
	int ret;

	*conn = (struct store_conn){ .s = s, .err = err };
	if (s->n_sentinels > 0)
		return store_conn_open_sentinel(s, conn);
	snprintf(conn->address, sizeof conn->address, "%s", s->address);
	ret = store_conn_handshake(s, conn);
	if (ret == 0)
		ret = store_conn_role(conn);
	if (ret < 0)
		store_conn_close(conn);
	return ret;
}

/* Connect, EVAL one script whose answer is an integer, close. */
static int store_eval(const store_sync_t *s, int argc, const char **argv, long long *result,
		      struct store_error *err)
{
	struct store_conn conn;
	redisReply *rr = NULL;
	int ret = store_conn_open(s, err, &conn);

	if (ret == 0)
		ret = store_conn_cmd(&conn, argc, argv, &rr);
	if (ret == 0 && rr->type != REDIS_REPLY_INTEGER) {
		ret = store_conn_unexpected(&conn, "EVAL", rr);
	} else if (ret == 0) {
		*result = rr->integer;
		freeReplyObject(rr);
	}
	store_conn_close(&conn);
	return ret;
}

/* ------------------------------------------------------------ the handle */

int store_sync_create(const struct config *cfg, store_sync_t **out)
{
	store_sync_t *s = calloc(1, sizeof *s);

	if (!s)
		return -ENOMEM;
	snprintf(s->address, sizeof s->address, "%s", cfg->redis_address);
	snprintf(s->password, sizeof s->password, "%s", cfg->redis_password);
	s->db = cfg->redis_db;
	snprintf(s->prefix, sizeof s->prefix, "%s", cfg->redis_prefix);
	snprintf(s->realm, sizeof s->realm, "%s", cfg->realm);
	/* config_defaults() says "cdr"; a struct filled by hand may leave it empty. */
	snprintf(s->cdr_stream, sizeof s->cdr_stream, "%s",
		 cfg->cdr_stream[0] ? cfg->cdr_stream : "cdr");
	s->n_sentinels = cfg->n_redis_sentinels;
	memcpy(s->sentinels, cfg->redis_sentinels, sizeof s->sentinels);
	snprintf(s->master_name, sizeof s->master_name, "%s", cfg->redis_master_name);
	if (s->n_sentinels > 0)   /* redis_address is not used: name the master */
		snprintf(s->address, sizeof s->address, "master %s", s->master_name);
	*out = s;
	return 0;
}

void store_sync_destroy(store_sync_t *s)
{
	free(s);
}

void store_sync_set_realm(store_sync_t *s, const char *realm)
{
	snprintf(s->realm, sizeof s->realm, "%s", realm);
}

/* ------------------------------------------------------------ subscriber changes */

/* The user hash key of `name`, and with `lkey` its location hash key. */
static int store_user_keys(const store_sync_t *s, const char *name, char ukey[STORE_KEY_MAX],
			   char *lkey, struct store_error *err)
{
	if (store_key(s->prefix, STORE_KEY_USER, name, ukey, STORE_KEY_MAX) < 0 ||
	    (lkey && store_key(s->prefix, STORE_KEY_LOCATION, name, lkey, STORE_KEY_MAX) < 0))
		return store_fail(err, -ENAMETOOLONG, "user name too long for a key: %.80s",
				  name);
	return 0;
}

/* Both HA1s of name:realm:password; the password goes no further than this. */
static int store_user_ha1(const store_sync_t *s, const char *name, const char *password,
			  char md5[DIGEST_HA1_SIZE], char sha256[DIGEST_HA1_SIZE],
			  struct store_error *err)
{
	int ret = digest_ha1(DIGEST_MD5, name, s->realm, password, md5);

	if (ret == 0)
		ret = digest_ha1(DIGEST_SHA256, name, s->realm, password, sha256);
	if (ret < 0)
		return store_fail(err, ret, "cannot compute the HA1 of %s: %s", name,
				  strerror(-ret));
	return 0;
}

int store_user_add(store_sync_t *s, const char *name, const char *password,
		   const char *display, unsigned long max_calls, struct store_error *err)
{
	char md5[DIGEST_HA1_SIZE], sha256[DIGEST_HA1_SIZE], max[24], created[24];
	char ukey[STORE_KEY_MAX], lkey[STORE_KEY_MAX];
	long long added = 0;
	int ret;

	if ((ret = store_user_keys(s, name, ukey, lkey, err)) < 0 ||
	    (ret = store_user_ha1(s, name, password, md5, sha256, err)) < 0)
		return ret;
	snprintf(max, sizeof max, "%lu", max_calls);
	snprintf(created, sizeof created, "%llu", (unsigned long long)shm_now_ms());

	const char *argv[] = { "EVAL", store_lua_user_add, "2", ukey, lkey, md5, sha256,
			       display ? display : "", max, created };
	ret = store_eval(s, 10, argv, &added, err);
	if (ret == 0 && !added)
		ret = store_fail(err, -EEXIST, "user %s exists", name);
	return ret;
}

/*
 * Run `script` (store_lua_user_update or store_lua_user_forget) on an
 * existing user with `n_args` ARGV (field/value pairs, or field names).
 */
static int store_user_update(store_sync_t *s, const char *name, const char *script,
			     int n_args, const char **args, struct store_error *err)
{
	char ukey[STORE_KEY_MAX];
	const char *argv[4 + STORE_UPDATE_ARGS_MAX] = { "EVAL", script, "1", ukey };
	long long done = 0;
	int ret;

	if (n_args > STORE_UPDATE_ARGS_MAX)
		return store_fail(err, -E2BIG, "too many fields");
	if ((ret = store_user_keys(s, name, ukey, NULL, err)) < 0)
		return ret;
	for (int i = 0; i < n_args; i++)
		argv[4 + i] = args[i];
	ret = store_eval(s, 4 + n_args, argv, &done, err);
	if (ret == 0 && !done)
		ret = store_fail(err, -ENOENT, "no such user %s", name);
	return ret;
}

int store_user_passwd(store_sync_t *s, const char *name, const char *password,
		      struct store_error *err)
{
	char md5[DIGEST_HA1_SIZE], sha256[DIGEST_HA1_SIZE];
	int ret = store_user_ha1(s, name, password, md5, sha256, err);

	if (ret < 0)
		return ret;
	const char *fields[] = { "ha1_md5", md5, "ha1_sha256", sha256 };
	return store_user_update(s, name, store_lua_user_update, 4, fields, err);
}

int store_user_set(store_sync_t *s, const char *name, const char *display,
		   const unsigned long *max_calls, struct store_error *err)
{
	const char *fields[4];
	char limit[24];
	int n = 0;

	if (display) {
		fields[n++] = "display";
		fields[n++] = display;
	}
	if (max_calls) {
		snprintf(limit, sizeof limit, "%lu", *max_calls);
		fields[n++] = "max_calls";
		fields[n++] = limit;
	}
	if (n == 0)
		return store_fail(err, -EINVAL, "nothing to change");
	return store_user_update(s, name, store_lua_user_update, n, fields, err);
}

int store_user_set_enabled(store_sync_t *s, const char *name, int enabled,
			   struct store_error *err)
{
	const char *fields[] = { "enabled", enabled ? "1" : "0" };

	return store_user_update(s, name, store_lua_user_update, 2, fields, err);
}

int store_user_forward_set(store_sync_t *s, const char *name,
			   const struct store_forward_change *change, struct store_error *err)
{
	const char *args[STORE_UPDATE_ARGS_MAX];
	char timeout[16];
	int n = 0;

	/* In this order: fwd_always, fwd_busy, fwd_noanswer, fwd_noanswer_timeout. */
	if (change->always) {
		args[n++] = "fwd_always";
		args[n++] = change->always;
	}
	if (change->busy) {
		args[n++] = "fwd_busy";
		args[n++] = change->busy;
	}
	if (change->noanswer) {
		args[n++] = "fwd_noanswer";
		args[n++] = change->noanswer;
	}
	if (change->noanswer_timeout) {
		snprintf(timeout, sizeof timeout, "%u", change->noanswer_timeout);
		args[n++] = "fwd_noanswer_timeout";
		args[n++] = timeout;
	}
	if (n == 0)
		return store_fail(err, -EINVAL, "no forwarding field to set");
	return store_user_update(s, name, store_lua_user_update, n, args, err);
}

int store_user_forward_clear(store_sync_t *s, const char *name, struct store_error *err)
{
	const char *fields[] = { "fwd_always", "fwd_busy", "fwd_noanswer",
				 "fwd_noanswer_timeout" };

	return store_user_update(s, name, store_lua_user_forget, 4, fields, err);
}

int store_user_del(store_sync_t *s, const char *name, struct store_error *err)
{
	char ukey[STORE_KEY_MAX], lkey[STORE_KEY_MAX];
	long long existed = 0;
	int ret = store_user_keys(s, name, ukey, lkey, err);

	if (ret < 0)
		return ret;
	const char *argv[] = { "EVAL", store_lua_user_del, "2", ukey, lkey };
	ret = store_eval(s, 5, argv, &existed, err);
	if (ret == 0 && !existed)
		ret = store_fail(err, -ENOENT, "no such user %s", name);
	return ret;
}
