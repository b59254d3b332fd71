/* The static cluster layout (--cluster FILE, INI via inih) and the replication options. */
#include "replication/repl.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_time.h"

#define SHARD_ALL (-2)

struct shard_spec {
	char primary[REPL_NAME_MAX];
	char replicas[1024];
	int set;
};

struct layout_ctx {
	struct repl_layout *l;
	struct shard_spec *specs; /* nshards + 1 (the last is "[shard *]") */
	int nspecs;
	struct st_error *err;
	int rc;
};

static int copy_str(char *dst, size_t n, const char *v)
{
	if (strlen(v) >= n)
		return -1;
	strcpy(dst, v);
	return 0;
}

static int parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

static int on_cluster(struct layout_ctx *x, const char *name, const char *value)
{
	uint64_t n;
	if (!strcmp(name, "version")) {
		if (parse_u64(value, 1, UINT64_MAX / 2, &n))
			return st_error_set(x->err, ST_EINVAL, "bad version '%s'", value);
		x->l->version = n;
		return 0;
	}
	if (!strcmp(name, "shards")) {
		if (x->specs)
			return st_error_set(x->err, ST_EINVAL, "shards given twice");
		if (parse_u64(value, 1, 256, &n))
			return st_error_set(x->err, ST_EINVAL, "shards must be 1..256, not '%s'",
					    value);
		x->l->nshards = (int)n;
		x->nspecs = (int)n + 1;
		x->specs = calloc((size_t)x->nspecs, sizeof(*x->specs));
		return x->specs ? 0 : st_error_set(x->err, ST_ENOMEM, "out of memory");
	}
	return st_error_set(x->err, ST_EINVAL, "unknown key '%s' in [cluster]", name);
}

static int on_node(struct layout_ctx *x, const char *node, const char *name, const char *value)
{
	struct repl_layout *l = x->l;
	int i = repl_layout_find(l, node);
	if (i < 0) {
		if (l->nnodes == REPL_MAX_NODES)
			return st_error_set(x->err, ST_ELIMIT, "more than %d nodes", REPL_MAX_NODES);
		i = l->nnodes++;
		if (!*node || copy_str(l->nodes[i].name, REPL_NAME_MAX, node))
			return st_error_set(x->err, ST_EINVAL, "bad node name '%s'", node);
	}
	char *dst = !strcmp(name, "addr") ? l->nodes[i].addr
		    : !strcmp(name, "repl") ? l->nodes[i].repl_addr : NULL;
	if (!dst)
		return st_error_set(x->err, ST_EINVAL, "unknown key '%s' in [node %s]", name, node);
	if (!strchr(value, ':') || copy_str(dst, 256, value))
		return st_error_set(x->err, ST_EINVAL, "bad address '%s' (HOST:PORT)", value);
	return 0;
}

static int on_shard(struct layout_ctx *x, const char *which, const char *name, const char *value)
{
	if (!x->specs)
		return st_error_set(x->err, ST_EINVAL, "[cluster] shards must come before [shard]");
	int idx;
	uint64_t n;
	if (!strcmp(which, "*"))
		idx = x->nspecs - 1;
	else if (parse_u64(which, 0, (uint64_t)x->l->nshards - 1, &n))
		return st_error_set(x->err, ST_EINVAL, "no shard '%s' (there are %d)", which,
				    x->l->nshards);
	else
		idx = (int)n;
	struct shard_spec *sp = &x->specs[idx];
	sp->set = 1;
	if (!strcmp(name, "primary")) {
		if (copy_str(sp->primary, sizeof(sp->primary), value))
			return st_error_set(x->err, ST_EINVAL, "bad primary '%s'", value);
		return 0;
	}
	if (!strcmp(name, "replicas")) {
		if (copy_str(sp->replicas, sizeof(sp->replicas), value))
			return st_error_set(x->err, ST_EINVAL, "replica list too long");
		return 0;
	}
	return st_error_set(x->err, ST_EINVAL, "unknown key '%s' in [shard %s]", name, which);
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct layout_ctx *x = user;
	if (x->rc)
		return 0;
	if (!strcmp(section, "cluster"))
		x->rc = on_cluster(x, name, value);
	else if (!strncmp(section, "node ", 5))
		x->rc = on_node(x, section + 5, name, value);
	else if (!strncmp(section, "shard ", 6))
		x->rc = on_shard(x, section + 6, name, value);
	else
		x->rc = st_error_set(x->err, ST_EINVAL, "unknown section [%s]", section);
	return x->rc == 0;
}

