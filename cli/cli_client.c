/*
 * b2bua-cli — the operator's command line client.
 *
 * Design note.  The client is deliberately thin: it checks the command words
 * against the commands it knows (so a typo is a usage error even when no
 * daemon runs), sends one request line over the Unix socket (protocol:
 * cli/cli_proto.h) and copies the body to stdout, or to stderr for errors.
 * It knows nothing of calls or JSON, so it cannot drift out of step with
 * the daemon's output.  Only libc: it must run on any box the daemon runs on.
 *
 * Exit codes: 0 ok, 1 error (daemon not running, refused, ...), 2 usage.
 */
#include "cli/cli_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CLI_MAX_WORDS        4
#define CLI_ANSWER_TIMEOUT_S 10     /* a daemon that does not answer must not hang scripts */
#define CLI_STATUS_LINE_MAX  1024

static const char *const cli_prog = "b2bua-cli";

/* The commands the daemon understands, as word lists (NULL-terminated). */
static const char *const cli_commands[][3] = {
	{ "show", "workers", NULL },
	{ "show", "calls", NULL },
	{ "show", "stats", NULL },
	{ "help", NULL, NULL },
};

struct cli_args {
	const char *socket;
	const char *words[CLI_MAX_WORDS];
	int n_words;
	int json;
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

static int cli_command_known(const struct cli_args *args)
{
	for (size_t c = 0; c < sizeof cli_commands / sizeof cli_commands[0]; c++) {
		int w = 0;

		while (w < args->n_words && cli_commands[c][w] &&
		       strcmp(args->words[w], cli_commands[c][w]) == 0)
			w++;
		if (w == args->n_words && cli_commands[c][w] == NULL)
			return 1;
	}
	return 0;
}

/* Options may come before or among the command words ("show calls --json"). */
static int cli_parse_args(int argc, char **argv, struct cli_args *args)
{
	const char *env = getenv(CLI_SOCKET_ENV);

	memset(args, 0, sizeof *args);
	args->socket = env && *env ? env : CLI_DEFAULT_SOCKET;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-s") == 0) {
			if (++i >= argc)
				return cli_fail(CLI_STATUS_USAGE, "option -s needs a SOCKET path");
			args->socket = argv[i];
		} else if (strcmp(a, CLI_JSON_FLAG) == 0) {
			args->json = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			args->words[0] = "help";
			args->n_words = 1;
			return 0;
		} else if (a[0] == '-') {
			return cli_fail(CLI_STATUS_USAGE, "unknown option '%s'", a);
		} else if (args->n_words == CLI_MAX_WORDS) {
			return cli_fail(CLI_STATUS_USAGE, "too many words in the command");
		} else {
			args->words[args->n_words++] = a;
		}
	}
	if (args->n_words == 0)
		return cli_fail(CLI_STATUS_USAGE, "no command given");
	if (!cli_command_known(args))
		return cli_fail(CLI_STATUS_USAGE, "unknown command '%s%s%s'", args->words[0],
				args->n_words > 1 ? " " : "",
				args->n_words > 1 ? args->words[1] : "");
	return 0;
}

static int cli_build_request(const struct cli_args *args, char *buf, size_t size, size_t *len)
{
	size_t n = 0;

	for (int w = 0; w < args->n_words + args->json; w++) {
		const char *word = w < args->n_words ? args->words[w] : CLI_JSON_FLAG;
		int r = snprintf(buf + n, size - n, "%s%s", w ? " " : "", word);

		if (r < 0 || (size_t)r >= size - n)
			return -E2BIG;
		n += (size_t)r;
	}
	if (n + 1 >= size)
		return -E2BIG;
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
 * Read the status line, then copy the body through as it arrives: answers
 * can be megabytes (thousands of calls) and need not sit in memory here.
 */
static int cli_read_answer(int fd, const char *path)
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

int main(int argc, char **argv)
{
	struct cli_args args;
	char req[CLI_REQUEST_MAX];
	size_t req_len;
	int fd = -1, err, status;

	status = cli_parse_args(argc, argv, &args);
	if (status != 0)
		return status;
	/* help needs no daemon: an operator reads it while setting one up. */
	if (strcmp(args.words[0], "help") == 0) {
		fputs(CLI_USAGE, stdout);
		return CLI_STATUS_OK;
	}
	if (cli_build_request(&args, req, sizeof req, &req_len) < 0)
		return cli_fail(CLI_STATUS_USAGE, "command too long");

	err = cli_connect(args.socket, &fd);
	if (err == -ENOENT || err == -ECONNREFUSED)
		return cli_fail(CLI_STATUS_ERROR, "b2bua is not running "
				"(no daemon listening on %s)", args.socket);
	if (err == -ENAMETOOLONG)
		return cli_fail(CLI_STATUS_ERROR, "socket path too long: %s", args.socket);
	if (err < 0)
		return cli_fail(CLI_STATUS_ERROR, "cannot connect to %s: %s", args.socket,
				strerror(-err));

	/* EPIPE: the daemon answered and hung up before reading (e.g. a refusal); read why. */
	err = cli_send_request(fd, req, req_len);
	if (err < 0 && err != -EPIPE) {
		close(fd);
		return cli_fail(CLI_STATUS_ERROR, "sending to %s: %s", args.socket,
				strerror(-err));
	}
	status = cli_read_answer(fd, args.socket);
	close(fd);
	return status;
}
