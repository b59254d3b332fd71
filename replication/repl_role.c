/* The role state machine of a shard on one node, and its persistence across restarts.
 *
 * States:
 *   NONE        this node holds no copy of the shard (reads and writes are redirected)
 *   CONNECTING  a replica without a stream: connecting, or backing off after an error
 *   RESYNCING   a replica receiving a checkpoint (its old copy still serves reads)
 *   TAILING     a replica applying the primary's WAL batches
 *   PRIMARY     this node takes the shard's writes and streams them to replicas
 *   FENCED      a former primary that learnt of a newer layout version naming another
 *               primary, or (etcd) whose lease and leader key are gone, or that does not
 *               hold the leader key yet: it refuses writes until it follows the new primary
 *               or wins an election
 *
 * Leadership comes from the coordinator (repl_coord.h): operator commands with a static
 * layout, elections on etcd leases with --cluster etcd://. The layout's version of a shard is
 * its epoch there: every election bumps it.
 *
 * Transitions (function behind each):
 *   NONE       -> CONNECTING | PRIMARY        repl_role_reassign (a layout change)
 *   CONNECTING -> TAILING                     replica_session (HELLO accepted, first frame)
 *   CONNECTING -> RESYNCING                   replica_session (primary sent RESYNC)
 *   TAILING    -> RESYNCING                   replica_session (RESYNC after an ingest marker)
 *   TAILING    -> CONNECTING                  replica_main (stream error, backoff)
 *   RESYNCING  -> TAILING                     repl_resync_recv (copy installed)
 *   RESYNCING  -> CONNECTING                  replica_main (interrupted: the staged copy is
 *                                             dropped, the old copy stays)
 *   CONNECTING|TAILING|RESYNCING -> PRIMARY   repl_role_reassign (promote; etcd: the
 *                                             election won, never from RESYNCING)
 *   PRIMARY    -> FENCED                      repl_role_reassign (newer version, other primary)
 *   PRIMARY    -> FENCED                      repl_role_lease_lost (etcd: the lease expired in
 *                                             etcd; also at start, before the election)
 *   FENCED     -> PRIMARY                     repl_role_reassign (etcd: a fenced former
 *                                             primary wins the election with its own copy)
 *   FENCED     -> CONNECTING                  repl_role_reassign (follows the new primary;
 *                                             its divergent tail is undone in place at the
 *                                             join (REWIND), or the copy is resynced)
 *   any replica state -> NONE                 repl_role_reassign (removed from the shard)
 *
 * Invariants (repl_assert_state):
 *   1. state PRIMARY => sh->primary == self, and sh->primary == self => PRIMARY or FENCED.
 *   2. A shard in any state but PRIMARY refuses client writes (srv hook repl_check).
 *   3. A replica's applied position is written in the same RocksDB batch as the data it
 *      covers (kv_shard_apply_at), so after a crash it never claims more than it has.
 *   4. During RESYNCING the live copy is untouched until the staged copy is complete and
 *      verified (repl_resync_recv then kv_shard_install).
 *   5. A connection to a primary (fd >= 0) belongs to the shard's replica thread, which is
 *      running; after a role change it closes it as soon as it notices (kick).
 *   6. version never decreases.
 *   7. A write is acknowledged only by a PRIMARY whose lease deadline (lease_until_us) is
 *      ahead at the moment of acknowledging (hook_check before, hook_committed after the
 *      semi-sync wait); without leases (static layout) the deadline is infinite.
 *   8. etcd: a shard's version is the epoch of the leader key that named its primary; a
 *      peer with a newer epoch in HELLO or ACK, or an older one in a HEARTBEAT, is refused.
 *   9. A copy's stored position names another history only while the copy's content is
 *      exactly that history's prefix: every move to PRIMARY marks the position with the
 *      copy's own id (kv_shard_fork_mark) before the first write is allowed, and no applied
 *      batch, resync install or rewind lands after that mark (apply_mu + apply_closed).
 *  10. A fork record (from a replica state to PRIMARY) says: this copy's sequences before
 *      to_next hold exactly history from_replid before from_next. A replica joins by a
 *      rewind only through such a record (repl_join_plan); one behind from_next first gets
 *      the history's batches up to it from this copy's WAL (CATCHUP: kv_shard_followed
 *      checks that they continue each other exactly), one beyond it undoes its own from
 *      there. A replica takes the fork as its position only when it stands exactly at
 *      from_next after that.
 */
