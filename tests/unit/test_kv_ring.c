/* The ring of recently committed batches (store/kv_ring.c) and the WAL tails that read it
 * (store/kv_repl.c): wraparound and the byte cap, out-of-order publications against a model
 * (every batch delivered once, in order, from the ring or from a stand-in WAL), a producer
 * and a consumer thread, and a real store whose tail goes from the ring to the WAL when it
 * falls behind (and when a publication is lost: fault ring.publish.drop) and back, with
 * concurrent writers, its batches applied to a replica that must end up identical.
 * Seed: STRATA_SEED (printed on failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_time.h"
#include "store/kv.h"
#include "store/kv_ring.h"
#include "tests/unit/test_util.h"

static unsigned seed;
static uint64_t rng;

static uint64_t rnd(void)
{
	return tu_xorshift(&rng);
}

/* A stand-in write batch: the RocksDB header (seq u64le, count u32le), then one 8-byte
 * "record" per sequence holding that sequence, so a merged batch is checkable byte by byte. */
struct fake {
	uint64_t seq;
	uint32_t count;
	size_t len;
	unsigned char data[12 + 8 * 8];
};

static void fake_make(struct fake *f, uint64_t seq, uint32_t count)
{
	f->seq = seq;
	f->count = count;
	f->len = 12 + 8 * (size_t)count;
	for (int i = 0; i < 8; i++)
		f->data[i] = (unsigned char)(seq >> (8 * i));
	for (int i = 0; i < 4; i++)
		f->data[8 + i] = (unsigned char)(count >> (8 * i));
	for (uint32_t k = 0; k < count; k++)
		memcpy(f->data + 12 + 8 * k, &(uint64_t){seq + k}, 8);
}

/* Checks a merged batch taken at `next`; returns its count. */
static uint32_t check_merged(const struct kv_ring_buf *b, uint64_t next)
{
	const unsigned char *p = (const unsigned char *)b->p;
	uint64_t seq = 0;
	for (int i = 7; i >= 0; i--)
		seq = (seq << 8) | p[i];
	uint32_t count = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
			 (uint32_t)p[11] << 24;
	if (seq != next || count == 0 || b->n != 12 + 8 * (size_t)count)
		fail_msg("seed %u: merged batch at %llu: header %llu +%u, %zu bytes", seed,
			 (unsigned long long)next, (unsigned long long)seq, count, b->n);
	for (uint32_t k = 0; k < count; k++) {
		uint64_t v;
		memcpy(&v, p + 12 + 8 * k, 8);
		if (v != next + k)
			fail_msg("seed %u: merged batch at %llu: record %u holds %llu", seed,
				 (unsigned long long)next, k, (unsigned long long)v);
	}
	return count;
}

