/*
 * handover — the from → to datagram queues between workers (rules: handover.h).
 *
 * Region layout: one mmap(MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE), zero-filled:
 *
 *   0      struct handover_shared: magic, workers, ready flags
 *   rings  workers × workers struct ring (index to × workers + from; the
 *          from == to rings are never used), each HANDOVER_RING_BYTES of
 *          data after two cache lines for tail and head
 *
 * A ring holds records back to back, each 8-byte aligned:
 *
 *   struct rec { len, fromlen, rx_ns, from } then len bytes of datagram
 *
 * A record never wraps: when it does not fit before the end of the data,
 * the producer writes a skip mark (len = REC_SKIP) there, or nothing when
 * not even a header fits, and starts again at offset 0.  tail and head are
 * byte counts that only grow; (tail - head) is what is queued.
 * Pages are touched only when used: an idle pair costs no memory.
 */
#include "shm/handover.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define HANDOVER_MAGIC 0x31524f5648424242ull   /* "BBBHVOR1" in memory order */
#define HANDOVER_MAX_WORKERS 256
#define REC_SKIP 0xffffffffu

struct handover_shared {
	uint64_t magic;
	uint32_t workers;
	_Atomic uint32_t ready[HANDOVER_MAX_WORKERS];
};

struct ring {
	_Alignas(64) _Atomic uint64_t tail;   /* producer: bytes published */
	_Alignas(64) _Atomic uint64_t head;   /* consumer: bytes released */
	_Alignas(64) char data[HANDOVER_RING_BYTES];
};

struct rec {
	uint32_t len;                  /* datagram bytes, or REC_SKIP */
	uint32_t fromlen;
	uint64_t rx_ns;
	struct sockaddr_storage from;
};

struct handover {                      /* process-local; copied by fork */
	struct handover_shared *sh;
	struct ring *rings;
	size_t size;
	unsigned workers;
	int efd[HANDOVER_MAX_WORKERS];
};

static size_t handover_align(size_t n)
{
	return (n + 7u) & ~(size_t)7u;
}

static struct ring *handover_ring(const handover_t *h, unsigned to, unsigned from)
{
	return &h->rings[(size_t)to * h->workers + from];
}

int handover_create(unsigned workers, handover_t **out)
{
	size_t head = (sizeof(struct handover_shared) + 63u) & ~(size_t)63u;
	handover_t *h;
	void *p;

	if (workers == 0 || workers > HANDOVER_MAX_WORKERS)
		return -EINVAL;
	h = calloc(1, sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	h->workers = workers;
	h->size = head + (size_t)workers * workers * sizeof(struct ring);
	p = mmap(NULL, h->size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(h);
		return -ENOMEM;
	}
	h->sh = p;
	h->rings = (struct ring *)((char *)p + head);
	h->sh->magic = HANDOVER_MAGIC;
	h->sh->workers = workers;
	for (unsigned i = 0; i < workers; i++) {
		/* Not CLOEXEC: nothing execs; every worker inherits every eventfd.
		 * Blocking: the owner waits for it with an io_uring read, which
		 * would complete at once with -EAGAIN on a non-blocking one. */
		h->efd[i] = eventfd(0, 0);
		if (h->efd[i] < 0) {
			int err = -errno;

			while (i-- > 0)
				close(h->efd[i]);
			munmap(p, h->size);
			free(h);
			return err;
		}
	}
	*out = h;
	return 0;
}

void handover_destroy(handover_t *h)
{
	if (h == NULL)
		return;
	for (unsigned i = 0; i < h->workers; i++)
		close(h->efd[i]);
	munmap(h->sh, h->size);
	free(h);
}

unsigned handover_workers(const handover_t *h)
{
	return h->workers;
}

void handover_set_ready(handover_t *h, unsigned idx, int ready)
{
	if (idx < h->workers)
		atomic_store_explicit(&h->sh->ready[idx], ready ? 1u : 0u, memory_order_release);
}

int handover_ready(const handover_t *h, unsigned idx)
{
	return idx < h->workers &&
	       atomic_load_explicit(&h->sh->ready[idx], memory_order_acquire) != 0;
}

/* FNV-1a: short keys, good spread, no table. */
static uint64_t handover_hash(const char *s, size_t len)
{
	uint64_t x = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		x ^= (unsigned char)s[i];
		x *= 0x100000001b3ull;
	}
	return x;
}

