/* The connection core shared by both network backends: framing, auth, limits, handing
 * requests to the worker pool and responses back to the socket (state machine in srv.h). */
#include "server/srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_log.h"
#include "common/st_time.h"

static uint64_t srv_next_conn_id(void)
{
	static atomic_uint_fast64_t next = 1;
	return atomic_fetch_add(&next, 1);
}

/* ---- the candidate list: unproven connections, least recently active first ---- */

static void srv_cand_unlink(struct srv_conn *c)
{
	if (!c->on_cand)
		return;
	struct srv_net *n = c->net;
	if (c->cprev)
		c->cprev->cnext = c->cnext;
	else
		n->cand_head = c->cnext;
	if (c->cnext)
		c->cnext->cprev = c->cprev;
	else
		n->cand_tail = c->cprev;
	c->cprev = c->cnext = NULL;
	c->on_cand = 0;
	atomic_fetch_sub(&n->ncand, 1);
}

static void srv_cand_append(struct srv_conn *c)
{
	struct srv_net *n = c->net;
	ST_ASSERT(!c->on_cand);
	c->cprev = n->cand_tail;
	c->cnext = NULL;
	if (n->cand_tail)
		n->cand_tail->cnext = c;
	else
		n->cand_head = c;
	n->cand_tail = c;
	c->on_cand = 1;
	atomic_fetch_add(&n->ncand, 1);
}

void srv_conn_prove(struct srv_conn *c)
{
	if (c->proven)
		return;
	c->proven = 1;
	srv_cand_unlink(c);
}

void srv_conn_assert_state(const struct srv_conn *c)
{
	ST_ASSERT(c->state == SRV_CONN_OPEN || c->state == SRV_CONN_CLOSING);
	ST_ASSERT(c->on_cand == (c->state == SRV_CONN_OPEN && !c->proven));
	ST_ASSERT(c->inflight <= (uint32_t)c->net->srv->cfg.max_inflight);
	ST_ASSERT(!c->partial || c->in.len > 0);
	ST_ASSERT(c->proven || c->inflight == 0 || c->proto != SRV_PROTO_STRATA);
	ST_ASSERT(c->proto == SRV_PROTO_RESP || (!c->held && !c->resp));
	ST_ASSERT(c->seq_sent <= c->seq_next && c->seq_next - c->seq_sent <= c->inflight);
}

/* A connection this fresh may be a client between its connect and its first request: it is
 * never evicted. If every candidate is this fresh the newcomer is admitted anyway, so the
 * limit can be exceeded by at most the connections accepted within this window. */
#define SRV_EVICT_GRACE_US 50000

/* Closes the unproven connection idle longest on this net to make room; 0 if there is none. */
static int srv_net_evict_one(struct srv_net *n)
{
	struct srv_conn *c;
	/* Bytes in the socket not read yet: a request may be arriving; look further (a bounded
	 * number of times, each skipped one becoming most recently active). */
	for (int tries = 0;; tries++) {
		c = n->cand_head;
		if (!c || st_mono_us() - c->last_active_us < SRV_EVICT_GRACE_US)
			return 0;
		int unread = 0;
		if (tries == 8 || ioctl(c->fd, FIONREAD, &unread) || unread == 0)
			break;
		srv_cand_unlink(c);
		srv_cand_append(c);
		c->last_active_us = st_mono_us();
	}
	atomic_fetch_add(&n->srv->m.conns_evicted, 1);
	st_debug("conn %llu: evicted at the connection limit (idle %lld ms, no request yet)",
		 (unsigned long long)c->id, (long long)((st_mono_us() - c->last_active_us) / 1000));
	srv_conn_close(c, "evicted");
	return 1;
}

/* Evictions other threads asked of this one (on this net's thread). */
static void srv_net_serve_evictions(struct srv_net *n)
{
	while (atomic_load(&n->evict_req) > 0) {
		atomic_fetch_sub(&n->evict_req, 1);
		if (!srv_net_evict_one(n)) {
			atomic_store(&n->evict_req, 0);
			break;
		}
	}
}

/* A reap that found no departed client is not repeated for this long: under a flood of
 * clients that really are connected, each newcomer must not cost a pass over them all. */
#define SRV_REAP_PAUSE_US 100000

/* 1 when the client of `c` has certainly gone: its socket holds no unread byte, only the
 * end of the stream (its FIN) or an error (its RST). Nothing of it is waiting here either:
 * no request in flight, no unparsed input, no unsent answer. */
