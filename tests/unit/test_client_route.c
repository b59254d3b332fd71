/* libstrata cluster routing.
 *
 * As a cmocka program (no arguments): the layout a CLUSTER answer gives is checked (bad
 * layouts are refused with EPROTO, never routed with), the entity -> shard rule equals the
 * store's, and the grouping that splits a multi-get per node keeps every group in input
 * order and loses no item (randomised against a simple model). A single stratad answers
 * CLUSTER with a one-node layout and the client then uses it exactly as before.
 *
 * As a driver for tests/integ/repl_client.sh:
 *   --check CLUSTER_SEEDS REF_ADDR SEED   the same random writes through a routing client
 *        and to a single-node reference, then random multi-gets, batches and joins must
 *        answer identically, in input order
 *   --raw-get ADDR TABLE ENTITY MAX_LAG_MS   one GetReq to exactly that node (no routing);
 *        prints the result code ("ok" or the error) and the message
 *   --replica-get SEEDS TABLE ENTITY MAX_LAG_MS TIMEOUT_MS   a routed replica read; prints
 *        "ok VALUE" or the error
 *   --shard-of NSHARDS ENTITY   prints the entity's shard
 *   --soak SEEDS SECONDS   one long-lived client writes and reads back counters until the
 *        time is up (a layout change happens meanwhile); any failure exits 1
 *   --model SEEDS SEED [BACKUP_DIR]   random puts, deletes, multi-gets and pipelined batches
 *        (several multi-gets, puts and deletes in one batch) against a reference map of the
 *        latest value of every (entity, feature); with BACKUP_DIR (on the nodes' machine) every
 *        node writes a backup there every few rounds: its checkpoint flushes the memtables,
 *        as a replica's resync does on its primary, so that reads span memtables and SST files
 *   --join-load SEEDS   writes entities j0..j399 (x = 7 * i) for --join-soak
 *   --join-soak SEEDS SECONDS   one streaming join kept busy (pushes, reads) until the time
 *        is up while the layout changes under it; every row checked
 *   --partial SEEDS DOWN_SHARD NSHARDS TIMEOUT_MS   one batch while the primary of DOWN_SHARD
 *        is dead: operations that avoid the shard succeed, the one that needs it fails
 *        with STRATA_EUNAVAILABLE, all of them within one timeout (they wait at once);
 *        prints "partial ok" */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <xxhash.h>

#include "client/strata_impl.h"
#include "common/st_slot.h"
#include "tests/unit/test_srv_harness.h"

/* ---- layout parsing ---- */

struct pb_layout {
	Strata__ClusterLayout l;
	Strata__ClusterNode nodes[4], *np[4];
	Strata__ClusterShard shards[4], *sp[4];
	uint32_t reps[4][2];
};

static void pb_make(struct pb_layout *p)
{
	static const char *names[] = {"a", "b", "c", "d"};
	static const char *addrs[] = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "[::1]:4"};
	strata__cluster_layout__init(&p->l);
	p->l.version = 7;
	p->l.nshards = 4;
	p->l.slots = ST_SLOTS;
	p->l.slot_rule = "mod";
	p->l.has_clustered = p->l.clustered = 1;
	for (int i = 0; i < 4; i++) {
		strata__cluster_node__init(&p->nodes[i]);
		p->nodes[i].name = (char *)names[i];
		p->nodes[i].addr = (char *)addrs[i];
		p->np[i] = &p->nodes[i];
		strata__cluster_shard__init(&p->shards[i]);
		p->shards[i].shard = (uint32_t)i;
		p->shards[i].primary = (uint32_t)i;
		p->reps[i][0] = (uint32_t)(i + 1) % 4;
		p->reps[i][1] = (uint32_t)(i + 2) % 4;
		p->shards[i].replicas = p->reps[i];
		p->shards[i].n_replicas = 2;
		p->shards[i].has_version = 1;
		p->shards[i].version = 3 + (uint64_t)i;
		p->sp[i] = &p->shards[i];
	}
	p->shards[2].has_epoch = 1;
	p->shards[2].epoch = 9;
	p->l.n_nodes = 4;
	p->l.nodes = p->np;
	p->l.n_shards = 4;
	p->l.shards = p->sp;
}

static void test_layout_parse(void **state)
{
	(void)state;
	struct pb_layout p;
	struct sc_layout l;
	struct strata_error e = {0};
	pb_make(&p);
	assert_int_equal(sc_layout_from_pb(&p.l, &l, &e), 0);
	assert_int_equal(l.nshards, 4);
	assert_int_equal(l.nnodes, 4);
	assert_int_equal((int)l.version, 7);
	assert_true(l.clustered);
	assert_string_equal(l.nodes[3].addr, "[::1]:4");
	assert_int_equal(l.shards[1].primary, 1);
	assert_int_equal(l.shards[1].nreplicas, 2);
	assert_int_equal(l.shards[1].replicas[1], 3);
	assert_true(l.shards[2].has_epoch && l.shards[2].epoch == 9);
	assert_false(l.shards[1].has_epoch);
	sc_layout_release(&l);

	/* every malformed answer is refused, none half-parsed */
	for (int k = 0; k < 9; k++) {
		pb_make(&p);
		switch (k) {
		case 0: p.l.nshards = 0; p.l.n_shards = 0; break;
		case 1: p.l.slots = 1024; break;
		case 2: p.l.slot_rule = "range"; break;
		case 3: p.shards[1].primary = 4; break;
		case 4: p.reps[2][1] = 9; break;
		case 5: p.reps[0][0] = 0; break;           /* the primary as its own replica */
		case 6: p.nodes[2].addr = ""; break;      /* a clustered node without address */
		case 7: p.l.n_shards = 3; break;          /* fewer shards described than counted */
		case 8: p.shards[3].shard = 2; break;     /* shards out of order */
		}
		memset(&e, 0, sizeof(e));
		assert_int_equal(sc_layout_from_pb(&p.l, &l, &e), STRATA_EPROTO);
		assert_true(e.msg[0] != '\0');
		assert_null(l.shards);
	}
	/* a single node (no --cluster): no address needed */
	pb_make(&p);
	p.l.clustered = 0;
	p.l.n_nodes = 1;
	p.nodes[0].addr = "";
	for (int s = 0; s < 4; s++) {
		p.shards[s].primary = 0;
		p.shards[s].n_replicas = 0;
	}
	assert_int_equal(sc_layout_from_pb(&p.l, &l, &e), 0);
	assert_false(l.clustered);
	sc_layout_release(&l);
}

