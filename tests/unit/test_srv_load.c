/* Load behaviour of a real stratad on both io backends: hundreds of pipelined requests in
 * flight on one connection (more than --max-inflight, so reading pauses and resumes), 1000
 * concurrent connections, and a versioned sample join of 1M rows streamed in chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/resource.h>

#include "tests/unit/test_srv_harness.h"

static const char *cur_io;
static const char *const load_args[] = {"--max-inflight", "64", NULL};

#define T0 1767225600000000LL
#define DAY 86400000000LL
#define NENT 10000
#define NVER 4

static int setup(void **state)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct srvh *h = calloc(1, sizeof(*h));
	srvh_start(h, cur_io, load_args);
	strata *c = srvh_client(h, NULL);
	struct strata_feature_def f[] = {{"a", STRATA_I64, 0, 0, 0}, {"b", STRATA_F64, 0, 0, 0}};
	struct strata_table t = {.name = "lt", .nfeatures = 2, .features = f};
	struct strata_error e = {0};
	if (strata_table_create(c, &t, &e))
		fail_msg("create: %s", e.msg);
	/* NENT entities x NVER versions of a and b, as one pipelined batch. */
	strata_batch *b = strata_batch_new(c);
	char ent[16];
	for (int k = 0; k < NENT; k++) {
		snprintf(ent, sizeof(ent), "e%d", k);
		struct strata_cell cl[2 * NVER];
		for (int v = 0; v < NVER; v++) {
			cl[2 * v] = (struct strata_cell){ent, strlen(ent), "a", T0 + v * DAY,
							 {.type = STRATA_I64, .i64 = k * 10 + v}};
			cl[2 * v + 1] = (struct strata_cell){ent, strlen(ent), "b", T0 + v * DAY,
							     {.type = STRATA_F64, .f64 = k + v / 10.0}};
		}
		if (strata_batch_put(b, "lt", cl, 2 * NVER) < 0)
			fail_msg("batch add");
	}
	if (strata_batch_exec(b, &e))
		fail_msg("load: %s", e.msg);
	for (size_t i = 0; i < strata_batch_count(b); i++)
		if (strata_batch_status(b, i, &e))
			fail_msg("load op %zu: %s", i, e.msg);
	strata_batch_free(b);
	strata_close(c);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	srvh_stop(*state);
	free(*state);
	return 0;
}

static void test_pipeline(void **state)
{
	struct srvh *h = *state;
	int fd = srvh_raw(h);
	enum { N = 800 };
	/* All N frames in one write: the server sees hundreds of requests at once. */
	uint8_t *all = NULL;
	size_t len = 0;
	char ents[N][16];
	ProtobufCBinaryData ent[N];
	char *feats[] = {"a"};
	for (int i = 0; i < N; i++) {
		snprintf(ents[i], sizeof(ents[i]), "e%d", (i * 37) % NENT);
		ent[i].data = (uint8_t *)ents[i];
		ent[i].len = strlen(ents[i]);
		Strata__GetReq g = STRATA__GET_REQ__INIT;
		g.table = "lt";
		g.n_entities = 1;
		g.entities = &ent[i];
		g.n_features = 1;
		g.features = feats;
		Strata__Request req = STRATA__REQUEST__INIT;
		req.id = 1000 + (uint64_t)i;
		req.op_case = STRATA__REQUEST__OP_GET;
		req.get = &g;
		uint8_t *f;
		size_t n = srvh_frame(&req, &f);
		all = realloc(all, len + n);
		memcpy(all + len, f, n);
		len += n;
		free(f);
	}
	assert_int_equal(srvh_write_all(fd, all, len), 0);
	free(all);
	static char seen[N];
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < N; i++) {
		Strata__Response *r = srvh_read_resp(fd, 10000, NULL);
		assert_non_null(r);
		assert_true(r->id >= 1000 && r->id < 1000 + N);
		int k = (int)(r->id - 1000);
		assert_false(seen[k]);
		seen[k] = 1;
		assert_false(r->has_code && r->code);
		assert_int_equal(r->results->n_results, 1);
		int e = (k * 37) % NENT;
		assert_int_equal(r->results->results[0]->value->i64, e * 10 + NVER - 1);
		strata__response__free_unpacked(r, NULL);
	}
	close(fd);

	/* The same through the libstrata batch API, with writes mixed in. */
	strata *c = srvh_client(h, NULL);
	strata_batch *b = strata_batch_new(c);
	struct strata_error err = {0};
	const char *fa[] = {"a"};
	for (int i = 0; i < 600; i++) {
		char e[16];
		snprintf(e, sizeof(e), "p%d", i);
		if (i % 3 == 0) {
			struct strata_cell cl = {e, strlen(e), "a", T0, {.type = STRATA_I64, .i64 = i}};
			strata_batch_put(b, "lt", &cl, 1);
		} else {
			snprintf(e, sizeof(e), "e%d", i);
			strata_batch_get(b, "lt", e, strlen(e), fa, 1, NULL);
		}
	}
	assert_int_equal(strata_batch_exec(b, &err), 0);
	for (int i = 0; i < 600; i++) {
		assert_int_equal(strata_batch_status(b, (size_t)i, &err), 0);
		if (i % 3) {
			size_t n;
			const struct strata_result *r = strata_batch_results(b, (size_t)i, &n);
			assert_true(n == 1 && r[0].found && r[0].value.i64 == i * 10 + NVER - 1);
		}
	}
	strata_batch_free(b);
	strata_close(c);
}

