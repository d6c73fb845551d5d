/*
 * cli_cmd — see cli_cmd.h.
 *
 * Design note.  The table below is the whole list of CLI commands: adding
 * one is a line here, its lines of `help`, and a handler in the server's
 * array (cli/cli_dispatch.c).  The checks run in a fixed order, the same on
 * both sides, so that a request with two faults is refused for the same one
 * by b2bua-cli and by the daemon: the words and options (cli_cmd_find), then
 * the --password/--password-stdin pair, the operand, --clear against the
 * forwarding options, the "at least one of" and required options, and last
 * the option values in the order of cli_options.
 *
 * The reasons quote what the operator typed, shortened (%.40s and the like)
 * so that a status line stays one readable line whatever was sent.
 */
#include "cli/cli_cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct cli_option cli_options[CLI_N_OPTIONS] = {
	{ "--password",       CLI_OPT_PASSWORD,       1, 1 },
	{ "--password-stdin", CLI_OPT_PASSWORD_STDIN, 0, 0 },
	{ "--display",        CLI_OPT_DISPLAY,        1, 1 },
	{ "--max-calls",      CLI_OPT_MAX_CALLS,      1, 1 },
	{ "--always",         CLI_OPT_ALWAYS,         1, 1 },
	{ "--busy",           CLI_OPT_BUSY,           1, 1 },
	{ "--no-answer",      CLI_OPT_NO_ANSWER,      1, 1 },
	{ "--timeout",        CLI_OPT_TIMEOUT,        1, 1 },
	{ "--clear",          CLI_OPT_CLEAR,          0, 1 },
	{ "--long",           CLI_OPT_LONG,           0, 1 },
};

const struct cli_cmd cli_cmds[CLI_CMD__COUNT] = {
	{ CLI_CMD_SHOW_WORKERS, { "show", "workers" }, CLI_OPERAND_NONE, 0, 0, 0,
	  "  show workers   worker processes: pid, own SIP port, active calls, uptime, restarts,\n"
	  "                 calls created, messages in/out, datagrams handed over/in,\n"
	  "                 open TCP/TLS connections\n"
	},
	{ CLI_CMD_SHOW_CALLS, { "show", "calls" }, CLI_OPERAND_NONE, CLI_OPT_LONG, 0, 0,
	  "  show calls [--long]\n"
	  "                 calls in progress: id, caller, callee, state, age, worker, forward\n"
	  "                 target; --long adds both legs (Call-IDs, tags, targets) and times\n" },
	{ CLI_CMD_SHOW_CALL, { "show", "call" }, CLI_OPERAND_CALL, 0, 0, 0,
	  "  show call ID   one call in the --long form\n" },
	{ CLI_CMD_SHOW_STATS, { "show", "stats" }, CLI_OPERAND_NONE, 0, 0, 0,
	  "  show stats     call and message counters, final codes sent, draining\n" },
	{ CLI_CMD_SHOW_HOSTS, { "show", "hosts" }, CLI_OPERAND_NONE, 0, 0, 0,
	  "  show hosts     every host sharing this Redis: alive or lost (lease age), its\n"
	  "                 answered calls, and who closed a lost host's calls, when\n" },
	{ CLI_CMD_CALL_KILL, { "call", "kill" }, CLI_OPERAND_CALL, 0, 0, 0,
	  "  call kill ID   end a call now (its worker hangs up both legs), wait until it is gone\n"
	},
	{ CLI_CMD_CDR_TAIL, { "cdr", "tail" }, CLI_OPERAND_COUNT, 0, 0, 0,
	  "  cdr tail [N]   the N latest call detail records, oldest first (default 10, max 1000)\n"
	},
	{ CLI_CMD_USER_ADD, { "user", "add" }, CLI_OPERAND_USER,
	  CLI_OPT_ANY_PASSWORD | CLI_OPT_DISPLAY | CLI_OPT_MAX_CALLS, CLI_OPT_PASSWORD, 0,
	  "  user add NAME [--password PW | --password-stdin] [--display TEXT] [--max-calls N]\n"
	  "                 add a subscriber; without a password one is made up and printed\n" },
	{ CLI_CMD_USER_PASSWD, { "user", "passwd" }, CLI_OPERAND_USER,
	  CLI_OPT_ANY_PASSWORD, CLI_OPT_PASSWORD, 0,
	  "  user passwd NAME [--password PW | --password-stdin]\n"
	  "                 change a password (made up and printed when none is given)\n" },
	{ CLI_CMD_USER_SET, { "user", "set" }, CLI_OPERAND_USER,
	  CLI_OPT_DISPLAY | CLI_OPT_MAX_CALLS, 0, CLI_OPT_DISPLAY | CLI_OPT_MAX_CALLS,
	  "  user set NAME [--display TEXT] [--max-calls N]\n"
	  "                 change a subscriber's display name or call limit\n" },
	{ CLI_CMD_USER_DEL, { "user", "del" }, CLI_OPERAND_USER, 0, 0, 0,
	  "  user del NAME  delete a subscriber and its registrations\n" },
	{ CLI_CMD_USER_ENABLE, { "user", "enable" }, CLI_OPERAND_USER, 0, 0, 0,
	  "  user enable NAME, user disable NAME\n"
	  "                 allow or refuse a subscriber's REGISTERs and calls\n" },
	{ CLI_CMD_USER_DISABLE, { "user", "disable" }, CLI_OPERAND_USER, 0, 0, 0, NULL },
	{ CLI_CMD_USER_FORWARD, { "user", "forward" }, CLI_OPERAND_USER,
	  CLI_OPT_FORWARD | CLI_OPT_CLEAR, 0, CLI_OPT_FORWARD | CLI_OPT_CLEAR,
	  "  user forward NAME [--always TARGET] [--busy TARGET] [--no-answer TARGET]\n"
	  "                    [--timeout SECONDS]\n"
	  "  user forward NAME --clear\n"
	  "                 set a subscriber's call forwarding, or remove all of it\n" },
	{ CLI_CMD_USER_SHOW, { "user", "show" }, CLI_OPERAND_USER, 0, 0, 0,
	  "  user show NAME a subscriber, its call forwarding and current registrations\n" },
	{ CLI_CMD_USER_LIST, { "user", "list" }, CLI_OPERAND_NONE, 0, 0, 0,
	  "  user list      every subscriber with its number of registrations\n" },
	{ CLI_CMD_RELOAD, { "reload", NULL }, CLI_OPERAND_NONE, 0, 0, 0,
	  "  reload         re-read the configuration file, as SIGHUP does: apply what changed\n"
	  "                 in every process, name the keys that wait for a restart\n" },
	{ CLI_CMD_HELP, { "help", NULL }, CLI_OPERAND_NONE, 0, 0, 0,
	  "  help           this text\n" },
};

