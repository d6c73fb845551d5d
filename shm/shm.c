/*
 * shm — the shared-memory call table (rules: shm.h; the workers' slots are
 * shm_worker.c, the layout both share shm_int.h).
 *
 * Region layout: one mmap(MAP_SHARED|MAP_ANONYMOUS), page aligned, zero-filled
 * by the kernel, so a fresh region is already an empty table:
 *
 *   0            struct shm: magic, version, geometry and section offsets,
 *                then the live-call counter, the free-slot stack and the
 *                slots' high-water mark on a cache line of their own
 *   index_off    nindex × 8-byte index entries; nindex is 2 × capacity
 *                rounded up to a power of two: the hash table of Call-IDs
 *   slots_off    capacity × struct slot, each 64-byte aligned: the calls
 *   invites_off  capacity × struct invite_rec, each 64-byte aligned: the
 *                INVITEs of a call not answered yet (shm.h), linked from
 *                its slot (slot.invite)
 *   workers_off  max_workers × struct wslot, each 64-byte aligned: pid, port,
 *                restarts and started_ms (master-written, small seqlock),
 *                then counters, final-code totals and histograms (relaxed
 *                atomics; written and read in shm_worker.c)
 *   size         the end, rounded up to the page size
 *
 * A slot is a seqlock (seq), an owner word, the key hash and the call.  The
 * owner word (phase << 16 | worker, 0 = free) moves
 *
 *   FREE --CAS by an inserter--> CLAIMED --published in a seq bracket--> LIVE
 *   LIVE --set to CLAIMED in a seq bracket, then--> FREE
 *
 * Readers only ever report LIVE slots, and a slot becomes LIVE or stops being
 * LIVE only inside a seq bracket, so a reader whose seq did not move has a
 * record that really was published.  Remove hides the call (CLAIMED, seq
 * even) before it lets go of the slot (FREE), so nobody reuses a slot that a
 * reader could still take for the old call.
 *
 * Memory.  A slot is big (a call's strings, about 2.3 KB) and an index entry
 * small (8 bytes), so the table has exactly `capacity` slots and keeps its
 * spare room, which open addressing needs, in the index only: the region
 * maps about 4.5 KB per unit of capacity (slot, INVITE record and two index
 * entries) instead of twice a slot and twice an INVITE record.  Mapped, not
 * resident: nothing writes a slot or its record before a call takes it, so
 * a table sized for the busiest hour costs, until then, what its calls use.
 *
 * Slots are handed out in index order up to a high-water mark (`used`,
 * raised by compare-and-swap, never lowered), and a released slot goes on
 * a stack of free slots (Treiber: a head word of tag << 32 | slot + 1, the
 * tag against ABA, and a next link in each free slot).  An inserter pops
 * the stack first and raises the mark only when the stack is empty, so the
 * slots ever used, and the pages ever touched, follow the most calls held
 * at once; the scans (foreach, the reapers, a successor's takeover) stop
 * at the mark.  INVITE records are handed out the same way (a stack and a
 * mark of their own, struct freestack), from a call's first INVITE to its
 * answer or removal.  A slot below the mark is on the stack exactly when it is
 * FREE, except in the few instructions between a pop (or raising the mark)
 * and the claim, or between freeing and the push: a process killed there
 * loses that slot together with its unit of admission (below), so admission
 * and free slots still agree, and the mark never passes `capacity`.
 *
 * The index: a call's entry, (hash >> 32) << 32 | slot + 1 (0 = empty), is
 * placed at hash(a.call_id) & (nindex - 1) or one of the next WINDOW - 1
 * entries (wrapping); find scans the same window, checks the slot's full
 * hash and Call-ID, and never trusts an entry alone.  a.call_id is
 * therefore the key and must not change after insert.  An inserter claims
 * the slot, stores the key hash in it, then claims an index entry, then
 * publishes; remove hides the call, clears its entry, then frees the slot.
 * The reaper clears the entry of a slot it frees by that slot's hash, so a
 * dead inserter leaves no entry behind.  The live counter admits a call
 * before anything is searched, so `capacity` holds exactly; a failed window
 * search hands the admission and the slot back.
 *
 * Readers copy the call with memcpy and validate with the sequence counter
 * afterwards (the Linux seqcount pattern: the copy may race with a writer,
 * the fences and the seq re-check throw such a copy away).  A writer that
 * stays mid-write for READ_STUCK_NS has died there: readers then treat its
 * slot as holding no call until the master reaps that worker.  The reaper
 * frees CLAIMED and half-written slots too; only a worker killed in the few
 * instructions between admission and claim leaks one unit of capacity, as
 * nothing in the table records that moment.
 */
