/* Forks and rewinds of a shard's history (store/kv_fork.c), as replication uses them: an old
 * primary A streams its batches to a replica B up to a fork point P, B is promoted
 * (kv_shard_fork_mark) and takes its own random writes, A takes random divergent writes, then
 * A rewinds its tail from P (kv_shard_rewind) and tails B from the fork record's to_next.
 * Reference: a model of every version each copy must hold (B's content, and A's content at P
 * taken before the divergent writes), compared through every version a table scan walks and
 * through latest reads, also after a reopen. Fallback: a WAL that no longer reaches P (purged
 * after a flush with wal_ttl 0) and a tail with an ingestion marker are refused with nothing
 * written. Seed: STRATA_SEED (printed on failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/test_util.h"
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#include "common/st_time.h"
#include "store/kv.h"

#define NENT 40
#define NSHARDS 2

static char dir_a[256], dir_b[256], dir_cp[256];
static unsigned seed;
static uint64_t rng;

static uint64_t rnd(void)
{
	return tu_xorshift(&rng);
}


static struct kv_db *open_db(const char *dir, int64_t wal_ttl)
{
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = NSHARDS;
	o.wal_ttl_seconds = wal_ttl;
	o.row_cache_bytes = 1 << 20; /* the rewind must invalidate what it deletes */
	struct kv_db *db;
	struct st_error err;
	if (kv_open(dir, &o, &db, &err))
		fail_msg("open %s: %s", dir, err.msg);
	return db;
}

static void create_table(struct kv_db *db)
{
	struct kv_feature_def f[] = {{"i", KV_I64, 0, 0, 0}, {"s", KV_STR, 0, 0, 0}};
	struct kv_table t = {.name = "t", .nfeatures = 2, .features = f};
	struct st_error err;
	if (kv_table_create(db, &t, &err))
		fail_msg("create: %s", err.msg);
}

/* Random writes: puts of 1-4 cells (event times from a small set, so versions collide) and
 * tombstones. Every read below compares whole contents, so no model of the writes is kept
 * here: the reference is the content a copy had at a known point. */
static void random_writes(struct kv_db *db, int n, const char *tag)
{
	struct st_error err;
	for (int k = 0; k < n; k++) {
		char ent[4][16], str[4][32];
		struct kv_cell c[4];
		int nc = 1 + (int)(rnd() % 4);
		if (rnd() % 10 == 0) {
			snprintf(ent[0], sizeof(ent[0]), "e%d", (int)(rnd() % NENT));
			const char *feat = rnd() % 2 ? "i" : "s";
			if (kv_delete(db, "t", ent[0], strlen(ent[0]), &feat, 1,
				      (int64_t)(rnd() % 8) * 1000, &err))
				fail_msg("seed %u: delete: %s", seed, err.msg);
			continue;
		}
		for (int i = 0; i < nc; i++) {
			snprintf(ent[i], sizeof(ent[i]), "e%d", (int)(rnd() % NENT));
			c[i] = (struct kv_cell){.entity = ent[i], .entity_len = strlen(ent[i]),
						.ts = (int64_t)(rnd() % 8) * 1000};
			if (rnd() % 2) {
				c[i].feature = "i";
				c[i].value = (struct kv_value){.type = KV_I64, .i64 = (int64_t)rnd()};
			} else {
				snprintf(str[i], sizeof(str[i]), "%s-%d", tag, k);
				c[i].feature = "s";
				c[i].value = (struct kv_value){.type = KV_STR,
							       .len = (uint32_t)strlen(str[i]),
							       .ptr = str[i]};
			}
		}
		if (kv_put(db, "t", c, (size_t)nc, &err))
			fail_msg("seed %u: put: %s", seed, err.msg);
	}
}

/* ---- the content of a copy: every version a scan walks, as text ---- */
struct dump {
	char *p;
	size_t n, cap;
};

static void dump_add(struct dump *d, const char *s)
{
	size_t l = strlen(s);
	if (d->n + l + 1 > d->cap) {
		d->cap = (d->n + l + 1) * 2;
		d->p = realloc(d->p, d->cap);
		assert_non_null(d->p);
	}
	memcpy(d->p + d->n, s, l + 1);
	d->n += l;
}

