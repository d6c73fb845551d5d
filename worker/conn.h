/*
 * conn — the limits and timeouts of the TCP and TLS connections a worker
 * accepted: tcp_max_connections, tcp_max_per_source, tcp_idle_timeout,
 * tcp_message_timeout, and the 64 KB message limit.  See conn.c.
 *
 * conn.c defines accept(), accept4(), close(), SSL_read() and SSL_write()
 * in the executable (like reuseport.c defines bind()); dgram_libc.c tells
 * it what Sofia read from and wrote to a stream socket.  Until
 * conn_configure() runs (and always in the master and the management
 * process) each of them is the plain call.
 */
#ifndef B2BUA_CONN_H
#define B2BUA_CONN_H

#include <sys/socket.h>
#include <sys/types.h>

#include "b2bua/config.h"
#include "shm/shm.h"

/* A message on a connection may not be larger (headers and body). */
#define CONN_MAX_MESSAGE 65536

/*
 * Worker: from now on count and police the connections accepted in this
 * process, reading the limits from *cfg each time (a reload rewrites it),
 * and publish them as worker `idx`'s counters in `shm`.  Returns 0, or
 * -ENOMEM.
 */
int conn_configure(const struct config *cfg, shm_t *shm, unsigned idx);

/* Worker, once a second: close the connections past their idle or message
 * deadline (shutdown(); Sofia then closes and frees them). */
void conn_tick(void);

/* dgram_libc.c: Sofia read `n` bytes (n > 0, not a MSG_PEEK) from stream
 * socket fd into mh's iovecs, or into buf. */
void conn_on_recvmsg(int fd, const struct msghdr *mh, ssize_t n);
void conn_on_recv(int fd, const void *buf, ssize_t n);

/* dgram_libc.c: Sofia wrote to socket fd (any socket; only ours count). */
void conn_on_send(int fd);

/* Connections this worker accepted that are open now. */
unsigned conn_open_count(void);

#endif