static void test_wraparound_and_caps(void **state)
{
	struct kv_ring *r = kv_ring_new(8, 1 << 20);
	assert_non_null(r);
	assert_null(kv_ring_new(6, 100)); /* not a power of two */
	assert_null(kv_ring_new(8, (size_t)UINT32_MAX + 1)); /* lengths are 32-bit */
	struct kv_ring_buf b = {0};
	unsigned nb;
	struct fake f;
	assert_int_equal(kv_ring_take(r, 1, 1 << 20, &b, &nb), KV_RING_BEHIND); /* empty */
	/* 20 batches of 2 sequences (1, 3, ..., 39) through 8 slots */
	for (uint64_t s = 1; s < 40; s += 2) {
		fake_make(&f, s, 2);
		kv_ring_publish(r, f.data, f.len);
	}
	/* only sequences in [low, low + 8) are held: the last 4 batches, from 33 */
	assert_int_equal(kv_ring_take(r, 31, 1 << 20, &b, &nb), KV_RING_BEHIND);
	assert_int_equal(kv_ring_take(r, 1, 1 << 20, &b, &nb), KV_RING_BEHIND);
	assert_int_equal(kv_ring_take(r, 33, 1 << 20, &b, &nb), KV_RING_HIT);
	assert_int_equal(nb, 4);
	assert_int_equal(check_merged(&b, 33), 8);
	/* inside a batch, or not published yet */
	assert_int_equal(kv_ring_take(r, 34, 1 << 20, &b, &nb), KV_RING_NOT_YET);
	assert_int_equal(kv_ring_take(r, 41, 1 << 20, &b, &nb), KV_RING_NOT_YET);
	/* max_bytes: the first batch always, then only what fits */
	assert_int_equal(kv_ring_take(r, 35, 12 + 8 * 2 + 8 * 2, &b, &nb), KV_RING_HIT);
	assert_int_equal(nb, 2);
	assert_int_equal(check_merged(&b, 35), 4);
	assert_int_equal(kv_ring_take(r, 35, 1, &b, &nb), KV_RING_HIT);
	assert_int_equal(nb, 1);
	struct kv_ring_stats st;
	kv_ring_stats(r, &st);
	assert_int_equal(st.published, 20);
	assert_int_equal(st.held_batches, 4);
	assert_int_equal(st.evicted, 16);
	assert_int_equal(st.dropped, 0);
	/* a jump far ahead (more than the slots) empties it */
	fake_make(&f, 1000, 1);
	kv_ring_publish(r, f.data, f.len);
	assert_int_equal(kv_ring_take(r, 39, 1 << 20, &b, &nb), KV_RING_BEHIND);
	assert_int_equal(kv_ring_take(r, 1000, 1 << 20, &b, &nb), KV_RING_HIT);
	/* a late batch below what is held is not taken in */
	fake_make(&f, 990, 1);
	kv_ring_publish(r, f.data, f.len);
	assert_int_equal(kv_ring_take(r, 990, 1 << 20, &b, &nb), KV_RING_BEHIND);
	kv_ring_clear(r);
	assert_int_equal(kv_ring_take(r, 1000, 1 << 20, &b, &nb), KV_RING_BEHIND);
	kv_ring_free(r);

	/* the byte cap: 3 batches of 28 bytes fit in 90 bytes; a larger batch is dropped */
	r = kv_ring_new(64, 90);
	for (uint64_t s = 1; s <= 5; s += 2) {
		fake_make(&f, s, 2);
		kv_ring_publish(r, f.data, f.len);
	}
	assert_int_equal(kv_ring_take(r, 1, 1 << 20, &b, &nb), KV_RING_HIT);
	assert_int_equal(nb, 3);
	fake_make(&f, 7, 2);
	kv_ring_publish(r, f.data, f.len); /* pushes out the batch at 1 */
	assert_int_equal(kv_ring_take(r, 1, 1 << 20, &b, &nb), KV_RING_BEHIND);
	assert_int_equal(kv_ring_take(r, 3, 1 << 20, &b, &nb), KV_RING_HIT);
	assert_int_equal(check_merged(&b, 3), 6);
	fake_make(&f, 9, 8); /* 76 bytes: fits only alone */
	kv_ring_publish(r, f.data, f.len);
	assert_int_equal(kv_ring_take(r, 9, 1 << 20, &b, &nb), KV_RING_HIT);
	kv_ring_stats(r, &st);
	assert_int_equal(st.held_batches, 1);
	assert_true(st.held_bytes <= 90);
	struct fake big;
	fake_make(&big, 17, 8);
	big.len = 12 + 8 * 8;
	struct kv_ring *tiny = kv_ring_new(64, 40);
	kv_ring_publish(tiny, big.data, big.len); /* larger than the cap: dropped */
	kv_ring_stats(tiny, &st);
	assert_int_equal(st.dropped, 1);
	kv_ring_free(tiny);
	kv_ring_free(r);
	free(b.p);
}

/* Random publications, up to 4 at a time out of sequence order, some never published (a
 * lost copy); the reader takes from the ring, and otherwise reads the stand-in WAL (the
 * model) when the batch is not coming: each batch exactly once, in order. */
