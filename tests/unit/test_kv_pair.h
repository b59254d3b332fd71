/* Two stores side by side for tests of what moves between a primary and a replica (apply,
 * install): their temp directories, the cmocka setup/teardown that empties them, and an
 * opener that gives a one-shard store with one table "t" (one i64 feature "i").
 * Header-only; include after <cmocka.h>, "store/kv.h" and "tests/unit/test_util.h". */
#ifndef TEST_KV_PAIR_H
#define TEST_KV_PAIR_H

#include <string.h>
#include <unistd.h>

static char dir_a[256], dir_b[256];

static int pair_setup(void **state)
{
	(void)state;
	snprintf(dir_a, sizeof(dir_a), "/tmp/strata-test-pair-a.%d", (int)getpid());
	snprintf(dir_b, sizeof(dir_b), "/tmp/strata-test-pair-b.%d", (int)getpid());
	tu_rm_rf(dir_a);
	tu_rm_rf(dir_b);
	return 0;
}

static int pair_teardown(void **state)
{
	(void)state;
	tu_rm_rf(dir_a);
	tu_rm_rf(dir_b);
	return 0;
}

/* Opens dir with o (NULL: defaults) forced to one shard, creating table "t" if missing. */
static struct kv_db *pair_open(const char *dir, const struct kv_options *o)
{
	struct kv_options def;
	if (!o) {
		kv_options_init(&def);
		o = &def;
	}
	struct kv_options one = *o;
	one.nshards = 1;
	struct kv_db *db;
	struct st_error err;
	if (kv_open(dir, &one, &db, &err))
		fail_msg("open %s: %s", dir, err.msg);
	struct kv_feature_def f[] = {{"i", KV_I64, 0, 0, 0}};
	struct kv_table t = {.name = "t", .nfeatures = 1, .features = f};
	if (kv_table_create(db, &t, &err) && err.code != ST_EEXIST)
		fail_msg("create: %s", err.msg);
	return db;
}

/* Puts v as feature "i" of `ent` in table "t" at event time ts. */
static void pair_put(struct kv_db *db, const char *ent, int64_t ts, int64_t v)
{
	struct kv_cell c = {ent, strlen(ent), "i", ts, {.type = KV_I64, .i64 = v}};
	struct st_error err;
	if (kv_put(db, "t", &c, 1, &err))
		fail_msg("put: %s", err.msg);
}

/* The latest value of `ent`, -1 when there is none. */
static int64_t pair_get(struct kv_db *db, const char *ent)
{
	const char *feat = "i";
	struct kv_result r;
	struct st_error err;
	if (kv_get(db, "t", ent, strlen(ent), &feat, 1, &kv_read_latest, &r, &err))
		fail_msg("get: %s", err.msg);
	int64_t v = r.found ? r.value.i64 : -1;
	kv_result_release(&r, 1);
	return v;
}

#endif
