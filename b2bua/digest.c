/*
 * digest — see digest.h.
 *
 * Nonces are stateless so that any host sharing the secret (and Redis) can
 * check a nonce another host issued.  A nonce is 42 bytes, base64url-encoded
 * into exactly 56 characters with no padding:
 *
 *   issue time (8 bytes, big-endian seconds) | 16 bytes from getrandom(2)
 *   | the first 18 bytes of HMAC-SHA256(secret, label | time | random)
 *
 * The random part makes nonces unpredictable and unique, the MAC makes them
 * unforgeable (any modified bit fails it) and the time lets them expire.  The
 * MAC is truncated to 144 bits only so that the whole encodes without padding:
 * one canonical spelling per nonce, which keeps replay keys unambiguous.  The
 * label keeps these MACs apart from anything else the same secret may sign.
 *
 * MD5 responses are computed by Sofia-SIP's auth_digest helpers; Sofia-SIP
 * has no SHA-256, so that one is computed with nettle in the same shape.
 * Sofia re-unquotes any value that starts with '"', so values carrying quotes,
 * backslashes or control characters are refused at parse time: both
 * algorithms then hash exactly the strings the struct holds.
 */
#include "b2bua/digest.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include <sofia-sip/su_alloc.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/auth_digest.h>

#define NONCE_TIME_LEN 8
#define NONCE_RAND_LEN 16
#define NONCE_MAC_LEN 18
#define NONCE_BIN_LEN (NONCE_TIME_LEN + NONCE_RAND_LEN + NONCE_MAC_LEN)
#define NONCE_LABEL "b2bua digest nonce v1"

#define MD5_HEX_LEN 32
#define SHA256_HEX_LEN 64

/* A credential with more parameters than this is not one a client sends. */
#define MAX_PARAMS 32
/* Bounded retries of getrandom(2) interrupted by a signal. */
#define GETRANDOM_TRIES 8

_Static_assert(NONCE_BIN_LEN % 3 == 0, "nonce must encode without padding");
_Static_assert(NONCE_BIN_LEN / 3 * 4 == DIGEST_NONCE_LEN, "DIGEST_NONCE_LEN is wrong");
_Static_assert(NONCE_MAC_LEN <= SHA256_DIGEST_SIZE, "MAC longer than HMAC-SHA256");

static const char hexdigits[] = "0123456789abcdef";

static size_t hex_len(enum digest_alg alg)
{
	return alg == DIGEST_SHA256 ? SHA256_HEX_LEN : MD5_HEX_LEN;
}

static void hex_encode(const uint8_t *bin, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdigits[bin[i] >> 4];
		out[2 * i + 1] = hexdigits[bin[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/*
 * Copy exactly len hex digits of `in` into out, lowercased, NUL-terminated.
 * Returns 0, or -EINVAL when `in` is not exactly len hex digits long.
 */
static int hex_lower_copy(const char *in, size_t len, char *out)
{
	if (strnlen(in, len + 1) != len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)in[i]))
			return -EINVAL;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[len] = '\0';
	return 0;
}

/* ---------------------------------------------------------------- HA1 */

static void sha256_hex(const char *const parts[], size_t n, char out[SHA256_HEX_LEN + 1])
{
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];

	sha256_init(&ctx);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sha256_update(&ctx, 1, (const uint8_t *)":");
		sha256_update(&ctx, strlen(parts[i]), (const uint8_t *)parts[i]);
	}
	sha256_digest(&ctx, sizeof digest, digest);
	hex_encode(digest, sizeof digest, out);
}

int digest_ha1(enum digest_alg alg, const char *user, const char *realm,
	       const char *password, char out[DIGEST_HA1_SIZE])
{
	auth_hexmd5_t md5;

	if (user == NULL || realm == NULL || password == NULL || out == NULL)
		return -EINVAL;
	switch (alg) {
	case DIGEST_MD5:
		auth_digest_ha1(md5, user, realm, password);
		memcpy(out, md5, sizeof md5);
		return 0;
	case DIGEST_SHA256: {
		const char *parts[] = { user, realm, password };

		sha256_hex(parts, 3, out);
		return 0;
	}
	}
	return -EINVAL;
}

/* ---------------------------------------------------------------- nonces */

