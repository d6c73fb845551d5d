/*
 * ratelimit — token buckets per source address.  See ratelimit.h.
 *
 * Design note.  Each entry is one source's bucket: its key, its tokens in
 * thousandths of a request and when it was last refilled.  Tokens grow by
 * `rate` per second up to `burst`; a request takes one.  The table is
 * open-addressed with a short probe window (RATELIMIT_PROBE entries after
 * the key's hash): a key lives in its window or nowhere, so a check costs at
 * most that many comparisons.  A bucket that has refilled completely is the
 * same as no bucket, so such entries are free for the taking; when none is,
 * the entry idle longest in the window is taken (its source restarts with a
 * full bucket, which favours the sources that talk, not the attacker who
 * cycles through addresses).  The hash is keyed with a random seed (FNV-1a
 * over seed and key, then a 64-bit mixer), so colliding keys cannot be
 * chosen from outside.
 */
#include "worker/ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_PROBE 8
#define RATELIMIT_MILLI 1000u

struct ratelimit_entry {
	uint64_t last_ms;          /* when tokens was computed; 0 = unused */
	uint64_t tokens;           /* thousandths of a request */
	uint8_t len;
	uint8_t key[RATELIMIT_KEY_MAX];
};

struct ratelimit {
	struct ratelimit_entry *table;
	uint64_t mask;             /* table size - 1 (a power of two) */
	uint64_t rate;             /* requests per second */
	uint64_t full;             /* burst in thousandths */
	uint64_t seed;
};

static uint64_t ratelimit_hash(const ratelimit_t *rl, const uint8_t *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ rl->seed;

	for (size_t i = 0; i < len; i++) {
		h ^= key[i];
		h *= 0x100000001b3ull;
	}
	/* splitmix64's finalizer: every key bit reaches the low (index) bits. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

/* The bucket's tokens at `now`, refilled since last_ms and capped. */
static uint64_t ratelimit_tokens(const ratelimit_t *rl, const struct ratelimit_entry *e,
				 uint64_t now_ms)
{
	uint64_t elapsed = now_ms > e->last_ms ? now_ms - e->last_ms : 0;
	uint64_t tokens;

	/* `rate` per second is `rate` thousandths per ms; a long pause fills
	 * the bucket (checked first, so the product cannot overflow). */
	if (elapsed > rl->full / rl->rate)
		return rl->full;
	tokens = e->tokens + elapsed * rl->rate;
	return tokens > rl->full ? rl->full : tokens;
}

/* Unused, or refilled completely: as good as no bucket at all. */
static int ratelimit_is_free(const ratelimit_t *rl, const struct ratelimit_entry *e,
			     uint64_t now_ms)
{
	return e->last_ms == 0 || ratelimit_tokens(rl, e, now_ms) == rl->full;
}

/* The entry of `key` in its probe window, or a fresh one (last_ms 0) for it:
 * a free entry if the window has one, else the one idle longest. */
static struct ratelimit_entry *ratelimit_find(ratelimit_t *rl, const uint8_t *key, size_t len,
					      uint64_t now_ms)
{
	uint64_t h = ratelimit_hash(rl, key, len);
	struct ratelimit_entry *spare = NULL, *oldest = NULL;

	for (unsigned i = 0; i < RATELIMIT_PROBE; i++) {
		struct ratelimit_entry *e = &rl->table[(h + i) & rl->mask];

		if (e->last_ms != 0 && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
		if (spare == NULL && ratelimit_is_free(rl, e, now_ms))
			spare = e;
		if (oldest == NULL || e->last_ms < oldest->last_ms)
			oldest = e;
	}
	if (spare == NULL)
		spare = oldest;
	spare->last_ms = 0;
	spare->len = (uint8_t)len;
	memcpy(spare->key, key, len);
	return spare;
}

int ratelimit_allow(ratelimit_t *rl, const void *key, size_t len, uint64_t now_ms)
{
	struct ratelimit_entry *e;

	if (key == NULL || len == 0 || len > RATELIMIT_KEY_MAX)
		return -EINVAL;
	if (now_ms == 0)
		now_ms = 1;   /* 0 marks an unused entry */
	e = ratelimit_find(rl, key, len, now_ms);
	e->tokens = e->last_ms == 0 ? rl->full : ratelimit_tokens(rl, e, now_ms);
	e->last_ms = now_ms;
	if (e->tokens < RATELIMIT_MILLI)
		return 0;
	e->tokens -= RATELIMIT_MILLI;
	return 1;
}

int ratelimit_create(unsigned sources, unsigned rate, unsigned burst, uint64_t seed,
		     ratelimit_t **out)
{
	ratelimit_t *rl;
	uint64_t size = RATELIMIT_PROBE;

	if (rate == 0 || burst == 0 || sources == 0 || sources > (1u << 24))
		return -EINVAL;
	while (size < sources)
		size <<= 1;
	rl = calloc(1, sizeof *rl);
	if (rl == NULL)
		return -ENOMEM;
	rl->table = calloc(size, sizeof *rl->table);
	if (rl->table == NULL) {
		free(rl);
		return -ENOMEM;
	}
	rl->mask = size - 1;
	rl->rate = rate;
	rl->full = (uint64_t)burst * RATELIMIT_MILLI;
	rl->seed = seed;
	*out = rl;
	return 0;
}

void ratelimit_destroy(ratelimit_t *rl)
{
	if (rl == NULL)
		return;
	free(rl->table);
	free(rl);
}
