/* Unit tests of the store's semantics, one behaviour each: reads, tombstones, known-at,
 * retention (hidden and physically removed), the registry, errors, and replication hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <jansson.h>
#include <rocksdb/c.h>
#include <unistd.h>

#include "store/kv.h"

static int64_t now_us;
static int64_t fake_clock(void *a) { return now_us; }
static char dir[256], dir2[256];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static struct kv_db *open_db(const char *d)
{
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = 2;
	o.clock = fake_clock;
	o.sync = KV_SYNC_NONE;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(d, &o, &db, &err))
		fail_msg("open: %s", err.msg);
	return db;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-read-%d", getpid());
	snprintf(dir2, sizeof(dir2), "/tmp/strata-read2-%d", getpid());
	rm_rf(dir);
	rm_rf(dir2);
	now_us = 1000 * 1000000LL;
	*state = open_db(dir);
	return 0;
}

static int teardown(void **state)
{
	kv_close(*state);
	rm_rf(dir);
	rm_rf(dir2);
	return 0;
}

static void mk_table(struct kv_db *db, const char *name, int64_t ttl, uint32_t maxv)
{
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}, {"s", KV_STR, 0, 0, 0}};
	struct kv_table t = {0};
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.ttl_us = ttl;
	t.max_versions = maxv;
	t.nfeatures = 2;
	t.features = f;
	struct st_error err;
	if (kv_table_create(db, &t, &err))
		fail_msg("create: %s", err.msg);
}

static void put_x(struct kv_db *db, const char *table, const char *e, int64_t ts, int64_t x)
{
	struct kv_cell c = {e, strlen(e), "x", ts, {.type = KV_I64, .i64 = x}};
	struct st_error err;
	if (kv_put(db, table, &c, 1, &err))
		fail_msg("put: %s", err.msg);
	now_us += 1; /* distinct ingest times */
}

/* Reads x with its status. */
static struct kv_result get_r(struct kv_db *db, const char *table, const char *e, int64_t as_of,
			      int64_t known_at)
{
	const char *f = "x";
	struct kv_result r;
	struct kv_read_opts o = {as_of, known_at, 0};
	struct st_error err;
	if (kv_get(db, table, e, strlen(e), &f, 1, &o, &r, &err))
		fail_msg("get: %s", err.msg);
	return r;
}

/* Reads x at (as_of, known_at); returns the value or -1 when there is none. */
static int64_t get_x(struct kv_db *db, const char *table, const char *e, int64_t as_of,
		     int64_t known_at)
{
	struct kv_result r = get_r(db, table, e, as_of, known_at);
	int64_t v = r.found ? r.value.i64 : -1;
	kv_result_release(&r, 1);
	return v;
}

#define LATEST ST_TS_MAX

static void test_latest_and_asof(void **state)
{
	struct kv_db *db = *state;
	mk_table(db, "t", 0, 0);
	put_x(db, "t", "u1", 300, 3);
	put_x(db, "t", "u1", 100, 1); /* arrives late */
	put_x(db, "t", "u1", 200, 2);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 3);
	assert_int_equal(get_x(db, "t", "u1", 250, LATEST), 2);
	assert_int_equal(get_x(db, "t", "u1", 200, LATEST), 2);
	assert_int_equal(get_x(db, "t", "u1", 199, LATEST), 1);
	assert_int_equal(get_x(db, "t", "u1", 99, LATEST), -1);
	assert_int_equal(get_x(db, "t", "u2", LATEST, LATEST), -1);
	/* the other feature of the same entity is untouched */
	const char *s = "s";
	struct kv_result r;
	assert_int_equal(kv_get(db, "t", "u1", 2, &s, 1, &KV_READ_LATEST, &r, NULL), 0);
	assert_false(r.found);
}

static void test_overwrite_and_known_at(void **state)
{
	struct kv_db *db = *state;
	mk_table(db, "t", 0, 0);
	put_x(db, "t", "u1", 100, 1);
	int64_t between = now_us;
	now_us += 10;
	put_x(db, "t", "u1", 100, 7); /* same cell rewritten: later write wins */
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 7);
	assert_int_equal(get_x(db, "t", "u1", 100, between), 1); /* as it was known then */
	assert_int_equal(get_x(db, "t", "u1", 100, 0), -1);       /* before anything */
	/* late data: a training set built at `between` is rebuilt bit-for-bit */
	put_x(db, "t", "u1", 50, 5);
	assert_int_equal(get_x(db, "t", "u1", 60, between), -1);
	assert_int_equal(get_x(db, "t", "u1", 60, LATEST), 5);
}

