/* libstrata: the C client of stratad (the Strata feature store server).
 *
 * This header is the specification. Link with `pkg-config --libs strata`.
 *
 * Model. A `strata` handle is one TCP connection to one server. Every operation is a
 * synchronous call that sends one request and waits for its answer, except:
 *   - the batch API (strata_batch_*): queue many operations, send them pipelined in one go
 *     and collect all answers: the serving hot path;
 *   - the streaming join (strata_join_*): rows are sent in chunks while results stream back.
 *
 * Threads. A `strata` handle, and the batches and joins made from it, may be used by one
 * thread at a time (no internal locking): give each thread its own handle, or guard a shared
 * one with a mutex. Different handles are fully independent. Nothing here uses signals; the
 * library never raises SIGPIPE (MSG_NOSIGNAL).
 *
 * Errors. Functions return 0 (or a documented non-negative value) on success and a negative
 * code on failure: one of the STRATA_E* codes below (the same numbers the server sends, a
 * range that never collides with errno), or a negative errno for transport failures
 * (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET...). When `err` is non-NULL it is filled with the
 * code and a message saying what was wrong (the server's message for server-side errors).
 *
 * Reconnects. After a transport failure the handle reconnects (and re-authenticates) at the
 * start of the next call. Idempotent reads (get, multiget, history, table_get, table_list,
 * job_get, job_list, status, ping) that fail on a broken connection are retried once on a
 * fresh one when `reconnect` is set in the options (the default); writes are never retried
 * (their outcome is unknown: the caller decides). Open joins die with their connection.
 *
 * Ownership. Pointers passed in are borrowed for the duration of the call. Everything
 * returned through an out-parameter is owned by the caller and freed with the function named
 * at that call, except where "owned by the batch/join" is stated. */
#ifndef STRATA_H
#define STRATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum strata_code {
	STRATA_OK = 0,
	STRATA_EINVAL = -30999, /* malformed argument or request */
	STRATA_ENOTFOUND,       /* no such table, feature, job or join */
	STRATA_EEXIST,          /* already exists */
	STRATA_ETYPE,           /* value does not match the feature's type */
	STRATA_EIO,             /* storage failure on the server */
	STRATA_ECORRUPT,        /* on-disk data failed a check */
	STRATA_ECANCELED,       /* operation cancelled */
	STRATA_ENOMEM,          /* out of memory (here or on the server) */
	STRATA_ELIMIT,          /* a server limit was exceeded (frame/value size, connections) */
	STRATA_EBUSY,           /* resource busy */
	STRATA_EPROTO,          /* malformed frame or unknown operation */
	STRATA_EAUTH,           /* authentication required or wrong token */
	STRATA_ECLOSED,         /* the server closed the connection */
	STRATA_ERANGE,          /* a time before the table's retention horizon */
	STRATA_ESTALE,          /* a replica is further behind than the read's max_lag_ms
				 * allows (the cluster client then asks the primary) */
	STRATA_EUNAVAILABLE,    /* cluster: no node of the shard could be reached within the
				 * call's timeout, or a write's connection broke after it was
				 * sent (its outcome is unknown: it may or may not be applied) */
};

struct strata_error {
	int code;
	char msg[512];
};

/* Short name of a code ("not found", or strerror for -errno). Never NULL, static. */
const char *strata_strerror(int code);

#define STRATA_NAME_MAX 64        /* table and feature names, including the NUL */
#define STRATA_TS_MIN INT64_MIN
#define STRATA_TS_MAX INT64_MAX   /* "latest" for as_of, "everything" for known_at */

/* Timestamps are microseconds since the Unix epoch. */

enum strata_type {
	STRATA_NONE = 0,
	STRATA_I64 = 1,
	STRATA_F64 = 2,
	STRATA_F32 = 3,
	STRATA_STR = 4,
	STRATA_BYTES = 5,
	STRATA_F32VEC = 6, /* f32[N] */
	STRATA_I64LIST = 7,
};

/* A typed value. STR/BYTES: `ptr` holds `len` bytes (a returned STR is also NUL-terminated
 * at ptr[len]); F32VEC: `len` floats; I64LIST: `len` int64_t. In inputs `ptr` is borrowed;
 * in results it is owned by the result (strata_result_release). */
