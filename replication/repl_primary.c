/* The primary side: the replication listener, one thread per connection, and the stream of
 * a shard's WAL to a replica (its position checked, a resync when the WAL does not reach
 * back, the registry whenever it changes, heartbeats, acks, lag and send-timeout limits). */
#include "replication/repl_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_log.h"
#include "common/st_time.h"

#define HEARTBEAT_US 100000
#define HEARTBEAT_MIN_US 20000 /* under load: how tight a replica's completeness time is */
#define HELLO_TIMEOUT_US 5000000

static atomic_int_fast64_t stall_until_us; /* fault repl.send.stall */

/* Reads ACK frames of a streaming replica (its own thread: the sender may be blocked).
 * In async mode (no semi-sync writer ever waits for an ack) it reads every ACK_LAZY_US at
 * most, taking the acks that arrived meanwhile in one read instead of waking for each: the
 * acked positions feed only the lag in status and metrics, the lag limit and the WAL pin,
 * none of which needs milliseconds. Measured at 50 writers: half the reader's wake-ups and
 * CPU (docs/replication.md, "Replication benchmark"). With semi-sync, every ack is read at
 * once (sleeping only after the acks no writer could need cut a sixth of the wake-ups and
 * nothing measurable in CPU per write, for a delay when the faster replica changes). */
#define ACK_LAZY_US 2000
struct ack_reader {
	struct repl_peer *p;
	pthread_t thread;
	atomic_int dead;
};

