/* Unit tests: fs_cmd_run, the one implementation of the stratafs commands. The same request
 * goes through the daemon's transport (a socket carrying fs_ctlmsg lines to a thread that
 * runs fs_cmd_run with the live-mount hooks) and the offline one (fs_cmd_run called
 * directly, no hooks), and the replies must be identical; errors carry errno values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse/fs_cmd.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_util.h"

static char root[256];
static int bfd;
static struct fs_rmr rmr;
static struct fs_trash trash;
static int notified, restored;
static const struct fs_caller root_caller = { .uid = 0, .gid = 0, .ngroups = -1, .is_root = 1 };
static const struct fs_caller user_caller = { .uid = 4242, .gid = 4242, .ngroups = -1 };

static void hook_notify(dev_t dev, ino_t ino, int view, const char *name)
{
	(void)dev;
	(void)ino;
	(void)view;
	(void)name;
	notified++;
}

static void hook_restored(const char *dest)
{
	(void)dest;
	restored++;
}

static json_t *hook_info(int full)
{
	return json_pack("{s:b,s:i}", "ok", 1, "full", full);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_fs_cmd.XXXXXX");
	assert_non_null(mkdtemp(root));
	bfd = open(root, O_RDONLY | O_DIRECTORY);
	struct st_error err;
	assert_int_equal(fs_rmr_open(&rmr, bfd, 2, 0, &err), 0);
	assert_int_equal(fs_trash_open(&trash, bfd, 3600LL * 1000000, &rmr, &err), 0);
	notified = restored = 0;
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

struct served {
	int fd;
	const struct fs_caller *caller;
};

/* The daemon side of one connection, as fs_ctl.c does it. */
static void *serve(void *arg)
{
	struct served *s = arg;
	const struct fs_cmd_ctx ctx = { .bfd = bfd, .trash = &trash, .rmr = &rmr,
					.notify = hook_notify, .restored = hook_restored,
					.info = hook_info };
	struct st_error err = { 0 };
	json_t *req = fs_ctl_recv(s->fd, &err);
	json_t *res = req ? fs_cmd_run(&ctx, s->caller, req) : fs_cmd_fail(err.code, err.msg);
	fs_ctl_send(s->fd, res);
	json_decref(res);
	json_decref(req);
	return NULL;
}

static json_t *via_daemon(const struct fs_caller *c, const char *req_text)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct served s = { .fd = sv[1], .caller = c };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, serve, &s), 0);
	json_t *req = json_loads(req_text, 0, NULL);
	assert_non_null(req);
	assert_int_equal(fs_ctl_send(sv[0], req), 0);
	json_decref(req);
	struct st_error err = { 0 };
	json_t *res = fs_ctl_recv(sv[0], &err);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	assert_non_null(res);
	return res;
}

static json_t *offline(const struct fs_caller *c, const char *req_text)
{
	const struct fs_cmd_ctx ctx = { .bfd = bfd, .trash = &trash, .rmr = &rmr };
	json_t *req = json_loads(req_text, 0, NULL);
	assert_non_null(req);
	json_t *res = fs_cmd_run(&ctx, c, req);
	json_decref(req);
	assert_non_null(res);
	return res;
}

/* Runs req_text both ways; the replies must be equal. Returns the daemon's reply. */
static json_t *both(const struct fs_caller *c, const char *req_text)
{
	json_t *a = via_daemon(c, req_text), *b = offline(c, req_text);
	if (!json_equal(a, b)) {
		char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT);
		fail_msg("%s: daemon %s, offline %s", req_text, sa, sb);
	}
	json_decref(b);
	return a;
}

static int reply_errno(json_t *r)
{
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_true(*json_string_value(json_object_get(r, "error")));
	return (int)json_integer_value(json_object_get(r, "errno"));
}

static void put_file(const char *rel, const char *content)
{
	int fd = openat(bfd, rel, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (int)strlen(content));
	close(fd);
}

static void trash_file(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "/%s", name);
	assert_int_equal(fs_trash_put(&trash, bfd, name, path, 0, NULL), 0);
}

static void test_list_and_status_identical(void **state)
{
	(void)state;
	put_file("a.txt", "alpha");
	put_file("b.txt", "bravo!");
	trash_file("a.txt");
	trash_file("b.txt");
	json_t *r = both(&root_caller, "{\"op\":\"trash_list\"}");
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "bytes")), 11);
	assert_int_equal(json_integer_value(json_object_get(r, "retention_us")),
			 3600LL * 1000000);
	json_decref(r);
	/* a user sees its own (empty) trash, and may not list root's */
	r = both(&user_caller, "{\"op\":\"trash_list\"}");
	assert_int_equal(json_array_size(json_object_get(r, "entries")), 0);
	json_decref(r);
	r = both(&user_caller, "{\"op\":\"trash_list\",\"uid\":0}");
	assert_int_equal(reply_errno(r), EACCES);
	json_decref(r);
	r = both(&root_caller, "{\"op\":\"rmr_status\"}");
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_array_size(json_object_get(r, "jobs")), 0);
	json_decref(r);
}