struct strata_value {
	enum strata_type type;
	uint32_t len;
	union {
		int64_t i64;
		double f64;
		float f32;
	};
	void *ptr;
};

#define STRATA_TTL_NONE (-1)
struct strata_feature_def {
	char name[STRATA_NAME_MAX];
	enum strata_type type;
	uint32_t dim;   /* F32VEC only */
	uint16_t id;    /* assigned by the server */
	int64_t ttl_us; /* 0 = the table's ttl; > 0 own; STRATA_TTL_NONE = no freshness limit */
};

/* A table schema. Returned tables own `features`: free with strata_table_free. */
struct strata_table {
	char name[STRATA_NAME_MAX];
	char entity_column[STRATA_NAME_MAX]; /* "" = "entity" */
	uint32_t id;
	int64_t ttl_us;        /* freshness: a value older than this at the read's time is
				* reported stale, not returned; 0 = no limit */
	uint32_t max_versions; /* 0 = unlimited */
	int64_t created_us;
	uint32_t nfeatures;
	struct strata_feature_def *features;
	int64_t retention_us;  /* history kept (reads before now - retention fail with
				* STRATA_ERANGE); 0 = forever */
};
void strata_table_free(struct strata_table *t); /* frees features and t; NULL is allowed */

/* Start from STRATA_ALTER_NONE and set what changes. */
struct strata_alter {
	int64_t ttl_us;       /* -1 = unchanged */
	int64_t max_versions; /* -1 = unchanged */
	uint32_t nadd;
	const struct strata_feature_def *add;
	int64_t retention_us; /* -1 = unchanged; 0 = keep forever */
};
#define STRATA_ALTER_NONE                                                                   \
	((struct strata_alter){.ttl_us = -1, .max_versions = -1, .retention_us = -1})

/* One input cell (all pointers borrowed). */
struct strata_cell {
	const char *entity;
	size_t entity_len;
	const char *feature;
	int64_t ts;
	struct strata_value value;
};

struct strata_read_opts {
	int64_t as_of;    /* STRATA_TS_MAX = latest */
	int64_t known_at; /* STRATA_TS_MAX = everything ingested so far */
	/* Cluster reads (get, multi-get): 1 = a replica of the entity's shard may answer
	 * (round-robin over the shard's replicas), 0 = the handle's default
	 * (strata_set_replica_reads; the primary unless set). */
	int replica_ok;
	/* Bounded staleness, with replica_ok: the answering copy must hold every write
	 * acknowledged before now - max_lag_ms; a replica further behind refuses with
	 * STRATA_ESTALE and the client asks the primary instead. 0 = the handle's default
	 * (no bound unless set). */
	uint32_t max_lag_ms;
};

enum strata_status {
	STRATA_ABSENT = 0,         /* no value as of the read */
	STRATA_PRESENT = 1,        /* found: value, ts, ingest_us set */
	STRATA_STALE = 2,          /* a version older than the ttl at the read's time: ts and
				    * ingest_us set, value withheld */
	STRATA_BEFORE_HORIZON = 3, /* join row skipped (STRATA_JOIN_SKIP_BEFORE_HORIZON) */
};

/* A read result; `value.ptr` is owned by the result. found == (status == STRATA_PRESENT). */
struct strata_result {
	int found;
	int64_t ts;        /* event time (present or stale) */
	int64_t ingest_us; /* when it was written */
	struct strata_value value;
	enum strata_status status;
};
/* Frees the values of r[0..n) (not the array) and marks them not found. */
void strata_result_release(struct strata_result *r, size_t n);

struct strata_version {
	int tombstone;
	struct strata_result r;
};

enum strata_format { STRATA_FMT_AUTO, STRATA_FMT_CSV, STRATA_FMT_TSV, STRATA_FMT_JSONL };
enum strata_ts_unit { STRATA_TS_S, STRATA_TS_MS, STRATA_TS_US };

struct strata_preload {
	char table[STRATA_NAME_MAX];
	char path[4096];             /* absolute path on the server's machine */
	enum strata_format format;
	int skip_bad_rows;
	char ts_column[STRATA_NAME_MAX]; /* "" = "ts" */
	enum strata_ts_unit ts_unit;     /* for integer timestamps */
	int allow_any_ts;                /* accept integers outside 1990-2200 in ts_unit */
};
void strata_preload_init(struct strata_preload *p); /* defaults: auto, ms, "ts" */

