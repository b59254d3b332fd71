/* srv_wire (the direct encoder of get responses) writes exactly the bytes protobuf-c packs
 * from srv_results_out's messages: 20000 random result sets of every value type (empty and
 * long strings, vectors, negative lists), every status, found and not, times of every sign,
 * request ids up to 2^64-1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/unit/test_util.h"

#include "server/srv.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	return tu_xorshift(&rng);
}

static int64_t rand_i64(void)
{
	switch (next() % 4) {
	case 0:
		return 0;
	case 1:
		return (int64_t)(next() % 1000) - 500;
	case 2:
		return (int64_t)next();
	default:
		return INT64_MIN + (int64_t)(next() % 3);
	}
}

static void rand_value(struct kv_value *v, uint8_t *store)
{
	memset(v, 0, sizeof(*v));
	v->type = (enum kv_type)(1 + next() % 7);
	v->ptr = store;
	switch (v->type) {
	case KV_I64:
		v->i64 = rand_i64();
		break;
	case KV_F64:
		v->f64 = (double)rand_i64() / 7.0;
		break;
	case KV_F32:
		v->f32 = (float)((double)rand_i64() / 3.0);
		break;
	case KV_STR:
	case KV_BYTES:
		v->len = (uint32_t)(next() % 3 ? next() % 20 : next() % 300);
		for (uint32_t i = 0; i < v->len; i++)
			store[i] = (uint8_t)next();
		break;
	case KV_F32VEC:
		v->len = (uint32_t)(1 + next() % 40);
		for (uint32_t i = 0; i < v->len; i++)
			((float *)store)[i] = (float)rand_i64();
		break;
	default:
		v->len = (uint32_t)(next() % 12);
		for (uint32_t i = 0; i < v->len; i++)
			((int64_t *)store)[i] = rand_i64();
	}
}

static void test_same_bytes(void **state)
{
	(void)state;
	static uint8_t stores[12][2048];
	for (int round = 0; round < 20000; round++) {
		size_t n = next() % 13;
		struct kv_result res[12];
		for (size_t i = 0; i < n; i++) {
			memset(&res[i], 0, sizeof(res[i]));
			res[i].status = (enum kv_status)(next() % 4);
			res[i].found = res[i].status == KV_PRESENT;
			if (res[i].status != KV_ABSENT || next() % 4 == 0) {
				res[i].ts = rand_i64();
				res[i].ingest_us = rand_i64();
			}
			if (res[i].found)
				rand_value(&res[i].value, stores[i]);
		}
		uint64_t id = next() % 3 ? next() % 100000 : next();

		struct srv_ctx *x = calloc(1, sizeof(*x));
		x->cur = x->inline_buf;
		x->left = sizeof(x->inline_buf);
		Strata__Response resp = STRATA__RESPONSE__INIT;
		resp.id = id;
		resp.result_case = STRATA__RESPONSE__RESULT_RESULTS;
		assert_int_equal(srv_results_out(x, res, n, &resp.results), 0);
		assert_null(x->blocks); /* all in the inline arena: nothing to free */
		size_t pn = strata__response__get_packed_size(&resp);
		uint8_t *packed = malloc(pn + 1);
		strata__response__pack(&resp, packed);

		size_t wn;
		uint8_t *wire;
		assert_int_equal(srv_wire_results_frame(id, res, n, &wire, &wn), 0);
		if (wn != pn + 4 || memcmp(wire + 4, packed, pn))
			fail_msg("round %d (%zu results): %zu bytes vs protobuf-c's %zu", round, n,
				 wn - 4, pn);
		assert_int_equal(srv_get_be32(wire), pn);
		free(wire);
		free(packed);
		free(x);
	}
}

/* Bytes of the Results field's elements in a frame (after id and the Results header). */
static const uint8_t *results_body(const uint8_t *f, size_t len, size_t *n)
{
	const uint8_t *p = f + 5; /* length prefix, id tag */
	while (*p++ & 0x80)
		;
	p++; /* Results tag */
	while (*p++ & 0x80)
		;
	*n = len - (size_t)(p - f);
	return p;
}

/* More results than the encoder sizes on its stack: a repeated field is the concatenation of
 * its elements, so the body must be the single-result frames' bodies end to end. */
static void test_many_results(void **state)
{
	(void)state;
	enum { N = 1000 };
	static struct kv_result res[N];
	static uint8_t expect[N * 64];
	size_t elen = 0;
	for (size_t i = 0; i < N; i++) {
		res[i].found = i % 7 != 0;
		res[i].status = res[i].found ? KV_PRESENT : KV_ABSENT;
		res[i].ts = (int64_t)i * 1000003;
		res[i].ingest_us = -(int64_t)i;
		res[i].value.type = KV_I64;
		res[i].value.i64 = (int64_t)(i * i) - 5000;
		uint8_t *one;
		size_t olen, blen;
		assert_int_equal(srv_wire_results_frame(7, &res[i], 1, &one, &olen), 0);
		const uint8_t *b = results_body(one, olen, &blen);
		memcpy(expect + elen, b, blen);
		elen += blen;
		free(one);
	}
	uint8_t *all;
	size_t alen, blen;
	assert_int_equal(srv_wire_results_frame(123456789, res, N, &all, &alen), 0);
	assert_int_equal(srv_get_be32(all), alen - 4);
	const uint8_t *b = results_body(all, alen, &blen);
	assert_int_equal(blen, elen);
	assert_memory_equal(b, expect, elen);
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_bytes),
					   cmocka_unit_test(test_many_results)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
