/* The versioned feature store engine: public API of libstrata-store.
 *
 * A data directory holds a meta database (table registry, preload jobs) and a fixed number of
 * shards, each one RocksDB instance. A cell is (table, entity, feature, event_ts) -> value,
 * stamped with the ingest time of the write that stored it. See docs/store.md for the key
 * layout and the exact read semantics; in short, for a read at time T (latest: T = now):
 *   - versions of one (entity, feature) are ranked newest event_ts first; only the first
 *     max_versions distinct event_ts exist for reads (0 = unlimited);
 *   - as-of T returns the version with the greatest event_ts <= T; if it is a tombstone,
 *     nothing; known-at S ignores writes ingested after S (bitemporal reads);
 *   - ttl is freshness, relative to the read's own time: the value is returned only if
 *     T - event_ts <= ttl, otherwise the result says KV_STALE (value withheld). It deletes
 *     nothing;
 *   - retention bounds history: horizon H = now - retention. Reads (as-of and known-at) at
 *     T >= H answer exactly as if nothing had been removed; reads before H fail with
 *     ST_ERANGE; compaction keeps every version newer than H plus the one in effect at H;
 *   - the same (entity, feature, event_ts) written twice: the later write wins (the earlier
 *     stays visible to known-at reads before the later write).
 *
 * Errors: functions return 0 or a negative code from common/st_err.h and fill `err` (may be
 * NULL) with a message saying what was wrong. Threads: a kv_db is safe to share between
 * threads for every call; a kv_join is used by one thread at a time. */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

#include "common/st_err.h"
#include "common/st_slot.h"
#include "common/st_time.h"

#define KV_NAME_MAX 64         /* table, feature and column names, including the NUL */
#define KV_ENTITY_MAX 1024     /* entity key bytes */
#define KV_VALUE_MAX (4 << 20) /* encoded value bytes */
#define KV_DIM_MAX 65536       /* f32[N] embedding dimension */
#define KV_SLOTS ST_SLOTS      /* entity hash slots; slot -> shard is slot % nshards
				* (common/st_slot.h) */

enum kv_type {
	KV_NONE = 0, /* no value (result not found) */
	KV_I64 = 1,
	KV_F64 = 2,
	KV_F32 = 3,
	KV_STR = 4,
	KV_BYTES = 5,
	KV_F32VEC = 6, /* f32[N], fixed dimension per feature */
	KV_I64LIST = 7,
};

/* A typed value. For STR/BYTES `ptr` holds `len` bytes; for F32VEC `ptr` holds `len` floats;
 * for I64LIST `len` int64s. Ownership of `ptr` is stated by whoever hands out the value:
 * results from the store own it (release with kv_value_release), inputs are borrowed. */
struct kv_value {
	enum kv_type type;
	uint32_t len;
	union {
		int64_t i64;
		double f64;
		float f32;
	};
	void *ptr;
};

void kv_value_release(struct kv_value *v); /* frees ptr, sets type to KV_NONE */

/* Per-feature ttl: 0 = the table's ttl (default), > 0 its own, KV_TTL_NONE = no freshness
 * limit for this feature whatever the table says. */
#define KV_TTL_NONE (-1)

struct kv_feature_def {
	char name[KV_NAME_MAX];
	enum kv_type type;
	uint32_t dim;   /* F32VEC only */
	uint16_t id;    /* assigned by the store, stable for the table's life */
	int64_t ttl_us; /* 0 = table's ttl; > 0 own; KV_TTL_NONE = none */
};

/* A table schema. `features` is owned by the struct: free with kv_table_free. */
struct kv_table {
	char name[KV_NAME_MAX];
	char entity_column[KV_NAME_MAX]; /* column name in preload/join files; default "entity" */
	uint32_t id;                     /* assigned by the store, never reused */
	int64_t ttl_us;                  /* freshness; 0 = no limit */
	uint32_t max_versions;           /* 0 = unlimited */
	int64_t created_us;
	uint32_t nfeatures;
	struct kv_feature_def *features;
	int64_t retention_us;            /* history kept; 0 = forever */
	/* Set by the store (ignored on create): the horizon never moves back, so raising the
	 * retention cannot bring back a span that compaction may already have removed. */
	int64_t horizon_floor_us;        /* ST_TS_MIN = none */
};

