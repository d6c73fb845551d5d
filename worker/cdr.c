/*
 * cdr — a call detail record: its names, its fields for the stream and its
 * spool line.  See cdr.h for the contract; the writer that sends records
 * and keeps the spool is cdr_writer.c.
 *
 * Design note.  A record is fixed-size plain data, so it can be checked
 * once (cdr_check: every string ends inside its array, the enums are
 * known) and then turned into text two ways: the 21 field/value pairs of a
 * stream entry (cdr_encode, the order documented in docs/redis-schema.md),
 * and one spool line that comes back as the same record (cdr_to_line,
 * cdr_from_line).
 *
 * Spool line format, version "cdr4": the tag, then the 21 fields in
 * cdr_encode's order, separated by tabs.  Versions "cdr3" (before the
 * `a_transport` and `b_transport` fields), "cdr2" (before `closed_by`) and
 * "cdr1" (before `cause`) are the same with the first 19, 18 and 17
 * fields; they are still read, so a spool written by an older b2bua
 * replays after an upgrade (its records' missing fields are "").  In strings a backslash is written
 * \\, a tab \t, LF \n, CR \r and any other control byte \xHH (never \x00);
 * all other bytes, UTF-8 included, stay as they are.  Numbers are decimal,
 * the disposition and the hangup party are their names.
 */
#define _GNU_SOURCE

#include "worker/cdr.h"
#include "worker/dec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CDR_LINE_TAG        "cdr4"
#define CDR_LINE_TAG_V3     "cdr3"
#define CDR_LINE_TAG_V2     "cdr2"
#define CDR_LINE_TAG_V1     "cdr1"
#define CDR_RECORD_TAG      "call1"

static const char *const cdr_field_names[CDR_FIELDS] = {
	"id", "a_call_id", "b_call_id", "caller", "callee", "answered_by", "forwarded_to",
	"start_ms", "ring_ms", "answer_ms", "end_ms", "billable_ms", "disposition",
	"sip_code", "hangup_by", "host", "worker", "cause", "closed_by", "a_transport",
	"b_transport",
};

static const char *const cdr_disposition_names[] = {
	"ANSWERED", "BUSY", "NO_ANSWER", "CANCELLED", "FAILED", "KILLED", "REFUSED",
};

static const char *const cdr_party_names[] = { "none", "caller", "callee", "system" };

#define CDR_COUNT(a) (sizeof (a) / sizeof (a)[0])

/* ------------------------------------------------------------ names */

const char *cdr_disposition_name(enum cdr_disposition d)
{
	if ((unsigned)d >= CDR_COUNT(cdr_disposition_names))
		return "?";
	return cdr_disposition_names[d];
}

const char *cdr_party_name(enum cdr_party p)
{
	if ((unsigned)p >= CDR_COUNT(cdr_party_names))
		return "?";
	return cdr_party_names[p];
}

enum cdr_disposition cdr_disposition_of(int sip_code, int cancelled)
{
	if (cancelled)
		return CDR_CANCELLED;
	if (sip_code == 486 || sip_code == 600)
		return CDR_BUSY;
	if (sip_code == 408 || sip_code == 480)
		return CDR_NO_ANSWER;
	if (sip_code >= 200 && sip_code < 300)
		return CDR_ANSWERED;
	return CDR_FAILED;
}