static void test_random_model(void **state)
{
	uint64_t hits = 0, wal = 0;
	for (int round = 0; round < 40; round++) {
		size_t nbat = 300 + rnd() % 400;
		struct fake *m = calloc(nbat, sizeof(*m));
		uint8_t *lost = calloc(nbat, 1), *held = calloc(nbat, 1);
		uint64_t s = 1 + rnd() % 1000;
		for (size_t i = 0; i < nbat; i++) {
			fake_make(&m[i], s, 1 + (uint32_t)(rnd() % 8));
			s += m[i].count;
			lost[i] = rnd() % 20 == 0;
		}
		size_t slots = (size_t)16 << (rnd() % 5);
		struct kv_ring *r = kv_ring_new(slots, 256 + rnd() % 4000);
		struct kv_ring_buf b = {0};
		size_t pub = 0, rd = 0; /* published through pub (exclusive); next to read */
		while (rd < nbat) {
			if (pub < nbat && rnd() % 4 == 0) {
				/* publish a window of up to 4 in a shuffled order */
				size_t w = 1 + rnd() % 4;
				if (pub + w > nbat)
					w = nbat - pub;
				size_t ord[4] = {0, 1, 2, 3};
				for (size_t k = w; k > 1; k--) {
					size_t j = rnd() % k, t = ord[k - 1];
					ord[k - 1] = ord[j];
					ord[j] = t;
				}
				for (size_t k = 0; k < w; k++) {
					size_t i = pub + ord[k];
					if (lost[i])
						continue;
					struct kv_ring_stats b0, b1;
					kv_ring_stats(r, &b0);
					kv_ring_publish(r, m[i].data, m[i].len);
					kv_ring_stats(r, &b1);
					held[i] = b1.dropped == b0.dropped;
				}
				pub += w;
				continue;
			}
			if (rd >= pub)
				continue;
			unsigned nb;
			enum kv_ring_take_rc tr = kv_ring_take(r, m[rd].seq, 1 + rnd() % 400, &b, &nb);
			if (tr == KV_RING_HIT) {
				uint32_t c = check_merged(&b, m[rd].seq);
				for (uint32_t got = 0; got < c; rd++)
					got += m[rd].count;
				hits += nb;
				continue;
			}
			/* a batch the ring took in and no longer holds was pushed out: BEHIND
			 * (NOT_YET would make the tail wait for it in vain) */
			if (tr == KV_RING_NOT_YET && held[rd])
				fail_msg("seed %u round %d: batch at %llu was held, is gone, and the "
					 "ring says 'not yet'", seed, round,
					 (unsigned long long)m[rd].seq);
			rd++; /* read from the "WAL": the model's batch */
			wal++;
		}
		kv_ring_free(r);
		free(b.p);
		free(m);
		free(lost);
		free(held);
	}
	/* both paths taken, the ring for most */
	printf("random model: %llu batches from the ring, %llu from the WAL\n",
	       (unsigned long long)hits, (unsigned long long)wal);
	assert_true(wal > 0);
	assert_true(hits > wal);
}

/* One producer thread in order (some batches lost), one consumer that waits in the ring
 * and reads the model when a batch does not come within 2 ms. */
#define NCONC 20000
static struct fake *conc;
static uint8_t conc_lost[NCONC];
static atomic_size_t conc_pub;

static void *producer(void *arg)
{
	struct kv_ring *r = arg;
	for (size_t i = 0; i < NCONC; i++) {
		if (!conc_lost[i])
			kv_ring_publish(r, conc[i].data, conc[i].len);
		atomic_store(&conc_pub, i + 1);
		if (i % 512 == 0)
			usleep(100);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	conc = calloc(NCONC, sizeof(*conc));
	uint64_t s = 1;
	for (size_t i = 0; i < NCONC; i++) {
		fake_make(&conc[i], s, 1 + (uint32_t)(rnd() % 4));
		s += conc[i].count;
		conc_lost[i] = rnd() % 500 == 0;
	}
	struct kv_ring *r = kv_ring_new(256, 4096);
	pthread_t th;
	pthread_create(&th, NULL, producer, r);
	struct kv_ring_buf b = {0};
	size_t rd = 0;
	uint64_t hits = 0;
	while (rd < NCONC) {
		unsigned nb;
		if (kv_ring_take(r, conc[rd].seq, 1 << 16, &b, &nb) == KV_RING_HIT) {
			uint32_t c = check_merged(&b, conc[rd].seq);
			for (uint32_t got = 0; got < c; rd++)
				got += conc[rd].count;
			hits += nb;
			continue;
		}
		if (atomic_load(&conc_pub) > rd) {
			rd++; /* done and not held (lost, or pushed out): the "WAL" */
			continue;
		}
		kv_ring_wait(r, conc[rd].seq, st_now_us() + 2000);
	}
	pthread_join(th, NULL);
	assert_true(hits > 0);
	kv_ring_free(r);
	free(b.p);
	free(conc);
}

/* ---- a real store ---- */

static char dir_p[256], dir_r[256];

static struct kv_db *open_db(const char *d)
{
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = 1;
	o.sync = KV_SYNC_NONE;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(d, &o, &db, &err))
		fail_msg("open %s: %s", d, err.msg);
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}};
	struct kv_table t = {.name = "t", .nfeatures = 1, .features = f};
	if (kv_table_create(db, &t, &err))
		fail_msg("create: %s", err.msg);
	return db;
}

/* A primary and a replica store in fresh directories. */
static void open_pair(struct kv_db **db, struct kv_db **rep)
{
	snprintf(dir_p, sizeof(dir_p), "/tmp/strata-ring-p-%d", getpid());
	snprintf(dir_r, sizeof(dir_r), "/tmp/strata-ring-r-%d", getpid());
	tu_rm_rf(dir_p);
	tu_rm_rf(dir_r);
	*db = open_db(dir_p);
	*rep = open_db(dir_r);
}