static void test_tombstones(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	mk_table(db, "t", 0, 0);
	put_x(db, "t", "u1", 100, 1);
	put_x(db, "t", "u1", 300, 3);
	assert_int_equal(kv_delete(db, "t", "u1", 2, NULL, 0, 200, &err), 0);
	now_us++;
	assert_int_equal(get_x(db, "t", "u1", 150, LATEST), 1);  /* before the delete */
	assert_int_equal(get_x(db, "t", "u1", 200, LATEST), -1); /* at it */
	assert_int_equal(get_x(db, "t", "u1", 250, LATEST), -1); /* after it */
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 3); /* newer value wins */
	struct kv_version *v;
	size_t n;
	assert_int_equal(kv_history(db, "t", "u1", 2, "x", ST_TS_MIN, ST_TS_MAX, 0, LATEST, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].r.ts, 300);
	assert_int_equal(v[1].tombstone, 1);
	assert_int_equal(v[1].r.ts, 200);
	assert_int_equal(v[2].r.value.i64, 1);
	kv_history_free(v, n);
	/* deleting one named feature leaves the others */
	const char *x = "x";
	assert_int_equal(kv_delete(db, "t", "u1", 2, &x, 1, 400, &err), 0);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), -1);
	assert_int_equal(kv_delete(db, "t", "u1", 2, (const char *[]){"nope"}, 1, 400, &err), ST_ENOTFOUND);
}

static void test_history_range_limit(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	mk_table(db, "t", 0, 0);
	for (int i = 1; i <= 10; i++)
		put_x(db, "t", "u1", i * 10, i);
	struct kv_version *v;
	size_t n;
	assert_int_equal(kv_history(db, "t", "u1", 2, "x", 25, 75, 0, LATEST, &v, &n, &err), 0);
	assert_int_equal(n, 5); /* 70,60,50,40,30 newest first */
	assert_int_equal(v[0].r.ts, 70);
	assert_int_equal(v[4].r.ts, 30);
	kv_history_free(v, n);
	assert_int_equal(kv_history(db, "t", "u1", 2, "x", ST_TS_MIN, ST_TS_MAX, 3, LATEST, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].r.ts, 100);
	kv_history_free(v, n);
	assert_int_equal(kv_history(db, "t", "u1", 2, "x", 80, 20, 0, LATEST, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	kv_history_free(v, n);
}

static void test_ttl(void **state)
{
	struct kv_db *db = *state;
	int64_t base = now_us;
	mk_table(db, "t", 100, 0);
	put_x(db, "t", "u1", base - 50, 1);
	/* freshness is relative to the read's own time T */
	assert_int_equal(get_x(db, "t", "u1", base - 50 + 100, LATEST), 1);
	assert_int_equal(get_x(db, "t", "u1", base - 50 + 101, LATEST), -1);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 1);
	now_us = base + 60; /* now - ts = 110 > ttl: stale for a latest read... */
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), -1);
	/* ...but an as-of read in the past still sees it: ttl is not measured from now */
	assert_int_equal(get_x(db, "t", "u1", base - 40, LATEST), 1);
	now_us = base + 1000000;
	assert_int_equal(get_x(db, "t", "u1", base - 40, LATEST), 1);
	/* a stale value says so, with its event time, and withholds the value */
	struct kv_result r = get_r(db, "t", "u1", LATEST, LATEST);
	assert_int_equal(r.status, KV_STALE);
	assert_int_equal(r.found, 0);
	assert_int_equal(r.ts, base - 50);
	assert_int_equal(r.value.type, KV_NONE);
	r = get_r(db, "t", "nobody", LATEST, LATEST);
	assert_int_equal(r.status, KV_ABSENT);
	r = get_r(db, "t", "u1", base - 40, LATEST);
	assert_int_equal(r.status, KV_PRESENT);
	kv_result_release(&r, 1);
	/* a compaction deletes nothing because of the ttl */
	struct st_error err;
	assert_int_equal(kv_compact(db, &err), 0);
	assert_int_equal(get_x(db, "t", "u1", base - 40, LATEST), 1);
}

static void test_feature_ttl(void **state)
{
	struct kv_db *db = *state;
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}, {"fast", KV_I64, 0, 0, 10},
				     {"none", KV_I64, 0, 0, KV_TTL_NONE}};
	struct kv_table t = {.name = "ft", .ttl_us = 100, .nfeatures = 3, .features = f};
	struct st_error err;
	assert_int_equal(kv_table_create(db, &t, &err), 0);
	struct kv_cell c[3] = {{"e", 1, "x", 0, {.type = KV_I64, .i64 = 1}},
			       {"e", 1, "fast", 0, {.type = KV_I64, .i64 = 2}},
			       {"e", 1, "none", 0, {.type = KV_I64, .i64 = 3}}};
	assert_int_equal(kv_put(db, "ft", c, 3, &err), 0);
	const char *names[] = {"x", "fast", "none"};
	struct kv_result r[3];
	struct kv_read_opts o = {50, ST_TS_MAX, 0};
	assert_int_equal(kv_get(db, "ft", "e", 1, names, 3, &o, r, &err), 0);
	assert_int_equal(r[0].status, KV_PRESENT); /* table ttl 100 */
	assert_int_equal(r[1].status, KV_STALE);   /* own ttl 10 */
	assert_int_equal(r[2].status, KV_PRESENT); /* no limit */
	kv_result_release(r, 3);
	o.as_of = 1000000;
	assert_int_equal(kv_get(db, "ft", "e", 1, names, 3, &o, r, &err), 0);
	assert_int_equal(r[0].status, KV_STALE);
	assert_int_equal(r[2].status, KV_PRESENT);
	assert_int_equal(r[2].value.i64, 3);
	kv_result_release(r, 3);
	/* the schema keeps it across a reopen */
	kv_close(db);
	*state = db = open_db(dir);
	struct kv_table *got;
	assert_int_equal(kv_table_get(db, "ft", &got, &err), 0);
	assert_int_equal(got->features[1].ttl_us, 10);
	assert_int_equal(got->features[2].ttl_us, KV_TTL_NONE);
	assert_int_equal(kv_feature_ttl(got, &got->features[0]), 100);
	kv_table_free(got);
}

