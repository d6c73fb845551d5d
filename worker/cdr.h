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
/* Fields of a record in the stream and in a spool line ("cdr4"); a "cdr3"
 * line, written before `a_transport`/`b_transport` existed, has the first
 * 19, a "cdr2" line (before `closed_by`) the first 18, a "cdr1" line
 * (before `cause`) the first 17. */
#define CDR_FIELDS 21
#define CDR_FIELDS_V3 19
#define CDR_FIELDS_V2 18
#define CDR_FIELDS_V1 17
/* Room for a cause: "capacity", "overload", "auth", "rate_limit", ... */
#define CDR_CAUSE_MAX 32
/* Longer than any line cdr_to_line can make (~3.5 KB). */
#define CDR_LINE_MAX 4096
/* Room for a transport name ("udp", "tcp", "tls"). */
#define CDR_TRANSPORT_MAX 8
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
	char cause[CDR_CAUSE_MAX];    /* why it was refused ("capacity", ...), "host_lost"
				       * for a call its host lost; "" for a call */
	char closed_by[32];           /* node_id of the host that wrote this CDR for a call
				       * of a lost host (cause host_lost); "" otherwise */
	char a_transport[CDR_TRANSPORT_MAX]; /* the caller's leg: shm_transport_name(), "udp",
					      * "tcp" or "tls"; "" when not known (an older
					      * spool line) */
	char b_transport[CDR_TRANSPORT_MAX]; /* the callee's leg, the same names; "" when no
					      * B-leg was tried (a refused INVITE) */
};

/* The cause of a call closed by another host after its own host was lost. */
#define CDR_CAUSE_HOST_LOST "host_lost"

const char *cdr_disposition_name(enum cdr_disposition d);   /* "ANSWERED", ... */
const char *cdr_party_name(enum cdr_party p);               /* "caller", ... */

/* Disposition of a call that ended without an answer, from the final code
 * sent to the caller and whether the caller cancelled. */
enum cdr_disposition cdr_disposition_of(int sip_code, int cancelled);

/* 0 when every string ends inside its array, the id is set, the enums
 * are known and each transport is "" or a name of shm_transport_name()
 * (what encoding needs); else -EINVAL. */
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
 * cdr_to_line writes "cdr4" lines; cdr_from_line reads "cdr4" and the
 * "cdr3", "cdr2" and "cdr1" lines of an older spool (their transports, a
 * cdr2 line's closed_by, and a cdr1 line's cause, are ""). */
int cdr_to_line(const struct cdr *c, char *out, size_t size);
int cdr_from_line(const char *line, struct cdr *out);

/*
 * An answered call's record in Redis (`<p>calls:<node_id>`, field: the CDR
 * id), from which another host writes its CDR if this host is lost (see
 * b2bua/hosts.h): the first line "call1	<epoch>" then "	<name>" for each
 * subscriber whose `<p>active:<name>` entry the call holds, a newline, and
 * the CDR so far as one spool line.  Names holding a tab, a newline or a
 * NUL cannot be held and make it -EINVAL.  Returns the length, or
 * -ENOSPC / -EINVAL.
 */
#define CDR_RECORD_NAMES 4
#define CDR_RECORD_NAME_MAX 64
struct cdr_record {
	struct cdr cdr;                                   /* the CDR so far */
	uint64_t epoch;                                   /* of the host's life that wrote it */
	unsigned n_names;
	char names[CDR_RECORD_NAMES][CDR_RECORD_NAME_MAX]; /* active:<name> entries held */
};
int cdr_record_to_text(const struct cdr_record *r, char *out, size_t size);

/* Back from the text (not NUL-terminated: len bytes): 0, or -EINVAL for
 * anything that is not exactly such a record. */
int cdr_record_from_text(const char *text, size_t len, struct cdr_record *out);

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

/*
 * An answered call's record (cdr_record_to_text) to <p>calls:<host> in
 * Redis under its CDR id, on the writer's connection, fire and forget: the
 * CDR sent later on the same connection deletes it (b2bua/hosts.h).
 * Returns 0, or a negative errno (-ENOTCONN: Redis is down; -EINVAL).
 */
int cdr_writer_keep(cdr_writer_t *w, const struct cdr_record *r);

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
