/* libstrata over a replicated cluster: the layout (CLUSTER request), one lazily opened
 * connection per node, and the routed operations. An operation's items (entities of a
 * multi-get, cells of a put) are grouped by the node that must answer them (the primary of
 * their shard, or a replica for reads when allowed), every node's part is sent before any
 * answer is awaited, and answers are scattered back to the items' input positions.
 *
 * Failures: an EMOVED answer, a node that cannot be reached or a broken connection makes
 * the client refetch the layout (the highest version any reachable node reports) and retry
 * the items not yet answered, with backoff, until the call's deadline (io_timeout_ms). A
 * write part whose connection broke after it was sent is not retried: its outcome is
 * unknown and the call fails with STRATA_EUNAVAILABLE. A replica that refuses a read
 * (ESTALE, or its own --replica-max-lag EMOVED) sends that read to the primary instead. */
#include "client/strata_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/st_slot.h"

/* Connections by address: kept until the handle closes, so a refetched layout that names
 * the same node reuses its connection and joins never see theirs freed. */
struct sc_conn_slot {
	char addr[300];
	strata *h;
};

struct sc_cluster {
	struct sc_layout l;
	int node_conn[SC_MAX_NODES]; /* layout node -> pool index, -1 = not opened yet */
	struct sc_conn_slot *pool;
	size_t npool, cappool;
	unsigned rr; /* round-robin over replicas */
};

/* ---- the layout ---- */

int sc_layout_from_pb(const Strata__ClusterLayout *pb, struct sc_layout *out,
		      struct strata_error *err)
{
	memset(out, 0, sizeof(*out));
	if (pb->nshards == 0 || pb->nshards > ST_SLOTS || pb->n_shards != pb->nshards)
		return sc_error(err, STRATA_EPROTO, "layout with %u shards (%zu described)",
				pb->nshards, pb->n_shards);
	if (pb->slots != ST_SLOTS || (pb->slot_rule && strcmp(pb->slot_rule, "mod")))
		return sc_error(err, STRATA_EPROTO, "layout with %u slots, rule '%s': this client "
				"knows %d slots, rule 'mod'", pb->slots,
				pb->slot_rule ? pb->slot_rule : "", ST_SLOTS);
	if (pb->n_nodes == 0 || pb->n_nodes > SC_MAX_NODES)
		return sc_error(err, STRATA_EPROTO, "layout with %zu nodes (1..%d)", pb->n_nodes,
				SC_MAX_NODES);
	out->version = pb->version;
	out->clustered = pb->has_clustered && pb->clustered;
	out->nshards = (int)pb->nshards;
	out->nnodes = (int)pb->n_nodes;
	for (int i = 0; i < out->nnodes; i++) {
		const Strata__ClusterNode *n = pb->nodes[i];
		const char *addr = n->addr ? n->addr : "";
		if (strlen(n->name) >= sizeof(out->nodes[i].name) ||
		    strlen(addr) >= sizeof(out->nodes[i].addr) ||
		    (out->clustered && (!addr[0] || !strrchr(addr, ':'))))
			return sc_error(err, STRATA_EPROTO, "layout node %d ('%.64s') has no usable "
					"address '%.300s'", i, n->name, addr);
		strcpy(out->nodes[i].name, n->name);
		strcpy(out->nodes[i].addr, addr);
	}
	out->shards = calloc((size_t)out->nshards, sizeof(*out->shards));
	if (!out->shards)
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	for (int s = 0; s < out->nshards; s++) {
		const Strata__ClusterShard *ps = pb->shards[s];
		struct sc_lshard *ls = &out->shards[s];
		int bad = ps->shard != (uint32_t)s || ps->primary >= pb->n_nodes ||
			  ps->n_replicas > SC_MAX_NODES;
		for (size_t k = 0; !bad && k < ps->n_replicas; k++)
			bad = ps->replicas[k] >= pb->n_nodes || ps->replicas[k] == ps->primary;
		if (bad) {
			sc_layout_release(out);
			return sc_error(err, STRATA_EPROTO, "layout shard %d names a node that does "
					"not exist (or lists its primary as a replica)", s);
		}
		ls->primary = (int)ps->primary;
		ls->nreplicas = (int)ps->n_replicas;
		for (size_t k = 0; k < ps->n_replicas; k++)
			ls->replicas[k] = (int)ps->replicas[k];
		ls->version = ps->version;
		ls->has_epoch = ps->has_epoch;
		ls->epoch = ps->epoch;
	}
	return 0;
}

