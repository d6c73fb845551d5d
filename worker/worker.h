/*
 * worker — one worker process: its io_uring loop (uport), its Sofia root,
 * its B2BUA (b2b), its signals, and its drain.
 *
 * The master forks a worker and calls worker_run() in the child; it never
 * returns.  Everything Sofia-related is created here, after fork (Sofia's
 * random generator must not be shared between workers).
 */
#ifndef B2BUA_WORKER_H
#define B2BUA_WORKER_H

#include "b2bua/config.h"
#include "shm/board.h"
#include "shm/handover.h"
#include "shm/shm.h"

/* Exit status of a worker that could not start (the master stops b2bua
 * when the first start of a worker fails this way). */
#define WORKER_EXIT_START 3

/* Run worker `idx` in this freshly forked process; `ctl` is its end of the
 * control channel to the master (b2bua/ctl.h), `ho` the queues through
 * which workers pass each other datagrams (shm/handover.h), `board` where
 * the master publishes a reloaded configuration (shm/board.h), which the
 * worker then copies into *cfg. */
void worker_run(struct config *cfg, shm_t *shm, handover_t *ho, const board_t *board,
		unsigned idx, int ctl)
	__attribute__((noreturn));

/* reuseport.c: register this worker's SIP sockets, the datagram sockets bound
 * to `listen` (an IPv4 or IPv6 literal) with `public_port` or `own_port`.
 * From then on bind() sets SO_REUSEPORT on the public one and SO_RCVBUF
 * `rcvbuf` (0: untouched) on both; every other bind() is the plain system
 * call.  Returns 0, or -EINVAL for an address or port it cannot use. */
int reuseport_configure(const char *listen, int public_port, int own_port, int rcvbuf);
/* One more listen address (dual stack), after reuseport_configure: the same
 * ports and rules on it.  0, or -EINVAL (not an IP literal, too many). */
int reuseport_add(const char *listen);
/* The public TLS port too (transports "tls"): a TCP listener bound there on
 * the listen address gets SO_REUSEPORT.  0: none.  0 or -EINVAL. */
int reuseport_configure_tls(int tls_public_port);

#endif
