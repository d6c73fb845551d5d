/*
 * check_uport — the io_uring Sofia port: timers fire on time, sockets are
 * served level-triggered (a burst is read to the last datagram), a removed
 * registration never calls back, non-Sofia waiters share the ring, a
 * detached socket is served only through uport_wake_fd, the loop hooks run
 * every turn, a multishot operation stays armed, and deferred work runs
 * once, before the loop waits.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>

#include <liburing.h>

#include "worker/uport.h"

static su_root_t *root;
static uport_t *port;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void setup(void)
{
	ck_assert_int_eq(su_init(), 0);
	ck_assert_int_eq(uport_create(256, &port), 0);
	root = uport_root_create(port, NULL);
	ck_assert_ptr_nonnull(root);
}

static void teardown(void)
{
	su_root_destroy(root);
	su_deinit();
}

/* Run the loop until *flag or `ms` elapsed. */
static void run_until(const int *flag, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (!*flag && now_ms() < end)
		su_root_step(root, 10);
}

/* ------------------------------------------------------------ timers */

struct fired { uint64_t set_at; unsigned want_ms; long late_ms; long starved_ms; int done; };

/*
 * Milliseconds this process has spent runnable but waiting for a CPU
 * (/proc/self/schedstat, second field), or 0 when the kernel does not say.
 * On a loaded machine a timer fires late because the scheduler ran someone
 * else, not because of our port: that time is not held against the port.
 */
static long starved_ms(void)
{
	unsigned long long run_ns = 0, wait_ns = 0;
	FILE *f = fopen("/proc/self/schedstat", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) != 2)
		wait_ns = 0;
	fclose(f);
	return (long)(wait_ns / 1000000u);
}

static void on_timer(su_root_magic_t *m, su_timer_t *t, su_timer_arg_t *arg)
{
	struct fired *f = (struct fired *)arg;

	f->late_ms = (long)(now_ms() - f->set_at) - (long)f->want_ms;
	f->starved_ms = starved_ms() - f->starved_ms;
	f->done = 1;
}

START_TEST(test_timers_on_time)
{
	static const unsigned delays[] = { 5, 20, 50, 120, 250 };
	struct fired f[5];
	su_timer_t *t[5];
	int all = 0;

	for (unsigned i = 0; i < 5; i++) {
		memset(&f[i], 0, sizeof f[i]);
		t[i] = su_timer_create(su_root_task(root), delays[i]);
		f[i].want_ms = delays[i];
		f[i].set_at = now_ms();
		f[i].starved_ms = starved_ms();
		ck_assert_int_eq(su_timer_set(t[i], on_timer, (su_timer_arg_t *)&f[i]), 0);
	}
	run_until(&all, 1);   /* arm */
	for (uint64_t end = now_ms() + 2000; now_ms() < end && !f[4].done;)
		su_root_step(root, 100);
	for (unsigned i = 0; i < 5; i++) {
		ck_assert_msg(f[i].done, "timer %u ms never fired", delays[i]);
		/* Never early, and within a few ms (the ring wait is bounded by
		 * Sofia's next timer), plus whatever time the scheduler kept us
		 * off the CPU meanwhile. */
		ck_assert_msg(f[i].late_ms >= 0 && f[i].late_ms <= 5 + f[i].starved_ms,
			      "timer %u ms fired %ld ms late (%ld ms waiting for a CPU)",
			      delays[i], f[i].late_ms, f[i].starved_ms);
		su_timer_destroy(t[i]);
	}
}
END_TEST

/* ------------------------------------------------------------ sockets */

struct reader { int fd; int reads; int calls; };

