/*
 * b2b_adopt — taking over the calls of a dead predecessor.
 *
 * Design note.  A restarted worker takes over the answered calls its
 * predecessor left in the call table.  The table holds both legs' dialogs
 * (Call-IDs, tags, URIs, remote targets, CSeqs), and every later message of
 * those calls comes to this worker's own port, which the new process binds
 * again: recreating the two NTA legs is enough for a BYE (or a re-INVITE)
 * from either side to be relayed as before (b2b_relay.c); an adopted call
 * starts CONFIRMED.  Calls that were not answered yet cannot be continued
 * (their INVITE transactions died with the process): they are removed from
 * the table with a CDR (FAILED 500, ended by the system), so that no call
 * goes unrecorded ("orphans").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_tag.h>

#include "b2bua/log.h"
#include "worker/b2b_int.h"

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
		b2b_unpublish_slot(b2b, slot);
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

	torn = b2b_unpublish_torn(b2b);
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
