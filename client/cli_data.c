/* `strata put|delete|get|history`: single-entity writes and reads. */
#include "client/cli.h"
#include "store/kv_value.h"

#include <stdlib.h>
#include <string.h>

int cli_cmd_put(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	const char *ts_s = "now";
	char *pos[3] = {0};
	int npos = 0, rc = 0;
	struct kv_cell *cells = calloc((size_t)argc, sizeof(*cells));
	size_t ncells = 0;
	struct kv_table *t = NULL;
	if (!cells)
		return 1;
	/* positional: TABLE ENTITY, then FEATURE=VALUE... */
	char **assign = calloc((size_t)argc, sizeof(*assign));
	size_t nassign = 0;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "--ts", &ts_s);
		if (r < 0) {
			rc = 2;
			goto out;
		}
		if (r)
			continue;
		if (npos < 2)
			pos[npos++] = argv[i];
		else if (strchr(argv[i], '='))
			assign[nassign++] = argv[i];
		else {
			rc = cli_usage("put wants FEATURE=VALUE, got '%s'", argv[i]);
			goto out;
		}
	}
	if (npos < 2 || nassign == 0) {
		rc = cli_usage("usage: put TABLE ENTITY FEATURE=VALUE... [--ts TS]");
		goto out;
	}
	int64_t ts;
	if ((rc = cli_ts(c, "--ts", ts_s, &ts)))
		goto out;
	if (c->be.table_get(c->be.ctx, pos[0], &t, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	for (size_t k = 0; k < nassign; k++) {
		char *eq = strchr(assign[k], '=');
		*eq = '\0';
		const struct kv_feature_def *f = kv_table_feature(t, assign[k]);
		if (!f) {
			fprintf(stderr, "strata: table '%s' has no feature '%s'\n", t->name, assign[k]);
			rc = 1;
			goto out;
		}
		struct kv_cell *cell = &cells[ncells];
		if (cli_value_arg(eq + 1, f, &cell->value, &err)) {
			rc = cli_fail(&err);
			goto out;
		}
		ncells++;
		cell->entity = pos[1];
		cell->entity_len = strlen(pos[1]);
		cell->feature = f->name;
		cell->ts = ts;
	}
	if (c->be.put(c->be.ctx, pos[0], cells, ncells, &err))
		rc = cli_fail(&err);
	else
		printf("ok: %zu value%s written\n", ncells, ncells == 1 ? "" : "s");
out:
	for (size_t k = 0; k < ncells; k++)
		kv_value_release(&cells[k].value);
	free(cells);
	free(assign);
	kv_table_free(t);
	return rc;
}

int cli_cmd_delete(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	const char *ts_s = "now"; /* like put */
	const char **pos = calloc((size_t)argc, sizeof(*pos));
	int npos = 0, rc = 0;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "--ts", &ts_s);
		if (r < 0) {
			rc = 2;
			goto out;
		}
		if (!r && argv[i][0] == '-' && argv[i][1] == '-') {
			rc = cli_usage("unknown option '%s'", argv[i]);
			goto out;
		}
		if (!r)
			pos[npos++] = argv[i];
	}
	if (npos < 2) {
		rc = cli_usage("usage: delete TABLE ENTITY [FEATURE...] [--ts TS]");
		goto out;
	}
	int64_t ts;
	if ((rc = cli_ts(c, "--ts", ts_s, &ts)))
		goto out;
	if (c->be.del(c->be.ctx, pos[0], pos[1], strlen(pos[1]), pos + 2, (size_t)(npos - 2), ts,
		      &err))
		rc = cli_fail(&err);
	else
		printf("ok: deleted %s of %s\n",
		       npos == 3 ? pos[2] : npos > 3 ? "the features" : "all features", pos[1]);
out:
	free(pos);
	return rc;
}

/* Common read options: --as-of, --known-at, --from, --to, --limit, --json. */
struct read_args {
	const char **pos;
	int npos;
	int64_t as_of, known_at, from, to;
	long long limit;
	int json, with_status;
	int replica_ok;      /* get: --replica-ok */
	long long max_lag_ms; /* get: --max-lag-ms (-1 = not given) */
};

