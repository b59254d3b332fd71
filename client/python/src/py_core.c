/* strata._core module: the Client type (embedded store or connection pool), errors,
 * table registry, preload jobs and the time/duration parsers shared with the CLI. */
#include "client/python/src/py_core.h"

#include <stdlib.h>
#include <string.h>

#include "client/strata.h"

/* Registered by strata/__init__.py: {code: exception class}, the class for transport errors,
 * and factories turning a bytearray into a numpy float32 / int64 array. */
static PyObject *g_errors, *g_unavailable, *g_f32vec, *g_i64list;

PyObject *py_raise(const struct st_error *err)
{
	PyObject *cls = NULL;
	if (g_errors) {
		PyObject *k = PyLong_FromLong(err->code);
		cls = k ? PyDict_GetItemWithError(g_errors, k) : NULL;
		Py_XDECREF(k);
		if (PyErr_Occurred())
			return NULL;
	}
	if (!cls)
		cls = g_unavailable ? g_unavailable : PyExc_RuntimeError;
	const char *msg = err->msg[0] ? err->msg : st_strerror(err->code);
	PyObject *args = Py_BuildValue("(si)", msg, err->code);
	if (args) {
		PyErr_SetObject(cls, args);
		Py_DECREF(args);
	}
	return NULL;
}