static void *ack_main(void *arg)
{
	struct ack_reader *a = arg;
	struct repl_peer *p = a->p;
	struct repl *r = p->r;
	struct repl_reader rd; /* a burst of acks costs one read */
	repl_reader_init(&rd, p->fd);
	for (;;) {
		struct repl_frame f;
		struct st_error err = {0};
		if (repl_reader_next(&rd, 64, &f, &err))
			break;
		struct repl_rbuf rb = {f.payload, f.len, 0, 0};
		uint64_t next = f.type == REPL_ACK ? repl_r_u64(&rb) : 0;
		uint64_t epoch = repl_r_u64(&rb);
		repl_frame_release(&f);
		if (rb.bad || rb.off != rb.n || next == 0) {
			atomic_fetch_add(&r->m.proto_errors, 1);
			break;
		}
		pthread_mutex_lock(&r->mu);
		if (epoch > r->shards[p->shard].version) {
			/* invariant 8: the replica follows a newer epoch: this stream is fenced */
			pthread_mutex_unlock(&r->mu);
			st_warn("replication: shard %d: replica %s acknowledges under epoch %llu, newer "
				"than this node's: its acks no longer count", p->shard, p->node,
				(unsigned long long)epoch);
			break;
		}
		if (next > p->sent_next) {
			/* a replica acknowledging what it was never sent is lying or broken */
			pthread_mutex_unlock(&r->mu);
			atomic_fetch_add(&r->m.proto_errors, 1);
			break;
		}
		if (next > p->acked_next)
			p->acked_next = next;
		struct repl_sync_waiter *ready = repl_sync_acked(r, p->shard);
		pthread_mutex_unlock(&r->mu);
		repl_sync_wake(ready);
		uint8_t type;
		if (!r->o.min_sync_replicas && !repl_reader_ready(&rd, &type) &&
		    !atomic_load(&r->stopping))
			usleep(ACK_LAZY_US);
	}
	repl_reader_release(&rd);
	atomic_store(&a->dead, 1);
	shutdown(p->fd, SHUT_RDWR);
	pthread_mutex_lock(&r->mu);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct stream {
	struct repl_peer *p;
	uint64_t next;
	uint64_t reg_version;
	int64_t last_send_us;
	int64_t last_hb_us;
	int64_t pass_clock_us; /* primary wall clock when the current pass over the WAL began */
	struct kv_wal_tail *tail; /* open at `next` while streaming */
	struct repl_wbuf out;     /* frames queued during a pass over the WAL, sent together */
	struct st_error *err;
};

#define OUT_FLUSH_BYTES (256u << 10)

/* Sends the queued frames (every other send goes after them: the stream stays ordered). */
static int flush_out(struct stream *st)
{
	return repl_send_wbuf(st->p->fd, &st->out, st->err);
}

static int send_registry(struct stream *st)
{
	struct repl *r = st->p->r;
	char *js;
	uint64_t v;
	int rc = kv_registry_export(r->db, &js, &v, st->err);
	if (rc)
		return rc;
	if (!(rc = flush_out(st)))
		rc = repl_send(st->p->fd, REPL_REGISTRY, js, strlen(js), st->err);
	free(js);
	if (!rc)
		st->reg_version = v;
	return rc;
}

static int send_error_count(struct repl *r, int rc, struct st_error *err)
{
	if (rc && strstr(err->msg, "timed out"))
		atomic_fetch_add(&r->m.send_timeouts, 1);
	return rc;
}

static int batch_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct stream *st = arg;
	struct repl *r = st->p->r;
	if (atomic_load(&r->stopping))
		return ST_ECANCELED;
	if (kv_registry_version(r->db) != st->reg_version) {
		int rc = send_registry(st);
		if (rc)
			return rc;
	}
	if (ST_FAULT("repl.send.stall")) {
		/* every stream of this node stops sending for 3 s: writes commit here and
		 * wait for acknowledgements that cannot come (tests/integ/repl_etcd_fence.sh) */
		st_warn("replication: fault repl.send.stall: streams stall for 3 s");
		atomic_store(&stall_until_us, repl_now_us() + 3000000);
	}
	while (repl_now_us() < atomic_load(&stall_until_us) && !atomic_load(&r->stopping))
		usleep(10000);
	uint64_t bseq;
	uint32_t count;
	if (kv_batch_header(data, len, &bseq, &count))
		return ST_ECORRUPT; /* the store delivers whole batches: never */
	struct repl_wbuf w = {0};
	repl_w_u64(&w, seq);
	repl_w_bytes(&w, data, len);
	/* before the send: the replica may apply and ack it before the send returns */
	pthread_mutex_lock(&r->mu);
	st->p->sent_next = seq + count;
	pthread_mutex_unlock(&r->mu);
	int rc = 0;
	if (w.bad)
		rc = st_error_set(st->err, ST_ENOMEM, "out of memory");
	else
		repl_w_frame(&st->out, REPL_BATCH, w.p, w.n);
	repl_wbuf_release(&w);
	/* queued: sent at the end of the pass (stream_loop), or now when the queue is large */
	if (!rc && st->out.n >= OUT_FLUSH_BYTES)
		rc = flush_out(st);
	if (rc)
		return send_error_count(r, rc, st->err);
	atomic_fetch_add(&r->m.batches_sent, 1);
	atomic_fetch_add(&r->m.bytes_sent, len);
	st->next = seq + count;
	st->last_send_us = repl_now_us();
	return 0;
}

/* A heartbeat says: the primary's latest sequence, and a time before which every write
 * committed on the primary has already been sent on this stream (the start of the pass that
 * just reached the end of the WAL). A replica that has applied everything before the
 * heartbeat is complete up to that time. */
static int send_heartbeat(struct stream *st, uint64_t latest)
{
	struct repl *r = st->p->r;
	pthread_mutex_lock(&r->mu);
	uint64_t epoch = r->shards[st->p->shard].version;
	pthread_mutex_unlock(&r->mu);
	struct repl_wbuf w = {0};
	repl_w_u64(&w, latest);
	repl_w_u64(&w, (uint64_t)st->pass_clock_us);
	repl_w_u64(&w, epoch);
	int rc = w.bad ? ST_ENOMEM : flush_out(st);
	if (!rc)
		rc = repl_send(st->p->fd, REPL_HEARTBEAT, w.p, w.n, st->err);
	repl_wbuf_release(&w);
	st->last_send_us = st->last_hb_us = repl_now_us();
	return send_error_count(st->p->r, rc, st->err);
}

/* Is this node still the shard's primary? */
static int still_primary(struct repl *r, int shard)
{
	pthread_mutex_lock(&r->mu);
	int ok = r->shards[shard].state == REPL_S_PRIMARY;
	pthread_mutex_unlock(&r->mu);
	return ok;
}

