/*
 * check_cli — the CLI server against a real call table, driven by the real
 * b2bua-cli binary.
 *
 * Design note.  Each test builds a call table (shm_create) holding known
 * calls and worker counters, opens the server on a socket in a fresh
 * temporary directory and serves it from a forked child (poll +
 * cli_server_handle).  The test runs $top_builddir/cli/b2bua-cli as a
 * separate process and checks its exit code, stdout and stderr, and parses
 * --json answers with jansson.  The server child is killed by PID in the
 * teardown; should a failed assertion skip the teardown, it dies with its
 * parent (PR_SET_PDEATHSIG), and it exits by itself after SERVE_MAX_MS.
 *
 * The `user` commands run against a real redis-server that the "users"
 * fixture starts on a Unix socket in the test's directory (no TCP port, no
 * persistence) and kills by PID, with the same PR_SET_PDEATHSIG safety net.
 * The test reads and writes Redis itself through hiredis to check what the
 * CLI stored, and to plant registrations and CDRs as the workers would.
 *
 * `call kill` needs a worker: the server child gets a fake worker-request
 * function that plays one (records the request in a MAP_SHARED page the
 * test reads, and removes the call from the shared table, or answers
 * otherwise as the test asks).
 */
#define _GNU_SOURCE

#include "b2bua/ctl.h"
#include "cli/cli_cmd.h"
#include "cli/cli_int.h"
#include "cli/cli_proto.h"
#include "cli/cli_server.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "b2bua/digest.h"

#define SERVE_MAX_MS   60000    /* a server child never outlives this */
#define CLIENT_MAX_MS  10000    /* a client run that takes longer is killed and fails */
#define TABLE_CAPACITY 4096
#define TABLE_WORKERS  4        /* more slots than configured workers (2) */
#define NOBODY_UID     65534
#define REDIS_START_MS 5000     /* redis-server must answer PING within this */
#define T_PREFIX       "t:"     /* redis_prefix of the tests */
#define T_REALM        "test.realm"

struct test_call {
	const char *id;
	uint16_t worker;
	uint8_t state;
	uint8_t held_by;
	const char *caller;
	const char *callee;
	const char *forward_target;
	const char *a_call_id;
	const char *b_call_id;
	unsigned age_s;
	uint64_t ring_after_ms;   /* 0: no ring_ms */
	uint64_t answer_after_ms; /* 0: no answer_ms */
	const char *state_text;   /* as `show calls` prints it */
	const char *state_json;
	const char *held_json;    /* NULL: held_by is null */
};

/* Call ids (NODE-wN-HEX-N) whose counters pass 2^53 and 2^63: they are strings end to end. */
static const struct test_call t_calls[] = {
	{ "test-node-w0-18e1c2d3a4b-18446744073709551557", 0, SHM_CALL_ANSWERED, SHM_PARTY_NONE,
	  "sip:alice@example.com", "sip:bob@example.com", "", "a-1@10.0.0.1", "b-1@test-node",
	  30, 1500, 4250, "ANSWERED", "ANSWERED", NULL },
	{ "test-node-w1-18e1c2d3a4c-4242", 1, SHM_CALL_RINGING, SHM_PARTY_NONE,
	  "sip:carol@example.com", "sip:dave@example.com", "", "a-2@10.0.0.2", "b-2@test-node",
	  5, 800, 0, "RINGING", "RINGING", NULL },
	{ "test-node-w0-18e1c2d3a4b-9007199254740993", 0, SHM_CALL_HELD, SHM_PARTY_CALLEE,
	  "sip:erin@example.com", "sip:frank@example.com", "", "a-3@10.0.0.3", "b-3@test-node",
	  120, 1000, 2000, "HELD(by callee)", "HELD", "callee" },
	{ "test-node-w1-18e1c2d3a4c-77", 1, SHM_CALL_FORWARDING, SHM_PARTY_NONE,
	  "sip:grace@example.com", "sip:heidi@example.com", "sip:ivan@example.com",
	  "a-4@10.0.0.4", "b-4@test-node", 12, 0, 0, "FORWARDING", "FORWARDING", NULL },
	{ "test-node-w0-18e1c2d3a4b-78", 0, SHM_CALL_TRYING, SHM_PARTY_NONE,
	  "sip:judy@example.com", "sip:mallory@example.com", "", "a-5@10.0.0.5", "",
	  1, 0, 0, "TRYING", "TRYING", NULL },
	{ "test-node-w1-18e1c2d3a4c-79", 1, SHM_CALL_ENDING, SHM_PARTY_NONE,
	  "sip:niaj@example.com", "sip:olivia@example.com", "", "a-6@10.0.0.6", "b-6@test-node",
	  40, 0, 0, "ENDING", "ENDING", NULL },
};
#define N_CALLS (sizeof t_calls / sizeof t_calls[0])

static shm_t *t_shm;
static struct config t_cfg;
static cli_server_t *t_srv;
static pid_t t_server_pid;
static char t_dir[64];
static char t_rundir[128];
static uint64_t t_now_ms;
static pid_t t_redis_pid;
static redisContext *t_redis;   /* the test's own connection */

/* The fake worker of the `call kill` tests (see the design note): MAP_SHARED
 * between the test and the server child that runs it. */
struct fake_worker {
	int mode;               /* enum fake_mode */
	unsigned calls;         /* requests received */
	unsigned worker;        /* the worker index of the last one */
	char request[128];      /* the last request line */
};

static struct fake_worker *t_fake;

struct run_result {
	int status;     /* exit code, or 128 + signal */
	char *out;
	char *err;
};

/* ------------------------------------------------------------ helpers */

static uint64_t now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *cli_path(void)
{
	static char path[PATH_MAX];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof path, "%s/cli/b2bua-cli", top && *top ? top : ".");
	return path;
}

static void fill_table(void)
{
	for (size_t i = 0; i < N_CALLS; i++) {
		const struct test_call *t = &t_calls[i];
		struct shm_call c;
		uint32_t slot;

		memset(&c, 0, sizeof c);
		snprintf(c.id, sizeof c.id, "%s", t->id);
		c.worker = t->worker;
		c.state = t->state;
		c.held_by = t->held_by;
		snprintf(c.caller, sizeof c.caller, "%s", t->caller);
		snprintf(c.callee, sizeof c.callee, "%s", t->callee);
		snprintf(c.forward_target, sizeof c.forward_target, "%s", t->forward_target);
		snprintf(c.a.call_id, sizeof c.a.call_id, "%s", t->a_call_id);
		snprintf(c.b.call_id, sizeof c.b.call_id, "%s", t->b_call_id);
		/* Tags and targets derived from the index: "a-lt-0", "sip:b0@10.9.0.1". */
		snprintf(c.a.local_tag, sizeof c.a.local_tag, "a-lt-%zu", i);
		snprintf(c.a.remote_tag, sizeof c.a.remote_tag, "a-rt-%zu", i);
		snprintf(c.a.remote_target, sizeof c.a.remote_target, "sip:a%zu@10.8.0.1", i);
		if (*t->b_call_id) {
			snprintf(c.b.local_tag, sizeof c.b.local_tag, "b-lt-%zu", i);
			snprintf(c.b.remote_tag, sizeof c.b.remote_tag, "b-rt-%zu", i);
			snprintf(c.b.remote_target, sizeof c.b.remote_target, "sip:b%zu@10.9.0.1",
				 i);
		}
		c.start_ms = t_now_ms - (uint64_t)t->age_s * 1000;
		c.ring_ms = t->ring_after_ms ? c.start_ms + t->ring_after_ms : 0;
		c.answer_ms = t->answer_after_ms ? c.start_ms + t->answer_after_ms : 0;
		/* Transports from the index too: A udp, tcp, tls, ...; B one further. */
		c.a.transport = (uint8_t)(i % 3);
		c.b.transport = (uint8_t)((i + 1) % 3);
		ck_assert_int_eq(shm_call_insert(t_shm, &c, &slot), 0);
	}

	/* Worker 0 runs since 100 s; worker 1 was restarted once, 20 s ago. */
	shm_worker_set(t_shm, 0, 1111, 5070, 0, t_now_ms - 100000);
	shm_worker_set(t_shm, 1, 2000, 5071, 0, t_now_ms - 500000);
	shm_worker_set(t_shm, 1, 2222, 5071, 1, t_now_ms - 20000);
	/* Worker 2 is beyond the configured count: the CLI must not show it. */
	shm_worker_set(t_shm, 2, 3333, 5072, 0, t_now_ms - 1000);

	shm_counter_add(t_shm, 0, SHM_CTR_ACTIVE, 3);
	shm_counter_add(t_shm, 1, SHM_CTR_ACTIVE, 4);
	shm_counter_add(t_shm, 1, SHM_CTR_ACTIVE, -1);
	shm_counter_add(t_shm, 0, SHM_CTR_MSGS_IN, 100);
	shm_counter_add(t_shm, 1, SHM_CTR_MSGS_IN, 20);
	shm_counter_add(t_shm, 0, SHM_CTR_MSGS_OUT, 150);
	shm_counter_add(t_shm, 1, SHM_CTR_MSGS_OUT, 30);
	shm_counter_add(t_shm, 0, SHM_CTR_CALLS_CREATED, 9);
	shm_counter_add(t_shm, 1, SHM_CTR_CALLS_CREATED, 4);
	shm_counter_add(t_shm, 0, SHM_CTR_HANDED_OUT, 41);
	shm_counter_add(t_shm, 1, SHM_CTR_HANDED_IN, 40);
	shm_counter_add(t_shm, 1, SHM_CTR_HANDOVER_DROPPED, 1);
	shm_gauge_set(t_shm, 1, SHM_CTR_CONN_OPEN, 7);
	shm_gauge_set(t_shm, 1, SHM_CTR_CALLS_AT_REST, 5);
	shm_counter_add(t_shm, 0, SHM_CTR_CALLS_WOKEN, 3);
	shm_counter_add(t_shm, 0, SHM_CTR_OVERLOAD_REFUSED, 5);
	shm_counter_add(t_shm, 1, SHM_CTR_OVERLOAD_REFUSED, 2);
	shm_counter_add(t_shm, 0, SHM_CTR_CALLS_TOTAL, 10);
	shm_counter_add(t_shm, 1, SHM_CTR_CALLS_TOTAL, 5);
	shm_counter_add(t_shm, 0, SHM_CTR_CALLS_ANSWERED, 6);
	shm_counter_add(t_shm, 1, SHM_CTR_CALLS_ANSWERED, 2);
	shm_counter_add(t_shm, 0, SHM_CTR_CALLS_FAILED, 3);
	shm_counter_add(t_shm, 1, SHM_CTR_CALLS_FAILED, 1);
	shm_code_count(t_shm, 0, 486);
	shm_code_count(t_shm, 0, 486);
	shm_code_count(t_shm, 1, 486);
	shm_code_count(t_shm, 0, 200);
	shm_code_count(t_shm, 1, 404);
}

/* The server child: answer clients until killed, its parent dies, or SERVE_MAX_MS. */
static void serve(cli_server_t *srv, pid_t parent)
{
	uint64_t deadline = now_ms(CLOCK_MONOTONIC) + SERVE_MAX_MS;
	struct pollfd pfd = { .fd = cli_server_fd(srv), .events = POLLIN };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	while (now_ms(CLOCK_MONOTONIC) < deadline) {
		if (poll(&pfd, 1, 200) > 0 && (pfd.revents & POLLIN))
			cli_server_handle(srv);
	}
	_exit(0);
}

static pid_t start_server(cli_server_t *srv)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	/* The child must not reach any ck_assert: it would write into Check's channel. */
	if (pid == 0)
		serve(srv, parent);
	ck_assert_int_gt(pid, 0);
	return pid;
}

static void stop_server(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

/* Read what `fd` gives until EOF into a growing string. */
static int drain_into(int fd, char **buf, size_t *len, size_t *cap)
{
	char chunk[16384];
	ssize_t n = read(fd, chunk, sizeof chunk);

	if (n <= 0)
		return n < 0 && errno == EINTR ? 1 : 0;
	if (*len + (size_t)n + 1 > *cap) {
		while (*len + (size_t)n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 65536;
		*buf = realloc(*buf, *cap);
		ck_assert_ptr_nonnull(*buf);
	}
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return 1;
}

static void exec_cli(const char *const *argv, const char *env_socket, uid_t uid,
		     int in_fd, int out_fd, int err_fd)
{
	if (in_fd >= 0)
		dup2(in_fd, STDIN_FILENO);
	dup2(out_fd, STDOUT_FILENO);
	dup2(err_fd, STDERR_FILENO);
	if (env_socket)
		setenv(CLI_SOCKET_ENV, env_socket, 1);
	else
		unsetenv(CLI_SOCKET_ENV);
	if (uid != (uid_t)-1 && (setgid(uid) < 0 || setuid(uid) < 0))
		_exit(126);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

/*
 * Run b2bua-cli with `args` (NULL-terminated, argv[0] excluded), the
 * environment variable B2BUA_SOCKET set to env_socket (or unset), as `uid`
 * ((uid_t)-1: ours), with `input` on its stdin (NULL: ours).  Bounded by
 * CLIENT_MAX_MS.
 */
static void run_cli_full(struct run_result *r, const char *env_socket, uid_t uid,
			 const char *input, const char *const *args)
{
	const char *argv[24] = { cli_path() };
	size_t out_len = 0, out_cap = 0, err_len = 0, err_cap = 0;
	uint64_t deadline = now_ms(CLOCK_MONOTONIC) + CLIENT_MAX_MS;
	int pi[2] = { -1, -1 }, po[2], pe[2], open_fds = 2, wstatus;
	pid_t pid;

	for (size_t i = 0; args[i]; i++) {
		ck_assert_uint_lt(i + 2, sizeof argv / sizeof argv[0]);
		argv[i + 1] = args[i];
	}
	if (input)
		ck_assert_int_eq(pipe2(pi, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0)
		exec_cli(argv, env_socket, uid, pi[0], po[1], pe[1]);
	ck_assert_int_gt(pid, 0);
	close(po[1]);
	close(pe[1]);
	if (input) {
		/* Small enough for the pipe's buffer: written whole, then EOF. */
		close(pi[0]);
		ck_assert_int_eq(write(pi[1], input, strlen(input)), (ssize_t)strlen(input));
		close(pi[1]);
	}

	memset(r, 0, sizeof *r);
	struct pollfd pfd[2] = {
		{ .fd = po[0], .events = POLLIN },
		{ .fd = pe[0], .events = POLLIN },
	};
	while (open_fds > 0) {
		uint64_t now = now_ms(CLOCK_MONOTONIC);

		if (now >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			ck_abort_msg("b2bua-cli did not finish within %d ms", CLIENT_MAX_MS);
		}
		if (poll(pfd, 2, (int)(deadline - now)) <= 0)
			continue;
		if (pfd[0].revents && !drain_into(po[0], &r->out, &out_len, &out_cap)) {
			pfd[0].fd = -1;
			open_fds--;
		}
		if (pfd[1].revents && !drain_into(pe[0], &r->err, &err_len, &err_cap)) {
			pfd[1].fd = -1;
			open_fds--;
		}
	}
	close(po[0]);
	close(pe[0]);
	ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
	r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	if (!r->out)
		r->out = strdup("");
	if (!r->err)
		r->err = strdup("");
}

static void run_cli_as(struct run_result *r, const char *env_socket, uid_t uid,
		       const char *const *args)
{
	run_cli_full(r, env_socket, uid, NULL, args);
}

/* b2bua-cli -s <test socket> args... (NULL-terminated) */
static void run_cli(struct run_result *r, ...)
{
	const char *args[20] = { "-s", t_cfg.cli_socket };
	size_t n = 2;
	va_list ap;

	va_start(ap, r);
	while ((args[n] = va_arg(ap, const char *)) != NULL) {
		n++;
		ck_assert_uint_lt(n, sizeof args / sizeof args[0]);
	}
	va_end(ap);
	run_cli_as(r, NULL, (uid_t)-1, args);
}

static void free_result(struct run_result *r)
{
	free(r->out);
	free(r->err);
}

/* The first line of `text` that starts with `prefix`, or NULL. */
static char *find_line(char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	char *line = text;

	while (line) {
		if (strncmp(line, prefix, n) == 0)
			return line;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

static json_t *parse_json(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	ck_assert_msg(v != NULL, "bad JSON (%s at line %d): %.200s", jerr.text, jerr.line, text);
	return v;
}

static json_t *find_by_str(json_t *arr, const char *key, const char *value)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		const char *s = json_string_value(json_object_get(o, key));

		if (s && strcmp(s, value) == 0)
			return o;
	}
	return NULL;
}

static json_t *find_by_int(json_t *arr, const char *key, json_int_t value)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		json_t *v = json_object_get(o, key);

		if (json_is_integer(v) && json_integer_value(v) == value)
			return o;
	}
	return NULL;
}

static json_int_t int_field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "field %s is not an integer", key);
	return json_integer_value(v);
}

