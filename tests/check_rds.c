/*
 * check_rds — the worker's Redis client on a real io_uring port against a
 * real redis-server.
 *
 * Design note.  The harness is tests/testenv: each test gets a fresh
 * temporary directory under one base directory (removed by the runner after
 * the last test) and, when it needs one, its own redis-server (a Unix socket
 * in that directory, killed by PID in the teardown or with the test process
 * through PR_SET_PDEATHSIG).  The port and root are the worker's own
 * (uport), and the loop runs with su_root_step() until a condition holds or
 * a deadline passes.  Tests that check log lines send stderr to a file
 * meanwhile.  A plain blocking hiredis client (fine in a test, never in a
 * worker) looks at the server side.  Without redis-server the program skips
 * (exit 77).
 */
#define _GNU_SOURCE

#include "worker/rds.h"
#include "tests/testenv.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/log.h"
#include "store/store.h"

#define CONNECT_MS      2000    /* rds is up within this once the server answers */
#define BACKOFF_MAX_MS  5000    /* rds.c's reconnect backoff bound */
#define PREFIX          "test:"

static rds_t *t_rds;

/* ------------------------------------------------------------ probing redis-server */

/* One blocking command on a fresh probe connection; the reply is the caller's. */
static redisReply *probe(const char *password, int db, const char *fmt, const char *arg)
{
	redisContext *c = testenv_redis_connect(password);
	redisReply *r;

	ck_assert_ptr_nonnull(c);
	r = redisCommand(c, "SELECT %d", db);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	r = redisCommand(c, fmt, arg);
	ck_assert_ptr_nonnull(r);
	redisFree(c);
	return r;
}

static long long probe_stat(const char *password, const char *name)
{
	redisReply *r = probe(password, 0, "INFO %s", "stats");
	const char *p;
	long long v;

	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	p = strstr(r->str, name);
	ck_assert_ptr_nonnull(p);
	v = atoll(p + strlen(name) + 1);
	freeReplyObject(r);
	return v;
}

/* ------------------------------------------------------------ fixture */

static void teardown(void)
{
	testenv_log_capture_stop();
	rds_destroy(t_rds);   /* before its root */
	t_rds = NULL;
	testenv_teardown();
}

/* ------------------------------------------------------------ conditions */

static int is_up(void *arg)
{
	return rds_connected(arg);
}

static int is_down(void *arg)
{
	return !rds_connected(arg);
}

struct result {
	int done;
	int null;
	int type;
	long long integer;
	size_t len;
	char str[256];
};

static void on_result(rds_t *rds, redisReply *reply, void *arg)
{
	struct result *res = arg;

	(void)rds;
	res->done++;
	if (reply == NULL) {
		res->null = 1;
		return;
	}
	res->type = reply->type;
	res->integer = reply->integer;
	if (reply->str != NULL) {
		res->len = reply->len < sizeof res->str ? reply->len : sizeof res->str;
		memcpy(res->str, reply->str, res->len);
	}
}

static int result_done(void *arg)
{
	return ((struct result *)arg)->done > 0;
}

static rds_t *start_rds_timeout(const char *address, const char *password, int db,
				int timeout_ms)
{
	struct rds_config cfg = { .db = db, .timeout_ms = timeout_ms };
	rds_t *rds = NULL;

	snprintf(cfg.address, sizeof cfg.address, "%s", address);
	snprintf(cfg.password, sizeof cfg.password, "%s", password ? password : "");
	snprintf(cfg.prefix, sizeof cfg.prefix, "%s", PREFIX);
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), 0);
	ck_assert_ptr_nonnull(rds);
	t_rds = rds;
	return rds;
}

static rds_t *start_rds(const char *address, const char *password, int db)
{
	return start_rds_timeout(address, password, db, 0);
}

static const char *unix_address(void)
{
	static char address[160];

	snprintf(address, sizeof address, "unix:%s", testenv_redis_sock());
	return address;
}

