/* libstrata streaming versioned sample join: rows go out in chunks (one JoinPush request
 * each), results come back and are handed out in push order. Over a cluster, one such join
 * runs per node and every row goes to its shard's node; a ring of the rows not yet returned
 * (entity, ts, node) keeps the push order when the answers are merged. When a node answers
 * EMOVED or its connection fails (a layout change, a dead primary), the layout is refetched,
 * the per-node joins are opened again on the new layout and every row of the ring is pushed
 * again in order: rows already returned stay returned, the others come back in push order as
 * if nothing had happened (joins are reads, so a row is simply asked again).
 *
 * With a server that offers deferred sessions (Response.join_deferred), the rows of a whole
 * collection (chunk_rows, up to SJ_COLLECTION_MAX) are uploaded one push at a time and swept
 * by the server in one ordered pass; their results are then fetched by row range, several
 * fetches in flight. An older server answers each push with its own rows (direct mode:
 * pipelined chunks of up to SJ_CHUNK_DEFAULT rows). Deferred state, client side: `coll` rows
 * uploaded and not swept; after a sweep, rows [0, swept) of it of which [0, fetched) are
 * asked for; the next upload waits until every fetch of the previous collection was
 * answered. */
#include "client/strata_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/st_slot.h"

#define SJ_WINDOW 4 /* chunks sent and not yet answered */
#define SJ_CHUNK_DEFAULT 8192
#define SJ_COLLECTION_MAX 1000000 /* the server's largest chunk_rows ... */
#define SJ_COLLECTION_RESULTS 10000000 /* ... and at most this many rows x features */
#define SJ_UPLOAD_ROWS 65536      /* rows of one deferred upload push ... */
#define SJ_UPLOAD_BYTES (4u << 20) /* ... or this many entity bytes */
#define SJ_FETCH_RESULTS 131072   /* results (rows x features) of one fetch */
/* JoinOpenReq.times: fetch answers carry ts and ingest_us, ts only, or no times */
enum { SJ_TIMES_BOTH = 0, SJ_TIMES_TS = 1, SJ_TIMES_NONE = 2 };

struct sj_chunk {
	uint64_t id;
	size_t rows;
	Strata__Response *resp; /* NULL until answered */
};

struct strata_join {
	strata *c;
	uint64_t epoch, join_id;
	size_t nf, chunk_rows;
	int times; /* deferred: the times fetch answers carry (JoinOpenReq.times) */
	/* deferred session (see above); wire_rows: rows of one push */
	int deferred, need_drain; /* need_drain: a sweep was sent, its fetches not all answered */
	size_t wire_rows, coll, swept, fetched;
	size_t qrows; /* rows the queued requests answer (fetches, direct chunks) */
	/* the chunk being filled */
	size_t nrows;
	size_t *eoff, *elen;
	int64_t *ts;
	uint8_t *ebuf;
	size_t elen_total, ecap;
	/* chunks sent, oldest first */
	struct sj_chunk *q;
	size_t qhead, qn, qcap;
	size_t unanswered;
	/* the answered chunk being read */
	struct strata_result *cur; /* cur_cap results allocated */
	size_t cur_rows, cur_pos, cur_cap;
	int cur_owns; /* some result of cur may own memory (numbers own none) */
	size_t pending;
	int dead; /* error code that poisons the join */
	/* cluster: one join per node that is primary of a shard, and every row not yet
	 * returned (a ring), so rows come back in push order across nodes and can be pushed
	 * again after a layout change; the entities' bytes are a FIFO in rbytes (row offsets
	 * count from the start of the stream, rbytes[0] is offset rb_base) */
	int clustered;
	strata_join *sub[SC_MAX_NODES];
	int *shard_node, nshards;
	struct sj_row *ring;
	size_t rhead, rn, rcap;
	uint8_t *rbytes;
	size_t rb_base, rb_used, rb_cap;
	/* what a reopen needs */
	char *table;
	char **features;
	int64_t known_at;
	int flags;
	int64_t rr_deadline; /* rerouting since a failure: give up at this time (0: not) */
	int rr_backoff;      /* ms before the next reroute */
};

struct sj_row {
	size_t off;
	uint32_t len;
	uint8_t node;
	int64_t ts;
};

