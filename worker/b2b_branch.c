/*
 * b2b_branch — the B-leg attempts of a call ("branches").
 *
 * Design note.  Each branch is its own dialog (new Call-ID, our tag) and
 * INVITE transaction, towards one target: a static route, or one registered
 * contact of the callee, forked in parallel (b2b_call_fork, at most
 * B2B_MAX_BRANCHES).  The first 2xx wins: it is relayed to the caller and
 * the other branches are CANCELled; a 2xx that arrives after (or after the
 * caller left) is ACKed and released with BYE.  A failure is remembered when
 * it is the best so far (RFC 3261 16.7); when the last branch failed the
 * call forwards (b2b_policy.c) or the best failure goes to the caller.
 *
 * States driven here: TRYING (INVITEs sent), RINGING (a 18x relayed),
 * ANSWERED (the winning 2xx relayed).  The ACK for the winner's 2xx waits
 * for the caller's ACK (b2b_relay.c); a retransmitted 2xx is ACKed again.
 * Once the caller has its final answer without one of ours (a_done: it
 * cancelled, or invite_timeout), what is left of the branches only
 * finishes: a failure is forgotten, a 2xx is ACKed and released, and the
 * last one ends the call.
 *
 * Session timers (b2b_timer.c): every INVITE offers ours; the winner's 2xx
 * decides the B-leg's session, and the 2xx relayed to the caller carries
 * the A-leg's.  A 422 is retried once on the same dialog with the callee's
 * Min-SE.
 *
 * A subscriber behind NAT (docs/architecture.md, "Subscribers behind NAT"):
 * the target's Request-URI stays its registered Contact, but every request
 * of the leg (INVITE, CANCEL, ACK, re-INVITE, UPDATE, BYE) is sent to the
 * binding's source address, or to the host that holds the binding with the
 * hand-off header: NTA's route_url (b2b_leg_route), without a Route header.
 * The callee's 2xx Contact then becomes the leg's remote target, as RFC
 * 3261 wants, and is still not where the packets go.
 *
 * A subscriber registered over a connection (a flow, worker/flow.h): the
 * worker that holds the connection sends the INVITE over it (NTATAG_TPORT:
 * never a new connection to the phone's Contact) and routes the later
 * requests to its peer address over the same primary, which finds the
 * connection again (TPTAG_REUSE); any other worker hands the call to that
 * worker like a host hands a NAT'd call to the holding host (b2b_policy.c).
 *
 * The MTU switch (RFC 3261 §18.1.1): an INVITE larger than B2B_UDP_MTU to a
 * route target that names no transport goes over TCP when TCP is on
 * (b2b_branch_mtu_route); a target that says transport=udp stays on UDP.
 *
 * Nothing of one leg's topology is copied to the other: the B-leg gets a new
 * Call-ID, new tags, its own CSeq, our Via and our Contact; only From/To
 * URIs (identities, without tags or parameters), the SDP body and
 * Max-Forwards (decremented) cross over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/mem.h"

/* The branch whose 2xx was relayed to the caller; NULL before. */
struct b2b_branch *b2b_winner(struct b2b_call *call)
{
	return call->winner >= 0 ? b2b_branch_at(call, (unsigned)call->winner) : NULL;
}

/* Forget a branch: NTA makes no more callbacks for it. */
void b2b_branch_drop(struct b2b_branch *br)
{
	if (br->orq)
		nta_outgoing_destroy(br->orq);
	if (br->leg)
		nta_leg_destroy(br->leg);
	free(br->nat);
	br->orq = NULL;
	br->leg = NULL;
	br->nat = NULL;
}

/* Where NTA sends the in-dialog requests of `leg`: the binding's source
 * for a B-leg to a subscriber behind NAT, the INVITE's source for an A-leg
 * from a caller behind NAT (b2b_relay.c), else NULL (its remote target, as
 * usual).  A leg handed to the holding host has that host's Contact as its
 * remote target once answered, which is reachable: only its INVITE needed
 * the route.  A leg is known by its callback; its magic is the branch (B)
 * or the call (A). */
