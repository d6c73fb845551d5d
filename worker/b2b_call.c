/*
 * b2b_call — a call's life cycle, and the one place that writes the shared
 * call table.  See b2b_int.h for the map of the b2b files.
 *
 * Design note.  A call comes from a pool sized by call_capacity
 * (b2b_call_alloc; b2b_pool.h: reserved for the capacity, resident as calls
 * use it), so accepting a call allocates nothing of ours; Sofia allocates
 * its own messages.  Its states (enum b2b_state), and what moves
 * a call:
 *
 *   ROUTING     INVITE accepted, 100 sent; authentication or the location
 *               lookup (Redis, asynchronous) is in flight  (b2b_policy.c)
 *   TRYING      INVITE sent on the B-leg(s)                  (b2b_branch.c)
 *   RINGING     a 18x from B was relayed to A                (b2b_branch.c)
 *   ANSWERED    B's 2xx was relayed to A; waiting for A's ACK to ACK B
 *   CONFIRMED   both legs acknowledged: the call is up       (b2b_relay.c)
 *   CANCELLING  the caller has its final answer without a B-leg's (it
 *               cancelled: 487; or invite_timeout: 408): pending B-legs are
 *               CANCELled or left to time out, and the call ends when the
 *               last one is over                         (b2b_call_give_up)
 *   ENDING      a BYE is being relayed to the other leg      (b2b_relay.c)
 *   FORWARDING  the callee did not take it; a new B-leg to its forward
 *               target                                       (b2b_policy.c)
 *
 * and a call ends (b2b_call_end) when its last transaction is over: one
 * CDR, its max_calls counts released, its slot removed.  An asynchronous
 * request (Redis) holds the call's memory (b2b_call_hold) until it answers,
 * so a callback never touches a reused pool entry.
 *
 * Every write to the shared call table (shm_call_insert, write_begin/end,
 * remove) is a b2b_publish_* / b2b_unpublish_* function of this file, so
 * what operators and other processes see of a call (show calls, the CANCEL
 * hand-over, a successor's takeover) is decided in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tag.h>

#include "b2bua/hosts.h"
#include "b2bua/log.h"
#include "worker/b2b_int.h"
#include "worker/cdr.h"
#include "worker/registrar.h"

/* ------------------------------------------------------------ the call table mirror */

static enum shm_call_state b2b_shm_state(enum b2b_state s)
{
	switch (s) {
	case B2B_ROUTING:
	case B2B_TRYING:     return SHM_CALL_TRYING;
	case B2B_RINGING:    return SHM_CALL_RINGING;
	case B2B_ANSWERED:
	case B2B_CONFIRMED:  return SHM_CALL_ANSWERED;
	case B2B_CANCELLING:
	case B2B_ENDING:     return SHM_CALL_ENDING;
	case B2B_FORWARDING: return SHM_CALL_FORWARDING;
	}
	return SHM_CALL_ENDING;
}

static void b2b_keep_record(struct b2b_call *call);

/* Move the call to `state`; the table shows the coarser shm state, and when
 * it first rang and was answered. */
void b2b_publish_state(struct b2b_call *call, enum b2b_state state)
{
	struct shm_call *c;

	call->state = state;
	c = shm_call_write_begin(call->b2b->shm, call->slot);
	c->state = (uint8_t)b2b_shm_state(state);
	if (state == B2B_RINGING && c->ring_ms == 0)
		c->ring_ms = shm_now_ms();
	if (state == B2B_ANSWERED)
		c->answer_ms = shm_now_ms();
	shm_call_write_end(call->b2b->shm, call->slot);
	if (state == B2B_ANSWERED) {
		b2b_call_setup_done(call);
		b2b_keep_record(call);
	}
	if (state == B2B_CONFIRMED) {
		/* The caller ACKed our 2xx: a successor continues the call and
		 * needs its INVITEs no more.  Until then it does: the caller's
		 * INVITE, to answer it again should this process die before
		 * the caller has our 2xx (b2b_adopt.c). */
		shm_invite_drop(call->b2b->shm, call->slot);
	}
}

