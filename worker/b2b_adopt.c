/*
 * b2b_adopt — taking over the calls of a dead predecessor.
 *
 * Design note.  A restarted worker binds its predecessor's own port again,
 * so every later message of the predecessor's calls comes to it, and it
 * finds those calls in the shared call table (b2b_adopt_calls, at start).
 *
 * Answered calls go on.  The table holds both legs' dialogs (Call-IDs, tags,
 * URIs, remote targets, CSeqs): recreating the two NTA legs is enough for a
 * BYE (or a re-INVITE) from either side to be relayed as before
 * (b2b_relay.c); an adopted call starts CONFIRMED.  Unless its caller had
 * not ACKed our 2xx yet: the INVITE record (below) is still beside its
 * slot then, the 2xx most likely died queued in the process, and the
 * callee, whose ACK waits for the caller's, sends its 2xx again.  That 2xx
 * is a stray response here (b2b_adopt_on_stray): the caller's INVITE is
 * answered again with it, from the record, and the set-up finishes as it
 * would have (b2b_adopt_answer_again).  Without it the call would stay up
 * with a caller that never heard the answer, billed until
 * max_call_duration.  A caller that hangs up meanwhile (CANCEL) hangs up
 * on what was still ringing to it: b2b_adopt_on_cancel.  A call still
 * waiting when the takeover's linger is over asks its caller whether it
 * has the call: b2b_adopt_probe_waiting.  A leg whose peer was
 * on a connection (TCP) lost it with the process: the peer reconnects, to
 * our own port or to the public port (b2b_stream.c relays it here from the
 * worker that accepts it), and requests to it go to its Contact
 * (b2b_adopt_stream).
 *
 * Calls not answered yet are ended cleanly ("endings").  Their INVITE
 * transactions died with the process, but while a call is not answered its
 * owner keeps the text of its INVITEs beside its slot (shm_invite_put, from
 * b2b_publish_invite_a/_b; b2b_adopt_encode writes the text): the request
 * line and the headers that identify the transaction.  From it:
 *   - the caller's INVITE becomes a server transaction again
 *     (nta_incoming_create) and gets a real final response, retransmitted
 *     by NTA until the caller's ACK: 487 when the caller had cancelled,
 *     else 500 with Retry-After.  A CANCEL arriving later matches that
 *     transaction and gets 200 (RFC 3261 9.2), wherever it landed:
 *     worker/dgram.c hands it to us by the call table while the call is in
 *     it;
 *   - every B-leg INVITE gets a CANCEL with its Request-URI, Call-ID, From,
 *     To, CSeq number and Via branch (RFC 3261 9.1).  The callee's final
 *     answer to the INVITE matches no transaction here any more: NTA hands
 *     such stray responses to b2b_adopt_on_stray(), which ACKs a non-2xx
 *     (the INVITE's branch, 17.1.1.3) and ACKs a 2xx then releases it with
 *     BYE (the callee answered too late), so no 2xx is left unacknowledged.
 * The call keeps its slot (state ENDING) until the caller's ACK and every
 * B-leg is settled, or at most B2B_ADOPT_LINGER_MS, and then ends with one
 * CDR that says what was sent to the caller, ended by the system (or
 * CANCELLED by the caller).
 *
 * The caller's ACK of our final answer carries our To tag, which names this
 * worker: worker/dgram.c hands it to us whichever worker's socket of the
 * public port the kernel gave it to.
 * A call whose INVITEs were not recorded (they did not fit, or the owner
 * died writing them) can only be removed, with a CDR that says no code was
 * sent (sip_code 0).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "worker/b2b_int.h"
#include "worker/mem.h"

/* Our CSeq on a taken-over leg: above anything the dead process sent. */
#define B2B_ADOPT_CSEQ_GAP 10000u
/* How long endings wait for their callees: a CANCEL's own timeout (64*T1)
 * and a little more. */
#define B2B_ADOPT_LINGER_MS 34000
/* What the caller of an unanswered call is told when nobody cancelled. */
#define B2B_ADOPT_RETRY_AFTER "5"
#define B2B_ADOPT_BRANCHES (SHM_INVITE_MAX - 1)

/* One B-leg INVITE of a call being ended. */
struct b2b_adopt_branch {
	struct b2b_ending *ending;
	msg_t *invite;               /* rebuilt from the record: what its CANCEL repeats */
	nta_outgoing_t *cancel;      /* our CANCEL, until its final answer */
	nta_outgoing_t *bye;         /* our BYE after a late 2xx, until its answer */
	int cancel_final;            /* the CANCEL's final status, 0 before */
	int final;                   /* the INVITE's final status, 0 before */
	int settled;
};

/* An unanswered call of the predecessor, being ended. */
struct b2b_ending {
	struct b2b_takeover *takeover;
	struct b2b_call *call;       /* NULL once its CDR is written */
	nta_incoming_t *a_irq;       /* the caller's INVITE answered again, until its ACK */
	struct b2b_adopt_branch br[B2B_ADOPT_BRANCHES];
	unsigned n_br;
	unsigned open;               /* branches not settled */
};

/* Everything the takeover keeps until its endings are over (b2b->takeover). */
struct b2b_takeover {
	b2b_t *b2b;
	su_timer_t *timer;           /* B2B_ADOPT_LINGER_MS: give up on silent callees */
	struct b2b_ending *ending;
	unsigned n, open;            /* endings, and those whose call is not ended */
	unsigned unconfirmed;        /* answered calls not ACKed by their callers, at takeover */
	struct b2b_adopt_branch **index;  /* by B-leg Call-ID (open addressing) */
	unsigned index_size;         /* a power of two, at least twice the branches */
};

/* ------------------------------------------------------------ the record's text */

static int b2b_adopt_put(char *buf, size_t size, size_t *n, msg_header_t const *h)
{
	issize_t m;

	if (h == NULL)
		return -EINVAL;
	m = msg_header_e(buf + *n, (isize_t)(size - *n), h, 0);
	if (m < 0 || (size_t)m >= size - *n)
		return -E2BIG;
	*n += (size_t)m;
	return 0;
}

