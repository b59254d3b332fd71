/* A node's replication: start and stop, the store hooks (writes only on the primary of a
 * shard, reads only where a copy is; semi-sync waits for K replicas to apply a write's own
 * sequence), and the node's status and metrics. */
#include "replication/repl_int.h"

#include <errno.h>
#include <jansson.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_log.h"
#include "common/st_time.h"

/* Invariant 7: may this node acknowledge a write as a primary now? */
static int lease_valid(struct repl *r)
{
	return repl_now_us() < atomic_load(&r->lease_until_us);
}

static int lease_refusal(struct repl *r, int shard, struct st_error *err)
{
	atomic_fetch_add(&r->m.fenced_writes_refused, 1);
	return st_error_set(err, ST_EBUSY, "EUNAVAILABLE shard %d: this primary could not renew "
			    "its lease in etcd in time and refuses writes until it can (or until "
			    "another node is elected); retry", shard);
}

static int hook_check(void *arg, int shard, int access, struct st_error *err)
{
	int write = access == KV_ACCESS_WRITE;
	struct repl *r = arg;
	struct repl_shard *sh = &r->shards[shard];
	pthread_mutex_lock(&r->mu);
	enum repl_state st = sh->state;
	int p = sh->primary;
	uint64_t v = sh->version;
	int64_t complete = sh->complete_us;
	pthread_mutex_unlock(&r->mu);
	if (st == REPL_S_PRIMARY && (!write || lease_valid(r)))
		return 0;
	if (st == REPL_S_PRIMARY)
		return lease_refusal(r, shard, err);
	int64_t bound = r->o.replica_max_lag_us;
	if (access == KV_ACCESS_READ && st != REPL_S_NONE && st != REPL_S_FENCED) {
		int64_t behind = st_now_us() - complete;
		if (!bound || behind <= bound)
			return 0;
		/* too stale to answer: send the client to the primary instead */
		atomic_fetch_add(&r->m.stale_reads_refused, 1);
		return st_error_set(err, ST_EBUSY, "EMOVED shard %d primary %s %s layout %llu "
				    "(this replica is complete only up to %lld ms ago, beyond "
				    "--replica-max-lag %lld ms)", shard, r->layout.nodes[p].name,
				    r->layout.nodes[p].addr, (unsigned long long)v,
				    complete ? (long long)(behind / 1000) : -1LL,
				    (long long)(bound / 1000));
	}
	if (write)
		atomic_fetch_add(&r->m.writes_refused, 1);
	if (st == REPL_S_FENCED && p == r->self) /* etcd: no primary elected yet (or again) */
		return st_error_set(err, ST_EBUSY, "EUNAVAILABLE shard %d: no primary holds the "
				    "shard's lease right now (an election is due); retry", shard);
	return st_error_set(err, ST_EBUSY, "EMOVED shard %d primary %s %s layout %llu%s", shard,
			    r->layout.nodes[p].name, r->layout.nodes[p].addr,
			    (unsigned long long)v,
			    st == REPL_S_FENCED ? " (this node was fenced)" : "");
}

/* Number of distinct replicas of `shard` that applied everything up to `seq` (mu held). */
static int acked_count(struct repl *r, int shard, uint64_t seq)
{
	int n = 0;
	for (struct repl_peer *p = r->peers; p; p = p->next) {
		if (p->done || p->shard != shard || p->acked_next <= seq)
			continue;
		struct repl_peer *q = r->peers; /* a node counts once (a reconnect overlaps) */
		while (q != p && (q->done || q->shard != shard || q->acked_next <= seq ||
				  strcmp(q->node, p->node)))
			q = q->next;
		n += q == p;
	}
	return n;
}

/* Invariant 7 at the moment of acknowledging: the write is committed here (and, in semi-sync
 * mode, on K replicas), but a primary whose lease ran out meanwhile, or that was fenced, must
 * not acknowledge it: another node may already have been elected without it. `primary`: the
 * shard's state was PRIMARY, read under mu by the caller. */
