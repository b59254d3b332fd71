/* stratafs options: every number is checked (whole string, range) instead of atoi. */
#include "fuse/fs_config.h"
#include "common/st_num.h"
#include "common/st_time.h"

#include <getopt.h>
#include <math.h>
#include <string.h>

void fs_config_defaults(struct fs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->retention_us = 7LL * 86400 * 1000000;
	c->threads = 8;
	c->attr_timeout = -1;
	c->passthrough = 1;
	c->killpriv_v2 = 1;
	c->lifo_loop = 1;
	c->rmr_threads = 2;
	c->max_inode_fds = -1;
	c->journal_size = 8LL << 30;
	c->max_dirty_age_us = 5000000;
	c->journal_bypass = 1LL << 20;
}

/* "8G", "512M", "4096": bytes with an optional K/M/G/T suffix (powers of 1024). */
static int size_parse(const char *v, int64_t *out)
{
	size_t n = strlen(v);
	int shift = 0;
	if (n > 1) {
		const char *u = strchr("KMGT", v[n - 1] & ~0x20);
		if (u && (v[n - 1] & ~0x20)) {
			shift = 10 * (int)(u - "KMGT" + 1);
			n--;
		}
	}
	int64_t x;
	if (st_parse_i64(v, n, &x) != 0 || x < 0 || x > (INT64_MAX >> shift))
		return -1;
	*out = x << shift;
	return 0;
}

void fs_config_usage(FILE *f)
{
	fprintf(f,
		"usage: stratafs BACKING_DIR MOUNTPOINT [options]\n"
		"  -f                      stay in the foreground\n"
		"  -d                      FUSE debug output (implies -f)\n"
		"  -o OPTS                 mount options (allow_other, ro, ...)\n"
		"  --trash-retention D     keep deleted entries this long (default 7d; 0 = forever)\n"
		"  --threads N             FUSE worker threads (default 8)\n"
		"  --attr-timeout S        kernel attribute/entry cache, seconds (default 30 on a local\n"
		"                          backing, 1 on a network filesystem)\n"
		"  --writeback-cache       let the kernel cache writes (turns passthrough off)\n"
		"  --no-passthrough        send reads and writes through the daemon even where the\n"
		"                          kernel could do them on the backing file directly\n"
		"  --rmr-threads N         reclaimer concurrency (default 2)\n"
		"  --rmr-rate N            reclaimer limit, entries per second (default unlimited)\n"
		"  --max-inode-fds N       inodes holding an open fd; the rest keep a file handle\n"
		"                          (default: 3/4 of the open file limit)\n"
		"  --journal-dir DIR       SSD journal: writes and fsync at the journal's cost, written\n"
		"                          back to BACKING_DIR in the background\n"
		"  --journal-size N        journal space (default 8G, at least 16M)\n"
		"  --max-dirty-age D       longest a write waits for writeback (default 5s)\n"
		"  --close-to-open         write a file back before its close returns\n"
		"  --journal-bypass N      sequential runs above N go straight to BACKING_DIR\n"
		"                          (default 1M; 0 = never)\n"
		"  --no-killpriv-v2        let the kernel clear setuid/setgid (it then asks for\n"
		"                          security.capability before every write)\n"
		"  --libfuse-loop          use libfuse's multithreaded loop (default on a local\n"
		"                          backing: one reader thread, see docs/stratafs.md)\n"
		"  --metrics HOST:PORT     serve Prometheus metrics at http://HOST:PORT/metrics\n"
		"  --log-file PATH         append the log to PATH (default: stderr in the\n"
		"                          foreground, syslog when daemonised)\n"
		"  --version               print the version and exit\n");
}

