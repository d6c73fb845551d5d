/*
 * session_timer — the arithmetic of RFC 4028 session timers, pure.
 *
 * Design note.  b2bua negotiates a session timer on each leg of a call on
 * its own: on the A-leg it is the UAS of the caller's INVITE, on the B-leg
 * the UAC of its own.  This module only decides numbers and roles from what
 * the headers said (no Sofia types, so it is unit-tested alone, see
 * tests/check_session_timer.c); worker/b2b_timer.c reads and writes the
 * headers and runs the timers.
 *
 * A leg's session has an interval (Session-Expires, seconds; 0 = no session
 * timer on that leg) and a refresher: b2bua or its peer.  The refresher
 * refreshes at half the interval; the other side considers the session gone
 * when no refresh came within the interval less min(32 s, interval / 3)
 * (RFC 4028 section 10).
 */
#ifndef B2BUA_SESSION_TIMER_H
#define B2BUA_SESSION_TIMER_H

#include <stdint.h>

/* The "refresher" parameter of Session-Expires. */
enum session_timer_refresher {
	SESSION_TIMER_ANY,    /* not given */
	SESSION_TIMER_UAC,
	SESSION_TIMER_UAS,
};

/* What a request or a 2xx said about session timers. */
struct session_timer_hdrs {
	unsigned se;                         /* Session-Expires delta, 0 = absent */
	enum session_timer_refresher refresher;
	unsigned min_se;                     /* Min-SE, 0 = absent */
	int supported;                       /* Supported or Require names "timer" */
};

/* A leg's negotiated session. */
struct session_timer {
	unsigned interval;                   /* seconds; 0 = no session timer */
	int we_refresh;                      /* b2bua refreshes (else the peer does) */
	int peer_timer;                      /* the peer supports "timer" */
};

/* Our configuration: session_expires (0 = off) and min_se. */
struct session_timer_cfg {
	unsigned session_expires;
	unsigned min_se;
};

/*
 * As UAS of a request (an INVITE or a refresh) with headers `req`: the
 * session of that leg in *out.  -ERANGE when the request's Session-Expires
 * is below what we accept: answer 422 with Min-SE *min_se (RFC 4028 9).
 */
int session_timer_uas(const struct session_timer_cfg *cfg, const struct session_timer_hdrs *req,
		      struct session_timer *out, unsigned *min_se);

/* As UAC: the Session-Expires and Min-SE to put in our request (*se 0:
 * none), given the leg's current session (NULL for an initial INVITE). */
void session_timer_offer(const struct session_timer_cfg *cfg, const struct session_timer *cur,
			 unsigned *se, unsigned *min_se);

/* As UAC, the 2xx `resp` to our request: the leg's session (RFC 4028 7.2),
 * given the one in force `cur` (NULL or interval 0 for an initial INVITE). */
void session_timer_uac(const struct session_timer_hdrs *resp, const struct session_timer *cur,
		       struct session_timer *out);

/*
 * As UAC, a 422 naming Min-SE `min_se` to a request that offered `offered`:
 * the Session-Expires to retry with in *se.  -ERANGE when the peer asks for
 * more than we could ever refresh at (over 86400 s) or nothing new.
 */
int session_timer_retry(unsigned offered, unsigned min_se, unsigned *se);

/* Does b2bua refresh this session (it has one, and we are its refresher)? */
int session_timer_ours(const struct session_timer *st);

/* When (ms, on the clock of `refreshed_ms`) we refresh the leg, or 0 when
 * the peer does. */
uint64_t session_timer_refresh_at(const struct session_timer *st, uint64_t refreshed_ms);

/* When the leg's session is gone if no refresh succeeded since
 * `refreshed_ms` (0: no session timer). */
uint64_t session_timer_expires_at(const struct session_timer *st, uint64_t refreshed_ms);

/* The refresher parameter of our side's Session-Expires in a message where
 * b2bua is the UAC (`we_are_uac` 1) or the UAS: "uac" or "uas". */
const char *session_timer_refresher_name(const struct session_timer *st, int we_are_uac);

#endif