/* The parts of `help` that are not about one command. */
static const char cli_cmd_usage_head[] =
	"usage: b2bua-cli [-s SOCKET] COMMAND [--json]\n"
	"\n"
	"commands:\n";

static const char cli_cmd_usage_tail[] =
	"\n"
	"options:\n"
	"  -s SOCKET      the daemon's CLI socket (default: $" CLI_SOCKET_ENV ",\n"
	"                 else " CLI_DEFAULT_SOCKET ")\n"
	"  --json         machine-readable output (JSON)\n"
	"  --password PW, --password-stdin\n"
	"                 the password, or the first line of standard input (not seen by ps)\n"
	"  --display TEXT the subscriber's display name\n"
	"  --max-calls N  at most N calls of the subscriber at once (0: no limit)\n"
	"  --always TARGET     forward every call at once\n"
	"  --busy TARGET       forward when every device of the subscriber is busy\n"
	"  --no-answer TARGET  forward when nobody answers in time, or nothing is registered\n"
	"  --timeout SECONDS   ring this long before --no-answer applies (1 to 600;\n"
	"                      unset: the daemon's no_answer_timeout)\n"
	"  --clear        remove all four forwarding settings\n"
	"\n"
	"NAME is 1 to 64 of A-Z a-z 0-9 . _ + - (not starting with -); PW and TEXT are\n"
	"1 to 128 bytes without control characters; N is 0 (no limit) to 1000000.\n"
	"TARGET is a NAME of our domain or a SIP URI (sip:..., at most 127 bytes).\n"
	"ID is a call's id as `show calls` prints it (NODE-wN-HEX-N), the same id\n"
	"as in the daemon's log and in its CDR.\n";

static int cli_cmd_fail(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write the reason of a usage error; returns CLI_STATUS_USAGE for the caller to return. */
static int cli_cmd_fail(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return CLI_STATUS_USAGE;
}

size_t cli_cmd_option_index(unsigned flag)
{
	size_t i = 0;

	while (i + 1 < CLI_N_OPTIONS && cli_options[i].flag != flag)
		i++;
	return i;
}

const char *cli_cmd_value(const struct cli_cmd_args *args, unsigned flag)
{
	return args->values[cli_cmd_option_index(flag)];
}

/* The option named `word` (only those sent, when `wire`), or NULL; its index in *index. */
static const struct cli_option *cli_cmd_option_find(const char *word, int wire, size_t *index)
{
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		if ((cli_options[i].on_wire || !wire) && strcmp(word, cli_options[i].name) == 0) {
			*index = i;
			return &cli_options[i];
		}
	}
	return NULL;
}

