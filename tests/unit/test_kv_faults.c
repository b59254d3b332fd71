/* Storage errors are errors: each fault point of the store (common/st_fault.h) fires once and
 * the test checks what callers see. write.batch and wal.sync: the failing write is not
 * acknowledged, the store turns read-only with the original reason (sticky, until a
 * restart), reads keep working, nothing acknowledged is lost across a reopen. iter.error and
 * scan.nomem: every read kind fails with ST_EIO / ST_ENOMEM naming the shard, never answers
 * "not found" or an empty cell. A real damaged SST file: every read kind, table scan (dump)
 * and verify fail with RocksDB's reason, the shard and the entity (the iterator's own error,
 * rocksdb_iter_get_error, is what tells "the end" from "a failed read" there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "store/kv.h"

static char dir[256];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void faults(const char *spec)
{
	if (spec)
		setenv("STRATA_FAULTS", spec, 1);
	else
		unsetenv("STRATA_FAULTS");
	st_fault_reset();
}

static struct kv_db *open_db(enum kv_sync sync)
{
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = 2;
	o.sync = sync;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(dir, &o, &db, &err))
		fail_msg("open: %s", err.msg);
	return db;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-faults-%d", getpid());
	rm_rf(dir);
	faults(NULL);
	struct kv_db *db = open_db(KV_SYNC_ALWAYS);
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}};
	struct kv_table t = {.name = "t", .nfeatures = 1, .features = f};
	struct st_error err;
	assert_int_equal(kv_table_create(db, &t, &err), 0);
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	faults(NULL);
	kv_close(*state);
	rm_rf(dir);
	return 0;
}

static int put(struct kv_db *db, int i, struct st_error *err)
{
	char e[16];
	int n = snprintf(e, sizeof(e), "e%d", i);
	struct kv_cell c = {e, (size_t)n, "x", 1000 + i, {.type = KV_I64, .i64 = i}};
	return kv_put(db, "t", &c, 1, err);
}

/* -1: absent; otherwise the value. Fails the test on a read error. */
static int64_t get(struct kv_db *db, int i)
{
	char e[16];
	int n = snprintf(e, sizeof(e), "e%d", i);
	const char *f = "x";
	struct kv_result r;
	struct st_error err;
	if (kv_get(db, "t", e, (size_t)n, &f, 1, &KV_READ_LATEST, &r, &err))
		fail_msg("get e%d: %s", i, err.msg);
	int64_t v = r.found ? r.value.i64 : -1;
	kv_result_release(&r, 1);
	return v;
}

/* The failing write and every later one are refused with the first reason; reads work. */
static void expect_sticky(struct kv_db *db, int failed_at, const char *reason)
{
	struct st_error err, h;
	for (int i = failed_at + 1; i < failed_at + 4; i++) {
		assert_int_equal(put(db, i, &err), ST_EIO);
		assert_non_null(strstr(err.msg, reason));
	}
	assert_int_equal(kv_health(db, &h), ST_EIO);
	assert_non_null(strstr(h.msg, reason));
	struct kv_table t = {.name = "t2"};
	struct kv_feature_def f[] = {{"x", KV_I64, 0, 0, 0}};
	t.nfeatures = 1;
	t.features = f;
	assert_int_equal(kv_table_create(db, &t, &err), ST_EIO); /* registry writes too */
	assert_non_null(strstr(err.msg, reason));
	assert_int_equal(kv_table_drop(db, "t", &err), ST_EIO);
	assert_non_null(strstr(err.msg, reason));
	struct kv_table *cur;
	assert_int_equal(kv_table_get(db, "t", &cur, &err), 0); /* still there */
	kv_table_free(cur);
	for (int i = 0; i < failed_at; i++)
		assert_int_equal(get(db, i), i);
}