void kv_table_free(struct kv_table *t); /* frees features and t itself */
/* Returns the feature named `name` or NULL. */
const struct kv_feature_def *kv_table_feature(const struct kv_table *t, const char *name);
/* The freshness limit that applies to feature f of t (0 = none). */
int64_t kv_feature_ttl(const struct kv_table *t, const struct kv_feature_def *f);
/* The table's retention horizon at time now: now - retention, or ST_TS_MIN without one. */
int64_t kv_table_horizon(const struct kv_table *t, int64_t now);

/* "i64", "f64", "f32", "str", "bytes", "f32[8]", "i64[]" <-> type (+dim). */
int kv_type_parse(const char *s, enum kv_type *type, uint32_t *dim);
const char *kv_type_name(enum kv_type type, uint32_t dim, char *buf, size_t n);

enum kv_sync { KV_SYNC_ALWAYS, KV_SYNC_BATCH, KV_SYNC_NONE };

struct kv_job_info;
struct kv_options {
	int create_if_missing;     /* default 1 */
	int nshards;               /* used when creating; default 4 */
	enum kv_sync sync;         /* default KV_SYNC_BATCH */
	size_t block_cache_bytes;  /* shared by all shards; default 256 MiB */
	int run_jobs;              /* run preload jobs here (and resume interrupted ones); default 0 */
	int64_t wal_ttl_seconds;   /* keep WAL for replication tailing; default 3600 */
	size_t preload_mem_bytes;  /* sort buffer of a preload before spilling runs; 256 MiB */
	size_t row_cache_bytes;    /* latest-value row cache for serving reads; 0 = none (default) */
	int64_t (*clock)(void *);  /* wall clock in us for ttl and ingest times; default real time */
	void *clock_arg;
	size_t write_buffer_bytes; /* per shard memtable; 0 = RocksDB's default (64 MiB). Tests
				    * set it small to get many flushes and partial compactions */
	/* Called on the job thread when a job ends (done, failed or cancelled; not when it is
	 * interrupted by close), after its record is saved; NULL = nothing. */
	void (*on_job_end)(void *arg, const struct kv_job_info *j);
	void *on_job_end_arg;
};

void kv_options_init(struct kv_options *o);

struct kv_db;

/* Opens (or creates) the store in `dir`. Only one process may have it open. */
int kv_open(const char *dir, const struct kv_options *opts, struct kv_db **out,
	    struct st_error *err);
/* Stops background work (a running preload is left to resume on the next open with
 * run_jobs), flushes and closes. NULL is allowed. */
void kv_close(struct kv_db *db);

/* ---- table registry ---- */

/* Creates a table from `schema` (name, entity_column, ttl, max_versions, features by name and
 * type; ids are assigned). */
int kv_table_create(struct kv_db *db, const struct kv_table *schema, struct st_error *err);

/* Copies the schema of table `name` into *out (caller frees with kv_table_free). */
int kv_table_get(struct kv_db *db, const char *name, struct kv_table **out, struct st_error *err);

/* Lists all tables sorted by name: *out is an array of *n pointers, each freed with
 * kv_table_free, and the array with free(). */
int kv_table_list(struct kv_db *db, struct kv_table ***out, size_t *n, struct st_error *err);

/* Alter: add features, change ttl, max_versions and/or retention. Fields < 0 mean
 * unchanged: start from KV_ALTER_NONE. */
struct kv_alter {
	int64_t ttl_us;        /* -1 = unchanged */
	int64_t max_versions;  /* -1 = unchanged */
	uint32_t nadd;
	const struct kv_feature_def *add; /* borrowed */
	int64_t retention_us;  /* -1 = unchanged; 0 = keep forever */
};
#define KV_ALTER_NONE ((struct kv_alter){.ttl_us = -1, .max_versions = -1, .retention_us = -1})
int kv_table_alter(struct kv_db *db, const char *name, const struct kv_alter *a,
		   struct st_error *err);

/* Drops the table and deletes its data from every shard. */
int kv_table_drop(struct kv_db *db, const char *name, struct st_error *err);

/* ---- writes ---- */

