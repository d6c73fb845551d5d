/*
 * cli_server — see cli_server.h; the wire protocol is in cli_proto.h.
 *
 * Design note.  The master serves the CLI itself, one client at a time,
 * from its poll loop: requests are rare and every answer is read straight
 * from shared memory, so a thread or a round trip to a worker would buy
 * nothing.  What keeps the master responsive is that every client is
 * bounded: 1 s to send its request line, CLI_WRITE_TIMEOUT_MS to take the
 * answer, CLI_ACCEPT_BATCH clients per wake-up.
 *
 * An answer is built in a growing buffer and then written in full: the
 * status line can only be sent once the command has worked, and a table of
 * thousands of calls is larger than a socket buffer.  Calls are formatted
 * one at a time as the table is walked (JSON too, one small jansson object
 * per call), so memory follows the size of the answer, not a copy of the
 * table.
 *
 * Who may talk to us: the socket is created mode 0600 (its directory 0700
 * when we create it), and every peer's uid is checked with SO_PEERCRED in
 * case an administrator loosens the file mode: root and our own uid only.
 */
#define _GNU_SOURCE                 /* accept4(), struct ucred */

#include "cli/cli_server.h"
#include "cli/cli_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define CLI_READ_TIMEOUT_MS   1000          /* a client that sends nothing is dropped */
#define CLI_WRITE_TIMEOUT_MS  3000          /* a client that does not read is dropped */
#define CLI_ACCEPT_BATCH      16            /* then back to the master's loop */
#define CLI_LISTEN_BACKLOG    16
#define CLI_MAX_WORDS         4
#define CLI_ANSWER_MAX        (256u << 20)  /* sanity bound on one answer */

struct cli_server {
	int fd;
	shm_t *shm;
	unsigned workers;
	int draining;
	char node_id[sizeof ((struct config *)0)->node_id];
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
	dev_t dev;                      /* the socket file we made, so close() */
	ino_t ino;                      /* never unlinks a successor's socket */
};

/* An answer being built.  After an allocation failure it only remembers that. */
struct cli_buf {
	char *data;
	size_t len;
	size_t cap;
	int err;
};

struct cli_request {
	const char *words[CLI_MAX_WORDS];
	int n_words;
	int json;
};

struct cli_command {
	const char *words[2];
	int (*run)(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out);
};

/* ------------------------------------------------------------ small helpers */

static uint64_t cli_now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t cli_elapsed_s(uint64_t since_ms, uint64_t now_ms)
{
	return since_ms && now_ms > since_ms ? (now_ms - since_ms) / 1000 : 0;
}

static void cli_buf_reserve(struct cli_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->err || b->len + more <= b->cap)
		return;
	if (b->len + more > CLI_ANSWER_MAX) {
		b->err = -EFBIG;
		return;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->data = p;
	b->cap = cap;
}