url_string_t const *b2b_leg_route(nta_leg_t *leg)
{
	struct b2b_branch *br;
	struct b2b_call *call;

	if (leg == NULL)
		return NULL;
	br = (struct b2b_branch *)nta_leg_magic(leg, b2b_on_b_request);
	if (br)
		return br->nat && !br->nat->handoff[0] ? URL_STRING_MAKE(br->nat->url) : NULL;
	call = (struct b2b_call *)nta_leg_magic(leg, b2b_on_a_request);
	if (call && call->a_stream)
		b2b_stream_caller_route(call);   /* its connection may have closed */
	return call && call->a_nat ? URL_STRING_MAKE(call->a_nat->url) : NULL;
}

/* Our address for `leg`'s peer (b2b_int.h, struct b2b_addr), or NULL for
 * a leg that is not a call's. */
static const struct b2b_addr *b2b_leg_addr(nta_leg_t *leg)
{
	struct b2b_branch *br = (struct b2b_branch *)nta_leg_magic(leg, b2b_on_b_request);
	struct b2b_call *call;

	if (br)
		return &br->call->b2b->addr[br->addr];
	call = (struct b2b_call *)nta_leg_magic(leg, b2b_on_a_request);
	return call ? &call->b2b->addr[call->a_addr] : NULL;
}

const char *b2b_leg_ident(nta_leg_t *leg)
{
	struct b2b_branch *br = leg ? (struct b2b_branch *)nta_leg_magic(leg, b2b_on_b_request)
				    : NULL;
	struct b2b_call *call = leg ? (struct b2b_call *)nta_leg_magic(leg, b2b_on_a_request)
				    : NULL;
	const struct b2b_addr *a = leg ? b2b_leg_addr(leg) : NULL;

	/* A caller's connection: Sofia reuses it only from the primary that has it. */
	if (call && call->a_stream && call->a_nat && call->a_stream_ident)
		return call->a_stream_ident;
	if (br && br->nat && br->nat->ident[0] && !br->nat->handoff[0])
		return br->nat->ident;   /* a flow: the primary holding its connection */
	if (a == NULL)
		return b2b_leg_route(leg) ? B2B_IDENT_PUBLIC : B2B_IDENT_OWN;
	return b2b_leg_route(leg) ? a->ident_public : a->ident_own;
}

sip_contact_t const *b2b_leg_contact(struct b2b_call *call, enum b2b_leg which)
{
	struct b2b_branch *br = which == B2B_LEG_B ? b2b_winner(call) : NULL;
	const struct b2b_addr *a = &call->b2b->addr[which == B2B_LEG_A ? call->a_addr :
						     br ? br->addr : 0];

	if (which == B2B_LEG_A && call->a_stream == SHM_TP_TLS && a->contact_tls)
		return a->contact_tls;
	if (which == B2B_LEG_A && call->a_stream == SHM_TP_TCP && a->contact_tcp)
		return a->contact_tcp;
	return a->contact;
}

/*
 * ACK a 2xx to our INVITE with CSeq `cseq` on `leg` (RFC 3261 13.2.2.4).
 * NTA gives the ACK's transaction the branch of that INVITE's, which it
 * finds among its transactions, so that the 2xx repeated later is matched
 * to the ACK.  A call taken over has no such transaction (it died with the
 * previous process; NTA would abort): `orphan` names a branch of the call's
 * own instead, and a repeated 2xx reaches b2b_adopt_on_stray, which ACKs it
 * again.
 */
void b2b_ack_leg(struct b2b_call *call, nta_leg_t *leg, uint32_t cseq, int orphan)
{
	char branch[sizeof call->id + 16];
	const char *ack_branch = NULL;   /* NULL: NTA's, from the INVITE */
	sip_cseq_t cs[1];
	nta_outgoing_t *ack;

	sip_cseq_init(cs);
	cs->cs_seq = cseq;
	cs->cs_method = sip_method_ack;
	cs->cs_method_name = "ACK";
	if (orphan) {
		snprintf(branch, sizeof branch, "z9hG4bK.ack.%s", call->id);
		ack_branch = branch;
	}
	ack = leg ? nta_outgoing_tcreate(leg, NULL, NULL, b2b_leg_route(leg),
					 SIP_METHOD_ACK, NULL,
					 SIPTAG_CSEQ(cs), TPTAG_IDENT(b2b_leg_ident(leg)),
					 TAG_IF(ack_branch, NTATAG_ACK_BRANCH(ack_branch)), TAG_END())
		  : NULL;
	if (ack == NULL)
		log_warn("call %s: cannot send ACK", call->id);
	else
		nta_outgoing_destroy(ack);
}

