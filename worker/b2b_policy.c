/*
 * b2b_policy — where a call goes, and whether it may.
 *
 * Design note.  The mechanism (legs, branches, relays) lives in the other
 * b2b files; the decisions live here, so a new call rule goes here.
 *
 * Before a request is anything (b2b_rate_limited, from b2b.c's request
 * entry): INVITE and REGISTER are counted against their source address's
 * token bucket (ratelimit.c, one table per method and worker, fixed
 * memory); over the limit they get 503 with Retry-After at once.  Trusted
 * sources are not limited: a trunk or SBC carries many users.  A 503
 * rather than a silent drop: Sofia has already made the transaction, so a
 * drop would save nothing, and a legitimate client backs off.
 *
 * A call in ROUTING is then admitted (b2b_admit) in this order:
 *
 *   0. the trust model: a trusted source is admitted as it is; without a
 *      registrar (no domain) nobody else is (403).  Otherwise the
 *      registrar says from the request alone (registrar_invite_admission)
 *      whether the caller must authenticate (From is ours, or it brought
 *      credentials), may call without (for a local user,
 *      allow_unauthenticated_to_local), or is not admitted: untrusted_invite
 *      answers that one with 407 (a subscriber may still authenticate) or
 *      403.  Nothing here depends on Redis, so nothing tells a stranger
 *      whether a user exists;
 *   1. the registrar authenticates the caller (407 challenge, or refusal);
 *   2. an authenticated caller is a local subscriber: its max_calls count
 *      the call (403 "Call limit reached" at the limit; a Redis failure does
 *      not stop calls);
 *   3. routing: a user of our domain is looked up in the location service
 *      (its max_calls count the call; at the limit it is busy) and every
 *      contact is forked to; anything else follows the static routes
 *      (route.c; 404 when none matches).  A caller that is not trusted gets
 *      480 for a callee that is unknown or disabled, as for one that is not
 *      registered: the lookup must not enumerate users either.  A trusted
 *      caller (a trunk) is told 404.
 *
 * Subscribers behind NAT (docs/architecture.md, "Subscribers behind NAT"):
 * a binding whose REGISTER came from another address than its Contact is
 * reached at that source (b2b_nat_target) when this host took the
 * REGISTER; when another host did, only that host's address gets through
 * the subscriber's NAT, so the B-leg goes to that host with the hand-off
 * header (B2B_HANDOFF_HEADER: the AOR user; Request-URI: the Contact).  The
 * holding host admits such an INVITE from a trusted source only (a forged
 * one gets 403), finds the binding in Redis (ours, that Contact) and relays
 * the call to its source without authentication, max_calls or CDR: the
 * originating host counted and bills the call (b2b_peer_handoff).
 *
 * Every registrar answer is asynchronous: the call is held meanwhile
 * (b2b_call_hold), and a CANCEL that arrived meanwhile ends it with 487.
 *
 * Call forwarding (flows 9 and 10).  A local user's Redis entry may name a
 * target for every call (fwd_always), for when every contact is busy
 * (fwd_busy), and for when nobody answers in time or nothing is registered
 * (fwd_noanswer, after fwd_noanswer_timeout or the config's
 * no_answer_timeout).  A target is a user of our domain (looked up in turn,
 * with its own forwarding) or a SIP URI.  Each forwarded INVITE carries a
 * Diversion header (RFC 5806) naming who forwarded it and why.  Chains stop
 * after forward_max_hops; a target already tried in this call ends it with
 * 482 (a loop).  Forwarding moves the call to FORWARDING.  What that
 * takes (struct b2b_forwarding: the user's targets, the users tried, the
 * Diversion chain, 2 KB) is allocated only when a user of the call names a
 * target, so a call that never forwards does not carry it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/mem.h"
#include "worker/ratelimit.h"
#include "worker/registrar.h"
#include "worker/route.h"

/* Sources a worker's rate limiters track at once (each limiter: this many
 * entries of 40 bytes); more sources still work, the idlest give way. */
#define B2B_RATELIMIT_SOURCES 8192

/* ------------------------------------------------------------ static routes */

/* Free a table of parsed targets (NULL-terminated, from b2b_routes_build). */
static void b2b_routes_free(b2b_t *b2b, url_t **urls)
{
	if (urls == NULL)
		return;
	for (size_t i = 0; urls[i] != NULL; i++)
		su_free(b2b->home, urls[i]);
	su_free(b2b->home, urls);
}

