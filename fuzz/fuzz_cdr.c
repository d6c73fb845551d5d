/*
 * fuzz_cdr — the CDR spool reader (cdr_from_line(), worker/cdr.c): after a
 * crash or a full disk, a spool line may be torn or garbled, and replay
 * reads it back.  Whatever the line, reading must stay inside it and the
 * record, and a line it accepts must be a record that writes back to the
 * same line (the spool format is stable: cdr_to_line() and back).  The
 * same holds for an answered call's record (cdr_record_from_text()), which
 * a closer reads from Redis, where anything may have been written.
 */
#include "worker/cdr.h"

#include <stdlib.h>
#include <string.h>

/* The record reader: the bytes as Redis hands them over, not terminated. */
static void fuzz_record(const uint8_t *data, size_t size)
{
	char text[CDR_LINE_MAX + 512];
	struct cdr_record r, s;
	int len;

	if (cdr_record_from_text((const char *)data, size, &r) != 0)
		return;
	len = cdr_record_to_text(&r, text, sizeof text);
	if (len < 0 || cdr_record_from_text(text, (size_t)len, &s) != 0
	    || memcmp(&r, &s, sizeof r) != 0)
		abort();   /* accepted, yet not a record that writes back as itself */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[CDR_LINE_MAX + 1];
	char again[CDR_LINE_MAX];
	struct cdr c;
	struct cdr d;

	fuzz_record(data, size);
	/* The reader hands over one line, NUL-terminated, at most CDR_LINE_MAX. */
	if (size > CDR_LINE_MAX)
		size = CDR_LINE_MAX;
	memcpy(line, data, size);
	line[size] = '\0';
	if (cdr_from_line(line, &c) != 0)
		return 0;
	if (cdr_check(&c) != 0)
		abort();   /* accepted, yet not a record the writer could encode */
	if (cdr_to_line(&c, again, sizeof again) < 0)
		abort();
	if (cdr_from_line(again, &d) != 0 || memcmp(&c, &d, sizeof c) != 0)
		abort();   /* the line does not read back as the same record */
	return 0;
}
