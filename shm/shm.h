/*
 * shm — the shared-memory call table and per-worker counters.
 *
 * Design note.  One anonymous MAP_SHARED region is created by the master
 * before it forks, so every worker (and every restarted worker) maps the
 * same table at the same address.  The module knows nothing of SIP: a call
 * is a fixed-size record of strings, numbers and states.
 *
 * Lock-free rules:
 *  - A slot is claimed with compare-and-swap on its owner word; from then on
 *    the owning worker is the only writer of that slot.
 *  - Every write is bracketed by a per-slot sequence counter (odd while a
 *    write is in progress).  Readers copy the slot and retry when the counter
 *    moved, so they always see a consistent record and never block a writer.
 *  - Calls are placed by a hash of the A-leg Call-ID within a bounded probe
 *    window of an index with twice `capacity` entries, so a window is
 *    practically never full.  An atomic count enforces `capacity` exactly.
 *  - Slots are taken from a stack of released ones first, else above a
 *    high-water mark raised by compare-and-swap (never lowered); nothing
 *    writes a slot before that, and every scan of the table stops at the
 *    mark, so the table is resident only as far as calls used it.
 *
 * Nothing outside shm.c touches the region: everyone goes through this API.
 */
#ifndef B2BUA_SHM_H
#define B2BUA_SHM_H

#include <stdint.h>
#include <sys/types.h>

typedef struct shm shm_t;

enum shm_call_state {
	SHM_CALL_FREE = 0,      /* not a call (never returned by readers) */
	SHM_CALL_TRYING,        /* INVITE received, B-leg being set up */
	SHM_CALL_RINGING,       /* a provisional 18x relayed */
	SHM_CALL_ANSWERED,      /* 2xx relayed, dialogs confirmed */
	SHM_CALL_HELD,          /* answered and on hold (see held_by) */
	SHM_CALL_FORWARDING,    /* a new B-leg to a forward target is being set up */
	SHM_CALL_ENDING,        /* BYE/CANCEL in progress on some leg */
	SHM_CALL_ENDED,         /* over; its CDR is being made durable, then the slot goes */
};

enum shm_party { SHM_PARTY_NONE = 0, SHM_PARTY_CALLER = 1, SHM_PARTY_CALLEE = 2 };

enum shm_transport { SHM_TP_UDP = 0, SHM_TP_TCP = 1, SHM_TP_TLS = 2 };

/* "udp", "tcp" or "tls" (the names of config, CDR, CLI and logs); "?" for
 * a value no build writes. */
const char *shm_transport_name(unsigned transport);

#define SHM_ID_MAX      80   /* a call id: NODE-wWORKER-EPOCH-N, see worker/b2b.c */
#define SHM_CALLID_MAX 128
#define SHM_TAG_MAX     64
#define SHM_URI_MAX    128
#define SHM_ROUTE_MAX  256

/* One leg's dialog: enough to rebuild it in another process. */
struct shm_leg {
	char call_id[SHM_CALLID_MAX];
	char local_tag[SHM_TAG_MAX];
	char remote_tag[SHM_TAG_MAX];
	char local_uri[SHM_URI_MAX];      /* our From (B-leg) / To (A-leg) URI */
	char remote_uri[SHM_URI_MAX];
	char remote_target[SHM_URI_MAX];  /* the peer's Contact */
	char route_set[SHM_ROUTE_MAX];    /* the route set in use order, as a Route header
					   * value ("<sip:p1;lr>, <sip:p2;lr>"); "" for none
					   * or one that does not fit */
	uint32_t local_cseq;
	uint32_t remote_cseq;
	uint8_t transport;                /* enum shm_transport */
};

/* A call as readers see it (a consistent copy) and writers fill it. */
struct shm_call {
	char id[SHM_ID_MAX];              /* the call id (CLI, logs, CDR): see worker/b2b.c */
	uint16_t worker;                  /* owning worker index */
	uint8_t state;                    /* enum shm_call_state */
	uint8_t held_by;                  /* enum shm_party, when state == SHM_CALL_HELD */
	uint16_t a_final;                 /* final code the caller got while B-legs finish, 0 if none */
	char caller[SHM_URI_MAX];         /* A-leg From URI */
	char callee[SHM_URI_MAX];         /* dialled: A-leg Request-URI */
	char forward_target[SHM_URI_MAX]; /* current forward target, "" if none */
	uint64_t start_ms;                /* INVITE received (ms since the epoch) */
	uint64_t ring_ms;                 /* first 18x, 0 if none */
	uint64_t answer_ms;               /* 2xx, 0 if none */
	struct shm_leg a;                 /* the caller's dialog with us */
	struct shm_leg b;                 /* our dialog with the callee */
};

/* The clock of every time in the table: ms since the epoch (CLOCK_REALTIME),
 * so that times read by another process or host, or written to a CDR, agree. */
