/* Asynchronous removal: detached trees queued under BACKING/.strata/rmr/ and a background
 * reclaimer that deletes them directly on the backing tree.
 * Queue layout: ID.job (JSON: original path, owner, kind, progress) and ID.tree (the
 * detached object). Jobs run oldest first (ids grow with time).
 * Job states: QUEUED -> SCANNING (count entries and bytes) -> DELETING -> (files removed)
 *             any -> FAILED (an entry could not be removed; the job is retried next start)
 * Invariants:
 *   1. ID.job is written before ID.tree is renamed in, and removed after ID.tree is gone,
 *      so a crash leaves either a job with its tree, or a job without one (finished).
 *   2. Deletion is idempotent (ENOENT ignored), so a restarted job simply walks what is left.
 *   3. The reclaimer holds at most FS_RMR_MAXQ queued directories in memory plus one
 *      directory stream per worker: it never loads a directory listing. */
#ifndef FS_RMR_H
#define FS_RMR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/st_err.h"

#define FS_RMR_MAXQ 4096

enum fs_rmr_state { FS_RMR_QUEUED, FS_RMR_SCANNING, FS_RMR_DELETING, FS_RMR_FAILED };

/* Status of one job (a snapshot; strings are owned by the snapshot). */
struct fs_rmr_jobinfo {
	char id[17];
	char *path;
	uid_t uid;
	char kind[16];        /* "rmr", "purge", "expire" */
	int64_t queued_us;
	int state;            /* enum fs_rmr_state */
	int64_t files_total;  /* -1 while unknown */
	int64_t bytes_total;
	int64_t files_done;
	int64_t bytes_done;
	double rate_files;    /* entries per second in the current phase */
	double rate_bytes;
	char error[160];
};

struct fs_rmr_status {
	struct fs_rmr_jobinfo *jobs; /* owned */
	size_t n;
	int64_t files_left;  /* over jobs with a known total; queued jobs count as unknown */
	int64_t bytes_left;
	int unknown;         /* jobs whose size is not known yet */
	/* since this struct fs_rmr was opened (all owners): entries and bytes deleted, jobs
	 * finished */
	int64_t reclaimed_files, reclaimed_bytes, jobs_done;
};

struct fs_rmr_node;

struct fs_rmr {
	int rmr_fd;             /* .strata/rmr (owned) */
	int nthreads;           /* workers per job */
	int64_t rate;           /* entries per second, 0 = unlimited */
	pthread_mutex_t lock;   /* protects everything below */
	pthread_cond_t cond;    /* work available / node finished / stop */
	pthread_t driver;
	int running;            /* driver thread started */
	atomic_int stop;        /* ask the driver and workers to stop */
	int kicked;             /* new job enqueued */
	struct fs_rmr_jobinfo cur; /* the job being reclaimed (cur.path owned) */
	int have_cur;
	int phase;              /* FS_RMR_SCANNING or FS_RMR_DELETING */
	int from_trash;         /* the job's tree came out of the trash (purge, expire) */
	struct fs_rmr_node *stack; /* directories waiting for a worker */
	size_t nstack;
	int finished;           /* root node of the phase done */
	int64_t phase_start_mono;
	int64_t phase_files;    /* entries done in this phase (for rate/limit) */
	int64_t phase_bytes;
	int failures;
	struct fs_rmr_node *all_nodes; /* every live node, for cleanup on stop */
	int draining;           /* fs_rmr_drain: the driver exits when the queue is empty */
	int64_t total_files, total_bytes; /* deleted since open (finished phases) */
	int64_t jobs_done;      /* jobs finished since open */
};

/* Creates/opens .strata/rmr under bfd. nthreads >= 1; rate 0 = unlimited. */
int fs_rmr_open(struct fs_rmr *r, int bfd, int nthreads, int64_t rate, struct st_error *err);
/* Starts the background driver thread (low priority). Returns 0 or -errno. */
int fs_rmr_start(struct fs_rmr *r);
/* Stops the driver (the current job stays queued and resumes on the next start). */
void fs_rmr_stop(struct fs_rmr *r);
void fs_rmr_close(struct fs_rmr *r);

/* Detaches dirfd/name: writes the job record, then renames it into the queue (O(1)).
 * Returns 0 or a negative errno / ST code with err set; id_out (may be NULL) gets the id. */
int fs_rmr_enqueue(struct fs_rmr *r, int dirfd, const char *name, const char *orig_path,
		   uid_t uid, const char *kind, char id_out[17], struct st_error *err);

/* Snapshot of the queue (uid < 0: all jobs, else only that owner's). Returns 0 or -errno.
 * Release with fs_rmr_status_release. */
int fs_rmr_status(struct fs_rmr *r, int64_t uid, struct fs_rmr_status *st);
void fs_rmr_status_release(struct fs_rmr_status *st);

/* Runs the queue to empty in the calling thread (offline use). progress (may be NULL) is
 * called about once a second. Returns 0, or the count of jobs that failed. */
int fs_rmr_drain(struct fs_rmr *r, void (*progress)(void *arg, const struct fs_rmr_jobinfo *j),
		 void *arg);

/* Job record (de)serialisation, exposed for tests: JSON text of j into a malloc'd string;
 * parse fills j (j->path malloc'd). Parse returns 0 or ST_EINVAL. */
char *fs_rmr_job_encode(const struct fs_rmr_jobinfo *j);
int fs_rmr_job_parse(const char *text, size_t len, struct fs_rmr_jobinfo *j);

/* Job state name ("queued", ...). */
const char *fs_rmr_state_name(int state);

#endif