static int srv_conn_gone(struct srv_conn *c)
{
	if (c->inflight || c->in.len || c->net->be->out_pending(c))
		return 0;
	char b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Closes this net's connections whose clients have gone although their end of stream has
 * not been processed yet (a loaded server reads its socket events late; with io_uring the
 * EOF may be waiting in the completion queue, or not be watched at all while reading is
 * paused). Such a connection counts against --max-conns and, having made a request, is never
 * evicted: at the limit a flood of clients that send a request and hang up would otherwise
 * lock newcomers out. Returns how many were closed. */
static int srv_net_reap_gone(struct srv_net *n)
{
	int64_t now = st_mono_us();
	atomic_store(&n->reap_req, 0);
	if (now < n->reap_after_us)
		return 0;
	int closed = 0;
	struct srv_conn *next;
	for (struct srv_conn *c = n->conns; c; c = next) {
		next = c->next;
		if (c->state == SRV_CONN_OPEN && c->proven && srv_conn_gone(c)) {
			srv_conn_close(c, "client gone");
			closed++;
		}
	}
	if (!closed) {
		n->reap_after_us = now + SRV_REAP_PAUSE_US;
		return 0;
	}
	st_debug("net %d: closed %d connections whose clients had gone", n->idx, closed);
	atomic_fetch_add(&n->srv->m.conns_gone, (uint_fast64_t)closed);
	return closed;
}

/* At the connection limit: makes room by closing an unproven connection, here or (asked
 * through evict_req) on another thread, or else one whose client has gone (srv_net_reap_gone).
 * Returns 0 when the newcomer may be admitted. */
static int srv_net_make_room(struct srv_net *n)
{
	/* The thread with the most candidates: its least recently active one is likely idle
	 * longest, and is unlikely to be a client that has just connected. */
	struct srv_server *s = n->srv;
	struct srv_net *best = n;
	int most = atomic_load(&n->ncand) - atomic_load(&n->evict_req), ncand = 0;
	for (int i = 0; i < s->nnets; i++) {
		struct srv_net *t = s->nets[i];
		int spare = atomic_load(&t->ncand) - atomic_load(&t->evict_req);
		ncand += atomic_load(&t->ncand);
		if (t != n && spare > most) {
			best = t;
			most = spare;
		}
	}
	if (ncand <= 0) {
		/* Every connection has made a request: refuse, as Redis does, unless some of them
		 * are clients that have already hung up. The other threads look at theirs too. */
		for (int i = 0; i < s->nnets; i++)
			if (s->nets[i] != n && !atomic_exchange(&s->nets[i]->reap_req, 1))
				srv_net_wake(s->nets[i]);
		return srv_net_reap_gone(n) > 0 ? 0 : -1;
	}
	/* Every unproven connection is already to be evicted (their owners have not run yet: a
	 * burst of accepts can outpace them): those evictions make the room. Refusing here
	 * turned away well-behaved newcomers under the connection storm. */
	if (most <= 0)
		return 0;
	/* Evicted at the owner's next srv_net_flush, after the socket events of the current
	 * loop iteration: a client whose first request is already in this batch (with io_uring
	 * the bytes have left the socket, so FIONREAD no longer shows them) is not taken for
	 * idle. The newcomer is admitted now. */
	atomic_fetch_add(&best->evict_req, 1);
	if (best != n)
		srv_net_wake(best);
	return 0;
}

void srv_conn_init(struct srv_conn *c, struct srv_net *n, int fd, enum srv_proto proto)
{
	memset(c, 0, sizeof(*c));
	c->net = n;
	c->fd = fd;
	c->proto = proto;
	c->id = srv_next_conn_id();
	c->state = SRV_CONN_OPEN;
	c->authed = n->srv->cfg.token == NULL;
	c->last_active_us = c->created_us = st_mono_us();
	srv_cand_append(c);
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->nconns++;
	atomic_fetch_add(&n->srv->m.conns, 1);
	atomic_fetch_add(&n->srv->m.conns_total, 1);
}

/* Tells a refused client why, in its protocol (best effort, non-blocking: the socket buffer
 * of a new socket is empty), and closes the socket. */
static void srv_refuse(int fd, enum srv_proto proto, const char *why)
{
	if (proto == SRV_PROTO_RESP) {
		char line[128];
		int len = snprintf(line, sizeof(line), "-ERR %s\r\n", why);
		ssize_t w = send(fd, line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
	} else {
		uint8_t *f;
		size_t len;
		if (srv_error_frame(0, ST_ELIMIT, why, &f, &len) == 0) {
			ssize_t w = send(fd, f, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)w;
			free(f);
		}
	}
	close(fd);
}

/* Evictions asked for and not yet done: each will free a place. */
static int srv_pending_evictions(struct srv_server *s)
{
	int p = 0;
	for (int i = 0; i < s->nnets; i++)
		p += atomic_load(&s->nets[i]->evict_req);
	return p;
}

int srv_net_admit(struct srv_net *n, int fd, enum srv_proto proto)
{
	struct srv_server *s = n->srv;
	if (atomic_load(&s->stopping) ||
	    (atomic_load(&s->m.conns) - srv_pending_evictions(s) >= s->cfg.max_conns &&
	     srv_net_make_room(n))) {
		srv_refuse(fd, proto, atomic_load(&s->stopping) ? "server is shutting down"
								: "too many connections");
		atomic_fetch_add(&s->m.conns_rejected, 1);
		return -1;
	}
	return 0;
}

static struct srv_net *srv_net_least_loaded(struct srv_net *n)
{
	struct srv_server *s = n->srv;
	struct srv_net *best = n;
	int best_load = atomic_load(&n->load);
	for (int i = 0; i < s->nnets; i++) {
		int l = atomic_load(&s->nets[i]->load);
		if (l < best_load) {
			best = s->nets[i];
			best_load = l;
		}
	}
	return best;
}

static void srv_net_adopt(struct srv_net *n, int fd, enum srv_proto proto)
{
	if (n->be->adopt(n, fd, proto)) {
		close(fd);
		atomic_fetch_sub(&n->load, 1);
	}
}

void srv_net_accepted(struct srv_net *n, int fd, enum srv_proto proto)
{
	if (srv_net_admit(n, fd, proto))
		return;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct srv_net *t = srv_net_least_loaded(n);
	atomic_fetch_add(&t->load, 1);
	if (t == n) {
		srv_net_adopt(n, fd, proto);
		return;
	}
	pthread_mutex_lock(&t->done_mu);
	int ok = 1;
	if (t->nhandoff == t->caphandoff) {
		size_t cap = t->caphandoff ? 2 * t->caphandoff : 16;
		struct srv_handoff *h = realloc(t->handoff, cap * sizeof(*h));
		if (h) {
			t->handoff = h;
			t->caphandoff = cap;
		} else {
			ok = 0;
		}
	}
	if (ok)
		t->handoff[t->nhandoff++] = (struct srv_handoff){fd, proto};
	int signal = ok && !t->done_signaled;
	if (signal)
		t->done_signaled = 1;
	pthread_mutex_unlock(&t->done_mu);
	if (!ok) {
		atomic_fetch_sub(&t->load, 1);
		atomic_fetch_add(&n->load, 1);
		srv_net_adopt(n, fd, proto); /* cannot queue it: keep it here */
		return;
	}
	if (signal)
		srv_net_wake(t);
}

void srv_net_drop_handoffs(struct srv_net *n)
{
	pthread_mutex_lock(&n->done_mu);
	for (size_t i = 0; i < n->nhandoff; i++)
		close(n->handoff[i].fd);
	free(n->handoff);
	n->handoff = NULL;
	n->nhandoff = n->caphandoff = 0;
	pthread_mutex_unlock(&n->done_mu);
}

static void srv_conn_send_frame(struct srv_conn *c, const uint8_t *f, size_t len)
{
	atomic_fetch_add(&c->net->srv->m.bytes_out, len);
	if (c->net->be->write(c, f, len))
		srv_conn_close(c, "out of memory");
}

/* Replies with an error on the network thread (no store access needed). */
static void srv_conn_reply_error(struct srv_conn *c, uint64_t id, int op, int code,
				 const char *msg)
{
	uint8_t *f;
	size_t len;
	srv_metrics_observe(&c->net->srv->m, op, 0, 1);
	if (srv_error_frame(id, code, msg, &f, &len)) {
		srv_conn_close(c, "out of memory");
		return;
	}
	srv_conn_send_frame(c, f, len);
	free(f);
}

static int srv_conn_over_limits(struct srv_conn *c)
{
	const struct srv_config *cfg = &c->net->srv->cfg;
	return c->inflight >= (uint32_t)cfg->max_inflight ||
	       c->net->be->out_pending(c) > cfg->max_out;
}

int srv_conn_can_parse(struct srv_conn *c)
{
	return c->state == SRV_CONN_OPEN && !c->close_after && !srv_conn_over_limits(c);
}

static void srv_conn_update_read(struct srv_conn *c)
{
	int want = c->state == SRV_CONN_OPEN && !c->eof && !c->close_after &&
		   !srv_conn_over_limits(c) && !atomic_load(&c->net->srv->stopping);
	if (want == !c->read_paused)
		return;
	c->read_paused = !want;
	c->net->be->set_read(c, want);
}

int srv_token_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	/* Constant time in the token's length, so timing does not reveal a prefix. */
	unsigned diff = alen != blen;
	for (size_t i = 0; i < blen; i++)
		diff |= (i < alen ? a[i] : 0) ^ b[i];
	return diff == 0;
}

static void srv_req_send(struct srv_conn *c, struct srv_req *r);

/* A request answered on the network thread while its connection's input is being parsed:
 * its answer goes straight into the output queue (sent with the others of this loop
 * iteration) when nothing before it is outstanding; otherwise it waits on the done list. No
 * re-entry into the parser (unlike srv_req_finish). */
static void srv_conn_answer_req(struct srv_conn *c, struct srv_req *r)
{
	if (c->proto == SRV_PROTO_RESP && r->seq != c->seq_sent) {
		srv_net_complete(c->net, r);
		return;
	}
	struct srv_server *s = c->net->srv;
	srv_metrics_observe(&s->m, r->op, st_mono_us() - r->t0_us, r->failed);
	atomic_fetch_sub(&s->m.inflight, 1);
	if (c->proto == SRV_PROTO_RESP)
		c->seq_sent++;
	srv_req_send(c, r);
	if (c->state == SRV_CONN_OPEN && !c->out_full_since &&
	    c->net->be->out_pending(c) > s->cfg.max_out)
		c->out_full_since = st_mono_us();
}

void srv_conn_answer(struct srv_conn *c, int op, uint8_t *frame, size_t len, int failed)
{
	if (c->proto == SRV_PROTO_RESP && c->seq_next == c->seq_sent) {
		/* nothing before it outstanding: no request record needed */
		srv_metrics_observe(&c->net->srv->m, op, 0, failed);
		c->seq_next++;
		c->seq_sent++;
		if (c->state == SRV_CONN_OPEN)
			srv_conn_send_frame(c, frame, len);
		free(frame);
		return;
	}
	struct srv_req *r = srv_req_new();
	if (!r) {
		free(frame);
		srv_conn_close(c, "out of memory");
		return;
	}
	r->op = op;
	r->failed = failed;
	r->frame = frame;
	r->frame_len = len;
	srv_conn_submit(c, r, 0);
}

/* Handles one decoded request: inline (auth, ping, inline reads) or queued for the pool. */
static void srv_conn_request(struct srv_conn *c, struct srv_req *r)
{
	struct srv_server *s = c->net->srv;
	const Strata__Request *msg = r->msg;
	const struct srv_op *def = srv_op_find(msg->op_case);
	int op = def ? msg->op_case : 0;
	unsigned flags = def ? def->flags : 0;
	uint64_t id = msg->id;
	if (flags & SRV_OPF_CONN) {
		ST_ASSERT(msg->op_case == STRATA__REQUEST__OP_AUTH);
		int ok = !s->cfg.token ||
			 srv_token_equal(msg->auth->token.data, msg->auth->token.len,
					 (const uint8_t *)s->cfg.token, s->cfg.token_len);
		srv_req_free(r);
		if (!ok) {
			atomic_fetch_add(&s->m.auth_failures, 1);
			st_warn("conn %llu: authentication failed", (unsigned long long)c->id);
			srv_conn_reply_error(c, id, op, ST_EAUTH, "authentication failed: wrong token");
			c->close_after = 1;
			return;
		}
		c->authed = 1;
		srv_conn_prove(c);
		srv_conn_reply_error(c, id, op, 0, NULL);
		return;
	}
	if (!c->authed) {
		atomic_fetch_add(&s->m.auth_failures, 1);
		srv_req_free(r);
		srv_conn_reply_error(c, id, op, ST_EAUTH,
				     "authentication required: send auth first");
		c->close_after = 1;
		return;
	}
	srv_conn_prove(c);
	r->op = op;
	srv_conn_submit(c, r, flags);
}

void srv_conn_submit(struct srv_conn *c, struct srv_req *r, unsigned flags)
{
	struct srv_server *s = c->net->srv;
	r->conn = c;
	r->net = c->net;
	if (!r->t0_us) /* the parser sets it once per received buffer */
		r->t0_us = st_mono_us();
	if (c->proto == SRV_PROTO_RESP)
		r->seq = c->seq_next++;
	c->inflight++;
	atomic_fetch_add(&s->m.inflight, 1);
	if (!r->msg) { /* the reply is made: queued behind the replies before it */
		srv_conn_answer_req(c, r);
		return;
	}
	/* Point reads are short and CPU-bound unless they miss the page cache: they get their
	 * own pool sized to the cores, so that long operations never queue them. */
	if ((flags & SRV_OPF_INLINE) || (s->cfg.inline_reads && (flags & SRV_OPF_READ))) {
		srv_dispatch(s, r);
		srv_conn_answer_req(c, r);
		return;
	}
	/* Row-cache hits are answered here; only misses pay the hand-over to a worker. */
	if ((flags & SRV_OPF_CACHED) && s->cfg.row_cache_bytes && srv_dispatch_cached(s, r)) {
		srv_conn_answer_req(c, r);
		return;
	}
	int b = (flags & SRV_OPF_READ) ? 0 : 1;
	if (c->net->batch[b].tail)
		c->net->batch[b].tail->next = r;
	else
		c->net->batch[b].head = r;
	c->net->batch[b].tail = r;
	c->net->batch[b].n++;
}

/* Parses whole frames from c->in while the limits allow. */
void srv_conn_parsed(struct srv_conn *c, size_t consumed, int partial)
{
	if (consumed)
		srv_buf_consume(&c->in, consumed);
	c->partial = partial && c->in.len > 0;
	if (!c->partial)
		c->frame_start_us = 0;
	else if (consumed || !c->frame_start_us)
		c->frame_start_us = st_mono_us();
}

/* Requests decoded from one received buffer before any is executed: their row-cache entries
 * are prefetched together (kv_prefetch_latest), so that the lookups that follow find them in
 * the CPU cache instead of each waiting for memory in turn. */
#define SRV_DECODE_BATCH 32

void srv_prefetch_gets(struct srv_conn *c, struct srv_req *const *reqs, size_t n)
{
	struct srv_server *s = c->net->srv;
	const char *tables[SRV_DECODE_BATCH], *ents[SRV_DECODE_BATCH];
	size_t lens[SRV_DECODE_BATCH], k = 0;
	if (!s->cfg.row_cache_bytes || n < 2)
		return;
	for (size_t i = 0; i < n && k < SRV_DECODE_BATCH; i++) {
		const Strata__Request *m = reqs[i]->msg;
		if (m->op_case != STRATA__REQUEST__OP_GET || m->get->n_entities != 1 ||
		    m->get->as_of != ST_TS_MAX || m->get->known_at != ST_TS_MAX)
			continue;
		tables[k] = m->get->table;
		ents[k] = (const char *)m->get->entities[0].data;
		lens[k++] = m->get->entities[0].len;
	}
	if (k >= 2)
		kv_prefetch_latest(s->db, tables, ents, lens, k);
}

/* Decodes the next frame of c->in at *off into *out (NULL when the frame was answered with
 * an error). Returns 0, or 1 when no whole frame is buffered (*partial), or -1 when the
 * connection must stop parsing (frame over the limit). */
static int srv_strata_decode(struct srv_conn *c, size_t *off, int64_t now, struct srv_req **out)
{
	struct srv_server *s = c->net->srv;
	*out = NULL;
	if (c->in.len - *off < 4)
		return 1;
	uint32_t len = srv_get_be32(c->in.p + *off);
	if (len > s->cfg.max_frame) {
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "frame of %u bytes exceeds the limit of %u bytes (--max-frame)", len,
			 s->cfg.max_frame);
		atomic_fetch_add(&s->m.frames_bad, 1);
		st_warn("conn %llu: %s; closing", (unsigned long long)c->id, msg);
		srv_conn_reply_error(c, 0, 0, ST_ELIMIT, msg);
		c->close_after = 1;
		return -1;
	}
	if (c->in.len - *off - 4 < len)
		return 1;
	/* The request and everything protobuf-c unpacks for it in one allocation (the request's
	 * arena) instead of one malloc per field. */
	struct srv_req *r = srv_req_new();
	const uint8_t *payload = c->in.p + *off + 4;
	*off += 4 + (size_t)len;
	c->last_active_us = now;
	if (!r) {
		srv_conn_reply_error(c, 0, 0, ST_ENOMEM, "out of memory");
		return 0;
	}
	if (!srv_req_unpack(r, payload, len)) {
		srv_req_free(r);
		atomic_fetch_add(&s->m.frames_bad, 1);
		srv_conn_reply_error(c, 0, 0, ST_EPROTO,
				     "invalid frame: payload is not a valid Request message");
		return 0;
	}
	if (r->msg->op_case == STRATA__REQUEST__OP__NOT_SET) {
		uint64_t id = r->msg->id;
		srv_req_free(r);
		srv_conn_reply_error(c, id, 0, ST_EPROTO, "unknown operation (no known op field set)");
		return 0;
	}
	*out = r;
	return 0;
}

