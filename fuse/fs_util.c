/* Thread-local credentials, symlink-safe path walking and small encoders for stratafs. */
#include "fuse/fs_util.h"
#include "common/st_err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

int fs_creds_set(uid_t uid, gid_t gid, int ngroups, const gid_t *groups)
{
	if (geteuid() != 0)
		return 0;
	/* Raw syscalls: glibc's setgroups() would broadcast to every thread. */
	if (ngroups >= 0 && syscall(SYS_setgroups, (size_t)ngroups, groups) != 0)
		return -errno;
	syscall(SYS_setfsgid, gid);
	syscall(SYS_setfsuid, uid);
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid)
		return -EPERM;
	return 0;
}

void fs_creds_root(void)
{
	if (geteuid() != 0)
		return;
	gid_t g0 = 0;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	syscall(SYS_setgroups, (size_t)1, &g0);
}

int fs_proc_groups(pid_t pid, gid_t *groups, int max)
{
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int n = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		n = 0;
		char *p = line + 7, *end;
		for (;;) {
			unsigned long v = strtoul(p, &end, 10);
			if (end == p)
				break;
			if (n < max)
				groups[n++] = (gid_t)v;
			p = end;
		}
		break;
	}
	fclose(f);
	return n;
}

int fs_path_clean(char *rel)
{
	size_t len = strlen(rel);
	if (len >= FS_PATH_MAX)
		return -EINVAL;
	if (rel[0] == '/')
		return -EINVAL;
	char *w = rel;
	const char *r = rel;
	while (*r) {
		while (*r == '/')
			r++;
		if (!*r)
			break;
		const char *s = r;
		while (*r && *r != '/')
			r++;
		size_t n = (size_t)(r - s);
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return -EINVAL;
		if (w != rel)
			*w++ = '/';
		memmove(w, s, n);
		w += n;
	}
	*w = '\0';
	return 0;
}

/* Walks rel component by component from dirfd without following symlinks; with `create`,
 * makes missing directories (mode, and owner unless uid is -1) on the way. Returns an fd of
 * the last directory or -errno. */
static int walk_dirs(int dirfd, const char *rel, int create, mode_t mode, uid_t uid, gid_t gid)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	char comp[NAME_MAX + 1];
	const char *p = rel;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *s = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - s);
		if (n > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, s, n);
		comp[n] = '\0';
		if (create) {
			if (mkdirat(fd, comp, mode) == 0) {
				if (uid != (uid_t)-1 &&
				    fchownat(fd, comp, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
					int e = errno;
					close(fd);
					return -e;
				}
			} else if (errno != EEXIST) {
				int e = errno;
				close(fd);
				return -e;
			}
		}
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (nfd < 0)
			return e == ELOOP ? -ENOTDIR : -e;
		fd = nfd;
	}
	return fd;
}

int fs_open_dir_nofollow(int dirfd, const char *rel)
{
	return walk_dirs(dirfd, rel, 0, 0, (uid_t)-1, (gid_t)-1);
}

int fs_mkdirs(int dirfd, const char *rel, mode_t mode, uid_t uid, gid_t gid)
{
	return walk_dirs(dirfd, rel, 1, mode, uid, gid);
}

char *fs_fd_path(int fd, char *buf)
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