static int still_leader(struct repl *r, int shard, int primary, uint64_t seq,
			struct st_error *err)
{
	/* (a static layout's graceful promotion fences a primary whose in-flight writes still
	 * reach the new primary: there, being fenced alone does not refuse the acknowledgement) */
	if ((primary || !r->coord->ops->leased) && lease_valid(r))
		return 0;
	atomic_fetch_add(&r->m.fenced_writes_refused, 1);
	return st_error_set(err, ST_ECLOSED, "write not acknowledged: the primary of shard %d %s "
			    "before acknowledging sequence %llu; it is discarded if another node "
			    "was elected without it", shard,
			    primary ? "could not renew its lease in time" : "was fenced",
			    (unsigned long long)seq);
}

/* A semi-sync writer waiting for the acks of its own sequence (on its stack, in the shard's
 * list under mu). Whoever unlinks it (an ack that gives its sequence K acks, repl_stop, or
 * the writer itself at its deadline) records the outcome under mu; an ack or repl_stop then
 * posts its semaphore after releasing mu, so a woken writer goes on without taking mu again
 * (with a condition variable signalled under mu, every woken writer first blocked on mu,
 * held by the ack thread waking the next ones: two context switches per write). */
struct repl_sync_waiter {
	struct repl_sync_waiter *next;
	uint64_t seq;
	int claimed;    /* (mu) unlinked by an ack or repl_stop: a post follows */
	int have;       /* replicas that applied seq, when unlinked */
	int primary;    /* the shard was PRIMARY when unlinked */
	sem_t sem;
};

/* Unlinks *pp (mu held) with its outcome onto the list *ready, to be posted after mu. */
static void sync_claim(struct repl *r, struct repl_shard *sh, struct repl_sync_waiter **pp,
		       int have, struct repl_sync_waiter **ready)
{
	struct repl_sync_waiter *w = *pp;
	*pp = w->next;
	w->claimed = 1;
	w->have = have;
	w->primary = sh->state == REPL_S_PRIMARY;
	w->next = *ready;
	*ready = w;
}

struct repl_sync_waiter *repl_sync_acked(struct repl *r, int shard)
{
	struct repl_shard *sh = &r->shards[shard];
	struct repl_sync_waiter *ready = NULL;
	for (struct repl_sync_waiter **pp = &sh->sync_waiters; *pp;) {
		int have = acked_count(r, shard, (*pp)->seq);
		if (have >= r->o.min_sync_replicas)
			sync_claim(r, sh, pp, have, &ready);
		else
			pp = &(*pp)->next;
	}
	return ready;
}

void repl_sync_wake(struct repl_sync_waiter *w)
{
	while (w) {
		struct repl_sync_waiter *next = w->next; /* w is gone once posted */
		sem_post(&w->sem);
		w = next;
	}
}

/* Waits (mu not held) until w was claimed by K acks or repl_stop, or its deadline passed;
 * the number of replicas that applied its sequence, and *primary. */
static int sync_wait(struct repl *r, struct repl_shard *sh, struct repl_sync_waiter *w,
		     const struct timespec *ts, int *primary)
{
	int rc;
	while ((rc = sem_timedwait(&w->sem, ts)) && errno == EINTR)
		;
	if (rc) {
		pthread_mutex_lock(&r->mu);
		int claimed = w->claimed;
		if (!claimed) { /* timed out: unlink itself */
			struct repl_sync_waiter **pp = &sh->sync_waiters;
			while (*pp != w)
				pp = &(*pp)->next;
			*pp = w->next;
			w->have = acked_count(r, sh->shard, w->seq);
			w->primary = sh->state == REPL_S_PRIMARY;
		}
		pthread_mutex_unlock(&r->mu);
		if (claimed) /* claimed just before the deadline: its post is on the way */
			while (sem_wait(&w->sem) && errno == EINTR)
				;
	}
	sem_destroy(&w->sem);
	*primary = w->primary;
	return w->have;
}

