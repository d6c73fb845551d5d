/*
 * notify — what the master tells systemd (sd_notify(3), libsystemd): when
 * b2bua is ready, what it is doing, that it stops, and that it is alive.
 *
 * Design note.  Under systemd (Type=notify, NOTIFY_SOCKET set) the master
 * sends:
 *   READY=1      once every worker and the management process has been
 *                heard from since it was forked: a worker counts only once
 *                its hand-over ready flag is set (shm/handover.h: its loop
 *                is about to run and it takes calls) and it has answered a
 *                CTL_PING over its control channel (b2bua/ctl.h), which
 *                only its running loop can do.  Sent once; again after a
 *                reload (notify_ready).
 *   STATUS=...   "starting 2 workers", "ready: 2 workers",
 *                "worker 1 restarting", "worker 1 not answering",
 *                "draining: 12 calls", shown by `systemctl status`.
 *   STOPPING=1   when the drain begins (SIGTERM/SIGINT).
 *   RELOADING=1  when SIGHUP is being applied (notify_reloading).
 *   WATCHDOG=1   when systemd asked for it (WATCHDOG_USEC, WatchdogSec=):
 *                every half interval, and only when every worker was
 *                heard from since the previous one (the rule below).
 * Without NOTIFY_SOCKET every function here does nothing and the master
 * sends no pings.
 *
 * The master never waits for an answer: it asks notify_ping_due() on each
 * turn of its loop whether to send every running child a CTL_PING now, and
 * reports with notify_heard() each child whose channel it read.  Rounds are
 * half the watchdog interval (1 s without a watchdog, for STATUS only);
 * while a child has not been heard from since its fork it is pinged every
 * NOTIFY_START_PING_MS, so READY follows the last worker's start closely.
 *
 * The watchdog rule, checked at the end of each round, before WATCHDOG=1:
 *   - a running worker heard from since the previous round's ping passes;
 *   - a worker that died, or was forked and not heard from yet, passes for
 *     NOTIFY_RESTART_GRACE_MS counted from the first death (or the first
 *     fork) since it was last heard from: the master's own restart with
 *     back-off (at most 5 s) plus its start-up fit in it.  A worker that
 *     keeps dying beyond that stops the feeding, and systemd restarts the
 *     whole service (Restart=on-failure);
 *   - anything else (a hung worker: SIGSTOP, an endless loop) stops the
 *     feeding: systemd kills b2bua after WatchdogSec and restarts it;
 *   - once the drain began (STOPPING=1) the feeding goes on unconditionally:
 *     the master's own drain deadline bounds the stop.
 * The management process counts for READY, not for the watchdog: the
 * master restarts it when it dies, and a slow CLI command must not take the
 * SIP service down with it.
 */
#ifndef B2BUA_NOTIFY_H
#define B2BUA_NOTIFY_H

#include <stdint.h>

/* While a child has not been heard from since its fork, ping this often. */
#define NOTIFY_START_PING_MS 100
/* Rounds without a watchdog (STATUS only). */
#define NOTIFY_ROUND_MS 1000
/* How long a worker that died (or was just forked) may stay silent. */
#define NOTIFY_RESTART_GRACE_MS 10000

/* The management process's id in the calls below (the same as CTL_MGMT). */
#define NOTIFY_MGMT 0xfffeu

typedef struct notify notify_t;

/*
 * Master, before it forks: read NOTIFY_SOCKET and WATCHDOG_USEC for
 * `workers` workers; say STATUS=starting N workers.  Returns 0 and *out, or
 * -ENOMEM.  Not under systemd, *out still works and does nothing.
 */
int notify_create(unsigned workers, uint64_t now_ms, notify_t **out);
void notify_destroy(notify_t *n);

/* Is b2bua running under systemd's notify protocol (NOTIFY_SOCKET)? */
int notify_enabled(const notify_t *n);

/* The watchdog interval systemd asked for, in ms; 0 without a watchdog. */
unsigned notify_watchdog_ms(const notify_t *n);

/* Child `id` (a worker index or NOTIFY_MGMT) was forked / has died. */
void notify_started(notify_t *n, unsigned id, uint64_t now_ms);
void notify_died(notify_t *n, unsigned id, uint64_t now_ms);

/* The master read child `id`'s channel: its loop runs.  Sends READY=1 (and
 * the STATUS) when it was the last one awaited. */
void notify_heard(notify_t *n, unsigned id, uint64_t now_ms);

/*
 * Ask on every turn of the master's loop.  1: ping every running child now
 * (a round ended: the watchdog was fed or not by the rule above, or a child
 * is still awaited); 0: not yet, or draining (rounds still feed the watchdog).
 */
int notify_ping_due(notify_t *n, uint64_t now_ms);

/* Milliseconds until notify_ping_due() may answer 1; -1 when never. */
int notify_next_ms(const notify_t *n, uint64_t now_ms);

/* The drain began: STOPPING=1 and STATUS=draining: N calls. */
void notify_stopping(notify_t *n, unsigned calls);

/* During the drain: STATUS=draining: N calls, when N changed. */
void notify_draining(notify_t *n, unsigned calls);

/* SIGHUP: RELOADING=1 before the configuration is applied; notify_ready()
 * after it: READY=1 again (nothing while the first READY is still awaited). */
void notify_reloading(notify_t *n);
void notify_ready(notify_t *n);

#endif
