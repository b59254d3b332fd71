/* `strata apply` and `strata export`: tables declared in a YAML or JSON file kept in git.
 * apply compares the file with the store, prints the plan, refuses changes that would lose
 * data unless --force, then executes it; export writes the store's tables in the same format.
 *
 * File format (YAML shown; JSON is the same document):
 *   tables:
 *     - name: user_profile
 *       entity_column: user_id      # default "entity"
 *       ttl: 365d                   # durations: 30d 12h 15m 90s, 0 = none
 *       retention: 730d
 *       max_versions: 100           # 0 = unlimited
 *       features:
 *         - {name: age, type: i64}
 *         - {name: ctr, type: f64, ttl: 7d}
 * YAML goes through libyaml's document loader into the same jansson tree as JSON, so one
 * validator reads both. */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- loading: YAML or JSON into a json_t ---- */

static json_t *yaml_node_json(yaml_document_t *d, yaml_node_t *n, int depth)
{
	if (!n || depth > 32)
		return NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		const char *s = (const char *)n->data.scalar.value;
		size_t len = n->data.scalar.length;
		if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len) {
			char *end;
			long long v = strtoll(s, &end, 10);
			if ((size_t)(end - s) == len)
				return json_integer(v);
		}
		return json_stringn(s, len);
	}
	case YAML_SEQUENCE_NODE: {
		json_t *a = json_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++) {
			json_t *v = yaml_node_json(d, yaml_document_get_node(d, *it), depth + 1);
			if (!v) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
		     p++) {
			yaml_node_t *k = yaml_document_get_node(d, p->key);
			json_t *v = yaml_node_json(d, yaml_document_get_node(d, p->value), depth + 1);
			if (!k || k->type != YAML_SCALAR_NODE || !v) {
				json_decref(v);
				json_decref(o);
				return NULL;
			}
			json_object_set_new(o, (const char *)k->data.scalar.value, v);
		}
		return o;
	}
	default:
		return NULL;
	}
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

static json_t *load_doc(const char *path, struct st_error *err)
{
	char *buf;
	size_t len;
	if (cli_read_file(path, &buf, &len)) {
		st_error_set(err, ST_EINVAL, "cannot read %s", path);
		return NULL;
	}
	json_t *doc = NULL;
	if (has_suffix(path, ".json")) {
		json_error_t je;
		doc = json_loadb(buf, len, 0, &je);
		if (!doc)
			st_error_set(err, ST_EINVAL, "%s:%d: %s", path, je.line, je.text);
	} else {
		yaml_parser_t p;
		yaml_document_t d;
		yaml_parser_initialize(&p);
		yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
		if (!yaml_parser_load(&p, &d)) {
			st_error_set(err, ST_EINVAL, "%s:%zu: %s", path, p.problem_mark.line + 1,
				     p.problem ? p.problem : "YAML syntax error");
		} else {
			yaml_node_t *root = yaml_document_get_root_node(&d);
			doc = root ? yaml_node_json(&d, root, 0) : NULL;
			if (!doc)
				st_error_set(err, ST_EINVAL, "%s: %s", path,
					     root ? "unsupported YAML (aliases or a non-string key)"
						  : "empty document");
			yaml_document_delete(&d);
		}
		yaml_parser_delete(&p);
	}
	free(buf);
	return doc;
}

/* ---- the desired tables ---- */

/* A duration field: "30d" or an integer number of seconds; absent: *out unchanged. */
static int dur_field(json_t *o, const char *key, const char *where, int64_t *out,
		     struct st_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = json_integer_value(v) * 1000000;
		return 0;
	}
	if (json_is_string(v) && !st_dur_parse(json_string_value(v), out))
		return 0;
	return st_error_set(err, ST_EINVAL, "%s: bad %s (a duration like 30d, 12h, 0)", where, key);
}

static int check_keys(json_t *o, const char *const *keys, const char *where,
		      struct st_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		int ok = 0;
		for (size_t i = 0; keys[i] && !ok; i++)
			ok = !strcmp(k, keys[i]);
		if (!ok)
			return st_error_set(err, ST_EINVAL, "%s: unknown key '%s'", where, k);
	}
	return 0;
}

