/* strata-admin backup | restore | verify | compact | stats | dump: operations on a store data
 * directory, offline (stratad stopped; a running server holds the directory's lock and the
 * commands say so) or, for backup, stats and verify, online through --addr (the server does
 * the work on the store it has open; the same store reports, kv_stats_json/kv_verify_json).
 * Long operations show progress on a terminal and can print JSON. */
#include "common/st_grow.h"
#include "tools/admin.h"
#include "common/st_csv.h"
#include "common/st_progress.h"
#include "store/kv.h"
#include "store/kv_value.h"
#include "client/strata.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct store_args {
	const char *dir;   /* --data-dir, default ./data */
	const char *addr;  /* --addr: a running stratad does the work */
	const char *token_file;
	const char *pos[2];
	int npos;
	int json, force, all_versions;
	const char *out;
};

static int parse_args(int argc, char **argv, struct store_args *a)
{
	memset(a, 0, sizeof(*a));
	a->dir = "./data";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--data-dir") && i + 1 < argc)
			a->dir = argv[++i];
		else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
			a->addr = argv[++i];
		else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
			a->token_file = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			a->out = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			a->json = 1;
		else if (!strcmp(argv[i], "--force"))
			a->force = 1;
		else if (!strcmp(argv[i], "--all-versions"))
			a->all_versions = 1;
		else if (argv[i][0] != '-' && a->npos < 2)
			a->pos[a->npos++] = argv[i];
		else {
			fprintf(stderr, "strata-admin %s: unexpected argument '%s'\n", argv[0], argv[i]);
			return 2;
		}
	}
	return 0;
}

static struct kv_db *open_store(const char *dir, int create)
{
	struct kv_options o;
	kv_options_init(&o);
	o.create_if_missing = create;
	o.sync = KV_SYNC_ALWAYS;
	struct kv_db *db;
	struct st_error err = {0};
	struct stat st;
	if (!create && stat(dir, &st)) {
		fprintf(stderr, "strata-admin: %s: %s\n", dir, strerror(errno));
		return NULL;
	}
	if (kv_open(dir, &o, &db, &err)) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		return NULL;
	}
	return db;
}

/* Parses the arguments and opens the store (it must exist). Returns NULL with *rc set to
 * the exit code (2 usage, 1 error) when either fails. */
static struct kv_db *begin(int argc, char **argv, struct store_args *a, int *rc)
{
	struct kv_db *db = NULL;
	*rc = parse_args(argc, argv, a);
	if (!*rc && !(db = open_store(a->dir, 0)))
		*rc = 1;
	return db;
}

/* ---- online: the server runs the action ---- */

/* Asks the stratad at a->addr to run `action`; returns its JSON report or NULL after
 * printing the error. */
static json_t *remote_report(const struct store_args *a, const char *action, const char *path)
{
	struct strata_connect_opts o;
	strata_connect_opts_init(&o);
	o.io_timeout_ms = 0; /* a verify or backup takes as long as it takes */
	char token[512] = "";
	if (a->token_file) {
		FILE *f = fopen(a->token_file, "r");
		if (!f || !fgets(token, sizeof(token), f)) {
			fprintf(stderr, "strata-admin: token file %s: %s\n", a->token_file,
				f ? "empty" : strerror(errno));
			if (f)
				fclose(f);
			return NULL;
		}
		fclose(f);
		token[strcspn(token, "\r\n")] = 0;
		o.token = token;
	}
	strata *c;
	struct strata_error err = {0};
	char *s = NULL;
	if (strata_connect(a->addr, &o, &c, &err) == 0) {
		strata_admin(c, action, path, &s, &err);
		strata_close(c);
	}
	if (!s) {
		fprintf(stderr, "strata-admin: %s --addr %s: %s\n", action, a->addr,
			err.msg[0] ? err.msg : strata_strerror(err.code));
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);
	free(s);
	if (!j)
		fprintf(stderr, "strata-admin: %s: bad answer from %s: %s\n", action, a->addr, je.text);
	return j;
}