static void test_write_batch(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	faults("write.batch@4");
	for (int i = 0; i < 3; i++)
		assert_int_equal(put(db, i, &err), 0);
	assert_int_equal(put(db, 3, &err), ST_EIO);
	assert_non_null(strstr(err.msg, "write.batch"));
	expect_sticky(db, 3, "write.batch");
	assert_int_equal(get(db, 3), -1);
	/* a restart clears it; everything acknowledged is there */
	faults(NULL);
	kv_close(db);
	*state = db = open_db(KV_SYNC_ALWAYS);
	assert_int_equal(kv_health(db, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(get(db, i), i);
	assert_int_equal(put(db, 10, &err), 0);
}

static void test_wal_sync_always(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	faults("wal.sync@3");
	for (int i = 0; i < 2; i++)
		assert_int_equal(put(db, i, &err), 0);
	assert_int_equal(put(db, 2, &err), ST_EIO); /* never acknowledged after a failed sync */
	assert_non_null(strstr(err.msg, "wal.sync"));
	expect_sticky(db, 2, "wal.sync");
	faults(NULL);
	kv_close(db);
	*state = db = open_db(KV_SYNC_ALWAYS);
	for (int i = 0; i < 2; i++)
		assert_int_equal(get(db, i), i);
}

static void test_wal_sync_batch(void **state)
{
	kv_close(*state);
	struct kv_db *db = *state = open_db(KV_SYNC_BATCH);
	struct st_error err;
	assert_int_equal(put(db, 0, &err), 0);
	usleep(50000); /* synced by now */
	/* An idle store makes no sync: the armed fault is not reached without a write. */
	faults("wal.sync@1"); /* the background sync thread's next sync fails */
	usleep(100000);
	assert_int_equal(kv_health(db, NULL), 0);
	assert_int_equal(put(db, 1, &err), 0);
	for (int i = 0; i < 200 && !kv_health(db, NULL); i++)
		usleep(10000);
	assert_int_equal(kv_health(db, NULL), ST_EIO);
	expect_sticky(db, 1, "WAL sync of shard");
}

/* A preload queued before the failure ingests nothing while the store is read-only, and
 * runs after the restart. */
static void test_preload_after_failure(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	char path[300];
	snprintf(path, sizeof(path), "%s/in.csv", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("entity,ts,x\ne9,2026-01-01T00:00:00Z,9\n", f);
	fclose(f);
	struct kv_preload_req req;
	kv_preload_req_init(&req);
	snprintf(req.table, sizeof(req.table), "t");
	snprintf(req.path, sizeof(req.path), "%s", path);
	uint64_t id;
	assert_int_equal(kv_preload_submit(db, &req, &id, &err), 0);
	faults("write.batch@1");
	assert_int_equal(put(db, 0, &err), ST_EIO);
	assert_int_equal(kv_jobs_run_pending(db, &err), ST_EIO); /* returns: no retry loop */
	assert_int_equal(get(db, 9), -1); /* nothing ingested */
	struct kv_job_info ji;
	assert_int_equal(kv_job_get(db, id, &ji, &err), 0);
	assert_true(ji.state != KV_JOB_DONE);
	faults(NULL);
	kv_close(db);
	*state = db = open_db(KV_SYNC_ALWAYS);
	assert_int_equal(kv_jobs_run_pending(db, &err), 0);
	assert_int_equal(get(db, 9), 9);
}

/* Every read kind fails with `code` when the scanner's fault point fires. */
static void expect_read_errors(struct kv_db *db, const char *fault, int code)
{
	struct st_error err;
	for (int i = 0; i < 4; i++)
		assert_int_equal(put(db, i, &err), 0);
	const char *f = "x";
	struct kv_result r[4];
	const char *ents[] = {"e0", "e1", "e2", "e3"};
	size_t lens[] = {2, 2, 2, 2};

	faults(fault);
	assert_int_equal(kv_get(db, "t", "e1", 2, &f, 1, &KV_READ_LATEST, r, &err), code);
	assert_non_null(strstr(err.msg, "shard"));
	faults(fault);
	assert_int_equal(kv_multiget(db, "t", ents, lens, 4, &f, 1, &KV_READ_LATEST, r, &err), code);
	struct kv_version *v;
	size_t n;
	faults(fault);
	assert_int_equal(kv_history(db, "t", "e1", 2, "x", ST_TS_MIN, ST_TS_MAX, 0, ST_TS_MAX, &v,
				    &n, &err),
			 code);
	struct kv_join *j;
	faults(NULL);
	assert_int_equal(kv_join_open(db, "t", &f, 1, ST_TS_MAX, 16, &j, &err), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(kv_join_push(j, ents[i], 2, 5000, &err), 0);
	faults(fault);
	assert_int_equal(kv_join_run(j, &err), code);
	assert_non_null(strstr(err.msg, "join"));
	kv_join_free(j);
	faults(NULL);
	assert_int_equal(get(db, 2), 2); /* and all is well once storage is */
}

static int count_cb(void *arg, const char *e, size_t el, const struct kv_feature_def *f,
		    const struct kv_version *v)
{
	++*(int *)arg;
	return 0;
}

static void test_iter_error(void **state)
{
	struct kv_db *db = *state;
	expect_read_errors(db, "iter.error@1", ST_EIO);
	struct st_error err;
	int n = 0;
	faults("iter.error@1");
	assert_int_equal(kv_table_scan(db, "t", ST_TS_MAX, count_cb, &n, &err), ST_EIO);
	assert_non_null(strstr(err.msg, "table scan"));
	faults(NULL);
	n = 0;
	assert_int_equal(kv_table_scan(db, "t", ST_TS_MAX, count_cb, &n, &err), 0);
	assert_int_equal(n, 4);
}

static void test_scan_nomem(void **state)
{
	expect_read_errors(*state, "scan.nomem@1", ST_ENOMEM);
}

/* Overwrites 64 bytes near the start of each shard's SST files (the first data block): a
 * checksum mismatch for whatever RocksDB reads there. Returns the number of files damaged. */
static int damage_ssts(void)
{
	int n = 0;
	for (int s = 0; s < 2; s++) {
		char sd[300];
		snprintf(sd, sizeof(sd), "%s/shard-%03d", dir, s);
		DIR *d = opendir(sd);
		assert_non_null(d);
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 4 || strcmp(de->d_name + l - 4, ".sst"))
				continue;
			char p[600];
			snprintf(p, sizeof(p), "%s/%s", sd, de->d_name);
			int fd = open(p, O_WRONLY);
			assert_true(fd >= 0);
			char junk[64];
			memset(junk, 0x5a, sizeof(junk));
			assert_int_equal(pwrite(fd, junk, sizeof(junk), 32), (ssize_t)sizeof(junk));
			close(fd);
			n++;
		}
		closedir(d);
	}
	return n;
}

static int ignore_cb(void *arg, const char *e, size_t el, const struct kv_feature_def *f,
		     const struct kv_version *v)
{
	return 0;
}

static void test_damaged_sst(void **state)
{
	struct kv_db *db = *state;
	struct st_error err;
	enum { N = 400 };
	for (int i = 0; i < N; i++)
		assert_int_equal(put(db, i, &err), 0);
	assert_int_equal(kv_compact(db, &err), 0); /* everything in SST files */
	kv_close(db);
	assert_true(damage_ssts() >= 2);
	*state = db = open_db(KV_SYNC_ALWAYS);
	const char *f = "x";
	/* gets: the right value or an error naming the shard, entity and reason; never absent */
	int bad = 0;
	for (int i = 0; i < N; i++) {
		char e[16];
		int n = snprintf(e, sizeof(e), "e%d", i);
		struct kv_result r;
		int rc = kv_get(db, "t", e, (size_t)n, &f, 1, &KV_READ_LATEST, &r, &err);
		if (rc) {
			assert_int_equal(rc, ST_EIO);
			assert_non_null(strstr(err.msg, "shard"));
			assert_non_null(strstr(err.msg, e));
			assert_non_null(strstr(err.msg, "Corruption"));
			bad++;
			continue;
		}
		if (!r.found || r.value.i64 != i)
			fail_msg("e%d read as %s from a damaged store", i, kv_status_name(r.status));
		kv_result_release(&r, 1);
	}
	assert_true(bad > 0);
	/* multi-get, history, join, table scan (dump) and verify of everything fail */
	const char **ents = malloc(N * sizeof(*ents));
	size_t *lens = malloc(N * sizeof(*lens));
	char (*names)[16] = malloc(N * sizeof(*names));
	struct kv_result *r = calloc(N, sizeof(*r));
	for (int i = 0; i < N; i++) {
		lens[i] = (size_t)snprintf(names[i], sizeof(names[i]), "e%d", i);
		ents[i] = names[i];
	}
	assert_int_equal(kv_multiget(db, "t", ents, lens, N, &f, 1, &KV_READ_LATEST, r, &err),
			 ST_EIO);
	int hist_bad = 0;
	for (int i = 0; i < N; i++) {
		struct kv_version *v;
		size_t nv;
		int rc = kv_history(db, "t", ents[i], lens[i], "x", ST_TS_MIN, ST_TS_MAX, 0,
				    ST_TS_MAX, &v, &nv, &err);
		if (rc) {
			assert_int_equal(rc, ST_EIO);
			hist_bad++;
			continue;
		}
		assert_int_equal(nv, 1);
		kv_history_free(v, nv);
	}
	assert_int_equal(hist_bad, bad);
	struct kv_join *j;
	assert_int_equal(kv_join_open(db, "t", &f, 1, ST_TS_MAX, N, &j, &err), 0);
	for (int i = 0; i < N; i++)
		assert_true(kv_join_push(j, ents[i], lens[i], 5000, &err) >= 0);
	assert_int_equal(kv_join_run(j, &err), ST_EIO);
	assert_non_null(strstr(err.msg, "Corruption"));
	kv_join_free(j);
	assert_int_equal(kv_table_scan(db, "t", ST_TS_MAX, ignore_cb, NULL, &err), ST_EIO);
	assert_non_null(strstr(err.msg, "table scan"));
	assert_non_null(strstr(err.msg, "shard"));
	assert_non_null(strstr(err.msg, "Corruption"));
	json_t *o = kv_verify_json(db, NULL, NULL, &err);
	assert_non_null(o);
	assert_false(json_is_true(json_object_get(o, "ok")));
	json_decref(o);
	free(ents);
	free(lens);
	free(names);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_sync_always, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_sync_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preload_after_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_nomem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_sst, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
