/* strata-admin: subcommand table and helpers shared by the tools/admin_*.c files. */
#ifndef ADMIN_H
#define ADMIN_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>

/* A subcommand: argv[0] is the subcommand name. Returns the process exit code. */
struct admin_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage; /* one or more "  strata-admin ..." lines */
};

int admin_trash(int argc, char **argv);
int admin_rmr(int argc, char **argv);
int admin_fs(int argc, char **argv);
int admin_journal(int argc, char **argv);
/* Offline store operations (tools/admin_store.c). */
int admin_backup(int argc, char **argv);
int admin_restore(int argc, char **argv);
int admin_verify(int argc, char **argv);
int admin_compact(int argc, char **argv);
int admin_stats(int argc, char **argv);
int admin_dump(int argc, char **argv);
/* Replicated cluster operations (tools/admin_cluster.c). */
int admin_cluster(int argc, char **argv);
/* The layout edits in etcd (tools/admin_cluster_etcd.c): init|add-node|remove-node|
 * move-slots with argv the positional arguments. Returns -1 when `cmd` is none of them. */
int admin_cluster_etcd(const char *cmd, const char *url, int argc, char **argv);

/* Where a command acts: a live mount (through its control channel) or, offline, a backing
 * directory directly. */
struct admin_target {
	char mnt[PATH_MAX];     /* "" when offline */
	char backing[PATH_MAX]; /* realpath of the backing directory */
	int live;
};

/* Resolves --mount M / --backing B / the mount containing `path` (may be NULL) or the cwd
 * (or the only mount). Prints the error and returns -1 on failure. */
int admin_target_resolve(const char *mount, const char *backing, const char *path,
			 struct admin_target *t);

/* Round trip to the live daemon; prints the error and returns NULL on failure (including
 * a response with ok=false, whose errno is stored in *errno_out when non-NULL). */
json_t *admin_call(const struct admin_target *t, json_t *req, int *errno_out);

/* "12.3 MiB" into buf (32 bytes). */
const char *admin_bytes(int64_t n, char *buf);

#endif