PyObject *py_raisef(int code, const char *fmt, ...)
{
	struct st_error e = {.code = code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	return py_raise(&e);
}

static PyObject *py_array_from(PyObject *factory, const void *p, size_t bytes)
{
	PyObject *ba = PyByteArray_FromStringAndSize(p, (Py_ssize_t)bytes);
	if (!ba)
		return NULL;
	PyObject *r = factory ? PyObject_CallOneArg(factory, ba) : Py_NewRef(ba);
	Py_DECREF(ba);
	return r;
}

PyObject *py_value_to_object(const struct kv_value *v)
{
	switch (v->type) {
	case KV_I64:
		return PyLong_FromLongLong(v->i64);
	case KV_F64:
		return PyFloat_FromDouble(v->f64);
	case KV_F32:
		return PyFloat_FromDouble(v->f32);
	case KV_STR:
		return PyUnicode_DecodeUTF8(v->ptr, v->len, "replace");
	case KV_BYTES:
		return PyBytes_FromStringAndSize(v->ptr, v->len);
	case KV_F32VEC:
		return py_array_from(g_f32vec, v->ptr, (size_t)v->len * sizeof(float));
	case KV_I64LIST:
		return py_array_from(g_i64list, v->ptr, (size_t)v->len * sizeof(int64_t));
	case KV_NONE:
		break;
	}
	Py_RETURN_NONE;
}

/* ---- entities and names ---- */

static int py_entities_from_ints(struct py_entities *e, PyObject *obj)
{
	Py_buffer b;
	if (PyObject_GetBuffer(obj, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
		return -1;
	int ok = b.itemsize == 8 && b.format && strchr("lq", b.format[0]) && !b.format[1];
	size_t n = ok ? (size_t)(b.len / 8) : 0;
	if (ok) {
		e->n = n;
		e->ptr = calloc(n + 1, sizeof(*e->ptr));
		e->len = calloc(n + 1, sizeof(*e->len));
		e->arena = malloc(n * 21 + 1);
	}
	if (ok && (!e->ptr || !e->len || !e->arena)) {
		PyBuffer_Release(&b);
		PyErr_NoMemory();
		return -1;
	}
	char *p = e->arena;
	for (size_t i = 0; i < n; i++) {
		int w = sprintf(p, "%lld", (long long)((const int64_t *)b.buf)[i]);
		e->ptr[i] = p;
		e->len[i] = (size_t)w;
		p += w;
	}
	PyBuffer_Release(&b);
	if (!ok)
		PyErr_SetString(PyExc_TypeError, "entities: expected a list of str/bytes or int64 array");
	return ok ? 0 : -1;
}

int py_entities_init(struct py_entities *e, PyObject *obj)
{
	memset(e, 0, sizeof(*e));
	if (!PyList_Check(obj) && !PyTuple_Check(obj))
		return py_entities_from_ints(e, obj);
	/* A private copy: other threads may mutate the caller's list while the GIL is released. */
	if (!(e->keep = PySequence_List(obj)))
		return -1;
	e->n = (size_t)PyList_GET_SIZE(e->keep);
	e->ptr = calloc(e->n + 1, sizeof(*e->ptr));
	e->len = calloc(e->n + 1, sizeof(*e->len));
	if (!e->ptr || !e->len) {
		PyErr_NoMemory();
		return -1;
	}
	for (size_t i = 0; i < e->n; i++) {
		PyObject *o = PyList_GET_ITEM(e->keep, (Py_ssize_t)i);
		Py_ssize_t len;
		if (PyUnicode_Check(o)) {
			if (!(e->ptr[i] = PyUnicode_AsUTF8AndSize(o, &len)))
				return -1;
		} else if (PyBytes_Check(o)) {
			e->ptr[i] = PyBytes_AS_STRING(o);
			len = PyBytes_GET_SIZE(o);
		} else {
			PyErr_Format(PyExc_TypeError, "entity %zu is %s, expected str or bytes", i,
				     Py_TYPE(o)->tp_name);
			return -1;
		}
		e->len[i] = (size_t)len;
	}
	return 0;
}

void py_entities_release(struct py_entities *e)
{
	Py_CLEAR(e->keep);
	free(e->ptr);
	free(e->len);
	free(e->arena);
	memset(e, 0, sizeof(*e));
}

const char **py_names(PyObject *list, size_t *n)
{
	if (!PyList_Check(list)) {
		PyErr_SetString(PyExc_TypeError, "expected a list of names");
		return NULL;
	}
	*n = (size_t)PyList_GET_SIZE(list);
	const char **v = calloc(*n + 1, sizeof(*v));
	if (!v) {
		PyErr_NoMemory();
		return NULL;
	}
	for (size_t i = 0; i < *n; i++) {
		v[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(list, (Py_ssize_t)i));
		if (!v[i]) {
			free(v);
			return NULL;
		}
	}
	return v;
}

/* ---- the client: backends ---- */

int py_backend_take(struct py_client *c, struct cli_backend *be, struct st_error *err)
{
	pthread_rwlock_rdlock(&c->life);
	if (c->closed) {
		pthread_rwlock_unlock(&c->life);
		return st_error_set(err, ST_ECLOSED, "the client is closed");
	}
	if (c->embedded) {
		*be = c->emb;
		return 0;
	}
	pthread_mutex_lock(&c->mu);
	int have = c->nidle > 0;
	if (have)
		*be = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->mu);
	if (have)
		return 0;
	struct strata_connect_opts o;
	strata_connect_opts_init(&o);
	o.token = c->token;
	o.connect_timeout_ms = c->connect_timeout_ms;
	o.io_timeout_ms = c->io_timeout_ms;
	int rc = cli_remote_open_opts(c->addr, &o, be, err);
	if (rc)
		pthread_rwlock_unlock(&c->life);
	return rc;
}

void py_backend_put(struct py_client *c, struct cli_backend *be)
{
	if (!c->embedded) {
		pthread_mutex_lock(&c->mu);
		int keep = c->nidle < PY_POOL_MAX;
		if (keep)
			c->idle[c->nidle++] = *be;
		pthread_mutex_unlock(&c->mu);
		if (!keep)
			be->close(be->ctx);
	}
	pthread_rwlock_unlock(&c->life);
}

static void py_client_shutdown(struct py_client *c)
{
	pthread_rwlock_wrlock(&c->life);
	if (!c->closed) {
		c->closed = 1;
		if (c->embedded)
			c->emb.close(c->emb.ctx);
		for (size_t i = 0; i < c->nidle; i++)
			c->idle[i].close(c->idle[i].ctx);
		c->nidle = 0;
	}
	pthread_rwlock_unlock(&c->life);
}

static PyObject *py_client_alloc(int embedded)
{
	struct py_client *c = PyObject_New(struct py_client, &py_client_type);
	if (!c)
		return NULL;
	memset((char *)c + sizeof(PyObject), 0, sizeof(*c) - sizeof(PyObject));
	c->embedded = embedded;
	c->closed = 1; /* until opened */
	pthread_rwlock_init(&c->life, NULL);
	pthread_mutex_init(&c->mu, NULL);
	return (PyObject *)c;
}

static void py_client_dealloc(PyObject *self)
{
	struct py_client *c = (struct py_client *)self;
	Py_BEGIN_ALLOW_THREADS
	py_client_shutdown(c);
	Py_END_ALLOW_THREADS
	pthread_rwlock_destroy(&c->life);
	pthread_mutex_destroy(&c->mu);
	free(c->addr);
	free(c->token);
	PyObject_Free(self);
}

/* open_embedded(path) -> Client */
static PyObject *py_open_embedded(PyObject *mod, PyObject *args)
{
	const char *dir;
	if (!PyArg_ParseTuple(args, "s", &dir))
		return NULL;
	struct py_client *c = (struct py_client *)py_client_alloc(1);
	if (!c)
		return NULL;
	struct st_error err = {0};
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = cli_embedded_open(dir, 1, &c->emb, &err);
	Py_END_ALLOW_THREADS
	if (rc) {
		Py_DECREF(c);
		return py_raise(&err);
	}
	c->closed = 0;
	return (PyObject *)c;
}

/* connect(addr, token, connect_timeout_ms, io_timeout_ms) -> Client (one connection made
 * now, so a wrong address or token fails here). */
static PyObject *py_connect(PyObject *mod, PyObject *args)
{
	const char *addr, *token;
	int cto, ito;
	if (!PyArg_ParseTuple(args, "szii", &addr, &token, &cto, &ito))
		return NULL;
	struct py_client *c = (struct py_client *)py_client_alloc(0);
	if (!c)
		return NULL;
	c->addr = strdup(addr);
	c->token = token ? strdup(token) : NULL;
	c->connect_timeout_ms = cto;
	c->io_timeout_ms = ito;
	c->closed = 0;
	if (!c->addr || (token && !c->token)) {
		Py_DECREF(c);
		return PyErr_NoMemory();
	}
	struct cli_backend be;
	struct st_error err = {0};
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = py_backend_take(c, &be, &err);
	if (!rc)
		py_backend_put(c, &be);
	Py_END_ALLOW_THREADS
	if (rc) {
		Py_DECREF(c);
		return py_raise(&err);
	}
	return (PyObject *)c;
}

static PyObject *py_client_close(PyObject *self, PyObject *unused)
{
	Py_BEGIN_ALLOW_THREADS
	py_client_shutdown((struct py_client *)self);
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

static PyObject *py_client_closed(PyObject *self, void *unused)
{
	return PyBool_FromLong(((struct py_client *)self)->closed);
}

static PyObject *py_client_embedded(PyObject *self, void *unused)
{
	return PyBool_FromLong(((struct py_client *)self)->embedded);
}

/* ---- table registry ---- */

static PyObject *py_table_to_dict(const struct kv_table *t)
{
	PyObject *feats = PyList_New(t->nfeatures);
	for (uint32_t i = 0; feats && i < t->nfeatures; i++) {
		char tn[32];
		/* (name, type, own ttl: 0 = the table's, KV_TTL_NONE = none, effective ttl) */
		PyObject *f = Py_BuildValue("(ssLL)", t->features[i].name,
					    kv_type_name(t->features[i].type, t->features[i].dim,
							 tn, sizeof(tn)),
					    (long long)t->features[i].ttl_us,
					    (long long)kv_feature_ttl(t, &t->features[i]));
		if (!f) {
			Py_CLEAR(feats);
			break;
		}
		PyList_SET_ITEM(feats, i, f);
	}
	if (!feats)
		return NULL;
	return Py_BuildValue("{s:s,s:s,s:I,s:L,s:I,s:L,s:L,s:N}", "name", t->name,
			     "entity_column", t->entity_column[0] ? t->entity_column : "entity",
			     "id", t->id, "ttl_us", (long long)t->ttl_us, "max_versions",
			     t->max_versions, "retention_us", (long long)t->retention_us,
			     "created_us", (long long)t->created_us, "features", feats);
}

/* Feature definitions from a list of (name, type string[, own ttl us: 0 = the table's,
 * KV_TTL_NONE = none]). *out: free(). */
static int py_feature_defs(PyObject *list, struct kv_feature_def **out, uint32_t *n)
{
	if (!PyList_Check(list)) {
		PyErr_SetString(PyExc_TypeError, "features: expected a list of (name, type)");
		return -1;
	}
	*n = (uint32_t)PyList_GET_SIZE(list);
	struct kv_feature_def *d = calloc(*n + 1, sizeof(*d));
	if (!d) {
		PyErr_NoMemory();
		return -1;
	}
	for (uint32_t i = 0; i < *n; i++) {
		const char *name, *type;
		long long ttl = 0;
		if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "ss|L", &name, &type, &ttl))
			goto fail;
		if (ttl < 0 && ttl != KV_TTL_NONE) {
			py_raisef(ST_EINVAL, "feature '%s': negative ttl", name);
			goto fail;
		}
		d[i].ttl_us = ttl;
		if (strlen(name) >= KV_NAME_MAX) {
			py_raisef(ST_EINVAL, "feature name '%s' is longer than %d bytes", name,
				  KV_NAME_MAX - 1);
			goto fail;
		}
		snprintf(d[i].name, sizeof(d[i].name), "%s", name);
		if (kv_type_parse(type, &d[i].type, &d[i].dim)) {
			py_raisef(ST_EINVAL,
				  "feature '%s': unknown type '%s' (i64, f64, f32, str, bytes, "
				  "f32[N], i64[])", name, type);
			goto fail;
		}
	}
	*out = d;
	return 0;
fail:
	free(d);
	return -1;
}

/* create_table(name, entity_column, ttl_us, max_versions, [(name, type)], retention_us) */
static PyObject *py_create_table(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	const char *name, *ecol;
	long long ttl, retention = 0;
	unsigned int maxv;
	PyObject *feats;
	if (!PyArg_ParseTuple(args, "szLIO|L", &name, &ecol, &ttl, &maxv, &feats, &retention))
		return NULL;
	struct kv_table t = {.ttl_us = ttl, .max_versions = maxv, .retention_us = retention};
	if (strlen(name) >= KV_NAME_MAX || (ecol && strlen(ecol) >= KV_NAME_MAX))
		return py_raisef(ST_EINVAL, "names are at most %d bytes", KV_NAME_MAX - 1);
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.entity_column, sizeof(t.entity_column), "%s", ecol ? ecol : "");
	if (py_feature_defs(feats, &t.features, &t.nfeatures))
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	int rc;
	PY_RUN(c, be, err, rc, be.table_create(be.ctx, &t, &err));
	free(t.features);
	if (rc)
		return py_raise(&err);
	Py_RETURN_NONE;
}

