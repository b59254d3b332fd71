/* strata-admin rmr PATH | rmr status | rmr drain: asynchronous removal of directory trees
 * through a live mount, its progress, and offline reclaim of a backing directory's queue. */
#include "tools/admin.h"
#include "fuse/fs_cmd.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_rmr.h"
#include "common/st_progress.h"
#include "common/st_time.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* PATH (absolute or relative to the cwd) relative to the mount root of t, with the last
 * component kept as given (a symlink is removed, not followed). */
static int rel_in_mount(const struct admin_target *t, const char *path, char *out, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX], rd[PATH_MAX];
	if (realpath(path, rd) && !strcmp(rd, t->mnt)) {
		fprintf(stderr, "strata-admin: refusing to remove %s: it is the root of the "
				"stratafs mount %s (remove what is inside it instead)\n", path, t->mnt);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s", path);
	size_t l = strlen(tmp);
	while (l > 1 && tmp[l - 1] == '/')
		tmp[--l] = 0;
	char *slash = strrchr(tmp, '/');
	const char *base = slash ? slash + 1 : tmp;
	if (!strcmp(base, ".") || !strcmp(base, "..") || !*base) {
		fprintf(stderr, "strata-admin: refusing to remove '%s'\n", path);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - tmp) : 1, slash ? tmp : ".");
	if (slash == tmp)
		snprintf(dir, sizeof(dir), "/");
	if (!realpath(dir, rd)) {
		fprintf(stderr, "strata-admin: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	size_t ml = strlen(t->mnt);
	if (strncmp(rd, t->mnt, ml) || (rd[ml] != '/' && rd[ml])) {
		fprintf(stderr, "strata-admin: %s is not inside %s\n", path, t->mnt);
		return -1;
	}
	snprintf(out, len, "%s/%s", rd + ml, base);
	return 0;
}

static int cmd_rmr(const char *path, int via_trash, int json)
{
	struct admin_target t;
	if (admin_target_resolve(NULL, NULL, path, &t))
		return 1;
	char rel[PATH_MAX * 2];
	if (rel_in_mount(&t, path, rel, sizeof(rel)))
		return 1;
	int64_t t0 = st_mono_us();
	json_t *req = json_pack("{s:s,s:s,s:b}", "op", "rmr", "path", rel, "via_trash", via_trash);
	int e = 0;
	json_t *resp = admin_call(&t, req, &e);
	json_decref(req);
	if (!resp)
		return 1;
	double secs = (st_mono_us() - t0) / 1e6;
	if (json) {
		json_object_set_new(resp, "seconds", json_real(secs));
		json_dumpf(resp, stdout, JSON_COMPACT);
		printf("\n");
	} else {
		printf("%s: removed from the namespace in %.3fs; %s (id %s)\n", path, secs,
		       via_trash ? "kept in the trash as one entry" : "reclaiming in the background",
		       json_string_value(json_object_get(resp, "id")));
	}
	json_decref(resp);
	return 0;
}

static json_t *status_offline(const struct admin_target *t)
{
	int bfd = open(t->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0) {
		fprintf(stderr, "strata-admin: %s: %s\n", t->backing, strerror(errno));
		return NULL;
	}
	struct fs_rmr r;
	struct st_error err = { 0 };
	if (fs_rmr_open(&r, bfd, 1, 0, &err)) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		close(bfd);
		return NULL;
	}
	struct fs_caller c = { .uid = getuid(), .gid = getgid(), .ngroups = -1,
			       .is_root = getuid() == 0 };
	const struct fs_cmd_ctx ctx = { .bfd = bfd, .rmr = &r };
	json_t *req = json_pack("{s:s}", "op", "rmr_status");
	json_t *res = fs_cmd_run(&ctx, &c, req);
	json_decref(req);
	if (!json_is_true(json_object_get(res, "ok"))) {
		fprintf(stderr, "strata-admin: %s\n",
			json_string_value(json_object_get(res, "error")));
		json_decref(res);
		res = NULL;
	}
	fs_rmr_close(&r);
	close(bfd);
	return res;
}

static json_t *status_get(const struct admin_target *t)
{
	if (!t->live)
		return status_offline(t);
	json_t *req = json_pack("{s:s}", "op", "rmr_status");
	json_t *resp = admin_call(t, req, NULL);
	json_decref(req);
	return resp;
}

