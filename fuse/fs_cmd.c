/* One implementation of each filesystem command for both transports (see fs_cmd.h).
 * Handlers return 0 with a reply, or a code (project code or -errno) with err filled;
 * fs_cmd_run turns the code into the reply's errno once. */
#include "fuse/fs_cmd.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_util.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*cmd_fn)(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
		      json_t **out, struct st_error *err);

int fs_cmd_errno(int code)
{
	static const struct {
		int code, eno;
	} map[] = { { ST_EINVAL, EINVAL },   { ST_ENOTFOUND, ENOENT }, { ST_EEXIST, EEXIST },
		    { ST_ETYPE, EINVAL },    { ST_EIO, EIO },          { ST_ECORRUPT, EUCLEAN },
		    { ST_ECANCELED, ECANCELED }, { ST_ENOMEM, ENOMEM }, { ST_ELIMIT, ENOSPC },
		    { ST_EBUSY, EBUSY },     { ST_EPROTO, EPROTO },    { ST_EAUTH, EACCES },
		    { ST_ECLOSED, EPIPE },   { ST_ERANGE, ERANGE } };
	if (code < 0 && code > -4096)
		return -code;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].code == code)
			return map[i].eno;
	return code ? EIO : 0;
}

json_t *fs_cmd_fail(int code, const char *msg)
{
	return json_pack("{s:b,s:i,s:s}", "ok", 0, "errno", fs_cmd_errno(code), "error", msg);
}

/* rm -rf permission check for a non-root caller: every directory of the tree must be
 * readable, writable and searchable, and in a sticky directory the caller must own the
 * directory or each entry. Streams directories; runs with the caller's credentials. */
static int check_tree(int dfd, uid_t uid, int depth)
{
	if (depth > 4096)
		return -ELOOP;
	if (faccessat(dfd, ".", R_OK | W_OK | X_OK, AT_EACCESS) != 0)
		return -errno;
	struct stat ds;
	if (fstat(dfd, &ds) != 0)
		return -errno;
	int sticky = (ds.st_mode & S_ISVTX) && ds.st_uid != uid;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return -e;
	}
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		int isdir = de->d_type == DT_DIR;
		if (sticky || de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			if (sticky && st.st_uid != uid)
				rc = -EPERM;
			isdir = S_ISDIR(st.st_mode);
		}
		if (!rc && isdir) {
			int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							  O_CLOEXEC);
			if (cfd < 0) {
				rc = -errno;
				break;
			}
			rc = check_tree(cfd, uid, depth + 1);
			close(cfd);
		}
	}
	closedir(d);
	return rc;
}

/* May caller k remove base (stat st) from directory pfd (stat ps) with everything below? */
static int may_remove(const struct fs_caller *k, int pfd, const char *base,
		      const struct stat *ps, const struct stat *st)
{
	if (k->is_root)
		return 0;
	if (faccessat(pfd, ".", W_OK | X_OK, AT_EACCESS) != 0)
		return -errno;
	if ((ps->st_mode & S_ISVTX) && ps->st_uid != k->uid && st->st_uid != k->uid)
		return -EPERM;
	if (!S_ISDIR(st->st_mode))
		return 0;
	int dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = dfd < 0 ? -errno : check_tree(dfd, k->uid, 0);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

static int is_managed(const char *rel)
{
	size_t first = strcspn(rel, "/");
	return (first == strlen(FS_STATE_DIR) && !strncmp(rel, FS_STATE_DIR, first)) ||
	       (first == strlen(FS_TRASH_NAME) && !strncmp(rel, FS_TRASH_NAME, first));
}

static int cmd_rmr(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
		   json_t **out, struct st_error *err)
{
	const char *path = json_string_value(json_object_get(req, "path"));
	int via_trash = json_is_true(json_object_get(req, "via_trash"));
	if (!path)
		return st_error_set(err, -EINVAL, "rmr: missing path");
	if (!x->rmr || !x->trash)
		return st_error_set(err, -ENOTSUP, "rmr: needs a mounted stratafs");
	char rel[PATH_MAX];
	snprintf(rel, sizeof(rel), "%s", path[0] == '/' ? path + 1 : path);
	if (!rel[strspn(rel, "/.")] && !strstr(rel, ".."))
		return st_error_set(err, -EINVAL, "rmr: refusing to remove the mount root ('%s')",
				    path);
	if (fs_path_clean(rel) != 0 || !rel[0])
		return st_error_set(err, -EINVAL, "rmr: refusing path '%s'", path);
	if (is_managed(rel))
		return st_error_set(err, -EPERM, "rmr: %s is managed by stratafs", path);
	int64_t t0 = st_mono_us();
	char *slash = strrchr(rel, '/');
	const char *base = slash ? slash + 1 : rel;
	if (slash)
		*slash = 0;
	fs_creds_set(k->uid, k->gid, k->ngroups, k->groups);
	int pfd = fs_open_dir_nofollow(x->bfd, slash ? rel : "");
	if (pfd < 0) {
		fs_creds_root();
		return st_error_set(err, pfd, "rmr: /%s: %s", slash ? rel : "", strerror(-pfd));
	}
	if (slash)
		*slash = '/';
	struct stat ps, st;
	int rc = 0;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || fstat(pfd, &ps) != 0)
		rc = -errno;
	else
		rc = may_remove(k, pfd, base, &ps, &st);
	fs_creds_root();
	if (rc) {
		close(pfd);
		return st_error_set(err, rc, "rmr: /%s: %s", rel, strerror(-rc));
	}
	char id[17] = "";
	char opath[PATH_MAX + 1];
	snprintf(opath, sizeof(opath), "/%s", rel);
	if (via_trash) {
		struct fs_trash_put_info info;
		memset(&info, 0, sizeof(info));
		rc = fs_trash_put_tree(x->trash, pfd, base, opath, k->uid, &info);
		if (rc == 0) {
			memcpy(id, info.id, 17);
			if (x->notify)
				x->notify(info.tdir_dev, info.tdir_ino, 1, info.name);
		} else {
			st_error_set(err, rc, "rmr: moving %s to the trash: %s", opath,
				     strerror(-rc));
		}
	} else {
		rc = fs_rmr_enqueue(x->rmr, pfd, base, opath, k->uid, "rmr", id, err);
	}
	close(pfd);
	if (rc)
		return rc;
	if (x->notify)
		x->notify(ps.st_dev, ps.st_ino, 0, base);
	st_info("rmr: %s detached as %s by uid %u (%s)", opath, id, (unsigned)k->uid,
		via_trash ? "to trash" : "reclaiming");
	*out = json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "id", id, "path", opath, "elapsed_us",
			 (json_int_t)(st_mono_us() - t0));
	return 0;
}

