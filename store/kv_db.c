/* Opening and closing a data directory: the meta db, the shards, the shared block cache, the
 * sync thread for KV_SYNC_BATCH, the entity-prefix extractor and the retention compaction
 * filter; plus the small helpers every other store file uses.
 *
 * Layout of DIR: meta/ (RocksDB: "config", "table/<name>", "next_table_id", "job/<id>"),
 * shard-000/ ... (RocksDB each), tmp/ (preload scratch files). */
#include "store/kv_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/st_fault.h"

void kv_options_init(struct kv_options *o)
{
	memset(o, 0, sizeof(*o));
	o->create_if_missing = 1;
	o->nshards = 4;
	o->sync = KV_SYNC_BATCH;
	o->block_cache_bytes = 256u << 20;
	o->wal_ttl_seconds = 3600;
	o->preload_mem_bytes = 256u << 20;
}

int kv_rocks_err(struct st_error *err, char *rerr, const char *what)
{
	st_error_set(err, ST_EIO, "%s: %s", what, rerr);
	free(rerr);
	return ST_EIO;
}

int kv_iter_check(rocksdb_iterator_t *it, const char *what, struct st_error *err)
{
	char *rerr = NULL;
	rocksdb_iter_get_error(it, &rerr);
	return rerr ? kv_rocks_err(err, rerr, what) : 0;
}

int64_t kv_now(const struct kv_db *db)
{
	return db->opts.clock ? db->opts.clock(db->opts.clock_arg) : st_now_us();
}

int64_t kv_next_ingest(struct kv_db *db)
{
	int64_t now = kv_now(db), last = atomic_load(&db->last_ingest), next;
	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&db->last_ingest, &last, next));
	return next;
}

int kv_nshards(const struct kv_db *db)
{
	return db->nshards;
}

int kv_shard_of(const struct kv_db *db, const char *entity, size_t entity_len)
{
	return st_shard_of_slot(st_slot_of(entity, entity_len), db->nshards);
}

int kv_meta_get(struct kv_db *db, const char *key, char **out, size_t *len,
		struct st_error *err)
{
	char *rerr = NULL;
	*out = NULL;
	char *v = rocksdb_get(db->meta, db->ro, key, strlen(key), len, &rerr);
	if (rerr)
		return kv_rocks_err(err, rerr, "meta read");
	if (!v)
		return st_error_set(err, ST_ENOTFOUND, "no meta key '%s'", key);
	/* RocksDB's copy is exactly len bytes, no terminator: callers parse numbers with
	 * strtoull, which would read on into the heap ("2" followed by a stray '5' read as 25) */
	*out = malloc(*len + 1);
	if (*out) {
		memcpy(*out, v, *len);
		(*out)[*len] = '\0';
	}
	rocksdb_free(v);
	return *out ? 0 : st_error_set(err, ST_ENOMEM, "out of memory");
}

int kv_meta_put(struct kv_db *db, const char *key, const char *val, size_t len,
		struct st_error *err)
{
	int rc = kv_check_health(db, err);
	if (rc)
		return rc;
	char *rerr = NULL;
	rocksdb_put(db->meta, db->wo_sync, key, strlen(key), val, len, &rerr);
	if (!rerr)
		return 0;
	kv_fail(db, ST_EIO, "meta write", rerr);
	return kv_rocks_err(err, rerr, "meta write");
}

int kv_meta_delete(struct kv_db *db, const char *key, struct st_error *err)
{
	int rc = kv_check_health(db, err);
	if (rc)
		return rc;
	char *rerr = NULL;
	rocksdb_delete(db->meta, db->wo_sync, key, strlen(key), &rerr);
	if (!rerr)
		return 0;
	kv_fail(db, ST_EIO, "meta write", rerr);
	return kv_rocks_err(err, rerr, "meta write");
}

/* ---- sticky storage error ----
 * After a failed write or WAL sync, RocksDB may hold writes that are not durable, and the
 * next sync may succeed and hide the loss: so the first failure is kept and every later
 * write fails with it until an operator restarts the process (SQLite's pager and RocksDB's
 * own background-error rule). Reads keep working. */