/*
 * The text a successor needs of one INVITE: its request line, its Vias (our
 * own with `branch` for a B-leg INVITE, whose Via NTA may add later), From,
 * To, Call-ID and CSeq, CRLF-terminated as on the wire.  0 with *len, or
 * -E2BIG / -EINVAL.
 */
int b2b_adopt_encode(b2b_t *b2b, char *buf, size_t size, sip_t const *sip,
		     const char *branch, size_t *len)
{
	url_t const *own;
	size_t n = 0;
	int ret;

	if (sip == NULL || sip->sip_request == NULL)
		return -EINVAL;
	/* Our address of the Request-URI's family: where the INVITE left from. */
	own = b2b->addr[b2b_addr_for_host(b2b, sip->sip_request->rq_url->url_host)].contact->m_url;
	ret = b2b_adopt_put(buf, size, &n, (msg_header_t const *)sip->sip_request);
	if (ret == 0 && branch) {
		int m = snprintf(buf + n, size - n, "Via: SIP/2.0/UDP %s%s%s;branch=%s\r\n",
				 own->url_host, own->url_port ? ":" : "",
				 own->url_port ? own->url_port : "", branch);

		ret = m < 0 || (size_t)m >= size - n ? -E2BIG : 0;
		n += ret == 0 ? (size_t)m : 0;
	}
	for (sip_via_t const *v = branch ? NULL : sip->sip_via; ret == 0 && v; v = v->v_next)
		ret = b2b_adopt_put(buf, size, &n, (msg_header_t const *)v);
	if (ret == 0)
		ret = b2b_adopt_put(buf, size, &n, (msg_header_t const *)sip->sip_from);
	if (ret == 0)
		ret = b2b_adopt_put(buf, size, &n, (msg_header_t const *)sip->sip_to);
	if (ret == 0)
		ret = b2b_adopt_put(buf, size, &n, (msg_header_t const *)sip->sip_call_id);
	if (ret == 0)
		ret = b2b_adopt_put(buf, size, &n, (msg_header_t const *)sip->sip_cseq);
	if (ret == 0)
		*len = n;
	return ret;
}

/* One element of the record back as a message; NULL if it is not a
 * complete INVITE. */
static msg_t *b2b_adopt_parse(const struct shm_invite *inv, unsigned idx)
{
	char buf[SHM_INVITE_BYTES + 32];
	const char *text;
	size_t len;
	msg_t *msg;
	sip_t *sip;
	int n;

	if (shm_invite_get(inv, idx, &text, &len) < 0)
		return NULL;
	n = snprintf(buf, sizeof buf, "%sContent-Length: 0\r\n\r\n", text);
	if (n < 0 || (size_t)n >= sizeof buf)
		return NULL;
	msg = msg_make(sip_default_mclass(), 0, buf, n);
	sip = msg ? sip_object(msg) : NULL;
	if (sip == NULL || sip->sip_error || !sip->sip_request || !sip->sip_via ||
	    !sip->sip_via->v_branch || !sip->sip_from || !sip->sip_to ||
	    !sip->sip_call_id || !sip->sip_cseq ||
	    sip->sip_request->rq_method != sip_method_invite) {
		msg_destroy(msg);
		return NULL;
	}
	return msg;
}

/* ------------------------------------------------------------ requests to the callee */

/* How a request to a callee is sent (b2b_adopt_send). */
struct b2b_adopt_how {
	const char *branch;          /* its Via branch, NULL: a new one */
	const char *ack_branch;      /* an ACK: the branch of what it acknowledges */
	nta_response_f *cb;          /* NULL: stateless, NTA keeps no transaction */
	void *magic;
};

/*
 * A request of a B-leg whose INVITE is `inv`: its Call-ID and From, `to`,
 * CSeq `seq` of `method`, to `ruri` through `route`, from our own port.
 */
static nta_outgoing_t *b2b_adopt_send(b2b_t *b2b, sip_t const *inv, sip_method_t method,
				      const char *name, url_t const *ruri, sip_to_t const *to,
				      uint32_t seq, sip_route_t const *route,
				      const struct b2b_adopt_how *how)
{
	msg_t *msg = nta_msg_create(b2b->agent, 0);
	sip_t *sip = msg ? sip_object(msg) : NULL;
	su_home_t *home = msg ? msg_home(msg) : NULL;
	sip_request_t *rq;

	if (sip == NULL)
		return NULL;
	rq = sip_request_create(home, method, name, (url_string_t const *)ruri, NULL);
	if (rq == NULL || msg_header_insert(msg, (msg_pub_t *)sip, (msg_header_t *)rq) < 0 ||
	    sip_add_tl(msg, sip, SIPTAG_FROM(inv->sip_from), SIPTAG_TO(to),
		       SIPTAG_CALL_ID(inv->sip_call_id),
		       SIPTAG_CSEQ(sip_cseq_create(home, seq, method, name)),
		       SIPTAG_ROUTE(route), SIPTAG_MAX_FORWARDS_STR("70"), TAG_END()) < 0) {
		msg_destroy(msg);
		return NULL;
	}
	/* mcreate takes the message, even when it fails; from our address of
	 * the family of its next hop (dual stack). */
	return nta_outgoing_mcreate(b2b->agent, how->cb, (nta_outgoing_magic_t *)how->magic,
				    NULL, msg, TPTAG_IDENT(b2b->addr[b2b_addr_for_host(b2b,
					    route ? route->r_url->url_host :
					    ruri ? ruri->url_host : NULL)].ident_own),
				    TAG_IF(how->branch, NTATAG_BRANCH_KEY(how->branch)),
				    TAG_IF(how->ack_branch, NTATAG_ACK_BRANCH(how->ack_branch)),
				    TAG_IF(how->cb == NULL, NTATAG_STATELESS(1)),
				    TAG_END());
}

static void b2b_ending_check(struct b2b_ending *e);

/* A branch is settled when nothing more is expected of it: its INVITE got
 * its final answer (ACKed, and BYE answered after a 2xx), or its CANCEL was
 * refused or timed out (the callee has no such INVITE any more). */