/* The name of the lowest option in `flags`, for messages. */
static const char *cli_cmd_option_name(unsigned flags)
{
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		if (flags & cli_options[i].flag)
			return cli_options[i].name;
	}
	return "?";
}

int cli_cmd_add_word(struct cli_cmd_args *args, const char *word, int wire, char *why,
		     size_t size)
{
	const struct cli_option *opt;
	size_t index = 0;

	if (args->pending) {
		/* The value is the next word whatever it looks like ("--password -x"). */
		index = (size_t)args->pending - 1;
		if (word[0] == '\0')
			return cli_cmd_fail(why, size, "option %s needs a value",
					    cli_options[index].name);
		args->values[index] = word;
		args->pending = 0;
	} else if (strcmp(word, CLI_JSON_FLAG) == 0) {
		args->json = 1;
	} else if ((opt = cli_cmd_option_find(word, wire, &index)) != NULL) {
		if (args->opts & opt->flag)
			return cli_cmd_fail(why, size, "option %s given twice", opt->name);
		args->opts |= opt->flag;
		args->pending = opt->takes_value ? (int)index + 1 : 0;
	} else if (word[0] == '-') {
		return cli_cmd_fail(why, size, "unknown option '%.40s'", word);
	} else if (args->n_words == CLI_MAX_WORDS) {
		return cli_cmd_fail(why, size, "too many words in the command");
	} else {
		args->words[args->n_words++] = word;
	}
	return CLI_STATUS_OK;
}

int cli_cmd_end_words(const struct cli_cmd_args *args, char *why, size_t size)
{
	if (args->pending)
		return cli_cmd_fail(why, size, "option %s needs a value",
				    cli_options[args->pending - 1].name);
	if (args->n_words == 0)
		return cli_cmd_fail(why, size, "no command given");
	return CLI_STATUS_OK;
}

const struct cli_cmd *cli_cmd_find(const struct cli_cmd_args *args, char *why, size_t size)
{
	const char *w0 = args->n_words > 0 ? args->words[0] : "";
	const char *w1 = args->n_words > 1 ? args->words[1] : "";

	for (size_t i = 0; i < CLI_CMD__COUNT; i++) {
		const struct cli_cmd *cmd = &cli_cmds[i];
		int want = cmd->words[1] ? 2 : 1;
		int min = cmd->operand == CLI_OPERAND_USER || cmd->operand == CLI_OPERAND_CALL;
		int max = cmd->operand != CLI_OPERAND_NONE;
		unsigned extra = args->opts & ~cmd->opts;

		if (args->n_words < want || strcmp(w0, cmd->words[0]) != 0 ||
		    (want == 2 && strcmp(w1, cmd->words[1]) != 0))
			continue;
		if (args->n_words < want + min)
			cli_cmd_fail(why, size, "'%s %s' needs %s", w0, w1, cmd->operand ==
				     CLI_OPERAND_CALL ? "a call ID" : "a user NAME");
		else if (args->n_words > want + max)
			cli_cmd_fail(why, size, "unexpected word '%.40s'", args->words[want + max]);
		else if (extra)
			cli_cmd_fail(why, size, "option %s does not go with '%s%s%s'",
				     cli_cmd_option_name(extra), w0, want == 2 ? " " : "",
				     want == 2 ? w1 : "");
		else
			return cmd;
		return NULL;
	}
	cli_cmd_fail(why, size, "unknown command '%.40s%s%.40s'", w0, args->n_words > 1 ? " " : "",
		     w1);
	return NULL;
}

/* The operand in words[2], when the command has one and it was given. */
static int cli_cmd_check_operand(const struct cli_cmd *cmd, const struct cli_cmd_args *args,
				 char *why, size_t size)
{
	const char *w = args->n_words > 2 ? args->words[2] : NULL;
	unsigned long long v;

	if (!w || cmd->operand == CLI_OPERAND_NONE)
		return CLI_STATUS_OK;
	if (cmd->operand == CLI_OPERAND_USER && !cli_proto_name_ok(w))
		return cli_cmd_fail(why, size, "bad user name '%.80s': 1 to %d of "
				    "A-Z a-z 0-9 . _ + -, not starting with '-'", w,
				    CLI_USER_NAME_MAX);
	if (cmd->operand == CLI_OPERAND_CALL && !cli_proto_call_id_ok(w))
		return cli_cmd_fail(why, size, "bad call ID '%.40s': the id that "
				    "'show calls' prints (NODE-wN-HEX-N)", w);
	if (cmd->operand == CLI_OPERAND_COUNT && !cli_proto_number(w, 1, CLI_CDR_TAIL_MAX, &v))
		return cli_cmd_fail(why, size, "%s %s '%.20s': a number from 1 to %d",
				    cmd->words[0], cmd->words[1], w, CLI_CDR_TAIL_MAX);
	return CLI_STATUS_OK;
}

