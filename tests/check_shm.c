/*
 * check_shm — the shared-memory call table.
 *
 * Design note.  Two test cases:
 *  - "unit": the API's semantics in one process (capacity, lookups, reaping,
 *    counters, truncation, bad arguments).  Fast, and clean under
 *    `CK_RUN_CASE=unit CK_FORK=no valgrind ./tests/check_shm`.
 *  - "procs": several forked processes on one table.  Writers keep updating
 *    their calls with records whose every field derives from one version
 *    number, so a reader holding a torn copy notices; at the end the parent
 *    checks that exactly the calls the writers say they left are in the table.
 *
 * Children never call Check: they record what they saw in a shared results
 * area, leave with _exit(), and the parent waits for each by PID with a
 * deadline.  Every loop is bounded in time or iterations.
 */
#include "shm/shm.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void call_init(struct shm_call *c, uint16_t worker, const char *call_id)
{
	memset(c, 0, sizeof *c);
	snprintf(c->id, sizeof c->id, "n-w%u-1-%u", worker, 0x1000 + worker);
	c->worker = worker;
	c->state = SHM_CALL_TRYING;
	snprintf(c->caller, sizeof c->caller, "sip:alice@a.example");
	snprintf(c->callee, sizeof c->callee, "sip:bob@b.example");
	c->start_ms = 1700000000000ull;
	snprintf(c->a.call_id, sizeof c->a.call_id, "%s", call_id);
	snprintf(c->a.remote_tag, sizeof c->a.remote_tag, "atag");
	c->a.remote_cseq = 101;
	snprintf(c->b.call_id, sizeof c->b.call_id, "b-%s", call_id);
	snprintf(c->b.route_set, sizeof c->b.route_set, "<sip:p1;lr>,<sip:p2;lr>");
	c->b.transport = SHM_TP_TCP;
}

static uint32_t insert_ok(shm_t *shm, uint16_t worker, const char *call_id)
{
	struct shm_call c;
	uint32_t slot = UINT32_MAX;

	call_init(&c, worker, call_id);
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot), 0);
	return slot;
}

static int insert_named(shm_t *shm, uint16_t worker, const char *fmt, unsigned n, uint32_t *slot)
{
	struct shm_call c;
	char id[64];

	snprintf(id, sizeof id, fmt, n);
	call_init(&c, worker, id);
	return shm_call_insert(shm, &c, slot);
}

/* Same hash as shm.c (FNV-1a 64), only to build colliding keys on purpose. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Pages of the region in memory, as the kernel sees them (mincore). */
static size_t region_resident(shm_t *shm)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t npages = shm_size(shm) / page;
	unsigned char *vec = malloc(npages);
	size_t n = 0;

	ck_assert_ptr_nonnull(vec);
	ck_assert_int_eq(mincore((void *)shm, shm_size(shm), vec), 0);
	for (size_t i = 0; i < npages; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

/* ------------------------------------------------------------ unit: life cycle */

START_TEST(test_create_destroy)
{
	shm_t *shm = NULL;

	ck_assert_int_eq(shm_create(100, 4, &shm), 0);
	ck_assert_ptr_nonnull(shm);
	ck_assert_uint_eq(shm_capacity(shm), 100);
	ck_assert_uint_eq(shm_max_workers(shm), 4);
	/* 100 slots, each at least a call and its INVITE record. */
	ck_assert_uint_ge(shm_size(shm), 100 * (sizeof(struct shm_call) + sizeof(struct shm_invite)));
	ck_assert_uint_eq(shm_size(shm) % (size_t)sysconf(_SC_PAGESIZE), 0);
	ck_assert_uint_eq(shm_call_count(shm), 0);
	shm_destroy(shm);
	shm_destroy(NULL);

	/* The spare room of the hash table is in the 8-byte index only: a unit
	 * of capacity costs a slot, an INVITE record and two index entries
	 * (bench/memory.sh measures it), not twice a slot and a record. */
	ck_assert_int_eq(shm_create(16384, 4, &shm), 0);
	ck_assert_uint_le(shm_size(shm), 16384u * (sizeof(struct shm_call) + sizeof(struct shm_invite) +
						  2 * 64 + 2 * sizeof(uint64_t)) + 65536);
	shm_destroy(shm);
}
END_TEST

START_TEST(test_bad_args)
{
	shm_t *shm = NULL;
	struct shm_call c;
	struct shm_worker_info wi;
	uint32_t slot;

	ck_assert_int_eq(shm_create(0, 4, &shm), -EINVAL);
	ck_assert_int_eq(shm_create(4, 0, &shm), -EINVAL);
	ck_assert_int_eq(shm_create(UINT_MAX, 4, &shm), -EINVAL);
	ck_assert_int_eq(shm_create(4, 100000, &shm), -EINVAL);
	ck_assert_int_eq(shm_create(4, 4, NULL), -EINVAL);
	ck_assert_ptr_null(shm);

	ck_assert_int_eq(shm_create(4, 2, &shm), 0);
	call_init(&c, 0, "");
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot), -EINVAL);
	call_init(&c, 2, "worker-out-of-range");
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot), -EINVAL);
	call_init(&c, 0, "ok");
	ck_assert_int_eq(shm_call_insert(shm, NULL, &slot), -EINVAL);
	ck_assert_int_eq(shm_call_insert(shm, &c, NULL), -EINVAL);
	ck_assert_uint_eq(shm_call_count(shm), 0);

	ck_assert_int_eq(shm_call_find(shm, NULL, &slot, &c), -EINVAL);
	ck_assert_int_eq(shm_call_find(shm, "", &slot, &c), -ENOENT);
	ck_assert_int_eq(shm_worker_read(shm, 2, &wi), -EINVAL);
	ck_assert_int_eq(shm_worker_read(shm, 0, NULL), -EINVAL);
	shm_destroy(shm);
}
END_TEST

/* ------------------------------------------------------------ unit: calls */

