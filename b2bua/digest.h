/*
 * digest — the pure part of SIP digest authentication (RFC 3261 §22, RFC 2617,
 * RFC 7616 / RFC 8760): stored HA1 values, stateless nonces, challenge header
 * values, parsing Authorization / Proxy-Authorization and verifying responses.
 *
 * No I/O, no Redis, no global state: the caller passes the shared nonce secret,
 * the clock and the subscriber's HA1, and does the Redis work itself (HA1
 * lookup, the replay check with SET NX on digest_replay_key()).
 *
 * A registrar or proxy uses it like this:
 *   no credentials      -> digest_nonce_make(), then one 401/407 with one
 *                          challenge per offered algorithm (auth_algorithms,
 *                          most preferred first: RFC 8760 §2.3), same nonce;
 *   credentials arrive  -> digest_parse() / digest_parse_auth(), compare realm
 *                          and uri with the request, refuse an algorithm that
 *                          was not offered, digest_nonce_check()
 *                          (STALE: challenge again with stale=true), fetch the
 *                          HA1 for c.alg, digest_verify(), then SET NX the
 *                          digest_replay_key() with the nonce TTL: an existing
 *                          key is a replay and is refused.
 */
#ifndef B2BUA_DIGEST_H
#define B2BUA_DIGEST_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

/* Sofia-SIP's parsed Authorization header (msg_auth_t, sip_authorization_t). */
struct msg_auth_s;

enum digest_alg {
	DIGEST_MD5 = 0,		/* "MD5", also what a missing algorithm means */
	DIGEST_SHA256,		/* "SHA-256" (RFC 7616, RFC 8760) */
};

enum digest_nonce_state {
	DIGEST_NONCE_VALID = 0,	/* made with this secret, within its lifetime */
	DIGEST_NONCE_STALE,	/* made with this secret, but expired: stale=true */
	DIGEST_NONCE_INVALID,	/* forged, modified, garbled or another secret */
};

/* HA1 as lowercase hex: 64 characters for SHA-256, 32 for MD5, plus NUL. */
#define DIGEST_HA1_SIZE 65
/* A nonce is exactly this many base64url characters (plus NUL to store it). */
#define DIGEST_NONCE_LEN 56
/* Room for one challenge value with a realm of up to DIGEST_REALM_MAX - 1. */
#define DIGEST_CHALLENGE_SIZE 512
/* Room for a replay key: nonce, ':', 8 hex digits, NUL. */
#define DIGEST_REPLAY_KEY_SIZE (DIGEST_NONCE_LEN + 1 + 8 + 1)

/* Field sizes of struct digest_credentials, NUL included. */
#define DIGEST_USER_MAX 128
#define DIGEST_REALM_MAX 128
#define DIGEST_NONCE_MAX 128	/* larger than ours: foreign nonces parse too */
#define DIGEST_URI_MAX 512
#define DIGEST_RESPONSE_MAX 65
#define DIGEST_CNONCE_MAX 128
#define DIGEST_NC_MAX 9
#define DIGEST_QOP_MAX 8

/*
 * One parsed digest-response, values unquoted.  qop is "auth" or "" (the
 * RFC 2069 form without qop); nc and cnonce are "" when qop is "".
 */
struct digest_credentials {
	char username[DIGEST_USER_MAX];
	char realm[DIGEST_REALM_MAX];
	char nonce[DIGEST_NONCE_MAX];
	char uri[DIGEST_URI_MAX];
	char response[DIGEST_RESPONSE_MAX];
	char cnonce[DIGEST_CNONCE_MAX];
	char nc[DIGEST_NC_MAX];
	char qop[DIGEST_QOP_MAX];
	enum digest_alg alg;
};

/*
 * The algorithm's name as it appears on the wire and in auth_algorithms:
 * "MD5" or "SHA-256"; NULL for a value outside enum digest_alg.  Inline so
 * that the configuration (libb2bcore, without nettle) reads the same names.
 */
static inline const char *digest_alg_name(enum digest_alg alg)
{
	switch (alg) {
	case DIGEST_MD5:
		return "MD5";
	case DIGEST_SHA256:
		return "SHA-256";
	}
	return NULL;
}

/*
 * The algorithm called `name` (any case, as RFC 7616 compares them): 0 and
 * *out, or -EINVAL for a NULL or unknown name (e.g. "MD5-sess").
 */
