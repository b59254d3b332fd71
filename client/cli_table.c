/* `strata table create|list|show|alter|drop`. */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>

/* Parses "name:type[:ttl=DUR]" into f (ttl=0 or none: no freshness limit for f). */
static int parse_feature(const char *spec, struct kv_feature_def *f)
{
	const char *colon = strchr(spec, ':');
	memset(f, 0, sizeof(*f));
	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(f->name))
		return cli_usage("--feature wants NAME:TYPE[:ttl=DUR], got '%s'", spec);
	memcpy(f->name, spec, (size_t)(colon - spec));
	char type[32];
	const char *opt = strchr(colon + 1, ':');
	size_t tl = opt ? (size_t)(opt - colon - 1) : strlen(colon + 1);
	if (tl >= sizeof(type))
		return cli_usage("unknown type '%s'", colon + 1);
	memcpy(type, colon + 1, tl);
	type[tl] = '\0';
	if (kv_type_parse(type, &f->type, &f->dim))
		return cli_usage("unknown type '%s' (i64 f64 f32 str bytes f32[N] i64[])", type);
	if (opt) {
		if (strncmp(opt + 1, "ttl=", 4) || st_dur_parse(opt + 5, &f->ttl_us))
			return cli_usage("--feature %s: bad option '%s' (ttl=DUR, e.g. ttl=6h)", f->name,
					 opt + 1);
		if (f->ttl_us == 0)
			f->ttl_us = KV_TTL_NONE;
	}
	return 0;
}

static json_t *feature_json(const struct kv_table *t, const struct kv_feature_def *f)
{
	char tn[32];
	json_t *o = json_pack("{s:s,s:s}", "name", f->name, "type",
			      kv_type_name(f->type, f->dim, tn, sizeof(tn)));
	if (f->ttl_us)
		json_object_set_new(o, "ttl_s", json_integer(kv_feature_ttl(t, f) / 1000000));
	return o;
}

static json_t *table_json(const struct kv_table *t)
{
	json_t *feats = json_array();
	for (uint32_t i = 0; i < t->nfeatures; i++)
		json_array_append_new(feats, feature_json(t, &t->features[i]));
	return json_pack("{s:s,s:s,s:I,s:I,s:I,s:o}", "name", t->name, "entity_column",
			 t->entity_column, "ttl_s", (json_int_t)(t->ttl_us / 1000000),
			 "retention_s", (json_int_t)(t->retention_us / 1000000), "max_versions",
			 (json_int_t)t->max_versions, "features", feats);
}

static void table_print(const struct kv_table *t)
{
	char tn[32], dur[32], ret[32];
	printf("table %s\n  entity column: %s\n  ttl (freshness): %s%s\n  retention: %s%s\n"
	       "  max versions: %u%s\n  features:\n",
	       t->name, t->entity_column, st_dur_format(t->ttl_us, dur),
	       t->ttl_us ? "" : " (no limit)", st_dur_format(t->retention_us, ret),
	       t->retention_us ? "" : " (keep forever)", t->max_versions,
	       t->max_versions ? "" : " (unlimited)");
	for (uint32_t i = 0; i < t->nfeatures; i++) {
		const struct kv_feature_def *f = &t->features[i];
		printf("    %-24s %s", f->name, kv_type_name(f->type, f->dim, tn, sizeof(tn)));
		if (f->ttl_us)
			printf("  ttl %s", f->ttl_us == KV_TTL_NONE ? "none" :
					   st_dur_format(f->ttl_us, dur));
		putchar('\n');
	}
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(s ? s : "null");
	free(s);
	json_decref(j);
}

/* Shared option parsing of create and alter. */
struct table_args {
	struct kv_feature_def *feats;
	size_t nfeats;
	int64_t ttl_us, max_versions, retention_us;
	const char *entity_column;
	int json, yes;
};

static int parse_table_args(int argc, char **argv, int start, struct table_args *a)
{
	a->ttl_us = -1;
	a->max_versions = -1;
	a->retention_us = -1;
	for (int i = start; i < argc; i++) {
		const char *v;
		int r;
		if ((r = cli_opt(argc, argv, &i, "--feature", &v)) > 0) {
			struct kv_feature_def *nf = realloc(a->feats, (a->nfeats + 1) * sizeof(*nf));
			if (!nf)
				return 1;
			a->feats = nf;
			if (parse_feature(v, &a->feats[a->nfeats]))
				return 2;
			a->nfeats++;
		} else if (r == 0 && (r = cli_opt(argc, argv, &i, "--ttl", &v)) > 0) {
			if (st_dur_parse(v, &a->ttl_us))
				return cli_usage("bad --ttl '%s' (e.g. 30d, 12h, 0)", v);
		} else if (r == 0 && (r = cli_opt(argc, argv, &i, "--retention", &v)) > 0) {
			if (st_dur_parse(v, &a->retention_us))
				return cli_usage("bad --retention '%s' (e.g. 90d, 0 = forever)", v);
		} else if (r == 0 && (r = cli_opt(argc, argv, &i, "--max-versions", &v)) > 0) {
			char *end;
			long long n = strtoll(v, &end, 10);
			if (*end || n < 0 || n > UINT32_MAX)
				return cli_usage("bad --max-versions '%s'", v);
			a->max_versions = n;
		} else if (r == 0 && (r = cli_opt(argc, argv, &i, "--entity-column", &v)) > 0) {
			a->entity_column = v;
		} else if (r == 0 && !strcmp(argv[i], "--json")) {
			a->json = 1;
		} else if (r == 0 && !strcmp(argv[i], "--yes")) {
			a->yes = 1;
		} else if (r == 0) {
			return cli_usage("unexpected argument '%s'", argv[i]);
		}
		if (r < 0)
			return 2;
	}
	return 0;
}

