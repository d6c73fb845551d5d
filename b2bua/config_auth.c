/*
 * config_auth — the loaders of the digest authentication keys that say which
 * challenges a 401/407 carries: auth_algorithms, and auth_sha256, its
 * deprecated alias.  See config.h for the contract, config_keys.c for the
 * table that names them.
 *
 * Design note.  auth_algorithms is an ordered list because RFC 8760 makes
 * the order meaningful: a server puts one challenge per algorithm, most
 * preferred first (§2.3), and a client answers the topmost one it supports
 * (§2.4).  Clients that do not follow §2.4 exist (Debian 12's baresip fails
 * on any challenge it cannot answer, wherever it stands), which is why the
 * default is [ "MD5" ] and SHA-256 is the operator's choice: the reasoning
 * and the user agents' behaviour are in docs/configuration.md.
 *
 * auth_sha256 (a boolean, before auth_algorithms existed) still loads, with
 * a warning naming file and line and the auth_algorithms value that says
 * the same; a file that sets both is refused, since they would disagree.
 */
#include "b2bua/config_keys.h"

#include <stdio.h>
#include <string.h>

/* One entry of auth_algorithms; `i` is its index, used in the key name.
 * Entries 0..i-1 are already in cfg->auth_algorithms. */
static int config_auth_load_one(const struct config_ctx *ctx, const config_setting_t *s,
				unsigned i, struct config *cfg)
{
	char key[32];
	const char *name;
	enum digest_alg alg;

	snprintf(key, sizeof key, "auth_algorithms[%u]", i);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_fail(ctx, s, key, "must be a string: \"MD5\" or \"SHA-256\"");
	name = config_setting_get_string(s);
	if (digest_alg_parse(name, &alg) < 0)
		return config_fail(ctx, s, key, "\"%s\" is not an algorithm b2bua offers: "
				   "\"MD5\" or \"SHA-256\"", name);
	for (unsigned j = 0; j < i; j++)
		if (cfg->auth_algorithms[j] == alg)
			return config_fail(ctx, s, key, "\"%s\" is listed twice: name each "
					   "algorithm once", name);
	cfg->auth_algorithms[i] = alg;
	return 0;
}

/* An array [ "..." ] or a list ( "..." ), most preferred first. */
int config_load_auth_algorithms(const struct config_ctx *ctx, const config_setting_t *s,
				struct config *cfg)
{
	const char *key = config_setting_name(s);
	int type = config_setting_type(s), n;

	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
		return config_fail(ctx, s, key, "must be a list of algorithms, most preferred "
				   "first: [ \"MD5\" ] or [ \"SHA-256\", \"MD5\" ]");
	n = config_setting_length(s);
	if (n == 0)
		return config_fail(ctx, s, key, "empty: name at least one algorithm "
				   "(\"MD5\" or \"SHA-256\")");
	if (n > CONFIG_MAX_AUTH_ALGORITHMS)
		return config_fail(ctx, s, key, "%d entries: at most %d (\"MD5\" and "
				   "\"SHA-256\", each once)", n, CONFIG_MAX_AUTH_ALGORITHMS);
	for (int i = 0; i < n; i++) {
		int rc = config_auth_load_one(ctx, config_setting_get_elem(s, (unsigned)i),
					      (unsigned)i, cfg);

		if (rc < 0)
			return rc;
	}
	cfg->n_auth_algorithms = (size_t)n;
	return 0;
}

/* The deprecated boolean: true meant a SHA-256 challenge before the MD5 one. */
int config_load_auth_sha256(const struct config_ctx *ctx, const config_setting_t *s,
			    struct config *cfg)
{
	const char *key = config_setting_name(s);
	const char *same;

	if (config_setting_get_member(config_setting_parent(s), "auth_algorithms") != NULL)
		return config_fail(ctx, s, key, "deprecated alias of auth_algorithms, which "
				   "this file sets too: remove auth_sha256");
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_fail(ctx, s, key, "must be true or false (deprecated: "
				   "use auth_algorithms)");
	if (config_setting_get_bool(s)) {
		cfg->n_auth_algorithms = 2;
		cfg->auth_algorithms[0] = DIGEST_SHA256;
		cfg->auth_algorithms[1] = DIGEST_MD5;
		same = "[ \"SHA-256\", \"MD5\" ]";
	} else {
		cfg->n_auth_algorithms = 1;
		cfg->auth_algorithms[0] = DIGEST_MD5;
		same = "[ \"MD5\" ]";
	}
	config_warn(ctx, s, key, "deprecated: write auth_algorithms = %s; instead "
		    "(the same challenges)", same);
	return 0;
}