static int cdr_lookup(const char *const names[], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

/* ------------------------------------------------------------ encoding */

/* A leg's transport as a CDR holds it: "" (not known, or no such leg) or
 * one of shm_transport_name()'s names, the one list of them. */
static int cdr_transport_ok(const char *tp)
{
	if (memchr(tp, '\0', CDR_TRANSPORT_MAX) == NULL)
		return 0;
	if (tp[0] == '\0')
		return 1;
	for (unsigned t = SHM_TP_UDP; t <= SHM_TP_TLS; t++)
		if (strcmp(tp, shm_transport_name(t)) == 0)
			return 1;
	return 0;
}

int cdr_check(const struct cdr *c)
{
	const char *strs[] = { c->a_call_id, c->b_call_id, c->caller, c->callee, c->answered_by,
			       c->forwarded_to };

	if (memchr(c->id, '\0', sizeof c->id) == NULL || c->id[0] == '\0'
	    || memchr(c->host, '\0', sizeof c->host) == NULL
	    || memchr(c->cause, '\0', sizeof c->cause) == NULL
	    || memchr(c->closed_by, '\0', sizeof c->closed_by) == NULL
	    || !cdr_transport_ok(c->a_transport) || !cdr_transport_ok(c->b_transport))
		return -EINVAL;
	for (size_t i = 0; i < CDR_COUNT(strs); i++)
		if (memchr(strs[i], '\0', CDR_STR) == NULL)
			return -EINVAL;
	if ((unsigned)c->disposition >= CDR_COUNT(cdr_disposition_names)
	    || (unsigned)c->hangup_by >= CDR_COUNT(cdr_party_names))
		return -EINVAL;
	return 0;
}

/*
 * Write one number as decimal text into buf at *used; its text, or NULL
 * when buf is full.  Not snprintf: a CDR has seven numbers and is encoded
 * on every call's end, where printf's format parsing showed in the
 * worker's profile.
 */
static const char *cdr_num(char *buf, size_t size, size_t *used, int negative, uint64_t v)
{
	char digits[DEC_U64_MAX];
	size_t len = dec_u64(v, digits);
	size_t n = len + (negative ? 1 : 0);   /* the text, without its NUL */
	char *out = buf + *used;

	if (*used >= size || n + 1 > size - *used)
		return NULL;
	if (negative)
		out[0] = '-';
	memcpy(out + n - len, digits, len + 1);
	*used += n + 1;
	return out;
}

/* The same for an int (the SIP code). */
static const char *cdr_int(char *buf, size_t size, size_t *used, int v)
{
	uint64_t mag = v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;

	return cdr_num(buf, size, used, v < 0, mag);
}

int cdr_encode(const struct cdr *c, const char **fields, const char **values, int max,
	       char *buf, size_t size)
{
	size_t used = 0;
	const char *start, *ring, *answer, *end, *billable, *code, *worker;

	if (cdr_check(c) < 0)
		return -EINVAL;
	if (max < CDR_FIELDS)
		return -ENOSPC;
	start = cdr_num(buf, size, &used, 0, c->start_ms);
	ring = cdr_num(buf, size, &used, 0, c->ring_ms);
	answer = cdr_num(buf, size, &used, 0, c->answer_ms);
	end = cdr_num(buf, size, &used, 0, c->end_ms);
	billable = cdr_num(buf, size, &used, 0, c->billable_ms);
	code = cdr_int(buf, size, &used, c->sip_code);
	worker = cdr_num(buf, size, &used, 0, c->worker);
	if (worker == NULL)
		return -ENOSPC;   /* the last number fits only if all before it did */

	const char *v[CDR_FIELDS] = {
		c->id, c->a_call_id, c->b_call_id, c->caller, c->callee, c->answered_by,
		c->forwarded_to, start, ring, answer, end, billable,
		cdr_disposition_name(c->disposition), code, cdr_party_name(c->hangup_by),
		c->host, worker, c->cause, c->closed_by, c->a_transport, c->b_transport,
	};

	for (int i = 0; i < CDR_FIELDS; i++) {
		fields[i] = cdr_field_names[i];
		values[i] = v[i];
	}
	return CDR_FIELDS;
}

/* ------------------------------------------------------------ spool line format */

/* Bytes cdr_escape writes as an escape: the separators (tab, newline),
 * CR, the escape itself and the other control bytes. */
static int cdr_needs_escape(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f || ch == '\\';
}

/* Append s (at most max bytes) to out[*n..size), escaped.  Runs of plain
 * bytes are copied whole: nearly every byte of a record is plain, and
 * this runs twice for every call (its record at answer, its CDR). */
static int cdr_escape(char *out, size_t size, size_t *n, const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = strnlen(s, max);
	size_t i = 0;

	while (i < len) {
		size_t run = i;
		unsigned char ch;
		char esc[4];
		size_t k = 0;

		while (run < len && !cdr_needs_escape((unsigned char)s[run]))
			run++;
		if (*n + (run - i) >= size)
			return -ENOSPC;
		memcpy(out + *n, s + i, run - i);
		*n += run - i;
		if (run == len)
			break;
		ch = (unsigned char)s[run];
		esc[k++] = '\\';
		if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
			esc[k++] = ch == '\\' ? '\\' : ch == '\t' ? 't' : ch == '\n' ? 'n' : 'r';
		} else {
			esc[k++] = 'x';
			esc[k++] = hex[ch >> 4];
			esc[k++] = hex[ch & 15];
		}
		if (*n + k >= size)
			return -ENOSPC;
		memcpy(out + *n, esc, k);
		*n += k;
		i = run + 1;
	}
	return 0;
}

