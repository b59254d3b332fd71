/* The store worker pool: network threads never call the store, so a block-cache miss, a
 * compaction stall or a synced WAL write never stalls a ring. Requests arrive in batches (one
 * lock and one wakeup per network-loop iteration); with --sync always many workers blocked in
 * RocksDB's write path at once let its write leader group-commit them with one fsync, which
 * is why the pool is larger than the core count (blocked workers cost no CPU). */
#include "server/srv.h"

#include <stdlib.h>

#include "common/st_log.h"

struct srv_pool {
	struct srv_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct srv_req *head, *tail; /* under mu */
	size_t queued;               /* under mu */
	int idle;                    /* workers waiting on cv, under mu */
	int stop;                    /* under mu */
	int nthreads;
	pthread_t *threads;
};

static void srv_pool_flush(struct srv_net *n, struct srv_req *first, struct srv_req *last)
{
	if (first)
		srv_net_complete_chain(n, first, last);
}

static void *srv_pool_main(void *arg)
{
	struct srv_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop) {
			p->idle++;
			pthread_cond_wait(&p->cv, &p->mu);
			p->idle--;
		}
		if (!p->head)
			break; /* stop with an empty queue */
		/* Take a fair share of the queue at once: one lock round trip and one completion
		 * handoff per share instead of per request, while the other workers get the rest. */
		size_t take = p->queued / (size_t)p->nthreads;
		if (take < 1)
			take = 1;
		if (take > 64)
			take = 64;
		struct srv_req *mine = p->head, *r = mine;
		size_t got = 1;
		for (; got < take && r->next; got++)
			r = r->next;
		p->head = r->next;
		r->next = NULL;
		if (!p->head)
			p->tail = NULL;
		ST_ASSERT(p->queued >= got);
		p->queued -= got;
		if (p->head && p->idle)
			pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		/* Completions go back to each request's network thread, chained per thread. */
		struct srv_net *cn = NULL;
		struct srv_req *cfirst = NULL, *clast = NULL;
		while (mine) {
			struct srv_req *next = mine->next;
			mine->next = NULL;
			srv_dispatch(p->srv, mine);
			if (mine->net != cn) {
				srv_pool_flush(cn, cfirst, clast);
				cn = mine->net;
				cfirst = NULL;
			}
			if (cfirst)
				clast->next = mine;
			else
				cfirst = mine;
			clast = mine;
			mine = next;
		}
		srv_pool_flush(cn, cfirst, clast);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct srv_pool *srv_pool_start(struct srv_server *s, int nthreads, struct st_error *err)
{
	struct srv_pool *p = calloc(1, sizeof(*p));
	if (!p || !(p->threads = calloc(nthreads, sizeof(pthread_t)))) {
		free(p);
		st_error_set(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	p->srv = s;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < nthreads; i++) {
		int rc = pthread_create(&p->threads[i], NULL, srv_pool_main, p);
		if (rc) {
			st_error_set(err, -rc, "cannot start worker thread: %s", st_strerror(-rc));
			p->nthreads = i;
			srv_pool_stop(p);
			return NULL;
		}
		p->nthreads = i + 1;
	}
	return p;
}

void srv_pool_submit(struct srv_pool *p, struct srv_req *first, struct srv_req *last, size_t n)
{
	last->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = first;
	else
		p->head = first;
	p->tail = last;
	p->queued += n;
	if (p->idle)
		pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void srv_pool_stop(struct srv_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p);
}
