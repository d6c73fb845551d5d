/*
 * cli_server — see cli_server.h; the wire protocol is in cli_proto.h.
 *
 * Design note.  The master serves the CLI itself, one client at a time,
 * from its poll loop: requests are rare and almost every answer is read
 * straight from shared memory, so a thread or a round trip to a worker
 * would buy nothing.  What keeps the master responsive is that every client
 * is bounded: 1 s to send its request line, CLI_WRITE_TIMEOUT_MS to take the
 * answer, CLI_ACCEPT_BATCH clients per wake-up.
 *
 * The exception is `call kill`: only the worker that owns a call can hang
 * up its dialogs.  The master installs a function that passes a one-line
 * request to a worker and waits (at most 1 s) for its one-line answer; the
 * CLI then watches the call table, at most CLI_KILL_WAIT_MS, until the call
 * has gone, so that "killed" means the call is over, not merely asked to be.
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
 *
 * Subscribers (`user ...`, forwarding included) and CDRs (`cdr tail`) are
 * not in shared memory: they live in Redis, where every worker's registrar
 * reads the subscribers and every worker adds its CDRs to one Stream
 * (XREVRANGE reads its tail without disturbing billing consumers' groups).
 * Those commands open
 * a synchronous hiredis connection, use it and close it again.  The master
 * is no worker, so a short blocking call is acceptable here, but every step
 * is bounded: 1 s to connect, 1 s per reply, CLI_LIST_MAX_MS for a whole
 * `user list`.  Each change is one Lua script, so that "only if the user
 * exists" (or "only if it does not") holds against concurrent CLIs, and a
 * user never exists half-written.  The password is turned into the two HA1
 * values at once and is neither stored nor logged; the request line that
 * carried it is wiped after use.
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

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "worker/digest.h"

#define CLI_READ_TIMEOUT_MS   1000          /* a client that sends nothing is dropped */
#define CLI_WRITE_TIMEOUT_MS  3000          /* a client that does not read is dropped */
#define CLI_ACCEPT_BATCH      16            /* then back to the master's loop */
#define CLI_BATCH_MS          1000          /* ... or once this much time went on clients */
#define CLI_LISTEN_BACKLOG    16
#define CLI_ANSWER_MAX        (256u << 20)  /* sanity bound on one answer */
#define CLI_TEXT_MAX          400           /* the text of a status line */
#define CLI_REDIS_TIMEOUT_MS  1000          /* to connect, and per reply */
#define CLI_LIST_MAX_MS       3000          /* a whole `user list` */
#define CLI_SCAN_COUNT        "1000"        /* keys looked at per SCAN step */
#define CLI_LIST_BATCH        256           /* users per pipelined round trip */
#define CLI_KEY_MAX           256
#define CLI_KILL_WAIT_MS      2000          /* a killed call must leave the table within */
#define CLI_KILL_POLL_MS      10
#define CLI_WORKER_REPLY_MAX  256

