/* Progress bar / plain / JSON-lines progress output. */
#include "common/st_progress.h"
#include "common/st_time.h"

#include <string.h>
#include <unistd.h>

void st_progress_init(struct st_progress *p, FILE *out, enum st_progress_mode mode,
		      const char *what)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	if (mode == ST_PROGRESS_AUTO)
		mode = isatty(fileno(out)) ? ST_PROGRESS_TTY : ST_PROGRESS_PLAIN;
	p->mode = mode;
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->started_us = st_mono_us();
	p->interval_us = mode == ST_PROGRESS_TTY ? 100000 : 1000000;
}

char *st_fmt_bytes(double n, char *buf)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	while (n >= 1024 && u < 4)
		n /= 1024, u++;
	snprintf(buf, 16, u ? "%.1f %s" : "%.0f %s", n, units[u]);
	return buf;
}

/* "1234 rows" or, for bytes, "1.2 KiB"; buf needs 48 bytes. */
static char *fmt_amount(double n, const char *unit, char *buf)
{
	if (!strcmp(unit, "bytes"))
		return st_fmt_bytes(n, buf);
	snprintf(buf, 48, "%.0f %s", n, unit);
	return buf;
}

static void fmt_eta(double secs, char *buf, size_t n)
{
	if (secs < 0 || secs > 1e8)
		snprintf(buf, n, "--");
	else if (secs >= 3600)
		snprintf(buf, n, "%dh%02dm", (int)(secs / 3600), (int)(secs / 60) % 60);
	else
		snprintf(buf, n, "%dm%02ds", (int)(secs / 60), (int)secs % 60);
}

void st_progress_update(struct st_progress *p, int64_t done, int64_t total, const char *unit,
			const char *extra, int force)
{
	int64_t now = st_mono_us();
	if (!force && now - p->last_us < p->interval_us)
		return;
	p->last_us = now;
	double el = (now - p->started_us) / 1e6;
	double rate = el > 0 ? done / el : 0;
	double eta = (total > 0 && rate > 0) ? (total - done) / rate : -1;
	char etab[32], db[48], tb[48], rb[48];
	fmt_eta(eta, etab, sizeof(etab));
	switch (p->mode) {
	case ST_PROGRESS_JSON:
		fprintf(p->out,
			"{\"what\":\"%s\",\"done\":%lld,\"total\":%lld,\"unit\":\"%s\","
			"\"rate\":%.1f,\"eta_s\":%.1f,\"elapsed_s\":%.2f,\"note\":\"%s\"}\n",
			p->what, (long long)done, (long long)total, unit, rate, eta, el,
			extra ? extra : "");
		break;
	case ST_PROGRESS_TTY: {
		int width = 30, fill = total > 0 ? (int)(width * (double)done / total) : 0;
		if (fill > width)
			fill = width;
		char bar[64];
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '-', (size_t)(width - fill));
		bar[width] = '\0';
		if (total > 0)
			fprintf(p->out, "\r%s [%s] %3d%% %s of %s  %s/s  ETA %s  %s  ", p->what, bar,
				(int)(100.0 * done / total), fmt_amount(done, unit, db),
				fmt_amount(total, unit, tb), fmt_amount(rate, unit, rb), etab,
				extra ? extra : "");
		else
			fprintf(p->out, "\r%s %s  %s/s  %s  ", p->what, fmt_amount(done, unit, db),
				fmt_amount(rate, unit, rb), extra ? extra : "");
		break;
	}
	default:
		if (total > 0)
			fprintf(p->out, "%s: %s of %s, %s/s, eta %s%s%s\n", p->what,
				fmt_amount(done, unit, db), fmt_amount(total, unit, tb),
				fmt_amount(rate, unit, rb), etab, extra ? ", " : "", extra ? extra : "");
		else
			fprintf(p->out, "%s: %s, %s/s%s%s\n", p->what, fmt_amount(done, unit, db),
				fmt_amount(rate, unit, rb), extra ? ", " : "", extra ? extra : "");
		break;
	}
	fflush(p->out);
}

void st_progress_finish(struct st_progress *p, int64_t done, const char *unit,
			const char *status, const char *extra)
{
	double el = (st_mono_us() - p->started_us) / 1e6;
	double rate = el > 0 ? done / el : 0;
	if (p->mode == ST_PROGRESS_JSON) {
		fprintf(p->out,
			"{\"what\":\"%s\",\"finished\":true,\"status\":\"%s\",\"done\":%lld,"
			"\"unit\":\"%s\",\"rate\":%.1f,\"elapsed_s\":%.2f,\"note\":\"%s\"}\n",
			p->what, status, (long long)done, unit, rate, el, extra ? extra : "");
	} else {
		if (p->mode == ST_PROGRESS_TTY)
			fputc('\n', p->out);
		char db[48], rb[48];
		fprintf(p->out, "%s %s: %s in %.2fs (%s/s)%s%s\n", p->what, status,
			fmt_amount(done, unit, db), el, fmt_amount(rate, unit, rb), extra ? ", " : "",
			extra ? extra : "");
	}
	fflush(p->out);
}
