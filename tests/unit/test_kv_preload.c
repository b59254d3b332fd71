/* Preload jobs: every format and compression, bad rows with and without skipping, duplicate
 * cells, spilling sorted runs, cancel, a close during a job (resumed on reopen), and reads
 * served while a job runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/st_fault.h"
#include "store/kv.h"

static char dir[256], files[256];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static struct kv_db *open_db(int run_jobs, size_t mem)
{
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = 3;
	o.run_jobs = run_jobs;
	o.sync = KV_SYNC_NONE;
	if (mem)
		o.preload_mem_bytes = mem;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(dir, &o, &db, &err))
		fail_msg("open: %s", err.msg);
	return db;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-pl-%d", getpid());
	snprintf(files, sizeof(files), "/tmp/strata-pl-files-%d", getpid());
	rm_rf(dir);
	rm_rf(files);
	mkdir(files, 0755);
	struct kv_db *db = open_db(0, 0);
	struct kv_feature_def f[] = {
		{"age", KV_I64, 0, 0, 0}, {"ctr", KV_F64, 0, 0, 0}, {"emb", KV_F32VEC, 3, 0, 0}, {"name", KV_STR, 0, 0, 0}};
	struct kv_table t = {.name = "users", .entity_column = "user_id", .nfeatures = 4, .features = f};
	struct st_error err;
	assert_int_equal(kv_table_create(db, &t, &err), 0);
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	kv_close(*state);
	rm_rf(dir);
	rm_rf(files);
	return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
	size_t n = strlen(path);
	if (n > 3 && !strcmp(path + n - 3, ".gz")) {
		gzFile g = gzopen(path, "wb");
		assert_int_equal(gzwrite(g, data, (unsigned)len), (int)len);
		gzclose(g);
		return;
	}
	FILE *f = fopen(path, "wb");
	if (n > 4 && !strcmp(path + n - 4, ".zst")) {
		size_t cap = ZSTD_compressBound(len);
		char *z = malloc(cap);
		size_t zn = ZSTD_compress(z, cap, data, len, 3);
		assert_false(ZSTD_isError(zn));
		fwrite(z, 1, zn, f);
		free(z);
	} else {
		fwrite(data, 1, len, f);
	}
	fclose(f);
}

static uint64_t submit(struct kv_db *db, const char *name, int skip, int expect_rc)
{
	struct kv_preload_req r;
	kv_preload_req_init(&r);
	snprintf(r.table, sizeof(r.table), "users");
	snprintf(r.path, sizeof(r.path), "%s/%s", files, name);
	r.skip_bad_rows = skip;
	r.allow_any_ts = 1; /* these files use small ms timestamps; the guard has its own test */
	uint64_t id = 0;
	struct st_error err;
	assert_int_equal(kv_preload_submit(db, &r, &id, &err), expect_rc);
	return id;
}

static struct kv_job_info run(struct kv_db *db, uint64_t id)
{
	struct st_error err;
	assert_int_equal(kv_jobs_run_pending(db, &err), 0);
	struct kv_job_info j;
	assert_int_equal(kv_job_get(db, id, &j, &err), 0);
	return j;
}

static int64_t get_age(struct kv_db *db, const char *e, int64_t as_of)
{
	const char *f = "age";
	struct kv_result r;
	struct kv_read_opts o = {as_of, ST_TS_MAX, 0};
	assert_int_equal(kv_get(db, "users", e, strlen(e), &f, 1, &o, &r, NULL), 0);
	int64_t v = r.found ? r.value.i64 : -1;
	kv_result_release(&r, 1);
	return v;
}

static const char csv[] =
	"user_id,ts,age,ctr,emb,name\n"
	"u1,2026-11-01T10:00:00Z,31,0.12,\"[0.1,0.2,0.3]\",alice\n"
	"u2,1793527200000,40,,,\"bob, jr\"\n"
	"u1,2026-11-02T10:00:00Z,32,0.5,,\n";

static void check_loaded(struct kv_db *db)
{
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), 32);
	assert_int_equal(get_age(db, "u1", 1793527200000000LL), 31);
	assert_int_equal(get_age(db, "u2", ST_TS_MAX), 40);
	const char *f[] = {"ctr", "emb", "name"};
	struct kv_result r[3];
	struct kv_read_opts o = {1793527200000000LL, ST_TS_MAX, 0};
	assert_int_equal(kv_get(db, "users", "u1", 2, f, 3, &o, r, NULL), 0);
	assert_true(r[0].value.f64 == 0.12);
	assert_int_equal(r[1].value.len, 3);
	assert_true(((float *)r[1].value.ptr)[2] == 0.3f);
	assert_string_equal((char *)r[2].value.ptr, "alice");
	kv_result_release(r, 3);
	assert_int_equal(kv_get(db, "users", "u2", 2, f, 3, &KV_READ_LATEST, r, NULL), 0);
	assert_false(r[0].found); /* empty cell = no value */
	assert_string_equal((char *)r[2].value.ptr, "bob, jr");
	kv_result_release(r, 3);
}

