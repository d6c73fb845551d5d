/*
 * hosts — host liveness and the calls of a lost host.  See hosts.h for the
 * contract and for why this runs in the management process.
 *
 * Design note.  Redis does the deciding (store_hosts.c): the heartbeat and
 * the claim are scripts that read Redis's clock, and a claim is SET NX, so
 * two surviving hosts never both close one lost host's calls.  Here is the
 * policy: every host_lease/3 a heartbeat; every host_lease/2 a sweep that
 * lists the hosts, claims each one that has work (its lease ran out and
 * its loss was not handled, or records are left; or a new life of it left
 * the old one's records) and closes its calls.  A call is closed by
 * writing its CDR from its record: ended at the last heartbeat of the life
 * that wrote the record, ANSWERED, hung up by the system, cause host_lost,
 * closed_by us, through the CDR script (idempotent by CDR id, and it
 * deletes the record in the same step), after freeing its max_calls
 * entries.  A record that cannot be read is logged once and moved aside
 * (<p>callsbad:<node>), never retried, never fatal.  What Redis did not
 * take (the connection dropped) stays: the claim lapses after
 * HOSTS_CLAIM_TTL_MS and the next sweep, ours or another host's, does it.
 */
#define _GNU_SOURCE

#include "b2bua/hosts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "shm/shm.h"
#include "store/store.h"
#include "worker/cdr.h"

/* How long a claim on a lost host lasts if its claimant dies meanwhile. */
#define HOSTS_CLAIM_TTL_MS 30000
/* Calls closed per round trip. */
#define HOSTS_BATCH 128

struct hosts {
	const struct config *cfg;
	store_sync_t *store;
	char sip[96];               /* our SIP address, shown by `show hosts` */
	unsigned lease_ms;
	uint64_t next_beat;         /* mono_ms */
	uint64_t next_sweep;
	unsigned beat_failures;     /* in a row: logged once, and the beats back off */
};

int hosts_create(const struct config *cfg, hosts_t **out)
{
	hosts_t *h = calloc(1, sizeof *h);

	if (h == NULL)
		return -ENOMEM;
	if (store_sync_create(cfg, &h->store) < 0) {
		free(h);
		return -ENOMEM;
	}
	h->cfg = cfg;
	h->lease_ms = (unsigned)cfg->host_lease;
	/* "host:port", an IPv6 address in brackets, as in a URI; the first
	 * address (where other hosts send to this one). */
	snprintf(h->sip, sizeof h->sip, strchr(cfg->advertise[0], ':') ? "[%s]:%d" : "%s:%d",
		 cfg->advertise[0], cfg->sip_port);
	*out = h;
	return 0;
}

void hosts_destroy(hosts_t *h)
{
	if (h == NULL)
		return;
	store_sync_destroy(h->store);
	free(h);
}

/* ------------------------------------------------------------ the heartbeat */

static int hosts_beat(hosts_t *h)
{
	struct store_error err;
	int ret = store_host_beat(h->store, h->cfg->node_id, hosts_epoch(), h->sip, h->lease_ms,
				  &err);

	if (ret < 0 && h->beat_failures == 0)
		log_warn("host lease not renewed: %s (other hosts will take this host for "
			 "lost after %u ms)", err.text, h->lease_ms);
	else if (ret == 0 && h->beat_failures > 0)
		log_info("host lease renewed again");
	h->beat_failures = ret < 0 ? h->beat_failures + 1 : 0;
	return ret;
}

/* ------------------------------------------------------------ closing calls */

/* One call to close: its record, its CDR's fields and the room they need. */
struct hosts_call {
	struct cdr_record rec;
	const char *names[CDR_RECORD_NAMES];
	const char *fields[CDR_FIELDS];
	const char *values[CDR_FIELDS];
	char nums[CDR_NUM_BUF];
};

/* What closing one host's calls came to. */
struct hosts_tally {
	size_t closed;              /* CDR stored now, or found stored */
	size_t left;                /* Redis did not take it: for the next sweep */
	size_t unknown_life;        /* of a life whose last heartbeat is unknown */
};

/* When a record's call ended, as far as anyone can tell: the last heartbeat
 * of the life that wrote it; 0 when that life is unknown. */
static uint64_t hosts_end_of(const struct store_host_claim *cl, uint64_t epoch)
{
	if (epoch == cl->epoch)
		return cl->beat_ms;
	if (epoch == cl->prev_epoch)
		return cl->prev_beat_ms;
	return 0;
}

/* Whether a record of life `epoch` is the claim's to close: a lost host's
 * records of that life or an earlier one (not of a newer life, which a
 * restart may have begun since the claim), or a live host's records of
 * its earlier lives (never of the present one). */
static int hosts_covers(const struct store_host_claim *cl, uint64_t epoch)
{
	return cl->dead ? epoch <= cl->epoch : epoch != cl->epoch;
}

/* The CDR of a record's call; 1 when it is to be written, 0 when the call
 * is not the claim's (a live one), negative when malformed. */
