/* Control server of a live stratafs: rmr, rmr status, trash list/restore/purge for
 * strata-admin, with the caller identified by SO_PEERCRED and acting with its own
 * credentials where permissions matter. One thread per connection. */
#include "fuse/fs_chan.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_daemon.h"
#include "fuse/fs_util.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct caller {
	struct fs_caller c;
	gid_t groups[256];
	pid_t pid;
};

static json_t *fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *fail(int code, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:i,s:s}", "ok", 0, "errno", code < 0 && code > -4096 ? -code : 0,
			 "error", msg);
}

static void as_peer(const struct caller *k)
{
	fs_creds_set(k->c.uid, k->c.gid, k->c.ngroups, k->c.groups);
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

static json_t *do_rmr(const struct caller *k, json_t *req)
{
	const char *path = json_string_value(json_object_get(req, "path"));
	int via_trash = json_is_true(json_object_get(req, "via_trash"));
	if (!path)
		return fail(-EINVAL, "rmr: missing path");
	char rel[PATH_MAX];
	snprintf(rel, sizeof(rel), "%s", path[0] == '/' ? path + 1 : path);
	if (fs_path_clean(rel) != 0 || !rel[0])
		return fail(-EINVAL, "rmr: refusing path '%s'", path);
	size_t first = strcspn(rel, "/");
	if ((first == strlen(FS_STATE_DIR) && !strncmp(rel, FS_STATE_DIR, first)) ||
	    (first == strlen(FS_TRASH_NAME) && !strncmp(rel, FS_TRASH_NAME, first)))
		return fail(-EPERM, "rmr: %s is managed by stratafs", path);
	int64_t t0 = st_mono_us();
	char *slash = strrchr(rel, '/');
	const char *base = slash ? slash + 1 : rel;
	if (slash)
		*slash = 0;
	as_peer(k);
	int pfd = fs_open_dir_nofollow(fs_g->bfd, slash ? rel : "");
	json_t *res = NULL;
	if (pfd < 0) {
		fs_creds_root();
		return fail(pfd, "rmr: /%s: %s", slash ? rel : "", strerror(-pfd));
	}
	if (slash)
		*slash = '/';
	struct stat ps, st;
	int rc = 0;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || fstat(pfd, &ps) != 0)
		rc = -errno;
	else if (!k->c.is_root) {
		if (faccessat(pfd, ".", W_OK | X_OK, AT_EACCESS) != 0)
			rc = -errno;
		else if ((ps.st_mode & S_ISVTX) && ps.st_uid != k->c.uid && st.st_uid != k->c.uid)
			rc = -EPERM;
		else if (S_ISDIR(st.st_mode)) {
			int dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = dfd < 0 ? -errno : check_tree(dfd, k->c.uid, 0);
			if (dfd >= 0)
				close(dfd);
		}
	}
	fs_creds_root();
	if (rc) {
		close(pfd);
		return fail(rc, "rmr: /%s: %s", rel, strerror(-rc));
	}
	char id[17] = "";
	struct st_error err = { 0 };
	char opath[PATH_MAX + 1];
	snprintf(opath, sizeof(opath), "/%s", rel);
	if (via_trash) {
		struct fs_trash_put_info info;
		memset(&info, 0, sizeof(info));
		rc = fs_trash_put_tree(&fs_g->trash, pfd, base, opath, k->c.uid, &info);
		if (rc == 0) {
			memcpy(id, info.id, 17);
			fs_notify_entry(info.tdir_dev, info.tdir_ino, FS_VIEW_TRASH, info.name, 1);
		} else {
			st_error_set(&err, rc, "rmr: moving %s to the trash: %s", opath,
				     strerror(-rc));
		}
	} else {
		rc = fs_rmr_enqueue(&fs_g->rmr, pfd, base, opath, k->c.uid, "rmr", id, &err);
	}
	close(pfd);
	if (rc)
		return fail(rc, "%s", err.msg);
	fs_notify_entry(ps.st_dev, ps.st_ino, FS_VIEW_LIVE, base, 1);
	st_info("rmr: %s detached as %s by uid %u (%s)", opath, id, (unsigned)k->c.uid,
		via_trash ? "to trash" : "reclaiming");
	res = json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "id", id, "path", opath, "elapsed_us",
			(json_int_t)(st_mono_us() - t0));
	return res;
}

static json_t *do_rmr_status(const struct caller *k)
{
	struct fs_rmr_status st;
	int rc = fs_rmr_status(&fs_g->rmr, k->c.is_root ? -1 : (int64_t)k->c.uid, &st);
	if (rc)
		return fail(rc, "rmr status: %s", strerror(-rc));
	json_t *jobs = json_array();
	for (size_t i = 0; i < st.n; i++)
		json_array_append_new(jobs, fs_rmr_job_json(&st.jobs[i]));
	json_t *res = json_pack("{s:b,s:o,s:I,s:I,s:i}", "ok", 1, "jobs", jobs, "files_left",
				(json_int_t)st.files_left, "bytes_left", (json_int_t)st.bytes_left,
				"unknown", st.unknown);
	fs_rmr_status_release(&st);
	return res;
}