/* The protobuf protocol: 4-byte length prefix, then a Request message. Frames are decoded
 * in batches (at most the connection's remaining in-flight room), then executed in order. */
static void srv_strata_process(struct srv_conn *c)
{
	const struct srv_config *cfg = &c->net->srv->cfg;
	size_t off = 0;
	int partial = 0, stop = 0;
	int64_t now = st_mono_us();
	while (!stop && srv_conn_can_parse(c)) {
		struct srv_req *reqs[SRV_DECODE_BATCH];
		size_t n = 0, room = (size_t)cfg->max_inflight - c->inflight;
		while (n < SRV_DECODE_BATCH && n < room) {
			struct srv_req *r;
			int rc = srv_strata_decode(c, &off, now, &r);
			if (rc) {
				partial = rc > 0;
				stop = 1;
				break;
			}
			if (r) {
				reqs[n++] = r;
			} else if (!srv_conn_can_parse(c)) {
				stop = 1; /* error replies filled the output */
				break;
			}
		}
		srv_prefetch_gets(c, reqs, n);
		for (size_t i = 0; i < n; i++) {
			if (c->state == SRV_CONN_OPEN && !c->close_after) {
				reqs[i]->t0_us = now;
				srv_conn_request(c, reqs[i]);
			} else {
				srv_req_free(reqs[i]); /* after an auth failure: never executed */
			}
		}
	}
	srv_conn_parsed(c, off, partial);
}

