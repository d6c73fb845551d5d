/*
 * cli_reload — `b2bua-cli reload`: the same as SIGHUP (b2bua/master.c).
 *
 * Design note.  Only the master reloads: the management process sends it a
 * CTL_RELOAD request and waits for the answer, which comes once every
 * child has taken the new configuration (or at most 2 s later).  The
 * answer's text is lines of key names (b2bua/config_reload.h):
 *
 *   applied KEY...              changed and in force in every process
 *   restart_needed KEY...       changed, kept at the running value
 *   not_acknowledged WHO, ...   (only when some did not answer in time)
 *   refused WHO (why), ...      (only when some could not take it)
 *
 * A bad file is an error answer ("file:line: key: why: nothing changed").
 * This file turns those lines into the CLI's text or JSON, and a reload
 * that some process did not take into an error (status 1) that names it.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "b2bua/ctl.h"

/* The rest of the answer's line that starts with `name` and a space or its
 * end ("" when the list is empty), or NULL when there is no such line;
 * its length in *len. */
static const char *cli_reload_line(const char *text, const char *name, size_t *len)
{
	size_t n = strlen(name);

	for (const char *p = text; *p; ) {
		const char *end = strchr(p, '\n');
		size_t line = end ? (size_t)(end - p) : strlen(p);

		if (line >= n && strncmp(p, name, n) == 0 && (line == n || p[n] == ' ')) {
			*len = line == n ? 0 : line - n - 1;
			return line == n ? p + n : p + n + 1;
		}
		p += line + (end != NULL);
	}
	return NULL;
}

/* The keys of line `name` as a JSON array of strings. */
static json_t *cli_reload_json_keys(const char *text, const char *name)
{
	json_t *arr = json_array();
	size_t len = 0;
	const char *p = cli_reload_line(text, name, &len);
	char keys[CTL_TEXT_MAX], *save = NULL;

	if (arr == NULL || p == NULL)
		return arr;
	snprintf(keys, sizeof keys, "%.*s", (int)len, p);
	for (char *k = strtok_r(keys, " ", &save); k; k = strtok_r(NULL, " ", &save))
		json_array_append_new(arr, cli_json_str(k, 0));
	return arr;
}

/* Text: "applied: KEY...\nrestart_needed: KEY...\n" ("none" for an empty list). */
static void cli_reload_text(const char *text, const char *name, struct cli_buf *out)
{
	size_t len = 0;
	const char *p = cli_reload_line(text, name, &len);

	cli_buf_printf(out, "%s: %.*s\n", name, len ? (int)len : 4, len ? p : "none");
}

static int cli_reload_answer(const char *text, int json, struct cli_buf *out)
{
	json_t *o;

	if (!json) {
		cli_reload_text(text, "applied", out);
		cli_reload_text(text, "restart_needed", out);
		return out->err;
	}
	o = json_object();
	if (o != NULL) {
		json_object_set_new(o, "applied", cli_reload_json_keys(text, "applied"));
		json_object_set_new(o, "restart_needed",
				    cli_reload_json_keys(text, "restart_needed"));
	}
	cli_buf_add_json(out, o);
	json_decref(o);
	return out->err;
}

/* Some process did not take it: status 1, naming who and what is in force. */
static int cli_reload_partial(const char *text, struct cli_reply *reply)
{
	size_t alen = 0, llen = 0, rlen = 0;
	const char *applied = cli_reload_line(text, "applied", &alen);
	const char *late = cli_reload_line(text, "not_acknowledged", &llen);
	const char *refused = cli_reload_line(text, "refused", &rlen);

	return cli_fail(reply, CLI_STATUS_ERROR, "reload: in force in the master (applied: "
			"%.*s); not acknowledged within 2 s: %.*s; refused: %.*s",
			alen ? (int)alen : 4, alen ? applied : "none",
			llen ? (int)llen : 4, llen ? late : "none",
			rlen ? (int)rlen : 4, rlen ? refused : "none");
}

int cli_reload(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
	       struct cli_reply *reply)
{
	struct ctl_msg msg, answer;
	const char *text;
	size_t len;
	int err;

	if (!srv->ctl_request)
		return cli_fail(reply, CLI_STATUS_ERROR, "reload is not available: this "
				"daemon has no channel to its master");
	ctl_init(&msg, CTL_RELOAD, CTL_MGMT, CTL_MASTER, 0);
	err = srv->ctl_request(srv->ctl_request_arg, &msg, &answer);
	if (err == -ETIMEDOUT)
		return cli_fail(reply, CLI_STATUS_ERROR, "the master did not answer the reload");
	if (err < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "cannot reach the master: %s",
				strerror(-err));
	text = answer.u.reply.text;
	if (answer.u.reply.status < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "%.380s",
				text[0] ? text : strerror(-answer.u.reply.status));
	if (cli_reload_line(text, "not_acknowledged", &len) ||
	    cli_reload_line(text, "refused", &len))
		return cli_reload_partial(text, reply);
	return cli_reload_answer(text, req->json, out);
}
