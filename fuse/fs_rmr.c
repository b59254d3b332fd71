/* The rmr queue and its reclaimer: bounded-concurrency, rate-limited, restartable deletion
 * of detached trees straight on the backing filesystem, off the FUSE request path. */
#include "fuse/fs_rmr.h"
#include "fuse/fs_util.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fs_rmr_node {
	struct fs_rmr_node *parent;
	struct fs_rmr_node *next;             /* stack link */
	struct fs_rmr_node *all_prev, *all_next; /* every live node, for cleanup on stop */
	atomic_int pending;                   /* own scan + unfinished subdirectories */
	char rel[];                           /* relative to rmr_fd */
};

const char *fs_rmr_state_name(int state)
{
	switch (state) {
	case FS_RMR_QUEUED: return "queued";
	case FS_RMR_SCANNING: return "scanning";
	case FS_RMR_DELETING: return "deleting";
	case FS_RMR_FAILED: return "failed";
	}
	return "?";
}

char *fs_rmr_job_encode(const struct fs_rmr_jobinfo *j)
{
	json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:I}", "id", j->id, "path",
			      j->path ? j->path : "", "uid", (json_int_t)j->uid, "kind", j->kind,
			      "queued_us", (json_int_t)j->queued_us, "files_done",
			      (json_int_t)j->files_done, "bytes_done", (json_int_t)j->bytes_done);
	if (!o)
		return NULL;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int fs_rmr_job_parse(const char *text, size_t len, struct fs_rmr_jobinfo *j)
{
	memset(j, 0, sizeof(*j));
	json_error_t je;
	json_t *o = json_loadb(text, len, 0, &je);
	const char *id = NULL, *path = NULL, *kind = NULL;
	json_int_t uid = 0, q = 0, fd = 0, bd = 0;
	if (!o || json_unpack(o, "{s:s,s:s,s:I,s:s,s:I,s?I,s?I}", "id", &id, "path", &path,
			      "uid", &uid, "kind", &kind, "queued_us", &q, "files_done", &fd,
			      "bytes_done", &bd) != 0 ||
	    strlen(id) != 16 || fd < 0 || bd < 0) {
		json_decref(o);
		return ST_EINVAL;
	}
	memcpy(j->id, id, 17);
	j->path = strdup(path);
	snprintf(j->kind, sizeof(j->kind), "%s", kind);
	j->uid = (uid_t)uid;
	j->queued_us = q;
	j->files_done = fd;
	j->bytes_done = bd;
	j->files_total = j->bytes_total = -1;
	j->state = FS_RMR_QUEUED;
	json_decref(o);
	return j->path ? 0 : ST_ENOMEM;
}

static int job_write(struct fs_rmr *r, const struct fs_rmr_jobinfo *j)
{
	char tmp[64], fin[64];
	snprintf(tmp, sizeof(tmp), "%s.job.tmp", j->id);
	snprintf(fin, sizeof(fin), "%s.job", j->id);
	char *s = fs_rmr_job_encode(j);
	if (!s)
		return -ENOMEM;
	int fd = openat(r->rmr_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
	} else {
		size_t n = strlen(s);
		if (write(fd, s, n) != (ssize_t)n)
			rc = -EIO;
		close(fd);
		if (!rc && renameat(r->rmr_fd, tmp, r->rmr_fd, fin) != 0)
			rc = -errno;
	}
	free(s);
	return rc;
}

