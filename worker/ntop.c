/*
 * ntop — see ntop.h.  Each byte is at most three digits; no division
 * by anything but constants, no format string.
 */
#include "worker/ntop.h"

size_t ntop_ipv4(const void *addr, char out[NTOP_IPV4_MAX])
{
	const unsigned char *b = addr;
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];

		if (i > 0)
			out[n++] = '.';
		if (v >= 100)
			out[n++] = (char)('0' + v / 100);
		if (v >= 10)
			out[n++] = (char)('0' + v / 10 % 10);
		out[n++] = (char)('0' + v % 10);
	}
	out[n] = '\0';
	return n;
}
