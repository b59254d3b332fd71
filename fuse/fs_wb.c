/* The live SSD journal (fs_wb.h): appends with group commit, overlay reads, and the
 * writeback worker that applies records to the capacity tier in journal order, fsyncs the
 * files, then advances the checkpoint and deletes the segments it no longer needs. */
#include "fuse/fs_wb.h"
#include "common/st_fault.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (1u << 20) /* largest data of one record the daemon writes */

void fs_jn_assert_state(struct fs_jn *jn)
{
	ST_ASSERT(jn->ckpt < jn->next_seq);
	ST_ASSERT(jn->committed < jn->next_seq);
	ST_ASSERT(jn->nlive >= 1 && jn->nlive <= jn->nseg);
	int64_t t;
	uint64_t oldest = fs_xindex_oldest(&jn->idx, &t);
	ST_ASSERT(oldest == 0 || oldest > jn->ckpt);
}

/* ---- segments -------------------------------------------------------------------------- */

/* An fdatasync of the journal device (counted: fs status shows syncs per fsync). */
static int jsync(struct fs_jn *jn, int fd)
{
	jn->syncs++;
	return fdatasync(fd);
}

static void spare_name(uint64_t no, char *out, size_t n)
{
	snprintf(out, n, "spare-%016llx.jnl", (unsigned long long)no);
}

/* A segment file is preallocated (PostgreSQL's WAL does the same): appends that land on
 * allocated blocks below the file's size are overwrites, and an fdatasync of an overwrite
 * is one data write and a cache flush, where an append also commits the size and the new
 * extent through the ext4/xfs journal (two more writes and a flush). So the file is
 * zero-filled and synced FS_JN_ZCHUNK ahead of the write position, one metadata commit
 * per chunk instead of one per fsync, and reclaimed files are reused (spares). A reused
 * file still holds old records: every append writes an all-zero record header after its
 * record (the scanner stops there), and old records that survive a crash past that point
 * carry lower sequence numbers, which the scanner treats as the end of valid data. */
static int seg_zero_to(struct fs_jn *jn, struct fs_jseg *sg, uint64_t end)
{
	static const unsigned char zeros[1u << 16];
	if (end <= jn->zeroed)
		return 0;
	uint64_t to = jn->zeroed + FS_JN_ZCHUNK > end ? jn->zeroed + FS_JN_ZCHUNK : end;
	if (to > jn->seg_size)
		to = jn->seg_size;
	for (uint64_t at = jn->zeroed; at < to;) {
		size_t n = to - at < sizeof(zeros) ? (size_t)(to - at) : sizeof(zeros);
		ssize_t w = pwrite(sg->fd, zeros, n, (off_t)at);
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		at += (uint64_t)w;
	}
	if (jsync(jn, sg->fd) != 0)
		return -errno;
	jn->zeroed = to;
	return 0;
}

/* The next segment: a spare renamed, or a new file. Its header and an all-zero record
 * header after it are durable before any record goes in. */
