/* Internals shared by the store's files: the kv_db structure and helpers. Not public. */
#ifndef KV_INT_H
#define KV_INT_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>

#include "store/kv.h"
#include "store/kv_cache.h"
#include "store/kv_key.h"
#include "store/kv_ring.h"
#include "store/kv_value.h"

struct kv_shard {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_compactionfilterfactory_t *cff; /* owned by opts */
	/* Held for reading by every user of `db`, for writing by kv_shard_install while it
	 * swaps in a resynced copy. */
	pthread_rwlock_t swap;
	/* Writes through db->wo, counted after each: the batch sync thread syncs only shards
	 * whose count moved since its last sync (an idle store makes no fdatasync). */
	atomic_uint_fast64_t writes;
	int wal_pinned; /* kv_wal_pin: one DisableFileDeletions outstanding (wal_pin_mu) */
	/* Recently committed batches for the WAL tails (kv_ring.h); NULL until
	 * kv_repl_ring_enable. Filled by kv_shard_write while the shard is pinned, cleared by
	 * kv_shard_install under the swap lock. */
	_Atomic(struct kv_ring *) ring;
};

/* Retention of a table id, read by the compaction filter (by id, no name lookup). `table`
 * points into the registry and is valid only under reg_lock. */
struct kv_retention {
	int live;
	const struct kv_table *table;
};

struct kv_jobs; /* kv_preload.c */

struct kv_db {
	char *dir;
	struct kv_options opts;
	int nshards;
	rocksdb_t *meta; /* registry and jobs */
	rocksdb_options_t *meta_opts;
	struct kv_shard *shards;
	rocksdb_cache_t *cache;
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_writeoptions_t *wo;   /* per the sync mode */
	rocksdb_writeoptions_t *wo_sync; /* always sync: registry and job records */
	rocksdb_readoptions_t *ro;    /* prefix (entity) mode: point reads */
	rocksdb_readoptions_t *ro_total; /* total order: sweeps across entities (join) */

	/* Registry, protected by reg_lock: tables (owned) and retention by id. Mutations also
	 * hold meta_lock so that the read-modify-write of the meta db is serialized. */
	pthread_rwlock_t reg_lock;
	pthread_mutex_t meta_lock;
	struct kv_table **tables;
	size_t ntables;
	struct kv_retention *ret; /* indexed by table id, ret_cap entries */
	uint32_t ret_cap;
	uint32_t next_table_id;

	_Atomic int64_t last_ingest; /* ingest times are strictly increasing */

	/* KV_SYNC_BATCH: a thread syncs the WAL of every shard every few ms. */
	pthread_t sync_thread;
	int sync_thread_started;
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond;
	int stopping;

	struct kv_jobs *jobs;
	struct kv_rcache *rcache; /* NULL without a row cache */
	struct kv_trash *trash; /* replaced shard copies deleted in the background (kv_repl.c) */

	/* Sticky storage error (kv_health): set once by the first failed write or WAL sync,
	 * never cleared while open. `failed` is read without the lock on every write. */
	_Atomic int failed;
	pthread_mutex_t health_lock;
	struct st_error health;

	/* Replication (kv_repl.c): hooks set once before serving; the registry version (under
	 * meta_lock) and, on a follower, why registry changes are refused. */
	struct kv_repl_hooks hooks;
	/* Batches WAL tails delivered from the shards' rings and from the WAL itself. */
	atomic_uint_fast64_t tail_ring_batches, tail_wal_batches;
	uint64_t reg_version;
	char *reg_follower;
};

/* The shard's RocksDB instance, pinned against a resync swap until kv_shard_unpin. */
static inline rocksdb_t *kv_shard_pin(struct kv_db *db, int s)
{
	pthread_rwlock_rdlock(&db->shards[s].swap);
	return db->shards[s].db;
}

static inline void kv_shard_unpin(struct kv_db *db, int s)
{
	pthread_rwlock_unlock(&db->shards[s].swap);
}

