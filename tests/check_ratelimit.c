/*
 * check_ratelimit — the per-source token buckets of worker/ratelimit.c:
 * bursts, refill over time, independence of sources, a full table, and
 * fixed memory under a flood of new sources.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/ratelimit.h"

static ratelimit_t *make(unsigned sources, unsigned rate, unsigned burst)
{
	ratelimit_t *rl = NULL;

	ck_assert_int_eq(ratelimit_create(sources, rate, burst, 0x1234abcdull, &rl), 0);
	ck_assert_ptr_nonnull(rl);
	return rl;
}

/* IPv4 source 10.0.x.y as a key: family byte and address. */
static int allow4(ratelimit_t *rl, uint32_t n, uint64_t now)
{
	uint8_t key[5] = { 4, 10, 0, (uint8_t)(n >> 8), (uint8_t)n };

	return ratelimit_allow(rl, key, sizeof key, now);
}

/* How many of `n` requests at `now` are allowed. */
static int allowed(ratelimit_t *rl, uint32_t src, int n, uint64_t now)
{
	int ok = 0;

	for (int i = 0; i < n; i++)
		ok += allow4(rl, src, now) == 1;
	return ok;
}

START_TEST(test_burst_then_refused)
{
	ratelimit_t *rl = make(64, 5, 10);

	ck_assert_int_eq(allowed(rl, 1, 25, 1000), 10);
	ck_assert_int_eq(allow4(rl, 1, 1000), 0);
	ratelimit_destroy(rl);
}
END_TEST

START_TEST(test_refill)
{
	ratelimit_t *rl = make(64, 5, 10);

	ck_assert_int_eq(allowed(rl, 1, 10, 1000), 10);
	/* 5 per second: one more every 200 ms. */
	ck_assert_int_eq(allow4(rl, 1, 1199), 0);
	ck_assert_int_eq(allow4(rl, 1, 1200), 1);
	ck_assert_int_eq(allow4(rl, 1, 1200), 0);
	/* One second later: five more, not ten. */
	ck_assert_int_eq(allowed(rl, 1, 10, 2200), 5);
	/* A long pause fills the bucket, never more than burst. */
	ck_assert_int_eq(allowed(rl, 1, 50, 3600000200ull), 10);
	ratelimit_destroy(rl);
}
END_TEST

START_TEST(test_refused_requests_do_not_count)
{
	ratelimit_t *rl = make(64, 10, 1);

	/* A source that keeps sending over its limit still gets its rate. */
	ck_assert_int_eq(allow4(rl, 7, 1000), 1);
	for (uint64_t t = 1000; t < 2000; t += 10)
		allow4(rl, 7, t);
	ck_assert_int_eq(allowed(rl, 7, 3, 2100), 1);
	ratelimit_destroy(rl);
}
END_TEST

START_TEST(test_sources_independent)
{
	ratelimit_t *rl = make(64, 1, 3);

	ck_assert_int_eq(allowed(rl, 1, 100, 5000), 3);
	ck_assert_int_eq(allowed(rl, 2, 100, 5000), 3);
	ck_assert_int_eq(allowed(rl, 3, 1, 5000), 1);
	/* IPv4 1.2.3.4 and an IPv6 key with the same leading bytes differ. */
	{
		uint8_t v4[5] = { 4, 1, 2, 3, 4 };
		uint8_t v6[17] = { 6, 1, 2, 3, 4 };

		ck_assert_int_eq(ratelimit_allow(rl, v4, sizeof v4, 5000), 1);
		ck_assert_int_eq(ratelimit_allow(rl, v4, sizeof v4, 5000), 1);
		ck_assert_int_eq(ratelimit_allow(rl, v4, sizeof v4, 5000), 1);
		ck_assert_int_eq(ratelimit_allow(rl, v4, sizeof v4, 5000), 0);
		ck_assert_int_eq(ratelimit_allow(rl, v6, sizeof v6, 5000), 1);
	}
	ratelimit_destroy(rl);
}
END_TEST

/* Far more sources than entries: every new source gets its burst (no
 * source is refused for lack of room), and a source that keeps talking
 * keeps its (empty) bucket against the churn of idle ones. */
START_TEST(test_full_table)
{
	ratelimit_t *rl = make(16, 1, 2);
	uint64_t now = 10000;

	ck_assert_int_eq(allowed(rl, 0, 2, now), 2);
	for (uint32_t src = 1; src < 5000; src++) {
		now++;
		ck_assert_int_eq(allow4(rl, src, now), 1);
		/* The talker asks every ms, over its limit of 1 per s all along. */
		allow4(rl, 0, now);
	}
	ck_assert_int_le(allowed(rl, 0, 5, now), 1);
	ratelimit_destroy(rl);
}
END_TEST

START_TEST(test_bad_arguments)
{
	ratelimit_t *rl = NULL;
	uint8_t big[RATELIMIT_KEY_MAX + 1] = { 0 };

	ck_assert_int_eq(ratelimit_create(16, 0, 1, 0, &rl), -EINVAL);
	ck_assert_int_eq(ratelimit_create(16, 1, 0, 0, &rl), -EINVAL);
	ck_assert_int_eq(ratelimit_create(0, 1, 1, 0, &rl), -EINVAL);
	rl = make(16, 1, 1);
	ck_assert_int_eq(ratelimit_allow(rl, big, sizeof big, 1), -EINVAL);
	ck_assert_int_eq(ratelimit_allow(rl, big, 0, 1), -EINVAL);
	ck_assert_int_eq(ratelimit_allow(rl, NULL, 4, 1), -EINVAL);
	ratelimit_destroy(rl);
	ratelimit_destroy(NULL);
}
END_TEST

/* The seed decides the layout: two limiters with different seeds place the
 * same keys differently, yet both count each source alone. */
START_TEST(test_seeded)
{
	ratelimit_t *a = NULL, *b = NULL;

	ck_assert_int_eq(ratelimit_create(8, 1, 1, 1, &a), 0);
	ck_assert_int_eq(ratelimit_create(8, 1, 1, 2, &b), 0);
	for (uint32_t src = 0; src < 8; src++) {
		ck_assert_int_eq(allow4(a, src, 100), 1);
		ck_assert_int_eq(allow4(b, src, 100), 1);
	}
	ratelimit_destroy(a);
	ratelimit_destroy(b);
}
END_TEST

static Suite *ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_burst_then_refused);
	tcase_add_test(tc, test_refill);
	tcase_add_test(tc, test_refused_requests_do_not_count);
	tcase_add_test(tc, test_sources_independent);
	tcase_add_test(tc, test_full_table);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_seeded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ratelimit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