/* One input cell; all pointers are borrowed for the duration of the call. */
struct kv_cell {
	const char *entity;
	size_t entity_len;
	const char *feature;
	int64_t ts;            /* event time, us */
	struct kv_value value; /* type must match the feature's type */
};

/* Writes the cells as one batch per shard (atomic per shard; all cells of one entity are on
 * one shard). Every cell is validated before anything is written. */
int kv_put(struct kv_db *db, const char *table, const struct kv_cell *cells, size_t n,
	   struct st_error *err);

/* Writes tombstones at `ts` for the named features (nfeatures == 0: every feature). */
int kv_delete(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	      const char *const *features, size_t nfeatures, int64_t ts, struct st_error *err);

/* ---- reads ---- */

struct kv_read_opts {
	int64_t as_of;    /* ST_TS_MAX = latest */
	int64_t known_at; /* ST_TS_MAX = everything ingested so far */
	unsigned flags;   /* KV_READ_* */
};
/* Answer only from the row cache: fail with ST_EBUSY rather than touch RocksDB (a server can
 * then answer hits on its network thread and hand misses to a worker). */
#define KV_READ_CACHED_ONLY 1u
/* Only the shard's primary may answer (replication): a replica refuses with its EMOVED. */
#define KV_READ_PRIMARY 2u
/* Latest value, everything known so far. */
extern const struct kv_read_opts kv_read_latest;
#define KV_READ_LATEST (kv_read_latest)

/* What a read found for one feature. */
enum kv_status {
	KV_ABSENT = 0,         /* no value as of the read (never written, deleted, or removed) */
	KV_PRESENT = 1,        /* found: value, ts and ingest_us are set */
	KV_STALE = 2,          /* a version exists but is older than the ttl at the read's time:
				* ts and ingest_us are set, the value is withheld */
	KV_BEFORE_HORIZON = 3, /* join rows skipped by KV_JOIN_SKIP_BEFORE_HORIZON */
};
const char *kv_status_name(enum kv_status s); /* "present", "absent", "stale", ... */

/* A read result. `value` is owned by the result: release with kv_result_release.
 * found == (status == KV_PRESENT). */
struct kv_result { /* 48 bytes: a 1M-row join of 10 features keeps 10M of them */
	int64_t ts;        /* event time of the value */
	int64_t ingest_us; /* when it was written */
	struct kv_value value;
	int found;
	enum kv_status status;
};
_Static_assert(sizeof(struct kv_result) == 48, "kv_result: no padding");
void kv_result_release(struct kv_result *r, size_t n);

/* Reads `nfeatures` features of one entity into out[0..nfeatures). A read whose as-of or
 * known-at time is before the table's retention horizon fails with ST_ERANGE. */
int kv_get(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	   const char *const *features, size_t nfeatures, const struct kv_read_opts *o,
	   struct kv_result *out, struct st_error *err);

/* A hint that latest reads of the n pairs (tables[i], entities[i]) follow soon: brings their
 * row-cache entries toward the CPU caches, so that the reads do not each wait for memory in
 * turn (a server calls it with every get of one received buffer). Changes no result, takes
 * no error, never touches RocksDB; unknown tables and entities are skipped. The arrays are
 * the caller's and only read during the call. */
void kv_prefetch_latest(struct kv_db *db, const char *const *tables, const char *const *entities,
			const size_t *entity_lens, size_t n);

/* Reads nentities x nfeatures into out[e * nfeatures + f]. Entities are given as parallel
 * arrays of pointers and lengths. */
int kv_multiget(struct kv_db *db, const char *table, const char *const *entities,
		const size_t *entity_lens, size_t nentities, const char *const *features,
		size_t nfeatures, const struct kv_read_opts *o, struct kv_result *out,
		struct st_error *err);

/* All versions of one feature with from <= event_ts <= to, newest first, at most `limit`
 * (0 = no limit), as known at `known_at`. Tombstones are included (tombstone = 1, no value).
 * With a retention horizon H, versions at or before H are summed up by the one in effect at
 * H (listed if it is a value still fresh at H), whatever compaction has removed yet; a
 * `from` other than ST_TS_MIN before H (or, with ST_TS_MIN, a `to` before H) and a known_at
 * before H fail with ST_ERANGE naming the horizon.
 * *out is an array of *n versions, freed with kv_history_free. */
