/* Number parsing from byte ranges (not NUL-terminated, as CSV fields and wire strings are):
 * surrounding whitespace is ignored, anything else that is not the number is an error. */
#ifndef ST_NUM_H
#define ST_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Base-10 signed integer; returns 0, or -1 when malformed or out of range. */
int st_parse_i64(const char *s, size_t len, int64_t *out);
/* strtod syntax; returns 0, or -1 when malformed or overflowing to infinity. */
int st_parse_f64(const char *s, size_t len, double *out);

/* Formats d with the shortest %g precision that reads back to the same double (or, with
 * is_float, the same float); out needs ST_F64_BUFLEN bytes. Returns the length. */
#define ST_F64_BUFLEN 32
int st_format_f64(char *out, double d, int is_float);

#endif
