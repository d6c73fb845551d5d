/*
 * check_hold — hold and resume detection from SDP (flow 11).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "worker/hold.h"

static enum hold_state of(const char *sdp)
{
	return hold_state_of(sdp, strlen(sdp));
}

#define SDP_HEAD "v=0\r\no=u 1 2 IN IP4 192.0.2.1\r\ns=-\r\n"

START_TEST(test_sendrecv_is_off)
{
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"), HOLD_OFF);
	/* No direction attribute means sendrecv. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\n"), HOLD_OFF);
	/* recvonly is not a hold by the offerer. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n"), HOLD_OFF);
}
END_TEST

START_TEST(test_hold_forms)
{
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 0.0.0.0\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\n"), HOLD_ON);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"), HOLD_ON);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=inactive\r\n"), HOLD_ON);
	/* Session-level direction applies to every stream. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\n"
			    "m=audio 4000 RTP/AVP 0\r\n"), HOLD_ON);
	/* Media-level 0.0.0.0 overrides a real session address. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n"), HOLD_ON);
}
END_TEST

START_TEST(test_partial_hold_is_off)
{
	/* Audio held, video still flowing: the call is not on hold. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
			    "m=video 4002 RTP/AVP 31\r\na=sendrecv\r\n"), HOLD_OFF);
	/* A disabled stream (port 0) says nothing. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 4000 RTP/AVP 0\r\na=inactive\r\n"
			    "m=video 0 RTP/AVP 31\r\n"), HOLD_ON);
}
END_TEST

START_TEST(test_no_state)
{
	ck_assert_int_eq(hold_state_of(NULL, 0), HOLD_UNKNOWN);
	ck_assert_int_eq(of(""), HOLD_UNKNOWN);
	ck_assert_int_eq(of("this is not sdp"), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"), HOLD_UNKNOWN);
}
END_TEST

/*
 * m= lines that make Sofia-SIP's SDP parser loop for ever, allocating
 * gigabytes (found by fuzz/fuzz_hold and fuzz/fuzz_sip; seeds in
 * fuzz/corpus/hold/): refused before parsing, at once.  Check's default
 * 4 s timeout fails the test if one reaches the parser again.
 */
START_TEST(test_parser_traps_refused)
{
	static const char m_high[] = SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
				     "m=audio 6000 a\x80\x80\r\n";
	static const char m_nul[] = SDP_HEAD "c=IN IP6 ::\r\nt=0 0\r\n"
				    "m=audio 6000 R]\x80\0\0\0\0\0\0\0$\r\na=rtpmap:8 PCMA/8000\r\n";

	ck_assert_int_eq(hold_state_of(m_high, sizeof m_high - 1), HOLD_UNKNOWN);
	ck_assert_int_eq(hold_state_of(m_nul, sizeof m_nul - 1), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 6000 RTP/AV\xb0\xdd 0\r\n"), HOLD_UNKNOWN);
	/* Plain ASCII too: a format that cannot start a token, after a non-RTP proto. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 6000 a(( 0\r\n"), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 6PR000T /AVP 0\r\n"), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 0/3/3 /03.PT.\r\n"), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=image 6000 udptl (t38\r\n"), HOLD_UNKNOWN);
	/* ... while what RFC 4566 allows is parsed as before. */
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 6000/2 RTP/AVP 0 8 101\r\na=sendonly\r\n"), HOLD_ON);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=image 6000 udptl t38\r\n"), HOLD_OFF);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio  6000 UDP/TLS/RTP/SAVPF 111 \r\n"), HOLD_OFF);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=image 6000 udptl\t\t\r\n"), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r \t"
			    "m=audio 6002 do 60\xff\xffsendonly\r\n"), HOLD_UNKNOWN);
	ck_assert_int_eq(of(SDP_HEAD "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
			    "m=audio 6000 RTP/\x15\x15" "AVP 0\r\n"), HOLD_UNKNOWN);
	/* UTF-8 where SDP allows text is fine. */
	ck_assert_int_eq(of("v=0\r\no=u 1 2 IN IP4 192.0.2.1\r\ns=Caf\xc3\xa9\r\n"
			    "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
			    "a=sendonly\r\na=label:\xc3\xa9t\xc3\xa9\r\n"), HOLD_ON);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hold");
	TCase *tc = tcase_create("sdp");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_sendrecv_is_off);
	tcase_add_test(tc, test_hold_forms);
	tcase_add_test(tc, test_partial_hold_is_off);
	tcase_add_test(tc, test_no_state);
	tcase_add_test(tc, test_parser_traps_refused);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