struct kv_version {
	int tombstone;
	struct kv_result r;
};
void kv_history_free(struct kv_version *v, size_t n);
int kv_history(struct kv_db *db, const char *table, const char *entity, size_t entity_len,
	       const char *feature, int64_t from, int64_t to, size_t limit, int64_t known_at,
	       struct kv_version **out, size_t *n, struct st_error *err);

/* Walks every existing version of every feature of a table (max_versions and the retention
 * horizon applied as in kv_history, tombstones included, the newest write of each event time as known at `known_at`), entity by entity in
 * key order, features in id order, newest version first. `entity`, `feature` and `v` are
 * valid during the call only (`feature` points into the scan's own copy of the schema). A non-zero return from cb stops the walk and is returned. */
typedef int (*kv_version_cb)(void *arg, const char *entity, size_t entity_len,
			     const struct kv_feature_def *feature, const struct kv_version *v);
int kv_table_scan(struct kv_db *db, const char *table, int64_t known_at, kv_version_cb cb,
		  void *arg, struct st_error *err);
/* The same walk over one shard's part of the table (replica verification). */
int kv_table_scan_shard(struct kv_db *db, const char *table, int shard, int64_t known_at,
			kv_version_cb cb, void *arg, struct st_error *err);

/* ---- versioned sample join (streaming, bounded memory) ----
 * Push sample rows (entity, ts) in any order; when kv_join_push returns 1 the chunk is full:
 * call kv_join_run, read the results with kv_join_result in push order, then kv_join_reset.
 * Call kv_join_run for the last partial chunk too. Memory is bounded by chunk_rows. */
struct kv_join;
int kv_join_open(struct kv_db *db, const char *table, const char *const *features,
		 size_t nfeatures, int64_t known_at, size_t chunk_rows, struct kv_join **out,
		 struct st_error *err);
/* Rows whose ts is before the table's retention horizon: by default the push (or the run,
 * if the horizon moved past them meanwhile) fails with ST_ERANGE; with SKIP they get
 * results with status KV_BEFORE_HORIZON and are counted by kv_join_skipped. */
enum kv_join_horizon { KV_JOIN_ERROR_BEFORE_HORIZON, KV_JOIN_SKIP_BEFORE_HORIZON };
void kv_join_set_horizon_policy(struct kv_join *j, enum kv_join_horizon p);
/* Rows skipped so far (over all chunks). */
uint64_t kv_join_skipped(const struct kv_join *j);
/* Returns 0, 1 (chunk now full), or an error. The entity bytes are copied. */
int kv_join_push(struct kv_join *j, const char *entity, size_t entity_len, int64_t ts,
		 struct st_error *err);
/* Sets row `pos` (< chunk_rows) instead of appending (rows arriving out of order): the chunk
 * is rows [0, highest pos + 1), and the caller must have set every one of them before
 * kv_join_run. Returns 0 or an error. */
int kv_join_push_at(struct kv_join *j, size_t pos, const char *entity, size_t entity_len,
		    int64_t ts, struct st_error *err);
int kv_join_run(struct kv_join *j, struct st_error *err);
size_t kv_join_rows(const struct kv_join *j);
/* Results of row i of the current chunk: nfeatures entries, owned by the join (valid until
 * kv_join_reset or kv_join_free). */
const struct kv_result *kv_join_result(const struct kv_join *j, size_t i);
void kv_join_reset(struct kv_join *j);
void kv_join_free(struct kv_join *j);

/* ---- preload jobs ---- */

enum kv_format { KV_FMT_AUTO, KV_FMT_CSV, KV_FMT_TSV, KV_FMT_JSONL };
int kv_format_parse(const char *s, enum kv_format *out);

struct kv_preload_req {
	char table[KV_NAME_MAX];
	char path[4096];        /* absolute path of the file (".gz"/".zst" are decompressed) */
	enum kv_format format;  /* AUTO: from the extension */
	int skip_bad_rows;
	char ts_column[KV_NAME_MAX]; /* default "ts" */
	enum st_ts_unit ts_unit;     /* for integer timestamps; default ms */
	int allow_any_ts;            /* skip the 1990..2200 guard (st_ts_check_plausible) */
};
void kv_preload_req_init(struct kv_preload_req *r);

