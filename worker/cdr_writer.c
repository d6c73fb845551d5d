/*
 * cdr_writer — call detail records to a Redis Stream, through a spool file
 * when Redis cannot take them.  See cdr.h for the contract; the record and
 * its line format are in cdr.c.
 *
 * Design note.
 *
 * Storing a record.  store_cdr_add() (store/store_async.c) sends it with
 * the id claimed first, so a record may be sent any number of times within
 * a week and is stored once; its answer says stored, dup, lost with the
 * connection, refused for now or refused for good.
 *
 * The spool is a journal.  Every record is appended to the spool file the
 * moment it is written (one write(2) of one whole line: from then on a
 * crash of the worker or of the whole process tree cannot lose it, the
 * kernel has it), and Redis is fed from the spool, in file order.  A record
 * is durable — and its caller is told so (cdr_write_notify's callback) —
 * as soon as either Redis confirmed it or the spool was fdatasync'ed past
 * its line.  While Redis answers, records are confirmed within a round trip
 * and the disk is never synced; while it does not (down, refusing, or hung
 * until redis_timeout drops it), unconfirmed lines are synced in batches,
 * from a timer (CDR_SYNC_MS): one fdatasync for all the records of a batch,
 * never one per record, and never a wait on the disk inside cdr_write.
 *
 * Sending.  Lines are read from `send_off` and sent, at most
 * CDR_REPLAY_WINDOW in flight.  Replies come back in order, so each one
 * moves `acked_off` past its line.  A dropped connection (NULL reply, also
 * after redis_timeout) or a temporary refusal rewinds `send_off` to
 * `acked_off`: the unacknowledged lines are sent again later, and SET NX
 * makes that harmless.  When `acked_off` reaches the end of the file with
 * nothing in flight and nobody waiting, the file is truncated to zero (at
 * once after an outage, else once idle or long: cdr_spool_finish).
 * Lines an earlier process left in the same spool are sent first.  The
 * newest CDR_RECENT_MAX bytes of the spool are also kept in memory (`recent`),
 * so a line is normally sent without reading it back from the file.
 *
 * Errors from Redis.  Replies meaning "not now" (LOADING, BUSY, OOM,
 * READONLY, MASTERDOWN, MISCONF, TRYAGAIN, NOREPLICAS, CLUSTERDOWN, NOAUTH,
 * NOPERM) keep the record queued: sending stalls until the next cdr_write,
 * the next reconnect or CDR_RETRY_MS, so a Redis that says no is not
 * hammered in a loop.
 * Any other error reply is about the record: it is logged with its whole
 * line and moved to "<spool>.rejected" (same line format, synced), so one
 * bad record cannot block the queue.  A spool line that does not parse is
 * moved there the same way.
 *
 * Order.  Records reach the stream in cdr_write order, outages included.
 * The one exception: when Redis refuses a record temporarily while later
 * ones are already on the wire, those may be stored before it.
 *
 * Ownership and lifetime.  The writer owns rds's state callback
 * (rds_on_state has one slot).  The spool is flock()ed: two processes must
 * not share one.  Destroy the writer before its rds; the spool keeps what
 * Redis did not confirm (the next process replays it), and the replies
 * still to come find only a detached request to free.
 */
#define _GNU_SOURCE

#include "worker/cdr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sofia-sip/su_wait.h>

#include "b2bua/log.h"
#include "store/store.h"

#define CDR_REPLAY_WINDOW   64      /* records in flight at once */
#define CDR_RECENT_MAX        (256 * 1024)   /* the spool's newest bytes, in memory */
#define CDR_LOG_CHUNK       640     /* a line is logged in pieces that fit a log line */
/* Unconfirmed records are synced together, at most this often: one
 * fdatasync (about 1.5 ms here) per batch keeps the loop free most of the
 * time even when Redis is down at full load. */
