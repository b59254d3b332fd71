/* Randomised test of the store against a brute-force reference model: 100k random puts and
 * deletes (ties, out-of-order event times, late arrivals, overwrites) over seven tables with
 * different ttl (freshness at the read's time), max_versions and retention (a horizon that
 * moves with a fake clock), written into small memtables so that flushes and background
 * compactions run while the horizon moves; forced compactions in between. Latest / as-of /
 * known-at / multi-get / history / join (with its before-horizon policies) are compared with
 * the model, with statuses (present, stale, absent), before and after compactions, after a
 * reopen and at later horizons; reads before a horizon must fail with ST_ERANGE.
 * Seed: STRATA_SEED (printed on failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ftw.h>
#include <unistd.h>

#include "store/kv.h"

#define NTABLES 7
#define NENT 150
#define NFEAT 3
#define NOPS 100000
#define BASE 1000000000LL
#define TICK 10

static int64_t clock_now;
static int64_t test_clock(void *arg) { return clock_now; }

struct mwrite {
	int64_t ts, ingest;
	int tomb;
	int64_t i;
	double d;
	char s[16];
};

struct mcell {
	struct mwrite *w;
	size_t n, cap;
};

static struct mcell model[NTABLES][NENT][NFEAT];
static const struct { int64_t ttl; uint32_t maxv; int64_t ret; } retention[NTABLES] = {
	{0, 0, 0},	{20000, 0, 0},      {0, 3, 0},	{30000, 4, 0},
	{0, 0, 200000}, {15000, 0, 100000}, {25000, 5, 150000}};
static const char *feat_names[NFEAT] = {"fi", "fd", "fs"};
static unsigned seed;
static char dir[256];

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}
static int64_t rnd_range(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

static void ent_name(int e, char *buf) { sprintf(buf, "ent-%d", e * 7919 % 100003); }

/* Groups of (table,e,f) sorted newest event time first: returns distinct ts in *out. */
static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static size_t distinct_ts(const struct mcell *c, int64_t *out)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		out[n++] = c->w[i].ts;
	qsort(out, n, sizeof(*out), cmp_desc);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!k || out[k - 1] != out[i])
			out[k++] = out[i];
	return k;
}

/* The write chosen for group ts as known at S, or NULL. */
static const struct mwrite *choose(const struct mcell *c, int64_t ts, int64_t S)
{
	const struct mwrite *best = NULL;
	for (size_t i = 0; i < c->n; i++)
		if (c->w[i].ts == ts && c->w[i].ingest <= S && (!best || c->w[i].ingest > best->ingest))
			best = &c->w[i];
	return best;
}

static int64_t horizon(int t, int64_t now)
{
	return retention[t].ret ? now - retention[t].ret : ST_TS_MIN;
}

/* The freshness rule, written out from docs/store.md. */
static enum kv_status fresh(int t, int64_t T, int64_t ts, int64_t now)
{
	int64_t ttl = retention[t].ttl, H = horizon(t, now);
	if (!ttl || T - ts <= ttl)
		return KV_PRESENT;
	if (H != ST_TS_MIN && ts + ttl < H)
		return KV_ABSENT;
	return KV_STALE;
}

/* What an as-of read at T (ST_TS_MAX: latest) known at S answers: the write, its status. */
struct answer {
	const struct mwrite *w;
	enum kv_status st;
};

static struct answer model_asof(int t, int e, int f, int64_t T, int64_t S, int64_t now)
{
	const struct mcell *c = &model[t][e][f];
	int64_t *ts = malloc((c->n + 1) * sizeof(*ts));
	size_t k = distinct_ts(c, ts);
	struct answer a = {NULL, KV_ABSENT};
	for (size_t r = 0; r < k; r++) {
		if (retention[t].maxv && r + 1 > retention[t].maxv)
			break;
		if (ts[r] > T)
			continue;
		const struct mwrite *w = choose(c, ts[r], S);
		if (!w)
			continue;
		if (!w->tomb) {
			a.st = fresh(t, T == ST_TS_MAX ? now : T, w->ts, now);
			a.w = a.st == KV_ABSENT ? NULL : w;
		}
		break;
	}
	free(ts);
	return a;
}

