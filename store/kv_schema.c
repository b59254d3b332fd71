/* Table registry: feature types, schema JSON, and create/get/list/alter/drop persisted in the
 * meta db under "table/<name>". The in-memory copy (db->tables) is what reads and writes use. */
#include "store/kv_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
	[KV_I64] = "i64", [KV_F64] = "f64", [KV_F32] = "f32",
	[KV_STR] = "str", [KV_BYTES] = "bytes",
};

int kv_type_parse(const char *s, enum kv_type *type, uint32_t *dim)
{
	*dim = 0;
	for (int t = KV_I64; t <= KV_BYTES; t++)
		if (!strcmp(s, type_names[t])) {
			*type = (enum kv_type)t;
			return 0;
		}
	if (!strcmp(s, "string")) {
		*type = KV_STR;
		return 0;
	}
	if (!strcmp(s, "i64[]")) {
		*type = KV_I64LIST;
		return 0;
	}
	unsigned long d;
	char tail;
	if (sscanf(s, "f32[%lu%c", &d, &tail) == 2 && tail == ']' &&
	    strlen(s) == (size_t)snprintf(NULL, 0, "f32[%lu]", d) && d >= 1 && d <= KV_DIM_MAX) {
		*type = KV_F32VEC;
		*dim = (uint32_t)d;
		return 0;
	}
	return ST_EINVAL;
}

const char *kv_type_name(enum kv_type type, uint32_t dim, char *buf, size_t n)
{
	if (type >= KV_I64 && type <= KV_BYTES)
		snprintf(buf, n, "%s", type_names[type]);
	else if (type == KV_F32VEC)
		snprintf(buf, n, "f32[%u]", dim);
	else if (type == KV_I64LIST)
		snprintf(buf, n, "i64[]");
	else
		snprintf(buf, n, "none");
	return buf;
}

void kv_table_free(struct kv_table *t)
{
	if (!t)
		return;
	free(t->features);
	free(t);
}

const struct kv_feature_def *kv_table_feature(const struct kv_table *t, const char *name)
{
	for (uint32_t i = 0; i < t->nfeatures; i++)
		if (!strcmp(t->features[i].name, name))
			return &t->features[i];
	return NULL;
}

int64_t kv_feature_ttl(const struct kv_table *t, const struct kv_feature_def *f)
{
	if (f->ttl_us == KV_TTL_NONE)
		return 0;
	return f->ttl_us > 0 ? f->ttl_us : t->ttl_us;
}

int64_t kv_table_horizon(const struct kv_table *t, int64_t now)
{
	int64_t h = t->retention_us > 0 ? kv_sat_sub(now, t->retention_us) : ST_TS_MIN;
	return h > t->horizon_floor_us ? h : t->horizon_floor_us;
}

struct kv_table *kv_table_dup(const struct kv_table *t)
{
	struct kv_table *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	*c = *t;
	c->features = calloc(t->nfeatures ? t->nfeatures : 1, sizeof(*c->features));
	if (!c->features) {
		free(c);
		return NULL;
	}
	if (t->nfeatures)
		memcpy(c->features, t->features, t->nfeatures * sizeof(*c->features));
	return c;
}

char *kv_table_to_json(const struct kv_table *t)
{
	json_t *feats = json_array();
	char tn[32];
	for (uint32_t i = 0; i < t->nfeatures; i++) {
		const struct kv_feature_def *f = &t->features[i];
		json_t *fo = json_pack("{s:s,s:s,s:i}", "name", f->name, "type",
				       kv_type_name(f->type, f->dim, tn, sizeof(tn)), "id",
				       (json_int_t)f->id);
		if (f->ttl_us)
			json_object_set_new(fo, "ttl_us", json_integer(f->ttl_us));
		json_array_append_new(feats, fo);
	}
	json_t *floor = t->horizon_floor_us != ST_TS_MIN ? json_integer(t->horizon_floor_us) : NULL;
	json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "name", t->name,
			      "entity_column", t->entity_column, "id", (json_int_t)t->id, "ttl_us",
			      (json_int_t)t->ttl_us, "max_versions", (json_int_t)t->max_versions,
			      "retention_us", (json_int_t)t->retention_us, "created_us",
			      (json_int_t)t->created_us, "features", feats);
	if (floor)
		json_object_set_new(o, "horizon_floor_us", floor);
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

