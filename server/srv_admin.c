/* Admin HTTP on libevent's evhttp, in its own thread: /health, /metrics (Prometheus text
 * format) and /status (JSON). */
#include "server/srv.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/st_log.h"
#include "common/st_time.h"
#include "common/st_version.h"

struct srv_admin {
	struct srv_server *srv;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int port;
};

static const char *srv_sync_str(enum kv_sync s)
{
	return s == KV_SYNC_ALWAYS ? "always" : s == KV_SYNC_BATCH ? "batch" : "none";
}

char *srv_status_json(struct srv_server *s)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	uint64_t hits = 0, misses = 0;
	kv_cache_stats(s->db, &hits, &misses);
	/* "version" is the software's; the wire protocol's is "protocol" */
	json_object_set_new(o, "version", json_string(ST_VERSION));
	json_object_set_new(o, "commit", json_string(st_build_commit()));
	json_object_set_new(o, "protocol", json_string("1"));
	json_object_set_new(o, "io", json_string(s->io_name ? s->io_name : ""));
	json_object_set_new(o, "sync", json_string(srv_sync_str(s->cfg.sync)));
	json_object_set_new(o, "data_dir", json_string(s->cfg.data_dir));
	json_object_set_new(o, "listen", json_string(s->cfg.listen));
	json_object_set_new(o, "uptime_s",
			    json_real((double)(st_mono_us() - s->started_us) / 1e6));
	json_object_set_new(o, "network_threads", json_integer(s->nnets));
	json_object_set_new(o, "workers", json_integer(s->cfg.workers));
	json_object_set_new(o, "read_workers", json_integer(s->cfg.read_workers));
	json_object_set_new(o, "shards", json_integer(kv_nshards(s->db)));
	json_object_set_new(o, "auth", json_boolean(s->cfg.token != NULL));
	json_object_set_new(o, "stopping", json_boolean(atomic_load(&s->stopping)));
	struct st_error health;
	int failed = kv_health(s->db, &health);
	json_object_set_new(o, "storage", json_string(failed ? "failed" : "ok"));
	if (failed)
		json_object_set_new(o, "storage_error", json_string(health.msg));
	json_object_set_new(o, "connections", json_integer(atomic_load(&s->m.conns)));
	json_object_set_new(o, "inflight", json_integer(atomic_load(&s->m.inflight)));
	uint64_t reqs = 0, errs = 0;
	for (int i = 0; i < s->m.nops; i++) {
		reqs += atomic_load(&s->m.ops[i].count);
		errs += atomic_load(&s->m.ops[i].errors);
	}
	json_object_set_new(o, "requests", json_integer((json_int_t)reqs));
	json_object_set_new(o, "errors", json_integer((json_int_t)errs));
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)atomic_load(&s->m.bytes_in)));
	json_object_set_new(o, "bytes_out",
			    json_integer((json_int_t)atomic_load(&s->m.bytes_out)));
	json_object_set_new(o, "estimated_keys",
			    json_integer((json_int_t)kv_property_sum(s->db,
								     "rocksdb.estimate-num-keys")));
	json_object_set_new(o, "block_cache_hits", json_integer((json_int_t)hits));
	json_object_set_new(o, "block_cache_misses", json_integer((json_int_t)misses));
	uint64_t rh, rm, rb;
	kv_row_cache_stats(s->db, &rh, &rm, &rb);
	json_object_set_new(o, "row_cache_hits", json_integer((json_int_t)rh));
	json_object_set_new(o, "row_cache_misses", json_integer((json_int_t)rm));
	json_object_set_new(o, "row_cache_bytes", json_integer((json_int_t)rb));
	struct kv_job_info *jobs = NULL;
	size_t njobs = 0;
	json_t *ja = json_array();
	if (kv_job_list(s->db, &jobs, &njobs, NULL) == 0) {
		for (size_t i = 0; i < njobs; i++) {
			if (jobs[i].state != KV_JOB_RUNNING && jobs[i].state != KV_JOB_QUEUED)
				continue;
			json_t *j = json_object();
			json_object_set_new(j, "id", json_integer((json_int_t)jobs[i].id));
			json_object_set_new(j, "state",
					    json_string(kv_job_state_name(jobs[i].state)));
			json_object_set_new(j, "table", json_string(jobs[i].req.table));
			json_object_set_new(j, "rows", json_integer(jobs[i].rows));
			json_object_set_new(j, "bytes_done", json_integer(jobs[i].bytes_done));
			json_object_set_new(j, "bytes_total", json_integer(jobs[i].bytes_total));
			json_array_append_new(ja, j);
		}
		free(jobs);
	}
	json_object_set_new(o, "active_jobs", ja);
	char *out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

