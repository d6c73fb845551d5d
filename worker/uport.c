/*
 * uport — Sofia-SIP's su_port_t on io_uring.  See uport.h for the design.
 *
 * What is ours and what is Sofia's: struct su_port_s begins with Sofia's own
 * socket port (home, vtable, timers, message queue, mailbox), initialised by
 * the library's su_socket_port_init().  After it come the ring and a fixed
 * table of registrations.  Sofia's base port drives the loop (timers,
 * messages, su_base_port_waiting() for a fresh clock) and calls our
 * uport_wait_events() whenever it would block.
 *
 * CQE user_data encodes who completed:
 *   0                      a poll-remove's own completion: ignored
 *   (gen << 32)|(i << 1)|1 Sofia registration i, generation gen
 *   pointer (low bit 0)    a struct uport_event
 */
#include "worker/uport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <liburing.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/log.h"
#include "worker/sofia_port_abi.h"

/* Registrations a worker needs: two UDP sockets, the mailbox, a few more,
 * and one per TCP/TLS connection (tcp_max_connections is at most 4000,
 * worker/conn.c).  A fixed table means a callback's su_wait_t pointer
 * never moves. */
#define UPORT_MAX_WAITS 4096
/*
 * A wait for a timer lasts at least this long (ms).  NTA arms one timer
 * per transaction, each due at its own millisecond: at a few hundred calls
 * a second that is a wake-up (an io_uring_enter) every millisecond for
 * timers alone.  Waiting at least UPORT_TIMER_SLACK_MS serves every timer
 * due meanwhile in one turn, a few milliseconds late at most, which no SIP
 * timer (T1 = 500 ms) notices.  Sofia also asks for a wait of 0 when its
 * next timer is due within the millisecond (it rounds down), which would
 * spin through empty io_uring_enter calls until then: with no message
 * queued (sup_head), such a wait gets the slack too.  A wait of 0 for
 * queued work (messages, datagrams) stays 0.
 */
#define UPORT_TIMER_SLACK_MS 4
/* CQEs handled per wait, so that Sofia's timers run between bursts. */
#define UPORT_BATCH 256
/* Deferred callbacks run per wait at most; the rest make the wait not block. */
#define UPORT_DEFER_MAX 64

struct uport_wait {
	su_wait_t wait;          /* Sofia's pollfd; revents set before the callback */
	su_wakeup_f cb;
	su_wakeup_arg_t *arg;
	su_root_t *root;
	uint32_t gen;            /* bumped on every (re)registration change */
	uint8_t used;
	uint8_t armed;           /* a POLL_ADD is in flight */
	uint8_t detached;        /* read by worker/dgram.c: polled for POLLOUT only */
};

struct su_port_s {
	struct sofia_socket_port sofia;   /* first: Sofia casts the port to it */
	struct io_uring ring;
	int ring_ok;
	struct uport_wait waits[UPORT_MAX_WAITS];   /* index 0 unused: Sofia wants > 0 */
	struct uport_stats stats;
	uport_hook_f *before_wait;        /* see uport_set_hooks() */
	uport_hook_f *after_reap;
	void *hook_arg;
	struct uport_defer *deferred;     /* uport_defer(): newest first */
};

static struct io_uring_sqe *uport_sqe(uport_t *self)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);

	if (sqe == NULL) {
		/* Submission queue full: flush it and take a fresh slot. */
		io_uring_submit(&self->ring);
		sqe = io_uring_get_sqe(&self->ring);
	}
	return sqe;
}

static uint64_t uport_wait_data(unsigned i, uint32_t gen)
{
	return ((uint64_t)gen << 32) | ((uint64_t)i << 1) | 1u;
}

static void uport_arm(uport_t *self, unsigned i)
{
	struct uport_wait *w = &self->waits[i];
	unsigned events = (unsigned)w->wait.events;
	struct io_uring_sqe *sqe;

	if (w->detached)
		events &= POLLOUT;   /* its datagrams come through worker/dgram.c */
	if (events == 0)
		return;
	sqe = uport_sqe(self);
	if (sqe == NULL) {
		log_error("io_uring: no submission slot to watch fd %d", w->wait.fd);
		return;
	}
	io_uring_prep_poll_add(sqe, w->wait.fd, events);
	io_uring_sqe_set_data64(sqe, uport_wait_data(i, w->gen));
	w->armed = 1;
}