static int dump_cb(void *arg, const char *entity, size_t elen, const struct kv_feature_def *f,
		   const struct kv_version *v)
{
	char line[256];
	const struct kv_value *x = &v->r.value;
	snprintf(line, sizeof(line), "%.*s/%s ts=%lld ingest=%lld %s %lld %.*s\n", (int)elen,
		 entity, f->name, (long long)v->r.ts, (long long)v->r.ingest_us,
		 v->tombstone ? "tomb" : "val", x->type == KV_I64 ? (long long)x->i64 : 0LL,
		 x->type == KV_STR ? (int)x->len : 0, x->type == KV_STR ? (char *)x->ptr : "");
	dump_add(arg, line);
	return 0;
}

/* Every version, then the latest value of every cell (through the row cache). */
static char *content(struct kv_db *db)
{
	struct dump d = {0};
	struct st_error err;
	dump_add(&d, "");
	if (kv_table_scan(db, "t", ST_TS_MAX, dump_cb, &d, &err))
		fail_msg("seed %u: scan: %s", seed, err.msg);
	for (int e = 0; e < NENT; e++) {
		char ent[16], line[160];
		snprintf(ent, sizeof(ent), "e%d", e);
		const char *feats[2] = {"i", "s"};
		struct kv_result r[2];
		for (int pass = 0; pass < 2; pass++) { /* the second read is a row-cache hit */
			if (kv_get(db, "t", ent, strlen(ent), feats, 2, &kv_read_latest, r, &err))
				fail_msg("seed %u: get: %s", seed, err.msg);
			snprintf(line, sizeof(line), "latest %s: %d %lld %lld | %d %lld %.*s\n", ent,
				 r[0].found, (long long)r[0].ts, (long long)r[0].value.i64,
				 r[1].found, (long long)r[1].ts,
				 r[1].value.type == KV_STR ? (int)r[1].value.len : 0,
				 r[1].value.type == KV_STR ? (char *)r[1].value.ptr : "");
			dump_add(&d, line);
			kv_result_release(r, 2);
		}
	}
	return d.p;
}

static void assert_same(const char *what, const char *want, const char *got)
{
	if (strcmp(want, got))
		fail_msg("seed %u: %s differs (%zu vs %zu bytes)", seed, what, strlen(want),
			 strlen(got));
}

/* ---- streaming a shard's batches from one copy to another, as the replication does ---- */
struct apply_ctx {
	struct kv_db *to;
	int shard;
	struct kv_repl_pos pos;
};

static int apply_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct apply_ctx *a = arg;
	struct st_error err;
	const unsigned char *b = data;
	uint32_t count = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 |
			 (uint32_t)b[11] << 24;
	a->pos.next_seq = seq + count;
	int rc = kv_shard_apply_at(a->to, a->shard, data, len, &a->pos, &err);
	if (rc < 0)
		fail_msg("seed %u: apply: %s", seed, err.msg);
	return 0;
}

static void stream(struct kv_db *from, struct kv_db *to, int shard, uint64_t start,
		   const char *replid)
{
	struct apply_ctx a = {to, shard, {{0}, start}};
	snprintf(a.pos.replid, sizeof(a.pos.replid), "%s", replid);
	struct st_error err;
	if (kv_shard_updates_since(from, shard, start, apply_cb, &a, &err))
		fail_msg("seed %u: updates since %llu: %s", seed, (unsigned long long)start,
			 err.msg);
}

static char *shard_replid(struct kv_db *db, int s)
{
	static char id[NSHARDS][KV_REPLID_MAX];
	struct st_error err;
	assert_int_equal(kv_shard_replid(db, s, id[s], &err), 0);
	return id[s];
}

static int setup(void **state)
{
	const char *e = getenv("STRATA_SEED");
	seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	rng = seed * 2654435761u + 1;
	snprintf(dir_a, sizeof(dir_a), "/tmp/strata-fork-a-%d", getpid());
	snprintf(dir_b, sizeof(dir_b), "/tmp/strata-fork-b-%d", getpid());
	snprintf(dir_cp, sizeof(dir_cp), "/tmp/strata-fork-cp-%d", getpid());
	tu_rm_rf(dir_a);
	tu_rm_rf(dir_b);
	tu_rm_rf(dir_cp);
	return 0;
}

static int teardown(void **state)
{
	tu_rm_rf(dir_a);
	tu_rm_rf(dir_b);
	tu_rm_rf(dir_cp);
	return 0;
}

