/* A point-in-time join over history, as a training job runs it: events spread over the last
 * 60 days (real clock), a table with ttl 5 days, 20,000 samples over the same period (some
 * before any event of their entity, some for unknown entities, some exactly at an event's
 * time or exactly ttl after it). Every cell must equal a brute-force reference computed
 * here: the newest event at or before the sample's ts, present if it is at most 5 days
 * older than the sample, stale otherwise. This is what `ttl` measured from the wall clock
 * got wrong: almost every cell of last month came back empty. */
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

#include "store/kv.h"

#define NENT 300
#define NEVENTS 20000
#define NSAMPLES 20000
#define DAY (86400LL * 1000000)
#define TTL (5 * DAY)

struct event {
	int e;
	int64_t ts, v;
};

static struct event ev[NEVENTS];
static char dir[256];
static uint64_t rng = 0x243F6A8885A308D3ULL;

static uint64_t rnd(void)
{
	return tu_xorshift(&rng);
}


/* The brute-force reference: status and value for entity e as of T. */
static int first[NENT + 1]; /* entity e's events: ev[first[e]..first[e+1]) after sorting */

static int cmp_event(const void *a, const void *b)
{
	const struct event *x = a, *y = b;
	return x->e != y->e ? x->e - y->e : (x->v > y->v) - (x->v < y->v);
}

/* The same (entity, ts) written twice: the later write (larger v) wins. */
static enum kv_status reference(int e, int64_t T, int64_t ttl, int64_t *v)
{
	const struct event *best = NULL;
	if (e >= NENT)
		return KV_ABSENT;
	for (int i = first[e]; i < first[e + 1]; i++)
		if (ev[i].ts <= T && (!best || ev[i].ts > best->ts ||
				      (ev[i].ts == best->ts && ev[i].v > best->v)))
			best = &ev[i];
	if (!best)
		return KV_ABSENT;
	*v = best->v;
	return !ttl || T - best->ts <= ttl ? KV_PRESENT : KV_STALE;
}

static void run_join(struct kv_db *db, const char *table, int64_t ttl, const int *se,
		     const int64_t *st)
{
	struct st_error err;
	const char *f = "x";
	struct kv_join *j;
	assert_int_equal(kv_join_open(db, table, &f, 1, ST_TS_MAX, 0, &j, &err), 0);
	char name[32];
	for (int i = 0; i < NSAMPLES; i++) {
		int n = snprintf(name, sizeof(name), "user-%d", se[i]);
		assert_int_equal(kv_join_push(j, name, (size_t)n, st[i], &err), 0);
	}
	assert_int_equal(kv_join_run(j, &err), 0);
	int present = 0, stale = 0;
	for (int i = 0; i < NSAMPLES; i++) {
		const struct kv_result *r = kv_join_result(j, (size_t)i);
		int64_t v = 0;
		enum kv_status want = reference(se[i], st[i], ttl, &v);
		if (r->status != want)
			fail_msg("%s row %d (user-%d at %lld): status %s, reference %s", table, i, se[i],
				 (long long)st[i], kv_status_name(r->status), kv_status_name(want));
		if (want == KV_PRESENT && r->value.i64 != v)
			fail_msg("%s row %d: value %lld, reference %lld", table, i,
				 (long long)r->value.i64, (long long)v);
		present += want == KV_PRESENT;
		stale += want == KV_STALE;
	}
	fprintf(stderr, "%s: %d present, %d stale, %d absent cells, all as the reference\n", table,
		present, stale, NSAMPLES - present - stale);
	assert_true(present > NSAMPLES / 2); /* the workload really exercises the history */
	assert_true(!ttl || stale > 100);
	kv_join_free(j);
}

static struct kv_db *open_store(void)
{
	struct kv_options o;
	kv_options_init(&o);
	o.sync = KV_SYNC_NONE;
	struct kv_db *db;
	struct st_error err;
	assert_int_equal(kv_open(dir, &o, &db, &err), 0);
	return db;
}

