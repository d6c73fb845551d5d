/*
 * check_sipline — unit tests for worker/sipline.c: the request line and
 * CSeq it writes are the bytes Sofia-SIP's msg_header_e() writes for the
 * same header, for a corpus of URIs and numbers, and a buffer too short by
 * any amount is refused by both.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

#include "worker/sipline.h"

static su_home_t t_home[1] = { SU_HOME_INIT(t_home) };

typedef int line_fn(char *buf, size_t size, size_t *n, const void *h);

static int request_fn(char *buf, size_t size, size_t *n, const void *h)
{
	return sipline_request(buf, size, n, h);
}

static int cseq_fn(char *buf, size_t size, size_t *n, const void *h)
{
	return sipline_cseq(buf, size, n, h);
}

/* Ours after a prefix of 5 bytes, against msg_header_e's text; then every
 * buffer size below what it needs is refused. */
static void assert_same(line_fn *ours, msg_header_t const *h)
{
	char want[600], got[600];
	issize_t len = msg_header_e(want, sizeof want, h, 0);
	size_t n = 5;

	ck_assert_int_gt(len, 0);
	ck_assert_int_lt(len, 500);
	memcpy(got, "xxxxx", 5);
	ck_assert_int_eq(ours(got, sizeof got, &n, h), 0);
	ck_assert_uint_eq(n, 5 + (size_t)len);
	ck_assert_msg(memcmp(got + 5, want, (size_t)len) == 0 && got[n] == '\0',
		      "\"%.*s\" != \"%.*s\"", (int)len, want, (int)len, got + 5);
	for (size_t size = 5; size <= 5 + (size_t)len; size++) {
		n = 5;
		ck_assert_int_eq(ours(got, size, &n, h), -E2BIG);
		ck_assert_uint_eq(n, 5);
	}
}

START_TEST(test_request_lines)
{
	static const char *const lines[] = {
		"INVITE sip:bob@example.com SIP/2.0",
		"INVITE sip:127.0.0.1:5080 SIP/2.0",
		"INVITE sip:alice:secret@[2001:db8::1]:5070;transport=tcp;lr?Subject=x&h=y SIP/2.0",
		"INVITE sips:registrar.example.net SIP/2.0",
		"INVITE tel:+15551234567;phone-context=example.com SIP/2.0",
		"INVITE urn:service:sos SIP/2.0",
		"FOO http://user@host:80/path;p=1?q=2#frag SIP/2.0",
		"INVITE im:user@example.org SIP/2.0",
		"INVITE sip:%61lice@example.com;maddr=10.0.0.1 SIP/2.0",
		"INVITE sip:+15551234567@10.0.0.1;user=phone SIP/2.0",
		"OPTIONS * SIP/2.0",
	};

	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		sip_request_t *rq = sip_request_make(t_home, lines[i]);

		ck_assert_msg(rq != NULL, "%s", lines[i]);
		assert_same(request_fn, (msg_header_t *)rq);
	}
	{
		url_t *u = url_hdup(t_home, (url_t *)"sip:carol@192.0.2.7:5062;transport=udp");
		sip_request_t *rq = sip_request_create(t_home, sip_method_invite, "INVITE",
						       (url_string_t *)u, NULL);

		ck_assert_ptr_nonnull(rq);
		assert_same(request_fn, (msg_header_t *)rq);
	}
}
END_TEST

START_TEST(test_cseq)
{
	static const uint32_t seqs[] = { 0, 1, 9, 10, 4711, 65536, 4294967295u };

	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
		sip_cseq_t *cs = sip_cseq_create(t_home, seqs[i], sip_method_invite, NULL);
		sip_cseq_t *other = sip_cseq_create(t_home, seqs[i], sip_method_unknown, "FROBNICATE");

		ck_assert_ptr_nonnull(cs);
		ck_assert_ptr_nonnull(other);
		assert_same(cseq_fn, (msg_header_t *)cs);
		assert_same(cseq_fn, (msg_header_t *)other);
	}
}
END_TEST

START_TEST(test_incomplete)
{
	char buf[64];
	size_t n = 0;
	sip_request_t rq[1];

	memset(rq, 0, sizeof rq);
	ck_assert_int_eq(sipline_request(buf, sizeof buf, &n, NULL), -EINVAL);
	ck_assert_int_eq(sipline_request(buf, sizeof buf, &n, rq), -EINVAL);
	ck_assert_int_eq(sipline_cseq(buf, sizeof buf, &n, NULL), -EINVAL);
	ck_assert_uint_eq(n, 0);
}
END_TEST

static Suite *sipline_suite(void)
{
	Suite *s = suite_create("sipline");
	TCase *tc = tcase_create("text");

	tcase_add_test(tc, test_request_lines);
	tcase_add_test(tc, test_cseq);
	tcase_add_test(tc, test_incomplete);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sipline_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	su_home_deinit(t_home);
	return failed == 0 ? 0 : 1;
}