static int do_resync(struct stream *st, const char *replid)
{
	struct repl *r = st->p->r;
	uint64_t next;
	kv_wal_tail_close(st->tail);
	st->tail = NULL;
	int rc = flush_out(st);
	if (!rc)
		rc = repl_resync_send(r, st->p, replid, &next, st->err);
	if (rc)
		return send_error_count(r, rc, st->err);
	st->next = next;
	return 0;
}

/* A stream outlives its node's primacy while the copy it streams is still the same (a
 * graceful promotion fences the old primary, and its replicas drain what it has), and ends
 * as soon as that copy is replaced or the node starts following another primary's stream. */
static int may_stream(struct repl *r, int shard, const char *replid)
{
	pthread_mutex_lock(&r->mu);
	enum repl_state s = r->shards[shard].state;
	pthread_mutex_unlock(&r->mu);
	if (s == REPL_S_PRIMARY)
		return 1;
	char now[KV_REPLID_MAX];
	struct st_error err;
	return (s == REPL_S_FENCED || s == REPL_S_CONNECTING) &&
	       !repl_shard_replid(r, shard, now, &err) && !strcmp(now, replid);
}

static int stream_loop(struct stream *st, const char *replid, struct ack_reader *ack)
{
	struct repl_peer *p = st->p;
	struct repl *r = p->r;
	int rc = 0;
	while (!rc && !atomic_load(&r->stopping) && !atomic_load(&ack->dead)) {
		if (!may_stream(r, p->shard, replid))
			return st_error_set(st->err, ST_EBUSY, "no longer the primary of shard %d",
					    p->shard);
		int64_t pass_start = st_now_us();
		uint64_t latest0 = kv_shard_latest_seq(r->db, p->shard); /* >= every write
									  * committed before */
		if (!st->tail && (rc = kv_wal_tail_open(r->db, p->shard, st->next, &st->tail, st->err)))
			break;
		rc = kv_wal_tail_read(st->tail, batch_cb, st, st->err);
		if (rc != ST_ENOTFOUND) {
			/* what the pass queued goes out now (the batches sent before the WAL was
			 * found short go before the resync, flushed there) */
			int frc = flush_out(st);
			rc = rc ? rc : send_error_count(r, frc, st->err);
		}
		if (rc == ST_ENOTFOUND) {
			st_info("replication: shard %d: WAL does not reach %llu for %s: resync",
				p->shard, (unsigned long long)st->next, p->node);
			rc = do_resync(st, replid);
			continue;
		}
		if (rc)
			break;
		uint64_t latest = kv_shard_latest_seq(r->db, p->shard);
		pthread_mutex_lock(&r->mu);
		uint64_t acked = p->acked_next;
		pthread_mutex_unlock(&r->mu);
		if (r->o.max_lag_seq && latest + 1 > acked + r->o.max_lag_seq) {
			atomic_fetch_add(&r->m.lag_disconnects, 1);
			return st_error_set(st->err, ST_ELIMIT,
					    "replica %s is %llu sequences behind (limit %llu)", p->node,
					    (unsigned long long)(latest + 1 - acked),
					    (unsigned long long)r->o.max_lag_seq);
		}
		if (st->next > latest0) /* every write committed before pass_start was sent (a
					 * pass may stop at a batch not yet in the ring) */
			st->pass_clock_us = pass_start;
		if (repl_now_us() - st->last_send_us >= HEARTBEAT_US ||
		    repl_now_us() - st->last_hb_us >= HEARTBEAT_MIN_US)
			rc = send_heartbeat(st, latest);
		if (!rc && kv_registry_version(r->db) != st->reg_version)
			rc = send_registry(st);
		if (!rc) /* for the next batch in the shard's ring (a wake per run of batches) */
			kv_wal_tail_wait(st->tail, HEARTBEAT_US / 5);
	}
	return rc;
}

static void join_plan(struct repl *r, int shard, const char *mine, const char *theirs,
		      uint64_t next, const struct kv_repl_pos *own, uint32_t flags,
		      struct repl_join *out)
{
	struct kv_repl_pos pos = {{0}, next};
	snprintf(pos.replid, sizeof(pos.replid), "%s", theirs);
	struct kv_repl_fork fork;
	struct st_error err;
	int have_fork = kv_shard_fork_get(r->db, shard, &fork, &err) == 0;
	repl_join_plan(mine, have_fork ? &fork : NULL, &pos, own, flags & REPL_HELLO_RESYNC, out);
}

