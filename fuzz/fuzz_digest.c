/*
 * fuzz_digest — digest authentication on what a client sends
 * (b2bua/digest.c): an Authorization / Proxy-Authorization value, parsed
 * both on its own (digest_parse()) and as the registrar meets it, as a
 * header of a REGISTER that Sofia-SIP parsed (digest_parse_auth()); then
 * what the registrar does with parsed credentials: the nonce check, the
 * nonce-count, the replay key and the response check against an HA1.
 * Whatever the value, none may read or write outside its buffers, and a
 * credential that parses must satisfy what digest.h promises of it.
 */
#include "b2bua/digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>
#include <sofia-sip/su.h>

#define FUZZ_SECRET "fuzz-secret-0123456789"
#define FUZZ_VALUE_MAX 4096

/* Fields are terminated, and the promises of digest.h hold. */
static void fuzz_check_credentials(const struct digest_credentials *c)
{
	uint32_t nc;
	char key[DIGEST_REPLAY_KEY_SIZE];
	char ha1[DIGEST_HA1_SIZE];

	if (strnlen(c->username, sizeof c->username) == sizeof c->username ||
	    strnlen(c->nonce, sizeof c->nonce) == sizeof c->nonce ||
	    strnlen(c->uri, sizeof c->uri) == sizeof c->uri ||
	    strnlen(c->response, sizeof c->response) == sizeof c->response ||
	    strnlen(c->nc, sizeof c->nc) == sizeof c->nc ||
	    strnlen(c->qop, sizeof c->qop) == sizeof c->qop ||
	    strnlen(c->cnonce, sizeof c->cnonce) == sizeof c->cnonce ||
	    strnlen(c->realm, sizeof c->realm) == sizeof c->realm)
		abort();
	if (digest_alg_name(c->alg) == NULL)
		abort();
	if (c->qop[0] != '\0' && digest_nc_parse(c->nc, &nc) != 0)
		abort();   /* digest_parse() promises a valid nc with qop */
	(void)digest_nonce_check(FUZZ_SECRET, c->nonce, 1700000000u, 300);
	(void)digest_replay_key(c, key, sizeof key);
	if (digest_ha1(c->alg, c->username, c->realm, "password", ha1) != 0)
		abort();
	(void)digest_verify(c, "REGISTER", ha1);
}

/* The value as the registrar gets it: a header of a request Sofia parsed. */
static void fuzz_as_header(const char *value)
{
	static const char head[] =
		"REGISTER sip:example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-fuzz\r\n"
		"From: <sip:bob@example.com>;tag=1\r\n"
		"To: <sip:bob@example.com>\r\n"
		"Call-ID: fuzz@192.0.2.1\r\n"
		"CSeq: 1 REGISTER\r\n"
		"Authorization: ";
	char msgbuf[sizeof head + FUZZ_VALUE_MAX + 32];
	struct digest_credentials c;
	msg_t *msg;
	sip_t *sip;
	int n;

	n = snprintf(msgbuf, sizeof msgbuf, "%s%s\r\nContent-Length: 0\r\n\r\n", head, value);
	if (n < 0 || (size_t)n >= sizeof msgbuf)
		return;
	msg = msg_make(sip_default_mclass(), 0, msgbuf, n);
	if (msg == NULL)
		return;
	sip = sip_object(msg);
	if (sip && sip->sip_authorization) {
		if (digest_parse_auth(sip->sip_authorization, "example.com", &c) == 0)
			fuzz_check_credentials(&c);
		if (digest_parse_auth(sip->sip_authorization, NULL, &c) == 0)
			fuzz_check_credentials(&c);
	}
	msg_destroy(msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	su_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char value[FUZZ_VALUE_MAX + 1];
	struct digest_credentials c;
	uint32_t nc;

	if (size > FUZZ_VALUE_MAX)
		size = FUZZ_VALUE_MAX;
	memcpy(value, data, size);
	value[size] = '\0';
	(void)digest_nc_parse(value, &nc);
	(void)digest_nonce_check(FUZZ_SECRET, value, 1700000000u, 300);
	if (digest_parse(value, &c) == 0)
		fuzz_check_credentials(&c);
	/* A header value ends at the line: Sofia would split the rest off. */
	value[strcspn(value, "\r\n")] = '\0';
	fuzz_as_header(value);
	return 0;
}
