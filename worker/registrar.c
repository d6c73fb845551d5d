/*
 * registrar — REGISTER, digest authentication and the location service.
 * See registrar.h; the Redis keys are documented in docs/redis-schema.md.
 *
 * Design note.  Nothing here blocks: every Redis access is one round trip
 * through the worker's asynchronous client (rds), and the SIP transaction
 * waits for it.  Each round trip is one Lua script, so that what must be
 * atomic across workers and hosts is atomic in Redis:
 *
 *   AUTH      the subscriber's HA1s and enabled flag, and the failure count
 *             of the source address (throttling) — in one round trip;
 *   REGISTER  the nonce-count replay check (SET NX) and the whole update of
 *             the AOR's bindings (Call-ID/CSeq ordering, expiry, removal),
 *             returning the bindings left, with their remaining seconds;
 *   LOOKUP    the unexpired contacts of a user, or "no such user".
 *
 * Bindings expire by themselves: each stores its absolute expiry and every
 * reader drops expired ones, and the key's own TTL follows its longest
 * binding.  No worker caches a binding, so a de-registration or an expiry is
 * seen by every worker and every host at the next lookup.
 *
 * An unknown user and a wrong password get the same answer (a new
 * challenge), and both count as a failure of the source address; past
 * auth_fail_limit failures in auth_fail_window seconds the source gets 403.
 */
#include "worker/registrar.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/log.h"
#include "shm/shm.h"
#include "b2bua/digest.h"

#define REGISTRAR_MAX_REGISTER_CONTACTS 16
/* A call counted for max_calls longer than this is a crashed worker's left-over. */
#define REGISTRAR_STALE_CALL_MS (24ull * 3600 * 1000)

/* KEYS[1] user hash, KEYS[2] failure counter.  ARGV: ha1 field.
 * Returns { failures, enabled, ha1 } (ha1 false when no such user). */
static const char registrar_lua_auth[] =
	"local fails = tonumber(redis.call('GET', KEYS[2]) or '0') "
	"local v = redis.call('HMGET', KEYS[1], ARGV[1], 'enabled') "
	"return { fails, v[2] or '0', v[1] or false }";

/* KEYS[1] location hash, KEYS[2] nonce-count replay key.
 * ARGV: now_ms nonce_ttl call_id cseq source transport ua host worker star
 *       then pairs (contact, expires_s) — expires 0 removes.
 * Returns { "ok", contact, remaining_s, ... } or { "replay" } / { "cseq" }. */
static const char registrar_lua_register[] =
	"if KEYS[2] ~= '' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then "
	"  return { 'replay' } end "
	"local now = tonumber(ARGV[1]) local cid = ARGV[3] local cseq = tonumber(ARGV[4]) "
	"local cur = {} "
	"local all = redis.call('HGETALL', KEYS[1]) "
	"for i = 1, #all, 2 do "
	"  local b = cjson.decode(all[i + 1]) "
	"  if b.expires > now then cur[all[i]] = b else redis.call('HDEL', KEYS[1], all[i]) end "
	"end "
	"local function ordered(b) return b.call_id ~= cid or cseq > b.cseq end "
	"if ARGV[10] == '1' then "
	"  for c, b in pairs(cur) do if not ordered(b) then return { 'cseq' } end end "
	"  redis.call('DEL', KEYS[1]) cur = {} "
	"else "
	"  for i = 11, #ARGV, 2 do "
	"    local c = ARGV[i] local e = tonumber(ARGV[i + 1]) "
	"    if cur[c] and not ordered(cur[c]) then return { 'cseq' } end "
	"    if e == 0 then "
	"      if cur[c] then redis.call('HDEL', KEYS[1], c) cur[c] = nil end "
	"    else "
	"      local b = { expires = now + e * 1000, cseq = cseq, call_id = cid, "
	"                  source = ARGV[5], transport = ARGV[6], user_agent = ARGV[7], "
	"                  host = ARGV[8], worker = tonumber(ARGV[9]), registered = now } "
	"      redis.call('HSET', KEYS[1], c, cjson.encode(b)) cur[c] = b "
	"    end "
	"  end "
	"end "
	"local out = { 'ok' } local last = 0 "
	"for c, b in pairs(cur) do "
	"  out[#out + 1] = c out[#out + 1] = math.floor((b.expires - now) / 1000) "
	"  if b.expires > last then last = b.expires end "
	"end "
	"if last > 0 then redis.call('PEXPIREAT', KEYS[1], last) end "
	"return out";

