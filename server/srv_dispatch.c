/* Request dispatch: maps each protocol operation onto the store API (store/kv.h) and packs
 * the response frame. Runs on worker threads (and on network threads for inline reads). */
#include "server/srv.h"

#include <stdlib.h>
#include <string.h>

#include "common/st_log.h"

#define SRV_MAX_RESULTS 1000000  /* entities x features of one get, rows x features of a push */
#define SRV_JOIN_CHUNK_DEFAULT 65536
#define SRV_JOIN_CHUNK_MAX 1000000
#define SRV_JOINS_PER_CONN 16

/* An open streaming join. `mu` serialises pipelined pushes (a kv_join is single-threaded). */
struct srv_join {
	struct srv_join *next;
	uint64_t id, conn_id;
	pthread_mutex_t mu;
	struct kv_join *j;
	size_t nfeatures;
	int refs; /* under srv_server.joins_mu: 1 for the list, 1 per running push */
};

/* ---- response frames ---- */

static int srv_pack(const Strata__Response *resp, uint8_t **frame, size_t *len)
{
	size_t n = strata__response__get_packed_size(resp);
	uint8_t *f = malloc(4 + n);
	if (!f)
		return ST_ENOMEM;
	srv_put_be32(f, (uint32_t)n);
	strata__response__pack(resp, f + 4);
	*frame = f;
	*len = 4 + n;
	return 0;
}

int srv_error_frame(uint64_t id, int code, const char *msg, uint8_t **frame, size_t *len)
{
	Strata__Response resp = STRATA__RESPONSE__INIT;
	resp.id = id;
	if (code) {
		resp.has_code = 1;
		resp.code = code;
		resp.error = (char *)(msg ? msg : st_strerror(code));
	}
	return srv_pack(&resp, frame, len);
}

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

/* Results as protobuf, pointing into `res` (arrays allocated here, freed by srv_results_free). */
struct srv_pb_results {
	Strata__Results msg;
	Strata__Result *rs;
	Strata__Value *vs;
	Strata__Result **ptrs;
};

static int srv_results_out(const struct kv_result *res, size_t n, struct srv_pb_results *o)
{
	strata__results__init(&o->msg);
	o->rs = calloc(n ? n : 1, sizeof(*o->rs));
	o->vs = calloc(n ? n : 1, sizeof(*o->vs));
	o->ptrs = calloc(n ? n : 1, sizeof(*o->ptrs));
	if (!o->rs || !o->vs || !o->ptrs)
		return ST_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Strata__Result *r = &o->rs[i];
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
			srv_value_out(&res[i].value, &o->vs[i]);
			r->value = &o->vs[i];
		}
		o->ptrs[i] = r;
	}
	o->msg.n_results = n;
	o->msg.results = o->ptrs;
	return 0;
}

static void srv_results_free(struct srv_pb_results *o)
{
	free(o->rs);
	free(o->vs);
	free(o->ptrs);
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
	}
	return 0;
}

struct srv_pb_table {
	Strata__Table msg;
	Strata__Feature *fs;
	Strata__Feature **ptrs;
};

static int srv_table_out(const struct kv_table *t, struct srv_pb_table *o)
{
	strata__table__init(&o->msg);
	o->fs = calloc(t->nfeatures ? t->nfeatures : 1, sizeof(*o->fs));
	o->ptrs = calloc(t->nfeatures ? t->nfeatures : 1, sizeof(*o->ptrs));
	if (!o->fs || !o->ptrs)
		return ST_ENOMEM;
	o->msg.name = (char *)t->name;
	o->msg.entity_column = (char *)t->entity_column;
	o->msg.has_id = 1;
	o->msg.id = t->id;
	o->msg.has_ttl_us = 1;
	o->msg.ttl_us = t->ttl_us;
	o->msg.has_max_versions = 1;
	o->msg.max_versions = t->max_versions;
	o->msg.has_created_us = 1;
	o->msg.created_us = t->created_us;
	for (uint32_t i = 0; i < t->nfeatures; i++) {
		Strata__Feature *f = &o->fs[i];
		strata__feature__init(f);
		f->name = (char *)t->features[i].name;
		f->type = t->features[i].type;
		f->has_dim = 1;
		f->dim = t->features[i].dim;
		f->has_id = 1;
		f->id = t->features[i].id;
		o->ptrs[i] = f;
	}
	o->msg.n_features = t->nfeatures;
	o->msg.features = o->ptrs;
	return 0;
}

