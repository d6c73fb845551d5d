/*
 * b2b_relay — what crosses between the legs of an established call, and
 * the caller's own requests on the A-leg.
 *
 * Design note.  A request inside an established call (re-INVITE, UPDATE,
 * INFO, ...) is relayed to the other leg as a new transaction of that leg's
 * dialog, and its final answer is relayed back.  One relay at a time per
 * call: a re-INVITE that crosses another gets 491 (RFC 3261 14.2); a
 * rejected re-INVITE leaves the call as it was.  The ACK of a relayed 2xx is
 * relayed too, with the CSeq of our INVITE on the other leg.  An accepted
 * re-INVITE's offer decides hold and resume (hold.c); the call table shows
 * it (b2b_publish_hold).
 *
 * Session timers (b2b_timer.c) ride on this relay: a re-INVITE or UPDATE
 * goes out with the other leg's Session-Expires, its 2xx refreshes that
 * leg, and the 2xx relayed back carries the sender's leg's; a too short
 * Session-Expires is answered 422 here.  A body-less UPDATE is a refresh
 * only, answered by b2bua unless the other leg can take it end to end.
 *
 * A BYE from either side is relayed the same way and moves the call to
 * ENDING; the call ends when the far side answers it.  On the A-leg, the
 * caller's ACK of our 2xx moves ANSWERED to CONFIRMED (and ACKs B), and its
 * CANCEL cancels the call (b2b_caller_cancels).
 *
 * A caller behind NAT (b2b_a_leg_nat) is reached at the address its INVITE
 * came from: every request we send on its A-leg goes there (b2b_leg_route),
 * as every request to a callee behind NAT goes to its binding's source.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "worker/b2b_int.h"
#include "worker/hold.h"
#include "worker/mem.h"

/* ------------------------------------------------------------ BYE relay */

static int b2b_on_bye_response(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
			       sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;
	int status = nta_outgoing_status(orq);

	if (status < 200)
		return 0;
	/* The call is released on our side whatever the far end said: the BYE's
	 * sender gets the far end's 2xx, or 200 if the far end is gone. */
	if (call->bye_irq) {
		if (status < 300 && sip && sip->sip_status)
			nta_incoming_treply(call->bye_irq, status, sip->sip_status->st_phrase,
					    TAG_END());
		else
			nta_incoming_treply(call->bye_irq, SIP_200_OK, TAG_END());
	}
	b2b_call_end(call);
	return 0;
}

/* A BYE arrived from one side; relay it on the other leg and answer it with
 * the other side's answer. */
static int b2b_relay_bye(struct b2b_call *call, int from_caller, nta_incoming_t *irq)
{
	struct b2b_branch *br = b2b_winner(call);
	nta_leg_t *other;

	if (call->bye_irq || br == NULL)
		return 200;   /* both hung up at once, or nothing to relay to */
	if (from_caller && !br->acked)
		b2b_ack_branch(br);   /* B's 2xx must be acknowledged before its BYE */
	if (call->a_irq) {
		nta_incoming_destroy(call->a_irq);
		call->a_irq = NULL;
	}
	other = from_caller ? br->leg : call->a_leg;
	call->hangup_by = from_caller ? CDR_PARTY_CALLER : CDR_PARTY_CALLEE;
	call->bye_irq = irq;
	call->bye_orq = nta_outgoing_tcreate(other, b2b_on_bye_response,
					     (nta_outgoing_magic_t *)call, b2b_leg_route(other),
					     SIP_METHOD_BYE,
					     NULL, TPTAG_IDENT(b2b_leg_ident(other)), TAG_END());
	if (call->bye_orq == NULL) {
		log_warn("call %s: cannot relay BYE", call->id);
		nta_incoming_treply(irq, SIP_200_OK, TAG_END());
		call->bye_irq = NULL;
		nta_incoming_destroy(irq);
		b2b_call_end(call);
		return 0;
	}
	b2b_publish_state(call, B2B_ENDING);
	return 0;
}

/* ------------------------------------------------------------ in-dialog relay */