void sc_layout_release(struct sc_layout *l)
{
	free(l->shards);
	l->shards = NULL;
}

int sc_layout_shard_of(const struct sc_layout *l, const void *entity, size_t len)
{
	return st_shard_of_slot(st_slot_of(entity, len), l->nshards);
}

void sc_group(const int *key, size_t n, int nkeys, size_t *order, size_t *start)
{
	memset(start, 0, ((size_t)nkeys + 1) * sizeof(*start));
	for (size_t i = 0; i < n; i++)
		if (key[i] >= 0)
			start[key[i] + 1]++;
	for (int k = 0; k < nkeys; k++)
		start[k + 1] += start[k];
	/* fill with a moving cursor per key, restored afterwards */
	for (size_t i = 0; i < n; i++)
		if (key[i] >= 0)
			order[start[key[i]]++] = i;
	for (int k = nkeys; k > 0; k--)
		start[k] = start[k - 1];
	start[0] = 0;
}

/* ---- node connections ---- */

static int64_t sc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The call's deadline: its io timeout (10 s of retries when it has none). */
static int64_t sc_deadline(const strata *c)
{
	return sc_now_ms() + (c->o.io_timeout_ms > 0 ? c->o.io_timeout_ms : 10000);
}

static strata *sc_pool_get(strata *c, const char *addr, struct strata_error *err)
{
	struct sc_cluster *cl = c->cl;
	for (size_t i = 0; i < cl->npool; i++)
		if (!strcmp(cl->pool[i].addr, addr))
			return cl->pool[i].h;
	if (cl->npool == cl->cappool) {
		size_t cap = cl->cappool ? cl->cappool * 2 : 8;
		struct sc_conn_slot *p = realloc(cl->pool, cap * sizeof(*p));
		if (!p) {
			sc_error(err, STRATA_ENOMEM, "out of memory");
			return NULL;
		}
		cl->pool = p;
		cl->cappool = cap;
	}
	struct strata_connect_opts o = c->o;
	o.reconnect = 0; /* the routing layer retries */
	strata *h;
	if (sc_handle_new(addr, &o, &h, err))
		return NULL;
	h->cl_known = 1; /* a node connection is never routed itself */
	snprintf(cl->pool[cl->npool].addr, sizeof(cl->pool[0].addr), "%s", addr);
	cl->pool[cl->npool++].h = h;
	return h;
}

/* The connection to layout node n with timeouts cut to the deadline (not yet connected:
 * sc_ensure does it). */
static strata *sc_node(strata *c, int n, int64_t deadline, struct strata_error *err)
{
	struct sc_cluster *cl = c->cl;
	strata *h;
	if (cl->node_conn[n] >= 0) {
		h = cl->pool[cl->node_conn[n]].h;
	} else {
		if (!(h = sc_pool_get(c, cl->l.nodes[n].addr, err)))
			return NULL;
		for (size_t i = 0; i < cl->npool; i++)
			if (cl->pool[i].h == h)
				cl->node_conn[n] = (int)i;
	}
	int64_t left = deadline - sc_now_ms();
	if (left < 1)
		left = 1;
	h->o.io_timeout_ms = c->o.io_timeout_ms > 0 && c->o.io_timeout_ms < left
				     ? c->o.io_timeout_ms
				     : (int)left;
	h->o.connect_timeout_ms = c->o.connect_timeout_ms > 0 && c->o.connect_timeout_ms < left
					  ? c->o.connect_timeout_ms
					  : (int)left;
	return h;
}

static void sc_install(strata *c, struct sc_layout *l)
{
	struct sc_cluster *cl = c->cl;
	sc_layout_release(&cl->l);
	cl->l = *l;
	for (int n = 0; n < SC_MAX_NODES; n++)
		cl->node_conn[n] = -1;
	memset(l, 0, sizeof(*l));
}

