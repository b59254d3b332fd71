/* The replica side: one thread per replicated shard connects to the shard's primary, says
 * where it is (replication id + next sequence), and applies what comes back: registry
 * updates, write batches (each with its position, atomically), heartbeats, resyncs.
 * Errors close the connection and retry with backoff; the position lives in the shard, so
 * a restart resumes exactly where the last applied batch ended. */
#include "replication/repl_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_log.h"
#include "common/st_time.h"

#define BACKOFF_MIN_US 50000
#define BACKOFF_MAX_US 2000000
#define RECV_TIMEOUT_US 5000000 /* the primary heartbeats every 100 ms */

void repl_replica_kick(struct repl_shard *sh)
{
	if (sh->fd >= 0)
		shutdown(sh->fd, SHUT_RDWR);
}

/* ACK: next u64, the epoch this replica follows u64 (invariant 8). */
static int send_ack(struct repl_shard *sh, int fd, uint64_t next, struct st_error *err)
{
	pthread_mutex_lock(&sh->r->mu);
	uint64_t epoch = sh->version;
	pthread_mutex_unlock(&sh->r->mu);
	struct repl_wbuf w = {0};
	repl_w_u64(&w, next);
	repl_w_u64(&w, epoch);
	int rc = w.bad ? st_error_set(err, ST_ENOMEM, "out of memory")
		       : repl_send(fd, REPL_ACK, w.p, w.n, err);
	repl_wbuf_release(&w);
	return rc;
}

static int send_hello(struct repl *r, struct repl_shard *sh, int fd, const struct kv_repl_pos *pos,
		      int resync, struct st_error *err)
{
	struct repl_wbuf w = {0};
	pthread_mutex_lock(&r->mu);
	uint64_t version = sh->version;
	pthread_mutex_unlock(&r->mu);
	repl_w_u32(&w, REPL_PROTO_VERSION);
	repl_w_u32(&w, (uint32_t)sh->shard);
	repl_w_u64(&w, version);
	repl_w_str(&w, r->layout.nodes[r->self].name);
	repl_w_str(&w, pos->replid);
	repl_w_u64(&w, pos->next_seq ? pos->next_seq : 1);
	repl_w_u32(&w, resync ? REPL_HELLO_RESYNC : 0);
	/* the history this copy wrote itself, if it was a primary: a primary that forked from
	 * it may have it undo its divergent tail instead of resyncing (REWIND) */
	char own[KV_REPLID_MAX];
	int rc = repl_shard_replid(r, sh->shard, own, err);
	if (rc) {
		repl_wbuf_release(&w);
		return rc;
	}
	repl_w_str(&w, own);
	repl_w_u64(&w, kv_shard_latest_seq(r->db, sh->shard) + 1);
	rc = w.bad ? st_error_set(err, ST_ENOMEM, "out of memory")
		       : repl_send(fd, REPL_HELLO, w.p, w.n, err);
	repl_wbuf_release(&w);
	return rc;
}

static void tailing(struct repl *r, struct repl_shard *sh)
{
	pthread_mutex_lock(&r->mu);
	/* a shard that asked for a resync is not tailing until the copy is installed */
	if (sh->state == REPL_S_CONNECTING && !sh->want_resync)
		repl_set_state(r, sh, REPL_S_TAILING);
	sh->heard_us = repl_now_us();
	pthread_mutex_unlock(&r->mu);
}

struct apply_arg {
	const void *data;
	size_t len;
	const struct kv_repl_pos *pos;
	struct st_error *err;
};

static int apply_batch(struct repl *r, struct repl_shard *sh, void *arg)
{
	struct apply_arg *a = arg;
	return kv_shard_apply_at(r->db, sh->shard, a->data, a->len, a->pos, a->err);
}

#define MERGE_MAX_BYTES (4u << 20)
#define MERGE_MAX_BATCHES 4096

/* A BATCH frame's sequence and write batch (its first 12 bytes: sequence u64le, count
 * u32le), checked against the position it must continue. */
static int batch_parse(const struct repl_frame *f, uint64_t next, uint64_t *seq,
		       const uint8_t **data, size_t *n, uint32_t *count, struct st_error *err)
{
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	*seq = repl_r_u64(&rb);
	*data = repl_r_rest(&rb, n);
	if (rb.bad || *n < 12)
		return st_error_set(err, ST_EPROTO, "malformed BATCH frame");
	uint64_t bseq;
	kv_batch_header(*data, *n, &bseq, count); /* n >= 12: checked above */
	/* the batch must be the one that continues our position exactly */
	if (*seq != bseq || *seq > next || *seq + *count <= next || *count == 0)
		return st_error_set(err, ST_EPROTO, "batch at sequence %llu (+%u) does not continue "
				    "position %llu", (unsigned long long)*seq, *count,
				    (unsigned long long)next);
	return 0;
}

