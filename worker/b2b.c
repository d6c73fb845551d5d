/*
 * b2b — call logic of one worker on Sofia-SIP NTA.  See b2b.h.
 *
 * A call, seen from here:
 *
 *   caller --A-leg--> [ a_leg / a_irq ]  b2b_call  [ br[i].leg / br[i].orq ] --B-legs--> callee(s)
 *
 * A call has one A-leg and one or more B-leg attempts ("branches": one per
 * registered contact, forked in parallel; the first 2xx wins and the others
 * are cancelled).  States (enum b2b_state), and what moves a call:
 *
 *   ROUTING     INVITE accepted, 100 sent; authentication or the location
 *               lookup (Redis, asynchronous) is in flight
 *   TRYING      INVITE sent on the B-leg(s)
 *   RINGING     a 18x from B was relayed to A
 *   ANSWERED    B's 2xx was relayed to A; waiting for A's ACK to ACK B
 *   CONFIRMED   both legs acknowledged: the call is up
 *   CANCELLING  A cancelled; B was sent CANCEL, waiting for B's final answer
 *   ENDING      a BYE is being relayed to the other leg
 *
 * and a call ends (b2b_call_end) when its last transaction is over.  The
 * call's memory comes from a pool sized by call_capacity, so accepting a
 * call allocates nothing of ours; Sofia allocates its own messages.
 *
 * Nothing of one leg's topology is copied to the other: the B-leg gets a new
 * Call-ID, new tags, its own CSeq, our Via and our Contact; only From/To
 * URIs (identities, without tags or parameters), the SDP body and
 * Max-Forwards (decremented) cross over.
 */
#include "worker/b2b.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "b2bua/log.h"
#include "worker/cdr.h"
#include "worker/hold.h"
#include "worker/registrar.h"
#include "worker/route.h"

/* TPTAG_IDENT of the two transports (see architecture.md: select the
 * worker's own port for everything we send). */
#define B2B_IDENT_PUBLIC "public"
#define B2B_IDENT_OWN    "own"

enum b2b_state {
	B2B_ROUTING,      /* waiting for authentication or the location service */
	B2B_TRYING,
	B2B_RINGING,
	B2B_ANSWERED,
	B2B_CONFIRMED,
	B2B_CANCELLING,
	B2B_ENDING,
	B2B_FORWARDING,   /* the callee did not take it: a new B-leg to its forward target */
};

/* Parallel forking to several registered contacts: one B-leg each. */
#define B2B_MAX_BRANCHES 8

/* One B-leg attempt: its own dialog (Call-ID, tags) and INVITE transaction. */
struct b2b_branch {
	struct b2b_call *call;
	nta_leg_t *leg;
	nta_outgoing_t *orq;         /* our INVITE, until its final answer */
	uint32_t cseq;               /* of that INVITE, for the ACK */
	int final;                   /* its final status, 0 while pending */
	int acked;                   /* ACK sent for its 2xx */
};

struct b2b_call {
	b2b_t *b2b;
	struct b2b_call *next_free;  /* pool link while unused */
	char id[SHM_ID_MAX];         /* the call id: CLI, logs, CDR id, call limits (b2b_make_id) */
	char counted[4][64];         /* local users whose max_calls count this call */
	unsigned n_counted;
	uint32_t slot;               /* our slot in the shared call table */
	enum b2b_state state;
	unsigned holds;              /* asynchronous requests (Redis) still to answer */
	int ended;                   /* b2b_call_end() ran; free when holds == 0 */
	int caller_cancelled;        /* CANCEL received while routing */
	int cancelled;               /* the caller cancelled (CDR: CANCELLED) */
	int killed;                  /* an operator ended it (CDR: KILLED) */
	int timed_out;               /* invite_timeout ended it (CDR: ended by the system) */
	int no_cdr;                  /* only a challenge (407): not a call attempt */
	int final_code;              /* final answer sent to the caller */
	uint64_t answer_ms;          /* when it was answered, 0 before */
	enum cdr_party hangup_by;
	char answered_by[SHM_URI_MAX];

	nta_leg_t *a_leg;            /* dialog with the caller (we are UAS) */
	nta_incoming_t *a_irq;       /* the caller's INVITE, until ACKed/final */

	struct b2b_branch br[B2B_MAX_BRANCHES];
	unsigned n_br;
	int winner;                  /* index of the answered branch, -1 */
	int best_final;              /* best failure so far, relayed when all failed */
	char best_phrase[64];

	nta_incoming_t *relay_irq;   /* an in-dialog request being relayed ... */
	nta_outgoing_t *relay_orq;   /* ... and our copy on the other leg */
	sip_method_t relay_method;
	int relay_from_caller;
	uint32_t relay_cseq;         /* of relay_orq, for the ACK of a re-INVITE */
	enum hold_state relay_hold;  /* what the relayed offer asks for */
	enum shm_party held_by;

	/* forwarding (see "forwarding" below) */
	struct registrar_forward fwd; /* of the user being tried now */
	int have_fwd;
	char cur_user[64];           /* the local user being tried now */
	char tried[B2B_MAX_BRANCHES][64];
	unsigned n_tried;
	unsigned hops;
	char diversion[512];         /* Diversion value for forwarded INVITEs */
	su_timer_t *na_timer;        /* no-answer timer, when the user forwards on no answer */
	int forward_pending;         /* branches being cancelled before forwarding */
	char forward_to[REGISTRAR_URI_MAX];
	const char *forward_reason;

	nta_incoming_t *bye_irq;     /* a BYE being relayed, from either leg */
	nta_outgoing_t *bye_orq;     /* our BYE on the other leg */
};

struct b2b {
	su_home_t home[1];
	su_root_t *root;
	const struct config *cfg;
	shm_t *shm;
	unsigned worker;
	unsigned generation;

	registrar_t *reg;             /* NULL: no registrar (no domain configured) */
	b2b_tell_f *tell;             /* hands a message to another worker (via the master) */
	void *tell_arg;
	cdr_writer_t *cdr;            /* NULL: no CDRs (unit tests only) */
	nta_agent_t *agent;
	nta_leg_t *default_leg;       /* receives every request outside a dialog */
	sip_contact_t *contact;       /* ours: advertise host, own port */
	url_t **route_urls;           /* cfg->routes[i].target, parsed once */

	struct b2b_call *pool;
	struct b2b_call *free_list;
	unsigned active;
	int draining;

	uint64_t full_logged_ms;      /* last "call table full" warning */
	unsigned full_refused;        /* INVITEs refused since that warning */

	uint64_t next_call;           /* call counter, part of the call id */
	uint64_t epoch_ms;            /* when this worker process started: CDR ids stay
				       * unique across restarts of the daemon */
	uint64_t rng;                 /* xorshift state for Call-IDs and tags */
	unsigned long long published_in, published_out;
};

/* ------------------------------------------------------------ helpers */

/* Fast non-cryptographic randomness for identifiers; seeded from the kernel
 * after fork, so no two workers share a sequence. */
static uint64_t b2b_random(b2b_t *b2b)
{
	uint64_t x = b2b->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b2b->rng = x;
	return x;
}

/* Tags and Call-IDs carry the node id and the worker so that several hosts
 * and workers never collide, and a random part so they are not guessable. */
static void b2b_make_tag(b2b_t *b2b, char *buf, size_t size)
{
	snprintf(buf, size, "%s-%u-%016llx", b2b->cfg->node_id, b2b->worker,
		 (unsigned long long)b2b_random(b2b));
}

static void b2b_make_call_id(b2b_t *b2b, char *buf, size_t size)
{
	snprintf(buf, size, "%016llx%08llx-%u@%s", (unsigned long long)b2b_random(b2b),
		 (unsigned long long)(b2b->next_call & 0xffffffffu), b2b->worker,
		 b2b->cfg->node_id);
}

/*
 * The call id, the one name of a call everywhere: `show calls`, every log
 * line about the call ("call ID: ..."), the CDR's id and the members of the
 * max_calls sets.  NODE-wWORKER-EPOCH-N: the node id and the worker index
 * keep hosts and workers apart, EPOCH (this process's start, ms, hex) keeps
 * a restarted worker apart from its predecessor, N counts calls.
 */
