/*
 * shm_int — what shm.c (the call table) and shm_worker.c (the workers'
 * slots: identity, counters, final codes, histograms) share.  Private to
 * shm/: nobody else maps, casts or writes the region (shm.h).
 *
 * Design note.  The region's header and a worker's slot are declared here
 * once, with the seqlock and bounded-wait helpers both files use, so the
 * layout described at the top of shm.c stays in one place.
 */
#ifndef B2BUA_SHM_INT_H
#define B2BUA_SHM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "shm/shm.h"

#define SHM_LINE  64
#define SHM_CODES (SHM_CODE_MAX - SHM_CODE_MIN + 1)
/* A histogram's words: the buckets, the one above every bound, the sum. */
#define SHM_HIST_WORDS (SHM_HIST_BOUNDS + 2)

struct wslot {
	_Alignas(SHM_LINE) _Atomic uint32_t seq;  /* guards pid..started_ms */
	_Atomic int32_t pid;
	_Atomic uint32_t port;
	_Atomic uint32_t restarts;
	_Atomic uint64_t started_ms;
	/* The worker's hot counters start on their own line, away from the master's fields. */
	_Alignas(SHM_LINE) _Atomic uint64_t counters[SHM_CTR__COUNT];
	_Atomic uint64_t codes[SHM_CODES];
	_Alignas(SHM_LINE) _Atomic uint64_t hist[SHM_HIST__COUNT][SHM_HIST_WORDS];
};

struct shm {
	uint64_t magic;
	uint32_t version;
	uint32_t capacity;
	uint32_t max_workers;
	uint32_t nindex;       /* index entries: a power of two */
	uint32_t window;       /* probe window, <= nindex */
	uint32_t slot_size;
	uint32_t wslot_size;
	uint64_t index_off;
	uint64_t slots_off;
	uint64_t invites_off;
	uint64_t workers_off;
	uint64_t size;
	/* Every insert and remove hits these: keep them off the read-mostly line. */
	_Alignas(SHM_LINE) _Atomic uint32_t live;
	_Atomic uint64_t free_head;   /* tag << 32 | top slot + 1; low half 0 = empty */
	_Atomic uint32_t used;        /* high-water mark: slots [0, used) were ever claimed */
	/* The INVITE records' free stack and high-water mark, the same way. */
	_Atomic uint64_t inv_free_head;
	_Atomic uint32_t inv_used;
};

/* A reader's bounded wait for a writer (see shm_spin_wait in shm.c). */
struct spin {
	unsigned n;
	struct timespec deadline;
};

/* Spin, then yield; false once a writer stayed mid-write too long (it died). */
bool shm_spin_wait(struct spin *sp);

/* Open a write (seq goes odd) / close it (even again). */
uint32_t shm_seq_open(_Atomic uint32_t *seq);
void shm_seq_close(_Atomic uint32_t *seq, uint32_t odd);

/* Worker slot idx, NULL for a bad index or a NULL shm. */
struct wslot *shm_wslot_at(const shm_t *shm, unsigned idx);

#endif
