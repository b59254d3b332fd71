/* The trash bin on a backing tree. Layout under BACKING/.strata/:
 *   trash/UID/BUCKET/<original path>   the deleted objects, keeping their relative layout
 *                                      (UID = owner of the deleted object; UID dir is 0700)
 *   tindex/UID/BUCKET.log              the index: checksummed records (fs_rec.h)
 * BUCKET is the deletion-time slot (fs_bucket_name), so expiry drops whole buckets.
 * Invariants:
 *   1. The DEL record of an entry is appended before the object is renamed into the trash;
 *      a record whose object is absent (crash in between) is listed as not present.
 *   2. An object leaves the trash (restore, purge) before its GONE record is appended.
 *   3. Moves into and out of the trash are renames within one filesystem (O(1)), out of it
 *      always with RENAME_NOREPLACE; paths inside the trash are resolved without symlinks.
 * Thread-safe: one struct fs_trash may be used from many threads. */
#ifndef FS_TRASH_H
#define FS_TRASH_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/st_err.h"
#include "fuse/fs_rec.h"
#include "fuse/fs_util.h"

struct fs_rmr;

#define FS_TLOG_SLOTS 8
/* Longest mirror directory (UID/BUCKET/<original parent>) the trash builds; an object
 * deeper than that goes to the bucket root as NAME~ID (its record keeps the original path,
 * so restore still brings it back to its place). Below PATH_MAX so that every trash path
 * can be opened in one call. */
#define FS_TRASH_MIRROR_MAX 2048

struct fs_tlog {
	uid_t uid;
	char bucket[16];
	int fd;     /* -1 when the slot is free */
	int dirty;  /* appended since the last sync */
	uint64_t used; /* LRU stamp */
};

/* Times of a directory before the trash took its first child, so that an rm -rf'd tree
 * comes back with the directory times it had (the deletions themselves change them). */
struct fs_dirstamp {
	dev_t dev;
	ino_t ino;           /* 0: free slot */
	struct timespec atime, mtime; /* before the first deletion */
	struct timespec post;         /* mtime right after our last deletion from it */
};
#define FS_DIRSTAMP_SLOTS 4096

struct fs_trash {
	int bfd;            /* backing root (not owned) */
	int state_fd;       /* .strata (owned) */
	int trash_fd;       /* .strata/trash (owned) */
	int tindex_fd;      /* .strata/tindex (owned) */
	int64_t retention_us;
	int64_t width_s;    /* bucket width */
	struct fs_rmr *rmr; /* destination of purged/expired data (not owned) */
	pthread_mutex_t lock; /* protects logs[] and stamp */
	struct fs_tlog logs[FS_TLOG_SLOTS];
	uint64_t stamp;
	struct fs_dirstamp *dirstamps; /* FS_DIRSTAMP_SLOTS, open addressing; under lock */
	fs_tlinks_hook tlinks_hook; /* restored objects whose link count changed (the daemon
				     * drops the kernel's attributes); may be NULL */
	size_t ndirstamps;
};

/* Creates .strata/{trash,tindex} if needed and opens them. rmr may be NULL (then purge and
 * expiry fail with ST_EINVAL). Returns 0 or an error code with err set. */
int fs_trash_open(struct fs_trash *t, int bfd, int64_t retention_us, struct fs_rmr *rmr,
		  struct st_error *err);
/* Syncs and closes the logs and directory fds. */
void fs_trash_close(struct fs_trash *t);
/* fdatasync()s every log appended to since the last call. */
void fs_trash_sync(struct fs_trash *t);

/* Where a put landed, for cache invalidation: the trash directory and the entry name. */
struct fs_trash_put_info {
	dev_t tdir_dev;
	ino_t tdir_ino;
	char name[NAME_MAX + 1];
	char id[17];
};

/* Moves dirfd/name (a file, symlink or empty directory) into the trash and records it with
 * original path orig_path ("/a/b"), deleted by uid `by`. A non-empty directory fails with
 * -ENOTEMPTY. Returns 0 or -errno (for the FUSE boundary); info may be NULL. */