/* The client places entities exactly where the store does (kv_shard_of: xxh3 % 4096 %
 * nshards, written out here independently). */
static void test_shard_rule(void **state)
{
	(void)state;
	struct sc_layout l = {.nshards = 5};
	char e[32];
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(e, sizeof(e), "entity-%d", i * 7919);
		int want = (int)((XXH3_64bits(e, (size_t)n) % 4096) % 5);
		assert_int_equal(sc_layout_shard_of(&l, e, (size_t)n), want);
	}
}

/* Grouping: random keys (some left out) against a model that scans each key in order. */
static void test_group_random(void **state)
{
	(void)state;
	srand(12345);
	for (int round = 0; round < 500; round++) {
		size_t n = (size_t)(rand() % 200);
		int nkeys = 1 + rand() % SC_MAX_NODES;
		int key[200];
		size_t order[200], start[SC_MAX_NODES + 1];
		for (size_t i = 0; i < n; i++)
			key[i] = rand() % (nkeys + 1) - 1; /* -1: already answered */
		sc_group(key, n, nkeys, order, start);
		size_t pos = 0;
		for (int k = 0; k < nkeys; k++) {
			assert_int_equal(start[k], pos);
			for (size_t i = 0; i < n; i++)
				if (key[i] == k)
					assert_int_equal(order[pos++], i);
		}
		assert_int_equal(start[nkeys], pos);
	}
}

/* One stratad without --cluster: CLUSTER answers one node; reads and writes work as before. */
static void test_single_node(void **state)
{
	(void)state;
	struct srvh h;
	srvh_start(&h, "epoll", NULL);
	strata *c = srvh_client(&h, NULL);
	struct strata_error e = {0};
	char *json = NULL;
	assert_int_equal(strata_cluster_layout(c, &json, &e), 0);
	assert_non_null(strstr(json, "\"clustered\":false"));
	assert_non_null(strstr(json, h.addr));
	free(json);
	assert_null(c->cl);
	struct strata_feature_def f[] = {{"a", STRATA_I64, 0, 0, 0}};
	struct strata_table t = {.name = "t", .nfeatures = 1, .features = f};
	assert_int_equal(strata_table_create(c, &t, &e), 0);
	struct strata_cell cl = {"x", 1, "a", 1, {.type = STRATA_I64, .i64 = 5}};
	assert_int_equal(strata_put(c, "t", &cl, 1, &e), 0);
	const char *fa[] = {"a"};
	struct strata_result r;
	/* a bound on a single node always passes: it is every shard's primary */
	struct strata_read_opts o = {.as_of = STRATA_TS_MAX, .known_at = STRATA_TS_MAX,
				     .replica_ok = 1, .max_lag_ms = 1};
	assert_int_equal(strata_get(c, "t", "x", 1, fa, 1, &o, &r, &e), 0);
	assert_true(r.found && r.value.i64 == 5);
	strata_result_release(&r, 1);
	assert_null(c->cl);
	strata_close(c);
	srvh_stop(&h);
}

/* ---- driver modes for tests/integ/repl_client.sh ---- */

static int die(const char *what, const struct strata_error *e)
{
	fprintf(stderr, "%s: %s\n", what, e ? e->msg : "");
	exit(1);
}

static strata *conn(const char *addr, int timeout_ms)
{
	struct strata_connect_opts o;
	strata_connect_opts_init(&o);
	o.io_timeout_ms = timeout_ms;
	strata *c;
	struct strata_error e = {0};
	if (strata_connect(addr, &o, &c, &e))
		die(addr, &e);
	return c;
}

#define NFEAT 3
static const char *const feats[NFEAT] = {"x", "s", "v"};

static void mk_table(strata *c)
{
	struct strata_feature_def f[NFEAT] = {
		{"x", STRATA_I64, 0, 0, 0}, {"s", STRATA_STR, 0, 0, 0}, {"v", STRATA_F64, 0, 0, 0}};
	struct strata_table t = {.name = "rt", .nfeatures = NFEAT, .features = f};
	struct strata_error e = {0};
	if (strata_table_create(c, &t, &e))
		die("create", &e);
}

static int same(const struct strata_result *a, const struct strata_result *b)
{
	if (a->found != b->found || a->status != b->status)
		return 0;
	if (!a->found)
		return 1;
	if (a->ts != b->ts || a->value.type != b->value.type || a->value.len != b->value.len)
		return 0;
	switch (a->value.type) {
	case STRATA_I64: return a->value.i64 == b->value.i64;
	case STRATA_F64: return a->value.f64 == b->value.f64;
	case STRATA_STR: return !memcmp(a->value.ptr, b->value.ptr, a->value.len);
	default: return 0;
	}
}

