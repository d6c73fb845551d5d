/*
 * rds_sentinel — finding a worker's Redis primary through Sentinel.  See
 * rds.h for the states; this file is the asking part of the rds module.
 *
 * Design note.  Asking a sentinel is one more use of rds's one connection
 * slot: the context goes to sentinel i instead of a primary, the same event
 * adapter watches its socket, and the same timer is its deadline
 * (RDS_SENTINEL_TIMEOUT_MS for connect and answer).  hiredis's callbacks
 * only record the outcome (ask_result, ask_why) and set the timer to zero;
 * the timer, at the top of the loop, frees the sentinel's context and
 * either connects to the named primary (rds.c, whose handshake then checks
 * ROLE) or goes on with the next sentinel.  Never freeing a context from
 * inside hiredis is rds.c's rule, kept here.
 *
 * A sentinel's failover is seen three ways: the primary's connection is
 * lost or refused, a reply says READONLY or MASTERDOWN (rds.c), or the
 * watcher says so.  The watcher is a second rds in watch mode, a
 * persistent connection to the sentinel whose primary came up, asked every
 * RDS_SENTINEL_POLL_MS for the primary's address: a manual failover
 * (SENTINEL FAILOVER) leaves the old primary answering "master" until
 * Sentinel reconfigures it, which can take 10 s and more, and writes made
 * there meanwhile are wiped when it resyncs.  The poll is one small
 * command per worker per 500 ms; a +switch-master subscription would need
 * a reply-less (pub/sub) mode that rds does not have on purpose.
 */
#include "worker/rds_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "b2bua/log.h"

/* ------------------------------------------------------------ config */

int rds_sentinel_configure(rds_t *self, const struct rds_config *cfg)
{
	size_t len = strnlen(cfg->master_name, sizeof cfg->master_name);

	if (cfg->n_sentinels > RDS_SENTINELS_MAX || len == 0 || len == sizeof cfg->master_name)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_sentinels; i++) {
		if (strnlen(cfg->sentinels[i], sizeof cfg->sentinels[i]) == sizeof cfg->sentinels[i]
		    || store_sentinel_parse(cfg->sentinels[i], &self->sentinels[i], NULL) < 0)
			return -EINVAL;
		store_address_format(&self->sentinels[i], self->sentinel_text[i],
				     sizeof self->sentinel_text[i]);
	}
	memcpy(self->master_name, cfg->master_name, len + 1);
	self->n_sentinels = cfg->n_sentinels;
	snprintf(self->address, sizeof self->address, "master %s", self->master_name);
	return 0;
}

/* ------------------------------------------------------------ asking one sentinel */

/* Record how this sentinel's turn ended (the first outcome counts) and let
 * the timer act on it from the top of the loop. */
static void rds_sentinel_done(rds_t *self, int result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rds_sentinel_done(rds_t *self, int result, const char *fmt, ...)
{
	va_list ap;

	if (self->ask_result != 0)
		return;
	self->ask_result = result;
	va_start(ap, fmt);
	vsnprintf(self->ask_why, sizeof self->ask_why, fmt, ap);
	va_end(ap);
	su_timer_set_interval(self->timer, rds_on_timer, self, 0);
}

/* The answer: the primary's address becomes rds's target (and its name in
 * log lines), or what was wrong with it is this sentinel's failure. */
static void rds_sentinel_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	rds_t *self = ac->data;
	struct store_address a;
	char why[160];

	(void)privdata;
	if (r == NULL || self->destroying || self->ask_closing)
		return;
	if (store_sentinel_answer(r, &a, why, sizeof why) < 0) {
		rds_sentinel_done(self, -1, "%s", why);
		return;
	}
	self->unix_path[0] = '\0';
	snprintf(self->host, sizeof self->host, "%s", a.host);
	self->port = a.port;
	store_address_format(&a, self->address, sizeof self->address);
	rds_sentinel_done(self, 1, "named %s", self->address);
}

