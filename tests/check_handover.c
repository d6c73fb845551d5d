/*
 * check_handover — the workers' datagram queues (shm/handover.h): records
 * come out in order with their bytes, source and time; a full queue refuses
 * and makes room again once released; records wrap around the ring; the
 * owner of a new call spreads evenly and only a missing worker's share
 * moves; a producer in another process (and its successor after a crash)
 * is read intact.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/handover.h"

static struct sockaddr_in addr_of(unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	sin.sin_addr.s_addr = htonl(0x7f000001);
	return sin;
}

START_TEST(test_order_and_contents)
{
	handover_t *h;
	struct handover_msg m;
	uint64_t cur;
	char buf[64];

	ck_assert_int_eq(handover_create(3, &h), 0);
	ck_assert_uint_eq(handover_workers(h), 3);
	for (unsigned i = 0; i < 10; i++) {
		struct sockaddr_in sin = addr_of(5000 + i);
		int n = snprintf(buf, sizeof buf, "INVITE %u", i);

		ck_assert_int_eq(handover_push(h, 2, 1, buf, (size_t)n, (struct sockaddr *)&sin,
					       sizeof sin, 1000 + i), 0);
	}
	cur = handover_cursor(h, 1, 2);
	for (unsigned i = 0; i < 10; i++) {
		const struct sockaddr_in *sin;

		ck_assert_int_eq(handover_peek(h, 1, 2, &cur, &m), 0);
		snprintf(buf, sizeof buf, "INVITE %u", i);
		ck_assert_uint_eq(m.len, strlen(buf));
		ck_assert(memcmp(m.data, buf, m.len) == 0);
		ck_assert_uint_eq(m.rx_ns, 1000 + i);
		ck_assert_uint_eq(m.fromlen, sizeof(struct sockaddr_in));
		sin = (const struct sockaddr_in *)m.from;
		ck_assert_uint_eq(ntohs(sin->sin_port), 5000 + i);
	}
	ck_assert_int_eq(handover_peek(h, 1, 2, &cur, &m), -EAGAIN);
	/* Other pairs are separate queues. */
	cur = handover_cursor(h, 2, 1);
	ck_assert_int_eq(handover_peek(h, 2, 1, &cur, &m), -EAGAIN);
	ck_assert_int_eq(handover_push(h, 1, 1, "x", 1, NULL, 0, 0), -EINVAL);
	ck_assert_int_eq(handover_push(h, 0, 3, "x", 1, NULL, 0, 0), -EINVAL);
	ck_assert_int_eq(handover_push(h, 0, 1, buf, HANDOVER_DGRAM_MAX + 1, NULL, 0, 0),
			 -EMSGSIZE);
	handover_destroy(h);
}
END_TEST

/* Until released, what was peeked keeps its room; a reader that restarts
 * (a new cursor) reads the unreleased records again. */
START_TEST(test_full_release_and_wrap)
{
	static char big[20000];
	handover_t *h;
	struct handover_msg m;
	uint64_t cur;
	unsigned pushed = 0, read = 0;

	ck_assert_int_eq(handover_create(2, &h), 0);
	memset(big, 'b', sizeof big);
	while (handover_push(h, 0, 1, big, sizeof big, NULL, 0, pushed) == 0)
		pushed++;
	/* Each record has a small header (source address, time) besides its bytes. */
	ck_assert(pushed >= HANDOVER_RING_BYTES / (sizeof big + 256) &&
		  pushed <= HANDOVER_RING_BYTES / sizeof big);
	ck_assert_int_eq(handover_push(h, 0, 1, big, sizeof big, NULL, 0, 0), -ENOSPC);
	cur = handover_cursor(h, 1, 0);
	ck_assert_int_eq(handover_peek(h, 1, 0, &cur, &m), 0);
	ck_assert_int_eq(handover_push(h, 0, 1, big, sizeof big, NULL, 0, 0), -ENOSPC);
	cur = handover_cursor(h, 1, 0);   /* a restarted reader */
	ck_assert_int_eq(handover_peek(h, 1, 0, &cur, &m), 0);
	ck_assert_uint_eq(m.rx_ns, 0);    /* the first record again */
	handover_release(h, 1, 0, m.end);
	ck_assert_int_eq(handover_push(h, 0, 1, big, sizeof big, NULL, 0, pushed), 0);
	pushed++;

	/* Many rounds of mixed sizes: records wrap (skip marks), none torn. */
	cur = handover_cursor(h, 1, 0);
	for (unsigned round = 0; round < 2000; round++) {
		size_t len = 1 + (round * 7919u) % 3000u;

		while (handover_push(h, 0, 1, big, len, NULL, 0, pushed) == -ENOSPC) {
			ck_assert_int_eq(handover_peek(h, 1, 0, &cur, &m), 0);
			ck_assert_uint_eq(m.rx_ns, read + 1);
			handover_release(h, 1, 0, m.end);
			read++;
		}
		pushed++;
	}
	while (handover_peek(h, 1, 0, &cur, &m) == 0) {
		ck_assert_uint_eq(m.rx_ns, read + 1);
		ck_assert(m.len >= 1 && m.len <= 20000);
		ck_assert(m.data[0] == 'b' && m.data[m.len - 1] == 'b');
		handover_release(h, 1, 0, m.end);
		read++;
	}
	ck_assert_uint_eq(read + 1, pushed);
	handover_destroy(h);
}
END_TEST