static int parse_feature_obj(json_t *o, const char *tname, struct kv_feature_def *f,
			     struct st_error *err)
{
	static const char *const keys[] = {"name", "type", "ttl", NULL};
	char where[160];
	memset(f, 0, sizeof(*f));
	json_t *nm = json_object_get(o, "name"), *ty = json_object_get(o, "type");
	if (!json_is_object(o) || !json_is_string(nm) || !json_is_string(ty))
		return st_error_set(err, ST_EINVAL, "table %s: each feature needs a name and a type",
				    tname);
	snprintf(where, sizeof(where), "table %s, feature %s", tname, json_string_value(nm));
	if (check_keys(o, keys, where, err))
		return ST_EINVAL;
	if (strlen(json_string_value(nm)) >= sizeof(f->name))
		return st_error_set(err, ST_EINVAL, "%s: name too long", where);
	snprintf(f->name, sizeof(f->name), "%s", json_string_value(nm));
	if (kv_type_parse(json_string_value(ty), &f->type, &f->dim))
		return st_error_set(err, ST_EINVAL, "%s: unknown type '%s' (i64 f64 f32 str bytes "
				    "f32[N] i64[])", where, json_string_value(ty));
	if (json_object_get(o, "ttl")) {
		if (dur_field(o, "ttl", where, &f->ttl_us, err))
			return ST_EINVAL;
		if (f->ttl_us == 0)
			f->ttl_us = KV_TTL_NONE; /* as `NAME:TYPE:ttl=0` */
	}
	return 0;
}

static int parse_table_obj(json_t *o, struct kv_table **out, struct st_error *err)
{
	static const char *const keys[] = {"name", "entity_column", "ttl", "retention",
					   "max_versions", "features", NULL};
	json_t *nm = json_object_get(o, "name"), *fs = json_object_get(o, "features");
	if (!json_is_object(o) || !json_is_string(nm))
		return st_error_set(err, ST_EINVAL, "every table needs a name");
	const char *name = json_string_value(nm);
	char where[100];
	snprintf(where, sizeof(where), "table %s", name);
	if (check_keys(o, keys, where, err))
		return ST_EINVAL;
	if (!json_is_array(fs) || json_array_size(fs) == 0)
		return st_error_set(err, ST_EINVAL, "%s: needs a list of features", where);
	struct kv_table *t = calloc(1, sizeof(*t));
	if (!t || !(t->features = calloc(json_array_size(fs), sizeof(*t->features)))) {
		free(t);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	*out = t;
	json_t *ec = json_object_get(o, "entity_column"), *mv = json_object_get(o, "max_versions");
	if (strlen(name) >= sizeof(t->name) || (ec && (!json_is_string(ec) ||
						       strlen(json_string_value(ec)) >=
							       sizeof(t->entity_column))))
		return st_error_set(err, ST_EINVAL, "%s: bad name or entity_column", where);
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->entity_column, sizeof(t->entity_column), "%s",
		 ec ? json_string_value(ec) : "entity");
	if (mv && (!json_is_integer(mv) || json_integer_value(mv) < 0 ||
		   json_integer_value(mv) > UINT32_MAX))
		return st_error_set(err, ST_EINVAL, "%s: bad max_versions", where);
	t->max_versions = mv ? (uint32_t)json_integer_value(mv) : 0;
	if (dur_field(o, "ttl", where, &t->ttl_us, err) ||
	    dur_field(o, "retention", where, &t->retention_us, err))
		return ST_EINVAL;
	size_t i;
	json_t *f;
	json_array_foreach(fs, i, f) {
		if (parse_feature_obj(f, name, &t->features[i], err))
			return ST_EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(t->features[k].name, t->features[i].name))
				return st_error_set(err, ST_EINVAL, "%s: feature %s twice", where,
						    t->features[i].name);
		t->nfeatures++;
	}
	return 0;
}

struct wanted {
	struct kv_table **t;
	size_t n;
};

static void wanted_free(struct wanted *w)
{
	for (size_t i = 0; i < w->n; i++)
		kv_table_free(w->t[i]);
	free(w->t);
}

static int parse_doc(json_t *doc, struct wanted *w, struct st_error *err)
{
	static const char *const keys[] = {"tables", NULL};
	json_t *ts = json_object_get(doc, "tables");
	if (!json_is_object(doc) || !json_is_array(ts))
		return st_error_set(err, ST_EINVAL, "the file needs a top-level 'tables' list");
	if (check_keys(doc, keys, "top level", err))
		return ST_EINVAL;
	w->t = calloc(json_array_size(ts) + 1, sizeof(*w->t));
	if (!w->t)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	size_t i;
	json_t *o;
	json_array_foreach(ts, i, o) {
		int rc = parse_table_obj(o, &w->t[w->n], err);
		if (w->t[w->n])
			w->n++;
		if (rc)
			return rc;
		for (size_t k = 0; k + 1 < w->n; k++)
			if (!strcmp(w->t[k]->name, w->t[w->n - 1]->name))
				return st_error_set(err, ST_EINVAL, "table %s twice",
						    w->t[k]->name);
	}
	return 0;
}

