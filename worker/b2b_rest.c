/*
 * b2b_rest — calls at rest: an established call that has been quiet for
 * call_rest_after seconds gives back its two Sofia dialogs.  See b2b_int.h
 * for the map of the b2b files.
 *
 * Design note.  Most of what an established call costs in memory is its
 * two NTA legs: each is a Sofia home with its own block table and copies
 * of Call-ID, From, To, route set and target (about 2 KB each,
 * docs/architecture.md "Memory").  Yet for nearly all of its life a call
 * sends and receives nothing, and its shared call table slot already holds
 * what the legs hold: that is how a successor takes calls over
 * (b2b_adopt.c).  So a quiet call writes what changed since its answer
 * (each leg's local CSeq, remote target and route set) into its slot,
 * destroys both legs and enters a small index by Call-ID.
 *
 * It wakes when it must act:
 *   - a request of either party finds no leg in NTA and reaches the
 *     default leg (b2b.c): b2b_rest_on_request finds the call by its
 *     Call-ID and tags, rebuilds both legs from the slot (b2b_leg_rebuild)
 *     and hands the request to the leg's own callback, so it is relayed
 *     exactly as if the call had never rested;
 *   - we must send on it: a session refresh, the BYEs of a session that
 *     expired, of max_call_duration, of a kill or a stop (b2b_call_wake).
 * The requests of the dialog that NTA answers by itself (retransmissions)
 * match transactions, not legs, so nothing changes for them.
 *
 * What stays awake: a call with anything in flight (a relayed request, a
 * BYE, a refresh, a Redis request), a call with a leg on a connection (TCP
 * or TLS: the leg follows the connection, not the slot), and a call whose
 * dialog does not fit its slot (a very long URI or route set).  A rebuilt
 * leg loses only the display names of From and To, which a request inside
 * a dialog may drop (RFC 3261 12.2.1.1: the tags identify the dialog).
 *
 * At rest a call also drops the SDP copy of a leg whose session we do not
 * refresh (b2b_session_rest): it serves only our refresh re-INVITEs.
 *
 * Once a second the worker's tick (b2b_rest_calls) walks the pool, as the
 * other per-second checks do; the index is one array of chain heads sized
 * to call_capacity, chained through the calls themselves, so resting and
 * waking allocate nothing of ours.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_string.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "worker/b2b_int.h"

/* ------------------------------------------------------------ the index */

/* FNV-1a: Call-IDs are random enough that a simple hash spreads them. */
static uint32_t b2b_rest_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

int b2b_rest_create(b2b_t *b2b)
{
	unsigned n = 64;

	while (n < b2b->cfg->call_capacity && n < (1u << 30))
		n <<= 1;
	for (unsigned i = 0; i < 2; i++) {
		b2b->rest_index[i] = calloc(n, sizeof *b2b->rest_index[i]);
		if (b2b->rest_index[i] == NULL)
			return -ENOMEM;
	}
	b2b->rest_mask = n - 1;
	return 0;
}

void b2b_rest_destroy(b2b_t *b2b)
{
	for (unsigned i = 0; i < 2; i++) {
		free(b2b->rest_index[i]);
		b2b->rest_index[i] = NULL;
	}
}

/* Index i (B2B_LEG_A or B2B_LEG_B) chains the calls at rest by that leg's
 * Call-ID, through call->rest_next[i]. */
static void b2b_rest_link(struct b2b_call *call, unsigned i, const char *call_id)
{
	b2b_t *b2b = call->b2b;
	struct b2b_call **head;

	call->rest_hash[i] = b2b_rest_hash(call_id);
	head = &b2b->rest_index[i][call->rest_hash[i] & b2b->rest_mask];
	call->rest_next[i] = *head;
	*head = call;
}

static void b2b_rest_unlink(struct b2b_call *call, unsigned i)
{
	b2b_t *b2b = call->b2b;
	struct b2b_call **p = &b2b->rest_index[i][call->rest_hash[i] & b2b->rest_mask];

	while (*p != NULL && *p != call)
		p = &(*p)->rest_next[i];
	if (*p == call)
		*p = call->rest_next[i];
	call->rest_next[i] = NULL;
}

