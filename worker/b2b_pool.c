/*
 * b2b_pool — a worker's call entries, resident only as calls use them.
 * The contract and the reasons are in b2b_pool.h.
 *
 * Layout: one mapping, zero-filled by the kernel on first touch, of a
 * memfd named B2B_POOL_NAME (MAP_SHARED, but the worker's own: nobody else
 * maps it) so that /proc/PID/smaps and pmap show what the pool costs apart
 * from the heaps (bench/memory.sh reads it there); where memfd_create is
 * refused, an anonymous MAP_PRIVATE | MAP_NORESERVE mapping, the same but
 * nameless.  A memfd's pages are allocated on first touch too:
 *
 *   0          capacity × entry_size: the entries
 *   stack_off  capacity × uint32_t: the stack of free indexes (on a page
 *              of its own, so that a first release touches no entry's page)
 *
 * Both parts grow from their start: entries up to the high-water mark
 * (`used`), the stack up to the number of entries free at once (at most
 * `used`), so neither touches a page no call needed.
 */
#define _GNU_SOURCE   /* memfd_create */
#include "worker/b2b_pool.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The name of the mapping in /proc/PID/smaps: "/memfd:b2bua-call-pool (deleted)". */
#define B2B_POOL_NAME "b2bua-call-pool"

/* map_size bytes, none touched: the named memfd, else anonymous memory. */
static void *pool_map(size_t map_size)
{
	int fd = memfd_create(B2B_POOL_NAME, MFD_CLOEXEC);
	void *p = MAP_FAILED;

	if (fd >= 0 && ftruncate(fd, (off_t)map_size) == 0)
		p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd >= 0)
		close(fd);   /* the mapping keeps the memory */
	if (p == MAP_FAILED)   /* NORESERVE: the capacity is address space */
		p = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p;
}

struct b2b_pool {
	char *entries;         /* the mapping */
	uint32_t *free_idx;    /* free indexes, most recently released on top */
	size_t entry_size;
	size_t map_size;
	unsigned capacity;
	unsigned used;         /* high-water mark: entries [0, used) were handed out */
	unsigned n_free;       /* indexes on the free stack */
};

int b2b_pool_create(size_t entry_size, unsigned capacity, b2b_pool_t **out)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t stack_off;
	struct b2b_pool *pool;

	if (!out || entry_size == 0 || capacity == 0 ||
	    entry_size > (SIZE_MAX / 2 - sizeof(uint32_t)) / capacity)
		return -EINVAL;
	pool = calloc(1, sizeof *pool);
	if (pool == NULL)
		return -ENOMEM;
	pool->entry_size = entry_size;
	pool->capacity = capacity;
	stack_off = (entry_size * capacity + page - 1) / page * page;
	pool->map_size = stack_off + sizeof(uint32_t) * capacity;
	pool->entries = pool_map(pool->map_size);
	if (pool->entries == MAP_FAILED) {
		free(pool);
		return -ENOMEM;
	}
	pool->free_idx = (uint32_t *)(pool->entries + stack_off);
	*out = pool;
	return 0;
}

void b2b_pool_destroy(b2b_pool_t *pool)
{
	if (pool == NULL)
		return;
	munmap(pool->entries, pool->map_size);
	free(pool);
}

void *b2b_pool_get(b2b_pool_t *pool)
{
	char *entry;

	if (pool->n_free > 0) {
		/* A released entry first: its pages are resident already. */
		entry = pool->entries + (size_t)pool->free_idx[--pool->n_free] * pool->entry_size;
		memset(entry, 0, pool->entry_size);
		return entry;
	}
	if (pool->used == pool->capacity)
		return NULL;
	/* Never used: still the kernel's zero fill, and not touched here. */
	return pool->entries + (size_t)pool->used++ * pool->entry_size;
}

void b2b_pool_put(b2b_pool_t *pool, void *entry)
{
	size_t idx = (size_t)((char *)entry - pool->entries) / pool->entry_size;

	/* Not one of ours, or more given back than handed out: a stack that
	 * named an entry twice would give one entry to two calls. */
	if ((char *)entry < pool->entries || idx >= pool->used || pool->n_free >= pool->used)
		return;
	pool->free_idx[pool->n_free++] = (uint32_t)idx;
}

unsigned b2b_pool_used(const b2b_pool_t *pool)
{
	return pool ? pool->used : 0;
}

void *b2b_pool_at(const b2b_pool_t *pool, unsigned i)
{
	if (pool == NULL || i >= pool->used)
		return NULL;
	return pool->entries + (size_t)i * pool->entry_size;
}
