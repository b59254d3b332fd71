/* Preload jobs: bulk import of offline feature files as background jobs.
 *
 * A job runs in phases: parse (records -> encoded cells, bucketed by shard, spilled as sorted
 * runs to DIR/tmp/job-ID/ when the sort buffer is full), sort, then ingest (merge the runs of
 * each shard into SST files and ingest them with RocksDB's external file ingestion, so the
 * file's cells appear at once). Every cell of a job carries the job's ingest time, fixed on
 * its first attempt, so a job re-run after a restart writes identical keys: resuming is
 * re-running, and ingesting a shard twice is harmless.
 *
 * States (persisted in the meta db as "job/<id>"):
 *   queued -> running -> done | failed | cancelled;  queued -> cancelled;
 *   running stays "running" when the process stops (interrupted) and is re-run by the next
 *   process that runs jobs (kv_options.run_jobs, or kv_jobs_run_pending).
 * Invariants: at most one job runs per process; only the runner writes a running job's record
 * (cancel of a running job only raises a flag). */
#include "store/kv_input.h"
#include "store/kv_int.h"
#include "common/st_fault.h"

#include <dirent.h>
#include <stdatomic.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOB_SST_MAX (256ull << 20)

struct kv_jobs {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int thread_started;
	int stopping;        /* close in progress: abort the running job, leave it resumable */
	uint64_t submits;    /* jobs submitted so far: the runner waits only if none came
			      * since its scan for pending jobs began (else a wakeup is lost) */
	uint64_t next_id;
	uint64_t active_id;  /* job running in this process, 0 = none */
	int cancel_active;   /* cancel requested for active_id */
	struct kv_job_info live; /* progress of active_id */
};

const char *kv_job_state_name(enum kv_job_state s)
{
	static const char *const n[] = {"queued", "running", "done", "failed", "cancelled"};
	return (unsigned)s < 5 ? n[s] : "unknown";
}

void kv_preload_req_init(struct kv_preload_req *r)
{
	memset(r, 0, sizeof(*r));
	r->format = KV_FMT_AUTO;
	snprintf(r->ts_column, sizeof(r->ts_column), "ts");
	r->ts_unit = ST_TS_MS;
}

/* ---- job records ---- */

static void job_key(char *buf, size_t n, uint64_t id)
{
	snprintf(buf, n, "job/%016llx", (unsigned long long)id);
}

static int job_save(struct kv_db *db, const struct kv_job_info *j, int64_t ingest_us,
		    struct st_error *err)
{
	json_t *bad = json_array();
	for (int i = 0; i < KV_JOB_BAD_SAMPLES && j->bad_samples[i][0]; i++)
		json_array_append_new(bad, json_string(j->bad_samples[i]));
	json_t *o = json_pack(
		"{s:I,s:s,s:s,s:s,s:i,s:i,s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:s,s:s,s:o,"
		"s:I,s:b}",
		"id", (json_int_t)j->id, "state", kv_job_state_name(j->state), "table", j->req.table,
		"path", j->req.path, "format", (int)j->req.format, "skip_bad_rows",
		j->req.skip_bad_rows, "ts_column", j->req.ts_column, "ts_unit", (int)j->req.ts_unit,
		"submitted_us", (json_int_t)j->submitted_us, "started_us", (json_int_t)j->started_us,
		"finished_us", (json_int_t)j->finished_us, "rows", (json_int_t)j->rows, "cells",
		(json_int_t)j->cells, "bad_rows", (json_int_t)j->bad_rows, "bytes_done",
		(json_int_t)j->bytes_done, "bytes_total", (json_int_t)j->bytes_total, "attempts",
		j->attempts, "phase", j->phase, "error", j->error, "bad_samples", bad, "ingest_us",
		(json_int_t)ingest_us, "allow_any_ts", j->req.allow_any_ts);
	if (!o)
		return st_error_set(err, ST_ENOMEM, "job record encoding failed");
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	char key[32];
	job_key(key, sizeof(key), j->id);
	int rc = kv_meta_put(db, key, s, strlen(s), err);
	free(s);
	return rc;
}

static int state_parse(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (!strcmp(s, kv_job_state_name((enum kv_job_state)i)))
			return i;
	return -1;
}

static int job_decode(const char *s, size_t len, struct kv_job_info *j, int64_t *ingest_us,
		      struct st_error *err)
{
	memset(j, 0, sizeof(*j));
	json_error_t je;
	json_t *o = json_loadb(s, len, 0, &je), *bad = NULL;
	const char *state, *table, *path, *tscol, *phase, *error;
	json_int_t id, sub, sta, fin, rows, cells, badn, bd, bt, ing;
	int fmt, skip, unit, attempts;
	if (!o || json_unpack_ex(o, &je, 0,
				 "{s:I,s:s,s:s,s:s,s:i,s:i,s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
				 "s:I,s:i,s:s,s:s,s:o,s:I}",
				 "id", &id, "state", &state, "table", &table, "path", &path, "format",
				 &fmt, "skip_bad_rows", &skip, "ts_column", &tscol, "ts_unit", &unit,
				 "submitted_us", &sub, "started_us", &sta, "finished_us", &fin,
				 "rows", &rows, "cells", &cells, "bad_rows", &badn, "bytes_done", &bd,
				 "bytes_total", &bt, "attempts", &attempts, "phase", &phase, "error",
				 &error, "bad_samples", &bad, "ingest_us", &ing) ||
	    state_parse(state) < 0) {
		json_decref(o);
		return st_error_set(err, ST_ECORRUPT, "bad job record: %s", je.text);
	}
	j->id = (uint64_t)id;
	j->state = (enum kv_job_state)state_parse(state);
	snprintf(j->req.table, sizeof(j->req.table), "%s", table);
	snprintf(j->req.path, sizeof(j->req.path), "%s", path);
	j->req.format = (enum kv_format)fmt;
	j->req.skip_bad_rows = skip;
	snprintf(j->req.ts_column, sizeof(j->req.ts_column), "%s", tscol);
	j->req.ts_unit = (enum st_ts_unit)unit;
	j->submitted_us = sub;
	j->started_us = sta;
	j->finished_us = fin;
	j->rows = rows;
	j->cells = cells;
	j->bad_rows = badn;
	j->bytes_done = bd;
	j->bytes_total = bt;
	j->attempts = attempts;
	snprintf(j->phase, sizeof(j->phase), "%s", phase);
	snprintf(j->error, sizeof(j->error), "%s", error);
	for (size_t i = 0; i < json_array_size(bad) && i < KV_JOB_BAD_SAMPLES; i++)
		snprintf(j->bad_samples[i], sizeof(j->bad_samples[i]), "%s",
			 json_string_value(json_array_get(bad, i)) ?: "");
	j->req.allow_any_ts = json_is_true(json_object_get(o, "allow_any_ts"));
	j->eta_s = -1;
	if (ingest_us)
		*ingest_us = ing;
	json_decref(o);
	return 0;
}

