/* The live SSD journal of a stratafs daemon (--journal-dir): appends with group commit
 * (fs_wb.c), the per-inode index of not-yet-written-back extents (fs_extent.c) and the
 * writeback worker. One struct fs_jn per daemon, owned by main; all fields behind jn->lock.
 *
 * States of a data record: APPENDED (in a segment, in the index) -> COMMITTED (a commit
 * record covering it was fdatasync'ed) -> APPLIED (written to the capacity file and that
 * file fsync'ed by the worker) -> CHECKPOINTED (checkpoint >= seq; dropped from the index;
 * its segment is deleted once every record in it is checkpointed). A truncate record goes
 * the same way (APPLIED: the capacity file truncated again at its place in the round), and
 * cuts the older extents of its file in the index. Invariants
 * (fs_jn_assert_state): ckpt < next_seq; committed < next_seq; the index holds exactly
 * the data records with seq > ckpt, in seq order; live segments <= nseg. */
#ifndef FS_WB_H
#define FS_WB_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/st_err.h"
#include "fuse/fs_journal.h"

struct fs_xt;
struct fs_xfile;

/* Per-inode extent index (fs_extent.c). */
struct fs_xindex {
	struct fs_xfile **b;
	size_t nb;
	struct fs_xt *ghead, *gtail;  /* every extent, oldest (lowest seq) first */
	uint64_t dirty_bytes;
};

struct fs_jseg {
	uint64_t no;
	int fd;
	uint64_t last_seq;            /* highest record seq in it (0: none yet) */
};

/* A finished writeback round, for the writeback rate. */
struct fs_jn_round {
	int64_t t_us;     /* monotonic end */
	uint64_t bytes;
};
#define FS_JN_RATE_ROUNDS 64
#define FS_JN_RATE_WINDOW_US 10000000 /* the rate is over the last 10 s */
#define FS_JN_SPARES 2                /* reclaimed segment files kept for reuse */
#define FS_JN_ZCHUNK (4u << 20)       /* a segment is zero-filled this far ahead of appends */

struct fs_jn {
	int dirfd, bfd;
	char uuid[FS_JUUID_HEX];
	uint64_t seg_size;
	unsigned nseg;                /* most live segments (the journal size) */
	int64_t max_age_us;
	uint64_t bypass;              /* sequential run above which writes skip the journal */
	int cto;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* commits, checkpoints, freed space */
	pthread_cond_t wcond;         /* wakes the worker */
	uint64_t next_seq, committed, ckpt, wb_target;
	int syncing;
	struct fs_jseg *segs;         /* live segments, oldest first; the last is written */
	unsigned nlive;
	uint64_t next_segno, wpos;
	uint64_t zeroed;              /* bytes of the written segment's file that are allocated
				       * and durable (zeros or records): appends below it are
				       * overwrites, whose fdatasync needs no metadata commit */
	uint64_t spare[FS_JN_SPARES]; /* reclaimed segment files kept for reuse (old numbers,
				       * named spare-N.jnl); nlive + nspare <= nseg */
	unsigned nspare;
	uint64_t syncs, fsyncs;       /* fdatasyncs of the journal; fsyncs served */
	struct fs_xindex idx;
	pthread_t worker;
	int running, stop;
	uint64_t last_data_seq;       /* newest data or truncate record appended */
	uint64_t wb_fails;            /* failed writeback rounds (flushers give up on one) */
	uint64_t wb_bytes, wb_records, waits;
	struct fs_jn_round wb_hist[FS_JN_RATE_ROUNDS]; /* ring of the last rounds */
	uint64_t wb_hist_next;
	int64_t started_us;           /* monotonic start of the worker */
};

/* A snapshot of the journal's figures (fs status, metrics). */
struct fs_jn_stats {
	uint64_t capacity_bytes;      /* segments allowed * segment size */
	uint64_t used_bytes;          /* in live segments (written, not yet reclaimed) */
	uint64_t dirty_bytes;         /* data not yet written back */
	uint64_t seg_size;
	unsigned segs_used, segs_total;
	double oldest_dirty_age_s;    /* 0 when nothing is dirty */
	double wb_rate_bps;           /* written back per second over the last 10 s */
	uint64_t wb_bytes, wb_records, wb_fails, waits;
	uint64_t next_seq, committed, ckpt;
	uint64_t syncs, fsyncs;       /* fdatasyncs of the journal device; fsyncs served */
};

/* Opens (creating when empty) the journal in dir for the backing dir bfd; replays what a
 * crash left (reported in *rep). */
int fs_jn_open(struct fs_jn *jn, const char *dir, int bfd, uint64_t size, int64_t max_age_us,
	       uint64_t bypass, int cto, struct fs_jreplay *rep, struct st_error *err);
int fs_jn_start(struct fs_jn *jn);
/* Stops the worker after writing everything back, then closes. */
void fs_jn_close(struct fs_jn *jn);
void fs_jn_assert_state(struct fs_jn *jn);
void fs_jn_stats(struct fs_jn *jn, struct fs_jn_stats *out);