int kv_table_from_json(const char *s, size_t len, struct kv_table **out, struct st_error *err)
{
	json_error_t je;
	json_t *o = json_loadb(s, len, 0, &je);
	struct kv_table *t = NULL;
	if (!o)
		return st_error_set(err, ST_ECORRUPT, "table record: %s", je.text);
	const char *name, *ecol;
	json_int_t id, ttl, maxv, created, retention = 0, floor = ST_TS_MIN;
	json_t *feats;
	/* retention_us is absent in records written before it existed: keep forever */
	if (json_unpack_ex(o, &je, 0, "{s:s,s:s,s:I,s:I,s:I,s?I,s:I,s:o}", "name", &name,
			   "entity_column", &ecol, "id", &id, "ttl_us", &ttl, "max_versions", &maxv,
			   "retention_us", &retention, "created_us", &created, "features", &feats) ||
	    json_unpack_ex(o, &je, 0, "{s?I}", "horizon_floor_us", &floor) ||
	    !json_is_array(feats)) {
		json_decref(o);
		return st_error_set(err, ST_ECORRUPT, "table record: %s", je.text);
	}
	t = calloc(1, sizeof(*t));
	size_t nf = json_array_size(feats);
	if (!t || !(t->features = calloc(nf ? nf : 1, sizeof(*t->features))))
		goto nomem;
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->entity_column, sizeof(t->entity_column), "%s", ecol);
	t->id = (uint32_t)id;
	t->ttl_us = ttl;
	t->max_versions = (uint32_t)maxv;
	t->retention_us = retention;
	t->horizon_floor_us = floor;
	t->created_us = created;
	t->nfeatures = (uint32_t)nf;
	for (size_t i = 0; i < nf; i++) {
		const char *fname, *ftype;
		json_int_t fid, fttl = 0;
		struct kv_feature_def *f = &t->features[i];
		if (json_unpack(json_array_get(feats, i), "{s:s,s:s,s:I,s?I}", "name", &fname, "type",
				&ftype, "id", &fid, "ttl_us", &fttl) ||
		    kv_type_parse(ftype, &f->type, &f->dim)) {
			st_error_set(err, ST_ECORRUPT, "table record '%s': bad feature %zu", name, i);
			goto fail;
		}
		snprintf(f->name, sizeof(f->name), "%s", fname);
		f->id = (uint16_t)fid;
		f->ttl_us = fttl;
	}
	json_decref(o);
	*out = t;
	return 0;
nomem:
	st_error_set(err, ST_ENOMEM, "out of memory");
fail:
	kv_table_free(t);
	json_decref(o);
	return err ? err->code : ST_ECORRUPT;
}

struct kv_table *kv_reg_find(struct kv_db *db, const char *name)
{
	for (size_t i = 0; i < db->ntables; i++)
		if (!strcmp(db->tables[i]->name, name))
			return db->tables[i];
	return NULL;
}

struct kv_table *kv_reg_find_err(struct kv_db *db, const char *name, struct st_error *err)
{
	struct kv_table *t = kv_reg_find(db, name);
	if (!t)
		st_error_set(err, ST_ENOTFOUND, "no such table '%s'", name);
	return t;
}

/* Makes sure ret[] can be indexed by id; caller holds reg_lock for writing. */
static int ret_reserve(struct kv_db *db, uint32_t id)
{
	if (id < db->ret_cap)
		return 0;
	uint32_t nc = db->ret_cap ? db->ret_cap : 64;
	while (nc <= id)
		nc *= 2;
	struct kv_retention *nr = realloc(db->ret, nc * sizeof(*nr));
	if (!nr)
		return ST_ENOMEM;
	memset(nr + db->ret_cap, 0, (nc - db->ret_cap) * sizeof(*nr));
	db->ret = nr;
	db->ret_cap = nc;
	return 0;
}

