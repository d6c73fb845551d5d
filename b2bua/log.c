/*
 * log — see log.h.  Lines are formatted into one buffer and written with a
 * single write(2) so that lines from the master and the workers, which share
 * the same stderr, never interleave mid-line.
 *
 * Rate limits: a limit counts the lines of its window and holds back those
 * past the burst; the first line held back puts the limit on a fixed list
 * of pending summaries, which log_limit_flush() walks.  When that list is
 * full the summary still comes, with the kind's next line.  Shapes are a
 * small open-addressed table (a few probes from the hash of the shape): an
 * entry whose window has ended is closed (its summary written) and reused;
 * when every probe is busy the line falls under one shared overflow limit,
 * so varying the text cannot unbound the log, and every held line is still
 * counted in some summary.
 */
#include "b2bua/log.h"
#include "b2bua/mono.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX       1024
#define LOG_PENDING_MAX    64     /* limits with a summary to write */
#define LOG_SHAPE_PROBES   4      /* entries of the shapes' table tried per shape */

struct log_shape {
	uint64_t hash;
	int used;
	char text[LOG_LIMIT_SHAPE_LEN + 1];   /* the shape, also the limit's `what` */
	struct log_limit lim;
};

static char log_role[32] = "b2bua";
static enum log_level log_level = LOG_INFO;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

static unsigned log_default_burst = LOG_LIMIT_BURST;
static unsigned log_default_window_ms = LOG_LIMIT_WINDOW_MS;
static struct log_limit *log_pending[LOG_PENDING_MAX];
static unsigned log_n_pending;
static struct log_shape log_shapes[LOG_LIMIT_SHAPES];
static struct log_limit log_shape_overflow = { .what = "lines of other kinds (too many at once)" };

