/* The coordination logic that needs no etcd: decoding the v3 gateway's replies (strings for
 * int64s, base64 keys and values, missing fields, hostile input), the election rule, the
 * lease deadline arithmetic, the layout's JSON form (the one stored in etcd), base64, and the
 * URL syntax of --cluster etcd://. The live behaviour is in tests/integ/repl_etcd_*.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/st_base64.h"
#include "replication/repl.h"
#include "replication/repl_coord.h"
#include "replication/repl_etcd.h"
#include "replication/repl_int.h"

static json_t *js(const char *s)
{
	json_t *o = json_loads(s, 0, NULL);
	assert_non_null(o);
	return o;
}

static void test_i64(void **state)
{
	json_t *o = js("{\"a\":\"12\",\"b\":7,\"c\":\"x\",\"d\":\"-3\",\"e\":\"9223372036854775807\","
		       "\"f\":\"99999999999999999999\",\"g\":[1]}");
	assert_int_equal(repl_etcd_i64(json_object_get(o, "a")), 12);
	assert_int_equal(repl_etcd_i64(json_object_get(o, "b")), 7);
	assert_int_equal(repl_etcd_i64(json_object_get(o, "c")), -1);
	assert_int_equal(repl_etcd_i64(json_object_get(o, "d")), -3);
	assert_true(repl_etcd_i64(json_object_get(o, "e")) == INT64_MAX);
	assert_int_equal(repl_etcd_i64(json_object_get(o, "f")), -1); /* overflow */
	assert_int_equal(repl_etcd_i64(json_object_get(o, "g")), -1);
	assert_int_equal(repl_etcd_i64(json_object_get(o, "missing")), 0);
	json_decref(o);
}

static void test_decode_range(void **state)
{
	/* as etcd 3.4 answers: "/s/a" = "{\"x\":1}", "/s/b" = "" (value omitted), lease */
	json_t *o = js("{\"header\":{\"revision\":\"9\"},\"kvs\":["
		       "{\"key\":\"L3MvYQ==\",\"create_revision\":\"2\",\"mod_revision\":\"5\","
		       "\"version\":\"3\",\"value\":\"eyJ4IjoxfQ==\",\"lease\":\"7587\"},"
		       "{\"key\":\"L3MvYg==\",\"create_revision\":\"4\",\"mod_revision\":\"4\"}],"
		       "\"count\":\"2\"}");
	struct repl_etcd_kvs k;
	struct st_error err;
	assert_int_equal(repl_etcd_decode_kvs(o, &k, &err), 0);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.kv[0].key, "/s/a");
	assert_string_equal(k.kv[0].value, "{\"x\":1}");
	assert_int_equal(k.kv[0].vlen, 7);
	assert_int_equal(k.kv[0].create_rev, 2);
	assert_int_equal(k.kv[0].mod_rev, 5);
	assert_int_equal(k.kv[0].lease, 7587);
	assert_string_equal(k.kv[1].value, "");
	assert_int_equal(k.kv[1].lease, 0);
	assert_ptr_equal(repl_etcd_kvs_find(&k, "/s/b"), &k.kv[1]);
	assert_null(repl_etcd_kvs_find(&k, "/s/c"));
	repl_etcd_kvs_release(&k);
	json_decref(o);
	/* no kvs: an empty range */
	o = js("{\"header\":{}}");
	assert_int_equal(repl_etcd_decode_kvs(o, &k, &err), 0);
	assert_int_equal(k.n, 0);
	repl_etcd_kvs_release(&k);
	json_decref(o);
}

static void test_decode_hostile(void **state)
{
	static const char *bad[] = {
		"{\"kvs\":{}}",                                      /* not an array */
		"{\"kvs\":[{\"value\":\"eA==\"}]}",                 /* no key */
		"{\"kvs\":[{\"key\":\"***\"}]}",                    /* key not base64 */
		"{\"kvs\":[{\"key\":\"eA==\",\"value\":\"a\"}]}",   /* bad base64 length */
		"{\"kvs\":[{\"key\":\"eA==\",\"value\":7}]}",       /* value not a string */
		"{\"kvs\":[{\"key\":\"eA==\",\"mod_revision\":\"x\"}]}",
		"{\"kvs\":[{\"key\":\"eA==\",\"lease\":\"-5\"}]}",
		"{\"kvs\":[{\"key\":\"\"}]}",                       /* empty key */
		"{\"kvs\":[7]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *o = js(bad[i]);
		struct repl_etcd_kvs k;
		struct st_error err = {0};
		assert_int_not_equal(repl_etcd_decode_kvs(o, &k, &err), 0);
		assert_int_equal(k.n, 0);
		assert_true(err.msg[0] != '\0');
		json_decref(o);
	}
}

