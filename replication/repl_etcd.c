/* etcd v3 JSON gateway client (see repl_etcd.h): synchronous POSTs on libevent's evhttp with
 * a private event base, base64 keys and values, string-encoded int64s. */
#include "replication/repl_etcd.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_base64.h"

struct repl_etcd {
	char host[256];
	int port;
	char prefix[256];
	int64_t timeout_us;
	struct event_base *base;
	struct evhttp_connection *conn;
};

int repl_etcd_open(const char *url, int64_t timeout_us, struct repl_etcd **out,
		   struct st_error *err)
{
	const char *p = url;
	if (strncmp(p, "etcd://", 7))
		return st_error_set(err, ST_EINVAL, "'%s' is not etcd://HOST:PORT/PREFIX", url);
	p += 7;
	const char *slash = strchr(p, '/'), *colon = strchr(p, ':');
	if (!slash || !colon || colon > slash || slash[1] == '\0' || colon == p ||
	    (size_t)(colon - p) >= 256 || strlen(slash) >= 256)
		return st_error_set(err, ST_EINVAL, "'%s' is not etcd://HOST:PORT/PREFIX", url);
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (end != slash || port < 1 || port > 65535)
		return st_error_set(err, ST_EINVAL, "bad port in '%s'", url);
	struct repl_etcd *e = calloc(1, sizeof(*e));
	if (!e)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	snprintf(e->host, sizeof(e->host), "%.*s", (int)(colon - p), p);
	e->port = (int)port;
	snprintf(e->prefix, sizeof(e->prefix), "%s", slash);
	size_t n = strlen(e->prefix);
	while (n > 1 && e->prefix[n - 1] == '/')
		e->prefix[--n] = '\0';
	e->timeout_us = timeout_us;
	e->base = event_base_new();
	if (!e->base) {
		free(e);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	*out = e;
	return 0;
}

void repl_etcd_close(struct repl_etcd *e)
{
	if (!e)
		return;
	if (e->conn)
		evhttp_connection_free(e->conn);
	event_base_free(e->base);
	free(e);
}

const char *repl_etcd_prefix(const struct repl_etcd *e)
{
	return e->prefix;
}

struct call {
	struct event_base *base;
	int done, status;
	char *body;
};

static void on_reply(struct evhttp_request *req, void *arg)
{
	struct call *c = arg;
	c->done = 1;
	if (req && evhttp_request_get_response_code(req)) {
		c->status = evhttp_request_get_response_code(req);
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(b);
		c->body = malloc(n + 1);
		if (c->body) {
			evbuffer_remove(b, c->body, n);
			c->body[n] = '\0';
		}
	}
	event_base_loopbreak(c->base);
}

/* POSTs body to path; *reply is the response body (malloc'ed). */
static int http_post(struct repl_etcd *e, const char *path, const char *body, char **reply,
		     int *status, struct st_error *err)
{
	if (!e->conn) {
		e->conn = evhttp_connection_base_new(e->base, NULL, e->host, (unsigned short)e->port);
		if (!e->conn)
			return st_error_set(err, ST_ENOMEM, "out of memory");
		struct timeval tv = {e->timeout_us / 1000000, e->timeout_us % 1000000};
		evhttp_connection_set_timeout_tv(e->conn, &tv);
		evhttp_connection_set_retries(e->conn, 0);
	}
	struct call c = {.base = e->base};
	struct evhttp_request *req = evhttp_request_new(on_reply, &c);
	if (!req)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char hostport[300];
	snprintf(hostport, sizeof(hostport), "%s:%d", e->host, e->port);
	evhttp_add_header(h, "Host", hostport);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	if (evhttp_make_request(e->conn, req, EVHTTP_REQ_POST, path)) {
		evhttp_connection_free(e->conn);
		e->conn = NULL;
		return st_error_set(err, ST_ECLOSED, "etcd %s:%d: cannot send a request", e->host,
				    e->port);
	}
	while (!c.done)
		if (event_base_dispatch(e->base) < 0)
			break;
	if (!c.done || !c.status) {
		/* the request was freed by evhttp; start over with a fresh connection */
		free(c.body);
		evhttp_connection_free(e->conn);
		e->conn = NULL;
		return st_error_set(err, ST_ECLOSED, "etcd %s:%d unreachable or timed out (%s)",
				    e->host, e->port, path);
	}
	if (!c.body)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	*reply = c.body;
	*status = c.status;
	return 0;
}

int repl_etcd_call(struct repl_etcd *e, const char *path, json_t *req, json_t **resp,
		   struct st_error *err)
{
	*resp = NULL;
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	char *reply = NULL;
	int status = 0;
	int rc = http_post(e, path, body, &reply, &status, err);
	free(body);
	if (rc)
		return rc;
	json_error_t je;
	json_t *o = json_loads(reply, 0, &je);
	if (!json_is_object(o)) {
		rc = st_error_set(err, ST_EPROTO, "etcd %s: HTTP %d, not JSON: %.200s", path, status,
				  reply);
		json_decref(o);
		free(reply);
		return rc;
	}
	free(reply);
	const json_t *msg = json_object_get(o, "error") ?: json_object_get(o, "message");
	if (status != 200 || msg) {
		rc = st_error_set(err, status >= 500 || status == 0 ? ST_ECLOSED : ST_EINVAL,
				  "etcd %s: HTTP %d: %s", path, status,
				  json_is_string(msg) ? json_string_value(msg) : "error");
		json_decref(o);
		return rc;
	}
	*resp = o;
	return 0;
}

/* ---- decoding ---- */

int64_t repl_etcd_i64(const json_t *v)
{
	if (!v)
		return 0;
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (!json_is_string(v))
		return -1;
	const char *s = json_string_value(v);
	char *end;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	return errno || end == s || *end ? -1 : (int64_t)n;
}

void repl_etcd_kvs_release(struct repl_etcd_kvs *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->kv[i].key);
		free(k->kv[i].value);
	}
	free(k->kv);
	k->kv = NULL;
	k->n = 0;
}

