/* The CLI's remote backend: the cli_backend table (kv_* semantics) implemented over libstrata,
 * so `strata --addr HOST:PORT <cmd>` gives the same commands and output as embedded mode. */
#include "client/cli_backend.h"

#include <stdlib.h>
#include <string.h>

#include "client/strata.h"

_Static_assert((int)STRATA_I64LIST == (int)KV_I64LIST && (int)STRATA_STR == (int)KV_STR,
	       "value type numbers are shared by the store, the wire and libstrata");
_Static_assert(STRATA_NAME_MAX == KV_NAME_MAX, "name limits must agree");

static int rm_err(const struct strata_error *se, int rc, struct st_error *err)
{
	return st_error_set(err, rc, "%s", se->msg[0] ? se->msg : st_strerror(rc));
}

static void rm_close(void *ctx)
{
	strata_close(ctx);
}

static void rm_value_in(const struct kv_value *v, struct strata_value *out)
{
	memset(out, 0, sizeof(*out));
	out->type = (enum strata_type)v->type;
	out->len = v->len;
	out->i64 = v->i64;
	if (v->type == KV_F64)
		out->f64 = v->f64;
	else if (v->type == KV_F32)
		out->f32 = v->f32;
	out->ptr = v->ptr;
}

/* Moves a libstrata result into a kv result (the value buffer changes owner; both sides
 * free it with free()). */
void cli_remote_result_view(const struct strata_result *in, struct kv_result *out)
{
	memset(out, 0, sizeof(*out));
	out->found = in->found;
	out->status = (enum kv_status)in->status;
	out->ts = in->ts;
	out->ingest_us = in->ingest_us;
	out->value.type = (enum kv_type)in->value.type;
	out->value.len = in->value.len;
	if (in->value.type == STRATA_F64)
		out->value.f64 = in->value.f64;
	else if (in->value.type == STRATA_F32)
		out->value.f32 = in->value.f32;
	else
		out->value.i64 = in->value.i64;
	out->value.ptr = in->value.ptr;
}

void cli_remote_result_out(struct strata_result *in, struct kv_result *out)
{
	cli_remote_result_view(in, out);
	in->value.ptr = NULL;
}

static void rm_table_out(const struct strata_table *in, struct kv_table *out)
{
	memcpy(out->name, in->name, KV_NAME_MAX);
	memcpy(out->entity_column, in->entity_column, KV_NAME_MAX);
	out->id = in->id;
	out->ttl_us = in->ttl_us;
	out->max_versions = in->max_versions;
	out->retention_us = in->retention_us;
	out->created_us = in->created_us;
	out->nfeatures = in->nfeatures;
	for (uint32_t i = 0; i < in->nfeatures; i++) {
		memcpy(out->features[i].name, in->features[i].name, KV_NAME_MAX);
		out->features[i].type = (enum kv_type)in->features[i].type;
		out->features[i].dim = in->features[i].dim;
		out->features[i].id = in->features[i].id;
		out->features[i].ttl_us = in->features[i].ttl_us;
	}
}

static struct kv_table *rm_table_new(const struct strata_table *in)
{
	struct kv_table *t = calloc(1, sizeof(*t));
	if (!t || !(t->features = calloc(in->nfeatures + 1, sizeof(*t->features)))) {
		free(t);
		return NULL;
	}
	rm_table_out(in, t);
	return t;
}

static int rm_table_create(void *ctx, const struct kv_table *schema, struct st_error *err)
{
	struct strata_table t = {0};
	memcpy(t.name, schema->name, KV_NAME_MAX);
	memcpy(t.entity_column, schema->entity_column, KV_NAME_MAX);
	t.ttl_us = schema->ttl_us;
	t.max_versions = schema->max_versions;
	t.retention_us = schema->retention_us;
	t.nfeatures = schema->nfeatures;
	t.features = calloc(schema->nfeatures + 1, sizeof(*t.features));
	if (!t.features)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < schema->nfeatures; i++) {
		memcpy(t.features[i].name, schema->features[i].name, KV_NAME_MAX);
		t.features[i].type = (enum strata_type)schema->features[i].type;
		t.features[i].dim = schema->features[i].dim;
		t.features[i].ttl_us = schema->features[i].ttl_us;
	}
	struct strata_error se = {0};
	int rc = strata_table_create(ctx, &t, &se);
	free(t.features);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_table_get(void *ctx, const char *name, struct kv_table **out, struct st_error *err)
{
	struct strata_error se = {0};
	struct strata_table *t;
	int rc = strata_table_get(ctx, name, &t, &se);
	if (rc)
		return rm_err(&se, rc, err);
	*out = rm_table_new(t);
	strata_table_free(t);
	return *out ? 0 : st_error_set(err, ST_ENOMEM, "out of memory");
}

