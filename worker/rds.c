/*
 * rds — the worker's Redis client.  See rds.h for the life cycle; asking
 * the sentinels for the primary is rds_sentinel.c, on the same connection
 * slot, event adapter and timer (rds_int.h is what the two share).
 *
 * The event adapter.  The socket is a Sofia registration (su_root_register)
 * rather than a bare uport_event: uport tags those with a generation, so a
 * poll completing after the socket was closed and freed is ignored, and
 * the registration survives any number of mask changes.  hiredis tells us
 * what it wants to wait for through five hooks (add/del read, add/del
 * write, cleanup).  The hooks only note the wanted poll mask; rds applies
 * it to the registration once hiredis has returned to us (rds_settle), so
 * a burst of commands costs one mask change, not one per command.  On a
 * connection that is up, queued commands are written without waiting for
 * POLLOUT: a POLLOUT poll is armed only when the socket did not take
 * everything.  They are written once per loop turn, when the turn's work
 * is done and the loop is about to wait (uport_defer): every command the
 * turn's messages, timers and replies queued leaves in one write(2), not
 * one each.  On a root that is not a uport, they are written at once.  A
 * close or destroy writes what is queued first, as an immediate write
 * would have.  The one
 * exception is cleanup, which deregisters at once: hiredis closes the fd
 * right after it.
 *
 * Re-entrancy, the rule of this file.  hiredis calls back into rds (reply,
 * connect and disconnect callbacks) from inside its own functions, and
 * frees the context itself after a failed connect or a lost connection.
 * So:
 *   - every entry point (socket wake-up, timer, command, create) counts
 *     itself in `depth` and calls rds_settle() on the way out;
 *   - rds never frees a context from inside a hiredis callback: a drop
 *     (AUTH or SELECT refused, no poll slot) is recorded, and a zero-delay
 *     timer does it from the top of the loop (where the handshake deadline
 *     fires too);
 *   - rds_destroy() from inside a callback only marks rds; rds_settle()
 *     frees it when the outermost entry point unwinds;
 *   - the cleanup hook is hiredis's last word on a context: rds forgets
 *     the context there.
 */
#include "worker/rds_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "worker/dec.h"

/* ------------------------------------------------------------ config */

/* The one address parser (store/store.h): names are refused, their lookup
 * would block the worker on every reconnect. */
static int rds_parse_address(rds_t *self, const char *address)
{
	struct store_address a;
	int ret = store_address_parse(address, &a, NULL);

	if (ret < 0)
		return ret;
	snprintf(self->unix_path, sizeof self->unix_path, "%s", a.unix_path);
	snprintf(self->host, sizeof self->host, "%s", a.host);
	self->port = a.port;
	return 0;
}

/* Copy a config string that must be NUL-terminated inside its array. */
static int rds_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t len = strnlen(src, srclen);

	if (len == srclen || len >= dstlen)
		return -EINVAL;
	memcpy(dst, src, len + 1);
	return 0;
}

static int rds_configure(rds_t *self, const struct rds_config *cfg)
{
	if (rds_copy(self->address, sizeof self->address, cfg->address, sizeof cfg->address) < 0
	    || rds_copy(self->password, sizeof self->password, cfg->password,
			sizeof cfg->password) < 0
	    || rds_copy(self->prefix, sizeof self->prefix, cfg->prefix, sizeof cfg->prefix) < 0)
		return -EINVAL;
	if (cfg->db < 0 || cfg->timeout_ms < 0)
		return -EINVAL;
	self->db = cfg->db;
	self->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : RDS_TIMEOUT_DEFAULT_MS;
	if (cfg->n_sentinels > 0)
		return rds_sentinel_configure(self, cfg);
	return rds_parse_address(self, self->address);
}

/* ------------------------------------------------------------ requests */

static struct rds_req *rds_req_get(rds_t *self)
{
	struct rds_req *req = self->free_reqs;

	if (req == NULL)
		return malloc(sizeof *req);
	self->free_reqs = req->next;
	return req;
}

