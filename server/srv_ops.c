/* The handlers of the data, table and job operations (srv_ops[] in srv_dispatch.c): each
 * maps one protocol request onto the store API (store/kv.h) and points the response into
 * storage owned by its request context. */
#include "server/srv.h"

#include <stdlib.h>
#include <string.h>

#include "common/st_log.h"
#include "common/st_time.h"

#include <jansson.h>

/* ---- values ---- */

static int srv_value_in(const Strata__Value *v, uint32_t max_value, struct kv_value *out,
			struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	out->type = (enum kv_type)v->type;
	size_t bytes = 0;
	switch (v->type) {
	case KV_I64:
		out->i64 = v->i64;
		break;
	case KV_F64:
		out->f64 = v->f64;
		break;
	case KV_F32:
		out->f32 = v->f32;
		break;
	case KV_STR:
	case KV_BYTES:
		out->ptr = v->bytes.data;
		out->len = (uint32_t)v->bytes.len;
		bytes = v->bytes.len;
		break;
	case KV_F32VEC:
		out->ptr = v->vec;
		out->len = (uint32_t)v->n_vec;
		bytes = v->n_vec * sizeof(float);
		break;
	case KV_I64LIST:
		out->ptr = v->list;
		out->len = (uint32_t)v->n_list;
		bytes = v->n_list * sizeof(int64_t);
		break;
	default:
		return st_error_set(err, ST_EINVAL, "unknown value type %u", v->type);
	}
	if (bytes > max_value)
		return st_error_set(err, ST_ELIMIT,
				    "value of %zu bytes exceeds the limit of %u bytes (--max-value)",
				    bytes, max_value);
	return 0;
}

/* Points `pb` at the data of `v` (no copy: v must outlive the packing). */
static void srv_value_out(const struct kv_value *v, Strata__Value *pb)
{
	strata__value__init(pb);
	pb->type = v->type;
	switch (v->type) {
	case KV_I64:
		pb->has_i64 = 1;
		pb->i64 = v->i64;
		break;
	case KV_F64:
		pb->has_f64 = 1;
		pb->f64 = v->f64;
		break;
	case KV_F32:
		pb->has_f32 = 1;
		pb->f32 = v->f32;
		break;
	case KV_STR:
	case KV_BYTES:
		pb->has_bytes = 1;
		pb->bytes.data = v->ptr;
		pb->bytes.len = v->len;
		break;
	case KV_F32VEC:
		pb->n_vec = v->len;
		pb->vec = v->ptr;
		break;
	case KV_I64LIST:
		pb->n_list = v->len;
		pb->list = v->ptr;
		break;
	default:
		break;
	}
}

int srv_results_out(struct srv_ctx *x, const struct kv_result *res, size_t n,
		    Strata__Results **out)
{
	Strata__Results *msg = srv_ctx_alloc(x, 1, sizeof(*msg));
	Strata__Result *rs = srv_ctx_alloc(x, n, sizeof(*rs));
	Strata__Value *vs = srv_ctx_alloc(x, n, sizeof(*vs));
	Strata__Result **ptrs = srv_ctx_alloc(x, n, sizeof(*ptrs));
	if (!msg || !rs || !vs || !ptrs)
		return srv_ctx_nomem(x);
	strata__results__init(msg);
	for (size_t i = 0; i < n; i++) {
		Strata__Result *r = &rs[i];
		strata__result__init(r);
		if (res[i].found || res[i].ts || res[i].ingest_us) {
			/* Times are sent for tombstones too (history shows them). */
			r->has_ts = 1;
			r->ts = res[i].ts;
			r->has_ingest_us = 1;
			r->ingest_us = res[i].ingest_us;
		}
		if (res[i].found) {
			r->has_found = r->found = 1;
			srv_value_out(&res[i].value, &vs[i]);
			r->value = &vs[i];
		}
		if (res[i].status != KV_ABSENT) {
			r->has_status = 1;
			r->status = res[i].status;
		}
		ptrs[i] = r;
	}
	msg->n_results = n;
	msg->results = ptrs;
	*out = msg;
	return 0;
}