static void b2b_make_id(b2b_t *b2b, char *buf, size_t size)
{
	snprintf(buf, size, "%s-w%u-%llx-%llu", b2b->cfg->node_id, b2b->worker,
		 (unsigned long long)b2b->epoch_ms, (unsigned long long)++b2b->next_call);
}

static void b2b_url_copy(char *dst, size_t size, url_t const *url)
{
	if (url == NULL || url_e(dst, (isize_t)size, url) < 0)
		dst[0] = '\0';
	dst[size - 1] = '\0';
}

static void b2b_str_copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static int b2b_count_code(b2b_t *b2b, int code)
{
	shm_code_count(b2b->shm, b2b->worker, code);
	if (code >= 300)
		shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_FAILED, 1);
	else if (code >= 200)
		shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_ANSWERED, 1);
	return code;
}

/* Answer a request we will not turn into a call, with an optional header. */
static void b2b_refuse(b2b_t *b2b, nta_incoming_t *irq, int status, const char *phrase,
		       const char *retry_after)
{
	b2b_count_code(b2b, status);
	nta_incoming_treply(irq, status, phrase,
			    TAG_IF(retry_after, SIPTAG_RETRY_AFTER_STR(retry_after)),
			    TAG_END());
	nta_incoming_destroy(irq);
}

/* At capacity every INVITE is refused: say so, but at most every 10 s. */
static void b2b_refuse_full(b2b_t *b2b, nta_incoming_t *irq)
{
	uint64_t now = shm_now_ms();

	b2b->full_refused++;
	if (now - b2b->full_logged_ms >= 10000) {
		log_warn("call table full (call_capacity %u): %u INVITEs refused with 503 "
			 "in the last %llu s", b2b->cfg->call_capacity, b2b->full_refused,
			 (unsigned long long)(b2b->full_logged_ms ? (now - b2b->full_logged_ms) / 1000
								  : 0));
		b2b->full_logged_ms = now;
		b2b->full_refused = 0;
	}
	b2b_refuse(b2b, irq, SIP_503_SERVICE_UNAVAILABLE, "5");
}

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

static void b2b_set_state(struct b2b_call *call, enum b2b_state state)
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
}

/* Record the B-leg that answered: its dialog replaces the first attempt's. */
static void b2b_shm_b_answered(struct b2b_call *call, struct b2b_branch *br, sip_t const *sip)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	b2b_str_copy(c->b.call_id, sizeof c->b.call_id, sip->sip_call_id->i_id);
	b2b_str_copy(c->b.local_tag, sizeof c->b.local_tag, nta_leg_get_tag(br->leg));
	b2b_str_copy(c->b.remote_tag, sizeof c->b.remote_tag, sip->sip_to->a_tag);
	if (sip->sip_contact)
		b2b_url_copy(c->b.remote_target, sizeof c->b.remote_target,
			     sip->sip_contact->m_url);
	if (sip->sip_record_route)
		b2b_url_copy(c->b.route_set, sizeof c->b.route_set,
			     sip->sip_record_route->r_url);
	c->b.local_cseq = br->cseq;
	shm_call_write_end(call->b2b->shm, call->slot);
}

static void b2b_relay_done(struct b2b_call *call);
static int b2b_forward_on_failure(struct b2b_call *call);

/* ------------------------------------------------------------ call life cycle */

/* The call's id, as its shared-table record holds it. */
static void b2b_call_set_id(struct b2b_call *call, const char *id)
{
	snprintf(call->id, sizeof call->id, "%s", id);
}

static struct b2b_call *b2b_call_alloc(b2b_t *b2b)
{
	struct b2b_call *call = b2b->free_list;

	if (call == NULL)
		return NULL;
	b2b->free_list = call->next_free;
	memset(call, 0, sizeof *call);
	call->b2b = b2b;
	call->winner = -1;
	b2b->active++;
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_ACTIVE, 1);
	return call;
}

static void b2b_call_free(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;

	b2b->active--;
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_ACTIVE, -1);
	call->b2b = NULL;
	call->next_free = b2b->free_list;
	b2b->free_list = call;
}

/* An asynchronous request (Redis) will call back with this call: keep its
 * memory until then, even if the call ends meanwhile. */
static void b2b_call_hold(struct b2b_call *call)
{
	call->holds++;
}

/* The asynchronous answer arrived.  Returns 1 when the call is still alive
 * and the answer should be used, 0 when it ended meanwhile. */
static int b2b_call_release(struct b2b_call *call)
{
	call->holds--;
	if (!call->ended)
		return 1;
	if (call->holds == 0)
		b2b_call_free(call);
	return 0;
}

static void b2b_branch_drop(struct b2b_branch *br)
{
	if (br->orq)
		nta_outgoing_destroy(br->orq);
	if (br->leg)
		nta_leg_destroy(br->leg);
	br->orq = NULL;
	br->leg = NULL;
}

/* The call's one CDR, from its shared-table record and what only we know. */
static void b2b_write_cdr(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;
	struct shm_call rec;
	struct cdr c;

	if (b2b->cdr == NULL || call->no_cdr ||
	    shm_call_read(b2b->shm, call->slot, &rec) < 0)
		return;
	memset(&c, 0, sizeof c);
	b2b_str_copy(c.id, sizeof c.id, call->id);
	b2b_str_copy(c.a_call_id, sizeof c.a_call_id, rec.a.call_id);
	b2b_str_copy(c.b_call_id, sizeof c.b_call_id, rec.b.call_id);
	b2b_str_copy(c.caller, sizeof c.caller, rec.caller);
	b2b_str_copy(c.callee, sizeof c.callee, rec.callee);
	b2b_str_copy(c.answered_by, sizeof c.answered_by, call->answered_by);
	b2b_str_copy(c.forwarded_to, sizeof c.forwarded_to, rec.forward_target);
	c.start_ms = rec.start_ms;
	c.ring_ms = rec.ring_ms;
	c.answer_ms = rec.answer_ms;
	c.end_ms = shm_now_ms();
	c.billable_ms = rec.answer_ms ? c.end_ms - rec.answer_ms : 0;
	c.sip_code = call->final_code;
	if (call->killed)
		c.disposition = CDR_KILLED;
	else if (rec.answer_ms)
		c.disposition = CDR_ANSWERED;
	else
		c.disposition = cdr_disposition_of(call->final_code, call->cancelled);
	c.hangup_by = call->hangup_by;
	b2b_str_copy(c.host, sizeof c.host, b2b->cfg->node_id);
	c.worker = b2b->worker;
	if (cdr_write(b2b->cdr, &c) < 0)
		log_error("call %s: CDR could not be written or spooled", c.id);
}

/* Release everything the call holds.  Destroyed NTA objects make no more
 * callbacks; transactions linger inside NTA for retransmissions. */
static void b2b_call_end(struct b2b_call *call)
{
	if (call->ended)
		return;
	call->ended = 1;
	b2b_write_cdr(call);
	for (unsigned i = 0; i < call->n_counted; i++)
		registrar_call_end(call->b2b->reg, call->counted[i], call->id);
	if (call->a_irq)
		nta_incoming_destroy(call->a_irq);
	for (unsigned i = 0; i < call->n_br; i++)
		b2b_branch_drop(&call->br[i]);
	b2b_relay_done(call);
	if (call->na_timer)
		su_timer_destroy(call->na_timer);
	call->na_timer = NULL;
	if (call->bye_irq)
		nta_incoming_destroy(call->bye_irq);
	if (call->bye_orq)
		nta_outgoing_destroy(call->bye_orq);
	if (call->a_leg)
		nta_leg_destroy(call->a_leg);
	call->a_irq = NULL;
	call->bye_irq = NULL;
	call->bye_orq = NULL;
	call->a_leg = NULL;
	shm_call_remove(call->b2b->shm, call->slot);
	if (call->holds == 0)
		b2b_call_free(call);
}

/* Final answer to the caller's INVITE (not 2xx: that one is relayed). */
static void b2b_reply_a(struct b2b_call *call, int status, const char *phrase)
{
	if (call->a_irq == NULL)
		return;
	call->final_code = status;
	if (status == 487)
		call->cancelled = 1;
	b2b_count_code(call->b2b, status);
	nta_incoming_treply(call->a_irq, status, phrase, TAG_END());
	nta_incoming_destroy(call->a_irq);
	call->a_irq = NULL;
}

