/* fs_chan: custom I/O on /dev/fuse that adds passthrough to what libfuse 3.14 sends. */
#define FUSE_USE_VERSION 312
#include "fuse/fs_chan.h"
#include "common/st_log.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
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
	_Atomic int init_done;     /* INIT reply sent */
	uint64_t init_unique;      /* written before init_done by the reading thread */
	uint32_t kflags, kflags2;  /* what the kernel offered in INIT */
	_Atomic int pt;            /* passthrough negotiated and not refused since */
	_Atomic uint64_t count[FS_CHAN_OPS + 1];
} c = { .fd = -1 };

static __thread int t_backing; /* backing id for this thread's next OPEN/CREATE reply */

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

static ssize_t chan_read(int fd, void *buf, size_t len, void *ud)
{
	(void)ud;
	ssize_t n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(struct fuse_in_header)) {
		const struct fuse_in_header *ih = buf;
		unsigned op = ih->opcode < FS_CHAN_OPS ? ih->opcode : FS_CHAN_OPS;
		atomic_fetch_add_explicit(&c.count[op], 1, memory_order_relaxed);
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

int fs_chan_attach(struct fuse_session *se, int want_passthrough)
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