/* A call taken over answered but not ACKed by its caller is answered to
 * the caller again now (b2b_adopt.c): most likely its first 2xx was lost
 * with the previous process, so the caller is connected from now on, and
 * its CDR bills from now (the table's answer_ms). */
void b2b_publish_answer_again(struct b2b_call *call)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->answer_ms = shm_now_ms();
	call->answer_ms = c->answer_ms;
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* The caller of a call taken over answered never heard that answer: it
 * cancelled (b2b_adopt_on_cancel), or does not have the call
 * (b2b_adopt_unheard).  The table forgets the answer, and the CDR neither
 * bills it nor names who answered. */
void b2b_publish_not_answered(struct b2b_call *call)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->answer_ms = 0;
	call->answer_ms = 0;
	call->answered_by[0] = '\0';
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* The caller has its final answer `status`; B-legs are still finishing
 * (b2b_call_give_up).  A successor that takes the call over must not wait
 * for the caller's ACK of it again, and writes this code in the CDR. */
static void b2b_publish_given_up(struct b2b_call *call, int status)
{
	struct shm_call *c;

	call->state = B2B_CANCELLING;
	c = shm_call_write_begin(call->b2b->shm, call->slot);
	c->state = (uint8_t)b2b_shm_state(B2B_CANCELLING);
	c->a_final = (uint16_t)status;
	shm_call_write_end(call->b2b->shm, call->slot);
}

unsigned b2b_via_transport(sip_via_t const *via)
{
	if (via && via->v_protocol && su_casematch(via->v_protocol, sip_transport_tcp))
		return SHM_TP_TCP;
	if (via && via->v_protocol && su_casematch(via->v_protocol, sip_transport_tls))
		return SHM_TP_TLS;
	return SHM_TP_UDP;
}

/* Fill the shared-table record of a new call from its INVITE. */
void b2b_record_init(b2b_t *b2b, struct shm_call *c, sip_t const *sip, const char *a_tag)
{
	memset(c, 0, sizeof *c);
	b2b_make_id(b2b, c->id, sizeof c->id);
	c->worker = (uint16_t)b2b->worker;
	c->state = SHM_CALL_TRYING;
	c->start_ms = shm_now_ms();
	b2b_url_copy(c->caller, sizeof c->caller, sip->sip_from->a_url);
	b2b_url_copy(c->callee, sizeof c->callee, sip->sip_request->rq_url);

	b2b_str_copy(c->a.call_id, sizeof c->a.call_id, sip->sip_call_id->i_id);
	b2b_str_copy(c->a.local_tag, sizeof c->a.local_tag, a_tag);
	b2b_str_copy(c->a.remote_tag, sizeof c->a.remote_tag, sip->sip_from->a_tag);
	b2b_url_copy(c->a.local_uri, sizeof c->a.local_uri, sip->sip_to->a_url);
	b2b_url_copy(c->a.remote_uri, sizeof c->a.remote_uri, sip->sip_from->a_url);
	if (sip->sip_contact)
		b2b_url_copy(c->a.remote_target, sizeof c->a.remote_target,
			     sip->sip_contact->m_url);
	/* Its Record-Route as received is the route set in use order (12.1.1);
	 * one that does not fit is left out, as a successor then goes without. */
	b2b_route_copy(c->a.route_set, sizeof c->a.route_set, sip->sip_record_route, 0);
	c->a.remote_cseq = sip->sip_cseq->cs_seq;
	c->a.transport = SHM_TP_UDP;
	if (sip->sip_via && sip->sip_via->v_protocol &&
	    su_casematch(sip->sip_via->v_protocol, sip_transport_tcp))
		c->a.transport = SHM_TP_TCP;
	else if (sip->sip_via && sip->sip_via->v_protocol &&
		 su_casematch(sip->sip_via->v_protocol, sip_transport_tls))
		c->a.transport = SHM_TP_TLS;
	b2b_url_copy(c->b.local_uri, sizeof c->b.local_uri, sip->sip_from->a_url);
	b2b_url_copy(c->b.remote_uri, sizeof c->b.remote_uri, sip->sip_to->a_url);
	c->b.transport = SHM_TP_UDP;
}

