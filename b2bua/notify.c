/*
 * notify — the master's messages to systemd.  See notify.h for what is
 * sent when, and for the watchdog rule.
 *
 * State per child slot (workers 0..n-1, then the management process):
 * whether it runs, when it was last forked and last heard from, and since
 * when it has been silent because it died or was just forked (the start of
 * its grace).  Every message goes through notify_send(), one sd_notify()
 * per event; a failure to send is logged once in a while, never fatal:
 * systemd's absence must not stop SIP.  sd_notify() sends one datagram on a
 * socket of its own, which is blocking: the master could only wait there if
 * systemd (PID 1) stopped reading its notification socket, and a few
 * datagrams a second never fill it otherwise.
 */
#include "b2bua/notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "b2bua/log.h"

struct notify_slot {
	int running;
	uint64_t started_ms;     /* of the current process */
	uint64_t heard_ms;       /* last time its channel was read; 0 never */
	uint64_t silent_since;   /* first death or fork since it was last heard; 0 = heard */
};

struct notify {
	int enabled;             /* NOTIFY_SOCKET is set */
	unsigned watchdog_ms;    /* WATCHDOG_USEC / 1000; 0 without a watchdog */
	unsigned workers;
	int ready_sent;          /* the first READY=1 went out */
	int stopping;
	unsigned drain_calls;    /* what the last draining STATUS said */
	uint64_t round_at;       /* when the current round ends */
	uint64_t round_ping_ms;  /* when the current round's ping went out */
	uint64_t last_ping_ms;
	char status[96];         /* the last STATUS sent */
	struct notify_slot slot[];   /* workers, then the management process */
};

/* ------------------------------------------------------------ sending */

static void notify_send(notify_t *n, const char *text)
{
	static struct log_limit fail_limit = { .what = "systemd: notifications not sent" };
	int ret;

	if (!n->enabled)
		return;
	ret = sd_notify(0, text);
	if (ret < 0)
		log_limited(&fail_limit, LOG_WARN, "systemd: cannot send \"%s\": %s", text,
			    strerror(-ret));
	else
		log_debug("systemd: %s", text);
}

/* STATUS=text, when it says something new; `extra` lines (READY=1...) go
 * in the same datagram. */
static void notify_status(notify_t *n, const char *extra, const char *text)
{
	char msg[160];

	if (extra == NULL && strcmp(n->status, text) == 0)
		return;
	snprintf(n->status, sizeof n->status, "%s", text);
	snprintf(msg, sizeof msg, "%s%sSTATUS=%s", extra ? extra : "", extra ? "\n" : "", text);
	notify_send(n, msg);
}

/* ------------------------------------------------------------ the children */

static struct notify_slot *notify_slot_of(notify_t *n, unsigned id)
{
	if (id == NOTIFY_MGMT)
		return &n->slot[n->workers];
	return id < n->workers ? &n->slot[id] : NULL;
}

/* Running and heard from since its fork (a worker: ready for calls). */
static int notify_slot_up(const struct notify_slot *s)
{
	return s->running && s->heard_ms >= s->started_ms && s->heard_ms != 0;
}

/* Every child (workers and the management process) is up. */
static int notify_all_up(const notify_t *n)
{
	for (unsigned i = 0; i <= n->workers; i++)
		if (!notify_slot_up(&n->slot[i]))
			return 0;
	return 1;
}

/* "ready: 2 workers", or who is still missing. */
static void notify_status_up(notify_t *n)
{
	char text[96];

	snprintf(text, sizeof text, "ready: %u workers", n->workers);
	if (!n->ready_sent) {
		n->ready_sent = 1;
		log_info("systemd: every worker is ready: READY=1");
		notify_status(n, "READY=1", text);
		return;
	}
	notify_status(n, NULL, text);
}

/* A child that died or was forked and not heard from yet starts its grace,
 * unless it already had one running. */
static void notify_silent(struct notify_slot *s, uint64_t now_ms)
{
	if (s->silent_since == 0)
		s->silent_since = now_ms ? now_ms : 1;
}

/* ------------------------------------------------------------ the watchdog rule */

/* May worker slot s let the watchdog be fed at the end of this round? */
static int notify_slot_passes(const notify_t *n, const struct notify_slot *s, uint64_t now_ms)
{
	if (s->running && s->heard_ms >= n->round_ping_ms && s->heard_ms != 0)
		return 1;
	/* Died or just forked, not heard from since: its grace (notify.h). */
	return s->silent_since != 0 && now_ms - s->silent_since < NOTIFY_RESTART_GRACE_MS;
}

/* The first worker that fails the rule, or -1 when all pass. */
static int notify_failing_worker(const notify_t *n, uint64_t now_ms)
{
	for (unsigned i = 0; i < n->workers; i++)
		if (!notify_slot_passes(n, &n->slot[i], now_ms))
			return (int)i;
	return -1;
}

/* The end of a round: feed the watchdog, or say who stopped it. */
static void notify_end_round(notify_t *n, uint64_t now_ms)
{
	static struct log_limit starve_limit = { .what = "systemd: watchdog not fed" };
	char text[96];
	int bad;

	if (n->watchdog_ms == 0)
		return;
	bad = n->stopping ? -1 : notify_failing_worker(n, now_ms);
	if (bad < 0) {
		notify_send(n, "WATCHDOG=1");
		/* After "worker N not answering": say it is over. */
		if (n->ready_sent && !n->stopping && notify_all_up(n))
			notify_status_up(n);
		return;
	}
	snprintf(text, sizeof text, "worker %d not answering", bad);
	log_limited(&starve_limit, LOG_WARN,
		    "systemd: worker %d did not answer the master's ping: the watchdog is not fed",
		    bad);
	notify_status(n, NULL, text);
}