static PyObject *py_table_get(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	const char *name;
	if (!PyArg_ParseTuple(args, "s", &name))
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	struct kv_table *t = NULL;
	int rc;
	PY_RUN(c, be, err, rc, be.table_get(be.ctx, name, &t, &err));
	if (rc)
		return py_raise(&err);
	PyObject *d = py_table_to_dict(t);
	kv_table_free(t);
	return d;
}

static PyObject *py_table_list(PyObject *self, PyObject *unused)
{
	struct py_client *c = (struct py_client *)self;
	struct cli_backend be;
	struct st_error err = {0};
	struct kv_table **ts = NULL;
	size_t n = 0;
	int rc;
	PY_RUN(c, be, err, rc, be.table_list(be.ctx, &ts, &n, &err));
	if (rc)
		return py_raise(&err);
	PyObject *l = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; i < n; i++) {
		PyObject *d = l ? py_table_to_dict(ts[i]) : NULL;
		if (d)
			PyList_SET_ITEM(l, (Py_ssize_t)i, d);
		else
			Py_CLEAR(l);
		kv_table_free(ts[i]);
	}
	free(ts);
	return l;
}

/* alter_table(name, ttl_us or -1, max_versions or -1, [(name, type)] to add,
 * retention_us or -1) */
static PyObject *py_alter_table(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	const char *name;
	long long ttl, maxv, retention = -1;
	PyObject *feats;
	if (!PyArg_ParseTuple(args, "sLLO|L", &name, &ttl, &maxv, &feats, &retention))
		return NULL;
	struct kv_feature_def *add;
	uint32_t nadd;
	if (py_feature_defs(feats, &add, &nadd))
		return NULL;
	struct kv_alter a = KV_ALTER_NONE;
	a.ttl_us = ttl;
	a.max_versions = maxv;
	a.retention_us = retention;
	a.nadd = nadd;
	a.add = add;
	struct cli_backend be;
	struct st_error err = {0};
	int rc;
	PY_RUN(c, be, err, rc, be.table_alter(be.ctx, name, &a, &err));
	free(add);
	if (rc)
		return py_raise(&err);
	Py_RETURN_NONE;
}

