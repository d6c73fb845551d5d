/*
 * b2bua-cli — the operator's command line client.
 *
 * Design note.  The client is deliberately thin: it checks the command words
 * against the commands it knows (so a typo is a usage error even when no
 * daemon runs), sends one request line over the Unix socket (protocol:
 * cli/cli_proto.h) and copies the body to stdout, or to stderr for errors.
 * It knows nothing of calls or JSON, so it cannot drift out of step with
 * the daemon's output; the checks of operands and option values (names,
 * forward targets, call ids, numbers) are the daemon's own, from
 * cli_proto.h.  Only libc: it must run on any box the daemon runs on.
 *
 * Passwords are the exception to "thin": `user add` and `user passwd` get
 * theirs from --password, from the first line of stdin (--password-stdin,
 * so it shows in no process list), or make one up with getrandom(2) and
 * print it after the daemon's confirmation.  Either way it travels
 * percent-encoded in the request line, and the daemon keeps only HA1s.
 *
 * Exit codes: 0 ok, 1 error (daemon not running, refused, ...), 2 usage.
 */
#include "cli/cli_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CLI_ANSWER_TIMEOUT_S 10     /* a daemon that does not answer must not hang scripts */
#define CLI_STATUS_LINE_MAX  1024
#define CLI_CONFIRM_MAX      1024   /* the confirmation a made-up password is added to */

static const char *const cli_prog = "b2bua-cli";

/* Options besides -s and --json; a command lists those it takes. */
enum {
	CLI_OPT_PASSWORD       = 1 << 0,    /* --password PW */
	CLI_OPT_PASSWORD_STDIN = 1 << 1,    /* --password-stdin (never sent as such) */
	CLI_OPT_DISPLAY        = 1 << 2,    /* --display TEXT */
	CLI_OPT_MAX_CALLS      = 1 << 3,    /* --max-calls N */
	CLI_OPT_ALWAYS         = 1 << 4,    /* --always TARGET */
	CLI_OPT_BUSY           = 1 << 5,    /* --busy TARGET */
	CLI_OPT_NO_ANSWER      = 1 << 6,    /* --no-answer TARGET */
	CLI_OPT_TIMEOUT        = 1 << 7,    /* --timeout SECONDS */
	CLI_OPT_CLEAR          = 1 << 8,    /* --clear */
	CLI_OPT_LONG           = 1 << 9,    /* --long */
};
#define CLI_OPT_ANY_PASSWORD (CLI_OPT_PASSWORD | CLI_OPT_PASSWORD_STDIN)
#define CLI_OPT_FORWARD (CLI_OPT_ALWAYS | CLI_OPT_BUSY | CLI_OPT_NO_ANSWER | CLI_OPT_TIMEOUT)

struct cli_option {
	const char *name;
	unsigned flag;
	int takes_value;                /* else a flag on its own */
	int sent;                       /* goes to the daemon as itself */
};