/* ------------------------------------------------------------ coming to rest */

/* What changed on a leg since its answer, taken from the live NTA leg. */
static int b2b_rest_snapshot(nta_leg_t *leg, struct b2b_rest_leg *out)
{
	sip_route_t const *route = NULL;
	sip_contact_t const *target = NULL;
	issize_t n;

	out->local_cseq = nta_leg_get_seq(leg);
	if (nta_leg_get_route(leg, &route, &target) < 0 || target == NULL)
		return -ENOENT;
	/* url_e() says how long the URL is, whether or not it fitted. */
	n = url_e(out->remote_target, (isize_t)sizeof out->remote_target, target->m_url);
	if (n < 0 || (size_t)n >= sizeof out->remote_target)
		return -E2BIG;
	return b2b_route_copy(out->route_set, sizeof out->route_set, route, 0);
}

/* Does the slot hold a whole dialog for this leg (nothing cut off)? */
static int b2b_rest_leg_whole(const struct shm_leg *l)
{
	return l->call_id[0] && l->local_tag[0] && l->remote_tag[0] && l->local_uri[0] &&
	       l->remote_uri[0] && l->transport == SHM_TP_UDP;
}

/* Nothing in flight, nothing on a connection, quiet for `after` ms. */
static int b2b_rest_quiet(struct b2b_call *call, uint64_t now, uint64_t after)
{
	struct b2b_branch *br;

	if (call->b2b == NULL || call->ended || call->at_rest || call->state != B2B_CONFIRMED ||
	    now - call->active_ms < after)
		return 0;
	if (call->a_irq || call->relay_irq || call->relay_orq || call->bye_irq ||
	    call->bye_orq || call->refresh_orq || call->na_timer || call->holds ||
	    call->a_stream || call->a_leg == NULL || call->winner < 0)
		return 0;
	for (unsigned i = 0; i < call->n_br; i++) {
		br = b2b_branch_at(call, i);
		if (br->orq != NULL || ((int)i != call->winner && br->leg != NULL))
			return 0;
	}
	br = b2b_winner(call);
	return br->leg != NULL && br->acked && (br->nat == NULL || br->nat->ident[0] == '\0');
}

static void b2b_rest_count(b2b_t *b2b)
{
	shm_gauge_set(b2b->shm, b2b->worker, SHM_CTR_CALLS_AT_REST, b2b->at_rest);
}

/* Write the dialogs into the slot, free the legs, enter the index. */
static int b2b_call_rest(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;
	struct b2b_branch *br = b2b_winner(call);
	struct b2b_rest_leg a, b;
	struct shm_call rec;
	int ret;

	ret = shm_call_read(b2b->shm, call->slot, &rec);
	if (ret < 0)
		return ret;
	if (!b2b_rest_leg_whole(&rec.a) || !b2b_rest_leg_whole(&rec.b))
		return -E2BIG;
	ret = b2b_rest_snapshot(call->a_leg, &a);
	if (ret == 0)
		ret = b2b_rest_snapshot(br->leg, &b);
	if (ret < 0)
		return ret;
	b2b_publish_rest(call, &a, &b);
	b2b_session_rest(call);
	nta_leg_destroy(call->a_leg);
	nta_leg_destroy(br->leg);
	call->a_leg = NULL;
	br->leg = NULL;
	b2b_rest_link(call, B2B_LEG_A, rec.a.call_id);
	b2b_rest_link(call, B2B_LEG_B, rec.b.call_id);
	call->at_rest = 1;
	b2b->at_rest++;
	b2b_rest_count(b2b);
	return 0;
}

unsigned b2b_rest_calls(b2b_t *b2b)
{
	uint64_t after = (uint64_t)b2b->cfg->call_rest_after * 1000u;
	uint64_t now = mono_ms();
	unsigned n = 0;

	if (after == 0)
		return 0;   /* off; calls at rest stay so until they wake */
	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (!b2b_rest_quiet(call, now, after))
			continue;
		if (b2b_call_rest(call) == 0)
			n++;
		else
			call->active_ms = now;   /* stays awake: look again after `after` */
	}
	return n;
}

