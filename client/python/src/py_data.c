/* Data paths of strata._core: columns (numpy buffers, lists of str/bytes) to cells for puts,
 * and read results to Python objects (get, history) or straight into numpy buffers (join).
 * Column kinds, one letter each, shared with strata/_columns.py:
 *   i int64 (+ missing mask), d float64 (NaN = missing), f float32 (NaN = missing),
 *   v float32[n][dim] (+ mask), l int64 list (flat values + n+1 offsets, + mask),
 *   s list of str/None, b list of bytes/None. */
#include "client/python/src/py_core.h"
#include "client/strata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct py_col {
	const char *name;
	char kind;
	uint32_t dim;
	Py_buffer data, mask, offs;
	PyObject *list; /* s, b: borrowed from the args tuple */
};

static enum kv_type py_kind_type(char kind)
{
	switch (kind) {
	case 'i': return KV_I64;
	case 'd': return KV_F64;
	case 'f': return KV_F32;
	case 'v': return KV_F32VEC;
	case 'l': return KV_I64LIST;
	case 's': return KV_STR;
	case 'b': return KV_BYTES;
	}
	return KV_NONE;
}

static size_t py_kind_size(char kind)
{
	return kind == 'i' || kind == 'd' || kind == 'l' ? 8 : 4;
}

/* Gets a writable or read-only C-contiguous buffer of exactly `bytes` bytes (or, with
 * bytes == 0, any size); `what` names it in the error. */
static int py_buf(PyObject *o, Py_buffer *b, int writable, size_t bytes, const char *what)
{
	int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
	if (PyObject_GetBuffer(o, b, flags) < 0)
		return -1;
	if (bytes && (size_t)b->len != bytes) {
		PyErr_Format(PyExc_ValueError, "%s: buffer has %zd bytes, expected %zu", what,
			     b->len, bytes);
		PyBuffer_Release(b);
		b->obj = NULL;
		return -1;
	}
	return 0;
}

static void py_cols_release(struct py_col *cols, size_t n)
{
	for (size_t i = 0; cols && i < n; i++) {
		if (cols[i].data.obj)
			PyBuffer_Release(&cols[i].data);
		if (cols[i].mask.obj)
			PyBuffer_Release(&cols[i].mask);
		if (cols[i].offs.obj)
			PyBuffer_Release(&cols[i].offs);
	}
	free(cols);
}

/* Checks the object column once before anything is written: every value is None or of the
 * right type (str values get their UTF-8 form cached now). */
static int py_col_check_objects(const struct py_col *c, size_t rows)
{
	if (!PyList_Check(c->list) || (size_t)PyList_GET_SIZE(c->list) != rows) {
		PyErr_Format(PyExc_ValueError, "column '%s': expected a list of %zu values",
			     c->name, rows);
		return -1;
	}
	for (size_t r = 0; r < rows; r++) {
		PyObject *o = PyList_GET_ITEM(c->list, (Py_ssize_t)r);
		if (o == Py_None)
			continue;
		if (c->kind == 's' ? !PyUnicode_Check(o) : !PyBytes_Check(o)) {
			py_raisef(ST_ETYPE, "feature '%s' is %s but row %zu holds a %s", c->name,
				  c->kind == 's' ? "str" : "bytes", r, Py_TYPE(o)->tp_name);
			return -1;
		}
		if (c->kind == 's' && !PyUnicode_AsUTF8AndSize(o, NULL))
			return -1;
	}
	return 0;
}

