/*
 * testenv — the harness of the Check programs that run worker code against a
 * real redis-server on the worker's own io_uring port (check_rds, check_cdr).
 *
 * Design note.  One base directory, /tmp/<prog>.XXXXXX, is made by the
 * runner process around all tests and removed with all it holds after the
 * last one; each test works in a fresh directory inside it.  So a test whose
 * failed assertion skipped its teardown (Check's forked test process just
 * _exit()s) leaves nothing behind.  A test's redis-server is forked and
 * exec'd in the foreground with no RDB snapshots and a Unix socket in the
 * test's directory, waited for until it answers, and killed by PID in the
 * teardown; like every child made with testenv_fork() it also dies with the
 * test process (PR_SET_PDEATHSIG).  The Sofia root is the worker's own
 * (uport), and the loop runs with su_root_step() until a condition holds or
 * a deadline passes: never unbounded.  Tests that check log lines send
 * stderr to a file in the test's directory meanwhile.
 *
 * The state is one test's worth of static variables, since Check runs one
 * test at a time in a process.  The helpers fail the running test through
 * ck_assert rather than return codes: they only ever run inside a test.
 */
#ifndef B2BUA_TESTENV_H
#define B2BUA_TESTENV_H

#include <sys/types.h>

#include <check.h>
#include <hiredis/hiredis.h>
#include <sofia-sip/su_wait.h>

#define TESTENV_SKIP            77      /* automake's exit code for a skipped test */
#define TESTENV_REDIS_START_MS  5000    /* redis-server answers within this, or the test fails */

/* A condition the loop is stepped until: nonzero when it holds. */
typedef int testenv_cond_f(void *arg);

/* ------------------------------------------------------------ the program */

/*
 * The whole main() of a program whose tests need redis-server: without one
 * on PATH it says so on stderr and returns TESTENV_SKIP; else it remembers
 * `prog` (the base directory's name), ignores SIGPIPE, runs the suite that
 * make_suite() builds, and returns EXIT_SUCCESS or EXIT_FAILURE.
 */
int testenv_main(const char *prog, Suite *(*make_suite)(void));

/* Unchecked fixture (runner process): make the base directory; exits on failure. */
void testenv_base_setup(void);

/* Unchecked fixture (runner process): remove the base directory and all in it. */
void testenv_base_teardown(void);

/* ------------------------------------------------------------ one test */

/*
 * Start of a test: its own directory inside the base directory, the path of
 * its redis-server's socket there, and a Sofia root on a new uport.
 */
void testenv_setup(void);

/*
 * End of a test, after the test's own objects on the root are destroyed:
 * stops a log capture still running, destroys the root (and its port), and
 * kills redis-server.
 */
void testenv_teardown(void);

/* This test's directory. */
const char *testenv_dir(void);

/* The path of this test's redis-server socket (it need not exist). */
const char *testenv_redis_sock(void);

/* This test's Sofia root, on the worker's io_uring port. */
su_root_t *testenv_root(void);

/* Milliseconds on the monotonic clock. */
long long testenv_now_ms(void);

/* Step the loop until cond(arg) holds (1) or timeout_ms passed (0). */
int testenv_run_until(testenv_cond_f *cond, void *arg, long long timeout_ms);

/* Step the loop for ms milliseconds. */
void testenv_run_for(long long ms);

/* ------------------------------------------------------------ processes */

/*
 * fork() for a helper process: returns the child's PID in the parent and 0
 * in the child, which dies with its parent and keeps no descriptor above
 * stderr but keep_fd (-1: none), so it holds none of our ring, sockets or
 * locks.
 */
pid_t testenv_fork(int keep_fd);

/*
 * Start this test's redis-server and wait until it answers PING (any reply,
 * even NOAUTH).  It listens on testenv_redis_sock() and, unless tcp_port is
 * 0, on that TCP port; extra (NULL-terminated, may be NULL) is appended to
 * its command line, where a later option wins over an earlier one.  Its
 * output goes to redis.log in the test's directory.
 */
void testenv_redis_start(int tcp_port, const char *const extra[]);

/* Kill this test's redis-server by PID and reap it; nothing if none runs. */
void testenv_redis_kill(void);

/* Send sig to this test's redis-server (SIGSTOP: a server that hangs with
 * its connections open; SIGCONT: back).  Nothing if none runs. */
void testenv_redis_signal(int sig);

/*
 * A blocking client on the socket of this test's redis-server (2 s command
 * timeout), AUTHed when password is not NULL: the caller's to redisFree(),
 * or NULL when it cannot connect or AUTH fails.
 */
redisContext *testenv_redis_connect(const char *password);

/* A loopback TCP port nobody listens on right now. */
int testenv_free_port(void);

/* ------------------------------------------------------------ log capture */

/* Send stderr (and so the log) to test.log in the test's directory. */
void testenv_log_capture_start(void);

/*
 * Restore stderr and return what was logged since the start (also echoed to
 * stderr); valid until the next capture.  Without a capture running, the
 * last capture's text.
 */
const char *testenv_log_capture_stop(void);

/* How many times needle occurs in log. */
int testenv_count_lines(const char *log, const char *needle);

#endif
