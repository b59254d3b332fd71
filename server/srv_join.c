/* Streaming-join sessions: a join opened by one connection, fed pushes of (entity, ts) rows
 * and closed by it (or dropped with the connection). The sessions of all connections live in
 * one list under srv_server.joins_mu; a session is freed when its last reference goes (the
 * list's, or that of a pipelined push still running).
 *
 * A direct session sweeps each push's rows on their own and answers them. A deferred session
 * (what libstrata opens) collects the rows of many pushes and sweeps them in one ordered
 * pass: swept apart, every wire chunk paid a seek and a walk over the keys of each of its
 * entities, and the entities a chunk samples are far apart (8192-row chunks of a 1M-row join
 * over 100k entities: 6 s of server CPU per 300k rows, against 1 s for one pass).
 * States of a deferred session (under `mu`):
 *   COLLECTING (swept == 0): uploads append rows; a full collection or `sweep` runs it ->
 *   SWEPT (swept = rows): fetches hand out row ranges; when every row was handed out, the
 *   collection is reset -> COLLECTING. An upload while SWEPT is refused (EBUSY). */
#include "server/srv.h"

#include <stdlib.h>
#include <string.h>

#define SRV_JOIN_CHUNK_DEFAULT 65536
#define SRV_JOIN_CHUNK_MAX 1000000
#define SRV_JOIN_RESULTS_MAX 16000000 /* chunk_rows x features: 48 bytes each while swept */
#define SRV_JOINS_PER_CONN 16

/* An open streaming join. `mu` serialises pipelined pushes (a kv_join is single-threaded). */
struct srv_join {
	struct srv_join *next;
	uint64_t id, conn_id;
	pthread_mutex_t mu;
	struct kv_join *j;
	size_t nfeatures, chunk;
	int deferred;
	int times; /* deferred: times in fetch answers: SRV_TIMES_* (JoinOpenReq.times) */
	size_t swept, handed; /* deferred: rows of the swept collection, rows fetched of them */
	/* deferred, collecting: rows received, the row count a sweep push named (0: none yet),
	 * and which positions are set (uploads may arrive out of order) */
	size_t received, expect;
	uint8_t *filled;
	int refs; /* under srv_server.joins_mu: 1 for the list, 1 per running push */
};

static void srv_join_assert_state(const struct srv_join *j)
{
	ST_ASSERT(j->deferred || !j->swept);
	ST_ASSERT(!j->swept || (j->handed < j->swept && kv_join_rows(j->j) == j->swept));
	ST_ASSERT(kv_join_rows(j->j) <= j->chunk && j->received <= kv_join_rows(j->j));
	ST_ASSERT(!j->swept || !j->received);
}

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
	free(j->filled);
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

/* Element size of a variable-length value (0: a scalar). */
static size_t srv_value_elem(enum kv_type t)
{
	return t == KV_STR || t == KV_BYTES ? 1
	       : t == KV_F32VEC	       ? sizeof(float)
	       : t == KV_I64LIST	       ? sizeof(int64_t)
					       : 0;
}

/* Deep copy of a result (a join's results die at kv_join_reset). */
static int srv_result_copy(const struct kv_result *in, struct kv_result *out)
{
	*out = *in;
	size_t esz = in->found ? srv_value_elem(in->value.type) : 0;
	if (!in->found)
		memset(&out->value, 0, sizeof(out->value));
	else if (!esz)
		out->value.ptr = NULL;
	if (!esz)
		return 0;
	size_t n = (size_t)in->value.len * esz;
	out->value.ptr = malloc(n ? n : 1);
	if (!out->value.ptr)
		return ST_ENOMEM;
	if (n)
		memcpy(out->value.ptr, in->value.ptr, n);
	return 0;
}

/* Copies the results of swept rows [0, rows) to out[*nout...]. */
static int srv_join_copy(struct srv_join *j, size_t rows, struct kv_result *out, size_t *nout,
			 struct st_error *err)
{
	for (size_t i = 0; i < rows; i++) {
		const struct kv_result *r = kv_join_result(j->j, i);
		for (size_t f = 0; f < j->nfeatures; f++) {
			if (srv_result_copy(&r[f], &out[*nout]))
				return st_error_set(err, ST_ENOMEM, "out of memory");
			(*nout)++;
		}
	}
	return 0;
}

/* ---- compact fetch answers (Response.join_rows, layout in proto/strata.proto) ---- */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "join_rows is little-endian");

static void srv_free_buf(void *p, size_t n)
{
	(void)n;
	free(p);
}

