/* Replication stream and node, one behaviour each: frames round-trip and every damaged or
 * truncated frame is refused; the layout parser refuses bad files with a clear error; a live
 * primary answers hostile input (random bytes, truncated frames, a wrong protocol, a replica
 * claiming a future sequence, an ack for what was never sent) with an error and keeps
 * serving; a well-behaved replica gets the registry, a resync and then write batches; a
 * replica facing a (fake) primary's REWIND frames: a malformed one is a protocol error, a
 * valid one moves its position and copy id, one it cannot carry out turns into a resync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_time.h"
#include "replication/repl.h"
#include "replication/repl_stream.h"

static char dir[256];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) { return remove(p); }
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static size_t frame(uint8_t type, const void *p, uint32_t len, uint8_t *out)
{
	repl_frame_wrap(type, p, len, out, out + REPL_HDR + len);
	memcpy(out + REPL_HDR, p, len);
	return REPL_HDR + len + REPL_TRAILER;
}

static void test_frame_roundtrip_and_damage(void **state)
{
	uint8_t buf[256];
	const char *msg = "hello replication";
	size_t n = frame(REPL_BATCH, msg, (uint32_t)strlen(msg), buf);
	struct repl_frame f;
	struct st_error err;
	size_t used;
	assert_int_equal(repl_frame_parse(buf, n, 1024, &f, &used, &err), 0);
	assert_int_equal(used, n);
	assert_int_equal(f.type, REPL_BATCH);
	assert_memory_equal(f.payload, msg, strlen(msg));
	repl_frame_release(&f);
	for (size_t i = 0; i < n; i++) /* every truncation: need more, or refused at once */
		assert_true(repl_frame_parse(buf, i, 1024, &f, &used, &err) != 0);
	for (size_t i = 0; i < n; i++) { /* every flipped byte is refused */
		buf[i] ^= 0x40;
		int rc = repl_frame_parse(buf, n, 1024, &f, &used, &err);
		assert_true(rc == ST_EPROTO || rc == 1);
		buf[i] ^= 0x40;
	}
	assert_int_equal(repl_frame_parse(buf, n, 4, &f, &used, &err), ST_EPROTO);
	assert_non_null(strstr(err.msg, "exceeds the limit"));
	buf[4] = 200;
	assert_int_equal(repl_frame_parse(buf, n, 1024, &f, &used, &err), ST_EPROTO);
	assert_non_null(strstr(err.msg, "unknown frame type"));
}

static void test_frame_random_bytes(void **state)
{
	uint8_t buf[512];
	srand(7);
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rand();
		if (round & 1 && n >= 4)
			memcpy(buf, REPL_MAGIC, 4);
		struct repl_frame f;
		struct st_error err;
		size_t used;
		int rc = repl_frame_parse(buf, n, 1u << 20, &f, &used, &err);
		assert_true(rc == 1 || rc == ST_EPROTO);
	}
}

static void test_payload_reader_bounds(void **state)
{
	uint8_t b[6] = {3, 0, 0, 0, 'a', 'b'};
	struct repl_rbuf r = {b, sizeof(b), 0, 0};
	char s[8];
	repl_r_str(&r, s, sizeof(s)); /* says 3 bytes, has 2 */
	assert_true(r.bad);
	struct repl_rbuf r2 = {b, sizeof(b), 0, 0};
	assert_int_equal(repl_r_u64(&r2), 0);
	assert_true(r2.bad);
	uint8_t big[8] = {200, 0, 0, 0};
	struct repl_rbuf r3 = {big, sizeof(big), 0, 0};
	repl_r_str(&r3, s, sizeof(s)); /* longer than the buffer */
	assert_true(r3.bad);
}