/* A new call enters the table (record from b2b_record_init); its slot is
 * the call's from now on.  0, or a negative errno when the table is full. */
int b2b_publish_call(struct b2b_call *call, const struct shm_call *rec)
{
	call->start_ms = rec->start_ms;
	return shm_call_insert(call->b2b->shm, rec, &call->slot);
}

/* The first B-leg attempt, until one answers (b2b_publish_b_answered). */
void b2b_publish_b_leg(struct b2b_call *call, const char *call_id, const char *tag,
		       url_t const *ruri, uint32_t cseq, unsigned transport)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->b.transport = (uint8_t)transport;
	b2b_str_copy(c->b.call_id, sizeof c->b.call_id, call_id);
	b2b_str_copy(c->b.local_tag, sizeof c->b.local_tag, tag);
	b2b_url_copy(c->b.remote_target, sizeof c->b.remote_target, ruri);
	c->b.local_cseq = cseq;
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* Record the B-leg that answered: its dialog replaces the first attempt's. */
void b2b_publish_b_answered(struct b2b_call *call, struct b2b_branch *br, sip_t const *sip)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	b2b_str_copy(c->b.call_id, sizeof c->b.call_id, sip->sip_call_id->i_id);
	b2b_str_copy(c->b.local_tag, sizeof c->b.local_tag, nta_leg_get_tag(br->leg));
	b2b_str_copy(c->b.remote_tag, sizeof c->b.remote_tag, sip->sip_to->a_tag);
	if (sip->sip_contact)
		b2b_url_copy(c->b.remote_target, sizeof c->b.remote_target,
			     sip->sip_contact->m_url);
	/* A response's Record-Route reversed is the route set (12.1.2). */
	b2b_route_copy(c->b.route_set, sizeof c->b.route_set, sip->sip_record_route, 1);
	c->b.local_cseq = br->cseq;
	c->b.transport = (uint8_t)b2b_via_transport(sip->sip_via);   /* our Via, as sent */
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* The call comes to rest (b2b_rest.c): what changed on its legs since the
 * answer, so that the slot alone rebuilds them (local CSeq, the targets of
 * target refreshes, the route sets as the legs use them). */
void b2b_publish_rest(struct b2b_call *call, const struct b2b_rest_leg *a,
		      const struct b2b_rest_leg *b)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->a.local_cseq = a->local_cseq;
	b2b_str_copy(c->a.remote_target, sizeof c->a.remote_target, a->remote_target);
	b2b_str_copy(c->a.route_set, sizeof c->a.route_set, a->route_set);
	c->b.local_cseq = b->local_cseq;
	b2b_str_copy(c->b.remote_target, sizeof c->b.remote_target, b->remote_target);
	b2b_str_copy(c->b.route_set, sizeof c->b.route_set, b->route_set);
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* The caller's INVITE, for a successor to answer it should we die before
 * the call is answered (b2b_adopt.c); a copy of a few hundred bytes. */
void b2b_publish_invite_a(struct b2b_call *call, sip_t const *sip)
{
	char text[SHM_INVITE_BYTES];
	size_t len;

	if (b2b_adopt_encode(call->b2b, text, sizeof text, sip, NULL, &len) < 0 ||
	    shm_invite_put(call->b2b->shm, call->slot, 0, text, len) < 0)
		log_warn("call %s: its INVITE does not fit the call table: a crash of this "
			 "worker would leave its caller without an answer", call->id);
}

