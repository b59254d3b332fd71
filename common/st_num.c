/* Number parsing from byte ranges (see st_num.h). */
#include "common/st_num.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies s[0..len) without surrounding whitespace into buf as a C string; -1 if it does not
 * fit or is empty. */
static int trimmed(const char *s, size_t len, char *buf, size_t cap)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (!len || len >= cap)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int st_parse_i64(const char *s, size_t len, int64_t *out)
{
	char buf[32], *end;
	if (trimmed(s, len, buf, sizeof(buf)))
		return -1;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (*end || errno)
		return -1;
	*out = v;
	return 0;
}

int st_parse_f64(const char *s, size_t len, double *out)
{
	char buf[64], *end;
	if (trimmed(s, len, buf, sizeof(buf)))
		return -1;
	errno = 0;
	double v = strtod(buf, &end);
	if (*end || (errno == ERANGE && isinf(v)))
		return -1;
	*out = v;
	return 0;
}

int st_format_f64(char *out, double d, int is_float)
{
	for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
		int n = snprintf(out, ST_F64_BUFLEN, "%.*g", prec, d);
		if (is_float ? (float)strtod(out, NULL) == (float)d : strtod(out, NULL) == d)
			return n;
	}
	return snprintf(out, ST_F64_BUFLEN, "%.17g", d);
}