static void rds_req_put(rds_t *self, struct rds_req *req)
{
	req->next = self->free_reqs;
	self->free_reqs = req;
}

static void rds_pending_push(rds_t *self, struct rds_req *req)
{
	req->next = NULL;
	if (self->pending_tail != NULL)
		self->pending_tail->next = req;
	else
		self->pending = req;
	self->pending_tail = req;
}

/* Replies come in command order on one connection, so the one answered is
 * the oldest pending; the search is only a guard. */
static void rds_pending_remove(rds_t *self, struct rds_req *req)
{
	struct rds_req **pp = &self->pending;
	struct rds_req *prev = NULL;

	while (*pp != NULL && *pp != req) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = req->next;
	if (self->pending_tail == req)
		self->pending_tail = prev;
}

/* ------------------------------------------------------------ event adapter */

static int rds_on_wakeup(su_root_magic_t *magic, su_wait_t *wait, su_wakeup_arg_t *arg);

/* Make the Sofia registration of the socket match what hiredis wants. */
static int rds_sync_events(rds_t *self)
{
	su_wait_t wait;
	int index;

	/* A write deferred to the turn's end needs no POLLOUT poll meanwhile. */
	int want = self->flush.queued ? self->want & ~POLLOUT : self->want;

	if (want == self->have)
		return 0;
	if (want == 0) {
		/* Nothing wanted: no registration, or a hung-up socket would
		 * keep waking us with POLLHUP. */
		su_root_deregister(self->root, self->wait_index);
		self->wait_index = 0;
	} else if (self->wait_index == 0) {
		if (su_wait_create(&wait, self->fd, want) < 0)
			return -EIO;
		index = su_root_register(self->root, &wait, rds_on_wakeup, self, 0);
		if (index <= 0)
			return -ENOSPC;
		self->wait_index = index;
	} else if (su_root_eventmask(self->root, self->wait_index, self->fd, want) < 0) {
		return -EIO;
	}
	self->have = want;
	return 0;
}

static void rds_ev_add_read(void *privdata)
{
	((rds_t *)privdata)->want |= POLLIN;
}

static void rds_ev_del_read(void *privdata)
{
	((rds_t *)privdata)->want &= ~POLLIN;
}

static void rds_ev_add_write(void *privdata)
{
	((rds_t *)privdata)->want |= POLLOUT;
}

static void rds_ev_del_write(void *privdata)
{
	((rds_t *)privdata)->want &= ~POLLOUT;
}

/* hiredis is about to close the socket and free the context. */
static void rds_ev_cleanup(void *privdata)
{
	rds_t *self = privdata;

	self->want = 0;
	rds_sync_events(self);
	self->ac = NULL;
	self->fd = -1;
}

/* ------------------------------------------------------------ connection state */

/* Ask for the current context to be dropped, from the top of the loop. */
void rds_fail(rds_t *self, int refused, const char *fmt, ...)
{
	va_list ap;

	if (self->drop_reason[0] != '\0')
		return;   /* the first reason is the real one */
	va_start(ap, fmt);
	vsnprintf(self->drop_reason, sizeof self->drop_reason, fmt, ap);
	va_end(ap);
	self->drop_refused = refused;
	if (self->state == RDS_UP)
		self->state = RDS_CLOSING;
	su_timer_set_interval(self->timer, rds_on_timer, self, 0);
}

/* One line per outage: the first failure is a warning, the retries debug.
 * A refused AUTH or SELECT is an error (an operator must fix the config),
 * also once per outage. */
static void rds_log_failure(rds_t *self, const char *reason, int refused)
{
	if (self->watch) {   /* a sentinel watcher: its owner logs what matters */
		log_debug("redis sentinel %s: %s", self->address, reason);
	} else if (refused && !self->refusal_logged) {
		log_error("redis %s: %s", self->address, reason);
		self->refusal_logged = 1;
	} else if (!refused && !self->outage_logged) {
		log_warn("redis %s: %s", self->address, reason);
	} else {
		log_debug("redis %s: %s (retry in %ld ms)", self->address, reason,
			  (long)self->backoff_ms);
	}
	self->outage_logged = 1;
}

