/* fs_loop: leader/follower request loop with a LIFO of idle workers (see fs_loop.h).
 *
 * Worker states and transitions (all under l.mu):
 *   IDLE    on the idle stack, waiting on its own condition variable
 *   READER  holds the reader role: reads the device (l.reader == it); at most one
 *   BUSY    handles a request without the reader role
 *   IDLE -> READER      popped from the stack (and made the reader) by a worker handing
 *                       the role over, or takes the free role itself when it finds none
 *   READER -> READER    handled a quick request itself and reads again (keeps the role)
 *   READER -> BUSY      the request may block or more are queued: role passed to the top
 *                       of the stack (or left free when every worker is busy)
 *   BUSY -> READER      done, and nobody holds the role
 *   BUSY -> IDLE        done, and another worker reads
 * Invariants: l.reader is NULL or one worker in READER; the idle stack holds exactly the
 * IDLE workers; a worker popped from the stack was made the reader by the popper.
 */
#define FUSE_USE_VERSION 312
#include "fuse/fs_loop.h"
#include "common/st_err.h"
#include "common/st_log.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { W_IDLE, W_READER, W_BUSY };

struct worker {
	pthread_t th;
	pthread_cond_t cv;
	int state;
	struct worker *next; /* idle stack */
	int started;
};

static struct {
	struct fuse_session *se;
	int fd, journal, exiting, err;
	unsigned n;
	struct worker *w;
	pthread_mutex_t mu;
	struct worker *reader; /* holds the reader role, or NULL */
	struct worker *idle;   /* LIFO of idle workers */
	sem_t finish;
	_Atomic uint64_t handoffs[2]; /* [0] may block, [1] queued requests */
} l = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void fs_loop_assert_state(void)
{
	unsigned idle = 0, readers = 0;
	for (struct worker *w = l.idle; w; w = w->next) {
		ST_ASSERT(w->state == W_IDLE);
		idle++;
	}
	for (unsigned i = 0; i < l.n; i++) {
		if (!l.w[i].started)
			continue;
		readers += l.w[i].state == W_READER;
		if (l.w[i].state == W_IDLE)
			idle--;
	}
	ST_ASSERT(idle == 0);
	ST_ASSERT(readers <= 1);
	ST_ASSERT(l.reader == NULL ? readers == 0 : l.reader->state == W_READER);
}

int fs_loop_may_block(uint32_t opcode, int journal)
{
	switch (opcode) {
	case FUSE_READ: /* through the daemon: no passthrough, the journal */
	case FUSE_WRITE:
	case FUSE_FSYNC:
	case FUSE_FSYNCDIR:
	case FUSE_FLUSH:
	case FUSE_SETLKW: /* retried until granted or interrupted */
	case FUSE_FALLOCATE:
	case FUSE_COPY_FILE_RANGE:
	case FUSE_IOCTL:
	case FUSE_POLL:
	case FUSE_SYNCFS:
	case FUSE_DESTROY:
		return 1;
	case FUSE_OPEN: /* may write a file's journaled data back first */
	case FUSE_CREATE:
	case FUSE_SETATTR:
	case FUSE_RENAME:
	case FUSE_RENAME2:
	case FUSE_UNLINK:
	case FUSE_RELEASE:
	case FUSE_STATFS:
		return journal;
	default:
		return 0;
	}
}

/* Requests that take a few microseconds (no I/O: in-memory inodes, closing an fd): one
 * queued behind them waits less than a handoff's wakeup would cost. After a close, the
 * kernel's asynchronous RELEASE usually arrives together with the caller's next request. */
static int instant(uint32_t opcode, int journal)
{
	switch (opcode) {
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
	case FUSE_RELEASEDIR:
	case FUSE_GETATTR:
	case FUSE_GETXATTR:
		return 1;
	case FUSE_RELEASE:
		return !journal;
	default:
		return 0;
	}
}

uint64_t fs_loop_handoffs(int queued)
{
	return atomic_load_explicit(&l.handoffs[queued ? 1 : 0], memory_order_relaxed);
}