/* Hold or resume, decided by the offer of a re-INVITE that was accepted. */
static void b2b_apply_hold(struct b2b_call *call)
{
	enum shm_party by = call->relay_from_caller ? SHM_PARTY_CALLER : SHM_PARTY_CALLEE;

	if (call->relay_hold == HOLD_UNKNOWN)
		return;
	if (call->relay_hold == HOLD_ON) {
		call->held_by = by;
		log_info("call %s: held by the %s", call->id,
			 by == SHM_PARTY_CALLER ? "caller" : "callee");
	} else if (call->held_by == by) {
		call->held_by = SHM_PARTY_NONE;   /* only the one who held can resume */
		log_info("call %s: resumed", call->id);
	}
	b2b_publish_hold(call);
}

void b2b_relay_done(struct b2b_call *call)
{
	if (call->relay_irq)
		nta_incoming_destroy(call->relay_irq);
	if (call->relay_orq)
		nta_outgoing_destroy(call->relay_orq);
	call->relay_irq = NULL;
	call->relay_orq = NULL;
}

/* The leg a request from one side goes out on. */
static nta_leg_t *b2b_other_leg(struct b2b_call *call, int from_caller)
{
	struct b2b_branch *br = b2b_winner(call);

	if (from_caller)
		return br ? br->leg : NULL;
	return call->a_leg;
}

/* The ACK of a relayed re-INVITE's 2xx reached us: pass it on. */
static int b2b_on_relay_irq(nta_incoming_magic_t *magic, nta_incoming_t *irq, sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;
	nta_leg_t *other = b2b_other_leg(call, call->relay_from_caller);
	sip_cseq_t cseq[1];
	nta_outgoing_t *ack;

	if (sip == NULL) {
		/* Our relayed 2xx was never ACKed (Timer H): the relay is over, so
		 * that the next re-INVITE does not get 491 for ever. */
		log_warn("call %s: the relayed re-INVITE's 2xx was never ACKed", call->id);
		b2b_relay_done(call);
		return 0;
	}
	if (sip->sip_request->rq_method != sip_method_ack || other == NULL)
		return 0;
	sip_cseq_init(cseq);
	cseq->cs_seq = call->relay_cseq;
	cseq->cs_method = sip_method_ack;
	cseq->cs_method_name = "ACK";
	ack = nta_outgoing_tcreate(other, NULL, NULL, b2b_leg_route(other), SIP_METHOD_ACK, NULL,
				   SIPTAG_CSEQ(cseq),
				   SIPTAG_CONTENT_TYPE(sip->sip_content_type),
				   SIPTAG_PAYLOAD(sip->sip_payload),
				   TPTAG_IDENT(b2b_leg_ident(other)), TAG_END());
	if (ack)
		nta_outgoing_destroy(ack);
	b2b_relay_done(call);
	return 0;
}

/* Which leg a request from one side came on, and which it goes out on. */
static enum b2b_leg b2b_leg_of(int from_caller)
{
	return from_caller ? B2B_LEG_A : B2B_LEG_B;
}

static enum b2b_leg b2b_leg_to(int from_caller)
{
	return from_caller ? B2B_LEG_B : B2B_LEG_A;
}

/* Does this method carry session timers (a refresh, RFC 4028)? */
static int b2b_is_refresh(sip_method_t method)
{
	return method == sip_method_invite || method == sip_method_update;
}

