/* fs_uring: FUSE requests over io_uring (kernel >= 6.14, module parameter enable_uring).
 *
 * The kernel keeps one queue per possible CPU and puts a request on the queue of the CPU
 * its caller runs on. Here each queue has a thread with its own ring (SQE128) that
 * registers a few entries (a header buffer and a payload buffer each); a request arrives
 * as the completion of an entry's command, and one io_uring_enter both commits the reply
 * (COMMIT_AND_FETCH) and waits for the next request. libfuse 3.14 knows nothing of this:
 * the request is laid out as /dev/fuse would deliver it and handed to
 * fuse_session_process_buf, and fs_chan's writev gives replies to fs_uring_reply.
 * FORGET, INTERRUPT, notifications and everything before the rings are ready still go
 * through /dev/fuse (fs_loop). The kernel ABI is declared here (the installed linux/fuse.h
 * is 7.38). */
#ifndef FS_URING_H
#define FS_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct fuse_session;

/* FUSE_OVER_IO_URING is 1ULL << 41 of the INIT flags: bit 9 of flags2. */
#define FS_URING_INIT_FLAGS2 (1u << 9)

/* Remembers the session and whether a journal is on (requests that may block are then
 * handed to a worker thread). Call before the session's loop runs. */
void fs_uring_configure(struct fuse_session *se, int journal);

/* Called by fs_chan once the INIT reply naming FUSE_OVER_IO_URING reached the kernel:
 * starts one thread per possible CPU, which register their entries. max_payload: the
 * kernel's minimum payload buffer (max(8 KiB, max_write, max_pages pages)). Returns 0 or
 * -errno (requests then keep going through /dev/fuse). */
int fs_uring_start(size_t max_payload);

/* Ends the queue threads (after the session's loop returned). */
void fs_uring_stop(void);

/* 1 when every queue registered its entries (the kernel then sends requests through the
 * rings); 0 before, or after the kernel refused (fs_uring_error says why). */
int fs_uring_active(void);
int fs_uring_error(void);

/* Requests taken from the rings, and replies committed through them. */
uint64_t fs_uring_requests(void);

/* If oh (the first iovec of a reply) answers a request that came through a ring, copies
 * the reply into that entry and commits it; returns the bytes "written" (as writev) or
 * -errno. Returns 0 for a request of /dev/fuse (the caller writes it there). */
ssize_t fs_uring_reply(const struct iovec *iov, int count);

#endif
