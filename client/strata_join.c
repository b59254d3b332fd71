/* libstrata streaming versioned sample join: rows go out in chunks (one JoinPush request
 * each, several in flight), results come back per chunk and are handed out in push order.
 * Over a cluster, one such join runs per node and every row goes to its shard's node; a
 * ring of row -> node keeps the push order when the answers are merged. */
#include "client/strata_impl.h"

#include <stdlib.h>
#include <string.h>

#include "common/st_slot.h"

#define SJ_WINDOW 4 /* chunks sent and not yet answered */
#define SJ_CHUNK_DEFAULT 8192

struct sj_chunk {
	uint64_t id;
	size_t rows;
	Strata__Response *resp; /* NULL until answered */
};

struct strata_join {
	strata *c;
	uint64_t epoch, join_id;
	size_t nf, chunk_rows;
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
	struct strata_result *cur;
	size_t cur_rows, cur_pos;
	size_t pending;
	int dead; /* error code that poisons the join */
	/* cluster: one join per node that is primary of a shard, and the node of every row not
	 * yet returned (a ring), so rows come back in push order across nodes */
	int clustered;
	strata_join *sub[SC_MAX_NODES];
	int *shard_node, nshards;
	uint8_t *ring;
	size_t rhead, rn, rcap;
};

static int sj_open_one(strata *c, const char *table, const char *const *features,
		       size_t nfeatures, int64_t known_at, size_t chunk_rows, int flags,
		       strata_join **out, struct strata_error *err);

/* Cluster join: one join per node that owns shards (the layout as it is at open; a layout
 * change during the join fails it with the node's EMOVED: open a new one). */
static int sj_open_cluster(strata_join *j, const char *table, const char *const *features,
			   int64_t known_at, int flags, struct strata_error *err)
{
	strata *nodes[SC_MAX_NODES];
	j->clustered = 1;
	int rc = sc_route_join_targets(j->c, nodes, &j->shard_node, &j->nshards, err);
	for (int n = 0; n < SC_MAX_NODES && !rc; n++)
		if (nodes[n] && (rc = sc_ensure(nodes[n], err)) == 0)
			rc = sj_open_one(nodes[n], table, features, j->nf, known_at, j->chunk_rows,
					 flags, &j->sub[n], err);
	return rc;
}

static int sj_push_cluster(strata_join *j, const char *entity, size_t entity_len, int64_t ts,
			   struct strata_error *err)
{
	if (j->dead)
		return sc_error(err, j->dead, "join failed earlier (%s)", strata_strerror(j->dead));
	if (j->rn == j->rcap) {
		size_t cap = j->rcap ? j->rcap * 2 : 4096;
		uint8_t *q = malloc(cap);
		if (!q)
			return sc_error(err, STRATA_ENOMEM, "out of memory");
		for (size_t k = 0; k < j->rn; k++)
			q[k] = j->ring[(j->rhead + k) % j->rcap];
		free(j->ring);
		j->ring = q;
		j->rhead = 0;
		j->rcap = cap;
	}
	int n = j->shard_node[st_shard_of_slot(st_slot_of(entity, entity_len), j->nshards)];
	int rc = strata_join_push(j->sub[n], entity, entity_len, ts, err);
	if (rc < 0)
		return j->dead = rc;
	j->ring[(j->rhead + j->rn++) % j->rcap] = (uint8_t)n;
	j->pending++;
	return rc;
}

