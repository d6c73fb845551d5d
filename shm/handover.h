/*
 * handover — datagrams passed from the worker that received them to the
 * worker that owns their call, through shared memory.
 *
 * Design note.  Every worker binds the public SIP port with SO_REUSEPORT,
 * and the kernel picks the socket by a hash of the source address: one
 * trunk lands on one worker, and a request sent to the public port (a
 * phone behind an outbound proxy sends its BYE there) lands wherever that
 * hash says, not where its call lives.  So the worker that receives a
 * datagram on the public port decides who owns it (worker/dgram.c: the
 * call table for a call that exists, else handover_owner() below) and, when
 * that is another worker, pushes the raw datagram here with its source
 * address; the owner reads it from its ring exactly as if its own socket had
 * received it.
 *
 *   - One queue per ordered pair of workers (from → to): a single-producer,
 *     single-consumer byte ring.  No locks, no CAS: the producer publishes
 *     with a release store of `tail`, the consumer releases with `head`.
 *     A producer that dies in the middle of a push never published it; its
 *     successor (same index) goes on from the published tail.  A consumer
 *     that dies had not released what it had not finished: its successor
 *     reads it again (SIP copes with a duplicate; it never copes with a
 *     loss).
 *   - Order: one source address always lands on the same socket, so its
 *     datagrams travel one queue, in order.
 *   - Waking: each worker has an eventfd, made by the master before fork
 *     (every process inherits every worker's).  A producer writes it at most
 *     once per loop turn per target, through its own ring.
 *   - Owner of a new call: rendezvous hashing of the Call-ID over the
 *     workers that are ready (handover_set_ready), so that while a worker
 *     restarts only its share of new calls moves, and moves back after.
 *   - Full: a push that does not fit fails (-ENOSPC); the caller drops the
 *     datagram and counts it (the sender retransmits).  A worker never
 *     blocks on another.
 * The region is created by the master before the first fork (like the call
 * table) and never resized.
 */
#ifndef B2BUA_HANDOVER_H
#define B2BUA_HANDOVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Bytes of one from → to queue.  A datagram up to HANDOVER_DGRAM_MAX fits. */
#define HANDOVER_RING_BYTES (256u * 1024u)
#define HANDOVER_DGRAM_MAX  65535u

typedef struct handover handover_t;

/* One datagram read from a queue (handover_peek): valid until released. */
struct handover_msg {
	const char *data;
	size_t len;
	const struct sockaddr *from; /* in the queue too: valid until released */
	socklen_t fromlen;
	uint64_t rx_ns;              /* CLOCK_REALTIME when the first worker received it */
	uint64_t end;                /* where the record ends: pass to handover_release() */
};

/*
 * Master, before fork: queues for `workers` workers and their eventfds.
 * Returns 0 and *out, or a negative errno.
 */
int handover_create(unsigned workers, handover_t **out);

/* Unmap the queues and close the eventfds (tests; the master keeps its
 * queues until it exits).  NULL is fine. */
void handover_destroy(handover_t *h);

unsigned handover_workers(const handover_t *h);

/* Worker `idx` takes (ready 1) or stops taking (0) new calls: set by the
 * worker once its loop runs, cleared by the master when it died. */
void handover_set_ready(handover_t *h, unsigned idx, int ready);
int handover_ready(const handover_t *h, unsigned idx);

/* The worker that is to own a new call with this Call-ID: the ready worker
 * with the highest rendezvous score; `self` when none is ready. */
unsigned handover_owner(const handover_t *h, const char *call_id, size_t len, unsigned self);

/* Producer `from`: queue a datagram for `to`.  0, -ENOSPC (full: drop it),
 * -EMSGSIZE, -EINVAL. */
int handover_push(handover_t *h, unsigned from, unsigned to, const void *data, size_t len,
		  const struct sockaddr *src, socklen_t srclen, uint64_t rx_ns);

/*
 * Consumer `to`: the next datagram from `from` after position `*cursor`
 * (start with handover_cursor()), without releasing it.  0 and *out
 * (*cursor moves past it), or -EAGAIN when nothing more is queued.
 */
uint64_t handover_cursor(const handover_t *h, unsigned to, unsigned from);
int handover_peek(handover_t *h, unsigned to, unsigned from, uint64_t *cursor,
		  struct handover_msg *out);

/* Consumer: everything up to `end` (a handover_msg's end) is done with. */
void handover_release(handover_t *h, unsigned to, unsigned from, uint64_t end);

/* The eventfd that wakes worker `idx`. */
int handover_eventfd(const handover_t *h, unsigned idx);

#endif