static int hook_committed(void *arg, int shard, uint64_t seq, struct st_error *err)
{
	struct repl *r = arg;
	int k = r->o.min_sync_replicas;
	pthread_mutex_lock(&r->mu);
	struct repl_shard *sh = &r->shards[shard];
	int primary = sh->state == REPL_S_PRIMARY;
	int have = k ? acked_count(r, shard, seq) : 0;
	struct repl_sync_waiter w = {.seq = seq};
	int wait = have < k && !atomic_load(&r->stopping);
	if (wait) {
		sem_init(&w.sem, 0, 0);
		w.next = sh->sync_waiters;
		sh->sync_waiters = &w;
	}
	pthread_mutex_unlock(&r->mu);
	/* (the streams need no wake-up from here: the store's write path put the batch in the
	 * shard's ring, which woke the streams waiting for it) */
	if (k == 0)
		return still_leader(r, shard, primary, seq, err);
	atomic_fetch_add(&r->m.sync_waits, 1);
	if (wait) {
		int64_t deadline = st_now_us() + r->o.sync_timeout_us;
		struct timespec ts = {deadline / 1000000, (deadline % 1000000) * 1000};
		have = sync_wait(r, sh, &w, &ts, &primary);
	}
	if (have >= k || (!primary && r->coord->ops->leased) || !lease_valid(r))
		/* never degrade past the lease */
		return still_leader(r, shard, primary, seq, err);
	atomic_fetch_add(&r->m.sync_timeouts, 1);
	if (r->o.sync_degrade) {
		uint64_t n = atomic_fetch_add(&r->m.sync_degraded, 1);
		if ((n & (n + 1)) == 0) /* 1st, 2nd, 4th, 8th... */
			st_warn("replication: shard %d: write %llu acknowledged as async: %d of %d "
				"replicas within %lld ms (--sync-degrade; %llu so far)", shard,
				(unsigned long long)seq, have, k,
				(long long)(r->o.sync_timeout_us / 1000), (unsigned long long)n + 1);
		return 0;
	}
	return st_error_set(err, ST_ECLOSED,
			    "write not acknowledged: it is durable on the primary of shard %d but "
			    "only %d of --min-sync-replicas %d replicas applied it within "
			    "--sync-timeout %lld ms",
			    shard, have, k, (long long)(r->o.sync_timeout_us / 1000));
}

int repl_shard_replid(struct repl *r, int shard, char *out, struct st_error *err)
{
	return kv_shard_replid(r->db, shard, out, err);
}

int repl_port(const struct repl *r)
{
	return r->port;
}

void repl_registry_follow(struct repl *r)
{
	/* the registry is owned by the primary of shard 0; every other node follows it */
	pthread_mutex_lock(&r->mu);
	int owner = r->shards[0].state == REPL_S_PRIMARY;
	int p = r->shards[0].primary;
	pthread_mutex_unlock(&r->mu);
	char why[512];
	snprintf(why, sizeof(why), "EMOVED registry primary %s %s (tables are created, altered "
		 "and dropped on the primary of shard 0)", r->layout.nodes[p].name,
		 r->layout.nodes[p].addr);
	kv_set_registry_follower(r->db, owner ? NULL : why);
}

