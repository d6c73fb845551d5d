/*
 * cdr — call detail records to a Redis Stream, through a spool file when
 * Redis cannot take them.  See cdr.h for the contract.
 *
 * Design note.
 *
 * Storing a record.  Every record goes through one Lua script (EVAL; the
 * script is short and Redis caches it by its digest):
 *
 *   SET <stream>:seen:<id> 1 NX EX 604800   -- set: XADD <stream> * f v ...
 *                                            -- not set: return "dup"
 *
 * so the seen key of stream "b2bua:cdr" is "b2bua:cdr:seen:<id>", in the
 * stream's namespace (docs/redis-schema.md, Keys).  The reply is the entry
 * id or "dup".  Should XADD fail (the key is not a stream), the
 * script deletes the seen key again, or a corrected retry would be taken
 * for a duplicate.  So a record may be sent any number of times within a
 * week and is stored once.
 *
 * Two modes.  While the spool is empty and Redis is up, records are sent
 * directly, pipelined, and remembered in memory until their reply.  As soon
 * as one record cannot be sent (Redis down, or its connection dropped before
 * the reply), it goes to the spool — together with the records sent after
 * it that are still waiting, so the spool keeps call-end order — and from
 * then on every new record is appended to the spool too, until the spool is
 * drained.  An append is one write(2) of one whole line, then fdatasync,
 * before cdr_write returns.
 *
 * Replay.  Whenever Redis is up and the spool holds lines not yet
 * acknowledged, lines are read from `send_off` and sent, at most
 * CDR_REPLAY_WINDOW in flight.  Replies come back in order, so each one
 * moves `acked_off` past its line.  A dropped connection (NULL reply) or a
 * temporary refusal rewinds `send_off` to `acked_off`: the unacknowledged
 * lines are sent again later, and SET NX makes that harmless.  When
 * `acked_off` reaches the end of the file with nothing in flight, the file
 * is truncated to zero: a record appended meanwhile moved the end, so it is
 * sent before that can happen.  A replay also starts at creation, for
 * records an earlier process left in the same spool.
 *
 * Errors from Redis.  Replies meaning "not now" (LOADING, BUSY, OOM,
 * READONLY, MASTERDOWN, MISCONF, TRYAGAIN, NOREPLICAS, CLUSTERDOWN, NOAUTH,
 * NOPERM) keep the record queued: the replay stalls until the next
 * cdr_write or the next reconnect, so a Redis that says no is not hammered
 * in a loop.  Any other error reply is about the record: it is logged with
 * its whole line and moved to "<spool>.rejected" (same line format), so one
 * bad record cannot block the queue.  A spool line that does not parse is
 * moved there the same way.
 *
 * Order.  Records reach the stream in cdr_write order, outages included.
 * The one exception: when Redis refuses a record temporarily while later
 * ones are already on the wire, those may be stored before it.
 *
 * Ownership and lifetime.  The writer owns rds's state callback
 * (rds_on_state has one slot).  The spool is flock()ed: two processes must
 * not share one.  Destroy the writer before its rds; records still waiting
 * for a direct reply are then spooled (the next process replays them), and
 * the replies still to come find only a detached request to free.
 *
 * Spool line format, version "cdr1": the tag, then the 17 fields in
 * cdr_encode's order, separated by tabs.  In strings a backslash is written
 * \\, a tab \t, LF \n, CR \r and any other control byte \xHH (never \x00);
 * all other bytes, UTF-8 included, stay as they are.  Numbers are decimal,
 * the disposition and the hangup party are their names.
 */
#define _GNU_SOURCE

#include "worker/cdr.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b2bua/log.h"

#define CDR_FIELDS          17
#define CDR_NUM_BUF         160     /* room for cdr_encode's seven numbers */
#define CDR_LINE_MAX        4096    /* > the longest line cdr_to_line can make (~3.5 KB) */
#define CDR_LINE_TAG        "cdr1"
#define CDR_SEEN_TTL        "604800"   /* 7 days, in seconds */
#define CDR_REPLAY_WINDOW   32      /* spooled records in flight at once */
#define CDR_LOG_CHUNK       640     /* a line is logged in pieces that fit a log line */

