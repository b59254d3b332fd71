/* Version scanner (see kv_scan.h). */
#include "store/kv_scan.h"

#include <stdlib.h>
#include <string.h>

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
		char *nv = realloc(s->val, nc);
		if (!nv)
			return ST_ENOMEM;
		s->val = nv;
		s->vcap = nc;
	}
	memcpy(s->val, v, len);
	s->vlen = len;
	return 0;
}

/* Loads the group at the iterator position: all writes with the same event time. Leaves the
 * iterator on the first write of the next group. */
static void load_group(struct kv_scan *s)
{
	s->valid = 0;
	s->has = 0;
	int first = 1;
	while (rocksdb_iter_valid(s->it)) {
		size_t kl;
		const char *k = rocksdb_iter_key(s->it, &kl);
		if (kl != s->plen + 16 || memcmp(k, s->prefix, s->plen))
			break;
		int64_t ts = kv_u64_to_ts(kv_get_be64(k + s->plen));
		if (first) {
			s->valid = 1;
			s->ts = ts;
			s->rank++;
			first = 0;
		} else if (ts != s->ts) {
			break;
		}
		if (!s->has) {
			int64_t ingest = kv_u64_to_ts(kv_get_be64(k + s->plen + 8));
			if (ingest <= s->rules->known_at) {
				size_t vl;
				const char *v = rocksdb_iter_value(s->it, &vl);
				if (keep_value(s, v, vl) == 0) {
					s->has = 1;
					s->ingest = ingest;
					s->tombstone = vl == 1 && (unsigned char)v[0] == KV_TOMBSTONE;
				}
			}
		}
		rocksdb_iter_next(s->it);
	}
}

/* Reads usually move forward a few keys at a time (the next feature of the same entity, the
 * next entity of a sorted join): a few Next() calls are much cheaper than a Seek(). Returns 1
 * if the iterator now sits on the first key >= target. In prefix (entity) mode the iterator
 * is only defined within one entity, so it may only step inside the target's entity. */
#define STEP_BUDGET 12

static int step_to(struct kv_scan *s, const char *target, size_t tlen)
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
		/* Already at or past the target before any step: an earlier key may also be
		 * >= target, so only a seek can tell. */
		if (c > 0 || (c == 0 && kl >= tlen))
			return i > 0;
		rocksdb_iter_next(s->it);
		if (!rocksdb_iter_valid(s->it))
			return 1; /* nothing >= target: same as what a seek would find */
	}
	return 0;
}

void kv_scan_seek(struct kv_scan *s, uint32_t table_id, const char *entity, size_t elen,
		  uint16_t fid, int64_t start)
{
	char key[KV_KEY_MAX];
	s->plen = kv_key_feature_prefix(s->prefix, table_id, entity, elen, fid);
	memcpy(key, s->prefix, s->plen);
	/* Ranks need the walk to start at the newest version. */
	int64_t from = s->rules->max_versions ? ST_TS_MAX : start;
	kv_put_be64(key + s->plen, kv_ts_to_u64(from));
	s->rank = 0;
	if (!step_to(s, key, s->plen + 8))
		rocksdb_iter_seek(s->it, key, s->plen + 8);
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
	if (r->max_versions && s->rank > r->max_versions)
		return 0;
	return kv_retained(r->ttl_us, r->now, s->ts);
}

int kv_scan_asof(struct kv_scan *s, int64_t T, struct kv_result *r)
{
	memset(r, 0, sizeof(*r));
	while (kv_scan_alive(s) && (s->ts > T || !s->has))
		kv_scan_next(s);
	if (!kv_scan_alive(s) || s->tombstone)
		return 0;
	int64_t ref = T == ST_TS_MAX ? s->rules->now : T;
	if (s->rules->ttl_us > 0 && ref - s->ts > s->rules->ttl_us)
		return 0;
	int rc = kv_value_decode(s->val, s->vlen, &r->value);
	if (rc < 0)
		return rc;
	ST_ASSERT(rc == 0);
	r->found = 1;
	r->ts = s->ts;
	r->ingest_us = s->ingest;
	return 0;
}
