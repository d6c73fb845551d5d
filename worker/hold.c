/*
 * hold — see hold.h.
 */
#include "worker/hold.h"

#include <string.h>

#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

/* RFC 4566 §9 token-char. */
static int hold_token_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`{|}~", c) != NULL);
}

/* Does word w (n bytes) hold only token characters, or also the listed extras? */
static int hold_word_of(const char *w, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++)
		if (!hold_token_char((unsigned char)w[i]) && strchr(extra, w[i]) == NULL)
			return 0;
	return n > 0;
}

/* <port>[/<number of ports>]: digits, at most one '/' between digits. */
static int hold_port_ok(const char *w, size_t n)
{
	unsigned slashes = 0;

	for (size_t k = 0; k < n; k++) {
		if (w[k] == '/' && k > 0 && k + 1 < n && w[k - 1] != '/')
			slashes++;
		else if (w[k] < '0' || w[k] > '9')
			return 0;
	}
	return n > 0 && slashes <= 1;
}

/*
 * Is one m= line (after "m=", up to its end of line) what RFC 4566 §5.14
 * allows: <media> <port>[/<number>] <proto> <fmt> ..., words of token
 * characters separated by spaces (a tab is no separator there: Sofia loops
 * on "m=image 6000 udptl\t"), the port digits, the proto tokens joined by
 * '/'?
 */
static int hold_m_line_ok(const char *s, size_t len)
{
	size_t i = 0;

	for (unsigned word = 0; i < len; word++) {
		size_t n;

		while (i < len && s[i] == ' ')
			i++;
		for (n = 0; i + n < len && s[i + n] != ' '; n++)
			continue;
		if (n > 0 && !hold_word_of(s + i, n, word == 1 || word == 2 ? "/" : ""))
			return 0;
		if (word == 1 && !hold_port_ok(s + i, n))
			return 0;
		i += n;
	}
	return 1;
}

/*
 * Is the body safe to hand to Sofia-SIP's SDP parser?  Its 1.12.11 parser
 * loops for ever, allocating a list entry each turn (gigabytes in seconds),
 * on an m= line whose format list holds a character that cannot start a
 * token, after a protocol other than RTP (sdp_parse.c, parse_media(): the
 * "normal" format list does not advance).  Found by fuzz/fuzz_hold, e.g.
 * "m=audio 6000 a(( 0" or "m=audio 6PR000T /AVP 0"; any party of a call
 * can send such an offer.  So every m= line must follow RFC 4566's grammar
 * before the body is parsed; one that does not leaves the hold state as it
 * is.  Sofia ends a line at CR, LF or CRLF.
 */
static int hold_sdp_plain(const char *body, size_t len)
{
	size_t start = 0;

	while (start < len) {
		size_t end;

		/* Sofia also takes " m=" for an m= line. */
		while (start < len && (body[start] == ' ' || body[start] == '\t'))
			start++;
		end = start;
		while (end < len && body[end] != '\r' && body[end] != '\n' && body[end] != '\0')
			end++;
		if (end - start >= 2 && body[start] == 'm' && body[start + 1] == '=' &&
		    !hold_m_line_ok(body + start + 2, end - start - 2))
			return 0;
		start = end + 1;
	}
	return 1;
}

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

	if (body == NULL || len == 0 || !hold_sdp_plain(body, len))
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