static int on_readable(su_root_magic_t *m, su_wait_t *w, su_wakeup_arg_t *arg)
{
	struct reader *r = (struct reader *)arg;
	char buf[64];

	/* Like Sofia's UDP transport: ONE datagram per wake-up. */
	r->calls++;
	if (recv(r->fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		r->reads++;
	return 0;
}

START_TEST(test_burst_is_read_to_the_end)
{
	int sv[2], index, done = 0;
	struct reader r = { 0 };
	su_wait_t w[1];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	r.fd = sv[0];
	ck_assert_int_eq(su_wait_create(w, sv[0], SU_WAIT_IN), 0);
	index = su_root_register(root, w, on_readable, (su_wakeup_arg_t *)&r, 0);
	ck_assert_int_gt(index, 0);
	/* 200 datagrams at once: an edge-triggered poll would stall after one. */
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(send(sv[1], "x", 1, 0), 1);
	for (uint64_t end = now_ms() + 2000; now_ms() < end && r.reads < 200;)
		su_root_step(root, 10);
	ck_assert_int_eq(r.reads, 200);

	/* After deregistering, nothing calls back even with data waiting. */
	ck_assert_int_eq(su_root_deregister(root, index), index);
	r.calls = 0;
	ck_assert_int_eq(send(sv[1], "y", 1, 0), 1);
	run_until(&done, 200);
	ck_assert_int_eq(r.calls, 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ------------------------------------------------------------ readers */

static int register_reader(struct reader *r, int fd)
{
	su_wait_t w[1];
	int index;

	r->fd = fd;
	ck_assert_int_eq(su_wait_create(w, fd, SU_WAIT_IN), 0);
	index = su_root_register(root, w, on_readable, (su_wakeup_arg_t *)r, 0);
	ck_assert_int_gt(index, 0);
	return index;
}

/* A detached registration is never called for POLLIN by the kernel's
 * readiness, only through uport_wake_fd (worker/dgram.c feeds it). */
START_TEST(test_detach_and_wake)
{
	int sv[2], index;
	struct reader r = { 0 };

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	index = register_reader(&r, sv[0]);
	ck_assert_int_eq(uport_detach_fd(port, sv[0]), 0);
	ck_assert_int_eq(uport_detach_fd(port, 12345), -ENOENT);
	ck_assert_int_eq(send(sv[1], "x", 1, 0), 1);
	for (int i = 0; i < 5; i++)
		su_root_step(root, 10);
	ck_assert_int_eq(r.calls, 0);          /* readable, but detached */
	ck_assert_int_eq(uport_wake_fd(port, sv[0]), 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.reads, 1);
	ck_assert_int_eq(uport_wake_fd(port, 12345), -ENOENT);
	su_root_deregister(root, index);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

struct hooks { int before, after, pending; };

static int on_before(void *arg)
{
	struct hooks *h = arg;

	h->before++;
	return h->pending > 0 ? h->pending-- : 0;
}

static int on_after(void *arg)
{
	((struct hooks *)arg)->after++;
	return 0;
}

/* Both hooks run every turn; a turn whose before_wait says "work queued"
 * does not block, even with a long timeout. */
START_TEST(test_hooks_do_not_block)
{
	struct hooks h = { .pending = 3 };
	uint64_t t0;

	uport_set_hooks(port, on_before, on_after, &h);
	t0 = now_ms();
	for (int i = 0; i < 3; i++)
		su_root_step(root, 2000);
	ck_assert_uint_lt(now_ms() - t0, 1000);
	ck_assert_int_eq(h.before, 3);
	ck_assert_int_eq(h.after, 3);
	uport_set_hooks(port, NULL, NULL, NULL);
}
END_TEST

struct multi { struct uport_event ev; int n; int more; int armed_after; };

static void on_multi(struct uport_event *e, int res)
{
	struct multi *m = (struct multi *)e;

	if (res >= 0)
		m->n++;
	m->more = (e->flags & IORING_CQE_F_MORE) != 0;
	m->armed_after = e->armed;
}

/* A multishot operation through uport_sqe_for stays armed while the kernel
 * says more completions follow. */
START_TEST(test_multishot_stays_armed)
{
	struct multi m = { .ev.cb = on_multi };
	struct io_uring_sqe *sqe;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	sqe = uport_sqe_for(port, &m.ev);
	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_poll_multishot(sqe, p[0], POLLIN);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	for (uint64_t end = now_ms() + 2000; now_ms() < end && m.n < 1;)
		su_root_step(root, 10);
	ck_assert_int_eq(m.n, 1);
	ck_assert_int_eq(m.more, 1);
	ck_assert_int_eq(m.armed_after, 1);
	ck_assert_int_eq(uport_poll_remove(port, &m.ev), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* A registered datagram socket is found by its local port. */
START_TEST(test_find_udp_fd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	struct reader r = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int index;

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	ck_assert_int_eq(uport_find_udp_fd(port, ntohs(sin.sin_port)), -ENOENT);
	index = register_reader(&r, fd);
	ck_assert_int_eq(uport_find_udp_fd(port, ntohs(sin.sin_port)), fd);
	ck_assert_int_eq(uport_find_udp_fd(port, ntohs(sin.sin_port) ^ 1), -ENOENT);
	su_root_deregister(root, index);
	close(fd);
}
END_TEST

/* ------------------------------------------------------------ other waiters */

struct ev { struct uport_event ev; int res; int done; };

static void on_event(struct uport_event *e, int res)
{
	struct ev *x = (struct ev *)e;

	x->res = res;
	x->done = 1;
}

START_TEST(test_generic_event_and_remove)
{
	struct ev a = { .ev.cb = on_event }, b = { .ev.cb = on_event };
	int p1[2], p2[2], none = 0;

	ck_assert_int_eq(pipe(p1), 0);
	ck_assert_int_eq(pipe(p2), 0);
	ck_assert_int_eq(uport_poll_add(port, &a.ev, p1[0], POLLIN), 0);
	ck_assert_int_eq(uport_poll_add(port, &b.ev, p2[0], POLLIN), 0);
	ck_assert_int_eq(uport_poll_remove(port, &b.ev), 0);
	ck_assert_int_eq(write(p1[1], "a", 1), 1);
	ck_assert_int_eq(write(p2[1], "b", 1), 1);
	run_until(&a.done, 1000);
	ck_assert_int_eq(a.done, 1);
	ck_assert(a.res & POLLIN);
	run_until(&none, 100);
	ck_assert_int_eq(b.done, 0);   /* removed: never called */
	close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]);
}
END_TEST

/* ------------------------------------------------------------ deferred work */

struct deferred {
	struct uport_defer df;
	int runs;
	int again;                  /* defer itself again this many times */
	struct uport_defer *chain;  /* defer this one from the callback */
	int send_fd;                /* >= 0: send a datagram from the callback */
};

static void on_deferred(struct uport_defer *df)
{
	struct deferred *d = (struct deferred *)(void *)df;

	d->runs++;
	if (d->send_fd >= 0)
		ck_assert_int_eq(send(d->send_fd, "d", 1, 0), 1);
	if (d->chain != NULL)
		uport_defer(port, d->chain);
	if (d->again > 0) {
		d->again--;
		uport_defer(port, &d->df);
	}
}

static void deferred_init(struct deferred *d)
{
	memset(d, 0, sizeof *d);
	d->df.cb = on_deferred;
	d->send_fd = -1;
}

/* Deferred once however often it was asked; a cancelled one never runs;
 * what a callback defers runs in the same pass. */
START_TEST(test_defer_once_cancel_chain)
{
	struct deferred a, b, c;

	deferred_init(&a);
	deferred_init(&b);
	deferred_init(&c);
	a.chain = &c.df;
	uport_defer(port, &a.df);
	uport_defer(port, &a.df);
	uport_defer(port, &b.df);
	uport_defer_cancel(port, &b.df);
	uport_defer_cancel(port, &b.df);   /* not queued: nothing happens */
	su_root_step(root, 10);
	ck_assert_int_eq(a.runs, 1);
	ck_assert_int_eq(b.runs, 0);
	ck_assert_int_eq(c.runs, 1);
	su_root_step(root, 10);
	ck_assert_int_eq(a.runs, 1);       /* nothing queued: nothing runs */
	ck_assert_int_eq(c.runs, 1);
	ck_assert_ptr_eq(uport_of_root(root), port);
	ck_assert_ptr_null(uport_of_root(NULL));
}
END_TEST

/* Deferred work runs before the wait, not after it: a datagram the callback
 * sends wakes this very wait, which would otherwise sleep 2 s. */
START_TEST(test_defer_runs_before_the_wait)
{
	int sv[2], index;
	struct reader r = { 0 };
	struct deferred a;
	uint64_t t0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	index = register_reader(&r, sv[0]);
	deferred_init(&a);
	a.send_fd = sv[1];
	uport_defer(port, &a.df);
	t0 = now_ms();
	for (int i = 0; i < 3 && r.reads == 0; i++)
		su_root_step(root, 2000);
	ck_assert_int_eq(a.runs, 1);
	ck_assert_int_eq(r.reads, 1);
	ck_assert_uint_lt(now_ms() - t0, 1000);
	su_root_deregister(root, index);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* A callback that keeps deferring itself is bounded per turn, and the
 * turn then does not block (its work is not done). */
START_TEST(test_defer_bounded_per_turn)
{
	struct deferred a;
	uint64_t t0;

	deferred_init(&a);
	a.again = 99;
	uport_defer(port, &a.df);
	t0 = now_ms();
	su_root_step(root, 2000);
	ck_assert_uint_lt(now_ms() - t0, 1000);
	ck_assert_int_gt(a.runs, 1);
	ck_assert_int_lt(a.runs, 100);
	su_root_step(root, 10);
	ck_assert_int_eq(a.runs, 100);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("uport");
	TCase *tc = tcase_create("io_uring port");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_timers_on_time);
	tcase_add_test(tc, test_burst_is_read_to_the_end);
	tcase_add_test(tc, test_generic_event_and_remove);
	tcase_add_test(tc, test_detach_and_wake);
	tcase_add_test(tc, test_hooks_do_not_block);
	tcase_add_test(tc, test_multishot_stays_armed);
	tcase_add_test(tc, test_find_udp_fd);
	tcase_add_test(tc, test_defer_once_cancel_chain);
	tcase_add_test(tc, test_defer_runs_before_the_wait);
	tcase_add_test(tc, test_defer_bounded_per_turn);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