static void b2b_adopt_branch_check(struct b2b_adopt_branch *br)
{
	if (br->settled || br->cancel || br->bye)
		return;
	if (br->final == 0 && (br->cancel_final == 0 || br->cancel_final == 200))
		return;
	br->settled = 1;
	br->ending->open--;
	b2b_ending_check(br->ending);
}

static int b2b_adopt_on_cancel_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				      sip_t const *sip)
{
	struct b2b_adopt_branch *br = (struct b2b_adopt_branch *)magic;
	int status = nta_outgoing_status(orq);

	(void)sip;
	if (status < 200)
		return 0;
	br->cancel_final = status;
	nta_outgoing_destroy(orq);
	br->cancel = NULL;
	b2b_adopt_branch_check(br);
	return 0;
}

static int b2b_adopt_on_bye_answer(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				   sip_t const *sip)
{
	struct b2b_adopt_branch *br = (struct b2b_adopt_branch *)magic;

	(void)sip;
	if (nta_outgoing_status(orq) < 200)
		return 0;
	nta_outgoing_destroy(orq);
	br->bye = NULL;
	b2b_adopt_branch_check(br);
	return 0;
}

static void b2b_adopt_cancel(b2b_t *b2b, struct b2b_adopt_branch *br)
{
	sip_t const *inv = sip_object(br->invite);
	struct b2b_adopt_how how = { .branch = inv->sip_via->v_branch,
				     .cb = b2b_adopt_on_cancel_answer, .magic = br };

	br->cancel = b2b_adopt_send(b2b, inv, SIP_METHOD_CANCEL, inv->sip_request->rq_url,
				    inv->sip_to, inv->sip_cseq->cs_seq, NULL, &how);
	if (br->cancel == NULL)
		br->cancel_final = 503;   /* nothing to wait for */
}

/* The callee's final answer to a B-leg INVITE we no longer have a
 * transaction for: ACK it; a 2xx is also released with BYE, once. */
static void b2b_adopt_on_final(b2b_t *b2b, struct b2b_adopt_branch *br, sip_t const *resp)
{
	sip_t const *inv = sip_object(br->invite);
	int status = resp->sip_status->st_status;
	sip_route_t *route = NULL;
	url_t const *target;
	nta_outgoing_t *ack;
	su_home_t home[1] = { SU_HOME_INIT(home) };

	if (status >= 300) {
		/* RFC 3261 17.1.1.3: the INVITE's branch and Request-URI. */
		struct b2b_adopt_how how = { .branch = inv->sip_via->v_branch,
					     .ack_branch = inv->sip_via->v_branch };

		ack = b2b_adopt_send(b2b, inv, SIP_METHOD_ACK, inv->sip_request->rq_url,
				     resp->sip_to, inv->sip_cseq->cs_seq, NULL, &how);
	} else {
		/* RFC 3261 13.2.2.4: a new transaction in the dialog the 2xx made. */
		struct b2b_adopt_how how = { .ack_branch = resp->sip_via->v_branch };
		struct b2b_adopt_how bye = { .cb = b2b_adopt_on_bye_answer, .magic = br };

		target = resp->sip_contact ? resp->sip_contact->m_url : resp->sip_to->a_url;
		route = sip_route_reverse(home, resp->sip_record_route);
		ack = b2b_adopt_send(b2b, inv, SIP_METHOD_ACK, target, resp->sip_to,
				     inv->sip_cseq->cs_seq, route, &how);
		if (br->final == 0) {
			br->bye = b2b_adopt_send(b2b, inv, SIP_METHOD_BYE, target, resp->sip_to,
						 inv->sip_cseq->cs_seq + 1, route, &bye);
			log_info("call %s: a callee answered after the takeover: ACK and BYE",
				 br->ending->call ? br->ending->call->id : "(ended)");
		}
	}
	if (ack)
		nta_outgoing_destroy(ack);
	su_home_deinit(home);
	if (br->final == 0)
		br->final = status;
	b2b_adopt_branch_check(br);
}

/* ------------------------------------------------------------ the B-leg index */

static uint32_t b2b_adopt_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void b2b_adopt_index_add(struct b2b_takeover *t, struct b2b_adopt_branch *br)
{
	const char *id = sip_object(br->invite)->sip_call_id->i_id;
	uint32_t i = b2b_adopt_hash(id) & (t->index_size - 1);

	while (t->index[i])
		i = (i + 1) & (t->index_size - 1);
	t->index[i] = br;
}

static struct b2b_adopt_branch *b2b_adopt_index_find(struct b2b_takeover *t, sip_t const *sip)
{
	uint32_t i = b2b_adopt_hash(sip->sip_call_id->i_id) & (t->index_size - 1);

	for (; t->index[i]; i = (i + 1) & (t->index_size - 1)) {
		sip_t const *inv = sip_object(t->index[i]->invite);

		if (strcmp(inv->sip_call_id->i_id, sip->sip_call_id->i_id) == 0 &&
		    inv->sip_cseq->cs_seq == sip->sip_cseq->cs_seq)
			return t->index[i];
	}
	return NULL;
}

static void b2b_adopt_on_2xx(b2b_t *b2b, sip_t const *sip);
static void b2b_adopt_probe_waiting(b2b_t *b2b);

/*
 * nta_message_f: a message no transaction or leg wanted.  A final answer to
 * an INVITE of one of our endings is ACKed (and released with BYE if it is
 * a 2xx); a 2xx to the INVITE of a call taken over answered goes to
 * b2b_adopt_on_2xx; anything else is dropped, as NTA would have done.
 */
int b2b_adopt_on_stray(nta_agent_magic_t *magic, nta_agent_t *agent, msg_t *msg, sip_t *sip)
{
	b2b_t *b2b = (b2b_t *)magic;
	struct b2b_adopt_branch *br = NULL;

	(void)agent;
	if (sip && sip->sip_status && sip->sip_status->st_status >= 200 &&
	    sip->sip_cseq && sip->sip_cseq->cs_method == sip_method_invite &&
	    sip->sip_call_id && sip->sip_to && sip->sip_via) {
		if (b2b->takeover)
			br = b2b_adopt_index_find(b2b->takeover, sip);
		if (br)
			b2b_adopt_on_final(b2b, br, sip);
		else if (sip->sip_status->st_status < 300)
			b2b_adopt_on_2xx(b2b, sip);
	}
	msg_destroy(msg);
	return 0;
}

