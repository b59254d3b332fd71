/* strata-kv-bench: the store engine's numbers on this machine, in one run, embedded (no
 * network): batched put rate, latest / as-of get rate, multi-get (100 entities x 10
 * features), join of 1M sample rows, and preload of the same rows as the puts. Ratios
 * against a peer measured in the same run are printed at the end (preload vs batched puts,
 * as-of vs latest). Usage: strata-kv-bench [--rows N] [--join-rows N] [--dir D] [--json] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/st_time.h"
#include "store/kv.h"

#define NF 10

static const char *feats[NF] = {"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"};
static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const struct st_error *err, const char *what)
{
	fprintf(stderr, "strata-kv-bench: %s: %s\n", what, err->msg);
	exit(1);
}

static struct kv_db *open_store(const char *dir, size_t row_cache)
{
	struct kv_options o;
	kv_options_init(&o);
	o.row_cache_bytes = row_cache;
	o.run_jobs = 0;
	o.sync = KV_SYNC_BATCH;
	o.block_cache_bytes = 1u << 30;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(dir, &o, &db, &err))
		die(&err, "open");
	return db;
}

static void mk_table(struct kv_db *db, const char *name)
{
	struct kv_feature_def f[NF];
	for (int i = 0; i < NF; i++) {
		memset(&f[i], 0, sizeof(f[i]));
		snprintf(f[i].name, sizeof(f[i].name), "%s", feats[i]);
		f[i].type = i % 2 ? KV_F64 : KV_I64;
	}
	struct kv_table t = {.nfeatures = NF, .features = f};
	snprintf(t.name, sizeof(t.name), "%s", name);
	struct st_error err;
	if (kv_table_create(db, &t, &err))
		die(&err, "create table");
}

#define TS0 1790000000000000LL /* 2026-09 */
#define VERSIONS 2

static double put_rows(struct kv_db *db, long rows)
{
	struct kv_cell cells[1000];
	char ents[100][24];
	struct st_error err;
	int64_t t0 = st_mono_us();
	long r = 0;
	while (r < rows) {
		size_t n = 0;
		for (int e = 0; e < 100 && r < rows; e++, r++) {
			long ent = r / VERSIONS, ver = r % VERSIONS;
			snprintf(ents[e], sizeof(ents[e]), "e%08ld", ent);
			for (int f = 0; f < NF; f++) {
				struct kv_cell *c = &cells[n++];
				memset(c, 0, sizeof(*c));
				c->entity = ents[e];
				c->entity_len = strlen(ents[e]);
				c->feature = feats[f];
				c->ts = TS0 + ver * 3600000000LL;
				c->value.type = f % 2 ? KV_F64 : KV_I64;
				if (f % 2)
					c->value.f64 = (double)r / 3;
				else
					c->value.i64 = r;
			}
		}
		if (kv_put(db, "bench", cells, n, &err))
			die(&err, "put");
	}
	return (st_mono_us() - t0) / 1e6;
}

static char *write_csv(const char *dir, long rows)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/bench-preload.csv", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "entity,ts");
	for (int i = 0; i < NF; i++)
		fprintf(f, ",%s", feats[i]);
	fputc('\n', f);
	char tb[ST_TS_BUFLEN];
	for (long r = 0; r < rows; r++) {
		long ent = r / VERSIONS, ver = r % VERSIONS;
		fprintf(f, "e%08ld,%s", ent, st_ts_format(TS0 + ver * 3600000000LL, tb));
		for (int i = 0; i < NF; i++)
			if (i % 2)
				fprintf(f, ",%.17g", (double)r / 3);
			else
				fprintf(f, ",%ld", r);
		fputc('\n', f);
	}
	fclose(f);
	return path;
}