/*
 * ACK the branch's 2xx with the CSeq of its INVITE, and let the INVITE's
 * transaction go: it holds the INVITE we sent and the 2xx we got (several
 * KB) and would do so for as long as the call lasts.  A retransmitted 2xx
 * (our ACK was lost) still gets the ACK again: NTA matches it to the ACK's
 * own transaction, which it keeps for that (tests/e2e/reack.sh).
 */
void b2b_ack_branch(struct b2b_branch *br)
{
	b2b_ack_leg(br->call, br->leg, br->cseq, br->orq == NULL);
	br->acked = 1;
	if (br->orq)
		nta_outgoing_destroy(br->orq);
	br->orq = NULL;
}

/* Send BYE on a leg and forget it: used when a call is torn down by us. */
void b2b_bye_and_forget(nta_leg_t *leg)
{
	nta_outgoing_t *bye = nta_outgoing_tcreate(leg, NULL, NULL, b2b_leg_route(leg),
						   SIP_METHOD_BYE, NULL,
						   TPTAG_IDENT(b2b_leg_ident(leg)), TAG_END());
	if (bye)
		nta_outgoing_destroy(bye);
}

/* CANCEL every B-leg attempt still waiting for its final answer. */
void b2b_cancel_pending(struct b2b_call *call, int except)
{
	for (unsigned i = 0; i < call->n_br; i++) {
		struct b2b_branch *br = b2b_branch_at(call, i);

		if ((int)i != except && br->orq && br->final == 0)
			nta_outgoing_cancel(br->orq);
	}
}

/* How many B-leg attempts still wait for their final answer. */
unsigned b2b_pending_branches(struct b2b_call *call)
{
	unsigned n = 0;

	for (unsigned i = 0; i < call->n_br; i++) {
		struct b2b_branch *br = b2b_branch_at(call, i);

		n += br->orq != NULL && br->final == 0;
	}
	return n;
}

/* ------------------------------------------------------------ answers */

static void b2b_relay_provisional(struct b2b_branch *br, int status, sip_t const *sip)
{
	struct b2b_call *call = br->call;

	if (sip->sip_to && sip->sip_to->a_tag) {
		mem_long_begin();   /* into the dialog: worker/mem.c */
		nta_leg_rtag(br->leg, sip->sip_to->a_tag);
		mem_long_end();
	}
	if ((call->state != B2B_TRYING && call->state != B2B_RINGING &&
	     call->state != B2B_FORWARDING) || call->forward_pending)
		return;
	nta_incoming_treply(call->a_irq, status, sip->sip_status->st_phrase,
			    SIPTAG_CONTACT(b2b_leg_contact(call, B2B_LEG_A)),
			    SIPTAG_CONTENT_TYPE(sip->sip_content_type),
			    SIPTAG_PAYLOAD(sip->sip_payload),
			    TAG_END());
	if (call->state == B2B_TRYING || call->state == B2B_FORWARDING)
		b2b_publish_state(call, B2B_RINGING);
}

/* The winner's 2xx goes to the caller, with the A-leg's session timer. */
static void b2b_relay_answer(struct b2b_call *call, int status, sip_t const *sip)
{
	struct b2b_st_hdrs h;

	b2b_session_answer_hdrs(call, B2B_LEG_A, &h);
	nta_incoming_treply(call->a_irq, status, sip->sip_status->st_phrase,
			    SIPTAG_CONTACT(b2b_leg_contact(call, B2B_LEG_A)),
			    TAG_IF(h.supported, SIPTAG_SUPPORTED_STR(h.supported)),
			    TAG_IF(h.se[0], SIPTAG_SESSION_EXPIRES_STR(h.se)),
			    TAG_IF(h.require, SIPTAG_REQUIRE_STR(h.require)),
			    SIPTAG_CONTENT_TYPE(sip->sip_content_type),
			    SIPTAG_PAYLOAD(sip->sip_payload),
			    TAG_END());
	b2b_session_answered(call, B2B_LEG_A);
	b2b_session_keep_sdp_answered(call, B2B_LEG_A, nta_incoming_getresponse(call->a_irq));
}

