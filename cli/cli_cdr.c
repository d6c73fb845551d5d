/*
 * cli_cdr — `cdr tail [N]`: the latest CDRs, oldest first.
 *
 * Design note.  Every worker adds its CDRs to one Redis Stream,
 * <redis_prefix><cdr_stream>; billing systems read it with consumer groups.
 * XREVRANGE reads its tail without disturbing those groups, through the
 * CLI's synchronous connection (cli_redis.c).  The text table shows the
 * fields an operator looks for; JSON gives every field of an entry as a
 * string, as the worker wrote it, plus the entry's stream id.
 */
#include "cli/cli_redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stream's decimal ms field as ISO-8601 UTC; "-" when absent or 0. */
static void cli_iso_field(const redisReply *fields, const char *name, char *out, size_t size)
{
	const char *ms = cli_hash_get(fields, name);

	cli_iso_ms(ms ? strtoull(ms, NULL, 10) : 0, out, size);
}

/* A field of a stream entry for a text column: cleaned, "-" when absent or empty. */
static const char *cli_cdr_text(const redisReply *fields, const char *name, char *buf,
				size_t size)
{
	const char *v = cli_hash_get(fields, name);

	if (!v || !*v)
		return "-";
	cli_clean(buf, size, v, strlen(v) + 1);
	return buf;
}

static void cli_cdr_line(const redisReply *fields, struct cli_buf *out)
{
	char id[64], start[40], caller[SHM_URI_MAX], callee[SHM_URI_MAX];
	char answered[SHM_URI_MAX], disp[24], code[8], billable[32], hangup[16];
	const char *ms = cli_hash_get(fields, "billable_ms");

	cli_iso_field(fields, "start_ms", start, sizeof start);
	snprintf(billable, sizeof billable, "-");
	if (ms && *ms) {
		unsigned long long v = strtoull(ms, NULL, 10);

		snprintf(billable, sizeof billable, "%llu.%03llu", v / 1000, v % 1000);
	}
	cli_buf_printf(out, "%-32s %-24s %-28s %-28s %-28s %-11s %4s %10s %s\n",
		       cli_cdr_text(fields, "id", id, sizeof id), start,
		       cli_cdr_text(fields, "caller", caller, sizeof caller),
		       cli_cdr_text(fields, "callee", callee, sizeof callee),
		       cli_cdr_text(fields, "answered_by", answered, sizeof answered),
		       cli_cdr_text(fields, "disposition", disp, sizeof disp),
		       cli_cdr_text(fields, "sip_code", code, sizeof code), billable,
		       cli_cdr_text(fields, "hangup_by", hangup, sizeof hangup));
}

/* Every field of the entry as a string, and its stream id. */
static json_t *cli_cdr_json(const char *stream_id, const redisReply *fields)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "stream_id", cli_json_str(stream_id, 0)) < 0) {
		json_decref(o);
		return NULL;
	}
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i], *v = fields->element[i + 1];
		char name[64];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		/* A JSON key must be UTF-8: odd bytes become '?' as in values. */
		cli_clean(name, sizeof name, f->str, f->len + 1);
		for (char *p = name; *p; p++) {
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		}
		if (json_object_set_new(o, name, cli_json_str(v->str, 0)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* Is this one XREVRANGE entry: [id, [field, value, ...]]? */
static int cli_cdr_entry_ok(const redisReply *e)
{
	return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
	       e->element[0]->type == REDIS_REPLY_STRING &&
	       e->element[1]->type == REDIS_REPLY_ARRAY;
}

/* The entries of an XREVRANGE reply (newest first), written oldest first. */
static int cli_cdr_answer(const redisReply *rr, int json, struct cli_buf *out)
{
	json_t *arr = json ? json_array() : NULL;

	if (json && !arr)
		return -ENOMEM;
	if (!json)
		cli_buf_printf(out, "%-32s %-24s %-28s %-28s %-28s %-11s %4s %10s %s\n", "ID",
			       "START", "CALLER", "CALLEE", "ANSWERED_BY", "DISPOSITION", "CODE",
			       "BILLABLE_S", "HANGUP_BY");
	for (size_t i = rr->elements; i-- > 0;) {
		const redisReply *e = rr->element[i];

		if (json && json_array_append_new(arr, cli_cdr_json(e->element[0]->str,
								    e->element[1])) < 0)
			out->err = -ENOMEM;
		else if (!json)
			cli_cdr_line(e->element[1], out);
	}
	if (json) {
		cli_buf_add_json(out, arr);
		cli_buf_add(out, "\n", 1);
		json_decref(arr);
	} else {
		cli_buf_printf(out, "%zu CDR%s\n", rr->elements, rr->elements == 1 ? "" : "s");
	}
	return out->err;
}

/* `cdr tail [N]`: XREVRANGE <prefix><cdr_stream> + - COUNT N. */
int cli_cdr_tail(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	unsigned long long n = CLI_CDR_TAIL_DEFAULT;
	char key[CLI_KEY_MAX], count[24];
	const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", count };
	redisReply *rr = NULL;
	struct cli_redis r;
	int err;

	/* N was checked by cli_cmd_check. */
	if (req->n_words > 2 && !cli_proto_number(req->words[2], 1, CLI_CDR_TAIL_MAX, &n))
		return -EINVAL;
	snprintf(key, sizeof key, "%s%s", srv->redis_prefix, srv->cdr_stream);
	snprintf(count, sizeof count, "%llu", n);

	err = cli_redis_open(srv, reply, &r);
	if (err == 0)
		err = cli_redis_cmd(&r, 6, argv, &rr);
	if (err == 0 && rr->type != REDIS_REPLY_ARRAY) {
		err = cli_redis_unexpected(&r, "XREVRANGE", rr);
		rr = NULL;
	}
	for (size_t i = 0; err == 0 && i < rr->elements; i++) {
		if (!cli_cdr_entry_ok(rr->element[i])) {
			err = cli_redis_unexpected(&r, "XREVRANGE", rr);
			rr = NULL;
		}
	}
	cli_redis_close(&r);
	if (err == 0)
		err = cli_cdr_answer(rr, req->json, out);
	if (rr)
		freeReplyObject(rr);
	return err;
}
