/*
 * b2b — the back-to-back user agent of one worker, on Sofia-SIP's NTA.
 *
 * Design note.  Every call is two dialogs: the A-leg the caller built with
 * us and a B-leg we originate towards the callee, each with its own Call-ID,
 * tags, CSeq space, Via and Contact.  NTA gives us transactions and dialog
 * matching; the call logic (what is relayed, when, and how a call ends) is
 * the explicit state machine of the b2b*.c files (map: b2b_int.h).  Each call is mirrored into the
 * shared call table (shm/) so that operators and other processes see it.
 *
 * Ports: the agent listens on the public port (shared by all workers with
 * SO_REUSEPORT) and on this worker's own port; everything we send — B-leg
 * requests, in-dialog requests on either leg — leaves from the own port and
 * names it in Via and Contact, so every later message of the call comes
 * back to this worker.
 */
#ifndef B2BUA_B2B_H
#define B2BUA_B2B_H

#include <stdint.h>

#include <sofia-sip/su_wait.h>

#include "b2bua/config.h"
#include "shm/shm.h"
#include "worker/uport.h"

typedef struct b2b b2b_t;

/*
 * Create the NTA agent on `root` for worker `worker` (bound to the public
 * port and to worker_port_base + worker).  Returns 0 and *out, or a negative
 * errno (the reason is logged).
 */
int b2b_create(su_root_t *root, const struct config *cfg, shm_t *shm,
	       unsigned worker, b2b_t **out);

void b2b_destroy(b2b_t *b2b);

/*
 * The worker took a reloaded configuration: the cfg given to b2b_create
 * now holds it, `old` is the one before.  What was derived from it at
 * start is derived again (route targets, rate limiters, NTA's Timer C for
 * invite_timeout).  0, or a negative errno with nothing changed here.
 */
int b2b_reload(b2b_t *b2b, const struct config *old);

/* Serve REGISTER, authenticate local callers and route to registered users
 * through `reg` (NULL: static routes only). */
struct registrar;
void b2b_set_registrar(b2b_t *b2b, struct registrar *reg);

/* The NAT keepalives of this worker (worker/keepalive.h), sent through its
 * agent from its own port: 0, or -ENOMEM. */
struct keepalive;
struct rds;
int b2b_keepalive_create(b2b_t *b2b, struct rds *rds, struct keepalive **out);

/* Write one CDR per ended call through `w` (NULL: none). */
struct cdr_writer;
void b2b_set_cdr_writer(b2b_t *b2b, struct cdr_writer *w);

/* Take over the calls a dead process of this worker index left in the
 * call table: answered ones continue, the others end with a CDR. */
void b2b_adopt_calls(b2b_t *b2b);

/*
 * Overload control (b2b_overload.c): while the worker falls behind
 * (overload_queue_delay_ms, overload_setup_calls) new INVITEs on the public
 * port get a stateless 503 with Retry-After, sent from `pub_fd`.  Call
 * once, after dgram_start.  0, or -ENOMEM.
 */
struct dgram;
int b2b_overload_start(b2b_t *b2b, struct dgram *dgram, int pub_fd);

/* Refuse new calls with 503 from now on (SIGTERM). */
void b2b_set_draining(b2b_t *b2b, int draining);

/* Calls this worker still has (any state). */
unsigned b2b_active_calls(const b2b_t *b2b);

/* End every call: BYE on answered legs, CANCEL / 503 on pending ones. */
void b2b_hangup_all(b2b_t *b2b);

/* An operator ends call `id` (b2bua-cli call kill): CANCEL or BYE as its
 * state needs, CDR disposition KILLED.  0, or -ENOENT when it is not ours. */
int b2b_kill(b2b_t *b2b, const char *id);

/* End the answered calls older than max_call_duration (called every second). */
void b2b_expire_calls(b2b_t *b2b);

/* Calls quiet for call_rest_after free their dialogs (worker/b2b_rest.c;
 * called every second).  Returns how many came to rest. */
unsigned b2b_rest_calls(b2b_t *b2b);

/* Copy NTA's message counters into the shared worker counters. */
void b2b_publish_stats(b2b_t *b2b);

#endif
