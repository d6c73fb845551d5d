/*
 * dgram — a worker's SIP datagrams on the io_uring ring.  See dgram.h for
 * the design; this file is in four parts: receiving (ring or poll), routing
 * to the owner, the queues Sofia reads from (with the libc functions Sofia
 * calls), and sending.
 *
 * Ownership of buffers: a received datagram stays in its receive buffer
 * (or in the hand-over queue it came through) until Sofia has read it or it
 * was handed on or judged; only then does the buffer go back to the kernel
 * (ring) or the free list (poll), or the queue record get released.  The
 * queue Sofia reads (struct dgram_sock.fifo) holds pointers, not copies.
 */
#define _GNU_SOURCE
#include "worker/dgram.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "b2bua/log.h"
#include "worker/overload.h"

#define DGRAM_BUFS       256      /* receive buffers per socket (power of 2) */
#define DGRAM_NAME_LEN   ((unsigned)sizeof(struct sockaddr_storage))
#define DGRAM_CTL_LEN    ((unsigned)CMSG_SPACE(sizeof(struct timespec)))
#define DGRAM_PAYLOAD    65536u
#define DGRAM_BUF_SIZE   (sizeof(struct io_uring_recvmsg_out) + DGRAM_NAME_LEN + \
			  DGRAM_CTL_LEN + DGRAM_PAYLOAD)
#define DGRAM_FIFO       4096     /* datagrams queued for Sofia per socket (power of 2) */
#define DGRAM_POLL_BATCH 64       /* poll I/O: datagrams read per readable event */
#define DGRAM_OWN_BURST  64       /* datagrams given to Sofia per turn: own port */
#define DGRAM_PUB_BURST  32       /*   ... public port */
#define DGRAM_JUDGE_MAX  256      /* datagrams judged per turn at most */
#define DGRAM_SEND_SLOTS 1024
#define DGRAM_SEND_DATA  4032     /* bytes a send slot holds */
#define DGRAM_NO_BID     0xffffu
#define DGRAM_MAX_WORKERS 256

enum dgram_io { DGRAM_IO_RING = 0, DGRAM_IO_POLL };

/* One datagram waiting for Sofia. */
struct dgram_item {
	const char *data;
	uint32_t len;
	uint16_t bid;               /* its receive buffer, or DGRAM_NO_BID: handed in */
	uint16_t from_worker;       /* handed in: whose queue */
	uint64_t end;               /* handed in: handover_release() position */
	uint64_t rx_ns;
	const struct sockaddr *from;
	socklen_t fromlen;
};

struct dgram_sock {
	struct uport_event rx_ev;   /* multishot recvmsg (ring) or POLL_ADD (poll) */
	struct dgram *d;
	int fd;
	int family;                 /* of its address: AF_INET or AF_INET6 */
	int received;               /* ring: a datagram came through the multishot recvmsg */
	uint16_t bgid;
	struct io_uring_buf_ring *br;
	char *bufs;                 /* DGRAM_BUFS × DGRAM_BUF_SIZE */
	struct msghdr tmpl;         /* ring: layout of each buffer for recvmsg */
	uint16_t free_bids[DGRAM_BUFS];   /* poll: buffers not in use */
	unsigned n_free;
	unsigned fifo_head, fifo_tail;
	size_t queued;              /* bytes in the fifo */
	struct dgram_item fifo[DGRAM_FIFO];
};

struct dgram_send {
	struct uport_event ev;      /* first: the completion frees the slot */
	struct dgram *d;
	struct msghdr mh;
	struct iovec iov;
	struct sockaddr_storage to;
	int next_free;
	char data[DGRAM_SEND_DATA];
};

struct dgram {
	uport_t *port;
	shm_t *shm;
	handover_t *ho;
	unsigned self, workers;
	char node[64];
	size_t node_len;
	enum dgram_io io;
	int io_forced;              /* socket_io = "ring": no fallback */
	int started;
	int stopped;                /* dgram_stop: sends are system calls */
	struct dgram_sock pub[DGRAM_MAX_ADDRS];   /* per listen address (dual stack) */
	struct dgram_sock own[DGRAM_MAX_ADDRS];
	/* each own socket's address (dgram_from_sibling) */
	struct sockaddr_storage own_addr[DGRAM_MAX_ADDRS];
	unsigned n_addrs;
	/* Datagrams handed in by other workers, in the order of their queues
	 * (released in that order: handover_release is positional), each lent
	 * to the public socket of its family while Sofia reads it (lend). */
	struct dgram_sock hand;
	struct dgram_sock *lend;
	struct dgram_send *sends;
	int send_free;              /* first free slot, -1: none */
	uint64_t cursor[DGRAM_MAX_WORKERS];   /* per source worker: read position */
	uint8_t wake[DGRAM_MAX_WORKERS];      /* workers to wake at the end of the turn */
	int any_wake;
	int efd;                    /* our eventfd (shm/handover.h) */
	uint64_t efd_val;
	struct uport_event efd_ev;
	struct uport_event noop_ev; /* completions nobody waits for (eventfd writes) */
	dgram_judge_f *judge;
	void *judge_arg;
};

