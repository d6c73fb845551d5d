/*
 * cdr_spool — the CDR writer's spool file: appending a record as one line,
 * syncing, reading lines back, taking stock of a spool an earlier process
 * left, and the rejected file.  Half of the writer (cdr_writer.c feeds
 * Redis from the spool); what both halves share is cdr_writer_int.h.
 *
 * Design note.  A line is written with one write(2) and a failed write is
 * cut off again, so the file only ever holds whole lines; the newest
 * CDR_RECENT_MAX bytes are kept in memory too (`recent`), so sending a
 * line normally reads nothing back.  Nothing here decides when to sync or
 * what is confirmed: cdr_writer.c does, through cdr_spool_sync().  A line
 * set aside (rejected by Redis, or no record at all) goes to
 * "<spool>.rejected", synced, and is logged whole, so the log alone can
 * restore it.
 */
#define _GNU_SOURCE

#include "worker/cdr_writer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b2bua/log.h"

#define CDR_LOG_CHUNK       640     /* a line is logged in pieces that fit a log line */

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

int cdr_make_dir(const char *path)
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
void cdr_reject_line(cdr_writer_t *w, const char *line, size_t len, const char *why)
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
	shm_counter_add(w->shm, w->worker, SHM_CTR_CDR_REJECTED, 1);
}

void cdr_reject_record(cdr_writer_t *w, const struct cdr *c, const char *error)
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
int cdr_spool_append(cdr_writer_t *w, const struct cdr *c)
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

int cdr_spool_synced(cdr_writer_t *w, off_t end, int err)
{
	if (err < 0) {
		log_error("cannot sync the CDR spool %s: %s: its latest CDRs may be lost in a crash",
			  w->spool_path, strerror(-err));
		return -EIO;
	}
	if (end > w->synced_off)
		w->synced_off = end;
	return 0;
}

int cdr_spool_sync(cdr_writer_t *w)
{
	return cdr_spool_synced(w, w->spool_size, fdatasync(w->fd) == 0 ? 0 : -errno);
}

/* The warning that starts an outage's spooling. */
void cdr_spool_warn(cdr_writer_t *w)
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
int cdr_spool_line(cdr_writer_t *w, off_t off, char *buf, size_t size, off_t *next)
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

int cdr_spool_open(cdr_writer_t *w)
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