enum { SRV_ROW_FOUND = 1 << 2, SRV_ROW_TIMES = 1 << 3 };
/* JoinOpenReq.times: what [times] holds */
enum { SRV_TIMES_BOTH = 0, SRV_TIMES_TS = 1, SRV_TIMES_NONE = 2 };
static const size_t srv_times_bytes[] = {16, 8, 0};

static int srv_row_times(const struct kv_result *r, int times)
{
	return times != SRV_TIMES_NONE && (r->found || r->ts || r->ingest_us);
}

static size_t srv_row_size(const struct kv_result *r, int times)
{
	size_t n = 1;
	if (srv_row_times(r, times))
		n += srv_times_bytes[times];
	if (r->found) {
		size_t e = srv_value_elem(r->value.type);
		n += 1 + (e ? 4 + (size_t)r->value.len * e : r->value.type == KV_F32 ? 4 : 8);
	}
	return n;
}

static uint8_t *srv_row_put(uint8_t *p, const struct kv_result *r, int times)
{
	int has = srv_row_times(r, times);
	*p++ = (uint8_t)((r->status & 3) | (r->found ? SRV_ROW_FOUND : 0) |
			 (has ? SRV_ROW_TIMES : 0));
	if (has) {
		memcpy(p, &r->ts, 8);
		if (times == SRV_TIMES_BOTH)
			memcpy(p + 8, &r->ingest_us, 8);
		p += srv_times_bytes[times];
	}
	if (!r->found)
		return p;
	*p++ = (uint8_t)r->value.type;
	size_t e = srv_value_elem(r->value.type);
	if (e) {
		uint32_t len = r->value.len;
		memcpy(p, &len, 4);
		if (len)
			memcpy(p + 4, r->value.ptr, (size_t)len * e);
		return p + 4 + (size_t)len * e;
	}
	if (r->value.type == KV_F32) {
		memcpy(p, &r->value.f32, 4);
		return p + 4;
	}
	memcpy(p, &r->value.i64, 8); /* i64 or f64: the same 8 bytes of the union */
	return p + 8;
}

/* Encodes the results of swept rows [from, to) into the response (storage freed with it). */
/* In one pass over the results (48 bytes each, 480 MB for 1M x 10: a pass to size the answer
 * first read them all twice): the buffer starts at the size of found numbers and grows. */
static int srv_join_encode(struct srv_ctx *x, struct srv_join *j, size_t from, size_t to)
{
	size_t n = 0, nf = j->nfeatures;
	size_t cap = (to - from) * nf * (2 + srv_times_bytes[j->times] + 8) + 64;
	uint8_t *buf = malloc(cap);
	for (size_t r = from; r < to && buf; r++) {
		const struct kv_result *res = kv_join_result(j->j, r);
		for (size_t f = 0; f < nf && buf; f++) {
			size_t sz = srv_row_size(&res[f], j->times);
			if (n + sz > cap) {
				cap = n + sz > 2 * cap ? n + sz : 2 * cap;
				uint8_t *nb = realloc(buf, cap);
				if (!nb)
					free(buf);
				if (!(buf = nb))
					break;
			}
			uint8_t *end = srv_row_put(buf + n, &res[f], j->times);
			ST_ASSERT((size_t)(end - buf) == n + sz);
			n += sz;
		}
	}
	if (!buf)
		return srv_ctx_nomem(x);
	srv_ctx_defer(x, srv_free_buf, buf, n);
	x->resp.result_case = STRATA__RESPONSE__RESULT_JOIN_ROWS;
	x->resp.join_rows.data = buf;
	x->resp.join_rows.len = n;
	return 0;
}

static int srv_join_collect(struct srv_join *j, struct kv_result *out, size_t *nout,
			    struct st_error *err)
{
	int rc = kv_join_run(j->j, err);
	if (!rc)
		rc = srv_join_copy(j, kv_join_rows(j->j), out, nout, err);
	kv_join_reset(j->j);
	return rc;
}

/* ---- handlers ---- */

