/*
 * check_notify — what the master tells systemd (b2bua/notify.h), read from
 * a real AF_UNIX datagram socket named by NOTIFY_SOCKET, as systemd would.
 * Time is given to notify by the test, so every round and every grace is
 * exact: READY only once every child was heard from since its fork, the
 * watchdog rule (a silent worker stops the feeding, a dead one has its
 * grace), STOPPING, RELOADING, and nothing at all without NOTIFY_SOCKET.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "b2bua/log.h"
#include "b2bua/notify.h"

#define ROUND_MS 500   /* WATCHDOG_USEC=1000000: a round is half of it */

static char sock_path[108];
static int sock_fd = -1;

static void setup(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sock_path, sizeof sock_path, "/tmp/check_notify.%d.sock", (int)getpid());
	unlink(sock_path);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
	sock_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(sock_fd, 0);
	ck_assert_int_eq(bind(sock_fd, (struct sockaddr *)&sun, sizeof sun), 0);
	setenv("NOTIFY_SOCKET", sock_path, 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	unsetenv("WATCHDOG_PID");
	log_set_level(LOG_ERROR);
}

static void teardown(void)
{
	close(sock_fd);
	unlink(sock_path);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
}

/* Everything received since the last call, datagrams joined by "|". */
static const char *received(void)
{
	static char all[4096];
	char buf[512];
	ssize_t n;

	all[0] = '\0';
	while ((n = recv(sock_fd, buf, sizeof buf - 1, 0)) > 0) {
		buf[n] = '\0';
		if (all[0])
			strncat(all, "|", sizeof all - strlen(all) - 1);
		strncat(all, buf, sizeof all - strlen(all) - 1);
	}
	return all;
}

/* Two workers and the management process, forked at `t`. */
static notify_t *start_two(uint64_t t)
{
	notify_t *n;

	ck_assert_int_eq(notify_create(2, t, &n), 0);
	notify_started(n, NOTIFY_MGMT, t);
	notify_started(n, 0, t);
	notify_started(n, 1, t);
	return n;
}

/* Every running child answers the round's ping at `t`, as the master reports. */
static void all_heard(notify_t *n, uint64_t t)
{
	notify_heard(n, NOTIFY_MGMT, t);
	notify_heard(n, 0, t);
	notify_heard(n, 1, t);
}

START_TEST(test_ready_waits_for_every_child)
{
	notify_t *n = start_two(1000);

	ck_assert(notify_enabled(n));
	ck_assert_uint_eq(notify_watchdog_ms(n), 1000);
	ck_assert_str_eq(received(), "STATUS=starting 2 workers");
	/* Pinged every NOTIFY_START_PING_MS while someone is awaited. */
	ck_assert_int_eq(notify_ping_due(n, 1000 + NOTIFY_START_PING_MS), 1);
	ck_assert_int_eq(notify_next_ms(n, 1000 + NOTIFY_START_PING_MS), NOTIFY_START_PING_MS);
	notify_heard(n, NOTIFY_MGMT, 1150);
	notify_heard(n, 0, 1160);
	ck_assert_str_eq(received(), "");
	/* Heard before its fork: not this process (a predecessor's message). */
	notify_started(n, 1, 1200);
	notify_heard(n, 1, 1170);
	ck_assert_str_eq(received(), "");
	notify_heard(n, 1, 1210);
	ck_assert_str_eq(received(), "READY=1\nSTATUS=ready: 2 workers");
	/* Once only. */
	all_heard(n, 1220);
	ck_assert_str_eq(received(), "");
	/* Nobody awaited: the next ping is the round's. */
	ck_assert_int_eq(notify_next_ms(n, 1220), 1000 + ROUND_MS - 1220);
	notify_destroy(n);
}
END_TEST