START_TEST(test_insert_read_find_update_remove)
{
	shm_t *shm;
	struct shm_call c;
	uint32_t slot, found;

	ck_assert_int_eq(shm_create(16, 2, &shm), 0);
	slot = insert_ok(shm, 1, "abc@host");
	ck_assert_uint_eq(shm_call_count(shm), 1);

	ck_assert_int_eq(shm_call_read(shm, slot, &c), 0);
	ck_assert_str_eq(c.id, "n-w1-1-4097");
	ck_assert_uint_eq(c.worker, 1);
	ck_assert_uint_eq(c.state, SHM_CALL_TRYING);
	ck_assert_str_eq(c.caller, "sip:alice@a.example");
	ck_assert_str_eq(c.a.call_id, "abc@host");
	ck_assert_str_eq(c.b.call_id, "b-abc@host");
	ck_assert_str_eq(c.b.route_set, "<sip:p1;lr>,<sip:p2;lr>");
	ck_assert_uint_eq(c.a.remote_cseq, 101);
	ck_assert_uint_eq(c.b.transport, SHM_TP_TCP);

	memset(&c, 0, sizeof c);
	ck_assert_int_eq(shm_call_find(shm, "abc@host", &found, &c), 0);
	ck_assert_uint_eq(found, slot);
	ck_assert_str_eq(c.a.call_id, "abc@host");
	ck_assert_int_eq(shm_call_find(shm, "abc@hos", &found, &c), -ENOENT);
	ck_assert_int_eq(shm_call_find(shm, "abc@host2", &found, &c), -ENOENT);
	ck_assert_int_eq(shm_call_find(shm, "abc@host", NULL, NULL), 0);

	struct shm_call *w = shm_call_write_begin(shm, slot);
	ck_assert_ptr_nonnull(w);
	w->state = SHM_CALL_HELD;
	w->held_by = SHM_PARTY_CALLEE;
	w->answer_ms = 42;
	snprintf(w->b.remote_tag, sizeof w->b.remote_tag, "btag");
	w->b.local_cseq = 7;
	shm_call_write_end(shm, slot);

	ck_assert_int_eq(shm_call_find(shm, "abc@host", &found, &c), 0);
	ck_assert_uint_eq(c.state, SHM_CALL_HELD);
	ck_assert_uint_eq(c.held_by, SHM_PARTY_CALLEE);
	ck_assert_uint_eq(c.answer_ms, 42);
	ck_assert_str_eq(c.b.remote_tag, "btag");
	ck_assert_uint_eq(c.b.local_cseq, 7);
	ck_assert_str_eq(c.caller, "sip:alice@a.example");

	shm_call_remove(shm, slot);
	ck_assert_uint_eq(shm_call_count(shm), 0);
	ck_assert_int_eq(shm_call_read(shm, slot, &c), -ENOENT);
	ck_assert_int_eq(shm_call_find(shm, "abc@host", &found, &c), -ENOENT);
	ck_assert_ptr_null(shm_call_write_begin(shm, slot));

	/* The key can come back (a new call with a recycled Call-ID). */
	slot = insert_ok(shm, 0, "abc@host");
	ck_assert_int_eq(shm_call_find(shm, "abc@host", &found, &c), 0);
	ck_assert_uint_eq(found, slot);
	ck_assert_uint_eq(c.worker, 0);
	shm_destroy(shm);
}
END_TEST

START_TEST(test_capacity_exact)
{
	shm_t *shm;
	uint32_t slots[8], slot;

	ck_assert_int_eq(shm_create(8, 1, &shm), 0);
	for (unsigned i = 0; i < 8; i++)
		ck_assert_int_eq(insert_named(shm, 0, "cap-%u", i, &slots[i]), 0);
	ck_assert_uint_eq(shm_call_count(shm), 8);
	ck_assert_int_eq(insert_named(shm, 0, "cap-%u", 8, &slot), -ENOSPC);
	ck_assert_int_eq(insert_named(shm, 0, "cap-%u", 9, &slot), -ENOSPC);
	ck_assert_uint_eq(shm_call_count(shm), 8);

	shm_call_remove(shm, slots[3]);
	ck_assert_uint_eq(shm_call_count(shm), 7);
	ck_assert_int_eq(insert_named(shm, 0, "cap-%u", 10, &slot), 0);
	ck_assert_uint_eq(shm_call_count(shm), 8);
	ck_assert_int_eq(insert_named(shm, 0, "cap-%u", 11, &slot), -ENOSPC);
	ck_assert_int_eq(shm_call_find(shm, "cap-10", NULL, NULL), 0);
	ck_assert_int_eq(shm_call_find(shm, "cap-3", NULL, NULL), -ENOENT);
	shm_destroy(shm);

	ck_assert_int_eq(shm_create(1, 1, &shm), 0);
	ck_assert_int_eq(insert_named(shm, 0, "one-%u", 0, &slot), 0);
	ck_assert_int_eq(insert_named(shm, 0, "one-%u", 1, &slot), -ENOSPC);
	ck_assert_uint_eq(shm_call_count(shm), 1);
	shm_destroy(shm);
}
END_TEST

/*
 * Keys that all hash into the first few slots fill their probe window while
 * the table is far from full: insert must say -ENOSPC and hand the admission
 * back, so other keys still get in and the count stays true.
 */
START_TEST(test_window_full_gives_back)
{
	shm_t *shm;
	uint32_t slot;
	unsigned ok = 0, tried = 0, n = 0;
	char id[32];
	int rc = 0;

	/* capacity 100: 256 slots (mask 255), probe window 64. */
	ck_assert_int_eq(shm_create(100, 1, &shm), 0);
	while (tried < 80 && n < 1000000) {
		snprintf(id, sizeof id, "coll-%u", n++);
		if ((fnv1a(id) & 255) >= 4)
			continue;
		tried++;
		struct shm_call c;
		call_init(&c, 0, id);
		rc = shm_call_insert(shm, &c, &slot);
		if (rc != 0)
			break;
		ok++;
	}
	ck_assert_int_eq(rc, -ENOSPC);
	/* Starts spread over 4 slots: the window of some key is full after 64..67 calls. */
	ck_assert_uint_ge(ok, 64);
	ck_assert_uint_le(ok, 67);
	ck_assert_uint_eq(shm_call_count(shm), ok);

	/* A key elsewhere in the table is admitted: the failed insert gave its unit back. */
	do {
		snprintf(id, sizeof id, "far-%u", n++);
	} while ((fnv1a(id) & 255) < 128 || (fnv1a(id) & 255) > 160);
	slot = insert_ok(shm, 0, id);
	ck_assert_uint_eq(shm_call_count(shm), ok + 1);
	ck_assert_int_eq(shm_call_find(shm, id, NULL, NULL), 0);
	shm_destroy(shm);
}
END_TEST

struct visit {
	unsigned calls;
	unsigned stop_after;
	uint64_t seen_ids;  /* bit (id - 0x1000 - ...) */
	const shm_t *shm;
	int bad;
};

static int visit_cb(const struct shm_call *call, uint32_t slot, void *arg)
{
	struct visit *v = arg;
	struct shm_call again;
	unsigned n;

	v->calls++;
	if (sscanf(call->a.call_id, "each-%u", &n) != 1 || n >= 64 || (v->seen_ids >> n & 1))
		v->bad++;
	else
		v->seen_ids |= 1ull << n;
	/* The slot handed to the callback is the call's own. */
	if (shm_call_read(v->shm, slot, &again) != 0 || strcmp(again.a.call_id, call->a.call_id))
		v->bad++;
	if (v->stop_after && v->calls == v->stop_after)
		return 7;
	return 0;
}

START_TEST(test_count_foreach)
{
	shm_t *shm;
	uint32_t slots[10];
	struct visit v;

	ck_assert_int_eq(shm_create(32, 1, &shm), 0);
	v = (struct visit){ .shm = shm };
	ck_assert_int_eq(shm_call_foreach(shm, visit_cb, &v), 0);
	ck_assert_uint_eq(v.calls, 0);

	for (unsigned i = 0; i < 10; i++)
		ck_assert_int_eq(insert_named(shm, 0, "each-%u", i, &slots[i]), 0);
	ck_assert_uint_eq(shm_call_count(shm), 10);

	v = (struct visit){ .shm = shm };
	ck_assert_int_eq(shm_call_foreach(shm, visit_cb, &v), 0);
	ck_assert_uint_eq(v.calls, 10);
	ck_assert_uint_eq(v.seen_ids, 0x3ff);
	ck_assert_int_eq(v.bad, 0);

	v = (struct visit){ .shm = shm, .stop_after = 3 };
	ck_assert_int_eq(shm_call_foreach(shm, visit_cb, &v), 7);
	ck_assert_uint_eq(v.calls, 3);

	shm_call_remove(shm, slots[4]);
	shm_call_remove(shm, slots[9]);
	v = (struct visit){ .shm = shm };
	ck_assert_int_eq(shm_call_foreach(shm, visit_cb, &v), 0);
	ck_assert_uint_eq(v.calls, 8);
	ck_assert_uint_eq(v.seen_ids, 0x3ff & ~(1u << 4) & ~(1u << 9));
	ck_assert_uint_eq(shm_call_count(shm), 8);
	ck_assert_int_eq(shm_call_foreach(shm, NULL, NULL), -EINVAL);
	shm_destroy(shm);
}
END_TEST

