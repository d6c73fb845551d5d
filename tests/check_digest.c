/*
 * check_digest — unit tests for b2bua/digest.c.
 *
 * The published vectors (RFC 2617 §3.5, RFC 7616 §3.9.1 for MD5 and
 * SHA-256) pin HA1 and response computation.  For cases the RFCs do not
 * cover (no qop, fresh nonces) the expected response is recomputed here
 * with nettle directly, independently of the Sofia-SIP path digest.c uses
 * for MD5.  Nonces are attacked the way a client could: every character
 * changed, and each field (time, random, MAC) changed and re-encoded so the
 * encoding itself stays valid and only the MAC can catch it.
 */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>

#include <sofia-sip/su_alloc.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#include "b2bua/digest.h"

#define SECRET "correct horse battery staple, shared by all hosts"
#define NOW 1700000000ull
#define TTL 300u

/* RFC 2617 §3.5 */
#define R2617_HA1 "939e7578ed9e3c518a452acee763bce9"
#define R2617_VALUE \
	"Digest username=\"Mufasa\", realm=\"testrealm@host.com\", " \
	"nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", " \
	"qop=auth, nc=00000001, cnonce=\"0a4f113b\", " \
	"response=\"6629fae49393a05397450978507c4ef1\", " \
	"opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""

/* RFC 7616 §3.9.1 */
#define R7616_HA1_SHA256 "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
#define R7616_HA1_MD5 "3d78807defe7de2157e2b0b6573a855f"
#define R7616_VALUE(alg, response) \
	"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", " \
	"uri=\"/dir/index.html\", algorithm=" alg ", " \
	"nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, " \
	"cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, " \
	"response=\"" response "\", " \
	"opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
#define R7616_SHA256 "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
#define R7616_MD5 "8ca523f5e9506fed4657c9700eebdbec"

/* ---------------------------------------------------------------- helpers */

/* Reference hash of the ':'-joined NULL-terminated arguments, lowercase hex. */
static void ref_hash(enum digest_alg alg, char *out, ...)
{
	struct md5_ctx md5;
	struct sha256_ctx sha;
	uint8_t d[SHA256_DIGEST_SIZE];
	size_t dlen = alg == DIGEST_SHA256 ? SHA256_DIGEST_SIZE : MD5_DIGEST_SIZE;
	const char *part;
	int first = 1;
	va_list ap;

	md5_init(&md5);
	sha256_init(&sha);
	va_start(ap, out);
	while ((part = va_arg(ap, const char *)) != NULL) {
		const char *s[2] = { ":", part };

		for (int i = first; i < 2; i++) {
			md5_update(&md5, strlen(s[i]), (const uint8_t *)s[i]);
			sha256_update(&sha, strlen(s[i]), (const uint8_t *)s[i]);
		}
		first = 0;
	}
	va_end(ap);
	if (alg == DIGEST_SHA256)
		sha256_digest(&sha, dlen, d);
	else
		md5_digest(&md5, dlen, d);
	for (size_t i = 0; i < dlen; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* What a client computes for qop=auth (qop NULL: the RFC 2069 form). */
static void client_response(enum digest_alg alg, const char *ha1, const char *method,
			    const char *uri, const char *nonce, const char *nc,
			    const char *cnonce, const char *qop, char out[65])
{
	char ha2[65];

	ref_hash(alg, ha2, method, uri, NULL);
	if (qop != NULL)
		ref_hash(alg, out, ha1, nonce, nc, cnonce, qop, ha2, NULL);
	else
		ref_hash(alg, out, ha1, nonce, ha2, NULL);
}

static void decode_nonce(const char *nonce, uint8_t bin[42])
{
	struct base64_decode_ctx ctx;
	size_t n = 0;

	ck_assert_uint_eq(strlen(nonce), DIGEST_NONCE_LEN);
	base64url_decode_init(&ctx);
	ck_assert(base64_decode_update(&ctx, &n, bin, DIGEST_NONCE_LEN, nonce));
	ck_assert(base64_decode_final(&ctx));
	ck_assert_uint_eq(n, 42);
}

static void encode_nonce(const uint8_t bin[42], char out[DIGEST_NONCE_LEN + 1])
{
	struct base64_encode_ctx ctx;
	size_t n;

	base64url_encode_init(&ctx);
	n = base64_encode_update(&ctx, out, 42, bin);
	n += base64_encode_final(&ctx, out + n);
	ck_assert_uint_eq(n, DIGEST_NONCE_LEN);
	out[n] = '\0';
}

static void make_nonce(uint64_t now, char out[DIGEST_NONCE_LEN + 1])
{
	ck_assert_int_eq(digest_nonce_make(SECRET, now, out, DIGEST_NONCE_LEN + 1), 0);
}

static int parse(const char *value, struct digest_credentials *c)
{
	memset(c, 0x5a, sizeof *c);	/* no field may be left over from before */
	return digest_parse(value, c);
}

/* ---------------------------------------------------------------- HA1 */

START_TEST(test_ha1_vectors)
{
	char ha1[DIGEST_HA1_SIZE];

	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "Mufasa", "testrealm@host.com",
				    "Circle Of Life", ha1), 0);
	ck_assert_str_eq(ha1, R2617_HA1);
	ck_assert_int_eq(digest_ha1(DIGEST_SHA256, "Mufasa", "http-auth@example.org",
				    "Circle of Life", ha1), 0);
	ck_assert_str_eq(ha1, R7616_HA1_SHA256);
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "Mufasa", "http-auth@example.org",
				    "Circle of Life", ha1), 0);
	ck_assert_str_eq(ha1, R7616_HA1_MD5);
	/* The password matters, case included. */
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "Mufasa", "testrealm@host.com",
				    "Circle of Life", ha1), 0);
	ck_assert_str_ne(ha1, R2617_HA1);

	ck_assert_int_eq(digest_ha1(DIGEST_MD5, NULL, "r", "p", ha1), -EINVAL);
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "u", NULL, "p", ha1), -EINVAL);
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "u", "r", NULL, ha1), -EINVAL);
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "u", "r", "p", NULL), -EINVAL);
	ck_assert_int_eq(digest_ha1((enum digest_alg)7, "u", "r", "p", ha1), -EINVAL);
}
END_TEST

