/*
 * check_config_tls — unit tests for the TLS keys (b2bua/config_tls.c):
 * their defaults, types and ranges, and the checks that run when
 * transports has "tls": certificate and key present, readable and of the
 * right PEM kind, the CA file when tls_verify_peer is on, and TLS ports
 * that meet no other SIP port.
 *
 * Design note.  As in check_config, each test writes a small file with
 * mkstemp(), loads it with config_load() and removes it; errors are checked
 * by their "file:line: key: " start.  The PEM files are stand-ins made in a
 * temporary directory: the loader looks only for the "-----BEGIN" line of
 * the right kind (OpenSSL reads them in the worker, tests/e2e/tls_*.sh).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b2bua/config.h"

#define ERRLEN 512

struct loaded {
	char path[64];
	char err[ERRLEN];
	int rc;
	struct config cfg;
};

static char dir[64];
static char pem_cert[128], pem_key[128], pem_ca[128];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	fclose(f);
}

static void pem_setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/check_config_tls.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pem_cert, sizeof pem_cert, "%s/pem_cert.pem", dir);
	snprintf(pem_key, sizeof pem_key, "%s/key.pem", dir);
	snprintf(pem_ca, sizeof pem_ca, "%s/pem_ca.pem", dir);
	write_file(pem_cert, "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n");
	write_file(pem_key, "-----BEGIN PRIVATE KEY-----\nMII=\n-----END PRIVATE KEY-----\n");
	write_file(pem_ca, "subject=CN = test CA\n-----BEGIN CERTIFICATE-----\nMII=\n"
		   "-----END CERTIFICATE-----\n");
}

static void pem_teardown(void)
{
	unlink(pem_cert);
	unlink(pem_key);
	unlink(pem_ca);
	rmdir(dir);
}

static struct loaded *load_text(const char *text)
{
	struct loaded *l = calloc(1, sizeof *l);
	int fd;

	ck_assert_ptr_nonnull(l);
	snprintf(l->path, sizeof l->path, "/tmp/check_config_tls.XXXXXX");
	fd = mkstemp(l->path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	l->rc = config_load(l->path, &l->cfg, l->err, sizeof l->err);
	unlink(l->path);
	return l;
}

/* A failed load whose message starts with "<path>:<line>: <key>: " and
 * contains `why`. */
static void assert_error(const char *text, int line, const char *key, const char *why)
{
	struct loaded *l = load_text(text);
	char prefix[ERRLEN];

	snprintf(prefix, sizeof prefix, "%s:%d: %s: ", l->path, line, key);
	ck_assert_int_eq(l->rc, -EINVAL);
	ck_assert_msg(strncmp(l->err, prefix, strlen(prefix)) == 0,
		      "error \"%s\" does not start with \"%s\"", l->err, prefix);
	ck_assert_msg(strstr(l->err, why) != NULL, "error \"%s\" lacks \"%s\"", l->err, why);
	free(l);
}

/* The file text of a TLS setup, with `extra` lines after it. */
static void tls_text(char *buf, size_t size, const char *extra)
{
	snprintf(buf, size, "workers = 2;\ntransports = [ \"udp\", \"tls\" ];\n"
		 "tls_certificate = \"%s\";\ntls_key = \"%s\";\n%s", pem_cert, pem_key, extra);
}

START_TEST(test_defaults)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	ck_assert_ptr_nonnull(cfg);
	config_defaults(cfg);
	ck_assert_int_eq(cfg->tls_port, 5061);
	ck_assert_int_eq(cfg->tls_worker_port_base, 5170);
	ck_assert_int_eq(cfg->tls_verify_peer, 0);
	ck_assert_int_eq(cfg->tls_min_version, CONFIG_TLS_1_2);
	ck_assert_str_eq(cfg->tls_certificate, "");
	/* Past the widest worker range of the defaults (5070 + 64 workers). */
	ck_assert_int_gt(cfg->tls_worker_port_base, cfg->worker_port_base + CONFIG_MAX_WORKERS);
	free(cfg);
}
END_TEST

START_TEST(test_full_load)
{
	char text[1024], extra[512];
	struct loaded *l;

	snprintf(extra, sizeof extra, "tls_port = 15061;\ntls_worker_port_base = 15100;\n"
		 "tls_ca_file = \"%s\";\ntls_verify_peer = true;\ntls_min_version = \"1.3\";\n",
		 pem_ca);
	tls_text(text, sizeof text, extra);
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.transports, CONFIG_TP_UDP | CONFIG_TP_TLS);
	ck_assert_int_eq(l->cfg.tls_port, 15061);
	ck_assert_int_eq(l->cfg.tls_worker_port_base, 15100);
	ck_assert_str_eq(l->cfg.tls_certificate, pem_cert);
	ck_assert_str_eq(l->cfg.tls_key, pem_key);
	ck_assert_str_eq(l->cfg.tls_ca_file, pem_ca);
	ck_assert_int_eq(l->cfg.tls_verify_peer, 1);
	ck_assert_int_eq(l->cfg.tls_min_version, CONFIG_TLS_1_3);
	free(l);
	/* udp, tcp and tls together. */
	snprintf(text, sizeof text, "transports = [ \"udp\", \"tcp\", \"tls\" ];\n"
		 "tls_certificate = \"%s\";\ntls_key = \"%s\";\n", pem_cert, pem_key);
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	ck_assert_uint_eq(l->cfg.transports, CONFIG_TP_UDP | CONFIG_TP_TCP | CONFIG_TP_TLS);
	free(l);
}
END_TEST