static int seg_new(struct fs_jn *jn)
{
	char name[40], old[40];
	unsigned char hdr[FS_JSEG_HDR + FS_JREC_HDR] = { 0 };
	uint64_t no = jn->next_segno;
	fs_jseg_name(no, name, sizeof(name));
	fs_jseg_header(no, jn->uuid, hdr);
	int fd = -1;
	if (jn->nspare) {
		spare_name(jn->spare[--jn->nspare], old, sizeof(old));
		if (renameat(jn->dirfd, old, jn->dirfd, name) == 0)
			fd = openat(jn->dirfd, name, O_RDWR | O_CLOEXEC);
		else
			unlinkat(jn->dirfd, old, 0);
	}
	struct stat st = { 0 };
	if (fd < 0)
		fd = openat(jn->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (fstat(fd, &st) != 0 || pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    jsync(jn, fd) != 0 || fsync(jn->dirfd) != 0) {
		int e = errno ? errno : EIO;
		close(fd);
		unlinkat(jn->dirfd, name, 0);
		return -e;
	}
	jn->next_segno++;
	jn->segs[jn->nlive++] = (struct fs_jseg){ .no = no, .fd = fd };
	jn->wpos = FS_JSEG_HDR;
	jn->zeroed = (uint64_t)st.st_size > sizeof(hdr) ? (uint64_t)st.st_size : sizeof(hdr);
	if (jn->zeroed > jn->seg_size)
		jn->zeroed = jn->seg_size;
	return 0;
}

static struct fs_jseg *cur_seg(struct fs_jn *jn)
{
	return &jn->segs[jn->nlive - 1];
}

static int seg_fd(struct fs_jn *jn, uint64_t no)
{
	for (unsigned i = 0; i < jn->nlive; i++)
		if (jn->segs[i].no == no)
			return jn->segs[i].fd;
	return -1;
}

/* Deletes the oldest segments whose records are all checkpointed (never the written one),
 * keeping up to FS_JN_SPARES of their files for reuse. */
static void seg_reclaim(struct fs_jn *jn)
{
	unsigned k = 0;
	while (k + 1 < jn->nlive && jn->segs[k].last_seq <= jn->ckpt) {
		char name[40], sp[40];
		fs_jseg_name(jn->segs[k].no, name, sizeof(name));
		close(jn->segs[k].fd);
		spare_name(jn->segs[k].no, sp, sizeof(sp));
		if (jn->nspare < FS_JN_SPARES && renameat(jn->dirfd, name, jn->dirfd, sp) == 0)
			jn->spare[jn->nspare++] = jn->segs[k].no;
		else if (unlinkat(jn->dirfd, name, 0) != 0)
			st_warn("journal: cannot delete %s: %s", name, strerror(errno));
		k++;
	}
	if (k) {
		memmove(jn->segs, jn->segs + k, (jn->nlive - k) * sizeof(*jn->segs));
		jn->nlive -= k;
		pthread_cond_broadcast(&jn->cond);
	}
}

/* Spare files left by an earlier mount (their old records could carry sequence numbers
 * this mount reuses after a crash: never reused across mounts). */
static void spares_drop(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "spare-", 6))
			unlinkat(dirfd, e->d_name, 0);
	closedir(d);
}

/* Room for need bytes plus a commit record in the written segment: seals it (durable)
 * and opens the next, waiting for writeback while the journal is full (backpressure). */
static int make_room(struct fs_jn *jn, size_t need, size_t reserve)
{
	if (jn->wpos + need + reserve <= jn->seg_size)
		return 0;
	if (jsync(jn, cur_seg(jn)->fd) != 0)
		return -errno;
	while (jn->nlive >= jn->nseg) {
		jn->waits++;
		if (jn->wb_target < jn->last_data_seq)
			jn->wb_target = jn->last_data_seq;
		pthread_cond_signal(&jn->wcond);
		pthread_cond_wait(&jn->cond, &jn->lock);
	}
	return seg_new(jn);
}

/* Appends one record (lock held); returns its seq or 0 with *e set. */
static uint64_t append(struct fs_jn *jn, struct fs_jrec *r, const void *data, int *e)
{
	static const unsigned char end[FS_JREC_HDR];
	size_t need = FS_JREC_HDR + r->len;
	/* room for the record, the all-zero header after it and, after data or a truncate, a
	 * commit */
	if ((*e = make_room(jn, need, FS_JREC_HDR * (r->type != FS_JREC_COMMIT ? 2 : 1))) != 0 ||
	    (*e = seg_zero_to(jn, cur_seg(jn), jn->wpos + need + FS_JREC_HDR)) != 0)
		return 0;
	if (r->type == FS_JREC_DATA && ST_FAULT("journal.append")) {
		*e = -EIO;
		return 0;
	}
	r->seq = jn->next_seq;
	unsigned char hdr[FS_JREC_HDR];
	fs_jrec_encode(r, data, hdr);
	struct iovec iov[3] = { { hdr, sizeof(hdr) }, { (void *)data, r->len },
				{ (void *)end, sizeof(end) } };
	ssize_t n = pwritev(cur_seg(jn)->fd, iov, 3, (off_t)jn->wpos);
	if (n != (ssize_t)(need + sizeof(end))) {
		*e = n < 0 ? -errno : -EIO;
		return 0;
	}
	jn->next_seq++;
	cur_seg(jn)->last_seq = r->seq;
	jn->wpos += need;
	return r->seq;
}