static void srv_conn_process(struct srv_conn *c)
{
	if (c->proto == SRV_PROTO_RESP)
		srv_resp_process(c);
	else
		srv_strata_process(c);
	/* An error to send before closing: closed once it (and every earlier answer) is out. */
	if (c->state == SRV_CONN_OPEN && c->close_after && c->inflight == 0 &&
	    c->net->be->out_pending(c) == 0)
		srv_conn_close(c, "protocol error");
}

void srv_conn_input(struct srv_conn *c, const void *p, size_t n)
{
	if (c->state != SRV_CONN_OPEN)
		return;
	atomic_fetch_add(&c->net->srv->m.bytes_in, n);
	c->last_active_us = st_mono_us();
	if (c->on_cand) { /* most recently active: last to be evicted */
		srv_cand_unlink(c);
		srv_cand_append(c);
	}
	if (c->close_after)
		return; /* discard: the connection closes once its error is sent */
	if (srv_buf_append(&c->in, p, n)) {
		srv_conn_close(c, "out of memory");
		return;
	}
	srv_conn_process(c);
	if (c->state == SRV_CONN_OPEN)
		srv_conn_update_read(c);
}

static void srv_conn_check_done(struct srv_conn *c)
{
	if (c->state != SRV_CONN_OPEN)
		return;
	if ((c->eof || c->close_after || atomic_load(&c->net->srv->stopping)) &&
	    c->inflight == 0 && c->net->be->out_pending(c) == 0)
		srv_conn_close(c, c->close_after ? "closed after error"
				  : c->eof       ? "peer closed"
						 : "shutdown");
}

