/* The ring of a shard's recently committed write batches, kept in memory so that the
 * replication streams of a primary take each batch from there instead of reading it back
 * from the WAL once per replica. Store-internal (kv_repl.c reads it, kv_db.c fills it);
 * declared apart so that its unit test drives it directly.
 *
 * Batches are held by their first sequence in a power-of-two table (slot = seq & mask). All
 * batches held start in [low, low + slots), so no two held batches share a slot; a batch
 * published below `low`, one larger than the byte cap, or one whose copy fails is simply
 * not held: a reader asking for it is told so and reads the WAL instead. Publications may
 * arrive out of sequence order (concurrent writers return from RocksDB in any order), so a
 * sequence not held yet may still come: "not yet" (kv_ring_take) versus "behind" (evicted, or
 * never published while the ring was empty). */
#ifndef KV_RING_H
#define KV_RING_H

#include <stddef.h>
#include <stdint.h>

struct kv_ring;

enum kv_ring_take_rc {
	KV_RING_HIT = 0,    /* *out holds one merged batch starting at next */
	KV_RING_NOT_YET = 1, /* next is not held, but may be published later */
	KV_RING_BEHIND = 2, /* next is below what the ring holds (or the ring is empty) */
};

/* A growable buffer owned by the reader (kv_ring_take fills it, the reader frees p). */
struct kv_ring_buf {
	char *p;
	size_t n, cap;
};

/* Makes b hold at least n bytes (st_grow). 0 or -1 when out of memory (b unchanged). */
int kv_ring_buf_reserve(struct kv_ring_buf *b, size_t n);

/* slots: a power of two >= 2 (24 bytes each); max_bytes (< 4 GiB): the cap on the bytes of
 * the batches held. NULL when out of memory or for bad sizes. */
struct kv_ring *kv_ring_new(size_t slots, size_t max_bytes);
void kv_ring_free(struct kv_ring *ring); /* NULL allowed */

/* Holds a copy of the committed RocksDB write batch `data` (its header carries its first
 * sequence and count). Evicts the oldest batches as needed. Never fails: a batch that
 * cannot be held is dropped (counted) and read from the WAL instead. Thread-safe. */
void kv_ring_publish(struct kv_ring *ring, const void *data, size_t len);

/* Forgets every batch (a resync replaced the shard's copy). */
void kv_ring_clear(struct kv_ring *ring);

/* Copies the batch starting exactly at `next`, and the held batches that continue it
 * without a gap, into *out as one write batch (header: next and the total count; records
 * concatenated, as RocksDB merges a write group) of at most max_bytes (the first batch
 * always). *nbatches gets the number of batches merged. */
enum kv_ring_take_rc kv_ring_take(struct kv_ring *ring, uint64_t next, size_t max_bytes,
				  struct kv_ring_buf *out, unsigned *nbatches);

/* Waits until a batch starting at `next` is held or the wall clock (st_now_us) passes
 * deadline_us; 1 when it is held. A publication wakes only the waiters whose `next` it
 * starts at (one wake per run of batches a reader can take, not per write). */
int kv_ring_wait(struct kv_ring *ring, uint64_t next, int64_t deadline_us);

struct kv_ring_stats {
	uint64_t published, dropped, evicted, held_bytes, held_batches;
};
void kv_ring_stats(struct kv_ring *ring, struct kv_ring_stats *out);

#endif
