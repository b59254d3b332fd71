/* Value encoding (on disk) and text forms (CLI, CSV, preload input).
 * On disk: one type byte, then the payload: i64/f64 8 bytes LE, f32 4 bytes LE, str/bytes raw,
 * f32[N] N*4 bytes LE, i64[] n*8 bytes LE. A tombstone is the single byte KV_TOMBSTONE. */
#ifndef KV_VALUE_H
#define KV_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "store/kv.h"

#define KV_TOMBSTONE 0xFF

/* Size of the encoded value. */
size_t kv_value_encoded_len(const struct kv_value *v);
/* Encodes into buf (kv_value_encoded_len bytes); returns the length. */
size_t kv_value_encode(const struct kv_value *v, char *buf);
/* Decodes into an owned value (ptr malloc'ed for variable types). Returns 0, 1 for a
 * tombstone (out->type = KV_NONE), or ST_ECORRUPT. */
int kv_value_decode(const char *buf, size_t len, struct kv_value *out);

/* Checks that v matches feature f (type, dimension, size limit). */
int kv_value_check(const struct kv_value *v, const struct kv_feature_def *f,
		   struct st_error *err);

/* Parses the text form of a value of feature f: integers, floats, strings as is, bytes as hex
 * (optional 0x) or "base64:..." (RFC 4648), vectors as "[1.5,2,...]" (or "1.5,2,..." without brackets). Produces an owned
 * value. `len` bytes of s are read. */
int kv_value_parse(const char *s, size_t len, const struct kv_feature_def *f,
		   struct kv_value *out, struct st_error *err);

/* Appends the text form of v to a growing buffer (*buf of *cap bytes, *n used; realloc'ed).
 * Floats use the shortest form that reads back exactly. Returns 0 or ST_ENOMEM. */
int kv_value_format(const struct kv_value *v, char **buf, size_t *n, size_t *cap);

/* Deep copy (owned result). */
int kv_value_copy(const struct kv_value *src, struct kv_value *dst);

#endif