/* ---- group commit ----------------------------------------------------------------------- */

/* Returns once every record with seq <= target is covered by a durable commit record. One
 * thread syncs for all waiting (group commit). 0 or -errno. */
static int commit_upto(struct fs_jn *jn, uint64_t target)
{
	int rc = 0;
	pthread_mutex_lock(&jn->lock);
	while (jn->committed < target && rc == 0) {
		if (jn->syncing) {
			pthread_cond_wait(&jn->cond, &jn->lock);
			continue;
		}
		jn->syncing = 1;
		uint64_t cover = jn->next_seq - 1;
		struct fs_jrec c = { .type = FS_JREC_COMMIT, .off = cover };
		int e = 0;
		append(jn, &c, NULL, &e);
		int fd = cur_seg(jn)->fd;
		pthread_mutex_unlock(&jn->lock);
		if (e == 0 && ST_FAULT("journal.sync"))
			e = -EIO;
		if (e == 0 && fdatasync(fd) != 0)
			e = -errno;
		pthread_mutex_lock(&jn->lock);
		jn->syncs++;
		jn->syncing = 0;
		if (e && jn->ckpt >= cover)
			e = 0; /* all on the capacity tier meanwhile (its segment may be gone) */
		if (e == 0 && cover > jn->committed)
			jn->committed = cover;
		rc = e;
		pthread_cond_broadcast(&jn->cond);
	}
	pthread_mutex_unlock(&jn->lock);
	return rc;
}

/* ---- foreground ---------------------------------------------------------------------- */

static int set_handle(struct fs_xfile *f, int fd)
{
	union { struct file_handle fh; unsigned char b[sizeof(struct file_handle) + FS_JH_MAX]; } u;
	int mnt;
	u.fh.handle_bytes = FS_JH_MAX;
	if (name_to_handle_at(fd, "", &u.fh, &mnt, AT_EMPTY_PATH) != 0)
		return -errno;
	fs_xfile_set_handle(f, u.fh.handle_type, u.fh.handle_bytes, u.fh.f_handle);
	return 0;
}

int fs_jn_flush_file(struct fs_jn *jn, dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&jn->lock);
	struct fs_xfile *f = fs_xfile_get(&jn->idx, dev, ino, 0);
	uint64_t target = f ? fs_xfile_last_seq(f) : 0, fails = jn->wb_fails;
	int rc = 0;
	if (target > jn->ckpt) {
		if (jn->wb_target < target)
			jn->wb_target = target;
		pthread_cond_signal(&jn->wcond);
		while (jn->ckpt < target && rc == 0) {
			pthread_cond_wait(&jn->cond, &jn->lock);
			if (jn->wb_fails != fails)
				rc = -EIO;
		}
	}
	pthread_mutex_unlock(&jn->lock);
	return rc;
}

/* Starts writing [off, off+len) of fd out to its device without waiting: the page cache
 * would otherwise hold it until the dirty thresholds or the round's fsync, and a slow
 * capacity tier would sit idle while a writeback round or a bypassed run copies (the
 * fsync that follows finds most of it on its way). Best effort: fsync stays the rule. */