/* Parses one (name, kind, data, mask, extra) column description for `rows` rows. */
static int py_col_parse(PyObject *t, size_t rows, struct py_col *c)
{
	PyObject *data, *mask, *extra;
	int kind;
	if (!PyArg_ParseTuple(t, "sCOOO", &c->name, &kind, &data, &mask, &extra))
		return -1;
	c->kind = (char)kind;
	if (py_kind_type(c->kind) == KV_NONE) {
		PyErr_Format(PyExc_ValueError, "column '%s': unknown kind '%c'", c->name, kind);
		return -1;
	}
	if (c->kind == 's' || c->kind == 'b') {
		c->list = data;
		return py_col_check_objects(c, rows);
	}
	if (c->kind == 'v') {
		long dim = PyLong_AsLong(extra);
		if (dim <= 0 || dim > KV_DIM_MAX) {
			if (!PyErr_Occurred())
				PyErr_Format(PyExc_ValueError, "column '%s': bad dim", c->name);
			return -1;
		}
		c->dim = (uint32_t)dim;
	}
	if (c->kind == 'l') {
		if (py_buf(extra, &c->offs, 0, (rows + 1) * 8, c->name) ||
		    py_buf(data, &c->data, 0, 0, c->name))
			return -1;
		const int64_t *off = c->offs.buf;
		for (size_t r = 0; r < rows; r++)
			if (off[r] < 0 || off[r + 1] < off[r] ||
			    (size_t)off[r + 1] * 8 > (size_t)c->data.len) {
				PyErr_Format(PyExc_ValueError, "column '%s': bad offsets", c->name);
				return -1;
			}
	} else {
		size_t per = c->kind == 'v' ? c->dim : 1;
		if (py_buf(data, &c->data, 0, rows * per * py_kind_size(c->kind), c->name))
			return -1;
	}
	return mask == Py_None ? 0 : py_buf(mask, &c->mask, 0, rows, c->name);
}

/* The value of column c at row r; 0 if it is missing. */
static int py_col_value(const struct py_col *c, size_t r, struct kv_value *v)
{
	if (c->mask.obj && ((const uint8_t *)c->mask.buf)[r])
		return 0;
	memset(v, 0, sizeof(*v));
	v->type = py_kind_type(c->kind);
	switch (c->kind) {
	case 'i':
		v->i64 = ((const int64_t *)c->data.buf)[r];
		return 1;
	case 'd':
		v->f64 = ((const double *)c->data.buf)[r];
		return !isnan(v->f64);
	case 'f':
		v->f32 = ((const float *)c->data.buf)[r];
		return !isnan(v->f32);
	case 'v':
		v->len = c->dim;
		v->ptr = (float *)c->data.buf + (size_t)r * c->dim;
		return 1;
	case 'l': {
		const int64_t *off = c->offs.buf;
		v->len = (uint32_t)(off[r + 1] - off[r]);
		v->ptr = (int64_t *)c->data.buf + off[r];
		return 1;
	}
	}
	PyObject *o = PyList_GET_ITEM(c->list, (Py_ssize_t)r);
	if (o == Py_None)
		return 0;
	Py_ssize_t len;
	if (c->kind == 's') {
		v->ptr = (void *)PyUnicode_AsUTF8AndSize(o, &len); /* cached by the check */
	} else {
		v->ptr = PyBytes_AS_STRING(o);
		len = PyBytes_GET_SIZE(o);
	}
	v->len = (uint32_t)len;
	return 1;
}

/* Writes rows [from, to) as one put; *ncells gets the cells sent. */
static int py_put_batch(struct py_client *cl, const char *table, const struct py_entities *e,
			const int64_t *ts, const struct py_col *cols, size_t ncols, size_t from,
			size_t to, struct kv_cell *cells, size_t *ncells, struct st_error *err)
{
	size_t n = 0;
	for (size_t r = from; r < to; r++)
		for (size_t k = 0; k < ncols; k++) {
			struct kv_cell *cell = &cells[n];
			if (!py_col_value(&cols[k], r, &cell->value))
				continue;
			cell->entity = e->ptr[r];
			cell->entity_len = e->len[r];
			cell->feature = cols[k].name;
			cell->ts = ts[r];
			n++;
		}
	*ncells = n;
	if (!n)
		return 0;
	struct cli_backend be;
	int rc;
	PY_RUN(cl, be, *err, rc, be.put(be.ctx, table, cells, n, err));
	return rc;
}

/* put_columns(table, entities, ts int64[n], [(name, kind, data, mask, extra)], batch_rows)
 * -> cells written. Each batch of rows is one request (atomic per shard). */