/* SET key value then GET it back through rds; asserts both. */
static void assert_set_get(rds_t *rds, const char *key, const char *value)
{
	struct result set = { 0 };
	struct result get = { 0 };

	ck_assert_int_eq(rds_command(rds, on_result, &set, "SET %s%s %s", rds_prefix(rds), key,
				     value), 0);
	ck_assert_int_eq(rds_command(rds, on_result, &get, "GET %s%s", rds_prefix(rds), key), 0);
	ck_assert(testenv_run_until(result_done, &get, 2000));
	ck_assert_int_eq(set.done, 1);
	ck_assert_int_eq(set.type, REDIS_REPLY_STATUS);
	ck_assert_int_eq(get.type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(get.len, strlen(value));
	ck_assert(memcmp(get.str, value, get.len) == 0);
}

/* ------------------------------------------------------------ tests */

/* SET key value (binary, through rds_commandargv with lengths), then
 * STRLEN key (C strings): both answered, the length is len. */
static void assert_set_strlen(rds_t *rds, const char *key, const char *value, size_t len)
{
	struct result set = { 0 };
	struct result get = { 0 };
	const char *argv[] = { "SET", key, value };
	const size_t lens[] = { 3, strlen(key), len };
	const char *argv2[] = { "STRLEN", key };

	ck_assert_int_eq(rds_commandargv(rds, on_result, &set, 3, argv, lens), 0);
	ck_assert_int_eq(rds_commandargv(rds, on_result, &get, 2, argv2, NULL), 0);
	ck_assert(testenv_run_until(result_done, &get, 2000));
	ck_assert_int_eq(set.type, REDIS_REPLY_STATUS);
	ck_assert_int_eq(get.type, REDIS_REPLY_INTEGER);
	ck_assert_int_eq(get.integer, (long long)len);
}

START_TEST(test_set_get)
{
	static const char value[] = { 'a', '\0', 'b' };
	struct result set = { 0 };
	struct result get = { 0 };
	redisReply *r;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	ck_assert_str_eq(rds_prefix(rds), PREFIX);
	ck_assert_str_eq(rds_address(rds), unix_address());
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));

	/* Binary-safe value (%b), then read back through rds and directly. */
	ck_assert_int_eq(rds_command(rds, on_result, &set, "SET %sk1 %b", PREFIX, value,
				     sizeof value), 0);
	ck_assert_int_eq(rds_command(rds, on_result, &get, "GET %sk1", PREFIX), 0);
	ck_assert(testenv_run_until(result_done, &get, 2000));
	ck_assert_int_eq(set.type, REDIS_REPLY_STATUS);
	ck_assert_str_eq(set.str, "OK");
	ck_assert_int_eq(get.type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(get.len, sizeof value);
	ck_assert(memcmp(get.str, value, sizeof value) == 0);
	r = probe(NULL, 0, "GET %s", PREFIX "k1");
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(r->len, sizeof value);
	freeReplyObject(r);

	/* No callback: the command still runs. */
	ck_assert_int_eq(rds_command(rds, NULL, NULL, "SET %sk2 fire-and-forget", PREFIX), 0);
	memset(&get, 0, sizeof get);
	ck_assert_int_eq(rds_command(rds, on_result, &get, "GET %sk2", PREFIX), 0);
	ck_assert(testenv_run_until(result_done, &get, 2000));
	ck_assert_int_eq(get.type, REDIS_REPLY_STRING);
	ck_assert(memcmp(get.str, "fire-and-forget", get.len) == 0);

	/* An error reply is a reply, not NULL. */
	memset(&get, 0, sizeof get);
	ck_assert_int_eq(rds_command(rds, on_result, &get, "NOSUCHCOMMAND"), 0);
	ck_assert(testenv_run_until(result_done, &get, 2000));
	ck_assert_int_eq(get.null, 0);
	ck_assert_int_eq(get.type, REDIS_REPLY_ERROR);

	/* Argument vector form, with and without lengths. */
	assert_set_strlen(rds, PREFIX "k3", "x\0y", 3);
	/* A value larger than any command before it (the encoding buffer
	 * grows), then a small one again (it is reused): both arrive whole. */
	{
		static char big[100000];

		memset(big, 'z', sizeof big);
		assert_set_strlen(rds, PREFIX "k4", big, sizeof big);
	}

	/* Commands hiredis cannot frame are refused, not sent. */
	ck_assert_int_eq(rds_command(rds, on_result, &get, ""), -EINVAL);
	ck_assert_int_eq(rds_command(rds, on_result, &get, "   "), -EINVAL);
	ck_assert_int_eq(rds_commandargv(rds, on_result, &get, 0, NULL, NULL), -EINVAL);
	ck_assert(rds_connected(rds));
}
END_TEST

/* rds_resp_encode makes exactly hiredis's encoding, and says the size
 * it needs when the buffer is short, writing nothing past it. */