#define CDR_SYNC_MS         10
#define CDR_RETRY_MS        500     /* after "not now" (e.g. LOADING), ask again this late */
#define CDR_TRIM_MS         100     /* idle this long: the confirmed spool is truncated */
#define CDR_TRIM_BYTES      (1 << 20) /* ... or when it is this long */

/* One record waiting for its reply.  Linked in send order. */
struct cdr_req {
	struct cdr_req *prev, *next;
	cdr_writer_t *w;            /* NULL once the writer is gone */
	unsigned gen;               /* the pass it was sent in */
	off_t end;                  /* offset just past its line */
	struct cdr rec;
};

/* A record whose writer waits to tell it durable (cdr_write_notify). */
struct cdr_waiter {
	struct cdr_waiter *next;
	off_t end;                  /* offset just past its line */
	cdr_durable_f *done;
	void *arg;
};

struct cdr_writer {
	su_root_t *root;
	su_timer_t *sync_timer;     /* one fdatasync per CDR_SYNC_MS batch */
	int sync_armed;
	su_timer_t *retry_timer;    /* ends a stall (Redis said "not now") */
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
	off_t synced_off;           /* every line before it is on disk */
	unsigned replay_inflight;
	unsigned gen;               /* bumped at every rewind */
	int rewinding;              /* stale replies still due: send nothing yet */
	int stalled;                /* Redis said "not now": wait for a write or a reconnect */
	int pumping;
	int flushing;               /* cdr_writer_flush(): durable before cdr_write returns */
	int backlog;                /* lines waited for Redis: log the drain */

	unsigned replayed;          /* this drain, for the closing log line */
	unsigned rejected;
	int outage_logged;          /* "spooling" warning given for this outage */
	int refusal_logged;         /* "refuses" warning given for this drain */

	struct cdr_req *head, *tail;
	struct cdr_waiter *waiters, *waiters_tail;   /* in spool order */
};

/* ------------------------------------------------------------ logging whole lines */

/* A record's line may exceed one log line: log it in numbered pieces, each
 * with the context, so the log alone can restore a lost record. */
static void cdr_log_line(enum log_level level, const char *what, const char *line, size_t len)
{
	size_t parts = len == 0 ? 1 : (len + CDR_LOG_CHUNK - 1) / CDR_LOG_CHUNK;

	for (size_t i = 0; i < parts; i++) {
		size_t off = i * CDR_LOG_CHUNK;
		size_t n = len - off < CDR_LOG_CHUNK ? len - off : CDR_LOG_CHUNK;

		log_msg(level, "%s [%zu/%zu]: %.*s", what, i + 1, parts, (int)n, line + off);
	}
}

/* ------------------------------------------------------------ files */

static int cdr_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cdr_pread_all(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;   /* shorter than we wrote: someone else truncated it */
		got += (size_t)n;
	}
	return 0;
}

/* The directory of path, for mkdir and fsync. */
static void cdr_dirname(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, size, ".");
	else if (slash == path)
		snprintf(dir, size, "/");
	else
		snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* A new file's name is durable only once its directory is synced. */
static void cdr_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd;

	cdr_dirname(path, dir, sizeof dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		log_warn("cannot sync directory %s: %s", dir, strerror(errno));
	close(fd);
}

static int cdr_make_dir(const char *path)
{
	char dir[PATH_MAX];
	struct stat st;

	cdr_dirname(path, dir, sizeof dir);
	if (stat(dir, &st) == 0 || errno != ENOENT)
		return 0;   /* anything else shows when the spool is opened */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int err = errno;

		log_error("cannot create the CDR spool directory %s: %s", dir, strerror(err));
		return -err;
	}
	log_info("created the CDR spool directory %s", dir);
	return 0;
}

/* Append a line (a newline is added) to the rejected file, synced. */
static int cdr_rejected_append(const cdr_writer_t *w, const char *line, size_t len)
{
	int fd = open(w->rejected_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0)
		return -errno;
	ret = cdr_write_all(fd, line, len);
	if (ret == 0)
		ret = cdr_write_all(fd, "\n", 1);
	if (ret == 0 && fdatasync(fd) < 0)
		ret = -errno;
	close(fd);
	cdr_sync_dir(w->rejected_path);
	return ret;
}

