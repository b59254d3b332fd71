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
	uint32_t slot = (uint32_t)(XXH3_64bits(entity, entity_len) % KV_SLOTS);
	return (int)(slot % (uint32_t)db->nshards);
}

int kv_meta_get(struct kv_db *db, const char *key, char **out, size_t *len,
		struct st_error *err)
{
	char *rerr = NULL;
	*out = rocksdb_get(db->meta, db->ro, key, strlen(key), len, &rerr);
	if (rerr)
		return kv_rocks_err(err, rerr, "meta read");
	if (!*out)
		return st_error_set(err, ST_ENOTFOUND, "no meta key '%s'", key);
	return 0;
}

int kv_meta_put(struct kv_db *db, const char *key, const char *val, size_t len,
		struct st_error *err)
{
	char *rerr = NULL;
	rocksdb_put(db->meta, db->wo_sync, key, strlen(key), val, len, &rerr);
	return rerr ? kv_rocks_err(err, rerr, "meta write") : 0;
}

int kv_shard_write(struct kv_db *db, int shard, rocksdb_writebatch_t *wb, struct st_error *err)
{
	char *rerr = NULL;
	rocksdb_write(db->shards[shard].db, db->wo, wb, &rerr);
	return rerr ? kv_rocks_err(err, rerr, "write") : 0;
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
 * Keys reach the filter in sorted order within one compaction, so versions of one
 * (entity, feature) arrive newest first. A filter instance counts distinct event times per
 * feature prefix and drops versions past max_versions and versions past the ttl. A
 * compaction that sees only some versions undercounts, which keeps more, never fewer, so
 * reads (which apply the same rules) never see a difference. */

struct cfilter {
	struct kv_db *db;
	int64_t now;
	char prefix[KV_KEY_MAX];
	size_t prefix_len;
	int64_t last_ts;
	uint32_t distinct;
};

static unsigned char cfilter_filter(void *st, int level, const char *key, size_t klen,
				    const char *val, size_t vlen, char **nv, size_t *nvlen,
				    unsigned char *changed)
{
	struct cfilter *f = st;
	struct kv_key k;
	if (kv_key_decode(key, klen, &k))
		return 0; /* not ours: keep */
	struct kv_retention r = {0};
	uint32_t next_id;
	pthread_rwlock_rdlock(&f->db->reg_lock);
	if (k.table_id < f->db->ret_cap)
		r = f->db->ret[k.table_id];
	next_id = f->db->next_table_id;
	pthread_rwlock_unlock(&f->db->reg_lock);
	if (!r.live)
		return k.table_id < next_id; /* a dropped table's leftovers */
	size_t pl = klen - 16;
	if (pl != f->prefix_len || memcmp(key, f->prefix, pl)) {
		memcpy(f->prefix, key, pl);
		f->prefix_len = pl;
		f->distinct = 1;
		f->last_ts = k.ts;
	} else if (k.ts != f->last_ts) {
		f->distinct++;
		f->last_ts = k.ts;
	}
	if (r.max_versions && f->distinct > r.max_versions)
		return 1;
	return !kv_retained(r.ttl_us, f->now, k.ts);
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
			rocksdb_flush_wal(db->shards[s].db, 1, &rerr);
			if (rerr) {
				fprintf(stderr, "strata: WAL sync of shard %d failed: %s\n", s, rerr);
				free(rerr);
			}
		}
		pthread_mutex_lock(&db->sync_lock);
	}
	pthread_mutex_unlock(&db->sync_lock);
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
	for (int s = 0; s < db->nshards; s++) {
		struct kv_shard *sh = &db->shards[s];
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
		if ((rc = open_rocks(path, sh->opts, &sh->db, err)))
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
	}
	free(db->shards);
	kv_rcache_free(db->rcache);
	if (db->meta)
		rocksdb_close(db->meta);
	if (db->meta_opts)
		rocksdb_options_destroy(db->meta_opts);
	kv_reg_free(db);
	rocksdb_writeoptions_destroy(db->wo);
	rocksdb_writeoptions_destroy(db->wo_sync);
	rocksdb_readoptions_destroy(db->ro);
	rocksdb_readoptions_destroy(db->ro_total);
	rocksdb_block_based_options_destroy(db->bbto);
	rocksdb_cache_destroy(db->cache);
	pthread_rwlock_destroy(&db->reg_lock);
	pthread_mutex_destroy(&db->meta_lock);
	pthread_mutex_destroy(&db->sync_lock);
	pthread_cond_destroy(&db->sync_cond);
	free(db->dir);
	free(db);
}

/* ---- maintenance and stats ---- */

int kv_compact(struct kv_db *db, struct st_error *err)
{
	for (int s = 0; s < db->nshards; s++)
		rocksdb_compact_range(db->shards[s].db, NULL, 0, NULL, 0);
	return 0;
}

uint64_t kv_property_sum(struct kv_db *db, const char *prop)
{
	uint64_t sum = 0, v;
	for (int s = 0; s < db->nshards; s++)
		if (rocksdb_property_int(db->shards[s].db, prop, &v) == 0)
			sum += v;
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