#include "replication/repl_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/st_log.h"

static const char *const state_names[REPL_NSTATES] = {
	"connecting", "resyncing", "tailing", "primary", "fenced", "none",
};

const char *repl_state_name(enum repl_state s)
{
	return (unsigned)s < REPL_NSTATES ? state_names[s] : "?";
}

/* legal[from] is the set of states `from` may move to */
static const unsigned legal[REPL_NSTATES] = {
	[REPL_S_NONE] = 1u << REPL_S_CONNECTING | 1u << REPL_S_PRIMARY,
	[REPL_S_CONNECTING] = 1u << REPL_S_TAILING | 1u << REPL_S_RESYNCING | 1u << REPL_S_PRIMARY |
			      1u << REPL_S_NONE | 1u << REPL_S_CONNECTING,
	[REPL_S_TAILING] = 1u << REPL_S_RESYNCING | 1u << REPL_S_CONNECTING | 1u << REPL_S_PRIMARY |
			   1u << REPL_S_NONE,
	[REPL_S_RESYNCING] = 1u << REPL_S_TAILING | 1u << REPL_S_CONNECTING | 1u << REPL_S_PRIMARY |
			     1u << REPL_S_NONE,
	[REPL_S_PRIMARY] = 1u << REPL_S_FENCED | 1u << REPL_S_PRIMARY,
	[REPL_S_FENCED] = 1u << REPL_S_CONNECTING | 1u << REPL_S_NONE | 1u << REPL_S_PRIMARY,
};

int64_t repl_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void repl_set_state(struct repl *r, struct repl_shard *sh, enum repl_state to)
{
	ST_ASSERT((unsigned)to < REPL_NSTATES);
	if (sh->state == to)
		return;
	ST_ASSERT(legal[sh->state] & (1u << to));
	st_debug("replication: shard %d: %s -> %s", sh->shard, repl_state_name(sh->state),
		 repl_state_name(to));
	sh->state = to;
	pthread_cond_broadcast(&r->cond);
}

void repl_assert_state(struct repl *r)
{
	for (int s = 0; s < r->layout.nshards; s++) {
		const struct repl_shard *sh = &r->shards[s];
		ST_ASSERT(sh->shard == s);
		ST_ASSERT((unsigned)sh->state < REPL_NSTATES);
		/* 1 */
		ST_ASSERT((sh->state == REPL_S_PRIMARY) == (sh->primary == r->self) ||
			  sh->state == REPL_S_FENCED);
		ST_ASSERT(sh->primary >= 0 && sh->primary < r->layout.nnodes);
		/* 5 */
		ST_ASSERT(sh->fd < 0 || sh->thread_started);
		ST_ASSERT(sh->resync_done <= sh->resync_total || sh->state != REPL_S_RESYNCING);
		/* 6 */
		ST_ASSERT(sh->version >= 1);
		/* 9: a primary's copy takes no applied batch */
		ST_ASSERT(sh->state != REPL_S_PRIMARY || atomic_load(&sh->apply_closed));
	}
	/* 7 */
	ST_ASSERT(r->coord == NULL || r->coord->ops->leased ||
		  atomic_load(&r->lease_until_us) == INT64_MAX);
}

enum repl_state repl_role_initial(const struct repl *r, int shard)
{
	const struct repl_shard_map *m = &r->layout.shards[shard];
	if (m->primary == r->self)
		return REPL_S_PRIMARY;
	return repl_layout_is_replica(&r->layout, shard, r->self) ? REPL_S_CONNECTING : REPL_S_NONE;
}

