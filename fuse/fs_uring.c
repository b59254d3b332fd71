/* fs_uring: FUSE over io_uring under libfuse 3.14 (see fs_uring.h).
 *
 * Entry states (e->st, atomic; the queue thread owns an entry between its completions):
 *   KERNEL   registered or committed: the kernel may fill it with a request
 *   HANDLED  holds a request: its handler runs (queue thread or a worker)
 *   REPLIED  the reply is in the entry's buffers, the handler has not returned yet
 *   DONE     the handler returned before any reply (a reply from another thread follows)
 *   DEAD     the kernel ended the entry's command (error, unmount)
 * KERNEL -> HANDLED      a completion with res 0 (queue thread)
 * HANDLED -> REPLIED     fs_uring_reply from the handler's thread
 * HANDLED -> DONE        the handler returned without a reply
 * REPLIED -> KERNEL      the handler returned: commit queued
 * DONE -> KERNEL         fs_uring_reply from another thread: commit queued
 * KERNEL -> DEAD         a completion with res < 0
 * A commit rewrites the entry's buffers, so it waits until the handler has returned
 * (libfuse hands handlers pointers into the request). Only the queue thread touches its
 * ring: other threads queue commits on q->pending and wake it through an eventfd whose
 * read is always armed on the ring.
 */
#define FUSE_USE_VERSION 312
#include "fuse/fs_uring.h"
#include "common/st_err.h"
#include "common/st_log.h"
#include "fuse/fs_chan.h"
#include "fuse/fs_loop.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Kernel ABI (include/uapi/linux/fuse.h 7.42, Linux 6.14). */
#define URING_HDR_SZ 128
#define URING_OP_SZ 128
struct uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};
struct uring_req_header {
	char in_out[URING_HDR_SZ];
	char op_in[URING_OP_SZ];
	struct uring_ent_in_out ent;
};
struct uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};
enum { CMD_REGISTER = 1, CMD_COMMIT_AND_FETCH = 2 };

enum { E_KERNEL, E_HANDLED, E_REPLIED, E_DONE, E_DEAD };
enum { ENTRIES = 4, SMALL = 8192, PRE = sizeof(struct fuse_in_header) + URING_OP_SZ };
#define TAG_WAKE 1ull

struct queue;
struct ent {
	struct uring_req_header *hdr;
	char *payload; /* registered payload buffer (cap bytes, PRE bytes of room before) */
	char *small;   /* SMALL bytes: a request that fits is copied here, so a reply may
	                * overwrite the payload while the handler still reads its name */
	struct iovec iov[2];
	struct queue *q;
	_Atomic int st;
	_Atomic uint64_t unique; /* request in the entry, 0 when none */
	uint64_t cid;            /* commit id of a commit on q->pending */
	char *req;               /* the request as /dev/fuse gives it: small, or in place
	                          * before the payload (large WRITEs) */
	size_t req_len;
	struct ent *next;        /* q->pending or the worker queue */
};

struct queue {
	unsigned qid;
	pthread_t th;
	int started, registered;
	struct io_uring ring;
	int efd; /* wakes the queue thread */
	uint64_t ebuf;
	pthread_mutex_t mu; /* pending */
	struct ent *pending;
	struct ent e[ENTRIES];
};

static struct {
	struct fuse_session *se;
	int fd, journal;
	size_t cap;
	unsigned nq;
	struct queue *q;
	_Atomic int stop, err, ready_queues;
	_Atomic uint64_t requests;
	/* workers for requests that may block */
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	struct ent *work, **work_tail;
	pthread_t *wth;
	unsigned nw;
} u = { .fd = -1, .wmu = PTHREAD_MUTEX_INITIALIZER, .wcv = PTHREAD_COND_INITIALIZER };

static __thread struct queue *t_q;   /* set in a queue thread */
static __thread struct ent *t_ent;   /* the entry whose handler this thread runs */

void fs_uring_configure(struct fuse_session *se, int journal)
{
	u.se = se;
	u.fd = fuse_session_fd(se);
	u.journal = journal;
}

int fs_uring_active(void)
{
	return u.nq && atomic_load(&u.ready_queues) == (int)u.nq && !atomic_load(&u.err);
}