#include "shm/shm.h"
#include "shm/shm_int.h"
#include "b2bua/log.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SHM_MAGIC        0x31304d4853423242ull  /* "B2BSHM01" in memory order */
#define SHM_VERSION      6u
#define SHM_WINDOW       64u
#define SHM_CAPACITY_MAX (1u << 22)              /* 2^22 calls, ~19 GB: beyond is a typo */
#define SHM_WORKERS_MAX  1024u
#define READ_STUCK_NS    100000000L              /* 100 ms: no live writer takes that long */
#define SPIN_FAST        64u

/* The region is shared between processes: its atomics must not hide a lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

enum slot_phase { PHASE_FREE = 0, PHASE_CLAIMED = 1, PHASE_LIVE = 2 };

struct slot {
	_Alignas(SHM_LINE) _Atomic uint32_t seq;  /* odd while a write is open */
	_Atomic uint32_t owner;                   /* phase << 16 | worker; 0 = free */
	_Atomic uint64_t hash;                    /* FNV-1a 64 of a.call_id, 0 = none */
	_Atomic uint32_t next_free;               /* while on the free stack: next slot + 1 */
	_Atomic uint32_t invite;                  /* its call's INVITE record + 1, 0 = none */
	struct shm_call call;
};

/* The INVITEs of a call not answered yet (shm.h), linked from its slot;
 * its own seqlock, written by the owner only. */
struct invite_rec {
	_Alignas(SHM_LINE) _Atomic uint32_t seq;  /* odd while a write is open */
	_Atomic uint32_t next_free;               /* while on the free stack: next record + 1 */
	struct shm_invite inv;
};

/* ------------------------------------------------------------ helpers */

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static uint32_t owner_word(unsigned worker, enum slot_phase phase)
{
	return (uint32_t)phase << 16 | (worker & 0xffffu);
}

static enum slot_phase owner_phase(uint32_t owner)
{
	return (enum slot_phase)(owner >> 16);
}

static unsigned owner_worker(uint32_t owner)
{
	return owner & 0xffffu;
}

/* Readers get a const shm_t, but the slots' atomics live in writable shared memory. */
static struct slot *slots(const shm_t *shm)
{
	return (struct slot *)((char *)shm + shm->slots_off);
}

static _Atomic uint64_t *index_entries(const shm_t *shm)
{
	return (_Atomic uint64_t *)((char *)shm + shm->index_off);
}

/* A slot index from outside: NULL unless it is one. */
static struct slot *slot_at(const shm_t *shm, uint32_t idx)
{
	if (idx >= shm->capacity)
		return NULL;
	return slots(shm) + idx;
}

static struct invite_rec *invite_at(const shm_t *shm, uint32_t idx)
{
	if (!shm || idx >= shm->capacity)
		return NULL;
	return (struct invite_rec *)((char *)shm + shm->invites_off) + idx;
}

struct wslot *shm_wslot_at(const shm_t *shm, unsigned idx)
{
	if (!shm || idx >= shm->max_workers)
		return NULL;
	return (struct wslot *)((char *)shm + shm->workers_off) + idx;
}

/* A cheap pre-check only: slot_copy() decides, under the sequence counter. */
static bool slot_live(struct slot *s)
{
	return owner_phase(atomic_load_explicit(&s->owner, memory_order_relaxed)) == PHASE_LIVE;
}

