/*
 * sipline — a request line and a CSeq header as text, the bytes Sofia's
 * msg_header_e() writes for them, without its encoders.
 *
 * Sofia-SIP encodes both with snprintf (the request line with a format of
 * 21 "%s": URL_FORMAT_STRING): about 6 000 instructions for the two.
 * Every call records its INVITEs for a successor (b2b_adopt_encode), and
 * those two headers cost as much as the rest of the record.  The list of
 * strings here is the one Sofia's format prints (URL_PRINT_ARGS), so the
 * text is the same byte for byte (tests/check_sipline.c holds them to it).
 */
#ifndef B2BUA_SIPLINE_H
#define B2BUA_SIPLINE_H

#include <stddef.h>

#include <sofia-sip/sip.h>

/*
 * Append rq's request line ("INVITE sip:... SIP/2.0" and CRLF) to
 * buf[*n..size), NUL-terminated, and move *n past it.  0; -E2BIG when it
 * does not fit with its NUL (buf unchanged up to a NUL at most); -EINVAL
 * when rq lacks its method name or version (msg_header_e's to print).
 */
int sipline_request(char *buf, size_t size, size_t *n, sip_request_t const *rq);

/* The same for "CSeq: <number> <method>" and CRLF; -EINVAL for a NULL cs
 * or one without a method name. */
int sipline_cseq(char *buf, size_t size, size_t *n, sip_cseq_t const *cs);

#endif