static struct b2b_branch *b2b_winner(struct b2b_call *call)
{
	return call->winner >= 0 ? &call->br[call->winner] : NULL;
}

static void b2b_ack_branch(struct b2b_branch *br)
{
	sip_cseq_t cseq[1];
	nta_outgoing_t *ack;

	sip_cseq_init(cseq);
	cseq->cs_seq = br->cseq;
	cseq->cs_method = sip_method_ack;
	cseq->cs_method_name = "ACK";
	ack = nta_outgoing_tcreate(br->leg, NULL, NULL, NULL, SIP_METHOD_ACK, NULL,
				   SIPTAG_CSEQ(cseq), TPTAG_IDENT(B2B_IDENT_OWN), TAG_END());
	if (ack == NULL)
		log_warn("call %s: cannot send ACK on a B-leg", br->call->id);
	else
		nta_outgoing_destroy(ack);
	br->acked = 1;
}

/* Send BYE on a leg and forget it: used when a call is torn down by us. */
static void b2b_bye_and_forget(nta_leg_t *leg)
{
	nta_outgoing_t *bye = nta_outgoing_tcreate(leg, NULL, NULL, NULL, SIP_METHOD_BYE, NULL,
						   TPTAG_IDENT(B2B_IDENT_OWN), TAG_END());
	if (bye)
		nta_outgoing_destroy(bye);
}

/* CANCEL every B-leg attempt still waiting for its final answer. */
static void b2b_cancel_pending(struct b2b_call *call, int except)
{
	for (unsigned i = 0; i < call->n_br; i++)
		if ((int)i != except && call->br[i].orq && call->br[i].final == 0)
			nta_outgoing_cancel(call->br[i].orq);
}

static unsigned b2b_pending_branches(const struct b2b_call *call)
{
	unsigned n = 0;

	for (unsigned i = 0; i < call->n_br; i++)
		n += call->br[i].orq != NULL && call->br[i].final == 0;
	return n;
}

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
					     (nta_outgoing_magic_t *)call, NULL, SIP_METHOD_BYE,
					     NULL, TPTAG_IDENT(B2B_IDENT_OWN), TAG_END());
	if (call->bye_orq == NULL) {
		log_warn("call %s: cannot relay BYE", call->id);
		nta_incoming_treply(irq, SIP_200_OK, TAG_END());
		call->bye_irq = NULL;
		nta_incoming_destroy(irq);
		b2b_call_end(call);
		return 0;
	}
	b2b_set_state(call, B2B_ENDING);
	return 0;
}

/* ------------------------------------------------------------ in-dialog relay */

/*
 * A request inside an established call (re-INVITE, UPDATE, INFO, ...) is
 * relayed to the other leg as a new transaction of that leg's dialog, and
 * its final answer is relayed back.  One relay at a time per call: a
 * re-INVITE that crosses another gets 491 (RFC 3261 14.2); a rejected
 * re-INVITE leaves the call as it was.  The ACK of a relayed 2xx is relayed
 * too, with the CSeq of our INVITE on the other leg.
 */

/* Hold or resume, decided by the offer of a re-INVITE that was accepted. */
static void b2b_apply_hold(struct b2b_call *call)
{
	struct shm_call *c;
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
	c = shm_call_write_begin(call->b2b->shm, call->slot);
	c->held_by = (uint8_t)call->held_by;
	c->state = call->held_by ? SHM_CALL_HELD : SHM_CALL_ANSWERED;
	shm_call_write_end(call->b2b->shm, call->slot);
}

static void b2b_relay_done(struct b2b_call *call)
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
	ack = nta_outgoing_tcreate(other, NULL, NULL, NULL, SIP_METHOD_ACK, NULL,
				   SIPTAG_CSEQ(cseq),
				   SIPTAG_CONTENT_TYPE(sip->sip_content_type),
				   SIPTAG_PAYLOAD(sip->sip_payload),
				   TPTAG_IDENT(B2B_IDENT_OWN), TAG_END());
	if (ack)
		nta_outgoing_destroy(ack);
	b2b_relay_done(call);
	return 0;
}