/* The whole rejoin at the store level, with random writes on both sides of the fork. */
static void test_fork_rewind_model(void **state)
{
	struct st_error err;
	struct kv_db *a = open_db(dir_a, 3600), *b = open_db(dir_b, 3600);
	create_table(a);
	create_table(b);
	random_writes(a, 300 + (int)(rnd() % 300), "pre");
	uint64_t p[NSHARDS];
	char hist[NSHARDS][KV_REPLID_MAX];
	for (int s = 0; s < NSHARDS; s++) {
		memcpy(hist[s], shard_replid(a, s), KV_REPLID_MAX);
		stream(a, b, s, 1, hist[s]);
		p[s] = kv_shard_latest_seq(a, s) + 1;
	}
	char *at_fork = content(a), *replica = content(b);
	assert_same("the replica at the fork", at_fork, replica);
	free(replica);
	/* B is promoted: it records the fork and writes its own history */
	struct kv_repl_fork f[NSHARDS];
	for (int s = 0; s < NSHARDS; s++) {
		assert_int_equal(kv_shard_fork_mark(b, s, 1, &f[s], &err), 0);
		assert_string_equal(f[s].from_replid, hist[s]);
		assert_int_equal(f[s].from_next, p[s]);
		struct kv_repl_fork g;
		assert_int_equal(kv_shard_fork_get(b, s, &g, &err), 0);
		assert_int_equal(g.to_next, f[s].to_next);
		struct kv_repl_pos pos;
		assert_int_equal(kv_shard_repl_pos(b, s, &pos, &err), 0);
		assert_string_equal(pos.replid, shard_replid(b, s)); /* it follows nobody now */
	}
	random_writes(b, 200 + (int)(rnd() % 200), "new");
	/* A, cut off, took divergent writes meanwhile */
	random_writes(a, 100 + (int)(rnd() % 300), "lost");
	char *diverged = content(a);
	if (!strcmp(diverged, at_fork))
		fail_msg("seed %u: the divergent writes changed nothing", seed);
	for (int s = 0; s < NSHARDS; s++) {
		uint64_t end = kv_shard_latest_seq(a, s) + 1;
		struct kv_repl_pos to = {{0}, f[s].to_next};
		memcpy(to.replid, shard_replid(b, s), KV_REPLID_MAX);
		char old_id[KV_REPLID_MAX];
		memcpy(old_id, shard_replid(a, s), KV_REPLID_MAX);
		struct kv_rewind_report rep;
		if (kv_shard_rewind(a, s, p[s], &to, &rep, &err))
			fail_msg("seed %u: rewind shard %d: %s", seed, s, err.msg);
		assert_int_equal(rep.first, p[s]);
		assert_int_equal(rep.last, end - 1);
		assert_int_equal(rep.seqs, end - p[s]);
		assert_true(rep.keys <= rep.seqs);
		struct kv_repl_pos pos;
		assert_int_equal(kv_shard_repl_pos(a, s, &pos, &err), 0);
		assert_string_equal(pos.replid, to.replid);
		assert_int_equal(pos.next_seq, to.next_seq);
		assert_string_not_equal(shard_replid(a, s), old_id); /* a new copy id */
		assert_string_not_equal(shard_replid(a, s), to.replid);
		struct kv_repl_fork g;
		assert_int_equal(kv_shard_fork_get(a, s, &g, &err), ST_ENOTFOUND);
	}
	char *rewound = content(a);
	assert_same("the old primary after the rewind", at_fork, rewound);
	/* ... and it continues as a replica of B from the fork */
	for (int s = 0; s < NSHARDS; s++)
		stream(b, a, s, f[s].to_next, shard_replid(b, s));
	char *want = content(b), *got = content(a);
	assert_same("the rejoined copy against the new primary", want, got);
	kv_close(a);
	a = open_db(dir_a, 3600);
	char *reopened = content(a);
	assert_same("the rejoined copy after a reopen", want, reopened);
	kv_close(a);
	kv_close(b);
	free(at_fork);
	free(diverged);
	free(rewound);
	free(want);
	free(got);
	free(reopened);
}

/* A copy that never followed anything forks from nothing; a rewind with nothing to undo just
 * moves the position. */