/* Job states. Transitions: queued -> running -> done | failed | cancelled;
 * queued -> cancelled; running -> queued on close (interrupted, resumes on next open). */
enum kv_job_state { KV_JOB_QUEUED, KV_JOB_RUNNING, KV_JOB_DONE, KV_JOB_FAILED, KV_JOB_CANCELLED };
const char *kv_job_state_name(enum kv_job_state s);

#define KV_JOB_BAD_SAMPLES 5
struct kv_job_info {
	uint64_t id;
	enum kv_job_state state;
	int interrupted; /* state is queued/running but nothing in this process runs it */
	struct kv_preload_req req;
	int64_t submitted_us, started_us, finished_us;
	int64_t rows, cells, bad_rows;
	int64_t bytes_done, bytes_total; /* of the (compressed) input file */
	double rows_per_s, eta_s;        /* eta < 0: unknown */
	int attempts;
	char phase[16];                  /* "parse", "sort", "ingest" */
	char error[512];
	char bad_samples[KV_JOB_BAD_SAMPLES][160]; /* first few "file:line: reason" with skip */
};

/* Submits a preload job and returns its id; it runs in the background if the store was
 * opened with run_jobs. The file is checked to exist and the table to exist. */
int kv_preload_submit(struct kv_db *db, const struct kv_preload_req *req, uint64_t *id,
		      struct st_error *err);
int kv_job_get(struct kv_db *db, uint64_t id, struct kv_job_info *out, struct st_error *err);
/* All jobs, newest first; *out freed with free(). */
int kv_job_list(struct kv_db *db, struct kv_job_info **out, size_t *n, struct st_error *err);
int kv_job_cancel(struct kv_db *db, uint64_t id, struct st_error *err);
/* Runs queued/interrupted jobs now in this thread until none is left (embedded tools). */
int kv_jobs_run_pending(struct kv_db *db, struct st_error *err);

/* ---- maintenance, stats and replication hooks ---- */

int kv_nshards(const struct kv_db *db);
int kv_shard_of(const struct kv_db *db, const char *entity, size_t entity_len);
/* Reports shared by strata-admin (offline) and stratad's admin request (online), as jansson
 * documents owned by the caller (json_decref); NULL with err set on failure.
 * stats: {"shards","tables":[names],"keys_estimate","sst_bytes","memtable_bytes","jobs",
 *         "jobs_pending","jobs_failed","latest_sequences":[per shard]}
 * verify: reads every version of every table and checks values against the schema:
 *         {"tables":[{"name","entities","versions","tombstones","ok"[,"error"]}],
 *          "versions","ok"}; progress(arg, versions so far) is called now and then. */
struct json_t;
typedef void (*kv_verify_progress_cb)(void *arg, int64_t versions);
struct json_t *kv_stats_json(struct kv_db *db, struct st_error *err);
struct json_t *kv_verify_json(struct kv_db *db, kv_verify_progress_cb progress, void *arg,
			      struct st_error *err);

/* Full compaction of every shard (applies max_versions and retention removal). */
int kv_compact(struct kv_db *db, struct st_error *err);
/* The sticky storage error: after a failed WAL sync or write every later write fails with
 * the original reason until the process restarts (reads keep working). Returns 0 when
 * healthy, else the code, with the reason in *out (may be NULL). */
int kv_health(struct kv_db *db, struct st_error *out);
/* Sum over shards of a numeric RocksDB property (e.g. "rocksdb.estimate-num-keys"). */
uint64_t kv_property_sum(struct kv_db *db, const char *prop);
/* Block cache hits and misses since open. */
void kv_cache_stats(struct kv_db *db, uint64_t *hits, uint64_t *misses);
/* Row cache hits, misses and bytes held (zeros without a row cache). */
void kv_row_cache_stats(struct kv_db *db, uint64_t *hits, uint64_t *misses, uint64_t *bytes);