/* Installs t (owned) in the in-memory registry, replacing a table of the same name.
 * Caller holds reg_lock for writing. */
static int reg_install(struct kv_db *db, struct kv_table *t)
{
	if (ret_reserve(db, t->id))
		return ST_ENOMEM;
	db->ret[t->id] = (struct kv_retention){1, t};
	for (size_t i = 0; i < db->ntables; i++)
		if (!strcmp(db->tables[i]->name, t->name)) {
			kv_table_free(db->tables[i]);
			db->tables[i] = t;
			return 0;
		}
	struct kv_table **nt = realloc(db->tables, (db->ntables + 1) * sizeof(*nt));
	if (!nt)
		return ST_ENOMEM;
	db->tables = nt;
	db->tables[db->ntables++] = t;
	return 0;
}

static void reg_remove(struct kv_db *db, const char *name)
{
	for (size_t i = 0; i < db->ntables; i++)
		if (!strcmp(db->tables[i]->name, name)) {
			db->ret[db->tables[i]->id].live = 0;
			kv_table_free(db->tables[i]);
			db->tables[i] = db->tables[--db->ntables];
			return;
		}
}

void kv_reg_free(struct kv_db *db)
{
	for (size_t i = 0; i < db->ntables; i++)
		kv_table_free(db->tables[i]);
	free(db->tables);
	free(db->ret);
	db->tables = NULL;
	db->ret = NULL;
	db->ntables = 0;
	db->ret_cap = 0;
}

int kv_reg_load(struct kv_db *db, struct st_error *err)
{
	char *v;
	size_t vlen;
	int rc = kv_meta_get(db, "reg_version", &v, &vlen, err);
	if (rc && rc != ST_ENOTFOUND)
		return rc;
	if (!rc) {
		db->reg_version = strtoull(v, NULL, 10);
		free(v);
	}
	rc = kv_meta_get(db, "next_table_id", &v, &vlen, err);
	if (rc == ST_ENOTFOUND) {
		db->next_table_id = 1;
	} else if (rc) {
		return rc;
	} else {
		db->next_table_id = (uint32_t)strtoul(v, NULL, 10);
		free(v);
	}
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->meta, db->ro);
	const char *pre = "table/";
	rc = 0;
	for (rocksdb_iter_seek(it, pre, strlen(pre)); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		if (kl < strlen(pre) || memcmp(k, pre, strlen(pre)))
			break;
		const char *val = rocksdb_iter_value(it, &vl);
		struct kv_table *t;
		if ((rc = kv_table_from_json(val, vl, &t, err)))
			break;
		if ((rc = reg_install(db, t))) {
			kv_table_free(t);
			st_error_set(err, rc, "out of memory");
			break;
		}
	}
	if (!rc)
		rc = kv_iter_check(it, "reading the table registry", err);
	rocksdb_iter_destroy(it);
	return rc;
}

static int valid_name(const char *s)
{
	if (!*s || strlen(s) >= KV_NAME_MAX)
		return 0;
	for (const char *p = s; *p; p++)
		if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			return 0;
	return 1;
}