static void cli_buf_add(struct cli_buf *b, const char *s, size_t n)
{
	cli_buf_reserve(b, n + 1);
	if (b->err)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

static void cli_buf_printf(struct cli_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cli_buf_printf(struct cli_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = b->err ? b->err : -EINVAL;
		return;
	}
	cli_buf_reserve(b, (size_t)n + 1);
	if (b->err)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* jansson's dump callback: append to a cli_buf. */
static int cli_buf_dump_cb(const char *s, size_t n, void *arg)
{
	struct cli_buf *b = arg;

	cli_buf_add(b, s, n);
	return b->err ? -1 : 0;
}

static void cli_buf_add_json(struct cli_buf *b, json_t *value)
{
	if (!value) {
		b->err = b->err ? b->err : -ENOMEM;
		return;
	}
	if (json_dump_callback(value, cli_buf_dump_cb, b, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
		b->err = b->err ? b->err : -ENOMEM;
}

/*
 * Copy a fixed-size shm string for display: bounded by its array (a copy
 * from shared memory need not be terminated) and with control characters
 * replaced, so a hostile From header cannot forge lines in a table.
 */
static void cli_clean(char *dst, size_t dst_size, const char *src, size_t src_max)
{
	size_t n = strnlen(src, src_max);

	if (n >= dst_size)
		n = dst_size - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
}

/* A JSON string, or null for "" when `empty_null`.  SIP text should be UTF-8,
 * but a peer can send anything: invalid bytes become '?' rather than losing
 * the whole answer. */
static json_t *cli_json_str(const char *s, int empty_null)
{
	json_t *v;
	char *copy;

	if (empty_null && *s == '\0')
		return json_null();
	v = json_string(s);
	if (v)
		return v;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	v = json_string(copy);
	free(copy);
	return v;
}

static json_t *cli_json_u64(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* How many worker slots to show: the configured count, within the table's. */
static unsigned cli_worker_count(const cli_server_t *srv)
{
	unsigned max = shm_max_workers(srv->shm);

	return srv->workers && srv->workers < max ? srv->workers : max;
}

/* ------------------------------------------------------------ show workers */

static int cli_show_workers(cli_server_t *srv, const struct cli_request *req,
			    struct cli_buf *out)
{
	uint64_t now = cli_now_ms(CLOCK_REALTIME);
	unsigned n = cli_worker_count(srv);
	json_t *arr = NULL;

	if (req->json) {
		arr = json_array();
		if (!arr)
			return -ENOMEM;
	} else {
		cli_buf_printf(out, "%-6s %-8s %-6s %-8s %-9s %s\n",
			       "INDEX", "PID", "PORT", "ACTIVE", "UPTIME_S", "RESTARTS");
	}
	for (unsigned i = 0; i < n; i++) {
		struct shm_worker_info w;
		uint64_t up;

		if (shm_worker_read(srv->shm, i, &w) < 0)
			continue;
		up = w.pid ? cli_elapsed_s(w.started_ms, now) : 0;
		if (arr) {
			json_array_append_new(arr, json_pack("{s:i, s:i, s:i, s:o, s:o, s:o}",
				"index", (int)i, "pid", (int)w.pid, "port", (int)w.port,
				"active_calls", cli_json_u64(w.counters[SHM_CTR_ACTIVE]),
				"uptime_s", cli_json_u64(up),
				"restarts", cli_json_u64(w.restarts)));
			continue;
		}
		if (w.pid)
			cli_buf_printf(out, "%-6u %-8d %-6u %-8" PRIu64 " %-9" PRIu64
				       " %" PRIu32 "\n", i, (int)w.pid, (unsigned)w.port,
				       w.counters[SHM_CTR_ACTIVE], up, w.restarts);
		else
			cli_buf_printf(out, "%-6u %-8s %-6u %-8" PRIu64 " %-9s %" PRIu32 "\n",
				       i, "-", (unsigned)w.port, w.counters[SHM_CTR_ACTIVE],
				       "-", w.restarts);
	}
	if (arr) {
		/* A failed json_pack above leaves the array short: report it, don't lie. */
		if (json_array_size(arr) != n)
			out->err = -ENOMEM;
		cli_buf_add_json(out, arr);
		cli_buf_add(out, "\n", 1);
		json_decref(arr);
	} else {
		cli_buf_printf(out, "draining: %s\n", srv->draining ? "yes" : "no");
	}
	return out->err;
}

/* ------------------------------------------------------------ show calls */

static const char *cli_state_name(uint8_t state)
{
	switch (state) {
	case SHM_CALL_TRYING:     return "TRYING";
	case SHM_CALL_RINGING:    return "RINGING";
	case SHM_CALL_ANSWERED:   return "ANSWERED";
	case SHM_CALL_HELD:       return "HELD";
	case SHM_CALL_FORWARDING: return "FORWARDING";
	case SHM_CALL_ENDING:     return "ENDING";
	default:                  return "UNKNOWN";
	}
}

static const char *cli_party_name(uint8_t party)
{
	switch (party) {
	case SHM_PARTY_CALLER: return "caller";
	case SHM_PARTY_CALLEE: return "callee";
	default:               return NULL;
	}
}

struct cli_calls_walk {
	struct cli_buf *out;
	int json;
	unsigned count;
	uint64_t now_ms;
};

/* The displayable strings of one call, cleaned once for text and JSON alike. */
struct cli_call_text {
	char id[24];
	char caller[SHM_URI_MAX];
	char callee[SHM_URI_MAX];
	char forward_target[SHM_URI_MAX];
	char a_call_id[SHM_CALLID_MAX];
	char b_call_id[SHM_CALLID_MAX];
	char state[32];
	const char *held_by;
	uint64_t age_s;
};

static void cli_call_text(const struct shm_call *c, uint64_t now_ms, struct cli_call_text *t)
{
	snprintf(t->id, sizeof t->id, "%" PRIu64, c->id);
	cli_clean(t->caller, sizeof t->caller, c->caller, sizeof c->caller);
	cli_clean(t->callee, sizeof t->callee, c->callee, sizeof c->callee);
	cli_clean(t->forward_target, sizeof t->forward_target, c->forward_target,
		  sizeof c->forward_target);
	cli_clean(t->a_call_id, sizeof t->a_call_id, c->a.call_id, sizeof c->a.call_id);
	cli_clean(t->b_call_id, sizeof t->b_call_id, c->b.call_id, sizeof c->b.call_id);
	t->held_by = c->state == SHM_CALL_HELD ? cli_party_name(c->held_by) : NULL;
	if (t->held_by)
		snprintf(t->state, sizeof t->state, "HELD(by %s)", t->held_by);
	else
		snprintf(t->state, sizeof t->state, "%s", cli_state_name(c->state));
	t->age_s = cli_elapsed_s(c->start_ms, now_ms);
}

static void cli_call_json(struct cli_buf *out, const struct shm_call *c,
			  const struct cli_call_text *t)
{
	json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:o, s:o, s:i, s:o, s:o, s:o}",
		"id", t->id,
		"caller", cli_json_str(t->caller, 0),
		"callee", cli_json_str(t->callee, 0),
		"state", cli_state_name(c->state),
		"held_by", t->held_by ? json_string(t->held_by) : json_null(),
		"age_s", cli_json_u64(t->age_s),
		"worker", (int)c->worker,
		"forward_target", cli_json_str(t->forward_target, 1),
		"a_call_id", cli_json_str(t->a_call_id, 0),
		"b_call_id", cli_json_str(t->b_call_id, 1));

	cli_buf_add_json(out, o);
	json_decref(o);
}

static int cli_calls_one(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct cli_calls_walk *walk = arg;
	struct cli_call_text t;

	cli_call_text(c, walk->now_ms, &t);
	if (walk->json) {
		cli_buf_add(walk->out, walk->count ? ",\n" : "", walk->count ? 2 : 0);
		cli_call_json(walk->out, c, &t);
	} else {
		cli_buf_printf(walk->out, "%-20s %-32s %-32s %-16s %6" PRIu64 " %u\n",
			       t.id, t.caller, t.callee, t.state, t.age_s, (unsigned)c->worker);
	}
	walk->count++;
	/* Stop walking once the answer cannot be built anyway. */
	return walk->out->err;
}

static int cli_show_calls(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out)
{
	struct cli_calls_walk walk = {
		.out = out, .json = req->json, .now_ms = cli_now_ms(CLOCK_REALTIME),
	};

	if (req->json)
		cli_buf_add(out, "[", 1);
	else
		cli_buf_printf(out, "%-20s %-32s %-32s %-16s %6s %s\n",
			       "ID", "CALLER", "CALLEE", "STATE", "AGE_S", "WORKER");
	shm_call_foreach(srv->shm, cli_calls_one, &walk);
	if (req->json)
		cli_buf_add(out, "]\n", 2);
	else
		cli_buf_printf(out, "%u call%s\n", walk.count, walk.count == 1 ? "" : "s");
	return out->err;
}

/* ------------------------------------------------------------ show stats */

struct cli_stats {
	uint64_t ctr[SHM_CTR__COUNT];   /* summed over workers */
	unsigned active;
};

static void cli_stats_sum(const cli_server_t *srv, struct cli_stats *st)
{
	unsigned n = cli_worker_count(srv);

	memset(st, 0, sizeof *st);
	for (unsigned i = 0; i < n; i++) {
		struct shm_worker_info w;

		if (shm_worker_read(srv->shm, i, &w) < 0)
			continue;
		for (int c = 0; c < SHM_CTR__COUNT; c++)
			st->ctr[c] += w.counters[c];
	}
	/* The table's admission counter is the truth about live calls. */
	st->active = shm_call_count(srv->shm);
}

static int cli_stats_json(cli_server_t *srv, const struct cli_stats *st, struct cli_buf *out)
{
	json_t *codes = json_object();
	json_t *o;

	if (!codes)
		return -ENOMEM;
	for (int code = SHM_CODE_MIN; code <= SHM_CODE_MAX; code++) {
		uint64_t n = shm_code_total(srv->shm, code);
		char key[12];

		if (n == 0)
			continue;
		snprintf(key, sizeof key, "%d", code);
		json_object_set_new(codes, key, cli_json_u64(n));
	}
	o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
		"node_id", cli_json_str(srv->node_id, 0),
		"calls_total", cli_json_u64(st->ctr[SHM_CTR_CALLS_TOTAL]),
		"calls_active", cli_json_u64(st->active),
		"calls_answered", cli_json_u64(st->ctr[SHM_CTR_CALLS_ANSWERED]),
		"calls_failed", cli_json_u64(st->ctr[SHM_CTR_CALLS_FAILED]),
		"final_codes", codes,
		"msgs_in", cli_json_u64(st->ctr[SHM_CTR_MSGS_IN]),
		"msgs_out", cli_json_u64(st->ctr[SHM_CTR_MSGS_OUT]),
		"draining", srv->draining);
	cli_buf_add_json(out, o);
	cli_buf_add(out, "\n", 1);
	json_decref(o);
	return out->err;
}

static int cli_stats_text(cli_server_t *srv, const struct cli_stats *st, struct cli_buf *out)
{
	int any = 0;

	cli_buf_printf(out, "node:             %s\n", srv->node_id);
	cli_buf_printf(out, "draining:         %s\n", srv->draining ? "yes" : "no");
	cli_buf_printf(out, "calls total:      %" PRIu64 "\n", st->ctr[SHM_CTR_CALLS_TOTAL]);
	cli_buf_printf(out, "calls active:     %u\n", st->active);
	cli_buf_printf(out, "calls answered:   %" PRIu64 "\n", st->ctr[SHM_CTR_CALLS_ANSWERED]);
	cli_buf_printf(out, "calls failed:     %" PRIu64 "\n", st->ctr[SHM_CTR_CALLS_FAILED]);
	cli_buf_printf(out, "messages in:      %" PRIu64 "\n", st->ctr[SHM_CTR_MSGS_IN]);
	cli_buf_printf(out, "messages out:     %" PRIu64 "\n", st->ctr[SHM_CTR_MSGS_OUT]);
	cli_buf_printf(out, "final codes sent:");
	for (int code = SHM_CODE_MIN; code <= SHM_CODE_MAX; code++) {
		uint64_t n = shm_code_total(srv->shm, code);

		if (n == 0)
			continue;
		cli_buf_printf(out, "\n  %d  %" PRIu64, code, n);
		any = 1;
	}
	cli_buf_printf(out, "%s\n", any ? "" : " none");
	return out->err;
}

static int cli_show_stats(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out)
{
	struct cli_stats st;

	cli_stats_sum(srv, &st);
	return req->json ? cli_stats_json(srv, &st, out) : cli_stats_text(srv, &st, out);
}

/* ------------------------------------------------------------ help, dispatch */

static int cli_help(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out)
{
	cli_buf_add(out, CLI_USAGE, strlen(CLI_USAGE));
	return out->err;
}

static const struct cli_command cli_commands[] = {
	{ { "show", "workers" }, cli_show_workers },
	{ { "show", "calls" },   cli_show_calls },
	{ { "show", "stats" },   cli_show_stats },
	{ { "help", NULL },      cli_help },
};

static const struct cli_command *cli_find_command(const struct cli_request *req)
{
	for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0]; i++) {
		const struct cli_command *cmd = &cli_commands[i];
		int want = cmd->words[1] ? 2 : 1;

		if (req->n_words != want || strcmp(req->words[0], cmd->words[0]) != 0)
			continue;
		if (want == 1 || strcmp(req->words[1], cmd->words[1]) == 0)
			return cmd;
	}
	return NULL;
}