/* Rendezvous hashing: even spread over the ready workers; a worker that is
 * not ready gives its share to the others and nobody else's moves. */
START_TEST(test_owner_spread_and_stability)
{
	enum { KEYS = 30000, W = 3 };
	static unsigned before[KEYS];
	unsigned count[W] = { 0 };
	handover_t *h;
	char key[64];

	ck_assert_int_eq(handover_create(W, &h), 0);
	ck_assert_uint_eq(handover_owner(h, "a@b", 3, 2), 2);   /* none ready: self */
	for (unsigned w = 0; w < W; w++)
		handover_set_ready(h, w, 1);
	for (unsigned i = 0; i < KEYS; i++) {
		int n = snprintf(key, sizeof key, "%u-%u@10.0.0.1", i * 2654435761u, i);

		before[i] = handover_owner(h, key, (size_t)n, 0);
		ck_assert_uint_lt(before[i], W);
		count[before[i]]++;
	}
	for (unsigned w = 0; w < W; w++)
		ck_assert(count[w] > KEYS * 30 / 100 && count[w] < KEYS * 37 / 100);
	handover_set_ready(h, 1, 0);
	ck_assert(!handover_ready(h, 1));
	for (unsigned i = 0; i < KEYS; i++) {
		int n = snprintf(key, sizeof key, "%u-%u@10.0.0.1", i * 2654435761u, i);
		unsigned now = handover_owner(h, key, (size_t)n, 0);

		ck_assert_uint_ne(now, 1);
		if (before[i] != 1)
			ck_assert_uint_eq(now, before[i]);
	}
	handover_destroy(h);
}
END_TEST

/* A producer in another process, then its successor after it died: every
 * published record arrives once, in order, intact; the eventfd wakes. */
START_TEST(test_across_processes)
{
	enum { PER_CHILD = 5000 };
	handover_t *h;
	uint64_t cur, expect = 0, val;
	struct handover_msg m;

	ck_assert_int_eq(handover_create(2, &h), 0);
	for (int child = 0; child < 2; child++) {
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			char buf[512];

			for (uint64_t i = 0; i < PER_CHILD; i++) {
				uint64_t seq = (uint64_t)child * PER_CHILD + i;
				size_t len = 9 + (size_t)(seq % 400);

				memset(buf, (int)('a' + seq % 26), sizeof buf);
				memcpy(buf, &seq, sizeof seq);
				while (handover_push(h, 0, 1, buf, len, NULL, 0, seq) == -ENOSPC)
					usleep(100);
				if (i % 64 == 0)
					(void)!write(handover_eventfd(h, 1), &(uint64_t){ 1 }, 8);
			}
			(void)!write(handover_eventfd(h, 1), &(uint64_t){ 1 }, 8);
			_exit(0);   /* the "crash": the successor goes on from its tail */
		}
		int status;

		cur = handover_cursor(h, 1, 0);
		while (expect < (uint64_t)(child + 1) * PER_CHILD) {
			struct pollfd pfd = { .fd = handover_eventfd(h, 1), .events = POLLIN };

			while (handover_peek(h, 1, 0, &cur, &m) == 0) {
				uint64_t seq;

				memcpy(&seq, m.data, sizeof seq);
				ck_assert_uint_eq(seq, expect);
				ck_assert_uint_eq(m.rx_ns, expect);
				ck_assert_uint_eq(m.len, 9 + seq % 400);
				ck_assert_int_eq(m.data[m.len - 1], (int)('a' + seq % 26));
				handover_release(h, 1, 0, m.end);
				expect++;
			}
			if (expect < (uint64_t)(child + 1) * PER_CHILD &&
			    poll(&pfd, 1, 1000) == 1)
				(void)!read(pfd.fd, &val, sizeof val);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_uint_eq(expect, 2 * PER_CHILD);
	handover_destroy(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("handover");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_order_and_contents);
	tcase_add_test(tc, test_full_release_and_wrap);
	tcase_add_test(tc, test_owner_spread_and_stability);
	tcase_add_test(tc, test_across_processes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
