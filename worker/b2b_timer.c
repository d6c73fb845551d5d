/*
 * b2b_timer — the timers that bound a call whatever its peers do.  See
 * b2b_int.h for the map of the b2b files.
 *
 * Design note.  Two kinds of timer, neither allocated per call (the call
 * pool preallocates; a worker has one Sofia timer of each kind):
 *
 * invite_timeout.  From the moment a call's INVITE goes to the B-leg(s)
 * (b2b_call_fork; again at each forward), the caller waits at most
 * invite_timeout for a final answer, whether or not the callee sends
 * anything.  Every deadline is "now + invite_timeout", so the waiting calls
 * form a FIFO sorted by deadline (an intrusive list through the pool) and
 * one Sofia timer, armed for the head, serves them all.  On expiry the
 * caller gets 408 at once (b2b_call_give_up): B-legs that had a provisional
 * answer are CANCELled, the others are left to NTA's Timer B (NTA sends
 * no CANCEL before a provisional, RFC 3261 9.1), and a late 2xx is ACKed
 * and released with BYE (b2b_branch.c).
 *
 * Session timers (RFC 4028).  Each leg negotiates its own session
 * (session_timer.c has the arithmetic): on the A-leg b2bua is the UAS of
 * the caller's INVITE, on the B-leg the UAC of its own.  Refreshes from a
 * party cross to the other leg with that leg's headers when they are
 * re-INVITEs (the media may change) or UPDATEs towards a leg that uses
 * timers and allows UPDATE; other body-less UPDATEs are answered here.
 * Where b2bua is the refresher it refreshes every half interval, with
 * UPDATE when the peer allows it, else with a re-INVITE that repeats the
 * SDP we last sent on that leg (sdp_sent: a copy of the payload and its
 * Content-Type only, a few hundred bytes: a reference to the message would
 * keep the whole message, and through a response's parent the request it
 * answered, for as long as the call lasts).  A one-second tick walks the
 * answered calls; a leg whose session was not refreshed in time is gone:
 * BYE on both legs, one CDR whose hangup_by is the party of that leg.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"
#include "worker/b2b_int.h"
#include "worker/mem.h"

#define B2B_SESSION_TICK_MS   1000
#define B2B_REFRESH_RETRY_MS  2000

/* ------------------------------------------------------------ invite_timeout */

static void b2b_on_invite_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);

/* Arm the worker's timer for the earliest deadline, or stop it. */
static void b2b_invite_timer_arm(b2b_t *b2b)
{
	uint64_t now = mono_ms(), at;

	if (b2b->invite_timer == NULL)
		return;
	if (b2b->inv_head == NULL) {
		su_timer_reset(b2b->invite_timer);
		return;
	}
	at = b2b->inv_head->inv_deadline_ms;
	if (su_timer_set_interval(b2b->invite_timer, b2b_on_invite_timer, (su_timer_arg_t *)b2b,
				  (su_duration_t)(at > now ? at - now : 1)) < 0)
		log_error("cannot arm the invite_timeout timer");
}

/* The call no longer waits for an answer (answered, given up, ended). */
void b2b_invite_timer_stop(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;

	if (call->inv_deadline_ms == 0)
		return;
	if (call->inv_prev)
		call->inv_prev->inv_next = call->inv_next;
	else
		b2b->inv_head = call->inv_next;
	if (call->inv_next)
		call->inv_next->inv_prev = call->inv_prev;
	else
		b2b->inv_tail = call->inv_prev;
	call->inv_prev = call->inv_next = NULL;
	call->inv_deadline_ms = 0;
}

/* The caller waits invite_timeout from now (its INVITE went to the B-leg,
 * first or forwarded): the call goes to the tail, its deadline the latest. */
void b2b_invite_timer_start(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;

	b2b_invite_timer_stop(call);
	if (b2b->invite_timer == NULL) {
		b2b->invite_timer = su_timer_create(su_root_task(b2b->root), 0);
		if (b2b->invite_timer == NULL) {
			log_error("call %s: cannot create the invite_timeout timer", call->id);
			return;
		}
	}
	call->inv_deadline_ms = mono_ms() + (uint64_t)b2b->cfg->invite_timeout * 1000u;
	call->inv_prev = b2b->inv_tail;
	if (b2b->inv_tail)
		b2b->inv_tail->inv_next = call;
	else
		b2b->inv_head = call;
	b2b->inv_tail = call;
	if (b2b->inv_head == call)
		b2b_invite_timer_arm(b2b);
}