static int sj_open_one(strata *c, const char *table, const char *const *features,
		       size_t nfeatures, int64_t known_at, size_t chunk_rows, int flags,
		       strata_join **out, struct strata_error *err);

static int64_t sj_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Cluster join: one join per node that is primary of a shard in the layout as it is now. */
static int sj_open_cluster(strata_join *j, struct strata_error *err)
{
	strata *nodes[SC_MAX_NODES];
	free(j->shard_node);
	j->shard_node = NULL;
	int rc = sc_route_join_targets(j->c, nodes, &j->shard_node, &j->nshards, err);
	for (int n = 0; n < SC_MAX_NODES && !rc; n++)
		if (nodes[n] && (rc = sc_ensure(nodes[n], err)) == 0)
			rc = sj_open_one(nodes[n], j->table, (const char *const *)j->features, j->nf,
					 j->known_at, j->chunk_rows, j->flags, &j->sub[n], err);
	return rc;
}

static struct sj_row *sj_row_at(strata_join *j, size_t k)
{
	return &j->ring[(j->rhead + k) % j->rcap];
}

static int sj_push_row(strata_join *j, struct sj_row *r, struct strata_error *err)
{
	const char *e = (const char *)j->rbytes + (r->off - j->rb_base);
	r->node = (uint8_t)j->shard_node[st_shard_of_slot(st_slot_of(e, r->len), j->nshards)];
	return strata_join_push(j->sub[r->node], e, r->len, r->ts, err);
}

/* A failure the layout may explain: the node moved the shard, or cannot be reached. */
static int sj_reroutable(int rc, const struct strata_error *e)
{
	return sc_is_moved(rc, e->msg) || sc_is_transport_error(rc) ||
	       rc == STRATA_EUNAVAILABLE;
}

/* Refetches the layout, opens the per-node joins again and pushes every row not yet
 * returned in push order; retried with backoff until the handle's io timeout (10 s without
 * one). Any other failure, or none in time, kills the join. */
static int sj_reroute(strata_join *j, struct strata_error *err)
{
	int64_t timeout = j->c->o.io_timeout_ms > 0 ? j->c->o.io_timeout_ms : 10000;
	int rc;
	/* the deadline and backoff run from the first failure until a row gets through, so a
	 * node that keeps failing after each successful reroute cannot keep the join busy */
	if (!j->rr_deadline) {
		j->rr_deadline = sj_now_ms() + timeout;
		j->rr_backoff = 0;
	}
	for (;;) {
		int64_t left = j->rr_deadline - sj_now_ms();
		if (left <= 0)
			return j->dead = sc_error(err, STRATA_EUNAVAILABLE, "join: no layout served it "
						  "within %lld ms (last: %s)", (long long)timeout,
						  err->msg);
		if (j->rr_backoff)
			usleep((useconds_t)(j->rr_backoff < left ? j->rr_backoff : left) * 1000);
		j->rr_backoff = j->rr_backoff ? (j->rr_backoff < 400 ? j->rr_backoff * 2 : 500) : 10;
		for (int n = 0; n < SC_MAX_NODES; n++) {
			strata_join_close(j->sub[n]);
			j->sub[n] = NULL;
		}
		rc = sc_route_refresh(j->c, err);
		if (!rc)
			rc = sj_open_cluster(j, err);
		for (size_t k = 0; !rc && k < j->rn; k++)
			if ((rc = sj_push_row(j, sj_row_at(j, k), err)) > 0)
				rc = 0;
		if (!rc)
			return 0;
		if (!sj_reroutable(rc, err))
			return j->dead = rc;
	}
}

