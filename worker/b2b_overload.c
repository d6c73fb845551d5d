/*
 * b2b_overload — overload control of one worker: when it falls behind, new
 * INVITEs are refused early and cheaply, and the calls it already has keep
 * priority.
 *
 * Design note.  A worker that takes more new calls than it can serve makes
 * every call late: datagrams wait in the socket for seconds, callers
 * retransmit, INVITEs time out (408) after the work was done, and BYEs of
 * answered calls are lost in the queue.  So a new INVITE is refused before
 * it costs anything, at the socket:
 *
 *   - Where.  Established calls arrive on the worker's own port (every
 *     dialog carries it in Via and Contact); new INVITEs on the public port.
 *     The own port is read first and up to B2B_OVERLOAD_OWN_BURST datagrams
 *     per loop turn; the public port once per turn, behind a gate
 *     (uport_set_reader).  While the worker is overloaded the gate reads
 *     the public socket itself: a new INVITE (no To tag) is answered 503
 *     with Retry-After (overload_retry_after) straight from the datagram,
 *     statelessly (worker/overload.c: no Sofia parse, no transaction, no
 *     memory), and the ACK of such a 503 is dropped.  Everything else
 *     (requests with a To tag, CANCEL, REGISTER, responses) goes to Sofia
 *     as always.
 *   - When.  Two signals, thresholds in the configuration:
 *       queue delay (overload_queue_delay_ms): how long the datagram at the
 *         head of either SIP socket has waited, from the kernel's receive
 *         time stamp (SO_TIMESTAMPNS, read with MSG_PEEK, at most once per
 *         B2B_OVERLOAD_SAMPLE_US and on every datagram the gate looks at).
 *         It is the loop's lag as a caller feels it: a datagram waits
 *         exactly as long as the loop is late to read it, whatever made it
 *         late (SIP work, Redis replies, timers).  It counts only while the
 *         sockets hold a standing queue (B2B_OVERLOAD_MIN_BACKLOG, SO_MEMINFO):
 *         a worker the scheduler paused for 30 ms on a busy host finds a
 *         few old datagrams, serves them in a millisecond, and is no
 *         overload.  Shedding starts when the excess has lasted
 *         B2B_OVERLOAD_ENTER_US and stops B2B_OVERLOAD_LEAVE_US after it
 *         ended; while it lasts, a new INVITE is shed only when the head of
 *         the queue is older than the limit, so the worker keeps admitting
 *         what it can serve in time;
 *       calls in setup (overload_setup_calls): calls not answered yet, i.e.
 *         INVITE transactions in progress on both legs; bounds the work and
 *         memory a slow callee or a slow Redis can pile up.
 *     Shedding stops as soon as the head of the queue is fresh again, so
 *     the worker admits what it can serve in time and refuses the rest.
 *   - Accounting.  Shed INVITEs are counted (SHM_CTR_OVERLOAD_REFUSED,
 *     `b2bua-cli show stats`), not given a CDR each: at the rates where
 *     shedding happens a record per attempt would be a second flood on
 *     Redis.  A warning says how many, at most every 10 s.
 * A retransmission of an INVITE that is already a call (its Call-ID is in
 * the call table: the worker answered 100 Trying, but late) goes to Sofia,
 * never a 503: the caller would see a 503 and then its call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <time.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/overload.h"

/* The queue delays are measured at most this often (µs) outside the gate. */
#define B2B_OVERLOAD_SAMPLE_US 1000
/* The queue delay counts only with at least this much queued (bytes, as
 * the kernel accounts them: about 2 KiB per small datagram): a scheduling
 * hiccup delays a few datagrams, an overload leaves a standing queue. */
#define B2B_OVERLOAD_MIN_BACKLOG 65536
/* Shedding by delay starts after this long of excess (µs), and stops after
 * this long without (µs): a short excess is a burst the queue absorbs. */
#define B2B_OVERLOAD_ENTER_US 10000
#define B2B_OVERLOAD_LEAVE_US 1000000
/* Datagrams the gate handles per call, so other sockets and timers run. */
#define B2B_OVERLOAD_BATCH 64
/* Datagrams read from the own port per loop turn while it has some. */
#define B2B_OVERLOAD_OWN_BURST 16
/* The "INVITEs refused" warning, at most this often (ms). */
#define B2B_OVERLOAD_LOG_MS 10000
/* A datagram larger than this is not ours to judge (Sofia reads it). */
#define B2B_OVERLOAD_DGRAM_MAX 65536

