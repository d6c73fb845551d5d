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
 * completion for a registration removed meanwhile is ignored.
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
 * How a Sofia registration's socket is read, for the overload control
 * (worker/b2b_overload.c).  Sofia's UDP transport reads one datagram per
 * callback, and by default each ready registration gets one callback per
 * loop turn.  For the registration watching `fd`:
 *   - burst: up to `burst` callbacks per turn while the socket still holds
 *     a datagram (a worker's own port, where the calls it already has
 *     arrive, is served before new work piles up);
 *   - gate: when not NULL, called before each callback while the socket is
 *     readable.  It returns 0 to let Sofia read the next datagram, or 1
 *     when it took care of the socket itself (it read and answered what it
 *     could shed) and Sofia is not to be called this time.
 * Returns 0, or -ENOENT when no registration watches fd.
 */
typedef int uport_gate_f(void *arg, int fd);
int uport_set_reader(uport_t *port, int fd, unsigned burst, uport_gate_f *gate, void *arg);

/* The fd of a Sofia registration whose datagram socket is bound to local
 * port `port` (the worker's SIP sockets), or -ENOENT. */
int uport_find_udp_fd(const uport_t *port, int local_port);

/* Counters for the benchmark notes. */
struct uport_stats {
	unsigned long long waits;        /* io_uring_submit_and_wait calls */
	unsigned long long completions;  /* CQEs handled */
	unsigned long long stale;        /* CQEs of removed registrations, ignored */
	unsigned long long gated;        /* callbacks a gate took over (uport_set_reader) */
};
void uport_get_stats(const uport_t *port, struct uport_stats *out);

#endif
