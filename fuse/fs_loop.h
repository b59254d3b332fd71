/* fs_loop: the daemon's request loop on a local backing (leader/follower, LIFO).
 *
 * libfuse's multithreaded loop keeps several idle workers blocked in read() on /dev/fuse,
 * and the kernel hands each request to the one that has waited longest: a sequential
 * caller (tar, cp, make) is served by a different thread for every request, its wakeups
 * cross CPUs and the scheduler stops placing caller and daemon together. On this 2-vCPU
 * VM that doubles the CPU per request (daemon 30-37 us instead of 15 us, and the caller's
 * own system time twice as high; see docs/stratafs.md).
 *
 * Here one worker at a time (the reader) reads the device. It handles a quick request
 * itself and reads the next one, so a sequential caller keeps talking to one thread. It
 * hands the reader role to an idle worker first (the most recently idle one: LIFO, warm)
 * when the request may block (fs_loop_may_block: I/O through the daemon, fsync, waiting
 * locks, the journal) or when more requests are already queued in the kernel (parallel
 * callers) behind one that is not instant (forget, release, getattr, getxattr). The pool has a fixed size (--threads). Callers own nothing here.
 */
#ifndef FS_LOOP_H
#define FS_LOOP_H

#include <stdint.h>

struct fuse_session;

/* Runs the session with nthreads workers until it exits (unmount, signal). The calling
 * thread only waits. journal: the journal is on (opens, truncates, renames and unlinks
 * may then wait for writeback). Returns 0, or -errno when workers could not start. */
int fs_loop_run(struct fuse_session *se, int fd, unsigned nthreads, int journal);

/* 1 when a request with this opcode may block for long (and is handled after the reader
 * role was passed on). */
int fs_loop_may_block(uint32_t opcode, int journal);

/* Reader-role handoffs since the start (by kind), for metrics and tests. */
uint64_t fs_loop_handoffs(int queued);

#endif