static int job_load(struct kv_db *db, uint64_t id, struct kv_job_info *j, int64_t *ingest_us,
		    struct st_error *err)
{
	char key[32], *v;
	size_t len;
	job_key(key, sizeof(key), id);
	int rc = kv_meta_get(db, key, &v, &len, err);
	if (rc == ST_ENOTFOUND)
		return st_error_set(err, rc, "no such job %llu", (unsigned long long)id);
	if (rc)
		return rc;
	rc = job_decode(v, len, j, ingest_us, err);
	free(v);
	return rc;
}

/* Overlays live progress and the "interrupted" flag. Caller holds jobs->lock. */
static void job_overlay(struct kv_db *db, struct kv_job_info *j)
{
	struct kv_jobs *js = db->jobs;
	if (j->id == js->active_id) {
		struct kv_job_info *l = &js->live;
		j->rows = l->rows;
		j->cells = l->cells;
		j->bad_rows = l->bad_rows;
		j->bytes_done = l->bytes_done;
		j->bytes_total = l->bytes_total;
		memcpy(j->phase, l->phase, sizeof(j->phase));
		double el = (st_now_us() - l->started_us) / 1e6;
		j->rows_per_s = el > 0 ? l->rows / el : 0;
		double brate = el > 0 ? l->bytes_done / el : 0;
		j->eta_s = (brate > 0 && l->bytes_total > 0)
				   ? (l->bytes_total - l->bytes_done) / brate
				   : -1;
	} else if (j->state == KV_JOB_QUEUED || j->state == KV_JOB_RUNNING) {
		j->interrupted = !db->opts.run_jobs;
		j->eta_s = -1;
	} else {
		double el = (j->finished_us - j->started_us) / 1e6;
		j->rows_per_s = el > 0 ? j->rows / el : 0;
		j->eta_s = 0;
	}
}

int kv_job_get(struct kv_db *db, uint64_t id, struct kv_job_info *out, struct st_error *err)
{
	pthread_mutex_lock(&db->jobs->lock);
	int rc = job_load(db, id, out, NULL, err);
	if (!rc)
		job_overlay(db, out);
	pthread_mutex_unlock(&db->jobs->lock);
	return rc;
}

int kv_job_list(struct kv_db *db, struct kv_job_info **out, size_t *n, struct st_error *err)
{
	size_t cap = 16, cnt = 0;
	struct kv_job_info *arr = malloc(cap * sizeof(*arr));
	if (!arr)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	int rc = 0;
	pthread_mutex_lock(&db->jobs->lock);
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->meta, db->ro);
	/* Newest first: walk backwards from the end of the "job/" range. */
	rocksdb_iter_seek_for_prev(it, "job/\xff", 5);
	for (; rocksdb_iter_valid(it); rocksdb_iter_prev(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		if (kl < 4 || memcmp(k, "job/", 4))
			break;
		if (cnt == cap) {
			struct kv_job_info *na = realloc(arr, (cap *= 2) * sizeof(*arr));
			if (!na) {
				rc = st_error_set(err, ST_ENOMEM, "out of memory");
				break;
			}
			arr = na;
		}
		const char *v = rocksdb_iter_value(it, &vl);
		if ((rc = job_decode(v, vl, &arr[cnt], NULL, err)))
			break;
		job_overlay(db, &arr[cnt]);
		cnt++;
	}
	if (!rc)
		rc = kv_iter_check(it, "reading job records", err);
	rocksdb_iter_destroy(it);
	pthread_mutex_unlock(&db->jobs->lock);
	if (rc) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int kv_preload_submit(struct kv_db *db, const struct kv_preload_req *req, uint64_t *id,
		      struct st_error *err)
{
	struct kv_job_info j;
	memset(&j, 0, sizeof(j));
	j.req = *req;
	if (!j.req.ts_column[0])
		snprintf(j.req.ts_column, sizeof(j.req.ts_column), "ts");
	if (req->path[0] != '/')
		return st_error_set(err, ST_EINVAL, "preload path must be absolute: %s", req->path);
	if (access(req->path, R_OK))
		return st_error_set(err, ST_ENOTFOUND, "%s: %s", req->path, strerror(errno));
	pthread_rwlock_rdlock(&db->reg_lock);
	int exists = kv_reg_find_err(db, req->table, err) != NULL;
	pthread_rwlock_unlock(&db->reg_lock);
	if (!exists)
		return ST_ENOTFOUND;
	struct kv_jobs *js = db->jobs;
	pthread_mutex_lock(&js->lock);
	j.id = js->next_id++;
	j.state = KV_JOB_QUEUED;
	j.submitted_us = st_now_us();
	snprintf(j.phase, sizeof(j.phase), "queued");
	char idbuf[24];
	int n = snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)js->next_id);
	int rc = kv_meta_put(db, "next_job_id", idbuf, (size_t)n, err);
	if (!rc)
		rc = job_save(db, &j, 0, err);
	if (!rc) {
		*id = j.id;
		js->submits++;
		pthread_cond_broadcast(&js->cond);
	}
	pthread_mutex_unlock(&js->lock);
	return rc;
}