/* The replication access check of kv_repl_hooks (0 without hooks). */
static inline int kv_repl_check(struct kv_db *db, int shard, int access, struct st_error *err)
{
	return db->hooks.check ? db->hooks.check(db->hooks.arg, shard, access, err) : 0;
}
/* After a successful client write of wb to shard: reports its last sequence to the hook. */
int kv_repl_committed(struct kv_db *db, int shard, rocksdb_writebatch_t *wb,
		      struct st_error *err);
/* Registry bookkeeping (kv_schema.c / kv_repl.c), under meta_lock: refuse on a follower,
 * bump and persist the version after a change. */
int kv_reg_writable(struct kv_db *db, struct st_error *err);
int kv_reg_bump(struct kv_db *db, struct st_error *err);
/* Finishes or undoes a resync swap interrupted by a crash (at open, before the shard opens). */
int kv_shard_swap_recover(const char *dir, int shard, struct st_error *err);
/* The background deletion of replaced shard copies (kv_repl.c): kv_trash_open removes
 * what an earlier process left (DATA_DIR/shard-NNN.trash.*) and kv_trash_close finishes the
 * deletions queued, then stops its thread. */
int kv_trash_open(struct kv_db *db, struct st_error *err);
void kv_trash_close(struct kv_db *db);
/* Writes the position file of a swapped-in resynced copy into the open shard and removes
 * it (kv_shard_install, and kv_open after a crash in between); 0 when there is none. */
int kv_shard_install_finish(struct kv_db *db, int shard, struct st_error *err);

int64_t kv_now(const struct kv_db *db);
/* A new ingest time: max(now, last + 1). */
int64_t kv_next_ingest(struct kv_db *db);

/* Looks up a table under reg_lock held for reading by the caller. */
struct kv_table *kv_reg_find(struct kv_db *db, const char *name);
/* Same, reporting "no such table" into err. */
struct kv_table *kv_reg_find_err(struct kv_db *db, const char *name, struct st_error *err);

/* Loads the registry from the meta db (at open). */
int kv_reg_load(struct kv_db *db, struct st_error *err);
void kv_reg_free(struct kv_db *db);

/* Table <-> JSON text (owned malloc'ed string / owned table). */
char *kv_table_to_json(const struct kv_table *t);
int kv_table_from_json(const char *s, size_t len, struct kv_table **out, struct st_error *err);
struct kv_table *kv_table_dup(const struct kv_table *t);

/* Meta db get/put/delete of a small value; get returns ST_ENOTFOUND when missing. *out is
 * malloc'ed (caller frees) and NUL-terminated after its len bytes. Put and delete are synced,
 * refused while the store is read-only, and a failure makes it read-only (kv_fail). */
int kv_meta_get(struct kv_db *db, const char *key, char **out, size_t *len,
		struct st_error *err);
int kv_meta_put(struct kv_db *db, const char *key, const char *val, size_t len,
		struct st_error *err);
int kv_meta_delete(struct kv_db *db, const char *key, struct st_error *err);

/* a - b, saturated to the int64 range (times may be anywhere in it). */
static inline int64_t kv_sat_sub(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_sub_overflow(a, b, &r))
		return b > 0 ? INT64_MIN : INT64_MAX;
	return r;
}

/* The one freshness rule. A version with event time ts found by a read at time T (latest:
 * now) is present if T - ts <= ttl (or without a ttl). Otherwise it is stale, unless it was
 * stale for every read at or after the horizon H (ts + ttl < H): then compaction may already
 * have removed it, so it reads as absent whether or not it is still on disk. */
static inline enum kv_status kv_freshness(int64_t ttl_us, int64_t horizon, int64_t T, int64_t ts)
{
	if (ttl_us <= 0 || ts >= kv_sat_sub(T, ttl_us))
		return KV_PRESENT;
	if (horizon != ST_TS_MIN && ts < kv_sat_sub(horizon, ttl_us))
		return KV_ABSENT;
	return KV_STALE;
}

/* ST_ERANGE with a message naming the table's horizon if `at` (called at_name in it: "as-of",
 * "history from") or known_at is before it. */
int kv_check_horizon(const struct kv_table *t, int64_t horizon, const char *at_name, int64_t at,
		     int64_t known_at, struct st_error *err);

