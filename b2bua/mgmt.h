/*
 * mgmt — the management process: serves the operator's CLI socket and the
 * metrics endpoint (b2bua/metrics.h), so that the master does nothing but
 * supervise.
 *
 * The master opens the CLI socket before it forks anything (a second
 * daemon on the same socket is refused at once) and keeps it open; the
 * management process inherits it and answers clients.  When the management
 * process dies the master restarts it like a worker, and clients that
 * connected meanwhile wait in the socket's backlog, losing nothing.  A slow
 * Redis behind a `user ...` command delays other CLI clients, never the
 * master's supervision of the workers.
 */
#ifndef B2BUA_MGMT_H
#define B2BUA_MGMT_H

#include "b2bua/config.h"
#include "cli/cli_server.h"
#include "shm/board.h"

/* Exit status of a management process that could not start. */
#define MGMT_EXIT_START 3

/*
 * Run the management process (in the child, after fork): serve `cli` (which
 * reads the call table itself) and the master's control channel `ctl` until
 * SIGTERM or until the master goes away.  A reload (CTL_RELOAD) copies the
 * configuration the master published on `board` into *cfg.  Never returns.
 */
void mgmt_run(struct config *cfg, const board_t *board, cli_server_t *cli, int ctl)
	__attribute__((noreturn));

#endif
