/*
 * b2b — the agent of one worker on Sofia-SIP NTA.  See b2b.h; the map of
 * the b2b files is in b2b_int.h.
 *
 * Design note.  This file owns the NTA agent and its two transports (the
 * public port and this worker's own port, see b2b.h; each also on TCP when
 * transports has "tcp": b2b_tcp_create, and a TLS pair of its own with
 * "tls": b2b_tls.c), on every listen address (dual stack: b2b_addr_create;
 * a leg uses the address of its peer's family, b2b_addr_for_host), and
 * every request
 * that matches no dialog: a new INVITE (refused here when it cannot become
 * a call: a stray re-INVITE, draining, Max-Forwards 0, a loop through us, a
 * full call table; otherwise it gets a pool entry, a slot in the call table,
 * its A-leg, and goes to b2b_policy.c), a CANCEL of another worker's call
 * (handed over to its owner), REGISTER (the registrar), and the rest.  It
 * also makes the identifiers (tags, Call-IDs, call ids) and answers the
 * worker's whole-agent requests: drain, hang up all, kill one call, expire
 * long calls, statistics.
 */
#include "worker/b2b.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/keepalive.h"
#include "worker/registrar.h"

/* ------------------------------------------------------------ helpers */

/* Fast non-cryptographic randomness for identifiers; seeded from the kernel
 * after fork, so no two workers share a sequence. */
static uint64_t b2b_random(b2b_t *b2b)
{
	uint64_t x = b2b->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b2b->rng = x;
	return x;
}

/* Tags and Call-IDs carry the node id and the worker so that several hosts
 * and workers never collide, and a random part so they are not guessable. */
void b2b_make_tag(b2b_t *b2b, char *buf, size_t size)
{
	snprintf(buf, size, "%s-%u-%016llx", b2b->cfg->node_id, b2b->worker,
		 (unsigned long long)b2b_random(b2b));
}

void b2b_make_call_id(b2b_t *b2b, char *buf, size_t size)
{
	snprintf(buf, size, "%016llx%08llx-%u@%s", (unsigned long long)b2b_random(b2b),
		 (unsigned long long)(b2b->next_call & 0xffffffffu), b2b->worker,
		 b2b->cfg->node_id);
}

/*
 * The call id, the one name of a call everywhere: `show calls`, every log
 * line about the call ("call ID: ..."), the CDR's id and the members of the
 * max_calls sets.  NODE-wWORKER-EPOCH-N: the node id and the worker index
 * keep hosts and workers apart, EPOCH (this process's start, ms, hex) keeps
 * a restarted worker apart from its predecessor, N counts calls.
 */
void b2b_make_id(b2b_t *b2b, char *buf, size_t size)
{
	snprintf(buf, size, "%s-w%u-%llx-%llu", b2b->cfg->node_id, b2b->worker,
		 (unsigned long long)b2b->epoch_ms, (unsigned long long)++b2b->next_call);
}

void b2b_url_copy(char *dst, size_t size, url_t const *url)
{
	if (url == NULL || url_e(dst, (isize_t)size, url) < 0)
		dst[0] = '\0';
	dst[size - 1] = '\0';
}

void b2b_str_copy(char *dst, size_t size, const char *src)
{
	size_t len;

	if (size == 0)
		return;
	/* Not snprintf("%s"): a call copies some 30 strings into its CDR and
	 * records, and printf's machinery showed in the worker's profile. */
	len = src ? strnlen(src, size - 1) : 0;
	memcpy(dst, src ? src : "", len);
	dst[len] = '\0';
}

/* Longer route sets do not fit a slot anyway (SHM_ROUTE_MAX). */
#define B2B_ROUTE_MAX_HOPS 16