static int sj_push_cluster(strata_join *j, const char *entity, size_t entity_len, int64_t ts,
			   struct strata_error *err)
{
	if (j->dead)
		return sc_error(err, j->dead, "join failed earlier (%s)", strata_strerror(j->dead));
	if (j->rn == j->rcap) {
		size_t cap = j->rcap ? j->rcap * 2 : 4096;
		struct sj_row *q = malloc(cap * sizeof(*q));
		if (!q)
			return sc_error(err, STRATA_ENOMEM, "out of memory");
		for (size_t k = 0; k < j->rn; k++)
			q[k] = *sj_row_at(j, k);
		free(j->ring);
		j->ring = q;
		j->rhead = 0;
		j->rcap = cap;
	}
	/* the bytes of rows already returned go when they are half of the buffer */
	size_t live = j->rn ? sj_row_at(j, 0)->off - j->rb_base : j->rb_used;
	if (live && live >= j->rb_used / 2) {
		memmove(j->rbytes, j->rbytes + live, j->rb_used - live);
		j->rb_used -= live;
		j->rb_base += live;
	}
	if (j->rb_cap - j->rb_used < entity_len) {
		size_t cap = j->rb_cap ? j->rb_cap : 65536;
		while (cap - j->rb_used < entity_len)
			cap *= 2;
		uint8_t *p = realloc(j->rbytes, cap);
		if (!p)
			return sc_error(err, STRATA_ENOMEM, "out of memory");
		j->rbytes = p;
		j->rb_cap = cap;
	}
	memcpy(j->rbytes + j->rb_used, entity, entity_len);
	struct sj_row *r = &j->ring[(j->rhead + j->rn++) % j->rcap];
	*r = (struct sj_row){j->rb_base + j->rb_used, (uint32_t)entity_len, 0, ts};
	j->rb_used += entity_len;
	j->pending++;
	int rc = sj_push_row(j, r, err);
	if (rc >= 0)
		j->rr_deadline = 0; /* the nodes take rows again */
	else if (sj_reroutable(rc, err))
		rc = sj_reroute(j, err);
	if (rc < 0)
		return j->dead = rc;
	return rc;
}

static int sj_next_cluster(strata_join *j, const struct strata_result **row,
			   struct strata_error *err)
{
	if (j->dead)
		return sc_error(err, j->dead, "join failed earlier (%s)", strata_strerror(j->dead));
	if (j->rn == 0)
		return 0;
	int rc;
	while ((rc = strata_join_next(j->sub[sj_row_at(j, 0)->node], row, err)) < 0 &&
	       sj_reroutable(rc, err))
		if ((rc = sj_reroute(j, err)))
			return rc;
	if (rc == 0)
		rc = sc_error(err, STRATA_EPROTO, "join: a node returned fewer rows than pushed");
	if (rc < 0)
		return j->dead = rc;
	j->rr_deadline = 0;
	j->rhead = (j->rhead + 1) % j->rcap;
	j->rn--;
	j->pending--;
	return 1;
}

static int sj_flush_cluster(strata_join *j, struct strata_error *err)
{
	if (j->dead)
		return sc_error(err, j->dead, "join failed earlier (%s)", strata_strerror(j->dead));
	for (int n = 0; n < SC_MAX_NODES; n++) {
		int rc = j->sub[n] ? strata_join_flush(j->sub[n], err) : 0;
		if (rc && sj_reroutable(rc, err)) {
			if ((rc = sj_reroute(j, err)))
				return rc;
			n = -1; /* the new joins from the start */
		} else if (rc) {
			return j->dead = rc;
		}
	}
	return 0;
}

/* Keeps what a reopen of the cluster join needs. */
static int sj_keep_args(strata_join *j, const char *table, const char *const *features,
			int64_t known_at, int flags)
{
	j->clustered = 1;
	j->known_at = known_at;
	j->flags = flags;
	if (!(j->table = strdup(table)) || !(j->features = calloc(j->nf, sizeof(char *))))
		return STRATA_ENOMEM;
	for (size_t f = 0; f < j->nf; f++)
		if (!(j->features[f] = strdup(features[f])))
			return STRATA_ENOMEM;
	return 0;
}

int strata_join_open(strata *c, const char *table, const char *const *features,
		     size_t nfeatures, int64_t known_at, size_t chunk_rows, strata_join **out,
		     struct strata_error *err)
{
	return strata_join_open2(c, table, features, nfeatures, known_at, chunk_rows, 0, out, err);
}

/* A join handle of either kind, without its server side yet. */
static int sj_new(strata *c, size_t nfeatures, size_t chunk_rows, strata_join **out,
		  struct strata_error *err)
{
	if (nfeatures == 0)
		return sc_error(err, STRATA_EINVAL, "join: no features");
	strata_join *j = calloc(1, sizeof(*j));
	if (!j)
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	j->c = c;
	j->nf = nfeatures;
	j->chunk_rows = chunk_rows ? chunk_rows : SJ_CHUNK_DEFAULT;
	*out = j;
	return 0;
}

