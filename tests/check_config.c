/*
 * check_config — unit tests for b2bua/config.c.
 *
 * Each test writes a small file with mkstemp() in /tmp, loads it, removes
 * it, and checks either the values read or the exact "file:line: key:" start
 * of the error, since that prefix is what operators rely on to find a typo.
 * The shipped sample etc/b2bua.conf is loaded from $top_srcdir (set by
 * `make check`; "." when run by hand from the top of the tree).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "b2bua/config.h"

#define ERRLEN 512

/* The result of loading one temporary file. */
struct loaded {
	char path[64];
	char err[ERRLEN];
	int rc;
	struct config cfg;
};

/* Loaded results are large (PATH_MAX fields); keep them off the stack. */
static struct loaded *load_text(const char *text)
{
	struct loaded *l = calloc(1, sizeof *l);
	size_t len = strlen(text);
	int fd;

	ck_assert_ptr_nonnull(l);
	snprintf(l->path, sizeof l->path, "/tmp/check_config.XXXXXX");
	fd = mkstemp(l->path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	l->rc = config_load(l->path, &l->cfg, l->err, sizeof l->err);
	unlink(l->path);
	return l;
}

static int expected_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (int)n;
}

/* Assert a failed load whose message starts with "<path>:<line>: <key>: ". */
static void assert_error(struct loaded *l, int line, const char *key)
{
	char prefix[ERRLEN];

	snprintf(prefix, sizeof prefix, "%s:%d: %s: ", l->path, line, key);
	ck_assert_int_eq(l->rc, -EINVAL);
	ck_assert_msg(strncmp(l->err, prefix, strlen(prefix)) == 0,
		      "error \"%s\" does not start with \"%s\"", l->err, prefix);
}

static void assert_error_text(const char *text, int line, const char *key)
{
	struct loaded *l = load_text(text);

	assert_error(l, line, key);
	free(l);
}

/* A file that loads. */
static void assert_ok_text(const char *text)
{
	struct loaded *l = load_text(text);

	ck_assert_msg(l->rc == 0, "\"%s\" refused: %s", text, l->err);
	free(l);
}

/* ------------------------------------------------------------ valid files */

START_TEST(test_defaults)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	ck_assert_ptr_nonnull(cfg);
	config_defaults(cfg);
	ck_assert_uint_gt(strlen(cfg->node_id), 0);
	ck_assert_uint_lt(strlen(cfg->node_id), 32);
	ck_assert_uint_eq(strspn(cfg->node_id, "abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"), strlen(cfg->node_id));
	ck_assert_int_eq(cfg->host_lease, 5000);
	ck_assert_int_eq(cfg->workers, expected_workers());
	ck_assert_int_eq(cfg->drain_timeout, 30);
	ck_assert_str_eq(cfg->listen[0], "127.0.0.1");
	ck_assert_str_eq(cfg->advertise[0], "127.0.0.1");
	ck_assert_int_eq(cfg->sip_port, 5060);
	ck_assert_int_eq(cfg->worker_port_base, 5070);
	ck_assert_int_eq(cfg->udp_rcvbuf, 1048576);
	ck_assert_int_eq(cfg->overload_queue_delay_ms, 20);
	ck_assert_int_eq(cfg->overload_setup_calls, 0);
	ck_assert_int_eq(cfg->overload_retry_after, 5);
	ck_assert_int_eq(cfg->max_forwards, 70);
	ck_assert_int_eq(cfg->invite_timeout, 180);
	ck_assert_uint_eq(cfg->call_capacity, 16384);
	ck_assert_str_eq(cfg->cli_socket, "/run/b2bua/b2bua.sock");
	ck_assert_int_eq(cfg->log_level, LOG_INFO);
	ck_assert_str_eq(cfg->domain, "");
	ck_assert_str_eq(cfg->realm, "");
	ck_assert_str_eq(cfg->auth_secret, "");
	ck_assert_int_eq(cfg->nonce_ttl, 300);
	ck_assert_uint_eq(cfg->n_auth_algorithms, 1);
	ck_assert_int_eq(cfg->auth_algorithms[0], DIGEST_MD5);
	ck_assert_int_eq(cfg->max_call_duration, 43200);
	ck_assert_int_eq(cfg->call_rest_after, 30);
	ck_assert_int_eq(cfg->session_expires, 1800);
	ck_assert_int_eq(cfg->min_se, 90);
	ck_assert_int_eq(cfg->no_answer_timeout, 20);
	ck_assert_int_eq(cfg->forward_max_hops, 3);
	ck_assert_str_eq(cfg->cdr_stream, "cdr");
	ck_assert_str_eq(cfg->cdr_spool_dir, "/var/spool/b2bua");
	ck_assert_int_eq(cfg->register_min_expires, 60);
	ck_assert_int_eq(cfg->register_default_expires, 3600);
	ck_assert_int_eq(cfg->register_max_expires, 86400);
	ck_assert_int_eq(cfg->auth_fail_limit, 10);
	ck_assert_int_eq(cfg->auth_fail_window, 60);
	ck_assert_int_eq(cfg->nat_keepalive_interval, 30);
	ck_assert_uint_eq(cfg->n_trusted, 0);
	ck_assert_int_eq(cfg->untrusted_invite, CONFIG_UNTRUSTED_CHALLENGE);
	ck_assert_str_eq(cfg->socket_io, "auto");
	ck_assert_int_eq(cfg->allow_unauthenticated_to_local, 1);
	ck_assert_int_eq(cfg->rate_limit_invite, 20);
	ck_assert_int_eq(cfg->rate_limit_invite_burst, 40);
	ck_assert_int_eq(cfg->rate_limit_register, 20);
	ck_assert_int_eq(cfg->rate_limit_register_burst, 40);
	ck_assert_str_eq(cfg->redis_address, "unix:/run/b2bua/redis.sock");
	ck_assert_str_eq(cfg->metrics_address, "");   /* metrics off by default */
	ck_assert_str_eq(cfg->redis_password, "");
	ck_assert_int_eq(cfg->redis_db, 0);
	ck_assert_int_eq(cfg->redis_timeout, 1000);
	ck_assert_int_eq(cfg->redis_wait_replicas, 0);
	ck_assert_int_eq(cfg->redis_wait_timeout, 500);
	ck_assert_str_eq(cfg->redis_prefix, "b2bua:");
	ck_assert_uint_eq(cfg->n_routes, 0);
	free(cfg);
}
END_TEST

/* An empty file gives exactly config_defaults(), plus its path. */
START_TEST(test_empty_file_is_defaults)
{
	struct loaded *l = load_text("# nothing but a comment\n");
	struct config *def = calloc(1, sizeof *def);

	ck_assert_ptr_nonnull(def);
	ck_assert_int_eq(l->rc, 0);
	ck_assert_str_eq(l->err, "");
	ck_assert_str_eq(l->cfg.path, l->path);
	config_defaults(def);
	memcpy(def->path, l->cfg.path, sizeof def->path);
	ck_assert(memcmp(def, &l->cfg, sizeof *def) == 0);
	free(def);
	free(l);
}
END_TEST