int b2b_route_copy(char *dst, size_t size, sip_route_t const *r, int reverse)
{
	sip_route_t const *hop[B2B_ROUTE_MAX_HOPS];
	unsigned n = 0;
	size_t len = 0;

	dst[0] = '\0';
	for (; r != NULL; r = r->r_next) {
		if (n == B2B_ROUTE_MAX_HOPS)
			return -E2BIG;
		hop[n++] = r;
	}
	for (unsigned i = 0; i < n; i++) {
		sip_route_t const *h = hop[reverse ? n - 1 - i : i];
		issize_t m;

		if (i > 0) {
			if (len + 2 >= size)
				goto too_big;
			dst[len++] = ',';
			dst[len++] = ' ';
		}
		m = msg_header_field_e(dst + len, (isize_t)(size - len), (msg_header_t const *)h, 0);
		if (m < 0 || (size_t)m >= size - len)
			goto too_big;
		len += (size_t)m;
	}
	dst[len] = '\0';
	return 0;
too_big:
	dst[0] = '\0';
	return -E2BIG;
}

int b2b_count_code(b2b_t *b2b, int code)
{
	shm_code_count(b2b->shm, b2b->worker, code);
	if (code >= 300)
		shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_FAILED, 1);
	else if (code >= 200)
		shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_ANSWERED, 1);
	return code;
}

void b2b_observe_setup(const struct b2b_call *call)
{
	uint64_t now = shm_now_ms();
	uint64_t ms = now > call->start_ms ? now - call->start_ms : 0;   /* the clock stepped */

	if (call->start_ms == 0)
		return;   /* taken over from a dead worker: its set-up was not ours */
	shm_hist_observe(call->b2b->shm, call->b2b->worker, SHM_HIST_SETUP, ms * 1000);
}

/* Answer a request we will not turn into a call, with an optional header. */
static void b2b_refuse(b2b_t *b2b, nta_incoming_t *irq, int status, const char *phrase,
		       const char *retry_after)
{
	b2b_count_code(b2b, status);
	nta_incoming_treply(irq, status, phrase,
			    TAG_IF(retry_after, SIPTAG_RETRY_AFTER_STR(retry_after)),
			    TAG_END());
	nta_incoming_destroy(irq);
}

/*
 * The CDR of an INVITE refused before it became a call (no pool entry, no
 * slot in the call table), so billing and fraud analysis see the attempt:
 * disposition REFUSED, `cause` says why ("capacity", "auth", "rate_limit",
 * ...), start and end are now.  It costs one record to Redis (or the
 * spool), so it is for refusals the worker can afford one by one; a flood
 * shed by the overload gate is counted instead (b2b_overload.c).
 */
int b2b_write_refused_cdr(b2b_t *b2b, sip_t const *sip, int sip_code, const char *cause)
{
	struct cdr c;
	int ret;

	if (b2b->cdr == NULL)
		return 0;
	memset(&c, 0, sizeof c);
	b2b_make_id(b2b, c.id, sizeof c.id);
	if (sip->sip_call_id)
		b2b_str_copy(c.a_call_id, sizeof c.a_call_id, sip->sip_call_id->i_id);
	if (sip->sip_from)
		b2b_url_copy(c.caller, sizeof c.caller, sip->sip_from->a_url);
	if (sip->sip_request)
		b2b_url_copy(c.callee, sizeof c.callee, sip->sip_request->rq_url);
	c.start_ms = shm_now_ms();
	c.end_ms = c.start_ms;
	c.disposition = CDR_REFUSED;
	c.sip_code = sip_code;
	c.hangup_by = CDR_PARTY_SYSTEM;
	b2b_str_copy(c.a_transport, sizeof c.a_transport,
		     shm_transport_name(b2b_via_transport(sip->sip_via)));
	b2b_str_copy(c.host, sizeof c.host, b2b->cfg->node_id);
	c.worker = b2b->worker;
	if (strlen(cause) >= sizeof c.cause)
		return -EINVAL;
	b2b_str_copy(c.cause, sizeof c.cause, cause);
	ret = cdr_write(b2b->cdr, &c);
	if (ret < 0)
		log_error("call %s: CDR of a refused INVITE could not be written or spooled", c.id);
	return ret;
}

/* At capacity every INVITE is refused, with a CDR: say so, but at most
 * every 10 s. */