static void test_1000_conns(void **state)
{
	struct srvh *h = *state;
	enum { N = 1000 };
	static int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = srvh_raw(h);
	for (int i = 0; i < N; i++) {
		uint8_t *f;
		size_t n = srvh_ping_frame((uint64_t)i + 1, &f);
		assert_int_equal(srvh_write_all(fds[i], f, n), 0);
		free(f);
	}
	for (int i = 0; i < N; i++) {
		Strata__Response *r = srvh_read_resp(fds[i], 10000, NULL);
		assert_non_null(r);
		assert_int_equal(r->id, (uint64_t)i + 1);
		strata__response__free_unpacked(r, NULL);
	}
	int st;
	char *m = srvh_http_get(h, "/metrics", &st);
	char *p = strstr(m, "\nstrata_connections ");
	assert_non_null(p);
	assert_true(atol(p + 20) >= N);
	free(m);
	/* a real read on every connection too, all in flight at once */
	Strata__GetReq g = STRATA__GET_REQ__INIT;
	ProtobufCBinaryData ent = {2, (uint8_t *)"e5"};
	char *feats[] = {"a", "b"};
	g.table = "lt";
	g.n_entities = 1;
	g.entities = &ent;
	g.n_features = 2;
	g.features = feats;
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_GET;
	req.get = &g;
	uint8_t *f;
	size_t n = srvh_frame(&req, &f);
	for (int i = 0; i < N; i++)
		assert_int_equal(srvh_write_all(fds[i], f, n), 0);
	free(f);
	for (int i = 0; i < N; i++) {
		Strata__Response *r = srvh_read_resp(fds[i], 10000, NULL);
		assert_non_null(r);
		assert_int_equal(r->results->results[0]->value->i64, 50 + NVER - 1);
		strata__response__free_unpacked(r, NULL);
		close(fds[i]);
	}
}

static uint64_t rng = 88172645463325252ull;

static void test_join_1m(void **state)
{
	struct srvh *h = *state;
	strata *c = srvh_client(h, NULL);
	struct strata_error e = {0};
	const char *fi[] = {"a", "b"};
	strata_join *j;
	assert_int_equal(strata_join_open(c, "lt", fi, 2, STRATA_TS_MAX, 16384, &j, &e), 0);
	enum { ROWS = 1000000 };
	/* Rows are regenerated from the same seed to check results, so nothing is stored. */
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	rng = seed;
	size_t pushed = 0, checked = 0, found = 0;
	uint64_t chk = seed;
	const struct strata_result *row;
	char ent[16];
	int64_t t_start = srvh_ms();
	while (checked < ROWS) {
		int rc = 0;
		if (pushed < ROWS) {
			uint64_t x = srvh_xorshift(&rng);
			int k = (int)(x % (NENT + NENT / 10)); /* ~9% unknown entities */
			int64_t ts = T0 - DAY + (int64_t)((x >> 20) % (uint64_t)((NVER + 1) * DAY));
			int n = snprintf(ent, sizeof(ent), "e%d", k);
			rc = strata_join_push(j, ent, (size_t)n, ts, &e);
			if (rc < 0)
				fail_msg("push of row %zu: %s", pushed, e.msg);
			pushed++;
			if (rc == 0 && pushed < ROWS)
				continue;
		}
		/* Drain what is ready (everything once all rows are pushed). */
		uint64_t save = rng;
		while ((pushed == ROWS || strata_join_pending(j) > 50000) &&
		       (rc = strata_join_next(j, &row, &e)) == 1) {
			rng = chk;
			uint64_t x = srvh_xorshift(&rng);
			chk = rng;
			int k = (int)(x % (NENT + NENT / 10));
			int64_t ts = T0 - DAY + (int64_t)((x >> 20) % (uint64_t)((NVER + 1) * DAY));
			int64_t v = ts < T0 ? -1 : (ts - T0) / DAY;
			if (v >= NVER)
				v = NVER - 1;
			if (k >= NENT || v < 0) {
				if (row[0].found || row[1].found)
					fail_msg("row %zu: e%d ts %lld should have no value", checked, k,
						 (long long)ts);
			} else {
				if (!row[0].found || row[0].value.i64 != k * 10 + v)
					fail_msg("row %zu: e%d ts %lld: a=%lld want %lld", checked, k,
						 (long long)ts, (long long)row[0].value.i64,
						 (long long)(k * 10 + v));
				assert_true(row[1].found && row[1].value.f64 == k + v / 10.0);
				found++;
			}
			checked++;
		}
		rng = save;
		assert_true(rc >= 0);
		if (pushed == ROWS && rc == 0)
			break;
	}
	assert_int_equal(checked, ROWS);
	assert_true(found > ROWS / 2);
	fprintf(stderr, "join of %d rows streamed in %.2f s (%zu with values)\n", ROWS,
		(double)(srvh_ms() - t_start) / 1000.0, found);
	strata_join_close(j);
	strata_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipeline),
		cmocka_unit_test(test_1000_conns),
		cmocka_unit_test(test_join_1m),
	};
	int failed = 0;
	for (size_t i = 0; i < 2; i++) {
		cur_io = srvh_ios[i];
		fprintf(stderr, "== io backend: %s\n", cur_io);
		failed += _cmocka_run_group_tests(cur_io, tests, sizeof(tests) / sizeof(tests[0]),
						  setup, teardown);
	}
	return failed;
}