static double preload(struct kv_db *db, const char *path, long rows)
{
	struct kv_preload_req req;
	kv_preload_req_init(&req);
	snprintf(req.table, sizeof(req.table), "bench_preload");
	snprintf(req.path, sizeof(req.path), "%s", path);
	uint64_t id;
	struct st_error err;
	int64_t t0 = st_mono_us();
	if (kv_preload_submit(db, &req, &id, &err) || kv_jobs_run_pending(db, &err))
		die(&err, "preload");
	double secs = (st_mono_us() - t0) / 1e6;
	struct kv_job_info j;
	if (kv_job_get(db, id, &j, &err) || j.state != KV_JOB_DONE || j.rows != rows) {
		fprintf(stderr, "strata-kv-bench: preload ended %s: %s\n", kv_job_state_name(j.state),
			j.error);
		exit(1);
	}
	return secs;
}

/* Random single-entity gets for `secs` seconds; returns gets/s. */
static double get_rate(struct kv_db *db, long entities, int asof, double secs)
{
	struct kv_result res[NF];
	struct st_error err;
	char e[24];
	long n = 0;
	int64_t t0 = st_mono_us(), end = t0 + (int64_t)(secs * 1e6);
	while (st_mono_us() < end) {
		for (int k = 0; k < 256; k++, n++) {
			snprintf(e, sizeof(e), "e%08ld", (long)(rnd() % (uint64_t)entities));
			struct kv_read_opts o = KV_READ_LATEST;
			if (asof)
				o.as_of = TS0 + (int64_t)(rnd() % 7200000000ULL);
			if (kv_get(db, "bench", e, strlen(e), feats, NF, &o, res, &err))
				die(&err, "get");
			if (!res[0].found)
				fprintf(stderr, "strata-kv-bench: %s missing\n", e), exit(1);
			kv_result_release(res, NF);
		}
	}
	return n / ((st_mono_us() - t0) / 1e6);
}

static double multiget_rate(struct kv_db *db, long entities, double secs)
{
	enum { NE = 100 };
	static struct kv_result res[NE * NF];
	char names[NE][24];
	const char *ents[NE];
	size_t lens[NE];
	struct st_error err;
	long n = 0;
	int64_t t0 = st_mono_us(), end = t0 + (int64_t)(secs * 1e6);
	while (st_mono_us() < end) {
		for (int i = 0; i < NE; i++) {
			snprintf(names[i], sizeof(names[i]), "e%08ld", (long)(rnd() % (uint64_t)entities));
			ents[i] = names[i];
			lens[i] = strlen(names[i]);
		}
		if (kv_multiget(db, "bench", ents, lens, NE, feats, NF, &KV_READ_LATEST, res, &err))
			die(&err, "multiget");
		kv_result_release(res, NE * NF);
		n++;
	}
	return n / ((st_mono_us() - t0) / 1e6);
}

/* Seconds for a join of `rows` random samples; *found_out gets the cells found. */
static double join_secs_found(struct kv_db *db, long entities, long rows, long *found_out)
{
	struct kv_join *j;
	struct st_error err;
	if (kv_join_open(db, "bench", feats, NF, ST_TS_MAX, 1 << 20, &j, &err))
		die(&err, "join");
	char e[24];
	int64_t t0 = st_mono_us();
	long found = 0;
	for (long r = 0; r < rows;) {
		int rc = 0;
		for (; r < rows && rc == 0; r++) {
			snprintf(e, sizeof(e), "e%08ld", (long)(rnd() % (uint64_t)entities));
			rc = kv_join_push(j, e, strlen(e), TS0 + (int64_t)(rnd() % 7200000000ULL), &err);
			if (rc < 0)
				die(&err, "join push");
		}
		if (kv_join_run(j, &err))
			die(&err, "join run");
		for (size_t i = 0; i < kv_join_rows(j); i++)
			found += kv_join_result(j, i)[0].found;
		kv_join_reset(j);
	}
	double secs = (st_mono_us() - t0) / 1e6;
	kv_join_free(j);
	*found_out = found;
	return secs;
}

