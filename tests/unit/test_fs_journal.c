/* Unit tests: SSD journal records (round trip, every bit flip and truncation detected),
 * scanning (commit markers, torn tails, sequence order) and replay (applies the committed
 * records in order by file handle, stops at damage, refuses a foreign journal). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse/fs_config.h"
#include "fuse/fs_journal.h"
#include "fuse/fs_util.h"

static struct fs_jrec data_rec(uint64_t seq, uint64_t off, uint32_t len)
{
	struct fs_jrec r = { .type = FS_JREC_DATA, .seq = seq, .off = off, .len = len,
			     .htype = 1, .hlen = 8 };
	memcpy(r.h, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	return r;
}

static void test_roundtrip(void **state)
{
	(void)state;
	unsigned char buf[FS_JREC_HDR + 100], data[100];
	for (int i = 0; i < 100; i++)
		data[i] = (unsigned char)(i * 7);
	struct fs_jrec r = data_rec(42, 123456789, 100), got;
	fs_jrec_encode(&r, data, buf);
	memcpy(buf + FS_JREC_HDR, data, 100);
	const unsigned char *d;
	size_t total;
	assert_int_equal(fs_jrec_parse(buf, sizeof(buf), &got, &d, &total), FS_JP_OK);
	assert_int_equal(total, sizeof(buf));
	assert_int_equal(got.seq, 42);
	assert_int_equal(got.off, 123456789);
	assert_int_equal(got.len, 100);
	assert_int_equal(got.hlen, 8);
	assert_memory_equal(got.h, r.h, 8);
	assert_memory_equal(d, data, 100);
	/* every single bit flip is caught */
	for (size_t i = 0; i < sizeof(buf) * 8; i++) {
		buf[i / 8] ^= (unsigned char)(1u << (i % 8));
		assert_int_not_equal(fs_jrec_parse(buf, sizeof(buf), &got, &d, &total), FS_JP_OK);
		buf[i / 8] ^= (unsigned char)(1u << (i % 8));
	}
	/* every truncation is torn, never accepted */
	for (size_t n = 1; n < sizeof(buf); n++)
		assert_int_equal(fs_jrec_parse(buf, n, &got, &d, &total), FS_JP_SHORT);
	/* zeros are the clean end; zeros then garbage is not */
	unsigned char z[FS_JREC_HDR] = { 0 };
	assert_int_equal(fs_jrec_parse(z, sizeof(z), &got, &d, &total), FS_JP_END);
	z[50] = 1;
	assert_int_equal(fs_jrec_parse(z, sizeof(z), &got, &d, &total), FS_JP_BAD);
	/* a commit record carries no data and no handle */
	struct fs_jrec c = { .type = FS_JREC_COMMIT, .seq = 43, .off = 42 };
	fs_jrec_encode(&c, NULL, buf);
	assert_int_equal(fs_jrec_parse(buf, FS_JREC_HDR, &got, &d, &total), FS_JP_OK);
	assert_int_equal(got.type, FS_JREC_COMMIT);
	assert_int_equal(got.off, 42);
	assert_int_equal(total, FS_JREC_HDR);
	/* a truncate names its file and carries no data */
	struct fs_jrec t = data_rec(44, 1000, 0);
	t.type = FS_JREC_TRUNC;
	fs_jrec_encode(&t, NULL, buf);
	assert_int_equal(fs_jrec_parse(buf, FS_JREC_HDR, &got, &d, &total), FS_JP_OK);
	assert_int_equal(got.type, FS_JREC_TRUNC);
	assert_int_equal(got.off, 1000);
	t.hlen = 0;
	fs_jrec_encode(&t, NULL, buf);
	assert_int_equal(fs_jrec_parse(buf, FS_JREC_HDR, &got, &d, &total), FS_JP_BAD);
}

/* A temp backing dir with one file and a journal dir for it. */
struct env {
	char root[64];
	int bfd, jfd, ffd;
	char uuid[FS_JUUID_HEX];
	struct fs_jrec proto;     /* handle of the file */
};

