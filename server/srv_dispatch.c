/* Request dispatch: the handler table (one function per protocol operation), the per-request
 * context that owns each response's storage, and response packing. Runs on worker threads
 * (and on network threads for inline and row-cache reads). */
#include "server/srv.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_log.h"

const struct srv_op srv_ops[] = {
	[0] = {"invalid", NULL, 0},
	[STRATA__REQUEST__OP_AUTH] = {"auth", NULL, SRV_OPF_CONN},
	[STRATA__REQUEST__OP_PING] = {"ping", srv_op_ping, SRV_OPF_INLINE},
	[STRATA__REQUEST__OP_STATUS] = {"status", srv_op_status, SRV_OPF_READ},
	[STRATA__REQUEST__OP_TABLE_CREATE] = {"table_create", srv_op_table_create, 0},
	[STRATA__REQUEST__OP_TABLE_GET] = {"table_get", srv_op_table_get, SRV_OPF_READ},
	[STRATA__REQUEST__OP_TABLE_LIST] = {"table_list", srv_op_table_list, 0},
	[STRATA__REQUEST__OP_TABLE_ALTER] = {"table_alter", srv_op_table_alter, 0},
	[STRATA__REQUEST__OP_TABLE_DROP] = {"table_drop", srv_op_table_drop, 0},
	[STRATA__REQUEST__OP_PUT] = {"put", srv_op_put, 0},
	[STRATA__REQUEST__OP_DEL] = {"delete", srv_op_delete, 0},
	[STRATA__REQUEST__OP_GET] = {"get", srv_op_get, SRV_OPF_READ | SRV_OPF_CACHED},
	[STRATA__REQUEST__OP_HISTORY] = {"history", srv_op_history, SRV_OPF_READ},
	[STRATA__REQUEST__OP_JOIN_OPEN] = {"join_open", srv_op_join_open, 0},
	[STRATA__REQUEST__OP_JOIN_PUSH] = {"join_push", srv_op_join_push, 0},
	[STRATA__REQUEST__OP_JOIN_CLOSE] = {"join_close", srv_op_join_close, 0},
	[STRATA__REQUEST__OP_PRELOAD_SUBMIT] = {"preload_submit", srv_op_preload_submit, 0},
	[STRATA__REQUEST__OP_JOB_GET] = {"job_get", srv_op_job_get, 0},
	[STRATA__REQUEST__OP_JOB_LIST] = {"job_list", srv_op_job_list, 0},
	[STRATA__REQUEST__OP_JOB_CANCEL] = {"job_cancel", srv_op_job_cancel, 0},
	[STRATA__REQUEST__OP_CLUSTER] = {"cluster", srv_op_cluster, 0},
	[STRATA__REQUEST__OP_ADMIN] = {"admin", srv_op_admin, 0},
};
const int srv_nops = (int)(sizeof(srv_ops) / sizeof(srv_ops[0]));

const struct srv_op *srv_op_find(int op_case)
{
	if (op_case <= 0 || op_case >= srv_nops || !srv_ops[op_case].name)
		return NULL;
	return &srv_ops[op_case];
}

/* ---- the per-request context ---- */

struct srv_ctx_block {
	struct srv_ctx_block *next;
	_Alignas(16) uint8_t data[];
};

static void srv_ctx_init(struct srv_ctx *x, struct srv_server *s, struct srv_req *req,
			 unsigned read_flags)
{
	x->s = s;
	x->req = req;
	x->m = req->msg;
	strata__response__init(&x->resp);
	x->resp.id = req->msg->id;
	x->err.code = 0;
	x->err.msg[0] = '\0';
	x->read_flags = read_flags;
	x->kres = NULL;
	x->nkres = 0;
	x->blocks = NULL;
	x->cur = x->inline_buf;
	x->left = sizeof(x->inline_buf);
	x->ndefer = 0;
}

/* Runs the deferred releases (newest first) and frees the arena. */
static void srv_ctx_release(struct srv_ctx *x)
{
	while (x->ndefer > 0) {
		x->ndefer--;
		x->defer[x->ndefer].fn(x->defer[x->ndefer].p, x->defer[x->ndefer].n);
	}
	while (x->blocks) {
		struct srv_ctx_block *next = x->blocks->next;
		free(x->blocks);
		x->blocks = next;
	}
}

void *srv_ctx_alloc(struct srv_ctx *x, size_t n, size_t size)
{
	if (size && n > (SIZE_MAX - 64) / size)
		return NULL;
	size_t bytes = (n * size + 15) & ~(size_t)15;
	if (bytes == 0)
		bytes = 16;
	if (bytes > x->left) {
		/* A new block: large requests get their own, small ones share a 16 KiB block. */
		size_t cap = bytes > 16384 ? bytes : 16384;
		struct srv_ctx_block *b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = x->blocks;
		x->blocks = b;
		x->cur = b->data;
		x->left = cap;
	}
	void *p = x->cur;
	x->cur += bytes;
	x->left -= bytes;
	memset(p, 0, bytes);
	return p;
}

void srv_ctx_defer(struct srv_ctx *x, void (*fn)(void *p, size_t n), void *p, size_t n)
{
	ST_ASSERT(x->ndefer < (int)(sizeof(x->defer) / sizeof(x->defer[0])));
	x->defer[x->ndefer].fn = fn;
	x->defer[x->ndefer].p = p;
	x->defer[x->ndefer].n = n;
	x->ndefer++;
}