/* ------------------------------------------------------------ endings */

/* The CDR, once the caller ACKed our answer and every B-leg is settled (or
 * given up): the call is over.  Until then it stays in the table, so that a
 * CANCEL reaching another worker is still handed over to us, not 481. */
static void b2b_ending_check(struct b2b_ending *e)
{
	if (e->open > 0 || e->a_irq || e->call == NULL)
		return;
	b2b_call_end(e->call);
	e->call = NULL;
	e->takeover->open--;
}

/* One of the agent's two transports (B2B_IDENT_PUBLIC or B2B_IDENT_OWN). */
static tport_t *b2b_adopt_tport(b2b_t *b2b, const char *ident)
{
	tport_t *tp = nta_agent_tports(b2b->agent);

	for (tp = tp ? tport_primaries(tp) : NULL; tp; tp = tport_next(tp))
		if (tport_name(tp)->tpn_ident && strcmp(tport_name(tp)->tpn_ident, ident) == 0)
			return tp;
	return NULL;
}

/* NTA calls this for the caller's ACK of our final answer (a CANCEL it
 * answers itself), or with sip NULL when the ACK never came (Timer H). */
static int b2b_adopt_on_a_irq(nta_incoming_magic_t *magic, nta_incoming_t *irq,
			      sip_t const *sip)
{
	struct b2b_ending *e = (struct b2b_ending *)magic;

	if (sip && sip->sip_request->rq_method != sip_method_ack)
		return 0;
	nta_incoming_destroy(irq);
	e->a_irq = NULL;
	b2b_ending_check(e);
	return 0;
}

/* The caller's INVITE as a server transaction again, answered `status`
 * from the public port, where it came in; NTA retransmits until the ACK. */
static int b2b_adopt_answer_caller(b2b_t *b2b, struct b2b_ending *e,
				   const struct shm_invite *inv, const struct shm_call *rec,
				   int status)
{
	msg_t *msg = b2b_adopt_parse(inv, 0);
	sip_via_t const *v = msg ? sip_object(msg)->sip_via : NULL;
	tport_t *tp;
	nta_incoming_t *irq;

	if (msg == NULL)
		return -EINVAL;
	/* The public port of the caller's family (dual stack: its top Via). */
	tp = b2b_adopt_tport(b2b, b2b->addr[b2b_addr_for_host(b2b, v->v_received ? v->v_received
							       : v->v_host)].ident_public);
	irq = nta_incoming_create(b2b->agent, NULL, msg, sip_object(msg),
				  TAG_IF(tp, NTATAG_TPORT(tp)), TAG_END());
	if (irq == NULL)
		return -ENOMEM;
	nta_incoming_bind(irq, b2b_adopt_on_a_irq, (nta_incoming_magic_t *)e);
	nta_incoming_tag(irq, rec->a.local_tag);   /* the tag of our 18x, if any went out */
	e->call->final_code = b2b_count_code(b2b, status);
	nta_incoming_treply(irq, status, NULL,
			    TAG_IF(status != 487, SIPTAG_RETRY_AFTER_STR(B2B_ADOPT_RETRY_AFTER)),
			    TAG_END());
	e->a_irq = irq;
	return 0;
}

/* Rebuild and CANCEL the B-leg INVITEs of the record; how many. */
static unsigned b2b_adopt_cancel_branches(b2b_t *b2b, struct b2b_ending *e,
					  const struct shm_invite *inv)
{
	for (unsigned i = 1; i < inv->n && e->n_br < B2B_ADOPT_BRANCHES; i++) {
		struct b2b_adopt_branch *br = &e->br[e->n_br];

		br->invite = b2b_adopt_parse(inv, i);
		if (br->invite == NULL)
			continue;
		br->ending = e;
		b2b_adopt_index_add(e->takeover, br);
		e->n_br++;
		e->open++;
		b2b_adopt_cancel(b2b, br);
	}
	return e->n_br;
}

/* An unanswered call of the predecessor: tell the caller, CANCEL the
 * callees; the call ends when they are settled (b2b_ending_check). */
static void b2b_adopt_end_unanswered(struct b2b_takeover *t, uint32_t slot,
				     const struct shm_call *rec, struct b2b_call *call)
{
	static struct shm_invite inv;   /* 2 KB: one takeover at a time, at start-up */
	struct b2b_ending *e = &t->ending[t->n++];
	/* The caller already had its final answer (its CANCEL's 487, or 408
	 * at invite_timeout) and only B-legs were finishing; else, not answered
	 * and ENDING: its CANCEL was being carried out. */
	int given_up = rec->a_final >= 300;
	int cancelled = given_up ? rec->a_final == 487 : rec->state == SHM_CALL_ENDING;
	int status = given_up ? rec->a_final : cancelled ? 487 : 500;

	e->takeover = t;
	e->call = call;
	t->open++;
	call->state = B2B_CANCELLING;
	call->cancelled = cancelled;
	call->hangup_by = cancelled ? CDR_PARTY_CALLER : CDR_PARTY_SYSTEM;
	if (shm_invite_read(t->b2b->shm, slot, &inv) < 0) {
		log_warn("call %s: its INVITEs were not recorded: its caller and callees "
			 "cannot be told it ended", call->id);
	} else {
		if (b2b_adopt_answer_caller(t->b2b, e, &inv, rec, status) < 0)
			log_warn("call %s: cannot answer the caller's INVITE again", call->id);
		if (given_up && e->a_irq) {
			/* Sent again in case it was lost with the process; the
			 * caller most likely ACKed it already: do not wait for it
			 * (NTA still absorbs an ACK that comes). */
			nta_incoming_destroy(e->a_irq);
			e->a_irq = NULL;
		}
		if (b2b_adopt_cancel_branches(t->b2b, e, &inv) + 1 < inv.n)
			log_warn("call %s: some B-leg INVITEs could not be rebuilt", call->id);
	}
	for (unsigned i = 0; i < e->n_br; i++)
		b2b_adopt_branch_check(&e->br[i]);   /* a CANCEL that could not be sent */
	b2b_ending_check(e);
}