/* Parse every route's target of cfg into *out (NULL-terminated). */
static int b2b_routes_build(b2b_t *b2b, const struct config *cfg, url_t ***out)
{
	url_t **urls = su_zalloc(b2b->home, (cfg->n_routes + 1) * sizeof *urls);

	if (urls == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		urls[i] = url_make(b2b->home, cfg->routes[i].target);
		if (urls[i] == NULL || urls[i]->url_host == NULL) {
			log_error("route %zu: cannot parse target %s", i, cfg->routes[i].target);
			b2b_routes_free(b2b, urls);
			return -EINVAL;
		}
	}
	*out = urls;
	return 0;
}

int b2b_parse_routes(b2b_t *b2b)
{
	return b2b_routes_build(b2b, b2b->cfg, &b2b->route_urls);
}

/* ------------------------------------------------------------ forwarding */

static void b2b_lookup_user(struct b2b_call *call, const char *user);

/* Room to record one more user whose max_calls count this call, made
 * before the registrar is asked to count it (its count must be released at
 * the end): the array comes with the first.  1, or 0 when full or out of
 * memory: the call is then not counted against that user, as when full. */
static int b2b_counted_room(struct b2b_call *call)
{
	if (call->counted == NULL)
		call->counted = mem_call_calloc(B2B_COUNTED_MAX, sizeof *call->counted);
	return call->counted != NULL && call->n_counted < B2B_COUNTED_MAX;
}

/*
 * The call's forwarding state, allocated the first time a user it looks up
 * names a forward target: 0, or -ENOMEM.  Until then only one user was
 * looked up (every further lookup is a forward), the current one: it
 * starts the list of users tried.
 */
static int b2b_forwarding_need(struct b2b_call *call)
{
	struct b2b_forwarding *fw;

	if (call->fw)
		return 0;
	fw = mem_call_calloc(1, sizeof *fw);   /* kept until the call ends: worker/mem.c */
	if (fw == NULL)
		return -ENOMEM;
	if (call->cur_user[0])
		b2b_str_copy(fw->tried[fw->n_tried++], sizeof fw->tried[0], call->cur_user);
	call->fw = fw;
	return 0;
}

void b2b_forwarding_free(struct b2b_call *call)
{
	free(call->fw);
	call->fw = NULL;
}

const char *b2b_diversion(const struct b2b_call *call)
{
	return call->fw ? call->fw->diversion : "";
}

/* Does the user's forwarding name any target? */
static int b2b_forwards(const struct registrar_forward *fwd)
{
	return fwd && (fwd->always[0] || fwd->busy[0] || fwd->noanswer[0]);
}

/* RFC 5806: newest diversion first, with the reason and the hop count. */
static void b2b_add_diversion(struct b2b_call *call, const char *reason)
{
	struct b2b_forwarding *fw = call->fw;
	char prev[sizeof fw->diversion];
	int n;

	memcpy(prev, fw->diversion, sizeof prev);
	n = snprintf(fw->diversion, sizeof fw->diversion,
		     strchr(call->b2b->cfg->domain, ':') ? "<sip:%s@[%s]>;reason=%s;counter=%u" :
		     "<sip:%s@%s>;reason=%s;counter=%u",
		     call->cur_user, call->b2b->cfg->domain, reason, fw->hops);
	if (prev[0] && n > 0 && (size_t)n < sizeof fw->diversion)
		snprintf(fw->diversion + n, sizeof fw->diversion - (size_t)n, ", %.*s",
			 (int)(sizeof fw->diversion - (size_t)n - 3), prev);
}

static int b2b_tried(const struct b2b_forwarding *fw, const char *user)
{
	for (unsigned i = 0; i < fw->n_tried; i++)
		if (strcmp(fw->tried[i], user) == 0)
			return 1;
	return 0;
}

/* Forward the call to `target`; the current branches are all over.  Only
 * for a call with its forwarding state (call->fw). */
