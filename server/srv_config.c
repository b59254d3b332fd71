/* stratad configuration: defaults, an INI file (--config, via inih) and command-line flags,
 * applied in that order so flags override the file. */
#include "server/srv.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/st_time.h"

void srv_config_defaults(struct srv_config *c)
{
	memset(c, 0, sizeof(*c));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	strcpy(c->data_dir, "./data");
	strcpy(c->listen, "127.0.0.1:7070");
	strcpy(c->admin, "127.0.0.1:7071");
	c->threads = ncpu > 2 ? (int)(ncpu / 2) : 1;
	/* Workers mostly wait on storage (and on WAL syncs with --sync always, where more
	 * concurrent writers means bigger group commits), so more than the core count. */
	c->workers = ncpu * 4 < 16 ? 16 : (int)ncpu * 4;
	c->read_workers = ncpu < 2 ? 2 : (int)ncpu;
	c->io = SRV_IO_AUTO;
	c->sync = KV_SYNC_BATCH;
	c->max_frame = 64u << 20;
	c->max_value = KV_VALUE_MAX;
	c->max_conns = 10000;
	c->max_inflight = 1024;
	c->max_out = 8u << 20;
	c->idle_timeout_us = 300LL * 1000000;
	c->stall_timeout_us = 30LL * 1000000;
	c->handshake_timeout_us = 10LL * 1000000;
	c->frame_timeout_us = 30LL * 1000000;
	c->drain_timeout_us = 10LL * 1000000;
	c->nshards = 4;
	c->cache_bytes = 256u << 20;
	c->row_cache_bytes = 512u << 20;
	repl_options_init(&c->repl);
}

void srv_config_release(struct srv_config *c)
{
	free(c->token);
	c->token = NULL;
}

int srv_parse_addr(const char *s, char *host, size_t hostn, int *port, struct st_error *err)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return st_error_set(err, ST_EINVAL, "address '%s' is not HOST:PORT", s);
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0) {
		h = "127.0.0.1";
		hl = strlen(h);
	}
	if (hl >= hostn)
		return st_error_set(err, ST_EINVAL, "host in '%s' is too long", s);
	memcpy(host, h, hl);
	host[hl] = '\0';
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
		return st_error_set(err, ST_EINVAL, "bad port in address '%s'", s);
	*port = (int)p;
	return 0;
}

static int srv_parse_size(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v)
		return -1;
	uint64_t mul = 1;
	switch (tolower((unsigned char)*end)) {
	case 'k': mul = 1ull << 10; end++; break;
	case 'm': mul = 1ull << 20; end++; break;
	case 'g': mul = 1ull << 30; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -1;
	*out = n * mul;
	return 0;
}

