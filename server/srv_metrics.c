/* Request counters and latency histograms per operation (lock-free, updated by any thread). */
#include "server/srv.h"

#include <stdlib.h>

/* Upper bounds of the latency buckets in microseconds; the last is +Inf. */
const int64_t srv_bucket_le_us[SRV_NBUCKETS] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	1000000, 5000000, INT64_MAX,
};

int srv_metrics_init(struct srv_metrics *m)
{
	m->ops = calloc((size_t)(srv_nops + srv_resp_ncmds), sizeof(*m->ops));
	if (!m->ops)
		return ST_ENOMEM;
	m->nops = srv_nops + srv_resp_ncmds;
	return 0;
}

void srv_metrics_release(struct srv_metrics *m)
{
	free(m->ops);
	m->ops = NULL;
	m->nops = 0;
}

const char *srv_op_name(int op)
{
	if (op < 0)
		return NULL;
	if (op >= srv_nops)
		return srv_resp_cmd_metric(op - srv_nops);
	return srv_ops[op].name;
}

void srv_metrics_observe(struct srv_metrics *m, int op, int64_t us, int failed)
{
	if (op < 0 || op >= m->nops)
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