static int hosts_prepare(hosts_t *h, const struct store_call_rec *r,
			 const struct store_host_claim *cl, struct hosts_call *call,
			 struct hosts_tally *t)
{
	struct cdr *c = &call->rec.cdr;
	uint64_t end;
	int n;

	if (cdr_record_from_text(r->text, r->len, &call->rec) < 0 || strcmp(c->id, r->id) != 0)
		return -EINVAL;
	if (!hosts_covers(cl, call->rec.epoch))
		return 0;
	end = hosts_end_of(cl, call->rec.epoch);
	if (end == 0)
		t->unknown_life++;
	if (end < c->answer_ms)
		end = c->answer_ms;
	c->end_ms = end;
	c->billable_ms = c->answer_ms ? end - c->answer_ms : 0;
	c->disposition = CDR_ANSWERED;
	c->hangup_by = CDR_PARTY_SYSTEM;
	snprintf(c->cause, sizeof c->cause, "%s", CDR_CAUSE_HOST_LOST);
	snprintf(c->closed_by, sizeof c->closed_by, "%s", h->cfg->node_id);
	n = cdr_encode(c, call->fields, call->values, CDR_FIELDS, call->nums, sizeof call->nums);
	if (n < 0)
		return n;
	for (unsigned k = 0; k < call->rec.n_names; k++)
		call->names[k] = call->rec.names[k];
	return 1;
}

/* Write one batch of prepared calls. */
static void hosts_close_batch(hosts_t *h, const char *node, struct hosts_call *calls,
			      struct store_close_item *items, size_t n, struct hosts_tally *t)
{
	struct store_error err;

	for (size_t i = 0; i < n; i++)
		items[i] = (struct store_close_item){
			.id = calls[i].rec.cdr.id, .names = calls[i].names,
			.n_names = calls[i].rec.n_names, .n = CDR_FIELDS,
			.fields = calls[i].fields, .values = calls[i].values,
		};
	if (store_host_close(h->store, node, items, n, &err) < 0) {
		log_warn("host %s: closing %zu calls: %s (retried at the next sweep)", node, n,
			 err.text);
		t->left += n;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i].outcome == STORE_CDR_STORED || items[i].outcome == STORE_CDR_DUP)
			t->closed++;
		else
			t->left++;
		if (items[i].outcome == STORE_CDR_REJECT)
			log_error("host %s: CDR %s of a lost call refused by Redis: %s", node,
				  items[i].id, items[i].error);
	}
}

/* A record that is no record: said once, and kept where it bothers nobody. */
static void hosts_set_aside(hosts_t *h, const char *node, const struct store_call_rec *r)
{
	struct store_error err;

	if (store_call_rec_aside(h->store, node, r->id, &err) < 0)
		log_warn("host %s: malformed call record %.80s not moved aside: %s", node, r->id,
			 err.text);
	else
		log_warn("host %s: call record %.80s is malformed: kept aside in %scallsbad:%s, "
			 "no CDR written for it", node, r->id, h->cfg->redis_prefix, node);
}

/* Close every record of `node` the claim covers. */
static int hosts_close_calls(hosts_t *h, const char *node, const struct store_host_claim *cl,
			     struct hosts_tally *t)
{
	struct store_call_rec *recs;
	struct store_error err;
	struct hosts_call *calls;
	struct store_close_item *items;
	size_t n, k = 0;

	if (store_call_recs(h->store, node, &recs, &n, &err) < 0) {
		log_warn("host %s: cannot read its call records: %s", node, err.text);
		return -EIO;
	}
	calls = calloc(HOSTS_BATCH, sizeof *calls);
	items = calloc(HOSTS_BATCH, sizeof *items);
	for (size_t i = 0; calls != NULL && items != NULL && i < n; i++) {
		int ret = hosts_prepare(h, &recs[i], cl, &calls[k], t);

		if (ret < 0)
			hosts_set_aside(h, node, &recs[i]);
		else if (ret > 0 && ++k == HOSTS_BATCH) {
			hosts_close_batch(h, node, calls, items, k, t);
			k = 0;
		}
	}
	if (calls != NULL && items != NULL && k > 0)
		hosts_close_batch(h, node, calls, items, k, t);
	if (calls == NULL || items == NULL)
		t->left += n;
	free(calls);
	free(items);
	store_call_recs_free(recs, n);
	return 0;
}

/* The one line an operator reads about a lost host (or a life of it). */
static void hosts_log(hosts_t *h, const char *node, const struct store_host_claim *cl,
		      int first, const struct hosts_tally *t)
{
	const char *me = h->cfg->node_id;

	if (cl->dead && first)
		log_warn("host %s lost (last heartbeat %.1f s ago): closed %zu calls, CDRs written "
			 "by %s", node, (double)(cl->now_ms - cl->beat_ms) / 1000, t->closed, me);
	else if (cl->dead)
		log_warn("host %s (lost): closed %zu more calls, CDRs written by %s", node,
			 t->closed, me);
	else
		log_warn("host %s restarted: closed %zu calls of its previous life (last heartbeat "
			 "%.1f s ago), CDRs written by %s", node, t->closed,
			 (double)(cl->now_ms - cl->prev_beat_ms) / 1000, me);
	if (t->left > 0)
		log_warn("host %s: %zu calls not closed yet (Redis did not take them): retried",
			 node, t->left);
	if (t->unknown_life > 0)
		log_warn("host %s: %zu calls of an older life with no known last heartbeat: "
			 "billed 0 s", node, t->unknown_life);
}

