/*
 * testenv — temporary directories, a real redis-server, log capture and a
 * Sofia root on the worker's io_uring port for the Check programs.
 *
 * Design note.  See testenv.h for what a test gets.  Everything here runs
 * either in the runner process (testenv_main, the base directory) or in one
 * test's process (the rest), so plain static variables hold the state.
 * redis-server runs in the foreground as our child, never daemonized, so its
 * PID is the one we kill.  Its start is waited for by polling the socket
 * every 20 ms up to TESTENV_REDIS_START_MS; an early exit fails the test at
 * once, pointing at its log.
 */
#define _GNU_SOURCE

#include "tests/testenv.h"

#include "worker/uport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sofia-sip/su.h>

#define REDIS_ARGV_MAX  32      /* redis-server's command line, NULL included */
#define STEP_MAX_MS     50      /* one su_root_step() at most: deadlines stay close */

static const char *t_prog = "testenv";
static char t_base[64];       /* made and removed by the runner process */
static char t_dir[96];        /* this test's directory, inside t_base */
static char t_sock[128];      /* this test's redis-server socket */
static pid_t t_redis = -1;
static uport_t *t_port;
static su_root_t *t_root;
static int t_saved_stderr = -1;
static char t_log[131072];

/* ------------------------------------------------------------ the program */

static int have_redis_server(void)
{
	const char *path = getenv("PATH");
	char buf[512];

	while (path != NULL && *path != '\0') {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof buf, "%.*s/redis-server", (int)n, path);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

int testenv_main(const char *prog, Suite *(*make_suite)(void))
{
	SRunner *sr;
	int failed;

	if (!have_redis_server()) {
		fprintf(stderr, "%s: SKIP: redis-server not found "
			"(Debian package redis-server)\n", prog);
		return TESTENV_SKIP;
	}
	t_prog = prog;
	/* A peer that went away must fail a write, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(make_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void testenv_base_setup(void)
{
	snprintf(t_base, sizeof t_base, "/tmp/%s.XXXXXX", t_prog);
	if (mkdtemp(t_base) == NULL) {
		fprintf(stderr, "%s: mkdtemp: %s\n", t_prog, strerror(errno));
		exit(EXIT_FAILURE);
	}
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

void testenv_base_teardown(void)
{
	if (t_base[0] != '\0')
		nftw(t_base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ one test */

void testenv_setup(void)
{
	snprintf(t_dir, sizeof t_dir, "%s/XXXXXX", t_base);
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	snprintf(t_sock, sizeof t_sock, "%s/redis.sock", t_dir);
	ck_assert_int_eq(su_init(), 0);
	ck_assert_int_eq(uport_create(256, &t_port), 0);
	t_root = uport_root_create(t_port, NULL);
	ck_assert_ptr_nonnull(t_root);
}

void testenv_teardown(void)
{
	testenv_log_capture_stop();
	/* The root owns its port: destroying it frees both. */
	if (t_root)
		su_root_destroy(t_root);
	t_root = NULL;
	t_port = NULL;
	su_deinit();
	testenv_redis_kill();
}

const char *testenv_dir(void)
{
	return t_dir;
}

const char *testenv_redis_sock(void)
{
	return t_sock;
}

su_root_t *testenv_root(void)
{
	return t_root;
}

long long testenv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int testenv_run_until(testenv_cond_f *cond, void *arg, long long timeout_ms)
{
	long long deadline = testenv_now_ms() + timeout_ms;

	while (!cond(arg)) {
		long long left = deadline - testenv_now_ms();

		if (left <= 0)
			return 0;
		su_root_step(t_root, left < STEP_MAX_MS ? (su_duration_t)left : STEP_MAX_MS);
	}
	return 1;
}

static int never(void *arg)
{
	(void)arg;
	return 0;
}

void testenv_run_for(long long ms)
{
	testenv_run_until(never, NULL, ms);
}

/* ------------------------------------------------------------ processes */

pid_t testenv_fork(int keep_fd)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The parent may have died before the line above: then go too. */
	if (getppid() != parent)
		_exit(1);
	for (int fd = 3; fd < 1024; fd++)
		if (fd != keep_fd)
			close(fd);
	return 0;
}

static void redis_exec(const char *const argv[])
{
	char logpath[128];
	int fd;

	snprintf(logpath, sizeof logpath, "%s/redis.log", t_dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execvp("redis-server", (char *const *)argv);
	_exit(127);
}

static void redis_spawn(int tcp_port, const char *const extra[])
{
	char port[16];
	const char *argv[REDIS_ARGV_MAX] = {
		"redis-server", "--port", port, "--unixsocket", t_sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t_dir,
	};
	int n = 15;

	snprintf(port, sizeof port, "%d", tcp_port);
	for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert_int_lt(n, REDIS_ARGV_MAX - 1);
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	t_redis = testenv_fork(-1);
	if (t_redis == 0)
		redis_exec(argv);
}

void testenv_redis_start(int tcp_port, const char *const extra[])
{
	long long deadline = testenv_now_ms() + TESTENV_REDIS_START_MS;
	int status;

	redis_spawn(tcp_port, extra);
	while (testenv_now_ms() < deadline) {
		redisContext *c = testenv_redis_connect(NULL);
		redisReply *r = c ? redisCommand(c, "PING") : NULL;

		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (r)
			return;
		ck_assert_msg(waitpid(t_redis, &status, WNOHANG) == 0,
			      "redis-server exited at start; see %s/redis.log", t_dir);
		usleep(20000);
	}
	ck_abort_msg("redis-server did not answer within %d ms", TESTENV_REDIS_START_MS);
}

void testenv_redis_kill(void)
{
	if (t_redis <= 0)
		return;
	kill(t_redis, SIGKILL);
	waitpid(t_redis, NULL, 0);
	t_redis = -1;
}

void testenv_redis_signal(int sig)
{
	if (t_redis > 0)
		ck_assert_int_eq(kill(t_redis, sig), 0);
}

redisContext *testenv_redis_connect(const char *password)
{
	struct timeval tv = { 0, 200000 };
	redisContext *c = redisConnectUnixWithTimeout(t_sock, tv);
	redisReply *r;

	if (c == NULL || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, (struct timeval){ 2, 0 });
	if (password != NULL) {
		r = redisCommand(c, "AUTH %s", password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r)
				freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

int testenv_free_port(void)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)
	};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* ------------------------------------------------------------ log capture */

void testenv_log_capture_start(void)
{
	char path[128];
	int fd;

	snprintf(path, sizeof path, "%s/test.log", t_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	ck_assert_int_ge(fd, 0);
	t_saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

const char *testenv_log_capture_stop(void)
{
	char path[128];
	ssize_t n = 0;
	int fd;

	if (t_saved_stderr < 0)
		return t_log;
	dup2(t_saved_stderr, STDERR_FILENO);
	close(t_saved_stderr);
	t_saved_stderr = -1;
	snprintf(path, sizeof path, "%s/test.log", t_dir);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, t_log, sizeof t_log - 1);
		close(fd);
	}
	t_log[n > 0 ? n : 0] = '\0';
	if (write(STDERR_FILENO, t_log, strlen(t_log)) < 0) {
		/* only an echo */
	}
	return t_log;
}

int testenv_count_lines(const char *log, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(log, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}