/* Cancel an in-flight poll now (not at the next wait): its fd may be closed
 * and reused right after Sofia deregisters it. */
static void uport_cancel(uport_t *self, uint64_t data)
{
	struct io_uring_sqe *sqe = uport_sqe(self);

	if (sqe == NULL)
		return;
	io_uring_prep_poll_remove(sqe, data);
	io_uring_sqe_set_data64(sqe, 0);
	io_uring_submit(&self->ring);
}

static void uport_drop(uport_t *self, unsigned i, int destroy_wait)
{
	struct uport_wait *w = &self->waits[i];

	if (w->armed)
		uport_cancel(self, uport_wait_data(i, w->gen));
	if (destroy_wait)
		su_wait_destroy(&w->wait);
	w->gen++;
	w->used = 0;
	w->armed = 0;
	w->detached = 0;
	w->cb = NULL;
	w->arg = NULL;
	w->root = NULL;
}

/* ------------------------------------------------------------ vtable */

static int uport_register(su_port_t *self, su_root_t *root, su_wait_t *wait,
			  su_wakeup_f callback, su_wakeup_arg_t *arg, int priority)
{
	unsigned i;

	(void)priority;   /* every ready registration is served in one pass */
	for (i = 1; i < UPORT_MAX_WAITS; i++)
		if (!self->waits[i].used)
			break;
	if (i == UPORT_MAX_WAITS)
		return su_seterrno(ENOMEM);

	struct uport_wait *w = &self->waits[i];
	w->wait = *wait;
	w->wait.revents = 0;
	w->cb = callback;
	w->arg = arg;
	w->root = root;
	w->gen++;
	w->used = 1;
	uport_arm(self, i);
	return (int)i;
}

static int uport_deregister(su_port_t *self, int i)
{
	if (i <= 0 || i >= UPORT_MAX_WAITS || !self->waits[i].used)
		return su_seterrno(EBADF);
	uport_drop(self, (unsigned)i, 1);
	return i;
}

static int uport_unregister(su_port_t *self, su_root_t *root, su_wait_t *wait,
			    su_wakeup_f callback, su_wakeup_arg_t *arg)
{
	(void)root; (void)callback; (void)arg;   /* matched on the wait, like Sofia's ports */
	for (unsigned i = 1; i < UPORT_MAX_WAITS; i++) {
		struct uport_wait *w = &self->waits[i];
		if (w->used && w->wait.fd == wait->fd && w->wait.events == wait->events) {
			uport_drop(self, i, 0);
			return (int)i;
		}
	}
	return su_seterrno(ENOENT);
}

static int uport_unregister_all(su_port_t *self, su_root_t *root)
{
	int n = 0;

	for (unsigned i = 1; i < UPORT_MAX_WAITS; i++) {
		if (self->waits[i].used && self->waits[i].root == root) {
			uport_drop(self, i, 0);
			n++;
		}
	}
	return n;
}

static int uport_eventmask(su_port_t *self, int i, int socket, int events)
{
	if (i <= 0 || i >= UPORT_MAX_WAITS || !self->waits[i].used)
		return su_seterrno(EBADF);

	struct uport_wait *w = &self->waits[i];
	int was_armed = w->armed;

	if (su_wait_mask(&w->wait, socket, events) < 0)
		return -1;
	if (was_armed) {
		/* Replace the in-flight poll: the old mask must not fire. */
		uport_cancel(self, uport_wait_data((unsigned)i, w->gen));
		w->gen++;
		uport_arm(self, (unsigned)i);
	}
	return 0;
}

static int uport_multishot(su_port_t *self, int multishot)
{
	(void)self;
	if (multishot < 0)
		return 1;
	if (multishot == 0 || multishot == 1)
		return 1;   /* we always serve every ready registration */
	return (errno = EINVAL), -1;
}

