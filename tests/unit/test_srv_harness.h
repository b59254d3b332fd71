/* Test harness for the server tests: starts a real stratad ($BIN/stratad) in its own
 * temporary directory on an ephemeral loopback port, talks raw frames to it, and stops,
 * kills or restarts it. The io backend comes from the caller so every test runs on both. */
#ifndef TEST_SRV_HARNESS_H
#define TEST_SRV_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "client/strata.h"
#include "proto/strata.pb-c.h"

struct srvh {
	char dir[256];
	char addr[64];
	int port, admin_port;
	int resp_port; /* 0 when the server has no RESP port */
	pid_t pid;
	char io[16];
	char extra[8][128];
	int nextra;
	int nofile; /* RLIMIT_NOFILE for the server (hard and soft), 0 = inherit */
};

static inline int srvh_rm_cb(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s, (void)f, (void)w;
	return remove(p);
}

static inline void srvh_rm_rf(const char *d)
{
	nftw(d, srvh_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* xorshift64: the tests' seeded random numbers. */
static inline uint64_t srvh_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline int64_t srvh_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void srvh_die(const struct srvh *h, const char *what)
{
	fprintf(stderr, "harness: %s (server dir %s; log follows)\n", what, h->dir);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "tail -n 30 %s/log >&2", h->dir);
	if (system(cmd) < 0)
		perror("system");
	abort();
}

/* Starts (or restarts, keeping the data dir) the server; returns when it serves. */
static inline void srvh_launch(struct srvh *h)
{
	char ready[300], log[300], data[300];
	snprintf(ready, sizeof(ready), "%s/ready", h->dir);
	snprintf(log, sizeof(log), "%s/log", h->dir);
	snprintf(data, sizeof(data), "%s/data", h->dir);
	unlink(ready);
	const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
	char exe[300];
	snprintf(exe, sizeof(exe), "%s/stratad", bin);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		srvh_die(h, "fork failed");
	if (pid == 0) {
		/* A failing test must not leave servers behind: die with the test process. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		char *argv[40];
		int n = 0;
		argv[n++] = exe;
		argv[n++] = "--data-dir";
		argv[n++] = data;
		argv[n++] = "--listen";
		argv[n++] = "127.0.0.1:0";
		argv[n++] = "--admin";
		argv[n++] = "127.0.0.1:0";
		argv[n++] = "--ready-file";
		argv[n++] = ready;
		argv[n++] = "--io";
		argv[n++] = h->io;
		argv[n++] = "--workers";
		argv[n++] = "8";
		for (int i = 0; i < h->nextra; i++)
			argv[n++] = h->extra[i];
		argv[n] = NULL;
		if (h->nofile) {
			struct rlimit rl = {(rlim_t)h->nofile, (rlim_t)h->nofile};
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		execv(exe, argv);
		_exit(127);
	}
	h->pid = pid;
	int64_t deadline = srvh_ms() + 20000;
	for (;;) {
		FILE *f = fopen(ready, "r");
		if (f) {
			char io[16];
			int rpid;
			int ok = fscanf(f, "%63s %d %15s %d", h->addr, &h->admin_port, io, &rpid) == 4;
			if (ok && fscanf(f, "%d", &h->resp_port) != 1)
				h->resp_port = 0;
			fclose(f);
			if (ok) {
				h->port = atoi(strrchr(h->addr, ':') + 1);
				if (strcmp(io, h->io) && strcmp(h->io, "auto"))
					srvh_die(h, "server runs another io backend than asked");
				return;
			}
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			srvh_die(h, "stratad exited during startup");
		if (srvh_ms() > deadline)
			srvh_die(h, "stratad did not become ready in 20 s");
		usleep(10000);
	}
}

/* extra: NULL-terminated list of additional flags. */
static inline void srvh_start(struct srvh *h, const char *io, const char *const *extra)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/strata-srvtest-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(h->dir))
		srvh_die(h, "mkdtemp failed");
	snprintf(h->io, sizeof(h->io), "%s", io);
	for (int i = 0; extra && extra[i] && i < 8; i++)
		snprintf(h->extra[h->nextra++], sizeof(h->extra[0]), "%s", extra[i]);
	srvh_launch(h);
}

/* SIGTERM and wait; returns the exit status (0 expected: a clean drain). */
static inline int srvh_term(struct srvh *h)
{
	if (h->pid <= 0)
		return 0;
	kill(h->pid, SIGTERM);
	int st = 0;
	int64_t deadline = srvh_ms() + 30000;
	while (waitpid(h->pid, &st, WNOHANG) != h->pid) {
		if (srvh_ms() > deadline) {
			kill(h->pid, SIGKILL);
			waitpid(h->pid, &st, 0);
			h->pid = 0;
			return -1;
		}
		usleep(5000);
	}
	h->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline void srvh_kill9(struct srvh *h)
{
	if (h->pid <= 0)
		return;
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
}

static inline int srvh_alive(const struct srvh *h)
{
	return h->pid > 0 && waitpid(h->pid, NULL, WNOHANG) == 0;
}

/* Stops the server (expecting exit 0) and removes its directory. */
static inline void srvh_stop(struct srvh *h)
{
	int rc = srvh_term(h);
	if (rc != 0) {
		fprintf(stderr, "stratad exit status %d\n", rc);
		srvh_die(h, "stratad did not exit cleanly on SIGTERM");
	}
	srvh_rm_rf(h->dir);
}

static inline strata *srvh_client(const struct srvh *h, const char *token)
{
	struct strata_connect_opts o;
	strata_connect_opts_init(&o);
	o.token = token;
	o.io_timeout_ms = 20000;
	strata *c;
	struct strata_error e = {0};
	if (strata_connect(h->addr, &o, &c, &e)) {
		fprintf(stderr, "connect %s: %s\n", h->addr, e.msg);
		srvh_die(h, "cannot connect");
	}
	return c;
}

/* ---- raw sockets ---- */

/* A plain TCP connection to one of the server's ports on loopback. */
static inline int srvh_raw_port(const struct srvh *h, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		srvh_die(h, "raw connect failed");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static inline int srvh_raw(const struct srvh *h)
{
	return srvh_raw_port(h, h->port);
}

static inline int srvh_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes within timeout_ms; returns n, 0 on EOF, -1 on timeout/error. */
static inline ssize_t srvh_read_n(int fd, void *p, size_t n, int timeout_ms)
{
	uint8_t *b = p;
	size_t got = 0;
	int64_t deadline = srvh_ms() + timeout_ms;
	while (got < n) {
		int left = (int)(deadline - srvh_ms());
		if (left <= 0)
			return -1;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, left) <= 0)
			continue;
		ssize_t r = recv(fd, b + got, n - got, 0);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECONNRESET ? 0 : -1;
		}
		got += (size_t)r;
	}
	return (ssize_t)n;
}