PyObject *py_put_columns(PyObject *self, PyObject *args)
{
	struct py_client *cl = (struct py_client *)self;
	const char *table;
	PyObject *ents, *tso, *colso;
	Py_ssize_t batch;
	if (!PyArg_ParseTuple(args, "sOOO!n", &table, &ents, &tso, &PyList_Type, &colso, &batch))
		return NULL;
	struct py_entities e;
	Py_buffer tsb = {0};
	size_t ncols = (size_t)PyList_GET_SIZE(colso), total = 0;
	struct py_col *cols = calloc(ncols + 1, sizeof(*cols));
	struct kv_cell *cells = NULL;
	PyObject *ret = NULL;
	if (py_entities_init(&e, ents) || !cols)
		goto out;
	if (py_buf(tso, &tsb, 0, e.n * 8, "ts"))
		goto out;
	for (size_t k = 0; k < ncols; k++)
		if (py_col_parse(PyList_GET_ITEM(colso, (Py_ssize_t)k), e.n, &cols[k]))
			goto out;
	size_t step = batch > 0 ? (size_t)batch : 4096;
	if (!(cells = calloc(step * ncols + 1, sizeof(*cells)))) {
		PyErr_NoMemory();
		goto out;
	}
	for (size_t from = 0; from < e.n; from += step) {
		size_t to = from + step < e.n ? from + step : e.n, nc;
		struct st_error err = {0};
		if (py_put_batch(cl, table, &e, tsb.buf, cols, ncols, from, to, cells, &nc, &err)) {
			if (total)
				st_error_prefix(&err, "after %zu cells were written", total);
			py_raise(&err);
			goto out;
		}
		total += nc;
	}
	ret = PyLong_FromSize_t(total);
out:
	if (!cols && !PyErr_Occurred())
		PyErr_NoMemory();
	free(cells);
	py_cols_release(cols, ncols);
	if (tsb.obj)
		PyBuffer_Release(&tsb);
	py_entities_release(&e);
	return ret;
}

/* delete(table, entity, [features] (empty: all), ts) */
PyObject *py_delete(PyObject *self, PyObject *args)
{
	struct py_client *cl = (struct py_client *)self;
	const char *table, *entity;
	Py_ssize_t elen;
	PyObject *fl;
	long long ts;
	if (!PyArg_ParseTuple(args, "ss#OL", &table, &entity, &elen, &fl, &ts))
		return NULL;
	size_t nf;
	const char **f = py_names(fl, &nf);
	if (!f)
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	int rc;
	PY_RUN(cl, be, err, rc, be.del(be.ctx, table, entity, (size_t)elen, f, nf, ts, &err));
	free(f);
	if (rc)
		return py_raise(&err);
	Py_RETURN_NONE;
}

/* Entities per multi-get request: bounds one request's frame and the server's work per
 * request (other clients' requests interleave between them). */
#define PY_GET_BATCH 512

/* Runs the gets on one backend: one multi-get request per PY_GET_BATCH entities. */
static int py_get_all(struct py_client *cl, const char *table, const struct py_entities *e,
		      const char **f, size_t nf, const struct kv_read_opts *o,
		      struct kv_result *res, struct st_error *err)
{
	struct cli_backend be;
	int rc = py_backend_take(cl, &be, err);
	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < e->n; i += PY_GET_BATCH) {
		size_t n = e->n - i < PY_GET_BATCH ? e->n - i : PY_GET_BATCH;
		rc = be.get(be.ctx, table, e->ptr + i, e->len + i, n, f, nf, o, &res[i * nf], err);
	}
	py_backend_put(cl, &be);
	return rc;
}

/* get(table, entities, [features], as_of, known_at) -> ([values per feature],
 * [event ts per feature], [status per feature]): lists of one entry per entity: the value
 * (None unless present), the event time (None when absent; set for stale values), the
 * status (0 absent, 1 present, 2 stale: enum kv_status). */
