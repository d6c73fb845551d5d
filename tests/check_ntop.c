/*
 * check_ntop — unit tests for worker/ntop.c: every IPv4 address it writes
 * is the text libc's inet_ntop() writes (this program is not the daemon,
 * so inet_ntop here is libc's own), for every byte value in every
 * position.
 */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>

#include "worker/ntop.h"

/* One address both ways; the same text and length. */
static void assert_same(unsigned char a, unsigned char b, unsigned char c, unsigned char d)
{
	const unsigned char addr[4] = { a, b, c, d };
	char want[INET_ADDRSTRLEN], got[NTOP_IPV4_MAX];
	size_t len;

	ck_assert_ptr_nonnull(inet_ntop(AF_INET, addr, want, sizeof want));
	memset(got, '#', sizeof got);
	len = ntop_ipv4(addr, got);
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
	char out[NTOP_IPV4_MAX];
	const unsigned char longest[4] = { 255, 255, 255, 255 };
	const unsigned char shortest[4] = { 0, 0, 0, 0 };

	ck_assert_uint_eq(ntop_ipv4(longest, out), NTOP_IPV4_MAX - 1);
	ck_assert_str_eq(out, "255.255.255.255");
	ck_assert_uint_eq(ntop_ipv4(shortest, out), 7);
	ck_assert_str_eq(out, "0.0.0.0");
	assert_same(10, 100, 199, 9);
	assert_same(192, 0, 2, 10);
}
END_TEST

static Suite *ntop_suite(void)
{
	Suite *s = suite_create("ntop");
	TCase *tc = tcase_create("ipv4");

	tcase_add_test(tc, test_every_byte_everywhere);
	tcase_add_test(tc, test_lengths);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ntop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
