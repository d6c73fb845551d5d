/*
 * b2b_pool — a worker's call entries: reserved for call_capacity calls,
 * resident only as calls use them.
 *
 * Design note.  Every worker may own up to call_capacity calls, so each
 * reserves that many entries; but a worker of sixteen rarely owns more than
 * its share, and an entry written at start-up stays resident for the life
 * of the process.  So the entries are one private anonymous mapping
 * (MAP_NORESERVE: address space, not memory), handed out in index order
 * (a high-water mark): an entry's page is first touched by the call that
 * takes it.  A released entry goes on a stack of free indexes and is taken
 * again before any new one, so the high-water mark, and the resident
 * memory, follow the most calls the worker held at once, not the capacity.
 * Taking and giving back an entry is a few instructions and no system call.
 *
 * Pure: entries are bytes of a given size, so it is unit-tested on its own
 * (tests/check_pool.c).  Whoever walks every entry (drain, kill, expiry)
 * walks indexes below b2b_pool_used() and skips the free ones by their own
 * mark (a free b2b_call has call->b2b == NULL).
 */
#ifndef B2BUA_B2B_POOL_H
#define B2BUA_B2B_POOL_H

#include <stddef.h>

typedef struct b2b_pool b2b_pool_t;

/* A pool of `capacity` entries of `entry_size` bytes, none touched yet:
 * 0 and *out, or -EINVAL (a size or capacity of 0, or one that overflows)
 * or -ENOMEM. */
int b2b_pool_create(size_t entry_size, unsigned capacity, b2b_pool_t **out);

/* Unmap every entry (NULL: nothing). */
void b2b_pool_destroy(b2b_pool_t *pool);

/* A zero-filled entry: the most recently released one, else the next one
 * never used; NULL when `capacity` entries are out. */
void *b2b_pool_get(b2b_pool_t *pool);

/* Give back an entry b2b_pool_get() returned (once). */
void b2b_pool_put(b2b_pool_t *pool, void *entry);

/* The high-water mark: entries 0..used-1 have been handed out at least
 * once (in use or free); 0 for NULL. */
unsigned b2b_pool_used(const b2b_pool_t *pool);

/* Entry i (i < b2b_pool_used(), in use or free), else NULL. */
void *b2b_pool_at(const b2b_pool_t *pool, unsigned i);

#endif