START_TEST(test_resp_encode)
{
	static const char bin[] = { 'x', '\0', '\r', '\n', 'y' };
	char big[20000];
	const char *argv[] = { "EVAL", "", bin, "1234567890", big };
	size_t lens[] = { 4, 0, sizeof bin, 10, sizeof big };
	char out[sizeof big + 256];
	char *want;
	int want_len;

	memset(big, 'b', sizeof big);
	for (int argc = 1; argc <= 5; argc++) {
		want_len = redisFormatCommandArgv(&want, argc, argv, lens);
		ck_assert_int_gt(want_len, 0);
		memset(out, '#', sizeof out);
		ck_assert_uint_eq(rds_resp_encode(out, sizeof out, argc, argv, lens),
				  (size_t)want_len);
		ck_assert(memcmp(out, want, (size_t)want_len) == 0);
		ck_assert_int_eq(out[want_len], '#');
		/* Too short: the needed size, nothing written past the end. */
		memset(out, '#', sizeof out);
		ck_assert_uint_eq(rds_resp_encode(out, (size_t)want_len - 1, argc, argv, lens),
				  (size_t)want_len);
		for (int i = want_len - 1; i < (int)sizeof out; i++)
			ck_assert_int_eq(out[i], '#');
		redisFreeCommand(want);
	}
	/* C strings (lens NULL), and the empty buffer only measures. */
	{
		const char *cargv[] = { "SET", "k", "v" };

		want_len = redisFormatCommandArgv(&want, 3, cargv, NULL);
		ck_assert_uint_eq(rds_resp_encode(NULL, 0, 3, cargv, NULL), (size_t)want_len);
		ck_assert_uint_eq(rds_resp_encode(out, sizeof out, 3, cargv, NULL), (size_t)want_len);
		ck_assert(memcmp(out, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", (size_t)want_len) == 0);
		redisFreeCommand(want);
	}
}
END_TEST

static long long t_incr_received;
static int t_incr_bad;

static void on_incr(rds_t *rds, redisReply *reply, void *arg)
{
	long long expected = (long long)(intptr_t)arg;

	(void)rds;
	/* The n-th callback carries the n-th command's arg and INCR's n-th value. */
	t_incr_received++;
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer != expected
	    || expected != t_incr_received)
		t_incr_bad++;
}

static int incr_done(void *arg)
{
	return t_incr_received >= (long long)(intptr_t)arg;
}

START_TEST(test_pipeline_10000)
{
	const long long n = 10000;
	redisReply *r;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	t_incr_received = 0;
	t_incr_bad = 0;
	for (long long i = 1; i <= n; i++)
		ck_assert_int_eq(rds_command(rds, on_incr, (void *)(intptr_t)i, "INCR %scounter",
					     PREFIX), 0);
	ck_assert(testenv_run_until(incr_done, (void *)(intptr_t)n, 20000));
	ck_assert_int_eq(t_incr_received, n);
	ck_assert_int_eq(t_incr_bad, 0);
	r = probe(NULL, 0, "GET %s", PREFIX "counter");
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_str_eq(r->str, "10000");
	freeReplyObject(r);
}
END_TEST

START_TEST(test_password_right)
{
	const char *const extra[] = { "--requirepass", "s3cret", NULL };
	rds_t *rds;

	testenv_redis_start(0, extra);
	rds = start_rds(unix_address(), "s3cret", 0);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	assert_set_get(rds, "pw", "right");
}
END_TEST

static int t_ups;

static void on_state_count(rds_t *rds, int connected, void *arg)
{
	(void)rds; (void)arg;
	if (connected)
		t_ups++;
}

START_TEST(test_password_wrong)
{
	const char *const extra[] = { "--requirepass", "s3cret", NULL };
	char needle[256];
	struct result res = { 0 };
	long long before, after;
	const char *log;
	rds_t *rds;

	testenv_redis_start(0, extra);
	before = probe_stat("s3cret", "total_connections_received");
	testenv_log_capture_start();
	t_ups = 0;
	rds = start_rds(unix_address(), "wrong", 0);
	rds_on_state(rds, on_state_count, NULL);
	/* Attempts at about 0, 0.1, 0.3, 0.7 and 1.5 s (backoff 100, 200, 400, 800 ms). */
	testenv_run_for(1700);
	ck_assert(!rds_connected(rds));
	ck_assert_int_eq(t_ups, 0);
	ck_assert_int_eq(rds_command(rds, on_result, &res, "PING"), -ENOTCONN);
	ck_assert_int_eq(res.done, 0);
	log = testenv_log_capture_stop();
	after = probe_stat("s3cret", "total_connections_received");

	/* Retried with backoff, logged once, clearly. */
	/* 5 attempts; fewer or many more means no backoff or the wrong one
	 * (- 1: the probe that read `before`). */
	ck_assert_int_ge(after - before - 1, 4);
	ck_assert_int_le(after - before - 1, 6);
	snprintf(needle, sizeof needle, "error: redis %s: AUTH failed: ", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "WRONGPASS"), 1);
	ck_assert_int_eq(testenv_count_lines(log, ": connected"), 0);
	ck_assert_int_eq(testenv_count_lines(log, " warn: "), 0);
}
END_TEST

START_TEST(test_db_select)
{
	redisReply *r;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 5);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	assert_set_get(rds, "dbkey", "in-db-5");
	r = probe(NULL, 5, "GET %s", PREFIX "dbkey");
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_str_eq(r->str, "in-db-5");
	freeReplyObject(r);
	r = probe(NULL, 0, "EXISTS %s", PREFIX "dbkey");
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	ck_assert_int_eq(r->integer, 0);
	freeReplyObject(r);
}
END_TEST

START_TEST(test_db_out_of_range)
{
	char needle[256];
	const char *log;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	testenv_log_capture_start();
	rds = start_rds(unix_address(), NULL, 99);   /* redis-server has 16 dbs */
	testenv_run_for(500);
	ck_assert(!rds_connected(rds));
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "error: redis %s: SELECT 99 failed: ", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
}
END_TEST

static int t_states[8];
static int t_nstates;
static struct result t_blpop;
static int t_cmd_in_null_cb;

static void on_state_record(rds_t *rds, int connected, void *arg)
{
	(void)rds; (void)arg;
	if (t_nstates < 8)
		t_states[t_nstates++] = connected;
}

/* The pending command's NULL reply: a new command from here must fail fast. */
static void on_blpop(rds_t *rds, redisReply *reply, void *arg)
{
	on_result(rds, reply, arg);
	if (reply == NULL)
		t_cmd_in_null_cb = rds_command(rds, on_result, &t_blpop, "PING");
}

static int blocked_clients(void)
{
	redisReply *r = probe(NULL, 0, "INFO %s", "clients");
	const char *p = strstr(r->str, "blocked_clients:");
	int n = p ? atoi(p + strlen("blocked_clients:")) : -1;

	freeReplyObject(r);
	return n;
}