START_TEST(test_alg_name)
{
	ck_assert_str_eq(digest_alg_name(DIGEST_MD5), "MD5");
	ck_assert_str_eq(digest_alg_name(DIGEST_SHA256), "SHA-256");
	ck_assert_ptr_null(digest_alg_name((enum digest_alg)7));
}
END_TEST

/* ---------------------------------------------------------------- verify */

START_TEST(test_rfc2617_example)
{
	struct digest_credentials c;
	char ha1[DIGEST_HA1_SIZE];

	ck_assert_int_eq(parse(R2617_VALUE, &c), 0);
	ck_assert_str_eq(c.username, "Mufasa");
	ck_assert_str_eq(c.realm, "testrealm@host.com");
	ck_assert_str_eq(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
	ck_assert_str_eq(c.uri, "/dir/index.html");
	ck_assert_str_eq(c.qop, "auth");
	ck_assert_str_eq(c.nc, "00000001");
	ck_assert_str_eq(c.cnonce, "0a4f113b");
	ck_assert_str_eq(c.response, "6629fae49393a05397450978507c4ef1");
	ck_assert_int_eq(c.alg, DIGEST_MD5);

	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), 0);
	/* A stored HA1 in upper case still verifies. */
	ck_assert_int_eq(digest_verify(&c, "GET", "939E7578ED9E3C518A452ACEE763BCE9"), 0);

	/* Wrong password, wrong method, any changed input: refused. */
	ck_assert_int_eq(digest_ha1(DIGEST_MD5, "Mufasa", "testrealm@host.com",
				    "Circle of Life", ha1), 0);
	ck_assert_int_eq(digest_verify(&c, "GET", ha1), -EACCES);
	ck_assert_int_eq(digest_verify(&c, "POST", R2617_HA1), -EACCES);
	strcpy(c.nc, "00000002");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EACCES);
	strcpy(c.nc, "00000001");
	strcpy(c.uri, "/dir/index.htm");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EACCES);
	strcpy(c.uri, "/dir/index.html");
	c.response[31] = '0';
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EACCES);
	/* Dropping qop changes the formula: no downgrade to the RFC 2069 form. */
	strcpy(c.response, "6629fae49393a05397450978507c4ef1");
	c.qop[0] = '\0';
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EACCES);
	strcpy(c.qop, "auth");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), 0);
	/* Upper-case hex from a client is the same response. */
	strcpy(c.response, "6629FAE49393A05397450978507C4EF1");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), 0);
}
END_TEST