/* ---- plan and execution ---- */

struct plan {
	struct cli *c;
	int exec, force, prune;
	int changes, refused;
	struct st_error err;
};

static const char *dur(int64_t us, char *buf) { return st_dur_format(us, buf); }

static const char *feature_ttl_text(int64_t ttl_us, char *buf)
{
	if (ttl_us == 0)
		return "table's";
	return ttl_us == KV_TTL_NONE ? "none" : st_dur_format(ttl_us, buf);
}

/* Why `have` can only become `want` by dropping and recreating it (NULL if it need not). */
static const char *recreate_reason(const struct kv_table *want, const struct kv_table *have,
				   char *buf, size_t n)
{
	char a[32], b[32], x[32], y[32];
	if (strcmp(want->entity_column, have->entity_column)) {
		snprintf(buf, n, "entity column %s -> %s", have->entity_column, want->entity_column);
		return buf;
	}
	for (uint32_t i = 0; i < have->nfeatures; i++) {
		const struct kv_feature_def *h = &have->features[i];
		const struct kv_feature_def *f = kv_table_feature(want, h->name);
		if (!f) {
			snprintf(buf, n, "feature %s dropped", h->name);
			return buf;
		}
		if (f->type != h->type || f->dim != h->dim) {
			snprintf(buf, n, "feature %s type %s -> %s", h->name,
				 kv_type_name(h->type, h->dim, a, sizeof(a)),
				 kv_type_name(f->type, f->dim, b, sizeof(b)));
			return buf;
		}
		if (f->ttl_us != h->ttl_us) {
			snprintf(buf, n, "feature %s ttl %s -> %s", h->name,
				 feature_ttl_text(h->ttl_us, x), feature_ttl_text(f->ttl_us, y));
			return buf;
		}
	}
	return NULL;
}

static int plan_create(struct plan *p, const struct kv_table *want, const char *verb)
{
	char tn[32];
	printf("%s table %s (%u feature%s:", verb, want->name, want->nfeatures,
	       CLI_S(want->nfeatures));
	for (uint32_t i = 0; i < want->nfeatures; i++)
		printf(" %s:%s", want->features[i].name,
		       kv_type_name(want->features[i].type, want->features[i].dim, tn, sizeof(tn)));
	printf(")\n");
	p->changes++;
	return p->exec ? p->c->be.table_create(p->c->be.ctx, want, &p->err) : 0;
}

static int plan_alter(struct plan *p, const struct kv_table *want, const struct kv_table *have)
{
	struct kv_alter al = KV_ALTER_NONE;
	struct kv_feature_def *add = calloc(want->nfeatures + 1, sizeof(*add));
	char line[1024] = "", a[32], b[32], tn[32];
	size_t o = 0;
	if (!add)
		return st_error_set(&p->err, ST_ENOMEM, "out of memory");
	if (want->ttl_us != have->ttl_us) {
		al.ttl_us = want->ttl_us;
		o += (size_t)snprintf(line + o, sizeof(line) - o, ", ttl %s -> %s",
				      dur(have->ttl_us, a), dur(want->ttl_us, b));
	}
	if (want->retention_us != have->retention_us && o < sizeof(line)) {
		al.retention_us = want->retention_us;
		o += (size_t)snprintf(line + o, sizeof(line) - o, ", retention %s -> %s",
				      dur(have->retention_us, a), dur(want->retention_us, b));
	}
	if (want->max_versions != have->max_versions && o < sizeof(line)) {
		al.max_versions = want->max_versions;
		o += (size_t)snprintf(line + o, sizeof(line) - o, ", max_versions %u -> %u",
				      have->max_versions, want->max_versions);
	}
	for (uint32_t i = 0; i < want->nfeatures; i++) {
		const struct kv_feature_def *f = &want->features[i];
		if (kv_table_feature(have, f->name))
			continue;
		add[al.nadd++] = *f;
		if (o < sizeof(line))
			o += (size_t)snprintf(line + o, sizeof(line) - o, ", add feature %s:%s",
					      f->name, kv_type_name(f->type, f->dim, tn, sizeof(tn)));
	}
	al.add = add;
	int rc = 0;
	if (o == 0) {
		printf("  unchanged table %s\n", want->name);
	} else {
		printf("~ alter table %s: %s\n", want->name, line + 2);
		p->changes++;
		if (p->exec)
			rc = p->c->be.table_alter(p->c->be.ctx, want->name, &al, &p->err);
	}
	free(add);
	return rc;
}

