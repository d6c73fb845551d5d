/*
 * cli_users — the `user` commands that change a subscriber: add, passwd,
 * del, enable, disable, forward (show and list: cli_users_view.c).
 *
 * Design note.  Subscribers live in Redis, and only store/ knows how
 * (store/store.h, its synchronous side, docs/redis-schema.md): each handler
 * here turns its checked operands and options (cli_cmd_check ran before it)
 * into one store_* call, then logs the change and writes the one-line
 * answer.  A store failure is the command's status-1 answer, worded by the
 * store ("no such user bob", "redis <address>: <reason>").  The password
 * goes to the store, which keeps only its two HA1 values; it is neither
 * stored nor logged, and the request line that carried it is wiped after
 * use (cli_server.c).
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdlib.h>

/* A store failure as the command's answer. */
static int cli_store_fail(struct cli_reply *reply, const struct store_error *err)
{
	return cli_fail(reply, CLI_STATUS_ERROR, "%s", err->text);
}

/* --max-calls N (0 when absent; its range was checked). */
static unsigned long cli_user_max_calls(const struct cli_cmd_args *req)
{
	const char *m = cli_cmd_value(req, CLI_OPT_MAX_CALLS);

	return m ? strtoul(m, NULL, 10) : 0;
}

/* ------------------------------------------------------------ changes */

int cli_user_add(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	const char *name = req->words[2];
	struct store_error err;

	if (store_user_add(srv->store, name, cli_cmd_value(req, CLI_OPT_PASSWORD),
			   cli_cmd_value(req, CLI_OPT_DISPLAY), cli_user_max_calls(req),
			   &err) < 0)
		return cli_store_fail(reply, &err);
	log_info("cli: user %s added", name);
	cli_buf_printf(out, "user %s added\n", name);
	return out->err;
}

int cli_user_passwd(cli_server_t *srv, const struct cli_cmd_args *req,
		    struct cli_buf *out, struct cli_reply *reply)
{
	const char *name = req->words[2];
	struct store_error err;

	if (store_user_passwd(srv->store, name, cli_cmd_value(req, CLI_OPT_PASSWORD), &err) < 0)
		return cli_store_fail(reply, &err);
	log_info("cli: user %s: password changed", name);
	cli_buf_printf(out, "user %s password changed\n", name);
	return out->err;
}

/* `user set NAME [--display TEXT] [--max-calls N]`: the given fields only. */
int cli_user_set(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	const char *name = req->words[2];
	const char *display = cli_cmd_value(req, CLI_OPT_DISPLAY);
	unsigned long max_calls = cli_user_max_calls(req);
	int limit = cli_cmd_value(req, CLI_OPT_MAX_CALLS) != NULL;
	struct store_error err;

	if (store_user_set(srv->store, name, display, limit ? &max_calls : NULL, &err) < 0)
		return cli_store_fail(reply, &err);
	if (limit)
		log_info("cli: user %s: max_calls %lu%s", name, max_calls,
			 display ? ", display changed" : "");
	else
		log_info("cli: user %s: display changed", name);
	cli_buf_printf(out, "user %s changed\n", name);
	return out->err;
}

static int cli_user_set_enabled(cli_server_t *srv, const struct cli_cmd_args *req,
				struct cli_buf *out, struct cli_reply *reply, int enabled)
{
	const char *name = req->words[2];
	struct store_error err;

	if (store_user_set_enabled(srv->store, name, enabled, &err) < 0)
		return cli_store_fail(reply, &err);
	log_info("cli: user %s %s", name, enabled ? "enabled" : "disabled");
	cli_buf_printf(out, "user %s %s\n", name, enabled ? "enabled" : "disabled");
	return out->err;
}

int cli_user_enable(cli_server_t *srv, const struct cli_cmd_args *req,
		    struct cli_buf *out, struct cli_reply *reply)
{
	return cli_user_set_enabled(srv, req, out, reply, 1);
}

int cli_user_disable(cli_server_t *srv, const struct cli_cmd_args *req,
		     struct cli_buf *out, struct cli_reply *reply)
{
	return cli_user_set_enabled(srv, req, out, reply, 0);
}

/* `user forward NAME --clear`: all four fields go at once. */
static int cli_user_forward_clear(cli_server_t *srv, const char *name, struct cli_buf *out,
				  struct cli_reply *reply)
{
	struct store_error err;

	if (store_user_forward_clear(srv->store, name, &err) < 0)
		return cli_store_fail(reply, &err);
	log_info("cli: user %s: call forwarding cleared", name);
	cli_buf_printf(out, "user %s forwarding cleared\n", name);
	return out->err;
}

/*
 * `user forward NAME [--always T] [--busy T] [--no-answer T] [--timeout S]`:
 * the given fields are set, the others kept.  Everything was checked before
 * the store is asked (cli_cmd_check), so a bad value changes nothing.
 */
int cli_user_forward(cli_server_t *srv, const struct cli_cmd_args *req,
		     struct cli_buf *out, struct cli_reply *reply)
{
	const char *timeout = cli_cmd_value(req, CLI_OPT_TIMEOUT);
	struct store_forward_change change = {
		.always = cli_cmd_value(req, CLI_OPT_ALWAYS),
		.busy = cli_cmd_value(req, CLI_OPT_BUSY),
		.noanswer = cli_cmd_value(req, CLI_OPT_NO_ANSWER),
	};
	const char *name = req->words[2];
	unsigned long long seconds = 0;
	struct store_error err;

	/* cli_cmd_check saw to it: --clear alone, or some valid forwarding. */
	if (req->opts & CLI_OPT_CLEAR)
		return cli_user_forward_clear(srv, name, out, reply);
	if (timeout && !cli_proto_number(timeout, 1, CLI_FWD_TIMEOUT_MAX, &seconds))
		return -EINVAL;
	change.noanswer_timeout = (unsigned)seconds;
	if (store_user_forward_set(srv->store, name, &change, &err) < 0)
		return cli_store_fail(reply, &err);
	log_info("cli: user %s: call forwarding changed", name);
	cli_buf_printf(out, "user %s forwarding set\n", name);
	return out->err;
}

int cli_user_del(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		 struct cli_reply *reply)
{
	const char *name = req->words[2];
	struct store_error err;

	if (store_user_del(srv->store, name, &err) < 0)
		return cli_store_fail(reply, &err);
	log_info("cli: user %s deleted", name);
	cli_buf_printf(out, "user %s deleted\n", name);
	return out->err;
}