static int count_worker_cb(const struct shm_call *call, uint32_t slot, void *arg)
{
	unsigned *per_worker = arg;

	per_worker[call->worker]++;
	return 0;
}

START_TEST(test_reap_worker)
{
	shm_t *shm;
	uint32_t w1[5], w0[4], slot;
	unsigned per[3] = { 0 };

	ck_assert_int_eq(shm_create(64, 3, &shm), 0);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_int_eq(insert_named(shm, 0, "w0-%u", i, &w0[i]), 0);
	for (unsigned i = 0; i < 5; i++)
		ck_assert_int_eq(insert_named(shm, 1, "w1-%u", i, &w1[i]), 0);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(insert_named(shm, 2, "w2-%u", i, &slot), 0);
	ck_assert_uint_eq(shm_call_count(shm), 12);

	/* Worker 1 "dies" in the middle of a write. */
	ck_assert_ptr_nonnull(shm_call_write_begin(shm, w1[2]));

	ck_assert_uint_eq(shm_call_reap_worker(shm, 1), 5);
	ck_assert_uint_eq(shm_call_count(shm), 7);
	ck_assert_int_eq(shm_call_foreach(shm, count_worker_cb, per), 0);
	ck_assert_uint_eq(per[0], 4);
	ck_assert_uint_eq(per[1], 0);
	ck_assert_uint_eq(per[2], 3);
	ck_assert_int_eq(shm_call_find(shm, "w1-2", NULL, NULL), -ENOENT);
	ck_assert_int_eq(shm_call_find(shm, "w0-3", NULL, NULL), 0);
	ck_assert_int_eq(shm_call_find(shm, "w2-0", NULL, NULL), 0);
	ck_assert_uint_eq(shm_call_reap_worker(shm, 1), 0);

	/* The slot left mid-write is clean again: a restarted worker 1 can use it. */
	for (unsigned i = 0; i < 5; i++)
		ck_assert_int_eq(insert_named(shm, 1, "w1-%u", i, &w1[i]), 0);
	struct shm_call *c = shm_call_write_begin(shm, w1[2]);
	ck_assert_ptr_nonnull(c);
	shm_call_write_end(shm, w1[2]);
	ck_assert_uint_eq(shm_call_count(shm), 12);

	/* A call handed over to worker 2 is reaped with worker 2, not worker 0. */
	c = shm_call_write_begin(shm, w0[0]);
	ck_assert_ptr_nonnull(c);
	c->worker = 2;
	shm_call_write_end(shm, w0[0]);
	ck_assert_uint_eq(shm_call_reap_worker(shm, 0), 3);
	ck_assert_int_eq(shm_call_find(shm, "w0-0", NULL, NULL), 0);
	ck_assert_uint_eq(shm_call_reap_worker(shm, 2), 4);
	ck_assert_int_eq(shm_call_find(shm, "w0-0", NULL, NULL), -ENOENT);
	ck_assert_uint_eq(shm_call_count(shm), 5);
	shm_destroy(shm);
}
END_TEST

/* A reader must not hang on a slot whose writer never finishes. */
START_TEST(test_stuck_writer_bounded)
{
	shm_t *shm;
	struct shm_call c;
	uint32_t slot;
	unsigned per[1] = { 0 };

	ck_assert_int_eq(shm_create(8, 1, &shm), 0);
	slot = insert_ok(shm, 0, "stuck");
	ck_assert_ptr_nonnull(shm_call_write_begin(shm, slot));
	ck_assert_ptr_null(shm_call_write_begin(shm, slot));  /* no nested begin */

	uint64_t t0 = now_ns();
	ck_assert_int_eq(shm_call_read(shm, slot, &c), -ENOENT);
	ck_assert_int_eq(shm_call_find(shm, "stuck", NULL, &c), -ENOENT);
	ck_assert_int_eq(shm_call_foreach(shm, count_worker_cb, per), 0);
	ck_assert_uint_eq(per[0], 0);
	ck_assert_uint_lt(now_ns() - t0, 2000000000ull);

	shm_call_write_end(shm, slot);
	ck_assert_int_eq(shm_call_read(shm, slot, &c), 0);
	ck_assert_str_eq(c.a.call_id, "stuck");
	shm_destroy(shm);
}
END_TEST

START_TEST(test_strings_truncated)
{
	shm_t *shm;
	struct shm_call c;
	uint32_t slot, found;
	char key[201];

	ck_assert_int_eq(shm_create(8, 1, &shm), 0);
	/* Every array filled to the brim, no terminator anywhere. */
	memset(&c, 'x', sizeof c);
	c.worker = 0;
	memset(c.a.call_id, 'k', sizeof c.a.call_id);
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot), 0);

	memset(&c, 0, sizeof c);
	ck_assert_int_eq(shm_call_read(shm, slot, &c), 0);
	ck_assert_uint_eq(strlen(c.caller), SHM_URI_MAX - 1);
	ck_assert_uint_eq(strlen(c.forward_target), SHM_URI_MAX - 1);
	ck_assert_uint_eq(strlen(c.a.call_id), SHM_CALLID_MAX - 1);
	ck_assert_uint_eq(strlen(c.a.local_tag), SHM_TAG_MAX - 1);
	ck_assert_uint_eq(strlen(c.b.remote_target), SHM_URI_MAX - 1);
	ck_assert_uint_eq(strlen(c.b.route_set), SHM_ROUTE_MAX - 1);

	/* The key is its first SHM_CALLID_MAX - 1 bytes, however long the query. */
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = '\0';
	ck_assert_int_eq(shm_call_find(shm, key, &found, &c), 0);
	ck_assert_uint_eq(found, slot);
	key[SHM_CALLID_MAX - 1] = '\0';
	ck_assert_int_eq(shm_call_find(shm, key, &found, &c), 0);
	key[SHM_CALLID_MAX - 2] = '\0';
	ck_assert_int_eq(shm_call_find(shm, key, &found, &c), -ENOENT);

	/* The same through a write. */
	struct shm_call *w = shm_call_write_begin(shm, slot);
	ck_assert_ptr_nonnull(w);
	memset(w->callee, 'y', sizeof w->callee);
	memset(w->b.route_set, 'r', sizeof w->b.route_set);
	shm_call_write_end(shm, slot);
	ck_assert_int_eq(shm_call_read(shm, slot, &c), 0);
	ck_assert_uint_eq(strlen(c.callee), SHM_URI_MAX - 1);
	ck_assert_int_eq(c.callee[0], 'y');
	ck_assert_uint_eq(strlen(c.b.route_set), SHM_ROUTE_MAX - 1);
	shm_destroy(shm);
}
END_TEST