static void mk_retained(struct kv_db *db, const char *name, int64_t ttl, uint32_t maxv,
			int64_t retention)
{
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}};
	struct kv_table t = {.ttl_us = ttl, .max_versions = maxv, .retention_us = retention,
			     .nfeatures = 1, .features = f};
	snprintf(t.name, sizeof(t.name), "%s", name);
	struct st_error err;
	if (kv_table_create(db, &t, &err))
		fail_msg("create: %s", err.msg);
}

static void test_retention_horizon(void **state)
{
	struct kv_db *db = *state;
	int64_t base = now_us;
	mk_retained(db, "r", 0, 0, 1000);
	put_x(db, "r", "u", base - 5000, 1);
	put_x(db, "r", "u", base - 3000, 2);
	put_x(db, "r", "u", base + 1500, 3);
	/* H = now - 1000 = base + 1000, after every ingest: reads at T >= H answer as if
	 * nothing were removed */
	now_us = base + 2000;
	assert_int_equal(get_x(db, "r", "u", base + 1000, LATEST), 2);
	assert_int_equal(get_x(db, "r", "u", LATEST, LATEST), 3);
	/* before the horizon: a clear error, never a silently wrong value */
	const char *f = "x";
	struct kv_result r;
	struct kv_read_opts o = {base - 4000, ST_TS_MAX, 0};
	struct st_error err;
	assert_int_equal(kv_get(db, "r", "u", 1, &f, 1, &o, &r, &err), ST_ERANGE);
	assert_non_null(strstr(err.msg, "retention horizon"));
	assert_non_null(strstr(err.msg, "'r'"));
	o = (struct kv_read_opts){ST_TS_MAX, base - 4000, 0};
	assert_int_equal(kv_get(db, "r", "u", 1, &f, 1, &o, &r, &err), ST_ERANGE);
	assert_non_null(strstr(err.msg, "known-at"));
	/* compaction removes what no read at T >= H can see, and no answer changes */
	assert_int_equal(kv_compact(db, &err), 0);
	assert_int_equal(kv_property_sum(db, "rocksdb.estimate-num-keys"), 2);
	assert_int_equal(get_x(db, "r", "u", now_us - 1000, LATEST), 2);
	assert_int_equal(get_x(db, "r", "u", LATEST, LATEST), 3);
	/* history: versions after H plus the one in effect at H */
	struct kv_version *v;
	size_t n;
	assert_int_equal(kv_history(db, "r", "u", 1, "x", ST_TS_MIN, ST_TS_MAX, 0, LATEST, &v, &n,
				    &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].r.value.i64, 3);
	assert_int_equal(v[1].r.value.i64, 2);
	kv_history_free(v, n);
	/* raising the retention cannot bring back what may have been removed */
	struct kv_alter al = KV_ALTER_NONE;
	al.retention_us = 100000;
	int64_t h_before = now_us - 1000;
	assert_int_equal(kv_table_alter(db, "r", &al, &err), 0);
	o = (struct kv_read_opts){h_before - 1, ST_TS_MAX, 0};
	assert_int_equal(kv_get(db, "r", "u", 1, &f, 1, &o, &r, &err), ST_ERANGE);
	kv_close(db);
	*state = db = open_db(dir);
	assert_int_equal(kv_get(db, "r", "u", 1, &f, 1, &o, &r, &err), ST_ERANGE);
	assert_int_equal(get_x(db, "r", "u", h_before, LATEST), 2);
}

static void test_retention_tombstone_and_ttl(void **state)
{
	struct kv_db *db = *state;
	int64_t base = now_us;
	struct st_error err;
	/* a tombstone in effect at H: everything at or below it goes in a full compaction
	 * (once it was ingested before H) */
	mk_retained(db, "tomb", 0, 0, 1000);
	put_x(db, "tomb", "u", base - 5000, 1);
	assert_int_equal(kv_delete(db, "tomb", "u", 1, NULL, 0, base - 4000, &err), 0);
	now_us++;
	put_x(db, "tomb", "v", base - 5000, 7);
	/* ttl 500: stale for every read at or after H once ts + 500 < H */
	mk_retained(db, "fresh", 500, 0, 1000);
	put_x(db, "fresh", "u", base - 9000, 1);
	put_x(db, "fresh", "u", base - 1200, 2);
	assert_int_equal(get_x(db, "tomb", "u", LATEST, LATEST), -1);
	assert_int_equal(get_x(db, "tomb", "v", LATEST, LATEST), 7);
	struct kv_result r = get_r(db, "fresh", "u", LATEST, LATEST);
	assert_int_equal(r.status, KV_STALE); /* ts + ttl >= H: may be kept, says stale */
	now_us = base + 1100; /* H = base + 100, after every ingest: the version at base - 1200
			       * is stale for every read at T >= H */
	r = get_r(db, "fresh", "u", LATEST, LATEST);
	assert_int_equal(r.status, KV_ABSENT);
	assert_int_equal(kv_compact(db, &err), 0);
	/* tomb/u: nothing; tomb/v: its one version; fresh/u: nothing */
	assert_int_equal(kv_property_sum(db, "rocksdb.estimate-num-keys"), 1);
	r = get_r(db, "fresh", "u", LATEST, LATEST);
	assert_int_equal(r.status, KV_ABSENT);
	assert_int_equal(get_x(db, "tomb", "u", LATEST, LATEST), -1);
	assert_int_equal(get_x(db, "tomb", "v", LATEST, LATEST), 7);
}