/* The context is gone or going: log, schedule the next attempt, tell the
 * user.  Called once per context (later calls for it do nothing). */
void rds_lost(rds_t *self, const char *reason, int refused)
{
	su_duration_t max = self->n_sentinels > 0 ? RDS_SENTINEL_BACKOFF_MAX_MS
						  : RDS_BACKOFF_MAX_MS;

	if (self->destroying || self->state == RDS_WAITING)
		return;
	self->state = RDS_WAITING;
	self->ac = NULL;
	if (!self->outage_logged)   /* the first failure of an outage */
		self->down_since_ms = (long long)mono_ms();
	if (self->n_sentinels > 0 && rds_sentinel_lost(self)) {
		self->drop_reason[0] = '\0';
		return;   /* a replica named: the next sentinel is asked */
	}
	if (!self->closed)
		rds_log_failure(self, reason, refused);
	self->drop_reason[0] = '\0';
	if (self->closed)
		su_timer_reset(self->timer);
	else
		su_timer_set_interval(self->timer, rds_on_timer, self,
				      self->drop_now ? 0 : self->backoff_ms);
	if (!self->drop_now)
		self->backoff_ms *= 2;
	self->drop_now = 0;
	if (self->backoff_ms > max)
		self->backoff_ms = max;
	if (self->reported_up) {
		self->reported_up = 0;
		shm_gauge_set(self->shm, self->worker, SHM_CTR_REDIS_UP, 0);
		if (self->on_state)
			self->on_state(self, 0, self->state_arg);
	}
}

static void rds_up(rds_t *self)
{
	su_timer_reset(self->timer);
	self->state = RDS_UP;
	self->backoff_ms = RDS_BACKOFF_MIN_MS;
	if (self->watch)
		log_debug("redis sentinel %s: connected", self->address);
	else if (self->n_sentinels > 0)
		rds_sentinel_up(self, self->outage_logged
				? (long long)mono_ms() - self->down_since_ms : -1);
	else if (self->outage_logged)
		log_info("redis %s: connected (down %lld ms)", self->address,
			 (long long)mono_ms() - self->down_since_ms);
	else
		log_info("redis %s: connected", self->address);
	self->outage_logged = 0;
	self->refusal_logged = 0;
	self->reported_up = 1;
	shm_gauge_set(self->shm, self->worker, SHM_CTR_REDIS_UP, 1);
	if (self->on_state)
		self->on_state(self, 1, self->state_arg);
}

/* ------------------------------------------------------------ hiredis callbacks */

static void rds_on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
	rds_t *self = ac->data;
	redisReply *reply = r;

	(void)privdata;
	if (reply == NULL || self->destroying)
		return;   /* the context is going away; rds_lost() tells why */
	if (reply->type == REDIS_REPLY_ERROR)
		rds_fail(self, 1, "AUTH failed: %s", reply->str);
}

static void rds_on_select(redisAsyncContext *ac, void *r, void *privdata)
{
	rds_t *self = ac->data;
	redisReply *reply = r;

	(void)privdata;
	if (reply == NULL || self->destroying || self->drop_reason[0] != '\0')
		return;
	if (reply->type == REDIS_REPLY_ERROR)
		rds_fail(self, 1, "SELECT %d failed: %s", self->db, reply->str);
}

/* ROLE is always sent last, so its reply is also the proof that the server
 * answers before anyone is told the connection is up; and a replica is
 * never "up" (with sentinels, the next sentinel is asked). */
static void rds_on_role(redisAsyncContext *ac, void *r, void *privdata)
{
	rds_t *self = ac->data;
	const char *role;

	(void)privdata;
	if (r == NULL || self->destroying || self->drop_reason[0] != '\0')
		return;
	if (store_role_is_master(r, &role)) {
		rds_up(self);
		return;
	}
	snprintf(self->ask_why, sizeof self->ask_why, "ROLE is %s", role);
	self->role_rejected = self->n_sentinels > 0;
	rds_fail(self, self->n_sentinels == 0, "ROLE is %s, not master: not used", role);
}

