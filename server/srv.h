/* stratad internals shared by the server's files: configuration, the connection core that both
 * network backends (srv_uring.c, srv_epoll.c) drive, the worker pool and the metrics. */
#ifndef SRV_H
#define SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/st_err.h"
#include "proto/strata.pb-c.h"
#include "replication/repl.h"
#include "server/srv_buf.h"
#include "store/kv.h"

/* ---- configuration (srv_config.c) ---- */

enum srv_io { SRV_IO_AUTO, SRV_IO_URING, SRV_IO_EPOLL };

struct srv_config {
	char data_dir[4096];
	char listen[256];        /* HOST:PORT */
	char admin[256];         /* HOST:PORT, "" or "off" = no admin HTTP */
	int threads;             /* network threads */
	int workers;             /* store worker threads for writes and long operations */
	int read_workers;        /* store worker threads for point reads */
	enum srv_io io;
	enum kv_sync sync;
	char auth_token_file[4096];
	char *token;             /* owned; NULL = no auth */
	size_t token_len;
	uint32_t max_frame;      /* bytes of one frame's payload */
	uint32_t max_value;      /* bytes of one value */
	int max_conns;
	int max_inflight;        /* requests per connection being executed */
	size_t max_out;          /* per-connection unsent output before reading pauses */
	int64_t idle_timeout_us; /* no request for this long: closed (0 = never) */
	int64_t stall_timeout_us;/* output over max_out for this long: dropped */
	int64_t handshake_timeout_us; /* no first request (or auth) within this: closed (0 = never) */
	int64_t frame_timeout_us;     /* one frame incomplete for this long: closed (0 = never) */
	int64_t drain_timeout_us;/* on SIGTERM, wait this long for in-flight requests */
	int nshards;
	size_t cache_bytes;
	size_t row_cache_bytes; /* latest-value row cache; 0 = off */
	int inline_reads;        /* run get/multi-get on the network thread */
	int net_slice_us;        /* scheduler time slice of the network threads; 0 = kernel's */
	char resp[256];          /* HOST:PORT of the Redis-protocol port; "" = off */
	int resp_writes;         /* HSET on the RESP port */
	int verbose;
	char ready_file[4096];   /* written with the bound addresses once serving */
	struct repl_options repl; /* --cluster and friends (srv_repl.c) */
};

void srv_config_defaults(struct srv_config *c);
/* Parses argv (and --config FILE, applied first so flags override it). Returns 0, 1 when
 * --help/--version was printed, or ST_EINVAL with a message. */
int srv_config_parse(struct srv_config *c, int argc, char **argv, struct st_error *err);
/* Splits "HOST:PORT" (HOST may be "[v6]" or empty for loopback). */
int srv_parse_addr(const char *s, char *host, size_t hostn, int *port, struct st_error *err);
void srv_config_release(struct srv_config *c);

/* ---- replication (srv_repl.c): only with --cluster ---- */
/* Before the store opens: loads the layout and sets the store options it implies. */
int srv_repl_prepare(struct srv_config *c, struct kv_options *ko, struct st_error *err);
/* After the store opened: starts replication (nothing without --cluster). */
int srv_repl_start(struct srv_config *c, struct kv_db *db, struct st_error *err);
void srv_repl_stop(void);
/* Replication metrics text to append to /metrics (malloc'ed), or NULL. */
char *srv_repl_metrics(void);
/* Bounded-staleness check of a get (GetReq.max_lag_ms) over its entities' shards: 0, or
 * ST_ESTALE when this node's copy is too far behind. Always 0 without --cluster. */
int srv_repl_read_fresh(struct kv_db *db, const ProtobufCBinaryData *entities, size_t n,
			int64_t max_lag_us, struct st_error *err);

/* ---- metrics (srv_metrics.c) ---- */

#define SRV_NBUCKETS 16

struct srv_op_stats {
	atomic_uint_fast64_t count, errors, sum_us;
	atomic_uint_fast64_t buckets[SRV_NBUCKETS]; /* cumulative at export, per-bucket here */
};