static json_t *do_trash_list(const struct caller *k, json_t *req)
{
	json_t *ju = json_object_get(req, "uid");
	int64_t uid = ju ? (int64_t)json_integer_value(ju) : (k->c.is_root ? -1 : (int64_t)k->c.uid);
	if (!k->c.is_root && uid != (int64_t)k->c.uid)
		return fail(-EACCES, "trash list: only root may list other users' trash");
	struct fs_trash_list l;
	struct st_error err = { 0 };
	if (fs_trash_list(&fs_g->trash, uid, &l, &err) != 0)
		return fail(err.code, "%s", err.msg);
	json_t *arr = json_array();
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(arr, fs_trash_entry_json(&l.v[i]));
	json_t *res = json_pack("{s:b,s:o,s:I,s:I}", "ok", 1, "entries", arr, "bytes",
				(json_int_t)l.bytes, "retention_us",
				(json_int_t)fs_g->trash.retention_us);
	fs_trash_list_release(&l);
	return res;
}

struct restore_ctx {
	json_t *arr;
};

/* Invalidates every component of dest (parents may have been recreated behind the
 * kernel's back, over cached negative entries). */
static void invalidate_path(const char *dest)
{
	int fd = fcntl(fs_g->bfd, F_DUPFD_CLOEXEC, 0);
	const char *p = dest;
	while (fd >= 0 && *p) {
		const char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		char comp[NAME_MAX + 1];
		if (n == 0 || n > NAME_MAX)
			break;
		memcpy(comp, p, n);
		comp[n] = 0;
		struct stat st;
		if (fstat(fd, &st) == 0)
			fs_notify_entry(st.st_dev, st.st_ino, FS_VIEW_LIVE, comp, 1);
		int nfd = s ? openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
		close(fd);
		fd = nfd;
		p = s ? s + 1 : p + n;
	}
	if (fd >= 0)
		close(fd);
}

static void restore_cb(void *arg, const struct fs_trash_rec *rec, const char *dest, int dfd,
		       const char *name, int rc)
{
	struct restore_ctx *rc_ = arg;
	(void)dfd;
	(void)name;
	if (rc == 0)
		invalidate_path(dest);
	json_array_append_new(rc_->arr, json_pack("{s:s,s:s,s:s,s:i,s:s}", "id", rec->id, "path",
						  rec->path, "dest", dest, "errno",
						  rc < 0 && rc > -4096 ? -rc : 0, "error",
						  rc ? st_strerror(rc) : ""));
}

static json_t *do_trash_restore(const struct caller *k, json_t *req)
{
	const char *what = json_string_value(json_object_get(req, "what"));
	const char *to = json_string_value(json_object_get(req, "to"));
	if (!what)
		return fail(-EINVAL, "trash restore: missing entry");
	struct restore_ctx ctx = { .arr = json_array() };
	struct st_error err = { 0 };
	int flags = json_is_true(json_object_get(req, "overwrite")) ? FS_RESTORE_OVERWRITE : 0;
	int n = fs_trash_restore(&fs_g->trash, what, to, flags, &k->c, restore_cb, &ctx, &err);
	fs_creds_root();
	if (n < 0) {
		json_decref(ctx.arr);
		return fail(n, "%s", err.msg);
	}
	return json_pack("{s:b,s:i,s:o}", "ok", 1, "restored", n, "entries", ctx.arr);
}

static json_t *do_trash_purge(const struct caller *k, json_t *req)
{
	json_t *jids = json_object_get(req, "ids");
	size_t n = json_array_size(jids);
	const char **ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		ids[i] = json_string_value(json_array_get(jids, i)) ?: "";
	int64_t older = (int64_t)json_integer_value(json_object_get(req, "older_than_us"));
	int all = json_is_true(json_object_get(req, "all"));
	struct st_error err = { 0 };
	int rc = fs_trash_purge(&fs_g->trash, ids, n, older, &k->c, all, &err);
	free(ids);
	if (rc < 0)
		return fail(rc, "%s", err.msg);
	return json_pack("{s:b,s:i}", "ok", 1, "purged", rc);
}

/* What the mount runs with and how many requests the kernel sent it (linux/fuse.h
 * opcodes of the requests worth watching: passthrough makes READ and WRITE disappear). */