static int b2b_on_relay_response(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				 sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;
	int status = nta_outgoing_status(orq);
	int is_invite = call->relay_method == sip_method_invite;

	if (status < 200 || call->relay_irq == NULL)
		return 0;   /* provisional answers to a re-INVITE are not relayed */
	nta_incoming_treply(call->relay_irq, status,
			    sip && sip->sip_status ? sip->sip_status->st_phrase : NULL,
			    TAG_IF(status < 300, SIPTAG_CONTACT(call->b2b->contact)),
			    TAG_IF(sip, SIPTAG_CONTENT_TYPE(sip ? sip->sip_content_type : NULL)),
			    TAG_IF(sip, SIPTAG_PAYLOAD(sip ? sip->sip_payload : NULL)),
			    TAG_END());
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

	if (call->state != B2B_CONFIRMED || other == NULL)
		return method == sip_method_invite ? 491 : 481;
	if (call->relay_irq != NULL)
		return method == sip_method_invite ? 491 : 500;
	call->relay_orq = nta_outgoing_tcreate(other, b2b_on_relay_response,
					       (nta_outgoing_magic_t *)call, NULL,
					       method, sip->sip_request->rq_method_name, NULL,
					       TAG_IF(method == sip_method_invite ||
						      method == sip_method_update,
						      SIPTAG_CONTACT(call->b2b->contact)),
					       SIPTAG_CONTENT_TYPE(sip->sip_content_type),
					       SIPTAG_PAYLOAD(sip->sip_payload),
					       TPTAG_IDENT(B2B_IDENT_OWN),
					       TAG_END());
	if (call->relay_orq == NULL)
		return 500;
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
static int b2b_on_b_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
			    sip_t const *sip)
{
	struct b2b_branch *br = (struct b2b_branch *)magic;
	struct b2b_call *call = br->call;

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

static void b2b_relay_provisional(struct b2b_branch *br, int status, sip_t const *sip)
{
	struct b2b_call *call = br->call;

	if (sip->sip_to && sip->sip_to->a_tag)
		nta_leg_rtag(br->leg, sip->sip_to->a_tag);
	if ((call->state != B2B_TRYING && call->state != B2B_RINGING &&
	     call->state != B2B_FORWARDING) || call->forward_pending)
		return;
	nta_incoming_treply(call->a_irq, status, sip->sip_status->st_phrase,
			    SIPTAG_CONTACT(call->b2b->contact),
			    SIPTAG_CONTENT_TYPE(sip->sip_content_type),
			    SIPTAG_PAYLOAD(sip->sip_payload),
			    TAG_END());
	if (call->state == B2B_TRYING || call->state == B2B_FORWARDING)
		b2b_set_state(call, B2B_RINGING);
}

/* A 2xx on branch br: the first one wins, later ones are released. */
static void b2b_on_b_answer(struct b2b_branch *br, int status, sip_t const *sip)
{
	struct b2b_call *call = br->call;

	nta_leg_rtag(br->leg, sip->sip_to->a_tag);
	nta_leg_client_reroute(br->leg, sip->sip_record_route, sip->sip_contact, 1);

	if (call->winner >= 0 || call->state == B2B_CANCELLING || call->a_irq == NULL) {
		/* Another branch won, or the caller is gone (CANCEL crossed this
		 * 2xx): confirm this dialog and end it at once. */
		b2b_ack_branch(br);
		b2b_bye_and_forget(br->leg);
		if (call->winner < 0) {
			call->hangup_by = CDR_PARTY_CALLER;
			b2b_reply_a(call, SIP_487_REQUEST_CANCELLED);
			b2b_call_end(call);
		}
		return;
	}
	call->winner = (int)(br - call->br);
	call->answer_ms = shm_now_ms();
	call->forward_pending = 0;   /* an answer during the CANCEL wins (flow 10) */
	if (call->na_timer)
		su_timer_reset(call->na_timer);
	call->final_code = status;
	b2b_url_copy(call->answered_by, sizeof call->answered_by,
		     nta_outgoing_request_uri(br->orq));
	b2b_cancel_pending(call, call->winner);
	b2b_shm_b_answered(call, br, sip);
	b2b_count_code(call->b2b, status);
	nta_incoming_treply(call->a_irq, status, sip->sip_status->st_phrase,
			    SIPTAG_CONTACT(call->b2b->contact),
			    SIPTAG_CONTENT_TYPE(sip->sip_content_type),
			    SIPTAG_PAYLOAD(sip->sip_payload),
			    TAG_END());
	/* Keep a_irq: NTA retransmits the 2xx until the caller's ACK, which it
	 * hands to b2b_on_a_irq(); then B is ACKed (flow 3, step 7). */
	b2b_set_state(call, B2B_ANSWERED);
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

	/* A 487 nobody asked for: NTA's Timer C (invite_timeout) cancelled the
	 * INVITE because the callee never answered finally.  To the caller it
	 * is our timeout (flow 8). */
	if (status == 487 && call->state != B2B_CANCELLING && !call->forward_pending &&
	    call->winner < 0) {
		status = 408;
		call->timed_out = 1;
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

/* ------------------------------------------------------------ A-leg */

/* The caller's ACK for our 2xx: now B is ACKed too. */
static void b2b_on_a_ack(struct b2b_call *call)
{
	struct b2b_branch *br = b2b_winner(call);

	if (call->state == B2B_ANSWERED && br) {
		b2b_ack_branch(br);
		b2b_set_state(call, B2B_CONFIRMED);
	}
	if (call->a_irq) {
		nta_incoming_destroy(call->a_irq);
		call->a_irq = NULL;
	}
}

/*
 * The caller cancelled its INVITE (its CANCEL reached us or another
 * worker).  What is in flight finishes: a pending authentication or lookup
 * answers 487 when it returns (caller_cancelled), B-legs are CANCELled and
 * their final answers end the call with 487, a forward waiting for its
 * CANCELs is given up.  Returns 0, or -EALREADY when the call is answered or
 * already ending and a CANCEL changes nothing.
 */
static int b2b_caller_cancels(struct b2b_call *call)
{
	switch (call->state) {
	case B2B_ROUTING:
	case B2B_TRYING:
	case B2B_RINGING:
	case B2B_FORWARDING:
		call->caller_cancelled = 1;
		call->forward_pending = 0;
		b2b_set_state(call, B2B_CANCELLING);
		b2b_cancel_pending(call, -1);
		return 0;
	default:
		return -EALREADY;
	}
}

/* NTA calls this for the ACK and the CANCEL of the caller's INVITE. */
static int b2b_on_a_irq(nta_incoming_magic_t *magic, nta_incoming_t *irq, sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;

	if (sip == NULL) {
		/* NTA gave up retransmitting our 2xx (Timer H): the caller never
		 * ACKed it.  The call cannot be trusted: release both legs. */
		if (call->state == B2B_ANSWERED) {
			struct b2b_branch *br = b2b_winner(call);

			log_warn("call %s: no ACK from the caller for our 2xx: releasing it",
				 call->id);
			call->hangup_by = CDR_PARTY_SYSTEM;
			call->a_irq = NULL;   /* NTA destroys it */
			nta_incoming_destroy(irq);
			if (br) {
				b2b_ack_branch(br);
				b2b_bye_and_forget(br->leg);
			}
			b2b_bye_and_forget(call->a_leg);
			b2b_call_end(call);
		}
		return 0;
	}

	switch (sip->sip_request->rq_method) {
	case sip_method_cancel:
		b2b_caller_cancels(call);
		return 0;
	case sip_method_ack:
		b2b_on_a_ack(call);
		return 0;
	default:
		return 0;
	}
}

/* Requests the caller sends in its dialog with us. */
static int b2b_on_a_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
			    sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;

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

/* ------------------------------------------------------------ new calls */

/* Is one of our own addresses in this Via chain?  Then the request looped. */
static int b2b_via_is_ours(const b2b_t *b2b, sip_via_t const *v)
{
	const struct config *cfg = b2b->cfg;

	for (; v; v = v->v_next) {
		int port = v->v_port ? atoi(v->v_port) : 5060;

		if (!v->v_host || (strcasecmp(v->v_host, cfg->advertise) != 0 &&
				   strcasecmp(v->v_host, cfg->listen) != 0))
			continue;
		if (port == cfg->sip_port ||
		    (port >= cfg->worker_port_base &&
		     port < cfg->worker_port_base + cfg->workers))
			return 1;
	}
	return 0;
}

/* Fill the shared-table record of a new call from its INVITE. */
static void b2b_shm_init(b2b_t *b2b, struct shm_call *c, sip_t const *sip, const char *a_tag)
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
	if (sip->sip_record_route)
		b2b_url_copy(c->a.route_set, sizeof c->a.route_set,
			     sip->sip_record_route->r_url);
	c->a.remote_cseq = sip->sip_cseq->cs_seq;
	c->a.transport = SHM_TP_UDP;
	b2b_url_copy(c->b.local_uri, sizeof c->b.local_uri, sip->sip_from->a_url);
	b2b_url_copy(c->b.remote_uri, sizeof c->b.remote_uri, sip->sip_to->a_url);
	c->b.transport = SHM_TP_UDP;
}

/* The A-leg dialog, answering the caller's INVITE from now on. */
static int b2b_a_leg_create(struct b2b_call *call, nta_incoming_t *irq, sip_t const *sip,
			    const char *a_tag)
{
	call->a_leg = nta_leg_tcreate(call->b2b->agent, b2b_on_a_request,
				      (nta_leg_magic_t *)call,
				      SIPTAG_CALL_ID(sip->sip_call_id),
				      SIPTAG_FROM(sip->sip_to),    /* local: the callee side */
				      SIPTAG_TO(sip->sip_from),    /* remote: the caller */
				      TAG_END());
	if (call->a_leg == NULL || nta_leg_tag(call->a_leg, a_tag) == NULL)
		return -ENOMEM;
	nta_leg_server_route(call->a_leg, sip->sip_record_route, sip->sip_contact);
	nta_incoming_bind(irq, b2b_on_a_irq, (nta_incoming_magic_t *)call);
	nta_incoming_tag(irq, nta_leg_get_tag(call->a_leg));
	call->a_irq = irq;
	return 0;
}

/* One B-leg attempt towards `ruri`: a new dialog and its INVITE.
 * B-leg identities are the caller's and callee's URIs and display names,
 * nothing else of the A-leg (no tags, no parameters). */
static int b2b_branch_start(struct b2b_call *call, sip_t const *sip, url_t const *ruri)
{
	b2b_t *b2b = call->b2b;
	struct b2b_branch *br = &call->br[call->n_br];
	char tag[SHM_TAG_MAX], call_id[SHM_CALLID_MAX];
	char diversion[sizeof call->diversion + 16];
	sip_from_t from[1];
	sip_to_t to[1];
	sip_max_forwards_t mf[1];

	sip_from_init(from);
	from->a_display = sip->sip_from->a_display;
	*from->a_url = *sip->sip_from->a_url;
	sip_to_init(to);
	to->a_display = sip->sip_to->a_display;
	*to->a_url = *sip->sip_to->a_url;
	sip_max_forwards_init(mf);
	mf->mf_count = sip->sip_max_forwards ? sip->sip_max_forwards->mf_count - 1
					     : (unsigned long)b2b->cfg->max_forwards;
	b2b_make_tag(b2b, tag, sizeof tag);
	b2b_make_call_id(b2b, call_id, sizeof call_id);
	snprintf(diversion, sizeof diversion, "Diversion: %s", call->diversion);

	memset(br, 0, sizeof *br);
	br->call = call;
	br->leg = nta_leg_tcreate(b2b->agent, b2b_on_b_request, (nta_leg_magic_t *)br,
				  SIPTAG_CALL_ID_STR(call_id),
				  SIPTAG_FROM(from), SIPTAG_TO(to), TAG_END());
	if (br->leg == NULL || nta_leg_tag(br->leg, tag) == NULL) {
		b2b_branch_drop(br);
		return -ENOMEM;
	}
	br->orq = nta_outgoing_tcreate(br->leg, b2b_on_b_response, (nta_outgoing_magic_t *)br,
				       NULL, SIP_METHOD_INVITE, (url_string_t const *)ruri,
				       SIPTAG_CONTACT(b2b->contact),
				       SIPTAG_MAX_FORWARDS(mf),
				       TAG_IF(call->diversion[0], SIPTAG_HEADER_STR(diversion)),
				       SIPTAG_CONTENT_TYPE(sip->sip_content_type),
				       SIPTAG_PAYLOAD(sip->sip_payload),
				       TPTAG_IDENT(B2B_IDENT_OWN),
				       TAG_END());
	if (br->orq == NULL) {
		b2b_branch_drop(br);
		return -EIO;
	}
	br->cseq = nta_outgoing_cseq(br->orq);
	if (call->n_br == 0) {
		struct shm_call *c = shm_call_write_begin(b2b->shm, call->slot);

		b2b_str_copy(c->b.call_id, sizeof c->b.call_id, call_id);
		b2b_str_copy(c->b.local_tag, sizeof c->b.local_tag, tag);
		b2b_url_copy(c->b.remote_target, sizeof c->b.remote_target, ruri);
		c->b.local_cseq = br->cseq;
		shm_call_write_end(b2b->shm, call->slot);
	}
	call->n_br++;
	return 0;
}

/* The INVITE being served (NTA keeps it with the transaction). */
static sip_t const *b2b_invite_of(struct b2b_call *call)
{
	msg_t *msg = call->a_irq ? nta_incoming_getrequest(call->a_irq) : NULL;
	sip_t const *sip = msg ? sip_object(msg) : NULL;

	msg_destroy(msg);   /* drop the reference getrequest took; NTA keeps its own */
	return sip;
}

/* Send the INVITE to every target; if none could be sent, fail the call. */
static void b2b_call_fork(struct b2b_call *call, url_t const *const *targets, unsigned n)
{
	sip_t const *sip = b2b_invite_of(call);

	for (unsigned i = 0; sip && i < n && call->n_br < B2B_MAX_BRANCHES; i++)
		if (b2b_branch_start(call, sip, targets[i]) < 0)
			log_warn("call %s: cannot send INVITE to a target", call->id);
	if (b2b_pending_branches(call) == 0) {
		b2b_reply_a(call, SIP_500_INTERNAL_SERVER_ERROR);
		b2b_call_end(call);
		return;
	}
	if (call->state != B2B_FORWARDING)
		b2b_set_state(call, B2B_TRYING);
}

/* Routing is over with a refusal (or the caller cancelled meanwhile). */
static void b2b_call_refuse(struct b2b_call *call, int status, const char *phrase)
{
	call->hangup_by = call->caller_cancelled ? CDR_PARTY_CALLER : CDR_PARTY_SYSTEM;
	if (call->caller_cancelled)
		b2b_reply_a(call, SIP_487_REQUEST_CANCELLED);
	else
		b2b_reply_a(call, status, phrase);
	b2b_call_end(call);
}

/* ------------------------------------------------------------ forwarding */

/*
 * Call forwarding (flows 9 and 10).  A local user's Redis entry may name a
 * target for every call (fwd_always), for when every contact is busy
 * (fwd_busy), and for when nobody answers in time or nothing is registered
 * (fwd_noanswer, after fwd_noanswer_timeout or the config's
 * no_answer_timeout).  A target is a user of our domain (looked up in turn,
 * with its own forwarding) or a SIP URI.  Each forwarded INVITE carries a
 * Diversion header (RFC 5806) naming who forwarded it and why.  Chains stop
 * after forward_max_hops; a target already tried in this call ends it with
 * 482 (a loop).
 */

static void b2b_lookup_user(struct b2b_call *call, const char *user);

static void b2b_shm_forwarding(struct b2b_call *call, const char *target)
{
	struct shm_call *c = shm_call_write_begin(call->b2b->shm, call->slot);

	c->state = SHM_CALL_FORWARDING;
	b2b_str_copy(c->forward_target, sizeof c->forward_target, target);
	shm_call_write_end(call->b2b->shm, call->slot);
	call->state = B2B_FORWARDING;
}

/* RFC 5806: newest diversion first, with the reason and the hop count. */
static void b2b_add_diversion(struct b2b_call *call, const char *reason)
{
	char prev[sizeof call->diversion];
	int n;

	memcpy(prev, call->diversion, sizeof prev);
	n = snprintf(call->diversion, sizeof call->diversion, "<sip:%s@%s>;reason=%s;counter=%u",
		     call->cur_user, call->b2b->cfg->domain, reason, call->hops);
	if (prev[0] && n > 0 && (size_t)n < sizeof call->diversion)
		snprintf(call->diversion + n, sizeof call->diversion - (size_t)n, ", %.*s",
			 (int)(sizeof call->diversion - (size_t)n - 3), prev);
}

static int b2b_tried(const struct b2b_call *call, const char *user)
{
	for (unsigned i = 0; i < call->n_tried; i++)
		if (strcmp(call->tried[i], user) == 0)
			return 1;
	return 0;
}

/* Forward the call to `target`; the current branches are all over. */
static void b2b_forward(struct b2b_call *call, const char *target, const char *reason)
{
	b2b_t *b2b = call->b2b;
	su_home_t home[1] = { SU_HOME_INIT(home) };
	url_t *url = NULL;
	const char *user = target;
	url_t const *targets[1];

	call->forward_pending = 0;
	if (call->hops >= (unsigned)b2b->cfg->forward_max_hops) {
		log_warn("call %s: forwarding chain longer than forward_max_hops (%d) stopped at %s",
			 call->id, b2b->cfg->forward_max_hops, target);
		b2b_call_refuse(call, call->best_final ? call->best_final : 480,
				call->best_final ? call->best_phrase : NULL);
		return;
	}
	if (strchr(target, ':')) {
		url = url_make(home, target);
		if (url == NULL || url->url_host == NULL) {
			log_warn("call %s: bad forward target '%s'", call->id, target);
			b2b_call_refuse(call, SIP_480_TEMPORARILY_UNAVAILABLE);
			su_home_deinit(home);
			return;
		}
		user = registrar_is_local(b2b->reg, url) && url->url_user ? url->url_user : NULL;
	}
	if (user && b2b_tried(call, user)) {
		log_warn("call %s: forwarding loops back to '%s': ending the call", call->id, user);
		b2b_call_refuse(call, SIP_482_LOOP_DETECTED);
		su_home_deinit(home);
		return;
	}
	call->hops++;
	b2b_add_diversion(call, reason);
	b2b_shm_forwarding(call, target);
	log_info("call %s: forwarding (%s) from '%s' to %s", call->id, reason, call->cur_user,
		 target);
	call->have_fwd = 0;
	if (user) {
		b2b_lookup_user(call, user);
	} else {
		targets[0] = url;
		b2b_call_fork(call, targets, 1);
	}
	su_home_deinit(home);
}

static void b2b_on_no_answer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	struct b2b_call *call = (struct b2b_call *)arg;

	if (call->winner >= 0 || call->state == B2B_CANCELLING || !call->have_fwd ||
	    call->fwd.noanswer[0] == '\0')
		return;
	/* CANCEL what rings; forward once every branch has answered the CANCEL
	 * (b2b_on_b_failure).  An answer meanwhile still wins. */
	call->forward_pending = 1;
	snprintf(call->forward_to, sizeof call->forward_to, "%s", call->fwd.noanswer);
	call->forward_reason = "no-answer";
	b2b_shm_forwarding(call, call->fwd.noanswer);
	b2b_cancel_pending(call, -1);
}

static void b2b_start_no_answer_timer(struct b2b_call *call)
{
	int secs = call->fwd.noanswer_timeout > 0 ? call->fwd.noanswer_timeout
						  : call->b2b->cfg->no_answer_timeout;

	if (call->na_timer == NULL)
		call->na_timer = su_timer_create(su_root_task(call->b2b->root), 0);
	if (call->na_timer == NULL ||
	    su_timer_set_interval(call->na_timer, b2b_on_no_answer, (su_timer_arg_t *)call,
				  (su_duration_t)secs * 1000) < 0)
		log_warn("call %s: cannot arm the no-answer timer", call->id);
}

/* Every branch failed: forward if the user asked for it.  1 when forwarded. */
static int b2b_forward_on_failure(struct b2b_call *call)
{
	if (call->forward_pending) {
		b2b_forward(call, call->forward_to, call->forward_reason);
		return 1;
	}
	if (!call->have_fwd || call->state == B2B_CANCELLING)
		return 0;
	if ((call->best_final == 486 || call->best_final == 600) && call->fwd.busy[0]) {
		b2b_forward(call, call->fwd.busy, "user-busy");
		return 1;
	}
	if ((call->best_final == 408 || call->best_final == 480) && call->fwd.noanswer[0]) {
		b2b_forward(call, call->fwd.noanswer, "no-answer");
		return 1;
	}
	return 0;
}

static void b2b_on_lookup(void *arg, int status, const struct registrar_contact *contacts,
			  unsigned n, const struct registrar_forward *fwd)
{
	struct b2b_call *call = arg;
	url_t const *targets[B2B_MAX_BRANCHES];
	su_home_t home[1] = { SU_HOME_INIT(home) };
	unsigned m = 0;

	if (!b2b_call_release(call))
		return;
	if (call->caller_cancelled) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	if (fwd) {
		call->fwd = *fwd;
		call->have_fwd = 1;
	}
	if (fwd && fwd->always[0]) {
		b2b_forward(call, fwd->always, "unconditional");
		return;
	}
	if (status == 480 && fwd && fwd->noanswer[0]) {
		b2b_forward(call, fwd->noanswer, "unavailable");
		return;
	}
	if (status == 486) {
		/* At its max_calls: busy, so forward-on-busy applies. */
		log_info("call %s: '%s' is at its max_calls", call->id, call->cur_user);
		call->best_final = 486;
		b2b_str_copy(call->best_phrase, sizeof call->best_phrase, "Busy Here");
		if (!b2b_forward_on_failure(call))
			b2b_call_refuse(call, SIP_486_BUSY_HERE);
		return;
	}
	if (status == 0 && call->n_counted < sizeof call->counted / sizeof call->counted[0])
		b2b_str_copy(call->counted[call->n_counted++], sizeof call->counted[0],
			     call->cur_user);
	if (status != 0) {
		b2b_call_refuse(call, status, NULL);
		return;
	}
	for (unsigned i = 0; i < n && m < B2B_MAX_BRANCHES; i++) {
		url_t *u = url_make(home, contacts[i].uri);
		if (u && u->url_host)
			targets[m++] = u;
	}
	if (m == 0) {
		b2b_call_refuse(call, SIP_480_TEMPORARILY_UNAVAILABLE);
	} else {
		b2b_call_fork(call, targets, m);
		if (!call->ended && fwd && fwd->noanswer[0])
			b2b_start_no_answer_timer(call);
	}
	su_home_deinit(home);
}

/* Ask the location service where `user` (of our domain) is. */
static void b2b_lookup_user(struct b2b_call *call, const char *user)
{
	b2b_str_copy(call->cur_user, sizeof call->cur_user, user);
	if (call->n_tried < B2B_MAX_BRANCHES)
		b2b_str_copy(call->tried[call->n_tried++], sizeof call->tried[0], user);
	b2b_call_hold(call);
	if (registrar_lookup(call->b2b->reg, user,
			     call->n_counted < sizeof call->counted / sizeof call->counted[0] ?
			     call->id : NULL, b2b_on_lookup, call) < 0) {
		b2b_call_release(call);
		b2b_call_refuse(call, SIP_503_SERVICE_UNAVAILABLE);
	}
}

/* Authentication is settled: find where the call goes. */
static void b2b_call_route(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;
	sip_t const *sip = b2b_invite_of(call);
	url_t const *rq_url;
	const struct config_route *route;
	url_t ruri;
	url_t const *target = &ruri;

	if (sip == NULL) {   /* the caller's transaction is gone */
		b2b_call_end(call);
		return;
	}
	rq_url = sip->sip_request->rq_url;

	if (b2b->reg && registrar_is_local(b2b->reg, rq_url)) {
		b2b_lookup_user(call, rq_url->url_user ? rq_url->url_user : "");
		return;
	}
	if (route_lookup(b2b->cfg, rq_url->url_user, &route) < 0) {
		b2b_call_refuse(call, SIP_404_NOT_FOUND);
		return;
	}
	/* The route's target, keeping the dialled user unless the route names one. */
	ruri = *b2b->route_urls[route - b2b->cfg->routes];
	if (ruri.url_user == NULL)
		ruri.url_user = rq_url->url_user;
	b2b_call_fork(call, &target, 1);
}

/* ------------------------------------------------------------ call limits */

static const char *b2b_caller_user(struct b2b_call *call)
{
	sip_t const *sip = b2b_invite_of(call);

	return sip && sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "";
}

/* Count this call against `user`'s max_calls; next(call, status) follows. */
static void b2b_count_user(struct b2b_call *call, const char *user, registrar_begin_f *next)
{
	if (call->n_counted == sizeof call->counted / sizeof call->counted[0]) {
		next(call, 0);
		return;
	}
	b2b_str_copy(call->counted[call->n_counted], sizeof call->counted[0], user);
	b2b_call_hold(call);
	if (registrar_call_begin(call->b2b->reg, user, call->id, next, call) < 0)
		next(call, 503);   /* still held: next() releases */
}

static void b2b_on_caller_counted(void *arg, int status)
{
	struct b2b_call *call = arg;

	if (!b2b_call_release(call))
		return;
	if (status == 0)
		call->n_counted++;
	if (call->caller_cancelled) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	if (status == 486) {
		log_info("call %s: caller '%s' is at its max_calls", call->id,
			 call->counted[call->n_counted]);
		b2b_call_refuse(call, 403, "Call limit reached");
		return;
	}
	/* 503: Redis failed; a limit must not stop calls while Redis is away. */
	b2b_call_route(call);
}

static void b2b_on_auth(void *arg, int status, const char *sha256, const char *md5)
{
	struct b2b_call *call = arg;

	if (!b2b_call_release(call))
		return;
	if (call->caller_cancelled) {
		b2b_call_refuse(call, SIP_487_REQUEST_CANCELLED);
		return;
	}
	if (status == 407 && call->a_irq) {
		call->no_cdr = 1;   /* a challenge, not a call attempt */
		b2b_count_code(call->b2b, 407);
		nta_incoming_treply(call->a_irq, SIP_407_PROXY_AUTH_REQUIRED,
				    TAG_IF(sha256 && sha256[0], SIPTAG_PROXY_AUTHENTICATE_STR(sha256)),
				    SIPTAG_PROXY_AUTHENTICATE_STR(md5),
				    TAG_END());
		nta_incoming_destroy(call->a_irq);
		call->a_irq = NULL;
		b2b_call_end(call);
		return;
	}
	if (status != 0) {
		b2b_call_refuse(call, status, NULL);
		return;
	}
	/* An authenticated caller is a local subscriber: its max_calls apply. */
	b2b_count_user(call, b2b_caller_user(call), b2b_on_caller_counted);
}

/* An INVITE outside any dialog: a new call, or a refusal. */
static int b2b_on_invite(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip)
{
	struct shm_call rec;
	struct b2b_call *call;
	char a_tag[SHM_TAG_MAX];

	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_TOTAL, 1);
	if (sip->sip_to->a_tag) {
		/* A re-INVITE for a dialog we do not have. */
		b2b_refuse(b2b, irq, SIP_481_NO_TRANSACTION, NULL);
		return 0;
	}
	if (b2b->draining) {
		b2b_refuse(b2b, irq, SIP_503_SERVICE_UNAVAILABLE, "10");
		return 0;
	}
	if (sip->sip_max_forwards && sip->sip_max_forwards->mf_count == 0) {
		b2b_refuse(b2b, irq, SIP_483_TOO_MANY_HOPS, NULL);
		return 0;
	}
	if (b2b_via_is_ours(b2b, sip->sip_via)) {
		b2b_refuse(b2b, irq, SIP_482_LOOP_DETECTED, NULL);
		return 0;
	}

	nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());

	b2b_make_tag(b2b, a_tag, sizeof a_tag);
	b2b_shm_init(b2b, &rec, sip, a_tag);
	call = b2b_call_alloc(b2b);
	if (call == NULL) {
		b2b_refuse_full(b2b, irq);
		return 0;
	}
	b2b_call_set_id(call, rec.id);
	if (shm_call_insert(b2b->shm, &rec, &call->slot) < 0) {
		b2b_refuse_full(b2b, irq);
		b2b_call_free(call);   /* not in the table: only the pool entry to return */
		return 0;
	}
	if (b2b_a_leg_create(call, irq, sip, a_tag) < 0) {
		log_error("call %s: cannot create the A-leg dialog", call->id);
		if (call->a_irq == NULL)
			b2b_refuse(b2b, irq, SIP_500_INTERNAL_SERVER_ERROR, NULL);
		b2b_call_refuse(call, SIP_500_INTERNAL_SERVER_ERROR);
		return 0;
	}
	call->state = B2B_ROUTING;
	if (b2b->reg) {
		b2b_call_hold(call);
		if (registrar_check_invite(b2b->reg, irq, sip, b2b_on_auth, call) == 0)
			return 0;
		b2b_call_release(call);
	}
	b2b_call_route(call);
	return 0;
}