static void start_writeout(int fd, uint64_t off, uint64_t len)
{
	(void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
}

ssize_t fs_jn_write(struct fs_jn *jn, dev_t dev, ino_t ino, int fd, const void *buf,
		    size_t len, off_t off)
{
	pthread_mutex_lock(&jn->lock);
	struct fs_xfile *f = fs_xfile_get(&jn->idx, dev, ino, 1);
	int e = !f ? -ENOMEM : 0;
	int32_t ht;
	uint32_t hl;
	unsigned char *h;
	if (f) {
		fs_xfile_handle(f, &ht, &hl, &h);
		if (hl == 0)
			e = set_handle(f, fd);
	}
	if (e) {
		pthread_mutex_unlock(&jn->lock);
		return e;
	}
	if (jn->bypass && fs_xfile_run(f, (uint64_t)off, len) > jn->bypass) {
		/* a sequential run: straight to the capacity tier once nothing of the file is
		 * left in the journal (replay must never put older data over it) */
		int dirty = fs_xfile_last_seq(f) > jn->ckpt;
		fs_xfile_set_bypassed(f, 1);
		pthread_mutex_unlock(&jn->lock);
		if (dirty && (e = fs_jn_flush_file(jn, dev, ino)) != 0)
			return e;
		ssize_t n = pwrite(fd, buf, len, off);
		if (n > 0)
			start_writeout(fd, (uint64_t)off, (uint64_t)n);
		return n < 0 ? -errno : n;
	}
	fs_xfile_handle(f, &ht, &hl, &h);
	size_t done = 0;
	int64_t now = st_mono_us();
	while (done < len) {
		uint32_t n = len - done > CHUNK ? CHUNK : (uint32_t)(len - done);
		struct fs_jrec r = { .type = FS_JREC_DATA, .off = (uint64_t)off + done, .len = n,
				     .htype = ht, .hlen = hl };
		memcpy(r.h, h, hl);
		uint64_t seq = append(jn, &r, (const char *)buf + done, &e);
		if (!seq)
			break;
		/* the data ends where the segment's write position now is */
		uint64_t dpos = jn->wpos - n;
		if (fs_xt_add(&jn->idx, f, seq, r.off, n, cur_seg(jn)->no, dpos, now) != 0) {
			e = -ENOMEM; /* the record stays in the journal: writeback finds it on replay */
			break;
		}
		jn->last_data_seq = seq;
		done += n;
	}
	if (done) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fs_xfile_mtime(f, &ts, 1);
	}
	pthread_mutex_unlock(&jn->lock);
	return done ? (ssize_t)done : e;
}

static int read_seg(void *arg, uint64_t segno, uint64_t pos, void *dst, size_t n)
{
	struct fs_jn *jn = arg;
	int fd = seg_fd(jn, segno);
	if (fd < 0)
		return -EIO;
	ssize_t r = pread(fd, dst, n, (off_t)pos);
	return r == (ssize_t)n ? 0 : (r < 0 ? -errno : -EIO);
}

ssize_t fs_jn_read(struct fs_jn *jn, dev_t dev, ino_t ino, int fd, void *buf, size_t len,
		   off_t off)
{
	pthread_mutex_lock(&jn->lock);
	struct fs_xfile *f = fs_xfile_get(&jn->idx, dev, ino, 0);
	ssize_t rc = -ENODATA;
	struct stat st;
	if (!f || !fs_xfile_dirty(f))
		goto out;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	uint64_t size = fs_xfile_size(f, (uint64_t)st.st_size);
	if ((uint64_t)off >= size) {
		rc = 0;
		goto out;
	}
	size_t want = size - (uint64_t)off < len ? (size_t)(size - (uint64_t)off) : len;
	size_t got = 0;
	while (got < want) {
		ssize_t n = pread(fd, (char *)buf + got, want - got, off + (off_t)got);
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	memset((char *)buf + got, 0, want - got);
	int e = fs_xfile_overlay(f, buf, (uint64_t)off, want, read_seg, jn);
	rc = e ? e : (ssize_t)want;
out:
	pthread_mutex_unlock(&jn->lock);
	return rc;
}

int fs_jn_dirty(struct fs_jn *jn, dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&jn->lock);
	struct fs_xfile *f = fs_xfile_get(&jn->idx, dev, ino, 0);
	int d = f && fs_xfile_dirty(f);
	pthread_mutex_unlock(&jn->lock);
	return d;
}

void fs_jn_stat(struct fs_jn *jn, struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return;
	pthread_mutex_lock(&jn->lock);
	struct fs_xfile *f = fs_xfile_get(&jn->idx, st->st_dev, st->st_ino, 0);
	if (f && fs_xfile_dirty(f)) {
		st->st_size = (off_t)fs_xfile_size(f, (uint64_t)st->st_size);
		struct timespec ts;
		fs_xfile_mtime(f, &ts, 0);
		if (ts.tv_sec > st->st_mtim.tv_sec ||
		    (ts.tv_sec == st->st_mtim.tv_sec && ts.tv_nsec > st->st_mtim.tv_nsec))
			st->st_mtim = st->st_ctim = ts;
	}
	pthread_mutex_unlock(&jn->lock);
}

