/* libFuzzer target: decoding of stored keys and values from arbitrary bytes (what a corrupt
 * SST or a hostile replication stream could hand us), and re-encoding what decodes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_key.h"
#include "store/kv_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kv_key k;
	if (kv_key_decode((const char *)data, size, &k) == 0) {
		char buf[KV_KEY_MAX];
		if (k.entity_len > KV_KEY_MAX - KV_KEY_FIXED)
			return 0;
		size_t n = kv_key_encode(buf, k.table_id, k.entity, k.entity_len, k.feature_id, k.ts,
					 k.ingest);
		if (n != size || memcmp(buf, data, n))
			__builtin_trap();
	}
	struct kv_value v;
	int rc = kv_value_decode((const char *)data, size, &v);
	if (rc == 0) {
		char *buf = malloc(kv_value_encoded_len(&v));
		size_t n = kv_value_encode(&v, buf);
		if (n != size || memcmp(buf, data, n))
			__builtin_trap();
		free(buf);
		char *txt = NULL;
		size_t tn = 0, cap = 0;
		(void)kv_value_format(&v, &txt, &tn, &cap);
		free(txt);
		kv_value_release(&v);
	}
	return 0;
}