START_TEST(test_rfc7616_examples)
{
	struct digest_credentials c;

	ck_assert_int_eq(parse(R7616_VALUE("SHA-256", R7616_SHA256), &c), 0);
	ck_assert_int_eq(c.alg, DIGEST_SHA256);
	ck_assert_str_eq(c.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
	ck_assert_str_eq(c.cnonce, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ");
	ck_assert_int_eq(digest_verify(&c, "GET", R7616_HA1_SHA256), 0);
	ck_assert_int_eq(digest_verify(&c, "POST", R7616_HA1_SHA256), -EACCES);
	/* An MD5 HA1 for a SHA-256 answer is a caller bug, not a wrong password. */
	ck_assert_int_eq(digest_verify(&c, "GET", R7616_HA1_MD5), -EINVAL);
	c.response[0] = c.response[0] == '7' ? '8' : '7';
	ck_assert_int_eq(digest_verify(&c, "GET", R7616_HA1_SHA256), -EACCES);

	ck_assert_int_eq(parse(R7616_VALUE("MD5", R7616_MD5), &c), 0);
	ck_assert_int_eq(c.alg, DIGEST_MD5);
	ck_assert_int_eq(digest_verify(&c, "GET", R7616_HA1_MD5), 0);
	ck_assert_int_eq(digest_verify(&c, "GET", R7616_HA1_SHA256), -EINVAL);

	/* The SHA-256 response claimed as MD5 (or vice versa) is malformed. */
	ck_assert_int_eq(parse(R7616_VALUE("MD5", R7616_SHA256), &c), 0);
	ck_assert_int_eq(digest_verify(&c, "GET", R7616_HA1_MD5), -EINVAL);
}
END_TEST

START_TEST(test_verify_no_qop)
{
	struct digest_credentials c = { .alg = DIGEST_MD5 };
	char want[65];

	strcpy(c.username, "alice");
	strcpy(c.realm, "example.com");
	strcpy(c.nonce, "abcdef");
	strcpy(c.uri, "sip:example.com");
	for (int a = DIGEST_MD5; a <= DIGEST_SHA256; a++) {
		char ha1[DIGEST_HA1_SIZE];

		c.alg = (enum digest_alg)a;
		ck_assert_int_eq(digest_ha1(c.alg, "alice", "example.com", "pw", ha1), 0);
		client_response(c.alg, ha1, "REGISTER", c.uri, c.nonce, NULL, NULL, NULL, want);
		strcpy(c.response, want);
		ck_assert_int_eq(digest_verify(&c, "REGISTER", ha1), 0);
		ck_assert_int_eq(digest_verify(&c, "INVITE", ha1), -EACCES);
	}
}
END_TEST

START_TEST(test_verify_bad_arguments)
{
	struct digest_credentials c;

	ck_assert_int_eq(parse(R2617_VALUE, &c), 0);
	ck_assert_int_eq(digest_verify(NULL, "GET", R2617_HA1), -EINVAL);
	ck_assert_int_eq(digest_verify(&c, NULL, R2617_HA1), -EINVAL);
	ck_assert_int_eq(digest_verify(&c, "", R2617_HA1), -EINVAL);
	ck_assert_int_eq(digest_verify(&c, "GET", NULL), -EINVAL);
	ck_assert_int_eq(digest_verify(&c, "GET", ""), -EINVAL);
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1 "0"), -EINVAL);
	ck_assert_int_eq(digest_verify(&c, "GET", "939e7578ed9e3c518a452acee763bcez"), -EINVAL);
	strcpy(c.response, "6629fae49393a05397450978507c4ef");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EINVAL);
	strcpy(c.response, "6629fae49393a05397450978507c4efg");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EINVAL);
	c.alg = (enum digest_alg)7;
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- nonces */

START_TEST(test_nonce_round_trip)
{
	char a[DIGEST_NONCE_LEN + 1], b[DIGEST_NONCE_LEN + 1];

	make_nonce(NOW, a);
	make_nonce(NOW, b);
	ck_assert_uint_eq(strlen(a), DIGEST_NONCE_LEN);
	ck_assert_str_ne(a, b);	/* same second, still unpredictable */
	ck_assert_uint_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789-_"), DIGEST_NONCE_LEN);

	ck_assert_int_eq(digest_nonce_check(SECRET, a, NOW, TTL), DIGEST_NONCE_VALID);
	ck_assert_int_eq(digest_nonce_check(SECRET, b, NOW, TTL), DIGEST_NONCE_VALID);
	ck_assert_int_eq(digest_nonce_check(SECRET, a, NOW + TTL, TTL), DIGEST_NONCE_VALID);
	/* Issued by a host whose clock is ahead. */
	ck_assert_int_eq(digest_nonce_check(SECRET, a, NOW - TTL, TTL), DIGEST_NONCE_VALID);
}
END_TEST

START_TEST(test_nonce_stale)
{
	char n[DIGEST_NONCE_LEN + 1];

	make_nonce(NOW, n);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, NOW + TTL + 1, TTL), DIGEST_NONCE_STALE);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, NOW + 86400, TTL), DIGEST_NONCE_STALE);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, NOW - TTL - 1, TTL), DIGEST_NONCE_STALE);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, NOW + 1, 0), DIGEST_NONCE_STALE);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, NOW, 0), DIGEST_NONCE_VALID);
	/* A stale nonce under another secret is not stale but invalid. */
	ck_assert_int_eq(digest_nonce_check("other", n, NOW + 86400, TTL), DIGEST_NONCE_INVALID);
}
END_TEST