static void b2b_forward(struct b2b_call *call, const char *target, const char *reason)
{
	b2b_t *b2b = call->b2b;
	struct b2b_forwarding *fw = call->fw;
	su_home_t home[1] = { SU_HOME_INIT(home) };
	url_t *url = NULL;
	const char *user = target;
	url_t const *targets[1];

	call->forward_pending = 0;
	if (fw->hops >= (unsigned)b2b->cfg->forward_max_hops) {
		log_warn("call %s: forwarding chain longer than forward_max_hops (%d) stopped at %s",
			 call->id, b2b->cfg->forward_max_hops, target);
		b2b_call_refuse(call, call->best_final ? call->best_final : 480,
				call->best_final ? call->best_phrase : NULL);
		return;
	}
	if (strchr(target, ':')) {
		url = url_make(home, target);
		if (url == NULL || url->url_host == NULL) {
			log_warn("call %s: bad forward target '%s'", call->id, target);
			b2b_call_refuse(call, SIP_480_TEMPORARILY_UNAVAILABLE);
			su_home_deinit(home);
			return;
		}
		user = registrar_is_local(b2b->reg, url) && url->url_user ? url->url_user : NULL;
	}
	if (user && b2b_tried(fw, user)) {
		log_warn("call %s: forwarding loops back to '%s': ending the call", call->id, user);
		b2b_call_refuse(call, SIP_482_LOOP_DETECTED);
		su_home_deinit(home);
		return;
	}
	fw->hops++;
	b2b_add_diversion(call, reason);
	b2b_publish_forwarding(call, target);
	log_info("call %s: forwarding (%s) from '%s' to %s", call->id, reason, call->cur_user,
		 target);
	fw->have_fwd = 0;
	if (user) {
		b2b_lookup_user(call, user);
	} else {
		targets[0] = url;
		b2b_call_fork(call, targets, 1);
	}
	su_home_deinit(home);
}

static void b2b_on_no_answer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	struct b2b_call *call = (struct b2b_call *)arg;
	struct b2b_forwarding *fw = call->fw;

	if (call->winner >= 0 || call->state == B2B_CANCELLING || fw == NULL || !fw->have_fwd ||
	    fw->fwd.noanswer[0] == '\0')
		return;
	/* CANCEL what rings; forward once every branch has answered the CANCEL
	 * (b2b_on_b_failure).  An answer meanwhile still wins. */
	call->forward_pending = 1;
	snprintf(fw->forward_to, sizeof fw->forward_to, "%s", fw->fwd.noanswer);
	fw->forward_reason = "no-answer";
	b2b_publish_forwarding(call, fw->fwd.noanswer);
	b2b_cancel_pending(call, -1);
}

static void b2b_start_no_answer_timer(struct b2b_call *call)
{
	int secs = call->fw->fwd.noanswer_timeout > 0 ? call->fw->fwd.noanswer_timeout
						      : call->b2b->cfg->no_answer_timeout;

	if (call->na_timer == NULL)
		call->na_timer = su_timer_create(su_root_task(call->b2b->root), 0);
	if (call->na_timer == NULL ||
	    su_timer_set_interval(call->na_timer, b2b_on_no_answer, (su_timer_arg_t *)call,
				  (su_duration_t)secs * 1000) < 0)
		log_warn("call %s: cannot arm the no-answer timer", call->id);
}

