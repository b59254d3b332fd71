/* The RESP wire format (srv_resp_proto.c): an incremental command parser and reply writers.
 * No server state here, so the parser can be fuzzed alone (tests/fuzz/fuzz_srv_resp.c); the
 * commands themselves are in srv_resp.c.
 *
 * A command is an array of bulk strings ("*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n") or an inline
 * line ("PING hi\r\n", split on spaces and tabs). Parsing resumes where the last call stopped,
 * so a command arriving in many pieces costs one pass over its headers, not one per piece. */
#ifndef SRV_RESP_H
#define SRV_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "server/srv_buf.h"

/* One argument: bytes [off, off + len) of the command's buffer. */
struct srv_resp_arg {
	size_t off, len;
};

/* Parser state of one connection. Owns argv (release with srv_resp_parser_release). */
struct srv_resp_parser {
	size_t pos;   /* bytes of the current command already parsed */
	long nargs;   /* array length; -1 until the header is parsed */
	size_t argc;  /* arguments parsed so far */
	struct srv_resp_arg *argv;
	size_t cap;
};

struct srv_resp_limits {
	size_t max_args;    /* elements of one command */
	size_t max_bulk;    /* bytes of one argument */
	size_t max_inline;  /* bytes of one inline command line */
	size_t max_command; /* bytes of one whole command */
};

enum { SRV_RESP_ERROR = -1, SRV_RESP_PARTIAL = 0, SRV_RESP_COMMAND = 1 };

/* Parses the command starting at buf[0] (len bytes available). Returns SRV_RESP_COMMAND with
 * p->argc arguments in p->argv and *used bytes consumed (argc may be 0 for an empty line or
 * "*0", which the caller skips), SRV_RESP_PARTIAL when more bytes are needed (call again with
 * the same buf start and more bytes), or SRV_RESP_ERROR with a message in err (a protocol
 * error: the stream cannot be resynchronised). After COMMAND or ERROR call
 * srv_resp_parser_reset before the next command. */
int srv_resp_parse(struct srv_resp_parser *p, const uint8_t *buf, size_t len,
		   const struct srv_resp_limits *lim, size_t *used, char *err, size_t errn);
void srv_resp_parser_reset(struct srv_resp_parser *p);
void srv_resp_parser_release(struct srv_resp_parser *p);

/* Reply writers: append one RESP element to b. Each returns 0 or ST_ENOMEM; results can be
 * OR-ed and checked once (a failed append leaves b as it was). */
int srv_resp_w_simple(struct srv_buf *b, char type, const char *s); /* '+' status, '-' error:
								     * CR/LF in s become spaces */
int srv_resp_w_int(struct srv_buf *b, int64_t v);
int srv_resp_w_bulk(struct srv_buf *b, const void *p, size_t n);
int srv_resp_w_nil(struct srv_buf *b, int resp3);
/* An aggregate header: '*' array, '%' map (RESP3; in RESP2 the caller writes an array of
 * 2n elements), '~' set. */
int srv_resp_w_agg(struct srv_buf *b, char type, size_t n);
/* RESP3: a double (",1.5"); RESP2: the same text as a bulk string. Shortest round-trip
 * form of a double or (is_float) of a float. */
int srv_resp_w_double(struct srv_buf *b, double d, int is_float, int resp3);

#endif