void srv_conn_eof(struct srv_conn *c, int err)
{
	if (c->state != SRV_CONN_OPEN)
		return;
	if (err) {
		srv_conn_close(c, "read error");
		return;
	}
	/* Fault seam: the end of stream is seen late, as on a server far behind its socket
	 * events; reading stops as if it were still to come. */
	if (ST_FAULT("srv.eof.late")) {
		c->read_paused = 1;
		c->net->be->set_read(c, 0);
		return;
	}
	c->eof = 1;
	srv_conn_process(c); /* frames already buffered are still answered */
	srv_conn_update_read(c);
	srv_conn_check_done(c);
}

void srv_conn_output_progress(struct srv_conn *c)
{
	if (c->state != SRV_CONN_OPEN)
		return;
	if (c->net->be->out_pending(c) <= c->net->srv->cfg.max_out)
		c->out_full_since = 0;
	srv_conn_process(c);
	if (c->state != SRV_CONN_OPEN)
		return;
	srv_conn_update_read(c);
	srv_conn_check_done(c);
}

void srv_conn_close(struct srv_conn *c, const char *why)
{
	if (c->state != SRV_CONN_OPEN)
		return;
	st_debug("conn %llu: closing (%s)", (unsigned long long)c->id, why);
	c->state = SRV_CONN_CLOSING;
	srv_cand_unlink(c);
	/* Counted against --max-conns while OPEN: a closing socket holds no client. */
	atomic_fetch_sub(&c->net->srv->m.conns, 1);
	c->net->be->shut(c);
	srv_conn_maybe_free(c);
}

