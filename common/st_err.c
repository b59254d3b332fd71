/* Error codes, messages and assertion failure reporting. */
#include "common/st_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const st_names[ST_ERR_LAST - ST_ERR_FIRST] = {
	"invalid argument", "not found", "already exists", "type mismatch", "I/O error",
	"corruption", "cancelled", "out of memory", "limit exceeded", "busy",
	"protocol error", "authentication failed", "closed", "out of range", "replica too stale", "unavailable",
};

const char *st_strerror(int code)
{
	if (code == 0)
		return "ok";
	if (code >= ST_ERR_FIRST && code < ST_ERR_LAST)
		return st_names[code - ST_ERR_FIRST];
	if (code < 0 && code > -4096)
		return strerror(-code);
	return "unknown error";
}

int st_error_set(struct st_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int st_error_prefix(struct st_error *err, const char *fmt, ...)
{
	if (!err)
		return ST_EINVAL;
	char pre[256], old[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is acceptable for a message; build it piecewise to say so explicitly. */
	size_t n = strnlen(pre, sizeof(err->msg) - 3);
	memcpy(err->msg, pre, n);
	memcpy(err->msg + n, ": ", 2);
	n += 2;
	size_t m = strnlen(old, sizeof(err->msg) - n - 1);
	memcpy(err->msg + n, old, m);
	err->msg[n + m] = '\0';
	return err->code;
}

void st_error_clear(struct st_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

void st_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "assertion failed: %s (%s:%d in %s)\n", expr, file, line, func);
	abort();
}