static PyObject *py_drop_table(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	const char *name;
	if (!PyArg_ParseTuple(args, "s", &name))
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	int rc;
	PY_RUN(c, be, err, rc, be.table_drop(be.ctx, name, &err));
	if (rc)
		return py_raise(&err);
	Py_RETURN_NONE;
}

/* ---- preload jobs ---- */

static PyObject *py_job_to_dict(const struct kv_job_info *j)
{
	PyObject *bad = PyList_New(0);
	for (int i = 0; bad && i < KV_JOB_BAD_SAMPLES && j->bad_samples[i][0]; i++) {
		PyObject *s = PyUnicode_DecodeUTF8(j->bad_samples[i], strlen(j->bad_samples[i]),
						   "replace");
		if (!s || PyList_Append(bad, s))
			Py_CLEAR(bad);
		Py_XDECREF(s);
	}
	if (!bad)
		return NULL;
	return Py_BuildValue("{s:K,s:s,s:O,s:s,s:s,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:d,s:d,"
			     "s:i,s:s,s:s,s:N}",
			     "id", (unsigned long long)j->id, "state", kv_job_state_name(j->state),
			     "interrupted", j->interrupted ? Py_True : Py_False, "table",
			     j->req.table, "path", j->req.path, "submitted_us",
			     (long long)j->submitted_us, "started_us", (long long)j->started_us,
			     "finished_us", (long long)j->finished_us, "rows", (long long)j->rows,
			     "cells", (long long)j->cells, "bad_rows", (long long)j->bad_rows,
			     "bytes_done", (long long)j->bytes_done, "bytes_total",
			     (long long)j->bytes_total, "rows_per_s", j->rows_per_s, "eta_s",
			     j->eta_s, "attempts", j->attempts, "phase", j->phase, "error",
			     j->error, "bad_samples", bad);
}

