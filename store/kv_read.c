/* Reads: get, multi-get and history, built on the version scanner. The schema is resolved
 * once per call under the registry lock; the scan itself runs without it. */
#include "common/st_grow.h"
#include "store/kv_scan.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct kv_read_opts kv_read_latest = {ST_TS_MAX, ST_TS_MAX, 0};

const char *kv_status_name(enum kv_status s)
{
	switch (s) {
	case KV_ABSENT:
		return "absent";
	case KV_PRESENT:
		return "present";
	case KV_STALE:
		return "stale";
	case KV_BEFORE_HORIZON:
		return "before_horizon";
	}
	return "unknown";
}

void kv_result_release(struct kv_result *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++) {
		kv_value_release(&r[i].value);
		r[i].found = 0;
		r[i].status = KV_ABSENT;
	}
}

/* What a read needs from the schema, resolved once under the registry lock. Arrays up to
 * PLAN_INLINE entries live inside the plan. */
#define PLAN_INLINE 32

struct read_plan {
	uint32_t table_id;
	struct kv_rules rules;
	size_t nf, nall;
	uint16_t *fids;    /* requested features' ids */
	uint32_t *idx;     /* requested features' positions in the table */
	int64_t *ttls;     /* requested features' freshness limits */
	uint16_t *all;     /* every feature's id, in table order (row cache fills) */
	uint16_t fids_in[PLAN_INLINE], all_in[PLAN_INLINE];
	uint32_t idx_in[PLAN_INLINE];
	int64_t ttls_in[PLAN_INLINE];
};

static void plan_release(struct read_plan *p)
{
	if (p->fids != p->fids_in)
		free(p->fids);
	if (p->idx != p->idx_in)
		free(p->idx);
	if (p->ttls != p->ttls_in)
		free(p->ttls);
	if (p->all != p->all_in)
		free(p->all);
}

int kv_check_horizon(const struct kv_table *t, int64_t horizon, const char *at_name, int64_t at,
		     int64_t known_at, struct st_error *err)
{
	if (horizon == ST_TS_MIN)
		return 0;
	const char *what = at < horizon ? at_name : known_at < horizon ? "known-at" : NULL;
	if (!what)
		return 0;
	char a[ST_TS_BUFLEN], h[ST_TS_BUFLEN], r[32];
	return st_error_set(err, ST_ERANGE,
			    "%s %s is before table '%s' retention horizon %s (retention %s): "
			    "history older than that is not kept",
			    what, st_ts_format(at < horizon ? at : known_at, a), t->name,
			    st_ts_format(horizon, h), st_dur_format(t->retention_us, r));
}

static int plan_alloc(struct read_plan *p, size_t nfeatures)
{
	if (nfeatures > PLAN_INLINE && (!(p->fids = malloc(nfeatures * sizeof(*p->fids))) ||
					!(p->idx = malloc(nfeatures * sizeof(*p->idx))) ||
					!(p->ttls = malloc(nfeatures * sizeof(*p->ttls)))))
		return ST_ENOMEM;
	if (p->nall > PLAN_INLINE && !(p->all = malloc(p->nall * sizeof(*p->all))))
		return ST_ENOMEM;
	return 0;
}

/* A feature by name, trying first the position after the previous one: serving clients ask
 * for a table's features in table order, so a request of n features costs n string compares
 * instead of about n*n/2 (the compares were 5-6% of a cached get). */
static const struct kv_feature_def *feature_near(const struct kv_table *t, const char *name,
						 uint32_t hint)
{
	if (hint < t->nfeatures && !strcmp(t->features[hint].name, name))
		return &t->features[hint];
	return kv_table_feature(t, name);
}

