/*
 * b2b_stream — an in-dialog request that arrives on a connection held by a
 * worker that does not own its call, relayed to the owner.
 *
 * Design note.  A connection belongs to the worker that accepted it
 * (docs/architecture.md, "Connections: TCP and TLS"), and Sofia reads it
 * itself: worker/dgram.c, which sends every datagram to the worker that owns
 * its call, never sees what arrives on a connection.  A peer that closed its
 * connection (or lost it with a crashed worker) and opens a new one to the
 * public port lands on whichever worker the kernel picks; that worker's NTA
 * finds no dialog and gives the request to the default leg (b2b_on_request),
 * which used to answer 481 while the call went on elsewhere.
 *
 * The relay (b2b_stream_relay, called first by b2b_on_request).  Such a
 * request is looked up like a datagram: our To tag names the owner
 * (NODE-WORKER-..., b2b_make_tag), else the Call-ID in the call table does.
 * When another worker owns it, this worker stays in the path as a stateful
 * proxy, the pattern of Sofia's own test proxy (tests/test_proxy.c): a copy
 * of the request (Max-Forwards one less) goes out as a client transaction
 * to the owner's own UDP port, NTA puts our Via on top, the owner's dgram.c
 * keeps it (the To tag names the owner) and its dialog takes it as if from
 * the peer; each answer comes back to our own port, loses our Via and is
 * sent on the server transaction, so on the peer's connection.
 *   - Why stateful, not nta_msg_tsend with a Via of our own: NTA then
 *     retransmits the UDP hop, matches the answers by our branch, gives us
 *     408/503 to answer when the owner is silent or gone (restarting), and
 *     absorbs the peer's retransmissions.
 *   - The ACK of a relayed 2xx is no transaction: it reaches the relayed
 *     INVITE's server transaction here (NTA as a UA matches it by tags and
 *     CSeq, whatever connection it came on), or the default leg when that is
 *     gone, and is forwarded statelessly either way.
 *   - Why UDP to the owner: every worker has its own UDP port whatever the
 *     transports, the owner's dgram.c already routes what reaches it, and
 *     between two processes on one host nothing is lost that NTA's
 *     retransmission does not cover (NTATAG_UDP_MTU is 65535: no switch to
 *     TCP for a large request).
 * Not relayed: a request no worker owns (481 as before), one owned by this
 * worker (its dialog is gone: 481), a CANCEL (it must reach the INVITE's
 * server transaction, which matches by the Via of the INVITE; it comes on
 * the INVITE's connection, which is the owner's), and a request without a
 * To tag (a new call stays where its connection is).
 *
 * The owner's side (b2b_stream_caller_moved, at each in-dialog request of
 * the caller).  b2b_a_leg_stream routes the A-leg of a TCP caller to the
 * connection its INVITE came on.  Once the caller's request comes through
 * another worker (the top Via is another worker's own port: always, as the
 * owner may handle the relayed datagram before it sees the old
 * connection's end), or the old connection is closed (Sofia drops it from
 * its primary's set: tport_by_name no longer finds it), the caller has come
 * back on another one, and requests we send to it go to its Contact from
 * then on (its remote
 * target, RFC 3261 12.2), as for a call taken over after a crash
 * (b2b_adopt.c), instead of to the old connection's address, where NTA
 * would dial a port nobody listens on.  A caller that keeps its first
 * connection open and follows our Contact on a second one (sipp,
 * tests/e2e/tcp_basic.sh) keeps the route: its first connection is still
 * the way to it, through a NAT too.  Not built: requests back through the
 * worker that holds the caller's new connection.  That worker would have to
 * keep the connection per call and tell our requests from the peer's (its
 * dgram.c hands a request with the caller's To tag to the call's owner
 * again); a route to a new connection of our own would need the primary
 * that accepted it (b2b_leg_ident sends routed requests from the public
 * port's primary, and Sofia reuses that primary's connections only).  A
 * caller that takes no connection at its Contact loses those requests; the
 * callee's BYE is still answered and the call ends with one CDR.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"

/* One relayed request: the peer's server transaction here and our copy to
 * the owner. */
struct b2b_stream_relay {
	b2b_t *b2b;
	nta_incoming_t *irq;
	nta_outgoing_t *orq;
	unsigned owner;
	char url[96];               /* the owner's own UDP port, NTA's route_url */
};

/* ------------------------------------------------------------ the owner */

/* Our tag "NODE-WORKER-RANDOM" (b2b_make_tag) names worker *out: 0, or
 * -ENOENT for a tag we did not make. */
static int b2b_stream_tag_worker(const b2b_t *b2b, const char *tag, unsigned *out)
{
	size_t n = strlen(b2b->cfg->node_id);
	char *end;
	unsigned long w;

	if (tag == NULL || strncmp(tag, b2b->cfg->node_id, n) != 0 || tag[n] != '-' ||
	    tag[n + 1] < '0' || tag[n + 1] > '9')
		return -ENOENT;
	w = strtoul(tag + n + 1, &end, 10);
	if (*end != '-' || w >= (unsigned long)b2b->cfg->workers)
		return -ENOENT;
	*out = (unsigned)w;
	return 0;
}