static void b2b_refuse_full(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	uint64_t now = shm_now_ms();

	b2b->full_refused++;
	if (now - b2b->full_logged_ms >= 10000) {
		log_warn("call table full (call_capacity %u): %u INVITEs refused with 503 "
			 "in the last %llu s", b2b->cfg->call_capacity, b2b->full_refused,
			 (unsigned long long)(b2b->full_logged_ms ? (now - b2b->full_logged_ms) / 1000
								  : 0));
		b2b->full_logged_ms = now;
		b2b->full_refused = 0;
	}
	b2b_write_refused_cdr(b2b, sip, 503, "capacity");
	b2b_refuse(b2b, irq, SIP_503_SERVICE_UNAVAILABLE, "5");
}

/* ------------------------------------------------------------ new calls */

/* Is a Via host (an IPv6 one in brackets) the address or name `addr`
 * (written without brackets)?  1 or 0. */
static int b2b_host_is(const char *host, const char *addr)
{
	size_t len = strlen(host);

	if (host[0] == '[' && len >= 2 && host[len - 1] == ']')
		return strlen(addr) == len - 2 && strncasecmp(host + 1, addr, len - 2) == 0;
	return strcasecmp(host, addr) == 0;
}

/* Is one of our own addresses in this Via chain?  Then the request looped. */
static int b2b_via_is_ours(const b2b_t *b2b, sip_via_t const *v)
{
	const struct config *cfg = b2b->cfg;

	for (; v; v = v->v_next) {
		int port = v->v_port ? atoi(v->v_port) : 5060;

		size_t i = 0;

		while (v->v_host && i < cfg->n_listen && !b2b_host_is(v->v_host, cfg->advertise[i]) &&
		       !b2b_host_is(v->v_host, cfg->listen[i]))
			i++;
		if (!v->v_host || i == cfg->n_listen)
			continue;
		if (port == cfg->sip_port ||
		    (port >= cfg->worker_port_base &&
		     port < cfg->worker_port_base + cfg->workers))
			return 1;
	}
	return 0;
}

/* An INVITE outside any dialog: a new call, or a refusal. */
static int b2b_on_invite(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	struct shm_call rec;
	struct b2b_call *call;
	char a_tag[SHM_TAG_MAX];

	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_TOTAL, 1);
	if (sip->sip_to->a_tag) {
		/* A re-INVITE for a dialog we do not have. */
		b2b_refuse(b2b, irq, SIP_481_NO_TRANSACTION, NULL);
		return 0;
	}
	if (sip->sip_call_id == NULL || sip->sip_call_id->i_id == NULL ||
	    sip->sip_call_id->i_id[0] == '\0') {
		/* Nothing to key a call on (the table, the routing of its CANCEL). */
		b2b_refuse(b2b, irq, 400, "Missing Call-ID", NULL);
		return 0;
	}
	if (b2b->draining) {
		b2b_refuse(b2b, irq, SIP_503_SERVICE_UNAVAILABLE, "10");
		b2b_write_refused_cdr(b2b, sip, 503, "draining");
		return 0;
	}
	if (sip->sip_max_forwards && sip->sip_max_forwards->mf_count == 0) {
		b2b_refuse(b2b, irq, SIP_483_TOO_MANY_HOPS, NULL);
		return 0;
	}
	if (b2b_via_is_ours(b2b, sip->sip_via) && !b2b_flow_sibling_handoff(b2b, irq, sip)) {
		b2b_refuse(b2b, irq, SIP_482_LOOP_DETECTED, NULL);
		return 0;
	}

	nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());

	b2b_make_tag(b2b, a_tag, sizeof a_tag);
	b2b_record_init(b2b, &rec, sip, a_tag);
	call = b2b_call_alloc(b2b);
	if (call == NULL) {
		b2b_refuse_full(b2b, irq, sip);
		return 0;
	}
	b2b_call_set_id(call, rec.id);
	if (b2b_publish_call(call, &rec) < 0) {
		b2b_refuse_full(b2b, irq, sip);
		b2b_call_free(call);   /* not in the table: only the pool entry to return */
		return 0;
	}
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_CREATED, 1);
	b2b_publish_invite_a(call, sip);
	if (b2b_a_leg_create(call, irq, sip, a_tag) < 0) {
		log_error("call %s: cannot create the A-leg dialog", call->id);
		if (call->a_irq == NULL)
			b2b_refuse(b2b, irq, SIP_500_INTERNAL_SERVER_ERROR, NULL);
		b2b_call_refuse(call, SIP_500_INTERNAL_SERVER_ERROR);
		return 0;
	}
	call->state = B2B_ROUTING;
	call->in_setup = 1;
	b2b->setup++;
	b2b_admit(call, irq, sip);
	return 0;
}