START_TEST(test_reconnect)
{
	struct result res = { 0 };
	char needle[256];
	const char *log;
	long long t0;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	t_nstates = 0;
	rds_on_state(rds, on_state_record, NULL);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	ck_assert_int_eq(t_nstates, 1);
	ck_assert_int_eq(t_states[0], 1);

	/* A command that stays pending on the server. */
	memset(&t_blpop, 0, sizeof t_blpop);
	t_cmd_in_null_cb = 0;
	ck_assert_int_eq(rds_command(rds, on_blpop, &t_blpop, "BLPOP %squeue 0", PREFIX), 0);
	t0 = testenv_now_ms();
	while (blocked_clients() != 1 && testenv_now_ms() - t0 < 2000)
		testenv_run_for(20);
	ck_assert_int_eq(blocked_clients(), 1);

	testenv_log_capture_start();
	testenv_redis_kill();
	ck_assert(testenv_run_until(is_down, rds, 2000));
	ck_assert_int_eq(t_blpop.done, 1);
	ck_assert_int_eq(t_blpop.null, 1);
	ck_assert_int_eq(t_cmd_in_null_cb, -ENOTCONN);
	ck_assert_int_eq(t_nstates, 2);
	ck_assert_int_eq(t_states[1], 0);
	ck_assert_int_eq(rds_command(rds, on_result, &res, "PING"), -ENOTCONN);

	/* Several failed attempts, then the server comes back on the same socket. */
	testenv_run_for(1500);
	ck_assert(!rds_connected(rds));
	testenv_redis_start(0, NULL);
	t0 = testenv_now_ms();
	ck_assert(testenv_run_until(is_up, rds, BACKOFF_MAX_MS + 1000));
	ck_assert_int_le(testenv_now_ms() - t0, BACKOFF_MAX_MS + 1000);
	ck_assert_int_eq(t_nstates, 3);
	ck_assert_int_eq(t_states[2], 1);
	assert_set_get(rds, "again", "works");
	log = testenv_log_capture_stop();

	/* One warning for the whole outage, one line when it is over. */
	snprintf(needle, sizeof needle, "warn: redis %s: connection lost: ", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, " warn: "), 1);
	snprintf(needle, sizeof needle, "info: redis %s: connected (down ", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
}
END_TEST

START_TEST(test_tcp)
{
	int port = testenv_free_port();
	char address[64];
	const char *const extra[] = { "--bind", "127.0.0.1", NULL };
	rds_t *rds;

	snprintf(address, sizeof address, "127.0.0.1:%d", port);
	testenv_redis_start(port, extra);
	rds = start_rds(address, NULL, 0);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	assert_set_get(rds, "tcp", "over-loopback");
}
END_TEST

/* A server that accepts the connection (the kernel's backlog does) but
 * never answers: the handshake deadline drops it and rds retries. */
START_TEST(test_handshake_timeout)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)
	};
	socklen_t len = sizeof sa;
	char address[64];
	char needle[128];
	const char *log;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	rds_t *rds;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(address, sizeof address, "127.0.0.1:%d", ntohs(sa.sin_port));
	testenv_log_capture_start();
	rds = start_rds(address, NULL, 0);
	testenv_run_for(2600);
	ck_assert(!rds_connected(rds));
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "warn: redis %s: cannot connect: no answer within ",
		 address);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	close(fd);
}
END_TEST

START_TEST(test_no_server)
{
	char needle[256];
	const char *log;
	rds_t *rds;

	testenv_log_capture_start();
	rds = start_rds(unix_address(), NULL, 0);   /* nothing listens there */
	testenv_run_for(800);
	ck_assert(!rds_connected(rds));
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "warn: redis %s: cannot connect: ", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "redis "), 1);
}
END_TEST

static void on_destroy_rds(rds_t *rds, redisReply *reply, void *arg)
{
	on_result(rds, reply, arg);
	rds_destroy(rds);
	t_rds = NULL;
}

START_TEST(test_destroy_in_reply)
{
	struct result first = { 0 };
	struct result second = { 0 };
	struct result third = { 0 };
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	ck_assert_int_eq(rds_command(rds, on_destroy_rds, &first, "PING"), 0);
	ck_assert_int_eq(rds_command(rds, on_result, &second, "PING"), 0);
	ck_assert_int_eq(rds_command(rds, on_result, &third, "BLPOP %snothing 0", PREFIX), 0);
	ck_assert(testenv_run_until(result_done, &third, 2000));
	ck_assert_ptr_null(t_rds);
	ck_assert_int_eq(first.done, 1);
	ck_assert_int_eq(first.null, 0);
	/* Everything after the destroy: exactly once, NULL. */
	ck_assert_int_eq(second.done, 1);
	ck_assert_int_eq(second.null, 1);
	ck_assert_int_eq(third.done, 1);
	ck_assert_int_eq(third.null, 1);
	testenv_run_for(200);   /* nothing of it is left on the loop */
	ck_assert_int_eq(second.done, 1);
}
END_TEST

static void on_state_destroy(rds_t *rds, int connected, void *arg)
{
	(void)arg;
	if (!connected) {
		rds_destroy(rds);
		t_rds = NULL;
	}
}

START_TEST(test_destroy_when_down)
{
	struct result res = { 0 };
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	rds_on_state(rds, on_state_destroy, NULL);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	ck_assert_int_eq(rds_command(rds, on_result, &res, "BLPOP %snothing 0", PREFIX), 0);
	testenv_run_for(100);
	testenv_redis_kill();
	ck_assert(testenv_run_until(result_done, &res, 2000));
	ck_assert_int_eq(res.null, 1);
	testenv_run_for(300);   /* no reconnect timer of a freed rds fires */
	ck_assert_ptr_null(t_rds);
}
END_TEST

/* ------------------------------------------------------------ deadlines */

static int t_nstate_calls;

static void on_state_tally(rds_t *rds, int connected, void *arg)
{
	(void)rds; (void)connected; (void)arg;
	t_nstate_calls++;
}