/* The worker that owns this request's call, as worker/dgram.c decides for
 * a datagram (rules 1 and 2): 0 with *out, or -ENOENT. */
static int b2b_stream_owner(const b2b_t *b2b, sip_t const *sip, unsigned *out)
{
	struct shm_call rec;
	uint32_t slot;

	if (b2b_stream_tag_worker(b2b, sip->sip_to->a_tag, out) == 0)
		return 0;
	if (sip->sip_call_id && sip->sip_call_id->i_id &&
	    shm_call_find(b2b->shm, sip->sip_call_id->i_id, &slot, &rec) == 0 &&
	    rec.worker < b2b->cfg->workers) {
		*out = rec.worker;
		return 0;
	}
	return -ENOENT;
}

/* Did the request come in on a connection (TCP, TLS)? */
static int b2b_stream_on_connection(b2b_t *b2b, nta_incoming_t *irq)
{
	tport_t *tp = nta_incoming_transport(b2b->agent, irq, NULL);
	int stream = tp && tport_is_stream(tp);

	tport_unref(tp);
	return stream;
}

/* Where the owner's own UDP port is: our first listen address (loopback
 * when it is a wildcard), its port. */
static void b2b_stream_owner_url(const b2b_t *b2b, unsigned owner, char *buf, size_t size)
{
	const char *host = b2b->cfg->listen[0];
	int v6 = strchr(host, ':') != NULL;

	if (strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	snprintf(buf, size, "sip:%s%s%s:%d;transport=udp", v6 ? "[" : "", host, v6 ? "]" : "",
		 b2b->cfg->worker_port_base + (int)owner);
}

/* ------------------------------------------------------------ relaying */

/* A copy of `req` for the owner, Max-Forwards one less: NULL when it may
 * go no further (*status 483) or there is no memory (*status 500). */
static msg_t *b2b_stream_copy(msg_t *req, int *status)
{
	msg_t *msg = msg_dup(req);
	sip_t *sip = msg ? sip_object(msg) : NULL;

	*status = 500;
	if (sip == NULL) {
		msg_destroy(msg);
		return NULL;
	}
	if (sip->sip_max_forwards) {
		if (sip->sip_max_forwards->mf_count == 0) {
			*status = 483;
			msg_destroy(msg);
			return NULL;
		}
		sip->sip_max_forwards->mf_count--;
		msg_fragment_clear(sip->sip_max_forwards->mf_common);
	}
	return msg;
}

/* An ACK (of a relayed 2xx) to the owner, statelessly: NTA keeps nothing. */
static void b2b_stream_send_ack(b2b_t *b2b, msg_t *ack, const char *url)
{
	int status;
	msg_t *msg = b2b_stream_copy(ack, &status);
	nta_outgoing_t *orq;

	if (msg == NULL)
		return;
	/* mcreate takes the message, even when it fails. */
	orq = nta_outgoing_mcreate(b2b->agent, NULL, NULL, URL_STRING_MAKE(url), msg,
				   TPTAG_IDENT(B2B_IDENT_OWN), NTATAG_STATELESS(1), TAG_END());
	if (orq)
		nta_outgoing_destroy(orq);
}

static void b2b_stream_free(struct b2b_stream_relay *r)
{
	if (r->orq)
		nta_outgoing_destroy(r->orq);
	if (r->irq)
		nta_incoming_destroy(r->irq);
	free(r);
}

/* NTA calls this for the ACK of our relayed 2xx (the INVITE's server
 * transaction matched it), a CANCEL, or with sip NULL when it is over. */
static int b2b_stream_on_irq(nta_incoming_magic_t *magic, nta_incoming_t *irq,
			     sip_t const *sip)
{
	struct b2b_stream_relay *r = (struct b2b_stream_relay *)magic;
	msg_t *ack;

	if (sip && sip->sip_request->rq_method != sip_method_ack)
		return 0;
	if (sip && (ack = nta_incoming_getrequest_ackcancel(irq)) != NULL) {
		b2b_stream_send_ack(r->b2b, ack, r->url);
		msg_destroy(ack);
	}
	if (r->orq == NULL) {
		b2b_stream_free(r);
		return 0;
	}
	r->irq = NULL;   /* r is freed with the owner's final answer */
	nta_incoming_destroy(irq);
	return 0;
}

/* The owner's answers, back on the peer's connection without our Via. */
static int b2b_stream_on_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				sip_t const *sip)
{
	struct b2b_stream_relay *r = (struct b2b_stream_relay *)magic;
	int status = nta_outgoing_status(orq);
	int invite_2xx = status >= 200 && status < 300 &&
			 nta_outgoing_method(orq) == sip_method_invite;
	msg_t *resp;

	if (r->irq == NULL) {
		/* The peer's transaction is over: nothing to answer. */
	} else if (sip && status > 100) {
		resp = nta_outgoing_getresponse(orq);
		sip_via_remove(resp, sip_object(resp));
		nta_incoming_mreply(r->irq, resp);
	} else if (sip == NULL) {
		/* No answer (408) or the owner's port is gone (503). */
		nta_incoming_treply(r->irq, status >= 300 ? status : 500, NULL, TAG_END());
	}
	if (status < 200)
		return 0;
	nta_outgoing_destroy(orq);
	r->orq = NULL;
	if (invite_2xx && r->irq)
		return 0;   /* the peer's ACK comes to b2b_stream_on_irq */
	b2b_stream_free(r);
	return 0;
}