static void uport_dispatch_wait(uport_t *self, uint64_t data, int res)
{
	unsigned i = (unsigned)((data >> 1) & 0x7fffffffu);
	uint32_t gen = (uint32_t)(data >> 32);
	struct uport_wait *w;

	if (i == 0 || i >= UPORT_MAX_WAITS || !self->waits[i].used || self->waits[i].gen != gen) {
		self->stats.stale++;
		return;
	}
	w = &self->waits[i];
	w->armed = 0;
	if (res < 0) {
		if (res != -ECANCELED)
			log_warn("io_uring: poll on fd %d failed: %s", w->wait.fd, strerror(-res));
		/* Re-arm anyway: Sofia owns the fd and will deregister it if it is gone. */
	} else {
		w->wait.revents = (short)res;
		w->cb(w->root ? su_root_magic(w->root) : NULL, &w->wait, w->arg);
	}
	/* The callback may have deregistered or changed it. */
	if (w->used && w->gen == gen && !w->armed)
		uport_arm(self, i);
}

static int uport_reap(uport_t *self)
{
	struct io_uring_cqe *cqe;
	int n = 0;

	while (n < UPORT_BATCH && io_uring_peek_cqe(&self->ring, &cqe) == 0) {
		uint64_t data = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		unsigned flags = cqe->flags;

		io_uring_cqe_seen(&self->ring, cqe);
		n++;
		if (data == 0)
			continue;
		if (data & 1u) {
			uport_dispatch_wait(self, data, res);
		} else {
			struct uport_event *ev = (struct uport_event *)(uintptr_t)data;
			if (!ev->armed)
				continue;   /* removed meanwhile */
			ev->flags = flags;
			if (!(flags & IORING_CQE_F_MORE))
				ev->armed = 0;   /* a multishot operation ended, or a one-shot one */
			ev->cb(ev, res);
		}
	}
	self->stats.completions += (unsigned long long)n;
	return n;
}

/* Completions, then whatever they queued (after_reap), in batches. */
static int uport_reap_all(uport_t *self)
{
	int n = uport_reap(self);

	if (self->after_reap)
		self->after_reap(self->hook_arg);
	return n;
}

/* The end of a turn's work: run what was deferred to it.  Returns non-zero
 * when callbacks are still queued (UPORT_DEFER_MAX reached): then the wait
 * must not block. */
static int uport_run_deferred(uport_t *self)
{
	struct uport_defer *df;
	int n = 0;

	/* One at a time from the list itself: a callback may cancel or
	 * free another queued one. */
	while ((df = self->deferred) != NULL && n++ < UPORT_DEFER_MAX) {
		self->deferred = df->next;
		df->next = NULL;
		df->queued = 0;
		df->cb(df);
	}
	return self->deferred != NULL;
}

static int uport_wait_events(su_port_t *self, su_duration_t tout)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	int busy = uport_run_deferred(self);
	int ret;

	self->stats.waits++;
	if ((self->before_wait && self->before_wait(self->hook_arg)) || busy) {
		/* Work is queued already: send what is queued, take what completed,
		 * and do not block. */
		uport_flush(self);
		return uport_reap_all(self);
	}
	if (tout == 0 && self->sofia.sup_head == NULL)
		tout = UPORT_TIMER_SLACK_MS;   /* a timer due within the millisecond */
	if (tout > 0 && tout < UPORT_TIMER_SLACK_MS)
		tout = UPORT_TIMER_SLACK_MS;
	if (tout < 0) {
		ret = io_uring_submit_and_wait_timeout(&self->ring, &cqe, 1, NULL, NULL);
	} else {
		ts.tv_sec = tout / 1000;
		ts.tv_nsec = (tout % 1000) * 1000000L;
		ret = io_uring_submit_and_wait_timeout(&self->ring, &cqe, 1, &ts, NULL);
	}
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		log_error("io_uring: wait failed: %s", strerror(-ret));
	return uport_reap_all(self);
}

static char const *uport_name(su_port_t const *self)
{
	(void)self;
	return "io_uring";
}

static void uport_decref(su_port_t *self, int blocking, char const *who)
{
	su_base_port_decref(self, blocking, who);
}

