/* stratad's replication wiring: --cluster loads the layout (a file, or etcd://), the store is opened with
 * the layout's shard count and the WAL kept for --wal-ttl, then replication/ runs on its own
 * listener and threads. Without --cluster nothing here runs: a single embedded node. The
 * CLUSTER request (srv_op_cluster) answers the layout clients route with, a single-node
 * layout without --cluster, and bounded-staleness gets are checked here. */
#include "server/srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_log.h"

/* One stratad per process: the running replication, NULL without --cluster. */
static struct repl *srv_repl;

int srv_repl_prepare(struct srv_config *c, struct kv_options *ko, struct st_error *err)
{
	ko->wal_ttl_seconds = c->repl.wal_ttl_us / 1000000;
	if (!c->repl.cluster_file[0])
		return 0;
	if (!c->repl.node[0])
		return st_error_set(err, ST_EINVAL, "--cluster needs --node NAME");
	struct repl_layout l;
	int rc = repl_cluster_load(&c->repl, &l, err);
	if (rc)
		return rc;
	ko->nshards = l.nshards;
	repl_layout_release(&l);
	return 0;
}

int srv_repl_start(struct srv_config *c, struct kv_db *db, struct st_error *err)
{
	if (!c->repl.cluster_file[0])
		return 0;
	struct repl_layout l;
	int rc = repl_cluster_load(&c->repl, &l, err);
	if (rc)
		return rc;
	rc = repl_start(db, c->data_dir, &c->repl, &l, &srv_repl, err);
	repl_layout_release(&l);
	return rc;
}

void srv_repl_stop(void)
{
	repl_stop(srv_repl);
	srv_repl = NULL;
}

char *srv_repl_metrics(void)
{
	return srv_repl ? repl_metrics_text(srv_repl) : NULL;
}

int srv_repl_read_fresh(struct kv_db *db, const ProtobufCBinaryData *entities, size_t n,
			int64_t max_lag_us, struct st_error *err)
{
	if (!srv_repl)
		return 0; /* one node: every shard is its own primary */
	int last = -1;
	for (size_t i = 0; i < n; i++) {
		int s = kv_shard_of(db, (const char *)entities[i].data, entities[i].len);
		if (s == last)
			continue;
		int rc = repl_read_fresh(srv_repl, s, max_lag_us, err);
		if (rc)
			return rc;
		last = s;
	}
	return 0;
}

/* ---- the CLUSTER request: the layout as protobuf, built in the request's context ---- */

static int srv_cluster_single(struct srv_ctx *x, struct repl_desc *d)
{
	/* one node, primary of every shard, reached at the address the client used */
	memset(d, 0, sizeof(*d));
	d->version = 0;
	d->nshards = kv_nshards(x->s->db);
	d->nnodes = 1;
	d->self = 0;
	snprintf(d->nodes[0].name, sizeof(d->nodes[0].name), "single");
	d->shards = srv_ctx_alloc(x, (size_t)d->nshards, sizeof(*d->shards));
	if (!d->shards)
		return srv_ctx_nomem(x);
	for (int s = 0; s < d->nshards; s++) {
		d->shards[s].state = "primary";
		d->shards[s].lag_ms = -1;
	}
	return 0;
}

static void srv_desc_release(void *p, size_t n)
{
	(void)n;
	repl_desc_release(p);
}

int srv_op_cluster(struct srv_ctx *x)
{
	struct repl_desc *d = srv_ctx_alloc(x, 1, sizeof(*d));
	if (!d)
		return srv_ctx_nomem(x);
	int rc;
	if (srv_repl) {
		if ((rc = repl_describe(srv_repl, d, &x->err)))
			return rc;
		srv_ctx_defer(x, srv_desc_release, d, 1);
	} else if ((rc = srv_cluster_single(x, d))) {
		return rc;
	}
	Strata__ClusterLayout *l = srv_ctx_alloc(x, 1, sizeof(*l));
	Strata__ClusterNode *nodes = srv_ctx_alloc(x, (size_t)d->nnodes, sizeof(*nodes));
	Strata__ClusterNode **np = srv_ctx_alloc(x, (size_t)d->nnodes, sizeof(*np));
	Strata__ClusterShard *shards = srv_ctx_alloc(x, (size_t)d->nshards, sizeof(*shards));
	Strata__ClusterShard **sp = srv_ctx_alloc(x, (size_t)d->nshards, sizeof(*sp));
	uint32_t *reps = srv_ctx_alloc(x, (size_t)d->nshards * REPL_MAX_NODES, sizeof(*reps));
	if (!l || !nodes || !np || !shards || !sp || !reps)
		return srv_ctx_nomem(x);
	strata__cluster_layout__init(l);
	l->version = d->version;
	l->nshards = (uint32_t)d->nshards;
	l->slots = ST_SLOTS;
	l->slot_rule = "mod";
	l->has_clustered = 1;
	l->clustered = srv_repl != NULL;
	for (int i = 0; i < d->nnodes; i++) {
		strata__cluster_node__init(&nodes[i]);
		nodes[i].name = d->nodes[i].name;
		nodes[i].addr = d->nodes[i].addr;
		nodes[i].has_self = 1;
		nodes[i].self = i == d->self;
		np[i] = &nodes[i];
	}
	for (int s = 0; s < d->nshards; s++) {
		const struct repl_desc_shard *ds = &d->shards[s];
		Strata__ClusterShard *cs = &shards[s];
		strata__cluster_shard__init(cs);
		cs->shard = (uint32_t)s;
		cs->primary = (uint32_t)ds->primary;
		cs->replicas = reps + (size_t)s * REPL_MAX_NODES;
		for (int k = 0; k < ds->nreplicas; k++)
			cs->replicas[cs->n_replicas++] = (uint32_t)ds->replicas[k];
		cs->has_version = 1;
		cs->version = ds->version;
		cs->has_epoch = ds->has_epoch;
		cs->epoch = ds->epoch;
		cs->state = (char *)ds->state;
		cs->has_lag_ms = 1;
		cs->lag_ms = ds->lag_ms;
		sp[s] = cs;
	}
	l->n_nodes = (size_t)d->nnodes;
	l->nodes = np;
	l->n_shards = (size_t)d->nshards;
	l->shards = sp;
	x->resp.result_case = STRATA__RESPONSE__RESULT_CLUSTER;
	x->resp.cluster = l;
	return 0;
}