static void srv_pb_table_free(struct srv_pb_table *o)
{
	free(o->fs);
	free(o->ptrs);
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

/* ---- joins ---- */

static struct srv_join *srv_join_find(struct srv_server *s, uint64_t id, uint64_t conn_id)
{
	pthread_mutex_lock(&s->joins_mu);
	struct srv_join *j = s->joins;
	while (j && !(j->id == id && j->conn_id == conn_id))
		j = j->next;
	if (j)
		j->refs++;
	pthread_mutex_unlock(&s->joins_mu);
	return j;
}

static void srv_join_put(struct srv_server *s, struct srv_join *j)
{
	pthread_mutex_lock(&s->joins_mu);
	int last = --j->refs == 0;
	pthread_mutex_unlock(&s->joins_mu);
	if (!last)
		return;
	kv_join_free(j->j);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

void srv_joins_drop_conn(struct srv_server *s, uint64_t conn_id)
{
	struct srv_join *dead = NULL;
	pthread_mutex_lock(&s->joins_mu);
	struct srv_join **pp = &s->joins;
	while (*pp) {
		struct srv_join *j = *pp;
		if (j->conn_id == conn_id) {
			*pp = j->next;
			j->next = dead;
			dead = j;
		} else {
			pp = &j->next;
		}
	}
	pthread_mutex_unlock(&s->joins_mu);
	while (dead) {
		struct srv_join *next = dead->next;
		srv_join_put(s, dead);
		dead = next;
	}
}

/* Deep copy of a result (a join's results die at kv_join_reset). */
static int srv_result_copy(const struct kv_result *in, struct kv_result *out)
{
	*out = *in;
	if (!in->found) {
		memset(&out->value, 0, sizeof(out->value));
		return 0;
	}
	size_t esz = 0;
	switch (in->value.type) {
	case KV_STR:
	case KV_BYTES:
		esz = 1;
		break;
	case KV_F32VEC:
		esz = sizeof(float);
		break;
	case KV_I64LIST:
		esz = sizeof(int64_t);
		break;
	default:
		out->value.ptr = NULL;
		return 0;
	}
	size_t n = (size_t)in->value.len * esz;
	out->value.ptr = malloc(n ? n : 1);
	if (!out->value.ptr)
		return ST_ENOMEM;
	if (n)
		memcpy(out->value.ptr, in->value.ptr, n);
	return 0;
}

static int srv_join_collect(struct srv_join *j, struct kv_result *out, size_t *nout,
			    struct st_error *err)
{
	int rc = kv_join_run(j->j, err);
	if (rc)
		return rc;
	size_t rows = kv_join_rows(j->j);
	for (size_t i = 0; i < rows; i++) {
		const struct kv_result *r = kv_join_result(j->j, i);
		for (size_t f = 0; f < j->nfeatures; f++) {
			if (srv_result_copy(&r[f], &out[*nout])) {
				kv_join_reset(j->j);
				return st_error_set(err, ST_ENOMEM, "out of memory");
			}
			(*nout)++;
		}
	}
	kv_join_reset(j->j);
	return 0;
}

/* ---- dispatch ---- */

static int srv_check_features(size_t n, struct st_error *err)
{
	if (n == 0)
		return st_error_set(err, ST_EINVAL, "no features requested");
	return 0;
}

/* The body of srv_dispatch. With read_flags KV_READ_CACHED_ONLY, a get the row cache cannot
 * answer returns 0 before anything is packed or freed; otherwise returns 1. */
static int dispatch(struct srv_server *s, struct srv_req *req, unsigned read_flags)
{
	int deferred = 0;
	Strata__Request *m = req->msg;
	Strata__Response resp = STRATA__RESPONSE__INIT;
	struct st_error err = {0};
	int rc = 0;
	resp.id = m->id;

	/* Things that must live until the response is packed. */
	struct kv_table *tab = NULL, **tabs = NULL;
	size_t ntabs = 0;
	struct srv_pb_table pbt = {0}, *pbts = NULL;
	Strata__Table **pbt_ptrs = NULL;
	Strata__TableList tlist = STRATA__TABLE_LIST__INIT;
	struct kv_result *res = NULL;
	size_t nres = 0;
	struct srv_pb_results pbr = {0};
	struct kv_version *vers = NULL;
	size_t nvers = 0;
	Strata__Versions pbv = STRATA__VERSIONS__INIT;
	Strata__Version *pbv_items = NULL, **pbv_ptrs = NULL;
	struct kv_job_info job, *jobs = NULL;
	size_t njobs = 0;
	struct srv_pb_job pbjob, *pbjobs = NULL;
	Strata__Job **pbjob_ptrs = NULL;
	Strata__JobList jlist = STRATA__JOB_LIST__INIT;
	struct kv_cell *cells = NULL;
	char *status = NULL;

	switch (m->op_case) {
	case STRATA__REQUEST__OP_PING:
		break;
	case STRATA__REQUEST__OP_STATUS:
		status = srv_status_json(s);
		if (!status) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		resp.result_case = STRATA__RESPONSE__RESULT_STATUS_JSON;
		resp.status_json = status;
		break;
	case STRATA__REQUEST__OP_TABLE_CREATE: {
		struct kv_table t;
		rc = srv_table_in(m->table_create->table, &t, &err);
		if (rc)
			break;
		rc = kv_table_create(s->db, &t, &err);
		free(t.features);
		if (!rc)
			st_info("table %s created", t.name);
		break;
	}
	case STRATA__REQUEST__OP_TABLE_GET:
		rc = kv_table_get(s->db, m->table_get->name, &tab, &err);
		if (rc)
			break;
		if ((rc = srv_table_out(tab, &pbt))) {
			st_error_set(&err, rc, "out of memory");
			break;
		}
		resp.result_case = STRATA__RESPONSE__RESULT_TABLE;
		resp.table = &pbt.msg;
		break;
	case STRATA__REQUEST__OP_TABLE_LIST:
		rc = kv_table_list(s->db, &tabs, &ntabs, &err);
		if (rc)
			break;
		pbts = calloc(ntabs + 1, sizeof(*pbts));
		pbt_ptrs = calloc(ntabs + 1, sizeof(*pbt_ptrs));
		if (!pbts || !pbt_ptrs) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < ntabs && !rc; i++) {
			if ((rc = srv_table_out(tabs[i], &pbts[i])))
				st_error_set(&err, rc, "out of memory");
			pbt_ptrs[i] = &pbts[i].msg;
		}
		tlist.n_tables = ntabs;
		tlist.tables = pbt_ptrs;
		resp.result_case = STRATA__RESPONSE__RESULT_TABLES;
		resp.tables = &tlist;
		break;
	case STRATA__REQUEST__OP_TABLE_ALTER: {
		const Strata__TableAlterReq *a = m->table_alter;
		struct kv_alter al = {.ttl_us = a->ttl_us, .max_versions = a->max_versions};
		struct kv_feature_def *add = calloc(a->n_add + 1, sizeof(*add));
		if (!add) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < a->n_add && !rc; i++) {
			if (strlen(a->add[i]->name) >= KV_NAME_MAX)
				rc = st_error_set(&err, ST_EINVAL, "feature name too long");
			else
				strcpy(add[i].name, a->add[i]->name);
			add[i].type = (enum kv_type)a->add[i]->type;
			add[i].dim = a->add[i]->dim;
		}
		al.nadd = (uint32_t)a->n_add;
		al.add = add;
		if (!rc)
			rc = kv_table_alter(s->db, a->name, &al, &err);
		free(add);
		break;
	}
	case STRATA__REQUEST__OP_TABLE_DROP:
		rc = kv_table_drop(s->db, m->table_drop->name, &err);
		if (!rc)
			st_info("table %s dropped", m->table_drop->name);
		break;
	case STRATA__REQUEST__OP_PUT: {
		const Strata__PutReq *p = m->put;
		cells = calloc(p->n_cells + 1, sizeof(*cells));
		if (!cells) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < p->n_cells && !rc; i++) {
			const Strata__Cell *c = p->cells[i];
			cells[i].entity = (const char *)c->entity.data;
			cells[i].entity_len = c->entity.len;
			cells[i].feature = c->feature;
			cells[i].ts = c->ts;
			rc = srv_value_in(c->value, s->cfg.max_value, &cells[i].value, &err);
			if (rc)
				st_error_prefix(&err, "cell %zu", i);
		}
		if (!rc)
			rc = kv_put(s->db, p->table, cells, p->n_cells, &err);
		break;
	}
	case STRATA__REQUEST__OP_DEL: {
		const Strata__DeleteReq *d = m->del;
		rc = kv_delete(s->db, d->table, (const char *)d->entity.data, d->entity.len,
			       (const char *const *)d->features, d->n_features, d->ts, &err);
		break;
	}
	case STRATA__REQUEST__OP_GET: {
		const Strata__GetReq *g = m->get;
		struct kv_read_opts o = {g->as_of, g->known_at, read_flags};
		if ((rc = srv_check_features(g->n_features, &err)))
			break;
		if (g->n_entities == 0) {
			rc = st_error_set(&err, ST_EINVAL, "no entities requested");
			break;
		}
		if (g->n_entities * g->n_features > SRV_MAX_RESULTS) {
			rc = st_error_set(&err, ST_ELIMIT,
					  "%zu entities x %zu features exceeds %d results per "
					  "request",
					  g->n_entities, g->n_features, SRV_MAX_RESULTS);
			break;
		}
		nres = g->n_entities * g->n_features;
		res = calloc(nres, sizeof(*res));
		if (!res) {
			nres = 0;
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		if (g->n_entities == 1) {
			rc = kv_get(s->db, g->table, (const char *)g->entities[0].data,
				    g->entities[0].len, (const char *const *)g->features,
				    g->n_features, &o, res, &err);
		} else {
			const char **ents = malloc(g->n_entities * sizeof(*ents));
			size_t *lens = malloc(g->n_entities * sizeof(*lens));
			if (!ents || !lens) {
				rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			} else {
				for (size_t i = 0; i < g->n_entities; i++) {
					ents[i] = (const char *)g->entities[i].data;
					lens[i] = g->entities[i].len;
				}
				rc = kv_multiget(s->db, g->table, ents, lens, g->n_entities,
						 (const char *const *)g->features, g->n_features,
						 &o, res, &err);
			}
			free(ents);
			free(lens);
		}
		if (rc) {
			free(res);
			res = NULL;
			nres = 0;
			break;
		}
		if ((rc = srv_results_out(res, nres, &pbr))) {
			st_error_set(&err, rc, "out of memory");
			break;
		}
		resp.result_case = STRATA__RESPONSE__RESULT_RESULTS;
		resp.results = &pbr.msg;
		break;
	}
	case STRATA__REQUEST__OP_HISTORY: {
		const Strata__HistoryReq *h = m->history;
		rc = kv_history(s->db, h->table, (const char *)h->entity.data, h->entity.len,
				h->feature, h->has_from ? h->from : ST_TS_MIN, h->to, h->limit, h->known_at, &vers, &nvers,
				&err);
		if (rc)
			break;
		pbv_items = calloc(nvers + 1, sizeof(*pbv_items));
		pbv_ptrs = calloc(nvers + 1, sizeof(*pbv_ptrs));
		res = calloc(nvers + 1, sizeof(*res));
		if (!pbv_items || !pbv_ptrs || !res) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		/* res[] holds shallow copies: vers keeps ownership of the values. */
		for (size_t i = 0; i < nvers; i++)
			res[i] = vers[i].r;
		if ((rc = srv_results_out(res, nvers, &pbr))) {
			st_error_set(&err, rc, "out of memory");
			break;
		}
		for (size_t i = 0; i < nvers; i++) {
			strata__version__init(&pbv_items[i]);
			pbv_items[i].has_tombstone = 1;
			pbv_items[i].tombstone = vers[i].tombstone;
			pbv_items[i].r = &pbr.rs[i];
			pbv_ptrs[i] = &pbv_items[i];
		}
		pbv.n_versions = nvers;
		pbv.versions = pbv_ptrs;
		resp.result_case = STRATA__RESPONSE__RESULT_VERSIONS;
		resp.versions = &pbv;
		free(res);
		res = NULL; /* shallow: not released below */
		break;
	}
	case STRATA__REQUEST__OP_JOIN_OPEN: {
		const Strata__JoinOpenReq *jo = m->join_open;
		if ((rc = srv_check_features(jo->n_features, &err)))
			break;
		size_t chunk = jo->chunk_rows ? jo->chunk_rows : SRV_JOIN_CHUNK_DEFAULT;
		if (chunk > SRV_JOIN_CHUNK_MAX) {
			rc = st_error_set(&err, ST_ELIMIT, "chunk_rows %zu exceeds %d", chunk,
					  SRV_JOIN_CHUNK_MAX);
			break;
		}
		uint64_t conn_id = req->conn->id; /* immutable after creation: safe to read */
		int open = 0;
		pthread_mutex_lock(&s->joins_mu);
		for (struct srv_join *j = s->joins; j; j = j->next)
			open += j->conn_id == conn_id;
		pthread_mutex_unlock(&s->joins_mu);
		if (open >= SRV_JOINS_PER_CONN) {
			rc = st_error_set(&err, ST_ELIMIT, "too many open joins on this connection "
					  "(limit %d)", SRV_JOINS_PER_CONN);
			break;
		}
		struct srv_join *j = calloc(1, sizeof(*j));
		if (!j) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		rc = kv_join_open(s->db, jo->table, (const char *const *)jo->features,
				  jo->n_features, jo->known_at, chunk, &j->j, &err);
		if (rc) {
			free(j);
			break;
		}
		pthread_mutex_init(&j->mu, NULL);
		j->refs = 1;
		j->nfeatures = jo->n_features;
		j->conn_id = conn_id;
		pthread_mutex_lock(&s->joins_mu);
		j->id = ++s->next_join_id;
		j->next = s->joins;
		s->joins = j;
		pthread_mutex_unlock(&s->joins_mu);
		resp.result_case = STRATA__RESPONSE__RESULT_JOIN_ID;
		resp.join_id = j->id;
		break;
	}
	case STRATA__REQUEST__OP_JOIN_PUSH: {
		const Strata__JoinPushReq *jp = m->join_push;
		struct srv_join *j = srv_join_find(s, jp->join_id, req->conn->id);
		if (!j) {
			rc = st_error_set(&err, ST_ENOTFOUND, "no open join %llu on this connection",
					  (unsigned long long)jp->join_id);
			break;
		}
		if (jp->n_entities != jp->n_ts)
			rc = st_error_set(&err, ST_EINVAL, "%zu entities but %zu timestamps",
					  jp->n_entities, jp->n_ts);
		else if (jp->n_entities * j->nfeatures > SRV_MAX_RESULTS)
			rc = st_error_set(&err, ST_ELIMIT, "push of %zu rows exceeds %zu rows",
					  jp->n_entities, SRV_MAX_RESULTS / j->nfeatures);
		else if (!(res = calloc(jp->n_entities * j->nfeatures + 1, sizeof(*res))))
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
		if (rc) {
			srv_join_put(s, j);
			break;
		}
		pthread_mutex_lock(&j->mu);
		for (size_t i = 0; i < jp->n_entities && !rc; i++) {
			int full = kv_join_push(j->j, (const char *)jp->entities[i].data,
						jp->entities[i].len, jp->ts[i], &err);
			if (full < 0)
				rc = st_error_prefix(&err, "row %zu", i);
			else if (full == 1)
				rc = srv_join_collect(j, res, &nres, &err);
		}
		if (!rc && kv_join_rows(j->j))
			rc = srv_join_collect(j, res, &nres, &err);
		if (rc)
			kv_join_reset(j->j);
		pthread_mutex_unlock(&j->mu);
		srv_join_put(s, j);
		if (rc)
			break;
		if ((rc = srv_results_out(res, nres, &pbr))) {
			st_error_set(&err, rc, "out of memory");
			break;
		}
		resp.result_case = STRATA__RESPONSE__RESULT_RESULTS;
		resp.results = &pbr.msg;
		break;
	}
	case STRATA__REQUEST__OP_JOIN_CLOSE: {
		uint64_t id = m->join_close->join_id, conn_id = req->conn->id;
		struct srv_join *found = NULL;
		pthread_mutex_lock(&s->joins_mu);
		for (struct srv_join **pp = &s->joins; *pp; pp = &(*pp)->next) {
			if ((*pp)->id == id && (*pp)->conn_id == conn_id) {
				found = *pp;
				*pp = found->next;
				break;
			}
		}
		pthread_mutex_unlock(&s->joins_mu);
		if (!found) {
			rc = st_error_set(&err, ST_ENOTFOUND, "no open join %llu on this connection",
					  (unsigned long long)id);
			break;
		}
		srv_join_put(s, found); /* freed now, or by a pipelined push still running */
		break;
	}
	case STRATA__REQUEST__OP_PRELOAD_SUBMIT: {
		struct kv_preload_req pr;
		uint64_t id;
		rc = srv_preload_in(m->preload_submit->req, &pr, &err);
		if (!rc)
			rc = kv_preload_submit(s->db, &pr, &id, &err);
		if (rc)
			break;
		st_info("preload job %llu submitted: %s into %s", (unsigned long long)id, pr.path,
			pr.table);
		resp.result_case = STRATA__RESPONSE__RESULT_JOB_ID;
		resp.job_id = id;
		break;
	}
	case STRATA__REQUEST__OP_JOB_GET:
		rc = kv_job_get(s->db, m->job_get->id, &job, &err);
		if (rc)
			break;
		srv_job_out(&job, &pbjob);
		resp.result_case = STRATA__RESPONSE__RESULT_JOB;
		resp.job = &pbjob.msg;
		break;
	case STRATA__REQUEST__OP_JOB_LIST:
		rc = kv_job_list(s->db, &jobs, &njobs, &err);
		if (rc)
			break;
		pbjobs = calloc(njobs + 1, sizeof(*pbjobs));
		pbjob_ptrs = calloc(njobs + 1, sizeof(*pbjob_ptrs));
		if (!pbjobs || !pbjob_ptrs) {
			rc = st_error_set(&err, ST_ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < njobs; i++) {
			srv_job_out(&jobs[i], &pbjobs[i]);
			pbjob_ptrs[i] = &pbjobs[i].msg;
		}
		jlist.n_jobs = njobs;
		jlist.jobs = pbjob_ptrs;
		resp.result_case = STRATA__RESPONSE__RESULT_JOBS;
		resp.jobs = &jlist;
		break;
	case STRATA__REQUEST__OP_JOB_CANCEL:
		rc = kv_job_cancel(s->db, m->job_cancel->id, &err);
		break;
	default:
		rc = st_error_set(&err, ST_EPROTO, "unknown operation");
		break;
	}

	if (rc == ST_EBUSY && (read_flags & KV_READ_CACHED_ONLY)) {
		deferred = 1;
	} else if (rc) {
		if (!err.msg[0])
			st_error_set(&err, rc, "%s", st_strerror(rc));
		req->failed = 1;
		if (srv_error_frame(resp.id, rc, err.msg, &req->frame, &req->frame_len))
			req->frame = NULL;
	} else if (srv_pack(&resp, &req->frame, &req->frame_len)) {
		req->failed = 1;
		if (srv_error_frame(resp.id, ST_ENOMEM, "out of memory packing the response",
				    &req->frame, &req->frame_len))
			req->frame = NULL;
	}

	if (res) {
		kv_result_release(res, nres);
		free(res);
	}
	srv_results_free(&pbr);
	if (vers) {
		for (size_t i = 0; i < nvers; i++)
			kv_result_release(&vers[i].r, 1);
		free(vers);
	}
	free(pbv_items);
	free(pbv_ptrs);
	if (tab)
		kv_table_free(tab);
	srv_pb_table_free(&pbt);
	if (tabs) {
		for (size_t i = 0; i < ntabs; i++) {
			if (pbts)
				srv_pb_table_free(&pbts[i]);
			kv_table_free(tabs[i]);
		}
		free(tabs);
	}
	free(pbts);
	free(pbt_ptrs);
	free(jobs);
	free(pbjobs);
	free(pbjob_ptrs);
	free(cells);
	free(status);
	if (deferred)
		return 0;
	strata__request__free_unpacked(m, NULL);
	req->msg = NULL;
	return 1;
}

void srv_dispatch(struct srv_server *s, struct srv_req *req)
{
	dispatch(s, req, 0);
}

int srv_dispatch_cached(struct srv_server *s, struct srv_req *req)
{
	if (req->msg->op_case != STRATA__REQUEST__OP_GET)
		return 0;
	return dispatch(s, req, KV_READ_CACHED_ONLY);
}