/* A B-leg INVITE just sent (the call's n_br-th), for a successor to CANCEL it. */
void b2b_publish_invite_b(struct b2b_call *call, struct b2b_branch *br)
{
	char text[SHM_INVITE_BYTES];
	msg_t *msg = nta_outgoing_getrequest(br->orq);
	size_t len;
	int ret = -EINVAL;

	if (msg)
		ret = b2b_adopt_encode(call->b2b, text, sizeof text, sip_object(msg),
				       nta_outgoing_branch(br->orq), &len);
	msg_destroy(msg);   /* the reference getrequest took */
	if (ret == 0)
		ret = shm_invite_put(call->b2b->shm, call->slot, call->n_br + 1, text, len);
	if (ret < 0)
		log_warn("call %s: its B-leg INVITE does not fit the call table: a crash of "
			 "this worker would leave that callee without a CANCEL", call->id);
}

/* Hold or resume (b2b_relay.c decided which): who holds, HELD or ANSWERED. */
void b2b_publish_hold(struct b2b_call *call)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->held_by = (uint8_t)call->held_by;
	c->state = call->held_by ? SHM_CALL_HELD : SHM_CALL_ANSWERED;
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* The call moves to FORWARDING towards `target` (the CDR's forwarded_to). */
void b2b_publish_forwarding(struct b2b_call *call, const char *target)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->state = SHM_CALL_FORWARDING;
	b2b_str_copy(c->forward_target, sizeof c->forward_target, target);
	shm_call_write_end(call->b2b->shm, call->slot);
	call->state = B2B_FORWARDING;
}

/* A slot no pool entry stands for (a predecessor's call we had no room
 * to take over): free it without a CDR. */
void b2b_unpublish_slot(b2b_t *b2b, uint32_t slot)
{
	shm_call_remove(b2b->shm, slot);
}

/* Free this worker's slots that a dead predecessor left half-written; how
 * many. */
unsigned b2b_unpublish_torn(b2b_t *b2b)
{
	return shm_call_reap_torn(b2b->shm, (uint16_t)b2b->worker);
}

/* ------------------------------------------------------------ call life cycle */

/* The call's id, as its shared-table record holds it. */
void b2b_call_set_id(struct b2b_call *call, const char *id)
{
	snprintf(call->id, sizeof call->id, "%s", id);
}

struct b2b_call *b2b_call_alloc(b2b_t *b2b)
{
	struct b2b_call *call = b2b_pool_get(b2b->pool);   /* zero-filled */

	if (call == NULL)
		return NULL;
	call->b2b = b2b;
	call->winner = -1;
	b2b->active++;
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_ACTIVE, 1);
	return call;
}

void b2b_call_free(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;

	b2b->active--;
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_ACTIVE, -1);
	b2b_forwarding_free(call);
	msg_destroy(call->a_unacked);
	call->a_unacked = NULL;
	free(call->br_more);
	call->br_more = NULL;
	free(call->counted);
	call->counted = NULL;
	call->n_counted = 0;
	call->b2b = NULL;   /* what walkers of the pool skip */
	b2b_pool_put(b2b->pool, call);
}

/* A new call is no longer in setup (answered or ended): overload control
 * counts calls in setup (overload_setup_calls, b2b_overload.c). */
void b2b_call_setup_done(struct b2b_call *call)
{
	if (!call->in_setup)
		return;
	call->in_setup = 0;
	call->b2b->setup--;
}

/* An asynchronous request (Redis) will call back with this call: keep its
 * memory until then, even if the call ends meanwhile. */
void b2b_call_hold(struct b2b_call *call)
{
	call->holds++;
}

/* The asynchronous answer arrived.  Returns 1 when the call is still alive
 * and the answer should be used, 0 when it ended meanwhile. */
int b2b_call_release(struct b2b_call *call)
{
	call->holds--;
	if (!call->ended)
		return 1;
	if (call->holds == 0)
		b2b_call_free(call);
	return 0;
}

/*
 * The call's CDR is durable (in Redis or synced in the spool): only now may
 * its max_calls counts and its slot go, so that a crash or a hung Redis
 * cannot leave a call with neither a slot (a successor ends what it finds
 * there, with a CDR of the same id) nor a stored CDR.
 */