/* Validates features to add to t (names unique, types known) and assigns ids. */
static int add_features(struct kv_table *t, const struct kv_feature_def *add, uint32_t nadd,
			struct st_error *err)
{
	uint16_t next_id = 1;
	for (uint32_t i = 0; i < t->nfeatures; i++)
		if (t->features[i].id >= next_id)
			next_id = (uint16_t)(t->features[i].id + 1);
	if ((size_t)t->nfeatures + nadd > 65000)
		return st_error_set(err, ST_ELIMIT, "too many features");
	struct kv_feature_def *nf = realloc(t->features, (t->nfeatures + nadd + 1) * sizeof(*nf));
	if (!nf)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	t->features = nf;
	for (uint32_t i = 0; i < nadd; i++) {
		const struct kv_feature_def *a = &add[i];
		if (!valid_name(a->name))
			return st_error_set(err, ST_EINVAL,
					    "bad feature name '%s' (letters, digits, _ - . only)",
					    a->name);
		if (kv_table_feature(t, a->name))
			return st_error_set(err, ST_EEXIST, "feature '%s' already exists in '%s'",
					    a->name, t->name);
		if (!strcmp(a->name, t->entity_column))
			return st_error_set(err, ST_EINVAL,
					    "feature '%s' has the entity column's name", a->name);
		if (a->ttl_us < 0 && a->ttl_us != KV_TTL_NONE)
			return st_error_set(err, ST_EINVAL, "feature '%s' has a negative ttl", a->name);
		if (a->type < KV_I64 || a->type > KV_I64LIST ||
		    (a->type == KV_F32VEC && (a->dim < 1 || a->dim > KV_DIM_MAX)))
			return st_error_set(err, ST_EINVAL, "feature '%s' has a bad type", a->name);
		struct kv_feature_def *f = &t->features[t->nfeatures++];
		*f = *a;
		if (f->type != KV_F32VEC)
			f->dim = 0;
		f->id = next_id++;
	}
	return 0;
}

/* Persists t under "table/<name>". Caller holds meta_lock. */
static int reg_persist(struct kv_db *db, const struct kv_table *t, struct st_error *err)
{
	char key[KV_NAME_MAX + 8];
	snprintf(key, sizeof(key), "table/%s", t->name);
	char *js = kv_table_to_json(t);
	if (!js)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	int rc = kv_meta_put(db, key, js, strlen(js), err);
	free(js);
	return rc;
}

int kv_table_create(struct kv_db *db, const struct kv_table *schema, struct st_error *err)
{
	if (!valid_name(schema->name))
		return st_error_set(err, ST_EINVAL,
				    "bad table name '%s' (1-63 of letters, digits, _ - .)",
				    schema->name);
	if (schema->ttl_us < 0)
		return st_error_set(err, ST_EINVAL, "ttl must not be negative");
	if (schema->retention_us < 0)
		return st_error_set(err, ST_EINVAL, "retention must not be negative");
	struct kv_table *t = calloc(1, sizeof(*t));
	if (!t)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	snprintf(t->name, sizeof(t->name), "%s", schema->name);
	snprintf(t->entity_column, sizeof(t->entity_column), "%s",
		 schema->entity_column[0] ? schema->entity_column : "entity");
	t->ttl_us = schema->ttl_us;
	t->max_versions = schema->max_versions;
	t->retention_us = schema->retention_us;
	t->horizon_floor_us = ST_TS_MIN;
	t->created_us = kv_now(db);
	int rc = 0;
	if (!valid_name(t->entity_column)) {
		rc = st_error_set(err, ST_EINVAL, "bad entity column name '%s'", t->entity_column);
		goto out_free;
	}
	if (schema->nfeatures == 0) {
		rc = st_error_set(err, ST_EINVAL, "table '%s' needs at least one feature", t->name);
		goto out_free;
	}
	if ((rc = add_features(t, schema->features, schema->nfeatures, err)))
		goto out_free;

	pthread_mutex_lock(&db->meta_lock);
	if ((rc = kv_reg_writable(db, err)))
		goto out_unlock;
	pthread_rwlock_rdlock(&db->reg_lock);
	int exists = kv_reg_find(db, t->name) != NULL;
	pthread_rwlock_unlock(&db->reg_lock);
	if (exists) {
		rc = st_error_set(err, ST_EEXIST, "table '%s' already exists", t->name);
		goto out_unlock;
	}
	t->id = db->next_table_id;
	char idbuf[16];
	int n = snprintf(idbuf, sizeof(idbuf), "%u", t->id + 1);
	/* The id counter is written first: a crash in between wastes an id, never reuses one. */
	if ((rc = kv_meta_put(db, "next_table_id", idbuf, (size_t)n, err)))
		goto out_unlock;
	db->next_table_id = t->id + 1;
	if ((rc = reg_persist(db, t, err)))
		goto out_unlock;
	pthread_rwlock_wrlock(&db->reg_lock);
	rc = reg_install(db, t);
	pthread_rwlock_unlock(&db->reg_lock);
	if (rc) {
		pthread_mutex_unlock(&db->meta_lock);
		return st_error_set(err, rc, "out of memory");
	}
	rc = kv_reg_bump(db, err);
	pthread_mutex_unlock(&db->meta_lock);
	return rc;
out_unlock:
	pthread_mutex_unlock(&db->meta_lock);
out_free:
	kv_table_free(t);
	return rc;
}

