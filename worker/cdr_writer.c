/*
 * cdr_writer — call detail records to a Redis Stream, through a spool file
 * when Redis cannot take them.  See cdr.h for the contract; the record and
 * its line format are in cdr.c, the spool file itself in cdr_spool.c (the
 * two halves share cdr_writer_int.h).
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
 * never one per record, and never a wait on the disk inside cdr_write.  The
 * fdatasync runs on the loop's ring (IORING_OP_FSYNC), so the worker goes
 * on with its calls while the disk works; only stopping waits for it.
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
 * On the replicas too (redis_wait_replicas > 0, cdr_writer_set_wait).
 * Redis's answer to the script then only says the primary has the record;
 * it is done with once a `WAIT replicas timeout` sent after it on the same
 * connection answered at least `replicas`.  WAIT covers every write this
 * connection made before it, so the scripts stay pipelined and one WAIT
 * (at most one on the wire) confirms the whole burst before it: acked_off
 * moves with WAIT answers only.  A WAIT that falls short (a replica down
 * or lagging) leaves the lines in the spool, unacknowledged, and the next
 * WAIT waits (`wait_held`) CDR_RETRY_MS, doubling with every short WAIT in
 * a row up to CDR_WAIT_HOLD_MAX_MS: a WAIT holds this connection (Redis
 * answers nothing else on it until it returns), so a replica that is gone
 * for long (the primary's only replica was killed) costs the worker's
 * lookups at most one redis_wait_timeout stall per CDR_WAIT_HOLD_MAX_MS,
 * never a loop.  On the same connection nothing is sent again
 * (the next WAIT still covers the scripts); a new connection's WAIT covers
 * nothing sent on the old one, so in this mode a lost connection rewinds
 * send_off to acked_off and the lines go again: a record already stored
 * answers dup and refreshes its seen key, a write whose WAIT then proves
 * the first copy reached the replicas (store_lua.c).  Meanwhile the spool
 * is synced as when Redis is down, so a missing replica does not hold
 * calls' slots for long (at most one WAIT, redis_wait_timeout).  A record
 * Redis rejected goes to the rejected file once, even when its line is
 * sent again before a WAIT confirmed it (`rejected_hi`).
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

#include "worker/cdr_writer_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>
#include <sofia-sip/su_wait.h>

#include "b2bua/log.h"
#include "store/store.h"

#define CDR_REPLAY_WINDOW   64      /* records in flight at once */
/* Unconfirmed records are synced together, at most this often: one
 * fdatasync (about 1.5 ms here) per batch keeps the loop free most of the
 * time even when Redis is down at full load. */
#define CDR_SYNC_MS         10
/* After "not now" (e.g. LOADING) or a WAIT that fell short, ask again this late. */
#define CDR_RETRY_MS        500
/* The longest pause between two WAITs while the replicas do not answer. */
#define CDR_WAIT_HOLD_MAX_MS 8000
#define CDR_TRIM_MS         100     /* idle this long: the confirmed spool is truncated */
#define CDR_TRIM_BYTES      (1 << 20) /* ... or when it is this long */

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
	    || w->wait != NULL || w->waiters != NULL || w->sync_op != NULL)
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
	if (w->backlog)   /* a drain after an outage (or of an earlier run's spool) */
		shm_counter_add(w->shm, w->worker, SHM_CTR_CDR_REPLAYED, w->replayed);
	w->backlog = 0;
	w->spool_size = w->acked_off = w->send_off = w->synced_off = w->recent_off = 0;
	w->rejected_hi = 0;
	w->spool_lines = w->acked_lines = w->send_lines = w->unrepl_counted = 0;
	w->replayed = w->rejected = w->wait_rejected = 0;
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
	w->wait_held = 0;
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

/* Send the unacknowledged lines again: Redis may not have them, or (with
 * WAIT) the WAITs to come on a new connection would not cover them.
 * Replies still due belong to the old pass and are ignored. */
static void cdr_rewind(cdr_writer_t *w)
{
	w->send_off = w->acked_off;
	w->send_lines = w->acked_lines;
	w->gen++;
	w->rewinding = w->replay_inflight > 0;
}

/* A record Redis refused for good: into the rejected file, once, even when
 * its line is sent again before a WAIT confirmed it. */
static void cdr_rejected_reply(cdr_writer_t *w, struct cdr_req *req, const char *error)
{
	if (req->end <= w->rejected_hi)
		return;
	cdr_reject_record(w, &req->rec, error);
	w->rejected_hi = req->end;
	if (w->wait_replicas > 0)
		w->wait_rejected++;
}

/* A line's reply: replies come in send order.  With WAIT, stored or not,
 * the line is done with only once the next WAIT confirms it. */
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
		cdr_rewind(w);
		return;
	}
	if (outcome == STORE_CDR_REJECT)
		cdr_rejected_reply(w, req, error);
	if (w->wait_replicas > 0)
		return;
	if (outcome != STORE_CDR_REJECT)
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
	int pending = w->acked_off < w->send_off;   /* sent lines a WAIT must confirm */
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
		if (next > w->rejected_hi) {
			snprintf(why, sizeof why, "line at offset %lld of %s is no record",
				 (long long)w->send_off, w->spool_path);
			cdr_reject_line(w, line, strlen(line), why);
			w->rejected_hi = next;
			w->wait_rejected += pending;
		}
		w->send_off = next;
		w->send_lines++;
		if (pending)
			return 0;   /* done with once the WAIT for the lines before it confirms */
		w->acked_off = next;
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
	w->send_lines++;
	w->replay_inflight++;
	return 0;
}