int kv_fail(struct kv_db *db, int code, const char *what, const char *reason)
{
	pthread_mutex_lock(&db->health_lock);
	if (!atomic_load(&db->failed)) {
		st_error_set(&db->health, code,
			     "storage is read-only after a failed %s: %s (restart stratad once the "
			     "disk is fixed; nothing acknowledged was lost)",
			     what, reason);
		atomic_store(&db->failed, 1);
		fprintf(stderr, "strata: %s\n", db->health.msg);
	}
	pthread_mutex_unlock(&db->health_lock);
	return code;
}

int kv_health(struct kv_db *db, struct st_error *out)
{
	if (!atomic_load(&db->failed))
		return 0;
	pthread_mutex_lock(&db->health_lock);
	int code = db->health.code;
	if (out)
		*out = db->health;
	pthread_mutex_unlock(&db->health_lock);
	return code;
}

int kv_check_health(struct kv_db *db, struct st_error *err)
{
	if (__builtin_expect(!atomic_load(&db->failed), 1))
		return 0;
	return kv_health(db, err);
}

int kv_shard_write(struct kv_db *db, int shard, rocksdb_writebatch_t *wb, struct st_error *err)
{
	int rc = kv_check_health(db, err);
	if (rc)
		return rc;
	char *rerr = NULL;
	if (ST_FAULT("write.batch")) {
		rerr = strdup("injected write failure (write.batch)");
	} else if (db->opts.sync == KV_SYNC_ALWAYS && ST_FAULT("wal.sync")) {
		/* the batch reaches the memtable and the WAL file, but its sync fails */
		rocksdb_writeoptions_t *nosync = rocksdb_writeoptions_create();
		rocksdb_write(kv_shard_pin(db, shard), nosync, wb, &rerr);
		kv_shard_unpin(db, shard);
		rocksdb_writeoptions_destroy(nosync);
		free(rerr);
		rerr = strdup("injected WAL sync failure (wal.sync)");
	} else {
		rocksdb_write(kv_shard_pin(db, shard), db->wo, wb, &rerr);
		atomic_fetch_add(&db->shards[shard].writes, 1);
		struct kv_ring *ring = atomic_load(&db->shards[shard].ring);
		if (ring && !rerr) { /* stamped with its sequence by the write */
			size_t len;
			const char *data = rocksdb_writebatch_data(wb, &len);
			kv_ring_publish(ring, data, len);
		}
		kv_shard_unpin(db, shard);
	}
	if (!rerr)
		return 0;
	kv_fail(db, ST_EIO, "write", rerr);
	char what[32];
	snprintf(what, sizeof(what), "write to shard %d", shard);
	return kv_rocks_err(err, rerr, what);
}

/* ---- entity prefix extractor: table_id | entity_len | entity ---- */

static char *prefix_transform(void *st, const char *key, size_t len, size_t *dst_len)
{
	*dst_len = 6 + kv_get_be16(key + 4);
	return (char *)key;
}

static unsigned char prefix_in_domain(void *st, const char *key, size_t len)
{
	return len >= 6 && len >= 6 + (size_t)kv_get_be16(key + 4);
}

static unsigned char prefix_in_range(void *st, const char *key, size_t len)
{
	return 0;
}

static const char *prefix_name(void *st)
{
	return "strata.entity_prefix.v1";
}

static void noop_destroy(void *st)
{
}

/* ---- retention compaction filter ----
 * Keys reach the filter in sorted order within one compaction, so the writes of one
 * (entity, feature) arrive newest event time first and, within one event time, newest write
 * first. With horizon H = now - retention (kv_table_horizon), a write may be dropped only if
 * no read at T >= H, known at S >= H, can see it (reads before H are refused):
 *   1. versions past max_versions (reads treat them as absent already);
 *   2. every write with event_ts > H is kept;
 *   3. at or below H, writes are kept until one was ingested at or before H (call the
 *      lowest ingest time seen there m): from then on every read at S >= H stops at or
 *      before it, so the rest of the prefix is dropped (the "tail");
 *   4. a group with event_ts + ttl < H is stale for every read at T >= H and everything
 *      older too: it and the rest of the prefix are dropped (reads report them as absent
 *      whether or not they are still on disk: kv_freshness);
 *   5. the write that starts the tail (3) is dropped too if it is a tombstone, but only in a
 *      full compaction: elsewhere older versions in files outside this compaction would
 *      reappear from under it.
 * A compaction that sees only some files sees a subset of the writes: m is then higher and
 * ranks lower than the truth, which keeps more, never less, and drops only a tail, so the
 * ranks of what reads can reach never change. Reads apply the same rules
 * (kv_scan_alive, kv_freshness, kv_check_horizon), so compaction never changes an answer. */