/* A 2xx on branch br: the first one wins, later ones are released. */
static void b2b_on_b_answer(struct b2b_branch *br, int status, sip_t const *sip)
{
	struct b2b_call *call = br->call;

	mem_long_begin();   /* into the dialog: worker/mem.c */
	nta_leg_rtag(br->leg, sip->sip_to->a_tag);
	nta_leg_client_reroute(br->leg, sip->sip_record_route, sip->sip_contact, 1);
	mem_long_end();

	if (call->winner >= 0 || call->a_done || call->a_irq == NULL) {
		/* Another branch won, or the caller is gone (CANCEL crossed this
		 * 2xx, or invite_timeout): confirm this dialog and end it at once. */
		b2b_ack_branch(br);
		b2b_bye_and_forget(br->leg);
		if (call->winner >= 0)
			return;
		if (!call->a_done) {
			call->hangup_by = CDR_PARTY_CALLER;
			b2b_call_give_up(call, 487);
		} else if (b2b_pending_branches(call) == 0 && call->holds == 0) {
			b2b_call_end(call);
		}
		return;
	}
	b2b_invite_timer_stop(call);
	call->winner = (int)br->idx;
	call->answer_ms = shm_now_ms();
	call->forward_pending = 0;   /* an answer during the CANCEL wins (flow 10) */
	if (call->na_timer)
		su_timer_reset(call->na_timer);
	call->final_code = status;
	b2b_url_copy(call->answered_by, sizeof call->answered_by,
		     nta_outgoing_request_uri(br->orq));
	b2b_cancel_pending(call, call->winner);
	b2b_publish_b_answered(call, br, sip);
	b2b_count_code(call->b2b, status);
	b2b_observe_setup(call);
	b2b_session_uac_2xx(call, B2B_LEG_B, sip);
	b2b_session_keep_sdp_answered(call, B2B_LEG_B, nta_outgoing_getrequest(br->orq));
	b2b_relay_answer(call, status, sip);
	/* Keep a_irq: NTA retransmits the 2xx until the caller's ACK, which it
	 * hands to b2b_on_a_irq(); then B is ACKed (flow 3, step 7). */
	b2b_publish_state(call, B2B_ANSWERED);
}

/* RFC 3261 16.7 in short: a 6xx beats everything, else the lowest class. */
static int b2b_better_failure(int candidate, int best)
{
	if (best == 0)
		return 1;
	if (best >= 600)
		return 0;
	if (candidate >= 600)
		return 1;
	return candidate / 100 < best / 100;
}

/* A failure on branch br (NTA has ACKed it); relay the best one when the
 * last branch failed. */
static void b2b_on_b_failure(struct b2b_branch *br, int status, sip_t const *sip)
{
	struct b2b_call *call = br->call;

	if (call->a_done) {
		/* The caller has its answer: this branch is only over. */
		nta_outgoing_destroy(br->orq);
		br->orq = NULL;
		if (b2b_pending_branches(call) == 0 && call->holds == 0)
			b2b_call_end(call);
		return;
	}

	/* A 487 nobody asked for: NTA's Timer C (invite_timeout) cancelled the
	 * INVITE because the callee never answered finally.  To the caller it
	 * is our timeout (flow 8). */
	if (status == 487 && call->state != B2B_CANCELLING && !call->forward_pending &&
	    call->winner < 0) {
		status = 408;
		call->timed_out = 1;
		sip = NULL;
	}
	/* 430 Flow Failed: the worker holding the callee's connection found it
	 * gone (RFC 5626 §5.3; b2b_policy.c).  It is for us, not the caller:
	 * to the caller that binding is only unavailable. */
	if (status == 430) {
		status = 480;
		sip = NULL;
	}
	if (b2b_better_failure(status, call->best_final)) {
		call->best_final = status;
		b2b_str_copy(call->best_phrase, sizeof call->best_phrase,
			     sip && sip->sip_status ? sip->sip_status->st_phrase : NULL);
	}
	nta_outgoing_destroy(br->orq);
	br->orq = NULL;
	if (call->winner >= 0 || b2b_pending_branches(call) > 0)
		return;
	if (b2b_forward_on_failure(call))
		return;
	call->hangup_by = call->state == B2B_CANCELLING ? CDR_PARTY_CALLER :
			  call->timed_out ? CDR_PARTY_SYSTEM : CDR_PARTY_CALLEE;
	if (call->state == B2B_CANCELLING)
		b2b_reply_a(call, SIP_487_REQUEST_CANCELLED);
	else
		b2b_reply_a(call, call->best_final,
			    call->best_phrase[0] ? call->best_phrase : NULL);
	b2b_call_end(call);
}