static int before_horizon(int t, int64_t T, int64_t S, int64_t now)
{
	int64_t H = horizon(t, now);
	return H != ST_TS_MIN && (T < H || S < H);
}

static void check_value(struct answer a, const struct kv_result *r, int f, const char *ctx)
{
	const struct mwrite *w = a.w;
	if (r->status != a.st)
		fail_msg("%s: expected status %s, store says %s (ts %lld)", ctx, kv_status_name(a.st),
			 kv_status_name(r->status), (long long)r->ts);
	if (!w) {
		if (r->found)
			fail_msg("%s: expected nothing, store has ts %lld", ctx, (long long)r->ts);
		return;
	}
	if (r->ts != w->ts || r->ingest_us != w->ingest)
		fail_msg("%s: expected ts %lld/%lld, got %lld/%lld", ctx, (long long)w->ts,
			 (long long)w->ingest, (long long)r->ts, (long long)r->ingest_us);
	if (a.st != KV_PRESENT) {
		if (r->found || r->value.type != KV_NONE)
			fail_msg("%s: a stale value must be withheld", ctx);
		return;
	}
	if (!r->found)
		fail_msg("%s: present but not found", ctx);
	if (f == 0)
		assert_int_equal(r->value.i64, w->i);
	else if (f == 1)
		assert_true(r->value.f64 == w->d);
	else
		assert_string_equal((char *)r->value.ptr, w->s);
}

static struct answer present(const struct mwrite *w)
{
	return (struct answer){w, w && !w->tomb ? KV_PRESENT : KV_ABSENT};
}

static char tname[NTABLES][16];

static int rm_cb_fwd(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }

/* A random read time: mostly within the written span, sometimes before the horizon. */
static int64_t rnd_time(int64_t now)
{
	return rnd_range(BASE - 50000, now + 50000);
}

static void check_point_reads(struct kv_db *db, const char *phase, int n)
{
	int64_t now = clock_now;
	struct st_error err;
	char ctx[256], en[32];
	for (int q = 0; q < n; q++) {
		int t = (int)rnd_range(0, NTABLES - 1), e = (int)rnd_range(0, NENT - 1);
		int64_t T = q % 3 == 0 ? ST_TS_MAX : rnd_time(now);
		int64_t S = q % 2 == 0 ? ST_TS_MAX : rnd_time(now);
		ent_name(e, en);
		struct kv_result r[NFEAT];
		struct kv_read_opts o = {T, S, 0};
		int rc = kv_get(db, tname[t], en, strlen(en), feat_names, NFEAT, &o, r, &err);
		snprintf(ctx, sizeof(ctx), "%s seed %u get t%d %s T=%lld S=%lld now=%lld", phase, seed,
			 t, en, (long long)T, (long long)S, (long long)now);
		if (before_horizon(t, T, S, now)) {
			if (rc != ST_ERANGE)
				fail_msg("%s: expected ST_ERANGE before the horizon, got %d", ctx, rc);
			continue;
		}
		if (rc)
			fail_msg("%s: %s", ctx, err.msg);
		for (int f = 0; f < NFEAT; f++) {
			snprintf(ctx, sizeof(ctx), "%s seed %u get t%d %s f%d T=%lld S=%lld now=%lld", phase,
				 seed, t, en, f, (long long)T, (long long)S, (long long)now);
			check_value(model_asof(t, e, f, T, S, now), &r[f], f, ctx);
		}
		kv_result_release(r, NFEAT);
	}
}

/* A multi-get of every entity of every table: latest, then at random as-of / known-at times
 * (before a horizon: ST_ERANGE). */