/* preload(table, path, format or None, skip_bad_rows, ts_column or None, ts_unit[,
 * allow_any_ts]) -> id */
static PyObject *py_preload(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	const char *table, *path, *fmt, *tscol, *unit;
	int skip, any = 0;
	if (!PyArg_ParseTuple(args, "sszpzs|p", &table, &path, &fmt, &skip, &tscol, &unit, &any))
		return NULL;
	struct kv_preload_req r;
	kv_preload_req_init(&r);
	if (strlen(table) >= sizeof(r.table) || strlen(path) >= sizeof(r.path) ||
	    (tscol && strlen(tscol) >= sizeof(r.ts_column)))
		return py_raisef(ST_EINVAL, "preload: table, path or ts column name too long");
	snprintf(r.table, sizeof(r.table), "%s", table);
	snprintf(r.path, sizeof(r.path), "%s", path);
	if (tscol)
		snprintf(r.ts_column, sizeof(r.ts_column), "%s", tscol);
	r.skip_bad_rows = skip;
	r.allow_any_ts = any;
	if (fmt && kv_format_parse(fmt, &r.format))
		return py_raisef(ST_EINVAL, "preload: unknown format '%s' (csv, tsv, jsonl)", fmt);
	if (st_ts_unit_parse(unit, &r.ts_unit))
		return py_raisef(ST_EINVAL, "preload: unknown ts unit '%s' (s, ms, us)", unit);
	struct cli_backend be;
	struct st_error err = {0};
	uint64_t id = 0;
	int rc;
	PY_RUN(c, be, err, rc, be.preload_submit(be.ctx, &r, &id, &err));
	if (rc)
		return py_raise(&err);
	return PyLong_FromUnsignedLongLong(id);
}