/* Puts to both; the cluster may not know the table on every primary yet (the registry
 * reaches the nodes asynchronously): retried while it says "not found". */
static void put_both(strata *cl, strata *ref, const struct strata_cell *cells, size_t n)
{
	struct strata_error e = {0};
	int rc;
	for (int tries = 0; (rc = strata_put(cl, "rt", cells, n, &e)) == STRATA_ENOTFOUND &&
			    tries < 200; tries++)
		usleep(50000);
	if (rc)
		die("cluster put", &e);
	if (strata_put(ref, "rt", cells, n, &e))
		die("reference put", &e);
}

static int check_mode(const char *seeds, const char *refaddr, unsigned seed)
{
	strata *cl = conn(seeds, 10000), *ref = conn(refaddr, 10000);
	struct strata_error e = {0};
	srand(seed);
	mk_table(cl);
	mk_table(ref);
	enum { NE = 400 };
	char ents[NE][16];
	for (int i = 0; i < NE; i++)
		snprintf(ents[i], sizeof(ents[i]), "u%d", i);
	/* writes: batches of cells over many entities (so every put spans shards) */
	struct strata_cell cells[64];
	char sbuf[64][16];
	int64_t t0 = 1767225600000000LL; /* 2026-01-01 */
	for (int b = 0; b < 40; b++) {
		for (int k = 0; k < 64; k++) {
			int ei = rand() % NE, f = rand() % NFEAT;
			cells[k] = (struct strata_cell){ents[ei], strlen(ents[ei]), feats[f],
							t0 + (int64_t)(rand() % 1000) * 1000000, {0}};
			if (f == 0)
				cells[k].value = (struct strata_value){.type = STRATA_I64,
								       .i64 = rand()};
			else if (f == 2)
				cells[k].value = (struct strata_value){.type = STRATA_F64,
								       .f64 = rand() / 7.0};
			else {
				int n = snprintf(sbuf[k], sizeof(sbuf[k]), "s%d", rand() % 1000);
				cells[k].value = (struct strata_value){
					.type = STRATA_STR, .len = (uint32_t)n, .ptr = sbuf[k]};
			}
		}
		put_both(cl, ref, cells, 64);
	}
	/* multi-gets: random entities (and some never written) in random order */
	const char *q[120];
	size_t ql[120];
	char extra[120][16];
	struct strata_result ra[120 * NFEAT], rb[120 * NFEAT];
	size_t checked = 0;
	for (int round = 0; round < 60; round++) {
		size_t n = 1 + (size_t)(rand() % 120);
		for (size_t i = 0; i < n; i++) {
			if (rand() % 10 == 0) {
				snprintf(extra[i], sizeof(extra[i]), "none%d", rand());
				q[i] = extra[i];
			} else {
				q[i] = ents[rand() % NE];
			}
			ql[i] = strlen(q[i]);
		}
		struct strata_read_opts o = {.as_of = rand() % 3 ? STRATA_TS_MAX
								  : t0 + (int64_t)(rand() % 1000) * 1000000,
					     .known_at = STRATA_TS_MAX};
		if (strata_multiget(cl, "rt", q, ql, n, feats, NFEAT, &o, ra, &e))
			die("cluster multiget", &e);
		if (strata_multiget(ref, "rt", q, ql, n, feats, NFEAT, &o, rb, &e))
			die("reference multiget", &e);
		for (size_t i = 0; i < n * NFEAT; i++)
			if (!same(&ra[i], &rb[i])) {
				fprintf(stderr, "multiget round %d: entity %s feature %s differs\n",
					round, q[i / NFEAT], feats[i % NFEAT]);
				return 1;
			}
		checked += n;
		strata_result_release(ra, n * NFEAT);
		strata_result_release(rb, n * NFEAT);
	}
	/* a batch over the cluster: several multi-gets and a put, each with its own status */
	strata_batch *bc = strata_batch_new(cl), *br = strata_batch_new(ref);
	for (int k = 0; k < 5; k++) {
		size_t n = 1 + (size_t)(rand() % 40);
		for (size_t i = 0; i < n; i++) {
			q[i] = ents[rand() % NE];
			ql[i] = strlen(q[i]);
		}
		strata_batch_multiget(bc, "rt", q, ql, n, feats, NFEAT, NULL);
		strata_batch_multiget(br, "rt", q, ql, n, feats, NFEAT, NULL);
	}
	if (strata_batch_exec(bc, &e) || strata_batch_exec(br, &e))
		die("batch", &e);
	for (size_t k = 0; k < strata_batch_count(bc); k++) {
		size_t na, nb;
		if (strata_batch_status(bc, k, &e))
			die("cluster batch op", &e);
		const struct strata_result *xa = strata_batch_results(bc, k, &na);
		const struct strata_result *xb = strata_batch_results(br, k, &nb);
		if (na != nb)
			return fprintf(stderr, "batch %zu: %zu vs %zu results\n", k, na, nb), 1;
		for (size_t i = 0; i < na; i++)
			if (!same(&xa[i], &xb[i]))
				return fprintf(stderr, "batch %zu result %zu differs\n", k, i), 1;
	}
	strata_batch_free(bc);
	strata_batch_free(br);
	/* joins: random samples, small chunks so every node has several in flight */
	strata_join *ja, *jb;
	if (strata_join_open(cl, "rt", feats, NFEAT, STRATA_TS_MAX, 64, &ja, &e) ||
	    strata_join_open(ref, "rt", feats, NFEAT, STRATA_TS_MAX, 64, &jb, &e))
		die("join open", &e);
	size_t rows = 0;
	for (int i = 0; i < 3000; i++) {
		const char *en = ents[rand() % NE];
		int64_t ts = t0 + (int64_t)(rand() % 1100) * 1000000;
		int pa = strata_join_push(ja, en, strlen(en), ts, &e);
		if (pa < 0 || strata_join_push(jb, en, strlen(en), ts, &e) < 0)
			die("join push", &e);
	}
	const struct strata_result *a, *b;
	int ga, gb;
	while ((ga = strata_join_next(ja, &a, &e)) == 1) {
		if ((gb = strata_join_next(jb, &b, &e)) != 1)
			die("reference join ended early", &e);
		for (int f = 0; f < NFEAT; f++)
			if (!same(&a[f], &b[f]))
				return fprintf(stderr, "join row %zu feature %s differs\n", rows,
					       feats[f]), 1;
		rows++;
	}
	if (ga < 0)
		die("cluster join", &e);
	if (rows != 3000)
		return fprintf(stderr, "join returned %zu rows of 3000\n", rows), 1;
	strata_join_close(ja);
	strata_join_close(jb);
	printf("identical: %zu multi-get entities, 5 batch multi-gets, %zu join rows\n", checked,
	       rows);
	strata_close(cl);
	strata_close(ref);
	return 0;
}