static int b2b_branch_invite(struct b2b_call *call, struct b2b_branch *br, sip_t const *sip,
			     url_t const *ruri, unsigned se, tport_t *conn);

/* A 422 (our Session-Expires is below the callee's Min-SE): send the
 * INVITE again on the same dialog with its Min-SE, once (RFC 4028 7.4).
 * 0 when the new INVITE is out. */
static int b2b_branch_retry_422(struct b2b_branch *br, sip_t const *resp)
{
	struct b2b_call *call = br->call;
	sip_t const *inv = b2b_invite_of(call);
	su_home_t home[1] = { SU_HOME_INIT(home) };
	url_t *ruri;
	unsigned se;
	int rc;

	if (br->st_retried || call->a_done || inv == NULL || resp->sip_min_se == NULL ||
	    call->state == B2B_CANCELLING || call->forward_pending ||
	    session_timer_retry(br->st_se, resp->sip_min_se->min_delta > 86400 ? 86401u :
				(unsigned)resp->sip_min_se->min_delta, &se) < 0)
		return -EINVAL;
	ruri = url_hdup(home, nta_outgoing_request_uri(br->orq));
	nta_outgoing_destroy(br->orq);
	br->orq = NULL;
	br->st_retried = 1;
	rc = ruri ? b2b_branch_invite(call, br, inv, ruri, se, NULL) : -ENOMEM;
	su_home_deinit(home);
	if (rc == 0)
		log_info("call %s: the callee wants Session-Expires >= %u: INVITE again", call->id, se);
	return rc;
}

static int b2b_on_b_response(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
			     sip_t const *sip)
{
	struct b2b_branch *br = (struct b2b_branch *)magic;
	int status = nta_outgoing_status(orq);

	if (status < 200) {
		if (status > 100 && sip && sip->sip_status)
			b2b_relay_provisional(br, status, sip);
		return 0;
	}
	if (status == 422 && sip && b2b_branch_retry_422(br, sip) == 0)
		return 0;
	if (br->final == 0)
		br->final = status;
	if (status < 300 && sip) {
		if (br->acked)
			b2b_ack_branch(br);   /* a retransmitted 2xx: ACK it again */
		else if (br == b2b_winner(br->call))
			return 0;             /* retransmission before the caller's ACK */
		else
			b2b_on_b_answer(br, status, sip);
		return 0;
	}
	b2b_on_b_failure(br, status, sip);
	return 0;
}

/* ------------------------------------------------------------ starting branches */

/* Our Contact on a B-leg INVITE: the transport the INVITE goes over (its
 * route, else its Request-URI: a route target "sip:...;transport=tcp", a
 * sips: URI or ;transport=tls, a flow, the MTU switch), so the callee's
 * requests come back over it to this worker's own port; else UDP. */
static sip_contact_t const *b2b_branch_contact(b2b_t *b2b, url_t const *ruri,
					       const char *route, const struct b2b_addr *a)
{
	char tp[8] = "";

	(void)b2b;
	if (route) {   /* ours: "sip:host:port;transport=X", written in lower case */
		if (strstr(route, ";transport=tls") && a->contact_tls)
			return a->contact_tls;
		if (strstr(route, ";transport=tcp") && a->contact_tcp)
			return a->contact_tcp;
		return a->contact;
	}
	if (ruri && ruri->url_params)
		url_param(ruri->url_params, "transport", tp, sizeof tp);
	if (a->contact_tls && ruri && (ruri->url_type == url_sips || su_casematch(tp, "tls")))
		return a->contact_tls;
	if (a->contact_tcp && su_casematch(tp, "tcp"))
		return a->contact_tcp;
	return a->contact;
}