struct srv_metrics {
	struct srv_op_stats *ops; /* owned; nops slots, one per operation (srv_op_name) */
	int nops;
	atomic_uint_fast64_t conns_total, conns_rejected, bytes_in, bytes_out, frames_bad,
		auth_failures, conns_dropped_slow, conns_idle_closed, conns_evicted,
		conns_gone, conns_handshake_timeout, conns_frame_timeout;
	atomic_int conns, inflight;
};

extern const int64_t srv_bucket_le_us[SRV_NBUCKETS]; /* last = +Inf */
/* Allocates one slot per operation of the handler table. Returns 0 or ST_ENOMEM. */
int srv_metrics_init(struct srv_metrics *m);
void srv_metrics_release(struct srv_metrics *m);
/* The metrics label of slot `op`, or NULL for an unused slot. */
const char *srv_op_name(int op);
/* Counts one request of slot `op` (out-of-range slots count as 0, "invalid"). */
void srv_metrics_observe(struct srv_metrics *m, int op, int64_t us, int failed);

/* ---- the server ---- */

struct srv_pool;
struct srv_net;
struct srv_join;

/* The protocols a listening socket speaks (a connection keeps its listener's). */
enum srv_proto { SRV_PROTO_STRATA, SRV_PROTO_RESP, SRV_NPROTO };

struct srv_server {
	struct srv_config cfg;
	struct kv_db *db;
	struct srv_metrics m;
	struct srv_pool *pool;  /* writes, joins, registry, jobs */
	struct srv_pool *rpool; /* point reads: get, multi-get, history */
	struct srv_net **nets;
	int nnets;
	/* One listening socket per protocol, shared by every network thread (-1 = off). No
	 * SO_REUSEPORT: a second server on a taken address fails at bind instead of joining. */
	int listen_fd[SRV_NPROTO];
	int listen_port[SRV_NPROTO];
	const char *io_name; /* "uring" or "epoll" */
	int64_t started_us;
	atomic_int stopping;
	_Atomic int64_t stop_us; /* monotonic time the stop began */
	/* Open joins of all connections; few, so a list under one lock. */
	pthread_mutex_t joins_mu;
	struct srv_join *joins;
	uint64_t next_join_id;
};

/* ---- requests and the worker pool (srv_pool.c) ---- */

/* One decoded request. Owned by the network thread until handed to the pool, then by the
 * worker until it is back on its net's done list; the conn is touched only on its net. */
struct srv_req {
	struct srv_req *next;
	struct srv_conn *conn;
	struct srv_net *net;
	Strata__Request *msg; /* owned; freed after execution */
	uint8_t *frame;       /* packed response frame (length prefix included), owned */
	size_t frame_len;
	int64_t t0_us;
	int op;
	int failed;
	/* A RESP command (srv_resp.c), NULL for a protobuf request. msg is then one malloc'd
	 * block, or NULL when frame already holds the reply (connection commands, errors). */
	const struct srv_resp_cmd *rcmd;
	uint64_t seq;  /* RESP: the reply's place in the connection's order */
	uint8_t resp3; /* RESP: reply in RESP3 */
	/* Arena of the unpacked protobuf msg: inline bytes, then chained blocks. */
	struct srv_arena_block *arena_blocks;
	uint8_t *arena_cur;
	size_t arena_left;
	_Alignas(16) uint8_t arena_inline[512];
};

/* A zeroed request (NULL when out of memory). */
struct srv_req *srv_req_new(void);
/* Unpacks a protobuf Request into r->msg, allocating in r's arena; returns r->msg (NULL when
 * the bytes are not a valid Request). */
Strata__Request *srv_req_unpack(struct srv_req *r, const uint8_t *p, size_t n);
/* Frees r, its msg and its frame. */
void srv_req_free(struct srv_req *r);

struct srv_pool *srv_pool_start(struct srv_server *s, int nthreads, struct st_error *err);
/* Queues a chain of n requests (first..last linked by next) with one lock and one wakeup. */
void srv_pool_submit(struct srv_pool *p, struct srv_req *first, struct srv_req *last, size_t n);
/* Stops the workers after the queue is drained and joins them. */
void srv_pool_stop(struct srv_pool *p);