static void load_variant(void **state, const char *name, const char *data)
{
	struct kv_db *db = *state;
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", files, name);
	write_file(path, data, strlen(data));
	uint64_t id = submit(db, name, 0, 0);
	struct kv_job_info j = run(db, id);
	if (j.state != KV_JOB_DONE)
		fail_msg("%s: job %s: %s", name, kv_job_state_name(j.state), j.error);
	assert_int_equal(j.rows, 3);
	assert_int_equal(j.cells, 8);
	check_loaded(db);
}

static void test_csv(void **s) { load_variant(s, "f.csv", csv); }
static void test_csv_gz(void **s) { load_variant(s, "f.csv.gz", csv); }
static void test_csv_zst(void **s) { load_variant(s, "f.csv.zst", csv); }

static const char tsv[] =
	"user_id\tts\tage\tctr\temb\tname\n"
	"u1\t2026-11-01T10:00:00Z\t31\t0.12\t[0.1,0.2,0.3]\talice\n"
	"u2\t1793527200000\t40\t\t\tbob, jr\n"
	"u1\t2026-11-02T10:00:00Z\t32\t0.5\t\t\n";
static void test_tsv(void **s) { load_variant(s, "f.tsv", tsv); }
static void test_tsv_zst(void **s) { load_variant(s, "f.tsv.zst", tsv); }
static void test_tsv_gz(void **s) { load_variant(s, "f.tsv.gz", tsv); }

static const char jsonl[] =
	"{\"user_id\":\"u1\",\"ts\":\"2026-11-01T10:00:00Z\",\"age\":31,\"ctr\":0.12,\"emb\":[0.1,0.2,0.3],\"name\":\"alice\"}\n"
	"{\"user_id\":\"u2\",\"ts\":1793527200000,\"age\":40,\"ctr\":null,\"name\":\"bob, jr\"}\n"
	"\n"
	"{\"user_id\":\"u1\",\"ts\":\"2026-11-02T10:00:00Z\",\"age\":32,\"ctr\":0.5}";
static void test_jsonl(void **s) { load_variant(s, "f.jsonl", jsonl); }
static void test_jsonl_gz(void **s) { load_variant(s, "f.jsonl.gz", jsonl); }
static void test_jsonl_zst(void **s) { load_variant(s, "f.jsonl.zst", jsonl); }

static const char bad_csv[] =
	"user_id,ts,age\n"
	"u1,2026-11-01T10:00:00Z,31\n"
	"u2,yesterday,40\n"
	"u3,2026-11-01T10:00:00Z,notanumber\n"
	"u4,2026-11-01T10:00:00Z,44\n"
	"u5,2026-11-01T10:00:00Z,45,extra\n";

static void test_bad_row_fails(void **state)
{
	struct kv_db *db = *state;
	char path[512];
	snprintf(path, sizeof(path), "%s/bad.csv", files);
	write_file(path, bad_csv, strlen(bad_csv));
	struct kv_job_info j = run(db, submit(db, "bad.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_FAILED);
	assert_non_null(strstr(j.error, "bad.csv:3: bad timestamp 'yesterday'"));
	/* all or nothing: the good rows before the bad one are not visible */
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), -1);
}

static void test_bad_rows_skipped(void **state)
{
	struct kv_db *db = *state;
	char path[512];
	snprintf(path, sizeof(path), "%s/bad.csv", files);
	write_file(path, bad_csv, strlen(bad_csv));
	struct kv_job_info j = run(db, submit(db, "bad.csv", 1, 0));
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(j.rows, 2);
	assert_int_equal(j.bad_rows, 3);
	assert_non_null(strstr(j.bad_samples[2], "bad.csv:6: 4 fields, the header has 3"));
	assert_int_equal(get_age(db, "u5", ST_TS_MAX), -1);
	assert_non_null(strstr(j.bad_samples[0], "bad.csv:3:"));
	assert_non_null(strstr(j.bad_samples[1], "bad.csv:4:"));
	assert_non_null(strstr(j.bad_samples[1], "notanumber"));
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), 31);
	assert_int_equal(get_age(db, "u4", ST_TS_MAX), 44);
	assert_int_equal(get_age(db, "u3", ST_TS_MAX), -1);
}