int repl_start(struct kv_db *db, const char *data_dir, const struct repl_options *o,
	       const struct repl_layout *layout, struct repl **out, struct st_error *err)
{
	if (layout->nshards != kv_nshards(db))
		return st_error_set(err, ST_EINVAL, "the layout has %d shards but the data dir %s "
				    "was created with %d", layout->nshards, data_dir,
				    kv_nshards(db));
	int self = repl_layout_find(layout, o->node);
	if (self < 0)
		return st_error_set(err, ST_EINVAL, "--node '%s' is not a node of the layout",
				    o->node);
	struct repl *r = calloc(1, sizeof(*r));
	struct repl_shard_map *maps = calloc((size_t)layout->nshards, sizeof(*maps));
	struct repl_shard *shards = calloc((size_t)layout->nshards, sizeof(*shards));
	if (!r || !maps || !shards) {
		free(r);
		free(maps);
		free(shards);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	r->db = db;
	snprintf(r->data_dir, sizeof(r->data_dir), "%s", data_dir);
	r->o = *o;
	r->layout = *layout;
	memcpy(maps, layout->shards, (size_t)layout->nshards * sizeof(*maps));
	r->layout.shards = maps;
	r->shards = shards;
	r->self = self;
	r->lfd = -1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	for (int s = 0; s < layout->nshards; s++) {
		struct repl_shard *sh = &shards[s];
		sh->r = r;
		sh->shard = s;
		sh->fd = -1;
		sh->primary = maps[s].primary;
		sh->version = maps[s].version;
		sh->state = repl_role_initial(r, s);
		pthread_mutex_init(&sh->apply_mu, NULL);
		atomic_store(&sh->apply_closed, sh->state == REPL_S_PRIMARY);
	}

	/* before the listener: the streams take each committed batch from the shard's ring
	 * (a replica further behind than it holds reads the WAL) */
	int rc = o->ring_kb ? kv_repl_ring_enable(db, (size_t)o->ring_kb << 10, err) : 0;
	if (!rc)
		rc = repl_coord_open(o, &r->coord, err);
	atomic_store(&r->lease_until_us, r->coord && r->coord->ops->leased ? 0 : INT64_MAX);
	if (!rc)
		rc = repl_listener_start(r, err);
	if (!rc)
		rc = r->coord->ops->start(r->coord, r, err);
	/* invariant 9 for the primaries a static start left (the layout file's, unless a
	 * persisted promotion moved them; etcd's primaries are all elected, and marked then):
	 * before the hooks are set, so before any write */
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < layout->nshards && !rc && !r->coord->ops->leased; s++)
		if (shards[s].state == REPL_S_PRIMARY)
			rc = kv_shard_fork_mark(db, s, 0, NULL, err);
	pthread_mutex_unlock(&r->mu);
	if (rc) {
		repl_stop(r);
		return rc;
	}
	struct kv_repl_hooks h = {hook_check, hook_committed, r};
	kv_set_repl_hooks(db, &h);
	repl_registry_follow(r);
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < layout->nshards && !rc; s++)
		if (shards[s].state == REPL_S_CONNECTING)
			rc = repl_replica_start(r, &shards[s], err);
	pthread_mutex_unlock(&r->mu);
	if (rc) {
		repl_stop(r);
		return rc;
	}
	st_info("replication: node %s (layout version %llu, %s coordination), listener on port %d",
		o->node, (unsigned long long)layout->version, r->coord->ops->name, r->port);
	*out = r;
	return 0;
}

