/* SSD journal of stratafs (--journal-dir): the on-disk format (records, segments,
 * checkpoint, identity), the scanner and the offline/at-mount replay. Shared by the daemon
 * (fs_wb.c appends and writes back) and strata-admin (journal inspect|replay). The format
 * is described in docs/journal.md. */
#ifndef FS_JOURNAL_H
#define FS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/st_err.h"

#define FS_JREC_MAGIC   0x524a5453u /* "STJR" little-endian */
#define FS_JSEG_MAGIC   0x474a5453u /* "STJG" */
#define FS_JVERSION     1u
#define FS_JREC_HDR     112u        /* bytes of a record header */
#define FS_JSEG_HDR     64u         /* bytes of a segment header */
#define FS_JH_MAX       64u         /* largest file handle a record holds */
#define FS_JREC_MAXDATA (4u << 20)  /* largest data payload of one record */
#define FS_JUUID_HEX    33u         /* 32 hex digits + NUL */

enum fs_jrec_type { FS_JREC_DATA = 1, FS_JREC_COMMIT = 2, FS_JREC_TRUNC = 3 };

/* A record header. DATA: len bytes of file data at off of the file named by the handle.
 * COMMIT: off = every record with seq <= off is durable (len 0, no handle).
 * TRUNC: the file named by the handle was truncated to off (len 0): replay applies it in
 * journal order, so journaled data it cut off is never put back. */
struct fs_jrec {
	uint16_t type;
	uint64_t seq;
	uint64_t off;
	uint32_t len;
	uint32_t flags;
	int32_t htype;              /* file handle type (name_to_handle_at) */
	uint32_t hlen;              /* bytes of h used, <= FS_JH_MAX */
	unsigned char h[FS_JH_MAX];
};

/* Encodes r's header into hdr (FS_JREC_HDR bytes) with the xxHash64 over the header and
 * data (r->len bytes). */
void fs_jrec_encode(const struct fs_jrec *r, const void *data, unsigned char *hdr);

/* Result of parsing one record from a buffer. */
enum fs_jparse { FS_JP_OK = 0, FS_JP_END = 1 /* all-zero header: clean end */,
		 FS_JP_SHORT = 2 /* buffer ends inside the record */,
		 FS_JP_BAD = 3 /* bad magic/version/type/length/checksum */ };

/* Parses a record at buf (avail bytes). On FS_JP_OK fills r, *data (points into buf) and
 * *total (header + data bytes). Never reads past avail. */
enum fs_jparse fs_jrec_parse(const unsigned char *buf, size_t avail, struct fs_jrec *r,
			     const unsigned char **data, size_t *total);

/* Segment file name of number no ("seg-%016llx.jnl") into out (>= 32 bytes). */
void fs_jseg_name(uint64_t no, char *out, size_t n);
/* Segment header with the journal's uuid. */
void fs_jseg_header(uint64_t no, const char *uuid, unsigned char *hdr);

/* The journal directory's identity and checkpoint. */
struct fs_jmeta {
	char uuid[FS_JUUID_HEX];    /* identity of the backing dir the journal belongs to */
	uint64_t seg_size;
	uint64_t ckpt;              /* every record with seq <= ckpt is on the capacity tier */
};
/* Reads SSD_DIR/meta and SSD_DIR/checkpoint. ST_ENOTFOUND when there is no journal there. */
int fs_jmeta_read(int dirfd, struct fs_jmeta *m, struct st_error *err);
int fs_jmeta_write(int dirfd, const struct fs_jmeta *m, struct st_error *err);
/* Replaces the checkpoint durably (temp file, fsync, rename, fsync dir). */
int fs_jckpt_write(int dirfd, uint64_t ckpt, struct st_error *err);
/* The backing dir's identity (BACKING/.strata/journal-id), created when create != 0. */
int fs_jbacking_id(int bfd, int create, char *uuid, struct st_error *err);

/* Sorted segment numbers found in the directory (*out malloc'ed). Returns count or -1. */
int fs_jseg_list(int dirfd, uint64_t **out, struct st_error *err);

/* What a scan saw. */
struct fs_jscan {
	uint64_t segments, records, data_records, commits, bytes;
	uint64_t last_seq, last_commit;   /* highest seq seen; highest seq a commit covers */
	int damaged;                      /* stopped at a torn or corrupt record */
	uint64_t damaged_seg, damaged_pos;
	char damage[128];
};
/* Calls cb for each intact record in order (seg number, position of the record); stops at
 * the first torn/corrupt record (recorded in *sc) or when cb returns non-zero. Errors
 * reading the device are returned as ST_EIO (never reported as damage). */
typedef int (*fs_jscan_cb)(void *arg, uint64_t seg, uint64_t pos, const struct fs_jrec *r,
			   const unsigned char *data);
int fs_jscan(int dirfd, const char *uuid, fs_jscan_cb cb, void *arg, struct fs_jscan *sc,
	     struct st_error *err);

/* What replay did. */
struct fs_jreplay {
	struct fs_jscan scan;
	uint64_t applied, bytes, files, skipped_gone, truncates;
	uint64_t new_ckpt;
};
/* Applies the committed records after the checkpoint to the files under bfd (by handle),
 * fsyncs them, advances the checkpoint and removes the segments. Refuses (ST_EINVAL) a
 * journal whose uuid is not the backing dir's. ST_ENOTFOUND when dirfd holds no journal. */
int fs_jreplay(int dirfd, int bfd, struct fs_jreplay *rep, struct st_error *err);

/* One line saying what a replay did ("N record(s): A applied, ... checkpoint C"), for the
 * daemon's mount-time report and `strata-admin journal replay` alike. */
void fs_jreplay_summary(const struct fs_jreplay *rep, char *buf, size_t n);

#endif
