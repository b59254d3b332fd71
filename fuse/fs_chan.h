/* fs_chan: the daemon's end of /dev/fuse, under libfuse.
 *
 * libfuse 3.14 predates FUSE passthrough (kernel 6.9, libfuse 3.16): it can neither ask for
 * it in the INIT reply nor put a backing file id into an OPEN/CREATE reply. Its custom-I/O
 * hook (fuse_session_custom_io) lets us own the reads and writes on the device, so this
 * module adds those two fields to the replies libfuse builds, and registers backing files
 * with the kernel (FUSE_DEV_IOC_BACKING_OPEN/CLOSE). With passthrough the kernel serves
 * read, write, splice and mmap of an open file straight from the backing file: no READ or
 * WRITE request reaches the daemon. It also counts the requests read, by opcode, and
 * times their replies. */
#ifndef FS_CHAN_H
#define FS_CHAN_H

#include <stdatomic.h>
#include <stdint.h>

struct fuse_session;

/* Opcodes of the counters callers read (linux/fuse.h numbering). */
enum { FS_CHAN_OP_READ = 15, FS_CHAN_OP_WRITE = 16, FS_CHAN_OPS = 64 };

/* Takes over the I/O of a mounted session (before its loop runs). want_passthrough: ask
 * the kernel for passthrough in INIT, if it offers it; want_killpriv_v2: ask for
 * FUSE_HANDLE_KILLPRIV_V2 (see fs_chan_killpriv_v2). Returns 0 or -errno. */
int fs_chan_attach(struct fuse_session *se, int want_passthrough, int want_killpriv_v2);

/* 1 when INIT negotiated FUSE_HANDLE_KILLPRIV_V2: the kernel stops asking for
 * security.capability before every write once it has seen a file without setuid, setgid
 * or capabilities (S_NOSEC), and the daemon clears setuid/setgid itself: on an empty
 * SETATTR (the kernel's "remove privileges" before a passthrough write or fallocate), and
 * on requests flagged KILL_SUIDGID (fs_chan_req_kill_suidgid). */
int fs_chan_killpriv_v2(void);
/* 1 when the request the calling worker is handling carries FUSE_WRITE_KILL_SUIDGID,
 * FATTR_KILL_SUIDGID or FUSE_OPEN_KILL_SUIDGID (the caller lacks CAP_FSETID). */
int fs_chan_req_kill_suidgid(void);

/* 1 when INIT negotiated passthrough and no registration has failed with EPERM since. */
int fs_chan_passthrough(void);
/* 1 when the kernel offered passthrough in INIT (Linux >= 6.9 with FUSE_PASSTHROUGH). */
int fs_chan_passthrough_offered(void);

/* Registers fd (a regular file open for I/O; the kernel keeps its own reference, and opens
 * files for the mount with the credentials of the calling thread) as a backing file.
 * Returns the backing id (> 0) or -errno; -EPERM turns passthrough off for good (the
 * kernel refused it: nothing has been opened with passthrough). */
int fs_chan_backing_open(int fd);
void fs_chan_backing_close(int id);

/* The next OPEN or CREATE reply sent by the calling thread carries FOPEN_PASSTHROUGH and
 * this backing id (0: none). Set right before fuse_reply_open/fuse_reply_create; cleared
 * when that reply is sent. */
void fs_chan_reply_backing(int id);

/* Requests read from the kernel with this opcode (all of them for FS_CHAN_OPS). */
uint64_t fs_chan_count(unsigned opcode);

/* Replies per opcode, timed from reading the request to writing its reply (FORGET and
 * BATCH_FORGET have none). Buckets count per bucket; upper bounds fs_chan_bucket_le_us,
 * the last is +Inf. Updated with relaxed atomics by the workers. */
#define FS_CHAN_NBUCKETS 14
struct fs_chan_opstat {
	_Atomic uint64_t replies, errors, sum_us;
	_Atomic uint64_t buckets[FS_CHAN_NBUCKETS];
};
extern const uint64_t fs_chan_bucket_le_us[FS_CHAN_NBUCKETS];
/* Stats of opcode (out-of-range opcodes share the FS_CHAN_OPS slot). */
const struct fs_chan_opstat *fs_chan_opstat(unsigned opcode);
/* "lookup", "getattr", ... or NULL for an opcode without a name. */
const char *fs_chan_op_name(unsigned opcode);

#endif