int fs_uring_error(void)
{
	return atomic_load(&u.err);
}

uint64_t fs_uring_requests(void)
{
	return atomic_load_explicit(&u.requests, memory_order_relaxed);
}

/* The kernel has one queue per possible CPU. */
static unsigned possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	unsigned a = 0, b = 0;
	int n = f ? fscanf(f, "%u-%u", &a, &b) : 0;
	if (f)
		fclose(f);
	return n == 2 ? b + 1 : n == 1 ? a + 1 : 0;
}

static struct io_uring_sqe *sqe_get(struct queue *q)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&q->ring);
	if (!s) { /* full: hand what is queued to the kernel first */
		io_uring_submit(&q->ring);
		s = io_uring_get_sqe(&q->ring);
	}
	ST_ASSERT(s != NULL);
	memset(s, 0, 2 * sizeof(*s));
	return s;
}

static void prep_cmd(struct queue *q, struct ent *e, unsigned op, uint64_t commit_id)
{
	struct io_uring_sqe *s = sqe_get(q);
	s->opcode = IORING_OP_URING_CMD;
	s->fd = u.fd;
	s->cmd_op = op;
	s->addr = (uint64_t)(uintptr_t)e->iov;
	s->len = 2;
	s->user_data = (uint64_t)(uintptr_t)e;
	struct uring_cmd_req *c = (struct uring_cmd_req *)s->cmd;
	c->qid = (uint16_t)q->qid;
	c->commit_id = commit_id;
}

static void arm_wake(struct queue *q)
{
	struct io_uring_sqe *s = sqe_get(q);
	io_uring_prep_read(s, q->efd, &q->ebuf, sizeof(q->ebuf), 0);
	s->user_data = TAG_WAKE;
}

/* Hands a replied entry back to the kernel: from its queue thread directly (submitted
 * with the thread's next wait), from any other thread through the queue's pending list. */
static void commit(struct ent *e)
{
	struct queue *q = e->q;
	uint64_t id = atomic_exchange(&e->unique, 0);
	atomic_store(&e->st, E_KERNEL);
	if (t_q == q) {
		prep_cmd(q, e, CMD_COMMIT_AND_FETCH, id);
		return;
	}
	pthread_mutex_lock(&q->mu);
	e->cid = id;
	e->next = q->pending;
	q->pending = e;
	pthread_mutex_unlock(&q->mu);
	uint64_t one = 1;
	if (write(q->efd, &one, sizeof(one)) != sizeof(one))
		st_warn("stratafs: waking io_uring queue %u: %s", q->qid, strerror(errno));
}

ssize_t fs_uring_reply(const struct iovec *iov, int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct ent *e = t_ent;
	if (!u.nq || !oh->unique)
		return 0;
	if (!e || atomic_load(&e->unique) != oh->unique) { /* a reply from another thread */
		e = NULL;
		for (unsigned i = 0; i < u.nq && !e; i++)
			for (unsigned j = 0; j < ENTRIES && !e; j++)
				if (atomic_load(&u.q[i].e[j].unique) == oh->unique)
					e = &u.q[i].e[j];
		if (!e)
			return 0;
	}
	struct fuse_out_header h = *oh;
	size_t n = 0;
	for (int i = 1; i < count; i++) {
		if (iov[i].iov_len > u.cap - n) {
			h.error = -EIO; /* never happens: replies are bounded by max_write */
			n = 0;
			break;
		}
		memcpy(e->payload + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	h.len = (uint32_t)(sizeof(h) + n);
	memcpy(e->hdr->in_out, &h, sizeof(h));
	e->hdr->ent.payload_sz = (uint32_t)n;
	int st = E_HANDLED;
	if (!atomic_compare_exchange_strong(&e->st, &st, E_REPLIED)) {
		ST_ASSERT(st == E_DONE);
		commit(e);
	}
	return (ssize_t)h.len;
}

/* Runs the request in e and commits it once both the handler returned and the reply is
 * in. */
static void handle(struct ent *e)
{
	struct fuse_buf fb = { .mem = e->req, .size = e->req_len };
	t_ent = e;
	fs_chan_note_request(e->req, e->req_len);
	fuse_session_process_buf(u.se, &fb);
	t_ent = NULL;
	int st = E_HANDLED;
	if (!atomic_compare_exchange_strong(&e->st, &st, E_DONE)) {
		ST_ASSERT(st == E_REPLIED);
		commit(e);
	}
}

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&u.wmu);
	for (;;) {
		while (!u.work && !atomic_load(&u.stop))
			pthread_cond_wait(&u.wcv, &u.wmu);
		if (!u.work)
			break;
		struct ent *e = u.work;
		u.work = e->next;
		if (!u.work)
			u.work_tail = &u.work;
		pthread_mutex_unlock(&u.wmu);
		handle(e);
		pthread_mutex_lock(&u.wmu);
	}
	pthread_mutex_unlock(&u.wmu);
	return NULL;
}