static int rm_table_list(void *ctx, struct kv_table ***out, size_t *n, struct st_error *err)
{
	struct strata_error se = {0};
	struct strata_table **ts;
	size_t nt;
	int rc = strata_table_list(ctx, &ts, &nt, &se);
	if (rc)
		return rm_err(&se, rc, err);
	struct kv_table **kt = calloc(nt + 1, sizeof(*kt));
	for (size_t i = 0; kt && i < nt; i++) {
		if (!(kt[i] = rm_table_new(ts[i]))) {
			for (size_t k = 0; k < i; k++)
				kv_table_free(kt[k]);
			free(kt);
			kt = NULL;
		}
	}
	for (size_t i = 0; i < nt; i++)
		strata_table_free(ts[i]);
	free(ts);
	if (!kt)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	*out = kt;
	*n = nt;
	return 0;
}

static int rm_table_alter(void *ctx, const char *name, const struct kv_alter *a,
			  struct st_error *err)
{
	struct strata_feature_def *add = calloc(a->nadd + 1, sizeof(*add));
	if (!add)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < a->nadd; i++) {
		memcpy(add[i].name, a->add[i].name, KV_NAME_MAX);
		add[i].type = (enum strata_type)a->add[i].type;
		add[i].dim = a->add[i].dim;
		add[i].ttl_us = a->add[i].ttl_us;
	}
	struct strata_alter sa = STRATA_ALTER_NONE;
	sa.ttl_us = a->ttl_us;
	sa.max_versions = a->max_versions;
	sa.retention_us = a->retention_us;
	sa.nadd = a->nadd;
	sa.add = add;
	struct strata_error se = {0};
	int rc = strata_table_alter(ctx, name, &sa, &se);
	free(add);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_table_drop(void *ctx, const char *name, struct st_error *err)
{
	struct strata_error se = {0};
	int rc = strata_table_drop(ctx, name, &se);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_put(void *ctx, const char *table, const struct kv_cell *cells, size_t n,
		  struct st_error *err)
{
	struct strata_cell *sc = calloc(n + 1, sizeof(*sc));
	if (!sc)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		sc[i].entity = cells[i].entity;
		sc[i].entity_len = cells[i].entity_len;
		sc[i].feature = cells[i].feature;
		sc[i].ts = cells[i].ts;
		rm_value_in(&cells[i].value, &sc[i].value);
	}
	struct strata_error se = {0};
	int rc = strata_put(ctx, table, sc, n, &se);
	free(sc);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_del(void *ctx, const char *table, const char *entity, size_t entity_len,
		  const char *const *features, size_t nfeatures, int64_t ts, struct st_error *err)
{
	struct strata_error se = {0};
	int rc = strata_delete(ctx, table, entity, entity_len, features, nfeatures, ts, &se);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_get(void *ctx, const char *table, const char *const *entities,
		  const size_t *entity_lens, size_t nentities, const char *const *features,
		  size_t nfeatures, const struct kv_read_opts *o, struct kv_result *out,
		  struct st_error *err)
{
	size_t n = nentities * nfeatures;
	struct strata_result *r = calloc(n + 1, sizeof(*r));
	if (!r)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	struct strata_read_opts so = {.as_of = o ? o->as_of : ST_TS_MAX,
				      .known_at = o ? o->known_at : ST_TS_MAX};
	struct strata_error se = {0};
	int rc = strata_multiget(ctx, table, entities, entity_lens, nentities, features, nfeatures,
				 &so, r, &se);
	if (!rc)
		for (size_t i = 0; i < n; i++)
			cli_remote_result_out(&r[i], &out[i]);
	free(r);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_history(void *ctx, const char *table, const char *entity, size_t entity_len,
		      const char *feature, int64_t from, int64_t to, size_t limit,
		      int64_t known_at, struct kv_version **out, size_t *n, struct st_error *err)
{
	struct strata_error se = {0};
	struct strata_version *v;
	size_t nv;
	int rc = strata_history(ctx, table, entity, entity_len, feature, from, to, limit, known_at,
				&v, &nv, &se);
	if (rc)
		return rm_err(&se, rc, err);
	struct kv_version *kv = calloc(nv + 1, sizeof(*kv));
	if (!kv) {
		for (size_t i = 0; i < nv; i++)
			strata_result_release(&v[i].r, 1);
		free(v);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nv; i++) {
		kv[i].tombstone = v[i].tombstone;
		cli_remote_result_out(&v[i].r, &kv[i].r);
	}
	free(v);
	*out = kv;
	*n = nv;
	return 0;
}

/* ---- join: the CLI's chunk contract (push until full, run, read, reset) over the
 * streaming join: a chunk's rows are sent and their results collected at run. ---- */

struct cli_join {
	strata_join *j;
	size_t nf, chunk_rows, rows;
	struct kv_result *res; /* rows x nf of the current chunk */
};

static int rm_join_open(void *ctx, const char *table, const char *const *features,
			size_t nfeatures, int64_t known_at, size_t chunk_rows,
			int skip_before_horizon, struct cli_join **out, struct st_error *err)
{
	struct cli_join *cj = calloc(1, sizeof(*cj));
	if (!cj)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	cj->nf = nfeatures;
	cj->chunk_rows = chunk_rows ? chunk_rows : 65536;
	cj->res = calloc(cj->chunk_rows * nfeatures + 1, sizeof(*cj->res));
	if (!cj->res) {
		free(cj);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	/* libstrata splits the chunk into wire pushes; the server sweeps it in one pass */
	struct strata_error se = {0};
	int rc = strata_join_open2(ctx, table, features, nfeatures, known_at, cj->chunk_rows,
				   skip_before_horizon ? STRATA_JOIN_SKIP_BEFORE_HORIZON : 0, &cj->j,
				   &se);
	if (rc) {
		free(cj->res);
		free(cj);
		return rm_err(&se, rc, err);
	}
	*out = cj;
	return 0;
}

static int rm_join_push(struct cli_join *cj, const char *entity, size_t entity_len, int64_t ts,
			struct st_error *err)
{
	if (cj->rows >= cj->chunk_rows)
		return st_error_set(err, ST_EINVAL, "join chunk is full: run it first");
	struct strata_error se = {0};
	int rc = strata_join_push(cj->j, entity, entity_len, ts, &se);
	if (rc < 0)
		return rm_err(&se, rc, err);
	cj->rows++;
	return cj->rows == cj->chunk_rows ? 1 : 0;
}

static int rm_join_run(struct cli_join *cj, struct st_error *err)
{
	struct strata_error se = {0};
	for (size_t i = 0; i < cj->rows; i++) {
		const struct strata_result *row;
		int rc = strata_join_next(cj->j, &row, &se);
		if (rc == 0)
			rc = st_error_set(err, ST_EPROTO, "join: server returned fewer rows");
		if (rc < 0)
			return se.msg[0] ? rm_err(&se, rc, err) : rc;
		for (size_t f = 0; f < cj->nf; f++)
			cli_remote_result_out((struct strata_result *)&row[f], &cj->res[i * cj->nf + f]);
	}
	return 0;
}

static size_t rm_join_rows(const struct cli_join *cj)
{
	return cj->rows;
}

static const struct kv_result *rm_join_result(const struct cli_join *cj, size_t i)
{
	return &cj->res[i * cj->nf];
}

static void rm_join_reset(struct cli_join *cj)
{
	kv_result_release(cj->res, cj->rows * cj->nf);
	cj->rows = 0;
}

static void rm_join_free(struct cli_join *cj)
{
	if (!cj)
		return;
	rm_join_reset(cj);
	strata_join_close(cj->j);
	free(cj->res);
	free(cj);
}

/* ---- jobs ---- */

static void rm_job_out(const struct strata_job *in, struct kv_job_info *out)
{
	memset(out, 0, sizeof(*out));
	out->id = in->id;
	out->state = (enum kv_job_state)in->state;
	out->interrupted = in->interrupted;
	kv_preload_req_init(&out->req);
	memcpy(out->req.table, in->req.table, sizeof(out->req.table));
	memcpy(out->req.path, in->req.path, sizeof(out->req.path));
	out->req.format = (enum kv_format)in->req.format;
	out->req.skip_bad_rows = in->req.skip_bad_rows;
	memcpy(out->req.ts_column, in->req.ts_column, sizeof(out->req.ts_column));
	out->req.ts_unit = (enum st_ts_unit)in->req.ts_unit;
	out->req.allow_any_ts = in->req.allow_any_ts;
	out->submitted_us = in->submitted_us;
	out->started_us = in->started_us;
	out->finished_us = in->finished_us;
	out->rows = in->rows;
	out->cells = in->cells;
	out->bad_rows = in->bad_rows;
	out->bytes_done = in->bytes_done;
	out->bytes_total = in->bytes_total;
	out->rows_per_s = in->rows_per_s;
	out->eta_s = in->eta_s;
	out->attempts = in->attempts;
	memcpy(out->phase, in->phase, sizeof(out->phase));
	memcpy(out->error, in->error, sizeof(out->error));
	memcpy(out->bad_samples, in->bad_samples, sizeof(out->bad_samples));
}

static int rm_preload_submit(void *ctx, const struct kv_preload_req *req, uint64_t *id,
			     struct st_error *err)
{
	struct strata_preload p;
	strata_preload_init(&p);
	memcpy(p.table, req->table, sizeof(p.table));
	memcpy(p.path, req->path, sizeof(p.path));
	p.format = (enum strata_format)req->format;
	p.skip_bad_rows = req->skip_bad_rows;
	memcpy(p.ts_column, req->ts_column, sizeof(p.ts_column));
	p.ts_unit = (enum strata_ts_unit)req->ts_unit;
	p.allow_any_ts = req->allow_any_ts;
	struct strata_error se = {0};
	int rc = strata_preload_submit(ctx, &p, id, &se);
	return rc ? rm_err(&se, rc, err) : 0;
}

static int rm_job_get(void *ctx, uint64_t id, struct kv_job_info *out, struct st_error *err)
{
	struct strata_error se = {0};
	struct strata_job j;
	int rc = strata_job_get(ctx, id, &j, &se);
	if (rc)
		return rm_err(&se, rc, err);
	rm_job_out(&j, out);
	return 0;
}

static int rm_job_list(void *ctx, struct kv_job_info **out, size_t *n, struct st_error *err)
{
	struct strata_error se = {0};
	struct strata_job *js;
	size_t nj;
	int rc = strata_job_list(ctx, &js, &nj, &se);
	if (rc)
		return rm_err(&se, rc, err);
	struct kv_job_info *ki = calloc(nj + 1, sizeof(*ki));
	if (!ki) {
		free(js);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nj; i++)
		rm_job_out(&js[i], &ki[i]);
	free(js);
	*out = ki;
	*n = nj;
	return 0;
}

static int rm_job_cancel(void *ctx, uint64_t id, struct st_error *err)
{
	struct strata_error se = {0};
	int rc = strata_job_cancel(ctx, id, &se);
	return rc ? rm_err(&se, rc, err) : 0;
}

int cli_remote_open(const char *addr, const char *token, struct cli_backend *out,
		    struct st_error *err)
{
	struct strata_connect_opts o;
	strata_connect_opts_init(&o);
	o.token = token;
	o.io_timeout_ms = 0; /* CLI commands (big joins, preload waits) may take long */
	return cli_remote_open_opts(addr, &o, out, err);
}

static void rm_read_pref(void *ctx, int replica_ok, uint32_t max_lag_ms)
{
	strata_set_replica_reads(ctx, replica_ok, max_lag_ms);
}

static int rm_cluster(void *ctx, char **json, struct st_error *err)
{
	struct strata_error se = {0};
	int rc = strata_cluster_layout(ctx, json, &se);
	return rc ? rm_err(&se, rc, err) : 0;
}

int cli_remote_open_opts(const char *addr, const struct strata_connect_opts *o,
			 struct cli_backend *out, struct st_error *err)
{
	strata *c;
	struct strata_error se = {0};
	int rc = strata_connect(addr, o, &c, &se);
	if (rc)
		return rm_err(&se, rc, err);
	memset(out, 0, sizeof(*out));
	out->ctx = c;
	out->close = rm_close;
	out->table_create = rm_table_create;
	out->table_get = rm_table_get;
	out->table_list = rm_table_list;
	out->table_alter = rm_table_alter;
	out->table_drop = rm_table_drop;
	out->put = rm_put;
	out->del = rm_del;
	out->get = rm_get;
	out->history = rm_history;
	out->join_open = rm_join_open;
	out->join_push = rm_join_push;
	out->join_run = rm_join_run;
	out->join_rows = rm_join_rows;
	out->join_result = rm_join_result;
	out->join_reset = rm_join_reset;
	out->join_free = rm_join_free;
	out->preload_submit = rm_preload_submit;
	out->job_get = rm_job_get;
	out->job_list = rm_job_list;
	out->job_cancel = rm_job_cancel;
	out->jobs_run_pending = NULL;
	out->read_pref = rm_read_pref;
	out->cluster = rm_cluster;
	return 0;
}