START_TEST(test_full_file)
{
	struct loaded *l = load_text(
		"node_id = \"edge-7\";\n"
		"host_lease = 4000;\n"
		"workers = 3;\n"
		"drain_timeout = 0;\n"
		"listen = \"::1\";\n"
		"advertise = \"sbc.example.net\";\n"
		"sip_port = 15060;\n"
		"worker_port_base = 15070;\n"
		"udp_rcvbuf = 65536;\n"
		"max_forwards = 255;\n"
		"invite_timeout = 600;\n"
		"call_capacity = 4194304;\n"
		"cli_socket = \"/tmp/b2bua-test.sock\";\n"
		"log_level = \"debug\";\n"
		"domain = \"example.net\";\n"
		"realm = \"Example Realm (v2)\";\n"
		"auth_secret = \"0123456789abcdef\";\n"
		"nonce_ttl = 10;\n"
		"register_min_expires = 30;\n"
		"register_default_expires = 30;\n"
		"register_max_expires = 7200;\n"
		"auth_fail_limit = 100000;\n"
		"auth_fail_window = 86400;\n"
		"trusted = ( \"192.0.2.0/24\", \"198.51.100.7\", \"2001:db8::/32\", \"::1\" );\n"
		"redis_address = \"[::1]:6379\";\n"
		"redis_password = \"s3cret \\\"quoted\\\"\";\n"
		"redis_db = 15;\n"
		"redis_timeout = 50;\n"
		"redis_prefix = \"\";\n"
		"routes = (\n"
		"  { prefix = \"+4930\"; target = \"sip:gw1.example.net:5080;transport=udp\"; },\n"
		"  { target = \"sip:trunk@[2001:db8::1]:5090\"; prefix = \"*#9\"; },\n"
		"  { prefix = \"\"; target = \"sip:10.0.0.1\"; }\n"
		");\n");

	ck_assert_msg(l->rc == 0, "load failed: %s", l->err);
	ck_assert_str_eq(l->cfg.node_id, "edge-7");
	ck_assert_int_eq(l->cfg.host_lease, 4000);
	ck_assert_int_eq(l->cfg.workers, 3);
	ck_assert_int_eq(l->cfg.drain_timeout, 0);
	ck_assert_str_eq(l->cfg.listen[0], "::1");
	ck_assert_str_eq(l->cfg.advertise[0], "sbc.example.net");
	ck_assert_int_eq(l->cfg.sip_port, 15060);
	ck_assert_int_eq(l->cfg.worker_port_base, 15070);
	ck_assert_int_eq(l->cfg.udp_rcvbuf, 65536);
	ck_assert_int_eq(l->cfg.max_forwards, 255);
	ck_assert_int_eq(l->cfg.invite_timeout, 600);
	ck_assert_uint_eq(l->cfg.call_capacity, 4194304);
	ck_assert_str_eq(l->cfg.cli_socket, "/tmp/b2bua-test.sock");
	ck_assert_int_eq(l->cfg.log_level, LOG_DEBUG);
	ck_assert_str_eq(l->cfg.domain, "example.net");
	ck_assert_str_eq(l->cfg.realm, "Example Realm (v2)");
	ck_assert_str_eq(l->cfg.auth_secret, "0123456789abcdef");
	ck_assert_int_eq(l->cfg.nonce_ttl, 10);
	ck_assert_int_eq(l->cfg.register_min_expires, 30);
	ck_assert_int_eq(l->cfg.register_default_expires, 30);
	ck_assert_int_eq(l->cfg.register_max_expires, 7200);
	ck_assert_int_eq(l->cfg.auth_fail_limit, 100000);
	ck_assert_int_eq(l->cfg.auth_fail_window, 86400);
	ck_assert_uint_eq(l->cfg.n_trusted, 4);
	ck_assert_str_eq(l->cfg.trusted[0].text, "192.0.2.0/24");
	ck_assert_int_eq(l->cfg.trusted[0].family, AF_INET);
	ck_assert_int_eq(l->cfg.trusted[0].prefix_len, 24);
	ck_assert(memcmp(l->cfg.trusted[0].addr, "\xc0\x00\x02\x00", 4) == 0);
	ck_assert_str_eq(l->cfg.trusted[1].text, "198.51.100.7");
	ck_assert_int_eq(l->cfg.trusted[1].family, AF_INET);
	ck_assert_int_eq(l->cfg.trusted[1].prefix_len, 32);
	ck_assert(memcmp(l->cfg.trusted[1].addr, "\xc6\x33\x64\x07", 4) == 0);
	ck_assert_int_eq(l->cfg.trusted[2].family, AF_INET6);
	ck_assert_int_eq(l->cfg.trusted[2].prefix_len, 32);
	ck_assert(memcmp(l->cfg.trusted[2].addr, "\x20\x01\x0d\xb8", 4) == 0);
	ck_assert_int_eq(l->cfg.trusted[3].family, AF_INET6);
	ck_assert_int_eq(l->cfg.trusted[3].prefix_len, 128);
	ck_assert_int_eq(l->cfg.trusted[3].addr[15], 1);
	ck_assert_str_eq(l->cfg.redis_address, "[::1]:6379");
	ck_assert_str_eq(l->cfg.redis_password, "s3cret \"quoted\"");
	ck_assert_int_eq(l->cfg.redis_db, 15);
	ck_assert_int_eq(l->cfg.redis_timeout, 50);
	ck_assert_str_eq(l->cfg.redis_prefix, "");
	ck_assert_uint_eq(l->cfg.n_routes, 3);
	ck_assert_str_eq(l->cfg.routes[0].prefix, "+4930");
	ck_assert_str_eq(l->cfg.routes[0].target, "sip:gw1.example.net:5080;transport=udp");
	ck_assert_str_eq(l->cfg.routes[1].prefix, "*#9");
	ck_assert_str_eq(l->cfg.routes[1].target, "sip:trunk@[2001:db8::1]:5090");
	ck_assert_str_eq(l->cfg.routes[2].prefix, "");
	ck_assert_str_eq(l->cfg.routes[2].target, "sip:10.0.0.1");
	free(l);
}
END_TEST