static void env_init(struct env *e)
{
	snprintf(e->root, sizeof(e->root), "/tmp/test_fs_journal.XXXXXX");
	assert_non_null(mkdtemp(e->root));
	char p[128];
	snprintf(p, sizeof(p), "%s/b", e->root);
	assert_int_equal(mkdir(p, 0755), 0);
	e->bfd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/j", e->root);
	assert_int_equal(mkdir(p, 0755), 0);
	e->jfd = open(p, O_RDONLY | O_DIRECTORY);
	assert_true(e->bfd >= 0 && e->jfd >= 0);
	e->ffd = openat(e->bfd, "file", O_RDWR | O_CREAT, 0644);
	assert_true(e->ffd >= 0);
	assert_int_equal(pwrite(e->ffd, "................", 16, 0), 16);
	union { struct file_handle fh; unsigned char b[sizeof(struct file_handle) + FS_JH_MAX]; } u;
	int mnt;
	u.fh.handle_bytes = FS_JH_MAX;
	assert_int_equal(name_to_handle_at(e->ffd, "", &u.fh, &mnt, AT_EMPTY_PATH), 0);
	memset(&e->proto, 0, sizeof(e->proto));
	e->proto.htype = u.fh.handle_type;
	e->proto.hlen = u.fh.handle_bytes;
	memcpy(e->proto.h, u.fh.f_handle, u.fh.handle_bytes);
	struct st_error err = { 0 };
	assert_int_equal(fs_jbacking_id(e->bfd, 1, e->uuid, &err), 0);
	struct fs_jmeta m = { .seg_size = 1 << 20 };
	memcpy(m.uuid, e->uuid, sizeof(m.uuid));
	assert_int_equal(fs_jmeta_write(e->jfd, &m, &err), 0);
}

static void env_free(struct env *e)
{
	char cmd[128];
	close(e->ffd);
	close(e->bfd);
	close(e->jfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->root);
	assert_int_equal(system(cmd), 0);
}

/* Writes segment no with records: data "AAAA" at 0 (seq 1), "BB" at 2 (seq 2), commit of
 * seq <= 2 (seq 3), "CCCC" at 8 (seq 4, never committed). Returns the segment fd. */