static const char *write_file(const char *name, const char *text)
{
	static char path[300];
	snprintf(path, sizeof(path), "%s-%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void expect_layout_error(const char *text, const char *needle)
{
	struct repl_layout l;
	struct st_error err = {0};
	assert_int_equal(repl_layout_load(write_file("bad.ini", text), &l, &err), ST_EINVAL);
	if (!strstr(err.msg, needle))
		fail_msg("expected '%s' in '%s'", needle, err.msg);
}

#define NODES "[node a]\naddr = 127.0.0.1:1\nrepl = 127.0.0.1:2\n" \
	      "[node b]\naddr = 127.0.0.1:3\nrepl = 127.0.0.1:4\n"

/* The buffered reader and the queued writer: random frames written with one send each
 * (repl_w_frame + repl_send_wbuf) and fed to the socket in random splits come back equal,
 * copied (repl_reader_next) or in place (repl_reader_view); repl_reader_ready says yes only
 * for a whole buffered frame; a flipped byte is EPROTO and a truncated stream ECLOSED. */
static void test_reader_writer(void **state)
{
	(void)state;
	srand(777);
	for (int round = 0; round < 60; round++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		enum { NF = 12 };
		uint8_t pay[NF][3000];
		uint32_t len[NF];
		struct repl_wbuf w = {0};
		for (int i = 0; i < NF; i++) {
			len[i] = (uint32_t)(rand() % 3000);
			for (uint32_t k = 0; k < len[i]; k++)
				pay[i][k] = (uint8_t)rand();
			repl_w_frame(&w, (uint8_t)(1 + i % REPL_TYPE_MAX), pay[i], len[i]);
		}
		int damage = round % 3 == 2, cut = round % 3 == 1;
		size_t total = w.n;
		int bad = -1; /* the frame whose payload or checksum gets a flipped bit */
		if (damage) {
			size_t off = 0;
			bad = rand() % NF;
			for (int k = 0; k < bad; k++)
				off += REPL_HDR + len[k] + REPL_TRAILER;
			w.p[off + REPL_HDR + (size_t)rand() % (len[bad] + REPL_TRAILER)] ^= 0x10;
		}
		/* small pieces through the socket buffer */
		size_t end = cut ? total - 1 - (size_t)rand() % 20 : total;
		for (size_t off = 0; off < end;) {
			size_t k = 1 + (size_t)rand() % 4000;
			if (k > end - off)
				k = end - off;
			assert_int_equal(write(sv[0], w.p + off, k), (ssize_t)k);
			off += k;
		}
		shutdown(sv[0], SHUT_WR);
		struct repl_reader rd;
		repl_reader_init(&rd, sv[1]);
		int i = 0, rc = 0;
		for (; i < NF; i++) {
			struct repl_frame f;
			struct st_error e = {0};
			uint8_t type;
			if (repl_reader_ready(&rd, &type))
				assert_int_equal(type, 1 + i % REPL_TYPE_MAX);
			rc = i % 2 ? repl_reader_view(&rd, REPL_FRAME_MAX, &f, &e)
				   : repl_reader_next(&rd, REPL_FRAME_MAX, &f, &e);
			if (rc)
				break;
			assert_int_equal(f.type, 1 + i % REPL_TYPE_MAX);
			assert_int_equal(f.len, len[i]);
			if (len[i])
				assert_memory_equal(f.payload, pay[i], len[i]);
			if (!(i % 2))
				repl_frame_release(&f);
		}
		if (damage)
			assert_true(rc == ST_EPROTO && i == bad);
		else if (cut)
			assert_true(rc == ST_ECLOSED && i == NF - 1);
		else
			assert_true(rc == 0 && i == NF);
		repl_reader_release(&rd);
		repl_wbuf_release(&w);
		close(sv[0]);
		close(sv[1]);
	}
}

/* repl_reader_to_file (a resync's DATA frames from the socket into the staged file, partly
 * from the reader's buffer, the rest spliced): random DATA frames up to 700 KB between small
 * other frames; the file equals the DATA payloads in order and the running hash theirs; a
 * flipped bit in a DATA payload or trailer is EPROTO at that frame, a stream cut inside a
 * payload is ECLOSED. */
static void test_reader_to_file(void **state)
{
	(void)state;
	char path[300];
	snprintf(path, sizeof(path), "%s-tofile", dir);
	srand(9191);
	enum { NF = 10, BIG = 700000 };
	uint8_t *pay = malloc((size_t)NF * BIG);
	assert_non_null(pay);
	for (size_t i = 0; i < (size_t)NF * BIG; i++)
		pay[i] = (uint8_t)rand();
	for (int round = 0; round < 12; round++) {
		uint32_t len[NF];
		uint8_t type[NF];
		struct repl_wbuf w = {0};
		for (int i = 0; i < NF; i++) {
			type[i] = i % 3 == 2 ? REPL_HEARTBEAT : REPL_DATA;
			len[i] = (uint32_t)(rand() % (type[i] == REPL_DATA ? BIG : 100));
			if (i == 1)
				len[i] = 0; /* an empty DATA frame */
			repl_w_frame(&w, type[i], pay + (size_t)i * BIG, len[i]);
		}
		int damage = round % 3 == 1, cut = round % 3 == 2, bad = -1;
		size_t end = w.n, off = 0;
		if (damage || cut) {
			do
				bad = 2 + rand() % (NF - 2);
			while (type[bad] != REPL_DATA || len[bad] < 10);
			for (int k = 0; k < bad; k++)
				off += REPL_HDR + len[k] + REPL_TRAILER;
			size_t at = off + REPL_HDR + (size_t)rand() % (len[bad] + REPL_TRAILER);
			if (damage)
				w.p[at] ^= 0x04;
			else
				end = off + REPL_HDR + len[bad] / 2;
		}
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		pid_t child = fork();
		assert_true(child >= 0);
		if (!child) {
			close(sv[1]);
			for (size_t o = 0; o < end;) {
				ssize_t k = write(sv[0], w.p + o, end - o);
				if (k <= 0)
					_exit(1);
				o += (size_t)k;
			}
			_exit(0);
		}
		close(sv[0]);
		int out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644), pfd[2];
		assert_true(out >= 0);
		assert_int_equal(pipe(pfd), 0);
		XXH3_state_t *h = XXH3_createState();
		XXH3_64bits_reset(h);
		struct repl_reader rd;
		repl_reader_init(&rd, sv[1]);
		uint64_t at = 0, want_at = 0;
		int i = 0, rc = 0;
		for (; i < NF; i++) {
			struct st_error e = {0};
			uint8_t t;
			uint32_t n;
			if ((rc = repl_reader_peek(&rd, REPL_FRAME_MAX, &t, &n, &e)))
				break;
			assert_int_equal(t, type[i]);
			assert_int_equal(n, len[i]);
			if (t == REPL_DATA) {
				rc = repl_reader_to_file(&rd, pfd, out, at, h, &n, &e);
				if (rc)
					break;
				at += n;
				want_at += len[i];
			} else {
				struct repl_frame f;
				if ((rc = repl_reader_view(&rd, REPL_FRAME_MAX, &f, &e)))
					break;
				assert_memory_equal(f.payload, pay + (size_t)i * BIG, len[i]);
			}
		}
		if (damage)
			assert_true(rc == ST_EPROTO && i == bad);
		else if (cut)
			assert_true(rc == ST_ECLOSED && i == bad);
		else {
			assert_true(rc == 0 && i == NF);
			assert_int_equal(at, want_at);
			/* the file and the running hash: the DATA payloads, in order */
			XXH3_state_t *ref = XXH3_createState();
			XXH3_64bits_reset(ref);
			uint8_t *got = malloc(at + 1);
			assert_int_equal(pread(out, got, at, 0), (ssize_t)at);
			for (int k = 0, pos = 0; k < NF; k++) {
				if (type[k] != REPL_DATA)
					continue;
				assert_memory_equal(got + pos, pay + (size_t)k * BIG, len[k]);
				XXH3_64bits_update(ref, pay + (size_t)k * BIG, len[k]);
				pos += (int)len[k];
			}
			assert_true(XXH3_64bits_digest(ref) == XXH3_64bits_digest(h));
			XXH3_freeState(ref);
			free(got);
		}
		int status;
		close(sv[1]);
		assert_int_equal(waitpid(child, &status, 0), child);
		repl_reader_release(&rd);
		XXH3_freeState(h);
		close(pfd[0]);
		close(pfd[1]);
		close(out);
		repl_wbuf_release(&w);
	}
	unlink(path);
	free(pay);
}

/* repl_send_file_frame: a file's bytes framed with sendfile arrive as one frame with a valid
 * checksum, also when a sendfile comes back short (fault repl.sendfile.short: the loop goes
 * on from where it stopped, exactly two sendfiles here); a file that ends before the frame
 * does is an error, never a short frame. */
static void test_send_file_frame(void **state)
{
	(void)state;
	enum { N = 60000, OFF = 1000 };
	char path[300];
	snprintf(path, sizeof(path), "%s-sendfile", dir);
	uint8_t *data = malloc(N);
	assert_non_null(data);
	srand(4242);
	for (int i = 0; i < N; i++)
		data[i] = (uint8_t)rand();
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, N), N);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setenv("STRATA_FAULTS", "repl.sendfile.short@1,repl.sendfile.short@3", 1);
	st_fault_reset();
	struct st_error e = {0};
	assert_int_equal(repl_send_file_frame(sv[0], REPL_DATA, fd, OFF, data + OFF, N - OFF, &e), 0);
	/* hits 1 (short) and 2 (the rest) were the two sendfiles: this is hit 3 */
	assert_true(st_fault("repl.sendfile.short"));
	unsetenv("STRATA_FAULTS");
	st_fault_reset();
	struct repl_frame f;
	assert_int_equal(repl_recv(sv[1], REPL_FRAME_MAX, &f, &e), 0);
	assert_int_equal(f.type, REPL_DATA);
	assert_int_equal(f.len, N - OFF);
	assert_memory_equal(f.payload, data + OFF, N - OFF);
	repl_frame_release(&f);
	uint8_t tail[20] = {0};
	assert_int_equal(repl_send_file_frame(sv[0], REPL_DATA, fd, N - 10, tail, 20, &e), ST_EIO);
	assert_non_null(strstr(e.msg, "ends 10 bytes early"));
	close(sv[0]);
	close(sv[1]);
	close(fd);
	unlink(path);
	free(data);
}