/* Warnings a peer can trigger at will: rate-limited (b2bua/log.h). */
static struct log_limit dgram_lim_handover, dgram_lim_fifo, dgram_lim_long, dgram_lim_recv,
	dgram_lim_poll, dgram_lim_send;

/* The one instance of this process, for worker/dgram_libc.c. */
static dgram_t *dgram_active;
static const uint64_t dgram_one = 1;

static void dgram_noop(struct uport_event *ev, int res)
{
	(void)ev;
	(void)res;
}

/* ------------------------------------------------------------ buffers */

static char *dgram_buf(struct dgram_sock *s, unsigned bid)
{
	return s->bufs + (size_t)bid * DGRAM_BUF_SIZE;
}

/* A receive buffer is free again: to the kernel's ring, or the free list. */
static void dgram_buf_return(struct dgram_sock *s, uint16_t bid)
{
	if (bid == DGRAM_NO_BID)
		return;
	if (s->d->io == DGRAM_IO_RING) {
		io_uring_buf_ring_add(s->br, dgram_buf(s, bid), DGRAM_BUF_SIZE, bid,
				      io_uring_buf_ring_mask(DGRAM_BUFS), 0);
		io_uring_buf_ring_advance(s->br, 1);
	} else {
		s->free_bids[s->n_free++] = bid;
	}
}

/* ------------------------------------------------------------ the queue Sofia reads */

static unsigned dgram_fifo_len(const struct dgram_sock *s)
{
	return s->fifo_tail - s->fifo_head;
}

static int dgram_fifo_push(struct dgram_sock *s, const struct dgram_item *it)
{
	if (dgram_fifo_len(s) == DGRAM_FIFO)
		return -ENOSPC;
	s->fifo[s->fifo_tail++ & (DGRAM_FIFO - 1)] = *it;
	s->queued += it->len;
	return 0;
}

static struct dgram_item *dgram_fifo_head(struct dgram_sock *s)
{
	return dgram_fifo_len(s) ? &s->fifo[s->fifo_head & (DGRAM_FIFO - 1)] : NULL;
}

/* The head is done with: its buffer or queue record goes back. */
static void dgram_fifo_pop(struct dgram_sock *s)
{
	struct dgram_item *it = dgram_fifo_head(s);

	if (it == NULL)
		return;
	s->queued -= it->len;
	if (it->bid == DGRAM_NO_BID)
		handover_release(s->d->ho, s->d->self, it->from_worker, it->end);
	else
		dgram_buf_return(s, it->bid);
	s->fifo_head++;
}

/* ------------------------------------------------------------ routing */

/* Our tag (NODE-WORKER-…) names worker *out of this node: 0, or -1. */
static int dgram_tag_worker(const dgram_t *d, const struct overload_span *tag, unsigned *out)
{
	unsigned w = 0;
	size_t i = d->node_len + 1;

	if (tag->len <= i || memcmp(tag->p, d->node, d->node_len) != 0 ||
	    tag->p[d->node_len] != '-')
		return -1;
	if (i >= tag->len || tag->p[i] < '0' || tag->p[i] > '9')
		return -1;
	while (i < tag->len && tag->p[i] >= '0' && tag->p[i] <= '9' && w < 100000)
		w = w * 10 + (unsigned)(tag->p[i++] - '0');
	if (i >= tag->len || tag->p[i] != '-' || w >= d->workers)
		return -1;
	*out = w;
	return 0;
}

/* Who owns this datagram of the public port (see dgram.h). */
static unsigned dgram_owner(dgram_t *d, const char *data, size_t len)
{
	struct overload_msg m;
	char call_id[SHM_CALLID_MAX];
	struct shm_call rec;
	uint32_t slot;
	unsigned w;

	if (len >= 8 && memcmp(data, "SIP/2.0 ", 8) == 0) {
		struct overload_span from_tag;

		/* A response to a request sent from our own port came to it; one
		 * to a request sent from the public port (to a subscriber behind
		 * NAT, b2b_leg_ident) names the sending worker in its From tag. */
		if (overload_read_response(data, len, &from_tag) == 0 &&
		    dgram_tag_worker(d, &from_tag, &w) == 0)
			return w;
		return d->self;
	}
	if (overload_read(data, len, &m) < 0) {
		/* Unreadable here: Sofia answers it (400) or drops it, once. */
		shm_counter_add(d->shm, d->self, SHM_CTR_UNROUTABLE, 1);
		return d->self;
	}
	if (m.to_tag.len && dgram_tag_worker(d, &m.to_tag, &w) == 0)
		return w;
	if (m.call_id.len < sizeof call_id) {
		memcpy(call_id, m.call_id.p, m.call_id.len);
		call_id[m.call_id.len] = '\0';
		if (shm_call_find(d->shm, call_id, &slot, &rec) == 0 && rec.worker < d->workers)
			return rec.worker;
	}
	return handover_owner(d->ho, m.call_id.p, m.call_id.len, d->self);
}

