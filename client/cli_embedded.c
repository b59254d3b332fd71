/* The CLI's embedded backend: the store opened in-process (see cli_backend.h). */
#include "client/cli_backend.h"

#include <string.h>

static void emb_close(void *ctx)
{
	kv_close(ctx);
}

static int emb_table_create(void *ctx, const struct kv_table *s, struct st_error *err)
{
	return kv_table_create(ctx, s, err);
}

static int emb_table_get(void *ctx, const char *name, struct kv_table **out, struct st_error *err)
{
	return kv_table_get(ctx, name, out, err);
}

static int emb_table_list(void *ctx, struct kv_table ***out, size_t *n, struct st_error *err)
{
	return kv_table_list(ctx, out, n, err);
}

static int emb_table_alter(void *ctx, const char *name, const struct kv_alter *a,
			   struct st_error *err)
{
	return kv_table_alter(ctx, name, a, err);
}

static int emb_table_drop(void *ctx, const char *name, struct st_error *err)
{
	return kv_table_drop(ctx, name, err);
}

static int emb_put(void *ctx, const char *table, const struct kv_cell *cells, size_t n,
		   struct st_error *err)
{
	return kv_put(ctx, table, cells, n, err);
}

static int emb_del(void *ctx, const char *table, const char *entity, size_t elen,
		   const char *const *features, size_t nf, int64_t ts, struct st_error *err)
{
	return kv_delete(ctx, table, entity, elen, features, nf, ts, err);
}

static int emb_get(void *ctx, const char *table, const char *const *entities,
		   const size_t *elens, size_t ne, const char *const *features, size_t nf,
		   const struct kv_read_opts *o, struct kv_result *out, struct st_error *err)
{
	return kv_multiget(ctx, table, entities, elens, ne, features, nf, o, out, err);
}

static int emb_history(void *ctx, const char *table, const char *entity, size_t elen,
		       const char *feature, int64_t from, int64_t to, size_t limit,
		       int64_t known_at, struct kv_version **out, size_t *n, struct st_error *err)
{
	return kv_history(ctx, table, entity, elen, feature, from, to, limit, known_at, out, n,
			  err);
}

/* struct cli_join is the store's kv_join here. */
static int emb_join_open(void *ctx, const char *table, const char *const *features, size_t nf,
			 int64_t known_at, size_t chunk_rows, int skip_before_horizon,
			 struct cli_join **out, struct st_error *err)
{
	int rc = kv_join_open(ctx, table, features, nf, known_at, chunk_rows,
			      (struct kv_join **)out, err);
	if (!rc && skip_before_horizon)
		kv_join_set_horizon_policy((struct kv_join *)*out, KV_JOIN_SKIP_BEFORE_HORIZON);
	return rc;
}

static int emb_join_push(struct cli_join *j, const char *e, size_t elen, int64_t ts,
			 struct st_error *err)
{
	return kv_join_push((struct kv_join *)j, e, elen, ts, err);
}

static int emb_join_run(struct cli_join *j, struct st_error *err)
{
	return kv_join_run((struct kv_join *)j, err);
}

static size_t emb_join_rows(const struct cli_join *j)
{
	return kv_join_rows((const struct kv_join *)j);
}

static const struct kv_result *emb_join_result(const struct cli_join *j, size_t i)
{
	return kv_join_result((const struct kv_join *)j, i);
}

static void emb_join_reset(struct cli_join *j)
{
	kv_join_reset((struct kv_join *)j);
}

static void emb_join_free(struct cli_join *j)
{
	kv_join_free((struct kv_join *)j);
}

static int emb_preload_submit(void *ctx, const struct kv_preload_req *req, uint64_t *id,
			      struct st_error *err)
{
	return kv_preload_submit(ctx, req, id, err);
}

static int emb_job_get(void *ctx, uint64_t id, struct kv_job_info *out, struct st_error *err)
{
	return kv_job_get(ctx, id, out, err);
}

static int emb_job_list(void *ctx, struct kv_job_info **out, size_t *n, struct st_error *err)
{
	return kv_job_list(ctx, out, n, err);
}

static int emb_job_cancel(void *ctx, uint64_t id, struct st_error *err)
{
	return kv_job_cancel(ctx, id, err);
}

static int emb_jobs_run_pending(void *ctx, struct st_error *err)
{
	return kv_jobs_run_pending(ctx, err);
}

int cli_embedded_open(const char *dir, int run_jobs, struct cli_backend *out,
		      struct st_error *err)
{
	struct kv_options o;
	kv_options_init(&o);
	o.run_jobs = run_jobs;
	o.sync = KV_SYNC_ALWAYS; /* one-shot commands: acknowledged means on disk */
	struct kv_db *db;
	int rc = kv_open(dir, &o, &db, err);
	if (rc)
		return rc;
	*out = (struct cli_backend){
		.ctx = db,
		.close = emb_close,
		.table_create = emb_table_create,
		.table_get = emb_table_get,
		.table_list = emb_table_list,
		.table_alter = emb_table_alter,
		.table_drop = emb_table_drop,
		.put = emb_put,
		.del = emb_del,
		.get = emb_get,
		.history = emb_history,
		.join_open = emb_join_open,
		.join_push = emb_join_push,
		.join_run = emb_join_run,
		.join_rows = emb_join_rows,
		.join_result = emb_join_result,
		.join_reset = emb_join_reset,
		.join_free = emb_join_free,
		.preload_submit = emb_preload_submit,
		.job_get = emb_job_get,
		.job_list = emb_job_list,
		.job_cancel = emb_job_cancel,
		.jobs_run_pending = emb_jobs_run_pending,
	};
	return 0;
}
