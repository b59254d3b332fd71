/* The Redis-protocol port (--resp): RESP2/RESP3 commands mapped onto the same operation
 * handlers as the protobuf protocol (srv_ops[]), sharing the connection core's auth, limits,
 * metrics and both io backends.
 *
 * A command is looked up in srv_resp_cmds[] (one row per command). Connection commands
 * (PING, HELLO, AUTH, CLIENT, QUIT, ...) are answered on the network thread. Store commands
 * build a Strata__Request (one malloc'd block: the request, its sub-request, pointer arrays and
 * copies of the arguments) that goes through the same path as a decoded protobuf request:
 * row-cache hit on the network thread, else the read or write pool, then srv_dispatch runs the
 * handler and, instead of packing protobuf, the row's `reply` encodes the response as RESP.
 * RESP has no request ids, so replies leave in command order (srv_conn.c holds early ones). */
#include "server/srv.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/st_log.h"
#include "common/st_time.h"
#include "server/srv_resp.h"
#include "store/kv_value.h"

/* Arguments before authentication: enough for HELLO 3 AUTH user pass SETNAME name. */
#define SRV_RESP_UNAUTH_ARGS 16
#define SRV_RESP_UNAUTH_BULK 16384
#define SRV_RESP_MAX_INLINE 65536

/* Row-cache reads parsed from one received buffer wait here, unsubmitted, so that their
 * entries are prefetched together (srv_prefetch_gets); any other reply first submits them,
 * so replies keep command order. Empty outside srv_resp_process. */
#define SRV_RESP_BATCH 32

struct srv_resp_conn {
	struct srv_resp_parser p;
	int resp3;  /* HELLO 3 was accepted */
	char *name; /* CLIENT SETNAME (owned) */
	struct srv_req *pend[SRV_RESP_BATCH];
	int npend;
};


/* One command being handled on the network thread. */
struct srv_resp_build {
	struct srv_conn *c;
	const uint8_t *base; /* the command's bytes */
	const struct srv_resp_arg *v;
	size_t n;
	/* store commands: the request, one block */
	Strata__Request *msg;
	uint8_t *cur;
	size_t left;
	/* an error reply (code and message) when building failed */
	const char *eprefix; /* RESP error code word; NULL: derived from code */
	int code;
	char emsg[256];
};

enum srv_resp_flags {
	SRV_RESPF_NOAUTH = 1u << 0, /* allowed before authentication */
	SRV_RESPF_WRITE = 1u << 1,  /* needs --resp-writes */
};

struct srv_resp_cmd {
	const char *name;   /* upper case */
	const char *metric; /* metrics label */
	int arity;          /* argc with the name: > 0 exactly, < 0 at least -arity */
	unsigned flags;     /* SRV_RESPF_* */
	/* Connection commands: writes the reply to out on the network thread; 0 or ST_ENOMEM. */
	int (*conn)(struct srv_resp_build *b, struct srv_buf *out);
	/* Store commands: builds b->msg (0) or sets an error (b->code). */
	int (*build)(struct srv_resp_build *b);
	/* Runs on x (NULL: the protobuf handler of the request's op, srv_ops[]). */
	int (*run)(struct srv_ctx *x);
	/* Encodes x->resp as this command's reply. */
	int (*reply)(struct srv_ctx *x, struct srv_buf *out, int resp3);
	unsigned opflags; /* SRV_OPF_*: where it runs */
};

/* ---- arguments ---- */

static int arg_is(const struct srv_resp_build *b, size_t i, const char *word)
{
	size_t n = strlen(word);
	return i < b->n && b->v[i].len == n &&
	       strncasecmp((const char *)b->base + b->v[i].off, word, n) == 0;
}

static const char *arg_p(const struct srv_resp_build *b, size_t i)
{
	return (const char *)b->base + b->v[i].off;
}

static int build_error(struct srv_resp_build *b, int code, const char *prefix, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));
static int build_error(struct srv_resp_build *b, int code, const char *prefix, const char *fmt,
		       ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->emsg, sizeof(b->emsg), fmt, ap);
	va_end(ap);
	b->code = code;
	b->eprefix = prefix;
	return code;
}

/* ---- the request block ---- */

/* Allocates the request block for this command: room for the request, one sub-request, every
 * argument copied with a NUL and a few pointers per argument. */
static int msg_new(struct srv_resp_build *b, int op_case)
{
	size_t bytes = sizeof(Strata__Request) + 512;
	for (size_t i = 0; i < b->n; i++)
		bytes += b->v[i].len + 1 + sizeof(Strata__Cell) + sizeof(Strata__Value) +
			 sizeof(ProtobufCBinaryData) + 3 * sizeof(void *) + 32;
	uint8_t *p = malloc(bytes);
	if (!p)
		return build_error(b, ST_ENOMEM, "OOM", "out of memory");
	b->msg = (Strata__Request *)p;
	strata__request__init(b->msg);
	b->msg->op_case = op_case;
	b->cur = p + sizeof(Strata__Request);
	b->left = bytes - sizeof(Strata__Request);
	return 0;
}