static void b2b_on_cdr_durable(void *arg, int err)
{
	struct b2b_call *call = arg;

	if (err < 0)
		log_error("call %s: CDR not synced to disk (%s): a power cut may lose it",
			  call->id, strerror(-err));
	for (unsigned i = 0; i < call->n_counted; i++)
		registrar_call_end(call->b2b->reg, call->counted[i], call->id);
	shm_call_remove(call->b2b->shm, call->slot);
	call->cdr_durable = 1;
	b2b_call_release(call);
}

/* What a call's CDR holds before it ends, from its shared-table record. */
static void b2b_cdr_so_far(const struct b2b_call *call, const struct shm_call *rec,
			   struct cdr *c)
{
	memset(c, 0, sizeof *c);
	b2b_str_copy(c->id, sizeof c->id, call->id);
	b2b_str_copy(c->a_call_id, sizeof c->a_call_id, rec->a.call_id);
	b2b_str_copy(c->b_call_id, sizeof c->b_call_id, rec->b.call_id);
	b2b_str_copy(c->caller, sizeof c->caller, rec->caller);
	b2b_str_copy(c->callee, sizeof c->callee, rec->callee);
	b2b_str_copy(c->answered_by, sizeof c->answered_by, call->answered_by);
	b2b_str_copy(c->forwarded_to, sizeof c->forwarded_to, rec->forward_target);
	c->start_ms = rec->start_ms;
	c->ring_ms = rec->ring_ms;
	c->answer_ms = rec->answer_ms;
	c->sip_code = call->final_code;
	c->disposition = CDR_ANSWERED;
	b2b_str_copy(c->host, sizeof c->host, call->b2b->cfg->node_id);
	c->worker = call->b2b->worker;
	b2b_str_copy(c->a_transport, sizeof c->a_transport, shm_transport_name(rec->a.transport));
	if (rec->b.call_id[0])   /* a B-leg was tried */
		b2b_str_copy(c->b_transport, sizeof c->b_transport,
			     shm_transport_name(rec->b.transport));
}

/*
 * The call is answered: its record goes to Redis (b2bua/hosts.h), so that
 * if this host is lost another one writes its CDR and frees its max_calls
 * entries.  Fire and forget, one command; a record that cannot be sent
 * (Redis down) only loses that protection, and says so.
 */
static void b2b_keep_record(struct b2b_call *call)
{
	struct cdr_record r;
	struct shm_call rec;

	if (call->b2b->cdr == NULL || call->no_cdr
	    || shm_call_read(call->b2b->shm, call->slot, &rec) < 0)
		return;
	memset(&r, 0, sizeof r);
	b2b_cdr_so_far(call, &rec, &r.cdr);
	r.epoch = hosts_epoch();
	for (unsigned i = 0; i < call->n_counted && r.n_names < CDR_RECORD_NAMES; i++)
		b2b_str_copy(r.names[r.n_names++], sizeof r.names[0], call->counted[i]);
	if (cdr_writer_keep(call->b2b->cdr, &r) < 0)
		log_debug("call %s: no record kept in Redis: not closed if this host is lost",
			  call->id);
}

/* The call's one CDR, from its shared-table record and what only we know.
 * Returns 1 when b2b_on_cdr_durable follows, 0 when there is nothing to
 * wait for (no CDR for this call, or it could not even be spooled). */