/* Move a line out of the queue for good, loudly. */
static void cdr_reject_line(cdr_writer_t *w, const char *line, size_t len, const char *why)
{
	char what[512];
	int ret = cdr_rejected_append(w, line, len);

	if (ret == 0)
		snprintf(what, sizeof what, "CDR %s; moved to %s", why, w->rejected_path);
	else
		snprintf(what, sizeof what, "CDR %s; cannot save it to %s (%s): it is only here",
			 why, w->rejected_path, strerror(-ret));
	cdr_log_line(LOG_ERROR, what, line, len);
	w->rejected++;
}

static void cdr_reject_record(cdr_writer_t *w, const struct cdr *c, const char *error)
{
	char line[CDR_LINE_MAX];
	char why[384];
	int len = cdr_to_line(c, line, sizeof line);

	snprintf(why, sizeof why, "%s rejected by redis %s (%.200s)", c->id,
		 w->rds ? rds_address(w->rds) : "-", error);
	cdr_reject_line(w, line, len > 0 ? (size_t)len : 0, why);
}

/* ------------------------------------------------------------ the spool */

/* A line just appended at spool_size is kept in memory too (`recent`);
 * when that is full it starts again from this line (what came before
 * is read from the file, should it still be sent). */
static void cdr_recent_add(cdr_writer_t *w, const char *line, size_t n)
{
	if (w->recent == NULL)
		return;
	if ((size_t)(w->spool_size - w->recent_off) + n > CDR_RECENT_MAX)
		w->recent_off = w->spool_size;
	if (n > CDR_RECENT_MAX) {
		w->recent_off = w->spool_size + (off_t)n;
		return;
	}
	memcpy(w->recent + (w->spool_size - w->recent_off), line, n);
}

/*
 * Append one record as one line.  Not synced yet (cdr_spool_sync).  A
 * failed write is cut off again, so the file never holds half a line.
 */
static int cdr_spool_append(cdr_writer_t *w, const struct cdr *c)
{
	char line[CDR_LINE_MAX + 1];
	char what[256];
	int len = cdr_to_line(c, line, CDR_LINE_MAX);
	int ret;

	if (len < 0)
		return len;
	line[len] = '\n';
	ret = cdr_write_all(w->fd, line, (size_t)len + 1);
	if (ret < 0) {
		if (ftruncate(w->fd, w->spool_size) < 0)
			log_error("cannot cut a partial line off %s: %s", w->spool_path,
				  strerror(errno));
		snprintf(what, sizeof what, "CDR %s LOST: cannot append it to %s (%s)", c->id,
			 w->spool_path, strerror(-ret));
		cdr_log_line(LOG_ERROR, what, line, (size_t)len);
		return ret;
	}
	cdr_recent_add(w, line, (size_t)len + 1);
	w->spool_size += len + 1;
	w->spool_lines++;
	return 0;
}

static int cdr_spool_sync(cdr_writer_t *w)
{
	if (fdatasync(w->fd) == 0) {
		w->synced_off = w->spool_size;
		return 0;
	}
	log_error("cannot sync the CDR spool %s: %s: its latest CDRs may be lost in a crash",
		  w->spool_path, strerror(errno));
	return -EIO;
}

/* The warning that starts an outage's spooling. */
static void cdr_spool_warn(cdr_writer_t *w)
{
	if (w->outage_logged || (w->rds != NULL && rds_connected(w->rds)))
		return;
	w->outage_logged = 1;
	if (w->rds == NULL)
		log_warn("no redis: spooling CDRs to %s", w->spool_path);
	else
		log_warn("redis %s unreachable: spooling CDRs to %s", rds_address(w->rds),
			 w->spool_path);
}