static void rds_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
	rds_t *self = ac->data;

	if (self->destroying || self->ask_closing)
		return;
	if (status != REDIS_OK) {
		rds_sentinel_done(self, -1, "cannot connect: %s", ac->c.errstr);
		return;
	}
	if (redisAsyncCommand(self->ac, rds_sentinel_on_reply, NULL,
			      "SENTINEL get-master-addr-by-name %s", self->master_name) != REDIS_OK)
		rds_sentinel_done(self, -1, "cannot send the question: %s", ac->c.errstr);
}

static void rds_sentinel_on_disconnect(const redisAsyncContext *ac, int status)
{
	rds_t *self = ac->data;

	(void)status;
	if (self->destroying || self->ask_closing)
		return;
	rds_sentinel_done(self, -1, "connection lost: %s",
			  ac->c.errstr[0] != '\0' ? ac->c.errstr : "closed");
}

/* Ask sentinel ask_index; the outcome comes back through the timer. */
static void rds_sentinel_ask(rds_t *self)
{
	const struct store_address *a = &self->sentinels[self->ask_index];
	redisAsyncContext *ac;

	self->state = RDS_ASKING;
	self->ask_result = 0;
	self->ask_closing = 0;
	self->ask_why[0] = '\0';
	self->asked++;
	su_timer_set_interval(self->timer, rds_on_timer, self, RDS_SENTINEL_TIMEOUT_MS);
	ac = redisAsyncConnect(a->host, a->port);
	if (ac == NULL || ac->err) {
		rds_sentinel_done(self, -1, "cannot connect: %s",
				  ac ? ac->c.errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);   /* no hooks, no callbacks yet */
		return;
	}
	rds_attach(self, ac, rds_sentinel_on_connect, rds_sentinel_on_disconnect);
}

/* A sentinel's trouble: a warning once per outage per sentinel. */
static void rds_sentinel_log(rds_t *self, const char *why)
{
	unsigned bit = 1u << self->ask_index;

	if (self->closed)
		return;
	if (self->sentinel_logged & bit) {
		log_debug("redis sentinel %s (master %s): %s: skipped",
			  self->sentinel_text[self->ask_index], self->master_name, why);
		return;
	}
	log_warn("redis sentinel %s (master %s): %s: skipped",
		 self->sentinel_text[self->ask_index], self->master_name, why);
	self->sentinel_logged |= bit;
}

/* This sentinel gave nothing usable: the next one, or the round is over. */
static void rds_sentinel_skip(rds_t *self)
{
	char reason[sizeof self->ask_why + 96];

	rds_sentinel_log(self, self->ask_why);
	if (self->asked >= self->n_sentinels) {
		snprintf(reason, sizeof reason, "no sentinel of %zu named a usable primary "
			 "(last: %s)", self->n_sentinels, self->ask_why);
		rds_lost(self, reason, 0);
		return;
	}
	self->ask_index = (self->ask_index + 1) % self->n_sentinels;
	rds_sentinel_ask(self);
}

/* ------------------------------------------------------------ called by rds.c */

void rds_sentinel_round(rds_t *self)
{
	if (self->ask_continue) {   /* within a round: ask_index is next */
		self->ask_continue = 0;
		rds_sentinel_ask(self);
		return;
	}
	self->asked = 0;
	self->ask_index = self->ask_good;
	rds_sentinel_ask(self);
}

void rds_sentinel_free_context(rds_t *self)
{
	if (self->ac == NULL)
		return;
	self->ask_closing = 1;
	redisAsyncFree(self->ac);   /* our callbacks see ask_closing and return */
	self->ac = NULL;
}

/* The timer in RDS_ASKING: an outcome was recorded, or the deadline passed. */
void rds_sentinel_on_timer(rds_t *self)
{
	if (self->ask_result == 0) {
		self->ask_result = -1;
		snprintf(self->ask_why, sizeof self->ask_why, "no answer within %d ms",
			 RDS_SENTINEL_TIMEOUT_MS);
	}
	rds_sentinel_free_context(self);
	if (self->ask_result > 0) {
		rds_connect(self);
		return;
	}
	rds_sentinel_skip(self);
}

/*
 * From rds_lost(): a primary whose ROLE was not master is this sentinel's
 * failure, and the next sentinel is asked (from the timer: we may be inside
 * hiredis).  Returns 1 when it took over, 0 when rds_lost() goes on as
 * usual (a plain connection failure, or every sentinel was tried).
 */