/* Every request that matches no dialog lands here. */
static int b2b_on_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
			  sip_t const *sip)
{
	b2b_t *b2b = (b2b_t *)magic;
	int status;

	if (b2b_rate_limited(b2b, irq, sip))
		return 0;     /* over its source's limit: answered 503 */
	if (b2b_stream_relay(b2b, irq, sip) == 0)
		return 0;     /* on a connection, for another worker's call: relayed */
	if (sip->sip_request->rq_method != sip_method_ack &&
	    sip->sip_request->rq_method != sip_method_cancel &&
	    b2b_rest_on_request(b2b, irq, sip, &status) == 0)
		return status;   /* a call at rest woke for it (b2b_rest.c) */
	switch (sip->sip_request->rq_method) {
	case sip_method_invite:
		return b2b_on_invite(b2b, irq, sip);
	case sip_method_register:
		if (b2b->reg == NULL)
			return 501;
		registrar_on_register(b2b->reg, irq, sip);
		return 0;
	case sip_method_ack:
		return 200;    /* stray ACK (worker/dgram.c sends ours to us): absorb silently */
	case sip_method_options:
		return 200;
	case sip_method_cancel:
		/* Its INVITE is not ours (worker/dgram.c routes by Call-ID), or
		 * died with the previous process after the answer: b2b_adopt.c. */
		return b2b_adopt_on_cancel(b2b, irq, sip);
	case sip_method_bye:
		return 481;    /* no such dialog */
	default:
		return 501;
	}
}

/* ------------------------------------------------------------ addresses */

/* The family of an IP literal (an IPv6 one with or without brackets), or
 * AF_UNSPEC for a host name. */
static int b2b_host_family(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char v6[INET6_ADDRSTRLEN];
	size_t len = host ? strlen(host) : 0;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof v6) {
		memcpy(v6, host + 1, len - 2);
		v6[len - 2] = '\0';
		return inet_pton(AF_INET6, v6, buf) == 1 ? AF_INET6 : AF_UNSPEC;
	}
	if (len && inet_pton(AF_INET, host, buf) == 1)
		return AF_INET;
	if (len && inet_pton(AF_INET6, host, buf) == 1)
		return AF_INET6;
	return AF_UNSPEC;
}

static unsigned b2b_addr_of_family(const b2b_t *b2b, int family)
{
	for (unsigned i = 0; family != AF_UNSPEC && i < b2b->n_addr; i++)
		if (b2b->addr[i].family == family)
			return i;
	return 0;
}

unsigned b2b_addr_for_host(const b2b_t *b2b, const char *host)
{
	return b2b_addr_of_family(b2b, b2b_host_family(host));
}

unsigned b2b_addr_for_source(const b2b_t *b2b, nta_incoming_t *irq)
{
	msg_t *msg = b2b->n_addr > 1 ? nta_incoming_getrequest(irq) : NULL;
	su_sockaddr_t const *sa = msg ? msg_addr(msg) : NULL;
	unsigned i = sa ? b2b_addr_of_family(b2b, sa->su_family) : 0;

	msg_destroy(msg);
	return i;
}

/* ------------------------------------------------------------ agent */

static char *b2b_host_for_uri(su_home_t *home, const char *host)
{
	/* An IPv6 literal goes in brackets in a SIP URI. */
	return strchr(host, ':') ? su_sprintf(home, "[%s]", host) : su_strdup(home, host);
}

/* One more transport for the agent, named `ident`: 0, or -EADDRINUSE (logged). */
static int b2b_add_tport(b2b_t *b2b, const char *url, const char *ident)
{
	if (nta_agent_add_tport(b2b->agent, URL_STRING_MAKE(url),
				TPTAG_IDENT(ident), TAG_END()) < 0) {
		log_error("cannot listen on %s: %m", url);
		return -EADDRINUSE;
	}
	return 0;
}