static void srv_metric(struct evbuffer *b, const char *name, const char *type, const char *help,
		       double v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
			    name, v);
}

static void srv_metrics_text(struct srv_server *s, struct evbuffer *b)
{
	struct srv_metrics *m = &s->m;
	evbuffer_add_printf(b, "# HELP strata_requests_total Requests answered, by operation.\n"
			       "# TYPE strata_requests_total counter\n");
	for (int i = 0; i < s->m.nops; i++)
		if (srv_op_name(i))
			evbuffer_add_printf(b, "strata_requests_total{op=\"%s\"} %llu\n",
					    srv_op_name(i),
					    (unsigned long long)atomic_load(&m->ops[i].count));
	evbuffer_add_printf(b, "# HELP strata_request_errors_total Requests answered with an "
			       "error, by operation.\n# TYPE strata_request_errors_total counter\n");
	for (int i = 0; i < s->m.nops; i++)
		if (srv_op_name(i))
			evbuffer_add_printf(b, "strata_request_errors_total{op=\"%s\"} %llu\n",
					    srv_op_name(i),
					    (unsigned long long)atomic_load(&m->ops[i].errors));
	evbuffer_add_printf(b, "# HELP strata_request_duration_seconds Time from decoding a "
			       "request to queueing its response.\n"
			       "# TYPE strata_request_duration_seconds histogram\n");
	for (int i = 0; i < s->m.nops; i++) {
		const char *name = srv_op_name(i);
		if (!name || atomic_load(&m->ops[i].count) == 0)
			continue;
		uint64_t cum = 0;
		for (int k = 0; k < SRV_NBUCKETS; k++) {
			cum += atomic_load(&m->ops[i].buckets[k]);
			if (k == SRV_NBUCKETS - 1)
				evbuffer_add_printf(b, "strata_request_duration_seconds_bucket{op=\"%s\","
						       "le=\"+Inf\"} %llu\n",
						    name, (unsigned long long)cum);
			else
				evbuffer_add_printf(b, "strata_request_duration_seconds_bucket{op=\"%s\","
						       "le=\"%g\"} %llu\n",
						    name, (double)srv_bucket_le_us[k] / 1e6,
						    (unsigned long long)cum);
		}
		evbuffer_add_printf(b, "strata_request_duration_seconds_sum{op=\"%s\"} %.6f\n", name,
				    (double)atomic_load(&m->ops[i].sum_us) / 1e6);
		evbuffer_add_printf(b, "strata_request_duration_seconds_count{op=\"%s\"} %llu\n",
				    name, (unsigned long long)cum);
	}
	srv_metric(b, "strata_connections", "gauge", "Open client connections.",
		   atomic_load(&m->conns));
	srv_metric(b, "strata_connections_total", "counter", "Connections accepted.",
		   (double)atomic_load(&m->conns_total));
	srv_metric(b, "strata_connections_rejected_total", "counter",
		   "Connections refused (max connections or shutting down).",
		   (double)atomic_load(&m->conns_rejected));
	srv_metric(b, "strata_slow_clients_dropped_total", "counter",
		   "Connections dropped because the client did not read its responses.",
		   (double)atomic_load(&m->conns_dropped_slow));
	srv_metric(b, "strata_idle_closed_total", "counter", "Connections closed when idle.",
		   (double)atomic_load(&m->conns_idle_closed));
	srv_metric(b, "strata_evicted_total", "counter",
		   "Connections without a request yet closed to admit a newcomer at --max-conns.",
		   (double)atomic_load(&m->conns_evicted));
	srv_metric(b, "strata_gone_closed_total", "counter",
		   "Connections closed at --max-conns because their clients had already hung up.",
		   (double)atomic_load(&m->conns_gone));
	srv_metric(b, "strata_handshake_timeouts_total", "counter",
		   "Connections closed for no request (or auth) within --handshake-timeout.",
		   (double)atomic_load(&m->conns_handshake_timeout));
	srv_metric(b, "strata_frame_timeouts_total", "counter",
		   "Connections closed for a frame left incomplete for --frame-timeout.",
		   (double)atomic_load(&m->conns_frame_timeout));
	srv_metric(b, "strata_inflight_requests", "gauge", "Requests being executed.",
		   atomic_load(&m->inflight));
	srv_metric(b, "strata_bad_frames_total", "counter",
		   "Frames rejected (too large or not a valid Request).",
		   (double)atomic_load(&m->frames_bad));
	srv_metric(b, "strata_auth_failures_total", "counter", "Authentication failures.",
		   (double)atomic_load(&m->auth_failures));
	srv_metric(b, "strata_bytes_in_total", "counter", "Bytes received from clients.",
		   (double)atomic_load(&m->bytes_in));
	srv_metric(b, "strata_bytes_out_total", "counter", "Bytes sent to clients.",
		   (double)atomic_load(&m->bytes_out));
	srv_metric(b, "strata_uptime_seconds", "gauge", "Seconds since start.",
		   (double)(st_mono_us() - s->started_us) / 1e6);
	evbuffer_add_printf(b, "# HELP strata_build_info The software version and git commit.\n"
			       "# TYPE strata_build_info gauge\n"
			       "strata_build_info{version=\"%s\",commit=\"%s\"} 1\n",
			    ST_VERSION, st_build_commit());
	srv_metric(b, "strata_storage_failed", "gauge",
		   "1 after a failed WAL sync or write: writes are refused until a restart.",
		   kv_health(s->db, NULL) ? 1.0 : 0.0);

	uint64_t hits = 0, misses = 0;
	kv_cache_stats(s->db, &hits, &misses);
	srv_metric(b, "strata_block_cache_hits_total", "counter", "RocksDB block cache hits.",
		   (double)hits);
	srv_metric(b, "strata_block_cache_misses_total", "counter", "RocksDB block cache misses.",
		   (double)misses);
	srv_metric(b, "strata_block_cache_hit_ratio", "gauge",
		   "Block cache hits / (hits + misses) since start.",
		   hits + misses ? (double)hits / (double)(hits + misses) : 0.0);
	uint64_t rh, rm, rb;
	kv_row_cache_stats(s->db, &rh, &rm, &rb);
	srv_metric(b, "strata_row_cache_hits_total", "counter",
		   "Latest reads answered from the row cache.", (double)rh);
	srv_metric(b, "strata_row_cache_misses_total", "counter",
		   "Latest reads that went to RocksDB (and filled the row cache).", (double)rm);
	srv_metric(b, "strata_row_cache_bytes", "gauge", "Bytes held by the row cache.",
		   (double)rb);
	srv_metric(b, "strata_memtable_bytes", "gauge", "Memtable bytes over all shards.",
		   (double)kv_property_sum(s->db, "rocksdb.cur-size-all-mem-tables"));
	srv_metric(b, "strata_sst_bytes", "gauge", "SST file bytes over all shards.",
		   (double)kv_property_sum(s->db, "rocksdb.total-sst-files-size"));
	srv_metric(b, "strata_estimated_keys", "gauge", "Estimated number of stored versions.",
		   (double)kv_property_sum(s->db, "rocksdb.estimate-num-keys"));
	srv_metric(b, "strata_pending_compaction_bytes", "gauge",
		   "Estimated bytes compaction still has to rewrite.",
		   (double)kv_property_sum(s->db, "rocksdb.estimate-pending-compaction-bytes"));

	struct kv_job_info *jobs = NULL;
	size_t njobs = 0;
	if (kv_job_list(s->db, &jobs, &njobs, NULL) == 0) {
		size_t bystate[KV_JOB_CANCELLED + 1] = {0};
		for (size_t i = 0; i < njobs; i++)
			if (jobs[i].state <= KV_JOB_CANCELLED)
				bystate[jobs[i].state]++;
		evbuffer_add_printf(b, "# HELP strata_preload_jobs Preload jobs by state.\n"
				       "# TYPE strata_preload_jobs gauge\n");
		for (int st = 0; st <= KV_JOB_CANCELLED; st++)
			evbuffer_add_printf(b, "strata_preload_jobs{state=\"%s\"} %zu\n",
					    kv_job_state_name((enum kv_job_state)st), bystate[st]);
		evbuffer_add_printf(b, "# HELP strata_preload_rows Rows parsed by active preload "
				       "jobs.\n# TYPE strata_preload_rows gauge\n");
		for (size_t i = 0; i < njobs; i++)
			if (jobs[i].state == KV_JOB_RUNNING || jobs[i].state == KV_JOB_QUEUED)
				evbuffer_add_printf(b, "strata_preload_rows{job=\"%llu\",table=\"%s\"} "
						       "%lld\n",
						    (unsigned long long)jobs[i].id, jobs[i].req.table,
						    (long long)jobs[i].rows);
		evbuffer_add_printf(b, "# HELP strata_preload_progress_ratio Input bytes done / "
				       "total of active preload jobs.\n"
				       "# TYPE strata_preload_progress_ratio gauge\n");
		for (size_t i = 0; i < njobs; i++)
			if (jobs[i].state == KV_JOB_RUNNING || jobs[i].state == KV_JOB_QUEUED)
				evbuffer_add_printf(b, "strata_preload_progress_ratio{job=\"%llu\","
						       "table=\"%s\"} %g\n",
						    (unsigned long long)jobs[i].id, jobs[i].req.table,
						    jobs[i].bytes_total > 0
							    ? (double)jobs[i].bytes_done /
								      (double)jobs[i].bytes_total
							    : 0.0);
		free(jobs);
	}
}

