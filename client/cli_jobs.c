/* `strata preload` and `strata jobs`. Embedded, the job runs in this process (nothing else
 * has the store open) while the main thread shows progress; remotely, stratad runs it and
 * --wait polls its status. */
#include "client/cli.h"
#include "common/st_progress.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int terminal(enum kv_job_state s)
{
	return s == KV_JOB_DONE || s == KV_JOB_FAILED || s == KV_JOB_CANCELLED;
}

/* What of the file is visible: all of it once done, none before; a job that fails while
 * ingesting rolls back the shards it had ingested (store/kv_preload.c). */
static const char *job_ingested(const struct kv_job_info *j)
{
	return j->state == KV_JOB_DONE ? "all" : "none";
}

static double job_bytes_per_s(const struct kv_job_info *j)
{
	int64_t end = j->finished_us ? j->finished_us : st_now_us();
	double secs = j->started_us ? (end - j->started_us) / 1e6 : 0;
	return secs > 0 ? j->bytes_done / secs : 0;
}

static json_t *job_json(const struct kv_job_info *j)
{
	char sb[ST_TS_BUFLEN], fb[ST_TS_BUFLEN];
	json_t *bad = json_array();
	for (int i = 0; i < KV_JOB_BAD_SAMPLES && j->bad_samples[i][0]; i++)
		json_array_append_new(bad, json_string(j->bad_samples[i]));
	json_t *o = json_pack(
		"{s:I,s:s,s:b,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:i,s:s,s:s,s:o}", "id",
		(json_int_t)j->id, "state", kv_job_state_name(j->state), "interrupted",
		j->interrupted, "phase", j->phase, "table", j->req.table, "file", j->req.path,
		"rows", (json_int_t)j->rows, "cells", (json_int_t)j->cells, "bad_rows",
		(json_int_t)j->bad_rows, "bytes_done", (json_int_t)j->bytes_done, "bytes_total",
		(json_int_t)j->bytes_total, "rows_per_s", j->rows_per_s, "eta_s", j->eta_s,
		"attempts", j->attempts, "started",
		j->started_us ? st_ts_format(j->started_us, sb) : "", "finished",
		j->finished_us ? st_ts_format(j->finished_us, fb) : "", "bad_samples", bad);
	json_object_set_new(o, "bytes_per_s", json_real(job_bytes_per_s(j)));
	json_object_set_new(o, "ingested", json_string(job_ingested(j)));
	if (j->error[0])
		json_object_set_new(o, "error", json_string(j->error));
	return o;
}

static void job_print_line(const struct kv_job_info *j)
{
	char state[32];
	snprintf(state, sizeof(state), "%s%s", kv_job_state_name(j->state),
		 j->interrupted ? "*" : "");
	printf("%-6llu %-11s %-8s %-20s %12lld %8lld %10.0f  %s%s%s\n", (unsigned long long)j->id,
	       state, j->phase, j->req.table, (long long)j->rows, (long long)j->bad_rows,
	       j->rows_per_s, j->req.path, j->error[0] ? "  error: " : "", j->error);
}

static void job_print_detail(const struct kv_job_info *j)
{
	char sb[ST_TS_BUFLEN], fb[ST_TS_BUFLEN], bd[16], bt[16], br[16];
	printf("job %llu\n  state: %s%s\n  phase: %s\n  table: %s\n  file: %s\n  rows: %lld\n"
	       "  cells: %lld\n  bad rows: %lld\n  bytes: %s of %s (%s/s)\n  rate: %.0f rows/s\n"
	       "  attempts: %d\n  started: %s\n  finished: %s\n",
	       (unsigned long long)j->id, kv_job_state_name(j->state),
	       j->interrupted ? " (interrupted: resumes when stratad or `strata jobs resume` "
				"opens the store)" : "",
	       j->phase, j->req.table, j->req.path, (long long)j->rows, (long long)j->cells,
	       (long long)j->bad_rows, st_fmt_bytes((double)j->bytes_done, bd),
	       st_fmt_bytes((double)j->bytes_total, bt), st_fmt_bytes(job_bytes_per_s(j), br),
	       j->rows_per_s, j->attempts, j->started_us ? st_ts_format(j->started_us, sb) : "-",
	       j->finished_us ? st_ts_format(j->finished_us, fb) : "-");
	if (j->error[0])
		printf("  error: %s\n", j->error);
	if (j->state == KV_JOB_FAILED || j->state == KV_JOB_CANCELLED)
		printf("  ingested: nothing (the table is unchanged)\n");
	for (int i = 0; i < KV_JOB_BAD_SAMPLES && j->bad_samples[i][0]; i++)
		printf("  bad row: %s\n", j->bad_samples[i]);
}

