/* Timestamps (microseconds since the Unix epoch, int64) and durations: parse and format. */
#ifndef ST_TIME_H
#define ST_TIME_H

#include <stddef.h>
#include <stdint.h>

#define ST_TS_MIN INT64_MIN
#define ST_TS_MAX INT64_MAX

/* Unit of bare integer timestamps. */
enum st_ts_unit { ST_TS_S, ST_TS_MS, ST_TS_US };

/* Parses "s", "ms" or "us"; returns 0 or ST_EINVAL. */
int st_ts_unit_parse(const char *s, enum st_ts_unit *out);

/* Parses ISO-8601 ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.123456+02:00",
 * "2026-11-01" for midnight UTC; a missing zone means UTC) or an integer in `unit`.
 * `len` bytes of s are read (s need not be NUL-terminated). Returns 0 or ST_EINVAL. */
int st_ts_parse(const char *s, size_t len, enum st_ts_unit unit, int64_t *out_us);

/* The plausibility guard for integer timestamps: an integer that lands outside 1990..2200 in
 * its unit is almost always a unit mistake (seconds read as ms give 1970-01-21, microseconds
 * read as ms give year 57805) and would make values unreadable or forever "latest".
 * Returns 0 when s is not a bare integer or us is plausible; otherwise ST_EINVAL with a message
 * in why (n bytes) naming the date it gives and the unit that would make it plausible. */
#define ST_TS_PLAUSIBLE_MIN 631152000000000LL  /* 1990-01-01T00:00:00Z */
#define ST_TS_PLAUSIBLE_MAX 7258118400000000LL /* 2200-01-01T00:00:00Z */
int st_ts_check_plausible(const char *s, size_t len, enum st_ts_unit unit, int64_t us,
			  char *why, size_t n);

/* Name of a unit: "s", "ms" or "us". */
const char *st_ts_unit_name(enum st_ts_unit unit);

/* Formats as "2026-11-01T10:00:00Z", with ".ffffff" only when there are microseconds.
 * buf needs ST_TS_BUFLEN bytes. Returns buf. */
#define ST_TS_BUFLEN 40
char *st_ts_format(int64_t us, char *buf);

/* Parses a duration: "30d", "12h", "15m", "90s", "250ms", "10us", "1w", or a bare number
 * of seconds; "0" or "none"/"inf" give 0 (meaning: no limit). Returns 0 or ST_EINVAL. */
int st_dur_parse(const char *s, int64_t *out_us);

/* Formats a duration compactly ("30d", "1h30m", "0"). buf needs 32 bytes. */
char *st_dur_format(int64_t us, char *buf);

/* Wall clock and monotonic clock in microseconds. */
int64_t st_now_us(void);
int64_t st_mono_us(void);

#endif