/* In the order they go into a request. */
static const struct cli_option cli_options[] = {
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
#define CLI_N_OPTIONS (sizeof cli_options / sizeof cli_options[0])

/* What follows the command words. */
enum cli_operand {
	CLI_OPERAND_NONE = 0,
	CLI_OPERAND_USER,               /* NAME */
	CLI_OPERAND_CALL,               /* ID */
	CLI_OPERAND_COUNT,              /* [N]: optional */
};

struct cli_args;

/* The commands the daemon understands. */
struct cli_command {
	const char *words[2];
	enum cli_operand operand;       /* in words[2] */
	unsigned opts;                  /* CLI_OPT_* it takes */
	int wants_password;             /* made up when none is given */
	int (*check)(const struct cli_args *args);  /* more checks, or NULL */
};

static int cli_check_forward(const struct cli_args *args);

static const struct cli_command cli_commands[] = {
	{ { "show", "workers" }, CLI_OPERAND_NONE,  0, 0, NULL },
	{ { "show", "calls" },   CLI_OPERAND_NONE,  CLI_OPT_LONG, 0, NULL },
	{ { "show", "call" },    CLI_OPERAND_CALL,  0, 0, NULL },
	{ { "show", "stats" },   CLI_OPERAND_NONE,  0, 0, NULL },
	{ { "call", "kill" },    CLI_OPERAND_CALL,  0, 0, NULL },
	{ { "cdr", "tail" },     CLI_OPERAND_COUNT, 0, 0, NULL },
	{ { "user", "add" },     CLI_OPERAND_USER,
	  CLI_OPT_ANY_PASSWORD | CLI_OPT_DISPLAY | CLI_OPT_MAX_CALLS, 1, NULL },
	{ { "user", "passwd" },  CLI_OPERAND_USER,  CLI_OPT_ANY_PASSWORD, 1, NULL },
	{ { "user", "del" },     CLI_OPERAND_USER,  0, 0, NULL },
	{ { "user", "enable" },  CLI_OPERAND_USER,  0, 0, NULL },
	{ { "user", "disable" }, CLI_OPERAND_USER,  0, 0, NULL },
	{ { "user", "forward" }, CLI_OPERAND_USER,  CLI_OPT_FORWARD | CLI_OPT_CLEAR, 0,
	  cli_check_forward },
	{ { "user", "show" },    CLI_OPERAND_USER,  0, 0, NULL },
	{ { "user", "list" },    CLI_OPERAND_NONE,  0, 0, NULL },
	{ { "help", NULL },      CLI_OPERAND_NONE,  0, 0, NULL },
};

struct cli_args {
	const char *socket;
	const char *words[CLI_MAX_WORDS];
	int n_words;
	int json;
	const struct cli_command *cmd;
	unsigned opts;                  /* CLI_OPT_* given */
	const char *values[CLI_N_OPTIONS]; /* by cli_options index; the password as sent */
	char secret[CLI_VALUE_MAX + 2]; /* a password read from stdin or made up */
	int made_up;                    /* print it: nobody else knows it */
};

/* ------------------------------------------------------------ output */

static int cli_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One "b2bua-cli: ..." line on stderr (plus the usage for usage errors). */
static int cli_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (status == CLI_STATUS_USAGE)
		fputs(CLI_USAGE, stderr);
	return status;
}

static int cli_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------ arguments */

/* The command whose words start the argument words; NULL when none does. */
static const struct cli_command *cli_find_command(const struct cli_args *args)
{
	for (size_t c = 0; c < sizeof cli_commands / sizeof cli_commands[0]; c++) {
		const struct cli_command *cmd = &cli_commands[c];
		int want = cmd->words[1] ? 2 : 1;

		if (args->n_words >= want && strcmp(args->words[0], cmd->words[0]) == 0 &&
		    (want == 1 || strcmp(args->words[1], cmd->words[1]) == 0))
			return cmd;
	}
	return NULL;
}

/* The option named `name`, or NULL; its index in *index. */
static const struct cli_option *cli_option_find(const char *name, size_t *index)
{
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		if (strcmp(name, cli_options[i].name) == 0) {
			*index = i;
			return &cli_options[i];
		}
	}
	return NULL;
}

/* The index in cli_options of option `flag`. */
static size_t cli_option_index(unsigned flag)
{
	size_t i = 0;

	while (i + 1 < CLI_N_OPTIONS && cli_options[i].flag != flag)
		i++;
	return i;
}

/* Where the value of option `flag` is kept. */
static const char **cli_value_slot(struct cli_args *args, unsigned flag)
{
	return &args->values[cli_option_index(flag)];
}

static const char *cli_value(const struct cli_args *args, unsigned flag)
{
	return args->values[cli_option_index(flag)];
}

/* One option or command word at argv[*i]; moves *i past an option's value. */
static int cli_parse_one(int argc, char **argv, int *i, struct cli_args *args)
{
	const char *a = argv[*i];
	const struct cli_option *opt;
	size_t index = 0;

	if (strcmp(a, "-s") == 0) {
		if (++*i >= argc)
			return cli_fail(CLI_STATUS_USAGE, "option -s needs a SOCKET path");
		args->socket = argv[*i];
	} else if (strcmp(a, CLI_JSON_FLAG) == 0) {
		args->json = 1;
	} else if ((opt = cli_option_find(a, &index)) != NULL) {
		/* The value is the next argument whatever it looks like ("--password -x"). */
		if (opt->takes_value && (++*i >= argc || argv[*i][0] == '\0'))
			return cli_fail(CLI_STATUS_USAGE, "option %s needs a value", a);
		if (args->opts & opt->flag)
			return cli_fail(CLI_STATUS_USAGE, "option %s given twice", a);
		args->opts |= opt->flag;
		if (opt->takes_value)
			args->values[index] = argv[*i];
	} else if (a[0] == '-') {
		return cli_fail(CLI_STATUS_USAGE, "unknown option '%s'", a);
	} else if (args->n_words == CLI_MAX_WORDS) {
		return cli_fail(CLI_STATUS_USAGE, "too many words in the command");
	} else {
		args->words[args->n_words++] = a;
	}
	return 0;
}