static const char *str_field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "field %s is not a string", key);
	return json_string_value(v);
}

static void set_sun_path(struct sockaddr_un *sun, const char *path)
{
	size_t n = strlen(path);

	ck_assert_uint_lt(n, sizeof sun->sun_path);
	memcpy(sun->sun_path, path, n + 1);
}

/* Connect to `path`, send `req` (then half-close when asked), read the whole answer. */
static char *raw_request(const char *path, const char *req, int half_close)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	size_t len = 0, cap = 0;
	char *buf = NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	set_sun_path(&sun, path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (*req)
		ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	if (half_close)
		shutdown(fd, SHUT_WR);
	while (drain_into(fd, &buf, &len, &cap))
		;
	close(fd);
	return buf ? buf : strdup("");
}

/* 0 when something listens on `path`, else -errno (ECONNREFUSED: a stale file). */
static int try_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int err;

	ck_assert_int_ge(fd, 0);
	set_sun_path(&sun, path);
	err = connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* A socket file nobody listens on, as a crashed daemon leaves behind. */
static void make_stale_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	set_sun_path(&sun, path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);
}

/* ------------------------------------------------------------ fixture */

static void setup(void)
{
	snprintf(t_dir, sizeof t_dir, "/tmp/check-cli-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	/* The socket's directory does not exist yet: the server must create it. */
	snprintf(t_rundir, sizeof t_rundir, "%s/run", t_dir);

	memset(&t_cfg, 0, sizeof t_cfg);
	t_cfg.workers = 2;
	snprintf(t_cfg.node_id, sizeof t_cfg.node_id, "test-node");
	snprintf(t_cfg.cli_socket, sizeof t_cfg.cli_socket, "%s/b2bua.sock", t_rundir);
	/* Where the "users" fixture starts its redis-server. */
	snprintf(t_cfg.redis_address, sizeof t_cfg.redis_address, "unix:%s/r.sock", t_dir);
	snprintf(t_cfg.redis_prefix, sizeof t_cfg.redis_prefix, T_PREFIX);
	snprintf(t_cfg.realm, sizeof t_cfg.realm, T_REALM);
	/* cdr_stream stays empty: the server must fall back to "cdr" (key "t:cdr"). */
	t_cfg.no_answer_timeout = 20;

	t_now_ms = now_ms(CLOCK_REALTIME);
	ck_assert_int_eq(shm_create(TABLE_CAPACITY, TABLE_WORKERS, &t_shm), 0);
	fill_table();
	ck_assert_int_eq(cli_server_open(&t_cfg, t_shm, &t_srv), 0);
	t_server_pid = start_server(t_srv);
}

static void teardown(void)
{
	char path[256];

	stop_server(&t_server_pid);
	if (t_fake)
		munmap(t_fake, sizeof *t_fake);
	t_fake = NULL;
	cli_server_close(t_srv);
	t_srv = NULL;
	shm_destroy(t_shm);
	t_shm = NULL;
	/* Files some tests leave; the server's own socket went with cli_server_close. */
	const char *leftovers[] = { "stale.sock", "none.sock", "plain-file", "live2.sock",
				    "r.sock", "redis.log", "silent.sock" };
	for (size_t i = 0; i < sizeof leftovers / sizeof leftovers[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", t_dir, leftovers[i]);
		unlink(path);
	}
	rmdir(t_rundir);
	rmdir(t_dir);
}

/* ------------------------------------------------------------ show calls */

START_TEST(test_calls_text)
{
	struct run_result r;

	run_cli(&r, "show", "calls", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	ck_assert_ptr_nonnull(strstr(r.out, "CALLER"));
	ck_assert_ptr_nonnull(find_line(r.out, "ID "));
	ck_assert_msg(strstr(find_line(r.out, "ID "), " WORKER FORWARD ") != NULL, "%s", r.out);
	ck_assert_msg(strstr(find_line(r.out, "ID "), " A_TRANSPORT B_TRANSPORT\n") != NULL, "%s",
		      r.out);
	for (size_t i = 0; i < N_CALLS; i++) {
		const struct test_call *t = &t_calls[i];
		char id[SHM_ID_MAX + 1], copy[512], *words[16], *line, *eol;
		int n_words;

		/* Each call on a line of its own, starting with its id. */
		snprintf(id, sizeof id, "%s ", t->id);
		line = find_line(r.out, id);
		ck_assert_msg(line != NULL, "no line for call %s", id);
		eol = strchr(line, '\n');
		ck_assert_ptr_nonnull(eol);
		*eol = '\0';
		ck_assert_msg(strstr(line, t->caller), "caller missing: %s", line);
		ck_assert_msg(strstr(line, t->callee), "callee missing: %s", line);
		ck_assert_msg(strstr(line, t->state_text), "state %s missing: %s",
			      t->state_text, line);
		/* The legs' transports are the last columns (B: "-" before a B-leg),
		 * FORWARD just before them: the target, or "-". */
		snprintf(copy, sizeof copy, "%s", line);
		n_words = 0;
		for (char *w = strtok(copy, " "); w && n_words < 16; w = strtok(NULL, " "))
			words[n_words++] = w;
		ck_assert_msg(n_words >= 9, "too few columns: %s", line);
		ck_assert_str_eq(words[n_words - 2], shm_transport_name((unsigned)(i % 3)));
		ck_assert_str_eq(words[n_words - 1], *t->b_call_id
				 ? shm_transport_name((unsigned)((i + 1) % 3)) : "-");
		ck_assert_str_eq(words[n_words - 3], *t->forward_target ? t->forward_target : "-");
		*eol = '\n';
	}
	ck_assert_ptr_nonnull(strstr(r.out, "HELD(by callee)"));
	ck_assert_ptr_nonnull(strstr(r.out, "\n6 calls\n"));
	free_result(&r);
}
END_TEST

START_TEST(test_calls_json)
{
	struct run_result r;
	json_t *arr;

	run_cli(&r, "show", "calls", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	arr = parse_json(r.out);
	ck_assert(json_is_array(arr));
	ck_assert_uint_eq(json_array_size(arr), N_CALLS);
	for (size_t i = 0; i < N_CALLS; i++) {
		const struct test_call *t = &t_calls[i];
		const char *id = t->id;
		json_t *o;
		json_int_t age;

		o = find_by_str(arr, "id", id);
		ck_assert_msg(o != NULL, "call %s missing from JSON", id);
		ck_assert_str_eq(str_field(o, "caller"), t->caller);
		ck_assert_str_eq(str_field(o, "callee"), t->callee);
		ck_assert_str_eq(str_field(o, "state"), t->state_json);
		ck_assert_str_eq(str_field(o, "a_call_id"), t->a_call_id);
		ck_assert_int_eq(int_field(o, "worker"), t->worker);
		age = int_field(o, "age_s");
		ck_assert_msg(age >= t->age_s && age <= t->age_s + 5, "age %lld for %s",
			      (long long)age, id);
		if (t->held_json)
			ck_assert_str_eq(str_field(o, "held_by"), t->held_json);
		else
			ck_assert(json_is_null(json_object_get(o, "held_by")));
		if (*t->forward_target)
			ck_assert_str_eq(str_field(o, "forward_target"), t->forward_target);
		else
			ck_assert(json_is_null(json_object_get(o, "forward_target")));
		if (*t->b_call_id)
			ck_assert_str_eq(str_field(o, "b_call_id"), t->b_call_id);
		else
			ck_assert(json_is_null(json_object_get(o, "b_call_id")));
		ck_assert_str_eq(str_field(o, "a_transport"), shm_transport_name((unsigned)(i % 3)));
		if (*t->b_call_id)
			ck_assert_str_eq(str_field(o, "b_transport"),
					 shm_transport_name((unsigned)((i + 1) % 3)));
		else
			ck_assert(json_is_null(json_object_get(o, "b_transport")));
	}
	json_decref(arr);
	free_result(&r);
}
END_TEST

/* Thousands of calls: far more than a socket buffer, so the server must write in full. */
START_TEST(test_calls_large)
{
	const unsigned extra = 3000;
	struct run_result r;
	json_t *arr;
	char tail[32];

	for (unsigned i = 0; i < extra; i++) {
		struct shm_call c;
		uint32_t slot;

		memset(&c, 0, sizeof c);
		snprintf(c.id, sizeof c.id, "load-w%u-1-%u", i % 2, 1000000 + i);
		c.worker = (uint16_t)(i % 2);
		c.state = SHM_CALL_ANSWERED;
		c.start_ms = t_now_ms;
		snprintf(c.caller, sizeof c.caller, "sip:user%u@load.example.com", i);
		snprintf(c.callee, sizeof c.callee, "sip:target%u@load.example.com", i);
		snprintf(c.a.call_id, sizeof c.a.call_id, "load-%u@10.1.1.1", i);
		snprintf(c.b.call_id, sizeof c.b.call_id, "load-b-%u@test-node", i);
		ck_assert_int_eq(shm_call_insert(t_shm, &c, &slot), 0);
	}

	run_cli(&r, "show", "calls", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_gt(strlen(r.out), 512 * 1024);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), N_CALLS + extra);
	ck_assert_ptr_nonnull(find_by_str(arr, "id", "load-w1-1-1002999"));
	json_decref(arr);
	free_result(&r);

	run_cli(&r, "show", "calls", NULL);
	ck_assert_int_eq(r.status, 0);
	snprintf(tail, sizeof tail, "\n%zu calls\n", N_CALLS + extra);
	ck_assert_ptr_nonnull(strstr(r.out, tail));
	ck_assert_ptr_nonnull(strstr(r.out, "sip:user2999@load.example.com"));
	free_result(&r);
}
END_TEST

static void assert_usage_error(const char *a1, const char *a2, const char *a3);

/* ISO-8601 UTC with milliseconds, computed here independently of the server. */
static void iso_ms(uint64_t ms, char *out, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char day[32];

	ck_assert_ptr_nonnull(gmtime_r(&secs, &tm));
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03uZ", day, (unsigned)(ms % 1000));
}

/* The block of `show calls --long` that starts with "call <id>\n", cut out in place. */
static char *call_block(char *text, const struct test_call *t)
{
	char head[SHM_ID_MAX + 8], *block, *end;

	snprintf(head, sizeof head, "call %s\n", t->id);
	block = find_line(text, head);
	ck_assert_msg(block != NULL, "no block for call %s in:\n%s", t->id, text);
	end = strstr(block + 1, "\n\n");
	if (end)
		end[1] = '\0';
	return block;
}

/* A block holds the call's times, hold state, forward target and both legs. */
static void assert_call_block(const char *block, size_t i)
{
	const struct test_call *t = &t_calls[i];
	uint64_t start = t_now_ms - (uint64_t)t->age_s * 1000;
	char want[200], when[40];

	snprintf(want, sizeof want, "  state:         %s\n", t->state_json);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  held:          %s%s\n", t->held_json ? "by " : "no",
		 t->held_json ? t->held_json : "");
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  worker:        %u\n", (unsigned)t->worker);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  caller:        %s\n", t->caller);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  forward:       %s\n",
		 *t->forward_target ? t->forward_target : "-");
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	iso_ms(start, when, sizeof when);
	snprintf(want, sizeof want, "  started:       %s (", when);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	if (t->ring_after_ms)
		iso_ms(start + t->ring_after_ms, when, sizeof when);
	snprintf(want, sizeof want, "  ringing:       %s\n", t->ring_after_ms ? when : "-");
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	if (t->answer_after_ms)
		iso_ms(start + t->answer_after_ms, when, sizeof when);
	snprintf(want, sizeof want, "  answered:      %s\n", t->answer_after_ms ? when : "-");
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);

	snprintf(want, sizeof want, "  A-leg call-id: %s\n", t->a_call_id);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  A-leg tags:    local a-lt-%zu, remote a-rt-%zu\n", i, i);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  A-leg target:  sip:a%zu@10.8.0.1\n", i);
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	snprintf(want, sizeof want, "  A-leg transport: %s\n", shm_transport_name((unsigned)(i % 3)));
	ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	if (*t->b_call_id) {
		snprintf(want, sizeof want, "  B-leg call-id: %s\n", t->b_call_id);
		ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
		snprintf(want, sizeof want, "  B-leg tags:    local b-lt-%zu, remote b-rt-%zu\n",
			 i, i);
		ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
		snprintf(want, sizeof want, "  B-leg target:  sip:b%zu@10.9.0.1\n", i);
		ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
		snprintf(want, sizeof want, "  B-leg transport: %s\n",
			 shm_transport_name((unsigned)((i + 1) % 3)));
		ck_assert_msg(strstr(block, want), "'%s' missing in:\n%s", want, block);
	} else {
		/* No B-leg yet: dashes, not empty fields. */
		ck_assert_ptr_nonnull(strstr(block, "  B-leg call-id: -\n"));
		ck_assert_ptr_nonnull(strstr(block, "  B-leg tags:    local -, remote -\n"));
		ck_assert_ptr_nonnull(strstr(block, "  B-leg target:  -\n"));
		ck_assert_ptr_nonnull(strstr(block, "  B-leg transport: -\n"));
	}
}