static void test_fork_without_history(void **state)
{
	struct st_error err;
	struct kv_db *a = open_db(dir_a, 3600);
	create_table(a);
	random_writes(a, 20, "x");
	struct kv_repl_fork f;
	assert_int_equal(kv_shard_fork_mark(a, 0, 1, &f, &err), 0);
	assert_string_equal(f.from_replid, "");
	uint64_t latest = kv_shard_latest_seq(a, 0);
	assert_int_equal(kv_shard_fork_mark(a, 0, 0, &f, &err), 0); /* marked already: no write */
	assert_int_equal(kv_shard_latest_seq(a, 0), latest);
	assert_int_equal(kv_shard_fork_mark(a, 0, 1, &f, &err), 0); /* names itself: no record */
	assert_string_equal(f.from_replid, "");
	assert_int_equal(kv_shard_fork_get(a, 0, &f, &err), ST_ENOTFOUND);
	char *before = content(a);
	struct kv_repl_pos to = {"elsewhere", 5};
	struct kv_rewind_report rep;
	assert_int_equal(kv_shard_rewind(a, 0, 0, &to, &rep, &err), 0);
	assert_int_equal(rep.seqs, 0);
	to.next_seq = kv_shard_latest_seq(a, 0) + 1;
	assert_int_equal(kv_shard_rewind(a, 0, to.next_seq, &to, &rep, &err), 0);
	assert_int_equal(rep.seqs, 0);
	assert_int_equal(kv_shard_rewind(a, 0, to.next_seq + 10, &to, &rep, &err), ST_EINVAL);
	char *after = content(a);
	assert_same("a rewind of nothing", before, after);
	kv_close(a);
	free(before);
	free(after);
}

static void assert_refused(struct kv_db *a, uint64_t p, int code, const char *what)
{
	struct st_error err;
	struct kv_repl_pos old, to = {"newhist", 7};
	char id[KV_REPLID_MAX];
	assert_int_equal(kv_shard_repl_pos(a, 0, &old, &err), 0);
	memcpy(id, shard_replid(a, 0), KV_REPLID_MAX);
	char *before = content(a);
	struct kv_rewind_report rep;
	int rc = kv_shard_rewind(a, 0, p, &to, &rep, &err);
	if (rc != code)
		fail_msg("seed %u: %s: rewind returned %d (%s), want %d", seed, what, rc, err.msg,
			 code);
	assert_int_equal(rep.seqs, 0);
	/* nothing written: same content, position and copy id */
	char *after = content(a);
	assert_same(what, before, after);
	struct kv_repl_pos pos;
	assert_int_equal(kv_shard_repl_pos(a, 0, &pos, &err), 0);
	assert_string_equal(pos.replid, old.replid);
	assert_int_equal(pos.next_seq, old.next_seq);
	assert_string_equal(shard_replid(a, 0), id);
	free(before);
	free(after);
}

/* The fallback: the WAL no longer reaches the fork point (wal_ttl 0 and a flush purged it). */
static void test_rewind_wal_gone(void **state)
{
	struct st_error err;
	struct kv_db *a = open_db(dir_a, 0);
	create_table(a);
	random_writes(a, 50, "pre");
	uint64_t p = kv_shard_latest_seq(a, 0) + 1;
	random_writes(a, 50, "lost");
	/* a checkpoint flushes the memtables: the WAL files before it are obsolete and, with no
	 * TTL, deleted */
	assert_int_equal(kv_checkpoint(a, dir_cp, &err), 0);
	random_writes(a, 5, "after");
	assert_refused(a, p, ST_ENOTFOUND, "a rewind past the WAL");
	kv_close(a);
}

/* A divergent tail with an ingestion (files that never were in the WAL) is not undone. */
static void test_rewind_ingest_refused(void **state)
{
	struct st_error err;
	struct kv_db *a = open_db(dir_a, 3600);
	create_table(a);
	random_writes(a, 30, "pre");
	uint64_t p = kv_shard_latest_seq(a, 0) + 1;
	random_writes(a, 10, "lost");
	assert_int_equal(kv_shard_mark_ingest(a, 0, &err), 0);
	assert_refused(a, p, ST_EINVAL, "a rewind over an ingestion");
	kv_close(a);
}

/* ---- replicas behind and beyond the fork point ---- */
struct batches {
	uint64_t *seq;
	uint32_t *count;
	char **data;
	size_t *len;
	int n;
};

static int collect_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct batches *b = arg;
	b->seq = realloc(b->seq, (size_t)(b->n + 1) * sizeof(*b->seq));
	b->count = realloc(b->count, (size_t)(b->n + 1) * sizeof(*b->count));
	b->data = realloc(b->data, (size_t)(b->n + 1) * sizeof(*b->data));
	b->len = realloc(b->len, (size_t)(b->n + 1) * sizeof(*b->len));
	assert_true(b->seq && b->count && b->data && b->len);
	const unsigned char *h = data;
	b->seq[b->n] = seq;
	b->count[b->n] = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 |
			 (uint32_t)h[11] << 24;
	b->data[b->n] = malloc(len);
	assert_non_null(b->data[b->n]);
	memcpy(b->data[b->n], data, len);
	b->len[b->n++] = len;
	return 0;
}