static void test_max_versions(void **state)
{
	struct kv_db *db = *state;
	mk_table(db, "t", 0, 2);
	put_x(db, "t", "u1", 10, 1);
	put_x(db, "t", "u1", 20, 2);
	put_x(db, "t", "u1", 30, 3);
	put_x(db, "t", "u1", 30, 33); /* same event time: still one version */
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 33);
	assert_int_equal(get_x(db, "t", "u1", 25, LATEST), 2);
	assert_int_equal(get_x(db, "t", "u1", 15, LATEST), -1); /* third newest: not kept */
	struct kv_version *v;
	size_t n;
	assert_int_equal(kv_history(db, "t", "u1", 2, "x", ST_TS_MIN, ST_TS_MAX, 0, LATEST, &v, &n, NULL), 0);
	assert_int_equal(n, 2);
	kv_history_free(v, n);
}

static uint64_t nkeys(struct kv_db *db)
{
	struct st_error err;
	assert_int_equal(kv_compact(db, &err), 0);
	return kv_property_sum(db, "rocksdb.estimate-num-keys");
}

static void test_retention_removes_data(void **state)
{
	struct kv_db *db = *state;
	mk_retained(db, "ret", 1000, 0, 100);
	mk_table(db, "maxv", 0, 3);
	int64_t base = now_us;
	for (int i = 0; i < 50; i++) {
		put_x(db, "ret", "u1", base + 400 - 10 * i, i);
		put_x(db, "maxv", "u2", 10 * i, i);
	}
	/* maxv keeps 3 versions; ret keeps what is newer than H = now - 100 = base + 200 and
	 * the one in effect at H (ttl 1000 keeps it visible); every write was ingested before
	 * H, so no known-at read at or after H needs the others */
	now_us = base + 300;
	uint64_t k = nkeys(db);
	int kept = 0;
	for (int i = 0; i < 50; i++)
		kept += base + 400 - 10 * i > now_us - 100;
	assert_int_equal(kept, 20);
	assert_int_equal(k, 3 + (uint64_t)kept + 1);
	now_us = base + 100000;
	assert_int_equal(nkeys(db), 3); /* the last one is stale for every read after H */
	assert_int_equal(get_x(db, "maxv", "u2", LATEST, LATEST), 49);
	assert_int_equal(get_x(db, "maxv", "u2", 475, LATEST), 47);
}

/* A data directory from before retention existed: its table records have no retention_us
 * (nor horizon_floor_us, nor per-feature ttl_us). It opens with the old ttl as the freshness
 * rule and retention 0: past as-of reads see what was fresh then, a compaction keeps it. */
static void rewrite_as_old_record(const char *name)
{
	char path[300], key[64];
	snprintf(path, sizeof(path), "%s/meta", dir);
	snprintf(key, sizeof(key), "table/%s", name);
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *rerr = NULL;
	rocksdb_t *m = rocksdb_open(o, path, &rerr);
	assert_null(rerr);
	size_t vl;
	char *v = rocksdb_get(m, ro, key, strlen(key), &vl, &rerr);
	assert_non_null(v);
	json_t *rec = json_loadb(v, vl, 0, NULL);
	rocksdb_free(v);
	assert_non_null(rec);
	assert_int_equal(json_object_del(rec, "retention_us"), 0);
	json_object_del(rec, "horizon_floor_us");
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(rec, "features"), i, f)
		json_object_del(f, "ttl_us");
	char *old = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	assert_null(strstr(old, "retention"));
	rocksdb_put(m, wo, key, strlen(key), old, strlen(old), &rerr);
	assert_null(rerr);
	free(old);
	json_decref(rec);
	rocksdb_close(m);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_readoptions_destroy(ro);
	rocksdb_options_destroy(o);
}