/* The name of the lowest option in `flags`, for messages. */
static const char *cli_option_name(unsigned flags)
{
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		if (flags & cli_options[i].flag)
			return cli_options[i].name;
	}
	return "?";
}

/* `user forward`: some forwarding or --clear, not both, and values that make sense. */
static int cli_check_forward(const struct cli_args *args)
{
	const unsigned targets[] = { CLI_OPT_ALWAYS, CLI_OPT_BUSY, CLI_OPT_NO_ANSWER };
	const char *timeout = cli_value(args, CLI_OPT_TIMEOUT);
	unsigned long long secs;

	if ((args->opts & CLI_OPT_CLEAR) && (args->opts & CLI_OPT_FORWARD))
		return cli_fail(CLI_STATUS_USAGE, "--clear goes alone, not with --always, --busy, "
				"--no-answer or --timeout");
	if (!(args->opts & (CLI_OPT_CLEAR | CLI_OPT_FORWARD)))
		return cli_fail(CLI_STATUS_USAGE, "'user forward' needs --always, --busy, "
				"--no-answer, --timeout or --clear");
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		const char *t = cli_value(args, targets[i]);

		if (t && !cli_proto_target_ok(t))
			return cli_fail(CLI_STATUS_USAGE, "%s '%s': a user NAME or a SIP URI "
					"(sip:...) of at most %d bytes",
					cli_option_name(targets[i]), t, CLI_TARGET_MAX);
	}
	if (timeout && !cli_proto_number(timeout, 1, CLI_FWD_TIMEOUT_MAX, &secs))
		return cli_fail(CLI_STATUS_USAGE, "--timeout '%s': a number of seconds from 1 "
				"to %d", timeout, CLI_FWD_TIMEOUT_MAX);
	return 0;
}

/* The operand in words[2], when the command has one and it was given. */
static int cli_check_operand(const struct cli_command *cmd, const struct cli_args *args)
{
	const char *w = args->n_words > 2 ? args->words[2] : NULL;
	unsigned long long v;

	if (!w || cmd->operand == CLI_OPERAND_NONE)
		return 0;
	if (cmd->operand == CLI_OPERAND_USER && !cli_proto_name_ok(w))
		return cli_fail(CLI_STATUS_USAGE, "bad user name '%s': 1 to %d of "
				"A-Z a-z 0-9 . _ + -, not starting with '-'", w,
				CLI_USER_NAME_MAX);
	if (cmd->operand == CLI_OPERAND_CALL && !cli_proto_call_id_ok(w))
		return cli_fail(CLI_STATUS_USAGE, "bad call ID '%.40s': the id that "
				"'show calls' prints (NODE-wN-HEX-N)", w);
	if (cmd->operand == CLI_OPERAND_COUNT && !cli_proto_number(w, 1, CLI_CDR_TAIL_MAX, &v))
		return cli_fail(CLI_STATUS_USAGE, "%s %s '%s': a number from 1 to %d",
				cmd->words[0], cmd->words[1], w, CLI_CDR_TAIL_MAX);
	return 0;
}

