/* libFuzzer target: the replication stream as a replica or primary reads it from a socket:
 * frames parsed back to back from arbitrary bytes, and each payload read with the same
 * bounded readers the message handlers use (HELLO, BATCH, RESYNC, FILE, ERROR shapes). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replication/repl_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_payload(const struct repl_frame *f)
{
	struct repl_rbuf r = {f->payload, f->len, 0, 0};
	char s[256];
	size_t n;
	switch (f->type) {
	case REPL_HELLO:
		repl_r_u32(&r);
		repl_r_u32(&r);
		repl_r_u64(&r);
		repl_r_str(&r, s, 64);
		repl_r_str(&r, s, 40);
		repl_r_u64(&r);
		repl_r_u32(&r);
		repl_r_str(&r, s, 40);
		repl_r_u64(&r);
		break;
	case REPL_REWIND:
		repl_r_str(&r, s, 40);
		repl_r_u64(&r);
		repl_r_u64(&r);
		repl_r_str(&r, s, 40);
		repl_r_u64(&r);
		break;
	case REPL_BATCH:
		repl_r_u64(&r);
		repl_r_rest(&r, &n);
		break;
	case REPL_RESYNC:
		repl_r_str(&r, s, 40);
		repl_r_u64(&r);
		repl_r_u64(&r);
		repl_r_u32(&r);
		repl_r_u64(&r);
		break;
	case REPL_FILE:
	case REPL_ERROR:
		if (f->type == REPL_ERROR)
			repl_r_u32(&r);
		repl_r_str(&r, s, sizeof(s));
		repl_r_u64(&r);
		break;
	default:
		repl_r_rest(&r, &n);
	}
	if (r.off > r.n)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		struct repl_frame f;
		struct st_error err;
		size_t used = 0;
		int rc = repl_frame_parse(data + off, size - off, 1u << 16, &f, &used, &err);
		if (rc)
			break;
		if (used < REPL_HDR + REPL_TRAILER || used > size - off)
			__builtin_trap();
		read_payload(&f);
		repl_frame_release(&f);
		off += used;
	}
	return 0;
}
