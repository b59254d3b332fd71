/* Unit tests: the trash library on a plain directory — put, list, restore (tree, parents,
 * conflicts, escapes), purge and expiry. */
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
#include <sys/xattr.h>
#include <unistd.h>

#include "common/st_time.h"
#include "fuse/fs_rmr.h"
#include "fuse/fs_trash.h"
#include "fuse/fs_util.h"

static char root[256];
static int bfd;
static struct fs_rmr rmr;
static struct fs_trash trash;
static const struct fs_caller root_caller = { .uid = 0, .gid = 0, .ngroups = -1, .is_root = 1 };

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_fs_trash.XXXXXX");
	assert_non_null(mkdtemp(root));
	bfd = open(root, O_RDONLY | O_DIRECTORY);
	struct st_error err;
	assert_int_equal(fs_rmr_open(&rmr, bfd, 2, 0, &err), 0);
	assert_int_equal(fs_trash_open(&trash, bfd, 3600LL * 1000000, &rmr, &err), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fs_trash_close(&trash);
	fs_rmr_close(&rmr);
	close(bfd);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) != 0;
}

static void put_file(const char *rel, const char *content, mode_t mode)
{
	int fd = openat(bfd, rel, O_CREAT | O_WRONLY | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (int)strlen(content));
	fchmod(fd, mode);
	close(fd);
}