/*
 * Read the line at off into buf (NUL-terminated, without its newline) and
 * set *next past it.  Returns its length, -EINVAL for text that is no line
 * (longer than any record, or cut short at the end of the file; buf then
 * holds its start), or another negative errno when reading fails.
 */
static int cdr_spool_line(cdr_writer_t *w, off_t off, char *buf, size_t size, off_t *next)
{
	size_t want = size - 1;
	char *nl;
	int ret;

	if ((off_t)want > w->spool_size - off)
		want = (size_t)(w->spool_size - off);
	if (w->recent != NULL && off >= w->recent_off) {
		memcpy(buf, w->recent + (off - w->recent_off), want);   /* no read(2) */
	} else {
		ret = cdr_pread_all(w->fd, buf, want, off);
		if (ret < 0)
			return ret;
	}
	buf[want] = '\0';
	nl = memchr(buf, '\n', want);
	if (nl != NULL) {
		*nl = '\0';
		*next = off + (nl - buf) + 1;
		return (int)(nl - buf);
	}
	/* No newline in reach: skip to the next one (or the end). */
	*next = off + (off_t)want;
	while (*next < w->spool_size) {
		char chunk[512];
		size_t n = sizeof chunk;

		if ((off_t)n > w->spool_size - *next)
			n = (size_t)(w->spool_size - *next);
		ret = cdr_pread_all(w->fd, chunk, n, *next);
		if (ret < 0)
			return ret;
		nl = memchr(chunk, '\n', n);
		*next += nl != NULL ? (nl - chunk) + 1 : (off_t)n;
		if (nl != NULL)
			break;
	}
	return -EINVAL;
}

/*
 * Take stock of a spool left by an earlier process: count its lines, and
 * end a last line cut short by a crash, or the next record would be glued
 * to it.
 */
static int cdr_spool_scan(cdr_writer_t *w)
{
	char buf[65536];
	char last = '\n';
	off_t off = 0;
	int ret;

	while (off < w->spool_size) {
		size_t n = sizeof buf;

		if ((off_t)n > w->spool_size - off)
			n = (size_t)(w->spool_size - off);
		ret = cdr_pread_all(w->fd, buf, n, off);
		if (ret < 0)
			return ret;
		for (size_t i = 0; i < n; i++)
			w->spool_lines += buf[i] == '\n';
		last = buf[n - 1];
		off += (off_t)n;
	}
	if (last == '\n')
		return 0;
	log_warn("CDR spool %s ends in a partial line (a crash while writing): "
		 "it will be moved to %s", w->spool_path, w->rejected_path);
	ret = cdr_write_all(w->fd, "\n", 1);
	if (ret < 0)
		return ret;
	w->spool_size++;
	w->spool_lines++;
	return cdr_spool_sync(w);
}

static int cdr_spool_open(cdr_writer_t *w)
{
	struct stat st;
	int ret;

	w->fd = open(w->spool_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		ret = -errno;
		log_error("cannot open the CDR spool %s: %s", w->spool_path, strerror(-ret));
		return ret;
	}
	if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		log_error("CDR spool %s: %s", w->spool_path, ret == -EBUSY
			  ? "in use by another writer" : strerror(-ret));
		return ret;
	}
	if (fstat(w->fd, &st) < 0) {
		ret = -errno;
		log_error("cannot stat the CDR spool %s: %s", w->spool_path, strerror(-ret));
		return ret;
	}
	cdr_sync_dir(w->spool_path);
	w->spool_size = st.st_size;
	ret = cdr_spool_scan(w);
	w->recent_off = w->spool_size;   /* what an earlier process left is read from the file */
	/* What the earlier process had not synced yet is made durable now. */
	if (ret == 0 && w->spool_size > 0)
		ret = cdr_spool_sync(w);
	if (ret < 0)
		log_error("cannot read the CDR spool %s: %s", w->spool_path, strerror(-ret));
	return ret;
}