int strata_join_open2(strata *c, const char *table, const char *const *features,
		      size_t nfeatures, int64_t known_at, size_t chunk_rows, int flags,
		      strata_join **out, struct strata_error *err)
{
	if (!sc_routed(c))
		return sj_open_one(c, table, features, nfeatures, known_at, chunk_rows, flags, out,
				   err);
	strata_join *j;
	int rc = sj_new(c, nfeatures, chunk_rows, &j, err);
	if (rc)
		return rc;
	rc = sj_keep_args(j, table, features, known_at, flags);
	if (rc)
		sc_error(err, rc, "out of memory");
	else
		rc = sj_open_cluster(j, err);
	if (rc) {
		strata_join_close(j);
		return rc;
	}
	*out = j;
	return 0;
}

static int sj_open_one(strata *c, const char *table, const char *const *features,
		       size_t nfeatures, int64_t known_at, size_t chunk_rows, int flags,
		       strata_join **out, struct strata_error *err)
{
	strata_join *j;
	int rc = sj_new(c, nfeatures, chunk_rows, &j, err);
	if (rc)
		return rc;
	if (j->chunk_rows > SJ_COLLECTION_MAX)
		j->chunk_rows = SJ_COLLECTION_MAX;
	if (j->chunk_rows > SJ_COLLECTION_RESULTS / nfeatures)
		j->chunk_rows = SJ_COLLECTION_RESULTS / nfeatures ? SJ_COLLECTION_RESULTS / nfeatures
								  : 1;
	Strata__JoinOpenReq m = STRATA__JOIN_OPEN_REQ__INIT;
	m.table = (char *)table;
	m.n_features = nfeatures;
	m.features = (char **)features;
	m.has_known_at = 1;
	m.known_at = known_at;
	m.has_chunk_rows = 1;
	m.chunk_rows = (uint32_t)j->chunk_rows;
	m.has_deferred = m.deferred = 1;
	if (flags & STRATA_JOIN_SKIP_BEFORE_HORIZON) {
		m.has_before_horizon = 1;
		m.before_horizon = 1;
	}
	if (flags & (STRATA_JOIN_NO_INGEST | STRATA_JOIN_NO_TIMES)) {
		m.has_times = 1;
		m.times = flags & STRATA_JOIN_NO_TIMES ? SJ_TIMES_NONE : SJ_TIMES_TS;
	}
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_JOIN_OPEN;
	req.join_open = &m;
	Strata__Response *r;
	rc = sc_call(c, &req, &r, 0, err);
	if (rc) {
		strata_join_close(j);
		return rc;
	}
	j->join_id = r->join_id;
	j->epoch = c->epoch;
	j->deferred = r->has_join_deferred && r->join_deferred;
	j->times = r->has_join_times ? (int)r->join_times : SJ_TIMES_BOTH;
	strata__response__free_unpacked(r, NULL);
	/* rows of one push: an upload (deferred), or a chunk answered directly */
	size_t wire = j->deferred ? SJ_UPLOAD_ROWS : SJ_CHUNK_DEFAULT;
	j->wire_rows = j->chunk_rows < wire ? j->chunk_rows : wire;
	j->eoff = malloc(j->wire_rows * sizeof(*j->eoff));
	j->elen = malloc(j->wire_rows * sizeof(*j->elen));
	j->ts = malloc(j->wire_rows * sizeof(*j->ts));
	if (!j->eoff || !j->elen || !j->ts) {
		strata_join_close(j);
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	}
	*out = j;
	return 0;
}

static int sj_alive(strata_join *j, struct strata_error *err)
{
	if (j->dead)
		return sc_error(err, j->dead, "join failed earlier (%s)", strata_strerror(j->dead));
	if (j->c->fd < 0 || j->c->epoch != j->epoch)
		return j->dead = sc_error(err, STRATA_ECLOSED,
					  "join: the connection was lost (joins do not survive it)");
	return 0;
}

static void sj_store(void *arg, size_t idx, Strata__Response *r)
{
	(void)idx;
	*(Strata__Response **)arg = r;
}

/* Waits for the answer of the oldest unanswered chunk. */
static int sj_receive_one(strata_join *j, struct strata_error *err)
{
	for (size_t k = 0; k < j->qn; k++) {
		struct sj_chunk *ch = &j->q[(j->qhead + k) % j->qcap];
		if (ch->resp)
			continue;
		size_t got = 0;
		int rc = sc_wait(j->c, ch->id, 1, 1, sj_store, &ch->resp, &got, err);
		if (rc)
			return j->dead = rc;
		j->unanswered--;
		return 0;
	}
	return 0;
}

