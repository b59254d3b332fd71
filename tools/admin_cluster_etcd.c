/* strata-admin cluster init|add-node|remove-node|move-slots: edits the layout stored in etcd
 * (--cluster etcd://HOST:PORT/PREFIX) with compare-and-swap transactions, so two operators
 * (or an operator and a script) never overwrite each other's change: each edit compares the
 * layout key's revision it read and fails with "changed meanwhile" otherwise. */
#include "tools/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl.h"
#include "replication/repl_etcd.h"

#define ETCD_TIMEOUT_US (5 * 1000000LL)

static int fail(const char *what, const struct st_error *err)
{
	fprintf(stderr, "strata-admin: cluster %s: %s\n", what, err->msg);
	return 1;
}

static void layout_key(struct repl_etcd *e, char *k, size_t n)
{
	snprintf(k, n, "%s/layout", repl_etcd_prefix(e));
}

/* Writes the layout (and, for init, every shard's first epoch key) if the layout key still
 * has revision `rev` (0: does not exist). */
static int cas_layout(struct repl_etcd *e, const struct repl_layout *l, int64_t rev, int init,
		      struct st_error *err)
{
	char k[600];
	layout_key(e, k, sizeof(k));
	char *js = repl_layout_to_json(l);
	if (!js)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	json_t *ops = json_array();
	json_array_append_new(ops, json_pack("{s:o}", "request_put", repl_etcd_op_put(k, js, 0)));
	free(js);
	for (int s = 0; init && s < l->nshards; s++) {
		char ek[600];
		snprintf(ek, sizeof(ek), "%s/shards/%d/epoch", repl_etcd_prefix(e), s);
		json_t *ev = json_pack("{s:I,s:s,s:s}", "epoch", (json_int_t)l->shards[s].version,
				       "node", l->nodes[l->shards[s].primary].name, "replid", "");
		char *evs = json_dumps(ev, JSON_COMPACT);
		json_decref(ev);
		json_array_append_new(ops, json_pack("{s:o}", "request_put",
						     repl_etcd_op_put(ek, evs ? evs : "", 0)));
		free(evs);
	}
	int ok = 0;
	int rc = repl_etcd_txn(e, json_pack("[o]", repl_etcd_cmp_rev(k, rev ? "MOD" : "CREATE", rev)),
			       ops, &ok, err);
	if (!rc && !ok)
		rc = st_error_set(err, ST_EBUSY, init ? "a layout already exists at %s"
						      : "the layout at %s changed meanwhile: retry", k);
	return rc;
}

/* Reads the stored layout and its revision. */
static int get_layout(struct repl_etcd *e, struct repl_layout *l, int64_t *rev,
		      struct st_error *err)
{
	char k[600];
	layout_key(e, k, sizeof(k));
	struct repl_etcd_kvs kvs;
	int rc = repl_etcd_range(e, k, 0, &kvs, err);
	if (rc)
		return rc;
	if (!kvs.n)
		rc = st_error_set(err, ST_ENOTFOUND, "no layout at %s (cluster init first)", k);
	else {
		*rev = kvs.kv[0].mod_rev;
		rc = repl_layout_from_json(kvs.kv[0].value, l, err);
	}
	repl_etcd_kvs_release(&kvs);
	return rc;
}

static int cmd_init(struct repl_etcd *e, int argc, char **argv)
{
	if (argc != 1)
		return fprintf(stderr, "strata-admin: cluster init --cluster etcd://... LAYOUT.ini\n"), 2;
	struct repl_layout l;
	struct st_error err = {0};
	if (repl_layout_load(argv[0], &l, &err))
		return fail("init", &err);
	int rc = cas_layout(e, &l, 0, 1, &err);
	if (!rc)
		printf("cluster initialised: %d nodes, %d shards, layout version %llu\n", l.nnodes,
		       l.nshards, (unsigned long long)l.version);
	repl_layout_release(&l);
	return rc ? fail("init", &err) : 0;
}

/* add-node NAME ADDR REPL_ADDR */
static int edit_add_node(struct repl_etcd *e, struct repl_layout *l, char **argv,
			 struct st_error *err)
{
	if (repl_layout_find(l, argv[0]) >= 0)
		return st_error_set(err, ST_EEXIST, "node '%s' already exists", argv[0]);
	if (l->nnodes == REPL_MAX_NODES)
		return st_error_set(err, ST_ELIMIT, "already %d nodes", REPL_MAX_NODES);
	if (strlen(argv[0]) >= REPL_NAME_MAX || !*argv[0] || strchr(argv[0], '/') ||
	    !strchr(argv[1], ':') || !strchr(argv[2], ':') || strlen(argv[1]) >= 256 ||
	    strlen(argv[2]) >= 256)
		return st_error_set(err, ST_EINVAL, "bad node name or address (HOST:PORT)");
	struct repl_node *n = &l->nodes[l->nnodes++];
	snprintf(n->name, sizeof(n->name), "%s", argv[0]);
	snprintf(n->addr, sizeof(n->addr), "%s", argv[1]);
	snprintf(n->repl_addr, sizeof(n->repl_addr), "%s", argv[2]);
	return 0;
}