struct b2b_overload {
	b2b_t *b2b;
	int pub_fd;                        /* the public port's socket */
	int own_fd;                        /* this worker's own port's socket */
	char tag[OVERLOAD_TAG_MAX];        /* To tag of our 503s */
	uint64_t sampled_us;               /* last measurement of both queue delays */
	unsigned pub_delay_ms;             /* head of the public socket: how long it waited */
	unsigned own_delay_ms;             /* head of the own socket */
	unsigned backlog;                  /* bytes queued in both sockets (SO_MEMINFO) */
	uint64_t excess_since_us;          /* the delay is above its limit since; 0: it is not */
	uint64_t calm_since_us;            /* ... below it since; 0: it is not */
	int shedding;                      /* the delay says overloaded (b2b_overload_assess) */
	uint64_t logged_ms;                /* last warning */
	unsigned long long refused;        /* INVITEs shed since that warning */
	char in[B2B_OVERLOAD_DGRAM_MAX];   /* the datagram being judged */
	char out[B2B_OVERLOAD_DGRAM_MAX];  /* its 503 */
};

static uint64_t b2b_overload_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);   /* the clock of the kernel's time stamps */
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* How long the datagram that was received at `stamp` has waited (ms). */
static unsigned b2b_overload_age(const struct msghdr *mh, uint64_t now_us)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
		struct timespec ts;
		uint64_t at;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS)
			continue;
		memcpy(&ts, CMSG_DATA(c), sizeof ts);
		at = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
		return now_us > at ? (unsigned)((now_us - at) / 1000u) : 0;
	}
	return 0;
}

/*
 * Peek at the datagram at the head of fd: its length (what MSG_TRUNC
 * says, even when longer than `size`), how long it waited, and who sent it.
 * -EAGAIN when the socket is empty.
 */
static ssize_t b2b_overload_peek(int fd, char *buf, size_t size, unsigned *age_ms,
				 struct sockaddr_storage *from, socklen_t *fromlen)
{
	char cbuf[CMSG_SPACE(sizeof(struct timespec)) + 64];
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr mh = {
		.msg_name = from, .msg_namelen = from ? sizeof *from : 0,
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof cbuf,
	};
	ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);

	if (n < 0)
		return -errno;
	*age_ms = b2b_overload_age(&mh, b2b_overload_now_us());
	if (fromlen)
		*fromlen = mh.msg_namelen;
	return n;
}

/* How long the head of fd has waited (ms); 0 when the socket is empty. */
static unsigned b2b_overload_head_age(int fd)
{
	char byte;
	unsigned age = 0;

	if (b2b_overload_peek(fd, &byte, 1, &age, NULL, NULL) < 0)
		return 0;
	return age;
}

/* Bytes queued in fd's receive buffer, as the kernel accounts them. */
static unsigned b2b_overload_queued(int fd)
{
	uint32_t mem[SK_MEMINFO_VARS];
	socklen_t len = sizeof mem;

	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0 ||
	    len <= SK_MEMINFO_RMEM_ALLOC * sizeof mem[0])
		return B2B_OVERLOAD_MIN_BACKLOG;   /* unknown: let the delay decide */
	return mem[SK_MEMINFO_RMEM_ALLOC];
}

/* The worst head-of-line delay of the two sockets (ms). */
static unsigned b2b_overload_delay(const struct b2b_overload *o)
{
	return o->pub_delay_ms > o->own_delay_ms ? o->pub_delay_ms : o->own_delay_ms;
}

/*
 * After a measurement: does the queue delay say "overloaded"?  Shedding by
 * delay starts once the delay has exceeded overload_queue_delay_ms over a
 * standing queue for B2B_OVERLOAD_ENTER_US, and stops after
 * B2B_OVERLOAD_LEAVE_US without such an excess.
 */
static void b2b_overload_assess(struct b2b_overload *o, uint64_t now)
{
	int limit = o->b2b->cfg->overload_queue_delay_ms;
	int excess = limit > 0 && b2b_overload_delay(o) > (unsigned)limit &&
		     o->backlog >= B2B_OVERLOAD_MIN_BACKLOG;

	if (excess) {
		o->calm_since_us = 0;
		if (o->excess_since_us == 0)
			o->excess_since_us = now;
		if (now - o->excess_since_us >= B2B_OVERLOAD_ENTER_US)
			o->shedding = 1;
		return;
	}
	o->excess_since_us = 0;
	if (o->calm_since_us == 0)
		o->calm_since_us = now;
	if (now - o->calm_since_us >= B2B_OVERLOAD_LEAVE_US)
		o->shedding = 0;
}

/* Is the next new INVITE to be shed?  While shedding by delay, only those
 * that find an old head of the queue: the worker admits what it can serve
 * in time.  The calls in setup count at once. */
static int b2b_overload_active(const struct b2b_overload *o)
{
	const struct config *cfg = o->b2b->cfg;

	if (o->shedding && b2b_overload_delay(o) > (unsigned)cfg->overload_queue_delay_ms)
		return 1;
	return cfg->overload_setup_calls > 0 &&
	       o->b2b->setup >= (unsigned)cfg->overload_setup_calls;
}