/* Appends a sent request to the queue of answers to read in order. */
static int sj_enqueue(strata_join *j, uint64_t id, size_t rows, struct strata_error *err)
{
	if (j->qn == j->qcap) {
		size_t cap = j->qcap ? j->qcap * 2 : 8;
		struct sj_chunk *q = malloc(cap * sizeof(*q));
		if (!q)
			return j->dead = sc_error(err, STRATA_ENOMEM, "out of memory");
		for (size_t k = 0; k < j->qn; k++)
			q[k] = j->q[(j->qhead + k) % j->qcap];
		free(j->q);
		j->q = q;
		j->qhead = 0;
		j->qcap = cap;
	}
	struct sj_chunk *ch = &j->q[(j->qhead + j->qn) % j->qcap];
	ch->id = id;
	ch->rows = rows;
	ch->resp = NULL;
	j->qn++;
	j->qrows += rows;
	j->unanswered++;
	return 0;
}

/* Queues a JoinPush: of the buffered rows (emptying the buffer), or a fetch (fetch_rows > 0,
 * no rows); `sweep` for a deferred upload. */
static int sj_queue_push(strata_join *j, int sweep, uint64_t fetch_row, size_t fetch_rows,
			 uint64_t *id, struct strata_error *err)
{
	uint64_t first_row = j->coll; /* deferred uploads: where their rows go */
	size_t rows = fetch_rows ? 0 : j->nrows;
	ProtobufCBinaryData *ents = malloc((rows + 1) * sizeof(*ents));
	if (!ents)
		return j->dead = sc_error(err, STRATA_ENOMEM, "out of memory");
	for (size_t i = 0; i < rows; i++) {
		ents[i].data = j->ebuf + j->eoff[i];
		ents[i].len = j->elen[i];
	}
	Strata__JoinPushReq m = STRATA__JOIN_PUSH_REQ__INIT;
	m.join_id = j->join_id;
	m.n_entities = rows;
	m.entities = ents;
	m.n_ts = rows;
	m.ts = j->ts;
	m.has_sweep = m.sweep = sweep;
	if (j->deferred && !fetch_rows) {
		m.has_first_row = 1;
		m.first_row = first_row;
	}
	if (fetch_rows) {
		m.has_fetch_row = m.has_fetch_rows = 1;
		m.fetch_row = fetch_row;
		m.fetch_rows = (uint32_t)fetch_rows;
	}
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_JOIN_PUSH;
	req.join_push = &m;
	req.id = *id = sc_reserve_ids(j->c, 1);
	int rc = sc_queue(j->c, &req, err);
	free(ents);
	if (rc)
		return j->dead = rc;
	if (rows) {
		j->nrows = 0;
		j->elen_total = 0;
	}
	return 0;
}

/* Sends the queued bytes and keeps at most `window` requests unanswered. */
static int sj_flush_window(strata_join *j, size_t window, struct strata_error *err)
{
	size_t got = 0;
	int rc = sc_wait(j->c, 0, 0, 0, NULL, NULL, &got, err);
	if (rc)
		return j->dead = rc;
	while (j->unanswered > window)
		if ((rc = sj_receive_one(j, err)))
			return rc;
	return 0;
}

/* Direct mode: the buffered rows are a chunk, answered with their results. */
static int sj_send_chunk(strata_join *j, struct strata_error *err)
{
	uint64_t id;
	size_t rows = j->nrows;
	int rc = sj_alive(j, err);
	if (!rc)
		rc = sj_queue_push(j, 0, 0, 0, &id, err);
	if (!rc)
		rc = sj_enqueue(j, id, rows, err);
	return rc ? rc : sj_flush_window(j, SJ_WINDOW, err);
}