/* A sentinel watcher's handshake: PING (a sentinel has no SELECT). */
static void rds_on_pong(redisAsyncContext *ac, void *r, void *privdata)
{
	rds_t *self = ac->data;

	(void)privdata;
	if (r == NULL || self->destroying || self->drop_reason[0] != '\0')
		return;
	rds_up(self);
}

/* AUTH, SELECT and ROLE go out pipelined, right behind the connect. */
static void rds_handshake(rds_t *self)
{
	const char *argv[2] = { "AUTH", self->password };
	int ret = REDIS_OK;

	if (self->watch) {
		if (redisAsyncCommand(self->ac, rds_on_pong, NULL, "PING") != REDIS_OK)
			rds_fail(self, 0, "cannot queue the handshake: %s", self->ac->c.errstr);
		return;
	}
	if (self->password[0] != '\0')
		ret = redisAsyncCommandArgv(self->ac, rds_on_auth, NULL, 2, argv, NULL);
	if (ret == REDIS_OK)
		ret = redisAsyncCommand(self->ac, rds_on_select, NULL, "SELECT %d", self->db);
	if (ret == REDIS_OK)
		ret = redisAsyncCommand(self->ac, rds_on_role, NULL, "ROLE");
	if (ret != REDIS_OK)
		rds_fail(self, 0, "cannot queue the handshake: %s", self->ac->c.errstr);
}

static void rds_on_connect(const redisAsyncContext *ac, int status)
{
	rds_t *self = ac->data;
	char reason[sizeof self->drop_reason];

	if (status != REDIS_OK) {
		/* hiredis frees the context right after this. */
		snprintf(reason, sizeof reason, "cannot connect: %s", ac->c.errstr);
		rds_lost(self, reason, 0);
		return;
	}
	if (self->unix_path[0] == '\0')
		redisEnableKeepAlive(&self->ac->c);   /* notice a silently dead peer */
	rds_handshake(self);
}

/* hiredis frees the context right after this. */
static void rds_on_disconnect(const redisAsyncContext *ac, int status)
{
	rds_t *self = ac->data;
	char reason[sizeof self->drop_reason];

	(void)status;
	if (self->drop_reason[0] != '\0') {
		rds_lost(self, self->drop_reason, self->drop_refused);
		return;
	}
	snprintf(reason, sizeof reason, "%s: %s",
		 self->reported_up ? "connection lost" : "cannot connect",
		 ac->c.errstr[0] != '\0' ? ac->c.errstr : "connection closed");
	rds_lost(self, reason, 0);
}

/* READONLY or MASTERDOWN: this server is no primary (any more).  Drop it
 * and find the primary again at once; the first such reply is logged, the
 * rest of the pipeline's go to their callbacks only. */
static void rds_check_primary(rds_t *self, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ERROR || self->drop_reason[0] != '\0' ||
	    (strncmp(r->str, "READONLY", 8) != 0 && strncmp(r->str, "MASTERDOWN", 10) != 0))
		return;
	self->drop_now = 1;
	rds_fail(self, 0, "answered \"%.80s\": not the primary, finding it again", r->str);
}

static void rds_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	rds_t *self = ac->data;
	struct rds_req *req = privdata;
	rds_reply_f *cb = req->cb;
	void *arg = req->arg;

	/* A reply's round trip, for the metrics; NULL is a lost connection. */
	if (reply != NULL && self->shm != NULL)
		shm_hist_observe(self->shm, self->worker, SHM_HIST_REDIS,
				  mono_us() - req->sent_us);
	rds_pending_remove(self, req);
	rds_req_put(self, req);
	/* hiredis answers with NULL only when the context is being freed:
	 * from here on, commands are refused at once. */
	if (reply == NULL && self->state == RDS_UP)
		self->state = RDS_CLOSING;
	if (reply != NULL && !self->destroying)
		rds_check_primary(self, reply);
	if (cb != NULL)
		cb(self, self->destroying ? NULL : reply, arg);
}

