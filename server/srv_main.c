/* stratad: opens the store, starts the worker pool, the network threads (io_uring or
 * libevent) and the admin HTTP thread, and shuts down cleanly on SIGTERM/SIGINT. */
#include "server/srv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/st_log.h"
#include "common/st_time.h"
#include "common/st_version.h"

static int srv_mkdirs(const char *dir)
{
	char p[4096];
	if (strlen(dir) >= sizeof(p))
		return -ENAMETOOLONG;
	strcpy(p, dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* sched_setattr's argument (glibc 2.36 has no wrapper; <linux/sched/types.h> clashes with
 * <sched.h>). */
struct srv_sched_attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

/* --net-slice-us: a shorter time slice for this (network) thread. On a machine with more
 * busy threads than cores (the 4-client-thread bench row on 2 cores), a network thread woken
 * by a request waits for the running thread's slice to end, and its connections with it;
 * with a slice shorter than the others', the kernel's EEVDF scheduler (Linux 6.12 and later)
 * runs it at once. Older kernels refuse (EINVAL): a warning, and the default slice. */
static void srv_net_set_slice(int us)
{
	if (us <= 0)
		return;
	struct srv_sched_attr a = {.size = sizeof(a), .policy = SCHED_OTHER,
				   .runtime = (uint64_t)us * 1000};
	if (syscall(SYS_sched_setattr, 0, &a, 0))
		st_warn("--net-slice-us %d: sched_setattr: %s; the kernel's default slice is used",
			us, strerror(errno));
}

static void *srv_net_main(void *arg)
{
	struct srv_net *n = arg;
	srv_net_set_slice(n->srv->cfg.net_slice_us);
	n->be->run(n);
	return NULL;
}

static int srv_nets_create(struct srv_server *s, const struct srv_backend *be,
			   struct st_error *err)
{
	s->nets = calloc(s->cfg.threads, sizeof(*s->nets));
	if (!s->nets)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	for (int i = 0; i < s->cfg.threads; i++) {
		struct srv_net *n = calloc(1, sizeof(*n));
		if (!n)
			return st_error_set(err, ST_ENOMEM, "out of memory");
		s->nets[i] = n;
		s->nnets = i + 1;
		n->idx = i;
		n->srv = s;
		n->be = be;
		n->accepting = 1;
		pthread_mutex_init(&n->done_mu, NULL);
		n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (n->efd < 0)
			return st_error_set(err, -errno, "eventfd: %s", strerror(errno));
		int rc = be->init(n, err);
		if (rc)
			return rc;
	}
	return 0;
}

static void srv_nets_destroy(struct srv_server *s)
{
	for (int i = 0; i < s->nnets; i++) {
		struct srv_net *n = s->nets[i];
		if (n->be_state)
			n->be->fini(n);
		srv_net_drop_handoffs(n);
		if (n->efd >= 0)
			close(n->efd);
		pthread_mutex_destroy(&n->done_mu);
		free(n);
	}
	free(s->nets);
	s->nets = NULL;
	s->nnets = 0;
}

static const char *srv_sync_name(enum kv_sync s)
{
	return s == KV_SYNC_ALWAYS ? "always" : s == KV_SYNC_BATCH ? "batch" : "none";
}

/* The end of every preload job in the log: operators see what ran without polling. */
static void srv_log_job_end(void *arg, const struct kv_job_info *j)
{
	double secs = (j->finished_us - j->started_us) / 1e6;
	if (j->state == KV_JOB_DONE)
		st_info("preload job %llu done: table %s, %lld row%s, %lld cell%s, %lld bad row%s "
			"in %.1fs (%s)", (unsigned long long)j->id, j->req.table, (long long)j->rows,
			j->rows == 1 ? "" : "s", (long long)j->cells, j->cells == 1 ? "" : "s",
			(long long)j->bad_rows, j->bad_rows == 1 ? "" : "s", secs, j->req.path);
	else
		st_warn("preload job %llu %s after %.1fs: table %s, %s: %s; nothing was ingested",
			(unsigned long long)j->id, kv_job_state_name(j->state), secs, j->req.table,
			j->req.path, j->error[0] ? j->error : "no reason recorded");
}

int main(int argc, char **argv)
{
	static struct srv_server srv;
	struct srv_server *s = &srv;
	struct st_error err = {0};
	struct srv_admin *admin = NULL;
	int rc, exit_code = 1;

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		st_version_print(stdout, "stratad");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads(); /* the admin loop is stopped from the main thread */
	srv_config_defaults(&s->cfg);
	rc = srv_config_parse(&s->cfg, argc, argv, &err);
	if (rc == 1)
		return 0;
	if (rc) {
		fprintf(stderr, "stratad: %s\n", err.msg);
		return 2;
	}
	st_log_set_level(s->cfg.verbose ? ST_LOG_DEBUG : ST_LOG_INFO);
	s->started_us = st_mono_us();
	pthread_mutex_init(&s->joins_mu, NULL);
	if (srv_metrics_init(&s->m)) {
		fprintf(stderr, "stratad: out of memory\n");
		return 1;
	}

	char host[256];
	int port;
	if (srv_parse_addr(s->cfg.listen, host, sizeof(host), &port, &err)) {
		fprintf(stderr, "stratad: --listen: %s\n", err.msg);
		return 2;
	}
	for (int i = 0; i < SRV_NPROTO; i++)
		s->listen_fd[i] = -1;
	/* Bound before the store is opened: a server that cannot have its address fails at
	 * once, without touching its data directory. */
	if ((s->listen_fd[SRV_PROTO_STRATA] = srv_listen_open(
		     s->cfg.listen, &s->listen_port[SRV_PROTO_STRATA], &err)) < 0) {
		fprintf(stderr, "stratad: --listen: %s\n", err.msg);
		return 1;
	}
	if (s->cfg.resp[0] && (s->listen_fd[SRV_PROTO_RESP] = srv_listen_open(
				       s->cfg.resp, &s->listen_port[SRV_PROTO_RESP], &err)) < 0) {
		fprintf(stderr, "stratad: --resp: %s\n", err.msg);
		return 1;
	}

	/* Block the stop signals in every thread; main waits for them with sigwait. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	/* Every connection is a descriptor: use the hard limit, and say so if it is low. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)s->cfg.max_conns + 256 > rl.rlim_cur)
		st_warn("open file limit %llu is low for --max-conns %d: accepts may fail with EMFILE",
			(unsigned long long)rl.rlim_cur, s->cfg.max_conns);
	if ((rc = srv_mkdirs(s->cfg.data_dir))) {
		st_errlog("cannot create data dir %s: %s", s->cfg.data_dir, strerror(-rc));
		return 1;
	}
	struct kv_options ko;
	kv_options_init(&ko);
	ko.sync = s->cfg.sync;
	ko.nshards = s->cfg.nshards;
	ko.block_cache_bytes = s->cfg.cache_bytes;
	ko.row_cache_bytes = s->cfg.row_cache_bytes;
	ko.run_jobs = 1;
	if (srv_repl_prepare(&s->cfg, &ko, &err)) {
		st_errlog("--cluster: %s", err.msg);
		return 2;
	}
	ko.on_job_end = srv_log_job_end;
	if (kv_open(s->cfg.data_dir, &ko, &s->db, &err)) {
		st_errlog("cannot open store in %s: %s", s->cfg.data_dir, err.msg);
		return 1;
	}
	if (srv_repl_start(&s->cfg, s->db, &err)) {
		st_errlog("replication: %s", err.msg);
		kv_close(s->db);
		return 1;
	}
	s->pool = srv_pool_start(s, s->cfg.workers, &err);
	if (s->pool)
		s->rpool = srv_pool_start(s, s->cfg.read_workers, &err);
	if (!s->pool || !s->rpool) {
		st_errlog("%s", err.msg);
		goto close_db;
	}

	const struct srv_backend *be =
		s->cfg.io == SRV_IO_EPOLL ? &srv_backend_epoll : &srv_backend_uring;
	rc = srv_nets_create(s, be, &err);
	if (rc && s->cfg.io == SRV_IO_AUTO) {
		st_warn("io_uring unavailable (%s); falling back to epoll (libevent)", err.msg);
		srv_nets_destroy(s);
		be = &srv_backend_epoll;
		rc = srv_nets_create(s, be, &err);
	}
	if (rc) {
		st_errlog("%s", err.msg);
		goto stop_nets;
	}
	s->io_name = be->name;
	for (int i = 0; i < s->nnets; i++) {
		if ((rc = pthread_create(&s->nets[i]->thread, NULL, srv_net_main, s->nets[i]))) {
			st_errlog("cannot start network thread: %s", strerror(rc));
			for (int j = 0; j < i; j++)
				pthread_cancel(s->nets[j]->thread);
			goto stop_nets;
		}
	}
	if (s->cfg.admin[0] && strcmp(s->cfg.admin, "off")) {
		if (srv_admin_start(s, &admin, &err)) {
			st_errlog("admin HTTP: %s", err.msg);
			atomic_store(&s->stopping, 1);
			atomic_store(&s->stop_us, st_mono_us());
			for (int i = 0; i < s->nnets; i++)
				srv_net_wake(s->nets[i]);
			for (int i = 0; i < s->nnets; i++)
				pthread_join(s->nets[i]->thread, NULL);
			goto stop_nets;
		}
	}
	if (s->listen_fd[SRV_PROTO_RESP] >= 0)
		st_info("RESP (Redis protocol) on %s, port %d%s", s->cfg.resp,
			s->listen_port[SRV_PROTO_RESP], s->cfg.resp_writes ? ", writes on" : "");
	st_info("stratad serving %s on %s:%d (io %s, %d network thread%s, %d+%d workers, sync %s%s), "
		"admin %s", s->cfg.data_dir, host, s->listen_port[SRV_PROTO_STRATA], s->io_name, s->nnets,
		s->nnets == 1 ? "" : "s", s->cfg.read_workers, s->cfg.workers, srv_sync_name(s->cfg.sync),
		s->cfg.token ? ", auth on" : "", admin ? s->cfg.admin : "off");
	if (s->cfg.ready_file[0]) {
		char tmp[sizeof(s->cfg.ready_file) + 8];
		strcpy(tmp, s->cfg.ready_file);
		strcat(tmp, ".tmp");
		FILE *f = fopen(tmp, "w");
		if (f) {
			/* the RESP port is the 5th field, when there is one */
			fprintf(f, "%s:%d %d %s %d", host, s->listen_port[SRV_PROTO_STRATA],
				admin ? srv_admin_port(admin) : 0, s->io_name, (int)getpid());
			if (s->listen_fd[SRV_PROTO_RESP] >= 0)
				fprintf(f, " %d", s->listen_port[SRV_PROTO_RESP]);
			fprintf(f, "\n");
			fclose(f);
			rename(tmp, s->cfg.ready_file);
		}
	}

	int sig = 0;
	sigwait(&sigs, &sig);
	st_info("received %s: draining in-flight requests", sig == SIGINT ? "SIGINT" : "SIGTERM");
	atomic_store(&s->stop_us, st_mono_us());
	atomic_store(&s->stopping, 1);
	for (int i = 0; i < s->nnets; i++)
		srv_net_wake(s->nets[i]);
	for (int i = 0; i < s->nnets; i++)
		pthread_join(s->nets[i]->thread, NULL);
	exit_code = 0;
stop_nets:
	srv_pool_stop(s->pool);
	srv_pool_stop(s->rpool);
	s->pool = s->rpool = NULL;
	srv_admin_stop(admin);
	srv_nets_destroy(s);
close_db:
	srv_pool_stop(s->pool);
	srv_pool_stop(s->rpool);
	srv_repl_stop();
	kv_close(s->db);
	srv_config_release(&s->cfg);
	srv_metrics_release(&s->m);
	for (int i = 0; i < SRV_NPROTO; i++)
		if (s->listen_fd[i] >= 0)
			close(s->listen_fd[i]);
	if (exit_code == 0)
		st_info("stratad stopped");
	return exit_code;
}