/* Resolves one shard's names to node indexes. */
static int resolve_shard(struct repl_layout *l, int s, const struct shard_spec *sp,
			 struct st_error *err)
{
	struct repl_shard_map *m = &l->shards[s];
	m->version = l->version;
	m->primary = repl_layout_find(l, sp->primary);
	if (m->primary < 0)
		return st_error_set(err, ST_EINVAL, "shard %d: primary '%s' is not a [node]", s,
				    sp->primary);
	char buf[1024];
	strcpy(buf, sp->replicas);
	for (char *save, *tok = strtok_r(buf, " ,\t", &save); tok;
	     tok = strtok_r(NULL, " ,\t", &save)) {
		int n = repl_layout_find(l, tok);
		if (n < 0)
			return st_error_set(err, ST_EINVAL, "shard %d: replica '%s' is not a [node]",
					    s, tok);
		if (n == m->primary || repl_layout_is_replica(l, s, n))
			return st_error_set(err, ST_EINVAL,
					    "shard %d: node '%s' is listed twice", s, tok);
		m->replicas[m->nreplicas++] = n;
	}
	return 0;
}

static int finish(struct layout_ctx *x)
{
	struct repl_layout *l = x->l;
	if (!x->specs)
		return st_error_set(x->err, ST_EINVAL, "no [cluster] shards = N");
	if (!l->version)
		l->version = 1;
	for (int i = 0; i < l->nnodes; i++)
		if (!l->nodes[i].addr[0] || !l->nodes[i].repl_addr[0])
			return st_error_set(x->err, ST_EINVAL, "node '%s' needs addr and repl",
					    l->nodes[i].name);
	l->shards = calloc((size_t)l->nshards, sizeof(*l->shards));
	if (!l->shards)
		return st_error_set(x->err, ST_ENOMEM, "out of memory");
	for (int s = 0; s < l->nshards; s++) {
		const struct shard_spec *sp = x->specs[s].set ? &x->specs[s] : &x->specs[x->nspecs - 1];
		if (!sp->set)
			return st_error_set(x->err, ST_EINVAL, "shard %d has no [shard] section", s);
		int rc = resolve_shard(l, s, sp, x->err);
		if (rc)
			return rc;
	}
	return 0;
}

int repl_layout_load(const char *path, struct repl_layout *out, struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	struct layout_ctx x = {.l = out, .err = err};
	int line = ini_parse(path, on_entry, &x);
	int rc = x.rc;
	if (line < 0)
		rc = st_error_set(err, ST_EINVAL, "cannot read cluster file %s", path);
	else if (line > 0 && !rc)
		rc = st_error_set(err, ST_EINVAL, "syntax error");
	if (!rc)
		rc = finish(&x);
	else if (line > 0)
		st_error_prefix(err, "%s:%d", path, line);
	if (rc && line == 0)
		st_error_prefix(err, "%s", path);
	free(x.specs);
	if (rc)
		repl_layout_release(out);
	return rc;
}

void repl_layout_release(struct repl_layout *l)
{
	free(l->shards);
	l->shards = NULL;
}

int repl_layout_find(const struct repl_layout *l, const char *name)
{
	for (int i = 0; i < l->nnodes; i++)
		if (!strcmp(l->nodes[i].name, name))
			return i;
	return -1;
}

