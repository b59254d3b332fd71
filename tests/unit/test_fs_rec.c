/* Unit tests: trash index records (encode/decode, checksum, torn lines), buckets, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <xxhash.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/fs_rec.h"
#include "fuse/fs_util.h"

static void make_rec(struct fs_trash_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->op = FS_REC_DEL;
	fs_new_id(r->id);
	r->path = strdup("/data/set one/\"quoted\"\n\xc3\xa9.bin");
	r->parent = strdup("/data/set one");
	r->tpath = strdup("data/set one/\"quoted\"\n\xc3\xa9.bin");
	r->type = 'f';
	r->uid = 1000;
	r->gid = 100;
	r->mode = 0100640;
	r->size = 123456789012LL;
	r->atime_ns = 1700000000123456789LL;
	r->mtime_ns = 1700000001000000001LL;
	r->ctime_ns = 1700000002999999999LL;
	r->dtime_us = 1790000000000001LL;
	r->by_uid = 0;
	unsigned char bin[] = { 0, 1, 2, 255, 10, 13 };
	assert_int_equal(fs_rec_add_xattr(r, "user.bin", bin, sizeof(bin)), 0);
	assert_int_equal(fs_rec_add_xattr(r, "user.empty", "", 0), 0);
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct fs_trash_rec r, d;
	make_rec(&r);
	size_t len;
	char *line = fs_rec_encode(&r, &len);
	assert_non_null(line);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1)); /* one line, whatever the path holds */
	struct st_error err;
	assert_int_equal(fs_rec_decode(line, len, &d, &err), 0);
	assert_int_equal(d.op, FS_REC_DEL);
	assert_string_equal(d.id, r.id);
	assert_string_equal(d.path, r.path);
	assert_string_equal(d.parent, r.parent);
	assert_string_equal(d.tpath, r.tpath);
	assert_int_equal(d.type, 'f');
	assert_int_equal(d.uid, 1000);
	assert_int_equal(d.gid, 100);
	assert_int_equal(d.mode, 0100640);
	assert_true(d.size == r.size);
	assert_true(d.atime_ns == r.atime_ns && d.mtime_ns == r.mtime_ns && d.ctime_ns == r.ctime_ns);
	assert_true(d.dtime_us == r.dtime_us);
	assert_int_equal(d.nxattr, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct fs_xattr *x = NULL;
		for (size_t j = 0; j < d.nxattr; j++)
			if (!strcmp(d.xattrs[j].name, r.xattrs[i].name))
				x = &d.xattrs[j];
		assert_non_null(x);
		assert_int_equal(x->len, r.xattrs[i].len);
		assert_memory_equal(x->value, r.xattrs[i].value, x->len);
	}
	struct fs_trash_rec c;
	assert_int_equal(fs_rec_copy(&c, &d), 0);
	assert_string_equal(c.path, d.path);
	assert_int_equal(c.nxattr, 2);
	fs_rec_release(&c);
	fs_rec_release(&d);
	free(line);
	fs_rec_release(&r);
}

static void test_gone(void **state)
{
	(void)state;
	struct fs_trash_rec g = { .op = FS_REC_GONE, .dtime_us = 5 }, d;
	memcpy(g.id, "00112233445566aa", 17);
	snprintf(g.why, sizeof(g.why), "restored");
	size_t len;
	char *line = fs_rec_encode(&g, &len);
	assert_int_equal(fs_rec_decode(line, len, &d, NULL), 0);
	assert_int_equal(d.op, FS_REC_GONE);
	assert_string_equal(d.id, "00112233445566aa");
	assert_string_equal(d.why, "restored");
	assert_null(d.path);
	fs_rec_release(&d);
	free(line);
}

static void test_corruption(void **state)
{
	(void)state;
	struct fs_trash_rec r, d;
	make_rec(&r);
	size_t len;
	char *line = fs_rec_encode(&r, &len);
	struct st_error err;
	/* every single-byte flip in the JSON part is caught by the checksum */
	for (size_t i = 17; i < len - 1; i += 7) {
		char *bad = strdup(line);
		bad[i] ^= 0x20;
		int rc = fs_rec_decode(bad, len, &d, &err);
		assert_int_not_equal(rc, 0);
		free(bad);
	}
	/* a torn tail (crash mid-append) is rejected, not misread */
	for (size_t cut = 0; cut < len - 1; cut += 13)
		assert_int_not_equal(fs_rec_decode(line, cut, &d, &err), 0);
	assert_int_equal(fs_rec_decode(line, len - 1, &d, &err), 0); /* without the newline */
	fs_rec_release(&d);
	/* valid checksum over invalid content */
	const char *js = "{\"op\":\"del\",\"id\":\"short\"}";
	char hdr[200];
	snprintf(hdr, sizeof(hdr), "%016llx %s\n", (unsigned long long)XXH64(js, strlen(js), 0), js);
	assert_int_equal(fs_rec_decode(hdr, strlen(hdr), &d, &err), ST_EINVAL);
	free(line);
	fs_rec_release(&r);
}

static void test_buckets(void **state)
{
	(void)state;
	char b[16];
	/* 2026-11-25T07:52:18Z */
	int64_t t = 1795593138LL * 1000000;
	fs_bucket_name(t, 3600, b);
	assert_string_equal(b, "20261125T070000");
	fs_bucket_name(t, 1, b);
	assert_string_equal(b, "20261125T075218");
	fs_bucket_name(t, 60, b);
	assert_string_equal(b, "20261125T075200");
	assert_int_equal(fs_bucket_width(7LL * 86400 * 1000000), 3600);
	assert_int_equal(fs_bucket_width(2 * 1000000), 1);
	assert_int_equal(fs_bucket_width(24LL * 600 * 1000000), 600);
	assert_int_equal(fs_bucket_width(0), 1);
}

static void test_paths(void **state)
{
	(void)state;
	char p[64];
	strcpy(p, "a//b/c/");
	assert_int_equal(fs_path_clean(p), 0);
	assert_string_equal(p, "a/b/c");
	const char *bad[] = { "/abs", "a/../b", "..", "a/./b", "./a", "a/.." };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(p, bad[i]);
		assert_int_equal(fs_path_clean(p), -EINVAL);
	}
	strcpy(p, "...a/..b");
	assert_int_equal(fs_path_clean(p), 0);
	char id1[17], id2[17];
	fs_new_id(id1);
	fs_new_id(id2);
	assert_int_equal(strlen(id1), 16);
	assert_string_not_equal(id1, id2);
	assert_true(strcmp(id1, id2) < 0); /* ids sort by creation */
	unsigned char raw[3] = { 0xde, 0xad, 0x01 }, back[3];
	char hex[7];
	fs_hex_encode(raw, 3, hex);
	assert_string_equal(hex, "dead01");
	assert_int_equal(fs_hex_decode(hex, 6, back), 3);
	assert_memory_equal(raw, back, 3);
	assert_int_equal(fs_hex_decode("zz", 2, back), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_gone),
		cmocka_unit_test(test_corruption), cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