static int b2b_on_relay_response(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				 sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;
	int status = nta_outgoing_status(orq);
	int is_invite = call->relay_method == sip_method_invite;
	struct b2b_st_hdrs h;

	if (status < 200 || call->relay_irq == NULL)
		return 0;   /* provisional answers to a re-INVITE are not relayed */
	memset(&h, 0, sizeof h);
	if (status < 300 && sip && b2b_is_refresh(call->relay_method)) {
		/* Both legs were refreshed: each keeps its own session. */
		b2b_session_uac_2xx(call, b2b_leg_to(call->relay_from_caller), sip);
		b2b_session_answer_hdrs(call, b2b_leg_of(call->relay_from_caller), &h);
		b2b_session_answered(call, b2b_leg_of(call->relay_from_caller));
	}
	nta_incoming_treply(call->relay_irq, status,
			    sip && sip->sip_status ? sip->sip_status->st_phrase : NULL,
			    TAG_IF(status < 300, SIPTAG_CONTACT(b2b_leg_contact(call,
					call->relay_from_caller ? B2B_LEG_A : B2B_LEG_B))),
			    TAG_IF(h.supported, SIPTAG_SUPPORTED_STR(h.supported)),
			    TAG_IF(h.se[0], SIPTAG_SESSION_EXPIRES_STR(h.se)),
			    TAG_IF(h.require, SIPTAG_REQUIRE_STR(h.require)),
			    TAG_IF(sip, SIPTAG_CONTENT_TYPE(sip ? sip->sip_content_type : NULL)),
			    TAG_IF(sip, SIPTAG_PAYLOAD(sip ? sip->sip_payload : NULL)),
			    TAG_END());
	if (status < 300 && sip && sip->sip_payload)
		b2b_session_keep_sdp(call, b2b_leg_of(call->relay_from_caller),
				     nta_incoming_getresponse(call->relay_irq));
	if (status < 300 && is_invite) {
		b2b_apply_hold(call);
		/* Keep the irq until its ACK arrives (b2b_on_relay_irq). */
		nta_outgoing_destroy(call->relay_orq);
		call->relay_orq = NULL;
		return 0;
	}
	b2b_relay_done(call);
	return 0;
}

/* Relay an in-dialog request from one side to the other. */
static int b2b_relay_request(struct b2b_call *call, int from_caller, nta_incoming_t *irq,
			     sip_t const *sip)
{
	nta_leg_t *other = b2b_other_leg(call, from_caller);
	sip_method_t method = sip->sip_request->rq_method;
	struct b2b_st_hdrs h;
	unsigned min_se = 0;
	char buf[16];

	if (call->state != B2B_CONFIRMED || other == NULL)
		return method == sip_method_invite ? 491 : 481;
	if (method == sip_method_update &&
	    b2b_session_answer_update(call, b2b_leg_of(from_caller), irq, sip) == 0)
		return 0;
	if (call->relay_irq != NULL ||
	    (method == sip_method_invite && b2b_session_refreshing(call, b2b_leg_of(from_caller))))
		return method == sip_method_invite ? 491 : 500;
	memset(&h, 0, sizeof h);
	if (b2b_is_refresh(method)) {
		if (b2b_session_uas(call, b2b_leg_of(from_caller), sip, &min_se) < 0) {
			snprintf(buf, sizeof buf, "%u", min_se);
			nta_incoming_treply(irq, 422, "Session Interval Too Small",
					    SIPTAG_MIN_SE_STR(buf), TAG_END());
			nta_incoming_destroy(irq);
			return 0;
		}
		b2b_session_request_hdrs(call, b2b_leg_to(from_caller), &h);
	}
	call->relay_orq = nta_outgoing_tcreate(other, b2b_on_relay_response,
					       (nta_outgoing_magic_t *)call, b2b_leg_route(other),
					       method, sip->sip_request->rq_method_name, NULL,
					       TAG_IF(b2b_is_refresh(method),
						      SIPTAG_CONTACT(b2b_leg_contact(call,
							from_caller ? B2B_LEG_B : B2B_LEG_A))),
					       TAG_IF(h.supported, SIPTAG_SUPPORTED_STR(h.supported)),
					       TAG_IF(h.se[0], SIPTAG_SESSION_EXPIRES_STR(h.se)),
					       TAG_IF(h.min_se[0], SIPTAG_MIN_SE_STR(h.min_se)),
					       SIPTAG_CONTENT_TYPE(sip->sip_content_type),
					       SIPTAG_PAYLOAD(sip->sip_payload),
					       TPTAG_IDENT(b2b_leg_ident(other)),
					       TAG_END());
	if (call->relay_orq == NULL)
		return 500;
	if (sip->sip_payload)
		b2b_session_keep_sdp(call, b2b_leg_to(from_caller),
				     nta_outgoing_getrequest(call->relay_orq));
	call->relay_irq = irq;
	call->relay_method = method;
	call->relay_from_caller = from_caller;
	call->relay_cseq = nta_outgoing_cseq(call->relay_orq);
	call->relay_hold = HOLD_UNKNOWN;
	if (method == sip_method_invite) {
		nta_incoming_bind(irq, b2b_on_relay_irq, (nta_incoming_magic_t *)call);
		if (sip->sip_payload)
			call->relay_hold = hold_state_of(sip->sip_payload->pl_data,
							 sip->sip_payload->pl_len);
	}
	return 0;
}

