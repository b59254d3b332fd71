/* fs_chan: custom I/O on /dev/fuse that adds passthrough to what libfuse 3.14 sends. */
#define FUSE_USE_VERSION 312
#include "fuse/fs_chan.h"
#include "common/st_log.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* From the kernel's uapi fuse.h 7.40 (Linux 6.9); the installed header is 7.38. */
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH_FLAGS2 (1u << 5) /* FUSE_PASSTHROUGH is 1ULL << 37 */
#define FOPEN_PASSTHROUGH (1u << 7)
struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
#else
#define FUSE_PASSTHROUGH_FLAGS2 ((uint32_t)(FUSE_PASSTHROUGH >> 32))
#endif

/* fuse_init_out (7.40): flags at 12, flags2 at 32, max_stack_depth at 36 */
#define INIT_OUT_FLAGS 12
#define INIT_OUT_FLAGS2 32
#define INIT_OUT_STACK_DEPTH 36
#define INIT_OUT_MIN (INIT_OUT_STACK_DEPTH + 4)

static struct {
	int fd;                    /* /dev/fuse of the session (owned by libfuse) */
	int want_pt;
	int want_kp2;              /* ask for FUSE_HANDLE_KILLPRIV_V2 */
	_Atomic int kp2;           /* granted: the kernel leaves suid/sgid clearing to us */
	_Atomic int init_done;     /* INIT reply sent */
	uint64_t init_unique;      /* written before init_done by the reading thread */
	uint32_t kflags, kflags2;  /* what the kernel offered in INIT */
	_Atomic int pt;            /* passthrough negotiated and not refused since */
	_Atomic uint64_t count[FS_CHAN_OPS + 1];
	struct fs_chan_opstat st[FS_CHAN_OPS + 1]; /* replies: errors and latency */
} c = { .fd = -1 };

static __thread int t_backing; /* backing id for this thread's next OPEN/CREATE reply */
static __thread int t_kill;    /* the current request carries a KILL_SUIDGID flag */
/* The request this thread read last: libfuse's workers read a request, run its handler
 * and send the reply from the same thread, so the reply's latency is measured without a
 * shared table (a reply sent by another thread is not timed). */
static __thread uint64_t t_unique;
static __thread unsigned t_op;
static __thread int64_t t_start_ns;

const uint64_t fs_chan_bucket_le_us[FS_CHAN_NBUCKETS] = {
	10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 50000, 250000, 1000000, 5000000, UINT64_MAX,
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Counts the reply of this thread's current request (relaxed atomics: no lock). */
static void observe_reply(const struct fuse_out_header *oh)
{
	if (!t_unique || oh->unique != t_unique)
		return;
	t_unique = 0;
	struct fs_chan_opstat *o = &c.st[t_op];
	uint64_t us = (uint64_t)(mono_ns() - t_start_ns) / 1000;
	unsigned b = 0;
	while (b < FS_CHAN_NBUCKETS - 1 && us > fs_chan_bucket_le_us[b])
		b++;
	atomic_fetch_add_explicit(&o->replies, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->buckets[b], 1, memory_order_relaxed);
	if (oh->error)
		atomic_fetch_add_explicit(&o->errors, 1, memory_order_relaxed);
}

static void note_init(const void *buf, size_t n)
{
	const struct fuse_in_header *ih = buf;
	const unsigned char *p = (const unsigned char *)buf + sizeof(*ih);
	if (n < sizeof(*ih) + 16)
		return;
	c.init_unique = ih->unique;
	memcpy(&c.kflags, p + 12, 4);
	if ((c.kflags & FUSE_INIT_EXT) && n >= sizeof(*ih) + 20)
		memcpy(&c.kflags2, p + 16, 4);
}

/* With FUSE_HANDLE_KILLPRIV_V2 the kernel flags the requests after which setuid/setgid
 * must go: WRITE (write_flags), SETATTR (valid), OPEN and CREATE (open_flags), each sent
 * only when the caller lacks CAP_FSETID. */
static int kill_flag(const void *buf, size_t n)
{
	const struct fuse_in_header *ih = buf;
	const unsigned char *p = (const unsigned char *)buf + sizeof(*ih);
	uint32_t v;
	size_t at, bit;
	switch (ih->opcode) {
	case FUSE_WRITE:
		at = offsetof(struct fuse_write_in, write_flags), bit = FUSE_WRITE_KILL_SUIDGID;
		break;
	case FUSE_SETATTR:
		at = offsetof(struct fuse_setattr_in, valid), bit = FATTR_KILL_SUIDGID;
		break;
	case FUSE_OPEN:
		at = offsetof(struct fuse_open_in, open_flags), bit = FUSE_OPEN_KILL_SUIDGID;
		break;
	case FUSE_CREATE:
		at = offsetof(struct fuse_create_in, open_flags), bit = FUSE_OPEN_KILL_SUIDGID;
		break;
	default:
		return 0;
	}
	if (!atomic_load_explicit(&c.kp2, memory_order_relaxed) || n < sizeof(*ih) + at + 4)
		return 0;
	memcpy(&v, p + at, 4);
	return (v & bit) != 0;
}

static ssize_t chan_read(int fd, void *buf, size_t len, void *ud)
{
	(void)ud;
	ssize_t n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(struct fuse_in_header)) {
		const struct fuse_in_header *ih = buf;
		unsigned op = ih->opcode < FS_CHAN_OPS ? ih->opcode : FS_CHAN_OPS;
		atomic_fetch_add_explicit(&c.count[op], 1, memory_order_relaxed);
		t_unique = ih->unique;
		t_op = op;
		t_start_ns = mono_ns();
		t_kill = kill_flag(buf, (size_t)n);
		if (ih->opcode == FUSE_INIT && !atomic_load(&c.init_done))
			note_init(buf, (size_t)n);
	}
	return n;
}