/* A request arrived in e: lay it out as /dev/fuse would, then run it here or (when it may
 * block) on a worker. */
static void take(struct queue *q, struct ent *e)
{
	struct fuse_in_header ih;
	memcpy(&ih, e->hdr->in_out, sizeof(ih));
	size_t pl = e->hdr->ent.payload_sz, hs = sizeof(ih);
	atomic_fetch_add_explicit(&u.requests, 1, memory_order_relaxed);
	atomic_store(&e->unique, ih.unique);
	atomic_store(&e->st, E_HANDLED);
	if (ih.len < hs + pl || ih.len - hs - pl > URING_OP_SZ || pl > u.cap) {
		st_warn("stratafs: io_uring queue %u: request %u of %u bytes with a payload of %zu",
			q->qid, ih.opcode, ih.len, pl);
		struct fuse_out_header oh = { .len = sizeof(oh), .error = -EIO, .unique = ih.unique };
		struct iovec v = { &oh, sizeof(oh) };
		atomic_store(&e->st, E_DONE);
		fs_uring_reply(&v, 1);
		return;
	}
	size_t op = ih.len - hs - pl;
	char *b = ih.len <= SMALL ? e->small : e->payload - hs - op;
	memcpy(b, &ih, hs);
	memcpy(b + hs, e->hdr->op_in, op);
	if (b == e->small)
		memcpy(b + hs + op, e->payload, pl);
	e->req = b;
	e->req_len = ih.len;
	if (!fs_loop_may_block(ih.opcode, u.journal) || !u.nw) {
		handle(e);
		return;
	}
	e->next = NULL;
	pthread_mutex_lock(&u.wmu);
	*u.work_tail = e;
	u.work_tail = &e->next;
	pthread_cond_signal(&u.wcv);
	pthread_mutex_unlock(&u.wmu);
}

/* Commits queued by other threads, then the wakeup read again. */
static void drain_pending(struct queue *q)
{
	pthread_mutex_lock(&q->mu);
	struct ent *e = q->pending;
	q->pending = NULL;
	pthread_mutex_unlock(&q->mu);
	for (; e; e = e->next)
		prep_cmd(q, e, CMD_COMMIT_AND_FETCH, e->cid);
}

static int queue_setup(struct queue *q)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 };
	int rc = io_uring_queue_init_params(2 * ENTRIES + 2, &q->ring, &p);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < ENTRIES; i++) {
		struct ent *e = &q->e[i];
		e->q = q;
		atomic_store(&e->st, E_KERNEL);
		prep_cmd(q, e, CMD_REGISTER, 0);
	}
	arm_wake(q);
	rc = io_uring_submit(&q->ring);
	return rc < 0 ? rc : 0;
}

