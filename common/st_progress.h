/* Progress reporting for long operations (preload, rmr, resync, backup): a redrawn bar on a
 * terminal, plain lines when not a terminal, or one JSON object per line with --json. */
#ifndef ST_PROGRESS_H
#define ST_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

enum st_progress_mode { ST_PROGRESS_AUTO, ST_PROGRESS_TTY, ST_PROGRESS_PLAIN, ST_PROGRESS_JSON };

struct st_progress {
	FILE *out;                 /* not owned */
	enum st_progress_mode mode; /* AUTO resolved at init */
	char what[64];             /* label, e.g. "preload job 3" */
	int64_t started_us;        /* monotonic */
	int64_t last_us;           /* last draw, monotonic */
	int64_t interval_us;       /* minimum time between draws */
};

/* Formats a byte count as "94.3 MiB" (B, KiB, MiB, GiB, TiB); buf needs 16 bytes. */
char *st_fmt_bytes(double n, char *buf);

/* Resolves AUTO from isatty(fileno(out)). */
void st_progress_init(struct st_progress *p, FILE *out, enum st_progress_mode mode,
		      const char *what);

/* Draws if the interval has passed (or force). done/total in `unit` ("rows", "files",
 * "bytes"); total <= 0 means unknown. `extra` (may be NULL) is a short note shown after the
 * numbers, e.g. "120000 rows", and as "note" in JSON. */
void st_progress_update(struct st_progress *p, int64_t done, int64_t total, const char *unit,
			const char *extra, int force);

/* Ends the bar (newline on a terminal) and prints a summary line, or a JSON object with
 * "finished":true. `status` is e.g. "done" or "failed". */
void st_progress_finish(struct st_progress *p, int64_t done, const char *unit,
			const char *status, const char *extra);

#endif