static int sj_next_cluster(strata_join *j, const struct strata_result **row,
			   struct strata_error *err)
{
	if (j->dead)
		return sc_error(err, j->dead, "join failed earlier (%s)", strata_strerror(j->dead));
	if (j->rn == 0)
		return 0;
	int rc = strata_join_next(j->sub[j->ring[j->rhead]], row, err);
	if (rc == 0)
		rc = sc_error(err, STRATA_EPROTO, "join: a node returned fewer rows than pushed");
	if (rc < 0)
		return j->dead = rc;
	j->rhead = (j->rhead + 1) % j->rcap;
	j->rn--;
	j->pending--;
	return 1;
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
	rc = sj_open_cluster(j, table, features, known_at, flags, err);
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
	j->eoff = malloc(j->chunk_rows * sizeof(*j->eoff));
	j->elen = malloc(j->chunk_rows * sizeof(*j->elen));
	j->ts = malloc(j->chunk_rows * sizeof(*j->ts));
	if (!j->eoff || !j->elen || !j->ts) {
		strata_join_close(j);
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	}
	Strata__JoinOpenReq m = STRATA__JOIN_OPEN_REQ__INIT;
	m.table = (char *)table;
	m.n_features = nfeatures;
	m.features = (char **)features;
	m.has_known_at = 1;
	m.known_at = known_at;
	m.has_chunk_rows = 1;
	m.chunk_rows = (uint32_t)j->chunk_rows;
	if (flags & STRATA_JOIN_SKIP_BEFORE_HORIZON) {
		m.has_before_horizon = 1;
		m.before_horizon = 1;
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
	strata__response__free_unpacked(r, NULL);
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

static int sj_send_chunk(strata_join *j, struct strata_error *err)
{
	int rc = sj_alive(j, err);
	if (rc)
		return rc;
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
	ProtobufCBinaryData *ents = malloc((j->nrows + 1) * sizeof(*ents));
	if (!ents)
		return j->dead = sc_error(err, STRATA_ENOMEM, "out of memory");
	for (size_t i = 0; i < j->nrows; i++) {
		ents[i].data = j->ebuf + j->eoff[i];
		ents[i].len = j->elen[i];
	}
	Strata__JoinPushReq m = STRATA__JOIN_PUSH_REQ__INIT;
	m.join_id = j->join_id;
	m.n_entities = j->nrows;
	m.entities = ents;
	m.n_ts = j->nrows;
	m.ts = j->ts;
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_JOIN_PUSH;
	req.join_push = &m;
	req.id = sc_reserve_ids(j->c, 1);
	rc = sc_queue(j->c, &req, err);
	free(ents);
	if (rc)
		return j->dead = rc;
	struct sj_chunk *ch = &j->q[(j->qhead + j->qn) % j->qcap];
	ch->id = req.id;
	ch->rows = j->nrows;
	ch->resp = NULL;
	j->qn++;
	j->unanswered++;
	j->nrows = 0;
	j->elen_total = 0;
	/* Push the bytes out now and keep at most SJ_WINDOW chunks unanswered. */
	size_t got = 0;
	if ((rc = sc_wait(j->c, 0, 0, 0, NULL, NULL, &got, err)))
		return j->dead = rc;
	while (j->unanswered > SJ_WINDOW)
		if ((rc = sj_receive_one(j, err)))
			return rc;
	return 0;
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
	if (j->nrows == j->chunk_rows && (rc = sj_send_chunk(j, err)))
		return rc;
	return (j->qn && j->q[j->qhead].resp) || j->qn >= SJ_WINDOW ? 1 : 0;
}

int strata_join_flush(strata_join *j, struct strata_error *err)
{
	if (j->clustered) {
		if (j->dead)
			return sc_error(err, j->dead, "join failed earlier (%s)",
					strata_strerror(j->dead));
		for (int n = 0; n < SC_MAX_NODES; n++)
			if (j->sub[n] && (j->dead = strata_join_flush(j->sub[n], err)))
				return j->dead;
		return 0;
	}
	return j->nrows ? sj_send_chunk(j, err) : sj_alive(j, err);
}

static void sj_cur_release(strata_join *j)
{
	if (j->cur) {
		strata_result_release(j->cur, j->cur_rows * j->nf);
		free(j->cur);
	}
	j->cur = NULL;
	j->cur_rows = j->cur_pos = 0;
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
		if (j->qn == 0) {
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
		ch->resp = NULL;
		j->qhead = (j->qhead + 1) % j->qcap;
		j->qn--;
		int rc = sc_resp_error(r, err);
		if (!rc && (r->result_case != STRATA__RESPONSE__RESULT_RESULTS ||
			    r->results->n_results != rows * j->nf))
			rc = sc_error(err, STRATA_EPROTO, "join chunk answered with wrong row count");
		if (!rc) {
			j->cur = calloc(rows * j->nf + 1, sizeof(*j->cur));
			if (!j->cur)
				rc = sc_error(err, STRATA_ENOMEM, "out of memory");
			else if ((rc = sc_results_from_pb(r->results->results, rows * j->nf, j->cur,
							  err))) {
				free(j->cur);
				j->cur = NULL;
			}
		}
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
	sj_cur_release(j);
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
