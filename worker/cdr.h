/*
 * cdr — call detail records: one per call, written to a Redis Stream, never
 * lost.
 *
 * Design note.  Each ended call yields one struct cdr (cdr.c: names,
 * encoding, the spool line).  cdr_write() (cdr_writer.c) appends it to the
 * worker's spool file at once (one line per record: a crash of the process
 * cannot lose it from then on) and hands it to Redis (XADD to the stream
 * named in docs/redis-schema.md, by store_cdr_add) through the worker's
 * asynchronous client, in spool order.  A record is *durable* once Redis
 * confirmed it or the spool was fdatasync'ed past it; the spool is synced,
 * in batches, only for records Redis does not confirm (down, refusing, no
 * reply within redis_timeout), and truncated once Redis has everything.
 * cdr_write_notify() says when a record is durable, so that a call's slot
 * is released only then.  Every XADD goes through a small Lua script that
 * first claims the record's unique id with SET NX, so a record sent twice
 * (a reply lost with the connection, a replay after a crash) is stored
 * once: none lost, none duplicated.
 */
#ifndef B2BUA_CDR_H
#define B2BUA_CDR_H

#include <stddef.h>
#include <stdint.h>

#include <sofia-sip/su_wait.h>

#include "shm/shm.h"
#include "worker/rds.h"

enum cdr_disposition {
	CDR_ANSWERED = 0,
	CDR_BUSY,          /* 486 / 600 */
	CDR_NO_ANSWER,     /* 408 / 480 / our own no-answer timer */
	CDR_CANCELLED,     /* the caller gave up (CANCEL) */
	CDR_FAILED,        /* any other final failure; see sip_code */
	CDR_KILLED,        /* ended by an operator (b2bua-cli call kill) */
	CDR_REFUSED,       /* refused before it became a call; `cause` says why */
};

enum cdr_party { CDR_PARTY_NONE = 0, CDR_PARTY_CALLER, CDR_PARTY_CALLEE, CDR_PARTY_SYSTEM };

#define CDR_STR 128
/* Fields of a record in the stream and in a spool line ("cdr2"); a "cdr1"
 * line, written before `cause` existed, has the first 17. */
#define CDR_FIELDS 18
#define CDR_FIELDS_V1 17
/* Room for a cause: "capacity", "overload", "auth", "rate_limit", ... */
#define CDR_CAUSE_MAX 32
/* Longer than any line cdr_to_line can make (~3.5 KB). */
#define CDR_LINE_MAX 4096
/* Room for cdr_encode's seven numbers. */
#define CDR_NUM_BUF 160

struct cdr {
	char id[80];                  /* unique: "<node>-w<worker>-<worker start ms, hex>-<n>" */
	char a_call_id[CDR_STR];      /* the caller's dialog */
	char b_call_id[CDR_STR];      /* our dialog with the party that answered (or the last tried) */
	char caller[CDR_STR];         /* From URI of the A-leg */
	char callee[CDR_STR];         /* dialled: A-leg Request-URI */
	char answered_by[CDR_STR];    /* URI of the party that answered, "" if none */
	char forwarded_to[CDR_STR];   /* forward target, "" if not forwarded */
	uint64_t start_ms;            /* INVITE received */
	uint64_t ring_ms;             /* first 18x, 0 if none */
	uint64_t answer_ms;           /* 2xx, 0 if none */
	uint64_t end_ms;              /* call over */
	uint64_t billable_ms;         /* end - answer when answered, else 0 */
	enum cdr_disposition disposition;
	int sip_code;                 /* final code sent to the caller (200 when answered) */
	enum cdr_party hangup_by;
	char host[32];                /* node_id */
	unsigned worker;
	char cause[CDR_CAUSE_MAX];    /* why it was refused ("capacity", ...); "" for a call */
};

const char *cdr_disposition_name(enum cdr_disposition d);   /* "ANSWERED", ... */
const char *cdr_party_name(enum cdr_party p);               /* "caller", ... */