static void *queue_main(void *arg)
{
	struct queue *q = arg;
	t_q = q;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(q->qid, &set);
	if (getenv("STRATAFS_URING_PIN")) /* experiment: the queue thread on its queue's CPU */
		sched_setaffinity(0, sizeof(set), &set);
	int rc = queue_setup(q);
	if (rc < 0) {
		atomic_store(&u.err, rc);
		st_warn("stratafs: io_uring queue %u: %s: requests stay on /dev/fuse", q->qid,
			strerror(-rc));
		return NULL;
	}
	unsigned live = ENTRIES;
	int counted = 0;
	while (live && !atomic_load(&u.stop)) {
		rc = io_uring_submit_and_wait(&q->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			atomic_store(&u.err, rc);
			st_warn("stratafs: io_uring queue %u: %s", q->qid, strerror(-rc));
			break;
		}
		struct ent *got[ENTRIES];
		unsigned n = 0, head, seen = 0;
		struct io_uring_cqe *c;
		io_uring_for_each_cqe(&q->ring, head, c) {
			seen++;
			if (c->user_data == TAG_WAKE) {
				arm_wake(q);
				continue;
			}
			struct ent *e = (struct ent *)(uintptr_t)c->user_data;
			if (c->res == 0) {
				got[n++] = e;
				continue;
			}
			atomic_store(&e->st, E_DEAD);
			live--;
			if (c->res != -ENOTCONN && !atomic_load(&u.err)) {
				atomic_store(&u.err, c->res);
				st_warn("stratafs: io_uring queue %u refused by the kernel (%s): "
					"requests stay on /dev/fuse", q->qid, strerror(-c->res));
			}
		}
		io_uring_cq_advance(&q->ring, seen);
		if (!counted && live == ENTRIES) { /* registered: no entry came back at once */
			counted = 1;
			atomic_fetch_add(&u.ready_queues, 1);
		}
		for (unsigned i = 0; i < n; i++)
			take(q, got[i]);
		drain_pending(q);
	}
	return NULL;
}

int fs_uring_start(size_t max_payload)
{
	u.nq = possible_cpus();
	if (!u.nq || u.fd < 0)
		return -ENODEV;
	u.cap = max_payload;
	u.q = calloc(u.nq, sizeof(*u.q));
	if (!u.q)
		return -ENOMEM;
	u.work_tail = &u.work;
	for (unsigned i = 0; i < u.nq; i++) {
		struct queue *q = &u.q[i];
		q->qid = i;
		q->efd = eventfd(0, EFD_CLOEXEC);
		if (q->efd < 0)
			return -errno;
		pthread_mutex_init(&q->mu, NULL);
		for (unsigned j = 0; j < ENTRIES; j++) {
			struct ent *e = &q->e[j];
			char *pb = malloc(PRE + u.cap);
			e->hdr = calloc(1, sizeof(*e->hdr));
			e->small = malloc(SMALL);
			if (!pb || !e->hdr || !e->small) {
				free(pb);
				return -ENOMEM;
			}
			e->payload = pb + PRE;
			e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
			e->iov[1] = (struct iovec){ e->payload, u.cap };
		}
	}
	u.nw = 4;
	u.wth = calloc(u.nw, sizeof(*u.wth));
	if (!u.wth)
		return -ENOMEM;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < u.nw; i++)
		if (pthread_create(&u.wth[i], NULL, worker_main, NULL) != 0)
			u.nw = i;
	for (unsigned i = 0; i < u.nq; i++)
		u.q[i].started = pthread_create(&u.q[i].th, NULL, queue_main, &u.q[i]) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

void fs_uring_stop(void)
{
	if (!u.q)
		return;
	atomic_store(&u.stop, 1);
	uint64_t one = 1;
	for (unsigned i = 0; i < u.nq; i++)
		if (u.q[i].started && write(u.q[i].efd, &one, sizeof(one)) < 0)
			st_warn("stratafs: stopping io_uring queue %u: %s", i, strerror(errno));
	pthread_mutex_lock(&u.wmu);
	pthread_cond_broadcast(&u.wcv);
	pthread_mutex_unlock(&u.wmu);
	for (unsigned i = 0; i < u.nw; i++)
		pthread_join(u.wth[i], NULL);
	for (unsigned i = 0; i < u.nq; i++) {
		struct queue *q = &u.q[i];
		if (q->started)
			pthread_join(q->th, NULL);
		if (q->ring.ring_fd > 0)
			io_uring_queue_exit(&q->ring);
		if (q->efd > 0)
			close(q->efd);
		for (unsigned j = 0; j < ENTRIES; j++) {
			if (q->e[j].payload)
				free(q->e[j].payload - PRE);
			free(q->e[j].hdr);
			free(q->e[j].small);
		}
		pthread_mutex_destroy(&q->mu);
	}
	free(u.wth);
	free(u.q);
	u.q = NULL;
	u.nq = 0;
}
