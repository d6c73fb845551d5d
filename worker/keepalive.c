/*
 * keepalive — OPTIONS to the NAT'd bindings this worker accepted.  See
 * keepalive.h for the design.
 *
 * The bindings are a hash table of chained entries (user and Contact are
 * the key), walked once a second by the tick.  An entry with an OPTIONS in
 * flight owns its leg and transaction.  An entry being removed is out of
 * the table at once (a REGISTER meanwhile makes a new one) but is freed by
 * the removal's callback, which holds it.
 */
#include "worker/keepalive.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>

#include "b2bua/log.h"
#include "store/store.h"
#include "worker/registrar.h"

#define KEEPALIVE_BUCKETS 4096      /* power of 2 */
#define KEEPALIVE_TICK_MS 1000

struct keepalive_entry {
	struct keepalive_entry *next;    /* hash chain */
	keepalive_t *ka;
	char user[64];
	char contact[REGISTRAR_URI_MAX];
	char route[REGISTRAR_ADDR_MAX + 32]; /* "sip:source;transport=udp" */
	char source[REGISTRAR_ADDR_MAX];
	char call_id[128];
	uint32_t cseq;
	uint64_t expires_ms;
	uint64_t next_ms;                /* next OPTIONS due */
	unsigned failures;               /* in a row */
	int removing;                    /* the removal script is running */
	int gone;                        /* dropped while removing: free when it answers */
	nta_leg_t *leg;                  /* the OPTIONS in flight, or NULL */
	nta_outgoing_t *orq;
};

struct keepalive {
	su_root_t *root;
	nta_agent_t *agent;
	const char *ident;
	const char *ident4, *ident6;     /* dual stack: per family of the binding, or NULL */
	rds_t *rds;
	shm_t *shm;
	const struct config *cfg;
	unsigned worker;
	su_timer_t *tick;
	unsigned count;
	uint64_t seq;                    /* Call-IDs of our OPTIONS */
	char from[160];                  /* From of our OPTIONS */
	struct keepalive_entry *buckets[KEEPALIVE_BUCKETS];
};

static struct log_limit keepalive_full_limit = { .what = "NAT bindings not kept alive (full)" };

/* ------------------------------------------------------------ the table */

