/* stratafs command line: one parser with checked numbers (fs_config.c), used by main and
 * by tests/unit/test_fs_config.c. */
#ifndef FS_CONFIG_H
#define FS_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "common/st_err.h"

struct fs_config {
	const char *backing;      /* argv strings (not owned) */
	const char *mountpoint;
	int foreground;
	int debug;
	char user_opts[2048];     /* -o options, comma-joined */
	int64_t retention_us;     /* --trash-retention (default 7 days; 0 = forever) */
	int threads;              /* --threads, 1..1024 (default 8) */
	double attr_timeout;      /* --attr-timeout seconds, >= 0; -1: by the backing's kind */
	int writeback;            /* --writeback-cache */
	int passthrough;          /* 0 with --no-passthrough */
	int rmr_threads;          /* --rmr-threads, 1..256 (default 2) */
	int64_t rmr_rate;         /* --rmr-rate entries/s, >= 0 (0 = unlimited) */
	long max_inode_fds;       /* --max-inode-fds, >= 0; -1: from the open-file limit */
	const char *journal_dir;  /* --journal-dir: SSD journal (NULL: none) */
	int64_t journal_size;     /* --journal-size bytes, >= 16 MiB (default 8 GiB) */
	int64_t max_dirty_age_us; /* --max-dirty-age (default 5 s) */
	int close_to_open;        /* --close-to-open: written back before close returns */
	int64_t journal_bypass;   /* --journal-bypass bytes of a sequential run (default 1 MiB;
				   * 0 = never bypass) */
	int killpriv_v2;          /* 0 with --no-killpriv-v2 */
	int lifo_loop;            /* 0 with --libfuse-loop (fs_loop.h; local backings only) */
	const char *metrics;      /* --metrics HOST:PORT (NULL: no metrics endpoint) */
	const char *log_file;     /* --log-file PATH (NULL: stderr, or syslog when daemonised) */
};

void fs_config_defaults(struct fs_config *c);
/* Parses argv (getopt_long; resets optind). Returns 0, 1 when --help was printed to out,
 * or ST_EINVAL with err naming the bad option or value. */
int fs_config_parse(struct fs_config *c, int argc, char **argv, FILE *out,
		    struct st_error *err);
void fs_config_usage(FILE *f);
/* "HOST:PORT" or "[V6]:PORT" (port 0..65535) into host and port. Returns 0 or -1. */
int fs_config_hostport(const char *addr, char *host, size_t hlen, int *port);

#endif