int srv_ctx_nomem(struct srv_ctx *x)
{
	return st_error_set(&x->err, ST_ENOMEM, "out of memory");
}

/* ---- response frames ---- */

static int srv_pack(const Strata__Response *resp, uint8_t **frame, size_t *len);

/* Packs x's response: results straight from the store's (srv_wire.c), the rest by protobuf-c. */
static int srv_pack_ctx(const struct srv_ctx *x, uint8_t **frame, size_t *len)
{
	if (!x->kres)
		return srv_pack(&x->resp, frame, len);
	return srv_wire_results_frame(x->resp.id, x->kres, x->nkres, frame, len);
}

static int srv_pack(const Strata__Response *resp, uint8_t **frame, size_t *len)
{
	size_t n = strata__response__get_packed_size(resp);
	uint8_t *f = malloc(4 + n);
	if (!f)
		return ST_ENOMEM;
	srv_put_be32(f, (uint32_t)n);
	strata__response__pack(resp, f + 4);
	*frame = f;
	*len = 4 + n;
	return 0;
}

int srv_error_frame(uint64_t id, int code, const char *msg, uint8_t **frame, size_t *len)
{
	Strata__Response resp = STRATA__RESPONSE__INIT;
	resp.id = id;
	if (code) {
		resp.has_code = 1;
		resp.code = code;
		resp.error = (char *)(msg ? msg : st_strerror(code));
	}
	return srv_pack(&resp, frame, len);
}

/* ---- dispatch ---- */

/* Runs the request's handler and packs its response into req->frame. With read_flags
 * KV_READ_CACHED_ONLY, a read the row cache cannot answer (ST_EBUSY) returns 0 before
 * anything is packed or freed; otherwise the request message is freed and 1 returned. */
static int srv_dispatch_run(struct srv_server *s, struct srv_req *req, unsigned read_flags)
{
	struct srv_ctx x;
	srv_ctx_init(&x, s, req, read_flags);
	const struct srv_op *op = srv_op_find(req->msg->op_case);
	int rc = req->rcmd	  ? srv_resp_exec(&x)
		 : op && op->run ? op->run(&x)
				  : st_error_set(&x.err, ST_EPROTO, "unknown operation");
	int deferred = rc == ST_EBUSY && (read_flags & KV_READ_CACHED_ONLY);
	if (deferred) {
		/* nothing packed: the pool runs it again */
	} else if (req->rcmd) {
		srv_resp_pack(&x, rc);
	} else if (rc) {
		if (!x.err.msg[0])
			st_error_set(&x.err, rc, "%s", st_strerror(rc));
		req->failed = 1;
		if (srv_error_frame(x.resp.id, rc, x.err.msg, &req->frame, &req->frame_len))
			req->frame = NULL;
	} else if (srv_pack_ctx(&x, &req->frame, &req->frame_len)) {
		req->failed = 1;
		if (srv_error_frame(x.resp.id, ST_ENOMEM, "out of memory packing the response",
				    &req->frame, &req->frame_len))
			req->frame = NULL;
	}
	srv_ctx_release(&x);
	if (deferred)
		return 0;
	srv_req_free_msg(req);
	return 1;
}

/* ---- requests ---- */

struct srv_arena_block {
	struct srv_arena_block *next;
	_Alignas(16) uint8_t data[];
};

struct srv_req *srv_req_new(void)
{
	struct srv_req *r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, offsetof(struct srv_req, arena_inline));
	r->arena_cur = r->arena_inline;
	r->arena_left = sizeof(r->arena_inline);
	return r;
}

static void *srv_arena_alloc(void *data, size_t size)
{
	struct srv_req *r = data;
	size = (size + 15) & ~(size_t)15;
	if (size > r->arena_left) {
		size_t cap = size > 4096 ? size : 4096;
		struct srv_arena_block *b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = r->arena_blocks;
		r->arena_blocks = b;
		r->arena_cur = b->data;
		r->arena_left = cap;
	}
	void *p = r->arena_cur;
	r->arena_cur += size;
	r->arena_left -= size;
	return p;
}

static void srv_arena_free(void *data, void *p)
{
	(void)data, (void)p; /* everything goes at once in srv_req_free_msg */
}

Strata__Request *srv_req_unpack(struct srv_req *r, const uint8_t *p, size_t n)
{
	ProtobufCAllocator a = {srv_arena_alloc, srv_arena_free, r};
	r->msg = strata__request__unpack(&a, n, p);
	return r->msg;
}

void srv_req_free_msg(struct srv_req *req)
{
	if (req->rcmd)
		free(req->msg); /* one block (srv_resp.c) */
	while (req->arena_blocks) {
		struct srv_arena_block *next = req->arena_blocks->next;
		free(req->arena_blocks);
		req->arena_blocks = next;
	}
	req->arena_cur = req->arena_inline;
	req->arena_left = sizeof(req->arena_inline);
	req->msg = NULL;
}

void srv_req_free(struct srv_req *r)
{
	srv_req_free_msg(r);
	free(r->frame);
	free(r);
}

void srv_dispatch(struct srv_server *s, struct srv_req *req)
{
	srv_dispatch_run(s, req, 0);
}

int srv_dispatch_cached(struct srv_server *s, struct srv_req *req)
{
	return srv_dispatch_run(s, req, KV_READ_CACHED_ONLY);
}