/* FNV-1a 64: cheap, good enough spread for Call-IDs, no state. */
static uint64_t callid_hash(const char *id, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)id[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The key as stored: at most SHM_CALLID_MAX - 1 bytes, like the truncated copy. */
static size_t callid_len(const char *id)
{
	return strnlen(id, SHM_CALLID_MAX - 1);
}

static void terminate(char *s, size_t size)
{
	s[size - 1] = '\0';
}

static void leg_terminate(struct shm_leg *leg)
{
	terminate(leg->call_id, sizeof leg->call_id);
	terminate(leg->local_tag, sizeof leg->local_tag);
	terminate(leg->remote_tag, sizeof leg->remote_tag);
	terminate(leg->local_uri, sizeof leg->local_uri);
	terminate(leg->remote_uri, sizeof leg->remote_uri);
	terminate(leg->remote_target, sizeof leg->remote_target);
	terminate(leg->route_set, sizeof leg->route_set);
}

/* Writers may fill the arrays to the brim: readers always get C strings. */
static void call_terminate(struct shm_call *call)
{
	terminate(call->caller, sizeof call->caller);
	terminate(call->callee, sizeof call->callee);
	terminate(call->forward_target, sizeof call->forward_target);
	leg_terminate(&call->a);
	leg_terminate(&call->b);
}

/*
 * Bounded waiting for readers: spin briefly (the writer is usually a few
 * hundred nanoseconds from done), then yield so that a preempted writer on
 * this CPU can finish, and give up after READ_STUCK_NS.
 */

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

bool shm_spin_wait(struct spin *sp)
{
	struct timespec now;

	if (sp->n < SPIN_FAST) {
		sp->n++;
		cpu_relax();
		return true;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (sp->n == SPIN_FAST) {
		sp->n++;
		sp->deadline = now;
		sp->deadline.tv_nsec += READ_STUCK_NS;
		if (sp->deadline.tv_nsec >= 1000000000L) {
			sp->deadline.tv_sec++;
			sp->deadline.tv_nsec -= 1000000000L;
		}
	} else if (now.tv_sec > sp->deadline.tv_sec ||
		   (now.tv_sec == sp->deadline.tv_sec && now.tv_nsec >= sp->deadline.tv_nsec)) {
		return false;
	}
	sched_yield();
	return true;
}

/* ------------------------------------------------------------ life cycle */

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

uint64_t shm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int shm_create(unsigned capacity, unsigned max_workers, shm_t **out)
{
	if (!out || capacity == 0 || capacity > SHM_CAPACITY_MAX ||
	    max_workers == 0 || max_workers > SHM_WORKERS_MAX)
		return -EINVAL;

	uint32_t nindex = pow2_at_least(2ull * capacity);
	size_t index_off = round_up(sizeof(struct shm), SHM_LINE);
	size_t slots_off = round_up(index_off + (size_t)nindex * sizeof(uint64_t), SHM_LINE);
	size_t invites_off = slots_off + (size_t)capacity * sizeof(struct slot);
	size_t workers_off = invites_off + (size_t)capacity * sizeof(struct invite_rec);
	size_t size = round_up(workers_off + (size_t)max_workers * sizeof(struct wslot),
			       (size_t)sysconf(_SC_PAGESIZE));

	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_error("shm: cannot map %zu bytes for %u calls: %s", size, capacity,
			  strerror(errno));
		return -ENOMEM;
	}

	/* Zero-filled memory is an empty table: every slot FREE, every counter 0. */
	shm_t *shm = p;
	shm->magic = SHM_MAGIC;
	shm->version = SHM_VERSION;
	shm->capacity = capacity;
	shm->max_workers = max_workers;
	shm->nindex = nindex;
	shm->window = nindex < SHM_WINDOW ? nindex : SHM_WINDOW;
	shm->slot_size = sizeof(struct slot);
	shm->wslot_size = sizeof(struct wslot);
	shm->index_off = index_off;
	shm->slots_off = slots_off;
	shm->invites_off = invites_off;
	shm->workers_off = workers_off;
	shm->size = size;
	atomic_init(&shm->live, 0);
	/* No slot used yet, none free: the first calls raise the mark.  No
	 * slot is written here, so none is resident before a call needs it. */
	atomic_init(&shm->free_head, 0);
	atomic_init(&shm->used, 0);
	atomic_init(&shm->inv_free_head, 0);
	atomic_init(&shm->inv_used, 0);
	*out = shm;
	return 0;
}

void shm_destroy(shm_t *shm)
{
	if (!shm || shm->magic != SHM_MAGIC)
		return;
	munmap(shm, shm->size);
}

unsigned shm_capacity(const shm_t *shm)
{
	return shm->capacity;
}

unsigned shm_max_workers(const shm_t *shm)
{
	return shm->max_workers;
}

size_t shm_size(const shm_t *shm)
{
	return shm->size;
}

/* ------------------------------------------------------------ calls: writers */

/* Take one unit of capacity, never going above it even for a moment. */
static bool admit(shm_t *shm)
{
	uint32_t n = atomic_load_explicit(&shm->live, memory_order_relaxed);

	do {
		if (n >= shm->capacity)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&shm->live, &n, n + 1,
							memory_order_acq_rel,
							memory_order_relaxed));
	return true;
}