static int plan_table(struct plan *p, const struct kv_table *want, const struct kv_table *have)
{
	char why[256];
	if (!have)
		return plan_create(p, want, "+ create");
	if (!recreate_reason(want, have, why, sizeof(why)))
		return plan_alter(p, want, have);
	printf("! recreate table %s: %s; this drops every value in it%s\n", want->name, why,
	       p->force ? "" : " (refused without --force)");
	if (!p->force) {
		p->refused++;
		return 0;
	}
	if (p->exec && p->c->be.table_drop(p->c->be.ctx, want->name, &p->err))
		return p->err.code;
	return plan_create(p, want, "  then create");
}

/* One pass over the plan: prints it, and executes it when p->exec. */
static int plan_run(struct plan *p, const struct wanted *w, struct kv_table **have, size_t nh)
{
	for (size_t i = 0; i < w->n; i++) {
		const struct kv_table *h = NULL;
		for (size_t k = 0; k < nh && !h; k++)
			if (!strcmp(have[k]->name, w->t[i]->name))
				h = have[k];
		if (plan_table(p, w->t[i], h))
			return p->err.code ? p->err.code : ST_EIO;
	}
	for (size_t k = 0; k < nh; k++) {
		int listed = 0;
		for (size_t i = 0; i < w->n && !listed; i++)
			listed = !strcmp(have[k]->name, w->t[i]->name);
		if (listed)
			continue;
		if (!p->prune) {
			printf("? table %s is not in the file: left alone (--prune drops it)\n",
			       have[k]->name);
			continue;
		}
		printf("- drop table %s and every value in it\n", have[k]->name);
		p->changes++;
		if (p->exec && p->c->be.table_drop(p->c->be.ctx, have[k]->name, &p->err))
			return p->err.code;
	}
	return 0;
}

int cli_cmd_apply(struct cli *c, int argc, char **argv)
{
	const char *file = NULL;
	struct plan p = {.c = c};
	int dry = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dry-run"))
			dry = 1;
		else if (!strcmp(argv[i], "--prune"))
			p.prune = 1;
		else if (!strcmp(argv[i], "--force"))
			p.force = 1;
		else if (!file && (argv[i][0] != '-' || !strcmp(argv[i], "-")))
			file = argv[i];
		else
			return cli_usage("unexpected argument '%s'", argv[i]);
	}
	if (!file)
		return cli_usage("usage: apply FILE.yaml|FILE.json [--dry-run] [--prune] [--force]");
	struct wanted w = {0};
	struct kv_table **have = NULL;
	size_t nh = 0;
	int rc = 0;
	json_t *doc = load_doc(file, &p.err);
	if (!doc || parse_doc(doc, &w, &p.err) ||
	    c->be.table_list(c->be.ctx, &have, &nh, &p.err)) {
		rc = cli_fail(&p.err);
		goto out;
	}
	printf("plan for %s:\n", file);
	if ((rc = plan_run(&p, &w, have, nh))) {
		rc = cli_fail(&p.err);
		goto out;
	}
	if (p.refused) {
		fflush(stdout);
		fprintf(stderr, "strata: %d change%s would lose data; nothing was changed (review the "
				"plan, then apply --force)\n", p.refused, CLI_S(p.refused));
		rc = 1;
	} else if (p.changes == 0) {
		printf("nothing to change\n");
	} else if (dry) {
		printf("%d change%s planned (--dry-run: nothing was changed)\n", p.changes,
		       CLI_S(p.changes));
	} else {
		p.exec = 1;
		p.changes = 0;
		printf("applying:\n");
		if (plan_run(&p, &w, have, nh)) {
			rc = cli_fail(&p.err);
			goto out;
		}
		printf("applied %d change%s\n", p.changes, CLI_S(p.changes));
	}
out:
	for (size_t k = 0; k < nh; k++)
		kv_table_free(have[k]);
	free(have);
	wanted_free(&w);
	json_decref(doc);
	return rc;
}

/* ---- export ---- */

