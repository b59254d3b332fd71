/* The io_uring network backend: one ring per network thread, multishot recv into a
 * provided-buffer ring (mmap'd by hand: liburing 2.3 lacks setup_buf_ring), one send in flight
 * per connection, and all SQEs of a loop iteration submitted at once.
 *
 * Accepting: a multishot poll on each listening socket, and on its completion a burst of
 * accept4() calls on this thread, as the epoll backend does. Not io_uring's multishot accept:
 * the kernel arms it as an exclusive waiter, so every new connection woke the same ring (the
 * other thread never accepted), and it accepted only while that thread ran its deferred task
 * work, i.e. once per loop iteration of up to 2048 completions. Under a connection storm
 * (test_srv_storm) the listen queue then stayed full for 100-500 ms at a time with the server
 * mostly idle, and a well-behaved client got a few dozen reads a second against epoll's
 * hundreds. A poll wakes every ring; its completion only marks the socket as having
 * connections, and each loop iteration then accepts up to UR_ACCEPT_BURST of them. A loop
 * iteration is bounded (that burst, and at most UR_CQE_BATCH completions), as the epoll
 * backend's is by its event array: answers leave at the top of every iteration, so a client
 * accepted (or answered) early in an iteration does not wait for hundreds of accepts and
 * completions behind it. Accepting from every poll completion in mid-batch made iterations
 * of thousands of connections under a storm; a well-behaved client then waited 1-5 s for
 * its answer where epoll took milliseconds (test_srv_storm on a quiet 2-core machine: 14
 * reads/s against epoll's 673).
 *
 * Ownership: each connection counts the ring operations that reference it (`ops`: recv,
 * send, cancel); its memory is freed only when ops == 0, its socket is closed and no request
 * of it is executing (srv_conn_maybe_free), so no CQE ever points at freed memory. */
#include "server/srv.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_log.h"
#include "common/st_time.h"

#define UR_ENTRIES 1024
#define UR_BGID 1
#define UR_NBUFS 1024 /* power of two */
#define UR_BUFSZ 16384
#define UR_ACCEPT_BURST 64
#define UR_CQE_BATCH 256

enum ur_op { UR_ACCEPT = 1, UR_RECV, UR_SEND, UR_EVENTFD, UR_CANCEL, UR_IGNORE };

struct ur_conn {
	struct srv_conn c; /* first: srv_conn * <-> ur_conn * */
	int ops;           /* ring operations referencing this conn */
	int recv_armed, cancel_pending, want_read, sending, shut, dirty;
	struct srv_buf q;  /* queued output */
	struct srv_buf s;  /* output being sent */
	size_t soff;
	struct ur_conn *next_dirty;
};

struct ur_net {
	struct io_uring ring;
	int ring_ok;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	uint64_t efd_val;
	/* One multishot poll per listening socket (shared with the other threads' rings); its
	 * address is the poll's user_data. */
	struct ur_accept {
		_Alignas(8) enum srv_proto proto;
		int fd; /* -1: protocol off */
		int armed;
		int more;         /* the last burst stopped at its cap: continue without waiting */
		int64_t retry_us; /* after an accept error (EMFILE...): accept no sooner */
	} acc[SRV_NPROTO];
	struct ur_conn *dirty; /* conns with output to start sending */
	uint8_t first[UR_BUFSZ]; /* a new connection's first bytes (ur_adopt) */
};

