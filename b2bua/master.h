/*
 * master — the supervising process.  It reads the config (main.c), creates
 * the shared call table, opens the CLI socket, forks the workers and keeps
 * them running.  It touches no SIP.
 */
#ifndef B2BUA_MASTER_H
#define B2BUA_MASTER_H

#include "b2bua/config.h"

/* Run until SIGTERM/SIGINT and a completed drain.  Returns the exit code. */
int master_run(const struct config *cfg);

#endif