START_TEST(test_bad_slots)
{
	shm_t *shm;
	struct shm_call c;
	uint32_t slot, free_slot = UINT32_MAX;

	/* capacity 4: slots 0..3 (8 index entries); 8 is no slot. */
	ck_assert_int_eq(shm_create(4, 1, &shm), 0);
	slot = insert_ok(shm, 0, "only");
	ck_assert_int_eq(shm_call_read(shm, 8, &c), -EINVAL);
	ck_assert_int_eq(shm_call_read(shm, UINT32_MAX, &c), -EINVAL);
	ck_assert_int_eq(shm_call_read(shm, slot, NULL), -EINVAL);
	ck_assert_ptr_null(shm_call_write_begin(shm, 8));
	ck_assert_ptr_null(shm_call_write_begin(shm, UINT32_MAX));
	shm_call_write_end(shm, UINT32_MAX);
	shm_call_remove(shm, 8);
	shm_call_remove(shm, UINT32_MAX);
	ck_assert_uint_eq(shm_call_count(shm), 1);

	for (uint32_t i = 0; i < 4; i++)
		if (shm_call_read(shm, i, &c) == -ENOENT)
			free_slot = i;
	ck_assert_uint_lt(free_slot, 4);
	ck_assert_int_eq(shm_call_read(shm, 4, &c), -EINVAL);
	/* Freeing or writing a slot that holds no call changes nothing. */
	ck_assert_ptr_null(shm_call_write_begin(shm, free_slot));
	shm_call_write_end(shm, free_slot);
	shm_call_remove(shm, free_slot);
	ck_assert_uint_eq(shm_call_count(shm), 1);

	/* A double remove must not take the count below zero. */
	shm_call_remove(shm, slot);
	shm_call_remove(shm, slot);
	ck_assert_uint_eq(shm_call_count(shm), 0);
	/* write_end without begin is ignored. */
	slot = insert_ok(shm, 0, "only");
	shm_call_write_end(shm, slot);
	ck_assert_int_eq(shm_call_read(shm, slot, &c), 0);
	shm_destroy(shm);
}
END_TEST

/* ------------------------------------------------------------ unit: workers */

START_TEST(test_worker_info)
{
	shm_t *shm;
	struct shm_worker_info wi;

	ck_assert_int_eq(shm_create(8, 2, &shm), 0);
	ck_assert_int_eq(shm_worker_read(shm, 0, &wi), 0);
	ck_assert_int_eq(wi.pid, 0);
	ck_assert_uint_eq(wi.restarts, 0);
	ck_assert_uint_eq(wi.counters[SHM_CTR_MSGS_IN], 0);

	shm_worker_set(shm, 0, 1234, 5071, 0, 1000);
	ck_assert_int_eq(shm_worker_read(shm, 0, &wi), 0);
	ck_assert_int_eq(wi.pid, 1234);
	ck_assert_uint_eq(wi.port, 5071);
	ck_assert_uint_eq(wi.restarts, 0);
	ck_assert_uint_eq(wi.started_ms, 1000);

	shm_worker_set(shm, 0, 1240, 5071, 1, 2000);
	shm_worker_set(shm, 0, 1250, 5071, 1, 3000);
	ck_assert_int_eq(shm_worker_read(shm, 0, &wi), 0);
	ck_assert_int_eq(wi.pid, 1250);
	ck_assert_uint_eq(wi.restarts, 2);
	ck_assert_uint_eq(wi.started_ms, 3000);
	shm_worker_set(shm, 0, 0, 5071, 0, 3000);
	ck_assert_int_eq(shm_worker_read(shm, 0, &wi), 0);
	ck_assert_int_eq(wi.pid, 0);
	ck_assert_uint_eq(wi.restarts, 2);

	shm_counter_add(shm, 0, SHM_CTR_MSGS_IN, 5);
	shm_counter_add(shm, 0, SHM_CTR_MSGS_IN, 3);
	shm_counter_add(shm, 0, SHM_CTR_ACTIVE, 2);
	shm_counter_add(shm, 0, SHM_CTR_ACTIVE, -1);
	shm_counter_add(shm, 1, SHM_CTR_CALLS_FAILED, 4);
	shm_counter_add(shm, 2, SHM_CTR_MSGS_IN, 100);         /* bad worker: ignored */
	shm_counter_add(shm, 0, SHM_CTR__COUNT, 100);          /* bad counter: ignored */
	shm_worker_set(shm, 2, 99, 1, 1, 1);                   /* bad worker: ignored */
	ck_assert_int_eq(shm_worker_read(shm, 0, &wi), 0);
	ck_assert_uint_eq(wi.counters[SHM_CTR_MSGS_IN], 8);
	ck_assert_uint_eq(wi.counters[SHM_CTR_ACTIVE], 1);
	ck_assert_uint_eq(wi.counters[SHM_CTR_CALLS_FAILED], 0);
	shm_counter_add(shm, 0, SHM_CTR_ACTIVE, -1);
	ck_assert_int_eq(shm_worker_read(shm, 0, &wi), 0);
	ck_assert_uint_eq(wi.counters[SHM_CTR_ACTIVE], 0);

	ck_assert_int_eq(shm_worker_read(shm, 1, &wi), 0);
	ck_assert_int_eq(wi.pid, 0);
	ck_assert_uint_eq(wi.counters[SHM_CTR_MSGS_IN], 0);
	ck_assert_uint_eq(wi.counters[SHM_CTR_CALLS_FAILED], 4);
	shm_destroy(shm);
}
END_TEST

START_TEST(test_code_totals)
{
	shm_t *shm;

	ck_assert_int_eq(shm_create(8, 3, &shm), 0);
	shm_code_count(shm, 0, 200);
	shm_code_count(shm, 0, 200);
	shm_code_count(shm, 1, 200);
	shm_code_count(shm, 2, 486);
	shm_code_count(shm, 1, 699);
	shm_code_count(shm, 0, 100);
	shm_code_count(shm, 0, 99);   /* out of range: ignored */
	shm_code_count(shm, 0, 700);
	shm_code_count(shm, 3, 200);  /* bad worker: ignored */
	ck_assert_uint_eq(shm_code_total(shm, 200), 3);
	ck_assert_uint_eq(shm_code_total(shm, 486), 1);
	ck_assert_uint_eq(shm_code_total(shm, 699), 1);
	ck_assert_uint_eq(shm_code_total(shm, 100), 1);
	ck_assert_uint_eq(shm_code_total(shm, 404), 0);
	ck_assert_uint_eq(shm_code_total(shm, 99), 0);
	ck_assert_uint_eq(shm_code_total(shm, 700), 0);
	shm_destroy(shm);
}
END_TEST

/* Bucket bounds are inclusive (Prometheus' le), the last bucket takes the rest. */
START_TEST(test_hist_buckets)
{
	const uint64_t *b = shm_hist_bounds(SHM_HIST_REDIS);

	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_null(shm_hist_bounds(SHM_HIST__COUNT));
	for (int h = 0; h < SHM_HIST__COUNT; h++)
		for (unsigned i = 1; i < SHM_HIST_BOUNDS; i++)
			ck_assert_uint_lt(shm_hist_bounds(h)[i - 1], shm_hist_bounds(h)[i]);
	ck_assert_uint_eq(shm_hist_bucket(SHM_HIST_REDIS, 0), 0);
	ck_assert_uint_eq(shm_hist_bucket(SHM_HIST_REDIS, b[0]), 0);
	ck_assert_uint_eq(shm_hist_bucket(SHM_HIST_REDIS, b[0] + 1), 1);
	ck_assert_uint_eq(shm_hist_bucket(SHM_HIST_REDIS, b[SHM_HIST_BOUNDS - 1]),
			  SHM_HIST_BOUNDS - 1);
	ck_assert_uint_eq(shm_hist_bucket(SHM_HIST_REDIS, b[SHM_HIST_BOUNDS - 1] + 1),
			  SHM_HIST_BOUNDS);
	ck_assert_uint_eq(shm_hist_bucket(SHM_HIST__COUNT, 1), SHM_HIST_BOUNDS);
}
END_TEST

