/* Small helpers shared by unit tests: a seedable generator (xorshift64, so a failing seed
 * replays exactly) and recursive removal of a test's temp directory. Header-only. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* Advances *state (never 0) and returns the new value. */
static inline uint64_t tu_xorshift(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

static inline int tu_rm_cb(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s;
	(void)f;
	(void)w;
	return remove(p);
}

/* Removes the directory tree d (missing is fine). */
static inline void tu_rm_rf(const char *d)
{
	nftw(d, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