/* Deferred: asks for the next range of swept rows. */
static int sj_fetch_one(strata_join *j, struct strata_error *err)
{
	size_t per = SJ_FETCH_RESULTS / j->nf ? SJ_FETCH_RESULTS / j->nf : 1;
	size_t n = j->swept - j->fetched < per ? j->swept - j->fetched : per;
	uint64_t id;
	int rc = sj_alive(j, err);
	/* the chunk is swept when its last upload is answered: wait for them all first */
	while (!rc && j->fetched == 0 && j->unanswered)
		rc = sj_receive_one(j, err);
	if (!rc)
		rc = sj_queue_push(j, 0, j->fetched, n, &id, err);
	if (!rc)
		rc = sj_enqueue(j, id, n, err);
	if (rc)
		return rc;
	j->fetched += n;
	if (j->fetched == j->swept)
		j->swept = j->fetched = 0;
	return sj_flush_window(j, SJ_WINDOW, err);
}

/* Deferred: uploads the buffered rows into the server's collection, one push at a time
 * (their order is the rows' order), sweeping it when it is full or `sweep` is asked. The
 * previous collection's fetches are all sent and answered first (the server refuses an
 * upload before). */
static int sj_upload(strata_join *j, int sweep, struct strata_error *err)
{
	int rc = sj_alive(j, err);
	if (j->need_drain) {
		while (!rc && j->fetched < j->swept)
			rc = sj_fetch_one(j, err);
		while (!rc && j->unanswered)
			rc = sj_receive_one(j, err);
		/* a failed fetch fails the join now, not as a refused upload */
		for (size_t k = 0; !rc && k < j->qn; k++)
			if ((rc = sc_resp_error(j->q[(j->qhead + k) % j->qcap].resp, err)))
				j->dead = rc;
		if (rc)
			return rc;
		j->need_drain = 0;
	}
	size_t rows = j->nrows;
	sweep = sweep || j->coll + rows == j->chunk_rows;
	if (!rows && !(sweep && j->coll))
		return 0;
	/* each upload names where its rows go: several may be in flight */
	uint64_t id;
	if ((rc = sj_queue_push(j, sweep, 0, 0, &id, err)) || (rc = sj_enqueue(j, id, 0, err)))
		return rc;
	j->coll += rows;
	if (sweep) {
		j->swept = j->coll;
		j->fetched = j->coll = 0;
		j->need_drain = 1;
	}
	return sj_flush_window(j, SJ_WINDOW, err);
}

int strata_join_push(strata_join *j, const char *entity, size_t entity_len, int64_t ts,
		     struct strata_error *err)
{
	if (j->clustered)
		return sj_push_cluster(j, entity, entity_len, ts, err);
	int rc = sj_alive(j, err);
	if (rc)
		return rc;
	if (j->ecap - j->elen_total < entity_len) {
		size_t cap = j->ecap ? j->ecap : 65536;
		while (cap - j->elen_total < entity_len)
			cap *= 2;
		uint8_t *p = realloc(j->ebuf, cap);
		if (!p)
			return sc_error(err, STRATA_ENOMEM, "out of memory");
		j->ebuf = p;
		j->ecap = cap;
	}
	memcpy(j->ebuf + j->elen_total, entity, entity_len);
	j->eoff[j->nrows] = j->elen_total;
	j->elen[j->nrows] = entity_len;
	j->ts[j->nrows] = ts;
	j->elen_total += entity_len;
	j->nrows++;
	j->pending++;
	if (j->deferred) {
		if ((j->nrows == j->wire_rows || j->elen_total >= SJ_UPLOAD_BYTES ||
		     j->coll + j->nrows == j->chunk_rows) &&
		    (rc = sj_upload(j, 0, err)))
			return rc;
		return j->qrows || j->swept > j->fetched ? 1 : 0;
	}
	if (j->nrows == j->wire_rows && (rc = sj_send_chunk(j, err)))
		return rc;
	return (j->qn && j->q[j->qhead].resp) || j->qn >= SJ_WINDOW ? 1 : 0;
}

int strata_join_flush(strata_join *j, struct strata_error *err)
{
	if (j->clustered)
		return sj_flush_cluster(j, err);
	if (j->deferred)
		return j->nrows || j->coll ? sj_upload(j, 1, err) : sj_alive(j, err);
	return j->nrows ? sj_send_chunk(j, err) : sj_alive(j, err);
}

/* Deferred: makes answers of the oldest rows arrive (sweeping what is collected when nothing
 * else is left) and keeps SJ_WINDOW fetches in flight. */
