/*
 * hosts — host liveness: this host's heartbeat lease in Redis, and the
 * closing of the answered calls of a host that was lost.
 *
 * Several b2bua hosts share one Redis.  Each keeps a lease there
 * (`host_lease` ms, renewed every third of it, by Redis's clock) and, for
 * each answered call, a record (`<p>calls:<node_id>`, written by the worker
 * that answered it: cdr_record_to_text, store_call_record) that the CDR
 * script deletes when the call's CDR is stored.  When a host's lease runs
 * out, exactly one surviving host (the one whose claim, SET NX, succeeds)
 * writes the CDR of each record left (end at the last heartbeat, cause
 * host_lost, closed_by itself) through the same CDR script, frees the
 * call's max_calls entries and logs one line for the host.  A host that
 * restarts with the same node_id starts a new life (a new epoch), and the
 * records of its earlier life are closed the same way, by itself before
 * its workers start (hosts_start) or by any host.  docs/redis-schema.md,
 * "Hosts", has the keys and the bound on the billing error.
 *
 * Design note: which process.  The heartbeat and the closer run in the
 * management process (mgmt.c), whose poll loop already does the host's
 * bounded, synchronous Redis work (store_sync): workers must never block,
 * and the master supervises and must never wait on Redis.  The price: a
 * management process that stops renewing the lease (dead and not restarted
 * in time, or stuck) makes its host look lost, so host_lease must outlast
 * its longest pause (config_keys.c bounds it).  The epoch is chosen by the
 * master once per life (hosts_start, before any fork), so a restarted
 * management process or worker keeps it: only a restart of the whole host
 * begins a new life.
 */
#ifndef B2BUA_HOSTS_H
#define B2BUA_HOSTS_H

#include <stdint.h>

#include "b2bua/config.h"

typedef struct hosts hosts_t;

/* The management side's handle (connects to nothing yet).  0, or -ENOMEM. */
int hosts_create(const struct config *cfg, hosts_t **out);
void hosts_destroy(hosts_t *h);

/*
 * In the master, before it forks anything: begin this host's life (a new
 * epoch), write its first heartbeat and close the answered calls its
 * previous life left (their CDRs, their max_calls entries), so that the
 * workers start with nothing stale.  Bounded by the store's timeouts; when
 * Redis cannot be reached it is logged, and the management process (or
 * another host) closes them later.
 */
void hosts_start(hosts_t *h);

/* This life's epoch (0 before hosts_start): the workers put it in their
 * call records (hosts_life.c, in libb2bcore). */
uint64_t hosts_epoch(void);
void hosts_set_epoch(uint64_t epoch);   /* hosts_start's */

/*
 * In the management process's loop: beat and look for lost hosts when due.
 * Returns the ms until it is due again (for poll()).
 */
int hosts_tick(hosts_t *h);

/*
 * The management process stops (the host's shutdown, after its workers):
 * if no answered call of this life is left, note that this life stopped on
 * purpose, so that the other hosts do not report it lost when its lease
 * runs out; calls left are closed by them as usual.
 */
void hosts_stop(hosts_t *h);

#endif
