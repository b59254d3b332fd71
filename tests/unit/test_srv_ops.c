/* Every protocol operation through libstrata against a real stratad, on both io backends:
 * tables, put/delete, get/multi-get (latest, as-of, known-at), history, join, batch,
 * preload jobs, status and the admin HTTP endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_srv_harness.h"

static const char *cur_io;
static const char *const ops_args[] = {"--max-value", "4096", NULL};

#define T0 1767225600000000LL /* 2026-01-01T00:00:00Z in us */
#define DAY 86400000000LL

static int setup(void **state)
{
	struct srvh *h = calloc(1, sizeof(*h));
	srvh_start(h, cur_io, ops_args);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	srvh_stop(*state);
	free(*state);
	return 0;
}

static void ok(int rc, const struct strata_error *e)
{
	if (rc)
		fail_msg("unexpected error %d: %s", rc, e->msg);
}

static void mk_table(strata *c, const char *name)
{
	struct strata_feature_def f[] = {
		{"i", STRATA_I64, 0, 0, 0},   {"d", STRATA_F64, 0, 0, 0},   {"f", STRATA_F32, 0, 0, 0},
		{"s", STRATA_STR, 0, 0, 0},   {"b", STRATA_BYTES, 0, 0, 0}, {"v", STRATA_F32VEC, 3, 0, 0},
		{"l", STRATA_I64LIST, 0, 0, 0},
	};
	struct strata_table t = {0};
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.nfeatures = 7;
	t.features = f;
	struct strata_error e = {0};
	ok(strata_table_create(c, &t, &e), &e);
}

static void test_tables(void **state)
{
	strata *c = srvh_client(*state, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_tables");
	struct strata_table t = {0};
	snprintf(t.name, sizeof(t.name), "t_tables");
	struct strata_feature_def f1 = {"x", STRATA_I64, 0, 0, 0};
	t.nfeatures = 1;
	t.features = &f1;
	assert_int_equal(strata_table_create(c, &t, &e), STRATA_EEXIST);
	assert_non_null(strstr(e.msg, "t_tables"));

	struct strata_table *g;
	ok(strata_table_get(c, "t_tables", &g, &e), &e);
	assert_string_equal(g->name, "t_tables");
	assert_int_equal(g->nfeatures, 7);
	assert_string_equal(g->features[5].name, "v");
	assert_int_equal(g->features[5].type, STRATA_F32VEC);
	assert_int_equal(g->features[5].dim, 3);
	strata_table_free(g);

	struct strata_feature_def add = {"new", STRATA_STR, 0, 0, 0};
	struct strata_alter a = {DAY, 5, 1, &add, -1};
	ok(strata_table_alter(c, "t_tables", &a, &e), &e);
	ok(strata_table_get(c, "t_tables", &g, &e), &e);
	assert_int_equal(g->nfeatures, 8);
	assert_true(g->ttl_us == DAY);
	assert_int_equal(g->max_versions, 5);
	strata_table_free(g);

	struct strata_table **ts;
	size_t n;
	mk_table(c, "t_tables2");
	ok(strata_table_list(c, &ts, &n, &e), &e);
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		seen += !strcmp(ts[i]->name, "t_tables") || !strcmp(ts[i]->name, "t_tables2");
		strata_table_free(ts[i]);
	}
	free(ts);
	assert_int_equal(seen, 2);
	ok(strata_table_drop(c, "t_tables2", &e), &e);
	assert_int_equal(strata_table_get(c, "t_tables2", &g, &e), STRATA_ENOTFOUND);
	assert_int_equal(strata_table_drop(c, "t_tables2", &e), STRATA_ENOTFOUND);
	strata_close(c);
}

