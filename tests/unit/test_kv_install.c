/* Installing a resynced copy of a shard (kv_shard_install, store/kv_repl.c): the copy serves
 * the checkpoint's contents at the given position, and the replaced copy leaves the install
 * path (renamed to DATA_DIR/shard-NNN.trash.ID and deleted in the background): after the
 * install nothing of it remains under its old name, installs in a row each get their own
 * trash name, kv_close finishes the queued deletions, and trash left by a crashed process is
 * deleted by the next kv_open (other entries of the data directory are left alone). The
 * completion marker carries the copy's position: a staged copy whose marker is whole is
 * swapped in by the next kv_open with that position, one whose marker does not parse (a
 * crash while it was written) is deleted and the old copy serves; an earlier version's empty
 * marker left in a live copy is removed at open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/kv.h"
#include "tests/unit/test_util.h"

#include "tests/unit/test_kv_pair.h"

static struct kv_db *open_db(const char *dir)
{
	return pair_open(dir, NULL);
}

static void put(struct kv_db *db, const char *ent, int64_t v)
{
	pair_put(db, ent, 1000, v);
}

static int64_t get(struct kv_db *db, const char *ent)
{
	return pair_get(db, ent);
}

/* Entries of dir whose name contains `part`. */
static int count_entries(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strstr(e->d_name, part) != NULL;
	closedir(d);
	return n;
}

/* A checkpoint of a's shard 0, installed as b's shard 0 at position (id, next). */
static void resync(struct kv_db *a, struct kv_db *b, const char *id)
{
	char stage[512];
	uint64_t next;
	struct st_error err;
	kv_shard_stage_dir(b, 0, stage, sizeof(stage));
	if (kv_shard_checkpoint(a, 0, stage, &next, &err))
		fail_msg("checkpoint: %s", err.msg);
	struct kv_repl_pos pos = {{0}, next};
	snprintf(pos.replid, sizeof(pos.replid), "%s", id);
	if (kv_shard_install(b, 0, stage, &pos, &err))
		fail_msg("install: %s", err.msg);
	struct kv_repl_pos got;
	assert_int_equal(kv_shard_repl_pos(b, 0, &got, &err), 0);
	assert_string_equal(got.replid, id);
	assert_int_equal(got.next_seq, next);
	/* the old copy is renamed before kv_shard_install returns: never under its old name */
	assert_int_equal(count_entries(dir_b, ".old"), 0);
	assert_int_equal(count_entries(dir_b, ".resync"), 0);
}

static void test_install_and_trash(void **state)
{
	struct kv_db *a = open_db(dir_a), *b = open_db(dir_b);
	put(a, "x", 1);
	put(b, "x", 99);
	put(b, "only-b", 5);
	resync(a, b, "copy-one");
	assert_int_equal(get(b, "x"), 1);
	assert_int_equal(get(b, "only-b"), -1);
	/* installs in a row: each replaced copy gets its own trash name, none collides with a
	 * deletion still running */
	for (int i = 2; i <= 5; i++) {
		put(a, "x", i);
		char id[32];
		snprintf(id, sizeof(id), "copy-%d", i);
		resync(a, b, id);
		assert_int_equal(get(b, "x"), i);
	}
	put(b, "after", 7); /* the installed copy takes writes */
	kv_close(b);
	/* kv_close finished every queued deletion */
	assert_int_equal(count_entries(dir_b, ".trash."), 0);
	b = open_db(dir_b);
	assert_int_equal(get(b, "x"), 5);
	assert_int_equal(get(b, "after"), 7);
	kv_close(b);
	kv_close(a);
}

/* What a crash leaves (a trash directory with files in it) is deleted at the next open. */
static void test_leftover_trash_at_open(void **state)
{
	struct kv_db *b = open_db(dir_b);
	put(b, "x", 3);
	kv_close(b);
	char p[600];
	snprintf(p, sizeof(p), "%s/shard-000.trash.123-0", dir_b);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/shard-000.trash.123-0/000012.sst", dir_b);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("stale", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/not-trash", dir_b); /* anything else is left alone */
	assert_int_equal(mkdir(p, 0755), 0);
	b = open_db(dir_b);
	assert_int_equal(count_entries(dir_b, ".trash."), 0);
	assert_int_equal(count_entries(dir_b, "not-trash"), 1);
	assert_int_equal(get(b, "x"), 3);
	kv_close(b);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* A's shard 0 checkpointed into b's stage directory (b closed), with `marker` written as its
 * completion marker (NULL: none); returns the checkpoint's next sequence. */
