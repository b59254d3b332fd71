/* strata-bench: a closed-loop load generator for stratad and, with the equivalent commands
 * through hiredis, for Redis, so both are measured by one harness on one machine. Each
 * connection keeps `--pipeline` requests in flight; event-loop threads (epoll) drive many
 * connections each; latency is measured per request from send to answer. */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/strata.h"
#include "proto/strata.pb-c.h"

enum target { T_STRATA, T_REDIS };
enum op { OP_GET, OP_ASOF, OP_MGET, OP_PUT, OP_PING, OP_MIX };

static struct {
	enum target target;
	char addr[256];
	char host[256];
	int port;
	char token[512];
	int conns, pipeline, threads;
	enum op op;
	char table[64];
	long entities;
	int features, mget_k, value_size, value_random;
	int zipf;
	int seq; /* keys 0, 1, 2, ... across all connections (a warm-up sweep) */
	double zipf_s;
	double duration, warmup;
	long count;
	int load, json;
	char label[128];
	int put_batch;     /* entities per put request */
	int resp;          /* T_REDIS against stratad's RESP port: keys are "table:entity" */
	int mix[5];        /* weights per op, all 0 = just --op */
	int mix_total;
} cfg = {
	.target = T_STRATA, .addr = "127.0.0.1:7070", .conns = 50, .pipeline = 1, .threads = 1,
	.op = OP_GET, .table = "bench", .entities = 100000, .features = 10, .mget_k = 10,
	.value_size = 8, .zipf_s = 0.99, .duration = 10, .warmup = 1, .put_batch = 1,
};

#define T0_US 1767225600000000LL
#define HIST_US 200000 /* 1 us bins up to 200 ms, then overflow */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "strata-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* ---- keys ---- */

struct keygen {
	uint64_t s;
	double zetan, alpha, eta, theta;
};

static uint64_t rnd(struct keygen *k)
{
	k->s ^= k->s << 13;
	k->s ^= k->s >> 7;
	k->s ^= k->s << 17;
	return k->s;
}

static double zipf_zetan;

static void keygen_init(struct keygen *k, uint64_t seed)
{
	k->s = seed * 2654435761u + 88172645463325252ull;
	if (cfg.zipf) {
		/* Gray et al., "Quickly generating billion-record synthetic databases". */
		double n = (double)cfg.entities, th = cfg.zipf_s;
		double zeta2 = 1.0 + pow(0.5, th);
		k->theta = th;
		k->zetan = zipf_zetan;
		k->alpha = 1.0 / (1.0 - th);
		k->eta = (1 - pow(2.0 / n, 1 - th)) / (1 - zeta2 / k->zetan);
	}
}

static _Atomic long seq_next;

static long next_key(struct keygen *k)
{
	if (cfg.seq)
		return atomic_fetch_add(&seq_next, 1) % cfg.entities;
	if (!cfg.zipf)
		return (long)(rnd(k) % (uint64_t)cfg.entities);
	double u = (double)(rnd(k) >> 11) / 9007199254740992.0;
	double uz = u * k->zetan;
	long v;
	if (uz < 1.0)
		v = 0;
	else if (uz < 1.0 + pow(0.5, k->theta))
		v = 1;
	else
		v = (long)((double)cfg.entities * pow(k->eta * u - k->eta + 1, k->alpha));
	if (v >= cfg.entities)
		v = cfg.entities - 1;
	/* scatter hot keys over the key space */
	return (long)(((uint64_t)v * 2654435761u) % (uint64_t)cfg.entities);
}

/* buf needs 24 bytes */
static int key_name(long k, char *buf)
{
	return snprintf(buf, 24, "e%07ld", k % 100000000000L);
}

/* ---- connections ---- */