/* 1 when the kernel already has more requests for us. */
static int queued(void)
{
	struct pollfd p = { .fd = l.fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Waits until w holds the reader role (or the loop ends: returns 0). Under l.mu. */
static int become_reader(struct worker *w)
{
	while (!l.exiting) {
		if (l.reader == w) {
			ST_ASSERT(w->state == W_READER);
			return 1;
		}
		if (!l.reader) {
			l.reader = w;
			w->state = W_READER;
			return 1;
		}
		if (w->state != W_IDLE) {
			w->state = W_IDLE;
			w->next = l.idle;
			l.idle = w;
		}
		pthread_cond_wait(&w->cv, &l.mu);
	}
	return 0;
}

/* Passes the reader role on (w stops being the reader). Under l.mu. */
static void hand_off(struct worker *w)
{
	w->state = W_BUSY;
	l.reader = NULL;
	struct worker *n = l.idle;
	if (!n)
		return; /* every worker busy: the first one done reads */
	l.idle = n->next;
	n->next = NULL;
	n->state = W_READER;
	l.reader = n;
	pthread_cond_signal(&n->cv);
}

static void free_buf(void *p)
{
	free(((struct fuse_buf *)p)->mem);
}

static void stop(struct worker *w, int err)
{
	pthread_mutex_lock(&l.mu);
	if (err && !l.err)
		l.err = err;
	w->state = W_BUSY;
	l.reader = NULL;
	pthread_mutex_unlock(&l.mu);
	fuse_session_exit(l.se);
	sem_post(&l.finish);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fuse_buf buf = { 0 };
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_cleanup_push(free_buf, &buf);
	pthread_mutex_lock(&l.mu);
	while (become_reader(w)) {
		fs_loop_assert_state();
		pthread_mutex_unlock(&l.mu);
		/* only here may the loop's end cancel a worker: blocked in read() */
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		int res = fuse_session_receive_buf(l.se, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (res == -EINTR || res == -EAGAIN || (res > 0 && fuse_session_exited(l.se))) {
			pthread_mutex_lock(&l.mu);
			continue; /* still the reader */
		}
		if (res <= 0) { /* 0 or -ENODEV: unmounted */
			stop(w, res == 0 || res == -ENODEV ? 0 : res);
			pthread_mutex_lock(&l.mu);
			break;
		}
		const struct fuse_in_header *ih = buf.mem;
		int block = (buf.flags & FUSE_BUF_IS_FD) || res < (int)sizeof(*ih) ||
			    fs_loop_may_block(ih->opcode, l.journal);
		int more = !block && !instant(ih->opcode, l.journal) && queued();
		if (block || more) {
			atomic_fetch_add_explicit(&l.handoffs[more], 1, memory_order_relaxed);
			pthread_mutex_lock(&l.mu);
			hand_off(w);
			pthread_mutex_unlock(&l.mu);
		}
		fuse_session_process_buf(l.se, &buf);
		pthread_mutex_lock(&l.mu);
	}
	w->state = W_BUSY;
	pthread_mutex_unlock(&l.mu);
	pthread_cleanup_pop(1);
	return NULL;
}

int fs_loop_run(struct fuse_session *se, int fd, unsigned nthreads, int journal)
{
	l.se = se;
	l.fd = fd;
	l.journal = journal;
	l.n = nthreads ? nthreads : 1;
	l.w = calloc(l.n, sizeof(*l.w));
	if (!l.w || sem_init(&l.finish, 0, 0) != 0) {
		free(l.w);
		return -ENOMEM;
	}
	/* signals (unmount by SIGTERM/SIGINT) go to this thread or another one of the daemon
	 * that does not block them; the handler marks the session exited, which the wait below
	 * notices within a second (at once when the signal ends its sem_timedwait) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = 0;
	for (unsigned i = 0; i < l.n; i++) {
		struct worker *w = &l.w[i];
		pthread_cond_init(&w->cv, NULL);
		w->state = W_BUSY;
		pthread_mutex_lock(&l.mu);
		w->started = pthread_create(&w->th, NULL, worker_main, w) == 0;
		pthread_mutex_unlock(&l.mu);
		if (!w->started) {
			rc = -EAGAIN;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (rc == 0 && !fuse_session_exited(se)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		sem_timedwait(&l.finish, &ts);
	}
	pthread_mutex_lock(&l.mu);
	l.exiting = 1;
	for (unsigned i = 0; i < l.n; i++)
		if (l.w[i].started)
			pthread_cond_signal(&l.w[i].cv);
	pthread_mutex_unlock(&l.mu);
	for (unsigned i = 0; i < l.n; i++)
		if (l.w[i].started)
			pthread_cancel(l.w[i].th); /* acts only on a worker blocked in read() */
	for (unsigned i = 0; i < l.n; i++) {
		if (l.w[i].started)
			pthread_join(l.w[i].th, NULL);
		pthread_cond_destroy(&l.w[i].cv);
	}
	sem_destroy(&l.finish);
	free(l.w);
	l.w = NULL;
	l.n = 0;
	if (rc == 0 && l.err)
		rc = l.err;
	fuse_session_reset(se);
	return rc;
}