int kv_job_cancel(struct kv_db *db, uint64_t id, struct st_error *err)
{
	struct kv_jobs *js = db->jobs;
	struct kv_job_info j;
	int64_t ingest;
	pthread_mutex_lock(&js->lock);
	int rc = job_load(db, id, &j, &ingest, err);
	if (rc)
		goto out;
	if (id == js->active_id) {
		js->cancel_active = 1; /* the runner persists the cancelled state */
		goto out;
	}
	if (j.state != KV_JOB_QUEUED && j.state != KV_JOB_RUNNING) {
		rc = st_error_set(err, ST_EINVAL, "job %llu is already %s", (unsigned long long)id,
				  kv_job_state_name(j.state));
		goto out;
	}
	j.state = KV_JOB_CANCELLED;
	j.finished_us = st_now_us();
	snprintf(j.error, sizeof(j.error), "cancelled");
	rc = job_save(db, &j, ingest, err);
out:
	pthread_mutex_unlock(&js->lock);
	return rc;
}

/* ---- sorted runs ---- */

/* The sort buffer of one shard. Entries [u32 klen][u32 vlen][key][value] are appended to
 * fixed-size chunks (growth never copies, and spilled chunks are reused, so each page is
 * touched once); the index holds the first 16 key bytes after the table id inline, so most
 * comparisons of the sort never touch the entries. */
#define CHUNK_BYTES (8u << 20)

struct sort_ent {
	uint64_t p0, p1; /* key bytes 4..20, big-endian (the table id is the same for all) */
	uint64_t seq;    /* arrival order: among equal keys the later row wins */
	const char *e;
};

struct shard_buf {
	char **chunks;     /* chunk i has chunk_size[i] bytes */
	size_t *chunk_size;
	size_t nchunks, cur, cur_used; /* appending into chunks[cur] */
	size_t len;        /* entry bytes buffered */
	struct sort_ent *ents;
	size_t n, ncap;
	int nruns;         /* spilled run files */
};

struct job_ctx {
	struct kv_db *db;
	struct kv_job_info *info; /* the job record being run */
	int64_t ingest_us;
	struct kv_table *table;   /* owned snapshot */
	struct kv_input *in;
	char dir[4200];           /* DIR/tmp/job-ID */
	struct shard_buf *bufs;
	size_t buffered;          /* bytes in all arenas */
	/* column roles for the current input columns */
	int *role;                /* -1 entity, -2 ts, -3 unknown, >=0 feature index */
	size_t nroles;
	struct st_error *err;
	int64_t last_save_us;
	/* per-row scratch */
	struct kv_value *vals;
};

#define ROLE_ENTITY (-1)
#define ROLE_TS (-2)
#define ROLE_UNKNOWN (-3)

static const char *arena_key(const char *e, uint32_t *kl)
{
	memcpy(kl, e, 4);
	return e + 8;
}

static int entry_cmp_key(const char *a, const char *b)
{
	uint32_t al, bl;
	const char *ak = arena_key(a, &al), *bk = arena_key(b, &bl);
	int c = memcmp(ak, bk, al < bl ? al : bl);
	return c ? c : (al < bl ? -1 : al > bl);
}

/* Key ascending; among equal keys the later entry first, so that the first of a run of
 * equal keys is the one to keep (the later row of the file wins). */
static int ent_cmp(const void *pa, const void *pb)
{
	const struct sort_ent *a = pa, *b = pb;
	if (a->p0 != b->p0)
		return a->p0 < b->p0 ? -1 : 1;
	if (a->p1 != b->p1)
		return a->p1 < b->p1 ? -1 : 1;
	int c = entry_cmp_key(a->e, b->e);
	return c ? c : (a->seq > b->seq ? -1 : 1);
}

static void sort_buf(struct shard_buf *b)
{
	qsort(b->ents, b->n, sizeof(*b->ents), ent_cmp);
}

static size_t entry_size(const char *e)
{
	uint32_t kl, vl;
	memcpy(&kl, e, 4);
	memcpy(&vl, e + 4, 4);
	return 8 + (size_t)kl + vl;
}

/* Writes the sorted, de-duplicated buffer of shard s as run file number b->nruns. */
static int spill(struct job_ctx *c, int s)
{
	struct shard_buf *b = &c->bufs[s];
	if (!b->n)
		return 0;
	sort_buf(b);
	char path[4300];
	snprintf(path, sizeof(path), "%s/run-%03d-%05d", c->dir, s, b->nruns);
	FILE *f = fopen(path, "wb");
	if (!f)
		return st_error_set(c->err, ST_EIO, "%s: %s", path, strerror(errno));
	const char *prev = NULL;
	for (size_t i = 0; i < b->n; i++) {
		const char *e = b->ents[i].e;
		if (prev && !entry_cmp_key(prev, e))
			continue;
		fwrite(e, 1, entry_size(e), f);
		prev = e;
	}
	int bad = ferror(f) | fclose(f);
	if (bad)
		return st_error_set(c->err, ST_EIO, "%s: write failed (disk full?)", path);
	b->nruns++;
	c->buffered -= b->len + b->n * sizeof(struct sort_ent);
	b->len = 0;
	b->n = 0;
	b->cur = 0; /* chunks are reused */
	b->cur_used = 0;
	return 0;
}

/* Space for an entry of `need` bytes: the current chunk, the next (reused) one, or a new one
 * (of exactly `need` bytes for an entry larger than a chunk). NULL when out of memory. */
static char *buf_space(struct shard_buf *b, size_t need)
{
	if (b->nchunks && b->cur_used + need <= b->chunk_size[b->cur]) {
		char *p = b->chunks[b->cur] + b->cur_used;
		b->cur_used += need;
		return p;
	}
	size_t next = b->nchunks ? b->cur + 1 : 0;
	if (next < b->nchunks && need <= b->chunk_size[next]) {
		b->cur = next;
		b->cur_used = need;
		return b->chunks[next];
	}
	char **nc = realloc(b->chunks, (b->nchunks + 1) * sizeof(*nc));
	if (!nc)
		return NULL;
	b->chunks = nc;
	size_t *ns = realloc(b->chunk_size, (b->nchunks + 1) * sizeof(*ns));
	if (!ns)
		return NULL;
	b->chunk_size = ns;
	size_t sz = need > CHUNK_BYTES ? need : CHUNK_BYTES;
	char *chunk = malloc(sz);
	if (!chunk)
		return NULL;
	/* keep reusable chunks in order: the new one goes right after the current one */
	size_t at = b->nchunks ? b->cur + 1 : 0;
	memmove(&b->chunks[at + 1], &b->chunks[at], (b->nchunks - at) * sizeof(*b->chunks));
	memmove(&b->chunk_size[at + 1], &b->chunk_size[at], (b->nchunks - at) * sizeof(*ns));
	b->chunks[at] = chunk;
	b->chunk_size[at] = sz;
	b->nchunks++;
	b->cur = at;
	b->cur_used = need;
	return chunk;
}