struct cli_server {
	int fd;
	shm_t *shm;
	unsigned workers;
	int draining;
	char node_id[sizeof ((struct config *)0)->node_id];
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
	/* Where the subscribers are (config keys of the same names). */
	char redis_address[sizeof ((struct config *)0)->redis_address];
	char redis_password[sizeof ((struct config *)0)->redis_password];
	int redis_db;
	char redis_prefix[sizeof ((struct config *)0)->redis_prefix];
	char realm[sizeof ((struct config *)0)->realm];
	char cdr_stream[sizeof ((struct config *)0)->cdr_stream];
	int no_answer_timeout;          /* shown as the default of fwd_noanswer_timeout */
	/* How to ask a worker (call kill); NULL until the master installs it. */
	cli_worker_request_f *worker_request;
	void *worker_request_arg;
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

/* Options besides --json; a command lists those it accepts. */
enum {
	CLI_OPT_PASSWORD  = 1 << 0,     /* --password PW */
	CLI_OPT_DISPLAY   = 1 << 1,     /* --display TEXT */
	CLI_OPT_MAX_CALLS = 1 << 2,     /* --max-calls N */
	CLI_OPT_ALWAYS    = 1 << 3,     /* --always TARGET */
	CLI_OPT_BUSY      = 1 << 4,     /* --busy TARGET */
	CLI_OPT_NO_ANSWER = 1 << 5,     /* --no-answer TARGET */
	CLI_OPT_TIMEOUT   = 1 << 6,     /* --timeout SECONDS */
	CLI_OPT_CLEAR     = 1 << 7,     /* --clear */
	CLI_OPT_LONG      = 1 << 8,     /* --long */
};
#define CLI_OPT_FORWARD (CLI_OPT_ALWAYS | CLI_OPT_BUSY | CLI_OPT_NO_ANSWER | CLI_OPT_TIMEOUT)

struct cli_option {
	const char *name;
	unsigned flag;
	int takes_value;                    /* else a flag on its own */
};

static const struct cli_option cli_options[] = {
	{ "--password",  CLI_OPT_PASSWORD,  1 },
	{ "--display",   CLI_OPT_DISPLAY,   1 },
	{ "--max-calls", CLI_OPT_MAX_CALLS, 1 },
	{ "--always",    CLI_OPT_ALWAYS,    1 },
	{ "--busy",      CLI_OPT_BUSY,      1 },
	{ "--no-answer", CLI_OPT_NO_ANSWER, 1 },
	{ "--timeout",   CLI_OPT_TIMEOUT,   1 },
	{ "--clear",     CLI_OPT_CLEAR,     0 },
	{ "--long",      CLI_OPT_LONG,      0 },
};
#define CLI_N_OPTIONS (sizeof cli_options / sizeof cli_options[0])

struct cli_request {
	const char *words[CLI_MAX_WORDS];   /* decoded, in the line's buffer */
	int n_words;
	int json;
	unsigned opts;                      /* CLI_OPT_* given */
	const char *values[CLI_N_OPTIONS];  /* by cli_options index; NULL when not given */
};

/* The status line of an answer: "ok", or what went wrong for the operator. */
struct cli_reply {
	int status;                         /* CLI_STATUS_* */
	char text[CLI_TEXT_MAX];
};

/* What follows the command words. */
enum cli_operand {
	CLI_OPERAND_NONE = 0,
	CLI_OPERAND_USER,                   /* NAME */
	CLI_OPERAND_CALL,                   /* ID */
	CLI_OPERAND_COUNT,                  /* [N]: optional */
};

/*
 * A command returns 0 with its body in `out`, or a negative errno.  A
 * failure the operator should read ("no such user bob") is set in *reply
 * first (cli_fail); any other is "cannot build the answer" and is logged.
 */
struct cli_command {
	const char *words[2];
	enum cli_operand operand;           /* in words[2] */
	unsigned opts;                      /* CLI_OPT_* it accepts; --json goes with all */
	int (*run)(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
		   struct cli_reply *reply);
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

static int cli_fail(struct cli_reply *reply, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Set the status line of a failed command; returns -EPROTO for the command to return. */
static int cli_fail(struct cli_reply *reply, int status, const char *fmt, ...)
{
	va_list ap;

	reply->status = status;
	va_start(ap, fmt);
	vsnprintf(reply->text, sizeof reply->text, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

/* The value of option `flag` in the request, NULL when not given. */
static const char *cli_opt(const struct cli_request *req, unsigned flag)
{
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		if (cli_options[i].flag == flag)
			return req->values[i];
	}
	return NULL;
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
			    struct cli_buf *out, struct cli_reply *reply)
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
	int long_form;                  /* --long: legs and times too */
	unsigned count;
	uint64_t now_ms;
};

/* The displayable strings of one call, cleaned once for text and JSON alike. */
struct cli_call_text {
	char id[SHM_ID_MAX];
	char caller[SHM_URI_MAX];
	char callee[SHM_URI_MAX];
	char forward_target[SHM_URI_MAX];
	char a_call_id[SHM_CALLID_MAX];
	char b_call_id[SHM_CALLID_MAX];
	char state[32];
	const char *held_by;
	uint64_t age_s;
};

/* One leg's dialog identifiers, cleaned. */
struct cli_leg_text {
	char call_id[SHM_CALLID_MAX];
	char local_tag[SHM_TAG_MAX];
	char remote_tag[SHM_TAG_MAX];
	char remote_target[SHM_URI_MAX];
};

static void cli_call_text(const struct shm_call *c, uint64_t now_ms, struct cli_call_text *t)
{
	cli_clean(t->id, sizeof t->id, c->id, sizeof c->id);
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

static void cli_leg_text(const struct shm_leg *leg, struct cli_leg_text *l)
{
	cli_clean(l->call_id, sizeof l->call_id, leg->call_id, sizeof leg->call_id);
	cli_clean(l->local_tag, sizeof l->local_tag, leg->local_tag, sizeof leg->local_tag);
	cli_clean(l->remote_tag, sizeof l->remote_tag, leg->remote_tag, sizeof leg->remote_tag);
	cli_clean(l->remote_target, sizeof l->remote_target, leg->remote_target,
		  sizeof leg->remote_target);
}

/* ISO-8601 UTC with milliseconds ("2024-05-01T12:00:00.250Z"); "-" for 0. */
static void cli_iso_ms(uint64_t ms, char *out, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	snprintf(out, size, "-");
	if (ms == 0 || !gmtime_r(&secs, &tm))
		return;
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n > 0)
		snprintf(out + n, size - n, ".%03uZ", (unsigned)(ms % 1000));
}

static const char *cli_dash(const char *s)
{
	return *s ? s : "-";
}

/* The object of `show calls --json`. */
static json_t *cli_call_json(const struct shm_call *c, const struct cli_call_text *t)
{
	return json_pack("{s:s, s:o, s:o, s:s, s:o, s:o, s:i, s:o, s:o, s:o}",
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
}

static json_t *cli_leg_json(const struct shm_leg *leg)
{
	struct cli_leg_text l;

	cli_leg_text(leg, &l);
	return json_pack("{s:o, s:o, s:o, s:o}",
		"call_id", cli_json_str(l.call_id, 1),
		"local_tag", cli_json_str(l.local_tag, 1),
		"remote_tag", cli_json_str(l.remote_tag, 1),
		"remote_target", cli_json_str(l.remote_target, 1));
}

/* The --long object: the short one plus times and both legs; NULL without memory. */
static json_t *cli_call_json_long(const struct shm_call *c, const struct cli_call_text *t)
{
	json_t *o = cli_call_json(c, t);

	if (!o)
		return NULL;
	if (json_object_set_new(o, "start_ms", cli_json_u64(c->start_ms)) < 0 ||
	    json_object_set_new(o, "ring_ms", cli_json_u64(c->ring_ms)) < 0 ||
	    json_object_set_new(o, "answer_ms", cli_json_u64(c->answer_ms)) < 0 ||
	    json_object_set_new(o, "a", cli_leg_json(&c->a)) < 0 ||
	    json_object_set_new(o, "b", cli_leg_json(&c->b)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void cli_leg_long_text(struct cli_buf *out, const char *name, const struct shm_leg *leg)
{
	struct cli_leg_text l;

	cli_leg_text(leg, &l);
	cli_buf_printf(out, "  %s call-id: %s\n", name, cli_dash(l.call_id));
	cli_buf_printf(out, "  %s tags:    local %s, remote %s\n", name, cli_dash(l.local_tag),
		       cli_dash(l.remote_tag));
	cli_buf_printf(out, "  %s target:  %s\n", name, cli_dash(l.remote_target));
}

/* One call as a block of lines: `show calls --long` and `show call ID`. */
static void cli_call_long_text(struct cli_buf *out, const struct shm_call *c,
			       const struct cli_call_text *t)
{
	char start[40], ring[40], answer[40];

	cli_iso_ms(c->start_ms, start, sizeof start);
	cli_iso_ms(c->ring_ms, ring, sizeof ring);
	cli_iso_ms(c->answer_ms, answer, sizeof answer);
	cli_buf_printf(out, "call %s\n", t->id);
	cli_buf_printf(out, "  state:         %s\n", cli_state_name(c->state));
	cli_buf_printf(out, "  held:          %s%s\n", t->held_by ? "by " : "no",
		       t->held_by ? t->held_by : "");
	cli_buf_printf(out, "  worker:        %u\n", (unsigned)c->worker);
	cli_buf_printf(out, "  caller:        %s\n", t->caller);
	cli_buf_printf(out, "  callee:        %s\n", t->callee);
	cli_buf_printf(out, "  forward:       %s\n", cli_dash(t->forward_target));
	cli_buf_printf(out, "  started:       %s (%" PRIu64 " s ago)\n", start, t->age_s);
	cli_buf_printf(out, "  ringing:       %s\n", ring);
	cli_buf_printf(out, "  answered:      %s\n", answer);
	cli_leg_long_text(out, "A-leg", &c->a);
	cli_leg_long_text(out, "B-leg", &c->b);
}

static int cli_calls_one(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct cli_calls_walk *walk = arg;
	struct cli_call_text t;
	json_t *o;

	cli_call_text(c, walk->now_ms, &t);
	if (walk->json) {
		cli_buf_add(walk->out, walk->count ? ",\n" : "", walk->count ? 2 : 0);
		o = walk->long_form ? cli_call_json_long(c, &t) : cli_call_json(c, &t);
		cli_buf_add_json(walk->out, o);
		json_decref(o);
	} else if (walk->long_form) {
		cli_buf_add(walk->out, walk->count ? "\n" : "", walk->count ? 1 : 0);
		cli_call_long_text(walk->out, c, &t);
	} else {
		cli_buf_printf(walk->out, "%-20s %-32s %-32s %-16s %6" PRIu64 " %-6u %s\n",
			       t.id, t.caller, t.callee, t.state, t.age_s, (unsigned)c->worker,
			       cli_dash(t.forward_target));
	}
	walk->count++;
	/* Stop walking once the answer cannot be built anyway. */
	return walk->out->err;
}

static int cli_show_calls(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			  struct cli_reply *reply)
{
	struct cli_calls_walk walk = {
		.out = out, .json = req->json, .long_form = (req->opts & CLI_OPT_LONG) != 0,
		.now_ms = cli_now_ms(CLOCK_REALTIME),
	};

	if (req->json)
		cli_buf_add(out, "[", 1);
	else if (!walk.long_form)
		cli_buf_printf(out, "%-20s %-32s %-32s %-16s %6s %-6s %s\n",
			       "ID", "CALLER", "CALLEE", "STATE", "AGE_S", "WORKER", "FORWARD");
	shm_call_foreach(srv->shm, cli_calls_one, &walk);
	if (req->json)
		cli_buf_add(out, "]\n", 2);
	else
		cli_buf_printf(out, "%s%u call%s\n", walk.long_form && walk.count ? "\n" : "",
			       walk.count, walk.count == 1 ? "" : "s");
	return out->err;
}

/* ------------------------------------------------------------ show call, call kill */

/* The ID operand (the third word): the call id `show calls` prints. */
static int cli_call_id(const struct cli_request *req, struct cli_reply *reply, const char **id)
{
	if (!cli_proto_call_id_ok(req->words[2]))
		return cli_fail(reply, CLI_STATUS_USAGE, "bad call ID '%.40s': the id "
				"that 'show calls' prints (NODE-wN-HEX-N)", req->words[2]);
	*id = req->words[2];
	return 0;
}

struct cli_call_match {
	const char *id;
	uint32_t slot;
	struct shm_call *call;
};

static int cli_call_match_one(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct cli_call_match *m = arg;

	if (strncmp(c->id, m->id, sizeof c->id) != 0)
		return 0;
	m->slot = slot;
	*m->call = *c;
	return 1;
}

/* The call with this id: 0 with its slot and a copy, or -ENOENT. */
static int cli_call_find(const cli_server_t *srv, const char *id, uint32_t *slot,
			 struct shm_call *out)
{
	struct cli_call_match m = { .id = id, .call = out };

	if (!shm_call_foreach(srv->shm, cli_call_match_one, &m))
		return -ENOENT;
	*slot = m.slot;
	return 0;
}

static int cli_show_call(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			 struct cli_reply *reply)
{
	struct cli_call_text t;
	struct shm_call c;
	uint32_t slot;
	const char *id = NULL;
	json_t *o;
	int err;

	if ((err = cli_call_id(req, reply, &id)) < 0)
		return err;
	if (cli_call_find(srv, id, &slot, &c) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "no such call %s", id);
	cli_call_text(&c, cli_now_ms(CLOCK_REALTIME), &t);
	if (req->json) {
		o = cli_call_json_long(&c, &t);
		cli_buf_add_json(out, o);
		cli_buf_add(out, "\n", 1);
		json_decref(o);
	} else {
		cli_call_long_text(out, &c, &t);
	}
	return out->err;
}

/* Has the call left its slot (ended, or the slot already holds another call)? */
static int cli_call_gone(const cli_server_t *srv, uint32_t slot, const char *id)
{
	struct shm_call c;

	return shm_call_read(srv->shm, slot, &c) < 0 || strncmp(c.id, id, sizeof c.id) != 0;
}

/* Watch the slot until the call has gone, at most CLI_KILL_WAIT_MS: 1 when it has. */
static int cli_call_wait_gone(const cli_server_t *srv, uint32_t slot, const char *id)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_KILL_WAIT_MS;
	const struct timespec pause = { .tv_nsec = CLI_KILL_POLL_MS * 1000000L };

	for (;;) {
		if (cli_call_gone(srv, slot, id))
			return 1;
		if (cli_now_ms(CLOCK_MONOTONIC) >= deadline)
			return 0;
		nanosleep(&pause, NULL);
	}
}

/* A worker's answer other than "ok", for the operator. */
static int cli_kill_refused(const cli_server_t *srv, uint32_t slot, const char *id,
			    unsigned worker, const char *answer, struct cli_reply *reply)
{
	/* It ended by itself between our look-up and the worker's: nothing left to kill. */
	if (cli_call_gone(srv, slot, id))
		return cli_fail(reply, CLI_STATUS_ERROR, "no such call %s", id);
	if (strncmp(answer, "error", 5) == 0 && (answer[5] == ' ' || answer[5] == '\0'))
		return cli_fail(reply, CLI_STATUS_ERROR, "call %s: worker %u: %.200s",
				id, worker, answer[5] ? answer + 6 : "error");
	return cli_fail(reply, CLI_STATUS_ERROR, "call %s: unexpected answer from "
			"worker %u: '%.100s'", id, worker, answer);
}

/*
 * `call kill ID`: ask the owning worker to end the call, then wait until it
 * has left the table, so that "killed" is a fact and not a hope.
 */
static int cli_call_kill(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			 struct cli_reply *reply)
{
	char request[SHM_ID_MAX + 8], answer[CLI_WORKER_REPLY_MAX] = "";
	struct shm_call c;
	unsigned worker;
	uint32_t slot;
	const char *id = NULL;
	size_t len;
	int err;

	if ((err = cli_call_id(req, reply, &id)) < 0)
		return err;
	if (!srv->worker_request)
		return cli_fail(reply, CLI_STATUS_ERROR, "call kill is not available: this "
				"daemon has no channel to its workers");
	if (cli_call_find(srv, id, &slot, &c) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "no such call %s", id);
	worker = c.worker;
	snprintf(request, sizeof request, "kill %s", id);
	err = srv->worker_request(srv->worker_request_arg, worker, request, answer,
				  sizeof answer);
	if (err == -ETIMEDOUT)
		return cli_fail(reply, CLI_STATUS_ERROR, "worker %u did not answer", worker);
	if (err == -ESRCH)
		return cli_fail(reply, CLI_STATUS_ERROR, "worker %u is not running", worker);
	if (err < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "cannot reach worker %u: %s", worker,
				strerror(-err));
	answer[sizeof answer - 1] = '\0';
	len = strlen(answer);
	while (len > 0 && (answer[len - 1] == '\n' || answer[len - 1] == '\r'))
		answer[--len] = '\0';
	if (strcmp(answer, "ok") != 0)
		return cli_kill_refused(srv, slot, id, worker, answer, reply);
	if (!cli_call_wait_gone(srv, slot, id))
		return cli_fail(reply, CLI_STATUS_ERROR, "call %s: worker %u is ending "
				"it, but it is still up after %d ms", id, worker,
				CLI_KILL_WAIT_MS);
	log_info("call %s: killed through the CLI (worker %u)", id, worker);
	cli_buf_printf(out, "call %s killed\n", id);
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

static int cli_show_stats(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			  struct cli_reply *reply)
{
	struct cli_stats st;

	cli_stats_sum(srv, &st);
	return req->json ? cli_stats_json(srv, &st, out) : cli_stats_text(srv, &st, out);
}

/* ------------------------------------------------------------ Redis, one command at a time */

/*
 * KEYS[1] the user hash, KEYS[2] its location hash.
 * ARGV: ha1_md5 ha1_sha256 display max_calls created_ms.
 * 1 when added, 0 when the user exists.  A location hash left over from an
 * earlier user of the name is dropped: a new user has no registrations.
 */
static const char cli_lua_add[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
	"redis.call('DEL', KEYS[2]) "
	"redis.call('HSET', KEYS[1], 'ha1_md5', ARGV[1], 'ha1_sha256', ARGV[2], "
	"  'display', ARGV[3], 'enabled', '1', 'max_calls', ARGV[4], 'created_ms', ARGV[5]) "
	"return 1";

/* KEYS[1] the user hash; ARGV field/value pairs.  1 when set, 0 when no such
 * user (HSET alone would create a user with nothing but these fields). */
static const char cli_lua_update[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"redis.call('HSET', KEYS[1], unpack(ARGV)) "
	"return 1";

/* KEYS[1] the user hash; ARGV field names to delete.  1 when done, 0 when no such user. */
static const char cli_lua_forget[] =
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"redis.call('HDEL', KEYS[1], unpack(ARGV)) "
	"return 1";

/* Most ARGV of cli_lua_update / cli_lua_forget: the four fwd_* fields and values. */
#define CLI_UPDATE_ARGS_MAX 8

/* KEYS[1] the user hash, KEYS[2] its location hash.  1 when the user existed. */
static const char cli_lua_del[] =
	"local n = redis.call('EXISTS', KEYS[1]) "
	"redis.call('DEL', KEYS[1], KEYS[2]) "
	"return n";

/* One command's connection to Redis; failures land in `reply`. */
struct cli_redis {
	const cli_server_t *srv;
	redisContext *c;
	struct cli_reply *reply;
};

static struct timeval cli_timeval(uint64_t ms)
{
	return (struct timeval){
		.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000,
	};
}

/* Why a hiredis context failed, for people: a read timeout shows as EAGAIN. */
static const char *cli_redis_why(const redisContext *c)
{
	if (!c)
		return "out of memory";
	if (c->err == REDIS_ERR_IO && strcmp(c->errstr, strerror(EAGAIN)) == 0)
		return "no answer within 1 s";
	if (c->err == REDIS_ERR_EOF)
		return "the server closed the connection";
	return c->errstr[0] ? c->errstr : "connection failed";
}

/* Connect to "unix:/path", "host:port" or "[v6]:port": 0 and *out (NULL
 * when hiredis ran out of memory), or -EINVAL for an address it is not. */
static int cli_redis_dial(const char *address, redisContext **out)
{
	struct timeval tv = cli_timeval(CLI_REDIS_TIMEOUT_MS);
	const char *host = address, *colon;
	char name[256], *end;
	size_t len;
	long port;

	if (strncmp(address, "unix:", 5) == 0) {
		*out = redisConnectUnixWithTimeout(address + 5, tv);
		return 0;
	}
	if (address[0] == '[') {
		host = address + 1;
		colon = strchr(host, ']');
		if (!colon || colon[1] != ':')
			return -EINVAL;
		len = (size_t)(colon - host);
		colon++;
	} else {
		colon = strrchr(address, ':');
		if (!colon)
			return -EINVAL;
		len = (size_t)(colon - host);
	}
	if (len == 0 || len >= sizeof name)
		return -EINVAL;
	memcpy(name, host, len);
	name[len] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
		return -EINVAL;
	*out = redisConnectWithTimeout(name, (int)port, tv);
	return 0;
}

static void cli_redis_close(struct cli_redis *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

/* Check one reply: 0 and *out (the caller frees it), or the failure in the reply. */
static int cli_redis_check(struct cli_redis *r, const char *what, redisReply *rr,
			   redisReply **out)
{
	const char *address = r->srv->redis_address;

	if (!rr)
		return cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: %s", address,
				cli_redis_why(r->c));
	if (rr->type == REDIS_REPLY_ERROR) {
		cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: %s: %.200s", address, what,
			 rr->str);
		freeReplyObject(rr);
		return -EPROTO;
	}
	*out = rr;
	return 0;
}

/* Send one command and wait for its reply (bounded by the context's timeout). */
static int cli_redis_cmd(struct cli_redis *r, int argc, const char **argv, redisReply **out)
{
	return cli_redis_check(r, argv[0], redisCommandArgv(r->c, argc, argv, NULL), out);
}

/* The next reply of a pipeline (commands queued with redisAppendCommandArgv). */
static int cli_redis_next(struct cli_redis *r, const char *what, redisReply **out)
{
	void *rr = NULL;

	if (redisGetReply(r->c, &rr) != REDIS_OK)
		rr = NULL;
	return cli_redis_check(r, what, rr, out);
}

static int cli_redis_unexpected(struct cli_redis *r, const char *what, redisReply *rr)
{
	freeReplyObject(rr);
	return cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: unexpected answer to %s",
			r->srv->redis_address, what);
}

/* Run a command whose answer does not matter beyond "not an error". */
static int cli_redis_simple(struct cli_redis *r, int argc, const char **argv)
{
	redisReply *rr;
	int err = cli_redis_cmd(r, argc, argv, &rr);

	if (err == 0)
		freeReplyObject(rr);
	return err;
}

/* Connect, authenticate and select the database: 0, or the failure in the reply. */
static int cli_redis_open(const cli_server_t *srv, struct cli_reply *reply, struct cli_redis *r)
{
	const char *auth[] = { "AUTH", srv->redis_password };
	const char *select[] = { "SELECT", NULL };
	char db[16];
	int err = 0;

	*r = (struct cli_redis){ .srv = srv, .reply = reply };
	if (cli_redis_dial(srv->redis_address, &r->c) < 0)
		return cli_fail(reply, CLI_STATUS_ERROR, "redis %s: not a valid address",
				srv->redis_address);
	if (!r->c || r->c->err) {
		err = cli_fail(reply, CLI_STATUS_ERROR, "redis %s: cannot connect: %s",
			       srv->redis_address, cli_redis_why(r->c));
		cli_redis_close(r);
		return err;
	}
	redisSetTimeout(r->c, cli_timeval(CLI_REDIS_TIMEOUT_MS));
	if (srv->redis_password[0])
		err = cli_redis_simple(r, 2, auth);
	if (err == 0 && srv->redis_db != 0) {
		snprintf(db, sizeof db, "%d", srv->redis_db);
		select[1] = db;
		err = cli_redis_simple(r, 2, select);
	}
	if (err < 0)
		cli_redis_close(r);
	return err;
}

/* Connect, EVAL one script whose answer is an integer, close. */
static int cli_redis_eval(const cli_server_t *srv, struct cli_reply *reply, int argc,
			  const char **argv, long long *result)
{
	struct cli_redis r;
	redisReply *rr = NULL;
	int err = cli_redis_open(srv, reply, &r);

	if (err == 0)
		err = cli_redis_cmd(&r, argc, argv, &rr);
	if (err == 0 && rr->type != REDIS_REPLY_INTEGER)
		err = cli_redis_unexpected(&r, "EVAL", rr);
	else if (err == 0) {
		*result = rr->integer;
		freeReplyObject(rr);
	}
	cli_redis_close(&r);
	return err;
}

/* ------------------------------------------------------------ user: checks */

/* "<prefix><kind>:<name>", e.g. "b2bua:user:alice" (the registrar's keys). */
static void cli_user_key(const cli_server_t *srv, const char *kind, const char *name,
			 char *out, size_t size)
{
	snprintf(out, size, "%s%s:%s", srv->redis_prefix, kind, name);
}

/* The NAME operand (the third word), checked. */
static int cli_user_name(const struct cli_request *req, struct cli_reply *reply,
			 const char **name)
{
	if (!cli_proto_name_ok(req->words[2]))
		return cli_fail(reply, CLI_STATUS_USAGE, "bad user name '%.80s': 1 to %d of "
				"A-Z a-z 0-9 . _ + -, not starting with '-'", req->words[2],
				CLI_USER_NAME_MAX);
	*name = req->words[2];
	return 0;
}

/* A --password or --display value: 1..CLI_VALUE_MAX bytes, no control characters. */
static int cli_value_ok(const char *s)
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

/* The password (required: the client makes one up when the operator gives none). */
static int cli_user_password(const struct cli_request *req, struct cli_reply *reply)
{
	const char *password = cli_opt(req, CLI_OPT_PASSWORD);

	if (!password)
		return cli_fail(reply, CLI_STATUS_USAGE, "'%s %s' needs --password",
				req->words[0], req->words[1]);
	if (!cli_value_ok(password))
		return cli_fail(reply, CLI_STATUS_USAGE, "the password must be 1 to %d bytes "
				"without control characters", CLI_VALUE_MAX);
	return 0;
}

/* --display TEXT ("" when absent) and --max-calls N (normalised; "0" when absent). */
static int cli_user_attrs(const struct cli_request *req, struct cli_reply *reply,
			  char *max_calls, size_t size)
{
	const char *m = cli_opt(req, CLI_OPT_MAX_CALLS);
	const char *display = cli_opt(req, CLI_OPT_DISPLAY);
	unsigned long long v;

	if (display && !cli_value_ok(display))
		return cli_fail(reply, CLI_STATUS_USAGE, "--display: 1 to %d bytes without "
				"control characters", CLI_VALUE_MAX);
	if (!m)
		m = "0";
	if (!cli_proto_number(m, 0, CLI_MAX_CALLS_MAX, &v))
		return cli_fail(reply, CLI_STATUS_USAGE, "--max-calls '%.20s': a number from 0 "
				"(no limit) to %d", m, CLI_MAX_CALLS_MAX);
	snprintf(max_calls, size, "%llu", v);
	return 0;
}

/* Both HA1s of name:realm:password; the password goes no further than this. */
static int cli_user_ha1(const cli_server_t *srv, const char *name, const char *password,
			char md5[DIGEST_HA1_SIZE], char sha256[DIGEST_HA1_SIZE])
{
	int err = digest_ha1(DIGEST_MD5, name, srv->realm, password, md5);

	if (err == 0)
		err = digest_ha1(DIGEST_SHA256, name, srv->realm, password, sha256);
	return err;
}

/* ------------------------------------------------------------ user: changes */

static int cli_user_add(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			struct cli_reply *reply)
{
	char md5[DIGEST_HA1_SIZE], sha256[DIGEST_HA1_SIZE], max_calls[16], created[24];
	char ukey[CLI_KEY_MAX], lkey[CLI_KEY_MAX];
	const char *display = cli_opt(req, CLI_OPT_DISPLAY);
	const char *name;
	long long added = 0;
	int err;

	if ((err = cli_user_name(req, reply, &name)) < 0 ||
	    (err = cli_user_password(req, reply)) < 0 ||
	    (err = cli_user_attrs(req, reply, max_calls, sizeof max_calls)) < 0 ||
	    (err = cli_user_ha1(srv, name, cli_opt(req, CLI_OPT_PASSWORD), md5, sha256)) < 0)
		return err;
	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	cli_user_key(srv, "loc", name, lkey, sizeof lkey);
	snprintf(created, sizeof created, "%" PRIu64, cli_now_ms(CLOCK_REALTIME));

	const char *argv[] = { "EVAL", cli_lua_add, "2", ukey, lkey, md5, sha256,
			       display ? display : "", max_calls, created };
	err = cli_redis_eval(srv, reply, 10, argv, &added);
	if (err < 0)
		return err;
	if (!added)
		return cli_fail(reply, CLI_STATUS_ERROR, "user %s exists", name);
	log_info("cli: user %s added", name);
	cli_buf_printf(out, "user %s added\n", name);
	return out->err;
}

/*
 * Run `script` (cli_lua_update or cli_lua_forget) on an existing user with
 * `n_args` ARGV (field/value pairs, or field names): what passwd, enable,
 * disable and forward share.
 */
static int cli_user_update(cli_server_t *srv, const char *name, const char *script,
			   int n_args, const char **args, struct cli_reply *reply)
{
	char ukey[CLI_KEY_MAX];
	const char *argv[4 + CLI_UPDATE_ARGS_MAX] = { "EVAL", script, "1", ukey };
	long long done = 0;
	int err;

	if (n_args > CLI_UPDATE_ARGS_MAX)
		return -E2BIG;
	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	for (int i = 0; i < n_args; i++)
		argv[4 + i] = args[i];
	err = cli_redis_eval(srv, reply, 4 + n_args, argv, &done);
	if (err == 0 && !done)
		err = cli_fail(reply, CLI_STATUS_ERROR, "no such user %s", name);
	return err;
}

static int cli_user_passwd(cli_server_t *srv, const struct cli_request *req,
			   struct cli_buf *out, struct cli_reply *reply)
{
	char md5[DIGEST_HA1_SIZE], sha256[DIGEST_HA1_SIZE];
	const char *name;
	int err;

	if ((err = cli_user_name(req, reply, &name)) < 0 ||
	    (err = cli_user_password(req, reply)) < 0 ||
	    (err = cli_user_ha1(srv, name, cli_opt(req, CLI_OPT_PASSWORD), md5, sha256)) < 0)
		return err;

	const char *fields[] = { "ha1_md5", md5, "ha1_sha256", sha256 };
	err = cli_user_update(srv, name, cli_lua_update, 4, fields, reply);
	if (err < 0)
		return err;
	log_info("cli: user %s: password changed", name);
	cli_buf_printf(out, "user %s password changed\n", name);
	return out->err;
}

static int cli_user_set_enabled(cli_server_t *srv, const struct cli_request *req,
				struct cli_buf *out, struct cli_reply *reply, int enabled)
{
	const char *fields[] = { "enabled", enabled ? "1" : "0" };
	const char *name;
	int err;

	if ((err = cli_user_name(req, reply, &name)) < 0 ||
	    (err = cli_user_update(srv, name, cli_lua_update, 2, fields, reply)) < 0)
		return err;
	log_info("cli: user %s %s", name, enabled ? "enabled" : "disabled");
	cli_buf_printf(out, "user %s %s\n", name, enabled ? "enabled" : "disabled");
	return out->err;
}

static int cli_user_enable(cli_server_t *srv, const struct cli_request *req,
			   struct cli_buf *out, struct cli_reply *reply)
{
	return cli_user_set_enabled(srv, req, out, reply, 1);
}

static int cli_user_disable(cli_server_t *srv, const struct cli_request *req,
			    struct cli_buf *out, struct cli_reply *reply)
{
	return cli_user_set_enabled(srv, req, out, reply, 0);
}

/* The forwarding options and the user hash fields they set, in this order. */
static const struct {
	unsigned flag;
	const char *field;
} cli_forward_fields[] = {
	{ CLI_OPT_ALWAYS,    "fwd_always" },
	{ CLI_OPT_BUSY,      "fwd_busy" },
	{ CLI_OPT_NO_ANSWER, "fwd_noanswer" },
	{ CLI_OPT_TIMEOUT,   "fwd_noanswer_timeout" },
};
#define CLI_N_FORWARD_FIELDS (sizeof cli_forward_fields / sizeof cli_forward_fields[0])

/* Check one forwarding option's value: a TARGET, or SECONDS for --timeout. */
static int cli_forward_value(const struct cli_request *req, unsigned flag,
			     struct cli_reply *reply, const char **value)
{
	const char *v = cli_opt(req, flag);
	unsigned long long secs;

	*value = v;
	if (flag == CLI_OPT_TIMEOUT) {
		if (!cli_proto_number(v, 1, CLI_FWD_TIMEOUT_MAX, &secs))
			return cli_fail(reply, CLI_STATUS_USAGE, "--timeout '%.20s': a number of "
					"seconds from 1 to %d", v, CLI_FWD_TIMEOUT_MAX);
		return 0;
	}
	if (!cli_proto_target_ok(v))
		return cli_fail(reply, CLI_STATUS_USAGE, "forward target '%.80s': a user NAME "
				"or a SIP URI (sip:...) of at most %d bytes", v, CLI_TARGET_MAX);
	return 0;
}

/* `user forward NAME --clear`: all four fields go, in one script. */
static int cli_user_forward_clear(cli_server_t *srv, const char *name, struct cli_buf *out,
				  struct cli_reply *reply)
{
	const char *fields[CLI_N_FORWARD_FIELDS];
	int err;

	for (size_t i = 0; i < CLI_N_FORWARD_FIELDS; i++)
		fields[i] = cli_forward_fields[i].field;
	err = cli_user_update(srv, name, cli_lua_forget, (int)CLI_N_FORWARD_FIELDS, fields,
			      reply);
	if (err < 0)
		return err;
	log_info("cli: user %s: call forwarding cleared", name);
	cli_buf_printf(out, "user %s forwarding cleared\n", name);
	return out->err;
}

/*
 * `user forward NAME [--always T] [--busy T] [--no-answer T] [--timeout S]`:
 * the given fields are set, the others kept.  Everything is checked before
 * Redis is asked, so a bad value changes nothing.
 */
static int cli_user_forward(cli_server_t *srv, const struct cli_request *req,
			    struct cli_buf *out, struct cli_reply *reply)
{
	const char *args[2 * CLI_N_FORWARD_FIELDS];
	unsigned given = req->opts & CLI_OPT_FORWARD;
	const char *name;
	int n = 0, err;

	if ((err = cli_user_name(req, reply, &name)) < 0)
		return err;
	if ((req->opts & CLI_OPT_CLEAR) && given)
		return cli_fail(reply, CLI_STATUS_USAGE, "--clear goes alone, not with "
				"--always, --busy, --no-answer or --timeout");
	if (req->opts & CLI_OPT_CLEAR)
		return cli_user_forward_clear(srv, name, out, reply);
	if (!given)
		return cli_fail(reply, CLI_STATUS_USAGE, "'user forward' needs --always, --busy, "
				"--no-answer, --timeout or --clear");
	for (size_t i = 0; i < CLI_N_FORWARD_FIELDS; i++) {
		const char *value;

		if (!(given & cli_forward_fields[i].flag))
			continue;
		err = cli_forward_value(req, cli_forward_fields[i].flag, reply, &value);
		if (err < 0)
			return err;
		args[n++] = cli_forward_fields[i].field;
		args[n++] = value;
	}
	err = cli_user_update(srv, name, cli_lua_update, n, args, reply);
	if (err < 0)
		return err;
	log_info("cli: user %s: call forwarding changed", name);
	cli_buf_printf(out, "user %s forwarding set\n", name);
	return out->err;
}

static int cli_user_del(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			struct cli_reply *reply)
{
	char ukey[CLI_KEY_MAX], lkey[CLI_KEY_MAX];
	const char *name;
	long long existed = 0;
	int err;

	if ((err = cli_user_name(req, reply, &name)) < 0)
		return err;
	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	cli_user_key(srv, "loc", name, lkey, sizeof lkey);

	const char *argv[] = { "EVAL", cli_lua_del, "2", ukey, lkey };
	err = cli_redis_eval(srv, reply, 5, argv, &existed);
	if (err < 0)
		return err;
	if (!existed)
		return cli_fail(reply, CLI_STATUS_ERROR, "no such user %s", name);
	log_info("cli: user %s deleted", name);
	cli_buf_printf(out, "user %s deleted\n", name);
	return out->err;
}

/* ------------------------------------------------------------ user: reading */

/* A subscriber record as `user show` and `user list` present it. */
struct cli_user {
	char display[CLI_VALUE_MAX + 1];   /* control characters replaced */
	int enabled;
	unsigned long max_calls;           /* 0: no limit */
	uint64_t created_ms;
	/* Call forwarding (`user show` only): "" when unset, control characters replaced. */
	char fwd_always[CLI_VALUE_MAX + 1];
	char fwd_busy[CLI_VALUE_MAX + 1];
	char fwd_noanswer[CLI_VALUE_MAX + 1];
	unsigned long fwd_noanswer_timeout; /* 0: the config's no_answer_timeout */
};

/* One current registration, as the registrar stored it. */
struct cli_binding {
	const char *contact;               /* the hash field, in the Redis reply */
	json_t *obj;                       /* its parsed value, owned */
	int64_t expires_ms;
	int64_t registered_ms;
};

/* The value of `field` in the [field, value, ...] reply of HGETALL, or NULL. */
static const char *cli_hash_get(const redisReply *hash, const char *field)
{
	for (size_t i = 0; i + 1 < hash->elements; i += 2) {
		const redisReply *f = hash->element[i], *v = hash->element[i + 1];

		if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
		    strcmp(f->str, field) == 0)
			return v->str;
	}
	return NULL;
}

/* The record from three strings (any of them NULL when absent). */
static void cli_user_fill(struct cli_user *u, const char *display, const char *enabled,
			  const char *max_calls, const char *created_ms)
{
	memset(u, 0, sizeof *u);
	if (display)
		cli_clean(u->display, sizeof u->display, display, strlen(display) + 1);
	u->enabled = enabled && strcmp(enabled, "1") == 0;
	u->max_calls = max_calls ? strtoul(max_calls, NULL, 10) : 0;
	u->created_ms = created_ms ? strtoull(created_ms, NULL, 10) : 0;
}

/* The forwarding fields of a user hash (HGETALL reply) into *u. */
static void cli_user_fill_forward(struct cli_user *u, const redisReply *user)
{
	const char *always = cli_hash_get(user, "fwd_always");
	const char *busy = cli_hash_get(user, "fwd_busy");
	const char *noanswer = cli_hash_get(user, "fwd_noanswer");
	const char *timeout = cli_hash_get(user, "fwd_noanswer_timeout");

	if (always)
		cli_clean(u->fwd_always, sizeof u->fwd_always, always, strlen(always) + 1);
	if (busy)
		cli_clean(u->fwd_busy, sizeof u->fwd_busy, busy, strlen(busy) + 1);
	if (noanswer)
		cli_clean(u->fwd_noanswer, sizeof u->fwd_noanswer, noanswer, strlen(noanswer) + 1);
	u->fwd_noanswer_timeout = timeout ? strtoul(timeout, NULL, 10) : 0;
}

/* Milliseconds as the registrar's Lua (cjson) wrote them: integer or real. */
static int64_t cli_json_ms(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

/*
 * Parse one stored binding; NULL when it is garbled or has expired.  A
 * User-Agent can hold any bytes and jansson takes only UTF-8: such bytes
 * become '?' rather than hiding the registration.
 */
static json_t *cli_binding_parse(const char *value, size_t len, uint64_t now_ms,
				 int64_t *expires_ms)
{
	json_t *obj = json_loadb(value, len, 0, NULL);
	char *copy;

	if (!obj && (copy = malloc(len)) != NULL) {
		for (size_t i = 0; i < len; i++)
			copy[i] = (unsigned char)value[i] >= 0x80 ? '?' : value[i];
		obj = json_loadb(copy, len, 0, NULL);
		free(copy);
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		return NULL;
	}
	*expires_ms = cli_json_ms(json_object_get(obj, "expires"));
	if (*expires_ms <= (int64_t)now_ms) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Newest registration first; the contact decides between equals. */
static int cli_binding_cmp(const void *a, const void *b)
{
	const struct cli_binding *x = a, *y = b;

	if (x->registered_ms != y->registered_ms)
		return x->registered_ms > y->registered_ms ? -1 : 1;
	return strcmp(x->contact, y->contact);
}

/* The unexpired bindings of a location hash (HGETALL reply), sorted. */
static int cli_bindings_load(const redisReply *loc, uint64_t now_ms, struct cli_binding **out,
			     size_t *n)
{
	struct cli_binding *b = calloc(loc->elements / 2 + 1, sizeof *b);
	size_t count = 0;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < loc->elements; i += 2) {
		const redisReply *f = loc->element[i], *v = loc->element[i + 1];
		int64_t expires;
		json_t *obj;

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		obj = cli_binding_parse(v->str, v->len, now_ms, &expires);
		if (!obj)
			continue;
		b[count].contact = f->str;
		b[count].obj = obj;
		b[count].expires_ms = expires;
		b[count].registered_ms = cli_json_ms(json_object_get(obj, "registered"));
		count++;
	}
	qsort(b, count, sizeof *b, cli_binding_cmp);
	*out = b;
	*n = count;
	return 0;
}

static void cli_bindings_free(struct cli_binding *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(b[i].obj);
	free(b);
}

/* How many values of an HVALS reply are unexpired bindings. */
static unsigned cli_bindings_count(const redisReply *vals, uint64_t now_ms)
{
	unsigned n = 0;

	for (size_t i = 0; i < vals->elements; i++) {
		const redisReply *v = vals->element[i];
		int64_t expires;
		json_t *obj;

		if (v->type != REDIS_REPLY_STRING)
			continue;
		obj = cli_binding_parse(v->str, v->len, now_ms, &expires);
		n += obj != NULL;
		json_decref(obj);
	}
	return n;
}

/* A string member of a binding, "" when absent. */
static const char *cli_obj_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

static uint64_t cli_expires_in_s(const struct cli_binding *b, uint64_t now_ms)
{
	return (uint64_t)(b->expires_ms - (int64_t)now_ms) / 1000;
}

/* ------------------------------------------------------------ user show */

static json_t *cli_binding_json(const struct cli_binding *b, uint64_t now_ms)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:o, s:I}",
		"contact", cli_json_str(b->contact, 0),
		"source", cli_json_str(cli_obj_str(b->obj, "source"), 1),
		"transport", cli_json_str(cli_obj_str(b->obj, "transport"), 1),
		"expires_in_s", cli_json_u64(cli_expires_in_s(b, now_ms)),
		"expires_ms", (json_int_t)b->expires_ms,
		"registered_ms", (json_int_t)b->registered_ms,
		"user_agent", cli_json_str(cli_obj_str(b->obj, "user_agent"), 1),
		"call_id", cli_json_str(cli_obj_str(b->obj, "call_id"), 1),
		"cseq", (json_int_t)cli_json_ms(json_object_get(b->obj, "cseq")),
		"host", cli_json_str(cli_obj_str(b->obj, "host"), 1),
		"worker", (json_int_t)cli_json_ms(json_object_get(b->obj, "worker")));
}

static int cli_show_json(const char *name, const struct cli_user *u,
			 const struct cli_binding *b, size_t n, uint64_t now_ms,
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

/* One field of a binding for a text line: control characters replaced. */
static const char *cli_binding_text(const struct cli_binding *b, const char *key, char *buf,
				    size_t size)
{
	const char *s = cli_obj_str(b->obj, key);

	cli_clean(buf, size, s, strlen(s) + 1);
	return *buf ? buf : "-";
}

/* The forwarding lines of `user show`; `default_timeout` is the config's (0: unknown). */
static void cli_show_forward_text(const struct cli_user *u, int default_timeout,
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

static int cli_show_text(const char *name, const struct cli_user *u, int default_timeout,
			 const struct cli_binding *b, size_t n, uint64_t now_ms,
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
			       cli_binding_text(&b[i], "source", src, sizeof src),
			       cli_binding_text(&b[i], "transport", tp, sizeof tp),
			       cli_expires_in_s(&b[i], now_ms),
			       cli_binding_text(&b[i], "user_agent", ua, sizeof ua),
			       cli_binding_text(&b[i], "host", host, sizeof host),
			       cli_json_ms(json_object_get(b[i].obj, "worker")));
	}
	return out->err;
}

static int cli_user_show_answer(const cli_server_t *srv, const char *name,
				const redisReply *user, const redisReply *loc, int json,
				struct cli_buf *out)
{
	uint64_t now = cli_now_ms(CLOCK_REALTIME);
	struct cli_binding *b;
	struct cli_user u;
	size_t n;
	int err;

	cli_user_fill(&u, cli_hash_get(user, "display"), cli_hash_get(user, "enabled"),
		      cli_hash_get(user, "max_calls"), cli_hash_get(user, "created_ms"));
	cli_user_fill_forward(&u, user);
	err = cli_bindings_load(loc, now, &b, &n);
	if (err < 0)
		return err;
	if (json)
		err = cli_show_json(name, &u, b, n, now, out);
	else
		err = cli_show_text(name, &u, srv->no_answer_timeout, b, n, now, out);
	cli_bindings_free(b, n);
	return err;
}

static int cli_user_show(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			 struct cli_reply *reply)
{
	char ukey[CLI_KEY_MAX], lkey[CLI_KEY_MAX];
	const char *get_user[] = { "HGETALL", ukey }, *get_loc[] = { "HGETALL", lkey };
	redisReply *user = NULL, *loc = NULL;
	struct cli_redis r;
	const char *name;
	int err;

	if ((err = cli_user_name(req, reply, &name)) < 0)
		return err;
	cli_user_key(srv, "user", name, ukey, sizeof ukey);
	cli_user_key(srv, "loc", name, lkey, sizeof lkey);

	/* Both in one round trip. */
	err = cli_redis_open(srv, reply, &r);
	if (err == 0 && (redisAppendCommandArgv(r.c, 2, get_user, NULL) != REDIS_OK ||
			 redisAppendCommandArgv(r.c, 2, get_loc, NULL) != REDIS_OK))
		err = -ENOMEM;
	if (err == 0)
		err = cli_redis_next(&r, "HGETALL", &user);
	if (err == 0)
		err = cli_redis_next(&r, "HGETALL", &loc);
	if (err == 0 && (user->type != REDIS_REPLY_ARRAY || loc->type != REDIS_REPLY_ARRAY))
		err = cli_fail(reply, CLI_STATUS_ERROR, "redis %s: unexpected answer to HGETALL",
			       srv->redis_address);
	cli_redis_close(&r);
	if (err == 0 && user->elements == 0)
		err = cli_fail(reply, CLI_STATUS_ERROR, "no such user %s", name);
	if (err == 0)
		err = cli_user_show_answer(srv, name, user, loc, req->json, out);
	if (user)
		freeReplyObject(user);
	if (loc)
		freeReplyObject(loc);
	return err;
}

/* ------------------------------------------------------------ user list */

struct cli_names {
	char **v;
	size_t n;
	size_t cap;
};

static int cli_names_add(struct cli_names *names, const char *name)
{
	if (names->n == names->cap) {
		size_t cap = names->cap ? names->cap * 2 : 64;
		char **v = realloc(names->v, cap * sizeof *v);

		if (!v)
			return -ENOMEM;
		names->v = v;
		names->cap = cap;
	}
	names->v[names->n] = strdup(name);
	if (!names->v[names->n])
		return -ENOMEM;
	names->n++;
	return 0;
}

static void cli_names_free(struct cli_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
}

static int cli_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort, and drop the duplicates SCAN may return while Redis rehashes. */
static void cli_names_sort_unique(struct cli_names *names)
{
	size_t kept = 0;

	qsort(names->v, names->n, sizeof *names->v, cli_name_cmp);
	for (size_t i = 0; i < names->n; i++) {
		if (kept > 0 && strcmp(names->v[kept - 1], names->v[i]) == 0)
			free(names->v[i]);
		else
			names->v[kept++] = names->v[i];
	}
	names->n = kept;
}

/* prefix + "user:*" with the prefix's glob characters escaped. */
static void cli_user_pattern(const char *prefix, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = prefix; *p && n + 2 < size; p++) {
		if (strchr("*?[]\\", *p))
			out[n++] = '\\';
		out[n++] = *p;
	}
	snprintf(out + n, size - n, "user:*");
}

static int cli_list_too_slow(struct cli_redis *r, size_t users)
{
	return cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: user list did not finish "
			"within %d ms (%zu users read)", r->srv->redis_address, CLI_LIST_MAX_MS,
			users);
}

/* Every user name, by SCAN in steps of CLI_SCAN_COUNT keys, until `deadline`. */
static int cli_user_scan(struct cli_redis *r, uint64_t deadline, struct cli_names *names)
{
	size_t skip = strlen(r->srv->redis_prefix) + strlen("user:");
	char pattern[2 * CLI_KEY_MAX], cursor[32] = "0";
	const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", CLI_SCAN_COUNT };
	redisReply *rr = NULL, *keys;
	int err;

	cli_user_pattern(r->srv->redis_prefix, pattern, sizeof pattern);
	do {
		if (cli_now_ms(CLOCK_MONOTONIC) >= deadline)
			return cli_list_too_slow(r, names->n);
		err = cli_redis_cmd(r, 6, argv, &rr);
		if (err < 0)
			return err;
		if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2 ||
		    rr->element[0]->type != REDIS_REPLY_STRING ||
		    rr->element[1]->type != REDIS_REPLY_ARRAY)
			return cli_redis_unexpected(r, "SCAN", rr);
		snprintf(cursor, sizeof cursor, "%s", rr->element[0]->str);
		keys = rr->element[1];
		for (size_t i = 0; i < keys->elements && err == 0; i++) {
			const redisReply *k = keys->element[i];

			/* Only our own shape of key: "user:a:b" is nobody's name. */
			if (k->type == REDIS_REPLY_STRING && k->len > skip &&
			    cli_proto_name_ok(k->str + skip))
				err = cli_names_add(names, k->str + skip);
		}
		freeReplyObject(rr);
	} while (err == 0 && strcmp(cursor, "0") != 0);
	return err;
}

struct cli_list_walk {
	struct cli_buf *out;
	int json;
	size_t count;
	uint64_t now_ms;
};

/* One line or JSON object of `user list`. */
static void cli_list_row(struct cli_list_walk *walk, const char *name, const struct cli_user *u,
			 unsigned regs)
{
	struct cli_buf *out = walk->out;
	char max[16];
	json_t *o;

	if (walk->json) {
		cli_buf_add(out, walk->count ? ",\n" : "", walk->count ? 2 : 0);
		o = json_pack("{s:s, s:o, s:b, s:o, s:I}", "user", name,
			      "display", cli_json_str(u->display, 1), "enabled", u->enabled,
			      "max_calls", cli_json_u64(u->max_calls),
			      "registrations", (json_int_t)regs);
		cli_buf_add_json(out, o);
		json_decref(o);
	} else {
		snprintf(max, sizeof max, "%lu", u->max_calls);
		cli_buf_printf(out, "%-20s %-8s %-10s %-14u %s\n", name, u->enabled ? "yes" : "no",
			       u->max_calls ? max : "unlimited", regs,
			       u->display[0] ? u->display : "-");
	}
	walk->count++;
}

/* The records and registration counts of n users: one pipelined round trip. */
static int cli_list_batch(struct cli_redis *r, char **names, size_t n,
			  struct cli_list_walk *walk)
{
	char key[CLI_KEY_MAX];
	const char *hmget[] = { "HMGET", key, "display", "enabled", "max_calls" };
	const char *hvals[] = { "HVALS", key };
	redisReply *user = NULL, *vals = NULL;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		/* hiredis formats each command at once: the key buffer may be reused. */
		cli_user_key(r->srv, "user", names[i], key, sizeof key);
		if (redisAppendCommandArgv(r->c, 5, hmget, NULL) != REDIS_OK)
			return -ENOMEM;
		cli_user_key(r->srv, "loc", names[i], key, sizeof key);
		if (redisAppendCommandArgv(r->c, 2, hvals, NULL) != REDIS_OK)
			return -ENOMEM;
	}
	/* On a failure the rest of the replies are left unread: the connection closes. */
	for (size_t i = 0; i < n && err == 0; i++) {
		struct cli_user u;
		redisReply **f;

		err = cli_redis_next(r, "HMGET", &user);
		if (err == 0)
			err = cli_redis_next(r, "HVALS", &vals);
		if (err == 0 && (user->type != REDIS_REPLY_ARRAY || user->elements != 3 ||
				 vals->type != REDIS_REPLY_ARRAY))
			err = cli_fail(r->reply, CLI_STATUS_ERROR, "redis %s: unexpected answer "
				       "to HMGET", r->srv->redis_address);
		f = err == 0 ? user->element : NULL;
		/* A user deleted since the SCAN has nil in every field: not listed. */
		if (f && (f[0]->str || f[1]->str || f[2]->str)) {
			cli_user_fill(&u, f[0]->str, f[1]->str, f[2]->str, NULL);
			cli_list_row(walk, names[i], &u, cli_bindings_count(vals, walk->now_ms));
		}
		if (user)
			freeReplyObject(user);
		if (vals)
			freeReplyObject(vals);
		user = vals = NULL;
	}
	return err < 0 ? err : walk->out->err;
}