static void test_layout(void **state)
{
	struct repl_layout l;
	struct st_error err;
	const char *ok = "[cluster]\nversion = 3\nshards = 3\n" NODES
			 "[shard *]\nprimary = a\nreplicas = b\n[shard 2]\nprimary = b\nreplicas = a\n";
	assert_int_equal(repl_layout_load(write_file("ok.ini", ok), &l, &err), 0);
	assert_int_equal(l.nshards, 3);
	assert_int_equal(l.version, 3);
	assert_int_equal(l.shards[0].primary, 0);
	assert_int_equal(l.shards[2].primary, 1);
	assert_true(repl_layout_is_replica(&l, 2, 0));
	assert_false(repl_layout_is_replica(&l, 0, 0));
	repl_layout_release(&l);
	expect_layout_error("[cluster]\nshards = 2\n" NODES "[shard *]\nprimary = z\n", "'z' is not a [node]");
	expect_layout_error("[cluster]\nshards = 2\n" NODES "[shard *]\nprimary = a\nreplicas = a\n",
			    "listed twice");
	expect_layout_error("[cluster]\nshards = 2\n" NODES "[shard 0]\nprimary = a\n", "shard 1 has no");
	expect_layout_error("[cluster]\nshards = 0\n", "shards must be 1..256");
	expect_layout_error("[cluster]\nshards = 2\n[node a]\naddr = nowhere\n", "bad address");
	expect_layout_error("[cluster]\nshards = 1\n[bogus]\nx = 1\n", "unknown section");
	expect_layout_error("[cluster]\nshards = 2\n" NODES "[shard 9]\nprimary = a\n", "no shard '9'");
	assert_int_equal(repl_layout_load("/nonexistent/cluster.ini", &l, &err), ST_EINVAL);
}

/* ---- a live primary ---- */

struct live {
	struct kv_db *db;
	struct repl *r;
	char addr[64];
};

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sa);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Backpressure limits of the next start_node (0: the defaults). */
static int64_t live_send_timeout_us;
static uint64_t live_max_lag_seq;

/* Opens a store of nshards in ddir and starts node `node` of a two-node layout (a primary
 * with its stream at a_repl, b a replica): the set-up of the live tests. */
