/*
 * store_query — what the management side reads: one subscriber with its
 * bindings (user show), every subscriber (user list), the latest CDRs (cdr
 * tail), and the C decoder of a binding.  See store.h; the connection is
 * in store_sync.c.
 *
 * Design note.  Reads hand back plain structs and leave presentation to
 * the CLI: no control character is replaced here, no time is formatted.
 * What the store does decide is what counts as data: a binding that is
 * garbled or expired is not a registration, a key whose suffix the
 * caller's name check refuses is not a subscriber, a user deleted between
 * the SCAN and the read is not listed.  `user list` walks the whole key
 * space, so it is bounded twice: SCAN steps of STORE_SCAN_COUNT keys, and a
 * deadline of STORE_LIST_MAX_MS for the whole walk; the records are read
 * STORE_LIST_BATCH users per pipelined round trip.
 */
#include "store/store_sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b2bua/mono.h"
#include "shm/shm.h"

/* ------------------------------------------------------------ bindings */

/* Milliseconds (or another number) as the REGISTER script's cjson wrote it:
 * integer or real. */
static int64_t store_json_int(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

/* A string member of a binding, copied; "" when absent. */
static char *store_json_strdup(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return strdup(s ? s : "");
}

/* Parse JSON that may hold bytes that are not UTF-8: such bytes become '?'. */
static json_t *store_json_load(const char *json, size_t len)
{
	json_t *obj = json_loadb(json, len, 0, NULL);
	char *copy;

	if (!obj && (copy = malloc(len ? len : 1)) != NULL) {
		for (size_t i = 0; i < len; i++)
			copy[i] = (unsigned char)json[i] >= 0x80 ? '?' : json[i];
		obj = json_loadb(copy, len, 0, NULL);
		free(copy);
	}
	return obj;
}

void store_binding_clear(struct store_binding *b)
{
	free(b->contact);
	free(b->call_id);
	free(b->source);
	free(b->transport);
	free(b->user_agent);
	free(b->host);
	memset(b, 0, sizeof *b);
}

int store_binding_decode(const char *contact, const char *json, size_t len, uint64_t now_ms,
			 struct store_binding *out)
{
	json_t *obj = store_json_load(json, len);
	int ret = 0;

	memset(out, 0, sizeof *out);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return -EBADMSG;
	}
	out->expires_ms = store_json_int(json_object_get(obj, "expires"));
	if (out->expires_ms <= (int64_t)now_ms) {
		json_decref(obj);
		return -ESTALE;
	}
	out->registered_ms = store_json_int(json_object_get(obj, "registered"));
	out->cseq = store_json_int(json_object_get(obj, "cseq"));
	out->worker = store_json_int(json_object_get(obj, "worker"));
	out->contact = strdup(contact);
	out->call_id = store_json_strdup(obj, "call_id");
	out->source = store_json_strdup(obj, "source");
	out->transport = store_json_strdup(obj, "transport");
	out->user_agent = store_json_strdup(obj, "user_agent");
	out->host = store_json_strdup(obj, "host");
	if (!out->contact || !out->call_id || !out->source || !out->transport ||
	    !out->user_agent || !out->host) {
		store_binding_clear(out);
		ret = -ENOMEM;
	}
	json_decref(obj);
	return ret;
}

/* Newest registration first; the contact decides between equals. */
static int store_binding_cmp(const void *a, const void *b)
{
	const struct store_binding *x = a, *y = b;

	if (x->registered_ms != y->registered_ms)
		return x->registered_ms > y->registered_ms ? -1 : 1;
	return strcmp(x->contact, y->contact);
}

void store_bindings_free(struct store_binding *bindings, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_binding_clear(&bindings[i]);
	free(bindings);
}

/* The unexpired bindings of a location hash (HGETALL reply), sorted. */
static int store_bindings_load(const redisReply *loc, uint64_t now_ms,
			       struct store_binding **out, size_t *n)
{
	struct store_binding *b = calloc(loc->elements / 2 + 1, sizeof *b);
	size_t count = 0;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < loc->elements; i += 2) {
		const redisReply *f = loc->element[i], *v = loc->element[i + 1];
		int ret;

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		ret = store_binding_decode(f->str, v->str, v->len, now_ms, &b[count]);
		if (ret == -ENOMEM) {
			store_bindings_free(b, count);
			return ret;
		}
		count += ret == 0;
	}
	qsort(b, count, sizeof *b, store_binding_cmp);
	*out = b;
	*n = count;
	return 0;
}