/*
 * transports has "tcp": the public and own ports listen on TCP too, with
 * the same idents as their UDP twins, so TPTAG_IDENT(own) with a
 * ;transport=tcp target sends from the own TCP primary.  The public TCP
 * socket is shared by every worker (worker/reuseport.c sets SO_REUSEPORT
 * on stream sockets of the public port too): the kernel picks the worker
 * that accepts each connection.  0, or -EADDRINUSE.
 */
static int b2b_tcp_create(b2b_t *b2b, const char *listen, int own_port,
			  const struct b2b_addr *a)
{
	char *pub = su_sprintf(b2b->home, "sip:%s:%d;transport=tcp", listen, b2b->cfg->sip_port);
	char *own = su_sprintf(b2b->home, "sip:%s:%d;transport=tcp", listen, own_port);

	if (b2b_add_tport(b2b, pub, a->ident_public) < 0 ||
	    b2b_add_tport(b2b, own, a->ident_own) < 0)
		return -EADDRINUSE;
	return 0;
}

/*
 * Listen address i (dual stack: each has its own primaries, Sofia binds
 * one address per primary): its idents, its UDP public and own ports (the
 * first address's public port is the agent's own, made with it), TCP, and
 * our Contacts on it.  0, -EADDRINUSE or -ENOMEM.
 */
static int b2b_addr_create(b2b_t *b2b, unsigned i, int own_port)
{
	const struct config *cfg = b2b->cfg;
	struct b2b_addr *a = &b2b->addr[i];
	char *listen = b2b_host_for_uri(b2b->home, cfg->listen[i]);
	char *adv = b2b_host_for_uri(b2b->home, cfg->advertise[i]);
	char *pub_url = su_sprintf(b2b->home, "sip:%s:%d;transport=udp", listen, cfg->sip_port);
	char *own_url = su_sprintf(b2b->home, "sip:%s:%d;transport=udp", listen, own_port);

	if (i > 0 && b2b_add_tport(b2b, pub_url, a->ident_public) < 0)
		return -EADDRINUSE;
	if (b2b_add_tport(b2b, own_url, a->ident_own) < 0)
		return -EADDRINUSE;
	a->contact = sip_contact_format(b2b->home, "<sip:%s@%s:%d;transport=udp>",
					cfg->node_id, adv, own_port);
	if ((cfg->transports & CONFIG_TP_TCP) && b2b_tcp_create(b2b, listen, own_port, a) < 0)
		return -EADDRINUSE;
	if ((cfg->transports & CONFIG_TP_TCP) &&
	    (a->contact_tcp = sip_contact_format(b2b->home, "<sip:%s@%s:%d;transport=tcp>",
						 cfg->node_id, adv, own_port)) == NULL)
		return -ENOMEM;
	if (cfg->transports & CONFIG_TP_TLS) {
		int ret = b2b_tls_create(b2b, listen, adv, a);

		if (ret < 0)
			return ret;
	}
	return a->contact ? 0 : -ENOMEM;
}

/* The idents and family of every listen address, before any transport. */
static void b2b_addrs_init(b2b_t *b2b)
{
	const struct config *cfg = b2b->cfg;

	b2b->n_addr = (unsigned)cfg->n_listen;
	for (unsigned i = 0; i < b2b->n_addr; i++) {
		struct b2b_addr *a = &b2b->addr[i];

		a->family = strchr(cfg->listen[i], ':') ? AF_INET6 : AF_INET;
		if (i == 0) {
			snprintf(a->ident_public, sizeof a->ident_public, B2B_IDENT_PUBLIC);
			snprintf(a->ident_own, sizeof a->ident_own, B2B_IDENT_OWN);
		} else {
			snprintf(a->ident_public, sizeof a->ident_public, B2B_IDENT_PUBLIC "%u", i);
			snprintf(a->ident_own, sizeof a->ident_own, B2B_IDENT_OWN "%u", i);
		}
	}
}