void repl_stop(struct repl *r)
{
	if (!r)
		return;
	if (r->coord)
		r->coord->ops->stop(r->coord);
	atomic_store(&r->stopping, 1);
	pthread_mutex_lock(&r->mu);
	pthread_cond_broadcast(&r->cond);
	struct repl_sync_waiter *ready = NULL;
	for (int s = 0; s < r->layout.nshards; s++) {
		struct repl_shard *sh = &r->shards[s];
		while (sh->sync_waiters)
			sync_claim(r, sh, &sh->sync_waiters,
				   acked_count(r, s, sh->sync_waiters->seq), &ready);
	}
	pthread_mutex_unlock(&r->mu);
	repl_sync_wake(ready);
	repl_replica_join_all(r);
	repl_listener_stop(r);
	kv_set_repl_hooks(r->db, NULL);
	kv_set_registry_follower(r->db, NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	for (int s = 0; s < r->layout.nshards; s++) {
		pthread_mutex_destroy(&r->shards[s].apply_mu);
	}
	repl_coord_free(r->coord);
	free(r->layout.shards);
	free(r->shards);
	free(r);
}

/* ---- status and metrics ---- */

static json_t *shard_status(struct repl *r, struct repl_shard *sh)
{
	const char *role = sh->state == REPL_S_PRIMARY ? "primary"
			   : sh->state == REPL_S_NONE	 ? "none"
			   : sh->state == REPL_S_FENCED  ? "fenced"
							 : "replica";
	uint64_t latest = kv_shard_latest_seq(r->db, sh->shard);
	char replid[KV_REPLID_MAX] = "";
	struct st_error err;
	if (sh->state == REPL_S_PRIMARY)
		repl_shard_replid(r, sh->shard, replid, &err);
	json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:I,s:I}", "shard", sh->shard, "role", role,
			      "state", repl_state_name(sh->state), "primary",
			      r->layout.nodes[sh->primary].name, "layout_version",
			      (json_int_t)sh->version, "local_seq", (json_int_t)latest);
	if (sh->state == REPL_S_PRIMARY) {
		json_object_set_new(o, "replid", json_string(replid));
		json_object_set_new(o, "next_seq", json_integer((json_int_t)latest + 1));
		json_t *reps = json_array();
		for (struct repl_peer *p = r->peers; p; p = p->next) {
			if (p->done || p->shard != sh->shard)
				continue;
			json_array_append_new(
				reps, json_pack("{s:s,s:I,s:I}", "node", p->node, "acked_next",
						(json_int_t)p->acked_next, "lag_seq",
						(json_int_t)(latest + 1 > p->acked_next
								     ? latest + 1 - p->acked_next
								     : 0)));
		}
		json_object_set_new(o, "replicas", reps);
	} else if (sh->state != REPL_S_NONE) {
		uint64_t lag = sh->primary_latest + 1 > sh->applied_next
				       ? sh->primary_latest + 1 - sh->applied_next
				       : 0;
		int64_t lag_ms = sh->complete_us ? (st_now_us() - sh->complete_us) / 1000 : -1;
		json_object_set_new(o, "applied_next", json_integer((json_int_t)sh->applied_next));
		json_object_set_new(o, "primary_latest",
				    json_integer((json_int_t)sh->primary_latest));
		json_object_set_new(o, "lag_seq", json_integer((json_int_t)lag));
		json_object_set_new(o, "lag_ms", json_integer(lag_ms));
		json_object_set_new(o, "resyncs", json_integer((json_int_t)sh->resyncs));
		if (sh->state == REPL_S_RESYNCING)
			json_object_set_new(o, "resync", json_pack("{s:I,s:I}", "done",
								   (json_int_t)sh->resync_done,
								   "total",
								   (json_int_t)sh->resync_total));
		if (sh->last_error[0])
			json_object_set_new(o, "last_error", json_string(sh->last_error));
	}
	return o;
}

char *repl_status_json(struct repl *r)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < r->layout.nshards; s++)
		json_array_append_new(arr, shard_status(r, &r->shards[s]));
	pthread_mutex_unlock(&r->mu);
	json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:o}", "node", r->layout.nodes[r->self].name,
			      "addr", r->layout.nodes[r->self].addr, "layout_version",
			      (json_int_t)r->layout.version, "ingest_clock",
			      (json_int_t)kv_ingest_clock(r->db), "shards", arr);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

