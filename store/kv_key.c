/* Cell key encoding and decoding (layout in kv_key.h). */
#include "store/kv_key.h"
#include "common/st_err.h"

#include <string.h>

uint64_t kv_ts_to_u64(int64_t ts)
{
	return ~((uint64_t)ts ^ 0x8000000000000000ULL);
}

int64_t kv_u64_to_ts(uint64_t u)
{
	return (int64_t)(~u ^ 0x8000000000000000ULL);
}

size_t kv_key_table_prefix(char *buf, uint32_t table_id)
{
	kv_put_be32(buf, table_id);
	return 4;
}

size_t kv_key_feature_prefix(char *buf, uint32_t table_id, const char *entity, size_t elen,
			     uint16_t fid)
{
	ST_ASSERT(elen <= KV_KEY_MAX - KV_KEY_FIXED);
	kv_put_be32(buf, table_id);
	kv_put_be16(buf + 4, (uint16_t)elen);
	memcpy(buf + 6, entity, elen);
	kv_put_be16(buf + 6 + elen, fid);
	return 8 + elen;
}

size_t kv_key_encode(char *buf, uint32_t table_id, const char *entity, size_t elen,
		     uint16_t fid, int64_t ts, int64_t ingest)
{
	size_t n = kv_key_feature_prefix(buf, table_id, entity, elen, fid);
	kv_put_be64(buf + n, kv_ts_to_u64(ts));
	kv_put_be64(buf + n + 8, kv_ts_to_u64(ingest));
	return n + 16;
}

int kv_key_decode(const char *buf, size_t len, struct kv_key *out)
{
	if (len < KV_KEY_FIXED)
		return -1;
	size_t elen = kv_get_be16(buf + 4);
	if (len != KV_KEY_FIXED + elen)
		return -1;
	out->table_id = kv_get_be32(buf);
	out->entity = buf + 6;
	out->entity_len = elen;
	out->feature_id = kv_get_be16(buf + 6 + elen);
	out->ts = kv_u64_to_ts(kv_get_be64(buf + 8 + elen));
	out->ingest = kv_u64_to_ts(kv_get_be64(buf + 16 + elen));
	return 0;
}

size_t kv_key_prefix_len(const char *buf, size_t len)
{
	if (len < KV_KEY_FIXED || len != (size_t)KV_KEY_FIXED + kv_get_be16(buf + 4))
		return 0;
	return len - 16;
}
