/* libFuzzer target: the RESP command parser (server/srv_resp_proto.c). The input is parsed as
 * a stream of commands twice: whole, and fed in pieces whose sizes come from the first byte
 * (as a socket would deliver them). Both must give the same commands and the same outcome;
 * every argument must lie inside the input; and each command, written back as an array of
 * bulk strings with the reply writers, must parse to the same arguments.
 * Build and run: make fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct srv_resp_limits lim = {
	.max_args = 64, .max_bulk = 512, .max_inline = 256, .max_command = 2048,
};

/* A digest of the commands (argument count, lengths and bytes) and the final outcome. */
struct trace {
	uint64_t h;
	int outcome;
	size_t ncmds;
};

static void mix(struct trace *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		t->h = (t->h ^ b[i]) * 1099511628211ull;
}

static void check_roundtrip(const uint8_t *buf, const struct srv_resp_parser *p)
{
	struct srv_buf out = {0};
	if (srv_resp_w_agg(&out, '*', p->argc))
		abort();
	for (size_t i = 0; i < p->argc; i++)
		if (srv_resp_w_bulk(&out, buf + p->argv[i].off, p->argv[i].len))
			abort();
	struct srv_resp_parser q = {0};
	srv_resp_parser_reset(&q);
	struct srv_resp_limits big = {1u << 20, 1u << 20, 1u << 20, 1u << 24};
	size_t used;
	char err[160];
	if (srv_resp_parse(&q, out.p, out.len, &big, &used, err, sizeof(err)) != SRV_RESP_COMMAND ||
	    used != out.len || q.argc != p->argc)
		__builtin_trap();
	for (size_t i = 0; i < p->argc; i++)
		if (q.argv[i].len != p->argv[i].len ||
		    memcmp(out.p + q.argv[i].off, buf + p->argv[i].off, p->argv[i].len))
			__builtin_trap();
	srv_resp_parser_release(&q);
	srv_buf_release(&out);
}

/* Parses data as a stream, revealing `step` more bytes at a time (0: all at once). */
static struct trace run(const uint8_t *data, size_t size, size_t step, int roundtrip)
{
	struct trace t = {1469598103934665603ull, 0, 0};
	struct srv_resp_parser p = {0};
	srv_resp_parser_reset(&p);
	size_t start = 0, avail = step ? 0 : size;
	for (;;) {
		size_t used = 0;
		char err[160];
		int rc = srv_resp_parse(&p, data + start, avail - start, &lim, &used, err,
					sizeof(err));
		if (rc == SRV_RESP_ERROR) {
			t.outcome = 2;
			break;
		}
		if (rc == SRV_RESP_PARTIAL) {
			if (avail == size) {
				t.outcome = start == size ? 0 : 1;
				break;
			}
			avail = avail + step > size ? size : avail + step;
			continue;
		}
		if (used == 0 || used > avail - start || p.argc > lim.max_args)
			__builtin_trap();
		for (size_t i = 0; i < p.argc; i++) {
			if (p.argv[i].off + p.argv[i].len > used)
				__builtin_trap();
			mix(&t, &p.argv[i].len, sizeof(p.argv[i].len));
			mix(&t, data + start + p.argv[i].off, p.argv[i].len);
		}
		if (roundtrip && p.argc)
			check_roundtrip(data + start, &p);
		t.ncmds++;
		mix(&t, &p.argc, sizeof(p.argc));
		start += used;
		srv_resp_parser_reset(&p);
	}
	srv_resp_parser_release(&p);
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = 1 + data[0] % 17;
	struct trace whole = run(data + 1, size - 1, 0, 1);
	struct trace pieces = run(data + 1, size - 1, step, 0);
	if (whole.h != pieces.h || whole.outcome != pieces.outcome || whole.ncmds != pieces.ncmds)
		__builtin_trap();
	return 0;
}
