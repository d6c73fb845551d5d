/*
 * conn — the worker polices the TCP and TLS connections it accepted.
 *
 * Design note.  Sofia-SIP 1.12.11 has no connection limit, and its
 * TPTAG_TIMEOUT restarts with every byte received, so one byte a second
 * keeps an unfinished message alive for ever (docs/architecture.md,
 * "Connections", fact 7).  This file does what Sofia does not, from the
 * outside, without touching Sofia's structures:
 *
 *  - Which sockets.  accept() and accept4() are defined here, in the
 *    executable, like bind() in reuseport.c: the dynamic linker resolves
 *    Sofia's calls to them.  In a worker (after conn_configure()) every
 *    accepted socket is one of Sofia's stream connections: a worker listens
 *    on nothing else, whatever the transport (TCP or TLS) or the port.  So
 *    no port list is kept here; the master and the management process
 *    never configure conn, and their accept() is the system call.
 *  - Limits at accept.  A new connection over tcp_max_connections, or over
 *    tcp_max_per_source from its source IP, is closed at once, before
 *    Sofia sees it, and counted; the shim then takes the next waiting
 *    connection (Sofia's listeners are non-blocking: EAGAIN ends it), so
 *    one wake-up of a flooded listener drains its backlog.
 *  - Where a message starts and ends.  What Sofia reads from a TCP socket
 *    goes through recvmsg()/recv() (dgram_libc.c hands it here); from a TLS
 *    one, as plain text, through SSL_read(), defined here too (the real one
 *    found with dlsym(RTLD_NEXT)).  Those bytes are framed here the way RFC
 *    3261 18.3 frames a stream: CRLFs between messages are keepalives
 *    (RFC 5626), a message starts at its first other byte, its header
 *    block ends at an empty line, and its body is Content-Length (or "l")
 *    bytes long, 0 when absent.  The framing is only counted, never
 *    changed: Sofia reads and parses the same bytes itself.  Where a peer's
 *    framing is wrong (a Content-Length too long, garbage), both sides see
 *    a message that does not end, and the deadline closes it.
 *  - Deadlines, checked by the worker's one-second tick (conn_tick): a
 *    message not complete tcp_message_timeout after its first byte, and a
 *    connection with nothing received or sent for tcp_idle_timeout between
 *    messages.  A message over CONN_MAX_MESSAGE (64 KB, headers and body)
 *    is refused as soon as its size is known.  Each is counted.
 *  - How a connection is closed: shutdown(SHUT_RDWR), never close().
 *    The descriptor stays Sofia's: its poll wakes with end of stream, and
 *    Sofia closes the socket and frees its transport as for a peer that
 *    hung up.  close() is defined here to see that moment: the entry is
 *    dropped, the open count goes down, and a connection that ended in the
 *    middle of a message (the peer closed, or Sofia gave up on garbage) is
 *    counted.  Before any shutdown() the entry is known to be the one
 *    accepted (close() dropped every older one), so a reused descriptor is
 *    never touched.
 *
 * Connections the worker opens itself (a callee over TCP) are not counted
 * or policed here: they are not peers' to open, and NTA closes them when
 * their transactions end.  Everything here runs on the worker's one
 * thread.
 */
#define _GNU_SOURCE
#include "worker/conn.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "b2bua/log.h"
#include "b2bua/mono.h"

/* At most this many refused connections are closed in one accept() call:
 * Sofia's backlog is 64 (fact 1); the rest wait for the next wake-up. */
#define CONN_ACCEPT_BATCH 64
/* The start of a header line kept to read its name and Content-Length. */
#define CONN_LINE 48

enum conn_state { CONN_BETWEEN = 0, CONN_HEADERS, CONN_BODY };

struct conn {
	uint8_t used;
	uint8_t closing;          /* we shut it down: counted once, Sofia closes it */
	uint8_t state;            /* enum conn_state */
	uint8_t line_len;         /* bytes of line[] used; more may have come */
	uint8_t line_long;        /* the current line is longer than line[] */
	uint8_t family;           /* AF_INET or AF_INET6: the source address */
	uint8_t addr[16];
	char line[CONN_LINE];
	unsigned pos;             /* its index in conn.open[] */
	uint32_t size;            /* bytes of the current message so far */
	uint64_t content_length;  /* of the current message; 0 until a header says */
	uint64_t body_left;
	uint64_t last_ms;         /* the last byte received or sent */
	uint64_t msg_ms;          /* the current message's first byte; 0 between messages */
};