/* Every branch failed: forward if the user asked for it.  1 when forwarded. */
int b2b_forward_on_failure(struct b2b_call *call)
{
	struct b2b_forwarding *fw = call->fw;

	if (fw == NULL)
		return 0;   /* no user of this call forwards */
	if (call->forward_pending) {
		b2b_forward(call, fw->forward_to, fw->forward_reason);
		return 1;
	}
	if (!fw->have_fwd || call->state == B2B_CANCELLING)
		return 0;
	if ((call->best_final == 486 || call->best_final == 600) && fw->fwd.busy[0]) {
		b2b_forward(call, fw->fwd.busy, "user-busy");
		return 1;
	}
	if ((call->best_final == 408 || call->best_final == 480) && fw->fwd.noanswer[0]) {
		b2b_forward(call, fw->fwd.noanswer, "no-answer");
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ location lookup */

/* The routes of the targets of one lookup (b2b_nat_target). */
struct b2b_nat_routes {
	char url[B2B_MAX_BRANCHES][REGISTRAR_ADDR_MAX + 32];
};

/*
 * Where a contact behind NAT is reached: its source when this host took
 * its REGISTER (or the binding names no host address), else the host that
 * holds the binding, with the hand-off.  A contact not behind NAT is
 * reached at its Contact, from any host.  -EHOSTDOWN when the host that
 * holds it is lost (its lease ran out) or stopped: only that host's port
 * gets through the subscriber's NAT, so the contact is skipped at once
 * rather than tried until the INVITE times out; the phone registers again
 * through a live host.
 */
static int b2b_nat_target(struct b2b_call *call, const struct registrar_contact *c,
			  struct b2b_target *t, char *url, size_t size)
{
	b2b_t *b2b = call->b2b;
	const char *via = c->source;

	if (c->flow[0])   /* registered over a connection: only that reaches it */
		return b2b_flow_target(call, c, t, url, size);
	if (!registrar_behind_nat(c->uri, c->source))
		return 0;
	if (c->host[0] && strcmp(c->host, b2b->cfg->node_id) != 0 && c->host_address[0]) {
		if (c->host_lost)
			return -EHOSTDOWN;
		via = c->host_address;
	}
	if (registrar_addr_url(via, url, size) < 0)
		return 0;
	t->route = url;
	t->handoff = via == c->source ? NULL : call->cur_user;
	return 0;
}

static void b2b_on_lookup(void *arg, int status, const struct registrar_contact *contacts,
			  unsigned n, const struct registrar_forward *fwd)
{
	struct b2b_call *call = arg;
	struct b2b_target targets[B2B_MAX_BRANCHES];
	struct b2b_nat_routes routes;
	su_home_t home[1] = { SU_HOME_INIT(home) };
	unsigned m = 0;
	int rc;

	if (!b2b_call_release(call))
		return;
	if (call->caller_cancelled) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	/* No user enumeration: an untrusted caller gets the same 480 for an
	 * unknown or disabled user as for one that is not registered. */
	if (status == 404 && call->untrusted)
		status = 480;
	/* A user that forwards nowhere leaves nothing to keep (call->fw stays
	 * NULL); one that does, or any user after a forward, is kept. */
	if (b2b_forwards(fwd) && b2b_forwarding_need(call) < 0) {
		log_error("call %s: no memory for the forwarding of '%s'", call->id,
			  call->cur_user);
		b2b_call_refuse(call, SIP_503_SERVICE_UNAVAILABLE);
		return;
	}
	if (fwd && call->fw) {
		call->fw->fwd = *fwd;
		call->fw->have_fwd = 1;
	}
	if (fwd && fwd->always[0]) {
		b2b_forward(call, fwd->always, "unconditional");
		return;
	}
	if (status == 480 && fwd && fwd->noanswer[0]) {
		b2b_forward(call, fwd->noanswer, "unavailable");
		return;
	}
	if (status == 486) {
		/* At its max_calls: busy, so forward-on-busy applies. */
		log_info("call %s: '%s' is at its max_calls", call->id, call->cur_user);
		call->best_final = 486;
		b2b_str_copy(call->best_phrase, sizeof call->best_phrase, "Busy Here");
		if (!b2b_forward_on_failure(call))
			b2b_call_refuse(call, SIP_486_BUSY_HERE);
		return;
	}
	if (status == 0 && b2b_counted_room(call))   /* made before the lookup */
		b2b_str_copy(call->counted[call->n_counted++], sizeof call->counted[0],
			     call->cur_user);
	if (status != 0) {
		b2b_call_refuse(call, status, NULL);
		return;
	}
	for (unsigned i = 0; i < n && m < B2B_MAX_BRANCHES; i++) {
		url_t *u = url_make(home, contacts[i].uri);

		if (u == NULL || u->url_host == NULL)
			continue;
		targets[m] = (struct b2b_target){ .ruri = u };
		rc = b2b_nat_target(call, &contacts[i], &targets[m], routes.url[m],
				    sizeof routes.url[m]);
		if (rc == -ENOTCONN)
			continue;   /* its connection is gone (b2b_flow.c logged it) */
		if (rc < 0) {
			log_info("call %s: '%s' at %s is behind NAT and registered through host "
				 "%s, which is lost: skipped", call->id, call->cur_user,
				 contacts[i].uri, contacts[i].host);
			continue;
		}
		m++;
	}
	if (m == 0 && n > 0 && fwd && fwd->noanswer[0]) {
		b2b_forward(call, fwd->noanswer, "unavailable");
	} else if (m == 0) {
		b2b_call_refuse(call, SIP_480_TEMPORARILY_UNAVAILABLE);
	} else {
		b2b_call_fork_to(call, targets, m);
		if (!call->ended && fwd && fwd->noanswer[0])
			b2b_start_no_answer_timer(call);
	}
	su_home_deinit(home);
}

/* Ask the location service where `user` (of our domain) is. */
static void b2b_lookup_user(struct b2b_call *call, const char *user)
{
	b2b_str_copy(call->cur_user, sizeof call->cur_user, user);
	/* Without forwarding state this is the call's first lookup: the state,
	 * when a user forwards, starts from cur_user (b2b_forwarding_need). */
	if (call->fw && call->fw->n_tried < B2B_MAX_BRANCHES)
		b2b_str_copy(call->fw->tried[call->fw->n_tried++], sizeof call->fw->tried[0], user);
	b2b_call_hold(call);
	if (registrar_lookup(call->b2b->reg, user,
			     b2b_counted_room(call) ? call->id : NULL, b2b_on_lookup, call) < 0) {
		b2b_call_release(call);
		b2b_call_refuse(call, SIP_503_SERVICE_UNAVAILABLE);
	}
}

/* Authentication is settled: find where the call goes. */
static void b2b_call_route(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;
	sip_t const *sip = b2b_invite_of(call);
	url_t const *rq_url;
	const struct config_route *route;
	url_t ruri;
	url_t const *target = &ruri;

	if (sip == NULL) {   /* the caller's transaction is gone */
		b2b_call_end(call);
		return;
	}
	rq_url = sip->sip_request->rq_url;

	if (b2b->reg && registrar_is_local(b2b->reg, rq_url)) {
		b2b_lookup_user(call, rq_url->url_user ? rq_url->url_user : "");
		return;
	}
	if (route_lookup(b2b->cfg, rq_url->url_user, &route) < 0) {
		b2b_call_refuse(call, SIP_404_NOT_FOUND);
		return;
	}
	/* The route's target, keeping the dialled user unless the route names one. */
	ruri = *b2b->route_urls[route - b2b->cfg->routes];
	if (ruri.url_user == NULL)
		ruri.url_user = rq_url->url_user;
	b2b_call_fork(call, &target, 1);
}

/* ------------------------------------------------------------ call limits */

static const char *b2b_caller_user(struct b2b_call *call)
{
	sip_t const *sip = b2b_invite_of(call);

	return sip && sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "";
}

/* Count this call against `user`'s max_calls; next(call, status) follows. */
static void b2b_count_user(struct b2b_call *call, const char *user, registrar_begin_f *next)
{
	if (!b2b_counted_room(call)) {
		next(call, 0);
		return;
	}
	b2b_str_copy(call->counted[call->n_counted], sizeof call->counted[0], user);
	b2b_call_hold(call);
	if (registrar_call_begin(call->b2b->reg, user, call->id, next, call) < 0)
		next(call, 503);   /* still held: next() releases */
}

static void b2b_on_caller_counted(void *arg, int status)
{
	struct b2b_call *call = arg;

	if (!b2b_call_release(call))
		return;
	if (status == 0)
		call->n_counted++;
	if (call->caller_cancelled) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	if (status == 486) {
		log_info("call %s: caller '%s' is at its max_calls", call->id,
			 call->counted[call->n_counted]);
		call->refused = "call_limit";
		b2b_call_refuse(call, 403, "Call limit reached");
		return;
	}
	/* 503: Redis failed; a limit must not stop calls while Redis is away. */
	b2b_call_route(call);
}

static void b2b_on_auth(void *arg, int status, const struct registrar_challenges *ch)
{
	struct b2b_call *call = arg;

	if (!b2b_call_release(call))
		return;
	if (call->caller_cancelled) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	if (status == 407 && call->a_irq) {
		call->no_cdr = 1;   /* a challenge, not a call attempt */
		b2b_count_code(call->b2b, 407);
		_Static_assert(CONFIG_MAX_AUTH_ALGORITHMS == 2, "one tag per possible challenge");
		nta_incoming_treply(call->a_irq, SIP_407_PROXY_AUTH_REQUIRED,
				    TAG_IF(ch->n > 0, SIPTAG_PROXY_AUTHENTICATE_STR(ch->value[0])),
				    TAG_IF(ch->n > 1, SIPTAG_PROXY_AUTHENTICATE_STR(ch->value[1])),
				    TAG_END());
		nta_incoming_destroy(call->a_irq);
		call->a_irq = NULL;
		b2b_call_end(call);
		return;
	}
	if (status != 0) {
		if (status == 403)   /* the source is throttled, or From is not the user */
			call->refused = "auth";
		b2b_call_refuse(call, status, NULL);
		return;
	}
	/* An authenticated caller is a local subscriber: its max_calls apply. */
	b2b_count_user(call, b2b_caller_user(call), b2b_on_caller_counted);
}

/* ------------------------------------------------------------ admission */

/* The source of a request as a rate-limit key (family, address) and as a
 * socket address; -ENOENT when the request is gone or not IP. */
static int b2b_source_of(nta_incoming_t *irq, uint8_t key[RATELIMIT_KEY_MAX], size_t *len,
			 su_sockaddr_t *sa)
{
	msg_t *msg = nta_incoming_getrequest(irq);
	su_sockaddr_t const *from = msg ? msg_addr(msg) : NULL;
	int ret = 0;

	if (from && from->su_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &from->su_sin.sin_addr, 4);
		*len = 5;
	} else if (from && from->su_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &from->su_sin6.sin6_addr, 16);
		*len = 17;
	} else {
		ret = -ENOENT;
	}
	if (ret == 0)
		*sa = *from;
	msg_destroy(msg);
	return ret;
}