START_TEST(test_nonce_wrong_secret)
{
	char n[DIGEST_NONCE_LEN + 1];

	make_nonce(NOW, n);
	ck_assert_int_eq(digest_nonce_check("another secret", n, NOW, TTL), DIGEST_NONCE_INVALID);
	ck_assert_int_eq(digest_nonce_check(SECRET "x", n, NOW, TTL), DIGEST_NONCE_INVALID);
	ck_assert_int_eq(digest_nonce_check("", n, NOW, TTL), DIGEST_NONCE_INVALID);
	ck_assert_int_eq(digest_nonce_check(NULL, n, NOW, TTL), DIGEST_NONCE_INVALID);
}
END_TEST

/* Change each field of the decoded nonce and re-encode it validly. */
START_TEST(test_nonce_tampered_fields)
{
	char n[DIGEST_NONCE_LEN + 1], t[DIGEST_NONCE_LEN + 1];
	uint8_t bin[42], mod[42];
	/* Time (low byte), random (first, last), MAC (first, last). */
	const size_t at[] = { 7, 0 + 8, 8 + 15, 24, 24 + 17 };

	make_nonce(NOW - 3600, n);	/* long stale */
	decode_nonce(n, bin);

	/* Make an expired nonce look fresh: the time moves, the MAC does not. */
	memcpy(mod, bin, sizeof mod);
	for (int i = 0; i < 8; i++)
		mod[i] = (uint8_t)(NOW >> (8 * (7 - i)));
	encode_nonce(mod, t);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);

	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		memcpy(mod, bin, sizeof mod);
		mod[at[i]] ^= 0x01;
		encode_nonce(mod, t);
		ck_assert_msg(digest_nonce_check(SECRET, t, NOW, 86400) == DIGEST_NONCE_INVALID,
			      "byte %zu flipped but accepted", at[i]);
	}
	/* The untouched original is still authentic (only stale). */
	encode_nonce(bin, t);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_STALE);
}
END_TEST

/* Any single changed character anywhere makes a nonce invalid. */
START_TEST(test_nonce_every_character)
{
	char n[DIGEST_NONCE_LEN + 1], t[DIGEST_NONCE_LEN + 1];
	const char repl[] = { 'A', 'z', '-', '_', '+', '/', '=', ' ', '"' };

	make_nonce(NOW, n);
	for (size_t i = 0; i < DIGEST_NONCE_LEN; i++) {
		for (size_t r = 0; r < sizeof repl; r++) {
			if (n[i] == repl[r])
				continue;
			strcpy(t, n);
			t[i] = repl[r];
			ck_assert_msg(digest_nonce_check(SECRET, t, NOW, TTL) ==
				      DIGEST_NONCE_INVALID, "%s accepted", t);
		}
	}
}
END_TEST

START_TEST(test_nonce_garbage)
{
	char n[DIGEST_NONCE_LEN + 1], t[DIGEST_NONCE_LEN + 8];
	char *huge = malloc(100001);

	ck_assert_ptr_nonnull(huge);
	make_nonce(NOW, n);
	ck_assert_int_eq(digest_nonce_check(SECRET, NULL, NOW, TTL), DIGEST_NONCE_INVALID);
	ck_assert_int_eq(digest_nonce_check(SECRET, "", NOW, TTL), DIGEST_NONCE_INVALID);
	ck_assert_int_eq(digest_nonce_check(SECRET, "abc", NOW, TTL), DIGEST_NONCE_INVALID);
	ck_assert_int_eq(digest_nonce_check(SECRET, "dcd98b7102dd2f0e8b11d0f600bfb0c093",
					    NOW, TTL), DIGEST_NONCE_INVALID);
	/* Truncated, extended, wrapped in quotes or white space. */
	snprintf(t, sizeof t, "%.*s", DIGEST_NONCE_LEN - 1, n);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	snprintf(t, sizeof t, "%sA", n);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	snprintf(t, sizeof t, "\"%s\"", n);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	snprintf(t, sizeof t, " %s", n);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	snprintf(t, sizeof t, "%sAAAA", n);	/* more valid base64url after the end */
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	/* Right length, all binary zeros / all 'A' / high bytes. */
	memset(t, 'A', DIGEST_NONCE_LEN);
	t[DIGEST_NONCE_LEN] = '\0';
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	memset(t, 0xff, DIGEST_NONCE_LEN);
	ck_assert_int_eq(digest_nonce_check(SECRET, t, NOW, TTL), DIGEST_NONCE_INVALID);
	/* Overlong: 100 kB of base64url. */
	memset(huge, 'Q', 100000);
	huge[100000] = '\0';
	ck_assert_int_eq(digest_nonce_check(SECRET, huge, NOW, TTL), DIGEST_NONCE_INVALID);
	free(huge);
}
END_TEST