/*
 * A free stack and a high-water mark over n elements of `stride` bytes
 * whose next link is the 32-bit word at `link_off`: the slots, and the
 * INVITE records.  An element is taken from the stack, else above the
 * mark; one never taken is never written.
 */
struct freestack {
	_Atomic uint64_t *head;   /* tag << 32 | top + 1; low half 0 = empty */
	_Atomic uint32_t *used;   /* the mark: elements [0, used) were taken once */
	char *base;
	size_t stride;
	size_t link_off;
	uint32_t n;
};

static struct freestack slot_stack(const shm_t *shm)
{
	shm_t *w = (shm_t *)shm;   /* the atomics live in writable shared memory */

	return (struct freestack){ &w->free_head, &w->used, (char *)slots(shm),
				   sizeof(struct slot), offsetof(struct slot, next_free),
				   shm->capacity };
}

static struct freestack invite_stack(const shm_t *shm)
{
	shm_t *w = (shm_t *)shm;

	return (struct freestack){ &w->inv_free_head, &w->inv_used,
				   (char *)shm + shm->invites_off, sizeof(struct invite_rec),
				   offsetof(struct invite_rec, next_free), shm->capacity };
}

static _Atomic uint32_t *stack_link(const struct freestack *fs, uint32_t idx)
{
	return (_Atomic uint32_t *)(fs->base + (size_t)idx * fs->stride + fs->link_off);
}

/* Pop the free stack: 0 and *idx, or -ENOSPC when it is empty. */
static int stack_pop(const struct freestack *fs, uint32_t *idx)
{
	uint64_t head = atomic_load_explicit(fs->head, memory_order_acquire);

	for (;;) {
		uint32_t top = (uint32_t)head;

		if (top == 0 || top > fs->n)
			return -ENOSPC;
		/* A stale next (top popped meanwhile) only makes the CAS fail: the tag moved. */
		uint64_t next = atomic_load_explicit(stack_link(fs, top - 1), memory_order_relaxed);
		uint64_t want = ((head >> 32) + 1) << 32 | next;
		if (atomic_compare_exchange_weak_explicit(fs->head, &head, want,
							  memory_order_acq_rel,
							  memory_order_acquire)) {
			*idx = top - 1;
			return 0;
		}
	}
}