/* The --long JSON object of call i. */
static void assert_call_long_json(json_t *o, size_t i)
{
	const struct test_call *t = &t_calls[i];
	uint64_t start = t_now_ms - (uint64_t)t->age_s * 1000;
	json_t *a = json_object_get(o, "a"), *b = json_object_get(o, "b");
	char want[64];

	ck_assert_str_eq(str_field(o, "caller"), t->caller);
	ck_assert_str_eq(str_field(o, "state"), t->state_json);
	ck_assert_int_eq(int_field(o, "start_ms"), (json_int_t)start);
	ck_assert_int_eq(int_field(o, "ring_ms"),
			 t->ring_after_ms ? (json_int_t)(start + t->ring_after_ms) : 0);
	ck_assert_int_eq(int_field(o, "answer_ms"),
			 t->answer_after_ms ? (json_int_t)(start + t->answer_after_ms) : 0);
	ck_assert(json_is_object(a));
	ck_assert(json_is_object(b));
	ck_assert_str_eq(str_field(a, "call_id"), t->a_call_id);
	snprintf(want, sizeof want, "a-lt-%zu", i);
	ck_assert_str_eq(str_field(a, "local_tag"), want);
	snprintf(want, sizeof want, "a-rt-%zu", i);
	ck_assert_str_eq(str_field(a, "remote_tag"), want);
	snprintf(want, sizeof want, "sip:a%zu@10.8.0.1", i);
	ck_assert_str_eq(str_field(a, "remote_target"), want);
	ck_assert_str_eq(str_field(a, "transport"), shm_transport_name((unsigned)(i % 3)));
	ck_assert_str_eq(str_field(o, "a_transport"), shm_transport_name((unsigned)(i % 3)));
	if (*t->b_call_id) {
		ck_assert_str_eq(str_field(b, "transport"),
				 shm_transport_name((unsigned)((i + 1) % 3)));
		ck_assert_str_eq(str_field(b, "call_id"), t->b_call_id);
		snprintf(want, sizeof want, "b-rt-%zu", i);
		ck_assert_str_eq(str_field(b, "remote_tag"), want);
		snprintf(want, sizeof want, "sip:b%zu@10.9.0.1", i);
		ck_assert_str_eq(str_field(b, "remote_target"), want);
	} else {
		ck_assert(json_is_null(json_object_get(b, "call_id")));
		ck_assert(json_is_null(json_object_get(b, "local_tag")));
		ck_assert(json_is_null(json_object_get(b, "remote_target")));
		ck_assert(json_is_null(json_object_get(b, "transport")));
	}
}

START_TEST(test_calls_long)
{
	struct run_result r;
	json_t *arr;

	run_cli(&r, "show", "calls", "--long", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_str_eq(r.err, "");
	ck_assert_ptr_null(strstr(r.out, "CALLER"));       /* blocks, not the table */
	ck_assert_msg(strlen(r.out) > 9 && strcmp(r.out + strlen(r.out) - 9, "\n6 calls\n") == 0,
		      "%s", r.out);
	for (size_t i = 0; i < N_CALLS; i++) {
		char *copy = strdup(r.out);

		assert_call_block(call_block(copy, &t_calls[i]), i);
		free(copy);
	}
	free_result(&r);

	run_cli(&r, "show", "calls", "--long", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), N_CALLS);
	for (size_t i = 0; i < N_CALLS; i++) {
		const char *id = t_calls[i].id;
		json_t *o;

		o = find_by_str(arr, "id", id);
		ck_assert_msg(o != NULL, "call %s missing", id);
		assert_call_long_json(o, i);
	}
	json_decref(arr);
	free_result(&r);

	/* Without --long the JSON stays as it was: no legs. */
	run_cli(&r, "show", "calls", "--json", NULL);
	arr = parse_json(r.out);
	ck_assert_ptr_null(json_object_get(json_array_get(arr, 0), "a"));
	ck_assert_ptr_null(json_object_get(json_array_get(arr, 0), "start_ms"));
	json_decref(arr);
	free_result(&r);
}
END_TEST

START_TEST(test_show_call)
{
	struct run_result r;
	json_t *o;

	/* The held call. */
	run_cli(&r, "show", "call", "test-node-w0-18e1c2d3a4b-9007199254740993", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_msg(strncmp(r.out, "call test-node-w0-18e1c2d3a4b-9007199254740993\n", 47) == 0, "%s", r.out);
	ck_assert_ptr_null(strstr(r.out, "-4242"));     /* only that call */
	assert_call_block(r.out, 2);
	free_result(&r);

	run_cli(&r, "show", "call", "test-node-w0-18e1c2d3a4b-9007199254740993", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert(json_is_object(o));
	ck_assert_str_eq(str_field(o, "id"), "test-node-w0-18e1c2d3a4b-9007199254740993");
	ck_assert_str_eq(str_field(o, "held_by"), "callee");
	assert_call_long_json(o, 2);
	json_decref(o);
	free_result(&r);

	/* No B-leg yet. */
	run_cli(&r, "show", "call", "test-node-w0-18e1c2d3a4b-78", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	assert_call_long_json(o, 4);
	json_decref(o);
	free_result(&r);

	run_cli(&r, "show", "call", "test-node-w0-18e1c2d3a4b-5", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "b2bua-cli: no such call test-node-w0-18e1c2d3a4b-5\n");
	free_result(&r);

	assert_usage_error("show", "call", NULL);
	assert_usage_error("show", "call", "12x");
	assert_usage_error("show", "call", "18446744073709551616");    /* the old numeric form */
	assert_usage_error("show", "call", "-w0-1-1");                 /* no node */
	assert_usage_error("show", "call", "n-w-1-1");                 /* no worker index */
}
END_TEST

/* ------------------------------------------------------------ show workers */

START_TEST(test_workers)
{
	struct run_result r;
	json_t *arr, *w0, *w1;
	json_int_t up;

	run_cli(&r, "show", "workers", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "RESTARTS"));
	ck_assert_ptr_nonnull(strstr(r.out, "HANDED_OUT"));
	ck_assert_ptr_nonnull(strstr(r.out, "1111"));
	ck_assert_ptr_nonnull(strstr(r.out, "5071"));
	ck_assert_ptr_nonnull(strstr(r.out, "draining: no"));
	ck_assert_ptr_null(strstr(r.out, "3333"));     /* not a configured worker */
	free_result(&r);

	run_cli(&r, "show", "workers", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), 2);
	w0 = find_by_int(arr, "index", 0);
	w1 = find_by_int(arr, "index", 1);
	ck_assert_ptr_nonnull(w0);
	ck_assert_ptr_nonnull(w1);
	ck_assert_int_eq(int_field(w0, "pid"), 1111);
	ck_assert_int_eq(int_field(w0, "port"), 5070);
	ck_assert_int_eq(int_field(w0, "active_calls"), 3);
	ck_assert_int_eq(int_field(w0, "restarts"), 0);
	ck_assert_int_eq(int_field(w0, "calls_created"), 9);
	ck_assert_int_eq(int_field(w0, "msgs_in"), 100);
	ck_assert_int_eq(int_field(w0, "msgs_out"), 150);
	ck_assert_int_eq(int_field(w0, "handed_out"), 41);
	ck_assert_int_eq(int_field(w0, "handed_in"), 0);
	ck_assert_int_eq(int_field(w1, "calls_created"), 4);
	ck_assert_int_eq(int_field(w1, "handed_in"), 40);
	ck_assert_int_eq(int_field(w1, "handover_dropped"), 1);
	ck_assert_int_eq(int_field(w0, "connections_open"), 0);
	ck_assert_int_eq(int_field(w1, "connections_open"), 7);
	ck_assert_int_eq(int_field(w1, "calls_at_rest"), 5);
	ck_assert_int_eq(int_field(w0, "calls_at_rest"), 0);
	ck_assert_int_eq(int_field(w0, "calls_woken"), 3);
	up = int_field(w0, "uptime_s");
	ck_assert(up >= 100 && up <= 105);
	ck_assert_int_eq(int_field(w1, "pid"), 2222);
	ck_assert_int_eq(int_field(w1, "port"), 5071);
	ck_assert_int_eq(int_field(w1, "active_calls"), 3);
	ck_assert_int_eq(int_field(w1, "restarts"), 1);
	up = int_field(w1, "uptime_s");
	ck_assert(up >= 20 && up <= 25);
	json_decref(arr);
	free_result(&r);
}
END_TEST

/* ------------------------------------------------------------ show stats */

START_TEST(test_stats)
{
	struct run_result r;
	json_t *o, *codes;

	run_cli(&r, "show", "stats", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "calls total:      15\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "calls active:     6\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\n  486  3"));
	ck_assert_ptr_nonnull(strstr(r.out, "\n  404  1"));
	ck_assert_ptr_nonnull(strstr(r.out, "\n  200  1"));
	ck_assert_ptr_null(strstr(r.out, "\n  487"));
	ck_assert_ptr_nonnull(strstr(r.out, "draining:         no\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "overload refused: 7\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "handed over:      41 (dropped: 1, unroutable: 0)\n"));
	free_result(&r);

	run_cli(&r, "show", "stats", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert_int_eq(int_field(o, "calls_total"), 15);
	ck_assert_int_eq(int_field(o, "calls_active"), (json_int_t)N_CALLS);
	ck_assert_int_eq(int_field(o, "calls_answered"), 8);
	ck_assert_int_eq(int_field(o, "calls_failed"), 4);
	ck_assert_int_eq(int_field(o, "msgs_in"), 120);
	ck_assert_int_eq(int_field(o, "msgs_out"), 180);
	ck_assert_int_eq(int_field(o, "overload_refused"), 7);
	ck_assert_uint_eq(json_array_size(json_object_get(o, "workers")), 2);
	ck_assert_int_eq(int_field(find_by_int(json_object_get(o, "workers"), "index", 1),
				   "handed_in"), 40);
	ck_assert(json_is_false(json_object_get(o, "draining")));
	ck_assert_str_eq(str_field(o, "node_id"), "test-node");
	codes = json_object_get(o, "final_codes");
	ck_assert(json_is_object(codes));
	ck_assert_uint_eq(json_object_size(codes), 3);      /* only non-zero codes */
	ck_assert_int_eq(int_field(codes, "486"), 3);
	ck_assert_int_eq(int_field(codes, "404"), 1);
	ck_assert_int_eq(int_field(codes, "200"), 1);
	json_decref(o);
	free_result(&r);
}
END_TEST

START_TEST(test_stats_draining)
{
	struct run_result r;
	json_t *o;

	stop_server(&t_server_pid);
	cli_server_set_draining(t_srv, 1);
	t_server_pid = start_server(t_srv);

	run_cli(&r, "show", "stats", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert(json_is_true(json_object_get(o, "draining")));
	json_decref(o);
	free_result(&r);

	run_cli(&r, "show", "workers", NULL);
	ck_assert_ptr_nonnull(strstr(r.out, "draining: yes"));
	free_result(&r);
}
END_TEST

/* ------------------------------------------------------------ call kill */

/* How the fake worker answers. */
enum fake_mode {
	FAKE_REMOVE = 0,    /* "ok", and the call leaves the table, as a worker does */
	FAKE_KEEP,          /* "ok", but the call stays */
	FAKE_TIMEOUT,       /* -ETIMEDOUT: the worker did not answer */
	FAKE_ESRCH,         /* -ESRCH: no such worker running */
	FAKE_ERROR,         /* "error call is being transferred" */
};

struct fake_find {
	char id[SHM_ID_MAX];
	int found;
	uint32_t slot;
};

static int fake_find_one(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct fake_find *f = arg;

	if (strcmp(c->id, f->id) != 0)
		return 0;
	f->found = 1;
	f->slot = slot;
	return 1;
}

/* The cli_ctl_request_f the management process would install; runs in the server child. */
static int fake_ctl_request(void *arg, struct ctl_msg *req, struct ctl_msg *reply)
{
	struct fake_worker *f = arg;
	struct fake_find find = { 0 };

	f->calls++;
	f->worker = req->hdr.to;
	ck_assert_uint_eq(req->hdr.type, CTL_KILL_CALL);
	snprintf(f->request, sizeof f->request, "kill %s", req->u.kill_call.id);
	switch (f->mode) {
	case FAKE_TIMEOUT:
		return -ETIMEDOUT;
	case FAKE_ESRCH:
		return -ESRCH;
	case FAKE_ERROR:
		ctl_reply_to(req, -EBUSY, "call is being transferred", reply);
		return 0;
	case FAKE_KEEP:
		ctl_reply_to(req, 0, NULL, reply);
		return 0;
	default:
		break;
	}
	snprintf(find.id, sizeof find.id, "%s", req->u.kill_call.id);
	shm_call_foreach(t_shm, fake_find_one, &find);
	if (find.found)
		shm_call_remove(t_shm, find.slot);
	ctl_reply_to(req, find.found ? 0 : -ENOENT, find.found ? NULL : "no such call", reply);
	return 0;
}

/* Restart the server child with the fake worker installed. */
static void install_fake_worker(int mode)
{
	void *p = mmap(NULL, sizeof *t_fake, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	t_fake = p;
	memset(t_fake, 0, sizeof *t_fake);
	t_fake->mode = mode;
	stop_server(&t_server_pid);
	cli_server_set_ctl_request(t_srv, fake_ctl_request, t_fake);
	t_server_pid = start_server(t_srv);
}

static int call_in_table(const char *a_call_id)
{
	struct shm_call c;
	uint32_t slot;

	return shm_call_find(t_shm, a_call_id, &slot, &c) == 0;
}

START_TEST(test_call_kill)
{
	struct run_result r;

	install_fake_worker(FAKE_REMOVE);
	run_cli(&r, "call", "kill", "test-node-w1-18e1c2d3a4c-4242", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "call test-node-w1-18e1c2d3a4c-4242 killed\n");
	ck_assert_str_eq(r.err, "");
	free_result(&r);
	ck_assert_uint_eq(t_fake->calls, 1);
	ck_assert_str_eq(t_fake->request, "kill test-node-w1-18e1c2d3a4c-4242");
	ck_assert_uint_eq(t_fake->worker, 1);               /* the call's owner */
	ck_assert(!call_in_table("a-2@10.0.0.2"));
	ck_assert(call_in_table("a-4@10.0.0.4"));           /* the others stay */

	run_cli(&r, "show", "calls", NULL);
	ck_assert_ptr_null(find_line(r.out, "test-node-w1-18e1c2d3a4c-4242 "));
	ck_assert_ptr_nonnull(strstr(r.out, "\n5 calls\n"));
	free_result(&r);

	/* Gone now: the worker is not even asked. */
	run_cli(&r, "call", "kill", "test-node-w1-18e1c2d3a4c-4242", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "b2bua-cli: no such call test-node-w1-18e1c2d3a4c-4242\n");
	free_result(&r);
	ck_assert_uint_eq(t_fake->calls, 1);

	/* The whole id reaches the worker; worker 0 owns this one. */
	run_cli(&r, "call", "kill", "test-node-w0-18e1c2d3a4b-18446744073709551557", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "call test-node-w0-18e1c2d3a4b-18446744073709551557 killed\n");
	free_result(&r);
	ck_assert_str_eq(t_fake->request, "kill test-node-w0-18e1c2d3a4b-18446744073709551557");
	ck_assert_uint_eq(t_fake->worker, 0);
	ck_assert(!call_in_table("a-1@10.0.0.1"));
}
END_TEST

/* `call kill <the FORWARDING call>` with a worker that answers `mode`: exit 1 and `want` on stderr. */
static void assert_kill_fails(int mode, const char *want)
{
	struct run_result r;

	t_fake->mode = mode;
	run_cli(&r, "call", "kill", "test-node-w1-18e1c2d3a4c-77", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, want);
	free_result(&r);
	ck_assert_str_eq(t_fake->request, "kill test-node-w1-18e1c2d3a4c-77");
	ck_assert(call_in_table("a-4@10.0.0.4"));
}

START_TEST(test_call_kill_failures)
{
	struct run_result r;
	uint64_t t0, took;

	install_fake_worker(FAKE_TIMEOUT);
	assert_kill_fails(FAKE_TIMEOUT, "b2bua-cli: worker 1 did not answer\n");
	assert_kill_fails(FAKE_ESRCH, "b2bua-cli: worker 1 is not running\n");
	assert_kill_fails(FAKE_ERROR, "b2bua-cli: call test-node-w1-18e1c2d3a4c-77: worker 1: call is being transferred\n");
	ck_assert_uint_eq(t_fake->calls, 3);

	/* "ok", yet the call stays: reported after about 2 s, not as killed. */
	t_fake->mode = FAKE_KEEP;
	t0 = now_ms(CLOCK_MONOTONIC);
	run_cli(&r, "call", "kill", "test-node-w1-18e1c2d3a4c-77", NULL);
	took = now_ms(CLOCK_MONOTONIC) - t0;
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strstr(r.err, "call test-node-w1-18e1c2d3a4c-77: worker 1 is ending it, but it is still up") != NULL,
		      "%s", r.err);
	ck_assert_msg(took >= 1900 && took < 5000, "answered after %" PRIu64 " ms", took);
	free_result(&r);
}
END_TEST

/* A master that installed no worker-request function: a clear error, nothing else. */
START_TEST(test_call_kill_unavailable)
{
	struct run_result r;
	char *answer;

	run_cli(&r, "call", "kill", "test-node-w1-18e1c2d3a4c-77", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strstr(r.err, "b2bua-cli: call kill is not available") == r.err, "%s",
		      r.err);
	free_result(&r);
	ck_assert(call_in_table("a-4@10.0.0.4"));

	assert_usage_error("call", "kill", NULL);
	assert_usage_error("call", "kill", "abc");
	assert_usage_error("call", "kill", "-5");
	assert_usage_error("call", "kill", "4242");          /* the old numeric form */
	assert_usage_error("call", "kill", "node-w1-1g-5");  /* EPOCH is hex */
	assert_usage_error("call", NULL, NULL);
	answer = raw_request(t_cfg.cli_socket, "call kill test-node-w1-18e1c2d3a4c-77x\n", 0);
	ck_assert_msg(strncmp(answer, "2 bad call ID 'test-node-w1-18e1c2d3a4c-77x'", 44) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "call kill\n", 0);
	ck_assert_msg(strncmp(answer, "2 'call kill' needs a call ID\n", 30) == 0, "%s", answer);
	free(answer);
}
END_TEST

/* ------------------------------------------------------------ usage errors */

static void assert_usage_error(const char *a1, const char *a2, const char *a3)
{
	struct run_result r;

	run_cli(&r, a1, a2, a3, NULL);
	ck_assert_msg(r.status == 2, "exit %d for '%s %s'", r.status, a1, a2 ? a2 : "");
	ck_assert_str_eq(r.out, "");
	ck_assert_ptr_nonnull(strstr(r.err, "usage: b2bua-cli"));
	ck_assert_ptr_nonnull(strstr(r.err, "show calls"));
	free_result(&r);
}

START_TEST(test_usage_errors)
{
	struct run_result r;
	char *answer;

	assert_usage_error("show", "nonsense", NULL);
	assert_usage_error("frobnicate", NULL, NULL);
	assert_usage_error("show", NULL, NULL);
	assert_usage_error("show", "calls", "extra");
	assert_usage_error("show", "calls", "--frob");
	assert_usage_error(NULL, NULL, NULL);

	run_cli(&r, "help", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "usage: b2bua-cli"));
	free_result(&r);

	/* The server validates too (a request from socat or an older client). */
	answer = raw_request(t_cfg.cli_socket, "show frobs\n", 0);
	ck_assert_msg(strncmp(answer, "2 unknown command 'show frobs'\n", 31) == 0, "%s", answer);
	ck_assert_ptr_nonnull(strstr(answer, "usage: b2bua-cli"));
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "help\n", 0);
	ck_assert_msg(strncmp(answer, "0 ok\nusage:", 11) == 0, "%s", answer);
	free(answer);
	/* No newline, but a half-close ends the request as well. */
	answer = raw_request(t_cfg.cli_socket, "show stats --json", 1);
	ck_assert_msg(strncmp(answer, "0 ok\n{", 6) == 0, "%s", answer);
	free(answer);
}
END_TEST

/* ------------------------------------------------------------ not running */

static void assert_not_running(struct run_result *r, const char *path)
{
	char expect[512];

	snprintf(expect, sizeof expect,
		 "b2bua-cli: b2bua is not running (no daemon listening on %s)\n", path);
	ck_assert_int_eq(r->status, 1);
	ck_assert_str_eq(r->out, "");
	ck_assert_str_eq(r->err, expect);
}

START_TEST(test_not_running)
{
	struct run_result r;
	char none[256], stale[256];
	const char *args[] = { "-s", none, "show", "calls", NULL };
	const char *env_args[] = { "show", "stats", NULL };

	snprintf(none, sizeof none, "%s/none.sock", t_dir);
	run_cli_as(&r, NULL, (uid_t)-1, args);
	assert_not_running(&r, none);
	free_result(&r);

	/* A socket file with no daemon behind it (ECONNREFUSED) reads the same. */
	snprintf(stale, sizeof stale, "%s/stale.sock", t_dir);
	make_stale_socket(stale);
	args[1] = stale;
	run_cli_as(&r, NULL, (uid_t)-1, args);
	assert_not_running(&r, stale);
	free_result(&r);

	/* Without -s the socket comes from B2BUA_SOCKET. */
	run_cli_as(&r, none, (uid_t)-1, env_args);
	assert_not_running(&r, none);
	free_result(&r);
	run_cli_as(&r, t_cfg.cli_socket, (uid_t)-1, env_args);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "calls total:"));
	free_result(&r);
}
END_TEST