static void close_pair(struct kv_db *db, struct kv_db *rep)
{
	kv_close(rep);
	kv_close(db);
	tu_rm_rf(dir_p);
	tu_rm_rf(dir_r);
}

static void put(struct kv_db *db, const char *e, int64_t x)
{
	struct kv_cell c = {e, strlen(e), "x", 10, {.type = KV_I64, .i64 = x}};
	struct st_error err;
	if (kv_put(db, "t", &c, 1, &err))
		fail_msg("put: %s", err.msg);
}

static int64_t get(struct kv_db *db, const char *e)
{
	const char *f = "x";
	struct kv_result r;
	struct st_error err;
	if (kv_get(db, "t", e, strlen(e), &f, 1, NULL, &r, &err))
		fail_msg("get: %s", err.msg);
	int64_t v = r.found ? r.value.i64 : -1;
	kv_result_release(&r, 1);
	return v;
}

struct applier {
	struct kv_db *rep;
	uint64_t next; /* the batches must continue it exactly */
};

static int apply_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct applier *a = arg;
	if (seq != a->next)
		fail_msg("a batch at %llu where %llu was next", (unsigned long long)seq,
			 (unsigned long long)a->next);
	const unsigned char *p = data;
	uint32_t count = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
			 (uint32_t)p[11] << 24;
	a->next = seq + count;
	struct st_error err;
	return kv_shard_apply(a->rep, 0, data, len, &err);
}

/* Reads the tail until it has everything up to the primary's latest sequence. */
static void drain(struct kv_db *db, struct kv_wal_tail *t, struct applier *a)
{
	struct st_error err;
	while (a->next <= kv_shard_latest_seq(db, 0)) {
		if (kv_wal_tail_read(t, apply_cb, a, &err))
			fail_msg("tail: %s", err.msg);
		kv_wal_tail_wait(t, 20000);
	}
}

static void counts(struct kv_db *db, uint64_t *ring, uint64_t *wal)
{
	kv_wal_tail_counts(db, ring, wal);
}

struct writer {
	struct kv_db *db;
	int id, n;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char e[32];
	for (int i = 0; i < w->n; i++) {
		snprintf(e, sizeof(e), "w%d-%d", w->id, i % 300);
		put(w->db, e, i);
	}
	return NULL;
}

static atomic_int writers_done;

static void *writer_thread(void *arg)
{
	writer_main(arg);
	atomic_fetch_add(&writers_done, 1);
	return NULL;
}

static void check_same(struct kv_db *p, struct kv_db *r, int nwriters)
{
	char e[32];
	for (int w = 0; w < nwriters; w++)
		for (int i = 0; i < 300; i++) {
			snprintf(e, sizeof(e), "w%d-%d", w, i);
			if (get(p, e) != get(r, e))
				fail_msg("%s: primary %lld, replica %lld", e, (long long)get(p, e),
					 (long long)get(r, e));
		}
}