static int b2b_agent_create(b2b_t *b2b)
{
	const struct config *cfg = b2b->cfg;
	int own_port = cfg->worker_port_base + (int)b2b->worker;
	char *listen = b2b_host_for_uri(b2b->home, cfg->listen[0]);
	char *pub_url = su_sprintf(b2b->home, "sip:%s:%d;transport=udp", listen, cfg->sip_port);
	int ret = 0;

	b2b_addrs_init(b2b);
	b2b->agent = nta_agent_create(b2b->root, URL_STRING_MAKE(pub_url),
				      b2b_adopt_on_stray, (nta_agent_magic_t *)b2b,
				      TPTAG_IDENT(B2B_IDENT_PUBLIC),
				      NTATAG_UA(1),
				      NTATAG_CANCEL_487(0),
				      NTATAG_SERVER_RPORT(1),
				      NTATAG_CLIENT_RPORT(1),
				      NTATAG_UDP_MTU(65535),
				      NTATAG_TIMER_C((unsigned)cfg->invite_timeout * 1000u),
				      NTATAG_MAX_PROCEEDING(cfg->call_capacity * 2u),
				      TAG_END());
	if (b2b->agent == NULL) {
		log_error("cannot listen on %s: %m", pub_url);
		return -EADDRINUSE;
	}
	if (cfg->transports & CONFIG_TP_TLS)
		ret = b2b_tls_begin(b2b);
	for (unsigned i = 0; ret == 0 && i < b2b->n_addr; i++)
		ret = b2b_addr_create(b2b, i, own_port);
	b2b_tls_destroy(b2b);   /* Sofia has read the certificates (b2b_tls.c) */
	if (ret < 0)
		return ret;
	b2b->contact = b2b->addr[0].contact;
	b2b->contact_tcp = b2b->addr[0].contact_tcp;
	b2b->contact_tls = b2b->addr[0].contact_tls;
	b2b->default_leg = nta_leg_tcreate(b2b->agent, b2b_on_request, (nta_leg_magic_t *)b2b,
					   NTATAG_NO_DIALOG(1), TAG_END());
	if (b2b->contact == NULL || b2b->default_leg == NULL)
		return -ENOMEM;
	return 0;
}

int b2b_reload(b2b_t *b2b, const struct config *old)
{
	int ret = b2b_policy_reload(b2b, old);

	if (ret < 0)
		return ret;
	/* New transactions; a call already ringing keeps its own deadline,
	 * set from invite_timeout when its INVITE arrived (b2b_timer.c). */
	nta_agent_set_params(b2b->agent,
			     NTATAG_TIMER_C((unsigned)b2b->cfg->invite_timeout * 1000u), TAG_END());
	return 0;
}

int b2b_create(su_root_t *root, const struct config *cfg, shm_t *shm,
	       unsigned worker, b2b_t **out)
{
	b2b_t *b2b = su_home_new(sizeof *b2b);
	int ret;

	if (b2b == NULL)
		return -ENOMEM;
	b2b->root = root;
	b2b->cfg = cfg;
	b2b->shm = shm;
	b2b->worker = worker;
	b2b->epoch_ms = shm_now_ms();
	if (getrandom(&b2b->rng, sizeof b2b->rng, 0) != sizeof b2b->rng || b2b->rng == 0)
		b2b->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)shm_now_ms();

	/* call_capacity entries reserved, resident only as calls take them:
	 * every worker may own every call, but together they hold each once. */
	ret = b2b_pool_create(sizeof(struct b2b_call), cfg->call_capacity, &b2b->pool);
	if (ret < 0) {
		su_home_unref(b2b->home);
		return ret;
	}
	ret = b2b_parse_routes(b2b);
	if (ret == 0)
		ret = b2b_limits_create(b2b);
	if (ret == 0)
		ret = b2b_rest_create(b2b);
	if (ret == 0)
		ret = b2b_agent_create(b2b);
	if (ret < 0) {
		b2b_destroy(b2b);
		return ret;
	}
	*out = b2b;
	return 0;
}