/* Disposition of a call that ended without an answer, from the final code
 * sent to the caller and whether the caller cancelled. */
enum cdr_disposition cdr_disposition_of(int sip_code, int cancelled);

/* 0 when every string ends inside its array, the id is set and the enums
 * are known (what encoding needs); else -EINVAL. */
int cdr_check(const struct cdr *c);

/*
 * Field/value pairs of a record for XADD, in a fixed order (documented in
 * docs/redis-schema.md).  Fills up to `max` pointers in fields[]/values[]
 * using `buf` (size bytes) for numbers; returns the number of pairs, or
 * -ENOSPC.
 */
int cdr_encode(const struct cdr *c, const char **fields, const char **values, int max,
	       char *buf, size_t size);

/* One spool line (no newline inside) and back: the format is stable.
 * cdr_to_line writes "cdr2" lines; cdr_from_line reads "cdr2" and the
 * "cdr1" lines of an older spool (their cause is ""). */
int cdr_to_line(const struct cdr *c, char *out, size_t size);
int cdr_from_line(const char *line, struct cdr *out);

typedef struct cdr_writer cdr_writer_t;

/*
 * A writer on root's loop and `rds` (may be NULL: spool only) for the
 * stream <prefix><stream> (redis_prefix and cdr_stream), spooling to
 * `spool_path`.  Opens (creates) the spool; if it holds records from an
 * earlier run they are synced and replayed first.  Returns 0 and *out, or a
 * negative errno (the reason is logged).
 */
int cdr_writer_create(su_root_t *root, rds_t *rds, const char *prefix, const char *stream,
		      const char *spool_path, cdr_writer_t **out);

/*
 * Free the writer (before its rds).  What Redis did not confirm is synced
 * and stays in the spool for the next writer on it.  Durability callbacks
 * not run yet are dropped, not called: flush first (cdr_writer_flush) when
 * their owners need them.
 */
void cdr_writer_destroy(cdr_writer_t *w);

/* Called once when the record is durable (err 0), or with a negative errno
 * when the spool could not be synced (the record may be lost in a power
 * cut; the reason is logged). */
typedef void cdr_durable_f(void *arg, int err);

/*
 * Write one record (see the design note): appended to the spool before
 * this returns, never waiting on the disk.  done(arg, err) follows exactly
 * once, from the loop: when Redis confirms the record, or at the next
 * batched fdatasync (within about 10 ms) when Redis cannot.  After cdr_writer_flush() it runs
 * before this returns.  Returns 0, or a negative errno when even the spool
 * could not take it (logged loudly: the record is lost; done is not called).
 */
int cdr_write_notify(cdr_writer_t *w, const struct cdr *c, cdr_durable_f *done, void *arg);

/* The same without a callback. */
int cdr_write(cdr_writer_t *w, const struct cdr *c);

/*
 * For a stop, when the loop will not turn again: sync the spool now and
 * run every waiting callback; from then on each cdr_write_notify is durable
 * (synced) and its callback run before it returns.
 */
void cdr_writer_flush(cdr_writer_t *w);

/* Records in the spool that Redis has not confirmed yet (0 when everything
 * reached Redis). */
unsigned cdr_spooled(const cdr_writer_t *w);

/*
 * redis_wait_replicas and redis_wait_timeout: with replicas > 0 a record
 * counts as confirmed only once a WAIT after it answered at least
 * `replicas` (within timeout_ms, >= 1); until then it stays in the spool
 * and is synced like one Redis did not take.  0 (the default): Redis's
 * answer suffices.  Set it right after cdr_writer_create.  0, or -EINVAL.
 */
int cdr_writer_set_wait(cdr_writer_t *w, int replicas, int timeout_ms);

/* Keep the figures show stats reads in worker `worker`'s shared counters:
 * SHM_CTR_CDR_SPOOLED (cdr_spooled, a gauge) and SHM_CTR_CDR_UNREPLICATED. */
void cdr_writer_set_counters(cdr_writer_t *w, shm_t *shm, unsigned worker);

#endif
