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
		struct srv_req *r = p->head;
		if (!r)
			break; /* stop with an empty queue */
		p->head = r->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		/* Wake one more worker if work is left, so a batch fans out one at a time and
		 * the submitting thread pays for a single wakeup. */
		if (p->head && p->idle)
			pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		srv_dispatch(p->srv, r);
		srv_net_complete(r->net, r);
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
