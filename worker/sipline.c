/*
 * sipline — see sipline.h.  Each function lists the strings Sofia's
 * format would print, in order, and sipline_cat() appends them.
 */
#include "worker/sipline.h"

#include <errno.h>
#include <string.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/url.h>

#include "worker/dec.h"

/* Append s[0..count) at *n with room for a NUL; -E2BIG when they do not fit. */
static int sipline_cat(char *buf, size_t size, size_t *n, const char *const *s, size_t count)
{
	size_t at = *n;

	if (at >= size)
		return -E2BIG;
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(s[i]);

		if (len >= size - at)
			return -E2BIG;
		memcpy(buf + at, s[i], len);
		at += len;
	}
	buf[at] = '\0';
	*n = at;
	return 0;
}

int sipline_request(char *buf, size_t size, size_t *n, sip_request_t const *rq)
{
	url_t const *u;

	if (rq == NULL || rq->rq_method_name == NULL || rq->rq_version == NULL)
		return -EINVAL;
	u = rq->rq_url;
	{
		const char *s[] = { rq->rq_method_name, " ", URL_PRINT_ARGS(u), " ",
				    rq->rq_version, "\r\n" };

		return sipline_cat(buf, size, n, s, sizeof s / sizeof s[0]);
	}
}

int sipline_cseq(char *buf, size_t size, size_t *n, sip_cseq_t const *cs)
{
	char num[DEC_U64_MAX];

	if (cs == NULL || cs->cs_method_name == NULL)
		return -EINVAL;
	dec_u64(cs->cs_seq, num);
	{
		const char *s[] = { "CSeq: ", num, " ", cs->cs_method_name, "\r\n" };

		return sipline_cat(buf, size, n, s, sizeof s / sizeof s[0]);
	}
}