static void *msg_alloc(struct srv_resp_build *b, size_t n)
{
	size_t pad = (size_t)(-(uintptr_t)b->cur & 7);
	ST_ASSERT(pad + n <= b->left);
	void *p = b->cur + pad;
	b->cur += pad + n;
	b->left -= pad + n;
	memset(p, 0, n);
	return p;
}

static char *msg_str(struct srv_resp_build *b, const char *s, size_t n)
{
	ST_ASSERT(n + 1 <= b->left);
	char *p = (char *)b->cur;
	memcpy(p, s, n);
	p[n] = '\0';
	b->cur += n + 1;
	b->left -= n + 1;
	return p;
}

static char *msg_arg(struct srv_resp_build *b, size_t i)
{
	return msg_str(b, arg_p(b, i), b->v[i].len);
}

/* Splits argument i, "table:entity", at its first ':'. */
static int msg_key(struct srv_resp_build *b, size_t i, char **table, ProtobufCBinaryData *ent)
{
	const char *k = arg_p(b, i);
	const char *colon = memchr(k, ':', b->v[i].len);
	if (!colon || colon == k)
		return build_error(b, ST_EINVAL, NULL, "key '%.*s' is not TABLE:ENTITY",
				   (int)(b->v[i].len > 100 ? 100 : b->v[i].len), k);
	*table = msg_str(b, k, (size_t)(colon - k));
	size_t elen = b->v[i].len - (size_t)(colon - k) - 1;
	ent->data = (uint8_t *)msg_str(b, colon + 1, elen);
	ent->len = elen;
	return 0;
}

static Strata__GetReq *msg_get(struct srv_resp_build *b)
{
	if (msg_new(b, STRATA__REQUEST__OP_GET))
		return NULL;
	Strata__GetReq *g = msg_alloc(b, sizeof(*g));
	strata__get_req__init(g);
	b->msg->get = g;
	return g;
}

/* Arguments [from, to) as the request's feature names. */
static void msg_features(struct srv_resp_build *b, Strata__GetReq *g, size_t from, size_t to)
{
	g->n_features = to - from;
	g->features = msg_alloc(b, (to - from) * sizeof(char *));
	for (size_t i = from; i < to; i++)
		g->features[i - from] = msg_arg(b, i);
}

static void msg_entities(struct srv_resp_build *b, Strata__GetReq *g, size_t from, size_t to)
{
	g->n_entities = to - from;
	g->entities = msg_alloc(b, (to - from) * sizeof(*g->entities));
	for (size_t i = from; i < to; i++) {
		g->entities[i - from].len = b->v[i].len;
		g->entities[i - from].data = (uint8_t *)msg_arg(b, i);
	}
}

/* ---- builders ---- */

/* HMGET table:entity f1 f2 ... */
static int build_hmget(struct srv_resp_build *b)
{
	Strata__GetReq *g = msg_get(b);
	if (!g)
		return b->code;
	g->n_entities = 1;
	g->entities = msg_alloc(b, sizeof(*g->entities));
	if (msg_key(b, 1, &g->table, &g->entities[0]))
		return b->code;
	msg_features(b, g, 2, b->n);
	return 0;
}

/* HGETALL table:entity (the features are filled in from the schema by run_hgetall) */
static int build_hgetall(struct srv_resp_build *b)
{
	return build_hmget(b);
}

/* [ASOF ts] [KNOWNAT ts] from argument *i on; stops at the first other word. */
static int build_times(struct srv_resp_build *b, size_t *i, Strata__GetReq *g)
{
	while (*i + 1 < b->n && (arg_is(b, *i, "ASOF") || arg_is(b, *i, "KNOWNAT"))) {
		int64_t ts;
		const char *s = arg_p(b, *i + 1);
		size_t n = b->v[*i + 1].len;
		if (n == 3 && !strncasecmp(s, "now", 3))
			ts = st_now_us();
		else if (st_ts_parse(s, n, ST_TS_MS, &ts))
			return build_error(b, ST_EINVAL, NULL,
					   "bad timestamp '%.*s' (ISO-8601, 'now' or integer "
					   "milliseconds since the epoch)",
					   (int)(n > 64 ? 64 : n), s);
		if (arg_is(b, *i, "ASOF"))
			g->as_of = ts;
		else
			g->known_at = ts;
		*i += 2;
	}
	return 0;
}

/* STRATA.GET table entity [ASOF ts] [KNOWNAT ts] FEATURES f1 f2 ... */
static int build_sget(struct srv_resp_build *b)
{
	Strata__GetReq *g = msg_get(b);
	if (!g)
		return b->code;
	g->table = msg_arg(b, 1);
	msg_entities(b, g, 2, 3);
	size_t i = 3;
	if (build_times(b, &i, g))
		return b->code;
	if (!arg_is(b, i, "FEATURES") || i + 1 >= b->n)
		return build_error(b, ST_EINVAL, NULL,
				   "syntax: STRATA.GET table entity [ASOF ts] [KNOWNAT ts] "
				   "FEATURES f1 [f2 ...]");
	msg_features(b, g, i + 1, b->n);
	return 0;
}