int repl_layout_is_replica(const struct repl_layout *l, int s, int n)
{
	for (int i = 0; i < l->shards[s].nreplicas; i++)
		if (l->shards[s].replicas[i] == n)
			return 1;
	return 0;
}

/* ---- options ---- */

void repl_options_init(struct repl_options *o)
{
	memset(o, 0, sizeof(*o));
	o->sync_timeout_us = 2 * 1000000LL;
	o->send_timeout_us = 10 * 1000000LL;
	o->wal_ttl_us = 3600 * 1000000LL;
	o->lease_ttl_s = 2;
	o->wal_pin_max_us = 3600 * 1000000LL;
	o->wal_pin_mb = 1024;
	o->ring_kb = 8192; /* about a second of writes at full speed on the bench machine */
}

int repl_option_set(struct repl_options *o, const char *name, const char *val,
		    struct st_error *err)
{
	uint64_t n;
	int64_t us;
	int bad = 0;
	if (!strcmp(name, "cluster"))
		bad = copy_str(o->cluster_file, sizeof(o->cluster_file), val);
	else if (!strcmp(name, "node"))
		bad = !*val || copy_str(o->node, sizeof(o->node), val);
	else if (!strcmp(name, "min-sync-replicas"))
		bad = parse_u64(val, 0, REPL_MAX_NODES, &n) || (o->min_sync_replicas = (int)n, 0);
	else if (!strcmp(name, "sync-timeout"))
		bad = st_dur_parse(val, &us) || us <= 0 || (o->sync_timeout_us = us, 0);
	else if (!strcmp(name, "sync-degrade"))
		bad = parse_u64(val, 0, 1, &n) || (o->sync_degrade = (int)n, 0);
	else if (!strcmp(name, "max-replication-lag"))
		bad = parse_u64(val, 0, UINT64_MAX / 2, &n) || (o->max_lag_seq = n, 0);
	else if (!strcmp(name, "repl-send-timeout"))
		bad = st_dur_parse(val, &us) || us <= 0 || (o->send_timeout_us = us, 0);
	else if (!strcmp(name, "replica-max-lag"))
		bad = st_dur_parse(val, &us) || us < 0 || (o->replica_max_lag_us = us, 0);
	else if (!strcmp(name, "lease-ttl"))
		bad = st_dur_parse(val, &us) || us < 1000000 || us > 3600000000LL ||
		      (o->lease_ttl_s = us / 1000000, 0);
	else if (!strcmp(name, "wal-ttl"))
		bad = st_dur_parse(val, &us) || us < 1000000 || (o->wal_ttl_us = us, 0);
	else if (!strcmp(name, "wal-pin-max"))
		bad = st_dur_parse(val, &us) || us < 0 || (o->wal_pin_max_us = us, 0);
	else if (!strcmp(name, "wal-pin-mb"))
		bad = parse_u64(val, 1, UINT64_MAX >> 21, &n) || (o->wal_pin_mb = n, 0);
	else if (!strcmp(name, "repl-ring-kb"))
		bad = parse_u64(val, 0, 1u << 21, &n) || (o->ring_kb = n, 0);
	else
		return ST_ENOTFOUND;
	if (bad)
		return st_error_set(err, ST_EINVAL, "bad value '%s' for --%s", val, name);
	return 0;
}

/* ---- the layout as JSON (etcd: PREFIX/layout; see repl_coord.h) ---- */