START_TEST(test_nonce_make_errors)
{
	char n[DIGEST_NONCE_LEN + 1];

	ck_assert_int_eq(digest_nonce_make(SECRET, NOW, n, DIGEST_NONCE_LEN), -ENOSPC);
	ck_assert_int_eq(digest_nonce_make(SECRET, NOW, n, 0), -ENOSPC);
	ck_assert_int_eq(digest_nonce_make("", NOW, n, sizeof n), -EINVAL);
	ck_assert_int_eq(digest_nonce_make(NULL, NOW, n, sizeof n), -EINVAL);
	ck_assert_int_eq(digest_nonce_make(SECRET, NOW, NULL, sizeof n), -EINVAL);
	/* Time 0 and the far future are encoded and checked as well. */
	ck_assert_int_eq(digest_nonce_make(SECRET, 0, n, sizeof n), 0);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, 0, TTL), DIGEST_NONCE_VALID);
	ck_assert_int_eq(digest_nonce_make(SECRET, UINT64_MAX, n, sizeof n), 0);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, UINT64_MAX, TTL), DIGEST_NONCE_VALID);
	ck_assert_int_eq(digest_nonce_check(SECRET, n, 0, TTL), DIGEST_NONCE_STALE);
}
END_TEST

/* ---------------------------------------------------------------- challenge */

START_TEST(test_challenge_exact)
{
	char out[DIGEST_CHALLENGE_SIZE];
	char n[DIGEST_NONCE_LEN + 1];

	ck_assert_int_eq(digest_challenge(DIGEST_SHA256, "example.com", "abc123", 0,
					  out, sizeof out), 0);
	ck_assert_str_eq(out, "Digest realm=\"example.com\", nonce=\"abc123\", qop=\"auth\", "
			      "algorithm=SHA-256");
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "example.com", "abc123", 0,
					  out, sizeof out), 0);
	ck_assert_str_eq(out, "Digest realm=\"example.com\", nonce=\"abc123\", qop=\"auth\", "
			      "algorithm=MD5");
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "example.com", "abc123", 1,
					  out, sizeof out), 0);
	ck_assert_str_eq(out, "Digest realm=\"example.com\", nonce=\"abc123\", qop=\"auth\", "
			      "algorithm=MD5, stale=true");
	ck_assert_int_eq(digest_challenge(DIGEST_SHA256, "example.com", "abc123", 1,
					  out, sizeof out), 0);
	ck_assert_str_eq(out, "Digest realm=\"example.com\", nonce=\"abc123\", qop=\"auth\", "
			      "algorithm=SHA-256, stale=true");

	/* The longest realm with one of our nonces fits the documented size. */
	{
		char realm[DIGEST_REALM_MAX];

		memset(realm, 'r', sizeof realm - 1);
		realm[sizeof realm - 1] = '\0';
		make_nonce(NOW, n);
		ck_assert_int_eq(digest_challenge(DIGEST_SHA256, realm, n, 1, out,
						  sizeof out), 0);
	}
}
END_TEST

