/*
 * route — static routing: which SIP URI a call goes to, chosen by the
 * longest configured prefix of the Request-URI user.  Pure: no Sofia-SIP,
 * no I/O, so it is unit-tested on its own (tests/check_route.c).
 */
#ifndef B2BUA_ROUTE_H
#define B2BUA_ROUTE_H

#include "b2bua/config.h"

/*
 * Find the route for Request-URI user `user` (may be "" for a URI without a
 * user part).  Returns 0 and sets *out to the matching route, or -ENOENT when
 * no prefix matches (the caller answers 404).
 */
int route_lookup(const struct config *cfg, const char *user,
		 const struct config_route **out);

#endif
