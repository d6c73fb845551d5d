/*
 * check_overload — unit tests for worker/overload.c: what the overload
 * gate may shed (a new INVITE, the ACK of our own 503) and what it must
 * leave to Sofia (requests of a dialog, other methods, responses, anything
 * malformed), and the stateless 503 it sends: every Via in order, From,
 * Call-ID and CSeq copied, our tag on To, Retry-After, no body.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "worker/overload.h"

#define TAG "ovl0123456789abcdef"

static const char t_invite[] =
	"INVITE sip:1555@127.0.0.1:5060 SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1;rport\r\n"
	"v: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-0,\r\n"
	" SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-00\r\n"
	"Max-Forwards: 70\r\n"
	"From: \"Al;tag=no\" <sip:alice@10.0.0.1;tag=x>;tag=abc\r\n"
	"To  :   <sip:1555@127.0.0.1;tag=uri-param>  \r\n"
	"i: 42@10.0.0.1\r\n"
	"CSeq: 1 INVITE\r\n"
	"Contact: <sip:alice@10.0.0.1:5061>\r\n"
	"Content-Type: application/sdp\r\n"
	"Content-Length: 4\r\n"
	"\r\n"
	"v=0\n";

static enum overload_kind parse(const char *msg, struct overload_msg *m)
{
	return overload_parse(msg, strlen(msg), TAG, m);
}

START_TEST(test_new_invite_and_answer)
{
	struct overload_msg m;
	char out[2048];
	int n;

	ck_assert_int_eq(parse(t_invite, &m), OVERLOAD_NEW_INVITE);
	ck_assert_uint_eq(m.n_via, 2);
	ck_assert_uint_eq(m.to_tag.len, 0);   /* ;tag= inside <> is the URI's */

	n = overload_answer(&m, TAG, 7, out, sizeof out);
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(out), (size_t)n);
	ck_assert_str_eq(out,
		"SIP/2.0 503 Service Unavailable\r\n"
		"Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1;rport\r\n"
		"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-0,\r\n"
		" SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK-00\r\n"
		"From: \"Al;tag=no\" <sip:alice@10.0.0.1;tag=x>;tag=abc\r\n"
		"To: <sip:1555@127.0.0.1;tag=uri-param>;tag=" TAG "\r\n"
		"Call-ID: 42@10.0.0.1\r\n"
		"CSeq: 1 INVITE\r\n"
		"Retry-After: 7\r\n"
		"Content-Length: 0\r\n"
		"\r\n");

	/* Too small a buffer at every length: never a cut answer. */
	for (size_t size = 0; size < (size_t)n + 1; size++)
		ck_assert_int_eq(overload_answer(&m, TAG, 7, out, size), -ENOSPC);
	ck_assert_int_eq(overload_answer(&m, TAG, 7, out, (size_t)n + 1), n);
}
END_TEST

/* The ACK of our 503 (its To tag is ours) may be dropped; any other ACK not. */
START_TEST(test_our_ack)
{
	struct overload_msg m;
	char msg[1024];

	snprintf(msg, sizeof msg,
		 "ACK sip:1555@127.0.0.1:5060 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1\r\n"
		 "From: <sip:alice@10.0.0.1>;tag=abc\r\n"
		 "t: <sip:1555@127.0.0.1>;TAG = %s\r\n"
		 "Call-ID: 42@10.0.0.1\r\n"
		 "CSeq: 1 ACK\r\n"
		 "Content-Length: 0\r\n\r\n", TAG);
	ck_assert_int_eq(parse(msg, &m), OVERLOAD_OUR_ACK);

	snprintf(msg, sizeof msg,
		 "ACK sip:1555@127.0.0.1:5060 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1\r\n"
		 "From: <sip:alice@10.0.0.1>;tag=abc\r\n"
		 "To: <sip:1555@127.0.0.1>;tag=%sx\r\n"
		 "Call-ID: 42@10.0.0.1\r\n"
		 "CSeq: 1 ACK\r\n\r\n", TAG);
	ck_assert_int_eq(parse(msg, &m), OVERLOAD_OTHER);   /* another tag: Sofia's */
}
END_TEST

