/*
 * route — see route.h.
 *
 * A linear scan over at most CONFIG_MAX_ROUTES prefixes, keeping the longest
 * one that matches.  At 256 short prefixes this costs far less than parsing
 * the INVITE it serves, needs no index to build or keep in sync with the
 * config, and cannot be wrong in subtle ways.  Ties cannot happen: config
 * rejects duplicate prefixes at load time.  The comparison is byte-exact
 * (case-sensitive), as RFC 3261 compares the user part of a SIP URI.
 */
#include "worker/route.h"

#include <errno.h>
#include <string.h>

int route_lookup(const struct config *cfg, const char *user,
		 const struct config_route **out)
{
	const struct config_route *best = NULL;
	size_t best_len = 0;

	if (cfg == NULL || user == NULL || out == NULL)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_routes && i < CONFIG_MAX_ROUTES; i++) {
		const struct config_route *r = &cfg->routes[i];
		size_t len = strlen(r->prefix);

		if (strncmp(user, r->prefix, len) != 0)
			continue;
		/* "" matches every user, but any longer matching prefix beats it. */
		if (best == NULL || len > best_len) {
			best = r;
			best_len = len;
		}
	}
	if (best == NULL)
		return -ENOENT;
	*out = best;
	return 0;
}