const struct repl_etcd_kv *repl_etcd_kvs_find(const struct repl_etcd_kvs *k, const char *key)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->kv[i].key, key))
			return &k->kv[i];
	return NULL;
}

static int decode_b64(const json_t *v, char **out, size_t *n)
{
	const char *s = json_string_value(v);
	if (!s) { /* an empty value is omitted by the gateway */
		*out = strdup("");
		*n = 0;
		return v || !*out ? ST_EPROTO : 0;
	}
	unsigned char *b = NULL;
	int rc = st_base64_decode(s, strlen(s), &b, n);
	*out = rc ? NULL : (char *)b;
	return rc;
}

int repl_etcd_decode_kvs(const json_t *resp, struct repl_etcd_kvs *out, struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	const json_t *kvs = json_object_get(resp, "kvs");
	if (!kvs)
		return 0;
	if (!json_is_array(kvs))
		return st_error_set(err, ST_EPROTO, "etcd range reply: kvs is not an array");
	out->kv = calloc(json_array_size(kvs) + 1, sizeof(*out->kv));
	if (!out->kv)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	size_t i;
	const json_t *kv;
	json_array_foreach(kvs, i, kv) {
		struct repl_etcd_kv *d = &out->kv[out->n];
		size_t klen;
		int rc = decode_b64(json_object_get(kv, "key"), &d->key, &klen);
		if (!rc && (!d->key || !d->key[0]))
			rc = ST_EPROTO;
		if (!rc)
			rc = decode_b64(json_object_get(kv, "value"), &d->value, &d->vlen);
		d->create_rev = repl_etcd_i64(json_object_get(kv, "create_revision"));
		d->mod_rev = repl_etcd_i64(json_object_get(kv, "mod_revision"));
		d->lease = repl_etcd_i64(json_object_get(kv, "lease"));
		out->n++;
		if (rc || d->create_rev < 0 || d->mod_rev < 0 || d->lease < 0) {
			repl_etcd_kvs_release(out);
			return rc == ST_ENOMEM ? st_error_set(err, rc, "out of memory")
					       : st_error_set(err, ST_EPROTO, "etcd range reply: "
							      "malformed entry %zu", i);
		}
	}
	return 0;
}

int repl_etcd_decode_keepalive(const json_t *resp, int64_t *ttl, struct st_error *err)
{
	const json_t *r = json_object_get(resp, "result");
	if (!json_is_object(r))
		return st_error_set(err, ST_EPROTO, "etcd keepalive reply without a result");
	*ttl = repl_etcd_i64(json_object_get(r, "TTL"));
	if (*ttl < 0)
		return st_error_set(err, ST_EPROTO, "etcd keepalive reply: bad TTL");
	return 0;
}