static void start_node(const char *ddir, int nshards, const char *a_repl, const char *node,
		       struct kv_db **db, struct repl **r)
{
	char text[512];
	snprintf(text, sizeof(text), "[cluster]\nshards = %d\n[node a]\naddr = 127.0.0.1:1\n"
		 "repl = %s\n[node b]\naddr = 127.0.0.1:3\nrepl = 127.0.0.1:%d\n"
		 "[shard *]\nprimary = a\nreplicas = b\n", nshards, a_repl, free_port());
	struct repl_layout l;
	struct st_error err;
	if (repl_layout_load(write_file("live.ini", text), &l, &err))
		fail_msg("%s", err.msg);
	struct kv_options o;
	kv_options_init(&o);
	o.nshards = nshards;
	o.sync = KV_SYNC_NONE;
	if (kv_open(ddir, &o, db, &err))
		fail_msg("%s", err.msg);
	struct repl_options ro;
	repl_options_init(&ro);
	snprintf(ro.node, sizeof(ro.node), "%s", node);
	if (live_send_timeout_us)
		ro.send_timeout_us = live_send_timeout_us;
	ro.max_lag_seq = live_max_lag_seq;
	if (repl_start(*db, ddir, &ro, &l, r, &err))
		fail_msg("%s", err.msg);
	repl_layout_release(&l);
}

static int live_setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-repl-%d", getpid());
	rm_rf(dir);
	static struct live lv;
	snprintf(lv.addr, sizeof(lv.addr), "127.0.0.1:%d", free_port());
	start_node(dir, 2, lv.addr, "a", &lv.db, &lv.r);
	struct st_error err;
	struct kv_feature_def fd[] = {{"x", KV_I64, 0, 0, 0}};
	struct kv_table t = {.name = "t", .nfeatures = 1, .features = fd};
	assert_int_equal(kv_table_create(lv.db, &t, &err), 0);
	*state = &lv;
	return 0;
}

static int live_teardown(void **state)
{
	struct live *lv = *state;
	repl_stop(lv->r);
	kv_close(lv->db);
	rm_rf(dir);
	char p[300];
	const char *names[] = {"bad.ini", "ok.ini", "live.ini"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s-%s", dir, names[i]);
		unlink(p);
	}
	return 0;
}

static void put(struct live *lv, const char *e, int64_t v)
{
	struct kv_cell c = {e, strlen(e), "x", 1000, {.type = KV_I64, .i64 = v}};
	struct st_error err;
	assert_int_equal(kv_put(lv->db, "t", &c, 1, &err), 0);
}

static int dial(struct live *lv)
{
	struct st_error err;
	int fd = repl_connect(lv->addr, 2000000, &err);
	assert_true(fd >= 0);
	repl_set_timeouts(fd, 5000000, 5000000);
	return fd;
}

/* Reads frames until one of `type` (or an error frame); returns its type. */
static int read_until(int fd, uint8_t type, struct repl_frame *out)
{
	for (;;) {
		struct st_error err;
		if (repl_recv(fd, REPL_FRAME_MAX, out, &err))
			return -1;
		if (out->type == type || out->type == REPL_ERROR)
			return out->type;
		repl_frame_release(out);
	}
}

static void hello_at(int fd, uint32_t ver, uint32_t shard, const char *replid, uint64_t next,
		     uint64_t layout_version)
{
	struct repl_wbuf w = {0};
	repl_w_u32(&w, ver);
	repl_w_u32(&w, shard);
	repl_w_u64(&w, layout_version);
	repl_w_str(&w, "b");
	repl_w_str(&w, replid);
	repl_w_u64(&w, next);
	repl_w_u32(&w, 0);
	repl_w_str(&w, "copy-of-b");
	repl_w_u64(&w, 1);
	struct st_error err;
	assert_int_equal(repl_send(fd, REPL_HELLO, w.p, w.n, &err), 0);
	repl_wbuf_release(&w);
}

static void hello(int fd, uint32_t ver, uint32_t shard, const char *replid, uint64_t next)
{
	hello_at(fd, ver, shard, replid, next, 1);
}

static void expect_error(int fd, const char *needle)
{
	struct repl_frame f;
	assert_int_equal(read_until(fd, REPL_ERROR, &f), REPL_ERROR);
	if (!strstr((char *)f.payload + 8, needle))
		fail_msg("expected '%s' in '%s'", needle, (char *)f.payload + 8);
	repl_frame_release(&f);
	close(fd);
}

static void still_serves(struct live *lv)
{
	put(lv, "after", 7);
	char *st = repl_status_json(lv->r);
	assert_non_null(strstr(st, "\"role\":\"primary\""));
	free(st);
}

static void test_hostile_random_bytes(void **state)
{
	struct live *lv = *state;
	int fd = dial(lv);
	uint8_t junk[300];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	expect_error(fd, "bad magic");
	still_serves(lv);
}

static void test_hostile_truncated_frame(void **state)
{
	struct live *lv = *state;
	int fd = dial(lv);
	uint8_t buf[64];
	size_t n = frame(REPL_HELLO, "0123456789012345678901234567890123456789", 40, buf);
	assert_int_equal(write(fd, buf, n - 20), (ssize_t)(n - 20)); /* cut in the payload */
	shutdown(fd, SHUT_WR);
	struct repl_frame f;
	assert_int_equal(read_until(fd, REPL_ERROR, &f), -1); /* closed, nothing else */
	close(fd);
	fd = dial(lv); /* a damaged checksum */
	n = frame(REPL_HELLO, "abcdefgh", 8, buf);
	buf[n - 1] ^= 1;
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	expect_error(fd, "checksum mismatch");
	still_serves(lv);
}