/* Appends the BATCH frames already received behind the first (each continuing the one
 * before exactly) to the merged batch m: one RocksDB write and one ack for a burst. */
static int batch_merge_more(struct repl_reader *rd, struct repl_wbuf *m, uint64_t *next,
			    struct st_error *err)
{
	uint8_t type;
	int rc = 0;
	for (int k = 1; !rc && k < MERGE_MAX_BATCHES && m->n < MERGE_MAX_BYTES &&
			repl_reader_ready(rd, &type) && type == REPL_BATCH;
	     k++) {
		struct repl_frame g;
		uint64_t seq;
		const uint8_t *data;
		size_t n;
		uint32_t count;
		if ((rc = repl_reader_next(rd, REPL_FRAME_MAX, &g, err)))
			break;
		rc = batch_parse(&g, *next, &seq, &data, &n, &count, err);
		if (!rc && seq != *next)
			rc = st_error_set(err, ST_EPROTO, "batch at sequence %llu overlaps %llu",
					  (unsigned long long)seq, (unsigned long long)*next);
		if (!rc) {
			repl_w_bytes(m, data + 12, n - 12);
			*next = seq + count;
		}
		repl_frame_release(&g);
	}
	return rc;
}

static int on_batch(struct repl *r, struct repl_shard *sh, struct repl_reader *rd,
		    struct kv_repl_pos *pos, const struct repl_frame *f, struct st_error *err)
{
	uint64_t seq;
	const uint8_t *data;
	size_t n;
	uint32_t count;
	int rc = batch_parse(f, pos->next_seq, &seq, &data, &n, &count, err);
	if (rc)
		return rc;
	struct kv_repl_pos np = *pos;
	np.next_seq = seq + count;
	struct repl_wbuf m = {0};
	if (seq == pos->next_seq) {
		/* the batches right behind it are merged into one write with the position */
		repl_w_bytes(&m, data, n);
		rc = batch_merge_more(rd, &m, &np.next_seq, err);
		if (!rc && m.bad)
			rc = st_error_set(err, ST_ENOMEM, "out of memory");
		if (!rc) {
			uint32_t total = (uint32_t)(np.next_seq - seq);
			for (int i = 0; i < 4; i++)
				m.p[8 + i] = (uint8_t)(total >> (8 * i));
			data = m.p;
			n = m.n;
		}
	}
	if (!rc) {
		struct apply_arg a = {data, n, &np, err};
		rc = repl_role_apply(sh, apply_batch, &a, err);
	}
	repl_wbuf_release(&m);
	if (rc < 0)
		return rc;
	*pos = np;
	atomic_fetch_add(&r->m.batches_applied, 1);
	pthread_mutex_lock(&r->mu);
	sh->applied_next = np.next_seq;
	if (rc == KV_APPLY_INGESTED) {
		/* Preloaded files are not in the WAL: fetch a copy that has them. The shard
		 * leaves TAILING in the same critical section that publishes the position, so
		 * no status reader sees "tailing, caught up" while the ingested rows are missing. */
		sh->want_resync = 1;
		if (sh->state == REPL_S_TAILING)
			repl_set_state(r, sh, REPL_S_CONNECTING);
	}
	pthread_mutex_unlock(&r->mu);
	if (rc == KV_APPLY_INGESTED) {
		st_info("replication: shard %d: the primary ingested files: resync", sh->shard);
		if (ST_FAULT("repl.ingest.slow"))
			usleep(1500000); /* widens the window a status reader must not see as caught up */
		return st_error_set(err, ST_ECANCELED, "resync after an ingestion");
	}
	return send_ack(sh, rd->fd, np.next_seq, err);
}

