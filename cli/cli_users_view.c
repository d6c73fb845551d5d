/*
 * cli_users_view — the `user` commands that read: show and list.
 *
 * Design note.  A subscriber is its user hash and its location hash in
 * Redis (keys in docs/redis-schema.md), read through the CLI's synchronous
 * connection (cli_redis.c).  `user show` reads both in one round trip;
 * `user list` SCANs the user keys, then reads users in pipelined batches of
 * CLI_LIST_BATCH, and is bounded in all by CLI_LIST_MAX_MS whatever the
 * number of users.  Only unexpired registrations are shown or counted, and
 * every string from Redis is cleaned before display (a User-Agent can hold
 * any bytes).
 */
#include "cli/cli_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_LIST_MAX_MS       3000          /* a whole `user list` */
#define CLI_SCAN_COUNT        "1000"        /* keys looked at per SCAN step */
#define CLI_LIST_BATCH        256           /* users per pipelined round trip */

/* ------------------------------------------------------------ user: reading */

/* A subscriber record as `user show` and `user list` present it. */
struct cli_user {
	char display[CLI_VALUE_MAX + 1];   /* control characters replaced */
	int enabled;
	unsigned long max_calls;           /* 0: no limit */
	uint64_t created_ms;
	/* Call forwarding (`user show` only): "" when unset, control characters replaced. */
	char fwd_always[CLI_VALUE_MAX + 1];
	char fwd_busy[CLI_VALUE_MAX + 1];
	char fwd_noanswer[CLI_VALUE_MAX + 1];
	unsigned long fwd_noanswer_timeout; /* 0: the config's no_answer_timeout */
};

/* One current registration, as the registrar stored it. */
struct cli_binding {
	const char *contact;               /* the hash field, in the Redis reply */
	json_t *obj;                       /* its parsed value, owned */
	int64_t expires_ms;
	int64_t registered_ms;
};


/* The record from three strings (any of them NULL when absent). */
static void cli_user_fill(struct cli_user *u, const char *display, const char *enabled,
			  const char *max_calls, const char *created_ms)
{
	memset(u, 0, sizeof *u);
	if (display)
		cli_clean(u->display, sizeof u->display, display, strlen(display) + 1);
	u->enabled = enabled && strcmp(enabled, "1") == 0;
	u->max_calls = max_calls ? strtoul(max_calls, NULL, 10) : 0;
	u->created_ms = created_ms ? strtoull(created_ms, NULL, 10) : 0;
}

/* The forwarding fields of a user hash (HGETALL reply) into *u. */
static void cli_user_fill_forward(struct cli_user *u, const redisReply *user)
{
	const char *always = cli_hash_get(user, "fwd_always");
	const char *busy = cli_hash_get(user, "fwd_busy");
	const char *noanswer = cli_hash_get(user, "fwd_noanswer");
	const char *timeout = cli_hash_get(user, "fwd_noanswer_timeout");

	if (always)
		cli_clean(u->fwd_always, sizeof u->fwd_always, always, strlen(always) + 1);
	if (busy)
		cli_clean(u->fwd_busy, sizeof u->fwd_busy, busy, strlen(busy) + 1);
	if (noanswer)
		cli_clean(u->fwd_noanswer, sizeof u->fwd_noanswer, noanswer, strlen(noanswer) + 1);
	u->fwd_noanswer_timeout = timeout ? strtoul(timeout, NULL, 10) : 0;
}