int srv_op_join_open(struct srv_ctx *x)
{
	struct srv_server *s = x->s;
	const Strata__JoinOpenReq *jo = x->m->join_open;
	int rc = srv_check_features(jo->n_features, &x->err);
	if (rc)
		return rc;
	size_t chunk = jo->chunk_rows ? jo->chunk_rows : SRV_JOIN_CHUNK_DEFAULT;
	if (jo->times > SRV_TIMES_NONE)
		return st_error_set(&x->err, ST_EINVAL, "join times %u: 0, 1 or 2", jo->times);
	if (chunk > SRV_JOIN_CHUNK_MAX)
		return st_error_set(&x->err, ST_ELIMIT, "chunk_rows %zu exceeds %d", chunk,
				    SRV_JOIN_CHUNK_MAX);
	if (chunk * jo->n_features > SRV_JOIN_RESULTS_MAX)
		return st_error_set(&x->err, ST_ELIMIT,
				    "chunk_rows %zu x %zu features exceeds %d results", chunk,
				    jo->n_features, SRV_JOIN_RESULTS_MAX);
	uint64_t conn_id = x->req->conn->id; /* immutable after creation: safe to read */
	int open = 0;
	pthread_mutex_lock(&s->joins_mu);
	for (struct srv_join *j = s->joins; j; j = j->next)
		open += j->conn_id == conn_id;
	pthread_mutex_unlock(&s->joins_mu);
	if (open >= SRV_JOINS_PER_CONN)
		return st_error_set(&x->err, ST_ELIMIT,
				    "too many open joins on this connection (limit %d)",
				    SRV_JOINS_PER_CONN);
	struct srv_join *j = calloc(1, sizeof(*j));
	if (!j)
		return srv_ctx_nomem(x);
	rc = kv_join_open(s->db, jo->table, (const char *const *)jo->features, jo->n_features,
			  jo->known_at, chunk, &j->j, &x->err);
	if (!rc && jo->before_horizon == 1)
		kv_join_set_horizon_policy(j->j, KV_JOIN_SKIP_BEFORE_HORIZON);
	if (rc) {
		free(j);
		return rc;
	}
	pthread_mutex_init(&j->mu, NULL);
	j->refs = 1;
	j->nfeatures = jo->n_features;
	j->chunk = chunk;
	j->deferred = jo->has_deferred && jo->deferred;
	j->times = j->deferred ? (int)jo->times : SRV_TIMES_BOTH;
	if (j->deferred && !(j->filled = calloc(chunk, 1))) {
		kv_join_free(j->j);
		pthread_mutex_destroy(&j->mu);
		free(j);
		return srv_ctx_nomem(x);
	}
	j->conn_id = conn_id;
	pthread_mutex_lock(&s->joins_mu);
	j->id = ++s->next_join_id;
	j->next = s->joins;
	s->joins = j;
	pthread_mutex_unlock(&s->joins_mu);
	x->resp.result_case = STRATA__RESPONSE__RESULT_JOIN_ID;
	x->resp.join_id = j->id;
	x->resp.has_join_deferred = x->resp.join_deferred = j->deferred;
	x->resp.has_join_times = 1;
	x->resp.join_times = (uint32_t)j->times;
	return 0;
}

/* Pushes the rows under the session's lock, collecting every completed chunk into res. */
static int srv_join_push_rows(struct srv_join *j, const Strata__JoinPushReq *jp,
			      struct kv_result *res, size_t *nres, struct st_error *err)
{
	int rc = 0;
	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < jp->n_entities && !rc; i++) {
		int full = kv_join_push(j->j, (const char *)jp->entities[i].data,
					jp->entities[i].len, jp->ts[i], err);
		if (full < 0)
			rc = st_error_prefix(err, "row %zu", i);
		else if (full == 1)
			rc = srv_join_collect(j, res, nres, err);
	}
	if (!rc && kv_join_rows(j->j))
		rc = srv_join_collect(j, res, nres, err);
	if (rc)
		kv_join_reset(j->j);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

/* Deferred session: an upload appends its rows (and sweeps the collection when it is full or
 * asked to); a fetch answers the results of a range of swept rows. Under `mu`. */