uint64_t kv_shard_latest_seq(struct kv_db *db, int shard);
/* Calls cb for every write batch of `shard` from sequence `seq` on, in order. Fails with
 * ST_ENOTFOUND if the WAL no longer reaches back to `seq` (the caller must resync). A non-zero
 * return from cb stops the walk and is returned. `data` is valid during the call only. */
typedef int (*kv_batch_cb)(void *arg, uint64_t seq, const void *data, size_t len);
/* A write batch's header, in RocksDB's format (first sequence u64le, record count u32le):
 * 0, or -1 when the batch is shorter than its 12 bytes. The one decoder of it. */
int kv_batch_header(const void *data, size_t len, uint64_t *seq, uint32_t *count);
int kv_shard_updates_since(struct kv_db *db, int shard, uint64_t seq, kv_batch_cb cb, void *arg,
			   struct st_error *err);
/* A tail of a shard's WAL for streaming: opened at a sequence, each read delivers the
 * batches from there on that exist now (in order, each exactly once) and returns 0 when it
 * has caught up, or when the next batch is not yet in the shard's ring (kv_repl_ring_enable:
 * a writer between its write and the publication, waited for by kv_wal_tail_wait); the
 * next read continues. ST_ENOTFOUND when the WAL no longer reaches the
 * position (the caller must resync). While open it pins the shard: a resync install of the
 * same shard waits until it is closed. One thread at a time per tail. */
struct kv_wal_tail;
int kv_wal_tail_open(struct kv_db *db, int shard, uint64_t seq, struct kv_wal_tail **out,
		     struct st_error *err);
int kv_wal_tail_read(struct kv_wal_tail *t, kv_batch_cb cb, void *arg, struct st_error *err);
uint64_t kv_wal_tail_next_seq(const struct kv_wal_tail *t);
void kv_wal_tail_close(struct kv_wal_tail *t); /* NULL allowed */
/* Returns 1 at once when a read would deliver something now; else waits up to max_us for
 * a batch at the tail's position (1) or returns 0. */
int kv_wal_tail_wait(struct kv_wal_tail *t, int64_t max_us);
/* Keeps each shard's recently committed write batches in memory, up to `bytes` (< 4 GiB)
 * and bytes / 128 sequences per shard,
 * so that WAL tails deliver them without reading the WAL back (each tail from the ring
 * while it holds the tail's position, from the WAL otherwise). Call before serving
 * replicas; idempotent. A store that never calls it keeps no ring. */
int kv_repl_ring_enable(struct kv_db *db, size_t bytes, struct st_error *err);
/* Batches the WAL tails of this store delivered from the rings and from the WAL. */
void kv_wal_tail_counts(struct kv_db *db, uint64_t *from_ring, uint64_t *from_wal);
/* Applies a write batch (as produced by kv_shard_updates_since) to `shard`. */
int kv_shard_apply(struct kv_db *db, int shard, const void *data, size_t len,
		   struct st_error *err);
/* WAL retention for replicas beyond wal_ttl_seconds: while a shard is pinned RocksDB deletes
 * none of its obsolete files (WAL files, and compacted-away SST files too: the 7.8 C API can
 * only stop every deletion of a db), so a replica that is behind or briefly gone can still
 * resume from its position. on = 1 pins, 0 releases (then RocksDB purges what wal_ttl lets
 * it); idempotent. *wal_bytes (may be NULL) gets the bytes of the shard's WAL files, live
 * and archived, so the caller can cap the pin. A resync install of the shard drops its pin. */
int kv_wal_pin(struct kv_db *db, int shard, int on, uint64_t *wal_bytes, struct st_error *err);
/* Writes a consistent RocksDB checkpoint of every shard and the meta db under `dir`. */
int kv_checkpoint(struct kv_db *db, const char *dir, struct st_error *err);

/* ---- replication hooks (used by replication/; see docs/replication.md) ---- */

/* A replica's position in a shard: the replication id of the primary it follows and the
 * next primary sequence it needs. Stored in the shard itself under a reserved key that no
 * table can reach, and written in the same batch as the data it covers. */