static double join_secs(struct kv_db *db, long entities, long rows)
{
	long found;
	double secs = join_secs_found(db, entities, rows, &found);
	if (found != rows)
		fprintf(stderr, "strata-kv-bench: join found %ld of %ld\n", found, rows), exit(1);
	return secs;
}

static void set_ttl(struct kv_db *db, int64_t ttl)
{
	struct kv_alter a = KV_ALTER_NONE;
	a.ttl_us = ttl;
	struct st_error err;
	if (kv_table_alter(db, "bench", &a, &err))
		die(&err, "alter ttl");
}

/* The join with a freshness limit costs one comparison per cell: measured against the same
 * join without it, alternating so that machine noise hits all alike; best of three each.
 * ttl 365d: every value still fresh (the pure cost of the check); ttl 30m: many samples
 * find a stale value (less to copy). */
static void join_ttl_ratio(struct kv_db *db, long entities, long rows, double secs[3],
			   long *stale)
{
	static const int64_t ttls[3] = {0, 365 * 86400000000LL, 1800000000LL};
	for (int v = 0; v < 3; v++)
		secs[v] = 1e30;
	for (int round = 0; round < 3; round++)
		for (int v = 0; v < 3; v++) {
			long found;
			set_ttl(db, ttls[v]);
			double s = join_secs_found(db, entities, rows, &found);
			secs[v] = s < secs[v] ? s : secs[v];
			if (v < 2 && found != rows)
				fprintf(stderr, "strata-kv-bench: join (ttl variant %d) found %ld of %ld\n",
					v, found, rows), exit(1);
			if (v == 2)
				*stale = rows - found;
		}
	set_ttl(db, 0);
}

/* ---- disk use with retention: simulated months of new versions ---- */

static int64_t sim_now;
static int64_t sim_clock(void *arg) { return sim_now; }

#define SIM_ENTITIES 2000
#define SIM_DAYS 120
#define SIM_STEP_H 6
#define DAY_US 86400000000LL

static struct kv_db *open_sim(const char *dir, int64_t retention)
{
	struct kv_options o;
	kv_options_init(&o);
	o.sync = KV_SYNC_NONE;
	o.clock = sim_clock;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(dir, &o, &db, &err))
		die(&err, "open sim");
	struct kv_feature_def f[2] = {{"clicks", KV_I64, 0, 0, 0}, {"ctr", KV_F64, 0, 0, 0}};
	struct kv_table t = {.name = "sim", .ttl_us = 2 * DAY_US, .retention_us = retention,
			     .nfeatures = 2, .features = f};
	if (kv_table_create(db, &t, &err))
		die(&err, "create sim");
	return db;
}

static double sst_mib(struct kv_db *db)
{
	return kv_property_sum(db, "rocksdb.total-sst-files-size") / 1048576.0;
}

/* Writes a new version of every entity every SIM_STEP_H simulated hours for SIM_DAYS days
 * into two stores, retention 7d and 0, compacting weekly; fills mib7[month], mib0[month]. */
