/*
 * fuzz_sip — a SIP datagram from anyone, as a worker meets it: parsed by
 * Sofia-SIP's message parser with the SIP class NTA uses, held to NTA's
 * sanity check (what fails it is answered 400 or dropped by NTA before
 * b2bua sees it), then through b2bua's own code that reads a parsed
 * request: the record a new INVITE puts in the call table
 * (b2b_record_init(): every URI, tag and Call-ID copied into fixed-size
 * fields), the registrar's "is this our domain" test on From, To and the
 * Request-URI, the digest credentials of Authorization and
 * Proxy-Authorization (digest_parse_auth(), as the registrar parses them),
 * and hold detection on the body (hold_state_of(), as b2b_relay.c does for
 * offers).  Every field of the record must end inside its array.
 *
 * Design note.  The agent itself (transactions, sockets) is not run: one
 * input is one message, without state carried over, so a crash reproduces
 * from its input alone.  The b2b_t is a plain struct with the fields
 * b2b_record_init() reads (configuration, worker, identifiers); the
 * registrar is a real one without Redis, which its domain test never uses.
 */
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su.h>

#include "b2bua/config.h"
#include "b2bua/digest.h"
#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/hold.h"
#include "worker/registrar.h"

static struct config fuzz_cfg;
static struct b2b fuzz_b2b;
static registrar_t *fuzz_reg;

/* A field that must hold a C string: it ends inside its array. */
static void fuzz_terminated(const char *s, size_t size)
{
	if (strnlen(s, size) == size)
		abort();
}

static void fuzz_check_leg(const struct shm_leg *l)
{
	fuzz_terminated(l->call_id, sizeof l->call_id);
	fuzz_terminated(l->local_tag, sizeof l->local_tag);
	fuzz_terminated(l->remote_tag, sizeof l->remote_tag);
	fuzz_terminated(l->local_uri, sizeof l->local_uri);
	fuzz_terminated(l->remote_uri, sizeof l->remote_uri);
	fuzz_terminated(l->remote_target, sizeof l->remote_target);
	fuzz_terminated(l->route_set, sizeof l->route_set);
}

/* What b2b_on_invite() does with a new INVITE before it reaches the network. */
static void fuzz_new_invite(sip_t const *sip)
{
	struct shm_call rec;
	char a_tag[SHM_TAG_MAX];

	b2b_make_tag(&fuzz_b2b, a_tag, sizeof a_tag);
	b2b_record_init(&fuzz_b2b, &rec, sip, a_tag);
	fuzz_terminated(rec.id, sizeof rec.id);
	fuzz_terminated(rec.caller, sizeof rec.caller);
	fuzz_terminated(rec.callee, sizeof rec.callee);
	fuzz_check_leg(&rec.a);
	fuzz_check_leg(&rec.b);
}

static void fuzz_request(sip_t const *sip)
{
	struct digest_credentials c;

	(void)registrar_is_local(fuzz_reg, sip->sip_request->rq_url);
	(void)registrar_is_local(fuzz_reg, sip->sip_from->a_url);
	(void)registrar_is_local(fuzz_reg, sip->sip_to->a_url);
	if (sip->sip_authorization)
		(void)digest_parse_auth(sip->sip_authorization, fuzz_cfg.realm, &c);
	if (sip->sip_proxy_authorization)
		(void)digest_parse_auth(sip->sip_proxy_authorization, fuzz_cfg.realm, &c);
	if (sip->sip_request->rq_method == sip_method_invite && !sip->sip_to->a_tag)
		fuzz_new_invite(sip);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	su_init();
	log_set_level(LOG_ERROR);
	config_defaults(&fuzz_cfg);
	snprintf(fuzz_cfg.node_id, sizeof fuzz_cfg.node_id, "fuzz");
	snprintf(fuzz_cfg.domain, sizeof fuzz_cfg.domain, "example.com");
	snprintf(fuzz_cfg.realm, sizeof fuzz_cfg.realm, "example.com");
	fuzz_b2b.cfg = &fuzz_cfg;
	fuzz_b2b.rng = 0x9e3779b97f4a7c15ull;
	fuzz_b2b.epoch_ms = 1700000000000ull;
	if (registrar_create(&fuzz_cfg, NULL, 0, &fuzz_reg) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msg_t *msg = msg_make(sip_default_mclass(), 0, data, (isize_t)size);
	sip_t *sip = msg ? sip_object(msg) : NULL;

	if (sip == NULL || sip_sanity_check(sip) < 0)
		goto done;
	if (sip->sip_request)
		fuzz_request(sip);
	if (sip->sip_payload)
		(void)hold_state_of(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
done:
	msg_destroy(msg);
	return 0;
}