/* Free what the takeover holds; endings still open end now (their CDR). */
void b2b_adopt_destroy(b2b_t *b2b)
{
	struct b2b_takeover *t = b2b->takeover;

	if (t == NULL)
		return;
	b2b->takeover = NULL;
	for (unsigned i = 0; i < t->n; i++) {
		struct b2b_ending *e = &t->ending[i];

		if (e->call)
			b2b_call_end(e->call);
		if (e->a_irq)
			nta_incoming_destroy(e->a_irq);
		for (unsigned j = 0; j < e->n_br; j++) {
			if (e->br[j].cancel)
				nta_outgoing_destroy(e->br[j].cancel);
			if (e->br[j].bye)
				nta_outgoing_destroy(e->br[j].bye);
			msg_destroy(e->br[j].invite);
		}
	}
	if (t->timer)
		su_timer_destroy(t->timer);
	free(t->index);
	free(t->ending);
	free(t);
}

static void b2b_adopt_on_linger(su_root_magic_t *magic, su_timer_t *timer,
				su_timer_arg_t *arg)
{
	b2b_t *b2b = (b2b_t *)arg;

	(void)magic;
	(void)timer;
	if (b2b->takeover && b2b->takeover->open > 0)
		log_warn("%u calls taken over were still waiting for their callees: ended",
			 b2b->takeover->open);
	if (b2b->takeover && b2b->takeover->unconfirmed > 0)
		b2b_adopt_probe_waiting(b2b);
	b2b_adopt_destroy(b2b);
}