static uint64_t be64_at(const char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | (unsigned char)p[i];
	return v;
}

static int buf_add(struct job_ctx *c, int s, const char *key, size_t kl, const char *val,
		   size_t vl)
{
	struct shard_buf *b = &c->bufs[s];
	size_t need = 8 + kl + vl;
	ST_ASSERT(kl >= KV_KEY_FIXED);
	if (b->n == b->ncap) {
		size_t nc = b->ncap ? b->ncap * 2 : 1 << 14;
		struct sort_ent *ne = realloc(b->ents, nc * sizeof(*ne));
		if (!ne)
			return st_error_set(c->err, ST_ENOMEM, "out of memory");
		b->ents = ne;
		b->ncap = nc;
	}
	char *e = buf_space(b, need);
	if (!e)
		return st_error_set(c->err, ST_ENOMEM, "out of memory");
	uint32_t k32 = (uint32_t)kl, v32 = (uint32_t)vl;
	memcpy(e, &k32, 4);
	memcpy(e + 4, &v32, 4);
	memcpy(e + 8, key, kl);
	memcpy(e + 8 + kl, val, vl);
	b->ents[b->n] = (struct sort_ent){be64_at(key + 4), be64_at(key + 12), b->n, e};
	b->n++;
	b->len += need;
	c->buffered += need + sizeof(struct sort_ent);
	if (c->buffered > c->db->opts.preload_mem_bytes)
		for (int i = 0; i < c->db->nshards; i++) {
			int rc = spill(c, i);
			if (rc)
				return rc;
		}
	return 0;
}

/* ---- merge into SST files and ingest ---- */

struct run_src {
	FILE *f;           /* run file, or NULL for the in-memory buffer */
	const struct shard_buf *mem;
	size_t mem_i;
	char *buf;         /* current entry (file runs) */
	size_t cap;
	const char *cur;   /* current entry, NULL at end */
	int order;         /* higher = later rows */
};

static int src_next(struct run_src *r)
{
	if (!r->f) {
		/* Equal keys are dropped by the merge, which keeps the first it sees. */
		r->cur = r->mem_i < r->mem->n ? r->mem->ents[r->mem_i++].e : NULL;
		return 0;
	}
	char hdr[8];
	if (fread(hdr, 1, 8, r->f) != 8) {
		r->cur = NULL;
		return ferror(r->f) ? ST_EIO : 0;
	}
	size_t sz = entry_size(hdr);
	if (sz > r->cap) {
		char *nb = realloc(r->buf, sz);
		if (!nb)
			return ST_ENOMEM;
		r->buf = nb;
		r->cap = sz;
	}
	memcpy(r->buf, hdr, 8);
	if (fread(r->buf + 8, 1, sz - 8, r->f) != sz - 8)
		return ST_ECORRUPT;
	r->cur = r->buf;
	return 0;
}

static rocksdb_sstfilewriter_t *sst_open(struct job_ctx *c, int s, size_t nth, char *path,
				       size_t n)
{
	snprintf(path, n, "%s/sst-%03d-%05zu.sst", c->dir, s, nth);
	rocksdb_envoptions_t *eo = rocksdb_envoptions_create();
	rocksdb_sstfilewriter_t *w = rocksdb_sstfilewriter_create(eo, c->db->shards[s].opts);
	rocksdb_envoptions_destroy(eo);
	char *rerr = NULL;
	rocksdb_sstfilewriter_open(w, path, &rerr);
	if (rerr) {
		kv_rocks_err(c->err, rerr, path);
		rocksdb_sstfilewriter_destroy(w);
		return NULL;
	}
	return w;
}

static int sst_close(struct job_ctx *c, rocksdb_sstfilewriter_t *w)
{
	char *rerr = NULL;
	rocksdb_sstfilewriter_finish(w, &rerr);
	rocksdb_sstfilewriter_destroy(w);
	return rerr ? kv_rocks_err(c->err, rerr, "finish SST file") : 0;
}

static int cancelled(struct job_ctx *c)
{
	struct kv_jobs *js = c->db->jobs;
	pthread_mutex_lock(&js->lock);
	int r = js->stopping ? ST_ECLOSED : js->cancel_active ? ST_ECANCELED : 0;
	pthread_mutex_unlock(&js->lock);
	return r;
}

