/* The replication stream's frames: parsing (bounded, checksummed), blocking send/receive on a
 * socket with timeouts, and the payload builders/readers every message uses. */
#include "replication/repl_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/st_fault.h"

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t frame_sum(uint8_t type, uint32_t len, const void *payload)
{
	return XXH3_64bits_withSeed(payload, len, ((uint64_t)type << 32) | len);
}

void repl_frame_release(struct repl_frame *f)
{
	free(f->payload);
	f->payload = NULL;
	f->len = 0;
}

void repl_frame_wrap(uint8_t type, const void *payload, uint32_t len, uint8_t *hdr,
		     uint8_t *trailer)
{
	memcpy(hdr, REPL_MAGIC, 4);
	hdr[4] = type;
	hdr[5] = hdr[6] = hdr[7] = 0;
	put_u32(hdr + 8, len);
	put_u64(trailer, frame_sum(type, len, payload));
}

/* Checks a header; returns 0 or ST_EPROTO. */
static int check_header(const uint8_t *h, uint32_t max, struct st_error *err)
{
	if (memcmp(h, REPL_MAGIC, 4))
		return st_error_set(err, ST_EPROTO, "replication stream: bad magic (not a Strata "
				    "replication peer?)");
	if (h[4] == 0 || h[4] > REPL_TYPE_MAX || h[5] || h[6] || h[7])
		return st_error_set(err, ST_EPROTO, "replication stream: unknown frame type %u",
				    h[4]);
	if (get_u32(h + 8) > max)
		return st_error_set(err, ST_EPROTO,
				    "replication stream: frame of %u bytes exceeds the limit %u",
				    get_u32(h + 8), max);
	return 0;
}

static int finish_frame(const uint8_t *h, const uint8_t *payload, const uint8_t *trailer,
			struct repl_frame *f, struct st_error *err)
{
	uint32_t len = get_u32(h + 8);
	if (get_u64(trailer) != frame_sum(h[4], len, payload))
		return st_error_set(err, ST_EPROTO, "replication stream: checksum mismatch in a "
				    "frame of type %u", h[4]);
	f->payload = malloc((size_t)len + 1);
	if (!f->payload)
		return st_error_set(err, ST_ENOMEM, "out of memory for a %u byte frame", len);
	memcpy(f->payload, payload, len);
	f->payload[len] = 0;
	f->type = h[4];
	f->len = len;
	return 0;
}

int repl_frame_parse(const uint8_t *buf, size_t n, uint32_t max, struct repl_frame *f,
		     size_t *used, struct st_error *err)
{
	if (n < REPL_HDR)
		return n >= 4 && memcmp(buf, REPL_MAGIC, 4) ? check_header(buf, max, err) : 1;
	int rc = check_header(buf, max, err);
	if (rc)
		return rc;
	size_t total = REPL_HDR + (size_t)get_u32(buf + 8) + REPL_TRAILER;
	if (n < total)
		return 1;
	rc = finish_frame(buf, buf + REPL_HDR, buf + total - REPL_TRAILER, f, err);
	if (!rc)
		*used = total;
	return rc;
}

/* ---- socket I/O ---- */

static int io_error(struct st_error *err, const char *what)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return st_error_set(err, ST_ECLOSED, "replication %s timed out", what);
	return st_error_set(err, ST_ECLOSED, "replication %s: %s", what, strerror(errno));
}