/* Split the request line in place.  "--json" may stand anywhere. */
static int cli_parse_request(char *line, struct cli_request *req)
{
	char *save = NULL;

	memset(req, 0, sizeof *req);
	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (strcmp(w, CLI_JSON_FLAG) == 0) {
			req->json = 1;
			continue;
		}
		if (req->n_words == CLI_MAX_WORDS)
			return -E2BIG;
		req->words[req->n_words++] = w;
	}
	return req->n_words ? 0 : -ENODATA;
}

/* ------------------------------------------------------------ one client */

static void cli_set_timeout(int fd, int opt, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000 };

	/* 0 would mean "forever" to the kernel. */
	if (ms == 0)
		tv.tv_usec = 1000;
	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* Send all of buf before `deadline` (CLOCK_MONOTONIC ms): 0 or -errno. */
static int cli_send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		uint64_t now = cli_now_ms(CLOCK_MONOTONIC);
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		cli_set_timeout(fd, SO_SNDTIMEO, deadline - now);
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cli_respond(int fd, int status, const char *text, const struct cli_buf *body)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_WRITE_TIMEOUT_MS;
	char line[256];
	int n, err;

	n = snprintf(line, sizeof line, "%d %s\n", status, text);
	if (n < 0 || (size_t)n >= sizeof line)
		return -EINVAL;
	err = cli_send_all(fd, line, (size_t)n, deadline);
	if (err == 0 && body && body->len)
		err = cli_send_all(fd, body->data, body->len, deadline);
	return err;
}