static void srv_admin_cb(struct evhttp_request *req, void *arg)
{
	struct srv_admin *a = arg;
	struct srv_server *s = a->srv;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	int code = HTTP_OK;
	const char *reason = "OK";
	struct st_error health;
	if (plen == 7 && !memcmp(uri, "/health", 7)) {
		if (atomic_load(&s->stopping)) {
			code = 503;
			reason = "Service Unavailable";
			evbuffer_add_printf(b, "stopping\n");
		} else if (kv_health(s->db, &health)) {
			/* reads still work, writes fail: not healthy for a load balancer */
			code = 503;
			reason = "Service Unavailable";
			evbuffer_add_printf(b, "storage failed: %s\n", health.msg);
		} else {
			evbuffer_add_printf(b, "ok\n");
		}
		evhttp_add_header(hdr, "Content-Type", "text/plain");
	} else if (plen == 8 && !memcmp(uri, "/metrics", 8)) {
		srv_metrics_text(s, b);
		char *rm = srv_repl_metrics();
		if (rm)
			evbuffer_add(b, rm, strlen(rm));
		free(rm);
		evhttp_add_header(hdr, "Content-Type", "text/plain; version=0.0.4");
	} else if (plen == 7 && !memcmp(uri, "/status", 7)) {
		char *j = srv_status_json(s);
		if (j) {
			evbuffer_add_printf(b, "%s\n", j);
			free(j);
		}
		evhttp_add_header(hdr, "Content-Type", "application/json");
	} else {
		code = HTTP_NOTFOUND;
		reason = "Not Found";
		evbuffer_add_printf(b, "not found: try /health, /metrics or /status\n");
	}
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void *srv_admin_main(void *arg)
{
	struct srv_admin *a = arg;
	event_base_dispatch(a->base);
	return NULL;
}

int srv_admin_start(struct srv_server *s, struct srv_admin **out, struct st_error *err)
{
	int port, rc;
	int fd = srv_listen_open(s->cfg.admin, &port, err);
	if (fd < 0)
		return fd;
	struct srv_admin *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	a->srv = s;
	a->base = event_base_new();
	a->http = a->base ? evhttp_new(a->base) : NULL;
	if (!a->http) {
		close(fd);
		rc = st_error_set(err, ST_ENOMEM, "cannot create the HTTP server");
		goto fail;
	}
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(a->http, srv_admin_cb, a);
	/* evhttp owns fd from here (closed by evhttp_free). */
	if (!evhttp_accept_socket_with_handle(a->http, fd)) {
		close(fd);
		rc = st_error_set(err, ST_ENOMEM, "cannot accept on %s (admin)", s->cfg.admin);
		goto fail;
	}
	a->port = port;
	if ((rc = pthread_create(&a->thread, NULL, srv_admin_main, a))) {
		rc = st_error_set(err, -rc, "cannot start the admin thread");
		goto fail;
	}
	*out = a;
	return 0;
fail:
	if (a->http)
		evhttp_free(a->http);
	if (a->base)
		event_base_free(a->base);
	free(a);
	return rc;
}

int srv_admin_port(const struct srv_admin *a)
{
	return a->port;
}

void srv_admin_stop(struct srv_admin *a)
{
	if (!a)
		return;
	event_base_loopexit(a->base, NULL);
	pthread_join(a->thread, NULL);
	evhttp_free(a->http);
	event_base_free(a->base);
	free(a);
}
