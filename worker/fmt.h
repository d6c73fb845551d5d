/*
 * fmt — vsnprintf() for plain formats, without printf's machinery.
 *
 * Sofia-SIP writes the request line, the status line, CSeq, Content-Length
 * and the session timer headers of every message it sends with snprintf
 * ("%s " URL_PRINT_FORMAT " %s\r\n", "%s %03u %s\r\n", "%u %s", "%lu"):
 * about 36 000 instructions a call in glibc, 7 % of a worker's
 * (bench/README.md, "Issue 9, session 2026-12-08 (seventh)").  Its header
 * classes are read-only data of the library, so those encoders cannot be
 * replaced; the function they call can: worker/fmt_libc.c defines
 * __snprintf_chk() in the executable with fmt_vsnprintf() (and
 * __vsnprintf_chk() and snprintf(), for Sofia's su_sprintf() and b2bua's
 * own Call-IDs and tags), and leaves every format it does not do to glibc.
 *
 * fmt_vsnprintf() does what those formats use and nothing more:
 *   - the conversions s, c, d, i, u and x, and %%;
 *   - the length modifiers l, ll and z on d, i, u and x;
 *   - a decimal field width, and the flag 0 on d, i, u and x.
 * For anything else (precision, the flags - + space #, *, h, j, t, L, n,
 * p, o, X, floating point) it returns FMT_UNSUPPORTED, possibly after
 * writing into buf; it reads the arguments from a copy of ap (va_copy), so
 * the caller then formats again with printf and ap.  Otherwise the result is byte for byte what vsnprintf() gives
 * (tests/check_fmt.c holds it to glibc's), and so is the return value: the
 * length the whole text has, written or not, buf NUL-terminated within
 * size when size > 0.
 */
#ifndef B2BUA_FMT_H
#define B2BUA_FMT_H

#include <stdarg.h>
#include <stddef.h>

#define FMT_UNSUPPORTED (-2)

/* vsnprintf() for the formats above; FMT_UNSUPPORTED for the others, -1
 * (errno EOVERFLOW) when the text would be longer than INT_MAX. */
int fmt_vsnprintf(char *buf, size_t size, const char *format, va_list ap);

#endif
