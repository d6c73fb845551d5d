/*
 * registrar — REGISTER, digest authentication and the location service.
 * See registrar.h; the Redis keys are documented in docs/redis-schema.md.
 *
 * Design note.  This file is the SIP half: it parses requests, checks
 * credentials (b2bua/digest.c), builds challenges and responses.  Everything kept
 * in Redis goes through the store's asynchronous side (store/store.h), one
 * round trip each, while the SIP transaction waits:
 *
 *   store_auth_get   the subscriber's HA1 and enabled flag, and the failure
 *                    count of the source address (throttling);
 *   store_register   the nonce-count replay check and the whole update of
 *                    the AOR's bindings (Call-ID/CSeq ordering, expiry,
 *                    removal), answering with the bindings left;
 *   store_lookup     the unexpired contacts of a user and its forwarding,
 *                    counting the call against max_calls.
 *
 * No worker caches a binding, so a de-registration or an expiry is seen by
 * every worker and every host at the next lookup.
 *
 * Flows (worker/flow.h): a REGISTER read on a connection records its
 * transport, the connection's token and this worker (flow_worker), so that
 * calls reach the subscriber over that connection, through this worker.
 *
 * Subscribers behind NAT (a source that is not the Contact,
 * registrar_behind_nat): each binding records this host's SIP address
 * (host_address) beside its source, host and worker, and the worker that
 * accepted the REGISTER is told of it (worker/keepalive.h), so that it
 * keeps the subscriber's NAT binding open.  That list serves keepalives
 * only, never lookups.
 *
 * An unknown user and a wrong password get the same answer (a new
 * challenge), and both count as a failure of the source address; past
 * auth_fail_limit failures in auth_fail_window seconds the source gets 403.
 *
 * No user enumeration.  Whatever can be answered without credentials is
 * answered before Redis is asked anything, from the request alone: a
 * REGISTER or an INVITE without (valid-looking) credentials gets its
 * 401/407 at once, the same for every name, and registrar_invite_admission()
 * decides who must authenticate from the From, the Request-URI and the
 * presence of Proxy-Authorization only.  Only verified credentials reveal
 * something (a disabled user gets 403), and only to who knows the password.
 * Which sources are trusted is the caller's question (b2b_policy.c): the
 * registrar authenticates whoever it is asked to.
 */
#include "worker/registrar.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/digest.h"
#include "b2bua/log.h"
#include "shm/shm.h"
#include "store/store.h"
#include "worker/flow.h"
#include "worker/keepalive.h"

#define REGISTRAR_MAX_REGISTER_CONTACTS 16

struct registrar {
	const struct config *cfg;
	rds_t *rds;
	unsigned worker;
	char secret[sizeof ((struct config *)0)->auth_secret];
	char host_address[REGISTRAR_ADDR_MAX];
	struct keepalive *ka;            /* NULL: no NAT keepalives */
	shm_t *shm;                      /* counters (metrics); NULL: none */
};

/* One REGISTER or INVITE authentication waiting for Redis. */
struct registrar_req {
	registrar_t *reg;
	nta_incoming_t *irq;             /* REGISTER only */
	registrar_auth_f *auth_done;     /* INVITE only */
	registrar_lookup_f *lookup_done; /* lookups only */
	void *arg;
	struct digest_credentials cred;
	char method[16];
	char source[64];                 /* "ip:port" of the request */
	struct flow flow;                /* REGISTER: the connection it came over */
	char from_user[DIGEST_USER_MAX];
	/* REGISTER: what the script needs after authentication. */
	char call_id[128];
	uint32_t cseq;
	char user_agent[128];
	int star;
	unsigned n_contacts;
	char contacts[REGISTRAR_MAX_REGISTER_CONTACTS][REGISTRAR_URI_MAX];
	int expires[REGISTRAR_MAX_REGISTER_CONTACTS];
};

/* ------------------------------------------------------------ helpers */