static const char cdr_script[] =
	"if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then\n"
	"  return 'dup'\n"
	"end\n"
	"local id = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, 2))\n"
	"if type(id) == 'table' and id.err then\n"
	"  redis.call('DEL', KEYS[2])\n"
	"end\n"
	"return id\n";

static const char *const cdr_field_names[CDR_FIELDS] = {
	"id", "a_call_id", "b_call_id", "caller", "callee", "answered_by", "forwarded_to",
	"start_ms", "ring_ms", "answer_ms", "end_ms", "billable_ms", "disposition",
	"sip_code", "hangup_by", "host", "worker",
};

static const char *const cdr_disposition_names[] = {
	"ANSWERED", "BUSY", "NO_ANSWER", "CANCELLED", "FAILED", "KILLED",
};

static const char *const cdr_party_names[] = { "none", "caller", "callee", "system" };

#define CDR_COUNT(a) (sizeof (a) / sizeof (a)[0])

/* What a reply means for the record it answers. */
enum cdr_outcome {
	CDR_STORED,    /* XADDed now */
	CDR_DUP,       /* stored earlier */
	CDR_LOST,      /* the connection dropped first: maybe stored, maybe not */
	CDR_RETRY,     /* Redis refuses for now */
	CDR_REJECT,    /* Redis refuses this record */
};

enum cdr_req_kind { CDR_REQ_DIRECT, CDR_REQ_REPLAY };

/* One record waiting for its reply.  Linked in send order. */
struct cdr_req {
	struct cdr_req *prev, *next;
	cdr_writer_t *w;            /* NULL once the writer is gone */
	enum cdr_req_kind kind;
	int spooled;                /* direct: a copy went to the spool */
	unsigned gen;               /* replay: the pass it was sent in */
	off_t end;                  /* replay: offset just past its line */
	struct cdr rec;
};

struct cdr_writer {
	rds_t *rds;                 /* NULL: spool only */
	char *stream;
	char *seen_prefix;          /* "<stream>:seen:" */
	char *spool_path;
	char *rejected_path;
	int fd;

	off_t spool_size;           /* bytes in the spool, whole lines only */
	unsigned spool_lines;
	off_t acked_off;            /* every line before it is done with */
	unsigned acked_lines;
	off_t send_off;             /* the next line to send */
	unsigned replay_inflight;
	unsigned gen;               /* bumped at every rewind */
	int rewinding;              /* stale replies still due: send nothing yet */
	int stalled;                /* Redis said "not now": wait for a write or a reconnect */
	int pumping;

	unsigned replayed;          /* this drain, for the closing log line */
	unsigned rejected;
	int outage_logged;          /* "spooling" warning given for this outage */
	int refusal_logged;         /* "refuses" warning given for this drain */

	struct cdr_req *head, *tail;
};

/* ------------------------------------------------------------ names */

const char *cdr_disposition_name(enum cdr_disposition d)
{
	if ((unsigned)d >= CDR_COUNT(cdr_disposition_names))
		return "?";
	return cdr_disposition_names[d];
}

const char *cdr_party_name(enum cdr_party p)
{
	if ((unsigned)p >= CDR_COUNT(cdr_party_names))
		return "?";
	return cdr_party_names[p];
}

enum cdr_disposition cdr_disposition_of(int sip_code, int cancelled)
{
	if (cancelled)
		return CDR_CANCELLED;
	if (sip_code == 486 || sip_code == 600)
		return CDR_BUSY;
	if (sip_code == 408 || sip_code == 480)
		return CDR_NO_ANSWER;
	if (sip_code >= 200 && sip_code < 300)
		return CDR_ANSWERED;
	return CDR_FAILED;
}