START_TEST(test_challenge_errors)
{
	char out[DIGEST_CHALLENGE_SIZE];
	const char *exact = "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=MD5";
	char realm[DIGEST_REALM_MAX + 1];

	/* Exactly fitting and one byte short. */
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", "n", 0, out, strlen(exact) + 1), 0);
	ck_assert_str_eq(out, exact);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", "n", 0, out, strlen(exact)),
			 -ENOSPC);
	ck_assert_str_eq(out, "");

	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "a\"b", "n", 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "a\\b", "n", 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "a\r\nb", "n", 0, out, sizeof out),
			 -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", "n\"", 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "", "n", 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", "", 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, NULL, "n", 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", NULL, 0, out, sizeof out), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", "n", 0, NULL, 10), -EINVAL);
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, "r", "n", 0, out, 0), -EINVAL);
	ck_assert_int_eq(digest_challenge((enum digest_alg)7, "r", "n", 0, out, sizeof out),
			 -EINVAL);
	/* A realm too long for struct digest_credentials could never be answered. */
	memset(realm, 'r', sizeof realm - 1);
	realm[sizeof realm - 1] = '\0';
	ck_assert_int_eq(digest_challenge(DIGEST_MD5, realm, "n", 0, out, sizeof out), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- parsing */

START_TEST(test_parse_real_world)
{
	struct digest_credentials c;

	/* Compact, unquoted algorithm, realm first (as several softphones send it). */
	ck_assert_int_eq(parse("Digest realm=\"example.com\",nonce=\"n1\",algorithm=MD5,"
			       "opaque=\"\",username=\"1001\",uri=\"sip:example.com\","
			       "response=\"0123456789abcdef0123456789abcdef\",qop=auth,"
			       "cnonce=\"c1\",nc=00000001", &c), 0);
	ck_assert_str_eq(c.username, "1001");
	ck_assert_str_eq(c.realm, "example.com");
	ck_assert_str_eq(c.uri, "sip:example.com");
	ck_assert_str_eq(c.qop, "auth");
	ck_assert_int_eq(c.alg, DIGEST_MD5);

	/* Lower-case scheme and algorithm, spaces around '=' and ',', quoted qop. */
	ck_assert_int_eq(parse("digest  username = \"bob\" ,realm= \"a b\" , nonce=\"x\","
			       " uri=\"sip:bob@example.com;transport=udp\", response=\"r\","
			       " algorithm=\"sha-256\", qop=\"auth\", nc=0000000A, cnonce=c2", &c),
			 0);
	ck_assert_str_eq(c.username, "bob");
	ck_assert_str_eq(c.realm, "a b");
	ck_assert_str_eq(c.uri, "sip:bob@example.com;transport=udp");
	ck_assert_str_eq(c.nc, "0000000A");
	ck_assert_str_eq(c.cnonce, "c2");
	ck_assert_str_eq(c.qop, "auth");
	ck_assert_int_eq(c.alg, DIGEST_SHA256);

	/* RFC 2069 form: no qop, no algorithm; nc/cnonce are ignored without qop. */
	ck_assert_int_eq(parse("Digest username=\"u\", realm=\"r\", nonce=\"n\", "
			       "uri=\"sip:r\", response=\"x\", nc=00000001, cnonce=\"c\"",
			       &c), 0);
	ck_assert_str_eq(c.qop, "");
	ck_assert_str_eq(c.nc, "");
	ck_assert_str_eq(c.cnonce, "");
	ck_assert_int_eq(c.alg, DIGEST_MD5);

	/* Unquoted username and Algorithm / QOP in capitals. */
	ck_assert_int_eq(parse("DIGEST username=u, realm=r, nonce=n, uri=\"sip:r\", "
			       "response=x, ALGORITHM=Sha-256, QOP=AUTH, NC=00000002, "
			       "CNONCE=\"c\"", &c), 0);
	ck_assert_str_eq(c.username, "u");
	ck_assert_str_eq(c.nc, "00000002");
	ck_assert_str_eq(c.qop, "auth");
	ck_assert_int_eq(c.alg, DIGEST_SHA256);
}
END_TEST

START_TEST(test_parse_rejects)
{
	struct digest_credentials c;
	char big[DIGEST_URI_MAX + 200];

#define FIELDS "realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"x\""
	ck_assert_int_eq(parse("Digest " FIELDS, &c), -EINVAL);	/* no username */
	ck_assert_int_eq(parse("Digest username=\"\", " FIELDS, &c), -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"u\", realm=\"r\", nonce=\"n\", "
			       "uri=\"sip:r\"", &c), -EINVAL);		/* no response */
	ck_assert_int_eq(parse("Digest username=\"u\", realm=\"r\", uri=\"sip:r\", "
			       "response=\"x\"", &c), -EINVAL);		/* no nonce */
	ck_assert_int_eq(parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &c), -EINVAL);
	ck_assert_int_eq(parse("Digest", &c), -EINVAL);
	ck_assert_int_eq(parse("", &c), -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"unterminated", &c), -EINVAL);
	ck_assert_int_eq(parse(NULL, &c), -EINVAL);
	ck_assert_int_eq(digest_parse("Digest username=\"u\", " FIELDS, NULL), -EINVAL);

	/* Unsupported: MD5-sess, auth-int, userhash, unknown algorithms. */
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", algorithm=MD5-sess", &c),
			 -ENOTSUP);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", algorithm=SHA-512-256", &c),
			 -ENOTSUP);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", qop=auth-int, "
			       "nc=00000001, cnonce=\"c\"", &c), -ENOTSUP);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", userhash=true", &c),
			 -ENOTSUP);

	/* qop without a valid nc or cnonce. */
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", qop=auth, cnonce=\"c\"", &c),
			 -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", qop=auth, nc=00000001", &c),
			 -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", qop=auth, nc=1, "
			       "cnonce=\"c\"", &c), -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", qop=auth, nc=0000000g, "
			       "cnonce=\"c\"", &c), -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", qop=auth, nc=00000000, "
			       "cnonce=\"c\"", &c), -EINVAL);

	/* Two usernames: which one did the client hash? */
	ck_assert_int_eq(parse("Digest username=\"u\", username=\"admin\", " FIELDS, &c),
			 -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"u\", " FIELDS ", REALM=\"x\"", &c), -EINVAL);
	/* Quotes and control characters inside values. */
	ck_assert_int_eq(parse("Digest username=\"a\\\"b\", " FIELDS, &c), -EINVAL);
	ck_assert_int_eq(parse("Digest username=\"a\\\\b\", " FIELDS, &c), -EINVAL);

	/* Overlong values do not fit and are reported as such. */
	memset(big, 0, sizeof big);
	snprintf(big, sizeof big, "Digest username=\"u\", realm=\"r\", nonce=\"n\", "
		 "response=\"x\", uri=\"sip:");
	memset(big + strlen(big), 'a', DIGEST_URI_MAX);
	strcat(big, "\"");
	ck_assert_int_eq(parse(big, &c), -ENOSPC);