START_TEST(test_watchdog_fed_while_all_answer)
{
	notify_t *n = start_two(1000);
	uint64_t t = 1000;

	all_heard(n, 1010);
	received();
	for (int i = 1; i <= 3; i++) {
		t = 1000 + (uint64_t)i * ROUND_MS;
		ck_assert_int_eq(notify_ping_due(n, t - 1), 0);
		ck_assert_int_eq(notify_ping_due(n, t), 1);
		ck_assert_str_eq(received(), "WATCHDOG=1");
		all_heard(n, t + 5);
	}
	notify_destroy(n);
}
END_TEST

START_TEST(test_hung_worker_stops_feeding)
{
	notify_t *n = start_two(1000);

	all_heard(n, 1010);
	ck_assert_int_eq(notify_ping_due(n, 1500), 1);
	received();
	/* Worker 1 does not answer the ping of 1500. */
	notify_heard(n, NOTIFY_MGMT, 1505);
	notify_heard(n, 0, 1505);
	ck_assert_int_eq(notify_ping_due(n, 2000), 1);
	ck_assert_str_eq(received(), "STATUS=worker 1 not answering");
	notify_heard(n, 0, 2005);
	ck_assert_int_eq(notify_ping_due(n, 2500), 1);
	ck_assert_str_eq(received(), "");
	/* It answers again: fed at the end of the round, and STATUS says so. */
	all_heard(n, 2600);
	ck_assert_int_eq(notify_ping_due(n, 3000), 1);
	ck_assert_str_eq(received(), "WATCHDOG=1|STATUS=ready: 2 workers");
	notify_destroy(n);
}
END_TEST

/* A silent management process does not stop the feeding (notify.h). */
START_TEST(test_mgmt_not_in_watchdog)
{
	notify_t *n = start_two(1000);

	all_heard(n, 1010);
	notify_ping_due(n, 1500);
	received();
	notify_heard(n, 0, 1505);
	notify_heard(n, 1, 1505);
	ck_assert_int_eq(notify_ping_due(n, 2000), 1);
	ck_assert_str_eq(received(), "WATCHDOG=1");
	notify_destroy(n);
}
END_TEST

START_TEST(test_restart_grace)
{
	notify_t *n = start_two(1000);
	uint64_t died = 1600, t;

	all_heard(n, 1010);
	notify_ping_due(n, 1500);
	all_heard(n, 1505);
	received();
	notify_died(n, 1, died);
	ck_assert_str_eq(received(), "STATUS=worker 1 restarting");
	/* Dead, then forked again and dying again: one grace from the first death. */
	notify_started(n, 1, 1700);
	notify_died(n, 1, 1800);
	notify_started(n, 1, 1900);
	received();
	for (t = 2000; t < died + NOTIFY_RESTART_GRACE_MS; t += ROUND_MS) {
		ck_assert_int_eq(notify_ping_due(n, t), 1);
		ck_assert_str_eq(received(), "WATCHDOG=1");
		notify_heard(n, 0, t + 1);
	}
	/* The grace is over and worker 1 was never heard from: no more feeding. */
	ck_assert_int_eq(notify_ping_due(n, t), 1);
	ck_assert_str_eq(received(), "STATUS=worker 1 not answering");
	notify_destroy(n);
}
END_TEST

START_TEST(test_restarted_worker_heard_ends_grace)
{
	notify_t *n = start_two(1000);

	all_heard(n, 1010);
	notify_died(n, 0, 1100);
	notify_started(n, 0, 1200);
	received();
	notify_heard(n, 0, 1300);
	ck_assert_str_eq(received(), "STATUS=ready: 2 workers");
	notify_ping_due(n, 1500);
	received();
	/* Heard once, then silent: no grace any more. */
	notify_heard(n, 1, 1505);
	ck_assert_int_eq(notify_ping_due(n, 2000), 1);
	ck_assert_str_eq(received(), "STATUS=worker 0 not answering");
	notify_destroy(n);
}
END_TEST