/* Sends every byte of iov[0..n) (modified); flags are added to MSG_NOSIGNAL. */
static int send_iov_flags(int fd, struct iovec *iov, int n, int flags, struct st_error *err)
{
	if (ST_FAULT("repl.send"))
		return st_error_set(err, ST_ECLOSED, "injected fault repl.send");
	int i = 0;
	while (i < n) {
		/* MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE that
		 * kills a process (strata-admin, tests) which did not ignore the signal */
		struct msghdr mh = {.msg_iov = iov + i, .msg_iovlen = (size_t)(n - i)};
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | flags);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return io_error(err, "send");
		}
		while (i < n && (size_t)w >= iov[i].iov_len)
			w -= (ssize_t)iov[i++].iov_len;
		if (i < n) {
			iov[i].iov_base = (uint8_t *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int send_iov(int fd, struct iovec *iov, int n, struct st_error *err)
{
	return send_iov_flags(fd, iov, n, 0, err);
}

int repl_send_file_frame(int fd, uint8_t type, int in_fd, off_t off, const void *map,
			 size_t len, struct st_error *err)
{
	if (len > REPL_FRAME_MAX)
		return st_error_set(err, ST_ELIMIT, "frame of %zu bytes is too large", len);
	uint8_t hdr[REPL_HDR], tr[REPL_TRAILER];
	repl_frame_wrap(type, map, (uint32_t)len, hdr, tr);
	/* MSG_MORE: the header goes out with the file's bytes, not in a packet of its own */
	struct iovec h = {hdr, sizeof(hdr)};
	int rc = send_iov_flags(fd, &h, 1, MSG_MORE, err);
	while (!rc && len) {
		size_t want = len;
		if (ST_FAULT("repl.sendfile.short"))
			want = len / 3 + 1; /* as a sendfile interrupted part way: the loop goes on */
		ssize_t w = sendfile(fd, in_fd, &off, want);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = io_error(err, "sendfile");
		else if (w == 0) /* the file shrank under us: never send fewer bytes than framed */
			rc = st_error_set(err, ST_EIO, "sendfile: the file ends %zu bytes early", len);
		else
			len -= (size_t)w;
	}
	struct iovec t = {tr, sizeof(tr)};
	return rc ? rc : send_iov(fd, &t, 1, err);
}

int repl_send(int fd, uint8_t type, const void *payload, size_t len, struct st_error *err)
{
	if (len > REPL_FRAME_MAX)
		return st_error_set(err, ST_ELIMIT, "frame of %zu bytes is too large", len);
	uint8_t hdr[REPL_HDR], tr[REPL_TRAILER];
	repl_frame_wrap(type, payload, (uint32_t)len, hdr, tr);
	struct iovec iov[3] = {{hdr, sizeof(hdr)}, {(void *)payload, len}, {tr, sizeof(tr)}};
	return send_iov(fd, iov, 3, err);
}

void repl_w_frame(struct repl_wbuf *w, uint8_t type, const void *payload, size_t len)
{
	uint8_t hdr[REPL_HDR], tr[REPL_TRAILER];
	if (len > REPL_FRAME_MAX) {
		w->bad = 1;
		return;
	}
	repl_frame_wrap(type, payload, (uint32_t)len, hdr, tr);
	repl_w_bytes(w, hdr, sizeof(hdr));
	repl_w_bytes(w, payload, len);
	repl_w_bytes(w, tr, sizeof(tr));
}

int repl_send_wbuf(int fd, struct repl_wbuf *w, struct st_error *err)
{
	if (w->bad)
		return st_error_set(err, ST_ENOMEM, "out of memory for queued frames");
	struct iovec iov = {w->p, w->n};
	int rc = w->n ? send_iov(fd, &iov, 1, err) : 0;
	w->n = 0;
	return rc;
}

/* One read of up to n bytes (n > 0): how many arrived, or an error (closed, timed out). */
static ssize_t read_some(int fd, void *buf, size_t n, struct st_error *err)
{
	for (;;) {
		ssize_t r = read(fd, buf, n);
		if (r > 0)
			return r;
		if (r == 0)
			return st_error_set(err, ST_ECLOSED, "replication peer closed the connection");
		if (errno != EINTR)
			return io_error(err, "receive");
	}
}

static int read_full(int fd, void *buf, size_t n, struct st_error *err)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = read_some(fd, p, n, err);
		if (r < 0)
			return (int)r;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int repl_recv(int fd, uint32_t max, struct repl_frame *f, struct st_error *err)
{
	uint8_t hdr[REPL_HDR], tr[REPL_TRAILER];
	int rc = read_full(fd, hdr, sizeof(hdr), err);
	if (rc || (rc = check_header(hdr, max, err)))
		return rc;
	uint32_t len = get_u32(hdr + 8);
	uint8_t *payload = malloc((size_t)len + 1);
	if (!payload)
		return st_error_set(err, ST_ENOMEM, "out of memory for a %u byte frame", len);
	if (!(rc = read_full(fd, payload, len, err)) && !(rc = read_full(fd, tr, sizeof(tr), err)) &&
	    get_u64(tr) != frame_sum(hdr[4], len, payload))
		rc = st_error_set(err, ST_EPROTO, "replication stream: checksum mismatch in a "
				  "frame of type %u", hdr[4]);
	if (rc) {
		free(payload);
		return rc;
	}
	payload[len] = 0;
	f->type = hdr[4];
	f->len = len;
	f->payload = payload;
	return 0;
}

void repl_reader_init(struct repl_reader *rd, int fd)
{
	memset(rd, 0, sizeof(*rd));
	rd->fd = fd;
}

void repl_reader_release(struct repl_reader *rd)
{
	free(rd->buf);
	rd->buf = NULL;
	rd->off = rd->len = rd->cap = 0;
}

int repl_reader_ready(const struct repl_reader *rd, uint8_t *type)
{
	size_t n = rd->len - rd->off;
	const uint8_t *h = rd->buf + rd->off;
	if (n < REPL_HDR || n < REPL_HDR + (size_t)get_u32(h + 8) + REPL_TRAILER)
		return 0;
	*type = h[4];
	return 1;
}

/* Reads until a whole frame is buffered at rd->off (its header checked); 0 or an error. */
/* One read into the buffer, after moving what is unread to its start and making room for at
 * least `want` bytes in all. */
static int reader_more(struct repl_reader *rd, size_t want, struct st_error *err)
{
	size_t n = rd->len - rd->off;
	if (rd->off) {
		memmove(rd->buf, rd->buf + rd->off, n);
		rd->off = 0;
		rd->len = n;
	}
	if (want < REPL_READ_CHUNK)
		want = REPL_READ_CHUNK;
	if (rd->cap < want) {
		uint8_t *p = realloc(rd->buf, want);
		if (!p)
			return st_error_set(err, ST_ENOMEM, "out of memory for a %zu byte frame", want);
		rd->buf = p;
		rd->cap = want;
	}
	ssize_t r = read_some(rd->fd, rd->buf + rd->len, rd->cap - rd->len, err);
	if (r < 0)
		return (int)r;
	rd->len += (size_t)r;
	return 0;
}

/* Reads until the next frame is buffered whole (header_only: its header), checked. */
static int reader_fill_to(struct repl_reader *rd, uint32_t max, int header_only,
			  struct st_error *err)
{
	for (;;) {
		size_t n = rd->len - rd->off;
		const uint8_t *h = rd->buf + rd->off;
		if (n >= 4 && memcmp(h, REPL_MAGIC, 4))
			return check_header(h, max, err);
		if (n >= REPL_HDR) {
			int rc = check_header(h, max, err);
			if (rc)
				return rc;
			if (header_only || n >= REPL_HDR + (size_t)get_u32(h + 8) + REPL_TRAILER)
				return 0;
		}
		/* more bytes needed: room for at least the whole frame */
		int rc = reader_more(rd, n >= REPL_HDR ? REPL_HDR + (size_t)get_u32(h + 8) +
							 REPL_TRAILER
						       : REPL_HDR, err);
		if (rc)
			return rc;
	}
}

static int reader_fill(struct repl_reader *rd, uint32_t max, struct st_error *err)
{
	return reader_fill_to(rd, max, 0, err);
}

int repl_reader_peek(struct repl_reader *rd, uint32_t max, uint8_t *type, uint32_t *len,
		     struct st_error *err)
{
	int rc = reader_fill_to(rd, max, 1, err);
	if (!rc) {
		*type = rd->buf[rd->off + 4];
		*len = get_u32(rd->buf + rd->off + 8);
	}
	return rc;
}

static int write_full(int fd, const uint8_t *p, size_t n, off_t off, struct st_error *err)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return st_error_set(err, ST_EIO, "write: %s", w < 0 ? strerror(errno) : "no space");
		p += w, n -= (size_t)w, off += w;
	}
	return 0;
}