static uint64_t stage_copy(struct kv_db *a, const char *marker_fmt)
{
	char stage[512], p[600];
	uint64_t next;
	struct st_error err;
	snprintf(stage, sizeof(stage), "%s/shard-000.resync", dir_b);
	if (kv_shard_checkpoint(a, 0, stage, &next, &err))
		fail_msg("checkpoint: %s", err.msg);
	if (marker_fmt) {
		char text[200];
		snprintf(text, sizeof(text), marker_fmt, (unsigned long long)next);
		snprintf(p, sizeof(p), "%s/STRATA-COMPLETE", stage);
		write_file(p, text);
	}
	return next;
}

/* A crash after the marker was synced, before the swap: kv_open swaps the copy in and
 * applies the marker's position; the marker is gone afterwards. */
static void test_complete_stage_at_open(void **state)
{
	struct kv_db *a = open_db(dir_a), *b = open_db(dir_b);
	put(a, "x", 11);
	put(b, "x", 22);
	kv_close(b);
	uint64_t next = stage_copy(a, "%llu followed-id own-id\n");
	b = open_db(dir_b);
	assert_int_equal(get(b, "x"), 11);
	struct kv_repl_pos got;
	struct st_error err;
	assert_int_equal(kv_shard_repl_pos(b, 0, &got, &err), 0);
	assert_string_equal(got.replid, "followed-id");
	assert_int_equal(got.next_seq, next);
	char id[64];
	assert_int_equal(kv_shard_replid(b, 0, id, &err), 0);
	assert_string_equal(id, "own-id");
	assert_int_equal(count_entries(dir_b, ".resync"), 0);
	char p[600];
	snprintf(p, sizeof(p), "%s/shard-000", dir_b);
	assert_int_equal(count_entries(p, "STRATA-"), 0);
	kv_close(b);
	kv_close(a);
}

/* A marker that does not parse (empty, cut short) is a crash while it was written: the
 * stage is deleted at open and the old copy serves. */
static void test_torn_marker_at_open(void **state)
{
	static const char *const torn[] = {"", "%llu", "%llu followed-id", "x y z\n"};
	struct kv_db *a = open_db(dir_a);
	put(a, "x", 11);
	for (size_t i = 0; i < sizeof(torn) / sizeof(torn[0]); i++) {
		struct kv_db *b = open_db(dir_b);
		put(b, "x", 22);
		kv_close(b);
		stage_copy(a, torn[i]);
		b = open_db(dir_b);
		assert_int_equal(get(b, "x"), 22);
		assert_int_equal(count_entries(dir_b, ".resync"), 0);
		kv_close(b);
	}
	kv_close(a);
}

/* Earlier versions left an empty marker in every installed copy (the position was in
 * STRATA-POS): it is removed at open without touching the position; a copy they swapped in
 * before a crash (empty marker + STRATA-POS) gets its position applied. */
static void test_earlier_version_markers(void **state)
{
	struct kv_db *b = open_db(dir_b);
	put(b, "x", 3);
	kv_close(b);
	char p[600];
	snprintf(p, sizeof(p), "%s/shard-000/STRATA-COMPLETE", dir_b);
	write_file(p, "");
	b = open_db(dir_b);
	assert_int_equal(get(b, "x"), 3);
	snprintf(p, sizeof(p), "%s/shard-000", dir_b);
	assert_int_equal(count_entries(p, "STRATA-"), 0);
	kv_close(b);
	snprintf(p, sizeof(p), "%s/shard-000/STRATA-COMPLETE", dir_b);
	write_file(p, "");
	snprintf(p, sizeof(p), "%s/shard-000/STRATA-POS", dir_b);
	write_file(p, "77 old-followed old-own\n");
	b = open_db(dir_b);
	struct kv_repl_pos got;
	struct st_error err;
	assert_int_equal(kv_shard_repl_pos(b, 0, &got, &err), 0);
	assert_string_equal(got.replid, "old-followed");
	assert_int_equal(got.next_seq, 77);
	snprintf(p, sizeof(p), "%s/shard-000", dir_b);
	assert_int_equal(count_entries(p, "STRATA-"), 0);
	kv_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_install_and_trash, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_leftover_trash_at_open, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_complete_stage_at_open, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_torn_marker_at_open, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_earlier_version_markers, pair_setup, pair_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