/* A worker's rendezvous score for a key: a 64-bit mix of both. */
static uint64_t handover_score(uint64_t key, unsigned worker)
{
	uint64_t x = key ^ ((uint64_t)(worker + 1) * 0x9e3779b97f4a7c15ull);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

unsigned handover_owner(const handover_t *h, const char *call_id, size_t len, unsigned self)
{
	uint64_t key = handover_hash(call_id, len), best_score = 0;
	unsigned best = self;
	int found = 0;

	for (unsigned w = 0; w < h->workers; w++) {
		uint64_t s;

		if (!handover_ready(h, w))
			continue;
		s = handover_score(key, w);
		if (!found || s > best_score) {
			best = w;
			best_score = s;
			found = 1;
		}
	}
	return best;
}

int handover_push(handover_t *h, unsigned from, unsigned to, const void *data, size_t len,
		  const struct sockaddr *src, socklen_t srclen, uint64_t rx_ns)
{
	struct ring *r;
	size_t need = handover_align(sizeof(struct rec) + len);
	uint64_t tail, head, off, room_to_end;
	struct rec *rec;

	if (from >= h->workers || to >= h->workers || from == to ||
	    srclen > sizeof rec->from || (src == NULL && srclen != 0))
		return -EINVAL;
	if (len > HANDOVER_DGRAM_MAX)
		return -EMSGSIZE;
	r = handover_ring(h, to, from);
	tail = atomic_load_explicit(&r->tail, memory_order_relaxed);   /* ours alone */
	head = atomic_load_explicit(&r->head, memory_order_acquire);
	off = tail % HANDOVER_RING_BYTES;
	room_to_end = HANDOVER_RING_BYTES - off;
	if (need > room_to_end) {
		/* Skip to the start; the skipped bytes count as used until released. */
		if (tail + room_to_end + need - head > HANDOVER_RING_BYTES)
			return -ENOSPC;
		if (room_to_end >= sizeof(uint32_t))
			memcpy(r->data + off, &(uint32_t){ REC_SKIP }, sizeof(uint32_t));
		tail += room_to_end;
		off = 0;
	} else if (tail + need - head > HANDOVER_RING_BYTES) {
		return -ENOSPC;
	}
	rec = (struct rec *)(r->data + off);
	rec->len = (uint32_t)len;
	rec->fromlen = (uint32_t)srclen;
	rec->rx_ns = rx_ns;
	if (srclen)
		memcpy(&rec->from, src, srclen);
	memcpy(rec + 1, data, len);
	/* Publish: the consumer sees the record only with all its bytes. */
	atomic_store_explicit(&r->tail, tail + need, memory_order_release);
	return 0;
}

uint64_t handover_cursor(const handover_t *h, unsigned to, unsigned from)
{
	if (from >= h->workers || to >= h->workers)
		return 0;
	return atomic_load_explicit(&handover_ring(h, to, from)->head, memory_order_acquire);
}

int handover_peek(handover_t *h, unsigned to, unsigned from, uint64_t *cursor,
		  struct handover_msg *out)
{
	struct ring *r;
	uint64_t tail, pos = *cursor, off;
	const struct rec *rec;

	if (from >= h->workers || to >= h->workers || from == to)
		return -EINVAL;
	r = handover_ring(h, to, from);
	tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (pos >= tail)
		return -EAGAIN;
	off = pos % HANDOVER_RING_BYTES;
	rec = (const struct rec *)(r->data + off);
	if (HANDOVER_RING_BYTES - off < sizeof *rec || rec->len == REC_SKIP) {
		pos += HANDOVER_RING_BYTES - off;   /* the producer went back to 0 */
		if (pos >= tail)
			return -EAGAIN;
		rec = (const struct rec *)r->data;
	}
	if (rec->len > HANDOVER_DGRAM_MAX || rec->fromlen > sizeof rec->from)
		return -EIO;   /* cannot happen unless the region was overwritten */
	out->data = (const char *)(rec + 1);
	out->len = rec->len;
	out->fromlen = (socklen_t)rec->fromlen;
	out->from = (const struct sockaddr *)&rec->from;
	out->rx_ns = rec->rx_ns;
	out->end = pos + handover_align(sizeof *rec + rec->len);
	*cursor = out->end;
	return 0;
}

void handover_release(handover_t *h, unsigned to, unsigned from, uint64_t end)
{
	struct ring *r;

	if (from >= h->workers || to >= h->workers)
		return;
	r = handover_ring(h, to, from);
	if (end > atomic_load_explicit(&r->head, memory_order_relaxed))
		atomic_store_explicit(&r->head, end, memory_order_release);
}

int handover_eventfd(const handover_t *h, unsigned idx)
{
	return idx < h->workers ? h->efd[idx] : -1;
}
