/* The etcd coordinator (--cluster etcd://HOST:PORT/PREFIX): the layout and, per shard, the
 * leader and its epoch live in etcd; this node keeps a lease, publishes its positions, follows
 * the leader keys and runs elections. No consensus here: etcd's transactions decide.
 *
 * Keys under PREFIX:
 *   layout              the layout JSON (repl_layout_to_json), written by strata-admin
 *   shards/S/epoch      {"epoch":E,"node":N,"replid":R,"from_replid":H,"from_next":P}: the
 *                       latest election of shard S (no lease). R is the history the shard's
 *                       primary writes; the winner came from history H at position P (so a
 *                       copy of H beyond P holds writes the new primary never had)
 *   shards/S/leader     {"node":N,"epoch":E,"replid":R} bound to N's lease: N is primary
 *   nodes/NAME          {"addr","repl","shards":[{"replid","next","eligible"}...]} bound to
 *                       the node's lease: its positions for elections (published each tick)
 *
 * Every TICK the coordinator thread renews the lease when due (every TTL/4), publishes its
 * positions when they changed, reads shards/ and per shard:
 *   - leader key of another node with a newer epoch: follow it (a former primary undoes its
 *     divergent tail when it joins the new primary's stream: repl_replica.c, REWIND);
 *   - no leader key for SETTLE: if this node's copy is the most caught-up eligible one of the
 *     shard's history (repl_elect_best over the published positions), take the key in one
 *     transaction that also bumps the epoch key, compared by revision: one node wins a race;
 *   - this node is PRIMARY but its key is gone (lease expired): FENCED.
 * Writes stop at the lease deadline if the lease was not renewed (repl_lease_deadline), which
 * is before etcd can expire it: see docs/replication.md, "Automatic failover". */
#include "replication/repl_coord.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_log.h"
#include "replication/repl_etcd.h"
#include "replication/repl_int.h"

#define TICK_US 100000
#define SETTLE_US 150000 /* a leader key absent this long starts an election */
/* With the watch up, shards/ and the layout are read when it reports a change, and at least
 * this often (a safety net); without it, shards/ every tick as before. */
#define SAFETY_POLL_US 2000000
#define WATCH_IDLE_US 30000000 /* a watch that hears nothing this long is re-created */

struct coord_etcd {
	struct repl_coord c;
	char url[4096];
	struct repl_options o;
	struct repl_etcd *e; /* start's, then the thread's */
	struct repl *r;
	pthread_t thread;
	int thread_started;
	atomic_int stop;
	int64_t lease;        /* 0 = none */
	int64_t ka_sent_us;   /* monotonic send time of the last successful keepalive */
	int renew_failing;
	char *report;         /* last published nodes/NAME value */
	int64_t *absent_since; /* per shard: when the leader key was first seen missing */
	int64_t layout_rev;    /* mod revision of the layout key applied */
	int64_t next_poll_us;  /* the safety net's next read */
	/* the watch thread (watch_main) and what it reported, under wmu; wcond wakes the loop */
	pthread_t wthread;
	int wthread_started;
	pthread_mutex_t wmu;
	pthread_cond_t wcond;
	int watching, dirty_shards, dirty_layout;
	struct race {          /* per shard, fault repl.elect.race: a late stale transaction */
		int64_t ep_rev, at_us;
		json_t *ep;
		struct repl_candidate me;
	} *race;
};

/* ---- pure parts ---- */

int repl_elect_best(const struct repl_candidate *c, int n, const char *hist)
{
	int best = -1;
	for (int i = 0; i < n; i++) {
		if (!c[i].eligible || strcmp(c[i].replid, hist))
			continue;
		if (best < 0 || c[i].next > c[best].next ||
		    (c[i].next == c[best].next && strcmp(c[i].node, c[best].node) < 0))
			best = i;
	}
	return best;
}

int64_t repl_lease_deadline(int64_t sent_us, int64_t ttl_s)
{
	int64_t ttl_us = ttl_s * 1000000;
	return sent_us + ttl_us - ttl_us / 100 - REPL_LEASE_MARGIN_US;
}

/* ---- helpers ---- */