static void nonce_mac(const char *secret, const uint8_t *body, uint8_t mac[NONCE_MAC_LEN])
{
	struct hmac_sha256_ctx ctx;
	uint8_t full[SHA256_DIGEST_SIZE];

	hmac_sha256_set_key(&ctx, strlen(secret), (const uint8_t *)secret);
	hmac_sha256_update(&ctx, sizeof NONCE_LABEL, (const uint8_t *)NONCE_LABEL);
	hmac_sha256_update(&ctx, NONCE_TIME_LEN + NONCE_RAND_LEN, body);
	hmac_sha256_digest(&ctx, sizeof full, full);
	memcpy(mac, full, NONCE_MAC_LEN);
}

static int random_bytes(uint8_t *buf, size_t len)
{
	for (int i = 0; i < GETRANDOM_TRIES; i++) {
		ssize_t n = getrandom(buf, len, 0);

		if (n == (ssize_t)len)
			return 0;
		if (n >= 0)
			return -EIO;	/* cannot happen for <= 256 bytes */
		if (errno != EINTR)
			return -errno;
	}
	return -EINTR;
}

int digest_nonce_make(const char *secret, uint64_t now_s, char *out, size_t size)
{
	uint8_t bin[NONCE_BIN_LEN];
	struct base64_encode_ctx b64;
	size_t n;
	int rc;

	if (secret == NULL || secret[0] == '\0' || out == NULL)
		return -EINVAL;
	if (size < DIGEST_NONCE_LEN + 1)
		return -ENOSPC;
	for (int i = 0; i < NONCE_TIME_LEN; i++)
		bin[i] = (uint8_t)(now_s >> (8 * (NONCE_TIME_LEN - 1 - i)));
	rc = random_bytes(bin + NONCE_TIME_LEN, NONCE_RAND_LEN);
	if (rc < 0)
		return rc;
	nonce_mac(secret, bin, bin + NONCE_TIME_LEN + NONCE_RAND_LEN);

	base64url_encode_init(&b64);
	n = base64_encode_update(&b64, out, sizeof bin, bin);
	n += base64_encode_final(&b64, out + n);
	out[n] = '\0';
	return n == DIGEST_NONCE_LEN ? 0 : -EIO;
}