static void print_json_doc(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(s ? s : "null");
	free(s);
}

static void verify_progress(void *arg, int64_t versions)
{
	st_progress_update(arg, versions, 0, "versions", NULL, 0);
}

/* The stats or verify report of a->addr's server, or of the data dir opened here. */
static json_t *report(const struct store_args *a, const char *action, struct st_progress *p)
{
	if (a->addr)
		return remote_report(a, action, NULL);
	struct kv_db *db = open_store(a->dir, 0);
	if (!db)
		return NULL;
	struct st_error err = {0};
	json_t *o = !strcmp(action, "stats") ? kv_stats_json(db, &err)
					     : kv_verify_json(db, verify_progress, p, &err);
	kv_close(db);
	if (!o)
		fprintf(stderr, "strata-admin: %s\n", err.msg);
	return o;
}

/* ---- stats ---- */

int admin_stats(int argc, char **argv)
{
	struct store_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	json_t *o = report(&a, "stats", NULL);
	if (!o)
		return 1;
	json_object_set_new(o, a.addr ? "addr" : "data_dir", json_string(a.addr ? a.addr : a.dir));
	if (a.json) {
		print_json_doc(o);
		json_decref(o);
		return 0;
	}
	char b1[32], b2[32];
	json_t *seqs = json_object_get(o, "latest_sequences"), *v;
	printf("%s %s\nshards:     %lld\ntables:     %zu\nkeys (est): %lld\n"
	       "sst files:  %s\nmemtables:  %s\njobs:       %lld (%lld pending, %lld failed)\n",
	       a.addr ? "server:    " : "data dir:  ", a.addr ? a.addr : a.dir,
	       (long long)json_integer_value(json_object_get(o, "shards")),
	       json_array_size(json_object_get(o, "tables")),
	       (long long)json_integer_value(json_object_get(o, "keys_estimate")),
	       admin_bytes(json_integer_value(json_object_get(o, "sst_bytes")), b1),
	       admin_bytes(json_integer_value(json_object_get(o, "memtable_bytes")), b2),
	       (long long)json_integer_value(json_object_get(o, "jobs")),
	       (long long)json_integer_value(json_object_get(o, "jobs_pending")),
	       (long long)json_integer_value(json_object_get(o, "jobs_failed")));
	size_t s;
	json_array_foreach(seqs, s, v)
		printf("shard %03zu:  latest sequence %lld\n", s, (long long)json_integer_value(v));
	json_decref(o);
	return 0;
}

/* ---- compact ---- */

int admin_compact(int argc, char **argv)
{
	struct store_args a;
	int rc;
	struct kv_db *db = begin(argc, argv, &a, &rc);
	if (!db)
		return rc;
	uint64_t before = kv_property_sum(db, "rocksdb.total-sst-files-size");
	int64_t t0 = st_mono_us();
	struct st_error err;
	rc = kv_compact(db, &err);
	uint64_t after = kv_property_sum(db, "rocksdb.total-sst-files-size");
	double secs = (st_mono_us() - t0) / 1e6;
	kv_close(db);
	char b1[32], b2[32];
	if (a.json)
		printf("{\"sst_bytes_before\":%llu,\"sst_bytes_after\":%llu,\"seconds\":%.2f}\n",
		       (unsigned long long)before, (unsigned long long)after, secs);
	else
		printf("compacted %s: %s -> %s in %.2fs\n", a.dir, admin_bytes((int64_t)before, b1),
		       admin_bytes((int64_t)after, b2), secs);
	return rc ? 1 : 0;
}

/* ---- backup / restore ---- */

/* Copies the tree src to dst (files, directories); hard links when possible since RocksDB
 * files are immutable, else a byte copy. Counts files into *files. */
