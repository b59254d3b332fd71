/* stratafs: mounts BACKING_DIR at MOUNTPOINT with a trash bin and asynchronous removal. */
#include "fuse/fs_chan.h"
#include "fuse/fs_config.h"
#include "fuse/fs_ctlmsg.h"
#include "common/st_version.h"
#include "fuse/fs_daemon.h"
#include "fuse/fs_loop.h"
#include "fuse/fs_log.h"
#include "fuse/fs_util.h"
#include "common/st_log.h"
#include "common/st_time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

struct fs_state *fs_g;

/* Once a second: fdatasync the trash index logs appended to (so at most about a second of
 * index records can be lost in a power failure); every retention/8 (1 s .. 60 s): expiry. */
static void *expiry_main(void *arg)
{
	struct fs_state *s = arg;
	int64_t period = s->trash.retention_us / 8;
	if (period < 1000000)
		period = 1000000;
	if (period > 60000000)
		period = 60000000;
	int64_t next_expiry = st_mono_us() + period;
	pthread_mutex_lock(&s->elock);
	while (!s->estop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s->econd, &s->elock, &ts);
		if (s->estop)
			break;
		pthread_mutex_unlock(&s->elock);
		fs_trash_sync(&s->trash);
		if (st_mono_us() >= next_expiry) {
			next_expiry = st_mono_us() + period;
			struct st_error err = { 0 };
			int n = fs_trash_expire(&s->trash, st_now_us(), &err);
			if (n < 0)
				st_warn("trash expiry: %s", err.msg);
			else if (n > 0)
				st_info("trash expiry: %d bucket(s) dropped", n);
		}
		pthread_mutex_lock(&s->elock);
	}
	pthread_mutex_unlock(&s->elock);
	return NULL;
}

/* --journal-dir: replays what a crash left and reports it. Writes go through the daemon:
 * passthrough is decided per open (fs_ops.c pt_attach). */
static int journal_open(struct fs_state *s, struct fs_jn *jn, const struct fs_config *cfg)
{
	struct st_error err = { 0 };
	struct fs_jreplay rep;
	if (fs_jn_open(jn, cfg->journal_dir, s->bfd, (uint64_t)cfg->journal_size,
		       cfg->max_dirty_age_us, (uint64_t)cfg->journal_bypass, cfg->close_to_open,
		       &rep, &err) != 0) {
		fprintf(stderr, "stratafs: journal: %s\n", err.msg);
		return -1;
	}
	if (rep.scan.records) {
		char line[256];
		fs_jreplay_summary(&rep, line, sizeof(line));
		fprintf(stderr, "stratafs: journal replay: %s%s%s\n", line,
			rep.scan.damaged ? "; damaged tail: " : "",
			rep.scan.damaged ? rep.scan.damage : "");
	}
	if (rep.scan.damaged)
		fprintf(stderr, "stratafs: journal: stopped at a damaged record (segment %llu, "
			"offset %llu: %s); everything before it was applied\n",
			(unsigned long long)rep.scan.damaged_seg,
			(unsigned long long)rep.scan.damaged_pos, rep.scan.damage);
	s->jrep = rep;
	s->jn = jn;
	return 0;
}

/* The kernel caps a FUSE mount's readahead at the bdi default (128 KiB) whatever
 * max_readahead init() asks for, so sequential reads arrive as 128 KiB READ requests. Raise
 * the mount's own bdi limit (found in mountinfo: the mount must not be touched before the
 * loop runs) to kb. Best effort; the bdi goes away with the mount. */
