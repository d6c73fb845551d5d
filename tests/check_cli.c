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
 */
#define _GNU_SOURCE

#include "cli/cli_proto.h"
#include "cli/cli_server.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVE_MAX_MS   60000    /* a server child never outlives this */
#define CLIENT_MAX_MS  10000    /* a client run that takes longer is killed and fails */
#define TABLE_CAPACITY 4096
#define TABLE_WORKERS  4        /* more slots than configured workers (2) */
#define NOBODY_UID     65534

struct test_call {
	uint64_t id;
	uint16_t worker;
	uint8_t state;
	uint8_t held_by;
	const char *caller;
	const char *callee;
	const char *forward_target;
	const char *a_call_id;
	const char *b_call_id;
	unsigned age_s;
	const char *state_text;   /* as `show calls` prints it */
	const char *state_json;
	const char *held_json;    /* NULL: held_by is null */
};

/* Ids above 2^53 and 2^63 check that no double or signed type sits on the path. */
static const struct test_call t_calls[] = {
	{ 18446744073709551557ULL, 0, SHM_CALL_ANSWERED, SHM_PARTY_NONE,
	  "sip:alice@example.com", "sip:bob@example.com", "", "a-1@10.0.0.1", "b-1@test-node",
	  30, "ANSWERED", "ANSWERED", NULL },
	{ 4242, 1, SHM_CALL_RINGING, SHM_PARTY_NONE,
	  "sip:carol@example.com", "sip:dave@example.com", "", "a-2@10.0.0.2", "b-2@test-node",
	  5, "RINGING", "RINGING", NULL },
	{ 9007199254740993ULL, 0, SHM_CALL_HELD, SHM_PARTY_CALLEE,
	  "sip:erin@example.com", "sip:frank@example.com", "", "a-3@10.0.0.3", "b-3@test-node",
	  120, "HELD(by callee)", "HELD", "callee" },
	{ 77, 1, SHM_CALL_FORWARDING, SHM_PARTY_NONE,
	  "sip:grace@example.com", "sip:heidi@example.com", "sip:ivan@example.com",
	  "a-4@10.0.0.4", "b-4@test-node", 12, "FORWARDING", "FORWARDING", NULL },
	{ 78, 0, SHM_CALL_TRYING, SHM_PARTY_NONE,
	  "sip:judy@example.com", "sip:mallory@example.com", "", "a-5@10.0.0.5", "",
	  1, "TRYING", "TRYING", NULL },
	{ 79, 1, SHM_CALL_ENDING, SHM_PARTY_NONE,
	  "sip:niaj@example.com", "sip:olivia@example.com", "", "a-6@10.0.0.6", "b-6@test-node",
	  40, "ENDING", "ENDING", NULL },
};
#define N_CALLS (sizeof t_calls / sizeof t_calls[0])

static shm_t *t_shm;
static struct config t_cfg;
static cli_server_t *t_srv;
static pid_t t_server_pid;
static char t_dir[64];
static char t_rundir[128];
static uint64_t t_now_ms;

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
		c.id = t->id;
		c.worker = t->worker;
		c.state = t->state;
		c.held_by = t->held_by;
		snprintf(c.caller, sizeof c.caller, "%s", t->caller);
		snprintf(c.callee, sizeof c.callee, "%s", t->callee);
		snprintf(c.forward_target, sizeof c.forward_target, "%s", t->forward_target);
		snprintf(c.a.call_id, sizeof c.a.call_id, "%s", t->a_call_id);
		snprintf(c.b.call_id, sizeof c.b.call_id, "%s", t->b_call_id);
		c.start_ms = t_now_ms - (uint64_t)t->age_s * 1000;
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
		     int out_fd, int err_fd)
{
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
 * ((uid_t)-1: ours).  Bounded by CLIENT_MAX_MS.
 */
static void run_cli_as(struct run_result *r, const char *env_socket, uid_t uid,
		       const char *const *args)
{
	const char *argv[16] = { cli_path() };
	size_t out_len = 0, out_cap = 0, err_len = 0, err_cap = 0;
	uint64_t deadline = now_ms(CLOCK_MONOTONIC) + CLIENT_MAX_MS;
	int po[2], pe[2], open_fds = 2, wstatus;
	pid_t pid;

	for (size_t i = 0; args[i]; i++) {
		ck_assert_uint_lt(i + 2, sizeof argv / sizeof argv[0]);
		argv[i + 1] = args[i];
	}
	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0)
		exec_cli(argv, env_socket, uid, po[1], pe[1]);
	ck_assert_int_gt(pid, 0);
	close(po[1]);
	close(pe[1]);

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

/* b2bua-cli -s <test socket> args... (NULL-terminated) */
static void run_cli(struct run_result *r, ...)
{
	const char *args[12] = { "-s", t_cfg.cli_socket };
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
	cli_server_close(t_srv);
	t_srv = NULL;
	shm_destroy(t_shm);
	t_shm = NULL;
	/* Files some tests leave; the server's own socket went with cli_server_close. */
	const char *leftovers[] = { "stale.sock", "none.sock", "plain-file", "live2.sock" };
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
	for (size_t i = 0; i < N_CALLS; i++) {
		const struct test_call *t = &t_calls[i];
		char id[24], *line, *eol;

		/* Each call on a line of its own, starting with its id. */
		snprintf(id, sizeof id, "%" PRIu64 " ", t->id);
		line = find_line(r.out, id);
		ck_assert_msg(line != NULL, "no line for call %s", id);
		eol = strchr(line, '\n');
		ck_assert_ptr_nonnull(eol);
		*eol = '\0';
		ck_assert_msg(strstr(line, t->caller), "caller missing: %s", line);
		ck_assert_msg(strstr(line, t->callee), "callee missing: %s", line);
		ck_assert_msg(strstr(line, t->state_text), "state %s missing: %s",
			      t->state_text, line);
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
		char id[24];
		json_t *o;
		json_int_t age;

		snprintf(id, sizeof id, "%" PRIu64, t->id);
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
		c.id = 1000000 + i;
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
	ck_assert_ptr_nonnull(find_by_str(arr, "id", "1002999"));
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

/* ------------------------------------------------------------ show workers */

START_TEST(test_workers)
{
	struct run_result r;
	json_t *arr, *w0, *w1;
	json_int_t up;

	run_cli(&r, "show", "workers", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "RESTARTS"));
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

/* SO_PEERCRED: even with the file mode opened up, another user is refused. */
START_TEST(test_peer_refused)
{
	const char *args[] = { "-s", t_cfg.cli_socket, "show", "calls", NULL };
	struct run_result r;

	if (geteuid() != 0) {
		fprintf(stderr, "check_cli: test_peer_refused needs root, not run\n");
		return;
	}
	ck_assert_int_eq(chmod(t_dir, 0755), 0);
	ck_assert_int_eq(chmod(t_rundir, 0755), 0);
	ck_assert_int_eq(chmod(t_cfg.cli_socket, 0666), 0);
	run_cli_as(&r, NULL, NOBODY_UID, args);
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strstr(r.err, "b2bua-cli: permission denied: uid 65534") == r.err,
		      "%s", r.err);
	ck_assert_ptr_null(strstr(r.out, "sip:alice"));
	free_result(&r);
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