static void key(const struct coord_etcd *c, char *buf, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void key(const struct coord_etcd *c, char *buf, size_t n, const char *fmt, ...)
{
	int k = snprintf(buf, n, "%s/", repl_etcd_prefix(c->e));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + k, n - (size_t)k, fmt, ap);
	va_end(ap);
}

static json_t *kv_json(const struct repl_etcd_kv *kv)
{
	return kv ? json_loadb(kv->value, kv->vlen, 0, NULL) : NULL;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k)) ?: "";
}

static uint64_t ju64(const json_t *o, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(o, k));
	return v > 0 ? (uint64_t)v : 0;
}

/* Requests at start may wait for a busy etcd; the loop's may take at most half the TTL (a
 * failed renewal is retried at the next tick, well before the lease deadline). */
#define START_TIMEOUT_US 5000000

static int open_handle(struct coord_etcd *c, int64_t timeout_us, struct st_error *err)
{
	repl_etcd_close(c->e);
	c->e = NULL;
	return repl_etcd_open(c->url, timeout_us, &c->e, err);
}

static int64_t loop_timeout_us(const struct coord_etcd *c)
{
	int64_t to = c->o.lease_ttl_s * 1000000 / 2;
	return to < 2000000 ? to : 2000000;
}

/* ---- the layout ---- */

static int etcd_load(struct repl_coord *rc, struct repl_layout *out, struct st_error *err)
{
	struct coord_etcd *c = (struct coord_etcd *)rc;
	int rc2 = open_handle(c, START_TIMEOUT_US, err);
	char k[512];
	struct repl_etcd_kvs kvs = {0};
	if (!rc2) {
		key(c, k, sizeof(k), "layout");
		rc2 = repl_etcd_range(c->e, k, 0, &kvs, err);
	}
	if (rc2) {
		st_error_prefix(err, "%s", c->url);
		return rc2;
	}
	if (!kvs.n)
		return st_error_set(err, ST_ENOTFOUND, "no layout at %s in etcd (strata-admin cluster "
				    "init --cluster %s --layout FILE)", k, c->url);
	rc2 = repl_layout_from_json(kvs.kv[0].value, out, err);
	c->layout_rev = kvs.kv[0].mod_rev;
	repl_etcd_kvs_release(&kvs);
	return rc2;
}

/* ---- the lease ---- */

static void lease_lost(struct coord_etcd *c)
{
	struct repl *r = c->r;
	atomic_store(&r->lease_until_us, 0);
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < r->layout.nshards; s++)
		if (r->shards[s].state == REPL_S_PRIMARY) {
			st_warn("replication: shard %d: this node's lease expired in etcd: fenced",
				s);
			repl_role_lease_lost(r, &r->shards[s]);
		}
	repl_assert_state(r);
	pthread_mutex_unlock(&r->mu);
	repl_registry_follow(r);
	c->lease = 0;
	free(c->report);
	c->report = NULL; /* the node key went with the lease */
}

static int grant(struct coord_etcd *c, struct st_error *err)
{
	int64_t sent = repl_now_us();
	int rc = repl_etcd_grant(c->e, c->o.lease_ttl_s, &c->lease, err);
	if (rc)
		return rc;
	c->ka_sent_us = sent;
	atomic_store(&c->r->lease_until_us, repl_lease_deadline(sent, c->o.lease_ttl_s));
	st_info("replication: lease %" PRIx64 " granted (TTL %llds)", (uint64_t)c->lease,
		(long long)c->o.lease_ttl_s);
	return 0;
}