static void test_old_data_dir(void **state)
{
	struct kv_db *db = *state;
	int64_t base = now_us;
	mk_table(db, "old", 100, 0);
	put_x(db, "old", "u1", base - 50, 1);
	kv_close(db);
	rewrite_as_old_record("old");
	*state = db = open_db(dir);
	struct kv_table *t;
	struct st_error err;
	assert_int_equal(kv_table_get(db, "old", &t, &err), 0);
	assert_int_equal(t->retention_us, 0);
	assert_int_equal(t->ttl_us, 100);
	kv_table_free(t);
	now_us = base + 1000000; /* long after: stale now, fresh at its own time */
	assert_int_equal(get_x(db, "old", "u1", base - 40, LATEST), 1);
	struct kv_result r = get_r(db, "old", "u1", LATEST, LATEST);
	assert_int_equal(r.status, KV_STALE);
	assert_int_equal(kv_compact(db, &err), 0);
	assert_int_equal(get_x(db, "old", "u1", base - 40, LATEST), 1);
	/* a read far in the past is no error: retention 0 has no horizon */
	assert_int_equal(get_x(db, "old", "u1", 1, LATEST), -1);
}

static void test_registry(void **state)
{
	struct kv_db *db = *state;
	struct st_error err = {0};
	mk_table(db, "b", 0, 0);
	mk_table(db, "a", 0, 0);
	struct kv_feature_def f = {"x", KV_I64, 0, 0, 0};
	struct kv_table t = {.name = "a", .nfeatures = 1, .features = &f};
	assert_int_equal(kv_table_create(db, &t, &err), ST_EEXIST);
	struct kv_table bad = {.name = "no/slash", .nfeatures = 1, .features = &f};
	assert_int_equal(kv_table_create(db, &bad, &err), ST_EINVAL);
	struct kv_table nofeat = {.name = "c"};
	assert_int_equal(kv_table_create(db, &nofeat, &err), ST_EINVAL);
	struct kv_feature_def dup[] = {{"x", KV_I64, 0, 0, 0}, {"x", KV_F64, 0, 0, 0}};
	struct kv_table d = {.name = "d", .nfeatures = 2, .features = dup};
	assert_int_equal(kv_table_create(db, &d, &err), ST_EEXIST);

	struct kv_table **ts;
	size_t n;
	assert_int_equal(kv_table_list(db, &ts, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ts[0]->name, "a");
	assert_string_equal(ts[1]->name, "b");
	assert_string_equal(ts[0]->entity_column, "entity");
	for (size_t i = 0; i < n; i++)
		kv_table_free(ts[i]);
	free(ts);

	/* alter: add a feature, change ttl and max_versions */
	struct kv_feature_def add = {"emb", KV_F32VEC, 4, 0, 0};
	struct kv_alter al = {3600000000LL, 5, 1, &add, -1};
	assert_int_equal(kv_table_alter(db, "a", &al, &err), 0);
	assert_int_equal(kv_table_alter(db, "zz", &al, &err), ST_ENOTFOUND);
	struct kv_alter again = {-1, -1, 1, &add, -1};
	assert_int_equal(kv_table_alter(db, "a", &again, &err), ST_EEXIST);

	/* everything survives a reopen, the registry version too: it is read back as a number
	 * from a stored value with no terminator (it once read on into the heap: "3" followed by
	 * stray digits, and a replica with that version ignored its primary's registry) */
	uint64_t v = kv_registry_version(db);
	assert_int_equal(v, 3);
	for (int i = 0; i < 20; i++) {
		kv_close(db);
		db = *state = open_db(dir);
		assert_int_equal(kv_registry_version(db), v);
	}
	struct kv_table *a;
	assert_int_equal(kv_table_get(db, "a", &a, &err), 0);
	assert_int_equal(a->nfeatures, 3);
	assert_int_equal(a->ttl_us, 3600000000LL);
	assert_int_equal(a->max_versions, 5);
	const struct kv_feature_def *e = kv_table_feature(a, "emb");
	assert_non_null(e);
	assert_int_equal(e->dim, 4);
	uint32_t old_id = a->id;
	kv_table_free(a);

	/* drop removes the data; a new table of the same name starts empty */
	put_x(db, "a", "u1", 1, 1);
	assert_int_equal(kv_table_drop(db, "a", &err), 0);
	assert_int_equal(get_x(db, "b", "u1", LATEST, LATEST), -1);
	const char *x = "x";
	struct kv_result r;
	assert_int_equal(kv_get(db, "a", "u1", 2, &x, 1, &KV_READ_LATEST, &r, &err), ST_ENOTFOUND);
	mk_table(db, "a", 0, 0);
	assert_int_equal(kv_table_get(db, "a", &a, &err), 0);
	assert_true(a->id > old_id);
	kv_table_free(a);
	assert_int_equal(get_x(db, "a", "u1", LATEST, LATEST), -1);
	assert_int_equal(kv_table_drop(db, "nope", &err), ST_ENOTFOUND);
}

static void test_bad_writes(void **state)
{
	struct kv_db *db = *state;
	struct st_error err = {0};
	mk_table(db, "t", 0, 0);
	struct kv_cell good = {"u1", 2, "x", 1, {.type = KV_I64, .i64 = 1}};
	struct kv_cell cells[2] = {good, good};
	cells[1].value = (struct kv_value){.type = KV_F64, .f64 = 1.5};
	assert_int_equal(kv_put(db, "t", cells, 2, &err), ST_ETYPE);
	assert_non_null(strstr(err.msg, "'x'"));
	/* nothing of the batch was written */
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), -1);
	cells[1] = good;
	cells[1].feature = "nope";
	assert_int_equal(kv_put(db, "t", cells, 2, &err), ST_ENOTFOUND);
	assert_int_equal(kv_put(db, "nope", &good, 1, &err), ST_ENOTFOUND);
	char big[KV_ENTITY_MAX + 1];
	memset(big, 'e', sizeof(big));
	struct kv_cell longent = good;
	longent.entity = big;
	longent.entity_len = sizeof(big);
	assert_int_equal(kv_put(db, "t", &longent, 1, &err), ST_ELIMIT);
	longent.entity_len = 0;
	assert_int_equal(kv_put(db, "t", &longent, 1, &err), ST_EINVAL);
	struct kv_cell s = {"u1", 2, "s", 1, {.type = KV_STR, .len = KV_VALUE_MAX, .ptr = NULL}};
	s.value.ptr = calloc(1, KV_VALUE_MAX);
	assert_int_equal(kv_put(db, "t", &s, 1, &err), ST_ELIMIT);
	free(s.value.ptr);
	const char *x = "x";
	struct kv_result r;
	assert_int_equal(kv_get(db, "t", "", 0, &x, 1, NULL, &r, &err), ST_EINVAL);
	assert_int_equal(kv_get(db, "t", "u1", 2, (const char *[]){"nope"}, 1, NULL, &r, &err), ST_ENOTFOUND);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), -1);
}