/* STRATA.MGET table [ASOF ts] [KNOWNAT ts] FEATURES f1 ... ENTITIES e1 ... */
static int build_smget(struct srv_resp_build *b)
{
	Strata__GetReq *g = msg_get(b);
	if (!g)
		return b->code;
	g->table = msg_arg(b, 1);
	size_t i = 2;
	if (build_times(b, &i, g))
		return b->code;
	size_t ents = i + 1;
	while (ents < b->n && !arg_is(b, ents, "ENTITIES"))
		ents++;
	if (!arg_is(b, i, "FEATURES") || ents == i + 1 || ents + 1 >= b->n)
		return build_error(b, ST_EINVAL, NULL,
				   "syntax: STRATA.MGET table [ASOF ts] [KNOWNAT ts] FEATURES f1 "
				   "[f2 ...] ENTITIES e1 [e2 ...]");
	msg_features(b, g, i + 1, ents);
	msg_entities(b, g, ents + 1, b->n);
	return 0;
}

/* HSET table:entity f1 v1 [f2 v2 ...]: a put at now; values are text, typed by the schema
 * when run_hset executes. */
static int build_hset(struct srv_resp_build *b)
{
	if (b->n % 2)
		return build_error(b, ST_EINVAL, NULL,
				   "wrong number of arguments for 'hset' command");
	uint32_t max_value = b->c->net->srv->cfg.max_value;
	for (size_t i = 3; i < b->n; i += 2)
		if (b->v[i].len > max_value)
			return build_error(b, ST_ELIMIT, NULL,
					   "value of %zu bytes exceeds the limit of %u bytes "
					   "(--max-value)",
					   b->v[i].len, max_value);
	if (msg_new(b, STRATA__REQUEST__OP_PUT))
		return b->code;
	Strata__PutReq *p = msg_alloc(b, sizeof(*p));
	strata__put_req__init(p);
	b->msg->put = p;
	ProtobufCBinaryData ent;
	if (msg_key(b, 1, &p->table, &ent))
		return b->code;
	size_t n = (b->n - 2) / 2;
	int64_t now = st_now_us();
	p->n_cells = n;
	p->cells = msg_alloc(b, n * sizeof(*p->cells));
	for (size_t k = 0; k < n; k++) {
		Strata__Cell *c = msg_alloc(b, sizeof(*c));
		Strata__Value *v = msg_alloc(b, sizeof(*v));
		strata__cell__init(c);
		strata__value__init(v);
		c->entity = ent;
		c->feature = msg_arg(b, 2 + 2 * k);
		c->ts = now;
		v->type = KV_STR;
		v->has_bytes = 1;
		v->bytes.len = b->v[3 + 2 * k].len;
		v->bytes.data = (uint8_t *)msg_arg(b, 3 + 2 * k);
		c->value = v;
		p->cells[k] = c;
	}
	return 0;
}

/* INFO [section]: the server's status (the status operation) as INFO text. */
static int build_info(struct srv_resp_build *b)
{
	if (msg_new(b, STRATA__REQUEST__OP_STATUS))
		return b->code;
	b->msg->status = msg_alloc(b, sizeof(*b->msg->status));
	strata__status_req__init(b->msg->status);
	return 0;
}

/* ---- runs that differ from the protobuf handler ---- */

static void srv_resp_table_release(void *t, size_t n)
{
	(void)n;
	kv_table_free(t);
}

static void srv_resp_values_release(void *v, size_t n)
{
	struct kv_value *vals = v;
	for (size_t i = 0; i < n; i++)
		kv_value_release(&vals[i]);
}

/* HGETALL: a get of every feature of the table's schema. */
static int run_hgetall(struct srv_ctx *x)
{
	const Strata__GetReq *g0 = x->m->get;
	struct kv_table *t;
	int rc = kv_table_get(x->s->db, g0->table, &t, &x->err);
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_resp_table_release, t, 0);
	Strata__Request *m = srv_ctx_alloc(x, 1, sizeof(*m));
	Strata__GetReq *g = srv_ctx_alloc(x, 1, sizeof(*g));
	char **feats = srv_ctx_alloc(x, t->nfeatures, sizeof(*feats));
	if (!m || !g || !feats)
		return srv_ctx_nomem(x);
	*m = *x->m;
	*g = *g0;
	for (uint32_t i = 0; i < t->nfeatures; i++)
		feats[i] = t->features[i].name;
	g->features = feats;
	g->n_features = t->nfeatures;
	m->get = g;
	x->m = m;
	if (t->nfeatures == 0) { /* nothing to read: an empty hash */
		x->resp.result_case = STRATA__RESPONSE__RESULT_RESULTS;
		x->kres = srv_ctx_alloc(x, 0, sizeof(*x->kres));
		return x->kres ? 0 : srv_ctx_nomem(x);
	}
	return srv_op_get(x);
}