void srv_conn_maybe_free(struct srv_conn *c)
{
	if (c->state != SRV_CONN_CLOSING || !c->io_done || c->inflight || c->busy)
		return;
	struct srv_net *n = c->net;
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->nconns--;
	atomic_fetch_sub(&n->load, 1);
	srv_joins_drop_conn(n->srv, c->id);
	srv_resp_conn_free(c);
	srv_buf_release(&c->in);
	n->be->free_conn(c);
}

/* ---- completions from workers ---- */

void srv_net_wake(struct srv_net *n)
{
	uint64_t one = 1;
	ssize_t w = write(n->efd, &one, sizeof(one));
	(void)w; /* EAGAIN means the counter is already non-zero: the net wakes anyway */
}

void srv_net_complete(struct srv_net *n, struct srv_req *r)
{
	r->next = NULL;
	srv_net_complete_chain(n, r, r);
}

void srv_net_complete_chain(struct srv_net *n, struct srv_req *first, struct srv_req *last)
{
	last->next = NULL;
	pthread_mutex_lock(&n->done_mu);
	if (n->done_tail)
		n->done_tail->next = first;
	else
		n->done_head = first;
	n->done_tail = last;
	int signal = !n->done_signaled;
	n->done_signaled = 1;
	pthread_mutex_unlock(&n->done_mu);
	/* One eventfd write per batch of completions, not one per request. */
	if (signal && !pthread_equal(pthread_self(), n->thread))
		srv_net_wake(n);
}