/* "'user forward' needs --always, --busy, --no-answer, --timeout or --clear". */
static int cli_cmd_needs_one_of(const struct cli_cmd *cmd, char *why, size_t size)
{
	size_t n = (size_t)snprintf(why, size, "'%s %s' needs ", cmd->words[0], cmd->words[1]);
	unsigned left = cmd->one_of;

	for (size_t i = 0; i < CLI_N_OPTIONS && n < size; i++) {
		if (!(left & cli_options[i].flag))
			continue;
		left &= ~cli_options[i].flag;
		n += (size_t)snprintf(why + n, size - n, "%s%s", cli_options[i].name,
				      left == 0 ? "" : (left & (left - 1)) == 0 ? " or " : ", ");
	}
	return CLI_STATUS_USAGE;
}

/* A --password or --display value: 1..CLI_VALUE_MAX bytes, no control characters. */
static int cli_cmd_text_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CLI_VALUE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* The value of one option, when given. */
static int cli_cmd_check_value(unsigned flag, const char *v, char *why, size_t size)
{
	unsigned long long n;

	switch (flag) {
	case CLI_OPT_PASSWORD:
		if (!cli_cmd_text_ok(v))
			return cli_cmd_fail(why, size, "the password must be 1 to %d bytes "
					    "without control characters", CLI_VALUE_MAX);
		break;
	case CLI_OPT_DISPLAY:
		if (!cli_cmd_text_ok(v))
			return cli_cmd_fail(why, size, "--display: 1 to %d bytes without "
					    "control characters", CLI_VALUE_MAX);
		break;
	case CLI_OPT_MAX_CALLS:
		if (!cli_proto_number(v, 0, CLI_MAX_CALLS_MAX, &n))
			return cli_cmd_fail(why, size, "--max-calls '%.20s': a number from 0 "
					    "(no limit) to %d", v, CLI_MAX_CALLS_MAX);
		break;
	case CLI_OPT_ALWAYS:
	case CLI_OPT_BUSY:
	case CLI_OPT_NO_ANSWER:
		if (!cli_proto_target_ok(v))
			return cli_cmd_fail(why, size, "forward target '%.80s': a user NAME "
					    "or a SIP URI (sip:...) of at most %d bytes", v,
					    CLI_TARGET_MAX);
		break;
	case CLI_OPT_TIMEOUT:
		if (!cli_proto_number(v, 1, CLI_FWD_TIMEOUT_MAX, &n))
			return cli_cmd_fail(why, size, "--timeout '%.20s': a number of seconds "
					    "from 1 to %d", v, CLI_FWD_TIMEOUT_MAX);
		break;
	default:
		break;
	}
	return CLI_STATUS_OK;
}

int cli_cmd_check(const struct cli_cmd *cmd, const struct cli_cmd_args *args,
		  unsigned supplied, char *why, size_t size)
{
	unsigned missing = cmd->required & ~args->opts & ~supplied;
	int status;

	if ((args->opts & CLI_OPT_ANY_PASSWORD) == CLI_OPT_ANY_PASSWORD)
		return cli_cmd_fail(why, size, "give --password or --password-stdin, not both");
	if ((status = cli_cmd_check_operand(cmd, args, why, size)) != CLI_STATUS_OK)
		return status;
	if ((args->opts & CLI_OPT_CLEAR) && (args->opts & CLI_OPT_FORWARD))
		return cli_cmd_fail(why, size, "--clear goes alone, not with --always, --busy, "
				    "--no-answer or --timeout");
	if (cmd->one_of && !(args->opts & cmd->one_of))
		return cli_cmd_needs_one_of(cmd, why, size);
	if (missing)
		return cli_cmd_fail(why, size, "'%s %s' needs %s", cmd->words[0], cmd->words[1],
				    cli_cmd_option_name(missing));
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		const char *v = args->values[i];

		if (v && (status = cli_cmd_check_value(cli_options[i].flag, v, why, size)) != 0)
			return status;
	}
	return CLI_STATUS_OK;
}

const char *cli_cmd_usage(void)
{
	/* About 2.7 kB today; tests/check_cli compares the whole text, so a cut shows. */
	static char text[4096];
	size_t n;

	if (text[0])
		return text;
	n = (size_t)snprintf(text, sizeof text, "%s", cli_cmd_usage_head);
	for (size_t i = 0; i < CLI_CMD__COUNT && n < sizeof text; i++) {
		if (cli_cmds[i].usage)
			n += (size_t)snprintf(text + n, sizeof text - n, "%s", cli_cmds[i].usage);
	}
	if (n < sizeof text)
		snprintf(text + n, sizeof text - n, "%s", cli_cmd_usage_tail);
	return text;
}