/* The size of the branch's INVITE before it is built: the caller's body,
 * which crosses unchanged, and our headers (Via, From, To, Call-ID, CSeq,
 * Contact, Max-Forwards, session timer, Diversion), measured at 450-650
 * bytes (tests/e2e/tcp_mtu.sh): B2B_HEADERS_MAX bounds them. */
#define B2B_HEADERS_MAX 700

static size_t b2b_branch_size(struct b2b_call *call, sip_t const *sip)
{
	size_t body = sip->sip_payload ? sip->sip_payload->pl_len : 0;

	return body + B2B_HEADERS_MAX + strlen(b2b_diversion(call));
}

/*
 * The MTU switch: NTATAG_UDP_MTU(65535) keeps NTA from switching by
 * itself (it would switch a ;transport=udp target too), so the rule is
 * here.  A route target that names no transport, with TCP on, gets an
 * INVITE larger than B2B_UDP_MTU over TCP: the route_url is its
 * Request-URI with ;transport=tcp, for this INVITE only (its CANCEL
 * follows it; the dialog's later requests go to the callee's Contact).
 * Into url (size bytes): 1 when switched, else 0.
 */
static int b2b_branch_mtu_route(struct b2b_call *call, struct b2b_branch *br, sip_t const *sip,
				url_t const *ruri, char *url, size_t size)
{
	char tp[8];
	int n;

	if (!br->mtu_switch || br->nat || call->b2b->addr[br->addr].contact_tcp == NULL ||
	    ruri->url_type != url_sip ||
	    (ruri->url_params && url_param(ruri->url_params, "transport", tp, sizeof tp) > 0) ||
	    b2b_branch_size(call, sip) <= B2B_UDP_MTU)
		return 0;
	n = snprintf(url, size, "sip:%s%s%s;transport=tcp", ruri->url_host,
		     ruri->url_port ? ":" : "", ruri->url_port ? ruri->url_port : "");
	return n > 0 && (size_t)n < size;
}

/* The socket the branch's INVITE leaves from: the public port (of its
 * address `a`) towards a party behind NAT, the primary holding a flow's
 * connection, else our own port. */
static const char *b2b_branch_ident(const struct b2b_branch *br, const struct b2b_addr *a)
{
	if (br->nat == NULL || br->nat->handoff[0])
		return a->ident_own;
	return br->nat->ident[0] ? br->nat->ident : a->ident_public;
}

/* The branch's INVITE (the caller's `sip` gives body and Max-Forwards) on
 * its dialog; `se` overrides our Session-Expires offer (after a 422);
 * `conn`, when not NULL, is the flow's connection it must go over. */
static int b2b_branch_invite(struct b2b_call *call, struct b2b_branch *br, sip_t const *sip,
			     url_t const *ruri, unsigned se, tport_t *conn)
{
	char mtu_url[REGISTRAR_URI_MAX];
	const char *route = br->nat ? br->nat->url : NULL;
	b2b_t *b2b = call->b2b;
	char diversion[B2B_DIVERSION_MAX + 16];
	sip_max_forwards_t mf[1];
	struct b2b_st_hdrs h;
	char handoff[sizeof B2B_HANDOFF_HEADER + sizeof br->nat->handoff + 2] = "";
	const struct b2b_addr *a = &b2b->addr[br->addr];

	if (br->nat && br->nat->handoff[0])
		snprintf(handoff, sizeof handoff, B2B_HANDOFF_HEADER ": %s", br->nat->handoff);
	sip_max_forwards_init(mf);
	mf->mf_count = sip->sip_max_forwards ? sip->sip_max_forwards->mf_count - 1
					     : (unsigned long)b2b->cfg->max_forwards;
	snprintf(diversion, sizeof diversion, "Diversion: %s", b2b_diversion(call));
	b2b_session_request_hdrs(call, B2B_LEG_B, &h);
	if (se && h.se[0])
		snprintf(h.se, sizeof h.se, "%u", se);
	br->st_se = h.se[0] ? (unsigned)strtoul(h.se, NULL, 10) : 0;
	if (b2b_branch_mtu_route(call, br, sip, ruri, mtu_url, sizeof mtu_url)) {
		route = mtu_url;
		log_info("call %s: INVITE of about %zu bytes, over %d: over TCP", call->id,
			 b2b_branch_size(call, sip), B2B_UDP_MTU);
	}
	br->orq = nta_outgoing_tcreate(br->leg, b2b_on_b_response, (nta_outgoing_magic_t *)br,
				       route ? URL_STRING_MAKE(route) : NULL,
				       SIP_METHOD_INVITE, (url_string_t const *)ruri,
				       SIPTAG_CONTACT(b2b_branch_contact(b2b, ruri, route, a)),
				       SIPTAG_MAX_FORWARDS(mf),
				       TAG_IF(b2b_diversion(call)[0], SIPTAG_HEADER_STR(diversion)),
				       TAG_IF(handoff[0], SIPTAG_HEADER_STR(handoff)),
				       TAG_IF(h.supported, SIPTAG_SUPPORTED_STR(h.supported)),
				       TAG_IF(h.se[0], SIPTAG_SESSION_EXPIRES_STR(h.se)),
				       TAG_IF(h.min_se[0], SIPTAG_MIN_SE_STR(h.min_se)),
				       SIPTAG_CONTENT_TYPE(sip->sip_content_type),
				       SIPTAG_PAYLOAD(sip->sip_payload),
				       TPTAG_IDENT(b2b_branch_ident(br, a)),
				       TAG_IF(conn, NTATAG_TPORT(conn)),
				       TAG_END());
	if (br->orq == NULL)
		return -EIO;
	br->cseq = nta_outgoing_cseq(br->orq);
	return 0;
}