uint64_t shm_now_ms(void);

/* ------------------------------------------------------------ life cycle */

/*
 * Create the region for `capacity` concurrent calls and `max_workers`
 * workers.  Called by the master before fork.  Returns 0 and *out, or
 * -EINVAL (capacity 0 or absurd, max_workers 0) / -ENOMEM.
 */
int shm_create(unsigned capacity, unsigned max_workers, shm_t **out);

/* Unmap (each process may call it once at exit; the memory goes with the last). */
void shm_destroy(shm_t *shm);

unsigned shm_capacity(const shm_t *shm);
unsigned shm_max_workers(const shm_t *shm);
/* Bytes mapped, for "memory per call" figures. */
size_t shm_size(const shm_t *shm);

/* ------------------------------------------------------------ calls */

/*
 * Claim a slot for a new call owned by `init->worker`, keyed by
 * init->a.call_id, and publish *init in it.  Returns 0 and the slot index in
 * *slot, or -ENOSPC when `capacity` calls are active (the caller answers 503),
 * -EINVAL for an empty Call-ID.
 */
int shm_call_insert(shm_t *shm, const struct shm_call *init, uint32_t *slot);

/*
 * Write access for the owner.  shm_call_write_begin() marks the slot as
 * being written and returns it; change fields in place, then
 * shm_call_write_end() publishes.  Only the owning worker may do this, and
 * never with another begin open on the same slot.
 */
struct shm_call *shm_call_write_begin(shm_t *shm, uint32_t slot);
void shm_call_write_end(shm_t *shm, uint32_t slot);

/* Free a slot (owner only).  The call is no longer visible to readers. */
void shm_call_remove(shm_t *shm, uint32_t slot);

/* Consistent copy of one slot: 0, or -ENOENT if the slot holds no call. */
int shm_call_read(const shm_t *shm, uint32_t slot, struct shm_call *out);

/* Find a call by its A-leg Call-ID: 0 with *slot and *out, or -ENOENT. */
int shm_call_find(const shm_t *shm, const char *a_call_id,
		  uint32_t *slot, struct shm_call *out);

/*
 * Call fn on a consistent copy of every live call; stops early and returns
 * fn's value when fn returns non-zero, else returns 0.
 */
int shm_call_foreach(const shm_t *shm,
		     int (*fn)(const struct shm_call *call, uint32_t slot, void *arg),
		     void *arg);

/* Number of live calls (the atomic admission counter). */
unsigned shm_call_count(const shm_t *shm);

/* The slots' high-water mark: slots ever taken by a call (live or
 * released since), at most the capacity.  The scans stop there, and the
 * table's slots and INVITE records are resident that far only. */
unsigned shm_call_used(const shm_t *shm);

/*
 * Free every slot owned by `worker`: used when a worker died and its calls
 * cannot be continued.  Returns how many were freed.  Only safe while that
 * worker index has no running process.
 */
unsigned shm_call_reap_worker(shm_t *shm, uint16_t worker);

/*
 * Free the slots of `worker` that a dead process left unusable: claimed but
 * never published, or in the middle of a write.  The consistent ones stay,
 * for a restarted worker to take over (shm_call_foreach finds them).
 * Returns how many were freed.  Only safe while that worker index has no
 * running process.
 */
unsigned shm_call_reap_torn(shm_t *shm, uint16_t worker);

/* ------------------------------------------------------------ the INVITEs of a call */

/*
 * Until its caller has ACKed its answer, a call's owner keeps beside its
 * slot what a successor needs should the owner die (see
 * worker/b2b_adopt.c): element 0 is the caller's INVITE, as a final
 * response to it must repeat it (the 2xx of a call answered but not ACKed
 * too); elements 1.. are the B-leg INVITEs, as their CANCELs must repeat
 * them.  An element is text the owner chose (this
 * module does not read it), packed after the previous one and kept
 * NUL-terminated, so a call pays for the bytes it uses, up to
 * SHM_INVITE_BYTES.  A call takes a record with its first element and
 * gives it back once its caller ACKed the answer (shm_invite_drop) or when
 * it is removed, and records
 * are taken again before new ones are touched (as slots are), so their
 * resident memory follows the calls being set up at once, not the calls
 * established.  Only the owner writes a record; only the successor of a
 * dead owner reads it (a sequence counter tells a write the owner died
 * in).  A process killed between taking a record and linking it to its
 * slot loses that record: a later call may then go without one.
 */
#define SHM_INVITE_BYTES 2048
#define SHM_INVITE_MAX   9      /* the caller's INVITE and 8 B-leg attempts */

struct shm_invite {
	uint16_t n;                      /* elements */
	uint16_t end[SHM_INVITE_MAX];    /* element i ends (after its NUL) at text + end[i] */
	char text[SHM_INVITE_BYTES];
};