START_TEST(test_stopping)
{
	notify_t *n = start_two(1000);

	all_heard(n, 1010);
	received();
	notify_stopping(n, 12);
	ck_assert_str_eq(received(), "STOPPING=1\nSTATUS=draining: 12 calls");
	notify_stopping(n, 12);
	notify_draining(n, 12);
	ck_assert_str_eq(received(), "");
	notify_draining(n, 3);
	ck_assert_str_eq(received(), "STATUS=draining: 3 calls");
	/* Workers leave as they finish: no "restarting", and the feeding goes on. */
	notify_died(n, 0, 1200);
	notify_died(n, 1, 1300);
	ck_assert_str_eq(received(), "");
	ck_assert_int_eq(notify_ping_due(n, 1000 + 40 * ROUND_MS), 0);
	ck_assert_str_eq(received(), "WATCHDOG=1");
	/* A reload's READY=1 is not sent once stopping. */
	notify_ready(n);
	ck_assert_str_eq(received(), "");
	notify_destroy(n);
}
END_TEST

START_TEST(test_reload)
{
	notify_t *n = start_two(1000);
	const char *r;

	received();
	/* Before the first READY a reload must not say READY. */
	notify_reloading(n);
	r = received();
	ck_assert_msg(strncmp(r, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0, "got %s", r);
	notify_ready(n);
	ck_assert_str_eq(received(), "");
	all_heard(n, 1010);
	ck_assert_str_eq(received(), "READY=1\nSTATUS=ready: 2 workers");
	notify_reloading(n);
	received();
	notify_ready(n);
	ck_assert_str_eq(received(), "READY=1\nSTATUS=ready: 2 workers");
	notify_destroy(n);
}
END_TEST

/* Without NOTIFY_SOCKET: nothing sent, no pings asked for. */
START_TEST(test_not_under_systemd)
{
	notify_t *n;

	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(notify_create(2, 1000, &n), 0);
	ck_assert(!notify_enabled(n));
	ck_assert_uint_eq(notify_watchdog_ms(n), 0);
	notify_started(n, 0, 1000);
	notify_started(n, 1, 1000);
	notify_started(n, NOTIFY_MGMT, 1000);
	ck_assert_int_eq(notify_ping_due(n, 100000), 0);
	ck_assert_int_eq(notify_next_ms(n, 100000), -1);
	all_heard(n, 1010);
	notify_stopping(n, 1);
	notify_reloading(n);
	notify_ready(n);
	ck_assert_str_eq(received(), "");
	notify_destroy(n);
}
END_TEST

/* Under systemd without a watchdog: STATUS rounds of NOTIFY_ROUND_MS, no WATCHDOG=1. */
START_TEST(test_no_watchdog)
{
	notify_t *n;

	unsetenv("WATCHDOG_USEC");
	ck_assert_int_eq(notify_create(1, 1000, &n), 0);
	ck_assert_uint_eq(notify_watchdog_ms(n), 0);
	notify_started(n, 0, 1000);
	notify_started(n, NOTIFY_MGMT, 1000);
	notify_heard(n, 0, 1010);
	notify_heard(n, NOTIFY_MGMT, 1010);
	received();
	ck_assert_int_eq(notify_next_ms(n, 1010), NOTIFY_ROUND_MS - 10);
	ck_assert_int_eq(notify_ping_due(n, 1000 + NOTIFY_ROUND_MS), 1);
	ck_assert_str_eq(received(), "");
	notify_destroy(n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ready_waits_for_every_child);
	tcase_add_test(tc, test_watchdog_fed_while_all_answer);
	tcase_add_test(tc, test_hung_worker_stops_feeding);
	tcase_add_test(tc, test_mgmt_not_in_watchdog);
	tcase_add_test(tc, test_restart_grace);
	tcase_add_test(tc, test_restarted_worker_heard_ends_grace);
	tcase_add_test(tc, test_stopping);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_not_under_systemd);
	tcase_add_test(tc, test_no_watchdog);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