/* KEYS[1] user hash, KEYS[2] location hash, KEYS[3] active-calls set.
 * ARGV: now_ms, call key ("" = do not count), stale_before_ms.
 * Returns { 404 } (no such user / disabled), or { 0 | 480 | 486, fwd_always,
 * fwd_busy, fwd_noanswer, fwd_noanswer_timeout, contact, ... }: 480 when
 * not registered, 486 at max_calls, contacts newest registration first; a
 * 0 answer with a call key counted the call in KEYS[3]. */
static const char registrar_lua_lookup[] =
	"local u = redis.call('HMGET', KEYS[1], 'enabled', 'fwd_always', 'fwd_busy', "
	"  'fwd_noanswer', 'fwd_noanswer_timeout', 'max_calls') "
	"if u[1] ~= '1' then return { 404 } end "
	"local now = tonumber(ARGV[1]) local list = {} "
	"local all = redis.call('HGETALL', KEYS[2]) "
	"for i = 1, #all, 2 do "
	"  local b = cjson.decode(all[i + 1]) "
	"  if b.expires > now then list[#list + 1] = { all[i], b.registered or 0 } end "
	"end "
	"table.sort(list, function(x, y) return x[2] > y[2] end) "
	"local status = #list == 0 and 480 or 0 "
	"if status == 0 and ARGV[2] ~= '' and (u[2] or '') == '' then "
	"  local max = tonumber(u[6] or '0') or 0 "
	"  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3]) "
	"  if max > 0 and redis.call('ZCARD', KEYS[3]) >= max then status = 486 else "
	"    redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2]) "
	"    redis.call('PEXPIRE', KEYS[3], 86400000) end "
	"end "
	"local out = { status, u[2] or '', u[3] or '', u[4] or '', u[5] or '0' } "
	"if status == 0 then for _, e in ipairs(list) do out[#out + 1] = e[1] end end "
	"return out";

struct registrar {
	const struct config *cfg;
	rds_t *rds;
	unsigned worker;
	char secret[sizeof ((struct config *)0)->auth_secret];
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

/* "now" and "calls older than this are left-overs", in ms, for the scripts
 * that count calls against max_calls. */
static void registrar_call_times(char now[24], char stale[24])
{
	uint64_t t = shm_now_ms();

	snprintf(now, 24, "%llu", (unsigned long long)t);
	snprintf(stale, 24, "%llu", (unsigned long long)(t - REGISTRAR_STALE_CALL_MS));
}

static void registrar_key(const registrar_t *reg, char *out, size_t size, const char *kind,
			  const char *id)
{
	snprintf(out, size, "%s%s:%s", reg->cfg->redis_prefix, kind, id);
}

/* "ip:port" of the peer that sent the request. */
static void registrar_source(nta_incoming_t *irq, char *out, size_t size, su_sockaddr_t *sa_out)
{
	msg_t *msg = nta_incoming_getrequest(irq);
	su_sockaddr_t const *sa = msg ? msg_addr(msg) : NULL;
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa && sa->su_family == AF_INET) {
		inet_ntop(AF_INET, &sa->su_sin.sin_addr, ip, sizeof ip);
		port = ntohs(sa->su_sin.sin_port);
	} else if (sa && sa->su_family == AF_INET6) {
		inet_ntop(AF_INET6, &sa->su_sin6.sin6_addr, ip, sizeof ip);
		port = ntohs(sa->su_sin6.sin6_port);
	}
	if (sa_out) {
		memset(sa_out, 0, sizeof *sa_out);
		if (sa)
			*sa_out = *sa;
	}
	snprintf(out, size, "%s:%d", ip, port);
	msg_destroy(msg);
}

static struct registrar_req *registrar_req_new(registrar_t *reg)
{
	struct registrar_req *req = calloc(1, sizeof *req);