/* Sends a finished request's answer (if the connection is still open) and frees it. */
static void srv_req_send(struct srv_conn *c, struct srv_req *r)
{
	ST_ASSERT(c->inflight > 0);
	c->inflight--;
	if (c->state == SRV_CONN_OPEN) {
		if (r->frame)
			srv_conn_send_frame(c, r->frame, r->frame_len);
		else if (c->proto == SRV_PROTO_RESP) /* every later reply would be misread */
			srv_conn_close(c, "out of memory");
	}
	srv_req_free(r);
}

/* RESP: holds r until the replies of every earlier command are sent, then sends all that
 * are due, in order. */
static void srv_req_send_in_order(struct srv_conn *c, struct srv_req *r)
{
	struct srv_req **pp = &c->held;
	while (*pp && (*pp)->seq < r->seq)
		pp = &(*pp)->next;
	r->next = *pp;
	*pp = r;
	while (c->held && c->held->seq == c->seq_sent) {
		struct srv_req *h = c->held;
		c->held = h->next;
		c->seq_sent++;
		srv_req_send(c, h);
	}
}

static void srv_req_finish(struct srv_req *r)
{
	struct srv_conn *c = r->conn;
	struct srv_server *s = r->net->srv;
	srv_metrics_observe(&s->m, r->op, st_mono_us() - r->t0_us, r->failed);
	atomic_fetch_sub(&s->m.inflight, 1);
	c->busy++;
	if (c->proto == SRV_PROTO_RESP)
		srv_req_send_in_order(c, r);
	else
		srv_req_send(c, r);
	if (c->state == SRV_CONN_OPEN) {
		const struct srv_config *cfg = &s->cfg;
		if (c->net->be->out_pending(c) > cfg->max_out) {
			if (!c->out_full_since)
				c->out_full_since = st_mono_us();
		}
		srv_conn_output_progress(c);
	}
	c->busy--;
	srv_conn_maybe_free(c);
}