static void test_decode_keepalive(void **state)
{
	struct st_error err;
	int64_t ttl = -9;
	json_t *o = js("{\"result\":{\"header\":{},\"ID\":\"42\",\"TTL\":\"2\"}}");
	assert_int_equal(repl_etcd_decode_keepalive(o, &ttl, &err), 0);
	assert_int_equal(ttl, 2);
	json_decref(o);
	/* the lease is gone: etcd omits TTL */
	o = js("{\"result\":{\"header\":{},\"ID\":\"42\"}}");
	assert_int_equal(repl_etcd_decode_keepalive(o, &ttl, &err), 0);
	assert_int_equal(ttl, 0);
	json_decref(o);
	o = js("{\"error\":{\"grpc_code\":14}}");
	assert_int_equal(repl_etcd_decode_keepalive(o, &ttl, &err), ST_EPROTO);
	json_decref(o);
	o = js("{\"result\":{\"TTL\":\"soon\"}}");
	assert_int_equal(repl_etcd_decode_keepalive(o, &ttl, &err), ST_EPROTO);
	json_decref(o);
}

static struct repl_candidate cand(const char *node, const char *replid, uint64_t next, int elig)
{
	struct repl_candidate c = {{0}, {0}, next, elig};
	snprintf(c.node, sizeof(c.node), "%s", node);
	snprintf(c.replid, sizeof(c.replid), "%s", replid);
	return c;
}

static void test_elect_best(void **state)
{
	struct repl_candidate c[5] = {
		cand("b", "H", 100, 1),
		cand("c", "H", 120, 1),
		cand("d", "H", 500, 0),  /* mid-resync: never, however far ahead it claims */
		cand("e", "X", 900, 1),  /* another history: its sequences do not compare */
		cand("a", "H", 120, 1),  /* ties with c: the smaller name wins */
	};
	assert_int_equal(repl_elect_best(c, 5, "H"), 4);
	assert_int_equal(repl_elect_best(c, 4, "H"), 1);
	assert_int_equal(repl_elect_best(c, 1, "H"), 0);
	assert_int_equal(repl_elect_best(c, 5, "X"), 3);
	assert_int_equal(repl_elect_best(c, 5, "nobody"), -1);
	assert_int_equal(repl_elect_best(c, 0, "H"), -1);
	/* the rule does not depend on the order of the candidates */
	for (int rot = 0; rot < 5; rot++) {
		struct repl_candidate d[5];
		for (int i = 0; i < 5; i++)
			d[i] = c[(i + rot) % 5];
		int b = repl_elect_best(d, 5, "H");
		assert_string_equal(d[b].node, "a");
	}
}

static void test_lease_deadline(void **state)
{
	/* TTL 2 s sent at t: stop at t + 2 s - 1% - margin, strictly before etcd can expire it */
	assert_int_equal(repl_lease_deadline(1000000, 2), 1000000 + 2000000 - 20000 -
							    REPL_LEASE_MARGIN_US);
	for (int64_t ttl = 2; ttl <= 60; ttl++) {
		int64_t d = repl_lease_deadline(5000000, ttl);
		assert_true(d < 5000000 + ttl * 1000000);
		/* a renewal every TTL/4 keeps the deadline ahead of the next renewal */
		assert_true(d > 5000000 + ttl * 1000000 / 4);
	}
}

