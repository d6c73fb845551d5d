/*
 * ntop — an IPv4 address as dotted-quad text, without printf.
 *
 * Sofia-SIP prints the source address of every message it receives
 * (tport_deliver) and of every address it puts into a Via with glibc's
 * inet_ntop(), which formats IPv4 with sprintf: about 1 800 instructions
 * each, seven or more times a call.  worker/dgram_libc.c defines inet_ntop()
 * in the executable with this function for AF_INET (everything else goes to
 * libc's), the way it defines Sofia's socket functions.
 */
#ifndef B2BUA_NTOP_H
#define B2BUA_NTOP_H

#include <stddef.h>

#define NTOP_IPV4_MAX 16   /* "255.255.255.255" and its NUL: INET_ADDRSTRLEN */

/*
 * Write the four bytes at addr (network order, as in struct in_addr) as
 * "a.b.c.d" and a NUL into out (NTOP_IPV4_MAX bytes).  Returns the length
 * without the NUL.
 */
size_t ntop_ipv4(const void *addr, char out[NTOP_IPV4_MAX]);

#endif