	if (req)
		req->reg = reg;
	return req;
}

/* Both challenges, SHA-256 first (RFC 8760), with one fresh nonce; sha is ""
 * when auth_sha256 is off. */
static void registrar_challenges(registrar_t *reg, int stale, char sha[DIGEST_CHALLENGE_SIZE],
				 char md5[DIGEST_CHALLENGE_SIZE])
{
	char nonce[DIGEST_NONCE_LEN + 1];

	digest_nonce_make(reg->secret, (uint64_t)time(NULL), nonce, sizeof nonce);
	sha[0] = '\0';
	if (reg->cfg->auth_sha256)
		digest_challenge(DIGEST_SHA256, reg->cfg->realm, nonce, stale, sha,
				 DIGEST_CHALLENGE_SIZE);
	digest_challenge(DIGEST_MD5, reg->cfg->realm, nonce, stale, md5, DIGEST_CHALLENGE_SIZE);
}

static void registrar_reply_401(registrar_t *reg, nta_incoming_t *irq, int stale)
{
	char sha[DIGEST_CHALLENGE_SIZE], md5[DIGEST_CHALLENGE_SIZE];

	registrar_challenges(reg, stale, sha, md5);
	nta_incoming_treply(irq, SIP_401_UNAUTHORIZED,
			    TAG_IF(sha[0], SIPTAG_WWW_AUTHENTICATE_STR(sha)),
			    SIPTAG_WWW_AUTHENTICATE_STR(md5),
			    TAG_END());
	nta_incoming_destroy(irq);
}

static void registrar_reply(nta_incoming_t *irq, int status, const char *phrase)
{
	nta_incoming_treply(irq, status, phrase, TAG_END());
	nta_incoming_destroy(irq);
}

/* Count one failed attempt of this source (fire and forget). */
static void registrar_count_failure(registrar_t *reg, const char *source)
{
	char key[256], ip[64];
	const char *colon;

	snprintf(ip, sizeof ip, "%s", source);
	colon = strrchr(ip, ':');
	if (colon)
		ip[colon - ip] = '\0';
	registrar_key(reg, key, sizeof key, "authfail", ip);
	rds_command(reg->rds, NULL, NULL, "EVAL %s 1 %s %d",
		    "local n = redis.call('INCR', KEYS[1]) "
		    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n",
		    key, reg->cfg->auth_fail_window);
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

static void registrar_on_auth_reply(rds_t *rds, redisReply *r, void *arg)
{
	struct registrar_auth_ctx *ctx = arg;
	struct registrar_req *req = ctx->req;
	registrar_t *reg = req->reg;
	registrar_authed_f *next = ctx->next;
	/* A well-formed HA1 that matches nothing: an unknown user costs the
	 * same verification as a known one. */
	const char *ha1 = "00000000000000000000000000000000"
			  "00000000000000000000000000000000";
	long long fails;
	int known, enabled, ok;

	free(ctx);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		next(req, 503);
		return;
	}
	fails = r->element[0]->integer;
	enabled = r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, "1") == 0;
	known = r->element[2]->type == REDIS_REPLY_STRING;
	if (fails >= reg->cfg->auth_fail_limit) {
		log_warn("source %s throttled: %lld failed authentications", req->source, fails);
		next(req, 403);
		return;
	}
	if (known)
		ha1 = r->element[2]->str;
	ok = digest_verify(&req->cred, req->method, ha1) == 0 && known;
	if (!ok) {
		registrar_count_failure(reg, req->source);
		log_info("authentication of '%s' from %s failed", req->cred.username, req->source);
		next(req, 401);
		return;
	}
	next(req, enabled ? 0 : 403);
}

static int registrar_auth_start(struct registrar_req *req, registrar_authed_f *next)
{
	registrar_t *reg = req->reg;
	struct registrar_auth_ctx *ctx = malloc(sizeof *ctx);
	char ukey[256], fkey[256], ip[64];
	char *colon;
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ctx->req = req;
	ctx->next = next;
	snprintf(ip, sizeof ip, "%s", req->source);
	colon = strrchr(ip, ':');
	if (colon)
		*colon = '\0';
	registrar_key(reg, ukey, sizeof ukey, "user", req->cred.username);
	registrar_key(reg, fkey, sizeof fkey, "authfail", ip);
	ret = rds_command(reg->rds, registrar_on_auth_reply, ctx, "EVAL %s 2 %s %s %s",
			  registrar_lua_auth, ukey, fkey,
			  req->cred.alg == DIGEST_SHA256 ? "ha1_sha256" : "ha1_md5");
	if (ret < 0)
		free(ctx);
	return ret;
}