/* Merges all runs of shard s into SST files; returns their paths (owned) in *paths. */
static int merge_shard(struct job_ctx *c, int s, char ***paths, size_t *npaths)
{
	struct shard_buf *b = &c->bufs[s];
	int nsrc = b->nruns + 1, rc = 0;
	struct run_src *src = calloc((size_t)nsrc, sizeof(*src));
	if (!src)
		return st_error_set(c->err, ST_ENOMEM, "out of memory");
	sort_buf(b);
	for (int r = 0; r < b->nruns && !rc; r++) {
		char path[4300];
		snprintf(path, sizeof(path), "%s/run-%03d-%05d", c->dir, s, r);
		src[r].f = fopen(path, "rb");
		src[r].order = r;
		if (!src[r].f)
			rc = st_error_set(c->err, ST_EIO, "%s: %s", path, strerror(errno));
		else
			rc = src_next(&src[r]);
	}
	src[b->nruns].mem = b;
	src[b->nruns].order = b->nruns;
	if (!rc)
		rc = src_next(&src[b->nruns]);

	rocksdb_sstfilewriter_t *w = NULL;
	char path[4300], *prev = NULL;
	size_t prev_len = 0, prev_cap = 0, in_file = 0;
	int64_t steps = 0;
	while (!rc) {
		/* pick the smallest key; among equal keys the latest run */
		int best = -1;
		for (int r = 0; r < nsrc; r++) {
			if (!src[r].cur)
				continue;
			if (best < 0) {
				best = r;
				continue;
			}
			int cmp = entry_cmp_key(src[r].cur, src[best].cur);
			if (cmp < 0 || (cmp == 0 && src[r].order > src[best].order))
				best = r;
		}
		if (best < 0)
			break;
		const char *e = src[best].cur;
		uint32_t kl, vl;
		const char *k = arena_key(e, &kl);
		memcpy(&vl, e + 4, 4);
		if (!prev || kl != prev_len || memcmp(prev, k, kl)) {
			if (!w || in_file >= JOB_SST_MAX) {
				if (w && (rc = sst_close(c, w)))
					break;
				w = sst_open(c, s, *npaths, path, sizeof(path));
				if (!w) {
					rc = c->err->code;
					break;
				}
				char **np = realloc(*paths, (*npaths + 1) * sizeof(*np));
				if (!np) {
					rc = st_error_set(c->err, ST_ENOMEM, "out of memory");
					break;
				}
				*paths = np;
				(*paths)[(*npaths)++] = strdup(path);
				in_file = 0;
			}
			char *rerr = NULL;
			rocksdb_sstfilewriter_put(w, k, kl, k + kl, vl, &rerr);
			if (rerr) {
				rc = kv_rocks_err(c->err, rerr, "write SST file");
				break;
			}
			in_file += kl + vl;
			if (kl > prev_cap) {
				char *np = realloc(prev, kl);
				if (!np) {
					rc = st_error_set(c->err, ST_ENOMEM, "out of memory");
					break;
				}
				prev = np;
				prev_cap = kl;
			}
			memcpy(prev, k, kl);
			prev_len = kl;
		}
		if ((rc = src_next(&src[best])))
			st_error_set(c->err, rc, "reading a sorted run of shard %d failed", s);
		if (!rc && (++steps & 0xffff) == 0)
			rc = cancelled(c);
	}
	if (w) {
		int rc2 = sst_close(c, w);
		if (!rc)
			rc = rc2;
	}
	for (int r = 0; r < nsrc; r++) {
		if (src[r].f)
			fclose(src[r].f);
		free(src[r].buf);
	}
	free(src);
	free(prev);
	return rc;
}

static int ingest_shard(struct job_ctx *c, int s, char **paths, size_t n)
{
	if (!n)
		return 0;
	int rc = kv_check_health(c->db, c->err); /* read-only after a storage failure */
	if (rc)
		return rc;
	rocksdb_ingestexternalfileoptions_t *io = rocksdb_ingestexternalfileoptions_create();
	rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
	char *rerr = NULL;
	if (st_fault("preload.ingest"))
		rerr = strdup("injected fault preload.ingest");
	else
	{
		rocksdb_ingest_external_file(kv_shard_pin(c->db, s), (const char *const *)paths,
					     n, io, &rerr);
		kv_shard_unpin(c->db, s);
	}
	rocksdb_ingestexternalfileoptions_destroy(io);
	if (rerr)
		return kv_rocks_err(c->err, rerr, "ingest SST files");
	/* replicas learn of it through the WAL (kv_repl.c) */
	return kv_shard_mark_ingest(c->db, s, c->err);
}

/* A shard's ingestion failed after shards [0, n) were ingested: delete what this job wrote
 * there (its cells all carry the job's ingest time) so that the file is not half visible.
 * A full scan of the table, but only on this rare error path. */
static void rollback(struct job_ctx *c, int n)
{
	char lo[4], hi[4];
	kv_key_table_prefix(lo, c->table->id);
	kv_key_table_prefix(hi, c->table->id + 1);
	for (int s = 0; s < n; s++) {
		rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
		rocksdb_readoptions_set_total_order_seek(ro, 1);
		rocksdb_readoptions_set_iterate_upper_bound(ro, hi, 4);
		rocksdb_iterator_t *it = rocksdb_create_iterator(kv_shard_pin(c->db, s), ro);
		rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
		struct st_error err;
		for (rocksdb_iter_seek(it, lo, 4); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
			size_t kl;
			const char *k = rocksdb_iter_key(it, &kl);
			struct kv_key key;
			if (kv_key_decode(k, kl, &key) == 0 && key.ingest == c->ingest_us)
				rocksdb_writebatch_delete(wb, k, kl);
			if (rocksdb_writebatch_count(wb) >= 10000) {
				kv_shard_write(c->db, s, wb, &err);
				rocksdb_writebatch_clear(wb);
			}
		}
		if (kv_iter_check(it, "preload rollback", &err))
			fprintf(stderr, "strata: job %llu: %s\n", (unsigned long long)c->info->id, err.msg);
		if (rocksdb_writebatch_count(wb))
			kv_shard_write(c->db, s, wb, &err);
		rocksdb_writebatch_destroy(wb);
		rocksdb_iter_destroy(it);
		kv_shard_unpin(c->db, s);
		rocksdb_readoptions_destroy(ro);
	}
}

/* Shards are sorted and written by up to one thread per core: each thread works on whole
 * shards with its own copy of the context (and error), so nothing else is shared. */
struct merge_pool {
	struct job_ctx *c;
	char ***paths;
	size_t *npaths;
	_Atomic int next;
	_Atomic int failed;
	pthread_mutex_t lock; /* first_err */
	struct st_error first_err;
};

static void *merge_worker(void *arg)
{
	struct merge_pool *mp = arg;
	struct st_error err = {0};
	struct job_ctx tc = *mp->c;
	tc.err = &err;
	int s;
	while (!atomic_load(&mp->failed) && (s = atomic_fetch_add(&mp->next, 1)) < tc.db->nshards) {
		if (!tc.bufs[s].n && !tc.bufs[s].nruns)
			continue;
		if (merge_shard(&tc, s, &mp->paths[s], &mp->npaths[s])) {
			pthread_mutex_lock(&mp->lock);
			if (!atomic_exchange(&mp->failed, 1))
				mp->first_err = err;
			pthread_mutex_unlock(&mp->lock);
		}
	}
	return NULL;
}