static void check_multiget(struct kv_db *db, const char *phase)
{
	struct st_error err;
	char ctx[256];
	const char *ents[NENT];
	size_t lens[NENT];
	char names[NENT][32];
	for (int e = 0; e < NENT; e++) {
		ent_name(e, names[e]);
		ents[e] = names[e];
		lens[e] = strlen(names[e]);
	}
	struct kv_result *r = calloc(NENT * NFEAT, sizeof(*r));
	for (int q = 0; q < 3 * NTABLES; q++) {
		int t = q % NTABLES;
		struct kv_read_opts o = KV_READ_LATEST;
		if (q >= NTABLES) {
			o.as_of = rnd_time(clock_now);
			o.known_at = q >= 2 * NTABLES ? rnd_time(clock_now) : ST_TS_MAX;
		}
		int rc = kv_multiget(db, tname[t], ents, lens, NENT, feat_names, NFEAT, &o, r, &err);
		snprintf(ctx, sizeof(ctx), "%s seed %u multiget t%d T=%lld S=%lld now=%lld", phase, seed,
			 t, (long long)o.as_of, (long long)o.known_at, (long long)clock_now);
		if (before_horizon(t, o.as_of, o.known_at, clock_now)) {
			if (rc != ST_ERANGE || !strstr(err.msg, "retention horizon"))
				fail_msg("%s: expected ST_ERANGE before the horizon, got %d", ctx, rc);
			continue;
		}
		if (rc)
			fail_msg("%s: %s", ctx, err.msg);
		for (int e = 0; e < NENT; e++)
			for (int f = 0; f < NFEAT; f++) {
				snprintf(ctx, sizeof(ctx), "%s seed %u multiget t%d e%d f%d T=%lld S=%lld",
					 phase, seed, t, e, f, (long long)o.as_of, (long long)o.known_at);
				check_value(model_asof(t, e, f, o.as_of, o.known_at, clock_now),
					    &r[e * NFEAT + f], f, ctx);
			}
		kv_result_release(r, NENT * NFEAT);
	}
	free(r);
}

/* The model's history: versions newer than the horizon, then the one in effect at it (only
 * reached without a `from`: a `from` below the horizon is refused). */
static size_t model_history(int t, int e, int f, int64_t from, int64_t to, int64_t S, size_t limit,
			    const struct mwrite **out, int64_t now)
{
	const struct mcell *c = &model[t][e][f];
	int64_t *ts = malloc((c->n + 1) * sizeof(*ts));
	size_t k = distinct_ts(c, ts), got = 0;
	int64_t H = horizon(t, now);
	for (size_t r = 0; r < k && !(limit && got == limit); r++) {
		if ((retention[t].maxv && r + 1 > retention[t].maxv) || ts[r] < from)
			break;
		const struct mwrite *w = choose(c, ts[r], S);
		if (!w)
			continue;
		if (H != ST_TS_MIN && ts[r] <= H) {
			if (ts[r] <= to && !w->tomb && fresh(t, H, ts[r], now) == KV_PRESENT)
				out[got++] = w;
			break;
		}
		if (ts[r] > to)
			continue;
		out[got++] = w;
	}
	free(ts);
	return got;
}

static void check_history(struct kv_db *db, const char *phase, int n)
{
	int64_t now = clock_now;
	struct st_error err;
	char ctx[256], en[32];
	for (int q = 0; q < n; q++) {
		int t = (int)rnd_range(0, NTABLES - 1), e = (int)rnd_range(0, NENT - 1);
		int f = (int)rnd_range(0, NFEAT - 1);
		int64_t from = q % 5 ? rnd_time(now) : ST_TS_MIN;
		int64_t to = q % 4 ? rnd_range(from == ST_TS_MIN ? BASE : from, now + 50000) : ST_TS_MAX;
		int64_t S = q % 2 ? ST_TS_MAX : rnd_time(now);
		size_t limit = q % 3 ? 0 : (size_t)rnd_range(1, 5);
		ent_name(e, en);
		struct kv_version *v;
		size_t nv;
		int rc = kv_history(db, tname[t], en, strlen(en), feat_names[f], from, to, limit, S,
				    &v, &nv, &err);
		snprintf(ctx, sizeof(ctx), "%s seed %u history t%d %s f%d from=%lld to=%lld S=%lld now=%lld",
			 phase, seed, t, en, f, (long long)from, (long long)to, (long long)S, (long long)now);
		/* a history reaching below the horizon (from, or to without from) is refused */
		int64_t at = from > to ? ST_TS_MAX : from != ST_TS_MIN ? from : to;
		if (before_horizon(t, at, S, now)) {
			if (rc != ST_ERANGE || !strstr(err.msg, "retention horizon"))
				fail_msg("%s: expected ST_ERANGE before the horizon, got %d", ctx, rc);
			continue;
		}
		if (rc)
			fail_msg("%s: %s", ctx, err.msg);
		const struct mwrite **w = malloc((model[t][e][f].n + 1) * sizeof(*w));
		size_t got = model_history(t, e, f, from, to, S, limit, w, now);
		if (got != nv)
			fail_msg("%s: model has %zu versions, store %zu", ctx, got, nv);
		for (size_t i = 0; i < got; i++) {
			assert_int_equal(v[i].tombstone, w[i]->tomb);
			assert_int_equal(v[i].r.ts, w[i]->ts);
			if (!w[i]->tomb)
				check_value(present(w[i]), &v[i].r, f, ctx);
		}
		free(w);
		kv_history_free(v, nv);
	}
}