/* How many values of an HVALS reply are unexpired bindings. */
static unsigned store_bindings_count(const redisReply *vals, uint64_t now_ms)
{
	struct store_binding b;
	unsigned n = 0;

	for (size_t i = 0; i < vals->elements; i++) {
		const redisReply *v = vals->element[i];

		if (v->type != REDIS_REPLY_STRING)
			continue;
		if (store_binding_decode("", v->str, v->len, now_ms, &b) == 0) {
			n++;
			store_binding_clear(&b);
		}
	}
	return n;
}

/* ------------------------------------------------------------ user show */

/* The value of `field` in the [field, value, ...] reply of HGETALL, or NULL. */
static const char *store_hash_get(const redisReply *hash, const char *field)
{
	for (size_t i = 0; i + 1 < hash->elements; i += 2) {
		const redisReply *f = hash->element[i], *v = hash->element[i + 1];

		if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    strcmp(f->str, field) == 0)
			return v->str;
	}
	return NULL;
}

/* A stored text into a record field; longer than STORE_TEXT_MAX is cut. */
static void store_text_copy(char dst[STORE_TEXT_MAX + 1], const char *src)
{
	snprintf(dst, STORE_TEXT_MAX + 1, "%s", src ? src : "");
}

/* The record from its strings (any of them NULL when absent). */
static void store_user_fill(struct store_user *u, const char *display, const char *enabled,
			    const char *max_calls, const char *created_ms)
{
	memset(u, 0, sizeof *u);
	store_text_copy(u->display, display);
	u->enabled = enabled && strcmp(enabled, "1") == 0;
	u->max_calls = max_calls ? strtoul(max_calls, NULL, 10) : 0;
	u->created_ms = created_ms ? strtoull(created_ms, NULL, 10) : 0;
}

/* The whole record from the user hash (HGETALL reply). */
static void store_user_from_hash(struct store_user *u, const redisReply *user)
{
	const char *timeout = store_hash_get(user, "fwd_noanswer_timeout");

	store_user_fill(u, store_hash_get(user, "display"), store_hash_get(user, "enabled"),
			store_hash_get(user, "max_calls"), store_hash_get(user, "created_ms"));
	store_text_copy(u->fwd_always, store_hash_get(user, "fwd_always"));
	store_text_copy(u->fwd_busy, store_hash_get(user, "fwd_busy"));
	store_text_copy(u->fwd_noanswer, store_hash_get(user, "fwd_noanswer"));
	u->fwd_noanswer_timeout = timeout ? strtoul(timeout, NULL, 10) : 0;
}

/* HGETALL of the user and of its location hash, in one round trip. */
static int store_user_read(store_sync_t *s, const char *name, redisReply **user,
			   redisReply **loc, struct store_error *err)
{
	char ukey[STORE_KEY_MAX], lkey[STORE_KEY_MAX];
	const char *get_user[] = { "HGETALL", ukey }, *get_loc[] = { "HGETALL", lkey };
	struct store_conn conn;
	int ret;

	if (store_key(s->prefix, STORE_KEY_USER, name, ukey, sizeof ukey) < 0 ||
	    store_key(s->prefix, STORE_KEY_LOCATION, name, lkey, sizeof lkey) < 0)
		return store_fail(err, -ENAMETOOLONG, "user name too long for a key: %.80s",
				  name);
	ret = store_conn_open(s, err, &conn);
	if (ret == 0 && (redisAppendCommandArgv(conn.c, 2, get_user, NULL) != REDIS_OK ||
			 redisAppendCommandArgv(conn.c, 2, get_loc, NULL) != REDIS_OK))
		ret = store_fail(err, -ENOMEM, "out of memory");
	if (ret == 0)
		ret = store_conn_next(&conn, "HGETALL", user);
	if (ret == 0)
		ret = store_conn_next(&conn, "HGETALL", loc);
	if (ret == 0 && ((*user)->type != REDIS_REPLY_ARRAY || (*loc)->type != REDIS_REPLY_ARRAY))
		ret = store_fail(err, -EBADMSG, "redis %s: unexpected answer to HGETALL",
				 conn.address);
	store_conn_close(&conn);
	return ret;
}