static int merge_all(struct job_ctx *c, char ***paths, size_t *npaths)
{
	struct merge_pool mp = {.c = c, .paths = paths, .npaths = npaths};
	pthread_mutex_init(&mp.lock, NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = (int)(ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu), started = 0;
	if (nt > c->db->nshards)
		nt = c->db->nshards;
	pthread_t th[8];
	for (int i = 1; i < nt; i++)
		if (pthread_create(&th[started], NULL, merge_worker, &mp) == 0)
			started++;
	merge_worker(&mp);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&mp.lock);
	if (atomic_load(&mp.failed)) {
		*c->err = mp.first_err;
		return c->err->code ? c->err->code : ST_EIO;
	}
	return 0;
}

/* ---- parsing records into cells ---- */

static void set_phase(struct job_ctx *c, const char *phase)
{
	struct kv_jobs *js = c->db->jobs;
	pthread_mutex_lock(&js->lock);
	snprintf(js->live.phase, sizeof(js->live.phase), "%s", phase);
	snprintf(c->info->phase, sizeof(c->info->phase), "%s", phase);
	pthread_mutex_unlock(&js->lock);
}

/* Maps columns that appeared since the last call to roles. For CSV/TSV, an unknown column
 * is an error at the header; for JSON lines it makes the row bad (returns ROLE_UNKNOWN). */
static int map_columns(struct job_ctx *c)
{
	size_t n = kv_input_ncols(c->in);
	if (n == c->nroles)
		return 0;
	int *nr = realloc(c->role, n * sizeof(*nr));
	if (!nr)
		return st_error_set(c->err, ST_ENOMEM, "out of memory");
	c->role = nr;
	int csv = kv_input_format(c->in) != KV_FMT_JSONL;
	for (size_t i = c->nroles; i < n; i++) {
		const char *name = kv_input_colname(c->in, i);
		const struct kv_feature_def *f;
		if (!strcmp(name, c->table->entity_column))
			c->role[i] = ROLE_ENTITY;
		else if (!strcmp(name, c->info->req.ts_column))
			c->role[i] = ROLE_TS;
		else if ((f = kv_table_feature(c->table, name)))
			c->role[i] = (int)(f - c->table->features);
		else
			c->role[i] = ROLE_UNKNOWN;
	}
	if (csv) {
		int has_e = 0, has_t = 0;
		long unknown = -1;
		for (size_t i = 0; i < n; i++) {
			has_e |= c->role[i] == ROLE_ENTITY, has_t |= c->role[i] == ROLE_TS;
			if (c->role[i] == ROLE_UNKNOWN && unknown < 0)
				unknown = (long)i;
		}
		if (has_e && has_t && unknown >= 0)
			return st_error_set(c->err, ST_EINVAL,
					    "%s:1: column '%s' is not a feature of table '%s'",
					    kv_input_path(c->in),
					    kv_input_colname(c->in, (size_t)unknown), c->table->name);
		if (!has_e)
			return st_error_set(c->err, ST_EINVAL, "%s:1: header has no '%s' column",
					    kv_input_path(c->in), c->table->entity_column);
		if (!has_t) /* the ts column's name is an option: say which one */
			return st_error_set(c->err, ST_EINVAL,
					    "%s:1: no ts column '%s'; use --ts-column",
					    kv_input_path(c->in), c->info->req.ts_column);
	}
	c->nroles = n;
	return 0;
}

/* A bad row: fails the job, or is counted and sampled with skip_bad_rows. */
static int bad_row(struct job_ctx *c, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad_row(struct job_ctx *c, size_t line, const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!c->info->req.skip_bad_rows)
		return st_error_set(c->err, ST_EINVAL, "%s:%zu: %s", kv_input_path(c->in), line, why);
	struct kv_jobs *js = c->db->jobs;
	pthread_mutex_lock(&js->lock);
	int64_t k = js->live.bad_rows++;
	pthread_mutex_unlock(&js->lock);
	if (k < KV_JOB_BAD_SAMPLES) { /* the file's base name: the reason is what matters */
		const char *path = kv_input_path(c->in), *base = strrchr(path, '/');
		snprintf(c->info->bad_samples[k], sizeof(c->info->bad_samples[k]), "%.24s:%zu: %.128s",
			 base ? base + 1 : path, line, why);
	}
	return 0;
}