/* ------------------------------------------------------------ B-legs */

/* Requests the callee sends in its dialog with us. */
int b2b_on_b_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
		     sip_t const *sip)
{
	struct b2b_branch *br = (struct b2b_branch *)magic;
	struct b2b_call *call = br->call;

	call->active_ms = mono_ms();   /* not quiet: no rest for a while (b2b_rest.c) */
	switch (sip->sip_request->rq_method) {
	case sip_method_bye:
		if (br != b2b_winner(call))
			return 481;
		return b2b_relay_bye(call, 0, irq);
	case sip_method_ack:
		return 200;   /* an ACK outside a relayed re-INVITE: absorb */
	case sip_method_cancel:
	case sip_method_prack:
		return 481;
	default:
		if (br != b2b_winner(call))
			return 481;
		return b2b_relay_request(call, 0, irq, sip);
	}
}

/* ------------------------------------------------------------ A-leg */

/* The caller's ACK for our 2xx: now B is ACKed too. */
static void b2b_on_a_ack(struct b2b_call *call)
{
	struct b2b_branch *br = b2b_winner(call);

	if (call->state == B2B_ANSWERED && br) {
		b2b_ack_branch(br);
		call->active_ms = mono_ms();   /* quiet from now on: rest (b2b_rest.c) */
		b2b_publish_state(call, B2B_CONFIRMED);
		b2b_session_start(call);
	}
	if (call->a_irq) {
		nta_incoming_destroy(call->a_irq);
		call->a_irq = NULL;
	}
}

/*
 * A caller on TCP or TLS sends each request over a connection of its
 * choice: the one its INVITE came on, or (after following our Contact) one
 * to this worker's own port, and may close the other.  Requests to it
 * follow the connection of its latest request (`msg`, being delivered
 * now): its source, and the primary that accepted it (Sofia reuses a
 * connection only from its own primary; b2b_leg_ident).  For the INVITE
 * too.  A request relayed by another worker came over UDP and changes
 * nothing here (b2b_stream_caller_moved).
 */
static void b2b_a_leg_follow(struct b2b_call *call, msg_t *msg)
{
	sip_t const *sip = msg ? sip_object(msg) : NULL;
	su_sockaddr_t const *sa = msg ? msg_addr(msg) : NULL;
	tport_t *tp = msg ? tport_delivered_by(nta_agent_tports(call->b2b->agent), msg) : NULL;
	tp_name_t const *pri = tp && tport_parent(tp) ? tport_name(tport_parent(tp)) : NULL;
	const struct b2b_addr *a = &call->b2b->addr[call->a_addr];
	const char *proto = call->a_stream == SHM_TP_TLS ? sip_transport_tls : sip_transport_tcp;
	char ip[INET6_ADDRSTRLEN];
	unsigned port;

	if (!call->a_stream || call->a_nat == NULL || sip == NULL || sip->sip_via == NULL ||
	    !su_casematch(sip->sip_via->v_protocol, proto) || sa == NULL)
		return;
	if (sa->su_family == AF_INET &&
	    inet_ntop(AF_INET, &sa->su_sin.sin_addr, ip, sizeof ip) != NULL)
		port = ntohs(sa->su_sin.sin_port);
	else if (sa->su_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &sa->su_sin6.sin6_addr, ip, sizeof ip) != NULL)
		port = ntohs(sa->su_sin6.sin6_port);
	else
		return;
	snprintf(call->a_nat->url, sizeof call->a_nat->url, "sip:%s%s%s:%u;transport=%s",
		 sa->su_family == AF_INET6 ? "[" : "", ip, sa->su_family == AF_INET6 ? "]" : "",
		 port, call->a_stream == SHM_TP_TLS ? "tls" : "tcp");
	call->a_stream_ident = pri && pri->tpn_ident && strcmp(pri->tpn_ident, a->ident_own) == 0
			       ? a->ident_own : a->ident_public;
}