/*
 * A datagram on our own port from another worker's own port (our address,
 * a port of the workers' range): a call handed to us because we hold the
 * callee's connection (worker/b2b_flow.c), and its CANCEL.  It is ours
 * whatever its Call-ID says: the call table knows that Call-ID as the
 * sending worker's B-leg.
 */
static int dgram_from_sibling(const dgram_t *d, const struct dgram_sock *s,
			      const struct dgram_item *it)
{
	const struct sockaddr_storage *oa = &d->own_addr[s - d->own];
	const struct sockaddr_in *a = (const struct sockaddr_in *)it->from;
	const struct sockaddr_in *o = (const struct sockaddr_in *)oa;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)it->from;
	const struct sockaddr_in6 *o6 = (const struct sockaddr_in6 *)oa;
	unsigned port, own, base;

	if (it->from == NULL || it->from->sa_family != oa->ss_family)
		return 0;
	if (it->from->sa_family == AF_INET && it->fromlen >= sizeof *a &&
	    a->sin_addr.s_addr == o->sin_addr.s_addr) {
		port = ntohs(a->sin_port);
		own = ntohs(o->sin_port);
	} else if (it->from->sa_family == AF_INET6 && it->fromlen >= sizeof *a6 &&
		   memcmp(&a6->sin6_addr, &o6->sin6_addr, sizeof a6->sin6_addr) == 0) {
		port = ntohs(a6->sin6_port);
		own = ntohs(o6->sin6_port);
	} else {
		return 0;
	}
	base = own - d->self;
	return port != own && port >= base && port < base + d->workers;
}

/* A datagram received on socket s: to Sofia's queue, or to its owner. */
static void dgram_ingest(struct dgram_sock *s, struct dgram_item *it)
{
	dgram_t *d = s->d;
	int is_own = s >= d->own && s < d->own + d->n_addrs;
	unsigned owner = is_own && dgram_from_sibling(d, s, it) ? d->self
				   : dgram_owner(d, it->data, it->len);

	if (owner != d->self) {
		int ret = handover_push(d->ho, d->self, owner, it->data, it->len, it->from,
					it->fromlen, it->rx_ns);

		if (ret == 0) {
			shm_counter_add(d->shm, d->self, SHM_CTR_HANDED_OUT, 1);
			d->wake[owner] = 1;
			d->any_wake = 1;
		} else {
			shm_counter_add(d->shm, d->self, SHM_CTR_HANDOVER_DROPPED, 1);
			log_limited(&dgram_lim_handover, LOG_WARN, "hand-over to worker %u: %s: datagram dropped "
				    "(the sender retransmits)", owner, strerror(-ret));
		}
		dgram_buf_return(s, it->bid);
		return;
	}
	if (dgram_fifo_push(s, it) < 0) {
		shm_counter_add(d->shm, d->self, SHM_CTR_HANDOVER_DROPPED, 1);
		log_limited(&dgram_lim_fifo, LOG_WARN, "receive queue full: datagram dropped");
		dgram_buf_return(s, it->bid);
	}
}

/* The public socket a datagram from `from` is given to Sofia on: the first
 * of its address family (the one that received it at the other worker),
 * so that Sofia answers from a socket that can reach the sender. */
static struct dgram_sock *dgram_pub_for(dgram_t *d, const struct sockaddr *from)
{
	for (unsigned k = 0; from != NULL && k < d->n_addrs; k++)
		if (d->pub[k].family == from->sa_family)
			return &d->pub[k];
	return &d->pub[0];
}

/* Datagrams other workers handed to us: into the hand-in queue. */
static void dgram_take_handed_in(dgram_t *d)
{
	struct dgram_sock *s = &d->hand;

	for (unsigned from = 0; from < d->workers; from++) {
		struct handover_msg m;

		if (from == d->self)
			continue;
		while (dgram_fifo_len(s) < DGRAM_FIFO &&
		       handover_peek(d->ho, d->self, from, &d->cursor[from], &m) == 0) {
			/* The record stays in shared memory until Sofia read it. */
			struct dgram_item it = {
				.data = m.data, .len = (uint32_t)m.len, .bid = DGRAM_NO_BID,
				.from_worker = (uint16_t)from, .end = m.end, .rx_ns = m.rx_ns,
				.from = m.from, .fromlen = m.fromlen,
			};

			dgram_fifo_push(s, &it);   /* room checked above */
			shm_counter_add(d->shm, d->self, SHM_CTR_HANDED_IN, 1);
		}
	}
}

