/*
 * fmt_libc — snprintf() and glibc's fortified __snprintf_chk() and
 * __vsnprintf_chk(), defined in the executable so that the plain formats
 * run on worker/fmt.c (see fmt.h for why), the way worker/dgram_libc.c
 * defines the socket functions.  The dynamic linker resolves every caller
 * to these: Sofia-SIP's encoders and su_sprintf() (Sofia is built with
 * _FORTIFY_SOURCE, so its calls are the _chk ones), and b2bua's own
 * snprintf() (Call-IDs, tags, keys, session timer values).  They keep
 * glibc's contract: a destination smaller than the fortified caller says
 * (slen < maxlen) aborts through __chk_fail(), and every format
 * fmt_vsnprintf() does not do goes to glibc, with the same arguments (and
 * flag): vsnprintf() directly, __vsnprintf_chk() through dlsym(RTLD_NEXT),
 * as this file defines that name itself.
 *
 * Linked into the b2bua executable only, as dgram_libc.c is: the unit
 * tests compare fmt.c with glibc's own snprintf.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "worker/fmt.h"

/* glibc's, declared here: <stdio.h> declares them only under
 * _FORTIFY_SOURCE. */
extern void __chk_fail(void) __attribute__((noreturn));
int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format,
		    va_list ap);
int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...);

typedef int vsnprintf_chk_fn(char *s, size_t maxlen, int flag, size_t slen, const char *format,
			     va_list ap);

/* glibc's __vsnprintf_chk, for the formats fmt.c does not do. */
static int fmt_libc_vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen,
				  const char *format, va_list ap)
{
	static vsnprintf_chk_fn *real;

	if (real == NULL)
		real = (vsnprintf_chk_fn *)dlsym(RTLD_NEXT, "__vsnprintf_chk");
	if (real == NULL)
		abort();   /* glibc without its own: nothing sane to fall back to */
	return real(s, maxlen, flag, slen, format, ap);
}

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format,
		    va_list ap)
{
	int n;

	if (slen < maxlen)
		__chk_fail();
	n = fmt_vsnprintf(s, maxlen, format, ap);
	if (n == FMT_UNSUPPORTED)
		n = fmt_libc_vsnprintf_chk(s, maxlen, flag, slen, format, ap);
	return n;
}

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...)
{
	va_list ap;
	int n;

	va_start(ap, format);
	n = __vsnprintf_chk(s, maxlen, flag, slen, format, ap);
	va_end(ap);
	return n;
}

int snprintf(char *s, size_t maxlen, const char *format, ...)
{
	va_list ap;
	int n;

	va_start(ap, format);
	n = fmt_vsnprintf(s, maxlen, format, ap);
	if (n == FMT_UNSUPPORTED)
		n = vsnprintf(s, maxlen, format, ap);
	va_end(ap);
	return n;
}