/* 20k rows in chunks of 7000, any order; before-horizon rows skipped (and counted). */
static void check_join(struct kv_db *db, const char *phase, int t)
{
	int64_t now = clock_now;
	struct st_error err;
	char ctx[256], en[32];
	struct kv_join *j;
	int64_t S = t % 2 ? ST_TS_MAX : now - (int64_t)rnd_range(0, 20000);
	if (before_horizon(t, ST_TS_MAX, S, now)) {
		assert_int_equal(kv_join_open(db, tname[t], feat_names, NFEAT, S, 7000, &j, &err), ST_ERANGE);
		return;
	}
	assert_int_equal(kv_join_open(db, tname[t], feat_names, NFEAT, S, 7000, &j, &err), 0);
	kv_join_set_horizon_policy(j, KV_JOIN_SKIP_BEFORE_HORIZON);
	int rows = 20000, pushed = 0;
	uint64_t skipped = 0;
	int *re = malloc(rows * sizeof(int));
	int64_t *rt = malloc(rows * sizeof(int64_t));
	while (pushed < rows) {
		int start = pushed, rc = 0;
		while (pushed < rows && rc == 0) {
			re[pushed] = (int)rnd_range(0, NENT - 1);
			rt[pushed] = rnd_time(now);
			skipped += before_horizon(t, rt[pushed], ST_TS_MAX, now);
			ent_name(re[pushed], en);
			rc = kv_join_push(j, en, strlen(en), rt[pushed], &err);
			assert_true(rc >= 0);
			pushed++;
		}
		assert_int_equal(kv_join_run(j, &err), 0);
		assert_int_equal(kv_join_rows(j), (size_t)(pushed - start));
		for (int i = start; i < pushed; i++) {
			const struct kv_result *r = kv_join_result(j, (size_t)(i - start));
			for (int f = 0; f < NFEAT; f++) {
				snprintf(ctx, sizeof(ctx), "%s seed %u join t%d row %d f%d T=%lld S=%lld", phase,
					 seed, t, i, f, (long long)rt[i], (long long)S);
				if (before_horizon(t, rt[i], ST_TS_MAX, now)) {
					if (r[f].status != KV_BEFORE_HORIZON || r[f].found || r[f].ts)
						fail_msg("%s: expected a skipped row", ctx);
					continue;
				}
				check_value(model_asof(t, re[i], f, rt[i], S, now), &r[f], f, ctx);
			}
		}
		kv_join_reset(j);
	}
	assert_int_equal(kv_join_skipped(j), skipped);
	kv_join_free(j);
	/* the default policy refuses such a row, naming the horizon */
	if (horizon(t, now) != ST_TS_MIN) {
		assert_int_equal(kv_join_open(db, tname[t], feat_names, NFEAT, ST_TS_MAX, 10, &j, &err), 0);
		ent_name(0, en);
		assert_int_equal(kv_join_push(j, en, strlen(en), horizon(t, now) - 1, &err), ST_ERANGE);
		assert_non_null(strstr(err.msg, "retention horizon"));
		kv_join_free(j);
	}
	free(re);
	free(rt);
}

static void check_reads(struct kv_db *db, const char *phase)
{
	check_point_reads(db, phase, 3000);
	check_multiget(db, phase);
	check_history(db, phase, 400);
	for (int t = 0; t < NTABLES; t++)
		check_join(db, phase, t);
}

static size_t row_cache_bytes; /* per run: without and with a (small, evicting) row cache */

/* A latest read of one random entity, checked against the model, in the middle of writes:
 * this is what catches a row cache serving a row that a write should have invalidated. */
