/* The replication stream's frames, shared by primary, replica and the admin commands.
 *
 * A frame is   magic "SRP1" | type u8 | 3 zero bytes | payload length u32le | payload |
 *              XXH3-64 of (type, length, payload) u64le.
 * Payloads are built from fixed-width little-endian integers and length-prefixed strings
 * (struct repl_wbuf / struct repl_rbuf). Anything else on the wire is a protocol error. */
#ifndef REPL_STREAM_H
#define REPL_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <xxhash.h>

#include "common/st_err.h"

#define REPL_MAGIC "SRP1"
#define REPL_HDR 12
#define REPL_TRAILER 8
#define REPL_FRAME_MAX (64u << 20) /* payload bytes */
#define REPL_PROTO_VERSION 3

enum repl_type {
	REPL_HELLO = 1,      /* R->P: version, shard, layout version, node, replid, next_seq,
			      * flags (REPL_HELLO_RESYNC), own replid, own latest + 1 */
	REPL_REGISTRY = 2,   /* P->R: registry JSON */
	REPL_BATCH = 3,      /* P->R: seq u64, write batch bytes */
	REPL_HEARTBEAT = 4,  /* P->R: latest seq u64, primary wall clock us i64, epoch u64 */
	REPL_ACK = 5,        /* R->P: next_seq u64 (everything before it is applied), epoch u64 */
	REPL_RESYNC = 6,     /* P->R: replid, next_seq u64, ingest clock i64, nfiles u32,
			      * total bytes u64 */
	REPL_FILE = 7,       /* P->R: name, size u64 */
	REPL_DATA = 8,       /* P->R: bytes of the current file */
	REPL_FILE_END = 9,   /* P->R: XXH3-64 of the file u64 */
	REPL_RESYNC_END = 10,/* P->R: (empty) */
	REPL_ERROR = 11,     /* either: code i32, message */
	REPL_ADMIN = 12,     /* admin->node: JSON request {"cmd": ...} */
	REPL_ADMIN_REPLY = 13, /* node->admin: JSON reply */
	REPL_REWIND = 14,    /* P->R: replid, next_seq u64, undo_from u64 (0 = none named: a
			      * replica of the fork's history beyond from_next finds its own),
			      * the fork: from_replid, from_next u64 (then the primary closes;
			      * before it, BATCH frames bring a replica behind from_next there) */
	REPL_TYPE_MAX = 14,
};
#define REPL_HELLO_RESYNC 1u /* the replica asks for a full resync */

struct repl_frame {
	uint8_t type;
	uint32_t len;
	uint8_t *payload; /* owned, len bytes (+1 NUL for convenience); free with repl_frame_release */
};
void repl_frame_release(struct repl_frame *f);

/* Parses one frame from buf[0..n). Returns 0 and *used on success (f->payload malloc'ed),
 * 1 when more bytes are needed, or ST_EPROTO (bad magic, type, length over `max`, checksum)
 * with err set. Never reads past n. */
int repl_frame_parse(const uint8_t *buf, size_t n, uint32_t max, struct repl_frame *f,
		     size_t *used, struct st_error *err);
/* Header + trailer around a payload: fills hdr (REPL_HDR bytes) and trailer. */
void repl_frame_wrap(uint8_t type, const void *payload, uint32_t len, uint8_t *hdr,
		     uint8_t *trailer);

/* Blocking socket I/O. Send/receive timeouts come from the socket (SO_SNDTIMEO/RCVTIMEO):
 * a timeout is ST_ECLOSED with "timed out" in the message. */
int repl_send(int fd, uint8_t type, const void *payload, size_t len, struct st_error *err);
/* As repl_send, for a payload that is bytes [off, off + len) of the file in_fd: they go
 * from the page cache to the socket with sendfile (no copy through user space; short
 * sendfiles continue where they stopped); `map` is the same bytes mapped, for the frame's
 * checksum. */
int repl_send_file_frame(int fd, uint8_t type, int in_fd, off_t off, const void *map,
			 size_t len, struct st_error *err);
