/*
 * check_config_auth — unit tests for the digest challenge keys
 * (b2bua/config_auth.c): auth_algorithms and its deprecated alias
 * auth_sha256, and the names both read (digest_alg_parse()).
 *
 * Design note.  As in check_config, each test writes a small file with
 * mkstemp(), loads it with config_load() and removes it; errors are checked
 * by their "file:line: key: " start.  The warning of the deprecated alias
 * goes to the log, i.e. stderr: those tests send stderr to a temporary file
 * for the load and read it back.  The shipped etc/b2bua.conf is loaded from
 * $top_srcdir, because its default is the point: phones must register with
 * it (tests/e2e/baresip_call.sh plays that with a real softphone).
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
	char logged[1024];	/* what the load wrote to stderr */
	int rc;
	struct config cfg;
};

/* Load `text` from a temporary file, with stderr captured in l->logged. */
static struct loaded *load_text(const char *text)
{
	struct loaded *l = calloc(1, sizeof *l);
	FILE *cap = tmpfile();
	int saved, fd;
	ssize_t n;

	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_nonnull(cap);
	snprintf(l->path, sizeof l->path, "/tmp/check_config_auth.XXXXXX");
	fd = mkstemp(l->path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fileno(cap), STDERR_FILENO), 0);
	l->rc = config_load(l->path, &l->cfg, l->err, sizeof l->err);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fileno(cap), l->logged, sizeof l->logged - 1, 0);
	l->logged[n > 0 ? n : 0] = '\0';
	fclose(cap);
	unlink(l->path);
	return l;
}

/* A load that succeeded with exactly these algorithms, in this order. */
static void assert_algorithms(const char *text, size_t n, enum digest_alg a0, enum digest_alg a1)
{
	struct loaded *l = load_text(text);

	ck_assert_msg(l->rc == 0, "\"%s\" refused: %s", text, l->err);
	ck_assert_uint_eq(l->cfg.n_auth_algorithms, n);
	ck_assert_int_eq(l->cfg.auth_algorithms[0], a0);
	if (n > 1)
		ck_assert_int_eq(l->cfg.auth_algorithms[1], a1);
	free(l);
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

/* ------------------------------------------------------------ names */

START_TEST(test_alg_parse)
{
	enum digest_alg alg = DIGEST_SHA256;

	ck_assert_int_eq(digest_alg_parse("MD5", &alg), 0);
	ck_assert_int_eq(alg, DIGEST_MD5);
	ck_assert_int_eq(digest_alg_parse("sha-256", &alg), 0);
	ck_assert_int_eq(alg, DIGEST_SHA256);
	ck_assert_int_eq(digest_alg_parse("Sha-256", &alg), 0);
	ck_assert_int_eq(alg, DIGEST_SHA256);
	ck_assert_int_eq(digest_alg_parse("MD5-sess", &alg), -EINVAL);
	ck_assert_int_eq(digest_alg_parse("SHA-512-256", &alg), -EINVAL);
	ck_assert_int_eq(digest_alg_parse("SHA256", &alg), -EINVAL);
	ck_assert_int_eq(digest_alg_parse("", &alg), -EINVAL);
	ck_assert_int_eq(digest_alg_parse(NULL, &alg), -EINVAL);
	ck_assert_int_eq(alg, DIGEST_SHA256);   /* untouched by a failure */
}
END_TEST

/* ------------------------------------------------------------ defaults */

START_TEST(test_default_is_md5_only)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	ck_assert_ptr_nonnull(cfg);
	config_defaults(cfg);
	ck_assert_uint_eq(cfg->n_auth_algorithms, 1);
	ck_assert_int_eq(cfg->auth_algorithms[0], DIGEST_MD5);
	free(cfg);
	assert_algorithms("", 1, DIGEST_MD5, DIGEST_MD5);
}
END_TEST

/* The shipped sample offers MD5 only, and says so without the alias. */
START_TEST(test_sample_file)
{
	const char *top = getenv("top_srcdir");
	char path[PATH_MAX], err[ERRLEN];
	struct config *cfg = calloc(1, sizeof *cfg);
	char line[512];
	int rc, seen = 0;
	FILE *f;

	ck_assert_ptr_nonnull(cfg);
	snprintf(path, sizeof path, "%s/etc/b2bua.conf", top != NULL ? top : ".");
	rc = config_load(path, cfg, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: %s", path, err);
	ck_assert_uint_eq(cfg->n_auth_algorithms, 1);
	ck_assert_int_eq(cfg->auth_algorithms[0], DIGEST_MD5);
	free(cfg);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f) != NULL) {
		ck_assert_msg(strncmp(line, "auth_sha256", 11) != 0,
			      "the sample sets the deprecated auth_sha256");
		if (strncmp(line, "auth_algorithms = ", 18) == 0)
			seen++;
	}
	fclose(f);
	ck_assert_int_eq(seen, 1);
}
END_TEST

/* ------------------------------------------------------------ auth_algorithms */