/* The words name a command, with its operands and only options it takes. */
static int cli_check_command(struct cli_args *args)
{
	const struct cli_command *cmd = cli_find_command(args);
	const char *max_calls = cli_value(args, CLI_OPT_MAX_CALLS);
	unsigned long long v;
	int want, min, status;

	if (!cmd)
		return cli_fail(CLI_STATUS_USAGE, "unknown command '%s%s%s'", args->words[0],
				args->n_words > 1 ? " " : "",
				args->n_words > 1 ? args->words[1] : "");
	want = cmd->words[1] ? 2 : 1;
	min = cmd->operand == CLI_OPERAND_USER || cmd->operand == CLI_OPERAND_CALL;
	if (args->n_words < want + min)
		return cli_fail(CLI_STATUS_USAGE, "'%s %s' needs %s", cmd->words[0],
				cmd->words[1], cmd->operand == CLI_OPERAND_CALL ? "a call ID" :
				"a user NAME");
	want += cmd->operand != CLI_OPERAND_NONE;
	if (args->n_words > want)
		return cli_fail(CLI_STATUS_USAGE, "unexpected word '%s'", args->words[want]);
	if (args->opts & ~cmd->opts)
		return cli_fail(CLI_STATUS_USAGE, "option %s does not go with '%s%s%s'",
				cli_option_name(args->opts & ~cmd->opts), cmd->words[0],
				cmd->words[1] ? " " : "", cmd->words[1] ? cmd->words[1] : "");
	if ((args->opts & CLI_OPT_ANY_PASSWORD) == CLI_OPT_ANY_PASSWORD)
		return cli_fail(CLI_STATUS_USAGE, "give --password or --password-stdin, not both");
	if ((status = cli_check_operand(cmd, args)) != 0)
		return status;
	if (max_calls && !cli_proto_number(max_calls, 0, CLI_MAX_CALLS_MAX, &v))
		return cli_fail(CLI_STATUS_USAGE, "--max-calls '%s': a number from 0 (no limit) "
				"to %d", max_calls, CLI_MAX_CALLS_MAX);
	if (cmd->check && (status = cmd->check(args)) != 0)
		return status;
	args->cmd = cmd;
	return 0;
}

/* Options may come before or among the command words ("show calls --json"). */
static int cli_parse_args(int argc, char **argv, struct cli_args *args)
{
	const char *env = getenv(CLI_SOCKET_ENV);
	int status;

	memset(args, 0, sizeof *args);
	args->socket = env && *env ? env : CLI_DEFAULT_SOCKET;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			args->words[0] = "help";
			args->n_words = 1;
			args->opts = 0;
			return cli_check_command(args);
		}
		status = cli_parse_one(argc, argv, &i, args);
		if (status != 0)
			return status;
	}
	if (args->n_words == 0)
		return cli_fail(CLI_STATUS_USAGE, "no command given");
	return cli_check_command(args);
}

/* ------------------------------------------------------------ passwords */

/* The first line of stdin, without its line end, into args->secret. */
static int cli_password_stdin(struct cli_args *args)
{
	char *buf = args->secret;
	size_t len;

	if (!fgets(buf, sizeof args->secret, stdin))
		return cli_fail(CLI_STATUS_USAGE, "--password-stdin: nothing on standard input");
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (len == sizeof args->secret - 1)
		return cli_fail(CLI_STATUS_USAGE, "--password-stdin: longer than %d bytes",
				CLI_VALUE_MAX);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0)
		return cli_fail(CLI_STATUS_USAGE, "--password-stdin: the first line is empty");
	*cli_value_slot(args, CLI_OPT_PASSWORD) = buf;
	return 0;
}

/* CLI_RANDOM_PASSWORD_LEN letters and digits from getrandom(2), unbiased. */
static int cli_password_make(struct cli_args *args)
{
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	const unsigned limit = 256 - 256 % (sizeof alnum - 1);   /* 248: no modulo bias */
	unsigned char rnd[64];
	size_t n = 0;

	/* 64 bytes give 16 usable ones but with negligible chance; then draw again. */
	for (int tries = 0; n < CLI_RANDOM_PASSWORD_LEN && tries < 16; tries++) {
		ssize_t got = getrandom(rnd, sizeof rnd, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return cli_fail(CLI_STATUS_ERROR, "getrandom: %s", strerror(errno));
		for (ssize_t i = 0; i < got && n < CLI_RANDOM_PASSWORD_LEN; i++) {
			if (rnd[i] < limit)
				args->secret[n++] = alnum[rnd[i] % (sizeof alnum - 1)];
		}
	}
	explicit_bzero(rnd, sizeof rnd);
	if (n < CLI_RANDOM_PASSWORD_LEN)
		return cli_fail(CLI_STATUS_ERROR, "getrandom gave too few random bytes");
	args->secret[n] = '\0';
	*cli_value_slot(args, CLI_OPT_PASSWORD) = args->secret;
	args->made_up = 1;
	return 0;
}

/* The password of `user add` / `user passwd`, from wherever the operator wants it. */
static int cli_password(struct cli_args *args)
{
	if (!args->cmd->wants_password || cli_value(args, CLI_OPT_PASSWORD))
		return 0;
	if (args->opts & CLI_OPT_PASSWORD_STDIN)
		return cli_password_stdin(args);
	return cli_password_make(args);
}

/* ------------------------------------------------------------ the request */

/* Append " word" (no space first) to buf, percent-encoded as cli_proto.h says. */
static int cli_append_word(char *buf, size_t size, size_t *len, const char *word)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = *len;

	if (n > 0 && n + 1 < size)
		buf[n++] = ' ';
	for (const char *p = word; *p && n + 3 < size; p++) {
		unsigned char c = (unsigned char)*p;

		if (CLI_ENCODE_BYTE(c)) {
			buf[n++] = '%';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
		} else {
			buf[n++] = (char)c;
		}
	}
	/* Room for this word, a newline and the NUL, or the line is too long. */
	if (n + 3 >= size)
		return -E2BIG;
	*len = n;
	return 0;
}

