/*
 * check_config_reload — unit tests for b2bua/config_reload.c (which keys a
 * reload applies, which wait for a restart, the configuration it runs) and
 * shm/board.c (how that configuration reaches the children).
 *
 * Each comparison loads two small files written with mkstemp() in /tmp:
 * the running configuration and the edited one, as the master does on
 * SIGHUP.  The board is checked across a fork, as the children use it.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "b2bua/config.h"
#include "b2bua/config_keys.h"
#include "b2bua/config_reload.h"
#include "shm/board.h"

/* The keys both files share; each test adds its own lines. */
#define BASE \
	"listen = \"127.0.0.1\";\n" \
	"sip_port = 5060;\n" \
	"worker_port_base = 5070;\n" \
	"workers = 2;\n" \
	"log_level = \"info\";\n"

#define ROUTE_A "routes = ( { prefix = \"1\"; target = \"sip:127.0.0.1:5080;transport=udp\"; } );\n"
#define ROUTE_B "routes = ( { prefix = \"1\"; target = \"sip:127.0.0.1:5081;transport=udp\"; } );\n"

/* Large (PATH_MAX fields, 256 routes): off the stack. */
static struct config *load(const char *text)
{
	struct config *cfg = calloc(1, sizeof *cfg);
	char path[] = "/tmp/check_config_reload.XXXXXX", err[512];
	size_t len = strlen(text);
	int fd = mkstemp(path);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	ck_assert_msg(config_load(path, cfg, err, sizeof err) == 0, "%s", err);
	unlink(path);
	/* Both must look read from the same file, as on a reload. */
	memset(cfg->path, 0, sizeof cfg->path);
	snprintf(cfg->path, sizeof cfg->path, "/etc/b2bua/b2bua.conf");
	return cfg;
}

/* The plan for running `cur_text` and reloading `next_text`; *next_out is the config to run. */
static void plan_of(const char *cur_text, const char *next_text, struct config_reload_plan *p,
		    struct config **cur_out, struct config **next_out)
{
	*cur_out = load(cur_text);
	*next_out = load(next_text);
	config_reload_plan(*cur_out, *next_out, p);
}

/* "a b c": the names of a list, for comparing with one string. */
static const char *names(const char *const *keys, size_t n)
{
	static char buf[2][512];
	static int which;
	char *b = buf[which ^= 1];

	b[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(b + strlen(b), sizeof buf[0] - strlen(b), "%s%s", i ? " " : "", keys[i]);
	return b;
}

/* ------------------------------------------------------------ the tables */

/* Every key the file may contain has its bytes in the field table: a new
 * key without its line would reload without ever being named. */
START_TEST(test_every_key_has_a_field)
{
	const char *key;
	size_t off, size, off2, size2, n = 0;

	for (size_t i = 0; (key = config_key_name(i)) != NULL; i++, n++) {
		ck_assert_msg(config_key_field(key, &off, &size, &off2, &size2) == 0,
			      "key %s has no line in config_reload.c's field table", key);
		ck_assert_uint_gt(size, 0);
		ck_assert_uint_le(off + size, sizeof(struct config));
		ck_assert_uint_le(off2 + size2, sizeof(struct config));
	}
	ck_assert_uint_gt(n, 40);
	ck_assert_int_eq(config_key_field("no_such_key", &off, &size, &off2, &size2), -ENOENT);
}
END_TEST

START_TEST(test_restart_only_keys)
{
	static const char *const restart[] = {
		"node_id", "workers", "listen", "sip_port", "worker_port_base", "udp_rcvbuf",
		"socket_io", "call_capacity", "cli_socket", "metrics_address", "redis_address",
		"cdr_spool_dir",
	};
	static const char *const live[] = {
		"routes", "trusted", "log_level", "rate_limit_invite", "invite_timeout",
		"max_call_duration", "call_rest_after", "session_expires", "nonce_ttl", "auth_secret",
		"no_answer_timeout", "overload_setup_calls", "nat_keepalive_interval",
		"drain_timeout", "realm",
		"tcp_idle_timeout", "tcp_message_timeout", "tcp_max_connections",
		"tcp_max_per_source",
	};

	for (size_t i = 0; i < sizeof restart / sizeof restart[0]; i++)
		ck_assert_msg(config_key_restart_only(restart[i]), "%s", restart[i]);
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		ck_assert_msg(!config_key_restart_only(live[i]), "%s", live[i]);
	/* Any other name, a key added later included, reloads by default. */
	ck_assert(!config_key_restart_only("some_future_key"));
}
END_TEST

/* ------------------------------------------------------------ plans */

START_TEST(test_same_file_changes_nothing)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	plan_of(BASE ROUTE_A, BASE ROUTE_A, &p, &cur, &next);
	ck_assert_uint_eq(p.n_applied, 0);
	ck_assert_uint_eq(p.n_restart, 0);
	ck_assert_int_eq(memcmp(cur, next, sizeof *cur), 0);
	free(cur);
	free(next);
}
END_TEST