static char *get_file(const char *rel)
{
	static char buf[256];
	int fd = openat(bfd, rel, O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

static int exists(const char *rel)
{
	struct stat st;
	return fstatat(bfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Deletes rel (dir fd of its parent + name) through the trash. */
static int del(const char *rel)
{
	char parent[256];
	snprintf(parent, sizeof(parent), "%s", rel);
	char *s = strrchr(parent, '/');
	const char *name = s ? s + 1 : rel;
	if (s)
		*s = 0;
	int dfd = s ? openat(bfd, parent, O_RDONLY | O_DIRECTORY) : dup(bfd);
	assert_true(dfd >= 0);
	char path[300];
	snprintf(path, sizeof(path), "/%s", rel);
	int rc = fs_trash_put(&trash, dfd, name, path, 0, NULL);
	close(dfd);
	return rc;
}

static size_t live_count(int64_t uid)
{
	struct fs_trash_list l;
	assert_int_equal(fs_trash_list(&trash, uid, &l, NULL), 0);
	size_t n = l.n;
	fs_trash_list_release(&l);
	return n;
}

static void test_put_list_restore_file(void **state)
{
	(void)state;
	assert_int_equal(mkdirat(bfd, "a", 0750), 0);
	put_file("a/f.txt", "hello", 0640);
	char xp[300];
	snprintf(xp, sizeof(xp), "%s/a/f.txt", root);
	int have_xattr = setxattr(xp, "user.note", "\x00\x01zz", 4, 0) == 0;
	struct stat before;
	assert_int_equal(fstatat(bfd, "a/f.txt", &before, 0), 0);
	assert_int_equal(del("a/f.txt"), 0);
	assert_false(exists("a/f.txt"));
	struct fs_trash_list l;
	assert_int_equal(fs_trash_list(&trash, -1, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].rec.path, "/a/f.txt");
	assert_string_equal(l.v[0].rec.parent, "/a");
	assert_int_equal(l.v[0].rec.mode & 07777, 0640);
	assert_true(l.v[0].present);
	assert_true(l.bytes == 5);
	if (have_xattr) {
		assert_int_equal(l.v[0].rec.nxattr, 1);
		assert_memory_equal(l.v[0].rec.xattrs[0].value, "\x00\x01zz", 4);
	}
	char id[17];
	memcpy(id, l.v[0].rec.id, 17);
	fs_trash_list_release(&l);
	/* the uid root is private */
	struct stat us;
	assert_int_equal(fstatat(bfd, ".strata/trash/0", &us, 0), 0);
	assert_int_equal(us.st_mode & 07777, 0700);
	assert_true(fs_trash_restore(&trash, id, NULL, 0, &root_caller, NULL, NULL, NULL) == 1);
	assert_string_equal(get_file("a/f.txt"), "hello");
	struct stat after;
	assert_int_equal(fstatat(bfd, "a/f.txt", &after, 0), 0);
	assert_true(after.st_ino == before.st_ino);
	assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	assert_int_equal(live_count(-1), 0);
	/* a second restore of the same id finds nothing */
	struct st_error err;
	assert_int_equal(fs_trash_restore(&trash, id, NULL, 0, &root_caller, NULL, NULL, &err),
			 ST_ENOTFOUND);
}

static void test_tree_and_parents(void **state)
{
	(void)state;
	/* rm -rf order: files, then directories bottom-up */
	assert_int_equal(mkdirat(bfd, "p", 0755), 0);
	assert_int_equal(mkdirat(bfd, "p/q", 0711), 0);
	put_file("p/q/one", "1", 0600);
	put_file("p/two", "2", 0644);
	struct timespec old[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
	assert_int_equal(del("p/q/one"), 0);
	utimensat(bfd, "p/q", old, 0); /* as rm -rf leaves it, just before its rmdir */
	assert_int_equal(del("p/two"), 0);
	assert_int_equal(del("p"), -ENOTEMPTY); /* q is still in it */
	assert_int_equal(del("p/q"), 0);
	assert_int_equal(del("p"), 0);
	assert_false(exists("p"));
	assert_int_equal(live_count(0), 4);
	/* restore by path brings the whole tree back with its metadata */
	int n = fs_trash_restore(&trash, "/p", NULL, 0, &root_caller, NULL, NULL, NULL);
	assert_int_equal(n, 1); /* children came along inside the directory */
	assert_string_equal(get_file("p/q/one"), "1");
	assert_string_equal(get_file("p/two"), "2");
	struct stat st;
	assert_int_equal(fstatat(bfd, "p/q", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_true(st.st_mtim.tv_sec == 1000000000);
	assert_int_equal(live_count(0), 0);
	/* restore of a file whose parents are gone recreates them from their records */
	assert_int_equal(del("p/q/one"), 0);
	utimensat(bfd, "p/q", old, 0);
	assert_int_equal(del("p/q"), 0);
	assert_int_equal(del("p/two"), 0);
	assert_int_equal(del("p"), 0);
	assert_false(exists("p"));
	assert_int_equal(fs_trash_restore(&trash, "p/q/one", NULL, 0, &root_caller, NULL, NULL,
					  NULL), 1);
	assert_string_equal(get_file("p/q/one"), "1");
	assert_int_equal(fstatat(bfd, "p/q", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0711); /* recreated from q's record */
	assert_true(st.st_mtim.tv_sec == 1000000000);
	assert_true(fs_trash_restore(&trash, "p/q/one", "x/y/one", 0, &root_caller, NULL, NULL,
				     NULL) < 0);
	n = fs_trash_restore(&trash, "/p/two", "/deep/er/two", 0, &root_caller, NULL, NULL, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(fstatat(bfd, "deep/er", &st, 0), 0);
	assert_string_equal(get_file("deep/er/two"), "2");
}

static void test_conflicts_and_escapes(void **state)
{
	(void)state;
	put_file("c", "old", 0644);
	assert_int_equal(del("c"), 0);
	put_file("c", "new", 0644);
	struct st_error err;
	/* never overwrites unless asked */
	assert_int_equal(fs_trash_restore(&trash, "/c", NULL, 0, &root_caller, NULL, NULL, &err),
			 -EEXIST);
	assert_string_equal(get_file("c"), "new");
	/* asked: what was in the way goes to the trash, nothing is destroyed */
	assert_int_equal(fs_trash_restore(&trash, "/c", NULL, FS_RESTORE_OVERWRITE, &root_caller,
					  NULL, NULL, &err), 1);
	assert_string_equal(get_file("c"), "old");
	assert_int_equal(live_count(0), 1);
	assert_int_equal(fs_trash_restore(&trash, "/c", "c2", 0, &root_caller, NULL, NULL, &err),
			 1);
	assert_string_equal(get_file("c2"), "new");
	/* the same name deleted twice in one bucket: both kept */
	put_file("twice", "A", 0644);
	assert_int_equal(del("twice"), 0);
	put_file("twice", "B", 0644);
	assert_int_equal(del("twice"), 0);
	assert_int_equal(live_count(0), 2);
	assert_int_equal(fs_trash_restore(&trash, "twice", NULL, 0, &root_caller, NULL, NULL, &err),
			 1);
	assert_string_equal(get_file("twice"), "B"); /* newest first */
	assert_int_equal(fs_trash_restore(&trash, "twice", "twice.old", 0, &root_caller, NULL, NULL,
					  &err), 1);
	assert_string_equal(get_file("twice.old"), "A");
	/* escapes */
	put_file("e", "e", 0644);
	assert_int_equal(del("e"), 0);
	const char *bad[] = { "../outside", "a/../../x", ".strata/trash/x", ".trash/y", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(fs_trash_restore(&trash, "/e", bad[i], 0, &root_caller, NULL, NULL,
					     &err) < 0);
	/* a symlink on the way to the destination is not followed */
	char out[300];
	snprintf(out, sizeof(out), "%s.out", root);
	mkdir(out, 0755);
	assert_int_equal(symlinkat(out, bfd, "sl"), 0);
	assert_int_equal(fs_trash_restore(&trash, "/e", "sl/e", 0, &root_caller, NULL, NULL, &err),
			 -ENOTDIR);
	char chk[400];
	snprintf(chk, sizeof(chk), "%s/e", out);
	struct stat st;
	assert_int_not_equal(stat(chk, &st), 0);
	rmdir(out);
	/* a non-root caller cannot touch root's entries */
	struct fs_caller user = { .uid = 65534, .gid = 65534, .ngroups = 0, .is_root = 0 };
	assert_int_equal(fs_trash_restore(&trash, "/e", NULL, 0, &user, NULL, NULL, &err),
			 ST_ENOTFOUND);
	struct fs_trash_list l;
	assert_int_equal(fs_trash_list(&trash, 0, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	const char *id = l.v[0].rec.id;
	assert_int_equal(fs_trash_purge(&trash, &id, 1, 0, &user, 0, &err), ST_ENOTFOUND);
	assert_int_equal(fs_trash_purge(&trash, &id, 1, 0, &root_caller, 0, &err), 1);
	fs_trash_list_release(&l);
	assert_int_equal(live_count(0), 0);
	assert_int_equal(fs_rmr_drain(&rmr, NULL, NULL), 0);
}

static void test_purge_and_expire(void **state)
{
	(void)state;
	assert_int_equal(mkdirat(bfd, "t", 0755), 0);
	for (int i = 0; i < 20; i++) {
		char p[32];
		snprintf(p, sizeof(p), "t/f%d", i);
		put_file(p, "x", 0644);
		assert_int_equal(del(p), 0);
	}
	assert_int_equal(del("t"), 0);
	assert_int_equal(live_count(0), 21);
	struct st_error err;
	/* nothing is older than an hour */
	assert_int_equal(fs_trash_purge(&trash, NULL, 0, 3600LL * 1000000, &root_caller, 0, &err),
			 0);
	/* expiry: the bucket's last deletion is now, so only a clock an hour ahead drops it.
	 * The margin of a minute keeps a slow machine's clock steps out of the answer. */
	int64_t now = st_now_us();
	assert_int_equal(fs_trash_expire(&trash, now, &err), 0);
	assert_int_equal(live_count(0), 21);
	int n = fs_trash_expire(&trash, now + 3660LL * 1000000, &err);
	/* two buckets when the deletions straddled a bucket boundary (150 s wide here) */
	if (n != 1 && n != 2)
		fail_msg("expire dropped %d bucket(s), not 1: %s", n, n < 0 ? err.msg : "");
	assert_int_equal(live_count(0), 0);
	assert_int_equal(fs_rmr_drain(&rmr, NULL, NULL), 0);
	/* purge of everything */
	put_file("z", "z", 0644);
	assert_int_equal(del("z"), 0);
	assert_int_equal(fs_trash_purge(&trash, NULL, 0, 0, &root_caller, 0, &err), 1);
	assert_int_equal(live_count(0), 0);
	assert_int_equal(fs_rmr_drain(&rmr, NULL, NULL), 0);
}

/* A list built by hand: path, type, owner, deletion time, size. */
static void add(struct fs_trash_list *l, const char *path, char type, uint32_t uid, int64_t t,
		int64_t size)
{
	l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	assert_non_null(l->v);
	struct fs_trash_entry *e = &l->v[l->n++];
	memset(e, 0, sizeof(*e));
	e->rec.path = strdup(path);
	e->rec.type = type;
	e->rec.uid = uid;
	e->rec.dtime_us = t;
	e->rec.size = size;
	e->present = 1;
	snprintf(e->rec.id, sizeof(e->rec.id), "%016llx", (unsigned long long)l->n);
	l->bytes += size;
}

static size_t find(const struct fs_trash_list *l, const char *path, int64_t t)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].rec.path, path) && l->v[i].rec.dtime_us == t)
			return i;
	fail_msg("%s@%lld not listed", path, (long long)t);
	return 0;
}

/* rm -rf folds bottom-up deletions under the outermost directory deleted after them; an
 * object deleted after its ancestor, another owner's, or a sibling prefix ("/ab" vs "/a")
 * stays on its own; a directory deleted twice takes what was deleted before each time. */
static void test_list_fold_filter(void **state)
{
	(void)state;
	struct fs_trash_list l = { 0 };
	add(&l, "/a/x", 'f', 0, 5, 10);      /* deleted long before rm -rf /a: folds too */
	add(&l, "/a/b/c/f", 'f', 0, 10, 1);
	add(&l, "/a/b/c", 'd', 0, 11, 0);
	add(&l, "/a/b/n", 'f', 7, 11, 4);    /* nobody's file in root's tree: nobody's entry */
	add(&l, "/a/b", 'd', 0, 12, 0);
	add(&l, "/a/g", 'f', 0, 12, 3);
	add(&l, "/a", 'd', 0, 13, 0);
	add(&l, "/ab/y", 'f', 0, 13, 2);     /* "/a" is not its ancestor */
	add(&l, "/a/late", 'f', 0, 20, 6);   /* after /a went: a later /a was made */
	add(&l, "/a", 'd', 0, 21, 0);        /* the second /a */
	add(&l, "/z", 'f', 0, 22, 8);
	fs_trash_list_fold(&l);
	size_t a1 = find(&l, "/a", 13), a2 = find(&l, "/a", 21);
	assert_int_equal(l.v[find(&l, "/a/x", 5)].top, a1);
	assert_int_equal(l.v[find(&l, "/a/b/c/f", 10)].top, a1);
	assert_int_equal(l.v[find(&l, "/a/b/c", 11)].top, a1);
	assert_int_equal(l.v[find(&l, "/a/b", 12)].top, a1);
	assert_int_equal(l.v[find(&l, "/a/g", 12)].top, a1);
	assert_int_equal(l.v[a1].top, a1);
	assert_int_equal(l.v[a1].folded, 5);
	assert_int_equal(l.v[a1].folded_bytes, 14);
	size_t n = find(&l, "/a/b/n", 11), y = find(&l, "/ab/y", 13), z = find(&l, "/z", 22);
	assert_int_equal(l.v[n].top, n);
	assert_int_equal(l.v[y].top, y);
	assert_int_equal(l.v[z].top, z);
	assert_int_equal(l.v[find(&l, "/a/late", 20)].top, a2);
	assert_int_equal(l.v[a2].folded, 1);
	assert_int_equal(l.v[a2].folded_bytes, 6);

	/* filter: at or below the path, whole components only; bytes recounted */
	assert_int_equal(fs_trash_list_filter(&l, "/a/../etc"), ST_EINVAL);
	assert_int_equal(fs_trash_list_filter(&l, "/"), 0);
	assert_int_equal(l.n, 11);
	assert_int_equal(fs_trash_list_filter(&l, "a/b/"), 0);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.bytes, 5);
	fs_trash_list_fold(&l);
	size_t b = find(&l, "/a/b", 12);
	assert_int_equal(l.v[b].folded, 2); /* c/f and c; n is nobody's */
	assert_int_equal(fs_trash_list_filter(&l, "/a/b/c/f"), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(fs_trash_list_filter(&l, "/a/b/c/f/none"), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(l.bytes, 0);
	fs_trash_list_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_list_restore_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_and_parents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflicts_and_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_and_expire, setup, teardown),
		cmocka_unit_test(test_list_fold_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