static int raw_get_mode(const char *addr, const char *table, const char *entity, long lag)
{
	strata *h;
	struct strata_error e = {0};
	if (sc_handle_new(addr, NULL, &h, &e) || sc_ensure(h, &e))
		die(addr, &e);
	h->cl_known = 1; /* exactly this node */
	const char *f[] = {"x"};
	size_t len = strlen(entity);
	struct strata_read_opts o = {.as_of = STRATA_TS_MAX, .known_at = STRATA_TS_MAX,
				     .replica_ok = 1, .max_lag_ms = (uint32_t)lag};
	struct strata_result r;
	int rc = strata_multiget(h, table, &entity, &len, 1, f, 1, &o, &r, &e);
	if (rc)
		printf("%s: %s\n", rc == STRATA_ESTALE ? "stale" : strata_strerror(rc), e.msg);
	else
		printf("ok %lld\n", r.found ? (long long)r.value.i64 : -1LL), strata_result_release(&r, 1);
	strata_close(h);
	return 0;
}

static int replica_get_mode(const char *seeds, const char *table, const char *entity, long lag,
			    int timeout_ms)
{
	strata *c = conn(seeds, timeout_ms);
	struct strata_error e = {0};
	const char *f[] = {"x"};
	struct strata_read_opts o = {.as_of = STRATA_TS_MAX, .known_at = STRATA_TS_MAX,
				     .replica_ok = 1, .max_lag_ms = (uint32_t)lag};
	struct strata_result r;
	int64_t t0 = srvh_ms();
	int rc = strata_get(c, table, entity, strlen(entity), f, 1, &o, &r, &e);
	int64_t took = srvh_ms() - t0;
	if (rc)
		printf("%s after %lld ms: %s\n", strata_strerror(rc), (long long)took, e.msg);
	else
		printf("ok %lld\n", r.found ? (long long)r.value.i64 : -1LL), strata_result_release(&r, 1);
	strata_close(c);
	return took > timeout_ms + 2000; /* never past the call's timeout (plus slack) */
}

static int soak_mode(const char *seeds, int seconds)
{
	strata *c = conn(seeds, 20000);
	struct strata_error e = {0};
	enum { NE = 64 };
	int64_t counter[NE] = {0};
	char en[NE][16];
	const char *f[] = {"x"};
	for (int i = 0; i < NE; i++)
		snprintf(en[i], sizeof(en[i]), "k%d", i);
	int64_t end = srvh_ms() + seconds * 1000LL, ops = 0;
	int64_t ts = 1767225600000000LL;
	while (srvh_ms() < end) {
		struct strata_cell cells[NE];
		for (int i = 0; i < NE; i++) {
			counter[i]++;
			cells[i] = (struct strata_cell){en[i], strlen(en[i]), "x", ts + ops,
							{.type = STRATA_I64, .i64 = counter[i]}};
		}
		if (strata_put(c, "rt", cells, NE, &e))
			die("soak put", &e);
		const char *q[NE];
		size_t ql[NE];
		struct strata_result r[NE];
		for (int i = 0; i < NE; i++)
			q[i] = en[NE - 1 - i], ql[i] = strlen(q[i]);
		if (strata_multiget(c, "rt", q, ql, NE, f, 1, NULL, r, &e))
			die("soak multiget", &e);
		for (int i = 0; i < NE; i++)
			if (!r[i].found || r[i].value.i64 != counter[NE - 1 - i]) {
				fprintf(stderr, "soak: %s = %lld, expected %lld\n", q[i],
					r[i].found ? (long long)r[i].value.i64 : -1LL,
					(long long)counter[NE - 1 - i]);
				return 1;
			}
		strata_result_release(r, NE);
		ops++;
	}
	printf("soak: %lld rounds of %d puts + a %d-entity multi-get, all answered\n",
	       (long long)ops, NE, NE);
	strata_close(c);
	return 0;
}

/* ---- the model test ---- */

enum { MNE = 300, MNF = 2 };
static const char *const mfeats[MNF] = {"x", "s"};

struct mcell {
	int set;       /* 0: never written or deleted last */
	int64_t ts, x;
	char s[16];
};