/* Push element idx (ours to give) on the free stack. */
static void stack_push(const struct freestack *fs, uint32_t idx)
{
	uint64_t head = atomic_load_explicit(fs->head, memory_order_relaxed);

	do {
		atomic_store_explicit(stack_link(fs, idx), (uint32_t)head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak_explicit(fs->head, &head,
							((head >> 32) + 1) << 32 | (idx + 1),
							memory_order_release,
							memory_order_relaxed));
}

/* An element never taken, above the high-water mark: 0 and *idx, or
 * -ENOSPC when every element was taken once. */
static int stack_raise(const struct freestack *fs, uint32_t *idx)
{
	uint32_t n = atomic_load_explicit(fs->used, memory_order_relaxed);

	do {
		if (n >= fs->n)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak_explicit(fs->used, &n, n + 1,
							memory_order_acq_rel,
							memory_order_relaxed));
	*idx = n;
	return 0;
}

/* A released element first (its pages are resident), else a new one. */
static int stack_take(const struct freestack *fs, uint32_t *idx)
{
	if (stack_pop(fs, idx) == 0)
		return 0;
	return stack_raise(fs, idx);
}

/* Slots [0, mark) may hold calls; readers scan no further. */
static uint32_t used_mark(const shm_t *shm)
{
	uint32_t n = atomic_load_explicit(&((shm_t *)shm)->used, memory_order_acquire);

	return n < shm->capacity ? n : shm->capacity;
}

static bool claim_slot(struct slot *s, unsigned worker)
{
	uint32_t expect = 0;

	return atomic_compare_exchange_strong_explicit(&s->owner, &expect,
						       owner_word(worker, PHASE_CLAIMED),
						       memory_order_acq_rel,
						       memory_order_relaxed);
}

/* A released slot (the top of the free stack), else a slot never used,
 * CLAIMED by `worker`: 0 and *idx, or -ENOSPC. */
static int claim(shm_t *shm, unsigned worker, uint32_t *idx)
{
	struct freestack fs = slot_stack(shm);

	if (stack_take(&fs, idx) != 0)
		return -ENOSPC;   /* admitted, so only after slots were lost as above */
	if (claim_slot(slots(shm) + *idx, worker))
		return 0;
	/* A slot on the stack is FREE: this one was not, so the stack is
	 * damaged.  Leave the slot (its owner gives it back) and refuse. */
	log_error("shm: slot %u was on the free stack but in use", *idx);
	return -ENOSPC;
}

static uint64_t index_entry(uint64_t hash, uint32_t idx)
{
	return (hash >> 32) << 32 | (idx + 1);
}

/* An empty index entry in the key's window, set to slot idx. */
static int index_add(shm_t *shm, uint64_t hash, uint32_t idx)
{
	uint32_t mask = shm->nindex - 1;
	uint32_t start = (uint32_t)hash & mask;

	for (uint32_t i = 0; i < shm->window; i++) {
		_Atomic uint64_t *e = index_entries(shm) + ((start + i) & mask);
		uint64_t expect = 0;

		if (atomic_load_explicit(e, memory_order_relaxed) != 0)
			continue;
		if (atomic_compare_exchange_strong_explicit(e, &expect, index_entry(hash, idx),
							    memory_order_release,
							    memory_order_relaxed))
			return 0;
	}
	return -ENOSPC;
}

/* Clear the index entry of slot idx, keyed by hash (none: nothing to do). */
static void index_del(shm_t *shm, uint64_t hash, uint32_t idx)
{
	uint32_t mask = shm->nindex - 1;
	uint32_t start = (uint32_t)hash & mask;
	uint64_t mine = index_entry(hash, idx);

	for (uint32_t i = 0; i < shm->window; i++) {
		_Atomic uint64_t *e = index_entries(shm) + ((start + i) & mask);
		uint64_t expect = mine;

		/* A plain load first: a failed CAS still takes the line exclusive. */
		if (atomic_load_explicit(e, memory_order_relaxed) != mine)
			continue;
		if (atomic_compare_exchange_strong_explicit(e, &expect, 0, memory_order_release,
							    memory_order_relaxed))
			return;
	}
}

/* Give a CLAIMED slot of ours back: FREE, on the stack. */
static void slot_unclaim(shm_t *shm, uint32_t idx)
{
	struct freestack fs = slot_stack(shm);

	atomic_store_explicit(&slots(shm)[idx].hash, 0, memory_order_relaxed);
	atomic_store_explicit(&slots(shm)[idx].owner, 0, memory_order_release);
	stack_push(&fs, idx);
}

/* Give the INVITE record of slot s (if it has one) back to the free stack. */
static void invite_drop(shm_t *shm, struct slot *s)
{
	struct freestack fs = invite_stack(shm);
	uint32_t r = atomic_exchange_explicit(&s->invite, 0, memory_order_acq_rel);

	if (r != 0 && r <= shm->capacity)
		stack_push(&fs, r - 1);
}

/* Open a write: seq goes odd before any field changes (store-store order). */
uint32_t shm_seq_open(_Atomic uint32_t *seq)
{
	uint32_t q = atomic_load_explicit(seq, memory_order_relaxed);

	atomic_store_explicit(seq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return q + 1;
}

/* Close it: every field written before seq goes even again. */
void shm_seq_close(_Atomic uint32_t *seq, uint32_t odd)
{
	atomic_store_explicit(seq, odd + 1, memory_order_release);
}

int shm_call_insert(shm_t *shm, const struct shm_call *init, uint32_t *slot)
{
	if (!shm || !init || !slot || init->a.call_id[0] == '\0' ||
	    init->worker >= shm->max_workers)
		return -EINVAL;

	uint64_t hash = callid_hash(init->a.call_id, callid_len(init->a.call_id));
	uint32_t idx;

	if (!admit(shm))
		return -ENOSPC;
	if (claim(shm, init->worker, &idx) != 0) {
		atomic_fetch_sub_explicit(&shm->live, 1, memory_order_release);
		return -ENOSPC;
	}

	struct slot *s = slots(shm) + idx;
	/* The hash before the index entry: a reaper finds the entry by it. */
	atomic_store_explicit(&s->hash, hash, memory_order_release);
	if (index_add(shm, hash, idx) != 0) {
		slot_unclaim(shm, idx);
		atomic_fetch_sub_explicit(&shm->live, 1, memory_order_release);
		return -ENOSPC;
	}

	/* No INVITE record yet (slot_release gave the last call's back): the
	 * call's first shm_invite_put takes one. */
	uint32_t q = shm_seq_open(&s->seq);
	memcpy(&s->call, init, sizeof s->call);
	call_terminate(&s->call);
	atomic_store_explicit(&s->owner, owner_word(init->worker, PHASE_LIVE),
			      memory_order_relaxed);
	shm_seq_close(&s->seq, q);
	*slot = idx;
	return 0;
}

struct shm_call *shm_call_write_begin(shm_t *shm, uint32_t idx)
{
	struct slot *s = shm ? slot_at(shm, idx) : NULL;

	if (!s || !slot_live(s))
		return NULL;
	if (atomic_load_explicit(&s->seq, memory_order_relaxed) & 1)
		return NULL;  /* a begin is already open: refuse rather than corrupt seq */
	shm_seq_open(&s->seq);
	return &s->call;
}

void shm_call_write_end(shm_t *shm, uint32_t idx)
{
	struct slot *s = shm ? slot_at(shm, idx) : NULL;

	if (!s)
		return;
	uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
	uint32_t owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
	if (!(q & 1) || owner_phase(owner) != PHASE_LIVE)
		return;  /* no write open */

	call_terminate(&s->call);
	/* Handing the call to another worker moves the ownership (and reaping) with it. */
	if (s->call.worker >= shm->max_workers)
		s->call.worker = (uint16_t)owner_worker(owner);
	else if (s->call.worker != owner_worker(owner))
		atomic_store_explicit(&s->owner, owner_word(s->call.worker, PHASE_LIVE),
				      memory_order_relaxed);
	shm_seq_close(&s->seq, q);
}

/*
 * Hide the call, then clear its index entry, then free the slot, then give
 * back its admission.  Also used by the reaper on slots whose writer died:
 * a write left open (odd seq) becomes this bracket, a CLAIMED slot of a
 * dead inserter is freed the same way (with its index entry, if it got one).
 */
static void slot_release(shm_t *shm, struct slot *s)
{
	uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
	uint32_t owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
	uint64_t hash = atomic_load_explicit(&s->hash, memory_order_acquire);
	uint32_t idx = (uint32_t)(s - slots(shm));

	if (!(q & 1))
		q = shm_seq_open(&s->seq);
	atomic_store_explicit(&s->owner, owner_word(owner_worker(owner), PHASE_CLAIMED),
			      memory_order_relaxed);
	shm_seq_close(&s->seq, q);
	if (hash != 0)
		index_del(shm, hash, idx);
	invite_drop(shm, s);
	/* Release: the next owner's CAS sees seq even before it opens its own bracket. */
	slot_unclaim(shm, idx);
	atomic_fetch_sub_explicit(&shm->live, 1, memory_order_release);
}

void shm_call_remove(shm_t *shm, uint32_t idx)
{
	struct slot *s = shm ? slot_at(shm, idx) : NULL;

	if (!s || !slot_live(s))
		return;
	slot_release(shm, s);
}

/* Free the slots of `worker`: all of them, or only the unusable ones. */
static unsigned slot_reap(shm_t *shm, uint16_t worker, int torn_only)
{
	unsigned n = 0;

	if (!shm)
		return 0;
	for (uint32_t i = 0, n_used = used_mark(shm); i < n_used; i++) {
		struct slot *s = slots(shm) + i;
		uint32_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);
		uint32_t q = atomic_load_explicit(&s->seq, memory_order_acquire);

		if (owner == 0 || owner_worker(owner) != worker)
			continue;
		/* Torn: claimed but never published, or left in the middle of a write. */
		if (torn_only && owner_phase(owner) == PHASE_LIVE && !(q & 1))
			continue;
		slot_release(shm, s);
		n++;
	}
	return n;
}

unsigned shm_call_reap_worker(shm_t *shm, uint16_t worker)
{
	return slot_reap(shm, worker, 0);
}

unsigned shm_call_reap_torn(shm_t *shm, uint16_t worker)
{
	return slot_reap(shm, worker, 1);
}

/* ------------------------------------------------------------ calls: readers */

/*
 * Consistent copy of slot s: 0 for a live call (and its key hash), -ENOENT
 * for none.  A slot that is not LIVE is answered at once, even mid-write:
 * inserts and removes in progress hold no visible call.
 */
static int slot_copy(struct slot *s, struct shm_call *out, uint64_t *hash)
{
	struct spin spin = { 0 };

	for (;;) {
		uint32_t q = atomic_load_explicit(&s->seq, memory_order_acquire);
		uint32_t owner = atomic_load_explicit(&s->owner, memory_order_relaxed);

		if (owner_phase(owner) != PHASE_LIVE)
			return -ENOENT;
		if (!(q & 1)) {
			memcpy(out, &s->call, sizeof *out);
			uint64_t h = atomic_load_explicit(&s->hash, memory_order_relaxed);
			/* The copy's loads stay before the re-check of seq. */
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&s->seq, memory_order_relaxed) == q) {
				if (hash)
					*hash = h;
				return 0;
			}
		}
		if (!shm_spin_wait(&spin))
			return -ENOENT;  /* writer died mid-write; the reaper will free it */
	}
}