/* ------------------------------------------------------------ waking */

/* Out of the index. */
void b2b_rest_forget(struct b2b_call *call)
{
	if (!call->at_rest)
		return;
	b2b_rest_unlink(call, B2B_LEG_A);
	b2b_rest_unlink(call, B2B_LEG_B);
	call->at_rest = 0;
	call->b2b->at_rest--;
	b2b_rest_count(call->b2b);
}

/* Both legs again from the slot `rec`. 0, or -ENOMEM (the call has no
 * legs then: its caller ends it). */
static int b2b_rest_rebuild(struct b2b_call *call, const struct shm_call *rec)
{
	b2b_t *b2b = call->b2b;
	struct b2b_branch *br = b2b_winner(call);

	b2b_rest_forget(call);
	call->active_ms = mono_ms();
	shm_counter_add(b2b->shm, b2b->worker, SHM_CTR_CALLS_WOKEN, 1);
	call->a_leg = b2b_leg_rebuild(b2b, b2b_on_a_request, call, &rec->a,
				      rec->a.local_cseq, &call->a_addr);
	br->leg = b2b_leg_rebuild(b2b, b2b_on_b_request, br, &rec->b,
				  rec->b.local_cseq, &br->addr);
	if (call->a_leg == NULL || br->leg == NULL) {
		log_error("call %s: cannot rebuild its dialogs after rest (no memory): ending it",
			  call->id);
		return -ENOMEM;
	}
	return 0;
}

int b2b_call_wake(struct b2b_call *call)
{
	struct shm_call rec;

	if (!call->at_rest)
		return 0;
	if (shm_call_read(call->b2b->shm, call->slot, &rec) < 0) {
		log_error("call %s: its slot cannot be read to wake it: ending it", call->id);
		b2b_rest_forget(call);
		return -EIO;
	}
	return b2b_rest_rebuild(call, &rec);
}

/* The call at rest whose dialog `sip` is in, by index i, read into *rec. */
static struct b2b_call *b2b_rest_find(b2b_t *b2b, unsigned i, sip_t const *sip,
				      struct shm_call *rec)
{
	const char *call_id = sip->sip_call_id->i_id;
	uint32_t h = b2b_rest_hash(call_id);
	const struct shm_leg *l = i == B2B_LEG_A ? &rec->a : &rec->b;   /* once *rec is read */

	for (struct b2b_call *c = b2b->rest_index[i][h & b2b->rest_mask]; c; c = c->rest_next[i]) {
		if (c->rest_hash[i] != h || shm_call_read(b2b->shm, c->slot, rec) < 0)
			continue;
		if (strcmp(l->call_id, call_id) == 0 &&
		    strcmp(l->remote_tag, sip->sip_from->a_tag) == 0 &&
		    strcmp(l->local_tag, sip->sip_to->a_tag) == 0)
			return c;
	}
	return NULL;
}

int b2b_rest_on_request(b2b_t *b2b, nta_incoming_t *irq, sip_t const *sip, int *status)
{
	struct shm_call rec;

	if (b2b->at_rest == 0 || sip->sip_call_id == NULL || sip->sip_from == NULL ||
	    sip->sip_from->a_tag == NULL || sip->sip_to == NULL || sip->sip_to->a_tag == NULL)
		return -ENOENT;
	for (unsigned i = B2B_LEG_A; i <= B2B_LEG_B; i++) {
		struct b2b_call *call = b2b_rest_find(b2b, i, sip, &rec);
		struct b2b_branch *br;

		if (call == NULL)
			continue;
		if (b2b_rest_rebuild(call, &rec) < 0) {
			*status = 500;
			call->hangup_by = CDR_PARTY_SYSTEM;
			b2b_call_end(call);
			return 0;
		}
		br = b2b_winner(call);
		*status = i == B2B_LEG_A
			  ? b2b_on_a_request((nta_leg_magic_t *)call, call->a_leg, irq, sip)
			  : b2b_on_b_request((nta_leg_magic_t *)br, br->leg, irq, sip);
		return 0;
	}
	return -ENOENT;
}