/* No final answer within invite_timeout: 408 to the caller now. */
static void b2b_invite_expired(struct b2b_call *call)
{
	if (call->ended || call->a_done || call->winner >= 0)
		return;
	log_info("call %s: no final answer within invite_timeout (%d s): 408 to the caller",
		 call->id, call->b2b->cfg->invite_timeout);
	call->timed_out = 1;
	call->forward_pending = 0;
	call->hangup_by = CDR_PARTY_SYSTEM;
	b2b_call_give_up(call, 408);
}

static void b2b_on_invite_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	b2b_t *b2b = (b2b_t *)arg;
	uint64_t now = mono_ms();
	struct b2b_call *call;

	while ((call = b2b->inv_head) != NULL && call->inv_deadline_ms <= now) {
		b2b_invite_timer_stop(call);
		b2b_invite_expired(call);
	}
	b2b_invite_timer_arm(b2b);
}

void b2b_timers_destroy(b2b_t *b2b)
{
	if (b2b->invite_timer)
		su_timer_destroy(b2b->invite_timer);
	if (b2b->session_tick)
		su_timer_destroy(b2b->session_tick);
	b2b->invite_timer = NULL;
	b2b->session_tick = NULL;
}

/* ------------------------------------------------------------ session timers: headers */

int b2b_session_on(const b2b_t *b2b)
{
	return b2b->cfg->session_expires > 0;
}

static const struct session_timer_cfg *b2b_session_cfg(b2b_t *b2b)
{
	b2b->st_cfg.session_expires = (unsigned)b2b->cfg->session_expires;
	b2b->st_cfg.min_se = (unsigned)b2b->cfg->min_se;
	return &b2b->st_cfg;
}

static unsigned b2b_session_delta(unsigned long v)
{
	return v > UINT_MAX ? UINT_MAX : (unsigned)v;
}

/* What a message said about session timers. */
static void b2b_session_hdrs_of(sip_t const *sip, struct session_timer_hdrs *h)
{
	memset(h, 0, sizeof *h);
	if (sip->sip_session_expires) {
		const char *r = sip->sip_session_expires->x_refresher;

		h->se = b2b_session_delta(sip->sip_session_expires->x_delta);
		if (r && strcasecmp(r, "uac") == 0)
			h->refresher = SESSION_TIMER_UAC;
		else if (r && strcasecmp(r, "uas") == 0)
			h->refresher = SESSION_TIMER_UAS;
	}
	if (sip->sip_min_se)
		h->min_se = b2b_session_delta(sip->sip_min_se->min_delta);
	h->supported = sip_has_supported(sip->sip_supported, "timer") ||
		       sip_has_feature(sip->sip_require, "timer");
}

/* Does the peer that sent `sip` accept UPDATE?  Its Allow says; without
 * one, what we knew stands. */
static void b2b_session_note_allow(struct b2b_session *s, sip_t const *sip)
{
	if (sip->sip_allow)
		s->peer_update = sip_is_allowed(sip->sip_allow, sip_method_update, "UPDATE");
}

static void b2b_session_format(struct b2b_st_hdrs *h, unsigned se, const char *refresher,
			       unsigned min_se)
{
	memset(h, 0, sizeof *h);
	h->supported = "timer";
	if (se && refresher)
		snprintf(h->se, sizeof h->se, "%u;refresher=%s", se, refresher);
	else if (se)
		snprintf(h->se, sizeof h->se, "%u", se);
	if (min_se)
		snprintf(h->min_se, sizeof h->min_se, "%u", min_se);
}

/* Headers of a request b2bua sends on `leg` (an INVITE, a relayed or our
 * own refresh): our offer, and our role when a session is in force. */
