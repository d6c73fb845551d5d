/*
 * reuseport — let every worker bind the public SIP port.
 *
 * Design note.  Sofia-SIP's UDP transport has no tag that sets SO_REUSEPORT,
 * and it calls bind(2) itself.  This file defines bind() in the executable;
 * the dynamic linker resolves Sofia's calls to it, and every other bind() in
 * the program (the master's CLI socket, anything a library binds) comes here
 * too.  So it acts only on the worker's two SIP sockets, which the worker
 * registers with reuseport_configure() (and reuseport_add() for each further
 * listen address: dual stack) before it creates its Sofia agent:
 * datagram sockets bound to exactly one of the configured listen addresses with
 *   - the public port: SO_REUSEPORT, so the kernel spreads callers over the
 *     workers and keeps one source address/port on one worker;
 *   - the public port or the worker's own port: the receive buffer
 *     (udp_rcvbuf), so a burst of datagrams is not dropped before the
 *     worker reads it.
 * A bind() to any other address or port goes straight to the system call,
 * without even a getsockopt; the socket type is asked only when the address
 * matches.  A TCP listener on the public port (transports "tcp") or on the
 * public TLS port (transports "tls", reuseport_configure_tls) gets
 * SO_REUSEPORT only, so every worker accepts there; any other TCP socket on
 * these addresses is left alone.  Until
 * reuseport_configure() runs (and always in the master) nothing matches.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "b2bua/log.h"
#include "worker/worker.h"

#define REUSEPORT_MAX_ADDRS 8

/* The listen addresses (dual stack: one per entry of `listen`). */
static struct reuseport_addr {
	int family;                        /* AF_INET or AF_INET6 */
	struct in_addr addr4;
	struct in6_addr addr6;
} reuseport_addrs[REUSEPORT_MAX_ADDRS];
static unsigned reuseport_n;              /* 0: not configured */
static int reuseport_public_port;
static int reuseport_own_port;
static int reuseport_rcvbuf;              /* 0: leave the kernel's default */
static int reuseport_tls_port;            /* the public TLS port; 0: no TLS */

int reuseport_configure(const char *listen, int public_port, int own_port, int rcvbuf)
{
	reuseport_n = 0;
	if (listen == NULL || public_port < 1 || public_port > 65535 ||
	    own_port < 1 || own_port > 65535 || rcvbuf < 0)
		return -EINVAL;
	reuseport_public_port = public_port;
	reuseport_own_port = own_port;
	reuseport_rcvbuf = rcvbuf;
	return reuseport_add(listen);
}

int reuseport_add(const char *listen)
{
	struct reuseport_addr *a = &reuseport_addrs[reuseport_n];

	if (reuseport_public_port == 0 || reuseport_n == REUSEPORT_MAX_ADDRS || listen == NULL)
		return -EINVAL;
	memset(a, 0, sizeof *a);
	if (inet_pton(AF_INET, listen, &a->addr4) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, listen, &a->addr6) == 1)
		a->family = AF_INET6;
	else
		return -EINVAL;
	reuseport_n++;
	return 0;
}

/* Is `addr` the listen address `a`?  1 or 0. */
static int reuseport_is(const struct reuseport_addr *a, const struct sockaddr *addr,
			socklen_t len)
{
	if (addr->sa_family != a->family)
		return 0;
	if (a->family == AF_INET && len >= sizeof(struct sockaddr_in))
		return ((const struct sockaddr_in *)addr)->sin_addr.s_addr == a->addr4.s_addr;
	if (a->family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		return memcmp(&((const struct sockaddr_in6 *)addr)->sin6_addr, &a->addr6,
			      sizeof a->addr6) == 0;
	return 0;
}

int reuseport_configure_tls(int tls_public_port)
{
	if (tls_public_port < 0 || tls_public_port > 65535)
		return -EINVAL;
	reuseport_tls_port = tls_public_port;
	return 0;
}

/* The port of `addr` when it is one of the registered listen addresses, else -1. */
static int reuseport_sip_port_of(const struct sockaddr *addr, socklen_t len)
{
	if (addr == NULL || len < sizeof addr->sa_family)
		return -1;
	for (unsigned i = 0; i < reuseport_n; i++)
		if (reuseport_is(&reuseport_addrs[i], addr, len))
			return addr->sa_family == AF_INET
			       ? ntohs(((const struct sockaddr_in *)addr)->sin_port)
			       : ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
	return -1;
}

static int reuseport_type(int fd)
{
	int type = 0;
	socklen_t tlen = sizeof type;

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 ? type : -1;
}

/* A TCP listener on the public port (transports "tcp"): SO_REUSEPORT only,
 * so that every worker listens there and the kernel spreads the
 * connections; the receive buffer of a connection stays the kernel's. */
static void reuseport_prepare_stream(int fd, int port)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		log_warn("SO_REUSEPORT on TCP port %d: %m", port);
}

static void reuseport_prepare(int fd, int port)
{
	int one = 1;

	if (port == reuseport_public_port &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		log_warn("SO_REUSEPORT on port %d: %m", port);
	/* SO_RCVBUFFORCE passes net.core.rmem_max when we may (root). */
	if (reuseport_rcvbuf > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &reuseport_rcvbuf,
		       sizeof reuseport_rcvbuf) < 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &reuseport_rcvbuf,
		       sizeof reuseport_rcvbuf) < 0)
		log_warn("SO_RCVBUF %d on port %d: %m", reuseport_rcvbuf, port);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int port = reuseport_n ? reuseport_sip_port_of(addr, len) : -1;

	int tls = port > 0 && port == reuseport_tls_port;
	int type = port == reuseport_public_port || port == reuseport_own_port || tls ?
		   reuseport_type(fd) : -1;

	if (type == SOCK_DGRAM && !tls)
		reuseport_prepare(fd, port);
	else if (type == SOCK_STREAM && (port == reuseport_public_port || tls))
		reuseport_prepare_stream(fd, port);
	return (int)syscall(SYS_bind, fd, addr, len);
}