enum strata_job_state {
	STRATA_JOB_QUEUED, STRATA_JOB_RUNNING, STRATA_JOB_DONE, STRATA_JOB_FAILED,
	STRATA_JOB_CANCELLED,
};
#define STRATA_JOB_BAD_SAMPLES 5
struct strata_job {
	uint64_t id;
	enum strata_job_state state;
	int interrupted;
	struct strata_preload req;
	int64_t submitted_us, started_us, finished_us;
	int64_t rows, cells, bad_rows;
	int64_t bytes_done, bytes_total;
	double rows_per_s, eta_s; /* eta < 0: unknown */
	int attempts;
	char phase[16];
	char error[512];
	char bad_samples[STRATA_JOB_BAD_SAMPLES][160];
};

/* ---- connections ---- */

struct strata_connect_opts {
	int connect_timeout_ms; /* default 5000 */
	int io_timeout_ms;      /* per call, waiting for the server; default 30000; 0 = none */
	const char *token;      /* shared secret (copied), NULL = no auth */
	size_t token_len;       /* 0 = strlen(token) */
	int reconnect;          /* retry idempotent reads once on a fresh connection; default 1 */
	uint32_t max_frame;     /* largest response accepted; default 1 GiB */
	int replica_reads;      /* cluster: reads may go to replicas (strata_set_replica_reads) */
	uint32_t max_lag_ms;    /* cluster: their staleness bound; 0 = none */
};
void strata_connect_opts_init(struct strata_connect_opts *o);

typedef struct strata strata;

/* Connects to "HOST:PORT" ("[v6]:PORT" too) and authenticates when a token is given.
 * A comma-separated list names seed nodes of a replicated cluster. The client asks the
 * first seed that answers for the layout (a CLUSTER request) and, when the server runs a
 * cluster, routes every entity to its shard's primary (or a replica for reads when asked):
 * one lazily opened connection per node, multi-gets, puts and joins split per node, sent
 * to all nodes before any answer is awaited, results merged back in input order. On an
 * EMOVED answer, a broken connection or a node that cannot be reached it refetches the
 * layout from any reachable node and retries reads (and writes that were not sent) until
 * the call's io_timeout_ms; a write whose connection broke after it was sent fails with
 * STRATA_EUNAVAILABLE (outcome unknown). Table, job and admin requests go to the node the
 * handle is connected to and follow its EMOVED redirect (at most 3 hops). A single server
 * (no --cluster) is used exactly as before. See docs/replication.md, "Clients". `o` may be
 * NULL for defaults. On success *out is a handle to free with strata_close. */
int strata_connect(const char *addr, const struct strata_connect_opts *o, strata **out,
		   struct strata_error *err);
/* Closes the connection and frees the handle with its open joins. NULL is allowed. Batches
 * made from it must be freed first. */
void strata_close(strata *c);

/* Default read preference of the handle for get and multi-get (read options may override
 * it per call): replica_ok lets a replica answer, max_lag_ms bounds its staleness (0 = no
 * bound). Without a cluster the single node always answers. */
void strata_set_replica_reads(strata *c, int replica_ok, uint32_t max_lag_ms);

/* The layout a cluster client routes with, as JSON (*json: free()):
 * {"clustered":bool,"version":V,"nshards":N,"slots":S,"nodes":[{"name","addr"}...],
 *  "shards":[{"shard","primary","replicas":[names],"version","epoch"?}...]}.
 * Fetched fresh from the nodes (the highest version any reachable node reports). */
int strata_cluster_layout(strata *c, char **json, struct strata_error *err);

/* Round trip without touching the store. */
int strata_ping(strata *c, struct strata_error *err);
/* Server status as a JSON document (*json: free()). */
int strata_status(strata *c, char **json, struct strata_error *err);

/* ---- table registry ---- */
int strata_table_create(strata *c, const struct strata_table *schema, struct strata_error *err);
/* *out: strata_table_free. */
int strata_table_get(strata *c, const char *name, struct strata_table **out,
		     struct strata_error *err);
/* *out: array of *n tables, each strata_table_free, the array free(). Sorted by name. */
int strata_table_list(strata *c, struct strata_table ***out, size_t *n,
		      struct strata_error *err);