/* ------------------------------------------------------------ receiving */

/* The kernel's receive time stamp (SO_TIMESTAMPNS) of a message, or 0. */
static uint64_t dgram_stamp(struct cmsghdr *c)
{
	struct timespec ts;

	if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS)
		return 0;
	memcpy(&ts, CMSG_DATA(c), sizeof ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void dgram_arm_recv(struct dgram_sock *s);

/* Poll I/O for a socket that received with the ring until now: every
 * buffer that no queued datagram holds is free. */
static void dgram_sock_to_poll(struct dgram_sock *s)
{
	uint8_t held[DGRAM_BUFS] = { 0 };

	for (unsigned i = s->fifo_head; i != s->fifo_tail; i++) {
		const struct dgram_item *it = &s->fifo[i & (DGRAM_FIFO - 1)];

		if (it->bid != DGRAM_NO_BID)
			held[it->bid] = 1;
	}
	s->n_free = 0;
	for (unsigned bid = 0; bid < DGRAM_BUFS; bid++)
		if (!held[bid])
			s->free_bids[s->n_free++] = (uint16_t)bid;
}

/*
 * The kernel refused the multishot recvmsg itself (-EINVAL: before Linux
 * 6.0, provided buffer rings came in 5.19): socket I/O falls back to poll,
 * unless socket_io = "ring" asked for the ring, which then cannot read.
 */
static void dgram_fall_back(dgram_t *d, int err)
{
	if (d->io_forced) {
		log_limited(&dgram_lim_recv, LOG_ERROR, "socket_io = \"ring\": this kernel refuses "
			    "multishot recvmsg (%s): set socket_io = \"auto\"", strerror(-err));
		return;
	}
	log_warn("io_uring cannot receive with multishot recvmsg here (%s): "
		 "socket I/O falls back to poll", strerror(-err));
	d->io = DGRAM_IO_POLL;
	for (unsigned k = 0; k < d->n_addrs; k++) {
		dgram_sock_to_poll(&d->pub[k]);
		dgram_sock_to_poll(&d->own[k]);
	}
}

/* Ring I/O: one completion of the multishot recvmsg = one datagram. */
static void dgram_on_recv_ring(struct dgram_sock *s, int res)
{
	unsigned flags = s->rx_ev.flags;

	if (res >= 0 && (flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		char *buf = dgram_buf(s, bid);
		struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, res, &s->tmpl);
		struct dgram_item it = { .bid = bid };

		if (o == NULL || (o->flags & MSG_TRUNC) || o->namelen > DGRAM_NAME_LEN) {
			shm_counter_add(s->d->shm, s->d->self, SHM_CTR_UNROUTABLE, 1);
			log_limited(&dgram_lim_long, LOG_WARN, "a datagram longer than %u bytes on fd %d: dropped",
				    DGRAM_PAYLOAD, s->fd);
			dgram_buf_return(s, bid);
		} else {
			it.data = io_uring_recvmsg_payload(o, &s->tmpl);
			it.len = io_uring_recvmsg_payload_length(o, res, &s->tmpl);
			it.from = io_uring_recvmsg_name(o);
			it.fromlen = o->namelen;
			it.rx_ns = dgram_stamp(io_uring_recvmsg_cmsg_firsthdr(o, &s->tmpl));
			s->received = 1;
			dgram_ingest(s, &it);
		}
	} else if (res == -EINVAL && !s->received) {
		dgram_fall_back(s->d, res);
		return;
	} else if (res < 0 && res != -ENOBUFS && res != -ECANCELED && res != -ECONNREFUSED &&
		   res != -EHOSTUNREACH && res != -ENETUNREACH) {
		/* (An ICMP error of an earlier send is no news: SIP retransmits.) */
		log_limited(&dgram_lim_recv, LOG_WARN, "io_uring recvmsg on fd %d: %s", s->fd, strerror(-res));
	}
	/* Ended (out of buffers, an error): dgram_before_wait arms it again. */
}

/* Poll I/O: the socket is readable; read what the free buffers hold. */
static void dgram_on_readable(struct dgram_sock *s)
{
	for (unsigned n = 0; n < DGRAM_POLL_BATCH && s->n_free > 0; n++) {
		uint16_t bid = s->free_bids[--s->n_free];
		char *buf = dgram_buf(s, bid);
		struct sockaddr_storage *name = (struct sockaddr_storage *)buf;
		char *ctl = buf + DGRAM_NAME_LEN;
		struct iovec iov = { .iov_base = ctl + DGRAM_CTL_LEN, .iov_len = DGRAM_PAYLOAD };
		struct msghdr mh = {
			.msg_name = name, .msg_namelen = DGRAM_NAME_LEN,
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl, .msg_controllen = DGRAM_CTL_LEN,
		};
		ssize_t got = (ssize_t)syscall(SYS_recvmsg, s->fd, &mh, MSG_DONTWAIT);
		struct dgram_item it = { .bid = bid };

		if (got < 0) {
			s->free_bids[s->n_free++] = bid;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNREFUSED && errno != EHOSTUNREACH && errno != ENETUNREACH)
				log_limited(&dgram_lim_poll, LOG_WARN, "recvmsg on fd %d: %m", s->fd);
			return;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			s->free_bids[s->n_free++] = bid;
			continue;
		}
		it.data = iov.iov_base;
		it.len = (uint32_t)got;
		it.from = (const struct sockaddr *)name;
		it.fromlen = mh.msg_namelen;
		it.rx_ns = dgram_stamp(mh.msg_controllen ? CMSG_FIRSTHDR(&mh) : NULL);
		dgram_ingest(s, &it);
	}
}