static int b2b_write_cdr(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;
	struct shm_call rec;
	struct cdr c;

	if (b2b->cdr == NULL || call->no_cdr ||
	    shm_call_read(b2b->shm, call->slot, &rec) < 0)
		return 0;
	b2b_cdr_so_far(call, &rec, &c);
	c.end_ms = call->end_ms ? call->end_ms : shm_now_ms();
	c.billable_ms = rec.answer_ms ? c.end_ms - rec.answer_ms : 0;
	c.sip_code = call->final_code;
	if (call->refused) {
		c.disposition = CDR_REFUSED;
		b2b_str_copy(c.cause, sizeof c.cause, call->refused);
	} else if (call->killed)
		c.disposition = CDR_KILLED;
	else if (rec.answer_ms)
		c.disposition = CDR_ANSWERED;
	else
		c.disposition = cdr_disposition_of(call->final_code, call->cancelled);
	c.hangup_by = call->hangup_by;
	if (cdr_write_notify(b2b->cdr, &c, b2b_on_cdr_durable, call) == 0)
		return 1;
	log_error("call %s: CDR could not be written or spooled", c.id);
	return 0;
}

/* The call is over and its CDR is in the spool: a successor that finds the
 * slot in this state only frees it (b2b_adopt.c): the record is replayed
 * from the spool, and nobody is to be told anything any more. */
static void b2b_publish_ended(struct b2b_call *call)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->state = SHM_CALL_ENDED;
	shm_call_write_end(call->b2b->shm, call->slot);
}

/* Release everything the call holds.  Destroyed NTA objects make no more
 * callbacks; transactions linger inside NTA for retransmissions.  The slot
 * shows ENDED until the CDR is durable (b2b_on_cdr_durable), and the
 * call's memory is held until then.  ENDED is published only after the CDR
 * went to the spool: a crash in between leaves the old state, and the
 * successor's CDR for it has the same id (stored once). */
void b2b_call_end(struct b2b_call *call)
{
	if (call->ended)
		return;
	call->ended = 1;
	b2b_rest_forget(call);
	b2b_call_setup_done(call);
	b2b_invite_timer_stop(call);
	b2b_publish_state(call, B2B_ENDING);
	b2b_call_hold(call);   /* until the CDR is durable */
	b2b_call_hold(call);   /* until this function returns (the CDR may be durable at once) */
	if (b2b_write_cdr(call)) {
		if (!call->cdr_durable)   /* durable at once after a flush (stop) */
			b2b_publish_ended(call);
	} else
		b2b_on_cdr_durable(call, 0);
	if (call->a_irq)
		nta_incoming_destroy(call->a_irq);
	for (unsigned i = 0; i < call->n_br; i++)
		b2b_branch_drop(b2b_branch_at(call, i));
	b2b_relay_done(call);
	b2b_session_release(call);
	if (call->na_timer)
		su_timer_destroy(call->na_timer);
	call->na_timer = NULL;
	if (call->bye_irq)
		nta_incoming_destroy(call->bye_irq);
	if (call->bye_orq)
		nta_outgoing_destroy(call->bye_orq);
	if (call->a_probe)
		nta_outgoing_destroy(call->a_probe);
	call->a_probe = NULL;
	if (call->a_leg)
		nta_leg_destroy(call->a_leg);
	free(call->a_nat);
	call->a_nat = NULL;
	call->a_irq = NULL;
	call->bye_irq = NULL;
	call->bye_orq = NULL;
	call->a_leg = NULL;
	b2b_call_release(call);
}

/* Final answer to the caller's INVITE (not 2xx: that one is relayed). */
void b2b_reply_a(struct b2b_call *call, int status, const char *phrase)
{
	if (call->a_irq == NULL)
		return;
	call->final_code = status;
	if (status == 487)
		call->cancelled = 1;
	b2b_count_code(call->b2b, status);
	b2b_observe_setup(call);
	/* 503: the location service (Redis) did not answer, or we are
	 * stopping: tell the caller when to try again. */
	nta_incoming_treply(call->a_irq, status, phrase,
			    TAG_IF(status == 503, SIPTAG_RETRY_AFTER_STR("5")), TAG_END());
	nta_incoming_destroy(call->a_irq);
	call->a_irq = NULL;
}

/* The INVITE being served (NTA keeps it with the transaction). */
sip_t const *b2b_invite_of(struct b2b_call *call)
{
	msg_t *msg = call->a_irq ? nta_incoming_getrequest(call->a_irq) : NULL;
	sip_t const *sip = msg ? sip_object(msg) : NULL;

	msg_destroy(msg);   /* drop the reference getrequest took; NTA keeps its own */
	return sip;
}

