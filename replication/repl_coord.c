/* Picks the coordinator named by --cluster (repl_coord.h): an etcd:// URL or a layout file. */
#include "replication/repl_coord.h"

#include <string.h>

int repl_coord_open(const struct repl_options *o, struct repl_coord **out, struct st_error *err)
{
	if (!strncmp(o->cluster_file, "etcd://", 7))
		return repl_coord_etcd_open(o->cluster_file, o, out, err);
	return repl_coord_static_open(o->cluster_file, out, err);
}

void repl_coord_free(struct repl_coord *c)
{
	if (c)
		c->ops->free(c);
}

int repl_cluster_load(const struct repl_options *o, struct repl_layout *out, struct st_error *err)
{
	struct repl_coord *c;
	int rc = repl_coord_open(o, &c, err);
	if (rc)
		return rc;
	rc = c->ops->load_layout(c, out, err);
	repl_coord_free(c);
	return rc;
}