static unsigned keepalive_hash(const char *user, const char *contact)
{
	uint32_t h = 2166136261u;

	for (const char *p = user; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;
	for (const char *p = contact; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h & (KEEPALIVE_BUCKETS - 1);
}

static struct keepalive_entry **keepalive_slot(keepalive_t *ka, const char *user,
					       const char *contact)
{
	struct keepalive_entry **pp = &ka->buckets[keepalive_hash(user, contact)];

	while (*pp && (strcmp((*pp)->user, user) != 0 || strcmp((*pp)->contact, contact) != 0))
		pp = &(*pp)->next;
	return pp;
}

/* Let the OPTIONS in flight go (NTA calls back no more). */
static void keepalive_cancel(struct keepalive_entry *e)
{
	if (e->orq)
		nta_outgoing_destroy(e->orq);
	if (e->leg)
		nta_leg_destroy(e->leg);
	e->orq = NULL;
	e->leg = NULL;
}

/* Unlink *pp and free it, unless a removal still waits for Redis. */
static void keepalive_unlink(keepalive_t *ka, struct keepalive_entry **pp)
{
	struct keepalive_entry *e = *pp;

	*pp = e->next;
	ka->count--;
	keepalive_cancel(e);
	if (e->removing)
		e->gone = 1;
	else
		free(e);
}

/* ------------------------------------------------------------ removal */

static void keepalive_on_removed(void *arg, int err, int removed)
{
	struct keepalive_entry *e = arg;
	keepalive_t *ka = e->ka;

	e->removing = 0;
	if (err < 0)
		log_warn("NAT binding %s of '%s': not removed, Redis failed (it expires by itself)",
			 e->contact, e->user);
	else if (removed)
		shm_counter_add(ka->shm, ka->worker, SHM_CTR_BINDINGS_REMOVED, 1);
	else
		log_info("NAT binding %s of '%s' was refreshed meanwhile: kept", e->contact,
			 e->user);
	if (e->gone)
		free(e);
}

/* KEEPALIVE_FAILURES in a row: remove the binding from Redis and forget it. */
static void keepalive_remove(keepalive_t *ka, struct keepalive_entry **pp)
{
	struct keepalive_entry *e = *pp;

	log_warn("NAT binding %s of '%s' (source %s): %u keepalives unanswered: removing it",
		 e->contact, e->user, e->source, e->failures);
	e->removing = 1;
	if (store_binding_drop(ka->rds, e->user, e->contact, e->call_id, e->cseq,
			       keepalive_on_removed, e) < 0) {
		e->removing = 0;
		log_warn("NAT binding %s of '%s': not removed, Redis down (it expires by itself)",
			 e->contact, e->user);
	}
	keepalive_unlink(ka, pp);
}

/* ------------------------------------------------------------ OPTIONS */

static void keepalive_failed(struct keepalive_entry *e)
{
	e->failures++;
	shm_counter_add(e->ka->shm, e->ka->worker, SHM_CTR_KEEPALIVES_FAILED, 1);
}

/* NTA answers by itself (sip == NULL) for a timeout or a transport error:
 * a failure.  Anything the user agent sent proves it is there. */
static int keepalive_on_response(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				 sip_t const *sip)
{
	struct keepalive_entry *e = (struct keepalive_entry *)magic;
	int status = nta_outgoing_status(orq);

	if (status < 200)
		return 0;
	if (sip == NULL)
		keepalive_failed(e);
	else
		e->failures = 0;
	keepalive_cancel(e);
	return 0;
}

/* The transport an OPTIONS leaves from: the public port of the binding's
 * family (its route "sip:[v6]:port..." or "sip:v4:port..."), dual stack. */
static const char *keepalive_ident(const keepalive_t *ka, const struct keepalive_entry *e)
{
	const char *fam = strchr(e->route, '[') ? ka->ident6 : ka->ident4;

	return fam ? fam : ka->ident;
}

static int keepalive_send(keepalive_t *ka, struct keepalive_entry *e)
{
	char call_id[96];
	char tag[96];

	snprintf(call_id, sizeof call_id, "ka-%s-w%u-%" PRIu64 "-%" PRIu64, ka->cfg->node_id,
		 ka->worker, shm_now_ms(), ++ka->seq);
	/* The tag names this worker (NODE-WORKER-…): the answer comes back to
	 * the public port, whichever worker gets it hands it here (dgram.c). */
	snprintf(tag, sizeof tag, "%s-%u-ka%" PRIu64, ka->cfg->node_id, ka->worker, ka->seq);
	e->leg = nta_leg_tcreate(ka->agent, NULL, NULL, SIPTAG_FROM_STR(ka->from),
				 SIPTAG_TO_STR(e->contact), SIPTAG_CALL_ID_STR(call_id), TAG_END());
	if (e->leg == NULL || nta_leg_tag(e->leg, tag) == NULL) {
		keepalive_cancel(e);
		return -ENOMEM;
	}
	e->orq = nta_outgoing_tcreate(e->leg, keepalive_on_response, (nta_outgoing_magic_t *)e,
				      URL_STRING_MAKE(e->route), SIP_METHOD_OPTIONS,
				      URL_STRING_MAKE(e->contact),
				      SIPTAG_MAX_FORWARDS_STR("1"),
				      TPTAG_IDENT(keepalive_ident(ka, e)), TAG_END());
	if (e->orq == NULL) {
		keepalive_cancel(e);
		return -EIO;
	}
	shm_counter_add(ka->shm, ka->worker, SHM_CTR_KEEPALIVES_SENT, 1);
	return 0;
}

/* One entry at `now`: 1 when it was unlinked. */
static int keepalive_visit(keepalive_t *ka, struct keepalive_entry **pp, uint64_t now)
{
	struct keepalive_entry *e = *pp;

	if (e->expires_ms <= now) {
		keepalive_unlink(ka, pp);
		return 1;
	}
	if (e->next_ms > now)
		return 0;
	if (e->orq) {        /* still no answer when the next one is due */
		keepalive_cancel(e);
		keepalive_failed(e);
	}
	if (e->failures >= KEEPALIVE_FAILURES) {
		keepalive_remove(ka, pp);
		return 1;
	}
	e->next_ms = now + (uint64_t)ka->cfg->nat_keepalive_interval * 1000u;
	if (keepalive_send(ka, e) < 0)
		keepalive_failed(e);
	return 0;
}

static void keepalive_on_tick(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	keepalive_t *ka = (keepalive_t *)arg;
	uint64_t now = shm_now_ms();

	(void)magic; (void)t;
	for (unsigned i = 0; i < KEEPALIVE_BUCKETS; i++) {
		struct keepalive_entry **pp = &ka->buckets[i];

		while (*pp)
			if (!keepalive_visit(ka, pp, now))
				pp = &(*pp)->next;
	}
}

/* ------------------------------------------------------------ the registrar's news */

static void keepalive_fill(keepalive_t *ka, struct keepalive_entry *e,
			   const struct keepalive_binding *b, uint64_t now)
{
	snprintf(e->source, sizeof e->source, "%s", b->source);
	snprintf(e->call_id, sizeof e->call_id, "%s", b->call_id);
	e->cseq = b->cseq;
	e->expires_ms = now + (uint64_t)b->expires_s * 1000u;
	e->next_ms = now + (uint64_t)ka->cfg->nat_keepalive_interval * 1000u;
	e->failures = 0;
}

void keepalive_note(keepalive_t *ka, const struct keepalive_binding *b)
{
	struct keepalive_entry **pp, *e;
	uint64_t now = shm_now_ms();

	if (ka == NULL || ka->cfg->nat_keepalive_interval == 0)
		return;
	pp = keepalive_slot(ka, b->user, b->contact);
	if (b->expires_s <= 0) {
		if (*pp)
			keepalive_unlink(ka, pp);
		return;
	}
	if (*pp) {
		keepalive_fill(ka, *pp, b, now);
		if (registrar_addr_url(b->source, (*pp)->route, sizeof (*pp)->route) < 0)
			keepalive_unlink(ka, pp);
		return;
	}
	if (ka->count >= KEEPALIVE_MAX) {
		log_limited(&keepalive_full_limit, LOG_WARN,
			    "NAT binding %s of '%s' not kept alive: %u bindings already",
			    b->contact, b->user, ka->count);
		return;
	}
	e = calloc(1, sizeof *e);
	if (e == NULL)
		return;
	e->ka = ka;
	snprintf(e->user, sizeof e->user, "%s", b->user);
	snprintf(e->contact, sizeof e->contact, "%s", b->contact);
	keepalive_fill(ka, e, b, now);
	if (registrar_addr_url(b->source, e->route, sizeof e->route) < 0) {
		free(e);
		return;
	}
	e->next = NULL;
	*pp = e;
	ka->count++;
}

void keepalive_forget_user(keepalive_t *ka, const char *user)
{
	if (ka == NULL)
		return;
	for (unsigned i = 0; i < KEEPALIVE_BUCKETS; i++) {
		struct keepalive_entry **pp = &ka->buckets[i];

		while (*pp)
			if (strcmp((*pp)->user, user) == 0)
				keepalive_unlink(ka, pp);
			else
				pp = &(*pp)->next;
	}
}

unsigned keepalive_count(const keepalive_t *ka)
{
	return ka ? ka->count : 0;
}

/* ------------------------------------------------------------ life cycle */

/* The tick that sends the OPTIONS, for nat_keepalive_interval > 0. */
static int keepalive_start_tick(keepalive_t *ka)
{
	ka->tick = su_timer_create(su_root_task(ka->root), KEEPALIVE_TICK_MS);
	if (ka->tick == NULL ||
	    su_timer_set_for_ever(ka->tick, keepalive_on_tick, (su_timer_arg_t *)ka) < 0) {
		if (ka->tick)
			su_timer_destroy(ka->tick);
		ka->tick = NULL;
		return -ENOMEM;
	}
	return 0;
}

int keepalive_reload(keepalive_t *ka)
{
	if (ka == NULL)
		return 0;
	if (ka->cfg->nat_keepalive_interval > 0)
		return ka->tick ? 0 : keepalive_start_tick(ka);
	/* Off: stop sending, and forget the bindings (keepalive_note keeps none now). */
	if (ka->tick)
		su_timer_destroy(ka->tick);
	ka->tick = NULL;
	for (unsigned i = 0; i < KEEPALIVE_BUCKETS; i++)
		while (ka->buckets[i])
			keepalive_unlink(ka, &ka->buckets[i]);
	return 0;
}

int keepalive_create(su_root_t *root, nta_agent_t *agent, const char *ident, rds_t *rds,
		     shm_t *shm, const struct config *cfg, unsigned worker, keepalive_t **out)
{
	keepalive_t *ka = calloc(1, sizeof *ka);

	if (ka == NULL)
		return -ENOMEM;
	ka->root = root;
	ka->agent = agent;
	ka->ident = ident;
	ka->rds = rds;
	ka->shm = shm;
	ka->cfg = cfg;
	ka->worker = worker;
	snprintf(ka->from, sizeof ka->from, strchr(cfg->advertise[0], ':') ?
		 "<sip:%s@[%s]>" : "<sip:%s@%s>", cfg->node_id, cfg->advertise[0]);
	if (cfg->nat_keepalive_interval > 0 && keepalive_start_tick(ka) < 0) {
		keepalive_destroy(ka);
		return -ENOMEM;
	}
	*out = ka;
	return 0;
}

/* Entries waiting for a removal stay until its callback (rds_close answers
 * every pending command first, see worker_stop()). */
void keepalive_set_family_idents(keepalive_t *ka, const char *ident4, const char *ident6)
{
	ka->ident4 = ident4;
	ka->ident6 = ident6;
}

void keepalive_destroy(keepalive_t *ka)
{
	if (ka == NULL)
		return;
	if (ka->tick)
		su_timer_destroy(ka->tick);
	for (unsigned i = 0; i < KEEPALIVE_BUCKETS; i++)
		while (ka->buckets[i])
			keepalive_unlink(ka, &ka->buckets[i]);
	free(ka);
}
