/*
 * check_fmt — unit tests for worker/fmt.c: for every format it does, the
 * text and the return value are glibc's vsnprintf()'s (this program is not
 * the daemon, so snprintf here is glibc's own), at every buffer size from
 * 0 to past the whole text; every format it does not do is refused before
 * the caller's arguments are touched, so the caller's fallback sees them.
 */
#include <check.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "worker/fmt.h"

static int fmt_call(char *buf, size_t size, const char *format, ...)
{
	va_list ap;
	int n;

	va_start(ap, format);
	n = fmt_vsnprintf(buf, size, format, ap);
	va_end(ap);
	return n;
}

/* glibc's and ours, for one format and its arguments, at every size from 0
 * to two bytes past the whole text, into buffers prefilled with '#': the
 * same return value, the same bytes, nothing written past size. */
#define ASSERT_SAME(...)                                                         \
	do {                                                                     \
		char want[512], got[512];                                        \
		int wn = snprintf(want, sizeof want, __VA_ARGS__);               \
		ck_assert_int_ge(wn, 0);                                         \
		ck_assert_int_lt(wn, (int)sizeof want - 2);                      \
		for (size_t size = 0; size <= (size_t)wn + 2; size++) {          \
			memset(want, '#', sizeof want);                          \
			memset(got, '#', sizeof got);                            \
			ck_assert_int_eq(snprintf(want, size, __VA_ARGS__), wn); \
			ck_assert_int_eq(fmt_call(got, size, __VA_ARGS__), wn);  \
			ck_assert_mem_eq(got, want, sizeof want);                \
		}                                                                \
	} while (0)

/* What Sofia-SIP's encoders print (sip_basic.c, sip_session.c). */
START_TEST(test_sofia_formats)
{
	const char *u[] = { "sip", ":", "", "alice", "", "", "@", "127.0.0.1", ":", "5060",
			    "", "", ";", "transport=udp", "", "", "", "" };

	ASSERT_SAME("%s %s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s %s\r\n", "INVITE", u[0], u[1],
		    u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		    u[14], u[15], u[16], u[17], "SIP/2.0");
	ASSERT_SAME("%s %03u %s\r\n", "SIP/2.0", 200u, "OK");
	ASSERT_SAME("%s %03u %s\r\n", "SIP/2.0", 7u, "Odd");
	ASSERT_SAME("%s %03u %s\r\n", "SIP/2.0", 1234u, "Wide");
	ASSERT_SAME("%u %s", 4294967295u, "INVITE");
	ASSERT_SAME("%u %s", 0u, "ACK");
	ASSERT_SAME("%lu", 0ul);
	ASSERT_SAME("%lu", (unsigned long)ULONG_MAX);
	ASSERT_SAME("%lu", 1800ul);
}
END_TEST

START_TEST(test_numbers)
{
	ASSERT_SAME("%d|%i|%d|%d", 0, -1, INT_MIN, INT_MAX);
	ASSERT_SAME("%ld|%ld|%li", LONG_MIN, LONG_MAX, -42l);
	ASSERT_SAME("%lld|%llu|%llu", LLONG_MIN, ULLONG_MAX, 0ull);
	ASSERT_SAME("%zu|%zd|%zd", (size_t)SIZE_MAX, (ssize_t)-5, (ssize_t)SSIZE_MAX);
	ASSERT_SAME("%x|%x|%lx|%llx|%zx", 0u, 0xdeadbeefu, 0xffffffffffffffful, 0x1ull,
		    (size_t)4096);
	/* Widths, with and without the flag 0, shorter and longer than the
	 * number, and negative numbers (the sign goes before the zeros). */
	ASSERT_SAME("[%5d][%05d][%5d][%05d][%1d][%01d]", 42, 42, -42, -42, 12345, -12345);
	ASSERT_SAME("[%08x][%8x][%020llu][%3u]", 0xabcu, 0xabcu, 12345ull, 123456u);
	ASSERT_SAME("[%0d]", 7);
}
END_TEST

START_TEST(test_text)
{
	ASSERT_SAME("plain text, no conversion");
	ASSERT_SAME("%s", "");
	ASSERT_SAME("%%|%s%%%s|%%", "a", "b");
	ASSERT_SAME("[%8s][%1s]", "right", "wide");
	ASSERT_SAME("[%c][%3c][%c]", 'x', 'y', 0x41);
	ASSERT_SAME("%s=%d;%s", "expires", 3600, "q=0.5");
	ASSERT_SAME("trailing %s", "text");
	ASSERT_SAME("%s", "a longer argument that makes the text longer than the format itself");
}
END_TEST

/* Refused: FMT_UNSUPPORTED, and the caller's va_list still at its start.
 * The arguments are a string (what a %s before the refused conversion
 * reads) and two zeros. */
static const char refused_first[] = "first";

static void assert_refused(const char *format, ...)
{
	char buf[64];
	va_list ap;
	int n;

	va_start(ap, format);
	n = fmt_vsnprintf(buf, sizeof buf, format, ap);
	ck_assert_msg(n == FMT_UNSUPPORTED, "\"%s\" was not refused (%d)", format, n);
	/* The fallback's view: the first argument is still the first. */
	ck_assert_ptr_eq(va_arg(ap, const char *), refused_first);
	va_end(ap);
}

START_TEST(test_refused)
{
	const char *formats[] = {
		"%.3s", "%.*s", "%*d", "%-5d", "%+d", "% d", "%#x", "%hd", "%hhu", "%jd", "%td",
		"%Lf", "%f", "%g", "%e", "%p", "%n", "%o", "%X", "%05s", "%ls", "%lc", "%5%",
		"%", "%q", "%08.3f", "%'d", "ok %s %.2s",
	};

	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		assert_refused(formats[i], refused_first, 0, 0);
}
END_TEST

START_TEST(test_size_zero_null)
{
	char buf[16];
	const char *none = NULL;

	/* A NULL string is glibc's "(null)" (a variable: gcc warns at a literal). */
	ck_assert_int_eq(fmt_call(buf, sizeof buf, "[%s]", none), 8);
	ck_assert_str_eq(buf, "[(null)]");
	/* size 0: nothing written, buf may be NULL, the length all the same. */
	ck_assert_int_eq(fmt_call(NULL, 0, "%s %03u %s", "SIP/2.0", 180u, "Ringing"), 19);
}
END_TEST

static Suite *fmt_suite(void)
{
	Suite *s = suite_create("fmt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sofia_formats);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_size_zero_null);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fmt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
