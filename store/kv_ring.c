/* The in-memory ring of a shard's recently committed write batches (see kv_ring.h): filled by
 * the write path, read by the WAL tails of replication streams. */
#include "store/kv_ring.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/st_fault.h"
#include "common/st_grow.h"
#include "common/st_time.h"
#include "store/kv.h"

#define RING_WAITERS 8

struct ring_slot { /* 24 bytes: a ring has many */
	uint64_t seq; /* 0 = empty */
	uint32_t count;
	uint32_t len;
	char *data;
};

struct kv_ring {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct ring_slot *slots; /* (mu) */
	size_t mask;
	size_t max_bytes;
	size_t bytes;     /* (mu) held */
	size_t held;      /* (mu) batches held */
	uint64_t low;     /* (mu) every held batch starts at or after it; 0 = nothing held yet */
	uint64_t waiting[RING_WAITERS]; /* (mu) the `next` of each waiting reader (0 = free) */
	int overflow;     /* (mu) waiters without a slot: every publication wakes */
	uint64_t published, dropped, evicted; /* (mu) */
};

struct kv_ring *kv_ring_new(size_t slots, size_t max_bytes)
{
	if (slots < 2 || (slots & (slots - 1)) || max_bytes > UINT32_MAX)
		return NULL;
	struct kv_ring *r = calloc(1, sizeof(*r));
	if (!r || !(r->slots = calloc(slots, sizeof(*r->slots)))) {
		free(r);
		return NULL;
	}
	r->mask = slots - 1;
	r->max_bytes = max_bytes;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	return r;
}

static void free_slot(struct kv_ring *r, struct ring_slot *s)
{
	r->bytes -= s->len;
	r->held--;
	free(s->data);
	memset(s, 0, sizeof(*s));
}

static void clear_locked(struct kv_ring *r)
{
	for (size_t i = 0; i <= r->mask && r->held; i++)
		if (r->slots[i].seq)
			free_slot(r, &r->slots[i]);
	r->low = 0;
}

void kv_ring_free(struct kv_ring *r)
{
	if (!r)
		return;
	clear_locked(r);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	free(r->slots);
	free(r);
}

void kv_ring_clear(struct kv_ring *r)
{
	pthread_mutex_lock(&r->mu);
	clear_locked(r);
	pthread_mutex_unlock(&r->mu);
}

/* Moves low up to `to`, evicting what starts below it (mu held). */
static void advance_low(struct kv_ring *r, uint64_t to)
{
	if (to - r->low > r->mask) {
		r->evicted += r->held;
		clear_locked(r);
		r->low = to;
		return;
	}
	for (; r->low < to; r->low++) {
		struct ring_slot *s = &r->slots[r->low & r->mask];
		if (s->seq == r->low) {
			free_slot(r, s);
			r->evicted++;
		}
	}
}

/* Are readers waiting for `seq`? (mu held) */
static int waited_for(const struct kv_ring *r, uint64_t seq)
{
	int wake = r->overflow > 0;
	for (int i = 0; i < RING_WAITERS && !wake; i++)
		wake = r->waiting[i] == seq;
	return wake;
}

