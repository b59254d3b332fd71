/* strata-admin cluster status|promote|resync|verify: operator commands for a replicated
 * cluster, sent to each node's replication listener (the nodes come from the layout file or
 * etcd); the etcd layout edits are in admin_cluster_etcd.c. */
#include "tools/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/st_progress.h"
#include "common/st_time.h"
#include "replication/repl.h"

#define CALL_TIMEOUT_US (30 * 1000000LL)

struct cl_args {
	const char *cluster;
	int json, graceful, shard, wait;
	int64_t timeout_us;
	const char *pos[4];
	int npos;
};

static int cl_parse(int argc, char **argv, struct cl_args *a)
{
	memset(a, 0, sizeof(*a));
	a->shard = -1;
	a->timeout_us = 30 * 1000000LL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cluster") && i + 1 < argc)
			a->cluster = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			a->json = 1;
		else if (!strcmp(argv[i], "--graceful"))
			a->graceful = 1;
		else if (!strcmp(argv[i], "--wait"))
			a->wait = 1;
		else if (!strcmp(argv[i], "--shard") && i + 1 < argc)
			a->shard = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (st_dur_parse(argv[++i], &a->timeout_us)) {
				fprintf(stderr, "strata-admin: bad --timeout\n");
				return -1;
			}
		} else if (argv[i][0] == '-' || a->npos == 4) {
			fprintf(stderr, "strata-admin: cluster: unexpected argument '%s'\n", argv[i]);
			return -1;
		} else
			a->pos[a->npos++] = argv[i];
	}
	if (!a->cluster) {
		fprintf(stderr, "strata-admin: cluster commands need --cluster FILE\n");
		return -1;
	}
	return 0;
}

/* One request to one node; prints nothing. Returns the parsed reply or NULL with err set. */
static json_t *node_call(const struct repl_node *n, json_t *req, struct st_error *err)
{
	char *s = json_dumps(req, JSON_COMPACT), *reply = NULL;
	int rc = s ? repl_admin_call(n->repl_addr, s, CALL_TIMEOUT_US, &reply, err) : ST_ENOMEM;
	free(s);
	if (rc)
		return NULL;
	json_t *o = json_loads(reply, 0, NULL);
	free(reply);
	if (!o)
		st_error_set(err, ST_EPROTO, "%s: reply is not JSON", n->repl_addr);
	return o;
}

static json_t *status_of(const struct repl_node *n, struct st_error *err)
{
	json_t *req = json_pack("{s:s}", "cmd", "status");
	json_t *o = node_call(n, req, err);
	json_decref(req);
	return o;
}

static json_t *shard_of(json_t *status, int s)
{
	return json_array_get(json_object_get(status, "shards"), (size_t)s);
}

static int64_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static int cmd_status(const struct repl_layout *l, const struct cl_args *a)
{
	json_t *all = json_array();
	int down = 0;
	if (!a->json)
		printf("%-8s %-5s %-8s %-10s %-8s %12s %10s %8s  %s\n", "NODE", "SHARD", "ROLE",
		       "STATE", "PRIMARY", "SEQ", "LAG_SEQ", "LAG_MS", "NOTE");
	for (int i = 0; i < l->nnodes; i++) {
		struct st_error err = {0};
		json_t *st = status_of(&l->nodes[i], &err);
		if (!st) {
			down++;
			json_array_append_new(all, json_pack("{s:s,s:s}", "node", l->nodes[i].name,
							     "error", err.msg));
			if (!a->json)
				printf("%-8s unreachable: %s\n", l->nodes[i].name, err.msg);
			continue;
		}
		json_array_append(all, st);
		size_t k;
		json_t *sh;
		json_array_foreach(json_object_get(st, "shards"), k, sh) {
			if (a->json)
				break;
			const char *role = json_string_value(json_object_get(sh, "role"));
			char note[256] = "";
			json_t *rs = json_object_get(sh, "resync");
			if (rs)
				snprintf(note, sizeof(note), "resync %lld/%lld bytes", (long long)jint(rs, "done"),
					 (long long)jint(rs, "total"));
			else if (json_object_get(sh, "last_error") &&
				 strcmp(json_string_value(json_object_get(sh, "state")), "tailing"))
				snprintf(note, sizeof(note), "%s",
					 json_string_value(json_object_get(sh, "last_error")));
			int primary = !strcmp(role, "primary");
			printf("%-8s %-5lld %-8s %-10s %-8s %12lld %10lld %8lld  %s\n", l->nodes[i].name,
			       (long long)jint(sh, "shard"), role,
			       json_string_value(json_object_get(sh, "state")),
			       json_string_value(json_object_get(sh, "primary")),
			       (long long)(primary ? jint(sh, "next_seq") - 1 : jint(sh, "applied_next") - 1),
			       (long long)(primary ? 0 : jint(sh, "lag_seq")),
			       (long long)(primary ? 0 : jint(sh, "lag_ms")), note);
		}
		json_decref(st);
	}
	if (a->json) {
		json_dumpf(all, stdout, JSON_COMPACT);
		printf("\n");
	}
	json_decref(all);
	return down ? 1 : 0;
}