int strata_table_alter(strata *c, const char *name, const struct strata_alter *a,
		       struct strata_error *err);
int strata_table_drop(strata *c, const char *name, struct strata_error *err);

/* ---- writes ---- */
/* Writes the cells as one request (atomic per shard on the server). With the server's
 * --sync always, returns only after the write is durable. */
int strata_put(strata *c, const char *table, const struct strata_cell *cells, size_t n,
	       struct strata_error *err);
/* Tombstones at `ts` for the features (nfeatures == 0: every feature). */
int strata_delete(strata *c, const char *table, const char *entity, size_t entity_len,
		  const char *const *features, size_t nfeatures, int64_t ts,
		  struct strata_error *err);

/* ---- reads ---- (opts NULL = latest, everything ingested) */
/* out[0..nfeatures): caller's array; release values with strata_result_release. */
int strata_get(strata *c, const char *table, const char *entity, size_t entity_len,
	       const char *const *features, size_t nfeatures, const struct strata_read_opts *o,
	       struct strata_result *out, struct strata_error *err);
/* out[e * nfeatures + f] for nentities x nfeatures: caller's array, strata_result_release. */
int strata_multiget(strata *c, const char *table, const char *const *entities,
		    const size_t *entity_lens, size_t nentities, const char *const *features,
		    size_t nfeatures, const struct strata_read_opts *o, struct strata_result *out,
		    struct strata_error *err);
/* Versions with from <= ts <= to, newest first, at most limit (0 = all). *out: *n versions;
 * release each .r with strata_result_release, then free(*out). */
int strata_history(strata *c, const char *table, const char *entity, size_t entity_len,
		   const char *feature, int64_t from, int64_t to, size_t limit, int64_t known_at,
		   struct strata_version **out, size_t *n, struct strata_error *err);

/* ---- pipelined batch ----
 * Queue operations (arguments are copied at once), then strata_batch_exec sends them all
 * pipelined and waits for every answer. Each queued operation has its own status; exec
 * fails only on a transport error (then every unanswered operation has that error too). A
 * batch can be cleared and reused. Over a cluster every operation is split across nodes and
 * all parts of all operations are sent before any answer is awaited (retried as the
 * synchronous calls are); exec returns 0: every operation carries its own status, and a node
 * that fails fails only the operations that needed it. */
typedef struct strata_batch strata_batch;
strata_batch *strata_batch_new(strata *c); /* NULL on out of memory */
/* Each add returns the operation's index in the batch (>= 0) or a negative code. */
int strata_batch_get(strata_batch *b, const char *table, const char *entity, size_t entity_len,
		     const char *const *features, size_t nfeatures,
		     const struct strata_read_opts *o);
int strata_batch_multiget(strata_batch *b, const char *table, const char *const *entities,
			  const size_t *entity_lens, size_t nentities,
			  const char *const *features, size_t nfeatures,
			  const struct strata_read_opts *o);
int strata_batch_put(strata_batch *b, const char *table, const struct strata_cell *cells,
		     size_t n);
int strata_batch_delete(strata_batch *b, const char *table, const char *entity,
			size_t entity_len, const char *const *features, size_t nfeatures,
			int64_t ts);
size_t strata_batch_count(const strata_batch *b);
/* Sends every queued operation and waits for all answers; executing a batch again re-sends
 * all of its operations (previous results are released). */
int strata_batch_exec(strata_batch *b, struct strata_error *err);
/* Status of operation i after exec (0 or a code; err gets the message). */
int strata_batch_status(const strata_batch *b, size_t i, struct strata_error *err);
/* Results of get/multiget i (entity-major), owned by the batch until clear/free. */
const struct strata_result *strata_batch_results(const strata_batch *b, size_t i, size_t *n);
void strata_batch_clear(strata_batch *b);
void strata_batch_free(strata_batch *b);

