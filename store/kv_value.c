/* Value encoding, validation, parsing and formatting. */
#include "store/kv_value.h"
#include "common/st_base64.h"
#include "common/st_num.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kv_value_release(struct kv_value *v)
{
	if (!v)
		return;
	free(v->ptr);
	v->ptr = NULL;
	v->len = 0;
	v->type = KV_NONE;
}

static size_t elem_size(enum kv_type t)
{
	switch (t) {
	case KV_STR:
	case KV_BYTES:
		return 1;
	case KV_F32VEC:
		return 4;
	case KV_I64LIST:
		return 8;
	default:
		return 0;
	}
}

size_t kv_value_encoded_len(const struct kv_value *v)
{
	switch (v->type) {
	case KV_I64:
	case KV_F64:
		return 9;
	case KV_F32:
		return 5;
	case KV_NONE:
		return 1;
	default:
		return 1 + (size_t)v->len * elem_size(v->type);
	}
}

static void put_le(char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (char)(v >> (8 * i));
}

static uint64_t get_le(const char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | (unsigned char)p[i];
	return v;
}

size_t kv_value_encode(const struct kv_value *v, char *buf)
{
	uint64_t u;
	uint32_t u32;
	if (v->type == KV_NONE) {
		buf[0] = (char)KV_TOMBSTONE;
		return 1;
	}
	buf[0] = (char)v->type;
	switch (v->type) {
	case KV_I64:
		put_le(buf + 1, (uint64_t)v->i64, 8);
		return 9;
	case KV_F64:
		memcpy(&u, &v->f64, 8);
		put_le(buf + 1, u, 8);
		return 9;
	case KV_F32:
		memcpy(&u32, &v->f32, 4);
		put_le(buf + 1, u32, 4);
		return 5;
	case KV_STR:
	case KV_BYTES:
		if (v->len)
			memcpy(buf + 1, v->ptr, v->len);
		return 1 + v->len;
	case KV_F32VEC:
		for (uint32_t i = 0; i < v->len; i++) {
			memcpy(&u32, (const float *)v->ptr + i, 4);
			put_le(buf + 1 + 4 * i, u32, 4);
		}
		return 1 + 4 * (size_t)v->len;
	case KV_I64LIST:
		for (uint32_t i = 0; i < v->len; i++)
			put_le(buf + 1 + 8 * (size_t)i, (uint64_t)((const int64_t *)v->ptr)[i], 8);
		return 1 + 8 * (size_t)v->len;
	default:
		ST_ASSERT(0 && "unknown value type");
	}
}

int kv_value_decode(const char *buf, size_t len, struct kv_value *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 1)
		return ST_ECORRUPT;
	unsigned char t = (unsigned char)buf[0];
	const char *p = buf + 1;
	size_t n = len - 1;
	uint64_t u;
	uint32_t u32;
	switch (t) {
	case KV_TOMBSTONE:
		return n == 0 ? 1 : ST_ECORRUPT;
	case KV_I64:
		if (n != 8)
			return ST_ECORRUPT;
		out->i64 = (int64_t)get_le(p, 8);
		break;
	case KV_F64:
		if (n != 8)
			return ST_ECORRUPT;
		u = get_le(p, 8);
		memcpy(&out->f64, &u, 8);
		break;
	case KV_F32:
		if (n != 4)
			return ST_ECORRUPT;
		u32 = (uint32_t)get_le(p, 4);
		memcpy(&out->f32, &u32, 4);
		break;
	case KV_STR:
	case KV_BYTES:
		out->ptr = malloc(n + 1); /* NUL-terminated for convenience */
		if (!out->ptr)
			return ST_ENOMEM;
		memcpy(out->ptr, p, n);
		((char *)out->ptr)[n] = '\0';
		out->len = (uint32_t)n;
		break;
	case KV_F32VEC:
	case KV_I64LIST: {
		size_t es = t == KV_F32VEC ? 4 : 8;
		if (n % es)
			return ST_ECORRUPT;
		out->len = (uint32_t)(n / es);
		out->ptr = malloc(n ? n : 1);
		if (!out->ptr)
			return ST_ENOMEM;
		for (size_t i = 0; i < out->len; i++) {
			if (t == KV_F32VEC) {
				u32 = (uint32_t)get_le(p + 4 * i, 4);
				memcpy((float *)out->ptr + i, &u32, 4);
			} else {
				((int64_t *)out->ptr)[i] = (int64_t)get_le(p + 8 * i, 8);
			}
		}
		break;
	}
	default:
		return ST_ECORRUPT;
	}
	out->type = (enum kv_type)t;
	return 0;
}

