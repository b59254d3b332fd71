/* Trash bin: O(1) moves into a per-user, per-bucket mirror of the original layout, a
 * checksummed index, restore with RENAME_NOREPLACE, purge and bucket expiry via rmr. */
#include "fuse/fs_trash.h"
#include "fuse/fs_rmr.h"
#include "fuse/fs_util.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Opens rel under dirfd refusing symlinks, magic links and escapes. */
static int open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					   RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, dirfd, rel[0] ? rel : ".", &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

int fs_trash_open(struct fs_trash *t, int bfd, int64_t retention_us, struct fs_rmr *rmr,
		  struct st_error *err)
{
	memset(t, 0, sizeof(*t));
	t->bfd = bfd;
	t->state_fd = t->trash_fd = t->tindex_fd = -1;
	t->retention_us = retention_us;
	t->width_s = fs_bucket_width(retention_us);
	t->rmr = rmr;
	pthread_mutex_init(&t->lock, NULL);
	for (int i = 0; i < FS_TLOG_SLOTS; i++)
		t->logs[i].fd = -1;
	t->dirstamps = calloc(FS_DIRSTAMP_SLOTS, sizeof(*t->dirstamps));
	if (!t->dirstamps) {
		pthread_mutex_destroy(&t->lock);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	t->state_fd = fs_mkdirs(bfd, FS_STATE_DIR, 0711, (uid_t)-1, (gid_t)-1);
	if (t->state_fd < 0)
		goto fail;
	/* The trash root is traversable by everyone; each user's root below it is 0700. */
	t->trash_fd = fs_mkdirs(t->state_fd, "trash", 0755, (uid_t)-1, (gid_t)-1);
	if (t->trash_fd < 0)
		goto fail;
	t->tindex_fd = fs_mkdirs(t->state_fd, "tindex", 0700, (uid_t)-1, (gid_t)-1);
	if (t->tindex_fd < 0)
		goto fail;
	fchmod(t->state_fd, 0711);
	fchmod(t->trash_fd, 0755);
	return 0;
fail:;
	int e = t->state_fd < 0 ? t->state_fd : t->trash_fd < 0 ? t->trash_fd : t->tindex_fd;
	fs_trash_close(t);
	return st_error_set(err, e, "cannot create the trash under %s: %s", FS_STATE_DIR,
			    strerror(-e));
}

void fs_trash_close(struct fs_trash *t)
{
	fs_trash_sync(t);
	for (int i = 0; i < FS_TLOG_SLOTS; i++)
		if (t->logs[i].fd >= 0)
			close(t->logs[i].fd);
	if (t->state_fd >= 0)
		close(t->state_fd);
	if (t->trash_fd >= 0)
		close(t->trash_fd);
	if (t->tindex_fd >= 0)
		close(t->tindex_fd);
	t->state_fd = t->trash_fd = t->tindex_fd = -1;
	free(t->dirstamps);
	t->dirstamps = NULL;
	pthread_mutex_destroy(&t->lock);
}

void fs_trash_sync(struct fs_trash *t)
{
	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < FS_TLOG_SLOTS; i++)
		if (t->logs[i].fd >= 0 && t->logs[i].dirty) {
			fdatasync(t->logs[i].fd);
			t->logs[i].dirty = 0;
		}
	pthread_mutex_unlock(&t->lock);
}

