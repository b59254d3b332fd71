/* Row cache: the latest value of every feature of an entity, decoded once and kept in memory,
 * for the serving hot path (latest reads, known-at = now). A hit costs one hash lookup under
 * a stripe lock instead of a RocksDB seek and a walk over versions.
 *
 * Consistency: a writer invalidates after its RocksDB write and bumps its stripe's version;
 * a reader notes the stripe version (and the global generation) before reading RocksDB and
 * inserts only if neither moved, so a stale row can never be inserted after an invalidation.
 * Table-wide events (alter, drop, preload ingestion, replicated batches) bump the global
 * generation. Freshness is applied at every hit (ttl against the current time, the retention
 * horizon; the latest version always has rank 1). */
#ifndef KV_CACHE_H
#define KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store/kv.h"

struct kv_rcache;

struct kv_rc_ticket {
	uint64_t hash;
	uint64_t stripe_version;
	uint64_t gen;
};

/* bytes == 0: no cache (*out = NULL; every call below accepts NULL and does nothing). */
int kv_rcache_create(size_t bytes, struct kv_rcache **out);
void kv_rcache_free(struct kv_rcache *c);

/* Looks up (table_id, entity). On a hit fills out[i] from row slot idx[i] (i < n), applying
 * freshness (ttls[i], the horizon) at `now` with kv_freshness, and returns 1. On a miss fills
 * *t for a later insert and returns 0. */
int kv_rcache_lookup(struct kv_rcache *c, uint32_t table_id, const char *entity, size_t elen,
		     const uint32_t *idx, const int64_t *ttls, size_t n, int64_t horizon,
		     int64_t now, struct kv_result *out, struct kv_rc_ticket *t);

/* Prefetching a batch of lookups: kv_rcache_locate gives where the entry of (table_id, entity)
 * would start (the head of its bucket, 0 = none) and kv_rcache_prefetch starts loading it
 * into the CPU caches; locate every entry of the batch first, then prefetch them all. The
 * address is only a hint: it may be freed by the time it is prefetched. */
uintptr_t kv_rcache_locate(struct kv_rcache *c, uint32_t table_id, const char *entity,
			   size_t elen);
void kv_rcache_prefetch(uintptr_t where);

/* Inserts the row (the latest result of each of the table's nrow features, in table order,
 * read without freshness: ttl is applied at every hit) unless the ticket is stale. */
void kv_rcache_insert(struct kv_rcache *c, const struct kv_rc_ticket *t, uint32_t table_id,
		      const char *entity, size_t elen, const struct kv_result *row, size_t nrow);

/* After a write to (table_id, entity) is durable in RocksDB. */
void kv_rcache_invalidate(struct kv_rcache *c, uint32_t table_id, const char *entity,
			  size_t elen);
/* After a table-wide change. */
void kv_rcache_bump(struct kv_rcache *c);

void kv_rcache_stats(struct kv_rcache *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes);

#endif