static PyObject *py_job_get(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	unsigned long long id;
	if (!PyArg_ParseTuple(args, "K", &id))
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	struct kv_job_info j;
	int rc;
	PY_RUN(c, be, err, rc, be.job_get(be.ctx, id, &j, &err));
	if (rc)
		return py_raise(&err);
	return py_job_to_dict(&j);
}

static PyObject *py_job_cancel(PyObject *self, PyObject *args)
{
	struct py_client *c = (struct py_client *)self;
	unsigned long long id;
	if (!PyArg_ParseTuple(args, "K", &id))
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	int rc;
	PY_RUN(c, be, err, rc, be.job_cancel(be.ctx, id, &err));
	if (rc)
		return py_raise(&err);
	Py_RETURN_NONE;
}

/* ---- module functions: parsers shared with the CLI, registration ---- */

static PyObject *py_parse_duration(PyObject *mod, PyObject *args)
{
	const char *s;
	if (!PyArg_ParseTuple(args, "s", &s))
		return NULL;
	int64_t us;
	if (st_dur_parse(s, &us))
		return py_raisef(ST_EINVAL,
				 "bad duration '%s' (examples: 30d, 12h, 15m, 90s, 250ms, 0)", s);
	return PyLong_FromLongLong(us);
}

static PyObject *py_parse_ts(PyObject *mod, PyObject *args)
{
	const char *s;
	Py_ssize_t len;
	if (!PyArg_ParseTuple(args, "s#", &s, &len))
		return NULL;
	int64_t us;
	/* Bare integers are refused by the caller (they need an explicit unit). */
	if (st_ts_parse(s, (size_t)len, ST_TS_US, &us))
		return py_raisef(ST_EINVAL,
				 "bad timestamp '%s' (ISO 8601, e.g. 2026-11-01T10:00:00Z)", s);
	return PyLong_FromLongLong(us);
}

/* check_ts(text, unit, us): None when the integer timestamp `text`, read in `unit` ("s",
 * "ms", "us") as `us` microseconds, is plausible (1990-2200), else InvalidArgument with the
 * store's message naming the unit that would make it plausible (the CLI's guard). "ns" is
 * checked on the converted value without a suggestion (the store has no ns unit). */
static PyObject *py_check_ts(PyObject *mod, PyObject *args)
{
	const char *s, *unit;
	Py_ssize_t len;
	long long us;
	if (!PyArg_ParseTuple(args, "s#sL", &s, &len, &unit, &us))
		return NULL;
	char why[256], date[ST_TS_BUFLEN];
	enum st_ts_unit u;
	if (!strcmp(unit, "ns")) {
		if (us >= ST_TS_PLAUSIBLE_MIN && us < ST_TS_PLAUSIBLE_MAX)
			Py_RETURN_NONE;
		return py_raisef(ST_EINVAL, "integer timestamp %.24s in ns is %s, outside 1990-2200",
				 s, st_ts_format(us, date));
	}
	if (st_ts_unit_parse(unit, &u))
		return py_raisef(ST_EINVAL, "unknown ts unit '%s' (s, ms, us, ns)", unit);
	if (st_ts_check_plausible(s, (size_t)len, u, us, why, sizeof(why)))
		return py_raisef(ST_EINVAL, "%s", why);
	Py_RETURN_NONE;
}

static PyObject *py_format_ts(PyObject *mod, PyObject *args)
{
	long long us;
	if (!PyArg_ParseTuple(args, "L", &us))
		return NULL;
	char buf[ST_TS_BUFLEN];
	return PyUnicode_FromString(st_ts_format(us, buf));
}

