/*
 * check_session_timer — RFC 4028 negotiation and timer arithmetic
 * (worker/session_timer.c).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "worker/session_timer.h"

static const struct session_timer_cfg cfg = { .session_expires = 1800, .min_se = 90 };

static struct session_timer uas(const struct session_timer_cfg *c, unsigned se,
				enum session_timer_refresher r, unsigned min_se, int supported)
{
	struct session_timer_hdrs req = { se, r, min_se, supported };
	struct session_timer st;
	unsigned m = 0;

	ck_assert_int_eq(session_timer_uas(c, &req, &st, &m), 0);
	return st;
}

START_TEST(test_uas_too_small_is_422)
{
	struct session_timer_hdrs req = { 60, SESSION_TIMER_ANY, 0, 1 };
	struct session_timer st;
	unsigned m = 0;

	ck_assert_int_eq(session_timer_uas(&cfg, &req, &st, &m), -ERANGE);
	ck_assert_uint_eq(m, 90);
	/* The 422 names the larger of our minimum and the request's. */
	req.se = 80;
	req.min_se = 120;
	ck_assert_int_eq(session_timer_uas(&cfg, &req, &st, &m), -ERANGE);
	ck_assert_uint_eq(m, 120);
	/* Exactly the minimum is accepted. */
	req.se = 90;
	req.min_se = 0;
	ck_assert_int_eq(session_timer_uas(&cfg, &req, &st, &m), 0);
	ck_assert_uint_eq(st.interval, 90);
}
END_TEST

START_TEST(test_uas_interval)
{
	/* Shorter than ours: kept. */
	ck_assert_uint_eq(uas(&cfg, 600, SESSION_TIMER_ANY, 0, 1).interval, 600);
	/* Longer than ours: shortened to ours ... */
	ck_assert_uint_eq(uas(&cfg, 7200, SESSION_TIMER_ANY, 0, 1).interval, 1800);
	/* ... but never below the request's Min-SE. */
	ck_assert_uint_eq(uas(&cfg, 7200, SESSION_TIMER_ANY, 3600, 1).interval, 3600);
	/* No Session-Expires: ours, or the request's Min-SE when larger. */
	ck_assert_uint_eq(uas(&cfg, 0, SESSION_TIMER_ANY, 0, 0).interval, 1800);
	ck_assert_uint_eq(uas(&cfg, 0, SESSION_TIMER_ANY, 2000, 1).interval, 2000);
}
END_TEST

START_TEST(test_uas_refresher)
{
	/* A peer with the extension refreshes unless it asks us to. */
	ck_assert_int_eq(uas(&cfg, 600, SESSION_TIMER_ANY, 0, 1).we_refresh, 0);
	ck_assert_int_eq(uas(&cfg, 600, SESSION_TIMER_UAC, 0, 1).we_refresh, 0);
	ck_assert_int_eq(uas(&cfg, 600, SESSION_TIMER_UAS, 0, 1).we_refresh, 1);
	/* A peer without it cannot: we do, and it gets no Require. */
	ck_assert_int_eq(uas(&cfg, 0, SESSION_TIMER_ANY, 0, 0).we_refresh, 1);
	ck_assert_int_eq(uas(&cfg, 0, SESSION_TIMER_ANY, 0, 0).peer_timer, 0);
	ck_assert_int_eq(uas(&cfg, 600, SESSION_TIMER_UAC, 0, 0).we_refresh, 1);
}
END_TEST

START_TEST(test_off)
{
	const struct session_timer_cfg off = { .session_expires = 0, .min_se = 90 };
	struct session_timer_hdrs req = { 30, SESSION_TIMER_UAC, 0, 1 };
	struct session_timer st;
	unsigned se = 1, m = 1;

	/* Off: no 422 and no session timer, whatever was asked. */
	ck_assert_int_eq(session_timer_uas(&off, &req, &st, &m), 0);
	ck_assert_uint_eq(st.interval, 0);
	session_timer_offer(&off, NULL, &se, &m);
	ck_assert_uint_eq(se, 0);
	ck_assert_uint_eq(m, 0);
}
END_TEST