int kv_table_get(struct kv_db *db, const char *name, struct kv_table **out, struct st_error *err)
{
	int rc = 0;
	pthread_rwlock_rdlock(&db->reg_lock);
	struct kv_table *t = kv_reg_find_err(db, name, err);
	if (!t)
		rc = ST_ENOTFOUND;
	else if (!(*out = kv_table_dup(t)))
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
	pthread_rwlock_unlock(&db->reg_lock);
	return rc;
}

static int cmp_table_name(const void *a, const void *b)
{
	return strcmp((*(struct kv_table *const *)a)->name, (*(struct kv_table *const *)b)->name);
}

int kv_table_list(struct kv_db *db, struct kv_table ***out, size_t *n, struct st_error *err)
{
	pthread_rwlock_rdlock(&db->reg_lock);
	struct kv_table **arr = calloc(db->ntables + 1, sizeof(*arr));
	size_t k = 0;
	for (; arr && k < db->ntables; k++)
		if (!(arr[k] = kv_table_dup(db->tables[k])))
			break;
	pthread_rwlock_unlock(&db->reg_lock);
	if (!arr || k < db->ntables) {
		for (size_t i = 0; arr && i < k; i++)
			kv_table_free(arr[i]);
		free(arr);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	qsort(arr, k, sizeof(*arr), cmp_table_name);
	*out = arr;
	*n = k;
	return 0;
}

int kv_table_alter(struct kv_db *db, const char *name, const struct kv_alter *a,
		   struct st_error *err)
{
	int rc;
	struct kv_table *t = NULL;
	pthread_mutex_lock(&db->meta_lock);
	if ((rc = kv_reg_writable(db, err)))
		goto out;
	pthread_rwlock_rdlock(&db->reg_lock);
	struct kv_table *cur = kv_reg_find_err(db, name, err);
	if (cur)
		t = kv_table_dup(cur);
	pthread_rwlock_unlock(&db->reg_lock);
	if (!cur) {
		rc = ST_ENOTFOUND;
		goto out;
	}
	if (!t) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if (a->ttl_us >= 0)
		t->ttl_us = a->ttl_us;
	if (a->retention_us >= 0) {
		/* what the old retention may already have removed stays refused */
		t->horizon_floor_us = kv_table_horizon(t, kv_now(db));
		t->retention_us = a->retention_us;
	}
	if (a->max_versions >= 0) {
		if (a->max_versions > UINT32_MAX) {
			rc = st_error_set(err, ST_EINVAL, "max_versions too large");
			goto out;
		}
		t->max_versions = (uint32_t)a->max_versions;
	}
	if ((rc = add_features(t, a->add, a->nadd, err)))
		goto out;
	if ((rc = reg_persist(db, t, err)))
		goto out;
	pthread_rwlock_wrlock(&db->reg_lock);
	rc = reg_install(db, t);
	pthread_rwlock_unlock(&db->reg_lock);
	kv_rcache_bump(db->rcache); /* cached rows have the old feature list and ttl */
	if (rc) {
		rc = st_error_set(err, rc, "out of memory");
		goto out;
	}
	t = NULL;
	rc = kv_reg_bump(db, err);
out:
	pthread_mutex_unlock(&db->meta_lock);
	kv_table_free(t);
	return rc;
}

int kv_table_drop(struct kv_db *db, const char *name, struct st_error *err)
{
	int rc = 0;
	char key[KV_NAME_MAX + 8];
	pthread_mutex_lock(&db->meta_lock);
	if ((rc = kv_reg_writable(db, err)))
		goto out;
	pthread_rwlock_rdlock(&db->reg_lock);
	struct kv_table *t = kv_reg_find_err(db, name, err);
	uint32_t id = t ? t->id : 0;
	pthread_rwlock_unlock(&db->reg_lock);
	if (!t) {
		rc = ST_ENOTFOUND;
		goto out;
	}
	/* Registry first (the table disappears at once), then the data: a crash in between
	 * leaves unreachable cells that the compaction filter drops (id < next_table_id). */
	snprintf(key, sizeof(key), "table/%s", name);
	if ((rc = kv_meta_delete(db, key, err)))
		goto out;
	pthread_rwlock_wrlock(&db->reg_lock);
	reg_remove(db, name);
	pthread_rwlock_unlock(&db->reg_lock);
	kv_rcache_bump(db->rcache);
	if ((rc = kv_reg_bump(db, err)))
		goto out;
	char lo[4], hi[4];
	kv_key_table_prefix(lo, id);
	kv_key_table_prefix(hi, id + 1);
	for (int s = 0; s < db->nshards; s++) {
		rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
		rocksdb_writebatch_delete_range(wb, lo, 4, hi, 4);
		rc = kv_shard_write(db, s, wb, err);
		rocksdb_writebatch_destroy(wb);
		if (rc)
			goto out;
	}
out:
	pthread_mutex_unlock(&db->meta_lock);
	return rc;
}

/* ---- the registry on replicas ---- */

int kv_reg_writable(struct kv_db *db, struct st_error *err)
{
	if (db->reg_follower)
		return st_error_set(err, ST_EBUSY, "%s", db->reg_follower);
	return kv_check_health(db, err); /* read-only after a storage failure */
}

static int put_version(struct kv_db *db, uint64_t v, struct st_error *err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	int rc = kv_meta_put(db, "reg_version", buf, (size_t)n, err);
	if (!rc)
		db->reg_version = v;
	return rc;
}

int kv_reg_bump(struct kv_db *db, struct st_error *err)
{
	return put_version(db, db->reg_version + 1, err);
}

void kv_set_registry_follower(struct kv_db *db, const char *why)
{
	pthread_mutex_lock(&db->meta_lock);
	free(db->reg_follower);
	db->reg_follower = why ? strdup(why) : NULL;
	pthread_mutex_unlock(&db->meta_lock);
}

uint64_t kv_registry_version(struct kv_db *db)
{
	pthread_mutex_lock(&db->meta_lock);
	uint64_t v = db->reg_version;
	pthread_mutex_unlock(&db->meta_lock);
	return v;
}

int kv_registry_export(struct kv_db *db, char **json, uint64_t *version, struct st_error *err)
{
	json_t *arr = json_array(), *o = NULL;
	pthread_mutex_lock(&db->meta_lock);
	pthread_rwlock_rdlock(&db->reg_lock);
	int rc = arr ? 0 : ST_ENOMEM;
	for (size_t i = 0; i < db->ntables && !rc; i++) {
		char *js = kv_table_to_json(db->tables[i]);
		json_t *t = js ? json_loads(js, 0, NULL) : NULL;
		free(js);
		rc = t && json_array_append_new(arr, t) == 0 ? 0 : ST_ENOMEM;
	}
	*version = db->reg_version;
	if (!rc)
		o = json_pack("{s:I,s:I,s:O}", "version", (json_int_t)db->reg_version,
			      "next_table_id", (json_int_t)db->next_table_id, "tables", arr);
	pthread_rwlock_unlock(&db->reg_lock);
	pthread_mutex_unlock(&db->meta_lock);
	json_decref(arr);
	*json = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!*json)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	return 0;
}