static int all_done(void *arg)
{
	struct result *res = arg;

	return res[0].done > 0 && res[1].done > 0 && res[2].done > 0;
}

/*
 * A real redis-server that hangs with the connection open (SIGSTOP): every
 * pending command fails with NULL, exactly once, after redis_timeout and
 * not before; the connection is dropped (one warning), commands are refused
 * meanwhile, and rds comes back by itself once the server does.
 */
START_TEST(test_deadline_hung_server)
{
	struct result res[3] = { { 0 } };
	struct result late = { 0 };
	char needle[256];
	const char *log;
	long long t0, took;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds_timeout(unix_address(), NULL, 0, 300);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	assert_set_get(rds, "before", "hang");

	testenv_log_capture_start();
	testenv_redis_signal(SIGSTOP);
	t0 = testenv_now_ms();
	ck_assert_int_eq(rds_command(rds, on_result, &res[0], "PING"), 0);
	ck_assert_int_eq(rds_command(rds, NULL, NULL, "SET %sx 1", PREFIX), 0);
	testenv_run_for(150);   /* a later command does not get a later deadline */
	ck_assert_int_eq(rds_command(rds, on_result, &res[1], "GET %sx", PREFIX), 0);
	ck_assert_int_eq(rds_command(rds, on_result, &res[2], "PING"), 0);
	ck_assert(testenv_run_until(all_done, res, 2000));
	took = testenv_now_ms() - t0;
	ck_assert_int_ge(took, 300);
	ck_assert_int_le(took, 450);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].null, 1);
	ck_assert(!rds_connected(rds));
	ck_assert_int_eq(rds_command(rds, on_result, &late, "PING"), -ENOTCONN);

	/* Still hung: attempts fail (handshake deadline) without a second warning. */
	testenv_run_for(1000);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].done, 1);
	testenv_redis_signal(SIGCONT);
	ck_assert(testenv_run_until(is_up, rds, BACKOFF_MAX_MS + 2500));
	assert_set_get(rds, "after", "resumed");
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "warn: redis %s: no reply within 300 ms", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, " warn: "), 1);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].done, 1);
}
END_TEST

/* Replies that come within the deadline never trip it, however long the
 * connection lives: the one timer follows the oldest command. */
START_TEST(test_deadline_not_tripped)
{
	struct result res;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds_timeout(unix_address(), NULL, 0, 100);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	t_nstate_calls = 0;
	rds_on_state(rds, on_state_tally, NULL);
	for (int i = 0; i < 20; i++) {
		memset(&res, 0, sizeof res);
		ck_assert_int_eq(rds_command(rds, on_result, &res, "PING"), 0);
		ck_assert(testenv_run_until(result_done, &res, 1000));
		ck_assert_int_eq(res.null, 0);
		testenv_run_for(40);
	}
	ck_assert(rds_connected(rds));
	ck_assert_int_eq(t_nstate_calls, 0);
}
END_TEST

/* rds_close: what waits on a hung server is answered (NULL) before it
 * returns, nothing more is taken, no reconnect, no state callback. */
START_TEST(test_close_pending)
{
	struct result res[3] = { { 0 } };
	struct result late = { 0 };
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	t_nstate_calls = 0;
	rds_on_state(rds, on_state_tally, NULL);
	testenv_redis_signal(SIGSTOP);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(rds_command(rds, on_result, &res[i], "PING"), 0);
	testenv_run_for(50);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].done, 0);
	rds_close(rds);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(res[i].done, 1);
		ck_assert_int_eq(res[i].null, 1);
	}
	ck_assert(!rds_connected(rds));
	ck_assert_int_eq(rds_command(rds, on_result, &late, "PING"), -ENOTCONN);
	testenv_redis_signal(SIGCONT);
	testenv_run_for(600);   /* past the first backoff: still closed */
	ck_assert(!rds_connected(rds));
	ck_assert_int_eq(t_nstate_calls, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(res[i].done, 1);
}
END_TEST

static void assert_bad_config(const char *address, int db)
{
	struct rds_config cfg = { .db = db };
	rds_t *rds = NULL;

	snprintf(cfg.address, sizeof cfg.address, "%s", address);
	ck_assert_msg(rds_create(testenv_root(), &cfg, &rds) == -EINVAL,
		      "address \"%s\" db %d accepted", address, db);
	ck_assert_ptr_null(rds);
}

START_TEST(test_config)
{
	static const char *const good[] = {
		"127.0.0.1:6390", "[::1]:6390", "unix:/nonexistent/redis.sock",
	};
	static const char *const bad[] = {
		"", "unix:", "localhost:6379", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
		"127.0.0.1:65536", "127.0.0.1:12x", "127.0.0.1:+1", "::1:6379", "[::1]",
		"[127.0.0.1]:6379", ":6379", "[]:6379",
	};
	struct rds_config cfg = { 0 };
	char longpath[200];
	rds_t *rds;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_bad_config(bad[i], 0);
	assert_bad_config("127.0.0.1:6390", -1);
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[sizeof longpath - 1] = '\0';
	memcpy(longpath, "unix:/", 6);
	assert_bad_config(longpath, 0);

	/* Not NUL-terminated inside its array. */
	memset(cfg.prefix, 'p', sizeof cfg.prefix);
	snprintf(cfg.address, sizeof cfg.address, "127.0.0.1:6390");
	rds = NULL;
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), -EINVAL);

	log_set_level(LOG_ERROR);   /* these connect to nothing: no warnings wanted */
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		rds = start_rds(good[i], NULL, 0);
		ck_assert(!rds_connected(rds));
		testenv_run_for(50);
		rds_destroy(rds);
		t_rds = NULL;
	}
	log_set_level(LOG_INFO);
}
END_TEST