int store_user_show(store_sync_t *s, const char *name, struct store_user *user,
		    struct store_binding **bindings, size_t *n, struct store_error *err)
{
	redisReply *u = NULL, *loc = NULL;
	int ret = store_user_read(s, name, &u, &loc, err);

	if (ret == 0 && u->elements == 0)
		ret = store_fail(err, -ENOENT, "no such user %s", name);
	if (ret == 0) {
		store_user_from_hash(user, u);
		ret = store_bindings_load(loc, shm_now_ms(), bindings, n);
		if (ret < 0)
			store_fail(err, ret, "out of memory");
	}
	if (u)
		freeReplyObject(u);
	if (loc)
		freeReplyObject(loc);
	return ret;
}

/* ------------------------------------------------------------ user list */

/* The rows being collected. */
struct store_rows {
	struct store_user_row *v;
	size_t n;
	size_t cap;
};

static struct store_user_row *store_rows_add(struct store_rows *rows)
{
	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 64;
		struct store_user_row *v = realloc(rows->v, cap * sizeof *v);

		if (!v)
			return NULL;
		rows->v = v;
		rows->cap = cap;
	}
	memset(&rows->v[rows->n], 0, sizeof rows->v[rows->n]);
	return &rows->v[rows->n++];
}

static int store_row_cmp(const void *a, const void *b)
{
	const struct store_user_row *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Sort, and drop the duplicates SCAN may return while Redis rehashes. */
static void store_rows_sort_unique(struct store_rows *rows)
{
	size_t kept = 0;

	if (rows->n == 0)
		return;   /* rows->v is NULL: qsort may not be given it (UBSan) */
	qsort(rows->v, rows->n, sizeof *rows->v, store_row_cmp);
	for (size_t i = 0; i < rows->n; i++) {
		if (kept == 0 || strcmp(rows->v[kept - 1].name, rows->v[i].name) != 0)
			rows->v[kept++] = rows->v[i];
	}
	rows->n = kept;
}

/* prefix + "user:*" with the prefix's glob characters escaped. */
static void store_user_pattern(const char *prefix, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = prefix; *p && n + 2 < size; p++) {
		if (strchr("*?[]\\", *p))
			out[n++] = '\\';
		out[n++] = *p;
	}
	snprintf(out + n, size - n, "user:*");
}

static int store_list_too_slow(struct store_conn *conn, size_t users)
{
	return store_fail(conn->err, -ETIMEDOUT, "redis %s: user list did not finish "
			  "within %d ms (%zu users read)", conn->address, STORE_LIST_MAX_MS,
			  users);
}

/* The names of one SCAN step's keys that are subscribers, as new rows. */
static int store_scan_keys(const redisReply *keys, size_t skip, store_name_ok_f *name_ok,
			   struct store_rows *names)
{
	for (size_t i = 0; i < keys->elements; i++) {
		const redisReply *k = keys->element[i];
		struct store_user_row *row;

		/* Only our own shape of key: "user:a:b" is nobody's name. */
		if (k->type != REDIS_REPLY_STRING || k->len <= skip ||
		    k->len - skip >= sizeof row->name || !name_ok(k->str + skip))
			continue;
		row = store_rows_add(names);
		if (!row)
			return -ENOMEM;
		memcpy(row->name, k->str + skip, k->len - skip + 1);
	}
	return 0;
}

/* Every user name, by SCAN in steps of STORE_SCAN_COUNT keys, until `deadline`. */
static int store_user_scan(struct store_conn *conn, uint64_t deadline, store_name_ok_f *name_ok,
			   struct store_rows *names)
{
	size_t skip = strlen(conn->s->prefix) + strlen("user:");
	char pattern[2 * STORE_KEY_MAX], cursor[32] = "0";
	const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", STORE_SCAN_COUNT };
	redisReply *rr = NULL;
	int ret;