/* Parses an exported registry into tables (owned) and its counters. */
static int reg_parse(const char *js, size_t len, uint64_t *version, uint32_t *next_id,
		     struct kv_table ***tables, size_t *n, struct st_error *err)
{
	json_error_t je;
	json_t *o = json_loadb(js, len, 0, &je), *arr;
	json_int_t v, nid;
	*tables = NULL;
	*n = 0;
	if (!o || json_unpack(o, "{s:I,s:I,s:o}", "version", &v, "next_table_id", &nid,
			      "tables", &arr) || !json_is_array(arr) || v < 0 || nid < 1 ||
	    nid > UINT32_MAX) {
		json_decref(o);
		return st_error_set(err, ST_EPROTO, "malformed registry document");
	}
	*version = (uint64_t)v;
	*next_id = (uint32_t)nid;
	*tables = calloc(json_array_size(arr) + 1, sizeof(**tables));
	int rc = *tables ? 0 : st_error_set(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < json_array_size(arr) && !rc; i++) {
		char *s = json_dumps(json_array_get(arr, i), JSON_COMPACT);
		rc = s ? kv_table_from_json(s, strlen(s), &(*tables)[*n], err)
		       : st_error_set(err, ST_ENOMEM, "out of memory");
		free(s);
		if (!rc && (*tables)[*n]->id >= *next_id)
			rc = st_error_set(err, ST_EPROTO, "registry: table id beyond next id");
		if (!rc)
			(*n)++;
	}
	json_decref(o);
	return rc;
}