static int int_in(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t n;
	if (st_parse_i64(v, strlen(v), &n) != 0 || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

int fs_config_hostport(const char *addr, char *host, size_t hlen, int *port)
{
	const char *colon = strrchr(addr, ':');
	int64_t p;
	if (!colon || colon == addr || (size_t)(colon - addr) >= hlen ||
	    st_parse_i64(colon + 1, strlen(colon + 1), &p) != 0 || p < 0 || p > 65535)
		return -1;
	size_t n = (size_t)(colon - addr);
	if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') { /* [::1]:9100 */
		addr++;
		n -= 2;
	}
	memcpy(host, addr, n);
	host[n] = 0;
	*port = (int)p;
	return 0;
}

/* One option with an argument; returns 0 or -1 (bad value). */
static int set_opt(struct fs_config *c, int opt, const char *v)
{
	int64_t n;
	double d;
	switch (opt) {
	case 'o': {
		size_t ul = strlen(c->user_opts);
		if (ul + strlen(v) + 2 > sizeof(c->user_opts))
			return -1;
		snprintf(c->user_opts + ul, sizeof(c->user_opts) - ul, "%s%s", ul ? "," : "", v);
		return 0;
	}
	case 'R':
		return st_dur_parse(v, &c->retention_us) == 0 && c->retention_us >= 0 ? 0 : -1;
	case 'T':
		return int_in(v, 1, 1024, &n) ? -1 : (c->threads = (int)n, 0);
	case 'A':
		if (st_parse_f64(v, strlen(v), &d) != 0 || !isfinite(d) || d < 0 || d > 86400)
			return -1;
		c->attr_timeout = d;
		return 0;
	case 'M':
		return int_in(v, 1, 256, &n) ? -1 : (c->rmr_threads = (int)n, 0);
	case 'L':
		return int_in(v, 0, INT64_MAX, &n) ? -1 : (c->rmr_rate = n, 0);
	case 'F':
		return int_in(v, 0, 1L << 30, &n) ? -1 : (c->max_inode_fds = (long)n, 0);
	case 'J':
		return v[0] ? (c->journal_dir = v, 0) : -1;
	case 'S':
		return size_parse(v, &c->journal_size) == 0 && c->journal_size >= (16LL << 20) ? 0 : -1;
	case 'D':
		return st_dur_parse(v, &c->max_dirty_age_us) == 0 && c->max_dirty_age_us > 0 ? 0 : -1;
	case 'B':
		return size_parse(v, &c->journal_bypass);
	case 'X': {
		char host[256];
		int port;
		return fs_config_hostport(v, host, sizeof(host), &port) ? -1 : (c->metrics = v, 0);
	}
	case 'G':
		return v[0] ? (c->log_file = v, 0) : -1;
	}
	return -1;
}

int fs_config_parse(struct fs_config *c, int argc, char **argv, FILE *out,
		    struct st_error *err)
{
	static const struct option lo[] = {
		{ "trash-retention", required_argument, 0, 'R' },
		{ "threads", required_argument, 0, 'T' },
		{ "attr-timeout", required_argument, 0, 'A' },
		{ "writeback-cache", no_argument, 0, 'W' },
		{ "no-passthrough", no_argument, 0, 'P' },
		{ "rmr-threads", required_argument, 0, 'M' },
		{ "rmr-rate", required_argument, 0, 'L' },
		{ "max-inode-fds", required_argument, 0, 'F' },
		{ "journal-dir", required_argument, 0, 'J' },
		{ "journal-size", required_argument, 0, 'S' },
		{ "max-dirty-age", required_argument, 0, 'D' },
		{ "close-to-open", no_argument, 0, 'C' },
		{ "journal-bypass", required_argument, 0, 'B' },
		{ "no-killpriv-v2", no_argument, 0, 'K' },
		{ "libfuse-loop", no_argument, 0, 'U' },
		{ "metrics", required_argument, 0, 'X' },
		{ "log-file", required_argument, 0, 'G' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	optind = 0; /* full reinitialisation (tests parse several times) */
	opterr = 0;
	int o, li;
	while ((o = getopt_long(argc, argv, "fdo:h", lo, &li)) != -1) {
		switch (o) {
		case 'f':
			c->foreground = 1;
			break;
		case 'd':
			c->foreground = c->debug = 1;
			break;
		case 'W':
			c->writeback = 1;
			break;
		case 'P':
			c->passthrough = 0;
			break;
		case 'C':
			c->close_to_open = 1;
			break;
		case 'K':
			c->killpriv_v2 = 0;
			break;
		case 'U':
			c->lifo_loop = 0;
			break;
		case 'h':
			fs_config_usage(out);
			return 1;
		case '?':
		case ':':
			return st_error_set(err, ST_EINVAL, "unknown option or missing value: %s",
					    argv[optind - 1]);
		default:
			if (set_opt(c, o, optarg) != 0) {
				const char *name = "o";
				for (const struct option *p = lo; p->name; p++)
					if (p->val == o)
						name = p->name;
				return st_error_set(err, ST_EINVAL, "bad value for %s%s: '%s'",
						    o == 'o' ? "-" : "--", name, optarg);
			}
		}
	}
	if (argc - optind != 2)
		return st_error_set(err, ST_EINVAL, "expected BACKING_DIR MOUNTPOINT");
	c->backing = argv[optind];
	c->mountpoint = argv[optind + 1];
	return 0;
}