START_TEST(test_sample_file)
{
	const char *top = getenv("top_srcdir");
	char path[PATH_MAX], err[ERRLEN];
	struct config *cfg = calloc(1, sizeof *cfg);
	int rc;

	ck_assert_ptr_nonnull(cfg);
	snprintf(path, sizeof path, "%s/etc/b2bua.conf", top != NULL ? top : ".");
	rc = config_load(path, cfg, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: %s", path, err);
	ck_assert_str_eq(cfg->listen[0], "127.0.0.1");
	ck_assert_int_eq(cfg->sip_port, 5060);
	ck_assert_int_eq(cfg->worker_port_base, 5070);
	ck_assert_int_eq(cfg->workers, expected_workers());
	ck_assert_str_eq(cfg->cli_socket, "/run/b2bua/b2bua.sock");
	ck_assert_uint_eq(cfg->n_routes, 2);
	ck_assert_str_eq(cfg->routes[0].prefix, "1");
	ck_assert_str_eq(cfg->routes[0].target, "sip:127.0.0.1:5080;transport=udp");
	ck_assert_str_eq(cfg->routes[1].prefix, "");
	ck_assert_str_eq(cfg->routes[1].target, "sip:127.0.0.1:5090;transport=udp");
	ck_assert_str_eq(cfg->domain, "127.0.0.1");
	ck_assert_str_eq(cfg->realm, "127.0.0.1");
	ck_assert_str_eq(cfg->auth_secret, "");
	ck_assert_uint_eq(cfg->n_trusted, 0);
	ck_assert_str_eq(cfg->redis_address, "unix:/run/b2bua/redis.sock");
	ck_assert_str_eq(cfg->redis_prefix, "b2bua:");
	free(cfg);
}
END_TEST

START_TEST(test_workers_zero_is_nproc)
{
	struct loaded *l = load_text("workers = 0;\n");

	ck_assert_int_eq(l->rc, 0);
	ck_assert_int_eq(l->cfg.workers, expected_workers());
	ck_assert_int_gt(l->cfg.workers, 0);
	free(l);
}
END_TEST

START_TEST(test_advertise_defaults_to_listen)
{
	struct loaded *l = load_text("listen = \"::1\";\n");

	ck_assert_int_eq(l->rc, 0);
	ck_assert_str_eq(l->cfg.advertise[0], "::1");
	free(l);
}
END_TEST

/* No domain means no registrar; realm follows the final domain. */
/* Dual stack: listen and advertise as lists, one host per address. */
START_TEST(test_listen_list)
{
	struct loaded *l = load_text("listen = [ \"192.0.2.1\", \"2001:db8::1\" ];\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.n_listen, 2);
	ck_assert_str_eq(l->cfg.listen[0], "192.0.2.1");
	ck_assert_str_eq(l->cfg.listen[1], "2001:db8::1");
	ck_assert_str_eq(l->cfg.advertise[0], "192.0.2.1");
	ck_assert_str_eq(l->cfg.advertise[1], "2001:db8::1");
	free(l);

	l = load_text("listen = ( \"10.0.0.1\", \"::1\" );\n"
		      "advertise = [ \"sbc.example.net\", \"2001:db8::5\" ];\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_str_eq(l->cfg.advertise[0], "sbc.example.net");
	ck_assert_str_eq(l->cfg.advertise[1], "2001:db8::5");
	free(l);

	l = load_text("listen = \"::1\";\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.n_listen, 1);
	free(l);
}
END_TEST

START_TEST(test_domain_realm_default)
{
	struct loaded *l = load_text("listen = \"::1\";\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_str_eq(l->cfg.domain, "");
	ck_assert_str_eq(l->cfg.realm, "");
	free(l);

	l = load_text("realm = \"r\";\ndomain = \"sbc.example.net\";\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_str_eq(l->cfg.domain, "sbc.example.net");
	ck_assert_str_eq(l->cfg.realm, "r");
	free(l);

	l = load_text("domain = \"example.net\";\nadvertise = \"10.0.0.1\";\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_str_eq(l->cfg.advertise[0], "10.0.0.1");
	ck_assert_str_eq(l->cfg.domain, "example.net");
	ck_assert_str_eq(l->cfg.realm, "example.net");
	free(l);
}
END_TEST

START_TEST(test_redis_address_forms)
{
	static const char *const good[] = {
		"unix:/run/b2bua/redis.sock", "127.0.0.1:6379", "10.1.2.3:1",
		"[::1]:65535", "[2001:db8::7]:6380",
	};
	/* Names are refused: hiredis would resolve them with a blocking lookup. */
	static const char *const names[] = { "redis.example.net:1", "localhost:6379" };
	char text[512];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct loaded *l;

		snprintf(text, sizeof text, "redis_address = \"%s\";\n", good[i]);
		l = load_text(text);
		ck_assert_msg(l->rc == 0, "%s: %s", good[i], l->err);
		ck_assert_str_eq(l->cfg.redis_address, good[i]);
		free(l);
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(text, sizeof text, "redis_address = \"%s\";\n", names[i]);
		assert_error_text(text, 1, "redis_address");
	}
}
END_TEST

/* Sentinels: IPv4 and IPv6 literals, list or array form, with a master name. */
START_TEST(test_redis_sentinels)
{
	struct loaded *l = load_text(
		"redis_sentinels = ( \"127.0.0.1:26379\", \"[::1]:26380\" );\n"
		"redis_master_name = \"b2bua-main\";\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.n_redis_sentinels, 2);
	ck_assert_str_eq(l->cfg.redis_sentinels[0], "127.0.0.1:26379");
	ck_assert_str_eq(l->cfg.redis_sentinels[1], "[::1]:26380");
	ck_assert_str_eq(l->cfg.redis_master_name, "b2bua-main");
	/* redis_address may stay in the file: it is not used. */
	ck_assert_str_eq(l->cfg.redis_address, "unix:/run/b2bua/redis.sock");
	free(l);
	assert_ok_text("redis_address = \"10.0.0.1:6379\";\n"
		       "redis_sentinels = [ \"10.0.0.2:26379\" ];\n"
		       "redis_master_name = \"m\";\n");
	l = load_text("workers = 1;\n");
	ck_assert_int_eq(l->rc, 0);
	ck_assert_uint_eq(l->cfg.n_redis_sentinels, 0);
	ck_assert_str_eq(l->cfg.redis_master_name, "");
	free(l);
}
END_TEST

START_TEST(test_bad_redis_sentinels)
{
	static const char *const bad[] = {
		"\"unix:/run/sentinel.sock\"", "\"sentinel.example.net:26379\"",
		"\"127.0.0.1\"", "\"127.0.0.1:0\"", "\"[::1:26379\"", "26379",
	};
	char text[512];
	struct loaded *l;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "redis_master_name = \"m\";\n"
			 "redis_sentinels = ( \"127.0.0.1:26379\", %s );\n", bad[i]);
		assert_error_text(text, 2, "redis_sentinels[1]");
	}
	assert_error_text("redis_master_name = \"m\";\nredis_sentinels = \"127.0.0.1:1\";\n",
			  2, "redis_sentinels");
	assert_error_text("redis_master_name = \"m\";\nredis_sentinels = ( );\n",
			  2, "redis_sentinels");
	assert_error_text("redis_master_name = \"m\";\nredis_sentinels = ( \"127.0.0.1:1\", "
			  "\"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:4\", \"127.0.0.1:5\", "
			  "\"127.0.0.1:6\", \"127.0.0.1:7\", \"127.0.0.1:8\", \"127.0.0.1:9\" );\n",
			  2, "redis_sentinels");
	/* The master name is required with sentinels, and only with them. */
	l = load_text("workers = 1;\nredis_sentinels = ( \"127.0.0.1:26379\" );\n");
	assert_error(l, 2, "redis_master_name");
	ck_assert_msg(strstr(l->err, "required when redis_sentinels is set") != NULL, "%s", l->err);
	free(l);
	l = load_text("workers = 1;\n\nredis_master_name = \"m\";\n");
	assert_error(l, 3, "redis_master_name");
	ck_assert_msg(strstr(l->err, "without redis_sentinels") != NULL, "%s", l->err);
	free(l);
	assert_error_text("redis_sentinels = ( \"127.0.0.1:1\" );\nredis_master_name = \"\";\n",
			  2, "redis_master_name");
	assert_error_text("redis_sentinels = ( \"127.0.0.1:1\" );\nredis_master_name = \"a b\";\n",
			  2, "redis_master_name");
	assert_error_text("redis_sentinels = ( \"127.0.0.1:1\" );\nredis_master_name = 5;\n",
			  2, "redis_master_name");
}
END_TEST

/* libconfig's array form of a string list is accepted for trusted too. */
START_TEST(test_trusted_array)
{
	struct loaded *l = load_text("trusted = [ \"10.0.0.0/8\", \"fe80::/10\" ];\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.n_trusted, 2);
	ck_assert_int_eq(l->cfg.trusted[1].family, AF_INET6);
	ck_assert_int_eq(l->cfg.trusted[1].prefix_len, 10);
	free(l);
}
END_TEST

/* The admission and rate-limit keys: every value they take. */
START_TEST(test_admission_keys)
{
	struct loaded *l = load_text("untrusted_invite = \"reject\";\n"
				     "allow_unauthenticated_to_local = false;\n"
				     "rate_limit_invite = 0;\n"
				     "rate_limit_invite_burst = 1;\n"
				     "rate_limit_register = 100000;\n"
				     "rate_limit_register_burst = 1000000;\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.untrusted_invite, CONFIG_UNTRUSTED_REJECT);
	ck_assert_int_eq(l->cfg.allow_unauthenticated_to_local, 0);
	ck_assert_int_eq(l->cfg.rate_limit_invite, 0);
	ck_assert_int_eq(l->cfg.rate_limit_invite_burst, 1);
	ck_assert_int_eq(l->cfg.rate_limit_register, 100000);
	ck_assert_int_eq(l->cfg.rate_limit_register_burst, 1000000);
	free(l);
	l = load_text("untrusted_invite = \"challenge\";\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.untrusted_invite, CONFIG_UNTRUSTED_CHALLENGE);
	free(l);
}
END_TEST

/* Each admission key refuses what it does not take, naming itself. */
START_TEST(test_bad_admission_keys)
{
	static const char *const bad[][2] = {
		{ "untrusted_invite = \"drop\";", "untrusted_invite" },
		{ "untrusted_invite = \"Challenge\";", "untrusted_invite" },
		{ "untrusted_invite = 1;", "untrusted_invite" },
		{ "allow_unauthenticated_to_local = \"yes\";", "allow_unauthenticated_to_local" },
		{ "allow_unauthenticated_to_local = 1;", "allow_unauthenticated_to_local" },
		{ "rate_limit_invite = -1;", "rate_limit_invite" },
		{ "rate_limit_invite = 100001;", "rate_limit_invite" },
		{ "rate_limit_invite_burst = 0;", "rate_limit_invite_burst" },
		{ "rate_limit_invite_burst = 1000001;", "rate_limit_invite_burst" },
		{ "rate_limit_register = -5;", "rate_limit_register" },
		{ "rate_limit_register = \"10\";", "rate_limit_register" },
		{ "rate_limit_register_burst = 0;", "rate_limit_register_burst" },
	};
	char text[256];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "# line 1\n%s\n", bad[i][0]);
		assert_error_text(text, 2, bad[i][1]);
	}
}
END_TEST

/* socket_io takes its three values and refuses anything else, by name. */
START_TEST(test_socket_io)
{
	static const char *const ok[] = { "auto", "ring", "poll" };
	char text[128];

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct loaded *l;

		snprintf(text, sizeof text, "socket_io = \"%s\";\n", ok[i]);
		l = load_text(text);
		ck_assert_msg(l->rc == 0, "%s", l->err);
		ck_assert_str_eq(l->cfg.socket_io, ok[i]);
		free(l);
	}
	assert_error_text("# line 1\nsocket_io = \"uring\";\n", 2, "socket_io");
	assert_error_text("# line 1\nsocket_io = 1;\n", 2, "socket_io");
	assert_error_text("# line 1\nsocket_io = \"\";\n", 2, "socket_io");
}
END_TEST

/* transports: "udp" by default; a list with "udp" and optionally "tcp";
 * anything else, or a list without "udp", is refused by name. */
START_TEST(test_transports)
{
	struct loaded *l = load_text("# nothing\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.transports, CONFIG_TP_UDP);
	free(l);
	l = load_text("transports = [ \"udp\", \"tcp\" ];\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.transports, CONFIG_TP_UDP | CONFIG_TP_TCP);
	free(l);
	l = load_text("transports = ( \"udp\" );\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.transports, CONFIG_TP_UDP);
	free(l);
	assert_error_text("# line 1\ntransports = [ \"tcp\" ];\n", 2, "transports");
	assert_error_text("# line 1\ntransports = [ \"udp\", \"sctp\" ];\n", 2, "transports");
	assert_error_text("# line 1\ntransports = \"udp\";\n", 2, "transports");
	assert_error_text("# line 1\ntransports = [ ];\n", 2, "transports");
}
END_TEST

/* A 64-bit literal (L suffix) is accepted when in range. */
START_TEST(test_int64_literal)
{
	struct loaded *l = load_text("udp_rcvbuf = 1048576L;\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.udp_rcvbuf, 1048576);
	free(l);
}
END_TEST

/* Overload control: each key's range, ends included; out of range names the key. */
START_TEST(test_overload_keys)
{
	struct loaded *l = load_text("overload_queue_delay_ms = 0;\n"
				     "overload_setup_calls = 4194304;\n"
				     "overload_retry_after = 3600;\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.overload_queue_delay_ms, 0);
	ck_assert_int_eq(l->cfg.overload_setup_calls, 4194304);
	ck_assert_int_eq(l->cfg.overload_retry_after, 3600);
	free(l);
	l = load_text("overload_queue_delay_ms = 10000;\noverload_retry_after = 1;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.overload_queue_delay_ms, 10000);
	ck_assert_int_eq(l->cfg.overload_retry_after, 1);
	free(l);

	assert_error_text("overload_queue_delay_ms = -1;\n", 1, "overload_queue_delay_ms");
	assert_error_text("overload_queue_delay_ms = 10001;\n", 1, "overload_queue_delay_ms");
	assert_error_text("overload_setup_calls = -1;\n", 1, "overload_setup_calls");
	assert_error_text("overload_setup_calls = 4194305;\n", 1, "overload_setup_calls");
	assert_error_text("overload_retry_after = 0;\n", 1, "overload_retry_after");
	assert_error_text("overload_retry_after = 3601;\n", 1, "overload_retry_after");
	l = load_text("overload_retry_after = 0;\n");
	ck_assert_ptr_nonnull(strstr(l->err, "between 1 and 3600"));
	free(l);
}
END_TEST

/* TCP and TLS connection limits (worker/conn.c): defaults, each key's range
 * ends included; out of range names the key and the range. */
START_TEST(test_tcp_limit_keys)
{
	struct loaded *l = load_text("sip_port = 5060;\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.tcp_idle_timeout, 300);
	ck_assert_int_eq(l->cfg.tcp_message_timeout, 10);
	ck_assert_int_eq(l->cfg.tcp_max_connections, 1000);
	ck_assert_int_eq(l->cfg.tcp_max_per_source, 100);
	free(l);
	l = load_text("tcp_idle_timeout = 1;\ntcp_message_timeout = 300;\n"
		      "tcp_max_connections = 4000;\ntcp_max_per_source = 1;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.tcp_idle_timeout, 1);
	ck_assert_int_eq(l->cfg.tcp_message_timeout, 300);
	ck_assert_int_eq(l->cfg.tcp_max_connections, 4000);
	ck_assert_int_eq(l->cfg.tcp_max_per_source, 1);
	free(l);
	l = load_text("tcp_idle_timeout = 86400;\ntcp_message_timeout = 1;\n"
		      "tcp_max_connections = 1;\ntcp_max_per_source = 4000;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.tcp_idle_timeout, 86400);
	ck_assert_int_eq(l->cfg.tcp_message_timeout, 1);
	ck_assert_int_eq(l->cfg.tcp_max_connections, 1);
	ck_assert_int_eq(l->cfg.tcp_max_per_source, 4000);
	free(l);

	assert_error_text("tcp_idle_timeout = 0;\n", 1, "tcp_idle_timeout");
	assert_error_text("tcp_idle_timeout = 86401;\n", 1, "tcp_idle_timeout");
	assert_error_text("tcp_message_timeout = 0;\n", 1, "tcp_message_timeout");
	assert_error_text("tcp_message_timeout = 301;\n", 1, "tcp_message_timeout");
	assert_error_text("tcp_max_connections = 0;\n", 1, "tcp_max_connections");
	assert_error_text("tcp_max_connections = 4001;\n", 1, "tcp_max_connections");
	assert_error_text("tcp_max_per_source = 0;\n", 1, "tcp_max_per_source");
	assert_error_text("tcp_max_per_source = 4001;\n", 1, "tcp_max_per_source");
	l = load_text("tcp_message_timeout = 301;\n");
	ck_assert_ptr_nonnull(strstr(l->err, "between 1 and 300"));
	free(l);
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST(test_syntax_error)
{
	struct loaded *l = load_text("sip_port = 5060;\nworkers = ;\n");
	char prefix[ERRLEN];

	snprintf(prefix, sizeof prefix, "%s:2: syntax error: ", l->path);
	ck_assert_int_eq(l->rc, -EINVAL);
	ck_assert_msg(strncmp(l->err, prefix, strlen(prefix)) == 0, "got \"%s\"", l->err);
	free(l);
}
END_TEST

START_TEST(test_wrong_type)
{
	assert_error_text("\n\nsip_port = \"5060\";\n", 3, "sip_port");
	assert_error_text("workers = 2.0;\n", 1, "workers");
	assert_error_text("drain_timeout = true;\n", 1, "drain_timeout");
	assert_error_text("listen = 127;\n", 1, "listen");
	assert_error_text("log_level = 3;\n", 1, "log_level");
	assert_error_text("routes = \"none\";\n", 1, "routes");
	assert_error_text("auth_sha256 = 1;\n", 1, "auth_sha256");
	assert_error_text("\nmax_call_duration = -1;\n", 2, "max_call_duration");
	assert_error_text("call_rest_after = -1;\n", 1, "call_rest_after");
	assert_error_text("call_rest_after = 86401;\n", 1, "call_rest_after");
	assert_error_text("forward_max_hops = 11;\n", 1, "forward_max_hops");
	assert_error_text("no_answer_timeout = 0;\n", 1, "no_answer_timeout");
	assert_error_text("cdr_spool_dir = \"spool\";\n", 1, "cdr_spool_dir");
	assert_error_text("cdr_stream = \"a b\";\n", 1, "cdr_stream");
	assert_error_text("routes = ( \"sip:x\" );\n", 1, "routes[0]");
	assert_error_text("routes = ( { prefix = 1; target = \"sip:x\"; } );\n", 1,
			  "routes[0].prefix");
}
END_TEST

START_TEST(test_out_of_range)
{
	struct loaded *l = load_text("max_forwards = 70;\nsip_port = 70000;\n");

	assert_error(l, 2, "sip_port");
	ck_assert_ptr_nonnull(strstr(l->err, "70000"));
	ck_assert_ptr_nonnull(strstr(l->err, "between 1 and 65535"));
	free(l);

	assert_error_text("sip_port = 0;\n", 1, "sip_port");
	assert_error_text("workers = 65;\n", 1, "workers");
	assert_error_text("workers = -1;\n", 1, "workers");
	assert_error_text("drain_timeout = 3601;\n", 1, "drain_timeout");
	assert_error_text("worker_port_base = 65536;\n", 1, "worker_port_base");
	assert_error_text("udp_rcvbuf = 65535;\n", 1, "udp_rcvbuf");
	assert_error_text("udp_rcvbuf = 268435457;\n", 1, "udp_rcvbuf");
	assert_error_text("max_forwards = 0;\n", 1, "max_forwards");
	assert_error_text("max_forwards = 256;\n", 1, "max_forwards");
	assert_error_text("invite_timeout = 0;\n", 1, "invite_timeout");
	assert_error_text("invite_timeout = 601;\n", 1, "invite_timeout");
	assert_error_text("session_expires = -1;\n", 1, "session_expires");
	assert_error_text("session_expires = 86401;\n", 1, "session_expires");
	assert_error_text("min_se = 0;\n", 1, "min_se");
	assert_error_text("min_se = 86401;\n", 1, "min_se");
	/* Across keys: what we offer must be what we accept; 0 (off) always is. */
	assert_error_text("min_se = 120;\nsession_expires = 100;\n", 2, "session_expires");
	assert_error_text("session_expires = 60;\n", 1, "session_expires");
	assert_ok_text("session_expires = 0;\nmin_se = 600;\n");
	assert_ok_text("session_expires = 4;\nmin_se = 4;\n");
	assert_error_text("call_capacity = 0;\n", 1, "call_capacity");
	assert_error_text("call_capacity = 4194305;\n", 1, "call_capacity");
	assert_error_text("call_capacity = 5000000000L;\n", 1, "call_capacity");
	assert_error_text("nonce_ttl = 9;\n", 1, "nonce_ttl");
	assert_error_text("nonce_ttl = 3601;\n", 1, "nonce_ttl");
	assert_error_text("register_min_expires = 0;\n", 1, "register_min_expires");
	assert_error_text("register_default_expires = 86401;\n", 1,
			  "register_default_expires");
	assert_error_text("register_max_expires = 86401;\n", 1, "register_max_expires");
	assert_error_text("host_lease = 3999;\n", 1, "host_lease");
	assert_error_text("host_lease = 60001;\n", 1, "host_lease");
	assert_error_text("auth_fail_limit = 0;\n", 1, "auth_fail_limit");
	assert_error_text("auth_fail_limit = 100001;\n", 1, "auth_fail_limit");
	assert_error_text("auth_fail_window = 0;\n", 1, "auth_fail_window");
	assert_error_text("auth_fail_window = 86401;\n", 1, "auth_fail_window");
	assert_error_text("nat_keepalive_interval = -1;\n", 1, "nat_keepalive_interval");
	assert_error_text("nat_keepalive_interval = 3601;\n", 1, "nat_keepalive_interval");
	assert_error_text("redis_db = 16;\n", 1, "redis_db");
	assert_error_text("redis_db = -1;\n", 1, "redis_db");
	assert_error_text("redis_timeout = 49;\n", 1, "redis_timeout");
	assert_error_text("redis_timeout = 1501;\n", 1, "redis_timeout");
	assert_error_text("redis_wait_replicas = -1;\n", 1, "redis_wait_replicas");
	assert_error_text("redis_wait_replicas = 17;\n", 1, "redis_wait_replicas");
	assert_error_text("redis_wait_timeout = 9;\n", 1, "redis_wait_timeout");
	assert_error_text("redis_wait_timeout = 751;\n", 1, "redis_wait_timeout");
}
END_TEST

START_TEST(test_bad_values)
{
	assert_error_text("node_id = \"\";\n", 1, "node_id");
	assert_error_text("node_id = \"edge_7\";\n", 1, "node_id");
	assert_error_text("advertise = \"sbc example\";\n", 1, "advertise");
	assert_error_text("advertise = \"[::1]\";\n", 1, "advertise");
	assert_error_text("cli_socket = \"\";\n", 1, "cli_socket");
	assert_error_text("log_level = \"verbose\";\n", 1, "log_level");
	assert_error_text("routes = ( { prefix = \"12 3\"; target = \"sip:x\"; } );\n", 1,
			  "routes[0].prefix");
	assert_error_text("routes = ( { prefix = \"1\"; } );\n", 1, "routes[0].target");
	assert_error_text("routes = ( { target = \"sip:x\"; } );\n", 1, "routes[0].prefix");
	assert_error_text("domain = \"example net\";\n", 1, "domain");
	assert_error_text("domain = \"127.0.0.256\";\n", 1, "domain");
	assert_error_text("domain = \"\";\n", 1, "domain");
	assert_error_text("domain = \"[::1]\";\n", 1, "domain");
	assert_error_text("realm = \"\";\n", 1, "realm");
	assert_error_text("realm = \"a\\\"b\";\n", 1, "realm");
	assert_error_text("realm = \"a\\\\b\";\n", 1, "realm");
	assert_error_text("realm = \"a\\tb\";\n", 1, "realm");
	assert_error_text("redis_password = 1234;\n", 1, "redis_password");
	assert_error_text("redis_prefix = \"b2bua prod:\";\n", 1, "redis_prefix");
	assert_error_text("redis_prefix = \"b2bua/\";\n", 1, "redis_prefix");
}
END_TEST

/* Secrets: 16 bytes is the minimum, "" is allowed, and errors never echo them. */
START_TEST(test_auth_secret)
{
	struct loaded *l = load_text("\nauth_secret = \"0123456789abcde\";\n");

	assert_error(l, 2, "auth_secret");
	ck_assert_ptr_nonnull(strstr(l->err, "16"));
	ck_assert_ptr_null(strstr(l->err, "0123456789abcde"));
	free(l);

	l = load_text("auth_secret = \"\";\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_str_eq(l->cfg.auth_secret, "");
	free(l);

	assert_error_text("auth_secret = 1234567890123456789L;\n", 1, "auth_secret");
}
END_TEST

/* min <= default <= max; the error names register_default_expires. */
START_TEST(test_register_expires_order)
{
	struct loaded *l;

	l = load_text("register_min_expires = 120;\nregister_default_expires = 90;\n");
	assert_error(l, 2, "register_default_expires");
	ck_assert_ptr_nonnull(strstr(l->err, "120"));
	ck_assert_ptr_nonnull(strstr(l->err, "90"));
	free(l);

	/* Only max set: the default 3600 is above it, the error points at max's line. */
	assert_error_text("workers = 1;\nregister_max_expires = 1800;\n", 2,
			  "register_default_expires");
	/* Only min set, above the default 3600: points at min's line. */
	assert_error_text("\n\nregister_min_expires = 3601;\n", 3, "register_default_expires");
	/* default set: it is the line shown even when min and max are wrong. */
	assert_error_text("register_min_expires = 100;\nregister_max_expires = 50;\n"
			  "register_default_expires = 70;\n", 3, "register_default_expires");

	/* All three equal is fine. */
	l = load_text("register_min_expires = 600;\nregister_default_expires = 600;\n"
		      "register_max_expires = 600;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);
}
END_TEST

/* WAIT for CDRs: set values load, an unset timeout follows redis_timeout
 * down, a set one may be at most half of it (the error says why). */
START_TEST(test_redis_wait)
{
	struct loaded *l;

	l = load_text("redis_wait_replicas = 2;\nredis_wait_timeout = 300;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.redis_wait_replicas, 2);
	ck_assert_int_eq(l->cfg.redis_wait_timeout, 300);
	free(l);

	l = load_text("redis_timeout = 400;\nredis_wait_replicas = 1;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(l->cfg.redis_wait_timeout, 200);
	free(l);

	l = load_text("redis_timeout = 1000;\n\nredis_wait_timeout = 501;\n");
	assert_error(l, 3, "redis_wait_timeout");
	ck_assert_ptr_nonnull(strstr(l->err, "more than half of redis_timeout 1000 ms"));
	ck_assert_ptr_nonnull(strstr(l->err, "at most 500"));
	free(l);
	assert_error_text("redis_wait_timeout = 100;\nredis_timeout = 150;\n", 1,
			  "redis_wait_timeout");
	assert_ok_text("redis_wait_timeout = 750;\nredis_timeout = 1500;\n");
	assert_ok_text("redis_wait_replicas = 0;\nredis_wait_timeout = 10;\n");
}
END_TEST

START_TEST(test_bad_trusted)
{
	static const char *const bad[] = {
		"", "localhost", "192.0.2.0/", "192.0.2.0/33", "192.0.2.0/-1", "192.0.2.0/2a",
		"192.0.2.0/0024", "2001:db8::/129", "192.0.2.0/24/8", "[::1]", "192.0.2.300",
		"::ffff:192.0.2.1", "::ffff:192.0.2.0/120", " 192.0.2.1",
	};
	char text[512];
	struct loaded *l;

	/*
	 * libconfig records a string's line after reading the token that follows
	 * it (adjacent strings concatenate), so the bad entry is followed by a
	 * comma on its own line.
	 */
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text,
			 "trusted = (\n  \"10.0.0.1\",\n  \"%s\",\n  \"10.0.0.2\"\n);\n", bad[i]);
		l = load_text(text);
		ck_assert_msg(l->rc == -EINVAL, "\"%s\" was accepted", bad[i]);
		assert_error(l, 3, "trusted[1]");
		free(l);
	}
	l = load_text("trusted = ( \"192.0.2.0/33\" );\n");
	assert_error(l, 1, "trusted[0]");
	ck_assert_ptr_nonnull(strstr(l->err, "between 0 and 32"));
	free(l);

	assert_error_text("trusted = \"192.0.2.1\";\n", 1, "trusted");
	assert_error_text("trusted = ( 1 );\n", 1, "trusted[0]");
	assert_error_text("trusted = ( { a = 1; } );\n", 1, "trusted[0]");
	/* Longer than the 63 bytes of config_trusted.text: an error, not a cut. */
	assert_error_text("trusted = ( \"0000:0000:0000:0000:0000:0000:0000:0001/128"
			  "00000000000000000000\" );\n", 1, "trusted[0]");
}
END_TEST

START_TEST(test_too_many_trusted)
{
	size_t size = 32 * (CONFIG_MAX_TRUSTED + 2);
	char *text = malloc(size);
	size_t n;
	struct loaded *l;

	ck_assert_ptr_nonnull(text);
	n = (size_t)snprintf(text, size, "\ntrusted = (\n");
	for (int i = 0; i < CONFIG_MAX_TRUSTED; i++)
		n += (size_t)snprintf(text + n, size - n, "%s\"10.0.%d.0/24\"\n",
				      i ? "," : "", i);
	snprintf(text + n, size - n, ");\n");
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.n_trusted, CONFIG_MAX_TRUSTED);
	free(l);

	snprintf(text + n, size - n, ",\"10.1.0.1\");\n");
	l = load_text(text);
	assert_error(l, 2, "trusted");
	free(l);
	free(text);
}
END_TEST

START_TEST(test_bad_redis_address)
{
	static const char *const bad[] = {
		"", "unix:", "unix:run/redis.sock", "localhost", "localhost:", "localhost:0",
		"localhost:65536", "localhost:63a9", "::1:6379", "[::1]", "[::1]6379",
		"[zz::1]:6379", "127.0.0.256:6379", "bad host:6379", ":6379", "-x-:6379",
	};
	char text[512], path[200];
	struct loaded *l;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "sip_port = 5060;\nredis_address = \"%s\";\n",
			 bad[i]);
		l = load_text(text);
		ck_assert_msg(l->rc == -EINVAL, "\"%s\" was accepted", bad[i]);
		assert_error(l, 2, "redis_address");
		free(l);
	}

	/* The socket path must fit sun_path: 107 bytes load, 108 do not. */
	memset(path, 'a', 107);
	path[0] = '/';
	path[107] = '\0';
	snprintf(text, sizeof text, "redis_address = \"unix:%s\";\n", path);
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);
	strcat(path, "a");
	snprintf(text, sizeof text, "redis_address = \"unix:%s\";\n", path);
	assert_error_text(text, 1, "redis_address");
}
END_TEST

/* metrics_address: "ip:port" or "[v6]:port", "" is off; names, bare IPv6
 * and bad ports name file, line and key. */
START_TEST(test_metrics_address)
{
	static const char *const good[] = { "", "127.0.0.1:9464", "0.0.0.0:1", "[::1]:65535" };
	static const char *const bad[] = {
		"localhost:9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:94a4", "::1:9464", "[::1]", "[::1]9464", "[zz::1]:9464",
		"127.0.0.256:9464", ":9464", "[]:9464",
	};
	char text[256];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct loaded *l;

		snprintf(text, sizeof text, "metrics_address = \"%s\";\n", good[i]);
		l = load_text(text);
		ck_assert_msg(l->rc == 0, "%s: %s", good[i], l->err);
		ck_assert_str_eq(l->cfg.metrics_address, good[i]);
		free(l);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "sip_port = 5060;\nmetrics_address = \"%s\";\n",
			 bad[i]);
		assert_error_text(text, 2, "metrics_address");
	}
	assert_error_text("metrics_address = 9464;\n", 1, "metrics_address");
}
END_TEST

START_TEST(test_unknown_key_top)
{
	struct loaded *l = load_text("sip_port = 5060;\nsip_prot = 5061;\n");

	assert_error(l, 2, "sip_prot");
	ck_assert_ptr_nonnull(strstr(l->err, "unknown key"));
	free(l);
	assert_error_text("carriers = { a = 1; };\n", 1, "carriers");
}
END_TEST

START_TEST(test_unknown_key_route)
{
	struct loaded *l = load_text(
		"routes = (\n"
		"  { prefix = \"1\"; target = \"sip:a\"; },\n"
		"  { prefix = \"2\";\n"
		"    tagret = \"sip:b\"; }\n"
		");\n");

	assert_error(l, 4, "routes[1].tagret");
	ck_assert_ptr_nonnull(strstr(l->err, "unknown key"));
	free(l);
}
END_TEST

START_TEST(test_bad_listen)
{
	assert_error_text("\nlisten = \"localhost\";\n", 2, "listen");
	assert_error_text("listen = \"127.0.0.256\";\n", 1, "listen");
	assert_error_text("listen = \"[::1]\";\n", 1, "listen");
	assert_error_text("listen = \"\";\n", 1, "listen");
	assert_error_text("listen = [ \"127.0.0.1\", \"localhost\" ];\n", 1, "listen");
	assert_error_text("listen = [ \"::1\", \"::1\" ];\n", 1, "listen");
	assert_error_text("listen = [ ];\n", 1, "listen");
	assert_error_text("listen = [ \"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\", \"10.0.0.4\", "
			  "\"10.0.0.5\" ];\n", 1, "listen");
	assert_error_text("listen = 127;\n", 1, "listen");
}
END_TEST

/* advertise: one host per listen address, of its family when an IP. */
START_TEST(test_bad_advertise_list)
{
	assert_error_text("listen = [ \"127.0.0.1\", \"::1\" ];\nadvertise = \"sbc.example.net\";\n",
			  2, "advertise");
	assert_error_text("listen = \"127.0.0.1\";\nadvertise = [ \"a.example\", \"b.example\" ];\n",
			  2, "advertise");
	assert_error_text("listen = [ \"127.0.0.1\", \"::1\" ];\n"
			  "advertise = [ \"::2\", \"sbc.example.net\" ];\n", 2, "advertise");
	assert_error_text("listen = \"::1\";\nadvertise = \"10.0.0.1\";\n", 2, "advertise");
	assert_error_text("advertise = [ \"-bad-\" ];\n", 1, "advertise");
}
END_TEST

START_TEST(test_port_overlap)
{
	struct loaded *l;

	/* Ports 5058..5061 contain sip_port 5060. */
	l = load_text("sip_port = 5060;\nworkers = 4;\nworker_port_base = 5058;\n");
	assert_error(l, 3, "worker_port_base");
	ck_assert_ptr_nonnull(strstr(l->err, "5058..5061"));
	free(l);

	/* Only the last worker port hits sip_port: the range is inclusive. */
	assert_error_text("workers = 4;\nworker_port_base = 5057;\n", 2, "worker_port_base");
	/* One port past it is fine. */
	l = load_text("workers = 4;\nworker_port_base = 5056;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);

	/* worker_port_base at its default: the error points at sip_port's line. */
	assert_error_text("workers = 2;\nsip_port = 5071;\n", 2, "worker_port_base");

	/* 65534..65537 goes past the last port. */
	assert_error_text("workers = 4;\nworker_port_base = 65534;\n", 2, "worker_port_base");
	l = load_text("workers = 2;\nworker_port_base = 65534;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);
}
END_TEST

START_TEST(test_bad_route_target)
{
	static const char *const bad[] = {
		"http://127.0.0.1", "sips:127.0.0.1", "sip:", "sip:;transport=udp",
		"sip:user@", "sip:127.0.0.1:", "sip:127.0.0.1:0", "sip:127.0.0.1:65536",
		"sip:host name", "sip:[::1", "sip:[zz::1]:5060", "sip:-bad-.example",
	};
	char text[512];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text,
			 "routes = (\n  { prefix = \"1\";\n    target = \"%s\"; }\n);\n", bad[i]);
		assert_error_text(text, 3, "routes[0].target");
	}
}
END_TEST

START_TEST(test_duplicate_prefix)
{
	struct loaded *l = load_text(
		"routes = (\n"
		"  { prefix = \"49\"; target = \"sip:a\"; },\n"
		"  { prefix = \"4\"; target = \"sip:b\"; },\n"
		"  { prefix = \"49\"; target = \"sip:c\"; }\n"
		");\n");

	assert_error(l, 4, "routes[2].prefix");
	ck_assert_ptr_nonnull(strstr(l->err, "duplicate"));
	free(l);
}
END_TEST

START_TEST(test_too_many_routes)
{
	size_t size = 64 * (CONFIG_MAX_ROUTES + 2);
	char *text = malloc(size);
	size_t n;
	struct loaded *l;

	ck_assert_ptr_nonnull(text);
	n = (size_t)snprintf(text, size, "routes = (\n");
	for (int i = 0; i <= CONFIG_MAX_ROUTES; i++)
		n += (size_t)snprintf(text + n, size - n,
				      "%s{ prefix = \"%d\"; target = \"sip:a\"; }\n",
				      i ? "," : "", i);
	snprintf(text + n, size - n, ");\n");
	l = load_text(text);
	assert_error(l, 1, "routes");
	free(l);
	free(text);
}
END_TEST

START_TEST(test_too_long_string)
{
	char text[1024], value[400];
	struct loaded *l;

	/* node_id holds 31 characters: 31 loads, 32 is an error, not a cut. */
	memset(value, 'a', 31);
	value[31] = '\0';
	snprintf(text, sizeof text, "node_id = \"%s\";\n", value);
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_str_eq(l->cfg.node_id, value);
	free(l);

	strcat(value, "b");
	snprintf(text, sizeof text, "\nnode_id = \"%s\";\n", value);
	l = load_text(text);
	assert_error(l, 2, "node_id");
	ck_assert_ptr_nonnull(strstr(l->err, "too long"));
	free(l);

	/* cli_socket must fit sun_path (108 bytes with its NUL). */
	memset(value, 'a', 108);
	value[0] = '/';
	value[108] = '\0';
	snprintf(text, sizeof text, "cli_socket = \"%s\";\n", value);
	assert_error_text(text, 1, "cli_socket");
	value[107] = '\0';
	snprintf(text, sizeof text, "cli_socket = \"%s\";\n", value);
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);

	memset(value, '1', 64);
	value[64] = '\0';
	snprintf(text, sizeof text, "routes = ( { prefix = \"%s\"; target = \"sip:a\"; } );\n",
		 value);
	assert_error_text(text, 1, "routes[0].prefix");

	memset(value, 'a', 300);
	memcpy(value, "sip:", 4);
	value[300] = '\0';
	snprintf(text, sizeof text, "routes = ( { prefix = \"1\"; target = \"%s\"; } );\n",
		 value);
	assert_error_text(text, 1, "routes[0].target");
}
END_TEST

/* An error in an @include'd file names that file, found next to the includer. */
START_TEST(test_include_error_names_included_file)
{
	char inc[64], text[128], prefix[128];
	struct loaded *l;
	int fd;

	snprintf(inc, sizeof inc, "/tmp/check_config.XXXXXX");
	fd = mkstemp(inc);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "\nsip_port = 0;\n", 15), 15);
	close(fd);
	/* Relative name: resolved against the including file's directory, /tmp. */
	snprintf(text, sizeof text, "workers = 1;\n@include \"%s\"\n", strrchr(inc, '/') + 1);
	l = load_text(text);
	unlink(inc);
	snprintf(prefix, sizeof prefix, "%s:2: sip_port: ", inc);
	ck_assert_int_eq(l->rc, -EINVAL);
	ck_assert_msg(strncmp(l->err, prefix, strlen(prefix)) == 0,
		      "error \"%s\" does not start with \"%s\"", l->err, prefix);
	free(l);
}
END_TEST

START_TEST(test_missing_file)
{
	char path[64], want[256], err[ERRLEN];
	struct config *cfg = calloc(1, sizeof *cfg);
	int fd, rc;

	ck_assert_ptr_nonnull(cfg);
	/* A name that surely does not exist: create it, then remove it. */
	snprintf(path, sizeof path, "/tmp/check_config.XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	unlink(path);

	rc = config_load(path, cfg, err, sizeof err);
	ck_assert_int_eq(rc, -ENOENT);
	snprintf(want, sizeof want, "%s: cannot read: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);

	rc = config_load("/tmp", cfg, err, sizeof err);
	ck_assert_int_eq(rc, -EISDIR);
	ck_assert_str_eq(err, "/tmp: cannot read: Is a directory");
	free(cfg);
}
END_TEST

/* ------------------------------------------------------------ config_is_trusted */

static int trusted4(const struct config *cfg, const char *ip)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(5060) };

	ck_assert_int_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
	return config_is_trusted(cfg, (const struct sockaddr *)&in);
}

static int trusted6(const struct config *cfg, const char *ip)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(5060) };

	ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
	return config_is_trusted(cfg, (const struct sockaddr *)&in6);
}

START_TEST(test_is_trusted)
{
	/* The /24 and /64 entries are written with host bits set: they are ignored. */
	struct loaded *l = load_text("trusted = ( \"198.51.100.7\", \"192.0.2.77/24\", "
				     "\"2001:db8:1:2::99/64\", \"10.0.0.0/9\" );\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	/* /32: that host only. */
	ck_assert_int_eq(trusted4(&l->cfg, "198.51.100.7"), 1);
	ck_assert_int_eq(trusted4(&l->cfg, "198.51.100.6"), 0);
	ck_assert_int_eq(trusted4(&l->cfg, "198.51.100.8"), 0);
	/* /24. */
	ck_assert_int_eq(trusted4(&l->cfg, "192.0.2.0"), 1);
	ck_assert_int_eq(trusted4(&l->cfg, "192.0.2.255"), 1);
	ck_assert_int_eq(trusted4(&l->cfg, "192.0.3.1"), 0);
	ck_assert_int_eq(trusted4(&l->cfg, "192.0.1.255"), 0);
	/* /9: a prefix that ends inside a byte. */
	ck_assert_int_eq(trusted4(&l->cfg, "10.127.255.255"), 1);
	ck_assert_int_eq(trusted4(&l->cfg, "10.128.0.0"), 0);
	/* /64. */
	ck_assert_int_eq(trusted6(&l->cfg, "2001:db8:1:2::1"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "2001:db8:1:2:ffff:ffff:ffff:ffff"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "2001:db8:1:3::1"), 0);
	/* IPv4-mapped sources match IPv4 entries. */
	ck_assert_int_eq(trusted6(&l->cfg, "::ffff:192.0.2.9"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "::ffff:198.51.100.7"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "::ffff:198.51.100.8"), 0);
	/* No match: other addresses, other families. */
	ck_assert_int_eq(trusted4(&l->cfg, "203.0.113.1"), 0);
	ck_assert_int_eq(trusted6(&l->cfg, "::1"), 0);
	ck_assert_int_eq(trusted6(&l->cfg, "::c000:209"), 0);	/* not mapped: ::192.0.2.9 */
	{
		struct sockaddr sa = { .sa_family = AF_UNIX };

		ck_assert_int_eq(config_is_trusted(&l->cfg, &sa), 0);
	}
	free(l);
}
END_TEST

START_TEST(test_is_trusted_all_and_none)
{
	struct loaded *l = load_text("trusted = ( \"0.0.0.0/0\" );\n");

	ck_assert_msg(l->rc == 0, "%s", l->err);
	/* /0 trusts every IPv4 source, mapped ones too, but no IPv6 source. */
	ck_assert_int_eq(trusted4(&l->cfg, "0.0.0.0"), 1);
	ck_assert_int_eq(trusted4(&l->cfg, "255.255.255.255"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "::ffff:203.0.113.1"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "2001:db8::1"), 0);
	free(l);

	/* "::/0" trusts IPv6 sources only, not IPv4 ones seen as ::ffff:a.b.c.d. */
	l = load_text("trusted = ( \"::/0\" );\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_int_eq(trusted6(&l->cfg, "2001:db8::1"), 1);
	ck_assert_int_eq(trusted6(&l->cfg, "::ffff:203.0.113.1"), 0);
	ck_assert_int_eq(trusted4(&l->cfg, "203.0.113.1"), 0);
	free(l);

	/* Nothing trusted: nothing matches. */
	l = load_text("trusted = ( );\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.n_trusted, 0);
	ck_assert_int_eq(trusted4(&l->cfg, "127.0.0.1"), 0);
	ck_assert_int_eq(trusted6(&l->cfg, "::1"), 0);
	free(l);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *ok = tcase_create("valid");
	TCase *bad = tcase_create("errors");

	tcase_add_test(ok, test_defaults);
	tcase_add_test(ok, test_empty_file_is_defaults);
	tcase_add_test(ok, test_full_file);
	tcase_add_test(ok, test_sample_file);
	tcase_add_test(ok, test_workers_zero_is_nproc);
	tcase_add_test(ok, test_advertise_defaults_to_listen);
	tcase_add_test(ok, test_listen_list);
	tcase_add_test(ok, test_int64_literal);
	tcase_add_test(ok, test_socket_io);
	tcase_add_test(ok, test_transports);
	tcase_add_test(ok, test_domain_realm_default);
	tcase_add_test(ok, test_redis_address_forms);
	tcase_add_test(ok, test_trusted_array);
	tcase_add_test(ok, test_redis_sentinels);
	tcase_add_test(ok, test_admission_keys);
	tcase_add_test(ok, test_is_trusted);
	tcase_add_test(ok, test_is_trusted_all_and_none);
	suite_add_tcase(s, ok);

	tcase_add_test(bad, test_syntax_error);
	tcase_add_test(bad, test_wrong_type);
	tcase_add_test(bad, test_out_of_range);
	tcase_add_test(bad, test_bad_values);
	tcase_add_test(bad, test_unknown_key_top);
	tcase_add_test(bad, test_unknown_key_route);
	tcase_add_test(bad, test_bad_listen);
	tcase_add_test(bad, test_bad_advertise_list);
	tcase_add_test(bad, test_port_overlap);
	tcase_add_test(bad, test_bad_route_target);
	tcase_add_test(bad, test_duplicate_prefix);
	tcase_add_test(bad, test_too_many_routes);
	tcase_add_test(bad, test_too_long_string);
	tcase_add_test(bad, test_include_error_names_included_file);
	tcase_add_test(bad, test_missing_file);
	tcase_add_test(bad, test_auth_secret);
	tcase_add_test(bad, test_register_expires_order);
	tcase_add_test(bad, test_redis_wait);
	tcase_add_test(bad, test_bad_trusted);
	tcase_add_test(bad, test_bad_admission_keys);
	tcase_add_test(bad, test_too_many_trusted);
	tcase_add_test(bad, test_bad_redis_address);
	tcase_add_test(bad, test_metrics_address);
	tcase_add_test(bad, test_bad_redis_sentinels);
	tcase_add_test(bad, test_overload_keys);
	tcase_add_test(bad, test_tcp_limit_keys);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
