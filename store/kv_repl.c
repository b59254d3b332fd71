/* Replication hooks of a shard: its latest sequence, the write batches since a sequence
 * (from the WAL, kept for wal_ttl_seconds), applying a batch, and checkpoints. */
#include "store/kv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int check_shard(const struct kv_db *db, int shard, struct st_error *err)
{
	if (shard < 0 || shard >= db->nshards)
		return st_error_set(err, ST_EINVAL, "no shard %d (there are %d)", shard,
				    db->nshards);
	return 0;
}

uint64_t kv_shard_latest_seq(struct kv_db *db, int shard)
{
	ST_ASSERT(shard >= 0 && shard < db->nshards);
	return rocksdb_get_latest_sequence_number(db->shards[shard].db);
}

int kv_shard_updates_since(struct kv_db *db, int shard, uint64_t seq, kv_batch_cb cb, void *arg,
			   struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	if (seq > kv_shard_latest_seq(db, shard))
		return 0; /* nothing newer yet */
	char *rerr = NULL;
	rocksdb_wal_iterator_t *wi = rocksdb_get_updates_since(db->shards[shard].db, seq, NULL, &rerr);
	if (rerr) {
		/* The WAL no longer reaches back that far. */
		st_error_set(err, ST_ENOTFOUND, "shard %d: WAL does not reach sequence %llu: %s",
			     shard, (unsigned long long)seq, rerr);
		free(rerr);
		return ST_ENOTFOUND;
	}
	int first = 1;
	for (; rocksdb_wal_iter_valid(wi); rocksdb_wal_iter_next(wi)) {
		uint64_t bseq;
		rocksdb_writebatch_t *wb = rocksdb_wal_iter_get_batch(wi, &bseq);
		size_t len;
		const char *data = rocksdb_writebatch_data(wb, &len);
		uint32_t count = (uint32_t)rocksdb_writebatch_count(wb);
		/* RocksDB silently starts later when the WAL files were already deleted: the batch
		 * that contains seq must be the first one returned. */
		if (first && (bseq > seq || bseq + (count ? count : 1) <= seq)) {
			rocksdb_writebatch_destroy(wb);
			rc = st_error_set(err, ST_ENOTFOUND,
					  "shard %d: WAL starts at %llu, after requested %llu", shard,
					  (unsigned long long)bseq, (unsigned long long)seq);
			break;
		}
		first = 0;
		rc = cb(arg, bseq, data, len);
		rocksdb_writebatch_destroy(wb);
		if (rc)
			break;
	}
	if (!rc) {
		rocksdb_wal_iter_status(wi, &rerr);
		if (rerr)
			rc = kv_rocks_err(err, rerr, "WAL iterator");
	}
	rocksdb_wal_iter_destroy(wi);
	return rc;
}

int kv_shard_apply(struct kv_db *db, int shard, const void *data, size_t len,
		   struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	if (len < 12)
		return st_error_set(err, ST_EPROTO, "write batch of %zu bytes is too short", len);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create_from(data, len);
	if (!wb)
		return st_error_set(err, ST_EPROTO, "malformed write batch");
	rc = kv_shard_write(db, shard, wb, err);
	rocksdb_writebatch_destroy(wb);
	kv_rcache_bump(db->rcache); /* a raw batch: which entities it touched is not parsed */
	return rc;
}

static int checkpoint_one(rocksdb_t *rdb, const char *path, struct st_error *err)
{
	char *rerr = NULL;
	rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(rdb, &rerr);
	if (rerr)
		return kv_rocks_err(err, rerr, "checkpoint");
	rocksdb_checkpoint_create(cp, path, 0, &rerr);
	rocksdb_checkpoint_object_destroy(cp);
	if (rerr)
		return kv_rocks_err(err, rerr, path);
	return 0;
}

int kv_checkpoint(struct kv_db *db, const char *dir, struct st_error *err)
{
	if (mkdir(dir, 0755))
		return st_error_set(err, ST_EIO, "checkpoint dir %s: %m", dir);
	char path[4200];
	snprintf(path, sizeof(path), "%s/meta", dir);
	int rc = checkpoint_one(db->meta, path, err);
	for (int s = 0; s < db->nshards && !rc; s++) {
		snprintf(path, sizeof(path), "%s/shard-%03d", dir, s);
		rc = checkpoint_one(db->shards[s].db, path, err);
	}
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (!rc && mkdir(path, 0755))
		rc = st_error_set(err, ST_EIO, "%s: %m", path);
	return rc;
}