/*
 * Read the request line within CLI_READ_TIMEOUT_MS in all (not per read, so
 * a client dribbling a byte a second cannot hold the master).  Returns 0 with
 * a NUL-terminated line, -ETIMEDOUT, -ENODATA (closed without a word) or
 * -E2BIG (no newline within CLI_REQUEST_MAX bytes).
 */
static int cli_read_request(int fd, char *line, size_t size)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_READ_TIMEOUT_MS;
	size_t len = 0;

	for (;;) {
		uint64_t now = cli_now_ms(CLOCK_MONOTONIC);
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		cli_set_timeout(fd, SO_RCVTIMEO, deadline - now);
		n = recv(fd, line + len, size - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (n == 0) {
			line[len] = '\0';
			return len ? 0 : -ENODATA;
		}
		len += (size_t)n;
		line[len] = '\0';
		if (memchr(line, '\n', len))
			return 0;
		if (len == size - 1)
			return -E2BIG;
	}
}

/* Root and the daemon's own user; SO_PEERCRED is what the kernel saw at connect(). */
static int cli_peer_allowed(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	*uid = cred.uid;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void cli_run(cli_server_t *srv, int fd, char *line)
{
	struct cli_buf body = { 0 };
	const struct cli_command *cmd = NULL;
	struct cli_request req;
	char text[128];
	int err, status = CLI_STATUS_OK;

	err = cli_parse_request(line, &req);
	if (err == 0)
		cmd = cli_find_command(&req);
	if (!cmd) {
		status = CLI_STATUS_USAGE;
		if (err == -ENODATA)
			snprintf(text, sizeof text, "empty request");
		else
			snprintf(text, sizeof text, "unknown command '%.40s%s%.40s'",
				 req.words[0], req.n_words > 1 ? " " : "",
				 req.n_words > 1 ? req.words[1] : "");
		cli_help(srv, &req, &body);
	} else if ((err = cmd->run(srv, &req, &body)) < 0) {
		status = CLI_STATUS_ERROR;
		snprintf(text, sizeof text, "cannot build the answer: %s", strerror(-err));
		log_error("cli: '%s %s': %s", req.words[0], req.n_words > 1 ? req.words[1] : "",
			  strerror(-err));
		body.len = 0;
	} else {
		snprintf(text, sizeof text, "ok");
	}
	err = cli_respond(fd, status, text, &body);
	if (err < 0)
		log_warn("cli: client dropped while answering: %s", strerror(-err));
	free(body.data);
}

static void cli_serve_client(cli_server_t *srv, int fd)
{
	char line[CLI_REQUEST_MAX + 1];
	uid_t uid = (uid_t)-1;
	char text[160];
	int err;

	/* Read the request even from a peer we refuse: closing on unread data
	 * would reset the connection and the client would never see why. */
	err = cli_read_request(fd, line, sizeof line);
	if (!cli_peer_allowed(fd, &uid)) {
		log_warn("cli: refused a client with uid %d: only root and uid %d may use the CLI",
			 (int)uid, (int)geteuid());
		snprintf(text, sizeof text, "permission denied: uid %d may not use the b2bua CLI "
			 "(only root and uid %d)", (int)uid, (int)geteuid());
		cli_respond(fd, CLI_STATUS_ERROR, text, NULL);
		return;
	}
	if (err == -ETIMEDOUT) {
		log_debug("cli: dropped a client that sent no request within %d ms",
			  CLI_READ_TIMEOUT_MS);
		cli_respond(fd, CLI_STATUS_ERROR, "no request within 1 s", NULL);
		return;
	}
	if (err == -E2BIG) {
		cli_respond(fd, CLI_STATUS_USAGE, "request line too long", NULL);
		return;
	}
	if (err < 0)
		return;
	cli_run(srv, fd, line);
}

void cli_server_handle(cli_server_t *srv)
{
	for (int i = 0; i < CLI_ACCEPT_BATCH; i++) {
		/* Accepted sockets are blocking; every read and write is bounded by a timeout. */
		int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("cli: accept on %s: %s", srv->path, strerror(errno));
			return;
		}
		cli_serve_client(srv, fd);
		close(fd);
	}
}