static int parse_read_args(const struct cli *c, int argc, char **argv, struct read_args *a)
{
	a->pos = calloc((size_t)argc, sizeof(*a->pos));
	a->as_of = a->known_at = a->to = ST_TS_MAX;
	a->from = ST_TS_MIN;
	a->max_lag_ms = -1;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int r, rc = 0;
		if ((r = cli_opt(argc, argv, &i, "--as-of", &v)) > 0)
			rc = cli_ts(c, "--as-of", v, &a->as_of);
		else if (!r && (r = cli_opt(argc, argv, &i, "--known-at", &v)) > 0)
			rc = cli_ts(c, "--known-at", v, &a->known_at);
		else if (!r && (r = cli_opt(argc, argv, &i, "--from", &v)) > 0)
			rc = cli_ts(c, "--from", v, &a->from);
		else if (!r && (r = cli_opt(argc, argv, &i, "--to", &v)) > 0)
			rc = cli_ts(c, "--to", v, &a->to);
		else if (!r && (r = cli_opt(argc, argv, &i, "--limit", &v)) > 0) {
			char *end;
			a->limit = strtoll(v, &end, 10);
			if (*end || a->limit < 0)
				rc = cli_usage("bad --limit '%s'", v);
		} else if (!r && (r = cli_opt(argc, argv, &i, "--max-lag-ms", &v)) > 0) {
			char *end;
			a->max_lag_ms = strtoll(v, &end, 10);
			if (*end || !*v || a->max_lag_ms < 0 || a->max_lag_ms > UINT32_MAX)
				rc = cli_usage("bad --max-lag-ms '%s' (milliseconds, 0 or more)", v);
		} else if (!r && !strcmp(argv[i], "--replica-ok"))
			a->replica_ok = 1;
		else if (!r && !strcmp(argv[i], "--json"))
			a->json = 1;
		else if (!r && !strcmp(argv[i], "--with-status"))
			a->with_status = 1;
		else if (!r && argv[i][0] == '-' && argv[i][1] == '-')
			rc = cli_usage("unknown option '%s'", argv[i]);
		else if (!r)
			a->pos[a->npos++] = argv[i];
		if (r < 0)
			return 2;
		if (rc)
			return rc;
	}
	return 0;
}

/* {"status":"present","value":V,"ts":"..."}: ts for present and stale values. */
static void result_status_json(FILE *f, const struct kv_result *r)
{
	char tb[ST_TS_BUFLEN];
	fprintf(f, "{\"status\":\"%s\"", kv_status_name(r->status));
	if (r->found) {
		fputs(",\"value\":", f);
		cli_value_json(f, &r->value);
	}
	if (r->status == KV_PRESENT || r->status == KV_STALE)
		fprintf(f, ",\"ts\":\"%s\"", st_ts_format(r->ts, tb));
	fputc('}', f);
}