static void test_hostile_hello(void **state)
{
	struct live *lv = *state;
	int fd = dial(lv);
	hello(fd, 99, 0, "", 1);
	expect_error(fd, "replication protocol 99");
	fd = dial(lv);
	hello(fd, REPL_PROTO_VERSION, 7, "", 1);
	expect_error(fd, "no shard 7");
	char replid[KV_REPLID_MAX];
	struct st_error err;
	assert_int_equal(kv_shard_replid(lv->db, 0, replid, &err), 0);
	fd = dial(lv);
	hello(fd, REPL_PROTO_VERSION, 0, replid, kv_shard_latest_seq(lv->db, 0) + 1000);
	expect_error(fd, "beyond this primary's latest");
	/* invariant 8: a replica that follows a newer epoch (layout version) refuses this
	 * primary's stream: it is told it needs fencing */
	fd = dial(lv);
	hello_at(fd, REPL_PROTO_VERSION, 0, replid, 1, 9);
	struct repl_frame f;
	repl_set_timeouts(fd, 5000000, 5000000);
	assert_int_equal(repl_recv(fd, 1 << 20, &f, &err), 0);
	assert_int_equal(f.type, REPL_ERROR); /* the first answer, not a stream */
	assert_non_null(strstr((char *)f.payload + 8, "newer than this primary's"));
	repl_frame_release(&f);
	close(fd);
	still_serves(lv);
}

/* 1 when the primary closes the connection within us (heartbeats, every 20-100 ms, go on
 * while a stream lives), else 0. */
static int closes_within(int fd, int64_t us)
{
	int64_t end = st_now_us() + us;
	while (st_now_us() < end) {
		struct repl_frame f;
		struct st_error err;
		if (repl_recv(fd, REPL_FRAME_MAX, &f, &err))
			return 1;
		repl_frame_release(&f);
	}
	return 0;
}

/* Invariant 8: an ack given under a newer epoch (the replica follows a newer primary) ends
 * the stream at once; the same ack under the primary's own epoch keeps it. */
static void test_ack_newer_epoch(void **state)
{
	struct live *lv = *state;
	struct st_error err;
	for (uint64_t epoch = 1; epoch <= 2; epoch++) {
		int fd = dial(lv);
		hello(fd, REPL_PROTO_VERSION, 0, "", 1);
		struct repl_frame f;
		assert_int_equal(read_until(fd, REPL_RESYNC_END, &f), REPL_RESYNC_END);
		repl_frame_release(&f);
		for (int i = 0; i < 40; i++) { /* some land on shard 0 */
			char e[24];
			snprintf(e, sizeof(e), "ep%d-%d", (int)epoch, i);
			put(lv, e, i);
		}
		assert_int_equal(read_until(fd, REPL_BATCH, &f), REPL_BATCH);
		uint64_t seq;
		memcpy(&seq, f.payload, 8);
		repl_frame_release(&f);
		struct repl_wbuf w = {0};
		repl_w_u64(&w, seq + 1);
		repl_w_u64(&w, epoch);
		assert_int_equal(repl_send(fd, REPL_ACK, w.p, w.n, &err), 0);
		repl_wbuf_release(&w);
		assert_int_equal(closes_within(fd, 1500000), epoch == 2);
		close(fd);
	}
	still_serves(lv);
}

static void test_replica_session_and_lying_ack(void **state)
{
	struct live *lv = *state;
	for (int i = 0; i < 50; i++) {
		char e[16];
		snprintf(e, sizeof(e), "e%d", i);
		put(lv, e, i);
	}
	int fd = dial(lv);
	hello(fd, REPL_PROTO_VERSION, 0, "", 1); /* a new replica: registry, then a resync */
	struct repl_frame f;
	assert_int_equal(read_until(fd, REPL_REGISTRY, &f), REPL_REGISTRY);
	assert_non_null(strstr((char *)f.payload, "\"name\":\"t\""));
	repl_frame_release(&f);
	assert_int_equal(read_until(fd, REPL_RESYNC, &f), REPL_RESYNC);
	repl_frame_release(&f);
	assert_int_equal(read_until(fd, REPL_RESYNC_END, &f), REPL_RESYNC_END);
	repl_frame_release(&f);
	/* a new write on shard 0 arrives as a batch */
	for (int i = 0; i < 40; i++) {
		char e[16];
		snprintf(e, sizeof(e), "n%d", i);
		put(lv, e, i);
	}
	assert_int_equal(read_until(fd, REPL_BATCH, &f), REPL_BATCH);
	repl_frame_release(&f);
	/* an ack far beyond what was sent (under the primary's own epoch): the primary drops
	 * the connection */
	struct repl_wbuf w = {0};
	repl_w_u64(&w, 1ull << 40);
	repl_w_u64(&w, 1);
	struct st_error err;
	assert_int_equal(repl_send(fd, REPL_ACK, w.p, w.n, &err), 0);
	repl_wbuf_release(&w);
	assert_int_equal(closes_within(fd, 3000000), 1);
	close(fd);
	still_serves(lv);
}