void srv_results_release(void *res, size_t n)
{
	kv_result_release(res, n);
	free(res);
}

int srv_check_features(size_t n, struct st_error *err)
{
	if (n == 0)
		return st_error_set(err, ST_EINVAL, "no features requested");
	return 0;
}

/* ---- tables ---- */

static int srv_table_in(const Strata__Table *pb, struct kv_table *t, struct st_error *err)
{
	memset(t, 0, sizeof(*t));
	if (strlen(pb->name) >= KV_NAME_MAX)
		return st_error_set(err, ST_EINVAL, "table name too long (max %d bytes)",
				    KV_NAME_MAX - 1);
	strcpy(t->name, pb->name);
	const char *ec = pb->entity_column && *pb->entity_column ? pb->entity_column : "entity";
	if (strlen(ec) >= KV_NAME_MAX)
		return st_error_set(err, ST_EINVAL, "entity column name too long");
	strcpy(t->entity_column, ec);
	t->ttl_us = pb->ttl_us;
	t->max_versions = pb->max_versions;
	t->retention_us = pb->retention_us;
	t->nfeatures = (uint32_t)pb->n_features;
	t->features = calloc(pb->n_features ? pb->n_features : 1, sizeof(*t->features));
	if (!t->features)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < pb->n_features; i++) {
		const Strata__Feature *f = pb->features[i];
		if (strlen(f->name) >= KV_NAME_MAX) {
			free(t->features);
			t->features = NULL;
			return st_error_set(err, ST_EINVAL, "feature name too long: %.80s",
					    f->name);
		}
		strcpy(t->features[i].name, f->name);
		t->features[i].type = (enum kv_type)f->type;
		t->features[i].dim = f->dim;
		t->features[i].ttl_us = f->ttl_us;
	}
	return 0;
}

/* The schema as protobuf in ctx storage, pointing into `t` (which must outlive the packing);
 * NULL when out of memory. */
static Strata__Table *srv_table_out(struct srv_ctx *x, const struct kv_table *t)
{
	Strata__Table *o = srv_ctx_alloc(x, 1, sizeof(*o));
	Strata__Feature *fs = srv_ctx_alloc(x, t->nfeatures, sizeof(*fs));
	Strata__Feature **ptrs = srv_ctx_alloc(x, t->nfeatures, sizeof(*ptrs));
	if (!o || !fs || !ptrs)
		return NULL;
	strata__table__init(o);
	o->name = (char *)t->name;
	o->entity_column = (char *)t->entity_column;
	o->has_id = 1;
	o->id = t->id;
	o->has_ttl_us = 1;
	o->ttl_us = t->ttl_us;
	o->has_max_versions = 1;
	o->max_versions = t->max_versions;
	o->has_retention_us = 1;
	o->retention_us = t->retention_us;
	o->has_created_us = 1;
	o->created_us = t->created_us;
	for (uint32_t i = 0; i < t->nfeatures; i++) {
		Strata__Feature *f = &fs[i];
		strata__feature__init(f);
		f->name = (char *)t->features[i].name;
		f->type = t->features[i].type;
		f->has_dim = 1;
		f->dim = t->features[i].dim;
		f->has_id = 1;
		f->id = t->features[i].id;
		f->has_ttl_us = t->features[i].ttl_us != 0;
		f->ttl_us = t->features[i].ttl_us;
		ptrs[i] = f;
	}
	o->n_features = t->nfeatures;
	o->features = ptrs;
	return o;
}

static void srv_table_release(void *t, size_t n)
{
	(void)n;
	kv_table_free(t);
}

static void srv_table_list_release(void *tabs, size_t n)
{
	struct kv_table **t = tabs;
	for (size_t i = 0; i < n; i++)
		kv_table_free(t[i]);
	free(t);
}

/* ---- jobs ---- */