static int cli_user_list(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			 struct cli_reply *reply)
{
	uint64_t deadline = cli_now_ms(CLOCK_MONOTONIC) + CLI_LIST_MAX_MS;
	struct cli_list_walk walk = {
		.out = out, .json = req->json, .now_ms = cli_now_ms(CLOCK_REALTIME),
	};
	struct cli_names names = { 0 };
	struct cli_redis r;
	int err;

	err = cli_redis_open(srv, reply, &r);
	if (err == 0)
		err = cli_user_scan(&r, deadline, &names);
	if (err == 0) {
		cli_names_sort_unique(&names);
		if (req->json)
			cli_buf_add(out, "[", 1);
		else
			cli_buf_printf(out, "%-20s %-8s %-10s %-14s %s\n", "USER", "ENABLED",
				       "MAX_CALLS", "REGISTRATIONS", "DISPLAY");
	}
	for (size_t i = 0; err == 0 && i < names.n; i += CLI_LIST_BATCH) {
		size_t n = names.n - i < CLI_LIST_BATCH ? names.n - i : CLI_LIST_BATCH;

		if (cli_now_ms(CLOCK_MONOTONIC) >= deadline)
			err = cli_list_too_slow(&r, walk.count);
		else
			err = cli_list_batch(&r, names.v + i, n, &walk);
	}
	if (err == 0 && req->json)
		cli_buf_add(out, "]\n", 2);
	else if (err == 0)
		cli_buf_printf(out, "%zu user%s\n", walk.count, walk.count == 1 ? "" : "s");
	cli_redis_close(&r);
	cli_names_free(&names);
	return err < 0 ? err : out->err;
}