static int cdr_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Undo cdr_escape on [s, s + len) into dst (size bytes, NUL-terminated). */
static int cdr_unescape(char *dst, size_t size, const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '\\') {
			if (++i >= len)
				return -EINVAL;
			switch (s[i]) {
			case '\\': ch = '\\'; break;
			case 't': ch = '\t'; break;
			case 'n': ch = '\n'; break;
			case 'r': ch = '\r'; break;
			case 'x': {
				int hi = i + 2 < len ? cdr_hexval(s[i + 1]) : -1;
				int lo = hi >= 0 ? cdr_hexval(s[i + 2]) : -1;

				if (lo < 0 || (hi == 0 && lo == 0))
					return -EINVAL;   /* NUL would cut the string */
				ch = (char)(hi << 4 | lo);
				i += 2;
				break;
			}
			default:
				return -EINVAL;
			}
		}
		if (n + 1 >= size)
			return -EINVAL;
		dst[n++] = ch;
	}
	dst[n] = '\0';
	return 0;
}

int cdr_to_line(const struct cdr *c, char *out, size_t size)
{
	const char *fields[CDR_FIELDS];
	const char *values[CDR_FIELDS];
	char nums[CDR_NUM_BUF];
	size_t n = 0;
	int count = cdr_encode(c, fields, values, CDR_FIELDS, nums, sizeof nums);

	if (count < 0)
		return count;
	if (size <= strlen(CDR_LINE_TAG))
		return -ENOSPC;
	memcpy(out, CDR_LINE_TAG, strlen(CDR_LINE_TAG));
	n = strlen(CDR_LINE_TAG);
	for (int i = 0; i < count; i++) {
		if (n + 1 >= size)
			return -ENOSPC;
		out[n++] = '\t';
		if (cdr_escape(out, size, &n, values[i], CDR_LINE_MAX) < 0)
			return -ENOSPC;
	}
	out[n] = '\0';
	return (int)n;
}

static int cdr_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return *end != '\0' || errno != 0 ? -EINVAL : 0;
}

static int cdr_parse_int(const char *s, long min, long max, long *out)
{
	char *end;

	if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return -EINVAL;
	errno = 0;
	*out = strtol(s, &end, 10);
	return *end != '\0' || errno != 0 || *out < min || *out > max ? -EINVAL : 0;
}

/* Fill field i of c from its unescaped text. */
static int cdr_set_field(struct cdr *c, int i, const char *text)
{
	char *strs[] = { c->id, c->a_call_id, c->b_call_id, c->caller, c->callee,
			 c->answered_by, c->forwarded_to };
	uint64_t *nums[] = { &c->start_ms, &c->ring_ms, &c->answer_ms, &c->end_ms,
			     &c->billable_ms };
	long v;
	int k;

	if (i < 7) {
		size_t size = i == 0 ? sizeof c->id : CDR_STR;

		if (strlen(text) >= size)
			return -EINVAL;
		strcpy(strs[i], text);
		return 0;
	}
	if (i < 12)
		return cdr_parse_u64(text, nums[i - 7]);
	switch (i) {
	case 12:
		k = cdr_lookup(cdr_disposition_names, CDR_COUNT(cdr_disposition_names), text);
		c->disposition = (enum cdr_disposition)k;
		return k < 0 ? -EINVAL : 0;
	case 13:
		if (cdr_parse_int(text, INT_MIN, INT_MAX, &v) < 0)
			return -EINVAL;
		c->sip_code = (int)v;
		return 0;
	case 14:
		k = cdr_lookup(cdr_party_names, CDR_COUNT(cdr_party_names), text);
		c->hangup_by = (enum cdr_party)k;
		return k < 0 ? -EINVAL : 0;
	case 15:
		if (strlen(text) >= sizeof c->host)
			return -EINVAL;
		strcpy(c->host, text);
		return 0;
	case 17:
		if (strlen(text) >= sizeof c->cause)
			return -EINVAL;
		strcpy(c->cause, text);
		return 0;
	case 18:
		if (strlen(text) >= sizeof c->closed_by)
			return -EINVAL;
		strcpy(c->closed_by, text);
		return 0;
	case 19:
	case 20:
		if (!cdr_transport_ok(text))   /* text fits: it is a name or "" */
			return -EINVAL;
		strcpy(i == 19 ? c->a_transport : c->b_transport, text);
		return 0;
	default:
		if (cdr_parse_int(text, 0, UINT_MAX, &v) < 0)
			return -EINVAL;
		c->worker = (unsigned)v;
		return 0;
	}
}

