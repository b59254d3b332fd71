/* A small client of etcd's v3 JSON gateway (POST /v3/...; keys and values base64; 64-bit
 * integers as strings), on libevent's HTTP client. Used by the etcd coordinator
 * (repl_coord_etcd.c) and strata-admin's cluster commands. A handle belongs to one thread
 * (its own event base and kept-alive connection). Errors: 0 or a negative st_err code
 * (ST_ECLOSED: etcd unreachable or timed out; ST_EPROTO: a reply that is not what the
 * gateway sends). */
#ifndef REPL_ETCD_H
#define REPL_ETCD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/st_err.h"

struct repl_etcd;

/* url: etcd://HOST:PORT/PREFIX (PREFIX: the cluster's key prefix, e.g. /strata/prod). */
int repl_etcd_open(const char *url, int64_t timeout_us, struct repl_etcd **out,
		   struct st_error *err);
void repl_etcd_close(struct repl_etcd *e);
/* The key prefix, without a trailing '/' (e.g. "/strata/prod"). */
const char *repl_etcd_prefix(const struct repl_etcd *e);

/* One POST: `req` is consumed; *resp is the parsed reply (caller decrefs). A reply with an
 * "error" member (gRPC status) is an error carrying its message. */
int repl_etcd_call(struct repl_etcd *e, const char *path, json_t *req, json_t **resp,
		   struct st_error *err);

struct repl_etcd_kv {
	char *key;
	char *value; /* NUL-terminated (the gateway's bytes) */
	size_t vlen;
	int64_t create_rev, mod_rev, lease;
};
struct repl_etcd_kvs {
	struct repl_etcd_kv *kv;
	size_t n;
};
void repl_etcd_kvs_release(struct repl_etcd_kvs *k);
/* The value of `key` in k, or NULL. */
const struct repl_etcd_kv *repl_etcd_kvs_find(const struct repl_etcd_kvs *k, const char *key);

/* ---- decoding the gateway's JSON (pure; unit-tested) ---- */
/* An int64 the gateway sends as a string ("12") or a number; missing = 0; -1 if malformed. */
int64_t repl_etcd_i64(const json_t *v);
/* A range reply's "kvs" (absent = none) into out. */
int repl_etcd_decode_kvs(const json_t *resp, struct repl_etcd_kvs *out, struct st_error *err);
/* A keepalive reply ({"result":{"ID":..,"TTL":..}}): the lease's new TTL in seconds, 0 when
 * the lease no longer exists (TTL absent). */
int repl_etcd_decode_keepalive(const json_t *resp, int64_t *ttl, struct st_error *err);

/* One message of a watch stream ({"result":{"header":{"revision"},"created","canceled",
 * "events":[{"type","kv":{"key",...}}]}} or {"error":...}): *created / *canceled as etcd says,
 * and cb(arg, key) for every event's key (decoded). ST_EPROTO for anything else, ST_ECLOSED
 * for an error message. */
int repl_etcd_decode_watch(const json_t *msg, int *created, int *canceled,
			   void (*cb)(void *arg, const char *key), void *arg,
			   struct st_error *err);

/* ---- requests ---- */
/* Range of `key` (prefix != 0: every key starting with it). */
int repl_etcd_range(struct repl_etcd *e, const char *key, int prefix, struct repl_etcd_kvs *out,
		    struct st_error *err);
int repl_etcd_put(struct repl_etcd *e, const char *key, const char *value, int64_t lease,
		  struct st_error *err);
int repl_etcd_grant(struct repl_etcd *e, int64_t ttl_s, int64_t *id, struct st_error *err);
int repl_etcd_keepalive(struct repl_etcd *e, int64_t id, int64_t *ttl, struct st_error *err);
int repl_etcd_revoke(struct repl_etcd *e, int64_t id, struct st_error *err);

/* Watches every key starting with `prefix` (POST /v3/watch: one streamed response, one JSON
 * message per line) in the calling thread: each message goes to on_msg (a non-zero return
 * ends the watch with that code). Every 100 ms stop(arg) is asked whether to end (then 0).
 * Otherwise returns when the stream breaks: ST_ECLOSED (etcd gone, or nothing received for
 * the handle's timeout), ST_EPROTO (a line that is not JSON). Uses its own connection. */
typedef int (*repl_etcd_watch_cb)(void *arg, const json_t *msg);
int repl_etcd_watch(struct repl_etcd *e, const char *prefix, repl_etcd_watch_cb on_msg,
		    int (*stop)(void *arg), void *arg, struct st_error *err);

/* Transaction pieces. A compare: target "CREATE" | "MOD" compares that revision of `key`
 * for equality with rev (CREATE 0 = the key does not exist). */
json_t *repl_etcd_cmp_rev(const char *key, const char *target, int64_t rev);
json_t *repl_etcd_op_put(const char *key, const char *value, int64_t lease);
/* Runs {"compare":..., "success":..., "failure":[]} (both arrays consumed); *ok = succeeded. */
int repl_etcd_txn(struct repl_etcd *e, json_t *compare, json_t *success, int *ok,
		  struct st_error *err);

#endif