int cli_cmd_get(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	struct read_args a = {0};
	struct kv_table *t = NULL;
	const char **feats = NULL;
	struct kv_result *res = NULL;
	size_t nf = 0;
	int rc = parse_read_args(c, argc, argv, &a);
	if (rc)
		goto out;
	if (a.npos < 2) {
		rc = cli_usage("usage: get TABLE ENTITY [FEATURE...] [--as-of TS] [--known-at TS] "
			       "[--replica-ok [--max-lag-ms N]] [--json [--with-status]]");
		goto out;
	}
	if (a.max_lag_ms >= 0 && !a.replica_ok) {
		rc = cli_usage("--max-lag-ms bounds replica reads: it needs --replica-ok");
		goto out;
	}
	if (a.replica_ok && !c->be.read_pref) {
		rc = cli_usage("--replica-ok reads from a cluster's replicas: it needs --addr");
		goto out;
	}
	if (a.replica_ok)
		c->be.read_pref(c->be.ctx, 1, a.max_lag_ms > 0 ? (uint32_t)a.max_lag_ms : 0);
	if (a.npos > 2) {
		feats = a.pos + 2;
		nf = (size_t)(a.npos - 2);
	} else {
		/* no features named: all of the table's */
		if (c->be.table_get(c->be.ctx, a.pos[0], &t, &err)) {
			rc = cli_fail(&err);
			goto out;
		}
		nf = t->nfeatures;
		feats = calloc(nf, sizeof(*feats));
		for (size_t i = 0; i < nf; i++)
			feats[i] = t->features[i].name;
	}
	res = calloc(nf, sizeof(*res));
	struct kv_read_opts o = {a.as_of, a.known_at, 0};
	const char *ent = a.pos[1];
	size_t elen = strlen(ent);
	if (c->be.get(c->be.ctx, a.pos[0], &ent, &elen, 1, feats, nf, &o, res, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	if (a.json) {
		putchar('{');
		for (size_t i = 0; i < nf; i++) {
			if (i)
				putchar(',');
			cli_json_string(stdout, feats[i], strlen(feats[i]));
			putchar(':');
			if (a.with_status)
				result_status_json(stdout, &res[i]);
			else
				cli_value_json(stdout, &res[i].value);
		}
		puts("}");
	} else {
		for (size_t i = 0; i < nf; i++) {
			char tb[ST_TS_BUFLEN];
			printf("%s\t", feats[i]);
			if (res[i].found) {
				cli_value_print(stdout, &res[i].value);
				printf("\t%s\n", st_ts_format(res[i].ts, tb));
			} else if (res[i].status == KV_STALE) {
				printf("null\t%s (stale: older than the ttl)\n", st_ts_format(res[i].ts, tb));
			} else {
				printf("null\n");
			}
		}
	}
	kv_result_release(res, nf);
out:
	free(res);
	if (t)
		free(feats);
	kv_table_free(t);
	free(a.pos);
	return rc;
}

int cli_cmd_history(struct cli *c, int argc, char **argv)
{
	struct st_error err = {0};
	struct read_args a = {0};
	int rc = parse_read_args(c, argc, argv, &a);
	if (rc)
		goto out;
	if (a.npos != 3) {
		rc = cli_usage("usage: history TABLE ENTITY FEATURE [--from TS] [--to TS] [--limit N]");
		goto out;
	}
	if (a.replica_ok || a.max_lag_ms >= 0) {
		rc = cli_usage("history reads the primary: --replica-ok and --max-lag-ms are for get");
		goto out;
	}
	struct kv_version *v;
	size_t n;
	if (c->be.history(c->be.ctx, a.pos[0], a.pos[1], strlen(a.pos[1]), a.pos[2], a.from, a.to,
			  (size_t)a.limit, a.known_at, &v, &n, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	char tb[ST_TS_BUFLEN], ib[ST_TS_BUFLEN];
	if (a.json)
		putchar('[');
	for (size_t i = 0; i < n; i++) {
		st_ts_format(v[i].r.ts, tb);
		st_ts_format(v[i].r.ingest_us, ib);
		if (a.json) {
			printf("%s{\"ts\":\"%s\",\"value\":", i ? "," : "", tb);
			cli_value_json(stdout, &v[i].r.value);
			printf(",\"deleted\":%s,\"ingested\":\"%s\"}", v[i].tombstone ? "true" : "false",
			       ib);
			continue;
		}
		printf("%s\t", tb);
		if (v[i].tombstone)
			printf("<deleted>\n");
		else {
			cli_value_print(stdout, &v[i].r.value);
			putchar('\n');
		}
	}
	if (a.json)
		puts("]");
	kv_history_free(v, n);
out:
	free(a.pos);
	return rc;
}

int cli_cmd_cluster(struct cli *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return cli_usage("usage: cluster    (the layout the client routes with, as JSON)");
	if (!c->be.cluster)
		return cli_usage("cluster asks a server for its layout: it needs --addr");
	struct st_error err = {0};
	char *json;
	if (c->be.cluster(c->be.ctx, &json, &err))
		return cli_fail(&err);
	puts(json);
	free(json);
	return 0;
}