int kv_registry_install(struct kv_db *db, const char *json, size_t len, struct st_error *err)
{
	struct kv_table **ts;
	size_t n;
	uint64_t version = 0;
	uint32_t next_id = 0;
	int rc = reg_parse(json, len, &version, &next_id, &ts, &n, err);
	pthread_mutex_lock(&db->meta_lock);
	if (rc || version <= db->reg_version)
		goto out;
	char key[KV_NAME_MAX + 8], idbuf[16];
	/* tables that are gone: registry record first, as kv_table_drop does (their data goes
	 * with the primary's replicated delete) */
	for (size_t i = 0; i < db->ntables && !rc; i++) {
		size_t j = 0;
		while (j < n && strcmp(ts[j]->name, db->tables[i]->name))
			j++;
		if (j < n)
			continue;
		snprintf(key, sizeof(key), "table/%s", db->tables[i]->name);
		if ((rc = kv_meta_delete(db, key, err)))
			break;
		pthread_rwlock_wrlock(&db->reg_lock);
		reg_remove(db, db->tables[i]->name);
		pthread_rwlock_unlock(&db->reg_lock);
		i--; /* reg_remove moved the last table here */
	}
	int m = snprintf(idbuf, sizeof(idbuf), "%u", next_id);
	if (!rc && next_id > db->next_table_id &&
	    !(rc = kv_meta_put(db, "next_table_id", idbuf, (size_t)m, err)))
		db->next_table_id = next_id;
	for (size_t j = 0; j < n && !rc; j++) {
		if ((rc = reg_persist(db, ts[j], err)))
			break;
		pthread_rwlock_wrlock(&db->reg_lock);
		rc = reg_install(db, ts[j]);
		pthread_rwlock_unlock(&db->reg_lock);
		if (rc)
			rc = st_error_set(err, rc, "out of memory");
		else
			ts[j] = NULL;
	}
	if (!rc && !(rc = put_version(db, version, err)))
		rc = 1;
	kv_rcache_bump(db->rcache);
out:
	pthread_mutex_unlock(&db->meta_lock);
	for (size_t j = 0; j < n; j++)
		kv_table_free(ts[j]);
	free(ts);
	return rc;
}
