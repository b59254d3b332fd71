/* The version scanner: walks the versions of one (entity, feature) newest first, one
 * "group" (all writes of one event time) at a time, applying max_versions, ttl and known-at.
 * Every read kind (get, multi-get, history, join) is built on it so the rules live in one
 * place. Invariants: groups are visited in strictly decreasing event time; `rank` counts
 * every group visited from the newest (when started from the top), whatever known_at says. */
#ifndef KV_SCAN_H
#define KV_SCAN_H

#include "store/kv_int.h"

struct kv_rules {
	int64_t ttl_us;
	uint32_t max_versions;
	int64_t now;
	int64_t known_at;
};

struct kv_scan {
	rocksdb_iterator_t *it; /* borrowed */
	int total_order;        /* `it` is a total-order iterator: may step across entities */
	const struct kv_rules *rules;
	char prefix[KV_KEY_MAX];
	size_t plen;
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
 * table has max_versions, so that ranks are counted). */
void kv_scan_seek(struct kv_scan *s, uint32_t table_id, const char *entity, size_t elen,
		  uint16_t fid, int64_t start);

/* Moves forward to the group that answers an as-of read at T (T must not increase between
 * calls) and fills r: found or not. Returns 0 or ST_ECORRUPT/ST_ENOMEM. */
int kv_scan_asof(struct kv_scan *s, int64_t T, struct kv_result *r);

/* Moves to the next group. */
void kv_scan_next(struct kv_scan *s);

/* Does the current group still exist under the rules (rank and ttl)? */
int kv_scan_alive(const struct kv_scan *s);

#endif