int cdr_from_line(const char *line, struct cdr *out)
{
	char text[CDR_STR];
	struct cdr c;
	const char *p = line;
	size_t taglen = strlen(CDR_LINE_TAG);
	int nfields;

	memset(&c, 0, sizeof c);
	if (strncmp(p, CDR_LINE_TAG, taglen) == 0 && p[taglen] == '\t')
		nfields = CDR_FIELDS;
	else if (strncmp(p, CDR_LINE_TAG_V3, taglen) == 0 && p[taglen] == '\t')
		nfields = CDR_FIELDS_V3;   /* before a_transport and b_transport */
	else if (strncmp(p, CDR_LINE_TAG_V2, taglen) == 0 && p[taglen] == '\t')
		nfields = CDR_FIELDS_V2;   /* before closed_by */
	else if (strncmp(p, CDR_LINE_TAG_V1, taglen) == 0 && p[taglen] == '\t')
		nfields = CDR_FIELDS_V1;   /* an older spool: no cause */
	else
		return -EINVAL;
	p += taglen;
	for (int i = 0; i < nfields; i++) {
		const char *start;
		size_t len;

		if (*p != '\t')   /* a short line: never read past its end */
			return -EINVAL;
		start = p + 1;
		len = strcspn(start, "\t");
		if (cdr_unescape(text, sizeof text, start, len) < 0 || cdr_set_field(&c, i, text) < 0)
			return -EINVAL;
		p = start + len;
	}
	if (*p != '\0' || c.id[0] == '\0')
		return -EINVAL;
	*out = c;
	return 0;
}


/* ------------------------------------------------------------ an answered call's record */

/* A name the record's first line can hold as it is. */
static int cdr_record_name_ok(const char *name)
{
	size_t len = strnlen(name, CDR_RECORD_NAME_MAX);

	return len > 0 && len < CDR_RECORD_NAME_MAX && strpbrk(name, "\t\n\r") == NULL;
}

int cdr_record_to_text(const struct cdr_record *r, char *out, size_t size)
{
	size_t n;
	int len;

	if (r->n_names > CDR_RECORD_NAMES)
		return -EINVAL;
	len = snprintf(out, size, CDR_RECORD_TAG "\t%" PRIu64, r->epoch);
	if (len < 0 || (size_t)len >= size)
		return -ENOSPC;
	n = (size_t)len;
	for (unsigned i = 0; i < r->n_names; i++) {
		if (!cdr_record_name_ok(r->names[i]))
			return -EINVAL;
		len = snprintf(out + n, size - n, "\t%s", r->names[i]);
		if (len < 0 || (size_t)len >= size - n)
			return -ENOSPC;
		n += (size_t)len;
	}
	if (n + 2 >= size)
		return -ENOSPC;
	out[n++] = '\n';
	len = cdr_to_line(&r->cdr, out + n, size - n);
	if (len < 0)
		return len;
	return (int)n + len;
}

/* The first line of a record ("call1\t<epoch>[\t<name>]..."), len bytes. */
static int cdr_record_head(const char *p, size_t len, struct cdr_record *r)
{
	char buf[32 + CDR_RECORD_NAMES * CDR_RECORD_NAME_MAX];
	char *save = NULL, *tok;

	if (len >= sizeof buf)
		return -EINVAL;
	memcpy(buf, p, len);
	buf[len] = '\0';
	tok = strtok_r(buf, "\t", &save);
	if (tok == NULL || strcmp(tok, CDR_RECORD_TAG) != 0)
		return -EINVAL;
	tok = strtok_r(NULL, "\t", &save);
	if (tok == NULL || cdr_parse_u64(tok, &r->epoch) < 0)
		return -EINVAL;
	while ((tok = strtok_r(NULL, "\t", &save)) != NULL) {
		if (r->n_names == CDR_RECORD_NAMES || !cdr_record_name_ok(tok))
			return -EINVAL;
		strcpy(r->names[r->n_names++], tok);
	}
	return 0;
}

int cdr_record_from_text(const char *text, size_t len, struct cdr_record *out)
{
	char line[CDR_LINE_MAX + 1];
	struct cdr_record r;
	const char *nl = memchr(text, '\n', len);
	size_t rest;

	memset(&r, 0, sizeof r);
	if (nl == NULL || memchr(text, '\0', len) != NULL
	    || cdr_record_head(text, (size_t)(nl - text), &r) < 0)
		return -EINVAL;
	rest = len - (size_t)(nl - text) - 1;
	if (rest > CDR_LINE_MAX)
		return -EINVAL;
	memcpy(line, nl + 1, rest);
	line[rest] = '\0';
	if (cdr_from_line(line, &r.cdr) < 0)
		return -EINVAL;
	*out = r;
	return 0;
}