static void dgram_on_rx(struct uport_event *ev, int res)
{
	struct dgram_sock *s = (struct dgram_sock *)ev;   /* rx_ev is the first member */

	if (s->d->io == DGRAM_IO_RING)
		dgram_on_recv_ring(s, res);
	else if (res > 0)
		dgram_on_readable(s);
}

/* (Re)start reading a socket when it is not being read and buffers are free. */
static void dgram_arm_recv(struct dgram_sock *s)
{
	struct io_uring_sqe *sqe;

	if (s->rx_ev.armed || s->fd < 0)
		return;
	if (s->d->io == DGRAM_IO_POLL) {
		if (s->n_free > 0)
			uport_poll_add(s->d->port, &s->rx_ev, s->fd, POLLIN);
		return;
	}
	sqe = uport_sqe_for(s->d->port, &s->rx_ev);
	if (sqe == NULL)
		return;
	io_uring_prep_recvmsg_multishot(sqe, s->fd, &s->tmpl, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = s->bgid;
}

/* ------------------------------------------------------------ the loop's hooks */

/* Give Sofia what is queued on an own port. */
static void dgram_serve_own(dgram_t *d, struct dgram_sock *s)
{
	for (unsigned n = 0; n < DGRAM_OWN_BURST && dgram_fifo_len(s); n++) {
		unsigned before = s->fifo_head;

		if (uport_wake_fd(d->port, s->fd) == -ENOENT || s->fifo_head == before)
			dgram_fifo_pop(s);   /* Sofia did not read it: never loop on it */
	}
}

/* Give Sofia what is queued on a public port, or (s = &d->hand) what
 * other workers handed in, each lent to the public socket of its family;
 * judged first.  *judged counts the judgements of this turn over every
 * queue.  0, or -EAGAIN when the judge had its share of this turn. */
static int dgram_serve_pub(dgram_t *d, struct dgram_sock *s, unsigned *judged)
{
	for (unsigned n = 0; n < DGRAM_PUB_BURST && dgram_fifo_len(s); ) {
		struct dgram_item *it = dgram_fifo_head(s);
		struct dgram_sock *to = s == &d->hand ? dgram_pub_for(d, it->from) : s;
		unsigned before = s->fifo_head;

		if (d->judge) {
			struct dgram_view v = { it->data, it->len, it->from, it->fromlen, it->rx_ns,
						to->fd };

			if ((*judged)++ == DGRAM_JUDGE_MAX)
				return -EAGAIN;   /* the rest next turn: timers run meanwhile */
			if (d->judge(d->judge_arg, &v)) {
				dgram_fifo_pop(s);
				continue;
			}
		}
		d->lend = s == &d->hand ? to : NULL;
		if (uport_wake_fd(d->port, to->fd) == -ENOENT || s->fifo_head == before)
			dgram_fifo_pop(s);
		d->lend = NULL;
		n++;
	}
	return 0;
}

/* Give Sofia what is queued, own ports first; judge the public ports'. */
static void dgram_serve(dgram_t *d)
{
	unsigned judged = 0;

	for (unsigned k = 0; k < d->n_addrs; k++)
		dgram_serve_own(d, &d->own[k]);
	for (unsigned k = 0; k < d->n_addrs; k++)
		if (dgram_serve_pub(d, &d->pub[k], &judged) < 0)
			return;
	dgram_serve_pub(d, &d->hand, &judged);
}

static int dgram_after_reap(void *arg)
{
	dgram_t *d = arg;

	dgram_take_handed_in(d);
	dgram_serve(d);
	return 0;
}

static void dgram_arm_efd(dgram_t *d)
{
	struct io_uring_sqe *sqe;

	if (d->efd_ev.armed || d->efd < 0)
		return;
	sqe = uport_sqe_for(d->port, &d->efd_ev);
	if (sqe != NULL)
		io_uring_prep_read(sqe, d->efd, &d->efd_val, sizeof d->efd_val, 0);
}

/* Start of a loop turn: wake the workers we handed datagrams to (one
 * eventfd write each, queued on the ring), re-arm what ended, and say
 * whether datagrams are already waiting for Sofia. */
static int dgram_before_wait(void *arg)
{
	dgram_t *d = arg;

	if (d->any_wake) {
		for (unsigned w = 0; w < d->workers; w++) {
			struct io_uring_sqe *sqe;

			if (!d->wake[w])
				continue;
			d->wake[w] = 0;
			sqe = uport_sqe_for(d->port, &d->noop_ev);
			if (sqe != NULL)
				io_uring_prep_write(sqe, handover_eventfd(d->ho, w), &dgram_one,
						    sizeof dgram_one, 0);
		}
		d->any_wake = 0;
	}
	for (unsigned k = 0; k < d->n_addrs; k++) {
		dgram_arm_recv(&d->pub[k]);
		dgram_arm_recv(&d->own[k]);
	}
	dgram_arm_efd(d);
	dgram_take_handed_in(d);
	if (dgram_fifo_len(&d->hand))
		return 1;
	for (unsigned k = 0; k < d->n_addrs; k++)
		if (dgram_fifo_len(&d->pub[k]) || dgram_fifo_len(&d->own[k]))
			return 1;
	return 0;
}

/* ------------------------------------------------------------ what Sofia reads */

struct dgram_sock *dgram_sock_of(int fd)
{
	dgram_t *d = dgram_active;

	if (d == NULL || fd < 0 || !d->started)
		return NULL;
	for (unsigned k = 0; k < d->n_addrs; k++) {
		if (fd == d->pub[k].fd)
			return &d->pub[k];
		if (fd == d->own[k].fd)
			return &d->own[k];
	}
	return NULL;
}

/* recvmsg() on one of our sockets: the head of its queue. */
ssize_t dgram_take(struct dgram_sock *s, struct msghdr *mh, int flags)
{
	struct dgram_item *it;
	size_t copied = 0;

	if (s == s->d->lend) {
		/* A handed-in datagram lent to this socket: read once, then the
		 * socket's own queue again. */
		if (!(flags & MSG_PEEK))
			s->d->lend = NULL;
		s = &s->d->hand;
	}
	it = dgram_fifo_head(s);

	if (it == NULL) {
		errno = EAGAIN;
		return -1;
	}
	for (size_t i = 0; i < (size_t)mh->msg_iovlen && copied < it->len; i++) {
		size_t n = mh->msg_iov[i].iov_len;

		if (n > it->len - copied)
			n = it->len - copied;
		memcpy(mh->msg_iov[i].iov_base, it->data + copied, n);
		copied += n;
	}
	if (mh->msg_name != NULL) {
		socklen_t n = mh->msg_namelen < it->fromlen ? mh->msg_namelen : it->fromlen;

		memcpy(mh->msg_name, it->from, n);
	}
	mh->msg_namelen = it->fromlen;
	mh->msg_controllen = 0;
	mh->msg_flags = copied < it->len ? MSG_TRUNC : 0;
	if (!(flags & MSG_PEEK))
		dgram_fifo_pop(s);
	return (flags & MSG_TRUNC) ? (ssize_t)it->len : (ssize_t)copied;
}

int dgram_next_len(struct dgram_sock *s)
{
	struct dgram_item *it = dgram_fifo_head(s == s->d->lend ? &s->d->hand : s);

	return it ? (int)it->len : 0;
}

/* ------------------------------------------------------------ sending */

static void dgram_on_sent(struct uport_event *ev, int res)
{
	struct dgram_send *slot = (struct dgram_send *)ev;
	dgram_t *d = slot->d;

	/* An ICMP error of an earlier datagram to that peer is no news. */
	if (res < 0 && res != -ECONNREFUSED && res != -EHOSTUNREACH && res != -ENETUNREACH)
		log_limited(&dgram_lim_send, LOG_WARN, "sendmsg to a peer failed: %s", strerror(-res));
	slot->next_free = d->send_free;
	d->send_free = (int)(slot - d->sends);
}

/* Ring I/O: copy the datagram into a send slot and queue its SENDMSG.
 * -1 when it must go out with the system call (too large, no slot). */
static ssize_t dgram_queue_send(dgram_t *d, int fd, const struct msghdr *mh)
{
	struct dgram_send *slot;
	struct io_uring_sqe *sqe;
	size_t len = 0;

	for (size_t i = 0; i < (size_t)mh->msg_iovlen; i++)
		len += mh->msg_iov[i].iov_len;
	if (len > DGRAM_SEND_DATA || d->send_free < 0 || mh->msg_namelen > sizeof slot->to ||
	    mh->msg_controllen != 0)
		return -1;
	slot = &d->sends[d->send_free];
	sqe = uport_sqe_for(d->port, &slot->ev);
	if (sqe == NULL)
		return -1;
	d->send_free = slot->next_free;
	len = 0;
	for (size_t i = 0; i < (size_t)mh->msg_iovlen; i++) {
		memcpy(slot->data + len, mh->msg_iov[i].iov_base, mh->msg_iov[i].iov_len);
		len += mh->msg_iov[i].iov_len;
	}
	memcpy(&slot->to, mh->msg_name, mh->msg_namelen);
	slot->iov = (struct iovec){ .iov_base = slot->data, .iov_len = len };
	slot->mh = (struct msghdr){ .msg_name = mh->msg_name ? &slot->to : NULL,
				    .msg_namelen = mh->msg_namelen,
				    .msg_iov = &slot->iov, .msg_iovlen = 1 };
	io_uring_prep_sendmsg(sqe, fd, &slot->mh, 0);
	return (ssize_t)len;
}

ssize_t dgram_send(struct dgram_sock *s, int fd, const struct msghdr *mh, int flags)
{
	ssize_t n;

	if (s->d->io == DGRAM_IO_RING && !s->d->stopped) {
		n = dgram_queue_send(s->d, fd, mh);
		if (n >= 0)
			return n;
		uport_flush(s->d->port);   /* what is queued goes first */
	}
	return (ssize_t)syscall(SYS_sendmsg, fd, mh, flags);
}

/* ------------------------------------------------------------ life cycle */

int dgram_create(uport_t *port, shm_t *shm, handover_t *ho, unsigned self,
		 const char *node_id, const char *socket_io, dgram_t **out)
{
	dgram_t *d;

	if (handover_workers(ho) > DGRAM_MAX_WORKERS || self >= handover_workers(ho))
		return -EINVAL;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return -ENOMEM;
	d->port = port;
	d->shm = shm;
	d->ho = ho;
	d->self = self;
	d->workers = handover_workers(ho);
	snprintf(d->node, sizeof d->node, "%s", node_id);
	d->node_len = strlen(d->node);
	d->io = strcmp(socket_io, "poll") == 0 ? DGRAM_IO_POLL : DGRAM_IO_RING;
	d->io_forced = strcmp(socket_io, "ring") == 0;
	for (unsigned k = 0; k < DGRAM_MAX_ADDRS; k++)
		d->pub[k].fd = d->own[k].fd = -1;
	d->hand.fd = d->efd = -1;
	d->hand.d = d;
	d->efd_ev.cb = dgram_noop;   /* woken: dgram_after_reap reads the queues */
	d->noop_ev.cb = dgram_noop;
	*out = d;
	return 0;
}

/* Receive buffers for one socket, and in ring I/O their provided-buffer ring. */
static int dgram_sock_init(dgram_t *d, struct dgram_sock *s, int fd, uint16_t bgid)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	int one = 1;

	s->d = d;
	s->fd = fd;
	s->family = getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 ? ss.ss_family : AF_UNSPEC;
	s->bgid = bgid;
	s->rx_ev.cb = dgram_on_rx;
	/* Untouched pages cost nothing: only what datagrams fill is resident. */
	s->bufs = mmap(NULL, (size_t)DGRAM_BUFS * DGRAM_BUF_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->bufs == MAP_FAILED) {
		s->bufs = NULL;
		return -ENOMEM;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
		log_warn("SO_TIMESTAMPNS on fd %d: %m (queue delays read as 0)", fd);
	s->tmpl = (struct msghdr){ .msg_namelen = DGRAM_NAME_LEN, .msg_controllen = DGRAM_CTL_LEN };
	for (unsigned i = 0; i < DGRAM_BUFS; i++)
		s->free_bids[i] = (uint16_t)(DGRAM_BUFS - 1 - i);
	s->n_free = DGRAM_BUFS;
	return 0;
}

/* Ring I/O for one socket: register its buffer ring (-errno when the kernel cannot). */
static int dgram_sock_ring(struct dgram_sock *s)
{
	struct io_uring_buf_reg reg;
	size_t size = DGRAM_BUFS * sizeof(struct io_uring_buf);
	void *br = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret;

	if (br == MAP_FAILED)
		return -ENOMEM;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (unsigned long)br;
	reg.ring_entries = DGRAM_BUFS;
	reg.bgid = s->bgid;
	ret = io_uring_register_buf_ring(uport_ring(s->d->port), &reg, 0);
	if (ret < 0) {
		munmap(br, size);
		return ret;
	}
	s->br = br;
	io_uring_buf_ring_init(s->br);
	for (unsigned i = 0; i < DGRAM_BUFS; i++)
		io_uring_buf_ring_add(s->br, dgram_buf(s, i), DGRAM_BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(DGRAM_BUFS), (int)i);
	io_uring_buf_ring_advance(s->br, DGRAM_BUFS);
	return 0;
}

int dgram_start(dgram_t *d, const int *pub_fd, const int *own_fd, unsigned n)
{
	int ret = n >= 1 && n <= DGRAM_MAX_ADDRS ? 0 : -EINVAL;

	/* Buffer group ids: 1, 2 for the first address, 3, 4 for the next... */
	for (unsigned k = 0; ret == 0 && k < n; k++) {
		socklen_t alen = sizeof d->own_addr[k];

		if (getsockname(own_fd[k], (struct sockaddr *)&d->own_addr[k], &alen) < 0)
			d->own_addr[k].ss_family = AF_UNSPEC;   /* no sibling is recognised */
		ret = dgram_sock_init(d, &d->pub[k], pub_fd[k], (uint16_t)(1 + 2 * k));
		if (ret == 0)
			ret = dgram_sock_init(d, &d->own[k], own_fd[k], (uint16_t)(2 + 2 * k));
	}
	if (ret < 0)
		return ret;
	d->n_addrs = n;
	if (d->io == DGRAM_IO_RING) {
		for (unsigned k = 0; ret == 0 && k < n; k++) {
			ret = dgram_sock_ring(&d->pub[k]);
			if (ret == 0)
				ret = dgram_sock_ring(&d->own[k]);
		}
		if (ret < 0) {
			if (d->io_forced) {
				log_error("socket_io = \"ring\": this kernel cannot (%s)",
					  strerror(-ret));
				return -ENOTSUP;
			}
			log_warn("io_uring cannot receive into provided buffers here (%s): "
				 "socket I/O falls back to poll", strerror(-ret));
			d->io = DGRAM_IO_POLL;
		}
	}
	if (d->io == DGRAM_IO_RING) {
		d->sends = calloc(DGRAM_SEND_SLOTS, sizeof *d->sends);
		if (d->sends == NULL)
			return -ENOMEM;
		for (int i = 0; i < DGRAM_SEND_SLOTS; i++) {
			d->sends[i].ev.cb = dgram_on_sent;
			d->sends[i].d = d;
			d->sends[i].next_free = i + 1 < DGRAM_SEND_SLOTS ? i + 1 : -1;
		}
		d->send_free = 0;
	}
	for (unsigned k = 0; k < n; k++)
		if ((ret = uport_detach_fd(d->port, pub_fd[k])) < 0 ||
		    (ret = uport_detach_fd(d->port, own_fd[k])) < 0)
			return ret;
	d->efd = handover_eventfd(d->ho, d->self);
	for (unsigned w = 0; w < d->workers; w++)
		d->cursor[w] = handover_cursor(d->ho, d->self, w);
	dgram_active = d;
	d->started = 1;
	uport_set_hooks(d->port, dgram_before_wait, dgram_after_reap, d);
	return 0;
}

void dgram_ready(dgram_t *d)
{
	handover_set_ready(d->ho, d->self, 1);
}

void dgram_set_judge(dgram_t *d, dgram_judge_f *fn, void *arg)
{
	d->judge = fn;
	d->judge_arg = arg;
}

const char *dgram_io_name(const dgram_t *d)
{
	return d->io == DGRAM_IO_RING ? "ring" : "poll";
}

/* How long the head of s's queue has waited at now_ns, ms (0: empty). */
static unsigned dgram_head_age(const struct dgram_sock *s, uint64_t now_ns)
{
	const struct dgram_item *it = dgram_fifo_len(s)
		? &s->fifo[s->fifo_head & (DGRAM_FIFO - 1)] : NULL;

	return it && it->rx_ns && now_ns > it->rx_ns
	       ? (unsigned)((now_ns - it->rx_ns) / 1000000u) : 0;
}

/* With several addresses, the longest wait of each kind of port. */
void dgram_load(const dgram_t *d, uint64_t now_ns, unsigned *pub_ms, unsigned *own_ms,
		size_t *queued)
{
	*pub_ms = dgram_head_age(&d->hand, now_ns);
	*own_ms = 0;
	*queued = d->hand.queued;
	for (unsigned k = 0; k < d->n_addrs; k++) {
		unsigned p = dgram_head_age(&d->pub[k], now_ns);
		unsigned o = dgram_head_age(&d->own[k], now_ns);

		*pub_ms = p > *pub_ms ? p : *pub_ms;
		*own_ms = o > *own_ms ? o : *own_ms;
		*queued += d->pub[k].queued + d->own[k].queued;
	}
}

void dgram_stop(dgram_t *d)
{
	if (d == NULL)
		return;
	handover_set_ready(d->ho, d->self, 0);
	uport_flush(d->port);
	d->stopped = 1;
}

void dgram_destroy(dgram_t *d)
{
	if (d == NULL)
		return;
	handover_set_ready(d->ho, d->self, 0);
	if (dgram_active == d)
		dgram_active = NULL;
	/* The buffers and send slots stay: the kernel may still complete a
	 * request into them until the process exits, which follows. */
	d->started = 0;
}