static int srv_preload_in(const Strata__Preload *pb, struct kv_preload_req *r,
			  struct st_error *err)
{
	kv_preload_req_init(r);
	if (strlen(pb->table) >= sizeof(r->table) || strlen(pb->path) >= sizeof(r->path))
		return st_error_set(err, ST_EINVAL, "table name or path too long");
	strcpy(r->table, pb->table);
	strcpy(r->path, pb->path);
	if (pb->format > KV_FMT_JSONL)
		return st_error_set(err, ST_EINVAL, "unknown preload format %u", pb->format);
	r->format = (enum kv_format)pb->format;
	r->skip_bad_rows = pb->skip_bad_rows;
	if (pb->ts_column && *pb->ts_column) {
		if (strlen(pb->ts_column) >= sizeof(r->ts_column))
			return st_error_set(err, ST_EINVAL, "ts column name too long");
		strcpy(r->ts_column, pb->ts_column);
	}
	if (pb->has_ts_unit) {
		if (pb->ts_unit > ST_TS_US)
			return st_error_set(err, ST_EINVAL, "unknown ts unit %u", pb->ts_unit);
		r->ts_unit = (enum st_ts_unit)pb->ts_unit;
	}
	r->allow_any_ts = pb->allow_any_ts;
	return 0;
}

struct srv_pb_job {
	Strata__Job msg;
	Strata__Preload req;
	char *samples[KV_JOB_BAD_SAMPLES];
};

static void srv_job_out(const struct kv_job_info *j, struct srv_pb_job *o)
{
	strata__job__init(&o->msg);
	strata__preload__init(&o->req);
	o->req.table = (char *)j->req.table;
	o->req.path = (char *)j->req.path;
	o->req.has_format = 1;
	o->req.format = j->req.format;
	o->req.has_skip_bad_rows = 1;
	o->req.skip_bad_rows = j->req.skip_bad_rows;
	o->req.ts_column = (char *)j->req.ts_column;
	o->req.has_ts_unit = 1;
	o->req.ts_unit = j->req.ts_unit;
	o->req.has_allow_any_ts = 1;
	o->req.allow_any_ts = j->req.allow_any_ts;
	Strata__Job *m = &o->msg;
	m->id = j->id;
	m->state = j->state;
	m->req = &o->req;
#define SRV_SET(f, v) (m->has_##f = 1, m->f = (v))
	SRV_SET(interrupted, j->interrupted);
	SRV_SET(submitted_us, j->submitted_us);
	SRV_SET(started_us, j->started_us);
	SRV_SET(finished_us, j->finished_us);
	SRV_SET(rows, j->rows);
	SRV_SET(cells, j->cells);
	SRV_SET(bad_rows, j->bad_rows);
	SRV_SET(bytes_done, j->bytes_done);
	SRV_SET(bytes_total, j->bytes_total);
	SRV_SET(rows_per_s, j->rows_per_s);
	SRV_SET(eta_s, j->eta_s);
	SRV_SET(attempts, j->attempts);
#undef SRV_SET
	m->phase = (char *)j->phase;
	m->error = (char *)j->error;
	size_t ns = 0;
	for (int i = 0; i < KV_JOB_BAD_SAMPLES; i++)
		if (j->bad_samples[i][0])
			o->samples[ns++] = (char *)j->bad_samples[i];
	m->n_bad_samples = ns;
	m->bad_samples = o->samples;
}


static void srv_free_release(void *p, size_t n)
{
	(void)n;
	free(p);
}

/* Releases the values of n kv_results in ctx storage. */
static void srv_kres_release(void *res, size_t n)
{
	kv_result_release(res, n);
}

static void srv_history_release(void *v, size_t n)
{
	kv_history_free(v, n);
}

/* ---- handlers: server ---- */

int srv_op_ping(struct srv_ctx *x)
{
	(void)x;
	return 0;
}

int srv_op_status(struct srv_ctx *x)
{
	char *status = srv_status_json(x->s);
	if (!status)
		return srv_ctx_nomem(x);
	srv_ctx_defer(x, srv_free_release, status, 0);
	x->resp.result_case = STRATA__RESPONSE__RESULT_STATUS_JSON;
	x->resp.status_json = status;
	return 0;
}

/* ---- handlers: tables ---- */

