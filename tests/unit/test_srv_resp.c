/* The Redis-protocol port (stratad --resp) against a real server on both io backends, driven
 * with hiredis (RESP2) and raw sockets (RESP3 bytes, bad input): every command, values in
 * their natural types, nil for absent and stale values, pipelining with replies in command
 * order while some commands are answered from the row cache and others by the read pool,
 * --max-inflight, auth, read-only mode, per-command metrics, and bad input (garbage, huge bulk
 * lengths, unterminated arrays) that gets a RESP error and harms no other client. */
#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_srv_harness.h"

static const char *cur_io;

#define NOW_US() ((int64_t)time(NULL) * 1000000)

static redisContext *rconnect(const struct srvh *h)
{
	struct timeval tv = {20, 0};
	redisContext *r = redisConnectWithTimeout("127.0.0.1", h->resp_port, tv);
	if (!r || r->err)
		fail_msg("redis connect to %d: %s", h->resp_port, r ? r->errstr : "?");
	redisSetTimeout(r, tv);
	return r;
}

static redisReply *cmd(redisContext *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(r, fmt, ap);
	va_end(ap);
	if (!rep)
		fail_msg("no reply to '%s': %s", fmt, r->errstr);
	return rep;
}

static void expect_error(redisContext *r, const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(r, fmt, ap);
	va_end(ap);
	if (!rep)
		fail_msg("no reply to '%s': %s", fmt, r->errstr);
	if (rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, prefix, strlen(prefix)))
		fail_msg("'%s': expected an error starting '%s', got type %d '%s'", fmt, prefix,
			 rep->type, rep->str ? rep->str : "");
	freeReplyObject(rep);
}

static void expect_status(redisContext *r, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(r, fmt, ap);
	va_end(ap);
	if (!rep || rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, status))
		fail_msg("'%s': expected +%s, got %s", fmt, status,
			 rep ? (rep->str ? rep->str : "(no text)") : r->errstr);
	freeReplyObject(rep);
}

static void assert_str(const redisReply *e, const char *s)
{
	if (e->type != REDIS_REPLY_STRING || strcmp(e->str, s))
		fail_msg("expected bulk '%s', got type %d '%s'", s, e->type, e->str ? e->str : "");
}

/* A server with a RESP port (writes on), table "u" of every type and table "old" with a
 * ttl of 1 h holding one value 2 h old. */
static struct srvh *start(const char *const *extra)
{
	struct srvh *h = calloc(1, sizeof(*h));
	srvh_start(h, cur_io, extra);
	if (!h->resp_port)
		fail_msg("no RESP port in the ready file");
	strata *c = srvh_client(h, NULL);
	struct strata_feature_def f[] = {
		{"age", STRATA_I64, 0, 0, 0},  {"ctr", STRATA_F64, 0, 0, 0},
		{"w", STRATA_F32, 0, 0, 0},    {"name", STRATA_STR, 0, 0, 0},
		{"raw", STRATA_BYTES, 0, 0, 0}, {"emb", STRATA_F32VEC, 3, 0, 0},
		{"tags", STRATA_I64LIST, 0, 0, 0},
	};
	struct strata_table t = {.name = "u", .nfeatures = 7, .features = f};
	struct strata_error e = {0};
	if (strata_table_create(c, &t, &e))
		fail_msg("create: %s", e.msg);
	struct strata_feature_def fo[] = {{"v", STRATA_I64, 0, 0, 0}};
	struct strata_table to = {.name = "old", .nfeatures = 1, .features = fo,
				  .ttl_us = 3600LL * 1000000};
	if (strata_table_create(c, &to, &e))
		fail_msg("create: %s", e.msg);
	struct strata_cell cl = {"k", 1, "v", NOW_US() - 7200LL * 1000000,
				 {.type = STRATA_I64, .i64 = 5}};
	if (strata_put(c, "old", &cl, 1, &e))
		fail_msg("put: %s", e.msg);
	/* entities p0..p199 with age = i, for the pipelining tests */
	struct strata_cell cells[200];
	char names[200][8];
	for (int i = 0; i < 200; i++) {
		int n = snprintf(names[i], sizeof(names[i]), "p%d", i);
		cells[i] = (struct strata_cell){names[i], (size_t)n, "age", 1000,
						{.type = STRATA_I64, .i64 = i}};
	}
	if (strata_put(c, "u", cells, 200, &e))
		fail_msg("put: %s", e.msg);
	strata_close(c);
	return h;
}