static struct {
	const struct config *cfg;   /* the worker's own copy: a reload rewrites it */
	shm_t *shm;
	unsigned idx;
	struct conn *table;         /* indexed by descriptor; NULL: not configured */
	int size;
	int *open;                  /* the descriptors in use, in no order */
	unsigned n_open;
} conn;

/* ------------------------------------------------------------ the table */

static struct conn *conn_of(int fd)
{
	if (conn.table == NULL || fd < 0 || fd >= conn.size || !conn.table[fd].used)
		return NULL;
	return &conn.table[fd];
}

static void conn_count(enum shm_counter ctr)
{
	shm_counter_add(conn.shm, conn.idx, ctr, 1);
}

static void conn_publish_open(void)
{
	shm_gauge_set(conn.shm, conn.idx, SHM_CTR_CONN_OPEN, conn.n_open);
}

/* The source IP of an accepted socket, as family and 4 or 16 bytes. */
static int conn_source(const struct sockaddr_storage *ss, uint8_t *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (ss->ss_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else {
		return -EAFNOSUPPORT;
	}
	*family = (uint8_t)ss->ss_family;
	return 0;
}

static unsigned conn_from_source(uint8_t family, const uint8_t addr[16])
{
	unsigned n = 0;

	for (unsigned i = 0; i < conn.n_open; i++) {
		const struct conn *c = &conn.table[conn.open[i]];

		if (c->family == family && memcmp(c->addr, addr, 16) == 0)
			n++;
	}
	return n;
}

static void conn_forget(int fd)
{
	struct conn *c = &conn.table[fd];
	unsigned last = conn.n_open - 1;

	conn.open[c->pos] = conn.open[last];
	conn.table[conn.open[last]].pos = c->pos;
	conn.n_open = last;
	memset(c, 0, sizeof *c);
	conn_publish_open();
}

/*
 * A connection just accepted on fd from `ss`: kept (0) or over a limit
 * (-EMFILE: tcp_max_connections, -EUSERS: tcp_max_per_source).  A
 * descriptor beyond the table (above the open file limit at start) or of
 * an unknown family is kept without being policed: refusing it would
 * refuse a legitimate peer for our own bookkeeping's sake.
 */
static int conn_admit(int fd, const struct sockaddr_storage *ss)
{
	struct conn *c;
	uint8_t family, addr[16];

	if (fd >= conn.size || conn_source(ss, &family, addr) < 0)
		return 0;
	if (conn.n_open >= (unsigned)conn.cfg->tcp_max_connections)
		return -EMFILE;
	if (conn_from_source(family, addr) >= (unsigned)conn.cfg->tcp_max_per_source)
		return -EUSERS;
	c = &conn.table[fd];
	if (c->used)
		conn_forget(fd);   /* closed behind our back: cannot be, but never count twice */
	c->used = 1;
	c->family = family;
	memcpy(c->addr, addr, 16);
	c->last_ms = mono_ms();
	c->pos = conn.n_open;
	conn.open[conn.n_open++] = fd;
	conn_publish_open();
	return 0;
}

/* ------------------------------------------------------------ closing */

static const char *conn_addr_text(const struct conn *c, char *buf, size_t size)
{
	if (inet_ntop(c->family, c->addr, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
	return buf;
}

/* Close a connection for `why`, counted in `ctr`: Sofia sees the end of the
 * stream and closes the descriptor itself (see the design note). */
static void conn_shut(int fd, enum shm_counter ctr, const char *why)
{
	struct conn *c = &conn.table[fd];
	char host[INET6_ADDRSTRLEN];

	if (c->closing)
		return;
	c->closing = 1;
	conn_count(ctr);
	log_limited_shape(LOG_INFO, "connection from %s closed: %s",
			  conn_addr_text(c, host, sizeof host), why);
	if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		log_warn("shutdown of connection fd %d: %m", fd);
}

/* ------------------------------------------------------------ framing */

static int conn_is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* "Content-Length: 123" or "l: 123" (any case, spaces around the colon):
 * its value in *out; anything else leaves *out alone. */
static void conn_header_line(const char *line, size_t len, uint64_t *out)
{
	const char *colon = memchr(line, ':', len);
	size_t name_len;
	const char *v, *end = line + len;
	uint64_t n = 0;

	if (colon == NULL)
		return;
	name_len = (size_t)(colon - line);
	while (name_len > 0 && conn_is_space(line[name_len - 1]))
		name_len--;
	if (!((name_len == 14 && strncasecmp(line, "content-length", 14) == 0) ||
	      (name_len == 1 && (line[0] == 'l' || line[0] == 'L'))))
		return;
	for (v = colon + 1; v < end && conn_is_space(*v); v++)
		;
	if (v == end || *v < '0' || *v > '9')
		return;
	for (; v < end && *v >= '0' && *v <= '9'; v++)
		n = n < UINT64_MAX / 16 ? n * 10 + (uint64_t)(*v - '0') : UINT64_MAX / 16;
	*out = n;
}

/* The end of a header line: the empty one ends the header block.  Returns
 * -EMSGSIZE when the body announced does not fit CONN_MAX_MESSAGE. */
static int conn_line_end(struct conn *c)
{
	size_t len = c->line_len;

	if (!c->line_long && len > 0 && c->line[len - 1] == '\r')
		len--;
	if (len == 0 && !c->line_long) {
		if (c->content_length > CONN_MAX_MESSAGE - c->size)
			return -EMSGSIZE;
		c->body_left = c->content_length;
		c->state = c->body_left ? CONN_BODY : CONN_BETWEEN;
		if (c->state == CONN_BETWEEN)
			c->msg_ms = 0;
	} else if (!c->line_long) {
		conn_header_line(c->line, len, &c->content_length);
	}
	c->line_len = 0;
	c->line_long = 0;
	return 0;
}

/* One byte of a header block. */
static int conn_header_byte(struct conn *c, char ch)
{
	if (++c->size > CONN_MAX_MESSAGE)
		return -EMSGSIZE;
	if (ch == '\n')
		return conn_line_end(c);
	if (c->line_len < CONN_LINE)
		c->line[c->line_len++] = ch;
	else
		c->line_long = 1;
	return 0;
}

/* Bytes Sofia read from the connection, in order.  Returns -EMSGSIZE for a
 * message over CONN_MAX_MESSAGE. */
static int conn_feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
	int ret;

	while (n > 0) {
		if (c->state == CONN_BETWEEN) {
			if (*p == '\r' || *p == '\n') {   /* a keepalive, RFC 5626 */
				p++, n--;
				continue;
			}
			c->state = CONN_HEADERS;
			c->msg_ms = now;
			c->size = 0;
			c->content_length = 0;
			c->line_len = 0;
			c->line_long = 0;
		}
		if (c->state == CONN_HEADERS) {
			ret = conn_header_byte(c, *p);
			if (ret < 0)
				return ret;
			p++, n--;
			continue;
		}
		size_t take = n < c->body_left ? n : (size_t)c->body_left;

		c->size += (uint32_t)take;
		c->body_left -= take;
		p += take, n -= take;
		if (c->body_left == 0) {
			c->state = CONN_BETWEEN;
			c->msg_ms = 0;
		}
	}
	return 0;
}

static void conn_bytes(int fd, const void *buf, size_t n)
{
	struct conn *c = conn_of(fd);
	uint64_t now;

	if (c == NULL || c->closing)
		return;
	now = mono_ms();
	c->last_ms = now;
	if (conn_feed(c, buf, n, now) < 0)
		conn_shut(fd, SHM_CTR_CONN_OVERSIZED, "a message over 64 KB");
}

/* ------------------------------------------------------------ public */

void conn_on_recv(int fd, const void *buf, ssize_t n)
{
	if (n > 0)
		conn_bytes(fd, buf, (size_t)n);
}

void conn_on_recvmsg(int fd, const struct msghdr *mh, ssize_t n)
{
	size_t left = n > 0 ? (size_t)n : 0;

	if (conn_of(fd) == NULL)
		return;
	for (size_t i = 0; i < mh->msg_iovlen && left > 0; i++) {
		size_t take = mh->msg_iov[i].iov_len < left ? mh->msg_iov[i].iov_len : left;

		conn_bytes(fd, mh->msg_iov[i].iov_base, take);
		left -= take;
	}
}

void conn_on_send(int fd)
{
	struct conn *c = conn_of(fd);

	if (c != NULL)
		c->last_ms = mono_ms();
}

unsigned conn_open_count(void)
{
	return conn.n_open;
}

void conn_tick(void)
{
	uint64_t now = mono_ms();
	uint64_t msg_ms, idle_ms;

	if (conn.table == NULL)
		return;
	msg_ms = (uint64_t)conn.cfg->tcp_message_timeout * 1000u;
	idle_ms = (uint64_t)conn.cfg->tcp_idle_timeout * 1000u;
	/* conn_shut() only marks an entry: the list does not change under us. */
	for (unsigned i = 0; i < conn.n_open; i++) {
		int fd = conn.open[i];
		struct conn *c = &conn.table[fd];

		if (c->closing)
			continue;
		if (c->msg_ms != 0 && now - c->msg_ms >= msg_ms)
			conn_shut(fd, SHM_CTR_CONN_MSG_TIMEOUT, "message not complete in time");
		else if (c->msg_ms == 0 && now - c->last_ms >= idle_ms)
			conn_shut(fd, SHM_CTR_CONN_IDLE, "idle");
	}
}

int conn_configure(const struct config *cfg, shm_t *shm, unsigned idx)
{
	struct rlimit rl;
	rlim_t size = 65536;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < size)
		size = rl.rlim_cur;
	conn.table = calloc((size_t)size, sizeof *conn.table);
	conn.open = calloc((size_t)size, sizeof *conn.open);
	if (conn.table == NULL || conn.open == NULL) {
		free(conn.table);
		free(conn.open);
		conn.table = NULL;
		conn.open = NULL;
		return -ENOMEM;
	}
	conn.size = (int)size;
	conn.cfg = cfg;
	conn.shm = shm;
	conn.idx = idx;
	conn.n_open = 0;
	conn_publish_open();   /* a restarted worker starts with none */
	return 0;
}

/* ------------------------------------------------------------ the shims */

static int conn_accept(int lfd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, why;

	if (conn.table == NULL)
		return (int)syscall(SYS_accept4, lfd, addr, len, flags);
	for (int k = 0; k < CONN_ACCEPT_BATCH; k++) {
		sl = sizeof ss;
		fd = (int)syscall(SYS_accept4, lfd, &ss, &sl, flags);
		if (fd < 0)
			return fd;
		why = conn_admit(fd, &ss);
		if (why == 0) {
			if (addr != NULL && len != NULL) {
				memcpy(addr, &ss, sl < *len ? sl : *len);
				*len = sl;
			}
			return fd;
		}
		syscall(SYS_close, fd);
		conn_count(SHM_CTR_CONN_REFUSED);
		log_limited_shape(LOG_INFO, "connection refused at accept: %s",
				  why == -EMFILE ? "tcp_max_connections reached"
						 : "tcp_max_per_source reached");
	}
	errno = EAGAIN;
	return -1;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return conn_accept(fd, addr, len, 0);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return conn_accept(fd, addr, len, flags);
}

int close(int fd)
{
	struct conn *c = conn_of(fd);

	if (c != NULL) {
		if (!c->closing && c->state != CONN_BETWEEN)
			conn_count(SHM_CTR_CONN_PARTIAL);
		conn_forget(fd);
	}
	return (int)syscall(SYS_close, fd);
}

/*
 * TLS: Sofia's tport_tls reads and writes the plain text with OpenSSL's
 * SSL_read()/SSL_write(); the socket's own reads carry records, not SIP.
 * The real functions are libssl's (dlsym(RTLD_NEXT)); SSL_get_fd() names
 * the connection.  Declared with an opaque type: no OpenSSL header here.
 */
struct ssl_st;

static int conn_ssl_fd(struct ssl_st *ssl)
{
	static int (*get_fd)(const struct ssl_st *);

	if (conn.table == NULL)
		return -1;
	if (get_fd == NULL)
		get_fd = (int (*)(const struct ssl_st *))dlsym(RTLD_NEXT, "SSL_get_fd");
	return get_fd ? get_fd(ssl) : -1;
}

int SSL_read(struct ssl_st *ssl, void *buf, int num)
{
	static int (*real)(struct ssl_st *, void *, int);
	int n;

	if (real == NULL)
		real = (int (*)(struct ssl_st *, void *, int))dlsym(RTLD_NEXT, "SSL_read");
	if (real == NULL)
		return -1;
	n = real(ssl, buf, num);
	if (n > 0)
		conn_on_recv(conn_ssl_fd(ssl), buf, n);
	return n;
}

int SSL_write(struct ssl_st *ssl, const void *buf, int num)
{
	static int (*real)(struct ssl_st *, const void *, int);
	int n;

	if (real == NULL)
		real = (int (*)(struct ssl_st *, const void *, int))dlsym(RTLD_NEXT, "SSL_write");
	if (real == NULL)
		return -1;
	n = real(ssl, buf, num);
	if (n > 0)
		conn_on_send(conn_ssl_fd(ssl));
	return n;
}
