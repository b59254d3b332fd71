/* The epoll network backend, for kernels or containers where io_uring is not available: one
 * level-triggered epoll instance per network thread, sockets read and written directly.
 *
 * Why not libevent bufferevents (the first version): a bufferevent costs five system calls per
 * pipeline-1 request (FIONREAD ioctl, readv, two epoll_ctl to arm and disarm EV_WRITE, writev)
 * where the work needs two. Here a loop iteration is one epoll_wait, one recv per readable
 * socket, and one send per connection with output, everything answered in the iteration
 * coalesced into it (as the io_uring backend does); EPOLLOUT is armed only after a short send.
 *
 * Ownership: a connection freed by the core (srv_conn_maybe_free) goes on the net's graveyard
 * and is freed at the end of the loop iteration, so events already returned by epoll_wait and
 * the dirty list never point at freed memory; its socket is closed at shut, which removes it
 * from the epoll set. */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_log.h"
#include "common/st_time.h"

#define EP_EVENTS 256
#define EP_RDBUF 65536

struct ep_conn {
	struct srv_conn c;  /* first: srv_conn * <-> ep_conn * */
	struct srv_buf out; /* unsent output, from ooff */
	size_t ooff;
	uint32_t ev;        /* events registered (0 with registered = 0) */
	int registered;     /* in the epoll set */
	int want_read;
	int wblocked;       /* the last send was short: waiting for EPOLLOUT */
	int dirty;          /* on the net's dirty list */
	struct ep_conn *next_dirty, *next_dead;
};

struct ep_listener {
	enum srv_proto proto;
	int fd; /* -1: protocol off */
	int on; /* in the epoll set */
};

struct ep_net {
	int epfd;
	struct ep_listener lis[SRV_NPROTO];
	int64_t accept_retry_us; /* accepting paused after an error (EMFILE...) until then */
	struct ep_conn *dirty;   /* conns with output to send at the end of the iteration */
	struct ep_conn *dead;    /* freed by the core this iteration */
	uint8_t rbuf[EP_RDBUF];
};

static struct ep_net *ep_of(struct srv_conn *c)
{
	return c->net->be_state;
}

/* Brings the registered events in line with want_read and wblocked. */
static void ep_update(struct ep_net *e, struct ep_conn *k)
{
	if (k->c.io_done)
		return;
	uint32_t want = (k->want_read ? EPOLLIN : 0) | (k->wblocked ? EPOLLOUT : 0);
	if (k->registered && want == k->ev)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = k};
	int op = k->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(e->epfd, op, k->c.fd, &ev)) {
		srv_conn_close(&k->c, "epoll_ctl failed");
		return;
	}
	k->registered = 1;
	k->ev = want;
}

static void ep_listening(struct ep_net *e, int on)
{
	for (int i = 0; i < SRV_NPROTO; i++) {
		struct ep_listener *l = &e->lis[i];
		if (l->fd < 0 || l->on == on)
			continue;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
		if (epoll_ctl(e->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev) == 0)
			l->on = on;
	}
}

static int ep_write(struct srv_conn *c, const void *p, size_t n)
{
	struct ep_conn *k = (struct ep_conn *)c;
	if (srv_buf_append(&k->out, p, n))
		return ST_ENOMEM;
	if (!k->dirty) {
		struct ep_net *e = ep_of(c);
		k->dirty = 1;
		k->next_dirty = e->dirty;
		e->dirty = k;
	}
	return 0;
}

static size_t ep_out_pending(struct srv_conn *c)
{
	struct ep_conn *k = (struct ep_conn *)c;
	return k->out.len - k->ooff;
}

static void ep_set_read(struct srv_conn *c, int on)
{
	struct ep_conn *k = (struct ep_conn *)c;
	k->want_read = on;
	ep_update(ep_of(c), k);
}