struct conn {
	int fd;
	uint8_t *out;
	size_t olen, ooff, ocap;
	uint8_t *in;
	size_t ilen, icap;
	int outstanding;   /* requests (for redis: commands) not yet answered */
	long ops;          /* operations measured on this connection (fairness report) */
	int ops_left_in_batch;
	uint16_t *opq;     /* redis: commands per queued op (mget K, put batch B), in order */
	int opq_n, opq_pos;
	int cmds_in_op;
	int64_t t_sent;
	uint64_t next_id;
	redisReader *rr;
};

struct worker {
	int idx;
	pthread_t th;
	struct conn *cs;
	int n;
	struct keygen kg;
	uint64_t *hist; /* HIST_US + 1 bins */
	long ops, errors;
	char err[256];
};

static atomic_int phase; /* 0 warmup, 1 measuring, 2 stop */
static atomic_long total_ops;
static char value_str[65536];
/* --value-random: each loaded cell's string value is a slice of this random buffer at an
 * offset of its own, so that the store's compression does not shrink the data set (the
 * resync benchmark needs checkpoints of a known size in bytes) */
static char value_rand[2 * 65536];

static int tcp_connect(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", cfg.port);
	if (getaddrinfo(cfg.host, ps, &hints, &ai))
		die("cannot resolve %s", cfg.host);
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen))
		die("cannot connect to %s: %s", cfg.addr, strerror(errno));
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void out_reserve(struct conn *c, size_t n)
{
	if (c->ocap - c->olen >= n)
		return;
	while (c->ocap - c->olen < n)
		c->ocap = c->ocap ? c->ocap * 2 : 65536;
	c->out = realloc(c->out, c->ocap);
	if (!c->out)
		die("out of memory");
}

static void out_add(struct conn *c, const void *p, size_t n)
{
	out_reserve(c, n);
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
}

static void strata_frame(struct conn *c, Strata__Request *req)
{
	req->id = c->next_id++;
	size_t n = strata__request__get_packed_size(req);
	out_reserve(c, 4 + n);
	uint8_t *p = c->out + c->olen;
	p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8),
	p[3] = (uint8_t)n;
	strata__request__pack(req, p + 4);
	c->olen += 4 + n;
}

static char **feature_names;

/* The Redis key of entity `key`: itself for Redis, "table:key" for stratad's RESP port. */
static const char *resp_key(const char *key, char *buf)
{
	if (!cfg.resp)
		return key;
	snprintf(buf, 128, "%.63s:%.32s", cfg.table, key);
	return buf;
}