void srv_net_flush(struct srv_net *n)
{
	srv_net_serve_evictions(n);
	if (atomic_load(&n->reap_req))
		srv_net_reap_gone(n);
	for (;;) {
		pthread_mutex_lock(&n->done_mu);
		struct srv_req *r = n->done_head;
		n->done_head = n->done_tail = NULL;
		struct srv_handoff *h = n->handoff;
		size_t nh = n->nhandoff;
		n->handoff = NULL;
		n->nhandoff = n->caphandoff = 0;
		n->done_signaled = 0;
		pthread_mutex_unlock(&n->done_mu);
		if (!r && !nh) {
			free(h);
			break;
		}
		/* Sockets other threads handed over: adopted here, on this net's thread. */
		for (size_t i = 0; i < nh; i++)
			srv_net_adopt(n, h[i].fd, h[i].proto);
		free(h);
		while (r) {
			struct srv_req *next = r->next;
			srv_req_finish(r);
			r = next;
		}
	}
	for (int b = 0; b < 2; b++) {
		if (!n->batch[b].head)
			continue;
		srv_pool_submit(b == 0 ? n->srv->rpool : n->srv->pool, n->batch[b].head,
				n->batch[b].tail, n->batch[b].n);
		n->batch[b].head = n->batch[b].tail = NULL;
		n->batch[b].n = 0;
	}
}

int srv_net_tick(struct srv_net *n)
{
	struct srv_server *s = n->srv;
	int64_t now = st_mono_us();
	int stopping = atomic_load(&s->stopping);
	struct srv_conn *next;
	for (struct srv_conn *c = n->conns; c; c = next) {
		next = c->next;
		srv_conn_assert_state(c);
		if (c->state != SRV_CONN_OPEN)
			continue;
		if (stopping) {
			srv_conn_update_read(c);
			if (now - atomic_load(&s->stop_us) > s->cfg.drain_timeout_us)
				srv_conn_close(c, "shutdown: drain timeout");
			else
				srv_conn_check_done(c);
			continue;
		}
		if (c->out_full_since && s->cfg.stall_timeout_us &&
		    now - c->out_full_since > s->cfg.stall_timeout_us) {
			atomic_fetch_add(&s->m.conns_dropped_slow, 1);
			st_warn("conn %llu: dropped: client does not read its responses "
				"(%zu bytes unsent for over %lld ms)",
				(unsigned long long)c->id, n->be->out_pending(c),
				(long long)(s->cfg.stall_timeout_us / 1000));
			srv_conn_close(c, "stalled");
			continue;
		}
		if (s->cfg.frame_timeout_us && c->partial &&
		    now - c->frame_start_us > s->cfg.frame_timeout_us) {
			atomic_fetch_add(&s->m.conns_frame_timeout, 1);
			st_info("conn %llu: a frame incomplete for over %lld ms, closing",
				(unsigned long long)c->id, (long long)(s->cfg.frame_timeout_us / 1000));
			srv_conn_close(c, "frame timeout");
			continue;
		}
		if (s->cfg.handshake_timeout_us && !c->proven &&
		    now - c->created_us > s->cfg.handshake_timeout_us) {
			atomic_fetch_add(&s->m.conns_handshake_timeout, 1);
			st_debug("conn %llu: no %s within %lld ms, closing", (unsigned long long)c->id,
				 s->cfg.token ? "authentication" : "request",
				 (long long)(s->cfg.handshake_timeout_us / 1000));
			srv_conn_close(c, "handshake timeout");
			continue;
		}
		if (s->cfg.idle_timeout_us && c->inflight == 0 &&
		    n->be->out_pending(c) == 0 &&
		    now - c->last_active_us > s->cfg.idle_timeout_us) {
			atomic_fetch_add(&s->m.conns_idle_closed, 1);
			st_info("conn %llu: idle for over %lld ms, closing", (unsigned long long)c->id,
				(long long)(s->cfg.idle_timeout_us / 1000));
			srv_conn_close(c, "idle");
		}
	}
	n->last_tick_us = now;
	return stopping && n->conns == NULL;
}