/* remove-node NAME: only a node that holds no shard */
static int edit_remove_node(struct repl_etcd *e, struct repl_layout *l, char **argv,
			    struct st_error *err)
{
	int n = repl_layout_find(l, argv[0]);
	if (n < 0)
		return st_error_set(err, ST_ENOTFOUND, "no node '%s'", argv[0]);
	for (int s = 0; s < l->nshards; s++)
		if (l->shards[s].primary == n || repl_layout_is_replica(l, s, n))
			return st_error_set(err, ST_EBUSY, "node '%s' still holds shard %d (move-slots "
					    "it away first)", argv[0], s);
	/* drop node n: shift later nodes down and renumber the shard maps */
	memmove(&l->nodes[n], &l->nodes[n + 1], (size_t)(l->nnodes - n - 1) * sizeof(l->nodes[0]));
	l->nnodes--;
	for (int s = 0; s < l->nshards; s++) {
		struct repl_shard_map *m = &l->shards[s];
		m->primary -= m->primary > n;
		for (int i = 0; i < m->nreplicas; i++)
			m->replicas[i] -= m->replicas[i] > n;
	}
	return 0;
}

/* The shard's current leader: its leader key, else its last election's node. */
static int shard_leader(struct repl_etcd *e, long s, char *who, size_t n, struct st_error *err)
{
	char k[600];
	snprintf(k, sizeof(k), "%s/shards/%ld/", repl_etcd_prefix(e), s);
	struct repl_etcd_kvs kvs;
	int rc = repl_etcd_range(e, k, 1, &kvs, err);
	for (size_t i = 0; !rc && i < kvs.n; i++) {
		json_t *o = json_loadb(kvs.kv[i].value, kvs.kv[i].vlen, 0, NULL);
		const char *node = json_string_value(json_object_get(o, "node"));
		if (node && (!who[0] || strstr(kvs.kv[i].key, "/leader")))
			snprintf(who, n, "%s", node);
		json_decref(o);
	}
	if (!rc)
		repl_etcd_kvs_release(&kvs);
	return rc;
}

/* move-slots SHARD NODE[,NODE...]: the nodes that hold shard SHARD's slots from now on. The
 * shard's current leader must stay among them: a change of primary is an election, not an
 * edit. */
static int edit_move_slots(struct repl_etcd *e, struct repl_layout *l, char **argv,
			   struct st_error *err)
{
	char *end, who[REPL_NAME_MAX] = "";
	long s = strtol(argv[0], &end, 10);
	if (*end || end == argv[0] || s < 0 || s >= l->nshards)
		return st_error_set(err, ST_EINVAL, "no shard '%s' (there are %d)", argv[0],
				    l->nshards);
	int rc = shard_leader(e, s, who, sizeof(who), err);
	struct repl_shard_map m = {.primary = -1, .version = l->version + 1};
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", argv[1]);
	for (char *save, *tok = strtok_r(buf, ",", &save); !rc && tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int n = repl_layout_find(l, tok);
		if (n < 0)
			rc = st_error_set(err, ST_ENOTFOUND, "no node '%s' (add-node first)", tok);
		else if (!strcmp(tok, who))
			m.primary = n;
		else if (m.nreplicas < REPL_MAX_NODES)
			m.replicas[m.nreplicas++] = n;
	}
	if (!rc && m.primary < 0)
		rc = st_error_set(err, ST_EINVAL, "shard %ld's primary %s must stay among its nodes",
				  s, who[0] ? who : "(unknown)");
	if (!rc)
		l->shards[s] = m;
	return rc;
}

static const struct {
	const char *name;
	int nargs;
	const char *args;
	int (*apply)(struct repl_etcd *e, struct repl_layout *l, char **argv, struct st_error *err);
} edits[] = {
	{"add-node", 3, "NAME HOST:PORT REPL_HOST:PORT", edit_add_node},
	{"remove-node", 1, "NAME", edit_remove_node},
	{"move-slots", 2, "SHARD NODE[,NODE...]",
	 edit_move_slots},
};

/* One edit: read the layout and its revision, change it, write it back if unchanged. */
static int run_edit(struct repl_etcd *e, size_t i, int argc, char **argv)
{
	if (argc != edits[i].nargs) {
		fprintf(stderr, "strata-admin: cluster %s --cluster etcd://... %s\n", edits[i].name,
			edits[i].args);
		return 2;
	}
	struct repl_layout l;
	int64_t rev = 0;
	struct st_error err = {0};
	if (get_layout(e, &l, &rev, &err))
		return fail(edits[i].name, &err);
	int rc = edits[i].apply(e, &l, argv, &err);
	if (!rc) {
		l.version++;
		rc = cas_layout(e, &l, rev, 0, &err);
	}
	if (!rc)
		printf("cluster %s: done (layout version %llu)\n", edits[i].name,
		       (unsigned long long)l.version);
	repl_layout_release(&l);
	return rc ? fail(edits[i].name, &err) : 0;
}

int admin_cluster_etcd(const char *cmd, const char *url, int argc, char **argv)
{
	size_t i = 0;
	while (i < sizeof(edits) / sizeof(edits[0]) && strcmp(edits[i].name, cmd))
		i++;
	if (i == sizeof(edits) / sizeof(edits[0]) && strcmp(cmd, "init"))
		return -1;
	if (strncmp(url, "etcd://", 7)) {
		fprintf(stderr, "strata-admin: cluster %s edits a layout in etcd: --cluster "
			"etcd://HOST:PORT/PREFIX\n", cmd);
		return 2;
	}
	struct repl_etcd *e;
	struct st_error err = {0};
	if (repl_etcd_open(url, ETCD_TIMEOUT_US, &e, &err))
		return fail(cmd, &err);
	int rc = strcmp(cmd, "init") ? run_edit(e, i, argc, argv) : cmd_init(e, argc, argv);
	repl_etcd_close(e);
	return rc;
}
