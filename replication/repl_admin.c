/* Operator requests served on the replication listener (JSON in an ADMIN frame): status,
 * promote, layout (tell a node about a reassignment), resync and verify (per-slot digests of
 * a shard's logical contents), and the client side used by strata-admin. */
#include "replication/repl_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/st_log.h"

/* ---- verify: per table, per slot: count and sum of XXH3 of every version ---- */

struct digest {
	uint64_t *sum;   /* KV_SLOTS */
	uint64_t *count; /* KV_SLOTS */
	const char *table;
};

static int digest_cb(void *arg, const char *entity, size_t elen, const struct kv_feature_def *f,
		     const struct kv_version *v)
{
	struct digest *d = arg;
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, d->table, strlen(d->table) + 1);
	XXH3_64bits_update(&st, entity, elen);
	XXH3_64bits_update(&st, f->name, strlen(f->name) + 1);
	int64_t hdr[3] = {v->r.ts, v->r.ingest_us, v->tombstone};
	XXH3_64bits_update(&st, hdr, sizeof(hdr));
	const struct kv_value *val = &v->r.value;
	uint32_t tl[2] = {(uint32_t)val->type, val->len};
	XXH3_64bits_update(&st, tl, sizeof(tl));
	switch (val->type) {
	case KV_I64: XXH3_64bits_update(&st, &val->i64, 8); break;
	case KV_F64: XXH3_64bits_update(&st, &val->f64, 8); break;
	case KV_F32: XXH3_64bits_update(&st, &val->f32, 4); break;
	case KV_STR:
	case KV_BYTES: XXH3_64bits_update(&st, val->ptr, val->len); break;
	case KV_F32VEC: XXH3_64bits_update(&st, val->ptr, (size_t)val->len * 4); break;
	case KV_I64LIST: XXH3_64bits_update(&st, val->ptr, (size_t)val->len * 8); break;
	default: break;
	}
	uint32_t slot = st_slot_of(entity, elen);
	d->sum[slot] += XXH3_64bits_digest(&st);
	d->count[slot]++;
	return 0;
}

/* {"tables":{"NAME":{"SLOT":[count,"sum hex"],...}}} for the slots with data. */
static json_t *verify_shard(struct repl *r, int shard, struct st_error *err)
{
	struct kv_table **ts;
	size_t n;
	if (kv_table_list(r->db, &ts, &n, err))
		return NULL;
	json_t *tables = json_object();
	struct digest d = {calloc(KV_SLOTS, 8), calloc(KV_SLOTS, 8), NULL};
	int rc = d.sum && d.count ? 0 : st_error_set(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		memset(d.sum, 0, KV_SLOTS * 8);
		memset(d.count, 0, KV_SLOTS * 8);
		d.table = ts[i]->name;
		rc = kv_table_scan_shard(r->db, ts[i]->name, shard, ST_TS_MAX, digest_cb, &d, err);
		json_t *slots = json_object();
		for (int s = 0; s < KV_SLOTS && !rc; s++) {
			if (!d.count[s])
				continue;
			char k[16], h[24];
			snprintf(k, sizeof(k), "%d", s);
			snprintf(h, sizeof(h), "%016llx", (unsigned long long)d.sum[s]);
			json_object_set_new(slots, k, json_pack("[I,s]", (json_int_t)d.count[s], h));
		}
		json_object_set_new(tables, ts[i]->name, slots);
	}
	for (size_t i = 0; i < n; i++)
		kv_table_free(ts[i]);
	free(ts);
	free(d.sum);
	free(d.count);
	if (rc) {
		json_decref(tables);
		return NULL;
	}
	return json_pack("{s:i,s:o}", "shard", shard, "tables", tables);
}

/* ---- requests ---- */

static int get_shard(struct repl *r, json_t *req, int *shard, struct st_error *err)
{
	json_t *s = json_object_get(req, "shard");
	if (!json_is_integer(s) || json_integer_value(s) < 0 ||
	    json_integer_value(s) >= r->layout.nshards)
		return st_error_set(err, ST_EINVAL, "request needs a shard 0..%d",
				    r->layout.nshards - 1);
	*shard = (int)json_integer_value(s);
	return 0;
}

/* {"cmd":"layout","shard":S,"primary":NAME,"version":V}: a reassignment (promote sends it
 * to the new primary first, then to everyone else). */
