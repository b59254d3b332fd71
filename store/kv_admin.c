/* Store reports shared by strata-admin (offline, on a data dir) and stratad (online, the
 * `admin` request): statistics and a full verification pass, as JSON documents, so that
 * both forms compute and print the same thing. */
#include "store/kv_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

json_t *kv_stats_json(struct kv_db *db, struct st_error *err)
{
	struct kv_table **ts;
	size_t n;
	if (kv_table_list(db, &ts, &n, err))
		return NULL;
	json_t *tabs = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(tabs, json_string(ts[i]->name));
		kv_table_free(ts[i]);
	}
	free(ts);
	struct kv_job_info *jobs;
	size_t nj = 0;
	int pending = 0, failed = 0;
	if (kv_job_list(db, &jobs, &nj, err)) { /* a failed read is not "no jobs" */
		json_decref(tabs);
		return NULL;
	}
	for (size_t i = 0; i < nj; i++) {
		pending += jobs[i].state == KV_JOB_RUNNING || jobs[i].state == KV_JOB_QUEUED;
		failed += jobs[i].state == KV_JOB_FAILED;
	}
	free(jobs);
	json_t *seqs = json_array();
	for (int s = 0; s < kv_nshards(db); s++)
		json_array_append_new(seqs, json_integer((json_int_t)kv_shard_latest_seq(db, s)));
	return json_pack("{s:i,s:o,s:I,s:I,s:I,s:I,s:i,s:i,s:o}", "shards", kv_nshards(db),
			 "tables", tabs, "keys_estimate",
			 (json_int_t)kv_property_sum(db, "rocksdb.estimate-num-keys"), "sst_bytes",
			 (json_int_t)kv_property_sum(db, "rocksdb.total-sst-files-size"),
			 "memtable_bytes",
			 (json_int_t)kv_property_sum(db, "rocksdb.cur-size-all-mem-tables"), "jobs",
			 (json_int_t)nj, "jobs_pending", pending, "jobs_failed", failed,
			 "latest_sequences", seqs);
}

struct verify_ctx {
	json_int_t versions, tombstones, entities;
	char last[KV_ENTITY_MAX];
	size_t last_len;
	kv_verify_progress_cb progress;
	void *arg;
	json_int_t *total;
};

static int verify_cb(void *arg, const char *e, size_t elen, const struct kv_feature_def *f,
		     const struct kv_version *v)
{
	struct verify_ctx *c = arg;
	if (elen != c->last_len || memcmp(e, c->last, elen)) {
		memcpy(c->last, e, elen);
		c->last_len = elen;
		c->entities++;
	}
	if (v->tombstone)
		c->tombstones++;
	else if (v->r.value.type != f->type)
		return ST_ETYPE;
	c->versions++;
	if ((++*c->total & 0xffff) == 0 && c->progress)
		c->progress(c->arg, (int64_t)*c->total);
	return 0;
}

json_t *kv_verify_json(struct kv_db *db, kv_verify_progress_cb progress, void *arg,
		       struct st_error *err)
{
	struct kv_table **ts;
	size_t n;
	if (kv_table_list(db, &ts, &n, err))
		return NULL;
	json_t *tabs = json_array();
	json_int_t total = 0;
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		struct verify_ctx c = {.progress = progress, .arg = arg, .total = &total};
		struct st_error terr = {0};
		int rc = kv_table_scan(db, ts[i]->name, ST_TS_MAX, verify_cb, &c, &terr);
		json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:b}", "name", ts[i]->name, "entities",
				      c.entities, "versions", c.versions, "tombstones", c.tombstones,
				      "ok", rc == 0);
		if (rc) {
			ok = 0;
			json_object_set_new(o, "error",
					    json_string(rc == ST_ETYPE ? "a value does not match its "
									 "feature's type"
								       : terr.msg));
		}
		json_array_append_new(tabs, o);
		kv_table_free(ts[i]);
	}
	free(ts);
	return json_pack("{s:o,s:I,s:b}", "tables", tabs, "versions", total, "ok", ok);
}