int kv_value_check(const struct kv_value *v, const struct kv_feature_def *f,
		   struct st_error *err)
{
	char want[32], got[32];
	if (v->type != f->type)
		return st_error_set(err, ST_ETYPE, "feature '%s' is %s, value is %s", f->name,
				    kv_type_name(f->type, f->dim, want, sizeof(want)),
				    kv_type_name(v->type, v->len, got, sizeof(got)));
	if (f->type == KV_F32VEC && v->len != f->dim)
		return st_error_set(err, ST_ETYPE, "feature '%s' is f32[%u], value has %u elements",
				    f->name, f->dim, v->len);
	if (kv_value_encoded_len(v) > KV_VALUE_MAX)
		return st_error_set(err, ST_ELIMIT, "value of '%s' is %zu bytes, limit is %d",
				    f->name, kv_value_encoded_len(v), KV_VALUE_MAX);
	if (elem_size(v->type) && v->len && !v->ptr)
		return st_error_set(err, ST_EINVAL, "value of '%s' has no data", f->name);
	return 0;
}

int kv_value_copy(const struct kv_value *src, struct kv_value *dst)
{
	*dst = *src;
	dst->ptr = NULL;
	size_t es = elem_size(src->type);
	if (!es)
		return 0;
	size_t n = (size_t)src->len * es;
	dst->ptr = malloc(n + 1);
	if (!dst->ptr)
		return ST_ENOMEM;
	if (n)
		memcpy(dst->ptr, src->ptr, n);
	((char *)dst->ptr)[n] = '\0';
	return 0;
}

/* ---- text parsing ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Decodes standard base64 into a new buffer (common/st_base64.c). */
static int parse_base64(const char *s, size_t len, struct kv_value *out)
{
	unsigned char *b;
	size_t n;
	int rc = st_base64_decode(s, len, &b, &n);
	if (rc)
		return rc;
	out->ptr = b;
	out->len = (uint32_t)n;
	return 0;
}

/* Parses "[a,b,c]" or "a,b,c" into an array of floats or int64s. */
static int parse_list(const char *s, size_t len, enum kv_type t, struct kv_value *out)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']')
		s++, len -= 2;
	size_t es = t == KV_F32VEC ? 4 : 8, cap = 8, n = 0;
	char *arr = malloc(cap * es);
	if (!arr)
		return ST_ENOMEM;
	const char *p = s, *end = s + len;
	int blank = 1;
	for (const char *q = s; q < end; q++)
		if (!isspace((unsigned char)*q))
			blank = 0;
	while (!blank && p <= end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		if (!c)
			c = end;
		if (n == cap) {
			char *na = realloc(arr, (cap *= 2) * es);
			if (!na) {
				free(arr);
				return ST_ENOMEM;
			}
			arr = na;
		}
		if (t == KV_F32VEC) {
			double d;
			if (st_parse_f64(p, (size_t)(c - p), &d))
				goto bad;
			((float *)arr)[n++] = (float)d;
		} else {
			int64_t v;
			if (st_parse_i64(p, (size_t)(c - p), &v))
				goto bad;
			((int64_t *)arr)[n++] = v;
		}
		p = c + 1;
	}
	out->type = t;
	out->len = (uint32_t)n;
	out->ptr = arr;
	return 0;
bad:
	free(arr);
	return ST_EINVAL;
}