/* ------------------------------------------------------------ cdr tail */

/* A stream's decimal ms field as ISO-8601 UTC; "-" when absent or 0. */
static void cli_iso_field(const redisReply *fields, const char *name, char *out, size_t size)
{
	const char *ms = cli_hash_get(fields, name);

	cli_iso_ms(ms ? strtoull(ms, NULL, 10) : 0, out, size);
}

/* A field of a stream entry for a text column: cleaned, "-" when absent or empty. */
static const char *cli_cdr_text(const redisReply *fields, const char *name, char *buf,
				size_t size)
{
	const char *v = cli_hash_get(fields, name);

	if (!v || !*v)
		return "-";
	cli_clean(buf, size, v, strlen(v) + 1);
	return buf;
}

static void cli_cdr_line(const redisReply *fields, struct cli_buf *out)
{
	char id[64], start[40], caller[SHM_URI_MAX], callee[SHM_URI_MAX];
	char answered[SHM_URI_MAX], disp[24], code[8], billable[32], hangup[16];
	const char *ms = cli_hash_get(fields, "billable_ms");

	cli_iso_field(fields, "start_ms", start, sizeof start);
	snprintf(billable, sizeof billable, "-");
	if (ms && *ms) {
		unsigned long long v = strtoull(ms, NULL, 10);

		snprintf(billable, sizeof billable, "%llu.%03llu", v / 1000, v % 1000);
	}
	cli_buf_printf(out, "%-32s %-24s %-28s %-28s %-28s %-11s %4s %10s %s\n",
		       cli_cdr_text(fields, "id", id, sizeof id), start,
		       cli_cdr_text(fields, "caller", caller, sizeof caller),
		       cli_cdr_text(fields, "callee", callee, sizeof callee),
		       cli_cdr_text(fields, "answered_by", answered, sizeof answered),
		       cli_cdr_text(fields, "disposition", disp, sizeof disp),
		       cli_cdr_text(fields, "sip_code", code, sizeof code), billable,
		       cli_cdr_text(fields, "hangup_by", hangup, sizeof hangup));
}