static int cli_build_request(const struct cli_args *args, char *buf, size_t size, size_t *len)
{
	size_t n = 0;
	int err = 0;

	for (int w = 0; w < args->n_words && err == 0; w++)
		err = cli_append_word(buf, size, &n, args->words[w]);
	for (size_t o = 0; o < CLI_N_OPTIONS && err == 0; o++) {
		const struct cli_option *opt = &cli_options[o];

		/* A value counts even without its option: a password made up or read here. */
		if (!opt->sent || (opt->takes_value ? !args->values[o] : !(args->opts & opt->flag)))
			continue;
		err = cli_append_word(buf, size, &n, opt->name);
		if (err == 0 && opt->takes_value)
			err = cli_append_word(buf, size, &n, args->values[o]);
	}
	if (err == 0 && args->json)
		err = cli_append_word(buf, size, &n, CLI_JSON_FLAG);
	if (err < 0)
		return err;
	buf[n++] = '\n';
	*len = n;
	return 0;
}

/* ------------------------------------------------------------ talking */

static int cli_connect(const char *path, int *out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CLI_ANSWER_TIMEOUT_S };
	int fd, err;

	if (strlen(path) >= sizeof sun.sun_path)
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	/* Bound every read and write: a wedged daemon must not wedge the caller. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	*out = fd;
	return 0;
}

static int cli_send_request(int fd, const char *req, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, req, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		req += n;
		len -= (size_t)n;
	}
	/* Half-close: the daemon sees the end of the request even without a newline. */
	shutdown(fd, SHUT_WR);
	return 0;
}

