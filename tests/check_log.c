/*
 * check_log — the log's rate limits (b2bua/log.h): a limited kind writes
 * its burst, counts every line it holds back exactly, sums them up in one
 * line when its window ends (by log_limit_flush() or before its next
 * line), and starts afresh after; shapes tell kinds apart by their text
 * without their numbers, and a full table of shapes loses no count.
 *
 * Design note.  Each test sends stderr (where the log goes) to a temporary
 * file and reads back what was written.  Windows are short (100-200 ms) so
 * that real time ends them: no clock is faked.
 */
#include "b2bua/log.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FILE *t_capture;
static int t_saved_stderr = -1;
static char t_text[1 << 20];
static off_t t_read;         /* how far t_captured() has read */

static void t_capture_start(void)
{
	t_capture = tmpfile();
	ck_assert_ptr_nonnull(t_capture);
	t_read = 0;
	t_saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(t_saved_stderr, 0);
	ck_assert_int_ge(dup2(fileno(t_capture), STDERR_FILENO), 0);
}

/* What was logged since t_capture_start() (or the previous t_captured()). */
static const char *t_captured(void)
{
	/* stderr shares the file's offset: read at our own. */
	ssize_t n = pread(fileno(t_capture), t_text, sizeof t_text - 1, t_read);

	ck_assert_int_ge(n, 0);
	t_read += n;
	t_text[n] = '\0';
	return t_text;
}

static void t_capture_stop(void)
{
	dup2(t_saved_stderr, STDERR_FILENO);
	close(t_saved_stderr);
	fclose(t_capture);
}

static int t_count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The sum of every "N more" in text: all the lines held back it reports. */
static long t_held_sum(const char *text)
{
	long sum = 0;

	for (const char *p = strstr(text, " more in the last "); p;
	     p = strstr(p + 1, " more in the last ")) {
		const char *q = p;

		while (q > text && q[-1] >= '0' && q[-1] <= '9')
			q--;
		sum += strtol(q, NULL, 10);
	}
	return sum;
}

static void setup(void)
{
	log_set_level(LOG_INFO);
	log_limit_defaults(LOG_LIMIT_BURST, LOG_LIMIT_WINDOW_MS);
	t_capture_start();
}

static void teardown(void)
{
	t_capture_stop();
}

START_TEST(test_burst_then_exact_summary)
{
	static struct log_limit lim = { .what = "test: garbage", .burst = 3, .window_ms = 200 };
	const char *text;

	for (int i = 0; i < 1003; i++)
		log_limited(&lim, LOG_WARN, "test: garbage number %d", i);
	text = t_captured();
	ck_assert_int_eq(t_count(text, "warn: test: garbage number "), 3);
	ck_assert_ptr_nonnull(strstr(text, "garbage number 2\n"));
	ck_assert_int_eq(t_count(text, " more in the last "), 0);
	ck_assert_uint_eq(lim.held, 1000);

	/* The window has not ended: a flush writes nothing yet. */
	log_limit_flush();
	ck_assert_int_eq(t_count(t_captured(), " more "), 0);

	usleep(250 * 1000);
	log_limit_flush();
	text = t_captured();
	ck_assert_int_eq(t_count(text, "\n"), 1);
	ck_assert_ptr_nonnull(strstr(text, "warn: test: garbage: 1000 more in the last "));
	/* Written once: the flush closed the window. */
	log_limit_flush();
	ck_assert_str_eq(t_captured(), "");
}
END_TEST

START_TEST(test_summary_before_next_line_and_reset)
{
	static struct log_limit lim = { .what = "test: bad", .burst = 2, .window_ms = 100 };
	const char *text;
	const char *sum;
	const char *next;

	for (int i = 0; i < 7; i++)
		log_limited(&lim, LOG_WARN, "test: bad %d", i);
	ck_assert_int_eq(t_count(t_captured(), "test: bad "), 2);
	usleep(150 * 1000);

	/* No flush: the next line of the kind brings the summary first. */
	log_limited(&lim, LOG_WARN, "test: bad again");
	text = t_captured();
	sum = strstr(text, "test: bad: 5 more in the last 1 s\n");
	next = strstr(text, "test: bad again\n");
	ck_assert_ptr_nonnull(sum);
	ck_assert_ptr_nonnull(next);
	ck_assert(sum < next);

	/* A new window: the burst again, the count from zero. */
	ck_assert_uint_eq(lim.held, 0);
	log_limited(&lim, LOG_WARN, "test: bad second");
	log_limited(&lim, LOG_WARN, "test: bad held");
	ck_assert_int_eq(t_count(t_captured(), "test: bad "), 1);
	ck_assert_uint_eq(lim.held, 1);
	usleep(150 * 1000);
	log_limit_flush();
	ck_assert_ptr_nonnull(strstr(t_captured(), "test: bad: 1 more in the last "));
}
END_TEST