/* Observations land in their worker's histogram only; count is the sum of the buckets. */
START_TEST(test_hist_observe)
{
	struct shm_hist_info h;
	shm_t *shm;

	ck_assert_int_eq(shm_create(8, 2, &shm), 0);
	shm_hist_observe(shm, 1, SHM_HIST_SETUP, 3000);       /* <= 5 ms */
	shm_hist_observe(shm, 1, SHM_HIST_SETUP, 7000);       /* <= 10 ms */
	shm_hist_observe(shm, 1, SHM_HIST_SETUP, 60000000);   /* above every bound */
	shm_hist_observe(shm, 2, SHM_HIST_SETUP, 1);          /* bad worker: ignored */
	shm_hist_observe(shm, 1, SHM_HIST__COUNT, 1);         /* bad histogram: ignored */
	ck_assert_int_eq(shm_hist_read(shm, 1, SHM_HIST_SETUP, &h), 0);
	ck_assert_uint_eq(h.count, 3);
	ck_assert_uint_eq(h.sum_us, 60010000);
	ck_assert_uint_eq(h.buckets[0], 1);
	ck_assert_uint_eq(h.buckets[1], 1);
	ck_assert_uint_eq(h.buckets[SHM_HIST_BOUNDS], 1);
	ck_assert_int_eq(shm_hist_read(shm, 0, SHM_HIST_SETUP, &h), 0);
	ck_assert_uint_eq(h.count, 0);
	ck_assert_int_eq(shm_hist_read(shm, 1, SHM_HIST_REDIS, &h), 0);
	ck_assert_uint_eq(h.count, 0);
	ck_assert_int_eq(shm_hist_read(shm, 2, SHM_HIST_SETUP, &h), -EINVAL);
	shm_destroy(shm);
}
END_TEST

/* A gauge among the counters is set, not added to: a restarted worker starts it afresh. */
START_TEST(test_gauge_set)
{
	struct shm_worker_info w;
	shm_t *shm;

	ck_assert_int_eq(shm_create(8, 1, &shm), 0);
	shm_gauge_set(shm, 0, SHM_CTR_REDIS_UP, 1);
	shm_gauge_set(shm, 0, SHM_CTR_REDIS_UP, 1);
	ck_assert_int_eq(shm_worker_read(shm, 0, &w), 0);
	ck_assert_uint_eq(w.counters[SHM_CTR_REDIS_UP], 1);
	shm_gauge_set(shm, 0, SHM_CTR_REDIS_UP, 0);
	ck_assert_int_eq(shm_worker_read(shm, 0, &w), 0);
	ck_assert_uint_eq(w.counters[SHM_CTR_REDIS_UP], 0);
	shm_destroy(shm);
}
END_TEST

/* ------------------------------------------------------------ processes */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64: deterministic per child, no shared state. */
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void children_wait(const pid_t *pids, unsigned n, unsigned limit_s)
{
	uint64_t deadline = now_ns() + (uint64_t)limit_s * 1000000000u;
	unsigned left = n;
	int status[16];
	bool done[16] = { false };

	while (left > 0 && now_ns() < deadline) {
		for (unsigned i = 0; i < n; i++) {
			if (done[i] || waitpid(pids[i], &status[i], WNOHANG) != pids[i])
				continue;
			done[i] = true;
			left--;
		}
		if (left)
			usleep(10000);
	}
	for (unsigned i = 0; i < n; i++) {
		if (!done[i]) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status[i], 0);
		}
	}
	for (unsigned i = 0; i < n; i++) {
		ck_assert_msg(done[i], "child %u (pid %d) did not exit in time", i, (int)pids[i]);
		ck_assert_msg(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0,
			      "child %u exited with status 0x%x", i, status[i]);
	}
}

static void *shared_area(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* Wait (bounded) until `n` processes arrived, so that they really run together. */
static void barrier(atomic_uint *ready, unsigned n)
{
	uint64_t deadline = now_ns() + 2000000000u;

	atomic_fetch_add(ready, 1);
	while (atomic_load(ready) < n && now_ns() < deadline)
		sched_yield();
}

#define RACE_PROCS 4

struct race_area {
	atomic_uint ready;
	unsigned won[RACE_PROCS];
};

/* Several processes race to fill the table: exactly `capacity` inserts win. */
START_TEST(test_capacity_across_processes)
{
	shm_t *shm;
	pid_t pids[RACE_PROCS];
	struct race_area *ra = shared_area(sizeof *ra);
	unsigned total = 0;

	ck_assert_int_eq(shm_create(500, RACE_PROCS, &shm), 0);
	for (unsigned p = 0; p < RACE_PROCS; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0) {
			char fmt[32];
			uint32_t slot;

			snprintf(fmt, sizeof fmt, "race-%u-%%u", p);
			barrier(&ra->ready, RACE_PROCS);
			for (unsigned i = 0; i < 1000; i++)
				if (insert_named(shm, (uint16_t)p, fmt, i, &slot) == 0)
					ra->won[p]++;
			_exit(0);
		}
	}
	children_wait(pids, RACE_PROCS, 10);
	for (unsigned p = 0; p < RACE_PROCS; p++)
		total += ra->won[p];
	ck_assert_uint_eq(total, 500);
	ck_assert_uint_eq(shm_call_count(shm), 500);
	unsigned per[RACE_PROCS] = { 0 };
	ck_assert_int_eq(shm_call_foreach(shm, count_worker_cb, per), 0);
	for (unsigned p = 0; p < RACE_PROCS; p++)
		ck_assert_uint_eq(per[p], ra->won[p]);
	munmap(ra, sizeof *ra);
	shm_destroy(shm);
}
END_TEST

/*
 * The stress test.  Each writer owns the calls "stress-w<W>-n<N>"; every
 * write derives all versioned fields from one number v, spread over the whole
 * record, so a copy mixing two writes has fields that disagree.
 */
#define ST_WRITERS   4
#define ST_READERS   2
#define ST_CAPACITY  1024          /* 1024 slots (2048 index entries) */
#define ST_NSLOTS    1024
#define ST_MAX_LIVE  200
#define ST_RUN_NS    2500000000ull
#define ST_MAX_OPS   20000000u

struct st_writer {
	unsigned nlive;
	uint32_t slot[ST_MAX_LIVE];
	uint32_t n[ST_MAX_LIVE];
	uint64_t ver[ST_MAX_LIVE];
	uint64_t inserts, updates, removes, errors;
};

struct st_reader {
	uint64_t copies, finds, torn, bad_worker, wrong_find;
};

struct st_area {
	atomic_uint ready;
	struct st_writer w[ST_WRITERS];
	struct st_reader r[ST_READERS];
};

static void st_key(char *buf, size_t size, unsigned w, unsigned n)
{
	snprintf(buf, size, "stress-w%u-n%u", w, n);
}

/*
 * Write version v of call (w, n) in place, front to back.  A `slow` write
 * gives up the CPU halfway, as a preempted worker would, so that readers
 * really meet half-written records.
 */
