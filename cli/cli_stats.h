/*
 * cli_stats — the daemon's figures, gathered from the shared call table
 * into one plain struct.
 *
 * Design note.  `show stats` and `show workers` print these figures; a
 * metrics endpoint (served, like the CLI, by the side of the daemon that
 * answers operators) must print the same ones.  So gathering them is kept
 * apart from formatting: cli_stats_collect() reads only shm/ and fills a
 * struct with no buffer, JSON or socket in it, and the CLI's handlers
 * (cli_stats.c) format what it returns.  The figures are a snapshot taken
 * without locks (shm/ gives consistent reads of each counter, not of all
 * of them at once), which is what a counter endpoint expects.
 */
#ifndef B2BUA_CLI_STATS_H
#define B2BUA_CLI_STATS_H

#include <stdint.h>

#include "shm/shm.h"

struct cli_stats {
	uint64_t ctr[SHM_CTR__COUNT];   /* summed over the configured workers */
	unsigned active;                /* calls in the table now */
	/* final codes sent, summed over workers: final_codes[code - SHM_CODE_MIN] */
	uint64_t final_codes[SHM_CODE_MAX - SHM_CODE_MIN + 1];
	int draining;                   /* the daemon takes no new calls */
};

/* How many worker slots count: the configured `workers` (0: all), within the table's. */
unsigned cli_stats_workers(const shm_t *shm, unsigned workers);

/* The figures of the daemon that runs `workers` workers on `shm`, and is `draining` or not. */
void cli_stats_collect(const shm_t *shm, unsigned workers, int draining, struct cli_stats *out);

#endif