struct runner {
	struct cli *c;
	struct st_error err;
	int rc;
	volatile int finished;
};

static void *run_pending_main(void *arg)
{
	struct runner *r = arg;
	r->rc = r->c->be.jobs_run_pending(r->c->be.ctx, &r->err);
	__atomic_store_n(&r->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { interrupted = sig; }

/* Ctrl-C while following: the job is not ours to stop. Remotely it keeps running on the
 * server; embedded it stops with this process and resumes on the next `jobs resume`. */
static int stop_following(const struct cli *c, uint64_t id)
{
	if (c->remote) {
		fprintf(stderr, "\nstrata: stopped waiting; job %llu keeps running on the server.\n"
				"  follow it: strata jobs %llu --wait    cancel it: strata jobs cancel "
				"%llu\n",
			(unsigned long long)id, (unsigned long long)id, (unsigned long long)id);
		return 130;
	}
	fprintf(stderr, "\nstrata: job %llu interrupted; nothing of it is visible yet. "
			"`strata --data-dir DIR jobs resume` runs it again.\n",
		(unsigned long long)id);
	_exit(130); /* the job record stays "running": the next open resumes it */
}

/* The end of a job in words: a failed or cancelled one says what was ingested. */
static void job_summary_error(const struct kv_job_info *j)
{
	fprintf(stderr, "strata: job %llu %s: %s\n  nothing was ingested: the table is unchanged\n",
		(unsigned long long)j->id, kv_job_state_name(j->state),
		j->error[0] ? j->error : "interrupted before it finished");
}

static void print_json_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	puts(s ? s : "null");
	fflush(stdout);
	free(s);
	json_decref(o);
}

/* Follows job `id` until it ends, showing progress if `show` (json: one job object per
 * second on stdout, the last one with "finished":true); prints the summary. In embedded
 * mode runs the pending jobs in a thread meanwhile. */
static int follow_job(struct cli *c, uint64_t id, int show, int json)
{
	struct runner r = {.c = c};
	pthread_t th;
	int threaded = !c->remote && c->be.jobs_run_pending;
	if (threaded && pthread_create(&th, NULL, run_pending_main, &r)) {
		fprintf(stderr, "strata: cannot start the job thread\n");
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_sigint}, old;
	sigaction(SIGINT, &sa, &old);
	char what[64], extra[128];
	snprintf(what, sizeof(what), "preload job %llu", (unsigned long long)id);
	struct st_progress p;
	st_progress_init(&p, stderr, ST_PROGRESS_AUTO, what);
	struct kv_job_info j;
	struct st_error err = {0};
	int rc = 0;
	int64_t last_json = 0;
	for (;;) {
		if (interrupted)
			return stop_following(c, id);
		if ((rc = c->be.job_get(c->be.ctx, id, &j, &err)))
			break;
		snprintf(extra, sizeof(extra), "%lld row%s, %.0f rows/s, %s", (long long)j.rows,
			 CLI_S(j.rows), j.rows_per_s, j.phase);
		if (terminal(j.state) || (threaded && __atomic_load_n(&r.finished, __ATOMIC_ACQUIRE) &&
					  !terminal(j.state)))
			break;
		if (show && json && st_mono_us() - last_json >= 1000000) {
			last_json = st_mono_us();
			print_json_line(job_json(&j));
		} else if (show && !json) {
			st_progress_update(&p, j.bytes_done, j.bytes_total, "bytes", extra, 0);
		}
		usleep(100 * 1000);
	}
	if (threaded) {
		pthread_join(th, NULL);
		if (!rc)
			rc = c->be.job_get(c->be.ctx, id, &j, &err);
	}
	sigaction(SIGINT, &old, NULL);
	if (rc)
		return cli_fail(&err);
	snprintf(extra, sizeof(extra), "%lld row%s, %lld cell%s, %lld bad row%s",
		 (long long)j.rows, CLI_S(j.rows), (long long)j.cells, CLI_S(j.cells),
		 (long long)j.bad_rows, CLI_S(j.bad_rows));
	if (json) {
		json_t *o = job_json(&j);
		json_object_set_new(o, "finished", json_true());
		print_json_line(o);
	} else if (show) {
		st_progress_finish(&p, j.bytes_total, "bytes", kv_job_state_name(j.state), extra);
	} else {
		printf("job %llu %s: %s\n", (unsigned long long)id, kv_job_state_name(j.state), extra);
	}
	for (int i = 0; !json && i < KV_JOB_BAD_SAMPLES && j.bad_samples[i][0]; i++)
		fprintf(stderr, "  skipped %s\n", j.bad_samples[i]);
	if (j.state != KV_JOB_DONE) {
		job_summary_error(&j);
		return 1;
	}
	return 0;
}

/* `preload TABLE -`: stdin is copied to a file the job can read (the server reads files by
 * path, and a job must be able to re-read its input when it resumes). */
static int spool_stdin(enum kv_format fmt, char *path, size_t n)
{
	const char *dir = getenv("TMPDIR");
	const char *sfx = fmt == KV_FMT_TSV ? ".tsv" : fmt == KV_FMT_JSONL ? ".jsonl" : ".csv";
	snprintf(path, n, "%s/strata-stdin-XXXXXX%s", dir && dir[0] ? dir : "/tmp", sfx);
	int fd = mkstemps(path, (int)strlen(sfx));
	if (fd < 0) {
		fprintf(stderr, "strata: %s: %m\n", path);
		return 1;
	}
	fchmod(fd, 0644); /* stratad may run as another user */
	char buf[1 << 16];
	ssize_t got;
	while ((got = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < got;) {
			ssize_t w = write(fd, buf + off, (size_t)(got - off));
			if (w < 0) {
				got = -1;
				break;
			}
			off += w;
		}
	if (got < 0 || close(fd)) {
		fprintf(stderr, "strata: copying stdin to %s: %m\n", path);
		unlink(path);
		return 1;
	}
	return 0;
}

int cli_cmd_preload(struct cli *c, int argc, char **argv)
{
	struct kv_preload_req req;
	kv_preload_req_init(&req);
	req.ts_unit = c->ts_unit;
	req.allow_any_ts = c->allow_any_ts;
	const char *pos[2] = {0}, *fmt = NULL, *tscol = NULL;
	int npos = 0, wait = 0, json = 0;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = cli_opt(argc, argv, &i, "--format", &fmt)) ||
		    (r = cli_opt(argc, argv, &i, "--ts-column", &tscol))) {
			if (r < 0)
				return 2;
		} else if (!strcmp(argv[i], "--skip-bad-rows")) {
			req.skip_bad_rows = 1;
		} else if (!strcmp(argv[i], "--wait")) {
			wait = 1;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (npos < 2 && (argv[i][0] != '-' || !strcmp(argv[i], "-"))) {
			pos[npos++] = argv[i];
		} else {
			return cli_usage("unexpected argument '%s'", argv[i]);
		}
	}
	if (npos != 2)
		return cli_usage("usage: preload TABLE FILE|- [--format csv|tsv|jsonl] "
				 "[--skip-bad-rows] [--wait]");
	if (fmt && kv_format_parse(fmt, &req.format))
		return cli_usage("--format must be csv, tsv or jsonl");
	if (tscol)
		snprintf(req.ts_column, sizeof(req.ts_column), "%s", tscol);
	snprintf(req.table, sizeof(req.table), "%s", pos[0]);
	char abs[PATH_MAX], spooled[PATH_MAX] = "";
	if (!strcmp(pos[1], "-")) {
		if (spool_stdin(req.format, spooled, sizeof(spooled)))
			return 1;
		snprintf(abs, sizeof(abs), "%s", spooled);
		wait = 1; /* the spooled copy is removed when the job ends */
	} else if (!realpath(pos[1], abs)) {
		fprintf(stderr, "strata: %s: %m\n", pos[1]);
		return 1;
	}
	snprintf(req.path, sizeof(req.path), "%s", abs);
	struct st_error err = {0};
	uint64_t id;
	int rc;
	if (c->be.preload_submit(c->be.ctx, &req, &id, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	if (json && c->remote && !wait)
		printf("{\"id\":%llu,\"state\":\"queued\"}\n", (unsigned long long)id);
	else if (!json)
		printf("job %llu submitted\n", (unsigned long long)id);
	fflush(stdout);
	if (c->remote && !wait)
		return 0;
	rc = follow_job(c, id, wait, json);
out:
	if (spooled[0] && rc != 130) /* 130: still running remotely, still reading it */
		unlink(spooled);
	return rc;
}

int cli_cmd_jobs(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	int json = 0, wait = 0;
	const char *pos[2] = {0};
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (argv[i][0] == '-')
			return cli_usage("unknown option '%s'", argv[i]);
		else if (npos < 2)
			pos[npos++] = argv[i];
		else
			return cli_usage("unexpected argument '%s'", argv[i]);
	}
	if (npos >= 1 && !strcmp(pos[0], "cancel")) {
		if (npos != 2)
			return cli_usage("usage: jobs cancel ID");
		if (c->be.job_cancel(c->be.ctx, strtoull(pos[1], NULL, 10), &err))
			return cli_fail(&err);
		printf("cancel requested for job %s\n", pos[1]);
		return 0;
	}
	if (npos >= 1 && !strcmp(pos[0], "resume")) {
		if (c->remote || !c->be.jobs_run_pending)
			return cli_usage("jobs resume is for embedded mode; stratad resumes jobs itself");
		struct kv_job_info *js;
		size_t n;
		if (c->be.job_list(c->be.ctx, &js, &n, &err))
			return cli_fail(&err);
		int rc = 0, any = 0;
		for (size_t k = n; k-- > 0;) /* oldest first, the order they run in */
			if (!terminal(js[k].state)) {
				any = 1;
				rc |= follow_job(c, js[k].id, 1, json);
			}
		free(js);
		if (!any)
			printf("no interrupted jobs\n");
		return rc;
	}
	if (npos == 1) {
		char *end;
		uint64_t id = strtoull(pos[0], &end, 10);
		if (*end)
			return cli_usage("jobs wants an id, 'cancel ID' or 'resume'");
		if (wait)
			return follow_job(c, id, 1, json);
		struct kv_job_info j;
		if (c->be.job_get(c->be.ctx, id, &j, &err))
			return cli_fail(&err);
		if (json) {
			json_t *o = job_json(&j);
			char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			puts(s);
			free(s);
			json_decref(o);
		} else {
			job_print_detail(&j);
		}
		return 0;
	}
	struct kv_job_info *js;
	size_t n;
	if (c->be.job_list(c->be.ctx, &js, &n, &err))
		return cli_fail(&err);
	json_t *arr = json ? json_array() : NULL;
	if (!json && n)
		printf("%-6s %-11s %-8s %-20s %12s %8s %10s  %s\n", "ID", "STATE", "PHASE", "TABLE",
		       "ROWS", "BAD", "ROWS/S", "FILE");
	for (size_t k = 0; k < n; k++) {
		if (arr)
			json_array_append_new(arr, job_json(&js[k]));
		else
			job_print_line(&js[k]);
	}
	if (arr) {
		char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(arr);
	} else if (n == 0) {
		printf("no jobs (start one: strata preload TABLE FILE)\n");
	} else if (!c->remote) {
		for (size_t k = 0; k < n; k++)
			if (js[k].interrupted) {
				printf("* interrupted: resumes when stratad or `strata jobs resume` "
				       "opens the store\n");
				break;
			}
	}
	free(js);
	return 0;
}