int repl_etcd_decode_watch(const json_t *msg, int *created, int *canceled,
			   void (*cb)(void *arg, const char *key), void *arg,
			   struct st_error *err)
{
	*created = *canceled = 0;
	const json_t *e = json_object_get(msg, "error");
	if (e) {
		const json_t *m = json_object_get(e, "message");
		return st_error_set(err, ST_ECLOSED, "etcd watch: %s",
				    json_is_string(m) ? json_string_value(m) : "error");
	}
	const json_t *r = json_object_get(msg, "result");
	if (!json_is_object(r))
		return st_error_set(err, ST_EPROTO, "etcd watch message without a result");
	*created = json_is_true(json_object_get(r, "created"));
	*canceled = json_is_true(json_object_get(r, "canceled"));
	const json_t *evs = json_object_get(r, "events");
	if (evs && !json_is_array(evs))
		return st_error_set(err, ST_EPROTO, "etcd watch: events is not an array");
	size_t i;
	const json_t *ev;
	json_array_foreach(evs, i, ev) {
		char *key = NULL;
		size_t n;
		const json_t *k = json_object_get(json_object_get(ev, "kv"), "key");
		if (!k || decode_b64(k, &key, &n)) {
			free(key); /* "" for a key that is not a string */
			return st_error_set(err, ST_EPROTO, "etcd watch: malformed event %zu", i);
		}
		if (strlen(key) == n)
			cb(arg, key);
		free(key);
	}
	return 0;
}

/* ---- requests ---- */

static json_t *b64(const char *s)
{
	char *e = st_base64_encode(s, strlen(s));
	json_t *v = e ? json_string(e) : NULL;
	free(e);
	return v;
}