START_TEST(test_uac)
{
	struct session_timer_hdrs resp = { 0, SESSION_TIMER_ANY, 0, 0 };
	struct session_timer st, cur = { 600, 1, 1 };
	unsigned se, m;

	session_timer_offer(&cfg, NULL, &se, &m);
	ck_assert_uint_eq(se, 1800);
	ck_assert_uint_eq(m, 90);
	/* A refresh offers the interval in force. */
	session_timer_offer(&cfg, &cur, &se, &m);
	ck_assert_uint_eq(se, 600);
	/* A 2xx without Session-Expires: no session timer (RFC 4028 7.2). */
	session_timer_uac(&resp, NULL, &st);
	ck_assert_uint_eq(st.interval, 0);
	ck_assert_int_eq(st.we_refresh, 0);
	/* With one: its interval; no refresher named means we refresh. */
	resp.se = 900;
	session_timer_uac(&resp, NULL, &st);
	ck_assert_uint_eq(st.interval, 900);
	ck_assert_int_eq(st.we_refresh, 1);
	resp.refresher = SESSION_TIMER_UAS;
	session_timer_uac(&resp, NULL, &st);
	ck_assert_int_eq(st.we_refresh, 0);
	resp.refresher = SESSION_TIMER_UAC;
	session_timer_uac(&resp, NULL, &st);
	ck_assert_int_eq(st.we_refresh, 1);
}
END_TEST

START_TEST(test_uac_refresh_of_a_peer_without_timers)
{
	struct session_timer_hdrs plain = { 0, SESSION_TIMER_ANY, 0, 0 };
	struct session_timer_hdrs with = { 0, SESSION_TIMER_ANY, 0, 1 };
	struct session_timer ours = { 6, 1, 0 }, theirs = { 6, 0, 1 }, st;

	/* We refresh for a peer without the extension: its plain 2xx keeps it. */
	session_timer_uac(&plain, &ours, &st);
	ck_assert_uint_eq(st.interval, 6);
	ck_assert_int_eq(st.we_refresh, 1);
	/* A peer with it turns the timer off by leaving Session-Expires out ... */
	session_timer_uac(&with, &ours, &st);
	ck_assert_uint_eq(st.interval, 0);
	/* ... and so does any 2xx without it when the peer was the refresher. */
	session_timer_uac(&plain, &theirs, &st);
	ck_assert_uint_eq(st.interval, 0);
}
END_TEST

START_TEST(test_retry_after_422)
{
	unsigned se = 0;

	ck_assert_int_eq(session_timer_retry(1800, 3600, &se), 0);
	ck_assert_uint_eq(se, 3600);
	ck_assert_int_eq(session_timer_retry(1800, 1800, &se), -ERANGE);
	ck_assert_int_eq(session_timer_retry(1800, 90000, &se), -ERANGE);
}
END_TEST

START_TEST(test_deadlines)
{
	struct session_timer ours = { 90, 1, 1 }, theirs = { 90, 0, 1 }, big = { 1800, 0, 1 };
	struct session_timer none = { 0, 0, 0 };

	/* We refresh at half the interval; the session is gone at its end. */
	ck_assert_uint_eq(session_timer_refresh_at(&ours, 1000), 1000 + 45000);
	ck_assert_uint_eq(session_timer_expires_at(&ours, 1000), 1000 + 90000);
	/* The peer refreshes: gone at the interval less min(32 s, interval/3). */
	ck_assert_uint_eq(session_timer_refresh_at(&theirs, 1000), 0);
	ck_assert_uint_eq(session_timer_expires_at(&theirs, 1000), 1000 + 60000);
	ck_assert_uint_eq(session_timer_expires_at(&big, 0), 1800000 - 32000);
	ck_assert_uint_eq(session_timer_expires_at(&none, 1000), 0);
	ck_assert_uint_eq(session_timer_refresh_at(&none, 1000), 0);
	ck_assert(session_timer_ours(&ours));
	ck_assert(!session_timer_ours(&theirs));
	ck_assert(!session_timer_ours(&none));
}
END_TEST

START_TEST(test_refresher_names)
{
	struct session_timer ours = { 90, 1, 1 }, theirs = { 90, 0, 1 };

	ck_assert_str_eq(session_timer_refresher_name(&ours, 1), "uac");
	ck_assert_str_eq(session_timer_refresher_name(&ours, 0), "uas");
	ck_assert_str_eq(session_timer_refresher_name(&theirs, 1), "uas");
	ck_assert_str_eq(session_timer_refresher_name(&theirs, 0), "uac");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("session_timer");
	TCase *tc = tcase_create("rfc4028");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_uas_too_small_is_422);
	tcase_add_test(tc, test_uas_interval);
	tcase_add_test(tc, test_uas_refresher);
	tcase_add_test(tc, test_off);
	tcase_add_test(tc, test_uac);
	tcase_add_test(tc, test_uac_refresh_of_a_peer_without_timers);
	tcase_add_test(tc, test_retry_after_422);
	tcase_add_test(tc, test_deadlines);
	tcase_add_test(tc, test_refresher_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
