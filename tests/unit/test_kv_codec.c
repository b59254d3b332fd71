/* Unit tests: key encoding order, value encoding and text forms, timestamp and duration
 * parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv_key.h"
#include "store/kv_value.h"

static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al < bl ? -1 : al > bl);
}

static void test_key_order(void **st)
{
	char a[KV_KEY_MAX], b[KV_KEY_MAX];
	/* newer event time sorts first, including across the sign boundary */
	int64_t ts[] = {INT64_MAX, 1700000000000000LL, 1, 0, -1, -1700000000000000LL, INT64_MIN};
	for (size_t i = 0; i + 1 < sizeof(ts) / sizeof(ts[0]); i++) {
		size_t al = kv_key_encode(a, 7, "u1", 2, 3, ts[i], 5);
		size_t bl = kv_key_encode(b, 7, "u1", 2, 3, ts[i + 1], 5);
		assert_true(keycmp(a, al, b, bl) < 0);
	}
	/* same event time: the newer write first */
	size_t al = kv_key_encode(a, 7, "u1", 2, 3, 100, 20);
	size_t bl = kv_key_encode(b, 7, "u1", 2, 3, 100, 10);
	assert_true(keycmp(a, al, b, bl) < 0);
	/* features of one entity are contiguous: feature 3 < feature 4 whatever the time */
	al = kv_key_encode(a, 7, "u1", 2, 3, INT64_MIN, 0);
	bl = kv_key_encode(b, 7, "u1", 2, 4, INT64_MAX, 0);
	assert_true(keycmp(a, al, b, bl) < 0);
	/* a prefix of an entity is a different entity ("u1" vs "u10") and never interleaves */
	al = kv_key_encode(a, 7, "u1", 2, 65535, INT64_MIN, 0);
	bl = kv_key_encode(b, 7, "u10", 3, 0, INT64_MAX, 0);
	assert_true(keycmp(a, al, b, bl) < 0);
}

static void test_key_roundtrip(void **st)
{
	char buf[KV_KEY_MAX];
	size_t n = kv_key_encode(buf, 0xdeadbeef, "entity\0x", 8, 0xfffe, -12345, 987654321);
	struct kv_key k;
	assert_int_equal(kv_key_decode(buf, n, &k), 0);
	assert_int_equal(k.table_id, 0xdeadbeef);
	assert_int_equal(k.entity_len, 8);
	assert_memory_equal(k.entity, "entity\0x", 8);
	assert_int_equal(k.feature_id, 0xfffe);
	assert_int_equal(k.ts, -12345);
	assert_int_equal(k.ingest, 987654321);
	assert_int_equal(kv_key_prefix_len(buf, n), n - 16);
	assert_int_equal(kv_key_decode(buf, n - 1, &k), -1);
	assert_int_equal(kv_key_decode(buf, 3, &k), -1);
}

static void roundtrip(const struct kv_value *v)
{
	char buf[256];
	size_t n = kv_value_encode(v, buf);
	assert_int_equal(n, kv_value_encoded_len(v));
	struct kv_value out;
	assert_int_equal(kv_value_decode(buf, n, &out), 0);
	assert_int_equal(out.type, v->type);
	assert_int_equal(out.len, v->len);
	switch (v->type) {
	case KV_I64: assert_int_equal(out.i64, v->i64); break;
	case KV_F64: assert_true(out.f64 == v->f64); break;
	case KV_F32: assert_true(out.f32 == v->f32); break;
	case KV_STR: case KV_BYTES: assert_memory_equal(out.ptr, v->ptr, v->len); break;
	case KV_F32VEC: assert_memory_equal(out.ptr, v->ptr, v->len * 4); break;
	case KV_I64LIST: assert_memory_equal(out.ptr, v->ptr, v->len * 8); break;
	default: fail();
	}
	kv_value_release(&out);
}

static void test_value_roundtrip(void **st)
{
	float vec[3] = {0.5f, -1.25f, 3e-7f};
	int64_t list[2] = {INT64_MIN, 42};
	struct kv_value v = {.type = KV_I64, .i64 = -9007199254740993LL};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_F64, .f64 = 0.1};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_F32, .f32 = 1.5f};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_STR, .len = 5, .ptr = "hello"};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_STR, .len = 0, .ptr = ""};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_BYTES, .len = 3, .ptr = "\0\xff\x10"};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_F32VEC, .len = 3, .ptr = vec};
	roundtrip(&v);
	v = (struct kv_value){.type = KV_I64LIST, .len = 2, .ptr = list};
	roundtrip(&v);
	/* tombstone and corruption */
	char t = (char)KV_TOMBSTONE;
	struct kv_value out;
	assert_int_equal(kv_value_decode(&t, 1, &out), 1);
	assert_int_equal(kv_value_decode("\x01\x00", 2, &out), ST_ECORRUPT);
	assert_int_equal(kv_value_decode("\x06\x00\x00\x00", 4, &out), ST_ECORRUPT);
	assert_int_equal(kv_value_decode("\x63", 1, &out), ST_ECORRUPT);
}

