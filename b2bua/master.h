/*
 * master — the supervising process.  It reads the config (main.c), creates
 * the shared call table, opens the CLI socket, forks the workers and keeps
 * them running.  It touches no SIP.
 */
#ifndef B2BUA_MASTER_H
#define B2BUA_MASTER_H

#include "b2bua/config.h"

/* Run until SIGTERM/SIGINT and a completed drain.  Returns the exit code.
 * *cfg is the running configuration: a reload (SIGHUP, b2bua-cli reload)
 * writes it, and every child forked after that starts with it. */
int master_run(struct config *cfg);

#endif
