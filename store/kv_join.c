/* Versioned sample join: each sample row (entity, ts) gets every requested feature as of its
 * own ts. Rows are buffered in chunks; a chunk is sorted by (shard, entity, ts descending)
 * and swept with one iterator per shard: one seek per (entity, feature), then only forward
 * steps across that feature's versions, instead of a random seek per row. Results are kept
 * by input position, so output order is input order. Memory is bounded by the chunk size. */
#include "store/kv_scan.h"

#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct join_row {
	uint64_t k0, k1; /* entity length and first 14 bytes, in key order: equal words and a
			  * length up to 14 mean equal entities */
	int64_t ts;      /* the row's ts: sorting and sweeping read no other array */
	uint32_t idx;    /* input position in the chunk */
};

struct kv_join {
	struct kv_db *db;
	char table[KV_NAME_MAX];
	uint32_t table_id;
	size_t nf;
	uint16_t *fids;
	int64_t *ttls; /* per requested feature, refreshed per chunk */
	struct kv_rules rules;
	int64_t known_at;
	enum kv_join_horizon policy;
	uint64_t skipped;
	size_t chunk, n;
	/* per row, by input position: one buffer (ts, then eoff, then elen) */
	int64_t *ts;
	uint32_t *eoff, *elen;
	size_t rowarr_bytes;
	char *arena;
	size_t arena_len, arena_cap;
	struct kv_result *res; /* chunk * nf */
	size_t res_bytes;
	int ran;
	_Atomic int owns; /* some result of the run owns memory (a str, bytes or list value) */
	struct st_error *errs; /* per shard: what a failed sweep reports */
};

/* Large buffers of a join: the result chunk (1M rows x 10 features is 480 MB), the per-row
 * arrays and the sort's rows. The result chunk gets transparent huge pages: the sweep writes
 * each row's results at its input position, in random order, and with 4 KiB pages nearly
 * every row cost a TLB miss and the first touch of each a page fault. The kernel zeroes a
 * fresh mapping's pages as they are touched (a tenth of the CPU of a 1M x 10 join), so freed
 * buffers are kept as spares for the next join (up to BIG_SPARES, the largest kept), their
 * pages given back lazily (MADV_FREE: reclaimed only under memory pressure). malloc would
 * keep them only in the thread that freed them: stratad opens, fills and sweeps a join from
 * different worker threads, whose arenas gave such buffers back to the kernel each time (12k
 * page faults per 1M-row sweep, the ~9% more CPU than embedded). A spare needs no zeroing:
 * the result chunk is freed with no result owning memory, a reclaimed page reads back as
 * zeroes (a result owning nothing too), and a run writes every result it reports; the other
 * buffers are written before they are read. *mapped: the mapping's size (0: malloc'd). */
#ifdef __SANITIZE_ADDRESS__
#define BIG_MAP_MIN SIZE_MAX /* ASan checks the bounds of malloc'd buffers only */
#else
#define BIG_MAP_MIN (1u << 20)
#endif
#define BIG_SPARES 12

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *p;
	size_t bytes;
	int clean; /* a result chunk whose results own nothing: may serve a zero request */
} spares[BIG_SPARES]; /* under spare_lock */

/* zero: the buffer must read as results that own nothing (the result chunk): calloc for the
 * small case; a fresh mapping, or a spare freed clean (a result chunk, never another buffer,
 * whose bytes could look like owned pointers to a release of rows a failed sweep left). */
static void *big_alloc(size_t bytes, int zero, size_t *mapped)
{
	*mapped = 0;
	if (bytes < BIG_MAP_MIN)
		return zero ? calloc(1, bytes ? bytes : 1) : malloc(bytes ? bytes : 1);
	void *p = NULL;
	int best = -1;
	pthread_mutex_lock(&spare_lock);
	for (int i = 0; i < BIG_SPARES; i++)
		if (spares[i].p && spares[i].bytes >= bytes && (!zero || spares[i].clean) &&
		    (best < 0 || spares[i].bytes < spares[best].bytes))
			best = i;
	if (best >= 0) {
		p = spares[best].p;
		*mapped = spares[best].bytes;
		spares[best].p = NULL;
	}
	pthread_mutex_unlock(&spare_lock);
	if (p)
		return p;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without THP, 4 KiB pages */
	*mapped = bytes;
	return p;
}

