/* Request counters and latency histograms per operation (lock-free, updated by any thread). */
#include "server/srv.h"

/* Upper bounds of the latency buckets in microseconds; the last is +Inf. */
const int64_t srv_bucket_le_us[SRV_NBUCKETS] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	1000000, 5000000, INT64_MAX,
};

static const char *const srv_op_names[SRV_NOPS] = {
	[0] = "invalid",
	[STRATA__REQUEST__OP_AUTH] = "auth",
	[STRATA__REQUEST__OP_PING] = "ping",
	[STRATA__REQUEST__OP_STATUS] = "status",
	[STRATA__REQUEST__OP_TABLE_CREATE] = "table_create",
	[STRATA__REQUEST__OP_TABLE_GET] = "table_get",
	[STRATA__REQUEST__OP_TABLE_LIST] = "table_list",
	[STRATA__REQUEST__OP_TABLE_ALTER] = "table_alter",
	[STRATA__REQUEST__OP_TABLE_DROP] = "table_drop",
	[STRATA__REQUEST__OP_PUT] = "put",
	[STRATA__REQUEST__OP_DEL] = "delete",
	[STRATA__REQUEST__OP_GET] = "get",
	[STRATA__REQUEST__OP_HISTORY] = "history",
	[STRATA__REQUEST__OP_JOIN_OPEN] = "join_open",
	[STRATA__REQUEST__OP_JOIN_PUSH] = "join_push",
	[STRATA__REQUEST__OP_JOIN_CLOSE] = "join_close",
	[STRATA__REQUEST__OP_PRELOAD_SUBMIT] = "preload_submit",
	[STRATA__REQUEST__OP_JOB_GET] = "job_get",
	[STRATA__REQUEST__OP_JOB_LIST] = "job_list",
	[STRATA__REQUEST__OP_JOB_CANCEL] = "job_cancel",
};

const char *srv_op_name(int op)
{
	if (op < 0 || op >= SRV_NOPS || !srv_op_names[op])
		return NULL;
	return srv_op_names[op];
}

void srv_metrics_observe(struct srv_metrics *m, int op, int64_t us, int failed)
{
	if (op < 0 || op >= SRV_NOPS)
		op = 0;
	struct srv_op_stats *o = &m->ops[op];
	if (us < 0)
		us = 0;
	int b = 0;
	while (b < SRV_NBUCKETS - 1 && us > srv_bucket_le_us[b])
		b++;
	atomic_fetch_add_explicit(&o->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->sum_us, (uint64_t)us, memory_order_relaxed);
	atomic_fetch_add_explicit(&o->buckets[b], 1, memory_order_relaxed);
	if (failed)
		atomic_fetch_add_explicit(&o->errors, 1, memory_order_relaxed);
}