/* HSET: the text values typed by the table's schema (kv_value_parse, as CSV preload and the
 * CLI read them), then one kv_put. */
static int run_hset(struct srv_ctx *x)
{
	const Strata__PutReq *p = x->m->put;
	struct kv_table *t;
	int rc = kv_table_get(x->s->db, p->table, &t, &x->err);
	if (rc)
		return rc;
	srv_ctx_defer(x, srv_resp_table_release, t, 0);
	struct kv_cell *cells = srv_ctx_alloc(x, p->n_cells, sizeof(*cells));
	if (!cells)
		return srv_ctx_nomem(x);
	size_t parsed = 0;
	for (size_t i = 0; i < p->n_cells && !rc; i++) {
		const Strata__Cell *c = p->cells[i];
		const struct kv_feature_def *f = kv_table_feature(t, c->feature);
		cells[i].entity = (const char *)c->entity.data;
		cells[i].entity_len = c->entity.len;
		cells[i].feature = c->feature;
		cells[i].ts = c->ts;
		if (!f)
			rc = st_error_set(&x->err, ST_ENOTFOUND, "table %s has no feature '%s'",
					  t->name, c->feature);
		else if (!(rc = kv_value_parse((const char *)c->value->bytes.data,
					       c->value->bytes.len, f, &cells[i].value, &x->err)))
			parsed++;
	}
	/* cells[] is zeroed: release the values parsed so far through a view of them */
	struct kv_value *vals = srv_ctx_alloc(x, parsed, sizeof(*vals));
	if (!vals) {
		for (size_t i = 0; i < parsed; i++)
			kv_value_release(&cells[i].value);
		return srv_ctx_nomem(x);
	}
	for (size_t i = 0; i < parsed; i++)
		vals[i] = cells[i].value;
	srv_ctx_defer(x, srv_resp_values_release, vals, parsed);
	if (rc)
		return rc;
	return kv_put(x->s->db, p->table, cells, p->n_cells, &x->err);
}

/* ---- replies ---- */

static int w_value(struct srv_buf *o, const struct kv_result *r, int resp3)
{
	if (!r->found)
		return srv_resp_w_nil(o, resp3);
	const struct kv_value *v = &r->value;
	int rc = 0;
	switch (v->type) {
	case KV_I64:
		return srv_resp_w_int(o, v->i64);
	case KV_F64:
		return srv_resp_w_double(o, v->f64, 0, resp3);
	case KV_F32:
		return srv_resp_w_double(o, v->f32, 1, resp3);
	case KV_STR:
	case KV_BYTES:
		return srv_resp_w_bulk(o, v->ptr, v->len);
	case KV_F32VEC:
		rc = srv_resp_w_agg(o, '*', v->len);
		for (uint32_t i = 0; i < v->len && !rc; i++)
			rc = srv_resp_w_double(o, ((const float *)v->ptr)[i], 1, resp3);
		return rc;
	case KV_I64LIST:
		rc = srv_resp_w_agg(o, '*', v->len);
		for (uint32_t i = 0; i < v->len && !rc; i++)
			rc = srv_resp_w_int(o, ((const int64_t *)v->ptr)[i]);
		return rc;
	default:
		return srv_resp_w_nil(o, resp3);
	}
}

static int w_values(struct srv_buf *o, const struct kv_result *rs, size_t n, int resp3)
{
	int rc = srv_resp_w_agg(o, '*', n);
	for (size_t i = 0; i < n && !rc; i++)
		rc = w_value(o, &rs[i], resp3);
	return rc;
}

/* HMGET, STRATA.GET: one value per feature, nil where not present. */
static int reply_values(struct srv_ctx *x, struct srv_buf *o, int resp3)
{
	return w_values(o, x->kres, x->nkres, resp3);
}

/* HGETALL: feature -> value for the present features (a map in RESP3, pairs in RESP2). */
static int reply_hash(struct srv_ctx *x, struct srv_buf *o, int resp3)
{
	const Strata__GetReq *g = x->m->get;
	size_t present = 0;
	for (size_t i = 0; i < x->nkres; i++)
		present += x->kres[i].found;
	int rc = resp3 ? srv_resp_w_agg(o, '%', present) : srv_resp_w_agg(o, '*', 2 * present);
	for (size_t i = 0; i < x->nkres && !rc; i++) {
		if (!x->kres[i].found)
			continue;
		rc = srv_resp_w_bulk(o, g->features[i], strlen(g->features[i]));
		if (!rc)
			rc = w_value(o, &x->kres[i], resp3);
	}
	return rc;
}

/* STRATA.MGET: one array of feature values per entity. */
static int reply_rows(struct srv_ctx *x, struct srv_buf *o, int resp3)
{
	size_t nf = x->m->get->n_features, ne = x->m->get->n_entities;
	ST_ASSERT(x->nkres == nf * ne);
	int rc = srv_resp_w_agg(o, '*', ne);
	for (size_t e = 0; e < ne && !rc; e++)
		rc = w_values(o, x->kres + e * nf, nf, resp3);
	return rc;
}