static int b2b_takeover_create(b2b_t *b2b, unsigned calls)
{
	struct b2b_takeover *t = calloc(1, sizeof *t);

	if (t == NULL)
		return -ENOMEM;
	t->b2b = b2b;
	t->index_size = 1;
	while (t->index_size < 2u * calls * B2B_ADOPT_BRANCHES)
		t->index_size <<= 1;
	t->ending = calloc(calls, sizeof *t->ending);
	t->index = calloc(t->index_size, sizeof *t->index);
	t->timer = su_timer_create(su_root_task(b2b->root), B2B_ADOPT_LINGER_MS);
	b2b->takeover = t;
	if (t->ending == NULL || t->index == NULL || t->timer == NULL ||
	    su_timer_set(t->timer, b2b_adopt_on_linger, (su_timer_arg_t *)b2b) < 0) {
		b2b_adopt_destroy(b2b);
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------ answered calls */

/*
 * The leg of `l` again (a successor's takeover, or a call waking from rest,
 * b2b_rest.c).  The route set, when the slot has one, is already in use
 * order: it is preloaded (SIPTAG_ROUTE), and nta_leg_server_route() then
 * sets the target and keeps that route (a client reroute would reverse or
 * drop it), for a leg of either side.  *addr: our address for its peer
 * (the family of its remote target, dual stack).
 */
nta_leg_t *b2b_leg_rebuild(b2b_t *b2b, nta_request_f *cb, void *magic,
			   const struct shm_leg *l, uint32_t local_cseq, unsigned *addr)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	sip_contact_t *target;
	sip_route_t *route = NULL;
	sip_cseq_t cseq[1];
	nta_leg_t *leg;
	char from[SHM_URI_MAX + SHM_TAG_MAX + 8], to[SHM_URI_MAX + SHM_TAG_MAX + 8];
	char uri[SHM_URI_MAX + 2];

	/* In angle brackets: the URI's parameters (;transport=tcp) stay the
	 * URI's, not the Contact header's. */
	snprintf(uri, sizeof uri, "<%s>", l->remote_target);
	target = sip_contact_make(home, uri);
	if (l->route_set[0])
		route = sip_route_make(home, l->route_set);
	snprintf(from, sizeof from, "<%s>;tag=%s", l->local_uri, l->local_tag);
	snprintf(to, sizeof to, "<%s>;tag=%s", l->remote_uri, l->remote_tag);
	sip_cseq_init(cseq);
	cseq->cs_seq = local_cseq;
	cseq->cs_method = sip_method_invite;
	cseq->cs_method_name = "INVITE";
	mem_long_begin();   /* the dialog lives as long as the call: worker/mem.c */
	leg = nta_leg_tcreate(b2b->agent, cb, (nta_leg_magic_t *)magic,
			      SIPTAG_CALL_ID_STR(l->call_id), SIPTAG_FROM_STR(from),
			      SIPTAG_TO_STR(to), SIPTAG_CSEQ(cseq),
			      TAG_IF(route != NULL, SIPTAG_ROUTE(route)), TAG_END());
	*addr = target ? b2b_addr_for_host(b2b, target->m_url->url_host) : 0;
	if (leg && target)
		nta_leg_server_route(leg, NULL, target);
	mem_long_end();
	su_home_deinit(home);
	return leg;
}

/*
 * A caller that reached the predecessor over TCP (or TLS, the same way): its
 * connection died with
 * that process, so requests to it go to its Contact (the leg's remote
 * target, no route: call->a_nat stays NULL), where a caller that listens
 * takes a new connection; and our Contact on its leg still says
 * ;transport=tcp, on the same own port, which this process listens on
 * again.  The caller's own requests come back on a new connection, to this
 * port (our Contact) or to the public port, where the worker that accepts
 * it relays them here (b2b_stream.c).
 */
static void b2b_adopt_stream(b2b_t *b2b, struct b2b_call *call, const struct shm_call *rec)
{
	const struct b2b_addr *a = &b2b->addr[call->a_addr];

	if (!(rec->a.transport == SHM_TP_TCP && a->contact_tcp) &&
	    !(rec->a.transport == SHM_TP_TLS && a->contact_tls))
		return;
	call->a_stream = rec->a.transport;
	log_info("call %s: its caller was on a connection of the previous process: "
		 "reached at its Contact %s from now on", call->id, rec->a.remote_target);
}

/* A pool entry for the call a dead predecessor left in `slot`. */
static struct b2b_call *b2b_call_from_table(b2b_t *b2b, uint32_t slot,
					    const struct shm_call *rec)
{
	struct b2b_call *call = b2b_call_alloc(b2b);

	if (call != NULL) {
		call->slot = slot;
		b2b_call_set_id(call, rec->id);
	}
	return call;
}

/* An answered call whose legs cannot be rebuilt (or no room for it): only
 * its CDR. */
static void b2b_adopt_fail(struct b2b_call *call)
{
	call->final_code = 200;
	call->hangup_by = CDR_PARTY_SYSTEM;
	b2b_call_end(call);
}

static int b2b_adopt(b2b_t *b2b, struct b2b_call *call, const struct shm_call *rec)
{
	struct b2b_branch *br;
	uint32_t a_cseq = (uint32_t)((sip_now() >> 1) & 0x7ffffff) + B2B_ADOPT_CSEQ_GAP;

	if (!rec->b.remote_tag[0] || !rec->a.remote_target[0] || !rec->b.remote_target[0])
		return -EINVAL;
	call->state = B2B_CONFIRMED;
	call->answer_ms = rec->answer_ms;
	call->final_code = 200;
	call->held_by = (enum shm_party)rec->held_by;
	b2b_str_copy(call->answered_by, sizeof call->answered_by, rec->b.remote_target);

	call->active_ms = mono_ms();
	call->a_leg = b2b_leg_rebuild(b2b, b2b_on_a_request, call, &rec->a, a_cseq,
				      &call->a_addr);
	b2b_adopt_stream(b2b, call, rec);
	br = b2b_branch_at(call, 0);
	br->call = call;
	br->leg = b2b_leg_rebuild(b2b, b2b_on_b_request, br, &rec->b,
				  rec->b.local_cseq + B2B_ADOPT_CSEQ_GAP, &br->addr);
	br->cseq = rec->b.local_cseq;   /* the INVITE's, until the call rests */
	br->acked = 1;
	br->final = 200;
	call->n_br = 1;
	call->winner = 0;
	if (call->a_leg == NULL || br->leg == NULL)
		return -ENOMEM;
	return 0;
}

/* ------------------------------------------------------------ answered, not ACKed */

/*
 * An answered call just taken over from `slot`: if its INVITE record is
 * still there, its caller had not ACKed our 2xx (b2b_publish_state gives
 * the record back at that ACK).  The call waits, ANSWERED and with its
 * B-leg not ACKed, for the callee's 2xx to come again
 * (b2b_adopt_answer_again).  1 when it waits, else 0.
 */
static int b2b_adopt_unconfirmed(b2b_t *b2b, struct b2b_call *call, uint32_t slot)
{
	static struct shm_invite inv;   /* 2 KB: one takeover at a time, at start-up */

	if (shm_invite_read(b2b->shm, slot, &inv) < 0)
		return 0;   /* the caller ACKed: the call is confirmed */
	call->a_unacked = b2b_adopt_parse(&inv, 0);
	if (call->a_unacked == NULL)
		return 0;
	call->state = B2B_ANSWERED;
	b2b_winner(call)->acked = 0;
	log_warn("call %s: answered, but its caller's ACK never reached the previous "
		 "process: the caller is answered again with the callee's next 2xx", call->id);
	return 1;
}

/*
 * The caller's INVITE of a call waiting in b2b_adopt_unconfirmed as a server
 * transaction again: from the record, on the public port it came to, with
 * the A-leg's tag as ours.  It takes call->a_unacked (nta_incoming_create
 * takes the message).  NULL when NTA cannot.
 */
static nta_incoming_t *b2b_adopt_revive_invite(b2b_t *b2b, struct b2b_call *call)
{
	msg_t *inv = call->a_unacked;
	sip_via_t const *v = sip_object(inv)->sip_via;
	nta_incoming_t *irq;
	tport_t *tp;

	call->a_unacked = NULL;
	tp = b2b_adopt_tport(b2b, b2b->addr[b2b_addr_for_host(b2b, v->v_received ? v->v_received
							       : v->v_host)].ident_public);
	irq = nta_incoming_create(b2b->agent, NULL, inv, sip_object(inv),
				  TAG_IF(tp, NTATAG_TPORT(tp)), TAG_END());
	if (irq)
		nta_incoming_tag(irq, nta_leg_get_tag(call->a_leg));
	return irq;
}

/*
 * The callee's 2xx `resp` again, for a call waiting in b2b_adopt_unconfirmed:
 * the caller's INVITE becomes a server transaction again
 * (b2b_adopt_revive_invite) and gets the 2xx, with our Contact, the
 * INVITE's Record-Route (the record does not keep it; the slot has it as
 * the A-leg's route set) and the callee's SDP.  From here it is the set-up
 * of every call: NTA repeats the 2xx until the caller's ACK, which
 * b2b_on_a_irq turns into the callee's ACK and CONFIRMED, or releases the
 * call when no ACK comes (Timer H).  A caller that had our first 2xx after
 * all takes this one as its retransmission and ACKs it again (RFC 3261
 * 13.2.2.4).
 */
static void b2b_adopt_answer_again(b2b_t *b2b, struct b2b_call *call, sip_t const *resp)
{
	struct shm_call rec;
	nta_incoming_t *irq;

	if (shm_call_read(b2b->shm, call->slot, &rec) < 0) {
		msg_destroy(call->a_unacked);
		call->a_unacked = NULL;
		b2b_release_unacked(call, "its slot cannot be read to answer its caller again");
		return;
	}
	irq = b2b_adopt_revive_invite(b2b, call);
	if (irq == NULL) {
		b2b_release_unacked(call, "cannot answer its caller again");
		return;
	}
	nta_incoming_bind(irq, b2b_on_a_irq, (nta_incoming_magic_t *)call);
	call->a_irq = irq;
	b2b_publish_answer_again(call);
	nta_incoming_treply(irq, resp->sip_status->st_status, resp->sip_status->st_phrase,
			    SIPTAG_CONTACT(b2b_leg_contact(call, B2B_LEG_A)),
			    TAG_IF(rec.a.route_set[0], SIPTAG_RECORD_ROUTE_STR(rec.a.route_set)),
			    SIPTAG_CONTENT_TYPE(resp->sip_content_type),
			    SIPTAG_PAYLOAD(resp->sip_payload),
			    TAG_END());
	log_info("call %s: the callee's 2xx came again: its caller is answered again, "
		 "billed from now", call->id);
}

/* Is `cancel` the CANCEL of the INVITE `inv` (RFC 3261 9.2: the top Via's
 * branch, and the Call-ID, From tag and CSeq number it repeats)? */
static int b2b_adopt_cancels(sip_t const *inv, sip_t const *cancel)
{
	return inv->sip_via && cancel->sip_via && inv->sip_via->v_branch &&
	       cancel->sip_via->v_branch &&
	       su_casematch(inv->sip_via->v_branch, cancel->sip_via->v_branch) &&
	       inv->sip_from && cancel->sip_from && inv->sip_from->a_tag && cancel->sip_from->a_tag &&
	       strcmp(inv->sip_from->a_tag, cancel->sip_from->a_tag) == 0 &&
	       inv->sip_cseq && cancel->sip_cseq && inv->sip_cseq->cs_seq == cancel->sip_cseq->cs_seq;
}

/*
 * A CANCEL that matched no transaction (b2b_on_request).  If it is the
 * caller's for a call waiting in b2b_adopt_unconfirmed, the caller hangs up
 * before it heard the answer, which died with the previous process: to the
 * caller the call was still ringing.  So it is cancelled as a ringing call
 * is (RFC 3261 9.2): 200 for the CANCEL, then 487 for the INVITE, which
 * becomes a server transaction again for that (NTA repeats the 487 until
 * the caller's ACK).  The callee did answer: it gets its ACK and a BYE.
 * The CDR says CANCELLED by the caller, answered never, billed nothing.
 * Returns the status for the CANCEL: 200 when it was that (already sent,
 * before the 487), else 481 as for any CANCEL of an unknown INVITE.
 */
int b2b_adopt_on_cancel(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	nta_leg_t *leg;
	struct b2b_call *call;

	if (b2b->takeover == NULL || b2b->takeover->unconfirmed == 0 || sip->sip_call_id == NULL)
		return 481;
	leg = nta_leg_by_call_id(b2b->agent, sip->sip_call_id->i_id);
	call = leg ? (struct b2b_call *)nta_leg_magic(leg, b2b_on_a_request) : NULL;
	if (call == NULL || call->ended || call->a_unacked == NULL ||
	    !b2b_adopt_cancels(sip_object(call->a_unacked), sip))
		return 481;
	nta_incoming_treply(irq, SIP_200_OK, TAG_END());   /* before the 487 */
	call->a_irq = b2b_adopt_revive_invite(b2b, call);
	b2b_publish_not_answered(call);
	call->hangup_by = CDR_PARTY_CALLER;
	b2b_reply_a(call, SIP_487_REQUEST_CANCELLED);
	/* What b2b_reply_a sets, also when NTA could not revive the INVITE:
	 * the CDR's code and disposition. */
	call->final_code = 487;
	call->cancelled = 1;
	b2b_release_callee(call);
	log_info("call %s: taken over answered, but its caller cancelled: the callee is "
		 "released, the call is not billed", call->id);
	b2b_call_end(call);
	return 200;
}

/*
 * A 2xx to the INVITE of an answered call's B-leg that no transaction took
 * (b2b_adopt_on_stray): the callee repeats it because it has no ACK.  A
 * call taken over before its caller ACKed is answered again with it; any
 * other gets its ACK again, ours having been lost (with the previous
 * process, or after NTA let the ACK's transaction go): every 2xx gets an
 * ACK (RFC 3261 13.2.2.4).  The 2xx must belong to the dialog the call
 * has, not to another fork of the same INVITE.
 */
static void b2b_adopt_on_2xx(b2b_t *b2b, sip_t const *sip)
{
	nta_leg_t *leg = nta_leg_by_call_id(b2b->agent, sip->sip_call_id->i_id);
	struct b2b_branch *br = leg ? (struct b2b_branch *)nta_leg_magic(leg, b2b_on_b_request)
				    : NULL;
	struct b2b_call *call = br ? br->call : NULL;
	const char *rtag = br ? nta_leg_get_rtag(leg) : NULL;

	if (call == NULL || call->b2b == NULL || call->ended || br != b2b_winner(call) ||
	    sip->sip_cseq->cs_seq != br->cseq || rtag == NULL || sip->sip_to->a_tag == NULL ||
	    strcmp(rtag, sip->sip_to->a_tag) != 0)
		return;
	if (br->acked) {
		log_info("call %s: its callee repeats its 2xx: our ACK was lost, sent again",
			 call->id);
		b2b_ack_leg(call, br->leg, br->cseq, 1);
	} else if (call->a_unacked) {
		b2b_adopt_answer_again(b2b, call, sip);
	}
	/* else answered again already: NTA repeats our 2xx until the ACK */
}

/* Both parties have the call: it goes on CONFIRMED.  The callee gets an ACK
 * (again: it most likely had one, and absorbs a repeated ACK; if it had
 * not, and did not repeat its 2xx, this is the one it waits for). */
static void b2b_adopt_confirm(struct b2b_call *call)
{
	msg_destroy(call->a_unacked);
	call->a_unacked = NULL;
	b2b_ack_branch(b2b_winner(call));
	call->active_ms = mono_ms();
	b2b_publish_state(call, B2B_CONFIRMED);
}

/* The caller does not have the call (`status` to our OPTIONS): it never
 * heard the answer, and its INVITE has long timed out.  The callee, who
 * answered, gets its ACK and a BYE; the CDR says FAILED with no code sent
 * to the caller (sip_code 0), not answered, nothing billed. */
static void b2b_adopt_unheard(struct b2b_call *call, int status)
{
	log_warn("call %s: its caller does not have the call (%d to our OPTIONS): it never "
		 "heard the answer; the callee is released, the call is not billed",
		 call->id, status);
	msg_destroy(call->a_unacked);
	call->a_unacked = NULL;
	b2b_publish_not_answered(call);
	call->final_code = 0;
	call->hangup_by = CDR_PARTY_SYSTEM;
	b2b_release_callee(call);
	b2b_call_end(call);
}

/* nta_response_f: the caller's answer to b2b_adopt_probe_waiting's OPTIONS.
 * 481 (no such dialog) or 408 (no answer at all, also NTA's own timeout):
 * the caller does not have the call.  Any other final answer comes from
 * the dialog: it has. */
static int b2b_adopt_on_probe(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
			      sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;
	int status = nta_outgoing_status(orq);

	(void)sip;
	if (status < 200)
		return 0;
	nta_outgoing_destroy(orq);
	call->a_probe = NULL;
	if (call->ended || call->a_unacked == NULL)
		return 0;   /* answered again meanwhile (b2b_adopt_on_2xx), or over */
	if (status == 481 || status == 408) {
		b2b_adopt_unheard(call, status);
	} else {
		log_info("call %s: its caller has the call (%d to our OPTIONS): both parties had "
			 "their ACK, the call goes on", call->id, status);
		b2b_adopt_confirm(call);
	}
	return 0;
}

/*
 * The takeover's linger is over, and a call still waits: its callee sent
 * no 2xx again.  Either the callee had its ACK, which the previous process
 * sends only after the caller's (it died between that ACK and giving the
 * INVITE record back), and both parties are in the call; or the callee's
 * 2xx were lost, or it does not repeat them, and the caller never heard
 * the answer (its INVITE has timed out by now: Timer B, 64*T1).  Silence
 * cannot tell the two apart, the caller can: an OPTIONS in the dialog
 * (RFC 3261 12.2: a request in a dialog its UA does not have gets 481),
 * answered in b2b_adopt_on_probe.  Until then the call stays as it is.
 */
static void b2b_adopt_probe_waiting(b2b_t *b2b)
{
	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (call == NULL || call->b2b == NULL || call->ended || call->a_unacked == NULL ||
		    call->a_probe != NULL)
			continue;
		call->a_probe = nta_outgoing_tcreate(call->a_leg, b2b_adopt_on_probe,
						     (nta_outgoing_magic_t *)call,
						     b2b_leg_route(call->a_leg), SIP_METHOD_OPTIONS,
						     NULL, TPTAG_IDENT(b2b_leg_ident(call->a_leg)),
						     TAG_END());
		if (call->a_probe == NULL) {
			log_warn("call %s: no 2xx came again from its callee since the takeover, "
				 "and its caller cannot be asked: the call goes on", call->id);
			b2b_adopt_confirm(call);
			continue;
		}
		log_info("call %s: no 2xx came again from its callee since the takeover: asking "
			 "its caller (OPTIONS) whether it has the call", call->id);
	}
}