/* Milliseconds as the registrar's Lua (cjson) wrote them: integer or real. */
static int64_t cli_json_ms(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

/*
 * Parse one stored binding; NULL when it is garbled or has expired.  A
 * User-Agent can hold any bytes and jansson takes only UTF-8: such bytes
 * become '?' rather than hiding the registration.
 */
static json_t *cli_binding_parse(const char *value, size_t len, uint64_t now_ms,
				 int64_t *expires_ms)
{
	json_t *obj = json_loadb(value, len, 0, NULL);
	char *copy;

	if (!obj && (copy = malloc(len)) != NULL) {
		for (size_t i = 0; i < len; i++)
			copy[i] = (unsigned char)value[i] >= 0x80 ? '?' : value[i];
		obj = json_loadb(copy, len, 0, NULL);
		free(copy);
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		return NULL;
	}
	*expires_ms = cli_json_ms(json_object_get(obj, "expires"));
	if (*expires_ms <= (int64_t)now_ms) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Newest registration first; the contact decides between equals. */
static int cli_binding_cmp(const void *a, const void *b)
{
	const struct cli_binding *x = a, *y = b;

	if (x->registered_ms != y->registered_ms)
		return x->registered_ms > y->registered_ms ? -1 : 1;
	return strcmp(x->contact, y->contact);
}

/* The unexpired bindings of a location hash (HGETALL reply), sorted. */
static int cli_bindings_load(const redisReply *loc, uint64_t now_ms, struct cli_binding **out,
			     size_t *n)
{
	struct cli_binding *b = calloc(loc->elements / 2 + 1, sizeof *b);
	size_t count = 0;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < loc->elements; i += 2) {
		const redisReply *f = loc->element[i], *v = loc->element[i + 1];
		int64_t expires;
		json_t *obj;

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		obj = cli_binding_parse(v->str, v->len, now_ms, &expires);
		if (!obj)
			continue;
		b[count].contact = f->str;
		b[count].obj = obj;
		b[count].expires_ms = expires;
		b[count].registered_ms = cli_json_ms(json_object_get(obj, "registered"));
		count++;
	}
	qsort(b, count, sizeof *b, cli_binding_cmp);
	*out = b;
	*n = count;
	return 0;
}

static void cli_bindings_free(struct cli_binding *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(b[i].obj);
	free(b);
}

/* How many values of an HVALS reply are unexpired bindings. */
static unsigned cli_bindings_count(const redisReply *vals, uint64_t now_ms)
{
	unsigned n = 0;

	for (size_t i = 0; i < vals->elements; i++) {
		const redisReply *v = vals->element[i];
		int64_t expires;
		json_t *obj;

		if (v->type != REDIS_REPLY_STRING)
			continue;
		obj = cli_binding_parse(v->str, v->len, now_ms, &expires);
		n += obj != NULL;
		json_decref(obj);
	}
	return n;
}

/* A string member of a binding, "" when absent. */
static const char *cli_obj_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

static uint64_t cli_expires_in_s(const struct cli_binding *b, uint64_t now_ms)
{
	return (uint64_t)(b->expires_ms - (int64_t)now_ms) / 1000;
}

/* ------------------------------------------------------------ user show */

static json_t *cli_binding_json(const struct cli_binding *b, uint64_t now_ms)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:o, s:I}",
		"contact", cli_json_str(b->contact, 0),
		"source", cli_json_str(cli_obj_str(b->obj, "source"), 1),
		"transport", cli_json_str(cli_obj_str(b->obj, "transport"), 1),
		"expires_in_s", cli_json_u64(cli_expires_in_s(b, now_ms)),
		"expires_ms", (json_int_t)b->expires_ms,
		"registered_ms", (json_int_t)b->registered_ms,
		"user_agent", cli_json_str(cli_obj_str(b->obj, "user_agent"), 1),
		"call_id", cli_json_str(cli_obj_str(b->obj, "call_id"), 1),
		"cseq", (json_int_t)cli_json_ms(json_object_get(b->obj, "cseq")),
		"host", cli_json_str(cli_obj_str(b->obj, "host"), 1),
		"worker", (json_int_t)cli_json_ms(json_object_get(b->obj, "worker")));
}

static int cli_show_json(const char *name, const struct cli_user *u,
			 const struct cli_binding *b, size_t n, uint64_t now_ms,
			 struct cli_buf *out)
{
	json_t *regs = json_array();
	json_t *o;

	if (!regs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (json_array_append_new(regs, cli_binding_json(&b[i], now_ms)) < 0)
			out->err = -ENOMEM;
	}
	o = json_pack("{s:s, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		"user", name,
		"display", cli_json_str(u->display, 1),
		"enabled", u->enabled,
		"max_calls", cli_json_u64(u->max_calls),
		"created_ms", cli_json_u64(u->created_ms),
		"fwd_always", cli_json_str(u->fwd_always, 1),
		"fwd_busy", cli_json_str(u->fwd_busy, 1),
		"fwd_noanswer", cli_json_str(u->fwd_noanswer, 1),
		"fwd_noanswer_timeout", u->fwd_noanswer_timeout ?
			cli_json_u64(u->fwd_noanswer_timeout) : json_null(),
		"registrations", regs);
	cli_buf_add_json(out, o);
	cli_buf_add(out, "\n", 1);
	json_decref(o);
	return out->err;
}

/* One field of a binding for a text line: control characters replaced. */
static const char *cli_binding_text(const struct cli_binding *b, const char *key, char *buf,
				    size_t size)
{
	const char *s = cli_obj_str(b->obj, key);

	cli_clean(buf, size, s, strlen(s) + 1);
	return *buf ? buf : "-";
}