void log_set_role(const char *role)
{
	snprintf(log_role, sizeof log_role, "%s", role);
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < sizeof log_level_names / sizeof log_level_names[0] ?
	       log_level_names[level] : "?";
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
		if (strcmp(name, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int saved_errno = errno;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s[%d] %s: ",
			      (long)(tv.tv_usec / 1000), log_role, (int)getpid(),
			      log_level_names[level]);
	if (n < sizeof line)
		n += (size_t)vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (n >= sizeof line - 1)
		n = sizeof line - 2;	/* truncated: keep the newline */
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved_errno;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ rate limits */

/* Monotonic milliseconds, never 0 (0 marks a limit with no window open). */
static uint64_t log_now_ms(void)
{
	uint64_t ms = mono_ms();

	return ms ? ms : 1;
}

static unsigned log_limit_burst(const struct log_limit *lim)
{
	return lim->burst ? lim->burst : log_default_burst;
}

static unsigned log_limit_window(const struct log_limit *lim)
{
	return lim->window_ms ? lim->window_ms : log_default_window_ms;
}

static void log_limit_unpend(struct log_limit *lim)
{
	for (unsigned i = 0; lim->pending && i < log_n_pending; i++) {
		if (log_pending[i] == lim) {
			log_pending[i] = log_pending[--log_n_pending];
			break;
		}
	}
	lim->pending = 0;
}

/* A full list is no loss: the summary then waits for the kind's next line. */
static void log_limit_pend(struct log_limit *lim)
{
	if (lim->pending || log_n_pending == LOG_PENDING_MAX)
		return;
	log_pending[log_n_pending++] = lim;
	lim->pending = 1;
}

/* End the window: the summary of what it held back, then a clean slate. */
static void log_limit_close(struct log_limit *lim, uint64_t now)
{
	uint64_t secs = (now - lim->window_start_ms + 500) / 1000;

	if (lim->held > 0)
		log_msg(lim->held_level, "%s: %u more in the last %llu s",
			lim->what ? lim->what : "(rate-limited line)", lim->held,
			(unsigned long long)(secs ? secs : 1));
	lim->window_start_ms = 0;
	lim->shown = 0;
	lim->held = 0;
	lim->held_level = LOG_ERROR;
	log_limit_unpend(lim);
}

/* 1: write the line; 0: it is held back (and counted). */
static int log_limit_admit(struct log_limit *lim, enum log_level level, uint64_t now)
{
	if (lim->window_start_ms != 0 && now - lim->window_start_ms >= log_limit_window(lim))
		log_limit_close(lim, now);
	if (lim->window_start_ms == 0)
		lim->window_start_ms = now;
	if (lim->shown < log_limit_burst(lim)) {
		lim->shown++;
		return 1;
	}
	if (lim->held == 0 || level < lim->held_level)
		lim->held_level = level;
	if (lim->held < (unsigned)-1)
		lim->held++;
	log_limit_pend(lim);
	return 0;
}

void log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level || !log_limit_admit(lim, level, log_now_ms()))
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* The shape of a line: its start, every run of digits made one '#'. */
static void log_shape_of(const char *line, char shape[LOG_LIMIT_SHAPE_LEN + 1])
{
	size_t n = 0;

	for (const char *p = line; *p && n < LOG_LIMIT_SHAPE_LEN; p++) {
		if (*p >= '0' && *p <= '9') {
			if (n > 0 && shape[n - 1] == '#')
				continue;
			shape[n++] = '#';
		} else {
			shape[n++] = *p;
		}
	}
	shape[n] = '\0';
}

/* FNV-1a: small, and good enough to spread a few dozen shapes. */
static uint64_t log_shape_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The entry of a shape, or one that is free or whose window has ended. */
static struct log_limit *log_shape_limit(const char *shape, uint64_t now)
{
	uint64_t h = log_shape_hash(shape);
	struct log_shape *victim = NULL;

	for (unsigned i = 0; i < LOG_SHAPE_PROBES; i++) {
		struct log_shape *e = &log_shapes[(h + i) % LOG_LIMIT_SHAPES];

		if (e->used && e->hash == h && strcmp(e->text, shape) == 0)
			return &e->lim;
		if (victim == NULL && (!e->used || e->lim.window_start_ms == 0 ||
				       now - e->lim.window_start_ms >= log_limit_window(&e->lim)))
			victim = e;
	}
	/* Every entry busy: more kinds at once than the table holds (an attacker
	 * varying the text) share one limit, so the log stays bounded. */
	if (victim == NULL)
		return &log_shape_overflow;
	if (victim->used)
		log_limit_close(&victim->lim, now);
	victim->used = 1;
	victim->hash = h;
	memcpy(victim->text, shape, sizeof victim->text);
	victim->lim = (struct log_limit){ .what = victim->text };
	return &victim->lim;
}

void log_limited_shape(enum log_level level, const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	char shape[LOG_LIMIT_SHAPE_LEN + 1];
	uint64_t now;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	log_shape_of(text, shape);
	now = log_now_ms();
	if (log_limit_admit(log_shape_limit(shape, now), level, now))
		log_msg(level, "%s", text);
}

void log_limit_flush(void)
{
	uint64_t now = log_now_ms();
	unsigned i = 0;

	/* log_limit_close() takes the limit off the list: the same index is the next one. */
	while (i < log_n_pending) {
		struct log_limit *lim = log_pending[i];

		if (now - lim->window_start_ms >= log_limit_window(lim))
			log_limit_close(lim, now);
		else
			i++;
	}
}

void log_limit_defaults(unsigned burst, unsigned window_ms)
{
	if (burst)
		log_default_burst = burst;
	if (window_ms)
		log_default_window_ms = window_ms;
	for (unsigned i = 0; i < LOG_LIMIT_SHAPES; i++) {
		log_limit_unpend(&log_shapes[i].lim);
		log_shapes[i] = (struct log_shape){ .used = 0 };
	}
	log_limit_unpend(&log_shape_overflow);
	log_shape_overflow = (struct log_limit){ .what = log_shape_overflow.what };
}