int b2b_source_trusted(b2b_t *b2b, nta_incoming_t *irq)
{
	uint8_t key[RATELIMIT_KEY_MAX];
	su_sockaddr_t sa;
	size_t len;

	return b2b_source_of(irq, key, &len, &sa) == 0 && config_is_trusted(b2b->cfg, &sa.su_sa);
}

/* Over the limit: 503 with Retry-After, counted; a warning every 10 s at
 * most says how many (a flood must not flood the log). */
static void b2b_rate_refuse(b2b_t *b2b, nta_incoming_t *irq, sip_method_t method)
{
	uint64_t now = shm_now_ms();

	shm_counter_add(b2b->shm, b2b->worker, method == sip_method_invite ?
			SHM_CTR_RATE_LIMITED_INVITE : SHM_CTR_RATE_LIMITED_REGISTER, 1);
	b2b->rl_refused++;
	if (now - b2b->rl_logged_ms >= 10000) {
		log_warn("rate limits: %u INVITE/REGISTER requests refused with 503 in the last "
			 "%llu s", b2b->rl_refused, (unsigned long long)(b2b->rl_logged_ms ?
			 (now - b2b->rl_logged_ms) / 1000 : 0));
		b2b->rl_logged_ms = now;
		b2b->rl_refused = 0;
	}
	nta_incoming_treply(irq, SIP_503_SERVICE_UNAVAILABLE, SIPTAG_RETRY_AFTER_STR("5"),
			    TAG_END());
	nta_incoming_destroy(irq);
}

