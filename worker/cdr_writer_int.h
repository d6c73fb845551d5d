/*
 * cdr_writer_int — what the two halves of the CDR writer share; private to
 * worker/cdr_writer.c (feeding Redis, durability, the public API) and
 * worker/cdr_spool.c (the spool file and the rejected file).
 *
 * Design note.  The writer is one object split by concern, like b2b_int.h
 * splits the B2BUA: the struct lives here so both halves read the same
 * offsets, and nothing outside worker/cdr_*.c includes this header.  The
 * offsets into the spool only ever grow between two truncations
 * (cdr_spool_finish in cdr_writer.c), in this order:
 *
 *   acked_off <= send_off <= spool_size      synced_off <= spool_size
 *
 * acked_off: every line before it is done with (stored and, with
 * redis_wait_replicas, confirmed on the replicas by a WAIT; or set aside);
 * send_off: the next line to send; synced_off: every line before it is on
 * disk.  Line counts go with the offsets (acked_lines, send_lines): line i
 * is the i-th line of the file until the next truncation.
 */
#ifndef B2BUA_CDR_WRITER_INT_H
#define B2BUA_CDR_WRITER_INT_H

#include <stdint.h>
#include <sys/types.h>

#include <sofia-sip/su_wait.h>

#include "shm/shm.h"
#include "worker/cdr.h"
#include "worker/uport.h"

#define CDR_RECENT_MAX      (256 * 1024)   /* the spool's newest bytes, in memory */

/* One record waiting for its reply.  Linked in send order. */
struct cdr_req {
	struct cdr_req *prev, *next;
	cdr_writer_t *w;            /* NULL once the writer is gone */
	unsigned gen;               /* the pass it was sent in */
	off_t end;                  /* offset just past its line */
	struct cdr rec;
};

/* The one WAIT on the wire: it covers every line sent before it. */
struct cdr_wait_req {
	cdr_writer_t *w;            /* NULL once the writer is gone */
	unsigned gen;               /* the pass it was sent in */
	off_t end;                  /* send_off when it was sent */
	unsigned lines;             /* send_lines then */
};

/* A record whose writer waits to tell it durable (cdr_write_notify). */
struct cdr_waiter {
	struct cdr_waiter *next;
	off_t end;                  /* offset just past its line */
	cdr_durable_f *done;
	void *arg;
};

/* The fdatasync on the ring (IORING_OP_FSYNC): the loop goes on while the
 * disk works.  Its own allocation, because the kernel may complete it after
 * the writer is gone: then w is NULL and the completion only frees it. */
struct cdr_sync_op {
	struct uport_event ev;      /* first: the completion's pointer */
	cdr_writer_t *w;            /* NULL once the writer is gone */
	off_t end;                  /* spool_size then: what it makes durable (no
				     * truncation while it is in flight) */
};

struct cdr_writer {
	su_root_t *root;
	uport_t *uport;             /* the loop's ring; NULL: fdatasync(2) in the loop */
	struct cdr_sync_op *sync_op;   /* the fdatasync in flight, NULL if none */
	su_timer_t *sync_timer;     /* one fdatasync per CDR_SYNC_MS batch */
	int sync_armed;
	su_timer_t *retry_timer;    /* ends a stall or a WAIT hold */
	su_timer_t *trim_timer;     /* truncates a confirmed spool once idle */
	int trim_armed;
	rds_t *rds;                 /* NULL: spool only */
	char *stream;
	char *spool_path;
	char *rejected_path;
	int fd;

	off_t spool_size;           /* bytes in the spool, whole lines only */
	char *recent;               /* the spool's bytes [recent_off, spool_size) */
	off_t recent_off;
	unsigned spool_lines;
	off_t acked_off;            /* every line before it is done with */
	unsigned acked_lines;
	off_t send_off;             /* the next line to send */
	unsigned send_lines;        /* lines before send_off */
	off_t synced_off;           /* every line before it is on disk */
	off_t rejected_hi;          /* lines before it went to the rejected file already */
	unsigned replay_inflight;
	unsigned gen;               /* bumped at every rewind */
	int rewinding;              /* stale replies still due: send nothing yet */
	int stalled;                /* Redis said "not now": wait for a write or a reconnect */
	int pumping;
	int flushing;               /* cdr_writer_flush(): durable before cdr_write returns */
	int backlog;                /* lines waited for Redis: log the drain */

	/* redis_wait_replicas (cdr_writer_set_wait): 0 = Redis's answer suffices */
	int wait_replicas;
	int wait_timeout_ms;
	struct cdr_wait_req *wait;  /* the WAIT on the wire, NULL if none */
	int wait_held;              /* the last WAIT fell short: the next after wait_hold_ms */
	unsigned wait_hold_ms;      /* that pause: doubles per short WAIT in a row, 0 after one confirms */
	unsigned wait_rejected;     /* lines set aside since the last WAIT that confirmed */
	unsigned unrepl_counted;    /* lines before this one are counted in cdr_unreplicated */

	shm_t *shm;                 /* counters (cdr_writer_set_counters), NULL: none */
	unsigned worker;
	unsigned published;         /* the cdr_spooled figure last put in shm */

	unsigned replayed;          /* this drain, for the closing log line */
	unsigned rejected;
	int outage_logged;          /* "spooling" warning given for this outage */
	int refusal_logged;         /* "refuses" warning given for this drain */
	int unrepl_logged;          /* "not yet on a replica" warning given for this episode */

	struct cdr_req *head, *tail;
	struct cdr_waiter *waiters, *waiters_tail;   /* in spool order */
};

/* ------------------------------------------------------------ cdr_spool.c */

/* Create the spool's directory (one level) when it is missing. */
int cdr_make_dir(const char *path);

/* Open (create), flock, take stock of and sync the spool at w->spool_path. */
int cdr_spool_open(cdr_writer_t *w);

/* Append one record as one line (not synced).  0, or a negative errno
 * (logged: the record is lost). */
int cdr_spool_append(cdr_writer_t *w, const struct cdr *c);

/* fdatasync the spool: synced_off = spool_size.  0, or -EIO (logged). */
int cdr_spool_sync(cdr_writer_t *w);
/* A sync of the spool up to `end` ended with `err` (0 or a negative errno;
 * here or on the ring): synced_off moves to end, or the failure is logged.
 * 0, or -EIO. */
int cdr_spool_synced(cdr_writer_t *w, off_t end, int err);

/* The warning that starts an outage's spooling (once per outage). */
void cdr_spool_warn(cdr_writer_t *w);

/*
 * Read the line at off into buf (NUL-terminated, without its newline) and
 * set *next past it.  Returns its length, -EINVAL for text that is no line
 * (longer than any record, or cut short at the end of the file; buf then
 * holds its start), or another negative errno when reading fails.
 */
int cdr_spool_line(cdr_writer_t *w, off_t off, char *buf, size_t size, off_t *next);

/* Move a line (or a record Redis refused, with its error) out of the queue
 * for good, loudly: into the rejected file, synced, and the log. */
void cdr_reject_line(cdr_writer_t *w, const char *line, size_t len, const char *why);
void cdr_reject_record(cdr_writer_t *w, const struct cdr *c, const char *error);

#endif
