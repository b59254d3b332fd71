/* Unit tests: rmr job records, queueing, reclaim to empty, recovery of a tree whose job
 * record was lost, and a reclaim stopped midway then resumed. */
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

#include "fuse/fs_rmr.h"
#include "fuse/fs_util.h"

static char root[256];
static int bfd;

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_fs_rmr.XXXXXX");
	assert_non_null(mkdtemp(root));
	bfd = open(root, O_RDONLY | O_DIRECTORY);
	return bfd < 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	close(bfd);
	return system(cmd) != 0;
}

/* Builds dir/name with `dirs` subdirectories of `files` files each, plus one deep chain. */
static void make_tree(const char *name, int dirs, int files)
{
	assert_int_equal(mkdirat(bfd, name, 0755), 0);
	char p[512];
	for (int d = 0; d < dirs; d++) {
		snprintf(p, sizeof(p), "%s/d%d", name, d);
		assert_int_equal(mkdirat(bfd, p, 0755), 0);
		for (int f = 0; f < files; f++) {
			snprintf(p, sizeof(p), "%s/d%d/f%d", name, d, f);
			int fd = openat(bfd, p, O_CREAT | O_WRONLY, 0644);
			assert_true(fd >= 0);
			assert_int_equal(write(fd, "0123456789", 10), 10);
			close(fd);
		}
	}
	snprintf(p, sizeof(p), "%s/deep", name);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(mkdirat(bfd, p, 0700), 0);
		strcat(p, "/x");
	}
	snprintf(p, sizeof(p), "%s/link", name);
	assert_int_equal(symlinkat("/etc/passwd", bfd, p), 0); /* must not be followed */
}