/* ---- operations (srv_dispatch.c): the handler table ----
 * srv_ops[] is indexed by Request.op_case (the oneof field number); srv_nops is its length,
 * so adding an operation is one handler and one table row. Slot 0 is "invalid" (undecodable
 * or unknown requests); slots without a handler are unknown operations. */
struct srv_ctx;

enum srv_op_flags {
	SRV_OPF_CONN = 1u << 0,   /* answered by the connection layer itself (auth) */
	SRV_OPF_INLINE = 1u << 1, /* always run on the network thread: no store access (ping) */
	SRV_OPF_READ = 1u << 2,   /* a point read: read pool, or inline with --inline-reads */
	SRV_OPF_CACHED = 1u << 3, /* may be answered from the row cache on the network thread */
};

struct srv_op {
	const char *name; /* metrics label */
	/* Fills x->resp from storage owned by x; returns 0 or an error code with x->err set. */
	int (*run)(struct srv_ctx *x);
	unsigned flags;
};

extern const struct srv_op srv_ops[];
extern const int srv_nops;

/* The table row of a decoded op case; NULL when the op is unknown. */
const struct srv_op *srv_op_find(int op_case);

/* Per-request context: the request, the response being built and everything the response
 * points into. Handlers allocate with srv_ctx_alloc and register releases of store-owned
 * results with srv_ctx_defer; both end when the response has been packed. */
#define SRV_CTX_INLINE 4096

struct srv_ctx_block;

struct srv_ctx {
	struct srv_server *s;
	struct srv_req *req;
	const Strata__Request *m;
	Strata__Response resp;
	struct st_error err;
	unsigned read_flags; /* kv_read_opts.flags for point reads */
	/* A get's results (resp.result_case RESULTS, resp.results unset): encoded straight from
	 * these by srv_wire (protobuf) or the RESP replies; owned by the context. */
	const struct kv_result *kres;
	size_t nkres;
	/* private to srv_dispatch.c */
	struct srv_ctx_block *blocks;
	uint8_t *cur;
	size_t left;
	int ndefer;
	struct {
		void (*fn)(void *p, size_t n);
		void *p;
		size_t n;
	} defer[4];
	_Alignas(16) uint8_t inline_buf[SRV_CTX_INLINE];
};

/* n zeroed elements of `size` bytes (n == 0 gives a valid pointer), valid until the response
 * is packed; NULL on overflow or when out of memory (the caller reports ST_ENOMEM). */
void *srv_ctx_alloc(struct srv_ctx *x, size_t n, size_t size);
/* Runs fn(p, n) after the response is packed (last registered first). At most 4 per request
 * (a programming error otherwise). */
void srv_ctx_defer(struct srv_ctx *x, void (*fn)(void *p, size_t n), void *p, size_t n);
/* Sets x->err to "out of memory" and returns ST_ENOMEM. */
int srv_ctx_nomem(struct srv_ctx *x);

/* Executes req->msg, frees it, and fills req->frame with the packed response. Never fails:
 * errors become error responses (on allocation failure, a static minimal frame). */
void srv_dispatch(struct srv_server *s, struct srv_req *req);
/* For a cacheable read (SRV_OPF_CACHED) on a network thread: answers it as srv_dispatch does if the row cache
 * holds every requested row (returns 1); otherwise leaves req untouched for the pool (returns
 * 0). A hit costs a hash lookup, so it is cheaper to answer at once than to hand it over. */
int srv_dispatch_cached(struct srv_server *s, struct srv_req *req);
/* Frees req->msg (a protobuf-c message or a RESP request block). */
void srv_req_free_msg(struct srv_req *req);
/* Packs an error response frame for request id `id` into *frame (malloc'd). */
int srv_error_frame(uint64_t id, int code, const char *msg, uint8_t **frame, size_t *len);

/* ---- operation handlers (srv_ops.c: data, tables, jobs; srv_join.c: streaming joins) ---- */