/*
 * A CANCEL that matches no transaction here may belong to a call of another
 * worker: after a worker restart the kernel may hash the caller's address to
 * a different socket of the public port.  The call table knows the owner:
 * answer the CANCEL (its 200 is hop-by-hop) and tell the owner, which
 * cancels the call as if the CANCEL had reached it (architecture.md).
 */
static int b2b_on_stray_cancel(b2b_t *b2b, sip_t const *sip)
{
	struct shm_call rec;
	uint32_t slot;
	char msg[SHM_CALLID_MAX + 16];

	if (b2b->tell == NULL ||
	    shm_call_find(b2b->shm, sip->sip_call_id->i_id, &slot, &rec) < 0 ||
	    rec.worker == b2b->worker)
		return 481;
	snprintf(msg, sizeof msg, "cancel %s", rec.a.call_id);
	if (b2b->tell(b2b->tell_arg, rec.worker, msg) < 0)
		return 481;
	log_info("call %s: its CANCEL reached worker %u, not its owner %u: handed over",
		 rec.id, b2b->worker, rec.worker);
	return 200;
}

/* Every request that matches no dialog lands here. */
static int b2b_on_request(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
			  sip_t const *sip)
{
	b2b_t *b2b = (b2b_t *)magic;

	switch (sip->sip_request->rq_method) {
	case sip_method_invite:
		return b2b_on_invite(b2b, irq, sip);
	case sip_method_register:
		if (b2b->reg == NULL)
			return 501;
		registrar_on_register(b2b->reg, irq, sip);
		return 0;
	case sip_method_ack:
		return 200;    /* stray ACK: absorb silently */
	case sip_method_options:
		return 200;
	case sip_method_cancel:
		return b2b_on_stray_cancel(b2b, sip);
	case sip_method_bye:
		return 481;    /* no such dialog */
	default:
		return 501;
	}
}

