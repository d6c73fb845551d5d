/*
 * b2b_overload — overload control of one worker: when it falls behind, new
 * INVITEs are refused early and cheaply, and the calls it already has keep
 * priority.
 *
 * Design note.  A worker that takes more new calls than it can serve makes
 * every call late: datagrams wait in the socket for seconds, callers
 * retransmit, INVITEs time out (408) after the work was done, and BYEs of
 * answered calls are lost in the queue.  So a new INVITE is refused before
 * it costs anything, before Sofia reads it:
 *
 *   - Where.  Established calls arrive on the worker's own port (every
 *     dialog carries it in Via and Contact); new INVITEs on the public port.
 *     worker/dgram.c gives Sofia the own port's datagrams first each loop
 *     turn, and shows each datagram of the public port to this file's judge
 *     before Sofia sees it (dgram_set_judge).  While the worker is
 *     overloaded the judge answers a new INVITE (no To tag) 503 with
 *     Retry-After (overload_retry_after) straight from the datagram,
 *     statelessly (worker/overload.c: no Sofia parse, no transaction, no
 *     memory), and drops the ACK of such a 503.  Everything else (requests
 *     with a To tag, CANCEL, REGISTER, responses) goes to Sofia as always.
 *   - When.  Two signals, thresholds in the configuration:
 *       queue delay (overload_queue_delay_ms): how long the oldest datagram
 *         queued for Sofia on either SIP socket has waited, from the
 *         kernel's receive time stamp (SO_TIMESTAMPNS, kept by
 *         worker/dgram.c), at most once per B2B_OVERLOAD_SAMPLE_US and on
 *         every datagram the judge looks at.
 *         It is the loop's lag as a caller feels it: a datagram waits
 *         exactly as long as the loop is late to read it, whatever made it
 *         late (SIP work, Redis replies, timers).  It counts only while a
 *         standing queue waits for Sofia (B2B_OVERLOAD_MIN_BACKLOG bytes):
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
#include <sys/socket.h>
#include <time.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/dgram.h"
#include "worker/overload.h"

/* Both queue delays are sampled at most this often (µs); the public one
 * is also read from every datagram the judge sees. */
#define B2B_OVERLOAD_SAMPLE_US 1000
/* The queue delay counts only with at least this much queued for Sofia
 * (bytes of datagrams: about 32 calls' worth): a scheduling hiccup delays
 * a few datagrams, an overload leaves a standing queue. */
#define B2B_OVERLOAD_MIN_BACKLOG 32768
/* Shedding by delay starts after this long of excess (µs), and stops after
 * this long without (µs): a short excess is a burst the queue absorbs. */
#define B2B_OVERLOAD_ENTER_US 10000
#define B2B_OVERLOAD_LEAVE_US 1000000
/* The "INVITEs refused" warning, at most this often (ms). */
#define B2B_OVERLOAD_LOG_MS 10000
/* Our 503s are small: Vias, From, To, Call-ID, CSeq of the INVITE. */
#define B2B_OVERLOAD_ANSWER_MAX 8192

struct b2b_overload {
	b2b_t *b2b;
	dgram_t *dgram;                    /* the worker's datagram queues */
	int pub_fd;                        /* the public port's socket (our 503s go out there) */
	char tag[OVERLOAD_TAG_MAX];        /* To tag of our 503s */
	uint64_t sampled_us;               /* last measurement of both queue delays */
	unsigned pub_delay_ms;             /* head of the public socket: how long it waited */
	unsigned own_delay_ms;             /* head of the own socket */
	size_t backlog;                    /* bytes queued for Sofia on both sockets */
	uint64_t excess_since_us;          /* the delay is above its limit since; 0: it is not */
	uint64_t calm_since_us;            /* ... below it since; 0: it is not */
	int shedding;                      /* the delay says overloaded (b2b_overload_assess) */
	uint64_t logged_ms;                /* last warning */
	unsigned long long refused;        /* INVITEs shed since that warning */
	char out[B2B_OVERLOAD_ANSWER_MAX]; /* a 503 */
};

static uint64_t b2b_overload_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);   /* the clock of the kernel's time stamps */
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
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

/* dgram_judge_f on the public socket: see the design note. */
static int b2b_overload_judge(void *arg, const struct dgram_view *v)
{
	struct b2b_overload *o = arg;
	uint64_t now = b2b_overload_now_us();
	struct overload_msg m;
	enum overload_kind kind;
	int n;

	if (now - o->sampled_us >= B2B_OVERLOAD_SAMPLE_US) {
		dgram_load(o->dgram, now * 1000u, &o->pub_delay_ms, &o->own_delay_ms,
			   &o->backlog);
		o->sampled_us = now;
		b2b_overload_assess(o, now);
	}
	/* This datagram is the head of the public queue: its age is the delay. */
	o->pub_delay_ms = v->rx_ns && now * 1000u > v->rx_ns
			  ? (unsigned)((now * 1000u - v->rx_ns) / 1000000u) : 0;
	if (!b2b_overload_active(o))
		return 0;
	kind = overload_parse(v->data, v->len, o->tag, &m);
	if (kind == OVERLOAD_OTHER || (kind == OVERLOAD_NEW_INVITE && b2b_overload_is_call(o, &m)))
		return 0;
	if (kind != OVERLOAD_NEW_INVITE)
		return 1;   /* the ACK of one of our 503s: nothing to do */
	n = overload_answer(&m, o->tag, (unsigned)o->b2b->cfg->overload_retry_after, o->out,
			    sizeof o->out);
	if (n > 0)
		/* From the public socket it came to: of the sender's family. */
		(void)sendto(v->fd >= 0 ? v->fd : o->pub_fd, o->out, (size_t)n, MSG_DONTWAIT,
			     v->from, v->fromlen);
	b2b_overload_count(o);
	return 1;
}

/* ------------------------------------------------------------ public */

int b2b_overload_start(b2b_t *b2b, dgram_t *dgram, int pub_fd)
{
	struct b2b_overload *o = calloc(1, sizeof *o);

	if (o == NULL)
		return -ENOMEM;
	o->b2b = b2b;
	o->dgram = dgram;
	o->pub_fd = pub_fd;
	snprintf(o->tag, sizeof o->tag, "ovl%016llx", (unsigned long long)b2b->rng);
	dgram_set_judge(dgram, b2b_overload_judge, o);
	b2b->overload = o;
	return 0;
}

void b2b_overload_free(b2b_t *b2b)
{
	free(b2b->overload);
	b2b->overload = NULL;
}
