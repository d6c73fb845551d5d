/*
 * check_metrics — the Prometheus text of b2bua/metrics_text.c.
 *
 * Design note.  The page is rendered from a real shared table (shm_create
 * in this process) whose counters, codes, calls and histograms the test
 * sets itself, and then read back line by line: exact sample lines, the
 * cumulative buckets of a histogram, `_count` equal to the +Inf bucket, and
 * a HELP and TYPE line before every family.  The number formatting and the
 * metrics_address parser are checked on their own, edge cases included.
 */
#include "b2bua/metrics_text.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does `text` hold the whole line `line`? */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static void assert_line(const char *text, const char *line)
{
	ck_assert_msg(has_line(text, line), "line \"%s\" missing from:\n%s", line, text);
}

START_TEST(test_seconds)
{
	static const struct { uint64_t us; const char *s; } cases[] = {
		{ 0, "0" }, { 1, "0.000001" }, { 100, "0.0001" }, { 5000, "0.005" },
		{ 250000, "0.25" }, { 1000000, "1" }, { 2500000, "2.5" }, { 30000000, "30" },
		{ 1234567891, "1234.567891" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(metrics_text_seconds(cases[i].us, buf, sizeof buf), 0);
		ck_assert_str_eq(buf, cases[i].s);
	}
	ck_assert_int_eq(metrics_text_seconds(2500000, buf, 3), -ENOSPC);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_address)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	const char *why = NULL;
	socklen_t len = 0;
	char ip[INET6_ADDRSTRLEN];

	ck_assert_int_eq(metrics_address_parse("127.0.0.1:9464", &ss, &len, &why), 0);
	ck_assert_int_eq(a4->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(a4->sin_port), 9464);
	ck_assert_uint_eq(len, sizeof *a4);
	ck_assert_str_eq(inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof ip), "127.0.0.1");

	ck_assert_int_eq(metrics_address_parse("[::1]:1", &ss, &len, &why), 0);
	ck_assert_int_eq(a6->sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(a6->sin6_port), 1);
	ck_assert_uint_eq(len, sizeof *a6);
	ck_assert_str_eq(inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof ip), "::1");

	ck_assert_int_eq(metrics_address_parse("::1:9464", NULL, NULL, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "brackets"));
	ck_assert_int_eq(metrics_address_parse("localhost:9464", NULL, NULL, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "not looked up"));
	ck_assert_int_eq(metrics_address_parse("127.0.0.1:0", NULL, NULL, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "port"));
	ck_assert_int_eq(metrics_address_parse("", NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(metrics_address_parse(NULL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(metrics_address_parse("[::1:9464", NULL, NULL, &why), -EINVAL);
}
END_TEST

static void add_call(shm_t *shm, const char *call_id, uint8_t state)
{
	struct shm_call c;
	uint32_t slot;

	memset(&c, 0, sizeof c);
	snprintf(c.a.call_id, sizeof c.a.call_id, "%s", call_id);
	c.state = state;
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot), 0);
}

/* What the workers counted is what the page says, summed or per worker. */
START_TEST(test_render)
{
	shm_t *shm;
	char *text;
	size_t len;

	/* Room for 4 workers, 2 configured: workers 2 and 3 are never shown. */
	ck_assert_int_eq(shm_create(16, 4, &shm), 0);
	shm_worker_set(shm, 0, 1234, 5070, 0, 1);
	shm_worker_set(shm, 1, 1235, 5071, 1, 1);
	shm_counter_add(shm, 0, SHM_CTR_CALLS_ANSWERED, 5);
	shm_counter_add(shm, 1, SHM_CTR_CALLS_ANSWERED, 2);
	shm_counter_add(shm, 3, SHM_CTR_CALLS_ANSWERED, 100);
	shm_counter_add(shm, 1, SHM_CTR_MSGS_IN, 42);
	shm_counter_add(shm, 0, SHM_CTR_CDR_WRITTEN, 8);
	shm_gauge_set(shm, 1, SHM_CTR_REDIS_UP, 1);
	shm_gauge_set(shm, 0, SHM_CTR_CONN_OPEN, 3);
	shm_gauge_set(shm, 1, SHM_CTR_CALLS_AT_REST, 6);
	shm_counter_add(shm, 1, SHM_CTR_CALLS_WOKEN, 2);
	shm_counter_add(shm, 1, SHM_CTR_CONN_REFUSED, 11);
	shm_counter_add(shm, 1, SHM_CTR_CONN_IDLE, 2);
	shm_counter_add(shm, 0, SHM_CTR_CONN_MSG_TIMEOUT, 4);
	shm_counter_add(shm, 0, SHM_CTR_CONN_OVERSIZED, 1);
	shm_counter_add(shm, 1, SHM_CTR_CONN_PARTIAL, 5);
	for (int i = 0; i < 3; i++)
		shm_code_count(shm, 0, 486);
	shm_code_count(shm, 1, 200);
	add_call(shm, "a", SHM_CALL_ANSWERED);
	add_call(shm, "b", SHM_CALL_ANSWERED);
	add_call(shm, "c", SHM_CALL_RINGING);
	shm_hist_observe(shm, 0, SHM_HIST_SETUP, 3000);      /* le 0.005 */
	shm_hist_observe(shm, 1, SHM_HIST_SETUP, 20000);     /* le 0.025 */
	shm_hist_observe(shm, 1, SHM_HIST_SETUP, 40000000);  /* above 30 s */
	shm_hist_observe(shm, 1, SHM_HIST_REDIS, 300);       /* le 0.0005 */

	ck_assert_int_eq(metrics_text_render(shm, 2, &text, &len), 0);
	ck_assert_uint_eq(strlen(text), len);
	assert_line(text, "# TYPE b2bua_calls_answered_total counter");
	assert_line(text, "b2bua_calls_answered_total 7");
	assert_line(text, "b2bua_cdr_written_total 8");
	assert_line(text, "b2bua_sip_messages_received_total{worker=\"0\"} 0");
	assert_line(text, "b2bua_sip_messages_received_total{worker=\"1\"} 42");
	ck_assert(!has_line(text, "b2bua_sip_messages_received_total{worker=\"2\"} 0"));
	assert_line(text, "b2bua_redis_up{worker=\"0\"} 0");
	assert_line(text, "b2bua_redis_up{worker=\"1\"} 1");
	assert_line(text, "# TYPE b2bua_connections_open gauge");
	assert_line(text, "b2bua_connections_open{worker=\"0\"} 3");
	assert_line(text, "b2bua_connections_open{worker=\"1\"} 0");
	assert_line(text, "# TYPE b2bua_calls_at_rest gauge");
	assert_line(text, "b2bua_calls_at_rest{worker=\"1\"} 6");
	assert_line(text, "# TYPE b2bua_calls_woken_total counter");
	assert_line(text, "b2bua_calls_woken_total{worker=\"1\"} 2");
	assert_line(text, "# TYPE b2bua_connections_refused_total counter");
	assert_line(text, "b2bua_connections_refused_total{worker=\"1\"} 11");
	assert_line(text, "b2bua_connections_closed_idle_total{worker=\"1\"} 2");
	assert_line(text, "b2bua_connections_closed_message_timeout_total{worker=\"0\"} 4");
	assert_line(text, "b2bua_messages_oversized_total{worker=\"0\"} 1");
	assert_line(text, "b2bua_connections_closed_partial_total{worker=\"1\"} 5");
	assert_line(text, "b2bua_worker_up{worker=\"1\"} 1");
	assert_line(text, "b2bua_worker_restarts_total{worker=\"1\"} 1");
	assert_line(text, "b2bua_worker_restarts_total{worker=\"0\"} 0");
	assert_line(text, "b2bua_final_codes_total{code=\"486\"} 3");
	assert_line(text, "b2bua_final_codes_total{code=\"200\"} 1");
	ck_assert(strstr(text, "b2bua_final_codes_total{code=\"404\"}") == NULL);
	assert_line(text, "b2bua_calls_active{state=\"ANSWERED\"} 2");
	assert_line(text, "b2bua_calls_active{state=\"RINGING\"} 1");
	assert_line(text, "b2bua_calls_active{state=\"TRYING\"} 0");
	/* Cumulative buckets, +Inf = _count, the sum in seconds. */
	assert_line(text, "# TYPE b2bua_call_setup_seconds histogram");
	assert_line(text, "b2bua_call_setup_seconds_bucket{le=\"0.005\"} 1");
	assert_line(text, "b2bua_call_setup_seconds_bucket{le=\"0.01\"} 1");
	assert_line(text, "b2bua_call_setup_seconds_bucket{le=\"0.025\"} 2");
	assert_line(text, "b2bua_call_setup_seconds_bucket{le=\"30\"} 2");
	assert_line(text, "b2bua_call_setup_seconds_bucket{le=\"+Inf\"} 3");
	assert_line(text, "b2bua_call_setup_seconds_count 3");
	assert_line(text, "b2bua_call_setup_seconds_sum 40.023");
	assert_line(text, "b2bua_redis_command_seconds_bucket{worker=\"1\",le=\"0.00025\"} 0");
	assert_line(text, "b2bua_redis_command_seconds_bucket{worker=\"1\",le=\"0.0005\"} 1");
	assert_line(text, "b2bua_redis_command_seconds_count{worker=\"1\"} 1");
	assert_line(text, "b2bua_redis_command_seconds_sum{worker=\"1\"} 0.0003");
	assert_line(text, "b2bua_event_loop_lag_seconds_count{worker=\"0\"} 0");
	ck_assert_msg(text[len - 1] == '\n', "the page ends with a newline");
	free(text);
	shm_destroy(shm);
}
END_TEST

/* Every sample belongs to a family announced by HELP and TYPE before it. */
START_TEST(test_families_announced)
{
	shm_t *shm;
	char *text, *save = NULL;
	size_t len;
	char family[128] = "";

	ck_assert_int_eq(shm_create(8, 2, &shm), 0);
	shm_code_count(shm, 0, 503);
	ck_assert_int_eq(metrics_text_render(shm, 0, &text, &len), 0);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			ck_assert_int_eq(sscanf(line + 7, "%127s", family), 1);
			continue;
		}
		ck_assert_msg(family[0] && strncmp(line, family, strlen(family)) == 0 &&
			      strchr("{ _", line[strlen(family)]) != NULL,
			      "\"%s\" outside its family (\"%s\")", line, family);
		ck_assert_msg(strncmp(line, "b2bua_", 6) == 0, "\"%s\": not b2bua_", line);
	}
	free(text);
	shm_destroy(shm);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("text");

	tcase_add_test(tc, test_seconds);
	tcase_add_test(tc, test_address);
	tcase_add_test(tc, test_render);
	tcase_add_test(tc, test_families_announced);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
