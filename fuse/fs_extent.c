/* Per-inode index of journaled extents not yet checkpointed (see fs_wb.h): a hash of files
 * by (dev, ino), each with its extents in journal order, plus one list of all extents in
 * journal order for the writeback worker. Reads overlay a file's extents oldest first, so
 * newer data wins where they overlap; a truncate is an extent too (segno FS_XT_TRUNC, no
 * data) that cuts what lies past it, and cuts the older extents of its file in the index
 * so that what it cut off is never written back. Callers hold the journal's lock. */
#include "fuse/fs_wb.h"

#include <stdlib.h>
#include <string.h>

struct fs_xt {
	uint64_t seq, off, segno, dpos;
	uint32_t len;
	int64_t t_us;
	struct fs_xfile *f;
	struct fs_xt *fnext;          /* the file's next extent */
	struct fs_xt *gnext;          /* next in journal order */
};

struct fs_xfile {
	dev_t dev;
	ino_t ino;
	int32_t htype;
	uint32_t hlen;
	unsigned char h[FS_JH_MAX];
	struct fs_xt *head, *tail;
	uint64_t last_seq;            /* newest record of it ever appended */
	uint64_t run_next, run;       /* sequential run: next expected offset, bytes so far */
	int bypassed;                 /* bypassed writes since its last fsync */
	struct timespec mtime;        /* of its newest journaled write */
	struct fs_xfile *hnext;
};

static size_t slot(const struct fs_xindex *x, dev_t dev, ino_t ino)
{
	uint64_t k = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (size_t)(k % x->nb);
}

struct fs_xfile *fs_xfile_get(struct fs_xindex *x, dev_t dev, ino_t ino, int create)
{
	if (!x->b) {
		if (!create)
			return NULL;
		x->nb = 4096;
		x->b = calloc(x->nb, sizeof(*x->b));
		if (!x->b)
			return NULL;
	}
	size_t s = slot(x, dev, ino);
	for (struct fs_xfile *f = x->b[s]; f; f = f->hnext)
		if (f->dev == dev && f->ino == ino)
			return f;
	if (!create)
		return NULL;
	struct fs_xfile *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->dev = dev;
	f->ino = ino;
	f->hnext = x->b[s];
	x->b[s] = f;
	return f;
}

int fs_xt_add(struct fs_xindex *x, struct fs_xfile *f, uint64_t seq, uint64_t off,
	      uint32_t len, uint64_t segno, uint64_t dpos, int64_t now_us)
{
	struct fs_xt *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	*t = (struct fs_xt){ .seq = seq, .off = off, .segno = segno, .dpos = dpos, .len = len,
			     .t_us = now_us, .f = f };
	if (f->tail)
		f->tail->fnext = t;
	else
		f->head = t;
	f->tail = t;
	if (x->gtail)
		x->gtail->gnext = t;
	else
		x->ghead = t;
	x->gtail = t;
	f->last_seq = seq;
	x->dirty_bytes += len;
	return 0;
}

int fs_xfile_overlay(struct fs_xfile *f, unsigned char *buf, uint64_t off, size_t len,
		     int (*read)(void *, uint64_t, uint64_t, void *, size_t), void *arg)
{
	for (struct fs_xt *t = f->head; t; t = t->fnext) {
		uint64_t a = t->off > off ? t->off : off;
		uint64_t b = t->segno == FS_XT_TRUNC ? off + len
			   : t->off + t->len < off + len ? t->off + t->len : off + len;
		if (a >= b)
			continue;
		if (t->segno == FS_XT_TRUNC) { /* nothing older survives past the cut */
			memset(buf + (a - off), 0, (size_t)(b - a));
			continue;
		}
		int rc = read(arg, t->segno, t->dpos + (a - t->off), buf + (a - off), (size_t)(b - a));
		if (rc)
			return rc;
	}
	return 0;
}

uint64_t fs_xfile_size(const struct fs_xfile *f, uint64_t cap_size)
{
	uint64_t size = cap_size;
	for (const struct fs_xt *t = f->head; t; t = t->fnext)
		if (t->segno == FS_XT_TRUNC)
			size = t->off;
		else if (t->len && t->off + t->len > size)
			size = t->off + t->len;
	return size;
}

int fs_xt_trunc(struct fs_xindex *x, struct fs_xfile *f, uint64_t seq, uint64_t size,
		int64_t now_us)
{
	for (struct fs_xt *t = f->head; t; t = t->fnext) {
		if (t->segno == FS_XT_TRUNC || t->off + t->len <= size)
			continue;
		uint32_t keep = t->off >= size ? 0 : (uint32_t)(size - t->off);
		x->dirty_bytes -= t->len - keep;
		t->len = keep;
	}
	return fs_xt_add(x, f, seq, size, 0, FS_XT_TRUNC, 0, now_us);
}
int fs_xfile_dirty(const struct fs_xfile *f) { return f->head != NULL; }
uint64_t fs_xfile_last_seq(const struct fs_xfile *f) { return f->last_seq; }

uint64_t fs_xindex_oldest(const struct fs_xindex *x, int64_t *t_us)
{
	if (!x->ghead)
		return 0;
	*t_us = x->ghead->t_us;
	return x->ghead->seq;
}

int fs_xindex_walk(struct fs_xindex *x, uint64_t upto, fs_xt_fn fn, void *arg)
{
	for (struct fs_xt *t = x->ghead; t && t->seq <= upto; t = t->gnext) {
		int rc = fn(arg, t->f, t->seq, t->off, t->len, t->segno, t->dpos);
		if (rc)
			return rc;
	}
	return 0;
}

void fs_xindex_drop(struct fs_xindex *x, uint64_t upto)
{
	while (x->ghead && x->ghead->seq <= upto) {
		struct fs_xt *t = x->ghead;
		struct fs_xfile *f = t->f;
		x->ghead = t->gnext;
		if (!x->ghead)
			x->gtail = NULL;
		/* a file's extents are in journal order too: t is its head */
		f->head = t->fnext;
		if (!f->head)
			f->tail = NULL;
		x->dirty_bytes -= t->len;
		free(t);
	}
}

void fs_xfile_handle(struct fs_xfile *f, int32_t *htype, uint32_t *hlen, unsigned char **h)
{
	*htype = f->htype;
	*hlen = f->hlen;
	*h = f->h;
}

void fs_xfile_set_handle(struct fs_xfile *f, int32_t htype, uint32_t hlen, const unsigned char *h)
{
	f->htype = htype;
	f->hlen = hlen <= FS_JH_MAX ? hlen : FS_JH_MAX;
	memcpy(f->h, h, f->hlen);
}

uint64_t fs_xfile_run(struct fs_xfile *f, uint64_t off, uint64_t len)
{
	f->run = off == f->run_next ? f->run + len : len;
	f->run_next = off + len;
	return f->run;
}

void fs_xfile_set_bypassed(struct fs_xfile *f, int v) { f->bypassed = v; }
int fs_xfile_bypassed(const struct fs_xfile *f) { return f->bypassed; }

void fs_xfile_mtime(struct fs_xfile *f, struct timespec *ts, int set)
{
	if (set)
		f->mtime = *ts;
	else
		*ts = f->mtime;
}

void fs_xindex_free(struct fs_xindex *x)
{
	fs_xindex_drop(x, UINT64_MAX);
	for (size_t i = 0; x->b && i < x->nb; i++)
		while (x->b[i]) {
			struct fs_xfile *f = x->b[i];
			x->b[i] = f->hnext;
			free(f);
		}
	free(x->b);
	memset(x, 0, sizeof(*x));
}