static void st_fill(struct shm_call *c, unsigned w, unsigned n, uint64_t v, bool slow)
{
	snprintf(c->id, sizeof c->id, "st-w%u-1-%u", w, n);
	c->worker = (uint16_t)w;
	c->state = (uint8_t)(SHM_CALL_TRYING + v % 6);
	snprintf(c->caller, sizeof c->caller, "sip:caller-%" PRIu64 "@a.example", v);
	snprintf(c->callee, sizeof c->callee, "sip:callee-%" PRIu64 "@b.example", v);
	snprintf(c->forward_target, sizeof c->forward_target, "sip:fw-%" PRIu64 "@c", v);
	c->start_ms = v;
	c->ring_ms = v * 2;
	c->answer_ms = v * 3;
	st_key(c->a.call_id, sizeof c->a.call_id, w, n);
	snprintf(c->a.local_tag, sizeof c->a.local_tag, "lt%" PRIu64, v);
	c->a.local_cseq = (uint32_t)v;
	snprintf(c->a.route_set, sizeof c->a.route_set, "<sip:%" PRIu64 "@ra;lr>", v);
	if (slow)
		sched_yield();
	snprintf(c->b.call_id, sizeof c->b.call_id, "b-%" PRIu64 "-%u-%u", v, w, n);
	snprintf(c->b.remote_target, sizeof c->b.remote_target, "sip:%" PRIu64 "@bt", v);
	snprintf(c->b.route_set, sizeof c->b.route_set,
		 "<sip:%" PRIu64 "@r1;lr>,<sip:r2;lr>,<sip:r3;lr>,<sip:r4;lr>,"
		 "<sip:%" PRIu64 "@r5;lr>", v, v);
	c->b.remote_cseq = (uint32_t)v;
}

/* 0 if *c is one whole write by a stress writer (and v, w, n of it), else -1. */
static int st_check(const struct shm_call *c, uint64_t *v, unsigned *w, unsigned *n)
{
	struct shm_call want;
	char tail;

	if (sscanf(c->caller, "sip:caller-%" SCNu64 "@a.example%c", v, &tail) != 1)
		return -1;
	if (sscanf(c->a.call_id, "stress-w%u-n%u%c", w, n, &tail) != 2 || *w >= ST_WRITERS)
		return -1;
	memset(&want, 0, sizeof want);
	st_fill(&want, *w, *n, *v, false);
	if (strcmp(c->id, want.id) != 0 || c->worker != want.worker || c->state != want.state ||
	    strcmp(c->caller, want.caller) || strcmp(c->a.call_id, want.a.call_id) ||
	    strcmp(c->callee, want.callee) || strcmp(c->forward_target, want.forward_target) ||
	    c->start_ms != want.start_ms || c->ring_ms != want.ring_ms ||
	    c->answer_ms != want.answer_ms || strcmp(c->a.local_tag, want.a.local_tag) ||
	    c->a.local_cseq != want.a.local_cseq || strcmp(c->a.route_set, want.a.route_set) ||
	    strcmp(c->b.call_id, want.b.call_id) ||
	    strcmp(c->b.remote_target, want.b.remote_target) ||
	    strcmp(c->b.route_set, want.b.route_set) || c->b.remote_cseq != want.b.remote_cseq)
		return -1;
	return 0;
}

static void st_writer_run(shm_t *shm, struct st_writer *me, unsigned w, uint64_t deadline)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull * (w + 1), v = (uint64_t)w << 40;
	unsigned next_n = 0;
	struct shm_call c;

	for (unsigned op = 0; op < ST_MAX_OPS; op++) {
		if ((op & 63) == 0 && now_ns() >= deadline)
			break;
		unsigned r = (unsigned)(rng_next(&rng) % 16);
		v++;
		if (me->nlive < ST_MAX_LIVE && (me->nlive < 20 || r < 3)) {
			uint32_t slot;
			memset(&c, 0, sizeof c);
			st_fill(&c, w, next_n, v, false);
			if (shm_call_insert(shm, &c, &slot) != 0) {
				me->errors++;
				continue;
			}
			me->slot[me->nlive] = slot;
			me->n[me->nlive] = next_n++;
			me->ver[me->nlive++] = v;
			me->inserts++;
			shm_counter_add(shm, w, SHM_CTR_ACTIVE, 1);
			shm_code_count(shm, w, 200);
			continue;
		}
		unsigned i = (unsigned)(rng_next(&rng) % me->nlive);
		if (r == 3) {
			shm_call_remove(shm, me->slot[i]);
			me->nlive--;
			me->slot[i] = me->slot[me->nlive];
			me->n[i] = me->n[me->nlive];
			me->ver[i] = me->ver[me->nlive];
			me->removes++;
			shm_counter_add(shm, w, SHM_CTR_ACTIVE, -1);
			shm_code_count(shm, w, 487);
			continue;
		}
		struct shm_call *p = shm_call_write_begin(shm, me->slot[i]);
		if (!p) {
			me->errors++;
			continue;
		}
		st_fill(p, w, me->n[i], v, (op & 31) == 0);
		shm_call_write_end(shm, me->slot[i]);
		me->ver[i] = v;
		me->updates++;
		/* The owner reads back its own last write. */
		if ((op & 15) == 0) {
			uint64_t gv;
			unsigned gw, gn;
			if (shm_call_read(shm, me->slot[i], &c) != 0 ||
			    st_check(&c, &gv, &gw, &gn) != 0 || gv != v)
				me->errors++;
		}
	}
}

static void st_judge(struct st_reader *r, const struct shm_call *c)
{
	uint64_t v;
	unsigned w, n;

	r->copies++;
	if (st_check(c, &v, &w, &n) != 0)
		r->torn++;
	else if (c->worker >= ST_WRITERS)
		r->bad_worker++;
}

/* A reader's pass: judge every copy, remember some keys to look up afterwards. */
#define ST_PROBES 64

struct st_pass {
	struct st_reader *r;
	unsigned nkeys;
	char key[ST_PROBES][SHM_CALLID_MAX];
	uint32_t slot[ST_PROBES];
};

static int st_pass_cb(const struct shm_call *call, uint32_t slot, void *arg)
{
	struct st_pass *pass = arg;

	st_judge(pass->r, call);
	if (pass->nkeys < ST_PROBES && (call->id[strlen(call->id) - 1] - '0') % 4 == 0) {
		memcpy(pass->key[pass->nkeys], call->a.call_id, SHM_CALLID_MAX);
		pass->slot[pass->nkeys++] = slot;
	}
	return 0;
}

static void st_reader_run(const shm_t *shm, struct st_reader *me, unsigned idx, uint64_t deadline)
{
	uint64_t rng = 0xda942042e4dd58b5ull * (idx + 7);
	static struct st_pass pass;
	struct shm_call c;

	for (unsigned round = 0; round < 1000000 && now_ns() < deadline; round++) {
		pass.r = me;
		pass.nkeys = 0;
		shm_call_foreach(shm, st_pass_cb, &pass);
		for (unsigned k = 0; k < 256; k++) {
			uint32_t slot = (uint32_t)(rng_next(&rng) % ST_NSLOTS);
			if (shm_call_read(shm, slot, &c) == 0)
				st_judge(me, &c);
		}
		/* A call never moves: if still there, it is in the slot foreach saw. */
		for (unsigned k = 0; k < pass.nkeys; k++) {
			uint32_t slot;
			if (shm_call_find(shm, pass.key[k], &slot, &c) != 0)
				continue;
			me->finds++;
			st_judge(me, &c);
			if (strcmp(c.a.call_id, pass.key[k]) != 0 || slot != pass.slot[k])
				me->wrong_find++;
		}
	}
}

struct st_seen {
	const struct st_area *area;
	unsigned hits[ST_WRITERS][ST_MAX_LIVE];
	unsigned unknown, torn, visits;
};