static json_t *do_layout(struct repl *r, json_t *req, struct st_error *err)
{
	int shard;
	const char *prim;
	json_int_t v;
	if (get_shard(r, req, &shard, err))
		return NULL;
	if (json_unpack(req, "{s:s,s:I}", "primary", &prim, "version", &v) || v < 1) {
		st_error_set(err, ST_EINVAL, "layout needs primary and version");
		return NULL;
	}
	int n = repl_layout_find(&r->layout, prim);
	if (n < 0) {
		st_error_set(err, ST_EINVAL, "no node '%s'", prim);
		return NULL;
	}
	if (r->coord->ops->leased) {
		st_error_set(err, ST_EINVAL, "this node's primaries are elected through etcd: no "
			     "manual reassignment");
		return NULL;
	}
	pthread_mutex_lock(&r->mu);
	struct repl_shard *sh = &r->shards[shard];
	if ((uint64_t)v <= sh->version && !(n == sh->primary && (uint64_t)v == sh->version)) {
		pthread_mutex_unlock(&r->mu);
		st_error_set(err, ST_EINVAL, "layout version %lld is not newer than %llu", (long long)v,
			     (unsigned long long)sh->version);
		return NULL;
	}
	repl_role_reassign(r, sh, n, (uint64_t)v);
	repl_assert_state(r);
	int rc = repl_role_save(r, err);
	pthread_mutex_unlock(&r->mu);
	if (shard == 0)
		repl_registry_follow(r);
	st_info("replication: shard %d: primary is now %s (layout version %lld)", shard, prim,
		(long long)v);
	return rc ? NULL : json_pack("{s:b}", "ok", 1);
}

static json_t *do_resync(struct repl *r, json_t *req, struct st_error *err)
{
	int shard;
	if (get_shard(r, req, &shard, err))
		return NULL;
	pthread_mutex_lock(&r->mu);
	struct repl_shard *sh = &r->shards[shard];
	int ok = sh->state == REPL_S_CONNECTING || sh->state == REPL_S_TAILING ||
		 sh->state == REPL_S_RESYNCING;
	if (ok) {
		sh->want_resync = 1;
		repl_replica_kick(sh);
	}
	pthread_mutex_unlock(&r->mu);
	if (!ok) {
		st_error_set(err, ST_EINVAL, "this node is not a replica of shard %d", shard);
		return NULL;
	}
	st_info("replication: shard %d: resync requested by an operator", shard);
	return json_pack("{s:b}", "ok", 1);
}

static json_t *do_status(struct repl *r, json_t *req, struct st_error *err)
{
	char *s = repl_status_json(r);
	json_t *o = s ? json_loads(s, 0, NULL) : NULL;
	free(s);
	if (!o)
		st_error_set(err, ST_ENOMEM, "out of memory");
	return o;
}

static json_t *do_verify(struct repl *r, json_t *req, struct st_error *err)
{
	int shard;
	if (get_shard(r, req, &shard, err))
		return NULL;
	return verify_shard(r, shard, err);
}

static const struct {
	const char *cmd;
	json_t *(*fn)(struct repl *r, json_t *req, struct st_error *err);
} handlers[] = {
	{"status", do_status},
	{"layout", do_layout},
	{"resync", do_resync},
	{"verify", do_verify},
};

void repl_admin_serve(struct repl *r, int fd, const struct repl_frame *f)
{
	struct st_error err = {0};
	json_error_t je;
	json_t *req = json_loadb((const char *)f->payload, f->len, 0, &je), *reply = NULL;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	size_t i = 0;
	while (cmd && i < sizeof(handlers) / sizeof(handlers[0]) && strcmp(handlers[i].cmd, cmd))
		i++;
	if (!cmd)
		st_error_set(&err, ST_EINVAL, "admin request is not JSON with a \"cmd\"");
	else if (i == sizeof(handlers) / sizeof(handlers[0]))
		st_error_set(&err, ST_EINVAL, "unknown admin command '%s'", cmd);
	else
		reply = handlers[i].fn(r, req, &err);
	json_decref(req);
	char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (s)
		repl_send(fd, REPL_ADMIN_REPLY, s, strlen(s), NULL);
	else
		repl_send_error(fd, err.code ? err.code : ST_ENOMEM,
				err.msg[0] ? err.msg : "out of memory");
	free(s);
}

int repl_admin_call(const char *repl_addr, const char *request_json, int64_t timeout_us,
		    char **reply, struct st_error *err)
{
	*reply = NULL;
	int fd = repl_connect(repl_addr, timeout_us, err);
	if (fd < 0)
		return fd;
	repl_set_timeouts(fd, timeout_us, timeout_us);
	struct repl_frame f;
	int rc = repl_send(fd, REPL_ADMIN, request_json, strlen(request_json), err);
	if (!rc)
		rc = repl_recv(fd, REPL_FRAME_MAX, &f, err);
	close(fd);
	if (rc)
		return rc;
	if (f.type == REPL_ADMIN_REPLY) {
		*reply = (char *)f.payload; /* NUL-terminated by repl_recv */
		return 0;
	}
	struct repl_rbuf rb = {f.payload, f.len, 0, 0};
	int code = (int)repl_r_u32(&rb);
	char msg[480];
	repl_r_str(&rb, msg, sizeof(msg));
	repl_frame_release(&f);
	return st_error_set(err, code < 0 && code >= ST_ERR_FIRST ? code : ST_EPROTO, "%s: %s",
			    repl_addr, rb.bad ? "malformed reply" : msg);
}