static int sj_deferred_more(strata_join *j, struct strata_error *err)
{
	int rc = 0;
	if (!j->qrows && j->swept == j->fetched && (j->nrows || j->coll))
		rc = sj_upload(j, 1, err);
	while (!rc && j->swept > j->fetched && j->unanswered < SJ_WINDOW)
		rc = sj_fetch_one(j, err);
	return rc;
}

/* Empties the answered chunk; its array is kept for the next one. */
static void sj_cur_release(strata_join *j)
{
	if (j->cur && j->cur_owns)
		strata_result_release(j->cur, j->cur_rows * j->nf);
	j->cur_owns = 0;
	j->cur_rows = j->cur_pos = 0;
}

/* ---- compact answers of deferred fetches (Response.join_rows; layout in strata.proto) ---- */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "join_rows is little-endian");

static const size_t sj_times_bytes[] = {16, 8, 0}; /* [times] of a row, by SJ_TIMES_* */

struct sj_reader {
	const uint8_t *p, *end;
};

static int sj_take(struct sj_reader *rd, void *dst, size_t n)
{
	if ((size_t)(rd->end - rd->p) < n)
		return STRATA_EPROTO;
	memcpy(dst, rd->p, n);
	rd->p += n;
	return 0;
}

/* A found value: u8 type, then its payload. */
static int sj_value_decode(struct sj_reader *rd, struct strata_value *v)
{
	uint8_t type;
	uint32_t len;
	if (sj_take(rd, &type, 1))
		return STRATA_EPROTO;
	v->type = (enum strata_type)type;
	size_t esz = 0, extra = 0;
	switch (type) {
	case STRATA_I64:
		return sj_take(rd, &v->i64, 8);
	case STRATA_F64:
		return sj_take(rd, &v->f64, 8);
	case STRATA_F32:
		return sj_take(rd, &v->f32, 4);
	case STRATA_STR:
	case STRATA_BYTES:
		esz = 1;
		extra = 1; /* NUL terminator, as sc_value_from_pb gives strings */
		break;
	case STRATA_F32VEC:
		esz = sizeof(float);
		break;
	case STRATA_I64LIST:
		esz = sizeof(int64_t);
		break;
	default:
		return STRATA_EPROTO;
	}
	if (sj_take(rd, &len, 4) || (size_t)(rd->end - rd->p) / esz < len)
		return STRATA_EPROTO;
	size_t bytes = (size_t)len * esz;
	uint8_t *p = malloc(bytes + extra + (bytes + extra == 0));
	if (!p)
		return STRATA_ENOMEM;
	memcpy(p, rd->p, bytes);
	if (extra)
		p[bytes] = 0;
	rd->p += bytes;
	v->len = len;
	v->ptr = p;
	return 0;
}

/* One result, with the rules of sc_results_from_pb: times only for present, stale and
 * skipped values, and only those the session asked for (`times`). */
static int sj_result_decode(struct sj_reader *rd, int times, struct strata_result *out)
{
	uint8_t head;
	int64_t t[2] = {0, 0};
	memset(out, 0, sizeof(*out));
	if (sj_take(rd, &head, 1) ||
	    ((head & 8) && (times == SJ_TIMES_NONE || sj_take(rd, t, sj_times_bytes[times]))))
		return STRATA_EPROTO;
	if (!(head & 4)) {
		if ((head & 3) >= STRATA_STALE) {
			out->status = (enum strata_status)(head & 3);
			out->ts = t[0];
			out->ingest_us = t[1];
		}
		return 0;
	}
	out->found = 1;
	out->status = STRATA_PRESENT;
	out->ts = t[0];
	out->ingest_us = t[1];
	return sj_value_decode(rd, &out->value);
}

