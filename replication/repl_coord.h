/* Coordination: where a node's layout comes from and who leads each shard. One interface, two
 * implementations chosen by --cluster:
 *   FILE                      repl_coord_static.c: the INI layout; leadership changes only by
 *                             operator command (strata-admin cluster promote)
 *   etcd://HOST:PORT/PREFIX   repl_coord_etcd.c: layout and per-shard leader + epoch in etcd,
 *                             node leases, automatic election, fencing by lease deadline
 * Internal to replication/ (repl_node.c drives it); owned by struct repl. */
#ifndef REPL_COORD_H
#define REPL_COORD_H

#include "replication/repl.h"

struct repl_coord;

struct repl_coord_ops {
	const char *name;
	/* The layout (nodes, shards, each shard's members). */
	int (*load_layout)(struct repl_coord *c, struct repl_layout *out, struct st_error *err);
	/* Leadership for a started node: called by repl_start after the listener is up and
	 * before the replica threads start; may adjust shard roles (mu not held). */
	int (*start)(struct repl_coord *c, struct repl *r, struct st_error *err);
	/* Stops what start started (threads, the lease). Called before the node's threads stop. */
	void (*stop)(struct repl_coord *c);
	void (*free)(struct repl_coord *c);
	/* Whether writes are bound to a lease deadline (repl->lease_until_us). */
	int leased;
};

struct repl_coord {
	const struct repl_coord_ops *ops;
};

/* Opens the coordinator named by o->cluster_file (a file path or an etcd:// URL). */
int repl_coord_open(const struct repl_options *o, struct repl_coord **out, struct st_error *err);
void repl_coord_free(struct repl_coord *c);

int repl_coord_static_open(const char *path, struct repl_coord **out, struct st_error *err);
int repl_coord_etcd_open(const char *url, const struct repl_options *o, struct repl_coord **out,
			 struct st_error *err);

/* ---- the pure parts of the etcd coordinator, unit-tested (tests/unit/test_repl_coord.c) ---- */

/* One node's published position for a shard (its key PREFIX/nodes/NAME). */
struct repl_candidate {
	char node[REPL_NAME_MAX];
	char replid[64];  /* the replication history its copy follows (or is, for a primary) */
	uint64_t next;    /* next sequence it needs under that history */
	int eligible;     /* not resyncing, not waiting for a resync */
};
/* The election rule: among eligible candidates of history `hist`, the one with the highest
 * `next` (ties: the smallest node name). Returns its index or -1 when none qualifies. */
int repl_elect_best(const struct repl_candidate *c, int n, const char *hist);

/* The lease deadline: a keepalive sent at monotonic time sent_us that etcd answered with
 * ttl_s keeps the lease in etcd until at least sent_us + ttl_s (etcd starts counting when
 * it receives the request, after it was sent). The node stops acknowledging writes at the
 * returned time: earlier by the clock-rate bound (1% of the TTL) and a fixed margin. */
#define REPL_LEASE_MARGIN_US 200000
int64_t repl_lease_deadline(int64_t sent_us, int64_t ttl_s);

#endif