static su_port_vtable_t const uport_vtable = {
	.su_vtable_size = sizeof uport_vtable,
	.su_port_lock = su_pthread_port_lock,
	.su_port_unlock = su_pthread_port_unlock,
	.su_port_incref = su_base_port_incref,
	.su_port_decref = uport_decref,
	.su_port_gsource = su_base_port_gsource,
	.su_port_send = su_base_port_send,
	.su_port_register = uport_register,
	.su_port_unregister = uport_unregister,
	.su_port_deregister = uport_deregister,
	.su_port_unregister_all = uport_unregister_all,
	.su_port_eventmask = uport_eventmask,
	.su_port_run = su_base_port_run,
	.su_port_break = su_base_port_break,
	.su_port_step = su_base_port_step,
	.su_port_thread = su_pthread_port_thread,
	.su_port_add_prepoll = su_base_port_add_prepoll,
	.su_port_remove_prepoll = su_base_port_remove_prepoll,
	.su_port_timers = su_base_port_timers,
	.su_port_multishot = uport_multishot,
	.su_port_wait_events = uport_wait_events,
	.su_port_getmsgs = su_base_port_getmsgs,
	.su_port_getmsgs_from = su_base_port_getmsgs_from,
	.su_port_name = uport_name,
	.su_port_start_shared = su_base_port_start_shared,
	.su_port_wait = su_pthread_port_wait,
	.su_port_execute = su_pthread_port_execute,
	.su_port_deferrable = su_base_port_deferrable,
	.su_port_max_defer = su_base_port_max_defer,
	.su_port_wakeup = su_socket_port_wakeup,
	.su_port_is_running = su_base_port_is_running,
	.su_port_stamp64 = su_base_port_stamp64,
	.su_port_stamp64_offset = su_base_port_stamp64_offset,
};

/* ------------------------------------------------------------ life cycle */

/* Runs when the port's home is freed (last reference dropped). */
static void uport_deinit(void *arg)
{
	uport_t *self = arg;

	su_socket_port_deinit(self);
	if (self->ring_ok) {
		io_uring_queue_exit(&self->ring);
		self->ring_ok = 0;
	}
}

int uport_create(unsigned entries, uport_t **out)
{
	uport_t *self = su_home_new(sizeof *self);
	int ret;

	if (self == NULL)
		return -ENOMEM;
	/* Completions are handled when the loop enters the kernel anyway:
	 * no interrupt per completion (Linux 5.19+); plain flags otherwise. */
	ret = io_uring_queue_init(entries, &self->ring,
				  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(entries, &self->ring, 0);
	if (ret < 0) {
		log_error("io_uring_queue_init(%u): %s", entries, strerror(-ret));
		su_home_unref((su_home_t *)self);
		return ret;
	}
	self->ring_ok = 1;
	if (su_home_destructor((su_home_t *)self, uport_deinit) < 0) {
		io_uring_queue_exit(&self->ring);
		su_home_unref((su_home_t *)self);
		return -ENOMEM;
	}
	/* The ring exists now: the mailbox registers through uport_register(). */
	if (su_socket_port_init(self, &uport_vtable) < 0) {
		su_home_unref((su_home_t *)self);
		return -EIO;
	}
	*out = self;
	return 0;
}

su_root_t *uport_root_create(uport_t *port, su_root_magic_t *magic)
{
	return su_root_create_with_port(magic, port);
}

void uport_unref(uport_t *port)
{
	su_home_unref((su_home_t *)port);
}

int uport_poll_add(uport_t *self, struct uport_event *ev, int fd, unsigned events)
{
	struct io_uring_sqe *sqe = uport_sqe(self);

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)ev);
	ev->armed = 1;
	return 0;
}

int uport_poll_remove(uport_t *self, struct uport_event *ev)
{
	if (!ev->armed)
		return -ENOENT;
	ev->armed = 0;
	uport_cancel(self, (uint64_t)(uintptr_t)ev);
	return 0;
}

/* The registration index watching fd, or 0. */
static unsigned uport_index_of(const uport_t *self, int fd)
{
	for (unsigned i = 1; i < UPORT_MAX_WAITS; i++)
		if (self->waits[i].used && self->waits[i].wait.fd == fd)
			return i;
	return 0;
}