static void test_admin_requests(void **state)
{
	struct live *lv = *state;
	char *reply;
	struct st_error err;
	assert_int_equal(repl_admin_call(lv->addr, "{\"cmd\":\"status\"}", 2000000, &reply, &err), 0);
	assert_non_null(strstr(reply, "\"node\":\"a\""));
	free(reply);
	assert_int_equal(repl_admin_call(lv->addr, "{\"cmd\":\"nope\"}", 2000000, &reply, &err),
			 ST_EINVAL);
	assert_non_null(strstr(err.msg, "unknown admin command 'nope'"));
	assert_int_equal(repl_admin_call(lv->addr, "not json", 2000000, &reply, &err), ST_EINVAL);
	assert_int_equal(repl_admin_call(lv->addr,
					 "{\"cmd\":\"layout\",\"shard\":0,\"primary\":\"b\",\"version\":1}",
					 2000000, &reply, &err), ST_EINVAL);
	assert_non_null(strstr(err.msg, "not newer"));
	assert_int_equal(repl_admin_call(lv->addr, "{\"cmd\":\"verify\",\"shard\":0}", 2000000,
					 &reply, &err), 0);
	assert_non_null(strstr(reply, "\"tables\""));
	free(reply);
	/* a fenced primary refuses writes with a redirect */
	assert_int_equal(repl_admin_call(lv->addr,
					 "{\"cmd\":\"layout\",\"shard\":1,\"primary\":\"b\",\"version\":5}",
					 2000000, &reply, &err), 0);
	free(reply);
	int refused = 0;
	for (int i = 0; i < 64; i++) {
		char e[16];
		snprintf(e, sizeof(e), "f%d", i);
		struct kv_cell c = {e, strlen(e), "x", 1000, {.type = KV_I64, .i64 = 1}};
		int rc = kv_put(lv->db, "t", &c, 1, &err);
		if (rc) {
			assert_int_equal(rc, ST_EBUSY);
			assert_non_null(strstr(err.msg, "EMOVED shard 1 primary b"));
			refused++;
		}
	}
	assert_true(refused > 0 && refused < 64); /* shard 0 still takes writes */
}

/* ---- a live replica facing a fake primary ---- */

struct hello_msg {
	uint32_t flags;
	char replid[KV_REPLID_MAX], own[KV_REPLID_MAX];
	uint64_t next, own_next, version;
};

/* Accepts the replica's next connection on lfd and reads its HELLO (an admin request, which
 * a static node sends its peers at start, is closed unanswered). */
static int accept_hello(int lfd, struct hello_msg *h)
{
	struct repl_frame f;
	int fd;
	for (;;) {
		struct pollfd pf = {lfd, POLLIN, 0};
		assert_int_equal(poll(&pf, 1, 5000), 1);
		fd = accept(lfd, NULL, NULL);
		assert_true(fd >= 0);
		repl_set_timeouts(fd, 5000000, 5000000);
		struct st_error err;
		assert_int_equal(repl_recv(fd, 1 << 20, &f, &err), 0);
		if (f.type == REPL_HELLO)
			break;
		assert_int_equal(f.type, REPL_ADMIN);
		repl_frame_release(&f);
		close(fd);
	}
	struct repl_rbuf rb = {f.payload, f.len, 0, 0};
	char node[64];
	assert_int_equal(repl_r_u32(&rb), REPL_PROTO_VERSION);
	assert_int_equal(repl_r_u32(&rb), 0);
	h->version = repl_r_u64(&rb);
	repl_r_str(&rb, node, sizeof(node));
	repl_r_str(&rb, h->replid, sizeof(h->replid));
	h->next = repl_r_u64(&rb);
	h->flags = repl_r_u32(&rb);
	repl_r_str(&rb, h->own, sizeof(h->own));
	h->own_next = repl_r_u64(&rb);
	assert_false(rb.bad);
	assert_int_equal(rb.off, rb.n);
	assert_string_equal(node, "b");
	repl_frame_release(&f);
	return fd;
}

static void send_rewind_from(int fd, const char *replid, uint64_t next, uint64_t undo_from,
			     const char *from, uint64_t from_next)
{
	struct repl_wbuf w = {0};
	repl_w_str(&w, replid);
	repl_w_u64(&w, next);
	repl_w_u64(&w, undo_from);
	repl_w_str(&w, from);
	repl_w_u64(&w, from_next);
	struct st_error err;
	assert_int_equal(repl_send(fd, REPL_REWIND, w.p, w.n, &err), 0);
	repl_wbuf_release(&w);
}

static void send_heartbeat_epoch(int fd, uint64_t epoch)
{
	struct repl_wbuf w = {0};
	repl_w_u64(&w, 1);
	repl_w_u64(&w, 0);
	repl_w_u64(&w, epoch);
	struct st_error err;
	assert_int_equal(repl_send(fd, REPL_HEARTBEAT, w.p, w.n, &err), 0);
	repl_wbuf_release(&w);
}

static void send_rewind(int fd, const char *replid, uint64_t next, uint64_t undo_from)
{
	send_rewind_from(fd, replid, next, undo_from, "old-history", 1);
}

/* A replica answers plain reads from its copy, but not a read that only the primary may
 * answer (KV_READ_PRIMARY: libstrata's reads that are not replica-ok, which a client may send
 * straight to whichever node it connected to): those get the redirect. */
static void test_replica_refuses_primary_reads(void **state)
{
	(void)state;
	char rdir[300], a_repl[32];
	snprintf(rdir, sizeof(rdir), "%s-replica-reads", dir);
	rm_rf(rdir);
	snprintf(a_repl, sizeof(a_repl), "127.0.0.1:%d", free_port()); /* a primary never up */
	struct kv_db *db;
	struct repl *r;
	start_node(rdir, 1, a_repl, "b", &db, &r);
	struct st_error err = {0};
	struct kv_result res;
	const char *f[] = {"x"};
	struct kv_read_opts plain = {ST_TS_MAX, ST_TS_MAX, 0};
	struct kv_read_opts primary = {ST_TS_MAX, ST_TS_MAX, KV_READ_PRIMARY};
	/* plain: served here (the table is unknown to this empty copy) */
	int rc = kv_get(db, "t", "e", 1, f, 1, &plain, &res, &err);
	assert_int_not_equal(rc, 0);
	assert_int_not_equal(rc, ST_EBUSY);
	rc = kv_get(db, "t", "e", 1, f, 1, &primary, &res, &err);
	assert_int_equal(rc, ST_EBUSY);
	assert_non_null(strstr(err.msg, "EMOVED shard 0 primary a"));
	repl_stop(r);
	kv_close(db);
	rm_rf(rdir);
}