PyObject *py_get(PyObject *self, PyObject *args)
{
	struct py_client *cl = (struct py_client *)self;
	const char *table;
	PyObject *ents, *fl;
	long long as_of, known_at;
	if (!PyArg_ParseTuple(args, "sOOLL", &table, &ents, &fl, &as_of, &known_at))
		return NULL;
	struct py_entities e;
	size_t nf = 0;
	const char **f = NULL;
	struct kv_result *res = NULL;
	PyObject *vals = NULL, *tss = NULL, *sts = NULL;
	if (py_entities_init(&e, ents) || !(f = py_names(fl, &nf)))
		goto out;
	if (!(res = calloc(e.n * nf + 1, sizeof(*res)))) {
		PyErr_NoMemory();
		goto out;
	}
	struct kv_read_opts o = {.as_of = as_of, .known_at = known_at};
	struct st_error err = {0};
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = py_get_all(cl, table, &e, f, nf, &o, res, &err);
	Py_END_ALLOW_THREADS
	if (rc) {
		py_raise(&err);
		goto out;
	}
	vals = PyList_New((Py_ssize_t)nf);
	tss = PyList_New((Py_ssize_t)nf);
	sts = PyList_New((Py_ssize_t)nf);
	for (size_t k = 0; vals && tss && sts && k < nf; k++) {
		PyObject *vl = PyList_New((Py_ssize_t)e.n), *tl = PyList_New((Py_ssize_t)e.n);
		PyObject *sl = PyList_New((Py_ssize_t)e.n);
		for (size_t i = 0; vl && tl && sl && i < e.n; i++) {
			const struct kv_result *r = &res[i * nf + k];
			int has_ts = r->status == KV_PRESENT || r->status == KV_STALE;
			PyObject *v = r->found ? py_value_to_object(&r->value) : Py_NewRef(Py_None);
			PyObject *t = has_ts ? PyLong_FromLongLong(r->ts) : Py_NewRef(Py_None);
			PyObject *st = PyLong_FromLong((long)r->status);
			if (!v || !t || !st) {
				Py_XDECREF(v);
				Py_XDECREF(t);
				Py_XDECREF(st);
				Py_CLEAR(vl);
				break;
			}
			PyList_SET_ITEM(vl, (Py_ssize_t)i, v);
			PyList_SET_ITEM(tl, (Py_ssize_t)i, t);
			PyList_SET_ITEM(sl, (Py_ssize_t)i, st);
		}
		if (!vl || !tl || !sl) {
			Py_XDECREF(vl);
			Py_XDECREF(tl);
			Py_XDECREF(sl);
			Py_CLEAR(vals);
			break;
		}
		PyList_SET_ITEM(vals, (Py_ssize_t)k, vl);
		PyList_SET_ITEM(tss, (Py_ssize_t)k, tl);
		PyList_SET_ITEM(sts, (Py_ssize_t)k, sl);
	}
out:
	if (res)
		kv_result_release(res, e.n * nf);
	free(res);
	free(f);
	py_entities_release(&e);
	if (!vals || !tss || !sts) {
		Py_XDECREF(vals);
		Py_XDECREF(tss);
		Py_XDECREF(sts);
		return NULL;
	}
	return Py_BuildValue("(NNN)", vals, tss, sts);
}

/* history(table, entity, feature, from, to, limit, known_at) -> [(ts, ingest_us, tombstone,
 * value)], newest first. */
PyObject *py_history(PyObject *self, PyObject *args)
{
	struct py_client *cl = (struct py_client *)self;
	const char *table, *entity, *feature;
	Py_ssize_t elen, limit;
	long long from, to, known_at;
	if (!PyArg_ParseTuple(args, "ss#sLLnL", &table, &entity, &elen, &feature, &from, &to,
			      &limit, &known_at))
		return NULL;
	struct cli_backend be;
	struct st_error err = {0};
	struct kv_version *v = NULL;
	size_t n = 0;
	int rc;
	PY_RUN(cl, be, err, rc,
	       be.history(be.ctx, table, entity, (size_t)elen, feature, from, to,
			  limit > 0 ? (size_t)limit : 0, known_at, &v, &n, &err));
	if (rc)
		return py_raise(&err);
	PyObject *l = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; l && i < n; i++) {
		PyObject *val = v[i].tombstone ? Py_NewRef(Py_None)
					       : py_value_to_object(&v[i].r.value);
		PyObject *t = val ? Py_BuildValue("(LLON)", (long long)v[i].r.ts,
						  (long long)v[i].r.ingest_us,
						  v[i].tombstone ? Py_True : Py_False, val)
				  : NULL;
		if (!t)
			Py_CLEAR(l);
		else
			PyList_SET_ITEM(l, (Py_ssize_t)i, t);
	}
	kv_history_free(v, n);
	return l;
}