/* Every field of the entry as a string, and its stream id. */
static json_t *cli_cdr_json(const char *stream_id, const redisReply *fields)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "stream_id", cli_json_str(stream_id, 0)) < 0) {
		json_decref(o);
		return NULL;
	}
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i], *v = fields->element[i + 1];
		char name[64];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		/* A JSON key must be UTF-8: odd bytes become '?' as in values. */
		cli_clean(name, sizeof name, f->str, f->len + 1);
		for (char *p = name; *p; p++) {
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		}
		if (json_object_set_new(o, name, cli_json_str(v->str, 0)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* Is this one XREVRANGE entry: [id, [field, value, ...]]? */
static int cli_cdr_entry_ok(const redisReply *e)
{
	return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
	       e->element[0]->type == REDIS_REPLY_STRING &&
	       e->element[1]->type == REDIS_REPLY_ARRAY;
}

/* The entries of an XREVRANGE reply (newest first), written oldest first. */
static int cli_cdr_answer(const redisReply *rr, int json, struct cli_buf *out)
{
	json_t *arr = json ? json_array() : NULL;

	if (json && !arr)
		return -ENOMEM;
	if (!json)
		cli_buf_printf(out, "%-32s %-24s %-28s %-28s %-28s %-11s %4s %10s %s\n", "ID",
			       "START", "CALLER", "CALLEE", "ANSWERED_BY", "DISPOSITION", "CODE",
			       "BILLABLE_S", "HANGUP_BY");
	for (size_t i = rr->elements; i-- > 0;) {
		const redisReply *e = rr->element[i];

		if (json && json_array_append_new(arr, cli_cdr_json(e->element[0]->str,
								    e->element[1])) < 0)
			out->err = -ENOMEM;
		else if (!json)
			cli_cdr_line(e->element[1], out);
	}
	if (json) {
		cli_buf_add_json(out, arr);
		cli_buf_add(out, "\n", 1);
		json_decref(arr);
	} else {
		cli_buf_printf(out, "%zu CDR%s\n", rr->elements, rr->elements == 1 ? "" : "s");
	}
	return out->err;
}

/* `cdr tail [N]`: XREVRANGE <prefix><cdr_stream> + - COUNT N. */
static int cli_cdr_tail(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
			struct cli_reply *reply)
{
	unsigned long long n = CLI_CDR_TAIL_DEFAULT;
	char key[CLI_KEY_MAX], count[24];
	const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", count };
	redisReply *rr = NULL;
	struct cli_redis r;
	int err;

	if (req->n_words > 2 && !cli_proto_number(req->words[2], 1, CLI_CDR_TAIL_MAX, &n))
		return cli_fail(reply, CLI_STATUS_USAGE, "cdr tail '%.20s': a number from 1 to %d",
				req->words[2], CLI_CDR_TAIL_MAX);
	snprintf(key, sizeof key, "%s%s", srv->redis_prefix, srv->cdr_stream);
	snprintf(count, sizeof count, "%llu", n);

	err = cli_redis_open(srv, reply, &r);
	if (err == 0)
		err = cli_redis_cmd(&r, 6, argv, &rr);
	if (err == 0 && rr->type != REDIS_REPLY_ARRAY) {
		err = cli_redis_unexpected(&r, "XREVRANGE", rr);
		rr = NULL;
	}
	for (size_t i = 0; err == 0 && i < rr->elements; i++) {
		if (!cli_cdr_entry_ok(rr->element[i])) {
			err = cli_redis_unexpected(&r, "XREVRANGE", rr);
			rr = NULL;
		}
	}
	cli_redis_close(&r);
	if (err == 0)
		err = cli_cdr_answer(rr, req->json, out);
	if (rr)
		freeReplyObject(rr);
	return err;
}

/* ------------------------------------------------------------ help, dispatch */

static int cli_help(cli_server_t *srv, const struct cli_request *req, struct cli_buf *out,
		    struct cli_reply *reply)
{
	cli_buf_add(out, CLI_USAGE, strlen(CLI_USAGE));
	return out->err;
}

static const struct cli_command cli_commands[] = {
	{ { "show", "workers" }, CLI_OPERAND_NONE,  0,             cli_show_workers },
	{ { "show", "calls" },   CLI_OPERAND_NONE,  CLI_OPT_LONG,  cli_show_calls },
	{ { "show", "call" },    CLI_OPERAND_CALL,  0,             cli_show_call },
	{ { "show", "stats" },   CLI_OPERAND_NONE,  0,             cli_show_stats },
	{ { "call", "kill" },    CLI_OPERAND_CALL,  0,             cli_call_kill },
	{ { "cdr", "tail" },     CLI_OPERAND_COUNT, 0,             cli_cdr_tail },
	{ { "user", "add" },     CLI_OPERAND_USER,
	  CLI_OPT_PASSWORD | CLI_OPT_DISPLAY | CLI_OPT_MAX_CALLS, cli_user_add },
	{ { "user", "passwd" },  CLI_OPERAND_USER,  CLI_OPT_PASSWORD, cli_user_passwd },
	{ { "user", "del" },     CLI_OPERAND_USER,  0,             cli_user_del },
	{ { "user", "enable" },  CLI_OPERAND_USER,  0,             cli_user_enable },
	{ { "user", "disable" }, CLI_OPERAND_USER,  0,             cli_user_disable },
	{ { "user", "forward" }, CLI_OPERAND_USER,  CLI_OPT_FORWARD | CLI_OPT_CLEAR,
	  cli_user_forward },
	{ { "user", "show" },    CLI_OPERAND_USER,  0,             cli_user_show },
	{ { "user", "list" },    CLI_OPERAND_NONE,  0,             cli_user_list },
	{ { "help", NULL },      CLI_OPERAND_NONE,  0,             cli_help },
};

/* The option a request word names, or NULL. */
static const struct cli_option *cli_option_find(const char *word, size_t *index)
{
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		if (strcmp(word, cli_options[i].name) == 0) {
			*index = i;
			return &cli_options[i];
		}
	}
	return NULL;
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

/* How many operand words a command takes: at least *min, at most the return value. */
static int cli_operands(enum cli_operand operand, int *min)
{
	*min = operand == CLI_OPERAND_USER || operand == CLI_OPERAND_CALL;
	return operand != CLI_OPERAND_NONE;
}

static const char *cli_operand_what(enum cli_operand operand)
{
	return operand == CLI_OPERAND_CALL ? "a call ID" : "a user NAME";
}

/*
 * The command the words name, with the right number of operands and only
 * options it takes; otherwise NULL and a usage failure in the reply.
 */
static const struct cli_command *cli_find_command(const struct cli_request *req,
						  struct cli_reply *reply)
{
	const char *w1 = req->n_words > 1 ? req->words[1] : "";

	for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0]; i++) {
		const struct cli_command *cmd = &cli_commands[i];
		int want = cmd->words[1] ? 2 : 1;
		unsigned extra = req->opts & ~cmd->opts;
		int min, max = cli_operands(cmd->operand, &min);

		if (req->n_words < want || strcmp(req->words[0], cmd->words[0]) != 0 ||
		    (want == 2 && strcmp(req->words[1], cmd->words[1]) != 0))
			continue;
		if (req->n_words < want + min)
			cli_fail(reply, CLI_STATUS_USAGE, "'%s %s' needs %s", req->words[0], w1,
				 cli_operand_what(cmd->operand));
		else if (req->n_words > want + max)
			cli_fail(reply, CLI_STATUS_USAGE, "unexpected word '%.40s'",
				 req->words[want + max]);
		else if (extra)
			cli_fail(reply, CLI_STATUS_USAGE, "option %s does not go with '%s%s%s'",
				 cli_option_name(extra), req->words[0], want == 2 ? " " : "",
				 want == 2 ? w1 : "");
		else
			return cmd;
		return NULL;
	}
	cli_fail(reply, CLI_STATUS_USAGE, "unknown command '%.40s%s%.40s'", req->words[0],
		 req->n_words > 1 ? " " : "", w1);
	return NULL;
}

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
 * Split the request line in place into words (decoded), --json, and the
 * options with their values.  "--json" may stand anywhere; an option's
 * value is the next word whatever it looks like.
 */