static void parse_ok(const char *s, enum kv_type t, uint32_t dim, const char *formatted)
{
	struct kv_feature_def f = {"f", t, dim, 1, 0};
	struct kv_value v;
	struct st_error err;
	assert_int_equal(kv_value_parse(s, strlen(s), &f, &v, &err), 0);
	char *buf = NULL;
	size_t n = 0, cap = 0;
	assert_int_equal(kv_value_format(&v, &buf, &n, &cap), 0);
	assert_string_equal(buf, formatted);
	free(buf);
	kv_value_release(&v);
}

static void parse_bad(const char *s, enum kv_type t, uint32_t dim, int code)
{
	struct kv_feature_def f = {"f", t, dim, 1, 0};
	struct kv_value v;
	struct st_error err = {0};
	assert_int_equal(kv_value_parse(s, strlen(s), &f, &v, &err), code);
	assert_true(strlen(err.msg) > 0);
}

static void test_value_text(void **st)
{
	parse_ok("31", KV_I64, 0, "31");
	parse_ok(" -7 ", KV_I64, 0, "-7");
	parse_ok("0.12", KV_F64, 0, "0.12");
	parse_ok("1e-3", KV_F64, 0, "0.001");
	parse_ok("0.1", KV_F32, 0, "0.1");
	parse_ok("héllo, world", KV_STR, 0, "héllo, world");
	parse_ok("0x00ff10", KV_BYTES, 0, "0x00ff10");
	parse_ok("base64:AP8Q", KV_BYTES, 0, "0x00ff10");
	parse_ok("base64:aGVsbG8=", KV_BYTES, 0, "0x68656c6c6f");
	parse_ok("base64:aGVsbG8", KV_BYTES, 0, "0x68656c6c6f");
	parse_ok("base64:aGk=", KV_BYTES, 0, "0x6869");
	parse_ok("base64:", KV_BYTES, 0, "0x");
	parse_ok("[0.1,0.2,0.3]", KV_F32VEC, 3, "[0.1,0.2,0.3]");
	parse_ok("1, 2 ,3", KV_F32VEC, 3, "[1,2,3]");
	parse_ok("[1,-2,3]", KV_I64LIST, 0, "[1,-2,3]");
	parse_ok("[]", KV_I64LIST, 0, "[]");
	parse_bad("abc", KV_I64, 0, ST_ETYPE);
	parse_bad("12x", KV_I64, 0, ST_ETYPE);
	parse_bad("99999999999999999999", KV_I64, 0, ST_ETYPE);
	parse_bad("", KV_F64, 0, ST_ETYPE);
	parse_bad("0xabc", KV_BYTES, 0, ST_ETYPE);
	parse_bad("base64:a", KV_BYTES, 0, ST_ETYPE);
	parse_bad("base64:aGk*", KV_BYTES, 0, ST_ETYPE);
	parse_bad("[1,2]", KV_F32VEC, 3, ST_ETYPE);
	parse_bad("[1,x,3]", KV_F32VEC, 3, ST_ETYPE);
	parse_bad("[1.5]", KV_I64LIST, 0, ST_ETYPE);
}

static void test_value_check(void **st)
{
	struct kv_feature_def f = {"emb", KV_F32VEC, 4, 1, 0};
	float v4[4] = {0};
	struct kv_value v = {.type = KV_F32VEC, .len = 4, .ptr = v4};
	struct st_error err = {0};
	assert_int_equal(kv_value_check(&v, &f, &err), 0);
	v.len = 3;
	assert_int_equal(kv_value_check(&v, &f, &err), ST_ETYPE);
	assert_non_null(strstr(err.msg, "f32[4]"));
	struct kv_value i = {.type = KV_I64, .i64 = 1};
	assert_int_equal(kv_value_check(&i, &f, &err), ST_ETYPE);
	struct kv_feature_def s = {"s", KV_STR, 0, 2, 0};
	struct kv_value big = {.type = KV_STR, .len = KV_VALUE_MAX, .ptr = NULL};
	big.ptr = calloc(1, KV_VALUE_MAX);
	assert_int_equal(kv_value_check(&big, &s, &err), ST_ELIMIT);
	free(big.ptr);
}

static void ts_ok(const char *s, enum st_ts_unit u, int64_t want)
{
	int64_t got;
	assert_int_equal(st_ts_parse(s, strlen(s), u, &got), 0);
	assert_int_equal(got, want);
}

static void ts_bad(const char *s)
{
	int64_t got;
	assert_int_equal(st_ts_parse(s, strlen(s), ST_TS_MS, &got), ST_EINVAL);
}