/* ---- join: results into numpy buffers ---- */

struct py_out {
	char kind;
	uint32_t dim;
	Py_buffer data, found, evts;
	PyObject *list; /* object kinds: the result list (owned) */
};

static int py_out_parse(PyObject *t, size_t rows, const char *feature, struct py_out *o)
{
	PyObject *data, *found, *evts;
	int kind;
	if (!PyArg_ParseTuple(t, "COOO", &kind, &data, &found, &evts))
		return -1;
	o->kind = (char)kind;
	if (py_kind_type(o->kind) == KV_NONE) {
		PyErr_Format(PyExc_ValueError, "feature '%s': unknown kind '%c'", feature, kind);
		return -1;
	}
	if (py_buf(found, &o->found, 1, rows, feature) ||
	    (evts != Py_None && py_buf(evts, &o->evts, 1, rows * 8, feature)))
		return -1;
	if (strchr("sbl", o->kind)) {
		o->list = PyList_New((Py_ssize_t)rows);
		return o->list ? 0 : -1;
	}
	if (py_buf(data, &o->data, 1, 0, feature))
		return -1;
	size_t want = rows * py_kind_size(o->kind);
	if (o->kind == 'v' && rows)
		o->dim = (uint32_t)((size_t)o->data.len / want);
	int bad = o->kind == 'v' ? !o->dim || (size_t)o->data.len != want * o->dim
				 : (size_t)o->data.len != want;
	if (rows && bad) {
		PyErr_Format(PyExc_ValueError, "feature '%s': output buffer size %zd", feature,
			     o->data.len);
		return -1;
	}
	return 0;
}

static void py_outs_release(struct py_out *o, size_t n)
{
	for (size_t i = 0; o && i < n; i++) {
		if (o[i].data.obj)
			PyBuffer_Release(&o[i].data);
		if (o[i].found.obj)
			PyBuffer_Release(&o[i].found);
		if (o[i].evts.obj)
			PyBuffer_Release(&o[i].evts);
		Py_XDECREF(o[i].list);
	}
	free(o);
}

/* Fills row `row` of numeric output o from r (no Python objects: runs without the GIL).
 * Returns 0 or ST_EPROTO when the value's type is not the schema's. */
static int py_out_fill(struct py_out *o, size_t row, const struct kv_result *r)
{
	int found = r->found && r->value.type != KV_NONE;
	((uint8_t *)o->found.buf)[row] = (uint8_t)found;
	if (o->evts.obj)
		((int64_t *)o->evts.buf)[row] = found ? r->ts : 0;
	if (found && r->value.type != py_kind_type(o->kind))
		return ST_EPROTO;
	switch (o->kind) {
	case 'i':
		((int64_t *)o->data.buf)[row] = found ? r->value.i64 : 0;
		break;
	case 'd':
		((double *)o->data.buf)[row] = found ? r->value.f64 : NAN;
		break;
	case 'f':
		((float *)o->data.buf)[row] = found ? r->value.f32 : NAN;
		break;
	case 'v': {
		float *dst = (float *)o->data.buf + row * o->dim;
		if (found && r->value.len != o->dim)
			return ST_EPROTO;
		if (found)
			memcpy(dst, r->value.ptr, o->dim * sizeof(float));
		else
			for (uint32_t k = 0; k < o->dim; k++)
				dst[k] = NAN;
		break;
	}
	}
	return 0;
}

