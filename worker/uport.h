/*
 * uport — a worker's one io_uring event loop, presented to Sofia-SIP as a
 * su_port_t so that Sofia's sockets, timers and mailbox run on it.
 *
 * Design note.  Sofia asks the port to watch "wait objects" (a pollfd each)
 * and to call back when they are ready.  uport turns each registration into
 * a one-shot IORING_OP_POLL_ADD and re-arms it after the callback: that is
 * level-triggered, which Sofia's UDP transport needs (it reads one datagram
 * per wake-up; multishot poll is edge-triggered and stalls a busy socket).
 * Each registration carries a generation in its CQE user_data so that a
 * completion for a registration removed meanwhile is ignored.  The worker's
 * two SIP sockets are the exception: worker/dgram.c reads them with the
 * ring itself and calls Sofia back when a datagram is queued
 * (uport_detach_fd, uport_wake_fd, the loop hooks).
 *
 * Blocking happens in exactly one place, io_uring_submit_and_wait_timeout(),
 * bounded by Sofia's next timer (Sofia's base port computes it and calls our
 * wait_events).  Everything else a worker waits on (signals, Redis, the
 * master) is a uport_event on the same ring: one loop, no threads.
 */
#ifndef B2BUA_UPORT_H
#define B2BUA_UPORT_H

#include <sofia-sip/su_wait.h>

typedef struct su_port_s uport_t;   /* a uport IS the Sofia port */

/* A non-Sofia waiter on the ring: embed it, set cb, pass it to uport_poll_add(). */
struct uport_event {
	void (*cb)(struct uport_event *ev, int res); /* res: revents (>0) or -errno */
	int armed;
	unsigned flags;      /* the CQE's flags, for operations of uport_sqe_for() */
};

/*
 * Create the ring (`entries` submission slots) and the Sofia port on it.
 * Must be called by the thread that will run the loop, after fork.
 * Returns 0 and *out, or a negative errno.
 */
int uport_create(unsigned entries, uport_t **out);

/* Create the Sofia root that runs on this port (the root takes a reference). */
su_root_t *uport_root_create(uport_t *port, su_root_magic_t *magic);

/* Destroy a port that no root uses (su_root_destroy() drops its reference). */
void uport_unref(uport_t *port);

/* Arm a one-shot poll for `events` (POLLIN/POLLOUT) on fd; ev->cb runs once. */
int uport_poll_add(uport_t *port, struct uport_event *ev, int fd, unsigned events);

/* Cancel a pending poll; its callback will not run. */
int uport_poll_remove(uport_t *port, struct uport_event *ev);

/*
 * Sockets whose datagrams the worker reads itself (worker/dgram.c) rather
 * than letting Sofia read them when the kernel says "readable":
 *   - uport_detach_fd: Sofia's registration for fd is no longer polled for
 *     POLLIN (only for POLLOUT, when Sofia asks for it);
 *   - uport_wake_fd: run Sofia's callback for fd once, as if it were
 *     readable: Sofia then reads one datagram (from dgram's queue).
 *     0, -ENOENT (no registration watches fd), or -ESTALE when the callback
 *     removed or changed the registration;
 *   - hooks: before_wait runs at the start of every loop turn and returns
 *     non-zero when work is already queued (the turn then does not block);
 *     after_reap runs after each batch of completions.
 */
int uport_detach_fd(uport_t *port, int fd);
int uport_wake_fd(uport_t *port, int fd);
typedef int uport_hook_f(void *arg);
void uport_set_hooks(uport_t *port, uport_hook_f *before_wait, uport_hook_f *after_reap,
		     void *arg);

/*
 * Any other io_uring operation on the loop: a submission slot whose
 * completion runs ev->cb (ev->flags then holds the CQE's flags; a
 * multishot operation stays armed while IORING_CQE_F_MORE is set).  NULL
 * when the submission queue is full even after a flush.  uport_ring() is
 * for registering buffers.
 */
struct io_uring_sqe *uport_sqe_for(uport_t *port, struct uport_event *ev);
struct io_uring *uport_ring(uport_t *port);
/* Submit what is queued now (before a system call that must come after it). */
void uport_flush(uport_t *port);

/*
 * Work done once, just before the loop next blocks: after every completion,
 * message and timer of this turn was handled, so what they queued (Redis
 * commands) leaves in one system call rather than one each.  df->cb runs
 * once per uport_defer() however often that was called meanwhile; a
 * callback may defer again (itself or others): those run in the same pass.
 * uport_defer_cancel() before freeing df.  uport_of_root() is the uport
 * under a Sofia root, or NULL when the root runs on another port.
 */
struct uport_defer {
	void (*cb)(struct uport_defer *df);
	struct uport_defer *next;   /* uport's */
	int queued;
};
void uport_defer(uport_t *port, struct uport_defer *df);
void uport_defer_cancel(uport_t *port, struct uport_defer *df);
uport_t *uport_of_root(su_root_t *root);

/* The fd of a Sofia registration whose datagram socket is bound to local
 * port `port` (the worker's SIP sockets), or -ENOENT. */
int uport_find_udp_fd(const uport_t *port, int local_port);
/* The same for a socket bound to address `addr` (an IPv4 or IPv6 literal)
 * and `local_port`: with several listen addresses (dual stack) each has
 * its own socket on the same port.  The fd, or -ENOENT (-EINVAL: `addr`
 * is no IP literal). */
int uport_find_udp_fd_at(const uport_t *port, const char *addr, int local_port);

/* Counters for the benchmark notes. */
struct uport_stats {
	unsigned long long waits;        /* io_uring_submit_and_wait calls */
	unsigned long long completions;  /* CQEs handled */
	unsigned long long stale;        /* CQEs of removed registrations, ignored */
};
void uport_get_stats(const uport_t *port, struct uport_stats *out);

#endif
