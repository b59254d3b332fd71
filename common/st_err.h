/* Project-wide error codes and an error record carrying a human message.
 * Codes live in [-30999, -30900], a range that never collides with negative errno values,
 * so a function may return either (LMDB-style) and callers can tell them apart. */
#ifndef ST_ERR_H
#define ST_ERR_H

#include <stdarg.h>

enum st_code {
	ST_OK = 0,
	ST_ERR_FIRST = -30999,
	ST_EINVAL = ST_ERR_FIRST, /* malformed argument or input */
	ST_ENOTFOUND,             /* no such table, feature, job, entry */
	ST_EEXIST,                /* already exists */
	ST_ETYPE,                 /* value does not match the schema type */
	ST_EIO,                   /* storage failure (RocksDB, file system) */
	ST_ECORRUPT,              /* on-disk data failed a check */
	ST_ECANCELED,             /* operation cancelled */
	ST_ENOMEM,                /* allocation failed */
	ST_ELIMIT,                /* a configured limit was exceeded */
	ST_EBUSY,                 /* resource in use */
	ST_EPROTO,                /* malformed wire frame or stream */
	ST_EAUTH,                 /* authentication failed */
	ST_ECLOSED,               /* connection or handle closed */
	ST_ERANGE,                /* time outside what is kept (before a retention horizon) */
	ST_ESTALE,                /* a replica is further behind than the read allows */
	ST_EUNAVAIL,              /* no node could be reached; a write's outcome is unknown */
	ST_ERR_LAST
};

/* An error record: code plus a message that says what was wrong and where.
 * Functions that take a `struct st_error *` fill it on failure (it may be NULL). */
struct st_error {
	int code;
	char msg[512];
};

/* Short name of a code ("invalid argument"); for errno values, strerror(). Never NULL. */
const char *st_strerror(int code);

/* Fills err (if non-NULL) with code and a printf-style message; returns code. */
int st_error_set(struct st_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (e.g. a file:line location); returns err->code. */
int st_error_prefix(struct st_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void st_error_clear(struct st_error *err);

/* Always-on assertion with file and line; for invariants, not for input validation. */
#define ST_ASSERT(cond)                                                                  \
	do {                                                                             \
		if (__builtin_expect(!(cond), 0))                                        \
			st_assert_fail(#cond, __FILE__, __LINE__, __func__);             \
	} while (0)
__attribute__((noreturn)) void st_assert_fail(const char *expr, const char *file, int line,
					      const char *func);

#endif
