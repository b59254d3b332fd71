/* Shard replication: public API of libstrata-repl, used by stratad (server/srv_repl.c) and
 * strata-admin (tools/admin_cluster.c). Depends on the store (store/kv.h) only.
 *
 * A static layout (--cluster FILE, INI) names the nodes and, for every shard, its primary and
 * replicas. Each node runs one replication listener: primaries stream their shards' WAL to
 * the replicas that connect (repl_primary.c), replicas pull and apply (repl_replica.c), a
 * replica with no usable position gets a checkpoint (repl_resync.c), and every shard's role
 * follows the state machine of repl_role.c. See docs/replication.md.
 *
 * Errors: 0 or a negative code from common/st_err.h with `err` filled. */
#ifndef REPL_H
#define REPL_H

#include <stddef.h>
#include <stdint.h>

#include "common/st_err.h"
#include "store/kv.h"

#define REPL_MAX_NODES 16
#define REPL_NAME_MAX 64

struct repl_node {
	char name[REPL_NAME_MAX];
	char addr[256];      /* client address (HOST:PORT) */
	char repl_addr[256]; /* replication listener (HOST:PORT) */
};

struct repl_shard_map {
	int primary;                    /* node index */
	int nreplicas;
	int replicas[REPL_MAX_NODES];   /* node indexes */
	uint64_t version;               /* layout version of this shard's assignment */
};

/* The cluster layout. `shards` is owned: release with repl_layout_release. Slot -> shard is
 * the store's fixed rule (slot % nshards, see kv.h): the layout assigns whole shards. */
struct repl_layout {
	uint64_t version;
	int nshards;
	int nnodes;
	struct repl_node nodes[REPL_MAX_NODES];
	struct repl_shard_map *shards;
};

/* Reads an INI layout:
 *   [cluster]  version = 1, shards = 4
 *   [node NAME] addr = HOST:PORT, repl = HOST:PORT
 *   [shard N]  primary = NAME, replicas = NAME NAME ...   ("[shard *]" = every shard
 *              without its own section)
 * Every shard must have a primary; a replica must differ from the primary. */
int repl_layout_load(const char *path, struct repl_layout *out, struct st_error *err);
void repl_layout_release(struct repl_layout *l);

/* The layout as JSON (stored in etcd at PREFIX/layout):
 *   {"version":V,"shards":N,"nodes":[{"name","addr","repl"}...],
 *    "map":[{"primary":NAME,"replicas":[NAME...]}...]}   (one entry per shard)
 * to_json returns malloc'ed text (NULL: out of memory); from_json checks like the INI. */
char *repl_layout_to_json(const struct repl_layout *l);
int repl_layout_from_json(const char *js, struct repl_layout *out, struct st_error *err);
/* Node index of `name`, or -1. */
int repl_layout_find(const struct repl_layout *l, const char *name);
/* 1 if node n is a replica of shard s. */
int repl_layout_is_replica(const struct repl_layout *l, int s, int n);

struct repl_options {
	char cluster_file[4096];  /* "" = no cluster: single node, no replication; a layout file
				   * or etcd://HOST:PORT/PREFIX */
	char node[REPL_NAME_MAX]; /* this node's name in the layout */
	int min_sync_replicas;    /* K: writes wait for K replicas (0 = async) */
	int64_t sync_timeout_us;  /* how long a write waits for K replicas */
	int sync_degrade;         /* on timeout acknowledge as async instead of failing */
	uint64_t max_lag_seq;     /* a replica further behind is disconnected (0 = no limit) */
	int64_t send_timeout_us;  /* a replica that does not read for this long is dropped */
	int64_t wal_ttl_us;       /* WAL kept for replicas (passed to the store) */
	int64_t replica_max_lag_us; /* a replica refuses (redirects) reads when it is not known
				     * to be complete up to now - this (0 = serve whatever it has) */
	int64_t lease_ttl_s;      /* etcd mode: the node lease's TTL (default 2 s) */
	int64_t wal_pin_max_us;   /* a primary keeps a shard's WAL (beyond wal_ttl) while a
				   * replica is behind or was connected less than this ago
				   * (0 = no pin: wal_ttl alone) */
	uint64_t wal_pin_mb;      /* ... as long as the shard's WAL stays under this many MiB */
	uint64_t ring_kb;         /* recent batches kept in memory per shard for the streams
				   * (kv_repl_ring_enable; 0 = none: every stream reads the WAL) */
};
void repl_options_init(struct repl_options *o);
/* The layout named by o->cluster_file: the file, or the one stored in etcd. */
int repl_cluster_load(const struct repl_options *o, struct repl_layout *out, struct st_error *err);
/* Applies one option by its long name ("cluster", "node", "min-sync-replicas",
 * "sync-timeout", "sync-degrade", "max-replication-lag", "repl-send-timeout", "wal-ttl",
 * "replica-max-lag", "lease-ttl", "wal-pin-max", "wal-pin-mb", "repl-ring-kb").
 * Returns 0, ST_ENOTFOUND for a name that is not a replication option, or ST_EINVAL. */
int repl_option_set(struct repl_options *o, const char *name, const char *val,
		    struct st_error *err);

struct repl;

/* Starts replication for an open store: the listener on this node's repl address, one
 * replica thread per shard this node replicates, and the store hooks (write routing,
 * semi-sync). The layout is copied. */
int repl_start(struct kv_db *db, const char *data_dir, const struct repl_options *o,
	       const struct repl_layout *layout, struct repl **out, struct st_error *err);
/* Stops every thread and closes every connection; removes the store hooks. NULL allowed. */
void repl_stop(struct repl *r);
int repl_port(const struct repl *r);
/* Prometheus text exposition of the replication metrics (malloc'ed; caller frees). */
char *repl_metrics_text(struct repl *r);
/* The node's status as JSON text (malloc'ed; caller frees): what `cluster status` shows. */
char *repl_status_json(struct repl *r);

/* ---- what clients route with (repl_describe.c; the CLUSTER request) ---- */
struct repl_desc_shard {
	int primary;                  /* node index */
	int nreplicas;
	int replicas[REPL_MAX_NODES]; /* node indexes */
	uint64_t version;             /* layout version of this shard's assignment */
	int has_epoch;                /* coordinated failover: the shard's epoch is known */
	uint64_t epoch;
	const char *state;            /* this node's state for the shard (static string) */
	int64_t lag_ms;               /* this node's lag behind the primary; -1 = unknown/none */
};
/* The layout as one node sees it now (promotions included). `shards` is owned: release
 * with repl_desc_release. version = the highest of the file's and the shards' versions. */
struct repl_desc {
	uint64_t version;
	int nshards;
	int nnodes;
	int self;
	struct repl_node nodes[REPL_MAX_NODES];
	struct repl_desc_shard *shards;
};
int repl_describe(struct repl *r, struct repl_desc *out, struct st_error *err);
void repl_desc_release(struct repl_desc *d);
/* Bounded-staleness reads: 0 if this node may answer a read of `shard` that must reflect
 * every write acknowledged before now - max_lag_us (always on the shard's primary);
 * ST_ESTALE with the copy's age otherwise. Shards this node does not hold pass: the read
 * itself redirects them (EMOVED). */
int repl_read_fresh(struct repl *r, int shard, int64_t max_lag_us, struct st_error *err);

/* Admin round trip: sends a JSON request to a node's replication listener and returns the
 * JSON reply text (malloc'ed) or an error (the node's own message for a refused request). */
int repl_admin_call(const char *repl_addr, const char *request_json, int64_t timeout_us,
		    char **reply, struct st_error *err);

#endif