/* The forwarding lines of `user show`; `default_timeout` is the config's (0: unknown). */
static void cli_show_forward_text(const struct cli_user *u, int default_timeout,
				  struct cli_buf *out)
{
	cli_buf_printf(out, "fwd always:     %s\n", u->fwd_always[0] ? u->fwd_always : "-");
	cli_buf_printf(out, "fwd busy:       %s\n", u->fwd_busy[0] ? u->fwd_busy : "-");
	cli_buf_printf(out, "fwd no answer:  %s\n", u->fwd_noanswer[0] ? u->fwd_noanswer : "-");
	if (u->fwd_noanswer_timeout)
		cli_buf_printf(out, "fwd timeout:    %lu s\n", u->fwd_noanswer_timeout);
	else if (default_timeout > 0)
		cli_buf_printf(out, "fwd timeout:    %d s (default)\n", default_timeout);
	else
		cli_buf_printf(out, "fwd timeout:    default\n");
}

static int cli_show_text(const char *name, const struct cli_user *u, int default_timeout,
			 const struct cli_binding *b, size_t n, uint64_t now_ms,
			 struct cli_buf *out)
{
	time_t created = (time_t)(u->created_ms / 1000);
	char when[32] = "-", contact[512], src[80], tp[16], ua[160], host[80];
	struct tm tm;

	if (u->created_ms && gmtime_r(&created, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
	cli_buf_printf(out, "user:           %s\n", name);
	cli_buf_printf(out, "display:        %s\n", u->display[0] ? u->display : "-");
	cli_buf_printf(out, "enabled:        %s\n", u->enabled ? "yes" : "no");
	if (u->max_calls)
		cli_buf_printf(out, "max calls:      %lu\n", u->max_calls);
	else
		cli_buf_printf(out, "max calls:      unlimited\n");
	cli_buf_printf(out, "created:        %s\n", when);
	cli_show_forward_text(u, default_timeout, out);
	cli_buf_printf(out, "registrations:  %zu\n", n);
	for (size_t i = 0; i < n; i++) {
		cli_clean(contact, sizeof contact, b[i].contact, strlen(b[i].contact) + 1);
		cli_buf_printf(out, "  %s\n", contact);
		cli_buf_printf(out, "      source %s/%s, expires in %" PRIu64 " s, "
			       "user agent \"%s\", host %s worker %" PRId64 "\n",
			       cli_binding_text(&b[i], "source", src, sizeof src),
			       cli_binding_text(&b[i], "transport", tp, sizeof tp),
			       cli_expires_in_s(&b[i], now_ms),
			       cli_binding_text(&b[i], "user_agent", ua, sizeof ua),
			       cli_binding_text(&b[i], "host", host, sizeof host),
			       cli_json_ms(json_object_get(b[i].obj, "worker")));
	}
	return out->err;
}

static int cli_user_show_answer(const cli_server_t *srv, const char *name,
				const redisReply *user, const redisReply *loc, int json,
				struct cli_buf *out)
{
	uint64_t now = cli_now_ms(CLOCK_REALTIME);
	struct cli_binding *b;
	struct cli_user u;
	size_t n;
	int err;

	cli_user_fill(&u, cli_hash_get(user, "display"), cli_hash_get(user, "enabled"),
		      cli_hash_get(user, "max_calls"), cli_hash_get(user, "created_ms"));
	cli_user_fill_forward(&u, user);
	err = cli_bindings_load(loc, now, &b, &n);
	if (err < 0)
		return err;
	if (json)
		err = cli_show_json(name, &u, b, n, now, out);
	else
		err = cli_show_text(name, &u, srv->no_answer_timeout, b, n, now, out);
	cli_bindings_free(b, n);
	return err;
}

int cli_user_show(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		  struct cli_reply *reply)
{
	char ukey[CLI_KEY_MAX], lkey[CLI_KEY_MAX];
	const char *get_user[] = { "HGETALL", ukey }, *get_loc[] = { "HGETALL", lkey };
	redisReply *user = NULL, *loc = NULL;
	struct cli_redis r;
	const char *name = req->words[2];
	int err;

	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	cli_user_key(srv, "loc", name, lkey, sizeof lkey);

	/* Both in one round trip. */
	err = cli_redis_open(srv, reply, &r);
	if (err == 0 && (redisAppendCommandArgv(r.c, 2, get_user, NULL) != REDIS_OK ||
			 redisAppendCommandArgv(r.c, 2, get_loc, NULL) != REDIS_OK))
		err = -ENOMEM;
	if (err == 0)
		err = cli_redis_next(&r, "HGETALL", &user);
	if (err == 0)
		err = cli_redis_next(&r, "HGETALL", &loc);
	if (err == 0 && (user->type != REDIS_REPLY_ARRAY || loc->type != REDIS_REPLY_ARRAY))
		err = cli_fail(reply, CLI_STATUS_ERROR, "redis %s: unexpected answer to HGETALL",
			       srv->redis_address);
	cli_redis_close(&r);
	if (err == 0 && user->elements == 0)
		err = cli_fail(reply, CLI_STATUS_ERROR, "no such user %s", name);
	if (err == 0)
		err = cli_user_show_answer(srv, name, user, loc, req->json, out);
	if (user)
		freeReplyObject(user);
	if (loc)
		freeReplyObject(loc);
	return err;
}

/* ------------------------------------------------------------ user list */

struct cli_names {
	char **v;
	size_t n;
	size_t cap;
};

static int cli_names_add(struct cli_names *names, const char *name)
{
	if (names->n == names->cap) {
		size_t cap = names->cap ? names->cap * 2 : 64;
		char **v = realloc(names->v, cap * sizeof *v);

		if (!v)
			return -ENOMEM;
		names->v = v;
		names->cap = cap;
	}
	names->v[names->n] = strdup(name);
	if (!names->v[names->n])
		return -ENOMEM;
	names->n++;
	return 0;
}

static void cli_names_free(struct cli_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
}

static int cli_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort, and drop the duplicates SCAN may return while Redis rehashes. */
static void cli_names_sort_unique(struct cli_names *names)
{
	size_t kept = 0;

	qsort(names->v, names->n, sizeof *names->v, cli_name_cmp);
	for (size_t i = 0; i < names->n; i++) {
		if (kept > 0 && strcmp(names->v[kept - 1], names->v[i]) == 0)
			free(names->v[i]);
		else
			names->v[kept++] = names->v[i];
	}
	names->n = kept;
}

/* prefix + "user:*" with the prefix's glob characters escaped. */
static void cli_user_pattern(const char *prefix, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = prefix; *p && n + 2 < size; p++) {
		if (strchr("*?[]\\", *p))
			out[n++] = '\\';
		out[n++] = *p;
	}
	snprintf(out + n, size - n, "user:*");
}

static int cli_list_too_slow(struct cli_redis *r, size_t users)
{
	return cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: user list did not finish "
			"within %d ms (%zu users read)", r->srv->redis_address, CLI_LIST_MAX_MS,
			users);
}