int fs_jn_truncate(struct fs_jn *jn, dev_t dev, ino_t ino, uint64_t size)
{
	pthread_mutex_lock(&jn->lock);
	struct fs_xfile *f = fs_xfile_get(&jn->idx, dev, ino, 0);
	if (!f || !fs_xfile_dirty(f)) {
		pthread_mutex_unlock(&jn->lock);
		return 1;
	}
	int32_t ht;
	uint32_t hl;
	unsigned char *h;
	fs_xfile_handle(f, &ht, &hl, &h);
	struct fs_jrec r = { .type = FS_JREC_TRUNC, .off = size, .htype = ht, .hlen = hl };
	memcpy(r.h, h, hl);
	int e = 0;
	uint64_t seq = append(jn, &r, NULL, &e);
	if (seq && fs_xt_trunc(&jn->idx, f, seq, size, st_mono_us()) != 0)
		e = -ENOMEM; /* in the journal only: a replay applies it */
	if (seq && !e) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fs_xfile_mtime(f, &ts, 1);
		jn->last_data_seq = seq;
	}
	pthread_mutex_unlock(&jn->lock);
	/* durable before the capacity file is cut: a replay must never put the data it cut
	 * back without cutting it again */
	return e ? e : commit_upto(jn, seq);
}

int fs_jn_fsync(struct fs_jn *jn, dev_t dev, ino_t ino, int fd)
{
	pthread_mutex_lock(&jn->lock);
	jn->fsyncs++;
	uint64_t target = jn->last_data_seq;
	struct fs_xfile *f = fs_xfile_get(&jn->idx, dev, ino, 0);
	int byp = f && fs_xfile_bypassed(f);
	if (byp)
		fs_xfile_set_bypassed(f, 0);
	pthread_mutex_unlock(&jn->lock);
	int rc = commit_upto(jn, target);
	if (rc == 0 && byp && fdatasync(fd) != 0)
		rc = -errno;
	return rc;
}

/* ---- writeback -------------------------------------------------------------------------- */

struct wb_item {
	int32_t htype;
	uint32_t hlen;
	unsigned char h[FS_JH_MAX];
	uint64_t off, dpos;
	uint32_t len;
	int segfd;        /* -1 for a truncate to off */
	struct timespec mtime; /* of the file's newest journaled change (what stat showed) */
};

struct wb_batch {
	struct fs_jn *jn;
	struct wb_item *v;
	size_t n, cap;
	uint64_t bytes;   /* written to capacity files in this round */
};

static int collect(void *arg, struct fs_xfile *f, uint64_t seq, uint64_t off, uint32_t len,
		   uint64_t segno, uint64_t dpos)
{
	(void)seq;
	struct wb_batch *b = arg;
	if (len == 0 && segno != FS_XT_TRUNC)
		return 0; /* cut off entirely by a later truncate */
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct wb_item *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	struct wb_item *it = &b->v[b->n++];
	unsigned char *h;
	fs_xfile_handle(f, &it->htype, &it->hlen, &h);
	memcpy(it->h, h, it->hlen);
	it->off = off;
	it->len = len;
	it->dpos = dpos;
	it->segfd = segno == FS_XT_TRUNC ? -1 : seg_fd(b->jn, segno);
	fs_xfile_mtime(f, &it->mtime, 0);
	return 0;
}

/* Files opened for one batch, fsync'ed at its end. m0: a file's mtime before the batch wrote
 * to it (the writes of the batch move it to the writeback's own time). */
struct wb_files {
	int *fd;
	struct wb_item **key;
	struct timespec *m0;
	size_t n, cap;
};

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Gives a written-back file the mtime stat showed while its data was in the journal (the
 * later of the capacity file's own and the newest journaled change), not the time of the
 * writeback: make, rsync and backups compare mtimes. */
static int wb_restore_mtime(int fd, const struct timespec *m0, const struct timespec *mj)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, ts_before(m0, mj) ? *mj : *m0 };
	return futimens(fd, ts);
}

static int same_file(const struct wb_item *a, const struct wb_item *b)
{
	return a->htype == b->htype && a->hlen == b->hlen && !memcmp(a->h, b->h, a->hlen);
}