static int job_read(struct fs_rmr *r, const char *id, struct fs_rmr_jobinfo *j)
{
	char name[64], buf[8192];
	snprintf(name, sizeof(name), "%s.job", id);
	int fd = openat(r->rmr_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return -EIO;
	return fs_rmr_job_parse(buf, (size_t)n, j) ? -EINVAL : 0;
}

int fs_rmr_open(struct fs_rmr *r, int bfd, int nthreads, int64_t rate, struct st_error *err)
{
	memset(r, 0, sizeof(*r));
	r->rmr_fd = -1;
	int fd = fs_mkdirs(bfd, FS_STATE_DIR "/rmr", 0700, (uid_t)-1, (gid_t)-1);
	if (fd < 0)
		return st_error_set(err, fd, "cannot create %s/rmr: %s", FS_STATE_DIR,
				    strerror(-fd));
	r->rmr_fd = fd;
	r->nthreads = nthreads < 1 ? 1 : nthreads;
	r->rate = rate;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ids of queued jobs, oldest first (malloc'd array of malloc'd strings). Trees without a job
 * record (crash window) get one. */
static size_t list_jobs(struct fs_rmr *r, char ***out)
{
	*out = NULL;
	int dfd = openat(r->rmr_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		int is_job = l == 20 && strcmp(de->d_name + 16, ".job") == 0;
		int is_tree = l == 21 && strcmp(de->d_name + 16, ".tree") == 0;
		if (!is_job && !is_tree)
			continue;
		char id[17];
		memcpy(id, de->d_name, 16);
		id[16] = 0;
		if (is_tree) {
			char jn[32];
			snprintf(jn, sizeof(jn), "%s.job", id);
			struct stat st;
			if (fstatat(r->rmr_fd, jn, &st, 0) == 0)
				continue;
			struct fs_rmr_jobinfo j = { .uid = 0, .path = (char *)"?" };
			memcpy(j.id, id, 17);
			snprintf(j.kind, sizeof(j.kind), "recovered");
			j.queued_us = st_now_us();
			if (job_write(r, &j) != 0)
				continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(v, cap * sizeof(*nv));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = strdup(id);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	return n;
}

static void free_ids(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct fs_rmr_node *node_new(struct fs_rmr *r, struct fs_rmr_node *parent,
				    const char *base, const char *name)
{
	size_t bl = strlen(base), nl = name ? strlen(name) : 0;
	struct fs_rmr_node *n = malloc(sizeof(*n) + bl + nl + 2);
	if (!n)
		return NULL;
	memcpy(n->rel, base, bl);
	if (name) {
		n->rel[bl] = '/';
		memcpy(n->rel + bl + 1, name, nl + 1);
	} else {
		n->rel[bl] = 0;
	}
	n->parent = parent;
	n->next = NULL;
	atomic_init(&n->pending, 1);
	pthread_mutex_lock(&r->lock);
	n->all_prev = NULL;
	n->all_next = r->all_nodes;
	if (r->all_nodes)
		r->all_nodes->all_prev = n;
	r->all_nodes = n;
	if (parent)
		atomic_fetch_add(&parent->pending, 1);
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Caller holds r->lock. */
static void node_free_locked(struct fs_rmr *r, struct fs_rmr_node *n)
{
	if (n->all_prev)
		n->all_prev->all_next = n->all_next;
	else
		r->all_nodes = n->all_next;
	if (n->all_next)
		n->all_next->all_prev = n->all_prev;
	free(n);
}

static void account(struct fs_rmr *r, int64_t files, int64_t bytes)
{
	pthread_mutex_lock(&r->lock);
	r->phase_files += files;
	r->phase_bytes += bytes;
	int64_t done = r->phase_files;
	pthread_mutex_unlock(&r->lock);
	if (r->rate <= 0 || r->phase != FS_RMR_DELETING)
		return;
	for (;;) {
		int64_t due = r->phase_start_mono + done * 1000000 / r->rate;
		int64_t now = st_mono_us();
		if (now >= due || r->stop)
			return;
		usleep((useconds_t)(due - now > 100000 ? 100000 : due - now));
	}
}

static void fail(struct fs_rmr *r, const char *what, const char *rel, int e)
{
	pthread_mutex_lock(&r->lock);
	if (!r->failures++)
		snprintf(r->cur.error, sizeof(r->cur.error), "%s %s: %s", what, rel, strerror(e));
	pthread_mutex_unlock(&r->lock);
}

static void node_done(struct fs_rmr *r, struct fs_rmr_node *n)
{
	while (n) {
		if (atomic_fetch_sub(&n->pending, 1) != 1)
			return;
		if (r->phase == FS_RMR_DELETING) {
			if (unlinkat(r->rmr_fd, n->rel, AT_REMOVEDIR) != 0 && errno != ENOENT)
				fail(r, "rmdir", n->rel, errno);
			else
				account(r, 1, 0);
		} else {
			account(r, 1, 0);
		}
		struct fs_rmr_node *p = n->parent;
		pthread_mutex_lock(&r->lock);
		node_free_locked(r, n);
		if (!p) {
			r->finished = 1;
			pthread_cond_broadcast(&r->cond);
		}
		pthread_mutex_unlock(&r->lock);
		n = p;
	}
}

static void process(struct fs_rmr *r, struct fs_rmr_node *n)
{
	int fd = openat(r->rmr_fd, n->rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			fail(r, "open", n->rel, errno);
		node_done(r, n);
		return;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		fail(r, "opendir", n->rel, errno);
		close(fd);
		node_done(r, n);
		return;
	}
	struct dirent *de;
	while (!r->stop && (de = readdir(d))) {
		const char *nm = de->d_name;
		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		struct stat st;
		int have_st = 0, isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue;
			have_st = 1;
			isdir = S_ISDIR(st.st_mode);
		}
		if (isdir) {
			struct fs_rmr_node *c = node_new(r, n, n->rel, nm);
			if (!c) {
				fail(r, "alloc", n->rel, ENOMEM);
				continue;
			}
			pthread_mutex_lock(&r->lock);
			int push = r->nstack < FS_RMR_MAXQ;
			if (push) {
				c->next = r->stack;
				r->stack = c;
				r->nstack++;
				pthread_cond_signal(&r->cond);
			}
			pthread_mutex_unlock(&r->lock);
			if (!push)
				process(r, c);
			continue;
		}
		if (!have_st && fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			st.st_blocks = 0;
			st.st_nlink = 1;
		}
		/* a purged trash link of a file that still has other names: count it out first */
		if (r->phase == FS_RMR_DELETING && st.st_nlink > 1 && r->from_trash)
			fs_tlinks_add(fd, nm, -1);
		if (r->phase == FS_RMR_DELETING && unlinkat(fd, nm, 0) != 0 && errno != ENOENT) {
			fail(r, "unlink", n->rel, errno);
			continue;
		}
		account(r, 1, (int64_t)st.st_blocks * 512);
	}
	closedir(d);
	node_done(r, n);
}

static void *worker_main(void *arg)
{
	struct fs_rmr *r = arg;
	fs_thread_low_priority();
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->stack && !r->finished && !r->stop)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->finished || r->stop)
			break;
		struct fs_rmr_node *n = r->stack;
		r->stack = n->next;
		r->nstack--;
		pthread_mutex_unlock(&r->lock);
		process(r, n);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void persist(struct fs_rmr *r)
{
	pthread_mutex_lock(&r->lock);
	struct fs_rmr_jobinfo j = r->cur;
	if (r->phase == FS_RMR_DELETING) {
		j.files_done += r->phase_files;
		j.bytes_done += r->phase_bytes;
	}
	char *path = strdup(r->cur.path ? r->cur.path : "");
	pthread_mutex_unlock(&r->lock);
	j.path = path;
	job_write(r, &j);
	free(path);
}

/* Runs one phase over the tree with nthreads workers. Returns 0, or -1 when stopped. */
static int run_phase(struct fs_rmr *r, int phase, const char *tree)
{
	pthread_mutex_lock(&r->lock);
	r->phase = phase;
	r->cur.state = phase;
	r->finished = 0;
	r->phase_files = r->phase_bytes = 0;
	r->phase_start_mono = st_mono_us();
	pthread_mutex_unlock(&r->lock);
	struct fs_rmr_node *root = node_new(r, NULL, tree, NULL);
	if (!root)
		return -1;
	pthread_mutex_lock(&r->lock);
	root->next = NULL;
	r->stack = root;
	r->nstack = 1;
	pthread_mutex_unlock(&r->lock);
	pthread_t th[64];
	int nt = r->nthreads > 64 ? 64 : r->nthreads, started = 0;
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[started], NULL, worker_main, r) == 0)
			started++;
	if (!started)
		worker_main(r);
	int64_t last = st_mono_us();
	pthread_mutex_lock(&r->lock);
	while (!r->finished && !r->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		if (st_mono_us() - last > 2000000 && phase == FS_RMR_DELETING) {
			pthread_mutex_unlock(&r->lock);
			persist(r);
			last = st_mono_us();
			pthread_mutex_lock(&r->lock);
		}
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_lock(&r->lock);
	int stopped = !r->finished;
	/* Stopped mid-phase: nodes still referenced by the stack or by children are freed here;
	 * the tree stays on disk and the job restarts later. */
	while (r->all_nodes)
		node_free_locked(r, r->all_nodes);
	r->stack = NULL;
	r->nstack = 0;
	pthread_mutex_unlock(&r->lock);
	return stopped ? -1 : 0;
}

/* Reclaims one job. Returns 0 when the job is finished (record removed), 1 when stopped,
 * -1 when it failed. */
static int run_job(struct fs_rmr *r, const char *id)
{
	struct fs_rmr_jobinfo j;
	char jn[32], tn[32];
	snprintf(jn, sizeof(jn), "%s.job", id);
	snprintf(tn, sizeof(tn), "%s.tree", id);
	if (job_read(r, id, &j) != 0) {
		st_warn("rmr: job %s has an unreadable record; reclaiming its tree anyway", id);
		memset(&j, 0, sizeof(j));
		memcpy(j.id, id, 17);
		j.path = strdup("?");
		snprintf(j.kind, sizeof(j.kind), "recovered");
	}
	pthread_mutex_lock(&r->lock);
	free(r->cur.path);
	r->cur = j;
	r->from_trash = !strcmp(j.kind, "purge") || !strcmp(j.kind, "expire");
	r->have_cur = 1;
	r->failures = 0;
	pthread_mutex_unlock(&r->lock);
	int rc = 0;
	struct stat st;
	if (fstatat(r->rmr_fd, tn, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		/* finished before a crash, or never detached */
	} else if (!S_ISDIR(st.st_mode)) {
		if (st.st_nlink > 1 && r->from_trash)
			fs_tlinks_add(r->rmr_fd, tn, -1);
		if (unlinkat(r->rmr_fd, tn, 0) != 0 && errno != ENOENT) {
			fail(r, "unlink", tn, errno);
		} else {
			pthread_mutex_lock(&r->lock);
			r->cur.files_done++;
			r->cur.bytes_done += (int64_t)st.st_blocks * 512;
			r->total_files++;
			r->total_bytes += (int64_t)st.st_blocks * 512;
			pthread_mutex_unlock(&r->lock);
		}
	} else {
		if (run_phase(r, FS_RMR_SCANNING, tn) != 0) {
			rc = 1;
			goto out;
		}
		pthread_mutex_lock(&r->lock);
		r->cur.files_total = r->cur.files_done + r->phase_files;
		r->cur.bytes_total = r->cur.bytes_done + r->phase_bytes;
		pthread_mutex_unlock(&r->lock);
		int st2 = run_phase(r, FS_RMR_DELETING, tn);
		pthread_mutex_lock(&r->lock);
		r->cur.files_done += r->phase_files;
		r->cur.bytes_done += r->phase_bytes;
		r->total_files += r->phase_files;
		r->total_bytes += r->phase_bytes;
		r->phase_files = r->phase_bytes = 0;
		pthread_mutex_unlock(&r->lock);
		if (st2 != 0) {
			persist(r);
			rc = 1;
			goto out;
		}
	}
	if (r->failures) {
		pthread_mutex_lock(&r->lock);
		r->cur.state = FS_RMR_FAILED;
		st_errlog("rmr: job %s (%s) failed: %d entries could not be removed (%s)", id,
			  r->cur.path, r->failures, r->cur.error);
		pthread_mutex_unlock(&r->lock);
		persist(r);
		rc = -1;
		goto out;
	}
	unlinkat(r->rmr_fd, jn, 0);
	pthread_mutex_lock(&r->lock);
	r->jobs_done++;
	pthread_mutex_unlock(&r->lock);
	st_info("rmr: job %s (%s) reclaimed %lld entries, %lld bytes", id, r->cur.path,
		(long long)r->cur.files_done, (long long)r->cur.bytes_done);
out:
	pthread_mutex_lock(&r->lock);
	if (rc != -1) {
		free(r->cur.path);
		memset(&r->cur, 0, sizeof(r->cur));
		r->have_cur = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int in_list(char **v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], id))
			return 1;
	return 0;
}

/* One pass over the queue; failed ids are added to *failed. Returns jobs still pending
 * (excluding failed ones), or -1 when stopped. */
static int drive_once(struct fs_rmr *r, char ***failed, size_t *nfailed)
{
	char **ids;
	size_t n = list_jobs(r, &ids);
	int pending = 0;
	for (size_t i = 0; i < n && !r->stop; i++) {
		if (in_list(*failed, *nfailed, ids[i]))
			continue;
		int rc = run_job(r, ids[i]);
		if (rc == 1)
			break;
		if (rc < 0) {
			char **nf = realloc(*failed, (*nfailed + 1) * sizeof(*nf));
			if (nf) {
				*failed = nf;
				nf[(*nfailed)++] = strdup(ids[i]);
			}
		}
		pending = 1;
	}
	free_ids(ids, n);
	return r->stop ? -1 : pending;
}

static void *driver_main(void *arg)
{
	struct fs_rmr *r = arg;
	fs_thread_low_priority();
	char **failed = NULL;
	size_t nfailed = 0;
	int64_t retry_at = st_mono_us() + 60000000;
	while (!r->stop) {
		int pending = drive_once(r, &failed, &nfailed);
		if (pending < 0)
			break;
		if (st_mono_us() > retry_at) { /* give failed jobs another chance now and then */
			free_ids(failed, nfailed);
			failed = NULL;
			nfailed = 0;
			retry_at = st_mono_us() + 60000000;
		}
		if (pending)
			continue;
		if (r->draining)
			break;
		pthread_mutex_lock(&r->lock);
		if (!r->kicked && !r->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 2;
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		}
		r->kicked = 0;
		pthread_mutex_unlock(&r->lock);
	}
	free_ids(failed, nfailed);
	return NULL;
}

int fs_rmr_start(struct fs_rmr *r)
{
	r->stop = 0;
	int e = pthread_create(&r->driver, NULL, driver_main, r);
	if (e)
		return -e;
	r->running = 1;
	return 0;
}

void fs_rmr_stop(struct fs_rmr *r)
{
	if (!r->running)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->driver, NULL);
	r->running = 0;
}

void fs_rmr_close(struct fs_rmr *r)
{
	fs_rmr_stop(r);
	if (r->rmr_fd >= 0)
		close(r->rmr_fd);
	r->rmr_fd = -1;
	free(r->cur.path);
	r->cur.path = NULL;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
}

int fs_rmr_enqueue(struct fs_rmr *r, int dirfd, const char *name, const char *orig_path,
		   uid_t uid, const char *kind, char id_out[17], struct st_error *err)
{
	struct fs_rmr_jobinfo j;
	memset(&j, 0, sizeof(j));
	fs_new_id(j.id);
	j.path = (char *)orig_path;
	j.uid = uid;
	snprintf(j.kind, sizeof(j.kind), "%s", kind);
	j.queued_us = st_now_us();
	int rc = job_write(r, &j);
	if (rc)
		return st_error_set(err, rc, "rmr: cannot write job record: %s", strerror(-rc));
	char tn[32];
	snprintf(tn, sizeof(tn), "%s.tree", j.id);
	if (renameat2(dirfd, name, r->rmr_fd, tn, RENAME_NOREPLACE) != 0) {
		int e = errno;
		char jn[32];
		snprintf(jn, sizeof(jn), "%s.job", j.id);
		unlinkat(r->rmr_fd, jn, 0);
		return st_error_set(err, -e, "rmr: cannot detach %s: %s", orig_path, strerror(e));
	}
	if (id_out)
		memcpy(id_out, j.id, 17);
	pthread_mutex_lock(&r->lock);
	r->kicked = 1;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int fs_rmr_status(struct fs_rmr *r, int64_t uid, struct fs_rmr_status *st)
{
	memset(st, 0, sizeof(*st));
	char **ids;
	size_t n = list_jobs(r, &ids);
	st->jobs = calloc(n + 1, sizeof(*st->jobs));
	if (!st->jobs) {
		free_ids(ids, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct fs_rmr_jobinfo j;
		pthread_mutex_lock(&r->lock);
		int cur = r->have_cur && !strcmp(r->cur.id, ids[i]);
		if (cur) {
			j = r->cur;
			j.path = strdup(r->cur.path ? r->cur.path : "?");
			double el = (st_mono_us() - r->phase_start_mono) / 1e6;
			if (r->phase == FS_RMR_DELETING && j.state != FS_RMR_FAILED) {
				j.files_done += r->phase_files;
				j.bytes_done += r->phase_bytes;
			} else if (r->phase == FS_RMR_SCANNING && j.state == FS_RMR_SCANNING) {
				j.files_total = -1;
			}
			j.rate_files = el > 0 ? r->phase_files / el : 0;
			j.rate_bytes = el > 0 ? r->phase_bytes / el : 0;
		}
		pthread_mutex_unlock(&r->lock);
		if (!cur && job_read(r, ids[i], &j) != 0)
			continue;
		if (uid >= 0 && (int64_t)j.uid != uid) {
			free(j.path);
			continue;
		}
		if (j.files_total >= 0) {
			st->files_left += j.files_total - j.files_done;
			st->bytes_left += j.bytes_total - j.bytes_done;
		} else {
			st->unknown++;
		}
		st->jobs[st->n++] = j;
	}
	free_ids(ids, n);
	pthread_mutex_lock(&r->lock);
	st->reclaimed_files = r->total_files;
	st->reclaimed_bytes = r->total_bytes;
	if (r->have_cur && r->phase == FS_RMR_DELETING) {
		st->reclaimed_files += r->phase_files;
		st->reclaimed_bytes += r->phase_bytes;
	}
	st->jobs_done = r->jobs_done;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void fs_rmr_status_release(struct fs_rmr_status *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->jobs[i].path);
	free(st->jobs);
	memset(st, 0, sizeof(*st));
}

int fs_rmr_drain(struct fs_rmr *r, void (*progress)(void *arg, const struct fs_rmr_jobinfo *j),
		 void *arg)
{
	r->draining = 1;
	int rc = fs_rmr_start(r);
	if (rc)
		return rc;
	for (;;) {
		pthread_mutex_lock(&r->lock);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		pthread_mutex_unlock(&r->lock);
		if (pthread_tryjoin_np(r->driver, NULL) == 0) {
			r->running = 0;
			break;
		}
		if (!progress)
			continue;
		struct fs_rmr_status st;
		if (fs_rmr_status(r, -1, &st) == 0) {
			for (size_t i = 0; i < st.n; i++)
				if (st.jobs[i].state != FS_RMR_QUEUED)
					progress(arg, &st.jobs[i]);
			fs_rmr_status_release(&st);
		}
	}
	r->draining = 0;
	struct fs_rmr_status st;
	int left = 0;
	if (fs_rmr_status(r, -1, &st) == 0) {
		left = (int)st.n;
		fs_rmr_status_release(&st);
	}
	return left;
}