/* One INVITE shed: counted, and said at most every B2B_OVERLOAD_LOG_MS. */
static void b2b_overload_count(struct b2b_overload *o)
{
	b2b_t *b2b = o->b2b;
	uint64_t now = shm_now_ms();

	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_OVERLOAD_REFUSED, 1);
	o->refused++;
	if (now - o->logged_ms < B2B_OVERLOAD_LOG_MS)
		return;
	log_warn("overload: %llu new INVITEs refused with 503 in the last %llu s "
		 "(queue delay %u ms, own port %u ms; %u calls in setup)", o->refused,
		 (unsigned long long)(o->logged_ms ? (now - o->logged_ms) / 1000 : 0),
		 o->pub_delay_ms, o->own_delay_ms, b2b->setup);
	o->logged_ms = now;
	o->refused = 0;
}

/* Is this INVITE's Call-ID already a call (a retransmission)? */
static int b2b_overload_is_call(const struct b2b_overload *o, const struct overload_msg *m)
{
	char call_id[SHM_CALLID_MAX];
	struct shm_call rec;
	uint32_t slot;

	if (m->call_id.len >= sizeof call_id)
		return 0;   /* too long for the table: never a call there */
	memcpy(call_id, m->call_id.p, m->call_id.len);
	call_id[m->call_id.len] = '\0';
	return shm_call_find(o->b2b->shm, call_id, &slot, &rec) == 0;
}

/* Take the datagram just peeked off the socket; answer it when it is a new INVITE. */
static void b2b_overload_shed(struct b2b_overload *o, int fd, enum overload_kind kind,
			      const struct overload_msg *m,
			      const struct sockaddr_storage *from, socklen_t fromlen)
{
	int n;

	if (recv(fd, o->in, 0, MSG_DONTWAIT | MSG_TRUNC) < 0)
		return;
	if (kind != OVERLOAD_NEW_INVITE)
		return;   /* the ACK of one of our 503s: nothing to do */
	n = overload_answer(m, o->tag, (unsigned)o->b2b->cfg->overload_retry_after, o->out,
			    sizeof o->out);
	if (n > 0)
		(void)sendto(fd, o->out, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)from,
			     fromlen);   /* lost like any datagram: the caller retransmits */
	b2b_overload_count(o);
}

/* uport_gate_f on the public socket: see the design note. */
static int b2b_overload_gate(void *arg, int fd)
{
	struct b2b_overload *o = arg;
	uint64_t now = b2b_overload_now_us();

	if (now - o->sampled_us >= B2B_OVERLOAD_SAMPLE_US) {
		o->pub_delay_ms = b2b_overload_head_age(o->pub_fd);
		o->own_delay_ms = b2b_overload_head_age(o->own_fd);
		o->backlog = b2b_overload_queued(o->pub_fd) + b2b_overload_queued(o->own_fd);
		o->sampled_us = now;
		b2b_overload_assess(o, now);
	}
	if (!b2b_overload_active(o))
		return 0;
	for (unsigned i = 0; i < B2B_OVERLOAD_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = 0;
		struct overload_msg m;
		enum overload_kind kind;
		ssize_t len = b2b_overload_peek(fd, o->in, sizeof o->in, &o->pub_delay_ms,
						&from, &fromlen);

		if (len < 0)
			return 1;   /* empty (or an error Sofia will see and report) */
		if (!b2b_overload_active(o) || (size_t)len > sizeof o->in)
			return 0;
		kind = overload_parse(o->in, (size_t)len, o->tag, &m);
		if (kind == OVERLOAD_OTHER ||
		    (kind == OVERLOAD_NEW_INVITE && b2b_overload_is_call(o, &m)))
			return 0;
		b2b_overload_shed(o, fd, kind, &m, &from, fromlen);
	}
	return 1;
}

/* ------------------------------------------------------------ public */

int b2b_overload_start(b2b_t *b2b, uport_t *port)
{
	const struct config *cfg = b2b->cfg;
	int own = cfg->worker_port_base + (int)b2b->worker;
	int one = 1;
	struct b2b_overload *o;
	int ret;

	o = calloc(1, sizeof *o);
	if (o == NULL)
		return -ENOMEM;
	o->b2b = b2b;
	o->pub_fd = uport_find_udp_fd(port, cfg->sip_port);
	o->own_fd = uport_find_udp_fd(port, own);
	if (o->pub_fd < 0 || o->own_fd < 0) {
		log_error("overload control: the SIP sockets (ports %d and %d) are not on the loop",
			  cfg->sip_port, own);
		free(o);
		return -ENOENT;
	}
	snprintf(o->tag, sizeof o->tag, "ovl%016llx", (unsigned long long)b2b->rng);
	if (setsockopt(o->pub_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0 ||
	    setsockopt(o->own_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
		log_warn("overload control: SO_TIMESTAMPNS: %m (queue delays read as 0)");
	ret = uport_set_reader(port, o->own_fd, B2B_OVERLOAD_OWN_BURST, NULL, NULL);
	if (ret == 0)
		ret = uport_set_reader(port, o->pub_fd, 1, b2b_overload_gate, o);
	if (ret < 0) {
		free(o);
		return ret;
	}
	b2b->overload = o;
	return 0;
}

void b2b_overload_free(b2b_t *b2b)
{
	free(b2b->overload);
	b2b->overload = NULL;
}