static void ep_shut(struct srv_conn *c)
{
	struct ep_conn *k = (struct ep_conn *)c;
	if (!c->io_done)
		close(c->fd); /* also leaves the epoll set */
	k->registered = 0;
	c->io_done = 1;
}

static void ep_free_conn(struct srv_conn *c)
{
	struct ep_conn *k = (struct ep_conn *)c;
	struct ep_net *e = ep_of(c);
	k->next_dead = e->dead;
	e->dead = k;
}

static int ep_adopt(struct srv_net *n, int fd, enum srv_proto proto)
{
	struct ep_conn *k = calloc(1, sizeof(*k));
	if (!k)
		return ST_ENOMEM;
	k->want_read = 1;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
	if (epoll_ctl(((struct ep_net *)n->be_state)->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		free(k);
		return ST_ENOMEM;
	}
	k->registered = 1;
	k->ev = EPOLLIN;
	srv_conn_init(&k->c, n, fd, proto);
	return 0;
}

static void ep_accept(struct srv_net *n, struct ep_net *e, struct ep_listener *l)
{
	/* The socket is shared: another thread may win the race, then accept says EAGAIN. */
	for (int i = 0; i < 256; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				/* Out of descriptors: the listener stays readable, so pause it
				 * instead of spinning; ep_run re-enables it. */
				st_warn("accept: %s; retrying in 100 ms", strerror(errno));
				ep_listening(e, 0);
				e->accept_retry_us = st_mono_us() + 100000;
			}
			return;
		}
		srv_net_accepted(n, fd, l->proto);
	}
}

/* Sends the queued output; on a short send waits for EPOLLOUT. Output drained: the core may
 * resume reading, parse held frames or finish a close. */
static void ep_flush(struct ep_net *e, struct ep_conn *k)
{
	while (k->ooff < k->out.len && !k->c.io_done) {
		ssize_t w = send(k->c.fd, k->out.p + k->ooff, k->out.len - k->ooff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			k->ooff += (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			k->wblocked = 1;
			ep_update(e, k);
			return;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else {
			srv_conn_close(&k->c, "write error");
			return;
		}
	}
	if (k->c.io_done)
		return;
	k->out.len = k->ooff = 0;
	if (k->out.cap > (1u << 20))
		srv_buf_release(&k->out); /* after a large answer: idle connections stay small */
	if (k->wblocked) {
		k->wblocked = 0;
		ep_update(e, k);
	}
	srv_conn_output_progress(&k->c);
}

static void ep_flush_dirty(struct ep_net *e)
{
	while (e->dirty) {
		struct ep_conn *k = e->dirty;
		e->dirty = k->next_dirty;
		k->dirty = 0;
		k->next_dirty = NULL;
		if (k->c.io_done || k->wblocked)
			continue; /* closed, or EPOLLOUT will send it */
		k->c.busy++;
		ep_flush(e, k);
		k->c.busy--;
		srv_conn_maybe_free(&k->c);
	}
}

static void ep_readable(struct ep_net *e, struct ep_conn *k)
{
	/* A socket that filled the buffer may hold more: read again, a bounded number of times
	 * so that one fast sender cannot hold the loop. */
	for (int i = 0; i < 4 && k->want_read && k->c.state == SRV_CONN_OPEN; i++) {
		ssize_t r = recv(k->c.fd, e->rbuf, sizeof(e->rbuf), MSG_DONTWAIT);
		if (r > 0) {
			srv_conn_input(&k->c, e->rbuf, (size_t)r);
			if ((size_t)r < sizeof(e->rbuf))
				return;
		} else if (r == 0) {
			srv_conn_eof(&k->c, 0);
			return;
		} else if (errno == EINTR) {
			continue;
		} else {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				srv_conn_eof(&k->c, -errno);
			return;
		}
	}
}

static void ep_conn_event(struct ep_net *e, struct ep_conn *k, uint32_t ev)
{
	if (k->c.io_done)
		return; /* closed earlier in this iteration */
	k->c.busy++;
	if ((ev & EPOLLOUT) && k->wblocked) {
		k->wblocked = 0;
		ep_flush(e, k);
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (k->want_read) {
			ep_readable(e, k);
		} else if ((ev & (EPOLLHUP | EPOLLERR)) && !k->c.io_done && k->registered) {
			/* Hung up while reading is paused: level-triggered HUP would fire every
			 * iteration. Leave the set; the next send fails and closes it. */
			epoll_ctl(e->epfd, EPOLL_CTL_DEL, k->c.fd, NULL);
			k->registered = 0;
			k->ev = 0;
			k->want_read = k->wblocked = 0;
			if (k->ooff < k->out.len)
				ep_flush(e, k);
		}
	}
	k->c.busy--;
	srv_conn_maybe_free(&k->c);
}

static int ep_init(struct srv_net *n, struct st_error *err)
{
	struct ep_net *e = calloc(1, sizeof(*e));
	if (!e)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	n->be_state = e;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0)
		return st_error_set(err, -errno, "epoll_create1: %s", strerror(errno));
	for (int i = 0; i < SRV_NPROTO; i++) {
		e->lis[i].proto = (enum srv_proto)i;
		e->lis[i].fd = n->srv->listen_fd[i];
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, n->efd, &ev))
		return st_error_set(err, -errno, "epoll_ctl: %s", strerror(errno));
	ep_listening(e, 1);
	return 0;
}