/* Reads one response frame; NULL on EOF or timeout (then *eof says which). */
static inline Strata__Response *srvh_read_resp(int fd, int timeout_ms, int *eof)
{
	uint8_t hdr[4];
	ssize_t r = srvh_read_n(fd, hdr, 4, timeout_ms);
	if (eof)
		*eof = r == 0;
	if (r != 4)
		return NULL;
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
		       hdr[3];
	uint8_t *buf = malloc(len + 1);
	if (!buf || srvh_read_n(fd, buf, len, timeout_ms) != (ssize_t)len) {
		free(buf);
		return NULL;
	}
	Strata__Response *resp = strata__response__unpack(NULL, len, buf);
	free(buf);
	return resp;
}

/* Packs req into a frame (malloc'd) and returns its length. */
static inline size_t srvh_frame(const Strata__Request *req, uint8_t **out)
{
	size_t n = strata__request__get_packed_size(req);
	uint8_t *f = malloc(4 + n);
	f[0] = (uint8_t)(n >> 24), f[1] = (uint8_t)(n >> 16), f[2] = (uint8_t)(n >> 8),
	f[3] = (uint8_t)n;
	strata__request__pack(req, f + 4);
	*out = f;
	return 4 + n;
}

static inline size_t srvh_ping_frame(uint64_t id, uint8_t **out)
{
	Strata__PingReq p = STRATA__PING_REQ__INIT;
	Strata__Request req = STRATA__REQUEST__INIT;
	req.id = id;
	req.op_case = STRATA__REQUEST__OP_PING;
	req.ping = &p;
	return srvh_frame(&req, out);
}

/* Sends a ping with this id on fd and returns the answer (NULL: none within 3 s; the caller
 * frees it with strata__response__free_unpacked). */
static inline Strata__Response *srvh_ping(int fd, uint64_t id)
{
	uint8_t *f;
	size_t n = srvh_ping_frame(id, &f);
	srvh_write_all(fd, f, n);
	free(f);
	return srvh_read_resp(fd, 3000, NULL);
}

/* Waits until the socket is closed by the server (EOF/reset): 1, or 0 on timeout. */
static inline int srvh_wait_closed(int fd, int timeout_ms)
{
	uint8_t buf[4096];
	int64_t deadline = srvh_ms() + timeout_ms;
	while (srvh_ms() < deadline) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 1;
	}
	return 0;
}

/* Fetches an admin HTTP path; returns the body (malloc'd) and the status code. */
static inline char *srvh_http_get(const struct srvh *h, const char *path, int *status)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)h->admin_port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		srvh_die(h, "admin connect failed");
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	srvh_write_all(fd, req, (size_t)n);
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (cap - len < 4096)
			buf = realloc(buf, cap *= 2);
		ssize_t r = srvh_read_n(fd, buf + len, 1, 5000);
		if (r <= 0)
			break;
		len++;
		ssize_t m = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (m > 0)
			len += (size_t)m;
	}
	close(fd);
	buf[len] = '\0';
	*status = 0;
	sscanf(buf, "HTTP/1.%*d %d", status);
	char *body = strstr(buf, "\r\n\r\n");
	char *out = strdup(body ? body + 4 : "");
	free(buf);
	return out;
}

/* The io backends every test runs on. */
static const char *const srvh_ios[] = {"uring", "epoll"};

#endif
