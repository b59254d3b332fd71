/* Batches applied on a replica (kv_shard_apply_at, store/kv_repl.c) and its row cache: an
 * applied batch invalidates the cached rows of the entities it writes, and only those (the
 * issue: "applied batches invalidate the entities they touch, not the whole cache"); and the
 * replica's ingest clock is raised to every ingest time it applies, so that promoted it never
 * issues an ingest time lower than one it holds (the primary's clock here runs an hour
 * ahead). The batches are the primary's own, read with kv_shard_updates_since as the stream
 * does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <unistd.h>

#include "common/st_time.h"
#include "store/kv.h"
#include "tests/unit/test_util.h"

#include "tests/unit/test_kv_pair.h"

static int64_t hour_ahead(void *arg)
{
	(void)arg;
	return st_now_us() + 3600 * 1000000LL;
}

static struct kv_db *open_db_clock(const char *dir, int64_t (*clock)(void *))
{
	struct kv_options o;
	kv_options_init(&o);
	if (clock)
		o.clock = clock;
	o.row_cache_bytes = 1 << 20;
	return pair_open(dir, &o);
}

static struct kv_db *open_db(const char *dir)
{
	return open_db_clock(dir, NULL);
}

static void put(struct kv_db *db, const char *ent, int64_t v)
{
	pair_put(db, ent, 1000 + v, v);
}

static int64_t get(struct kv_db *db, const char *ent)
{
	return pair_get(db, ent);
}

struct ship {
	struct kv_db *to;
	struct kv_repl_pos pos;
};

static int apply_one(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct ship *s = arg;
	uint64_t first;
	uint32_t count;
	assert_int_equal(kv_batch_header(data, len, &first, &count), 0);
	assert_int_equal(first, s->pos.next_seq);
	s->pos.next_seq = first + count;
	struct st_error err;
	int rc = kv_shard_apply_at(s->to, 0, data, len, &s->pos, &err);
	if (rc < 0)
		fail_msg("apply: %s", err.msg);
	return 0;
}

/* Everything a has written since the last call, applied to b. */
static void ship(struct kv_db *a, struct ship *s)
{
	struct st_error err;
	if (kv_shard_updates_since(a, 0, s->pos.next_seq, apply_one, s, &err))
		fail_msg("updates since %llu: %s", (unsigned long long)s->pos.next_seq, err.msg);
}

static uint64_t hits(struct kv_db *db)
{
	uint64_t h, m, b;
	kv_row_cache_stats(db, &h, &m, &b);
	return h;
}

static void test_apply_invalidates_touched_entities(void **state)
{
	struct kv_db *a = open_db(dir_a), *b = open_db(dir_b);
	struct ship s = {b, {{0}, 1}};
	snprintf(s.pos.replid, sizeof(s.pos.replid), "primary-a");
	char ent[16];
	for (int i = 0; i < 20; i++) {
		snprintf(ent, sizeof(ent), "e%d", i);
		put(a, ent, i);
	}
	ship(a, &s);
	for (int i = 0; i < 20; i++) { /* every row read once: now cached on the replica */
		snprintf(ent, sizeof(ent), "e%d", i);
		assert_int_equal(get(b, ent), i);
	}
	uint64_t h0 = hits(b);
	for (int i = 0; i < 20; i++) {
		snprintf(ent, sizeof(ent), "e%d", i);
		assert_int_equal(get(b, ent), i);
	}
	assert_int_equal(hits(b) - h0, 20);
	/* the primary rewrites e3 and e7: after the apply the replica answers their new values
	 * (a stale cached row would answer 3 and 7), and the 18 others are still cached */
	put(a, "e3", 103);
	put(a, "e7", 107);
	ship(a, &s);
	h0 = hits(b);
	assert_int_equal(get(b, "e3"), 103);
	assert_int_equal(get(b, "e7"), 107);
	for (int i = 0; i < 20; i++) {
		snprintf(ent, sizeof(ent), "e%d", i);
		if (i != 3 && i != 7)
			assert_int_equal(get(b, ent), i);
	}
	assert_int_equal(hits(b) - h0, 18);
	kv_close(b);
	kv_close(a);
}

static void test_apply_raises_ingest_clock(void **state)
{
	struct kv_db *a = open_db_clock(dir_a, hour_ahead), *b = open_db(dir_b);
	struct ship s = {b, {{0}, 1}};
	snprintf(s.pos.replid, sizeof(s.pos.replid), "primary-a");
	put(a, "e1", 1);
	put(a, "e2", 2);
	int64_t primary_last = kv_ingest_clock(a);
	assert_true(kv_ingest_clock(b) < primary_last); /* b's own clock is an hour behind */
	ship(a, &s);
	assert_true(kv_ingest_clock(b) >= primary_last);
	put(b, "e3", 3); /* as a promoted replica: its next ingest time is above the primary's */
	assert_true(kv_ingest_clock(b) > primary_last);
	kv_close(b);
	kv_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_apply_invalidates_touched_entities, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_apply_raises_ingest_clock, pair_setup, pair_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