/* Appends one record to the log of (uid, bucket). Returns 0 or -errno. */
static int log_append(struct fs_trash *t, uid_t uid, const char *bucket,
		      const struct fs_trash_rec *r)
{
	size_t len;
	char *line = fs_rec_encode(r, &len);
	if (!line)
		return -ENOMEM;
	int rc = 0;
	pthread_mutex_lock(&t->lock);
	struct fs_tlog *slot = NULL, *lru = &t->logs[0];
	for (int i = 0; i < FS_TLOG_SLOTS; i++) {
		struct fs_tlog *l = &t->logs[i];
		if (l->fd >= 0 && l->uid == uid && !strcmp(l->bucket, bucket)) {
			slot = l;
			break;
		}
		if (l->fd < 0 || (lru->fd >= 0 && l->used < lru->used))
			lru = l;
	}
	if (!slot) {
		char rel[64];
		snprintf(rel, sizeof(rel), "%u", (unsigned)uid);
		int dfd = fs_mkdirs(t->tindex_fd, rel, 0700, (uid_t)-1, (gid_t)-1);
		if (dfd < 0) {
			rc = dfd;
			goto out;
		}
		snprintf(rel, sizeof(rel), "%s.log", bucket);
		int fd = openat(dfd, rel, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		rc = fd < 0 ? -errno : 0;
		close(dfd);
		if (fd < 0)
			goto out;
		if (lru->fd >= 0) {
			if (lru->dirty)
				fdatasync(lru->fd);
			close(lru->fd);
		}
		slot = lru;
		slot->fd = fd;
		slot->uid = uid;
		snprintf(slot->bucket, sizeof(slot->bucket), "%s", bucket);
		slot->dirty = 0;
	}
	slot->used = ++t->stamp;
	if (write(slot->fd, line, len) != (ssize_t)len)
		rc = -EIO;
	slot->dirty = 1;
out:
	pthread_mutex_unlock(&t->lock);
	free(line);
	return rc;
}

static struct fs_dirstamp *stamp_slot(struct fs_trash *t, dev_t dev, ino_t ino, int create)
{
	size_t h = (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ dev) % FS_DIRSTAMP_SLOTS;
	for (size_t i = 0; i < FS_DIRSTAMP_SLOTS; i++) {
		struct fs_dirstamp *s = &t->dirstamps[(h + i) % FS_DIRSTAMP_SLOTS];
		if (s->ino == ino && s->dev == dev)
			return s;
		if (!s->ino) {
			if (!create)
				return NULL;
			if (t->ndirstamps >= FS_DIRSTAMP_SLOTS / 2) {
				/* full enough: forget them all (only times of unfinished rm -rf) */
				memset(t->dirstamps, 0, FS_DIRSTAMP_SLOTS * sizeof(*s));
				t->ndirstamps = 0;
				return stamp_slot(t, dev, ino, create);
			}
			s->dev = dev;
			s->ino = ino;
			t->ndirstamps++;
			return s;
		}
	}
	return NULL;
}

static int ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Before a child leaves dirfd: remember its times unless a stamp from our own previous
 * deletion is still current. */
static void stamp_before(struct fs_trash *t, const struct stat *ds)
{
	pthread_mutex_lock(&t->lock);
	struct fs_dirstamp *s = stamp_slot(t, ds->st_dev, ds->st_ino, 1);
	if (s && (!s->post.tv_sec || !ts_eq(s->post, ds->st_mtim))) {
		s->atime = ds->st_atim;
		s->mtime = ds->st_mtim;
	}
	pthread_mutex_unlock(&t->lock);
}

static void stamp_after(struct fs_trash *t, int dirfd)
{
	struct stat ds;
	if (fstat(dirfd, &ds) != 0)
		return;
	pthread_mutex_lock(&t->lock);
	struct fs_dirstamp *s = stamp_slot(t, ds.st_dev, ds.st_ino, 0);
	if (s)
		s->post = ds.st_mtim;
	pthread_mutex_unlock(&t->lock);
}

/* A directory being deleted: if only our deletions changed it, its times from before. */
static void stamp_take(struct fs_trash *t, const struct stat *st, struct fs_trash_rec *r)
{
	pthread_mutex_lock(&t->lock);
	struct fs_dirstamp *s = stamp_slot(t, st->st_dev, st->st_ino, 0);
	if (s) {
		if (ts_eq(s->post, st->st_mtim)) {
			r->atime_ns = (int64_t)s->atime.tv_sec * 1000000000 + s->atime.tv_nsec;
			r->mtime_ns = (int64_t)s->mtime.tv_sec * 1000000000 + s->mtime.tv_nsec;
		}
		/* tombstone-free removal: rebuild the probe run after this slot */
		memset(s, 0, sizeof(*s));
		t->ndirstamps--;
		struct fs_dirstamp *base = t->dirstamps;
		size_t i = (size_t)(s - base);
		for (size_t k = (i + 1) % FS_DIRSTAMP_SLOTS; base[k].ino; k = (k + 1) % FS_DIRSTAMP_SLOTS) {
			struct fs_dirstamp tmp = base[k];
			memset(&base[k], 0, sizeof(tmp));
			t->ndirstamps--;
			struct fs_dirstamp *n = stamp_slot(t, tmp.dev, tmp.ino, 1);
			if (n)
				*n = tmp;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static void fill_meta(struct fs_trash_rec *r, const struct stat *st)
{
	r->type = S_ISREG(st->st_mode) ? 'f' : S_ISDIR(st->st_mode) ? 'd' :
		  S_ISLNK(st->st_mode) ? 'l' : 'o';
	r->uid = st->st_uid;
	r->gid = st->st_gid;
	r->mode = st->st_mode;
	r->size = S_ISREG(st->st_mode) ? st->st_size : 0;
	r->atime_ns = (int64_t)st->st_atim.tv_sec * 1000000000 + st->st_atim.tv_nsec;
	r->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	r->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

/* Reads the xattrs of a (non-symlink) path into r. Best effort: unsupported is fine. */
static void read_xattrs(const char *path, struct fs_trash_rec *r)
{
	char names[8192];
	ssize_t n = llistxattr(path, names, sizeof(names));
	for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
		char val[4096];
		if (!strcmp(names + off, FS_TLINKS_XATTR))
			continue;
		ssize_t vl = lgetxattr(path, names + off, val, sizeof(val));
		if (vl >= 0)
			fs_rec_add_xattr(r, names + off, val, (size_t)vl);
	}
}

/* Applies recorded metadata (owner, mode, times, xattrs) to an existing directory. */
static void apply_meta_fd(int fd, const struct fs_trash_rec *r)
{
	char p[32];
	fs_fd_path(fd, p);
	if (fchown(fd, r->uid, r->gid) != 0)
		st_warn("trash: chown %s: %s", r->path, strerror(errno));
	if (fchmod(fd, r->mode & 07777) != 0)
		st_warn("trash: chmod %s: %s", r->path, strerror(errno));
	for (size_t i = 0; i < r->nxattr; i++)
		fsetxattr(fd, r->xattrs[i].name, r->xattrs[i].value, r->xattrs[i].len, 0);
	struct timespec ts[2] = {
		{ .tv_sec = r->atime_ns / 1000000000, .tv_nsec = r->atime_ns % 1000000000 },
		{ .tv_sec = r->mtime_ns / 1000000000, .tv_nsec = r->mtime_ns % 1000000000 },
	};
	futimens(fd, ts);
}

static int dir_is_empty(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	struct dirent *de;
	int empty = 1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

static int trash_put(struct fs_trash *t, int dirfd, const char *name, const char *orig_path,
		     uid_t by, struct fs_trash_put_info *info, int tree)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	int isdir = S_ISDIR(st.st_mode);
	if (isdir && !tree) {
		int e = dir_is_empty(dirfd, name);
		if (e < 0)
			return e;
		if (!e)
			return -ENOTEMPTY;
	}
	struct fs_trash_rec r;
	memset(&r, 0, sizeof(r));
	r.op = FS_REC_DEL;
	fs_new_id(r.id);
	fill_meta(&r, &st);
	if (isdir)
		stamp_take(t, &st, &r);
	struct stat ds;
	int have_ds = fstat(dirfd, &ds) == 0;
	if (have_ds)
		stamp_before(t, &ds);
	r.dtime_us = st_now_us();
	r.by_uid = by;
	if (!S_ISLNK(st.st_mode)) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", dirfd, name);
		read_xattrs(p, &r);
	}
	char bucket[16];
	fs_bucket_name(r.dtime_us, t->width_s, bucket);
	const char *rel = orig_path[0] == '/' ? orig_path + 1 : orig_path;
	const char *slash = strrchr(rel, '/');
	size_t dl = slash ? (size_t)(slash - rel) : 0;
	const char *base = slash ? slash + 1 : rel;
	int rc = -ENOMEM;
	char *mdir = malloc(dl + 64);
	r.path = malloc(strlen(rel) + 2);
	r.parent = malloc(dl + 2);
	r.tpath = malloc(strlen(rel) + 40);
	if (!mdir || !r.path || !r.parent || !r.tpath)
		goto out;
	sprintf(r.path, "/%s", rel);
	sprintf(r.parent, "/%.*s", (int)dl, rel);
	strcpy(r.tpath, rel);
	/* Mirror directory: UID/BUCKET/<original parent>. */
	int n = snprintf(mdir, dl + 64, "%u/%s%s%.*s", (unsigned)st.st_uid, bucket, dl ? "/" : "",
			 (int)dl, rel);
	(void)n;
	if (strlen(mdir) > FS_TRASH_MIRROR_MAX) {
		/* too deep to mirror (the path could not even be opened in one go): the
		 * bucket root, under a unique name; the record keeps the original path */
		snprintf(mdir, dl + 64, "%u/%s", (unsigned)st.st_uid, bucket);
		snprintf(r.tpath, strlen(rel) + 40, "%.200s~%s", base, r.id);
		base = NULL;
	}
	int mfd = open_beneath(t->trash_fd, mdir, O_PATH | O_DIRECTORY);
	if (mfd == -ENOENT) {
		/* user root first (0700, owned by the user), then the bucket and mirror parents */
		char uroot[32];
		snprintf(uroot, sizeof(uroot), "%u", (unsigned)st.st_uid);
		int ufd = fs_mkdirs(t->trash_fd, uroot, 0700, st.st_uid, st.st_gid);
		if (ufd >= 0) {
			mfd = fs_mkdirs(ufd, mdir + strlen(uroot) + 1, 0700, st.st_uid, st.st_gid);
			close(ufd);
		} else {
			mfd = ufd;
		}
	}
	if (mfd == -ENOTDIR || mfd == -ELOOP || mfd == -EXDEV) {
		/* a file or symlink in the mirror where a directory is needed: bucket root */
		snprintf(mdir, dl + 64, "%u/%s", (unsigned)st.st_uid, bucket);
		mfd = open_beneath(t->trash_fd, mdir, O_PATH | O_DIRECTORY);
		snprintf(r.tpath, strlen(rel) + 40, "%.200s~%s", base, r.id);
		base = NULL;
	}
	if (mfd < 0) {
		rc = mfd;
		goto out;
	}
	char tname[NAME_MAX + 1];
	snprintf(tname, sizeof(tname), "%s", base ? base : r.tpath);
	for (int attempt = 0;; attempt++) {
		rc = log_append(t, st.st_uid, bucket, &r);
		if (rc)
			break;
		if (renameat2(dirfd, name, mfd, tname, RENAME_NOREPLACE) == 0)
			break;
		rc = -errno;
		if (rc == -EEXIST && isdir && !tree && attempt == 0) {
			/* Children deleted earlier already built this directory in the mirror:
			 * give it the deleted directory's metadata and drop the empty original. */
			int dfd = openat(mfd, tname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dfd >= 0) {
				if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0) {
					apply_meta_fd(dfd, &r);
					close(dfd);
					rc = 0;
					break;
				}
				rc = -errno;
				close(dfd);
				goto abort;
			}
		}
		if (rc == -EEXIST && attempt == 0) {
			/* same name deleted twice in one bucket: keep both, the id tells them apart */
			char alt[NAME_MAX + 1];
			snprintf(alt, sizeof(alt), "%.200s~%s", tname, r.id);
			snprintf(tname, sizeof(tname), "%s", alt);
			size_t tl = strlen(r.tpath);
			char *cut = strrchr(r.tpath, '/');
			size_t keep = cut ? (size_t)(cut - r.tpath) + 1 : 0;
			(void)tl;
			snprintf(r.tpath + keep, strlen(rel) + 40 - keep, "%s", alt);
			continue;
		}
		goto abort;
	}
	if (!rc && have_ds)
		stamp_after(t, dirfd);
	if (!rc && !isdir)
		fs_tlinks_add(mfd, tname, 1);
	if (!rc && info) {
		struct stat ms;
		if (fstat(mfd, &ms) == 0) {
			info->tdir_dev = ms.st_dev;
			info->tdir_ino = ms.st_ino;
		}
		snprintf(info->name, sizeof(info->name), "%s", tname);
		memcpy(info->id, r.id, 17);
	}
	close(mfd);
	goto out;
abort:;
	struct fs_trash_rec g = { .op = FS_REC_GONE, .dtime_us = st_now_us() };
	memcpy(g.id, r.id, 17);
	snprintf(g.why, sizeof(g.why), "aborted");
	log_append(t, st.st_uid, bucket, &g);
	close(mfd);
	if (rc == -EXDEV) {
		/* another filesystem is mounted below the backing root: no O(1) move exists */
		st_warn("trash: %s is on another filesystem; deleting it for good", r.path);
		rc = unlinkat(dirfd, name, isdir ? AT_REMOVEDIR : 0) == 0 ? 0 : -errno;
	}
out:
	free(mdir);
	fs_rec_release(&r);
	return rc;
}

int fs_trash_put(struct fs_trash *t, int dirfd, const char *name, const char *orig_path,
		 uid_t by, struct fs_trash_put_info *info)
{
	return trash_put(t, dirfd, name, orig_path, by, info, 0);
}

int fs_trash_put_tree(struct fs_trash *t, int dirfd, const char *name, const char *orig_path,
		      uid_t by, struct fs_trash_put_info *info)
{
	return trash_put(t, dirfd, name, orig_path, by, info, 1);
}

/* ---- listing ---------------------------------------------------------------------- */

struct reclist {
	struct fs_trash_entry *v;
	size_t n, cap;
};

static int cmp_entry_id(const void *a, const void *b)
{
	const struct fs_trash_entry *x = a, *y = b;
	int c = strcmp(x->rec.id, y->rec.id);
	if (c)
		return c;
	return x->done < y->done ? -1 : x->done > y->done; /* done holds the line number */
}

static int cmp_entry_time(const void *a, const void *b)
{
	const struct fs_trash_entry *x = a, *y = b;
	if (x->rec.dtime_us != y->rec.dtime_us)
		return x->rec.dtime_us < y->rec.dtime_us ? -1 : 1;
	return strcmp(x->rec.id, y->rec.id);
}

/* Reads one bucket log, folds records by id (last wins) and appends live entries. */
static int read_log(struct fs_trash *t, int ldfd, const char *lname, uid_t uid,
		    struct reclist *out)
{
	int fd = openat(ldfd, lname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -errno;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	struct reclist tmp = { 0 };
	char bucket[16];
	snprintf(bucket, sizeof(bucket), "%.15s", lname);
	size_t line_no = 0;
	for (char *p = buf; p < buf + got;) {
		char *nl = memchr(p, '\n', (size_t)(buf + got - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(buf + got - p);
		struct fs_trash_entry e;
		memset(&e, 0, sizeof(e));
		if (fs_rec_decode(p, len, &e.rec, NULL) == 0) {
			if (tmp.n == tmp.cap) {
				tmp.cap = tmp.cap ? tmp.cap * 2 : 64;
				struct fs_trash_entry *nv = realloc(tmp.v, tmp.cap * sizeof(*nv));
				if (!nv) {
					fs_rec_release(&e.rec);
					break;
				}
				tmp.v = nv;
			}
			e.done = (int)line_no;
			tmp.v[tmp.n++] = e;
		}
		line_no++;
		if (!nl)
			break;
		p = nl + 1;
	}
	free(buf);
	if (tmp.n)
		qsort(tmp.v, tmp.n, sizeof(*tmp.v), cmp_entry_id);
	for (size_t i = 0; i < tmp.n; i++) {
		struct fs_trash_entry *e = &tmp.v[i];
		int last = i + 1 == tmp.n || strcmp(tmp.v[i + 1].rec.id, e->rec.id) != 0;
		if (!last || e->rec.op != FS_REC_DEL) {
			fs_rec_release(&e->rec);
			continue;
		}
		e->done = 0;
		snprintf(e->bucket, sizeof(e->bucket), "%s", bucket);
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "%u/%s/%s", (unsigned)uid, bucket, e->rec.tpath);
		int pfd = open_beneath(t->trash_fd, rel, O_PATH | O_NOFOLLOW);
		e->present = pfd >= 0;
		if (pfd >= 0)
			close(pfd);
		if (out->n == out->cap) {
			out->cap = out->cap ? out->cap * 2 : 64;
			struct fs_trash_entry *nv = realloc(out->v, out->cap * sizeof(*nv));
			if (!nv) {
				fs_rec_release(&e->rec);
				continue;
			}
			out->v = nv;
		}
		out->v[out->n++] = *e;
	}
	free(tmp.v);
	return 0;
}

static int list_uid(struct fs_trash *t, uid_t uid, struct reclist *out)
{
	char rel[32];
	snprintf(rel, sizeof(rel), "%u", (unsigned)uid);
	int ldfd = openat(t->tindex_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ldfd < 0)
		return errno == ENOENT ? 0 : -errno;
	int dup = fcntl(ldfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		close(ldfd);
		return -ENOMEM;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l == 19 && !strcmp(de->d_name + 15, ".log"))
			read_log(t, ldfd, de->d_name, uid, out);
	}
	closedir(d);
	close(ldfd);
	return 0;
}

int fs_trash_list(struct fs_trash *t, int64_t uid, struct fs_trash_list *out,
		  struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	struct reclist rl = { 0 };
	int rc = 0;
	if (uid >= 0) {
		rc = list_uid(t, (uid_t)uid, &rl);
	} else {
		int dup = openat(t->tindex_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
		if (!d) {
			if (dup >= 0)
				close(dup);
			return st_error_set(err, -ENOMEM, "cannot read the trash index");
		}
		struct dirent *de;
		while ((de = readdir(d)) && !rc) {
			char *end;
			unsigned long u = strtoul(de->d_name, &end, 10);
			if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && !*end)
				rc = list_uid(t, (uid_t)u, &rl);
		}
		closedir(d);
	}
	if (rc) {
		out->v = rl.v;
		out->n = rl.n;
		fs_trash_list_release(out);
		return st_error_set(err, rc, "cannot read the trash index: %s", strerror(-rc));
	}
	if (rl.n)
		qsort(rl.v, rl.n, sizeof(*rl.v), cmp_entry_time);
	out->v = rl.v;
	out->n = rl.n;
	for (size_t i = 0; i < rl.n; i++)
		if (rl.v[i].present)
			out->bytes += rl.v[i].rec.size;
	return 0;
}

void fs_trash_list_release(struct fs_trash_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		fs_rec_release(&l->v[i].rec);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int fs_trash_list_filter(struct fs_trash_list *l, const char *path)
{
	while (*path == '/')
		path++;
	if (!*path)
		return 0; /* "/": everything */
	size_t n = strlen(path);
	char *want = malloc(n + 2);
	if (!want)
		return ST_ENOMEM;
	want[0] = '/';
	memcpy(want + 1, path, n + 1);
	if (fs_path_clean(want + 1) != 0) {
		free(want);
		return ST_EINVAL;
	}
	size_t wl = strlen(want), k = 0;
	l->bytes = 0;
	for (size_t i = 0; i < l->n; i++) {
		const char *p = l->v[i].rec.path;
		if (!strncmp(p, want, wl) && (p[wl] == '/' || !p[wl])) {
			l->v[k++] = l->v[i];
			if (l->v[k - 1].present)
				l->bytes += l->v[k - 1].rec.size;
		} else {
			fs_rec_release(&l->v[i].rec);
		}
	}
	l->n = k;
	free(want);
	return 0;
}

/* Directory entries ordered by (path, uid, dtime) for the fold's lookups. */
static int fold_cmp(const void *a, const void *b, void *arg)
{
	const struct fs_trash_list *l = arg;
	const struct fs_trash_rec *x = &l->v[*(const size_t *)a].rec;
	const struct fs_trash_rec *y = &l->v[*(const size_t *)b].rec;
	int c = strcmp(x->path, y->path);
	if (c)
		return c;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->dtime_us < y->dtime_us ? -1 : x->dtime_us > y->dtime_us;
}

/* First directory entry (in dirs, nd of them) at path prefix p[0..pl) of owner uid deleted
 * at or after t; SIZE_MAX when none. */
static size_t fold_find(const struct fs_trash_list *l, const size_t *dirs, size_t nd,
			const char *p, size_t pl, uint32_t uid, int64_t t)
{
	size_t lo = 0, hi = nd;
	while (lo < hi) { /* lower bound of (p, uid, t) */
		size_t mid = (lo + hi) / 2;
		const struct fs_trash_rec *d = &l->v[dirs[mid]].rec;
		int c = strncmp(d->path, p, pl);
		if (!c && d->path[pl])
			c = 1;
		if (!c)
			c = d->uid != uid ? (d->uid < uid ? -1 : 1)
					  : (d->dtime_us < t ? -1 : 0);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < nd) {
		const struct fs_trash_rec *d = &l->v[dirs[lo]].rec;
		if (!strncmp(d->path, p, pl) && !d->path[pl] && d->uid == uid)
			return dirs[lo];
	}
	return SIZE_MAX;
}

void fs_trash_list_fold(struct fs_trash_list *l)
{
	size_t *dirs = malloc((l->n + 1) * sizeof(*dirs)), nd = 0;
	for (size_t i = 0; i < l->n; i++) {
		l->v[i].top = i;
		l->v[i].folded = l->v[i].folded_bytes = 0;
		if (dirs && l->v[i].rec.type == 'd')
			dirs[nd++] = i;
	}
	if (!dirs)
		return; /* out of memory: nothing folded, every entry listed */
	qsort_r(dirs, nd, sizeof(*dirs), fold_cmp, l);
	for (size_t i = 0; i < l->n; i++) {
		struct fs_trash_entry *e = &l->v[i];
		/* ancestors from the outermost: "/a", "/a/b", ... (not the path itself) */
		for (const char *s = strchr(e->rec.path + 1, '/'); s; s = strchr(s + 1, '/')) {
			size_t d = fold_find(l, dirs, nd, e->rec.path, (size_t)(s - e->rec.path),
					     e->rec.uid, e->rec.dtime_us);
			if (d != SIZE_MAX && d != i) {
				e->top = d;
				l->v[d].folded++;
				l->v[d].folded_bytes += e->present ? e->rec.size : 0;
				break;
			}
		}
	}
	free(dirs);
}

/* ---- restore ---------------------------------------------------------------------- */

static int is_id(const char *s)
{
	if (strlen(s) != 16)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

static int mark_gone(struct fs_trash *t, struct fs_trash_entry *e, const char *why)
{
	struct fs_trash_rec g = { .op = FS_REC_GONE, .dtime_us = st_now_us() };
	memcpy(g.id, e->rec.id, 17);
	snprintf(g.why, sizeof(g.why), "%s", why);
	e->done = 1;
	return log_append(t, e->rec.uid, e->bucket, &g);
}

/* Entries physically inside directory entry d (same user and bucket, tpath below). */
static void mark_children_gone(struct fs_trash *t, struct fs_trash_list *l,
			       const struct fs_trash_entry *d, const char *why)
{
	size_t tl = strlen(d->rec.tpath);
	for (size_t i = 0; i < l->n; i++) {
		struct fs_trash_entry *e = &l->v[i];
		if (e == d || e->done || e->rec.uid != d->rec.uid || strcmp(e->bucket, d->bucket))
			continue;
		if (!strncmp(e->rec.tpath, d->rec.tpath, tl) && e->rec.tpath[tl] == '/')
			mark_gone(t, e, why);
	}
}

static const struct fs_trash_entry *newest_dir_record(const struct fs_trash_list *l,
						      const char *path)
{
	const struct fs_trash_entry *best = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct fs_trash_entry *e = &l->v[i];
		if (e->rec.type == 'd' && !strcmp(e->rec.path, path) &&
		    (!best || e->rec.dtime_us > best->rec.dtime_us))
			best = e;
	}
	return best;
}

static void caller_creds(const struct fs_caller *c)
{
	fs_creds_set(c->uid, c->gid, c->ngroups, c->groups);
}

/* Opens (creating as the caller, with recorded metadata) the parent directories of dest
 * ("a/b/c" -> a/b). Never follows symlinks. Returns a dir fd or -errno. */
struct made_dir {
	int fd;
	const struct fs_trash_rec *rec;
};

static int open_dest_parent(struct fs_trash *t, const struct fs_trash_list *l, const char *dest,
			    const struct fs_caller *c, struct made_dir *made, int *nmade)
{
	char *prefix = malloc(strlen(dest) + 2);
	int fd = prefix ? fcntl(t->bfd, F_DUPFD_CLOEXEC, 0) : -1;
	if (fd < 0) {
		free(prefix);
		return prefix ? -errno : -ENOMEM;
	}
	prefix[0] = '/';
	size_t plen = 1;
	const char *p = dest;
	for (;;) {
		const char *s = strchr(p, '/');
		if (!s)
			break;
		size_t n = (size_t)(s - p);
		char comp[NAME_MAX + 1];
		if (n > NAME_MAX) {
			close(fd);
			free(prefix);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		memcpy(prefix + plen, comp, n + 1);
		plen += n;
		caller_creds(c);
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT) {
			const struct fs_trash_entry *rec = newest_dir_record(l, prefix);
			mode_t mode = rec ? (rec->rec.mode & 07777) : 0755;
			if (mkdirat(fd, comp, mode | 0700) != 0 && errno != EEXIST) {
				int e = errno;
				fs_creds_root();
				close(fd);
				free(prefix);
				return -e;
			}
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd >= 0 && rec) {
				fs_creds_root();
				/* a user may only recreate directories as themselves */
				if (c->is_root || rec->rec.uid == c->uid) {
					apply_meta_fd(nfd, &rec->rec);
					if (*nmade < 64 &&
					    (made[*nmade].fd = dup(nfd)) >= 0)
						made[(*nmade)++].rec = &rec->rec;
				}
			}
		}
		int e = errno;
		fs_creds_root();
		close(fd);
		if (nfd < 0) {
			free(prefix);
			return e == ELOOP ? -ENOTDIR : -e;
		}
		fd = nfd;
		prefix[plen++] = '/';
		prefix[plen] = 0;
		p = s + 1;
	}
	free(prefix);
	return fd;
}

static int restore_one(struct fs_trash *t, struct fs_trash_list *l, struct fs_trash_entry *e,
		       const char *dest, const struct fs_caller *c, int flags, fs_restore_cb cb,
		       void *arg)
{
	int rc;
	char *rel = NULL, *opath = NULL;
	const char *base = strrchr(dest, '/');
	base = base ? base + 1 : dest;
	struct made_dir made[64];
	int nmade = 0;
	int pfd = open_dest_parent(t, l, dest, c, made, &nmade);
	if (pfd < 0) {
		rc = pfd;
		goto out;
	}
	caller_creds(c);
	rc = faccessat(pfd, ".", W_OK | X_OK, AT_EACCESS) == 0 ? 0 : -errno;
	fs_creds_root();
	if (rc)
		goto out;
	if (asprintf(&rel, "%u/%s/%s", (unsigned)e->rec.uid, e->bucket, e->rec.tpath) < 0 ||
	    asprintf(&opath, "/%s", dest) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	char *slash = strrchr(rel, '/');
	*slash = 0;
	int sfd = open_beneath(t->trash_fd, rel, O_PATH | O_DIRECTORY);
	if (sfd < 0) {
		rc = sfd;
		goto out;
	}
	rc = renameat2(sfd, slash + 1, pfd, base, RENAME_NOREPLACE) == 0 ? 0 : -errno;
	if (rc == -EEXIST && (flags & FS_RESTORE_OVERWRITE)) {
		/* overwriting never destroys: what is in the way goes to the trash first */
		rc = trash_put(t, pfd, base, opath, c->uid, NULL, 1);
		if (rc == 0)
			rc = renameat2(sfd, slash + 1, pfd, base, RENAME_NOREPLACE) == 0 ? 0 : -errno;
	}
	close(sfd);
	if (rc == 0) {
		/* the link is the user's again (a directory brings back what was deleted in it) */
		fs_tlinks_restored(pfd, base, t->tlinks_hook);
	}
	if (rc == 0) {
		if (e->rec.type == 'd')
			mark_children_gone(t, l, e, "restored");
		mark_gone(t, e, "restored");
	}
out:
	free(rel);
	free(opath);
	/* recreated parents get their recorded times back, deepest first, now that the
	 * entries below them are in place */
	while (nmade > 0) {
		nmade--;
		const struct fs_trash_rec *r = made[nmade].rec;
		struct timespec ts[2] = {
			{ .tv_sec = r->atime_ns / 1000000000, .tv_nsec = r->atime_ns % 1000000000 },
			{ .tv_sec = r->mtime_ns / 1000000000, .tv_nsec = r->mtime_ns % 1000000000 },
		};
		futimens(made[nmade].fd, ts);
		close(made[nmade].fd);
	}
	if (cb)
		cb(arg, &e->rec, dest, pfd, base, rc);
	if (pfd >= 0)
		close(pfd);
	return rc;
}

static int cmp_depth(const void *a, const void *b)
{
	const struct fs_trash_entry *x = *(const struct fs_trash_entry *const *)a;
	const struct fs_trash_entry *y = *(const struct fs_trash_entry *const *)b;
	int dx = 0, dy = 0;
	for (const char *p = x->rec.path; *p; p++)
		dx += *p == '/';
	for (const char *p = y->rec.path; *p; p++)
		dy += *p == '/';
	if (dx != dy)
		return dx - dy;
	int c = strcmp(x->rec.path, y->rec.path);
	if (c)
		return c;
	return x->rec.dtime_us > y->rec.dtime_us ? -1 : x->rec.dtime_us < y->rec.dtime_us;
}

static int check_dest(char *p)
{
	if (fs_path_clean(p) != 0 || !p[0])
		return -EINVAL;
	size_t l = strcspn(p, "/");
	if ((l == strlen(FS_STATE_DIR) && !strncmp(p, FS_STATE_DIR, l)) ||
	    (l == strlen(FS_TRASH_NAME) && !strncmp(p, FS_TRASH_NAME, l)))
		return -EPERM;
	return 0;
}

int fs_trash_restore(struct fs_trash *t, const char *what, const char *to, int flags,
		     const struct fs_caller *c, fs_restore_cb cb, void *arg, struct st_error *err)
{
	struct fs_trash_list l;
	int rc = fs_trash_list(t, c->is_root ? -1 : (int64_t)c->uid, &l, err);
	if (rc)
		return rc;
	struct fs_trash_entry *target = NULL;
	int by_path = !is_id(what);
	/* paths of any length: deep trees are restored too */
	char *want = malloc(strlen(what) + 2), *dest_root = NULL;
	if (!want) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if (!by_path) {
		for (size_t i = 0; i < l.n; i++)
			if (!strcmp(l.v[i].rec.id, what))
				target = &l.v[i];
	} else {
		want[0] = '/';
		strcpy(want + 1, what[0] == '/' ? what + 1 : what);
		if (fs_path_clean(want + 1) != 0 || !want[1]) {
			rc = st_error_set(err, ST_EINVAL, "bad path '%.200s'", what);
			goto out;
		}
		for (size_t i = 0; i < l.n; i++)
			if (l.v[i].present && !strcmp(l.v[i].rec.path, want) &&
			    (!target || l.v[i].rec.dtime_us > target->rec.dtime_us))
				target = &l.v[i];
	}
	if (!target || !target->present) {
		rc = st_error_set(err, ST_ENOTFOUND, "no trash entry %s%s", what,
				  target ? " (its data is gone)" : "");
		goto out;
	}
	dest_root = strdup(to ? (to[0] == '/' ? to + 1 : to) : target->rec.path + 1);
	if (!dest_root) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = check_dest(dest_root)) != 0) {
		st_error_set(err, rc, "refusing destination '%s'", to ? to : target->rec.path);
		goto out;
	}
	/* The set: the target, and for a directory restored by path every other entry of the
	 * same owner below it (newest per path), parents first. */
	size_t nset = 0;
	struct fs_trash_entry **set = calloc(l.n, sizeof(*set));
	if (!set) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	set[nset++] = target;
	size_t tl = strlen(target->rec.path);
	if (by_path && target->rec.type == 'd')
		for (size_t i = 0; i < l.n; i++) {
			struct fs_trash_entry *e = &l.v[i];
			if (e != target && e->present &&
			    !strncmp(e->rec.path, target->rec.path, tl) && e->rec.path[tl] == '/')
				set[nset++] = e;
		}
	qsort(set + 1, nset - 1, sizeof(*set), cmp_depth);
	int restored = 0;
	rc = 0;
	const char *last_path = NULL;
	for (size_t i = 0; i < nset; i++) {
		struct fs_trash_entry *e = set[i];
		if (e->done || (last_path && !strcmp(last_path, e->rec.path)))
			continue; /* moved with its directory, or an older copy of a path */
		last_path = e->rec.path;
		char *dest;
		if (asprintf(&dest, "%s%s", dest_root, e->rec.path + tl) < 0) {
			if (i == 0)
				rc = ST_ENOMEM;
			continue;
		}
		int r1 = restore_one(t, &l, e, dest, c, flags, cb, arg);
		free(dest);
		if (r1 == 0)
			restored++;
		else if (i == 0)
			rc = r1;
		if (r1 == 0 && e->rec.type == 'd')
			last_path = e->rec.path;
	}
	/* Entries put back one by one changed the times of the directories they landed in:
	 * give those directories their recorded times again, deepest first. */
	for (size_t i = nset; i-- > 1;) {
		struct fs_trash_entry *e = set[i];
		if (!e->done)
			continue;
		const struct fs_trash_entry *d = newest_dir_record(&l, e->rec.parent);
		if (!d || strncmp(e->rec.parent, target->rec.path, tl) ||
		    (e->rec.parent[tl] && e->rec.parent[tl] != '/'))
			continue;
		char *dparent;
		if (asprintf(&dparent, "%s%s", dest_root, e->rec.parent + tl) < 0)
			continue;
		int dfd = fs_open_dir_nofollow(t->bfd, dparent);
		free(dparent);
		if (dfd < 0)
			continue;
		struct timespec ts[2] = {
			{ .tv_sec = d->rec.atime_ns / 1000000000, .tv_nsec = d->rec.atime_ns % 1000000000 },
			{ .tv_sec = d->rec.mtime_ns / 1000000000, .tv_nsec = d->rec.mtime_ns % 1000000000 },
		};
		futimens(dfd, ts);
		close(dfd);
	}
	free(set);
	if (rc) {
		st_error_set(err, rc, "cannot restore %s to /%s: %s", target->rec.path, dest_root,
			     rc == -EEXIST ? "destination exists" : st_strerror(rc));
		goto out;
	}
	rc = restored;
out:
	free(want);
	free(dest_root);
	fs_trash_list_release(&l);
	return rc;
}

/* ---- purge and expiry ------------------------------------------------------------- */

static int purge_entry(struct fs_trash *t, struct fs_trash_list *l, struct fs_trash_entry *e,
		       struct st_error *err)
{
	char rel[PATH_MAX + 64];
	snprintf(rel, sizeof(rel), "%u/%s/%s", (unsigned)e->rec.uid, e->bucket, e->rec.tpath);
	char *slash = strrchr(rel, '/');
	*slash = 0;
	int sfd = open_beneath(t->trash_fd, rel, O_PATH | O_DIRECTORY);
	if (sfd >= 0) {
		int rc = fs_rmr_enqueue(t->rmr, sfd, slash + 1, e->rec.path, e->rec.uid, "purge",
					NULL, err);
		close(sfd);
		if (rc && rc != -ENOENT)
			return rc;
	}
	if (e->rec.type == 'd')
		mark_children_gone(t, l, e, "purged");
	return mark_gone(t, e, "purged");
}

int fs_trash_purge(struct fs_trash *t, const char *const *ids, size_t nids,
		   int64_t older_than_us, const struct fs_caller *c, int all_users,
		   struct st_error *err)
{
	if (!t->rmr)
		return st_error_set(err, ST_EINVAL, "purge needs the reclaimer");
	struct fs_trash_list l;
	int rc = fs_trash_list(t, c->is_root && (all_users || nids) ? -1 : (int64_t)c->uid, &l,
			       err);
	if (rc)
		return rc;
	int purged = 0;
	int64_t now = st_now_us();
	for (size_t k = 0; k < nids; k++) {
		struct fs_trash_entry *e = NULL;
		for (size_t i = 0; i < l.n; i++)
			if (!strcmp(l.v[i].rec.id, ids[k]))
				e = &l.v[i];
		if (!e) {
			rc = st_error_set(err, ST_ENOTFOUND, "no trash entry %s", ids[k]);
			goto out;
		}
		if (e->done)
			continue;
		if ((rc = purge_entry(t, &l, e, err)) != 0)
			goto out;
		purged++;
	}
	if (!nids) {
		/* directories first, so their children leave with them in one move */
		for (int pass = 0; pass < 2; pass++)
			for (size_t i = 0; i < l.n; i++) {
				struct fs_trash_entry *e = &l.v[i];
				if (e->done || (pass == 0) != (e->rec.type == 'd'))
					continue;
				if (older_than_us > 0 && now - e->rec.dtime_us < older_than_us)
					continue;
				if ((rc = purge_entry(t, &l, e, err)) != 0)
					goto out;
				purged++;
			}
	}
	rc = purged;
out:
	fs_trash_list_release(&l);
	return rc;
}

int fs_trash_expire(struct fs_trash *t, int64_t now_us, struct st_error *err)
{
	if (!t->rmr)
		return st_error_set(err, ST_EINVAL, "expiry needs the reclaimer");
	if (t->retention_us <= 0)
		return 0;
	int dropped = 0, first_err = 0;
	int dup = openat(t->trash_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		return st_error_set(err, -EIO, "cannot read the trash");
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		unsigned long uid = strtoul(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end)
			continue;
		int ufd = openat(t->trash_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
								  O_CLOEXEC);
		int lfd = openat(t->tindex_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
								   O_CLOEXEC);
		int udup = ufd >= 0 ? fcntl(ufd, F_DUPFD_CLOEXEC, 0) : -1;
		DIR *ud = udup >= 0 ? fdopendir(udup) : NULL;
		struct dirent *be;
		while (ud && (be = readdir(ud))) {
			if (strlen(be->d_name) != 15 || be->d_name[8] != 'T')
				continue;
			char lname[32];
			snprintf(lname, sizeof(lname), "%.15s.log", be->d_name);
			struct stat st;
			/* the log's mtime is the bucket's last deletion; without a log, the dir's */
			if ((lfd < 0 || fstatat(lfd, lname, &st, 0) != 0) &&
			    fstatat(ufd, be->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			int64_t last = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
			if (now_us - last < t->retention_us)
				continue;
			/* close a cached log fd for the bucket before dropping it */
			pthread_mutex_lock(&t->lock);
			for (int i = 0; i < FS_TLOG_SLOTS; i++)
				if (t->logs[i].fd >= 0 && t->logs[i].uid == (uid_t)uid &&
				    !strcmp(t->logs[i].bucket, be->d_name)) {
					close(t->logs[i].fd);
					t->logs[i].fd = -1;
				}
			pthread_mutex_unlock(&t->lock);
			char path[64];
			snprintf(path, sizeof(path), "/%.15s", be->d_name);
			int rc = fs_rmr_enqueue(t->rmr, ufd, be->d_name, path, (uid_t)uid, "expire",
						NULL, NULL);
			if (rc == 0 || rc == -ENOENT) {
				if (lfd >= 0)
					unlinkat(lfd, lname, 0);
				dropped++;
			} else if (!first_err) {
				first_err = rc; /* err holds its message; the other buckets still go */
			}
		}
		/* logs whose bucket directory is already gone */
		int ldup = lfd >= 0 ? fcntl(lfd, F_DUPFD_CLOEXEC, 0) : -1;
		DIR *ld = ldup >= 0 ? fdopendir(ldup) : NULL;
		while (ld && (be = readdir(ld))) {
			if (strlen(be->d_name) != 19)
				continue;
			char bname[16];
			snprintf(bname, sizeof(bname), "%.15s", be->d_name);
			struct stat st, bs;
			if (fstatat(lfd, be->d_name, &st, 0) != 0 ||
			    now_us - ((int64_t)st.st_mtim.tv_sec * 1000000) < t->retention_us)
				continue;
			if (ufd < 0 || fstatat(ufd, bname, &bs, AT_SYMLINK_NOFOLLOW) != 0)
				unlinkat(lfd, be->d_name, 0);
		}
		if (ld)
			closedir(ld);
		else if (ldup >= 0)
			close(ldup);
		if (ud)
			closedir(ud);
		else if (udup >= 0)
			close(udup);
		if (ufd >= 0)
			close(ufd);
		if (lfd >= 0)
			close(lfd);
	}
	closedir(d);
	return first_err ? first_err : dropped;
}