/* at: the oldest time the read looks at (named at_name in a before-the-horizon error). */
static int resolve(struct kv_db *db, const char *table, const char *const *features,
		   size_t nfeatures, const char *at_name, int64_t at, int64_t known_at,
		   struct read_plan *p, struct st_error *err)
{
	int rc = 0;
	memset(p, 0, offsetof(struct read_plan, fids_in));
	p->fids = p->fids_in;
	p->idx = p->idx_in;
	p->ttls = p->ttls_in;
	p->all = p->all_in;
	pthread_rwlock_rdlock(&db->reg_lock);
	const struct kv_table *t = kv_reg_find_err(db, table, err);
	if (!t) {
		rc = ST_ENOTFOUND;
		goto out;
	}
	p->nf = nfeatures;
	p->nall = t->nfeatures;
	if (plan_alloc(p, nfeatures)) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nfeatures; i++) {
		const struct kv_feature_def *f =
			feature_near(t, features[i], i ? p->idx[i - 1] + 1 : 0);
		if (!f) {
			rc = st_error_set(err, ST_ENOTFOUND, "table '%s' has no feature '%s'", table,
					  features[i]);
			goto out;
		}
		p->fids[i] = f->id;
		p->idx[i] = (uint32_t)(f - t->features);
		p->ttls[i] = kv_feature_ttl(t, f);
	}
	for (size_t i = 0; i < p->nall; i++)
		p->all[i] = t->features[i].id;
	p->table_id = t->id;
	p->rules.max_versions = t->max_versions;
	p->rules.now = kv_now(db);
	p->rules.known_at = known_at;
	p->rules.horizon = kv_table_horizon(t, p->rules.now);
	rc = kv_check_horizon(t, p->rules.horizon, at_name, at, known_at, err);
out:
	pthread_rwlock_unlock(&db->reg_lock);
	return rc;
}

static int check_read_args(const char *entity, size_t elen, size_t nfeatures,
			   struct st_error *err)
{
	if (elen == 0 || elen > KV_ENTITY_MAX)
		return st_error_set(err, ST_EINVAL, "entity key must be 1..%d bytes", KV_ENTITY_MAX);
	if (nfeatures == 0)
		return st_error_set(err, ST_EINVAL, "no features requested");
	return 0;
}

/* Reads features of one entity with an existing iterator; ttls NULL = no freshness limit
 * (row cache fills, whose freshness is applied at every hit). */
static int read_entity(struct kv_scan *sc, int shard, uint32_t table_id, const char *entity,
		       size_t elen, const uint16_t *fids, const int64_t *ttls, size_t nf,
		       int64_t as_of, struct kv_result *out, struct st_error *err)
{
	for (size_t i = 0; i < nf; i++) {
		kv_scan_seek(sc, table_id, entity, elen, fids[i], ttls ? ttls[i] : 0, as_of);
		int rc = kv_scan_asof(sc, as_of, &out[i]);
		if (rc) {
			kv_result_release(out, i);
			return kv_scan_error(err, sc, rc, shard, "read", entity, elen);
		}
	}
	return 0;
}

int kv_get(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	   const char *const *features, size_t nfeatures, const struct kv_read_opts *o,
	   struct kv_result *out, struct st_error *err)
{
	return kv_multiget(db, table, &entity, &entity_len, 1, features, nfeatures, o, out, err);
}

/* Reads rows [from, to) of the request from RocksDB, one iterator per shard. */
static int read_store(struct kv_db *db, const struct read_plan *p, const char *const *entities,
		      const size_t *lens, const size_t *which, size_t nwhich, int64_t as_of,
		      const uint16_t *fids, const int64_t *ttls, size_t nf, struct kv_result *out,
		      struct st_error *err)
{
	rocksdb_iterator_t *its_small[8] = {0}, **its = its_small;
	if (db->nshards > 8 && !(its = calloc((size_t)db->nshards, sizeof(*its))))
		return st_error_set(err, ST_ENOMEM, "out of memory");
	struct kv_scan sc;
	kv_scan_init(&sc, NULL, &p->rules);
	int rc = 0;
	for (size_t k = 0; k < nwhich && !rc; k++) {
		size_t e = which ? which[k] : k;
		int s = kv_shard_of(db, entities[e], lens[e]);
		if (!its[s])
			its[s] = rocksdb_create_iterator(kv_shard_pin(db, s), db->ro);
		sc.it = its[s];
		sc.err = 0;
		sc.why[0] = 0;
		rc = read_entity(&sc, s, p->table_id, entities[e], lens[e], fids, ttls, nf, as_of,
				 out + k * nf, err);
		if (rc)
			kv_result_release(out, k * nf);
	}
	kv_scan_release(&sc);
	for (int s = 0; s < db->nshards; s++)
		if (its[s]) {
			rocksdb_iter_destroy(its[s]);
			kv_shard_unpin(db, s);
		}
	if (its != its_small)
		free(its);
	return rc;
}

/* One requested feature's answer from a freshly read row (raw latest version): the same
 * freshness a cache hit applies. */
static int answer_from_row(const struct kv_result *raw, int64_t ttl_us, const struct kv_rules *ru,
			   struct kv_result *r, struct st_error *err)
{
	memset(r, 0, sizeof(*r));
	if (!raw->found ||
	    kv_result_stamp(r, ttl_us, ru->horizon, ru->now, raw->ts, raw->ingest_us) != KV_PRESENT)
		return 0;
	if (kv_value_copy(&raw->value, &r->value))
		return st_error_set(err, ST_ENOMEM, "out of memory");
	r->found = 1;
	return 0;
}

