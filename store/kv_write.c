/* Writes: put cells and delete (tombstone) features. Every cell is validated against the
 * schema before anything is written; cells are grouped into one RocksDB batch per shard and
 * stamped with one ingest time. */
#include "store/kv_int.h"

#include <stdlib.h>
#include <string.h>

/* Adds one encoded cell to batch. Value NULL encodes a tombstone. */
static int batch_cell(rocksdb_writebatch_t *wb, uint32_t table_id, const char *entity,
		      size_t elen, uint16_t fid, int64_t ts, int64_t ingest,
		      const struct kv_value *v)
{
	char key[KV_KEY_MAX], small[64];
	size_t kl = kv_key_encode(key, table_id, entity, elen, fid, ts, ingest);
	static const struct kv_value none = {.type = KV_NONE};
	if (!v)
		v = &none;
	size_t vl = kv_value_encoded_len(v);
	char *val = vl <= sizeof(small) ? small : malloc(vl);
	if (!val)
		return ST_ENOMEM;
	kv_value_encode(v, val);
	rocksdb_writebatch_put(wb, key, kl, val, vl);
	if (val != small)
		free(val);
	return 0;
}

static int check_entity(const char *entity, size_t elen, struct st_error *err)
{
	if (elen == 0)
		return st_error_set(err, ST_EINVAL, "empty entity key");
	if (elen > KV_ENTITY_MAX)
		return st_error_set(err, ST_ELIMIT, "entity key of %zu bytes exceeds %d", elen,
				    KV_ENTITY_MAX);
	return 0;
}

/* The replication check of every shard the cells touch, before anything else (a node that
 * does not own a shard redirects even before it knows the table). */
static int check_shards(struct kv_db *db, const struct kv_cell *cells, size_t n,
			struct st_error *err)
{
	if (!db->hooks.check)
		return 0;
	uint64_t seen[4] = {0}; /* shards already checked (the first 256) */
	for (size_t i = 0; i < n; i++) {
		if (!cells[i].entity_len)
			continue;
		int s = kv_shard_of(db, cells[i].entity, cells[i].entity_len);
		if (s < 256 && (seen[s / 64] >> (s % 64) & 1))
			continue;
		int rc = kv_repl_check(db, s, KV_ACCESS_WRITE, err);
		if (rc)
			return rc;
		if (s < 256)
			seen[s / 64] |= 1ull << (s % 64);
	}
	return 0;
}

/* Writes the non-empty batches; frees all of them. */
static int write_batches(struct kv_db *db, rocksdb_writebatch_t **wbs, struct st_error *err)
{
	int rc = 0;
	for (int s = 0; s < db->nshards; s++) {
		if (!wbs[s])
			continue;
		if (!rc && rocksdb_writebatch_count(wbs[s]) &&
		    !(rc = kv_shard_write(db, s, wbs[s], err)))
			rc = kv_repl_committed(db, s, wbs[s], err);
		rocksdb_writebatch_destroy(wbs[s]);
	}
	free(wbs);
	return rc;
}

static rocksdb_writebatch_t *batch_for(struct kv_db *db, rocksdb_writebatch_t **wbs,
				       const char *entity, size_t elen)
{
	int s = kv_shard_of(db, entity, elen);
	if (!wbs[s])
		wbs[s] = rocksdb_writebatch_create();
	return wbs[s];
}

int kv_put(struct kv_db *db, const char *table, const struct kv_cell *cells, size_t n,
	   struct st_error *err)
{
	int rc = check_shards(db, cells, n, err);
	if (rc)
		return rc;
	rocksdb_writebatch_t **wbs = calloc((size_t)db->nshards, sizeof(*wbs));
	if (!wbs)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	int64_t ingest = kv_next_ingest(db);
	uint32_t table_id;
	pthread_rwlock_rdlock(&db->reg_lock);
	const struct kv_table *t = kv_reg_find_err(db, table, err);
	if (!t) {
		rc = ST_ENOTFOUND;
		goto unlock;
	}
	for (size_t i = 0; i < n; i++) {
		const struct kv_cell *c = &cells[i];
		const struct kv_feature_def *f = kv_table_feature(t, c->feature);
		if (!f) {
			rc = st_error_set(err, ST_ENOTFOUND, "table '%s' has no feature '%s'", table,
					  c->feature);
			goto unlock;
		}
		if ((rc = check_entity(c->entity, c->entity_len, err)) ||
		    (rc = kv_value_check(&c->value, f, err)))
			goto unlock;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const struct kv_cell *c = &cells[i];
		const struct kv_feature_def *f = kv_table_feature(t, c->feature);
		rc = batch_cell(batch_for(db, wbs, c->entity, c->entity_len), t->id, c->entity,
				c->entity_len, f->id, c->ts, ingest, &c->value);
	}
	if (rc)
		st_error_set(err, rc, "out of memory");
unlock:
	table_id = t ? t->id : 0;
	pthread_rwlock_unlock(&db->reg_lock);
	if (rc) {
		for (int s = 0; s < db->nshards; s++)
			if (wbs[s])
				rocksdb_writebatch_destroy(wbs[s]);
		free(wbs);
		return rc;
	}
	rc = write_batches(db, wbs, err);
	/* after the write (even a failed one, which may have reached some shards) */
	for (size_t i = 0; i < n; i++)
		kv_rcache_invalidate(db->rcache, table_id, cells[i].entity, cells[i].entity_len);
	return rc;
}

int kv_delete(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	      const char *const *features, size_t nfeatures, int64_t ts, struct st_error *err)
{
	int rc = check_entity(entity, entity_len, err);
	int s = kv_shard_of(db, entity, entity_len);
	if (rc || (rc = kv_repl_check(db, s, KV_ACCESS_WRITE, err)))
		return rc;
	int64_t ingest = kv_next_ingest(db);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	uint32_t table_id;
	pthread_rwlock_rdlock(&db->reg_lock);
	const struct kv_table *t = kv_reg_find_err(db, table, err);
	if (!t) {
		rc = ST_ENOTFOUND;
		goto unlock;
	}
	if (nfeatures == 0) {
		for (uint32_t i = 0; i < t->nfeatures && !rc; i++)
			rc = batch_cell(wb, t->id, entity, entity_len, t->features[i].id, ts, ingest,
					NULL);
	} else {
		for (size_t i = 0; i < nfeatures && !rc; i++) {
			const struct kv_feature_def *f = kv_table_feature(t, features[i]);
			if (!f) {
				rc = st_error_set(err, ST_ENOTFOUND, "table '%s' has no feature '%s'",
						  table, features[i]);
				goto unlock;
			}
			rc = batch_cell(wb, t->id, entity, entity_len, f->id, ts, ingest, NULL);
		}
	}
	if (rc)
		st_error_set(err, rc, "out of memory");
unlock:
	table_id = t ? t->id : 0;
	pthread_rwlock_unlock(&db->reg_lock);
	if (!rc) {
		if (!(rc = kv_shard_write(db, s, wb, err)))
			rc = kv_repl_committed(db, s, wb, err);
		kv_rcache_invalidate(db->rcache, table_id, entity, entity_len);
	}
	rocksdb_writebatch_destroy(wb);
	return rc;
}