/* A listening socket on loopback for a fake primary; its address in addr. */
static int fake_primary(char *addr, size_t n)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	snprintf(addr, n, "127.0.0.1:%d", ntohs(sa.sin_port));
	return lfd;
}

static void test_replica_rewind_frames(void **state)
{
	char rdir[300];
	snprintf(rdir, sizeof(rdir), "%s-replica", dir);
	rm_rf(rdir);
	char a_repl[32];
	int lfd = fake_primary(a_repl, sizeof(a_repl));
	struct st_error err;
	struct kv_db *db;
	struct repl *r;
	start_node(rdir, 1, a_repl, "b", &db, &r);
	struct hello_msg h, h2;
	int fd = accept_hello(lfd, &h);
	assert_true(h.own[0] != 0);
	assert_int_equal(h.own_next, kv_shard_latest_seq(db, 0) + 1);
	assert_int_equal(h.flags, 0);
	/* invariant 8: a heartbeat of the replica's epoch keeps the stream; one of an older
	 * epoch comes from a fenced primary: the replica drops it (and reconnects) */
	assert_true(h.version >= 1);
	send_heartbeat_epoch(fd, h.version);
	struct pollfd pf = {fd, POLLIN, 0};
	assert_int_equal(poll(&pf, 1, 300), 0);
	send_heartbeat_epoch(fd, h.version - 1);
	char byte;
	assert_int_equal(poll(&pf, 1, 3000), 1); /* closed: readable, at EOF */
	assert_int_equal(recv(fd, &byte, 1, 0), 0);
	close(fd);
	fd = accept_hello(lfd, &h);
	/* malformed: a protocol error, the replica reconnects and says the same */
	assert_int_equal(repl_send(fd, REPL_REWIND, "x", 1, &err), 0);
	close(fd);
	fd = accept_hello(lfd, &h2);
	assert_string_equal(h2.replid, h.replid);
	assert_string_equal(h2.own, h.own);
	/* valid, nothing to undo: it takes the fork as its position, with a new copy id */
	send_rewind(fd, "new-history", 5, 0);
	close(fd);
	fd = accept_hello(lfd, &h2);
	assert_string_equal(h2.replid, "new-history");
	assert_int_equal(h2.next, 5);
	assert_string_not_equal(h2.own, h.own);
	assert_int_equal(h2.flags, 0);
	/* a fork of the history it follows, at a point it has not reached (5 < 9): it lacks
	 * batches before the fork, so it must not take the fork as its position */
	send_rewind_from(fd, "other", 20, 0, "new-history", 9);
	close(fd);
	fd = accept_hello(lfd, &h);
	assert_int_equal(h.flags, REPL_HELLO_RESYNC);
	assert_string_equal(h.replid, "new-history");
	assert_int_equal(h.next, 5);
	/* one it cannot carry out (undo from beyond its latest): the next HELLO asks for a resync,
	 * and nothing changed */
	send_rewind(fd, "other", 9, h2.own_next + 100);
	close(fd);
	fd = accept_hello(lfd, &h);
	assert_int_equal(h.flags, REPL_HELLO_RESYNC);
	assert_string_equal(h.replid, "new-history");
	assert_int_equal(h.next, 5);
	assert_string_equal(h.own, h2.own);
	char *m = repl_metrics_text(r);
	assert_non_null(strstr(m, "strata_repl_rejoin_truncations_total 1\n"));
	assert_non_null(strstr(m, "strata_repl_rejoin_resyncs_total 2\n"));
	assert_non_null(strstr(m, "strata_repl_proto_errors_total 1\n"));
	free(m);
	close(fd);
	repl_stop(r);
	kv_close(db);
	close(lfd);
	rm_rf(rdir);
}

/* A primary that answers every HELLO by closing: the replica reconnects with a doubling
 * backoff (50, 100, 200, 400 ms ...) and counts each (strata_repl_reconnects_total). */
static void test_replica_reconnect_backoff(void **state)
{
	(void)state;
	char rdir[300];
	snprintf(rdir, sizeof(rdir), "%s-backoff", dir);
	rm_rf(rdir);
	char a_repl[32];
	int lfd = fake_primary(a_repl, sizeof(a_repl));
	struct kv_db *db;
	struct repl *r;
	start_node(rdir, 1, a_repl, "b", &db, &r);
	struct hello_msg h;
	int64_t at[5];
	for (int i = 0; i < 5; i++) {
		close(accept_hello(lfd, &h));
		at[i] = st_now_us();
	}
	/* gaps of at least 50, 100, 200, 400 ms (each the backoff plus a connect) */
	for (int i = 1; i < 5; i++)
		if (at[i] - at[i - 1] < (50000LL << (i - 1)) * 9 / 10)
			fail_msg("reconnect %d after %lld us, backoff %lld us", i,
				 (long long)(at[i] - at[i - 1]), (long long)(50000LL << (i - 1)));
	char *m = repl_metrics_text(r), *p = strstr(m, "\nstrata_repl_reconnects_total ");
	assert_non_null(p);
	assert_true(strtoull(p + strlen("\nstrata_repl_reconnects_total "), NULL, 10) >= 4);
	free(m);
	repl_stop(r);
	kv_close(db);
	close(lfd);
	rm_rf(rdir);
}