static void cdr_on_trim_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);

/*
 * Everything reached Redis (or the rejected file): start the spool afresh.
 * A truncation costs about as much as the rest of a record's trip (the
 * file system journals it), so while records flow it waits until the
 * spool is CDR_TRIM_BYTES long or the writer idle for CDR_TRIM_MS; after
 * an outage it happens at once.  Lines confirmed but not yet cut off are
 * harmless: replayed after a crash, SET NX drops them.
 */
static void cdr_spool_finish(cdr_writer_t *w, int now)
{
	if (w->spool_size == 0 || w->acked_off != w->spool_size || w->replay_inflight > 0
	    || w->waiters != NULL)
		return;
	if (!now && !w->backlog && w->rejected == 0 && w->spool_size < CDR_TRIM_BYTES) {
		if (!w->trim_armed && su_timer_set_interval(w->trim_timer, cdr_on_trim_timer, w,
							    CDR_TRIM_MS) == 0)
			w->trim_armed = 1;
		return;
	}
	if (ftruncate(w->fd, 0) < 0) {
		/* Kept: the next drain sends it all again, as duplicates. */
		log_error("cannot truncate the CDR spool %s: %s", w->spool_path, strerror(errno));
		return;
	}
	if (w->rejected > 0)
		log_info("replayed %u CDRs from %s (%u rejected: see %s)", w->replayed,
			 w->spool_path, w->rejected, w->rejected_path);
	else if (w->backlog)
		log_info("replayed %u CDRs from %s", w->replayed, w->spool_path);
	w->backlog = 0;
	w->spool_size = w->acked_off = w->send_off = w->synced_off = w->recent_off = 0;
	w->spool_lines = w->acked_lines = 0;
	w->replayed = w->rejected = 0;
	w->refusal_logged = 0;
}

/* ------------------------------------------------------------ sending */

static void cdr_link(cdr_writer_t *w, struct cdr_req *req)
{
	req->prev = w->tail;
	req->next = NULL;
	if (w->tail != NULL)
		w->tail->next = req;
	else
		w->head = req;
	w->tail = req;
}

static void cdr_unlink(cdr_writer_t *w, struct cdr_req *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		w->head = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	else
		w->tail = req->prev;
	req->prev = req->next = NULL;
}

static void cdr_on_stored(void *arg, enum store_cdr_outcome outcome, const char *error);

/* The record's fields to the stream.  On success req is linked and belongs
 * to the answer. */
static int cdr_send(cdr_writer_t *w, struct cdr_req *req)
{
	const char *fields[CDR_FIELDS];
	const char *values[CDR_FIELDS];
	char nums[CDR_NUM_BUF];
	int n = cdr_encode(&req->rec, fields, values, CDR_FIELDS, nums, sizeof nums);
	int ret;

	if (n < 0)
		return n;
	req->w = w;
	ret = store_cdr_add(w->rds, w->stream, req->rec.id, req->rec.host, n, fields, values,
			    cdr_on_stored, req);
	if (ret == 0)
		cdr_link(w, req);
	return ret;
}

static void cdr_pump(cdr_writer_t *w);

static void cdr_on_retry_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	cdr_writer_t *w = arg;

	(void)magic; (void)t;
	w->stalled = 0;
	cdr_pump(w);
}

/* Redis said "not now" (a restarted server still LOADING, OOM ...): stop
 * sending until the next write, the next reconnect or CDR_RETRY_MS, so a
 * Redis that says no is not hammered, and an idle worker still drains. */
static void cdr_stall(cdr_writer_t *w, const char *error)
{
	w->stalled = 1;
	su_timer_set_interval(w->retry_timer, cdr_on_retry_timer, w, CDR_RETRY_MS);
	if (w->refusal_logged)
		return;
	w->refusal_logged = 1;
	log_warn("redis %s refuses CDRs for now (%.200s): keeping them in %s",
		 rds_address(w->rds), error, w->spool_path);
}