/* `n` bytes from the socket to out at `off` through the pipe: socket -> pipe moves page
 * references, pipe -> file copies once into the page cache (no user-space copy). */
static int splice_to_file(int sock, const int pipefd[2], int out, off_t off, size_t n,
			  struct st_error *err)
{
	while (n) {
		ssize_t in = splice(sock, NULL, pipefd[1], NULL, n, SPLICE_F_MOVE);
		if (in < 0 && errno == EINTR)
			continue;
		if (in == 0)
			return st_error_set(err, ST_ECLOSED, "replication peer closed the connection");
		if (in < 0)
			return io_error(err, "receive");
		for (ssize_t left = in; left;) {
			ssize_t w = splice(pipefd[0], NULL, out, &off, (size_t)left, SPLICE_F_MOVE);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return st_error_set(err, ST_EIO, "write: %s",
						    w < 0 ? strerror(errno) : "no space");
			left -= w;
		}
		n -= (size_t)in;
	}
	return 0;
}

/* The frame's checksum, and the caller's running hash, over [off, off + len) of out as it
 * is now in the page cache (read-only mapping from the page below off). */
static int check_file_part(int out, off_t off, uint8_t type, uint32_t len, uint64_t sum,
			   XXH3_state_t *h, struct st_error *err)
{
	if (!len)
		return sum == frame_sum(type, 0, "") ? 0
		       : st_error_set(err, ST_EPROTO, "replication stream: checksum mismatch in a "
				      "frame of type %u", type);
	off_t base = off & ~(off_t)(sysconf(_SC_PAGESIZE) - 1);
	size_t span = (size_t)(off - base) + len;
	uint8_t *map = mmap(NULL, span, PROT_READ, MAP_SHARED, out, base);
	if (map == MAP_FAILED)
		return st_error_set(err, ST_EIO, "mmap: %s", strerror(errno));
	const uint8_t *p = map + (off - base);
	int rc = 0;
	if (sum != frame_sum(type, len, p))
		rc = st_error_set(err, ST_EPROTO, "replication stream: checksum mismatch in a "
				  "frame of type %u", type);
	else if (h)
		XXH3_64bits_update(h, p, len);
	munmap(map, span);
	return rc;
}