/*
 * An answered call whose caller has not ACKed our 2xx, and never will
 * (`why`): it cannot be trusted, so both legs are released, the callee's
 * 2xx ACKed first, and the call ends, by the system.  Timer H here, or a
 * successor that cannot answer the caller again (b2b_adopt.c).
 */
void b2b_release_unacked(struct b2b_call *call, const char *why)
{
	log_warn("call %s: %s: releasing it", call->id, why);
	call->hangup_by = CDR_PARTY_SYSTEM;
	b2b_release_callee(call);
	b2b_bye_and_forget(call->a_leg);
	b2b_call_end(call);
}

/* The callee answered a call its caller will not be in: its 2xx gets its
 * ACK (RFC 3261 13.2.2.4, every 2xx does), then a BYE. */
void b2b_release_callee(struct b2b_call *call)
{
	struct b2b_branch *br = b2b_winner(call);

	if (br) {
		b2b_ack_branch(br);
		b2b_bye_and_forget(br->leg);
	}
}

/* NTA calls this for the ACK and the CANCEL of the caller's INVITE. */
int b2b_on_a_irq(nta_incoming_magic_t *magic, nta_incoming_t *irq, sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;

	if (sip == NULL) {
		/* NTA gave up retransmitting our 2xx (Timer H): the caller never
		 * ACKed it.  The call cannot be trusted: release both legs. */
		if (call->state == B2B_ANSWERED) {
			call->a_irq = NULL;   /* NTA destroys it */
			nta_incoming_destroy(irq);
			b2b_release_unacked(call, "no ACK from the caller for our 2xx");
		}
		return 0;
	}

	switch (sip->sip_request->rq_method) {
	case sip_method_cancel:
		b2b_caller_cancels(call);
		return 0;
	case sip_method_ack:
		if (call->a_stream) {
			msg_t *ack = nta_incoming_getrequest_ackcancel(irq);

			b2b_a_leg_follow(call, ack);
			msg_destroy(ack);   /* the reference getrequest took */
		}
		b2b_on_a_ack(call);
		return 0;
	default:
		return 0;
	}
}

/* Requests the caller sends in its dialog with us. */
int b2b_on_a_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
		     sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;

	call->active_ms = mono_ms();   /* not quiet: no rest for a while (b2b_rest.c) */
	if (call->a_stream) {
		msg_t *msg = nta_incoming_getrequest(irq);

		b2b_a_leg_follow(call, msg);   /* a request on a connection of ours */
		msg_destroy(msg);   /* the reference getrequest took */
	}
	b2b_stream_caller_moved(call, sip);   /* relayed by another worker, or gone */
	switch (sip->sip_request->rq_method) {
	case sip_method_bye:
		return b2b_relay_bye(call, 1, irq);
	case sip_method_ack:
		/* The ACK of our 2xx when NTA did not route it to b2b_on_a_irq(). */
		b2b_on_a_ack(call);
		return 200;   /* destroys the ACK's irq; no response is sent */
	case sip_method_cancel:
	case sip_method_prack:
		return 481;
	default:
		return b2b_relay_request(call, 1, irq, sip);
	}
}

/*
 * A caller behind NAT: a subscriber (not a trusted trunk, SBC or host,
 * which are reached at their Contact as they ask), with no proxy in
 * between (no Record-Route), whose Contact is not where its INVITE came
 * from.  Requests to it go to that source (RFC 3581, as for a callee
 * behind NAT).  0, or -ENOMEM.
 */