START_TEST(test_quiet_window_writes_no_summary)
{
	static struct log_limit lim = { .what = "test: rare", .burst = 2, .window_ms = 100 };

	log_limited(&lim, LOG_WARN, "test: rare 1");
	log_limited(&lim, LOG_WARN, "test: rare 2");
	usleep(150 * 1000);
	log_limit_flush();
	log_limited(&lim, LOG_WARN, "test: rare 3");
	ck_assert_int_eq(t_count(t_captured(), "\n"), 3);
	ck_assert_int_eq(t_count(t_text, " more "), 0);
}
END_TEST

START_TEST(test_below_level_not_counted)
{
	static struct log_limit lim = { .what = "test: debug", .burst = 1, .window_ms = 100 };

	for (int i = 0; i < 10; i++)
		log_limited(&lim, LOG_DEBUG, "test: debug %d", i);
	ck_assert_str_eq(t_captured(), "");
	ck_assert_uint_eq(lim.held, 0);
	ck_assert_uint_eq(lim.shown, 0);
}
END_TEST

/* The summary is at the most severe level held back. */
START_TEST(test_summary_level)
{
	static struct log_limit lim = { .what = "test: mixed", .burst = 1, .window_ms = 100 };

	log_limited(&lim, LOG_INFO, "test: mixed first");
	log_limited(&lim, LOG_INFO, "test: mixed held info");
	log_limited(&lim, LOG_ERROR, "test: mixed held error");
	usleep(150 * 1000);
	log_limit_flush();
	ck_assert_ptr_nonnull(strstr(t_captured(), "error: test: mixed: 2 more in the last "));
}
END_TEST

START_TEST(test_shapes_ignore_numbers)
{
	const char *text;

	log_limit_defaults(2, 100);
	for (int i = 0; i < 50; i++) {
		log_limited_shape(LOG_WARN, "sofia: garbage from udp/10.0.0.%d:%d", i, 5000 + i);
		log_limited_shape(LOG_WARN, "sofia: Bad message %d", i);
	}
	text = t_captured();
	ck_assert_int_eq(t_count(text, "sofia: garbage from udp/10.0.0."), 2);
	ck_assert_int_eq(t_count(text, "sofia: Bad message "), 2);
	usleep(150 * 1000);
	log_limit_flush();
	text = t_captured();
	ck_assert_ptr_nonnull(strstr(text, "sofia: garbage from udp/#.#.#.#:#: 48 more in the last "));
	ck_assert_ptr_nonnull(strstr(text, "sofia: Bad message #: 48 more in the last "));
}
END_TEST

/* More kinds than the table holds: the rest share one limit; every line is counted. */
START_TEST(test_shapes_table_full_loses_no_count)
{
	const int kinds = 3 * LOG_LIMIT_SHAPES;
	const int per_kind = 20;
	const char *text;
	int shown;

	log_limit_defaults(1, 100);
	for (int round = 0; round < per_kind; round++)
		for (int k = 0; k < kinds; k++)
			log_limited_shape(LOG_WARN, "kind %c%c line %d", 'a' + k % 26,
					  'a' + k / 26, round);
	usleep(150 * 1000);
	log_limit_flush();
	text = t_captured();
	shown = t_count(text, " line ") - t_count(text, " line #: ");   /* not summaries */
	ck_assert_int_eq(shown + t_held_sum(text), kinds * per_kind);
	/* At most one line per entry of the table and one for the overflow. */
	ck_assert_int_le(shown, LOG_LIMIT_SHAPES + 1);
	ck_assert_ptr_nonnull(strstr(text, "lines of other kinds (too many at once): "));
}
END_TEST

/* More limited sites than the pending list holds: their summaries still come. */
START_TEST(test_many_sites_lose_no_count)
{
	static struct log_limit lims[100];
	const char *text;

	for (int i = 0; i < 100; i++) {
		lims[i] = (struct log_limit){ .what = "test: site", .burst = 1, .window_ms = 100 };
		for (int j = 0; j < 4; j++)
			log_limited(&lims[i], LOG_WARN, "test: site line");
	}
	usleep(150 * 1000);
	log_limit_flush();
	for (int i = 0; i < 100; i++)
		log_limited(&lims[i], LOG_WARN, "test: site line");
	text = t_captured();
	ck_assert_int_eq(t_count(text, "test: site: 3 more in the last "), 100);
	ck_assert_int_eq(t_held_sum(text), 300);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("limits");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_burst_then_exact_summary);
	tcase_add_test(tc, test_summary_before_next_line_and_reset);
	tcase_add_test(tc, test_quiet_window_writes_no_summary);
	tcase_add_test(tc, test_below_level_not_counted);
	tcase_add_test(tc, test_summary_level);
	tcase_add_test(tc, test_shapes_ignore_numbers);
	tcase_add_test(tc, test_shapes_table_full_loses_no_count);
	tcase_add_test(tc, test_many_sites_lose_no_count);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