static int write_seg(struct env *e, uint64_t no, off_t *pos2)
{
	char name[40];
	unsigned char h[FS_JSEG_HDR], rh[FS_JREC_HDR];
	fs_jseg_name(no, name, sizeof(name));
	int fd = openat(e->jfd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fs_jseg_header(no, e->uuid, h);
	off_t pos = 0;
	assert_int_equal(pwrite(fd, h, sizeof(h), pos), sizeof(h));
	pos += FS_JSEG_HDR;
	const struct { uint64_t seq, off; const char *d; int type; } recs[] = {
		{ 1, 0, "AAAA", FS_JREC_DATA }, { 2, 2, "BB", FS_JREC_DATA },
		{ 3, 2, "", FS_JREC_COMMIT }, { 4, 8, "CCCC", FS_JREC_DATA },
	};
	for (size_t i = 0; i < 4; i++) {
		struct fs_jrec r = e->proto;
		r.type = (uint16_t)recs[i].type;
		r.seq = recs[i].seq;
		r.off = recs[i].off;
		r.len = (uint32_t)strlen(recs[i].d);
		if (r.type == FS_JREC_COMMIT)
			r.hlen = 0, r.htype = 0;
		if (i == 1 && pos2)
			*pos2 = pos;
		fs_jrec_encode(&r, recs[i].d, rh);
		assert_int_equal(pwrite(fd, rh, sizeof(rh), pos), sizeof(rh));
		pos += FS_JREC_HDR;
		assert_int_equal(pwrite(fd, recs[i].d, r.len, pos), (ssize_t)r.len);
		pos += r.len;
	}
	return fd;
}

static void read_file(struct env *e, char *out)
{
	memset(out, 0, 17);
	assert_int_equal(pread(e->ffd, out, 16, 0), 16);
}

static void test_replay_committed_only(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	struct env e;
	env_init(&e);
	close(write_seg(&e, 1, NULL));
	struct fs_jreplay rep;
	struct st_error err = { 0 };
	assert_int_equal(fs_jreplay(e.jfd, e.bfd, &rep, &err), 0);
	char got[17];
	read_file(&e, got);
	/* newest record wins where they overlap; the uncommitted one is ignored */
	assert_string_equal(got, "AABB............");
	assert_int_equal(rep.applied, 2);
	assert_int_equal(rep.scan.last_commit, 2);
	assert_int_equal(rep.scan.damaged, 0);
	assert_int_equal(rep.new_ckpt, 4);
	uint64_t *segs;
	assert_int_equal(fs_jseg_list(e.jfd, &segs, &err), 0); /* segments removed */
	free(segs);
	struct fs_jmeta m;
	assert_int_equal(fs_jmeta_read(e.jfd, &m, &err), 0);
	assert_int_equal(m.ckpt, 4);
	env_free(&e);
}

/* A truncate is replayed in journal order: data before it is cut, data after it kept. */
static void test_replay_truncate(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	struct env e;
	env_init(&e);
	char name[40];
	unsigned char h[FS_JSEG_HDR], rh[FS_JREC_HDR];
	fs_jseg_name(1, name, sizeof(name));
	int fd = openat(e.jfd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fs_jseg_header(1, e.uuid, h);
	assert_int_equal(pwrite(fd, h, sizeof(h), 0), sizeof(h));
	off_t pos = FS_JSEG_HDR;
	const struct { uint64_t off; const char *d; int type; } recs[] = {
		{ 0, "AAAAAAAA", FS_JREC_DATA }, { 3, "", FS_JREC_TRUNC },
		{ 5, "Z", FS_JREC_DATA }, { 3, "", FS_JREC_COMMIT },
	};
	for (size_t i = 0; i < 4; i++) {
		struct fs_jrec r = e.proto;
		r.type = (uint16_t)recs[i].type;
		r.seq = i + 1;
		r.off = recs[i].off;
		r.len = (uint32_t)strlen(recs[i].d);
		if (r.type == FS_JREC_COMMIT)
			r.hlen = 0, r.htype = 0;
		fs_jrec_encode(&r, recs[i].d, rh);
		assert_int_equal(pwrite(fd, rh, sizeof(rh), pos), sizeof(rh));
		assert_int_equal(pwrite(fd, recs[i].d, r.len, pos + FS_JREC_HDR), (ssize_t)r.len);
		pos += FS_JREC_HDR + r.len;
	}
	close(fd);
	struct fs_jreplay rep;
	struct st_error err = { 0 };
	assert_int_equal(fs_jreplay(e.jfd, e.bfd, &rep, &err), 0);
	assert_int_equal(rep.applied, 2);
	assert_int_equal(rep.truncates, 1);
	assert_int_equal(rep.scan.data_records, 2);
	char got[8] = { 0 };
	assert_int_equal(pread(e.ffd, got, sizeof(got), 0), 6);
	assert_memory_equal(got, "AAA\0\0Z", 6);
	env_free(&e);
}

static void test_replay_stops_at_damage(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	struct env e;
	env_init(&e);
	off_t pos2;
	int fd = write_seg(&e, 1, &pos2);
	/* corrupt the data of the second record: scan stops there, the first is kept, the
	 * commit after the damage is never seen */
	assert_int_equal(pwrite(fd, "X", 1, pos2 + FS_JREC_HDR), 1);
	close(fd);
	struct fs_jreplay rep;
	struct st_error err = { 0 };
	assert_int_equal(fs_jreplay(e.jfd, e.bfd, &rep, &err), 0);
	assert_int_equal(rep.scan.damaged, 1);
	assert_int_equal(rep.scan.damaged_pos, (uint64_t)pos2);
	assert_int_equal(rep.applied, 0); /* no commit before the damage */
	char got[17];
	read_file(&e, got);
	assert_string_equal(got, "................");
	env_free(&e);
}

static void test_replay_refuses_foreign(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct fs_jmeta m = { .seg_size = 1 << 20 };
	snprintf(m.uuid, sizeof(m.uuid), "%s", "0123456789abcdef0123456789abcdef");
	struct st_error err = { 0 };
	assert_int_equal(fs_jmeta_write(e.jfd, &m, &err), 0);
	close(write_seg(&e, 1, NULL));
	struct fs_jreplay rep;
	assert_int_equal(fs_jreplay(e.jfd, e.bfd, &rep, &err), ST_EINVAL);
	assert_non_null(strstr(err.msg, "another backing dir"));
	/* and a segment of another journal is damage, not data */
	struct fs_jscan sc;
	assert_int_equal(fs_jscan(e.jfd, m.uuid, NULL, NULL, &sc, &err), 0);
	assert_int_equal(sc.damaged, 1);
	assert_int_equal(sc.records, 0);
	env_free(&e);
}

static void test_scan_sequence_backwards(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	close(write_seg(&e, 1, NULL));
	close(write_seg(&e, 2, NULL)); /* same seqs again: not a continuation */
	struct fs_jscan sc;
	struct st_error err = { 0 };
	assert_int_equal(fs_jscan(e.jfd, e.uuid, NULL, NULL, &sc, &err), 0);
	assert_int_equal(sc.records, 4);
	assert_int_equal(sc.damaged, 1);
	assert_int_equal(sc.damaged_seg, 2);
	env_free(&e);
}

static int parse(struct fs_config *c, const char *a1, const char *a2)
{
	char *argv[] = { "stratafs", "b", "m", (char *)a1, (char *)a2, NULL };
	struct st_error err = { 0 };
	fs_config_defaults(c);
	return fs_config_parse(c, a2 ? 5 : 4, argv, stdout, &err);
}

static void test_journal_options(void **state)
{
	(void)state;
	struct fs_config c;
	assert_int_equal(parse(&c, "--close-to-open", NULL), 0);
	assert_null(c.journal_dir);
	assert_int_equal(c.journal_size, 8LL << 30);
	assert_int_equal(c.max_dirty_age_us, 5000000);
	assert_int_equal(c.journal_bypass, 1 << 20);
	assert_int_equal(c.close_to_open, 1);
	assert_int_equal(parse(&c, "--journal-dir", "/ssd"), 0);
	assert_string_equal(c.journal_dir, "/ssd");
	assert_int_equal(parse(&c, "--journal-size", "64M"), 0);
	assert_int_equal(c.journal_size, 64LL << 20);
	assert_int_equal(parse(&c, "--journal-size", "2g"), 0);
	assert_int_equal(c.journal_size, 2LL << 30);
	assert_int_equal(parse(&c, "--journal-bypass", "0"), 0);
	assert_int_equal(c.journal_bypass, 0);
	assert_int_equal(parse(&c, "--max-dirty-age", "250ms"), 0);
	assert_int_equal(c.max_dirty_age_us, 250000);
	/* bad values are refused */
	assert_int_equal(parse(&c, "--journal-size", "1M"), ST_EINVAL);   /* below 16M */
	assert_int_equal(parse(&c, "--journal-size", "12X"), ST_EINVAL);
	assert_int_equal(parse(&c, "--journal-size", "-5G"), ST_EINVAL);
	assert_int_equal(parse(&c, "--journal-size", "99999999999T"), ST_EINVAL);
	assert_int_equal(parse(&c, "--journal-bypass", " "), ST_EINVAL);
	assert_int_equal(parse(&c, "--max-dirty-age", "0"), ST_EINVAL);
	assert_int_equal(parse(&c, "--journal-dir", ""), ST_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_journal_options),
		cmocka_unit_test(test_replay_committed_only),
		cmocka_unit_test(test_replay_truncate),
		cmocka_unit_test(test_replay_stops_at_damage),
		cmocka_unit_test(test_replay_refuses_foreign),
		cmocka_unit_test(test_scan_sequence_backwards),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