/* ------------------------------------------------------------ at start-up */

struct b2b_slots {
	uint16_t worker;
	uint32_t *slot;
	unsigned n, cap;
};

static int b2b_collect_slot(const struct shm_call *c, uint32_t slot, void *arg)
{
	struct b2b_slots *v = arg;

	if (c->worker != v->worker)
		return 0;
	if (v->n == v->cap) {
		uint32_t *grown = realloc(v->slot, (v->cap ? v->cap * 2 : 64) * sizeof *grown);

		if (grown == NULL)
			return -ENOMEM;
		v->slot = grown;
		v->cap = v->cap ? v->cap * 2 : 64;
	}
	v->slot[v->n++] = slot;
	return 0;
}

void b2b_adopt_calls(b2b_t *b2b)
{
	struct b2b_slots v = { .worker = (uint16_t)b2b->worker };
	unsigned torn, adopted = 0, ending = 0, lost = 0, ended = 0;
	struct shm_call rec;

	torn = b2b_unpublish_torn(b2b);
	shm_call_foreach(b2b->shm, b2b_collect_slot, &v);
	if (v.n > 0 && b2b_takeover_create(b2b, v.n) < 0)
		log_error("no memory to end the unanswered calls of the previous process");
	for (unsigned i = 0; i < v.n; i++) {
		struct b2b_call *call;
		int answered;

		if (shm_call_read(b2b->shm, v.slot[i], &rec) < 0)
			continue;
		if (rec.state == SHM_CALL_ENDED) {
			/* Over, its CDR in our spool (replayed by the writer). */
			b2b_unpublish_slot(b2b, v.slot[i]);
			ended++;
			continue;
		}
		call = b2b_call_from_table(b2b, v.slot[i], &rec);
		if (call == NULL) {
			b2b_unpublish_slot(b2b, v.slot[i]);   /* no room: no CDR either */
			lost++;
			continue;
		}
		answered = rec.answer_ms != 0 || rec.state == SHM_CALL_ANSWERED ||
			   rec.state == SHM_CALL_HELD;
		if (answered && b2b_adopt(b2b, call, &rec) == 0) {
			adopted++;
			if (b2b->takeover && b2b_adopt_unconfirmed(b2b, call, v.slot[i]))
				b2b->takeover->unconfirmed++;
		} else if (answered || b2b->takeover == NULL) {
			b2b_adopt_fail(call);
			lost++;
		} else {
			b2b_adopt_end_unanswered(b2b->takeover, v.slot[i], &rec, call);
			ending++;
		}
	}
	free(v.slot);
	if (adopted || ending || torn || lost || ended)
		log_warn("took over %u answered calls of the previous worker %u process; "
			 "%u unanswered ones are being ended (caller answered, callees "
			 "CANCELled), %u could not be taken over, %u unreadable slots freed, "
			 "%u ended calls whose CDR was being stored freed",
			 adopted, b2b->worker, ending, lost, torn, ended);
	if (b2b->takeover && b2b->takeover->unconfirmed > 0)
		log_warn("%u answered calls taken over wait for their callee's 2xx to answer "
			 "their caller again", b2b->takeover->unconfirmed);
	if (b2b->takeover && b2b->takeover->open == 0 && b2b->takeover->unconfirmed == 0)
		b2b_adopt_destroy(b2b);
}
