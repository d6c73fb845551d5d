/*
 * dec — see dec.h.  Digits are made from the right into a scratch
 * buffer, then copied in order; no division but by the constant 10.
 */
#include "worker/dec.h"

#include <string.h>

size_t dec_u64(uint64_t v, char out[DEC_U64_MAX])
{
	char digits[DEC_U64_MAX];
	char *p = digits + sizeof digits - 1;
	size_t len;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	len = (size_t)(digits + sizeof digits - 1 - p);
	memcpy(out, p, len + 1);
	return len;
}

size_t dec_ipv4(const void *addr, char out[DEC_IPV4_MAX])
{
	const unsigned char *b = addr;
	char num[DEC_U64_MAX];
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		size_t len = dec_u64(b[i], num);   /* 1 to 3 digits */

		if (i > 0)
			out[n++] = '.';
		memcpy(out + n, num, len);
		n += len;
	}
	out[n] = '\0';
	return n;
}