static void check_one_latest(struct kv_db *db)
{
	int t = (int)rnd_range(0, NTABLES - 1), e = (int)rnd_range(0, NENT - 1);
	char en[32], ctx[128];
	ent_name(e, en);
	struct kv_result r[NFEAT];
	struct st_error err;
	assert_int_equal(kv_get(db, tname[t], en, strlen(en), feat_names, NFEAT, &KV_READ_LATEST, r,
				&err), 0);
	for (int f = 0; f < NFEAT; f++) {
		snprintf(ctx, sizeof(ctx), "during writes seed %u cache %zu t%d %s f%d", seed,
			 row_cache_bytes, t, en, f);
		check_value(model_asof(t, e, f, ST_TS_MAX, ST_TS_MAX, clock_now), &r[f], f, ctx);
	}
	kv_result_release(r, NFEAT);
}

/* Compacts every shard and checks that no answer changed (reads of every kind before and
 * after, at the clock's current horizons). */
static void compact_and_check(struct kv_db *db, const char *phase)
{
	struct st_error err;
	char p[64];
	snprintf(p, sizeof(p), "%s/before-compact", phase);
	check_point_reads(db, p, 500);
	check_history(db, p, 100);
	check_multiget(db, p);
	for (int t = 0; t < NTABLES; t++)
		check_join(db, p, t);
	assert_int_equal(kv_compact(db, &err), 0);
	snprintf(p, sizeof(p), "%s/compacted", phase);
	check_point_reads(db, p, 500);
	check_history(db, p, 100);
	check_multiget(db, p);
	for (int t = 0; t < NTABLES; t++)
		check_join(db, p, t);
}

/* A lower bound of the keys the writes put into the store: each put cell is one key, each
 * delete at least one (a tombstone version). Compaction cannot be seen by comparing key
 * counts before and after kv_compact(): background compactions (the write buffer is small)
 * may already have applied the same rule at any moment. */
static uint64_t keys_written_min;

