/* Internals of replication/: the per-shard role state, the connections a primary serves and
 * the shared context. Not public. */
#ifndef REPL_INT_H
#define REPL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "replication/repl.h"
#include "replication/repl_coord.h"
#include "replication/repl_stream.h"

/* ---- roles (repl_role.c) ---- */
enum repl_state {
	REPL_S_CONNECTING = 0,
	REPL_S_RESYNCING = 1,
	REPL_S_TAILING = 2,
	REPL_S_PRIMARY = 3,
	REPL_S_FENCED = 4,
	REPL_S_NONE = 5, /* this node holds no copy of the shard */
	REPL_NSTATES
};
const char *repl_state_name(enum repl_state s);

struct repl_peer;

/* One shard on this node. Fields marked (mu) are protected by repl.mu; (thr) belong to the
 * shard's replica thread. */
struct repl_shard {
	struct repl *r;
	int shard;
	enum repl_state state;     /* (mu) */
	int primary;               /* (mu) node index of the current primary */
	uint64_t version;          /* (mu) layout version of this assignment */
	struct repl_sync_waiter *sync_waiters; /* (mu) this shard's semi-sync writers */
	/* replica side */
	/* Held around every change of the copy's content by the replica thread (an applied
	 * batch, a resync install, a rewind); apply_closed (set under mu when the shard becomes
	 * primary, cleared when it follows again) is checked under it: once a promotion has
	 * taken apply_mu after setting it, no applied batch lands after the fork point. */
	pthread_mutex_t apply_mu;
	atomic_int apply_closed;
	pthread_t thread;
	int thread_started;        /* (mu) */
	int fd;                    /* (mu) connection to the primary, -1 when none */
	int want_resync;           /* (mu) ask for a full resync at the next connect */
	uint64_t applied_next;     /* (mu) next primary sequence needed */
	uint64_t primary_latest;   /* (mu) from the last heartbeat */
	int64_t primary_clock_us;  /* (mu) completeness time in the last heartbeat */
	int64_t complete_us;       /* (mu) wall time up to which this copy has every write of
				    * the primary (0 = unknown): bounds reads (--replica-max-lag) */
	int64_t heard_us;          /* (mu) our clock when a frame last arrived */
	uint64_t resync_done, resync_total; /* (mu) bytes of the running resync */
	uint64_t resyncs;          /* (mu) completed resyncs */
	/* primary side, WAL retention (repl_walpin.c) */
	int64_t wal_seen_us[REPL_MAX_NODES]; /* (mu) replica node last connected (0 = not yet
					      * looked at) */
	int64_t wal_want_us;       /* (mu) a replica last needed the WAL kept */
	int wal_pinned;            /* (mu) the store's pin is on */
	char last_error[512];      /* (mu) */
};

struct repl_metrics {
	atomic_uint_fast64_t batches_sent, bytes_sent, batches_applied, resyncs_sent,
		resync_bytes_sent, resyncs_done, resync_bytes_recv, reconnects, send_timeouts,
		lag_disconnects, sync_waits, sync_timeouts, sync_degraded, proto_errors,
		writes_refused, stale_reads_refused,
		/* coordination (etcd mode) */
		lease_renews, lease_renew_failures, lease_renew_us_sum, lease_renew_us_max,
		failovers, fenced_writes_refused, divergent_discarded, divergent_discards,
		/* rejoin after a fork (repl_replica.c; catch-ups served: repl_primary.c) */
		rejoin_truncations, rejoin_resyncs, rejoin_catchups,
		/* etcd watch and live layout changes (repl_coord_etcd.c) */
		etcd_watch_events, layout_changes;
};

struct repl {
	struct kv_db *db;
	char data_dir[4096];
	struct repl_options o;
	struct repl_layout layout; /* nodes are fixed; shard assignments live in shards[] */
	int self;                  /* this node's index */
	int lfd, port;
	pthread_t accept_thread;
	atomic_int stopping;
	pthread_mutex_t mu;
	pthread_cond_t cond;       /* acks, new writes, state changes */
	struct repl_shard *shards;
	struct repl_peer *peers;   /* (mu) connections served as primary */
	int npeer_threads;         /* (mu) running peer threads */
	struct repl_metrics m;
	struct repl_coord *coord;  /* layout source and leadership (repl_coord.h) */
	/* Monotonic time (repl_now_us) until which this node may acknowledge writes as a
	 * primary: INT64_MAX without leases, else the lease deadline (repl_lease_deadline). */
	atomic_int_fast64_t lease_until_us;
};

/* A connection served by this node's listener (a replica or an admin client). */
struct repl_peer {
	struct repl *r;
	struct repl_peer *next;    /* (mu) */
	int fd;
	int shard;                 /* -1 until a HELLO */
	char node[REPL_NAME_MAX];
	uint64_t acked_next;       /* (mu) everything before it is applied on the replica */
	uint64_t sent_next;        /* (mu) */
	pthread_t thread;
	int done;                  /* (mu) the peer thread has finished */
};

/* repl_role.c: the only way a shard's state changes (mu held). Illegal transitions are
 * programming errors (ST_ASSERT). */
void repl_set_state(struct repl *r, struct repl_shard *sh, enum repl_state to);
/* Checks the invariants of every shard (mu held); on in ASan builds and tests. */
void repl_assert_state(struct repl *r);
/* Role of this node for a shard in the layout: PRIMARY, CONNECTING (replica) or NONE. */
enum repl_state repl_role_initial(const struct repl *r, int shard);
/* Applies a layout change for a shard (promote / retarget / fence); mu held. */
void repl_role_reassign(struct repl *r, struct repl_shard *sh, int primary, uint64_t version);
/* Persists the shard assignments that differ from the layout file (data_dir/cluster-state.json)
 * and loads them at start. */