void b2b_session_request_hdrs(struct b2b_call *call, enum b2b_leg leg, struct b2b_st_hdrs *h)
{
	const struct session_timer *cur = &call->sess[leg].st;
	unsigned se, min_se;

	memset(h, 0, sizeof *h);
	if (!b2b_session_on(call->b2b))
		return;
	session_timer_offer(b2b_session_cfg(call->b2b), cur->interval ? cur : NULL, &se, &min_se);
	b2b_session_format(h, se, cur->interval ? session_timer_refresher_name(cur, 1) : NULL,
			   min_se);
}

/*
 * A request from the peer of `leg` (the caller's INVITE, or a refresh) that
 * b2bua answers as UAS: our answer goes to sess[leg].answer, used when the
 * 2xx is sent (b2b_session_answer_hdrs, b2b_session_answered).  -ERANGE: its
 * Session-Expires is too small, answer 422 with Min-SE *min_se.
 */
int b2b_session_uas(struct b2b_call *call, enum b2b_leg leg, sip_t const *req, unsigned *min_se)
{
	struct session_timer_hdrs h;

	if (!b2b_session_on(call->b2b))
		return 0;
	b2b_session_hdrs_of(req, &h);
	b2b_session_note_allow(&call->sess[leg], req);
	return session_timer_uas(b2b_session_cfg(call->b2b), &h, &call->sess[leg].answer, min_se);
}

/* Headers of our 2xx to that request. */
void b2b_session_answer_hdrs(struct b2b_call *call, enum b2b_leg leg, struct b2b_st_hdrs *h)
{
	const struct session_timer *a = &call->sess[leg].answer;

	memset(h, 0, sizeof *h);
	if (!b2b_session_on(call->b2b))
		return;
	b2b_session_format(h, a->interval,
			   a->interval ? session_timer_refresher_name(a, 0) : NULL, 0);
	if (a->interval && a->peer_timer)
		h->require = "timer";
}

/* Our 2xx went out: the leg's session is refreshed with what it said. */
void b2b_session_answered(struct b2b_call *call, enum b2b_leg leg)
{
	struct b2b_session *s = &call->sess[leg];

	if (!b2b_session_on(call->b2b))
		return;
	s->st = s->answer;
	s->refreshed_ms = mono_ms();
	s->next_try_ms = 0;
}

/* A 2xx to a request b2bua sent on `leg`: its session is what the 2xx says
 * (none when it has no Session-Expires, RFC 4028 7.2). */
void b2b_session_uac_2xx(struct b2b_call *call, enum b2b_leg leg, sip_t const *resp)
{
	struct b2b_session *s = &call->sess[leg];
	struct session_timer_hdrs h;

	if (!b2b_session_on(call->b2b))
		return;
	b2b_session_hdrs_of(resp, &h);
	b2b_session_note_allow(s, resp);
	session_timer_uac(&h, &s->st, &s->st);
	s->refreshed_ms = mono_ms();
	s->next_try_ms = 0;
}

/* `msg` (a reference, ours now) went out on `leg`: if it carries SDP, it is
 * what a refresh re-INVITE of ours repeats. */
void b2b_session_keep_sdp(struct b2b_call *call, enum b2b_leg leg, msg_t *msg)
{
	sip_t const *sip = msg ? sip_object(msg) : NULL;
	char type[256] = "";
	struct b2b_sdp *sdp;
	size_t tlen;

	if (sip == NULL || sip->sip_payload == NULL || !b2b_session_on(call->b2b)) {
		msg_destroy(msg);
		return;
	}
	if (sip->sip_content_type &&
	    msg_header_field_e(type, sizeof type, (msg_header_t const *)sip->sip_content_type,
			       0) >= (issize_t)sizeof type)
		type[0] = '\0';
	tlen = strlen(type);
	/* kept for the call's life, also at rest: worker/mem.c */
	sdp = mem_call_malloc(sizeof *sdp + sip->sip_payload->pl_len + tlen + 2);
	if (sdp) {
		sdp->len = sip->sip_payload->pl_len;
		memcpy(sdp->text, sip->sip_payload->pl_data, sdp->len);
		sdp->text[sdp->len] = '\0';
		memcpy(sdp->text + sdp->len + 1, type, tlen + 1);
	}
	msg_destroy(msg);
	if (sdp == NULL)
		return;   /* out of memory: the previous SDP stays (a refresh repeats it) */
	free(call->sdp_sent[leg]);
	call->sdp_sent[leg] = sdp;
}