/* ------------------------------------------------------------ Sentinel and ROLE */

/* The pure reading of sentinel addresses (config and rds share it). */
START_TEST(test_sentinel_parse)
{
	static const char *const good[] = { "127.0.0.1:26379", "[::1]:26379", "10.0.0.9:1" };
	static const char *const bad[] = {
		"unix:/run/sentinel.sock", "sentinel.example.net:26379", "127.0.0.1",
		"127.0.0.1:65536", "[::1]", "", "127.0.0.1:26379x",
	};
	struct store_address a;
	const char *why;
	char text[STORE_ADDRESS_TEXT_MAX];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ck_assert_msg(store_sentinel_parse(good[i], &a, NULL) == 0, "%s", good[i]);
		store_address_format(&a, text, sizeof text);
		ck_assert_str_eq(text, good[i]);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		ck_assert_msg(store_sentinel_parse(bad[i], &a, &why) == -EINVAL, "%s", bad[i]);
		ck_assert_ptr_nonnull(why);
	}
}
END_TEST

/* A hand-made reply: type, and for an array up to two string elements. */
struct fake_reply {
	redisReply r;
	redisReply e[2];
	redisReply *ep[2];
};

static redisReply *fake(struct fake_reply *f, int type, const char *s0, const char *s1)
{
	memset(f, 0, sizeof *f);
	f->r.type = type;
	if (type == REDIS_REPLY_ERROR || type == REDIS_REPLY_STRING) {
		f->r.str = (char *)s0;
		f->r.len = strlen(s0);
	}
	if (type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < 2; i++) {
			const char *v = i == 0 ? s0 : s1;

			if (v == NULL)
				break;
			f->e[i].type = REDIS_REPLY_STRING;
			f->e[i].str = (char *)v;
			f->e[i].len = strlen(v);
			f->ep[i] = &f->e[i];
			f->r.elements = i + 1;
		}
		f->r.element = f->ep;
	}
	return &f->r;
}

START_TEST(test_sentinel_answer)
{
	struct fake_reply f;
	struct store_address a;
	char why[200];
	const char *role;

	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "10.0.0.2", "6380"),
					       &a, why, sizeof why), 0);
	ck_assert_str_eq(a.host, "10.0.0.2");
	ck_assert_int_eq(a.port, 6380);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "2001:db8::5", "7000"),
					       &a, why, sizeof why), 0);
	ck_assert_str_eq(a.host, "2001:db8::5");
	ck_assert_int_eq(a.port, 7000);

	/* Nonsense of every kind is refused, with the reason for the log. */
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_NIL, NULL, NULL), &a, why,
					       sizeof why), -ENOENT);
	ck_assert(strstr(why, "nil") != NULL);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ERROR, "ERR unknown command",
						    NULL), &a, why, sizeof why), -EBADMSG);
	ck_assert(strstr(why, "ERR unknown command") != NULL);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_STRING, "10.0.0.2:6380", NULL),
					       &a, why, sizeof why), -EBADMSG);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "10.0.0.2", NULL),
					       &a, why, sizeof why), -EBADMSG);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "redis.example", "1"),
					       &a, why, sizeof why), -EBADMSG);
	ck_assert(strstr(why, "redis.example") != NULL);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "10.0.0.2", "0"),
					       &a, why, sizeof why), -EBADMSG);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "10.0.0.2", "6x"),
					       &a, why, sizeof why), -EBADMSG);
	ck_assert_int_eq(store_sentinel_answer(fake(&f, REDIS_REPLY_ARRAY, "10.0.0.2:1", "6"),
					       &a, why, sizeof why), -EBADMSG);
	fake(&f, REDIS_REPLY_ARRAY, "10.0.0.2", "6380");
	f.e[1].type = REDIS_REPLY_INTEGER;
	ck_assert_int_eq(store_sentinel_answer(&f.r, &a, why, sizeof why), -EBADMSG);
	ck_assert_int_eq(store_sentinel_answer(NULL, &a, why, sizeof why), -EBADMSG);

	/* ROLE: only "master" is a primary. */
	ck_assert_int_eq(store_role_is_master(fake(&f, REDIS_REPLY_ARRAY, "master", "0"), &role), 1);
	ck_assert_int_eq(store_role_is_master(fake(&f, REDIS_REPLY_ARRAY, "slave", "x"), &role), 0);
	ck_assert(strstr(role, "slave") != NULL);
	ck_assert_int_eq(store_role_is_master(fake(&f, REDIS_REPLY_ARRAY, "sentinel", NULL),
					      &role), 0);
	ck_assert_int_eq(store_role_is_master(fake(&f, REDIS_REPLY_ERROR, "ERR", NULL), &role), 0);
	ck_assert_int_eq(store_role_is_master(fake(&f, REDIS_REPLY_STRING, "master", NULL),
					      &role), 0);
	ck_assert_int_eq(store_role_is_master(NULL, NULL), 0);
}
END_TEST