static int exists(const char *rel)
{
	struct stat st;
	return fstatat(bfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static size_t count_rmr_entries(void)
{
	size_t n = 0;
	int fd = openat(bfd, ".strata/rmr", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "ls -A %s/.strata/rmr | wc -l", root);
	FILE *f = popen(cmd, "r");
	assert_int_equal(fscanf(f, "%zu", &n), 1);
	pclose(f);
	close(fd);
	return n;
}

static void test_job_codec(void **state)
{
	(void)state;
	struct fs_rmr_jobinfo j = { .uid = 1234, .queued_us = 42, .files_done = 7,
				    .bytes_done = 4096 }, d;
	memcpy(j.id, "0123456789abcdef", 17);
	j.path = (char *)"/a \"b\"/c";
	snprintf(j.kind, sizeof(j.kind), "rmr");
	char *s = fs_rmr_job_encode(&j);
	assert_non_null(s);
	assert_int_equal(fs_rmr_job_parse(s, strlen(s), &d), 0);
	assert_string_equal(d.id, j.id);
	assert_string_equal(d.path, j.path);
	assert_int_equal(d.uid, 1234);
	assert_true(d.files_done == 7 && d.bytes_done == 4096 && d.queued_us == 42);
	assert_int_equal(d.state, FS_RMR_QUEUED);
	assert_true(d.files_total == -1);
	free(d.path);
	free(s);
	assert_int_equal(fs_rmr_job_parse("{\"id\":\"x\"}", 10, &d), ST_EINVAL);
	assert_int_equal(fs_rmr_job_parse("not json", 8, &d), ST_EINVAL);
	assert_string_equal(fs_rmr_state_name(FS_RMR_DELETING), "deleting");
}

static void test_enqueue_and_drain(void **state)
{
	(void)state;
	struct fs_rmr r;
	struct st_error err;
	assert_int_equal(fs_rmr_open(&r, bfd, 3, 0, &err), 0);
	make_tree("victim", 20, 30);
	make_tree("keep", 2, 2);
	int fd = openat(bfd, "single", O_CREAT | O_WRONLY, 0600);
	close(fd);
	char id[17];
	assert_int_equal(fs_rmr_enqueue(&r, bfd, "victim", "/victim", 0, "rmr", id, &err), 0);
	assert_int_equal(fs_rmr_enqueue(&r, bfd, "single", "/single", 0, "rmr", NULL, &err), 0);
	assert_false(exists("victim"));
	/* missing source: nothing queued */
	assert_int_not_equal(fs_rmr_enqueue(&r, bfd, "nope", "/nope", 0, "rmr", NULL, &err), 0);
	struct fs_rmr_status st;
	assert_int_equal(fs_rmr_status(&r, -1, &st), 0);
	assert_int_equal(st.n, 2);
	assert_string_equal(st.jobs[0].id, id);
	assert_string_equal(st.jobs[0].path, "/victim");
	assert_int_equal(st.unknown, 2);
	fs_rmr_status_release(&st);
	assert_int_equal(fs_rmr_status(&r, 99, &st), 0); /* other owner sees nothing */
	assert_int_equal(st.n, 0);
	fs_rmr_status_release(&st);
	assert_int_equal(fs_rmr_drain(&r, NULL, NULL), 0);
	assert_int_equal(count_rmr_entries(), 0);
	assert_true(exists("keep/d1/f1"));
	assert_true(exists("keep/deep/x/x"));
	fs_rmr_close(&r);
	struct stat sb;
	assert_int_equal(stat("/etc/passwd", &sb), 0);
}

static void test_recover_tree_without_job(void **state)
{
	(void)state;
	struct fs_rmr r;
	struct st_error err;
	assert_int_equal(fs_rmr_open(&r, bfd, 1, 0, &err), 0);
	make_tree("orphan", 3, 3);
	/* a crash after the rename but before the job record reached the disk */
	assert_int_equal(renameat(bfd, "orphan", bfd, ".strata/rmr/00000000000000aa.tree"), 0);
	struct fs_rmr_status st;
	assert_int_equal(fs_rmr_status(&r, -1, &st), 0);
	assert_int_equal(st.n, 1);
	assert_string_equal(st.jobs[0].kind, "recovered");
	fs_rmr_status_release(&st);
	assert_int_equal(fs_rmr_drain(&r, NULL, NULL), 0);
	assert_int_equal(count_rmr_entries(), 0);
	fs_rmr_close(&r);
}

static int progress_calls;
static void on_progress(void *arg, const struct fs_rmr_jobinfo *j)
{
	(void)arg;
	assert_true(j->files_done >= 0);
	progress_calls++;
}

static void test_stop_and_resume(void **state)
{
	(void)state;
	struct fs_rmr r;
	struct st_error err;
	/* rate-limited so that the stop lands midway */
	assert_int_equal(fs_rmr_open(&r, bfd, 2, 400, &err), 0);
	make_tree("slow", 10, 100);
	assert_int_equal(fs_rmr_enqueue(&r, bfd, "slow", "/slow", 0, "rmr", NULL, &err), 0);
	assert_int_equal(fs_rmr_start(&r), 0);
	usleep(1500000);
	fs_rmr_stop(&r);
	struct fs_rmr_status st;
	assert_int_equal(fs_rmr_status(&r, -1, &st), 0);
	assert_int_equal(st.n, 1);
	assert_true(st.jobs[0].files_done > 0);     /* progress was persisted */
	assert_true(st.jobs[0].files_done < 1061);  /* and it was not finished */
	fs_rmr_status_release(&st);
	fs_rmr_close(&r);
	/* "remount": a new reclaimer, unlimited, finishes the job */
	assert_int_equal(fs_rmr_open(&r, bfd, 2, 0, &err), 0);
	progress_calls = 0;
	assert_int_equal(fs_rmr_drain(&r, on_progress, NULL), 0);
	assert_int_equal(count_rmr_entries(), 0);
	fs_rmr_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_codec),
		cmocka_unit_test_setup_teardown(test_enqueue_and_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_tree_without_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_and_resume, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
