/*
 * check_route — unit tests for worker/route.c: longest prefix wins, the
 * empty prefix is a catch-all, no match is -ENOENT.  Routes are filled in
 * directly (config_load is tested in check_config), in an order that puts
 * short prefixes before and after long ones so that "first match" or "last
 * match" implementations fail.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bua/config.h"
#include "worker/route.h"

/* struct config is large (PATH_MAX fields): allocate it. */
static struct config *cfg_new(void)
{
	struct config *cfg = calloc(1, sizeof *cfg);

	ck_assert_ptr_nonnull(cfg);
	config_defaults(cfg);
	return cfg;
}

static void cfg_add(struct config *cfg, const char *prefix, const char *target)
{
	struct config_route *r;

	ck_assert_uint_lt(cfg->n_routes, CONFIG_MAX_ROUTES);
	r = &cfg->routes[cfg->n_routes++];
	snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
	snprintf(r->target, sizeof r->target, "%s", target);
}

/* Look `user` up and return the target, or NULL on -ENOENT. */
static const char *target_of(const struct config *cfg, const char *user)
{
	const struct config_route *r = NULL;
	int rc = route_lookup(cfg, user, &r);

	if (rc == -ENOENT)
		return NULL;
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(r);
	return r->target;
}

START_TEST(test_longest_prefix_wins)
{
	struct config *cfg = cfg_new();

	cfg_add(cfg, "49", "sip:de");
	cfg_add(cfg, "4930", "sip:berlin");
	cfg_add(cfg, "4", "sip:four");
	cfg_add(cfg, "493012", "sip:berlin-12");

	ck_assert_str_eq(target_of(cfg, "4930123456"), "sip:berlin-12");
	ck_assert_str_eq(target_of(cfg, "4930555"), "sip:berlin");
	ck_assert_str_eq(target_of(cfg, "4989"), "sip:de");
	ck_assert_str_eq(target_of(cfg, "41"), "sip:four");
	/* A user equal to a prefix matches it. */
	ck_assert_str_eq(target_of(cfg, "4930"), "sip:berlin");
	ck_assert_str_eq(target_of(cfg, "4"), "sip:four");
	/* A prefix longer than the user cannot match. */
	ck_assert_str_eq(target_of(cfg, "493"), "sip:de");
	free(cfg);
}
END_TEST

START_TEST(test_empty_prefix_catch_all)
{
	struct config *cfg = cfg_new();

	cfg_add(cfg, "1", "sip:one");
	cfg_add(cfg, "", "sip:default");
	cfg_add(cfg, "+1", "sip:plus-one");

	ck_assert_str_eq(target_of(cfg, "1555"), "sip:one");
	ck_assert_str_eq(target_of(cfg, "+1555"), "sip:plus-one");
	ck_assert_str_eq(target_of(cfg, "2555"), "sip:default");
	ck_assert_str_eq(target_of(cfg, "alice"), "sip:default");
	ck_assert_str_eq(target_of(cfg, "+2"), "sip:default");
	free(cfg);
}
END_TEST

START_TEST(test_no_match)
{
	struct config *cfg = cfg_new();
	const struct config_route *r = (const struct config_route *)&r;

	/* No routes at all. */
	ck_assert_int_eq(route_lookup(cfg, "123", &r), -ENOENT);

	cfg_add(cfg, "1", "sip:one");
	cfg_add(cfg, "22", "sip:two");
	ck_assert_ptr_null(target_of(cfg, "2"));
	ck_assert_ptr_null(target_of(cfg, "3"));
	ck_assert_ptr_null(target_of(cfg, "21"));
	/* Byte-exact: a letter prefix does not match another case. */
	cfg_add(cfg, "bob", "sip:bob");
	ck_assert_str_eq(target_of(cfg, "bobby"), "sip:bob");
	ck_assert_ptr_null(target_of(cfg, "Bob"));
	free(cfg);
}
END_TEST

START_TEST(test_empty_user)
{
	struct config *cfg = cfg_new();

	cfg_add(cfg, "1", "sip:one");
	ck_assert_ptr_null(target_of(cfg, ""));
	cfg_add(cfg, "", "sip:default");
	ck_assert_str_eq(target_of(cfg, ""), "sip:default");
	free(cfg);
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct config *cfg = cfg_new();
	const struct config_route *r = NULL;

	cfg_add(cfg, "", "sip:default");
	ck_assert_int_eq(route_lookup(NULL, "1", &r), -EINVAL);
	ck_assert_int_eq(route_lookup(cfg, NULL, &r), -EINVAL);
	ck_assert_int_eq(route_lookup(cfg, "1", NULL), -EINVAL);
	ck_assert_ptr_null(r);
	free(cfg);
}
END_TEST

/* A full table: every user finds exactly the route a brute-force check expects. */
START_TEST(test_many_routes)
{
	struct config *cfg = cfg_new();
	char prefix[16], target[32], user[16];

	/* Prefixes "0".."99" and "100".."255": one- to three-digit prefixes. */
	for (int i = 0; i < CONFIG_MAX_ROUTES; i++) {
		snprintf(prefix, sizeof prefix, "%d", i);
		snprintf(target, sizeof target, "sip:gw%d", i);
		cfg_add(cfg, prefix, target);
	}
	ck_assert_uint_eq(cfg->n_routes, CONFIG_MAX_ROUTES);

	for (int u = 0; u < 10000; u++) {
		const char *got;
		int best = -1;

		snprintf(user, sizeof user, "%d", u);
		/* The longest of user's first 1, 2, 3 digits that is below 256
		 * (users have no leading zero, so these are exactly the prefixes). */
		for (size_t len = 1; len <= 3 && len <= strlen(user); len++) {
			int v = 0;

			for (size_t k = 0; k < len; k++)
				v = v * 10 + (user[k] - '0');
			if (v < CONFIG_MAX_ROUTES)
				best = v;
		}
		got = target_of(cfg, user);
		ck_assert_ptr_nonnull(got);
		snprintf(target, sizeof target, "sip:gw%d", best);
		ck_assert_msg(strcmp(got, target) == 0, "user %s: got %s, want %s",
			      user, got, target);
	}
	ck_assert_str_eq(target_of(cfg, "2551"), "sip:gw255");
	ck_assert_str_eq(target_of(cfg, "2561"), "sip:gw25");
	ck_assert_ptr_null(target_of(cfg, "x1"));
	free(cfg);
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("lookup");

	tcase_add_test(tc, test_longest_prefix_wins);
	tcase_add_test(tc, test_empty_prefix_catch_all);
	tcase_add_test(tc, test_no_match);
	tcase_add_test(tc, test_empty_user);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_many_routes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
