/*
 * check_dec — unit tests for worker/dec.c: every number it writes is the
 * text printf's "%" PRIu64 writes, and every IPv4 address the text libc's
 * inet_ntop() writes (this program is not the daemon, so inet_ntop here
 * is libc's own), for every byte value in every position.
 */
#include <arpa/inet.h>
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "worker/dec.h"

static void assert_u64(uint64_t v)
{
	char want[32], got[DEC_U64_MAX];

	snprintf(want, sizeof want, "%" PRIu64, v);
	memset(got, '#', sizeof got);
	ck_assert_uint_eq(dec_u64(v, got), strlen(want));
	ck_assert_str_eq(got, want);
}

START_TEST(test_numbers)
{
	uint64_t p = 1;

	assert_u64(0);
	assert_u64(UINT64_MAX);
	assert_u64(UINT32_MAX);
	/* Every power of ten and its neighbours: each length, both edges. */
	for (int i = 0; i < 20; i++, p *= 10) {
		assert_u64(p - 1);
		assert_u64(p);
		assert_u64(p + 1);
	}
}
END_TEST

/* One address both ways; the same text and length. */
static void assert_same(unsigned char a, unsigned char b, unsigned char c, unsigned char d)
{
	const unsigned char addr[4] = { a, b, c, d };
	char want[INET_ADDRSTRLEN], got[DEC_IPV4_MAX];
	size_t len;

	ck_assert_ptr_nonnull(inet_ntop(AF_INET, addr, want, sizeof want));
	memset(got, '#', sizeof got);
	len = dec_ipv4(addr, got);
	ck_assert_str_eq(got, want);
	ck_assert_uint_eq(len, strlen(want));
}

START_TEST(test_every_byte_everywhere)
{
	for (unsigned v = 0; v < 256; v++) {
		assert_same((unsigned char)v, 0, 0, 0);
		assert_same(0, (unsigned char)v, 0, 0);
		assert_same(1, 2, (unsigned char)v, 3);
		assert_same(127, 0, 0, (unsigned char)v);
	}
}
END_TEST

START_TEST(test_lengths)
{
	char out[DEC_IPV4_MAX];
	const unsigned char longest[4] = { 255, 255, 255, 255 };
	const unsigned char shortest[4] = { 0, 0, 0, 0 };

	ck_assert_uint_eq(dec_ipv4(longest, out), DEC_IPV4_MAX - 1);
	ck_assert_str_eq(out, "255.255.255.255");
	ck_assert_uint_eq(dec_ipv4(shortest, out), 7);
	ck_assert_str_eq(out, "0.0.0.0");
	assert_same(10, 100, 199, 9);
	assert_same(192, 0, 2, 10);
}
END_TEST

static Suite *dec_suite(void)
{
	Suite *s = suite_create("dec");
	TCase *tc = tcase_create("text");

	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_every_byte_everywhere);
	tcase_add_test(tc, test_lengths);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