/* Parse and pre-check credentials of `au` (stateless: realm, nonce).
 * Returns 0 when Redis must be asked, or the status to challenge with:
 * 401 (none / invalid nonce) or -401 (stale nonce: stale=true). */
static int registrar_precheck(registrar_t *reg, const msg_auth_t *au, struct registrar_req *req)
{
	if (au == NULL || digest_parse_auth((const struct msg_auth_s *)au, reg->cfg->realm,
					    &req->cred) < 0)
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

static void registrar_on_register_reply(rds_t *rds, redisReply *r, void *arg)
{
	struct registrar_req *req = arg;
	char contacts[REGISTRAR_MAX_REGISTER_CONTACTS * (REGISTRAR_URI_MAX + 32)];
	size_t len = 0;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		log_warn("REGISTER of '%s': location service unavailable", req->cred.username);
		registrar_reply(req->irq, SIP_503_SERVICE_UNAVAILABLE);
		free(req);
		return;
	}
	if (strcmp(r->element[0]->str, "replay") == 0) {
		log_warn("REGISTER of '%s' from %s: nonce-count reused (replay refused)",
			 req->cred.username, req->source);
		registrar_reply_401(req->reg, req->irq, 0);
		free(req);
		return;
	}
	if (strcmp(r->element[0]->str, "cseq") == 0) {
		/* No header names in the phrase: naive parsers look for "CSeq". */
		registrar_reply(req->irq, 400, "Out of order request");
		free(req);
		return;
	}
	for (size_t i = 1; i + 1 < r->elements && len < sizeof contacts - 1; i += 2) {
		int n = snprintf(contacts + len, sizeof contacts - len, "%s<%s>;expires=%lld",
				 len ? ", " : "", r->element[i]->str, r->element[i + 1]->integer);
		if (n < 0 || (size_t)n >= sizeof contacts - len)
			break;
		len += (size_t)n;
	}
	log_info("REGISTER '%s' from %s: %zu bindings", req->cred.username, req->source,
		 (r->elements - 1) / 2);
	nta_incoming_treply(req->irq, SIP_200_OK,
			    TAG_IF(len > 0, SIPTAG_CONTACT_STR(contacts)),
			    TAG_END());
	nta_incoming_destroy(req->irq);
	free(req);
}