static int srv_parse_int(const char *v, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

static int srv_copy(char *dst, size_t n, const char *v)
{
	if (strlen(v) >= n)
		return -1;
	strcpy(dst, v);
	return 0;
}

/* Applies one setting by its long-option name; used by both the INI file and the flags. */
static int srv_config_set(struct srv_config *c, const char *key, const char *v,
			  struct st_error *err)
{
	long n;
	uint64_t sz;
	int64_t us;
	char k[64];
	size_t i;
	for (i = 0; key[i] && i < sizeof(k) - 1; i++)
		k[i] = key[i] == '_' ? '-' : key[i];
	k[i] = '\0';
	int bad = 0;
	if (!strcmp(k, "data-dir"))
		bad = srv_copy(c->data_dir, sizeof(c->data_dir), v);
	else if (!strcmp(k, "listen"))
		bad = srv_copy(c->listen, sizeof(c->listen), v);
	else if (!strcmp(k, "admin"))
		bad = srv_copy(c->admin, sizeof(c->admin), v);
	else if (!strcmp(k, "resp"))
		bad = srv_copy(c->resp, sizeof(c->resp), strcmp(v, "off") ? v : "");
	else if (!strcmp(k, "resp-writes"))
		bad = srv_parse_int(v, 0, 1, &n) || (c->resp_writes = (int)n, 0);
	else if (!strcmp(k, "auth-token-file"))
		bad = srv_copy(c->auth_token_file, sizeof(c->auth_token_file), v);
	else if (!strcmp(k, "threads"))
		bad = srv_parse_int(v, 1, 256, &n) || (c->threads = (int)n, 0);
	else if (!strcmp(k, "workers"))
		bad = srv_parse_int(v, 1, 1024, &n) || (c->workers = (int)n, 0);
	else if (!strcmp(k, "read-workers"))
		bad = srv_parse_int(v, 1, 1024, &n) || (c->read_workers = (int)n, 0);
	else if (!strcmp(k, "shards"))
		bad = srv_parse_int(v, 1, 256, &n) || (c->nshards = (int)n, 0);
	else if (!strcmp(k, "max-conns"))
		bad = srv_parse_int(v, 1, 1000000, &n) || (c->max_conns = (int)n, 0);
	else if (!strcmp(k, "max-inflight"))
		bad = srv_parse_int(v, 1, 1000000, &n) || (c->max_inflight = (int)n, 0);
	else if (!strcmp(k, "max-frame"))
		bad = srv_parse_size(v, &sz) || sz < 64 || sz > (1u << 30) ||
		      (c->max_frame = (uint32_t)sz, 0);
	else if (!strcmp(k, "max-value"))
		bad = srv_parse_size(v, &sz) || sz < 1 || sz > KV_VALUE_MAX ||
		      (c->max_value = (uint32_t)sz, 0);
	else if (!strcmp(k, "max-output"))
		bad = srv_parse_size(v, &sz) || sz < 1024 || (c->max_out = (size_t)sz, 0);
	else if (!strcmp(k, "cache"))
		bad = srv_parse_size(v, &sz) || (c->cache_bytes = (size_t)sz, 0);
	else if (!strcmp(k, "row-cache"))
		bad = srv_parse_size(v, &sz) || (c->row_cache_bytes = (size_t)sz, 0);
	else if (!strcmp(k, "idle-timeout"))
		bad = st_dur_parse(v, &us) || (c->idle_timeout_us = us, 0);
	else if (!strcmp(k, "stall-timeout"))
		bad = st_dur_parse(v, &us) || (c->stall_timeout_us = us, 0);
	else if (!strcmp(k, "handshake-timeout"))
		bad = st_dur_parse(v, &us) || (c->handshake_timeout_us = us, 0);
	else if (!strcmp(k, "frame-timeout"))
		bad = st_dur_parse(v, &us) || (c->frame_timeout_us = us, 0);
	else if (!strcmp(k, "drain-timeout"))
		bad = st_dur_parse(v, &us) || (c->drain_timeout_us = us, 0);
	else if (!strcmp(k, "inline-reads"))
		bad = srv_parse_int(v, 0, 1, &n) || (c->inline_reads = (int)n, 0);
	else if (!strcmp(k, "net-slice-us"))
		bad = srv_parse_int(v, 0, 100000, &n) || (n > 0 && n < 100) ||
		      (c->net_slice_us = (int)n, 0);
	else if (!strcmp(k, "io")) {
		if (!strcmp(v, "auto"))
			c->io = SRV_IO_AUTO;
		else if (!strcmp(v, "uring") || !strcmp(v, "io_uring"))
			c->io = SRV_IO_URING;
		else if (!strcmp(v, "epoll") || !strcmp(v, "libevent"))
			c->io = SRV_IO_EPOLL;
		else
			bad = 1;
	} else if (!strcmp(k, "sync")) {
		if (!strcmp(v, "always"))
			c->sync = KV_SYNC_ALWAYS;
		else if (!strcmp(v, "batch"))
			c->sync = KV_SYNC_BATCH;
		else if (!strcmp(v, "none"))
			c->sync = KV_SYNC_NONE;
		else
			bad = 1;
	} else {
		int rc = repl_option_set(&c->repl, k, v ? v : "1", err);
		if (rc == ST_ENOTFOUND)
			return st_error_set(err, ST_EINVAL, "unknown setting '%s'", key);
		return rc;
	}
	if (bad)
		return st_error_set(err, ST_EINVAL, "bad value '%s' for %s", v, key);
	return 0;
}

struct srv_ini_ctx {
	struct srv_config *c;
	struct st_error *err;
	int rc;
};

static int srv_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct srv_ini_ctx *x = user;
	if (x->rc)
		return 0;
	if (*section && strcmp(section, "server") && strcmp(section, "stratad")) {
		x->rc = st_error_set(x->err, ST_EINVAL, "unknown section [%s]", section);
		return 0;
	}
	x->rc = srv_config_set(x->c, name, value, x->err);
	return x->rc == 0;
}

static int srv_read_token(struct srv_config *c, struct st_error *err)
{
	FILE *f = fopen(c->auth_token_file, "r");
	if (!f)
		return st_error_set(err, -errno, "cannot open token file %s: %s",
				    c->auth_token_file, strerror(errno));
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && isspace((unsigned char)buf[n - 1]))
		n--;
	if (n == 0)
		return st_error_set(err, ST_EINVAL, "token file %s is empty", c->auth_token_file);
	c->token = malloc(n + 1);
	if (!c->token)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	memcpy(c->token, buf, n);
	c->token[n] = '\0';
	c->token_len = n;
	return 0;
}