static int cmd_rmr_status(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
			  json_t **out, struct st_error *err)
{
	(void)req;
	if (!x->rmr)
		return st_error_set(err, -ENOTSUP, "rmr status: no removal queue");
	struct fs_rmr_status st;
	int rc = fs_rmr_status(x->rmr, k->is_root ? -1 : (int64_t)k->uid, &st);
	if (rc)
		return st_error_set(err, rc, "rmr status: %s", st_strerror(rc));
	json_t *jobs = json_array();
	for (size_t i = 0; i < st.n; i++)
		json_array_append_new(jobs, fs_rmr_job_json(&st.jobs[i]));
	*out = json_pack("{s:b,s:o,s:I,s:I,s:i}", "ok", 1, "jobs", jobs, "files_left",
			 (json_int_t)st.files_left, "bytes_left", (json_int_t)st.bytes_left,
			 "unknown", st.unknown);
	fs_rmr_status_release(&st);
	return 0;
}

static int cmd_trash_list(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
			  json_t **out, struct st_error *err)
{
	json_t *ju = json_object_get(req, "uid");
	int64_t uid = ju ? (int64_t)json_integer_value(ju) : (k->is_root ? -1 : (int64_t)k->uid);
	if (!k->is_root && uid != (int64_t)k->uid)
		return st_error_set(err, -EACCES,
				    "trash list: only root may list other users' trash");
	if (!x->trash)
		return st_error_set(err, -ENOTSUP, "trash list: no trash");
	const char *path = json_string_value(json_object_get(req, "path"));
	int fold = json_is_true(json_object_get(req, "fold"));
	struct fs_trash_list l;
	int rc = fs_trash_list(x->trash, uid, &l, err);
	if (rc)
		return rc;
	if (path && (rc = fs_trash_list_filter(&l, path)) != 0) {
		fs_trash_list_release(&l);
		return st_error_set(err, rc, "trash list: bad path '%s'", path);
	}
	if (fold)
		fs_trash_list_fold(&l);
	json_t *arr = json_array();
	for (size_t i = 0; i < l.n; i++) {
		if (fold && l.v[i].top != i)
			continue;
		json_t *e = fs_trash_entry_json(&l.v[i]);
		if (fold) {
			json_object_set_new(e, "folded", json_integer((json_int_t)l.v[i].folded));
			json_object_set_new(e, "folded_bytes",
					    json_integer((json_int_t)l.v[i].folded_bytes));
		}
		json_array_append_new(arr, e);
	}
	*out = json_pack("{s:b,s:o,s:I,s:I,s:I}", "ok", 1, "entries", arr, "bytes",
			 (json_int_t)l.bytes, "retention_us", (json_int_t)x->trash->retention_us,
			 "objects", (json_int_t)l.n);
	fs_trash_list_release(&l);
	return 0;
}