static json_t *do_status(void)
{
	static const struct {
		const char *name;
		unsigned op;
	} ops[] = { { "lookup", 1 },   { "getattr", 3 }, { "setattr", 4 }, { "open", 14 },
		    { "read", FS_CHAN_OP_READ }, { "write", FS_CHAN_OP_WRITE }, { "release", 18 },
		    { "getxattr", 22 }, { "create", 35 }, { "unlink", 10 },
		    { "readdirplus", 44 } };
	json_t *req = json_object();
	json_object_set_new(req, "total", json_integer((json_int_t)fs_chan_count(FS_CHAN_OPS)));
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		json_object_set_new(req, ops[i].name,
				    json_integer((json_int_t)fs_chan_count(ops[i].op)));
	return json_pack("{s:b,s:s,s:s,s:i,s:b,s:b,s:b,s:f,s:o}", "ok", 1, "backing",
			 fs_g->backing, "mount", fs_g->mnt, "pid", (int)getpid(), "passthrough",
			 fs_chan_passthrough(), "kernel_passthrough", fs_chan_passthrough_offered(),
			 "writeback_cache", fs_g->writeback, "attr_timeout", fs_g->attr_timeout,
			 "requests", req);
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct caller k;
	memset(&k, 0, sizeof(k));
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	json_t *res = NULL, *req = NULL;
	struct st_error err = { 0 };
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0) {
		res = fail(-errno, "cannot identify the caller");
		goto reply;
	}
	k.c.uid = uc.uid;
	k.c.gid = uc.gid;
	k.c.is_root = uc.uid == 0;
	k.pid = uc.pid;
	int ng = fs_proc_groups(uc.pid, k.groups, 256);
	if (ng < 0) {
		k.groups[0] = uc.gid;
		ng = 1;
	}
	k.c.ngroups = ng;
	k.c.groups = k.groups;
	req = fs_ctl_recv(fd, &err);
	if (!req) {
		res = fail(err.code, "%s", err.msg);
		goto reply;
	}
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!op)
		res = fail(-EINVAL, "missing op");
	else if (!strcmp(op, "ping"))
		res = json_pack("{s:b,s:s,s:s,s:i}", "ok", 1, "backing", fs_g->backing, "mount",
				fs_g->mnt, "pid", (int)getpid());
	else if (!strcmp(op, "status"))
		res = do_status();
	else if (!strcmp(op, "rmr"))
		res = do_rmr(&k, req);
	else if (!strcmp(op, "rmr_status"))
		res = do_rmr_status(&k);
	else if (!strcmp(op, "trash_list"))
		res = do_trash_list(&k, req);
	else if (!strcmp(op, "trash_restore"))
		res = do_trash_restore(&k, req);
	else if (!strcmp(op, "trash_purge"))
		res = do_trash_purge(&k, req);
	else
		res = fail(-EINVAL, "unknown op '%s'", op);
reply:
	fs_creds_root();
	if (res)
		fs_ctl_send(fd, res);
	json_decref(res);
	json_decref(req);
	close(fd);
	pthread_mutex_lock(&fs_g->ctl_lock);
	fs_g->ctl_active--;
	pthread_cond_broadcast(&fs_g->ctl_cond);
	pthread_mutex_unlock(&fs_g->ctl_lock);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fs_state *s = arg;
	struct pollfd p[2] = { { .fd = s->ctl_fd, .events = POLLIN },
			       { .fd = s->ctl_wake[0], .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
				st_warn("ctl: accept: %s", strerror(errno));
				usleep(100000); /* e.g. out of fds: do not spin */
			}
			continue;
		}
		pthread_mutex_lock(&s->ctl_lock);
		s->ctl_active++;
		pthread_mutex_unlock(&s->ctl_lock);
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, conn_main, (void *)(intptr_t)fd) != 0) {
			close(fd);
			pthread_mutex_lock(&s->ctl_lock);
			s->ctl_active--;
			pthread_mutex_unlock(&s->ctl_lock);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int fs_ctl_start(struct fs_state *s)
{
	pthread_mutex_init(&s->ctl_lock, NULL);
	pthread_cond_init(&s->ctl_cond, NULL);
	if (pipe2(s->ctl_wake, O_CLOEXEC) != 0)
		return -errno;
	int e = pthread_create(&s->ctl_thread, NULL, accept_main, s);
	if (e)
		return -e;
	s->ctl_running = 1;
	return 0;
}

void fs_ctl_stop(struct fs_state *s)
{
	if (!s->ctl_running)
		return;
	if (write(s->ctl_wake[1], "x", 1) != 1)
		st_warn("ctl: cannot wake the accept thread");
	pthread_join(s->ctl_thread, NULL);
	pthread_mutex_lock(&s->ctl_lock);
	while (s->ctl_active)
		pthread_cond_wait(&s->ctl_cond, &s->ctl_lock);
	pthread_mutex_unlock(&s->ctl_lock);
	close(s->ctl_wake[0]);
	close(s->ctl_wake[1]);
	s->ctl_running = 0;
}