static inline uint64_t ur_ud(void *p, enum ur_op op)
{
	return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

static struct io_uring_sqe *ur_sqe(struct ur_net *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	ST_ASSERT(sqe);
	return sqe;
}

static void ur_arm_accept(struct ur_net *u, struct ur_accept *a)
{
	struct io_uring_sqe *sqe = ur_sqe(u);
	io_uring_prep_poll_multishot(sqe, a->fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ur_ud(a, UR_ACCEPT));
	a->armed = 1;
}

static void ur_arm_eventfd(struct srv_net *n, struct ur_net *u)
{
	struct io_uring_sqe *sqe = ur_sqe(u);
	io_uring_prep_read(sqe, n->efd, &u->efd_val, sizeof(u->efd_val), 0);
	io_uring_sqe_set_data64(sqe, ur_ud(u, UR_EVENTFD));
}

static void ur_arm_recv(struct ur_net *u, struct ur_conn *k)
{
	struct io_uring_sqe *sqe = ur_sqe(u);
	io_uring_prep_recv_multishot(sqe, k->c.fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UR_BGID;
	io_uring_sqe_set_data64(sqe, ur_ud(k, UR_RECV));
	k->recv_armed = 1;
	k->ops++;
}

static void ur_submit_send(struct ur_net *u, struct ur_conn *k)
{
	struct io_uring_sqe *sqe = ur_sqe(u);
	io_uring_prep_send(sqe, k->c.fd, k->s.p + k->soff, k->s.len - k->soff, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ur_ud(k, UR_SEND));
}

static void ur_start_send(struct ur_net *u, struct ur_conn *k)
{
	if (k->sending || k->shut || k->q.len == 0)
		return;
	struct srv_buf t = k->s; /* empty, keeps its capacity */
	k->s = k->q;
	k->q = t;
	k->q.len = 0;
	k->soff = 0;
	k->sending = 1;
	k->ops++;
	ur_submit_send(u, k);
}

/* Closes the socket and frees the conn once the ring is done with it. */
static void ur_conn_settle(struct ur_conn *k)
{
	if (k->shut && k->ops == 0 && !k->dirty && !k->c.io_done) {
		close(k->c.fd);
		k->c.io_done = 1;
	}
	srv_conn_maybe_free(&k->c);
}

static struct ur_net *ur_of(struct srv_conn *c)
{
	return c->net->be_state;
}

static int ur_write(struct srv_conn *c, const void *p, size_t n)
{
	struct ur_conn *k = (struct ur_conn *)c;
	if (srv_buf_append(&k->q, p, n))
		return ST_ENOMEM;
	if (!k->dirty && !k->sending) {
		/* Start the send at the end of the loop iteration, so that all responses that
		 * complete in one iteration leave in one send. */
		struct ur_net *u = ur_of(c);
		k->dirty = 1;
		k->next_dirty = u->dirty;
		u->dirty = k;
	}
	return 0;
}

static size_t ur_out_pending(struct srv_conn *c)
{
	struct ur_conn *k = (struct ur_conn *)c;
	return k->q.len + (k->s.len - k->soff);
}

static void ur_set_read(struct srv_conn *c, int on)
{
	struct ur_conn *k = (struct ur_conn *)c;
	struct ur_net *u = ur_of(c);
	k->want_read = on;
	if (k->shut)
		return;
	if (on && !k->recv_armed) {
		ur_arm_recv(u, k);
	} else if (!on && k->recv_armed && !k->cancel_pending) {
		struct io_uring_sqe *sqe = ur_sqe(u);
		io_uring_prep_cancel64(sqe, ur_ud(k, UR_RECV), 0);
		io_uring_sqe_set_data64(sqe, ur_ud(k, UR_CANCEL));
		k->cancel_pending = 1;
		k->ops++;
	}
}

static void ur_shut(struct srv_conn *c)
{
	struct ur_conn *k = (struct ur_conn *)c;
	k->shut = 1;
	k->want_read = 0;
	/* Ends the pending recv (and a blocked send) so their CQEs arrive and ops drains. */
	shutdown(c->fd, SHUT_RDWR);
	if (k->ops == 0 && !k->dirty && !c->io_done) {
		close(c->fd);
		c->io_done = 1;
	}
}

static void ur_free_conn(struct srv_conn *c)
{
	struct ur_conn *k = (struct ur_conn *)c;
	ST_ASSERT(k->ops == 0 && !k->dirty);
	srv_buf_release(&k->q);
	srv_buf_release(&k->s);
	free(k);
}

static void ur_return_buf(struct ur_net *u, unsigned bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * UR_BUFSZ, UR_BUFSZ, (unsigned short)bid,
			      io_uring_buf_ring_mask(UR_NBUFS), 0);
	io_uring_buf_ring_advance(u->br, 1);
}

static int ur_adopt(struct srv_net *n, int fd, enum srv_proto proto)
{
	struct ur_conn *k = calloc(1, sizeof(*k));
	if (!k)
		return ST_ENOMEM;
	srv_conn_init(&k->c, n, fd, proto);
	k->want_read = 1;
	/* A new client's first request is usually in the socket already (it was sent right after
	 * the connect): read it now rather than a loop iteration later, when the recv armed below
	 * completes. A client that connects per request (a CLI, a serverless function) waits
	 * one loop iteration less, which under a connection storm is most of its wait. */
	struct ur_net *u = n->be_state;
	k->c.busy++;
	ssize_t r = recv(fd, u->first, sizeof(u->first), MSG_DONTWAIT);
	if (r > 0)
		srv_conn_input(&k->c, u->first, (size_t)r);
	else if (r == 0)
		srv_conn_eof(&k->c, 0);
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		srv_conn_eof(&k->c, -errno);
	if (k->want_read && !k->shut && !k->recv_armed)
		ur_arm_recv(u, k);
	k->c.busy--;
	ur_conn_settle(k);
	return 0;
}

/* Accepts what the listening socket holds, up to UR_ACCEPT_BURST connections. The socket is
 * non-blocking and shared: another thread may have taken them (EAGAIN). The accepted sockets
 * stay blocking, as io_uring's recv and send expect. */
static void ur_accept_burst(struct srv_net *n, struct ur_accept *a)
{
	a->more = 0;
	if (st_mono_us() < a->retry_us) {
		a->more = 1; /* paused after an error: resumed by the loop */
		return;
	}
	for (int i = 0; i < UR_ACCEPT_BURST; i++) {
		int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* Out of descriptors or memory: retrying at once would spin. */
				st_warn("accept: %s; retrying in 100 ms", strerror(errno));
				a->retry_us = st_mono_us() + 100000;
				a->more = 1;
			}
			return;
		}
		srv_net_accepted(n, fd, a->proto);
	}
	a->more = 1;
}