/* ------------------------------------------------------------ connecting */

/* Hook a new context into rds: the event adapter, the callbacks. */
void rds_attach(rds_t *self, redisAsyncContext *ac, redisConnectCallback *on_connect,
		redisDisconnectCallback *on_disconnect)
{
	fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
	ac->data = self;
	ac->ev.data = self;
	ac->ev.addRead = rds_ev_add_read;
	ac->ev.delRead = rds_ev_del_read;
	ac->ev.addWrite = rds_ev_add_write;
	ac->ev.delWrite = rds_ev_del_write;
	ac->ev.cleanup = rds_ev_cleanup;
	self->ac = ac;
	self->fd = ac->c.fd;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	redisAsyncSetConnectCallback(ac, on_connect);   /* waits for writability */
}

void rds_connect(rds_t *self)
{
	redisAsyncContext *ac;
	char reason[sizeof self->drop_reason];

	self->state = RDS_CONNECTING;
	if (self->unix_path[0] != '\0')
		ac = redisAsyncConnectUnix(self->unix_path);
	else
		ac = redisAsyncConnect(self->host, self->port);
	if (ac == NULL || ac->err) {
		snprintf(reason, sizeof reason, "cannot connect: %s",
			 ac ? ac->c.errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);   /* no hooks, no callbacks yet */
		rds_lost(self, reason, 0);
		return;
	}
	rds_attach(self, ac, rds_on_connect, rds_on_disconnect);
	su_timer_set_interval(self->timer, rds_on_timer, self, RDS_CONNECT_TIMEOUT_MS);
}

/* Free the context now (never from inside hiredis). */
static void rds_drop(rds_t *self)
{
	if (self->state == RDS_ASKING) {
		rds_sentinel_free_context(self);
	} else if (self->ac != NULL) {
		self->state = RDS_CLOSING;
		/* Pending callbacks get NULL, then cleanup, then on_disconnect
		 * (only if the socket had connected). */
		redisAsyncFree(self->ac);
	}
	rds_lost(self, self->drop_reason, self->drop_refused);
}

static void rds_free(rds_t *self)
{
	struct rds_req *req;

	if (self->uport != NULL)
		uport_defer_cancel(self->uport, &self->flush);
	self->state = RDS_CLOSING;
	if (self->ac != NULL) {
		self->depth++;
		self->ask_closing = 1;
		redisAsyncFree(self->ac);   /* pending callbacks get NULL */
		self->depth--;
	}
	rds_sentinel_destroy(self);   /* the watcher's pending poll gets NULL */
	if (self->wait_index > 0)
		su_root_deregister(self->root, self->wait_index);
	su_timer_destroy(self->timer);
	su_timer_destroy(self->deadline);
	while ((req = self->free_reqs) != NULL) {
		self->free_reqs = req->next;
		free(req);
	}
	free(self->fmt_buf);
	free(self);
}

static void rds_settle(rds_t *self);

/* Write what hiredis holds (a connected socket is nearly always writable;
 * a poll armed, then cancelled, for every batch of commands would cost two
 * io_uring_enter calls).  What the socket does not take leaves POLLOUT
 * wanted, and rds_settle arms the poll.  May free self. */
static void rds_flush(rds_t *self)
{
	self->flushing = 1;
	self->depth++;
	redisAsyncHandleWrite(self->ac);
	self->depth--;
	if (self->destroying) {
		self->flushing = 0;
		rds_settle(self);
		return;
	}
	rds_settle(self);
	self->flushing = 0;
}

/* Is a write of queued commands due?  (Only while up: the handshake waits
 * for POLLOUT as hiredis asks.) */
static int rds_write_due(const rds_t *self)
{
	return self->ac != NULL && self->state == RDS_UP && (self->want & POLLOUT) &&
	       !self->flushing;
}