/* Read into buf, retrying on EINTR: bytes read, 0 at EOF, or -errno. */
static ssize_t cli_read(int fd, char *buf, size_t size)
{
	for (;;) {
		ssize_t n = read(fd, buf, size);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Parse "<status> <text>\n" at the start of buf.  Returns the status and
 * *text (NUL-terminated in place) and *body (what follows the newline), or
 * -1 when the line is malformed.
 */
static int cli_parse_status(char *buf, size_t len, char **text, char **body)
{
	char *nl = memchr(buf, '\n', len);
	char *end;
	long status;

	if (!nl)
		return -1;
	*nl = '\0';
	errno = 0;
	status = strtol(buf, &end, 10);
	if (errno || end == buf || (*end != ' ' && *end != '\0') || status < 0 || status > 255)
		return -1;
	*text = *end ? end + 1 : end;
	*body = nl + 1;
	return (int)status;
}

/*
 * The body of a `user add|passwd` answer ("user bob added\n") with the
 * made-up password on the same line: "user bob added; password: ...".
 * The body is one short line, read whole (at most CLI_CONFIRM_MAX bytes).
 */
static int cli_print_confirmation(int fd, const char *path, const char *body, size_t len,
				  const char *password)
{
	char line[CLI_CONFIRM_MAX];
	ssize_t n = 1;

	if (len >= sizeof line)
		len = sizeof line - 1;
	memcpy(line, body, len);
	while (len < sizeof line - 1 && (n = cli_read(fd, line + len, sizeof line - 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return cli_fail(CLI_STATUS_ERROR, "answer from %s cut short: %s", path,
				strerror((int)-n));
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len] = '\0';
	printf("%s; password: %s\n", line, password);
	return fflush(stdout) == 0 ? CLI_STATUS_OK : CLI_STATUS_ERROR;
}

/*
 * Read the status line, then copy the body through as it arrives: answers
 * can be megabytes (thousands of calls) and need not sit in memory here.
 * A made-up `password` (or NULL) is printed with the confirmation.
 */
static int cli_read_answer(int fd, const char *path, const char *password)
{
	char buf[65536];
	char *text, *body;
	size_t len = 0;
	ssize_t n;
	int status, out;

	for (;;) {
		n = cli_read(fd, buf + len, CLI_STATUS_LINE_MAX - len);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return cli_fail(CLI_STATUS_ERROR, "no answer from the daemon on %s "
					"within %d s", path, CLI_ANSWER_TIMEOUT_S);
		if (n < 0)
			return cli_fail(CLI_STATUS_ERROR, "reading from %s: %s", path,
					strerror((int)-n));
		len += (size_t)n;
		if (memchr(buf, '\n', len) || n == 0 || len == CLI_STATUS_LINE_MAX)
			break;
	}
	status = cli_parse_status(buf, len, &text, &body);
	if (status < 0)
		return cli_fail(CLI_STATUS_ERROR, "malformed answer from the daemon on %s", path);

	if (status == CLI_STATUS_OK && password)
		return cli_print_confirmation(fd, path, body, len - (size_t)(body - buf), password);
	out = status == CLI_STATUS_OK ? STDOUT_FILENO : STDERR_FILENO;
	if (status != CLI_STATUS_OK)
		fprintf(stderr, "%s: %s\n", cli_prog, *text ? text : "error");
	fflush(stderr);
	if (cli_write_all(out, body, len - (size_t)(body - buf)) < 0)
		return CLI_STATUS_ERROR;
	while ((n = cli_read(fd, buf, sizeof buf)) > 0) {
		if (cli_write_all(out, buf, (size_t)n) < 0)
			return CLI_STATUS_ERROR;
	}
	if (n < 0)
		return cli_fail(CLI_STATUS_ERROR, "answer from %s cut short: %s", path,
				strerror((int)-n));
	if (status == CLI_STATUS_OK || status == CLI_STATUS_USAGE)
		return status;
	return CLI_STATUS_ERROR;
}

/* ------------------------------------------------------------ main */

/* Connect, send the request and copy the answer out: the exit status. */
static int cli_talk(const struct cli_args *args, const char *req, size_t req_len)
{
	int fd = -1, err, status;

	err = cli_connect(args->socket, &fd);
	if (err == -ENOENT || err == -ECONNREFUSED)
		return cli_fail(CLI_STATUS_ERROR, "b2bua is not running "
				"(no daemon listening on %s)", args->socket);
	if (err == -ENAMETOOLONG)
		return cli_fail(CLI_STATUS_ERROR, "socket path too long: %s", args->socket);
	if (err < 0)
		return cli_fail(CLI_STATUS_ERROR, "cannot connect to %s: %s", args->socket,
				strerror(-err));

	/* EPIPE: the daemon answered and hung up before reading (e.g. a refusal); read why. */
	err = cli_send_request(fd, req, req_len);
	if (err < 0 && err != -EPIPE) {
		close(fd);
		return cli_fail(CLI_STATUS_ERROR, "sending to %s: %s", args->socket,
				strerror(-err));
	}
	status = cli_read_answer(fd, args->socket,
				 args->made_up ? cli_value(args, CLI_OPT_PASSWORD) : NULL);
	close(fd);
	return status;
}

int main(int argc, char **argv)
{
	struct cli_args args;
	char req[CLI_REQUEST_MAX];
	size_t req_len = 0;
	int status;

	status = cli_parse_args(argc, argv, &args);
	if (status != 0)
		return status;
	/* help needs no daemon: an operator reads it while setting one up. */
	if (strcmp(args.words[0], "help") == 0) {
		fputs(CLI_USAGE, stdout);
		return CLI_STATUS_OK;
	}
	status = cli_password(&args);
	if (status == 0 && cli_build_request(&args, req, sizeof req, &req_len) < 0)
		status = cli_fail(CLI_STATUS_USAGE, "command too long");
	if (status == 0)
		status = cli_talk(&args, req, req_len);
	/* Both may hold a password. */
	explicit_bzero(req, sizeof req);
	explicit_bzero(args.secret, sizeof args.secret);
	return status;
}