struct cfilter {
	struct kv_db *db;
	int64_t now;
	int full; /* a full compaction: every file of the shard is an input */
	char prefix[KV_KEY_MAX];
	size_t prefix_len;
	/* the rules of the current prefix, looked up once per prefix */
	int live, ours;
	uint32_t max_versions;
	int64_t horizon, ttl_us;
	/* walk state of the current prefix */
	int64_t last_ts;
	uint32_t distinct;
	int64_t min_ingest; /* lowest ingest time seen at or below the horizon */
	int tail;
};

/* Looks up the table's rules for a new prefix. */
static void cfilter_enter(struct cfilter *f, const struct kv_key *k)
{
	struct kv_db *db = f->db;
	f->live = f->ours = 0;
	f->horizon = ST_TS_MIN;
	f->ttl_us = 0;
	f->max_versions = 0;
	pthread_rwlock_rdlock(&db->reg_lock);
	if (k->table_id < db->ret_cap && db->ret[k->table_id].live) {
		const struct kv_table *t = db->ret[k->table_id].table;
		f->live = 1;
		f->max_versions = t->max_versions;
		f->horizon = kv_table_horizon(t, f->now);
		for (uint32_t i = 0; i < t->nfeatures; i++)
			if (t->features[i].id == k->feature_id)
				f->ttl_us = kv_feature_ttl(t, &t->features[i]);
	}
	f->ours = k->table_id < db->next_table_id;
	pthread_rwlock_unlock(&db->reg_lock);
	f->distinct = 0;
	f->min_ingest = ST_TS_MAX;
	f->tail = 0;
}

static int cfilter_drop(struct cfilter *f, const struct kv_key *k, const char *val, size_t vlen)
{
	if (!f->live)
		return f->ours; /* a dropped table's leftovers */
	if (f->distinct == 0 || k->ts != f->last_ts) {
		f->distinct++;
		f->last_ts = k->ts;
	}
	if (f->max_versions && f->distinct > f->max_versions)
		return 1;
	if (f->tail)
		return 1;
	if (f->horizon == ST_TS_MIN || k->ts > f->horizon)
		return 0;
	if (kv_freshness(f->ttl_us, f->horizon, f->horizon, k->ts) == KV_ABSENT) {
		f->tail = 1;
		return 1;
	}
	if (k->ingest < f->min_ingest)
		f->min_ingest = k->ingest;
	if (f->min_ingest > f->horizon)
		return 0;
	f->tail = 1;
	int tomb = vlen == 1 && (unsigned char)val[0] == KV_TOMBSTONE;
	return tomb && f->full;
}

static unsigned char cfilter_filter(void *st, int level, const char *key, size_t klen,
				    const char *val, size_t vlen, char **nv, size_t *nvlen,
				    unsigned char *changed)
{
	struct cfilter *f = st;
	struct kv_key k;
	if (kv_key_decode(key, klen, &k))
		return 0; /* not ours: keep */
	size_t pl = klen - 16;
	if (pl != f->prefix_len || memcmp(key, f->prefix, pl)) {
		memcpy(f->prefix, key, pl);
		f->prefix_len = pl;
		cfilter_enter(f, &k);
	}
	return (unsigned char)cfilter_drop(f, &k, val, vlen);
}

static const char *cfilter_name(void *st)
{
	return "strata.retention.v1";
}

static void cfilter_destroy(void *st)
{
	free(st);
}