static void retention_disk(const char *dir, double *mib7, double *mib0)
{
	char d7[4300], d0[4300];
	snprintf(d7, sizeof(d7), "%s/ret7d", dir);
	snprintf(d0, sizeof(d0), "%s/ret0", dir);
	sim_now = TS0;
	struct kv_db *db7 = open_sim(d7, 7 * DAY_US), *db0 = open_sim(d0, 0);
	struct kv_cell cells[200];
	char names[100][24];
	struct st_error err;
	int steps_per_day = 24 / SIM_STEP_H;
	for (int step = 0; step < SIM_DAYS * steps_per_day; step++) {
		sim_now = TS0 + (int64_t)step * SIM_STEP_H * 3600000000LL;
		for (long e0 = 0; e0 < SIM_ENTITIES; e0 += 100) {
			for (int k = 0; k < 100; k++) {
				snprintf(names[k], sizeof(names[k]), "user%06ld", e0 + k);
				struct kv_cell *c = &cells[2 * k];
				*c = (struct kv_cell){names[k], strlen(names[k]), "clicks", sim_now,
						      {.type = KV_I64, .i64 = (int64_t)(rnd() % 1000)}};
				c[1] = (struct kv_cell){names[k], strlen(names[k]), "ctr", sim_now,
							{.type = KV_F64, .f64 = (double)(rnd() % 1000) / 999}};
			}
			if (kv_put(db7, "sim", cells, 200, &err) || kv_put(db0, "sim", cells, 200, &err))
				die(&err, "sim put");
		}
		if ((step + 1) % (7 * steps_per_day) == 0) {
			kv_compact(db7, &err);
			kv_compact(db0, &err);
		}
		if ((step + 1) % (30 * steps_per_day) == 0) {
			int m = (step + 1) / (30 * steps_per_day) - 1;
			kv_compact(db7, &err);
			kv_compact(db0, &err);
			mib7[m] = sst_mib(db7);
			mib0[m] = sst_mib(db0);
		}
	}
	kv_close(db7);
	kv_close(db0);
}