START_TEST(test_order_is_kept)
{
	assert_algorithms("auth_algorithms = [ \"SHA-256\", \"MD5\" ];\n", 2,
			  DIGEST_SHA256, DIGEST_MD5);
	assert_algorithms("auth_algorithms = [ \"MD5\", \"SHA-256\" ];\n", 2,
			  DIGEST_MD5, DIGEST_SHA256);
	assert_algorithms("auth_algorithms = [ \"SHA-256\" ];\n", 1,
			  DIGEST_SHA256, DIGEST_SHA256);
	/* The list form, and names in any case (RFC 7616 compares them so). */
	assert_algorithms("auth_algorithms = ( \"sha-256\", \"md5\" );\n", 2,
			  DIGEST_SHA256, DIGEST_MD5);
}
END_TEST

START_TEST(test_bad_auth_algorithms)
{
	assert_error("\nauth_algorithms = \"MD5\";\n", 2, "auth_algorithms",
		     "must be a list of algorithms");
	assert_error("auth_algorithms = true;\n", 1, "auth_algorithms",
		     "must be a list of algorithms");
	assert_error("auth_algorithms = [ ];\n", 1, "auth_algorithms", "empty");
	assert_error("auth_algorithms = [ \"MD5-sess\" ];\n", 1, "auth_algorithms[0]",
		     "\"MD5-sess\" is not an algorithm b2bua offers");
	assert_error("auth_algorithms = [ \"MD5\", \"SHA-512-256\" ];\n", 1,
		     "auth_algorithms[1]", "not an algorithm");
	assert_error("auth_algorithms = [ \"MD5\", \"md5\" ];\n", 1, "auth_algorithms[1]",
		     "listed twice");
	assert_error("auth_algorithms = [ \"MD5\", \"SHA-256\", \"MD5\" ];\n", 1,
		     "auth_algorithms", "3 entries: at most 2");
	assert_error("auth_algorithms = ( \"MD5\", 5 );\n", 1, "auth_algorithms[1]",
		     "must be a string");
	assert_error("auth_algorithms = [ 1 ];\n", 1, "auth_algorithms[0]", "must be a string");
}
END_TEST

/* ------------------------------------------------------------ auth_sha256 */

START_TEST(test_alias_true)
{
	struct loaded *l = load_text("log_level = \"info\";\nauth_sha256 = true;\n");
	char want[256];

	ck_assert_msg(l->rc == 0, "refused: %s", l->err);
	ck_assert_uint_eq(l->cfg.n_auth_algorithms, 2);
	ck_assert_int_eq(l->cfg.auth_algorithms[0], DIGEST_SHA256);
	ck_assert_int_eq(l->cfg.auth_algorithms[1], DIGEST_MD5);
	snprintf(want, sizeof want, " warn: %s:2: auth_sha256: deprecated: write "
		 "auth_algorithms = [ \"SHA-256\", \"MD5\" ]; instead", l->path);
	ck_assert_msg(strstr(l->logged, want) != NULL, "logged \"%s\", wanted \"%s\"",
		      l->logged, want);
	free(l);
}
END_TEST

START_TEST(test_alias_false)
{
	struct loaded *l = load_text("auth_sha256 = false;\n");
	char want[256];

	ck_assert_msg(l->rc == 0, "refused: %s", l->err);
	ck_assert_uint_eq(l->cfg.n_auth_algorithms, 1);
	ck_assert_int_eq(l->cfg.auth_algorithms[0], DIGEST_MD5);
	snprintf(want, sizeof want, " warn: %s:1: auth_sha256: deprecated: write "
		 "auth_algorithms = [ \"MD5\" ]; instead", l->path);
	ck_assert_msg(strstr(l->logged, want) != NULL, "logged \"%s\", wanted \"%s\"",
		      l->logged, want);
	free(l);
}
END_TEST

/* The new key says nothing in the log; the two keys together are refused,
 * whichever comes first, at the alias. */
START_TEST(test_alias_errors)
{
	struct loaded *l = load_text("auth_algorithms = [ \"SHA-256\", \"MD5\" ];\n");

	ck_assert_int_eq(l->rc, 0);
	ck_assert_str_eq(l->logged, "");
	free(l);
	assert_error("auth_sha256 = 1;\n", 1, "auth_sha256", "must be true or false");
	assert_error("auth_algorithms = [ \"MD5\" ];\nauth_sha256 = true;\n", 2, "auth_sha256",
		     "remove auth_sha256");
	assert_error("auth_sha256 = false;\nauth_algorithms = [ \"MD5\" ];\n", 1, "auth_sha256",
		     "remove auth_sha256");
}
END_TEST

static Suite *config_auth_suite(void)
{
	Suite *s = suite_create("config_auth");
	TCase *tc = tcase_create("auth_algorithms");

	tcase_add_test(tc, test_alg_parse);
	tcase_add_test(tc, test_default_is_md5_only);
	tcase_add_test(tc, test_sample_file);
	tcase_add_test(tc, test_order_is_kept);
	tcase_add_test(tc, test_bad_auth_algorithms);
	tcase_add_test(tc, test_alias_true);
	tcase_add_test(tc, test_alias_false);
	tcase_add_test(tc, test_alias_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