static void srv_usage(FILE *out)
{
	fprintf(out,
		"usage: stratad [--config FILE] [--data-dir ./data] [--listen 127.0.0.1:7070]\n"
		"               [--admin 127.0.0.1:7071|off] [--threads N] [--workers N] [--read-workers N]\n"
		"               [--io auto|uring|epoll] [--sync always|batch|none]\n"
		"               [--auth-token-file F] [--max-conns N] [--max-inflight N]\n"
		"               [--max-frame SIZE] [--max-value SIZE] [--max-output SIZE]\n"
		"               [--idle-timeout DUR] [--stall-timeout DUR] [--drain-timeout DUR]\n"
		"               [--handshake-timeout DUR] [--frame-timeout DUR]\n"
		"               [--shards N] [--cache SIZE] [--row-cache SIZE] [--inline-reads 0|1]\n"
		"               [--net-slice-us 0|100..100000]\n"
		"               [--resp HOST:PORT|off] [--resp-writes 0|1] [--ready-file F] [-v]\n"
		"               [--cluster FILE|etcd://HOST:PORT/PREFIX --node NAME] [--lease-ttl DUR]\n"
		"               [--min-sync-replicas K]\n"
		"               [--sync-timeout DUR] [--sync-degrade] [--max-replication-lag SEQS]\n"
		"               [--repl-send-timeout DUR] [--wal-ttl DUR] [--replica-max-lag DUR]\n"
		"               [--wal-pin-max DUR] [--wal-pin-mb N] [--repl-ring-kb N]\n"
		"               (docs/replication.md)\n"
		"Serves the Strata store over the wire protocol (docs/protocol.md); admin HTTP has\n"
		"/health, /metrics and /status. See docs/server.md.\n");
}

int srv_config_parse(struct srv_config *c, int argc, char **argv, struct st_error *err)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'},
		{"data-dir", required_argument, 0, 0},
		{"listen", required_argument, 0, 0},
		{"admin", required_argument, 0, 0},
		{"resp", required_argument, 0, 0},
		{"resp-writes", required_argument, 0, 0},
		{"threads", required_argument, 0, 0},
		{"workers", required_argument, 0, 0},
		{"read-workers", required_argument, 0, 0},
		{"io", required_argument, 0, 0},
		{"sync", required_argument, 0, 0},
		{"auth-token-file", required_argument, 0, 0},
		{"max-conns", required_argument, 0, 0},
		{"max-inflight", required_argument, 0, 0},
		{"max-frame", required_argument, 0, 0},
		{"max-value", required_argument, 0, 0},
		{"max-output", required_argument, 0, 0},
		{"idle-timeout", required_argument, 0, 0},
		{"stall-timeout", required_argument, 0, 0},
		{"drain-timeout", required_argument, 0, 0},
		{"handshake-timeout", required_argument, 0, 0},
		{"frame-timeout", required_argument, 0, 0},
		{"shards", required_argument, 0, 0},
		{"cache", required_argument, 0, 0},
		{"row-cache", required_argument, 0, 0},
		{"inline-reads", required_argument, 0, 0},
		{"net-slice-us", required_argument, 0, 0},
		{"ready-file", required_argument, 0, 'r'},
		{"cluster", required_argument, 0, 0},
		{"node", required_argument, 0, 0},
		{"min-sync-replicas", required_argument, 0, 0},
		{"sync-timeout", required_argument, 0, 0},
		{"sync-degrade", no_argument, 0, 0},
		{"max-replication-lag", required_argument, 0, 0},
		{"repl-send-timeout", required_argument, 0, 0},
		{"wal-ttl", required_argument, 0, 0},
		{"replica-max-lag", required_argument, 0, 0},
		{"lease-ttl", required_argument, 0, 0},
		{"wal-pin-max", required_argument, 0, 0},
		{"wal-pin-mb", required_argument, 0, 0},
		{"repl-ring-kb", required_argument, 0, 0},
		{"verbose", no_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	/* Pass 1: the config file, so that flags given anywhere override it. */
	for (int i = 1; i < argc; i++) {
		const char *file = NULL;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			file = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			file = argv[i] + 9;
		if (!file)
			continue;
		struct srv_ini_ctx x = {c, err, 0};
		int line = ini_parse(file, srv_ini_handler, &x);
		if (line < 0)
			return st_error_set(err, ST_EINVAL, "cannot read config file %s", file);
		if (x.rc || line > 0) {
			if (!x.rc)
				st_error_set(err, ST_EINVAL, "syntax error");
			st_error_prefix(err, "%s:%d", file, line);
			return ST_EINVAL;
		}
	}
	optind = 1;
	int ch, idx;
	while ((ch = getopt_long(argc, argv, "c:vh", opts, &idx)) != -1) {
		switch (ch) {
		case 0:
			if (srv_config_set(c, opts[idx].name, optarg, err))
				return ST_EINVAL;
			break;
		case 'c':
			break;
		case 'r':
			if (srv_copy(c->ready_file, sizeof(c->ready_file), optarg))
				return st_error_set(err, ST_EINVAL, "--ready-file path too long");
			break;
		case 'v':
			c->verbose = 1;
			break;
		case 'h':
			srv_usage(stdout);
			return 1;
		default:
			srv_usage(stderr);
			return st_error_set(err, ST_EINVAL, "bad command line");
		}
	}
	if (optind < argc)
		return st_error_set(err, ST_EINVAL, "unexpected argument '%s'", argv[optind]);
	if (c->auth_token_file[0] && srv_read_token(c, err))
		return err ? err->code : ST_EINVAL;
	return 0;
}