/* Invariant 9: the copy stops taking batches (an apply in flight finishes first), then its
 * position is marked as its own history, with the fork record when it was a replica. mu
 * held: the replica thread never takes mu while it holds apply_mu. */
static void role_fork(struct repl *r, struct repl_shard *sh, int follows)
{
	atomic_store(&sh->apply_closed, 1);
	pthread_mutex_lock(&sh->apply_mu);
	struct kv_repl_fork f;
	struct st_error err;
	int rc = kv_shard_fork_mark(r->db, sh->shard, follows, &f, &err);
	pthread_mutex_unlock(&sh->apply_mu);
	if (rc)
		st_errlog("replication: shard %d: cannot record the promotion point (replicas of "
			  "the old history will resync): %s", sh->shard, err.msg);
	else if (f.from_replid[0])
		st_info("replication: shard %d: promoted at the fork: history %s before %llu is "
			"this copy (%s) before %llu", sh->shard, f.from_replid,
			(unsigned long long)f.from_next, f.replid, (unsigned long long)f.to_next);
}

int repl_role_apply(struct repl_shard *sh, int (*f)(struct repl *r, struct repl_shard *sh,
						    void *arg), void *arg, struct st_error *err)
{
	pthread_mutex_lock(&sh->apply_mu);
	int rc = atomic_load(&sh->apply_closed)
			 ? st_error_set(err, ST_ECANCELED, "shard %d is no longer replicated here",
					sh->shard)
			 : f(sh->r, sh, arg);
	pthread_mutex_unlock(&sh->apply_mu);
	return rc;
}

void repl_join_plan(const char *mine, const struct kv_repl_fork *fork,
		    const struct kv_repl_pos *pos, const struct kv_repl_pos *own, int resync,
		    struct repl_join *out)
{
	*out = (struct repl_join){REPL_JOIN_RESYNC, 0, 0};
	if (resync)
		return;
	if (pos->replid[0] && !strcmp(pos->replid, mine)) {
		*out = (struct repl_join){REPL_JOIN_STREAM, pos->next_seq, 0};
		return;
	}
	if (!fork || !fork->from_replid[0])
		return;
	/* the copy that wrote the history this primary forked from (its former primary):
	 * whatever it wrote from the fork point on never reached this primary */
	if (!strcmp(own->replid, fork->from_replid) && own->next_seq >= fork->from_next)
		*out = (struct repl_join){REPL_JOIN_REWIND, fork->to_next, fork->from_next};
	/* a replica of that history: at or beyond the fork point it joins at once (beyond it,
	 * it undoes the batches this primary never had); behind it, this primary applied the
	 * batches it lacks before it forked and sends them first */
	else if (!strcmp(pos->replid, fork->from_replid) && pos->next_seq >= fork->from_next)
		*out = (struct repl_join){REPL_JOIN_REWIND, fork->to_next, 0};
	else if (!strcmp(pos->replid, fork->from_replid) && pos->next_seq)
		*out = (struct repl_join){REPL_JOIN_CATCHUP, fork->to_next, 0};
}

