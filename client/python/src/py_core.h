/* strata._core: the CPython extension under the `strata` package. C where the bytes are
 * (columns to cells, results to numpy buffers), the Pythonic layer lives in the strata/ modules.
 * Embedded and network modes are the CLI's backend table (client/cli_backend.h), so both
 * behave exactly as `strata --data-dir` and `strata --addr` do. */
#ifndef PY_CORE_H
#define PY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>

#include "client/cli_backend.h"

#define PY_POOL_MAX 16 /* idle network connections kept per client */

/* A client: an embedded store or a pool of connections to one server.
 * Every operation runs with the GIL released and holds `life` for reading; close takes it for
 * writing, so it waits for operations in flight and none starts after it. */
struct py_client {
	PyObject_HEAD
	int embedded;
	int closed;               /* under life (written with the write lock) */
	pthread_rwlock_t life;
	pthread_mutex_t mu;       /* protects idle/nidle */
	struct cli_backend emb;   /* embedded: shared by all threads (kv_db is thread-safe) */
	struct cli_backend idle[PY_POOL_MAX];
	size_t nidle;
	char *addr;               /* network: owned copies */
	char *token;
	int connect_timeout_ms, io_timeout_ms;
};

extern PyTypeObject py_client_type;

/* Takes a backend for one operation (GIL released by the caller). Returns 0 and fills *be,
 * or an error (closed client, connect failure). Pair with py_backend_put. */
int py_backend_take(struct py_client *c, struct cli_backend *be, struct st_error *err);
void py_backend_put(struct py_client *c, struct cli_backend *be);

/* Runs `op` on a backend with the GIL released; the caller raises on error. */
#define PY_RUN(c, be, err, rc, op)                                                       \
	do {                                                                             \
		Py_BEGIN_ALLOW_THREADS                                                   \
		rc = py_backend_take(c, &be, &err);                                      \
		if (!rc) {                                                               \
			rc = (op);                                                       \
			py_backend_put(c, &be);                                          \
		}                                                                        \
		Py_END_ALLOW_THREADS                                                     \
	} while (0)

/* Raises the Python exception registered for err->code (strata.NotFound, ...). Returns NULL. */
PyObject *py_raise(const struct st_error *err);
/* Raises strata's exception for `code` with a formatted message. Returns NULL. */
PyObject *py_raisef(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A result value as a Python object: int, float, str, bytes, or a numpy array for f32[N]
 * and i64[] (through the factories registered by strata/__init__.py). New reference. */
PyObject *py_value_to_object(const struct kv_value *v);

/* Entity keys of a call: a list of str/bytes (UTF-8 pointers into the objects, which `keep`
 * holds) or an int64 buffer (formatted in decimal into `arena`). */
struct py_entities {
	size_t n;
	const char **ptr;
	size_t *len;
	PyObject *keep;
	char *arena;
};
int py_entities_init(struct py_entities *e, PyObject *obj);
void py_entities_release(struct py_entities *e);

/* Names from a list of str (pointers into the objects held by the list). */
const char **py_names(PyObject *list, size_t *n);

/* Methods implemented in py_data.c. */
PyObject *py_put_columns(PyObject *self, PyObject *args);
PyObject *py_delete(PyObject *self, PyObject *args);
PyObject *py_get(PyObject *self, PyObject *args);
PyObject *py_history(PyObject *self, PyObject *args);
PyObject *py_join(PyObject *self, PyObject *args);

#endif
