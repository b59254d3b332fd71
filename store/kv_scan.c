/* Version scanner (see kv_scan.h). */
#include "store/kv_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_fault.h"

void kv_scan_init(struct kv_scan *s, rocksdb_iterator_t *it, const struct kv_rules *rules)
{
	memset(s, 0, sizeof(*s));
	s->it = it;
	s->rules = rules;
}

void kv_scan_release(struct kv_scan *s)
{
	free(s->val);
	s->val = NULL;
	s->vcap = 0;
}

static int keep_value(struct kv_scan *s, const char *v, size_t len)
{
	if (len > s->vcap) {
		size_t nc = len < 64 ? 64 : len;
		char *nv = ST_FAULT("scan.nomem") ? NULL : realloc(s->val, nc);
		if (!nv)
			return ST_ENOMEM;
		s->val = nv;
		s->vcap = nc;
	}
	memcpy(s->val, v, len);
	s->vlen = len;
	return 0;
}

/* Ends the walk with a sticky error. */
static void scan_fail(struct kv_scan *s, int code)
{
	if (!s->err)
		s->err = code;
	s->valid = 0;
}

/* An iterator that stops being valid has either reached the end or failed: tell which. */
static void check_iter_end(struct kv_scan *s)
{
	struct st_error e;
	if (!kv_iter_check(s->it, "RocksDB", &e))
		return;
	if (!s->err)
		snprintf(s->why, sizeof(s->why), "%.*s", (int)sizeof(s->why) - 1, e.msg);
	scan_fail(s, ST_EIO);
}

/* Loads the group at the iterator position: all writes with the same event time. Leaves the
 * iterator on the first write of the next group. */
static void load_group(struct kv_scan *s)
{
	s->valid = 0;
	s->has = 0;
	if (s->err)
		return;
	if (ST_FAULT("iter.error")) { /* as if the storage failed under this read */
		scan_fail(s, ST_EIO);
		return;
	}
	int first = 1;
	while (rocksdb_iter_valid(s->it)) {
		size_t kl;
		const char *k = rocksdb_iter_key(s->it, &kl);
		if (kl != s->plen + 16 || memcmp(k, s->prefix, s->plen))
			return;
		int64_t ts = kv_u64_to_ts(kv_get_be64(k + s->plen));
		if (first) {
			s->valid = 1;
			s->ts = ts;
			s->rank++;
			first = 0;
		} else if (ts != s->ts) {
			return;
		}
		if (!s->has) {
			int64_t ingest = kv_u64_to_ts(kv_get_be64(k + s->plen + 8));
			if (ingest <= s->rules->known_at) {
				size_t vl;
				const char *v = rocksdb_iter_value(s->it, &vl);
				if (keep_value(s, v, vl)) {
					scan_fail(s, ST_ENOMEM);
					return;
				}
				s->has = 1;
				s->ingest = ingest;
				s->tombstone = vl == 1 && (unsigned char)v[0] == KV_TOMBSTONE;
			}
		}
		rocksdb_iter_next(s->it);
	}
	/* The group so far is complete only if the iterator ended cleanly. */
	check_iter_end(s);
}

/* Reads usually move forward a few keys at a time (the next feature of the same entity, the
 * next entity of a sorted join): a few Next() calls are much cheaper than a Seek(). Returns 1
 * if the iterator now sits on the first key >= target. In prefix (entity) mode the iterator
 * is only defined within the entity it was last sought in: a Seek() positions only the
 * sources (memtables, SST files) whose prefix filter may hold that entity, so a Next() that
 * leaves the entity lands on a key of a partial view, from which the newest versions of the
 * next entity (say, in the memtable while older ones are in an SST file) may be missing. So
 * in that mode it may only step inside the entity of its last real seek (can_step). An
 * invalid iterator is left for load_group to tell end from failure.
 *
 * `behind`: every key before the iterator's position is known to be < target. Since the
 * scanner only ever moves the iterator by a seek to its previous target and by steps over
 * keys of its previous prefix, that holds when the previous prefix sorts before the new
 * target (a sorted sweep: the next feature, the next entity). Then an iterator already at or
 * past the target sits exactly on the first key >= target: no seek is needed. (A join's
 * features are swept in the caller's order, not fid order, and so on: only then it seeks.) */
#define STEP_BUDGET 12

static int can_step(const struct kv_scan *s, const char *target)
{
	size_t elen_end = 6 + kv_get_be16(target + 4); /* table | elen | entity */
	return s->total_order || (s->seek_it == s->it && s->seek_elen == elen_end &&
				  !memcmp(s->seek_ent, target, elen_end));
}

static int step_to(struct kv_scan *s, const char *target, size_t tlen, int behind)
{
	if (!rocksdb_iter_valid(s->it))
		return 0;
	size_t elen_end = 6 + kv_get_be16(target + 4); /* table | elen | entity */
	for (int i = 0; i < STEP_BUDGET; i++) {
		size_t kl;
		const char *k = rocksdb_iter_key(s->it, &kl);
		if (!s->total_order && (kl < elen_end || memcmp(k, target, elen_end)))
			return 0;
		int c = memcmp(k, target, kl < tlen ? kl : tlen);
		/* At or past the target: the first key >= target if we stepped to it or
		 * everything before is known to be smaller; otherwise an earlier key may also be
		 * >= target, and only a seek can tell. */
		if (c > 0 || (c == 0 && kl >= tlen))
			return i > 0 || behind;
		rocksdb_iter_next(s->it);
		if (!rocksdb_iter_valid(s->it))
			return 1; /* nothing >= target (or a failure load_group reports) */
	}
	return 0;
}