/* Queues one operation on c; returns the number of answers it will produce. */
static int queue_op(struct conn *c, struct keygen *kg, enum op op)
{
	char keys[64][24];
	int nk = op == OP_MGET ? cfg.mget_k : op == OP_PUT ? cfg.put_batch : 1;
	size_t lens[64];
	for (int i = 0; i < nk; i++)
		lens[i] = (size_t)key_name(next_key(kg), keys[i]);
	if (op == OP_PING) {
		if (cfg.target == T_REDIS) {
			out_add(c, "*1\r\n$4\r\nPING\r\n", 14);
		} else {
			Strata__PingReq pr = STRATA__PING_REQ__INIT;
			Strata__Request req = STRATA__REQUEST__INIT;
			req.op_case = STRATA__REQUEST__OP_PING;
			req.ping = &pr;
			strata_frame(c, &req);
		}
		return 1;
	}
	if (cfg.target == T_REDIS) {
		const char *argv[2 + 2 * 256];
		size_t alen[2 + 2 * 256];
		for (int i = 0; i < nk; i++) {
			int a = 0;
			char rkey[128];
			argv[a] = op == OP_PUT ? "HSET" : "HMGET";
			alen[a++] = strlen(argv[0]);
			argv[a] = resp_key(keys[i], rkey);
			alen[a] = strlen(argv[a]);
			a++;
			for (int f = 0; f < cfg.features; f++) {
				argv[a] = feature_names[f];
				alen[a++] = strlen(feature_names[f]);
				if (op == OP_PUT) {
					argv[a] = value_str;
					alen[a++] = (size_t)cfg.value_size;
				}
			}
			char *cmd;
			long long n = redisFormatCommandArgv(&cmd, a, argv, alen);
			out_add(c, cmd, (size_t)n);
			redisFreeCommand(cmd);
		}
		return nk;
	}
	Strata__Request req = STRATA__REQUEST__INIT;
	if (op == OP_PUT) {
		static __thread Strata__Cell cells[64 * 256], *cp[64 * 256];
		static __thread Strata__Value vals[64 * 256];
		size_t nc = 0;
		for (int e = 0; e < nk; e++)
		for (int f = 0; f < cfg.features; f++, nc++) {
			strata__cell__init(&cells[nc]);
			strata__value__init(&vals[nc]);
			if (cfg.value_size == 8) {
				vals[nc].type = STRATA_I64;
				vals[nc].has_i64 = 1;
				vals[nc].i64 = (int64_t)rnd(kg);
			} else {
				vals[nc].type = STRATA_STR;
				vals[nc].has_bytes = 1;
				vals[nc].bytes.data = (uint8_t *)value_str;
				vals[nc].bytes.len = (size_t)cfg.value_size;
			}
			cells[nc].entity.data = (uint8_t *)keys[e];
			cells[nc].entity.len = lens[e];
			cells[nc].feature = feature_names[f];
			cells[nc].ts = T0_US + (int64_t)(rnd(kg) % 86400000000ull);
			cells[nc].value = &vals[nc];
			cp[nc] = &cells[nc];
		}
		Strata__PutReq p = STRATA__PUT_REQ__INIT;
		p.table = cfg.table;
		p.n_cells = nc;
		p.cells = cp;
		req.op_case = STRATA__REQUEST__OP_PUT;
		req.put = &p;
		strata_frame(c, &req);
		return 1;
	}
	ProtobufCBinaryData ents[64];
	for (int i = 0; i < nk; i++) {
		ents[i].data = (uint8_t *)keys[i];
		ents[i].len = lens[i];
	}
	Strata__GetReq g = STRATA__GET_REQ__INIT;
	g.table = cfg.table;
	g.n_entities = (size_t)nk;
	g.entities = ents;
	g.n_features = (size_t)cfg.features;
	g.features = feature_names;
	if (op == OP_ASOF) {
		g.has_as_of = 1;
		g.as_of = T0_US + (int64_t)(rnd(kg) % (2 * 86400000000ull));
	}
	req.op_case = STRATA__REQUEST__OP_GET;
	req.get = &g;
	strata_frame(c, &req);
	return 1;
}

static void start_batch(struct conn *c, struct worker *w)
{
	c->olen = c->ooff = 0;
	c->outstanding = 0;
	c->opq_n = c->opq_pos = c->cmds_in_op = 0;
	for (int i = 0; i < cfg.pipeline; i++) {
		enum op op = cfg.op;
		if (cfg.mix_total) {
			int x = (int)(rnd(&w->kg) % (uint64_t)cfg.mix_total);
			for (op = OP_GET; x >= cfg.mix[op]; op++)
				x -= cfg.mix[op];
		}
		int cmds = queue_op(c, &w->kg, op);
		c->outstanding += cmds;
		c->opq[c->opq_n++] = (uint16_t)cmds;
	}
	c->t_sent = now_ns();
}

static void record(struct worker *w, struct conn *c, int failed)
{
	if (atomic_load_explicit(&phase, memory_order_relaxed) != 1)
		return;
	int64_t us = (now_ns() - c->t_sent) / 1000;
	w->hist[us < HIST_US ? us : HIST_US]++;
	w->ops++;
	c->ops++;
	if (failed)
		w->errors++;
}