/* HSET: the number of fields written. */
static int reply_count(struct srv_ctx *x, struct srv_buf *o, int resp3)
{
	(void)resp3;
	return srv_resp_w_int(o, (int64_t)x->m->put->n_cells);
}

/* Appends "key:value\r\n" for each member of a JSON object (nested objects flattened with
 * key_sub names). */
static int info_lines(struct srv_buf *o, const char *prefix, json_t *obj)
{
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach(obj, k, v) {
		char name[192];
		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "_" : "", k);
		if (json_is_object(v)) {
			rc |= info_lines(o, name, v);
			continue;
		}
		char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *text = s ? s : json_is_string(v) ? json_string_value(v) : "";
		rc |= srv_buf_append(o, name, strlen(name));
		rc |= srv_buf_append(o, ":", 1);
		for (const char *c = text; *c && !rc; c++)
			rc |= srv_buf_append(o, *c == '\r' || *c == '\n' ? " " : c, 1);
		rc |= srv_buf_append(o, "\r\n", 2);
		free(s);
	}
	return rc ? ST_ENOMEM : 0;
}

/* INFO: the /status document as "# Strata" key:value lines (a bulk string; verbatim text in
 * RESP3 clients reads the same). */
static int reply_info(struct srv_ctx *x, struct srv_buf *o, int resp3)
{
	(void)resp3;
	json_t *st = json_loads(x->resp.status_json, 0, NULL);
	if (!st)
		return ST_ENOMEM;
	struct srv_buf text = {0};
	int rc = srv_buf_append(&text, "# Strata\r\n", 10);
	if (!rc)
		rc = info_lines(&text, "", st);
	json_decref(st);
	if (!rc)
		rc = srv_resp_w_bulk(o, text.p, text.len);
	srv_buf_release(&text);
	return rc;
}

/* ---- connection commands ---- */

static struct srv_resp_conn *rconn(struct srv_resp_build *b)
{
	return b->c->resp;
}

static int conn_error(struct srv_resp_build *b, struct srv_buf *o, const char *msg)
{
	b->code = ST_EINVAL;
	return srv_resp_w_simple(o, '-', msg);
}

/* PING [message] */
static int conn_ping(struct srv_resp_build *b, struct srv_buf *o)
{
	if (b->n == 2)
		return srv_resp_w_bulk(o, arg_p(b, 1), b->v[1].len);
	return srv_resp_w_simple(o, '+', "PONG");
}

static int conn_echo(struct srv_resp_build *b, struct srv_buf *o)
{
	return srv_resp_w_bulk(o, arg_p(b, 1), b->v[1].len);
}

/* Checks a password against the token (user "default" or none); sets authed. */
static int conn_check_auth(struct srv_resp_build *b, size_t user, size_t pass)
{
	const struct srv_config *cfg = &b->c->net->srv->cfg;
	int ok = (!user || arg_is(b, user, "default")) &&
		 srv_token_equal((const uint8_t *)arg_p(b, pass), b->v[pass].len,
				 (const uint8_t *)cfg->token, cfg->token_len);
	if (!ok) {
		atomic_fetch_add(&b->c->net->srv->m.auth_failures, 1);
		st_warn("conn %llu: RESP authentication failed", (unsigned long long)b->c->id);
		return 0;
	}
	b->c->authed = 1;
	return 1;
}

#define SRV_RESP_WRONGPASS "WRONGPASS invalid username-password pair or user is disabled."

/* AUTH [user] password */
static int conn_auth(struct srv_resp_build *b, struct srv_buf *o)
{
	if (!b->c->net->srv->cfg.token)
		return conn_error(b, o,
				  "ERR AUTH <password> called without any password configured "
				  "(stratad runs without --auth-token-file)");
	if (b->n > 3)
		return conn_error(b, o, "ERR syntax error");
	if (!conn_check_auth(b, b->n == 3 ? 1 : 0, b->n - 1))
		return conn_error(b, o, SRV_RESP_WRONGPASS);
	return srv_resp_w_simple(o, '+', "OK");
}

static int conn_setname(struct srv_resp_build *b, struct srv_buf *o, size_t i)
{
	for (size_t k = 0; k < b->v[i].len; k++) {
		char ch = arg_p(b, i)[k];
		if (ch <= ' ' || ch > '~')
			return conn_error(b, o,
					  "ERR Client names cannot contain spaces, newlines or "
					  "special characters.");
	}
	char *name = strndup(arg_p(b, i), b->v[i].len);
	if (!name)
		return ST_ENOMEM;
	free(rconn(b)->name);
	rconn(b)->name = name;
	return 0;
}