void kv_scan_seek(struct kv_scan *s, uint32_t table_id, const char *entity, size_t elen,
		  uint16_t fid, int64_t ttl_us, int64_t start)
{
	char key[KV_KEY_MAX];
	size_t plen = kv_key_feature_prefix(key, table_id, entity, elen, fid);
	/* the previous prefix (if any) sorts before the new one: see step_to */
	size_t m = s->plen < plen ? s->plen : plen;
	int c = s->plen && s->prefix_it == s->it ? memcmp(s->prefix, key, m) : 1;
	int behind = c < 0 || (c == 0 && s->plen < plen);
	memcpy(s->prefix, key, plen);
	s->plen = plen;
	s->prefix_it = s->it;
	s->ttl_us = ttl_us;
	/* Ranks need the walk to start at the newest version. */
	int64_t from = s->rules->max_versions ? ST_TS_MAX : start;
	kv_put_be64(key + s->plen, kv_ts_to_u64(from));
	s->rank = 0;
	if (!can_step(s, key) || !step_to(s, key, s->plen + 8, behind)) {
		rocksdb_iter_seek(s->it, key, s->plen + 8);
		s->seek_it = s->it;
		s->seek_elen = 6 + elen;
		memcpy(s->seek_ent, key, s->seek_elen);
	}
	load_group(s);
}

void kv_scan_next(struct kv_scan *s)
{
	if (s->valid)
		load_group(s);
}

int kv_scan_alive(const struct kv_scan *s)
{
	const struct kv_rules *r = s->rules;
	if (!s->valid)
		return 0;
	return !r->max_versions || s->rank <= r->max_versions;
}

int kv_scan_asof(struct kv_scan *s, int64_t T, struct kv_result *r)
{
	memset(r, 0, sizeof(*r));
	while (kv_scan_alive(s) && (s->ts > T || !s->has))
		kv_scan_next(s);
	if (s->err)
		return s->err;
	if (!kv_scan_alive(s) || s->tombstone)
		return 0;
	int64_t at = T == ST_TS_MAX ? s->rules->now : T;
	if (kv_result_stamp(r, s->ttl_us, s->rules->horizon, at, s->ts, s->ingest) != KV_PRESENT)
		return 0;
	int rc = kv_value_decode(s->val, s->vlen, &r->value);
	if (rc < 0) {
		r->status = KV_ABSENT;
		return rc;
	}
	ST_ASSERT(rc == 0);
	r->found = 1;
	return 0;
}

int64_t kv_scan_history_start(const struct kv_scan *s, int64_t to)
{
	/* Below the horizon only the version in effect at H may be listed, and it may be newer
	 * than `to`: start no lower than H to find it. */
	return to < s->rules->horizon ? s->rules->horizon : to;
}

int kv_scan_history(struct kv_scan *s, int64_t from, int64_t to, kv_hist_cb cb, void *arg)
{
	int64_t H = s->rules->horizon;
	for (; kv_scan_alive(s) && s->ts >= from; kv_scan_next(s)) {
		if (!s->has)
			continue;
		if (H != ST_TS_MIN && s->ts <= H) {
			if (s->ts <= to && !s->tombstone &&
			    kv_freshness(s->ttl_us, H, H, s->ts) == KV_PRESENT) {
				int rc = cb(arg, s);
				if (rc)
					return rc;
			}
			break;
		}
		if (s->ts > to)
			continue;
		int rc = cb(arg, s);
		if (rc)
			return rc;
	}
	return s->err;
}

int kv_scan_version(const struct kv_scan *s, struct kv_version *v)
{
	memset(v, 0, sizeof(*v));
	v->tombstone = s->tombstone;
	v->r.ts = s->ts;
	v->r.ingest_us = s->ingest;
	if (s->tombstone)
		return 0;
	int rc = kv_value_decode(s->val, s->vlen, &v->r.value);
	if (rc) /* ST_ENOMEM stays itself: out of memory is not corruption */
		return rc < 0 ? rc : ST_ECORRUPT;
	v->r.found = 1;
	v->r.status = KV_PRESENT;
	return 0;
}

int kv_scan_error(struct st_error *err, const struct kv_scan *s, int rc, int shard,
		  const char *what, const char *entity, size_t elen)
{
	const char *why = rc == ST_EIO	    ? "storage read failed"
			  : rc == ST_ENOMEM ? "out of memory in the version scanner"
					    : "corrupt value";
	const char *reason = rc == ST_EIO && s->why[0] ? s->why : "";
	return st_error_set(err, rc, "%s: %s in shard %d at entity '%.*s'%s%s", what, why, shard,
			    (int)(elen > 64 ? 64 : elen), entity, *reason ? ": " : "", reason);
}
