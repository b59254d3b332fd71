/* The version scanner: walks the versions of one (entity, feature) newest first, one
 * "group" (all writes of one event time) at a time, applying max_versions and known-at; the
 * freshness rule (kv_freshness) and the retention horizon are applied to what it finds.
 * Every read kind (get, multi-get, history, join, table scan) is built on it so the rules
 * live in one place. Invariants: groups are visited in strictly decreasing event time;
 * `rank` counts every group visited from the newest (when started from the top), whatever
 * known_at says; a storage error or failed allocation ends the walk (valid = 0) and stays in
 * `err`, so a failure can never read as "no more versions". */
#ifndef KV_SCAN_H
#define KV_SCAN_H

#include "store/kv_int.h"

struct kv_rules {
	uint32_t max_versions;
	int64_t now;      /* the read's clock: latest reads are at T = now */
	int64_t known_at;
	int64_t horizon;  /* retention horizon (ST_TS_MIN: none) */
};

struct kv_scan {
	rocksdb_iterator_t *it; /* borrowed */
	int total_order;        /* `it` is a total-order iterator: may step across entities */
	const struct kv_rules *rules;
	int64_t ttl_us;         /* freshness of the current feature (0 = none) */
	int err;                /* 0, ST_EIO (iterator) or ST_ENOMEM; sticky */
	char why[160];          /* with ST_EIO: RocksDB's reason (empty for the fault point) */
	char prefix[KV_KEY_MAX];
	size_t plen;
	rocksdb_iterator_t *prefix_it; /* the iterator `prefix` was last sought on (see step_to) */
	/* Prefix (entity) mode only: the entity (table | elen | entity) that seek_it was last
	 * positioned in by a real Seek(). Only there is its view of the keys complete, so only
	 * there may it step instead of seeking (see step_to). */
	rocksdb_iterator_t *seek_it;
	char seek_ent[6 + KV_ENTITY_MAX];
	size_t seek_elen;
	/* current group */
	int valid;      /* a group is loaded */
	int64_t ts;     /* its event time */
	uint32_t rank;  /* 1 = newest group (meaningful when max_versions is set) */
	int has;        /* some write of this group was ingested <= known_at */
	int tombstone;  /* the chosen write is a tombstone */
	int64_t ingest; /* the chosen write's ingest time */
	char *val;      /* the chosen write's encoded value (owned, reused) */
	size_t vlen, vcap;
};

void kv_scan_init(struct kv_scan *s, rocksdb_iterator_t *it, const struct kv_rules *rules);
void kv_scan_release(struct kv_scan *s);

/* Positions on the newest group with event time <= start (or the very newest when the
 * table has max_versions, so that ranks are counted) of feature fid, whose freshness limit
 * is ttl_us. */
void kv_scan_seek(struct kv_scan *s, uint32_t table_id, const char *entity, size_t elen,
		  uint16_t fid, int64_t ttl_us, int64_t start);

/* Moves forward to the group that answers an as-of read at T (T must not increase between
 * calls; ST_TS_MAX = latest) and fills r with its status. Returns 0, or the scanner's error
 * (ST_EIO, ST_ENOMEM) or ST_ECORRUPT for a value that does not decode. */
int kv_scan_asof(struct kv_scan *s, int64_t T, struct kv_result *r);

/* Moves to the next group. */
void kv_scan_next(struct kv_scan *s);

/* Does the current group exist under the rules (loaded, rank within max_versions)? */
int kv_scan_alive(const struct kv_scan *s);

/* Calls cb for each version a history between from and to lists, newest first, from a
 * scanner seeked with kv_scan_history_start: the versions newer than the horizon, then the
 * one in effect at the horizon if it is a value fresh there. Returns cb's non-zero return,
 * the scanner's error, or 0. */
typedef int (*kv_hist_cb)(void *arg, const struct kv_scan *s);
int64_t kv_scan_history_start(const struct kv_scan *s, int64_t to);
int kv_scan_history(struct kv_scan *s, int64_t from, int64_t to, kv_hist_cb cb, void *arg);

/* Fills err for a failure rc of scanner s (ST_EIO, ST_ENOMEM, ST_ECORRUPT) naming the
 * operation, the shard, the entity and RocksDB's reason; returns rc. */
int kv_scan_error(struct st_error *err, const struct kv_scan *s, int rc, int shard,
		  const char *what, const char *entity, size_t elen);

/* The current group as a version (value decoded and owned by v). Returns 0, ST_ECORRUPT or
 * ST_ENOMEM. */
int kv_scan_version(const struct kv_scan *s, struct kv_version *v);

#endif
