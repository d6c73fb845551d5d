/*
 * cli_cdr — `cdr tail [N]`: the latest CDRs, oldest first.
 *
 * Design note.  Every worker adds its CDRs to one Redis Stream; billing
 * systems read it with consumer groups.  The store reads its tail
 * (store_cdr_tail, store/store.h) without disturbing those groups; this
 * file only presents it.  The text table shows the fields an operator
 * looks for; JSON gives every field of an entry as a string, as the worker
 * wrote it, plus the entry's stream id.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stream's decimal ms field as ISO-8601 UTC; "-" when absent or 0. */
static void cli_iso_field(const struct store_cdr_entry *e, const char *name, char *out,
			  size_t size)
{
	const char *ms = store_cdr_field(e, name);

	cli_iso_ms(ms ? strtoull(ms, NULL, 10) : 0, out, size);
}

/* A field of a stream entry for a text column: cleaned, "-" when absent or empty. */
static const char *cli_cdr_text(const struct store_cdr_entry *e, const char *name, char *buf,
				size_t size)
{
	const char *v = store_cdr_field(e, name);

	if (!v || !*v)
		return "-";
	cli_clean(buf, size, v, strlen(v) + 1);
	return buf;
}

static void cli_cdr_line(const struct store_cdr_entry *e, struct cli_buf *out)
{
	char id[64], start[40], caller[SHM_URI_MAX], callee[SHM_URI_MAX];
	char answered[SHM_URI_MAX], disp[24], code[8], billable[32], hangup[16];
	const char *ms = store_cdr_field(e, "billable_ms");

	cli_iso_field(e, "start_ms", start, sizeof start);
	snprintf(billable, sizeof billable, "-");
	if (ms && *ms) {
		unsigned long long v = strtoull(ms, NULL, 10);

		snprintf(billable, sizeof billable, "%llu.%03llu", v / 1000, v % 1000);
	}
	cli_buf_printf(out, "%-32s %-24s %-28s %-28s %-28s %-11s %4s %10s %s\n",
		       cli_cdr_text(e, "id", id, sizeof id), start,
		       cli_cdr_text(e, "caller", caller, sizeof caller),
		       cli_cdr_text(e, "callee", callee, sizeof callee),
		       cli_cdr_text(e, "answered_by", answered, sizeof answered),
		       cli_cdr_text(e, "disposition", disp, sizeof disp),
		       cli_cdr_text(e, "sip_code", code, sizeof code), billable,
		       cli_cdr_text(e, "hangup_by", hangup, sizeof hangup));
}

/* Every field of the entry as a string, and its stream id. */
static json_t *cli_cdr_json(const struct store_cdr_entry *e)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "stream_id", cli_json_str(e->stream_id, 0)) < 0) {
		json_decref(o);
		return NULL;
	}
	for (size_t i = 0; i < e->n_fields; i++) {
		const struct store_cdr_field *f = &e->fields[i];
		char name[64];

		/* A JSON key must be UTF-8: odd bytes become '?' as in values. */
		cli_clean(name, sizeof name, f->name, strlen(f->name) + 1);
		for (char *p = name; *p; p++) {
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		}
		if (json_object_set_new(o, name, cli_json_str(f->value, 0)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* The entries, oldest first, as a table or a JSON array. */
static int cli_cdr_answer(const struct store_cdr_entry *e, size_t n, int json,
			  struct cli_buf *out)
{
	json_t *arr = json ? json_array() : NULL;

	if (json && !arr)
		return -ENOMEM;
	if (!json)
		cli_buf_printf(out, "%-32s %-24s %-28s %-28s %-28s %-11s %4s %10s %s\n", "ID",
			       "START", "CALLER", "CALLEE", "ANSWERED_BY", "DISPOSITION", "CODE",
			       "BILLABLE_S", "HANGUP_BY");
	for (size_t i = 0; i < n; i++) {
		if (json && json_array_append_new(arr, cli_cdr_json(&e[i])) < 0)
			out->err = -ENOMEM;
		else if (!json)
			cli_cdr_line(&e[i], out);
	}
	if (json) {
		cli_buf_add_json(out, arr);
		cli_buf_add(out, "\n", 1);
		json_decref(arr);
	} else {
		cli_buf_printf(out, "%zu CDR%s\n", n, n == 1 ? "" : "s");
	}
	return out->err;
}

/* `cdr tail [N]`: the store reads the stream's last N entries. */
int cli_cdr_tail(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	unsigned long long n = CLI_CDR_TAIL_DEFAULT;
	struct store_cdr_entry *entries = NULL;
	struct store_error err;
	size_t count = 0;
	int ret;

	/* N was checked by cli_cmd_check. */
	if (req->n_words > 2 && !cli_proto_number(req->words[2], 1, CLI_CDR_TAIL_MAX, &n))
		return -EINVAL;
	if (store_cdr_tail(srv->store, (unsigned)n, &entries, &count, &err) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "%s", err.text);
	ret = cli_cdr_answer(entries, count, req->json, out);
	store_cdr_entries_free(entries, count);
	return ret;
}
