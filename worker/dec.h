/*
 * dec — numbers and IPv4 addresses as decimal text, without printf.
 *
 * The call path writes numbers into Redis commands (worker/rds.c), CDR
 * lines (worker/cdr.c) and printf's plain formats (worker/fmt.c), and
 * Sofia-SIP prints the source address of every message it receives with
 * inet_ntop(), whose IPv4 path in glibc is a sprintf.  printf's machinery
 * was 14 % of a worker's instructions (bench/README.md, "Issue 9, session
 * 2026-12-08"); these do the same with a digit loop.  worker/dgram_libc.c
 * defines inet_ntop() in the executable with dec_ipv4() for AF_INET.
 */
#ifndef B2BUA_DEC_H
#define B2BUA_DEC_H

#include <stddef.h>
#include <stdint.h>

#define DEC_U64_MAX  21   /* "18446744073709551615" and its NUL */
#define DEC_IPV4_MAX 16   /* "255.255.255.255" and its NUL: INET_ADDRSTRLEN */

/* Write v in decimal and a NUL into out; the length without the NUL. */
size_t dec_u64(uint64_t v, char out[DEC_U64_MAX]);

/*
 * Write the four bytes at addr (network order, as in struct in_addr) as
 * "a.b.c.d" and a NUL into out.  Returns the length without the NUL.
 */
size_t dec_ipv4(const void *addr, char out[DEC_IPV4_MAX]);

#endif