/* Asks handle h for its layout. */
static int sc_fetch(strata *h, struct sc_layout *out, struct strata_error *err)
{
	Strata__ClusterReq m = STRATA__CLUSTER_REQ__INIT;
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_CLUSTER;
	req.cluster = &m;
	Strata__Response *r;
	int rc = sc_call(h, &req, &r, 1, err);
	if (rc)
		return rc;
	if (r->result_case != STRATA__RESPONSE__RESULT_CLUSTER)
		rc = sc_error(err, STRATA_EPROTO, "server answered CLUSTER without a layout");
	else
		rc = sc_layout_from_pb(r->cluster, out, err);
	strata__response__free_unpacked(r, NULL);
	return rc;
}

/* Refetches the layout from every reachable node (the handle's own first) and installs the
 * highest version; STRATA_EUNAVAILABLE when no node answers. */
static int sc_refetch(strata *c, int64_t deadline, struct strata_error *err)
{
	struct sc_cluster *cl = c->cl;
	struct sc_layout best = {0}, l;
	int have = 0;
	struct strata_error e = {0};
	int nn = cl->l.nnodes;
	char addrs[SC_MAX_NODES][300];
	for (int n = 0; n < nn; n++)
		strcpy(addrs[n], cl->l.nodes[n].addr);
	for (int n = 0; n < nn && sc_now_ms() < deadline; n++) {
		strata *h = sc_pool_get(c, addrs[n], &e);
		if (!h)
			continue;
		int64_t left = deadline - sc_now_ms();
		h->o.io_timeout_ms = left < 1000 ? (int)(left > 0 ? left : 1) : 1000;
		h->o.connect_timeout_ms = h->o.io_timeout_ms;
		if (sc_fetch(h, &l, &e))
			continue;
		if (l.clustered && (!have || l.version > best.version)) {
			sc_layout_release(&best);
			best = l;
			have = 1;
		} else {
			sc_layout_release(&l);
		}
	}
	if (!have)
		return sc_error(err, STRATA_EUNAVAILABLE, "no node of the cluster answered with a "
				"layout (last: %s)", e.msg[0] ? e.msg : "no node tried");
	sc_install(c, &best);
	return 0;
}

int sc_cluster_init(strata *c, struct strata_error *err)
{
	struct sc_layout l;
	struct strata_error e = {0};
	int rc = sc_fetch(c, &l, &e);
	if (rc == STRATA_EPROTO && strstr(e.msg, "unknown operation"))
		return 0; /* a server before CLUSTER: one node */
	if (rc)
		return sc_error(err, rc, "%s", e.msg);
	if (!l.clustered) {
		sc_layout_release(&l);
		return 0;
	}
	c->cl = calloc(1, sizeof(*c->cl));
	if (!c->cl) {
		sc_layout_release(&l);
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	}
	sc_install(c, &l);
	return 0;
}

void sc_cluster_free(strata *c)
{
	struct sc_cluster *cl = c->cl;
	if (!cl)
		return;
	for (size_t i = 0; i < cl->npool; i++)
		strata_close(cl->pool[i].h);
	free(cl->pool);
	sc_layout_release(&cl->l);
	free(cl);
	c->cl = NULL;
}

int strata_cluster_layout(strata *c, char **json, struct strata_error *err)
{
	struct sc_layout own, *l = &own;
	int rc;
	if (sc_routed(c)) {
		if ((rc = sc_refetch(c, sc_deadline(c), err)))
			return rc;
		l = &c->cl->l;
	} else if ((rc = sc_fetch(c, &own, err))) {
		return rc;
	}
	json_t *nodes = json_array(), *shards = json_array();
	for (int n = 0; n < l->nnodes; n++)
		json_array_append_new(nodes, json_pack("{s:s,s:s}", "name", l->nodes[n].name,
						       "addr", l->nodes[n].addr[0] ? l->nodes[n].addr
										   : c->addr));
	for (int s = 0; s < l->nshards; s++) {
		const struct sc_lshard *ls = &l->shards[s];
		json_t *reps = json_array();
		for (int k = 0; k < ls->nreplicas; k++)
			json_array_append_new(reps, json_string(l->nodes[ls->replicas[k]].name));
		json_t *o = json_pack("{s:i,s:s,s:o,s:I}", "shard", s, "primary",
				      l->nodes[ls->primary].name, "replicas", reps, "version",
				      (json_int_t)ls->version);
		if (ls->has_epoch)
			json_object_set_new(o, "epoch", json_integer((json_int_t)ls->epoch));
		json_array_append_new(shards, o);
	}
	json_t *o = json_pack("{s:b,s:I,s:i,s:i,s:o,s:o}", "clustered", l->clustered, "version",
			      (json_int_t)l->version, "nshards", l->nshards, "slots", ST_SLOTS,
			      "nodes", nodes, "shards", shards);
	if (l == &own)
		sc_layout_release(&own);
	*json = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return *json ? 0 : sc_error(err, STRATA_ENOMEM, "out of memory");
}