static int cdr_lookup(const char *const names[], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

/* ------------------------------------------------------------ encoding */

/* Strings must end inside their arrays, the id must be set, the enums known. */
static int cdr_check(const struct cdr *c)
{
	const char *strs[] = { c->a_call_id, c->b_call_id, c->caller, c->callee, c->answered_by,
			       c->forwarded_to };

	if (memchr(c->id, '\0', sizeof c->id) == NULL || c->id[0] == '\0'
	    || memchr(c->host, '\0', sizeof c->host) == NULL)
		return -EINVAL;
	for (size_t i = 0; i < CDR_COUNT(strs); i++)
		if (memchr(strs[i], '\0', CDR_STR) == NULL)
			return -EINVAL;
	if ((unsigned)c->disposition >= CDR_COUNT(cdr_disposition_names)
	    || (unsigned)c->hangup_by >= CDR_COUNT(cdr_party_names))
		return -EINVAL;
	return 0;
}

/* Format one number into buf at *used; its text, or NULL when buf is full. */
static const char *cdr_num(char *buf, size_t size, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static const char *cdr_num(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
	char *out = buf + *used;
	va_list ap;
	int n;

	if (*used >= size)
		return NULL;
	va_start(ap, fmt);
	n = vsnprintf(out, size - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *used)
		return NULL;
	*used += (size_t)n + 1;
	return out;
}

int cdr_encode(const struct cdr *c, const char **fields, const char **values, int max,
	       char *buf, size_t size)
{
	size_t used = 0;
	const char *start, *ring, *answer, *end, *billable, *code, *worker;

	if (cdr_check(c) < 0)
		return -EINVAL;
	if (max < CDR_FIELDS)
		return -ENOSPC;
	start = cdr_num(buf, size, &used, "%" PRIu64, c->start_ms);
	ring = cdr_num(buf, size, &used, "%" PRIu64, c->ring_ms);
	answer = cdr_num(buf, size, &used, "%" PRIu64, c->answer_ms);
	end = cdr_num(buf, size, &used, "%" PRIu64, c->end_ms);
	billable = cdr_num(buf, size, &used, "%" PRIu64, c->billable_ms);
	code = cdr_num(buf, size, &used, "%d", c->sip_code);
	worker = cdr_num(buf, size, &used, "%u", c->worker);
	if (worker == NULL)
		return -ENOSPC;   /* the last number fits only if all before it did */

	const char *v[CDR_FIELDS] = {
		c->id, c->a_call_id, c->b_call_id, c->caller, c->callee, c->answered_by,
		c->forwarded_to, start, ring, answer, end, billable,
		cdr_disposition_name(c->disposition), code, cdr_party_name(c->hangup_by),
		c->host, worker,
	};

	for (int i = 0; i < CDR_FIELDS; i++) {
		fields[i] = cdr_field_names[i];
		values[i] = v[i];
	}
	return CDR_FIELDS;
}

/* ------------------------------------------------------------ spool line format */

/* Append s (at most max bytes) to out[*n..size), escaped. */
static int cdr_escape(char *out, size_t size, size_t *n, const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t len = strnlen(s, max);

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[4];
		size_t k = 0;

		if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
			esc[k++] = '\\';
			esc[k++] = ch == '\\' ? '\\' : ch == '\t' ? 't' : ch == '\n' ? 'n' : 'r';
		} else if (ch < 0x20 || ch == 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'x';
			esc[k++] = hex[ch >> 4];
			esc[k++] = hex[ch & 15];
		} else {
			esc[k++] = (char)ch;
		}
		if (*n + k >= size)
			return -ENOSPC;
		memcpy(out + *n, esc, k);
		*n += k;
	}
	return 0;
}