#undef FIELDS
}
END_TEST

/* The path the registrar takes: Sofia parsed the headers already. */
START_TEST(test_parse_auth_list)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	sip_authorization_t *basic, *other, *ours;
	struct digest_credentials c;

	basic = sip_authorization_make(home, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
	other = sip_authorization_make(home, "Digest username=\"x\", realm=\"other.net\", "
					     "nonce=\"n\", uri=\"sip:a\", response=\"y\"");
	ours = sip_authorization_make(home, R2617_VALUE);
	ck_assert_ptr_nonnull(basic);
	ck_assert_ptr_nonnull(other);
	ck_assert_ptr_nonnull(ours);
	basic->au_next = other;
	other->au_next = ours;

	memset(&c, 0, sizeof c);
	ck_assert_int_eq(digest_parse_auth(basic, "testrealm@host.com", &c), 0);
	ck_assert_str_eq(c.username, "Mufasa");
	ck_assert_int_eq(digest_verify(&c, "GET", R2617_HA1), 0);

	ck_assert_int_eq(digest_parse_auth(basic, NULL, &c), 0);
	ck_assert_str_eq(c.realm, "other.net");
	ck_assert_int_eq(digest_parse_auth(basic, "nowhere", &c), -ENOENT);
	ck_assert_int_eq(digest_parse_auth(basic, "testrealm@host", &c), -ENOENT);
	ck_assert_int_eq(digest_parse_auth(NULL, NULL, &c), -ENOENT);
	ck_assert_int_eq(digest_parse_auth(basic, NULL, NULL), -EINVAL);
	other->au_next = NULL;
	ck_assert_int_eq(digest_parse_auth(basic, "testrealm@host.com", &c), -ENOENT);
	su_home_deinit(home);
}
END_TEST

/* ---------------------------------------------------------------- nc, replay */