struct apply_ctx {
	struct kv_db *replica;
	int shard;
};

static int apply_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct apply_ctx *a = arg;
	struct st_error err;
	return kv_shard_apply(a->replica, a->shard, data, len, &err);
}

static void test_replication_hooks(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	mk_table(db, "t", 0, 0);
	uint64_t s0[2] = {kv_shard_latest_seq(db, 0), kv_shard_latest_seq(db, 1)};
	char e[16];
	for (int i = 0; i < 200; i++) {
		snprintf(e, sizeof(e), "u%d", i);
		put_x(db, "t", e, 10, i);
	}
	assert_true(kv_shard_latest_seq(db, 0) + kv_shard_latest_seq(db, 1) >= s0[0] + s0[1] + 200);
	/* A replica that shares the registry (created the same way) replays the WAL. */
	struct kv_db *rep = open_db(dir2);
	mk_table(rep, "t", 0, 0);
	for (int s = 0; s < 2; s++) {
		struct apply_ctx a = {rep, s};
		assert_int_equal(kv_shard_updates_since(db, s, s0[s] + 1, apply_cb, &a, &err), 0);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(e, sizeof(e), "u%d", i);
		assert_int_equal(get_x(rep, "t", e, LATEST, LATEST), i);
	}
	/* nothing newer: no callback, no error */
	struct apply_ctx a0 = {rep, 0};
	assert_int_equal(kv_shard_updates_since(db, 0, kv_shard_latest_seq(db, 0) + 1, apply_cb, &a0, &err), 0);
	assert_int_equal(kv_shard_updates_since(db, 7, 1, apply_cb, &a0, &err), ST_EINVAL);
	assert_int_equal(kv_shard_apply(rep, 0, "junk", 4, &err), ST_EPROTO);
	kv_close(rep);
	rm_rf(dir2);

	/* a checkpoint opens as a store with the same contents */
	assert_int_equal(kv_checkpoint(db, dir2, &err), 0);
	struct kv_db *cp = open_db(dir2);
	assert_int_equal(get_x(cp, "t", "u7", LATEST, LATEST), 7);
	kv_close(cp);
}

static struct kv_db *open_cached(const char *d, size_t bytes)
{
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = 2;
	o.clock = fake_clock;
	o.sync = KV_SYNC_NONE;
	o.row_cache_bytes = bytes;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(d, &o, &db, &err))
		fail_msg("open: %s", err.msg);
	return db;
}

/* Multi-gets in random entity and feature orders (entities of both shards interleaved, so
 * one scanner moves between iterators and back; features in and against their id order)
 * and joins with features in and against id order answer exactly what single gets of each
 * cell answer: the scanner's skip-the-seek shortcut (kv_scan.c step_to) must only skip a
 * seek when the iterator cannot be past the target. */