/* One chunk: push rows [from, to), run, fill numeric outputs. GIL released. */
static int py_join_chunk(struct cli_backend *be, struct cli_join *j, const struct py_entities *e,
			 const int64_t *ts, size_t from, size_t to, struct py_out *outs,
			 size_t nf, const char **f, struct st_error *err)
{
	for (size_t r = from; r < to; r++) {
		int rc = be->join_push(j, e->ptr[r], e->len[r], ts[r], err);
		if (rc < 0)
			return rc;
	}
	int rc = be->join_run(j, err);
	if (rc)
		return rc;
	if (be->join_rows(j) != to - from)
		return st_error_set(err, ST_EPROTO, "join returned %zu rows for %zu",
				    be->join_rows(j), to - from);
	for (size_t i = 0; i < to - from; i++) {
		const struct kv_result *res = be->join_result(j, i);
		for (size_t k = 0; k < nf; k++)
			if (py_out_fill(&outs[k], from + i, &res[k]))
				return st_error_set(err, ST_EPROTO,
						    "feature '%s': value of an unexpected type",
						    f[k]);
	}
	return 0;
}

/* Object outputs of a chunk (GIL held). */
static int py_join_objects(struct cli_backend *be, struct cli_join *j, size_t from,
			   size_t rows, struct py_out *outs, size_t nf)
{
	for (size_t k = 0; k < nf; k++) {
		if (!outs[k].list)
			continue;
		for (size_t i = 0; i < rows; i++) {
			const struct kv_result *r = &be->join_result(j, i)[k];
			PyObject *v = r->found ? py_value_to_object(&r->value) : Py_NewRef(Py_None);
			if (!v)
				return -1;
			PyList_SET_ITEM(outs[k].list, (Py_ssize_t)(from + i), v);
		}
	}
	return 0;
}

struct py_join_args {
	const char *table;
	struct py_entities e;
	Py_buffer ts;
	const char **f;
	size_t nf;
	long long known_at;
	struct py_out *outs;
	size_t chunk;
	int skip_before_horizon; /* rows before the table's retention horizon: empty, not ERANGE */
};

/* Through stratad with numeric outputs only: the rows stream through libstrata's join and
 * each answered row is written straight into the numpy buffers, in input order: no chunk of
 * converted results (rows x features x 48 bytes) and no second pass over it. GIL released. */
static int py_join_fill_row(struct py_join_args *a, size_t row, const struct strata_result *r,
			    struct st_error *err)
{
	for (size_t k = 0; k < a->nf; k++) {
		struct kv_result kr;
		cli_remote_result_view(&r[k], &kr); /* libstrata keeps the values */
		if (py_out_fill(&a->outs[k], row, &kr))
			return st_error_set(err, ST_EPROTO, "feature '%s': value of an unexpected type",
					    a->f[k]);
	}
	return 0;
}

static int py_join_stream(strata *c, struct py_join_args *a, struct st_error *err)
{
	struct strata_error se = {0};
	strata_join *j = NULL;
	/* the outputs take event times only when asked for, and never ingest times: the server
	 * sends none of what is not used (a found number: 10 bytes instead of 26) */
	int flags = STRATA_JOIN_NO_TIMES;
	for (size_t k = 0; k < a->nf; k++)
		if (a->outs[k].evts.obj)
			flags = STRATA_JOIN_NO_INGEST;
	if (a->skip_before_horizon)
		flags |= STRATA_JOIN_SKIP_BEFORE_HORIZON;
	int rc = strata_join_open2(c, a->table, a->f, a->nf, a->known_at, a->chunk, flags, &j, &se);
	const int64_t *ts = a->ts.buf;
	size_t out = 0;
	const struct strata_result *row;
	for (size_t r = 0; !rc && r <= a->e.n; r++) {
		/* after the last row, or when a swept chunk is ready: read what was pushed */
		int ready = r == a->e.n ||
			    (rc = strata_join_push(j, a->e.ptr[r], a->e.len[r], ts[r], &se)) == 1;
		while (!rc && ready && (rc = strata_join_next(j, &row, &se)) == 1)
			rc = out < a->e.n ? py_join_fill_row(a, out++, row, err)
					  : st_error_set(err, ST_EPROTO, "join: more rows than pushed");
		if (rc > 0)
			rc = 0;
	}
	if (rc < 0 && !err->code)
		st_error_set(err, rc, "%s", se.msg[0] ? se.msg : st_strerror(rc));
	if (!rc && out != a->e.n)
		rc = st_error_set(err, ST_EPROTO, "join returned %zu rows for %zu", out, a->e.n);
	if (j)
		strata_join_close(j);
	return rc;
}