/* A replica is never "up": ROLE says slave, one error line per outage. */
START_TEST(test_role_replica)
{
	char replicaof[16], needle[256];
	const char *const extra[] = { "--replicaof", "127.0.0.1", replicaof, NULL };
	const char *log;
	rds_t *rds;

	snprintf(replicaof, sizeof replicaof, "%d", testenv_free_port());
	testenv_redis_start(0, extra);
	testenv_log_capture_start();
	rds = start_rds(unix_address(), NULL, 0);
	testenv_run_for(1000);
	ck_assert(!rds_connected(rds));
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "error: redis %s: ROLE is slave (a replica), not master",
		 unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "connected"), 0);
}
END_TEST

/* The primary becomes a replica under us: the READONLY reply still goes to
 * its command (once), rds drops the connection, logs it once, does not come
 * up while the server is a replica, and comes back once it is a primary. */
START_TEST(test_readonly_drops)
{
	struct result res[3] = { 0 };
	char port[16], needle[256];
	redisContext *c;
	redisReply *r;
	const char *log;
	rds_t *rds;

	testenv_redis_start(0, NULL);
	rds = start_rds(unix_address(), NULL, 0);
	ck_assert(testenv_run_until(is_up, rds, CONNECT_MS));
	c = testenv_redis_connect(NULL);
	ck_assert_ptr_nonnull(c);
	snprintf(port, sizeof port, "%d", testenv_free_port());
	r = redisCommand(c, "REPLICAOF 127.0.0.1 %s", port);
	ck_assert_ptr_nonnull(r);
	freeReplyObject(r);
	testenv_log_capture_start();
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(rds_command(rds, on_result, &res[i], "SET k%d v", i), 0);
	ck_assert(testenv_run_until(result_done, &res[2], 2000));
	ck_assert(testenv_run_until(is_down, rds, 500));
	/* The first gets its READONLY; the others theirs, or NULL when their
	 * replies had not been read when the connection was dropped. */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(res[i].done, 1);
		ck_assert(i > 0 || !res[i].null);
		ck_assert(res[i].null || (res[i].type == REDIS_REPLY_ERROR &&
					  strncmp(res[i].str, "READONLY", 8) == 0));
	}
	testenv_run_for(800);
	ck_assert(!rds_connected(rds));
	r = redisCommand(c, "REPLICAOF NO ONE");
	ck_assert_ptr_nonnull(r);
	freeReplyObject(r);
	ck_assert(testenv_run_until(is_up, rds, BACKOFF_MAX_MS + 1000));
	log = testenv_log_capture_stop();
	redisFree(c);
	snprintf(needle, sizeof needle, "warn: redis %s: answered \"READONLY", unix_address());
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "ROLE is slave"), 1);
	assert_set_get(rds, "back", "primary");
}
END_TEST

static rds_t *start_rds_sentinels(const char *const *sentinels, size_t n, const char *master)
{
	struct rds_config cfg = { .db = 0 };
	rds_t *rds = NULL;

	cfg.n_sentinels = n;
	for (size_t i = 0; i < n; i++)
		snprintf(cfg.sentinels[i], sizeof cfg.sentinels[i], "%s", sentinels[i]);
	snprintf(cfg.master_name, sizeof cfg.master_name, "%s", master);
	snprintf(cfg.prefix, sizeof cfg.prefix, "%s", PREFIX);
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), 0);
	t_rds = rds;
	return rds;
}

/* Sentinels that answer nonsense (a plain redis-server) or nothing (no
 * listener): each is logged once per outage with its address and what was
 * wrong, rounds go on (backoff at most 500 ms), commands get -ENOTCONN. */
START_TEST(test_sentinel_nonsense)
{
	int port = testenv_free_port();
	const char *const extra[] = { "--bind", "127.0.0.1", NULL };
	char fake[64], dead[64], needle[256];
	const char *const list[] = { fake, dead };
	struct result res = { 0 };
	const char *log;
	rds_t *rds;

	snprintf(fake, sizeof fake, "127.0.0.1:%d", port);
	snprintf(dead, sizeof dead, "127.0.0.1:%d", testenv_free_port());
	testenv_redis_start(port, extra);
	testenv_log_capture_start();
	rds = start_rds_sentinels(list, 2, "b2bua");
	ck_assert_str_eq(rds_address(rds), "master b2bua");
	testenv_run_for(2500);
	ck_assert(!rds_connected(rds));
	ck_assert_int_eq(rds_command(rds, on_result, &res, "PING"), -ENOTCONN);
	log = testenv_log_capture_stop();
	snprintf(needle, sizeof needle, "warn: redis sentinel %s (master b2bua): answered an "
		 "error: ERR unknown command", fake);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	snprintf(needle, sizeof needle, "warn: redis sentinel %s (master b2bua): cannot connect",
		 dead);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	ck_assert_int_eq(testenv_count_lines(log, "no sentinel of 2 named a usable primary"), 1);
	/* Several rounds ran meanwhile (the fake server saw them). */
	ck_assert_int_ge(probe_stat(NULL, "total_connections_received"), 4);
}
END_TEST

/* A real sentinel (redis-server --sentinel) on 127.0.0.1:port, monitoring
 * master "b2bua" at 127.0.0.1:master_port with quorum 1; killed by PID by
 * the caller (and with the test process in any case). */