/* ---- streaming versioned sample join ----
 * Each pushed row (entity, ts) gets every feature as of its own ts. The server sweeps the rows
 * in chunks of `chunk_rows` (0 = 8192; at most 1000000 and 10M rows x features), each in one
 * ordered pass: a bigger chunk means fewer seeks (1M rows of 100k entities: 10x fewer than in
 * 8192-row chunks).
 * Rows travel in pushes of up to 65536 rows and results come back in push order through
 * strata_join_next, several requests in flight. Memory on both sides is bounded by the chunk
 * size as long as the caller drains results when push returns 1. Over a cluster a join
 * survives a layout change (EMOVED, a dead primary): the rows not yet returned are asked
 * again on the new layout, within the handle's io timeout. Typical loop:
 *     for each row: if (strata_join_push(j, ...) == 1) while (strata_join_next(j, &r) == 1) ...
 *     while (strata_join_next(j, &r) == 1) ...   // the rest, including the partial chunk */
typedef struct strata_join strata_join;
int strata_join_open(strata *c, const char *table, const char *const *features,
		     size_t nfeatures, int64_t known_at, size_t chunk_rows, strata_join **out,
		     struct strata_error *err);
/* Rows before the table's retention horizon fail the join with STRATA_ERANGE by default;
 * with skip = 1 they come back with status STRATA_BEFORE_HORIZON and no values. Set before
 * the first push. */
#define STRATA_JOIN_SKIP_BEFORE_HORIZON 1
/* Results without ingest_us (0), or without ts either (0; status and value are kept): less
 * to send and decode for a caller that has no use for them. */
#define STRATA_JOIN_NO_INGEST 2
#define STRATA_JOIN_NO_TIMES 4
int strata_join_open2(strata *c, const char *table, const char *const *features,
		      size_t nfeatures, int64_t known_at, size_t chunk_rows, int flags,
		      strata_join **out, struct strata_error *err);
/* Queues a row (entity copied); sends the chunk when full. Returns 0, 1 when result rows are
 * ready to be read with strata_join_next, or an error. */
int strata_join_push(strata_join *j, const char *entity, size_t entity_len, int64_t ts,
		     struct strata_error *err);
/* Sends the partial chunk now, to be swept on its own (more rows may follow). */
int strata_join_flush(strata_join *j, struct strata_error *err);
/* Next result row in push order: returns 1 and sets *row to nfeatures results (owned by the
 * join, valid until the next call on it), 0 when every pushed row has been returned (a
 * partial chunk is sent first), or an error. Blocks while the row's chunk is in flight. */
int strata_join_next(strata_join *j, const struct strata_result **row,
		     struct strata_error *err);
/* Rows pushed and not yet returned by strata_join_next. */
size_t strata_join_pending(const strata_join *j);
size_t strata_join_nfeatures(const strata_join *j);
/* Closes the join on the server (if the connection is alive) and frees it. NULL allowed. */
void strata_join_close(strata_join *j);

/* ---- preload jobs ---- */
int strata_preload_submit(strata *c, const struct strata_preload *req, uint64_t *id,
			  struct strata_error *err);
int strata_job_get(strata *c, uint64_t id, struct strata_job *out, struct strata_error *err);
/* *out: array of *n jobs, newest first; free(). */
int strata_job_list(strata *c, struct strata_job **out, size_t *n, struct strata_error *err);
int strata_job_cancel(strata *c, uint64_t id, struct strata_error *err);

/* ---- administration ---- */
/* Runs `action` on the server's store and returns its JSON report (*json: free()):
 * "stats" (tables, keys, sizes, jobs), "verify" (reads and checks every version; takes as
 * long as a full scan) or "backup" (a consistent checkpoint written to `path`, an absolute
 * directory on the server's machine that must not exist yet). */
int strata_admin(strata *c, const char *action, const char *path, char **json,
		 struct strata_error *err);

/* ---- timestamps ---- */
/* Parses a timestamp as the CLI does: ISO-8601 ("2026-11-01T10:00:00Z", fractions and
 * offsets allowed), "now", or an integer in `unit`; *out_us is microseconds since the epoch.
 * An integer that lands outside 1990..2200 in `unit` (seconds given as ms, microseconds as
 * ms) is refused with STRATA_EINVAL and a message naming the unit that would fit, unless
 * allow_any is set. Returns 0 or STRATA_EINVAL (err may be NULL). */
int strata_ts_parse(const char *s, enum strata_ts_unit unit, int allow_any, int64_t *out_us,
		    struct strata_error *err);

#ifdef __cplusplus
}
#endif

#endif