/* ------------------------------------------------------------ the socket */

START_TEST(test_socket_mode)
{
	struct stat st;

	ck_assert_int_eq(lstat(t_cfg.cli_socket, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(t_rundir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
}
END_TEST

START_TEST(test_second_open_in_use)
{
	struct run_result r;
	cli_server_t *second = NULL;
	struct stat before, after;

	ck_assert_int_eq(lstat(t_cfg.cli_socket, &before), 0);
	ck_assert_int_eq(cli_server_open(&t_cfg, t_shm, &second), -EADDRINUSE);
	ck_assert_ptr_null(second);
	/* The live daemon's socket is untouched and still answers. */
	ck_assert_int_eq(lstat(t_cfg.cli_socket, &after), 0);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	run_cli(&r, "show", "stats", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
}
END_TEST

START_TEST(test_stale_replaced)
{
	struct config cfg = t_cfg;
	cli_server_t *srv = NULL;
	struct run_result r;
	struct stat st;
	pid_t pid;
	const char *args[] = { "-s", cfg.cli_socket, "show", "workers", NULL };
	int fd;

	snprintf(cfg.cli_socket, sizeof cfg.cli_socket, "%s/stale.sock", t_dir);
	make_stale_socket(cfg.cli_socket);
	ck_assert_int_eq(try_connect(cfg.cli_socket), -ECONNREFUSED);
	ck_assert_int_eq(cli_server_open(&cfg, t_shm, &srv), 0);
	ck_assert_int_eq(lstat(cfg.cli_socket, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(try_connect(cfg.cli_socket), 0);     /* a listener now */

	pid = start_server(srv);
	run_cli_as(&r, NULL, (uid_t)-1, args);
	stop_server(&pid);
	cli_server_close(srv);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "2222"));
	free_result(&r);
	ck_assert_int_ne(lstat(cfg.cli_socket, &st), 0);    /* close removed it */

	/* Something that is not a socket is not ours to delete. */
	snprintf(cfg.cli_socket, sizeof cfg.cli_socket, "%s/plain-file", t_dir);
	fd = open(cfg.cli_socket, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(cli_server_open(&cfg, t_shm, &srv), -EEXIST);
	ck_assert_int_eq(lstat(cfg.cli_socket, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
}
END_TEST

/* A client that connects and says nothing is dropped after 1 s; others are served after. */
START_TEST(test_idle_client_dropped)
{
	uint64_t t0 = now_ms(CLOCK_MONOTONIC), waited;
	struct run_result r;
	char *answer;

	answer = raw_request(t_cfg.cli_socket, "", 0);
	waited = now_ms(CLOCK_MONOTONIC) - t0;
	ck_assert_msg(waited >= 900 && waited < 3000, "dropped after %" PRIu64 " ms", waited);
	ck_assert_msg(strncmp(answer, "1 ", 2) == 0, "%s", answer);
	free(answer);

	run_cli(&r, "show", "stats", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
}
END_TEST

/*
 * Copy the b2bua-cli under test to <dir>/cli/b2bua-cli in a fresh 0755
 * directory under /tmp, where uid `nobody` can run it even when the build
 * tree sits in a directory only root may enter (a clone under mktemp -d, or
 * in /root).  NULL when done (the directory is in `dir`), else the reason.
 */
static const char *peer_copy_cli(char *dir, size_t size)
{
	char dst[PATH_MAX];
	char buf[65536];
	struct statvfs vfs;
	ssize_t n = 0;
	int in, out;

	snprintf(dir, size, "/tmp/check-cli-peer-XXXXXX");
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) < 0)
		return "cannot make a directory under /tmp";
	if (statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC))
		return "/tmp is mounted noexec";
	snprintf(dst, sizeof dst, "%s/cli", dir);
	if (mkdir(dst, 0755) < 0 || chmod(dst, 0755) < 0)
		return "cannot make the cli directory";
	snprintf(dst, sizeof dst, "%s/cli/b2bua-cli", dir);
	in = open(cli_path(), O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			n = -1;
	if (in >= 0)
		close(in);
	if (out < 0 || close(out) < 0 || in < 0 || n < 0 || chmod(dst, 0755) < 0)
		return "cannot copy b2bua-cli";
	return NULL;
}

static void peer_remove_copy(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/cli/b2bua-cli", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/cli", dir);
	rmdir(path);
	rmdir(dir);
}

/* SO_PEERCRED: even with the file mode opened up, another user is refused. */
START_TEST(test_peer_refused)
{
	const char *args[] = { "-s", t_cfg.cli_socket, "show", "calls", NULL };
	const char *old_top = getenv("top_builddir");
	char *saved_top = old_top ? strdup(old_top) : NULL;
	char copy_dir[64];
	const char *why;
	struct run_result r;

	if (geteuid() != 0) {
		fprintf(stderr, "check_cli: test_peer_refused needs root, not run\n");
		return;
	}
	why = peer_copy_cli(copy_dir, sizeof copy_dir);
	if (why) {
		fprintf(stderr, "check_cli: test_peer_refused: %s, not run\n", why);
		peer_remove_copy(copy_dir);
		free(saved_top);
		return;
	}
	ck_assert_int_eq(chmod(t_dir, 0755), 0);
	ck_assert_int_eq(chmod(t_rundir, 0755), 0);
	ck_assert_int_eq(chmod(t_cfg.cli_socket, 0666), 0);
	/* cli_path() is $top_builddir/cli/b2bua-cli: point it at the copy. */
	setenv("top_builddir", copy_dir, 1);
	run_cli_as(&r, NULL, NOBODY_UID, args);
	if (saved_top)
		setenv("top_builddir", saved_top, 1);
	else
		unsetenv("top_builddir");
	free(saved_top);
	peer_remove_copy(copy_dir);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strstr(r.err, "b2bua-cli: permission denied: uid 65534") == r.err,
		      "%s", r.err);
	ck_assert_ptr_null(strstr(r.out, "sip:alice"));
	free_result(&r);
}
END_TEST

/* ------------------------------------------------------------ users: fixture */

static const char *redis_sock(void)
{
	return t_cfg.redis_address + strlen("unix:");
}

/* The redis-server child: no TCP, no persistence, gone with its parent. */
static void exec_redis(const char *log_path)
{
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", redis_sock(),
	       "--save", "", "--appendonly", "no", "--dir", t_dir, (char *)NULL);
	_exit(127);
}

/* Connected to our redis-server and it answers PING: the context, else NULL. */
static redisContext *redis_try_connect(void)
{
	struct timeval tv = { .tv_sec = 1 };
	redisContext *c = redisConnectUnixWithTimeout(redis_sock(), tv);
	redisReply *r;

	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	r = redisCommand(c, "PING");
	if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) {
		freeReplyObject(r);
		return c;
	}
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return NULL;
}

static void start_redis(void)
{
	uint64_t deadline = now_ms(CLOCK_MONOTONIC) + REDIS_START_MS;
	char log_path[256];
	int wstatus;

	snprintf(log_path, sizeof log_path, "%s/redis.log", t_dir);
	t_redis_pid = fork();
	if (t_redis_pid == 0)
		exec_redis(log_path);
	ck_assert_int_gt(t_redis_pid, 0);
	while ((t_redis = redis_try_connect()) == NULL) {
		if (waitpid(t_redis_pid, &wstatus, WNOHANG) == t_redis_pid) {
			t_redis_pid = 0;
			ck_abort_msg("redis-server exited (status %d; is the Debian package "
				     "redis-server installed?), see %s", wstatus, log_path);
		}
		ck_assert_msg(now_ms(CLOCK_MONOTONIC) < deadline,
			      "redis-server did not answer on %s within %d ms", redis_sock(),
			      REDIS_START_MS);
		usleep(20000);
	}
}

static void stop_redis(void)
{
	if (t_redis)
		redisFree(t_redis);
	t_redis = NULL;
	if (t_redis_pid <= 0)
		return;
	kill(t_redis_pid, SIGKILL);
	waitpid(t_redis_pid, NULL, 0);
	t_redis_pid = 0;
}

static void setup_users(void)
{
	setup();
	start_redis();
}

static void teardown_users(void)
{
	stop_redis();
	teardown();
}

/* ------------------------------------------------------------ users: helpers */

/* A command on the test's own connection; the reply is never an error. */
static redisReply *rcmd(const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(t_redis, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "redis: %s", t_redis->errstr);
	ck_assert_msg(r->type != REDIS_REPLY_ERROR, "redis: %s", r->str);
	return r;
}

static long long rint_cmd(const char *fmt, const char *arg)
{
	redisReply *r = rcmd(fmt, arg);
	long long v;

	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

/* HGET as a malloc'd string, or NULL when the field (or key) is absent. */
static char *rhget(const char *key, const char *field)
{
	redisReply *r = rcmd("HGET %s %s", key, field);
	char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;

	freeReplyObject(r);
	return v;
}

static void assert_field(const char *key, const char *field, const char *want)
{
	char *v = rhget(key, field);

	ck_assert_msg(v != NULL, "%s has no field %s", key, field);
	ck_assert_msg(strcmp(v, want) == 0, "%s %s: '%s', expected '%s'", key, field, v, want);
	free(v);
}

/* The user's stored HA1s are those of `password` in the test realm. */
static void assert_ha1s(const char *user, const char *password)
{
	char key[128], md5[DIGEST_HA1_SIZE], sha[DIGEST_HA1_SIZE];

	snprintf(key, sizeof key, T_PREFIX "user:%s", user);
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, user, T_REALM, password, md5), 0);
	ck_assert_int_eq(digest_ha1(DIGEST_SHA256, user, T_REALM, password, sha), 0);
	ck_assert_uint_eq(strlen(md5), 32);
	ck_assert_uint_eq(strlen(sha), 64);
	assert_field(key, "ha1_md5", md5);
	assert_field(key, "ha1_sha256", sha);
}

/* `user add NAME --password PW` must work. */
static void add_user(const char *name, const char *password)
{
	struct run_result r;
	char want[128];

	run_cli(&r, "user", "add", name, "--password", password, NULL);
	ck_assert_msg(r.status == 0, "user add %s: exit %d: %s", name, r.status, r.err);
	snprintf(want, sizeof want, "user %s added\n", name);
	ck_assert_str_eq(r.out, want);
	free_result(&r);
}

/* Plant a registration the way the registrar stores it. */
static void put_binding(const char *user, const char *contact, int64_t expires_ms,
			int64_t registered_ms, const char *ua, int worker)
{
	char key[128], json[512];
	redisReply *r;

	snprintf(key, sizeof key, T_PREFIX "loc:%s", user);
	snprintf(json, sizeof json, "{\"expires\":%" PRId64 ",\"cseq\":3,\"call_id\":\"reg-%d@x\","
		 "\"source\":\"10.0.0.1:5062\",\"transport\":\"udp\",\"user_agent\":\"%s\","
		 "\"host\":\"node-a\",\"worker\":%d,\"registered\":%" PRId64 "}",
		 expires_ms, worker, ua, worker, registered_ms);
	r = rcmd("HSET %s %s %s", key, contact, json);
	freeReplyObject(r);
}

/* "user NAME added; password: " then CLI_RANDOM_PASSWORD_LEN letters and digits. */
static void made_up_password(const char *out, const char *confirmation, char *pw, size_t size)
{
	size_t n = strlen(confirmation);
	const char *p = out + n;

	ck_assert_msg(strncmp(out, confirmation, n) == 0, "'%s' does not start with '%s'",
		      out, confirmation);
	ck_assert_msg(strncmp(p, "; password: ", 12) == 0, "no password in '%s'", out);
	p += 12;
	ck_assert_uint_lt(CLI_RANDOM_PASSWORD_LEN, size);
	for (size_t i = 0; i < CLI_RANDOM_PASSWORD_LEN; i++)
		ck_assert_msg(isalnum((unsigned char)p[i]), "not alphanumeric: '%s'", p);
	ck_assert_str_eq(p + CLI_RANDOM_PASSWORD_LEN, "\n");
	memcpy(pw, p, CLI_RANDOM_PASSWORD_LEN);
	pw[CLI_RANDOM_PASSWORD_LEN] = '\0';
}

/* ------------------------------------------------------------ users: tests */

START_TEST(test_user_add)
{
	const char *pw = "pass word #1";
	uint64_t before = now_ms(CLOCK_REALTIME), after, created;
	struct run_result r;
	redisReply *all;
	char *v;

	run_cli(&r, "user", "add", "alice", "--password", pw, "--display", "Alice Liddell",
		"--max-calls", "2", NULL);
	after = now_ms(CLOCK_REALTIME);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user alice added\n");
	ck_assert_str_eq(r.err, "");
	free_result(&r);

	/* Exactly the registrar's fields, and nothing that holds the password. */
	assert_ha1s("alice", pw);
	assert_field(T_PREFIX "user:alice", "display", "Alice Liddell");
	assert_field(T_PREFIX "user:alice", "enabled", "1");
	assert_field(T_PREFIX "user:alice", "max_calls", "2");
	v = rhget(T_PREFIX "user:alice", "created_ms");
	ck_assert_ptr_nonnull(v);
	created = strtoull(v, NULL, 10);
	ck_assert_msg(created >= before && created <= after, "created_ms %s", v);
	free(v);
	all = rcmd("HGETALL " T_PREFIX "user:alice");
	ck_assert_uint_eq(all->elements, 12);
	for (size_t i = 0; i < all->elements; i++) {
		ck_assert_ptr_null(strstr(all->element[i]->str, "pass"));
		ck_assert_ptr_null(strstr(all->element[i]->str, "word"));
	}
	freeReplyObject(all);
	all = rcmd("KEYS *");
	ck_assert_uint_eq(all->elements, 1);
	ck_assert_str_eq(all->element[0]->str, T_PREFIX "user:alice");
	freeReplyObject(all);

	/* A second add of the name is refused and changes nothing. */
	run_cli(&r, "user", "add", "alice", "--password", "other", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "b2bua-cli: user alice exists\n");
	free_result(&r);
	assert_ha1s("alice", pw);
	assert_field(T_PREFIX "user:alice", "display", "Alice Liddell");

	/* Without --display and --max-calls: empty and 0 (no limit). */
	add_user("bob", "x");
	assert_field(T_PREFIX "user:bob", "display", "");
	assert_field(T_PREFIX "user:bob", "max_calls", "0");
}
END_TEST

/* Values that look like options or hold '%' and spaces arrive intact. */
START_TEST(test_user_add_odd_values)
{
	struct run_result r;

	add_user("o1", "--json");
	assert_ha1s("o1", "--json");
	add_user("o2", " 100% sure ");
	assert_ha1s("o2", " 100% sure ");
	add_user("o.3_+-", "-s");
	assert_ha1s("o.3_+-", "-s");
	run_cli(&r, "user", "add", "o4", "--display", "Ünïcödé --json %41", "--password", "p",
		NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
	assert_field(T_PREFIX "user:o4", "display", "Ünïcödé --json %41");
	assert_ha1s("o4", "p");
}
END_TEST

START_TEST(test_user_random_password)
{
	char pw1[32], pw2[32], pw3[32];
	struct run_result r;

	run_cli(&r, "user", "add", "bob", NULL);
	ck_assert_int_eq(r.status, 0);
	made_up_password(r.out, "user bob added", pw1, sizeof pw1);
	free_result(&r);
	assert_ha1s("bob", pw1);

	run_cli(&r, "user", "add", "carol", NULL);
	ck_assert_int_eq(r.status, 0);
	made_up_password(r.out, "user carol added", pw2, sizeof pw2);
	free_result(&r);
	ck_assert_str_ne(pw1, pw2);
	assert_ha1s("carol", pw2);

	/* passwd without a password makes one up too. */
	run_cli(&r, "user", "passwd", "bob", NULL);
	ck_assert_int_eq(r.status, 0);
	made_up_password(r.out, "user bob password changed", pw3, sizeof pw3);
	free_result(&r);
	ck_assert_str_ne(pw1, pw3);
	assert_ha1s("bob", pw3);

	/* A refused add prints no password. */
	run_cli(&r, "user", "add", "bob", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_ptr_null(strstr(r.err, "password"));
	free_result(&r);
	assert_ha1s("bob", pw3);
}
END_TEST

START_TEST(test_user_password_stdin)
{
	const char *add[] = { "-s", t_cfg.cli_socket, "user", "add", "dave",
			      "--password-stdin", NULL };
	const char *passwd[] = { "-s", t_cfg.cli_socket, "user", "passwd", "dave",
				 "--password-stdin", NULL };
	struct run_result r;

	run_cli_full(&r, NULL, (uid_t)-1, "my secret pw\nsecond line\n", add);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user dave added\n");
	free_result(&r);
	assert_ha1s("dave", "my secret pw");

	/* CRLF and no final newline are both fine. */
	run_cli_full(&r, NULL, (uid_t)-1, "with crlf\r\n", passwd);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user dave password changed\n");
	free_result(&r);
	assert_ha1s("dave", "with crlf");
	run_cli_full(&r, NULL, (uid_t)-1, "no newline", passwd);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
	assert_ha1s("dave", "no newline");

	/* Nothing, or an empty line: a usage error, and nothing changes. */
	run_cli_full(&r, NULL, (uid_t)-1, "", passwd);
	ck_assert_int_eq(r.status, 2);
	free_result(&r);
	run_cli_full(&r, NULL, (uid_t)-1, "\nlater\n", passwd);
	ck_assert_int_eq(r.status, 2);
	free_result(&r);
	assert_ha1s("dave", "no newline");
}
END_TEST

START_TEST(test_user_passwd)
{
	struct run_result r;
	char *created;

	add_user("alice", "old one");
	created = rhget(T_PREFIX "user:alice", "created_ms");
	rint_cmd("HSET " T_PREFIX "user:alice display %s", "Al");

	run_cli(&r, "user", "passwd", "alice", "--password", "new one", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user alice password changed\n");
	free_result(&r);
	assert_ha1s("alice", "new one");
	assert_field(T_PREFIX "user:alice", "display", "Al");
	assert_field(T_PREFIX "user:alice", "created_ms", created);
	assert_field(T_PREFIX "user:alice", "enabled", "1");
	free(created);

	/* An unknown user is an error, and no half user appears. */
	run_cli(&r, "user", "passwd", "nobody", "--password", "x", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "b2bua-cli: no such user nobody\n");
	free_result(&r);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "user:nobody"), 0);
}
END_TEST

START_TEST(test_user_enable_disable)
{
	struct run_result r;
	json_t *o;

	add_user("alice", "pw");
	run_cli(&r, "user", "disable", "alice", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user alice disabled\n");
	free_result(&r);
	assert_field(T_PREFIX "user:alice", "enabled", "0");
	assert_ha1s("alice", "pw");

	run_cli(&r, "user", "show", "alice", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert(json_is_false(json_object_get(o, "enabled")));
	json_decref(o);
	free_result(&r);
	run_cli(&r, "user", "show", "alice", NULL);
	ck_assert_ptr_nonnull(strstr(r.out, "enabled:        no\n"));
	free_result(&r);

	run_cli(&r, "user", "enable", "alice", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user alice enabled\n");
	free_result(&r);
	assert_field(T_PREFIX "user:alice", "enabled", "1");

	run_cli(&r, "user", "disable", "ghost", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "b2bua-cli: no such user ghost\n");
	free_result(&r);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "user:ghost"), 0);
}
END_TEST

/* `user set`: only the fields given change; the password and the rest stay. */
START_TEST(test_user_set)
{
	struct run_result r;
	json_t *o;

	add_user("alice", "pw");
	run_cli(&r, "user", "set", "alice", "--max-calls", "3", "--display", "Alice A.", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_str_eq(r.out, "user alice changed\n");
	free_result(&r);
	assert_field(T_PREFIX "user:alice", "max_calls", "3");
	assert_field(T_PREFIX "user:alice", "display", "Alice A.");
	assert_field(T_PREFIX "user:alice", "enabled", "1");
	assert_ha1s("alice", "pw");

	/* One field alone: the other keeps its value. */
	run_cli(&r, "user", "set", "alice", "--max-calls", "0", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
	run_cli(&r, "user", "show", "alice", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "max_calls")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(o, "display")), "Alice A.");
	json_decref(o);
	free_result(&r);

	run_cli(&r, "user", "set", "ghost", "--max-calls", "1", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "b2bua-cli: no such user ghost\n");
	free_result(&r);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "user:ghost"), 0);

	assert_usage_error("user", "set", "alice");            /* nothing to change */
	assert_usage_error("user", "set", NULL);
}
END_TEST

START_TEST(test_user_show)
{
	int64_t now = (int64_t)now_ms(CLOCK_REALTIME);
	struct run_result r;
	json_t *o, *regs, *b;
	json_int_t in_s;

	run_cli(&r, "user", "add", "alice", "--password", "pw", "--display", "Alice L",
		"--max-calls", "3", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
	put_binding("alice", "sip:alice@10.0.0.1:5062", now + 60000, now - 5000, "Phone/1.0", 1);
	put_binding("alice", "sip:alice@10.0.0.9:5999", now - 1000, now - 90000, "Old/0.1", 0);

	run_cli(&r, "user", "show", "alice", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "user:           alice\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "display:        Alice L\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "enabled:        yes\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "max calls:      3\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "registrations:  1\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "  sip:alice@10.0.0.1:5062\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "source 10.0.0.1:5062/udp"));
	ck_assert_msg(strstr(r.out, "expires in 59 s") || strstr(r.out, "expires in 58 s"),
		      "%s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "user agent \"Phone/1.0\""));
	ck_assert_ptr_nonnull(strstr(r.out, "host node-a worker 1"));
	/* The expired registration is not shown. */
	ck_assert_ptr_null(strstr(r.out, "10.0.0.9"));
	ck_assert_ptr_null(strstr(r.out, "Old/0.1"));
	ck_assert_ptr_null(strstr(r.out, "ha1"));
	free_result(&r);

	run_cli(&r, "user", "show", "alice", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert_str_eq(str_field(o, "user"), "alice");
	ck_assert_str_eq(str_field(o, "display"), "Alice L");
	ck_assert(json_is_true(json_object_get(o, "enabled")));
	ck_assert_int_eq(int_field(o, "max_calls"), 3);
	ck_assert_ptr_null(json_object_get(o, "ha1_md5"));
	regs = json_object_get(o, "registrations");
	ck_assert(json_is_array(regs));
	ck_assert_uint_eq(json_array_size(regs), 1);
	b = json_array_get(regs, 0);
	ck_assert_str_eq(str_field(b, "contact"), "sip:alice@10.0.0.1:5062");
	ck_assert_str_eq(str_field(b, "source"), "10.0.0.1:5062");
	ck_assert_str_eq(str_field(b, "transport"), "udp");
	ck_assert_str_eq(str_field(b, "user_agent"), "Phone/1.0");
	ck_assert_str_eq(str_field(b, "host"), "node-a");
	ck_assert_str_eq(str_field(b, "call_id"), "reg-1@x");
	ck_assert_int_eq(int_field(b, "worker"), 1);
	ck_assert_int_eq(int_field(b, "cseq"), 3);
	ck_assert_int_eq(int_field(b, "expires_ms"), now + 60000);
	ck_assert_int_eq(int_field(b, "registered_ms"), now - 5000);
	in_s = int_field(b, "expires_in_s");
	ck_assert_msg(in_s >= 55 && in_s <= 60, "expires_in_s %lld", (long long)in_s);
	json_decref(o);
	free_result(&r);

	run_cli(&r, "user", "show", "ghost", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "b2bua-cli: no such user ghost\n");
	free_result(&r);
}
END_TEST

START_TEST(test_user_list)
{
	int64_t now = (int64_t)now_ms(CLOCK_REALTIME);
	struct run_result r;
	json_t *arr, *a, *b;
	char *line;

	run_cli(&r, "user", "add", "alice", "--password", "pw", "--display", "Alice L",
		"--max-calls", "3", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
	add_user("bob", "pw");
	run_cli(&r, "user", "disable", "bob", NULL);
	free_result(&r);
	put_binding("alice", "sip:alice@10.0.0.1", now + 60000, now, "A", 0);
	put_binding("alice", "sip:alice@10.0.0.2", now + 60000, now, "B", 1);
	put_binding("alice", "sip:alice@10.0.0.3", now - 1, now - 9000, "C", 1);
	put_binding("bob", "sip:bob@10.0.0.4", now - 1, now - 9000, "D", 1);
	/* Not users of this deployment: another prefix, a key of another shape. */
	freeReplyObject(rcmd("HSET other:user:zed enabled 1"));
	freeReplyObject(rcmd("HSET " T_PREFIX "user:x:y enabled 1"));

	run_cli(&r, "user", "list", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "USER"));
	line = find_line(r.out, "alice ");
	ck_assert_ptr_nonnull(line);
	ck_assert_msg(strncmp(line, "alice                yes      3          2              "
			      "Alice L\n", 64) == 0, "%s", line);
	line = find_line(r.out, "bob ");
	ck_assert_ptr_nonnull(line);
	ck_assert_msg(strncmp(line, "bob                  no       unlimited  0              "
			      "-\n", 58) == 0, "%s", line);
	ck_assert_ptr_nonnull(strstr(r.out, "\n2 users\n"));
	ck_assert_ptr_null(strstr(r.out, "zed"));
	free_result(&r);

	run_cli(&r, "user", "list", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), 2);
	a = json_array_get(arr, 0);
	b = json_array_get(arr, 1);
	ck_assert_str_eq(str_field(a, "user"), "alice");
	ck_assert_str_eq(str_field(a, "display"), "Alice L");
	ck_assert(json_is_true(json_object_get(a, "enabled")));
	ck_assert_int_eq(int_field(a, "max_calls"), 3);
	ck_assert_int_eq(int_field(a, "registrations"), 2);
	ck_assert_str_eq(str_field(b, "user"), "bob");
	ck_assert(json_is_null(json_object_get(b, "display")));
	ck_assert(json_is_false(json_object_get(b, "enabled")));
	ck_assert_int_eq(int_field(b, "registrations"), 0);
	json_decref(arr);
	free_result(&r);
}
END_TEST