int registrar_request_source(nta_incoming_t *irq, char *out, size_t size)
{
	msg_t *msg = nta_incoming_getrequest(irq);
	su_sockaddr_t const *sa = msg ? msg_addr(msg) : NULL;
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0, ret = 0;

	if (sa && sa->su_family == AF_INET) {
		inet_ntop(AF_INET, &sa->su_sin.sin_addr, ip, sizeof ip);
		port = ntohs(sa->su_sin.sin_port);
	} else if (sa && sa->su_family == AF_INET6) {
		inet_ntop(AF_INET6, &sa->su_sin6.sin6_addr, ip, sizeof ip);
		port = ntohs(sa->su_sin6.sin6_port);
	} else {
		ret = -ENOENT;
	}
	/* "ip:port", an IPv6 address in brackets ("[v6]:port"), as in a URI. */
	snprintf(out, size, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
	msg_destroy(msg);
	return ret;
}

static struct registrar_req *registrar_req_new(registrar_t *reg)
{
	struct registrar_req *req = calloc(1, sizeof *req);

	if (req)
		req->reg = reg;
	return req;
}

/* One challenge per auth_algorithms entry, in its order (RFC 8760 §2.3: most
 * preferred first; a client answers the topmost it supports), one fresh
 * nonce for all. */
static void registrar_challenges_make(registrar_t *reg, int stale,
				      struct registrar_challenges *ch)
{
	char nonce[DIGEST_NONCE_LEN + 1];

	digest_nonce_make(reg->secret, (uint64_t)time(NULL), nonce, sizeof nonce);
	ch->n = reg->cfg->n_auth_algorithms;
	for (size_t i = 0; i < ch->n; i++)
		digest_challenge(reg->cfg->auth_algorithms[i], reg->cfg->realm, nonce, stale,
				 ch->value[i], DIGEST_CHALLENGE_SIZE);
}

static void registrar_reply_401(registrar_t *reg, nta_incoming_t *irq, int stale)
{
	struct registrar_challenges ch;

	_Static_assert(CONFIG_MAX_AUTH_ALGORITHMS == 2, "one tag per possible challenge");
	registrar_challenges_make(reg, stale, &ch);
	nta_incoming_treply(irq, SIP_401_UNAUTHORIZED,
			    TAG_IF(ch.n > 0, SIPTAG_WWW_AUTHENTICATE_STR(ch.value[0])),
			    TAG_IF(ch.n > 1, SIPTAG_WWW_AUTHENTICATE_STR(ch.value[1])),
			    TAG_END());
	nta_incoming_destroy(irq);
}

/* A 503 here means Redis did not answer: say when to try again (RFC 3261
 * 21.5.4), so that user agents back off instead of retrying at once. */
static void registrar_reply(nta_incoming_t *irq, int status, const char *phrase)
{
	nta_incoming_treply(irq, status, phrase,
			    TAG_IF(status == 503, SIPTAG_RETRY_AFTER_STR("5")), TAG_END());
	nta_incoming_destroy(irq);
}

/* Is a URI's host (an IPv6 one in brackets) the address `ip`?  1 or 0. */
static int registrar_same_host(const char *host, const char *ip)
{
	size_t len = strlen(host);

	if (host[0] == '[' && len >= 2 && host[len - 1] == ']')
		return strlen(ip) == len - 2 && strncasecmp(host + 1, ip, len - 2) == 0;
	return strcasecmp(host, ip) == 0;
}

/* The address part of "ip:port" (IPv6 addresses have colons of their own). */
static void registrar_source_ip(const char *source, char *ip, size_t size)
{
	char *colon;

	/* "[v6]:port" counts as the address without its brackets. */
	snprintf(ip, size, "%s", source[0] == '[' ? source + 1 : source);
	colon = strrchr(ip, ':');
	if (colon)
		*colon = '\0';
	if (source[0] == '[' && colon && colon > ip && colon[-1] == ']')
		colon[-1] = '\0';
}

/* Count one failed attempt of this source (fire and forget). */
static void registrar_count_failure(registrar_t *reg, const char *source)
{
	char ip[64];

	registrar_source_ip(source, ip, sizeof ip);
	store_auth_fail(reg->rds, ip, reg->cfg->auth_fail_window);
}

/* ------------------------------------------------------------ authentication */

typedef void registrar_authed_f(struct registrar_req *req, int status);

/*
 * Start checking req->cred against Redis; `next(req, status)` runs with 0
 * (verified), 401 (unknown user or wrong password: challenge again),
 * 403 (throttled or disabled) or 503 (Redis unreachable).
 */
struct registrar_auth_ctx {
	struct registrar_req *req;
	registrar_authed_f *next;
};

static void registrar_on_auth(void *arg, int err, const struct store_auth *auth)
{
	struct registrar_auth_ctx *ctx = arg;
	struct registrar_req *req = ctx->req;
	registrar_t *reg = req->reg;
	registrar_authed_f *next = ctx->next;
	/* A well-formed HA1 that matches nothing: an unknown user costs the
	 * same verification as a known one. */
	const char *ha1 = "00000000000000000000000000000000"
			  "00000000000000000000000000000000";
	int ok;

	free(ctx);
	if (err < 0) {
		next(req, 503);
		return;
	}
	if (auth->failures >= reg->cfg->auth_fail_limit) {
		static struct log_limit throttled_limit = { .what = "sources throttled" };
		log_limited(&throttled_limit, LOG_WARN,
			    "source %s throttled: %lld failed authentications", req->source,
			    auth->failures);
		next(req, 403);
		return;
	}
	if (auth->known)
		ha1 = auth->ha1;
	ok = digest_verify(&req->cred, req->method, ha1) == 0 && auth->known;
	if (!ok) {
		registrar_count_failure(reg, req->source);
		shm_counter_add(reg->shm, reg->worker, SHM_CTR_AUTH_FAILED, 1);
		log_info("authentication of '%s' from %s failed", req->cred.username, req->source);
		next(req, 401);
		return;
	}
	next(req, auth->enabled ? 0 : 403);
}

static int registrar_auth_start(struct registrar_req *req, registrar_authed_f *next)
{
	struct registrar_auth_ctx *ctx = malloc(sizeof *ctx);
	char ip[64];
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ctx->req = req;
	ctx->next = next;
	registrar_source_ip(req->source, ip, sizeof ip);
	ret = store_auth_get(req->reg->rds, req->cred.username, ip, req->cred.alg,
			     registrar_on_auth, ctx);
	if (ret < 0)
		free(ctx);
	return ret;
}

/* Is `alg` one of auth_algorithms? */
static int registrar_alg_offered(const registrar_t *reg, enum digest_alg alg)
{
	for (size_t i = 0; i < reg->cfg->n_auth_algorithms; i++)
		if (reg->cfg->auth_algorithms[i] == alg)
			return 1;
	return 0;
}

/* Parse and pre-check credentials of `au` (stateless: realm, nonce).
 * Returns 0 when Redis must be asked, or the status to challenge with:
 * 401 (none / invalid nonce) or -401 (stale nonce: stale=true). */
static int registrar_precheck(registrar_t *reg, const msg_auth_t *au, struct registrar_req *req)
{
	if (au == NULL || digest_parse_auth((const struct msg_auth_s *)au, reg->cfg->realm,
					    &req->cred) < 0)
		return 401;
	/* Only what we offered: with [ "SHA-256" ] an MD5 answer is a downgrade. */
	if (!registrar_alg_offered(reg, req->cred.alg))
		return 401;
	switch (digest_nonce_check(reg->secret, req->cred.nonce, (uint64_t)time(NULL),
				   (unsigned)reg->cfg->nonce_ttl)) {
	case DIGEST_NONCE_VALID:
		return 0;
	case DIGEST_NONCE_STALE:
		return -401;
	default:
		return 401;
	}
}

/* ------------------------------------------------------------ REGISTER */

/* The bindings this REGISTER changed, for the NAT keepalives of this worker. */
static void registrar_tell_keepalive(const struct registrar_req *req)
{
	registrar_t *reg = req->reg;

	if (reg->ka == NULL)
		return;
	if (req->star) {
		keepalive_forget_user(reg->ka, req->cred.username);
		return;
	}
	for (unsigned i = 0; i < req->n_contacts; i++) {
		struct keepalive_binding b = {
			.user = req->cred.username,
			.contact = req->contacts[i],
			.source = req->source,
			.call_id = req->call_id,
			.cseq = req->cseq,
			.expires_s = req->expires[i],
		};

		/* Not behind NAT, or on a connection (it keeps its own NAT
		 * mapping open; an OPTIONS to its source over UDP would reach
		 * nothing): nothing to keep open. */
		if (b.expires_s > 0 && (!registrar_behind_nat(b.contact, b.source) ||
					req->flow.token[0]))
			b.expires_s = 0;
		keepalive_note(reg->ka, &b);
	}
}

/* A REGISTER answered 200: accepted when it adds or refreshes a binding,
 * removed when it only removes some (Contact: *, or every expires 0); a
 * query (no Contact) is neither. */
static void registrar_count_registered(const struct registrar_req *req)
{
	int adds = 0;

	for (unsigned i = 0; i < req->n_contacts; i++)
		if (req->expires[i] > 0)
			adds = 1;
	if (adds && !req->star)
		shm_counter_add(req->reg->shm, req->reg->worker, SHM_CTR_REG_ACCEPTED, 1);
	else if (req->star || req->n_contacts > 0)
		shm_counter_add(req->reg->shm, req->reg->worker, SHM_CTR_REG_REMOVED, 1);
}

static void registrar_on_registered(void *arg, int err, enum store_register_result result,
				    const struct store_binding_left *left, size_t n_left)
{
	struct registrar_req *req = arg;
	char contacts[REGISTRAR_MAX_REGISTER_CONTACTS * (REGISTRAR_URI_MAX + 32)];
	size_t len = 0;

	if (err < 0) {
		static struct log_limit unavailable_limit = {
			.what = "REGISTERs refused: location service unavailable" };
		log_limited(&unavailable_limit, LOG_WARN,
			    "REGISTER of '%s': location service unavailable", req->cred.username);
		registrar_reply(req->irq, SIP_503_SERVICE_UNAVAILABLE);
		free(req);
		return;
	}
	if (result == STORE_REPLAYED) {
		static struct log_limit replay_limit = { .what = "REGISTER replays refused" };
		log_limited(&replay_limit, LOG_WARN,
			    "REGISTER of '%s' from %s: nonce-count reused (replay refused)",
			    req->cred.username, req->source);
		registrar_reply_401(req->reg, req->irq, 0);
		free(req);
		return;
	}
	if (result == STORE_OUT_OF_ORDER) {
		/* No header names in the phrase: naive parsers look for "CSeq". */
		registrar_reply(req->irq, 400, "Out of order request");
		free(req);
		return;
	}
	for (size_t i = 0; i < n_left && len < sizeof contacts - 1; i++) {
		int n = snprintf(contacts + len, sizeof contacts - len, "%s<%s>;expires=%lld",
				 len ? ", " : "", left[i].contact, left[i].expires_in_s);
		if (n < 0 || (size_t)n >= sizeof contacts - len)
			break;
		len += (size_t)n;
	}
	log_info("REGISTER '%s' from %s: %zu bindings", req->cred.username, req->source, n_left);
	registrar_count_registered(req);
	registrar_tell_keepalive(req);
	nta_incoming_treply(req->irq, SIP_200_OK,
			    TAG_IF(len > 0, SIPTAG_CONTACT_STR(contacts)),
			    TAG_END());
	nta_incoming_destroy(req->irq);
	free(req);
}

static void registrar_register_update(struct registrar_req *req)
{
	registrar_t *reg = req->reg;
	const char *contacts[REGISTRAR_MAX_REGISTER_CONTACTS];
	char replay[DIGEST_REPLAY_KEY_SIZE] = "";
	struct store_register_req sr = {
		.user = req->cred.username,
		.replay_key = replay,
		.nonce_ttl = reg->cfg->nonce_ttl,
		.call_id = req->call_id,
		.cseq = req->cseq,
		.source = req->source,
		.transport = req->flow.transport,
		.user_agent = req->user_agent,
		.host = reg->cfg->node_id,
		.worker = reg->worker,
		.host_address = reg->host_address,
		.flow = req->flow.token,
		.flow_worker = reg->worker,
		.remove_all = req->star,
		.n_contacts = req->n_contacts,
		.contacts = contacts,
		.expires = req->expires,
	};

	if (digest_replay_key(&req->cred, replay, sizeof replay) < 0)
		replay[0] = '\0';
	for (unsigned i = 0; i < req->n_contacts; i++)
		contacts[i] = req->contacts[i];
	if (store_register(reg->rds, &sr, registrar_on_registered, req) < 0) {
		registrar_reply(req->irq, SIP_503_SERVICE_UNAVAILABLE);
		free(req);
	}
}

static void registrar_on_register_authed(struct registrar_req *req, int status)
{
	if (status == 0) {
		registrar_register_update(req);
		return;
	}
	if (status == 401)
		registrar_reply_401(req->reg, req->irq, 0);
	else if (status == 403)
		registrar_reply(req->irq, SIP_403_FORBIDDEN);
	else
		registrar_reply(req->irq, SIP_503_SERVICE_UNAVAILABLE);
	free(req);
}

/* Requested expiry of one Contact: its ;expires, else Expires:, else the default. */
static int registrar_contact_expires(const registrar_t *reg, sip_contact_t const *m,
				     sip_t const *sip)
{
	if (m->m_expires)
		return atoi(m->m_expires);
	if (sip->sip_expires)
		return (int)sip->sip_expires->ex_delta;
	return reg->cfg->register_default_expires;
}

/* Validate the bindings part of a REGISTER into req.  0, or a status. */
static int registrar_read_contacts(registrar_t *reg, sip_t const *sip, struct registrar_req *req,
				   int *min_expires_needed)
{
	const struct config *cfg = reg->cfg;

	for (sip_contact_t const *m = sip->sip_contact; m; m = m->m_next) {
		int e;

		if (m->m_url->url_type == url_any) {
			/* Contact: * — only alone and with Expires: 0 (RFC 3261 10.2.2). */
			if (m != sip->sip_contact || m->m_next || !sip->sip_expires ||
			    sip->sip_expires->ex_delta != 0)
				return 400;
			req->star = 1;
			return 0;
		}
		if (req->n_contacts == REGISTRAR_MAX_REGISTER_CONTACTS)
			return 403;
		e = registrar_contact_expires(reg, m, sip);
		if (e > 0 && e < cfg->register_min_expires) {
			*min_expires_needed = 1;
			return 423;
		}
		if (e > cfg->register_max_expires)
			e = cfg->register_max_expires;
		if (url_e(req->contacts[req->n_contacts], REGISTRAR_URI_MAX, m->m_url) < 0)
			return 400;
		req->expires[req->n_contacts++] = e < 0 ? 0 : e;
	}
	return 0;
}

void registrar_on_register(registrar_t *reg, nta_incoming_t *irq, sip_t const *sip)
{
	struct registrar_req *req = registrar_req_new(reg);
	char min[16];
	int status, brief = 0;

	if (req == NULL) {
		registrar_reply(irq, SIP_500_INTERNAL_SERVER_ERROR);
		return;
	}
	req->irq = irq;
	snprintf(req->method, sizeof req->method, "REGISTER");
	registrar_request_source(irq, req->source, sizeof req->source);
	flow_of_request(irq, &req->flow);

	status = registrar_precheck(reg, sip->sip_authorization, req);
	if (status != 0) {
		registrar_reply_401(reg, irq, status < 0);
		free(req);
		return;
	}
	/* The credentials are for the AOR being registered (To user). */
	if (!sip->sip_to->a_url->url_user ||
	    strcmp(sip->sip_to->a_url->url_user, req->cred.username) != 0) {
		registrar_reply(irq, SIP_403_FORBIDDEN);
		free(req);
		return;
	}
	status = registrar_read_contacts(reg, sip, req, &brief);
	if (status == 423) {
		snprintf(min, sizeof min, "%d", reg->cfg->register_min_expires);
		nta_incoming_treply(irq, SIP_423_INTERVAL_TOO_BRIEF,
				    SIPTAG_MIN_EXPIRES_STR(min), TAG_END());
		nta_incoming_destroy(irq);
		free(req);
		return;
	}
	if (status != 0) {
		registrar_reply(irq, status, NULL);
		free(req);
		return;
	}
	snprintf(req->call_id, sizeof req->call_id, "%s", sip->sip_call_id->i_id);
	req->cseq = sip->sip_cseq->cs_seq;
	if (sip->sip_user_agent)
		snprintf(req->user_agent, sizeof req->user_agent, "%s",
			 sip->sip_user_agent->g_string);
	if (registrar_auth_start(req, registrar_on_register_authed) < 0) {
		registrar_reply(irq, SIP_503_SERVICE_UNAVAILABLE);
		free(req);
	}
}

/* ------------------------------------------------------------ INVITE authentication */

int registrar_is_local(const registrar_t *reg, url_t const *url)
{
	/* A domain that is an IPv6 literal is written without brackets. */
	return url && url->url_host && registrar_same_host(url->url_host, reg->cfg->domain);
}

static void registrar_invite_done(struct registrar_req *req, int status)
{
	struct registrar_challenges ch;

	if (status == 401) {
		registrar_challenges_make(req->reg, 0, &ch);
		req->auth_done(req->arg, 407, &ch);
	} else {
		req->auth_done(req->arg, status, NULL);
	}
	free(req);
}

/* The nonce-count of verified INVITE credentials was claimed (or not). */
static void registrar_on_invite_nc(void *arg, int err, int claimed)
{
	struct registrar_req *req = arg;

	if (err < 0) {
		registrar_invite_done(req, 503);
		return;
	}
	if (!claimed) {
		static struct log_limit replay_limit = { .what = "INVITE replays refused" };
		log_limited(&replay_limit, LOG_WARN,
			    "INVITE from %s: nonce-count of '%s' reused (replay refused)",
			    req->source, req->cred.username);
		registrar_invite_done(req, 401);
		return;
	}
	registrar_invite_done(req, 0);
}

/*
 * Verified INVITE credentials must also be fresh: claim their nonce-count
 * with SET NX, as the REGISTER script does, so that a captured
 * Proxy-Authorization cannot place a second call.
 */
static void registrar_on_invite_authed(struct registrar_req *req, int status)
{
	char replay[DIGEST_REPLAY_KEY_SIZE];

	if (status == 0 && strcmp(req->cred.username, req->from_user) != 0) {
		static struct log_limit from_limit = {
			.what = "INVITEs refused: From is not the authenticated user" };
		log_limited(&from_limit, LOG_WARN,
			    "INVITE from %s: authenticated as '%s' but From user is '%s'",
			    req->source, req->cred.username, req->from_user);
		status = 403;
	}
	if (status != 0) {
		registrar_invite_done(req, status);
		return;
	}
	if (digest_replay_key(&req->cred, replay, sizeof replay) < 0) {
		registrar_invite_done(req, 401);
		return;
	}
	if (store_nonce_claim(req->reg->rds, replay, req->reg->cfg->nonce_ttl,
			      registrar_on_invite_nc, req) < 0)
		registrar_invite_done(req, 503);
}

enum registrar_admission registrar_invite_admission(const registrar_t *reg, sip_t const *sip)
{
	if (registrar_is_local(reg, sip->sip_from->a_url) || sip->sip_proxy_authorization)
		return REGISTRAR_AUTHENTICATE;
	if (reg->cfg->allow_unauthenticated_to_local &&
	    registrar_is_local(reg, sip->sip_request->rq_url))
		return REGISTRAR_TO_LOCAL;
	return REGISTRAR_NOT_ADMITTED;
}

void registrar_check_invite(registrar_t *reg, nta_incoming_t *irq, sip_t const *sip,
			    registrar_auth_f *done, void *arg)
{
	struct registrar_challenges ch;
	struct registrar_req *req = registrar_req_new(reg);
	int status;

	if (req == NULL) {
		done(arg, 503, NULL);
		return;
	}
	req->auth_done = done;
	req->arg = arg;
	snprintf(req->method, sizeof req->method, "INVITE");
	registrar_request_source(irq, req->source, sizeof req->source);
	snprintf(req->from_user, sizeof req->from_user, "%s",
		 sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "");
	/* Stateless first: no credentials (or a bad nonce) is challenged before
	 * Redis is asked anything, the same for every user name. */
	status = registrar_precheck(reg, sip->sip_proxy_authorization, req);
	if (status != 0) {
		registrar_challenges_make(reg, status < 0, &ch);
		free(req);
		done(arg, 407, &ch);
		return;
	}
	if (registrar_auth_start(req, registrar_on_invite_authed) < 0) {
		free(req);
		done(arg, 503, NULL);
	}
}

/* ------------------------------------------------------------ lookup */

struct registrar_lookup_ctx {
	registrar_lookup_f *done;
	void *arg;
};

/* The store's answer as the SIP status the caller acts on. */
static int registrar_lookup_status(enum store_lookup_result result)
{
	switch (result) {
	case STORE_FOUND:
		return 0;
	case STORE_NOT_REGISTERED:
		return 480;
	case STORE_AT_LIMIT:
		return 486;
	default:
		return 404;
	}
}

static void registrar_on_lookup(void *arg, int err, enum store_lookup_result result,
				const struct store_contact *found, unsigned n_uris,
				const struct store_forward *sf)
{
	struct registrar_lookup_ctx *ctx = arg;
	struct registrar_contact contacts[REGISTRAR_MAX_CONTACTS];
	struct registrar_forward fwd;
	unsigned n = 0;
	int status = err < 0 ? 503 : registrar_lookup_status(result);

	if (status == 503 || status == 404) {
		ctx->done(ctx->arg, status, NULL, 0, NULL);
		free(ctx);
		return;
	}
	snprintf(fwd.always, sizeof fwd.always, "%s", sf->always);
	snprintf(fwd.busy, sizeof fwd.busy, "%s", sf->busy);
	snprintf(fwd.noanswer, sizeof fwd.noanswer, "%s", sf->noanswer);
	fwd.noanswer_timeout = sf->noanswer_timeout;
	for (unsigned i = 0; i < n_uris && n < REGISTRAR_MAX_CONTACTS; i++, n++) {
		snprintf(contacts[n].uri, sizeof contacts[n].uri, "%s", found[i].uri);
		snprintf(contacts[n].source, sizeof contacts[n].source, "%s", found[i].source);
		snprintf(contacts[n].host, sizeof contacts[n].host, "%s", found[i].host);
		snprintf(contacts[n].host_address, sizeof contacts[n].host_address, "%s",
			 found[i].host_address);
		contacts[n].host_lost = found[i].host_lost;
		snprintf(contacts[n].transport, sizeof contacts[n].transport, "%s",
			 found[i].transport);
		snprintf(contacts[n].flow, sizeof contacts[n].flow, "%s", found[i].flow);
		contacts[n].flow_worker = found[i].flow_worker;
	}
	ctx->done(ctx->arg, status, n ? contacts : NULL, n, &fwd);
	free(ctx);
}

int registrar_lookup(registrar_t *reg, const char *user, const char *call_key,
		     registrar_lookup_f *done, void *arg)
{
	struct registrar_lookup_ctx *ctx = malloc(sizeof *ctx);
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ctx->done = done;
	ctx->arg = arg;
	ret = store_lookup(reg->rds, user, call_key, registrar_on_lookup, ctx);
	if (ret < 0)
		free(ctx);
	return ret;
}

/* ------------------------------------------------------------ call limits */

struct registrar_begin_ctx {
	registrar_begin_f *done;
	void *arg;
};

static void registrar_on_call_begin(void *arg, int err, int counted)
{
	struct registrar_begin_ctx *ctx = arg;

	if (err < 0)
		ctx->done(ctx->arg, 503);
	else
		ctx->done(ctx->arg, counted ? 0 : 486);
	free(ctx);
}

int registrar_call_begin(registrar_t *reg, const char *user, const char *call_key,
			 registrar_begin_f *done, void *arg)
{
	struct registrar_begin_ctx *ctx = malloc(sizeof *ctx);
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ctx->done = done;
	ctx->arg = arg;
	ret = store_call_begin(reg->rds, user, call_key, registrar_on_call_begin, ctx);
	if (ret < 0)
		free(ctx);
	return ret;
}

void registrar_call_end(registrar_t *reg, const char *user, const char *call_key)
{
	if (store_call_end(reg->rds, user, call_key) < 0)
		log_warn("call %s of '%s' not uncounted (redis down): it expires within a day",
			 call_key, user);
}

/* ------------------------------------------------------------ life cycle */

int registrar_create(const struct config *cfg, rds_t *rds, unsigned worker, registrar_t **out)
{
	registrar_t *reg = calloc(1, sizeof *reg);

	if (reg == NULL)
		return -ENOMEM;
	reg->cfg = cfg;
	reg->rds = rds;
	reg->worker = worker;
	snprintf(reg->secret, sizeof reg->secret, "%s", cfg->auth_secret);
	snprintf(reg->host_address, sizeof reg->host_address,
		 strchr(cfg->advertise[0], ':') ? "[%s]:%d" : "%s:%d", cfg->advertise[0],
		 cfg->sip_port);
	*out = reg;
	return 0;
}

void registrar_reload(registrar_t *reg)
{
	if (reg != NULL)
		snprintf(reg->secret, sizeof reg->secret, "%s", reg->cfg->auth_secret);
}

void registrar_destroy(registrar_t *reg)
{
	free(reg);
}

void registrar_set_keepalive(registrar_t *reg, struct keepalive *ka)
{
	reg->ka = ka;
}

void registrar_set_counters(registrar_t *reg, shm_t *shm)
{
	reg->shm = shm;
}

const char *registrar_host_address(const registrar_t *reg)
{
	return reg->host_address;
}

/* ------------------------------------------------------------ NAT */

/* Split "ip:port" (IPv6 with or without brackets) into ip and port: 0, or -EINVAL. */
static int registrar_addr_split(const char *addr, char *ip, size_t size, unsigned *port)
{
	const char *colon = strrchr(addr, ':');
	const char *start = addr;
	size_t len;
	char *end;

	if (colon == NULL)
		return -EINVAL;
	len = (size_t)(colon - addr);
	if (*start == '[' && len >= 2 && colon[-1] == ']') {
		start++;
		len -= 2;
	}
	if (len == 0 || len >= size)
		return -EINVAL;
	memcpy(ip, start, len);
	ip[len] = '\0';
	*port = (unsigned)strtoul(colon + 1, &end, 10);
	return *end == '\0' && *port > 0 && *port < 65536 ? 0 : -EINVAL;
}

int registrar_addr_url(const char *addr, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	int n;

	if (registrar_addr_split(addr, ip, sizeof ip, &port) < 0)
		return -EINVAL;
	n = snprintf(out, size, strchr(ip, ':') ? "sip:[%s]:%u;transport=udp" :
		     "sip:%s:%u;transport=udp", ip, port);
	return n > 0 && (size_t)n < size ? 0 : -EINVAL;
}

/*
 * A Contact names the address the user agent believes it has; the source
 * is where its REGISTER really came from.  When they differ there is a NAT
 * (or a proxy) in between, and only the source reaches the user agent
 * (RFC 3581; Kamailio's fix_nated_register keeps it as "received").  A
 * Contact that names a host name is compared as text: it never equals an
 * IP source, so such a binding is reached at its source too.
 */
int registrar_behind_nat(const char *contact, const char *source)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	url_t *url = url_make(home, contact);
	char ip[INET6_ADDRSTRLEN];
	unsigned port, cport;
	int nat = 0;

	if (source == NULL || registrar_addr_split(source, ip, sizeof ip, &port) < 0)
		return 0;   /* no source known: the Contact is all there is */
	if (url == NULL || url->url_host == NULL) {
		su_home_deinit(home);
		return 0;
	}
	cport = url->url_port ? (unsigned)strtoul(url->url_port, NULL, 10) : 5060;
	nat = cport != port || registrar_same_host(url->url_host, ip) == 0;
	su_home_deinit(home);
	return nat;
}