/* Routing is over with a refusal (or the caller cancelled meanwhile). */
void b2b_call_refuse(struct b2b_call *call, int status, const char *phrase)
{
	call->hangup_by = call->caller_cancelled ? CDR_PARTY_CALLER : CDR_PARTY_SYSTEM;
	if (call->caller_cancelled)
		b2b_reply_a(call, SIP_487_REQUEST_CANCELLED);
	else
		b2b_reply_a(call, status, phrase);
	b2b_call_end(call);
}

/*
 * The caller gets its final answer `status` now, whatever the B-legs do
 * (the caller cancelled, or invite_timeout): B-legs still pending are
 * CANCELled (NTA sends the CANCEL once a provisional came, RFC 3261 9.1;
 * one that never answers ends with NTA's Timer B), a late 2xx is ACKed and
 * released with BYE (b2b_branch.c).  The call ends, with its one CDR dated
 * now, when the last B-leg and the last asynchronous request are over.
 * The caller sets hangup_by first.
 */
void b2b_call_give_up(struct b2b_call *call, int status)
{
	b2b_invite_timer_stop(call);
	b2b_cancel_pending(call, -1);
	b2b_reply_a(call, status, NULL);
	call->a_done = 1;
	call->end_ms = shm_now_ms();
	b2b_publish_given_up(call, status);
	if (b2b_pending_branches(call) == 0 && call->holds == 0)
		b2b_call_end(call);
}

/*
 * The caller cancelled its INVITE (its CANCEL reached us or another
 * worker): it gets 487 at once (b2b_call_give_up).  What is in flight
 * finishes on its own: a pending authentication or lookup ends the call
 * when it returns (caller_cancelled), B-legs are CANCELled, a forward
 * waiting for its CANCELs is given up.  Returns 0, or -EALREADY when the
 * call is answered or already ending and a CANCEL changes nothing.
 */
int b2b_caller_cancels(struct b2b_call *call)
{
	switch (call->state) {
	case B2B_ROUTING:
	case B2B_TRYING:
	case B2B_RINGING:
	case B2B_FORWARDING:
		call->caller_cancelled = 1;
		call->forward_pending = 0;
		call->hangup_by = CDR_PARTY_CALLER;
		b2b_call_give_up(call, 487);
		return 0;
	default:
		return -EALREADY;
	}
}

/* End a call from our side: CANCEL what is pending and answer the caller
 * `status`, or BYE both legs of an answered call. */
void b2b_call_abort(struct b2b_call *call, int status)
{
	struct b2b_branch *br;
	enum cdr_party by = call->hangup_by;

	call->hangup_by = CDR_PARTY_SYSTEM;
	switch (call->state) {
	case B2B_ROUTING:
	case B2B_TRYING:
	case B2B_RINGING:
	case B2B_FORWARDING:
		b2b_cancel_pending(call, -1);
		b2b_reply_a(call, status, NULL);
		b2b_call_end(call);
		break;
	case B2B_ANSWERED:
	case B2B_CONFIRMED:
		br = b2b_winner(call);
		if (b2b_call_wake(call) == 0) {   /* at rest: its legs again first */
			if (!br->acked)
				b2b_ack_branch(br);
			b2b_bye_and_forget(call->a_leg);
			b2b_bye_and_forget(br->leg);
		}
		b2b_call_end(call);
		break;
	case B2B_CANCELLING:
		/* The caller has its answer; B-legs that never answered may take
		 * until NTA's Timer B: do not wait for them (drain, kill).  The
		 * CDR keeps what the caller saw: who ended it, and no KILLED. */
		if (call->a_done) {
			call->hangup_by = by;
			call->killed = 0;
			b2b_call_end(call);
		}
		break;
	case B2B_ENDING:
		break;   /* already on its way out */
	}
}