static void renew(struct coord_etcd *c)
{
	struct repl *r = c->r;
	struct st_error err = {0};
	int64_t now = repl_now_us();
	if (c->lease && now - c->ka_sent_us < c->o.lease_ttl_s * 1000000 / 4)
		return;
	int64_t ttl = 0;
	int rc;
	if (!c->lease)
		rc = grant(c, &err);
	else if (ST_FAULT("repl.lease.renew"))
		rc = st_error_set(&err, ST_ECLOSED, "fault repl.lease.renew");
	else
		rc = repl_etcd_keepalive(c->e, c->lease, &ttl, &err);
	int64_t took = repl_now_us() - now;
	if (rc) {
		atomic_fetch_add(&r->m.lease_renew_failures, 1);
		if (!c->renew_failing++)
			st_warn("replication: cannot renew the lease: %s (writes stop at the lease "
				"deadline unless a renewal succeeds)", err.msg);
		return;
	}
	if (c->renew_failing)
		st_info("replication: lease renewed again after %d failures", c->renew_failing);
	c->renew_failing = 0;
	if (c->lease && ttl == 0 && c->ka_sent_us < now) {
		lease_lost(c); /* the keepalive found no lease: expired in etcd */
		return;
	}
	if (ttl > 0) {
		c->ka_sent_us = now;
		atomic_store(&r->lease_until_us, repl_lease_deadline(now, ttl));
	}
	atomic_fetch_add(&r->m.lease_renews, 1);
	atomic_fetch_add(&r->m.lease_renew_us_sum, (uint64_t)took);
	if ((uint64_t)took > atomic_load(&r->m.lease_renew_us_max))
		atomic_store(&r->m.lease_renew_us_max, (uint64_t)took);
}

/* nodes/NAME: addresses and positions, put when they changed. */
static void publish(struct coord_etcd *c)
{
	struct repl *r = c->r;
	if (!c->lease)
		return;
	json_t *arr = json_array();
	for (int s = 0; s < r->layout.nshards; s++) {
		char replid[KV_REPLID_MAX] = "";
		uint64_t next = 0;
		int eligible = 0;
		struct st_error err;
		if (repl_role_position(r, s, replid, &next, &eligible, &err))
			eligible = 0;
		json_array_append_new(arr, json_pack("{s:s,s:I,s:b}", "replid", replid, "next",
						     (json_int_t)next, "eligible", eligible));
	}
	const struct repl_node *me = &r->layout.nodes[r->self];
	json_t *o = json_pack("{s:s,s:s,s:o}", "addr", me->addr, "repl", me->repl_addr, "shards",
			      arr);
	char *v = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!v || (c->report && !strcmp(v, c->report))) {
		free(v);
		return;
	}
	char k[512];
	key(c, k, sizeof(k), "nodes/%s", me->name);
	struct st_error err;
	if (repl_etcd_put(c->e, k, v, c->lease, &err)) {
		free(v);
		return;
	}
	free(c->report);
	c->report = v;
}

/* ---- following and elections ---- */

static void follow(struct coord_etcd *c, int s, int n, uint64_t epoch, const json_t *ep)
{
	struct repl *r = c->r;
	struct repl_shard *sh = &r->shards[s];
	pthread_mutex_lock(&r->mu);
	int change = epoch > sh->version || (epoch == sh->version && sh->primary != n);
	pthread_mutex_unlock(&r->mu);
	if (!change)
		return;
	pthread_mutex_lock(&r->mu);
	repl_role_reassign(r, sh, n, epoch);
	repl_assert_state(r);
	pthread_mutex_unlock(&r->mu);
	if (s == 0)
		repl_registry_follow(r);
	st_info("replication: shard %d: primary is %s (epoch %llu)", s, r->layout.nodes[n].name,
		(unsigned long long)epoch);
}

/* The published positions of shard s (nodes/ keys), this node's fresh one in place of its own. */
static int candidates(struct coord_etcd *c, int s, struct repl_candidate *out, int max,
		      const struct repl_candidate *self)
{
	char k[512];
	key(c, k, sizeof(k), "nodes/");
	struct repl_etcd_kvs kvs;
	struct st_error err;
	if (repl_etcd_range(c->e, k, 1, &kvs, &err))
		return -1;
	int n = 0;
	out[n++] = *self;
	for (size_t i = 0; i < kvs.n && n < max; i++) {
		const char *name = kvs.kv[i].key + strlen(k);
		if (!strcmp(name, self->node))
			continue;
		json_t *o = kv_json(&kvs.kv[i]);
		json_t *p = json_array_get(json_object_get(o, "shards"), (size_t)s);
		if (p) {
			struct repl_candidate *d = &out[n++];
			snprintf(d->node, sizeof(d->node), "%s", name);
			snprintf(d->replid, sizeof(d->replid), "%s", jstr(p, "replid"));
			d->next = ju64(p, "next");
			d->eligible = json_is_true(json_object_get(p, "eligible"));
		}
		json_decref(o);
	}
	repl_etcd_kvs_release(&kvs);
	return n;
}