static int st_seen_cb(const struct shm_call *call, uint32_t slot, void *arg)
{
	struct st_seen *s = arg;
	uint64_t v;
	unsigned w, n;

	s->visits++;
	if (st_check(call, &v, &w, &n) != 0) {
		s->torn++;
		return 0;
	}
	const struct st_writer *wr = &s->area->w[w];
	for (unsigned i = 0; i < wr->nlive; i++) {
		if (wr->n[i] == n && wr->slot[i] == slot && wr->ver[i] == v) {
			s->hits[w][i]++;
			return 0;
		}
	}
	s->unknown++;
	return 0;
}

/* After the run: the table holds exactly what the writers say they left. */
static void st_verify(shm_t *shm, struct st_area *area)
{
	unsigned total = 0;
	uint64_t inserts = 0, removes = 0;
	char key[64];

	for (unsigned w = 0; w < ST_WRITERS; w++) {
		struct st_writer *wr = &area->w[w];
		struct shm_worker_info wi;

		ck_assert_msg(wr->errors == 0, "writer %u: %" PRIu64 " errors", w, wr->errors);
		ck_assert_uint_gt(wr->updates, 1000);
		ck_assert_uint_gt(wr->removes, 10);
		total += wr->nlive;
		inserts += wr->inserts;
		removes += wr->removes;
		ck_assert_int_eq(shm_worker_read(shm, w, &wi), 0);
		ck_assert_uint_eq(wi.counters[SHM_CTR_ACTIVE], wr->nlive);

		for (unsigned i = 0; i < wr->nlive; i++) {
			struct shm_call c;
			uint32_t slot;
			uint64_t v;
			unsigned gw, gn;

			st_key(key, sizeof key, w, wr->n[i]);
			ck_assert_msg(shm_call_find(shm, key, &slot, &c) == 0, "%s lost", key);
			ck_assert_uint_eq(slot, wr->slot[i]);
			ck_assert_int_eq(st_check(&c, &v, &gw, &gn), 0);
			ck_assert_uint_eq(v, wr->ver[i]);  /* no lost update */
		}
	}
	ck_assert_uint_eq(shm_call_count(shm), total);
	ck_assert_uint_eq(shm_code_total(shm, 200), inserts);
	ck_assert_uint_eq(shm_code_total(shm, 487), removes);

	struct st_seen *seen = calloc(1, sizeof *seen);
	ck_assert_ptr_nonnull(seen);
	seen->area = area;
	ck_assert_int_eq(shm_call_foreach(shm, st_seen_cb, seen), 0);
	ck_assert_uint_eq(seen->visits, total);
	ck_assert_uint_eq(seen->torn, 0);
	ck_assert_uint_eq(seen->unknown, 0);
	for (unsigned w = 0; w < ST_WRITERS; w++)
		for (unsigned i = 0; i < area->w[w].nlive; i++)
			ck_assert_msg(seen->hits[w][i] == 1, "writer %u call %u seen %u times",
				      w, area->w[w].n[i], seen->hits[w][i]);
	free(seen);
}

START_TEST(test_stress_processes)
{
	shm_t *shm;
	struct st_area *area = shared_area(sizeof *area);
	pid_t pids[ST_WRITERS + ST_READERS];
	const unsigned nprocs = ST_WRITERS + ST_READERS;
	struct shm_call c;

	ck_assert_int_eq(shm_create(ST_CAPACITY, ST_WRITERS, &shm), 0);
	/* The readers' random slot indexes assume this geometry. */
	ck_assert_int_eq(shm_call_read(shm, ST_NSLOTS, &c), -EINVAL);
	ck_assert_int_eq(shm_call_read(shm, ST_NSLOTS - 1, &c), -ENOENT);

	for (unsigned p = 0; p < nprocs; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] != 0)
			continue;
		barrier(&area->ready, nprocs);
		uint64_t deadline = now_ns() + ST_RUN_NS;
		if (p < ST_WRITERS)
			st_writer_run(shm, &area->w[p], p, deadline);
		else
			st_reader_run(shm, &area->r[p - ST_WRITERS], p - ST_WRITERS, deadline);
		_exit(0);
	}
	children_wait(pids, nprocs, 15);

	for (unsigned r = 0; r < ST_READERS; r++) {
		struct st_reader *rd = &area->r[r];

		ck_assert_msg(rd->torn == 0, "reader %u saw %" PRIu64 " torn copies of %" PRIu64,
			      r, rd->torn, rd->copies);
		ck_assert_uint_eq(rd->bad_worker, 0);
		ck_assert_uint_eq(rd->wrong_find, 0);
		ck_assert_uint_gt(rd->copies, 10000);
		ck_assert_uint_gt(rd->finds, 10);
	}
	st_verify(shm, area);
	munmap(area, sizeof *area);
	shm_destroy(shm);
}
END_TEST

/* ------------------------------------------------------------ main */

/* ------------------------------------------------------------ the INVITEs of a call */

START_TEST(test_invite_pack)
{
	static struct shm_invite inv;
	char big[SHM_INVITE_BYTES];
	const char *t;
	size_t len;

	memset(&inv, 0x5a, sizeof inv);   /* garbage: idx 0 must empty it */
	ck_assert_int_eq(shm_invite_pack(&inv, 0, "caller", 6), 0);
	ck_assert_int_eq(inv.n, 1);
	ck_assert_int_eq(shm_invite_pack(&inv, 1, "b1", 2), 0);
	ck_assert_int_eq(shm_invite_pack(&inv, 2, "branch two", 10), 0);
	ck_assert_int_eq(shm_invite_get(&inv, 0, &t, &len), 0);
	ck_assert_str_eq(t, "caller");
	ck_assert_uint_eq(len, 6);
	ck_assert_int_eq(shm_invite_get(&inv, 2, &t, &len), 0);
	ck_assert_str_eq(t, "branch two");
	ck_assert_uint_eq(len, 10);
	ck_assert_int_eq(shm_invite_get(&inv, 3, &t, &len), -ENOENT);

	/* Only the next element, never an empty or NUL-carrying one. */
	ck_assert_int_eq(shm_invite_pack(&inv, 5, "x", 1), -EINVAL);
	ck_assert_int_eq(shm_invite_pack(&inv, 1, "x", 1), -EINVAL);
	ck_assert_int_eq(shm_invite_pack(&inv, 3, "", 0), -EINVAL);
	ck_assert_int_eq(shm_invite_pack(&inv, 3, "a\0b", 3), -EINVAL);
	ck_assert_int_eq(inv.n, 3);

	/* Exactly full fits; one byte more is refused and changes nothing. */
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(shm_invite_pack(&inv, 0, "c", 1), 0);   /* uses 2 bytes */
	ck_assert_int_eq(shm_invite_pack(&inv, 1, big, SHM_INVITE_BYTES - 2), -E2BIG);
	ck_assert_int_eq(inv.n, 1);
	ck_assert_int_eq(shm_invite_pack(&inv, 1, big, SHM_INVITE_BYTES - 3), 0);
	ck_assert_int_eq(shm_invite_get(&inv, 1, &t, &len), 0);
	ck_assert_uint_eq(len, SHM_INVITE_BYTES - 3);
	ck_assert_int_eq(t[len], '\0');
	/* A caller's INVITE too big for the record leaves it empty, not stale. */
	ck_assert_int_eq(shm_invite_pack(&inv, 0, big, SHM_INVITE_BYTES), -E2BIG);
	ck_assert_int_eq(inv.n, 0);

	/* At most SHM_INVITE_MAX elements. */
	for (unsigned i = 0; i < SHM_INVITE_MAX; i++)
		ck_assert_int_eq(shm_invite_pack(&inv, i, "e", 1), 0);
	ck_assert_int_eq(shm_invite_pack(&inv, SHM_INVITE_MAX, "e", 1), -ENOSPC);

	/* A damaged record (read from a dead process's memory) is refused. */
	inv.end[1] = SHM_INVITE_BYTES + 10;
	ck_assert_int_eq(shm_invite_get(&inv, 1, &t, &len), -ENOENT);
	inv.n = SHM_INVITE_MAX + 1;
	ck_assert_int_eq(shm_invite_get(&inv, 0, &t, &len), -ENOENT);
}
END_TEST