static void test_store_tail(void **state)
{
	struct kv_db *db, *rep;
	open_pair(&db, &rep);
	struct st_error err;
	assert_int_equal(kv_repl_ring_enable(db, 16 << 10, &err), 0);
	assert_int_equal(kv_repl_ring_enable(db, 16 << 10, &err), 0); /* idempotent */
	assert_int_equal(kv_repl_ring_enable(db, (size_t)UINT32_MAX + 1, &err), ST_EINVAL);
	struct applier a = {rep, kv_shard_latest_seq(db, 0) + 1};
	struct kv_wal_tail *t;
	assert_int_equal(kv_wal_tail_open(db, 0, a.next, &t, &err), 0);
	uint64_t ring0, wal0, ring1, wal1, ring2, wal2;
	/* nothing new: the wait times out */
	int64_t t0 = st_now_us();
	assert_int_equal(kv_wal_tail_wait(t, 30000), 0);
	assert_true(st_now_us() - t0 >= 25000);

	/* 1. a tail at the end takes every batch from the ring */
	struct writer w0 = {db, 0, 100};
	writer_main(&w0);
	assert_int_equal(kv_wal_tail_wait(t, 0), 1);
	counts(db, &ring0, &wal0);
	drain(db, t, &a);
	counts(db, &ring1, &wal1);
	assert_int_equal(ring1 - ring0, 100);
	assert_int_equal(wal1, wal0);

	/* 2. a tail far behind (5000 writes through a 16 KB ring) reads the WAL, then goes
	 * back to the ring for what it still holds */
	struct writer w1 = {db, 1, 5000};
	writer_main(&w1);
	drain(db, t, &a);
	counts(db, &ring2, &wal2);
	assert_true(wal2 - wal1 > 0);
	assert_true(ring2 - ring1 > 0);
	assert_true(ring2 - ring1 < 5000);
	/* and later batches come from the ring again */
	writer_main(&w0);
	drain(db, t, &a);
	counts(db, &ring0, &wal0);
	assert_int_equal(ring0 - ring2, 100);
	assert_int_equal(wal0, wal2);

	/* 3. a publication lost (fault ring.publish.drop): the tail waits for it briefly, reads
	 * it from the WAL, and is back on the ring after it */
	setenv("STRATA_FAULTS", "ring.publish.drop@3", 1);
	st_fault_reset();
	writer_main(&w0);
	drain(db, t, &a);
	unsetenv("STRATA_FAULTS");
	st_fault_reset();
	counts(db, &ring1, &wal1);
	assert_true(wal1 - wal0 >= 1);
	assert_true(ring1 - ring0 >= 97);
	assert_int_equal(ring1 - ring0 + wal1 - wal0, 100);

	/* 4. four writers and the tail at the same time */
	pthread_t th[4];
	struct writer ws[4];
	for (int i = 0; i < 4; i++) {
		ws[i] = (struct writer){db, 2 + i, 3000};
		pthread_create(&th[i], NULL, writer_thread, &ws[i]);
	}
	while (atomic_load(&writers_done) < 4) {
		if (kv_wal_tail_read(t, apply_cb, &a, &err))
			fail_msg("tail: %s", err.msg);
		kv_wal_tail_wait(t, 20000);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	drain(db, t, &a);
	counts(db, &ring2, &wal2);
	assert_true(ring2 - ring1 > 0);
	kv_wal_tail_close(t);
	check_same(db, rep, 6);
	close_pair(db, rep);
}

/* Without a ring (a store that does not replicate) the tail reads the WAL only, and its
 * wait looks at RocksDB's latest sequence. */
static void test_store_no_ring(void **state)
{
	struct kv_db *db, *rep;
	open_pair(&db, &rep);
	struct st_error err;
	struct applier a = {rep, kv_shard_latest_seq(db, 0) + 1};
	struct kv_wal_tail *t;
	assert_int_equal(kv_wal_tail_open(db, 0, a.next, &t, &err), 0);
	assert_int_equal(kv_wal_tail_wait(t, 5000), 0);
	struct writer w = {db, 0, 300};
	writer_main(&w);
	assert_int_equal(kv_wal_tail_wait(t, 5000), 1);
	drain(db, t, &a);
	uint64_t ring, wal;
	counts(db, &ring, &wal);
	assert_int_equal(ring, 0);
	assert_true(wal > 0);
	kv_wal_tail_close(t);
	check_same(db, rep, 1);
	close_pair(db, rep);
}

/* A position inside a batch (RocksDB merges a write group into one WAL record, while the
 * ring holds each write alone): the tail delivers the rest of that batch, starting exactly
 * at the position, with or without a ring. */
static void test_store_inside_batch(void **state)
{
	for (int with_ring = 0; with_ring < 2; with_ring++) {
		struct kv_db *db, *rep;
		open_pair(&db, &rep);
		struct st_error err;
		if (with_ring)
			assert_int_equal(kv_repl_ring_enable(db, 1 << 20, &err), 0);
		uint64_t s0 = kv_shard_latest_seq(db, 0) + 1;
		struct kv_cell c[3] = {
			{"a", 1, "x", 10, {.type = KV_I64, .i64 = 1}},
			{"b", 1, "x", 10, {.type = KV_I64, .i64 = 2}},
			{"c", 1, "x", 10, {.type = KV_I64, .i64 = 3}},
		};
		assert_int_equal(kv_put(db, "t", c, 3, &err), 0); /* one batch: s0 .. s0 + 2 */
		assert_int_equal(kv_shard_latest_seq(db, 0), s0 + 2);
		struct applier a = {rep, s0 + 1};
		struct kv_wal_tail *t;
		assert_int_equal(kv_wal_tail_open(db, 0, a.next, &t, &err), 0);
		drain(db, t, &a);
		kv_wal_tail_close(t);
		assert_int_equal(a.next, s0 + 3);
		assert_int_equal(get(rep, "a"), -1);
		assert_int_equal(get(rep, "b"), 2);
		assert_int_equal(get(rep, "c"), 3);
		close_pair(db, rep);
	}
}

int main(void)
{
	const char *s = getenv("STRATA_SEED");
	seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
	rng = seed ? seed : 1;
	printf("seed %u\n", seed);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wraparound_and_caps),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_store_tail),
		cmocka_unit_test(test_store_no_ring),
		cmocka_unit_test(test_store_inside_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