void repl_role_reassign(struct repl *r, struct repl_shard *sh, int primary, uint64_t version)
{
	if (version < sh->version)
		return; /* 6 */
	int was_primary = sh->state == REPL_S_PRIMARY;
	sh->version = version;
	sh->primary = primary;
	struct repl_shard_map *m = &r->layout.shards[sh->shard];
	/* the layout now names the new primary; the old one becomes a replica of it */
	int old = m->primary;
	if (old != primary) {
		for (int i = 0; i < m->nreplicas; i++)
			if (m->replicas[i] == primary)
				m->replicas[i] = old;
		m->primary = primary;
		m->version = version;
	}
	if (primary == r->self) {
		if (sh->state != REPL_S_PRIMARY)
			role_fork(r, sh, sh->state == REPL_S_CONNECTING ||
						 sh->state == REPL_S_TAILING ||
						 sh->state == REPL_S_RESYNCING);
		repl_set_state(r, sh, REPL_S_PRIMARY);
		repl_replica_kick(sh);
		return;
	}
	atomic_store(&sh->apply_closed, 0);
	if (was_primary)
		repl_set_state(r, sh, REPL_S_FENCED);
	if (repl_layout_is_replica(&r->layout, sh->shard, r->self)) {
		repl_set_state(r, sh, REPL_S_CONNECTING);
		repl_replica_kick(sh); /* reconnect to the new primary */
		struct st_error err;
		if (r->lfd >= 0 && repl_replica_start(r, sh, &err))
			st_errlog("replication: shard %d: %s", sh->shard, err.msg);
	} else {
		atomic_store(&sh->apply_closed, 1);
		repl_set_state(r, sh, REPL_S_NONE);
		repl_replica_kick(sh); /* its thread ends the stream and exits */
	}
}

/* Node index of `name` in r's layout, appending it (from nl's node j) when unknown. */
static int node_index(struct repl *r, const struct repl_layout *nl, int j)
{
	int n = repl_layout_find(&r->layout, nl->nodes[j].name);
	if (n >= 0 || r->layout.nnodes == REPL_MAX_NODES)
		return n;
	r->layout.nodes[r->layout.nnodes] = nl->nodes[j];
	st_info("replication: node %s (%s) joined the layout", nl->nodes[j].name,
		nl->nodes[j].addr);
	return r->layout.nnodes++;
}

/* Shard s's members in nl, as r's node indexes, into m (primary: r's current one). */
static int shard_members(struct repl *r, const struct repl_layout *nl, int s,
			 struct repl_shard_map *m)
{
	const struct repl_shard_map *x = &nl->shards[s];
	int cur = r->shards[s].primary, holds = 0;
	*m = r->layout.shards[s];
	m->nreplicas = 0;
	for (int i = -1; i < x->nreplicas; i++) {
		int n = node_index(r, nl, i < 0 ? x->primary : x->replicas[i]);
		if (n < 0)
			return -1;
		if (n == cur)
			holds = 1;
		else
			m->replicas[m->nreplicas++] = n;
	}
	return holds ? 0 : -1;
}

static int same_members(const struct repl_shard_map *a, const struct repl_shard_map *b)
{
	if (a->nreplicas != b->nreplicas)
		return 0;
	for (int i = 0; i < a->nreplicas; i++) {
		int found = 0;
		for (int j = 0; j < b->nreplicas; j++)
			found |= a->replicas[i] == b->replicas[j];
		if (!found)
			return 0;
	}
	return 1;
}

int repl_layout_apply(struct repl *r, const struct repl_layout *nl, struct st_error *err)
{
	if (nl->nshards != r->layout.nshards)
		return st_error_set(err, ST_EINVAL, "the new layout has %d shards, this node %d: "
				    "not applied", nl->nshards, r->layout.nshards);
	int changed = 0;
	pthread_mutex_lock(&r->mu);
	for (int j = 0; j < nl->nnodes; j++)
		node_index(r, nl, j);
	for (int s = 0; s < nl->nshards; s++) {
		struct repl_shard *sh = &r->shards[s];
		struct repl_shard_map m;
		if (shard_members(r, nl, s, &m)) {
			/* the shard's primary is not among the new members (move-slots refuses
			 * that; an election may have moved it meanwhile): the next edit fixes it */
			st_warn("replication: shard %d: the new layout does not include its primary "
				"%s: members kept", s, r->layout.nodes[sh->primary].name);
			continue;
		}
		if (same_members(&m, &r->layout.shards[s]))
			continue;
		changed++;
		r->layout.shards[s].nreplicas = m.nreplicas;
		memcpy(r->layout.shards[s].replicas, m.replicas, sizeof(m.replicas));
		int member = sh->primary == r->self || repl_layout_is_replica(&r->layout, s, r->self);
		if (member != (sh->state != REPL_S_NONE)) {
			st_info("replication: shard %d: %s by a layout change", s,
				member ? "gained" : "moved away");
			repl_role_reassign(r, sh, sh->primary, sh->version);
		}
	}
	if (nl->version > r->layout.version)
		r->layout.version = nl->version;
	repl_assert_state(r);
	pthread_mutex_unlock(&r->mu);
	return changed;
}