void kv_ring_publish(struct kv_ring *r, const void *data, size_t len)
{
	uint64_t seq;
	uint32_t count;
	if (kv_batch_header(data, len, &seq, &count))
		return;
	/* copied before the lock: writers do not wait for each other's memcpy */
	char *copy = ST_FAULT("ring.publish.drop") ? NULL : malloc(len);
	if (copy)
		memcpy(copy, data, len);
	pthread_mutex_lock(&r->mu);
	r->published++;
	if (!r->held && !r->low)
		r->low = seq;
	uint64_t end = seq + count; /* one past the batch's last sequence */
	if (!copy || !seq || !count || seq < r->low || len > r->max_bytes)
		goto drop;
	if (end - r->low > r->mask + 1)
		advance_low(r, end - (r->mask + 1));
	while (r->bytes + len > r->max_bytes && r->low < seq)
		advance_low(r, r->low + 1);
	if (r->bytes + len > r->max_bytes || seq < r->low)
		goto drop;
	/* every held batch starts in [low, low + slots): the slot is free unless the same
	 * sequence comes twice, and then the newer batch is the one the WAL holds */
	struct ring_slot *s = &r->slots[seq & r->mask];
	if (s->seq)
		free_slot(r, s);
	*s = (struct ring_slot){seq, count, (uint32_t)len, copy};
	r->bytes += len;
	r->held++;
	int wake = waited_for(r, seq);
	pthread_mutex_unlock(&r->mu);
	/* after the unlock: a reader woken under mu would block on it at once */
	if (wake)
		pthread_cond_broadcast(&r->cond);
	return;
drop:
	r->dropped++;
	pthread_mutex_unlock(&r->mu);
	free(copy);
}

int kv_ring_buf_reserve(struct kv_ring_buf *b, size_t n)
{
	return st_grow((void **)&b->p, &b->cap, n, 1, 4096);
}

static const struct ring_slot *held_at(const struct kv_ring *r, uint64_t seq)
{
	const struct ring_slot *s = &r->slots[seq & r->mask];
	return s->seq == seq && seq >= r->low ? s : NULL;
}

enum kv_ring_take_rc kv_ring_take(struct kv_ring *r, uint64_t next, size_t max_bytes,
				  struct kv_ring_buf *out, unsigned *nbatches)
{
	*nbatches = 0;
	pthread_mutex_lock(&r->mu);
	const struct ring_slot *s = held_at(r, next);
	if (!s) {
		enum kv_ring_take_rc rc = !r->held || next < r->low ? KV_RING_BEHIND
								   : KV_RING_NOT_YET;
		pthread_mutex_unlock(&r->mu);
		return rc;
	}
	if (kv_ring_buf_reserve(out, s->len)) {
		pthread_mutex_unlock(&r->mu);
		return KV_RING_NOT_YET; /* out of memory: the WAL path will do (after its wait) */
	}
	memcpy(out->p, s->data, s->len);
	out->n = s->len;
	uint64_t at = next + s->count;
	unsigned n = 1;
	while ((s = held_at(r, at)) && out->n + s->len - 12 <= max_bytes &&
	       !kv_ring_buf_reserve(out, out->n + s->len - 12)) {
		memcpy(out->p + out->n, s->data + 12, s->len - 12);
		out->n += s->len - 12;
		at += s->count;
		n++;
	}
	pthread_mutex_unlock(&r->mu);
	uint32_t total = (uint32_t)(at - next);
	for (int i = 0; i < 4; i++)
		out->p[8 + i] = (char)(total >> (8 * i));
	*nbatches = n;
	return KV_RING_HIT;
}

int kv_ring_wait(struct kv_ring *r, uint64_t next, int64_t deadline_us)
{
	struct timespec ts = {deadline_us / 1000000, (deadline_us % 1000000) * 1000};
	pthread_mutex_lock(&r->mu);
	int slot = -1;
	for (int i = 0; i < RING_WAITERS && slot < 0; i++)
		if (!r->waiting[i])
			slot = i;
	if (slot >= 0)
		r->waiting[slot] = next;
	else
		r->overflow++;
	while (!held_at(r, next) && st_now_us() < deadline_us)
		if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
			break;
	int held = held_at(r, next) != NULL;
	if (slot >= 0)
		r->waiting[slot] = 0;
	else
		r->overflow--;
	pthread_mutex_unlock(&r->mu);
	return held;
}

void kv_ring_stats(struct kv_ring *r, struct kv_ring_stats *out)
{
	pthread_mutex_lock(&r->mu);
	*out = (struct kv_ring_stats){r->published, r->dropped, r->evicted, r->bytes, r->held};
	pthread_mutex_unlock(&r->mu);
}
