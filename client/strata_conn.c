/* libstrata connection engine: connect with timeouts and auth, length-prefixed frames over a
 * non-blocking socket, pipelined writes interleaved with reads (so a large pipeline never
 * deadlocks on full socket buffers), and routing of responses to waiters by request id. */
#include "client/strata_impl.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/st_err.h"

_Static_assert((int)STRATA_EINVAL == (int)ST_EINVAL && (int)STRATA_ECLOSED == (int)ST_ECLOSED &&
		       (int)STRATA_ERANGE == (int)ST_ERANGE &&
		       (int)STRATA_EUNAVAILABLE == (int)ST_EUNAVAIL,
	       "libstrata codes must equal the server's");

const char *strata_strerror(int code)
{
	return st_strerror(code);
}

int sc_error(struct strata_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int sc_is_transport_error(int code)
{
	return code == STRATA_ECLOSED || (code < 0 && code > -4096);
}

void strata_connect_opts_init(struct strata_connect_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 5000;
	o->io_timeout_ms = 30000;
	o->reconnect = 1;
	o->max_frame = 1u << 30;
}

static int64_t sc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sc_disconnect(strata *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->rlen = 0;
	c->wlen = c->woff = 0;
	while (c->parked) {
		struct sc_parked *p = c->parked;
		c->parked = p->next;
		strata__response__free_unpacked(p->resp, NULL);
		free(p);
	}
}

static int sc_connect_socket(strata *c, struct strata_error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai, *a;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", c->port);
	int rc = getaddrinfo(c->host, ps, &hints, &ai);
	if (rc)
		return sc_error(err, STRATA_EINVAL, "cannot resolve %s: %s", c->host,
				gai_strerror(rc));
	rc = -ECONNREFUSED;
	for (a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS) {
			rc = -errno;
			close(fd);
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n = poll(&p, 1, c->o.connect_timeout_ms > 0 ? c->o.connect_timeout_ms : -1);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (n == 0)
			soerr = ETIMEDOUT;
		else if (n < 0)
			soerr = errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			soerr = errno;
		if (soerr) {
			rc = -soerr;
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		rc = 0;
		break;
	}
	freeaddrinfo(ai);
	if (rc)
		return sc_error(err, rc, "cannot connect to %s: %s", c->addr, strerror(-rc));
	return 0;
}

/* An idle connection the server has closed meanwhile (a restart, its handshake timeout for
 * a connection that sent nothing yet): a readable socket with nothing to read. Checked only
 * after a second of idleness, and only with nothing in flight, so it costs nothing on a busy
 * handle and can never drop an answer. */
static int sc_peer_gone(strata *c)
{
	if (c->wlen || c->parked || c->rlen || sc_now_ms() - c->idle_since_ms < 1000)
		return 0;
	struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
		return 1;
	char b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
}

int sc_ensure(strata *c, struct strata_error *err)
{
	if (c->fd >= 0 && sc_peer_gone(c))
		sc_disconnect(c); /* nothing was sent on it: safe to reconnect for any request */
	if (c->fd >= 0)
		return 0;
	int rc = sc_connect_socket(c, err);
	if (rc)
		return rc;
	c->epoch++;
	c->idle_since_ms = sc_now_ms();
	if (!c->token)
		return 0;
	Strata__Request req = STRATA__REQUEST__INIT;
	Strata__AuthReq auth = STRATA__AUTH_REQ__INIT;
	auth.token.data = (uint8_t *)c->token;
	auth.token.len = c->o.token_len;
	req.op_case = STRATA__REQUEST__OP_AUTH;
	req.auth = &auth;
	Strata__Response *resp = NULL;
	rc = sc_call(c, &req, &resp, 0, err);
	if (resp)
		strata__response__free_unpacked(resp, NULL);
	if (rc) {
		sc_disconnect(c);
		if (rc == STRATA_ECLOSED)
			rc = sc_error(err, STRATA_EAUTH, "authentication failed (%s)",
				      err ? err->msg : "connection closed");
	}
	return rc;
}

static int sc_connect_one(const char *addr, const struct strata_connect_opts *o, strata **out,
			  struct strata_error *err)
{
	strata *c;
	int rc = sc_handle_new(addr, o, &c, err);
	if (rc)
		return rc;
	if ((rc = sc_ensure(c, err))) {
		strata_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* "HOST:PORT[,HOST:PORT...]": seed nodes, tried in order; the first that answers tells the
 * layout (sc_routed, at the first data operation) when the server runs a cluster. */
int strata_connect(const char *addr, const struct strata_connect_opts *o, strata **out,
		   struct strata_error *err)
{
	char seeds[1024];
	if (strlen(addr) >= sizeof(seeds))
		return sc_error(err, STRATA_EINVAL, "seed list too long");
	strcpy(seeds, addr);
	int rc = STRATA_EINVAL;
	for (char *save, *s = strtok_r(seeds, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		rc = sc_connect_one(s, o, out, err);
		if (rc == 0 || rc == STRATA_EAUTH || rc == STRATA_EINVAL)
			return rc;
	}
	if (rc == STRATA_EINVAL)
		sc_error(err, rc, "no address given");
	return rc;
}

int sc_handle_new(const char *addr, const struct strata_connect_opts *o, strata **out,
		  struct strata_error *err)
{
	strata *c = calloc(1, sizeof(*c));
	if (!c)
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	c->fd = -1;
	c->next_id = 1;
	if (o)
		c->o = *o;
	else
		strata_connect_opts_init(&c->o);
	if (!c->o.max_frame)
		c->o.max_frame = 1u << 30;
	int rc;
	if (strlen(addr) >= sizeof(c->addr)) {
		rc = sc_error(err, STRATA_EINVAL, "address too long");
		goto fail;
	}
	strcpy(c->addr, addr);
	const char *colon = strrchr(addr, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || end == colon + 1 || *end || port <= 0 || port > 65535) {
		rc = sc_error(err, STRATA_EINVAL, "address '%s' is not HOST:PORT", addr);
		goto fail;
	}
	size_t hl = (size_t)(colon - addr);
	const char *h = addr;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	if (hl == 0)
		h = "127.0.0.1", hl = strlen(h);
	if (hl >= sizeof(c->host)) {
		rc = sc_error(err, STRATA_EINVAL, "host too long");
		goto fail;
	}
	memcpy(c->host, h, hl);
	c->host[hl] = '\0';
	c->port = (int)port;
	if (c->o.token) {
		size_t tl = c->o.token_len ? c->o.token_len : strlen(c->o.token);
		c->token = malloc(tl + 1);
		if (!c->token) {
			rc = sc_error(err, STRATA_ENOMEM, "out of memory");
			goto fail;
		}
		memcpy(c->token, c->o.token, tl);
		c->token[tl] = '\0';
		c->o.token = c->token;
		c->o.token_len = tl;
	}
	*out = c;
	return 0;
fail:
	strata_close(c);
	return rc;
}

void strata_set_replica_reads(strata *c, int replica_ok, uint32_t max_lag_ms)
{
	c->o.replica_reads = replica_ok;
	c->o.max_lag_ms = max_lag_ms;
}

void strata_close(strata *c)
{
	if (!c)
		return;
	sc_cluster_free(c);
	sc_disconnect(c);
	free(c->rbuf);
	free(c->wbuf);
	free(c->token);
	free(c);
}

uint64_t sc_reserve_ids(strata *c, size_t n)
{
	uint64_t id = c->next_id;
	c->next_id += n;
	return id;
}

static int sc_wreserve(strata *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wcap - c->wlen >= n)
		return 0;
	size_t cap = c->wcap ? c->wcap : 65536;
	while (cap - c->wlen < n)
		cap *= 2;
	uint8_t *p = realloc(c->wbuf, cap);
	if (!p)
		return STRATA_ENOMEM;
	c->wbuf = p;
	c->wcap = cap;
	return 0;
}

static void sc_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

int sc_queue(strata *c, const Strata__Request *req, struct strata_error *err)
{
	size_t n = strata__request__get_packed_size(req);
	if (sc_wreserve(c, 4 + n))
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	sc_put_be32(c->wbuf + c->wlen, (uint32_t)n);
	strata__request__pack(req, c->wbuf + c->wlen + 4);
	c->wlen += 4 + n;
	return 0;
}

int sc_queue_body(strata *c, const uint8_t *body, size_t len, uint64_t id,
		  struct strata_error *err)
{
	uint8_t tail[11];
	size_t tl = 0;
	tail[tl++] = 0x08; /* field 1 (id), varint */
	uint64_t v = id;
	do {
		tail[tl++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	if (sc_wreserve(c, 4 + len + tl))
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	sc_put_be32(c->wbuf + c->wlen, (uint32_t)(len + tl));
	memcpy(c->wbuf + c->wlen + 4, body, len);
	memcpy(c->wbuf + c->wlen + 4 + len, tail, tl);
	c->wlen += 4 + len + tl;
	return 0;
}

int sc_resp_error(const Strata__Response *r, struct strata_error *err)
{
	if (!r->has_code || r->code == 0)
		return 0;
	return sc_error(err, r->code, "%s", r->error ? r->error : strata_strerror(r->code));
}

/* Routes one response: to the current waiter, or parked for a later one. A connection-level
 * error (id 0) is returned so the wait fails with the server's message. */
static int sc_route(strata *c, Strata__Response *r, size_t *got, struct strata_error *err)
{
	if (r->id >= c->wbase && r->id - c->wbase < c->wn) {
		(*got)++;
		c->wcb(c->warg, (size_t)(r->id - c->wbase), r);
		return 0;
	}
	if (r->id == 0) {
		int rc = sc_resp_error(r, err);
		strata__response__free_unpacked(r, NULL);
		return rc ? rc : sc_error(err, STRATA_EPROTO, "server sent a response with id 0");
	}
	struct sc_parked *p = malloc(sizeof(*p));
	if (!p) {
		strata__response__free_unpacked(r, NULL);
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	}
	p->id = r->id;
	p->resp = r;
	p->next = c->parked;
	c->parked = p;
	return 0;
}

static int sc_parse(strata *c, size_t *got, struct strata_error *err)
{
	size_t off = 0;
	int rc = 0;
	while (c->rlen - off >= 4) {
		const uint8_t *p = c->rbuf + off;
		uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		if (len > c->o.max_frame) {
			rc = sc_error(err, STRATA_EPROTO, "response frame of %u bytes exceeds %u", len,
				      c->o.max_frame);
			break;
		}
		if (c->rlen - off - 4 < len)
			break;
		Strata__Response *r = strata__response__unpack(NULL, len, p + 4);
		off += 4 + (size_t)len;
		if (!r) {
			rc = sc_error(err, STRATA_EPROTO, "server sent an invalid Response");
			break;
		}
		if ((rc = sc_route(c, r, got, err)))
			break;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	return rc;
}

/* A waiter's connection starts its wait: responses in [base, base + n) go to cb, parked
 * answers in that range are delivered first. */
static void sc_wait_begin(struct sc_waiter *w)
{
	strata *c = w->h;
	c->wbase = w->base;
	c->wn = w->n;
	c->wcb = w->cb;
	c->warg = w->arg;
	w->rc = 0;
	w->ended = 0;
	for (struct sc_parked **pp = &c->parked; *pp && w->got < w->want;) {
		struct sc_parked *p = *pp;
		if (p->id >= w->base && p->id - w->base < w->n) {
			*pp = p->next;
			w->got++;
			w->cb(w->arg, (size_t)(p->id - w->base), p->resp);
			free(p);
		} else {
			pp = &p->next;
		}
	}
	w->deadline = c->o.io_timeout_ms > 0 ? sc_now_ms() + c->o.io_timeout_ms : 0;
}

static int sc_wait_active(const struct sc_waiter *w)
{
	return !w->rc && !w->ended && (w->got < w->want || w->h->woff < w->h->wlen);
}

/* One poll() result for a waiter's connection: sends what is queued, reads and routes what
 * arrived. Sets w->rc on a failure, w->ended when the peer closed. */
static void sc_wait_io(struct sc_waiter *w, short revents)
{
	strata *c = w->h;
	struct strata_error *err = &w->err;
	if (revents & POLLOUT) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			w->rc = sc_error(err, -errno, "send to %s: %s", c->addr, strerror(errno));
			return;
		}
		if (n > 0) {
			c->woff += (size_t)n;
			if (c->woff == c->wlen)
				c->woff = c->wlen = 0;
			if (w->deadline)
				w->deadline = sc_now_ms() + c->o.io_timeout_ms;
		}
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	if (c->rcap - c->rlen < 65536) {
		size_t cap = c->rcap ? c->rcap * 2 : 131072;
		uint8_t *p = realloc(c->rbuf, cap);
		if (!p) {
			w->rc = sc_error(err, STRATA_ENOMEM, "out of memory");
			return;
		}
		c->rbuf = p;
		c->rcap = cap;
	}
	ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r < 0) {
		w->rc = sc_error(err, -errno, "recv from %s: %s", c->addr, strerror(errno));
		return;
	}
	if (r == 0) {
		/* Answers already received are still delivered. */
		w->ended = 1;
		w->rc = sc_parse(c, &w->got, err);
		if (!w->rc && w->got < w->want)
			w->rc = sc_error(err, STRATA_ECLOSED, "%s closed the connection", c->addr);
		return;
	}
	c->rlen += (size_t)r;
	if (w->deadline)
		w->deadline = sc_now_ms() + c->o.io_timeout_ms;
	w->rc = sc_parse(c, &w->got, err);
}

static void sc_wait_end(struct sc_waiter *w)
{
	strata *c = w->h;
	c->wn = 0;
	c->wcb = NULL;
	if (w->rc)
		sc_disconnect(c);
	else
		c->idle_since_ms = sc_now_ms();
}

void sc_wait_many(struct sc_waiter *w, size_t nw)
{
	struct pollfd pfd[SC_WAIT_MAX];
	size_t map[SC_WAIT_MAX];
	for (size_t i = 0; i < nw; i++)
		sc_wait_begin(&w[i]);
	for (;;) {
		size_t np = 0;
		int64_t now = sc_now_ms(), first = 0;
		for (size_t i = 0; i < nw; i++) {
			if (!sc_wait_active(&w[i]))
				continue;
			strata *c = w[i].h;
			if (c->fd < 0) {
				w[i].rc = sc_error(&w[i].err, STRATA_ECLOSED, "not connected to %s",
						   c->addr);
				continue;
			}
			if (w[i].deadline && w[i].deadline <= now) {
				w[i].rc = sc_error(&w[i].err, -ETIMEDOUT, "no answer from %s within %d ms",
						   c->addr, c->o.io_timeout_ms);
				continue;
			}
			if (w[i].deadline && (!first || w[i].deadline < first))
				first = w[i].deadline;
			pfd[np] = (struct pollfd){.fd = c->fd, .events = POLLIN};
			if (c->woff < c->wlen)
				pfd[np].events |= POLLOUT;
			map[np++] = i;
		}
		if (np == 0)
			break;
		int pn = poll(pfd, (nfds_t)np, first ? (int)(first - now) : -1);
		if (pn < 0 && errno != EINTR) {
			for (size_t k = 0; k < np; k++)
				w[map[k]].rc = sc_error(&w[map[k]].err, -errno, "poll: %s",
							strerror(errno));
			break;
		}
		for (size_t k = 0; pn > 0 && k < np; k++)
			if (pfd[k].revents)
				sc_wait_io(&w[map[k]], pfd[k].revents);
	}
	for (size_t i = 0; i < nw; i++)
		sc_wait_end(&w[i]);
}

int sc_wait(strata *c, uint64_t base, size_t n, size_t want, sc_deliver_fn cb, void *arg,
	    size_t *got, struct strata_error *err)
{
	struct sc_waiter w = {.h = c, .base = base, .n = n, .want = want, .got = *got,
			      .cb = cb, .arg = arg};
	sc_wait_many(&w, 1);
	*got = w.got;
	if (w.rc && err)
		*err = w.err;
	return w.rc;
}

static void sc_store_one(void *arg, size_t idx, Strata__Response *resp)
{
	(void)idx;
	*(Strata__Response **)arg = resp;
}

/* A replicated cluster answers a request for a shard this node does not own with
 * "EMOVED shard S primary NAME HOST:PORT layout V" (or "EMOVED registry primary NAME
 * HOST:PORT: ..."): the request was not executed. Points the handle at HOST:PORT and returns
 * 1, or 0 if the error is not a redirect (or names an unusable address). */
int sc_is_moved(int code, const char *msg)
{
	return code == STRATA_EBUSY && msg && !strncmp(msg, "EMOVED ", 7);
}

static int sc_redirect(strata *c, int code, const char *msg)
{
	if (!sc_is_moved(code, msg))
		return 0;
	const char *p = strstr(msg, " primary ");
	if (!p || !(p = strchr(p + 9, ' ')))
		return 0;
	char addr[300];
	size_t n = strcspn(p + 1, " :");
	n += strcspn(p + 1 + n, " ");
	if (n == 0 || n >= sizeof(addr))
		return 0;
	memcpy(addr, p + 1, n);
	addr[n] = '\0';
	char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(c->host) || atoi(colon + 1) <= 0)
		return 0;
	sc_disconnect(c);
	strcpy(c->addr, addr);
	memcpy(c->host, addr, (size_t)(colon - addr));
	c->host[colon - addr] = '\0';
	c->port = atoi(colon + 1);
	return 1;
}

int sc_call(strata *c, Strata__Request *req, Strata__Response **resp, int idempotent,
	    struct strata_error *err)
{
	*resp = NULL;
	int redirects = 0;
	for (int attempt = 0;; attempt++) {
		int fresh = c->fd < 0;
		int rc = sc_ensure(c, err);
		if (rc)
			return rc;
		req->id = sc_reserve_ids(c, 1);
		if ((rc = sc_queue(c, req, err)))
			return rc;
		Strata__Response *r = NULL;
		size_t got = 0;
		rc = sc_wait(c, req->id, 1, 1, sc_store_one, &r, &got, err);
		if (rc) {
			if (r)
				strata__response__free_unpacked(r, NULL);
			if (sc_is_transport_error(rc) && idempotent && c->o.reconnect && attempt == 0 &&
			    !fresh)
				continue;
			return rc;
		}
		if ((rc = sc_resp_error(r, err))) {
			int moved = redirects < 3 && sc_redirect(c, r->code, r->error ? r->error : "");
			strata__response__free_unpacked(r, NULL);
			if (moved) {
				redirects++;
				attempt = -1;
				continue;
			}
			return rc;
		}
		*resp = r;
		return 0;
	}
}

/* ---- conversions ---- */

void sc_value_to_pb(const struct strata_value *v, Strata__Value *pb)
{
	strata__value__init(pb);
	pb->type = v->type;
	switch (v->type) {
	case STRATA_I64:
		pb->has_i64 = 1;
		pb->i64 = v->i64;
		break;
	case STRATA_F64:
		pb->has_f64 = 1;
		pb->f64 = v->f64;
		break;
	case STRATA_F32:
		pb->has_f32 = 1;
		pb->f32 = v->f32;
		break;
	case STRATA_STR:
	case STRATA_BYTES:
		pb->has_bytes = 1;
		pb->bytes.data = v->ptr;
		pb->bytes.len = v->len;
		break;
	case STRATA_F32VEC:
		pb->n_vec = v->len;
		pb->vec = v->ptr;
		break;
	case STRATA_I64LIST:
		pb->n_list = v->len;
		pb->list = v->ptr;
		break;
	default:
		break;
	}
}

int sc_value_from_pb(const Strata__Value *pb, struct strata_value *v)
{
	memset(v, 0, sizeof(*v));
	v->type = (enum strata_type)pb->type;
	const void *src = NULL;
	size_t bytes = 0, extra = 0;
	switch (pb->type) {
	case STRATA_I64:
		v->i64 = pb->i64;
		return 0;
	case STRATA_F64:
		v->f64 = pb->f64;
		return 0;
	case STRATA_F32:
		v->f32 = pb->f32;
		return 0;
	case STRATA_STR:
	case STRATA_BYTES:
		src = pb->bytes.data;
		bytes = pb->bytes.len;
		v->len = (uint32_t)pb->bytes.len;
		extra = 1; /* NUL terminator for strings */
		break;
	case STRATA_F32VEC:
		src = pb->vec;
		bytes = pb->n_vec * sizeof(float);
		v->len = (uint32_t)pb->n_vec;
		break;
	case STRATA_I64LIST:
		src = pb->list;
		bytes = pb->n_list * sizeof(int64_t);
		v->len = (uint32_t)pb->n_list;
		break;
	default:
		return STRATA_EPROTO;
	}
	uint8_t *p = malloc(bytes + extra + (bytes + extra == 0));
	if (!p)
		return STRATA_ENOMEM;
	if (bytes)
		memcpy(p, src, bytes);
	if (extra)
		p[bytes] = '\0';
	v->ptr = p;
	return 0;
}

int sc_results_from_pb(Strata__Result *const *rs, size_t n, struct strata_result *out,
		       struct strata_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const Strata__Result *r = rs[i];
		memset(&out[i], 0, sizeof(out[i]));
		if (!r->found || !r->value) {
			/* stale and skipped rows carry a status; stale ones their event time */
			if (r->has_status && r->status >= STRATA_STALE &&
			    r->status <= STRATA_BEFORE_HORIZON) {
				out[i].status = (enum strata_status)r->status;
				out[i].ts = r->ts;
				out[i].ingest_us = r->ingest_us;
			}
			continue;
		}
		out[i].found = 1;
		out[i].status = STRATA_PRESENT;
		out[i].ts = r->ts;
		out[i].ingest_us = r->ingest_us;
		int rc = sc_value_from_pb(r->value, &out[i].value);
		if (rc) {
			strata_result_release(out, i);
			return sc_error(err, rc, "%s", rc == STRATA_ENOMEM ? "out of memory"
								       : "server sent an unknown value type");
		}
	}
	return 0;
}

void strata_result_release(struct strata_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].value.ptr);
		memset(&r[i], 0, sizeof(r[i]));
	}
}