static int cdr_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Undo cdr_escape on [s, s + len) into dst (size bytes, NUL-terminated). */
static int cdr_unescape(char *dst, size_t size, const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '\\') {
			if (++i >= len)
				return -EINVAL;
			switch (s[i]) {
			case '\\': ch = '\\'; break;
			case 't': ch = '\t'; break;
			case 'n': ch = '\n'; break;
			case 'r': ch = '\r'; break;
			case 'x': {
				int hi = i + 2 < len ? cdr_hexval(s[i + 1]) : -1;
				int lo = hi >= 0 ? cdr_hexval(s[i + 2]) : -1;

				if (lo < 0 || (hi == 0 && lo == 0))
					return -EINVAL;   /* NUL would cut the string */
				ch = (char)(hi << 4 | lo);
				i += 2;
				break;
			}
			default:
				return -EINVAL;
			}
		}
		if (n + 1 >= size)
			return -EINVAL;
		dst[n++] = ch;
	}
	dst[n] = '\0';
	return 0;
}

int cdr_to_line(const struct cdr *c, char *out, size_t size)
{
	const char *fields[CDR_FIELDS];
	const char *values[CDR_FIELDS];
	char nums[CDR_NUM_BUF];
	size_t n = 0;
	int count = cdr_encode(c, fields, values, CDR_FIELDS, nums, sizeof nums);

	if (count < 0)
		return count;
	if (size <= strlen(CDR_LINE_TAG))
		return -ENOSPC;
	memcpy(out, CDR_LINE_TAG, strlen(CDR_LINE_TAG));
	n = strlen(CDR_LINE_TAG);
	for (int i = 0; i < count; i++) {
		if (n + 1 >= size)
			return -ENOSPC;
		out[n++] = '\t';
		if (cdr_escape(out, size, &n, values[i], CDR_LINE_MAX) < 0)
			return -ENOSPC;
	}
	out[n] = '\0';
	return (int)n;
}

static int cdr_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return *end != '\0' || errno != 0 ? -EINVAL : 0;
}

static int cdr_parse_int(const char *s, long min, long max, long *out)
{
	char *end;

	if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return -EINVAL;
	errno = 0;
	*out = strtol(s, &end, 10);
	return *end != '\0' || errno != 0 || *out < min || *out > max ? -EINVAL : 0;
}

/* Fill field i of c from its unescaped text. */
static int cdr_set_field(struct cdr *c, int i, const char *text)
{
	char *strs[] = { c->id, c->a_call_id, c->b_call_id, c->caller, c->callee,
			 c->answered_by, c->forwarded_to };
	uint64_t *nums[] = { &c->start_ms, &c->ring_ms, &c->answer_ms, &c->end_ms,
			     &c->billable_ms };
	long v;
	int k;

	if (i < 7) {
		size_t size = i == 0 ? sizeof c->id : CDR_STR;

		if (strlen(text) >= size)
			return -EINVAL;
		strcpy(strs[i], text);
		return 0;
	}
	if (i < 12)
		return cdr_parse_u64(text, nums[i - 7]);
	switch (i) {
	case 12:
		k = cdr_lookup(cdr_disposition_names, CDR_COUNT(cdr_disposition_names), text);
		c->disposition = (enum cdr_disposition)k;
		return k < 0 ? -EINVAL : 0;
	case 13:
		if (cdr_parse_int(text, INT_MIN, INT_MAX, &v) < 0)
			return -EINVAL;
		c->sip_code = (int)v;
		return 0;
	case 14:
		k = cdr_lookup(cdr_party_names, CDR_COUNT(cdr_party_names), text);
		c->hangup_by = (enum cdr_party)k;
		return k < 0 ? -EINVAL : 0;
	case 15:
		if (strlen(text) >= sizeof c->host)
			return -EINVAL;
		strcpy(c->host, text);
		return 0;
	default:
		if (cdr_parse_int(text, 0, UINT_MAX, &v) < 0)
			return -EINVAL;
		c->worker = (unsigned)v;
		return 0;
	}
}