static json_t *i64s(int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

int repl_etcd_range(struct repl_etcd *e, const char *key, int prefix, struct repl_etcd_kvs *out,
		    struct st_error *err)
{
	memset(out, 0, sizeof(*out));
	json_t *req = json_pack("{s:o}", "key", b64(key));
	if (req && prefix) {
		/* range_end: the key with its last byte + 1 (every key with this prefix) */
		size_t n = strlen(key);
		char *end = strdup(key);
		if (end && n)
			end[n - 1]++;
		json_object_set_new(req, "range_end", end ? b64(end) : NULL);
		free(end);
	}
	json_t *resp;
	int rc = repl_etcd_call(e, "/v3/kv/range", req, &resp, err);
	if (rc)
		return rc;
	rc = repl_etcd_decode_kvs(resp, out, err);
	json_decref(resp);
	return rc;
}

json_t *repl_etcd_op_put(const char *key, const char *value, int64_t lease)
{
	json_t *put = json_pack("{s:o,s:o}", "key", b64(key), "value", b64(value));
	if (put && lease)
		json_object_set_new(put, "lease", i64s(lease));
	return put;
}

int repl_etcd_put(struct repl_etcd *e, const char *key, const char *value, int64_t lease,
		  struct st_error *err)
{
	json_t *resp;
	int rc = repl_etcd_call(e, "/v3/kv/put", repl_etcd_op_put(key, value, lease), &resp, err);
	json_decref(resp);
	return rc;
}

int repl_etcd_grant(struct repl_etcd *e, int64_t ttl_s, int64_t *id, struct st_error *err)
{
	json_t *resp;
	int rc = repl_etcd_call(e, "/v3/lease/grant", json_pack("{s:o}", "TTL", i64s(ttl_s)), &resp,
				err);
	if (rc)
		return rc;
	*id = repl_etcd_i64(json_object_get(resp, "ID"));
	json_decref(resp);
	return *id > 0 ? 0 : st_error_set(err, ST_EPROTO, "etcd lease grant: no lease ID");
}

int repl_etcd_keepalive(struct repl_etcd *e, int64_t id, int64_t *ttl, struct st_error *err)
{
	json_t *resp;
	int rc = repl_etcd_call(e, "/v3/lease/keepalive", json_pack("{s:o}", "ID", i64s(id)), &resp,
				err);
	if (rc)
		return rc;
	rc = repl_etcd_decode_keepalive(resp, ttl, err);
	json_decref(resp);
	return rc;
}

int repl_etcd_revoke(struct repl_etcd *e, int64_t id, struct st_error *err)
{
	json_t *resp;
	int rc = repl_etcd_call(e, "/v3/lease/revoke", json_pack("{s:o}", "ID", i64s(id)), &resp,
				err);
	json_decref(resp);
	return rc;
}

json_t *repl_etcd_cmp_rev(const char *key, const char *target, int64_t rev)
{
	const char *field = !strcmp(target, "CREATE") ? "create_revision" : "mod_revision";
	return json_pack("{s:o,s:s,s:s,s:o}", "key", b64(key), "target", target, "result",
			 "EQUAL", field, i64s(rev));
}

int repl_etcd_txn(struct repl_etcd *e, json_t *compare, json_t *success, int *ok,
		  struct st_error *err)
{
	json_t *resp;
	json_t *req = json_pack("{s:o,s:o,s:[]}", "compare", compare, "success", success,
				"failure");
	int rc = repl_etcd_call(e, "/v3/kv/txn", req, &resp, err);
	if (rc)
		return rc;
	*ok = json_is_true(json_object_get(resp, "succeeded"));
	json_decref(resp);
	return 0;
}

/* ---- watch: a streamed response read chunk by chunk ---- */

struct watch {
	struct event_base *base;
	struct evbuffer *lines;
	repl_etcd_watch_cb on_msg;
	int (*stop)(void *arg);
	void *arg;
	struct evhttp_request *req; /* NULL once evhttp has freed it */
	int done, rc;
	struct st_error *err;
};

static void watch_end(struct watch *w, int rc)
{
	if (!w->done) {
		w->done = 1;
		w->rc = rc;
	}
	event_base_loopbreak(w->base);
}

static void on_watch_chunk(struct evhttp_request *req, void *arg)
{
	struct watch *w = arg;
	evbuffer_add_buffer(w->lines, evhttp_request_get_input_buffer(req));
	char *line;
	size_t n;
	while (!w->done && (line = evbuffer_readln(w->lines, &n, EVBUFFER_EOL_LF))) {
		json_error_t je;
		json_t *o = n ? json_loadb(line, n, 0, &je) : NULL;
		free(line);
		if (!n)
			continue;
		int rc = o ? w->on_msg(w->arg, o)
			   : st_error_set(w->err, ST_EPROTO, "etcd watch: not JSON: %s", je.text);
		json_decref(o);
		if (rc)
			watch_end(w, rc);
	}
}

static void on_watch_done(struct evhttp_request *req, void *arg)
{
	struct watch *w = arg;
	w->req = NULL; /* evhttp frees it after this callback */
	if (!w->done)
		st_error_set(w->err, ST_ECLOSED, "etcd watch ended (HTTP %d)",
			     req ? evhttp_request_get_response_code(req) : 0);
	watch_end(w, ST_ECLOSED);
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	if (w->stop(w->arg))
		watch_end(w, 0);
}

int repl_etcd_watch(struct repl_etcd *e, const char *prefix, repl_etcd_watch_cb on_msg,
		    int (*stop)(void *arg), void *arg, struct st_error *err)
{
	size_t n = strlen(prefix);
	char *end = strdup(prefix);
	if (!end || !n) {
		free(end);
		return st_error_set(err, ST_EINVAL, "empty watch prefix");
	}
	end[n - 1]++;
	json_t *body = json_pack("{s:{s:o,s:o}}", "create_request", "key", b64(prefix),
				 "range_end", b64(end));
	free(end);
	char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	struct evhttp_connection *conn =
		js ? evhttp_connection_base_new(e->base, NULL, e->host, (unsigned short)e->port) : NULL;
	struct watch w = {.base = e->base, .lines = evbuffer_new(), .on_msg = on_msg,
			  .stop = stop, .arg = arg, .err = err};
	struct event *tick = event_new(e->base, -1, EV_PERSIST, on_watch_timer, &w);
	w.req = conn ? evhttp_request_new(on_watch_done, &w) : NULL;
	int rc = 0;
	if (!w.lines || !tick || !w.req) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		if (w.req)
			evhttp_request_free(w.req);
		goto out;
	}
	struct timeval tv = {e->timeout_us / 1000000, e->timeout_us % 1000000},
		       every = {0, 100000};
	evhttp_connection_set_timeout_tv(conn, &tv);
	evhttp_connection_set_retries(conn, 0);
	evhttp_request_set_chunked_cb(w.req, on_watch_chunk);
	struct evkeyvalq *h = evhttp_request_get_output_headers(w.req);
	char hostport[300];
	snprintf(hostport, sizeof(hostport), "%s:%d", e->host, e->port);
	evhttp_add_header(h, "Host", hostport);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(w.req), js, strlen(js));
	event_add(tick, &every);
	if (evhttp_make_request(conn, w.req, EVHTTP_REQ_POST, "/v3/watch")) {
		w.req = NULL; /* freed by evhttp on failure */
		rc = st_error_set(err, ST_ECLOSED, "etcd %s:%d: cannot send the watch", e->host,
				  e->port);
		goto out;
	}
	while (!w.done)
		if (event_base_dispatch(e->base) < 0)
			break;
	rc = w.done ? w.rc : st_error_set(err, ST_ECLOSED, "etcd watch: event loop failed");
	if (w.req)
		evhttp_cancel_request(w.req);
out:
	if (tick)
		event_free(tick);
	if (w.lines)
		evbuffer_free(w.lines);
	if (conn)
		evhttp_connection_free(conn);
	free(js);
	return rc;
}
