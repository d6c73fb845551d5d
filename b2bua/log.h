/*
 * log — one line per event, to stderr (the master's stderr is the daemon's
 * log; workers inherit it).  Each line carries a timestamp, the process role
 * ("master", "worker 2") and the level, so one file tells the whole story:
 *
 *   2026-11-25T19:20:01.123Z master[4242] info: worker 1 (pid 4250) started
 *
 * The level is global per process and set from the config (log_level).
 *
 * Rate limits.  A warning that someone outside can trigger at will (garbage
 * datagrams, failed authentications, bad CLI requests) must not let them
 * fill the disk: such a call site logs through log_limited() with a
 * `struct log_limit` of its own (static, zero-initialised), and text whose
 * kind is only known at run time (Sofia-SIP's own lines) through
 * log_limited_shape().  Each kind writes at most `burst` lines per window;
 * the lines held back are counted exactly and summed up in one line,
 *
 *   ... warn: sip: garbage datagram: 1234 more in the last 10 s
 *
 * written when the window has ended: by log_limit_flush() (which the
 * workers' tick and the master's loop call; the management process, which
 * sleeps until a client comes, does not) or, at the latest, before the
 * next line of the same kind.  Nothing is allocated: a site is its own fixed struct,
 * and the shapes live in a small fixed table; kinds beyond it share one
 * overflow limit.
 */
#ifndef B2BUA_LOG_H
#define B2BUA_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

#define LOG_LIMIT_BURST      5        /* lines of one kind per window, by default */
#define LOG_LIMIT_WINDOW_MS  10000    /* the window, by default */
#define LOG_LIMIT_SHAPES     32       /* kinds log_limited_shape() tells apart at once */
#define LOG_LIMIT_SHAPE_LEN  64       /* the first characters of a line that make its shape */

/*
 * One rate-limited kind of line.  Plain data so that a call site can own
 * one without allocating: `static struct log_limit lim = { .what = "..." };`.
 * `what` names the kind in the summary line; `burst` and `window_ms` left
 * at 0 take the process's defaults (log_limit_defaults()).  The other
 * fields are log.c's.
 */
struct log_limit {
	const char *what;
	unsigned burst;
	unsigned window_ms;
	uint64_t window_start_ms;   /* 0: no window open */
	unsigned shown;             /* lines written in this window */
	unsigned held;              /* lines held back in this window: exact */
	enum log_level held_level;  /* the most severe level held back */
	int pending;                /* on the list log_limit_flush() walks */
};

/* Set the role shown in every line ("master", "worker 3", "cli"). Copied. */
void log_set_role(const char *role);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* "error" | "warn" | "info" | "debug". */
const char *log_level_name(enum log_level level);

/* Parse "error" | "warn" | "info" | "debug"; 0 on success, -EINVAL otherwise. */
int log_level_parse(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * log_msg() under the rate limit `lim`: written while the window has room,
 * else counted.  A line below the process's level is neither written nor
 * counted.
 */
void log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * log_msg() for text whose kind is known only once formatted (a library's
 * lines): the kind is the line's shape, its first LOG_LIMIT_SHAPE_LEN
 * characters with every run of digits made one '#', so "received garbage
 * from udp/10.0.0.7:5060" and "... udp/10.0.0.9:41234" are one kind.
 */
void log_limited_shape(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Write the summary of every limit whose window has ended, and close it. */
void log_limit_flush(void);

/*
 * The burst and window of limits that set none, and of shapes (defaults
 * LOG_LIMIT_BURST, LOG_LIMIT_WINDOW_MS); 0 keeps the current value.  The
 * shapes' table is emptied (without summaries), so tests start clean.
 */
void log_limit_defaults(unsigned burst, unsigned window_ms);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
