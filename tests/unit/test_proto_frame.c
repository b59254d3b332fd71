/* Wire-format unit tests (no server): error frames, the batch's id-appending trick, value
 * conversions of every type in both directions, and the server's input buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "client/strata_impl.h"
#include "server/srv.h"

static void test_error_frame(void **state)
{
	(void)state;
	uint8_t *f;
	size_t len;
	assert_int_equal(srv_error_frame(42, ST_ENOTFOUND, "no such table 'x'", &f, &len), 0);
	assert_int_equal(srv_get_be32(f), len - 4);
	Strata__Response *r = strata__response__unpack(NULL, len - 4, f + 4);
	assert_non_null(r);
	assert_int_equal(r->id, 42);
	assert_int_equal(r->code, ST_ENOTFOUND);
	assert_string_equal(r->error, "no such table 'x'");
	strata__response__free_unpacked(r, NULL);
	free(f);
	/* success frames carry no code */
	assert_int_equal(srv_error_frame(7, 0, NULL, &f, &len), 0);
	r = strata__response__unpack(NULL, len - 4, f + 4);
	assert_false(r->has_code);
	strata__response__free_unpacked(r, NULL);
	free(f);
}

static void test_body_id(void **state)
{
	(void)state;
	struct strata c;
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	Strata__PingReq p = STRATA__PING_REQ__INIT;
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_PING;
	req.ping = &p;
	req.id = 0;
	uint8_t body[64];
	size_t n = strata__request__pack(&req, body);
	uint64_t ids[] = {1, 127, 128, 300, 1ull << 40, UINT64_MAX};
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(sc_queue_body(&c, body, n, ids[i], NULL), 0);
	size_t off = 0;
	for (size_t i = 0; i < 6; i++) {
		uint32_t len = srv_get_be32(c.wbuf + off);
		Strata__Request *r = strata__request__unpack(NULL, len, c.wbuf + off + 4);
		assert_non_null(r);
		assert_true(r->id == ids[i]); /* the appended id field wins */
		assert_int_equal(r->op_case, STRATA__REQUEST__OP_PING);
		strata__request__free_unpacked(r, NULL);
		off += 4 + len;
	}
	assert_int_equal(off, c.wlen);
	free(c.wbuf);
}

static void test_values(void **state)
{
	(void)state;
	float vec[4] = {1, 2.5f, -3, 0};
	int64_t list[3] = {INT64_MIN, 0, INT64_MAX};
	struct strata_value in[] = {
		{.type = STRATA_I64, .i64 = -5},
		{.type = STRATA_F64, .f64 = 3.25},
		{.type = STRATA_F32, .f32 = -0.5f},
		{.type = STRATA_STR, .len = 3, .ptr = "abc"},
		{.type = STRATA_BYTES, .len = 4, .ptr = "\0\xff\0\1"},
		{.type = STRATA_F32VEC, .len = 4, .ptr = vec},
		{.type = STRATA_I64LIST, .len = 3, .ptr = list},
		{.type = STRATA_STR, .len = 0, .ptr = ""},
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		Strata__Value pb;
		sc_value_to_pb(&in[i], &pb);
		size_t n = strata__value__get_packed_size(&pb);
		uint8_t *buf = malloc(n + 1);
		strata__value__pack(&pb, buf);
		Strata__Value *back = strata__value__unpack(NULL, n, buf);
		assert_non_null(back);
		struct strata_value out;
		assert_int_equal(sc_value_from_pb(back, &out), 0);
		assert_int_equal(out.type, in[i].type);
		switch (in[i].type) {
		case STRATA_I64: assert_true(out.i64 == in[i].i64); break;
		case STRATA_F64: assert_true(out.f64 == in[i].f64); break;
		case STRATA_F32: assert_true(out.f32 == in[i].f32); break;
		case STRATA_STR:
			assert_int_equal(out.len, in[i].len);
			assert_int_equal(((char *)out.ptr)[out.len], '\0');
			assert_memory_equal(out.ptr, in[i].ptr, in[i].len);
			break;
		case STRATA_BYTES: assert_memory_equal(out.ptr, in[i].ptr, 4); break;
		case STRATA_F32VEC: assert_memory_equal(out.ptr, vec, sizeof(vec)); break;
		case STRATA_I64LIST: assert_memory_equal(out.ptr, list, sizeof(list)); break;
		default: fail();
		}
		free(out.ptr);
		strata__value__free_unpacked(back, NULL);
		free(buf);
	}
	Strata__Value bad = STRATA__VALUE__INIT;
	bad.type = 42;
	struct strata_value out;
	assert_int_equal(sc_value_from_pb(&bad, &out), STRATA_EPROTO);
}

static void test_srv_buf(void **state)
{
	(void)state;
	struct srv_buf b = {0};
	char chunk[1000];
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 3000; i++)
		assert_int_equal(srv_buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 3000000);
	srv_buf_consume(&b, 2999999);
	assert_int_equal(b.len, 1);
	srv_buf_consume(&b, 1);
	assert_int_equal(b.len, 0);
	assert_null(b.p); /* large buffers are given back once empty */
	srv_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_frame),
		cmocka_unit_test(test_body_id),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_srv_buf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
