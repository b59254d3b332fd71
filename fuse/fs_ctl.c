/* Control server of a live stratafs: the transport of fs_cmd_run (rmr, rmr status, trash
 * list/restore/purge, ping, status) for strata-admin, with the caller identified by
 * SO_PEERCRED. One thread per connection. */
#include "fuse/fs_chan.h"
#include "fuse/fs_cmd.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_daemon.h"
#include "fuse/fs_loop.h"
#include "fuse/fs_util.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct caller {
	struct fs_caller c;
	gid_t groups[256];
	pid_t pid;
};

/* Invalidates every component of dest (parents may have been recreated behind the
 * kernel's back, over cached negative entries). */
static void invalidate_path(const char *dest)
{
	int fd = fcntl(fs_g->bfd, F_DUPFD_CLOEXEC, 0);
	const char *p = dest;
	while (fd >= 0 && *p) {
		const char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		char comp[NAME_MAX + 1];
		if (n == 0 || n > NAME_MAX)
			break;
		memcpy(comp, p, n);
		comp[n] = 0;
		struct stat st;
		if (fstat(fd, &st) == 0)
			fs_notify_entry(st.st_dev, st.st_ino, FS_VIEW_LIVE, comp, 1);
		int nfd = s ? openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
		close(fd);
		fd = nfd;
		p = s ? s + 1 : p + n;
	}
	if (fd >= 0)
		close(fd);
}

/* The journal's fill, dirty data and writeback (fs status --json "journal"). */
static json_t *journal_info(struct fs_jn *jn)
{
	struct fs_jn_stats j;
	fs_jn_stats(jn, &j);
	const struct fs_jreplay *rp = &fs_g->jrep;
	return json_pack("{s:I,s:I,s:I,s:I,s:i,s:i,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:{s:I,s:I,s:I,s:I,s:I,s:b}}",
			 "capacity_bytes", (json_int_t)j.capacity_bytes, "used_bytes",
			 (json_int_t)j.used_bytes, "dirty_bytes", (json_int_t)j.dirty_bytes,
			 "segment_bytes", (json_int_t)j.seg_size, "segments_used", (int)j.segs_used,
			 "segments_free", (int)(j.segs_total - j.segs_used), "oldest_dirty_age_s",
			 j.oldest_dirty_age_s, "writeback_bytes_per_s", j.wb_rate_bps,
			 "writeback_bytes", (json_int_t)j.wb_bytes, "writeback_records",
			 (json_int_t)j.wb_records, "writeback_failures", (json_int_t)j.wb_fails,
			 "full_waits", (json_int_t)j.waits, "syncs", (json_int_t)j.syncs, "fsyncs",
			 (json_int_t)j.fsyncs, "replay", "records",
			 (json_int_t)rp->scan.records, "applied", (json_int_t)rp->applied, "bytes",
			 (json_int_t)rp->bytes, "truncates", (json_int_t)rp->truncates, "files",
			 (json_int_t)rp->files, "damaged",
			 rp->scan.damaged != 0);
}

/* What the mount runs with and how many requests the kernel sent it (linux/fuse.h
 * opcodes of the requests worth watching: passthrough makes READ and WRITE disappear). */
static json_t *do_info(int full)
{
	if (!full)
		return json_pack("{s:b,s:s,s:s,s:i}", "ok", 1, "backing", fs_g->backing,
				 "mount", fs_g->mnt, "pid", (int)getpid());
	static const struct {
		const char *name;
		unsigned op;
	} ops[] = { { "lookup", 1 },   { "getattr", 3 }, { "setattr", 4 }, { "open", 14 },
		    { "read", FS_CHAN_OP_READ }, { "write", FS_CHAN_OP_WRITE }, { "release", 18 },
		    { "getxattr", 22 }, { "create", 35 }, { "unlink", 10 },
		    { "readdirplus", 44 }, { "mkdir", 9 }, { "rmdir", 11 }, { "rename", 12 },
		    { "rename2", 45 }, { "link", 13 }, { "symlink", 6 }, { "setxattr", 21 },
		    { "opendir", 27 }, { "readdir", 28 }, { "releasedir", 29 }, { "flush", 25 },
		    { "fsync", 20 }, { "forget", 2 }, { "batch_forget", 42 }, { "access", 34 },
		    { "statfs", 17 }, { "readlink", 5 }, { "mknod", 8 }, { "listxattr", 23 } };
	json_t *req = json_object();
	json_object_set_new(req, "total", json_integer((json_int_t)fs_chan_count(FS_CHAN_OPS)));
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		json_object_set_new(req, ops[i].name,
				    json_integer((json_int_t)fs_chan_count(ops[i].op)));
	json_t *r = json_pack("{s:b,s:s,s:s,s:i,s:b,s:b,s:b,s:f,s:o,s:s,s:b,s:b}", "ok", 1, "backing",
			      fs_g->backing, "mount", fs_g->mnt, "pid", (int)getpid(),
			      "passthrough", fs_chan_passthrough(), "kernel_passthrough",
			      fs_chan_passthrough_offered(), "writeback_cache", fs_g->writeback,
			      "attr_timeout", fs_g->attr_timeout, "requests", req, "metrics",
			      fs_g->metrics_addr, "killpriv_v2", fs_chan_killpriv_v2(), "xattrs",
			      !fs_g->no_xattr);
	if (r)
		json_object_set_new(r, "loop",
				    json_pack("{s:s,s:I,s:I}", "kind",
					      fs_g->lifo_loop ? "lifo" : "libfuse", "handoffs_blocking",
					      (json_int_t)fs_loop_handoffs(0), "handoffs_queued",
					      (json_int_t)fs_loop_handoffs(1)));
	if (r && fs_g->jn)
		json_object_set_new(r, "journal", journal_info(fs_g->jn));
	return r;
}