/* The node that is primary of shard s with the highest layout version, and that version. */
static int find_primary(const struct repl_layout *l, int s, uint64_t *version, int quiet)
{
	int best = -1;
	*version = l->shards[s].version;
	for (int i = 0; i < l->nnodes; i++) {
		struct st_error err = {0};
		json_t *st = status_of(&l->nodes[i], &err);
		if (!st) {
			if (!quiet)
				fprintf(stderr, "strata-admin: %s unreachable: %s\n", l->nodes[i].name,
					err.msg);
			continue;
		}
		json_t *sh = shard_of(st, s);
		uint64_t v = (uint64_t)jint(sh, "layout_version");
		if (v > *version)
			*version = v;
		if (!strcmp(json_string_value(json_object_get(sh, "role")) ?: "", "primary"))
			best = i;
		json_decref(st);
	}
	return best;
}

static int send_layout(const struct repl_node *n, int s, const char *primary, uint64_t v,
		       struct st_error *err)
{
	json_t *req = json_pack("{s:s,s:i,s:s,s:I}", "cmd", "layout", "shard", s, "primary", primary,
				"version", (json_int_t)v);
	json_t *o = node_call(n, req, err);
	json_decref(req);
	json_decref(o);
	return o ? 0 : -1;
}

/* --graceful: fence the old primary first (it refuses writes but keeps streaming), wait until
 * the new primary has applied its exact last sequence, then switch. */
static int graceful_wait(const struct repl_layout *l, int old, int target, int s, uint64_t v,
			 const struct cl_args *a)
{
	struct st_error err = {0};
	if (send_layout(&l->nodes[old], s, l->nodes[target].name, v, &err)) {
		fprintf(stderr, "strata-admin: fencing %s: %s\n", l->nodes[old].name, err.msg);
		return -1;
	}
	json_t *st = status_of(&l->nodes[old], &err);
	if (!st) {
		fprintf(stderr, "strata-admin: %s: %s\n", l->nodes[old].name, err.msg);
		return -1;
	}
	int64_t last = jint(shard_of(st, s), "local_seq");
	json_decref(st);
	int64_t deadline = st_now_us() + a->timeout_us;
	for (;;) {
		json_t *ts = status_of(&l->nodes[target], &err);
		int64_t applied = ts ? jint(shard_of(ts, s), "applied_next") : 0;
		json_decref(ts);
		if (applied > last)
			return 0;
		if (st_now_us() > deadline) {
			fprintf(stderr, "strata-admin: %s applied %lld of %lld within the timeout; "
				"shard %d stays fenced on %s (rerun promote)\n", l->nodes[target].name,
				(long long)applied - 1, (long long)last, s, l->nodes[old].name);
			return -1;
		}
		if (!a->json)
			fprintf(stderr, "\rwaiting for %s: %lld/%lld", l->nodes[target].name,
				(long long)applied - 1, (long long)last);
		usleep(20000);
	}
}

