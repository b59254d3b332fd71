/* Row cache (see kv_cache.h): 256 stripes, each a chained hash table with a CLOCK list, a
 * byte budget and a version counter, behind one mutex.
 *
 * The hit path is a pointer chase into a table far larger than the CPU caches, so it is kept
 * to as few cache lines as possible (docs/server.md, "The serving hot path"): at most one
 * entry per bucket on average (power-of-two buckets, a mask instead of a division); a hit
 * sets a reference bit instead of moving the entry to the front of a list (which touched
 * both neighbours, two more misses), and eviction gives referenced entries a second chance
 * (CLOCK); each entry has an offset table, so a feature's record is found without walking
 * the ones before it. */
#include "store/kv_cache.h"
#include "store/kv_int.h"
#include "store/kv_value.h"

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NSTRIPES 256
#define HDR 21 /* per-feature record header */

struct rc_entry {
	struct rc_entry *hnext;           /* bucket chain */
	struct rc_entry *lprev, *lnext;   /* CLOCK list, newest first */
	uint64_t hash, gen;
	uint32_t table_id, nrow, size;    /* size: bytes charged to the budget */
	uint16_t elen;
	uint8_t ref;                      /* hit since it was last passed over by eviction */
	char data[];                      /* entity; nrow u32 offsets (from data) of the
					     records; per feature (HDR bytes): found u8, ts i64,
					     ingest i64, len u32; encoded value */
};

struct rc_stripe {
	pthread_mutex_t lock;
	uint64_t version;                 /* bumped by every invalidation */
	struct rc_entry **buckets;
	size_t nbuckets, nentries, bytes;
	struct rc_entry *lru_head, *lru_tail;
	uint64_t hits, misses;
};

struct kv_rcache {
	size_t stripe_budget;
	_Atomic uint64_t gen;
	struct rc_stripe stripes[NSTRIPES];
};

int kv_rcache_create(size_t bytes, struct kv_rcache **out)
{
	*out = NULL;
	if (!bytes)
		return 0;
	struct kv_rcache *c = calloc(1, sizeof(*c));
	if (!c)
		return ST_ENOMEM;
	c->stripe_budget = bytes / NSTRIPES;
	atomic_store(&c->gen, 1);
	for (int i = 0; i < NSTRIPES; i++) {
		struct rc_stripe *s = &c->stripes[i];
		pthread_mutex_init(&s->lock, NULL);
		s->nbuckets = 64; /* a power of two */
		s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
		if (!s->buckets) {
			kv_rcache_free(c);
			return ST_ENOMEM;
		}
	}
	*out = c;
	return 0;
}

void kv_rcache_free(struct kv_rcache *c)
{
	if (!c)
		return;
	for (int i = 0; i < NSTRIPES; i++) {
		struct rc_stripe *s = &c->stripes[i];
		for (struct rc_entry *e = s->lru_head, *n; e; e = n) {
			n = e->lnext;
			free(e);
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->lock);
	}
	free(c);
}

static uint64_t rc_hash(uint32_t table_id, const char *entity, size_t elen)
{
	return XXH3_64bits_withSeed(entity, elen, table_id);
}

static struct rc_stripe *stripe_of(struct kv_rcache *c, uint64_t h)
{
	return &c->stripes[(h >> 56) % NSTRIPES];
}

static size_t bucket_of(const struct rc_stripe *s, uint64_t h)
{
	return h & (s->nbuckets - 1);
}

/* Finds the entry; returns the link pointing at it (for unlinking) or NULL. */
static struct rc_entry **find(struct rc_stripe *s, uint64_t h, uint32_t table_id,
			      const char *entity, size_t elen)
{
	struct rc_entry **pp = &s->buckets[bucket_of(s, h)];
	for (; *pp; pp = &(*pp)->hnext) {
		struct rc_entry *e = *pp;
		if (e->hash == h && e->table_id == table_id && e->elen == elen &&
		    !memcmp(e->data, entity, elen))
			return pp;
	}
	return NULL;
}