struct restore_ctx {
	const struct fs_cmd_ctx *x;
	json_t *arr;
};

static void restore_cb(void *arg, const struct fs_trash_rec *rec, const char *dest, int dfd,
		       const char *name, int rc)
{
	struct restore_ctx *r = arg;
	(void)dfd;
	(void)name;
	if (rc == 0 && r->x->restored)
		r->x->restored(dest);
	json_array_append_new(r->arr, json_pack("{s:s,s:s,s:s,s:i,s:s}", "id", rec->id, "path",
						rec->path, "dest", dest, "errno",
						rc ? fs_cmd_errno(rc) : 0, "error",
						rc ? st_strerror(rc) : ""));
}

static int cmd_trash_restore(const struct fs_cmd_ctx *x, const struct fs_caller *k,
			     json_t *req, json_t **out, struct st_error *err)
{
	const char *what = json_string_value(json_object_get(req, "what"));
	const char *to = json_string_value(json_object_get(req, "to"));
	if (!what)
		return st_error_set(err, -EINVAL, "trash restore: missing entry");
	if (!x->trash)
		return st_error_set(err, -ENOTSUP, "trash restore: no trash");
	struct restore_ctx r = { .x = x, .arr = json_array() };
	int flags = json_is_true(json_object_get(req, "overwrite")) ? FS_RESTORE_OVERWRITE : 0;
	int n = fs_trash_restore(x->trash, what, to, flags, k, restore_cb, &r, err);
	fs_creds_root();
	if (n < 0) {
		json_decref(r.arr);
		return n;
	}
	*out = json_pack("{s:b,s:i,s:o}", "ok", 1, "restored", n, "entries", r.arr);
	return 0;
}

static int cmd_trash_purge(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
			   json_t **out, struct st_error *err)
{
	if (!x->trash)
		return st_error_set(err, -ENOTSUP, "trash purge: no trash");
	json_t *jids = json_object_get(req, "ids");
	size_t n = json_array_size(jids);
	const char **ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return st_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		ids[i] = json_string_value(json_array_get(jids, i)) ?: "";
	int64_t older = (int64_t)json_integer_value(json_object_get(req, "older_than_us"));
	int all = json_is_true(json_object_get(req, "all"));
	int rc = fs_trash_purge(x->trash, ids, n, older, k, all, err);
	free(ids);
	if (rc < 0)
		return rc;
	*out = json_pack("{s:b,s:i}", "ok", 1, "purged", rc);
	return 0;
}

static int cmd_info(const struct fs_cmd_ctx *x, int full, json_t **out, struct st_error *err)
{
	if (!x->info)
		return st_error_set(err, -ENOTCONN, "%s: no stratafs serves this backing directory",
				    full ? "status" : "ping");
	*out = x->info(full);
	return 0;
}

static int cmd_ping(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
		    json_t **out, struct st_error *err)
{
	(void)k;
	(void)req;
	return cmd_info(x, 0, out, err);
}

static int cmd_status(const struct fs_cmd_ctx *x, const struct fs_caller *k, json_t *req,
		      json_t **out, struct st_error *err)
{
	(void)k;
	(void)req;
	return cmd_info(x, 1, out, err);
}

static const struct {
	const char *op;
	cmd_fn fn;
} cmds[] = {
	{ "ping", cmd_ping },
	{ "status", cmd_status },
	{ "rmr", cmd_rmr },
	{ "rmr_status", cmd_rmr_status },
	{ "trash_list", cmd_trash_list },
	{ "trash_restore", cmd_trash_restore },
	{ "trash_purge", cmd_trash_purge },
};

json_t *fs_cmd_run(const struct fs_cmd_ctx *ctx, const struct fs_caller *caller, json_t *req)
{
	struct st_error err = { 0 };
	json_t *out = NULL;
	const char *op = json_string_value(json_object_get(req, "op"));
	int rc = st_error_set(&err, -EINVAL, "missing op");
	if (op) {
		rc = st_error_set(&err, -EINVAL, "unknown op '%s'", op);
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (!strcmp(op, cmds[i].op)) {
				st_error_clear(&err);
				rc = cmds[i].fn(ctx, caller, req, &out, &err);
				break;
			}
	}
	fs_creds_root();
	if (rc == 0 && out)
		return out;
	json_decref(out);
	if (rc == 0)
		rc = st_error_set(&err, -ENOMEM, "out of memory");
	return fs_cmd_fail(rc, err.msg[0] ? err.msg : st_strerror(rc));
}