static void print_status(json_t *resp)
{
	json_t *jobs = json_object_get(resp, "jobs"), *j;
	size_t i;
	if (!json_array_size(jobs)) {
		printf("no removals pending\n");
		return;
	}
	printf("%-16s  %-8s  %-8s  %21s  %21s  %10s  %s\n", "ID", "KIND", "STATE", "FILES DONE/TOTAL",
	       "BYTES DONE/TOTAL", "RATE", "PATH");
	json_array_foreach(jobs, i, j) {
		char fd[48], bd[48], b1[32], b2[32];
		int64_t ft = (int64_t)json_integer_value(json_object_get(j, "files_total"));
		int64_t bt = (int64_t)json_integer_value(json_object_get(j, "bytes_total"));
		int64_t fdn = (int64_t)json_integer_value(json_object_get(j, "files_done"));
		int64_t bdn = (int64_t)json_integer_value(json_object_get(j, "bytes_done"));
		if (ft >= 0)
			snprintf(fd, sizeof(fd), "%lld/%lld", (long long)fdn, (long long)ft);
		else
			snprintf(fd, sizeof(fd), "%lld/?", (long long)fdn);
		snprintf(bd, sizeof(bd), "%s/%s", admin_bytes(bdn, b1),
			 bt >= 0 ? admin_bytes(bt, b2) : "?");
		printf("%-16s  %-8s  %-8s  %21s  %21s  %8.0f/s  %s%s%s\n",
		       json_string_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "kind")),
		       json_string_value(json_object_get(j, "state")), fd, bd,
		       json_real_value(json_object_get(j, "rate_files")),
		       json_string_value(json_object_get(j, "path")),
		       *json_string_value(json_object_get(j, "error")) ? "  error: " : "",
		       json_string_value(json_object_get(j, "error")));
	}
	char b[32];
	printf("left: %lld files, %s%s\n", (long long)json_integer_value(json_object_get(resp, "files_left")),
	       admin_bytes(json_integer_value(json_object_get(resp, "bytes_left")), b),
	       json_integer_value(json_object_get(resp, "unknown")) ? " (+ jobs not scanned yet)" : "");
}

/* What --wait has seen of each job: a job that leaves the queue has finished, so its
 * total counts as done even if the last poll saw it midway. */
struct seen_job {
	char id[17];
	int64_t files_done, bytes_done, files_total, bytes_total;
	int live;
};

struct seen {
	struct seen_job *v;
	size_t n, cap;
};

static struct seen_job *seen_get(struct seen *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].id, id))
			return &s->v[i];
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct seen_job *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		s->v = v;
		s->cap = cap;
	}
	struct seen_job *j = &s->v[s->n++];
	memset(j, 0, sizeof(*j));
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->files_total = j->bytes_total = -1;
	return j;
}

/* Folds one status reply into s; sums done (finished jobs at their totals) and the total
 * (-1 while a live job is not counted yet). */
static void seen_update(struct seen *s, json_t *resp, int64_t *done, int64_t *total,
			int64_t *bytes)
{
	json_t *j;
	size_t i;
	for (i = 0; i < s->n; i++)
		s->v[i].live = 0;
	json_array_foreach(json_object_get(resp, "jobs"), i, j) {
		struct seen_job *sj = seen_get(s, json_string_value(json_object_get(j, "id")) ?: "?");
		if (!sj)
			continue;
		sj->live = 1;
		sj->files_done = (int64_t)json_integer_value(json_object_get(j, "files_done"));
		sj->bytes_done = (int64_t)json_integer_value(json_object_get(j, "bytes_done"));
		sj->files_total = (int64_t)json_integer_value(json_object_get(j, "files_total"));
		sj->bytes_total = (int64_t)json_integer_value(json_object_get(j, "bytes_total"));
	}
	int64_t tot = 0;
	int unknown = 0;
	*done = *bytes = 0;
	for (i = 0; i < s->n; i++) {
		struct seen_job *sj = &s->v[i];
		if (!sj->live && sj->files_total >= 0) { /* finished between two polls */
			sj->files_done = sj->files_total;
			sj->bytes_done = sj->bytes_total > 0 ? sj->bytes_total : sj->bytes_done;
		}
		*done += sj->files_done;
		*bytes += sj->bytes_done;
		if (sj->files_total >= 0)
			tot += sj->files_total;
		else if (sj->live)
			unknown = 1;
		else
			tot += sj->files_done; /* finished before it was seen counted */
	}
	*total = unknown ? -1 : tot;
}

/* "5.0 MiB, 2.0 MiB/s": st_progress shows the files and their rate */
static const char *bytes_note(int64_t bytes, double secs, char *buf, size_t len)
{
	char b1[32], b2[32];
	snprintf(buf, len, "%s, %s/s", admin_bytes(bytes, b1),
		 admin_bytes(secs > 0 ? (int64_t)((double)bytes / secs) : 0, b2));
	return buf;
}