static void registrar_register_update(struct registrar_req *req)
{
	registrar_t *reg = req->reg;
	const char *argv[16 + 2 * REGISTRAR_MAX_REGISTER_CONTACTS];
	char lkey[256], nkey[256], now[24], ttl[16], cseq[16], worker[16], exp[REGISTRAR_MAX_REGISTER_CONTACTS][16];
	char replay[DIGEST_REPLAY_KEY_SIZE];
	int argc = 0;

	registrar_key(reg, lkey, sizeof lkey, "loc", req->cred.username);
	nkey[0] = '\0';
	if (digest_replay_key(&req->cred, replay, sizeof replay) == 0)
		registrar_key(reg, nkey, sizeof nkey, "nc", replay);
	snprintf(now, sizeof now, "%llu", (unsigned long long)shm_now_ms());
	snprintf(ttl, sizeof ttl, "%d", reg->cfg->nonce_ttl);
	snprintf(cseq, sizeof cseq, "%u", req->cseq);
	snprintf(worker, sizeof worker, "%u", reg->worker);

	argv[argc++] = "EVAL";
	argv[argc++] = registrar_lua_register;
	argv[argc++] = "2";
	argv[argc++] = lkey;
	argv[argc++] = nkey;
	argv[argc++] = now;
	argv[argc++] = ttl;
	argv[argc++] = req->call_id;
	argv[argc++] = cseq;
	argv[argc++] = req->source;
	argv[argc++] = "udp";
	argv[argc++] = req->user_agent;
	argv[argc++] = reg->cfg->node_id;
	argv[argc++] = worker;
	argv[argc++] = req->star ? "1" : "0";
	for (unsigned i = 0; i < req->n_contacts; i++) {
		snprintf(exp[i], sizeof exp[i], "%d", req->expires[i]);
		argv[argc++] = req->contacts[i];
		argv[argc++] = exp[i];
	}
	if (rds_commandargv(reg->rds, registrar_on_register_reply, req, argc, argv, NULL) < 0) {
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
	registrar_source(irq, req->source, sizeof req->source, NULL);

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
	return url && url->url_host && strcasecmp(url->url_host, reg->cfg->domain) == 0;
}

static void registrar_invite_done(struct registrar_req *req, int status)
{
	char sha[DIGEST_CHALLENGE_SIZE], md5[DIGEST_CHALLENGE_SIZE];

	if (status == 401) {
		registrar_challenges(req->reg, 0, sha, md5);
		req->auth_done(req->arg, 407, sha, md5);
	} else {
		req->auth_done(req->arg, status, NULL, NULL);
	}
	free(req);
}

/* The nonce-count of verified INVITE credentials was claimed (or not). */
static void registrar_on_invite_nc(rds_t *rds, redisReply *r, void *arg)
{
	struct registrar_req *req = arg;

	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		registrar_invite_done(req, 503);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {
		log_warn("INVITE from %s: nonce-count of '%s' reused (replay refused)", req->source,
			 req->cred.username);
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
	char replay[DIGEST_REPLAY_KEY_SIZE], key[256];

	if (status == 0 && strcmp(req->cred.username, req->from_user) != 0) {
		log_warn("INVITE from %s: authenticated as '%s' but From user is '%s'",
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
	registrar_key(req->reg, key, sizeof key, "nc", replay);
	if (rds_command(req->reg->rds, registrar_on_invite_nc, req, "SET %s 1 NX EX %d", key,
			req->reg->cfg->nonce_ttl) < 0)
		registrar_invite_done(req, 503);
}

int registrar_check_invite(registrar_t *reg, nta_incoming_t *irq, sip_t const *sip,
			   registrar_auth_f *done, void *arg)
{
	char sha[DIGEST_CHALLENGE_SIZE], md5[DIGEST_CHALLENGE_SIZE];
	struct registrar_req *req;
	su_sockaddr_t sa;
	char source[64];
	int status;

	if (!registrar_is_local(reg, sip->sip_from->a_url))
		return 1;   /* not one of our subscribers: a peer or a trunk */
	registrar_source(irq, source, sizeof source, &sa);
	if (config_is_trusted(reg->cfg, &sa.su_sa))
		return 1;

	req = registrar_req_new(reg);
	if (req == NULL) {
		done(arg, 503, NULL, NULL);
		return 0;
	}
	req->auth_done = done;
	req->arg = arg;
	snprintf(req->method, sizeof req->method, "INVITE");
	snprintf(req->source, sizeof req->source, "%s", source);
	snprintf(req->from_user, sizeof req->from_user, "%s",
		 sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "");
	status = registrar_precheck(reg, sip->sip_proxy_authorization, req);
	if (status != 0) {
		registrar_challenges(reg, status < 0, sha, md5);
		free(req);
		done(arg, 407, sha, md5);
		return 0;
	}
	if (registrar_auth_start(req, registrar_on_invite_authed) < 0) {
		free(req);
		done(arg, 503, NULL, NULL);
	}
	return 0;
}

/* ------------------------------------------------------------ lookup */

struct registrar_lookup_ctx {
	registrar_lookup_f *done;
	void *arg;
};

static void registrar_copy_reply_str(char *dst, size_t size, const redisReply *r)
{
	snprintf(dst, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
}

static void registrar_on_lookup_reply(rds_t *rds, redisReply *r, void *arg)
{
	struct registrar_lookup_ctx *ctx = arg;
	struct registrar_contact contacts[REGISTRAR_MAX_CONTACTS];
	struct registrar_forward fwd;
	unsigned n = 0;
	int status;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		ctx->done(ctx->arg, 503, NULL, 0, NULL);
		free(ctx);
		return;
	}
	status = (int)r->element[0]->integer;
	if (status == 404 || r->elements < 5) {
		ctx->done(ctx->arg, 404, NULL, 0, NULL);
		free(ctx);
		return;
	}
	registrar_copy_reply_str(fwd.always, sizeof fwd.always, r->element[1]);
	registrar_copy_reply_str(fwd.busy, sizeof fwd.busy, r->element[2]);
	registrar_copy_reply_str(fwd.noanswer, sizeof fwd.noanswer, r->element[3]);
	fwd.noanswer_timeout = r->element[4]->type == REDIS_REPLY_STRING ?
			       atoi(r->element[4]->str) : 0;
	for (size_t i = 5; i < r->elements && n < REGISTRAR_MAX_CONTACTS; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			snprintf(contacts[n++].uri, REGISTRAR_URI_MAX, "%s", r->element[i]->str);
	if (status == 0 && n == 0)
		status = 480;
	ctx->done(ctx->arg, status, n ? contacts : NULL, n, &fwd);
	free(ctx);
}

int registrar_lookup(registrar_t *reg, const char *user, const char *call_key,
		     registrar_lookup_f *done, void *arg)
{
	struct registrar_lookup_ctx *ctx = malloc(sizeof *ctx);
	char ukey[256], lkey[256], akey[256], now[24], stale[24];
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ctx->done = done;
	ctx->arg = arg;
	registrar_key(reg, ukey, sizeof ukey, "user", user);
	registrar_key(reg, lkey, sizeof lkey, "loc", user);
	registrar_key(reg, akey, sizeof akey, "active", user);
	registrar_call_times(now, stale);
	ret = rds_command(reg->rds, registrar_on_lookup_reply, ctx, "EVAL %s 3 %s %s %s %s %s %s",
			  registrar_lua_lookup, ukey, lkey, akey, now, call_key ? call_key : "",
			  stale);
	if (ret < 0)
		free(ctx);
	return ret;
}

/* ------------------------------------------------------------ call limits */

/* KEYS[1] user hash, KEYS[2] active-calls set.  ARGV: call key, now_ms,
 * stale_before_ms.  Returns 1 (counted) or 0 (at max_calls). */
static const char registrar_lua_begin[] =
	"local max = tonumber(redis.call('HGET', KEYS[1], 'max_calls') or '0') or 0 "
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3]) "
	"if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return 0 end "
	"redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[2], 86400000) "
	"return 1";

struct registrar_begin_ctx {
	registrar_begin_f *done;
	void *arg;
};

static void registrar_on_begin_reply(rds_t *rds, redisReply *r, void *arg)
{
	struct registrar_begin_ctx *ctx = arg;

	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
		ctx->done(ctx->arg, 503);
	else
		ctx->done(ctx->arg, r->integer == 1 ? 0 : 486);
	free(ctx);
}

int registrar_call_begin(registrar_t *reg, const char *user, const char *call_key,
			 registrar_begin_f *done, void *arg)
{
	struct registrar_begin_ctx *ctx = malloc(sizeof *ctx);
	char ukey[256], akey[256], now[24], stale[24];
	int ret;

	if (ctx == NULL)
		return -ENOMEM;
	ctx->done = done;
	ctx->arg = arg;
	registrar_key(reg, ukey, sizeof ukey, "user", user);
	registrar_key(reg, akey, sizeof akey, "active", user);
	registrar_call_times(now, stale);
	ret = rds_command(reg->rds, registrar_on_begin_reply, ctx, "EVAL %s 2 %s %s %s %s %s",
			  registrar_lua_begin, ukey, akey, call_key, now, stale);
	if (ret < 0)
		free(ctx);
	return ret;
}

void registrar_call_end(registrar_t *reg, const char *user, const char *call_key)
{
	char akey[256];

	registrar_key(reg, akey, sizeof akey, "active", user);
	if (rds_command(reg->rds, NULL, NULL, "ZREM %s %s", akey, call_key) < 0)
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
	*out = reg;
	return 0;
}

void registrar_destroy(registrar_t *reg)
{
	free(reg);
}