static void batches_release(struct batches *b)
{
	for (int i = 0; i < b->n; i++)
		free(b->data[i]);
	free(b->seq);
	free(b->count);
	free(b->data);
	free(b->len);
}

/* Streams `from`'s batches [start, end) to `to` as repl_replica.c applies them: runs of 1-4
 * merged into one write, and now and then a run that begins with the batch before the
 * position (a batch the replica already holds part of), each with its position. */
static void stream_shaped(struct kv_db *from, struct kv_db *to, int shard, uint64_t start,
			  uint64_t end, const char *replid)
{
	struct batches b = {0};
	struct st_error err;
	if (kv_shard_updates_since(from, shard, 1, collect_cb, &b, &err))
		fail_msg("seed %u: updates: %s", seed, err.msg);
	int i = 0;
	while (i < b.n && b.seq[i] + b.count[i] <= start)
		i++;
	while (i < b.n && b.seq[i] < end) {
		int first = i > 0 && b.seq[i] >= start && rnd() % 8 == 0 ? i - 1 : i;
		int last = i + (int)(rnd() % 4);
		while (last >= b.n || b.seq[last] >= end)
			last--;
		size_t n = 0;
		for (int k = first; k <= last; k++)
			n += k == first ? b.len[k] : b.len[k] - 12;
		char *m = malloc(n), *w = m;
		assert_non_null(m);
		for (int k = first; k <= last; k++) {
			size_t skip = k == first ? 0 : 12;
			memcpy(w, b.data[k] + skip, b.len[k] - skip);
			w += b.len[k] - skip;
		}
		uint32_t total = (uint32_t)(b.seq[last] + b.count[last] - b.seq[first]);
		for (int k = 0; k < 4; k++)
			m[8 + k] = (char)(total >> (8 * k));
		struct kv_repl_pos pos = {{0}, b.seq[last] + b.count[last]};
		snprintf(pos.replid, sizeof(pos.replid), "%s", replid);
		if (kv_shard_apply_at(to, shard, m, n, &pos, &err) < 0)
			fail_msg("seed %u: apply: %s", seed, err.msg);
		free(m);
		i = last + 1;
	}
	batches_release(&b);
}

static int catchup_cb(void *arg, uint64_t seq, uint64_t local_seq, const void *data, size_t len)
{
	struct apply_ctx *a = arg;
	if (seq != a->pos.next_seq)
		fail_msg("seed %u: a batch at %llu, expected %llu", seed, (unsigned long long)seq,
			 (unsigned long long)a->pos.next_seq);
	return apply_cb(arg, seq, data, len);
}

static int locate_cb(void *arg, uint64_t seq, uint64_t local_seq, const void *data, size_t len)
{
	*(uint64_t *)arg = local_seq;
	return KV_FOLLOW_DONE;
}

/* A primary A, a replica B that is promoted at A's position P, a replica C that stopped at
 * L < P and one D that went on to X > P. B sends C the batches L..P of A's history from its
 * own WAL (kv_shard_followed): C then equals A at P and joins B's history; D finds its own
 * sequence of P through its WAL, undoes from there and joins too. Every copy ends equal to
 * B, also after a reopen. */