/*
 * Pure: add element `idx` to *inv.  idx 0 empties the record first; any
 * other idx must be the next one (inv->n).  Returns 0, -EINVAL (idx not the
 * next, empty or NULL text), -ENOSPC (SHM_INVITE_MAX elements already) or
 * -E2BIG (the text does not fit: the record is left as it was, or empty for
 * idx 0).
 */
int shm_invite_pack(struct shm_invite *inv, unsigned idx, const char *text, size_t len);

/* Pure: element idx of *inv: 0 with *text (NUL-terminated) and *len, or
 * -ENOENT (no such element, or a record that is not well-formed). */
int shm_invite_get(const struct shm_invite *inv, unsigned idx, const char **text, size_t *len);

/* Owner: shm_invite_pack() on the record of `slot`, taken with element 0.
 * -EINVAL for a bad slot or a first element other than 0, -ENOSPC when no
 * record is left (see above). */
int shm_invite_put(shm_t *shm, uint32_t slot, unsigned idx, const char *text, size_t len);

/* Owner: the caller of the call in `slot` ACKed its answer (a successor
 * needs its INVITEs no more): its record goes back for the next calls. */
void shm_invite_drop(shm_t *shm, uint32_t slot);

/* Successor: consistent copy of the record of `slot`: 0, or -ENOENT when it
 * holds nothing or its writer died in the middle of a write, -EINVAL. */
int shm_invite_read(const shm_t *shm, uint32_t slot, struct shm_invite *out);

/* ------------------------------------------------------------ workers */

/* Counters a worker increments (relaxed atomics: single writer). */
enum shm_counter {
	SHM_CTR_MSGS_IN = 0,       /* SIP messages received */
	SHM_CTR_MSGS_OUT,          /* SIP messages sent */
	SHM_CTR_CALLS_TOTAL,       /* INVITEs that created a call (or were refused) */
	SHM_CTR_CALLS_ANSWERED,    /* calls that got a 2xx */
	SHM_CTR_CALLS_FAILED,      /* calls that ended with a final code >= 300 */
	SHM_CTR_ACTIVE,            /* calls this worker owns now (up and down) */
	SHM_CTR_RATE_LIMITED_INVITE,   /* INVITEs over rate_limit_invite: 503 */
	SHM_CTR_RATE_LIMITED_REGISTER, /* REGISTERs over rate_limit_register: 503 */
	SHM_CTR_UNTRUSTED_REFUSED, /* INVITEs not admitted (untrusted_invite: 407 or 403) */
	SHM_CTR_OVERLOAD_REFUSED,  /* new INVITEs shed with a stateless 503 (overload control) */
	SHM_CTR_CALLS_CREATED,     /* calls this worker created (it owns them) */
	SHM_CTR_HANDED_OUT,        /* datagrams passed to their owner (shm/handover.h) */
	SHM_CTR_HANDED_IN,         /* datagrams another worker passed to us */
	SHM_CTR_HANDOVER_DROPPED,  /* datagrams dropped: the owner's queue was full */
	SHM_CTR_UNROUTABLE,        /* public-port datagrams without a readable Call-ID, or too long */
	SHM_CTR_CDR_SPOOLED,       /* CDRs in the spool not yet confirmed (a gauge: cdr_spooled()) */
	SHM_CTR_CDR_UNREPLICATED,  /* CDRs Redis stored that a WAIT found on too few replicas */
	SHM_CTR_KEEPALIVES_SENT,   /* NAT keepalive OPTIONS sent (worker/keepalive.c) */
	SHM_CTR_KEEPALIVES_FAILED, /* ... unanswered within the interval, or a transport error */
	SHM_CTR_BINDINGS_REMOVED,  /* bindings removed after nat_keepalive failures */
	SHM_CTR_PEER_RELAYED,      /* calls another host (or worker) handed us for a binding we hold */
	SHM_CTR_FLOW_FAILED,       /* calls to a binding whose connection was gone (430) */
	SHM_CTR_RETRANS_OUT,       /* requests and responses NTA sent again (its timers) */
	SHM_CTR_RETRANS_IN,        /* retransmitted requests received (NTA matched them) */
	SHM_CTR_REG_ACCEPTED,      /* REGISTERs answered 200 that added or refreshed a binding */
	SHM_CTR_REG_REMOVED,       /* REGISTERs answered 200 that only removed bindings */
	SHM_CTR_AUTH_FAILED,       /* digest checks that failed (REGISTER or INVITE) */
	SHM_CTR_CDR_WRITTEN,       /* CDRs written to the spool journal (one a call) */
	SHM_CTR_CDR_REPLAYED,      /* CDRs a drain of the spool stored after an outage */
	SHM_CTR_CDR_REJECTED,      /* CDRs set aside in <spool>.rejected */
	SHM_CTR_REDIS_UP,          /* a gauge: 1 while the worker's Redis connection is up */
	SHM_CTR_CONN_OPEN,         /* a gauge: TCP/TLS connections the worker accepted, open now */
	SHM_CTR_CONN_REFUSED,      /* ... closed at accept: tcp_max_connections or _per_source */
	SHM_CTR_CONN_IDLE,         /* ... closed after tcp_idle_timeout of silence */
	SHM_CTR_CONN_MSG_TIMEOUT,  /* ... closed: a message not complete in tcp_message_timeout */
	SHM_CTR_CONN_OVERSIZED,    /* ... closed: a message over 64 KB (worker/conn.c) */
	SHM_CTR_CONN_PARTIAL,      /* ... that ended (peer or Sofia closed) in the middle of a message */
	SHM_CTR_TLS_HANDSHAKE_FAILED, /* TLS handshakes that failed, either way (b2b_tls.c) */
	SHM_CTR_CALLS_AT_REST,     /* a gauge: calls whose dialogs are freed now (b2b_rest.c) */
	SHM_CTR_CALLS_WOKEN,       /* calls at rest that rebuilt their dialogs (b2b_rest.c) */
	SHM_CTR__COUNT
};

