/*
 * reuseport — let every worker bind the public SIP port.
 *
 * Design note.  Sofia-SIP's UDP transport has no tag that sets SO_REUSEPORT,
 * and it calls bind(2) itself.  This file defines bind() in the executable;
 * the dynamic linker resolves Sofia's calls to it.  For datagram sockets it
 *   - sets SO_REUSEPORT when the port is the configured public port, so the
 *     kernel spreads callers over the workers and keeps one source
 *     address/port on one worker;
 *   - sets the receive buffer (udp_rcvbuf) on every SIP socket, so a burst
 *     of datagrams is not dropped before the worker reads it;
 * and then performs the real system call.  Anything else is passed through.
 * The worker sets the two values with reuseport_configure() before it
 * creates its Sofia agent; until then (and in the master) bind() is plain.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "b2bua/log.h"
#include "worker/worker.h"

static int reuseport_port;     /* 0: not configured */
static int reuseport_rcvbuf;

void reuseport_configure(int public_port, int rcvbuf)
{
	reuseport_port = public_port;
	reuseport_rcvbuf = rcvbuf;
}

static int reuseport_addr_port(const struct sockaddr *addr, socklen_t len)
{
	if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
		return ntohs(((const struct sockaddr_in *)addr)->sin_port);
	if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
	return -1;
}

static int reuseport_is_datagram(int fd)
{
	int type = 0;
	socklen_t tlen = sizeof type;

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_DGRAM;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int port = addr ? reuseport_addr_port(addr, len) : -1;

	if (reuseport_port > 0 && port > 0 && reuseport_is_datagram(fd)) {
		int one = 1;

		if (port == reuseport_port &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
			log_warn("SO_REUSEPORT on port %d: %m", port);
		if (reuseport_rcvbuf > 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &reuseport_rcvbuf,
			       sizeof reuseport_rcvbuf) < 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &reuseport_rcvbuf,
			       sizeof reuseport_rcvbuf) < 0)
			log_warn("SO_RCVBUF %d on port %d: %m", reuseport_rcvbuf, port);
	}
	return (int)syscall(SYS_bind, fd, addr, len);
}
