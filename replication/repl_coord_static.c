/* The static coordinator (--cluster FILE): the INI layout, and leadership that changes only
 * by operator command (strata-admin cluster promote, repl_admin.c). At start a node adopts the
 * reassignments it persisted (cluster-state.json) and any newer one its peers report, so a
 * primary that was down during a promotion comes back as a replica. */
#include "replication/repl_coord.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_log.h"
#include "replication/repl_int.h"

struct coord_static {
	struct repl_coord c;
	char path[4096];
};

static int static_load(struct repl_coord *c, struct repl_layout *out, struct st_error *err)
{
	return repl_layout_load(((struct coord_static *)c)->path, out, err);
}

/* A node that was down during a promotion still thinks it is primary: before serving, ask
 * the other nodes and adopt any newer assignment they report (the fencing side of a manual
 * promotion; an unreachable node is skipped). */
static void adopt_newer_layout(struct repl *r)
{
	for (int i = 0; i < r->layout.nnodes; i++) {
		if (i == r->self)
			continue;
		char *reply = NULL;
		struct st_error err;
		if (repl_admin_call(r->layout.nodes[i].repl_addr, "{\"cmd\":\"status\"}", 1000000,
				    &reply, &err))
			continue;
		json_t *o = json_loads(reply, 0, NULL), *sh;
		free(reply);
		size_t k;
		json_array_foreach(json_object_get(o, "shards"), k, sh) {
			int s = (int)json_integer_value(json_object_get(sh, "shard"));
			uint64_t v = (uint64_t)json_integer_value(json_object_get(sh, "layout_version"));
			int p = repl_layout_find(&r->layout,
						 json_string_value(json_object_get(sh, "primary")) ?: "");
			if (s < 0 || s >= r->layout.nshards || p < 0)
				continue;
			pthread_mutex_lock(&r->mu);
			if (v > r->shards[s].version) {
				st_warn("replication: shard %d: node %s reports layout version %llu "
					"(primary %s), newer than ours: adopting it", s,
					r->layout.nodes[i].name, (unsigned long long)v,
					r->layout.nodes[p].name);
				repl_role_reassign(r, &r->shards[s], p, v);
				repl_role_save(r, &err);
			}
			pthread_mutex_unlock(&r->mu);
		}
		json_decref(o);
	}
}

static int static_start(struct repl_coord *c, struct repl *r, struct st_error *err)
{
	pthread_mutex_lock(&r->mu);
	int rc = repl_role_load(r, err);
	repl_assert_state(r);
	pthread_mutex_unlock(&r->mu);
	if (!rc)
		adopt_newer_layout(r);
	return rc;
}

static void static_stop(struct repl_coord *c)
{
}

static void static_free(struct repl_coord *c)
{
	free(c);
}

static const struct repl_coord_ops static_ops = {
	.name = "static",
	.load_layout = static_load,
	.start = static_start,
	.stop = static_stop,
	.free = static_free,
	.leased = 0,
};

int repl_coord_static_open(const char *path, struct repl_coord **out, struct st_error *err)
{
	struct coord_static *s = calloc(1, sizeof(*s));
	if (!s)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	s->c.ops = &static_ops;
	snprintf(s->path, sizeof(s->path), "%s", path);
	*out = &s->c;
	return 0;
}