static const char *const writes_on[] = {"--resp", "127.0.0.1:0", "--resp-writes", "1", NULL};

/* Every command, each value type in its natural RESP2 type, nil where absent or stale. */
static void test_commands(void **state)
{
	(void)state;
	struct srvh *h = start(writes_on);
	redisContext *r = rconnect(h);
	redisReply *rep = cmd(r, "HSET u:42 age 31 ctr 0.25 w 1.5 name bob raw 0xff00 emb [1,2.5,3] "
				 "tags [4,5]");
	assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
	assert_int_equal(rep->integer, 7);
	freeReplyObject(rep);

	rep = cmd(r, "HMGET u:42 age ctr w name raw emb tags");
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->elements, 7);
	assert_int_equal(rep->element[0]->type, REDIS_REPLY_INTEGER);
	assert_int_equal(rep->element[0]->integer, 31);
	assert_str(rep->element[1], "0.25");
	assert_str(rep->element[2], "1.5");
	assert_str(rep->element[3], "bob");
	assert_int_equal(rep->element[4]->type, REDIS_REPLY_STRING);
	assert_int_equal(rep->element[4]->len, 2);
	assert_memory_equal(rep->element[4]->str, "\xff\x00", 2);
	assert_int_equal(rep->element[5]->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->element[5]->elements, 3);
	assert_str(rep->element[5]->element[1], "2.5");
	assert_int_equal(rep->element[6]->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->element[6]->element[1]->integer, 5);
	freeReplyObject(rep);

	/* what HSET wrote is typed: libstrata reads an i64 and an f64 */
	strata *c = srvh_client(h, NULL);
	const char *fi[] = {"age", "ctr"};
	struct strata_result res[2];
	struct strata_error e = {0};
	if (strata_get(c, "u", "42", 2, fi, 2, NULL, res, &e))
		fail_msg("get: %s", e.msg);
	assert_true(res[0].found && res[0].value.type == STRATA_I64 && res[0].value.i64 == 31);
	assert_true(res[1].found && res[1].value.type == STRATA_F64 && res[1].value.f64 == 0.25);
	strata_result_release(res, 2);
	strata_close(c);

	/* absent entity, absent feature value, stale value: nil */
	rep = cmd(r, "HMGET u:nobody age name");
	assert_int_equal(rep->elements, 2);
	assert_int_equal(rep->element[0]->type, REDIS_REPLY_NIL);
	assert_int_equal(rep->element[1]->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);
	rep = cmd(r, "HMGET old:k v");
	assert_int_equal(rep->element[0]->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);

	/* HGETALL: pairs of the present features, in schema order */
	rep = cmd(r, "HSET u:7 age 8 name x");
	freeReplyObject(rep);
	rep = cmd(r, "HGETALL u:7");
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->elements, 4);
	assert_str(rep->element[0], "age");
	assert_int_equal(rep->element[1]->integer, 8);
	assert_str(rep->element[2], "name");
	assert_str(rep->element[3], "x");
	freeReplyObject(rep);
	rep = cmd(r, "HGETALL u:nobody");
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->elements, 0);
	freeReplyObject(rep);

	/* STRATA.GET with ASOF / KNOWNAT: before the write nothing, now the value */
	rep = cmd(r, "STRATA.GET u 42 ASOF 2020-01-01 FEATURES age name");
	assert_int_equal(rep->elements, 2);
	assert_int_equal(rep->element[0]->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);
	rep = cmd(r, "STRATA.GET u 42 asof now knownat now features age name");
	assert_int_equal(rep->element[0]->integer, 31);
	assert_str(rep->element[1], "bob");
	freeReplyObject(rep);
	rep = cmd(r, "STRATA.GET u 42 KNOWNAT 1000 FEATURES age");
	assert_int_equal(rep->element[0]->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);

	/* STRATA.MGET: one array per entity */
	rep = cmd(r, "STRATA.MGET u FEATURES age name ENTITIES 42 nobody 7");
	assert_int_equal(rep->elements, 3);
	assert_int_equal(rep->element[0]->element[0]->integer, 31);
	assert_int_equal(rep->element[1]->element[0]->type, REDIS_REPLY_NIL);
	assert_str(rep->element[2]->element[1], "x");
	freeReplyObject(rep);

	/* connection commands */
	expect_status(r, "PONG", "PING");
	rep = cmd(r, "PING hi");
	assert_str(rep, "hi");
	freeReplyObject(rep);
	rep = cmd(r, "ECHO %b", "a\0b", (size_t)3);
	assert_int_equal(rep->len, 3);
	freeReplyObject(rep);
	rep = cmd(r, "INFO");
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	assert_non_null(strstr(rep->str, "# Strata\r\n"));
	char io_line[32];
	snprintf(io_line, sizeof(io_line), "io:%s\r\n", cur_io);
	assert_non_null(strstr(rep->str, io_line));
	freeReplyObject(rep);
	expect_status(r, "OK", "CLIENT SETNAME feeder");
	rep = cmd(r, "CLIENT GETNAME");
	assert_str(rep, "feeder");
	freeReplyObject(rep);
	rep = cmd(r, "CLIENT ID");
	assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
	freeReplyObject(rep);
	expect_status(r, "OK", "CLIENT SETINFO LIB-NAME test");
	expect_error(r, "ERR Client names", "CLIENT SETNAME %s", "a b");
	expect_status(r, "OK", "SELECT 0");
	expect_error(r, "ERR DB index", "SELECT 1");
	rep = cmd(r, "HELLO 2");
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	assert_int_equal(rep->elements, 14);
	assert_str(rep->element[1], "strata");
	freeReplyObject(rep);
	expect_error(r, "NOPROTO", "HELLO 4");

	/* errors: a normal RESP error, the connection stays */
	expect_error(r, "ERR unknown command 'FLUSHALL'", "FLUSHALL");
	expect_error(r, "ERR wrong number of arguments for 'HMGET'", "HMGET u:1");
	expect_error(r, "ERR key 'nokey' is not TABLE:ENTITY", "HMGET nokey f");
	expect_error(r, "NOTFOUND", "HMGET nosuch:1 f");
	expect_error(r, "NOTFOUND", "HMGET u:1 nofeature");
	expect_error(r, "ERR syntax: STRATA.GET", "STRATA.GET u 1 FEATURE age x");
	expect_error(r, "ERR syntax: STRATA.MGET", "STRATA.MGET u FEATURES age x y");
	expect_error(r, "ERR bad timestamp", "STRATA.GET u 1 ASOF yesterday FEATURES age");
	expect_error(r, "WRONGTYPE feature 'age'", "HSET u:1 age notanumber");
	expect_error(r, "ERR wrong number of arguments for 'hset'", "HSET u:1 age 1 name");
	expect_error(r, "NOTFOUND", "HSET u:1 nofeature 1");
	expect_status(r, "PONG", "PING");

	/* QUIT: +OK, then the server closes */
	expect_status(r, "OK", "QUIT");
	assert_true(srvh_wait_closed(r->fd, 5000));
	redisFree(r);
	srvh_stop(h);
	free(h);
}