/* Relay the peer's request to worker `owner`: 0 (the request is answered
 * one way or another), or -ENOMEM (not taken). */
static int b2b_stream_forward(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip,
			      unsigned owner)
{
	struct b2b_stream_relay *r = calloc(1, sizeof *r);
	msg_t *req = nta_incoming_getrequest(irq);
	msg_t *msg = NULL;
	int status = 500;

	if (r == NULL || req == NULL) {
		msg_destroy(req);
		free(r);
		return -ENOMEM;
	}
	r->b2b = b2b;
	r->owner = owner;
	b2b_stream_owner_url(b2b, owner, r->url, sizeof r->url);
	if (sip->sip_request->rq_method == sip_method_ack) {
		b2b_stream_send_ack(b2b, req, r->url);
		msg_destroy(req);
		free(r);
		nta_incoming_destroy(irq);
		return 0;
	}
	msg = b2b_stream_copy(req, &status);
	msg_destroy(req);
	r->irq = irq;
	if (msg)
		r->orq = nta_outgoing_mcreate(b2b->agent, b2b_stream_on_answer,
					      (nta_outgoing_magic_t *)r, URL_STRING_MAKE(r->url),
					      msg, TPTAG_IDENT(B2B_IDENT_OWN), TAG_END());
	if (r->orq == NULL) {
		nta_incoming_treply(irq, status, NULL, TAG_END());
		b2b_stream_free(r);
		return 0;
	}
	nta_incoming_bind(irq, b2b_stream_on_irq, (nta_incoming_magic_t *)r);
	log_debug("%s of call %s on a connection: relayed to worker %u",
		  sip->sip_request->rq_method_name, sip->sip_call_id->i_id, owner);
	return 0;
}

int b2b_stream_relay(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	sip_method_t method = sip->sip_request->rq_method;
	unsigned owner;

	if (sip->sip_to == NULL || sip->sip_to->a_tag == NULL || method == sip_method_cancel ||
	    sip->sip_call_id == NULL || sip->sip_via == NULL ||
	    !b2b_stream_on_connection(b2b, irq))
		return -ENOENT;
	if (b2b_stream_owner(b2b, sip, &owner) < 0 || owner == b2b->worker)
		return -ENOENT;
	return b2b_stream_forward(b2b, irq, sip, owner);
}

/* ------------------------------------------------------------ the owner's side */

/* Is the connection the A-leg's route names (the INVITE's source, sent
 * to from the public port's primary: b2b_leg_ident) still open?  Sofia
 * removes a connection from its primary's set when it closes (EOF, error,
 * idle): tport_by_name then finds only the primary. */
static int b2b_stream_route_open(struct b2b_call *call)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	url_t *url = url_hdup(home, URL_STRING_MAKE(call->a_nat->url)->us_url);
	tport_t *tps = nta_agent_tports(call->b2b->agent);
	tport_t *tp = NULL;

	if (url && url->url_host && url->url_port && tps) {
		/* The ident as b2b_leg_ident gives it, without asking it (it asks
		 * b2b_leg_route, which asks us). */
		const char *ident = call->a_stream_ident ? call->a_stream_ident
				    : call->b2b->addr[call->a_addr].ident_public;
		tp_name_t tpn = { .tpn_proto = call->a_stream == SHM_TP_TLS ? "tls" : "tcp",
				  .tpn_canon = url->url_host, .tpn_host = url->url_host,
				  .tpn_port = url->url_port, .tpn_ident = ident };

		tp = tport_by_name(tps, &tpn);
	}
	su_home_deinit(home);
	return tp != NULL && tport_is_secondary(tp);
}

/* Is this Via one of another worker's own ports (a relay of ours)? */
static int b2b_stream_via_sibling(const b2b_t *b2b, sip_via_t const *v)
{
	return v != NULL && v->v_host != NULL && v->v_port != NULL && v->v_next != NULL &&
	       b2b_sibling_at(b2b, v->v_host, atoi(v->v_port));
}

int b2b_stream_caller_route(struct b2b_call *call)
{
	if (!call->a_stream || call->a_nat == NULL || b2b_stream_route_open(call))
		return call->a_nat != NULL;
	log_info("call %s: the caller's latest connection is closed: requests to it go to "
		 "its Contact from now on", call->id);
	free(call->a_nat);
	call->a_nat = NULL;
	return 0;
}

void b2b_stream_caller_moved(struct b2b_call *call, sip_t const *sip)
{
	if (!call->a_stream || call->a_nat == NULL)
		return;
	if (!b2b_stream_via_sibling(call->b2b, sip->sip_via) && b2b_stream_route_open(call))
		return;
	log_info("call %s: the caller came back on another connection than its INVITE's: "
		 "requests to it go to its Contact from now on", call->id);
	free(call->a_nat);
	call->a_nat = NULL;
}