/* We hold the claim on `node`: close its calls, note it, release it. */
static void hosts_close(hosts_t *h, const char *node, const struct store_host_claim *cl,
			int first)
{
	struct hosts_tally t = { 0, 0, 0 };
	struct store_error err;

	if (hosts_close_calls(h, node, cl, &t) < 0)
		return;   /* the claim lapses; the next sweep tries again */
	hosts_log(h, node, cl, first, &t);
	if (t.left > 0)
		return;
	if (store_host_closed(h->store, node, h->cfg->node_id, cl->dead ? cl->epoch : cl->prev_epoch,
			      cl->dead, t.closed, &err) < 0)
		log_warn("host %s: closing noted nowhere: %s", node, err.text);
}

/* Claim `node` and close its calls if there is work and the claim is ours. */
static void hosts_try(hosts_t *h, const struct store_host *host)
{
	struct store_host_claim cl;
	struct store_error err;
	int ret = store_host_claim(h->store, host->node, h->cfg->node_id, HOSTS_CLAIM_TTL_MS,
				   &cl, &err);

	if (ret < 0)
		log_warn("host %s: claim failed: %s", host->node, err.text);
	if (ret <= 0)
		return;
	if (cl.dead && strcmp(host->node, h->cfg->node_id) == 0) {
		/* Our own lease ran out (our heartbeats failed): our calls are
		 * live, another host decides.  Let the claim go at once. */
		store_host_closed(h->store, host->node, h->cfg->node_id, 0, 1, 0, &err);
		return;
	}
	hosts_close(h, host->node, &cl, host->closed_epoch != host->epoch);
}

/* Every host with work for a closer, by the list's view (the claim checks again). */
static void hosts_sweep(hosts_t *h)
{
	struct store_host *list;
	struct store_error err;
	uint64_t now;
	size_t n;

	if (store_hosts_list(h->store, &list, &n, &now, &err) < 0) {
		log_debug("hosts: cannot list: %s", err.text);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_host *x = &list[i];
		int dead = x->beat_ms + x->lease_ms < now;

		if (dead && strcmp(x->node, h->cfg->node_id) == 0)
			continue;   /* our heartbeats failed: not ours to judge */
		if ((dead && ((x->closed_epoch != x->epoch && x->stopped_epoch != x->epoch)
			      || x->calls > 0)) || x->prev_open)
			hosts_try(h, x);
	}
	free(list);
}

/* ------------------------------------------------------------ the loops */

void hosts_start(hosts_t *h)
{
	struct store_host self;

	hosts_set_epoch(shm_now_ms());
	if (hosts_beat(h) < 0)
		return;   /* the management process closes our leftovers later */
	memset(&self, 0, sizeof self);
	snprintf(self.node, sizeof self.node, "%s", h->cfg->node_id);
	self.epoch = self.closed_epoch = hosts_epoch();
	hosts_try(h, &self);
}

/* When to beat again: every lease/3; after failures, less and less often
 * (up to once a lease), so that a hung Redis (each try waits up to a second
 * for it) does not keep the CLI waiting most of the time. */
static uint64_t hosts_beat_interval(const hosts_t *h)
{
	uint64_t ms = h->lease_ms / 3;

	for (unsigned i = 1; i < h->beat_failures && ms < h->lease_ms; i++)
		ms *= 2;
	return ms < h->lease_ms ? ms : h->lease_ms;
}

void hosts_stop(hosts_t *h)
{
	struct store_error err;
	int ret = store_host_stop(h->store, h->cfg->node_id, hosts_epoch(), &err);

	if (ret < 0)
		log_warn("host stop not noted: %s (other hosts will report this host lost)",
			 err.text);
	else if (ret == 0)
		log_info("host stops with answered calls left: other hosts will close them");
}

int hosts_tick(hosts_t *h)
{
	uint64_t now = mono_ms();
	uint64_t next;

	if (now >= h->next_beat) {
		hosts_beat(h);
		h->next_beat = now + hosts_beat_interval(h);
	}
	if (now >= h->next_sweep) {
		/* Redis unreachable for our heartbeat: no use sweeping now. */
		if (h->beat_failures == 0)
			hosts_sweep(h);
		h->next_sweep = now + h->lease_ms / 2;
	}
	now = mono_ms();
	next = h->next_beat < h->next_sweep ? h->next_beat : h->next_sweep;
	return next > now ? (int)(next - now) : 0;
}