static void test_read_orders(void **state)
{
	struct kv_db *db = *state;
	mk_table(db, "m", 0, 0);
	enum { NE = 120, ROUNDS = 60 };
	char names[NE][16];
	const char *ents[NE];
	size_t lens[NE];
	unsigned seed = 12345;
	for (int e = 0; e < NE; e++) {
		snprintf(names[e], sizeof(names[e]), "%s%d", e % 3 ? "k" : "zz", e);
		for (int v = 0; v < e % 4; v++) {
			put_x(db, "m", names[e], 100 + v * 10, e * 100 + v);
			struct kv_cell c = {names[e], strlen(names[e]), "s", 100 + v * 10 + 5,
					    {.type = KV_STR, .len = 2, .ptr = "ab"}};
			struct st_error err;
			assert_int_equal(kv_put(db, "m", &c, 1, &err), 0);
		}
	}
	const char *fo[2][2] = {{"x", "s"}, {"s", "x"}};
	struct kv_result r[NE * 2], one[2];
	for (int round = 0; round < ROUNDS; round++) {
		for (int e = 0; e < NE; e++) { /* a random permutation */
			int k = (int)(rand_r(&seed) % (unsigned)(e + 1));
			ents[e] = ents[k];
			ents[k] = names[e];
		}
		for (int e = 0; e < NE; e++)
			lens[e] = strlen(ents[e]);
		const char **f = fo[round % 2];
		int64_t as_of = round % 3 ? 100 + (int64_t)(rand_r(&seed) % 40) : ST_TS_MAX;
		struct kv_read_opts o = {as_of, ST_TS_MAX, 0};
		struct st_error err;
		assert_int_equal(kv_multiget(db, "m", ents, lens, NE, f, 2, &o, r, &err), 0);
		for (int e = 0; e < NE; e++) {
			assert_int_equal(kv_get(db, "m", ents[e], lens[e], f, 2, &o, one, &err), 0);
			for (int k = 0; k < 2; k++) {
				assert_int_equal(r[e * 2 + k].found, one[k].found);
				assert_int_equal(r[e * 2 + k].ts, one[k].ts);
				if (one[k].found && one[k].value.type == KV_I64)
					assert_int_equal(r[e * 2 + k].value.i64, one[k].value.i64);
			}
			kv_result_release(one, 2);
		}
		kv_result_release(r, NE * 2);
		/* a join of the same cells, one row per entity at as_of (ts descending per entity
		 * in the sweep), features in this round's order */
		struct kv_join *j;
		int64_t T = as_of == ST_TS_MAX ? 1000 : as_of;
		o.as_of = T;
		assert_int_equal(kv_join_open(db, "m", f, 2, ST_TS_MAX, 0, &j, &err), 0);
		for (int e = 0; e < NE; e++)
			assert_true(kv_join_push(j, ents[e], lens[e], T, &err) >= 0);
		assert_int_equal(kv_join_run(j, &err), 0);
		for (int e = 0; e < NE; e++) {
			const struct kv_result *jr = kv_join_result(j, (size_t)e);
			assert_int_equal(kv_get(db, "m", ents[e], lens[e], f, 2, &o, one, &err), 0);
			for (int k = 0; k < 2; k++) {
				assert_int_equal(jr[k].found, one[k].found);
				assert_int_equal(jr[k].ts, one[k].ts);
			}
			kv_result_release(one, 2);
		}
		kv_join_free(j);
	}
	/* the single gets are right too: spot-check against what was written */
	assert_int_equal(get_x(db, "m", "k119", 130, LATEST), 119 * 100 + 2);
	assert_int_equal(get_x(db, "m", "zz0", LATEST, LATEST), -1);
}

static void test_row_cache(void **state)
{
	kv_close(*state);
	struct kv_db *db = *state = open_cached(dir, 1 << 20);
	struct st_error err;
	mk_table(db, "t", 100, 0);
	int64_t base = now_us;
	put_x(db, "t", "u1", base - 10, 1);
	const char *x = "x";
	struct kv_result r;
	struct kv_read_opts cached = {ST_TS_MAX, ST_TS_MAX, KV_READ_CACHED_ONLY};
	/* a miss refuses without touching the store; a normal read fills the cache */
	assert_int_equal(kv_get(db, "t", "u1", 2, &x, 1, &cached, &r, &err), ST_EBUSY);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 1);
	assert_int_equal(kv_get(db, "t", "u1", 2, &x, 1, &cached, &r, &err), 0);
	assert_int_equal(r.value.i64, 1);
	kv_result_release(&r, 1);
	uint64_t hits, misses, bytes;
	kv_row_cache_stats(db, &hits, &misses, &bytes);
	assert_true(hits >= 1 && misses >= 2 && bytes > 0);
	/* writes invalidate */
	put_x(db, "t", "u1", base - 5, 2);
	assert_int_equal(kv_get(db, "t", "u1", 2, &x, 1, &cached, &r, &err), ST_EBUSY);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), 2);
	assert_int_equal(kv_delete(db, "t", "u1", 2, NULL, 0, base, &err), 0);
	assert_int_equal(get_x(db, "t", "u1", LATEST, LATEST), -1);
	/* the ttl is applied to cached values at every read */
	put_x(db, "t", "u2", base, 7);
	assert_int_equal(get_x(db, "t", "u2", LATEST, LATEST), 7);
	now_us = base + 101;
	assert_int_equal(get_x(db, "t", "u2", LATEST, LATEST), -1);
	/* as-of and known-at reads never come from the cache */
	assert_int_equal(kv_get(db, "t", "u2", 2, &x, 1,
				&(struct kv_read_opts){base, ST_TS_MAX, KV_READ_CACHED_ONLY}, &r, &err),
			 ST_EBUSY);
	/* alter changes the row layout: cached rows are dropped */
	struct kv_feature_def add = {"y", KV_I64, 0, 0, 0};
	struct kv_alter al = {0, -1, 1, &add, -1};
	assert_int_equal(kv_table_alter(db, "t", &al, &err), 0);
	assert_int_equal(get_x(db, "t", "u2", LATEST, LATEST), 7); /* ttl now 0: visible again */
}