int fs_trash_put(struct fs_trash *t, int dirfd, const char *name, const char *orig_path,
		 uid_t by, struct fs_trash_put_info *info);

/* As fs_trash_put, for a whole directory tree as one entry (rmr --via-trash). */
int fs_trash_put_tree(struct fs_trash *t, int dirfd, const char *name, const char *orig_path,
		      uid_t by, struct fs_trash_put_info *info);

struct fs_trash_entry {
	struct fs_trash_rec rec; /* owned */
	char bucket[16];
	int present;             /* the object is still in the trash */
	int done;                /* scratch flag for restore/purge */
	size_t top;              /* fs_trash_list_fold: index of the entry it is folded under
				  * (its own index when it is a top-level entry) */
	int64_t folded;          /* top-level entries: entries folded under it */
	int64_t folded_bytes;    /* and their sizes (present ones) */
};

struct fs_trash_list {
	struct fs_trash_entry *v; /* owned, sorted by deletion time */
	size_t n;
	int64_t bytes;            /* sum of sizes of present entries */
};

/* Lists live entries (uid < 0: every user). Returns 0 or an error code. */
int fs_trash_list(struct fs_trash *t, int64_t uid, struct fs_trash_list *out,
		  struct st_error *err);
void fs_trash_list_release(struct fs_trash_list *l);
/* Keeps only the entries whose original path is path or below it ("/a/b", "a/b/" or "/":
 * all), and recounts bytes. Returns 0, ST_EINVAL for a path with ".." components or
 * ST_ENOMEM. */
int fs_trash_list_filter(struct fs_trash_list *l, const char *path);
/* Folds what an `rm -rf` deleted under the entry of its top directory: an entry goes under
 * the outermost directory entry of the same owner whose path is an ancestor of its path
 * and that was deleted at or after it (rm -rf deletes bottom-up; restoring that directory
 * by path brings those entries back too). Sets top, folded and folded_bytes. */
void fs_trash_list_fold(struct fs_trash_list *l);

/* Who is restoring or purging: restore runs permission checks and directory creation with
 * these credentials. is_root may act on every user's entries. */
struct fs_caller {
	uid_t uid;
	gid_t gid;
	int ngroups;
	const gid_t *groups;
	int is_root;
};

/* Called once per entry handled by a restore: dfd/name is where it landed (dfd is valid
 * only during the call), rc is 0 or a negative errno/ST code. */
typedef void (*fs_restore_cb)(void *arg, const struct fs_trash_rec *rec, const char *dest,
			      int dfd, const char *name, int rc);

/* Restores entry `what` (an id, or an original path absolute in the mount or relative to
 * its root; for a path the newest entry wins and, for a directory, every other entry of
 * the caller below it too, parents first). to: other destination (path in the mount) or
 * NULL. Never overwrites (RENAME_NOREPLACE; with FS_RESTORE_OVERWRITE the object in the way
 * is moved to the trash first) and never leaves the backing root. Missing
 * parents are recreated with their recorded metadata. Returns the number of entries
 * restored (> 0) or an error code with err set (ST_ENOTFOUND, -EEXIST, -EACCES, ...). */
#define FS_RESTORE_OVERWRITE 1 /* move whatever is at the destination to the trash first */
int fs_trash_restore(struct fs_trash *t, const char *what, const char *to, int flags,
		     const struct fs_caller *c, fs_restore_cb cb, void *arg, struct st_error *err);

/* Purges entries: the given ids (nids > 0), else every entry of the caller (all users for
 * root when all_users) older than older_than_us (0: all). Data goes to the async reclaimer.
 * Returns the number purged or an error code with err set. */
int fs_trash_purge(struct fs_trash *t, const char *const *ids, size_t nids,
		   int64_t older_than_us, const struct fs_caller *c, int all_users,
		   struct st_error *err);

/* Drops every bucket whose last deletion is older than the retention (now_us based).
 * Returns the number of buckets dropped, or the first error (err set) after trying the
 * other buckets: a bucket that cannot be detached stays and is retried on the next pass. */
int fs_trash_expire(struct fs_trash *t, int64_t now_us, struct st_error *err);

#endif