static int on_heartbeat(struct repl *r, struct repl_shard *sh, const struct repl_frame *f,
			struct st_error *err)
{
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	uint64_t latest = repl_r_u64(&rb);
	int64_t clock = (int64_t)repl_r_u64(&rb);
	uint64_t epoch = repl_r_u64(&rb);
	if (rb.bad || rb.off != rb.n)
		return st_error_set(err, ST_EPROTO, "malformed HEARTBEAT frame");
	pthread_mutex_lock(&r->mu);
	if (epoch < sh->version) {
		/* invariant 8: a primary of an older epoch is fenced: stop following it */
		uint64_t mine = sh->version;
		pthread_mutex_unlock(&r->mu);
		return st_error_set(err, ST_EBUSY, "primary %s streams under epoch %llu, older than "
				    "%llu: fenced", r->layout.nodes[sh->primary].name,
				    (unsigned long long)epoch, (unsigned long long)mine);
	}
	sh->primary_latest = latest;
	sh->primary_clock_us = clock;
	/* the stream is ordered: every batch sent before this heartbeat is applied */
	if (clock > sh->complete_us)
		sh->complete_us = clock;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* ---- REWIND: joining the primary's history at its fork point ---- */

struct rewind_arg {
	uint64_t undo_from;
	const struct kv_repl_pos *to;
	const struct kv_repl_pos *pos; /* this copy's position */
	const char *from;               /* the fork: history from before from_next */
	uint64_t from_next;
	struct kv_rewind_report rep;
	struct st_error *err;
};

static int locate_cb(void *arg, uint64_t seq, uint64_t local_seq, const void *data, size_t len)
{
	*(uint64_t *)arg = local_seq;
	return KV_FOLLOW_DONE;
}

/* A replica of the forked history joins at the fork point only from exactly there. Beyond
 * it, it holds batches the new primary never had: its own sequences from the one that holds
 * the fork point's batch on are undone (found from the positions in its WAL). Behind it, it
 * lacks batches (the primary sends them first: this is a REWIND it cannot take). */
static int rewind_locate(struct repl *r, struct repl_shard *sh, struct rewind_arg *a)
{
	if (a->undo_from || strcmp(a->pos->replid, a->from) || !a->pos->next_seq ||
	    a->pos->next_seq == a->from_next)
		return 0;
	if (a->pos->next_seq < a->from_next)
		return st_error_set(a->err, ST_ENOTFOUND, "this copy stands at %llu of history %s, "
				    "before the fork point %llu", (unsigned long long)a->pos->next_seq,
				    a->from, (unsigned long long)a->from_next);
	uint64_t local = 0, reached;
	int rc = kv_shard_followed(r->db, sh->shard, a->from, a->from_next, a->pos->next_seq,
				   kv_shard_latest_seq(r->db, sh->shard) + 1, locate_cb, &local,
				   &reached, a->err);
	if (!rc && !local)
		rc = st_error_set(a->err, ST_ENOTFOUND, "this copy's WAL holds no batch of history "
				  "%s beyond %llu", a->from, (unsigned long long)a->from_next);
	a->undo_from = local;
	return rc;
}

static int do_rewind(struct repl *r, struct repl_shard *sh, void *arg)
{
	struct rewind_arg *a = arg;
	if (ST_FAULT("repl.rewind.nowal"))
		return st_error_set(a->err, ST_ENOTFOUND, "fault repl.rewind.nowal: the WAL does not "
				    "reach sequence %llu", (unsigned long long)a->undo_from);
	int rc = rewind_locate(r, sh, a);
	return rc ? rc : kv_shard_rewind(r->db, sh->shard, a->undo_from, a->to, &a->rep, a->err);
}

/* The primary forked from a history this copy holds: undo this copy's own writes after the
 * fork point (if it wrote that history as its primary), take the fork as its position, and
 * reconnect to stream from there. When the tail cannot be undone (the WAL no longer reaches
 * the fork point, or it holds an ingestion), the next connection asks for a full resync,
 * which discards the same tail. Either way the discarded range is logged and counted. */
static int on_rewind(struct repl *r, struct repl_shard *sh, const struct repl_frame *f,
		     const struct kv_repl_pos *pos, struct st_error *err)
{
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	struct kv_repl_pos to;
	char from[KV_REPLID_MAX];
	repl_r_str(&rb, to.replid, sizeof(to.replid));
	to.next_seq = repl_r_u64(&rb);
	uint64_t undo_from = repl_r_u64(&rb);
	repl_r_str(&rb, from, sizeof(from));
	uint64_t from_next = repl_r_u64(&rb);
	if (rb.bad || rb.off != rb.n || !to.replid[0] || !to.next_seq)
		return st_error_set(err, ST_EPROTO, "malformed REWIND frame");
	uint64_t end = kv_shard_latest_seq(r->db, sh->shard) + 1;
	struct st_error why = {0};
	struct rewind_arg a = {undo_from, &to, pos, from, from_next, {0}, &why};
	int rc = repl_role_apply(sh, do_rewind, &a, &why);
	undo_from = a.undo_from;
	if (rc == ST_ECANCELED)
		return st_error_set(err, rc, "%s", why.msg);
	const char *primary = r->layout.nodes[sh->primary].name;
	uint64_t n = undo_from && end > undo_from ? end - undo_from : 0;
	if (n) {
		atomic_fetch_add(&r->m.divergent_discarded, n);
		atomic_fetch_add(&r->m.divergent_discards, 1);
	}
	if (rc) {
		atomic_fetch_add(&r->m.rejoin_resyncs, 1);
		pthread_mutex_lock(&r->mu);
		sh->want_resync = 1;
		pthread_mutex_unlock(&r->mu);
		if (n)
			st_warn("replication: shard %d: rejoining %s: discarding %llu divergent "
				"sequences %llu..%llu by a full resync: cannot truncate in place: %s",
				sh->shard, primary, (unsigned long long)n,
				(unsigned long long)undo_from, (unsigned long long)(end - 1), why.msg);
		else
			st_warn("replication: shard %d: cannot join %s at its fork point (%s): full "
				"resync", sh->shard, primary, why.msg);
		return st_error_set(err, ST_ECANCELED, "resync after a failed rewind");
	}
	atomic_fetch_add(&r->m.rejoin_truncations, 1);
	pthread_mutex_lock(&r->mu);
	sh->applied_next = to.next_seq;
	pthread_mutex_unlock(&r->mu);
	if (n)
		st_warn("replication: shard %d: rejoining %s: truncated in place %llu divergent "
			"sequences %llu..%llu (%llu write batches, %llu cell versions) that the new "
			"primary never had; continuing from its sequence %llu", sh->shard, primary, (unsigned long long)n,
			(unsigned long long)undo_from, (unsigned long long)(end - 1),
			(unsigned long long)a.rep.batches, (unsigned long long)a.rep.keys,
			(unsigned long long)to.next_seq);
	else
		st_info("replication: shard %d: joined %s at its fork point (history %s at %llu): "
			"nothing to discard, continuing from its sequence %llu", sh->shard, primary,
			from, (unsigned long long)from_next, (unsigned long long)to.next_seq);
	return st_error_set(err, ST_ECANCELED, "reconnect after a rewind");
}

/* One connection's life: HELLO, then frames until an error. */
static int session(struct repl *r, struct repl_shard *sh, int fd, struct st_error *err)
{
	struct kv_repl_pos pos;
	int rc = kv_shard_repl_pos(r->db, sh->shard, &pos, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&r->mu);
	int resync = sh->want_resync;
	sh->applied_next = pos.next_seq;
	pthread_mutex_unlock(&r->mu);
	if ((rc = send_hello(r, sh, fd, &pos, resync, err)))
		return rc;
	struct repl_reader rd;
	repl_reader_init(&rd, fd);
	while (!rc && !atomic_load(&r->stopping)) {
		struct repl_frame f;
		if ((rc = repl_reader_next(&rd, REPL_FRAME_MAX, &f, err)))
			break;
		pthread_mutex_lock(&r->mu);
		sh->heard_us = repl_now_us();
		pthread_mutex_unlock(&r->mu);
		switch (f.type) {
		case REPL_REGISTRY:
			rc = kv_registry_install(r->db, (const char *)f.payload, f.len, err);
			rc = rc > 0 ? 0 : rc;
			break;
		case REPL_BATCH:
			tailing(r, sh);
			rc = on_batch(r, sh, &rd, &pos, &f, err);
			break;
		case REPL_HEARTBEAT:
			tailing(r, sh);
			rc = on_heartbeat(r, sh, &f, err);
			break;
		case REPL_REWIND:
			rc = on_rewind(r, sh, &f, &pos, err);
			break;
		case REPL_RESYNC:
			rc = repl_resync_recv(r, sh, &rd, &f, &pos, err);
			if (!rc) {
				pthread_mutex_lock(&r->mu);
				sh->want_resync = 0;
				pthread_mutex_unlock(&r->mu);
				rc = send_ack(sh, fd, pos.next_seq, err);
			}
			break;
		case REPL_ERROR: {
			struct repl_rbuf rb = {f.payload, f.len, 0, 0};
			int code = (int)repl_r_u32(&rb);
			char msg[400];
			repl_r_str(&rb, msg, sizeof(msg));
			rc = st_error_set(err, code < 0 && code >= ST_ERR_FIRST ? code : ST_ECLOSED,
					  "primary %s: %s", r->layout.nodes[sh->primary].name, msg);
			break;
		}
		default:
			rc = st_error_set(err, ST_EPROTO, "unexpected frame type %u from the primary",
					  f.type);
		}
		repl_frame_release(&f);
	}
	repl_reader_release(&rd);
	return rc;
}

/* Is the shard still one this thread should replicate? Returns the primary's index or -1. */
static int should_replicate(struct repl *r, struct repl_shard *sh)
{
	pthread_mutex_lock(&r->mu);
	int p = -1;
	if (!atomic_load(&r->stopping) &&
	    (sh->state == REPL_S_CONNECTING || sh->state == REPL_S_TAILING ||
	     sh->state == REPL_S_RESYNCING))
		p = sh->primary;
	if (p < 0)
		sh->thread_started = 0; /* the thread exits; joined by whoever restarts it */
	pthread_mutex_unlock(&r->mu);
	return p;
}

/* Sleeps up to us, and less when the shard's primary changes meanwhile (an election: the new
 * primary needs its replicas at once, for semi-sync writes). */
static void backoff_sleep(struct repl *r, struct repl_shard *sh, int primary, int64_t us)
{
	int64_t end = repl_now_us() + us;
	while (!atomic_load(&r->stopping) && repl_now_us() < end) {
		pthread_mutex_lock(&r->mu);
		int moved = sh->primary != primary;
		pthread_mutex_unlock(&r->mu);
		if (moved)
			return;
		usleep(10000);
	}
}

static void *replica_main(void *arg)
{
	struct repl_shard *sh = arg;
	struct repl *r = sh->r;
	int64_t backoff = BACKOFF_MIN_US;
	int primary;
	while ((primary = should_replicate(r, sh)) >= 0) {
		struct st_error err = {0};
		const char *addr = r->layout.nodes[primary].repl_addr;
		int fd = repl_connect(addr, 2000000, &err);
		if (fd >= 0) {
			repl_set_timeouts(fd, r->o.send_timeout_us, RECV_TIMEOUT_US);
			int64_t connected_us = repl_now_us();
			pthread_mutex_lock(&r->mu);
			sh->fd = fd;
			int moved = sh->primary != primary;
			pthread_mutex_unlock(&r->mu);
			int rc = moved ? 0 : session(r, sh, fd, &err);
			pthread_mutex_lock(&r->mu);
			sh->fd = -1;
			close(fd);
			if (sh->state == REPL_S_TAILING || sh->state == REPL_S_RESYNCING)
				repl_set_state(r, sh, REPL_S_CONNECTING);
			/* a session that streamed starts the backoff over; a kick for a requested
			 * resync reconnects at once (the backoff of failed connects at start-up
			 * must not delay it by seconds) */
			int streamed = sh->heard_us >= connected_us;
			int kicked = streamed && sh->want_resync;
			if (streamed)
				backoff = BACKOFF_MIN_US;
			pthread_mutex_unlock(&r->mu);
			if (rc == ST_ECANCELED || (kicked && !atomic_load(&r->stopping))) {
				backoff = BACKOFF_MIN_US; /* a deliberate reconnect (resync) */
				continue;
			}
			if (rc == ST_EPROTO || rc == ST_ECORRUPT)
				atomic_fetch_add(&r->m.proto_errors, 1);
		}
		if (atomic_load(&r->stopping))
			break;
		pthread_mutex_lock(&r->mu);
		snprintf(sh->last_error, sizeof(sh->last_error), "%s", err.msg);
		pthread_mutex_unlock(&r->mu);
		if (err.msg[0])
			st_info("replication: shard %d: %s (retry in %lld ms)", sh->shard, err.msg,
				(long long)(backoff / 1000));
		atomic_fetch_add(&r->m.reconnects, 1);
		backoff_sleep(r, sh, primary, backoff);
		backoff = backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : backoff * 2;
	}
	return NULL;
}

int repl_replica_start(struct repl *r, struct repl_shard *sh, struct st_error *err)
{
	/* mu held by the caller */
	if (sh->thread_started)
		return 0;
	if (sh->thread)
		pthread_join(sh->thread, NULL); /* a previous thread that has exited */
	sh->thread = 0;
	if (pthread_create(&sh->thread, NULL, replica_main, sh))
		return st_error_set(err, ST_ENOMEM, "cannot start a replica thread");
	sh->thread_started = 1;
	return 0;
}

void repl_replica_join_all(struct repl *r)
{
	for (int s = 0; s < r->layout.nshards; s++) {
		struct repl_shard *sh = &r->shards[s];
		pthread_mutex_lock(&r->mu);
		repl_replica_kick(sh);
		pthread_t t = sh->thread;
		sh->thread = 0;
		pthread_mutex_unlock(&r->mu);
		if (t)
			pthread_join(t, NULL);
	}
}
