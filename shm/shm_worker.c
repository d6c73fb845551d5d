/*
 * shm_worker — the workers' slots of the shared region: who runs where
 * (master-written), and what each worker counts (see shm.h, "workers").
 *
 * Design note.  Each worker writes only its own slot, with relaxed atomic
 * adds: there is one writer per word, so no lock and no read-modify-write
 * race, and readers (the CLI, the metrics endpoint) sum the slots without
 * stopping anyone.  A reader's figures are each exact but not a snapshot
 * of all of them at one instant, which is what counters allow.
 *
 * Histograms are the same: a fixed table of bucket bounds per histogram
 * (below), a bucket chosen by a short linear scan (12 bounds), and two
 * adds (bucket, sum; the count is the sum of the buckets, computed by
 * readers, so that a scrape never sees _count disagree with its buckets).
 * The bounds are in microseconds and chosen for what each one measures:
 * call set-up spans milliseconds to the 30 s of a ringing callee, a Redis
 * round trip a tenth of a millisecond to a second (redis_timeout), the
 * loop's lag the worker's timer slack (4 ms) up to seconds of a stalled
 * worker.
 */
#include "shm/shm.h"
#include "shm/shm_int.h"

#include <errno.h>
#include <stddef.h>

static const uint64_t shm_hist_bound_us[SHM_HIST__COUNT][SHM_HIST_BOUNDS] = {
	[SHM_HIST_SETUP] = { 5000, 10000, 25000, 50000, 100000, 250000, 500000,
			     1000000, 2500000, 5000000, 10000000, 30000000 },
	[SHM_HIST_REDIS] = { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
			     100000, 250000, 1000000 },
	[SHM_HIST_LOOP_LAG] = { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
				500000, 1000000, 2500000, 5000000 },
};

/* ------------------------------------------------------------ workers */

void shm_worker_set(shm_t *shm, unsigned idx, pid_t pid, uint16_t port,
		    int restarted, uint64_t now_ms)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w)
		return;
	/* The master is the only writer of these fields: a plain seqlock suffices. */
	uint32_t q = shm_seq_open(&w->seq);
	atomic_store_explicit(&w->pid, (int32_t)pid, memory_order_relaxed);
	atomic_store_explicit(&w->port, port, memory_order_relaxed);
	atomic_store_explicit(&w->started_ms, now_ms, memory_order_relaxed);
	if (restarted) {
		uint32_t r = atomic_load_explicit(&w->restarts, memory_order_relaxed);
		atomic_store_explicit(&w->restarts, r + 1, memory_order_relaxed);
	}
	shm_seq_close(&w->seq, q);
}

void shm_counter_add(shm_t *shm, unsigned idx, enum shm_counter ctr, int64_t n)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w || (unsigned)ctr >= SHM_CTR__COUNT)
		return;
	/* Two's complement wrap-around makes a negative n a decrement. */
	atomic_fetch_add_explicit(&w->counters[ctr], (uint64_t)n, memory_order_relaxed);
}

void shm_code_count(shm_t *shm, unsigned idx, int code)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w || code < SHM_CODE_MIN || code > SHM_CODE_MAX)
		return;
	atomic_fetch_add_explicit(&w->codes[code - SHM_CODE_MIN], 1, memory_order_relaxed);
}

/* pid/port/restarts/started_ms as one consistent set (bounded like call reads). */
static void wslot_copy_ident(struct wslot *w, struct shm_worker_info *out)
{
	struct spin spin = { 0 };

	for (;;) {
		uint32_t q = atomic_load_explicit(&w->seq, memory_order_acquire);

		out->pid = atomic_load_explicit(&w->pid, memory_order_relaxed);
		out->port = (uint16_t)atomic_load_explicit(&w->port, memory_order_relaxed);
		out->restarts = atomic_load_explicit(&w->restarts, memory_order_relaxed);
		out->started_ms = atomic_load_explicit(&w->started_ms, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (!(q & 1) && atomic_load_explicit(&w->seq, memory_order_relaxed) == q)
			return;
		if (!shm_spin_wait(&spin))
			return;  /* the master died mid-update: the last values will do */
	}
}

int shm_worker_read(const shm_t *shm, unsigned idx, struct shm_worker_info *out)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w || !out)
		return -EINVAL;
	wslot_copy_ident(w, out);
	for (unsigned i = 0; i < SHM_CTR__COUNT; i++)
		out->counters[i] = atomic_load_explicit(&w->counters[i], memory_order_relaxed);
	return 0;
}

uint64_t shm_code_total(const shm_t *shm, int code)
{
	uint64_t sum = 0;

	if (!shm || code < SHM_CODE_MIN || code > SHM_CODE_MAX)
		return 0;
	for (unsigned i = 0; i < shm->max_workers; i++)
		sum += atomic_load_explicit(&shm_wslot_at(shm, i)->codes[code - SHM_CODE_MIN],
					    memory_order_relaxed);
	return sum;
}

void shm_gauge_set(shm_t *shm, unsigned idx, enum shm_counter ctr, uint64_t v)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w || (unsigned)ctr >= SHM_CTR__COUNT)
		return;
	atomic_store_explicit(&w->counters[ctr], v, memory_order_relaxed);
}

/* ------------------------------------------------------------ histograms */

const uint64_t *shm_hist_bounds(enum shm_hist h)
{
	if ((unsigned)h >= SHM_HIST__COUNT)
		return NULL;
	return shm_hist_bound_us[h];
}

unsigned shm_hist_bucket(enum shm_hist h, uint64_t us)
{
	unsigned b = 0;

	if ((unsigned)h >= SHM_HIST__COUNT)
		return SHM_HIST_BOUNDS;
	while (b < SHM_HIST_BOUNDS && us > shm_hist_bound_us[h][b])
		b++;
	return b;
}

void shm_hist_observe(shm_t *shm, unsigned idx, enum shm_hist h, uint64_t us)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w || (unsigned)h >= SHM_HIST__COUNT)
		return;
	atomic_fetch_add_explicit(&w->hist[h][shm_hist_bucket(h, us)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->hist[h][SHM_HIST_BOUNDS + 1], us, memory_order_relaxed);
}

int shm_hist_read(const shm_t *shm, unsigned idx, enum shm_hist h, struct shm_hist_info *out)
{
	struct wslot *w = shm_wslot_at(shm, idx);

	if (!w || !out || (unsigned)h >= SHM_HIST__COUNT)
		return -EINVAL;
	out->count = 0;
	for (unsigned b = 0; b <= SHM_HIST_BOUNDS; b++) {
		out->buckets[b] = atomic_load_explicit(&w->hist[h][b], memory_order_relaxed);
		out->count += out->buckets[b];
	}
	out->sum_us = atomic_load_explicit(&w->hist[h][SHM_HIST_BOUNDS + 1],
					   memory_order_relaxed);
	return 0;
}