/*
 * The caller's INVITE, before the first B-leg: is its Session-Expires
 * acceptable?  0, or -ERANGE after answering 422 (the call then ends, with
 * no CDR: like a challenge, it is a step of the caller's attempt, which it
 * repeats with a larger interval).
 */
int b2b_session_check_a(struct b2b_call *call, sip_t const *invite)
{
	unsigned min_se = 0;
	char buf[16];

	if (b2b_session_uas(call, B2B_LEG_A, invite, &min_se) == 0)
		return 0;
	snprintf(buf, sizeof buf, "%u", min_se);
	log_info("call %s: the caller's Session-Expires is below %u s: 422", call->id, min_se);
	call->no_cdr = 1;
	call->final_code = b2b_count_code(call->b2b, 422);
	nta_incoming_treply(call->a_irq, 422, "Session Interval Too Small",
			    SIPTAG_MIN_SE_STR(buf), TAG_END());
	nta_incoming_destroy(call->a_irq);
	call->a_irq = NULL;
	call->hangup_by = CDR_PARTY_SYSTEM;
	b2b_call_end(call);
	return -ERANGE;
}

/*
 * A body-less UPDATE from the peer of `leg`: a refresh only.  It crosses to
 * the other leg when that leg uses session timers and accepts UPDATE (the
 * refresh goes end to end); otherwise b2bua answers it here.  0 when
 * answered here (irq consumed), -EAGAIN when it is to be relayed.
 */
int b2b_session_answer_update(struct b2b_call *call, enum b2b_leg leg, nta_incoming_t *irq,
			      sip_t const *sip)
{
	const struct b2b_session *other = &call->sess[leg == B2B_LEG_A ? B2B_LEG_B : B2B_LEG_A];
	struct b2b_st_hdrs h;
	unsigned min_se = 0;
	char buf[16];

	if (!b2b_session_on(call->b2b) || sip->sip_payload ||
	    (other->st.interval && other->peer_update))
		return -EAGAIN;
	if (b2b_session_uas(call, leg, sip, &min_se) < 0) {
		snprintf(buf, sizeof buf, "%u", min_se);
		nta_incoming_treply(irq, 422, "Session Interval Too Small",
				    SIPTAG_MIN_SE_STR(buf), TAG_END());
	} else {
		b2b_session_answer_hdrs(call, leg, &h);
		b2b_session_answered(call, leg);
		nta_incoming_treply(irq, SIP_200_OK, SIPTAG_CONTACT(b2b_leg_contact(call, leg)),
				    TAG_IF(h.se[0], SIPTAG_SESSION_EXPIRES_STR(h.se)),
				    TAG_IF(h.require, SIPTAG_REQUIRE_STR(h.require)),
				    SIPTAG_SUPPORTED_STR("timer"), TAG_END());
	}
	nta_incoming_destroy(irq);
	return 0;
}

/* Is our own refresh re-INVITE in flight, on either leg?  A re-INVITE that
 * crosses it gets 491 (RFC 3261 14.2). */
int b2b_session_refreshing(const struct b2b_call *call, enum b2b_leg leg)
{
	return call->refresh_orq != NULL && call->refresh_invite;
}

/* ------------------------------------------------------------ session timers: the tick */

static nta_leg_t *b2b_session_leg(struct b2b_call *call, enum b2b_leg leg)
{
	struct b2b_branch *br = b2b_winner(call);

	if (leg == B2B_LEG_A)
		return call->a_leg;
	return br ? br->leg : NULL;
}

/* The peer of `leg` let its session expire: it is gone.  End the call. */
static void b2b_session_expired(struct b2b_call *call, enum b2b_leg leg)
{
	struct b2b_branch *br = b2b_winner(call);

	log_info("call %s: the %s's session expired (RFC 4028, interval %u s): ending the call",
		 call->id, leg == B2B_LEG_A ? "caller" : "callee", call->sess[leg].st.interval);
	call->hangup_by = leg == B2B_LEG_A ? CDR_PARTY_CALLER : CDR_PARTY_CALLEE;
	if (b2b_call_wake(call) == 0) {   /* at rest: its legs again first */
		if (br && !br->acked)
			b2b_ack_branch(br);
		b2b_bye_and_forget(call->a_leg);
		if (br)
			b2b_bye_and_forget(br->leg);
	}
	b2b_call_end(call);
}