/* fd of the item's file (-1: it no longer exists, so its data no longer matters). */
static int wb_open(struct fs_jn *jn, struct wb_files *fs, struct wb_item *it, int *e)
{
	for (size_t i = fs->n; i-- > 0;)
		if (same_file(fs->key[i], it))
			return fs->fd[i];
	union { struct file_handle fh; unsigned char b[sizeof(struct file_handle) + FS_JH_MAX]; } u;
	u.fh.handle_bytes = it->hlen;
	u.fh.handle_type = it->htype;
	memcpy(u.fh.f_handle, it->h, it->hlen);
	int fd = open_by_handle_at(jn->bfd, &u.fh, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ESTALE && errno != ENOENT)
			*e = -errno;
	}
	if (fs->n == fs->cap) {
		size_t cap = fs->cap ? fs->cap * 2 : 64;
		int *nf = realloc(fs->fd, cap * sizeof(int));
		if (nf)
			fs->fd = nf;
		struct wb_item **nk = nf ? realloc(fs->key, cap * sizeof(*nk)) : NULL;
		if (nk)
			fs->key = nk;
		struct timespec *nm = nk ? realloc(fs->m0, cap * sizeof(*nm)) : NULL;
		if (!nm) {
			if (fd >= 0)
				close(fd);
			*e = -ENOMEM;
			return -1;
		}
		fs->m0 = nm;
		fs->cap = cap;
	}
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) != 0) {
		*e = -errno;
		close(fd);
		return -1;
	}
	fs->m0[fs->n] = fd >= 0 ? st.st_mtim : (struct timespec){ 0 };
	fs->fd[fs->n] = fd;
	fs->key[fs->n++] = it;
	return fd;
}

/* Truncates fd to size unless it has that size: the caller cut the capacity file when
 * it recorded the truncate; this cuts what a round that was copying then wrote past it. */
static int wb_truncate(int fd, uint64_t size)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	return (uint64_t)st.st_size == size ? 0 : ftruncate(fd, (off_t)size);
}

/* Applies the batch and fsyncs its files. 0 or -errno (nothing is checkpointed then). */
static int wb_apply(struct fs_jn *jn, struct wb_batch *b)
{
	struct wb_files fs = { 0 };
	unsigned char *buf = malloc(CHUNK);
	int e = buf ? 0 : -ENOMEM;
	for (size_t i = 0; i < b->n && e == 0; i++) {
		struct wb_item *it = &b->v[i];
		int fd = wb_open(jn, &fs, it, &e);
		if (fd < 0)
			continue;
		if (it->len == 0) { /* a truncate, again in journal order (see fs_jn_truncate) */
			if (ST_FAULT("wb.apply") || wb_truncate(fd, it->off) != 0)
				e = errno > 0 && errno != EEXIST ? -errno : -EIO;
			continue;
		}
		if (it->segfd < 0 || pread(it->segfd, buf, it->len, (off_t)it->dpos) != (ssize_t)it->len) {
			e = -EIO;
			break;
		}
		if (ST_FAULT("wb.apply") || pwrite(fd, buf, it->len, (off_t)it->off) != (ssize_t)it->len) {
			e = errno > 0 && errno != EEXIST ? -errno : -EIO;
		} else {
			b->bytes += it->len;
			start_writeout(fd, it->off, it->len);
		}
	}
	for (size_t i = 0; i < fs.n; i++)
		if (fs.fd[i] >= 0) {
			if (e == 0 && wb_restore_mtime(fs.fd[i], &fs.m0[i], &fs.key[i]->mtime) != 0)
				e = -errno;
			if (e == 0 && fsync(fs.fd[i]) != 0)
				e = -errno;
			close(fs.fd[i]);
		}
	free(fs.fd);
	free(fs.key);
	free(fs.m0);
	free(buf);
	return e;
}

static int urgent(struct fs_jn *jn, int64_t *wait_us)
{
	int64_t t;
	uint64_t oldest = fs_xindex_oldest(&jn->idx, &t);
	*wait_us = 1000000;
	if (!oldest)
		return 0;
	if (jn->stop || jn->wb_target >= oldest || jn->nlive * 2 > jn->nseg)
		return 1;
	int64_t age = st_mono_us() - t;
	if (age >= jn->max_age_us)
		return 1;
	*wait_us = jn->max_age_us - age;
	return 0;
}