static json_t *table_doc(const struct kv_table *t)
{
	char a[32], tn[32];
	json_t *fs = json_array();
	for (uint32_t i = 0; i < t->nfeatures; i++) {
		const struct kv_feature_def *f = &t->features[i];
		json_t *o = json_pack("{s:s,s:s}", "name", f->name, "type",
				      kv_type_name(f->type, f->dim, tn, sizeof(tn)));
		if (f->ttl_us)
			json_object_set_new(o, "ttl", json_string(f->ttl_us == KV_TTL_NONE ?
								  "0" : dur(f->ttl_us, a)));
		json_array_append_new(fs, o);
	}
	json_t *o = json_pack("{s:s,s:s}", "name", t->name, "entity_column", t->entity_column);
	json_object_set_new(o, "ttl", json_string(dur(t->ttl_us, a)));
	json_object_set_new(o, "retention", json_string(dur(t->retention_us, a)));
	json_object_set_new(o, "max_versions", json_integer(t->max_versions));
	json_object_set_new(o, "features", fs);
	return o;
}

static void yaml_str(FILE *f, const char *s)
{
	cli_json_string(f, s, strlen(s)); /* a JSON string is a YAML double-quoted scalar */
}

/* The YAML form, written by hand so that features stay one per line and keys in order. */
static void export_yaml(FILE *f, json_t *tables)
{
	size_t i, k;
	json_t *t, *ft;
	fputs("tables:\n", f);
	json_array_foreach(tables, i, t) {
		fputs("  - name: ", f);
		yaml_str(f, json_string_value(json_object_get(t, "name")));
		fputs("\n    entity_column: ", f);
		yaml_str(f, json_string_value(json_object_get(t, "entity_column")));
		fprintf(f, "\n    ttl: %s\n    retention: %s\n    max_versions: %lld\n    features:\n",
			json_string_value(json_object_get(t, "ttl")),
			json_string_value(json_object_get(t, "retention")),
			(long long)json_integer_value(json_object_get(t, "max_versions")));
		json_array_foreach(json_object_get(t, "features"), k, ft) {
			fputs("      - {name: ", f);
			yaml_str(f, json_string_value(json_object_get(ft, "name")));
			fputs(", type: ", f);
			yaml_str(f, json_string_value(json_object_get(ft, "type")));
			if (json_object_get(ft, "ttl"))
				fprintf(f, ", ttl: %s", json_string_value(json_object_get(ft, "ttl")));
			fputs("}\n", f);
		}
	}
}

int cli_cmd_export(struct cli *c, int argc, char **argv)
{
	const char *fmt = "yaml", *out_path = NULL;
	const char **only = calloc((size_t)argc, sizeof(*only));
	int nonly = 0, rc = 0, json = 0;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = cli_opt(argc, argv, &i, "--format", &fmt)) ||
		    (r = cli_opt(argc, argv, &i, "--out", &out_path))) {
			if (r < 0) {
				free(only);
				return 2;
			}
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (argv[i][0] != '-') {
			only[nonly++] = argv[i];
		} else {
			free(only);
			return cli_usage("unexpected argument '%s'", argv[i]);
		}
	}
	if (json || (out_path && has_suffix(out_path, ".json")))
		fmt = "json";
	if (strcmp(fmt, "yaml") && strcmp(fmt, "json")) {
		free(only);
		return cli_usage("--format must be yaml or json");
	}
	struct kv_table **ts = NULL;
	size_t n = 0;
	struct st_error err = {0};
	json_t *arr = json_array();
	FILE *f = NULL;
	if (c->be.table_list(c->be.ctx, &ts, &n, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	for (int k = 0; k < nonly; k++) {
		size_t i = 0;
		while (i < n && strcmp(ts[i]->name, only[k]))
			i++;
		if (i == n) {
			fprintf(stderr, "strata: no table '%s'\n", only[k]);
			rc = 1;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		int keep = nonly == 0;
		for (int k = 0; k < nonly && !keep; k++)
			keep = !strcmp(ts[i]->name, only[k]);
		if (keep)
			json_array_append_new(arr, table_doc(ts[i]));
	}
	f = out_path ? fopen(out_path, "w") : stdout;
	if (!f) {
		fprintf(stderr, "strata: %s: %m\n", out_path);
		rc = 1;
		goto out;
	}
	if (!strcmp(fmt, "json")) {
		json_t *doc = json_pack("{s:O}", "tables", arr);
		json_dumpf(doc, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', f);
		json_decref(doc);
	} else {
		export_yaml(f, arr);
	}
	if (f != stdout && fclose(f)) {
		fprintf(stderr, "strata: %s: write failed\n", out_path);
		rc = 1;
	}
out:
	for (size_t i = 0; i < n; i++)
		kv_table_free(ts[i]);
	free(ts);
	json_decref(arr);
	free(only);
	return rc;
}