static int cli_parse_request(char *line, struct cli_request *req, struct cli_reply *reply)
{
	const char **slot = NULL;       /* the option waiting for its value */
	const struct cli_option *opt = NULL;
	char *save = NULL;
	size_t index = 0;

	memset(req, 0, sizeof *req);
	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (cli_decode_word(w) < 0)
			return cli_fail(reply, CLI_STATUS_USAGE, "bad %%-encoding in the request");
		if (slot) {
			*slot = w;
			slot = NULL;
		} else if (strcmp(w, CLI_JSON_FLAG) == 0) {
			req->json = 1;
		} else if ((opt = cli_option_find(w, &index)) != NULL) {
			if (req->opts & opt->flag)
				return cli_fail(reply, CLI_STATUS_USAGE, "option %s given twice",
						w);
			req->opts |= opt->flag;
			slot = opt->takes_value ? &req->values[index] : NULL;
		} else if (w[0] == '-') {
			return cli_fail(reply, CLI_STATUS_USAGE, "unknown option '%.40s'", w);
		} else if (req->n_words == CLI_MAX_WORDS) {
			return cli_fail(reply, CLI_STATUS_USAGE, "too many words");
		} else {
			req->words[req->n_words++] = w;
		}
	}
	if (slot)
		return cli_fail(reply, CLI_STATUS_USAGE, "option %s needs a value", opt->name);
	if (req->n_words == 0)
		return cli_fail(reply, CLI_STATUS_USAGE, "empty request");
	return 0;
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
	char line[CLI_TEXT_MAX + 16];
	int n, err;

	n = snprintf(line, sizeof line, "%d %s\n", status, text);
	if (n < 0 || (size_t)n >= sizeof line)
		return -EINVAL;
	/* One line whatever the text quotes (a user name, a Redis error). */
	for (int i = 0; i < n - 1; i++) {
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	}
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
	struct cli_reply reply = { .status = CLI_STATUS_OK };
	const struct cli_command *cmd = NULL;
	struct cli_buf body = { 0 };
	struct cli_request req;
	int err;

	if (cli_parse_request(line, &req, &reply) == 0)
		cmd = cli_find_command(&req, &reply);
	if (cmd && (err = cmd->run(srv, &req, &body, &reply)) < 0 &&
	    reply.status == CLI_STATUS_OK) {
		cli_fail(&reply, CLI_STATUS_ERROR, "cannot build the answer: %s", strerror(-err));
		log_error("cli: '%s %s': %s", req.words[0], req.n_words > 1 ? req.words[1] : "",
			  strerror(-err));
	}
	if (reply.status != CLI_STATUS_OK) {
		body.len = 0;
		body.err = 0;
		if (reply.status == CLI_STATUS_USAGE)
			cli_help(srv, &req, &body, &reply);
	} else {
		snprintf(reply.text, sizeof reply.text, "ok");
	}
	err = cli_respond(fd, reply.status, reply.text, &body);
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
	/* It may have carried a password. */
	explicit_bzero(line, sizeof line);
}

