/*
 * fmt — see fmt.h.  One pass over the format, byte by byte: what Sofia
 * prints is short (a request line is some 60 bytes in 22 %s), so a loop
 * that copies and counts in one go beats strlen and memcpy calls per piece.
 * A plain %s is recognised first; any other conversion is parsed into a
 * struct fmt_spec and written by fmt_put_num or fmt_put_str.  The text
 * that does not fit is counted, not written, as vsnprintf counts it.
 */
#include "worker/fmt.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "worker/dec.h"

/* Where the text goes: buf[0 .. size-1], and how long it is so far. */
struct fmt_out {
	char *buf;
	size_t size;
	size_t len;
};

/* One conversion: %[0][width][length]conv. */
struct fmt_spec {
	int zero;            /* the flag 0 */
	size_t width;
	int length;          /* 0, 'l', 'L' (ll) or 'z' */
	char conv;
};

static inline void fmt_putc(struct fmt_out *o, char ch)
{
	if (o->len < o->size)
		o->buf[o->len] = ch;
	o->len++;
}

/* A NUL-terminated string; NULL is glibc's "(null)". */
static inline void fmt_puts(struct fmt_out *o, const char *s)
{
	if (s == NULL)
		s = "(null)";
	while (*s)
		fmt_putc(o, *s++);
}

static void fmt_put(struct fmt_out *o, const char *p, size_t n)
{
	if (o->len < o->size) {
		size_t room = o->size - o->len;

		memcpy(o->buf + o->len, p, n < room ? n : room);
	}
	o->len += n;
}

static void fmt_pad(struct fmt_out *o, char ch, size_t n)
{
	while (n-- > 0)
		fmt_putc(o, ch);
}

/* Parse the conversion after a '%' at *pp; 0, or -1 when not ours. */
static int fmt_parse(const char **pp, struct fmt_spec *sp)
{
	const char *p = *pp;

	memset(sp, 0, sizeof *sp);
	if (*p == '0') {
		sp->zero = 1;
		p++;
	}
	while (*p >= '0' && *p <= '9') {
		if (sp->width > 100000)
			return -1;   /* absurd widths are libc's business */
		sp->width = sp->width * 10 + (size_t)(*p++ - '0');
	}
	if (*p == 'l') {
		p++;
		sp->length = 'l';
		if (*p == 'l') {
			p++;
			sp->length = 'L';
		}
	} else if (*p == 'z') {
		p++;
		sp->length = 'z';
	}
	sp->conv = *p;
	switch (sp->conv) {
	case 'd': case 'i': case 'u': case 'x':
		break;
	case 's': case 'c': case '%':
		if (sp->zero || sp->length)
			return -1;
		if (sp->conv == '%' && sp->width)
			return -1;
		break;
	default:
		return -1;
	}
	*pp = p + 1;
	return 0;
}

/* v in hexadecimal, lower case, into out (no NUL); its length. */
static size_t fmt_hex(uint64_t v, char out[16])
{
	char digits[16];
	size_t n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v > 0);
	for (size_t i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	return n;
}

/* A number: its sign, then zeros or spaces up to the width, then digits. */
static void fmt_put_num(struct fmt_out *o, const struct fmt_spec *sp, va_list *ap)
{
	char digits[DEC_U64_MAX];
	uint64_t mag;
	int neg = 0;
	size_t n, shown;

	if (sp->conv == 'd' || sp->conv == 'i') {
		long long v = sp->length == 'L' ? va_arg(*ap, long long)
			    : sp->length == 'l' ? va_arg(*ap, long)
			    : sp->length == 'z' ? (long long)va_arg(*ap, ssize_t)
			    : va_arg(*ap, int);

		neg = v < 0;
		mag = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	} else {
		mag = sp->length == 'L' ? va_arg(*ap, unsigned long long)
		    : sp->length == 'l' ? va_arg(*ap, unsigned long)
		    : sp->length == 'z' ? va_arg(*ap, size_t)
		    : va_arg(*ap, unsigned int);
	}
	n = sp->conv == 'x' ? fmt_hex(mag, digits) : dec_u64(mag, digits);
	shown = n + (size_t)neg;
	if (!sp->zero && sp->width > shown)
		fmt_pad(o, ' ', sp->width - shown);
	if (neg)
		fmt_put(o, "-", 1);
	if (sp->zero && sp->width > shown)
		fmt_pad(o, '0', sp->width - shown);
	fmt_put(o, digits, n);
}

static void fmt_put_str(struct fmt_out *o, const struct fmt_spec *sp, const char *s)
{
	size_t n = strlen(s ? s : "(null)");

	if (sp->width > n)
		fmt_pad(o, ' ', sp->width - n);
	fmt_puts(o, s);
}

int fmt_vsnprintf(char *buf, size_t size, const char *format, va_list ap)
{
	struct fmt_out o = { buf, size, 0 };
	const char *p = format;
	va_list args;

	va_copy(args, ap);
	for (char ch; (ch = *p++) != '\0'; ) {
		struct fmt_spec sp;

		if (ch != '%') {
			fmt_putc(&o, ch);
			continue;
		}
		if (*p == 's') {   /* most of what Sofia prints */
			p++;
			fmt_puts(&o, va_arg(args, const char *));
			continue;
		}
		if (fmt_parse(&p, &sp) < 0) {
			va_end(args);
			return FMT_UNSUPPORTED;
		}
		switch (sp.conv) {
		case '%':
			fmt_putc(&o, '%');
			break;
		case 's':
			fmt_put_str(&o, &sp, va_arg(args, const char *));
			break;
		case 'c': {
			char c = (char)va_arg(args, int);

			if (sp.width > 1)
				fmt_pad(&o, ' ', sp.width - 1);
			fmt_putc(&o, c);
			break;
		}
		default:
			fmt_put_num(&o, &sp, &args);
			break;
		}
	}
	va_end(args);
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = '\0';
	if (o.len > INT_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	return (int)o.len;
}