/* Consumes answers from c->in; returns the number of complete operations. */
static void consume(struct worker *w, struct conn *c)
{
	if (cfg.target == T_REDIS) {
		redisReaderFeed(c->rr, (const char *)c->in, c->ilen);
		c->ilen = 0;
		void *reply;
		while (redisReaderGetReply(c->rr, &reply) == REDIS_OK && reply) {
			redisReply *r = reply;
			int failed = r->type == REDIS_REPLY_ERROR;
			if (failed && !w->err[0])
				snprintf(w->err, sizeof(w->err), "%s", r->str);
			freeReplyObject(reply);
			c->outstanding--;
			if (++c->cmds_in_op == c->opq[c->opq_pos]) {
				c->cmds_in_op = 0;
				c->opq_pos++;
				record(w, c, failed);
			}
		}
		return;
	}
	size_t off = 0;
	while (c->ilen - off >= 4) {
		const uint8_t *p = c->in + off;
		uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		if (c->ilen - off - 4 < len)
			break;
		Strata__Response *r = strata__response__unpack(NULL, len, p + 4);
		off += 4 + len;
		int failed = !r || (r->has_code && r->code);
		if (failed && !w->err[0])
			snprintf(w->err, sizeof(w->err), "%s", r && r->error ? r->error : "bad frame");
		if (r)
			strata__response__free_unpacked(r, NULL);
		c->outstanding--;
		record(w, c, failed);
	}
	memmove(c->in, c->in + off, c->ilen - off);
	c->ilen -= off;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < w->n; i++) {
		struct conn *c = &w->cs[i];
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		start_batch(c, w);
	}
	struct epoll_event evs[256];
	while (atomic_load(&phase) != 2) {
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			while (c->ooff < c->olen) {
				ssize_t k = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (k <= 0)
					break;
				c->ooff += (size_t)k;
			}
			for (;;) {
				if (c->icap - c->ilen < 65536) {
					c->icap = c->icap ? c->icap * 2 : 262144;
					c->in = realloc(c->in, c->icap);
				}
				ssize_t k = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, MSG_DONTWAIT);
				if (k == 0)
					die("server closed a connection");
				if (k < 0)
					break;
				c->ilen += (size_t)k;
				consume(w, c);
				if (c->outstanding == 0)
					break;
			}
			if (c->outstanding == 0 && atomic_load(&phase) != 2) {
				if (cfg.count && atomic_fetch_add(&total_ops, cfg.pipeline) >= cfg.count) {
					atomic_store(&phase, 2);
					break;
				}
				start_batch(c, w);
				while (c->ooff < c->olen) {
					ssize_t k = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
							 MSG_NOSIGNAL | MSG_DONTWAIT);
					if (k <= 0)
						break;
					c->ooff += (size_t)k;
				}
			}
		}
	}
	close(ep);
	return NULL;
}

/* ---- load: N entities x F features, pipelined ---- */

/* where cell (entity k, feature f) takes its --value-random bytes from */
static size_t rand_offset(long k, int f)
{
	uint64_t h = ((uint64_t)k * 256 + (uint64_t)f) * 0x9e3779b97f4a7c15ull;
	return (size_t)((h >> 17) % (sizeof(value_rand) - (size_t)cfg.value_size));
}