	store_user_pattern(conn->s->prefix, pattern, sizeof pattern);
	do {
		if (mono_ms() >= deadline)
			return store_list_too_slow(conn, names->n);
		ret = store_conn_cmd(conn, 6, argv, &rr);
		if (ret < 0)
			return ret;
		if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2 ||
		    rr->element[0]->type != REDIS_REPLY_STRING ||
		    rr->element[1]->type != REDIS_REPLY_ARRAY)
			return store_conn_unexpected(conn, "SCAN", rr);
		snprintf(cursor, sizeof cursor, "%s", rr->element[0]->str);
		ret = store_scan_keys(rr->element[1], skip, name_ok, names);
		freeReplyObject(rr);
		if (ret < 0)
			return store_fail(conn->err, ret, "out of memory");
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

/* One user's HMGET and HVALS replies into *row; 0 when it is gone (not listed). */
static int store_list_row(const redisReply *user, const redisReply *vals, uint64_t now_ms,
			  struct store_user_row *row)
{
	redisReply **f = user->element;
	struct store_user u;

	/* A user deleted since the SCAN has nil in every field. */
	if (!f[0]->str && !f[1]->str && !f[2]->str)
		return 0;
	store_user_fill(&u, f[0]->str, f[1]->str, f[2]->str, NULL);
	memcpy(row->display, u.display, sizeof row->display);
	row->enabled = u.enabled;
	row->max_calls = u.max_calls;
	row->registrations = store_bindings_count(vals, now_ms);
	return 1;
}

/*
 * The records and registration counts of names[0..n): one pipelined round
 * trip.  The rows of users still there are moved to `out` in order.
 */
static int store_list_batch(struct store_conn *conn, const struct store_user_row *names,
			    size_t n, uint64_t now_ms, struct store_rows *out)
{
	char key[STORE_KEY_MAX];
	const char *hmget[] = { "HMGET", key, "display", "enabled", "max_calls" };
	const char *hvals[] = { "HVALS", key };
	redisReply *user = NULL, *vals = NULL;
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		/* hiredis formats each command at once: the key buffer may be reused. */
		store_key(conn->s->prefix, STORE_KEY_USER, names[i].name, key, sizeof key);
		if (redisAppendCommandArgv(conn->c, 5, hmget, NULL) != REDIS_OK)
			return store_fail(conn->err, -ENOMEM, "out of memory");
		store_key(conn->s->prefix, STORE_KEY_LOCATION, names[i].name, key, sizeof key);
		if (redisAppendCommandArgv(conn->c, 2, hvals, NULL) != REDIS_OK)
			return store_fail(conn->err, -ENOMEM, "out of memory");
	}
	/* On a failure the rest of the replies are left unread: the connection closes. */
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct store_user_row row = names[i], *slot;

		ret = store_conn_next(conn, "HMGET", &user);
		if (ret == 0)
			ret = store_conn_next(conn, "HVALS", &vals);
		if (ret == 0 && (user->type != REDIS_REPLY_ARRAY || user->elements != 3 ||
				 vals->type != REDIS_REPLY_ARRAY))
			ret = store_fail(conn->err, -EBADMSG, "redis %s: unexpected answer to "
					 "HMGET", conn->address);
		if (ret == 0 && store_list_row(user, vals, now_ms, &row)) {
			slot = store_rows_add(out);
			if (slot)
				*slot = row;
			else
				ret = store_fail(conn->err, -ENOMEM, "out of memory");
		}
		if (user)
			freeReplyObject(user);
		if (vals)
			freeReplyObject(vals);
		user = vals = NULL;
	}
	return ret;
}

int store_user_list(store_sync_t *s, store_name_ok_f *name_ok, struct store_user_row **rows,
		    size_t *n, struct store_error *err)
{
	uint64_t deadline = mono_ms() + STORE_LIST_MAX_MS;
	uint64_t now_ms = shm_now_ms();
	struct store_rows names = { 0 }, out = { 0 };
	struct store_conn conn;
	int ret;

	ret = store_conn_open(s, err, &conn);
	if (ret == 0)
		ret = store_user_scan(&conn, deadline, name_ok, &names);
	if (ret == 0)
		store_rows_sort_unique(&names);
	for (size_t i = 0; ret == 0 && i < names.n; i += STORE_LIST_BATCH) {
		size_t k = names.n - i < STORE_LIST_BATCH ? names.n - i : STORE_LIST_BATCH;

		if (mono_ms() >= deadline)
			ret = store_list_too_slow(&conn, out.n);
		else
			ret = store_list_batch(&conn, names.v + i, k, now_ms, &out);
	}
	store_conn_close(&conn);
	free(names.v);
	if (ret < 0) {
		free(out.v);
		return ret;
	}
	*rows = out.v;
	*n = out.n;
	return 0;
}