static void test_bad_header(void **state)
{
	struct kv_db *db = *state;
	char path[512];
	const char *h1 = "user_id,ts,age,shoe_size\nu1,1,2,3\n";
	snprintf(path, sizeof(path), "%s/h1.csv", files);
	write_file(path, h1, strlen(h1));
	struct kv_job_info j = run(db, submit(db, "h1.csv", 1, 0));
	assert_int_equal(j.state, KV_JOB_FAILED);
	assert_non_null(strstr(j.error, "h1.csv:1: column 'shoe_size' is not a feature"));
	const char *h2 = "ts,age\n1,2\n";
	snprintf(path, sizeof(path), "%s/h2.csv", files);
	write_file(path, h2, strlen(h2));
	j = run(db, submit(db, "h2.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_FAILED);
	assert_non_null(strstr(j.error, "no 'user_id' column"));
	/* the ts column is an option: its message names it and the flag */
	const char *h3 = "user_id,time,age\nu1,1,2\n";
	snprintf(path, sizeof(path), "%s/h3.csv", files);
	write_file(path, h3, strlen(h3));
	j = run(db, submit(db, "h3.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_FAILED);
	assert_non_null(strstr(j.error, "h3.csv:1: no ts column 'ts'; use --ts-column"));
	/* missing file and unknown table are refused at submit */
	submit(db, "missing.csv", 0, ST_ENOTFOUND);
	struct kv_preload_req r;
	kv_preload_req_init(&r);
	snprintf(r.table, sizeof(r.table), "nope");
	snprintf(r.path, sizeof(r.path), "%s", path);
	uint64_t id;
	assert_int_equal(kv_preload_submit(db, &r, &id, NULL), ST_ENOTFOUND);
}

/* Integer timestamps outside 1990..2200 in the job's unit are bad rows naming the unit that
 * fits, unless allow_any_ts; a row with fewer fields than the header is a bad row. */
static void test_ts_guard_and_short_rows(void **state)
{
	struct kv_db *db = *state;
	char path[512];
	const char *csv = "user_id,ts,age\n"
			  "u1,1762000000,1\n"          /* seconds read as ms: 1970 */
			  "u2,1762000000000000,2\n"    /* microseconds read as ms: year 57805 */
			  "u3,1762000000000,3\n"       /* ms: 2025, fine */
			  "u4,2026-11-01T00:00:00Z\n"  /* one field short */
			  "u5,2026-11-01T00:00:00Z,5\n";
	snprintf(path, sizeof(path), "%s/g.csv", files);
	write_file(path, csv, strlen(csv));
	struct kv_preload_req r;
	kv_preload_req_init(&r);
	snprintf(r.table, sizeof(r.table), "users");
	snprintf(r.path, sizeof(r.path), "%s", path);
	r.skip_bad_rows = 1;
	uint64_t id;
	assert_int_equal(kv_preload_submit(db, &r, &id, NULL), 0);
	struct kv_job_info j = run(db, id);
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(j.rows, 2);
	assert_int_equal(j.bad_rows, 3);
	assert_non_null(strstr(j.bad_samples[0], "g.csv:2: integer timestamp 1762000000 in ms is "
						  "1970-01-21T09:26:40Z, outside 1990-2200; as s it "
						  "is 2025-11-01T12:26:40Z"));
	assert_non_null(strstr(j.bad_samples[1], "as us it is 2025-11-01T12:26:40Z"));
	assert_non_null(strstr(j.bad_samples[2], "g.csv:5: 2 fields, the header has 3"));
	assert_int_equal(get_age(db, "u3", ST_TS_MAX), 3);
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), -1);
	/* without skip the first implausible row fails the job; allow_any_ts takes them */
	r.skip_bad_rows = 0;
	assert_int_equal(kv_preload_submit(db, &r, &id, NULL), 0);
	j = run(db, id);
	assert_int_equal(j.state, KV_JOB_FAILED);
	assert_non_null(strstr(j.error, "g.csv:2: integer timestamp"));
	r.allow_any_ts = 1;
	r.skip_bad_rows = 1;
	assert_int_equal(kv_preload_submit(db, &r, &id, NULL), 0);
	j = run(db, id);
	assert_int_equal(j.rows, 4);
	assert_int_equal(j.bad_rows, 1);
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), 1);
	/* the flag survives the job record (a resumed job keeps it) */
	assert_int_equal(kv_job_get(db, id, &j, NULL), 0);
	assert_int_equal(j.req.allow_any_ts, 1);
}