/* clean: p is a result chunk and none of its results owns memory. Kept as a spare in a
 * free slot, else in place of the smallest spare if that is smaller; else unmapped. */
static void big_free(void *p, size_t mapped, int clean)
{
	if (!mapped) {
		free(p);
		return;
	}
	(void)madvise(p, mapped, MADV_FREE);
	pthread_mutex_lock(&spare_lock);
	int slot = -1;
	for (int i = 0; i < BIG_SPARES && (slot < 0 || spares[slot].p); i++)
		if (!spares[i].p || (spares[i].bytes < mapped &&
				     (slot < 0 || spares[i].bytes < spares[slot].bytes)))
			slot = i;
	if (slot >= 0) {
		void *old = spares[slot].p;
		size_t old_bytes = spares[slot].bytes;
		spares[slot].p = p;
		spares[slot].bytes = mapped;
		spares[slot].clean = clean;
		p = old;
		mapped = old_bytes;
	}
	pthread_mutex_unlock(&spare_lock);
	if (p)
		munmap(p, mapped);
}

int kv_join_open(struct kv_db *db, const char *table, const char *const *features,
		 size_t nfeatures, int64_t known_at, size_t chunk_rows, struct kv_join **out,
		 struct st_error *err)
{
	if (nfeatures == 0)
		return st_error_set(err, ST_EINVAL, "no features requested");
	if (chunk_rows == 0)
		chunk_rows = 1 << 20;
	struct kv_join *j = calloc(1, sizeof(*j));
	if (!j)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	j->db = db;
	snprintf(j->table, sizeof(j->table), "%s", table);
	j->nf = nfeatures;
	j->chunk = chunk_rows;
	j->known_at = known_at;
	j->fids = calloc(nfeatures, sizeof(*j->fids));
	j->ttls = calloc(nfeatures, sizeof(*j->ttls));
	j->ts = big_alloc(chunk_rows * (sizeof(*j->ts) + 2 * sizeof(*j->eoff)), 0,
			  &j->rowarr_bytes);
	j->eoff = j->ts ? (uint32_t *)(j->ts + chunk_rows) : NULL;
	j->elen = j->ts ? j->eoff + chunk_rows : NULL;
	j->res = big_alloc(chunk_rows * nfeatures * sizeof(*j->res), 1, &j->res_bytes);
	j->errs = calloc((size_t)kv_nshards(db), sizeof(*j->errs));
	if (!j->fids || !j->ttls || !j->ts || !j->res || !j->errs) {
		kv_join_free(j);
		return st_error_set(err, ST_ENOMEM, "out of memory for a join chunk of %zu rows",
				    chunk_rows);
	}
	/* Resolve now so that a bad table or feature fails before any row is read. */
	int rc = 0;
	pthread_rwlock_rdlock(&db->reg_lock);
	const struct kv_table *t = kv_reg_find_err(db, table, err);
	if (!t)
		rc = ST_ENOTFOUND;
	for (size_t i = 0; t && i < nfeatures && !rc; i++) {
		const struct kv_feature_def *f = kv_table_feature(t, features[i]);
		if (!f)
			rc = st_error_set(err, ST_ENOTFOUND, "table '%s' has no feature '%s'", table,
					  features[i]);
		else
			j->fids[i] = f->id;
	}
	if (t && !rc) {
		j->table_id = t->id;
		j->rules.horizon = kv_table_horizon(t, kv_now(db));
		rc = kv_check_horizon(t, j->rules.horizon, "as-of", ST_TS_MAX, known_at, err);
	}
	pthread_rwlock_unlock(&db->reg_lock);
	if (rc) {
		kv_join_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

void kv_join_set_horizon_policy(struct kv_join *j, enum kv_join_horizon p)
{
	j->policy = p;
}

uint64_t kv_join_skipped(const struct kv_join *j)
{
	return j->skipped;
}

static int row_before_horizon(const struct kv_join *j, int64_t ts, size_t row,
			      struct st_error *err)
{
	char a[ST_TS_BUFLEN], h[ST_TS_BUFLEN];
	return st_error_set(err, ST_ERANGE,
			    "join row %zu: ts %s is before table '%s' retention horizon %s (use "
			    "--before-horizon skip for empty cells instead)",
			    row, st_ts_format(ts, a), j->table, st_ts_format(j->rules.horizon, h));
}

int kv_join_push_at(struct kv_join *j, size_t pos, const char *entity, size_t entity_len,
		    int64_t ts, struct st_error *err)
{
	ST_ASSERT(!j->ran);
	if (pos >= j->chunk)
		return st_error_set(err, ST_ELIMIT, "join chunk is full: run it first");
	/* the horizon of the last run (or the open): the run checks again with the current one */
	if (ts < j->rules.horizon && j->policy == KV_JOIN_ERROR_BEFORE_HORIZON)
		return row_before_horizon(j, ts, pos, err);
	if (entity_len == 0 || entity_len > KV_ENTITY_MAX)
		return st_error_set(err, ST_EINVAL, "entity key must be 1..%d bytes", KV_ENTITY_MAX);
	if (j->arena_len + entity_len > j->arena_cap) {
		size_t nc = j->arena_cap ? j->arena_cap * 2 : 1 << 16;
		while (nc < j->arena_len + entity_len)
			nc *= 2;
		if (nc > UINT32_MAX)
			return st_error_set(err, ST_ELIMIT, "join chunk entity bytes exceed 4 GiB");
		char *na = realloc(j->arena, nc);
		if (!na)
			return st_error_set(err, ST_ENOMEM, "out of memory");
		j->arena = na;
		j->arena_cap = nc;
	}
	memcpy(j->arena + j->arena_len, entity, entity_len);
	j->eoff[pos] = (uint32_t)j->arena_len;
	j->elen[pos] = (uint32_t)entity_len;
	j->ts[pos] = ts;
	j->arena_len += entity_len;
	if (pos >= j->n)
		j->n = pos + 1;
	return 0;
}

int kv_join_push(struct kv_join *j, const char *entity, size_t entity_len, int64_t ts,
		 struct st_error *err)
{
	int rc = kv_join_push_at(j, j->n, entity, entity_len, ts, err);
	return rc ? rc : j->n == j->chunk;
}

#define SORTKEY_BYTES 14 /* entity bytes in join_row's k0/k1 */

/* qsort has no context argument: the chunk being sorted is kept here, per thread. */
static _Thread_local const struct kv_join *sort_join;

static int row_cmp(const void *pa, const void *pb)
{
	const struct join_row *a = pa, *b = pb;
	if (a->k0 != b->k0)
		return a->k0 < b->k0 ? -1 : 1;
	if (a->k1 != b->k1)
		return a->k1 < b->k1 ? -1 : 1;
	/* equal words: equal lengths (the first two bytes), and equal entities up to 14 bytes */
	uint32_t la = (uint32_t)(a->k0 >> 48);
	if (la > SORTKEY_BYTES) {
		const struct kv_join *j = sort_join;
		int c = memcmp(j->arena + j->eoff[a->idx] + SORTKEY_BYTES,
			       j->arena + j->eoff[b->idx] + SORTKEY_BYTES, la - SORTKEY_BYTES);
		if (c)
			return c;
	}
	return a->ts > b->ts ? -1 : a->ts < b->ts ? 1 : (a->idx < b->idx ? -1 : 1);
}

/* The start of the entity's key bytes (length u16 then the entity) as two big-endian words,
 * zero-padded: comparing them orders rows as the keys are ordered, up to 14 entity bytes. */
static void make_sortkey(struct join_row *r, const char *e, uint32_t len)
{
	unsigned char b[16] = {(unsigned char)(len >> 8), (unsigned char)len};
	memcpy(b + 2, e, len < SORTKEY_BYTES ? len : SORTKEY_BYTES);
	r->k0 = r->k1 = 0;
	for (int i = 0; i < 8; i++) {
		r->k0 = (r->k0 << 8) | b[i];
		r->k1 = (r->k1 << 8) | b[8 + i];
	}
}

static int same_entity(const struct kv_join *j, const struct join_row *a,
		       const struct join_row *b)
{
	uint32_t len = (uint32_t)(a->k0 >> 48);
	return a->k0 == b->k0 && a->k1 == b->k1 &&
	       (len <= SORTKEY_BYTES || !memcmp(j->arena + j->eoff[a->idx] + SORTKEY_BYTES,
						j->arena + j->eoff[b->idx] + SORTKEY_BYTES,
						len - SORTKEY_BYTES));
}

struct join_pool {
	struct kv_join *j;
	struct join_row *rows; /* bucketed by shard: shard s is rows[start[s]..start[s+1]) */
	size_t *start;
	_Atomic int next_shard;
	_Atomic int rc;
};

/* The three sort words of a row: k0, k1, then ts descending as an unsigned word. */
static uint64_t row_word(const struct join_row *r, int w)
{
	return w == 0 ? r->k0 : w == 1 ? r->k1 : ~((uint64_t)r->ts ^ 0x8000000000000000ull);
}

/* Sorts rows as row_cmp orders them: an LSD radix sort on (k0, k1, ts descending), one
 * counting pass per byte that is not the same in every row (entities and times of a join
 * share most bytes), stable so that full ties keep input order (the rows arrive in idx
 * order); then runs of entities longer than the inline key that share it are sorted by
 * row_cmp. tmp: n rows of scratch. Instead of qsort's 20 comparisons per row through a
 * function pointer. count: 24 x 256 zeroed counters. */
static void sort_rows(const struct kv_join *j, struct join_row *rows, struct join_row *tmp,
		      size_t n, size_t (*count)[256])
{
	for (size_t i = 0; i < n; i++)
		for (int w = 0; w < 3; w++) {
			uint64_t v = row_word(&rows[i], w);
			for (int b = 0; b < 8; b++)
				count[w * 8 + b][(v >> (8 * b)) & 0xff]++;
		}
	struct join_row *src = rows, *dst = tmp;
	for (int p = 0; p < 24; p++) { /* least significant byte first: ts, then k1, k0 */
		int w = 2 - p / 8, b = p % 8;
		size_t *c = count[w * 8 + b], pos = 0;
		if (c[(row_word(&src[0], w) >> (8 * b)) & 0xff] == n)
			continue; /* every row has this byte */
		for (int k = 0; k < 256; k++) {
			size_t m = c[k];
			c[k] = pos;
			pos += m;
		}
		for (size_t i = 0; i < n; i++)
			dst[c[(row_word(&src[i], w) >> (8 * b)) & 0xff]++] = src[i];
		struct join_row *t = src;
		src = dst;
		dst = t;
	}
	if (src != rows)
		memcpy(rows, src, n * sizeof(*rows));
	sort_join = j;
	for (size_t g = 0; g < n;) {
		size_t end = g + 1;
		while (end < n && rows[end].k0 == rows[g].k0 && rows[end].k1 == rows[g].k1)
			end++;
		if (end - g > 1 && (rows[g].k0 >> 48) > SORTKEY_BYTES)
			qsort(rows + g, end - g, sizeof(*rows), row_cmp);
		g = end;
	}
	sort_join = NULL;
}

/* Results of one block of rows computed in a small buffer, then copied out a row at a time:
 * each row's results go to its input position, a random place of the chunk, and written
 * feature by feature between iterator steps every row's cache lines were missed one at a
 * time. */
#define BLOCK_RESULTS 1024

/* Sweeps rows[0..n) (one entity, ts descending) for every feature into blk, then copies
 * each row's results to its input position. Every result of the block is copied, set or
 * empty, so that the results of a failed sweep are still released with the chunk. */
static int sweep_block(struct kv_join *j, struct kv_scan *sc, const struct join_row *rows,
		       size_t n, const char *entity, size_t elen, struct kv_result *blk,
		       int *owns)
{
	size_t nf = j->nf;
	int rc = 0;
	memset(blk, 0, n * nf * sizeof(*blk));
	for (size_t f = 0; f < nf && !rc; f++) {
		kv_scan_seek(sc, j->table_id, entity, elen, j->fids[f], j->ttls[f], rows[0].ts);
		for (size_t r = 0; r < n && !rc; r++)
			rc = kv_scan_asof(sc, rows[r].ts, &blk[r * nf + f]);
	}
	for (size_t r = 0; r < n; r++) {
		for (size_t f = 0; f < nf; f++)
			*owns |= blk[r * nf + f].value.ptr != NULL;
		memcpy(&j->res[(size_t)rows[r].idx * nf], &blk[r * nf], nf * sizeof(*blk));
	}
	return rc;
}

/* Sorts the rows of one shard by (entity, ts descending) and sweeps them with one
 * total-order iterator. Each row's results are written at its input position only. */
static int join_shard(struct kv_join *j, int shard, struct join_row *rows, size_t n)
{
	if (!n)
		return 0;
	size_t tmp_bytes;
	struct join_row *tmp = big_alloc(n * sizeof(*tmp), 0, &tmp_bytes);
	size_t(*count)[256] = calloc(24, sizeof(*count));
	if (tmp && count)
		sort_rows(j, rows, tmp, n, count);
	big_free(tmp, tmp_bytes, 0);
	free(count);
	if (!tmp || !count)
		return st_error_set(&j->errs[shard], ST_ENOMEM, "join: out of memory to sort %zu rows",
				    n);
	int rc = kv_repl_check(j->db, shard, KV_ACCESS_READ, &j->errs[shard]);
	if (rc)
		return rc;
	rocksdb_iterator_t *it = rocksdb_create_iterator(kv_shard_pin(j->db, shard), j->db->ro_total);
	struct kv_scan sc;
	kv_scan_init(&sc, it, &j->rules);
	sc.total_order = 1;
	int owns = 0;
	size_t block = BLOCK_RESULTS / j->nf ? BLOCK_RESULTS / j->nf : 1;
	struct kv_result *blk = malloc(block * j->nf * sizeof(*blk));
	if (!blk)
		rc = st_error_set(&j->errs[shard], ST_ENOMEM, "join: out of memory");
	for (size_t g = 0; g < n && !rc;) {
		/* rows[g..end) share one entity, ts descending */
		size_t end = g + 1;
		while (end < n && same_entity(j, &rows[g], &rows[end]))
			end++;
		uint32_t i0 = rows[g].idx;
		/* rows before the horizon (policy skip) come last: ts descending */
		size_t live = end;
		while (live > g && rows[live - 1].ts < j->rules.horizon)
			live--;
		for (size_t r = live; r < end; r++)
			for (size_t f = 0; f < j->nf; f++) {
				struct kv_result *res = &j->res[(size_t)rows[r].idx * j->nf + f];
				memset(res, 0, sizeof(*res));
				res->status = KV_BEFORE_HORIZON;
			}
		for (size_t b = g; b < live && !rc; b += block) {
			size_t nb = live - b < block ? live - b : block;
			rc = sweep_block(j, &sc, rows + b, nb, j->arena + j->eoff[i0], j->elen[i0], blk,
					 &owns);
		}
		if (rc)
			kv_scan_error(&j->errs[shard], &sc, rc, shard, "join", j->arena + j->eoff[i0],
				      j->elen[i0]);
		g = end;
	}
	free(blk);
	if (owns)
		atomic_store(&j->owns, 1);
	kv_scan_release(&sc);
	rocksdb_iter_destroy(it);
	kv_shard_unpin(j->db, shard);
	return rc;
}

static void *join_worker(void *arg)
{
	struct join_pool *p = arg;
	int s;
	/* RocksDB's per-thread perf counters cost a TLS lookup per iterator step; nothing in
	 * the store reads them */
	rocksdb_set_perf_level(rocksdb_disable);
	while (!atomic_load(&p->rc) &&
	       (s = atomic_fetch_add(&p->next_shard, 1)) < p->j->db->nshards) {
		int rc = join_shard(p->j, s, p->rows + p->start[s], p->start[s + 1] - p->start[s]);
		if (rc) {
			int zero = 0;
			atomic_compare_exchange_strong(&p->rc, &zero, rc);
		}
	}
	return NULL;
}

int kv_join_run(struct kv_join *j, struct st_error *err)
{
	ST_ASSERT(!j->ran);
	struct kv_db *db = j->db;
	/* Rules are taken per chunk: a table altered during a long join applies from the next
	 * chunk on; a dropped table fails the join. */
	int rc = 0;
	memset(j->errs, 0, (size_t)db->nshards * sizeof(*j->errs));
	j->rules.now = kv_now(db);
	j->rules.known_at = j->known_at;
	pthread_rwlock_rdlock(&db->reg_lock);
	const struct kv_table *t = kv_reg_find(db, j->table);
	int alive = t && t->id == j->table_id;
	if (alive) {
		j->rules.max_versions = t->max_versions;
		j->rules.horizon = kv_table_horizon(t, j->rules.now);
		for (size_t f = 0; f < j->nf; f++)
			for (uint32_t i = 0; i < t->nfeatures; i++)
				if (t->features[i].id == j->fids[f])
					j->ttls[f] = kv_feature_ttl(t, &t->features[i]);
		rc = kv_check_horizon(t, j->rules.horizon, "as-of", ST_TS_MAX, j->known_at, err);
	}
	pthread_rwlock_unlock(&db->reg_lock);
	if (!alive)
		return st_error_set(err, ST_ENOTFOUND, "table '%s' was dropped during the join",
				    j->table);
	if (rc)
		return rc;
	for (size_t i = 0; i < j->n; i++) {
		if (j->ts[i] >= j->rules.horizon)
			continue;
		if (j->policy == KV_JOIN_ERROR_BEFORE_HORIZON)
			return row_before_horizon(j, j->ts[i], i, err);
		j->skipped++;
	}

	struct join_pool p = {.j = j};
	int ns = db->nshards;
	size_t rows_bytes;
	p.rows = big_alloc(j->n * sizeof(*p.rows), 0, &rows_bytes);
	p.start = calloc((size_t)ns + 1, sizeof(*p.start));
	if (!p.rows || !p.start) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	/* bucket the rows by shard (counting sort), then each shard is sorted and swept on its
	 * own, by up to one thread per core */
	uint8_t *shard_of = malloc(j->n ? j->n : 1);
	if (!shard_of) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < j->n; i++) {
		shard_of[i] = (uint8_t)kv_shard_of(db, j->arena + j->eoff[i], j->elen[i]);
		p.start[shard_of[i] + 1]++;
	}
	for (int s = 0; s < ns; s++)
		p.start[s + 1] += p.start[s];
	size_t *fill = calloc((size_t)ns, sizeof(*fill));
	if (!fill) {
		free(shard_of);
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < j->n; i++) {
		int s = shard_of[i];
		const char *e = j->arena + j->eoff[i];
		struct join_row *r = &p.rows[p.start[s] + fill[s]++];
		r->idx = (uint32_t)i;
		r->ts = j->ts[i];
		make_sortkey(r, e, j->elen[i]);
	}
	free(fill);
	free(shard_of);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = (int)(ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu), started = 0;
	if (nt > ns)
		nt = ns;
	pthread_t th[8];
	for (int i = 1; i < nt; i++)
		if (pthread_create(&th[started], NULL, join_worker, &p) == 0)
			started++;
	join_worker(&p);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if ((rc = atomic_load(&p.rc))) {
		for (int s = 0; s < ns; s++)
			if (j->errs[s].code) {
				*err = j->errs[s];
				break;
			}
		j->skipped = 0; /* the join failed: nothing of it counts */
	}
out:
	big_free(p.rows, rows_bytes, 0);
	free(p.start);
	j->ran = 1;
	return rc;
}

size_t kv_join_rows(const struct kv_join *j)
{
	return j->n;
}

const struct kv_result *kv_join_result(const struct kv_join *j, size_t i)
{
	ST_ASSERT(j->ran && i < j->n);
	return &j->res[i * j->nf];
}

/* Only values of a variable size own memory: a join of numbers has nothing to release (a
 * pass over every result, 480 MB for 1M rows x 10 features). */
static void release_results(struct kv_join *j)
{
	if (atomic_exchange(&j->owns, 0))
		kv_result_release(j->res, j->n * j->nf);
}

void kv_join_reset(struct kv_join *j)
{
	release_results(j);
	j->n = 0;
	j->arena_len = 0;
	j->ran = 0;
}

void kv_join_free(struct kv_join *j)
{
	if (!j)
		return;
	if (j->res)
		release_results(j);
	big_free(j->res, j->res_bytes, 1);
	free(j->fids);
	free(j->ttls);
	free(j->errs);
	big_free(j->ts, j->rowarr_bytes, 0);
	free(j->arena);
	free(j);
}
