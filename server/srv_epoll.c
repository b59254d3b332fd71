/* The libevent (epoll) network backend, for kernels or containers where io_uring is not
 * available: one event_base per network thread, a bufferevent per connection. The loop runs
 * one libevent iteration at a time so that, as with io_uring, all requests decoded in an
 * iteration go to the worker pool in one batch. */
#include "server/srv.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_log.h"
#include "common/st_time.h"

struct ev_conn {
	struct srv_conn c; /* first */
	struct bufferevent *bev;
};

struct ev_listener {
	struct srv_net *n;
	enum srv_proto proto;
	struct event *ev;
};

struct ev_net {
	struct event_base *base;
	struct ev_listener lis[SRV_NPROTO]; /* ev NULL when the protocol is off */
	struct event *efd_ev, *tick_ev;
	int64_t accept_retry_us; /* accepting paused after an error (EMFILE...) until then */
};

/* Adds (on) or removes the accept events of every listener. */
static void ev_accepting(struct ev_net *e, int on)
{
	for (int i = 0; i < SRV_NPROTO; i++)
		if (e->lis[i].ev)
			on ? event_add(e->lis[i].ev, NULL) : event_del(e->lis[i].ev);
}

static void ev_read_cb(struct bufferevent *bev, void *arg)
{
	struct ev_conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t tmp[65536];
	/* Copied out first: srv_conn_input may close the conn, which frees the bufferevent. */
	k->c.busy++;
	while (k->c.state == SRV_CONN_OPEN) {
		int r = evbuffer_remove(in, tmp, sizeof(tmp));
		if (r <= 0)
			break;
		srv_conn_input(&k->c, tmp, (size_t)r);
	}
	k->c.busy--;
	srv_conn_maybe_free(&k->c);
}

static void ev_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct ev_conn *k = arg;
	k->c.busy++;
	srv_conn_output_progress(&k->c);
	k->c.busy--;
	srv_conn_maybe_free(&k->c);
}

static void ev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct ev_conn *k = arg;
	k->c.busy++;
	if (what & BEV_EVENT_ERROR)
		srv_conn_eof(&k->c, errno ? -errno : ST_EIO);
	else if (what & BEV_EVENT_EOF)
		srv_conn_eof(&k->c, 0);
	k->c.busy--;
	srv_conn_maybe_free(&k->c);
}

static int ev_adopt(struct srv_net *n, int fd, enum srv_proto proto)
{
	struct ev_net *e = n->be_state;
	struct ev_conn *k = calloc(1, sizeof(*k));
	struct bufferevent *bev =
		k ? bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		free(k);
		return ST_ENOMEM;
	}
	k->bev = bev;
	srv_conn_init(&k->c, n, fd, proto);
	bufferevent_setcb(bev, ev_read_cb, ev_write_cb, ev_event_cb, k);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return 0;
}

static void ev_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	struct ev_listener *l = arg;
	struct ev_net *e = l->n->be_state;
	/* The socket is shared: another thread may win the race, then accept says EAGAIN. */
	for (int i = 0; i < 256; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				/* Out of descriptors: the listener stays readable, so pause it
				 * instead of spinning; ev_run re-enables it. */
				st_warn("accept: %s; retrying in 100 ms", strerror(errno));
				ev_accepting(e, 0);
				e->accept_retry_us = st_mono_us() + 100000;
			}
			return;
		}
		srv_net_accepted(l->n, fd, l->proto);
	}
}

static void ev_efd_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v)); /* completions are drained by srv_net_flush */
	(void)r;
}

static void ev_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg; /* only wakes the loop: ev_run does the periodic work */
}

static int ev_write(struct srv_conn *c, const void *p, size_t n)
{
	struct ev_conn *k = (struct ev_conn *)c;
	return bufferevent_write(k->bev, p, n) ? ST_ENOMEM : 0;
}

static size_t ev_out_pending(struct srv_conn *c)
{
	struct ev_conn *k = (struct ev_conn *)c;
	return k->bev ? evbuffer_get_length(bufferevent_get_output(k->bev)) : 0;
}

static void ev_set_read(struct srv_conn *c, int on)
{
	struct ev_conn *k = (struct ev_conn *)c;
	if (!k->bev)
		return;
	if (on)
		bufferevent_enable(k->bev, EV_READ);
	else
		bufferevent_disable(k->bev, EV_READ);
}

static void ev_shut(struct srv_conn *c)
{
	struct ev_conn *k = (struct ev_conn *)c;
	if (k->bev)
		bufferevent_free(k->bev); /* closes the socket */
	k->bev = NULL;
	c->io_done = 1;
}

static void ev_free_conn(struct srv_conn *c)
{
	free(c);
}

static int ev_init(struct srv_net *n, struct st_error *err)
{
	struct ev_net *e = calloc(1, sizeof(*e));
	if (!e)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	n->be_state = e;
	e->base = event_base_new();
	if (!e->base)
		return st_error_set(err, ST_EIO, "event_base_new failed");
	for (int i = 0; i < SRV_NPROTO; i++) {
		int fd = n->srv->listen_fd[i];
		e->lis[i].n = n;
		e->lis[i].proto = (enum srv_proto)i;
		if (fd >= 0 && !(e->lis[i].ev = event_new(e->base, fd, EV_READ | EV_PERSIST,
							  ev_accept_cb, &e->lis[i])))
			return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	e->efd_ev = event_new(e->base, n->efd, EV_READ | EV_PERSIST, ev_efd_cb, n);
	e->tick_ev = event_new(e->base, -1, EV_PERSIST, ev_tick_cb, n);
	if (!e->efd_ev || !e->tick_ev)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	struct timeval tv = {0, 250000};
	ev_accepting(e, 1);
	event_add(e->efd_ev, NULL);
	event_add(e->tick_ev, &tv);
	return 0;
}

static void ev_fini(struct srv_net *n)
{
	struct ev_net *e = n->be_state;
	for (int i = 0; i < SRV_NPROTO; i++)
		if (e->lis[i].ev)
			event_free(e->lis[i].ev);
	if (e->efd_ev)
		event_free(e->efd_ev);
	if (e->tick_ev)
		event_free(e->tick_ev);
	if (e->base)
		event_base_free(e->base);
	free(e);
	n->be_state = NULL;
}

static void ev_run(struct srv_net *n)
{
	struct ev_net *e = n->be_state;
	int fast_tick = 0;
	for (;;) {
		event_base_loop(e->base, EVLOOP_ONCE);
		srv_net_flush(n);
		int stopping = atomic_load(&n->srv->stopping);
		if (stopping && n->accepting) {
			n->accepting = 0;
			ev_accepting(e, 0);
		}
		if (stopping && !fast_tick) {
			struct timeval tv = {0, 20000};
			event_add(e->tick_ev, &tv);
			fast_tick = 1;
		}
		if (!stopping && e->accept_retry_us && st_mono_us() >= e->accept_retry_us) {
			e->accept_retry_us = 0;
			ev_accepting(e, 1);
		}
		if (stopping || st_mono_us() - n->last_tick_us > 250000) {
			if (srv_net_tick(n))
				break;
		}
	}
}

const struct srv_backend srv_backend_epoll = {
	.name = "epoll",
	.init = ev_init,
	.run = ev_run,
	.fini = ev_fini,
	.adopt = ev_adopt,
	.write = ev_write,
	.out_pending = ev_out_pending,
	.set_read = ev_set_read,
	.shut = ev_shut,
	.free_conn = ev_free_conn,
};
