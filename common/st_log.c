/* Logging: "2026-11-25T10:00:00.123Z INFO message" lines; one write() per record. */
#include "common/st_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static enum st_log_level st_level = ST_LOG_INFO;

void st_log_set_level(enum st_log_level level)
{
	st_level = level;
}

void st_log(enum st_log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	if (level < st_level)
		return;
	char buf[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
		      names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (m < 0) ? n : (n + m >= (int)sizeof(buf) - 1 ? (int)sizeof(buf) - 2 : n + m);
	buf[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
	(void)w;
}