/* Latest reads through the row cache: hits are answered from it; misses read every feature
 * of the entity from RocksDB (iterators created only after all tickets were taken, so that a
 * write racing with the read makes the insert stale), fill the cache, and answer from the
 * row. With KV_READ_CACHED_ONLY a miss fails the call with ST_EBUSY instead. */
static int read_cached(struct kv_db *db, const struct read_plan *p, const char *const *entities,
		       const size_t *lens, size_t ne, unsigned flags, struct kv_result *out,
		       struct st_error *err)
{
	size_t nf = p->nf, nmiss = 0;
	/* a get of a few entities allocates nothing here */
	size_t miss_in[16];
	struct kv_rc_ticket tk_in[16];
	size_t *miss = ne <= 16 ? miss_in : malloc(ne * sizeof(*miss));
	struct kv_rc_ticket *tk = ne <= 16 ? tk_in : malloc(ne * sizeof(*tk));
	struct kv_result *rows = NULL;
	int rc = 0;
	if (!miss || !tk) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t e0 = 0; ne > 1 && e0 < ne; e0 += 64) { /* a multi-get: all lookups at once */
		uintptr_t where[64];
		size_t k = ne - e0 < 64 ? ne - e0 : 64;
		for (size_t e = 0; e < k; e++)
			where[e] = kv_rcache_locate(db->rcache, p->table_id, entities[e0 + e],
						    lens[e0 + e]);
		for (size_t e = 0; e < k; e++)
			kv_rcache_prefetch(where[e]);
	}
	for (size_t e = 0; e < ne; e++)
		if (!kv_rcache_lookup(db->rcache, p->table_id, entities[e], lens[e], p->idx, p->ttls,
				      nf, p->rules.horizon, p->rules.now, out + e * nf, &tk[nmiss]))
			miss[nmiss++] = e;
	if (!nmiss)
		goto out;
	if (flags & KV_READ_CACHED_ONLY) {
		rc = st_error_set(err, ST_EBUSY, "not in the row cache");
		goto out;
	}
	rows = calloc(nmiss * p->nall, sizeof(*rows));
	if (!rows) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = read_store(db, p, entities, lens, miss, nmiss, ST_TS_MAX, p->all, NULL, p->nall,
			     rows, err)))
		goto out;
	for (size_t k = 0; k < nmiss && !rc; k++) {
		size_t e = miss[k];
		struct kv_result *row = rows + k * p->nall;
		kv_rcache_insert(db->rcache, &tk[k], p->table_id, entities[e], lens[e], row, p->nall);
		for (size_t i = 0; i < nf && !rc; i++)
			rc = answer_from_row(&row[p->idx[i]], p->ttls[i], &p->rules, &out[e * nf + i],
					     err);
	}
	kv_result_release(rows, nmiss * p->nall);
out:
	if (rc)
		kv_result_release(out, ne * nf);
	free(rows);
	if (miss != miss_in)
		free(miss);
	if (tk != tk_in)
		free(tk);
	return rc;
}

void kv_prefetch_latest(struct kv_db *db, const char *const *tables, const char *const *entities,
			const size_t *entity_lens, size_t n)
{
	if (!db->rcache || !n)
		return;
	const char *last = NULL;
	const struct kv_table *t = NULL;
	uintptr_t where[64];
	size_t k = 0;
	pthread_rwlock_rdlock(&db->reg_lock);
	for (size_t i = 0; i < n && k < 64; i++) {
		if (!last || strcmp(last, tables[i]))
			t = kv_reg_find(db, tables[i]);
		last = tables[i];
		if (t && entity_lens[i] && entity_lens[i] <= KV_ENTITY_MAX)
			where[k++] = kv_rcache_locate(db->rcache, t->id, entities[i], entity_lens[i]);
	}
	pthread_rwlock_unlock(&db->reg_lock);
	for (size_t i = 0; i < k; i++)
		kv_rcache_prefetch(where[i]);
}