/* ---- the routing engine ---- */

struct sc_route_op {
	size_t n;          /* items */
	int read;          /* a read: idempotent, may go to a replica */
	int idempotent;
	int replica_ok;
	const ProtobufCBinaryData *(*entity)(void *arg, size_t i);
	/* Builds the request for items idx[0..k) into *req; *scratch is freed after the part. */
	int (*build)(void *arg, const size_t *idx, size_t k, Strata__Request *req, void **scratch);
	/* Takes the successful answer for items idx[0..k); may steal *r (set it NULL). */
	int (*take)(void *arg, const size_t *idx, size_t k, Strata__Response **r,
		    struct strata_error *err);
	void *arg;
	/* the outcome (set by sc_route_many) */
	int rc;
	struct strata_error err;
};

/* One operation's items for one node in one round. */
struct sc_part {
	int node;
	size_t op;
	size_t *idx, k;
	Strata__Request req;
	void *scratch;
	Strata__Response *resp;
	int rc, sent, to_replica;
	struct strata_error err;
};

/* The routing state of one operation across rounds. */
struct sc_op_state {
	uint8_t *done;
	int *key, *shard;
	size_t *order;
	int force_primary, finished;
	int retry; /* this round: some items wait for a layout refetch */
};

/* The parts a node's connection answers in one round, in request id order. */
struct sc_node_wait {
	struct sc_part **parts;
	size_t n;
};

static void sc_part_deliver(void *arg, size_t idx, Strata__Response *resp)
{
	struct sc_node_wait *nw = arg;
	nw->parts[idx]->resp = resp;
}

/* An idle connection the node closed (a restart) is dropped before a request is sent on
 * it, so that a write is not lost into it and reported as of unknown outcome. */
static void sc_drop_if_closed(strata *h)
{
	struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
	char b;
	if (h->fd >= 0 && h->rlen == 0 && poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLHUP | POLLERR) ||
	     recv(h->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0))
		sc_disconnect(h);
}

/* Queues every part for node n on its connection; the parts not queued get their error. */
static int sc_queue_node(strata *c, int n, struct sc_part **pp, size_t k, int64_t deadline,
			 struct sc_waiter *w)
{
	struct strata_error e = {0};
	strata *h = sc_node(c, n, deadline, &e);
	int rc = h ? 0 : e.code;
	if (h) {
		sc_drop_if_closed(h);
		rc = sc_ensure(h, &e);
	}
	uint64_t base = rc ? 0 : sc_reserve_ids(h, k);
	size_t q = 0;
	for (; !rc && q < k; q++) {
		pp[q]->req.id = base + q;
		if ((rc = sc_queue(h, &pp[q]->req, &e)))
			break;
		pp[q]->sent = 1;
	}
	for (size_t i = q; i < k; i++) {
		pp[i]->rc = rc;
		pp[i]->err = e;
	}
	if (!q)
		return 0;
	*w = (struct sc_waiter){.h = h, .base = base, .n = q, .want = q, .cb = sc_part_deliver};
	return 1;
}

/* Sends every part to its node, then collects all answers at once (one poll() over the
 * node connections): the nodes work in parallel and a slow or failing node delays or fails
 * only its own parts. */
static void sc_fanout(strata *c, struct sc_part *p, size_t np, int64_t deadline)
{
	struct sc_part **byn = malloc((np + 1) * sizeof(*byn));
	struct sc_node_wait nwait[SC_MAX_NODES];
	struct sc_waiter w[SC_MAX_NODES];
	size_t nw = 0, off = 0;
	if (!byn) {
		for (size_t i = 0; i < np; i++)
			p[i].rc = sc_error(&p[i].err, STRATA_ENOMEM, "out of memory");
		return;
	}
	for (int n = 0; n < c->cl->l.nnodes; n++) {
		size_t k = 0;
		for (size_t i = 0; i < np; i++)
			if (p[i].node == n)
				byn[off + k++] = &p[i];
		if (!k)
			continue;
		if (sc_queue_node(c, n, byn + off, k, deadline, &w[nw])) {
			nwait[nw] = (struct sc_node_wait){byn + off, w[nw].n};
			w[nw].arg = &nwait[nw];
			nw++;
		}
		off += k;
	}
	sc_wait_many(w, nw);
	for (size_t i = 0; i < nw; i++)
		for (size_t k = 0; k < nwait[i].n; k++) {
			struct sc_part *q = nwait[i].parts[k];
			if (q->resp)
				q->rc = sc_resp_error(q->resp, &q->err);
			else if ((q->rc = w[i].rc ? w[i].rc : STRATA_EPROTO))
				q->err = w[i].err;
		}
	free(byn);
}