/* ---- backpressure: a primary with a 100-sequence lag limit, one with a 300 ms send
 * timeout ---- */

static int lag_limit_setup(void **state)
{
	live_max_lag_seq = 100;
	int rc = live_setup(state);
	live_max_lag_seq = 0;
	return rc;
}

static int send_timeout_setup(void **state)
{
	live_send_timeout_us = 300000;
	int rc = live_setup(state);
	live_send_timeout_us = 0;
	return rc;
}

/* The value of counter `name` in the node's metrics. */
static unsigned long long metric(struct live *lv, const char *name)
{
	char *m = repl_metrics_text(lv->r), *p, pat[128];
	assert_non_null(m);
	snprintf(pat, sizeof(pat), "\n%s ", name);
	p = strstr(m, pat);
	assert_non_null(p);
	unsigned long long v = strtoull(p + strlen(pat), NULL, 10);
	free(m);
	return v;
}

/* A new replica that takes its resync and then only reads (never acks): */
static int joined_replica(struct live *lv)
{
	int fd = dial(lv);
	hello(fd, REPL_PROTO_VERSION, 0, "", 1);
	struct repl_frame f;
	assert_int_equal(read_until(fd, REPL_RESYNC_END, &f), REPL_RESYNC_END);
	repl_frame_release(&f);
	return fd;
}

/* ...falls more than --max-replication-lag sequences behind while the primary writes: it is
 * disconnected (the primary logs the reason), counted, and the writes never waited. */
static void test_lag_limit_disconnects(void **state)
{
	struct live *lv = *state;
	unsigned long long before = metric(lv, "strata_repl_lag_disconnects_total");
	int fd = joined_replica(lv);
	for (int i = 0; i < 400; i++) {
		char e[16];
		snprintf(e, sizeof(e), "lag%d", i);
		put(lv, e, i);
	}
	struct repl_frame f;
	int rc;
	while ((rc = read_until(fd, REPL_ERROR, &f)) == REPL_ERROR)
		repl_frame_release(&f);
	assert_int_equal(rc, -1); /* closed by the primary */
	close(fd);
	assert_int_equal(metric(lv, "strata_repl_lag_disconnects_total"), before + 1);
	still_serves(lv);
}

/* ...stops reading altogether: the primary's sends time out after 300 ms and it is dropped
 * (counted), while writes go on at full speed: the socket buffers bound what it holds. */
static void test_send_timeout_drops_stalled_replica(void **state)
{
	struct live *lv = *state;
	struct st_error err;
	struct kv_feature_def fd_s[] = {{"s", KV_STR, 0, 0, 0}};
	struct kv_table t = {.name = "big", .nfeatures = 1, .features = fd_s};
	assert_int_equal(kv_table_create(lv->db, &t, &err), 0);
	unsigned long long before = metric(lv, "strata_repl_send_timeouts_total");
	int fd = joined_replica(lv);
	int one = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	static char val[8192];
	memset(val, 'v', sizeof(val));
	/* ~40 MB on shard 0 and 1 in batches of 90 writes: far beyond any socket buffer */
	for (int i = 0; i < 5000 && metric(lv, "strata_repl_send_timeouts_total") == before;) {
		struct kv_cell c[90];
		char e[90][16];
		for (int k = 0; k < 90; k++, i++) {
			snprintf(e[k], sizeof(e[k]), "big%d", i);
			c[k] = (struct kv_cell){e[k], strlen(e[k]), "s", 1000,
						{.type = KV_STR, .len = sizeof(val), .ptr = val}};
		}
		assert_int_equal(kv_put(lv->db, "big", c, 90, &err), 0);
	}
	for (int i = 0; i < 100 && metric(lv, "strata_repl_send_timeouts_total") == before; i++)
		usleep(50000);
	assert_int_equal(metric(lv, "strata_repl_send_timeouts_total"), before + 1);
	close(fd);
	still_serves(lv);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-repl-%d", getpid());
	const struct CMUnitTest plain[] = {
		cmocka_unit_test(test_frame_roundtrip_and_damage),
		cmocka_unit_test(test_frame_random_bytes),
		cmocka_unit_test(test_payload_reader_bounds),
		cmocka_unit_test(test_reader_writer),
		cmocka_unit_test(test_reader_to_file),
		cmocka_unit_test(test_send_file_frame),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_replica_rewind_frames),
		cmocka_unit_test(test_replica_refuses_primary_reads),
		cmocka_unit_test(test_replica_reconnect_backoff),
	};
	/* one live primary for the rest, in order (the last one fences shard 1) */
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_hostile_random_bytes),
		cmocka_unit_test(test_hostile_truncated_frame),
		cmocka_unit_test(test_hostile_hello),
		cmocka_unit_test(test_replica_session_and_lying_ack),
		cmocka_unit_test(test_ack_newer_epoch),
		cmocka_unit_test(test_admin_requests),
	};
	int failed = cmocka_run_group_tests_name("repl_stream", plain, NULL, NULL);
	failed += cmocka_run_group_tests_name("repl_live", live, live_setup, live_teardown);
	const struct CMUnitTest lag[] = {cmocka_unit_test(test_lag_limit_disconnects)};
	failed += cmocka_run_group_tests_name("repl_lag_limit", lag, lag_limit_setup, live_teardown);
	const struct CMUnitTest stall[] = {cmocka_unit_test(test_send_timeout_drops_stalled_replica)};
	failed += cmocka_run_group_tests_name("repl_send_timeout", stall, send_timeout_setup,
					      live_teardown);
	return failed;
}