static int srv_join_deferred_locked(struct srv_ctx *x, struct srv_join *j,
				    const Strata__JoinPushReq *jp)
{
	struct st_error *err = &x->err;
	srv_join_assert_state(j);
	if (jp->has_fetch_rows) {
		uint64_t from = jp->fetch_row, n = jp->fetch_rows;
		if (jp->n_entities)
			return st_error_set(err, ST_EINVAL, "a join fetch carries no rows");
		if (!j->swept || n == 0 || from > j->swept || n > j->swept - from)
			return st_error_set(err, ST_EINVAL,
					    "join fetch of rows %llu+%llu: %zu rows are swept",
					    (unsigned long long)from, (unsigned long long)n, j->swept);
		int rc = srv_join_encode(x, j, (size_t)from, (size_t)(from + n));
		if (rc)
			return rc;
		j->handed += (size_t)n;
		if (j->handed >= j->swept) {
			kv_join_reset(j->j);
			j->swept = j->handed = 0;
		}
		return 0;
	}
	if (j->swept && (jp->n_entities || jp->sweep))
		return st_error_set(err, ST_EBUSY,
				    "join: %zu swept rows are not fetched yet (fetch them first)",
				    j->swept - j->handed);
	uint64_t at = jp->has_first_row ? jp->first_row : j->received;
	size_t n = jp->n_entities;
	if (at > j->chunk || n > j->chunk - at)
		return st_error_set(err, ST_ELIMIT,
				    "join push of rows %llu+%zu overflows the collection of %zu",
				    (unsigned long long)at, n, j->chunk);
	size_t first = (size_t)at;
	for (size_t i = 0; i < n; i++)
		if (j->filled[first + i])
			return st_error_set(err, ST_EINVAL, "join row %zu pushed twice", first + i);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		if ((rc = kv_join_push_at(j->j, first + i, (const char *)jp->entities[i].data,
					  jp->entities[i].len, jp->ts[i], err)))
			st_error_prefix(err, "row %zu", i);
	if (!rc) {
		memset(j->filled + first, 1, n);
		j->received += n;
		if (jp->sweep && j->expect && j->expect != first + n)
			rc = st_error_set(err, ST_EINVAL, "join: two sweeps (%zu and %zu rows)",
					  j->expect, first + n);
		else if (jp->sweep)
			j->expect = first + n;
		else if (j->received == j->chunk)
			j->expect = j->chunk;
	}
	if (!rc && (!j->expect || j->received < j->expect))
		return 0;
	if (!rc && kv_join_rows(j->j) != j->expect)
		rc = st_error_set(err, ST_EINVAL, "join: rows pushed past the sweep's %zu",
				  j->expect);
	if (!rc && j->expect)
		rc = kv_join_run(j->j, err);
	/* swept, or failed: the collection starts over either way */
	memset(j->filled, 0, kv_join_rows(j->j));
	j->swept = rc ? 0 : kv_join_rows(j->j);
	j->handed = j->received = j->expect = 0;
	if (rc)
		kv_join_reset(j->j);
	return rc;
}

/* A deferred session's push: answered with no result (upload) or join_rows (fetch). */
static int srv_join_push_deferred(struct srv_ctx *x, struct srv_join *j)
{
	const Strata__JoinPushReq *jp = x->m->join_push;
	if (jp->n_entities != jp->n_ts)
		return st_error_set(&x->err, ST_EINVAL, "%zu entities but %zu timestamps",
				    jp->n_entities, jp->n_ts);
	if ((size_t)jp->fetch_rows * j->nfeatures > SRV_MAX_RESULTS)
		return st_error_set(&x->err, ST_ELIMIT, "fetch of %u rows exceeds %zu rows",
				    jp->fetch_rows, SRV_MAX_RESULTS / j->nfeatures);
	pthread_mutex_lock(&j->mu);
	int rc = srv_join_deferred_locked(x, j, jp);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int srv_op_join_push(struct srv_ctx *x)
{
	const Strata__JoinPushReq *jp = x->m->join_push;
	struct srv_join *j = srv_join_find(x->s, jp->join_id, x->req->conn->id);
	if (!j)
		return st_error_set(&x->err, ST_ENOTFOUND, "no open join %llu on this connection",
				    (unsigned long long)jp->join_id);
	if (j->deferred) {
		int rc = srv_join_push_deferred(x, j);
		srv_join_put(x->s, j);
		return rc;
	}
	int rc = 0;
	struct kv_result *res = NULL;
	size_t nres = 0;
	if (jp->n_entities != jp->n_ts)
		rc = st_error_set(&x->err, ST_EINVAL, "%zu entities but %zu timestamps",
				  jp->n_entities, jp->n_ts);
	else if (jp->n_entities * j->nfeatures > SRV_MAX_RESULTS)
		rc = st_error_set(&x->err, ST_ELIMIT, "push of %zu rows exceeds %zu rows",
				  jp->n_entities, SRV_MAX_RESULTS / j->nfeatures);
	else if (!(res = calloc(jp->n_entities * j->nfeatures + 1, sizeof(*res))))
		rc = srv_ctx_nomem(x);
	if (!rc) {
		rc = srv_join_push_rows(j, jp, res, &nres, &x->err);
		/* The copies collected so far are released whether the push succeeded or not. */
		srv_ctx_defer(x, srv_results_release, res, nres);
	}
	srv_join_put(x->s, j);
	if (rc)
		return rc;
	if ((rc = srv_results_out(x, res, nres, &x->resp.results)))
		return rc;
	x->resp.result_case = STRATA__RESPONSE__RESULT_RESULTS;
	return 0;
}

int srv_op_join_close(struct srv_ctx *x)
{
	struct srv_server *s = x->s;
	uint64_t id = x->m->join_close->join_id, conn_id = x->req->conn->id;
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
	if (!found)
		return st_error_set(&x->err, ST_ENOTFOUND, "no open join %llu on this connection",
				    (unsigned long long)id);
	srv_join_put(s, found); /* freed now, or by a pipelined push still running */
	return 0;
}