/* This node's standing in shard s's election: 1 = the best copy of the shard's history (it
 * should take the key), 0 = a candidate but not the best, -1 = not a candidate. */
static int candidacy(struct coord_etcd *c, int s, const json_t *ep, struct repl_candidate *me)
{
	struct repl *r = c->r;
	struct st_error err = {0};
	memset(me, 0, sizeof(*me));
	snprintf(me->node, sizeof(me->node), "%s", r->layout.nodes[r->self].name);
	if (!c->lease || repl_role_position(r, s, me->replid, &me->next, &me->eligible, &err) ||
	    !me->eligible || repl_now_us() >= atomic_load(&r->lease_until_us))
		return -1;
	const char *hist = jstr(ep, "replid");
	if (!*hist) /* a new cluster: the layout's primary starts the first epoch */
		return strcmp(jstr(ep, "node"), me->node) ? -1 : 1;
	struct repl_candidate cs[REPL_MAX_NODES + 1];
	int n = candidates(c, s, cs, REPL_MAX_NODES + 1, me);
	if (n < 0 || strcmp(me->replid, hist))
		return -1;
	return repl_elect_best(cs, n, hist) == 0;
}

/* Takes shard s's leader key and bumps its epoch in one transaction, compared against the
 * epoch key's revision ep_rev and the leader key's absence: of racing nodes one wins. */
static void take(struct coord_etcd *c, int s, int64_t ep_rev, const json_t *ep,
		 const struct repl_candidate *me)
{
	struct repl *r = c->r;
	struct st_error err = {0};
	const char *hist = jstr(ep, "replid");
	uint64_t epoch = ju64(ep, "epoch");
	char mine[KV_REPLID_MAX], lk[512], ek[512];
	if (repl_shard_replid(r, s, mine, &err))
		return;
	key(c, lk, sizeof(lk), "shards/%d/leader", s);
	key(c, ek, sizeof(ek), "shards/%d/epoch", s);
	json_t *lv = json_pack("{s:s,s:I,s:s}", "node", me->node, "epoch", (json_int_t)epoch + 1,
			       "replid", mine);
	json_t *ev = json_pack("{s:I,s:s,s:s,s:s,s:I}", "epoch", (json_int_t)epoch + 1, "node",
			       me->node, "replid", mine, "from_replid", hist, "from_next",
			       (json_int_t)me->next);
	char *lvs = json_dumps(lv, JSON_COMPACT), *evs = json_dumps(ev, JSON_COMPACT);
	json_decref(lv);
	json_decref(ev);
	int ok = 0;
	int rc = lvs && evs
			 ? repl_etcd_txn(c->e,
					 json_pack("[o,o]", repl_etcd_cmp_rev(lk, "CREATE", 0),
						   repl_etcd_cmp_rev(ek, "MOD", ep_rev)),
					 json_pack("[{s:o},{s:o}]", "request_put",
						   repl_etcd_op_put(lk, lvs, c->lease), "request_put",
						   repl_etcd_op_put(ek, evs, 0)),
					 &ok, &err)
			 : ST_ENOMEM;
	free(lvs);
	free(evs);
	if (rc || !ok) {
		st_info("replication: shard %d: lost the election for epoch %llu%s%s", s,
			(unsigned long long)epoch + 1, rc ? ": " : " (another node took it)",
			rc ? err.msg : "");
		return;
	}
	pthread_mutex_lock(&r->mu);
	repl_role_reassign(r, &r->shards[s], r->self, epoch + 1);
	repl_assert_state(r);
	pthread_mutex_unlock(&r->mu);
	if (s == 0)
		repl_registry_follow(r);
	if (*hist)
		atomic_fetch_add(&r->m.failovers, 1);
	st_warn("replication: shard %d: won the election: primary for epoch %llu (from position "
		"%llu of the previous history)", s, (unsigned long long)epoch + 1,
		(unsigned long long)me->next);
}

/* Fault repl.elect.race: a candidate that is not the best competes anyway, 500 ms later, with
 * the view it had when the leader key vanished; the best copy has taken the key by then, so
 * this transaction must fail (tests/integ/repl_etcd_restart.sh). */
