/* libstrata internals shared by client/strata_*.c: the connection engine (framing,
 * pipelining, response routing by id) and protobuf <-> strata conversions. */
#ifndef STRATA_IMPL_H
#define STRATA_IMPL_H

#include "client/strata.h"
#include "proto/strata.pb-c.h"

/* A response that arrived while nobody waited for its id (e.g. a join chunk's answer while
 * a synchronous call runs). Owned by the handle. */
struct sc_parked {
	struct sc_parked *next;
	uint64_t id;
	Strata__Response *resp;
};

/* Called with each awaited response (ownership passes to the callback). */
typedef void (*sc_deliver_fn)(void *arg, size_t idx, Strata__Response *resp);

struct strata {
	char addr[300];
	char host[256];
	int port;
	struct strata_connect_opts o;
	char *token; /* owned copy */
	int fd;      /* -1: not connected (reconnects on the next call) */
	uint64_t epoch; /* bumped on every (re)connect: older joins are dead */
	uint64_t next_id;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	struct sc_parked *parked;
	/* The wait in progress: responses with ids in [wbase, wbase + wn) go to wcb. */
	uint64_t wbase;
	size_t wn;
	sc_deliver_fn wcb;
	void *warg;
};

int sc_error(struct strata_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* sc_call for requests answered with a JSON document (status_json): *json is a copy to
 * free(), "{}" when the answer has none. */
int sc_call_json(strata *c, Strata__Request *req, int idempotent, char **json,
		 struct strata_error *err);
/* Connects (and authenticates) if the handle has no live connection. */
int sc_ensure(strata *c, struct strata_error *err);
void sc_disconnect(strata *c);
/* Reserves n consecutive request ids. */
uint64_t sc_reserve_ids(strata *c, size_t n);
/* Appends a request frame to the output buffer (not sent until sc_wait). */
int sc_queue(strata *c, const Strata__Request *req, struct strata_error *err);
/* Appends a frame whose body was packed with id 0, setting the id by appending the id field
 * (protobuf: the last value of a scalar field wins). */
int sc_queue_body(strata *c, const uint8_t *body, size_t len, uint64_t id,
		  struct strata_error *err);
/* Sends queued output and reads until `want` responses with ids in [base, base + n) were
 * delivered to cb. A transport failure disconnects and is returned. */
int sc_wait(strata *c, uint64_t base, size_t n, size_t want, sc_deliver_fn cb, void *arg,
	    size_t *got, struct strata_error *err);
/* One synchronous request: *resp is the answer with code 0 (free with
 * strata__response__free_unpacked) or an error is returned. `idempotent` allows one retry
 * on a fresh connection after a transport failure. */
int sc_call(strata *c, Strata__Request *req, Strata__Response **resp, int idempotent,
	    struct strata_error *err);
/* The error carried by a response (0 if none). */
int sc_resp_error(const Strata__Response *r, struct strata_error *err);
int sc_is_transport_error(int code);

/* Conversions. to_pb borrows the value's memory; from_pb allocates (result owns it). */
void sc_value_to_pb(const struct strata_value *v, Strata__Value *pb);
int sc_value_from_pb(const Strata__Value *pb, struct strata_value *v);
int sc_results_from_pb(Strata__Result *const *rs, size_t n, struct strata_result *out,
		       struct strata_error *err);

#endif