/* Every user name, by SCAN in steps of CLI_SCAN_COUNT keys, until `deadline`. */
static int cli_user_scan(struct cli_redis *r, uint64_t deadline, struct cli_names *names)
{
	size_t skip = strlen(r->srv->redis_prefix) + strlen("user:");
	char pattern[2 * CLI_KEY_MAX], cursor[32] = "0";
	const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", CLI_SCAN_COUNT };
	redisReply *rr = NULL, *keys;
	int err;

	cli_user_pattern(r->srv->redis_prefix, pattern, sizeof pattern);
	do {
		if (cli_now_ms(CLOCK_MONOTONIC) >= deadline)
			return cli_list_too_slow(r, names->n);
		err = cli_redis_cmd(r, 6, argv, &rr);
		if (err < 0)
			return err;
		if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2 ||
		    rr->element[0]->type != REDIS_REPLY_STRING ||
		    rr->element[1]->type != REDIS_REPLY_ARRAY)
			return cli_redis_unexpected(r, "SCAN", rr);
		snprintf(cursor, sizeof cursor, "%s", rr->element[0]->str);
		keys = rr->element[1];
		for (size_t i = 0; i < keys->elements && err == 0; i++) {
			const redisReply *k = keys->element[i];

			/* Only our own shape of key: "user:a:b" is nobody's name. */
			if (k->type == REDIS_REPLY_STRING && k->len > skip &&
			    cli_proto_name_ok(k->str + skip))
				err = cli_names_add(names, k->str + skip);
		}
		freeReplyObject(rr);
	} while (err == 0 && strcmp(cursor, "0") != 0);
	return err;
}

struct cli_list_walk {
	struct cli_buf *out;
	int json;
	size_t count;
	uint64_t now_ms;
};