/* ------------------------------------------------------------ the socket */

static int cli_make_parent_dir(const char *path)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0) {
		log_info("cli: created directory %s (mode 0700)", dir);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	log_error("cli: cannot create directory %s: %s", dir, strerror(errno));
	return -errno;
}

/*
 * Make sure `path` is free to bind: absent, or a socket nobody answers on
 * (left behind by a daemon that crashed), which is removed.  A socket that
 * answers belongs to a running daemon: -EADDRINUSE.  Anything else at that
 * path is not ours to delete: -EEXIST.
 */
static int cli_claim_path(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, err;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("cli: %s exists and is not a socket; not replacing it", sun->sun_path);
		return -EEXIST;
	}
	/* Non-blocking, so a daemon with a full backlog reads as alive (EAGAIN), not as a hang. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = connect(fd, (const struct sockaddr *)sun, sizeof *sun) < 0 ? errno : 0;
	close(fd);
	if (err == 0 || err == EAGAIN) {
		log_error("cli: another daemon is listening on %s", sun->sun_path);
		return -EADDRINUSE;
	}
	if (err != ECONNREFUSED) {
		log_error("cli: cannot probe %s: %s", sun->sun_path, strerror(err));
		return -err;
	}
	log_info("cli: removing stale socket %s", sun->sun_path);
	if (unlink(sun->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Bind with umask 0177 so the file never exists with a looser mode, even briefly. */