int srv_op_table_create(struct srv_ctx *x)
{
	struct kv_table t;
	int rc = srv_table_in(x->m->table_create->table, &t, &x->err);
	if (rc)
		return rc;
	rc = kv_table_create(x->s->db, &t, &x->err);
	free(t.features);
	if (!rc)
		st_info("table %s created", t.name);
	return rc;
}

int srv_op_table_get(struct srv_ctx *x)
{
	struct kv_table *tab;
	int rc = kv_table_get(x->s->db, x->m->table_get->name, &tab, &x->err);
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_table_release, tab, 0);
	if (!(x->resp.table = srv_table_out(x, tab)))
		return srv_ctx_nomem(x);
	x->resp.result_case = STRATA__RESPONSE__RESULT_TABLE;
	return 0;
}

int srv_op_table_list(struct srv_ctx *x)
{
	struct kv_table **tabs;
	size_t ntabs;
	int rc = kv_table_list(x->s->db, &tabs, &ntabs, &x->err);
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_table_list_release, tabs, ntabs);
	Strata__TableList *list = srv_ctx_alloc(x, 1, sizeof(*list));
	Strata__Table **ptrs = srv_ctx_alloc(x, ntabs, sizeof(*ptrs));
	if (!list || !ptrs)
		return srv_ctx_nomem(x);
	strata__table_list__init(list);
	for (size_t i = 0; i < ntabs; i++)
		if (!(ptrs[i] = srv_table_out(x, tabs[i])))
			return srv_ctx_nomem(x);
	list->n_tables = ntabs;
	list->tables = ptrs;
	x->resp.result_case = STRATA__RESPONSE__RESULT_TABLES;
	x->resp.tables = list;
	return 0;
}

int srv_op_table_alter(struct srv_ctx *x)
{
	const Strata__TableAlterReq *a = x->m->table_alter;
	struct kv_alter al = KV_ALTER_NONE;
	al.ttl_us = a->ttl_us;
	al.max_versions = a->max_versions;
	al.retention_us = a->retention_us;
	struct kv_feature_def *add = srv_ctx_alloc(x, a->n_add, sizeof(*add));
	if (!add)
		return srv_ctx_nomem(x);
	for (size_t i = 0; i < a->n_add; i++) {
		if (strlen(a->add[i]->name) >= KV_NAME_MAX)
			return st_error_set(&x->err, ST_EINVAL, "feature name too long");
		strcpy(add[i].name, a->add[i]->name);
		add[i].type = (enum kv_type)a->add[i]->type;
		add[i].dim = a->add[i]->dim;
		add[i].ttl_us = a->add[i]->ttl_us;
	}
	al.nadd = (uint32_t)a->n_add;
	al.add = add;
	return kv_table_alter(x->s->db, a->name, &al, &x->err);
}

int srv_op_table_drop(struct srv_ctx *x)
{
	int rc = kv_table_drop(x->s->db, x->m->table_drop->name, &x->err);
	if (!rc)
		st_info("table %s dropped", x->m->table_drop->name);
	return rc;
}

/* ---- handlers: data ---- */

int srv_op_put(struct srv_ctx *x)
{
	const Strata__PutReq *p = x->m->put;
	struct kv_cell *cells = srv_ctx_alloc(x, p->n_cells, sizeof(*cells));
	if (!cells)
		return srv_ctx_nomem(x);
	for (size_t i = 0; i < p->n_cells; i++) {
		const Strata__Cell *c = p->cells[i];
		cells[i].entity = (const char *)c->entity.data;
		cells[i].entity_len = c->entity.len;
		cells[i].feature = c->feature;
		cells[i].ts = c->ts;
		int rc = srv_value_in(c->value, x->s->cfg.max_value, &cells[i].value, &x->err);
		if (rc)
			return st_error_prefix(&x->err, "cell %zu", i);
	}
	return kv_put(x->s->db, p->table, cells, p->n_cells, &x->err);
}

int srv_op_delete(struct srv_ctx *x)
{
	const Strata__DeleteReq *d = x->m->del;
	return kv_delete(x->s->db, d->table, (const char *)d->entity.data, d->entity.len,
			 (const char *const *)d->features, d->n_features, d->ts, &x->err);
}

