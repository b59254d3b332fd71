/* Seeded mutation fuzzing of the wire protocol against a real stratad on both io backends:
 * valid frames of every operation are mutated (bit flips, byte changes, truncation, random
 * extension, bad length prefixes) and pipelined over many connections. The server must keep
 * running, answer or close every connection, and keep serving a well-behaved client. Run the
 * ASan build (make asan) to catch memory errors in the server's decoding paths.
 * STRATA_FUZZ_SECONDS (default 3 per backend) and STRATA_FUZZ_SEED tune it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_srv_harness.h"

static uint64_t rs;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

struct seed {
	uint8_t *p;
	size_t n; /* payload only */
};

static struct seed seeds[32];
static int nseeds;

static void add_seed(Strata__Request *req)
{
	req->id = 1 + (uint64_t)nseeds;
	size_t n = strata__request__get_packed_size(req);
	seeds[nseeds].p = malloc(n + 1);
	strata__request__pack(req, seeds[nseeds].p);
	seeds[nseeds].n = n;
	nseeds++;
}

static void make_seeds(void)
{
	static Strata__PingReq ping = STRATA__PING_REQ__INIT;
	static Strata__StatusReq st = STRATA__STATUS_REQ__INIT;
	static Strata__TableListReq tl = STRATA__TABLE_LIST_REQ__INIT;
	static Strata__JobListReq jl = STRATA__JOB_LIST_REQ__INIT;
	Strata__Request r = STRATA__REQUEST__INIT;
#define SEED(opc, field, msg) \
	do { \
		Strata__Request q = STRATA__REQUEST__INIT; \
		q.op_case = opc; \
		q.field = msg; \
		add_seed(&q); \
	} while (0)
	SEED(STRATA__REQUEST__OP_PING, ping, &ping);
	SEED(STRATA__REQUEST__OP_STATUS, status, &st);
	SEED(STRATA__REQUEST__OP_TABLE_LIST, table_list, &tl);
	SEED(STRATA__REQUEST__OP_JOB_LIST, job_list, &jl);
	Strata__Feature f1 = STRATA__FEATURE__INIT, f2 = STRATA__FEATURE__INIT;
	f1.name = "a";
	f1.type = 1;
	f2.name = "v";
	f2.type = 6;
	f2.has_dim = 1;
	f2.dim = 2;
	Strata__Feature *fs[] = {&f1, &f2};
	Strata__Table t = STRATA__TABLE__INIT;
	t.name = "fz";
	t.n_features = 2;
	t.features = fs;
	Strata__TableCreateReq tc = STRATA__TABLE_CREATE_REQ__INIT;
	tc.table = &t;
	SEED(STRATA__REQUEST__OP_TABLE_CREATE, table_create, &tc);
	Strata__TableGetReq tg = STRATA__TABLE_GET_REQ__INIT;
	tg.name = "fz";
	SEED(STRATA__REQUEST__OP_TABLE_GET, table_get, &tg);
	Strata__TableAlterReq ta = STRATA__TABLE_ALTER_REQ__INIT;
	ta.name = "fz";
	ta.has_ttl_us = 1;
	ta.ttl_us = 1000000;
	SEED(STRATA__REQUEST__OP_TABLE_ALTER, table_alter, &ta);
	Strata__TableDropReq td = STRATA__TABLE_DROP_REQ__INIT;
	td.name = "fz2";
	SEED(STRATA__REQUEST__OP_TABLE_DROP, table_drop, &td);
	float vec[2] = {1, 2};
	Strata__Value v1 = STRATA__VALUE__INIT, v2 = STRATA__VALUE__INIT;
	v1.type = 1;
	v1.has_i64 = 1;
	v1.i64 = 5;
	v2.type = 6;
	v2.n_vec = 2;
	v2.vec = vec;
	Strata__Cell c1 = STRATA__CELL__INIT, c2 = STRATA__CELL__INIT;
	c1.entity.data = (uint8_t *)"e";
	c1.entity.len = 1;
	c1.feature = "a";
	c1.ts = 10;
	c1.value = &v1;
	c2 = c1;
	c2.feature = "v";
	c2.value = &v2;
	Strata__Cell *cs[] = {&c1, &c2};
	Strata__PutReq p = STRATA__PUT_REQ__INIT;
	p.table = "fz";
	p.n_cells = 2;
	p.cells = cs;
	SEED(STRATA__REQUEST__OP_PUT, put, &p);
	ProtobufCBinaryData ents[2] = {{1, (uint8_t *)"e"}, {1, (uint8_t *)"x"}};
	char *feats[] = {"a", "v"};
	Strata__GetReq g = STRATA__GET_REQ__INIT;
	g.table = "fz";
	g.n_entities = 2;
	g.entities = ents;
	g.n_features = 2;
	g.features = feats;
	SEED(STRATA__REQUEST__OP_GET, get, &g);
	Strata__DeleteReq d = STRATA__DELETE_REQ__INIT;
	d.table = "fz";
	d.entity = ents[1];
	d.ts = 3;
	SEED(STRATA__REQUEST__OP_DEL, del, &d);
	Strata__HistoryReq h = STRATA__HISTORY_REQ__INIT;
	h.table = "fz";
	h.entity = ents[0];
	h.feature = "a";
	SEED(STRATA__REQUEST__OP_HISTORY, history, &h);
	Strata__JoinOpenReq jo = STRATA__JOIN_OPEN_REQ__INIT;
	jo.table = "fz";
	jo.n_features = 2;
	jo.features = feats;
	jo.has_chunk_rows = 1;
	jo.chunk_rows = 4;
	SEED(STRATA__REQUEST__OP_JOIN_OPEN, join_open, &jo);
	int64_t ts[2] = {10, 20};
	Strata__JoinPushReq jp = STRATA__JOIN_PUSH_REQ__INIT;
	jp.join_id = 1;
	jp.n_entities = 2;
	jp.entities = ents;
	jp.n_ts = 2;
	jp.ts = ts;
	SEED(STRATA__REQUEST__OP_JOIN_PUSH, join_push, &jp);
	Strata__JoinCloseReq jc = STRATA__JOIN_CLOSE_REQ__INIT;
	jc.join_id = 1;
	SEED(STRATA__REQUEST__OP_JOIN_CLOSE, join_close, &jc);
	Strata__Preload pl = STRATA__PRELOAD__INIT;
	pl.table = "fz";
	pl.path = "/nonexistent/x.csv";
	Strata__PreloadSubmitReq ps = STRATA__PRELOAD_SUBMIT_REQ__INIT;
	ps.req = &pl;
	SEED(STRATA__REQUEST__OP_PRELOAD_SUBMIT, preload_submit, &ps);
	Strata__JobGetReq jg = STRATA__JOB_GET_REQ__INIT;
	jg.id = 1;
	SEED(STRATA__REQUEST__OP_JOB_GET, job_get, &jg);
	Strata__JobCancelReq jcan = STRATA__JOB_CANCEL_REQ__INIT;
	jcan.id = 1;
	SEED(STRATA__REQUEST__OP_JOB_CANCEL, job_cancel, &jcan);
	(void)r;
#undef SEED
}

