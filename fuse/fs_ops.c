/* FUSE low-level operations of stratafs: a passthrough over the backing tree with caller
 * credentials, a read-only .trash view, and deletes turned into moves into the trash.
 * Every request is answered exactly once; errors are negative errno inside, positive at
 * fuse_reply_err. */
#include "fuse/fs_chan.h"
#include "fuse/fs_daemon.h"
#include "fuse/fs_util.h"
#include "common/st_err.h"
#include "common/st_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- credentials: switched lazily per worker thread ------------------------------- */

static __thread uid_t t_uid;
static __thread gid_t t_gid;
static __thread int t_full; /* supplementary groups of the caller loaded */
/* umask: each worker thread unshares its fs_struct (CLONE_FS) on its first create, so the
 * caller's umask can be set for that thread alone; t_umask is its current value. */
static __thread int t_fs_private;
static __thread mode_t t_umask;
static mode_t g_umask; /* the daemon's own umask, restored after each create */

/* Creates below run with the umask the kernel sent (FUSE_CAP_DONT_MASK: the kernel left
 * the mode alone), so the backing filesystem applies it, or a default ACL instead, exactly
 * as it does for a local process. */
static int caller_umask(fuse_req_t req)
{
	mode_t m = fuse_req_ctx(req)->umask & 0777;
	if (!t_fs_private) {
		if (unshare(CLONE_FS) != 0)
			return -errno;
		t_fs_private = 1;
		t_umask = g_umask;
	}
	if (m != t_umask) {
		umask(m);
		t_umask = m;
	}
	return 0;
}

/* Back to the daemon's umask at the end of a request (trash directories and logs are
 * created with it). */
static void umask_restore(void)
{
	if (t_fs_private && t_umask != g_umask) {
		umask(g_umask);
		t_umask = g_umask;
	}
}

static void as_root(void)
{
	if (t_uid || t_gid || t_full) {
		fs_creds_root();
		t_uid = 0;
		t_gid = 0;
		t_full = 0;
	}
}

static void as_caller(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->uid == 0) {
		as_root();
		return;
	}
	if (c->uid == t_uid && c->gid == t_gid && !t_full)
		return;
	gid_t g = c->gid;
	fs_creds_set(c->uid, c->gid, 1, &g);
	t_uid = c->uid;
	t_gid = c->gid;
	t_full = 0;
}

/* After EACCES/EPERM as the caller: load the caller's supplementary groups and say
 * whether a retry is worth it. */
static int caller_groups(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->uid == 0 || t_full)
		return 0;
	gid_t g[256];
	int n = fuse_req_getgroups(req, 256, g);
	if (n <= 0)
		return 0;
	if (n > 256)
		n = 256;
	fs_creds_set(c->uid, c->gid, n, g);
	t_uid = c->uid;
	t_gid = c->gid;
	t_full = 1;
	return 1;
}

/* Runs expr (an int expression, < 0 with errno on failure) as the caller, retrying once
 * with the caller's supplementary groups on a permission error. With full set, the
 * groups are loaded first: for calls whose result, not only their success, depends on
 * them (see sgid_needs_groups). */
#define AS_CALLER_G(req, res, expr, full)                                                \
	do {                                                                             \
		as_caller(req);                                                          \
		if (full)                                                                \
			caller_groups(req);                                              \
		res = (expr);                                                            \
		if (res < 0 && (errno == EACCES || errno == EPERM) && caller_groups(req)) \
			res = (expr);                                                    \
	} while (0)
#define AS_CALLER(req, res, expr) AS_CALLER_G(req, res, expr, 0)

/* The mode of an inode's backing file (0 when it cannot be read: then nothing depends
 * on it here). */
static mode_t backing_mode(struct fs_inode *in)
{
	struct stat st;
	return fstatat(fs_fd(in), "", &st, AT_EMPTY_PATH) == 0 ? st.st_mode : 0;
}

/* The backing filesystem drops setgid without an error when the caller is not in the
 * group: from a chmod's new mode, from a file created with it in a setgid directory
 * (mode_strip_sgid), on a chown, a truncate or an ACL change (setattr_should_drop_sgid).
 * The kernel has already applied that rule with the caller's real groups; run as the
 * caller with its primary group only, a member through a supplementary group would lose
 * the bit. So a non-root call that sets setgid or changes a setgid file (mode: the new
 * or the current mode; in: a file whose current mode is read, or NULL) runs with all
 * the caller's groups from the start. */
static int sgid_needs_groups(fuse_req_t req, mode_t mode, struct fs_inode *in)
{
	if (fuse_req_ctx(req)->uid == 0)
		return 0;
	if (mode & S_ISGID)
		return 1;
	return in && (backing_mode(in) & S_ISGID);
}

/* ---- helpers ---------------------------------------------------------------------- */

static int is_root_dir(struct fs_inode *in)
{
	return in == &fs_g->root;
}

static int is_trash_root(struct fs_inode *in)
{
	return in->view == FS_VIEW_TRASH && in->dev == fs_g->trash_dev &&
	       in->ino == fs_g->trash_ino;
}

/* Names that cannot be created, removed or renamed in the mount root. */
static int reserved(struct fs_inode *dir, const char *name)
{
	return is_root_dir(dir) && (!strcmp(name, FS_STATE_DIR) || !strcmp(name, FS_TRASH_NAME));
}

static double tmo(struct fs_inode *in)
{
	return in->view == FS_VIEW_TRASH ? 0 : fs_g->attr_timeout;
}

static int dot(const char *n);

/* Name of the child (dev, ino) in directory pfd, malloc'ed, or NULL. */
static char *child_name(int pfd, dev_t dev, ino_t ino)
{
	int dup = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		return NULL;
	}
	char *name = NULL;
	struct dirent *de;
	struct stat st;
	while (!name && (de = readdir(d)))
		if (de->d_ino == ino && !dot(de->d_name) &&
		    fstatat(pfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev &&
		    st.st_ino == ino)
			name = strdup(de->d_name);
	closedir(d);
	return name;
}

/* Path of directory dirfd below the backing root ("" or "/a/b"), malloc'ed, found by
 * walking up "..": for directories deeper than the kernel can name (PATH_MAX). */
