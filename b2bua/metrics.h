/*
 * metrics — the Prometheus endpoint: `GET /metrics` over HTTP on
 * `metrics_address`, served by the management process (b2bua/mgmt.c) from
 * its own poll() loop; never by a worker, never from a thread of its own.
 * What it says is metrics_text.h; what each metric means, docs/metrics.md.
 *
 * Life cycle, in the management process: metrics_create() (nothing to do
 * when metrics_address is empty: *out is NULL), then in the loop poll
 * metrics_fd() for POLLIN, bound the wait by metrics_timeout_ms(), and
 * call metrics_run() after every wake-up; metrics_destroy() at exit.
 */
#ifndef B2BUA_METRICS_H
#define B2BUA_METRICS_H

#include "b2bua/config.h"
#include "shm/shm.h"

typedef struct metrics metrics_t;

/*
 * Listen on cfg->metrics_address and serve the figures of `shm` (its
 * cfg->workers workers).  Returns 0 with *out (NULL when metrics_address is
 * empty: metrics are off), or a negative errno when the address cannot be
 * listened on (logged).
 */
int metrics_create(const struct config *cfg, const shm_t *shm, metrics_t **out);

/* The descriptor to poll for POLLIN (an epoll set of the listening socket
 * and the scrapers' connections), or -1 for NULL. */
int metrics_fd(const metrics_t *m);

/* How long the caller may wait before metrics_run() is due: `max_ms`, or
 * less when a connection's timeout is nearer. */
int metrics_timeout_ms(metrics_t *m, int max_ms);

/* Accept, read, answer and time out what is ready; never blocks. */
void metrics_run(metrics_t *m);

/* Close the socket and every connection.  NULL is a no-op. */
void metrics_destroy(metrics_t *m);

#endif