/* The replica holds the history this primary forked from: it undoes what it has beyond the
 * fork point (if anything) and reconnects at the fork. */
static void send_rewind(struct repl_peer *p, int shard, const char *node, const char *mine,
			const struct repl_join *j)
{
	struct kv_repl_fork fork;
	struct st_error err = {0};
	if (kv_shard_fork_get(p->r->db, shard, &fork, &err))
		return;
	struct repl_wbuf w = {0};
	repl_w_str(&w, mine);
	repl_w_u64(&w, j->next);
	repl_w_u64(&w, j->undo_from);
	repl_w_str(&w, fork.from_replid);
	repl_w_u64(&w, fork.from_next);
	st_info("replication: shard %d: replica %s holds history %s at or beyond the fork point "
		"%llu: it rejoins at %llu%s", shard, node, fork.from_replid,
		(unsigned long long)fork.from_next, (unsigned long long)j->next,
		j->undo_from ? " after truncating its divergent tail" : "");
	if (!w.bad)
		repl_send(p->fd, REPL_REWIND, w.p, w.n, &err);
	repl_wbuf_release(&w);
}

static int followed_cb(void *arg, uint64_t seq, uint64_t local_seq, const void *data, size_t len)
{
	(void)local_seq;
	return batch_cb(arg, seq, data, len);
}

/* The replica follows the history this primary forked from and stands behind the fork
 * point: this copy applied that history's batches up to the fork point itself, so it sends
 * the missing ones from its own WAL (mapped back onto that history's sequences), then
 * REWIND with nothing to undo, and waits for the replica to close (so that its own close
 * sends no reset that could discard the REWIND unread). Non-zero when its WAL does not map
 * them (the caller resyncs the replica in the same session). */
static int send_catchup(struct stream *st, int shard, const char *mine, const struct repl_join *j)
{
	struct repl_peer *p = st->p;
	struct repl *r = p->r;
	struct kv_repl_fork fork;
	uint64_t from = st->next, reached = 0;
	int rc = kv_shard_fork_get(r->db, shard, &fork, st->err);
	if (!rc)
		rc = send_registry(st);
	if (!rc)
		rc = kv_shard_followed(r->db, shard, fork.from_replid, from, fork.from_next,
				       fork.to_next, followed_cb, st, &reached, st->err);
	if (!rc && reached != fork.from_next)
		rc = st_error_set(st->err, ST_ENOTFOUND, "this copy's WAL maps history %s up to %llu, "
				  "not to the fork point %llu", fork.from_replid,
				  (unsigned long long)reached, (unsigned long long)fork.from_next);
	if (!rc)
		rc = flush_out(st);
	if (rc) {
		st_warn("replication: shard %d: replica %s of history %s at %llu cannot catch up to "
			"the fork point from this copy's WAL: %s", shard, p->node, fork.from_replid,
			(unsigned long long)from, st->err->msg);
		return rc;
	}
	st_info("replication: shard %d: replica %s: sent sequences %llu..%llu of history %s from "
		"this copy's WAL (applied before the fork)", shard, p->node, (unsigned long long)from,
		(unsigned long long)fork.from_next - 1, fork.from_replid);
	atomic_fetch_add(&r->m.rejoin_catchups, 1);
	send_rewind(p, shard, p->node, mine, j);
	shutdown(p->fd, SHUT_WR);
	repl_set_timeouts(p->fd, HELLO_TIMEOUT_US, HELLO_TIMEOUT_US);
	char buf[512];
	while (recv(p->fd, buf, sizeof(buf), 0) > 0)
		; /* its acks, until it closes */
	return 0;
}