static void test_layout_json(void **state)
{
	struct repl_layout l = {.version = 7, .nshards = 2, .nnodes = 3};
	const char *names[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		snprintf(l.nodes[i].name, sizeof(l.nodes[i].name), "%s", names[i]);
		snprintf(l.nodes[i].addr, sizeof(l.nodes[i].addr), "127.0.0.1:%d", 7000 + i);
		snprintf(l.nodes[i].repl_addr, sizeof(l.nodes[i].repl_addr), "127.0.0.1:%d", 8000 + i);
	}
	struct repl_shard_map m[2] = {{0, 2, {1, 2}, 7}, {1, 1, {0}, 7}};
	l.shards = m;
	char *s = repl_layout_to_json(&l);
	assert_non_null(s);
	struct repl_layout back;
	struct st_error err;
	assert_int_equal(repl_layout_from_json(s, &back, &err), 0);
	free(s);
	assert_int_equal(back.version, 7);
	assert_int_equal(back.nshards, 2);
	assert_int_equal(back.nnodes, 3);
	assert_string_equal(back.nodes[2].repl_addr, "127.0.0.1:8002");
	assert_int_equal(back.shards[0].primary, 0);
	assert_int_equal(back.shards[0].nreplicas, 2);
	assert_int_equal(back.shards[1].primary, 1);
	assert_int_equal(back.shards[1].replicas[0], 0);
	repl_layout_release(&back);
	static const char *bad[] = {
		"not json",
		"{\"version\":1,\"shards\":1,\"nodes\":[],\"map\":[{\"primary\":\"a\","
		"\"replicas\":[]}]}", /* unknown primary */
		"{\"version\":1,\"shards\":2,\"nodes\":[{\"name\":\"a\",\"addr\":\"h:1\","
		"\"repl\":\"h:2\"}],\"map\":[{\"primary\":\"a\",\"replicas\":[]}]}", /* map short */
		"{\"version\":0,\"shards\":1,\"nodes\":[],\"map\":[]}",
		"{\"version\":1,\"shards\":1,\"nodes\":[{\"name\":\"a\",\"addr\":\"nocolon\","
		"\"repl\":\"h:2\"}],\"map\":[{\"primary\":\"a\",\"replicas\":[]}]}",
		"{\"version\":1,\"shards\":1,\"nodes\":[{\"name\":\"a\",\"addr\":\"h:1\","
		"\"repl\":\"h:2\"},{\"name\":\"a\",\"addr\":\"h:1\",\"repl\":\"h:2\"}],"
		"\"map\":[{\"primary\":\"a\",\"replicas\":[]}]}", /* repeated node */
		"{\"version\":1,\"shards\":1,\"nodes\":[{\"name\":\"a\",\"addr\":\"h:1\","
		"\"repl\":\"h:2\"}],\"map\":[{\"primary\":\"a\",\"replicas\":[\"a\"]}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_not_equal(repl_layout_from_json(bad[i], &back, &err), 0);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_base64(void **state)
{
	static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char *e = st_base64_encode(plain[i], strlen(plain[i]));
		assert_string_equal(e, enc[i]);
		unsigned char *d;
		size_t n;
		assert_int_equal(st_base64_decode(e, strlen(e), &d, &n), 0);
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(d, plain[i], n);
		free(d);
		free(e);
	}
	/* every byte value survives a round trip */
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	char *e = st_base64_encode(all, 256);
	unsigned char *d;
	size_t n;
	assert_int_equal(st_base64_decode(e, strlen(e), &d, &n), 0);
	assert_int_equal(n, 256);
	assert_memory_equal(d, all, 256);
	free(d);
	free(e);
	assert_int_equal(st_base64_decode("a", 1, &d, &n), ST_EINVAL);
	assert_int_equal(st_base64_decode("ab*d", 4, &d, &n), ST_EINVAL);
}

/* How a replica joins a primary R that forked from history H at P (its sequences before 100
 * hold H before P = 50). */
static void test_join_plan(void **state)
{
	struct kv_repl_fork fork = {"R", "H", 50, 100};
	struct repl_join j;
	struct kv_repl_pos none = {"", 0};
#define POS(id, n) (&(struct kv_repl_pos){id, n})
	/* a replica of R itself: stream from its position */
	repl_join_plan("R", &fork, POS("R", 120), POS("X", 7), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_STREAM);
	assert_int_equal(j.next, 120);
	/* ... unless it asks for a resync */
	repl_join_plan("R", &fork, POS("R", 120), POS("X", 7), 1, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
	/* H's former primary with a divergent tail from 50 to 79: undo from 50, join at 100 */
	repl_join_plan("R", &fork, POS("H", 0), POS("H", 80), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_REWIND);
	assert_int_equal(j.undo_from, 50);
	assert_int_equal(j.next, 100);
	/* ... with nothing beyond the fork: the same join, nothing undone */
	repl_join_plan("R", &fork, &none, POS("H", 50), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_REWIND);
	assert_int_equal(j.undo_from, 50);
	/* ... behind the fork (cannot happen for the copy R followed, but never a rewind) */
	repl_join_plan("R", &fork, &none, POS("H", 49), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
	/* a replica of H exactly at the fork: join at 100 with nothing to undo */
	repl_join_plan("R", &fork, POS("H", 50), POS("Y", 999), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_REWIND);
	assert_int_equal(j.undo_from, 0);
	assert_int_equal(j.next, 100);
	/* a replica of H behind the fork: R sends H's batches up to 50 from its own WAL
	 * first, then it joins at 100 */
	repl_join_plan("R", &fork, POS("H", 49), POS("Y", 999), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_CATCHUP);
	assert_int_equal(j.next, 100);
	repl_join_plan("R", &fork, POS("H", 1), POS("Y", 999), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_CATCHUP);
	/* ... beyond it: it undoes its own batches of H from 50 on (found through its WAL:
	 * undo_from 0 here), then joins at 100 */
	repl_join_plan("R", &fork, POS("H", 51), POS("Y", 999), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_REWIND);
	assert_int_equal(j.undo_from, 0);
	assert_int_equal(j.next, 100);
	/* a replica of H at sequence 0 (it never applied anything): a resync */
	repl_join_plan("R", &fork, POS("H", 0), POS("Y", 999), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
	/* another history, no fork record, an empty one, a brand-new replica */
	repl_join_plan("R", &fork, POS("Z", 50), POS("Z2", 50), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
	repl_join_plan("R", NULL, POS("H", 50), POS("H", 80), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
	struct kv_repl_fork empty = {"R", "", 0, 0};
	repl_join_plan("R", &empty, &none, POS("", 1), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
	repl_join_plan("R", &fork, &none, POS("N", 1), 0, &j);
	assert_int_equal(j.kind, REPL_JOIN_RESYNC);
#undef POS
}

static void add_key(void *arg, const char *key)
{
	char *buf = arg;
	strcat(buf, key);
	strcat(buf, ";");
}

/* Watch messages as the v3 gateway streams them (one per line), and hostile ones. */
static void test_decode_watch(void **state)
{
	static const struct {
		const char *js;
		int rc, created, canceled;
		const char *keys;
	} cases[] = {
		{"{\"result\":{\"header\":{\"revision\":\"1\"},\"created\":true}}", 0, 1, 0, ""},
		/* /strata/t/layout put, /strata/t/shards/0/leader deleted */
		{"{\"result\":{\"header\":{\"revision\":\"3\"},\"events\":[{\"kv\":{\"key\":"
		 "\"L3N0cmF0YS90L2xheW91dA==\",\"value\":\"eA==\"}},{\"type\":\"DELETE\",\"kv\":"
		 "{\"key\":\"L3N0cmF0YS90L3NoYXJkcy8wL2xlYWRlcg==\"}}]}}", 0, 0, 0,
		 "/strata/t/layout;/strata/t/shards/0/leader;"},
		{"{\"result\":{\"canceled\":true,\"cancel_reason\":\"compacted\"}}", 0, 0, 1, ""},
		{"{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}", ST_ECLOSED,
		 0, 0, ""},
		{"{\"nothing\":1}", ST_EPROTO, 0, 0, ""},
		{"{\"result\":{\"events\":{}}}", ST_EPROTO, 0, 0, ""},
		{"{\"result\":{\"events\":[{\"kv\":{}}]}}", ST_EPROTO, 0, 0, ""},
		{"{\"result\":{\"events\":[{\"kv\":{\"key\":\"***\"}}]}}", ST_EPROTO, 0, 0, ""},
		{"{\"result\":{\"events\":[{\"kv\":{\"key\":7}}]}}", ST_EPROTO, 0, 0, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o = json_loads(cases[i].js, 0, NULL);
		assert_non_null(o);
		char keys[256] = "";
		int created = -1, canceled = -1;
		struct st_error err = {0};
		int rc = repl_etcd_decode_watch(o, &created, &canceled, add_key, keys, &err);
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d (%s), want %d", i, rc, err.msg, cases[i].rc);
		if (!rc) {
			assert_int_equal(created, cases[i].created);
			assert_int_equal(canceled, cases[i].canceled);
			assert_string_equal(keys, cases[i].keys);
		}
		json_decref(o);
	}
}

static void test_url(void **state)
{
	struct repl_etcd *e;
	struct st_error err;
	assert_int_equal(repl_etcd_open("etcd://127.0.0.1:2379/strata/x/", 1000000, &e, &err), 0);
	assert_string_equal(repl_etcd_prefix(e), "/strata/x");
	repl_etcd_close(e);
	static const char *bad[] = {
		"http://127.0.0.1:2379/x", "etcd://127.0.0.1/x", "etcd://127.0.0.1:0/x",
		"etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/", "etcd://:2379/x",
		"etcd://h:23x9/x", "etcd://h:99999/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(repl_etcd_open(bad[i], 1000000, &e, &err), ST_EINVAL);
	/* nothing listens: a clear "unreachable", never a hang */
	assert_int_equal(repl_etcd_open("etcd://127.0.0.1:1/x", 300000, &e, &err), 0);
	struct repl_etcd_kvs k;
	assert_int_equal(repl_etcd_range(e, "/x/a", 0, &k, &err), ST_ECLOSED);
	assert_non_null(strstr(err.msg, "unreachable"));
	repl_etcd_close(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i64),
		cmocka_unit_test(test_decode_range),
		cmocka_unit_test(test_decode_hostile),
		cmocka_unit_test(test_decode_keepalive),
		cmocka_unit_test(test_elect_best),
		cmocka_unit_test(test_lease_deadline),
		cmocka_unit_test(test_layout_json),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_join_plan),
		cmocka_unit_test(test_decode_watch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