static void race_arm(struct coord_etcd *c, int s, int64_t ep_rev, const json_t *ep)
{
	struct race *x = &c->race[s];
	struct repl_candidate me;
	if (x->ep || candidacy(c, s, ep, &me) != 0 || !ST_FAULT("repl.elect.race"))
		return;
	st_warn("replication: shard %d: fault repl.elect.race: competing late with the view of "
		"epoch %llu", s, (unsigned long long)ju64(ep, "epoch"));
	x->ep_rev = ep_rev;
	x->ep = json_deep_copy(ep);
	x->me = me;
	x->at_us = repl_now_us() + 500000;
}

static void race_run(struct coord_etcd *c)
{
	for (int s = 0; s < c->r->layout.nshards; s++) {
		struct race *x = &c->race[s];
		if (!x->ep || repl_now_us() < x->at_us)
			continue;
		take(c, s, x->ep_rev, x->ep, &x->me);
		json_decref(x->ep);
		x->ep = NULL;
	}
}

static void shard_tick(struct coord_etcd *c, int s, const struct repl_etcd_kvs *kvs)
{
	struct repl *r = c->r;
	char lk[512], ek[512];
	key(c, lk, sizeof(lk), "shards/%d/leader", s);
	key(c, ek, sizeof(ek), "shards/%d/epoch", s);
	const struct repl_etcd_kv *lkv = repl_etcd_kvs_find(kvs, lk), *ekv = repl_etcd_kvs_find(kvs, ek);
	json_t *ep = kv_json(ekv);
	if (!ep) { /* not initialised (strata-admin cluster init writes it) */
		return;
	}
	json_t *lv = kv_json(lkv);
	struct repl_shard *sh = &r->shards[s];
	if (lv) {
		c->absent_since[s] = 0;
		int n = repl_layout_find(&r->layout, jstr(lv, "node"));
		uint64_t epoch = ju64(lv, "epoch");
		if (n >= 0 && n != r->self && epoch >= 1)
			follow(c, s, n, epoch, ep);
		json_decref(lv);
		json_decref(ep);
		return;
	}
	pthread_mutex_lock(&r->mu);
	int was_primary = sh->state == REPL_S_PRIMARY;
	if (was_primary) {
		st_warn("replication: shard %d: the leader key is gone (lease expired): fenced", s);
		repl_role_lease_lost(r, sh);
	}
	pthread_mutex_unlock(&r->mu);
	if (was_primary && s == 0)
		repl_registry_follow(r);
	int64_t now = repl_now_us();
	if (!c->absent_since[s]) {
		c->absent_since[s] = now;
		race_arm(c, s, ekv->mod_rev, ep);
	}
	struct repl_candidate me;
	if (now - c->absent_since[s] >= SETTLE_US && candidacy(c, s, ep, &me) == 1)
		take(c, s, ekv->mod_rev, ep, &me);
	json_decref(ep);
}

/* The layout key, applied to the running node when its revision changed. */
static void layout_tick(struct coord_etcd *c, const char *how)
{
	char k[512];
	key(c, k, sizeof(k), "layout");
	struct repl_etcd_kvs kvs;
	struct st_error err = {0};
	if (repl_etcd_range(c->e, k, 0, &kvs, &err))
		return;
	if (kvs.n && kvs.kv[0].mod_rev != c->layout_rev) {
		struct repl_layout nl;
		uint64_t was = c->r->layout.version;
		int rc = repl_layout_from_json(kvs.kv[0].value, &nl, &err);
		if (!rc) {
			rc = repl_layout_apply(c->r, &nl, &err);
			repl_layout_release(&nl);
		}
		if (rc < 0) {
			st_warn("replication: the layout in etcd (revision %lld) is not applied: %s",
				(long long)kvs.kv[0].mod_rev, err.msg);
		} else if (rc > 0 || c->r->layout.version != was) {
			atomic_fetch_add(&c->r->m.layout_changes, 1);
			st_info("replication: layout version %llu applied (from the %s; %d shards "
				"changed members)", (unsigned long long)c->r->layout.version, how, rc);
		}
		c->layout_rev = kvs.kv[0].mod_rev;
	}
	repl_etcd_kvs_release(&kvs);
}

/* What to read this tick: what the watch reported, everything when the safety net is due,
 * shards/ every tick without a watch or while an election is pending (its timing). */