int uport_detach_fd(uport_t *self, int fd)
{
	unsigned i = uport_index_of(self, fd);
	struct uport_wait *w;

	if (i == 0)
		return -ENOENT;
	w = &self->waits[i];
	w->detached = 1;
	if (w->armed) {
		/* Replace the in-flight POLLIN poll (its completion is ignored). */
		uport_cancel(self, uport_wait_data(i, w->gen));
		w->gen++;
		w->armed = 0;
		uport_arm(self, i);
	}
	return 0;
}

int uport_wake_fd(uport_t *self, int fd)
{
	unsigned i = uport_index_of(self, fd);
	struct uport_wait *w;
	uint32_t gen;

	if (i == 0)
		return -ENOENT;
	w = &self->waits[i];
	gen = w->gen;
	w->wait.revents = POLLIN;
	w->cb(w->root ? su_root_magic(w->root) : NULL, &w->wait, w->arg);
	return w->used && w->gen == gen ? 0 : -ESTALE;
}

void uport_set_hooks(uport_t *self, uport_hook_f *before_wait, uport_hook_f *after_reap,
		     void *arg)
{
	self->before_wait = before_wait;
	self->after_reap = after_reap;
	self->hook_arg = arg;
}

struct io_uring_sqe *uport_sqe_for(uport_t *self, struct uport_event *ev)
{
	struct io_uring_sqe *sqe = uport_sqe(self);

	if (sqe == NULL)
		return NULL;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)ev);
	ev->armed = 1;
	ev->flags = 0;
	return sqe;
}

void uport_defer(uport_t *self, struct uport_defer *df)
{
	if (df->queued)
		return;
	df->queued = 1;
	df->next = self->deferred;
	self->deferred = df;
}

void uport_defer_cancel(uport_t *self, struct uport_defer *df)
{
	struct uport_defer **pp;

	if (!df->queued)
		return;
	for (pp = &self->deferred; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == df) {
			*pp = df->next;
			break;
		}
	}
	df->next = NULL;
	df->queued = 0;
}

uport_t *uport_of_root(su_root_t *root)
{
	su_port_t *port = root != NULL ? su_root_task(root)->sut_port : NULL;

	/* Ours when it runs on our vtable (the port's first words are Sofia's). */
	if (port == NULL || ((struct sofia_socket_port *)port)->sup_vtable != &uport_vtable)
		return NULL;
	return port;
}

struct io_uring *uport_ring(uport_t *self)
{
	return &self->ring;
}

void uport_flush(uport_t *self)
{
	if (io_uring_sq_ready(&self->ring))
		io_uring_submit(&self->ring);
}

/* The local port of a datagram socket, or -1. */
static int uport_udp_port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int type = 0;
	socklen_t tlen = sizeof type;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_DGRAM ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

int uport_find_udp_fd(const uport_t *self, int local_port)
{
	for (unsigned i = 1; i < UPORT_MAX_WAITS; i++) {
		const struct uport_wait *w = &self->waits[i];

		if (w->used && uport_udp_port_of(w->wait.fd) == local_port)
			return w->wait.fd;
	}
	return -ENOENT;
}

/* Is fd a datagram socket bound to exactly `want` (address and port)?  1 or 0. */
static int uport_udp_bound_to(int fd, const struct sockaddr_storage *want)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int type = 0;
	socklen_t tlen = sizeof type;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_DGRAM ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != want->ss_family)
		return 0;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		const struct sockaddr_in *b = (const struct sockaddr_in *)want;

		return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
	}
	{
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)want;

		return a->sin6_port == b->sin6_port &&
		       memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
	}
}

int uport_find_udp_fd_at(const uport_t *self, const char *addr, int local_port)
{
	struct sockaddr_storage want;
	struct sockaddr_in *sin = (struct sockaddr_in *)&want;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&want;

	memset(&want, 0, sizeof want);
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)local_port);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)local_port);
	} else {
		return -EINVAL;
	}
	for (unsigned i = 1; i < UPORT_MAX_WAITS; i++) {
		const struct uport_wait *w = &self->waits[i];

		if (w->used && uport_udp_bound_to(w->wait.fd, &want))
			return w->wait.fd;
	}
	return -ENOENT;
}

void uport_get_stats(const uport_t *self, struct uport_stats *out)
{
	*out = self->stats;
}
