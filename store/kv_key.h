/* Key encoding of cells. Entity-major so one seek serves every feature of an entity:
 *   table_id u32 | entity_len u16 | entity | feature_id u16 | ~ts u64 | ~ingest u64
 * Integers are big-endian; timestamps are sign-flipped then bit-inverted, so for one
 * (entity, feature) the newest event time sorts first and, within one event time, the newest
 * write. The prefix up to and including feature_id is the "feature prefix". */
#ifndef KV_KEY_H
#define KV_KEY_H

#include <stddef.h>
#include <stdint.h>

#define KV_KEY_FIXED (4 + 2 + 2 + 8 + 8)
#define KV_KEY_MAX (KV_KEY_FIXED + 1024)

struct kv_key {
	uint32_t table_id;
	const char *entity; /* points into the decoded buffer */
	size_t entity_len;
	uint16_t feature_id;
	int64_t ts;
	int64_t ingest;
};

/* Encodes into buf (KV_KEY_MAX bytes); returns the length. */
size_t kv_key_encode(char *buf, uint32_t table_id, const char *entity, size_t elen,
		     uint16_t fid, int64_t ts, int64_t ingest);
/* Encodes only the feature prefix; returns its length. */
size_t kv_key_feature_prefix(char *buf, uint32_t table_id, const char *entity, size_t elen,
			     uint16_t fid);
/* Encodes the table prefix (4 bytes) of table_id. */
size_t kv_key_table_prefix(char *buf, uint32_t table_id);
/* Decodes; returns 0 or -1 if the key is malformed. */
int kv_key_decode(const char *buf, size_t len, struct kv_key *out);
/* Length of the feature prefix of an encoded key (len - 16), or 0 if malformed. */
size_t kv_key_prefix_len(const char *buf, size_t len);

uint64_t kv_ts_to_u64(int64_t ts); /* order-preserving, then inverted (newest first) */
int64_t kv_u64_to_ts(uint64_t u);

static inline void kv_put_be16(char *p, uint16_t v)
{
	p[0] = (char)(v >> 8);
	p[1] = (char)v;
}
static inline void kv_put_be32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)(v >> (24 - 8 * i));
}
static inline void kv_put_be64(char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (char)(v >> (56 - 8 * i));
}
static inline uint16_t kv_get_be16(const char *p)
{
	return (uint16_t)(((uint16_t)(unsigned char)p[0] << 8) | (unsigned char)p[1]);
}
static inline uint32_t kv_get_be32(const char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = (v << 8) | (unsigned char)p[i];
	return v;
}
static inline uint64_t kv_get_be64(const char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | (unsigned char)p[i];
	return v;
}

#endif