static void due(struct coord_etcd *c, int *shards, int *layout, int *watched)
{
	int64_t now = repl_now_us();
	pthread_mutex_lock(&c->wmu);
	*shards = c->dirty_shards || !c->watching;
	*layout = *watched = c->dirty_layout;
	c->dirty_shards = c->dirty_layout = 0;
	pthread_mutex_unlock(&c->wmu);
	if (now >= c->next_poll_us) {
		*shards = *layout = 1;
		c->next_poll_us = now + SAFETY_POLL_US;
	}
	for (int s = 0; s < c->r->layout.nshards; s++)
		*shards |= c->absent_since[s] != 0 || c->race[s].ep != NULL;
}

static void tick(struct coord_etcd *c)
{
	renew(c);
	race_run(c);
	publish(c);
	int shards, layout, watched;
	due(c, &shards, &layout, &watched);
	if (layout)
		layout_tick(c, watched ? "watch" : "safety poll");
	if (!shards)
		return;
	char k[512];
	key(c, k, sizeof(k), "shards/");
	struct repl_etcd_kvs kvs;
	struct st_error err;
	if (repl_etcd_range(c->e, k, 1, &kvs, &err))
		return; /* etcd unreachable: nothing changes until it answers */
	for (int s = 0; s < c->r->layout.nshards; s++)
		shard_tick(c, s, &kvs);
	repl_etcd_kvs_release(&kvs);
}

static void *coord_main(void *arg)
{
	struct coord_etcd *c = arg;
	while (!atomic_load(&c->stop)) {
		int64_t t0 = repl_now_us();
		tick(c);
		/* until the next tick, or sooner when the watch reports a change */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t wake = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + TICK_US -
			       (repl_now_us() - t0);
		ts = (struct timespec){wake / 1000000, (wake % 1000000) * 1000};
		pthread_mutex_lock(&c->wmu);
		while (!c->dirty_shards && !c->dirty_layout && !atomic_load(&c->stop))
			if (pthread_cond_timedwait(&c->wcond, &c->wmu, &ts) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&c->wmu);
	}
	return NULL;
}

/* ---- the watch (its own thread and connection): wakes the loop on every change ---- */

static int watch_stop(void *arg)
{
	struct coord_etcd *c = arg;
	return atomic_load(&c->stop);
}

static void watch_key(void *arg, const char *k)
{
	struct coord_etcd *c = arg;
	char lk[512], sk[512];
	key(c, lk, sizeof(lk), "layout");
	key(c, sk, sizeof(sk), "shards/");
	atomic_fetch_add(&c->r->m.etcd_watch_events, 1);
	if (!strcmp(k, lk))
		c->dirty_layout = 1;
	else if (!strncmp(k, sk, strlen(sk)))
		c->dirty_shards = 1;
}

static int watch_msg(void *arg, const json_t *msg)
{
	struct coord_etcd *c = arg;
	int created, canceled;
	struct st_error err;
	pthread_mutex_lock(&c->wmu);
	int rc = repl_etcd_decode_watch(msg, &created, &canceled, watch_key, c, &err);
	if (!rc && created) {
		/* whatever changed before the watch existed is read once now */
		c->watching = 1;
		c->dirty_shards = c->dirty_layout = 1;
	}
	if (!rc && canceled)
		rc = ST_ECLOSED;
	pthread_cond_broadcast(&c->wcond);
	pthread_mutex_unlock(&c->wmu);
	return rc;
}

static void *watch_main(void *arg)
{
	struct coord_etcd *c = arg;
	struct repl_etcd *e = NULL;
	struct st_error err = {0};
	int64_t backoff = 100000;
	int failures = 0;
	char prefix[512];
	if (repl_etcd_open(c->url, WATCH_IDLE_US, &e, &err)) {
		st_errlog("replication: etcd watch: %s (polling instead)", err.msg);
		return NULL;
	}
	snprintf(prefix, sizeof(prefix), "%s/", repl_etcd_prefix(e));
	while (!atomic_load(&c->stop)) {
		int rc = repl_etcd_watch(e, prefix, watch_msg, watch_stop, c, &err);
		pthread_mutex_lock(&c->wmu);
		int was = c->watching;
		c->watching = 0; /* the loop polls shards/ every tick until the watch is back */
		pthread_mutex_unlock(&c->wmu);
		if (!rc || atomic_load(&c->stop))
			break;
		if (was) {
			failures = 0;
			backoff = 100000;
		}
		if (!failures++)
			st_info("replication: etcd watch: %s (polling until it is back)", err.msg);
		for (int64_t end = repl_now_us() + backoff;
		     repl_now_us() < end && !atomic_load(&c->stop);)
			usleep(20000);
		backoff = backoff * 2 > 2000000 ? 2000000 : backoff * 2;
	}
	repl_etcd_close(e);
	return NULL;
}