/* Continues the bursts that stopped at their cap (or after an error, once its pause is over).
 * Returns 1 when a listening socket may still hold connections. */
static int ur_accept_more(struct srv_net *n, struct ur_net *u)
{
	int more = 0;
	if (!n->accepting || atomic_load(&n->srv->stopping))
		return 0;
	for (int i = 0; i < SRV_NPROTO; i++) {
		struct ur_accept *a = &u->acc[i];
		if (a->fd >= 0 && a->more)
			ur_accept_burst(n, a);
		more |= a->fd >= 0 && a->more && st_mono_us() >= a->retry_us;
	}
	return more;
}

static void ur_on_accept(struct srv_net *n, struct ur_accept *a, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		a->armed = 0;
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED) {
			st_warn("poll on a listening socket: %s; retrying in 100 ms",
				strerror(-cqe->res));
			a->retry_us = st_mono_us() + 100000;
		}
		return;
	}
	a->more = 1; /* accepted at the top of the next iteration (ur_accept_more) */
}

static void ur_on_recv(struct ur_net *u, struct ur_conn *k, struct io_uring_cqe *cqe)
{
	int more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->res > 0) {
		ST_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		srv_conn_input(&k->c, u->bufs + (size_t)bid * UR_BUFSZ, (size_t)cqe->res);
		ur_return_buf(u, bid);
	}
	if (!more) {
		k->recv_armed = 0;
		k->ops--;
		if (cqe->res == 0)
			srv_conn_eof(&k->c, 0);
		else if (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)
			srv_conn_eof(&k->c, cqe->res);
		else if (k->want_read && !k->shut)
			ur_arm_recv(u, k); /* ENOBUFS, cancelled then resumed, or a short stop */
	}
}

