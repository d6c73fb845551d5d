/*
 * log — see log.h.  Lines are formatted into one buffer and written with a
 * single write(2) so that lines from the master and the workers, which share
 * the same stderr, never interleave mid-line.
 */
#include "b2bua/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "b2bua";
static enum log_level log_level = LOG_INFO;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int saved_errno = errno;

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s[%d] %s: ",
			      (long)(tv.tv_usec / 1000), log_role, (int)getpid(),
			      log_level_names[level]);
	va_start(ap, fmt);
	if (n < sizeof line)
		n += (size_t)vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	if (n >= sizeof line - 1)
		n = sizeof line - 2;	/* truncated: keep the newline */
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved_errno;
}