static void wait_us(struct fs_jn *jn, int64_t us)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += us / 1000000;
	ts.tv_nsec += (us % 1000000) * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&jn->wcond, &jn->lock, &ts);
}

static void *wb_main(void *arg)
{
	struct fs_jn *jn = arg;
	struct wb_batch b = { .jn = jn };
	pthread_mutex_lock(&jn->lock);
	for (;;) {
		int64_t w;
		if (!urgent(jn, &w)) {
			if (jn->stop)
				break;
			wait_us(jn, w);
			continue;
		}
		uint64_t upto = jn->last_data_seq;
		b.n = 0;
		b.bytes = 0;
		int e = fs_xindex_walk(&jn->idx, upto, collect, &b);
		pthread_mutex_unlock(&jn->lock);
		struct st_error err = { 0 };
		if (e == 0)
			e = wb_apply(jn, &b);
		if (e == 0 && (ST_FAULT("wb.checkpoint") || fs_jckpt_write(jn->dirfd, upto, &err) != 0))
			e = -EIO;
		pthread_mutex_lock(&jn->lock);
		if (e) {
			st_warn("journal writeback: %s (retrying)", err.msg[0] ? err.msg : strerror(-e));
			jn->wb_fails++;
			pthread_cond_broadcast(&jn->cond);
			wait_us(jn, 200000);
			continue;
		}
		jn->wb_records += b.n;
		jn->wb_bytes += b.bytes;
		jn->wb_hist[jn->wb_hist_next % FS_JN_RATE_ROUNDS] =
			(struct fs_jn_round){ .t_us = st_mono_us(), .bytes = b.bytes };
		jn->wb_hist_next++;
		if (upto > jn->ckpt)
			jn->ckpt = upto;
		if (jn->committed < jn->ckpt)
			jn->committed = jn->ckpt; /* on the capacity tier: durable either way */
		fs_xindex_drop(&jn->idx, upto);
		seg_reclaim(jn);
		fs_jn_assert_state(jn);
		pthread_cond_broadcast(&jn->cond);
	}
	pthread_mutex_unlock(&jn->lock);
	free(b.v);
	return NULL;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

int fs_jn_open(struct fs_jn *jn, const char *dir, int bfd, uint64_t size, int64_t max_age_us,
	       uint64_t bypass, int cto, struct fs_jreplay *rep, struct st_error *err)
{
	memset(jn, 0, sizeof(*jn));
	memset(rep, 0, sizeof(*rep));
	jn->bfd = bfd;
	jn->max_age_us = max_age_us;
	jn->bypass = bypass;
	jn->cto = cto;
	jn->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (jn->dirfd < 0)
		return st_error_set(err, ST_EIO, "journal dir %s: %s", dir, strerror(errno));
	char id[FS_JUUID_HEX];
	int rc = fs_jbacking_id(bfd, 1, id, err);
	struct fs_jmeta m;
	if (rc == 0 && (rc = fs_jmeta_read(jn->dirfd, &m, err)) == ST_ENOTFOUND) {
		uint64_t *segs;
		int n = fs_jseg_list(jn->dirfd, &segs, err);
		if (n < 0)
			return err->code;
		free(segs);
		if (n > 0)
			return st_error_set(err, ST_ECORRUPT,
					    "journal dir %s has segments but no meta file", dir);
		memset(&m, 0, sizeof(m));
		snprintf(m.uuid, sizeof(m.uuid), "%s", id);
		m.seg_size = size / 8;
		rc = fs_jmeta_write(jn->dirfd, &m, err);
	} else if (rc == 0 && strcmp(m.uuid, id) != 0) {
		rc = st_error_set(err, ST_EINVAL,
				  "journal %s belongs to another backing dir (journal uuid %s, "
				  "backing uuid %s)", dir, m.uuid, id);
	}
	if (rc == 0)
		rc = fs_jreplay(jn->dirfd, bfd, rep, err);
	if (rc == 0)
		spares_drop(jn->dirfd);
	if (rc) {
		close(jn->dirfd);
		return rc;
	}
	snprintf(jn->uuid, sizeof(jn->uuid), "%s", m.uuid);
	jn->seg_size = m.seg_size;
	jn->nseg = size / m.seg_size >= 2 ? (unsigned)(size / m.seg_size) : 2;
	jn->ckpt = jn->committed = rep->new_ckpt;
	jn->next_seq = rep->new_ckpt + 1;
	jn->next_segno = 1;
	jn->segs = calloc(jn->nseg, sizeof(*jn->segs));
	pthread_mutex_init(&jn->lock, NULL);
	pthread_cond_init(&jn->cond, NULL);
	pthread_cond_init(&jn->wcond, NULL);
	int e = jn->segs ? seg_new(jn) : -ENOMEM;
	if (e) {
		free(jn->segs);
		close(jn->dirfd);
		return st_error_set(err, ST_EIO, "journal %s: new segment: %s", dir, strerror(-e));
	}
	return 0;
}

void fs_jn_stats(struct fs_jn *jn, struct fs_jn_stats *o)
{
	memset(o, 0, sizeof(*o));
	int64_t now = st_mono_us(), t;
	pthread_mutex_lock(&jn->lock);
	o->seg_size = jn->seg_size;
	o->segs_total = jn->nseg;
	o->segs_used = jn->nlive;
	o->capacity_bytes = jn->seg_size * jn->nseg;
	o->used_bytes = (jn->nlive ? jn->nlive - 1 : 0) * jn->seg_size + jn->wpos;
	o->dirty_bytes = jn->idx.dirty_bytes;
	if (fs_xindex_oldest(&jn->idx, &t))
		o->oldest_dirty_age_s = (double)(now - t) / 1e6;
	o->wb_bytes = jn->wb_bytes;
	o->wb_records = jn->wb_records;
	o->wb_fails = jn->wb_fails;
	o->waits = jn->waits;
	o->next_seq = jn->next_seq;
	o->committed = jn->committed;
	o->ckpt = jn->ckpt;
	o->syncs = jn->syncs;
	o->fsyncs = jn->fsyncs;
	/* writeback rate: the rounds that ended in the last FS_JN_RATE_WINDOW_US */
	int64_t window = now - jn->started_us < FS_JN_RATE_WINDOW_US ? now - jn->started_us
								    : FS_JN_RATE_WINDOW_US;
	uint64_t sum = 0;
	for (unsigned i = 0; i < FS_JN_RATE_ROUNDS && i < jn->wb_hist_next; i++)
		if (now - jn->wb_hist[i].t_us <= window)
			sum += jn->wb_hist[i].bytes;
	o->wb_rate_bps = window > 0 ? (double)sum * 1e6 / (double)window : 0;
	pthread_mutex_unlock(&jn->lock);
}

int fs_jn_start(struct fs_jn *jn)
{
	jn->started_us = st_mono_us();
	if (pthread_create(&jn->worker, NULL, wb_main, jn) != 0)
		return -1;
	jn->running = 1;
	return 0;
}

void fs_jn_close(struct fs_jn *jn)
{
	if (jn->running) {
		pthread_mutex_lock(&jn->lock);
		jn->stop = 1;
		pthread_cond_signal(&jn->wcond);
		pthread_mutex_unlock(&jn->lock);
		pthread_join(jn->worker, NULL);
	}
	int64_t t;
	int clean = fs_xindex_oldest(&jn->idx, &t) == 0;
	for (unsigned i = 0; i < jn->nlive; i++) {
		char name[40];
		fs_jseg_name(jn->segs[i].no, name, sizeof(name));
		close(jn->segs[i].fd);
		if (clean)
			unlinkat(jn->dirfd, name, 0);
	}
	spares_drop(jn->dirfd);
	if (clean) {
		struct st_error err = { 0 };
		if (fs_jckpt_write(jn->dirfd, jn->next_seq - 1, &err) != 0)
			st_warn("journal: %s", err.msg);
	} else {
		st_warn("journal: unmounted with data not written back; the next mount replays it");
	}
	fs_xindex_free(&jn->idx);
	free(jn->segs);
	close(jn->dirfd);
	pthread_mutex_destroy(&jn->lock);
	pthread_cond_destroy(&jn->cond);
	pthread_cond_destroy(&jn->wcond);
}