static int on_record(void *arg, struct kv_input *in, const struct kv_record *rec)
{
	struct job_ctx *c = arg;
	int rc = map_columns(c);
	if (rc)
		return rc;
	if (rec->bad)
		return bad_row(c, rec->line, "%s", rec->bad);
	const struct kv_table *t = c->table;
	const char *entity = NULL;
	size_t elen = 0;
	int64_t ts = 0;
	int has_ts = 0;
	size_t nvals = 0;
	for (size_t i = 0; i < t->nfeatures; i++)
		c->vals[i].type = KV_NONE;
	for (size_t i = 0; i < rec->n; i++) {
		int role = c->role[rec->col[i]];
		const char *f = rec->f[i];
		size_t fl = rec->len[i];
		if (role == ROLE_ENTITY) {
			entity = f;
			elen = fl;
		} else if (role == ROLE_TS) {
			if (st_ts_parse(f, fl, c->info->req.ts_unit, &ts)) {
				rc = bad_row(c, rec->line, "bad timestamp '%.*s'", fl > 40 ? 40 : (int)fl, f);
				goto out;
			}
			char why[200];
			if (!c->info->req.allow_any_ts &&
			    st_ts_check_plausible(f, fl, c->info->req.ts_unit, ts, why, sizeof(why))) {
				rc = bad_row(c, rec->line, "%s", why);
				goto out;
			}
			has_ts = 1;
		} else if (role == ROLE_UNKNOWN) {
			rc = bad_row(c, rec->line, "'%s' is not a feature of table '%s'",
				     kv_input_colname(in, rec->col[i]), t->name);
			goto out;
		} else if (fl > 0) {
			struct st_error verr;
			if (kv_value_parse(f, fl, &t->features[role], &c->vals[role], &verr)) {
				rc = bad_row(c, rec->line, "%s", verr.msg);
				goto out;
			}
			nvals++;
		}
	}
	if (!entity || elen == 0 || elen > KV_ENTITY_MAX) {
		rc = bad_row(c, rec->line, "missing or oversized entity in column '%s'",
			     t->entity_column);
		goto out;
	}
	if (!has_ts) {
		rc = bad_row(c, rec->line, "missing timestamp in column '%s'", c->info->req.ts_column);
		goto out;
	}
	int s = kv_shard_of(c->db, entity, elen);
	for (size_t i = 0; i < t->nfeatures && !rc; i++) {
		if (c->vals[i].type == KV_NONE)
			continue;
		char key[KV_KEY_MAX], small[256];
		size_t kl = kv_key_encode(key, t->id, entity, elen, t->features[i].id, ts,
					  c->ingest_us);
		size_t vl = kv_value_encoded_len(&c->vals[i]);
		char *val = vl <= sizeof(small) ? small : malloc(vl);
		if (!val) {
			rc = st_error_set(c->err, ST_ENOMEM, "out of memory");
			break;
		}
		kv_value_encode(&c->vals[i], val);
		rc = buf_add(c, s, key, kl, val, vl);
		if (val != small)
			free(val);
	}
	if (!rc) {
		struct kv_jobs *js = c->db->jobs;
		pthread_mutex_lock(&js->lock);
		js->live.rows++;
		js->live.cells += (int64_t)nvals;
		js->live.bytes_done = kv_input_bytes_read(in);
		int64_t rows = js->live.rows;
		pthread_mutex_unlock(&js->lock);
		if ((rows & 4095) == 0)
			rc = cancelled(c);
	}
out:
	for (size_t i = 0; i < t->nfeatures; i++)
		kv_value_release(&c->vals[i]);
	return rc;
}

/* ---- running a job ---- */

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char path[4400];
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static int run_phases(struct job_ctx *c)
{
	struct kv_db *db = c->db;
	int rc;
	if ((rc = kv_table_get(db, c->info->req.table, &c->table, c->err)))
		return rc;
	c->vals = calloc(c->table->nfeatures, sizeof(*c->vals));
	c->bufs = calloc((size_t)db->nshards, sizeof(*c->bufs));
	if (!c->vals || !c->bufs)
		return st_error_set(c->err, ST_ENOMEM, "out of memory");
	if ((rc = kv_input_open(c->info->req.path, c->info->req.format, &c->in, c->err)))
		return rc;
	pthread_mutex_lock(&db->jobs->lock);
	db->jobs->live.bytes_total = kv_input_bytes_total(c->in);
	pthread_mutex_unlock(&db->jobs->lock);
	set_phase(c, "parse");
	if ((rc = kv_input_run(c->in, on_record, c, c->err)))
		return rc;
	pthread_mutex_lock(&db->jobs->lock);
	db->jobs->live.bytes_done = db->jobs->live.bytes_total;
	pthread_mutex_unlock(&db->jobs->lock);

	set_phase(c, "sort");
	char ***paths = calloc((size_t)db->nshards, sizeof(*paths));
	size_t *npaths = calloc((size_t)db->nshards, sizeof(*npaths));
	if (!paths || !npaths) {
		free(paths);
		free(npaths);
		return st_error_set(c->err, ST_ENOMEM, "out of memory");
	}
	rc = merge_all(c, paths, npaths);
	if (!rc)
		rc = cancelled(c);
	/* The table must still be the one the cells were encoded for. */
	if (!rc) {
		pthread_rwlock_rdlock(&db->reg_lock);
		struct kv_table *t = kv_reg_find(db, c->table->name);
		if (!t || t->id != c->table->id)
			rc = st_error_set(c->err, ST_ENOTFOUND, "table '%s' was dropped during the job",
					  c->table->name);
		pthread_rwlock_unlock(&db->reg_lock);
	}
	if (!rc)
		set_phase(c, "ingest");
	int ingested = 0;
	for (; ingested < db->nshards && !rc; ingested++)
		rc = ingest_shard(c, ingested, paths[ingested], npaths[ingested]);
	if (rc && ingested > 1)
		rollback(c, ingested - 1);
	kv_rcache_bump(db->rcache); /* ingested cells bypass the write path's invalidation */
	for (int s = 0; s < db->nshards; s++) {
		for (size_t i = 0; i < npaths[s]; i++)
			free(paths[s][i]);
		free(paths[s]);
	}
	free(paths);
	free(npaths);
	return rc;
}

static void job_ctx_release(struct job_ctx *c)
{
	for (int s = 0; c->bufs && s < c->db->nshards; s++) {
		for (size_t i = 0; i < c->bufs[s].nchunks; i++)
			free(c->bufs[s].chunks[i]);
		free(c->bufs[s].chunks);
		free(c->bufs[s].chunk_size);
		free(c->bufs[s].ents);
	}
	free(c->bufs);
	free(c->vals);
	free(c->role);
	kv_input_close(c->in);
	kv_table_free(c->table);
	rm_dir(c->dir);
}