int shm_call_read(const shm_t *shm, uint32_t idx, struct shm_call *out)
{
	struct slot *s = shm ? slot_at(shm, idx) : NULL;

	if (!s || !out)
		return -EINVAL;
	return slot_copy(s, out, NULL);
}

int shm_call_find(const shm_t *shm, const char *a_call_id,
		  uint32_t *slot, struct shm_call *out)
{
	if (!shm || !a_call_id)
		return -EINVAL;

	size_t len = callid_len(a_call_id);
	if (len == 0)
		return -ENOENT;

	uint64_t hash = callid_hash(a_call_id, len);
	uint32_t mask = shm->nindex - 1;
	uint32_t start = (uint32_t)hash & mask;
	struct shm_call scratch;
	struct shm_call *copy = out ? out : &scratch;

	for (uint32_t i = 0; i < shm->window; i++) {
		uint64_t e = atomic_load_explicit(index_entries(shm) + ((start + i) & mask),
						  memory_order_acquire);
		uint32_t idx = (uint32_t)e - 1;
		struct slot *s;
		uint64_t h;

		/* Cheap filters first: most window entries are empty or hold other keys. */
		if (e == 0 || e >> 32 != hash >> 32 || (s = slot_at(shm, idx)) == NULL)
			continue;
		if (!slot_live(s) || atomic_load_explicit(&s->hash, memory_order_relaxed) != hash)
			continue;
		if (slot_copy(s, copy, &h) != 0 || h != hash)
			continue;
		if (strncmp(copy->a.call_id, a_call_id, len) == 0 && copy->a.call_id[len] == '\0') {
			if (slot)
				*slot = idx;
			return 0;
		}
	}
	return -ENOENT;
}