/* Serves one replica: HELLO checks, then resync or WAL from its position. */
static void serve_replica(struct repl_peer *p, const struct repl_frame *f)
{
	struct repl *r = p->r;
	struct st_error err = {0};
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	uint32_t ver = repl_r_u32(&rb), shard = repl_r_u32(&rb);
	uint64_t lver = repl_r_u64(&rb);
	char node[REPL_NAME_MAX], theirs[KV_REPLID_MAX], mine[KV_REPLID_MAX];
	repl_r_str(&rb, node, sizeof(node));
	repl_r_str(&rb, theirs, sizeof(theirs));
	uint64_t next = repl_r_u64(&rb);
	uint32_t flags = repl_r_u32(&rb);
	struct kv_repl_pos own;
	repl_r_str(&rb, own.replid, sizeof(own.replid));
	own.next_seq = repl_r_u64(&rb);
	int rc = 0;
	if (rb.bad || rb.off != rb.n)
		rc = st_error_set(&err, ST_EPROTO, "malformed HELLO");
	else if (ver != REPL_PROTO_VERSION)
		rc = st_error_set(&err, ST_EPROTO, "replication protocol %u, this node speaks %d",
				  ver, REPL_PROTO_VERSION);
	else if (shard >= (uint32_t)r->layout.nshards)
		rc = st_error_set(&err, ST_EINVAL, "no shard %u (there are %d)", shard,
				  r->layout.nshards);
	else if (!still_primary(r, (int)shard))
		rc = st_error_set(&err, ST_EBUSY, "EMOVED: this node is not the primary of shard %u",
				  shard);
	if (!rc) {
		pthread_mutex_lock(&r->mu);
		uint64_t my_version = r->shards[shard].version;
		pthread_mutex_unlock(&r->mu);
		if (lver > my_version)
			rc = st_error_set(&err, ST_EBUSY, "replica %s has layout version %llu, newer "
					  "than this primary's %llu: this node needs fencing", node,
					  (unsigned long long)lver, (unsigned long long)my_version);
	}
	if (!rc)
		rc = repl_shard_replid(r, (int)shard, mine, &err);
	uint64_t latest = rc ? 0 : kv_shard_latest_seq(r->db, (int)shard);
	if (!rc && !strcmp(theirs, mine) && next > latest + 1)
		rc = st_error_set(&err, ST_EINVAL, "replica %s claims sequence %llu of shard %u, "
				  "beyond this primary's latest %llu", node,
				  (unsigned long long)next, shard, (unsigned long long)latest);
	if (rc) {
		atomic_fetch_add(&r->m.proto_errors, rc == ST_EPROTO);
		st_warn("replication: refused %s: %s", node[0] ? node : "a peer", err.msg);
		repl_send_error(p->fd, rc, err.msg);
		return;
	}
	struct repl_join join;
	join_plan(r, (int)shard, mine, theirs, next, &own, flags, &join);
	if (join.kind == REPL_JOIN_REWIND) {
		send_rewind(p, (int)shard, node, mine, &join);
		return;
	}
	pthread_mutex_lock(&r->mu);
	p->shard = (int)shard;
	snprintf(p->node, sizeof(p->node), "%s", node);
	p->acked_next = p->sent_next = join.kind == REPL_JOIN_STREAM ? next : 0;
	pthread_mutex_unlock(&r->mu);
	st_info("replication: shard %u: replica %s connected at %llu%s", shard, node,
		(unsigned long long)next,
		join.kind == REPL_JOIN_RESYNC ? " (new replication id: resync)" : "");
	repl_set_timeouts(p->fd, r->o.send_timeout_us, 0);
	struct stream st = {.p = p, .next = next, .err = &err};
	struct ack_reader ack = {.p = p};
	if (join.kind == REPL_JOIN_CATCHUP) {
		if (!send_catchup(&st, (int)shard, mine, &join))
			goto out;
		join.kind = REPL_JOIN_RESYNC;
		memset(&err, 0, sizeof(err));
	}
	if ((rc = send_registry(&st)))
		goto out;
	if (join.kind == REPL_JOIN_RESYNC)
		rc = do_resync(&st, mine);
	if (rc)
		goto out;
	if (pthread_create(&ack.thread, NULL, ack_main, &ack)) {
		rc = st_error_set(&err, ST_ENOMEM, "cannot start a thread");
		goto out;
	}
	rc = stream_loop(&st, mine, &ack);
	kv_wal_tail_close(st.tail);
	shutdown(p->fd, SHUT_RDWR);
	pthread_join(ack.thread, NULL);
out:
	repl_wbuf_release(&st.out);
	if (rc && rc != ST_ECANCELED) {
		st_info("replication: shard %d: replica %s disconnected: %s", p->shard, node, err.msg);
		repl_send_error(p->fd, rc, err.msg);
	}
}