/* A route and the log level apply; sip_port is named and kept. */
START_TEST(test_applied_and_restart_needed)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	plan_of(BASE ROUTE_A,
		"listen = \"127.0.0.1\";\nsip_port = 5061;\nworker_port_base = 5070;\n"
		"workers = 2;\nlog_level = \"debug\";\n" ROUTE_B, &p, &cur, &next);
	ck_assert_str_eq(names(p.applied, p.n_applied), "log_level routes");
	ck_assert_str_eq(names(p.restart_needed, p.n_restart), "sip_port");
	ck_assert_int_eq(next->sip_port, 5060);               /* kept */
	ck_assert_int_eq(next->log_level, LOG_DEBUG);          /* applied */
	ck_assert_str_eq(next->routes[0].target, "sip:127.0.0.1:5081;transport=udp");
	free(cur);
	free(next);
}
END_TEST

/* The digest algorithms reload, under one name whichever key spelled them
 * (auth_sha256 is the deprecated alias of auth_algorithms). */
START_TEST(test_auth_algorithms)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	plan_of(BASE ROUTE_A, BASE "auth_algorithms = [ \"SHA-256\", \"MD5\" ];\n" ROUTE_A,
		&p, &cur, &next);
	ck_assert_str_eq(names(p.applied, p.n_applied), "auth_algorithms");
	ck_assert_uint_eq(p.n_restart, 0);
	ck_assert_uint_eq(next->n_auth_algorithms, 2);
	ck_assert_int_eq(next->auth_algorithms[0], DIGEST_SHA256);
	free(cur);
	free(next);

	plan_of(BASE ROUTE_A, BASE "auth_sha256 = true;\n" ROUTE_A, &p, &cur, &next);
	ck_assert_str_eq(names(p.applied, p.n_applied), "auth_algorithms");
	free(cur);
	free(next);
}
END_TEST

/* A list that only grows or shrinks (its count) is a change too; and a
 * key removed from the file is a change back to its default. */
START_TEST(test_lists_and_removed_keys)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	plan_of(BASE ROUTE_A "trusted = ( \"192.0.2.1\" );\nmax_forwards = 30;\n",
		BASE ROUTE_A "trusted = ( \"192.0.2.1\", \"192.0.2.2\" );\n", &p, &cur, &next);
	ck_assert_str_eq(names(p.applied, p.n_applied), "max_forwards trusted");
	ck_assert_uint_eq(p.n_restart, 0);
	ck_assert_int_eq(next->max_forwards, 70);
	ck_assert_uint_eq(next->n_trusted, 2);
	free(cur);
	free(next);

	plan_of(BASE ROUTE_A, BASE, &p, &cur, &next);
	ck_assert_str_eq(names(p.applied, p.n_applied), "routes");
	ck_assert_uint_eq(next->n_routes, 0);
	free(cur);
	free(next);
}
END_TEST

/* Restart-only keys keep every byte of their running value, lists too. */
START_TEST(test_restart_only_kept_whole)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	plan_of(BASE "redis_sentinels = ( \"127.0.0.1:26379\" );\nredis_master_name = \"m\";\n"
		"call_capacity = 1024;\n",
		BASE "redis_sentinels = ( \"127.0.0.1:26379\", \"127.0.0.1:26380\" );\n"
		"redis_master_name = \"m2\";\ncall_capacity = 2048;\n",
		&p, &cur, &next);
	ck_assert_uint_eq(p.n_applied, 0);
	ck_assert_str_eq(names(p.restart_needed, p.n_restart),
			 "call_capacity redis_sentinels redis_master_name");
	ck_assert_int_eq(memcmp(cur, next, sizeof *cur), 0);
	free(cur);
	free(next);
}
END_TEST

/* No auth_secret in the new file: the running one stays (it may be the
 * random secret made at start), and nothing is reported; a new secret in
 * the file is applied. */