static void test_model(void **state)
{
	keys_written_min = 0;
	for (int t = 0; t < NTABLES; t++)
		for (int e = 0; e < NENT; e++)
			for (int f = 0; f < NFEAT; f++) {
				free(model[t][e][f].w);
				memset(&model[t][e][f], 0, sizeof(model[t][e][f]));
			}
	rng_state = 0x9E3779B97F4A7C15ULL ^ seed ^ row_cache_bytes;
	struct kv_options o;
	kv_options_init(&o);
	o.row_cache_bytes = row_cache_bytes;
	o.nshards = 3;
	o.sync = KV_SYNC_NONE;
	o.clock = test_clock;
	o.write_buffer_bytes = 256 << 10; /* flushes and background compactions during writes */
	struct kv_db *db;
	struct st_error err;
	clock_now = BASE;
	assert_int_equal(kv_open(dir, &o, &db, &err), 0);
	for (int t = 0; t < NTABLES; t++) {
		struct kv_feature_def fd[NFEAT] = {{"fi", KV_I64, 0, 0, 0}, {"fd", KV_F64, 0, 0, 0}, {"fs", KV_STR, 0, 0, 0}};
		struct kv_table tb = {0};
		sprintf(tname[t], "t%d", t);
		strcpy(tb.name, tname[t]);
		tb.ttl_us = retention[t].ttl;
		tb.max_versions = retention[t].maxv;
		tb.retention_us = retention[t].ret;
		tb.nfeatures = NFEAT;
		tb.features = fd;
		assert_int_equal(kv_table_create(db, &tb, &err), 0);
	}
	for (int op = 0; op < NOPS; op++) {
		clock_now = BASE + (int64_t)op * TICK;
		if (op % 8 == 0)
			check_one_latest(db);
		if (op && op % 25000 == 0) {
			char p[32];
			snprintf(p, sizeof(p), "op %d", op);
			compact_and_check(db, p);
		}
		int t = (int)rnd_range(0, NTABLES - 1), e = (int)rnd_range(0, NENT - 1);
		/* event times cluster in a window that moves with the clock (mostly in order, with
		 * late arrivals and exact ties) */
		int64_t ts = clock_now - rnd_range(-2000, 40000);
		if (rnd() % 30 == 0) /* very late data: below a retention horizon when it arrives */
			ts = clock_now - rnd_range(0, 300000);
		ts -= ts % 500; /* ties */
		char en[32];
		ent_name(e, en);
		if (rnd() % 10 == 0) {
			int f = (int)rnd_range(-1, NFEAT - 1); /* -1: all features */
			const char *fn = f >= 0 ? feat_names[f] : NULL;
			assert_int_equal(kv_delete(db, tname[t], en, strlen(en), f >= 0 ? &fn : NULL,
						   f >= 0 ? 1 : 0, ts, &err), 0);
			keys_written_min++;
			for (int k = 0; k < NFEAT; k++) {
				if (f >= 0 && k != f)
					continue;
				struct mcell *c = &model[t][e][k];
				if (c->n == c->cap)
					c->w = realloc(c->w, (c->cap = c->cap ? c->cap * 2 : 8) * sizeof(*c->w));
				c->w[c->n++] = (struct mwrite){.ts = ts, .ingest = clock_now, .tomb = 1};
			}
			continue;
		}
		struct kv_cell cells[NFEAT];
		struct mwrite mw[NFEAT];
		int nc = 0;
		for (int f = 0; f < NFEAT; f++) {
			if (rnd() % 2)
				continue;
			struct mwrite w = {.ts = ts, .ingest = clock_now};
			w.i = (int64_t)(rnd() >> 1) - INT64_MAX / 2;
			w.d = (double)(rnd() % 1000000) / 7.0;
			sprintf(w.s, "s%llu", (unsigned long long)(rnd() % 100000));
			mw[nc] = w;
			cells[nc].entity = en;
			cells[nc].entity_len = strlen(en);
			cells[nc].feature = feat_names[f];
			cells[nc].ts = ts;
			memset(&cells[nc].value, 0, sizeof(cells[nc].value));
			cells[nc].value.type = f == 0 ? KV_I64 : f == 1 ? KV_F64 : KV_STR;
			if (f == 0) cells[nc].value.i64 = w.i;
			else if (f == 1) cells[nc].value.f64 = w.d;
			else { cells[nc].value.ptr = mw[nc].s; cells[nc].value.len = (uint32_t)strlen(w.s); }
			nc++;
		}
		if (!nc)
			continue;
		assert_int_equal(kv_put(db, tname[t], cells, (size_t)nc, &err), 0);
		keys_written_min += (uint64_t)nc;
		for (int k = 0; k < nc; k++) {
			int f = cells[k].value.type == KV_I64 ? 0 : cells[k].value.type == KV_F64 ? 1 : 2;
			struct mcell *c = &model[t][e][f];
			if (c->n == c->cap)
				c->w = realloc(c->w, (c->cap = c->cap ? c->cap * 2 : 8) * sizeof(*c->w));
			c->w[c->n++] = mw[k];
		}
	}
	clock_now = BASE + NOPS * TICK + 1000;
	check_reads(db, "live");
	kv_close(db);
	assert_int_equal(kv_open(dir, &o, &db, &err), 0);
	check_reads(db, "reopened");
	/* Move the clock on so that horizons pass more versions, then compact. */
	clock_now += 15000;
	check_reads(db, "later");
	assert_int_equal(kv_compact(db, &err), 0);
	/* After a full compaction the estimate is the table files' exact entry count. */
	uint64_t after = kv_property_sum(db, "rocksdb.estimate-num-keys");
	if (after >= keys_written_min)
		fail_msg("retention removed no versions: %llu keys after compaction, %llu written",
			 (unsigned long long)after, (unsigned long long)keys_written_min);
	check_reads(db, "compacted");
	clock_now += 120000; /* past most of the history of the retention tables */
	compact_and_check(db, "much later");
	check_reads(db, "much later");
	kv_close(db);
	nftw(dir, rm_cb_fwd, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_model_row_cache(void **state)
{
	row_cache_bytes = 256 << 10; /* far smaller than the data: evictions all the time */
	test_model(state);
	row_cache_bytes = 0;
}


int main(void)
{
	const char *s = getenv("STRATA_SEED");
	seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)getpid();
	rng_state = 0x9E3779B97F4A7C15ULL ^ seed;
	fprintf(stderr, "test_kv_model: seed %u (rerun with STRATA_SEED=%u)\n", seed, seed);
	snprintf(dir, sizeof(dir), "/tmp/strata-model-%d", getpid());
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_model),
					   cmocka_unit_test(test_model_row_cache)};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	nftw(dir, rm_cb_fwd, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
