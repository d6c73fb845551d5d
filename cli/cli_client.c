/*
 * b2bua-cli — the operator's command line client.
 *
 * Design note.  The client is deliberately thin: it checks the command words
 * against the command table it shares with the daemon (cli/cli_cmd.c, so a
 * typo is a usage error even when no daemon runs, and for the same reason
 * the daemon would give), sends one request line over the Unix socket
 * (protocol: cli/cli_proto.h) and copies the body to stdout, or to stderr
 * for errors.  It knows nothing of calls or JSON, so it cannot drift out of
 * step with the daemon's output.  Only libc: it must run on any box the
 * daemon runs on.
 *
 * Passwords are the exception to "thin": `user add` and `user passwd` get
 * theirs from --password, from the first line of stdin (--password-stdin,
 * so it shows in no process list), or make one up with getrandom(2) and
 * print it after the daemon's confirmation.  Either way it travels
 * percent-encoded in the request line, and the daemon keeps only HA1s.
 *
 * Exit codes: 0 ok, 1 error (daemon not running, refused, ...), 2 usage.
 */
#include "cli/cli_cmd.h"

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

struct cli_args {
	const char *socket;
	struct cli_cmd_args req;        /* words, --json, options: as the daemon will see them */
	const struct cli_cmd *cmd;
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
		fputs(cli_cmd_usage(), stderr);
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

/* Where the value of option `flag` is kept. */
static const char **cli_value_slot(struct cli_args *args, unsigned flag)
{
	return &args->req.values[cli_cmd_option_index(flag)];
}

static const char *cli_value(const struct cli_args *args, unsigned flag)
{
	return cli_cmd_value(&args->req, flag);
}

/*
 * The words name a command, with its operands and only options it takes,
 * all valid (the daemon's own checks, cli_cmd.c).  A password the command
 * requires is no error when missing: it is read or made up afterwards.
 */
static int cli_check_command(struct cli_args *args)
{
	char why[CLI_CMD_WHY_MAX];
	const struct cli_cmd *cmd = cli_cmd_find(&args->req, why, sizeof why);

	if (!cmd || cli_cmd_check(cmd, &args->req, CLI_OPT_PASSWORD, why, sizeof why) != 0)
		return cli_fail(CLI_STATUS_USAGE, "%s", why);
	args->cmd = cmd;
	return 0;
}

/* Options may come before or among the command words ("show calls --json"). */
static int cli_parse_args(int argc, char **argv, struct cli_args *args)
{
	const char *env = getenv(CLI_SOCKET_ENV);
	char why[CLI_CMD_WHY_MAX];

	memset(args, 0, sizeof *args);
	args->socket = env && *env ? env : CLI_DEFAULT_SOCKET;
	for (int i = 1; i < argc; i++) {
		/* An option's value is the next argument whatever it is ("--password -s"). */
		int value = args->req.pending != 0;

		if (!value && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
			memset(&args->req, 0, sizeof args->req);
			args->req.words[0] = "help";
			args->req.n_words = 1;
			return cli_check_command(args);
		}
		if (!value && strcmp(argv[i], "-s") == 0) {
			if (++i >= argc)
				return cli_fail(CLI_STATUS_USAGE, "option -s needs a SOCKET path");
			args->socket = argv[i];
			continue;
		}
		if (cli_cmd_add_word(&args->req, argv[i], 0, why, sizeof why) != 0)
			return cli_fail(CLI_STATUS_USAGE, "%s", why);
	}
	if (cli_cmd_end_words(&args->req, why, sizeof why) != 0)
		return cli_fail(CLI_STATUS_USAGE, "%s", why);
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
	if (!(args->cmd->required & CLI_OPT_PASSWORD) || cli_value(args, CLI_OPT_PASSWORD))
		return 0;
	if (args->req.opts & CLI_OPT_PASSWORD_STDIN)
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
	const struct cli_cmd_args *req = &args->req;
	size_t n = 0;
	int err = 0;

	for (int w = 0; w < req->n_words && err == 0; w++)
		err = cli_append_word(buf, size, &n, req->words[w]);
	for (size_t o = 0; o < CLI_N_OPTIONS && err == 0; o++) {
		const struct cli_option *opt = &cli_options[o];

		/* A value counts even without its option: a password made up or read here. */
		if (!opt->on_wire ||
		    (opt->takes_value ? !req->values[o] : !(req->opts & opt->flag)))
			continue;
		err = cli_append_word(buf, size, &n, opt->name);
		if (err == 0 && opt->takes_value)
			err = cli_append_word(buf, size, &n, req->values[o]);
	}
	if (err == 0 && req->json)
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
	if (args.cmd->id == CLI_CMD_HELP) {
		fputs(cli_cmd_usage(), stdout);
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
