/* Trash index records: one line per event in a per-user, per-bucket append-only log
 * (BACKING/.strata/tindex/UID/BUCKET.log). A line is "XXH64HEX JSON\n"; a line whose
 * checksum does not match (a torn write after a crash) is skipped by readers.
 * A DEL record describes an entry moved into the trash; a GONE record (same id) says the
 * entry left the trash (restored, purged or aborted). For one id the last record wins. */
#ifndef FS_REC_H
#define FS_REC_H

#include <stddef.h>
#include <stdint.h>

#include "common/st_err.h"

enum fs_rec_op { FS_REC_DEL = 1, FS_REC_GONE = 2 };

struct fs_xattr {
	char *name;  /* owned */
	void *value; /* owned, len bytes */
	size_t len;
};

struct fs_trash_rec {
	int op;               /* enum fs_rec_op */
	char id[17];          /* 16 hex digits */
	char *path;           /* original path in the mount, "/a/b/f" (owned) */
	char *parent;         /* original parent path, "/a/b" (owned) */
	char *tpath;          /* location relative to the bucket directory (owned; DEL) */
	char type;            /* 'f' file, 'd' directory, 'l' symlink, 'o' other */
	uint32_t uid, gid, mode;
	int64_t size;         /* bytes for files, 0 otherwise */
	int64_t atime_ns, mtime_ns, ctime_ns;
	int64_t dtime_us;     /* deletion time */
	uint32_t by_uid;      /* who deleted it */
	char why[16];         /* GONE: "restored", "purged", "aborted" */
	size_t nxattr;
	struct fs_xattr *xattrs; /* owned array */
};

/* Encodes r as one checksummed line ending in '\n'. Returns a malloc'd string (caller
 * frees) and its length in *len, or NULL on allocation failure. */
char *fs_rec_encode(const struct fs_trash_rec *r, size_t *len);

/* Decodes one line (with or without the trailing '\n') into r (zeroed first). Returns 0,
 * or ST_ECORRUPT (bad checksum, torn line) / ST_EINVAL (bad JSON or fields) with err set.
 * On success the caller releases r with fs_rec_release. */
int fs_rec_decode(const char *line, size_t len, struct fs_trash_rec *r, struct st_error *err);

/* Frees the owned fields and zeroes r. */
void fs_rec_release(struct fs_trash_rec *r);

/* Deep copy; returns 0 or ST_ENOMEM. */
int fs_rec_copy(struct fs_trash_rec *dst, const struct fs_trash_rec *src);

/* Appends an xattr (copies name and value). Returns 0 or ST_ENOMEM. */
int fs_rec_add_xattr(struct fs_trash_rec *r, const char *name, const void *val, size_t len);

/* Bucket of a deletion time: start second of the width_s-wide slot it falls in, formatted
 * "YYYYMMDDTHHMMSS" (UTC) into out (>= 16 bytes). */
void fs_bucket_name(int64_t dtime_us, int64_t width_s, char out[16]);

/* Bucket width for a retention: retention/24 clamped to [1 s, 1 h]. */
int64_t fs_bucket_width(int64_t retention_us);

#endif