int srv_op_ping(struct srv_ctx *x);
int srv_op_status(struct srv_ctx *x);
int srv_op_table_create(struct srv_ctx *x);
int srv_op_table_get(struct srv_ctx *x);
int srv_op_table_list(struct srv_ctx *x);
int srv_op_table_alter(struct srv_ctx *x);
int srv_op_table_drop(struct srv_ctx *x);
int srv_op_put(struct srv_ctx *x);
int srv_op_delete(struct srv_ctx *x);
int srv_op_get(struct srv_ctx *x);
int srv_op_history(struct srv_ctx *x);
int srv_op_cluster(struct srv_ctx *x); /* srv_repl.c */
int srv_op_preload_submit(struct srv_ctx *x);
int srv_op_job_get(struct srv_ctx *x);
int srv_op_job_list(struct srv_ctx *x);
int srv_op_job_cancel(struct srv_ctx *x);
int srv_op_admin(struct srv_ctx *x);
int srv_op_join_open(struct srv_ctx *x);
int srv_op_join_push(struct srv_ctx *x);
int srv_op_join_close(struct srv_ctx *x);

/* Results as protobuf in ctx storage, pointing into `res` (which must outlive the packing). */
int srv_results_out(struct srv_ctx *x, const struct kv_result *res, size_t n,
		    Strata__Results **out);
/* The frame (length prefix included, malloc'd into *frame, caller frees) of a Response with
 * id and Results r[0..n), byte for byte what protobuf-c packs from srv_results_out's
 * messages (srv_wire.c). Returns 0 or ST_ENOMEM. */
int srv_wire_results_frame(uint64_t id, const struct kv_result *r, size_t n, uint8_t **frame,
			   size_t *len);
/* Releases n kv_results and frees the array (a srv_ctx_defer callback). */
void srv_results_release(void *res, size_t n);
/* ST_EINVAL unless at least one feature is requested. */
int srv_check_features(size_t n, struct st_error *err);
#define SRV_MAX_RESULTS 1000000 /* entities x features of one get, rows x features of a push */

/* ---- the Redis-protocol port (srv_resp.c; wire format in srv_resp.h) ----
 * Metrics slots srv_nops .. srv_nops + srv_resp_ncmds - 1 count the RESP commands. */
struct srv_resp_cmd;
struct srv_resp_conn;
extern const int srv_resp_ncmds;
/* The metrics label of RESP command i (0 <= i < srv_resp_ncmds). */
const char *srv_resp_cmd_metric(int i);
/* Parses and executes the commands buffered in c->in of a RESP connection. */
void srv_resp_process(struct srv_conn *c);
/* Runs the handler of a RESP store command (x->req->rcmd) on x. */
int srv_resp_exec(struct srv_ctx *x);
/* Encodes the reply of a RESP command (rc == 0) or its error into x->req->frame (NULL when
 * out of memory: the connection is then closed, since later replies would be misordered). */
void srv_resp_pack(struct srv_ctx *x, int rc);
/* Frees the RESP state of a connection. */
void srv_resp_conn_free(struct srv_conn *c);

/* Frees the joins opened by connection `conn_id` (called when the connection is freed, when
 * no request of it is executing). */
void srv_joins_drop_conn(struct srv_server *s, uint64_t conn_id);

/* ---- connections (srv_conn.c) ----
 * Connection states (both backends):
 *   OPEN    -> reading frames and executing them;
 *   OPEN    -> CLOSING on EOF (after pending responses are sent), protocol error (after the
 *              error response is sent), auth failure, idle/stall timeout, shutdown;
 *   CLOSING -> the backend has shut the socket; when its I/O is finished (io_done) and no
 *              request is executing (inflight == 0) the conn is freed.
 * Invariants: inflight <= max_inflight; reading is paused while inflight == max_inflight or
 * unsent output > max_out, so per-connection memory is bounded by max_frame + max_out +
 * max_inflight responses.
 * Proven: an OPEN connection is "unproven" until it has sent a valid request (after auth when
 * a token is required). Unproven connections sit on their net's candidate list, least recently
 * active first; at --max-conns the head is closed to admit a newcomer (evicted), and one still
 * unproven after --handshake-timeout is closed. Any connection whose current frame stays
 * incomplete for --frame-timeout is closed. A connection is on the candidate list iff it is
 * OPEN and unproven (srv_conn_assert_state). */