static int b2b_on_refresh_response(nta_outgoing_magic_t *magic, nta_outgoing_t *orq,
				   sip_t const *sip)
{
	struct b2b_call *call = (struct b2b_call *)magic;
	enum b2b_leg leg = call->refresh_leg;
	struct b2b_session *s = &call->sess[leg];
	int status = nta_outgoing_status(orq);

	if (status < 200)
		return 0;
	if (status < 300) {
		if (sip)
			b2b_session_uac_2xx(call, leg, sip);
		if (call->refresh_invite)
			b2b_ack_leg(call, b2b_session_leg(call, leg), nta_outgoing_cseq(orq), 0);
	} else if (status == 408 || status == 481) {
		/* RFC 4028 10: the peer is gone (or knows no such dialog). */
		nta_outgoing_destroy(orq);
		call->refresh_orq = NULL;
		b2b_session_expired(call, leg);
		return 0;
	} else {
		if ((status == 405 || status == 501) && !call->refresh_invite)
			s->peer_update = 0;   /* try a re-INVITE next time */
		s->next_try_ms = mono_ms() + B2B_REFRESH_RETRY_MS;
		log_info("call %s: our session refresh on the %s leg got %d", call->id,
			 leg == B2B_LEG_A ? "A" : "B", status);
	}
	nta_outgoing_destroy(orq);
	call->refresh_orq = NULL;
	return 0;
}

/* We are the refresher of `leg` and it is time: UPDATE, or a re-INVITE
 * repeating the SDP we last sent there. */
static void b2b_session_refresh(struct b2b_call *call, enum b2b_leg leg)
{
	struct b2b_session *s = &call->sess[leg];
	nta_leg_t *l;
	struct b2b_sdp *sdp = call->sdp_sent[leg];   /* pl points into it: not const */
	/* The payload goes by its length (SIPTAG_PAYLOAD), so any bytes repeat as sent. */
	int invite = !s->peer_update && sdp;
	sip_payload_t pl[1];
	const char *ctype = sdp ? sdp->text + sdp->len + 1 : "";
	struct b2b_st_hdrs h;

	if (b2b_call_wake(call) < 0) {   /* at rest: its legs again first */
		call->hangup_by = CDR_PARTY_SYSTEM;
		b2b_call_end(call);
		return;
	}
	l = b2b_session_leg(call, leg);
	if (l == NULL)
		return;
	sip_payload_init(pl);
	if (invite) {
		pl->pl_data = sdp->text;
		pl->pl_len = sdp->len;
	}
	b2b_session_request_hdrs(call, leg, &h);
	call->refresh_orq = nta_outgoing_tcreate(
		l, b2b_on_refresh_response, (nta_outgoing_magic_t *)call, b2b_leg_route(l),
		invite ? sip_method_invite : sip_method_update, invite ? "INVITE" : "UPDATE", NULL,
		SIPTAG_CONTACT(b2b_leg_contact(call, leg)),
		SIPTAG_SUPPORTED_STR(h.supported),
		TAG_IF(h.se[0], SIPTAG_SESSION_EXPIRES_STR(h.se)),
		TAG_IF(h.min_se[0], SIPTAG_MIN_SE_STR(h.min_se)),
		TAG_IF(invite && ctype[0], SIPTAG_CONTENT_TYPE_STR(ctype)),
		TAG_IF(invite, SIPTAG_PAYLOAD(pl)),
		TPTAG_IDENT(b2b_leg_ident(l)), TAG_END());
	if (call->refresh_orq == NULL) {
		log_warn("call %s: cannot send a session refresh", call->id);
		s->next_try_ms = mono_ms() + B2B_REFRESH_RETRY_MS;
		return;
	}
	call->refresh_leg = leg;
	call->refresh_invite = invite;
}