int repl_role_save(struct repl *r, struct st_error *err);
/* Runs f(r, sh, arg) with the copy's content gate (apply_mu) held, unless the shard stopped
 * replicating (apply_closed): then ST_ECANCELED. mu must not be held. */
int repl_role_apply(struct repl_shard *sh, int (*f)(struct repl *r, struct repl_shard *sh,
						    void *arg), void *arg, struct st_error *err);
/* How a replica joins this primary's history, from its HELLO (repl_join_plan; pure). */
enum repl_join_kind {
	REPL_JOIN_STREAM,  /* the replica follows this primary's history: stream from `next` */
	REPL_JOIN_REWIND,  /* it holds the history this primary forked from, at or beyond the
			    * fork point: it undoes what it has beyond (undo_from: its own
			    * sequences; 0: it finds them from the followed positions in its WAL)
			    * and continues at `next` */
	REPL_JOIN_CATCHUP, /* a replica of that history behind the fork point: it first gets
			    * the batches up to the fork point from this copy's WAL, then REWIND */
	REPL_JOIN_RESYNC,
};
struct repl_join {
	enum repl_join_kind kind;
	uint64_t next;       /* STREAM, REWIND: the sequence of this primary to stream from */
	uint64_t undo_from;  /* REWIND: the replica's own sequences from here on are undone
			      * (0 = none) */
};
/* mine: this primary's replication id; fork: its fork record (NULL = none); pos: the
 * replica's position (the history it follows); own: the replica's copy id and its latest + 1
 * (the history it wrote, if it was a primary); resync: the replica asked for one. */
void repl_join_plan(const char *mine, const struct kv_repl_fork *fork,
		    const struct kv_repl_pos *pos, const struct kv_repl_pos *own, int resync,
		    struct repl_join *out);
/* A new layout for a running node (etcd: strata-admin cluster add-node / move-slots): nodes
 * it does not know are appended (a node removed from the layout stays known, in no shard);
 * each shard's members become the new layout's, around the shard's current primary; this
 * node starts replicating a shard it gained and stops one it lost. The shard count must not
 * change. Returns the number of shards whose members changed, or ST_EINVAL (mu not held). */
int repl_layout_apply(struct repl *r, const struct repl_layout *nl, struct st_error *err);
/* A primary whose lease is gone (etcd mode): PRIMARY -> FENCED, it keeps its copy and may
 * win the next election (mu held). */
void repl_role_lease_lost(struct repl *r, struct repl_shard *sh);
/* The position this node's copy of a shard stands for in an election: a primary's (or fenced
 * former primary's) own replication id and latest + 1, a replica's followed id and position.
 * *eligible: not resyncing and not waiting for one (mu not held). */
int repl_role_position(struct repl *r, int shard, char *replid, uint64_t *next, int *eligible,
		       struct st_error *err);
int repl_role_load(struct repl *r, struct st_error *err);

/* repl_primary.c */
int repl_listener_start(struct repl *r, struct st_error *err);
void repl_listener_stop(struct repl *r);
/* Serves an admin request on its own connection (repl_admin.c). */
void repl_admin_serve(struct repl *r, int fd, const struct repl_frame *f);

/* repl_walpin.c: pins each primary shard's WAL while a replica of it is behind or was
 * connected less than --wal-pin-max ago, up to --wal-pin-mb of WAL; called every 200 ms by
 * the listener thread. */
void repl_wal_retain(struct repl *r);

/* repl_replica.c */
int repl_replica_start(struct repl *r, struct repl_shard *sh, struct st_error *err);
/* Breaks the shard's connection so its thread reconsiders its role (mu held). */
void repl_replica_kick(struct repl_shard *sh);
void repl_replica_join_all(struct repl *r);

/* repl_node.c: a replica of `shard` acked (mu held): unlinks exactly the semi-sync writers
 * whose own sequence now has its K acks (not every waiter: 50 writers woken per ack would
 * all fight for mu to find that most must sleep again) and returns them, for
 * repl_sync_wake once mu is released. */
struct repl_sync_waiter *repl_sync_acked(struct repl *r, int shard);
void repl_sync_wake(struct repl_sync_waiter *w);

/* repl_resync.c */
/* Primary: checkpoint `shard` and stream it on fd; the peer's sent_next is set to the
 * checkpoint's sequence before the end of the resync is sent (the replica acks it at once). */
int repl_resync_send(struct repl *r, struct repl_peer *p, const char *replid,
		     uint64_t *next_seq, struct st_error *err);
/* Replica: receives the files announced by the RESYNC frame f (from the session's reader),
 * installs them. */
int repl_resync_recv(struct repl *r, struct repl_shard *sh, struct repl_reader *rd,
		     const struct repl_frame *f, struct kv_repl_pos *pos, struct st_error *err);

/* The shard's replication id on this node (generated once per copy of the shard). */
int repl_shard_replid(struct repl *r, int shard, char *out, struct st_error *err);

int64_t repl_now_us(void);
/* Refuses registry changes unless this node is the primary of shard 0 (which owns the
 * registry); call after any change of shard 0's role. */
void repl_registry_follow(struct repl *r);

#endif