/* The hit path's shortcuts: a multi-get of many entities (its lookups prefetched in chunks)
 * through a cache far smaller than the data (CLOCK eviction), features asked in any order
 * (the resolution's position hint), and kv_prefetch_latest with bad input. Every answer is
 * checked against what was written. */
static void test_row_cache_many(void **state)
{
	kv_close(*state);
	struct kv_db *db = *state = open_cached(dir, 256 << 10); /* about 2000 of the rows */
	struct st_error err;
	mk_table(db, "t", 0, 0);
	enum { N = 3000 };
	static char names[N][16];
	const char *ents[N];
	size_t lens[N];
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "e%d", i);
		ents[i] = names[i];
		lens[i] = strlen(names[i]);
		struct kv_cell c[2] = {{ents[i], lens[i], "x", now_us - 10, {.type = KV_I64, .i64 = i}},
				       {ents[i], lens[i], "s", now_us - 10,
					{.type = KV_STR, .ptr = names[i], .len = (uint32_t)lens[i]}}};
		if (kv_put(db, "t", c, 2, &err))
			fail_msg("put: %s", err.msg);
	}
	const char *orders[][3] = {{"x", "s", NULL}, {"s", "x", NULL}, {"s", "s", "x"}};
	static struct kv_result r[N * 3];
	for (int round = 0; round < 6; round++) {
		const char **f = orders[round % 3];
		size_t nf = f[2] ? 3 : 2;
		/* unknown table, empty and over-long entities, a table that is not there: ignored */
		const char *tabs[4] = {"t", "nope", "t", "t"};
		const char *pe[4] = {ents[1], ents[2], "", names[3]};
		size_t pl[4] = {lens[1], lens[2], 0, KV_ENTITY_MAX + 1};
		kv_prefetch_latest(db, tabs, pe, pl, 4);
		assert_int_equal(kv_multiget(db, "t", ents, lens, N, f, nf, NULL, r, &err), 0);
		for (int i = 0; i < N; i++)
			for (size_t k = 0; k < nf; k++) {
				const struct kv_result *x = &r[(size_t)i * nf + k];
				assert_true(x->found);
				if (f[k][0] == 'x')
					assert_int_equal(x->value.i64, i);
				else
					assert_memory_equal(x->value.ptr, names[i], lens[i]);
			}
		kv_result_release(r, N * nf);
	}
	uint64_t hits, misses, bytes;
	kv_row_cache_stats(db, &hits, &misses, &bytes);
	if (!(hits > N && misses > N && bytes <= (256 << 10) + 256 * 256))
		fail_msg("hits %llu misses %llu bytes %llu", (unsigned long long)hits,
			 (unsigned long long)misses, (unsigned long long)bytes);
	const char *bad = "nope";
	assert_int_equal(kv_multiget(db, "t", ents, lens, 2, &bad, 1, NULL, r, &err), ST_ENOTFOUND);
	assert_int_equal(kv_multiget(db, "t", ents, lens, 2, (const char *[]){"x", "nope"}, 2, NULL,
				     r, &err),
			 ST_ENOTFOUND);
}

/* Readers must never see a value older than one whose put had returned before the read
 * began, whatever the interleaving with the cache's fills and invalidations. */
struct race {
	struct kv_db *db;
	_Atomic long committed;
	_Atomic int stop;
	long stale;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	for (long v = 1; v <= 20000; v++) {
		struct kv_cell c = {"hot", 3, "x", v, {.type = KV_I64, .i64 = v}};
		if (kv_put(r->db, "t", &c, 1, NULL))
			abort();
		atomic_store(&r->committed, v);
	}
	atomic_store(&r->stop, 1);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	const char *x = "x";
	while (!atomic_load(&r->stop)) {
		long before = atomic_load(&r->committed);
		struct kv_result res;
		if (kv_get(r->db, "t", "hot", 3, &x, 1, &KV_READ_LATEST, &res, NULL))
			abort();
		long got = res.found ? (long)res.value.i64 : 0;
		if (got < before)
			r->stale++;
		kv_result_release(&res, 1);
	}
	return NULL;
}

static void test_row_cache_races(void **state)
{
	kv_close(*state);
	struct kv_db *db = *state = open_cached(dir, 1 << 20);
	mk_table(db, "t", 0, 0);
	struct race r = {.db = db};
	pthread_t w, rd[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&rd[i], NULL, race_reader, &r);
	pthread_create(&w, NULL, race_writer, &r);
	pthread_join(w, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(rd[i], NULL);
	assert_int_equal(r.stale, 0);
	assert_int_equal(get_x(db, "t", "hot", LATEST, LATEST), 20000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_latest_and_asof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overwrite_and_known_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_range_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_horizon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_tombstone_and_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_removes_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_data_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replication_hooks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_orders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_cache_races, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_cache_many, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