struct mrun {
	strata *c;
	char ents[MNE][16];
	struct mcell m[MNE][MNF];
	int64_t ts;
	char sbuf[256][16];
	struct strata_cell cells[256];
};

/* Adds n random cells over entities chosen by pick (< MNE, or -1 = any) to r->cells. */
static size_t m_cells(struct mrun *r, size_t n, const uint8_t *allowed)
{
	for (size_t k = 0; k < n; k++) {
		int ei;
		do
			ei = rand() % MNE;
		while (allowed && !allowed[ei]);
		int f = rand() % MNF;
		struct strata_cell *c = &r->cells[k];
		*c = (struct strata_cell){r->ents[ei], strlen(r->ents[ei]), mfeats[f], ++r->ts, {0}};
		if (f == 0) {
			c->value = (struct strata_value){.type = STRATA_I64, .i64 = rand()};
		} else {
			int len = snprintf(r->sbuf[k], sizeof(r->sbuf[k]), "v%d", rand() % 100000);
			c->value = (struct strata_value){.type = STRATA_STR, .len = (uint32_t)len,
							 .ptr = r->sbuf[k]};
		}
	}
	return n;
}

static int m_index(const struct mrun *r, const char *e)
{
	return atoi(e + 1);
}

static void m_apply(struct mrun *r, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct strata_cell *c = &r->cells[k];
		struct mcell *m = &r->m[m_index(r, c->entity)][c->feature[0] == 's'];
		m->set = 1;
		m->ts = c->ts;
		if (c->value.type == STRATA_I64)
			m->x = c->value.i64;
		else
			snprintf(m->s, sizeof(m->s), "%.*s", (int)c->value.len, (const char *)c->value.ptr);
	}
}

static int m_check(const struct mrun *r, const char *const *q, size_t n,
		   const struct strata_result *res, const char *what)
{
	for (size_t i = 0; i < n; i++)
		for (int f = 0; f < MNF; f++) {
			const struct strata_result *x = &res[i * MNF + f];
			int ei = q[i][0] == 'm' ? m_index(r, q[i]) : -1;
			const struct mcell *m = ei >= 0 ? &r->m[ei][f] : NULL;
			int ok = m && m->set ? x->found && x->ts == m->ts &&
						       (f == 0 ? x->value.i64 == m->x
							       : x->value.len == strlen(m->s) &&
									 !memcmp(x->value.ptr, m->s,
										 x->value.len))
					     : !x->found;
			if (!ok) {
				fprintf(stderr, "%s: item %zu (%s) feature %s: found %d ts %lld, model "
					"set %d ts %lld\n", what, i, q[i], mfeats[f], x->found,
					(long long)x->ts, m ? m->set : 0, m ? (long long)m->ts : 0LL);
				return 1;
			}
		}
	return 0;
}

/* n random entity names (some unknown, repeats allowed) chosen among allowed (NULL: all). */
static void m_query(struct mrun *r, const char **q, size_t *ql, size_t n, char (*extra)[16],
		    const uint8_t *allowed)
{
	for (size_t i = 0; i < n; i++) {
		int ei = -1;
		if (rand() % 12) {
			do
				ei = rand() % MNE;
			while (allowed && !allowed[ei]);
		}
		if (ei < 0) {
			snprintf(extra[i], sizeof(extra[i]), "none%d", rand());
			q[i] = extra[i];
		} else {
			q[i] = r->ents[ei];
		}
		ql[i] = strlen(q[i]);
	}
}

