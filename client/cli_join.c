/* `strata join`: a point-in-time join of a sample file (CSV/TSV with the table's entity
 * column and a ts column) against a table. Output is CSV: the sample columns followed by one
 * column per feature, rows in input order. Rows are streamed through the backend's join in
 * chunks, so memory stays bounded whatever the file size. */
#include "client/cli.h"
#include "store/kv_input.h"

#include <stdlib.h>
#include <string.h>

#define JOIN_CHUNK (1u << 20)

struct join_run {
	struct cli *c;
	struct cli_join *j;
	FILE *out;
	const char **feats;
	size_t nf;
	const char *entity_col, *ts_col;
	long ecol, tcol; /* column indexes, -1 until the header is mapped */
	int header_written;
	int with_status;   /* a FEATURE_status column after each feature */
	int64_t skipped;   /* rows before the retention horizon (--before-horizon skip) */
	/* the chunk's sample columns, already CSV-encoded, one line per row */
	char *pre;
	size_t pre_len;
	FILE *pre_fp;
	size_t *pre_off; /* row i spans pre_off[i]..pre_off[i+1] */
	size_t rows;
	int64_t total;
	struct st_error *err;
	struct kv_input *in;
};

static void write_header(struct join_run *r)
{
	size_t n = kv_input_ncols(r->in);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', r->out);
		const char *name = kv_input_colname(r->in, i);
		st_csv_field(r->out, name, strlen(name));
	}
	for (size_t f = 0; f < r->nf; f++) {
		if (n || f)
			fputc(',', r->out);
		st_csv_field(r->out, r->feats[f], strlen(r->feats[f]));
		if (r->with_status) {
			fputc(',', r->out);
			fprintf(r->out, "%s_status", r->feats[f]);
		}
	}
	fputc('\n', r->out);
	r->header_written = 1;
}

static int flush_chunk(struct join_run *r)
{
	const struct cli_backend *be = &r->c->be;
	if (!r->rows)
		return 0;
	if (be->join_run(r->j, r->err))
		return r->err->code;
	fflush(r->pre_fp);
	ST_ASSERT(be->join_rows(r->j) == r->rows);
	for (size_t i = 0; i < r->rows; i++) {
		fwrite(r->pre + r->pre_off[i], 1, r->pre_off[i + 1] - r->pre_off[i], r->out);
		const struct kv_result *res = be->join_result(r->j, i);
		if (res[0].status == KV_BEFORE_HORIZON)
			r->skipped++;
		for (size_t f = 0; f < r->nf; f++) {
			fputc(',', r->out);
			if (res[f].found)
				cli_value_csv(r->out, &res[f].value);
			if (r->with_status)
				fprintf(r->out, ",%s", kv_status_name(res[f].status));
		}
		fputc('\n', r->out);
	}
	be->join_reset(r->j);
	r->total += (int64_t)r->rows;
	r->rows = 0;
	rewind(r->pre_fp);
	return ferror(r->out) ? st_error_set(r->err, ST_EIO, "writing the output failed") : 0;
}

static int map_header(struct join_run *r)
{
	size_t n = kv_input_ncols(r->in);
	for (size_t i = 0; i < n; i++) {
		const char *name = kv_input_colname(r->in, i);
		if (!strcmp(name, r->entity_col))
			r->ecol = (long)i;
		if (!strcmp(name, r->ts_col))
			r->tcol = (long)i;
	}
	if (r->ecol < 0 || r->tcol < 0)
		return st_error_set(r->err, ST_EINVAL, "%s:1: sample header has no '%s' column",
				    kv_input_path(r->in), r->ecol < 0 ? r->entity_col : r->ts_col);
	write_header(r);
	return 0;
}

static int on_sample(void *arg, struct kv_input *in, const struct kv_record *rec)
{
	struct join_run *r = arg;
	int rc;
	if (!r->header_written && (rc = map_header(r)))
		return rc;
	if (rec->bad)
		return st_error_set(r->err, ST_EINVAL, "%s:%zu: %s", kv_input_path(in), rec->line,
				    rec->bad);
	const char *e = NULL, *tsf = NULL;
	size_t el = 0, tl = 0;
	long pos = ftell(r->pre_fp);
	r->pre_off[r->rows] = (size_t)pos;
	for (size_t i = 0; i < rec->n; i++) {
		if (i)
			fputc(',', r->pre_fp);
		st_csv_field(r->pre_fp, rec->f[i], rec->len[i]);
		if ((long)rec->col[i] == r->ecol)
			e = rec->f[i], el = rec->len[i];
		if ((long)rec->col[i] == r->tcol)
			tsf = rec->f[i], tl = rec->len[i];
	}
	int64_t ts;
	if (!e || !el)
		return st_error_set(r->err, ST_EINVAL, "%s:%zu: empty entity", kv_input_path(in),
				    rec->line);
	if (!tsf || st_ts_parse(tsf, tl, r->c->ts_unit, &ts))
		return st_error_set(r->err, ST_EINVAL, "%s:%zu: bad timestamp '%.*s'",
				    kv_input_path(in), rec->line, tsf ? (int)(tl > 40 ? 40 : tl) : 0,
				    tsf ? tsf : "");
	char why[200];
	if (!r->c->allow_any_ts && st_ts_check_plausible(tsf, tl, r->c->ts_unit, ts, why,
							 sizeof(why)))
		return st_error_set(r->err, ST_EINVAL, "%s:%zu: %s (give --ts-unit, or "
				    "--allow-any-ts)", kv_input_path(in), rec->line, why);
	rc = r->c->be.join_push(r->j, e, el, ts, r->err);
	if (rc < 0) {
		if (rc == ST_ERANGE) /* name the row: the store counts within its chunk */
			st_error_set(r->err, rc, "%s:%zu: sample ts %.*s is before the table's "
				     "retention horizon (--before-horizon skip gives empty cells)",
				     kv_input_path(in), rec->line, (int)(tl > 40 ? 40 : tl), tsf);
		return rc;
	}
	r->rows++;
	r->pre_off[r->rows] = (size_t)ftell(r->pre_fp);
	return rc == 1 ? flush_chunk(r) : 0;
}