/* What the gate must never shed. */
START_TEST(test_left_to_sofia)
{
	static const char *const other[] = {
		/* a re-INVITE: To has a tag (addr-spec form, no <>) */
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: sip:a@h;tag=2\r\nCall-ID: c\r\n"
		"CSeq: 2 INVITE\r\n\r\n",
		/* a BYE, a CANCEL, a REGISTER, an OPTIONS */
		"BYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n",
		"CANCEL sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 CANCEL\r\n\r\n",
		"REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n",
		/* a response to our INVITE */
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		/* INVITE-ish lines that are no INVITE request */
		"INVITEX sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		"INVITE sip:a@h SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		"\r\n\r\n",
		"",
		/* malformed: no Via, two From, no Call-ID, no CSeq, CSeq of another method,
		 * no empty line, a header line without a colon, a To with an unclosed < */
		"INVITE sip:a@h SIP/2.0\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"f: <sip:x@h>;tag=9\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCSeq: 1 INVITE\r\n\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\n\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nGarbage\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
		"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h;tag=2\r\nCall-ID: c\r\n"
		"CSeq: 1 INVITE\r\n\r\n",
	};
	struct overload_msg m;

	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
		ck_assert_msg(parse(other[i], &m) == OVERLOAD_OTHER, "shed: %s", other[i]);

	/* The same shape, well-formed and with LF line ends only, is a new INVITE. */
	ck_assert_int_eq(parse("INVITE sip:a@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
			       "From: <sip:b@h>;tag=1\nTo: <sip:a@h>\nCall-ID: c\n"
			       "CSeq: 1 INVITE\n\n", &m), OVERLOAD_NEW_INVITE);
}
END_TEST

/* More Vias than kept: left to Sofia, never answered with some missing. */
/* A response's From tag: what dgram.c routes public-port answers by. */
START_TEST(test_response_from_tag)
{
	const char *ok = "SIP/2.0 200 OK\r\n"
		"Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1;rport=5060\r\n"
		"f: \"B2B\" <sip:a@example.net>;x=1;tag=edge1-3-00ff\r\n"
		"To: <sip:bob@192.0.2.1>;tag=phone\r\n"
		"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
	const char *no_tag = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n"
		"From: <sip:a@example.net>\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n"
		"CSeq: 1 BYE\r\n\r\n";
	const char *request = "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n"
		"From: <sip:a@x>;tag=edge1-0-1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n"
		"CSeq: 1 OPTIONS\r\n\r\n";
	const char *twice = "SIP/2.0 200 OK\r\nFrom: <sip:a@x>;tag=edge1-0-1\r\n"
		"From: <sip:a@x>;tag=edge1-1-1\r\n\r\n";
	struct overload_span tag;

	ck_assert_int_eq(overload_read_response(ok, strlen(ok), &tag), 0);
	ck_assert_int_eq((int)tag.len, (int)strlen("edge1-3-00ff"));
	ck_assert(memcmp(tag.p, "edge1-3-00ff", tag.len) == 0);
	ck_assert_int_eq(overload_read_response(no_tag, strlen(no_tag), &tag), -1);
	ck_assert_int_eq(overload_read_response(request, strlen(request), &tag), -1);
	ck_assert_int_eq(overload_read_response(twice, strlen(twice), &tag), -1);
	ck_assert_int_eq(overload_read_response(ok, 10, &tag), -1);
}
END_TEST

START_TEST(test_too_many_vias)
{
	char msg[4096];
	size_t n = 0;
	struct overload_msg m;

	n += (size_t)snprintf(msg + n, sizeof msg - n, "INVITE sip:a@h SIP/2.0\r\n");
	for (int i = 0; i <= OVERLOAD_MAX_VIAS; i++)
		n += (size_t)snprintf(msg + n, sizeof msg - n,
				      "Via: SIP/2.0/UDP h%d;branch=z9hG4bK%d\r\n", i, i);
	snprintf(msg + n, sizeof msg - n, "From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\n"
		 "Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
	ck_assert_int_eq(parse(msg, &m), OVERLOAD_OTHER);
	/* One fewer is fine. */
	memmove(strstr(msg, "Via: SIP/2.0/UDP h0;"), strstr(msg, "Via: SIP/2.0/UDP h1;"),
		strlen(strstr(msg, "Via: SIP/2.0/UDP h1;")) + 1);
	ck_assert_int_eq(parse(msg, &m), OVERLOAD_NEW_INVITE);
	ck_assert_uint_eq(m.n_via, OVERLOAD_MAX_VIAS);
}
END_TEST

static Suite *overload_suite(void)
{
	Suite *s = suite_create("overload");
	TCase *tc = tcase_create("raw");

	tcase_add_test(tc, test_new_invite_and_answer);
	tcase_add_test(tc, test_our_ack);
	tcase_add_test(tc, test_left_to_sofia);
	tcase_add_test(tc, test_too_many_vias);
	tcase_add_test(tc, test_response_from_tag);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(overload_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