#define KV_REPLID_MAX 40
struct kv_repl_pos {
	char replid[KV_REPLID_MAX]; /* "" = never replicated */
	uint64_t next_seq;
};
int kv_shard_repl_pos(struct kv_db *db, int shard, struct kv_repl_pos *out, struct st_error *err);
/* The replication id of this copy of the shard: random, created on first use and replaced
 * when a resynced copy is installed, so a sequence number is only ever compared with
 * sequences of the same copy. `out` has KV_REPLID_MAX bytes. */
int kv_shard_replid(struct kv_db *db, int shard, char *out, struct st_error *err);

/* What kv_shard_apply_at found in a batch. */
#define KV_APPLY_INGESTED 1 /* the primary ingested files into the shard (a preload): the data
			     * is not in the WAL, the replica must resync */
/* Applies the primary's write batch and the new position atomically (one RocksDB batch),
 * invalidates the row-cache entries of the entities it touches and keeps the store's ingest
 * clock at or above every ingest time in it. Returns 0, KV_APPLY_INGESTED, or an error
 * (ST_EPROTO for a malformed batch). */
int kv_shard_apply_at(struct kv_db *db, int shard, const void *data, size_t len,
		      const struct kv_repl_pos *pos, struct st_error *err);
/* Records (through the WAL, so replicas see it in order) that files were ingested into
 * `shard` outside the WAL. Called by preload after an ingestion. */
int kv_shard_mark_ingest(struct kv_db *db, int shard, struct st_error *err);

/* ---- forks: a replica promoted to primary, and the old primary's divergent tail
 * (kv_fork.c; see docs/replication.md, "Rejoin") ----
 * When a copy that followed history `from_replid` up to (not including) `from_next` starts
 * writing its own history (its replication id `replid`), its sequences before `to_next`
 * hold exactly what the followed history held before `from_next`: a copy of that history
 * standing at from_next can continue as a replica of this one at to_next, and the copy that
 * wrote that history (its former primary) can, after undoing its sequences from from_next
 * on, too. */
struct kv_repl_fork {
	char replid[KV_REPLID_MAX];      /* the copy's own id when recorded (stale once changed) */
	char from_replid[KV_REPLID_MAX]; /* "" = not a fork (the copy did not follow anything) */
	uint64_t from_next, to_next;
};
/* Marks the copy as now writing its own history, in one batch: the position becomes (own
 * replication id, 0), so that it never again claims to follow what it followed, and, when
 * `follows` (the copy's content is exactly its position: a replica until now) and the
 * position names a history, the fork record (to_next = the sequence of this batch, which
 * holds reserved keys only). Without `follows` nothing is written if the position already
 * names the copy itself. The caller guarantees that nothing else writes to the shard
 * meanwhile (no client writes, no applied batches). *out (may be NULL) gets the record
 * (from_replid "" = none). */
int kv_shard_fork_mark(struct kv_db *db, int shard, int follows, struct kv_repl_fork *out,
		       struct st_error *err);
/* The fork record of this copy: 0, or ST_ENOTFOUND when there is none or it is stale (the
 * copy's replication id changed since: a resync or a rewind). */
int kv_shard_fork_get(struct kv_db *db, int shard, struct kv_repl_fork *out,
		      struct st_error *err);
/* What kv_shard_rewind discarded: its own write batches from sequence `first` through
 * `last` (seqs = last - first + 1 sequences), `keys` cell versions deleted. */
struct kv_rewind_report {
	uint64_t batches, seqs, first, last, keys;
};
/* Undoes this copy's sequences from `from` on (0 = none) and sets the position `pos` and a
 * new replication id, all in one batch. Cell keys carry their ingest time, so every write
 * created keys that did not exist before it: the inverse of a put is a delete of that
 * version (the versions before it are different keys, untouched). Reads the batches back
 * from the shard's own WAL: ST_ENOTFOUND when the WAL no longer reaches `from` (the caller
 * resyncs instead), ST_EINVAL when the tail holds what a delete cannot undo (an ingestion
 * marker: files outside the WAL; a delete or range delete: the value before it is gone).
 * Nothing is written on error. */
int kv_shard_rewind(struct kv_db *db, int shard, uint64_t from, const struct kv_repl_pos *pos,
		    struct kv_rewind_report *rep, struct st_error *err);