int kv_value_parse(const char *s, size_t len, const struct kv_feature_def *f,
		   struct kv_value *out, struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc;
	switch (f->type) {
	case KV_I64:
		if (st_parse_i64(s, len, &out->i64))
			goto bad;
		break;
	case KV_F64:
		if (st_parse_f64(s, len, &out->f64))
			goto bad;
		break;
	case KV_F32: {
		double d;
		if (st_parse_f64(s, len, &d))
			goto bad;
		out->f32 = (float)d;
		break;
	}
	case KV_STR:
		out->ptr = malloc(len + 1);
		if (!out->ptr)
			return st_error_set(err, ST_ENOMEM, "out of memory");
		memcpy(out->ptr, s, len);
		((char *)out->ptr)[len] = '\0';
		out->len = (uint32_t)len;
		break;
	case KV_BYTES: {
		if (len >= 7 && !memcmp(s, "base64:", 7)) {
			rc = parse_base64(s + 7, len - 7, out);
			if (rc == ST_ENOMEM)
				return st_error_set(err, rc, "out of memory");
			if (rc)
				goto bad;
			break;
		}
		if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
			s += 2, len -= 2;
		if (len % 2)
			goto bad;
		unsigned char *b = malloc(len / 2 + 1);
		if (!b)
			return st_error_set(err, ST_ENOMEM, "out of memory");
		for (size_t i = 0; i < len / 2; i++) {
			int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				free(b);
				goto bad;
			}
			b[i] = (unsigned char)(hi << 4 | lo);
		}
		b[len / 2] = 0;
		out->ptr = b;
		out->len = (uint32_t)(len / 2);
		break;
	}
	case KV_F32VEC:
	case KV_I64LIST:
		rc = parse_list(s, len, f->type, out);
		if (rc == ST_ENOMEM)
			return st_error_set(err, rc, "out of memory");
		if (rc)
			goto bad;
		break;
	default:
		return st_error_set(err, ST_EINVAL, "feature '%s' has no type", f->name);
	}
	out->type = f->type;
	rc = kv_value_check(out, f, err);
	if (rc)
		kv_value_release(out);
	return rc;
bad: {
	char tn[32];
	int shown = len > 40 ? 40 : (int)len;
	return st_error_set(err, ST_ETYPE, "feature '%s' (%s): cannot parse '%.*s%s'", f->name,
			    kv_type_name(f->type, f->dim, tn, sizeof(tn)), shown, s,
			    len > 40 ? "..." : "");
}
}

/* ---- text formatting ---- */

static int reserve(char **buf, size_t *n, size_t *cap, size_t more)
{
	if (*n + more + 1 <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < *n + more + 1)
		nc *= 2;
	char *nb = realloc(*buf, nc);
	if (!nb)
		return ST_ENOMEM;
	*buf = nb;
	*cap = nc;
	return 0;
}

int kv_value_format(const struct kv_value *v, char **buf, size_t *n, size_t *cap)
{
	char tmp[48];
	int k;
	switch (v->type) {
	case KV_NONE:
		return reserve(buf, n, cap, 0);
	case KV_I64:
		k = snprintf(tmp, sizeof(tmp), "%lld", (long long)v->i64);
		break;
	case KV_F64:
		k = st_format_f64(tmp, v->f64, 0);
		break;
	case KV_F32:
		k = st_format_f64(tmp, v->f32, 1);
		break;
	case KV_STR:
		if (reserve(buf, n, cap, v->len))
			return ST_ENOMEM;
		memcpy(*buf + *n, v->ptr, v->len);
		*n += v->len;
		(*buf)[*n] = '\0';
		return 0;
	case KV_BYTES:
		if (reserve(buf, n, cap, 2 + 2 * (size_t)v->len))
			return ST_ENOMEM;
		*n += (size_t)sprintf(*buf + *n, "0x");
		for (uint32_t i = 0; i < v->len; i++)
			*n += (size_t)sprintf(*buf + *n, "%02x", ((unsigned char *)v->ptr)[i]);
		return 0;
	case KV_F32VEC:
	case KV_I64LIST:
		if (reserve(buf, n, cap, 1))
			return ST_ENOMEM;
		(*buf)[(*n)++] = '[';
		for (uint32_t i = 0; i < v->len; i++) {
			k = v->type == KV_F32VEC ? st_format_f64(tmp, ((float *)v->ptr)[i], 1)
						 : snprintf(tmp, sizeof(tmp), "%lld",
							    (long long)((int64_t *)v->ptr)[i]);
			if (reserve(buf, n, cap, (size_t)k + 2))
				return ST_ENOMEM;
			if (i)
				(*buf)[(*n)++] = ',';
			memcpy(*buf + *n, tmp, (size_t)k);
			*n += (size_t)k;
		}
		if (reserve(buf, n, cap, 1))
			return ST_ENOMEM;
		(*buf)[(*n)++] = ']';
		(*buf)[*n] = '\0';
		return 0;
	default:
		return ST_EINVAL;
	}
	if (reserve(buf, n, cap, (size_t)k))
		return ST_ENOMEM;
	memcpy(*buf + *n, tmp, (size_t)k);
	*n += (size_t)k;
	(*buf)[*n] = '\0';
	return 0;
}