/* Adds passthrough to libfuse's INIT reply when the kernel offered it; never together
 * with the writeback cache (the kernel refuses the pair). */
static void patch_init(struct iovec *iov, int count)
{
	if (count != 2 || iov[1].iov_len < INIT_OUT_MIN)
		return;
	unsigned char *p = iov[1].iov_base;
	uint32_t flags, flags2, depth = 1; /* backing files are on a plain filesystem */
	memcpy(&flags, p + INIT_OUT_FLAGS, 4);
	memcpy(&flags2, p + INIT_OUT_FLAGS2, 4);
	if (c.want_kp2 && (c.kflags & FUSE_HANDLE_KILLPRIV_V2)) {
		flags |= FUSE_HANDLE_KILLPRIV_V2;
		memcpy(p + INIT_OUT_FLAGS, &flags, 4);
		atomic_store(&c.kp2, 1);
	}
	if (!c.want_pt || !(c.kflags2 & FUSE_PASSTHROUGH_FLAGS2) ||
	    (flags & FUSE_WRITEBACK_CACHE))
		return;
	flags |= FUSE_INIT_EXT;
	flags2 |= FUSE_PASSTHROUGH_FLAGS2;
	memcpy(p + INIT_OUT_FLAGS, &flags, 4);
	memcpy(p + INIT_OUT_FLAGS2, &flags2, 4);
	memcpy(p + INIT_OUT_STACK_DEPTH, &depth, 4);
	atomic_store(&c.pt, 1);
}

/* fuse_open_out is the last 16 bytes of an OPEN reply (alone) and of a CREATE reply (after
 * fuse_entry_out); its padding field is the kernel's backing_id. */
static void patch_open(struct iovec *iov, int count, int id)
{
	if (count != 2 || (iov[1].iov_len != sizeof(struct fuse_open_out) &&
			   iov[1].iov_len != sizeof(struct fuse_entry_out) +
						     sizeof(struct fuse_open_out)))
		return;
	struct fuse_open_out o;
	unsigned char *p = (unsigned char *)iov[1].iov_base + iov[1].iov_len - sizeof(o);
	memcpy(&o, p, sizeof(o));
	o.open_flags |= FOPEN_PASSTHROUGH;
	o.padding = (uint32_t)id;
	memcpy(p, &o, sizeof(o));
}

static ssize_t chan_writev(int fd, struct iovec *iov, int count, void *ud)
{
	(void)ud;
	const struct fuse_out_header *oh = iov[0].iov_base;
	if (count >= 1 && iov[0].iov_len >= sizeof(*oh))
		observe_reply(oh);
	if (count >= 1 && iov[0].iov_len >= sizeof(*oh) && oh->error == 0 && oh->unique) {
		if (t_backing) {
			patch_open(iov, count, t_backing);
			t_backing = 0;
		} else if (!atomic_load(&c.init_done) && oh->unique == c.init_unique) {
			patch_init(iov, count);
			atomic_store(&c.init_done, 1);
		}
	}
	return writev(fd, iov, count);
}