int shm_call_foreach(const shm_t *shm,
		     int (*fn)(const struct shm_call *call, uint32_t slot, void *arg),
		     void *arg)
{
	struct shm_call copy;

	if (!shm || !fn)
		return -EINVAL;
	for (uint32_t i = 0, n_used = used_mark(shm); i < n_used; i++) {
		struct slot *s = slots(shm) + i;

		if (!slot_live(s) || slot_copy(s, &copy, NULL) != 0)
			continue;
		int rc = fn(&copy, i, arg);
		if (rc)
			return rc;
	}
	return 0;
}

unsigned shm_call_count(const shm_t *shm)
{
	return atomic_load_explicit(&((shm_t *)shm)->live, memory_order_relaxed);
}

unsigned shm_call_used(const shm_t *shm)
{
	return used_mark(shm);
}

/* ------------------------------------------------------------ the INVITEs of a call
 * (the record's text: shm_invite.c) */

/* The INVITE record of slot s, taken for it now when it has none: NULL
 * when every record is in use (records lost with a dead process, below). */
static struct invite_rec *invite_of(shm_t *shm, struct slot *s)
{
	struct freestack fs = invite_stack(shm);
	uint32_t r = atomic_load_explicit(&s->invite, memory_order_relaxed);

	if (r == 0) {
		if (stack_take(&fs, &r) != 0)
			return NULL;
		/* A process killed between the take and this store loses the
		 * record (not the call: it only goes without one). */
		atomic_store_explicit(&s->invite, ++r, memory_order_release);
	}
	return invite_at(shm, r - 1);
}