/* RESP3 after HELLO 3: doubles, nulls, maps (raw bytes). */
static void test_resp3(void **state)
{
	(void)state;
	struct srvh *h = start(writes_on);
	redisContext *r = rconnect(h);
	freeReplyObject(cmd(r, "HSET u:1 ctr 0.25 w 2 age 3 emb [1,0.5,2]"));
	redisFree(r);
	int fd = srvh_raw_port(h, h->resp_port);
	const char req[] = "HELLO 3\r\nHMGET u:1 ctr w age name emb\r\nHGETALL u:1\r\n"
			   "CLIENT GETNAME\r\nPING\r\n";
	srvh_write_all(fd, req, sizeof(req) - 1);
	const char *want_tail = "*5\r\n,0.25\r\n,2\r\n:3\r\n_\r\n*3\r\n,1\r\n,0.5\r\n,2\r\n"
				"%4\r\n$3\r\nage\r\n:3\r\n$3\r\nctr\r\n,0.25\r\n$1\r\nw\r\n,2\r\n"
				"$3\r\nemb\r\n*3\r\n,1\r\n,0.5\r\n,2\r\n_\r\n+PONG\r\n";
	char buf[1024];
	size_t got = 0;
	int64_t deadline = srvh_ms() + 10000;
	while (srvh_ms() < deadline && got < sizeof(buf) - 1) {
		if (srvh_read_n(fd, buf + got, 1, 10000) != 1)
			break;
		buf[++got] = '\0';
		if (got >= strlen(want_tail) && !strcmp(buf + got - strlen(want_tail), want_tail))
			break;
	}
	assert_true(!strncmp(buf, "%7\r\n$6\r\nserver\r\n$6\r\nstrata\r\n", 28));
	assert_non_null(strstr(buf, "$5\r\nproto\r\n:3\r\n"));
	if (got < strlen(want_tail) || strcmp(buf + got - strlen(want_tail), want_tail))
		fail_msg("RESP3 replies: got '%s'", buf);
	close(fd);
	srvh_stop(h);
	free(h);
}

