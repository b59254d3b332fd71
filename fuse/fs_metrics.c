/* stratafs --metrics HOST:PORT: Prometheus text on GET /metrics, served by libevent's
 * evhttp in a thread of its own. The hot path only bumps relaxed atomic counters
 * (fs_chan.c times every reply); the trash, removal queue and journal figures are read
 * when a scrape asks for them, so a scrape costs the daemon nothing in between.
 * The names match ops/prometheus/strata-alerts.yml and the Grafana dashboard
 * (stratafs_trash_bytes, stratafs_journal_bytes, stratafs_journal_capacity_bytes). */
#include "fuse/fs_chan.h"
#include "fuse/fs_config.h"
#include "fuse/fs_daemon.h"
#include "common/st_log.h"
#include "common/st_num.h"
#include "common/st_version.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static struct {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int running;
} mx;

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct evbuffer *b, const char *name, const char *help, double v)
{
	family(b, name, "gauge", help);
	evbuffer_add_printf(b, "%s %.17g\n", name, v);
}

static void counter(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
	family(b, name, "counter", help);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* Requests, errors and reply latency per FUSE operation. */
static void fuse_ops_text(struct evbuffer *b)
{
	family(b, "stratafs_fuse_requests_total", "counter",
	       "FUSE requests received from the kernel, by operation");
	for (unsigned op = 0; op < FS_CHAN_OPS; op++)
		if (fs_chan_op_name(op))
			evbuffer_add_printf(b, "stratafs_fuse_requests_total{op=\"%s\"} %llu\n",
					    fs_chan_op_name(op),
					    (unsigned long long)fs_chan_count(op));
	family(b, "stratafs_fuse_request_errors_total", "counter",
	       "FUSE replies with an error, by operation");
	for (unsigned op = 0; op < FS_CHAN_OPS; op++) {
		const struct fs_chan_opstat *o = fs_chan_opstat(op);
		if (fs_chan_op_name(op) && atomic_load(&o->replies))
			evbuffer_add_printf(b, "stratafs_fuse_request_errors_total{op=\"%s\"} %llu\n",
					    fs_chan_op_name(op),
					    (unsigned long long)atomic_load(&o->errors));
	}
	family(b, "stratafs_fuse_request_duration_seconds", "histogram",
	       "time from reading a FUSE request to writing its reply, by operation");
	for (unsigned op = 0; op < FS_CHAN_OPS; op++) {
		const struct fs_chan_opstat *o = fs_chan_opstat(op);
		const char *name = fs_chan_op_name(op);
		if (!name || !atomic_load(&o->replies))
			continue;
		uint64_t cum = 0;
		for (int i = 0; i < FS_CHAN_NBUCKETS; i++) {
			cum += atomic_load(&o->buckets[i]);
			if (i == FS_CHAN_NBUCKETS - 1)
				evbuffer_add_printf(b, "stratafs_fuse_request_duration_seconds_bucket"
						    "{op=\"%s\",le=\"+Inf\"} %llu\n", name,
						    (unsigned long long)cum);
			else
				evbuffer_add_printf(b, "stratafs_fuse_request_duration_seconds_bucket"
						    "{op=\"%s\",le=\"%g\"} %llu\n", name,
						    (double)fs_chan_bucket_le_us[i] / 1e6,
						    (unsigned long long)cum);
		}
		/* the count is the +Inf bucket: buckets and replies are separate atomics */
		evbuffer_add_printf(b, "stratafs_fuse_request_duration_seconds_sum{op=\"%s\"} %.6f\n"
				    "stratafs_fuse_request_duration_seconds_count{op=\"%s\"} %llu\n",
				    name, (double)atomic_load(&o->sum_us) / 1e6, name,
				    (unsigned long long)cum);
	}
}

static void trash_text(struct evbuffer *b, struct fs_state *s)
{
	struct fs_trash_list l;
	struct st_error err = { 0 };
	if (fs_trash_list(&s->trash, -1, &l, &err) != 0) {
		st_warn("metrics: trash list: %s", err.msg);
		return;
	}
	size_t present = 0;
	for (size_t i = 0; i < l.n; i++)
		present += l.v[i].present != 0;
	gauge(b, "stratafs_trash_entries", "entries in the trash (all users)", (double)present);
	gauge(b, "stratafs_trash_bytes", "bytes held by the trash (sizes of its entries)",
	      (double)l.bytes);
	gauge(b, "stratafs_trash_retention_seconds", "how long deleted entries are kept (0: forever)",
	      (double)s->trash.retention_us / 1e6);
	fs_trash_list_release(&l);
}

static void rmr_text(struct evbuffer *b, struct fs_state *s)
{
	struct fs_rmr_status st;
	if (fs_rmr_status(&s->rmr, -1, &st) != 0)
		return;
	int failed = 0;
	double rate = 0;
	for (size_t i = 0; i < st.n; i++) {
		failed += st.jobs[i].state == FS_RMR_FAILED;
		rate += st.jobs[i].state == FS_RMR_DELETING ? st.jobs[i].rate_files : 0;
	}
	gauge(b, "stratafs_rmr_jobs", "removal jobs queued or running", (double)st.n);
	gauge(b, "stratafs_rmr_jobs_failed", "removal jobs that failed (retried every minute)",
	      failed);
	gauge(b, "stratafs_rmr_jobs_unscanned", "removal jobs whose size is not counted yet",
	      st.unknown);
	gauge(b, "stratafs_rmr_entries_left", "entries left to delete in counted jobs",
	      (double)st.files_left);
	gauge(b, "stratafs_rmr_bytes_left", "bytes left to delete in counted jobs",
	      (double)st.bytes_left);
	gauge(b, "stratafs_rmr_delete_rate_entries", "entries deleted per second by the running job",
	      rate);
	counter(b, "stratafs_rmr_deleted_entries_total", "entries deleted by the reclaimer",
		(uint64_t)st.reclaimed_files);
	counter(b, "stratafs_rmr_deleted_bytes_total", "bytes deleted by the reclaimer",
		(uint64_t)st.reclaimed_bytes);
	counter(b, "stratafs_rmr_jobs_done_total", "removal jobs finished", (uint64_t)st.jobs_done);
	fs_rmr_status_release(&st);
}

static void journal_text(struct evbuffer *b, struct fs_state *s)
{
	gauge(b, "stratafs_journal_enabled", "1 with --journal-dir", s->jn != NULL);
	if (!s->jn)
		return;
	struct fs_jn_stats j;
	fs_jn_stats(s->jn, &j);
	gauge(b, "stratafs_journal_bytes", "journal space in use (live segments)",
	      (double)j.used_bytes);
	gauge(b, "stratafs_journal_capacity_bytes", "journal size (--journal-size)",
	      (double)j.capacity_bytes);
	gauge(b, "stratafs_journal_dirty_bytes", "journaled data not yet written back",
	      (double)j.dirty_bytes);
	gauge(b, "stratafs_journal_segments_used", "live journal segments", j.segs_used);
	gauge(b, "stratafs_journal_segments_free", "journal segments free",
	      j.segs_total - j.segs_used);
	gauge(b, "stratafs_journal_writeback_lag_seconds",
	      "age of the oldest data not yet written back (0: none)", j.oldest_dirty_age_s);
	counter(b, "stratafs_journal_writeback_bytes_total", "bytes written back to BACKING_DIR",
		j.wb_bytes);
	gauge(b, "stratafs_journal_writeback_bytes_per_second",
	      "written back per second over the last 10 s (fs status: writeback rate)",
	      j.wb_rate_bps);
	counter(b, "stratafs_journal_writeback_records_total", "records written back", j.wb_records);
	counter(b, "stratafs_journal_writeback_failures_total", "writeback rounds that failed",
		j.wb_fails);
	counter(b, "stratafs_journal_full_waits_total", "appends that waited for a free segment",
		j.waits);
	counter(b, "stratafs_journal_syncs_total", "fdatasyncs of the journal device", j.syncs);
	counter(b, "stratafs_journal_fsyncs_total", "fsyncs of journaled files served", j.fsyncs);
	gauge(b, "stratafs_journal_replay_records", "records found by the replay at mount",
	      (double)s->jrep.scan.records);
	gauge(b, "stratafs_journal_replay_applied_records", "records applied by the replay at mount",
	      (double)s->jrep.applied);
	gauge(b, "stratafs_journal_replay_bytes", "bytes applied by the replay at mount",
	      (double)s->jrep.bytes);
	gauge(b, "stratafs_journal_replay_files", "files written by the replay at mount",
	      (double)s->jrep.files);
	gauge(b, "stratafs_journal_replay_damaged", "1 when the replay stopped at a damaged record",
	      s->jrep.scan.damaged != 0);
}

static void metrics_text(struct evbuffer *b, struct fs_state *s)
{
	family(b, "stratafs_build_info", "gauge", "version and git commit of stratafs");
	evbuffer_add_printf(b, "stratafs_build_info{version=\"%s\",commit=\"%s\"} 1\n", ST_VERSION,
			    st_build_commit());
	fuse_ops_text(b);
	gauge(b, "stratafs_passthrough", "1 while open files are served by the kernel from the "
	      "backing file", fs_chan_passthrough());
	gauge(b, "stratafs_passthrough_kernel", "1 when the kernel offered passthrough",
	      fs_chan_passthrough_offered());
	gauge(b, "stratafs_writeback_cache", "1 with --writeback-cache", s->writeback);
	gauge(b, "stratafs_killpriv_v2", "1 when the daemon clears setuid/setgid "
	      "(FUSE_HANDLE_KILLPRIV_V2)", fs_chan_killpriv_v2());
	pthread_mutex_lock(&s->itab.lock);
	size_t inodes = s->itab.n;
	long fds = s->itab.fds;
	pthread_mutex_unlock(&s->itab.lock);
	gauge(b, "stratafs_inodes", "inodes the kernel holds a reference to", (double)inodes);
	gauge(b, "stratafs_inode_fds", "inodes keeping an O_PATH fd", (double)fds);
	trash_text(b, s);
	rmr_text(b, s);
	journal_text(b, s);
}

static void http_cb(struct evhttp_request *req, void *arg)
{
	struct fs_state *s = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	size_t plen = strcspn(uri, "?");
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	if (plen == 8 && !memcmp(uri, "/metrics", 8)) {
		metrics_text(b, s);
		evhttp_add_header(hdr, "Content-Type", "text/plain; version=0.0.4");
		evhttp_send_reply(req, HTTP_OK, "OK", b);
	} else {
		evbuffer_add_printf(b, "not found: try /metrics\n");
		evhttp_add_header(hdr, "Content-Type", "text/plain");
		evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", b);
	}
	evbuffer_free(b);
}

static void *metrics_main(void *arg)
{
	(void)arg;
	event_base_dispatch(mx.base);
	return NULL;
}

int fs_metrics_bind(struct fs_state *s, const char *addr, struct st_error *err)
{
	char host[256];
	int port;
	if (fs_config_hostport(addr, host, sizeof(host), &port) != 0)
		return st_error_set(err, ST_EINVAL, "--metrics: expected HOST:PORT, got '%s'", addr);
	evthread_use_pthreads(); /* the loop is stopped from the main thread */
	mx.base = event_base_new();
	mx.http = mx.base ? evhttp_new(mx.base) : NULL;
	if (!mx.http) {
		fs_metrics_stop();
		return st_error_set(err, ST_ENOMEM, "--metrics: cannot create the HTTP server");
	}
	evhttp_set_allowed_methods(mx.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(mx.http, http_cb, s);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(mx.http, host,
									(uint16_t)port);
	if (!bs) {
		fs_metrics_stop();
		return st_error_set(err, ST_EIO, "--metrics: cannot listen on %s", addr);
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	snprintf(s->metrics_addr, sizeof(s->metrics_addr), "%s%s%s:%d",
		 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	return 0;
}

int fs_metrics_start(void)
{
	if (!mx.http)
		return 0;
	if (event_reinit(mx.base) != 0) /* bound before daemonising: the fork */
		return -1;
	if (pthread_create(&mx.thread, NULL, metrics_main, NULL) != 0)
		return -1;
	mx.running = 1;
	return 0;
}

void fs_metrics_stop(void)
{
	if (mx.running) {
		event_base_loopexit(mx.base, NULL);
		pthread_join(mx.thread, NULL);
		mx.running = 0;
	}
	if (mx.http)
		evhttp_free(mx.http);
	if (mx.base)
		event_base_free(mx.base);
	mx.http = NULL;
	mx.base = NULL;
}
