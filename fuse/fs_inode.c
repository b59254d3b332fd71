/* Inode table: backing objects keyed by (dev, ino, view), alive while the kernel holds
 * lookups on them. */
#include "fuse/fs_daemon.h"
#include "common/st_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static size_t hash(dev_t dev, ino_t ino, int view, size_t nb)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev * 0xC2B2AE3D27D4EB4Full;
	h ^= (uint64_t)view;
	h ^= h >> 29;
	return (size_t)(h & (nb - 1));
}

int fs_itable_init(struct fs_itable *t)
{
	pthread_mutex_init(&t->lock, NULL);
	t->nb = 1024;
	t->n = 0;
	t->b = calloc(t->nb, sizeof(*t->b));
	return t->b ? 0 : -ENOMEM;
}

static void grow(struct fs_itable *t)
{
	size_t nb = t->nb * 2;
	struct fs_inode **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < t->nb; i++)
		for (struct fs_inode *in = t->b[i], *next; in; in = next) {
			next = in->next;
			size_t h = hash(in->dev, in->ino, in->view, nb);
			in->next = b[h];
			b[h] = in;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

struct fs_inode *fs_itable_get(struct fs_itable *t, int fd, const struct stat *st, int view)
{
	pthread_mutex_lock(&t->lock);
	size_t h = hash(st->st_dev, st->st_ino, view, t->nb);
	for (struct fs_inode *in = t->b[h]; in; in = in->next)
		if (in->ino == st->st_ino && in->dev == st->st_dev && in->view == view) {
			in->nlookup++;
			pthread_mutex_unlock(&t->lock);
			close(fd);
			return in;
		}
	struct fs_inode *in = calloc(1, sizeof(*in));
	if (!in) {
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return NULL;
	}
	if (t->fds >= t->fd_budget && st->st_dev == fs_g->root.dev) {
		/* over budget: keep a file handle and open it per request */
		struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
		int mnt;
		if (fh) {
			fh->handle_bytes = MAX_HANDLE_SZ;
			if (name_to_handle_at(fd, "", fh, &mnt, AT_EMPTY_PATH) == 0) {
				in->fh = fh;
				close(fd);
				fd = -1;
			} else {
				free(fh);
			}
		}
	}
	if (fd >= 0)
		t->fds++;
	in->fd = fd;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->view = view;
	in->type = st->st_mode & S_IFMT;
	in->nlookup = 1;
	in->next = t->b[h];
	t->b[h] = in;
	if (++t->n > t->nb)
		grow(t);
	pthread_mutex_unlock(&t->lock);
	return in;
}

struct fs_inode *fs_itable_find(struct fs_itable *t, dev_t dev, ino_t ino, int view)
{
	pthread_mutex_lock(&t->lock);
	struct fs_inode *in = t->b[hash(dev, ino, view, t->nb)];
	while (in && !(in->ino == ino && in->dev == dev && in->view == view))
		in = in->next;
	pthread_mutex_unlock(&t->lock);
	return in;
}

void fs_itable_unref(struct fs_itable *t, struct fs_inode *in, uint64_t n)
{
	if (in == &fs_g->root)
		return;
	pthread_mutex_lock(&t->lock);
	ST_ASSERT(in->nlookup >= n);
	in->nlookup -= n;
	if (in->nlookup) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	struct fs_inode **pp = &t->b[hash(in->dev, in->ino, in->view, t->nb)];
	while (*pp != in)
		pp = &(*pp)->next;
	*pp = in->next;
	t->n--;
	if (in->fd >= 0)
		t->fds--;
	pthread_mutex_unlock(&t->lock);
	if (in->fd >= 0)
		close(in->fd);
	free(in->fh);
	free(in);
}

void fs_itable_destroy(struct fs_itable *t)
{
	for (size_t i = 0; i < t->nb; i++)
		for (struct fs_inode *in = t->b[i], *next; in; in = next) {
			next = in->next;
			if (in->fd >= 0)
				close(in->fd);
			free(in->fh);
			free(in);
		}
	free(t->b);
	t->b = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* Temporary fds of the current request, per worker thread. */
#define FS_TMP_SLOTS 16
static __thread struct {
	struct fs_inode *in;
	int fd;
} t_tmp[FS_TMP_SLOTS];
static __thread int t_ntmp;

int fs_fd(struct fs_inode *in)
{
	if (in->fd >= 0)
		return in->fd;
	for (int i = 0; i < t_ntmp; i++)
		if (t_tmp[i].in == in)
			return t_tmp[i].fd;
	if (t_ntmp == FS_TMP_SLOTS) {
		errno = EMFILE;
		return -1;
	}
	int fd = open_by_handle_at(fs_g->bfd, in->fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -1;
	t_tmp[t_ntmp].in = in;
	t_tmp[t_ntmp++].fd = fd;
	return fd;
}

void fs_fd_release(void)
{
	while (t_ntmp > 0)
		close(t_tmp[--t_ntmp].fd);
}