static void ep_fini(struct srv_net *n)
{
	struct ep_net *e = n->be_state;
	if (e->epfd >= 0)
		close(e->epfd);
	free(e);
	n->be_state = NULL;
}

static void ep_bury(struct ep_net *e)
{
	while (e->dead) {
		struct ep_conn *k = e->dead;
		e->dead = k->next_dead;
		srv_buf_release(&k->out);
		free(k);
	}
}

static int ep_listener_of(struct ep_net *e, const void *p)
{
	for (int i = 0; i < SRV_NPROTO; i++)
		if (p == &e->lis[i])
			return 1;
	return 0;
}

static void ep_run(struct srv_net *n)
{
	struct ep_net *e = n->be_state;
	struct epoll_event evs[EP_EVENTS];
	for (;;) {
		int stopping = atomic_load(&n->srv->stopping);
		int nev = epoll_wait(e->epfd, evs, EP_EVENTS, stopping ? 20 : 250);
		if (nev < 0 && errno != EINTR) {
			st_errlog("epoll_wait: %s", strerror(errno));
			abort();
		}
		for (int i = 0; i < nev; i++) {
			void *p = evs[i].data.ptr;
			if (p == e) {
				uint64_t v; /* completions are drained by srv_net_flush */
				ssize_t r = read(n->efd, &v, sizeof(v));
				(void)r;
			} else if (ep_listener_of(e, p)) {
				ep_accept(n, e, p);
			} else {
				ep_conn_event(e, p, evs[i].events);
			}
		}
		srv_net_flush(n);
		ep_flush_dirty(e);
		stopping = atomic_load(&n->srv->stopping);
		if (stopping && n->accepting) {
			n->accepting = 0;
			ep_listening(e, 0);
		}
		if (!stopping && e->accept_retry_us && st_mono_us() >= e->accept_retry_us) {
			e->accept_retry_us = 0;
			ep_listening(e, 1);
		}
		int done = 0;
		if (stopping || st_mono_us() - n->last_tick_us > 250000) {
			done = srv_net_tick(n);
			ep_flush_dirty(e);
		}
		ep_bury(e);
		if (done)
			break;
	}
}

const struct srv_backend srv_backend_epoll = {
	.name = "epoll",
	.init = ep_init,
	.run = ep_run,
	.fini = ep_fini,
	.adopt = ep_adopt,
	.write = ep_write,
	.out_pending = ep_out_pending,
	.set_read = ep_set_read,
	.shut = ep_shut,
	.free_conn = ep_free_conn,
};