static int m_key_cmp(const void *a, const void *b)
{
	/* a key holds the entity's length before its bytes */
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static void m_key_order(const char **q, size_t *ql, size_t n)
{
	qsort(q, n, sizeof(*q), m_key_cmp);
	for (size_t i = 0; i < n; i++)
		ql[i] = strlen(q[i]);
}

static void m_table(strata *c)
{
	struct strata_feature_def f[MNF] = {{"x", STRATA_I64, 0, 0, 0}, {"s", STRATA_STR, 0, 0, 0}};
	struct strata_table t = {.name = "mt", .nfeatures = MNF, .features = f};
	struct strata_error e = {0};
	if (strata_table_create(c, &t, &e))
		die("create", &e);
	/* the registry reaches every primary asynchronously: wait until a put spanning all
	 * shards is accepted */
	struct strata_cell cl[64];
	char en[64][16];
	for (int i = 0; i < 64; i++) {
		snprintf(en[i], sizeof(en[i]), "warm%d", i);
		cl[i] = (struct strata_cell){en[i], strlen(en[i]), "x", 1, {.type = STRATA_I64}};
	}
	int rc;
	for (int tries = 0; (rc = strata_put(c, "mt", cl, 64, &e)) == STRATA_ENOTFOUND &&
			    tries < 200; tries++)
		usleep(50000);
	if (rc)
		die("warm-up put", &e);
}

/* Every node of the layout writes a backup into dir (a checkpoint: flushes its memtables). */
static void m_flush_all(strata *c, const char *dir, int round)
{
	struct strata_error e = {0};
	char *js;
	if (strata_cluster_layout(c, &js, &e))
		die("layout", &e);
	json_t *l = json_loads(js, 0, NULL), *n;
	size_t i;
	free(js);
	json_array_foreach(json_object_get(l, "nodes"), i, n) {
		const char *addr = json_string_value(json_object_get(n, "addr"));
		char path[512], *rep;
		snprintf(path, sizeof(path), "%s/r%d-%zu", dir, round, i);
		strata *h;
		if (!addr || sc_handle_new(addr, NULL, &h, &e))
			die("backup: node address", &e);
		h->cl_known = 1; /* exactly this node */
		if (strata_admin(h, "backup", path, &rep, &e))
			die("backup", &e);
		free(rep);
		strata_close(h);
	}
	json_decref(l);
}

static int model_mode(const char *seeds, unsigned seed, const char *backup_dir)
{
	static struct mrun r;
	struct strata_error e = {0};
	r.c = conn(seeds, 10000);
	r.ts = 1767225600000000LL;
	srand(seed);
	for (int i = 0; i < MNE; i++)
		snprintf(r.ents[i], sizeof(r.ents[i]), "m%d", i);
	m_table(r.c);
	static const char *q[8][160];
	static size_t ql[8][160];
	static char extra[8][160][16];
	static struct strata_result res[160 * MNF];
	size_t mgets = 0, bops = 0;
	for (int round = 0; round < 40; round++) {
		if (backup_dir && round % 4 == 2)
			m_flush_all(r.c, backup_dir, round);
		/* a put spanning shards, now and then a delete */
		size_t n = m_cells(&r, 1 + (size_t)(rand() % 200), NULL);
		if (strata_put(r.c, "mt", r.cells, n, &e))
			die("put", &e);
		m_apply(&r, n);
		if (rand() % 3 == 0) {
			int ei = rand() % MNE;
			int64_t ts = ++r.ts;
			if (strata_delete(r.c, "mt", r.ents[ei], strlen(r.ents[ei]), NULL, 0, ts, &e))
				die("delete", &e);
			for (int f = 0; f < MNF; f++)
				r.m[ei][f].set = 0;
		}
		/* multi-gets in random order, repeats and unknown entities included; the last in
		 * the store's key order (each entity a neighbour of the one before) */
		for (int g = 0; g < 3; g++) {
			size_t k = 1 + (size_t)(rand() % 160);
			m_query(&r, q[0], ql[0], k, extra[0], NULL);
			if (g == 2)
				m_key_order(q[0], ql[0], k);
			if (strata_multiget(r.c, "mt", q[0], ql[0], k, mfeats, MNF, NULL, res, &e))
				die("multiget", &e);
			if (m_check(&r, q[0], k, res, "multiget"))
				return 1;
			strata_result_release(res, k * MNF);
			mgets += k;
		}
		/* a pipelined batch: multi-gets over one half of the entities, puts and a delete
		 * over the other (so the outcome does not depend on the order the nodes run them) */
		uint8_t readable[MNE], writable[MNE];
		for (int i = 0; i < MNE; i++)
			writable[i] = !(readable[i] = rand() % 2);
		strata_batch *b = strata_batch_new(r.c);
		size_t nget = 1 + (size_t)(rand() % 8), kk[8], np = 0;
		int del = -1;
		for (size_t g = 0; g < nget; g++) {
			kk[g] = 1 + (size_t)(rand() % 160);
			m_query(&r, q[g], ql[g], kk[g], extra[g], readable);
			if (strata_batch_multiget(b, "mt", q[g], ql[g], kk[g], mfeats, MNF, NULL) < 0)
				die("batch multiget", NULL);
			if (g == 0) { /* puts and a delete in the middle of the reads */
				np = m_cells(&r, 1 + (size_t)(rand() % 120), writable);
				if (strata_batch_put(b, "mt", r.cells, np) < 0)
					die("batch put", NULL);
				do
					del = rand() % MNE;
				while (!writable[del]);
				if (strata_batch_delete(b, "mt", r.ents[del], strlen(r.ents[del]), NULL,
							0, ++r.ts) < 0)
					die("batch delete", NULL);
			}
		}
		if (strata_batch_exec(b, &e))
			die("batch exec", &e);
		for (size_t i = 0; i < strata_batch_count(b); i++)
			if (strata_batch_status(b, i, &e))
				die("batch operation", &e);
		for (size_t g = 0, op = 0; g < nget; g++, op += g == 1 ? 3 : 1) {
			size_t nr;
			const struct strata_result *x = strata_batch_results(b, op, &nr);
			if (nr != kk[g] * MNF)
				return fprintf(stderr, "batch get %zu: %zu results\n", g, nr), 1;
			if (m_check(&r, q[g], kk[g], x, "batch multiget"))
				return 1;
		}
		m_apply(&r, np);
		/* the delete's tombstone is newer than every cell the batch wrote */
		for (int f = 0; f < MNF; f++)
			r.m[del][f].set = 0;
		bops += strata_batch_count(b);
		strata_batch_free(b);
	}
	/* every entity once, in a random order, against the final model */
	size_t k = 0;
	for (int i = 0; i < 160; i++)
		q[0][k] = r.ents[rand() % MNE], ql[0][k] = strlen(q[0][k]), k++;
	if (strata_multiget(r.c, "mt", q[0], ql[0], k, mfeats, MNF, NULL, res, &e))
		die("final multiget", &e);
	if (m_check(&r, q[0], k, res, "final multiget"))
		return 1;
	strata_result_release(res, k * MNF);
	printf("model: %zu multi-get entities and %zu batch operations equal the reference map\n",
	       mgets, bops);
	strata_close(r.c);
	return 0;
}

/* ---- a join across layout changes ---- */

enum { JNE = 400 };

static int join_load_mode(const char *seeds)
{
	strata *c = conn(seeds, 10000);
	struct strata_error e = {0};
	struct strata_feature_def f[] = {{"x", STRATA_I64, 0, 0, 0}};
	struct strata_table t = {.name = "jt", .nfeatures = 1, .features = f};
	if (strata_table_create(c, &t, &e))
		die("create", &e);
	static char en[JNE][16];
	static struct strata_cell cl[JNE];
	for (int i = 0; i < JNE; i++) {
		snprintf(en[i], sizeof(en[i]), "j%d", i);
		cl[i] = (struct strata_cell){en[i], strlen(en[i]), "x", 1767225600000000LL,
					     {.type = STRATA_I64, .i64 = 7 * i}};
	}
	int rc;
	for (int tries = 0; (rc = strata_put(c, "jt", cl, JNE, &e)) == STRATA_ENOTFOUND &&
			    tries < 200; tries++)
		usleep(50000);
	if (rc)
		die("put", &e);
	strata_close(c);
	return 0;
}

static int join_soak_mode(const char *seeds, int seconds)
{
	strata *c = conn(seeds, 20000);
	struct strata_error e = {0};
	const char *f[] = {"x"};
	strata_join *j;
	if (strata_join_open(c, "jt", f, 1, STRATA_TS_MAX, 16, &j, &e))
		die("join open", &e);
	/* the expected x of each pushed row not yet read: -1 = an unknown entity */
	size_t cap = 1 << 16, head = 0, n = 0, rows = 0;
	int *want = malloc(cap * sizeof(*want));
	int64_t end = srvh_ms() + seconds * 1000LL;
	char buf[32];
	srand(4242);
	while (srvh_ms() < end || n) {
		int push = srvh_ms() < end ? 1 + rand() % 100 : 0;
		for (int k = 0; k < push && n < cap; k++) {
			int i = rand() % (JNE + 20);
			int len = i < JNE ? snprintf(buf, sizeof(buf), "j%d", i)
					  : snprintf(buf, sizeof(buf), "nope%d", i);
			if (strata_join_push(j, buf, (size_t)len, 1767225600000000LL + 1000, &e) < 0)
				die("join push", &e);
			want[(head + n++) % cap] = i < JNE ? 7 * i : -1;
		}
		int pull = push ? rand() % 100 : (int)n;
		const struct strata_result *row;
		for (int k = 0; k < pull && n; k++) {
			int rc = strata_join_next(j, &row, &e);
			if (rc != 1)
				die("join next", rc < 0 ? &e : NULL);
			int w = want[head];
			if (w < 0 ? row->found : !row->found || row->value.i64 != w) {
				fprintf(stderr, "join row %zu: found %d value %lld, expected %d\n", rows,
					row->found, (long long)row->value.i64, w);
				return 1;
			}
			head = (head + 1) % cap;
			n--;
			rows++;
		}
	}
	const struct strata_result *row;
	if (strata_join_next(j, &row, &e) != 0)
		die("join: rows beyond those pushed", &e);
	strata_join_close(j);
	free(want);
	printf("join: %zu rows in push order across the layout changes\n", rows);
	strata_close(c);
	return 0;
}

/* One batch while the primary of shard `down` is dead. */
static int partial_mode(const char *seeds, int down, int nshards, int timeout_ms)
{
	strata *c = conn(seeds, timeout_ms);
	struct strata_error e = {0};
	struct sc_layout l = {.nshards = nshards};
	static char in[64][16], out[64][16];
	const char *qi[64], *qo[64];
	size_t li[64], lo[64], ni = 0, no = 0;
	for (int i = 0; i < JNE && (ni < 64 || no < 64); i++) {
		char en[16];
		int len = snprintf(en, sizeof(en), "j%d", i);
		if (sc_layout_shard_of(&l, en, (size_t)len) == down && ni < 64)
			strcpy(in[ni], en), qi[ni] = in[ni], li[ni] = (size_t)len, ni++;
		else if (sc_layout_shard_of(&l, en, (size_t)len) != down && no < 64)
			strcpy(out[no], en), qo[no] = out[no], lo[no] = (size_t)len, no++;
	}
	const char *f[] = {"x"};
	const char *mix[2] = {qo[0], qi[0]};
	size_t lmix[2] = {lo[0], li[0]};
	struct strata_cell cl = {qo[1], lo[1], "x", 1767225600000000LL, {.type = STRATA_I64,
									 .i64 = 7 * atoi(qo[1] + 1)}};
	strata_batch *b = strata_batch_new(c);
	strata_batch_multiget(b, "jt", qo, lo, no, f, 1, NULL);  /* other shards only */
	strata_batch_multiget(b, "jt", mix, lmix, 2, f, 1, NULL); /* needs the dead node */
	strata_batch_put(b, "jt", &cl, 1);                         /* other shards only */
	/* two more that need it: all wait at once, so the batch ends within one timeout */
	strata_batch_multiget(b, "jt", qi, li, ni, f, 1, NULL);
	strata_batch_get(b, "jt", qi[1], li[1], f, 1, NULL);
	int64_t t0 = srvh_ms();
	int rc = strata_batch_exec(b, &e);
	int64_t took = srvh_ms() - t0;
	if (rc)
		die("batch exec", &e);
	if (strata_batch_status(b, 0, &e))
		die("the multi-get avoiding the dead node", &e);
	size_t nr;
	const struct strata_result *x = strata_batch_results(b, 0, &nr);
	for (size_t i = 0; i < no; i++)
		if (!x[i].found || x[i].value.i64 != 7 * atoi(qo[i] + 1))
			return fprintf(stderr, "partial: %s wrong\n", qo[i]), 1;
	if (strata_batch_status(b, 2, &e))
		die("the put avoiding the dead node", &e);
	rc = strata_batch_status(b, 1, &e);
	if (rc != STRATA_EUNAVAILABLE)
		return fprintf(stderr, "the multi-get needing the dead node: %d %s\n", rc, e.msg), 1;
	if (strata_batch_results(b, 1, &nr) || nr)
		return fprintf(stderr, "a failed multi-get kept results\n"), 1;
	for (size_t i = 3; i < 5; i++)
		if (strata_batch_status(b, i, NULL) != STRATA_EUNAVAILABLE)
			return fprintf(stderr, "operation %zu did not fail\n", i), 1;
	if (took > timeout_ms + 1000)
		return fprintf(stderr, "the batch took %lld ms\n", (long long)took), 1;
	printf("partial ok: %s\n", e.msg);
	strata_batch_free(b);
	strata_close(c);
	return 0;
}

/* ---- a client through a failover: every call returns within its timeout ----
 * One libstrata handle with io_timeout_ms = timeout: puts of new entities and gets of
 * acknowledged ones until `seconds` pass (or the file `stop` exists). A call that takes
 * longer than its timeout plus 1 s (one connect after the deadline check) fails the run, so
 * does a write error other than STRATA_EUNAVAILABLE (the documented answer when a write's
 * outcome is unknown or no node of its shard answered in time) and a read answering a value
 * other than the acknowledged one. Acknowledged writes go to `acked` ("key value" lines). */
static int failover_mode(const char *seeds, int timeout, int seconds, const char *acked,
			 const char *stop)
{
	strata *c = conn(seeds, timeout);
	FILE *out = fopen(acked, "w");
	if (!out)
		return 1;
	enum { MAXK = 100000 };
	static int64_t okv[MAXK];
	int nok = 0, bad = 0;
	long puts = 0, gets = 0, put_unavail = 0, get_err = 0;
	int64_t worst = 0, end = srvh_ms() + seconds * 1000LL, ts = 1767225600000000LL;
	const char *f[] = {"x"};
	for (long i = 0; srvh_ms() < end && access(stop, F_OK) != 0 && nok < MAXK; i++) {
		char en[32];
		struct strata_error e = {0};
		int64_t t0 = srvh_ms();
		int rc;
		if (i % 2 == 0 || nok == 0) {
			snprintf(en, sizeof(en), "fo%ld", i);
			struct strata_cell cell = {en, strlen(en), "x", ts + i,
						   {.type = STRATA_I64, .i64 = i}};
			rc = strata_put(c, "rt", &cell, 1, &e);
			puts++;
			if (!rc) {
				okv[nok++] = i;
				fprintf(out, "%s %ld\n", en, i);
				fflush(out);
			} else if (rc == STRATA_EUNAVAILABLE) {
				put_unavail++;
			} else {
				fprintf(stderr, "put %s: %s (%d), not EUNAVAILABLE\n", en, e.msg, rc);
				bad = 1;
			}
		} else {
			int64_t k = okv[rand() % nok];
			snprintf(en, sizeof(en), "fo%lld", (long long)k);
			struct strata_result r;
			rc = strata_get(c, "rt", en, strlen(en), f, 1, NULL, &r, &e);
			gets++;
			if (rc) {
				get_err++;
			} else {
				if (!r.found || r.value.i64 != k) {
					fprintf(stderr, "get %s: %s %lld, acknowledged %lld\n", en,
						r.found ? "found" : "not found",
						(long long)r.value.i64, (long long)k);
					bad = 1;
				}
				strata_result_release(&r, 1);
			}
		}
		int64_t took = srvh_ms() - t0;
		if (took > worst)
			worst = took;
		if (took > timeout + 1000) {
			fprintf(stderr, "call %ld (%s) took %lld ms, timeout %d ms\n", i,
				i % 2 == 0 ? "put" : "get", (long long)took, timeout);
			bad = 1;
		}
	}
	printf("failover client: %ld puts (%ld EUNAVAILABLE), %ld gets (%ld errors), slowest call "
	       "%lld ms (timeout %d ms)\n", puts, put_unavail, gets, get_err, (long long)worst,
	       timeout);
	fclose(out);
	strata_close(c);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--check"))
		return check_mode(argv[2], argv[3], (unsigned)atoi(argv[4]));
	if (argc == 6 && !strcmp(argv[1], "--raw-get"))
		return raw_get_mode(argv[2], argv[3], argv[4], atol(argv[5]));
	if (argc == 7 && !strcmp(argv[1], "--replica-get"))
		return replica_get_mode(argv[2], argv[3], argv[4], atol(argv[5]), atoi(argv[6]));
	if (argc == 4 && !strcmp(argv[1], "--shard-of")) {
		struct sc_layout l = {.nshards = atoi(argv[2])};
		printf("%d\n", sc_layout_shard_of(&l, argv[3], strlen(argv[3])));
		return 0;
	}
	if (argc == 7 && !strcmp(argv[1], "--failover"))
		return failover_mode(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5], argv[6]);
	if (argc == 4 && !strcmp(argv[1], "--soak"))
		return soak_mode(argv[2], atoi(argv[3]));
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "--model"))
		return model_mode(argv[2], (unsigned)atoi(argv[3]), argc == 5 ? argv[4] : NULL);
	if (argc == 3 && !strcmp(argv[1], "--join-load"))
		return join_load_mode(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "--join-soak"))
		return join_soak_mode(argv[2], atoi(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "--partial"))
		return partial_mode(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_parse),
		cmocka_unit_test(test_shard_rule),
		cmocka_unit_test(test_group_random),
		cmocka_unit_test(test_single_node),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
