/* The operations the `strata` CLI needs, as a table of functions, so the same commands and
 * output work embedded (cli_embedded.c, the store in-process) and over the network
 * (cli_remote.c, through libstrata). Semantics, ownership and errors are exactly those of the
 * kv_* function of the same name in store/kv.h; `ctx` is the backend's handle. */
#ifndef CLI_BACKEND_H
#define CLI_BACKEND_H

#include "store/kv.h"

struct cli_join; /* backend-specific streaming join */

struct cli_backend {
	void *ctx;
	void (*close)(void *ctx);

	int (*table_create)(void *ctx, const struct kv_table *schema, struct st_error *err);
	int (*table_get)(void *ctx, const char *name, struct kv_table **out, struct st_error *err);
	int (*table_list)(void *ctx, struct kv_table ***out, size_t *n, struct st_error *err);
	int (*table_alter)(void *ctx, const char *name, const struct kv_alter *a,
			   struct st_error *err);
	int (*table_drop)(void *ctx, const char *name, struct st_error *err);

	int (*put)(void *ctx, const char *table, const struct kv_cell *cells, size_t n,
		   struct st_error *err);
	int (*del)(void *ctx, const char *table, const char *entity, size_t entity_len,
		   const char *const *features, size_t nfeatures, int64_t ts, struct st_error *err);
	/* kv_multiget: nentities x nfeatures into out[e * nfeatures + f] (one request over the
	 * network, whatever nentities; a single get is nentities = 1). */
	int (*get)(void *ctx, const char *table, const char *const *entities,
		   const size_t *entity_lens, size_t nentities, const char *const *features,
		   size_t nfeatures, const struct kv_read_opts *o, struct kv_result *out,
		   struct st_error *err);
	int (*history)(void *ctx, const char *table, const char *entity, size_t entity_len,
		       const char *feature, int64_t from, int64_t to, size_t limit,
		       int64_t known_at, struct kv_version **out, size_t *n, struct st_error *err);

	/* Streaming join: same contract as kv_join_* (push until 1, run, read rows, reset);
	 * skip_before_horizon as KV_JOIN_SKIP_BEFORE_HORIZON. */
	int (*join_open)(void *ctx, const char *table, const char *const *features,
			 size_t nfeatures, int64_t known_at, size_t chunk_rows,
			 int skip_before_horizon, struct cli_join **out, struct st_error *err);
	int (*join_push)(struct cli_join *j, const char *entity, size_t entity_len, int64_t ts,
			 struct st_error *err);
	int (*join_run)(struct cli_join *j, struct st_error *err);
	size_t (*join_rows)(const struct cli_join *j);
	const struct kv_result *(*join_result)(const struct cli_join *j, size_t i);
	void (*join_reset)(struct cli_join *j);
	void (*join_free)(struct cli_join *j);

	int (*preload_submit)(void *ctx, const struct kv_preload_req *req, uint64_t *id,
			      struct st_error *err);
	int (*job_get)(void *ctx, uint64_t id, struct kv_job_info *out, struct st_error *err);
	int (*job_list)(void *ctx, struct kv_job_info **out, size_t *n, struct st_error *err);
	int (*job_cancel)(void *ctx, uint64_t id, struct st_error *err);
	/* Remote only (NULL embedded): reads may go to replicas, bounded by max_lag_ms (0 =
	 * none); the layout a cluster client routes with, as JSON (*json: free()). */
	void (*read_pref)(void *ctx, int replica_ok, uint32_t max_lag_ms);
	int (*cluster)(void *ctx, char **json, struct st_error *err);
	/* Embedded only (NULL remotely, where stratad runs jobs itself). */
	int (*jobs_run_pending)(void *ctx, struct st_error *err);
};

/* Opens the embedded backend on a data dir; run_jobs as in kv_options. */
int cli_embedded_open(const char *dir, int run_jobs, struct cli_backend *out,
		      struct st_error *err);
/* Opens the remote backend: "HOST:PORT", optional token (NULL = none). Provided by
 * client/cli_remote.c. */
int cli_remote_open(const char *addr, const char *token, struct cli_backend *out,
		    struct st_error *err);
/* The same with explicit libstrata connection options (timeouts, token; NULL = defaults),
 * for embedders such as the Python package. */
struct strata_connect_opts;
int cli_remote_open_opts(const char *addr, const struct strata_connect_opts *o,
			 struct cli_backend *out, struct st_error *err);
/* A libstrata result as the store's (the value's storage moves to out), for embedders that
 * read a remote backend's libstrata handle (its ctx) directly. */
struct strata_result;
void cli_remote_result_out(struct strata_result *in, struct kv_result *out);
/* The same without taking the value: out borrows in's (not to be released). */
void cli_remote_result_view(const struct strata_result *in, struct kv_result *out);

#endif