static int etcd_start(struct repl_coord *rc, struct repl *r, struct st_error *err)
{
	struct coord_etcd *c = (struct coord_etcd *)rc;
	c->r = r;
	c->absent_since = calloc((size_t)r->layout.nshards, sizeof(*c->absent_since));
	c->race = calloc((size_t)r->layout.nshards, sizeof(*c->race));
	if (!c->absent_since || !c->race)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	int rc2 = open_handle(c, START_TIMEOUT_US, err);
	if (!rc2)
		rc2 = grant(c, err);
	if (rc2) {
		st_error_prefix(err, "etcd lease");
		return rc2;
	}
	/* nobody is primary before holding the leader key */
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < r->layout.nshards; s++)
		repl_role_lease_lost(r, &r->shards[s]);
	repl_assert_state(r);
	pthread_mutex_unlock(&r->mu);
	tick(c); /* follow the current leaders before the replica threads start */
	if ((rc2 = open_handle(c, loop_timeout_us(c), err)))
		return rc2;
	if (pthread_create(&c->thread, NULL, coord_main, c))
		return st_error_set(err, ST_ENOMEM, "cannot start the coordinator thread");
	c->thread_started = 1;
	if (pthread_create(&c->wthread, NULL, watch_main, c))
		return st_error_set(err, ST_ENOMEM, "cannot start the etcd watch thread");
	c->wthread_started = 1;
	return 0;
}

static void etcd_stop(struct repl_coord *rc)
{
	struct coord_etcd *c = (struct coord_etcd *)rc;
	atomic_store(&c->stop, 1);
	pthread_mutex_lock(&c->wmu);
	pthread_cond_broadcast(&c->wcond);
	pthread_mutex_unlock(&c->wmu);
	if (c->thread_started)
		pthread_join(c->thread, NULL);
	c->thread_started = 0;
	if (c->wthread_started)
		pthread_join(c->wthread, NULL);
	c->wthread_started = 0;
	if (c->r)
		atomic_store(&c->r->lease_until_us, 0);
	struct st_error err;
	if (c->lease && c->e && !repl_etcd_revoke(c->e, c->lease, &err))
		st_info("replication: lease revoked (a clean stop: the next election needs no wait)");
	c->lease = 0;
}

static void etcd_free(struct repl_coord *rc)
{
	struct coord_etcd *c = (struct coord_etcd *)rc;
	repl_etcd_close(c->e);
	free(c->report);
	free(c->absent_since);
	for (int s = 0; c->race && s < c->r->layout.nshards; s++)
		json_decref(c->race[s].ep);
	free(c->race);
	pthread_mutex_destroy(&c->wmu);
	pthread_cond_destroy(&c->wcond);
	free(c);
}

static const struct repl_coord_ops etcd_ops = {
	.name = "etcd",
	.load_layout = etcd_load,
	.start = etcd_start,
	.stop = etcd_stop,
	.free = etcd_free,
	.leased = 1,
};

int repl_coord_etcd_open(const char *url, const struct repl_options *o, struct repl_coord **out,
			 struct st_error *err)
{
	struct coord_etcd *c = calloc(1, sizeof(*c));
	if (!c)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	c->c.ops = &etcd_ops;
	pthread_mutex_init(&c->wmu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wcond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(c->url, sizeof(c->url), "%s", url);
	c->o = *o;
	struct repl_etcd *probe;
	int rc = repl_etcd_open(url, 1000000, &probe, err); /* checks the URL's syntax */
	if (rc) {
		free(c);
		return rc;
	}
	repl_etcd_close(probe);
	*out = &c->c;
	return 0;
}