START_TEST(test_nc_parse)
{
	uint32_t nc = 0;

	ck_assert_int_eq(digest_nc_parse("00000001", &nc), 0);
	ck_assert_uint_eq(nc, 1);
	ck_assert_int_eq(digest_nc_parse("0000001a", &nc), 0);
	ck_assert_uint_eq(nc, 26);
	ck_assert_int_eq(digest_nc_parse("FFFFFFFF", &nc), 0);
	ck_assert_uint_eq(nc, 0xffffffffu);
	ck_assert_int_eq(digest_nc_parse("00000000", &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse("1", &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse("000000001", &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse("0000000x", &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse("+0000001", &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse("", &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse(NULL, &nc), -EINVAL);
	ck_assert_int_eq(digest_nc_parse("00000001", NULL), -EINVAL);
}
END_TEST

START_TEST(test_replay_key)
{
	struct digest_credentials c;
	char k1[DIGEST_REPLAY_KEY_SIZE], k2[DIGEST_REPLAY_KEY_SIZE];
	char n[DIGEST_NONCE_LEN + 1];

	ck_assert_int_eq(parse(R2617_VALUE, &c), 0);
	ck_assert_int_eq(digest_replay_key(&c, k1, sizeof k1), 0);
	ck_assert_str_eq(k1, "dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001");

	/* The same count spelled in capitals is the same use of the nonce. */
	strcpy(c.nc, "0000000A");
	ck_assert_int_eq(digest_replay_key(&c, k1, sizeof k1), 0);
	strcpy(c.nc, "0000000a");
	ck_assert_int_eq(digest_replay_key(&c, k2, sizeof k2), 0);
	ck_assert_str_eq(k1, k2);
	/* The next count is a new key. */
	strcpy(c.nc, "0000000b");
	ck_assert_int_eq(digest_replay_key(&c, k2, sizeof k2), 0);
	ck_assert_str_ne(k1, k2);

	/* Without qop the nonce itself is single-use. */
	c.qop[0] = c.nc[0] = '\0';
	ck_assert_int_eq(digest_replay_key(&c, k1, sizeof k1), 0);
	ck_assert_str_eq(k1, "dcd98b7102dd2f0e8b11d0f600bfb0c093:00000000");

	/* One of our nonces fits DIGEST_REPLAY_KEY_SIZE exactly. */
	make_nonce(NOW, n);
	strcpy(c.nonce, n);
	strcpy(c.qop, "auth");
	strcpy(c.nc, "ffffffff");
	ck_assert_int_eq(digest_replay_key(&c, k1, sizeof k1), 0);
	ck_assert_uint_eq(strlen(k1), DIGEST_REPLAY_KEY_SIZE - 1);
	ck_assert_int_eq(digest_replay_key(&c, k1, sizeof k1 - 1), -ENOSPC);

	strcpy(c.nc, "zz");
	ck_assert_int_eq(digest_replay_key(&c, k1, sizeof k1), -EINVAL);
	ck_assert_int_eq(digest_replay_key(NULL, k1, sizeof k1), -EINVAL);
	ck_assert_int_eq(digest_replay_key(&c, NULL, sizeof k1), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- end to end */

/*
 * A registrar's whole exchange: challenge with a fresh nonce, a client
 * answers with its password, the answer is parsed and verified, the nonce is
 * checked, a second use of the same nc has the same replay key.
 */
START_TEST(test_full_exchange)
{
	const char *realm = "example.com", *uri = "sip:example.com";

	for (int a = DIGEST_MD5; a <= DIGEST_SHA256; a++) {
		enum digest_alg alg = (enum digest_alg)a;
		char nonce[DIGEST_NONCE_LEN + 1], chal[DIGEST_CHALLENGE_SIZE];
		char ha1[DIGEST_HA1_SIZE], resp[65], value[1024], want[128];
		char key1[DIGEST_REPLAY_KEY_SIZE], key2[DIGEST_REPLAY_KEY_SIZE];
		struct digest_credentials c;

		make_nonce(NOW, nonce);
		ck_assert_int_eq(digest_challenge(alg, realm, nonce, 0, chal, sizeof chal), 0);
		snprintf(want, sizeof want, "nonce=\"%s\"", nonce);
		ck_assert_ptr_nonnull(strstr(chal, want));

		ck_assert_int_eq(digest_ha1(alg, "1001", realm, "s3cret", ha1), 0);
		client_response(alg, ha1, "REGISTER", uri, nonce, "00000001", "deadbeef",
				"auth", resp);
		snprintf(value, sizeof value, "Digest username=\"1001\", realm=\"%s\", "
			 "nonce=\"%s\", uri=\"%s\", response=\"%s\", algorithm=%s, "
			 "qop=auth, nc=00000001, cnonce=\"deadbeef\"",
			 realm, nonce, uri, resp, digest_alg_name(alg));

		ck_assert_int_eq(parse(value, &c), 0);
		ck_assert_int_eq(c.alg, alg);
		ck_assert_int_eq(digest_nonce_check(SECRET, c.nonce, NOW + 10, TTL),
				 DIGEST_NONCE_VALID);
		ck_assert_int_eq(digest_verify(&c, "REGISTER", ha1), 0);
		ck_assert_int_eq(digest_replay_key(&c, key1, sizeof key1), 0);

		/* Wrong password. */
		ck_assert_int_eq(digest_ha1(alg, "1001", realm, "s3cre7", ha1), 0);
		ck_assert_int_eq(digest_verify(&c, "REGISTER", ha1), -EACCES);

		/* The replayed request maps to the same key; the caller's SET NX fails. */
		ck_assert_int_eq(parse(value, &c), 0);
		ck_assert_int_eq(digest_replay_key(&c, key2, sizeof key2), 0);
		ck_assert_str_eq(key1, key2);
	}
}
END_TEST

static Suite *digest_suite(void)
{
	Suite *s = suite_create("digest");
	TCase *hash = tcase_create("hash");
	TCase *nonce = tcase_create("nonce");
	TCase *hdr = tcase_create("headers");

	tcase_add_test(hash, test_ha1_vectors);
	tcase_add_test(hash, test_alg_name);
	tcase_add_test(hash, test_rfc2617_example);
	tcase_add_test(hash, test_rfc7616_examples);
	tcase_add_test(hash, test_verify_no_qop);
	tcase_add_test(hash, test_verify_bad_arguments);
	suite_add_tcase(s, hash);

	tcase_add_test(nonce, test_nonce_round_trip);
	tcase_add_test(nonce, test_nonce_stale);
	tcase_add_test(nonce, test_nonce_wrong_secret);
	tcase_add_test(nonce, test_nonce_tampered_fields);
	tcase_add_test(nonce, test_nonce_every_character);
	tcase_add_test(nonce, test_nonce_garbage);
	tcase_add_test(nonce, test_nonce_make_errors);
	suite_add_tcase(s, nonce);

	tcase_add_test(hdr, test_challenge_exact);
	tcase_add_test(hdr, test_challenge_errors);
	tcase_add_test(hdr, test_parse_real_world);
	tcase_add_test(hdr, test_parse_rejects);
	tcase_add_test(hdr, test_parse_auth_list);
	tcase_add_test(hdr, test_nc_parse);
	tcase_add_test(hdr, test_replay_key);
	tcase_add_test(hdr, test_full_exchange);
	suite_add_tcase(s, hdr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(digest_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