void fs_hex_encode(const void *in, size_t n, char *out)
{
	static const char dig[] = "0123456789abcdef";
	const unsigned char *b = in;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = dig[b[i] >> 4];
		out[2 * i + 1] = dig[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t fs_hex_decode(const char *in, size_t len, void *out)
{
	if (len % 2)
		return -1;
	unsigned char *b = out;
	for (size_t i = 0; i < len / 2; i++) {
		int h = hexval(in[2 * i]), l = hexval(in[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		b[i] = (unsigned char)(h << 4 | l);
	}
	return (ssize_t)(len / 2);
}

void fs_new_id(char out[17])
{
	static atomic_uint_fast32_t counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	uint64_t c = atomic_fetch_add(&counter, 1) & 0xfffff;
	uint64_t id = (ms << 20) | c;
	snprintf(out, 17, "%016llx", (unsigned long long)id);
}

socklen_t fs_ctl_addr(const char *backing_real, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	unsigned long long h = (unsigned long long)XXH64(backing_real, strlen(backing_real), 0);
	int n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1, "stratafs-%016llx", h);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define IOPRIO_WHO_PROCESS 1

void fs_thread_low_priority(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	setpriority(PRIO_PROCESS, (id_t)tid, 19);
	syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
}

/* "/proc/self/fd/N" follows the magic link to the object itself; "/proc/self/fd/N/name"
 * with the l*xattr calls does not follow a final symlink. */
static int tl_path(int dirfd, const char *name, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "/proc/self/fd/%d%s%s", dirfd, name[0] ? "/" : "", name) >=
	    len)
		return -ENAMETOOLONG;
	return name[0] != 0;
}

static int tl_read(const char *p, int nofollow)
{
	char v[24];
	ssize_t n = nofollow ? lgetxattr(p, FS_TLINKS_XATTR, v, sizeof(v) - 1)
			     : getxattr(p, FS_TLINKS_XATTR, v, sizeof(v) - 1);
	if (n <= 0)
		return 0;
	v[n] = 0;
	char *end;
	long c = strtol(v, &end, 10);
	return *end || c < 0 || c > INT_MAX ? 0 : (int)c;
}

int fs_tlinks_get(int dirfd, const char *name)
{
	char p[PATH_MAX + 32];
	int nf = tl_path(dirfd, name, p, sizeof(p));
	return nf < 0 ? 0 : tl_read(p, nf);
}

static pthread_mutex_t tl_lock = PTHREAD_MUTEX_INITIALIZER;

int fs_tlinks_add(int dirfd, const char *name, int delta)
{
	char p[PATH_MAX + 32];
	int nf = tl_path(dirfd, name, p, sizeof(p));
	if (nf < 0)
		return nf;
	pthread_mutex_lock(&tl_lock);
	long c = (long)tl_read(p, nf) + delta;
	int rc;
	if (c <= 0) {
		c = 0;
		rc = nf ? lremovexattr(p, FS_TLINKS_XATTR) : removexattr(p, FS_TLINKS_XATTR);
		if (rc != 0 && errno == ENODATA)
			rc = 0;
	} else {
		char v[24];
		int n = snprintf(v, sizeof(v), "%ld", c);
		rc = nf ? lsetxattr(p, FS_TLINKS_XATTR, v, (size_t)n, 0)
			: setxattr(p, FS_TLINKS_XATTR, v, (size_t)n, 0);
	}
	rc = rc != 0 ? -errno : (int)c;
	pthread_mutex_unlock(&tl_lock);
	return rc;
}

/* Depth-first over open directories (one fd per level), never following symlinks. */
static long tl_drop_one(int dfd, const char *nm, fs_tlinks_hook hook)
{
	struct stat st;
	if (fs_tlinks_get(dfd, nm) <= 0 || fs_tlinks_add(dfd, nm, -1) < 0)
		return 0;
	if (hook && fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0)
		hook(st.st_dev, st.st_ino);
	return 1;
}

static long tl_drop_dir(int dfd, int depth, fs_tlinks_hook hook)
{
	if (depth > 4096)
		return 0;
	int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		return 0;
	}
	long n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		int isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			isdir = fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		}
		if (isdir) {
			int c = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (c >= 0) {
				n += tl_drop_dir(c, depth + 1, hook);
				close(c);
			}
		} else {
			n += tl_drop_one(dfd, nm, hook);
		}
	}
	closedir(d);
	return n;
}

long fs_tlinks_restored(int dirfd, const char *name, fs_tlinks_hook hook)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? tl_drop_one(dirfd, name, hook) : 0;
	long n = tl_drop_dir(fd, 0, hook);
	close(fd);
	return n;
}