/* HELLO [protover [AUTH user pass] [SETNAME name]] */
static int conn_hello(struct srv_resp_build *b, struct srv_buf *o)
{
	int proto = rconn(b)->resp3 ? 3 : 2;
	size_t i = 1;
	if (b->n > 1) {
		if (b->v[1].len != 1 || (arg_p(b, 1)[0] != '2' && arg_p(b, 1)[0] != '3'))
			return conn_error(b, o, "NOPROTO unsupported protocol version");
		proto = arg_p(b, 1)[0] - '0';
		i = 2;
	}
	size_t setname = 0;
	for (; i < b->n; i++) {
		if (arg_is(b, i, "AUTH") && i + 2 < b->n) {
			if (b->c->net->srv->cfg.token && !conn_check_auth(b, i + 1, i + 2))
				return conn_error(b, o, SRV_RESP_WRONGPASS);
			i += 2;
		} else if (arg_is(b, i, "SETNAME") && i + 1 < b->n) {
			setname = ++i;
		} else {
			return conn_error(b, o, "ERR syntax error in HELLO option");
		}
	}
	if (!b->c->authed)
		return conn_error(b, o,
				  "NOAUTH HELLO must be called with the client already "
				  "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
				  "option can be used");
	int rc;
	if (setname && (rc = conn_setname(b, o, setname)))
		return rc;
	if (setname && b->code)
		return 0;
	rconn(b)->resp3 = proto == 3;
	rc = proto == 3 ? srv_resp_w_agg(o, '%', 7) : srv_resp_w_agg(o, '*', 14);
	rc |= srv_resp_w_bulk(o, "server", 6);
	rc |= srv_resp_w_bulk(o, "strata", 6);
	rc |= srv_resp_w_bulk(o, "version", 7);
	rc |= srv_resp_w_bulk(o, "1.0.0", 5);
	rc |= srv_resp_w_bulk(o, "proto", 5);
	rc |= srv_resp_w_int(o, proto);
	rc |= srv_resp_w_bulk(o, "id", 2);
	rc |= srv_resp_w_int(o, (int64_t)b->c->id);
	rc |= srv_resp_w_bulk(o, "mode", 4);
	rc |= srv_resp_w_bulk(o, "standalone", 10);
	rc |= srv_resp_w_bulk(o, "role", 4);
	rc |= srv_resp_w_bulk(o, "master", 6);
	rc |= srv_resp_w_bulk(o, "modules", 7);
	rc |= srv_resp_w_agg(o, '*', 0);
	return rc ? ST_ENOMEM : 0;
}

/* CLIENT SETNAME name | GETNAME | ID | SETINFO attr value */
static int conn_client(struct srv_resp_build *b, struct srv_buf *o)
{
	if (arg_is(b, 1, "SETNAME") && b->n == 3) {
		int rc = conn_setname(b, o, 2);
		return rc || b->code ? rc : srv_resp_w_simple(o, '+', "OK");
	}
	if (arg_is(b, 1, "GETNAME") && b->n == 2)
		return rconn(b)->name
			       ? srv_resp_w_bulk(o, rconn(b)->name, strlen(rconn(b)->name))
			       : srv_resp_w_nil(o, rconn(b)->resp3);
	if (arg_is(b, 1, "ID") && b->n == 2)
		return srv_resp_w_int(o, (int64_t)b->c->id);
	/* client libraries announce themselves (redis-py, go-redis): accepted, not kept */
	if (arg_is(b, 1, "SETINFO") && b->n == 4)
		return srv_resp_w_simple(o, '+', "OK");
	return conn_error(b, o,
			  "ERR unknown CLIENT subcommand or wrong number of arguments (SETNAME, "
			  "GETNAME, ID, SETINFO are supported)");
}

/* SELECT 0: the only database */
static int conn_select(struct srv_resp_build *b, struct srv_buf *o)
{
	if (b->v[1].len == 1 && arg_p(b, 1)[0] == '0')
		return srv_resp_w_simple(o, '+', "OK");
	return conn_error(b, o, "ERR DB index is out of range (stratad has database 0 only)");
}

static int conn_quit(struct srv_resp_build *b, struct srv_buf *o)
{
	b->c->close_after = 1;
	return srv_resp_w_simple(o, '+', "OK");
}

/* ---- the command table ---- */

static const struct srv_resp_cmd srv_resp_cmds[] = {
	{"HMGET", "resp_hmget", -3, 0, NULL, build_hmget, NULL, reply_values,
	 SRV_OPF_READ | SRV_OPF_CACHED},
	{"HGETALL", "resp_hgetall", 2, 0, NULL, build_hgetall, run_hgetall, reply_hash,
	 SRV_OPF_READ | SRV_OPF_CACHED},
	{"STRATA.GET", "resp_strata_get", -5, 0, NULL, build_sget, NULL, reply_values,
	 SRV_OPF_READ | SRV_OPF_CACHED},
	{"STRATA.MGET", "resp_strata_mget", -6, 0, NULL, build_smget, NULL, reply_rows,
	 SRV_OPF_READ | SRV_OPF_CACHED},
	{"HSET", "resp_hset", -4, SRV_RESPF_WRITE, NULL, build_hset, run_hset, reply_count, 0},
	{"INFO", "resp_info", -1, 0, NULL, build_info, NULL, reply_info, SRV_OPF_READ},
	{"PING", "resp_ping", -1, 0, conn_ping, NULL, NULL, NULL, 0},
	{"ECHO", "resp_echo", 2, 0, conn_echo, NULL, NULL, NULL, 0},
	{"HELLO", "resp_hello", -1, SRV_RESPF_NOAUTH, conn_hello, NULL, NULL, NULL, 0},
	{"AUTH", "resp_auth", -2, SRV_RESPF_NOAUTH, conn_auth, NULL, NULL, NULL, 0},
	{"CLIENT", "resp_client", -2, 0, conn_client, NULL, NULL, NULL, 0},
	{"SELECT", "resp_select", 2, 0, conn_select, NULL, NULL, NULL, 0},
	{"QUIT", "resp_quit", -1, SRV_RESPF_NOAUTH, conn_quit, NULL, NULL, NULL, 0},
};
const int srv_resp_ncmds = (int)(sizeof(srv_resp_cmds) / sizeof(srv_resp_cmds[0]));