/* The loop turn's end (uport_defer): the turn's commands leave together. */
static void rds_on_turn_end(struct uport_defer *df)
{
	rds_t *self = (rds_t *)(void *)((char *)df - offsetof(rds_t, flush));

	if (rds_write_due(self))
		rds_flush(self);
	else
		rds_settle(self);
}

/* Before the connection is closed: write now what waits for the turn's end. */
static void rds_write_deferred(rds_t *self)
{
	if (!self->flush.queued || !rds_write_due(self))
		return;
	uport_defer_cancel(self->uport, &self->flush);
	self->depth++;
	redisAsyncHandleWrite(self->ac);
	self->depth--;
}

/* Run when an entry point unwinds: apply what was deferred while hiredis
 * was on the stack.  May free self. */
static void rds_settle(rds_t *self)
{
	if (self->depth > 0)
		return;
	if (self->destroying) {
		rds_free(self);
		return;
	}
	if (self->closed && self->ac != NULL) {
		/* Its callbacks run now and may call us again: count them in. */
		self->depth++;
		rds_drop(self);
		self->depth--;
		rds_settle(self);
		return;
	}
	if (rds_write_due(self)) {
		/* Commands are waiting to be written: at the turn's end, or now. */
		if (self->uport == NULL) {
			rds_flush(self);
			return;
		}
		uport_defer(self->uport, &self->flush);
	}
	if (self->ac != NULL && rds_sync_events(self) < 0)
		rds_fail(self, 0, "cannot watch the socket: no poll slot");
}

/* The next attempt: the primary from the sentinels, or the one address. */
static void rds_start(rds_t *self)
{
	if (self->n_sentinels > 0)
		rds_sentinel_round(self);
	else
		rds_connect(self);
}

void rds_on_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	rds_t *self = arg;

	(void)magic; (void)t;
	self->depth++;
	if (self->state == RDS_WAITING) {
		rds_start(self);
	} else if (self->state == RDS_ASKING) {
		rds_sentinel_on_timer(self);
	} else if (self->drop_reason[0] != '\0') {
		rds_drop(self);
	} else if (self->state == RDS_CONNECTING) {
		snprintf(self->drop_reason, sizeof self->drop_reason,
			 "cannot connect: no answer within %d ms", RDS_CONNECT_TIMEOUT_MS);
		rds_drop(self);
	}
	self->depth--;
	rds_settle(self);
}

static int rds_on_wakeup(su_root_magic_t *magic, su_wait_t *wait, su_wakeup_arg_t *arg)
{
	rds_t *self = arg;
	int revents = su_wait_events(wait, self->fd);
	int have = self->have;

	(void)magic;
	self->depth++;
	/* An error or hang-up goes to whichever side hiredis is waiting on:
	 * reading reports it, and so does the connect check on writing. */
	if (self->ac != NULL && (have & POLLIN) && (revents & (POLLIN | POLLERR | POLLHUP)))
		redisAsyncHandleRead(self->ac);
	if (self->ac != NULL && !self->destroying && (have & POLLOUT)
	    && (revents & (POLLOUT | POLLERR | POLLHUP)))
		redisAsyncHandleWrite(self->ac);
	self->depth--;
	rds_settle(self);
	return 0;
}

/* ------------------------------------------------------------ deadlines */

/*
 * One timer for all commands: they are answered in order, so only the
 * oldest can be late.  The timer is armed when idle and a command is sent,
 * and when it fires it either finds the oldest command late or re-arms
 * itself for the oldest one's deadline: under steady traffic it fires about
 * once per redis_timeout, whatever the rate of commands.
 */
static void rds_on_deadline(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);

static void rds_arm_deadline(rds_t *self, long long in_ms)
{
	if (self->deadline_armed)
		return;
	if (su_timer_set_interval(self->deadline, rds_on_deadline, self,
				  (su_duration_t)(in_ms > 0 ? in_ms : 1)) == 0)
		self->deadline_armed = 1;
}

/* The oldest command is late: the server is treated as down.  Dropping the
 * context fails every pending command (each callback gets NULL, once). */