/* ------------------------------------------------------------ taking over calls */

/*
 * A restarted worker takes over the answered calls its predecessor left in
 * the call table.  The table holds both legs' dialogs (Call-IDs, tags, URIs,
 * remote targets, CSeqs), and every later message of those calls comes to
 * this worker's own port, which the new process binds again: recreating the
 * two NTA legs is enough for a BYE (or a re-INVITE) from either side to be
 * relayed as before.  Calls that were not answered yet cannot be continued
 * (their INVITE transactions died with the process): they are removed from
 * the table with a CDR (FAILED 500, ended by the system), so that no call
 * goes unrecorded.
 */

/* Our CSeq on a taken-over leg: above anything the dead process sent. */
#define B2B_ADOPT_CSEQ_GAP 10000u

static nta_leg_t *b2b_adopt_leg(b2b_t *b2b, nta_request_f *cb, void *magic,
				const struct shm_leg *l, uint32_t local_cseq, int we_are_uac)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	sip_contact_t *target = sip_contact_make(home, l->remote_target);
	sip_cseq_t cseq[1];
	nta_leg_t *leg;
	char from[SHM_URI_MAX + SHM_TAG_MAX + 8], to[SHM_URI_MAX + SHM_TAG_MAX + 8];

	snprintf(from, sizeof from, "<%s>;tag=%s", l->local_uri, l->local_tag);
	snprintf(to, sizeof to, "<%s>;tag=%s", l->remote_uri, l->remote_tag);
	sip_cseq_init(cseq);
	cseq->cs_seq = local_cseq;
	cseq->cs_method = sip_method_invite;
	cseq->cs_method_name = "INVITE";
	leg = nta_leg_tcreate(b2b->agent, cb, (nta_leg_magic_t *)magic,
			      SIPTAG_CALL_ID_STR(l->call_id), SIPTAG_FROM_STR(from),
			      SIPTAG_TO_STR(to), SIPTAG_CSEQ(cseq), TAG_END());
	if (leg && target) {
		if (we_are_uac)
			nta_leg_client_reroute(leg, NULL, target, 1);
		else
			nta_leg_server_route(leg, NULL, target);
	}
	su_home_deinit(home);
	return leg;
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