static int cli_bind_listen(cli_server_t *srv, const struct sockaddr_un *sun)
{
	struct stat st;
	mode_t old;
	int err;

	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0)
		return -errno;
	old = umask(0177);
	err = bind(srv->fd, (const struct sockaddr *)sun, sizeof *sun) < 0 ? -errno : 0;
	umask(old);
	if (err < 0) {
		log_error("cli: cannot bind %s: %s", sun->sun_path, strerror(-err));
		return err;
	}
	if (chmod(sun->sun_path, 0600) < 0 || lstat(sun->sun_path, &st) < 0 ||
	    listen(srv->fd, CLI_LISTEN_BACKLOG) < 0) {
		err = -errno;
		log_error("cli: cannot set up %s: %s", sun->sun_path, strerror(errno));
		unlink(sun->sun_path);
		return err;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	return 0;
}

int cli_server_open(const struct config *cfg, shm_t *shm, cli_server_t **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(cfg->cli_socket);
	cli_server_t *srv;
	int err;

	if (len == 0 || len >= sizeof sun.sun_path) {
		log_error("cli: cli_socket '%s': %s", cfg->cli_socket,
			  len ? "path too long for a Unix socket" : "empty path");
		return len ? -ENAMETOOLONG : -EINVAL;
	}
	memcpy(sun.sun_path, cfg->cli_socket, len + 1);
	srv = calloc(1, sizeof *srv);
	if (!srv)
		return -ENOMEM;
	srv->fd = -1;
	srv->shm = shm;
	srv->workers = cfg->workers > 0 ? (unsigned)cfg->workers : 0;
	snprintf(srv->node_id, sizeof srv->node_id, "%s", cfg->node_id);
	memcpy(srv->path, sun.sun_path, len + 1);

	err = cli_make_parent_dir(srv->path);
	if (err == 0)
		err = cli_claim_path(&sun);
	if (err == 0)
		err = cli_bind_listen(srv, &sun);
	if (err < 0) {
		if (srv->fd >= 0)
			close(srv->fd);
		free(srv);
		return err;
	}
	log_info("cli: listening on %s", srv->path);
	*out = srv;
	return 0;
}

int cli_server_fd(const cli_server_t *srv)
{
	return srv->fd;
}

void cli_server_set_draining(cli_server_t *srv, int draining)
{
	srv->draining = draining != 0;
}

void cli_server_close(cli_server_t *srv)
{
	struct stat st;

	if (!srv)
		return;
	close(srv->fd);
	/* Only our own file: a successor daemon may already have replaced it. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	free(srv);
}
