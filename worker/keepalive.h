/*
 * keepalive — a worker keeps the NAT bindings of the REGISTERs it accepted
 * open, and finds the ones whose user agent is gone.
 *
 * Design note.  A subscriber behind NAT is reachable only while its NAT
 * keeps the mapping its REGISTER opened, often 30 s to a few minutes
 * without traffic.  The worker that accepted a REGISTER whose source is not
 * its Contact (registrar_behind_nat) remembers the binding here, in its
 * own memory: the registrar tells it of every binding it adds, refreshes or
 * removes (keepalive_note), so the list is exactly this worker's NAT'd
 * bindings, refreshed on each REGISTER and dropped at expiry, with no Redis
 * read at all (no SCAN, nothing on the hot path).  Memory is bounded:
 * at most KEEPALIVE_MAX bindings per worker (a REGISTER beyond that is
 * served, logged once per minute, and not pinged).
 *
 * Every nat_keepalive_interval seconds each binding gets an OPTIONS to its
 * source address, Request-URI its Contact, from the worker's own port (the
 * same port as every other request this worker sends, so its answer comes
 * back to this worker).  Any answer, whatever its status, proves the user
 * agent is there.  No answer before the next one is due (or a transport
 * error) is a failure; KEEPALIVE_FAILURES failures in a row remove the
 * binding from Redis with a script that removes it only if it is still the
 * one that REGISTER made (same Call-ID and CSeq): a refresh that reached
 * another worker or host meanwhile wins.  The removal is logged.
 * Sends, failures and removals are counted in the worker's counters
 * (b2bua-cli show stats).
 *
 * A tick each second sends the OPTIONS that are due: a binding's next one
 * is due one interval after its REGISTER or its last OPTIONS, so the
 * keepalives are as spread over the interval as the REGISTERs were.
 */
#ifndef B2BUA_KEEPALIVE_H
#define B2BUA_KEEPALIVE_H

#include <stdint.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/config.h"
#include "shm/shm.h"
#include "worker/rds.h"

typedef struct keepalive keepalive_t;

/* Bindings one worker keeps open at most. */
#define KEEPALIVE_MAX 65536
/* Unanswered keepalives in a row that remove a binding. */
#define KEEPALIVE_FAILURES 3

/* One binding as the registrar tells of it. */
struct keepalive_binding {
	const char *user;        /* the AOR's user */
	const char *contact;     /* the registered Contact (the OPTIONS' Request-URI) */
	const char *source;      /* "ip:port" its REGISTER came from */
	const char *call_id;     /* of that REGISTER ... */
	uint32_t cseq;           /* ... and its CSeq: the removal's "unchanged" check */
	int expires_s;           /* its lifetime from now; 0: it is gone */
};

/*
 * The keepalives of worker `worker`: OPTIONS through `agent` with
 * TPTAG_IDENT(`ident`) (the worker's own port), removals through `rds`.
 * With nat_keepalive_interval 0 it exists and does nothing.  0, or -ENOMEM.
 */
int keepalive_create(su_root_t *root, nta_agent_t *agent, const char *ident, rds_t *rds,
		     shm_t *shm, const struct config *cfg, unsigned worker, keepalive_t **out);
/* Dual stack: OPTIONS to a binding of IPv4 (IPv6) source leave with
 * TPTAG_IDENT(`ident4`) (`ident6`); NULL: `ident` of keepalive_create.
 * The strings must outlive `ka`. */
void keepalive_set_family_idents(keepalive_t *ka, const char *ident4, const char *ident6);
void keepalive_destroy(keepalive_t *ka);
/* After a reload: nat_keepalive_interval turned on starts the OPTIONS,
 * turned off stops them and forgets the bindings; a new interval applies
 * from each binding's next OPTIONS.  0, or -ENOMEM.  NULL: nothing. */
int keepalive_reload(keepalive_t *ka);

/* A binding was added or refreshed (expires_s > 0), or removed (0). */
void keepalive_note(keepalive_t *ka, const struct keepalive_binding *b);

/* Every binding of `user` is gone (Contact: *). */
void keepalive_forget_user(keepalive_t *ka, const char *user);

/* How many bindings this worker keeps open now. */
unsigned keepalive_count(const keepalive_t *ka);

#endif