static int py_join_run(struct py_client *cl, struct py_join_args *a)
{
	struct cli_backend be;
	struct cli_join *j = NULL;
	struct st_error err = {0};
	int rc, stream = !cl->embedded;
	for (size_t k = 0; k < a->nf; k++)
		if (a->outs[k].list)
			stream = 0; /* object outputs are made with the GIL, chunk by chunk */
	if (stream) {
		Py_BEGIN_ALLOW_THREADS
		rc = py_backend_take(cl, &be, &err);
		if (!rc) {
			/* the remote backend's ctx is its libstrata handle (cli_remote.c) */
			rc = py_join_stream(be.ctx, a, &err);
			py_backend_put(cl, &be);
		}
		Py_END_ALLOW_THREADS
		return rc ? (py_raise(&err), -1) : 0;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = py_backend_take(cl, &be, &err);
	if (!rc && (rc = be.join_open(be.ctx, a->table, a->f, a->nf, a->known_at, a->chunk,
				       a->skip_before_horizon, &j, &err)))
		py_backend_put(cl, &be);
	Py_END_ALLOW_THREADS
	if (rc) {
		py_raise(&err);
		return -1;
	}
	for (size_t from = 0; !rc && from < a->e.n; from += a->chunk) {
		size_t to = from + a->chunk < a->e.n ? from + a->chunk : a->e.n;
		Py_BEGIN_ALLOW_THREADS
		rc = py_join_chunk(&be, j, &a->e, a->ts.buf, from, to, a->outs, a->nf, a->f, &err);
		Py_END_ALLOW_THREADS
		if (rc)
			py_raise(&err);
		else if (py_join_objects(&be, j, from, to - from, a->outs, a->nf) ||
			 PyErr_CheckSignals())
			rc = -1;
		be.join_reset(j);
	}
	Py_BEGIN_ALLOW_THREADS
	be.join_free(j);
	py_backend_put(cl, &be);
	Py_END_ALLOW_THREADS
	return rc ? -1 : 0;
}

/* join(table, entities, ts int64[n], [features], known_at, [(kind, data, found, evts)],
 * chunk_rows[, skip_before_horizon]) -> [list or None per feature]: numeric kinds fill `data` (and `found`, and
 * `evts` unless None) in place; object kinds return a list of n values. */
PyObject *py_join(PyObject *self, PyObject *args)
{
	struct py_join_args a = {0};
	PyObject *ents, *tso, *fl, *ol, *ret = NULL;
	Py_ssize_t chunk;
	if (!PyArg_ParseTuple(args, "sOOOLO!n|p", &a.table, &ents, &tso, &fl, &a.known_at,
			      &PyList_Type, &ol, &chunk, &a.skip_before_horizon))
		return NULL;
	a.chunk = chunk > 0 ? (size_t)chunk : 65536;
	if (py_entities_init(&a.e, ents) || py_buf(tso, &a.ts, 0, a.e.n * 8, "ts") ||
	    !(a.f = py_names(fl, &a.nf)))
		goto out;
	if ((size_t)PyList_GET_SIZE(ol) != a.nf) {
		PyErr_SetString(PyExc_ValueError, "join: one output per feature");
		goto out;
	}
	if (!(a.outs = calloc(a.nf + 1, sizeof(*a.outs)))) {
		PyErr_NoMemory();
		goto out;
	}
	for (size_t k = 0; k < a.nf; k++)
		if (py_out_parse(PyList_GET_ITEM(ol, (Py_ssize_t)k), a.e.n, a.f[k], &a.outs[k]))
			goto out;
	if (py_join_run((struct py_client *)self, &a))
		goto out;
	ret = PyList_New((Py_ssize_t)a.nf);
	for (size_t k = 0; ret && k < a.nf; k++)
		PyList_SET_ITEM(ret, (Py_ssize_t)k,
				Py_NewRef(a.outs[k].list ? a.outs[k].list : Py_None));
out:
	py_outs_release(a.outs, a.nf);
	free(a.f);
	if (a.ts.obj)
		PyBuffer_Release(&a.ts);
	py_entities_release(&a.e);
	return ret;
}