int repl_reader_to_file(struct repl_reader *rd, const int pipefd[2], int out, uint64_t off,
			XXH3_state_t *h, uint32_t *plen, struct st_error *err)
{
	const uint8_t *hd = rd->buf + rd->off;
	uint8_t type = hd[4];
	uint32_t len = get_u32(hd + 8);
	size_t have = rd->len - rd->off - REPL_HDR;
	size_t from_buf = have < len ? have : len;
	/* the part of the payload already buffered is written from the buffer */
	int rc = write_full(out, hd + REPL_HDR, from_buf, (off_t)off, err);
	rd->off += REPL_HDR + from_buf;
	if (!rc && from_buf < len) {
		rd->off = rd->len = 0; /* everything buffered was this frame's */
		rc = splice_to_file(rd->fd, pipefd, out, (off_t)(off + from_buf), len - from_buf,
				    err);
	}
	/* the trailer (and perhaps what follows it) through the buffer */
	while (!rc && rd->len - rd->off < REPL_TRAILER)
		rc = reader_more(rd, REPL_TRAILER, err);
	if (rc)
		return rc;
	uint64_t sum = get_u64(rd->buf + rd->off);
	rd->off += REPL_TRAILER;
	*plen = len;
	return check_file_part(out, (off_t)off, type, len, sum, h, err);
}

int repl_reader_next(struct repl_reader *rd, uint32_t max, struct repl_frame *f,
		     struct st_error *err)
{
	size_t used;
	int rc = reader_fill(rd, max, err);
	if (!rc)
		rc = repl_frame_parse(rd->buf + rd->off, rd->len - rd->off, max, f, &used, err);
	if (!rc)
		rd->off += used;
	return rc;
}

int repl_reader_view(struct repl_reader *rd, uint32_t max, struct repl_frame *f,
		     struct st_error *err)
{
	int rc = reader_fill(rd, max, err);
	if (rc)
		return rc;
	const uint8_t *h = rd->buf + rd->off;
	uint32_t len = get_u32(h + 8);
	if (get_u64(h + REPL_HDR + len) != frame_sum(h[4], len, h + REPL_HDR))
		return st_error_set(err, ST_EPROTO, "replication stream: checksum mismatch in a "
				    "frame of type %u", h[4]);
	f->type = h[4];
	f->len = len;
	f->payload = (uint8_t *)h + REPL_HDR;
	rd->off += REPL_HDR + (size_t)len + REPL_TRAILER;
	return 0;
}