/* A line's reply: replies come in send order. */
static void cdr_replay_done(cdr_writer_t *w, struct cdr_req *req, enum store_cdr_outcome outcome,
			    const char *error)
{
	w->replay_inflight--;
	if (req->gen != w->gen) {
		/* Sent before a rewind: its line will be sent again. */
		if (w->replay_inflight == 0)
			w->rewinding = 0;
		return;
	}
	if (outcome == STORE_CDR_LOST || outcome == STORE_CDR_RETRY) {
		if (outcome == STORE_CDR_RETRY)
			cdr_stall(w, error);
		else
			cdr_spool_warn(w);
		w->backlog = 1;
		w->send_off = w->acked_off;
		w->gen++;
		w->rewinding = w->replay_inflight > 0;
		return;
	}
	if (outcome == STORE_CDR_REJECT)
		cdr_reject_record(w, &req->rec, error);
	else
		w->replayed++;
	w->acked_off = req->end;
	w->acked_lines++;
}

static void cdr_on_stored(void *arg, enum store_cdr_outcome outcome, const char *error)
{
	struct cdr_req *req = arg;
	cdr_writer_t *w = req->w;

	if (w == NULL) {   /* the writer is gone */
		free(req);
		return;
	}
	cdr_unlink(w, req);
	cdr_replay_done(w, req, outcome, error);
	free(req);
	cdr_pump(w);
}

/* ------------------------------------------------------------ replay */

static int cdr_can_send(const cdr_writer_t *w)
{
	return w->rds != NULL && rds_connected(w->rds) && !w->stalled && !w->rewinding
		&& w->replay_inflight < CDR_REPLAY_WINDOW && w->send_off < w->spool_size;
}

/* Send the line at send_off, or set aside a line that is no record. */
static int cdr_replay_next(cdr_writer_t *w)
{
	char line[CDR_LINE_MAX + 1];
	char why[PATH_MAX + 64];
	struct cdr_req *req;
	off_t next = w->spool_size;
	int len = cdr_spool_line(w, w->send_off, line, sizeof line, &next);
	int ret;

	if (len < 0 && len != -EINVAL) {
		log_error("cannot read the CDR spool %s: %s", w->spool_path, strerror(-len));
		return len;
	}
	req = calloc(1, sizeof *req);
	if (req == NULL)
		return -ENOMEM;
	if (len == -EINVAL || cdr_from_line(line, &req->rec) < 0) {
		free(req);
		if (w->replay_inflight > 0)
			return -EAGAIN;   /* in its turn, once those before it are done */
		snprintf(why, sizeof why, "line at offset %lld of %s is no record",
			 (long long)w->send_off, w->spool_path);
		cdr_reject_line(w, line, strlen(line), why);
		w->acked_off = w->send_off = next;
		w->acked_lines++;
		return 0;
	}
	req->gen = w->gen;
	req->end = next;
	ret = cdr_send(w, req);
	if (ret < 0) {
		free(req);
		return ret;
	}
	w->send_off = next;
	w->replay_inflight++;
	return 0;
}

/* ------------------------------------------------------------ durability */

/* Redis can confirm what is sent now; otherwise the disk must. */
static int cdr_redis_ok(const cdr_writer_t *w)
{
	return w->rds != NULL && rds_connected(w->rds) && !w->stalled;
}

/* Tell the waiters whose line is confirmed by Redis or synced to disk.  A
 * callback may write again: the list is read afresh every time. */
static void cdr_waiters_done(cdr_writer_t *w, int err)
{
	struct cdr_waiter *wt;

	while ((wt = w->waiters) != NULL
	       && (wt->end <= w->acked_off || wt->end <= w->synced_off || err < 0)) {
		w->waiters = wt->next;
		if (w->waiters == NULL)
			w->waiters_tail = NULL;
		wt->done(wt->arg, err);
		free(wt);
	}
}