char *repl_metrics_text(struct repl *r)
{
	static const struct {
		const char *name;
		size_t off;
	} counters[] = {
#define C(f) {"strata_repl_" #f "_total", offsetof(struct repl_metrics, f)}
		C(batches_sent), C(bytes_sent), C(batches_applied), C(resyncs_sent),
		C(resync_bytes_sent), C(resyncs_done), C(resync_bytes_recv), C(reconnects),
		C(send_timeouts), C(lag_disconnects), C(sync_waits), C(sync_timeouts),
		C(sync_degraded), C(proto_errors), C(writes_refused), C(stale_reads_refused),
		C(lease_renews), C(lease_renew_failures), C(failovers), C(fenced_writes_refused),
		C(divergent_discarded), C(divergent_discards), C(rejoin_truncations),
		C(rejoin_resyncs), C(rejoin_catchups), C(etcd_watch_events), C(layout_changes),
#undef C
	};
	size_t cap = 16384 + (size_t)r->layout.nshards * 320, n = 0; /* 4 gauges per shard */
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		atomic_uint_fast64_t *c = (atomic_uint_fast64_t *)((char *)&r->m + counters[i].off);
		n += (size_t)snprintf(buf + n, cap - n, "# TYPE %s counter\n%s %llu\n",
				      counters[i].name, counters[i].name,
				      (unsigned long long)atomic_load(c));
	}
	uint64_t from_ring, from_wal;
	kv_wal_tail_counts(r->db, &from_ring, &from_wal);
	n += (size_t)snprintf(buf + n, cap - n,
			      "# TYPE strata_repl_stream_ring_batches_total counter\n"
			      "strata_repl_stream_ring_batches_total %llu\n"
			      "# TYPE strata_repl_stream_wal_batches_total counter\n"
			      "strata_repl_stream_wal_batches_total %llu\n",
			      (unsigned long long)from_ring, (unsigned long long)from_wal);
	uint64_t renews = atomic_load(&r->m.lease_renews);
	n += (size_t)snprintf(buf + n, cap - n,
			      "# TYPE strata_repl_lease_renew_seconds_avg gauge\n"
			      "strata_repl_lease_renew_seconds_avg %.6f\n"
			      "# TYPE strata_repl_lease_renew_seconds_max gauge\n"
			      "strata_repl_lease_renew_seconds_max %.6f\n",
			      renews ? (double)atomic_load(&r->m.lease_renew_us_sum) / renews / 1e6 : 0.0,
			      (double)atomic_load(&r->m.lease_renew_us_max) / 1e6);
	pthread_mutex_lock(&r->mu);
	n += (size_t)snprintf(buf + n, cap - n, "# TYPE strata_repl_epoch gauge\n");
	for (int s = 0; s < r->layout.nshards && n < cap - 256; s++)
		n += (size_t)snprintf(buf + n, cap - n, "strata_repl_epoch{shard=\"%d\"} %llu\n", s,
				      (unsigned long long)r->shards[s].version);
	/* per replicated shard: lag in sequences, lag in seconds (time since the moment up to
	 * which the copy is complete; absent until the first heartbeat), resync progress */
	static const char *const gauges[] = {"strata_repl_lag_seq", "strata_replication_lag_seconds",
					     "strata_repl_resync_bytes_done"};
	int64_t now = st_now_us();
	for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++) {
		n += (size_t)snprintf(buf + n, cap - n, "# TYPE %s gauge\n", gauges[g]);
		for (int s = 0; s < r->layout.nshards && n < cap - 256; s++) {
			struct repl_shard *sh = &r->shards[s];
			if (sh->state == REPL_S_PRIMARY || sh->state == REPL_S_NONE)
				continue;
			uint64_t lag = sh->primary_latest + 1 > sh->applied_next
					       ? sh->primary_latest + 1 - sh->applied_next
					       : 0;
			if (g == 0)
				n += (size_t)snprintf(buf + n, cap - n, "%s{shard=\"%d\"} %llu\n",
						      gauges[g], s, (unsigned long long)lag);
			else if (g == 1 && sh->complete_us)
				n += (size_t)snprintf(buf + n, cap - n, "%s{shard=\"%d\"} %.3f\n",
						      gauges[g], s,
						      (double)(now - sh->complete_us) / 1e6);
			else if (g == 2)
				n += (size_t)snprintf(buf + n, cap - n, "%s{shard=\"%d\"} %llu\n",
						      gauges[g], s,
						      (unsigned long long)sh->resync_done);
		}
	}
	pthread_mutex_unlock(&r->mu);
	return buf;
}