char *repl_layout_to_json(const struct repl_layout *l)
{
	json_t *nodes = json_array(), *map = json_array();
	for (int i = 0; i < l->nnodes; i++)
		json_array_append_new(nodes, json_pack("{s:s,s:s,s:s}", "name", l->nodes[i].name,
						       "addr", l->nodes[i].addr, "repl",
						       l->nodes[i].repl_addr));
	for (int s = 0; s < l->nshards; s++) {
		const struct repl_shard_map *m = &l->shards[s];
		json_t *reps = json_array();
		for (int i = 0; i < m->nreplicas; i++)
			json_array_append_new(reps, json_string(l->nodes[m->replicas[i]].name));
		json_array_append_new(map, json_pack("{s:s,s:o}", "primary",
						     l->nodes[m->primary].name, "replicas", reps));
	}
	json_t *o = json_pack("{s:I,s:i,s:o,s:o}", "version", (json_int_t)l->version, "shards",
			      l->nshards, "nodes", nodes, "map", map);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static int node_from_json(struct repl_layout *l, const json_t *n, struct st_error *err)
{
	const char *name, *addr, *repl;
	if (json_unpack((json_t *)n, "{s:s,s:s,s:s}", "name", &name, "addr", &addr, "repl", &repl))
		return st_error_set(err, ST_EINVAL, "a node needs name, addr and repl");
	if (l->nnodes == REPL_MAX_NODES)
		return st_error_set(err, ST_ELIMIT, "more than %d nodes", REPL_MAX_NODES);
	if (!*name || repl_layout_find(l, name) >= 0)
		return st_error_set(err, ST_EINVAL, "bad or repeated node name '%s'", name);
	struct repl_node *d = &l->nodes[l->nnodes];
	if (copy_str(d->name, sizeof(d->name), name) || copy_str(d->addr, sizeof(d->addr), addr) ||
	    copy_str(d->repl_addr, sizeof(d->repl_addr), repl) || !strchr(addr, ':') ||
	    !strchr(repl, ':'))
		return st_error_set(err, ST_EINVAL, "node '%s': bad address (HOST:PORT)", name);
	l->nnodes++;
	return 0;
}

static int shard_from_json(struct repl_layout *l, int s, const json_t *m, struct st_error *err)
{
	struct shard_spec sp = {{0}, {0}, 1};
	const char *prim = json_string_value(json_object_get(m, "primary"));
	const json_t *reps = json_object_get(m, "replicas");
	if (!prim || !json_is_array(reps) || copy_str(sp.primary, sizeof(sp.primary), prim))
		return st_error_set(err, ST_EINVAL, "shard %d: needs primary and replicas", s);
	size_t i;
	const json_t *r;
	json_array_foreach(reps, i, r) {
		const char *n = json_string_value(r);
		if (!n || strlen(sp.replicas) + strlen(n) + 2 > sizeof(sp.replicas) ||
		    strpbrk(n, " ,\t"))
			return st_error_set(err, ST_EINVAL, "shard %d: bad replica list", s);
		strcat(sp.replicas, n);
		strcat(sp.replicas, " ");
	}
	return resolve_shard(l, s, &sp, err);
}

int repl_layout_from_json(const char *js, struct repl_layout *out, struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	json_t *o = json_loads(js, 0, &je);
	const json_t *nodes = json_object_get(o, "nodes"), *map = json_object_get(o, "map");
	json_int_t v = json_integer_value(json_object_get(o, "version"));
	json_int_t ns = json_integer_value(json_object_get(o, "shards"));
	int rc = 0;
	if (!o)
		rc = st_error_set(err, ST_EINVAL, "layout: not JSON: %s", je.text);
	else if (!json_is_array(nodes) || !json_is_array(map) || v < 1 || ns < 1 || ns > 256 ||
		 json_array_size(map) != (size_t)ns)
		rc = st_error_set(err, ST_EINVAL, "layout: needs version >= 1, shards 1..256, nodes "
				  "and one map entry per shard");
	out->version = (uint64_t)v;
	out->nshards = (int)ns;
	size_t i;
	const json_t *e;
	if (!rc)
		json_array_foreach(nodes, i, e)
			if ((rc = node_from_json(out, e, err)))
				break;
	if (!rc && !(out->shards = calloc((size_t)ns, sizeof(*out->shards))))
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
	if (!rc)
		json_array_foreach(map, i, e)
			if ((rc = shard_from_json(out, (int)i, e, err)))
				break;
	json_decref(o);
	if (rc)
		repl_layout_release(out);
	return rc;
}