enum srv_conn_state { SRV_CONN_OPEN, SRV_CONN_CLOSING };


struct srv_conn {
	struct srv_net *net;
	uint64_t id;
	int fd;
	enum srv_proto proto;
	enum srv_conn_state state;
	int authed;
	int eof;          /* peer closed its side: close once answered */
	int close_after;  /* close once the output is flushed (protocol error, auth) */
	int io_done;      /* the backend no longer uses the socket */
	int read_paused;
	int busy;         /* a callback of this conn is on the stack: do not free yet */
	uint32_t inflight;
	struct srv_buf in;
	int64_t last_active_us; /* monotonic */
	int64_t out_full_since; /* monotonic, 0 = output under the limit */
	int64_t created_us;     /* monotonic */
	int64_t frame_start_us; /* first byte of the incomplete frame in `in` (0 = none) */
	int partial;            /* parsing stopped on an incomplete frame (not on a limit) */
	int proven;             /* sent a valid (authenticated) request */
	int on_cand;            /* on the net's candidate list */
	struct srv_conn *prev, *next;   /* net's list */
	struct srv_conn *cprev, *cnext; /* net's candidate list (unproven, LRU first) */
	/* RESP: replies leave in command order. Requests are numbered (seq_next) as they are
	 * parsed; a finished one waits in `held` (sorted by seq) until every earlier one has been
	 * sent (seq_sent). A held reply still counts in inflight, so they are bounded too. */
	struct srv_resp_conn *resp;
	uint64_t seq_next, seq_sent;
	struct srv_req *held;
};

/* The network backend's side of a connection and of a network thread. */
struct srv_backend {
	const char *name;
	/* Sets up net->be_state for the listening socket; fails (e.g. io_uring blocked). */
	int (*init)(struct srv_net *n, struct st_error *err);
	/* Runs the loop until the server stops and every connection is gone. */
	void (*run)(struct srv_net *n);
	void (*fini)(struct srv_net *n);
	/* Queues response bytes for sending. */
	int (*write)(struct srv_conn *c, const void *p, size_t n);
	size_t (*out_pending)(struct srv_conn *c);
	void (*set_read)(struct srv_conn *c, int on);
	/* Takes over an accepted socket as a new connection (srv_conn_init); fails when out of
	 * memory (the caller closes fd). */
	int (*adopt)(struct srv_net *n, int fd, enum srv_proto proto);
	/* Shuts the socket; the backend sets io_done and calls srv_conn_maybe_free later. */
	void (*shut)(struct srv_conn *c);
	void (*free_conn)(struct srv_conn *c);
};

extern const struct srv_backend srv_backend_uring;
extern const struct srv_backend srv_backend_epoll;

struct srv_net {
	int idx;
	struct srv_server *srv;
	const struct srv_backend *be;
	void *be_state;
	int efd;            /* eventfd: completions, handed-over sockets and shutdown */
	atomic_int load;    /* connections of this thread, counting those being handed over */
	pthread_t thread;
	pthread_mutex_t done_mu;
	struct srv_req *done_head, *done_tail;
	int done_signaled;  /* an eventfd write is pending (under done_mu) */
	/* Accepted sockets handed over by another network thread (under done_mu). */
	struct srv_handoff {
		int fd;
		enum srv_proto proto;
	} *handoff;
	size_t nhandoff, caphandoff;
	struct srv_conn *conns;
	size_t nconns;
	struct srv_conn *cand_head, *cand_tail; /* unproven connections, least recently active first */
	atomic_int ncand;                        /* length of the candidate list */
	atomic_int evict_req;                    /* evictions asked by other threads at the limit */
	atomic_int reap_req;                     /* another thread asks for srv_net_reap_gone */
	int64_t reap_after_us;                   /* a reap that found nothing: not again before */
	/* Requests parsed this iteration, not yet submitted: [0] reads, [1] the rest. */
	struct {
		struct srv_req *head, *tail;
		size_t n;
	} batch[2];
	int64_t last_tick_us;
	int accepting;
};