/* One answered call, once a second: refresh what is ours to refresh, end
 * the call when a leg's session is gone. */
static void b2b_session_check(struct b2b_call *call, uint64_t now)
{
	for (int leg = B2B_LEG_A; leg <= B2B_LEG_B; leg++) {
		struct b2b_session *s = &call->sess[leg];
		uint64_t expires = session_timer_expires_at(&s->st, s->refreshed_ms);
		uint64_t refresh = session_timer_refresh_at(&s->st, s->refreshed_ms);

		if (expires && now >= expires) {
			b2b_session_expired(call, (enum b2b_leg)leg);
			return;
		}
		if (refresh && now >= refresh && now >= s->next_try_ms &&
		    call->refresh_orq == NULL && call->relay_irq == NULL &&
		    call->relay_orq == NULL)
			b2b_session_refresh(call, (enum b2b_leg)leg);
		if (call->ended)
			return;   /* it could not wake from rest */
	}
}

static void b2b_on_session_tick(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	b2b_t *b2b = (b2b_t *)arg;
	uint64_t now = mono_ms();

	for (unsigned i = 0; i < b2b_pool_used(b2b->pool); i++) {
		struct b2b_call *call = b2b_pool_at(b2b->pool, i);

		if (call->b2b == NULL || call->ended || call->state != B2B_CONFIRMED ||
		    (call->sess[B2B_LEG_A].st.interval == 0 && call->sess[B2B_LEG_B].st.interval == 0))
			continue;
		b2b_session_check(call, now);
	}
}

/* The call is up: its session timers run from now (the tick exists once a
 * call needed it). */
void b2b_session_start(struct b2b_call *call)
{
	b2b_t *b2b = call->b2b;

	if (b2b->session_tick != NULL ||
	    (call->sess[B2B_LEG_A].st.interval == 0 && call->sess[B2B_LEG_B].st.interval == 0))
		return;
	b2b->session_tick = su_timer_create(su_root_task(b2b->root), B2B_SESSION_TICK_MS);
	if (b2b->session_tick == NULL ||
	    su_timer_set_for_ever(b2b->session_tick, b2b_on_session_tick, (su_timer_arg_t *)b2b) < 0)
		log_error("cannot start the session timer tick");
}

/*
 * The call is answered: `msg` (a reference, ours now) went out on `leg`.
 * Its SDP is kept only when we refresh that leg's session, the one use of
 * the copy, so most calls keep one copy or none (callees that refresh
 * themselves, or have no timer).  A leg whose refresher changes later does
 * so in an exchange on that leg: a re-INVITE, whose SDP the relay keeps
 * whatever the role (b2b_relay.c), or an UPDATE from a peer that therefore
 * takes our UPDATE refreshes.
 */
void b2b_session_keep_sdp_answered(struct b2b_call *call, enum b2b_leg leg, msg_t *msg)
{
	if (!session_timer_ours(&call->sess[leg].st)) {
		msg_destroy(msg);
		return;
	}
	b2b_session_keep_sdp(call, leg, msg);
}

/*
 * The call comes to rest (b2b_rest.c): an SDP copy serves only our own
 * refresh re-INVITEs, so a leg whose session we do not refresh drops its
 * copy.  Should that change later, it changes in an exchange on that leg
 * (a re-INVITE, whose SDP we keep again, or an UPDATE from a peer that
 * therefore takes our UPDATE refreshes).
 */
void b2b_session_rest(struct b2b_call *call)
{
	for (int leg = B2B_LEG_A; leg <= B2B_LEG_B; leg++) {
		if (session_timer_ours(&call->sess[leg].st))
			continue;
		free(call->sdp_sent[leg]);
		call->sdp_sent[leg] = NULL;
	}
}

/* The call ends: drop what the session timers hold. */
void b2b_session_release(struct b2b_call *call)
{
	for (int leg = B2B_LEG_A; leg <= B2B_LEG_B; leg++) {
		free(call->sdp_sent[leg]);
		call->sdp_sent[leg] = NULL;
	}
	if (call->refresh_orq)
		nta_outgoing_destroy(call->refresh_orq);
	call->refresh_orq = NULL;
}