static void test_join_history(void **state)
{
	struct kv_db *db = open_store();
	struct st_error err;
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}};
	struct kv_table t = {.name = "clicks", .ttl_us = TTL, .nfeatures = 1, .features = f};
	assert_int_equal(kv_table_create(db, &t, &err), 0);
	struct kv_table t0 = {.name = "clicks_nottl", .nfeatures = 1, .features = f};
	assert_int_equal(kv_table_create(db, &t0, &err), 0);

	int64_t now = (int64_t)time(NULL) * 1000000, start = now - 60 * DAY;
	char name[32];
	for (int i = 0; i < NEVENTS; i++) {
		/* entities 0..NENT-1 have events; sparse ones so that gaps exceed the ttl */
		ev[i].e = (int)(rnd() % NENT);
		if (ev[i].e % 4 == 0 && rnd() % 30) /* every fourth entity: a few events only */
			ev[i].e++;
		int64_t span = ev[i].e % 3 ? 60 * DAY : 20 * DAY; /* some start late */
		ev[i].ts = now - (int64_t)(rnd() % (uint64_t)span);
		ev[i].ts -= ev[i].ts % 1000000; /* whole seconds: exact-time samples below */
		ev[i].v = (int64_t)i;
		int n = snprintf(name, sizeof(name), "user-%d", ev[i].e);
		struct kv_cell c = {name, (size_t)n, "x", ev[i].ts, {.type = KV_I64, .i64 = ev[i].v}};
		assert_int_equal(kv_put(db, "clicks", &c, 1, &err), 0);
		assert_int_equal(kv_put(db, "clicks_nottl", &c, 1, &err), 0);
	}
	/* the reference looks at one entity's events: sort them by entity */
	qsort(ev, NEVENTS, sizeof(*ev), cmp_event);
	for (int i = 0, e = 0; e <= NENT; e++) {
		first[e] = i;
		while (i < NEVENTS && ev[i].e == e)
			i++;
	}
	int *se = malloc(NSAMPLES * sizeof(*se));
	int64_t *st = malloc(NSAMPLES * sizeof(*st));
	for (int i = 0; i < NSAMPLES; i++) {
		se[i] = (int)(rnd() % (NENT + 20)); /* some unknown entities */
		switch (rnd() % 10) {
		case 0: /* exactly at an event, or exactly ttl after it */
			st[i] = ev[rnd() % NEVENTS].ts + (rnd() % 2 ? TTL : 0);
			break;
		case 1: /* before any event */
			st[i] = start - (int64_t)(rnd() % (uint64_t)DAY);
			break;
		default:
			st[i] = start + (int64_t)(rnd() % (uint64_t)(60 * DAY));
		}
	}
	run_join(db, "clicks", TTL, se, st);
	run_join(db, "clicks_nottl", 0, se, st);
	free(se);
	free(st);
	kv_close(db);
}

/* Joins one after another reuse a large result chunk (kv_join.c keeps the last one freed):
 * a join of strings (results owning memory, released when the join ends), then joins of
 * numbers over the same chunk, whose rows fall where strings were. Every cell must be the
 * new join's answer: absent rows show nothing of the strings before, nothing leaks (ASan). */
#define REUSE_ROWS 200000 /* x 2 features x 48 bytes: above the size that gets a mapping */

static void reuse_join(struct kv_db *db, const char *const *f, size_t nf, int unknown_every)
{
	struct st_error err;
	struct kv_join *j;
	assert_int_equal(kv_join_open(db, "mixed", f, nf, ST_TS_MAX, REUSE_ROWS, &j, &err), 0);
	char name[32];
	for (int i = 0; i < REUSE_ROWS; i++) {
		int e = unknown_every && i % unknown_every == 0 ? 1000 + i % 7 : i % 50;
		int n = snprintf(name, sizeof(name), "e%d", e);
		assert_true(kv_join_push(j, name, (size_t)n, 2000000, &err) >= 0);
	}
	assert_int_equal(kv_join_run(j, &err), 0);
	for (int i = 0; i < REUSE_ROWS; i++) {
		const struct kv_result *r = kv_join_result(j, (size_t)i);
		int known = !(unknown_every && i % unknown_every == 0);
		for (size_t k = 0; k < nf; k++) {
			assert_int_equal(r[k].found, known);
			assert_int_equal(r[k].status, known ? KV_PRESENT : KV_ABSENT);
			if (!known) {
				assert_null(r[k].value.ptr);
				continue;
			}
			if (f[k][0] == 's') {
				snprintf(name, sizeof(name), "v%d", i % 50);
				assert_string_equal(r[k].value.ptr, name);
			} else {
				assert_int_equal(r[k].value.i64, i % 50);
			}
		}
	}
	kv_join_free(j);
}

static void test_join_chunk_reuse(void **state)
{
	struct kv_db *db = open_store();
	struct st_error err;
	struct kv_feature_def f[] = {{"s", KV_STR, 0, 0, 0}, {"x", KV_I64, 0, 0, 0}};
	struct kv_table t = {.name = "mixed", .nfeatures = 2, .features = f};
	assert_int_equal(kv_table_create(db, &t, &err), 0);
	char name[16], val[16];
	for (int e = 0; e < 50; e++) {
		int n = snprintf(name, sizeof(name), "e%d", e);
		int m = snprintf(val, sizeof(val), "v%d", e);
		struct kv_cell c[2] = {
			{name, (size_t)n, "s", 1000000, {.type = KV_STR, .len = (uint32_t)m, .ptr = val}},
			{name, (size_t)n, "x", 1000000, {.type = KV_I64, .i64 = e}}};
		assert_int_equal(kv_put(db, "mixed", c, 2, &err), 0);
	}
	const char *both[] = {"s", "x"}, *num[] = {"x", "x"};
	reuse_join(db, both, 2, 0);
	reuse_join(db, num, 2, 3);
	reuse_join(db, both, 2, 5);
	reuse_join(db, num, 1, 2);
	kv_close(db);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-joinhist-%d", getpid());
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_join_history),
					   cmocka_unit_test(test_join_chunk_reuse)};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	tu_rm_rf(dir);
	return rc;
}