static int walk_up(int dirfd, char **out)
{
	struct stat cur;
	if (fstat(dirfd, &cur) != 0)
		return -errno;
	if (cur.st_nlink == 0)
		return -ENOENT; /* removed while open */
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	char *acc = strdup("");
	size_t len = 0;
	int rc = fd < 0 ? -errno : acc ? 0 : -ENOMEM;
	while (rc == 0 && !(cur.st_dev == fs_g->root.dev && cur.st_ino == fs_g->root.ino)) {
		struct stat ps;
		int pfd = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || fstat(pfd, &ps) != 0 ||
		    (ps.st_dev == cur.st_dev && ps.st_ino == cur.st_ino)) {
			rc = pfd < 0 ? -errno : -ENOENT; /* reached / without the backing root */
			if (pfd >= 0)
				close(pfd);
			break;
		}
		char *name = child_name(pfd, cur.st_dev, cur.st_ino);
		char *n = name ? malloc(len + strlen(name) + 2) : NULL;
		if (!n) {
			rc = name ? -ENOMEM : -ENOENT;
			free(name);
			close(pfd);
			break;
		}
		len = (size_t)sprintf(n, "/%s%s", name, acc);
		free(name);
		free(acc);
		acc = n;
		close(fd);
		fd = pfd;
		cur = ps;
	}
	if (fd >= 0)
		close(fd);
	if (rc == 0) {
		*out = acc;
		return 0;
	}
	free(acc);
	return rc;
}

int fs_mount_path(int dirfd, const char *name, char **out)
{
	char p[32], buf[PATH_MAX];
	char *rel = NULL, *heap = NULL;
	ssize_t n = readlink(fs_fd_path(dirfd, p), buf, sizeof(buf) - 1);
	if (n >= 0 && n < (ssize_t)sizeof(buf) - 1) {
		buf[n] = 0;
		if (n >= 10 && !strcmp(buf + n - 10, " (deleted)"))
			return -ENOENT;
		size_t bl = strlen(fs_g->backing);
		if (strncmp(buf, fs_g->backing, bl) != 0 || (buf[bl] != '/' && buf[bl] != 0))
			return -ENOENT;
		rel = buf + bl; /* "" or "/a/b" */
	} else if (n >= 0 || errno == ENAMETOOLONG) {
		int rc = walk_up(dirfd, &heap);
		if (rc)
			return rc;
		rel = heap;
	} else {
		return -errno;
	}
	size_t sl = strlen(FS_STATE_DIR);
	int rc = 0;
	if (rel[0] == '/' && !strncmp(rel + 1, FS_STATE_DIR, sl) &&
	    (rel[sl + 1] == '/' || rel[sl + 1] == 0))
		rc = -ENOENT;
	else if (!(*out = malloc(strlen(rel) + strlen(name) + 2)))
		rc = -ENOMEM;
	else
		sprintf(*out, "%s/%s", rel, name);
	free(heap);
	return rc;
}

/* nlink as the user's namespace has it: links held by the trash (fs_tlinks_get) are not
 * counted. Only objects with several links, or of which this daemon trashed a name, can
 * have one, so other objects cost nothing. fd: an fd of the object. */
static void user_nlink(struct fs_inode *in, int fd, struct stat *st)
{
	if (in->view != FS_VIEW_LIVE || S_ISDIR(st->st_mode) ||
	    (st->st_nlink < 2 && !__atomic_load_n(&in->trashed, __ATOMIC_RELAXED)))
		return;
	int n = fs_tlinks_get(fd, "");
	if (n > 0)
		st->st_nlink = st->st_nlink > (nlink_t)n ? st->st_nlink - (nlink_t)n : 0;
}

static int stat_inode(struct fs_inode *in, struct stat *st)
{
	int fd = fs_fd(in);
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	user_nlink(in, fd, st);
	if (fs_g->jn)
		fs_jn_stat(fs_g->jn, st);
	return 0;
}