/* The certificate and the key are required with "tls", by name. */
START_TEST(test_files_required)
{
	char text[1024];

	assert_error("workers = 1;\ntransports = [ \"udp\", \"tls\" ];\n", 2, "tls_certificate",
		     "missing: required when transports has \"tls\"");
	snprintf(text, sizeof text, "transports = [ \"udp\", \"tls\" ];\ntls_certificate = \"%s\";\n",
		 pem_cert);
	assert_error(text, 1, "tls_key", "missing");
	/* Without "tls" the TLS keys may stay unset, or set. */
	snprintf(text, sizeof text, "tls_certificate = \"/nonexistent/pem_cert.pem\";\n");
	{
		struct loaded *l = load_text(text);

		ck_assert_msg(l->rc == 0, "%s", l->err);
		free(l);
	}
}
END_TEST

START_TEST(test_files_checked)
{
	char text[1024], extra[256];

	/* Unreadable. */
	snprintf(text, sizeof text, "transports = [ \"udp\", \"tls\" ];\n"
		 "tls_certificate = \"%s/none.pem\";\ntls_key = \"%s\";\n", dir, pem_key);
	assert_error(text, 2, "tls_certificate", "No such file or directory");
	/* Certificate and key swapped. */
	snprintf(text, sizeof text, "transports = [ \"udp\", \"tls\" ];\n"
		 "tls_certificate = \"%s\";\ntls_key = \"%s\";\n", pem_key, pem_cert);
	assert_error(text, 2, "tls_certificate", "no PEM block of the right kind");
	snprintf(text, sizeof text, "transports = [ \"udp\", \"tls\" ];\n"
		 "tls_certificate = \"%s\";\ntls_key = \"%s\";\n", pem_cert, pem_cert);
	assert_error(text, 3, "tls_key", "PRIVATE KEY");
	/* A relative path. */
	assert_error("tls_key = \"key.pem\";\n", 1, "tls_key", "must be an absolute path");
	assert_error("tls_ca_file = 3;\n", 1, "tls_ca_file", "must be a string");
	/* tls_verify_peer needs the CA file. */
	tls_text(text, sizeof text, "tls_verify_peer = true;\n");
	assert_error(text, 2, "tls_ca_file", "required when tls_verify_peer is true");
	snprintf(extra, sizeof extra, "tls_ca_file = \"%s\";\n", pem_key);
	tls_text(text, sizeof text, extra);
	assert_error(text, 5, "tls_ca_file", "CERTIFICATE");
}
END_TEST

START_TEST(test_values)
{
	assert_error("tls_min_version = \"1.1\";\n", 1, "tls_min_version", "\"1.2\" or \"1.3\"");
	assert_error("tls_min_version = 1.3;\n", 1, "tls_min_version", "\"1.2\" or \"1.3\"");
	assert_error("tls_verify_peer = 1;\n", 1, "tls_verify_peer", "true or false");
	assert_error("tls_port = 0;\n", 1, "tls_port", "between 1 and 65535");
	assert_error("tls_worker_port_base = 70000;\n", 1, "tls_worker_port_base",
		     "between 1 and 65535");
	assert_error("transports = [ \"udp\", \"sctp\" ];\n", 1, "transports",
		     "\"udp\", \"tcp\" or \"tls\"");
}
END_TEST

/* With "tls", its ports meet no other SIP port; without it, unchecked. */
START_TEST(test_ports)
{
	char text[1024];
	struct loaded *l;

	tls_text(text, sizeof text, "tls_worker_port_base = 5071;\n");
	assert_error(text, 5, "tls_worker_port_base", "overlap the worker ports 5070..5071");
	tls_text(text, sizeof text, "tls_worker_port_base = 65535;\n");
	assert_error(text, 5, "tls_worker_port_base", "go past 65535");
	tls_text(text, sizeof text, "tls_worker_port_base = 5059;\n");
	assert_error(text, 5, "tls_worker_port_base", "contain sip_port 5060");
	tls_text(text, sizeof text, "tls_port = 5171;\n");
	assert_error(text, 5, "tls_port", "in the TLS worker ports 5170..5171");
	tls_text(text, sizeof text, "tls_port = 5060;\n");
	assert_error(text, 5, "tls_port", "a TLS port must be a port of its own");
	tls_text(text, sizeof text, "tls_port = 5070;\n");
	assert_error(text, 5, "tls_port", "a TLS port must be a port of its own");
	/* Defaults of every port key, with 64 workers: no conflict. */
	tls_text(text, sizeof text, "");
	memcpy(text, "workers = 64", 12);
	l = load_text(text);
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);
	l = load_text("tls_port = 5060;\ntls_worker_port_base = 5070;\n");
	ck_assert_msg(l->rc == 0, "%s", l->err);
	free(l);
}
END_TEST

static Suite *config_tls_suite(void)
{
	Suite *s = suite_create("config_tls");
	TCase *tc = tcase_create("tls keys");

	tcase_add_checked_fixture(tc, pem_setup, pem_teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full_load);
	tcase_add_test(tc, test_files_required);
	tcase_add_test(tc, test_files_checked);
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_ports);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_tls_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
