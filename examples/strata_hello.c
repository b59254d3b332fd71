/* strata_hello: the smallest useful libstrata program. Creates a table (if missing), writes
 * a value at a timestamp parsed with the library's guard, and reads it back as of a later
 * time. Build against an installed libstrata:
 *     cc strata_hello.c $(pkg-config --cflags --libs strata) -o strata_hello
 *     ./strata_hello 127.0.0.1:7070 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strata.h>

static int fail(const char *what, const struct strata_error *err)
{
	fprintf(stderr, "strata_hello: %s: %s\n", what,
		err->msg[0] ? err->msg : strata_strerror(err->code));
	return 1;
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7070";
	struct strata_error err = {0};
	strata *c;
	if (strata_connect(addr, NULL, &c, &err))
		return fail("connect", &err);

	struct strata_feature_def age = {.name = "age", .type = STRATA_I64};
	struct strata_table t = {.name = "hello_users", .nfeatures = 1, .features = &age};
	if (strata_table_create(c, &t, &err) && err.code != STRATA_EEXIST) {
		strata_close(c);
		return fail("table create", &err);
	}

	/* Seconds given where milliseconds are expected are refused, with the unit that fits. */
	int64_t ts;
	if (strata_ts_parse("1762000000", STRATA_TS_MS, 0, &ts, &err) == 0) {
		strata_close(c);
		fprintf(stderr, "strata_hello: an implausible timestamp was accepted\n");
		return 1;
	}
	printf("refused: %s\n", err.msg);
	if (strata_ts_parse("2026-11-01T10:00:00Z", STRATA_TS_MS, 0, &ts, &err)) {
		strata_close(c);
		return fail("timestamp", &err);
	}

	struct strata_cell cell = {.entity = "u42", .entity_len = 3, .feature = "age", .ts = ts,
				   .value = {.type = STRATA_I64, .i64 = 31}};
	if (strata_put(c, "hello_users", &cell, 1, &err)) {
		strata_close(c);
		return fail("put", &err);
	}
	const char *features[] = {"age"};
	struct strata_result r;
	struct strata_read_opts o = {.as_of = ts + 1000000, .known_at = STRATA_TS_MAX};
	if (strata_get(c, "hello_users", "u42", 3, features, 1, &o, &r, &err)) {
		strata_close(c);
		return fail("get", &err);
	}
	printf("u42 age = %" PRId64 " (found %d)\n", r.found ? r.value.i64 : -1, r.found);
	strata_result_release(&r, 1);
	strata_close(c);
	return 0;
}
