/* What a node tells clients about the cluster (the CLUSTER request, served by
 * server/srv_repl.c): the layout with the promotions this node has seen, its own state and
 * lag for each shard, and the freshness check of bounded-staleness reads. Reads the shared
 * state under repl.mu and changes nothing. */
#include "replication/repl_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/st_time.h"

int repl_describe(struct repl *r, struct repl_desc *out, struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	out->shards = calloc((size_t)r->layout.nshards, sizeof(*out->shards));
	if (!out->shards)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	out->nshards = r->layout.nshards;
	out->nnodes = r->layout.nnodes;
	out->self = r->self;
	memcpy(out->nodes, r->layout.nodes, sizeof(out->nodes));
	out->version = r->layout.version;
	int64_t now = st_now_us();
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < r->layout.nshards; s++) {
		const struct repl_shard *sh = &r->shards[s];
		const struct repl_shard_map *m = &r->layout.shards[s];
		struct repl_desc_shard *d = &out->shards[s];
		d->primary = sh->primary;
		/* the map's replicas follow promotions (repl_role_reassign) */
		for (int i = 0; i < m->nreplicas; i++)
			if (m->replicas[i] != sh->primary)
				d->replicas[d->nreplicas++] = m->replicas[i];
		d->version = sh->version;
		/* with coordinated failover (etcd leases) the shard's version is its epoch */
		d->has_epoch = r->coord && r->coord->ops->leased;
		d->epoch = sh->version;
		d->state = repl_state_name(sh->state);
		d->lag_ms = sh->state != REPL_S_PRIMARY && sh->state != REPL_S_NONE && sh->complete_us
				    ? (now - sh->complete_us) / 1000
				    : -1;
		if (sh->version > out->version)
			out->version = sh->version;
	}
	pthread_mutex_unlock(&r->mu);
	return 0;
}

void repl_desc_release(struct repl_desc *d)
{
	free(d->shards);
	d->shards = NULL;
}

int repl_read_fresh(struct repl *r, int shard, int64_t max_lag_us, struct st_error *err)
{
	if (shard < 0 || shard >= r->layout.nshards)
		return st_error_set(err, ST_EINVAL, "no shard %d", shard);
	const struct repl_shard *sh = &r->shards[shard];
	pthread_mutex_lock(&r->mu);
	enum repl_state st = sh->state;
	int64_t complete = sh->complete_us;
	pthread_mutex_unlock(&r->mu);
	if (st == REPL_S_PRIMARY || st == REPL_S_NONE || st == REPL_S_FENCED)
		return 0; /* the primary is current; the others are refused by the read itself */
	int64_t behind = st_now_us() - complete;
	if (complete && behind <= max_lag_us)
		return 0;
	atomic_fetch_add(&r->m.stale_reads_refused, 1);
	if (!complete)
		return st_error_set(err, ST_ESTALE, "replica of shard %d (state %s) does not know "
				    "how current it is yet; max_lag_ms %lld", shard,
				    repl_state_name(st), (long long)(max_lag_us / 1000));
	return st_error_set(err, ST_ESTALE, "replica of shard %d is complete only up to %lld ms "
			    "ago, beyond max_lag_ms %lld (state %s)", shard,
			    (long long)(behind / 1000), (long long)(max_lag_us / 1000),
			    repl_state_name(st));
}
