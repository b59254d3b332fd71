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
};

struct sc_part {
	int node;
	strata *h;
	size_t *idx, k;
	Strata__Request req;
	void *scratch;
	Strata__Response *resp;
	int rc, sent, to_replica;
	struct strata_error err;
};

static void sc_store_resp(void *arg, size_t idx, Strata__Response *resp)
{
	(void)idx;
	*(Strata__Response **)arg = resp;
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

/* Sends every part, then collects every answer (all nodes work at once). */
static void sc_fanout(strata *c, struct sc_part *p, size_t np, int64_t deadline)
{
	for (size_t i = 0; i < np; i++) {
		size_t got = 0;
		if (!(p[i].h = sc_node(c, p[i].node, deadline, &p[i].err))) {
			p[i].rc = p[i].err.code;
			continue;
		}
		sc_drop_if_closed(p[i].h);
		if ((p[i].rc = sc_ensure(p[i].h, &p[i].err)))
			continue;
		p[i].req.id = sc_reserve_ids(p[i].h, 1);
		if ((p[i].rc = sc_queue(p[i].h, &p[i].req, &p[i].err)))
			continue;
		p[i].sent = 1;
		p[i].rc = sc_wait(p[i].h, 0, 0, 0, NULL, NULL, &got, &p[i].err); /* flush */
	}
	for (size_t i = 0; i < np; i++) {
		if (p[i].rc)
			continue;
		size_t got = 0;
		p[i].rc = sc_wait(p[i].h, p[i].req.id, 1, 1, sc_store_resp, &p[i].resp, &got,
				  &p[i].err);
		if (!p[i].rc)
			p[i].rc = sc_resp_error(p[i].resp, &p[i].err);
	}
}

static int sc_route_run(strata *c, const struct sc_route_op *op, struct strata_error *err)
{
	struct sc_cluster *cl = c->cl;
	int64_t deadline = sc_deadline(c);
	int force_primary = 0, backoff = 10, rc = 0;
	uint8_t *done = calloc(op->n + 1, 1);
	int *key = malloc((op->n + 1) * sizeof(*key));
	int *shard = malloc((op->n + 1) * sizeof(*shard));
	size_t *order = malloc((op->n + 1) * sizeof(*order));
	struct sc_part *parts = calloc(SC_MAX_NODES, sizeof(*parts));
	struct strata_error last = {0};
	if (!done || !key || !shard || !order || !parts) {
		rc = sc_error(err, STRATA_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		const struct sc_layout *l = &cl->l;
		size_t start[SC_MAX_NODES + 1];
		unsigned rr = cl->rr++;
		for (size_t i = 0; i < op->n; i++) {
			if (done[i]) {
				key[i] = -1;
				continue;
			}
			const ProtobufCBinaryData *e = op->entity(op->arg, i);
			const struct sc_lshard *ls = &l->shards[shard[i] = sc_layout_shard_of(
									l, e->data, e->len)];
			key[i] = op->read && op->replica_ok && !force_primary && ls->nreplicas
					 ? ls->replicas[(rr + (unsigned)shard[i]) % (unsigned)ls->nreplicas]
					 : ls->primary;
		}
		sc_group(key, op->n, l->nnodes, order, start);
		size_t np = 0;
		for (int n = 0; n < l->nnodes; n++) {
			if (start[n + 1] == start[n])
				continue;
			struct sc_part *p = &parts[np++];
			memset(p, 0, sizeof(*p));
			p->node = n;
			p->idx = order + start[n];
			p->k = start[n + 1] - start[n];
			p->to_replica = l->shards[shard[p->idx[0]]].primary != n;
			strata__request__init(&p->req);
			if ((rc = op->build(op->arg, p->idx, p->k, &p->req, &p->scratch))) {
				sc_error(err, rc, "out of memory");
				for (size_t k = 0; k < np; k++)
					free(parts[k].scratch);
				goto out;
			}
		}
		sc_fanout(c, parts, np, deadline);
		int retry = 0, stale = 0, fatal = 0;
		for (size_t k = 0; k < np; k++) {
			struct sc_part *p = &parts[k];
			if (!p->rc && (rc = op->take(op->arg, p->idx, p->k, &p->resp, &p->err)))
				p->rc = rc;
			if (!p->rc) {
				for (size_t j = 0; j < p->k; j++)
					done[p->idx[j]] = 1;
			} else if (p->to_replica && (p->rc == STRATA_ESTALE ||
						      sc_is_moved(p->rc, p->err.msg))) {
				stale = 1; /* the replica is too far behind: ask the primary */
			} else if (sc_is_moved(p->rc, p->err.msg) ||
				   (sc_is_transport_error(p->rc) && (!p->sent || op->idempotent))) {
				retry = 1;
				last = p->err;
			} else if (sc_is_transport_error(p->rc)) {
				if (!fatal)
					sc_error(err, STRATA_EUNAVAILABLE, "the connection to %s broke "
						 "after the write was sent: it may or may not be "
						 "applied (%s)", l->nodes[p->node].addr, p->err.msg);
				fatal = STRATA_EUNAVAILABLE;
			} else if (!fatal) {
				fatal = sc_error(err, p->rc, "%s", p->err.msg);
			}
			if (p->resp)
				strata__response__free_unpacked(p->resp, NULL);
			free(p->scratch);
		}
		if (fatal) {
			rc = fatal;
			goto out;
		}
		if (!retry && !stale)
			break;
		if (stale)
			force_primary = 1;
		if (!retry)
			continue;
		int64_t left = deadline - sc_now_ms();
		if (left <= 0) {
			rc = sc_error(err, STRATA_EUNAVAILABLE, "no answer within the call's timeout "
				      "after refetching the layout (last: %s)", last.msg);
			goto out;
		}
		usleep((useconds_t)(backoff < left ? backoff : left) * 1000);
		backoff = backoff < 400 ? backoff * 2 : 500;
		struct strata_error fe;
		sc_refetch(c, deadline, &fe); /* an unreachable cluster: retried until the deadline */
	}
out:
	free(done);
	free(key);
	free(shard);
	free(order);
	free(parts);
	return rc;
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

int sc_route_get(strata *c, const Strata__GetReq *g, int replica_ok, struct strata_result *out,
		 struct strata_error *err)
{
	size_t total = g->n_entities * g->n_features;
	memset(out, 0, total * sizeof(*out));
	struct sc_get_route a = {g, g->has_max_lag_ms ? g->max_lag_ms : 0, out};
	struct sc_route_op op = {g->n_entities, 1, 1, replica_ok, sc_get_entity, sc_get_part,
				 sc_get_take, &a};
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
	struct sc_route_op op = {p->n_cells, 0, 0, 0, sc_put_entity, sc_put_part, sc_take_none,
				 (void *)p};
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
				 &a};
	int rc = sc_route_run(c, &op, err);
	*resp = a.resp;
	return rc;
}

/* ---- joins ---- */

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