int cdr_from_line(const char *line, struct cdr *out)
{
	char text[CDR_STR];
	struct cdr c;
	const char *p = line;
	size_t taglen = strlen(CDR_LINE_TAG);

	memset(&c, 0, sizeof c);
	if (strncmp(p, CDR_LINE_TAG, taglen) != 0 || p[taglen] != '\t')
		return -EINVAL;
	p += taglen;
	for (int i = 0; i < CDR_FIELDS; i++) {
		const char *start;
		size_t len;

		if (*p != '\t')   /* a short line: never read past its end */
			return -EINVAL;
		start = p + 1;
		len = strcspn(start, "\t");
		if (cdr_unescape(text, sizeof text, start, len) < 0 || cdr_set_field(&c, i, text) < 0)
			return -EINVAL;
		p = start + len;
	}
	if (*p != '\0' || c.id[0] == '\0')
		return -EINVAL;
	*out = c;
	return 0;
}

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
	w->spool_size += len + 1;
	w->spool_lines++;
	return 0;
}

static int cdr_spool_sync(cdr_writer_t *w)
{
	if (fdatasync(w->fd) == 0)
		return 0;
	log_error("cannot sync the CDR spool %s: %s: its latest CDRs may be lost in a crash",
		  w->spool_path, strerror(errno));
	return -EIO;
}

/* Direct records still waiting for their reply go to the spool, in send
 * order, ahead of anything spooled after them.  Whether Redis has them
 * already does not matter: SET NX sorts that out at the replay.  Returns
 * the first error (each failure is logged with its record). */
static int cdr_spool_inflight(cdr_writer_t *w)
{
	int ret = 0;

	for (struct cdr_req *req = w->head; req != NULL; req = req->next) {
		if (req->kind != CDR_REQ_DIRECT || req->spooled)
			continue;
		req->spooled = 1;
		if (cdr_spool_append(w, &req->rec) < 0 && ret == 0)
			ret = -EIO;
	}
	return ret;
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
	ret = cdr_pread_all(w->fd, buf, want, off);
	if (ret < 0)
		return ret;
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
	if (ret < 0)
		log_error("cannot read the CDR spool %s: %s", w->spool_path, strerror(-ret));
	return ret;
}