static void load_data(void)
{
	struct strata_error e = {0};
	if (cfg.target == T_STRATA) {
		struct strata_connect_opts o;
		strata_connect_opts_init(&o);
		o.token = cfg.token[0] ? cfg.token : NULL;
		strata *c;
		if (strata_connect(cfg.addr, &o, &c, &e))
			die("%s", e.msg);
		struct strata_feature_def *fd = calloc((size_t)cfg.features, sizeof(*fd));
		for (int f = 0; f < cfg.features; f++) {
			snprintf(fd[f].name, sizeof(fd[f].name), "%s", feature_names[f]);
			fd[f].type = cfg.value_size == 8 ? STRATA_I64 : STRATA_STR;
		}
		struct strata_table t = {0};
		snprintf(t.name, sizeof(t.name), "%s", cfg.table);
		t.nfeatures = (uint32_t)cfg.features;
		t.features = fd;
		int rc = strata_table_create(c, &t, &e);
		if (rc && rc != STRATA_EEXIST)
			die("create table: %s", e.msg);
		strata_batch *b = strata_batch_new(c);
		enum { PER_PUT = 100 };
		struct strata_cell *cells = calloc(PER_PUT * (size_t)cfg.features, sizeof(*cells));
		static char keys[PER_PUT][24];
		for (long k = 0; k < cfg.entities;) {
			size_t n = 0;
			for (int i = 0; i < PER_PUT && k < cfg.entities; i++, k++) {
				int kl = key_name(k, keys[i]);
				for (int f = 0; f < cfg.features; f++) {
					struct strata_cell *cl = &cells[n++];
					cl->entity = keys[i];
					cl->entity_len = (size_t)kl;
					cl->feature = feature_names[f];
					cl->ts = T0_US;
					if (cfg.value_size == 8)
						cl->value = (struct strata_value){.type = STRATA_I64,
										  .i64 = k * 100 + f};
					else
						cl->value = (struct strata_value){
							.type = STRATA_STR, .len = (uint32_t)cfg.value_size,
							.ptr = cfg.value_random
								       ? value_rand + rand_offset(k, f)
								       : value_str};
				}
			}
			strata_batch_put(b, cfg.table, cells, n);
			if (strata_batch_count(b) == 64 || k == cfg.entities) {
				if (strata_batch_exec(b, &e))
					die("load: %s", e.msg);
				for (size_t i = 0; i < strata_batch_count(b); i++)
					if (strata_batch_status(b, i, &e))
						die("load: %s", e.msg);
				strata_batch_clear(b);
			}
		}
		strata_batch_free(b);
		free(cells);
		free(fd);
		strata_close(c);
		return;
	}
	redisContext *rc = redisConnect(cfg.host, cfg.port);
	if (!rc || rc->err)
		die("redis connect: %s", rc ? rc->errstr : "failed");
	char key[24], val[32];
	long pending = 0;
	for (long k = 0; k < cfg.entities; k++) {
		key_name(k, key);
		const char *argv[2 + 2 * 256];
		size_t alen[2 + 2 * 256];
		int a = 0;
		char vals[256][24];
		char rkey[128];
		argv[a] = "HSET", alen[a++] = 4;
		argv[a] = resp_key(key, rkey);
		alen[a] = strlen(argv[a]);
		a++;
		for (int f = 0; f < cfg.features; f++) {
			argv[a] = feature_names[f], alen[a++] = strlen(feature_names[f]);
			if (cfg.value_size == 8) {
				snprintf(vals[f], sizeof(vals[f]), "%ld", k * 100 + f);
				argv[a] = vals[f], alen[a++] = strlen(vals[f]);
			} else {
				argv[a] = value_str, alen[a++] = (size_t)cfg.value_size;
			}
		}
		redisAppendCommandArgv(rc, a, argv, alen);
		if (++pending == 1000 || k == cfg.entities - 1) {
			for (; pending; pending--) {
				void *r;
				if (redisGetReply(rc, &r) != REDIS_OK)
					die("redis load: %s", rc->errstr);
				freeReplyObject(r);
			}
		}
	}
	(void)val;
	redisFree(rc);
}