/* Write of len bytes at off to the file (dev, ino) whose backing fd is fd: into the
 * journal, or straight to fd for a bypassed sequential run. Returns bytes or -errno. */
ssize_t fs_jn_write(struct fs_jn *jn, dev_t dev, ino_t ino, int fd, const void *buf,
		    size_t len, off_t off);
/* Read of the file overlaid with its journaled extents into buf. -ENODATA when the file
 * has none (the caller reads the backing file itself). */
ssize_t fs_jn_read(struct fs_jn *jn, dev_t dev, ino_t ino, int fd, void *buf, size_t len,
		   off_t off);
/* 1 when the file (dev, ino) has data in the journal not yet written back. */
int fs_jn_dirty(struct fs_jn *jn, dev_t dev, ino_t ino);
/* Size and mtime as they are with the journaled data. */
void fs_jn_stat(struct fs_jn *jn, struct stat *st);
/* fsync: returns once everything appended so far is durable on the journal device (and
 * bypassed writes of the file are on the capacity tier). 0 or -errno. */
int fs_jn_fsync(struct fs_jn *jn, dev_t dev, ino_t ino, int fd);
/* Writes the file's journaled data back and checkpoints it (before an explicit mtime,
 * fallocate, SEEK_DATA, close-to-open). 0 or -errno. */
int fs_jn_flush_file(struct fs_jn *jn, dev_t dev, ino_t ino);
/* Before the caller truncates the capacity file (dev, ino) to size: when the file has
 * journaled data, appends a truncate record and makes it durable (a replay then cuts that
 * data again after putting it back), and drops what lies past size from the index (it is
 * never written back); the worker truncates again in journal order. 1 when the file has no
 * journaled data (nothing to do), 0 when recorded, -errno. */
int fs_jn_truncate(struct fs_jn *jn, dev_t dev, ino_t ino, uint64_t size);

/* fs_extent.c: the index. Callers hold jn->lock. */
struct fs_xfile *fs_xfile_get(struct fs_xindex *x, dev_t dev, ino_t ino, int create);
int fs_xt_add(struct fs_xindex *x, struct fs_xfile *f, uint64_t seq, uint64_t off,
	      uint32_t len, uint64_t segno, uint64_t dpos, int64_t now_us);
/* The segment number of a truncate in the index (segments are numbered from 1). */
#define FS_XT_TRUNC 0
/* A truncate of f to size (record seq): cuts f's older extents at size (what lies past it
 * is no longer written back) and adds the truncate in journal order. */
int fs_xt_trunc(struct fs_xindex *x, struct fs_xfile *f, uint64_t seq, uint64_t size,
		int64_t now_us);
/* Overlays f's extents on buf (file bytes [off, off+len), read from the capacity file)
 * in journal order: data is copied in (read(segno, dpos, dst, n) fetches it), a truncate
 * zeroes what lies past it. 0 or the error of read. */
int fs_xfile_overlay(struct fs_xfile *f, unsigned char *buf, uint64_t off, size_t len,
		     int (*read)(void *, uint64_t, uint64_t, void *, size_t), void *arg);
/* The file's size with its journaled extents and truncates applied in order over the
 * capacity file's size cap_size. */
uint64_t fs_xfile_size(const struct fs_xfile *f, uint64_t cap_size);
int fs_xfile_dirty(const struct fs_xfile *f);
uint64_t fs_xfile_last_seq(const struct fs_xfile *f);
/* Oldest extent: seq, time appended; 0 when none. */
uint64_t fs_xindex_oldest(const struct fs_xindex *x, int64_t *t_us);
/* Walks extents with seq <= upto in order (the worker's batch). */
typedef int (*fs_xt_fn)(void *arg, struct fs_xfile *f, uint64_t seq, uint64_t off,
			uint32_t len, uint64_t segno, uint64_t dpos);
int fs_xindex_walk(struct fs_xindex *x, uint64_t upto, fs_xt_fn fn, void *arg);
/* Drops extents with seq <= upto. */
void fs_xindex_drop(struct fs_xindex *x, uint64_t upto);
/* The file handle stored with f (filled on creation by the caller). */
void fs_xfile_handle(struct fs_xfile *f, int32_t *htype, uint32_t *hlen, unsigned char **h);
void fs_xfile_set_handle(struct fs_xfile *f, int32_t htype, uint32_t hlen, const unsigned char *h);
/* Sequential-run tracking for the bypass: returns the run length after a write at off. */
uint64_t fs_xfile_run(struct fs_xfile *f, uint64_t off, uint64_t len);
void fs_xfile_set_bypassed(struct fs_xfile *f, int v);
int fs_xfile_bypassed(const struct fs_xfile *f);
void fs_xfile_mtime(struct fs_xfile *f, struct timespec *ts, int set);
void fs_xindex_free(struct fs_xindex *x);

#endif
