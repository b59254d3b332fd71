/* Reads: get, multi-get and history, built on the version scanner. The schema is resolved
 * once per call under the registry lock; the scan itself runs without it. */
#include "store/kv_scan.h"

#include <stdlib.h>
#include <string.h>

const struct kv_read_opts kv_read_latest = {ST_TS_MAX, ST_TS_MAX};

void kv_result_release(struct kv_result *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++) {
		kv_value_release(&r[i].value);
		r[i].found = 0;
	}
}

/* Resolves table and feature names to ids and rules. fids has nfeatures slots. */
static int resolve(struct kv_db *db, const char *table, const char *const *features,
		   size_t nfeatures, int64_t known_at, uint32_t *table_id, uint16_t *fids,
		   struct kv_rules *rules, struct st_error *err)
{
	int rc = 0;
	pthread_rwlock_rdlock(&db->reg_lock);
	const struct kv_table *t = kv_reg_find_err(db, table, err);
	if (!t) {
		rc = ST_ENOTFOUND;
		goto out;
	}
	for (size_t i = 0; i < nfeatures; i++) {
		const struct kv_feature_def *f = kv_table_feature(t, features[i]);
		if (!f) {
			rc = st_error_set(err, ST_ENOTFOUND, "table '%s' has no feature '%s'", table,
					  features[i]);
			goto out;
		}
		fids[i] = f->id;
	}
	*table_id = t->id;
	rules->ttl_us = t->ttl_us;
	rules->max_versions = t->max_versions;
	rules->now = kv_now(db);
	rules->known_at = known_at;
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

/* Reads all features of one entity with an existing iterator. */
static int read_entity(struct kv_scan *sc, uint32_t table_id, const char *entity, size_t elen,
		       const uint16_t *fids, size_t nf, int64_t as_of, struct kv_result *out,
		       struct st_error *err)
{
	for (size_t i = 0; i < nf; i++) {
		kv_scan_seek(sc, table_id, entity, elen, fids[i], as_of);
		int rc = kv_scan_asof(sc, as_of, &out[i]);
		if (rc) {
			kv_result_release(out, i);
			return st_error_set(err, rc, "corrupt value for entity '%.*s'", (int)elen,
					    entity);
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

int kv_multiget(struct kv_db *db, const char *table, const char *const *entities,
		const size_t *entity_lens, size_t nentities, const char *const *features,
		size_t nfeatures, const struct kv_read_opts *o, struct kv_result *out,
		struct st_error *err)
{
	struct kv_rules rules;
	uint32_t tid;
	uint16_t fids_small[64], *fids = fids_small;
	int rc = 0;
	if (!o)
		o = &KV_READ_LATEST;
	memset(out, 0, nentities * nfeatures * sizeof(*out));
	for (size_t e = 0; e < nentities; e++)
		if ((rc = check_read_args(entities[e], entity_lens[e], nfeatures, err)))
			return rc;
	if (nfeatures > 64 && !(fids = malloc(nfeatures * sizeof(*fids))))
		return st_error_set(err, ST_ENOMEM, "out of memory");
	if ((rc = resolve(db, table, features, nfeatures, o->known_at, &tid, fids, &rules, err)))
		goto out;
	rocksdb_iterator_t *its_small[8] = {0}, **its = its_small;
	if (db->nshards > 8 && !(its = calloc((size_t)db->nshards, sizeof(*its)))) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	struct kv_scan sc;
	kv_scan_init(&sc, NULL, &rules);
	for (size_t e = 0; e < nentities && !rc; e++) {
		int s = kv_shard_of(db, entities[e], entity_lens[e]);
		if (!its[s])
			its[s] = rocksdb_create_iterator(db->shards[s].db, db->ro);
		sc.it = its[s];
		rc = read_entity(&sc, tid, entities[e], entity_lens[e], fids, nfeatures, o->as_of,
				 out + e * nfeatures, err);
		if (rc)
			kv_result_release(out, e * nfeatures);
	}
	kv_scan_release(&sc);
	for (int s = 0; s < db->nshards; s++)
		if (its[s])
			rocksdb_iter_destroy(its[s]);
	if (its != its_small)
		free(its);
out:
	if (fids != fids_small)
		free(fids);
	return rc;
}

int kv_history(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	       const char *feature, int64_t from, int64_t to, size_t limit, int64_t known_at,
	       struct kv_version **out, size_t *n, struct st_error *err)
{
	struct kv_rules rules;
	uint32_t tid;
	uint16_t fid;
	*out = NULL;
	*n = 0;
	int rc = check_read_args(entity, entity_len, 1, err);
	if (rc || (rc = resolve(db, table, &feature, 1, known_at, &tid, &fid, &rules, err)))
		return rc;
	if (from > to)
		return 0;
	int s = kv_shard_of(db, entity, entity_len);
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->shards[s].db, db->ro);
	struct kv_scan sc;
	kv_scan_init(&sc, it, &rules);
	kv_scan_seek(&sc, tid, entity, entity_len, fid, to);
	size_t cap = 0;
	struct kv_version *v = NULL;
	for (; kv_scan_alive(&sc) && sc.ts >= from; kv_scan_next(&sc)) {
		if (sc.ts > to || !sc.has)
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct kv_version *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				rc = st_error_set(err, ST_ENOMEM, "out of memory");
				break;
			}
			v = nv;
			cap = nc;
		}
		struct kv_version *cur = &v[*n];
		memset(cur, 0, sizeof(*cur));
		cur->tombstone = sc.tombstone;
		cur->r.ts = sc.ts;
		cur->r.ingest_us = sc.ingest;
		if (!sc.tombstone) {
			if (kv_value_decode(sc.val, sc.vlen, &cur->r.value)) {
				rc = st_error_set(err, ST_ECORRUPT, "corrupt value in history");
				break;
			}
			cur->r.found = 1;
		}
		(*n)++;
		if (limit && *n >= limit)
			break;
	}
	kv_scan_release(&sc);
	rocksdb_iter_destroy(it);
	if (rc) {
		kv_history_free(v, *n);
		*n = 0;
		return rc;
	}
	*out = v;
	return 0;
}

void kv_history_free(struct kv_version *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		kv_value_release(&v[i].r.value);
	free(v);
}
