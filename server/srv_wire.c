/* Protobuf encoding of the hot-path response, a Response carrying Results, straight from the
 * store's results. It writes the bytes protobuf-c packs from the messages srv_results_out
 * builds (tests/unit/test_srv_wire.c compares both for every value type and status), without
 * building those messages and without protobuf-c's reflective sizing and packing, which were
 * a fifth of the network thread's time on pipelined row-cache hits (docs/server.md). */
#include "server/srv.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "fixed64/float copied as stored");

static size_t w_vlen(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *w_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static uint64_t w_zz(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* Value: type = 1, i64 = 2 (sint64), f64 = 3, f32 = 4, bytes = 5, vec = 6 (packed float),
 * list = 7 (packed sint64). */
static size_t w_list_bytes(const struct kv_value *v)
{
	size_t b = 0;
	for (uint32_t i = 0; i < v->len; i++)
		b += w_vlen(w_zz(((const int64_t *)v->ptr)[i]));
	return b;
}

static size_t w_value_size(const struct kv_value *v)
{
	size_t n = 1 + w_vlen(v->type), b;
	switch (v->type) {
	case KV_I64:
		return n + 1 + w_vlen(w_zz(v->i64));
	case KV_F64:
		return n + 1 + 8;
	case KV_F32:
		return n + 1 + 4;
	case KV_STR:
	case KV_BYTES:
		return n + 1 + w_vlen(v->len) + v->len;
	case KV_F32VEC:
		b = (size_t)v->len * 4;
		return v->len ? n + 1 + w_vlen(b) + b : n;
	case KV_I64LIST:
		b = w_list_bytes(v);
		return v->len ? n + 1 + w_vlen(b) + b : n;
	default:
		return n;
	}
}

static uint8_t *w_value(uint8_t *p, const struct kv_value *v)
{
	*p++ = 0x08;
	p = w_varint(p, v->type);
	switch (v->type) {
	case KV_I64:
		*p++ = 0x10;
		return w_varint(p, w_zz(v->i64));
	case KV_F64:
		*p++ = 0x19;
		memcpy(p, &v->f64, 8); /* little-endian host, as protobuf's fixed64 */
		return p + 8;
	case KV_F32:
		*p++ = 0x25;
		memcpy(p, &v->f32, 4);
		return p + 4;
	case KV_STR:
	case KV_BYTES:
		*p++ = 0x2a;
		p = w_varint(p, v->len);
		if (v->len)
			memcpy(p, v->ptr, v->len);
		return p + v->len;
	case KV_F32VEC:
		if (!v->len)
			return p;
		*p++ = 0x32;
		p = w_varint(p, (uint64_t)v->len * 4);
		memcpy(p, v->ptr, (size_t)v->len * 4);
		return p + (size_t)v->len * 4;
	case KV_I64LIST:
		if (!v->len)
			return p;
		*p++ = 0x3a;
		p = w_varint(p, w_list_bytes(v));
		for (uint32_t i = 0; i < v->len; i++)
			p = w_varint(p, w_zz(((const int64_t *)v->ptr)[i]));
		return p;
	default:
		return p;
	}
}

/* Result: found = 1, ts = 2, ingest_us = 3 (sint64), value = 4, status = 5 (as
 * srv_results_out fills them); vs: the value's size when found. */
static size_t w_result_size(const struct kv_result *r, size_t vs)
{
	size_t n = 0;
	if (r->found)
		n += 2;
	if (r->found || r->ts || r->ingest_us)
		n += 2 + w_vlen(w_zz(r->ts)) + w_vlen(w_zz(r->ingest_us));
	if (r->found)
		n += 1 + w_vlen(vs) + vs;
	if (r->status != KV_ABSENT)
		n += 1 + w_vlen((uint32_t)r->status);
	return n;
}

/* Writes a Result whose value (if found) encodes in vs bytes. */
static uint8_t *w_result(uint8_t *p, const struct kv_result *r, size_t vs)
{
	if (r->found) {
		*p++ = 0x08;
		*p++ = 1;
	}
	if (r->found || r->ts || r->ingest_us) {
		*p++ = 0x10;
		p = w_varint(p, w_zz(r->ts));
		*p++ = 0x18;
		p = w_varint(p, w_zz(r->ingest_us));
	}
	if (r->found) {
		*p++ = 0x22;
		p = w_varint(p, vs);
		p = w_value(p, &r->value);
	}
	if (r->status != KV_ABSENT) {
		*p++ = 0x28;
		p = w_varint(p, (uint32_t)r->status);
	}
	return p;
}

/* Response: id = 1, results = 12; Results: results = 1 (repeated). Each result and value is
 * sized once (sizes kept in `sz`, two per result), then written. */
#define W_SIZES_INLINE 128

int srv_wire_results_frame(uint64_t id, const struct kv_result *r, size_t n, uint8_t **frame,
			   size_t *len)
{
	uint32_t sz_in[2 * W_SIZES_INLINE], *sz = sz_in;
	if (n > W_SIZES_INLINE && !(sz = malloc(2 * n * sizeof(*sz))))
		return ST_ENOMEM;
	size_t rb = 0;
	for (size_t i = 0; i < n; i++) {
		size_t vs = r[i].found ? w_value_size(&r[i].value) : 0;
		size_t rs = w_result_size(&r[i], vs);
		sz[2 * i] = (uint32_t)rs;
		sz[2 * i + 1] = (uint32_t)vs;
		rb += 1 + w_vlen(rs) + rs;
	}
	size_t total = 4 + 1 + w_vlen(id) + 1 + w_vlen(rb) + rb;
	uint8_t *out = malloc(total);
	if (!out) {
		if (sz != sz_in)
			free(sz);
		return ST_ENOMEM;
	}
	srv_put_be32(out, (uint32_t)(total - 4));
	uint8_t *p = out + 4;
	*p++ = 0x08;
	p = w_varint(p, id);
	*p++ = 0x62;
	p = w_varint(p, rb);
	for (size_t i = 0; i < n; i++) {
		*p++ = 0x0a;
		p = w_varint(p, sz[2 * i]);
		p = w_result(p, &r[i], sz[2 * i + 1]);
	}
	ST_ASSERT((size_t)(p - out) == total);
	if (sz != sz_in)
		free(sz);
	*frame = out;
	*len = total;
	return 0;
}