static void lru_unlink(struct rc_stripe *s, struct rc_entry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		s->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		s->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_push_front(struct rc_stripe *s, struct rc_entry *e)
{
	e->lprev = NULL;
	e->lnext = s->lru_head;
	if (s->lru_head)
		s->lru_head->lprev = e;
	s->lru_head = e;
	if (!s->lru_tail)
		s->lru_tail = e;
}

static void remove_entry(struct rc_stripe *s, struct rc_entry **pp)
{
	struct rc_entry *e = *pp;
	*pp = e->hnext;
	lru_unlink(s, e);
	s->nentries--;
	s->bytes -= e->size;
	free(e);
}

/* Slot i's record, through the offset table. */
static const char *slot(const struct rc_entry *e, uint32_t i)
{
	uint32_t off;
	memcpy(&off, e->data + e->elen + (size_t)i * 4, 4);
	return e->data + off;
}

uintptr_t kv_rcache_locate(struct kv_rcache *c, uint32_t table_id, const char *entity,
			   size_t elen)
{
	if (!c)
		return 0;
	uint64_t h = rc_hash(table_id, entity, elen);
	struct rc_stripe *s = stripe_of(c, h);
	pthread_mutex_lock(&s->lock);
	uintptr_t e = (uintptr_t)s->buckets[bucket_of(s, h)];
	pthread_mutex_unlock(&s->lock);
	return e;
}

void kv_rcache_prefetch(uintptr_t where)
{
	/* No lock here: a locked instruction after a prefetch waits for it, which made the
	 * prefetches of a batch as serial as the misses they were meant to overlap. A prefetch
	 * of memory freed meanwhile is harmless (it never faults). */
	if (!where)
		return;
	for (int i = 0; i < 6; i++) /* the header and entity, the offsets, the first records */
		__builtin_prefetch((const void *)(where + 64 * (uintptr_t)i));
}

int kv_rcache_lookup(struct kv_rcache *c, uint32_t table_id, const char *entity, size_t elen,
		     const uint32_t *idx, const int64_t *ttls, size_t n, int64_t horizon,
		     int64_t now, struct kv_result *out, struct kv_rc_ticket *t)
{
	if (!c)
		return 0;
	uint64_t h = rc_hash(table_id, entity, elen);
	struct rc_stripe *s = stripe_of(c, h);
	uint64_t gen = atomic_load(&c->gen);
	int hit = 0;
	pthread_mutex_lock(&s->lock);
	struct rc_entry **pp = find(s, h, table_id, entity, elen);
	if (pp && (*pp)->gen != gen) {
		remove_entry(s, pp); /* from before a table-wide change */
		pp = NULL;
	}
	if (pp) {
		struct rc_entry *e = *pp;
		hit = 1;
		for (size_t i = 0; i < n && hit; i++) {
			if (idx[i] >= e->nrow) { /* cannot happen: alter bumps the generation */
				hit = 0;
				break;
			}
			const char *p = slot(e, idx[i]);
			struct kv_result *r = &out[i];
			memset(r, 0, sizeof(*r));
			if (!p[0])
				continue;
			uint32_t len;
			int64_t ts, ingest;
			memcpy(&ts, p + 1, 8);
			memcpy(&ingest, p + 9, 8);
			memcpy(&len, p + 17, 4);
			if (kv_result_stamp(r, ttls[i], horizon, now, ts, ingest) != KV_PRESENT)
				continue; /* aged since it was cached */
			if (kv_value_decode(p + HDR, len, &r->value) != 0) {
				kv_result_release(out, i);
				hit = 0;
				break;
			}
			r->found = 1;
		}
		if (hit) {
			e->ref = 1;
			s->hits++;
		}
	}
	if (!hit) {
		s->misses++;
		t->hash = h;
		t->stripe_version = s->version;
		t->gen = gen;
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

static void grow(struct rc_stripe *s)
{
	size_t nb = s->nbuckets * 2;
	struct rc_entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < s->nbuckets; i++)
		for (struct rc_entry *e = s->buckets[i], *n; e; e = n) {
			n = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
}

void kv_rcache_insert(struct kv_rcache *c, const struct kv_rc_ticket *t, uint32_t table_id,
		      const char *entity, size_t elen, const struct kv_result *row, size_t nrow)
{
	if (!c || elen > UINT16_MAX)
		return;
	size_t size = offsetof(struct rc_entry, data) + elen + nrow * 4;
	for (size_t i = 0; i < nrow; i++)
		size += HDR + (row[i].found ? kv_value_encoded_len(&row[i].value) : 0);
	if (size > c->stripe_budget / 4)
		return; /* a huge row would flush a stripe */
	struct rc_entry *e = malloc(size);
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
	e->hash = t->hash;
	e->gen = t->gen;
	e->table_id = table_id;
	e->nrow = (uint32_t)nrow;
	e->size = (uint32_t)size;
	e->elen = (uint16_t)elen;
	memcpy(e->data, entity, elen);
	char *offs = e->data + elen;
	char *p = offs + nrow * 4;
	for (size_t i = 0; i < nrow; i++) {
		uint32_t len = row[i].found ? (uint32_t)kv_value_encoded_len(&row[i].value) : 0;
		uint32_t off = (uint32_t)(p - e->data);
		memcpy(offs + i * 4, &off, 4);
		p[0] = (char)row[i].found;
		memcpy(p + 1, &row[i].ts, 8);
		memcpy(p + 9, &row[i].ingest_us, 8);
		memcpy(p + 17, &len, 4);
		if (len)
			kv_value_encode(&row[i].value, p + HDR);
		p += HDR + len;
	}
	ST_ASSERT((size_t)(p - (char *)e) == size);
	struct rc_stripe *s = stripe_of(c, t->hash);
	pthread_mutex_lock(&s->lock);
	if (s->version != t->stripe_version || atomic_load(&c->gen) != t->gen) {
		pthread_mutex_unlock(&s->lock); /* a write happened meanwhile: ours may be stale */
		free(e);
		return;
	}
	struct rc_entry **pp = find(s, t->hash, table_id, entity, elen);
	if (pp)
		remove_entry(s, pp);
	if (s->nentries >= s->nbuckets)
		grow(s);
	e->hnext = s->buckets[bucket_of(s, e->hash)];
	s->buckets[bucket_of(s, e->hash)] = e;
	lru_push_front(s, e);
	s->nentries++;
	s->bytes += size;
	while (s->bytes > c->stripe_budget && s->lru_tail && s->lru_tail != e) {
		struct rc_entry *v = s->lru_tail;
		if (v->ref) { /* read since it was last passed over: a second chance */
			v->ref = 0;
			lru_unlink(s, v);
			lru_push_front(s, v);
			continue;
		}
		remove_entry(s, find(s, v->hash, v->table_id, v->data, v->elen));
	}
	pthread_mutex_unlock(&s->lock);
}

void kv_rcache_invalidate(struct kv_rcache *c, uint32_t table_id, const char *entity,
			  size_t elen)
{
	if (!c)
		return;
	uint64_t h = rc_hash(table_id, entity, elen);
	struct rc_stripe *s = stripe_of(c, h);
	pthread_mutex_lock(&s->lock);
	s->version++;
	struct rc_entry **pp = find(s, h, table_id, entity, elen);
	if (pp)
		remove_entry(s, pp);
	pthread_mutex_unlock(&s->lock);
}

void kv_rcache_bump(struct kv_rcache *c)
{
	if (c)
		atomic_fetch_add(&c->gen, 1);
}

void kv_rcache_stats(struct kv_rcache *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes)
{
	*hits = *misses = *bytes = 0;
	for (int i = 0; c && i < NSTRIPES; i++) {
		struct rc_stripe *s = &c->stripes[i];
		pthread_mutex_lock(&s->lock);
		*hits += s->hits;
		*misses += s->misses;
		*bytes += s->bytes;
		pthread_mutex_unlock(&s->lock);
	}
}