void cli_server_handle(cli_server_t *srv)
{
	uint64_t until = cli_now_ms(CLOCK_MONOTONIC) + CLI_BATCH_MS;

	/* A `user` command may wait on Redis: after a slow one, let the master's
	 * loop run before the next client (the socket stays readable). */
	for (int i = 0; i < CLI_ACCEPT_BATCH && cli_now_ms(CLOCK_MONOTONIC) < until; i++) {
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
	snprintf(srv->redis_address, sizeof srv->redis_address, "%s", cfg->redis_address);
	snprintf(srv->redis_password, sizeof srv->redis_password, "%s", cfg->redis_password);
	srv->redis_db = cfg->redis_db;
	snprintf(srv->redis_prefix, sizeof srv->redis_prefix, "%s", cfg->redis_prefix);
	snprintf(srv->realm, sizeof srv->realm, "%s", cfg->realm);
	/* config_defaults() says "cdr"; a struct filled by hand may leave it empty. */
	snprintf(srv->cdr_stream, sizeof srv->cdr_stream, "%s",
		 cfg->cdr_stream[0] ? cfg->cdr_stream : "cdr");
	srv->no_answer_timeout = cfg->no_answer_timeout;
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

void cli_server_set_worker_request(cli_server_t *srv, cli_worker_request_f *fn, void *arg)
{
	srv->worker_request = fn;
	srv->worker_request_arg = arg;
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