static void usage(void)
{
	printf("usage: strata-bench [--target strata|redis|resp] [--addr HOST:PORT] [--token-file F]\n"
	       "         [--conns 50] [--pipeline 1] [--threads 1] [--op get|asof|mget|put|ping]\n"
	       "         [--table bench] [--entities N] [--features 10] [--mget-k 10]\n"
	       "         [--keys uniform|zipf|seq] [--zipf-s 0.99] [--value-size 8]\n"
	       "         [--duration 10 | --count N] [--warmup 1] [--load] [--json] [--label X]\n"
	       "         [--put-batch B] [--mix get=80,asof=10,put=10] [--value-random]\n"
	       "get: latest value of F features of one entity (Redis: HMGET key f0..fF-1);\n"
	       "asof: the same as of a random time (Redis has no versions: HMGET); mget: K\n"
	       "entities x F features in one request (Redis: K pipelined HMGETs); put: one entity's\n"
	       "F features of --put-batch entities (Redis: as many HSETs); ping: protocol round\n"
	       "trip only (Redis: PING). --mix draws each request's op by weight. --target resp:\n"
	       "stratad's RESP port with the Redis commands (keys TABLE:ENTITY), same client.\n"
	       "--load writes N entities x F features and exits (--value-random: string values\n"
	       "of random bytes, which compression does not shrink).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"target", 1, 0, 't'}, {"addr", 1, 0, 'a'}, {"token-file", 1, 0, 'T'},
		{"conns", 1, 0, 'c'}, {"pipeline", 1, 0, 'P'}, {"threads", 1, 0, 'j'},
		{"op", 1, 0, 'o'}, {"table", 1, 0, 'b'}, {"entities", 1, 0, 'n'},
		{"features", 1, 0, 'f'}, {"mget-k", 1, 0, 'k'}, {"keys", 1, 0, 'K'},
		{"zipf-s", 1, 0, 'z'}, {"value-size", 1, 0, 'v'}, {"duration", 1, 0, 'd'},
		{"count", 1, 0, 'N'}, {"warmup", 1, 0, 'w'}, {"load", 0, 0, 'L'},
		{"json", 0, 0, 'J'}, {"label", 1, 0, 'l'}, {"help", 0, 0, 'h'},
		{"put-batch", 1, 0, 'B'}, {"mix", 1, 0, 'M'}, {"value-random", 0, 0, 'R'},
		{0, 0, 0, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (!strcmp(optarg, "redis") || !strcmp(optarg, "resp"))
				cfg.target = T_REDIS;
			else if (strcmp(optarg, "strata"))
				die("--target strata|redis|resp");
			cfg.resp = !strcmp(optarg, "resp");
			break;
		case 'a': snprintf(cfg.addr, sizeof(cfg.addr), "%s", optarg); break;
		case 'T': {
			FILE *f = fopen(optarg, "r");
			if (!f || !fgets(cfg.token, sizeof(cfg.token), f))
				die("cannot read token file %s", optarg);
			fclose(f);
			cfg.token[strcspn(cfg.token, "\r\n")] = '\0';
			break;
		}
		case 'c': cfg.conns = atoi(optarg); break;
		case 'P': cfg.pipeline = atoi(optarg); break;
		case 'j': cfg.threads = atoi(optarg); break;
		case 'o':
			cfg.op = !strcmp(optarg, "get")    ? OP_GET
				 : !strcmp(optarg, "asof") ? OP_ASOF
				 : !strcmp(optarg, "mget") ? OP_MGET
				 : !strcmp(optarg, "put")  ? OP_PUT
				 : !strcmp(optarg, "ping") ? OP_PING
							   : (die("--op get|asof|mget|put|ping"), OP_GET);
			break;
		case 'b': snprintf(cfg.table, sizeof(cfg.table), "%s", optarg); break;
		case 'n': cfg.entities = atol(optarg); break;
		case 'f': cfg.features = atoi(optarg); break;
		case 'k': cfg.mget_k = atoi(optarg); break;
		case 'K':
			if (!strcmp(optarg, "zipf"))
				cfg.zipf = 1;
			else if (!strcmp(optarg, "seq"))
				cfg.seq = 1;
			else if (strcmp(optarg, "uniform"))
				die("--keys uniform|zipf|seq");
			break;
		case 'z': cfg.zipf_s = atof(optarg); break;
		case 'v': cfg.value_size = atoi(optarg); break;
		case 'd': cfg.duration = atof(optarg); break;
		case 'N': cfg.count = atol(optarg); break;
		case 'w': cfg.warmup = atof(optarg); break;
		case 'L': cfg.load = 1; break;
		case 'R': cfg.value_random = 1; break;
		case 'J': cfg.json = 1; break;
		case 'l': snprintf(cfg.label, sizeof(cfg.label), "%s", optarg); break;
		case 'B': cfg.put_batch = atoi(optarg); break;
		case 'M': {
			/* get=80,put=20 */
			static const char *names[] = {"get", "asof", "mget", "put", "ping"};
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", optarg);
			for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
				char *eq = strchr(tok, '=');
				int k;
				if (!eq)
					die("--mix op=weight,...");
				*eq = '\0';
				for (k = 0; k < 5 && strcmp(names[k], tok); k++)
					;
				if (k == 5 || atoi(eq + 1) < 0)
					die("--mix: unknown op '%s'", tok);
				cfg.mix[k] = atoi(eq + 1);
				cfg.mix_total += cfg.mix[k];
			}
			break;
		}
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (cfg.conns < 1 || cfg.pipeline < 1 || cfg.threads < 1 || cfg.entities < 1 ||
	    cfg.features < 1 || cfg.features > 256 || cfg.mget_k < 1 || cfg.mget_k > 64 ||
	    cfg.value_size < 1 || cfg.value_size > (int)sizeof(value_str) || cfg.put_batch < 1 ||
	    cfg.put_batch > 64 || cfg.pipeline > 65535)
		die("bad sizes (features 1..256, mget-k and put-batch 1..64, pipeline <= 65535)");
	if (cfg.threads > cfg.conns)
		cfg.threads = cfg.conns;
	const char *colon = strrchr(cfg.addr, ':');
	if (!colon)
		die("--addr HOST:PORT");
	snprintf(cfg.host, sizeof(cfg.host), "%.*s", (int)(colon - cfg.addr), cfg.addr);
	cfg.port = atoi(colon + 1);
	memset(value_str, 'v', sizeof(value_str));
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < sizeof(value_rand); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		value_rand[i] = (char)(x >> 32);
	}
	feature_names = calloc((size_t)cfg.features, sizeof(char *));
	for (int f = 0; f < cfg.features; f++) {
		feature_names[f] = malloc(16);
		snprintf(feature_names[f], 16, "f%d", f);
	}
	if (cfg.load) {
		int64_t t = now_ns();
		load_data();
		fprintf(stderr, "loaded %ld entities x %d features in %.1f s\n", cfg.entities,
			cfg.features, (double)(now_ns() - t) / 1e9);
		return 0;
	}
	if (cfg.zipf) {
		for (long i = 1; i <= cfg.entities; i++)
			zipf_zetan += 1.0 / pow((double)i, cfg.zipf_s);
	}

	struct worker *ws = calloc((size_t)cfg.threads, sizeof(*ws));
	for (int t = 0; t < cfg.threads; t++) {
		struct worker *w = &ws[t];
		w->idx = t;
		w->n = cfg.conns / cfg.threads + (t < cfg.conns % cfg.threads);
		w->cs = calloc((size_t)w->n, sizeof(*w->cs));
		w->hist = calloc(HIST_US + 1, sizeof(uint64_t));
		keygen_init(&w->kg, (uint64_t)t + 1);
		for (int i = 0; i < w->n; i++) {
			struct conn *c = &w->cs[i];
			c->fd = tcp_connect();
			c->next_id = 1;
			c->opq = calloc((size_t)cfg.pipeline, sizeof(*c->opq));
			if (cfg.target == T_REDIS) {
				c->rr = redisReaderCreate();
			} else if (cfg.token[0]) {
				/* authenticate synchronously before the loop starts */
				Strata__AuthReq a = STRATA__AUTH_REQ__INIT;
				a.token.data = (uint8_t *)cfg.token;
				a.token.len = strlen(cfg.token);
				Strata__Request req = STRATA__REQUEST__INIT;
				req.op_case = STRATA__REQUEST__OP_AUTH;
				req.auth = &a;
				strata_frame(c, &req);
				if (send(c->fd, c->out, c->olen, MSG_NOSIGNAL) != (ssize_t)c->olen)
					die("auth send failed");
				c->olen = 0;
				uint8_t buf[4096];
				ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
				Strata__Response *resp =
					r > 4 ? strata__response__unpack(NULL, (size_t)r - 4, buf + 4) : NULL;
				if (!resp || (resp->has_code && resp->code))
					die("authentication failed");
				strata__response__free_unpacked(resp, NULL);
			}
		}
	}
	atomic_store(&phase, cfg.warmup > 0 ? 0 : 1);
	for (int t = 0; t < cfg.threads; t++)
		pthread_create(&ws[t].th, NULL, worker_main, &ws[t]);
	if (cfg.warmup > 0) {
		usleep((useconds_t)(cfg.warmup * 1e6));
		atomic_store(&phase, 1);
	}
	int64_t t0 = now_ns();
	if (cfg.count) {
		while (atomic_load(&phase) != 2)
			usleep(1000);
	} else {
		usleep((useconds_t)(cfg.duration * 1e6));
		atomic_store(&phase, 2);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	for (int t = 0; t < cfg.threads; t++)
		pthread_join(ws[t].th, NULL);

	uint64_t *hist = calloc(HIST_US + 1, sizeof(uint64_t));
	long ops = 0, errors = 0;
	const char *err = "";
	for (int t = 0; t < cfg.threads; t++) {
		for (int i = 0; i <= HIST_US; i++)
			hist[i] += ws[t].hist[i];
		ops += ws[t].ops;
		errors += ws[t].errors;
		if (ws[t].err[0])
			err = ws[t].err;
	}
	/* Fairness: the fewest and most operations one connection completed. A server that
	 * serves some connections ahead of others shows a wide spread (and a p99 far above p50)
	 * even when its throughput is high. */
	long cmin = -1, cmax = 0;
	for (int t = 0; t < cfg.threads; t++)
		for (int i = 0; i < ws[t].n; i++) {
			long n = ws[t].cs[i].ops;
			cmin = cmin < 0 || n < cmin ? n : cmin;
			cmax = n > cmax ? n : cmax;
		}
	double pct[3] = {0.50, 0.99, 0.999};
	long lat[3] = {0};
	for (int p = 0; p < 3; p++) {
		uint64_t want = (uint64_t)ceil(pct[p] * (double)ops), cum = 0;
		for (int i = 0; i <= HIST_US; i++) {
			cum += hist[i];
			if (cum >= want && want) {
				lat[p] = i;
				break;
			}
		}
	}
	const char *opname[] = {"get", "asof", "mget", "put", "ping", "mix"};
	if (cfg.mix_total)
		cfg.op = OP_MIX;
	double rate = (double)ops / secs;
	if (cfg.json)
		printf("{\"label\":\"%s\",\"target\":\"%s\",\"op\":\"%s\",\"conns\":%d,\"pipeline\":%d,"
		       "\"features\":%d,\"entities\":%ld,\"keys\":\"%s\",\"ops\":%ld,\"seconds\":%.3f,"
		       "\"ops_per_s\":%.1f,\"p50_us\":%ld,\"p99_us\":%ld,\"p999_us\":%ld,"
		       "\"errors\":%ld,\"conn_ops_min\":%ld,\"conn_ops_max\":%ld}\n",
		       cfg.label, cfg.resp ? "resp" : cfg.target == T_REDIS ? "redis" : "strata", opname[cfg.op], cfg.conns,
		       cfg.pipeline, cfg.features, cfg.entities, cfg.zipf ? "zipf" : "uniform", ops,
		       secs, rate, lat[0], lat[1], lat[2], errors, cmin, cmax);
	else
		printf("%s%s%s op=%s conns=%d pipeline=%d features=%d: %.0f ops/s  p50 %ld us  p99 %ld "
		       "us  p999 %ld us  per-conn ops %ld-%ld  errors %ld%s%s\n",
		       cfg.label, cfg.label[0] ? " " : "", cfg.resp ? "resp" : cfg.target == T_REDIS ? "redis" : "strata",
		       opname[cfg.op], cfg.conns, cfg.pipeline, cfg.features, rate, lat[0], lat[1],
		       lat[2], cmin, cmax, errors, errors ? ": " : "", errors ? err : "");
	return errors && ops && errors == ops ? 1 : 0;
}