int main(int argc, char **argv)
{
	long rows = 1000000, join_rows = 1000000;
	const char *dir = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rows") && i + 1 < argc)
			rows = atol(argv[++i]);
		else if (!strcmp(argv[i], "--join-rows") && i + 1 < argc)
			join_rows = atol(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else {
			fprintf(stderr, "usage: strata-kv-bench [--rows N] [--join-rows N] [--dir D] [--json]\n");
			return 2;
		}
	}
	char tmpl[] = "/tmp/strata-kv-bench.XXXXXX";
	if (!dir && !(dir = mkdtemp(tmpl)))
		return perror("mkdtemp"), 1;
	char sdir[4200];
	snprintf(sdir, sizeof(sdir), "%s/store", dir);
	struct kv_db *db = open_store(sdir, 0);
	mk_table(db, "bench");
	mk_table(db, "bench_preload");
	long entities = rows / VERSIONS;

	double put_s = put_rows(db, rows);
	char *csv = write_csv(dir, rows);
	double pre_s = preload(db, csv, rows);
	unlink(csv);
	struct st_error err;
	kv_compact(db, &err); /* reads measured on a settled LSM, as in serving */
	/* latest and as-of alternate in short slices so machine noise hits both alike */
	double latest = 0, asof = 0;
	for (int i = 0; i < 12; i++) {
		latest += get_rate(db, entities, 0, 0.25) / 12;
		asof += get_rate(db, entities, 1, 0.25) / 12;
	}
	double mget = multiget_rate(db, entities, 3.0);
	double join_s = join_secs(db, entities, join_rows);
	double jsecs[3];
	long jstale;
	join_ttl_ratio(db, entities, join_rows, jsecs, &jstale);
	kv_close(db);
	double mib7[SIM_DAYS / 30], mib0[SIM_DAYS / 30];
	retention_disk(dir, mib7, mib0);

	/* the serving configuration: a row cache, warmed by one read of every entity */
	db = open_store(sdir, 2u << 30);
	{
		struct kv_result res[NF];
		char e[24];
		for (long i = 0; i < entities; i++) {
			snprintf(e, sizeof(e), "e%08ld", i);
			if (kv_get(db, "bench", e, strlen(e), feats, NF, &KV_READ_LATEST, res, &err))
				die(&err, "warm");
			kv_result_release(res, NF);
		}
	}
	double cached = get_rate(db, entities, 0, 3.0);
	kv_close(db);

	double put_rows_s = rows / put_s, pre_rows_s = rows / pre_s;
	double join_vals = join_rows * (double)NF / join_s;
	if (json) {
		printf("{\"rows\":%ld,\"put_rows_s\":%.0f,\"preload_rows_s\":%.0f,\"latest_gets_s\":%.0f,"
		       "\"asof_gets_s\":%.0f,\"cached_gets_s\":%.0f,\"multiget_calls_s\":%.1f,\"join_rows_s\":%.0f,"
		       "\"join_values_s\":%.0f,\"preload_vs_put\":%.2f,\"asof_vs_latest\":%.2f,"
		       "\"join_ttl_vs_plain\":%.2f,\"disk_mib_retention_7d\":%.1f,"
		       "\"disk_mib_retention_0\":%.1f}\n",
		       rows, put_rows_s, pre_rows_s, latest, asof, cached, mget, join_rows / join_s, join_vals,
		       pre_rows_s / put_rows_s, asof / latest, jsecs[0] / jsecs[1], mib7[SIM_DAYS / 30 - 1],
		       mib0[SIM_DAYS / 30 - 1]);
	} else {
		printf("store engine, %ld rows x %d features (%ld entities x %d versions); gets on 1 "
		       "thread, preload sort and join on one thread per core\n",
		       rows, NF, entities, VERSIONS);
		printf("  %-34s %12.0f rows/s  (%.0f cells/s)\n", "batched put (100 rows/batch)",
		       put_rows_s, put_rows_s * NF);
		printf("  %-34s %12.0f rows/s  (%.0f cells/s)\n", "preload (CSV -> SST ingest)",
		       pre_rows_s, pre_rows_s * NF);
		printf("  %-34s %12.0f gets/s  (%.0f values/s)\n", "latest get, 10 features", latest,
		       latest * NF);
		printf("  %-34s %12.0f gets/s  (%.0f values/s)\n", "as-of get, 10 features", asof,
		       asof * NF);
		printf("  %-34s %12.0f gets/s  (%.0f values/s)\n", "latest get, row cache (warm)",
		       cached, cached * NF);
		printf("  %-34s %12.1f calls/s (%.0f values/s)\n", "multi-get 100 entities x 10", mget,
		       mget * 1000);
		printf("  %-34s %12.0f rows/s  (%.0f values/s)\n", "join, 1M sample rows x 10", 
		       join_rows / join_s, join_vals);
		printf("ratios (same run):  preload/put %.2fx (target >= 3)   as-of/latest %.2fx "
		       "(target >= 0.9)   join %.2fM values/s (target >= 2M)\n",
		       pre_rows_s / put_rows_s, asof / latest, join_vals / 1e6);
		printf("  %-34s %12.2fx of the same join without ttl (target >= 0.9; every value "
		       "fresh; best of 3 each, alternating)\n", "join with ttl 365d", jsecs[0] / jsecs[1]);
		printf("  %-34s %12.2fx of the same join without ttl (%ld of %ld samples find a stale "
		       "value)\n", "join with ttl 30m", jsecs[0] / jsecs[2], jstale, join_rows);
		printf("  disk after compaction, %d entities x 2 features, a new version every %dh, ttl 2d:\n",
		       SIM_ENTITIES, SIM_STEP_H);
		for (int m = 0; m < SIM_DAYS / 30; m++)
			printf("    day %3d: retention 7d %8.2f MiB   retention 0 %8.2f MiB   (%.2fx)\n",
			       30 * (m + 1), mib7[m], mib0[m], mib0[m] > 0 ? mib7[m] / mib0[m] : 0);
		printf("  retention 7d stays bounded: day %d / day 30 = %.2fx (retention 0: %.2fx)\n",
		       SIM_DAYS, mib7[SIM_DAYS / 30 - 1] / mib7[0], mib0[SIM_DAYS / 30 - 1] / mib0[0]);
	}
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (!strncmp(dir, "/tmp/strata-kv-bench.", 21) && system(cmd) != 0)
		fprintf(stderr, "strata-kv-bench: could not remove %s\n", dir);
	return 0;
}