static int is_base64url(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

/*
 * Decode a nonce of exactly DIGEST_NONCE_LEN base64url characters.  Checking
 * the alphabet first matters: nettle's decoder skips white space, which
 * would give one nonce several spellings.
 */
static int nonce_decode(const char *nonce, uint8_t bin[NONCE_BIN_LEN])
{
	uint8_t buf[BASE64_DECODE_LENGTH(DIGEST_NONCE_LEN)];
	struct base64_decode_ctx b64;
	size_t n = 0;

	if (strnlen(nonce, DIGEST_NONCE_LEN + 1) != DIGEST_NONCE_LEN)
		return -EINVAL;
	for (size_t i = 0; i < DIGEST_NONCE_LEN; i++)
		if (!is_base64url(nonce[i]))
			return -EINVAL;
	base64url_decode_init(&b64);
	if (!base64_decode_update(&b64, &n, buf, DIGEST_NONCE_LEN, nonce) ||
	    !base64_decode_final(&b64) || n != NONCE_BIN_LEN)
		return -EINVAL;
	memcpy(bin, buf, NONCE_BIN_LEN);
	return 0;
}

enum digest_nonce_state digest_nonce_check(const char *secret, const char *nonce,
					   uint64_t now_s, unsigned ttl_s)
{
	uint8_t bin[NONCE_BIN_LEN], mac[NONCE_MAC_LEN];
	uint64_t issued = 0, distance;

	if (secret == NULL || secret[0] == '\0' || nonce == NULL)
		return DIGEST_NONCE_INVALID;
	if (nonce_decode(nonce, bin) < 0)
		return DIGEST_NONCE_INVALID;
	nonce_mac(secret, bin, mac);
	if (!memeql_sec(mac, bin + NONCE_TIME_LEN + NONCE_RAND_LEN, NONCE_MAC_LEN))
		return DIGEST_NONCE_INVALID;

	for (int i = 0; i < NONCE_TIME_LEN; i++)
		issued = issued << 8 | bin[i];
	/* A nonce from a host whose clock runs ahead is fine within one ttl. */
	distance = issued > now_s ? issued - now_s : now_s - issued;
	return distance > ttl_s ? DIGEST_NONCE_STALE : DIGEST_NONCE_VALID;
}

/* ---------------------------------------------------------------- challenge */

/* A value we can put between quotes as is, and that a client hashes as is. */
static int is_plain_value(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int digest_challenge(enum digest_alg alg, const char *realm, const char *nonce,
		     int stale, char *out, size_t size)
{
	const char *name = digest_alg_name(alg);
	int n;

	if (name == NULL || realm == NULL || nonce == NULL || out == NULL || size == 0)
		return -EINVAL;
	if (realm[0] == '\0' || strnlen(realm, DIGEST_REALM_MAX) >= DIGEST_REALM_MAX ||
	    !is_plain_value(realm) || nonce[0] == '\0' || !is_plain_value(nonce))
		return -EINVAL;
	n = snprintf(out, size, "Digest realm=\"%s\", nonce=\"%s\", qop=\"auth\", algorithm=%s%s",
		     realm, nonce, name, stale ? ", stale=true" : "");
	if (n < 0 || (size_t)n >= size) {
		out[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

/* ---------------------------------------------------------------- parsing */

int digest_nc_parse(const char *nc, uint32_t *out)
{
	uint32_t v = 0;

	if (nc == NULL || out == NULL || strnlen(nc, 9) != 8)
		return -EINVAL;
	for (int i = 0; i < 8; i++) {
		const char *d = strchr(hexdigits, tolower((unsigned char)nc[i]));

		if (d == NULL || *d == '\0')
			return -EINVAL;
		v = v << 4 | (uint32_t)(d - hexdigits);
	}
	if (v == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * Copy an unquoted parameter value into a field of struct
 * digest_credentials.  NULL or "" is -EINVAL when the field is required and
 * an empty field otherwise.
 */
static int field_copy(char *dst, size_t size, const char *src, int required)
{
	size_t len;

	if (src == NULL || src[0] == '\0') {
		dst[0] = '\0';
		return required ? -EINVAL : 0;
	}
	if (!is_plain_value(src))
		return -EINVAL;
	len = strnlen(src, size);
	if (len >= size)
		return -ENOSPC;
	memcpy(dst, src, len + 1);
	return 0;
}

/* Each parameter at most once: with two usernames, which one was hashed? */
static int params_check(const char *const *params)
{
	size_t n = 0;

	for (; params[n] != NULL; n++) {
		size_t len = strcspn(params[n], "=");

		if (n >= MAX_PARAMS)
			return -EINVAL;
		for (size_t j = 0; j < n; j++)
			if (strcspn(params[j], "=") == len &&
			    strncasecmp(params[j], params[n], len) == 0)
				return -EINVAL;
		/* RFC 7616 userhash: we never offer it, so username would not match. */
		if (strcasecmp(params[n], "userhash=true") == 0 ||
		    strcasecmp(params[n], "userhash=\"true\"") == 0)
			return -ENOTSUP;
	}
	return n > 0 ? 0 : -EINVAL;
}

static int alg_from_name(const char *name, enum digest_alg *alg)
{
	if (name == NULL || strcasecmp(name, "MD5") == 0)
		*alg = DIGEST_MD5;
	else if (strcasecmp(name, "SHA-256") == 0)
		*alg = DIGEST_SHA256;
	else
		return -ENOTSUP;
	return 0;
}

/* Fill the qop, nc and cnonce fields of c from a parsed response. */
static int qop_copy(const auth_response_t *ar, struct digest_credentials *c)
{
	uint32_t nc;
	int rc;

	if (ar->ar_qop == NULL) {
		c->qop[0] = c->nc[0] = c->cnonce[0] = '\0';
		return 0;
	}
	if (strcasecmp(ar->ar_qop, "auth") != 0)
		return -ENOTSUP;
	strcpy(c->qop, "auth");
	if (ar->ar_nc == NULL || digest_nc_parse(ar->ar_nc, &nc) < 0)
		return -EINVAL;
	rc = field_copy(c->nc, sizeof c->nc, ar->ar_nc, 1);
	if (rc == 0)
		rc = field_copy(c->cnonce, sizeof c->cnonce, ar->ar_cnonce, 1);
	return rc;
}

/* Parse one Digest credential; unquoted copies are allocated from home. */
static int parse_one(su_home_t *home, const msg_auth_t *au, struct digest_credentials *out)
{
	auth_response_t ar[1] = { { .ar_size = sizeof ar[0] } };
	struct digest_credentials c;
	int rc;

	if (au->au_scheme == NULL || strcasecmp(au->au_scheme, "Digest") != 0 ||
	    au->au_params == NULL)
		return -EINVAL;
	rc = params_check(au->au_params);
	if (rc < 0)
		return rc;
	if (auth_digest_response_get(home, ar, au->au_params) < 0)
		return -ENOMEM;

	memset(&c, 0, sizeof c);
	rc = alg_from_name(ar->ar_algorithm, &c.alg);
	if (rc == 0)
		rc = qop_copy(ar, &c);
	if (rc == 0)
		rc = field_copy(c.username, sizeof c.username, ar->ar_username, 1);
	if (rc == 0)
		rc = field_copy(c.realm, sizeof c.realm, ar->ar_realm, 1);
	if (rc == 0)
		rc = field_copy(c.nonce, sizeof c.nonce, ar->ar_nonce, 1);
	if (rc == 0)
		rc = field_copy(c.uri, sizeof c.uri, ar->ar_uri, 1);
	if (rc == 0)
		rc = field_copy(c.response, sizeof c.response, ar->ar_response, 1);
	if (rc == 0)
		*out = c;
	return rc;
}

int digest_parse(const char *value, struct digest_credentials *out)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	sip_authorization_t *au;
	int rc;

	if (value == NULL || out == NULL)
		return -EINVAL;
	au = sip_authorization_make(home, value);
	rc = au != NULL ? parse_one(home, au, out) : -EINVAL;
	su_home_deinit(home);
	return rc;
}

int digest_parse_auth(const struct msg_auth_s *au, const char *realm,
		      struct digest_credentials *out)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	int rc = -ENOENT;

	if (out == NULL)
		return -EINVAL;
	for (; au != NULL; au = au->au_next) {
		const char *r;

		if (au->au_scheme == NULL || strcasecmp(au->au_scheme, "Digest") != 0)
			continue;
		if (realm != NULL) {
			/* Raw, maybe quoted value: compare without unquoting. */
			r = au->au_params ? msg_params_find(au->au_params, "realm") : NULL;
			if (r == NULL || auth_strcmp(r, realm) != 0)
				continue;
		}
		rc = parse_one(home, au, out);
		break;
	}
	su_home_deinit(home);
	return rc;
}

/* ---------------------------------------------------------------- verify */

static void md5_response(const struct digest_credentials *c, const char *method,
			 const char *ha1, char out[MD5_HEX_LEN + 1])
{
	auth_response_t ar[1] = { { .ar_size = sizeof ar[0] } };

	ar->ar_username = c->username;
	ar->ar_realm = c->realm;
	ar->ar_nonce = c->nonce;
	ar->ar_uri = c->uri;
	ar->ar_cnonce = c->cnonce;
	ar->ar_nc = c->nc;
	ar->ar_md5 = 1;
	ar->ar_auth = c->qop[0] != '\0';
	auth_digest_response(ar, out, ha1, method, NULL, 0);
}

static void sha256_response(const struct digest_credentials *c, const char *method,
			    const char *ha1, char out[SHA256_HEX_LEN + 1])
{
	char ha2[SHA256_HEX_LEN + 1];
	const char *a2[] = { method, c->uri };
	const char *with_qop[] = { ha1, c->nonce, c->nc, c->cnonce, c->qop, ha2 };
	const char *without_qop[] = { ha1, c->nonce, ha2 };

	sha256_hex(a2, 2, ha2);
	if (c->qop[0] != '\0')
		sha256_hex(with_qop, 6, out);
	else
		sha256_hex(without_qop, 3, out);
}

int digest_verify(const struct digest_credentials *c, const char *method,
		  const char *ha1)
{
	char ha1_lc[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
	char want[SHA256_HEX_LEN + 1];
	size_t len;

	if (c == NULL || method == NULL || method[0] == '\0' || ha1 == NULL ||
	    digest_alg_name(c->alg) == NULL)
		return -EINVAL;
	len = hex_len(c->alg);
	if (hex_lower_copy(ha1, len, ha1_lc) < 0 || hex_lower_copy(c->response, len, got) < 0)
		return -EINVAL;
	if (c->alg == DIGEST_MD5)
		md5_response(c, method, ha1_lc, want);
	else
		sha256_response(c, method, ha1_lc, want);
	return memeql_sec(got, want, len) ? 0 : -EACCES;
}

/* ---------------------------------------------------------------- replay */

int digest_replay_key(const struct digest_credentials *c, char *out, size_t size)
{
	uint32_t nc = 0;
	int n;

	if (c == NULL || out == NULL || size == 0 || c->nonce[0] == '\0')
		return -EINVAL;
	if (c->qop[0] != '\0' && digest_nc_parse(c->nc, &nc) < 0)
		return -EINVAL;
	n = snprintf(out, size, "%s:%08x", c->nonce, (unsigned)nc);
	if (n < 0 || (size_t)n >= size) {
		out[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}
