/* libstrata synchronous operations and the pipelined batch API. */
#include "common/st_grow.h"
#include "client/strata_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_REQ(var, opcase, field, msg) \
	Strata__Request var = STRATA__REQUEST__INIT; \
	var.op_case = opcase; \
	var.field = msg

static int sc_simple(strata *c, Strata__Request *req, int idempotent, struct strata_error *err)
{
	Strata__Response *r;
	int rc = sc_call(c, req, &r, idempotent, err);
	if (!rc)
		strata__response__free_unpacked(r, NULL);
	return rc;
}

static int sc_copy_name(char *dst, const char *src, struct strata_error *err)
{
	if (!src || strlen(src) >= STRATA_NAME_MAX)
		return sc_error(err, STRATA_EINVAL, "name missing or longer than %d bytes",
				STRATA_NAME_MAX - 1);
	strcpy(dst, src);
	return 0;
}

int strata_ping(strata *c, struct strata_error *err)
{
	Strata__PingReq p = STRATA__PING_REQ__INIT;
	SC_REQ(req, STRATA__REQUEST__OP_PING, ping, &p);
	return sc_simple(c, &req, 1, err);
}

int strata_status(strata *c, char **json, struct strata_error *err)
{
	Strata__StatusReq s = STRATA__STATUS_REQ__INIT;
	SC_REQ(req, STRATA__REQUEST__OP_STATUS, status, &s);
	return sc_call_json(c, &req, 1, json, err);
}

/* ---- tables ---- */

static void sc_feature_to_pb(const struct strata_feature_def *f, Strata__Feature *pb)
{
	strata__feature__init(pb);
	pb->name = (char *)f->name;
	pb->type = f->type;
	pb->has_dim = 1;
	pb->dim = f->dim;
	if (f->ttl_us) {
		pb->has_ttl_us = 1;
		pb->ttl_us = f->ttl_us;
	}
}

/* Converts n feature definitions into protobuf messages: *fs holds them, *fp points at each
 * (both malloc'ed, freed by the caller even on failure). Returns 0 or STRATA_ENOMEM. */
static int sc_features_to_pb(const struct strata_feature_def *defs, uint32_t n,
			     Strata__Feature **fs, Strata__Feature ***fp)
{
	*fs = calloc(n + 1, sizeof(**fs));
	*fp = calloc(n + 1, sizeof(**fp));
	if (!*fs || !*fp)
		return STRATA_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		sc_feature_to_pb(&defs[i], &(*fs)[i]);
		(*fp)[i] = &(*fs)[i];
	}
	return 0;
}

int strata_table_create(strata *c, const struct strata_table *t, struct strata_error *err)
{
	Strata__Table pt = STRATA__TABLE__INIT;
	Strata__Feature *fs, **fp;
	int rc;
	if (sc_features_to_pb(t->features, t->nfeatures, &fs, &fp)) {
		rc = sc_error(err, STRATA_ENOMEM, "out of memory");
		goto out;
	}
	pt.name = (char *)t->name;
	pt.entity_column = (char *)t->entity_column;
	pt.has_ttl_us = 1;
	pt.ttl_us = t->ttl_us;
	pt.has_max_versions = 1;
	pt.max_versions = t->max_versions;
	pt.has_retention_us = 1;
	pt.retention_us = t->retention_us;
	pt.n_features = t->nfeatures;
	pt.features = fp;
	Strata__TableCreateReq m = STRATA__TABLE_CREATE_REQ__INIT;
	m.table = &pt;
	SC_REQ(req, STRATA__REQUEST__OP_TABLE_CREATE, table_create, &m);
	rc = sc_simple(c, &req, 0, err);
out:
	free(fs);
	free(fp);
	return rc;
}

void strata_table_free(struct strata_table *t)
{
	if (!t)
		return;
	free(t->features);
	free(t);
}

