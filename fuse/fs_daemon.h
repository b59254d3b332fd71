/* stratafs daemon state shared by its modules: inode table (fs_inode.c), FUSE operations
 * (fs_ops.c), control server (fs_ctl.c), kernel cache notifier (fs_notify.c), Prometheus
 * endpoint (fs_metrics.c), main. */
#ifndef FS_DAEMON_H
#define FS_DAEMON_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fuse/fs_rmr.h"
#include "fuse/fs_trash.h"
#include "fuse/fs_wb.h"

/* Readahead of the mount (init's max_readahead and the mount's bdi read_ahead_kb). 512 KiB:
 * a READ reply of that size plus its header still fits a 1 MiB pipe, the most a daemon
 * without CAP_SYS_RESOURCE gets (fs.pipe-max-size), so it is spliced from the backing page
 * cache; 1 MiB replies would be copied twice (pread + writev). */
#define FS_READAHEAD_KB 512u

enum fs_view { FS_VIEW_LIVE = 0, FS_VIEW_TRASH = 1 };

/* One backing object the kernel knows about. Lives while nlookup > 0 (lookup counts from
 * replies, dropped by forget). The FUSE inode number is the struct's address. */
struct fs_inode {
	int fd;              /* O_PATH|O_NOFOLLOW on the backing object (owned), or -1 when
			      * only the file handle is kept (over the fd budget) */
	struct file_handle *fh; /* owned; set when fd is -1 */
	dev_t dev;           /* key, with ino and view */
	ino_t ino;
	int view;            /* enum fs_view: objects seen through .trash are read-only */
	mode_t type;         /* S_IFMT bits */
	uint64_t nlookup;    /* protected by fs_itable.lock */
	int trashed;         /* a name of it went to the trash through this daemon: its
			      * attributes always consult the trash link count */
	int bk_id;           /* passthrough backing id while bk_opens > 0 (fs_state.pt_lock) */
	unsigned bk_opens;   /* open files of this inode using bk_id (fs_state.pt_lock) */
	unsigned io_cached;  /* with a journal: open files of it going through the daemon
			      * (fs_state.pt_lock); never both this and bk_opens > 0 */
	int pt_wrote;        /* with a journal: opened for writing with passthrough since its
			      * last daemon open (pt_lock): that open drops the page cache */
	struct fs_inode *next; /* hash chain, protected by fs_itable.lock */
};

struct fs_itable {
	pthread_mutex_t lock;
	struct fs_inode **b; /* buckets */
	size_t nb, n;
	long fd_budget;      /* inodes beyond this many keep a file handle, not an fd */
	long fds;            /* inodes holding an fd; protected by lock */
};

struct fs_notify_item;

struct fs_state {
	char backing[PATH_MAX];   /* realpath of BACKING_DIR */
	char mnt[PATH_MAX];       /* realpath of MOUNTPOINT */
	int bfd;                  /* backing root, O_RDONLY|O_DIRECTORY */
	struct fs_inode root;     /* FUSE_ROOT_ID; never freed */
	struct fs_itable itab;
	struct fs_trash trash;
	struct fs_rmr rmr;
	dev_t trash_dev;          /* .strata/trash: the root of the .trash view */
	ino_t trash_ino;
	double attr_timeout;
	int writeback;
	int no_xattr;             /* the backing filesystem has no extended attributes */
	int passthrough;          /* asked for in INIT (see fs_chan.h); fs_chan says if granted */
	int lifo_loop;            /* requests served by fs_loop.h (else libfuse's loop) */
	pthread_mutex_t pt_lock;  /* fs_inode.bk_id/bk_opens */
	int debug;
	struct fs_jn *jn;         /* SSD journal with --journal-dir, else NULL */
	struct fs_jreplay jrep;   /* what the journal replay at mount did */
	char metrics_addr[300];   /* --metrics: the address bound ("" without) */
	struct fuse_session *se;
	/* notifier: invalidations sent from a thread of its own, never from a request */
	pthread_t notify_thread;
	pthread_mutex_t nlock;
	pthread_cond_t ncond;
	struct fs_notify_item *nhead, *ntail; /* protected by nlock */
	int nstop;                           /* protected by nlock */
	int notify_running;
	/* control server */
	int ctl_fd;
	int ctl_wake[2];
	pthread_t ctl_thread;
	int ctl_running;
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	int ctl_active;          /* handler threads running, protected by ctl_lock */
	/* expiry */
	pthread_t expiry_thread;
	int expiry_running;
	pthread_mutex_t elock;
	pthread_cond_t econd;
	int estop;
};

extern struct fs_state *fs_g;

/* Inode table. fs_itable_get takes ownership of fd: it either stores it in a new inode or
 * closes it when the object is already known; the lookup count grows by one. Returns NULL
 * (fd closed) on allocation failure. */
int fs_itable_init(struct fs_itable *t);
struct fs_inode *fs_itable_get(struct fs_itable *t, int fd, const struct stat *st, int view);
/* An O_PATH fd for in, valid until the current request's handler returns: the inode's own
 * fd, or one opened from its file handle (closed by fs_fd_release). -1 with errno set when
 * the object cannot be opened (e.g. ESTALE). */
int fs_fd(struct fs_inode *in);
/* Closes the temporary fds fs_fd opened for the calling thread. */
void fs_fd_release(void);

/* Known inode for (dev, ino, view) or NULL; no reference is taken. */
struct fs_inode *fs_itable_find(struct fs_itable *t, dev_t dev, ino_t ino, int view);
/* Drops n lookups; frees the inode at zero. */
void fs_itable_unref(struct fs_itable *t, struct fs_inode *in, uint64_t n);
void fs_itable_destroy(struct fs_itable *t);

static inline struct fs_inode *fs_ino(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs_g->root : (struct fs_inode *)(uintptr_t)ino;
}
static inline fuse_ino_t fs_ino_id(struct fs_inode *in)
{
	return in == &fs_g->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

/* The operations; main clears .flush on local backing filesystems (a close then costs one
 * request less; flush only matters for close-to-open consistency on network filesystems). */
extern struct fuse_lowlevel_ops fs_ops;

/* Path of dir/name in the mount ("/a/b/name", any length; *out malloc'ed, the caller
 * frees it) from the backing fd of dir. Returns 0, or -ENOENT when dir is not in the live
 * namespace any more. */
int fs_mount_path(int dirfd, const char *name, char **out);

/* Kernel dentry invalidation for name in the directory (dev, ino, view), if the kernel
 * knows that directory. From a FUSE request it is queued for the notifier thread; outside
 * requests (control channel) pass sync=1 to have it done before returning, so the caller
 * sees the new state at once. */
void fs_notify_entry(dev_t dev, ino_t ino, int view, const char *name, int sync);
/* Drops the kernel's cached attributes of the live inode (dev, ino), if it has one; only
 * outside requests (control channel): a restore changed its link count behind the kernel. */
void fs_notify_attr(dev_t dev, ino_t ino);
int fs_notify_start(struct fs_state *s);
void fs_notify_stop(struct fs_state *s);

/* --metrics HOST:PORT (fs_metrics.c): bind before daemonising (errors reach the
 * terminal; port 0 picks one, written to s->metrics_addr), start the serving thread after.
 * Returns 0 or an error code with err set / -1. */
int fs_metrics_bind(struct fs_state *s, const char *addr, struct st_error *err);
int fs_metrics_start(void);
void fs_metrics_stop(void);

int fs_ctl_start(struct fs_state *s);
void fs_ctl_stop(struct fs_state *s);

#endif