/* One fdatasync for everything appended so far, then the waiters.  When
 * even that fails, the records are in the kernel only: the waiters are
 * told (a power cut may lose them; cdr_spool_sync logged why). */
static void cdr_sync_now(cdr_writer_t *w)
{
	int ret = 0;

	if (w->synced_off < w->spool_size && w->acked_off < w->spool_size)
		ret = cdr_spool_sync(w);
	cdr_waiters_done(w, ret);
}

static void cdr_on_sync_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	cdr_writer_t *w = arg;

	(void)magic; (void)t;
	w->sync_armed = 0;
	cdr_sync_now(w);
	cdr_pump(w);
}

/* Lines neither confirmed nor synced, and Redis cannot confirm them now:
 * sync them CDR_SYNC_MS later, together with whatever else comes. */
static void cdr_want_sync(cdr_writer_t *w)
{
	off_t done = w->acked_off > w->synced_off ? w->acked_off : w->synced_off;

	if (done >= w->spool_size)
		return;
	if (w->flushing) {
		cdr_sync_now(w);
		return;
	}
	if (cdr_redis_ok(w) || w->sync_armed)
		return;
	if (su_timer_set_interval(w->sync_timer, cdr_on_sync_timer, w, CDR_SYNC_MS) == 0) {
		w->sync_armed = 1;
		return;
	}
	cdr_sync_now(w);   /* no timer: at once rather than never */
}

/* Move the spool along as far as it goes now.  Run after every event. */
static void cdr_pump(cdr_writer_t *w)
{
	if (w->pumping)
		return;
	w->pumping = 1;
	while (cdr_can_send(w) && cdr_replay_next(w) == 0)
		;
	cdr_waiters_done(w, 0);
	cdr_want_sync(w);
	cdr_spool_finish(w, 0);
	w->pumping = 0;
}

static void cdr_on_trim_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	cdr_writer_t *w = arg;

	(void)magic; (void)t;
	w->trim_armed = 0;
	if (!w->pumping)
		cdr_spool_finish(w, 1);
}

static void cdr_on_state(rds_t *rds, int connected, void *arg)
{
	cdr_writer_t *w = arg;

	(void)rds;
	if (connected) {
		w->stalled = 0;
		w->outage_logged = 0;
	}
	cdr_pump(w);   /* up: send; down: sync what waits */
}

/* ------------------------------------------------------------ the writer */

int cdr_write_notify(cdr_writer_t *w, const struct cdr *c, cdr_durable_f *done, void *arg)
{
	struct cdr_waiter *wt = NULL;
	int ret;

	if (cdr_check(c) < 0) {
		log_error("CDR %.40s LOST: malformed record (a string without its NUL, no id, "
			  "or an unknown disposition or party)", c->id);
		return -EINVAL;
	}
	if (done != NULL) {
		wt = calloc(1, sizeof *wt);
		if (wt == NULL)
			return -ENOMEM;
		wt->done = done;
		wt->arg = arg;
	}
	if (!cdr_redis_ok(w)) {
		cdr_spool_warn(w);
		w->backlog = 1;
	}
	ret = cdr_spool_append(w, c);
	if (ret < 0) {
		free(wt);
		return ret;
	}
	if (wt != NULL) {
		wt->end = w->spool_size;
		if (w->waiters_tail != NULL)
			w->waiters_tail->next = wt;
		else
			w->waiters = wt;
		w->waiters_tail = wt;
	}
	w->stalled = 0;   /* a new record is the occasion to ask Redis again */
	cdr_pump(w);
	return 0;
}

int cdr_write(cdr_writer_t *w, const struct cdr *c)
{
	return cdr_write_notify(w, c, NULL, NULL);
}

void cdr_writer_flush(cdr_writer_t *w)
{
	if (w == NULL)
		return;
	w->flushing = 1;
	su_timer_reset(w->sync_timer);
	w->sync_armed = 0;
	cdr_sync_now(w);
}