static void test_fork_behind_beyond(void **state)
{
	struct st_error err;
	char dir_c[300], dir_d[300];
	snprintf(dir_c, sizeof(dir_c), "%s-c", dir_a);
	snprintf(dir_d, sizeof(dir_d), "%s-d", dir_a);
	tu_rm_rf(dir_c);
	tu_rm_rf(dir_d);
	struct kv_db *a = open_db(dir_a, 3600), *b = open_db(dir_b, 3600);
	struct kv_db *c = open_db(dir_c, 3600), *d = open_db(dir_d, 3600);
	create_table(a);
	create_table(b);
	create_table(c);
	create_table(d);
	char hist[NSHARDS][KV_REPLID_MAX];
	uint64_t l[NSHARDS], p[NSHARDS], x[NSHARDS];
	for (int s = 0; s < NSHARDS; s++)
		memcpy(hist[s], shard_replid(a, s), KV_REPLID_MAX);
	random_writes(a, 100 + (int)(rnd() % 200), "w1");
	for (int s = 0; s < NSHARDS; s++)
		l[s] = kv_shard_latest_seq(a, s) + 1;
	random_writes(a, 50 + (int)(rnd() % 300), "w2");
	for (int s = 0; s < NSHARDS; s++)
		p[s] = kv_shard_latest_seq(a, s) + 1;
	char *at_p = content(a);
	random_writes(a, 20 + (int)(rnd() % 100), "w3");
	for (int s = 0; s < NSHARDS; s++) {
		x[s] = kv_shard_latest_seq(a, s) + 1;
		stream_shaped(a, b, s, 1, p[s], hist[s]);
		stream_shaped(a, c, s, 1, l[s], hist[s]);
		stream_shaped(a, d, s, 1, x[s], hist[s]);
	}
	struct kv_repl_fork f[NSHARDS];
	struct kv_repl_pos to[NSHARDS];
	for (int s = 0; s < NSHARDS; s++) {
		assert_int_equal(kv_shard_fork_mark(b, s, 1, &f[s], &err), 0);
		assert_int_equal(f[s].from_next, p[s]);
		to[s] = (struct kv_repl_pos){{0}, f[s].to_next};
		memcpy(to[s].replid, shard_replid(b, s), KV_REPLID_MAX);
	}
	random_writes(b, 50 + (int)(rnd() % 100), "new");
	for (int s = 0; s < NSHARDS; s++) {
		/* C: the batches L..P from B's WAL, as A's history */
		struct apply_ctx ac = {c, s, {{0}, l[s]}};
		memcpy(ac.pos.replid, hist[s], KV_REPLID_MAX);
		uint64_t reached = 0;
		if (kv_shard_followed(b, s, hist[s], l[s], p[s], f[s].to_next, catchup_cb, &ac,
				      &reached, &err))
			fail_msg("seed %u: catch-up from %llu: %s", seed, (unsigned long long)l[s],
				 err.msg);
		assert_int_equal(reached, p[s]);
		assert_int_equal(ac.pos.next_seq, p[s]);
		/* from the fork point itself: nothing to send */
		assert_int_equal(kv_shard_followed(b, s, hist[s], p[s], p[s], f[s].to_next,
						   catchup_cb, &ac, &reached, &err), 0);
		assert_int_equal(reached, p[s]);
		/* a history B never followed */
		assert_int_equal(kv_shard_followed(b, s, "nobody", l[s], p[s], f[s].to_next,
						   catchup_cb, &ac, &reached, &err), ST_ENOTFOUND);
		/* D: its own sequence holding A's P, then the undo from there */
		uint64_t local = 0;
		if (kv_shard_followed(d, s, hist[s], p[s], x[s], kv_shard_latest_seq(d, s) + 1,
				      locate_cb, &local, &reached, &err))
			fail_msg("seed %u: locate %llu: %s", seed, (unsigned long long)p[s], err.msg);
		assert_true(local > 0);
		struct kv_rewind_report rep;
		if (kv_shard_rewind(d, s, local, &to[s], &rep, &err))
			fail_msg("seed %u: rewind D: %s", seed, err.msg);
	}
	for (struct kv_db *r[] = {c, d, NULL}, **q = r; *q; q++) {
		char *got = content(*q);
		assert_same(*q == c ? "C caught up to the fork" : "D rewound to the fork", at_p, got);
		free(got);
		for (int s = 0; s < NSHARDS; s++) {
			struct kv_rewind_report rep;
			if (*q == c)
				assert_int_equal(kv_shard_rewind(c, s, 0, &to[s], &rep, &err), 0);
			stream(b, *q, s, f[s].to_next, to[s].replid);
		}
	}
	char *want = content(b);
	kv_close(c);
	c = open_db(dir_c, 3600);
	for (struct kv_db *r[] = {c, d, NULL}, **q = r; *q; q++) {
		char *got = content(*q);
		assert_same(*q == c ? "C (reopened) against the new primary" : "D against the new primary",
			    want, got);
		free(got);
	}
	free(want);
	free(at_p);
	kv_close(a);
	kv_close(b);
	kv_close(c);
	kv_close(d);
	tu_rm_rf(dir_c);
	tu_rm_rf(dir_d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fork_rewind_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_without_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_behind_beyond, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewind_wal_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewind_ingest_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
