/*
 * cli_buf — the answer a CLI handler builds, and the helpers every handler
 * formats with (see cli_int.h).
 *
 * Design note.  An answer is built in a growing buffer and then written in
 * full: the status line can only be sent once the command has worked, and a
 * table of thousands of calls is larger than a socket buffer.  A failed
 * allocation is remembered in the buffer (b->err) rather than returned from
 * every append, so a handler formats straight through and checks once at
 * the end; CLI_ANSWER_MAX bounds an answer.  Strings that come from outside
 * (SIP headers, Redis) are cleaned for display here: no control characters
 * in text, no invalid UTF-8 in JSON.
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t cli_now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cli_elapsed_s(uint64_t since_ms, uint64_t now_ms)
{
	return since_ms && now_ms > since_ms ? (now_ms - since_ms) / 1000 : 0;
}

int cli_fail(struct cli_reply *reply, int status, const char *fmt, ...)
{
	va_list ap;

	reply->status = status;
	va_start(ap, fmt);
	vsnprintf(reply->text, sizeof reply->text, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

static void cli_buf_reserve(struct cli_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->err || b->len + more <= b->cap)
		return;
	if (b->len + more > CLI_ANSWER_MAX) {
		b->err = -EFBIG;
		return;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->data = p;
	b->cap = cap;
}

void cli_buf_add(struct cli_buf *b, const char *s, size_t n)
{
	cli_buf_reserve(b, n + 1);
	if (b->err)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

void cli_buf_printf(struct cli_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = b->err ? b->err : -EINVAL;
		return;
	}
	cli_buf_reserve(b, (size_t)n + 1);
	if (b->err)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* jansson's dump callback: append to a cli_buf. */
static int cli_buf_dump_cb(const char *s, size_t n, void *arg)
{
	struct cli_buf *b = arg;

	cli_buf_add(b, s, n);
	return b->err ? -1 : 0;
}

void cli_buf_add_json(struct cli_buf *b, json_t *value)
{
	if (!value) {
		b->err = b->err ? b->err : -ENOMEM;
		return;
	}
	if (json_dump_callback(value, cli_buf_dump_cb, b, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
		b->err = b->err ? b->err : -ENOMEM;
}

/*
 * Copy a fixed-size shm string for display: bounded by its array (a copy
 * from shared memory need not be terminated) and with control characters
 * replaced, so a hostile From header cannot forge lines in a table.
 */
void cli_clean(char *dst, size_t dst_size, const char *src, size_t src_max)
{
	size_t n = strnlen(src, src_max);

	if (n >= dst_size)
		n = dst_size - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[n] = '\0';
}

/* A JSON string, or null for "" when `empty_null`.  SIP text should be UTF-8,
 * but a peer can send anything: invalid bytes become '?' rather than losing
 * the whole answer. */
json_t *cli_json_str(const char *s, int empty_null)
{
	json_t *v;
	char *copy;

	if (empty_null && *s == '\0')
		return json_null();
	v = json_string(s);
	if (v)
		return v;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	v = json_string(copy);
	free(copy);
	return v;
}

json_t *cli_json_u64(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* ISO-8601 UTC with milliseconds ("2024-05-01T12:00:00.250Z"); "-" for 0. */
void cli_iso_ms(uint64_t ms, char *out, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	snprintf(out, size, "-");
	if (ms == 0 || !gmtime_r(&secs, &tm))
		return;
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n > 0)
		snprintf(out + n, size - n, ".%03uZ", (unsigned)(ms % 1000));
}

const char *cli_dash(const char *s)
{
	return *s ? s : "-";
}