/*
 * Per-source rate limits (rate_limit_invite, rate_limit_register), checked
 * before a request costs anything more than its transaction: returns 1
 * when the request was over its source's limit and is answered (503), 0
 * when it may go on.  Trusted sources (trunks, SBCs: many users behind one
 * address) are not limited.
 */
int b2b_rate_limited(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	sip_method_t method = sip->sip_request->rq_method;
	ratelimit_t *rl = method == sip_method_invite ? b2b->rl_invite :
			  method == sip_method_register ? b2b->rl_register : NULL;
	uint8_t key[RATELIMIT_KEY_MAX];
	su_sockaddr_t sa;
	size_t len;

	if (rl == NULL || b2b_source_of(irq, key, &len, &sa) < 0 ||
	    ratelimit_allow(rl, key, len, shm_now_ms()) != 0 ||
	    config_is_trusted(b2b->cfg, &sa.su_sa))
		return 0;
	b2b_rate_refuse(b2b, irq, method);
	return 1;
}

/* The two per-source rate limiters of cfg (NULL for one that is off). */
static int b2b_limits_build(const b2b_t *b2b, const struct config *cfg, ratelimit_t **invite,
			    ratelimit_t **reg)
{
	uint64_t seed;
	int ret = 0;

	*invite = NULL;
	*reg = NULL;
	if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
		seed = shm_now_ms() ^ (uint64_t)b2b->worker << 48;
	if (cfg->rate_limit_invite > 0)
		ret = ratelimit_create(B2B_RATELIMIT_SOURCES, (unsigned)cfg->rate_limit_invite,
				       (unsigned)cfg->rate_limit_invite_burst, seed, invite);
	if (ret == 0 && cfg->rate_limit_register > 0)
		ret = ratelimit_create(B2B_RATELIMIT_SOURCES, (unsigned)cfg->rate_limit_register,
				       (unsigned)cfg->rate_limit_register_burst, ~seed, reg);
	if (ret < 0) {
		ratelimit_destroy(*invite);
		*invite = NULL;
	}
	return ret;
}