static PyObject *py_register(PyObject *mod, PyObject *args)
{
	PyObject *errors, *unavailable, *f32vec, *i64list;
	if (!PyArg_ParseTuple(args, "O!OOO", &PyDict_Type, &errors, &unavailable, &f32vec,
			      &i64list))
		return NULL;
	Py_XSETREF(g_errors, Py_NewRef(errors));
	Py_XSETREF(g_unavailable, Py_NewRef(unavailable));
	Py_XSETREF(g_f32vec, Py_NewRef(f32vec));
	Py_XSETREF(g_i64list, Py_NewRef(i64list));
	Py_RETURN_NONE;
}

static PyObject *py_code_names(PyObject *mod, PyObject *unused)
{
	PyObject *d = PyDict_New();
	for (int code = ST_ERR_FIRST; d && code < ST_ERR_LAST; code++) {
		PyObject *k = PyLong_FromLong(code);
		PyObject *v = PyUnicode_FromString(st_strerror(code));
		if (!k || !v || PyDict_SetItem(d, k, v))
			Py_CLEAR(d);
		Py_XDECREF(k);
		Py_XDECREF(v);
	}
	return d;
}

static PyMethodDef py_client_methods[] = {
	{"close", py_client_close, METH_NOARGS, "Close the store or the connections."},
	{"create_table", py_create_table, METH_VARARGS, NULL},
	{"table_get", py_table_get, METH_VARARGS, NULL},
	{"table_list", py_table_list, METH_NOARGS, NULL},
	{"alter_table", py_alter_table, METH_VARARGS, NULL},
	{"drop_table", py_drop_table, METH_VARARGS, NULL},
	{"put_columns", py_put_columns, METH_VARARGS, NULL},
	{"delete", py_delete, METH_VARARGS, NULL},
	{"get", py_get, METH_VARARGS, NULL},
	{"history", py_history, METH_VARARGS, NULL},
	{"join", py_join, METH_VARARGS, NULL},
	{"preload", py_preload, METH_VARARGS, NULL},
	{"job_get", py_job_get, METH_VARARGS, NULL},
	{"job_cancel", py_job_cancel, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef py_client_getset[] = {
	{"closed", py_client_closed, NULL, NULL, NULL},
	{"embedded", py_client_embedded, NULL, NULL, NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject py_client_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "strata._core.CoreClient",
	.tp_basicsize = sizeof(struct py_client),
	.tp_dealloc = py_client_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Low-level handle; use strata.connect() or strata.open().",
	.tp_methods = py_client_methods,
	.tp_getset = py_client_getset,
};

static PyMethodDef py_module_methods[] = {
	{"open_embedded", py_open_embedded, METH_VARARGS, NULL},
	{"connect", py_connect, METH_VARARGS, NULL},
	{"parse_duration", py_parse_duration, METH_VARARGS, NULL},
	{"parse_ts", py_parse_ts, METH_VARARGS, NULL},
	{"check_ts", py_check_ts, METH_VARARGS, NULL},
	{"format_ts", py_format_ts, METH_VARARGS, NULL},
	{"register", py_register, METH_VARARGS, NULL},
	{"code_names", py_code_names, METH_NOARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef py_module = {
	PyModuleDef_HEAD_INIT, "strata._core", "C core of the strata package.", -1,
	py_module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void);
PyMODINIT_FUNC PyInit__core(void)
{
	if (PyType_Ready(&py_client_type) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&py_module);
	if (!m)
		return NULL;
	PyObject *mx = PyLong_FromLongLong(ST_TS_MAX);
	if (!mx || PyModule_AddObjectRef(m, "CoreClient", (PyObject *)&py_client_type) < 0 ||
	    PyModule_AddObjectRef(m, "TS_MAX", mx) < 0) {
		Py_XDECREF(mx);
		Py_DECREF(m);
		return NULL;
	}
	Py_DECREF(mx);
	if (PyModule_AddIntConstant(m, "TS_PLAUSIBLE_MIN", ST_TS_PLAUSIBLE_MIN) < 0 ||
	    PyModule_AddIntConstant(m, "TS_PLAUSIBLE_MAX", ST_TS_PLAUSIBLE_MAX) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
