/* Kernel dentry invalidations, sent from a dedicated thread: a notification sent from
 * inside a request on the same directory could wait on the lock that request holds. */
#include "fuse/fs_daemon.h"
#include "common/st_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fs_notify_item {
	struct fs_notify_item *next;
	fuse_ino_t parent;
	char name[];
};

void fs_notify_entry(dev_t dev, ino_t ino, int view, const char *name, int sync)
{
	struct fs_state *s = fs_g;
	fuse_ino_t parent;
	if (view == FS_VIEW_LIVE && dev == s->root.dev && ino == s->root.ino) {
		parent = FUSE_ROOT_ID;
	} else {
		struct fs_inode *in = fs_itable_find(&s->itab, dev, ino, view);
		if (!in)
			return; /* the kernel has nothing cached below an unknown directory */
		parent = fs_ino_id(in);
	}
	size_t nl = strlen(name);
	if (sync) {
		int rc = fuse_lowlevel_notify_inval_entry(s->se, parent, name, nl);
		if (rc && rc != -ENOENT && s->debug)
			st_warn("inval_entry %s: %s", name, strerror(-rc));
		return;
	}
	struct fs_notify_item *it = malloc(sizeof(*it) + nl + 1);
	if (!it)
		return;
	it->next = NULL;
	it->parent = parent;
	memcpy(it->name, name, nl + 1);
	pthread_mutex_lock(&s->nlock);
	if (!s->notify_running || s->nstop) {
		pthread_mutex_unlock(&s->nlock);
		free(it);
		return;
	}
	if (s->ntail)
		s->ntail->next = it;
	else
		s->nhead = it;
	s->ntail = it;
	pthread_cond_signal(&s->ncond);
	pthread_mutex_unlock(&s->nlock);
}

void fs_notify_attr(dev_t dev, ino_t ino)
{
	struct fs_inode *in = fs_itable_find(&fs_g->itab, dev, ino, FS_VIEW_LIVE);
	if (!in)
		return;
	int rc = fuse_lowlevel_notify_inval_inode(fs_g->se, fs_ino_id(in), -1, 0);
	if (rc && rc != -ENOENT && fs_g->debug)
		st_warn("inval_inode: %s", strerror(-rc));
}

static void *notify_main(void *arg)
{
	struct fs_state *s = arg;
	pthread_mutex_lock(&s->nlock);
	for (;;) {
		while (!s->nhead && !s->nstop)
			pthread_cond_wait(&s->ncond, &s->nlock);
		if (!s->nhead)
			break;
		struct fs_notify_item *it = s->nhead;
		s->nhead = it->next;
		if (!s->nhead)
			s->ntail = NULL;
		pthread_mutex_unlock(&s->nlock);
		int rc = fuse_lowlevel_notify_inval_entry(s->se, it->parent, it->name,
							  strlen(it->name));
		if (rc && rc != -ENOENT && s->debug)
			st_warn("inval_entry %s: %s", it->name, strerror(-rc));
		free(it);
		pthread_mutex_lock(&s->nlock);
	}
	pthread_mutex_unlock(&s->nlock);
	return NULL;
}

int fs_notify_start(struct fs_state *s)
{
	pthread_mutex_init(&s->nlock, NULL);
	pthread_cond_init(&s->ncond, NULL);
	int e = pthread_create(&s->notify_thread, NULL, notify_main, s);
	if (e)
		return -e;
	pthread_mutex_lock(&s->nlock);
	s->notify_running = 1;
	pthread_mutex_unlock(&s->nlock);
	return 0;
}

void fs_notify_stop(struct fs_state *s)
{
	if (!s->notify_running)
		return;
	pthread_mutex_lock(&s->nlock);
	s->nstop = 1;
	pthread_cond_signal(&s->ncond);
	pthread_mutex_unlock(&s->nlock);
	pthread_join(s->notify_thread, NULL);
	s->notify_running = 0;
}