/* Stamps r (zeroed by the caller) with the status of a version found by a read at T, and
 * its times unless that is absent; returns the status (present: the caller adds the value). */
static inline enum kv_status kv_result_stamp(struct kv_result *r, int64_t ttl_us, int64_t horizon,
					     int64_t T, int64_t ts, int64_t ingest)
{
	r->status = kv_freshness(ttl_us, horizon, T, ts);
	if (r->status != KV_ABSENT) {
		r->ts = ts;
		r->ingest_us = ingest;
	}
	return r->status;
}

/* Records the sticky storage error (first one wins); returns code. */
int kv_fail(struct kv_db *db, int code, const char *what, const char *reason);
/* Fails with the sticky error if there is one (checked before every write). */
int kv_check_health(struct kv_db *db, struct st_error *err);

/* The RocksDB compaction filter factory applying ttl/max_versions for a shard. */
rocksdb_compactionfilterfactory_t *kv_cfilter_factory(struct kv_db *db);

/* Jobs (kv_preload.c): started after open, stopped before close. */
int kv_jobs_init(struct kv_db *db, struct st_error *err);
void kv_jobs_shutdown(struct kv_db *db);

/* Writes a RocksDB batch to a shard with the configured sync mode. */
int kv_shard_write(struct kv_db *db, int shard, rocksdb_writebatch_t *wb, struct st_error *err);

/* After a loop over `it` ended: ST_EIO (with `what` in the message) if it ended on a storage
 * error rather than at the end of the range, else 0. */
int kv_iter_check(rocksdb_iterator_t *it, const char *what, struct st_error *err);

/* ---- replication internals (kv_repl.c, kv_fork.c) ----
 * Reserved keys of a shard: table id 0xffffffff, empty entity, shorter than any cell key, so
 * no table prefix, scan or compaction rule ever matches them. */
extern const char kv_pos_key[], kv_ingest_key[], kv_replid_key[], kv_fork_key[];
#define KV_POS_KEY_LEN 9
#define KV_INGEST_KEY_LEN 12
#define KV_REPLID_KEY_LEN 12
#define KV_FORK_KEY_LEN 10
/* A replication position as stored under kv_pos_key (buf: 8 + KV_REPLID_MAX bytes). */
void kv_pos_encode(const struct kv_repl_pos *p, char *buf, size_t *len);
/* The inverse of kv_pos_encode: 0, or -1 for a malformed value. */
int kv_pos_decode(const char *v, size_t vl, struct kv_repl_pos *out);
/* A fresh random replication id (24 hex digits) into out (KV_REPLID_MAX bytes). */
void kv_new_replid(char *out);
/* The records of a RocksDB write batch (its wire format: seq u64le, count u32le, records),
 * one cb(arg, tag, key) each; only what the store writes is accepted (puts, deletes, range
 * deletes in the default column family, log data). Returns 0 with *seq and *count, -1 for a
 * malformed batch, or cb's non-zero return. */
enum { KV_REC_DELETE = 0x0, KV_REC_PUT = 0x1, KV_REC_SINGLE_DELETE = 0x7,
       KV_REC_RANGE_DELETE = 0xF };
typedef int (*kv_rec_cb)(void *arg, int tag, const char *key, size_t klen);
int kv_batch_records(const void *data, size_t len, kv_rec_cb cb, void *arg, uint64_t *seq,
		     uint32_t *count);
/* The part of the valid write batch `data` from its record `skip` on (0 < skip < count), as
 * a batch of its own (header: seq + skip, count - skip) in *out; -1 for a malformed batch or
 * a bad skip. */
int kv_batch_suffix(const void *data, size_t len, uint64_t skip, struct kv_ring_buf *out);
/* Walks the valid write batch `data` through its first n records (log data does not count):
 * *end = the offset after them, *v and *vl (when v is not NULL) = the value of the n-th record
 * (NULL for a delete). -1 for a malformed batch or n beyond its count. */
int kv_batch_walk_to(const void *data, size_t len, uint32_t n, size_t *end, const char **v,
		     size_t *vl);

/* Sets err from a RocksDB error string (and frees it); returns ST_EIO. */
int kv_rocks_err(struct st_error *err, char *rerr, const char *what);

#endif