START_TEST(test_invite_slot)
{
	static struct shm_invite inv;
	struct shm_call c;
	uint32_t slot, slot2;
	const char *t;
	size_t len;
	shm_t *shm;

	ck_assert_int_eq(shm_create(4, 2, &shm), 0);
	call_init(&c, 1, "inv-1@h");
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot), 0);
	ck_assert_int_eq(shm_invite_read(shm, slot, &inv), -ENOENT);   /* nothing yet */
	ck_assert_int_eq(shm_invite_put(shm, slot, 0, "INVITE a", 8), 0);
	ck_assert_int_eq(shm_invite_put(shm, slot, 1, "INVITE b", 8), 0);
	ck_assert_int_eq(shm_invite_put(shm, slot, 3, "INVITE d", 8), -EINVAL);
	ck_assert_int_eq(shm_invite_read(shm, slot, &inv), 0);
	ck_assert_int_eq(inv.n, 2);
	ck_assert_int_eq(shm_invite_get(&inv, 1, &t, &len), 0);
	ck_assert_str_eq(t, "INVITE b");

	/* The next call in the same slot starts with an empty record. */
	shm_call_remove(shm, slot);
	ck_assert_int_eq(shm_call_insert(shm, &c, &slot2), 0);
	ck_assert_uint_eq(slot2, slot);
	ck_assert_int_eq(shm_invite_read(shm, slot, &inv), -ENOENT);

	/* Bad slots. */
	ck_assert_int_eq(shm_invite_put(shm, UINT32_MAX, 0, "x", 1), -EINVAL);
	ck_assert_int_eq(shm_invite_put(NULL, 0, 0, "x", 1), -EINVAL);
	ck_assert_int_eq(shm_invite_read(shm, UINT32_MAX, &inv), -EINVAL);
	shm_invite_drop(shm, UINT32_MAX);
	shm_invite_drop(NULL, 0);
	shm_destroy(shm);
}
END_TEST

/* One name per transport, the one config, CDR and CLI use. */
START_TEST(test_transport_name)
{
	ck_assert_str_eq(shm_transport_name(SHM_TP_UDP), "udp");
	ck_assert_str_eq(shm_transport_name(SHM_TP_TCP), "tcp");
	ck_assert_str_eq(shm_transport_name(SHM_TP_TLS), "tls");
	ck_assert_str_eq(shm_transport_name(99), "?");
}
END_TEST

/*
 * The table is written only as calls use it: nothing but the header at
 * creation, a few pages for ten calls, and a churn that never holds more
 * than ten calls reuses their slots (the high-water mark stays at ten)
 * rather than walking through the table.  With capacity 20000 the region
 * is about 22000 pages; its index, touched by the hash of each new
 * Call-ID, is 128 of them.
 */
START_TEST(test_used_only_as_needed)
{
	shm_t *shm = NULL;
	uint32_t slot[10];
	unsigned per_worker[4] = { 0 };

	ck_assert_int_eq(shm_create(20000, 4, &shm), 0);
	ck_assert_uint_le(region_resident(shm), 2);
	ck_assert_uint_eq(shm_call_used(shm), 0);
	for (unsigned i = 0; i < 10; i++)
		ck_assert_int_eq(insert_named(shm, 1, "lazy-%u", i, &slot[i]), 0);
	ck_assert_uint_eq(shm_call_used(shm), 10);
	ck_assert_uint_le(region_resident(shm), 40);
	for (unsigned i = 0; i < 500; i++) {
		shm_call_remove(shm, slot[i % 10]);
		ck_assert_int_eq(insert_named(shm, 1, "churn-%u", i, &slot[i % 10]), 0);
	}
	ck_assert_uint_eq(shm_call_used(shm), 10);
	ck_assert_uint_le(region_resident(shm), 40 + 128);
	ck_assert_int_eq(shm_call_foreach(shm, count_worker_cb, per_worker), 0);
	ck_assert_uint_eq(per_worker[1], 10);
	shm_destroy(shm);
}
END_TEST

/*
 * An INVITE record is a call's only while it is not answered: given back
 * at the answer (shm_invite_drop) and taken again by the next call's
 * INVITE, so 400 answered calls leave the records' pages as one call's.
 */
START_TEST(test_invite_records_reused)
{
	static struct shm_invite inv;
	char text[1500];
	uint32_t slot[400];
	shm_t *shm;

	memset(text, 'x', sizeof text);
	ck_assert_int_eq(shm_create(512, 2, &shm), 0);
	for (unsigned i = 0; i < 400; i++)
		ck_assert_int_eq(insert_named(shm, 1, "rec-%u", i, &slot[i]), 0);
	size_t before = region_resident(shm);
	for (unsigned i = 0; i < 400; i++) {
		ck_assert_int_eq(shm_invite_put(shm, slot[i], 0, text, sizeof text), 0);
		ck_assert_int_eq(shm_invite_read(shm, slot[i], &inv), 0);
		shm_invite_drop(shm, slot[i]);   /* answered */
		ck_assert_int_eq(shm_invite_read(shm, slot[i], &inv), -ENOENT);
	}
	ck_assert_uint_le(region_resident(shm), before + 2);
	shm_destroy(shm);
}
END_TEST

static Suite *shm_suite(void)
{
	Suite *s = suite_create("shm");
	TCase *unit = tcase_create("unit");
	TCase *procs = tcase_create("procs");

	tcase_add_test(unit, test_create_destroy);
	tcase_add_test(unit, test_bad_args);
	tcase_add_test(unit, test_insert_read_find_update_remove);
	tcase_add_test(unit, test_capacity_exact);
	tcase_add_test(unit, test_window_full_gives_back);
	tcase_add_test(unit, test_count_foreach);
	tcase_add_test(unit, test_reap_worker);
	tcase_add_test(unit, test_stuck_writer_bounded);
	tcase_add_test(unit, test_strings_truncated);
	tcase_add_test(unit, test_bad_slots);
	tcase_add_test(unit, test_worker_info);
	tcase_add_test(unit, test_code_totals);
	tcase_add_test(unit, test_hist_buckets);
	tcase_add_test(unit, test_hist_observe);
	tcase_add_test(unit, test_gauge_set);
	tcase_add_test(unit, test_invite_pack);
	tcase_add_test(unit, test_invite_slot);
	tcase_add_test(unit, test_transport_name);
	tcase_add_test(unit, test_used_only_as_needed);
	tcase_add_test(unit, test_invite_records_reused);
	suite_add_tcase(s, unit);

	tcase_set_timeout(procs, 20);
	tcase_add_test(procs, test_capacity_across_processes);
	tcase_add_test(procs, test_stress_processes);
	suite_add_tcase(s, procs);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(shm_suite());

	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