static void sc_op_state_free(struct sc_op_state *st)
{
	free(st->done);
	free(st->key);
	free(st->shard);
	free(st->order);
}

/* Builds op's parts for this round into parts[*np...]; 0 or an error for the op. */
static int sc_op_parts(strata *c, struct sc_route_op *op, size_t opi, struct sc_op_state *st,
		       unsigned rr, struct sc_part *parts, size_t *np)
{
	const struct sc_layout *l = &c->cl->l;
	size_t start[SC_MAX_NODES + 1];
	for (size_t i = 0; i < op->n; i++) {
		if (st->done[i]) {
			st->key[i] = -1;
			continue;
		}
		const ProtobufCBinaryData *e = op->entity(op->arg, i);
		const struct sc_lshard *ls =
			&l->shards[st->shard[i] = sc_layout_shard_of(l, e->data, e->len)];
		st->key[i] = op->read && op->replica_ok && !st->force_primary && ls->nreplicas
				     ? ls->replicas[(rr + (unsigned)st->shard[i]) %
						    (unsigned)ls->nreplicas]
				     : ls->primary;
	}
	sc_group(st->key, op->n, l->nnodes, st->order, start);
	for (int n = 0; n < l->nnodes; n++) {
		if (start[n + 1] == start[n])
			continue;
		struct sc_part *p = &parts[(*np)++];
		memset(p, 0, sizeof(*p));
		p->node = n;
		p->op = opi;
		p->idx = st->order + start[n];
		p->k = start[n + 1] - start[n];
		p->to_replica = l->shards[st->shard[p->idx[0]]].primary != n;
		strata__request__init(&p->req);
		if (op->build(op->arg, p->idx, p->k, &p->req, &p->scratch)) {
			(*np)--;
			return sc_error(&op->err, STRATA_ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* Takes one answered (or failed) part: its items are done, or it decides whether the op
 * retries (*retry), asks the primary instead of a replica, or fails. */
static void sc_part_settle(strata *c, struct sc_route_op *op, struct sc_op_state *st,
			   struct sc_part *p, struct strata_error *last)
{
	int rc;
	if (!p->rc && (rc = op->take(op->arg, p->idx, p->k, &p->resp, &p->err)))
		p->rc = rc;
	if (!p->rc) {
		for (size_t j = 0; j < p->k; j++)
			st->done[p->idx[j]] = 1;
	} else if (p->to_replica && (p->rc == STRATA_ESTALE || sc_is_moved(p->rc, p->err.msg))) {
		st->force_primary = 1; /* the replica is too far behind: ask the primary */
	} else if (sc_is_moved(p->rc, p->err.msg) ||
		   (sc_is_transport_error(p->rc) && (!p->sent || op->idempotent))) {
		st->retry = 1;
		*last = p->err;
	} else if (sc_is_transport_error(p->rc)) {
		if (!op->rc)
			op->rc = sc_error(&op->err, STRATA_EUNAVAILABLE, "the connection to %s broke "
					  "after the write was sent: it may or may not be applied "
					  "(%s)", c->cl->l.nodes[p->node].addr, p->err.msg);
	} else if (!op->rc) {
		op->rc = sc_error(&op->err, p->rc, "%s", p->err.msg);
	}
	if (p->resp)
		strata__response__free_unpacked(p->resp, NULL);
	free(p->scratch);
}

/* Runs every operation at once: each round sends the unanswered items of every unfinished
 * operation, grouped per node, and collects all answers; operations that need it (EMOVED,
 * a broken connection before a write was sent or under a read) retry after a layout
 * refetch, with backoff, until the shared deadline. Each operation ends with its own rc. */
static void sc_route_many(strata *c, struct sc_route_op *ops, size_t nops)
{
	struct sc_cluster *cl = c->cl;
	int64_t deadline = sc_deadline(c);
	int backoff = 10;
	struct sc_op_state *st = calloc(nops + 1, sizeof(*st));
	struct sc_part *parts = calloc(nops * SC_MAX_NODES + 1, sizeof(*parts));
	struct strata_error last = {0};
	for (size_t o = 0; o < nops; o++) {
		size_t n = ops[o].n + 1;
		ops[o].rc = 0;
		memset(&ops[o].err, 0, sizeof(ops[o].err));
		if (!st || !parts || !(st[o].done = calloc(n, 1)) ||
		    !(st[o].key = malloc(n * sizeof(int))) ||
		    !(st[o].shard = malloc(n * sizeof(int))) ||
		    !(st[o].order = malloc(n * sizeof(size_t))))
			ops[o].rc = sc_error(&ops[o].err, STRATA_ENOMEM, "out of memory");
	}
	while (st && parts) {
		unsigned rr = cl->rr++;
		size_t np = 0;
		for (size_t o = 0; o < nops; o++) {
			st[o].retry = 0;
			if (!ops[o].rc && !st[o].finished)
				ops[o].rc = sc_op_parts(c, &ops[o], o, &st[o], rr, parts, &np);
		}
		sc_fanout(c, parts, np, deadline);
		for (size_t k = 0; k < np; k++)
			sc_part_settle(c, &ops[parts[k].op], &st[parts[k].op], &parts[k], &last);
		size_t open = 0;
		int wait = 0;
		for (size_t o = 0; o < nops; o++) {
			if (ops[o].rc || st[o].finished)
				continue;
			size_t left = 0;
			for (size_t i = 0; i < ops[o].n; i++)
				left += !st[o].done[i];
			st[o].finished = !left;
			open += !!left;
			wait |= left && st[o].retry;
		}
		if (!open)
			break;
		if (!wait)
			continue; /* only replicas refused: to the primaries at once */
		int64_t left = deadline - sc_now_ms();
		if (left <= 0) {
			for (size_t o = 0; o < nops; o++)
				if (!ops[o].rc && !st[o].finished)
					ops[o].rc = sc_error(&ops[o].err, STRATA_EUNAVAILABLE,
							     "no answer within the call's timeout after "
							     "refetching the layout (last: %s)", last.msg);
			break;
		}
		usleep((useconds_t)(backoff < left ? backoff : left) * 1000);
		backoff = backoff < 400 ? backoff * 2 : 500;
		struct strata_error fe;
		sc_refetch(c, deadline, &fe); /* an unreachable cluster: retried until the deadline */
	}
	for (size_t o = 0; st && o < nops; o++)
		sc_op_state_free(&st[o]);
	free(st);
	free(parts);
}

static int sc_route_run(strata *c, struct sc_route_op *op, struct strata_error *err)
{
	sc_route_many(c, op, 1);
	if (op->rc && err)
		*err = op->err;
	return op->rc;
}

/* ---- get ---- */

struct sc_get_route {
	const Strata__GetReq *g;
	uint32_t max_lag_ms;
	struct strata_result *out;
};

static const ProtobufCBinaryData *sc_get_entity(void *arg, size_t i)
{
	return &((struct sc_get_route *)arg)->g->entities[i];
}

struct sc_get_scratch {
	Strata__GetReq m;
	ProtobufCBinaryData ents[];
};

static int sc_get_part(void *arg, const size_t *idx, size_t k, Strata__Request *req,
		       void **scratch)
{
	struct sc_get_route *a = arg;
	struct sc_get_scratch *s = malloc(sizeof(*s) + (k + 1) * sizeof(s->ents[0]));
	if (!(*scratch = s))
		return STRATA_ENOMEM;
	s->m = *a->g;
	for (size_t j = 0; j < k; j++)
		s->ents[j] = a->g->entities[idx[j]];
	s->m.n_entities = k;
	s->m.entities = s->ents;
	if (a->max_lag_ms) {
		s->m.has_max_lag_ms = 1;
		s->m.max_lag_ms = a->max_lag_ms;
	}
	req->op_case = STRATA__REQUEST__OP_GET;
	req->get = &s->m;
	return 0;
}

static int sc_get_take(void *arg, const size_t *idx, size_t k, Strata__Response **rp,
		       struct strata_error *err)
{
	struct sc_get_route *a = arg;
	const Strata__Response *r = *rp;
	size_t nf = a->g->n_features;
	if (r->result_case != STRATA__RESPONSE__RESULT_RESULTS || r->results->n_results != k * nf)
		return sc_error(err, STRATA_EPROTO, "node answered a multi-get part of %zu results "
				"with %zu", k * nf, r->result_case == STRATA__RESPONSE__RESULT_RESULTS
							? r->results->n_results
							: 0);
	for (size_t j = 0; j < k; j++) {
		int rc = sc_results_from_pb(r->results->results + j * nf, nf,
					    a->out + idx[j] * nf, err);
		if (rc)
			return rc;
	}
	return 0;
}

static struct sc_route_op sc_get_op(struct sc_get_route *a, int replica_ok)
{
	return (struct sc_route_op){a->g->n_entities, 1, 1, replica_ok, sc_get_entity,
				    sc_get_part, sc_get_take, a, 0, {0}};
}

int sc_route_get(strata *c, const Strata__GetReq *g, int replica_ok, struct strata_result *out,
		 struct strata_error *err)
{
	size_t total = g->n_entities * g->n_features;
	memset(out, 0, total * sizeof(*out));
	struct sc_get_route a = {g, g->has_max_lag_ms ? g->max_lag_ms : 0, out};
	struct sc_route_op op = sc_get_op(&a, replica_ok);
	int rc = sc_route_run(c, &op, err);
	if (rc)
		strata_result_release(out, total);
	return rc;
}

/* ---- put ---- */

static const ProtobufCBinaryData *sc_put_entity(void *arg, size_t i)
{
	return &((const Strata__PutReq *)arg)->cells[i]->entity;
}

struct sc_put_scratch {
	Strata__PutReq m;
	Strata__Cell *cells[];
};

static int sc_put_part(void *arg, const size_t *idx, size_t k, Strata__Request *req,
		       void **scratch)
{
	const Strata__PutReq *p = arg;
	struct sc_put_scratch *s = malloc(sizeof(*s) + (k + 1) * sizeof(s->cells[0]));
	if (!(*scratch = s))
		return STRATA_ENOMEM;
	s->m = *p;
	for (size_t j = 0; j < k; j++)
		s->cells[j] = p->cells[idx[j]];
	s->m.n_cells = k;
	s->m.cells = s->cells;
	req->op_case = STRATA__REQUEST__OP_PUT;
	req->put = &s->m;
	return 0;
}

static int sc_take_none(void *arg, const size_t *idx, size_t k, Strata__Response **r,
			struct strata_error *err)
{
	(void)arg, (void)idx, (void)k, (void)r, (void)err;
	return 0;
}

static struct sc_route_op sc_put_op(const Strata__PutReq *p)
{
	return (struct sc_route_op){p->n_cells, 0, 0, 0, sc_put_entity, sc_put_part,
				    sc_take_none, (void *)p, 0, {0}};
}

int sc_route_put(strata *c, const Strata__PutReq *p, struct strata_error *err)
{
	if (p->n_cells == 0) {
		Strata__Request req = STRATA__REQUEST__INIT;
		req.op_case = STRATA__REQUEST__OP_PUT;
		req.put = (Strata__PutReq *)p;
		Strata__Response *r;
		int rc = sc_call(c, &req, &r, 0, err);
		if (!rc)
			strata__response__free_unpacked(r, NULL);
		return rc;
	}
	struct sc_route_op op = sc_put_op(p);
	return sc_route_run(c, &op, err);
}

/* ---- one entity ---- */

struct sc_one {
	Strata__Request *req;
	const ProtobufCBinaryData *entity;
	Strata__Response *resp;
};

static const ProtobufCBinaryData *sc_one_entity(void *arg, size_t i)
{
	(void)i;
	return ((struct sc_one *)arg)->entity;
}

static int sc_one_part(void *arg, const size_t *idx, size_t k, Strata__Request *req,
		       void **scratch)
{
	(void)idx, (void)k;
	*scratch = NULL;
	*req = *((struct sc_one *)arg)->req;
	return 0;
}

static int sc_one_take(void *arg, const size_t *idx, size_t k, Strata__Response **r,
		       struct strata_error *err)
{
	(void)idx, (void)k, (void)err;
	((struct sc_one *)arg)->resp = *r;
	*r = NULL;
	return 0;
}

int sc_route_one(strata *c, Strata__Request *req, const ProtobufCBinaryData *entity,
		 int idempotent, Strata__Response **resp, struct strata_error *err)
{
	struct sc_one a = {req, entity, NULL};
	struct sc_route_op op = {1, 0, idempotent, 0, sc_one_entity, sc_one_part, sc_one_take,
				 &a, 0, {0}};
	int rc = sc_route_run(c, &op, err);
	*resp = a.resp;
	return rc;
}

/* ---- a batch: every operation at once ---- */

void sc_route_batch(strata *c, struct sc_batch_op *b, size_t n)
{
	struct sc_route_op *ops = calloc(n + 1, sizeof(*ops));
	struct sc_get_route *gets = calloc(n + 1, sizeof(*gets));
	struct sc_one *ones = calloc(n + 1, sizeof(*ones));
	size_t *at = calloc(n + 1, sizeof(*at)); /* route op -> batch op */
	size_t nops = 0;
	for (size_t i = 0; i < n; i++) {
		Strata__Request *q = b[i].req;
		b[i].rc = 0;
		if (!ops || !gets || !ones || !at) {
			b[i].rc = sc_error(&b[i].err, STRATA_ENOMEM, "out of memory");
			continue;
		}
		if (q->op_case == STRATA__REQUEST__OP_GET) {
			memset(b[i].out, 0, q->get->n_entities * q->get->n_features *
						    sizeof(*b[i].out));
			gets[i] = (struct sc_get_route){q->get,
							q->get->has_max_lag_ms ? q->get->max_lag_ms : 0,
							b[i].out};
			ops[nops] = sc_get_op(&gets[i], b[i].replica_ok);
		} else if (q->op_case == STRATA__REQUEST__OP_PUT && q->put->n_cells) {
			ops[nops] = sc_put_op(q->put);
		} else if (q->op_case == STRATA__REQUEST__OP_PUT) {
			b[i].rc = sc_route_put(c, q->put, &b[i].err); /* no cells: the server's check */
			continue;
		} else if (q->op_case == STRATA__REQUEST__OP_DEL) {
			ones[i] = (struct sc_one){q, &q->del->entity, NULL};
			ops[nops] = (struct sc_route_op){1, 0, 0, 0, sc_one_entity, sc_one_part,
							 sc_one_take, &ones[i], 0, {0}};
		} else {
			b[i].rc = sc_error(&b[i].err, STRATA_EINVAL, "operation %d cannot be batched "
					   "over a cluster", (int)q->op_case);
			continue;
		}
		at[nops++] = i;
	}
	if (nops)
		sc_route_many(c, ops, nops);
	for (size_t k = 0; k < nops; k++) {
		struct sc_batch_op *o = &b[at[k]];
		if ((o->rc = ops[k].rc))
			o->err = ops[k].err;
		if (o->rc && o->req->op_case == STRATA__REQUEST__OP_GET)
			strata_result_release(o->out, o->req->get->n_entities *
							      o->req->get->n_features);
		if (ones[at[k]].resp)
			strata__response__free_unpacked(ones[at[k]].resp, NULL);
	}
	free(ops);
	free(gets);
	free(ones);
	free(at);
}

/* ---- joins ---- */

int sc_route_refresh(strata *c, struct strata_error *err)
{
	return sc_refetch(c, sc_deadline(c), err);
}

int sc_route_join_targets(strata *c, strata **nodes, int **shard_node, int *nshards,
			  struct strata_error *err)
{
	const struct sc_layout *l = &c->cl->l;
	int64_t deadline = sc_deadline(c);
	int *sn = malloc((size_t)l->nshards * sizeof(*sn));
	if (!sn)
		return sc_error(err, STRATA_ENOMEM, "out of memory");
	for (int n = 0; n < SC_MAX_NODES; n++)
		nodes[n] = NULL;
	for (int s = 0; s < l->nshards; s++) {
		int n = sn[s] = l->shards[s].primary;
		if (!nodes[n] && !(nodes[n] = sc_node(c, n, deadline, err))) {
			free(sn);
			return err ? err->code : STRATA_ENOMEM;
		}
	}
	*shard_node = sn;
	*nshards = l->nshards;
	return 0;
}