int srv_op_get(struct srv_ctx *x)
{
	const Strata__GetReq *g = x->m->get;
	struct kv_read_opts o = {g->as_of, g->known_at,
				 x->read_flags | (g->primary_only ? KV_READ_PRIMARY : 0)};
	int rc = srv_check_features(g->n_features, &x->err);
	if (rc)
		return rc;
	if (g->n_entities == 0)
		return st_error_set(&x->err, ST_EINVAL, "no entities requested");
	if (g->n_entities * g->n_features > SRV_MAX_RESULTS)
		return st_error_set(&x->err, ST_ELIMIT,
				    "%zu entities x %zu features exceeds %d results per request",
				    g->n_entities, g->n_features, SRV_MAX_RESULTS);
	if (g->max_lag_ms &&
	    (rc = srv_repl_read_fresh(x->s->db, g->entities, g->n_entities,
				      (int64_t)g->max_lag_ms * 1000, &x->err)))
		return rc;
	size_t nres = g->n_entities * g->n_features;
	struct kv_result *res = srv_ctx_alloc(x, nres, sizeof(*res));
	if (!res)
		return srv_ctx_nomem(x);
	if (g->n_entities == 1) {
		rc = kv_get(x->s->db, g->table, (const char *)g->entities[0].data,
			    g->entities[0].len, (const char *const *)g->features, g->n_features,
			    &o, res, &x->err);
	} else {
		const char **ents = srv_ctx_alloc(x, g->n_entities, sizeof(*ents));
		size_t *lens = srv_ctx_alloc(x, g->n_entities, sizeof(*lens));
		if (!ents || !lens)
			return srv_ctx_nomem(x);
		for (size_t i = 0; i < g->n_entities; i++) {
			ents[i] = (const char *)g->entities[i].data;
			lens[i] = g->entities[i].len;
		}
		rc = kv_multiget(x->s->db, g->table, ents, lens, g->n_entities,
				 (const char *const *)g->features, g->n_features, &o, res, &x->err);
	}
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_kres_release, res, nres);
	x->kres = res;
	x->nkres = nres;
	x->resp.result_case = STRATA__RESPONSE__RESULT_RESULTS;
	return 0;
}

int srv_op_history(struct srv_ctx *x)
{
	const Strata__HistoryReq *h = x->m->history;
	struct kv_version *vers;
	size_t nvers;
	int rc = kv_history(x->s->db, h->table, (const char *)h->entity.data, h->entity.len,
			    h->feature, h->has_from ? h->from : ST_TS_MIN, h->to, h->limit,
			    h->known_at, &vers, &nvers, &x->err);
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_history_release, vers, nvers);
	Strata__Versions *pbv = srv_ctx_alloc(x, 1, sizeof(*pbv));
	Strata__Version *items = srv_ctx_alloc(x, nvers, sizeof(*items));
	Strata__Version **ptrs = srv_ctx_alloc(x, nvers, sizeof(*ptrs));
	struct kv_result *res = srv_ctx_alloc(x, nvers, sizeof(*res));
	if (!pbv || !items || !ptrs || !res)
		return srv_ctx_nomem(x);
	/* res[] holds shallow copies: vers keeps ownership of the values. */
	for (size_t i = 0; i < nvers; i++)
		res[i] = vers[i].r;
	Strata__Results *pbr;
	if ((rc = srv_results_out(x, res, nvers, &pbr)))
		return rc;
	strata__versions__init(pbv);
	for (size_t i = 0; i < nvers; i++) {
		strata__version__init(&items[i]);
		items[i].has_tombstone = 1;
		items[i].tombstone = vers[i].tombstone;
		items[i].r = pbr->results[i];
		ptrs[i] = &items[i];
	}
	pbv->n_versions = nvers;
	pbv->versions = ptrs;
	x->resp.result_case = STRATA__RESPONSE__RESULT_VERSIONS;
	x->resp.versions = pbv;
	return 0;
}

/* ---- handlers: jobs ---- */