int b2b_limits_create(b2b_t *b2b)
{
	const struct config *cfg = b2b->cfg;
	int ret = b2b_limits_build(b2b, cfg, &b2b->rl_invite, &b2b->rl_register);

	if (b2b->worker == 0 && cfg->domain[0] == '\0' && cfg->n_trusted == 0)
		log_warn("no domain and no trusted sources: every INVITE will be refused "
			 "with 403 (set trusted to the addresses of your trunks and SBCs)");
	return ret;
}

void b2b_limits_destroy(b2b_t *b2b)
{
	ratelimit_destroy(b2b->rl_invite);
	ratelimit_destroy(b2b->rl_register);
	b2b->rl_invite = NULL;
	b2b->rl_register = NULL;
}

/* Did the rate limits change between old and the configuration in force? */
static int b2b_limits_changed(const b2b_t *b2b, const struct config *old)
{
	const struct config *cfg = b2b->cfg;

	return old->rate_limit_invite != cfg->rate_limit_invite ||
	       old->rate_limit_invite_burst != cfg->rate_limit_invite_burst ||
	       old->rate_limit_register != cfg->rate_limit_register ||
	       old->rate_limit_register_burst != cfg->rate_limit_register_burst;
}

/*
 * A reload: b2b->cfg holds the new configuration, `old` the one before.
 * The route targets are parsed again (a call in progress already has its
 * B-leg: NTA copied the target into its INVITE) and, when the limits
 * changed, the rate limiters start afresh with them (what a source had
 * used of its burst is forgotten).  Everything is built before anything
 * is swapped, so a failure changes nothing.
 */
int b2b_policy_reload(b2b_t *b2b, const struct config *old)
{
	ratelimit_t *invite = NULL, *reg = NULL;
	int limits = b2b_limits_changed(b2b, old);
	url_t **urls;
	int ret = b2b_routes_build(b2b, b2b->cfg, &urls);

	if (ret < 0)
		return ret;
	if (limits && (ret = b2b_limits_build(b2b, b2b->cfg, &invite, &reg)) < 0) {
		b2b_routes_free(b2b, urls);
		return ret;
	}
	b2b_routes_free(b2b, b2b->route_urls);
	b2b->route_urls = urls;
	if (limits) {
		b2b_limits_destroy(b2b);
		b2b->rl_invite = invite;
		b2b->rl_register = reg;
	}
	return 0;
}

/* An INVITE the admission policy refuses: counted, then 403 (a CDR). */
static void b2b_not_admitted(struct b2b_call *call, const char *why)
{
	b2b_t *b2b = call->b2b;

	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_UNTRUSTED_REFUSED, 1);
	log_debug("call %s: not admitted: %s", call->id, why);
	call->refused = "auth";
	b2b_call_refuse(call, SIP_403_FORBIDDEN);
}

/* The hand-off header's value, or NULL. */
const char *b2b_handoff_of(sip_t const *sip)
{
	for (sip_unknown_t const *u = sip->sip_unknown; u; u = u->un_next)
		if (u->un_name && strcasecmp(u->un_name, B2B_HANDOFF_HEADER) == 0)
			return u->un_value ? u->un_value : "";
	return NULL;
}

/* The binding a hand-off names: the Request-URI among `user`'s contacts,
 * held by this host.  NULL when there is none (expired, removed, or held
 * elsewhere). */
static const struct registrar_contact *b2b_handoff_binding(b2b_t *b2b, sip_t const *sip,
							   const struct registrar_contact *c,
							   unsigned n)
{
	char ruri[REGISTRAR_URI_MAX];

	if (url_e(ruri, sizeof ruri, sip->sip_request->rq_url) < 0)
		return NULL;
	for (unsigned i = 0; i < n; i++)
		if (strcmp(c[i].uri, ruri) == 0 && strcmp(c[i].host, b2b->cfg->node_id) == 0)
			return &c[i];
	return NULL;
}