/* ------------------------------------------------------------ public */

int notify_create(unsigned workers, uint64_t now_ms, notify_t **out)
{
	notify_t *n = calloc(1, sizeof *n + (workers + 1) * sizeof n->slot[0]);
	uint64_t usec = 0;
	char text[96];

	if (n == NULL)
		return -ENOMEM;
	n->workers = workers;
	n->enabled = getenv("NOTIFY_SOCKET") != NULL;
	if (n->enabled && sd_watchdog_enabled(0, &usec) > 0)
		n->watchdog_ms = usec >= 2000 ? (unsigned)(usec / 1000) : 2;
	n->round_at = now_ms + (n->watchdog_ms ? n->watchdog_ms / 2 : NOTIFY_ROUND_MS);
	n->round_ping_ms = now_ms;
	if (n->enabled)
		log_info("systemd: notifications on%s%u%s", n->watchdog_ms ? ", watchdog every " : "",
			 n->watchdog_ms ? n->watchdog_ms / 2 : 0, n->watchdog_ms ? " ms" : "");
	snprintf(text, sizeof text, "starting %u workers", workers);
	notify_status(n, NULL, text);
	*out = n;
	return 0;
}

void notify_destroy(notify_t *n)
{
	free(n);
}

int notify_enabled(const notify_t *n)
{
	return n->enabled;
}

unsigned notify_watchdog_ms(const notify_t *n)
{
	return n->watchdog_ms;
}

void notify_started(notify_t *n, unsigned id, uint64_t now_ms)
{
	struct notify_slot *s = notify_slot_of(n, id);

	if (s == NULL)
		return;
	s->running = 1;
	s->started_ms = now_ms;
	notify_silent(s, now_ms);
}

void notify_died(notify_t *n, unsigned id, uint64_t now_ms)
{
	struct notify_slot *s = notify_slot_of(n, id);
	char text[96];

	if (s == NULL)
		return;
	s->running = 0;
	notify_silent(s, now_ms);
	if (n->stopping)
		return;
	if (id == NOTIFY_MGMT)
		snprintf(text, sizeof text, "management process restarting");
	else
		snprintf(text, sizeof text, "worker %u restarting", id);
	notify_status(n, NULL, text);
}

void notify_heard(notify_t *n, unsigned id, uint64_t now_ms)
{
	struct notify_slot *s = notify_slot_of(n, id);
	int was_up;

	/* Before its fork: a message of its predecessor's, not of this process. */
	if (!n->enabled || s == NULL || !s->running || now_ms < s->started_ms)
		return;
	was_up = notify_slot_up(s);
	s->heard_ms = now_ms ? now_ms : 1;
	s->silent_since = 0;
	if (!was_up && !n->stopping && notify_all_up(n))
		notify_status_up(n);
}

int notify_ping_due(notify_t *n, uint64_t now_ms)
{
	int due = 0;

	if (!n->enabled)
		return 0;
	if (now_ms >= n->round_at) {
		notify_end_round(n, now_ms);
		n->round_at = now_ms + (n->watchdog_ms ? n->watchdog_ms / 2 : NOTIFY_ROUND_MS);
		n->round_ping_ms = now_ms;
		due = 1;
	}
	if (!notify_all_up(n) && now_ms - n->last_ping_ms >= NOTIFY_START_PING_MS)
		due = 1;
	if (due)
		n->last_ping_ms = now_ms;
	/* Draining children leave one by one: pinging them tells nothing. */
	return due && !n->stopping;
}

int notify_next_ms(const notify_t *n, uint64_t now_ms)
{
	uint64_t next;

	if (!n->enabled)
		return -1;
	next = n->round_at;
	if (!notify_all_up(n) && n->last_ping_ms + NOTIFY_START_PING_MS < next)
		next = n->last_ping_ms + NOTIFY_START_PING_MS;
	return next > now_ms ? (int)(next - now_ms) : 0;
}

void notify_stopping(notify_t *n, unsigned calls)
{
	char text[96];

	if (n->stopping)
		return;
	n->stopping = 1;
	n->drain_calls = calls;
	snprintf(text, sizeof text, "draining: %u calls", calls);
	notify_status(n, "STOPPING=1", text);
}

void notify_draining(notify_t *n, unsigned calls)
{
	char text[96];

	if (!n->stopping || calls == n->drain_calls)
		return;
	n->drain_calls = calls;
	snprintf(text, sizeof text, "draining: %u calls", calls);
	notify_status(n, NULL, text);
}

void notify_reloading(notify_t *n)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* MONOTONIC_USEC: systemd 253 and later match it to the reload. */
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
	snprintf(n->status, sizeof n->status, "reloading");
	notify_send(n, msg);
}

void notify_ready(notify_t *n)
{
	char text[96];

	if (!n->ready_sent || n->stopping)
		return;
	snprintf(text, sizeof text, "ready: %u workers", n->workers);
	notify_status(n, "READY=1", text);
}