/* Appends one mutated frame of a random seed to buf. */
static size_t mutate(uint8_t *buf, size_t cap)
{
	const struct seed *s = &seeds[rnd() % (uint64_t)nseeds];
	size_t n = s->n;
	uint8_t tmp[4096];
	if (n > sizeof(tmp) - 64)
		n = sizeof(tmp) - 64;
	memcpy(tmp, s->p, n);
	int rounds = 1 + (int)(rnd() % 4);
	for (int i = 0; i < rounds; i++) {
		switch (rnd() % 6) {
		case 0: /* bit flip */
			if (n)
				tmp[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1: /* random byte */
			if (n)
				tmp[rnd() % n] = (uint8_t)rnd();
			break;
		case 2: /* truncate */
			if (n)
				n = rnd() % n;
			break;
		case 3: /* extend with random bytes */
			for (int k = (int)(rnd() % 16); k > 0 && n < sizeof(tmp) - 1; k--)
				tmp[n++] = (uint8_t)rnd();
			break;
		case 4: /* interesting varints: huge counts and lengths */
			if (n > 2) {
				size_t at = rnd() % (n - 1);
				tmp[at] = 0xff;
				tmp[at + 1] = (uint8_t)(0x80 | rnd());
			}
			break;
		default: /* duplicate a slice */
			if (n > 4 && n < sizeof(tmp) / 2) {
				size_t a = rnd() % n, l = rnd() % (n - a);
				memcpy(tmp + n, tmp + a, l);
				n += l;
			}
			break;
		}
	}
	if (cap < n + 4)
		return 0;
	uint32_t len = (uint32_t)n;
	if (rnd() % 64 == 0)
		len = (uint32_t)rnd(); /* a lying length prefix: the connection ends there */
	buf[0] = (uint8_t)(len >> 24), buf[1] = (uint8_t)(len >> 16), buf[2] = (uint8_t)(len >> 8),
	buf[3] = (uint8_t)len;
	memcpy(buf + 4, tmp, n);
	return n + 4;
}

static void fuzz_backend(const char *io)
{
	struct srvh h;
	const char *args[] = {"--idle-timeout", "2s", "--max-frame", "64k", NULL};
	srvh_start(&h, io, args);
	double secs = getenv("STRATA_FUZZ_SECONDS") ? atof(getenv("STRATA_FUZZ_SECONDS")) : 3;
	int64_t until = srvh_ms() + (int64_t)(secs * 1000);
	long frames = 0, answers = 0, conns = 0;
	static uint8_t buf[1 << 20];
	while (srvh_ms() < until) {
		int fd = srvh_raw(&h);
		conns++;
		size_t len = 0;
		int nf = 1 + (int)(rnd() % 100);
		for (int i = 0; i < nf; i++) {
			size_t k = mutate(buf + len, sizeof(buf) - len);
			if (!k)
				break;
			len += k;
			frames++;
		}
		srvh_write_all(fd, buf, len); /* may fail if the server already closed: fine */
		shutdown(fd, SHUT_WR);
		/* The server answers what it decoded, then closes (EOF from us, or a bad length). */
		int eof = 0;
		Strata__Response *r;
		while ((r = srvh_read_resp(fd, 5000, &eof))) {
			answers++;
			strata__response__free_unpacked(r, NULL);
		}
		if (!eof)
			fail_msg("%s: connection %ld neither answered nor closed within 5 s (seed state "
				 "%llu)", io, conns, (unsigned long long)rs);
		close(fd);
		if (!srvh_alive(&h))
			srvh_die(&h, "stratad died under fuzzing");
	}
	fprintf(stderr, "%s: %ld mutated frames on %ld connections, %ld answers\n", io, frames,
		conns, answers);
	assert_true(answers > 0);
	/* A well-behaved client is still served. */
	strata *c = srvh_client(&h, NULL);
	struct strata_error e = {0};
	assert_int_equal(strata_ping(c, &e), 0);
	struct strata_table **ts;
	size_t n;
	assert_int_equal(strata_table_list(c, &ts, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		strata_table_free(ts[i]);
	free(ts);
	strata_close(c);
	srvh_stop(&h);
}

static void test_fuzz_uring(void **state)
{
	(void)state;
	fuzz_backend("uring");
}

static void test_fuzz_epoll(void **state)
{
	(void)state;
	fuzz_backend("epoll");
}

int main(void)
{
	rs = getenv("STRATA_FUZZ_SEED") ? strtoull(getenv("STRATA_FUZZ_SEED"), NULL, 0)
					: 0x2545F4914F6CDD1Dull;
	fprintf(stderr, "seed %llu (STRATA_FUZZ_SEED to replay)\n", (unsigned long long)rs);
	make_seeds();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fuzz_uring),
		cmocka_unit_test(test_fuzz_epoll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