/* The hand-off's binding from Redis: relay the call to its source. */
static void b2b_on_handoff_lookup(void *arg, int status, const struct registrar_contact *c,
				  unsigned n, const struct registrar_forward *fwd)
{
	struct b2b_call *call = arg;
	sip_t const *sip = b2b_invite_of(call);
	const struct registrar_contact *b;
	char route[REGISTRAR_ADDR_MAX + 32];
	struct b2b_target t = { .route = route };
	int from_sibling = call->a_irq && b2b_flow_sibling(call->b2b, call->a_irq);

	(void)fwd;
	if (!b2b_call_release(call))
		return;
	if (call->caller_cancelled || sip == NULL) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	b = status == 0 ? b2b_handoff_binding(call->b2b, sip, c, n) : NULL;
	if (b == NULL) {
		log_info("call %s: hand-off for '%s': no such binding held here: %d", call->id,
			 call->cur_user, status == 0 || status == 404 ? 480 : status);
		b2b_call_refuse(call, status == 503 ? 503 : 480, NULL);
		return;
	}
	t.ruri = sip->sip_request->rq_url;
	if (b->flow[0]) {
		if (b2b_flow_handoff(call, b, from_sibling, &t, route, sizeof route) < 0) {
			b2b_call_refuse(call, 430, "Flow Failed");
			return;
		}
	} else if (!registrar_behind_nat(b->uri, b->source) ||
		   registrar_addr_url(b->source, route, sizeof route) < 0) {
		t.route = NULL;
	}
	shm_counter_add(call->b2b->shm, call->b2b->worker, SHM_CTR_PEER_RELAYED, 1);
	log_info("call %s: hand-off from a %s for '%s': to %s via %s (the %s writes the CDR)",
		 call->id, from_sibling ? "sibling worker" : "peer host", call->cur_user, b->uri,
		 t.route ? t.route : "its Contact", from_sibling ? "sibling" : "peer");
	b2b_call_fork_to(call, &t, 1);
}

/*
 * Another host hands us a call to a binding we hold (b2b_nat_target on
 * its side): from a trusted source only, since it skips authentication.
 * The header names the AOR user and the Request-URI the Contact; the
 * address comes from the binding in Redis, never from the request, so even
 * a trusted peer that passes on a header it got from outside can make us
 * reach no one but a subscriber's own binding.  No max_calls count (the
 * peer's lookup counted it) and no CDR (the peer writes the call's CDR):
 * counted and logged here.
 */
static void b2b_peer_handoff(struct b2b_call *call, nta_incoming_t *irq, const char *user)
{
	static struct log_limit forged_limit = { .what = "hand-offs from untrusted sources refused" };
	b2b_t *b2b = call->b2b;

	if (!b2b_source_trusted(b2b, irq) && !b2b_flow_sibling(b2b, irq)) {
		log_limited(&forged_limit, LOG_WARN,
			    "call %s: " B2B_HANDOFF_HEADER " from a source that is not trusted: 403",
			    call->id);
		b2b_not_admitted(call, "hand-off from a source that is not trusted");
		return;
	}
	call->no_cdr = 1;
	if (b2b->reg == NULL || user[0] == '\0') {
		b2b_call_refuse(call, SIP_480_TEMPORARILY_UNAVAILABLE);
		return;
	}
	b2b_str_copy(call->cur_user, sizeof call->cur_user, user);
	b2b_call_hold(call);
	if (registrar_lookup(b2b->reg, user, NULL, b2b_on_handoff_lookup, call) < 0) {
		b2b_call_release(call);
		b2b_call_refuse(call, SIP_503_SERVICE_UNAVAILABLE);
	}
}

/*
 * A new call in ROUTING: may it go on?  See the design note: a trusted
 * source, an authenticated subscriber, or a call to a local user; anything
 * else is challenged or refused (untrusted_invite), and without a registrar
 * only trusted sources may call.  Every outcome ends in a B-leg or a
 * refusal of the call.
 */
void b2b_admit(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip)
{
	b2b_t *b2b = call->b2b;
	enum registrar_admission how;
	const char *handoff = b2b_handoff_of(sip);

	if (handoff) {
		b2b_peer_handoff(call, irq, handoff);
		return;
	}
	if (b2b_source_trusted(b2b, irq)) {
		b2b_call_route(call);
		return;
	}
	call->untrusted = 1;
	if (b2b->reg == NULL) {
		b2b_not_admitted(call, "source not trusted (no domain: trusted sources only)");
		return;
	}
	how = registrar_invite_admission(b2b->reg, sip);
	if (how == REGISTRAR_TO_LOCAL) {
		b2b_call_route(call);
		return;
	}
	if (how == REGISTRAR_NOT_ADMITTED) {
		if (b2b->cfg->untrusted_invite == CONFIG_UNTRUSTED_REJECT) {
			b2b_not_admitted(call, "untrusted source, not for a local user");
			return;
		}
		/* Challenged: a subscriber may answer it (then From must be his). */
		shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_UNTRUSTED_REFUSED, 1);
	}
	b2b_call_hold(call);
	registrar_check_invite(b2b->reg, irq, sip, b2b_on_auth, call);
}