/* More users than one SCAN step and one pipelined batch: all listed, once, sorted. */
START_TEST(test_user_list_many)
{
	const unsigned n = 2500;
	struct run_result r;
	json_t *arr;
	char prev[64] = "";

	for (unsigned i = 0; i < n; i++)
		redisAppendCommand(t_redis, "HSET " T_PREFIX "user:u%u enabled 1 max_calls 0 "
				   "display U%u", i, i);
	for (unsigned i = 0; i < n; i++) {
		void *reply = NULL;

		ck_assert_int_eq(redisGetReply(t_redis, &reply), REDIS_OK);
		freeReplyObject(reply);
	}
	run_cli(&r, "user", "list", "--json", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), n);
	for (size_t i = 0; i < n; i++) {
		const char *name = str_field(json_array_get(arr, i), "user");

		ck_assert_msg(strcmp(prev, name) < 0, "%s after %s", name, prev);
		snprintf(prev, sizeof prev, "%s", name);
	}
	json_decref(arr);
	free_result(&r);
}
END_TEST

START_TEST(test_user_del)
{
	int64_t now = (int64_t)now_ms(CLOCK_REALTIME);
	struct run_result r;

	add_user("alice", "pw");
	add_user("bob", "pw");
	put_binding("alice", "sip:alice@10.0.0.1", now + 60000, now, "A", 0);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "loc:alice"), 1);

	run_cli(&r, "user", "del", "alice", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user alice deleted\n");
	free_result(&r);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "user:alice"), 0);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "loc:alice"), 0);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "user:bob"), 1);

	run_cli(&r, "user", "del", "alice", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "b2bua-cli: no such user alice\n");
	free_result(&r);

	/* The name is free again, and the new alice has no registrations. */
	put_binding("alice", "sip:alice@10.0.0.7", now + 60000, now, "Stale", 0);
	add_user("alice", "again");
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "loc:alice"), 0);
	assert_ha1s("alice", "again");
}
END_TEST