int kv_multiget(struct kv_db *db, const char *table, const char *const *entities,
		const size_t *entity_lens, size_t nentities, const char *const *features,
		size_t nfeatures, const struct kv_read_opts *o, struct kv_result *out,
		struct st_error *err)
{
	struct read_plan p;
	int rc = 0;
	if (!o)
		o = &KV_READ_LATEST;
	memset(out, 0, nentities * nfeatures * sizeof(*out));
	for (size_t e = 0; e < nentities; e++) {
		if ((rc = check_read_args(entities[e], entity_lens[e], nfeatures, err)))
			return rc;
		/* a node without a usable copy of the shard redirects (row cache hits too) */
		if (db->hooks.check &&
		    (rc = kv_repl_check(db, kv_shard_of(db, entities[e], entity_lens[e]),
					(o->flags & KV_READ_PRIMARY) ? KV_ACCESS_PRIMARY_READ
								     : KV_ACCESS_READ,
					err)))
			return rc;
	}
	if ((rc = resolve(db, table, features, nfeatures, "as-of", o->as_of, o->known_at, &p,
			   err)))
		goto out;
	int latest = o->as_of == ST_TS_MAX && o->known_at == ST_TS_MAX;
	if (db->rcache && latest)
		rc = read_cached(db, &p, entities, entity_lens, nentities, o->flags, out, err);
	else if (o->flags & KV_READ_CACHED_ONLY)
		rc = st_error_set(err, ST_EBUSY, "only latest reads are cached");
	else
		rc = read_store(db, &p, entities, entity_lens, NULL, nentities, o->as_of, p.fids,
				p.ttls, nfeatures, out, err);
out:
	plan_release(&p);
	return rc;
}

struct hist_acc {
	struct kv_version *v;
	size_t n, cap, limit;
};

static int hist_add(void *arg, const struct kv_scan *sc)
{
	struct hist_acc *a = arg;
	if (st_grow((void **)&a->v, &a->cap, a->n + 1, sizeof(*a->v), 16))
		return ST_ENOMEM;
	int rc = kv_scan_version(sc, &a->v[a->n]);
	if (rc)
		return rc;
	a->n++;
	return a->limit && a->n >= a->limit ? 1 : 0;
}

int kv_history(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	       const char *feature, int64_t from, int64_t to, size_t limit, int64_t known_at,
	       struct kv_version **out, size_t *n, struct st_error *err)
{
	struct read_plan p;
	*out = NULL;
	*n = 0;
	int rc = check_read_args(entity, entity_len, 1, err);
	/* A history reaching below the horizon (an explicit `from`, or `to`) would silently miss
	 * what compaction removed: refused. Without `from` it lists what is kept. */
	int64_t at = from > to ? ST_TS_MAX : from != ST_TS_MIN ? from : to;
	if (rc || (rc = resolve(db, table, &feature, 1,
				from != ST_TS_MIN ? "history from" : "history to", at, known_at, &p,
				err)))
		return rc;
	uint32_t tid = p.table_id;
	uint16_t fid = p.fids[0];
	int64_t ttl = p.ttls[0];
	struct kv_rules rules = p.rules;
	plan_release(&p);
	if (from > to)
		return 0;
	int s = kv_shard_of(db, entity, entity_len);
	if ((rc = kv_repl_check(db, s, KV_ACCESS_READ, err)))
		return rc;
	rocksdb_iterator_t *it = rocksdb_create_iterator(kv_shard_pin(db, s), db->ro);
	struct kv_scan sc;
	kv_scan_init(&sc, it, &rules);
	kv_scan_seek(&sc, tid, entity, entity_len, fid, ttl, kv_scan_history_start(&sc, to));
	struct hist_acc a = {.limit = limit};
	rc = kv_scan_history(&sc, from, to, hist_add, &a);
	if (rc == 1)
		rc = 0;
	kv_scan_release(&sc);
	rocksdb_iter_destroy(it);
	kv_shard_unpin(db, s);
	if (rc) {
		kv_history_free(a.v, a.n);
		return kv_scan_error(err, &sc, rc, s, "history", entity, entity_len);
	}
	*out = a.v;
	*n = a.n;
	return 0;
}

void kv_history_free(struct kv_version *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		kv_value_release(&v[i].r.value);
	free(v);
}

struct tscan_ctx {
	kv_version_cb cb;
	void *arg;
	const char *ent;
	size_t elen;
	const struct kv_feature_def *f;
	int cb_rc; /* the callback's own non-zero return, passed through unchanged */
};

static int tscan_one(void *arg, const struct kv_scan *sc)
{
	struct tscan_ctx *c = arg;
	struct kv_version v;
	int rc = kv_scan_version(sc, &v);
	if (rc)
		return rc;
	rc = c->cb(c->arg, c->ent, c->elen, c->f, &v);
	kv_value_release(&v.r.value);
	if (rc)
		c->cb_rc = rc;
	return rc;
}