/* CDR and removal of a call that cannot be continued. */
static void b2b_drop_orphan(b2b_t *b2b, uint32_t slot, const struct shm_call *rec)
{
	struct b2b_call *call = b2b_call_from_table(b2b, slot, rec);

	if (call == NULL) {
		shm_call_remove(b2b->shm, slot);
		return;
	}
	call->final_code = 500;
	call->hangup_by = CDR_PARTY_SYSTEM;
	b2b_call_end(call);   /* writes the CDR, frees the slot */
}

static int b2b_adopt(b2b_t *b2b, uint32_t slot, const struct shm_call *rec)
{
	struct b2b_call *call;
	struct b2b_branch *br;
	uint32_t a_cseq = (uint32_t)((sip_now() >> 1) & 0x7ffffff) + B2B_ADOPT_CSEQ_GAP;

	if ((rec->state != SHM_CALL_ANSWERED && rec->state != SHM_CALL_HELD) ||
	    !rec->b.remote_tag[0] || !rec->a.remote_target[0] || !rec->b.remote_target[0])
		return -EINVAL;
	call = b2b_call_from_table(b2b, slot, rec);
	if (call == NULL)
		return -ENOSPC;
	call->state = B2B_CONFIRMED;
	call->answer_ms = rec->answer_ms;
	call->final_code = 200;
	call->held_by = (enum shm_party)rec->held_by;
	b2b_str_copy(call->answered_by, sizeof call->answered_by, rec->b.remote_target);

	call->a_leg = b2b_adopt_leg(b2b, b2b_on_a_request, call, &rec->a, a_cseq, 0);
	br = &call->br[0];
	br->call = call;
	br->leg = b2b_adopt_leg(b2b, b2b_on_b_request, br, &rec->b,
				rec->b.local_cseq + B2B_ADOPT_CSEQ_GAP, 1);
	br->acked = 1;
	br->final = 200;
	call->n_br = 1;
	call->winner = 0;
	if (call->a_leg == NULL || br->leg == NULL) {
		call->final_code = 500;
		call->hangup_by = CDR_PARTY_SYSTEM;
		b2b_call_end(call);
		return -ENOMEM;
	}
	return 0;
}

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
	unsigned torn, adopted = 0, dropped = 0;
	struct shm_call rec;

	torn = shm_call_reap_torn(b2b->shm, (uint16_t)b2b->worker);
	shm_call_foreach(b2b->shm, b2b_collect_slot, &v);
	for (unsigned i = 0; i < v.n; i++) {
		if (shm_call_read(b2b->shm, v.slot[i], &rec) < 0)
			continue;
		if (b2b_adopt(b2b, v.slot[i], &rec) == 0) {
			adopted++;
		} else {
			b2b_drop_orphan(b2b, v.slot[i], &rec);
			dropped++;
		}
	}
	free(v.slot);
	if (adopted || dropped || torn)
		log_warn("took over %u answered calls of the previous worker %u process; "
			 "%u unanswered ones ended (CDR FAILED 500), %u unreadable slots freed",
			 adopted, b2b->worker, dropped, torn);
}

/* ------------------------------------------------------------ agent */

static int b2b_parse_routes(b2b_t *b2b)
{
	const struct config *cfg = b2b->cfg;

	b2b->route_urls = su_zalloc(b2b->home, (cfg->n_routes + 1) * sizeof *b2b->route_urls);
	if (b2b->route_urls == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		b2b->route_urls[i] = url_make(b2b->home, cfg->routes[i].target);
		if (b2b->route_urls[i] == NULL || b2b->route_urls[i]->url_host == NULL) {
			log_error("route %zu: cannot parse target %s", i, cfg->routes[i].target);
			return -EINVAL;
		}
	}
	return 0;
}

