/*
 * log — one line per event, to stderr (the master's stderr is the daemon's
 * log; workers inherit it).  Each line carries a timestamp, the process role
 * ("master", "worker 2") and the level, so one file tells the whole story:
 *
 *   2026-11-25T19:20:01.123Z master[4242] info: worker 1 (pid 4250) started
 *
 * The level is global per process and set from the config (log_level).
 */
#ifndef B2BUA_LOG_H
#define B2BUA_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

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

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