static void test_errors_become_errno(void **state)
{
	(void)state;
	json_t *r = both(&root_caller, "{\"op\":\"nope\"}");
	assert_int_equal(reply_errno(r), EINVAL);
	json_decref(r);
	r = both(&root_caller, "{\"path\":\"x\"}");
	assert_int_equal(reply_errno(r), EINVAL);
	json_decref(r);
	/* a project code (ST_ENOTFOUND from the trash) arrives as ENOENT, not 0 */
	r = both(&root_caller, "{\"op\":\"trash_restore\",\"what\":\"0123456789abcdef\"}");
	assert_int_equal(reply_errno(r), ENOENT);
	json_decref(r);
	r = both(&root_caller, "{\"op\":\"rmr\",\"path\":\"/.strata/x\"}");
	assert_int_equal(reply_errno(r), EPERM);
	json_decref(r);
	r = both(&root_caller, "{\"op\":\"rmr\",\"path\":\"/../etc\"}");
	assert_int_equal(reply_errno(r), EINVAL);
	json_decref(r);
	r = both(&root_caller, "{\"op\":\"rmr\",\"path\":\"/missing/x\"}");
	assert_int_equal(reply_errno(r), ENOENT);
	json_decref(r);
	/* ping/status need a live mount: offline says so, the daemon answers */
	r = offline(&root_caller, "{\"op\":\"status\"}");
	assert_int_equal(reply_errno(r), ENOTCONN);
	json_decref(r);
	r = via_daemon(&root_caller, "{\"op\":\"status\"}");
	assert_int_equal(json_integer_value(json_object_get(r, "full")), 1);
	json_decref(r);
	assert_int_equal(fs_cmd_errno(ST_EIO), EIO);
	assert_int_equal(fs_cmd_errno(-ENOSPC), ENOSPC);
	assert_int_equal(fs_cmd_errno(0), 0);
	assert_int_equal(fs_cmd_errno(-99999), EIO);
}

/* Mutating commands: the daemon path on one copy, the offline path on an identical copy. */
static void test_restore_purge_rmr(void **state)
{
	(void)state;
	put_file("r1", "one");
	put_file("r2", "two");
	trash_file("r1");
	trash_file("r2");
	json_t *a = via_daemon(&root_caller, "{\"op\":\"trash_restore\",\"what\":\"/r1\"}");
	assert_int_equal(json_integer_value(json_object_get(a, "restored")), 1);
	assert_int_equal(restored, 1);
	struct stat st;
	assert_int_equal(fstatat(bfd, "r1", &st, 0), 0);
	/* restoring over an existing name is refused with EEXIST */
	trash_file("r1");
	put_file("r1", "new");
	json_t *b = both(&root_caller, "{\"op\":\"trash_restore\",\"what\":\"/r1\"}");
	assert_int_equal(reply_errno(b), EEXIST);
	assert_int_equal(restored, 1);
	json_decref(a);
	json_decref(b);
	a = offline(&root_caller, "{\"op\":\"trash_purge\",\"ids\":[],\"all\":true}");
	assert_true(json_is_true(json_object_get(a, "ok")));
	assert_int_equal(json_integer_value(json_object_get(a, "purged")), 2);
	json_decref(a);
	/* rmr detaches a tree; the daemon path tells the kernel */
	assert_int_equal(mkdirat(bfd, "tree", 0755), 0);
	put_file("tree/f", "x");
	a = via_daemon(&root_caller, "{\"op\":\"rmr\",\"path\":\"/tree\"}");
	assert_true(json_is_true(json_object_get(a, "ok")));
	assert_int_equal(strlen(json_string_value(json_object_get(a, "id"))), 16);
	assert_true(notified >= 1);
	assert_int_not_equal(fstatat(bfd, "tree", &st, 0), 0);
	json_decref(a);
	a = both(&root_caller, "{\"op\":\"rmr_status\"}");
	assert_true(json_is_true(json_object_get(a, "ok")));
	json_decref(a);
	/* a user cannot remove root's tree */
	assert_int_equal(mkdirat(bfd, "t2", 0755), 0);
	a = both(&user_caller, "{\"op\":\"rmr\",\"path\":\"/t2\"}");
	assert_int_equal(reply_errno(a), EACCES);
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_and_status_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_become_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_purge_rmr, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