/* Runs job `id` to an end state, or leaves it resumable if the store is closing. */
static void run_job(struct kv_db *db, uint64_t id)
{
	struct kv_jobs *js = db->jobs;
	struct st_error err = {0};
	struct kv_job_info info;
	int64_t ingest;
	/* The job is claimed (loaded, checked, made active) under the lock kv_job_cancel holds:
	 * a cancel that landed while the job was still queued is seen here, and a later cancel
	 * finds it active and leaves the record to this runner. */
	pthread_mutex_lock(&js->lock);
	if (job_load(db, id, &info, &ingest, &err) ||
	    (info.state != KV_JOB_QUEUED && info.state != KV_JOB_RUNNING)) {
		pthread_mutex_unlock(&js->lock);
		return;
	}
	if (ST_FAULT("preload.claim.slow"))
		usleep(300000); /* a cancel arriving now must wait for the claim, then win */
	info.state = KV_JOB_RUNNING;
	info.started_us = st_now_us();
	info.attempts++;
	info.rows = info.cells = info.bad_rows = info.bytes_done = 0;
	memset(info.bad_samples, 0, sizeof(info.bad_samples));
	info.error[0] = '\0';
	if (!ingest)
		ingest = kv_next_ingest(db); /* fixed from the first attempt on */
	js->active_id = id;
	js->cancel_active = 0;
	js->live = info;
	pthread_mutex_unlock(&js->lock);
	if (job_save(db, &info, ingest, &err))
		st_error_clear(&err);

	struct job_ctx c = {.db = db, .info = &info, .ingest_us = ingest, .err = &err};
	snprintf(c.dir, sizeof(c.dir), "%s/tmp/job-%llu", db->dir, (unsigned long long)id);
	rm_dir(c.dir); /* leftovers of an interrupted attempt */
	int rc = mkdir(c.dir, 0755) ? st_error_set(&err, ST_EIO, "%s: %s", c.dir, strerror(errno))
				    : run_phases(&c);
	job_ctx_release(&c);

	pthread_mutex_lock(&js->lock);
	info.rows = js->live.rows;
	info.cells = js->live.cells;
	info.bad_rows = js->live.bad_rows;
	info.bytes_done = js->live.bytes_done;
	info.bytes_total = js->live.bytes_total;
	js->active_id = 0;
	pthread_mutex_unlock(&js->lock);
	if (rc == ST_ECLOSED)
		return; /* interrupted by close: stays "running", re-run on the next open */
	info.finished_us = st_now_us();
	info.state = rc == 0 ? KV_JOB_DONE : rc == ST_ECANCELED ? KV_JOB_CANCELLED : KV_JOB_FAILED;
	snprintf(info.phase, sizeof(info.phase), "%s", kv_job_state_name(info.state));
	if (rc == ST_ECANCELED)
		snprintf(info.error, sizeof(info.error), "cancelled");
	else if (rc)
		snprintf(info.error, sizeof(info.error), "%s", err.msg);
	struct st_error serr;
	job_save(db, &info, ingest, &serr);
	if (db->opts.on_job_end)
		db->opts.on_job_end(db->opts.on_job_end_arg, &info);
}

/* Oldest job in state queued or running into *id, 0 if none. None while the store is
 * read-only after a storage failure: a job could neither ingest nor record its end, and would
 * be retried forever; the jobs resume after the restart. A failed read of the job records is
 * an error, not "no job". */
static int next_pending(struct kv_db *db, uint64_t *id, struct st_error *err)
{
	*id = 0;
	if (kv_health(db, NULL))
		return 0;
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->meta, db->ro);
	for (rocksdb_iter_seek(it, "job/", 4); rocksdb_iter_valid(it) && !*id;
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		if (kl < 4 || memcmp(k, "job/", 4))
			break;
		const char *v = rocksdb_iter_value(it, &vl);
		struct kv_job_info j;
		if (job_decode(v, vl, &j, NULL, NULL) == 0 &&
		    (j.state == KV_JOB_QUEUED || j.state == KV_JOB_RUNNING))
			*id = j.id;
	}
	int rc = *id ? 0 : kv_iter_check(it, "reading job records", err);
	rocksdb_iter_destroy(it);
	return rc;
}

int kv_jobs_run_pending(struct kv_db *db, struct st_error *err)
{
	if (db->opts.run_jobs)
		return st_error_set(err, ST_EBUSY, "jobs already run in the background here");
	uint64_t id;
	int rc;
	while (!(rc = next_pending(db, &id, err)) && id) {
		run_job(db, id);
		pthread_mutex_lock(&db->jobs->lock);
		int stop = db->jobs->stopping;
		pthread_mutex_unlock(&db->jobs->lock);
		if (stop)
			break;
	}
	return rc ? rc : kv_check_health(db, err);
}

static void *jobs_main(void *arg)
{
	struct kv_db *db = arg;
	struct kv_jobs *js = db->jobs;
	for (;;) {
		pthread_mutex_lock(&js->lock);
		uint64_t submits = js->submits;
		pthread_mutex_unlock(&js->lock);
		uint64_t id;
		struct st_error err;
		if (next_pending(db, &id, &err)) /* retried at the next submit or restart */
			fprintf(stderr, "strata: preload jobs: %s\n", err.msg);
		if (!id && ST_FAULT("jobs.scan.slow"))
			usleep(300000); /* a job submitted now, after the scan, must still run */
		pthread_mutex_lock(&js->lock);
		if (js->stopping) {
			pthread_mutex_unlock(&js->lock);
			break;
		}
		if (!id) {
			if (js->submits == submits) /* else a job came after the scan: scan again */
				pthread_cond_wait(&js->cond, &js->lock);
			pthread_mutex_unlock(&js->lock);
			continue;
		}
		pthread_mutex_unlock(&js->lock);
		run_job(db, id);
	}
	return NULL;
}

int kv_jobs_init(struct kv_db *db, struct st_error *err)
{
	struct kv_jobs *js = calloc(1, sizeof(*js));
	if (!js)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	pthread_mutex_init(&js->lock, NULL);
	pthread_cond_init(&js->cond, NULL);
	db->jobs = js;
	char *v;
	size_t len;
	int rc = kv_meta_get(db, "next_job_id", &v, &len, err);
	if (rc == ST_ENOTFOUND) {
		js->next_id = 1;
		st_error_clear(err);
	} else if (rc) {
		return rc;
	} else {
		js->next_id = strtoull(v, NULL, 10);
		free(v);
	}
	if (db->opts.run_jobs) {
		if (pthread_create(&js->thread, NULL, jobs_main, db))
			return st_error_set(err, ST_ENOMEM, "cannot start the job thread");
		js->thread_started = 1;
	}
	return 0;
}

void kv_jobs_shutdown(struct kv_db *db)
{
	struct kv_jobs *js = db->jobs;
	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	js->stopping = 1;
	pthread_cond_broadcast(&js->cond);
	pthread_mutex_unlock(&js->lock);
	if (js->thread_started)
		pthread_join(js->thread, NULL);
	pthread_mutex_destroy(&js->lock);
	pthread_cond_destroy(&js->cond);
	free(js);
	db->jobs = NULL;
}