static int b2b_a_leg_nat(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip)
{
	char source[REGISTRAR_ADDR_MAX], contact[REGISTRAR_URI_MAX];

	if (sip->sip_record_route || sip->sip_contact == NULL ||
	    registrar_request_source(irq, source, sizeof source) < 0 ||
	    b2b_source_trusted(call->b2b, irq) ||
	    url_e(contact, sizeof contact, sip->sip_contact->m_url) < 0 ||
	    !registrar_behind_nat(contact, source))
		return 0;
	call->a_nat = calloc(1, sizeof *call->a_nat);
	if (call->a_nat == NULL)
		return -ENOMEM;
	if (registrar_addr_url(source, call->a_nat->url, sizeof call->a_nat->url) < 0) {
		free(call->a_nat);
		call->a_nat = NULL;
	}
	return 0;
}

/*
 * A caller whose INVITE came over TCP or TLS (top Via SIP/2.0/TCP or TLS):
 * the A-leg is its connection.  Requests to it go to the INVITE's source
 * with ;transport=tcp (tls), so Sofia finds the connection the INVITE came
 * on (tport reuses a connection to the same peer address) instead of
 * dialling the Contact, which a client behind NAT or one that does not
 * listen cannot take; our Contact on this leg says ;transport=tcp (tls)
 * (b2b_leg_contact).  The connection is this worker's: it accepted it, so
 * the call is ours (docs/architecture.md, "Connections: TCP and TLS").
 * 0, or -ENOMEM.
 */
static int b2b_a_leg_stream(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip)
{
	char source[REGISTRAR_ADDR_MAX];
	const char *tp;
	msg_t *msg;
	char *udp;

	if (sip->sip_via == NULL || sip->sip_via->v_protocol == NULL)
		return 0;
	if (su_casematch(sip->sip_via->v_protocol, sip_transport_tcp) &&
	    call->b2b->addr[call->a_addr].contact_tcp)
		call->a_stream = SHM_TP_TCP;
	else if (su_casematch(sip->sip_via->v_protocol, sip_transport_tls) &&
		 call->b2b->addr[call->a_addr].contact_tls)
		call->a_stream = SHM_TP_TLS;
	else
		return 0;
	tp = call->a_stream == SHM_TP_TLS ? ";transport=tls" : ";transport=tcp";
	if (registrar_request_source(irq, source, sizeof source) < 0)
		return 0;
	if (call->a_nat == NULL && (call->a_nat = calloc(1, sizeof *call->a_nat)) == NULL)
		return -ENOMEM;
	if (registrar_addr_url(source, call->a_nat->url, sizeof call->a_nat->url) < 0 ||
	    (udp = strstr(call->a_nat->url, ";transport=udp")) == NULL) {
		free(call->a_nat);
		call->a_nat = NULL;
		return 0;
	}
	memcpy(udp, tp, strlen(tp) + 1);   /* as long as ";transport=udp" */
	msg = nta_incoming_getrequest(irq);
	b2b_a_leg_follow(call, msg);   /* the primary the INVITE's connection is on */
	msg_destroy(msg);
	return 0;
}

/* The A-leg dialog, answering the caller's INVITE from now on. */
int b2b_a_leg_create(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip,
		     const char *a_tag)
{
	int rc = 0;

	mem_long_begin();   /* the dialog lives as long as the call: worker/mem.c */
	call->a_leg = nta_leg_tcreate(call->b2b->agent, b2b_on_a_request,
				      (nta_leg_magic_t *)call,
				      SIPTAG_CALL_ID(sip->sip_call_id),
				      SIPTAG_FROM(sip->sip_to),    /* local: the callee side */
				      SIPTAG_TO(sip->sip_from),    /* remote: the caller */
				      TAG_END());
	call->a_addr = b2b_addr_for_source(call->b2b, irq);
	if (call->a_leg == NULL || nta_leg_tag(call->a_leg, a_tag) == NULL ||
	    b2b_a_leg_nat(call, irq, sip) < 0 || b2b_a_leg_stream(call, irq, sip) < 0)
		rc = -ENOMEM;
	else
		nta_leg_server_route(call->a_leg, sip->sip_record_route, sip->sip_contact);
	mem_long_end();
	if (rc < 0)
		return rc;
	nta_incoming_bind(irq, b2b_on_a_irq, (nta_incoming_magic_t *)call);
	nta_incoming_tag(irq, nta_leg_get_tag(call->a_leg));
	call->a_irq = irq;
	return 0;
}