/* A batch of a history this copy followed as a replica, as that history's primary wrote it
 * (the records this copy added when it applied it removed): `seq` is its first sequence in
 * that history, `local_seq` the sequence of this copy's WAL that holds it. `data` is valid
 * during the call. Return 0 to go on, KV_FOLLOW_DONE to stop, anything else to fail. */
#define KV_FOLLOW_DONE 1
typedef int (*kv_followed_cb)(void *arg, uint64_t seq, uint64_t local_seq, const void *data,
			      size_t len);
/* Reads from this copy's own WAL the batches of history `replid` from its sequence `from` on
 * that the copy applied before its own sequence `local_end`, each continuing the one before
 * exactly (a promoted replica serves the history it forked from to replicas behind its fork
 * point; a replica beyond a fork point finds where to undo from). `hist_end` is the history
 * position the copy had at local_end (the search starts about that far back). *reached =
 * the history position after the last batch read. ST_ENOTFOUND when the WAL no longer
 * reaches `from` or does not map the history exactly (something else wrote cells between
 * its batches, a gap): the caller resyncs instead. */
int kv_shard_followed(struct kv_db *db, int shard, const char *replid, uint64_t from,
		      uint64_t hist_end, uint64_t local_end, kv_followed_cb cb, void *arg,
		      uint64_t *reached, struct st_error *err);

/* A RocksDB checkpoint of one shard in `dir` (which must not exist); *next_seq is the first
 * sequence not certainly contained in it (replaying from there is idempotent). */
int kv_shard_checkpoint(struct kv_db *db, int shard, const char *dir, uint64_t *next_seq,
			struct st_error *err);
/* Installs a complete checkpoint copy in `dir` as shard `shard`: writes `pos` into it, marks
 * it complete, then swaps it with the live shard (readers of that shard wait for the swap;
 * a crash at any point leaves either the old or the new copy, see kv_open). `dir` must be
 * DATA_DIR/shard-NNN.resync. */
int kv_shard_install(struct kv_db *db, int shard, const char *dir, const struct kv_repl_pos *pos,
		     struct st_error *err);
/* The staging directory of a shard's resync: DATA_DIR/shard-NNN.resync. */
void kv_shard_stage_dir(const struct kv_db *db, int shard, char *buf, size_t n);

/* Raises the ingest clock to at least `ts` (a replica keeps the primary's ingest times, and
 * once promoted never issues a lower one). */
void kv_ingest_clock_raise(struct kv_db *db, int64_t ts);
int64_t kv_ingest_clock(struct kv_db *db);

/* The table registry as one JSON document {"version":V,"next_table_id":N,"tables":[...]}
 * (malloc'ed, caller frees) and its installation on a replica: applied only if its version is
 * newer than the local one (returns 1 when installed, 0 when not newer, or an error). The
 * version grows with every create, alter and drop. */
int kv_registry_export(struct kv_db *db, char **json, uint64_t *version, struct st_error *err);
int kv_registry_install(struct kv_db *db, const char *json, size_t len, struct st_error *err);
uint64_t kv_registry_version(struct kv_db *db);

/* Access checks installed by the replication layer: called before every write with the
 * shards it touches (write = KV_ACCESS_WRITE) and before point reads (KV_ACCESS_READ, or
 * KV_ACCESS_PRIMARY_READ for a read that only the shard's primary may answer, i.e. one that
 * must see every acknowledged write); a non-zero return
 * (with err set, e.g. "EMOVED ...") refuses the operation. `committed` is called after a
 * write reached a shard with the sequence of its last record, and may wait for replicas;
 * an error from it fails the write (which is then durable locally but not acknowledged).
 * Either may be NULL. Set once before serving. */
enum { KV_ACCESS_READ = 0, KV_ACCESS_WRITE = 1, KV_ACCESS_PRIMARY_READ = 2 };
struct kv_repl_hooks {
	int (*check)(void *arg, int shard, int write, struct st_error *err);
	int (*committed)(void *arg, int shard, uint64_t last_seq, struct st_error *err);
	void *arg;
};
void kv_set_repl_hooks(struct kv_db *db, const struct kv_repl_hooks *h);
/* Refuses table create/alter/drop with `why` (NULL: allowed again): a node that follows
 * another node's registry. */
void kv_set_registry_follower(struct kv_db *db, const char *why);

#endif