/* rows u0..u{n-1}, two versions each; with dup, every row is repeated with a new value
 * (the later row must win) */
static char *gen_csv(int n, int dup, size_t *len)
{
	size_t cap = (size_t)n * 120 + 64;
	char *buf = malloc(cap);
	size_t k = (size_t)sprintf(buf, "user_id,ts,age,name\n");
	for (int i = 0; i < n; i++) {
		k += (size_t)sprintf(buf + k, "u%d,1000,%d,name-%d\nu%d,2000,%d,\n", i, i, i, i, i + 1);
		if (dup)
			k += (size_t)sprintf(buf + k, "u%d,2000,%d,\n", i, i + 2);
	}
	*len = k;
	return buf;
}

static void test_spill_and_duplicates(void **state)
{
	struct kv_db *db = *state;
	kv_close(db);
	*state = db = open_db(0, 64 << 10); /* a tiny sort buffer: many runs to merge */
	size_t len;
	char *data = gen_csv(20000, 1, &len);
	char path[512];
	snprintf(path, sizeof(path), "%s/big.csv", files);
	write_file(path, data, len);
	free(data);
	struct kv_job_info j = run(db, submit(db, "big.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(j.rows, 60000);
	char e[16];
	for (int i = 0; i < 20000; i += 7) {
		snprintf(e, sizeof(e), "u%d", i);
		assert_int_equal(get_age(db, e, ST_TS_MAX), i + 2);
		assert_int_equal(get_age(db, e, 1500000), i); /* ts are in ms */
	}
	/* preloading the same file again is idempotent for reads */
	j = run(db, submit(db, "big.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(get_age(db, "u7", ST_TS_MAX), 9);
}

static void wait_running(struct kv_db *db, uint64_t id)
{
	struct kv_job_info j;
	for (int i = 0; i < 3000; i++) {
		assert_int_equal(kv_job_get(db, id, &j, NULL), 0);
		if (j.state == KV_JOB_RUNNING && j.rows > 0)
			return;
		assert_true(j.state == KV_JOB_QUEUED || j.state == KV_JOB_RUNNING);
		usleep(1000);
	}
	fail_msg("job %llu never started", (unsigned long long)id);
}

static struct kv_job_info wait_end(struct kv_db *db, uint64_t id)
{
	struct kv_job_info j;
	for (int i = 0; i < 60000; i++) {
		assert_int_equal(kv_job_get(db, id, &j, NULL), 0);
		if (j.state != KV_JOB_QUEUED && j.state != KV_JOB_RUNNING)
			return j;
		usleep(1000);
	}
	fail_msg("job %llu never ended", (unsigned long long)id);
	return j;
}

static void big_file(const char *name, int n)
{
	size_t len;
	char *data = gen_csv(n, 0, &len);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", files, name);
	write_file(path, data, len);
	free(data);
}

/* A failed ingestion of one shard leaves nothing of the file visible in the others. */
static void test_ingest_failure_rolls_back(void **state)
{
	struct kv_db *db = *state;
	setenv("STRATA_FAULTS", "preload.ingest@3", 1); /* the third shard's ingestion fails */
	st_fault_reset();
	big_file("big.csv", 3000);
	struct kv_job_info j = run(db, submit(db, "big.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_FAILED);
	assert_non_null(strstr(j.error, "injected fault"));
	char e[16];
	for (int i = 0; i < 3000; i++) {
		snprintf(e, sizeof(e), "u%d", i);
		assert_int_equal(get_age(db, e, ST_TS_MAX), -1);
	}
	unsetenv("STRATA_FAULTS");
	st_fault_reset();
	/* the same file preloads fine afterwards */
	j = run(db, submit(db, "big.csv", 0, 0));
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(get_age(db, "u2999", ST_TS_MAX), 3000);
}

static void test_cancel(void **state)
{
	struct kv_db *db = *state;
	kv_close(db);
	*state = db = open_db(1, 0);
	big_file("big.csv", 1000000);
	uint64_t id = submit(db, "big.csv", 0, 0);
	wait_running(db, id);
	assert_int_equal(kv_job_cancel(db, id, NULL), 0);
	struct kv_job_info j = wait_end(db, id);
	assert_int_equal(j.state, KV_JOB_CANCELLED);
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), -1);
	assert_int_equal(kv_job_cancel(db, id, NULL), ST_EINVAL); /* already ended */
	assert_int_equal(kv_job_cancel(db, 999, NULL), ST_ENOTFOUND);
}

/* A cancel that arrives while the runner is taking the queued job (fault
 * preload.claim.slow holds the runner between reading the job and making it active) still
 * cancels it: the job never runs to the end and nothing of the file is visible. */
static void test_cancel_while_claimed(void **state)
{
	struct kv_db *db = *state;
	kv_close(db);
	setenv("STRATA_FAULTS", "preload.claim.slow", 1);
	st_fault_reset();
	*state = db = open_db(1, 0);
	big_file("big.csv", 200000);
	uint64_t id = submit(db, "big.csv", 0, 0);
	usleep(100000); /* the runner is inside the claim */
	assert_int_equal(kv_job_cancel(db, id, NULL), 0);
	usleep(400000); /* past the claim: a runner that ignored the cancel is running now */
	struct kv_job_info j = wait_end(db, id);
	unsetenv("STRATA_FAULTS");
	st_fault_reset();
	assert_int_equal(j.state, KV_JOB_CANCELLED);
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), -1);
}

/* A job submitted while the runner is between its scan for pending jobs (which found none)
 * and its wait (fault jobs.scan.slow holds it there) is run, not left queued until the next
 * submit (the runner used to miss that wakeup). */
static void test_submit_during_scan(void **state)
{
	struct kv_db *db = *state;
	kv_close(db);
	setenv("STRATA_FAULTS", "jobs.scan.slow", 1);
	st_fault_reset();
	*state = db = open_db(1, 0);
	usleep(100000); /* the runner scanned (nothing pending) and is held before its wait */
	big_file("small.csv", 10);
	uint64_t id = submit(db, "small.csv", 0, 0);
	struct kv_job_info j = {0};
	for (int i = 0; i < 500; i++) { /* 5 s */
		assert_int_equal(kv_job_get(db, id, &j, NULL), 0);
		if (j.state != KV_JOB_QUEUED && j.state != KV_JOB_RUNNING)
			break;
		usleep(10000);
	}
	unsetenv("STRATA_FAULTS");
	st_fault_reset();
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), 2);
}