int cli_cmd_join(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	const char *table = NULL, *samples = NULL, *features = NULL, *out_path = NULL;
	const char *ts_col = "ts", *known_s = NULL, *fmt_s = "auto", *horizon_s = "error";
	const char *entity_col = NULL;
	int with_status = 0;
	for (int i = 1; i < argc; i++) {
		int r;
		if (!strcmp(argv[i], "--with-status")) {
			with_status = 1;
			continue;
		}
		if ((r = cli_opt(argc, argv, &i, "--samples", &samples)) ||
		    (r = cli_opt(argc, argv, &i, "--features", &features)) ||
		    (r = cli_opt(argc, argv, &i, "--out", &out_path)) ||
		    (r = cli_opt(argc, argv, &i, "--ts-column", &ts_col)) ||
		    (r = cli_opt(argc, argv, &i, "--entity-column", &entity_col)) ||
		    (r = cli_opt(argc, argv, &i, "--known-at", &known_s)) ||
		    (r = cli_opt(argc, argv, &i, "--format", &fmt_s)) ||
		    (r = cli_opt(argc, argv, &i, "--before-horizon", &horizon_s))) {
			if (r < 0)
				return 2;
			continue;
		}
		if (table || argv[i][0] == '-')
			return cli_usage("unexpected argument '%s'", argv[i]);
		table = argv[i];
	}
	if (!table || !samples || !features)
		return cli_usage("usage: join TABLE --samples FILE --features A,B [--out FILE]");
	int64_t known_at = ST_TS_MAX;
	enum kv_format fmt;
	if (known_s && cli_ts(c, "--known-at", known_s, &known_at))
		return 2;
	if (kv_format_parse(fmt_s, &fmt) || fmt == KV_FMT_JSONL)
		return cli_usage("join reads csv or tsv samples");
	int skip = !strcmp(horizon_s, "skip");
	if (!skip && strcmp(horizon_s, "error"))
		return cli_usage("--before-horizon takes skip or error, not '%s'", horizon_s);

	struct join_run r = {.c = c, .ecol = -1, .tcol = -1, .ts_col = ts_col, .err = &err,
			     .with_status = with_status};
	char *flist = strdup(features);
	struct kv_table *t = NULL;
	int rc = 0;
	r.feats = calloc(strlen(features) + 1, sizeof(*r.feats));
	for (char *save, *tok = strtok_r(flist, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		r.feats[r.nf++] = tok;
	r.pre_off = malloc((JOIN_CHUNK + 1) * sizeof(*r.pre_off));
	r.pre_fp = open_memstream(&r.pre, &r.pre_len);
	r.out = out_path ? fopen(out_path, "w") : stdout;
	if (!r.out) {
		fprintf(stderr, "strata: %s: %m\n", out_path);
		rc = 1;
		goto out;
	}
	setvbuf(r.out, NULL, _IOFBF, 1 << 20);
	if (c->be.table_get(c->be.ctx, table, &t, &err) ||
	    c->be.join_open(c->be.ctx, table, r.feats, r.nf, known_at, JOIN_CHUNK, skip, &r.j,
			    &err) ||
	    kv_input_open(strcmp(samples, "-") ? samples : "/dev/stdin", fmt, &r.in, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	r.entity_col = entity_col ? entity_col : t->entity_column;
	int64_t t0 = st_mono_us();
	if (kv_input_run(r.in, on_sample, &r, &err) || flush_chunk(&r)) {
		rc = cli_fail(&err);
		goto out;
	}
	if (!r.header_written)
		write_header(&r); /* header-only sample file */
	double secs = (st_mono_us() - t0) / 1e6;
	fprintf(stderr, "joined %lld row%s x %zu feature%s in %.2fs (%.0f values/s)",
		(long long)r.total, CLI_S(r.total), r.nf, CLI_S(r.nf), secs,
		secs > 0 ? r.total * (double)r.nf / secs : 0);
	if (skip)
		fprintf(stderr, "; %lld row%s before the retention horizon left empty",
			(long long)r.skipped, r.skipped == 1 ? "" : "s");
	fputc('\n', stderr);
out:
	if (r.j)
		c->be.join_free(r.j);
	kv_input_close(r.in);
	if (r.out && r.out != stdout && fclose(r.out) && !rc) {
		fprintf(stderr, "strata: %s: write failed\n", out_path);
		rc = 1;
	}
	if (r.pre_fp)
		fclose(r.pre_fp);
	free(r.pre);
	free(r.pre_off);
	free(r.feats);
	free(flist);
	kv_table_free(t);
	return rc;
}
