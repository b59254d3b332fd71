/* libstrata internals shared by client/strata_*.c: the connection engine (framing,
 * pipelining, response routing by id) and protobuf <-> strata conversions. */
#ifndef STRATA_IMPL_H
#define STRATA_IMPL_H

#include "client/strata.h"
#include "proto/strata.pb-c.h"

/* A response that arrived while nobody waited for its id (e.g. a join chunk's answer while
 * a synchronous call runs). Owned by the handle. */
struct sc_parked {
	struct sc_parked *next;
	uint64_t id;
	Strata__Response *resp;
};

/* Called with each awaited response (ownership passes to the callback). */
typedef void (*sc_deliver_fn)(void *arg, size_t idx, Strata__Response *resp);

struct sc_cluster; /* strata_route.c */

struct strata {
	struct sc_cluster *cl; /* the layout and node connections; NULL = one server */
	int cl_known;          /* the server was asked whether it runs a cluster */
	char addr[300];
	char host[256];
	int port;
	struct strata_connect_opts o;
	char *token; /* owned copy */
	int fd;      /* -1: not connected (reconnects on the next call) */
	int64_t idle_since_ms; /* last time a wait ended with nothing outstanding */
	uint64_t epoch; /* bumped on every (re)connect: older joins are dead */
	uint64_t next_id;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	struct sc_parked *parked;
	/* The wait in progress: responses with ids in [wbase, wbase + wn) go to wcb. */
	uint64_t wbase;
	size_t wn;
	sc_deliver_fn wcb;
	void *warg;
};