struct reader {
	struct kv_db *db;
	atomic_int stop;
	atomic_long reads;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	while (!r->stop) {
		assert_int_equal(get_age(r->db, "r1", ST_TS_MAX), 5);
		r->reads++;
	}
	return NULL;
}

static void test_restart_during_job(void **state)
{
	struct kv_db *db = *state;
	kv_close(db);
	*state = db = open_db(1, 0);
	struct kv_cell c = {"r1", 2, "age", 1, {.type = KV_I64, .i64 = 5}};
	assert_int_equal(kv_put(db, "users", &c, 1, NULL), 0);
	big_file("big.csv", 1000000);
	uint64_t id = submit(db, "big.csv", 0, 0);
	/* reads are served while the job runs */
	struct reader rd = {.db = db};
	pthread_t th;
	pthread_create(&th, NULL, reader_main, &rd);
	wait_running(db, id);
	/* at least one read while the job runs (a loaded machine may start the reader late) */
	for (int i = 0; i < 1000 && !atomic_load(&rd.reads); i++)
		usleep(10000);
	rd.stop = 1;
	pthread_join(th, NULL);
	assert_true(rd.reads > 0);
	kv_close(db); /* interrupts the job */
	*state = db = open_db(0, 0);
	struct kv_job_info j;
	assert_int_equal(kv_job_get(db, id, &j, NULL), 0);
	assert_int_equal(j.state, KV_JOB_RUNNING);
	assert_int_equal(j.interrupted, 1);
	assert_int_equal(get_age(db, "u1", ST_TS_MAX), -1);
	kv_close(db);
	*state = db = open_db(1, 0); /* resumes by itself */
	j = wait_end(db, id);
	assert_int_equal(j.state, KV_JOB_DONE);
	assert_int_equal(j.attempts, 2);
	assert_int_equal(j.rows, 2000000);
	assert_int_equal(get_age(db, "u123456", ST_TS_MAX), 123457);
	assert_int_equal(get_age(db, "r1", ST_TS_MAX), 5);
	struct kv_job_info *list;
	size_t n;
	assert_int_equal(kv_job_list(db, &list, &n, NULL), 0);
	assert_int_equal(n, 1);
	free(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_gz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_zst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tsv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tsv_zst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tsv_gz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl_gz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl_zst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_row_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_rows_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_guard_and_short_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spill_and_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_failure_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_claimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submit_during_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_during_job, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