static int copy_tree(const char *src, const char *dst, long *files, struct st_progress *p)
{
	if (mkdir(dst, 0755) && errno != EEXIST) {
		fprintf(stderr, "strata-admin: %s: %s\n", dst, strerror(errno));
		return -1;
	}
	DIR *d = opendir(src);
	if (!d) {
		fprintf(stderr, "strata-admin: %s: %s\n", src, strerror(errno));
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while (!rc && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char s[PATH_MAX], t[PATH_MAX];
		snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
		snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
		struct stat st;
		if (lstat(s, &st)) {
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = copy_tree(s, t, files, p);
			continue;
		}
		/* files that change in place (LOCK, LOG, CURRENT, OPTIONS) must not be shared */
		int mutable = !strcmp(de->d_name, "LOCK") || !strncmp(de->d_name, "LOG", 3) ||
			      !strcmp(de->d_name, "CURRENT") || !strncmp(de->d_name, "IDENTITY", 8);
		if (mutable || link(s, t)) {
			FILE *in = fopen(s, "rb"), *out = fopen(t, "wb");
			char buf[1 << 16];
			size_t got;
			while (in && out && (got = fread(buf, 1, sizeof(buf), in)) > 0)
				if (fwrite(buf, 1, got, out) != got)
					break;
			int bad = !in || !out || ferror(in);
			if (in)
				fclose(in);
			if (out && fclose(out))
				bad = 1;
			if (bad) {
				fprintf(stderr, "strata-admin: copy %s: %s\n", s, strerror(errno));
				rc = -1;
			}
		}
		(*files)++;
		st_progress_update(p, *files, 0, "files", NULL, 0);
	}
	closedir(d);
	return rc;
}

int admin_backup(int argc, char **argv)
{
	struct store_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	if (a.npos != 1) {
		fprintf(stderr, "usage: strata-admin backup [--data-dir D | --addr A] [--json] DEST\n");
		return 2;
	}
	if (a.addr) { /* the server writes the checkpoint on its own machine */
		json_t *o = remote_report(&a, "backup", a.pos[0]);
		if (!o)
			return 1;
		if (a.json)
			print_json_doc(o);
		else
			printf("backup of %s written by the server to %s (%lld shards, ~%lld keys)\n",
			       a.addr, a.pos[0],
			       (long long)json_integer_value(json_object_get(o, "shards")),
			       (long long)json_integer_value(json_object_get(o, "keys_estimate")));
		json_decref(o);
		return 0;
	}
	struct kv_db *db = open_store(a.dir, 0);
	if (!db)
		return 1;
	struct st_progress p;
	st_progress_init(&p, stderr, a.json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO, "backup");
	struct st_error err;
	rc = kv_checkpoint(db, a.pos[0], &err);
	uint64_t keys = kv_property_sum(db, "rocksdb.estimate-num-keys");
	int shards = kv_nshards(db);
	kv_close(db);
	if (rc) {
		fprintf(stderr, "strata-admin: backup: %s\n", err.msg);
		return 1;
	}
	char note[96];
	snprintf(note, sizeof(note), "%d shards, ~%llu keys, in %s", shards,
		 (unsigned long long)keys, a.pos[0]);
	st_progress_finish(&p, shards + 1, "databases", "done", note);
	return 0;
}

int admin_restore(int argc, char **argv)
{
	struct store_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	if (a.npos != 1) {
		fprintf(stderr, "usage: strata-admin restore [--data-dir D] [--force] [--json] BACKUP\n");
		return 2;
	}
	char meta[PATH_MAX];
	snprintf(meta, sizeof(meta), "%s/meta/CURRENT", a.pos[0]);
	if (access(meta, R_OK)) {
		fprintf(stderr, "strata-admin: %s is not a backup made by strata-admin backup\n",
			a.pos[0]);
		return 1;
	}
	struct stat st;
	if (!stat(a.dir, &st)) {
		if (!a.force) {
			fprintf(stderr, "strata-admin: %s exists; --force moves it aside first\n", a.dir);
			return 1;
		}
		char aside[PATH_MAX];
		snprintf(aside, sizeof(aside), "%s.before-restore.%lld", a.dir, (long long)time(NULL));
		if (rename(a.dir, aside)) {
			fprintf(stderr, "strata-admin: move %s aside: %s\n", a.dir, strerror(errno));
			return 1;
		}
		fprintf(stderr, "strata-admin: previous data moved to %s\n", aside);
	}
	struct st_progress p;
	st_progress_init(&p, stderr, a.json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO, "restore");
	long files = 0;
	if (copy_tree(a.pos[0], a.dir, &files, &p))
		return 1;
	/* the restored store must open */
	struct kv_db *db = open_store(a.dir, 0);
	if (!db)
		return 1;
	struct kv_table **ts;
	size_t n = 0;
	struct st_error err;
	if (kv_table_list(db, &ts, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			kv_table_free(ts[i]);
		free(ts);
	}
	kv_close(db);
	char note[64];
	snprintf(note, sizeof(note), "%zu tables", n);
	st_progress_finish(&p, files, "files", "done", note);
	return 0;
}

/* ---- verify ---- */

int admin_verify(int argc, char **argv)
{
	struct store_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	struct st_progress p;
	st_progress_init(&p, stderr, a.json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO, "verify");
	json_t *o = report(&a, "verify", &p);
	if (!o)
		return 1;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(o, "tables"), i, t) {
		const char *e = json_string_value(json_object_get(t, "error"));
		if (e)
			fprintf(stderr, "strata-admin: table %s: %s\n",
				json_string_value(json_object_get(t, "name")), e);
		if (!a.json)
			printf("table %-24s %8lld entities %10lld versions %8lld tombstones  %s\n",
			       json_string_value(json_object_get(t, "name")),
			       (long long)json_integer_value(json_object_get(t, "entities")),
			       (long long)json_integer_value(json_object_get(t, "versions")),
			       (long long)json_integer_value(json_object_get(t, "tombstones")),
			       e ? "BAD" : "ok");
	}
	int ok = json_is_true(json_object_get(o, "ok"));
	if (a.json)
		print_json_doc(o);
	st_progress_finish(&p, json_integer_value(json_object_get(o, "versions")), "versions",
			   ok ? "ok" : "failed", NULL);
	json_decref(o);
	return !ok;
}

/* ---- dump ---- */

/* Collects one entity's versions, then writes one CSV row per (entity, event time) with the
 * features that have a value then: the preload format, so a dump loads back. */
struct dump_cell {
	int64_t ts;
	uint32_t fi;
	struct kv_value v;
};

struct dump_ctx {
	FILE *out;
	const struct kv_table *t;
	int all_versions;
	char ent[KV_ENTITY_MAX];
	size_t elen;
	struct dump_cell *cells;
	size_t n, cap;
	long rows;
	char *buf;
	size_t buflen, bufcap;
	struct st_progress *p;
};

static int cell_cmp(const void *pa, const void *pb)
{
	const struct dump_cell *a = pa, *b = pb;
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return a->fi < b->fi ? -1 : a->fi > b->fi;
}

static void dump_flush(struct dump_ctx *c)
{
	qsort(c->cells, c->n, sizeof(*c->cells), cell_cmp);
	char tb[ST_TS_BUFLEN];
	for (size_t i = 0; i < c->n;) {
		size_t j = i;
		st_csv_field(c->out, c->ent, c->elen);
		fprintf(c->out, ",%s", st_ts_format(c->cells[i].ts, tb));
		for (uint32_t f = 0; f < c->t->nfeatures; f++) {
			fputc(',', c->out);
			if (j < c->n && c->cells[j].ts == c->cells[i].ts && c->cells[j].fi == f) {
				c->buflen = 0;
				if (kv_value_format(&c->cells[j].v, &c->buf, &c->buflen, &c->bufcap) == 0)
					st_csv_field(c->out, c->buf, c->buflen);
				j++;
			}
		}
		fputc('\n', c->out);
		c->rows++;
		ST_ASSERT(j > i); /* one version per feature and time: the row consumed them all */
		i = j;
	}
	for (size_t i = 0; i < c->n; i++)
		kv_value_release(&c->cells[i].v);
	c->n = 0;
	st_progress_update(c->p, c->rows, 0, "rows", NULL, 0);
}

static int dump_cb(void *arg, const char *e, size_t elen, const struct kv_feature_def *f,
		   const struct kv_version *v)
{
	struct dump_ctx *c = arg;
	if (elen != c->elen || memcmp(e, c->ent, elen)) {
		if (c->n)
			dump_flush(c);
		memcpy(c->ent, e, elen);
		c->elen = elen;
	}
	if (v->tombstone)
		return 0;
	/* latest only: skip older versions of a feature already seen for this entity */
	const struct kv_feature_def *mine = kv_table_feature(c->t, f->name);
	if (!mine)
		return ST_ECORRUPT; /* cannot happen: the scan reports the table's own features */
	uint32_t fi = (uint32_t)(mine - c->t->features);
	if (!c->all_versions)
		for (size_t i = 0; i < c->n; i++)
			if (c->cells[i].fi == fi)
				return 0;
	if (st_grow((void **)&c->cells, &c->cap, c->n + 1, sizeof(*c->cells), 64))
		return ST_ENOMEM;
	struct dump_cell *cell = &c->cells[c->n];
	cell->ts = v->r.ts;
	cell->fi = fi;
	if (kv_value_copy(&v->r.value, &cell->v))
		return ST_ENOMEM;
	c->n++;
	return 0;
}

int admin_dump(int argc, char **argv)
{
	struct store_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	if (a.npos != 1) {
		fprintf(stderr, "usage: strata-admin dump [--data-dir D] [--out F] [--all-versions] "
				"[--json] TABLE\n");
		return 2;
	}
	struct kv_db *db = open_store(a.dir, 0);
	if (!db)
		return 1;
	struct kv_table *t;
	struct st_error err;
	if (kv_table_get(db, a.pos[0], &t, &err)) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		kv_close(db);
		return 1;
	}
	FILE *out = a.out ? fopen(a.out, "w") : stdout;
	if (!out) {
		fprintf(stderr, "strata-admin: %s: %s\n", a.out, strerror(errno));
		kv_table_free(t);
		kv_close(db);
		return 1;
	}
	struct st_progress p;
	st_progress_init(&p, stderr, a.json ? ST_PROGRESS_JSON : ST_PROGRESS_AUTO, "dump");
	st_csv_field(out, t->entity_column, strlen(t->entity_column));
	fputs(",ts", out);
	for (uint32_t f = 0; f < t->nfeatures; f++) {
		fputc(',', out);
		st_csv_field(out, t->features[f].name, strlen(t->features[f].name));
	}
	fputc('\n', out);
	struct dump_ctx c = {.out = out, .t = t, .all_versions = a.all_versions, .p = &p};
	rc = kv_table_scan(db, t->name, ST_TS_MAX, dump_cb, &c, &err);
	if (!rc && c.n)
		dump_flush(&c);
	for (size_t i = 0; i < c.n; i++)
		kv_value_release(&c.cells[i].v);
	free(c.cells);
	free(c.buf);
	int werr = ferror(out) || (out != stdout && fclose(out));
	if (out == stdout)
		fflush(stdout);
	if (rc || werr)
		fprintf(stderr, "strata-admin: dump: %s\n", rc ? err.msg : "write failed");
	else
		st_progress_finish(&p, c.rows, "rows", "done", NULL);
	kv_table_free(t);
	kv_close(db);
	return rc || werr;
}
