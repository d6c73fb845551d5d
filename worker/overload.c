/*
 * overload — a new INVITE or our ACK told apart from the raw datagram, and
 * the stateless 503.  See overload.h for the contract.
 *
 * Design note.  A SIP message is a start line, header lines, an empty
 * line and a body (RFC 3261 7); a header line may go on over lines that
 * begin with a space or a tab.  The scan below walks the header lines once,
 * keeps spans (pointer and length) of the values it needs and copies
 * nothing.  A datagram without its empty line, with a needed header twice
 * (From, To, Call-ID, CSeq) or missing, or with more Vias than we keep is
 * OVERLOAD_OTHER: Sofia will judge it.
 */
#include "worker/overload.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The end of the line starting at p (its CR or LF, or end).  memchr, not
 * a loop over the bytes: every datagram's headers pass through here
 * (dgram.c asks who owns it), and memchr scans many bytes at a time. */
static const char *overload_eol(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	const char *stop = lf != NULL ? lf : end;
	const char *cr = memchr(p, '\r', (size_t)(stop - p));

	return cr != NULL ? cr : stop;
}

/* The start of the line after the one ending at eol. */
static const char *overload_next(const char *eol, const char *end)
{
	if (eol < end && *eol == '\r')
		eol++;
	if (eol < end && *eol == '\n')
		eol++;
	return eol;
}

static int overload_is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Does the name [p, p + len) equal `full` or the compact form `compact`? */
static int overload_name_is(const char *p, size_t len, const char *full, char compact)
{
	if (len == 1 && compact && (p[0] | 0x20) == compact)
		return 1;
	return len == strlen(full) && strncasecmp(p, full, len) == 0;
}

/* Keep one value of a header that must appear once; 0, or -1 when twice. */
static int overload_once(struct overload_span *dst, const char *p, size_t len)
{
	if (dst->p != NULL)
		return -1;
	dst->p = p;
	dst->len = len;
	return 0;
}

/* One header line: its name and its value (folded lines included, the
 * spaces around the value trimmed) kept when needed.  0, or -1. */
static int overload_header(struct overload_msg *m, const char *line, const char *vend)
{
	const char *colon = memchr(line, ':', (size_t)(vend - line));
	const char *name_end, *v;
	size_t nlen, vlen;

	if (colon == NULL)
		return -1;
	name_end = colon;
	while (name_end > line && overload_is_ws(name_end[-1]))
		name_end--;
	nlen = (size_t)(name_end - line);
	v = colon + 1;
	while (v < vend && overload_is_ws(*v))
		v++;
	while (vend > v && (overload_is_ws(vend[-1]) || vend[-1] == '\r' || vend[-1] == '\n'))
		vend--;
	vlen = (size_t)(vend - v);
	if (overload_name_is(line, nlen, "via", 'v')) {
		if (m->n_via == OVERLOAD_MAX_VIAS || vlen == 0)
			return -1;
		m->via[m->n_via].p = v;
		m->via[m->n_via++].len = vlen;
		return 0;
	}
	if (overload_name_is(line, nlen, "from", 'f'))
		return overload_once(&m->from, v, vlen);
	if (overload_name_is(line, nlen, "to", 't'))
		return overload_once(&m->to, v, vlen);
	if (overload_name_is(line, nlen, "call-id", 'i'))
		return overload_once(&m->call_id, v, vlen);
	if (overload_name_is(line, nlen, "cseq", 0))
		return overload_once(&m->cseq, v, vlen);
	return 0;
}

/* Walk the header lines from p; 0 when the empty line ends them. */
static int overload_headers(struct overload_msg *m, const char *p, const char *end)
{
	while (p < end) {
		const char *eol = overload_eol(p, end);
		const char *next = overload_next(eol, end);

		if (eol == p)
			return next == p ? -1 : 0;   /* the empty line */
		/* A folded header goes on while the next line starts with a space. */
		while (next < end && overload_is_ws(*next)) {
			eol = overload_eol(next, end);
			next = overload_next(eol, end);
		}
		if (eol == end || overload_header(m, p, eol) < 0)
			return -1;
		p = next;
	}
	return -1;   /* no empty line: cut short */
}

/* The To tag's value, from the header parameters after the URI (len 0:
 * none); -1 when the URI's '<' is never closed. */
static int overload_find_tag(struct overload_span to, struct overload_span *tag)
{
	const char *p = to.p, *end = to.p + to.len;
	const char *lt = memchr(p, '<', to.len);

	tag->p = NULL;
	tag->len = 0;
	if (lt != NULL) {
		const char *gt = memchr(lt, '>', (size_t)(end - lt));

		if (gt == NULL)
			return -1;
		p = gt + 1;
	}
	while ((p = memchr(p, ';', (size_t)(end - p))) != NULL) {
		const char *q = p + 1;

		while (q < end && overload_is_ws(*q))
			q++;
		p = q;
		if ((size_t)(end - q) < 3 || strncasecmp(q, "tag", 3) != 0)
			continue;
		q += 3;
		while (q < end && overload_is_ws(*q))
			q++;
		if (q == end || *q != '=')
			continue;
		q++;
		while (q < end && overload_is_ws(*q))
			q++;
		tag->p = q;
		while (q < end && *q != ';' && *q != ',' && !overload_is_ws(*q))
			q++;
		tag->len = (size_t)(q - tag->p);
		return 0;
	}
	return 0;
}