/* ------------------------------------------------------------ WAIT for the replicas */

/* Lines sent on this connection and not confirmed yet: ask the replicas,
 * one WAIT at a time, none while a short one is held back. */
static int cdr_wait_due(const cdr_writer_t *w)
{
	return w->wait_replicas > 0 && w->wait == NULL && !w->wait_held && !w->rewinding
		&& w->rds != NULL && rds_connected(w->rds) && w->send_off > w->acked_off;
}

static void cdr_on_waited(void *arg, int err, long long replicas);

static void cdr_wait_send(cdr_writer_t *w)
{
	struct cdr_wait_req *req = calloc(1, sizeof *req);

	if (req == NULL)
		return;   /* the next event tries again */
	req->w = w;
	req->gen = w->gen;
	req->end = w->send_off;
	req->lines = w->send_lines;
	if (store_wait(w->rds, w->wait_replicas, w->wait_timeout_ms, cdr_on_waited, req) < 0) {
		free(req);
		return;
	}
	w->wait = req;
}

/*
 * A WAIT fell short: its lines stay in the spool, unacknowledged, synced
 * like those of a Redis that is down; the next WAIT waits wait_hold_ms.
 * Each line is counted once in cdr_unreplicated, however many WAITs it
 * takes; the warning comes once per episode.
 */
static void cdr_wait_short(cdr_writer_t *w, const struct cdr_wait_req *req, int err,
			   long long replicas)
{
	unsigned from = w->unrepl_counted > w->acked_lines ? w->unrepl_counted : w->acked_lines;

	if (req->lines > from) {
		if (w->shm != NULL)
			shm_counter_add(w->shm, w->worker, SHM_CTR_CDR_UNREPLICATED,
					(int64_t)(req->lines - from));
		w->unrepl_counted = req->lines;
	}
	w->wait_held = 1;
	w->backlog = 1;
	if (w->wait_hold_ms == 0)
		w->wait_hold_ms = CDR_RETRY_MS;
	else if (w->wait_hold_ms < CDR_WAIT_HOLD_MAX_MS / 2)
		w->wait_hold_ms *= 2;
	else
		w->wait_hold_ms = CDR_WAIT_HOLD_MAX_MS;
	su_timer_set_interval(w->retry_timer, cdr_on_retry_timer, w, w->wait_hold_ms);
	if (w->unrepl_logged)
		return;
	w->unrepl_logged = 1;
	if (err < 0)
		log_warn("redis %s: CDRs not yet on a replica (WAIT %d: an error reply): "
			 "keeping them in %s", rds_address(w->rds), w->wait_replicas,
			 w->spool_path);
	else
		log_warn("redis %s: CDRs not yet on a replica (WAIT %d -> %lld within "
			 "%d ms): keeping them in %s", rds_address(w->rds), w->wait_replicas,
			 replicas, w->wait_timeout_ms, w->spool_path);
}

/* Every line before the WAIT reached the replicas. */
static void cdr_wait_confirmed(cdr_writer_t *w, const struct cdr_wait_req *req)
{
	unsigned lines = req->lines - w->acked_lines;
	/* A line that is no record, read after this WAIT went out, is counted
	 * already: it belongs to the next one. */
	unsigned set_aside = w->wait_rejected < lines ? w->wait_rejected : lines;

	w->replayed += lines - set_aside;
	w->wait_rejected -= set_aside;
	w->acked_off = req->end;
	w->acked_lines = req->lines;
	w->wait_hold_ms = 0;
	if (w->unrepl_logged)
		log_info("redis %s: CDRs reach a replica again", rds_address(w->rds));
	w->unrepl_logged = 0;
}

static void cdr_on_waited(void *arg, int err, long long replicas)
{
	struct cdr_wait_req *req = arg;
	cdr_writer_t *w = req->w;

	if (w == NULL) {   /* the writer is gone */
		free(req);
		return;
	}
	w->wait = NULL;
	/* Lost with the connection: cdr_on_state rewinds.  Another pass: stale. */
	if (err != -ENOTCONN && req->gen == w->gen) {
		if (err == 0 && replicas >= w->wait_replicas)
			cdr_wait_confirmed(w, req);
		else
			cdr_wait_short(w, req, err, replicas);
	}
	free(req);
	cdr_pump(w);
}

/* The cdr_spooled figure in the shared counters, for show stats. */
static void cdr_publish(cdr_writer_t *w)
{
	unsigned n = cdr_spooled(w);

	if (w->shm == NULL || n == w->published)
		return;
	shm_counter_add(w->shm, w->worker, SHM_CTR_CDR_SPOOLED, (int64_t)n - w->published);
	w->published = n;
}