void repl_role_lease_lost(struct repl *r, struct repl_shard *sh)
{
	if (sh->state == REPL_S_PRIMARY)
		repl_set_state(r, sh, REPL_S_FENCED);
}

int repl_role_position(struct repl *r, int shard, char *replid, uint64_t *next, int *eligible,
		       struct st_error *err)
{
	struct repl_shard *sh = &r->shards[shard];
	pthread_mutex_lock(&r->mu);
	enum repl_state st = sh->state;
	*eligible = !sh->want_resync && (st == REPL_S_CONNECTING || st == REPL_S_TAILING ||
					 st == REPL_S_FENCED || st == REPL_S_PRIMARY);
	pthread_mutex_unlock(&r->mu);
	if (st == REPL_S_PRIMARY || st == REPL_S_FENCED) {
		*next = kv_shard_latest_seq(r->db, shard) + 1;
		return repl_shard_replid(r, shard, replid, err);
	}
	struct kv_repl_pos pos;
	int rc = kv_shard_repl_pos(r->db, shard, &pos, err);
	if (!rc)
		rc = repl_shard_replid(r, shard, replid, err);
	if (rc)
		return rc;
	if (strcmp(pos.replid, replid)) {
		snprintf(replid, KV_REPLID_MAX, "%s", pos.replid);
		*next = pos.next_seq;
	} else { /* a former primary not yet rejoined: its copy is its own history */
		*next = kv_shard_latest_seq(r->db, shard) + 1;
	}
	return 0;
}

/* ---- data_dir/cluster-state.json: {"shards":[{"shard":S,"primary":NAME,"version":V},...]},
 * written after every reassignment so that a restarted node keeps a promotion. ---- */

int repl_role_save(struct repl *r, struct st_error *err)
{
	json_t *arr = json_array();
	for (int s = 0; s < r->layout.nshards; s++) {
		const struct repl_shard *sh = &r->shards[s];
		json_array_append_new(arr, json_pack("{s:i,s:s,s:I}", "shard", s, "primary",
						     r->layout.nodes[sh->primary].name, "version",
						     (json_int_t)sh->version));
	}
	json_t *o = json_pack("{s:o}", "shards", arr);
	char path[4200], tmp[4300];
	snprintf(path, sizeof(path), "%s/cluster-state.json", r->data_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int rc = o && json_dump_file(o, tmp, JSON_COMPACT) == 0 ? 0 : -1;
	json_decref(o);
	FILE *f = rc ? NULL : fopen(tmp, "r+");
	if (f) {
		fflush(f);
		fsync(fileno(f));
		fclose(f);
	}
	if (rc || rename(tmp, path))
		return st_error_set(err, ST_EIO, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

int repl_role_load(struct repl *r, struct st_error *err)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/cluster-state.json", r->data_dir);
	if (access(path, F_OK))
		return 0;
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je), *arr = o ? json_object_get(o, "shards") : NULL;
	if (!json_is_array(arr)) {
		json_decref(o);
		return st_error_set(err, ST_ECORRUPT, "%s: %s", path, o ? "no shards" : je.text);
	}
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		int s;
		const char *prim;
		json_int_t v;
		if (json_unpack(e, "{s:i,s:s,s:I}", "shard", &s, "primary", &prim, "version", &v) ||
		    s < 0 || s >= r->layout.nshards)
			continue;
		int n = repl_layout_find(&r->layout, prim);
		struct repl_shard *sh = &r->shards[s];
		if (n >= 0 && (uint64_t)v > sh->version)
			repl_role_reassign(r, sh, n, (uint64_t)v);
	}
	json_decref(o);
	return 0;
}
