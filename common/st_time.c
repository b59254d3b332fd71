/* Timestamp and duration parsing/formatting. Hand-written because strptime() cannot do
 * fractional seconds or numeric zone offsets portably, and this runs per CSV cell. */
#include "common/st_time.h"
#include "common/st_err.h"
#include "common/st_num.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int st_ts_unit_parse(const char *s, enum st_ts_unit *out)
{
	if (!strcmp(s, "s"))
		*out = ST_TS_S;
	else if (!strcmp(s, "ms"))
		*out = ST_TS_MS;
	else if (!strcmp(s, "us"))
		*out = ST_TS_US;
	else
		return ST_EINVAL;
	return 0;
}

const char *st_ts_unit_name(enum st_ts_unit unit)
{
	return unit == ST_TS_S ? "s" : unit == ST_TS_MS ? "ms" : "us";
}

static int plausible(int64_t us)
{
	return us >= ST_TS_PLAUSIBLE_MIN && us < ST_TS_PLAUSIBLE_MAX;
}

int st_ts_check_plausible(const char *s, size_t len, enum st_ts_unit unit, int64_t us,
			  char *why, size_t n)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	int64_t v;
	if (plausible(us) || st_parse_i64(s, len, &v))
		return 0; /* plausible, or an ISO date (its year is what was written) */
	char got[ST_TS_BUFLEN], alt[ST_TS_BUFLEN];
	int w = snprintf(why, n, "integer timestamp %.*s in %s is %s, outside 1990-2200",
			 (int)(len > 24 ? 24 : len), s, st_ts_unit_name(unit),
			 st_ts_format(us, got));
	static const int64_t mul[] = {1000000, 1000, 1};
	for (int u = ST_TS_S; u <= ST_TS_US; u++) {
		int64_t a;
		if (u == (int)unit || __builtin_mul_overflow(v, mul[u], &a) || !plausible(a))
			continue;
		if (w >= 0 && (size_t)w < n)
			snprintf(why + w, n - (size_t)w, "; as %s it is %s",
				 st_ts_unit_name((enum st_ts_unit)u), st_ts_format(a, alt));
		break;
	}
	return ST_EINVAL;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *p; returns -1 if they are not all digits. */
static int digits(const char **p, const char *end, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (*p >= end || !isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

static int parse_int_ts(const char *s, size_t len, enum st_ts_unit unit, int64_t *out)
{
	int64_t v;
	if (st_parse_i64(s, len, &v))
		return ST_EINVAL;
	int64_t mul = unit == ST_TS_S ? 1000000 : unit == ST_TS_MS ? 1000 : 1;
	if (__builtin_mul_overflow((int64_t)v, mul, out))
		return ST_EINVAL;
	return 0;
}

int st_ts_parse(const char *s, size_t len, enum st_ts_unit unit, int64_t *out_us)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	/* A bare integer (optionally signed) is in `unit`; ISO dates have '-' after 4 digits. */
	if (len && (len < 5 || s[4] != '-'))
		return parse_int_ts(s, len, unit, out_us);
	const char *p = s, *end = s + len;
	int y = digits(&p, end, 4);
	if (y < 0 || p >= end || *p++ != '-')
		return ST_EINVAL;
	int mo = digits(&p, end, 2);
	if (mo < 1 || mo > 12 || p >= end || *p++ != '-')
		return ST_EINVAL;
	int d = digits(&p, end, 2);
	if (d < 1 || d > 31)
		return ST_EINVAL;
	int h = 0, mi = 0, se = 0;
	int64_t frac = 0, offset_s = 0;
	if (p < end) {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return ST_EINVAL;
		p++;
		h = digits(&p, end, 2);
		if (h < 0 || h > 23 || p >= end || *p++ != ':')
			return ST_EINVAL;
		mi = digits(&p, end, 2);
		if (mi < 0 || mi > 59)
			return ST_EINVAL;
		if (p < end && *p == ':') {
			p++;
			se = digits(&p, end, 2);
			if (se < 0 || se > 60)
				return ST_EINVAL;
			if (p < end && (*p == '.' || *p == ',')) {
				p++;
				int n = 0;
				while (p < end && isdigit((unsigned char)*p)) {
					if (n < 6)
						frac = frac * 10 + (*p - '0');
					n++, p++;
				}
				if (n == 0)
					return ST_EINVAL;
				for (; n < 6; n++)
					frac *= 10;
			}
		}
		if (p < end && (*p == 'Z' || *p == 'z')) {
			p++;
		} else if (p < end && (*p == '+' || *p == '-')) {
			int sign = *p++ == '-' ? -1 : 1;
			int oh = digits(&p, end, 2);
			if (oh < 0 || oh > 23)
				return ST_EINVAL;
			if (p < end && *p == ':')
				p++;
			int om = digits(&p, end, 2);
			if (om < 0 || om > 59)
				return ST_EINVAL;
			offset_s = sign * (oh * 3600 + om * 60);
		}
	}
	if (p != end)
		return ST_EINVAL;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset_s;
	*out_us = secs * 1000000 + frac;
	return 0;
}

char *st_ts_format(int64_t us, char *buf)
{
	int64_t secs = us / 1000000, rem = us % 1000000;
	if (rem < 0)
		rem += 1000000, secs -= 1;
	time_t t = (time_t)secs;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, ST_TS_BUFLEN, "%lld", (long long)us);
		return buf;
	}
	size_t n = strftime(buf, ST_TS_BUFLEN, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rem)
		snprintf(buf + n, ST_TS_BUFLEN - n, ".%06lldZ", (long long)rem);
	else
		snprintf(buf + n, ST_TS_BUFLEN - n, "Z");
	return buf;
}

int st_dur_parse(const char *s, int64_t *out_us)
{
	if (!strcmp(s, "none") || !strcmp(s, "inf") || !strcmp(s, "0")) {
		*out_us = 0;
		return 0;
	}
	int64_t total = 0;
	const char *p = s;
	if (!*p)
		return ST_EINVAL;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return ST_EINVAL;
		int64_t v = 0;
		while (isdigit((unsigned char)*p)) {
			if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
				return ST_EINVAL;
			p++;
		}
		int64_t mul;
		if (!*p) mul = 1000000; /* bare number: seconds */
		else if (!strncmp(p, "us", 2)) mul = 1, p += 2;
		else if (!strncmp(p, "ms", 2)) mul = 1000, p += 2;
		else if (*p == 's') mul = 1000000, p++;
		else if (*p == 'm') mul = 60000000LL, p++;
		else if (*p == 'h') mul = 3600000000LL, p++;
		else if (*p == 'd') mul = 86400000000LL, p++;
		else if (*p == 'w') mul = 7 * 86400000000LL, p++;
		else return ST_EINVAL;
		if (__builtin_mul_overflow(v, mul, &v) || __builtin_add_overflow(total, v, &total))
			return ST_EINVAL;
	}
	*out_us = total;
	return 0;
}

char *st_dur_format(int64_t us, char *buf)
{
	static const struct { int64_t us; const char *u; } units[] = {
		{86400000000LL, "d"}, {3600000000LL, "h"}, {60000000LL, "m"},
		{1000000, "s"}, {1000, "ms"}, {1, "us"},
	};
	if (us <= 0) {
		strcpy(buf, "0");
		return buf;
	}
	size_t n = 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && us; i++) {
		if (us >= units[i].us) {
			n += (size_t)snprintf(buf + n, 32 - n, "%lld%s", (long long)(us / units[i].us),
					      units[i].u);
			us %= units[i].us;
		}
	}
	return buf;
}

int64_t st_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t st_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