/* ------------------------------------------------------------ cdr tail */

const char *store_cdr_field(const struct store_cdr_entry *e, const char *name)
{
	for (size_t i = 0; i < e->n_fields; i++)
		if (strcmp(e->fields[i].name, name) == 0)
			return e->fields[i].value;
	return NULL;
}

void store_cdr_entries_free(struct store_cdr_entry *entries, size_t n)
{
	for (size_t i = 0; entries && i < n; i++) {
		for (size_t j = 0; j < entries[i].n_fields; j++) {
			free(entries[i].fields[j].name);
			free(entries[i].fields[j].value);
		}
		free(entries[i].fields);
		free(entries[i].stream_id);
	}
	free(entries);
}

/* Is this one XREVRANGE entry: [id, [field, value, ...]]? */
static int store_cdr_entry_ok(const redisReply *e)
{
	return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
	       e->element[0]->type == REDIS_REPLY_STRING &&
	       e->element[1]->type == REDIS_REPLY_ARRAY;
}

/* One entry's id and its string field/value pairs, copied. */
static int store_cdr_entry_copy(const redisReply *e, struct store_cdr_entry *out)
{
	const redisReply *fields = e->element[1];

	out->stream_id = strdup(e->element[0]->str);
	out->fields = calloc(fields->elements / 2 + 1, sizeof *out->fields);
	if (!out->stream_id || !out->fields)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i], *v = fields->element[i + 1];
		struct store_cdr_field *dst = &out->fields[out->n_fields];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		dst->name = strdup(f->str);
		dst->value = strdup(v->str);
		out->n_fields++;
		if (!dst->name || !dst->value)
			return -ENOMEM;
	}
	return 0;
}

/* The entries of an XREVRANGE reply (newest first), copied oldest first. */
static int store_cdr_copy(const redisReply *rr, struct store_cdr_entry **entries, size_t *n)
{
	struct store_cdr_entry *e = calloc(rr->elements + 1, sizeof *e);

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < rr->elements; i++) {
		if (store_cdr_entry_copy(rr->element[rr->elements - 1 - i], &e[i]) < 0) {
			store_cdr_entries_free(e, i + 1);
			return -ENOMEM;
		}
	}
	*entries = e;
	*n = rr->elements;
	return 0;
}

int store_cdr_tail(store_sync_t *s, unsigned count, struct store_cdr_entry **entries,
		   size_t *n, struct store_error *err)
{
	char key[STORE_KEY_MAX], num[24];
	const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", num };
	redisReply *rr = NULL;
	struct store_conn conn;
	int ret;

	if (store_cdr_stream_key(s->prefix, s->cdr_stream, key, sizeof key) < 0)
		return store_fail(err, -ENAMETOOLONG, "cdr_stream too long for a key");
	snprintf(num, sizeof num, "%u", count);
	ret = store_conn_open(s, err, &conn);
	if (ret == 0)
		ret = store_conn_cmd(&conn, 6, argv, &rr);
	if (ret == 0 && rr->type != REDIS_REPLY_ARRAY) {
		ret = store_conn_unexpected(&conn, "XREVRANGE", rr);
		rr = NULL;
	}
	for (size_t i = 0; ret == 0 && i < rr->elements; i++) {
		if (!store_cdr_entry_ok(rr->element[i])) {
			ret = store_conn_unexpected(&conn, "XREVRANGE", rr);
			rr = NULL;
		}
	}
	store_conn_close(&conn);
	if (ret == 0 && store_cdr_copy(rr, entries, n) < 0)
		ret = store_fail(err, -ENOMEM, "out of memory");
	if (rr)
		freeReplyObject(rr);
	return ret;
}