int sc_error(struct strata_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* sc_call for requests answered with a JSON document (status_json): *json is a copy to
 * free(), "{}" when the answer has none. */
int sc_call_json(strata *c, Strata__Request *req, int idempotent, char **json,
		 struct strata_error *err);
/* Connects (and authenticates) if the handle has no live connection. */
int sc_ensure(strata *c, struct strata_error *err);
void sc_disconnect(strata *c);
/* Reserves n consecutive request ids. */
uint64_t sc_reserve_ids(strata *c, size_t n);
/* Appends a request frame to the output buffer (not sent until sc_wait). */
int sc_queue(strata *c, const Strata__Request *req, struct strata_error *err);
/* Appends a frame whose body was packed with id 0, setting the id by appending the id field
 * (protobuf: the last value of a scalar field wins). */
int sc_queue_body(strata *c, const uint8_t *body, size_t len, uint64_t id,
		  struct strata_error *err);
/* Sends queued output and reads until `want` responses with ids in [base, base + n) were
 * delivered to cb. A transport failure disconnects and is returned. */
int sc_wait(strata *c, uint64_t base, size_t n, size_t want, sc_deliver_fn cb, void *arg,
	    size_t *got, struct strata_error *err);
/* One connection's part of a wait over several (sc_wait_many): its handle, the ids it
 * awaits and where they go; rc/err are its outcome. */
#define SC_WAIT_MAX 64
struct sc_waiter {
	strata *h;
	uint64_t base;
	size_t n, want, got;
	sc_deliver_fn cb;
	void *arg;
	int rc, ended;
	int64_t deadline; /* each connection's own io timeout, renewed by progress */
	struct strata_error err;
};
/* sc_wait over up to SC_WAIT_MAX distinct connections at once, with one poll(): every
 * connection sends and reads as soon as it can, so the slowest one sets the time, not the
 * sum. A connection that fails is disconnected and ends with its own rc; the others go on. */
void sc_wait_many(struct sc_waiter *w, size_t nw);
/* One synchronous request: *resp is the answer with code 0 (free with
 * strata__response__free_unpacked) or an error is returned. `idempotent` allows one retry
 * on a fresh connection after a transport failure. */
int sc_call(strata *c, Strata__Request *req, Strata__Response **resp, int idempotent,
	    struct strata_error *err);
/* The error carried by a response (0 if none). */
int sc_resp_error(const Strata__Response *r, struct strata_error *err);
int sc_is_transport_error(int code);

/* Allocates a handle for "HOST:PORT" with options o (NULL = defaults) without connecting. */
int sc_handle_new(const char *addr, const struct strata_connect_opts *o, strata **out,
		  struct strata_error *err);
int sc_is_moved(int code, const char *msg);

/* ---- cluster routing (strata_route.c) ---- */

#define SC_MAX_NODES 16
_Static_assert(SC_MAX_NODES <= SC_WAIT_MAX, "a fan-out waits on every node at once");

/* A layout as a client holds it (from ClusterLayout). */
struct sc_lnode {
	char name[64];
	char addr[300];
};
struct sc_lshard {
	int primary;
	int nreplicas;
	int replicas[SC_MAX_NODES];
	uint64_t version;
	int has_epoch;
	uint64_t epoch;
};
struct sc_layout {
	uint64_t version;
	int clustered;
	int nshards, nnodes;
	struct sc_lnode nodes[SC_MAX_NODES];
	struct sc_lshard *shards; /* owned */
};
/* Checks and converts a CLUSTER answer: EPROTO for a layout that cannot be routed with
 * (no shards, a slot count or rule this client does not know, node indexes out of range, a
 * clustered node without an address). */
int sc_layout_from_pb(const Strata__ClusterLayout *pb, struct sc_layout *out,
		      struct strata_error *err);
void sc_layout_release(struct sc_layout *l);
/* The shard of an entity (the store's rule, common/st_slot.h). */
int sc_layout_shard_of(const struct sc_layout *l, const void *entity, size_t len);
/* Stable grouping of n items by key in [0, nkeys) (key < 0: left out): order[] lists the
 * items of key 0, then key 1..., each group in input order; group k is
 * order[start[k] .. start[k + 1]). start has nkeys + 1 entries. */
void sc_group(const int *key, size_t n, int nkeys, size_t *order, size_t *start);

/* After a connect: asks the server for its layout and, when it runs a cluster, makes c a
 * routing handle. An old server that does not know CLUSTER is a single node. */
int sc_cluster_init(strata *c, struct strata_error *err);
void sc_cluster_free(strata *c);
/* 1 when operations on c are routed over a cluster. The first call asks the server (one
 * round trip in the handle's life); if that fails the handle stays with the server it is
 * connected to, following its EMOVED redirects. */
static inline int sc_routed(strata *c)
{
	if (__builtin_expect(!c->cl_known, 0)) {
		struct strata_error e;
		c->cl_known = 1;
		sc_cluster_init(c, &e);
	}
	return c->cl != NULL;
}
/* Routed operations (c->cl set): the GetReq/PutReq as built for one server, split per node. */
int sc_route_get(strata *c, const Strata__GetReq *g, int replica_ok, struct strata_result *out,
		 struct strata_error *err);
int sc_route_put(strata *c, const Strata__PutReq *p, struct strata_error *err);
/* A batch over a cluster: every operation (GET, PUT or DEL as built for one server) is
 * split per node and all parts of all operations are sent before any answer is awaited.
 * out: a GET's caller-owned n_entities x n_features results (released again on failure).
 * Each operation ends with its own rc/err: a node failing fails only what it held. */
struct sc_batch_op {
	Strata__Request *req;
	int replica_ok;
	struct strata_result *out;
	int rc;
	struct strata_error err;
};
void sc_route_batch(strata *c, struct sc_batch_op *b, size_t n);
/* A request about one entity (delete, history) sent to its shard's primary; *resp as sc_call. */
int sc_route_one(strata *c, Strata__Request *req, const ProtobufCBinaryData *entity,
		 int idempotent, Strata__Response **resp, struct strata_error *err);
/* Streaming joins over a cluster: nodes[SC_MAX_NODES] gets the connection of every node that
 * is primary of a shard (NULL for the others) and *shard_node (malloc'ed, *nshards entries)
 * the node of each shard: a snapshot of the layout. */
/* Refetches the layout (after an EMOVED or a node that failed); STRATA_EUNAVAILABLE when no
 * node answers within the handle's io timeout. */
int sc_route_refresh(strata *c, struct strata_error *err);
int sc_route_join_targets(strata *c, strata **nodes, int **shard_node, int *nshards,
			  struct strata_error *err);

/* Conversions. to_pb borrows the value's memory; from_pb allocates (result owns it). */
void sc_value_to_pb(const struct strata_value *v, Strata__Value *pb);
int sc_value_from_pb(const Strata__Value *pb, struct strata_value *v);
int sc_results_from_pb(Strata__Result *const *rs, size_t n, struct strata_result *out,
		       struct strata_error *err);

#endif