static rocksdb_compactionfilter_t *cfilter_create(void *st, rocksdb_compactionfiltercontext_t *c)
{
	struct cfilter *f = calloc(1, sizeof(*f));
	ST_ASSERT(f);
	f->db = st;
	f->now = kv_now(f->db);
	f->full = rocksdb_compactionfiltercontext_is_full_compaction(c) != 0;
	return rocksdb_compactionfilter_create(f, cfilter_destroy, cfilter_filter, cfilter_name);
}

static const char *cff_name(void *st)
{
	return "strata.retention.factory.v1";
}

rocksdb_compactionfilterfactory_t *kv_cfilter_factory(struct kv_db *db)
{
	return rocksdb_compactionfilterfactory_create(db, noop_destroy, cfilter_create, cff_name);
}

/* ---- batch sync thread ---- */

static void *sync_main(void *arg)
{
	struct kv_db *db = arg;
	/* writes counted at the last sync of each shard; a write counted after our load is
	 * synced next time, and one counted before it is already in the WAL file we sync */
	uint64_t *synced = calloc((size_t)db->nshards, sizeof(*synced));
	pthread_mutex_lock(&db->sync_lock);
	while (!db->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 5 * 1000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&db->sync_cond, &db->sync_lock, &ts);
		pthread_mutex_unlock(&db->sync_lock);
		for (int s = 0; s < db->nshards; s++) {
			char *rerr = NULL;
			uint64_t w = atomic_load(&db->shards[s].writes);
			if (synced && w == synced[s])
				continue; /* nothing written since the last sync */
			if (synced)
				synced[s] = w;
			if (ST_FAULT("wal.sync"))
				rerr = strdup("injected WAL sync failure (wal.sync)");
			else {
				rocksdb_flush_wal(kv_shard_pin(db, s), 1, &rerr);
				kv_shard_unpin(db, s);
			}
			if (rerr) {
				char what[40];
				snprintf(what, sizeof(what), "WAL sync of shard %d", s);
				kv_fail(db, ST_EIO, what, rerr);
				free(rerr);
			}
		}
		pthread_mutex_lock(&db->sync_lock);
	}
	pthread_mutex_unlock(&db->sync_lock);
	free(synced);
	return NULL;
}

/* ---- open / close ---- */

static int mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

static rocksdb_options_t *base_options(struct kv_db *db)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_increase_parallelism(o, 2);
	rocksdb_options_set_max_background_jobs(o, 2);
	rocksdb_options_set_compression(o, rocksdb_lz4_compression);
	rocksdb_options_set_block_based_table_factory(o, db->bbto);
	rocksdb_options_set_WAL_ttl_seconds(o, (uint64_t)db->opts.wal_ttl_seconds);
	if (db->opts.write_buffer_bytes) {
		/* small levels too, so that compactions pick subsets of the files */
		rocksdb_options_set_write_buffer_size(o, db->opts.write_buffer_bytes);
		rocksdb_options_set_target_file_size_base(o, db->opts.write_buffer_bytes);
		rocksdb_options_set_max_bytes_for_level_base(o, 4 * db->opts.write_buffer_bytes);
	}
	return o;
}

static int open_rocks(const char *path, rocksdb_options_t *o, rocksdb_t **out,
		      struct st_error *err)
{
	char *rerr = NULL;
	*out = rocksdb_open(o, path, &rerr);
	if (rerr) {
		int busy = strstr(rerr, "LOCK") != NULL;
		if (busy)
			st_error_set(err, ST_EBUSY,
				     "%s is in use by another process (a running stratad? then use "
				     "--addr): %s", path, rerr);
		else
			st_error_set(err, ST_EIO, "open %s: %s", path, rerr);
		free(rerr);
		return busy ? ST_EBUSY : ST_EIO;
	}
	return 0;
}

