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
	char etab[32];
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
			fprintf(p->out, "\r%s [%s] %3d%% %lld/%lld %s  %.0f/s  ETA %s  %s  ",
				p->what, bar, (int)(100.0 * done / total), (long long)done,
				(long long)total, unit, rate, etab, extra ? extra : "");
		else
			fprintf(p->out, "\r%s %lld %s  %.0f/s  %s  ", p->what, (long long)done,
				unit, rate, extra ? extra : "");
		break;
	}
	default:
		if (total > 0)
			fprintf(p->out, "%s: %lld/%lld %s, %.0f %s/s, eta %s%s%s\n", p->what,
				(long long)done, (long long)total, unit, rate, unit, etab,
				extra ? ", " : "", extra ? extra : "");
		else
			fprintf(p->out, "%s: %lld %s, %.0f %s/s%s%s\n", p->what, (long long)done,
				unit, rate, unit, extra ? ", " : "", extra ? extra : "");
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
		fprintf(p->out, "%s %s: %lld %s in %.2fs (%.0f %s/s)%s%s\n", p->what, status,
			(long long)done, unit, el, rate, unit, extra ? ", " : "", extra ? extra : "");
	}
	fflush(p->out);
}