static ssize_t chan_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				unsigned flags, void *ud)
{
	(void)ud;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int fs_chan_attach(struct fuse_session *se, int want_passthrough, int want_killpriv_v2)
{
	/* No splice_receive: requests are read into memory so that they can be counted (a
	 * WRITE larger than the pipe is read anyway, and passthrough sends none). */
	static const struct fuse_custom_io io = {
		.writev = chan_writev,
		.read = chan_read,
		.splice_send = chan_splice_send,
	};
	c.fd = fuse_session_fd(se);
	c.want_pt = want_passthrough;
	c.want_kp2 = want_killpriv_v2;
	return fuse_session_custom_io(se, &io, c.fd);
}

int fs_chan_passthrough(void)
{
	return atomic_load(&c.pt);
}

int fs_chan_passthrough_offered(void)
{
	return atomic_load(&c.init_done) && (c.kflags2 & FUSE_PASSTHROUGH_FLAGS2);
}

int fs_chan_backing_open(int fd)
{
	struct fuse_backing_map map = { .fd = fd };
	int id = ioctl(c.fd, FUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id > 0)
		return id;
	int e = id < 0 ? errno : EIO;
	if (e == EPERM && atomic_exchange(&c.pt, 0))
		st_warn("stratafs: the kernel refused a backing file (%s): passthrough off",
			strerror(e));
	return -e;
}

void fs_chan_backing_close(int id)
{
	uint32_t v = (uint32_t)id;
	if (ioctl(c.fd, FUSE_DEV_IOC_BACKING_CLOSE, &v) != 0)
		st_warn("stratafs: closing backing file %d: %s", id, strerror(errno));
}

int fs_chan_killpriv_v2(void)
{
	return atomic_load_explicit(&c.kp2, memory_order_relaxed);
}

int fs_chan_req_kill_suidgid(void)
{
	return t_kill;
}

void fs_chan_reply_backing(int id)
{
	t_backing = id;
}

uint64_t fs_chan_count(unsigned opcode)
{
	if (opcode < FS_CHAN_OPS)
		return atomic_load_explicit(&c.count[opcode], memory_order_relaxed);
	uint64_t n = 0;
	for (unsigned i = 0; i <= FS_CHAN_OPS; i++)
		n += atomic_load_explicit(&c.count[i], memory_order_relaxed);
	return n;
}

const struct fs_chan_opstat *fs_chan_opstat(unsigned opcode)
{
	return &c.st[opcode < FS_CHAN_OPS ? opcode : FS_CHAN_OPS];
}

const char *fs_chan_op_name(unsigned opcode)
{
	static const char *const names[FS_CHAN_OPS] = {
		[1] = "lookup",       [2] = "forget",        [3] = "getattr",
		[4] = "setattr",      [5] = "readlink",      [6] = "symlink",
		[8] = "mknod",        [9] = "mkdir",         [10] = "unlink",
		[11] = "rmdir",       [12] = "rename",       [13] = "link",
		[14] = "open",        [15] = "read",         [16] = "write",
		[17] = "statfs",      [18] = "release",      [20] = "fsync",
		[21] = "setxattr",    [22] = "getxattr",     [23] = "listxattr",
		[24] = "removexattr", [25] = "flush",        [26] = "init",
		[27] = "opendir",     [28] = "readdir",      [29] = "releasedir",
		[30] = "fsyncdir",    [31] = "getlk",        [32] = "setlk",
		[33] = "setlkw",      [34] = "access",       [35] = "create",
		[36] = "interrupt",   [37] = "bmap",         [38] = "destroy",
		[39] = "ioctl",       [40] = "poll",         [41] = "notify_reply",
		[42] = "batch_forget", [43] = "fallocate",   [44] = "readdirplus",
		[45] = "rename2",     [46] = "lseek",        [47] = "copy_file_range",
		[48] = "setupmapping", [49] = "removemapping", [50] = "syncfs",
		[51] = "tmpfile",
	};
	return opcode < FS_CHAN_OPS ? names[opcode] : NULL;
}
