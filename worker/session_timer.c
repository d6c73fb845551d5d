/*
 * session_timer — the arithmetic of RFC 4028 session timers.  See
 * session_timer.h for the design note.
 */
#include "worker/session_timer.h"

#include <errno.h>

/* The longest interval we would ever agree to refresh at (one day). */
#define SESSION_TIMER_MAX 86400u

static unsigned session_timer_max(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

int session_timer_uas(const struct session_timer_cfg *cfg, const struct session_timer_hdrs *req,
		      struct session_timer *out, unsigned *min_se)
{
	unsigned floor = session_timer_max(cfg->min_se, req->min_se);

	out->interval = 0;
	out->we_refresh = 0;
	out->peer_timer = req->supported;
	if (cfg->session_expires == 0)
		return 0;   /* off: we answer as a UAS without the extension */
	if (req->se != 0 && req->se < cfg->min_se) {
		*min_se = floor;
		return -ERANGE;
	}
	if (req->se != 0) {
		/* We may shorten what the caller asked for, never below either
		 * Min-SE, and never lengthen it. */
		out->interval = req->se;
		if (out->interval > cfg->session_expires)
			out->interval = session_timer_max(cfg->session_expires, floor);
		if (out->interval > req->se)
			out->interval = req->se;
	} else {
		out->interval = session_timer_max(cfg->session_expires, floor);
	}
	/* A peer without the extension cannot refresh: we do (RFC 4028 9).
	 * Otherwise its choice stands, and by default the peer refreshes, so
	 * that a vanished peer is noticed where it vanished. */
	if (!req->supported)
		out->we_refresh = 1;
	else
		out->we_refresh = req->refresher == SESSION_TIMER_UAS;
	return 0;
}

void session_timer_offer(const struct session_timer_cfg *cfg, const struct session_timer *cur,
			 unsigned *se, unsigned *min_se)
{
	*se = 0;
	*min_se = 0;
	if (cfg->session_expires == 0)
		return;
	*se = cur && cur->interval ? cur->interval : cfg->session_expires;
	*min_se = cfg->min_se;
}

void session_timer_uac(const struct session_timer_hdrs *resp, const struct session_timer *cur,
		       struct session_timer *out)
{
	/* A peer without the extension answers our refreshes without
	 * Session-Expires: that cannot turn off a session we refresh for it. */
	if (resp->se == 0 && !resp->supported && cur && cur->interval && cur->we_refresh) {
		*out = *cur;
		return;
	}
	out->interval = resp->se;
	out->peer_timer = resp->se != 0 || resp->supported;
	/* No refresher named: the UAC refreshes (RFC 4028 7.2). */
	out->we_refresh = resp->se != 0 && resp->refresher != SESSION_TIMER_UAS;
}

int session_timer_retry(unsigned offered, unsigned min_se, unsigned *se)
{
	if (min_se <= offered || min_se > SESSION_TIMER_MAX)
		return -ERANGE;
	*se = min_se;
	return 0;
}

int session_timer_ours(const struct session_timer *st)
{
	return st->interval != 0 && st->we_refresh;
}

uint64_t session_timer_refresh_at(const struct session_timer *st, uint64_t refreshed_ms)
{
	if (!session_timer_ours(st))
		return 0;
	return refreshed_ms + (uint64_t)st->interval * 1000u / 2u;
}

uint64_t session_timer_expires_at(const struct session_timer *st, uint64_t refreshed_ms)
{
	uint64_t interval_ms = (uint64_t)st->interval * 1000u;
	uint64_t margin = interval_ms / 3u < 32000u ? interval_ms / 3u : 32000u;

	if (st->interval == 0)
		return 0;
	/* Our own refreshes: the session is gone when none succeeded within the
	 * interval.  The peer's: RFC 4028 10 lets it be late by up to the margin. */
	if (st->we_refresh)
		return refreshed_ms + interval_ms;
	return refreshed_ms + interval_ms - margin;
}

const char *session_timer_refresher_name(const struct session_timer *st, int we_are_uac)
{
	if (st->we_refresh)
		return we_are_uac ? "uac" : "uas";
	return we_are_uac ? "uas" : "uac";
}
