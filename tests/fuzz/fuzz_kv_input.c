/* libFuzzer target: the preload/join input parsers (CSV, TSV, JSON lines, with gzip/zstd
 * detection) and the text parsers applied to every field (values of each type, timestamps).
 * The first byte picks the format. Build and run: make fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/kv_input.h"
#include "store/kv_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct kv_feature_def feats[] = {
	{"i", KV_I64, 0, 1},   {"d", KV_F64, 0, 2},     {"f", KV_F32, 0, 3},
	{"s", KV_STR, 0, 4},   {"b", KV_BYTES, 0, 5},   {"v", KV_F32VEC, 3, 6},
	{"l", KV_I64LIST, 0, 7},
};

static int on_record(void *arg, struct kv_input *in, const struct kv_record *rec)
{
	if (rec->bad && rec->n)
		__builtin_trap();
	for (size_t i = 0; i < rec->n; i++) {
		if (rec->col[i] >= kv_input_ncols(in))
			__builtin_trap();
		int64_t ts;
		(void)st_ts_parse(rec->f[i], rec->len[i], ST_TS_MS, &ts);
		const struct kv_feature_def *f = &feats[(rec->col[i] + i) % 7];
		struct kv_value v;
		struct st_error err;
		if (kv_value_parse(rec->f[i], rec->len[i], f, &v, &err) == 0) {
			/* whatever parses must encode and decode to the same thing */
			char small[256];
			size_t n = kv_value_encoded_len(&v);
			if (n <= sizeof(small)) {
				kv_value_encode(&v, small);
				struct kv_value back;
				if (kv_value_decode(small, n, &back) != 0 || back.type != v.type ||
				    back.len != v.len)
					__builtin_trap();
				kv_value_release(&back);
			}
			kv_value_release(&v);
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum kv_format fmt = (enum kv_format)(1 + data[0] % 3);
	struct kv_input *in;
	struct st_error err;
	if (kv_input_open_mem(data + 1, size - 1, "fuzz", fmt, &in, &err))
		return 0;
	(void)kv_input_run(in, on_record, NULL, &err);
	kv_input_close(in);
	return 0;
}