/* Reads or writes DIR's config (shard count). The count is fixed at creation. */
static int load_config(struct kv_db *db, struct st_error *err)
{
	char *v;
	size_t len;
	int rc = kv_meta_get(db, "config", &v, &len, err);
	if (rc == ST_ENOTFOUND) {
		if (db->opts.nshards < 1 || db->opts.nshards > 256)
			return st_error_set(err, ST_EINVAL, "shard count must be 1..256");
		db->nshards = db->opts.nshards;
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "{\"format\":1,\"nshards\":%d}", db->nshards);
		return kv_meta_put(db, "config", buf, (size_t)n, err);
	}
	if (rc)
		return rc;
	json_error_t je;
	json_t *o = json_loadb(v, len, 0, &je);
	free(v);
	json_int_t n = 0;
	if (!o || json_unpack(o, "{s:I}", "nshards", &n) || n < 1 || n > 256) {
		json_decref(o);
		return st_error_set(err, ST_ECORRUPT, "%s/meta: bad config record", db->dir);
	}
	json_decref(o);
	db->nshards = (int)n;
	return 0;
}

int kv_open(const char *dir, const struct kv_options *opts, struct kv_db **out,
	    struct st_error *err)
{
	struct kv_options defaults;
	if (!opts) {
		kv_options_init(&defaults);
		opts = &defaults;
	}
	struct stat stbuf;
	if (stat(dir, &stbuf) && (!opts->create_if_missing || mkdir_p(dir)))
		return st_error_set(err, ST_EIO, "data dir %s: %s", dir, strerror(errno));
	struct kv_db *db = calloc(1, sizeof(*db));
	if (!db)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	db->dir = strdup(dir);
	db->opts = *opts;
	pthread_rwlock_init(&db->reg_lock, NULL);
	pthread_mutex_init(&db->meta_lock, NULL);
	pthread_mutex_init(&db->sync_lock, NULL);
	pthread_mutex_init(&db->health_lock, NULL);
	pthread_cond_init(&db->sync_cond, NULL);
	atomic_store(&db->last_ingest, 0);

