/*
 * cli_dispatch — one request line to one handler.
 *
 * Design note.  The line is split into words and each is decoded in place
 * (the client's "%XX", cli_proto.h); the words then go through the same
 * parser, command table and checks as in b2bua-cli (cli_cmd.c), so a
 * request from socat or an older client is held to the same rules.  Only
 * then is the handler called, from an array indexed by the command's enum
 * value: a handler can trust its operand and option values.  A usage error
 * answers with status 2 and the usage text as the body.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int cli_help(cli_server_t *srv, const struct cli_cmd_args *req, struct cli_buf *out,
		    struct cli_reply *reply)
{
	const char *usage = cli_cmd_usage();

	cli_buf_add(out, usage, strlen(usage));
	return out->err;
}

/* The handler of every command in cli_cmds, by its enum cli_cmd_id. */
static cli_handler_f *const cli_handlers[CLI_CMD__COUNT] = {
	[CLI_CMD_SHOW_WORKERS] = cli_show_workers,
	[CLI_CMD_SHOW_CALLS]   = cli_show_calls,
	[CLI_CMD_SHOW_CALL]    = cli_show_call,
	[CLI_CMD_SHOW_STATS]   = cli_show_stats,
	[CLI_CMD_SHOW_HOSTS]   = cli_show_hosts,
	[CLI_CMD_CALL_KILL]    = cli_call_kill,
	[CLI_CMD_CDR_TAIL]     = cli_cdr_tail,
	[CLI_CMD_USER_ADD]     = cli_user_add,
	[CLI_CMD_USER_PASSWD]  = cli_user_passwd,
	[CLI_CMD_USER_SET]     = cli_user_set,
	[CLI_CMD_USER_DEL]     = cli_user_del,
	[CLI_CMD_USER_ENABLE]  = cli_user_enable,
	[CLI_CMD_USER_DISABLE] = cli_user_disable,
	[CLI_CMD_USER_FORWARD] = cli_user_forward,
	[CLI_CMD_USER_SHOW]    = cli_user_show,
	[CLI_CMD_USER_LIST]    = cli_user_list,
	[CLI_CMD_RELOAD]       = cli_reload,
	[CLI_CMD_HELP]         = cli_help,
};

static int cli_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo the client's "%XX" encoding in place; -EINVAL for a bad escape or a NUL. */
static int cli_decode_word(char *w)
{
	char *out = w;

	for (const char *p = w; *p; p++) {
		int hi, lo;

		if (*p != '%') {
			*out++ = *p;
			continue;
		}
		hi = cli_hex(p[1]);
		lo = hi < 0 ? -1 : cli_hex(p[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return -EINVAL;
		*out++ = (char)(hi << 4 | lo);
		p += 2;
	}
	*out = '\0';
	return 0;
}

/*
 * Split the request line in place into decoded words and parse them as the
 * client does: "--json" may stand anywhere, an option's value is the next
 * word whatever it looks like.  Then find and check the command.
 */
const struct cli_cmd *cli_dispatch_parse(char *line, struct cli_cmd_args *req,
					 struct cli_reply *reply)
{
	const struct cli_cmd *cmd;
	char *save = NULL;

	memset(req, 0, sizeof *req);
	reply->status = CLI_STATUS_USAGE;
	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (cli_decode_word(w) < 0) {
			cli_fail(reply, CLI_STATUS_USAGE, "bad %%-encoding in the request");
			return NULL;
		}
		if (cli_cmd_add_word(req, w, 1, reply->text, sizeof reply->text) != CLI_STATUS_OK)
			return NULL;
	}
	if (cli_cmd_end_words(req, reply->text, sizeof reply->text) != CLI_STATUS_OK)
		return NULL;
	cmd = cli_cmd_find(req, reply->text, sizeof reply->text);
	if (!cmd || cli_cmd_check(cmd, req, 0, reply->text, sizeof reply->text) != CLI_STATUS_OK)
		return NULL;
	reply->status = CLI_STATUS_OK;
	return cmd;
}

void cli_dispatch(cli_server_t *srv, char *line, struct cli_reply *reply, struct cli_buf *body)
{
	const struct cli_cmd *cmd;
	struct cli_cmd_args req;
	int err;

	reply->status = CLI_STATUS_OK;
	cmd = cli_dispatch_parse(line, &req, reply);
	if (cmd && (err = cli_handlers[cmd->id](srv, &req, body, reply)) < 0 &&
	    reply->status == CLI_STATUS_OK) {
		cli_fail(reply, CLI_STATUS_ERROR, "cannot build the answer: %s", strerror(-err));
		log_error("cli: '%s %s': %s", req.words[0], req.n_words > 1 ? req.words[1] : "",
			  strerror(-err));
	}
	if (reply->status != CLI_STATUS_OK) {
		body->len = 0;
		body->err = 0;
		if (reply->status == CLI_STATUS_USAGE)
			cli_help(srv, &req, body, reply);
	} else {
		snprintf(reply->text, sizeof reply->text, "ok");
	}
}
