/*
 * fmt_libc — glibc's __snprintf_chk(), defined in the executable so that
 * Sofia-SIP's encoders run on worker/fmt.c (see fmt.h for why), the way
 * worker/dgram_libc.c defines the socket functions.  Sofia-SIP is built
 * with _FORTIFY_SOURCE, so its snprintf() calls are calls to
 * __snprintf_chk(); the dynamic linker resolves them, and every other
 * library's, to this one.  It keeps glibc's contract: a destination
 * smaller than the length it is told (slen < maxlen) aborts through
 * __chk_fail(), and every format fmt_vsnprintf() does not do goes to
 * glibc's __vsnprintf_chk() with the same arguments and flag.
 *
 * Linked into the b2bua executable only, as dgram_libc.c is.
 */
#include <stdarg.h>
#include <stddef.h>

#include "worker/fmt.h"

/* glibc's, declared here: <stdio.h> declares them only under
 * _FORTIFY_SOURCE. */
extern void __chk_fail(void) __attribute__((noreturn));
extern int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format,
			   va_list ap);
int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...);

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...)
{
	va_list ap;
	int n;

	if (slen < maxlen)
		__chk_fail();
	va_start(ap, format);
	n = fmt_vsnprintf(s, maxlen, format, ap);
	if (n == FMT_UNSUPPORTED)
		n = __vsnprintf_chk(s, maxlen, flag, slen, format, ap);
	va_end(ap);
	return n;
}
