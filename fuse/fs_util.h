/* Small helpers shared by stratafs and strata-admin: thread-local credentials, safe path
 * handling relative to a directory fd, directory creation, hex encoding. */
#ifndef FS_UTIL_H
#define FS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Name of the state directory in the backing root (hidden from the mount) and of the
 * virtual trash directory in the mount root. */
#define FS_STATE_DIR ".strata"
#define FS_TRASH_NAME ".trash"

/* Switches the calling thread's filesystem credentials (fsuid, fsgid and supplementary
 * groups; all three are per-thread on Linux when set with raw syscalls). ngroups < 0 keeps
 * the current groups. Only has effect when the process runs as root. Returns 0 or -errno. */
int fs_creds_set(uid_t uid, gid_t gid, int ngroups, const gid_t *groups);

/* Back to the daemon's own credentials (root), with groups {0}. */
void fs_creds_root(void);

/* Reads the supplementary groups of a task from /proc/PID/status into groups (at most
 * max). Returns the count or -errno. */
int fs_proc_groups(pid_t pid, gid_t *groups, int max);

/* Longest path handled (in the mount, in the trash index, in restores): paths deeper
 * than PATH_MAX work natively through *at() calls, so they must work here too. */
#define FS_PATH_MAX 65536

/* Checks that rel is a clean relative path: no empty, "." or ".." components, no leading
 * '/', shorter than FS_PATH_MAX. Trailing and doubled slashes are normalised in place.
 * Returns 0 or -EINVAL. */
int fs_path_clean(char *rel);

/* Opens the directory at rel (relative to dirfd) without following any symlink on the
 * way (O_NOFOLLOW per component). rel "" gives a dup of dirfd. Returns an fd or -errno. */
int fs_open_dir_nofollow(int dirfd, const char *rel);

/* mkdir -p of rel under dirfd, creating missing components with mode and owner
 * (owner (uid_t)-1 keeps the creator's). Never follows symlinks. Returns an fd on the
 * final directory or -errno. */
int fs_mkdirs(int dirfd, const char *rel, mode_t mode, uid_t uid, gid_t gid);

/* "/proc/self/fd/N" into buf (>= 32 bytes). */
char *fs_fd_path(int fd, char *buf);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void fs_hex_encode(const void *in, size_t n, char *out);
/* Decodes 2n hex digits into out; returns the byte count or -1 on a bad digit. */
ssize_t fs_hex_decode(const char *in, size_t len, void *out);

/* A unique 64-bit id from the wall clock (ms) and a process counter, as 16 hex digits. */
void fs_new_id(char out[17]);

/* Socket name (abstract namespace, leading NUL) of the control channel of the stratafs
 * serving backing directory `backing_real` (a realpath). Returns the address length. */
#include <sys/socket.h>
#include <sys/un.h>
socklen_t fs_ctl_addr(const char *backing_real, struct sockaddr_un *addr);

/* Trash links. The trash keeps a hard link to every deleted non-directory, so the backing
 * st_nlink counts links the user's namespace no longer has. Their number is kept in an
 * xattr of the inode (FS_TLINKS_XATTR, decimal), hidden from the mount, which subtracts it.
 * Updated after a move into the trash (+1), after a restore out of it and before the
 * reclaimer removes a purged link (-1): a crash in between leaves a count that is too low,
 * which shows the old, higher nlink, never a live file with nlink 0.
 * The object is dirfd/name, or dirfd itself when name is "" (any fd, O_PATH included). */
#define FS_TLINKS_XATTR "trusted.strata.tlinks"
/* The count (0 when there is none or xattrs are unsupported). */
int fs_tlinks_get(int dirfd, const char *name);
/* Adds delta (clamped at 0; the xattr is removed at 0) under a process-wide lock.
 * Returns the new count or -errno. */
int fs_tlinks_add(int dirfd, const char *name, int delta);
/* Called with each object whose count changed (its other names show another nlink). */
typedef void (*fs_tlinks_hook)(dev_t dev, ino_t ino);
/* Subtracts one trash link of dirfd/name, or of every object below it when it is a
 * directory (a tree restored in one move). hook may be NULL. Returns the number of objects
 * adjusted. */
long fs_tlinks_restored(int dirfd, const char *name, fs_tlinks_hook hook);

/* Sets the calling thread to idle I/O priority and nice 19 (for background reclaim). */
void fs_thread_low_priority(void);

#endif