	db->cache = rocksdb_cache_create_lru(opts->block_cache_bytes);
	db->bbto = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(db->bbto, db->cache);
	rocksdb_block_based_options_set_filter_policy(db->bbto, rocksdb_filterpolicy_create_bloom(10));
	rocksdb_block_based_options_set_whole_key_filtering(db->bbto, 0);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(db->bbto, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(db->bbto, 1);
	db->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(db->wo, opts->sync == KV_SYNC_ALWAYS);
	db->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(db->wo_sync, 1);
	db->ro = rocksdb_readoptions_create();
	db->ro_total = rocksdb_readoptions_create();
	rocksdb_readoptions_set_total_order_seek(db->ro_total, 1);

	char path[4200];
	int rc;
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (mkdir_p(path)) {
		rc = st_error_set(err, ST_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	db->meta_opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(db->meta_opts, 1);
	snprintf(path, sizeof(path), "%s/meta", dir);
	if ((rc = open_rocks(path, db->meta_opts, &db->meta, err)))
		goto fail;
	if ((rc = load_config(db, err)) || (rc = kv_reg_load(db, err)))
		goto fail;

	db->shards = calloc((size_t)db->nshards, sizeof(*db->shards));
	if (!db->shards) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto fail;
	}
	for (int s = 0; s < db->nshards; s++)
		pthread_rwlock_init(&db->shards[s].swap, NULL);
	for (int s = 0; s < db->nshards; s++) {
		struct kv_shard *sh = &db->shards[s];
		if ((rc = kv_shard_swap_recover(dir, s, err)))
			goto fail;
		sh->opts = base_options(db);
		rocksdb_options_set_prefix_extractor(
			sh->opts, rocksdb_slicetransform_create(NULL, noop_destroy, prefix_transform,
								prefix_in_domain, prefix_in_range,
								prefix_name));
		rocksdb_options_set_memtable_prefix_bloom_size_ratio(sh->opts, 0.05);
		sh->cff = kv_cfilter_factory(db);
		rocksdb_options_set_compaction_filter_factory(sh->opts, sh->cff);
		rocksdb_options_enable_statistics(sh->opts);
		snprintf(path, sizeof(path), "%s/shard-%03d", dir, s);
		if ((rc = open_rocks(path, sh->opts, &sh->db, err)) ||
		    (rc = kv_shard_install_finish(db, s, err)))
			goto fail;
	}
	if (opts->sync == KV_SYNC_BATCH) {
		if (pthread_create(&db->sync_thread, NULL, sync_main, db)) {
			rc = st_error_set(err, ST_ENOMEM, "cannot start sync thread");
			goto fail;
		}
		db->sync_thread_started = 1;
	}
	if (kv_rcache_create(opts->row_cache_bytes, &db->rcache)) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory for the row cache");
		goto fail;
	}
	if ((rc = kv_jobs_init(db, err)))
		goto fail;
	*out = db;
	return 0;
fail:
	kv_close(db);
	return rc;
}

void kv_close(struct kv_db *db)
{
	if (!db)
		return;
	kv_jobs_shutdown(db);
	if (db->sync_thread_started) {
		pthread_mutex_lock(&db->sync_lock);
		db->stopping = 1;
		pthread_cond_signal(&db->sync_cond);
		pthread_mutex_unlock(&db->sync_lock);
		pthread_join(db->sync_thread, NULL);
	}
	for (int s = 0; db->shards && s < db->nshards; s++) {
		struct kv_shard *sh = &db->shards[s];
		if (sh->db) {
			char *rerr = NULL;
			rocksdb_flush_wal(sh->db, 1, &rerr);
			free(rerr);
			rocksdb_close(sh->db);
		}
		if (sh->opts)
			rocksdb_options_destroy(sh->opts);
		pthread_rwlock_destroy(&sh->swap);
		kv_ring_free(atomic_load(&sh->ring));
	}
	free(db->shards);
	kv_rcache_free(db->rcache);
	if (db->meta)
		rocksdb_close(db->meta);
	if (db->meta_opts)
		rocksdb_options_destroy(db->meta_opts);
	kv_reg_free(db);
	free(db->reg_follower);
	rocksdb_writeoptions_destroy(db->wo);
	rocksdb_writeoptions_destroy(db->wo_sync);
	rocksdb_readoptions_destroy(db->ro);
	rocksdb_readoptions_destroy(db->ro_total);
	rocksdb_block_based_options_destroy(db->bbto);
	rocksdb_cache_destroy(db->cache);
	pthread_rwlock_destroy(&db->reg_lock);
	pthread_mutex_destroy(&db->meta_lock);
	pthread_mutex_destroy(&db->sync_lock);
	pthread_mutex_destroy(&db->health_lock);
	pthread_cond_destroy(&db->sync_cond);
	free(db->dir);
	free(db);
}

/* ---- maintenance and stats ---- */

int kv_compact(struct kv_db *db, struct st_error *err)
{
	for (int s = 0; s < db->nshards; s++) {
		rocksdb_compact_range(kv_shard_pin(db, s), NULL, 0, NULL, 0);
		kv_shard_unpin(db, s);
	}
	return 0;
}

uint64_t kv_property_sum(struct kv_db *db, const char *prop)
{
	uint64_t sum = 0, v;
	for (int s = 0; s < db->nshards; s++) {
		if (rocksdb_property_int(kv_shard_pin(db, s), prop, &v) == 0)
			sum += v;
		kv_shard_unpin(db, s);
	}
	return sum;
}

/* Finds "NAME COUNT : N" in a statistics dump. */
static uint64_t stat_ticker(const char *dump, const char *name)
{
	const char *p = dump;
	size_t n = strlen(name);
	while ((p = strstr(p, name))) {
		if (p[n] == ' ') {
			const char *c = strstr(p, "COUNT : ");
			if (c)
				return strtoull(c + 8, NULL, 10);
		}
		p += n;
	}
	return 0;
}

void kv_row_cache_stats(struct kv_db *db, uint64_t *hits, uint64_t *misses, uint64_t *bytes)
{
	kv_rcache_stats(db->rcache, hits, misses, bytes);
}

void kv_cache_stats(struct kv_db *db, uint64_t *hits, uint64_t *misses)
{
	*hits = *misses = 0;
	for (int s = 0; s < db->nshards; s++) {
		char *dump = rocksdb_options_statistics_get_string(db->shards[s].opts);
		if (!dump)
			continue;
		*hits += stat_ticker(dump, "rocksdb.block.cache.hit");
		*misses += stat_ticker(dump, "rocksdb.block.cache.miss");
		free(dump);
	}
}