static void set_readahead(const char *mnt, unsigned kb)
{
	char esc[PATH_MAX * 4], line[PATH_MAX * 5], bdi[64] = "";
	size_t o = 0;
	for (const char *p = mnt; *p && o + 5 < sizeof(esc); p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			o += (size_t)snprintf(esc + o, 5, "\\%03o", (unsigned char)*p);
		else
			esc[o++] = *p;
	}
	esc[o] = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char mp[PATH_MAX * 4];
		const char *sep = strstr(line, " - fuse.stratafs ");
		if (sep && sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, mp) == 3 &&
		    !strcmp(mp, esc))
			snprintf(bdi, sizeof(bdi), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	}
	fclose(f);
	int fd = bdi[0] ? open(bdi, O_WRONLY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		char v[16];
		int n = snprintf(v, sizeof(v), "%u", kb);
		if (write(fd, v, (size_t)n) != n)
			st_warn("stratafs: %s: %s", bdi, strerror(errno));
		close(fd);
	}
}

/* Escapes ',' and '\' for a -o option value. */
static void opt_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (; *in && o + 2 < len; in++) {
		if (*in == ',' || *in == '\\')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o] = 0;
}

int main(int argc, char **argv)
{
	static struct fs_state state;
	struct fs_state *s = &state;
	fs_g = s;
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		st_version_print(stdout, "stratafs");
		return 0;
	}
	struct fs_config cfg;
	struct st_error perr = { 0 };
	fs_config_defaults(&cfg);
	int prc = fs_config_parse(&cfg, argc, argv, stdout, &perr);
	if (prc == 1)
		return 0;
	if (prc != 0) {
		fprintf(stderr, "stratafs: %s\n", perr.msg);
		fs_config_usage(stderr);
		return 2;
	}
	int foreground = cfg.foreground, threads = cfg.threads, rmr_threads = cfg.rmr_threads;
	int64_t retention = cfg.retention_us, rate = cfg.rmr_rate;
	long max_fds = cfg.max_inode_fds;
	const char *user_opts = cfg.user_opts;
	s->attr_timeout = cfg.attr_timeout; /* -1: chosen by the backing's kind, below */
	s->passthrough = cfg.passthrough;
	s->writeback = cfg.writeback;
	s->debug = cfg.debug;
	s->bfd = s->ctl_fd = -1;
	if (!realpath(cfg.backing, s->backing) || !realpath(cfg.mountpoint, s->mnt)) {
		fprintf(stderr, "stratafs: %s: %s\n", s->backing[0] ? cfg.mountpoint : cfg.backing,
			strerror(errno));
		return 1;
	}
	if (!strncmp(s->mnt, s->backing, strlen(s->backing)) &&
	    (s->mnt[strlen(s->backing)] == '/' || !s->mnt[strlen(s->backing)])) {
		fprintf(stderr, "stratafs: the mount point must not be inside the backing dir\n");
		return 1;
	}
	/* every inode the kernel holds keeps an O_PATH fd: allow as many as the system does */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		struct rlimit want = rl;
		FILE *f = fopen("/proc/sys/fs/nr_open", "re");
		unsigned long nr = 0;
		if (f && fscanf(f, "%lu", &nr) == 1 && nr > rl.rlim_max)
			want.rlim_max = nr;
		if (f)
			fclose(f);
		want.rlim_cur = want.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
			rl.rlim_cur = rl.rlim_max; /* no CAP_SYS_RESOURCE: up to the hard limit */
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	int rc = 1;
	struct st_error err = { 0 };
	s->bfd = open(s->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	s->root.fd = open(s->backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (s->bfd < 0 || s->root.fd < 0 || fstat(s->bfd, &st) != 0) {
		fprintf(stderr, "stratafs: %s: %s\n", s->backing, strerror(errno));
		return 1;
	}
	s->root.dev = st.st_dev;
	s->root.ino = st.st_ino;
	s->root.type = S_IFDIR;
	s->root.nlookup = 1;
	/* one daemon per backing directory: the control socket name is the lock */
	struct sockaddr_un addr;
	socklen_t al = fs_ctl_addr(s->backing, &addr);
	s->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->ctl_fd < 0 || bind(s->ctl_fd, (struct sockaddr *)&addr, al) != 0 ||
	    listen(s->ctl_fd, 64) != 0) {
		fprintf(stderr, "stratafs: %s is already served by another stratafs (%s)\n",
			s->backing, strerror(errno));
		return 1;
	}
	if (fs_itable_init(&s->itab) == 0) {
		/* keep a quarter of the fds (at least 1024) for open files and the reclaimer */
		struct rlimit now;
		long lim = getrlimit(RLIMIT_NOFILE, &now) == 0 ? (long)now.rlim_cur : 1024;
		long reserve = lim / 4 > 1024 ? lim / 4 : 1024;
		s->itab.fd_budget = lim > reserve ? lim - reserve : 0;
		if (max_fds >= 0 && max_fds < s->itab.fd_budget)
			s->itab.fd_budget = max_fds;
	}
	if (s->itab.b == NULL ||
	    fs_rmr_open(&s->rmr, s->bfd, rmr_threads, rate, &err) != 0 ||
	    fs_trash_open(&s->trash, s->bfd, retention, &s->rmr, &err) != 0) {
		fprintf(stderr, "stratafs: %s\n", err.msg[0] ? err.msg : "out of memory");
		return 1;
	}
	if (fstatat(s->bfd, FS_STATE_DIR "/trash", &st, AT_SYMLINK_NOFOLLOW) != 0) {
		fprintf(stderr, "stratafs: %s/.strata/trash: %s\n", s->backing, strerror(errno));
		return 1;
	}
	s->trash.tlinks_hook = fs_notify_attr;
	s->trash_dev = st.st_dev;
	s->trash_ino = st.st_ino;

	struct statfs sf;
	static const long network_fs[] = { 0x6969 /* nfs */, 0x517B /* smb */, (long)0xFE534D42,
					   (long)0xFF534D42 /* cifs */, 0x00C36400 /* ceph */,
					   0x65735546 /* fuse */, 0x01021997 /* 9p */,
					   0x0BD00BD0 /* lustre */, 0x47504653 /* gpfs */ };
	int network = 1; /* unknown: keep close-to-open */
	if (fstatfs(s->bfd, &sf) == 0) {
		network = 0;
		for (size_t i = 0; i < sizeof(network_fs) / sizeof(network_fs[0]); i++)
			network |= (long)sf.f_type == network_fs[i];
	}
	if (!network && !(cfg.journal_dir && cfg.close_to_open))
		fs_ops.flush = NULL;
	/* Kernel cache timeouts: on a local backing every change goes through this mount (or
	 * is notified by the daemon: rmr, restore), so entries and attributes can live long;
	 * on a shared network tree other nodes change things, so they expire after 1 s. */
	if (s->attr_timeout < 0)
		s->attr_timeout = network ? 1.0 : 30.0;
	/* Passthrough: only on local backings (a backing file the kernel releases is never
	 * flushed, which close-to-open on a network filesystem needs) and not with the
	 * writeback cache (the kernel refuses the pair). */
	s->passthrough = s->passthrough && !network && !s->writeback;
	/* one reader thread (fs_loop.h) where requests are quick: not on a network backing */
	s->lifo_loop = cfg.lifo_loop && !network;
	/* A backing filesystem without extended attributes (NFSv3, ramfs, ...): xattr requests
	 * are answered ENOSYS, which the kernel remembers for the mount (it then fails them
	 * with EOPNOTSUPP itself, as the backing does), so the security.capability question
	 * before writes and chown costs no round trip. */
	s->no_xattr = fgetxattr(s->bfd, "security.capability", NULL, 0) < 0 && errno == EOPNOTSUPP &&
		      fgetxattr(s->bfd, "user.strata.probe", NULL, 0) < 0 && errno == EOPNOTSUPP;
	static struct fs_jn jn;
	if (cfg.journal_dir && journal_open(s, &jn, &cfg) != 0)
		return 1;
	pthread_mutex_init(&s->pt_lock, NULL);

	char fsname[PATH_MAX * 2], opts[PATH_MAX * 2 + 2200];
	opt_escape(s->backing, fsname, sizeof(fsname));
	snprintf(opts, sizeof(opts), "default_permissions,fsname=%s,subtype=stratafs%s%s", fsname,
		 user_opts[0] ? "," : "", user_opts);
	char *fargv[] = { argv[0], "-o", opts, s->debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(s->debug ? 4 : 3, fargv);
	s->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), s);
	if (!s->se)
		goto out_state;
	if (fuse_set_signal_handlers(s->se) != 0)
		goto out_session;
	if (fuse_session_mount(s->se, s->mnt) != 0)
		goto out_signals;
	if (fs_chan_attach(s->se, s->passthrough, cfg.killpriv_v2) != 0) {
		st_errlog("stratafs: cannot attach to the FUSE channel");
		goto out_unmount;
	}
	if (cfg.metrics && fs_metrics_bind(s, cfg.metrics, &err) != 0) {
		fprintf(stderr, "stratafs: %s\n", err.msg);
		goto out_unmount;
	}
	if (fs_log_open(cfg.log_file, &err) != 0) {
		fprintf(stderr, "stratafs: %s\n", err.msg);
		goto out_unmount;
	}
	if (fuse_daemonize(foreground) != 0)
		goto out_unmount;
	if (fs_log_redirect(!foreground, &err) != 0)
		st_warn("stratafs: %s", err.msg); /* still on the old stderr */
	set_readahead(s->mnt, FS_READAHEAD_KB); /* = max_readahead asked in init */
	/* threads only after daemonize: they do not survive its fork */
	if (fs_notify_start(s) || fs_ctl_start(s) || fs_rmr_start(&s->rmr) ||
	    (s->jn && fs_jn_start(s->jn) != 0) || fs_metrics_start() != 0) {
		st_errlog("stratafs: cannot start background threads");
		goto out_unmount;
	}
	pthread_mutex_init(&s->elock, NULL);
	pthread_cond_init(&s->econd, NULL);
	if (pthread_create(&s->expiry_thread, NULL, expiry_main, s) == 0)
		s->expiry_running = 1;
	st_info("stratafs: %s mounted on %s (trash retention %s)%s%s", s->backing, s->mnt,
		retention ? st_dur_format(retention, (char[32]){ 0 }) : "forever",
		s->metrics_addr[0] ? ", metrics on http://" : "", s->metrics_addr);
	struct fuse_loop_config *lcfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lcfg, (unsigned)threads);
	fuse_loop_cfg_set_idle_threads(lcfg, (unsigned)(threads / 2 > 0 ? threads / 2 : 1));
	if (s->lifo_loop)
		rc = fs_loop_run(s->se, fuse_session_fd(s->se), (unsigned)threads, s->jn != NULL) ? 1 : 0;
	else
		rc = fuse_session_loop_mt(s->se, lcfg) ? 1 : 0;
	fuse_loop_cfg_destroy(lcfg);
	if (s->expiry_running) {
		pthread_mutex_lock(&s->elock);
		s->estop = 1;
		pthread_cond_signal(&s->econd);
		pthread_mutex_unlock(&s->elock);
		pthread_join(s->expiry_thread, NULL);
	}
	fs_metrics_stop();
	fs_ctl_stop(s);
	fs_rmr_stop(&s->rmr);
	fs_notify_stop(s);
out_unmount:
	if (s->jn)
		fs_jn_close(s->jn); /* writes everything back before the mount goes away */
	fuse_session_unmount(s->se);
out_signals:
	fuse_remove_signal_handlers(s->se);
out_session:
	fuse_session_destroy(s->se);
out_state:
	fuse_opt_free_args(&args);
	fs_trash_close(&s->trash);
	fs_rmr_close(&s->rmr);
	fs_itable_destroy(&s->itab);
	close(s->ctl_fd);
	close(s->root.fd);
	close(s->bfd);
	fs_metrics_stop();
	st_info("stratafs: %s unmounted", s->mnt);
	fs_log_close();
	return rc;
}