/* Walks one shard's part of the table: the version scanner on one (entity, feature) at a
 * time over a total-order iterator, then on to the next key. */
static int tscan_shard(struct kv_db *db, const struct kv_table *t, const struct kv_rules *rules,
		       int s, kv_version_cb cb, void *arg, struct st_error *err)
{
	char lo[4], hi[4];
	kv_key_table_prefix(lo, t->id);
	kv_key_table_prefix(hi, t->id + 1);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_total_order_seek(ro, 1);
	rocksdb_readoptions_set_iterate_upper_bound(ro, hi, 4);
	rocksdb_iterator_t *it = rocksdb_create_iterator(kv_shard_pin(db, s), ro);
	struct kv_scan sc;
	kv_scan_init(&sc, it, rules);
	sc.total_order = 1;
	struct tscan_ctx c = {.cb = cb, .arg = arg};
	char ent[KV_ENTITY_MAX];
	int rc = 0;
	rocksdb_iter_seek(it, lo, 4);
	while (!rc && rocksdb_iter_valid(it)) {
		size_t kl;
		const char *k = rocksdb_iter_key(it, &kl);
		struct kv_key key;
		if (kv_key_decode(k, kl, &key)) {
			rc = st_error_set(err, ST_ECORRUPT, "shard %d: malformed key", s);
			break;
		}
		const struct kv_feature_def *f = NULL;
		for (uint32_t i = 0; i < t->nfeatures; i++)
			if (t->features[i].id == key.feature_id)
				f = &t->features[i];
		memcpy(ent, key.entity, key.entity_len);
		c.ent = ent;
		c.elen = key.entity_len;
		c.f = f;
		/* positions on this feature's newest version (the current key) */
		kv_scan_seek(&sc, t->id, ent, c.elen, key.feature_id, f ? kv_feature_ttl(t, f) : 0,
			     ST_TS_MAX);
		if (f)
			rc = kv_scan_history(&sc, ST_TS_MIN, ST_TS_MAX, tscan_one, &c);
		if (!rc)
			rc = sc.err;
		if (rc) {
			if (rc != c.cb_rc)
				rc = kv_scan_error(err, &sc, rc, s, "table scan", ent, c.elen);
			break;
		}
		/* skip what retention hides, up to the next feature */
		char next[KV_KEY_MAX];
		size_t pl = kv_key_feature_prefix(next, t->id, ent, c.elen, key.feature_id);
		while (rocksdb_iter_valid(it)) {
			size_t nl;
			const char *nk = rocksdb_iter_key(it, &nl);
			if (nl < pl || memcmp(nk, next, pl))
				break;
			rocksdb_iter_next(it);
		}
	}
	if (!rc) { /* the walk ended: at the table's end, or on a failed read */
		char what[64];
		snprintf(what, sizeof(what), "table scan: storage read failed in shard %d", s);
		rc = kv_iter_check(it, what, err);
	}
	kv_scan_release(&sc);
	rocksdb_iter_destroy(it);
	kv_shard_unpin(db, s);
	rocksdb_readoptions_destroy(ro);
	return rc;
}

/* Scans shards [s0, s1) of the table. */
static int tscan(struct kv_db *db, const char *table, int s0, int s1, int64_t known_at,
		 kv_version_cb cb, void *arg, struct st_error *err)
{
	struct kv_table *t;
	int rc = kv_table_get(db, table, &t, err);
	if (rc)
		return rc;
	struct kv_rules rules = {t->max_versions, kv_now(db), known_at, 0};
	rules.horizon = kv_table_horizon(t, rules.now);
	rc = kv_check_horizon(t, rules.horizon, "as-of", ST_TS_MAX, known_at, err);
	for (int s = s0; s < s1 && !rc; s++)
		rc = tscan_shard(db, t, &rules, s, cb, arg, err);
	kv_table_free(t);
	return rc;
}

int kv_table_scan(struct kv_db *db, const char *table, int64_t known_at, kv_version_cb cb,
		  void *arg, struct st_error *err)
{
	return tscan(db, table, 0, db->nshards, known_at, cb, arg, err);
}

int kv_table_scan_shard(struct kv_db *db, const char *table, int shard, int64_t known_at,
			kv_version_cb cb, void *arg, struct st_error *err)
{
	if (shard < 0 || shard >= db->nshards)
		return st_error_set(err, ST_EINVAL, "no shard %d (there are %d)", shard,
				    db->nshards);
	return tscan(db, table, shard, shard + 1, known_at, cb, arg, err);
}