int cdr_writer_keep(cdr_writer_t *w, const struct cdr_record *r)
{
	char text[CDR_LINE_MAX + 512];
	int len;

	if (w->rds == NULL || !rds_connected(w->rds))
		return -ENOTCONN;
	len = cdr_record_to_text(r, text, sizeof text);
	if (len < 0)
		return len;
	return store_call_record(w->rds, r->cdr.host, r->cdr.id, text, (size_t)len);
}

unsigned cdr_spooled(const cdr_writer_t *w)
{
	return w->spool_lines - w->acked_lines;
}

static void cdr_writer_free(cdr_writer_t *w)
{
	struct cdr_waiter *wt;

	while ((wt = w->waiters) != NULL) {   /* not called: their owners are going too */
		w->waiters = wt->next;
		free(wt);
	}
	su_timer_destroy(w->sync_timer);
	su_timer_destroy(w->retry_timer);
	su_timer_destroy(w->trim_timer);
	if (w->fd >= 0)
		close(w->fd);   /* drops the flock too */
	free(w->stream);
	free(w->spool_path);
	free(w->rejected_path);
	free(w->recent);
	free(w);
}

int cdr_writer_create(su_root_t *root, rds_t *rds, const char *prefix, const char *stream,
		      const char *spool_path, cdr_writer_t **out)
{
	char stream_key[STORE_KEY_MAX];
	cdr_writer_t *w;
	int ret;

	if (prefix == NULL || stream == NULL || stream[0] == '\0'
	    || store_cdr_stream_key(prefix, stream, stream_key, sizeof stream_key) < 0
	    || strlen(stream_key) > 200
	    || spool_path == NULL || spool_path[0] == '\0' || strlen(spool_path) >= PATH_MAX - 16)
		return -EINVAL;
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return -ENOMEM;
	w->fd = -1;
	w->root = root;
	w->sync_timer = su_timer_create(su_root_task(root), CDR_SYNC_MS);
	w->retry_timer = su_timer_create(su_root_task(root), CDR_RETRY_MS);
	w->trim_timer = su_timer_create(su_root_task(root), CDR_TRIM_MS);
	w->rds = rds;
	w->recent = malloc(CDR_RECENT_MAX);   /* NULL is fine: lines are read from the file */
	w->stream = strdup(stream_key);
	w->spool_path = strdup(spool_path);
	if (asprintf(&w->rejected_path, "%s.rejected", spool_path) < 0)
		w->rejected_path = NULL;
	if (w->stream == NULL || w->spool_path == NULL
	    || w->rejected_path == NULL || w->sync_timer == NULL || w->retry_timer == NULL
	    || w->trim_timer == NULL) {
		cdr_writer_free(w);
		return -ENOMEM;
	}
	ret = cdr_make_dir(spool_path);
	if (ret == 0)
		ret = cdr_spool_open(w);
	if (ret < 0) {
		cdr_writer_free(w);
		return ret;
	}
	if (w->spool_lines > 0) {
		log_info("CDR spool %s holds %u CDRs from an earlier run: replaying them",
			 w->spool_path, w->spool_lines);
		w->backlog = 1;
	}
	if (rds != NULL)
		rds_on_state(rds, cdr_on_state, w);
	cdr_pump(w);
	*out = w;
	return 0;
}

void cdr_writer_destroy(cdr_writer_t *w)
{
	struct cdr_req *req;

	if (w == NULL)
		return;
	/* What Redis did not confirm stays in the spool, on disk, for the
	 * next writer on it. */
	if (w->acked_off < w->spool_size && w->synced_off < w->spool_size)
		cdr_spool_sync(w);
	while ((req = w->head) != NULL) {
		cdr_unlink(w, req);
		req->w = NULL;   /* its reply only frees it */
	}
	if (w->rds != NULL)
		rds_on_state(w->rds, NULL, NULL);
	cdr_writer_free(w);
}