/* ------------------------------------------------------------ durability */

/* Redis can confirm what is sent now; otherwise the disk must. */
static int cdr_redis_ok(const cdr_writer_t *w)
{
	return w->rds != NULL && rds_connected(w->rds) && !w->stalled && !w->wait_held;
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

/* The ring's fdatasync completed: what it covered is on disk (cdr_spool_finish
 * does not truncate while it is in flight), then the waiters and whatever
 * waited for it.  A failure is told as cdr_spool_sync() tells it. */
static void cdr_on_synced(struct uport_event *ev, int res)
{
	struct cdr_sync_op *op = (struct cdr_sync_op *)ev;   /* ev is the first member */
	cdr_writer_t *w = op->w;
	off_t end = op->end;

	free(op);
	if (w == NULL)
		return;   /* the writer is gone; it synced at its end */
	w->sync_op = NULL;
	cdr_waiters_done(w, cdr_spool_synced(w, end, res));
	cdr_pump(w);
}

/* Start an fdatasync of everything appended so far on the ring.  0, or -1
 * when it must be done here (no ring, no slot, no memory). */
static int cdr_sync_submit(cdr_writer_t *w)
{
	struct cdr_sync_op *op;
	struct io_uring_sqe *sqe;

	if (w->uport == NULL || (op = calloc(1, sizeof *op)) == NULL)
		return -1;
	op->ev.cb = cdr_on_synced;
	sqe = uport_sqe_for(w->uport, &op->ev);
	if (sqe == NULL) {
		free(op);
		return -1;
	}
	op->w = w;
	op->end = w->spool_size;
	io_uring_prep_fsync(sqe, w->fd, IORING_FSYNC_DATASYNC);
	w->sync_op = op;
	return 0;
}

/* One fdatasync for everything appended so far, then the waiters.  It runs
 * on the ring: a disk that takes its time (hundreds of milliseconds on a
 * busy machine) must not stop the calls; the waiters are told when it
 * completes (cdr_on_synced).  While one is in flight the next waits for
 * it.  cdr_writer_flush() (the worker stops) syncs here and now.  When
 * even that fails, the records are in the kernel only: the waiters are
 * told (a power cut may lose them; cdr_spool_sync logged why). */
static void cdr_sync_now(cdr_writer_t *w)
{
	int ret = 0;

	if (w->sync_op != NULL && !w->flushing)
		return;   /* its completion pumps again */
	if (w->synced_off < w->spool_size && w->acked_off < w->spool_size) {
		if (!w->flushing && cdr_sync_submit(w) == 0)
			return;
		ret = cdr_spool_sync(w);
	}
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
	if (cdr_wait_due(w))
		cdr_wait_send(w);
	cdr_waiters_done(w, 0);
	cdr_want_sync(w);
	cdr_spool_finish(w, 0);
	cdr_publish(w);
	w->pumping = 0;
}

static void cdr_on_trim_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
	cdr_writer_t *w = arg;

	(void)magic; (void)t;
	w->trim_armed = 0;
	if (w->pumping)
		return;
	cdr_spool_finish(w, 1);
	cdr_publish(w);
}

static void cdr_on_state(rds_t *rds, int connected, void *arg)
{
	cdr_writer_t *w = arg;

	(void)rds;
	if (connected) {
		w->stalled = 0;
		w->wait_held = 0;
		w->outage_logged = 0;
	} else if (w->wait_replicas > 0) {
		cdr_rewind(w);   /* WAITs on the next connection cover nothing sent on this one */
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
			  "or an unknown disposition, party or transport)", c->id);
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
	shm_counter_add(w->shm, w->worker, SHM_CTR_CDR_WRITTEN, 1);
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

int cdr_writer_set_wait(cdr_writer_t *w, int replicas, int timeout_ms)
{
	if (replicas < 0 || (replicas > 0 && timeout_ms < 1))
		return -EINVAL;
	w->wait_replicas = replicas;
	w->wait_timeout_ms = timeout_ms;
	return 0;
}

void cdr_writer_set_counters(cdr_writer_t *w, shm_t *shm, unsigned worker)
{
	struct shm_worker_info info;

	w->shm = shm;
	w->worker = worker;
	w->published = 0;
	/* The figure a predecessor left is this writer's to restate. */
	if (shm_worker_read(shm, worker, &info) == 0 && info.counters[SHM_CTR_CDR_SPOOLED] != 0)
		shm_counter_add(shm, worker, SHM_CTR_CDR_SPOOLED,
				-(int64_t)info.counters[SHM_CTR_CDR_SPOOLED]);
	cdr_publish(w);
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
	w->uport = uport_of_root(root);
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
	if (w->sync_op != NULL)
		w->sync_op->w = NULL;   /* its completion only frees it */
	while ((req = w->head) != NULL) {
		cdr_unlink(w, req);
		req->w = NULL;   /* its reply only frees it */
	}
	if (w->wait != NULL)
		w->wait->w = NULL;   /* likewise */
	if (w->rds != NULL)
		rds_on_state(w->rds, NULL, NULL);
	cdr_writer_free(w);
}