const char *srv_resp_cmd_metric(int i)
{
	return i >= 0 && i < srv_resp_ncmds ? srv_resp_cmds[i].metric : NULL;
}

static const struct srv_resp_cmd *srv_resp_find(const uint8_t *name, size_t n)
{
	for (int i = 0; i < srv_resp_ncmds; i++)
		if (strlen(srv_resp_cmds[i].name) == n &&
		    !strncasecmp(srv_resp_cmds[i].name, (const char *)name, n))
			return &srv_resp_cmds[i];
	return NULL;
}

/* ---- execution (srv_dispatch) ---- */

int srv_resp_exec(struct srv_ctx *x)
{
	const struct srv_resp_cmd *cmd = x->req->rcmd;
	if (cmd->run)
		return cmd->run(x);
	const struct srv_op *op = srv_op_find(x->m->op_case);
	ST_ASSERT(op && op->run);
	return op->run(x);
}

/* The RESP error code word for a Strata error code. */
static const char *srv_resp_code_word(int code)
{
	switch (code) {
	case ST_ENOTFOUND:
		return "NOTFOUND";
	case ST_ETYPE:
		return "WRONGTYPE";
	case ST_ELIMIT:
		return "LIMIT";
	case ST_ERANGE:
		return "OUTOFRANGE";
	case ST_EIO:
	case ST_ECORRUPT:
		return "IOERR";
	case ST_ENOMEM:
		return "OOM";
	case ST_EAUTH:
		return "NOAUTH";
	default:
		return "ERR";
	}
}

static int srv_resp_w_error(struct srv_buf *o, const char *word, int code, const char *msg)
{
	char line[600];
	snprintf(line, sizeof(line), "%s %s", word ? word : srv_resp_code_word(code),
		 msg && *msg ? msg : st_strerror(code));
	return srv_resp_w_simple(o, '-', line);
}

void srv_resp_pack(struct srv_ctx *x, int rc)
{
	struct srv_req *r = x->req;
	struct srv_buf o = {0};
	int werr;
	if (rc) {
		r->failed = 1;
		werr = srv_resp_w_error(&o, NULL, rc, x->err.msg);
	} else {
		werr = r->rcmd->reply(x, &o, r->resp3);
	}
	if (werr) {
		r->failed = 1;
		o.len = 0;
		werr = srv_resp_w_simple(&o, '-', "OOM out of memory encoding the reply");
	}
	if (werr) {
		srv_buf_release(&o); /* no reply: the connection is closed (srv_conn.c) */
		r->frame = NULL;
		return;
	}
	r->frame = o.p;
	r->frame_len = o.len;
}

/* ---- the network side ---- */

/* Submits the pending reads, their row-cache entries prefetched first. */
static void srv_resp_flush(struct srv_conn *c)
{
	struct srv_resp_conn *rc = c->resp;
	int n = rc->npend;
	if (!n)
		return;
	rc->npend = 0;
	srv_prefetch_gets(c, rc->pend, (size_t)n);
	for (int i = 0; i < n; i++)
		srv_conn_submit(c, rc->pend[i], rc->pend[i]->rcmd->opflags);
}

/* Queues a reply made on the network thread (in order with the store commands before it). */
static void srv_resp_reply(struct srv_conn *c, int slot, struct srv_buf *o, int failed)
{
	srv_resp_flush(c);
	srv_conn_answer(c, slot, o->p, o->len, failed);
}

static void srv_resp_reply_error(struct srv_conn *c, int slot, const char *word, int code,
				 const char *msg)
{
	struct srv_buf o = {0};
	if (srv_resp_w_error(&o, word, code, msg)) {
		srv_conn_close(c, "out of memory");
		return;
	}
	srv_resp_reply(c, slot, &o, 1);
}

