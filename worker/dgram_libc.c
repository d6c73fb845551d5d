/*
 * dgram_libc — the socket functions of libc that Sofia-SIP calls, defined in
 * the executable so that on the worker's two SIP sockets they are answered
 * by worker/dgram.c (see dgram.h: "To Sofia" and "Out"; and SO_ERROR, see
 * getsockopt below), the way
 * worker/reuseport.c defines bind().  The dynamic linker resolves Sofia's
 * calls, and every other caller's, to these; on any other socket (Redis,
 * the control channel, the CLI) and in the master and the management
 * process (no dgram is active there) each one is the plain system call.
 *
 * On a stream socket, what Sofia read (not peeked) and that it wrote is
 * told to worker/conn.c, which frames and times the connections a worker
 * accepted (conn.h); conn ignores every other descriptor.
 *
 * inet_ntop() is here too, for speed rather than for the sockets: Sofia
 * prints the source address of every message it receives, and glibc's
 * IPv4 path is a sprintf (worker/dec.h).  IPv4 is ours, every other family
 * libc's.
 *
 * Linked into the b2bua executable only: the fuzzers and unit tests keep
 * their sanitizers' own versions of these functions.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "worker/conn.h"
#include "worker/dgram.h"
#include "worker/dec.h"

ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
	struct dgram_sock *s = dgram_sock_of(fd);
	ssize_t n;

	/* MSG_ERRQUEUE: ICMP errors stay the kernel's to report. */
	if (s == NULL || (flags & MSG_ERRQUEUE)) {
		n = (ssize_t)syscall(SYS_recvmsg, fd, mh, flags);
		if (s == NULL && n > 0 && !(flags & (MSG_PEEK | MSG_ERRQUEUE)))
			conn_on_recvmsg(fd, mh, n);
		return n;
	}
	return dgram_take(s, mh, flags);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
		 socklen_t *fromlen)
{
	struct dgram_sock *s = dgram_sock_of(fd);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_name = from, .msg_namelen = fromlen ? *fromlen : 0,
			     .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (s == NULL) {
		n = (ssize_t)syscall(SYS_recvfrom, fd, buf, len, flags, from, fromlen);
		if (n > 0 && !(flags & MSG_PEEK))
			conn_on_recv(fd, buf, n);
		return n;
	}
	n = dgram_take(s, &mh, flags);
	if (n >= 0 && fromlen)
		*fromlen = mh.msg_namelen;
	return n;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	return recvfrom(fd, buf, len, flags, NULL, NULL);
}

/* Sofia is built with _FORTIFY_SOURCE: a recv() into a buffer of known size
 * (its CRLF keepalive check on a stream, tport_recv_stream) is compiled to
 * __recv_chk, which would bypass recv() above. */
extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	if (len > buflen)
		__chk_fail();
	return recv(fd, buf, len, flags);
}

/* ioctl(FIONREAD) on one of our sockets: the size of the next datagram,
 * which is what the kernel says for a datagram socket (Sofia sizes its
 * receive buffer with it).  Every ioctl takes at most one argument. */
int ioctl(int fd, unsigned long request, ...)
{
	struct dgram_sock *s = dgram_sock_of(fd);
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (s != NULL && request == FIONREAD && arg != NULL) {
		*(int *)arg = dgram_next_len(s);
		return 0;
	}
	return (int)syscall(SYS_ioctl, fd, request, arg);
}

ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
	struct dgram_sock *s = dgram_sock_of(fd);

	if (s == NULL) {
		conn_on_send(fd);
		return (ssize_t)syscall(SYS_sendmsg, fd, mh, flags);
	}
	return dgram_send(s, fd, mh, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
	       socklen_t tolen)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_name = (void *)to, .msg_namelen = to ? tolen : 0,
			     .msg_iov = &iov, .msg_iovlen = 1 };
	struct dgram_sock *s = dgram_sock_of(fd);

	if (s == NULL) {
		conn_on_send(fd);
		return (ssize_t)syscall(SYS_sendto, fd, buf, len, flags, to, tolen);
	}
	return dgram_send(s, fd, &mh, flags);
}

/*
 * getsockopt(SO_ERROR) on one of our sockets: 0.  Sofia asks it before
 * every datagram it sends, to clear an error nobody reads (tport_type_udp.c:
 * "we *still* have a race condition"); an ICMP error of an earlier send
 * comes to us as the error of a receive instead (worker/dgram.c), and a
 * send's own error with its completion.  Every other option is the system
 * call's.
 */
int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	if (level == SOL_SOCKET && optname == SO_ERROR && optval != NULL && optlen != NULL &&
	    *optlen >= (socklen_t)sizeof(int) && dgram_sock_of(fd) != NULL) {
		*(int *)optval = 0;
		*optlen = sizeof(int);
		return 0;
	}
	return (int)syscall(SYS_getsockopt, fd, level, optname, optval, optlen);
}

/* libc's inet_ntop, for the families dec.h does not do. */
typedef const char *ntop_fn(int af, const void *src, char *dst, socklen_t size);

const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
{
	static ntop_fn *real;
	char text[DEC_IPV4_MAX];
	size_t len;

	if (af != AF_INET) {
		if (real == NULL)
			real = (ntop_fn *)dlsym(RTLD_NEXT, "inet_ntop");
		if (real == NULL) {
			errno = EAFNOSUPPORT;
			return NULL;
		}
		return real(af, src, dst, size);
	}
	len = dec_ipv4(src, text);
	if (dst == NULL || size <= len) {
		errno = ENOSPC;   /* as libc says it */
		return NULL;
	}
	memcpy(dst, text, len + 1);
	return dst;
}
