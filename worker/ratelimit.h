/*
 * ratelimit — per-source request rate limits, in the spirit of Kamailio's
 * pike and ratelimit modules: a token bucket per source address in a
 * fixed-size hash table.
 *
 * A limiter allows `rate` requests per second per source with bursts of up
 * to `burst` requests.  Its memory is taken once by ratelimit_create(); a
 * check allocates nothing and touches a few cache lines, so a flood costs
 * little.  Pure: no Sofia-SIP, no clock of its own (the caller passes the
 * time), so it is unit-tested in tests/check_ratelimit.c.
 */
#ifndef B2BUA_RATELIMIT_H
#define B2BUA_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ratelimit ratelimit_t;

/* Longest source key: an IPv6 address and its family. */
#define RATELIMIT_KEY_MAX 17

/*
 * A limiter of `rate` requests per second (>= 1) and bursts of `burst`
 * (>= 1) for up to `sources` sources tracked at once (rounded up to a power
 * of two).  `seed` keys the hash, so that a peer cannot choose addresses
 * that collide.  Returns 0, -EINVAL or -ENOMEM.
 */
int ratelimit_create(unsigned sources, unsigned rate, unsigned burst, uint64_t seed,
		     ratelimit_t **out);
void ratelimit_destroy(ratelimit_t *rl);

/*
 * May the source `key` (1..RATELIMIT_KEY_MAX bytes, e.g. the family and
 * the address) send one more request at `now_ms`?  Returns 1 and counts it
 * when it may, 0 when it is over its limit (the request is not counted),
 * -EINVAL for a bad key.  When the table is full the source idle longest
 * among those its key may use gives its place up: a new source is never
 * refused for lack of room.
 */
int ratelimit_allow(ratelimit_t *rl, const void *key, size_t len, uint64_t now_ms);

#endif