static void test_timestamps(void **st)
{
	ts_ok("2026-11-01T10:00:00Z", ST_TS_MS, 1793527200000000LL);
	ts_ok("2026-11-01T10:00:00.5Z", ST_TS_MS, 1793527200500000LL);
	ts_ok("2026-11-01T10:00:00.123456789Z", ST_TS_MS, 1793527200123456LL);
	ts_ok("2026-11-01T12:00:00+02:00", ST_TS_MS, 1793527200000000LL);
	ts_ok("2026-11-01T05:30:00-0430", ST_TS_MS, 1793527200000000LL);
	ts_ok("2026-11-01 10:00:00", ST_TS_MS, 1793527200000000LL);
	ts_ok("2026-11-01", ST_TS_MS, 1793491200000000LL);
	ts_ok("1970-01-01T00:00:00Z", ST_TS_MS, 0);
	ts_ok("1969-12-31T23:59:59Z", ST_TS_MS, -1000000);
	ts_ok("1793527200000", ST_TS_MS, 1793527200000000LL);
	ts_ok("1793527200", ST_TS_S, 1793527200000000LL);
	ts_ok("17", ST_TS_US, 17);
	ts_ok("-5", ST_TS_MS, -5000);
	ts_bad("");
	ts_bad("2026-13-01T00:00:00Z");
	ts_bad("2026-11-01T25:00:00Z");
	ts_bad("2026-11-01T10:00:00Zjunk");
	ts_bad("2026-11-01T10:00:00.Z");
	ts_bad("12abc");
	ts_bad("99999999999999999999");
	int64_t x;
	assert_int_equal(st_ts_parse("9223372036854775807", 19, ST_TS_S, &x), ST_EINVAL);
	/* the plausibility guard: integers outside 1990..2200 in their unit, with the unit that
	 * fits; ISO dates and plausible integers pass */
	char why[200];
	assert_int_equal(st_ts_parse("1762000000", 10, ST_TS_MS, &x), 0);
	assert_int_equal(st_ts_check_plausible("1762000000", 10, ST_TS_MS, x, why, sizeof(why)),
			 ST_EINVAL);
	assert_string_equal(why, "integer timestamp 1762000000 in ms is 1970-01-21T09:26:40Z, "
				 "outside 1990-2200; as s it is 2025-11-01T12:26:40Z");
	assert_int_equal(st_ts_parse("1762000000000000", 16, ST_TS_MS, &x), 0);
	assert_int_equal(st_ts_check_plausible("1762000000000000", 16, ST_TS_MS, x, why,
					       sizeof(why)), ST_EINVAL);
	assert_non_null(strstr(why, "as us it is 2025-11-01T12:26:40Z"));
	assert_int_equal(st_ts_check_plausible("17", 2, ST_TS_US, 17, why, sizeof(why)), ST_EINVAL);
	assert_null(strstr(why, "it is")); /* no unit makes 17 plausible */
	assert_int_equal(st_ts_check_plausible("1762000000000", 13, ST_TS_MS, 1762000000000000LL,
					       why, sizeof(why)), 0);
	assert_int_equal(st_ts_check_plausible("1970-01-02", 10, ST_TS_MS, 86400000000LL, why,
					       sizeof(why)), 0);
	char buf[ST_TS_BUFLEN];
	assert_string_equal(st_ts_format(1793527200000000LL, buf), "2026-11-01T10:00:00Z");
	assert_string_equal(st_ts_format(1793527200000001LL, buf), "2026-11-01T10:00:00.000001Z");
	assert_string_equal(st_ts_format(-1, buf), "1969-12-31T23:59:59.999999Z");
}

static void test_durations(void **st)
{
	int64_t d;
	assert_int_equal(st_dur_parse("30d", &d), 0);
	assert_int_equal(d, 30LL * 86400 * 1000000);
	assert_int_equal(st_dur_parse("1h30m", &d), 0);
	assert_int_equal(d, 5400LL * 1000000);
	assert_int_equal(st_dur_parse("250ms", &d), 0);
	assert_int_equal(d, 250000);
	assert_int_equal(st_dur_parse("90", &d), 0);
	assert_int_equal(d, 90000000);
	assert_int_equal(st_dur_parse("0", &d), 0);
	assert_int_equal(d, 0);
	assert_int_equal(st_dur_parse("", &d), ST_EINVAL);
	assert_int_equal(st_dur_parse("5x", &d), ST_EINVAL);
	assert_int_equal(st_dur_parse("d", &d), ST_EINVAL);
	char buf[32];
	assert_string_equal(st_dur_format(5400LL * 1000000, buf), "1h30m");
	assert_string_equal(st_dur_format(0, buf), "0");
}

static void test_types(void **st)
{
	enum kv_type t;
	uint32_t dim;
	char buf[32];
	const char *ok[] = {"i64", "f64", "f32", "str", "bytes", "f32[8]", "i64[]"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(kv_type_parse(ok[i], &t, &dim), 0);
		assert_string_equal(kv_type_name(t, dim, buf, sizeof(buf)), ok[i]);
	}
	assert_int_equal(kv_type_parse("f32[0]", &t, &dim), ST_EINVAL);
	assert_int_equal(kv_type_parse("f32[8", &t, &dim), ST_EINVAL);
	assert_int_equal(kv_type_parse("f32[8]x", &t, &dim), ST_EINVAL);
	assert_int_equal(kv_type_parse("int", &t, &dim), ST_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_order),       cmocka_unit_test(test_key_roundtrip),
		cmocka_unit_test(test_value_roundtrip), cmocka_unit_test(test_value_text),
		cmocka_unit_test(test_value_check),     cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_durations),       cmocka_unit_test(test_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