static void notify(dev_t dev, ino_t ino, int view, const char *name)
{
	fs_notify_entry(dev, ino, view, name, 1);
}

static void *conn_main(void *arg)
{
	const struct fs_cmd_ctx ctx = { .bfd = fs_g->bfd, .trash = &fs_g->trash, .rmr = &fs_g->rmr,
					.notify = notify, .restored = invalidate_path,
					.info = do_info };
	int fd = (int)(intptr_t)arg;
	struct caller k;
	memset(&k, 0, sizeof(k));
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	json_t *res = NULL, *req = NULL;
	struct st_error err = { 0 };
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0) {
		res = fs_cmd_fail(-errno, "cannot identify the caller");
		goto reply;
	}
	k.c.uid = uc.uid;
	k.c.gid = uc.gid;
	k.c.is_root = uc.uid == 0;
	k.pid = uc.pid;
	int ng = fs_proc_groups(uc.pid, k.groups, 256);
	if (ng < 0) {
		k.groups[0] = uc.gid;
		ng = 1;
	}
	k.c.ngroups = ng;
	k.c.groups = k.groups;
	req = fs_ctl_recv(fd, &err);
	if (!req) {
		res = fs_cmd_fail(err.code, err.msg);
		goto reply;
	}
	res = fs_cmd_run(&ctx, &k.c, req);
reply:
	fs_creds_root();
	if (res)
		fs_ctl_send(fd, res);
	json_decref(res);
	json_decref(req);
	close(fd);
	pthread_mutex_lock(&fs_g->ctl_lock);
	fs_g->ctl_active--;
	pthread_cond_broadcast(&fs_g->ctl_cond);
	pthread_mutex_unlock(&fs_g->ctl_lock);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fs_state *s = arg;
	struct pollfd p[2] = { { .fd = s->ctl_fd, .events = POLLIN },
			       { .fd = s->ctl_wake[0], .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
				st_warn("ctl: accept: %s", strerror(errno));
				usleep(100000); /* e.g. out of fds: do not spin */
			}
			continue;
		}
		pthread_mutex_lock(&s->ctl_lock);
		s->ctl_active++;
		pthread_mutex_unlock(&s->ctl_lock);
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, conn_main, (void *)(intptr_t)fd) != 0) {
			close(fd);
			pthread_mutex_lock(&s->ctl_lock);
			s->ctl_active--;
			pthread_mutex_unlock(&s->ctl_lock);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int fs_ctl_start(struct fs_state *s)
{
	pthread_mutex_init(&s->ctl_lock, NULL);
	pthread_cond_init(&s->ctl_cond, NULL);
	if (pipe2(s->ctl_wake, O_CLOEXEC) != 0)
		return -errno;
	int e = pthread_create(&s->ctl_thread, NULL, accept_main, s);
	if (e)
		return -e;
	s->ctl_running = 1;
	return 0;
}

void fs_ctl_stop(struct fs_state *s)
{
	if (!s->ctl_running)
		return;
	if (write(s->ctl_wake[1], "x", 1) != 1)
		st_warn("ctl: cannot wake the accept thread");
	pthread_join(s->ctl_thread, NULL);
	pthread_mutex_lock(&s->ctl_lock);
	while (s->ctl_active)
		pthread_cond_wait(&s->ctl_cond, &s->ctl_lock);
	pthread_mutex_unlock(&s->ctl_lock);
	close(s->ctl_wake[0]);
	close(s->ctl_wake[1]);
	s->ctl_running = 0;
}