static int table_create(struct cli *c, const char *name, struct table_args *a)
{
	struct kv_table t = {0};
	struct st_error err = {0};
	if (strlen(name) >= sizeof(t.name))
		return cli_usage("table name too long");
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.entity_column, sizeof(t.entity_column), "%s",
		 a->entity_column ? a->entity_column : "entity");
	t.ttl_us = a->ttl_us < 0 ? 0 : a->ttl_us;
	t.max_versions = a->max_versions < 0 ? 0 : (uint32_t)a->max_versions;
	t.retention_us = a->retention_us < 0 ? 0 : a->retention_us;
	t.nfeatures = (uint32_t)a->nfeats;
	t.features = a->feats;
	if (c->be.table_create(c->be.ctx, &t, &err))
		return cli_fail(&err);
	printf("created table %s with %zu feature%s\n", name, a->nfeats, a->nfeats == 1 ? "" : "s");
	return 0;
}

int cli_cmd_table(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	if (argc < 2)
		return cli_usage("table needs a subcommand: create, list, show, alter, drop");
	const char *sub = argv[1];
	struct table_args a = {0};
	int rc = 0;
	if (!strcmp(sub, "list")) {
		if ((rc = parse_table_args(argc, argv, 2, &a)))
			goto out;
		struct kv_table **ts;
		size_t n;
		if (c->be.table_list(c->be.ctx, &ts, &n, &err)) {
			rc = cli_fail(&err);
			goto out;
		}
		json_t *arr = a.json ? json_array() : NULL;
		for (size_t i = 0; i < n; i++) {
			char dur[32], ret[32];
			if (arr)
				json_array_append_new(arr, table_json(ts[i]));
			else
				printf("%-32s %3u feature%-2s ttl %-8s retention %-8s max_versions %u\n",
				       ts[i]->name, ts[i]->nfeatures, CLI_S(ts[i]->nfeatures),
				       st_dur_format(ts[i]->ttl_us, dur),
				       st_dur_format(ts[i]->retention_us, ret), ts[i]->max_versions);
			kv_table_free(ts[i]);
		}
		free(ts);
		if (arr)
			print_json(arr);
		else if (n == 0)
			printf("no tables (create one: strata table create NAME --feature NAME:TYPE)\n");
		goto out;
	}
	if (argc < 3)
		return cli_usage("table %s needs a table name", sub);
	const char *name = argv[2];
	if ((rc = parse_table_args(argc, argv, 3, &a)))
		goto out;
	if (!strcmp(sub, "create")) {
		rc = table_create(c, name, &a);
	} else if (!strcmp(sub, "show")) {
		struct kv_table *t;
		if (c->be.table_get(c->be.ctx, name, &t, &err)) {
			rc = cli_fail(&err);
			goto out;
		}
		if (a.json)
			print_json(table_json(t));
		else
			table_print(t);
		kv_table_free(t);
	} else if (!strcmp(sub, "alter")) {
		if (a.entity_column) {
			rc = cli_usage("the entity column cannot be altered");
			goto out;
		}
		struct kv_alter al = KV_ALTER_NONE;
		al.ttl_us = a.ttl_us;
		al.max_versions = a.max_versions;
		al.retention_us = a.retention_us;
		al.nadd = (uint32_t)a.nfeats;
		al.add = a.feats;
		if (c->be.table_alter(c->be.ctx, name, &al, &err))
			rc = cli_fail(&err);
		else
			printf("altered table %s\n", name);
	} else if (!strcmp(sub, "drop")) {
		char q[256];
		snprintf(q, sizeof(q), "drop table %s and every value in it?", name);
		if (!a.yes && !cli_confirm(q)) {
			fprintf(stderr, "strata: table %s kept\n", name);
			rc = 1;
			goto out;
		}
		if (c->be.table_drop(c->be.ctx, name, &err))
			rc = cli_fail(&err);
		else
			printf("dropped table %s\n", name);
	} else {
		rc = cli_usage("unknown table subcommand '%s'", sub);
	}
out:
	free(a.feats);
	return rc;
}