/* Makes the answer of a chunk or fetch of `rows` rows the current chunk. */
static int sj_cur_fill(strata_join *j, const Strata__Response *r, size_t rows,
		       struct strata_error *err)
{
	size_t n = rows * j->nf;
	if (j->deferred && !rows)
		return 0; /* an upload's answer */
	int compact = r->result_case == STRATA__RESPONSE__RESULT_JOIN_ROWS;
	if (!compact && (r->result_case != STRATA__RESPONSE__RESULT_RESULTS ||
			 r->results->n_results != n))
		return sc_error(err, STRATA_EPROTO, "join chunk answered with wrong row count");
	if (n > j->cur_cap) {
		struct strata_result *c = realloc(j->cur, n * sizeof(*c));
		if (!c)
			return sc_error(err, STRATA_ENOMEM, "out of memory");
		j->cur = c;
		j->cur_cap = n;
	}
	j->cur_owns = 1;
	if (!compact)
		return sc_results_from_pb(r->results->results, n, j->cur, err);
	j->cur_owns = 0;
	struct sj_reader rd = {r->join_rows.data, r->join_rows.data + r->join_rows.len};
	for (size_t i = 0; i < n; i++) {
		int rc = sj_result_decode(&rd, j->times, &j->cur[i]);
		j->cur_owns |= j->cur[i].value.ptr != NULL;
		if (rc) {
			strata_result_release(j->cur, i + 1);
			return sc_error(err, rc, "%s", rc == STRATA_ENOMEM ? "out of memory"
									  : "malformed join_rows answer");
		}
	}
	if (rd.p != rd.end) {
		strata_result_release(j->cur, n);
		return sc_error(err, STRATA_EPROTO, "join_rows answer longer than its rows");
	}
	return 0;
}

int strata_join_next(strata_join *j, const struct strata_result **row,
		     struct strata_error *err)
{
	if (j->clustered)
		return sj_next_cluster(j, row, err);
	for (;;) {
		if (j->cur && j->cur_pos < j->cur_rows) {
			*row = &j->cur[j->cur_pos++ * j->nf];
			j->pending--;
			return 1;
		}
		sj_cur_release(j);
		if (j->dead)
			return sj_alive(j, err);
		if (j->deferred) {
			int rc = sj_deferred_more(j, err);
			if (rc)
				return rc;
			if (j->qn == 0)
				return 0;
		} else if (j->qn == 0) {
			if (j->nrows == 0)
				return 0;
			int rc = sj_send_chunk(j, err);
			if (rc)
				return rc;
		}
		struct sj_chunk *ch = &j->q[j->qhead];
		if (!ch->resp) {
			int rc = sj_receive_one(j, err);
			if (rc)
				return rc;
		}
		Strata__Response *r = ch->resp;
		size_t rows = ch->rows;
		j->qrows -= rows;
		ch->resp = NULL;
		j->qhead = (j->qhead + 1) % j->qcap;
		j->qn--;
		int rc = sc_resp_error(r, err);
		if (!rc)
			rc = sj_cur_fill(j, r, rows, err);
		strata__response__free_unpacked(r, NULL);
		if (rc)
			return j->dead = rc;
		j->cur_rows = rows;
		j->cur_pos = 0;
	}
}

size_t strata_join_pending(const strata_join *j)
{
	return j->pending;
}

size_t strata_join_nfeatures(const strata_join *j)
{
	return j->nf;
}

void strata_join_close(strata_join *j)
{
	if (!j)
		return;
	for (int n = 0; n < SC_MAX_NODES; n++)
		strata_join_close(j->sub[n]);
	free(j->shard_node);
	free(j->ring);
	free(j->rbytes);
	free(j->table);
	for (size_t f = 0; j->features && f < j->nf; f++)
		free(j->features[f]);
	free(j->features);
	sj_cur_release(j);
	free(j->cur);
	/* Collect answers still in flight so they are not parked forever, then close. */
	struct strata_error e;
	while (j->join_id && !j->dead && j->unanswered && j->c->fd >= 0 && j->c->epoch == j->epoch)
		if (sj_receive_one(j, &e))
			break;
	for (size_t k = 0; k < j->qn; k++) {
		struct sj_chunk *ch = &j->q[(j->qhead + k) % j->qcap];
		if (ch->resp)
			strata__response__free_unpacked(ch->resp, NULL);
	}
	if (j->join_id && j->c->fd >= 0 && j->c->epoch == j->epoch) {
		Strata__JoinCloseReq m = STRATA__JOIN_CLOSE_REQ__INIT;
		m.join_id = j->join_id;
		Strata__Request req = STRATA__REQUEST__INIT;
		req.op_case = STRATA__REQUEST__OP_JOIN_CLOSE;
		req.join_close = &m;
		Strata__Response *r;
		if (sc_call(j->c, &req, &r, 0, &e) == 0)
			strata__response__free_unpacked(r, NULL);
	}
	free(j->q);
	free(j->eoff);
	free(j->elen);
	free(j->ts);
	free(j->ebuf);
	free(j);
}