static void rds_on_deadline(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	rds_t *self = arg;
	long long late;

	(void)magic; (void)t;
	self->deadline_armed = 0;
	if (self->pending == NULL || self->ac == NULL || self->state != RDS_UP)
		return;
	late = (long long)mono_ms() - self->pending->sent_ms;
	if (late < self->timeout_ms) {
		rds_arm_deadline(self, self->timeout_ms - late);
		return;
	}
	self->depth++;
	snprintf(self->drop_reason, sizeof self->drop_reason,
		 "no reply within %d ms (redis_timeout): connection dropped", self->timeout_ms);
	self->drop_refused = 0;
	rds_drop(self);
	self->depth--;
	rds_settle(self);
}

/* ------------------------------------------------------------ commands */

static int rds_send(rds_t *self, rds_reply_f *cb, void *arg, const char *cmd, int len)
{
	struct rds_req *req;
	int ret;

	/* "*0\r\n": no command name; hiredis would assert on it. */
	if (len < 0 || strncmp(cmd, "*0\r\n", 4) == 0)
		return len == -1 ? -ENOMEM : -EINVAL;
	req = rds_req_get(self);
	if (req == NULL)
		return -ENOMEM;
	req->cb = cb;
	req->arg = arg;
	req->sent_ms = (long long)mono_ms();
	req->sent_us = self->shm != NULL ? mono_us() : 0;
	self->depth++;
	ret = redisAsyncFormattedCommand(self->ac, rds_on_reply, req, cmd, (size_t)len);
	self->depth--;
	if (ret == REDIS_OK) {
		rds_pending_push(self, req);
		rds_arm_deadline(self, self->timeout_ms);
	} else {
		rds_req_put(self, req);
	}
	rds_settle(self);
	return ret == REDIS_OK ? 0 : -ENOTCONN;
}

int rds_command(rds_t *self, rds_reply_f *cb, void *arg, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int len;
	int ret;

	if (self->state != RDS_UP)
		return -ENOTCONN;
	if (fmt == NULL)
		return -EINVAL;
	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	ret = rds_send(self, cb, arg, cmd, len);
	if (len >= 0)
		redisFreeCommand(cmd);
	return ret;
}

/* Write "<prefix><n>\r\n" at out (room for 24 bytes); the bytes written. */
static size_t rds_resp_head(char *out, char prefix, size_t n)
{
	size_t len;

	out[0] = prefix;
	len = 1 + dec_u64(n, out + 1);
	out[len++] = '\r';
	out[len++] = '\n';
	return len;
}

/*
 * Why our own encoder: hiredis's redisFormatCommandArgv allocates a new
 * buffer for every command and prints each argument's length with
 * sprintf.  A call sends a few commands (its CDR script has some 45
 * arguments), and the worker's profile showed the formatting at about 2 %
 * of its CPU.  Here a length costs a few divisions, and rds_commandargv
 * reuses one buffer.
 */
size_t rds_resp_encode(char *out, size_t size, int argc, const char **argv, const size_t *lens)
{
	char head[24];
	size_t total = 0;

	for (int i = -1; i < argc; i++) {
		size_t len = i < 0 ? (size_t)argc : lens ? lens[i] : strlen(argv[i]);
		size_t h = rds_resp_head(head, i < 0 ? '*' : '$', len);
		size_t need = h + (i < 0 ? 0 : len + 2);

		if (total + need <= size) {
			memcpy(out + total, head, h);
			if (i >= 0) {
				memcpy(out + total + h, argv[i], len);
				memcpy(out + total + h + len, "\r\n", 2);
			}
		}
		total += need;
	}
	return total;
}

int rds_commandargv(rds_t *self, rds_reply_f *cb, void *arg, int argc, const char **argv,
		    const size_t *lens)
{
	size_t len;

	if (self->state != RDS_UP)
		return -ENOTCONN;
	if (argc < 1 || argv == NULL)
		return -EINVAL;
	len = rds_resp_encode(self->fmt_buf, self->fmt_cap, argc, argv, lens);
	if (len >= self->fmt_cap) {
		size_t cap = len + 1 > 512 ? len + 1 : 512;
		char *buf = realloc(self->fmt_buf, cap);

		if (buf == NULL)
			return -ENOMEM;
		self->fmt_buf = buf;
		self->fmt_cap = cap;
		len = rds_resp_encode(buf, cap, argc, argv, lens);
	}
	if (len > INT_MAX)
		return -EINVAL;
	return rds_send(self, cb, arg, self->fmt_buf, (int)len);
}