static void ur_on_send(struct ur_net *u, struct ur_conn *k, struct io_uring_cqe *cqe)
{
	if (cqe->res < 0 || k->shut) {
		k->sending = 0;
		k->ops--;
		k->s.len = k->soff = 0;
		if (cqe->res < 0 && cqe->res != -ECANCELED)
			srv_conn_close(&k->c, "write error");
		return;
	}
	k->soff += (size_t)cqe->res;
	if (k->soff < k->s.len) {
		ur_submit_send(u, k); /* short send: the rest */
		return;
	}
	k->s.len = k->soff = 0;
	k->sending = 0;
	k->ops--;
	ur_start_send(u, k);
	srv_conn_output_progress(&k->c);
}

static void ur_on_cqe(struct srv_net *n, struct ur_net *u, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum ur_op op = (enum ur_op)(ud & 7);
	void *p = (void *)(uintptr_t)(ud & ~(uint64_t)7);
	switch (op) {
	case UR_ACCEPT:
		ur_on_accept(n, p, cqe);
		break;
	case UR_RECV:
	case UR_SEND:
	case UR_CANCEL: {
		/* busy keeps the conn alive while the handler runs; settle may free it after. */
		struct ur_conn *k = p;
		k->c.busy++;
		if (op == UR_RECV) {
			ur_on_recv(u, k, cqe);
		} else if (op == UR_SEND) {
			ur_on_send(u, k, cqe);
		} else {
			k->cancel_pending = 0;
			k->ops--;
		}
		k->c.busy--;
		ur_conn_settle(k);
		break;
	}
	case UR_EVENTFD:
		ur_arm_eventfd(n, u); /* completions are drained by srv_net_flush */
		break;
	default:
		break;
	}
}

static void ur_flush_dirty(struct ur_net *u)
{
	while (u->dirty) {
		struct ur_conn *k = u->dirty;
		u->dirty = k->next_dirty;
		k->dirty = 0;
		k->next_dirty = NULL;
		if (k->shut)
			ur_conn_settle(k);
		else
			ur_start_send(u, k);
	}
}

static int ur_setup_ring(struct ur_net *u, struct st_error *err)
{
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN;
	int rc = io_uring_queue_init_params(UR_ENTRIES, &u->ring, &p);
	if (rc == -EINVAL) { /* older kernel: no single-issuer/defer flags */
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(UR_ENTRIES, &u->ring, &p);
	}
	if (rc)
		return st_error_set(err, rc, "io_uring_queue_init: %s", strerror(-rc));
	u->ring_ok = 1;
	u->br_bytes = UR_NBUFS * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (u->br == MAP_FAILED) {
		u->br = NULL;
		return st_error_set(err, -errno, "mmap buffer ring: %s", strerror(errno));
	}
	struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)u->br,
				       .ring_entries = UR_NBUFS, .bgid = UR_BGID};
	rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (rc)
		return st_error_set(err, rc, "io_uring_register_buf_ring: %s (kernel >= 5.19 needed)",
				    strerror(-rc));
	u->bufs = malloc((size_t)UR_NBUFS * UR_BUFSZ);
	if (!u->bufs)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	io_uring_buf_ring_init(u->br);
	for (unsigned i = 0; i < UR_NBUFS; i++)
		io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * UR_BUFSZ, UR_BUFSZ,
				      (unsigned short)i, io_uring_buf_ring_mask(UR_NBUFS), (int)i);
	io_uring_buf_ring_advance(u->br, UR_NBUFS);
	return 0;
}

static void ur_teardown_ring(struct ur_net *u)
{
	if (u->ring_ok)
		io_uring_queue_exit(&u->ring);
	u->ring_ok = 0;
	if (u->br)
		munmap(u->br, u->br_bytes);
	u->br = NULL;
	free(u->bufs);
	u->bufs = NULL;
}