/*
 * Histograms a worker fills: a count per bucket, non-cumulative, the last
 * one for what is above every bound, and the sum of what was observed.
 * The bounds are fixed here, in microseconds (shm_hist_bounds), so that a
 * worker chooses a bucket with no configuration and every reader agrees.
 */
enum shm_hist {
	SHM_HIST_SETUP = 0,        /* call set-up: INVITE received to final answer sent */
	SHM_HIST_REDIS,            /* a Redis command's round trip */
	SHM_HIST_LOOP_LAG,         /* how late the worker's tick timer ran */
	SHM_HIST__COUNT
};

#define SHM_HIST_BOUNDS 12     /* finite bucket bounds per histogram */

struct shm_hist_info {
	uint64_t buckets[SHM_HIST_BOUNDS + 1];   /* per bucket; [SHM_HIST_BOUNDS]: above all */
	uint64_t count;                          /* the sum of buckets[] */
	uint64_t sum_us;                         /* of every observation */
};

/* Final response codes are counted per code, 100..699. */
#define SHM_CODE_MIN 100
#define SHM_CODE_MAX 699

struct shm_worker_info {
	int32_t pid;               /* 0 when not running */
	uint16_t port;             /* the worker's own SIP port */
	uint32_t restarts;         /* how often the master restarted this index */
	uint64_t started_ms;       /* when the current process started */
	uint64_t counters[SHM_CTR__COUNT];
};

/* Master: record that worker `idx` now runs as `pid` on `port`.  restarts is
 * incremented when `restarted` is non-zero.  pid 0 marks it stopped. */
void shm_worker_set(shm_t *shm, unsigned idx, pid_t pid, uint16_t port,
		    int restarted, uint64_t now_ms);

/* Worker: add `n` (may be negative for SHM_CTR_ACTIVE) to a counter. */
void shm_counter_add(shm_t *shm, unsigned idx, enum shm_counter ctr, int64_t n);

/* Worker: count one final response code sent to a caller (100..699). */
void shm_code_count(shm_t *shm, unsigned idx, int code);

/* Any process: snapshot of worker `idx`: 0, or -EINVAL for a bad index. */
int shm_worker_read(const shm_t *shm, unsigned idx, struct shm_worker_info *out);

/* Any process: how often code `code` was sent as a final answer, summed over workers. */
uint64_t shm_code_total(const shm_t *shm, int code);

/* Worker: set a gauge kept among the counters (SHM_CTR_REDIS_UP) to `v`. */
void shm_gauge_set(shm_t *shm, unsigned idx, enum shm_counter ctr, uint64_t v);

/* Pure: histogram h's SHM_HIST_BOUNDS bucket bounds (µs, ascending), NULL for a bad h. */
const uint64_t *shm_hist_bounds(enum shm_hist h);

/* Pure: the bucket an observation of `us` falls in (0..SHM_HIST_BOUNDS): the
 * first whose bound is >= us, SHM_HIST_BOUNDS above every bound. */
unsigned shm_hist_bucket(enum shm_hist h, uint64_t us);

/* Worker: one observation of `us` microseconds in its histogram h (two
 * relaxed atomic adds on its own lines: no lock, no system call). */
void shm_hist_observe(shm_t *shm, unsigned idx, enum shm_hist h, uint64_t us);

/* Any process: snapshot of worker idx's histogram h: 0, or -EINVAL. */
int shm_hist_read(const shm_t *shm, unsigned idx, enum shm_hist h, struct shm_hist_info *out);

#endif