/* 3000 commands in one write: cached hits (network thread), misses and INFO (pools), errors
 * and connection commands (at once) all interleaved; every reply in command order. Then the
 * same with --max-inflight 4 (reading pauses and resumes). */
static void pipeline_run(const char *const *extra)
{
	struct srvh *h = start(extra);
	redisContext *r = rconnect(h);
	freeReplyObject(cmd(r, "HMGET u:p0 age")); /* p0 cached */
	enum { N = 3000 };
	int kind[N], val[N];
	srand(7);
	for (int i = 0; i < N; i++) {
		kind[i] = rand() % 6;
		val[i] = rand() % 200;
		switch (kind[i]) {
		case 0: /* hit */
			redisAppendCommand(r, "HMGET u:p0 age");
			break;
		case 1: /* probably a miss the first time */
			redisAppendCommand(r, "HMGET u:p%d age", val[i]);
			break;
		case 2:
			redisAppendCommand(r, "STRATA.MGET u FEATURES age ENTITIES p%d p0", val[i]);
			break;
		case 3:
			redisAppendCommand(r, "ECHO m%d", i);
			break;
		case 4:
			redisAppendCommand(r, "NOSUCH %d", i);
			break;
		default:
			redisAppendCommand(r, i % 50 ? "HMGET u:p%d nofeature" : "INFO", val[i]);
		}
	}
	for (int i = 0; i < N; i++) {
		redisReply *rep;
		if (redisGetReply(r, (void **)&rep) != REDIS_OK)
			fail_msg("reply %d: %s", i, r->errstr);
		char m[32];
		switch (kind[i]) {
		case 0:
			assert_int_equal(rep->element[0]->integer, 0);
			break;
		case 1:
			assert_int_equal(rep->element[0]->integer, val[i]);
			break;
		case 2:
			assert_int_equal(rep->elements, 2);
			assert_int_equal(rep->element[0]->element[0]->integer, val[i]);
			break;
		case 3:
			snprintf(m, sizeof(m), "m%d", i);
			assert_str(rep, m);
			break;
		case 4:
			assert_int_equal(rep->type, REDIS_REPLY_ERROR);
			snprintf(m, sizeof(m), "%d", i);
			assert_non_null(strstr(rep->str, "'NOSUCH'"));
			break;
		default:
			if (i % 50 == 0)
				assert_non_null(strstr(rep->str, "# Strata"));
			else
				assert_int_equal(rep->type, REDIS_REPLY_ERROR);
		}
		freeReplyObject(rep);
	}
	expect_status(r, "PONG", "PING");
	redisFree(r);
	srvh_stop(h);
	free(h);
}

static void test_pipeline(void **state)
{
	(void)state;
	pipeline_run(writes_on);
	const char *const limited[] = {"--resp", "127.0.0.1:0", "--max-inflight", "4", NULL};
	pipeline_run(limited);
}

/* Reads one reply line ("-ERR ...\r\n") or "" on EOF/timeout. */
static void read_line(int fd, char *buf, size_t n)
{
	size_t got = 0;
	buf[0] = '\0';
	while (got < n - 1 && srvh_read_n(fd, buf + got, 1, 5000) == 1) {
		buf[++got] = '\0';
		if (got >= 2 && buf[got - 2] == '\r' && buf[got - 1] == '\n')
			break;
	}
}