/* A target behind NAT, or a flow: its route (and hand-off, or the ident
 * of the primary holding the flow's connection) for every request of the
 * branch.  0, or -ENOMEM. */
static int b2b_branch_nat(struct b2b_branch *br, const struct b2b_target *t)
{
	br->mtu_switch = t->mtu_switch;
	if (t->route == NULL)
		return 0;
	br->nat = calloc(1, sizeof *br->nat);
	if (br->nat == NULL)
		return -ENOMEM;
	b2b_str_copy(br->nat->url, sizeof br->nat->url, t->route);
	b2b_str_copy(br->nat->handoff, sizeof br->nat->handoff, t->handoff);
	if (t->conn)
		b2b_str_copy(br->nat->ident, sizeof br->nat->ident,
			     tport_ident(tport_parent(t->conn)));
	return 0;
}

/* The address (b2b->addr) a branch sends from: of the family of its route
 * (NAT or hand-off: "sip:ip:port...", an IPv6 address in brackets), else
 * of its Request-URI's. */
static unsigned b2b_branch_addr(const b2b_t *b2b, const struct b2b_branch *br,
				url_t const *ruri)
{
	if (br->nat)
		return b2b_addr_for_host(b2b, strchr(br->nat->url, '[') ? "[::]" : "0.0.0.0");
	return ruri ? b2b_addr_for_host(b2b, ruri->url_host) : 0;
}

/* The transport a URI names (enum shm_transport): sips:, or its transport
 * parameter; UDP otherwise. */
static unsigned b2b_url_transport(url_t const *url)
{
	char tp[8];

	if (url->url_type == url_sips)
		return SHM_TP_TLS;
	if (url->url_params && url_param(url->url_params, "transport", tp, sizeof tp) > 0)
		return su_casematch(tp, "tcp") ? SHM_TP_TCP
		       : su_casematch(tp, "tls") ? SHM_TP_TLS : SHM_TP_UDP;
	return SHM_TP_UDP;
}

/* The transport a branch's INVITE went over (enum shm_transport): its Via,
 * which NTA writes when it sends; before that (a target name still being
 * resolved) what its next hop names, the route or the Request-URI. */
static unsigned b2b_branch_transport(struct b2b_branch *br, url_t const *ruri)
{
	msg_t *msg = nta_outgoing_getrequest(br->orq);
	sip_t const *sip = msg ? sip_object(msg) : NULL;
	char route[sizeof br->nat->url];
	url_t hop[1];
	unsigned ret = b2b_url_transport(ruri);

	if (sip && sip->sip_via) {
		ret = b2b_via_transport(sip->sip_via);
	} else if (br->nat) {
		b2b_str_copy(route, sizeof route, br->nat->url);
		if (url_d(hop, route) == 0)
			ret = b2b_url_transport(hop);
	}
	msg_destroy(msg);   /* the reference getrequest took */
	return ret;
}