static void *peer_main(void *arg)
{
	struct repl_peer *p = arg;
	struct repl *r = p->r;
	struct repl_frame f;
	struct st_error err = {0};
	repl_set_timeouts(p->fd, HELLO_TIMEOUT_US, HELLO_TIMEOUT_US);
	if (repl_recv(p->fd, 1u << 20, &f, &err) == 0) {
		if (f.type == REPL_HELLO)
			serve_replica(p, &f);
		else if (f.type == REPL_ADMIN)
			repl_admin_serve(r, p->fd, &f);
		else
			repl_send_error(p->fd, ST_EPROTO, "expected HELLO or ADMIN");
		repl_frame_release(&f);
	} else if (err.code == ST_EPROTO) {
		atomic_fetch_add(&r->m.proto_errors, 1);
		st_warn("replication: bad first frame from a peer: %s", err.msg);
		repl_send_error(p->fd, ST_EPROTO, err.msg);
	}
	pthread_mutex_lock(&r->mu);
	close(p->fd);
	p->fd = -1;
	p->done = 1;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Joins and frees finished peers (mu held). */
static void reap_peers(struct repl *r, int all)
{
	for (struct repl_peer **pp = &r->peers; *pp;) {
		struct repl_peer *p = *pp;
		if (!p->done && !all) {
			pp = &p->next;
			continue;
		}
		if (!p->done && p->fd >= 0)
			shutdown(p->fd, SHUT_RDWR);
		pthread_mutex_unlock(&r->mu);
		pthread_join(p->thread, NULL);
		pthread_mutex_lock(&r->mu);
		*pp = p->next;
		free(p);
	}
}

static void *accept_main(void *arg)
{
	struct repl *r = arg;
	while (!atomic_load(&r->stopping)) {
		struct pollfd pf = {r->lfd, POLLIN, 0};
		if (poll(&pf, 1, 200) <= 0)
			goto reap;
		int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			goto reap;
		int on = 1; /* small frames (batches, heartbeats) must not wait for Nagle */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		struct repl_peer *p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			goto reap;
		}
		p->r = r;
		p->fd = fd;
		p->shard = -1;
		pthread_mutex_lock(&r->mu);
		if (pthread_create(&p->thread, NULL, peer_main, p)) {
			close(fd);
			free(p);
		} else {
			p->next = r->peers;
			r->peers = p;
		}
		pthread_mutex_unlock(&r->mu);
	reap:
		pthread_mutex_lock(&r->mu);
		reap_peers(r, 0);
		pthread_mutex_unlock(&r->mu);
		repl_wal_retain(r);
	}
	return NULL;
}

int repl_listener_start(struct repl *r, struct st_error *err)
{
	const char *addr = r->layout.nodes[r->self].repl_addr;
	char host[256];
	const char *colon = strrchr(addr, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return st_error_set(err, ST_EINVAL, "replication address %s: need an IPv4 HOST:PORT",
				    addr);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int on = 1;
	setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(r->lfd, 64))
		return st_error_set(err, ST_EIO, "replication listener %s: %s", addr, strerror(errno));
	socklen_t sl = sizeof(sa);
	getsockname(r->lfd, (struct sockaddr *)&sa, &sl);
	r->port = ntohs(sa.sin_port);
	if (pthread_create(&r->accept_thread, NULL, accept_main, r))
		return st_error_set(err, ST_ENOMEM, "cannot start the replication listener");
	return 0;
}

void repl_listener_stop(struct repl *r)
{
	if (r->lfd < 0)
		return;
	pthread_join(r->accept_thread, NULL);
	pthread_mutex_lock(&r->mu);
	reap_peers(r, 1);
	pthread_mutex_unlock(&r->mu);
	close(r->lfd);
	r->lfd = -1;
}