static pid_t start_sentinel(int port, int master_port)
{
	char conf[512];
	long long deadline = testenv_now_ms() + TESTENV_REDIS_START_MS;
	FILE *f;
	pid_t pid;

	snprintf(conf, sizeof conf, "%s/sentinel.conf", testenv_dir());
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "bind 127.0.0.1\nport %d\ndaemonize no\ndir %s\n"
		"sentinel monitor b2bua 127.0.0.1 %d 1\n", port, testenv_dir(), master_port);
	fclose(f);
	pid = testenv_fork(-1);
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execlp("redis-server", "redis-server", conf, "--sentinel", (char *)NULL);
		_exit(127);
	}
	while (testenv_now_ms() < deadline) {
		redisContext *c = redisConnect("127.0.0.1", port);
		redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
		int ok = r != NULL && r->type == REDIS_REPLY_STATUS;

		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (ok)
			return pid;
		usleep(20000);
	}
	ck_abort_msg("redis-server --sentinel did not answer on port %d", port);
	return -1;
}

/* A real sentinel names a server whose ROLE is slave: skipped (logged once,
 * with the sentinel and what it named); once that server is promoted, rds
 * comes up on it and says through which sentinel. */
START_TEST(test_sentinel_names_replica)
{
	int rport = testenv_free_port(), sport = testenv_free_port();
	char dead[16], sentinel[64], needle[256];
	const char *const extra[] = { "--bind", "127.0.0.1", "--replicaof", "127.0.0.1", dead,
				      NULL };
	const char *const list[] = { sentinel };
	redisContext *c;
	redisReply *r;
	const char *log;
	rds_t *rds;
	pid_t spid;

	snprintf(dead, sizeof dead, "%d", testenv_free_port());
	snprintf(sentinel, sizeof sentinel, "127.0.0.1:%d", sport);
	testenv_redis_start(rport, extra);
	spid = start_sentinel(sport, rport);
	testenv_log_capture_start();
	rds = start_rds_sentinels(list, 1, "b2bua");
	testenv_run_for(1500);
	ck_assert(!rds_connected(rds));
	c = testenv_redis_connect(NULL);
	ck_assert_ptr_nonnull(c);
	r = redisCommand(c, "REPLICAOF NO ONE");
	ck_assert_ptr_nonnull(r);
	freeReplyObject(r);
	redisFree(c);
	ck_assert(testenv_run_until(is_up, rds, 2000));
	log = testenv_log_capture_stop();
	kill(spid, SIGKILL);
	waitpid(spid, NULL, 0);
	snprintf(needle, sizeof needle, "warn: redis sentinel %s (master b2bua): named "
		 "127.0.0.1:%d, whose ROLE is slave (a replica): skipped", sentinel, rport);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	snprintf(needle, sizeof needle, "info: redis primary 127.0.0.1:%d (via sentinel %s, "
		 "master b2bua): connected (down ", rport, sentinel);
	ck_assert_int_eq(testenv_count_lines(log, needle), 1);
	snprintf(needle, sizeof needle, "127.0.0.1:%d", rport);
	ck_assert_str_eq(rds_address(rds), needle);
	assert_set_get(rds, "via", "sentinel");
}
END_TEST

START_TEST(test_sentinel_config)
{
	struct rds_config cfg = { .db = 0 };
	rds_t *rds = NULL;

	cfg.n_sentinels = 1;
	snprintf(cfg.sentinels[0], sizeof cfg.sentinels[0], "127.0.0.1:26379");
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), -EINVAL);   /* no master */
	snprintf(cfg.master_name, sizeof cfg.master_name, "b2bua");
	snprintf(cfg.sentinels[0], sizeof cfg.sentinels[0], "unix:/tmp/s.sock");
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), -EINVAL);
	snprintf(cfg.sentinels[0], sizeof cfg.sentinels[0], "localhost:26379");
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), -EINVAL);
	cfg.n_sentinels = RDS_SENTINELS_MAX + 1;
	ck_assert_int_eq(rds_create(testenv_root(), &cfg, &rds), -EINVAL);
	ck_assert_ptr_null(rds);
}
END_TEST

static Suite *rds_suite(void)
{
	Suite *s = suite_create("rds");
	TCase *tc = tcase_create("redis");

	tcase_add_unchecked_fixture(tc, testenv_base_setup, testenv_base_teardown);
	tcase_add_checked_fixture(tc, testenv_setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_config);
	tcase_add_test(tc, test_resp_encode);
	tcase_add_test(tc, test_no_server);
	tcase_add_test(tc, test_set_get);
	tcase_add_test(tc, test_pipeline_10000);
	tcase_add_test(tc, test_password_right);
	tcase_add_test(tc, test_password_wrong);
	tcase_add_test(tc, test_db_select);
	tcase_add_test(tc, test_db_out_of_range);
	tcase_add_test(tc, test_reconnect);
	tcase_add_test(tc, test_tcp);
	tcase_add_test(tc, test_handshake_timeout);
	tcase_add_test(tc, test_destroy_in_reply);
	tcase_add_test(tc, test_destroy_when_down);
	tcase_add_test(tc, test_deadline_hung_server);
	tcase_add_test(tc, test_deadline_not_tripped);
	tcase_add_test(tc, test_close_pending);
	tcase_add_test(tc, test_sentinel_parse);
	tcase_add_test(tc, test_sentinel_answer);
	tcase_add_test(tc, test_role_replica);
	tcase_add_test(tc, test_readonly_drops);
	tcase_add_test(tc, test_sentinel_nonsense);
	tcase_add_test(tc, test_sentinel_names_replica);
	tcase_add_test(tc, test_sentinel_config);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testenv_main("check_rds", rds_suite);
}