/* One B-leg attempt towards `t`: a new dialog and its INVITE.
 * B-leg identities are the caller's and callee's URIs and display names,
 * nothing else of the A-leg (no tags, no parameters). */
static int b2b_branch_start(struct b2b_call *call, sip_t const *sip, const struct b2b_target *t)
{
	url_t const *ruri = t->ruri;
	b2b_t *b2b = call->b2b;
	struct b2b_branch *br;
	char tag[SHM_TAG_MAX], call_id[SHM_CALLID_MAX];
	sip_from_t from[1];
	sip_to_t to[1];
	int rc;

	if (call->n_br == 1 && call->br_more == NULL) {
		/* A second branch (forking, forwarding): room for all the others. */
		call->br_more = mem_call_calloc(B2B_MAX_BRANCHES - 1, sizeof *call->br_more);
		if (call->br_more == NULL)
			return -ENOMEM;
	}
	br = b2b_branch_at(call, call->n_br);
	sip_from_init(from);
	from->a_display = sip->sip_from->a_display;
	*from->a_url = *sip->sip_from->a_url;
	sip_to_init(to);
	to->a_display = sip->sip_to->a_display;
	*to->a_url = *sip->sip_to->a_url;
	b2b_make_tag(b2b, tag, sizeof tag);
	b2b_make_call_id(b2b, call_id, sizeof call_id);

	memset(br, 0, sizeof *br);
	br->call = call;
	br->idx = call->n_br;
	mem_long_begin();   /* the dialog lives as long as the call: worker/mem.c */
	br->leg = nta_leg_tcreate(b2b->agent, b2b_on_b_request, (nta_leg_magic_t *)br,
				  SIPTAG_CALL_ID_STR(call_id),
				  SIPTAG_FROM(from), SIPTAG_TO(to), TAG_END());
	rc = (br->leg == NULL || nta_leg_tag(br->leg, tag) == NULL ||
	      b2b_branch_nat(br, t) < 0) ? -ENOMEM : 0;
	mem_long_end();
	if (rc < 0) {
		b2b_branch_drop(br);
		return rc;
	}
	/* Our address of the family of where its requests go (dual stack). */
	br->addr = b2b_branch_addr(b2b, br, ruri);
	if (b2b_branch_invite(call, br, sip, ruri, 0, t->conn) < 0) {
		b2b_branch_drop(br);
		return -EIO;
	}
	if (call->n_br == 0)
		b2b_publish_b_leg(call, call_id, tag, ruri, br->cseq,
				  b2b_branch_transport(br, ruri));
	b2b_publish_invite_b(call, br);
	call->n_br++;
	return 0;
}

/* Send the INVITE to every target; if none could be sent, fail the call. */
void b2b_call_fork_to(struct b2b_call *call, const struct b2b_target *targets, unsigned n)
{
	sip_t const *sip = b2b_invite_of(call);

	/* Before the first B-leg: is the caller's session interval acceptable? */
	if (sip && call->n_br == 0 && b2b_session_check_a(call, sip) < 0)
		return;
	for (unsigned i = 0; sip && i < n && call->n_br < B2B_MAX_BRANCHES; i++)
		if (b2b_branch_start(call, sip, &targets[i]) < 0)
			log_warn("call %s: cannot send INVITE to a target", call->id);
	if (b2b_pending_branches(call) == 0) {
		b2b_reply_a(call, SIP_500_INTERNAL_SERVER_ERROR);
		b2b_call_end(call);
		return;
	}
	b2b_invite_timer_start(call);
	if (call->state != B2B_FORWARDING)
		b2b_publish_state(call, B2B_TRYING);
}

/* b2b_call_fork_to with plain Request-URIs (static routes, forwarding). */
void b2b_call_fork(struct b2b_call *call, url_t const *const *targets, unsigned n)
{
	struct b2b_target t[B2B_MAX_BRANCHES];

	if (n > B2B_MAX_BRANCHES)
		n = B2B_MAX_BRANCHES;
	for (unsigned i = 0; i < n; i++)
		t[i] = (struct b2b_target){ .ruri = targets[i], .mtu_switch = 1 };
	b2b_call_fork_to(call, t, n);
}