START_TEST(test_auth_secret)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	cur = load(BASE);
	snprintf(cur->auth_secret, sizeof cur->auth_secret, "0123456789abcdef0123");
	next = load(BASE);
	config_reload_plan(cur, next, &p);
	ck_assert_uint_eq(p.n_applied, 0);
	ck_assert_str_eq(next->auth_secret, "0123456789abcdef0123");
	free(next);

	next = load(BASE "auth_secret = \"a-brand-new-secret-0123\";\n");
	config_reload_plan(cur, next, &p);
	ck_assert_str_eq(names(p.applied, p.n_applied), "auth_secret");
	ck_assert_str_eq(next->auth_secret, "a-brand-new-secret-0123");
	free(cur);
	free(next);
}
END_TEST

/* A realm that follows domain waits for the restart with it; a realm of
 * its own applies at once. */
START_TEST(test_realm_follows_domain)
{
	struct config_reload_plan p;
	struct config *cur, *next;

	plan_of(BASE "domain = \"a.example\";\n", BASE "domain = \"b.example\";\n",
		&p, &cur, &next);
	ck_assert_uint_eq(p.n_applied, 0);
	ck_assert_str_eq(names(p.restart_needed, p.n_restart), "domain");
	ck_assert_str_eq(next->realm, "a.example");
	free(cur);
	free(next);

	plan_of(BASE "domain = \"a.example\";\n",
		BASE "domain = \"a.example\";\nrealm = \"r.example\";\n", &p, &cur, &next);
	ck_assert_str_eq(names(p.applied, p.n_applied), "realm");
	ck_assert_str_eq(next->realm, "r.example");
	free(cur);
	free(next);
}
END_TEST

START_TEST(test_format)
{
	struct config_reload_plan p = { 0 };
	char buf[128], tiny[20];

	ck_assert_int_eq(config_reload_format(&p, buf, sizeof buf), 0);
	ck_assert_str_eq(buf, "applied\nrestart_needed\n");
	p.applied[p.n_applied++] = "routes";
	p.applied[p.n_applied++] = "log_level";
	p.restart_needed[p.n_restart++] = "sip_port";
	ck_assert_int_eq(config_reload_format(&p, buf, sizeof buf), 0);
	ck_assert_str_eq(buf, "applied routes log_level\nrestart_needed sip_port\n");
	ck_assert_int_eq(config_reload_format(&p, tiny, sizeof tiny), -ENOSPC);
}
END_TEST

/* ------------------------------------------------------------ the board */

START_TEST(test_board_across_fork)
{
	struct config *cfg = load(BASE ROUTE_B);
	struct config *got = calloc(1, sizeof *got);
	board_t *b;
	uint32_t gen, gen2;
	pid_t pid;
	int status;

	ck_assert_int_eq(board_create(sizeof *cfg, &b), 0);
	/* Nothing published yet: no generation is there. */
	ck_assert_int_eq(board_get(b, 1, got, sizeof *got), -ESTALE);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The child waits for generation 1, as a worker told by CTL_RELOAD would. */
		for (int i = 0; i < 2000; i++) {
			if (board_get(b, 1, got, sizeof *got) == 0)
				_exit(memcmp(got, cfg, sizeof *cfg) == 0 ? 0 : 2);
			usleep(1000);
		}
		_exit(3);
	}
	ck_assert_int_eq(board_put(b, cfg, sizeof *cfg, &gen), 0);
	ck_assert_uint_eq(gen, 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);

	/* A newer generation replaces it: the old one is stale. */
	ck_assert_int_eq(board_put(b, cfg, sizeof *cfg, &gen2), 0);
	ck_assert_uint_eq(gen2, 2);
	ck_assert_int_eq(board_get(b, 1, got, sizeof *got), -ESTALE);
	ck_assert_int_eq(board_get(b, 2, got, sizeof *got), 0);
	ck_assert_int_eq(board_get(b, 2, got, sizeof *got - 1), -EMSGSIZE);
	ck_assert_int_eq(board_put(b, cfg, sizeof *cfg + 1, &gen), -EMSGSIZE);
	board_destroy(b);
	free(cfg);
	free(got);
}
END_TEST

static Suite *config_reload_suite(void)
{
	Suite *s = suite_create("config_reload");
	TCase *tc = tcase_create("plan");

	tcase_add_test(tc, test_every_key_has_a_field);
	tcase_add_test(tc, test_restart_only_keys);
	tcase_add_test(tc, test_same_file_changes_nothing);
	tcase_add_test(tc, test_applied_and_restart_needed);
	tcase_add_test(tc, test_lists_and_removed_keys);
	tcase_add_test(tc, test_auth_algorithms);
	tcase_add_test(tc, test_restart_only_kept_whole);
	tcase_add_test(tc, test_auth_secret);
	tcase_add_test(tc, test_realm_follows_domain);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_board_across_fork);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_reload_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