int shm_invite_put(shm_t *shm, uint32_t slot, unsigned idx, const char *text, size_t len)
{
	struct slot *s = shm ? slot_at(shm, slot) : NULL;
	struct invite_rec *r;
	uint32_t q;
	int ret;

	if (!s || (idx != 0 && atomic_load_explicit(&s->invite, memory_order_relaxed) == 0))
		return -EINVAL;   /* element 0 comes first, and takes the record */
	r = invite_of(shm, s);
	if (!r)
		return -ENOSPC;
	q = shm_seq_open(&r->seq);
	ret = shm_invite_pack(&r->inv, idx, text, len);
	shm_seq_close(&r->seq, q);
	return ret;
}

void shm_invite_drop(shm_t *shm, uint32_t slot)
{
	struct slot *s = shm ? slot_at(shm, slot) : NULL;

	if (s)
		invite_drop(shm, s);
}

int shm_invite_read(const shm_t *shm, uint32_t slot, struct shm_invite *out)
{
	struct slot *s = shm ? slot_at(shm, slot) : NULL;
	struct invite_rec *r;
	struct spin spin = { 0 };
	uint32_t ri;

	if (!s || !out)
		return -EINVAL;
	ri = atomic_load_explicit(&s->invite, memory_order_acquire);
	r = ri ? invite_at(shm, ri - 1) : NULL;
	if (!r)
		return -ENOENT;
	for (;;) {
		uint32_t q = atomic_load_explicit(&r->seq, memory_order_acquire);

		if (!(q & 1)) {
			memcpy(out, &r->inv, sizeof *out);
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&r->seq, memory_order_relaxed) == q)
				return out->n > 0 && out->n <= SHM_INVITE_MAX ? 0 : -ENOENT;
		}
		if (!shm_spin_wait(&spin))
			return -ENOENT;  /* its writer died mid-write */
	}
}

const char *shm_transport_name(unsigned transport)
{
	switch (transport) {
	case SHM_TP_UDP: return "udp";
	case SHM_TP_TCP: return "tcp";
	case SHM_TP_TLS: return "tls";
	default: return "?";
	}
}