void repl_send_error(int fd, int code, const char *msg)
{
	struct repl_wbuf w = {0};
	repl_w_u32(&w, (uint32_t)code);
	repl_w_str(&w, msg);
	if (!w.bad)
		repl_send(fd, REPL_ERROR, w.p, w.n, NULL);
	repl_wbuf_release(&w);
}

void repl_set_timeouts(int fd, int64_t send_us, int64_t recv_us)
{
	struct timeval s = {send_us / 1000000, send_us % 1000000};
	struct timeval r = {recv_us / 1000000, recv_us % 1000000};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof(s));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, sizeof(r));
}

int repl_connect(const char *addr, int64_t timeout_us, struct st_error *err)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || colon == addr)
		return st_error_set(err, ST_EINVAL, "address '%s' is not HOST:PORT", addr);
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	int g = getaddrinfo(host, colon + 1, &hints, &ai);
	if (g)
		return st_error_set(err, ST_EINVAL, "%s: %s", addr, gai_strerror(g));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = fd < 0 ? -errno : 0;
	if (!rc && connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
		rc = -errno;
	freeaddrinfo(ai);
	if (!rc) {
		struct pollfd p = {fd, POLLOUT, 0};
		int n = poll(&p, 1, (int)(timeout_us / 1000));
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (n == 0)
			rc = -ETIMEDOUT;
		else if (n < 0)
			rc = -errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
			rc = -soerr;
	}
	if (rc) {
		if (fd >= 0)
			close(fd);
		return st_error_set(err, ST_ECLOSED, "connect to %s: %s", addr, strerror(-rc));
	}
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* ---- payloads ---- */

static int w_reserve(struct repl_wbuf *w, size_t n)
{
	if (w->bad)
		return -1;
	if (w->n + n <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap * 2 : 256;
	while (cap < w->n + n)
		cap *= 2;
	uint8_t *p = realloc(w->p, cap);
	if (!p) {
		w->bad = 1;
		return -1;
	}
	w->p = p;
	w->cap = cap;
	return 0;
}

void repl_w_bytes(struct repl_wbuf *w, const void *p, size_t n)
{
	if (w_reserve(w, n))
		return;
	if (n)
		memcpy(w->p + w->n, p, n);
	w->n += n;
}

void repl_w_u32(struct repl_wbuf *w, uint32_t v)
{
	uint8_t b[4];
	put_u32(b, v);
	repl_w_bytes(w, b, 4);
}

void repl_w_u64(struct repl_wbuf *w, uint64_t v)
{
	uint8_t b[8];
	put_u64(b, v);
	repl_w_bytes(w, b, 8);
}

void repl_w_str(struct repl_wbuf *w, const char *s)
{
	size_t n = strlen(s);
	repl_w_u32(w, (uint32_t)n);
	repl_w_bytes(w, s, n);
}

void repl_wbuf_release(struct repl_wbuf *w)
{
	free(w->p);
	memset(w, 0, sizeof(*w));
}

static const uint8_t *r_take(struct repl_rbuf *r, size_t n)
{
	if (r->bad || r->n - r->off < n) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

uint32_t repl_r_u32(struct repl_rbuf *r)
{
	const uint8_t *p = r_take(r, 4);
	return p ? get_u32(p) : 0;
}

uint64_t repl_r_u64(struct repl_rbuf *r)
{
	const uint8_t *p = r_take(r, 8);
	return p ? get_u64(p) : 0;
}

void repl_r_str(struct repl_rbuf *r, char *buf, size_t cap)
{
	buf[0] = 0;
	uint32_t n = repl_r_u32(r);
	if (n >= cap) {
		r->bad = 1;
		return;
	}
	const uint8_t *p = r_take(r, n);
	if (!p)
		return;
	if (memchr(p, 0, n)) {
		r->bad = 1;
		return;
	}
	memcpy(buf, p, n);
	buf[n] = 0;
}

const uint8_t *repl_r_rest(struct repl_rbuf *r, size_t *n)
{
	*n = r->bad ? 0 : r->n - r->off;
	const uint8_t *p = r->p + r->off;
	r->off = r->n;
	return p;
}