static int cmd_promote(const struct repl_layout *l, const struct cl_args *a)
{
	if (a->npos != 2) {
		fprintf(stderr, "strata-admin: cluster promote NODE SHARD\n");
		return 2;
	}
	int target = repl_layout_find(l, a->pos[0]), s = atoi(a->pos[1]);
	if (target < 0 || s < 0 || s >= l->nshards) {
		fprintf(stderr, "strata-admin: no node '%s' or shard '%s'\n", a->pos[0], a->pos[1]);
		return 2;
	}
	uint64_t v;
	int old = find_primary(l, s, &v, 0);
	v++;
	if (a->graceful) {
		if (old < 0) {
			fprintf(stderr, "strata-admin: --graceful needs the old primary reachable\n");
			return 1;
		}
		if (old != target && graceful_wait(l, old, target, s, v, a))
			return 1;
	}
	struct st_error err = {0};
	if (send_layout(&l->nodes[target], s, l->nodes[target].name, v, &err)) {
		fprintf(stderr, "strata-admin: promote on %s: %s\n", l->nodes[target].name, err.msg);
		return 1;
	}
	int missed = 0;
	json_t *told = json_array();
	for (int i = 0; i < l->nnodes; i++) {
		if (i == target)
			continue;
		if (send_layout(&l->nodes[i], s, l->nodes[target].name, v, &err)) {
			missed++;
			fprintf(stderr, "strata-admin: %s not told (it will be refused by the new "
				"primary's version and must be told before it serves shard %d): %s\n",
				l->nodes[i].name, s, err.msg);
		} else {
			json_array_append_new(told, json_string(l->nodes[i].name));
		}
	}
	if (a->json) {
		json_t *o = json_pack("{s:s,s:i,s:I,s:o,s:i}", "primary", l->nodes[target].name,
				      "shard", s, "layout_version", (json_int_t)v, "told", told,
				      "unreachable", missed);
		json_dumpf(o, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(o);
	} else {
		printf("shard %d: primary is now %s (layout version %llu)\n", s,
		       l->nodes[target].name, (unsigned long long)v);
		json_decref(told);
	}
	return 0;
}

/* --wait: the resync's progress (bytes received of the checkpoint's) from the node's status
 * until it has installed one more copy than `before` and tails again, or the timeout. */
static int resync_wait(const struct repl_node *n, int s, int64_t before, const struct cl_args *a)
{
	struct st_progress p;
	char what[64];
	snprintf(what, sizeof(what), "resync of shard %d on %s", s, n->name);
	st_progress_init(&p, stdout, a->json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO, what);
	int64_t deadline = st_now_us() + a->timeout_us, done = 0;
	for (;;) {
		struct st_error err = {0};
		json_t *st = status_of(n, &err), *sh = st ? shard_of(st, s) : NULL;
		char state[32];
		const char *sv = json_string_value(json_object_get(sh, "state"));
		snprintf(state, sizeof(state), "%s", sv ? sv : "?");
		json_t *rs = json_object_get(sh, "resync");
		int64_t total = rs ? jint(rs, "total") : 0;
		int finished = sh && jint(sh, "resyncs") > before && !strcmp(state, "tailing");
		if (rs)
			done = jint(rs, "done");
		int reached = st != NULL;
		json_decref(st);
		if (finished) {
			st_progress_finish(&p, done, "bytes", "done", NULL);
			return 0;
		}
		if (st_now_us() > deadline) {
			st_progress_finish(&p, done, "bytes", "failed",
					   reached ? "not installed within the timeout" : err.msg);
			return 1;
		}
		st_progress_update(&p, done, total, "bytes", state, 0);
		usleep(20000);
	}
}

static int cmd_resync(const struct repl_layout *l, const struct cl_args *a)
{
	if (a->npos != 2) {
		fprintf(stderr, "strata-admin: cluster resync [--wait [--json] [--timeout DUR]] NODE "
			"SHARD\n");
		return 2;
	}
	int n = repl_layout_find(l, a->pos[0]);
	if (n < 0) {
		fprintf(stderr, "strata-admin: no node '%s'\n", a->pos[0]);
		return 2;
	}
	int s = atoi(a->pos[1]);
	struct st_error err = {0};
	int64_t before = 0;
	if (a->wait) { /* the copies installed so far: the wait ends at the next one */
		json_t *st = status_of(&l->nodes[n], &err);
		if (!st) {
			fprintf(stderr, "strata-admin: %s\n", err.msg);
			return 1;
		}
		before = jint(shard_of(st, s), "resyncs");
		json_decref(st);
	}
	json_t *req = json_pack("{s:s,s:i}", "cmd", "resync", "shard", s);
	json_t *o = node_call(&l->nodes[n], req, &err);
	json_decref(req);
	if (!o) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		return 1;
	}
	json_decref(o);
	if (a->wait)
		return resync_wait(&l->nodes[n], s, before, a);
	printf("%s: resync of shard %s requested\n", a->pos[0], a->pos[1]);
	return 0;
}

/* Lists the slots where two verify replies differ; returns how many. */
static int diff_digests(json_t *p, json_t *r, const char *rname, json_t *out)
{
	int nd = 0;
	json_t *pt = json_object_get(p, "tables"), *rt = json_object_get(r, "tables");
	const char *table;
	json_t *ps;
	json_object_foreach(pt, table, ps) {
		json_t *rs = json_object_get(rt, table);
		if (!rs) {
			json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "replica", rname,
							     "table", table, "what", "table missing"));
			nd++;
			continue;
		}
		for (int pass = 0; pass < 2; pass++) {
			json_t *a = pass ? rs : ps, *b = pass ? ps : rs;
			const char *slot;
			json_t *av;
			json_object_foreach(a, slot, av) {
				json_t *bv = json_object_get(b, slot);
				if (pass && bv)
					continue; /* compared in the first pass */
				if (bv && json_equal(av, bv))
					continue;
				json_array_append_new(
					out, json_pack("{s:s,s:s,s:i,s:O,s:O}", "replica", rname, "table",
						       table, "slot", atoi(slot), "primary",
						       pass ? json_null() : av, "replica_has",
						       pass ? av : (bv ? bv : json_null())));
				nd++;
			}
		}
	}
	json_object_foreach(rt, table, ps) {
		if (!json_object_get(pt, table)) {
			json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "replica", rname,
							     "table", table, "what", "extra table"));
			nd++;
		}
	}
	return nd;
}