void b2b_destroy(b2b_t *b2b)
{
	if (b2b == NULL)
		return;
	b2b_adopt_destroy(b2b);
	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (call->b2b)
			b2b_call_end(call);
	}
	b2b_timers_destroy(b2b);
	if (b2b->default_leg)
		nta_leg_destroy(b2b->default_leg);
	if (b2b->agent)
		nta_agent_destroy(b2b->agent);
	b2b_tls_destroy(b2b);
	b2b_overload_free(b2b);   /* after the agent: its sockets' gate is gone */
	b2b_pool_destroy(b2b->pool);
	b2b_rest_destroy(b2b);
	b2b_limits_destroy(b2b);
	su_home_unref(b2b->home);
}

void b2b_set_cdr_writer(b2b_t *b2b, struct cdr_writer *w)
{
	b2b->cdr = w;
}

void b2b_set_registrar(b2b_t *b2b, struct registrar *reg)
{
	b2b->reg = reg;
}

int b2b_keepalive_create(b2b_t *b2b, struct rds *rds, struct keepalive **out)
{
	/* From the public port: the binding's NAT opened it for that one; of
	 * the binding's family (dual stack). */
	int ret = keepalive_create(b2b->root, b2b->agent, B2B_IDENT_PUBLIC, rds, b2b->shm,
				   b2b->cfg, b2b->worker, out);

	if (ret == 0 && b2b->n_addr > 1)
		keepalive_set_family_idents(*out,
			b2b->addr[b2b_addr_of_family(b2b, AF_INET)].ident_public,
			b2b->addr[b2b_addr_of_family(b2b, AF_INET6)].ident_public);
	return ret;
}

void b2b_set_draining(b2b_t *b2b, int draining)
{
	b2b->draining = draining;
}

unsigned b2b_active_calls(const b2b_t *b2b)
{
	return b2b->active;
}

void b2b_hangup_all(b2b_t *b2b)
{
	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (call->b2b != NULL && !call->ended)
			b2b_call_abort(call, 503);
	}
}

void b2b_expire_calls(b2b_t *b2b)
{
	uint64_t limit = (uint64_t)b2b->cfg->max_call_duration * 1000u;
	uint64_t now = shm_now_ms();

	if (limit == 0)
		return;
	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (call->b2b == NULL || call->ended || call->answer_ms == 0 ||
		    now - call->answer_ms < limit ||
		    (call->state != B2B_ANSWERED && call->state != B2B_CONFIRMED))
			continue;
		log_warn("call %s: up for %llu s, longer than max_call_duration: ending it",
			 call->id, (unsigned long long)((now - call->answer_ms) / 1000));
		b2b_call_abort(call, 408);
	}
}

int b2b_kill(b2b_t *b2b, const char *id)
{
	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (call->b2b == NULL || call->ended || strcmp(call->id, id) != 0)
			continue;
		log_info("call %s: killed by an operator (state %d)", id, (int)call->state);
		call->killed = 1;
		b2b_call_abort(call, 487);
		return 0;
	}
	return -ENOENT;
}

void b2b_publish_stats(b2b_t *b2b)
{
	usize_t in = 0, out = 0, rtx_req = 0, rtx_resp = 0, rtx_in = 0;

	nta_agent_get_stats(b2b->agent, NTATAG_S_RECV_MSG_REF(in),
			    NTATAG_S_SENT_MSG_REF(out), NTATAG_S_RETRY_REQUEST_REF(rtx_req),
			    NTATAG_S_RETRY_RESPONSE_REF(rtx_resp), NTATAG_S_RECV_RETRY_REF(rtx_in),
			    TAG_END());
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_RETRANS_OUT,
			(int64_t)(rtx_req + rtx_resp - b2b->published_rtx_out));
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_RETRANS_IN,
			(int64_t)(rtx_in - b2b->published_rtx_in));
	b2b->published_rtx_out = rtx_req + rtx_resp;
	b2b->published_rtx_in = rtx_in;
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_MSGS_IN,
			(int64_t)(in - b2b->published_in));
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_MSGS_OUT,
			(int64_t)(out - b2b->published_out));
	b2b->published_in = in;
	b2b->published_out = out;
}