/* ------------------------------------------------------------ life cycle */

static int rds_create_mode(su_root_t *root, const struct rds_config *cfg, int watch,
			   rds_t **out)
{
	rds_t *self = calloc(1, sizeof *self);
	int ret;

	if (self == NULL)
		return -ENOMEM;
	ret = rds_configure(self, cfg);
	if (ret < 0) {
		free(self);
		return ret;
	}
	self->watch = watch;
	self->root = root;
	self->fd = -1;
	self->backoff_ms = RDS_BACKOFF_MIN_MS;
	self->down_since_ms = (long long)mono_ms();
	self->uport = uport_of_root(root);
	self->flush.cb = rds_on_turn_end;
	self->timer = su_timer_create(su_root_task(root), RDS_CONNECT_TIMEOUT_MS);
	self->deadline = su_timer_create(su_root_task(root), self->timeout_ms);
	if (self->timer == NULL || self->deadline == NULL) {
		su_timer_destroy(self->timer);
		su_timer_destroy(self->deadline);
		free(self);
		return -ENOMEM;
	}
	self->depth++;
	rds_start(self);
	self->depth--;
	rds_settle(self);
	*out = self;
	return 0;
}

int rds_create(su_root_t *root, const struct rds_config *cfg, rds_t **out)
{
	return rds_create_mode(root, cfg, 0, out);
}

/* A sentinel watcher (rds_sentinel.c): PING for a handshake, quiet logs. */
int rds_create_watcher(su_root_t *root, const char *address, rds_t **out)
{
	struct rds_config cfg;

	memset(&cfg, 0, sizeof cfg);
	snprintf(cfg.address, sizeof cfg.address, "%s", address);
	return rds_create_mode(root, &cfg, 1, out);
}

void rds_destroy(rds_t *self)
{
	if (self == NULL || self->destroying)
		return;
	rds_write_deferred(self);
	self->destroying = 1;
	self->on_state = NULL;
	if (self->state == RDS_UP)
		self->state = RDS_CLOSING;
	if (self->depth == 0)
		rds_free(self);
}

void rds_close(rds_t *self)
{
	unsigned n = 0;

	if (self == NULL || self->closed || self->destroying)
		return;
	rds_write_deferred(self);
	self->closed = 1;
	self->on_state = NULL;
	if (self->state == RDS_UP)
		self->state = RDS_CLOSING;
	su_timer_reset(self->timer);
	if (self->poll != NULL)
		su_timer_reset(self->poll);
	rds_close(self->watcher);
	for (struct rds_req *req = self->pending; req != NULL; req = req->next)
		n++;
	if (n > 0)
		log_info("redis %s: closed with %u command%s pending: they fail now", self->address,
			 n, n == 1 ? "" : "s");
	snprintf(self->drop_reason, sizeof self->drop_reason, "closed");
	rds_settle(self);   /* from inside a callback: when it unwinds */
}

int rds_connected(const rds_t *self)
{
	return self->state == RDS_UP;
}

const char *rds_prefix(const rds_t *self)
{
	return self->prefix;
}

const char *rds_address(const rds_t *self)
{
	return self->address;
}

void rds_set_counters(rds_t *self, shm_t *shm, unsigned worker)
{
	self->shm = shm;
	self->worker = worker;
	/* A restarted worker finds its predecessor's value: say what is true now. */
	shm_gauge_set(shm, worker, SHM_CTR_REDIS_UP, self->reported_up ? 1 : 0);
}

void rds_on_state(rds_t *self, rds_state_f *fn, void *arg)
{
	self->on_state = fn;
	self->state_arg = arg;
}