static int cmd_verify(const struct repl_layout *l, const struct cl_args *a)
{
	int s = a->shard;
	if (s < 0 || s >= l->nshards) {
		fprintf(stderr, "strata-admin: cluster verify --shard S (0..%d)\n", l->nshards - 1);
		return 2;
	}
	uint64_t v;
	int prim = find_primary(l, s, &v, 1);
	if (prim < 0) {
		fprintf(stderr, "strata-admin: shard %d has no reachable primary\n", s);
		return 1;
	}
	json_t *req = json_pack("{s:s,s:i}", "cmd", "verify", "shard", s);
	struct st_error err = {0};
	json_t *pd = node_call(&l->nodes[prim], req, &err);
	if (!pd) {
		fprintf(stderr, "strata-admin: %s: %s\n", l->nodes[prim].name, err.msg);
		json_decref(req);
		return 1;
	}
	json_t *diffs = json_array();
	int nrep = 0, bad = 0;
	for (int i = 0; i < l->nnodes; i++) {
		if (i == prim)
			continue;
		json_t *st = status_of(&l->nodes[i], &err);
		const char *role = st ? json_string_value(json_object_get(shard_of(st, s), "role")) : NULL;
		int is_rep = role && !strcmp(role, "replica");
		json_decref(st);
		if (!is_rep)
			continue;
		json_t *rd = node_call(&l->nodes[i], req, &err);
		if (!rd) {
			fprintf(stderr, "strata-admin: %s: %s\n", l->nodes[i].name, err.msg);
			bad = 1;
			continue;
		}
		nrep++;
		diff_digests(pd, rd, l->nodes[i].name, diffs);
		json_decref(rd);
	}
	json_decref(req);
	size_t nd = json_array_size(diffs);
	if (a->json) {
		json_t *o = json_pack("{s:i,s:s,s:i,s:O}", "shard", s, "primary", l->nodes[prim].name,
				      "replicas", nrep, "differences", diffs);
		json_dumpf(o, stdout, JSON_COMPACT);
		printf("\n");
		json_decref(o);
	} else {
		size_t i;
		json_t *d;
		json_array_foreach(diffs, i, d) {
			char *js = json_dumps(d, JSON_COMPACT);
			printf("difference: %s\n", js);
			free(js);
		}
		printf("shard %d: primary %s, %d replica%s compared, %zu difference%s\n", s,
		       l->nodes[prim].name, nrep, nrep == 1 ? "" : "s", nd, nd == 1 ? "" : "s");
	}
	json_decref(diffs);
	json_decref(pd);
	return nd || bad ? 1 : 0;
}

static const struct {
	const char *name;
	int (*fn)(const struct repl_layout *l, const struct cl_args *a);
} subs[] = {
	{"status", cmd_status},
	{"promote", cmd_promote},
	{"resync", cmd_resync},
	{"verify", cmd_verify},
};

int admin_cluster(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "strata-admin: cluster status|promote|resync|verify|init|add-node|"
			"remove-node|move-slots (see --help)\n");
		return 2;
	}
	struct cl_args a;
	if (cl_parse(argc - 1, argv + 1, &a))
		return 2;
	int erc = admin_cluster_etcd(argv[1], a.cluster, a.npos, (char **)a.pos);
	if (erc >= 0)
		return erc;
	if (!strcmp(argv[1], "promote") && !strncmp(a.cluster, "etcd://", 7)) {
		fprintf(stderr, "strata-admin: with etcd, primaries are elected automatically (a "
			"primary that stops renewing its lease is replaced): no manual promote\n");
		return 2;
	}
	struct repl_options ro;
	repl_options_init(&ro);
	snprintf(ro.cluster_file, sizeof(ro.cluster_file), "%s", a.cluster);
	struct repl_layout l;
	struct st_error err = {0};
	if (repl_cluster_load(&ro, &l, &err)) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		return 2;
	}
	int rc = 2;
	size_t i = 0;
	while (i < sizeof(subs) / sizeof(subs[0]) && strcmp(subs[i].name, argv[1]))
		i++;
	if (i < sizeof(subs) / sizeof(subs[0]))
		rc = subs[i].fn(&l, &a);
	else
		fprintf(stderr, "strata-admin: unknown cluster command '%s'\n", argv[1]);
	repl_layout_release(&l);
	return rc;
}