/* Probes io_uring here (main thread) so that --io auto can fall back; the real ring is made
 * by the network thread itself, which SINGLE_ISSUER requires. */
static int ur_init(struct srv_net *n, struct st_error *err)
{
	/* Fault seam for tests: behave as if a seccomp profile blocked io_uring. */
	if (getenv("STRATA_FAULT_NO_URING"))
		return st_error_set(err, -EPERM, "io_uring_queue_init: %s (STRATA_FAULT_NO_URING)",
				    strerror(EPERM));
	struct ur_net probe = {0};
	int rc = ur_setup_ring(&probe, err);
	ur_teardown_ring(&probe);
	if (rc)
		return rc;
	struct ur_net *u = calloc(1, sizeof(*u));
	if (!u)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	n->be_state = u;
	return 0;
}

static void ur_fini(struct srv_net *n)
{
	struct ur_net *u = n->be_state;
	ur_teardown_ring(u);
	free(u);
	n->be_state = NULL;
}

static void ur_run(struct srv_net *n)
{
	struct ur_net *u = n->be_state;
	struct st_error err = {0};
	if (ur_setup_ring(u, &err)) {
		st_errlog("network thread %d: %s", n->idx, err.msg);
		abort();
	}
	for (int i = 0; i < SRV_NPROTO; i++) {
		u->acc[i].proto = (enum srv_proto)i;
		u->acc[i].fd = n->srv->listen_fd[i];
		if (u->acc[i].fd >= 0)
			ur_arm_accept(u, &u->acc[i]);
	}
	ur_arm_eventfd(n, u);
	for (;;) {
		/* Before the flushes: answers to first requests read at adoption leave with them. */
		int more = ur_accept_more(n, u);
		srv_net_flush(n);
		ur_flush_dirty(u);
		int stopping = atomic_load(&n->srv->stopping);
		if (stopping && n->accepting) {
			n->accepting = 0;
			for (int i = 0; i < SRV_NPROTO; i++) {
				if (!u->acc[i].armed)
					continue;
				struct io_uring_sqe *sqe = ur_sqe(u);
				io_uring_prep_cancel64(sqe, ur_ud(&u->acc[i], UR_ACCEPT), 0);
				io_uring_sqe_set_data64(sqe, ur_ud(NULL, UR_IGNORE));
			}
		}
		int64_t now = st_mono_us();
		if (stopping || now - n->last_tick_us > 250000) {
			if (srv_net_tick(n))
				break;
			ur_flush_dirty(u);
		}
		for (int i = 0; i < SRV_NPROTO && !stopping && n->accepting; i++)
			if (u->acc[i].fd >= 0 && !u->acc[i].armed && now >= u->acc[i].retry_us)
				ur_arm_accept(u, &u->acc[i]);
		/* Connections left in a listening socket: no waiting for completions. */
		struct __kernel_timespec ts = {.tv_sec = 0,
					       .tv_nsec = more ? 0 : stopping ? 20000000 : 250000000};
		struct io_uring_cqe *cqe;
		int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			st_errlog("io_uring_submit_and_wait: %s", strerror(-rc));
			abort();
		}
		unsigned head, count = 0;
		io_uring_for_each_cqe(&u->ring, head, cqe)
		{
			ur_on_cqe(n, u, cqe);
			if (++count == UR_CQE_BATCH)
				break; /* the rest next iteration, after the answers leave */
		}
		io_uring_cq_advance(&u->ring, count);
	}
	ur_teardown_ring(u);
}

const struct srv_backend srv_backend_uring = {
	.name = "uring",
	.init = ur_init,
	.run = ur_run,
	.fini = ur_fini,
	.adopt = ur_adopt,
	.write = ur_write,
	.out_pending = ur_out_pending,
	.set_read = ur_set_read,
	.shut = ur_shut,
	.free_conn = ur_free_conn,
};