/* Does the request line [p, eol) start with `method` and a space, and end in SIP/2.0? */
static int overload_request_is(const char *p, const char *eol, const char *method)
{
	size_t mlen = strlen(method);

	return (size_t)(eol - p) > mlen + 8 && memcmp(p, method, mlen) == 0 && p[mlen] == ' '
	       && memcmp(eol - 8, " SIP/2.0", 8) == 0;
}

/* The CSeq's method is `method` (the value is "<number> <method>"). */
static int overload_cseq_is(struct overload_span cseq, const char *method)
{
	size_t mlen = strlen(method);

	return cseq.len > mlen && memcmp(cseq.p + cseq.len - mlen, method, mlen) == 0 &&
	       overload_is_ws(cseq.p[cseq.len - mlen - 1]);
}

int overload_read(const char *msg, size_t len, struct overload_msg *m)
{
	const char *end = msg + len;
	const char *eol = overload_eol(msg, end);

	memset(m, 0, sizeof *m);
	if ((size_t)(eol - msg) < 9 || memcmp(eol - 8, " SIP/2.0", 8) != 0 ||
	    memcmp(msg, "SIP/", 4) == 0)
		return -1;   /* not a request line (a response, or garbage) */
	if (overload_headers(m, overload_next(eol, end), end) < 0 || m->n_via == 0 ||
	    !m->from.p || !m->to.p || !m->call_id.p || !m->cseq.p || m->call_id.len == 0)
		return -1;
	return overload_find_tag(m->to, &m->to_tag) < 0 ? -1 : 0;
}

int overload_read_response(const char *msg, size_t len, struct overload_span *from_tag)
{
	struct overload_msg m;
	const char *end = msg + len;
	const char *eol = overload_eol(msg, end);

	from_tag->p = NULL;
	from_tag->len = 0;
	if (len < 12 || memcmp(msg, "SIP/2.0 ", 8) != 0)
		return -1;
	memset(&m, 0, sizeof m);
	if (overload_headers(&m, overload_next(eol, end), end) < 0 || !m.from.p)
		return -1;
	return overload_find_tag(m.from, from_tag) < 0 || from_tag->len == 0 ? -1 : 0;
}

enum overload_kind overload_parse(const char *msg, size_t len, const char *tag,
				  struct overload_msg *m)
{
	const char *eol = overload_eol(msg, msg + len);
	int invite = overload_request_is(msg, eol, "INVITE");
	int ack = !invite && overload_request_is(msg, eol, "ACK");

	if ((!invite && !ack) || overload_read(msg, len, m) < 0)
		return OVERLOAD_OTHER;
	if (invite)
		return m->to_tag.len == 0 && overload_cseq_is(m->cseq, "INVITE")
		       ? OVERLOAD_NEW_INVITE : OVERLOAD_OTHER;
	return m->to_tag.len == strlen(tag) && memcmp(m->to_tag.p, tag, m->to_tag.len) == 0
	       ? OVERLOAD_OUR_ACK : OVERLOAD_OTHER;
}

/* Append "Name: value\r\n" at out[*n]; -1 when it does not fit. */
static int overload_put(char *out, size_t size, size_t *n, const char *name,
			struct overload_span v, const char *suffix)
{
	int k = snprintf(out + *n, size - *n, "%s: %.*s%s\r\n", name, (int)v.len, v.p, suffix);

	if (k < 0 || (size_t)k >= size - *n)
		return -1;
	*n += (size_t)k;
	return 0;
}

int overload_answer(const struct overload_msg *m, const char *tag, unsigned retry_after,
		    char *out, size_t size)
{
	char to_tag[OVERLOAD_TAG_MAX + 8];
	size_t n = 0;
	int k;

	if (size == 0)
		return -ENOSPC;
	snprintf(to_tag, sizeof to_tag, ";tag=%s", tag);
	k = snprintf(out, size, "SIP/2.0 503 Service Unavailable\r\n");
	if (k < 0 || (size_t)k >= size)
		return -ENOSPC;
	n = (size_t)k;
	for (unsigned i = 0; i < m->n_via; i++)
		if (overload_put(out, size, &n, "Via", m->via[i], "") < 0)
			return -ENOSPC;
	if (overload_put(out, size, &n, "From", m->from, "") < 0 ||
	    overload_put(out, size, &n, "To", m->to, to_tag) < 0 ||
	    overload_put(out, size, &n, "Call-ID", m->call_id, "") < 0 ||
	    overload_put(out, size, &n, "CSeq", m->cseq, "") < 0)
		return -ENOSPC;
	k = snprintf(out + n, size - n, "Retry-After: %u\r\nContent-Length: 0\r\n\r\n",
		     retry_after);
	if (k < 0 || (size_t)k >= size - n)
		return -ENOSPC;
	return (int)(n + (size_t)k);
}