static int sc_table_from_pb(const Strata__Table *pb, struct strata_table **out,
			    struct strata_error *err)
{
	struct strata_table *t = calloc(1, sizeof(*t));
	if (!t || !(t->features = calloc(pb->n_features + 1, sizeof(*t->features)))) {
		free(t);
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	}
	int rc = sc_copy_name(t->name, pb->name, err);
	if (!rc)
		rc = sc_copy_name(t->entity_column, pb->entity_column ? pb->entity_column : "",
				  err);
	t->id = pb->id;
	t->ttl_us = pb->ttl_us;
	t->max_versions = pb->max_versions;
	t->retention_us = pb->retention_us;
	t->created_us = pb->created_us;
	t->nfeatures = (uint32_t)pb->n_features;
	for (size_t i = 0; i < pb->n_features && !rc; i++) {
		rc = sc_copy_name(t->features[i].name, pb->features[i]->name, err);
		t->features[i].type = (enum strata_type)pb->features[i]->type;
		t->features[i].dim = pb->features[i]->dim;
		t->features[i].id = (uint16_t)pb->features[i]->id;
		t->features[i].ttl_us = pb->features[i]->ttl_us;
	}
	if (rc) {
		strata_table_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int strata_table_get(strata *c, const char *name, struct strata_table **out,
		     struct strata_error *err)
{
	Strata__TableGetReq m = STRATA__TABLE_GET_REQ__INIT;
	m.name = (char *)name;
	SC_REQ(req, STRATA__REQUEST__OP_TABLE_GET, table_get, &m);
	Strata__Response *r;
	int rc = sc_call(c, &req, &r, 1, err);
	if (rc)
		return rc;
	if (r->result_case != STRATA__RESPONSE__RESULT_TABLE)
		rc = sc_error(err, STRATA_EPROTO, "server answered table_get without a table");
	else
		rc = sc_table_from_pb(r->table, out, err);
	strata__response__free_unpacked(r, NULL);
	return rc;
}

int strata_table_list(strata *c, struct strata_table ***out, size_t *n,
		      struct strata_error *err)
{
	Strata__TableListReq m = STRATA__TABLE_LIST_REQ__INIT;
	SC_REQ(req, STRATA__REQUEST__OP_TABLE_LIST, table_list, &m);
	Strata__Response *r;
	int rc = sc_call(c, &req, &r, 1, err);
	if (rc)
		return rc;
	size_t nt = r->result_case == STRATA__RESPONSE__RESULT_TABLES ? r->tables->n_tables : 0;
	struct strata_table **ts = calloc(nt + 1, sizeof(*ts));
	if (!ts)
		rc = sc_error(err, STRATA_ENOMEM, "out of memory");
	for (size_t i = 0; i < nt && !rc; i++)
		rc = sc_table_from_pb(r->tables->tables[i], &ts[i], err);
	strata__response__free_unpacked(r, NULL);
	if (rc) {
		for (size_t i = 0; ts && i < nt; i++)
			strata_table_free(ts[i]);
		free(ts);
		return rc;
	}
	*out = ts;
	*n = nt;
	return 0;
}

int strata_table_alter(strata *c, const char *name, const struct strata_alter *a,
		       struct strata_error *err)
{
	Strata__TableAlterReq m = STRATA__TABLE_ALTER_REQ__INIT;
	Strata__Feature *fs, **fp;
	int rc;
	if (sc_features_to_pb(a->add, a->nadd, &fs, &fp)) {
		rc = sc_error(err, STRATA_ENOMEM, "out of memory");
		goto out;
	}
	m.name = (char *)name;
	m.has_ttl_us = 1;
	m.ttl_us = a->ttl_us;
	m.has_max_versions = 1;
	m.max_versions = a->max_versions;
	m.has_retention_us = 1;
	m.retention_us = a->retention_us;
	m.n_add = a->nadd;
	m.add = fp;
	SC_REQ(req, STRATA__REQUEST__OP_TABLE_ALTER, table_alter, &m);
	rc = sc_simple(c, &req, 0, err);
out:
	free(fs);
	free(fp);
	return rc;
}

int strata_table_drop(strata *c, const char *name, struct strata_error *err)
{
	Strata__TableDropReq m = STRATA__TABLE_DROP_REQ__INIT;
	m.name = (char *)name;
	SC_REQ(req, STRATA__REQUEST__OP_TABLE_DROP, table_drop, &m);
	return sc_simple(c, &req, 0, err);
}

/* ---- request builders shared by the synchronous calls and the batch ---- */

struct sc_put_msg {
	Strata__PutReq m;
	Strata__Cell *cells;
	Strata__Cell **ptrs;
	Strata__Value *vals;
};

static int sc_put_build(struct sc_put_msg *p, const char *table, const struct strata_cell *cells,
			size_t n)
{
	strata__put_req__init(&p->m);
	p->cells = calloc(n + 1, sizeof(*p->cells));
	p->ptrs = calloc(n + 1, sizeof(*p->ptrs));
	p->vals = calloc(n + 1, sizeof(*p->vals));
	if (!p->cells || !p->ptrs || !p->vals)
		return STRATA_ENOMEM;
	p->m.table = (char *)table;
	for (size_t i = 0; i < n; i++) {
		Strata__Cell *pc = &p->cells[i];
		strata__cell__init(pc);
		pc->entity.data = (uint8_t *)cells[i].entity;
		pc->entity.len = cells[i].entity_len;
		pc->feature = (char *)cells[i].feature;
		pc->ts = cells[i].ts;
		sc_value_to_pb(&cells[i].value, &p->vals[i]);
		pc->value = &p->vals[i];
		p->ptrs[i] = pc;
	}
	p->m.n_cells = n;
	p->m.cells = p->ptrs;
	return 0;
}

static void sc_put_free(struct sc_put_msg *p)
{
	free(p->cells);
	free(p->ptrs);
	free(p->vals);
}

struct sc_get_msg {
	Strata__GetReq m;
	ProtobufCBinaryData *ents;
};

static int sc_get_build(struct sc_get_msg *g, const char *table, const char *const *entities,
			const size_t *lens, size_t ne, const char *const *features, size_t nf,
			const struct strata_read_opts *o)
{
	strata__get_req__init(&g->m);
	g->ents = calloc(ne + 1, sizeof(*g->ents));
	if (!g->ents)
		return STRATA_ENOMEM;
	for (size_t i = 0; i < ne; i++) {
		g->ents[i].data = (uint8_t *)entities[i];
		g->ents[i].len = lens[i];
	}
	g->m.table = (char *)table;
	g->m.n_entities = ne;
	g->m.entities = g->ents;
	g->m.n_features = nf;
	g->m.features = (char **)features;
	if (o) {
		g->m.has_as_of = 1;
		g->m.as_of = o->as_of;
		g->m.has_known_at = 1;
		g->m.known_at = o->known_at;
	}
	return 0;
}

/* The read preference of a get: the options' own, else the handle's default. */
static int sc_replica_ok(const strata *c, const struct strata_read_opts *o)
{
	return (o && o->replica_ok) || c->o.replica_reads;
}

static void sc_get_bound(const strata *c, const struct strata_read_opts *o,
			 struct sc_get_msg *g)
{
	uint32_t lag = o && o->max_lag_ms ? o->max_lag_ms : c->o.max_lag_ms;
	/* Not replica-ok: a replica must not answer, even when the read reaches one directly
	 * (the one-entity get of a handle without the layout, below). */
	g->m.has_primary_only = !sc_replica_ok(c, o);
	g->m.primary_only = g->m.has_primary_only;
	if (lag && sc_replica_ok(c, o)) {
		g->m.has_max_lag_ms = 1;
		g->m.max_lag_ms = lag;
	}
}

static int sc_results_take(Strata__Response *r, size_t want, struct strata_result *out,
			   struct strata_error *err)
{
	if (r->result_case != STRATA__RESPONSE__RESULT_RESULTS || r->results->n_results != want)
		return sc_error(err, STRATA_EPROTO, "server answered with %zu results, expected %zu",
				r->result_case == STRATA__RESPONSE__RESULT_RESULTS
					? r->results->n_results
					: 0,
				want);
	return sc_results_from_pb(r->results->results, want, out, err);
}

/* ---- writes and reads ---- */

int strata_put(strata *c, const char *table, const struct strata_cell *cells, size_t n,
	       struct strata_error *err)
{
	struct sc_put_msg p;
	int rc = sc_put_build(&p, table, cells, n);
	if (rc) {
		sc_put_free(&p);
		return sc_error(err, rc, "out of memory");
	}
	if (sc_routed(c)) {
		rc = sc_route_put(c, &p.m, err);
	} else {
		SC_REQ(req, STRATA__REQUEST__OP_PUT, put, &p.m);
		rc = sc_simple(c, &req, 0, err);
	}
	sc_put_free(&p);
	return rc;
}

int strata_delete(strata *c, const char *table, const char *entity, size_t entity_len,
		  const char *const *features, size_t nfeatures, int64_t ts,
		  struct strata_error *err)
{
	Strata__DeleteReq m = STRATA__DELETE_REQ__INIT;
	m.table = (char *)table;
	m.entity.data = (uint8_t *)entity;
	m.entity.len = entity_len;
	m.n_features = nfeatures;
	m.features = (char **)features;
	m.ts = ts;
	SC_REQ(req, STRATA__REQUEST__OP_DEL, del, &m);
	if (sc_routed(c)) {
		Strata__Response *r;
		int rc = sc_route_one(c, &req, &m.entity, 0, &r, err);
		if (r)
			strata__response__free_unpacked(r, NULL);
		return rc;
	}
	return sc_simple(c, &req, 0, err);
}

int strata_multiget(strata *c, const char *table, const char *const *entities,
		    const size_t *entity_lens, size_t nentities, const char *const *features,
		    size_t nfeatures, const struct strata_read_opts *o, struct strata_result *out,
		    struct strata_error *err)
{
	struct sc_get_msg g;
	int rc = sc_get_build(&g, table, entities, entity_lens, nentities, features, nfeatures, o);
	if (rc) {
		free(g.ents);
		return sc_error(err, rc, "out of memory");
	}
	sc_get_bound(c, o, &g);
	SC_REQ(req, STRATA__REQUEST__OP_GET, get, &g.m);
	Strata__Response *r;
	/* One entity on a handle that has not needed the layout yet (a CLI command, a fresh
	 * connection per read): ask the connected node first, which answers or redirects
	 * (EMOVED), at one round trip. Only when that cannot answer (transport error, no
	 * primary reachable) does the handle learn the layout and route, with its retries. */
	int direct = !c->cl_known && nentities == 1 && !sc_replica_ok(c, o);
	if (direct) {
		struct strata_error e1;
		rc = sc_call(c, &req, &r, 1, &e1);
		if (!rc || !(sc_is_transport_error(rc) || rc == STRATA_EUNAVAILABLE ||
			     rc == STRATA_EBUSY)) {
			if (rc)
				*err = e1;
			goto out;
		}
	}
	if (sc_routed(c)) {
		rc = sc_route_get(c, &g.m, sc_replica_ok(c, o), out, err);
		free(g.ents);
		return rc;
	}
	rc = sc_call(c, &req, &r, 1, err);
out:
	free(g.ents);
	if (rc)
		return rc;
	rc = sc_results_take(r, nentities * nfeatures, out, err);
	strata__response__free_unpacked(r, NULL);
	return rc;
}

int strata_get(strata *c, const char *table, const char *entity, size_t entity_len,
	       const char *const *features, size_t nfeatures, const struct strata_read_opts *o,
	       struct strata_result *out, struct strata_error *err)
{
	return strata_multiget(c, table, &entity, &entity_len, 1, features, nfeatures, o, out,
			       err);
}

int strata_history(strata *c, const char *table, const char *entity, size_t entity_len,
		   const char *feature, int64_t from, int64_t to, size_t limit, int64_t known_at,
		   struct strata_version **out, size_t *n, struct strata_error *err)
{
	Strata__HistoryReq m = STRATA__HISTORY_REQ__INIT;
	m.table = (char *)table;
	m.entity.data = (uint8_t *)entity;
	m.entity.len = entity_len;
	m.feature = (char *)feature;
	m.has_from = 1;
	m.from = from;
	m.has_to = 1;
	m.to = to;
	m.has_limit = 1;
	m.limit = limit;
	m.has_known_at = 1;
	m.known_at = known_at;
	SC_REQ(req, STRATA__REQUEST__OP_HISTORY, history, &m);
	Strata__Response *r;
	int rc = sc_routed(c) ? sc_route_one(c, &req, &m.entity, 1, &r, err)
		       : sc_call(c, &req, &r, 1, err);
	if (rc)
		return rc;
	size_t nv = r->result_case == STRATA__RESPONSE__RESULT_VERSIONS ? r->versions->n_versions
									: 0;
	struct strata_version *v = calloc(nv + 1, sizeof(*v));
	if (!v)
		rc = sc_error(err, STRATA_ENOMEM, "out of memory");
	for (size_t i = 0; i < nv && !rc; i++) {
		v[i].tombstone = r->versions->versions[i]->tombstone;
		rc = sc_results_from_pb(&r->versions->versions[i]->r, 1, &v[i].r, err);
		if (v[i].tombstone) {
			/* A tombstone has no value but keeps its time. */
			v[i].r.found = 0;
			v[i].r.ts = r->versions->versions[i]->r->ts;
			v[i].r.ingest_us = r->versions->versions[i]->r->ingest_us;
		}
		if (rc)
			for (size_t k = 0; k < i; k++)
				strata_result_release(&v[k].r, 1);
	}
	strata__response__free_unpacked(r, NULL);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = nv;
	return 0;
}

/* ---- preload jobs ---- */

void strata_preload_init(struct strata_preload *p)
{
	memset(p, 0, sizeof(*p));
	p->format = STRATA_FMT_AUTO;
	p->ts_unit = STRATA_TS_MS;
	strcpy(p->ts_column, "ts");
}

static void sc_job_from_pb(const Strata__Job *pb, struct strata_job *j)
{
	memset(j, 0, sizeof(*j));
	j->id = pb->id;
	j->state = (enum strata_job_state)pb->state;
	j->interrupted = pb->interrupted;
	if (pb->req) {
		snprintf(j->req.table, sizeof(j->req.table), "%s", pb->req->table);
		snprintf(j->req.path, sizeof(j->req.path), "%s", pb->req->path);
		j->req.format = (enum strata_format)pb->req->format;
		j->req.skip_bad_rows = pb->req->skip_bad_rows;
		snprintf(j->req.ts_column, sizeof(j->req.ts_column), "%s",
			 pb->req->ts_column ? pb->req->ts_column : "");
		j->req.ts_unit = (enum strata_ts_unit)pb->req->ts_unit;
		j->req.allow_any_ts = pb->req->allow_any_ts;
	}
	j->submitted_us = pb->submitted_us;
	j->started_us = pb->started_us;
	j->finished_us = pb->finished_us;
	j->rows = pb->rows;
	j->cells = pb->cells;
	j->bad_rows = pb->bad_rows;
	j->bytes_done = pb->bytes_done;
	j->bytes_total = pb->bytes_total;
	j->rows_per_s = pb->rows_per_s;
	j->eta_s = pb->eta_s;
	j->attempts = pb->attempts;
	snprintf(j->phase, sizeof(j->phase), "%s", pb->phase ? pb->phase : "");
	snprintf(j->error, sizeof(j->error), "%s", pb->error ? pb->error : "");
	for (size_t i = 0; i < pb->n_bad_samples && i < STRATA_JOB_BAD_SAMPLES; i++)
		snprintf(j->bad_samples[i], sizeof(j->bad_samples[i]), "%s", pb->bad_samples[i]);
}

int strata_preload_submit(strata *c, const struct strata_preload *p, uint64_t *id,
			  struct strata_error *err)
{
	Strata__Preload pp = STRATA__PRELOAD__INIT;
	pp.table = (char *)p->table;
	pp.path = (char *)p->path;
	pp.has_format = 1;
	pp.format = p->format;
	pp.has_skip_bad_rows = 1;
	pp.skip_bad_rows = p->skip_bad_rows;
	pp.ts_column = (char *)p->ts_column;
	pp.has_ts_unit = 1;
	pp.ts_unit = p->ts_unit;
	pp.has_allow_any_ts = 1;
	pp.allow_any_ts = p->allow_any_ts;
	Strata__PreloadSubmitReq m = STRATA__PRELOAD_SUBMIT_REQ__INIT;
	m.req = &pp;
	SC_REQ(req, STRATA__REQUEST__OP_PRELOAD_SUBMIT, preload_submit, &m);
	Strata__Response *r;
	int rc = sc_call(c, &req, &r, 0, err);
	if (rc)
		return rc;
	*id = r->job_id;
	strata__response__free_unpacked(r, NULL);
	return 0;
}

int strata_job_get(strata *c, uint64_t id, struct strata_job *out, struct strata_error *err)
{
	Strata__JobGetReq m = STRATA__JOB_GET_REQ__INIT;
	m.id = id;
	SC_REQ(req, STRATA__REQUEST__OP_JOB_GET, job_get, &m);
	Strata__Response *r;
	int rc = sc_call(c, &req, &r, 1, err);
	if (rc)
		return rc;
	if (r->result_case == STRATA__RESPONSE__RESULT_JOB)
		sc_job_from_pb(r->job, out);
	else
		rc = sc_error(err, STRATA_EPROTO, "server answered job_get without a job");
	strata__response__free_unpacked(r, NULL);
	return rc;
}

int strata_job_list(strata *c, struct strata_job **out, size_t *n, struct strata_error *err)
{
	Strata__JobListReq m = STRATA__JOB_LIST_REQ__INIT;
	SC_REQ(req, STRATA__REQUEST__OP_JOB_LIST, job_list, &m);
	Strata__Response *r;
	int rc = sc_call(c, &req, &r, 1, err);
	if (rc)
		return rc;
	size_t nj = r->result_case == STRATA__RESPONSE__RESULT_JOBS ? r->jobs->n_jobs : 0;
	struct strata_job *js = calloc(nj + 1, sizeof(*js));
	if (!js) {
		strata__response__free_unpacked(r, NULL);
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nj; i++)
		sc_job_from_pb(r->jobs->jobs[i], &js[i]);
	strata__response__free_unpacked(r, NULL);
	*out = js;
	*n = nj;
	return 0;
}

int strata_job_cancel(strata *c, uint64_t id, struct strata_error *err)
{
	Strata__JobCancelReq m = STRATA__JOB_CANCEL_REQ__INIT;
	m.id = id;
	SC_REQ(req, STRATA__REQUEST__OP_JOB_CANCEL, job_cancel, &m);
	return sc_simple(c, &req, 0, err);
}

/* ---- pipelined batch ---- */

struct sc_item {
	size_t off, len;   /* packed request body (id 0) in b->bodies */
	size_t nresults;   /* expected results (get/multiget), 0 otherwise */
	int code;
	int done;
	int replica_ok;    /* get/multiget: a replica may answer (cluster) */
	char *msg;         /* error message, owned */
	struct strata_result *results; /* owned */
};

struct strata_batch {
	strata *c;
	struct sc_item *items;
	size_t n, cap;
	uint8_t *bodies;
	size_t blen, bcap;
};

strata_batch *strata_batch_new(strata *c)
{
	strata_batch *b = calloc(1, sizeof(*b));
	if (b)
		b->c = c;
	return b;
}

size_t strata_batch_count(const strata_batch *b)
{
	return b->n;
}

static int sc_batch_add(strata_batch *b, Strata__Request *req, size_t nresults)
{
	if (st_grow((void **)&b->items, &b->cap, b->n + 1, sizeof(*b->items), 64))
		return STRATA_ENOMEM;
	req->id = 0;
	size_t len = strata__request__get_packed_size(req);
	if (b->bcap - b->blen < len) {
		size_t cap = b->bcap ? b->bcap : 4096;
		while (cap - b->blen < len)
			cap *= 2;
		uint8_t *p = realloc(b->bodies, cap);
		if (!p)
			return STRATA_ENOMEM;
		b->bodies = p;
		b->bcap = cap;
	}
	strata__request__pack(req, b->bodies + b->blen);
	struct sc_item *it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->off = b->blen;
	it->len = len;
	it->nresults = nresults;
	b->blen += len;
	return (int)b->n++;
}

int strata_batch_multiget(strata_batch *b, const char *table, const char *const *entities,
			  const size_t *entity_lens, size_t nentities,
			  const char *const *features, size_t nfeatures,
			  const struct strata_read_opts *o)
{
	struct sc_get_msg g;
	int rc = sc_get_build(&g, table, entities, entity_lens, nentities, features, nfeatures, o);
	if (!rc) {
		sc_get_bound(b->c, o, &g);
		SC_REQ(req, STRATA__REQUEST__OP_GET, get, &g.m);
		rc = sc_batch_add(b, &req, nentities * nfeatures);
		if (rc >= 0)
			b->items[rc].replica_ok = sc_replica_ok(b->c, o);
	}
	free(g.ents);
	return rc;
}

int strata_batch_get(strata_batch *b, const char *table, const char *entity, size_t entity_len,
		     const char *const *features, size_t nfeatures,
		     const struct strata_read_opts *o)
{
	return strata_batch_multiget(b, table, &entity, &entity_len, 1, features, nfeatures, o);
}

int strata_batch_put(strata_batch *b, const char *table, const struct strata_cell *cells,
		     size_t n)
{
	struct sc_put_msg p;
	int rc = sc_put_build(&p, table, cells, n);
	if (!rc) {
		SC_REQ(req, STRATA__REQUEST__OP_PUT, put, &p.m);
		rc = sc_batch_add(b, &req, 0);
	}
	sc_put_free(&p);
	return rc;
}

int strata_batch_delete(strata_batch *b, const char *table, const char *entity,
			size_t entity_len, const char *const *features, size_t nfeatures,
			int64_t ts)
{
	Strata__DeleteReq m = STRATA__DELETE_REQ__INIT;
	m.table = (char *)table;
	m.entity.data = (uint8_t *)entity;
	m.entity.len = entity_len;
	m.n_features = nfeatures;
	m.features = (char **)features;
	m.ts = ts;
	SC_REQ(req, STRATA__REQUEST__OP_DEL, del, &m);
	return sc_batch_add(b, &req, 0);
}

static void sc_batch_deliver(void *arg, size_t idx, Strata__Response *r)
{
	strata_batch *b = arg;
	struct sc_item *it = &b->items[idx];
	struct strata_error e = {0};
	it->done = 1;
	it->code = sc_resp_error(r, &e);
	if (!it->code && it->nresults) {
		it->results = calloc(it->nresults, sizeof(*it->results));
		if (!it->results)
			it->code = sc_error(&e, STRATA_ENOMEM, "out of memory");
		else if ((it->code = sc_results_take(r, it->nresults, it->results, &e))) {
			free(it->results);
			it->results = NULL;
		}
	}
	if (it->code)
		it->msg = strdup(e.msg);
	strata__response__free_unpacked(r, NULL);
}

/* Over a cluster the whole batch goes through the routed path at once: every operation
 * split per node, every node's parts sent before any answer is awaited. */
static void sc_batch_exec_routed(strata_batch *b)
{
	struct sc_batch_op *ops = calloc(b->n + 1, sizeof(*ops));
	for (size_t i = 0; i < b->n; i++) {
		struct sc_item *it = &b->items[i];
		struct strata_error e = {0};
		if (!ops || !(ops[i].req = strata__request__unpack(NULL, it->len,
								     b->bodies + it->off)) ||
		    !(it->results = calloc(it->nresults + 1, sizeof(*it->results))))
			it->code = sc_error(&e, STRATA_ENOMEM, "out of memory");
		if (it->code) {
			it->done = 1;
			it->msg = strdup(e.msg);
		}
	}
	if (ops) {
		for (size_t i = 0; i < b->n; i++) {
			ops[i].replica_ok = b->items[i].replica_ok;
			ops[i].out = b->items[i].results;
		}
		/* an operation that could not even be prepared is left out */
		size_t k = 0;
		for (size_t i = 0; i < b->n; i++)
			if (!b->items[i].done)
				ops[k++] = ops[i];
		sc_route_batch(b->c, ops, k);
		for (size_t i = 0, j = 0; i < b->n; i++) {
			struct sc_item *it = &b->items[i];
			if (it->done)
				continue;
			struct sc_batch_op *o = &ops[j++];
			it->done = 1;
			if ((it->code = o->rc))
				it->msg = strdup(o->err.msg);
			strata__request__free_unpacked(o->req, NULL);
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		struct sc_item *it = &b->items[i];
		if (it->results && (it->code || !it->nresults)) {
			free(it->results);
			it->results = NULL;
		}
	}
	free(ops);
}

int strata_batch_exec(strata_batch *b, struct strata_error *err)
{
	strata *c = b->c;
	/* Executing again re-sends every operation: forget the previous answers first. */
	for (size_t i = 0; i < b->n; i++) {
		struct sc_item *it = &b->items[i];
		if (it->results) {
			strata_result_release(it->results, it->nresults);
			free(it->results);
			it->results = NULL;
		}
		free(it->msg);
		it->msg = NULL;
		it->done = 0;
		it->code = 0;
	}
	if (sc_routed(c)) {
		sc_batch_exec_routed(b);
		return 0;
	}
	int rc = sc_ensure(c, err);
	if (rc)
		goto fail_all;
	uint64_t base = sc_reserve_ids(c, b->n);
	/* Send in windows so the output buffer stays bounded for huge batches; each window is
	 * still fully pipelined. */
	const size_t window = 4096;
	size_t got = 0;
	for (size_t start = 0; start < b->n; start += window) {
		size_t end = start + window < b->n ? start + window : b->n;
		for (size_t i = start; i < end; i++)
			if ((rc = sc_queue_body(c, b->bodies + b->items[i].off, b->items[i].len,
						base + i, err)))
				goto fail_all;
		rc = sc_wait(c, base, b->n, end, sc_batch_deliver, b, &got, err);
		if (rc)
			goto fail_all;
	}
	return 0;
fail_all:
	for (size_t i = 0; i < b->n; i++) {
		struct sc_item *it = &b->items[i];
		if (it->done)
			continue;
		it->done = 1;
		it->code = rc;
		it->msg = strdup(err ? err->msg : strata_strerror(rc));
	}
	return rc;
}

int strata_batch_status(const strata_batch *b, size_t i, struct strata_error *err)
{
	if (i >= b->n)
		return sc_error(err, STRATA_EINVAL, "no operation %zu in the batch", i);
	const struct sc_item *it = &b->items[i];
	if (!it->done)
		return sc_error(err, STRATA_EINVAL, "batch not executed");
	if (it->code)
		sc_error(err, it->code, "%s", it->msg ? it->msg : strata_strerror(it->code));
	return it->code;
}

const struct strata_result *strata_batch_results(const strata_batch *b, size_t i, size_t *n)
{
	if (i >= b->n || !b->items[i].results) {
		if (n)
			*n = 0;
		return NULL;
	}
	if (n)
		*n = b->items[i].nresults;
	return b->items[i].results;
}

void strata_batch_clear(strata_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct sc_item *it = &b->items[i];
		if (it->results) {
			strata_result_release(it->results, it->nresults);
			free(it->results);
		}
		free(it->msg);
	}
	b->n = 0;
	b->blen = 0;
}

void strata_batch_free(strata_batch *b)
{
	if (!b)
		return;
	strata_batch_clear(b);
	free(b->items);
	free(b->bodies);
	free(b);
}