static inline int digest_alg_parse(const char *name, enum digest_alg *out)
{
	const enum digest_alg all[] = { DIGEST_MD5, DIGEST_SHA256 };

	for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++) {
		if (strcasecmp(name, digest_alg_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * HA1 = H(user:realm:password) as lowercase hex into out (64 characters for
 * SHA-256, 32 for MD5), which is what a subscriber record stores per
 * algorithm instead of the password.  Returns 0, or -EINVAL for a NULL
 * argument or an unknown algorithm.
 */
int digest_ha1(enum digest_alg alg, const char *user, const char *realm,
	       const char *password, char out[DIGEST_HA1_SIZE]);

/*
 * Make a fresh nonce for time now_s (seconds, any epoch the checking hosts
 * share, normally the Unix time) into out: DIGEST_NONCE_LEN base64url
 * characters and a NUL.  It carries its own issue time, 16 random bytes and
 * an HMAC-SHA256 under `secret`, so every host with the secret can check it
 * without state.  Returns 0, -EINVAL for a NULL or empty secret or NULL out,
 * -ENOSPC when size < DIGEST_NONCE_LEN + 1, or the negative errno of
 * getrandom(2).
 */
int digest_nonce_make(const char *secret, uint64_t now_s, char *out, size_t size);

/*
 * Check a nonce received in credentials against `secret` at time now_s.
 * VALID: made with this secret and at most ttl_s seconds old (or issued at
 * most ttl_s seconds in the future, for a host whose clock runs ahead).
 * STALE: authentic but outside that window; the caller challenges again
 * with stale=true so the client retries without asking its user.
 * INVALID: anything else, including NULL arguments, an empty secret, a wrong
 * length or a non-canonical encoding.  The MAC is compared in constant time.
 */
enum digest_nonce_state digest_nonce_check(const char *secret, const char *nonce,
					   uint64_t now_s, unsigned ttl_s);

/*
 * Write one challenge value (what follows "WWW-Authenticate: " or
 * "Proxy-Authenticate: ") into out:
 *   Digest realm="<realm>", nonce="<nonce>", qop="auth", algorithm=<alg>
 * followed by ", stale=true" when stale is non-zero.  A 401/407 carries one
 * per offered algorithm, most preferred first (RFC 8760 §2.3), one nonce.
 * Returns 0, -EINVAL for NULL arguments, an unknown algorithm, an empty realm
 * or nonce, or one containing '"', '\\' or control characters (they cannot be
 * quoted safely), -ENOSPC when the value does not fit in size bytes
 * (DIGEST_CHALLENGE_SIZE always suffices for a valid realm and our nonces).
 */
int digest_challenge(enum digest_alg alg, const char *realm, const char *nonce,
		     int stale, char *out, size_t size);

/*
 * Parse an Authorization or Proxy-Authorization header value, e.g.
 *   Digest username="bob", realm="example.com", nonce="...", uri="sip:...",
 *          response="...", algorithm=MD5, qop=auth, nc=00000001, cnonce="..."
 * with Sofia-SIP's parser (quoted or bare values, spaces around '=' and ',',
 * scheme and algorithm names in any case).  Returns 0 and fills *out, or
 *   -EINVAL  not a Digest credential, a required parameter missing
 *            (username, realm, nonce, uri, response; with qop also nc and
 *            cnonce), a parameter given twice, an nc that is not 8 hex digits,
 *            a value with '"', '\\' or control characters, or NULL arguments;
 *   -ENOSPC  a value longer than its field in struct digest_credentials;
 *   -ENOTSUP an algorithm other than MD5 / SHA-256 (e.g. MD5-sess), a qop
 *            other than auth (e.g. auth-int), or userhash=true;
 *   -ENOMEM  Sofia-SIP could not allocate.
 */
int digest_parse(const char *value, struct digest_credentials *out);

/*
 * The same for a header Sofia-SIP has already parsed (sip->sip_authorization
 * or sip->sip_proxy_authorization): walks the au_next list and takes the first
 * Digest credential whose realm equals `realm` (any realm when realm is NULL).
 * Returns what digest_parse() returns for that credential, or -ENOENT when the
 * list holds none for that realm.
 */
int digest_parse_auth(const struct msg_auth_s *au, const char *realm,
		      struct digest_credentials *out);

/*
 * Verify c->response for request method `method` (e.g. "REGISTER") against
 * `ha1`, the subscriber's stored HA1 for c->alg (hex, either case).  With
 * qop=auth: H(HA1:nonce:nc:cnonce:auth:H(method:uri)); without qop (RFC 2069):
 * H(HA1:nonce:H(method:uri)).  MD5 goes through Sofia-SIP's auth_digest
 * helpers, SHA-256 through nettle.  The response is compared in constant time.
 * Returns 0 when it matches, -EACCES when it does not, -EINVAL for NULL
 * arguments, an HA1 of the wrong length or not hex, or a response that is not
 * the algorithm's hex length.  The nonce itself is checked by
 * digest_nonce_check(), not here.
 */
int digest_verify(const struct digest_credentials *c, const char *method,
		  const char *ha1);

/*
 * Parse a nonce-count: exactly 8 hex digits (either case), not zero.
 * Returns 0 and sets *out, or -EINVAL.
 */
int digest_nc_parse(const char *nc, uint32_t *out);

/*
 * The identity of one use of a nonce, for replay detection: "<nonce>:<nc>"
 * with nc rewritten as 8 lowercase hex digits, so "0000000A" and "0000000a"
 * are one key.  Credentials without qop carry no nc and get nc 0: such a
 * nonce can be used once.  The caller stores it with SET NX and an expiry of
 * the nonce TTL; a key that already exists means a replay, refused with a new
 * challenge.  Returns 0, -EINVAL for NULL arguments, an empty nonce or an
 * invalid nc, -ENOSPC when it does not fit (DIGEST_REPLAY_KEY_SIZE suffices
 * for our own nonces; a foreign nonce fails digest_nonce_check() anyway).
 */
int digest_replay_key(const struct digest_credentials *c, char *out, size_t size);

#endif
