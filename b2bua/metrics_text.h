/*
 * metrics_text — the Prometheus text exposition (format 0.0.4) of the
 * daemon's figures, and the parser of `metrics_address`.  Pure: it reads
 * the shared call table and counters (shm/shm.h) and writes a buffer; no
 * socket, no HTTP (that is metrics.c, in the management process).
 *
 * Design note.  Every figure is read from shm/ at the moment of the
 * scrape: the workers keep their counters and histograms there anyway
 * (for `b2bua-cli show stats`), so a scrape costs them nothing, and the
 * endpoint and the CLI report the same numbers.  Which metrics exist, with
 * their type, labels and meaning, is docs/metrics.md; tests/e2e/metrics.sh
 * reads that page and fails when a name it lists is missing here.
 */
#ifndef B2BUA_METRICS_TEXT_H
#define B2BUA_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "shm/shm.h"

/* The Content-Type of what metrics_text_render() writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Parse a metrics_address: "ip:port", the ip an IPv4 address or a
 * bracketed IPv6 one ("[::1]:9464"), the port 1..65535.  Names are refused
 * (no lookup at start).  Returns 0 and, when out is not NULL, the address
 * in *out and its length in *len; or -EINVAL with what is wrong in *why
 * (a constant string).
 */
int metrics_address_parse(const char *text, struct sockaddr_storage *out, socklen_t *len,
			  const char **why);

/*
 * Pure: `us` microseconds as seconds in the shortest exact decimal form
 * ("0.0001", "0.25", "30"), the form of a histogram's `le` and `_sum`.
 * Returns 0, or -ENOSPC when buf is too small (then buf holds "").
 */
int metrics_text_seconds(uint64_t us, char *buf, size_t size);

/*
 * The whole exposition for the daemon that runs `workers` workers on
 * `shm` (0 or more than the table holds: every worker slot of the table).
 * Returns 0 with a malloc'd, NUL-terminated text in *out (the caller frees
 * it) and its length in *len, or -ENOMEM.
 */
int metrics_text_render(const shm_t *shm, unsigned workers, char **out, size_t *len);

#endif