int rds_sentinel_lost(rds_t *self)
{
	char why[sizeof self->ask_why + 80];

	if (!self->role_rejected)
		return 0;
	self->role_rejected = 0;
	snprintf(why, sizeof why, "named %.60s, whose %s", self->address, self->ask_why);
	rds_sentinel_log(self, why);
	if (self->asked >= self->n_sentinels || self->closed)
		return 0;
	self->ask_index = (self->ask_index + 1) % self->n_sentinels;
	self->ask_continue = 1;   /* the timer asks ask_index, not a new round */
	su_timer_set_interval(self->timer, rds_on_timer, self, 0);
	return 1;
}

/* ------------------------------------------------------------ the watcher */

static void rds_sentinel_on_poll(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);

/* The watcher's answer: another primary than ours means a failover. */
static void rds_sentinel_on_poll_reply(rds_t *watcher, redisReply *reply, void *arg)
{
	rds_t *self = arg;
	struct store_address a;
	char why[160], text[STORE_ADDRESS_TEXT_MAX];

	(void)watcher;
	self->poll_inflight = 0;
	if (reply == NULL || self->state != RDS_UP)
		return;
	if (store_sentinel_answer(reply, &a, why, sizeof why) < 0) {
		log_debug("redis sentinel %s (master %s): %s", self->sentinel_text[self->watch_index],
			  self->master_name, why);
		return;
	}
	if (strcmp(a.host, self->host) == 0 && a.port == self->port)
		return;
	store_address_format(&a, text, sizeof text);
	self->drop_now = 1;
	rds_fail(self, 0, "sentinel %s names %s as the primary now: switching",
		 self->sentinel_text[self->watch_index], text);
}

static void rds_sentinel_on_poll(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	rds_t *self = arg;

	(void)magic; (void)t;
	if (self->state == RDS_UP && !self->poll_inflight && self->watcher != NULL &&
	    rds_connected(self->watcher) &&
	    rds_command(self->watcher, rds_sentinel_on_poll_reply, self,
			"SENTINEL get-master-addr-by-name %s", self->master_name) == 0)
		self->poll_inflight = 1;
	if (!self->closed)
		su_timer_set_interval(self->poll, rds_sentinel_on_poll, self, RDS_SENTINEL_POLL_MS);
}

/* Watch the sentinel that named this primary (a new watcher when it is
 * another one than before). */
static void rds_sentinel_watch(rds_t *self)
{
	if (self->watcher != NULL && self->watch_index == self->ask_index)
		return;
	rds_destroy(self->watcher);   /* its pending poll gets NULL */
	self->watcher = NULL;
	self->watch_index = self->ask_index;
	if (rds_create_watcher(self->root, self->sentinel_text[self->ask_index],
			       &self->watcher) < 0) {
		log_warn("redis sentinel %s (master %s): cannot watch it: failovers are "
			 "followed on errors only", self->sentinel_text[self->ask_index],
			 self->master_name);
		return;
	}
	if (self->poll == NULL)
		self->poll = su_timer_create(su_root_task(self->root), RDS_SENTINEL_POLL_MS);
	if (self->poll != NULL)
		su_timer_set_interval(self->poll, rds_sentinel_on_poll, self, RDS_SENTINEL_POLL_MS);
}

/* The primary is up: the connected line, and this sentinel goes first from
 * now on.  down_ms < 0: there was no outage to report. */
void rds_sentinel_up(rds_t *self, long long down_ms)
{
	const char *via = self->sentinel_text[self->ask_index];

	if (down_ms >= 0)
		log_info("redis primary %s (via sentinel %s, master %s): connected (down %lld ms)",
			 self->address, via, self->master_name, down_ms);
	else
		log_info("redis primary %s (via sentinel %s, master %s): connected",
			 self->address, via, self->master_name);
	self->ask_good = self->ask_index;
	self->sentinel_logged = 0;
	rds_sentinel_watch(self);
}

void rds_sentinel_destroy(rds_t *self)
{
	if (self->poll != NULL)
		su_timer_destroy(self->poll);
	self->poll = NULL;
	rds_destroy(self->watcher);
	self->watcher = NULL;
}