static int cmd_status(const struct admin_target *t, int json, int wait)
{
	if (!wait) {
		json_t *resp = status_get(t);
		if (!resp)
			return 1;
		if (json) {
			json_dumpf(resp, stdout, JSON_COMPACT);
			printf("\n");
		} else {
			print_status(resp);
		}
		json_decref(resp);
		return 0;
	}
	struct st_progress p;
	st_progress_init(&p, stdout, json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO, "rmr");
	struct seen sn = { 0 };
	int64_t done = 0, total = 0, bytes = 0, t0 = st_mono_us();
	char note[160];
	int rc = -1;
	while (rc < 0) {
		json_t *resp = status_get(t);
		if (!resp) {
			rc = 1;
			break;
		}
		size_t n = json_array_size(json_object_get(resp, "jobs"));
		int failed = 0;
		json_t *j;
		size_t i;
		json_array_foreach(json_object_get(resp, "jobs"), i, j)
			failed += !strcmp(json_string_value(json_object_get(j, "state")), "failed");
		seen_update(&sn, resp, &done, &total, &bytes);
		json_decref(resp);
		double secs = (st_mono_us() - t0) / 1e6;
		bytes_note(bytes, secs, note, sizeof(note));
		if (!n || failed == (int)n) {
			st_progress_finish(&p, done, "files", n ? "failed" : "done", note);
			rc = n ? 1 : 0;
		} else {
			st_progress_update(&p, done, total, "files", note, 0);
			usleep(200000);
		}
	}
	free(sn.v);
	return rc;
}

static struct st_progress drain_p;

static void drain_progress(void *arg, const struct fs_rmr_jobinfo *j)
{
	(void)arg;
	char bb[32];
	st_progress_update(&drain_p, j->files_done, j->files_total, "files",
			   admin_bytes(j->bytes_done, bb), 0);
}

static int cmd_drain(const struct admin_target *t, int json)
{
	if (t->live) {
		fprintf(stderr, "strata-admin: %s is mounted; its stratafs reclaims the queue\n",
			t->backing);
		return 1;
	}
	int bfd = open(t->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0) {
		fprintf(stderr, "strata-admin: %s: %s\n", t->backing, strerror(errno));
		return 1;
	}
	struct fs_rmr r;
	struct st_error err = { 0 };
	if (fs_rmr_open(&r, bfd, 2, 0, &err)) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		close(bfd);
		return 1;
	}
	st_progress_init(&drain_p, stdout, json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO,
			 "rmr drain");
	int left = fs_rmr_drain(&r, drain_progress, NULL);
	char note[32];
	snprintf(note, sizeof(note), "%d job(s) left", left);
	st_progress_finish(&drain_p, 0, "files", left ? "failed" : "done", note);
	fs_rmr_close(&r);
	close(bfd);
	if (left)
		fprintf(stderr, "strata-admin: %d job(s) could not be finished\n", left);
	return left ? 1 : 0;
}

int admin_rmr(int argc, char **argv)
{
	const char *mount = NULL, *backing = NULL;
	int json = 0, via_trash = 0, wait = 0;
	static const struct option lo[] = {
		{ "mount", required_argument, 0, 'm' }, { "backing", required_argument, 0, 'b' },
		{ "json", no_argument, 0, 'j' },        { "via-trash", no_argument, 0, 't' },
		{ "wait", no_argument, 0, 'w' },        { 0, 0, 0, 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mount = optarg; break;
		case 'b': backing = optarg; break;
		case 'j': json = 1; break;
		case 't': via_trash = 1; break;
		case 'w': wait = 1; break;
		default: return 2;
		}
	}
	char **rest = argv + optind;
	int nrest = argc - optind;
	if (nrest < 1) {
		fprintf(stderr, "usage: strata-admin rmr [--via-trash] PATH | rmr status | rmr drain\n");
		return 2;
	}
	struct admin_target t;
	if (!strcmp(rest[0], "status") && nrest == 1) {
		if (admin_target_resolve(mount, backing, NULL, &t))
			return 1;
		return cmd_status(&t, json, wait);
	}
	if (!strcmp(rest[0], "drain") && nrest == 1) {
		if (!backing) {
			fprintf(stderr, "strata-admin: rmr drain needs --backing DIR\n");
			return 2;
		}
		if (admin_target_resolve(NULL, backing, NULL, &t))
			return 1;
		return cmd_drain(&t, json);
	}
	int rc = 0;
	for (int i = 0; i < nrest; i++)
		rc |= cmd_rmr(rest[i], via_trash, json);
	return rc;
}