static char *b2b_host_for_uri(su_home_t *home, const char *host)
{
	/* An IPv6 literal goes in brackets in a SIP URI. */
	return strchr(host, ':') ? su_sprintf(home, "[%s]", host) : su_strdup(home, host);
}

static int b2b_agent_create(b2b_t *b2b)
{
	const struct config *cfg = b2b->cfg;
	int own_port = cfg->worker_port_base + (int)b2b->worker;
	char *listen = b2b_host_for_uri(b2b->home, cfg->listen);
	char *adv = b2b_host_for_uri(b2b->home, cfg->advertise);
	char *pub_url = su_sprintf(b2b->home, "sip:%s:%d;transport=udp", listen, cfg->sip_port);
	char *own_url = su_sprintf(b2b->home, "sip:%s:%d;transport=udp", listen, own_port);

	b2b->agent = nta_agent_create(b2b->root, URL_STRING_MAKE(pub_url), NULL, NULL,
				      TPTAG_IDENT(B2B_IDENT_PUBLIC),
				      NTATAG_UA(1),
				      NTATAG_CANCEL_487(0),
				      NTATAG_SERVER_RPORT(1),
				      NTATAG_CLIENT_RPORT(1),
				      NTATAG_UDP_MTU(65535),
				      NTATAG_TIMER_C((unsigned)cfg->invite_timeout * 1000u),
				      NTATAG_MAX_PROCEEDING(cfg->call_capacity * 2u),
				      TAG_END());
	if (b2b->agent == NULL) {
		log_error("cannot listen on %s: %m", pub_url);
		return -EADDRINUSE;
	}
	if (nta_agent_add_tport(b2b->agent, URL_STRING_MAKE(own_url),
				TPTAG_IDENT(B2B_IDENT_OWN), TAG_END()) < 0) {
		log_error("cannot listen on %s: %m", own_url);
		return -EADDRINUSE;
	}
	b2b->contact = sip_contact_format(b2b->home, "<sip:%s@%s:%d;transport=udp>",
					  cfg->node_id, adv, own_port);
	b2b->default_leg = nta_leg_tcreate(b2b->agent, b2b_on_request, (nta_leg_magic_t *)b2b,
					   NTATAG_NO_DIALOG(1), TAG_END());
	if (b2b->contact == NULL || b2b->default_leg == NULL)
		return -ENOMEM;
	return 0;
}

int b2b_create(su_root_t *root, const struct config *cfg, shm_t *shm,
	       unsigned worker, unsigned generation, b2b_t **out)
{
	b2b_t *b2b = su_home_new(sizeof *b2b);
	int ret;

	if (b2b == NULL)
		return -ENOMEM;
	b2b->root = root;
	b2b->cfg = cfg;
	b2b->shm = shm;
	b2b->worker = worker;
	b2b->generation = generation;
	b2b->epoch_ms = shm_now_ms();
	if (getrandom(&b2b->rng, sizeof b2b->rng, 0) != sizeof b2b->rng || b2b->rng == 0)
		b2b->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)shm_now_ms();

	b2b->pool = calloc(cfg->call_capacity, sizeof *b2b->pool);
	if (b2b->pool == NULL) {
		su_home_unref(b2b->home);
		return -ENOMEM;
	}
	for (unsigned i = cfg->call_capacity; i-- > 0;) {
		b2b->pool[i].next_free = b2b->free_list;
		b2b->free_list = &b2b->pool[i];
	}
	ret = b2b_parse_routes(b2b);
	if (ret == 0)
		ret = b2b_agent_create(b2b);
	if (ret < 0) {
		b2b_destroy(b2b);
		return ret;
	}
	*out = b2b;
	return 0;
}

void b2b_destroy(b2b_t *b2b)
{
	if (b2b == NULL)
		return;
	for (unsigned i = 0; i < b2b->cfg->call_capacity; i++)
		if (b2b->pool[i].b2b)
			b2b_call_end(&b2b->pool[i]);
	if (b2b->default_leg)
		nta_leg_destroy(b2b->default_leg);
	if (b2b->agent)
		nta_agent_destroy(b2b->agent);
	free(b2b->pool);
	su_home_unref(b2b->home);
}

void b2b_set_cdr_writer(b2b_t *b2b, struct cdr_writer *w)
{
	b2b->cdr = w;
}

void b2b_set_registrar(b2b_t *b2b, struct registrar *reg)
{
	b2b->reg = reg;
}

void b2b_set_draining(b2b_t *b2b, int draining)
{
	b2b->draining = draining;
}

unsigned b2b_active_calls(const b2b_t *b2b)
{
	return b2b->active;
}

/* End a call from our side: CANCEL what is pending and answer the caller
 * `status`, or BYE both legs of an answered call. */
static void b2b_call_abort(struct b2b_call *call, int status)
{
	struct b2b_branch *br;

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
		if (!br->acked)
			b2b_ack_branch(br);
		b2b_bye_and_forget(call->a_leg);
		b2b_bye_and_forget(br->leg);
		b2b_call_end(call);
		break;
	case B2B_CANCELLING:
	case B2B_ENDING:
		break;   /* already on its way out */
	}
}

void b2b_hangup_all(b2b_t *b2b)
{
	for (unsigned i = 0; i < b2b->cfg->call_capacity; i++) {
		struct b2b_call *call = &b2b->pool[i];

		if (call->b2b != NULL && !call->ended)
			b2b_call_abort(call, 503);
	}
}

void b2b_expire_calls(b2b_t *b2b)
{
	uint64_t limit = (uint64_t)b2b->cfg->max_call_duration * 1000u;
	uint64_t now = shm_now_ms();

	if (limit == 0)
		return;
	for (unsigned i = 0; i < b2b->cfg->call_capacity; i++) {
		struct b2b_call *call = &b2b->pool[i];

		if (call->b2b == NULL || call->ended || call->answer_ms == 0 ||
		    now - call->answer_ms < limit ||
		    (call->state != B2B_ANSWERED && call->state != B2B_CONFIRMED))
			continue;
		log_warn("call %s: up for %llu s, longer than max_call_duration: ending it",
			 call->id, (unsigned long long)((now - call->answer_ms) / 1000));
		b2b_call_abort(call, 408);
	}
}

int b2b_cancel_call(b2b_t *b2b, const char *a_call_id)
{
	struct shm_call rec;
	uint32_t slot;

	if (shm_call_find(b2b->shm, a_call_id, &slot, &rec) < 0 || rec.worker != b2b->worker)
		return -ENOENT;
	for (unsigned i = 0; i < b2b->cfg->call_capacity; i++) {
		struct b2b_call *call = &b2b->pool[i];

		if (call->b2b == NULL || call->ended || call->slot != slot)
			continue;
		if (b2b_caller_cancels(call) < 0)
			return -EALREADY;
		log_info("call %s: cancelled by a CANCEL another worker received", call->id);
		return 0;
	}
	return -ENOENT;
}

void b2b_set_tell(b2b_t *b2b, b2b_tell_f *fn, void *arg)
{
	b2b->tell = fn;
	b2b->tell_arg = arg;
}

int b2b_kill(b2b_t *b2b, const char *id)
{
	for (unsigned i = 0; i < b2b->cfg->call_capacity; i++) {
		struct b2b_call *call = &b2b->pool[i];

		if (call->b2b == NULL || call->ended || strcmp(call->id, id) != 0)
			continue;
		log_info("call %s: killed by an operator (state %d)", id, (int)call->state);
		call->killed = 1;
		b2b_call_abort(call, 487);
		return 0;
	}
	return -ENOENT;
}

void b2b_publish_stats(b2b_t *b2b)
{
	usize_t in = 0, out = 0;

	nta_agent_get_stats(b2b->agent, NTATAG_S_RECV_MSG_REF(in),
			    NTATAG_S_SENT_MSG_REF(out), TAG_END());
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_MSGS_IN,
			(int64_t)(in - b2b->published_in));
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_MSGS_OUT,
			(int64_t)(out - b2b->published_out));
	b2b->published_in = in;
	b2b->published_out = out;
}
