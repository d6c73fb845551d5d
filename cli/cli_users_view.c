/*
 * cli_users_view — the `user` commands that read: show and list.
 *
 * Design note.  A subscriber is its record and its bindings in Redis, and
 * only store/ knows how they are kept (store/store.h, its synchronous side,
 * docs/redis-schema.md).  The store reads them, leaves out what is no
 * registration (expired or garbled bindings) or no subscriber, and bounds
 * `user list` in time whatever the number of users; this file only
 * presents what it hands back, as text or JSON.  Every string from Redis is
 * cleaned before it goes into a text line (a User-Agent can hold any
 * bytes); JSON escapes them anyway.  A store failure is the command's
 * status-1 answer, worded by the store.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replace the control characters of a record's text in place (cli_clean
 * copies byte for byte to the same index, so source and target may be one). */
static void cli_text_clean(char *text, size_t size)
{
	cli_clean(text, size, text, size);
}

/* A subscriber record as `user show` and `user list` present it. */
static void cli_user_clean(struct store_user *u)
{
	cli_text_clean(u->display, sizeof u->display);
	cli_text_clean(u->fwd_always, sizeof u->fwd_always);
	cli_text_clean(u->fwd_busy, sizeof u->fwd_busy);
	cli_text_clean(u->fwd_noanswer, sizeof u->fwd_noanswer);
}

/* Seconds a binding has left; 0 when it expired since the store read it. */
static uint64_t cli_expires_in_s(const struct store_binding *b, uint64_t now_ms)
{
	return b->expires_ms > (int64_t)now_ms ? (uint64_t)(b->expires_ms - (int64_t)now_ms) / 1000
					       : 0;
}

/* ------------------------------------------------------------ user show */

static json_t *cli_binding_json(const struct store_binding *b, uint64_t now_ms)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:o, s:I, s:o}",
		"contact", cli_json_str(b->contact, 0),
		"source", cli_json_str(b->source, 1),
		"transport", cli_json_str(b->transport, 1),
		"expires_in_s", cli_json_u64(cli_expires_in_s(b, now_ms)),
		"expires_ms", (json_int_t)b->expires_ms,
		"registered_ms", (json_int_t)b->registered_ms,
		"user_agent", cli_json_str(b->user_agent, 1),
		"call_id", cli_json_str(b->call_id, 1),
		"cseq", (json_int_t)b->cseq,
		"host", cli_json_str(b->host, 1),
		"worker", (json_int_t)b->worker,
		"host_address", cli_json_str(b->host_address, 1));
}

static int cli_show_json(const char *name, const struct store_user *u,
			 const struct store_binding *b, size_t n, uint64_t now_ms,
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

/* One field of a binding for a text line: control characters replaced, "-" when empty. */
static const char *cli_binding_text(const char *s, char *buf, size_t size)
{
	cli_clean(buf, size, s, strlen(s) + 1);
	return *buf ? buf : "-";
}

/* The forwarding lines of `user show`; `default_timeout` is the config's (0: unknown). */
static void cli_show_forward_text(const struct store_user *u, int default_timeout,
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

static int cli_show_text(const char *name, const struct store_user *u, int default_timeout,
			 const struct store_binding *b, size_t n, uint64_t now_ms,
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
			       cli_binding_text(b[i].source, src, sizeof src),
			       cli_binding_text(b[i].transport, tp, sizeof tp),
			       cli_expires_in_s(&b[i], now_ms),
			       cli_binding_text(b[i].user_agent, ua, sizeof ua),
			       cli_binding_text(b[i].host, host, sizeof host), b[i].worker);
	}
	return out->err;
}

int cli_user_show(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		  struct cli_reply *reply)
{
	const char *name = req->words[2];
	struct store_binding *b = NULL;
	struct store_error err;
	struct store_user u;
	uint64_t now;
	size_t n = 0;
	int ret;

	if (store_user_show(srv->store, name, &u, &b, &n, &err) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "%s", err.text);
	cli_user_clean(&u);
	now = cli_now_ms(CLOCK_REALTIME);
	if (req->json)
		ret = cli_show_json(name, &u, b, n, now, out);
	else
		ret = cli_show_text(name, &u, srv->no_answer_timeout, b, n, now, out);
	store_bindings_free(b, n);
	return ret;
}

/* ------------------------------------------------------------ user list */

/* One line or JSON object of `user list` (JSON: `first` has no separator before it). */
static void cli_list_row(const struct store_user_row *row, int json, int first,
			 struct cli_buf *out)
{
	char max[16], display[sizeof row->display];
	json_t *o;

	cli_clean(display, sizeof display, row->display, sizeof row->display);
	if (json) {
		cli_buf_add(out, first ? "" : ",\n", first ? 0 : 2);
		o = json_pack("{s:s, s:o, s:b, s:o, s:I}", "user", row->name,
			      "display", cli_json_str(display, 1), "enabled", row->enabled,
			      "max_calls", cli_json_u64(row->max_calls),
			      "registrations", (json_int_t)row->registrations);
		cli_buf_add_json(out, o);
		json_decref(o);
	} else {
		snprintf(max, sizeof max, "%lu", row->max_calls);
		cli_buf_printf(out, "%-20s %-8s %-10s %-14u %s\n", row->name,
			       row->enabled ? "yes" : "no", row->max_calls ? max : "unlimited",
			       row->registrations, display[0] ? display : "-");
	}
}

/* Every subscriber, by name: a table with a count, or a JSON array. */
int cli_user_list(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		  struct cli_reply *reply)
{
	struct store_user_row *rows = NULL;
	struct store_error err;
	size_t n = 0;

	/* Keys whose suffix is no valid NAME are not subscribers. */
	if (store_user_list(srv->store, cli_proto_name_ok, &rows, &n, &err) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "%s", err.text);
	if (req->json)
		cli_buf_add(out, "[", 1);
	else
		cli_buf_printf(out, "%-20s %-8s %-10s %-14s %s\n", "USER", "ENABLED",
			       "MAX_CALLS", "REGISTRATIONS", "DISPLAY");
	for (size_t i = 0; i < n; i++)
		cli_list_row(&rows[i], req->json, i == 0, out);
	if (req->json)
		cli_buf_add(out, "]\n", 2);
	else
		cli_buf_printf(out, "%zu user%s\n", n, n == 1 ? "" : "s");
	free(rows);
	return out->err;
}