/* Called by the backend. */
void srv_conn_init(struct srv_conn *c, struct srv_net *n, int fd, enum srv_proto proto);
/* A socket accepted on listener `proto`: admitted (srv_net_admit), then adopted by the least
 * loaded network thread, this one on a tie. The kernel may wake the same thread for every
 * accept on a shared socket; this keeps connections spread across the threads. */
void srv_net_accepted(struct srv_net *n, int fd, enum srv_proto proto);
/* New bytes from the socket: buffers, parses and dispatches whole frames. */
void srv_conn_input(struct srv_conn *c, const void *p, size_t n);
/* Peer closed its side (or read error when err != 0). */
void srv_conn_eof(struct srv_conn *c, int err);
/* Output made progress: resumes reading/processing or finishes a close. */
void srv_conn_output_progress(struct srv_conn *c);
void srv_conn_close(struct srv_conn *c, const char *why);
/* A protocol parser consumed `consumed` bytes of c->in and stopped on an incomplete frame
 * (partial = 1) or on a limit/close (0): keeps the frame timeout's clock. */
void srv_conn_parsed(struct srv_conn *c, size_t consumed, int partial);
/* Whether the parser may take another request (open, no error pending, under the limits). */
int srv_conn_can_parse(struct srv_conn *c);
/* Takes a request into execution (counted in flight): run inline, answered from the row
 * cache, or batched for a pool, by the op flags. A request without msg already holds its
 * reply in frame and is only queued for sending. */
void srv_conn_submit(struct srv_conn *c, struct srv_req *r, unsigned flags);
/* Answers on the network thread with a reply already encoded (frame, malloc'd, taken over),
 * in order after every earlier request of the connection. */
void srv_conn_answer(struct srv_conn *c, int op, uint8_t *frame, size_t len, int failed);
/* Prefetches the row-cache entries of the latest single-entity gets among reqs (when two or
 * more), before they are submitted (kv_prefetch_latest). */
void srv_prefetch_gets(struct srv_conn *c, struct srv_req *const *reqs, size_t n);
/* Token comparison in time independent of where the first difference is. */
int srv_token_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* Marks a connection as having sent a valid request: no longer a candidate for eviction. */
void srv_conn_prove(struct srv_conn *c);
/* Checks the connection invariants above (aborts on violation). */
void srv_conn_assert_state(const struct srv_conn *c);
void srv_conn_maybe_free(struct srv_conn *c);
/* Accept policy: returns 0 or closes fd after telling the client why (max connections). */
int srv_net_admit(struct srv_net *n, int fd, enum srv_proto proto);
/* Closes handed-over sockets never adopted (at teardown). */
void srv_net_drop_handoffs(struct srv_net *n);
/* Drains worker completions and submits the batch; called once per loop iteration. */
void srv_net_flush(struct srv_net *n);
/* Timeouts and shutdown progress, about once a second; returns 1 when the loop may end. */
int srv_net_tick(struct srv_net *n);
/* Called by workers when a request (or a chain of them, linked by next) is done. */
void srv_net_complete(struct srv_net *n, struct srv_req *r);
void srv_net_complete_chain(struct srv_net *n, struct srv_req *first, struct srv_req *last);
void srv_net_wake(struct srv_net *n);

/* Opens a listening socket on "HOST:PORT" (port 0 = ephemeral; *port gets the bound one).
 * Returns the fd, or an error (e.g. "address already in use") with err set. (srv_listen.c) */
int srv_listen_open(const char *addr, int *port, struct st_error *err);

/* Frame header helpers (4-byte big-endian length). */
static inline uint32_t srv_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void srv_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* Admin HTTP (srv_admin.c): a thread with its own event_base. */
struct srv_admin;
int srv_admin_start(struct srv_server *s, struct srv_admin **out, struct st_error *err);
void srv_admin_stop(struct srv_admin *a);
int srv_admin_port(const struct srv_admin *a);
/* The /status document (also the status op's answer): caller frees. */
char *srv_status_json(struct srv_server *s);

#endif