static void test_put_get(void **state)
{
	strata *c = srvh_client(*state, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_pg");
	float vec[3] = {1.5f, -2, 3};
	int64_t list[2] = {7, -8};
	struct strata_cell cells[] = {
		{"e1", 2, "i", T0, {.type = STRATA_I64, .i64 = 42}},
		{"e1", 2, "d", T0, {.type = STRATA_F64, .f64 = 2.25}},
		{"e1", 2, "f", T0, {.type = STRATA_F32, .f32 = 0.5f}},
		{"e1", 2, "s", T0, {.type = STRATA_STR, .len = 5, .ptr = "hello"}},
		{"e1", 2, "b", T0, {.type = STRATA_BYTES, .len = 3, .ptr = "\0\1\2"}},
		{"e1", 2, "v", T0, {.type = STRATA_F32VEC, .len = 3, .ptr = vec}},
		{"e1", 2, "l", T0, {.type = STRATA_I64LIST, .len = 2, .ptr = list}},
		{"e1", 2, "i", T0 + DAY, {.type = STRATA_I64, .i64 = 43}},
		{"e2", 2, "i", T0, {.type = STRATA_I64, .i64 = 100}},
	};
	ok(strata_put(c, "t_pg", cells, 9, &e), &e);

	const char *feats[] = {"i", "d", "f", "s", "b", "v", "l"};
	struct strata_result r[7];
	ok(strata_get(c, "t_pg", "e1", 2, feats, 7, NULL, r, &e), &e);
	assert_true(r[0].found && r[0].value.i64 == 43 && r[0].ts == T0 + DAY);
	assert_true(r[1].found && r[1].value.f64 == 2.25);
	assert_true(r[2].found && r[2].value.f32 == 0.5f);
	assert_int_equal(r[3].value.len, 5);
	assert_string_equal(r[3].value.ptr, "hello");
	assert_int_equal(r[4].value.len, 3);
	assert_memory_equal(r[4].value.ptr, "\0\1\2", 3);
	assert_int_equal(r[5].value.len, 3);
	assert_memory_equal(r[5].value.ptr, vec, sizeof(vec));
	assert_int_equal(r[6].value.len, 2);
	assert_memory_equal(r[6].value.ptr, list, sizeof(list));
	assert_true(r[0].ingest_us > 0);
	int64_t first_ingest = r[1].ingest_us;
	strata_result_release(r, 7);

	/* as-of */
	struct strata_read_opts asof = {.as_of = T0 + DAY / 2, .known_at = STRATA_TS_MAX};
	ok(strata_get(c, "t_pg", "e1", 2, feats, 1, &asof, r, &e), &e);
	assert_true(r[0].found && r[0].value.i64 == 42);
	asof.as_of = T0 - 1;
	ok(strata_get(c, "t_pg", "e1", 2, feats, 1, &asof, r, &e), &e);
	assert_false(r[0].found);

	/* known-at: overwrite d at the same event time; a read known at the first ingest
	 * still sees the first value. */
	usleep(2000);
	struct strata_cell over = {"e1", 2, "d", T0, {.type = STRATA_F64, .f64 = 9.0}};
	ok(strata_put(c, "t_pg", &over, 1, &e), &e);
	ok(strata_get(c, "t_pg", "e1", 2, &feats[1], 1, NULL, r, &e), &e);
	assert_true(r[0].value.f64 == 9.0);
	struct strata_read_opts known = {.as_of = STRATA_TS_MAX, .known_at = first_ingest};
	ok(strata_get(c, "t_pg", "e1", 2, &feats[1], 1, &known, r, &e), &e);
	assert_true(r[0].found && r[0].value.f64 == 2.25);

	/* multi-get: entity-major, a missing entity is not found */
	const char *ents[] = {"e1", "nope", "e2"};
	size_t lens[] = {2, 4, 2};
	struct strata_result m[6];
	ok(strata_multiget(c, "t_pg", ents, lens, 3, feats, 2, NULL, m, &e), &e);
	assert_true(m[0].found && m[0].value.i64 == 43);
	assert_true(m[1].found && m[1].value.f64 == 9.0);
	assert_false(m[2].found);
	assert_false(m[3].found);
	assert_true(m[4].found && m[4].value.i64 == 100);
	assert_false(m[5].found);
	strata_result_release(m, 6);

	/* errors: unknown table, unknown feature, type mismatch, value over --max-value */
	assert_int_equal(strata_get(c, "nosuch", "e1", 2, feats, 1, NULL, r, &e), STRATA_ENOTFOUND);
	assert_non_null(strstr(e.msg, "nosuch"));
	const char *bad[] = {"zzz"};
	assert_true(strata_get(c, "t_pg", "e1", 2, bad, 1, NULL, r, &e) < 0);
	struct strata_cell mism = {"e1", 2, "i", T0, {.type = STRATA_STR, .len = 1, .ptr = "x"}};
	assert_int_equal(strata_put(c, "t_pg", &mism, 1, &e), STRATA_ETYPE);
	char big[5000];
	memset(big, 'a', sizeof(big));
	struct strata_cell huge = {"e1", 2, "s", T0, {.type = STRATA_STR, .len = 5000, .ptr = big}};
	assert_int_equal(strata_put(c, "t_pg", &huge, 1, &e), STRATA_ELIMIT);
	assert_non_null(strstr(e.msg, "max-value"));
	/* the connection is still fine after errors */
	ok(strata_ping(c, &e), &e);
	strata_close(c);
}

static void test_history_delete(void **state)
{
	strata *c = srvh_client(*state, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_hist");
	for (int k = 0; k < 5; k++) {
		struct strata_cell cl = {"h", 1, "i", T0 + k * DAY, {.type = STRATA_I64, .i64 = k}};
		ok(strata_put(c, "t_hist", &cl, 1, &e), &e);
	}
	const char *fi[] = {"i"};
	ok(strata_delete(c, "t_hist", "h", 1, fi, 1, T0 + 5 * DAY, &e), &e);
	struct strata_version *v;
	size_t n;
	ok(strata_history(c, "t_hist", "h", 1, "i", STRATA_TS_MIN, STRATA_TS_MAX, 0, STRATA_TS_MAX,
			  &v, &n, &e), &e);
	assert_int_equal(n, 6);
	assert_true(v[0].tombstone && v[0].r.ts == T0 + 5 * DAY);
	assert_true(!v[1].tombstone && v[1].r.value.i64 == 4);
	assert_true(v[5].r.value.i64 == 0);
	for (size_t i = 0; i < n; i++)
		strata_result_release(&v[i].r, 1);
	free(v);
	ok(strata_history(c, "t_hist", "h", 1, "i", T0 + DAY, T0 + 3 * DAY, 2, STRATA_TS_MAX, &v,
			  &n, &e), &e);
	assert_int_equal(n, 2);
	assert_true(v[0].r.value.i64 == 3 && v[1].r.value.i64 == 2);
	for (size_t i = 0; i < n; i++)
		strata_result_release(&v[i].r, 1);
	free(v);
	struct strata_result r;
	ok(strata_get(c, "t_hist", "h", 1, fi, 1, NULL, &r, &e), &e);
	assert_false(r.found);
	struct strata_read_opts o = {.as_of = T0 + 2 * DAY, .known_at = STRATA_TS_MAX};
	ok(strata_get(c, "t_hist", "h", 1, fi, 1, &o, &r, &e), &e);
	assert_true(r.found && r.value.i64 == 2);
	strata_close(c);
}

static void test_join(void **state)
{
	strata *c = srvh_client(*state, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_join");
	for (int k = 0; k < 3; k++) {
		struct strata_cell cl[2] = {
			{"a", 1, "i", T0 + k * DAY, {.type = STRATA_I64, .i64 = 10 + k}},
			{"b", 1, "i", T0 + k * DAY, {.type = STRATA_I64, .i64 = 20 + k}},
		};
		ok(strata_put(c, "t_join", cl, 2, &e), &e);
	}
	const char *fi[] = {"i", "s"};
	strata_join *j;
	ok(strata_join_open(c, "t_join", fi, 2, STRATA_TS_MAX, 3, &j, &e), &e);
	/* rows out of order, more than one chunk (chunk of 3) */
	struct { const char *ent; int64_t ts; int64_t want; } rows[] = {
		{"b", T0 + 2 * DAY, 22}, {"a", T0, 10}, {"a", T0 + DAY + 5, 11},
		{"x", T0, -1}, {"b", T0 - 1, -1}, {"a", T0 + 9 * DAY, 12}, {"b", T0 + DAY, 21},
	};
	size_t nrows = sizeof(rows) / sizeof(rows[0]), out = 0;
	const struct strata_result *row;
	for (size_t i = 0; i < nrows; i++) {
		int rc = strata_join_push(j, rows[i].ent, 1, rows[i].ts, &e);
		assert_true(rc >= 0);
		/* drain in the middle too: results must keep push order */
		while (rc == 1 && out < i && (rc = strata_join_next(j, &row, &e)) == 1) {
			if (rows[out].want < 0)
				assert_false(row[0].found);
			else
				assert_true(row[0].found && row[0].value.i64 == rows[out].want);
			out++;
		}
	}
	int rc;
	while ((rc = strata_join_next(j, &row, &e)) == 1) {
		if (rows[out].want < 0)
			assert_false(row[0].found);
		else
			assert_true(row[0].found && row[0].value.i64 == rows[out].want);
		assert_false(row[1].found);
		out++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(out, nrows);
	assert_int_equal(strata_join_pending(j), 0);
	strata_join_close(j);
	/* unknown table and pushing to a closed join id */
	assert_int_equal(strata_join_open(c, "nosuch", fi, 1, STRATA_TS_MAX, 0, &j, &e),
			 STRATA_ENOTFOUND);
	strata_close(c);
}

/* A join whose rows span many server chunks (each swept in one pass) and many wire pushes,
 * entities repeated across chunks in random order, results drained at random points:
 * every row equals a brute-force as-of over what was written (values and tombstones). */
enum { RJ_ENT = 40, RJ_VER = 6, RJ_ROWS = 5000 };
struct rj_event {
	int64_t ts;
	int del; /* a tombstone of every feature */
	int64_t i;
};
static struct rj_event rj_ev[RJ_ENT][RJ_VER];
static int rj_nev[RJ_ENT];

static uint64_t rj_rng = 0x2545f4914f6cdd1dull;

/* The expected i64 of entity e at ts (-1: none). */
static int64_t rj_expect(int e, int64_t ts)
{
	const struct rj_event *best = NULL;
	for (int k = 0; k < rj_nev[e]; k++)
		if (rj_ev[e][k].ts <= ts && (!best || rj_ev[e][k].ts > best->ts))
			best = &rj_ev[e][k];
	return best && !best->del ? best->i : -1;
}

/* Entity names: half share their first 14 bytes (the join's inline sort key) and differ
 * only after them. */
static int rj_name(char *buf, size_t cap, int k)
{
	return snprintf(buf, cap, k % 2 ? "e%d" : "entity-with-a-shared-prefix-%d", k);
}

static void rj_check(const struct strata_result *row, int e, int64_t ts, size_t n)
{
	int64_t want = e < RJ_ENT ? rj_expect(e, ts) : -1;
	if (want < 0) {
		if (row[0].found || row[1].found || row[2].found)
			fail_msg("row %zu: e%d at %lld should be empty", n, e, (long long)ts);
		return;
	}
	if (!row[0].found || row[0].value.i64 != want)
		fail_msg("row %zu: e%d at %lld: i %lld, want %lld", n, e, (long long)ts,
			 (long long)row[0].value.i64, (long long)want);
	char buf[32];
	snprintf(buf, sizeof(buf), "s%lld", (long long)want);
	assert_true(row[1].found && row[1].value.len == strlen(buf) &&
		    !strcmp(row[1].value.ptr, buf));
	assert_true(row[2].found && row[2].value.len == 3 &&
		    ((float *)row[2].value.ptr)[2] == (float)want);
}

static void test_join_random_chunks(void **state)
{
	strata *c = srvh_client(*state, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_rjoin");
	memset(rj_nev, 0, sizeof(rj_nev)); /* run once per io backend, each on a fresh server */
	char ent[48], sv[32];
	for (int k = 0; k < RJ_ENT - 4; k++) { /* the last 4 entities are never written */
		int n = (int)(srvh_xorshift(&rj_rng) % RJ_VER);
		int len = rj_name(ent, sizeof(ent), k);
		for (int v = 0; v < n; v++) {
			struct rj_event *ev = &rj_ev[k][rj_nev[k]];
			ev->ts = T0 + (int64_t)(srvh_xorshift(&rj_rng) % 1000) * 1000;
			int dup = 0;
			for (int w = 0; w < rj_nev[k]; w++)
				dup |= rj_ev[k][w].ts == ev->ts;
			if (dup)
				continue;
			ev->del = v && srvh_xorshift(&rj_rng) % 4 == 0;
			ev->i = k * 100 + v;
			if (ev->del) {
				ok(strata_delete(c, "t_rjoin", ent, (size_t)len, NULL, 0, ev->ts, &e), &e);
			} else {
				float vec[3] = {0, 0, (float)ev->i};
				snprintf(sv, sizeof(sv), "s%lld", (long long)ev->i);
				struct strata_cell cl[3] = {
					{ent, (size_t)len, "i", ev->ts, {.type = STRATA_I64, .i64 = ev->i}},
					{ent, (size_t)len, "s", ev->ts,
					 {.type = STRATA_STR, .len = (uint32_t)strlen(sv), .ptr = sv}},
					{ent, (size_t)len, "v", ev->ts,
					 {.type = STRATA_F32VEC, .len = 3, .ptr = vec}},
				};
				ok(strata_put(c, "t_rjoin", cl, 3, &e), &e);
			}
			rj_nev[k]++;
		}
	}
	const char *fi[] = {"i", "s", "v"};
	size_t chunks[] = {1, 7, 700, 65536 + 1000};
	for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
		strata_join *j;
		ok(strata_join_open(c, "t_rjoin", fi, 3, STRATA_TS_MAX, chunks[ci], &j, &e), &e);
		size_t rows = chunks[ci] > 1000 ? 70000 : chunks[ci] == 1 ? 300 : RJ_ROWS;
		int *re = malloc(rows * sizeof(*re));
		int64_t *rt = malloc(rows * sizeof(*rt));
		size_t out = 0;
		const struct strata_result *row;
		int rc;
		for (size_t i = 0; i < rows; i++) {
			re[i] = (int)(srvh_xorshift(&rj_rng) % RJ_ENT);
			rt[i] = T0 + ((int64_t)(srvh_xorshift(&rj_rng) % 1100) - 50) * 1000;
			int len = rj_name(ent, sizeof(ent), re[i]);
			rc = strata_join_push(j, ent, (size_t)len, rt[i], &e);
			if (rc < 0)
				fail_msg("push %zu: %s", i, e.msg);
			/* sometimes drain some (not all) of what is ready */
			for (int d = (int)(srvh_xorshift(&rj_rng) % 3); rc == 1 && d > 0 && out < i; d--) {
				if ((rc = strata_join_next(j, &row, &e)) != 1)
					fail_msg("next: %d %s", rc, e.msg);
				rj_check(row, re[out], rt[out], out);
				out++;
			}
			if (srvh_xorshift(&rj_rng) % 500 == 0)
				ok(strata_join_flush(j, &e), &e); /* a partial chunk swept alone */
		}
		while ((rc = strata_join_next(j, &row, &e)) == 1) {
			rj_check(row, re[out], rt[out], out);
			out++;
		}
		if (rc)
			fail_msg("next: %s", e.msg);
		assert_int_equal(out, rows);
		assert_int_equal(strata_join_pending(j), 0);
		strata_join_close(j);
		free(re);
		free(rt);
	}
	strata_close(c);
}

static void test_batch(void **state)
{
	strata *c = srvh_client(*state, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_batch");
	strata_batch *b = strata_batch_new(c);
	char ent[32];
	for (int k = 0; k < 200; k++) {
		snprintf(ent, sizeof(ent), "ent%d", k);
		struct strata_cell cl = {ent, strlen(ent), "i", T0, {.type = STRATA_I64, .i64 = k}};
		assert_int_equal(strata_batch_put(b, "t_batch", &cl, 1), k);
	}
	ok(strata_batch_exec(b, &e), &e);
	for (int k = 0; k < 200; k++)
		ok(strata_batch_status(b, (size_t)k, &e), &e);
	strata_batch_clear(b);
	const char *fi[] = {"i"};
	for (int k = 0; k < 500; k++) {
		snprintf(ent, sizeof(ent), "ent%d", k % 250);
		assert_int_equal(strata_batch_get(b, "t_batch", ent, strlen(ent), fi, 1, NULL), k);
	}
	assert_true(strata_batch_get(b, "nosuch", "x", 1, fi, 1, NULL) == 500);
	ok(strata_batch_exec(b, &e), &e);
	for (int k = 0; k < 500; k++) {
		ok(strata_batch_status(b, (size_t)k, &e), &e);
		size_t n;
		const struct strata_result *r = strata_batch_results(b, (size_t)k, &n);
		assert_int_equal(n, 1);
		if (k % 250 < 200)
			assert_true(r[0].found && r[0].value.i64 == k % 250);
		else
			assert_false(r[0].found);
	}
	assert_int_equal(strata_batch_status(b, 500, &e), STRATA_ENOTFOUND);
	/* executing again re-sends everything and gives the same answers */
	ok(strata_batch_exec(b, &e), &e);
	size_t n1;
	const struct strata_result *r1 = strata_batch_results(b, 7, &n1);
	assert_true(n1 == 1 && r1[0].found && r1[0].value.i64 == 7);
	assert_int_equal(strata_batch_status(b, 500, &e), STRATA_ENOTFOUND);
	strata_batch_free(b);
	strata_close(c);
}

static void test_preload(void **state)
{
	struct srvh *h = *state;
	strata *c = srvh_client(h, NULL);
	struct strata_error e = {0};
	mk_table(c, "t_pre");
	struct strata_preload p;
	strata_preload_init(&p);
	snprintf(p.table, sizeof(p.table), "t_pre");
	snprintf(p.path, sizeof(p.path), "%s/pre.csv", h->dir);
	FILE *f = fopen(p.path, "w");
	fprintf(f, "entity,ts,i,s\n");
	for (int k = 0; k < 1000; k++)
		fprintf(f, "p%d,2026-01-01T00:00:00Z,%d,str%d\n", k, k, k);
	fclose(f);
	uint64_t id;
	ok(strata_preload_submit(c, &p, &id, &e), &e);
	struct strata_job j;
	int64_t deadline = srvh_ms() + 30000;
	do {
		ok(strata_job_get(c, id, &j, &e), &e);
		if (j.state == STRATA_JOB_DONE || j.state == STRATA_JOB_FAILED)
			break;
		usleep(20000);
	} while (srvh_ms() < deadline);
	if (j.state != STRATA_JOB_DONE)
		fail_msg("job state %d: %s", j.state, j.error);
	assert_int_equal(j.rows, 1000);
	assert_string_equal(j.req.table, "t_pre");
	const char *fi[] = {"i", "s"};
	struct strata_result r[2];
	ok(strata_get(c, "t_pre", "p777", 4, fi, 2, NULL, r, &e), &e);
	assert_true(r[0].found && r[0].value.i64 == 777);
	assert_string_equal(r[1].value.ptr, "str777");
	strata_result_release(r, 2);
	struct strata_job *js;
	size_t n;
	ok(strata_job_list(c, &js, &n, &e), &e);
	assert_true(n >= 1 && js[0].id == id);
	free(js);
	assert_true(strata_job_get(c, 999999, &j, &e) == STRATA_ENOTFOUND);
	assert_true(strata_job_cancel(c, 999999, &e) < 0);
	snprintf(p.path, sizeof(p.path), "%s/does-not-exist.csv", h->dir);
	assert_true(strata_preload_submit(c, &p, &id, &e) < 0);
	strata_close(c);
}

static void test_status_admin(void **state)
{
	struct srvh *h = *state;
	strata *c = srvh_client(h, NULL);
	struct strata_error e = {0};
	char *json;
	ok(strata_status(c, &json, &e), &e);
	char want[64];
	snprintf(want, sizeof(want), "\"io\":\"%s\"", cur_io);
	assert_non_null(strstr(json, want));
	free(json);
	strata_close(c);
	int st;
	char *body = srvh_http_get(h, "/health", &st);
	assert_int_equal(st, 200);
	assert_string_equal(body, "ok\n");
	free(body);
	body = srvh_http_get(h, "/metrics", &st);
	assert_int_equal(st, 200);
	assert_non_null(strstr(body, "strata_requests_total{op=\"get\"}"));
	assert_non_null(strstr(body, "strata_request_duration_seconds_bucket{op=\"put\",le=\"+Inf\"}"));
	assert_non_null(strstr(body, "strata_block_cache_hit_ratio"));
	assert_non_null(strstr(body, "strata_memtable_bytes"));
	assert_non_null(strstr(body, "strata_preload_jobs{state=\"done\"}"));
	assert_non_null(strstr(body, "strata_connections "));
	free(body);
	body = srvh_http_get(h, "/status", &st);
	assert_int_equal(st, 200);
	assert_non_null(strstr(body, "\"connections\":"));
	free(body);
	body = srvh_http_get(h, "/nope", &st);
	assert_int_equal(st, 404);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),   cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_history_delete), cmocka_unit_test(test_join),
		cmocka_unit_test(test_join_random_chunks),
		cmocka_unit_test(test_batch),    cmocka_unit_test(test_preload),
		cmocka_unit_test(test_status_admin),
	};
	int failed = 0;
	for (size_t i = 0; i < 2; i++) {
		cur_io = srvh_ios[i];
		char name[64];
		snprintf(name, sizeof(name), "srv_ops[%s]", cur_io);
		/* Group state is shared: one server per backend for the whole group. */
		failed += _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]),
						  setup, teardown);
	}
	return failed;
}