/* Everything reached Redis (or the rejected file): start the spool afresh. */
static void cdr_spool_finish(cdr_writer_t *w)
{
	if (w->spool_size == 0 || w->acked_off != w->spool_size || w->replay_inflight > 0)
		return;
	if (ftruncate(w->fd, 0) < 0) {
		/* Kept: the next drain sends it all again, as duplicates. */
		log_error("cannot truncate the CDR spool %s: %s", w->spool_path, strerror(errno));
		return;
	}
	if (w->rejected > 0)
		log_info("replayed %u CDRs from %s (%u rejected: see %s)", w->replayed,
			 w->spool_path, w->rejected, w->rejected_path);
	else
		log_info("replayed %u CDRs from %s", w->replayed, w->spool_path);
	w->spool_size = w->acked_off = w->send_off = 0;
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

static void cdr_on_reply(rds_t *rds, redisReply *reply, void *arg);

/* EVAL script 2 <stream> <seen key> <ttl> field value ...  On success
 * req is linked and belongs to the reply. */
static int cdr_send(cdr_writer_t *w, struct cdr_req *req)
{
	const char *argv[6 + 2 * CDR_FIELDS];
	const char *fields[CDR_FIELDS];
	const char *values[CDR_FIELDS];
	char nums[CDR_NUM_BUF];
	char seen[256];
	int n = cdr_encode(&req->rec, fields, values, CDR_FIELDS, nums, sizeof nums);
	int ret;

	if (n < 0)
		return n;
	if ((size_t)snprintf(seen, sizeof seen, "%s%s", w->seen_prefix, req->rec.id)
	    >= sizeof seen)
		return -ENAMETOOLONG;
	argv[0] = "EVAL";
	argv[1] = cdr_script;
	argv[2] = "2";
	argv[3] = w->stream;
	argv[4] = seen;
	argv[5] = CDR_SEEN_TTL;
	for (int i = 0; i < n; i++) {
		argv[6 + 2 * i] = fields[i];
		argv[7 + 2 * i] = values[i];
	}
	req->w = w;
	ret = rds_commandargv(w->rds, cdr_on_reply, req, 6 + 2 * n, argv, NULL);
	if (ret == 0)
		cdr_link(w, req);
	return ret;
}

static int cdr_is_temporary(const char *err)
{
	static const char *const codes[] = {
		"LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "MISCONF", "TRYAGAIN",
		"NOREPLICAS", "CLUSTERDOWN", "NOAUTH", "NOPERM",
	};

	for (size_t i = 0; i < CDR_COUNT(codes); i++) {
		size_t len = strlen(codes[i]);

		if (strncmp(err, codes[i], len) == 0 && (err[len] == ' ' || err[len] == '\0'))
			return 1;
	}
	return 0;
}

static enum cdr_outcome cdr_outcome_of(const redisReply *reply)
{
	if (reply == NULL)
		return CDR_LOST;
	if (reply->type == REDIS_REPLY_ERROR)
		return cdr_is_temporary(reply->str) ? CDR_RETRY : CDR_REJECT;
	if (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS)
		return CDR_REJECT;   /* not what the script returns: say so loudly */
	return strcmp(reply->str, "dup") == 0 ? CDR_DUP : CDR_STORED;
}

static const char *cdr_reply_text(const redisReply *reply)
{
	if (reply != NULL && reply->str != NULL)
		return reply->str;
	return "unexpected reply";
}

/* Redis said "not now": stop sending until the next write or reconnect. */
static void cdr_stall(cdr_writer_t *w, const redisReply *reply)
{
	w->stalled = 1;
	if (w->refusal_logged)
		return;
	w->refusal_logged = 1;
	log_warn("redis %s refuses CDRs for now (%.200s): keeping them in %s",
		 rds_address(w->rds), reply->str, w->spool_path);
}

/* A directly sent record's reply. */
static void cdr_direct_done(cdr_writer_t *w, struct cdr_req *req, enum cdr_outcome outcome,
			    const redisReply *reply)
{
	if (req->spooled)
		return;   /* its copy in the spool is what counts now */
	switch (outcome) {
	case CDR_STORED:
	case CDR_DUP:
		return;
	case CDR_REJECT:
		cdr_reject_record(w, &req->rec, cdr_reply_text(reply));
		return;
	case CDR_RETRY:
		cdr_stall(w, reply);
		break;
	case CDR_LOST:
		cdr_spool_warn(w);
		break;
	}
	/* Maybe stored, maybe not: to the spool, with those sent after it. */
	req->spooled = 1;
	cdr_spool_append(w, &req->rec);
	cdr_spool_inflight(w);
	cdr_spool_sync(w);
}

/* A replayed line's reply: replies come in send order. */
static void cdr_replay_done(cdr_writer_t *w, struct cdr_req *req, enum cdr_outcome outcome,
			    const redisReply *reply)
{
	w->replay_inflight--;
	if (req->gen != w->gen) {
		/* Sent before a rewind: its line will be sent again. */
		if (w->replay_inflight == 0)
			w->rewinding = 0;
		return;
	}
	if (outcome == CDR_LOST || outcome == CDR_RETRY) {
		if (outcome == CDR_RETRY)
			cdr_stall(w, reply);
		w->send_off = w->acked_off;
		w->gen++;
		w->rewinding = w->replay_inflight > 0;
		return;
	}
	if (outcome == CDR_REJECT)
		cdr_reject_record(w, &req->rec, cdr_reply_text(reply));
	else
		w->replayed++;
	w->acked_off = req->end;
	w->acked_lines++;
}

static void cdr_pump(cdr_writer_t *w);

static void cdr_on_reply(rds_t *rds, redisReply *reply, void *arg)
{
	struct cdr_req *req = arg;
	cdr_writer_t *w = req->w;
	enum cdr_outcome outcome = cdr_outcome_of(reply);

	(void)rds;
	if (w == NULL) {   /* the writer is gone */
		free(req);
		return;
	}
	cdr_unlink(w, req);
	if (req->kind == CDR_REQ_DIRECT)
		cdr_direct_done(w, req, outcome, reply);
	else
		cdr_replay_done(w, req, outcome, reply);
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
	req->kind = CDR_REQ_REPLAY;
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

/* Move the spool along as far as it goes now.  Run after every event. */
static void cdr_pump(cdr_writer_t *w)
{
	if (w->pumping)
		return;
	w->pumping = 1;
	while (cdr_can_send(w) && cdr_replay_next(w) == 0)
		;
	cdr_spool_finish(w);
	w->pumping = 0;
}

static void cdr_on_state(rds_t *rds, int connected, void *arg)
{
	cdr_writer_t *w = arg;

	(void)rds;
	if (!connected)
		return;
	w->stalled = 0;
	w->outage_logged = 0;
	cdr_pump(w);
}

/* ------------------------------------------------------------ the writer */

static int cdr_send_direct(cdr_writer_t *w, const struct cdr *c)
{
	struct cdr_req *req = calloc(1, sizeof *req);
	int ret;

	if (req == NULL)
		return -ENOMEM;
	req->kind = CDR_REQ_DIRECT;
	req->rec = *c;
	ret = cdr_send(w, req);
	if (ret < 0)
		free(req);
	return ret;
}

int cdr_write(cdr_writer_t *w, const struct cdr *c)
{
	int ret;

	if (cdr_check(c) < 0) {
		log_error("CDR %.40s LOST: malformed record (a string without its NUL, no id, "
			  "or an unknown disposition or party)", c->id);
		return -EINVAL;
	}
	if (w->spool_size == 0 && w->rds != NULL && rds_connected(w->rds)
	    && cdr_send_direct(w, c) == 0)
		return 0;
	cdr_spool_warn(w);
	cdr_spool_inflight(w);
	ret = cdr_spool_append(w, c);
	if (ret == 0 && cdr_spool_sync(w) < 0)
		ret = -EIO;
	w->stalled = 0;   /* a new record is the occasion to ask Redis again */
	cdr_pump(w);
	return ret;
}

unsigned cdr_spooled(const cdr_writer_t *w)
{
	return w->spool_lines - w->acked_lines;
}

/* "b2bua:cdr" -> "b2bua:cdr:seen:" */
static char *cdr_seen_prefix(const char *stream)
{
	char *out = NULL;

	if (asprintf(&out, "%s:seen:", stream) < 0)
		return NULL;
	return out;
}

static void cdr_writer_free(cdr_writer_t *w)
{
	if (w->fd >= 0)
		close(w->fd);   /* drops the flock too */
	free(w->stream);
	free(w->seen_prefix);
	free(w->spool_path);
	free(w->rejected_path);
	free(w);
}

int cdr_writer_create(rds_t *rds, const char *stream_key, const char *spool_path,
		      cdr_writer_t **out)
{
	cdr_writer_t *w;
	int ret;

	if (stream_key == NULL || stream_key[0] == '\0' || strlen(stream_key) > 200
	    || spool_path == NULL || spool_path[0] == '\0' || strlen(spool_path) >= PATH_MAX - 16)
		return -EINVAL;
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return -ENOMEM;
	w->fd = -1;
	w->rds = rds;
	w->stream = strdup(stream_key);
	w->seen_prefix = cdr_seen_prefix(stream_key);
	w->spool_path = strdup(spool_path);
	if (asprintf(&w->rejected_path, "%s.rejected", spool_path) < 0)
		w->rejected_path = NULL;
	if (w->stream == NULL || w->seen_prefix == NULL || w->spool_path == NULL
	    || w->rejected_path == NULL) {
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
	if (w->spool_lines > 0)
		log_info("CDR spool %s holds %u CDRs from an earlier run: replaying them",
			 w->spool_path, w->spool_lines);
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
	/* Direct records without their reply yet: the spool has to keep
	 * them, the next writer on it replays them. */
	if (w->head != NULL) {
		cdr_spool_inflight(w);
		cdr_spool_sync(w);
	}
	while ((req = w->head) != NULL) {
		cdr_unlink(w, req);
		req->w = NULL;   /* its reply only frees it */
	}
	if (w->rds != NULL)
		rds_on_state(w->rds, NULL, NULL);
	cdr_writer_free(w);
}
