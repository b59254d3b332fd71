/* stratad's replication wiring: --cluster loads the layout (a file, or etcd://), the store is opened with
 * the layout's shard count and the WAL kept for --wal-ttl, then replication/ runs on its own
 * listener and threads. Without --cluster nothing here runs: a single embedded node. */
#include "server/srv.h"

#include <stdlib.h>

#include "common/st_log.h"

/* One stratad per process: the running replication, NULL without --cluster. */
static struct repl *srv_repl;

int srv_repl_prepare(struct srv_config *c, struct kv_options *ko, struct st_error *err)
{
	ko->wal_ttl_seconds = c->repl.wal_ttl_us / 1000000;
	if (!c->repl.cluster_file[0])
		return 0;
	if (!c->repl.node[0])
		return st_error_set(err, ST_EINVAL, "--cluster needs --node NAME");
	struct repl_layout l;
	int rc = repl_cluster_load(&c->repl, &l, err);
	if (rc)
		return rc;
	ko->nshards = l.nshards;
	repl_layout_release(&l);
	return 0;
}

int srv_repl_start(struct srv_config *c, struct kv_db *db, struct st_error *err)
{
	if (!c->repl.cluster_file[0])
		return 0;
	struct repl_layout l;
	int rc = repl_cluster_load(&c->repl, &l, err);
	if (rc)
		return rc;
	rc = repl_start(db, c->data_dir, &c->repl, &l, &srv_repl, err);
	repl_layout_release(&l);
	return rc;
}

void srv_repl_stop(void)
{
	repl_stop(srv_repl);
	srv_repl = NULL;
}

char *srv_repl_metrics(void)
{
	return srv_repl ? repl_metrics_text(srv_repl) : NULL;
}