int repl_recv(int fd, uint32_t max, struct repl_frame *f, struct st_error *err);
/* Queued sending: frames appended to a buffer go out with one send (a burst of batches
 * costs one syscall); repl_send_wbuf empties the buffer whether or not it succeeded. */
struct repl_wbuf;
void repl_w_frame(struct repl_wbuf *w, uint8_t type, const void *payload, size_t len);
int repl_send_wbuf(int fd, struct repl_wbuf *w, struct st_error *err);
/* Buffered receiving: one read() takes whatever has arrived and frames are parsed from the
 * buffer, so a burst of frames costs one syscall, and repl_reader_ready says, without
 * blocking, whether a whole frame is already there (a replica merges the batches it has). */
#define REPL_READ_CHUNK (256u << 10)
struct repl_reader {
	int fd;
	uint8_t *buf;
	size_t off, len, cap;
};
void repl_reader_init(struct repl_reader *rd, int fd);
void repl_reader_release(struct repl_reader *rd);
/* The next frame, as repl_recv (blocking, the socket's timeout). */
int repl_reader_next(struct repl_reader *rd, uint32_t max, struct repl_frame *f,
		     struct st_error *err);
/* As repl_reader_next without a copy: f->payload points into the reader's buffer (not
 * NUL-terminated) and stays valid until the next call on rd; do not release it. */
int repl_reader_view(struct repl_reader *rd, uint32_t max, struct repl_frame *f,
		     struct st_error *err);
/* The next frame's header (type, payload length), checked, without consuming the frame. */
int repl_reader_peek(struct repl_reader *rd, uint32_t max, uint8_t *type, uint32_t *len,
		     struct st_error *err);
/* Consumes the frame repl_reader_peek saw, writing its payload to `out` at `off`: the part
 * already buffered with pwrite, the rest spliced from the socket through `pipefd` (no copy
 * through user space). The frame's checksum is then checked on the written bytes (read back
 * from the page cache) and they are added to `h` (when not NULL); a mismatch is EPROTO
 * with the bytes already in the file (the caller discards the file). *len: payload bytes. */
int repl_reader_to_file(struct repl_reader *rd, const int pipefd[2], int out, uint64_t off,
			XXH3_state_t *h, uint32_t *len, struct st_error *err);
/* 1 and its type when a whole frame is buffered (not yet checked), else 0. */
int repl_reader_ready(const struct repl_reader *rd, uint8_t *type);
/* Sends an ERROR frame (best effort). */
void repl_send_error(int fd, int code, const char *msg);

/* Payload building: grows as needed; `bad` is set on allocation failure. */
struct repl_wbuf {
	uint8_t *p;
	size_t n, cap;
	int bad;
};
void repl_w_u32(struct repl_wbuf *w, uint32_t v);
void repl_w_u64(struct repl_wbuf *w, uint64_t v);
void repl_w_str(struct repl_wbuf *w, const char *s);
void repl_w_bytes(struct repl_wbuf *w, const void *p, size_t n);
void repl_wbuf_release(struct repl_wbuf *w);

/* Payload reading: any read past the end sets `bad` and yields zeros / "". */
struct repl_rbuf {
	const uint8_t *p;
	size_t n, off;
	int bad;
};
uint32_t repl_r_u32(struct repl_rbuf *r);
uint64_t repl_r_u64(struct repl_rbuf *r);
/* Copies a string of at most cap-1 bytes into buf (longer or containing NUL: bad). */
void repl_r_str(struct repl_rbuf *r, char *buf, size_t cap);
/* The remaining bytes. */
const uint8_t *repl_r_rest(struct repl_rbuf *r, size_t *n);

/* Connects to HOST:PORT with a timeout; returns the fd or a negative code with err set. */
int repl_connect(const char *addr, int64_t timeout_us, struct st_error *err);
/* Sets SO_SNDTIMEO / SO_RCVTIMEO (0 = none). */
void repl_set_timeouts(int fd, int64_t send_us, int64_t recv_us);

#endif
