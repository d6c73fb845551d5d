/*
 * hold — see hold.h.
 */
#include "worker/hold.h"

#include <string.h>

#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

/* Is this stream put on hold by its direction or its address? */
static int hold_media_held(sdp_session_t const *sdp, sdp_media_t const *m)
{
	sdp_connection_t const *c = sdp_media_connections(m);

	if (c == NULL)
		c = sdp->sdp_connection;
	if (c && c->c_address &&
	    (strcmp(c->c_address, "0.0.0.0") == 0 || strcmp(c->c_address, "::") == 0))
		return 1;
	return m->m_mode == sdp_sendonly || m->m_mode == sdp_inactive;
}

enum hold_state hold_state_of(const char *body, size_t len)
{
	su_home_t home[1] = { SU_HOME_INIT(home) };
	sdp_parser_t *parser;
	sdp_session_t *sdp;
	enum hold_state state = HOLD_UNKNOWN;
	unsigned active = 0, held = 0;

	if (body == NULL || len == 0)
		return HOLD_UNKNOWN;
	/* Mode handled by us (a=sendonly etc. and c=0.0.0.0), not folded. */
	parser = sdp_parse(home, body, (issize_t)len, sdp_f_anynet);
	sdp = parser ? sdp_session(parser) : NULL;
	if (sdp != NULL) {
		for (sdp_media_t const *m = sdp->sdp_media; m; m = m->m_next) {
			if (m->m_rejected || m->m_port == 0)
				continue;   /* a disabled stream says nothing */
			active++;
			held += (unsigned)hold_media_held(sdp, m);
		}
		if (active > 0)
			state = held == active ? HOLD_ON : HOLD_OFF;
	}
	if (parser)
		sdp_parser_free(parser);
	su_home_deinit(home);
	return state;
}
