/*
 * dgram — how a worker's SIP datagrams get in and out: read and sent by
 * the io_uring ring, each one routed to the worker that owns its call.
 *
 * Design note.  Sofia-SIP parses and runs the transactions; the bytes are
 * ours.  A worker has two UDP sockets: the public port (shared by every
 * worker, SO_REUSEPORT) and its own port (in the Via and Contact of every
 * dialog it creates).
 *
 *   - In.  "ring" I/O: one multishot IORING_OP_RECVMSG per socket with a
 *     ring of provided buffers: the kernel fills a buffer per datagram and
 *     posts a completion, no system call per datagram.  "poll" I/O (the
 *     fallback, for a kernel without multishot recvmsg or provided buffer
 *     rings): a poll on the ring says readable, then recvmsg() in a loop.
 *   - Owner.  A request may belong to a call of another worker, or to a
 *     new call that another worker is to create: it reached the public
 *     port, where the kernel's hash chose the socket, or (rarely) the own
 *     port of a worker that is not its call's.  Its owner is:
 *       1. a To tag we made (NODE-WORKER-…, b2b_make_tag): that worker's
 *          dialog — in-dialog requests from either party, the ACK of a
 *          final answer;
 *       2. else its Call-ID in the call table (INVITE retransmissions,
 *          CANCEL): the call's owner;
 *       3. else a new call: the ready worker that rendezvous hashing of the
 *          Call-ID picks (shm/handover.h).
 *     A response with a From tag we made goes to the worker that tag names
 *     (the answer to a request sent from the public port, to a party
 *     behind NAT); any other response, or a request without a readable
 *     Call-ID, is served where it landed (Sofia answers it or drops it),
 *     the request counted.  Another
 *     owner's datagram is pushed, raw, with its source address and receive
 *     time, to that owner's queue (shm/handover.h); the owner reads it
 *     beside its own socket's datagrams, as if its public socket had
 *     received it (with several listen addresses, the public socket of the
 *     sender's family; the hand-in queue keeps the order of the hand-over
 *     queues, whose records are released in order).  Connections
 *     (transports "tcp") do not come here: Sofia
 *     reads them itself, and a call that arrives on one is the accepting
 *     worker's (docs/architecture.md, "Connections: TCP and TLS").
 *   - To Sofia.  Sofia's registrations for both sockets are detached from
 *     polling (uport_detach_fd); each loop turn the queued datagrams are
 *     given to Sofia one callback at a time (uport_wake_fd), the own port
 *     first.  Sofia's recvmsg()/recv()/ioctl(FIONREAD) on these two sockets
 *     are answered from the queue: this file defines those functions in the
 *     executable, as worker/reuseport.c defines bind(); on any other socket
 *     they are the system calls.
 *   - Out.  In ring I/O, Sofia's sendmsg()/sendto() on the two sockets copy
 *     the datagram into a send slot and queue an IORING_OP_SENDMSG: the
 *     loop submits them all with its next io_uring_enter.  A datagram larger
 *     than a slot, or with every slot in flight, goes out with the system
 *     call at once (after what is queued, so none overtakes).
 *   - Overload control (worker/b2b_overload.c) judges each new datagram of
 *     the public port before Sofia sees it (dgram_set_judge), with the time
 *     the kernel received it.
 */
#ifndef B2BUA_DGRAM_H
#define B2BUA_DGRAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "shm/handover.h"
#include "shm/shm.h"
#include "worker/uport.h"

typedef struct dgram dgram_t;

/* Listen addresses a worker reads (dual stack: one pair of sockets each;
 * b2bua/config.h's CONFIG_MAX_LISTEN). */
#define DGRAM_MAX_ADDRS 4

/* One datagram as it came from the network (or another worker). */
struct dgram_view {
	const char *data;
	size_t len;
	const struct sockaddr *from;
	socklen_t fromlen;
	uint64_t rx_ns;             /* CLOCK_REALTIME when the kernel received it; 0: unknown */
	int fd;                     /* the public socket it is given to Sofia on (answers
				     * to `from` leave from there: its family) */
};

/* Overload control's look at the next datagram of the public port: 1 when
 * it took care of it (answered or dropped it), 0 to give it to Sofia. */
typedef int dgram_judge_f(void *arg, const struct dgram_view *v);

/*
 * Set up the I/O of worker `self` on `port`.  `socket_io` is "auto" (ring
 * when the kernel has it, else poll), "ring" or "poll".  `node_id` is the
 * prefix of our tags.  Returns 0 and *out, or a negative errno.
 */
int dgram_create(uport_t *port, shm_t *shm, handover_t *ho, unsigned self,
		 const char *node_id, const char *socket_io, dgram_t **out);

/* Take over the sockets once Sofia has them, a public and an own one per
 * listen address (pub_fd[k], own_fd[k], k < n <= DGRAM_MAX_ADDRS; dual
 * stack: one pair per address): 0, or a negative errno (-ENOTSUP: "ring"
 * asked for and the kernel has not). */
int dgram_start(dgram_t *d, const int *pub_fd, const int *own_fd, unsigned n);

/* Start taking new calls (handover_set_ready) and say which I/O runs. */
void dgram_ready(dgram_t *d);

void dgram_set_judge(dgram_t *d, dgram_judge_f *fn, void *arg);

/* "ring" or "poll", once started. */
const char *dgram_io_name(const dgram_t *d);

/* How late the worker is reading (for overload control): how long the
 * oldest queued datagram of each socket has waited (ms) at `now_ns`, and
 * the bytes queued for Sofia. */
void dgram_load(const dgram_t *d, uint64_t now_ns, unsigned *pub_ms, unsigned *own_ms,
		size_t *queued);

/*
 * For worker/dgram_libc.c, the libc functions Sofia calls on these sockets:
 *   dgram_sock_of: the socket of ours that fd is, or NULL;
 *   dgram_take: recvmsg() from its queue (MSG_PEEK, MSG_TRUNC honoured;
 *     -1 with EAGAIN when empty);
 *   dgram_next_len: ioctl(FIONREAD): the next datagram's size, 0 if none;
 *   dgram_send: sendmsg(): queued on the ring, or the system call.
 */
struct dgram_sock;
struct dgram_sock *dgram_sock_of(int fd);
ssize_t dgram_take(struct dgram_sock *s, struct msghdr *mh, int flags);
int dgram_next_len(struct dgram_sock *s);
ssize_t dgram_send(struct dgram_sock *s, int fd, const struct msghdr *mh, int flags);

/* Shutting down: send what is queued now, and from now on every datagram
 * with the system call at once (the agent is about to close the sockets).
 * NULL is fine. */
void dgram_stop(dgram_t *d);

/* Stop taking new calls, and free what is ours (after the ring is gone). */
void dgram_destroy(dgram_t *d);

#endif