int srv_op_preload_submit(struct srv_ctx *x)
{
	struct kv_preload_req pr;
	uint64_t id;
	int rc = srv_preload_in(x->m->preload_submit->req, &pr, &x->err);
	if (!rc)
		rc = kv_preload_submit(x->s->db, &pr, &id, &x->err);
	if (rc)
		return rc;
	st_info("preload job %llu submitted: %s into %s", (unsigned long long)id, pr.path,
		pr.table);
	x->resp.result_case = STRATA__RESPONSE__RESULT_JOB_ID;
	x->resp.job_id = id;
	return 0;
}

int srv_op_job_get(struct srv_ctx *x)
{
	struct kv_job_info *job = srv_ctx_alloc(x, 1, sizeof(*job));
	struct srv_pb_job *pb = srv_ctx_alloc(x, 1, sizeof(*pb));
	if (!job || !pb)
		return srv_ctx_nomem(x);
	int rc = kv_job_get(x->s->db, x->m->job_get->id, job, &x->err);
	if (rc)
		return rc;
	srv_job_out(job, pb);
	x->resp.result_case = STRATA__RESPONSE__RESULT_JOB;
	x->resp.job = &pb->msg;
	return 0;
}

int srv_op_job_list(struct srv_ctx *x)
{
	struct kv_job_info *jobs;
	size_t njobs;
	int rc = kv_job_list(x->s->db, &jobs, &njobs, &x->err);
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_free_release, jobs, njobs);
	Strata__JobList *list = srv_ctx_alloc(x, 1, sizeof(*list));
	struct srv_pb_job *pbs = srv_ctx_alloc(x, njobs, sizeof(*pbs));
	Strata__Job **ptrs = srv_ctx_alloc(x, njobs, sizeof(*ptrs));
	if (!list || !pbs || !ptrs)
		return srv_ctx_nomem(x);
	strata__job_list__init(list);
	for (size_t i = 0; i < njobs; i++) {
		srv_job_out(&jobs[i], &pbs[i]);
		ptrs[i] = &pbs[i].msg;
	}
	list->n_jobs = njobs;
	list->jobs = ptrs;
	x->resp.result_case = STRATA__RESPONSE__RESULT_JOBS;
	x->resp.jobs = list;
	return 0;
}

int srv_op_job_cancel(struct srv_ctx *x)
{
	return kv_job_cancel(x->s->db, x->m->job_cancel->id, &x->err);
}

/* ---- handler: admin (strata-admin backup|stats|verify --addr) ---- */

/* The offline tools' reports and checkpoint, done on the open store. Runs in a worker for
 * as long as the work takes (a verify reads everything). */
int srv_op_admin(struct srv_ctx *x)
{
	const Strata__AdminReq *a = x->m->admin;
	json_t *o = NULL;
	int64_t t0 = st_mono_us();
	if (!strcmp(a->action, "stats")) {
		o = kv_stats_json(x->s->db, &x->err);
	} else if (!strcmp(a->action, "verify")) {
		o = kv_verify_json(x->s->db, NULL, NULL, &x->err);
	} else if (!strcmp(a->action, "backup")) {
		if (!a->path || a->path[0] != '/')
			return st_error_set(&x->err, ST_EINVAL, "backup needs an absolute path on "
				"the server's machine");
		if (kv_checkpoint(x->s->db, a->path, &x->err))
			return x->err.code;
		o = json_pack("{s:s,s:i,s:I}", "path", a->path, "shards", kv_nshards(x->s->db),
			      "keys_estimate",
			      (json_int_t)kv_property_sum(x->s->db, "rocksdb.estimate-num-keys"));
		st_info("backup written to %s", a->path);
	} else {
		return st_error_set(&x->err, ST_EINVAL, "unknown admin action '%s' (backup, stats, "
				    "verify)", a->action);
	}
	if (!o)
		return x->err.code ? x->err.code : srv_ctx_nomem(x);
	json_object_set_new(o, "seconds", json_real((st_mono_us() - t0) / 1e6));
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return srv_ctx_nomem(x);
	srv_ctx_defer(x, srv_free_release, s, 0);
	x->resp.result_case = STRATA__RESPONSE__RESULT_STATUS_JSON;
	x->resp.status_json = s;
	return 0;
}