/* One line or JSON object of `user list`. */
static void cli_list_row(struct cli_list_walk *walk, const char *name, const struct cli_user *u,
			 unsigned regs)
{
	struct cli_buf *out = walk->out;
	char max[16];
	json_t *o;

	if (walk->json) {
		cli_buf_add(out, walk->count ? ",\n" : "", walk->count ? 2 : 0);
		o = json_pack("{s:s, s:o, s:b, s:o, s:I}", "user", name,
			      "display", cli_json_str(u->display, 1), "enabled", u->enabled,
			      "max_calls", cli_json_u64(u->max_calls),
			      "registrations", (json_int_t)regs);
		cli_buf_add_json(out, o);
		json_decref(o);
	} else {
		snprintf(max, sizeof max, "%lu", u->max_calls);
		cli_buf_printf(out, "%-20s %-8s %-10s %-14u %s\n", name, u->enabled ? "yes" : "no",
			       u->max_calls ? max : "unlimited", regs,
			       u->display[0] ? u->display : "-");
	}
	walk->count++;
}

/* The records and registration counts of n users: one pipelined round trip. */
static int cli_list_batch(struct cli_redis *r, char **names, size_t n,
			  struct cli_list_walk *walk)
{
	char key[CLI_KEY_MAX];
	const char *hmget[] = { "HMGET", key, "display", "enabled", "max_calls" };
	const char *hvals[] = { "HVALS", key };
	redisReply *user = NULL, *vals = NULL;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		/* hiredis formats each command at once: the key buffer may be reused. */
		cli_user_key(r->srv, "user", names[i], key, sizeof key);
		if (redisAppendCommandArgv(r->c, 5, hmget, NULL) != REDIS_OK)
			return -ENOMEM;
		cli_user_key(r->srv, "loc", names[i], key, sizeof key);
		if (redisAppendCommandArgv(r->c, 2, hvals, NULL) != REDIS_OK)
			return -ENOMEM;
	}
	/* On a failure the rest of the replies are left unread: the connection closes. */
	for (size_t i = 0; i < n && err == 0; i++) {
		struct cli_user u;
		redisReply **f;

		err = cli_redis_next(r, "HMGET", &user);
		if (err == 0)
			err = cli_redis_next(r, "HVALS", &vals);
		if (err == 0 && (user->type != REDIS_REPLY_ARRAY || user->elements != 3 ||
				 vals->type != REDIS_REPLY_ARRAY))
			err = cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: unexpected answer "
				       "to HMGET", r->srv->redis_address);
		f = err == 0 ? user->element : NULL;
		/* A user deleted since the SCAN has nil in every field: not listed. */
		if (f && (f[0]->str || f[1]->str || f[2]->str)) {
			cli_user_fill(&u, f[0]->str, f[1]->str, f[2]->str, NULL);
			cli_list_row(walk, names[i], &u, cli_bindings_count(vals, walk->now_ms));
		}
		if (user)
			freeReplyObject(user);
		if (vals)
			freeReplyObject(vals);
		user = vals = NULL;
	}
	return err < 0 ? err : walk->out->err;
}

int cli_user_list(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		  struct cli_reply *reply)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_LIST_MAX_MS;
	struct cli_list_walk walk = {
		.out = out, .json = req->json, .now_ms = cli_now_ms(CLOCK_REALTIME),
	};
	struct cli_names names = { 0 };
	struct cli_redis r;
	int err;

	err = cli_redis_open(srv, reply, &r);
	if (err == 0)
		err = cli_user_scan(&r, deadline, &names);
	if (err == 0) {
		cli_names_sort_unique(&names);
		if (req->json)
			cli_buf_add(out, "[", 1);
		else
			cli_buf_printf(out, "%-20s %-8s %-10s %-14s %s\n", "USER", "ENABLED",
				       "MAX_CALLS", "REGISTRATIONS", "DISPLAY");
	}
	for (size_t i = 0; err == 0 && i < names.n; i += CLI_LIST_BATCH) {
		size_t n = names.n - i < CLI_LIST_BATCH ? names.n - i : CLI_LIST_BATCH;

		if (cli_now_ms(CLOCK_MONOTONIC) >= deadline)
			err = cli_list_too_slow(&r, walk.count);
		else
			err = cli_list_batch(&r, names.v + i, n, &walk);
	}
	if (err == 0 && req->json)
		cli_buf_add(out, "]\n", 2);
	else if (err == 0)
		cli_buf_printf(out, "%zu user%s\n", walk.count, walk.count == 1 ? "" : "s");
	cli_redis_close(&r);
	cli_names_free(&names);
	return err < 0 ? err : out->err;
}