static void others_served(const struct srvh *h)
{
	assert_true(srvh_alive(h));
	redisContext *r = rconnect(h);
	redisReply *rep = cmd(r, "HMGET u:p7 age");
	assert_int_equal(rep->element[0]->integer, 7);
	freeReplyObject(rep);
	redisFree(r);
}

/* Sends `bad`; expects a reply starting with `want` and then (close) the server to close. */
static void bad_case(struct srvh *h, const void *bad, size_t n, const char *want, int closes)
{
	int fd = srvh_raw_port(h, h->resp_port);
	srvh_write_all(fd, bad, n);
	char line[512];
	read_line(fd, line, sizeof(line));
	if (strncmp(line, want, strlen(want)))
		fail_msg("sent '%.40s...': expected '%s', got '%s'", (const char *)bad, want, line);
	if (closes)
		assert_true(srvh_wait_closed(fd, 5000));
	else {
		srvh_write_all(fd, "PING\r\n", 6);
		read_line(fd, line, sizeof(line));
		assert_string_equal(line, "+PONG\r\n");
	}
	close(fd);
	others_served(h);
}

static void test_bad_input(void **state)
{
	(void)state;
	const char *const args[] = {"--resp", "127.0.0.1:0", "--frame-timeout", "1s",
				    "--max-frame", "1m", NULL};
	struct srvh *h = start(args);
	static const char huge[] = "*2\r\n$4\r\nECHO\r\n$99999999999\r\n";
	bad_case(h, huge, sizeof(huge) - 1, "-ERR Protocol error: invalid bulk length", 1);
	static const char over[] = "*2\r\n$4\r\nECHO\r\n$2000000\r\n";
	bad_case(h, over, sizeof(over) - 1, "-ERR Protocol error: invalid bulk length", 1);
	static const char neg[] = "*2\r\n$4\r\nECHO\r\n$-5\r\n";
	bad_case(h, neg, sizeof(neg) - 1, "-ERR Protocol error: invalid bulk length", 1);
	static const char mb[] = "*99999999\r\n";
	bad_case(h, mb, sizeof(mb) - 1, "-ERR Protocol error: invalid multibulk length", 1);
	static const char mbx[] = "*1x\r\n";
	bad_case(h, mbx, sizeof(mbx) - 1, "-ERR Protocol error: invalid multibulk length", 1);
	static const char nodollar[] = "*2\r\n$4\r\nECHO\r\n:5\r\n";
	bad_case(h, nodollar, sizeof(nodollar) - 1, "-ERR Protocol error: expected '$', got ':'",
		 1);
	static const char noterm[] = "*1\r\n$4\r\nPINGxx";
	bad_case(h, noterm, sizeof(noterm) - 1, "-ERR Protocol error: bulk string not terminated",
		 1);
	/* garbage text: an unknown inline command, the connection stays */
	static const char text[] = "GET / HTTP/1.1\r\n";
	bad_case(h, text, sizeof(text) - 1, "-ERR unknown command 'GET'", 0);
	/* random bytes ending in a newline: unknown command (or an empty line), never a crash */
	char junk[4096];
	srand(99);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(rand() % 255 + 1);
	for (size_t i = 0; i < sizeof(junk); i++)
		if (junk[i] == '\n' || junk[i] == '*')
			junk[i] = 'x';
	junk[0] = 'Z';
	junk[sizeof(junk) - 1] = '\n';
	bad_case(h, junk, sizeof(junk), "-ERR unknown command", 0);
	/* an inline line longer than 64 KiB */
	char *big = malloc(70000);
	memset(big, 'a', 70000);
	bad_case(h, big, 70000, "-ERR Protocol error: too big inline request", 1);
	free(big);
	/* an unterminated array is closed by the frame timeout, with nothing answered */
	int fd = srvh_raw_port(h, h->resp_port);
	static const char part[] = "*3\r\n$5\r\nHMGET\r\n$4\r\nu:p1\r\n";
	srvh_write_all(fd, part, sizeof(part) - 1);
	int64_t t0 = srvh_ms();
	assert_true(srvh_wait_closed(fd, 10000));
	assert_true(srvh_ms() - t0 >= 500);
	close(fd);
	/* a command split across many writes is still answered */
	fd = srvh_raw_port(h, h->resp_port);
	static const char whole[] = "*3\r\n$5\r\nHMGET\r\n$5\r\nu:p12\r\n$3\r\nage\r\n";
	for (size_t i = 0; i < sizeof(whole) - 1; i++) {
		srvh_write_all(fd, whole + i, 1);
		usleep(1000);
	}
	char line[64];
	read_line(fd, line, sizeof(line));
	assert_string_equal(line, "*1\r\n");
	read_line(fd, line, sizeof(line));
	assert_string_equal(line, ":12\r\n");
	close(fd);
	others_served(h);
	srvh_stop(h);
	free(h);
}