static int do_lookup(fuse_req_t req, struct fs_inode *dir, const char *name,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = e->entry_timeout = tmo(dir);
	int view = dir->view, fd;
	if (is_root_dir(dir) && !strcmp(name, FS_STATE_DIR))
		return -ENOENT;
	if (is_root_dir(dir) && !strcmp(name, FS_TRASH_NAME)) {
		fd = openat(fs_g->bfd, FS_STATE_DIR "/trash", O_PATH | O_NOFOLLOW | O_CLOEXEC);
		view = FS_VIEW_TRASH;
		e->attr_timeout = e->entry_timeout = 0;
	} else {
		if (is_trash_root(dir)) {
			const struct fuse_ctx *c = fuse_req_ctx(req);
			char u[24];
			snprintf(u, sizeof(u), "%u", (unsigned)c->uid);
			if (c->uid != 0 && strcmp(name, u) != 0)
				return -ENOENT;
		}
		fd = openat(fs_fd(dir), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	struct fs_inode *in = fs_itable_get(&fs_g->itab, fd, &e->attr, view);
	if (!in)
		return -ENOMEM;
	user_nlink(in, fs_fd(in), &e->attr);
	if (fs_g->jn)
		fs_jn_stat(fs_g->jn, &e->attr);
	e->ino = fs_ino_id(in);
	return 0;
}

static void reply_entry_or_err(fuse_req_t req, struct fs_inode *dir, const char *name)
{
	struct fuse_entry_param e;
	int rc = do_lookup(req, dir, name, &e);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

/* ---- operations ------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	if (fs_g->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	g_umask = umask(022);
	umask(g_umask);
	conn->max_write = 1u << 20;
	conn->max_readahead = FS_READAHEAD_KB * 1024;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *dir = fs_ino(parent);
	struct fuse_entry_param e;
	int rc = do_lookup(req, dir, name, &e);
	if (rc == -ENOENT && dir->view == FS_VIEW_LIVE && fs_g->attr_timeout > 0 &&
	    !is_root_dir(dir)) {
		/* negative entry, cached like positive ones (restores invalidate it) */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs_g->attr_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_itable_unref(&fs_g->itab, fs_ino(ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		fs_itable_unref(&fs_g->itab, fs_ino(f[i].ino), f[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	struct stat st;
	int rc;
	if (fi) {
		rc = fstat((int)fi->fh, &st) == 0 ? 0 : -errno;
		if (rc == 0)
			user_nlink(in, (int)fi->fh, &st);
		if (rc == 0 && fs_g->jn)
			fs_jn_stat(fs_g->jn, &st);
	} else {
		rc = stat_inode(in, &st);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, tmo(in));
}

/* True when mode only removes setuid/setgid bits that in has. */
static int kills_suid(struct fs_inode *in, mode_t mode)
{
	struct stat st;
	if (stat_inode(in, &st) != 0)
		return 0;
	mode_t old = st.st_mode & 07777, m = mode & 07777, cleared = old & ~m;
	return cleared && !(cleared & ~(mode_t)(S_ISUID | S_ISGID)) && !(m & ~old);
}

/* Is the caller in group g (its primary or a supplementary group)? */
static int caller_in_group(fuse_req_t req, gid_t g)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->gid == g)
		return 1;
	gid_t v[256];
	int n = fuse_req_getgroups(req, 256, v);
	for (int i = 0; i < n && i < 256; i++)
		if (v[i] == g)
			return 1;
	return 0;
}

/* FUSE_HANDLE_KILLPRIV_V2: the kernel asks the daemon to remove setuid/setgid after a
 * write, fallocate or truncating open by a caller without CAP_FSETID. The rule is the
 * kernel's own (setattr_should_drop_suidgid): setuid always; setgid when the file is
 * group-executable or the caller is not in its group (uid 0 counts as in every group).
 * Done as the daemon: the kernel has decided, as a local filesystem would. fd: an open
 * file of in, or -1. Returns 1 when the mode changed, 0, or -errno. */
static int kill_suidgid(fuse_req_t req, struct fs_inode *in, int fd)
{
	struct stat st;
	char p[32];
	int pfd = fd >= 0 ? fd : fs_fd(in);
	if (fstat(pfd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || !(st.st_mode & (S_ISUID | S_ISGID)))
		return 0;
	mode_t m = st.st_mode & 07777 & ~(mode_t)S_ISUID;
	if ((m & S_ISGID) && ((m & S_IXGRP) ||
			      (fuse_req_ctx(req)->uid != 0 && !caller_in_group(req, st.st_gid))))
		m &= ~(mode_t)S_ISGID;
	if (m == (st.st_mode & 07777))
		return 0;
	int rc = fd >= 0 ? fchmod(fd, m) : chmod(fs_fd_path(pfd, p), m);
	return rc == 0 ? 1 : -errno;
}

/* A truncate of a file through the journal (fs_jn_truncate: the record, durable, then the
 * cut of the capacity file as the caller) on fd, open for writing. 0 or -errno. */
static int journal_cut(fuse_req_t req, struct fs_inode *in, int fd, off_t size)
{
	int rc = fs_jn_truncate(fs_g->jn, in->dev, in->ino, (uint64_t)size);
	if (rc < 0)
		return rc;
	AS_CALLER_G(req, rc, ftruncate(fd, size), sgid_needs_groups(req, 0, in));
	rc = rc < 0 ? -errno : 0;
	as_root();
	return rc;
}

/* truncate(2) of a file with journaled data (1 when it has none: the caller truncates as
 * before). Without an open file the caller's right to write it is checked by opening it
 * first: a truncate record cannot be taken back. 0 or -errno. */
static int journal_setsize(fuse_req_t req, struct fs_inode *in, int fd, const char *p,
			   off_t size)
{
	if (!fs_g->jn || in->type != S_IFREG || !fs_jn_dirty(fs_g->jn, in->dev, in->ino))
		return 1;
	if (fd >= 0)
		return journal_cut(req, in, fd, size);
	AS_CALLER(req, fd, open(p, O_WRONLY | O_CLOEXEC));
	int rc = fd < 0 ? -errno : 0;
	as_root();
	if (fd >= 0) {
		rc = journal_cut(req, in, fd, size);
		close(fd);
	}
	return rc;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	char p[32];
	int res = 0;
	if (in->view == FS_VIEW_TRASH) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fs_fd_path(fs_fd(in), p);
	/* an explicit mtime must not be overtaken by writeback: write back first (a new size
	 * goes through the journal: journal_setsize) */
	if (fs_g->jn && (valid & FUSE_SET_ATTR_MTIME) && !(valid & FUSE_SET_ATTR_MTIME_NOW) &&
	    (res = fs_jn_flush_file(fs_g->jn, in->dev, in->ino)) != 0) {
		fuse_reply_err(req, -res);
		return;
	}
	/* KILLPRIV_V2: a SETATTR that sets nothing is the kernel removing privileges before
	 * a write it does not send us (passthrough) or a fallocate; chown and truncate clear
	 * the bits on the backing file themselves (run as the caller, they are native) */
	if (fs_chan_killpriv_v2() && !(valid & ~(FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID)) &&
	    in->type == S_IFREG && (res = kill_suidgid(req, in, fi ? (int)fi->fh : -1)) < 0) {
		errno = -res;
		goto err;
	}
	if (valid & FUSE_SET_ATTR_MODE && kills_suid(in, attr->st_mode)) {
		/* the kernel clearing setuid/setgid after a write or truncate by someone who
		 * is not the owner (it checked nothing: neither do we) */
		res = fi ? fchmod((int)fi->fh, attr->st_mode) : chmod(p, attr->st_mode);
		if (res < 0)
			goto err;
	} else if (valid & FUSE_SET_ATTR_MODE) {
		AS_CALLER_G(req, res, fi ? fchmod((int)fi->fh, attr->st_mode) : chmod(p, attr->st_mode),
			    sgid_needs_groups(req, attr->st_mode, NULL));
		if (res < 0)
			goto err;
	}
	/* chown and truncate drop setgid by the caller's groups too */
	int full = (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE)) &&
		   sgid_needs_groups(req, 0, in);
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t u = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t g = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		AS_CALLER_G(req, res, fchownat(fs_fd(in), "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW),
			    full);
		if (res < 0)
			goto err;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		res = journal_setsize(req, in, fi ? (int)fi->fh : -1, p, attr->st_size);
		if (res < 0) {
			errno = -res;
			goto err;
		}
		if (res == 1)
			AS_CALLER_G(req, res, fi ? ftruncate((int)fi->fh, attr->st_size)
						 : truncate(p, attr->st_size), full);
		if (res < 0)
			goto err;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fi)
			AS_CALLER(req, res, futimens((int)fi->fh, tv));
		else
			AS_CALLER(req, res, utimensat(fs_fd(in), "", tv, AT_EMPTY_PATH));
		if (res < 0 && errno == EINVAL && in->type != S_IFLNK)
			AS_CALLER(req, res, utimensat(AT_FDCWD, p, tv, 0));
		if (res < 0)
			goto err;
	}
	as_root();
	op_getattr(req, ino, fi);
	return;
err:;
	int e = errno;
	as_root();
	fuse_reply_err(req, e);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(fs_fd(fs_ino(ino)), "", buf, sizeof(buf));
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (n >= (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = 0;
		fuse_reply_readlink(req, buf);
	}
}

static int check_create(struct fs_inode *dir, const char *name)
{
	if (dir->view == FS_VIEW_TRASH)
		return EROFS;
	if (reserved(dir, name))
		return EPERM;
	return 0;
}

static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      dev_t rdev, const char *link)
{
	struct fs_inode *dir = fs_ino(parent);
	int e = check_create(dir, name), res;
	if (!e)
		e = -caller_umask(req);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	if (link)
		AS_CALLER(req, res, symlinkat(link, fs_fd(dir), name));
	else if (S_ISDIR(mode))
		AS_CALLER(req, res, mkdirat(fs_fd(dir), name, mode));
	else
		AS_CALLER_G(req, res, mknodat(fs_fd(dir), name, mode, rdev),
			    sgid_needs_groups(req, mode, NULL));
	e = errno;
	as_root();
	if (res < 0)
		fuse_reply_err(req, e);
	else
		reply_entry_or_err(req, dir, name);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	make_node(req, parent, name, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, S_IFLNK, 0, link);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs_inode *in = fs_ino(ino), *dir = fs_ino(newparent);
	int e = check_create(dir, newname), res;
	if (!e && in->view == FS_VIEW_TRASH)
		e = EXDEV;
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	char p[32];
	if (in->type == S_IFLNK) /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH */
		res = linkat(fs_fd(in), "", fs_fd(dir), newname, AT_EMPTY_PATH);
	else
		AS_CALLER(req, res, linkat(AT_FDCWD, fs_fd_path(fs_fd(in), p), fs_fd(dir), newname,
					   AT_SYMLINK_FOLLOW));
	e = errno;
	as_root();
	if (res < 0)
		fuse_reply_err(req, e);
	else
		reply_entry_or_err(req, dir, newname);
}

/* Moves dir/name into the trash as `path` and tells the kernel about the new trash entry. */
static int trash_victim(fuse_req_t req, struct fs_inode *dir, const char *name,
			const char *path, const struct stat *vst)
{
	struct fs_trash_put_info info;
	memset(&info, 0, sizeof(info));
	as_root();
	/* the kernel may still ask for its attributes (open files, fstat): nlink from now on
	 * leaves the trash's link out */
	struct fs_inode *vin = S_ISDIR(vst->st_mode) ? NULL :
			       fs_itable_find(&fs_g->itab, vst->st_dev, vst->st_ino, FS_VIEW_LIVE);
	if (vin)
		__atomic_store_n(&vin->trashed, 1, __ATOMIC_RELAXED);
	int rc = fs_trash_put(&fs_g->trash, fs_fd(dir), name, path, fuse_req_ctx(req)->uid, &info);
	if (rc == 0 && info.name[0])
		fs_notify_entry(info.tdir_dev, info.tdir_ino, FS_VIEW_TRASH, info.name, 0);
	return rc;
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int isdir)
{
	struct fs_inode *dir = fs_ino(parent);
	int e = check_create(dir, name);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	char *path = NULL;
	int rc = fs_mount_path(fs_fd(dir), name, &path);
	if (rc == 0) {
		struct stat st;
		if (fstatat(fs_fd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			rc = -errno;
		else if (isdir && !S_ISDIR(st.st_mode))
			rc = -ENOTDIR;
		else if (!isdir && S_ISDIR(st.st_mode))
			rc = -EISDIR;
		else
			rc = trash_victim(req, dir, name, path, &st);
	} else if (rc == -ENOENT) {
		/* the directory itself is no longer in the namespace (deleted while open) */
		int res;
		AS_CALLER(req, res, unlinkat(fs_fd(dir), name, isdir ? AT_REMOVEDIR : 0));
		rc = res < 0 ? -errno : 0;
		as_root();
	}
	free(path);
	fuse_reply_err(req, -rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs_inode *a = fs_ino(parent), *b = fs_ino(newparent);
	int e = check_create(a, name);
	if (!e)
		e = check_create(b, newname);
	if (!e && (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)))
		e = EINVAL;
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	int res;
	struct stat ts, ss;
	if (flags || fstatat(fs_fd(b), newname, &ts, AT_SYMLINK_NOFOLLOW) != 0 ||
	    S_ISDIR(ts.st_mode)) {
		AS_CALLER(req, res, renameat2(fs_fd(a), name, fs_fd(b), newname, flags));
		e = res < 0 ? errno : 0;
		as_root();
		fuse_reply_err(req, e);
		return;
	}
	/* The rename replaces a non-directory: exchange atomically, then trash the victim,
	 * which now sits under the source name. */
	if (fstatat(fs_fd(a), name, &ss, AT_SYMLINK_NOFOLLOW) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (ss.st_dev == ts.st_dev && ss.st_ino == ts.st_ino) {
		fuse_reply_err(req, 0); /* two links to one file: rename(2) does nothing */
		return;
	}
	if (S_ISDIR(ss.st_mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	char *path = NULL;
	if (fs_mount_path(fs_fd(b), newname, &path) != 0) {
		AS_CALLER(req, res, renameat(fs_fd(a), name, fs_fd(b), newname));
		e = res < 0 ? errno : 0;
		as_root();
		fuse_reply_err(req, e);
		return;
	}
	AS_CALLER(req, res, renameat2(fs_fd(a), name, fs_fd(b), newname, RENAME_EXCHANGE));
	e = res < 0 ? errno : 0;
	as_root();
	int rc = e ? -e : trash_victim(req, a, name, path, &ts);
	if (rc && !e) /* put things back as they were */
		renameat2(fs_fd(a), name, fs_fd(b), newname, RENAME_EXCHANGE);
	free(path);
	fuse_reply_err(req, -rc);
}

static int open_flags(int flags)
{
	/* O_APPEND: the kernel picks every write's offset itself (its size for appends) and
	 * also writes mmap'ed pages back through any open file: an O_APPEND backing fd would
	 * put those at the end of the file. */
	flags &= ~(O_NOFOLLOW | O_APPEND);
	/* the writeback cache may read to fill partial pages */
	if (fs_g->writeback && (flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags | O_CLOEXEC;
}

static int writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT));
}

/* fi->fh of a regular file is its backing fd; FH_PT marks a file opened with passthrough,
 * FH_JC one that goes through the daemon because of the journal (counted in io_cached).
 * (int)fi->fh keeps giving the fd: the conversion keeps the low 32 bits. */
#define FH_PT (1ull << 40)
#define FH_JC (1ull << 41)

/* With a journal, writes must reach the daemon, so passthrough is chosen per open (the
 * kernel puts an inode either in passthrough mode or in cached mode, and refuses an open
 * of the other kind while one is open):
 * - an inode with passthrough opens gets passthrough for every new open, writers included
 *   (their writes go to the capacity tier directly, like bypassed ones; fsync syncs it);
 * - otherwise a read-only open gets passthrough when no open goes through the daemon and
 *   the file has no journaled data (a passthrough read would miss it);
 * - everything else goes through the daemon (journal writes, overlay reads).
 * Returns 1 when this open must go through the daemon (io_cached counted); pt_lock held. */
static int jn_cached(struct fs_inode *in, int flags)
{
	if (!fs_g->jn || in->bk_opens > 0)
		return 0;
	if (!writes(flags) && in->io_cached == 0 && !fs_jn_dirty(fs_g->jn, in->dev, in->ino))
		return 0;
	in->io_cached++;
	return 1;
}

/* Passthrough for an open of in (a regular file) on fd: the inode's backing file is
 * registered with the kernel on its first open and shared by all its open files (the
 * kernel wants one backing file per inode). Returns the backing id, 0 when passthrough is
 * off, -1 for a journal open through the daemon (FH_JC), or -errno. */
static int pt_attach(struct fs_inode *in, int fd, int flags)
{
	if (!fs_chan_passthrough() || in->type != S_IFREG)
		return 0;
	pthread_mutex_lock(&fs_g->pt_lock);
	if (jn_cached(in, flags)) {
		pthread_mutex_unlock(&fs_g->pt_lock);
		return -1;
	}
	if (in->bk_opens == 0) {
		/* The kernel keeps the registered file until the inode's last release, so it
		 * gets an open file of its own: flock and OFD locks live on the open file and
		 * must go away with the release of the open that took them. */
		char p[32];
		int own = open(fs_fd_path(fd, p), (fcntl(fd, F_GETFL) & O_ACCMODE) | O_CLOEXEC);
		if (own < 0) {
			int e = errno;
			pthread_mutex_unlock(&fs_g->pt_lock);
			return -e;
		}
		int id = fs_chan_backing_open(own);
		close(own);
		if (id < 0) {
			pthread_mutex_unlock(&fs_g->pt_lock);
			return id == -EPERM && !fs_chan_passthrough() ? 0 : id;
		}
		in->bk_id = id;
	}
	in->bk_opens++;
	if (fs_g->jn && writes(flags))
		in->pt_wrote = 1;
	int id = in->bk_id;
	pthread_mutex_unlock(&fs_g->pt_lock);
	return id;
}

/* Drops one open file's use of the inode's backing file (after the kernel released it),
 * or of the daemon (FH_JC). */
static void pt_detach(struct fs_inode *in, uint64_t fh)
{
	pthread_mutex_lock(&fs_g->pt_lock);
	if (fh & FH_JC) {
		ST_ASSERT(in->io_cached > 0);
		in->io_cached--;
	} else {
		ST_ASSERT(in->bk_opens > 0);
		if (--in->bk_opens == 0) {
			fs_chan_backing_close(in->bk_id);
			in->bk_id = 0;
		}
	}
	pthread_mutex_unlock(&fs_g->pt_lock);
}

/* Sets fi for an open of in on fd (passthrough when on). 0 or -errno (fd left open). */
static int open_reply_prepare(struct fs_inode *in, int fd, struct fuse_file_info *fi)
{
	int id = pt_attach(in, fd, fi->flags);
	if (id < -1)
		return id;
	fi->fh = (uint64_t)fd | (id > 0 ? FH_PT : 0) | (id < 0 ? FH_JC : 0);
	/* the page cache is the backing file's with passthrough (the kernel refuses
	 * FOPEN_KEEP_CACHE there); after passthrough writes the kernel's own page cache of
	 * the inode may be stale */
	fi->keep_cache = id <= 0 && in->view == FS_VIEW_LIVE;
	if (id < 0) {
		pthread_mutex_lock(&fs_g->pt_lock);
		if (in->pt_wrote)
			fi->keep_cache = 0;
		in->pt_wrote = 0;
		pthread_mutex_unlock(&fs_g->pt_lock);
	}
	fs_chan_reply_backing(id > 0 ? id : 0);
	return 0;
}

/* After fuse_reply_open/create: on failure (the request was interrupted) nothing holds
 * the file any more. */
static void open_reply_done(struct fs_inode *in, struct fuse_file_info *fi, int rc)
{
	fs_chan_reply_backing(0);
	if (rc == 0)
		return;
	if (fi->fh & (FH_PT | FH_JC))
		pt_detach(in, fi->fh);
	close((int)fi->fh);
}

/* O_TRUNC of an existing dir/name with the journal: its journaled data is written back
 * first, so that a replay after a crash never puts it over the truncated file. */
static int journal_trunc_at(int dirfd, const char *name)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
		return 0;
	return fs_jn_flush_file(fs_g->jn, st.st_dev, st.st_ino);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs_inode *dir = fs_ino(parent);
	int e = check_create(dir, name), fd;
	if (!e)
		e = -caller_umask(req);
	if (e) {
		fuse_reply_err(req, e);
		return;
	}
	if (fs_g->jn && (fi->flags & O_TRUNC) && (e = journal_trunc_at(fs_fd(dir), name)) != 0) {
		fuse_reply_err(req, -e);
		return;
	}
	AS_CALLER_G(req, fd, openat(fs_fd(dir), name, open_flags(fi->flags) | O_CREAT, mode),
		    sgid_needs_groups(req, mode, NULL));
	e = errno;
	as_root();
	if (fd < 0) {
		fuse_reply_err(req, e);
		return;
	}
	struct fuse_entry_param ent;
	int rc = do_lookup(req, dir, name, &ent);
	if (rc == 0 && (rc = open_reply_prepare(fs_ino(ent.ino), fd, fi)) != 0)
		fs_itable_unref(&fs_g->itab, fs_ino(ent.ino), 1);
	if (rc) {
		close(fd);
		fuse_reply_err(req, -rc);
		return;
	}
	rc = fuse_reply_create(req, &ent, fi);
	open_reply_done(fs_ino(ent.ino), fi, rc);
	if (rc != 0)
		fs_itable_unref(&fs_g->itab, fs_ino(ent.ino), 1);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	if (in->view == FS_VIEW_TRASH && writes(fi->flags)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	char p[32];
	int fd;
	/* O_TRUNC of a file with journaled data: opened without it, then cut through the
	 * journal (journal_cut); a read-only O_TRUNC writes the data back first */
	int jcut = fs_g->jn && (fi->flags & O_TRUNC) && in->type == S_IFREG &&
		   fs_jn_dirty(fs_g->jn, in->dev, in->ino);
	if (jcut && !writes(fi->flags) && (fd = fs_jn_flush_file(fs_g->jn, in->dev, in->ino))) {
		fuse_reply_err(req, -fd);
		return;
	}
	jcut = jcut && writes(fi->flags);
	/* a truncating open removes setuid/setgid on the backing file (run as the caller,
	 * natively) but, unlike a truncate, tells the kernel nothing: drop its attributes */
	mode_t before = (fi->flags & O_TRUNC) && in->type == S_IFREG ? backing_mode(in) : 0;
	int trunc_sxid = fs_chan_killpriv_v2() && (before & (S_ISUID | S_ISGID));
	AS_CALLER_G(req, fd, open(fs_fd_path(fs_fd(in), p),
				  open_flags(fi->flags) & ~(O_CREAT | (jcut ? O_TRUNC : 0))),
		    sgid_needs_groups(req, before, NULL));
	int e = errno;
	as_root();
	if (fd >= 0 && jcut && (e = -journal_cut(req, in, fd, 0)) != 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		fuse_reply_err(req, e);
		return;
	}
	if (trunc_sxid) {
		if (fs_chan_req_kill_suidgid())
			kill_suidgid(req, in, fd); /* a root caller without CAP_FSETID */
		/* synchronous: the opener must not see (or exec with) the old mode; attribute
		 * invalidation takes no lock the opener holds */
		fuse_lowlevel_notify_inval_inode(fs_g->se, ino, -1, 0);
	}
	int rc = open_reply_prepare(in, fd, fi);
	if (rc) {
		close(fd);
		fuse_reply_err(req, -rc);
		return;
	}
	open_reply_done(in, fi, fuse_reply_open(req, fi));
}

/* Read of a file with journaled data: the backing file overlaid with it. 1 when the file
 * has none (the caller reads the backing file), else 0 (replied). */
static int journal_read(fuse_req_t req, struct fs_inode *in, size_t size, off_t off, int fd)
{
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return 0;
	}
	ssize_t n = fs_jn_read(fs_g->jn, in->dev, in->ino, fd, buf, size, off);
	if (n == -ENODATA) {
		free(buf);
		return 1;
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (fs_g->jn && !journal_read(req, fs_ino(ino), size, off, (int)fi->fh))
		return;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* Write through the journal: appended from the request's buffer (requests are read into
 * memory, fs_chan.c), or from a copy when libfuse hands over something else. */
static void journal_write(fuse_req_t req, struct fs_inode *in, struct fuse_bufvec *in_buf,
			  off_t off, int fd)
{
	const struct fuse_buf *b0 = &in_buf->buf[in_buf->idx];
	char *copy = NULL;
	const char *data = (const char *)b0->mem + in_buf->off;
	ssize_t n = (ssize_t)(b0->size - in_buf->off);
	if (in_buf->count - in_buf->idx != 1 || (b0->flags & FUSE_BUF_IS_FD)) {
		size_t size = fuse_buf_size(in_buf);
		struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
		data = mem.buf[0].mem = copy = malloc(size ? size : 1);
		n = copy ? fuse_buf_copy(&mem, in_buf, 0) : -ENOMEM;
	}
	if (n >= 0)
		n = fs_jn_write(fs_g->jn, in->dev, in->ino, fd, data, (size_t)n, off);
	free(copy);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
			 struct fuse_file_info *fi)
{
	if (fs_chan_req_kill_suidgid()) { /* KILLPRIV_V2, a write we do see */
		int k = kill_suidgid(req, fs_ino(ino), (int)fi->fh);
		if (k < 0) {
			fuse_reply_err(req, -k);
			return;
		}
	}
	if (fs_g->jn) {
		journal_write(req, fs_ino(ino), in_buf, off, (int)fi->fh);
		return;
	}
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = (int)fi->fh;
	out.buf[0].pos = off;
	ssize_t n = fuse_buf_copy(&out, in_buf, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	/* --close-to-open: the data is on the capacity tier when close returns */
	int jr = fs_g->jn && fs_g->jn->cto ? fs_jn_flush_file(fs_g->jn, in->dev, in->ino) : 0;
	if (jr) {
		fuse_reply_err(req, -jr);
		return;
	}
	/* closing a duplicate flushes to the backing store (close-to-open on NFS) */
	int fd = dup((int)fi->fh);
	int rc = fd < 0 ? errno : (close(fd) == 0 ? 0 : errno);
	fuse_reply_err(req, rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (fi->fh & (FH_PT | FH_JC))
		pt_detach(fs_ino(ino), fi->fh);
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	if (fs_g->jn && !(fi->fh & FH_PT)) { /* durable once on the journal */
		fuse_reply_err(req, -fs_jn_fsync(fs_g->jn, in->dev, in->ino, (int)fi->fh));
		return;
	}
	int rc = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
	fuse_reply_err(req, rc ? errno : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	if (fs_ino(ino)->view == FS_VIEW_TRASH) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct fs_inode *in = fs_ino(ino);
	int rc = fs_g->jn ? fs_jn_flush_file(fs_g->jn, in->dev, in->ino) : 0;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = fallocate((int)fi->fh, mode, off, len);
	fuse_reply_err(req, rc ? errno : 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	int rc = fs_g->jn ? fs_jn_flush_file(fs_g->jn, in->dev, in->ino) : 0;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	off_t r = lseek((int)fi->fh, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in;
	(void)ino_out;
	if (fs_g->jn) { /* the kernel falls back to reads and writes, which the journal sees */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	ssize_t n = copy_file_range((int)fi_in->fh, &off_in, (int)fi_out->fh, &off_out, len,
				    (unsigned)flags);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

/* ---- locks ------------------------------------------------------------------------ */

/* fcntl and flock locks are taken on the backing file, so that other mounts of the same
 * backing tree (other nodes on NFS or CephFS) and processes using it directly see them:
 * fcntl locks as open-file-description locks (F_OFD_*: owned by the open file, which is
 * what a FUSE open maps to), flock as flock(2) on the backing fd (also per open file).
 * A lock that must wait is retried with a growing pause (0.2 ms .. 10 ms) until it is
 * granted or the caller is interrupted, so no worker thread sleeps in the kernel where an
 * INTERRUPT cannot reach it. */
#define LOCK_PAUSE_MAX_US 10000

/* Runs try(fd, arg) until it succeeds, fails with something other than "held by
 * someone else", or (sleep) the request is interrupted. Returns 0 or -errno. */
static int lock_retry(fuse_req_t req, int sleep, int (*try)(int, void *), int fd, void *arg)
{
	for (useconds_t pause = 200;; pause = pause * 2 > LOCK_PAUSE_MAX_US ? LOCK_PAUSE_MAX_US
									      : pause * 2) {
		if (try(fd, arg) == 0)
			return 0;
		int e = errno;
		if (e != EAGAIN && e != EACCES && e != EWOULDBLOCK)
			return -e;
		if (!sleep)
			return -EAGAIN;
		if (fuse_req_interrupted(req))
			return -EINTR;
		usleep(pause);
	}
}

static int try_ofd(int fd, void *arg)
{
	return fcntl(fd, F_OFD_SETLK, (struct flock *)arg);
}

static int try_flock(int fd, void *arg)
{
	return flock(fd, *(int *)arg | LOCK_NB);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	(void)ino;
	lock->l_pid = 0; /* F_OFD_*: must be 0; a conflicting OFD lock comes back as -1 */
	if (fcntl((int)fi->fh, F_OFD_GETLK, lock) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (lock->l_pid < 0)
		lock->l_pid = 0;
	fuse_reply_lock(req, lock);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	(void)ino;
	lock->l_pid = 0;
	int rc = lock_retry(req, sleep && lock->l_type != F_UNLCK, try_ofd, (int)fi->fh, lock);
	fuse_reply_err(req, -rc);
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	(void)ino;
	int how = op & (LOCK_SH | LOCK_EX | LOCK_UN);
	int rc = lock_retry(req, !(op & LOCK_NB) && how != LOCK_UN, try_flock, (int)fi->fh, &how);
	fuse_reply_err(req, -rc);
}

/* ---- directories ------------------------------------------------------------------ */

struct fs_dirh {
	DIR *dp;
	off_t offset;          /* position of dp, as a backing d_off cookie */
	struct dirent *entry;  /* read but not yet returned */
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_ino(ino);
	struct fs_dirh *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* through the magic link: an open needs read permission only, not search (a
	 * directory of mode 0600 opens for its owner as it does natively) */
	char p[32];
	int fd;
	AS_CALLER(req, fd, open(fs_fd_path(fs_fd(in), p), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	int e = errno;
	as_root();
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		if (fd >= 0) {
			e = errno;
			close(fd);
		}
		free(d);
		fuse_reply_err(req, e);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	/* The kernel keeps the listing across opens and drops it when the directory changes
	 * through the mount or its mtime moves (auto_inval_data checks it at offset 0). Not
	 * for the .trash view: it changes behind the kernel's back. */
	fi->cache_readdir = fi->keep_cache = in->view == FS_VIEW_LIVE;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
}

static int dot(const char *n)
{
	return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, int plus)
{
	struct fs_inode *dir = fs_ino(ino);
	struct fs_dirh *d = (struct fs_dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t rem = size;
	int err = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int root = is_root_dir(dir), troot = is_trash_root(dir);
	const struct fuse_ctx *c = fuse_req_ctx(req);
	char me[24];
	snprintf(me, sizeof(me), "%u", (unsigned)c->uid);
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		off_t next = d->entry->d_off;
		const char *name = d->entry->d_name;
		int skip = 0;
		if (root && !strcmp(name, FS_TRASH_NAME))
			skip = 1; /* a stray backing entry would shadow the view */
		else if (root && !strcmp(name, FS_STATE_DIR))
			name = FS_TRASH_NAME;
		else if (troot && c->uid != 0 && !dot(name) && strcmp(name, me))
			skip = 1;
		if (skip) {
			d->entry = NULL;
			d->offset = next;
			continue;
		}
		size_t n;
		if (plus) {
			struct fuse_entry_param e;
			if (dot(name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->entry->d_ino;
				e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			} else {
				int rc = do_lookup(req, dir, name, &e);
				if (rc) {
					/* gone since the directory was read: skip it */
					d->entry = NULL;
					d->offset = next;
					continue;
				}
			}
			n = fuse_add_direntry_plus(req, p, rem, name, &e, next);
			if (n > rem) {
				if (e.ino)
					fs_itable_unref(&fs_g->itab, fs_ino(e.ino), 1);
				break;
			}
		} else {
			struct stat st;
			memset(&st, 0, sizeof(st));
			st.st_ino = d->entry->d_ino;
			st.st_mode = (mode_t)d->entry->d_type << 12;
			n = fuse_add_direntry(req, p, rem, name, &st, next);
			if (n > rem)
				break;
		}
		p += n;
		rem -= n;
		d->entry = NULL;
		d->offset = next;
	}
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs_dirh *d = (struct fs_dirh *)(uintptr_t)fi->fh;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs_dirh *d = (struct fs_dirh *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp);
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc ? errno : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv;
	if (fstatvfs(fs_g->bfd, &sv) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes (none on symlinks, like most local filesystems) ----------- */

/* ENOSYS when the backing has no xattrs at all (fs_state.no_xattr): the kernel stops
 * sending the request and answers EOPNOTSUPP, as the backing filesystem would. The list
 * is still asked (an empty list, not an error, natively). */
static int no_xattr(fuse_req_t req)
{
	if (!fs_g->no_xattr)
		return 0;
	fuse_reply_err(req, ENOSYS);
	return 1;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	if (no_xattr(req))
		return;
	struct fs_inode *in = fs_ino(ino);
	if (in->view == FS_VIEW_TRASH) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (in->type == S_IFLNK || !strcmp(name, FS_TLINKS_XATTR)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	char p[32];
	int res;
	/* an access ACL rewrites the mode's group class (and may drop setgid) */
	AS_CALLER_G(req, res, setxattr(fs_fd_path(fs_fd(in), p), name, value, size, flags),
		    !strcmp(name, "system.posix_acl_access") && sgid_needs_groups(req, 0, in));
	int e = res < 0 ? errno : 0;
	as_root();
	fuse_reply_err(req, e);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (no_xattr(req))
		return;
	struct fs_inode *in = fs_ino(ino);
	if (in->type == S_IFLNK || !strcmp(name, FS_TLINKS_XATTR)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	char p[32];
	fs_fd_path(fs_fd(in), p);
	if (size == 0) {
		ssize_t n = getxattr(p, name, NULL, 0);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = getxattr(p, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* The backing list without the trash link count (FS_TLINKS_XATTR). */
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_inode *in = fs_ino(ino);
	if (in->type == S_IFLNK) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	char p[32];
	fs_fd_path(fs_fd(in), p);
	char *buf = NULL;
	ssize_t n;
	for (;;) {
		n = listxattr(p, NULL, 0);
		if (n <= 0)
			break;
		free(buf);
		buf = malloc((size_t)n);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		n = listxattr(p, buf, (size_t)n);
		if (n >= 0 || errno != ERANGE)
			break; /* ERANGE: the list grew in between */
	}
	if (n < 0) {
		fuse_reply_err(req, errno);
		free(buf);
		return;
	}
	size_t out = 0;
	for (ssize_t off = 0; off < n;) {
		size_t l = strlen(buf + off) + 1;
		if (strcmp(buf + off, FS_TLINKS_XATTR)) {
			memmove(buf + out, buf + off, l);
			out += l;
		}
		off += (ssize_t)l;
	}
	if (size == 0)
		fuse_reply_xattr(req, out);
	else if (size < out)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, out);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (no_xattr(req))
		return;
	struct fs_inode *in = fs_ino(ino);
	if (in->view == FS_VIEW_TRASH) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (in->type == S_IFLNK || !strcmp(name, FS_TLINKS_XATTR)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	char p[32];
	int res;
	AS_CALLER(req, res, removexattr(fs_fd_path(fs_fd(in), p), name));
	int e = res < 0 ? errno : 0;
	as_root();
	fuse_reply_err(req, e);
}

/* Every handler runs through a wrapper that closes the temporary fds it opened and leaves
 * the thread with the daemon's credentials (lookups and reads run as the daemon; the kernel
 * has checked permissions already). */
#define WRAP(op, params, args)          \
	static void w_##op params       \
	{                               \
		op args;                \
		fs_fd_release();        \
		as_root();              \
		umask_restore();        \
	}
WRAP(op_lookup, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
WRAP(op_getattr, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *f), (r, i, f))
WRAP(op_setattr, (fuse_req_t r, fuse_ino_t i, struct stat *a, int v, struct fuse_file_info *f),
     (r, i, a, v, f))
WRAP(op_readlink, (fuse_req_t r, fuse_ino_t i), (r, i))
WRAP(op_mknod, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, dev_t d), (r, p, n, m, d))
WRAP(op_mkdir, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m), (r, p, n, m))
WRAP(op_symlink, (fuse_req_t r, const char *l, fuse_ino_t p, const char *n), (r, l, p, n))
WRAP(op_link, (fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char *n), (r, i, p, n))
WRAP(op_unlink, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
WRAP(op_rmdir, (fuse_req_t r, fuse_ino_t p, const char *n), (r, p, n))
WRAP(op_rename,
     (fuse_req_t r, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int f),
     (r, p, n, np, nn, f))
WRAP(op_create, (fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *f),
     (r, p, n, m, f))
WRAP(op_open, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *f), (r, i, f))
WRAP(op_opendir, (fuse_req_t r, fuse_ino_t i, struct fuse_file_info *f), (r, i, f))
WRAP(op_readdirplus, (fuse_req_t r, fuse_ino_t i, size_t s, off_t o, struct fuse_file_info *f),
     (r, i, s, o, f))
WRAP(op_setxattr, (fuse_req_t r, fuse_ino_t i, const char *n, const char *v, size_t s, int f),
     (r, i, n, v, s, f))
WRAP(op_getxattr, (fuse_req_t r, fuse_ino_t i, const char *n, size_t s), (r, i, n, s))
WRAP(op_listxattr, (fuse_req_t r, fuse_ino_t i, size_t s), (r, i, s))
WRAP(op_removexattr, (fuse_req_t r, fuse_ino_t i, const char *n), (r, i, n))

struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = w_op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = w_op_getattr,
	.setattr = w_op_setattr,
	.readlink = w_op_readlink,
	.mknod = w_op_mknod,
	.mkdir = w_op_mkdir,
	.symlink = w_op_symlink,
	.link = w_op_link,
	.unlink = w_op_unlink,
	.rmdir = w_op_rmdir,
	.rename = w_op_rename,
	.create = w_op_create,
	.open = w_op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	.getlk = op_getlk,
	.setlk = op_setlk,
	.flock = op_flock,
	.opendir = w_op_opendir,
	.readdir = op_readdir,
	.readdirplus = w_op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = w_op_setxattr,
	.getxattr = w_op_getxattr,
	.listxattr = w_op_listxattr,
	.removexattr = w_op_removexattr,
};