static void srv_resp_command(struct srv_conn *c, const uint8_t *base,
			     const struct srv_resp_parser *p)
{
	struct srv_server *s = c->net->srv;
	struct srv_resp_build b = {.c = c, .base = base, .v = p->argv, .n = p->argc};
	const struct srv_resp_cmd *cmd = srv_resp_find(base + p->argv[0].off, p->argv[0].len);
	if (!cmd) {
		char msg[200];
		snprintf(msg, sizeof(msg), "unknown command '%.*s'",
			 (int)(p->argv[0].len > 64 ? 64 : p->argv[0].len),
			 (const char *)base + p->argv[0].off);
		srv_resp_reply_error(c, 0, "ERR", ST_EINVAL, msg);
		return;
	}
	int slot = srv_nops + (int)(cmd - srv_resp_cmds);
	if (cmd->arity > 0 ? p->argc != (size_t)cmd->arity : p->argc < (size_t)-cmd->arity) {
		char msg[120];
		snprintf(msg, sizeof(msg), "wrong number of arguments for '%s' command", cmd->name);
		srv_resp_reply_error(c, slot, "ERR", ST_EINVAL, msg);
		return;
	}
	if (!c->authed && !(cmd->flags & SRV_RESPF_NOAUTH)) {
		atomic_fetch_add(&s->m.auth_failures, 1);
		srv_resp_reply_error(c, slot, "NOAUTH", ST_EAUTH, "Authentication required.");
		return;
	}
	if ((cmd->flags & SRV_RESPF_WRITE) && !s->cfg.resp_writes) {
		srv_resp_reply_error(c, slot, "READONLY", ST_EINVAL,
				     "writes are off on the RESP port (stratad --resp-writes 1)");
		return;
	}
	if (cmd->conn) {
		struct srv_buf o = {0};
		if (cmd->conn(&b, &o)) {
			srv_buf_release(&o);
			srv_conn_close(c, "out of memory");
			return;
		}
		if (c->authed && !b.code)
			srv_conn_prove(c);
		srv_resp_reply(c, slot, &o, b.code != 0);
		return;
	}
	if (cmd->build(&b)) {
		free(b.msg);
		srv_resp_reply_error(c, slot, b.eprefix, b.code, b.emsg);
		return;
	}
	srv_conn_prove(c);
	struct srv_req *r = srv_req_new();
	if (!r) {
		free(b.msg);
		srv_resp_reply_error(c, slot, "OOM", ST_ENOMEM, "out of memory");
		return;
	}
	r->msg = b.msg;
	r->op = slot;
	r->rcmd = cmd;
	r->resp3 = (uint8_t)c->resp->resp3;
	if (!(cmd->opflags & SRV_OPF_CACHED)) {
		srv_resp_flush(c);
		srv_conn_submit(c, r, cmd->opflags);
		return;
	}
	c->resp->pend[c->resp->npend++] = r;
	if (c->resp->npend == SRV_RESP_BATCH)
		srv_resp_flush(c);
}

void srv_resp_process(struct srv_conn *c)
{
	struct srv_server *s = c->net->srv;
	if (!c->resp && !(c->resp = calloc(1, sizeof(*c->resp)))) {
		srv_conn_close(c, "out of memory");
		return;
	}
	struct srv_resp_parser *p = &c->resp->p;
	if (!p->argv)
		srv_resp_parser_reset(p);
	size_t off = 0;
	int partial = 0;
	for (;;) {
		/* pending reads count against the in-flight limit once submitted */
		if (c->inflight + (uint32_t)c->resp->npend >= (uint32_t)s->cfg.max_inflight)
			srv_resp_flush(c);
		if (!srv_conn_can_parse(c))
			break;
		struct srv_resp_limits lim = {
			.max_args = c->authed ? SRV_MAX_RESULTS + 16 : SRV_RESP_UNAUTH_ARGS,
			.max_bulk = c->authed ? s->cfg.max_frame : SRV_RESP_UNAUTH_BULK,
			.max_inline = SRV_RESP_MAX_INLINE,
			.max_command = s->cfg.max_frame,
		};
		size_t used = 0;
		char emsg[160];
		int rc = srv_resp_parse(p, c->in.p + off, c->in.len - off, &lim, &used, emsg,
					sizeof(emsg));
		if (rc == SRV_RESP_PARTIAL) {
			partial = 1;
			break;
		}
		if (rc == SRV_RESP_ERROR) {
			atomic_fetch_add(&s->m.frames_bad, 1);
			st_warn("conn %llu: RESP %s; closing", (unsigned long long)c->id, emsg);
			srv_resp_reply_error(c, 0, "ERR", ST_EPROTO, emsg);
			srv_resp_parser_reset(p);
			c->close_after = 1;
			off = c->in.len; /* the rest cannot be framed */
			break;
		}
		c->last_active_us = st_mono_us();
		if (p->argc)
			srv_resp_command(c, c->in.p + off, p);
		off += used;
		srv_resp_parser_reset(p);
	}
	srv_resp_flush(c);
	srv_conn_parsed(c, off, partial);
}

void srv_resp_conn_free(struct srv_conn *c)
{
	if (!c->resp)
		return;
	srv_resp_parser_release(&c->resp->p);
	free(c->resp->name);
	free(c->resp);
	c->resp = NULL;
}