/* --auth-token-file: NOAUTH before AUTH, small limits before auth, WRONGPASS, AUTH and
 * HELLO AUTH; writes off by default (READONLY). */
static void test_auth(void **state)
{
	(void)state;
	char tokfile[] = "/tmp/strata-resp-tok-XXXXXX";
	int tfd = mkstemp(tokfile);
	assert_true(tfd >= 0);
	assert_int_equal(write(tfd, "s3cret\n", 7), 7);
	close(tfd);
	const char *const args[] = {"--resp", "127.0.0.1:0", "--auth-token-file", tokfile, NULL};
	struct srvh *h = calloc(1, sizeof(*h));
	srvh_start(h, cur_io, args);
	strata *c = srvh_client(h, "s3cret");
	struct strata_feature_def f[] = {{"age", STRATA_I64, 0, 0, 0}};
	struct strata_table t = {.name = "u", .nfeatures = 1, .features = f};
	struct strata_error e = {0};
	assert_int_equal(strata_table_create(c, &t, &e), 0);
	struct strata_cell cl = {"p7", 2, "age", 1000, {.type = STRATA_I64, .i64 = 7}};
	assert_int_equal(strata_put(c, "u", &cl, 1, &e), 0);
	strata_close(c);

	redisContext *r = rconnect(h);
	expect_error(r, "NOAUTH", "HMGET u:p7 age");
	expect_error(r, "NOAUTH", "PING");
	expect_error(r, "WRONGPASS", "AUTH wrong");
	expect_error(r, "WRONGPASS", "AUTH admin s3cret");
	expect_error(r, "NOAUTH", "HELLO 2");
	expect_status(r, "OK", "AUTH s3cret");
	redisReply *rep = cmd(r, "HMGET u:p7 age");
	assert_int_equal(rep->element[0]->integer, 7);
	freeReplyObject(rep);
	expect_error(r, "READONLY", "HSET u:p7 age 8");
	redisFree(r);

	r = rconnect(h);
	rep = cmd(r, "HELLO 2 AUTH default s3cret SETNAME svc");
	assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
	freeReplyObject(rep);
	rep = cmd(r, "CLIENT GETNAME");
	assert_str(rep, "svc");
	freeReplyObject(rep);
	redisFree(r);

	/* before auth an argument is at most 16 KiB: a larger one is a protocol error */
	r = rconnect(h);
	char *big = malloc(20000);
	memset(big, 'x', 20000);
	rep = redisCommand(r, "AUTH %b", big, (size_t)20000);
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_ERROR);
	assert_non_null(strstr(rep->str, "invalid bulk length"));
	freeReplyObject(rep);
	free(big);
	redisFree(r);

	/* the metrics count RESP commands by name, errors included */
	int status;
	char *m = srvh_http_get(h, "/metrics", &status);
	assert_int_equal(status, 200);
	assert_non_null(strstr(m, "strata_requests_total{op=\"resp_hmget\"} 2"));
	assert_non_null(strstr(m, "strata_request_errors_total{op=\"resp_auth\"} 2"));
	assert_non_null(strstr(m, "strata_request_errors_total{op=\"resp_hset\"} 1"));
	free(m);
	srvh_stop(h);
	free(h);
	unlink(tokfile);
}

static int use_uring(void **state)
{
	(void)state;
	cur_io = "uring";
	return 0;
}

static int use_epoll(void **state)
{
	(void)state;
	cur_io = "epoll";
	return 0;
}

#define BOTH(t) cmocka_unit_test_setup(t, use_uring), cmocka_unit_test_setup(t, use_epoll)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_commands), BOTH(test_resp3), BOTH(test_pipeline), BOTH(test_bad_input),
		BOTH(test_auth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