static void assert_user_usage(const char *what, const char *const *args)
{
	const char *argv[16] = { "-s", t_cfg.cli_socket };
	struct run_result r;
	size_t n = 2;

	for (size_t i = 0; args[i]; i++) {
		ck_assert_uint_lt(n + 1, sizeof argv / sizeof argv[0]);
		argv[n++] = args[i];
	}
	run_cli_as(&r, NULL, (uid_t)-1, argv);
	ck_assert_msg(r.status == 2, "%s: exit %d, %s", what, r.status, r.err);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strstr(r.err, "usage: b2bua-cli") != NULL, "%s: %s", what, r.err);
	ck_assert_ptr_nonnull(strstr(r.err, "user add NAME"));
	free_result(&r);
}

START_TEST(test_user_usage_errors)
{
	const char *cases[][8] = {
		{ "user", "add", "bad name", "--password", "x", NULL },
		{ "user", "add", "bad/name", "--password", "x", NULL },
		{ "user", "add",        /* 65 characters */
		  "a2345678901234567890123456789012345678901234567890123456789012345",
		  "--password", "x", NULL },
		{ "user", "add", NULL },
		{ "user", "add", "alice", "--max-calls", "x", NULL },
		{ "user", "add", "alice", "--max-calls", "1000001", NULL },
		{ "user", "add", "alice", "--max-calls", "-1", NULL },
		{ "user", "add", "alice", "--password", NULL },
		{ "user", "add", "alice", "--password", "", NULL },
		{ "user", "add", "alice", "--password", "tab\there", NULL },
		{ "user", "add", "alice", "--password", "x", "--display", "new\nline", NULL },
		{ "user", "add", "alice", "--password", "a", "--password-stdin", NULL },
		{ "user", "add", "alice", "--password", "a", "--password", "b", NULL },
		{ "user", "add", "alice", "bob", NULL },
		{ "user", "add", "-alice", NULL },
		{ "user", "show", "alice", "--password", "x", NULL },
		{ "user", "passwd", "alice", "--display", "x", NULL },
		{ "user", "del", NULL },
		{ "user", "list", "alice", NULL },
		{ "user", "frob", "alice", NULL },
		{ "user", NULL },
	};
	char *answer;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char what[128];

		snprintf(what, sizeof what, "case %zu (%s %s)", i, cases[i][0],
			 cases[i][1] ? cases[i][1] : "");
		assert_user_usage(what, cases[i]);
	}
	/* Nothing reached Redis. */
	ck_assert_int_eq(rint_cmd("DBSIZE%s", ""), 0);

	/* The server checks as well (socat, an older client). */
	answer = raw_request(t_cfg.cli_socket, "user add bad*name --password x\n", 0);
	ck_assert_msg(strncmp(answer, "2 bad user name 'bad*name'", 26) == 0, "%s", answer);
	ck_assert_ptr_nonnull(strstr(answer, "usage: b2bua-cli"));
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user add alice\n", 0);
	ck_assert_msg(strncmp(answer, "2 'user add' needs --password\n", 30) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user add alice --password\n", 0);
	ck_assert_msg(strncmp(answer, "2 option --password needs a value\n", 34) == 0, "%s",
		      answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user add alice --password a%2\n", 0);
	ck_assert_msg(strncmp(answer, "2 bad %-encoding", 16) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user add alice --password a%00b\n", 0);
	ck_assert_msg(strncmp(answer, "2 bad %-encoding", 16) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user add alice --password a%0Ab\n", 0);
	ck_assert_msg(strncmp(answer, "2 the password must be", 22) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user show alice --frob\n", 0);
	ck_assert_msg(strncmp(answer, "2 unknown option '--frob'\n", 26) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user add %0Aevil --password x\n", 0);
	ck_assert_msg(strncmp(answer, "2 bad user name '?evil'", 23) == 0, "%s", answer);
	free(answer);
	ck_assert_int_eq(rint_cmd("DBSIZE%s", ""), 0);

	/* The encoding as the protocol describes it, by hand. */
	answer = raw_request(t_cfg.cli_socket, "user add enc --password a%20b%25c%2d\n", 0);
	ck_assert_str_eq(answer, "0 ok\nuser enc added\n");
	free(answer);
	assert_ha1s("enc", "a b%c-");
}
END_TEST

/* ------------------------------------------------------------ user forward */

static void assert_no_field(const char *key, const char *field)
{
	char *v = rhget(key, field);

	ck_assert_msg(v == NULL, "%s %s: '%s', expected none", key, field, v ? v : "");
}

START_TEST(test_user_forward)
{
	const char *key = T_PREFIX "user:alice";
	struct run_result r;
	json_t *o;

	add_user("alice", "pw");
	run_cli(&r, "user", "forward", "alice", "--always", "bob", "--busy",
		"sip:voicemail@example.com", "--no-answer", "sip:carol@10.0.0.3:5060;transport=udp",
		"--timeout", "30", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	ck_assert_str_eq(r.out, "user alice forwarding set\n");
	ck_assert_str_eq(r.err, "");
	free_result(&r);
	assert_field(key, "fwd_always", "bob");
	assert_field(key, "fwd_busy", "sip:voicemail@example.com");
	assert_field(key, "fwd_noanswer", "sip:carol@10.0.0.3:5060;transport=udp");
	assert_field(key, "fwd_noanswer_timeout", "30");
	assert_ha1s("alice", "pw");                          /* the rest untouched */
	assert_field(key, "enabled", "1");

	run_cli(&r, "user", "show", "alice", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd always:     bob\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd busy:       sip:voicemail@example.com\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd no answer:  sip:carol@10.0.0.3:5060;"
				     "transport=udp\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd timeout:    30 s\n"));
	free_result(&r);

	run_cli(&r, "user", "show", "alice", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	o = parse_json(r.out);
	ck_assert_str_eq(str_field(o, "fwd_always"), "bob");
	ck_assert_str_eq(str_field(o, "fwd_busy"), "sip:voicemail@example.com");
	ck_assert_str_eq(str_field(o, "fwd_noanswer"), "sip:carol@10.0.0.3:5060;transport=udp");
	ck_assert_int_eq(int_field(o, "fwd_noanswer_timeout"), 30);
	json_decref(o);
	free_result(&r);

	/* One option changes one field; the others stay. */
	run_cli(&r, "user", "forward", "alice", "--busy", "carol", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
	assert_field(key, "fwd_busy", "carol");
	assert_field(key, "fwd_always", "bob");
	assert_field(key, "fwd_noanswer_timeout", "30");

	run_cli(&r, "user", "forward", "alice", "--clear", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "user alice forwarding cleared\n");
	free_result(&r);
	assert_no_field(key, "fwd_always");
	assert_no_field(key, "fwd_busy");
	assert_no_field(key, "fwd_noanswer");
	assert_no_field(key, "fwd_noanswer_timeout");
	assert_ha1s("alice", "pw");
	assert_field(key, "enabled", "1");

	run_cli(&r, "user", "show", "alice", NULL);
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd always:     -\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd busy:       -\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd no answer:  -\n"));
	ck_assert_ptr_nonnull(strstr(r.out, "\nfwd timeout:    20 s (default)\n"));
	free_result(&r);
	run_cli(&r, "user", "show", "alice", "--json", NULL);
	o = parse_json(r.out);
	ck_assert(json_is_null(json_object_get(o, "fwd_always")));
	ck_assert(json_is_null(json_object_get(o, "fwd_busy")));
	ck_assert(json_is_null(json_object_get(o, "fwd_noanswer")));
	ck_assert(json_is_null(json_object_get(o, "fwd_noanswer_timeout")));
	json_decref(o);
	free_result(&r);

	/* Clearing what is not set is fine too. */
	run_cli(&r, "user", "forward", "alice", "--clear", NULL);
	ck_assert_int_eq(r.status, 0);
	free_result(&r);
}
END_TEST

/* Only an existing user: no half user appears. */
START_TEST(test_user_forward_unknown)
{
	struct run_result r;

	run_cli(&r, "user", "forward", "ghost", "--busy", "bob", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "b2bua-cli: no such user ghost\n");
	free_result(&r);
	run_cli(&r, "user", "forward", "ghost", "--clear", NULL);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, "b2bua-cli: no such user ghost\n");
	free_result(&r);
	ck_assert_int_eq(rint_cmd("EXISTS %s", T_PREFIX "user:ghost"), 0);
	ck_assert_int_eq(rint_cmd("DBSIZE%s", ""), 0);
}
END_TEST

START_TEST(test_user_forward_usage)
{
	char long_uri[160];
	const char *cases[][10] = {
		{ "user", "forward", "alice", NULL },
		{ "user", "forward", "alice", "--always", "bad name", NULL },
		{ "user", "forward", "alice", "--always", "bad/name", NULL },
		{ "user", "forward", "alice", "--busy", "sip:", NULL },
		{ "user", "forward", "alice", "--busy", "sip:a b@example.com", NULL },
		{ "user", "forward", "alice", "--busy", "sip:<x@example.com>", NULL },
		{ "user", "forward", "alice", "--busy", "sip:bob@", NULL },
		{ "user", "forward", "alice", "--no-answer", "tel:+123", NULL },
		{ "user", "forward", "alice", "--no-answer", long_uri, NULL },
		{ "user", "forward", "alice", "--timeout", "0", NULL },
		{ "user", "forward", "alice", "--timeout", "601", NULL },
		{ "user", "forward", "alice", "--timeout", "abc", NULL },
		{ "user", "forward", "alice", "--timeout", "-1", NULL },
		{ "user", "forward", "alice", "--clear", "--busy", "bob", NULL },
		{ "user", "forward", "alice", "--busy", "bob", "--busy", "carol", NULL },
		{ "user", "forward", "--busy", "bob", NULL },
		{ "user", "add", "alice", "--always", "bob", NULL },
		{ "user", "show", "alice", "--clear", NULL },
	};
	char *answer;

	/* 128 bytes: one more than a forward target may have. */
	snprintf(long_uri, sizeof long_uri, "sip:%0118d@x.org", 0);
	ck_assert_uint_eq(strlen(long_uri), CLI_TARGET_MAX + 1);
	add_user("alice", "pw");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char what[160];

		snprintf(what, sizeof what, "case %zu (%s %s)", i, cases[i][3] ? cases[i][3] : "",
			 cases[i][3] && cases[i][4] ? cases[i][4] : "");
		assert_user_usage(what, cases[i]);
	}
	/* The longest target is fine. */
	long_uri[CLI_TARGET_MAX] = '\0';
	{
		struct run_result r;

		run_cli(&r, "user", "forward", "alice", "--no-answer", long_uri, NULL);
		ck_assert_msg(r.status == 0, "%s", r.err);
		free_result(&r);
		assert_field(T_PREFIX "user:alice", "fwd_noanswer", long_uri);
		freeReplyObject(rcmd("HDEL " T_PREFIX "user:alice fwd_noanswer"));
	}

	/* The server checks as well. */
	answer = raw_request(t_cfg.cli_socket, "user forward alice --timeout 0\n", 0);
	ck_assert_msg(strncmp(answer, "2 --timeout '0': a number of seconds", 36) == 0, "%s",
		      answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user forward alice --always sip:a%20b@x\n", 0);
	ck_assert_msg(strncmp(answer, "2 forward target 'sip:a b@x'", 28) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user forward alice\n", 0);
	ck_assert_msg(strncmp(answer, "2 'user forward' needs --always", 31) == 0, "%s", answer);
	free(answer);
	answer = raw_request(t_cfg.cli_socket, "user forward alice --clear --timeout 5\n", 0);
	ck_assert_msg(strncmp(answer, "2 --clear goes alone", 20) == 0, "%s", answer);
	free(answer);
	/* A valid field next to a bad one: nothing is written. */
	answer = raw_request(t_cfg.cli_socket, "user forward alice --busy bob --timeout 9999\n", 0);
	ck_assert_msg(strncmp(answer, "2 --timeout", 11) == 0, "%s", answer);
	free(answer);
	assert_no_field(T_PREFIX "user:alice", "fwd_busy");
	assert_no_field(T_PREFIX "user:alice", "fwd_noanswer_timeout");
	assert_no_field(T_PREFIX "user:alice", "fwd_always");
}
END_TEST

/* ------------------------------------------------------------ cdr tail */

/* The fields of a CDR entry, in the order the workers write them. */
static const char *const cdr_fields[] = {
	"id", "a_call_id", "b_call_id", "caller", "callee", "answered_by", "forwarded_to",
	"start_ms", "ring_ms", "answer_ms", "end_ms", "billable_ms", "disposition", "sip_code",
	"hangup_by", "host", "worker",
};
#define N_CDR_FIELDS (sizeof cdr_fields / sizeof cdr_fields[0])

/* XADD one CDR "n" to `stream` with stream id `sid` (or "*"); values derived from n. */
static void put_cdr(const char *stream, const char *sid, unsigned n, int answered)
{
	char v[N_CDR_FIELDS][64];
	const char *argv[3 + 2 * N_CDR_FIELDS] = { "XADD", stream, sid };
	uint64_t start = 1700000000000ULL + n * 60000ULL;
	redisReply *r;

	snprintf(v[0], 64, "test-node-%u", n);
	snprintf(v[1], 64, "a-%u@10.0.0.1", n);
	snprintf(v[2], 64, "b-%u@test-node", n);
	snprintf(v[3], 64, "sip:caller%u@example.com", n);
	snprintf(v[4], 64, "sip:callee%u@example.com", n);
	snprintf(v[5], 64, "%s", answered ? "sip:phone@10.0.0.9" : "");
	snprintf(v[6], 64, "%s", n == 2 ? "sip:fwd@example.com" : "");
	snprintf(v[7], 64, "%" PRIu64, start);
	snprintf(v[8], 64, "%" PRIu64, start + 1000);
	snprintf(v[9], 64, "%" PRIu64, answered ? start + 2000 : 0);
	snprintf(v[10], 64, "%" PRIu64, start + 2000 + 12345);
	snprintf(v[11], 64, "%u", answered ? 12345 : 0);
	snprintf(v[12], 64, "%s", answered ? "ANSWERED" : "BUSY");
	snprintf(v[13], 64, "%s", answered ? "200" : "486");
	snprintf(v[14], 64, "%s", answered ? "callee" : "system");
	snprintf(v[15], 64, "test-node");
	snprintf(v[16], 64, "%u", n % 2);
	for (size_t i = 0; i < N_CDR_FIELDS; i++) {
		argv[3 + 2 * i] = cdr_fields[i];
		argv[4 + 2 * i] = v[i];
	}
	r = redisCommandArgv(t_redis, 3 + 2 * N_CDR_FIELDS, argv, NULL);
	ck_assert_msg(r && r->type == REDIS_REPLY_STRING, "XADD failed");
	freeReplyObject(r);
}

/* `show hosts`'s body, pure: a host alive, one lost and closed, one lost
 * and not closed yet, one alive whose previous life's leftovers were closed. */
static void make_hosts(struct store_host h[4])
{
	memset(h, 0, 4 * sizeof *h);
	snprintf(h[0].node, sizeof h[0].node, "edge1");
	snprintf(h[0].sip, sizeof h[0].sip, "10.0.0.1:5060");
	h[0].epoch = 11;
	h[0].started_ms = 1700000000000ULL;
	h[0].beat_ms = 1700000099600ULL;
	h[0].lease_ms = 5000;
	h[0].calls = 3;
	h[1] = h[0];
	snprintf(h[1].node, sizeof h[1].node, "edge2");
	snprintf(h[1].sip, sizeof h[1].sip, "10.0.0.2:5060");
	h[1].epoch = h[1].closed_epoch = 12;
	h[1].beat_ms = 1700000090000ULL;
	h[1].calls = 0;
	snprintf(h[1].closed_by, sizeof h[1].closed_by, "edge1");
	h[1].closed_ms = 1700000095000ULL;
	h[1].closed_calls = 6;
	h[2] = h[1];
	snprintf(h[2].node, sizeof h[2].node, "edge3");
	h[2].epoch = 13;   /* lost again: an earlier loss was closed, this one not yet */
	h[2].calls = 2;
	h[3] = h[0];
	snprintf(h[3].node, sizeof h[3].node, "edge4");
	snprintf(h[3].prev_closed_by, sizeof h[3].prev_closed_by, "edge4");
	h[3].prev_closed_ms = 1700000001000ULL;
	h[3].prev_closed_calls = 2;
}

START_TEST(test_hosts_format)
{
	struct store_host h[4];
	struct cli_buf out = { 0 };
	const uint64_t now = 1700000100000ULL;
	json_t *arr, *o;
	char *l;

	make_hosts(h);
	ck_assert_int_eq(cli_hosts_answer(h, 4, now, 0, &out), 0);
	cli_buf_add(&out, "", 1);
	l = find_line(out.data, "NODE ");
	ck_assert_msg(l && strstr(l, " STATE ") && strstr(l, " LEASE_AGE_S ") &&
		      strstr(l, " CLOSED_BY "), "%s", out.data);
	l = find_line(out.data, "edge1 ");
	ck_assert_msg(l != NULL, "%s", out.data);
	*strchr(l, '\n') = '\0';
	ck_assert_msg(strstr(l, " 10.0.0.1:5060 ") && strstr(l, " alive ") &&
		      strstr(l, "  0.4      3 2023-11-14T22:13:20.000Z -"), "%s", l);
	l = find_line(l + strlen(l) + 1, "edge2 ");
	*strchr(l, '\n') = '\0';
	ck_assert_msg(strstr(l, " lost ") && strstr(l, " 10.0 ") &&
		      strstr(l, " edge1 ") && strstr(l, " 2023-11-14T22:14:55.000Z 6"), "%s", l);
	l = find_line(l + strlen(l) + 1, "edge3 ");
	*strchr(l, '\n') = '\0';
	ck_assert_msg(strstr(l, " lost ") && strstr(l, "      2 ") &&
		      strlen(l) > 2 && strcmp(l + strlen(l) - 2, " -") == 0 &&
		      strstr(l, "edge1") == NULL, "%s", l);
	l = find_line(l + strlen(l) + 1, "edge4 ");
	*strchr(l, '\n') = '\0';
	ck_assert_msg(strstr(l, " alive ") && strstr(l, " edge4 ") &&
		      strstr(l, " 2023-11-14T22:13:21.000Z 2"), "%s", l);
	ck_assert_ptr_nonnull(strstr(l + strlen(l) + 1, "4 hosts (2 alive, 2 lost, 0 stopped)\n"));
	free(out.data);

	memset(&out, 0, sizeof out);
	ck_assert_int_eq(cli_hosts_answer(h, 4, now, 1, &out), 0);
	cli_buf_add(&out, "", 1);
	arr = parse_json(out.data);
	ck_assert_uint_eq(json_array_size(arr), 4);
	o = json_array_get(arr, 0);
	ck_assert_str_eq(str_field(o, "node_id"), "edge1");
	ck_assert_str_eq(str_field(o, "sip"), "10.0.0.1:5060");
	ck_assert(json_is_true(json_object_get(o, "alive")));
	ck_assert_int_eq(int_field(o, "lease_age_ms"), 400);
	ck_assert_int_eq(int_field(o, "lease_ms"), 5000);
	ck_assert_int_eq(int_field(o, "calls"), 3);
	ck_assert_int_eq(int_field(o, "epoch"), 11);
	ck_assert(json_is_null(json_object_get(o, "closed")));
	ck_assert(json_is_null(json_object_get(o, "previous_life_closed")));
	o = json_array_get(arr, 1);
	ck_assert(json_is_false(json_object_get(o, "alive")));
	ck_assert_int_eq(int_field(o, "lease_age_ms"), 10000);
	ck_assert_str_eq(str_field(json_object_get(o, "closed"), "by"), "edge1");
	ck_assert_str_eq(str_field(json_object_get(o, "closed"), "at"), "2023-11-14T22:14:55.000Z");
	ck_assert_int_eq(int_field(json_object_get(o, "closed"), "calls"), 6);
	o = json_array_get(arr, 2);
	ck_assert(json_is_false(json_object_get(o, "alive")));
	ck_assert(json_is_null(json_object_get(o, "closed")));   /* not closed yet */
	ck_assert_int_eq(int_field(o, "calls"), 2);
	ck_assert_str_eq(str_field(o, "state"), "lost");
	o = json_array_get(arr, 3);
	ck_assert(json_is_true(json_object_get(o, "alive")));
	ck_assert_str_eq(str_field(json_object_get(o, "previous_life_closed"), "by"), "edge4");
	json_decref(arr);
	free(out.data);

	/* edge3's life stopped on purpose, no call left: stopped, not lost. */
	h[2].stopped_epoch = h[2].epoch;
	h[2].calls = 0;
	memset(&out, 0, sizeof out);
	ck_assert_int_eq(cli_hosts_answer(h, 4, now, 0, &out), 0);
	cli_buf_add(&out, "", 1);
	l = find_line(out.data, "edge3 ");
	ck_assert_msg(l && strstr(l, " stopped "), "%s", out.data);
	ck_assert_ptr_nonnull(strstr(out.data, "\n4 hosts (2 alive, 1 lost, 1 stopped)\n"));
	free(out.data);

	/* No host yet. */
	memset(&out, 0, sizeof out);
	ck_assert_int_eq(cli_hosts_answer(h, 0, now, 0, &out), 0);
	cli_buf_add(&out, "", 1);
	ck_assert_ptr_nonnull(strstr(out.data, "\n0 hosts (0 alive, 0 lost, 0 stopped)\n"));
	free(out.data);
}
END_TEST

/* `show hosts` through the daemon, from what the heartbeat script and a
 * lost host left in Redis, judged by Redis's clock. */
START_TEST(test_show_hosts)
{
	struct store_error err;
	struct run_result r;
	store_sync_t *s;
	json_t *arr, *o;
	char *l;

	ck_assert_int_eq(store_sync_create(&t_cfg, &s), 0);
	ck_assert_msg(store_host_beat(s, "edge1", 77, "10.0.0.1:5060", 5000, &err) == 0, "%s",
		      err.text);
	store_sync_destroy(s);
	/* edge2: its last heartbeat long ago, its calls closed by edge1. */
	freeReplyObject(rcmd("SADD " T_PREFIX "hosts edge2"));
	freeReplyObject(rcmd("HSET " T_PREFIX "host:edge2 node edge2 sip 10.0.0.2:5060 epoch 5 "
			     "started_ms 1000 beat_ms 2000 lease_ms 5000 closed_by edge1 "
			     "closed_ms 9000 closed_epoch 5 closed_calls 4"));
	freeReplyObject(rcmd("HSET " T_PREFIX "calls:edge1 c1 x c2 y"));

	run_cli(&r, "show", "hosts", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	l = find_line(r.out, "edge1 ");
	ck_assert_msg(l && strstr(l, " alive ") && strstr(l, " 10.0.0.1:5060 "), "%s", r.out);
	l = find_line(r.out, "edge2 ");
	ck_assert_msg(l && strstr(l, " lost ") && strstr(l, " edge1 "), "%s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\n2 hosts (1 alive, 1 lost, 0 stopped)\n"));
	free_result(&r);

	run_cli(&r, "show", "hosts", "--json", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), 2);
	o = json_array_get(arr, 0);
	ck_assert_str_eq(str_field(o, "node_id"), "edge1");
	ck_assert(json_is_true(json_object_get(o, "alive")));
	ck_assert_int_eq(int_field(o, "calls"), 2);
	ck_assert_int_eq(int_field(o, "epoch"), 77);
	ck_assert_int_lt(int_field(o, "lease_age_ms"), 5000);
	o = json_array_get(arr, 1);
	ck_assert_str_eq(str_field(o, "node_id"), "edge2");
	ck_assert(json_is_false(json_object_get(o, "alive")));
	ck_assert_int_eq(int_field(json_object_get(o, "closed"), "calls"), 4);
	json_decref(arr);
	free_result(&r);
}
END_TEST

START_TEST(test_cdr_tail)
{
	struct run_result r;
	json_t *arr, *o;
	char *l1, *l2, *l3, when[40];

	/* No stream yet: an empty answer, not an error. */
	run_cli(&r, "cdr", "tail", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "DISPOSITION"));
	ck_assert_ptr_nonnull(strstr(r.out, "\n0 CDRs\n"));
	free_result(&r);

	put_cdr(T_PREFIX "cdr", "1700000000001-0", 1, 1);
	put_cdr(T_PREFIX "cdr", "1700000000002-0", 2, 0);
	put_cdr(T_PREFIX "cdr", "1700000000003-0", 3, 1);

	run_cli(&r, "cdr", "tail", NULL);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_str_eq(r.err, "");
	l1 = find_line(r.out, "test-node-1 ");
	l2 = find_line(r.out, "test-node-2 ");
	l3 = find_line(r.out, "test-node-3 ");
	ck_assert_msg(l1 && l2 && l3, "%s", r.out);
	ck_assert_msg(l1 < l2 && l2 < l3, "not oldest first:\n%s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "\n3 CDRs\n"));
	*strchr(l1, '\n') = '\0';
	*strchr(l2, '\n') = '\0';
	iso_ms(1700000000000ULL + 60000, when, sizeof when);
	ck_assert_str_eq(when, "2023-11-14T22:14:20.000Z");
	ck_assert_msg(strstr(l1, when), "%s", l1);
	ck_assert_msg(strstr(l1, " sip:caller1@example.com "), "%s", l1);
	ck_assert_msg(strstr(l1, " sip:callee1@example.com "), "%s", l1);
	ck_assert_msg(strstr(l1, " sip:phone@10.0.0.9 "), "%s", l1);
	ck_assert_msg(strstr(l1, " ANSWERED "), "%s", l1);
	ck_assert_msg(strstr(l1, " 200 "), "%s", l1);
	ck_assert_msg(strstr(l1, " 12.345 callee"), "%s", l1);     /* billable s, hangup_by */
	/* Unanswered: no answered_by ("-"), 0.000 billable. */
	ck_assert_msg(strstr(l2, " sip:callee2@example.com  ") && strstr(l2, " - "), "%s", l2);
	ck_assert_msg(strstr(l2, " BUSY "), "%s", l2);
	ck_assert_msg(strstr(l2, " 486 "), "%s", l2);
	ck_assert_msg(strstr(l2, " 0.000 system"), "%s", l2);
	free_result(&r);

	run_cli(&r, "cdr", "tail", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), 3);
	for (size_t i = 0; i < 3; i++) {
		char sid[32], id[32];

		o = json_array_get(arr, i);
		snprintf(sid, sizeof sid, "170000000000%zu-0", i + 1);
		snprintf(id, sizeof id, "test-node-%zu", i + 1);
		ck_assert_str_eq(str_field(o, "stream_id"), sid);
		ck_assert_str_eq(str_field(o, "id"), id);
		/* Every field, each a string, and nothing else. */
		for (size_t f = 0; f < N_CDR_FIELDS; f++)
			str_field(o, cdr_fields[f]);
		ck_assert_uint_eq(json_object_size(o), N_CDR_FIELDS + 1);
	}
	o = json_array_get(arr, 1);
	ck_assert_str_eq(str_field(o, "answered_by"), "");
	ck_assert_str_eq(str_field(o, "forwarded_to"), "sip:fwd@example.com");
	ck_assert_str_eq(str_field(o, "disposition"), "BUSY");
	ck_assert_str_eq(str_field(o, "sip_code"), "486");
	ck_assert_str_eq(str_field(o, "billable_ms"), "0");
	ck_assert_str_eq(str_field(o, "start_ms"), "1700000120000");
	ck_assert_str_eq(str_field(o, "worker"), "0");
	json_decref(arr);
	free_result(&r);

	/* N: the N newest, still oldest first. */
	run_cli(&r, "cdr", "tail", "2", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), 2);
	ck_assert_str_eq(str_field(json_array_get(arr, 0), "id"), "test-node-2");
	ck_assert_str_eq(str_field(json_array_get(arr, 1), "id"), "test-node-3");
	json_decref(arr);
	free_result(&r);
	run_cli(&r, "cdr", "tail", "1", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_null(find_line(r.out, "test-node-2 "));
	ck_assert_ptr_nonnull(find_line(r.out, "test-node-3 "));
	ck_assert_ptr_nonnull(strstr(r.out, "\n1 CDR\n"));
	free_result(&r);

	assert_user_usage("cdr tail 0", (const char *[]){ "cdr", "tail", "0", NULL });
	assert_user_usage("cdr tail 1001", (const char *[]){ "cdr", "tail", "1001", NULL });
	assert_user_usage("cdr tail x", (const char *[]){ "cdr", "tail", "x", NULL });
	assert_user_usage("cdr tail 1 2", (const char *[]){ "cdr", "tail", "1", "2", NULL });
	{
		char *answer = raw_request(t_cfg.cli_socket, "cdr tail 1001\n", 0);

		ck_assert_msg(strncmp(answer, "2 cdr tail '1001': a number from 1 to 1000", 42)
			      == 0, "%s", answer);
		free(answer);
	}
}
END_TEST

/* More CDRs than the maximum: 1000 at most, the newest, in order; cdr_stream is honoured. */
START_TEST(test_cdr_tail_many)
{
	const unsigned n = 1005;
	struct config cfg = t_cfg;
	cli_server_t *srv = NULL;
	const char *args[] = { "-s", cfg.cli_socket, "cdr", "tail", "1000", "--json", NULL };
	struct run_result r;
	json_t *arr;
	pid_t pid;

	for (unsigned i = 1; i <= n; i++)
		redisAppendCommand(t_redis, "XADD " T_PREFIX "billing:cdr %u-0 id cdr-%u "
				   "billable_ms %u", i, i, i);
	for (unsigned i = 1; i <= n; i++) {
		void *reply = NULL;

		ck_assert_int_eq(redisGetReply(t_redis, &reply), REDIS_OK);
		freeReplyObject(reply);
	}
	snprintf(cfg.cdr_stream, sizeof cfg.cdr_stream, "billing:cdr");
	snprintf(cfg.cli_socket, sizeof cfg.cli_socket, "%s/live2.sock", t_dir);
	ck_assert_int_eq(cli_server_open(&cfg, t_shm, &srv), 0);
	pid = start_server(srv);
	run_cli_as(&r, NULL, (uid_t)-1, args);
	stop_server(&pid);
	cli_server_close(srv);

	ck_assert_msg(r.status == 0, "%s", r.err);
	arr = parse_json(r.out);
	ck_assert_uint_eq(json_array_size(arr), 1000);
	ck_assert_str_eq(str_field(json_array_get(arr, 0), "id"), "cdr-6");
	ck_assert_str_eq(str_field(json_array_get(arr, 0), "stream_id"), "6-0");
	ck_assert_str_eq(str_field(json_array_get(arr, 999), "id"), "cdr-1005");
	/* Only what the entry has, plus stream_id. */
	ck_assert_uint_eq(json_object_size(json_array_get(arr, 999)), 3);
	json_decref(arr);
	free_result(&r);

	/* The default server reads "t:cdr", which does not exist here. */
	run_cli(&r, "cdr", "tail", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\n0 CDRs\n"));
	free_result(&r);
}
END_TEST

/* Redis unreachable: a clear error naming the address, exit 1, soon. */
START_TEST(test_user_redis_down)
{
	const char *cmds[][6] = {
		{ "user", "list", NULL },
		{ "user", "add", "alice", "--password", "x", NULL },
		{ "user", "show", "alice", NULL },
		{ "user", "del", "alice", NULL },
		{ "user", "forward", "alice", "--busy", "bob", NULL },
		{ "cdr", "tail", NULL },
	};
	char want[512];

	stop_redis();
	snprintf(want, sizeof want, "b2bua-cli: redis %s: cannot connect: ", t_cfg.redis_address);
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		const char *args[10] = { "-s", t_cfg.cli_socket };
		uint64_t t0 = now_ms(CLOCK_MONOTONIC);
		struct run_result r;

		for (size_t k = 0; cmds[i][k]; k++)
			args[2 + k] = cmds[i][k];
		run_cli_as(&r, NULL, (uid_t)-1, args);
		ck_assert_int_eq(r.status, 1);
		ck_assert_str_eq(r.out, "");
		ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0, "%s", r.err);
		ck_assert_msg(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "%s", r.err);
		ck_assert_uint_lt(now_ms(CLOCK_MONOTONIC) - t0, 3000);
		free_result(&r);
	}
	/* The daemon's own commands still work. */
	{
		struct run_result r;

		run_cli(&r, "show", "stats", NULL);
		ck_assert_int_eq(r.status, 0);
		free_result(&r);
	}
}
END_TEST

/* A Redis that takes the connection but never answers: an error after about 1 s. */
START_TEST(test_user_redis_silent)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct config cfg = t_cfg;
	cli_server_t *srv = NULL;
	const char *args[] = { "-s", cfg.cli_socket, "user", "show", "alice", NULL };
	char silent[96], want[512];
	struct run_result r;
	uint64_t t0, took;
	pid_t pid;
	int fd;

	/* Listening but never accepting: connect() succeeds through the backlog. */
	snprintf(silent, sizeof silent, "%s/silent.sock", t_dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	set_sun_path(&sun, silent);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	snprintf(cfg.redis_address, sizeof cfg.redis_address, "unix:%s", silent);
	snprintf(cfg.cli_socket, sizeof cfg.cli_socket, "%s/live2.sock", t_dir);
	ck_assert_int_eq(cli_server_open(&cfg, t_shm, &srv), 0);
	pid = start_server(srv);

	t0 = now_ms(CLOCK_MONOTONIC);
	run_cli_as(&r, NULL, (uid_t)-1, args);
	took = now_ms(CLOCK_MONOTONIC) - t0;
	stop_server(&pid);
	cli_server_close(srv);
	close(fd);
	unlink(silent);
	snprintf(want, sizeof want, "b2bua-cli: redis unix:%s: no answer within 1 s\n", silent);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.err, want);
	ck_assert_msg(took >= 900 && took < 3000, "answered after %" PRIu64 " ms", took);
	free_result(&r);
}
END_TEST

/* ------------------------------------------------------------ the command table */

/* The usage text as it was written by hand before it was built from the table. */
static const char t_usage[] =
	"usage: b2bua-cli [-s SOCKET] COMMAND [--json]\n"
	"\n"
	"commands:\n"
	"  show workers   worker processes: pid, own SIP port, active calls, uptime, restarts,\n"
	  "                 calls created, messages in/out, datagrams handed over/in,\n"
	  "                 open TCP/TLS connections\n"
	"  show calls [--long]\n"
	"                 calls in progress: id, caller, callee, state, age, worker, forward\n"
	"                 target; --long adds both legs (Call-IDs, tags, targets) and times\n"
	"  show call ID   one call in the --long form\n"
	"  show stats     call and message counters, final codes sent, draining\n"
	"  show hosts     every host sharing this Redis: alive or lost (lease age), its\n"
	"                 answered calls, and who closed a lost host's calls, when\n"
	"  call kill ID   end a call now (its worker hangs up both legs), wait until it is gone\n"
	"  cdr tail [N]   the N latest call detail records, oldest first (default 10, max 1000)\n"
	"  user add NAME [--password PW | --password-stdin] [--display TEXT] [--max-calls N]\n"
	"                 add a subscriber; without a password one is made up and printed\n"
	"  user passwd NAME [--password PW | --password-stdin]\n"
	"                 change a password (made up and printed when none is given)\n"
	"  user set NAME [--display TEXT] [--max-calls N]\n"
	"                 change a subscriber's display name or call limit\n"
	"  user del NAME  delete a subscriber and its registrations\n"
	"  user enable NAME, user disable NAME\n"
	"                 allow or refuse a subscriber's REGISTERs and calls\n"
	"  user forward NAME [--always TARGET] [--busy TARGET] [--no-answer TARGET]\n"
	"                    [--timeout SECONDS]\n"
	"  user forward NAME --clear\n"
	"                 set a subscriber's call forwarding, or remove all of it\n"
	"  user show NAME a subscriber, its call forwarding and current registrations\n"
	"  user list      every subscriber with its number of registrations\n"
	"  reload         re-read the configuration file, as SIGHUP does: apply what changed\n"
	"                 in every process, name the keys that wait for a restart\n"
	"  help           this text\n"
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

START_TEST(test_table_usage)
{
	struct run_result r;
	char *answer;

	ck_assert_str_eq(cli_cmd_usage(), t_usage);
	run_cli(&r, "help", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, t_usage);
	free_result(&r);
	answer = raw_request(t_cfg.cli_socket, "help\n", 0);
	ck_assert_int_eq(strncmp(answer, "0 ok\n", 5), 0);
	ck_assert_str_eq(answer + 5, t_usage);
	free(answer);
}
END_TEST

/* A valid value for option `flag`. */
static const char *table_value(unsigned flag)
{
	switch (flag) {
	case CLI_OPT_PASSWORD:  return "pw";
	case CLI_OPT_DISPLAY:   return "D";
	case CLI_OPT_MAX_CALLS: return "1";
	case CLI_OPT_TIMEOUT:   return "5";
	default:                return "bob";
	}
}

/*
 * The words of a request for `cmd`: its words, a valid operand, the options
 * it requires (but `skip`) and option `with` (0: none), argv style.
 */
static size_t table_request(const struct cli_cmd *cmd, unsigned with, unsigned skip,
			    const char **argv, size_t max)
{
	size_t n = 0;

	argv[n++] = cmd->words[0];
	if (cmd->words[1])
		argv[n++] = cmd->words[1];
	if (cmd->operand == CLI_OPERAND_USER)
		argv[n++] = "nosuch";
	else if (cmd->operand == CLI_OPERAND_CALL)
		argv[n++] = "test-node-w0-1-1";
	for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
		const struct cli_option *o = &cli_options[i];

		if (!(o->flag == with || (o->flag & cmd->required & ~skip)))
			continue;
		argv[n++] = o->name;
		if (o->takes_value)
			argv[n++] = table_value(o->flag);
	}
	ck_assert_uint_lt(n, max);
	argv[n] = NULL;
	return n;
}

/* The request line of argv, as the client would send it (no word needs encoding here). */
static void table_line(const char *const *argv, char *line, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; argv[i]; i++)
		n += (size_t)snprintf(line + n, size - n, "%s%s", i ? " " : "", argv[i]);
	snprintf(line + n, size - n, "\n");
}

/* Every command of the table reaches a handler: no usage error, an answer of 0 or 1. */
START_TEST(test_table_handlers)
{
	for (size_t c = 0; c < CLI_CMD__COUNT; c++) {
		const struct cli_cmd *cmd = &cli_cmds[c];
		unsigned first = cmd->one_of & -cmd->one_of;   /* lowest bit */
		const char *argv[16];
		char line[256];
		char *answer;

		ck_assert_uint_eq(cmd->id, c);
		table_request(cmd, first, 0, argv, sizeof argv / sizeof argv[0]);
		table_line(argv, line, sizeof line);
		answer = raw_request(t_cfg.cli_socket, line, 0);
		ck_assert_msg(answer[0] == '0' || answer[0] == '1', "%s-> %s", line, answer);
		ck_assert_msg(strstr(answer, "cannot build") == NULL, "%s-> %s", line, answer);
		free(answer);
	}
}
END_TEST

/*
 * For every command and every option, b2bua-cli and the server agree with
 * the table on whether the option goes with the command.
 */
START_TEST(test_table_options)
{
	char none[256];

	snprintf(none, sizeof none, "%s/none.sock", t_dir);
	for (size_t c = 0; c < CLI_CMD__COUNT; c++) {
		const struct cli_cmd *cmd = &cli_cmds[c];

		for (size_t i = 0; i < CLI_N_OPTIONS; i++) {
			const struct cli_option *o = &cli_options[i];
			int accepted = (cmd->opts & o->flag) != 0;
			const char *argv[20] = { "-s", none };
			struct run_result r;
			char line[256];
			char *answer;

			table_request(cmd, o->flag, o->flag, argv + 2,
				      sizeof argv / sizeof argv[0] - 2);
			run_cli_as(&r, NULL, (uid_t)-1, argv);
			ck_assert_msg((strstr(r.err, "does not go with") == NULL) == accepted,
				      "client, %s %s %s: %s", cmd->words[0],
				      cmd->words[1] ? cmd->words[1] : "", o->name, r.err);
			free_result(&r);

			table_line(argv + 2, line, sizeof line);
			answer = raw_request(t_cfg.cli_socket, line, 0);
			/* An option the client keeps to itself is unknown to the server. */
			if (!o->on_wire)
				ck_assert_msg(strncmp(answer, "2 unknown option", 16) == 0, "%s",
					      answer);
			else
				ck_assert_msg((strstr(answer, "does not go with") == NULL) ==
					      accepted, "server, %s-> %s", line, answer);
			free(answer);
		}
	}
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("server+client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_calls_text);
	tcase_add_test(tc, test_calls_json);
	tcase_add_test(tc, test_calls_large);
	tcase_add_test(tc, test_calls_long);
	tcase_add_test(tc, test_show_call);
	tcase_add_test(tc, test_call_kill);
	tcase_add_test(tc, test_call_kill_failures);
	tcase_add_test(tc, test_call_kill_unavailable);
	tcase_add_test(tc, test_workers);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_stats_draining);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_not_running);
	tcase_add_test(tc, test_socket_mode);
	tcase_add_test(tc, test_second_open_in_use);
	tcase_add_test(tc, test_stale_replaced);
	tcase_add_test(tc, test_idle_client_dropped);
	tcase_add_test(tc, test_peer_refused);
	tcase_add_test(tc, test_table_usage);
	tcase_add_test(tc, test_hosts_format);
	tcase_add_test(tc, test_table_handlers);
	tcase_add_test(tc, test_table_options);
	suite_add_tcase(s, tc);

	tc = tcase_create("users");
	tcase_add_checked_fixture(tc, setup_users, teardown_users);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_user_add);
	tcase_add_test(tc, test_user_add_odd_values);
	tcase_add_test(tc, test_user_random_password);
	tcase_add_test(tc, test_user_password_stdin);
	tcase_add_test(tc, test_user_passwd);
	tcase_add_test(tc, test_user_enable_disable);
	tcase_add_test(tc, test_user_set);
	tcase_add_test(tc, test_user_show);
	tcase_add_test(tc, test_user_list);
	tcase_add_test(tc, test_user_list_many);
	tcase_add_test(tc, test_user_del);
	tcase_add_test(tc, test_user_forward);
	tcase_add_test(tc, test_user_forward_unknown);
	tcase_add_test(tc, test_user_forward_usage);
	tcase_add_test(tc, test_cdr_tail);
	tcase_add_test(tc, test_show_hosts);
	tcase_add_test(tc, test_cdr_tail_many);
	tcase_add_test(tc, test_user_usage_errors);
	tcase_add_test(tc, test_user_redis_down);
	tcase_add_test(tc, test_user_redis_silent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	log_set_role("check_cli");
	log_set_level(LOG_WARN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
