/* Replication hooks of a shard: its latest sequence, the write batches since a sequence
 * (from the WAL, kept for wal_ttl_seconds), applying a batch together with the replica's
 * position, checkpoints and installing a resynced copy, the access and commit hooks. */
#include "store/kv_int.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/st_fault.h"
#include "common/st_grow.h"

static int check_shard(const struct kv_db *db, int shard, struct st_error *err)
{
	if (shard < 0 || shard >= db->nshards)
		return st_error_set(err, ST_EINVAL, "no shard %d (there are %d)", shard,
				    db->nshards);
	return 0;
}

uint64_t kv_shard_latest_seq(struct kv_db *db, int shard)
{
	ST_ASSERT(shard >= 0 && shard < db->nshards);
	uint64_t v = rocksdb_get_latest_sequence_number(kv_shard_pin(db, shard));
	kv_shard_unpin(db, shard);
	return v;
}

/* ---- tailing the WAL ----
 * A tail delivers from the shard's ring of recently committed batches (kv_ring.h) whenever
 * the ring holds its position, several batches merged into one, and from the WAL otherwise
 * (a reader behind the ring, a batch the ring never held); it goes back to the ring as soon
 * as the ring holds its position again. A position the ring does not hold yet although
 * RocksDB already has it is normally a writer between its write and the publication: the
 * tail waits for it up to HOLE_WAIT_US, then reads the WAL.
 * One RocksDB WAL iterator is kept while it can continue: at the end of the data it
 * becomes invalid, and Next() later reads what was appended to the same file since. When
 * the WAL rolls to a new file the iterator says "TryAgain" and a new one is created at the
 * next sequence. Creating one costs a scan of its first file, so a stream that recreated it
 * for every pass would slow down as the file grows. The tail pins the shard (a resync swap
 * waits for it to close). */
#define HOLE_WAIT_US 5000
#define TAKE_MAX_BYTES (256u << 10)

struct kv_wal_tail {
	struct kv_db *db;
	int shard;
	rocksdb_wal_iterator_t *wi; /* NULL: create at `next` when there is something */
	int fresh;                  /* wi was just created: it is on its first batch */
	uint64_t next;              /* the next sequence to deliver */
	struct kv_ring_buf buf;     /* batches taken from the ring */
	uint64_t hole_seq;          /* the position the ring lacked although RocksDB had it */
	int64_t hole_since;         /* st_now_us when hole_seq was first seen */
	int wal_only;               /* never the ring (kv_shard_updates_since) */
};

int kv_wal_tail_open(struct kv_db *db, int shard, uint64_t seq, struct kv_wal_tail **out,
		     struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	struct kv_wal_tail *t = calloc(1, sizeof(*t));
	if (!t)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	t->db = db;
	t->shard = shard;
	t->next = seq;
	kv_shard_pin(db, shard);
	*out = t;
	return 0;
}

void kv_wal_tail_close(struct kv_wal_tail *t)
{
	if (!t)
		return;
	if (t->wi)
		rocksdb_wal_iter_destroy(t->wi);
	kv_shard_unpin(t->db, t->shard);
	free(t->buf.p);
	free(t);
}

uint64_t kv_wal_tail_next_seq(const struct kv_wal_tail *t)
{
	return t->next;
}

int kv_repl_ring_enable(struct kv_db *db, size_t bytes, struct st_error *err)
{
	if (bytes > UINT32_MAX)
		return st_error_set(err, ST_EINVAL, "a batch ring of %zu bytes: at most 4 GiB", bytes);
	size_t slots = 1;
	while (slots < bytes / 128 && slots < (1u << 20))
		slots *= 2; /* a sequence per 128 bytes: 1.5 MB of slots for 8 MB of batches */
	for (int s = 0; s < db->nshards; s++) {
		if (atomic_load(&db->shards[s].ring))
			continue;
		struct kv_ring *ring = kv_ring_new(slots < 2 ? 2 : slots, bytes);
		if (!ring)
			return st_error_set(err, ST_ENOMEM, "out of memory for the batch ring");
		struct kv_ring *none = NULL;
		if (!atomic_compare_exchange_strong(&db->shards[s].ring, &none, ring))
			kv_ring_free(ring);
	}
	return 0;
}

void kv_wal_tail_counts(struct kv_db *db, uint64_t *from_ring, uint64_t *from_wal)
{
	*from_ring = atomic_load(&db->tail_ring_batches);
	*from_wal = atomic_load(&db->tail_wal_batches);
}

/* Creates the iterator at t->next; 0, or ST_ENOTFOUND when the WAL does not reach it. */
static int tail_create(struct kv_wal_tail *t, struct st_error *err)
{
	char *rerr = NULL;
	t->wi = rocksdb_get_updates_since(t->db->shards[t->shard].db, t->next, NULL, &rerr);
	if (rerr) {
		st_error_set(err, ST_ENOTFOUND, "shard %d: WAL does not reach sequence %llu: %s",
			     t->shard, (unsigned long long)t->next, rerr);
		free(rerr);
		t->wi = NULL;
		return ST_ENOTFOUND;
	}
	if (!rocksdb_wal_iter_valid(t->wi)) {
		/* nothing at all although next <= latest: every file that held it is gone */
		rocksdb_wal_iter_destroy(t->wi);
		t->wi = NULL;
		return st_error_set(err, ST_ENOTFOUND, "shard %d: the WAL holds nothing from %llu on",
				    t->shard, (unsigned long long)t->next);
	}
	t->fresh = 1;
	return 0;
}

/* Delivers the iterator's current batch if it continues t->next (0), skips one already
 * delivered, or says the WAL does not continue the position (ST_ENOTFOUND). */
static int tail_wal_batch(struct kv_wal_tail *t, kv_batch_cb cb, void *arg, struct st_error *err)
{
	uint64_t bseq;
	rocksdb_writebatch_t *wb = rocksdb_wal_iter_get_batch(t->wi, &bseq);
	size_t len;
	const char *data = rocksdb_writebatch_data(wb, &len);
	uint32_t count = (uint32_t)rocksdb_writebatch_count(wb);
	int rc = 0;
	if (bseq + count <= t->next) {
		/* already delivered (a new iterator starts at the batch containing next) */
	} else if (bseq > t->next || count == 0) {
		/* RocksDB silently starts later when the WAL files were already deleted */
		rc = st_error_set(err, ST_ENOTFOUND, "shard %d: WAL continues at %llu, not at %llu",
				  t->shard, (unsigned long long)bseq, (unsigned long long)t->next);
	} else if (bseq < t->next) {
		/* RocksDB merged a write group into one WAL record, and the ring delivered its
		 * first writes one by one (or a replica stopped after them): the rest of it */
		if (kv_batch_suffix(data, len, t->next - bseq, &t->buf))
			rc = st_error_set(err, ST_ECORRUPT, "shard %d: the WAL batch at %llu cannot "
					  "be split at %llu", t->shard, (unsigned long long)bseq,
					  (unsigned long long)t->next);
		else if (!(rc = cb(arg, t->next, t->buf.p, t->buf.n))) {
			t->next = bseq + count;
			atomic_fetch_add(&t->db->tail_wal_batches, 1);
		}
	} else if (!(rc = cb(arg, bseq, data, len))) {
		t->next = bseq + count;
		atomic_fetch_add(&t->db->tail_wal_batches, 1);
	}
	rocksdb_writebatch_destroy(wb);
	return rc;
}

/* The iterator's status after it became invalid: 1 = recreate (TryAgain), 0 = nothing more
 * for now, or an error. */
static int tail_status(struct kv_wal_tail *t, struct st_error *err)
{
	char *rerr = NULL;
	rocksdb_wal_iter_status(t->wi, &rerr);
	if (!rerr)
		return 0;
	if (strstr(rerr, "Try again")) {
		free(rerr);
		return 1;
	}
	return kv_rocks_err(err, rerr, "WAL iterator");
}

/* What the ring says about t->next: 1 = delivered (*rc: the callback's return), 0 = read
 * the WAL, -1 = nothing newer yet, -2 = a hole that may still fill (wait, then the WAL). */
static int tail_from_ring(struct kv_wal_tail *t, kv_batch_cb cb, void *arg, int *rc)
{
	struct kv_ring *ring = t->wal_only ? NULL : atomic_load(&t->db->shards[t->shard].ring);
	if (!ring)
		return 0;
	unsigned nb;
	enum kv_ring_take_rc tr = kv_ring_take(ring, t->next, TAKE_MAX_BYTES, &t->buf, &nb);
	if (tr == KV_RING_HIT) {
		if (t->wi) { /* its position is behind now */
			rocksdb_wal_iter_destroy(t->wi);
			t->wi = NULL;
		}
		uint64_t seq;
		uint32_t count;
		int bad = kv_batch_header(t->buf.p, t->buf.n, &seq, &count);
		ST_ASSERT(!bad && seq == t->next); /* kv_ring_take merged it starting there */
		if (!(*rc = cb(arg, t->next, t->buf.p, t->buf.n)))
			t->next += count;
		atomic_fetch_add(&t->db->tail_ring_batches, nb);
		return 1;
	}
	if (tr == KV_RING_BEHIND || t->wi)
		return 0;
	if (t->next > rocksdb_get_latest_sequence_number(t->db->shards[t->shard].db))
		return -1; /* nothing newer yet */
	int64_t now = st_now_us();
	if (t->hole_seq != t->next) {
		t->hole_seq = t->next;
		t->hole_since = now;
	}
	return now - t->hole_since < HOLE_WAIT_US ? -2 : 0;
}

int kv_wal_tail_read(struct kv_wal_tail *t, kv_batch_cb cb, void *arg, struct st_error *err)
{
	struct kv_db *db = t->db;
	for (;;) {
		int rc = 0, ring = tail_from_ring(t, cb, arg, &rc);
		if (ring > 0 && rc)
			return rc;
		if (ring > 0)
			continue;
		if (ring < 0)
			return 0;
		if (!t->wi) {
			if (t->next > rocksdb_get_latest_sequence_number(db->shards[t->shard].db))
				return 0; /* nothing newer yet */
			if ((rc = tail_create(t, err)))
				return rc;
		} else if (!t->fresh) {
			rocksdb_wal_iter_next(t->wi);
		}
		t->fresh = 0;
		if (!rocksdb_wal_iter_valid(t->wi)) {
			if ((rc = tail_status(t, err)) <= 0)
				return rc;
			rocksdb_wal_iter_destroy(t->wi); /* the WAL rolled over: start anew */
			t->wi = NULL;
			continue;
		}
		if ((rc = tail_wal_batch(t, cb, arg, err)))
			return rc;
	}
}

int kv_wal_tail_wait(struct kv_wal_tail *t, int64_t max_us)
{
	struct kv_db *db = t->db;
	int64_t deadline = st_now_us() + max_us;
	struct kv_ring *ring = atomic_load(&db->shards[t->shard].ring);
	if (ring) {
		int64_t hole_end = t->hole_seq == t->next ? t->hole_since + HOLE_WAIT_US : INT64_MAX;
		if (kv_ring_wait(ring, t->next, deadline < hole_end ? deadline : hole_end))
			return 1;
		return st_now_us() >= hole_end ||
		       t->next <= rocksdb_get_latest_sequence_number(db->shards[t->shard].db);
	}
	/* no ring (a store that does not replicate): look at RocksDB every millisecond */
	for (;;) {
		if (t->next <= rocksdb_get_latest_sequence_number(db->shards[t->shard].db))
			return 1;
		if (st_now_us() >= deadline)
			return 0;
		usleep(1000);
	}
}

int kv_shard_updates_since(struct kv_db *db, int shard, uint64_t seq, kv_batch_cb cb, void *arg,
			   struct st_error *err)
{
	struct kv_wal_tail *t;
	int rc = kv_wal_tail_open(db, shard, seq, &t, err);
	if (rc)
		return rc;
	t->wal_only = 1; /* through the end, never stopping at a hole of the ring */
	rc = kv_wal_tail_read(t, cb, arg, err);
	kv_wal_tail_close(t);
	return rc;
}

int kv_shard_apply(struct kv_db *db, int shard, const void *data, size_t len,
		   struct st_error *err)
{
	int rc = kv_shard_apply_at(db, shard, data, len, NULL, err);
	return rc > 0 ? 0 : rc;
}

/* log_size_for_flush 0: the memtable is flushed first, so the copy is SST files only. */
static int checkpoint_one(rocksdb_t *rdb, const char *path, struct st_error *err)
{
	char *rerr = NULL;
	rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(rdb, &rerr);
	if (rerr)
		return kv_rocks_err(err, rerr, "checkpoint");
	rocksdb_checkpoint_create(cp, path, 0, &rerr);
	rocksdb_checkpoint_object_destroy(cp);
	if (rerr)
		return kv_rocks_err(err, rerr, path);
	return 0;
}

int kv_checkpoint(struct kv_db *db, const char *dir, struct st_error *err)
{
	if (mkdir(dir, 0755))
		return st_error_set(err, ST_EIO, "checkpoint dir %s: %m", dir);
	char path[4200];
	snprintf(path, sizeof(path), "%s/meta", dir);
	int rc = checkpoint_one(db->meta, path, err);
	for (int s = 0; s < db->nshards && !rc; s++) {
		snprintf(path, sizeof(path), "%s/shard-%03d", dir, s);
		rc = checkpoint_one(kv_shard_pin(db, s), path, err);
		kv_shard_unpin(db, s);
	}
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (!rc && mkdir(path, 0755))
		rc = st_error_set(err, ST_EIO, "%s: %m", path);
	return rc;
}

/* ---- reserved keys: table id 0xffffffff, empty entity, shorter than any cell key, so no
 * table prefix, scan or compaction rule ever matches them ---- */

const char kv_pos_key[] = "\xff\xff\xff\xff\x00\x00pos";
const char kv_ingest_key[] = "\xff\xff\xff\xff\x00\x00ingest";
const char kv_replid_key[] = "\xff\xff\xff\xff\x00\x00replid";
const char kv_fork_key[] = "\xff\xff\xff\xff\x00\x00" "fork";
_Static_assert(sizeof(kv_pos_key) - 1 == KV_POS_KEY_LEN, "pos key");
_Static_assert(sizeof(kv_ingest_key) - 1 == KV_INGEST_KEY_LEN, "ingest key");
_Static_assert(sizeof(kv_replid_key) - 1 == KV_REPLID_KEY_LEN, "replid key");
_Static_assert(sizeof(kv_fork_key) - 1 == KV_FORK_KEY_LEN, "fork key");

void kv_pos_encode(const struct kv_repl_pos *p, char *buf, size_t *len)
{
	size_t n = strnlen(p->replid, KV_REPLID_MAX - 1);
	kv_put_be64(buf, p->next_seq);
	memcpy(buf + 8, p->replid, n);
	*len = 8 + n;
}

int kv_pos_decode(const char *v, size_t vl, struct kv_repl_pos *out)
{
	memset(out, 0, sizeof(*out));
	if (vl < 8 || vl - 8 >= KV_REPLID_MAX)
		return -1;
	out->next_seq = kv_get_be64(v);
	memcpy(out->replid, v + 8, vl - 8);
	return 0;
}

int kv_shard_repl_pos(struct kv_db *db, int shard, struct kv_repl_pos *out, struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	char *rerr = NULL;
	size_t vl;
	char *v = rocksdb_get(kv_shard_pin(db, shard), db->ro, kv_pos_key, KV_POS_KEY_LEN, &vl, &rerr);
	kv_shard_unpin(db, shard);
	if (rerr)
		return kv_rocks_err(err, rerr, "replication position");
	if (!v)
		return 0;
	rc = kv_pos_decode(v, vl, out);
	free(v);
	return rc ? st_error_set(err, ST_ECORRUPT, "shard %d: bad replication position", shard) : 0;
}

void kv_new_replid(char *out)
{
	unsigned char r[12];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t t = (uint64_t)st_now_us() ^ ((uint64_t)getpid() << 32);
		memcpy(r, &t, 8);
		memcpy(r + 8, &t, 4);
	}
	for (size_t i = 0; i < sizeof(r); i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

int kv_shard_replid(struct kv_db *db, int shard, char *out, struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	char *rerr = NULL;
	size_t vl;
	pthread_mutex_lock(&db->meta_lock); /* one creator */
	rocksdb_t *rdb = kv_shard_pin(db, shard);
	char *v = rocksdb_get(rdb, db->ro, kv_replid_key, KV_REPLID_KEY_LEN, &vl, &rerr);
	if (!rerr && v && vl > 0 && vl < KV_REPLID_MAX) {
		memcpy(out, v, vl);
		out[vl] = 0;
	} else if (!rerr) {
		kv_new_replid(out);
		rocksdb_put(rdb, db->wo_sync, kv_replid_key, KV_REPLID_KEY_LEN, out, strlen(out), &rerr);
	}
	free(v);
	kv_shard_unpin(db, shard);
	pthread_mutex_unlock(&db->meta_lock);
	return rerr ? kv_rocks_err(err, rerr, "replication id") : 0;
}

/* ---- write batch walking (RocksDB's WriteBatch format: seq u64le, count u32le, then
 * records). Only what the store writes is accepted: puts, deletes and range deletes in the
 * default column family, and log data. Anything else is malformed input from the wire. */

static int get_varint32(const unsigned char **p, const unsigned char *end, uint32_t *out)
{
	uint32_t v = 0;
	for (int shift = 0; shift <= 28 && *p < end; shift += 7) {
		unsigned b = *(*p)++;
		v |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

static int get_slice(const unsigned char **p, const unsigned char *end, const char **s,
		     size_t *n)
{
	uint32_t l;
	if (get_varint32(p, end, &l) || (size_t)(end - *p) < l)
		return -1;
	*s = (const char *)*p;
	*n = l;
	*p += l;
	return 0;
}

struct batch_seen {
	struct kv_db *db;
	int64_t max_ingest;
	int ingested, ranged, replid;
};

static int batch_key(void *arg, int tag, const char *k, size_t kl)
{
	struct batch_seen *b = arg;
	struct kv_key key;
	if (tag == KV_REC_RANGE_DELETE)
		b->ranged = 1;
	if (kl == KV_INGEST_KEY_LEN && !memcmp(k, kv_ingest_key, kl)) {
		b->ingested = 1;
		return 0;
	}
	if (kl == KV_REPLID_KEY_LEN && !memcmp(k, kv_replid_key, kl)) {
		b->replid = 1;
		return 0;
	}
	if (kv_key_decode(k, kl, &key))
		return 0;
	if (key.ingest > b->max_ingest)
		b->max_ingest = key.ingest;
	if (b->db)
		kv_rcache_invalidate(b->db->rcache, key.table_id, key.entity, key.entity_len);
	return 0;
}

int kv_batch_header(const void *data, size_t len, uint64_t *seq, uint32_t *count)
{
	const unsigned char *p = data;
	if (len < 12)
		return -1;
	uint64_t sq = 0;
	for (int i = 7; i >= 0; i--)
		sq = (sq << 8) | p[i];
	*seq = sq;
	*count = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
		 (uint32_t)p[11] << 24;
	return 0;
}

int kv_batch_records(const void *data, size_t len, kv_rec_cb cb, void *arg, uint64_t *seq,
		     uint32_t *count)
{
	const unsigned char *p = data, *end = p + len;
	uint64_t sq;
	uint32_t cnt;
	if (kv_batch_header(data, len, &sq, &cnt))
		return -1;
	p += 12;
	uint32_t found = 0;
	while (p < end) {
		unsigned tag = *p++;
		const char *k, *v;
		size_t kl, vl;
		switch (tag) {
		case KV_REC_PUT:
		case KV_REC_RANGE_DELETE:
			if (get_slice(&p, end, &k, &kl) || get_slice(&p, end, &v, &vl))
				return -1;
			break;
		case KV_REC_DELETE:
		case KV_REC_SINGLE_DELETE:
			if (get_slice(&p, end, &k, &kl))
				return -1;
			break;
		case 0x3: /* log data: not a record */
			if (get_slice(&p, end, &k, &kl))
				return -1;
			continue;
		default:
			return -1;
		}
		found++;
		int rc = cb ? cb(arg, (int)tag, k, kl) : 0;
		if (rc)
			return rc;
	}
	if (found != cnt)
		return -1;
	*seq = sq;
	*count = cnt;
	return 0;
}

int kv_batch_walk_to(const void *data, size_t len, uint32_t n, size_t *end, const char **v,
		     size_t *vl)
{
	const unsigned char *p = data, *e = p + len;
	uint64_t seq;
	uint32_t count;
	if (kv_batch_records(data, len, NULL, NULL, &seq, &count) || n > count)
		return -1;
	p += 12;
	const char *k = NULL, *val = NULL;
	size_t kl = 0, vall = 0;
	for (uint32_t i = 0; i < n;) {
		unsigned tag = *p++;
		val = NULL;
		vall = 0;
		if (get_slice(&p, e, &k, &kl))
			return -1;
		if ((tag == KV_REC_PUT || tag == KV_REC_RANGE_DELETE) && get_slice(&p, e, &val, &vall))
			return -1;
		i += tag != 0x3;
	}
	*end = (size_t)(p - (const unsigned char *)data);
	if (v) {
		*v = val;
		*vl = vall;
	}
	return 0;
}

int kv_batch_suffix(const void *data, size_t len, uint64_t skip, struct kv_ring_buf *out)
{
	/* record i has sequence seq + i (each record the store writes consumes one, log
	 * data none) */
	uint64_t seq;
	uint32_t count;
	size_t off;
	if (kv_batch_header(data, len, &seq, &count) || skip == 0 || skip >= count ||
	    kv_batch_walk_to(data, len, (uint32_t)skip, &off, NULL, NULL))
		return -1;
	size_t rest = len - off;
	if (kv_ring_buf_reserve(out, 12 + rest))
		return -1;
	uint64_t s = seq + skip;
	uint32_t c = count - (uint32_t)skip;
	for (int i = 0; i < 8; i++)
		out->p[i] = (char)(s >> (8 * i));
	for (int i = 0; i < 4; i++)
		out->p[8 + i] = (char)(c >> (8 * i));
	memcpy(out->p + 12, (const char *)data + off, rest);
	out->n = 12 + rest;
	return 0;
}

static int kv_batch_walk(const void *data, size_t len, uint64_t *seq, uint32_t *count,
			 struct batch_seen *b)
{
	return kv_batch_records(data, len, batch_key, b, seq, count);
}

int kv_shard_apply_at(struct kv_db *db, int shard, const void *data, size_t len,
		      const struct kv_repl_pos *pos, struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	struct batch_seen seen = {.max_ingest = ST_TS_MIN};
	uint64_t seq;
	uint32_t count;
	if (kv_batch_walk(data, len, &seq, &count, &seen))
		return st_error_set(err, ST_EPROTO, "malformed write batch of %zu bytes", len);
	char own[KV_REPLID_MAX];
	if (seen.replid && (rc = kv_shard_replid(db, shard, own, err)))
		return rc;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create_from(data, len);
	if (!wb)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	if (seen.replid) /* the primary's copy id (when it was created): this copy keeps its own */
		rocksdb_writebatch_put(wb, kv_replid_key, KV_REPLID_KEY_LEN, own, strlen(own));
	if (pos) {
		char buf[8 + KV_REPLID_MAX];
		size_t bl;
		kv_pos_encode(pos, buf, &bl);
		rocksdb_writebatch_put(wb, kv_pos_key, KV_POS_KEY_LEN, buf, bl);
	}
	rc = kv_shard_write(db, shard, wb, err);
	rocksdb_writebatch_destroy(wb);
	/* after the write, as kv_put does */
	seen.db = db;
	kv_batch_walk(data, len, &seq, &count, &seen);
	if (seen.ranged)
		kv_rcache_bump(db->rcache);
	if (seen.max_ingest != ST_TS_MIN)
		kv_ingest_clock_raise(db, seen.max_ingest);
	if (rc)
		return rc;
	return seen.ingested ? KV_APPLY_INGESTED : 0;
}

int kv_shard_mark_ingest(struct kv_db *db, int shard, struct st_error *err)
{
	char v[8];
	kv_put_be64(v, (uint64_t)kv_now(db));
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_writebatch_put(wb, kv_ingest_key, KV_INGEST_KEY_LEN, v, sizeof(v));
	int rc = kv_shard_write(db, shard, wb, err);
	rocksdb_writebatch_destroy(wb);
	return rc;
}

void kv_ingest_clock_raise(struct kv_db *db, int64_t ts)
{
	int64_t cur = atomic_load(&db->last_ingest);
	while (ts > cur && !atomic_compare_exchange_weak(&db->last_ingest, &cur, ts))
		;
}

int64_t kv_ingest_clock(struct kv_db *db)
{
	return atomic_load(&db->last_ingest);
}

/* ---- checkpoints and installing a resynced copy ---- */

int kv_shard_checkpoint(struct kv_db *db, int shard, const char *dir, uint64_t *next_seq,
			struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	rocksdb_t *rdb = kv_shard_pin(db, shard);
	*next_seq = rocksdb_get_latest_sequence_number(rdb) + 1;
	rc = checkpoint_one(rdb, dir, err);
	kv_shard_unpin(db, shard);
	return rc;
}

void kv_shard_stage_dir(const struct kv_db *db, int shard, char *buf, size_t n)
{
	snprintf(buf, n, "%s/shard-%03d.resync", db->dir, shard);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

/* ---- the trash: replaced copies deleted off the install path ----
 * Deleting a shard's old copy (8-12 ms for a few tens of MB) made every resync install that
 * much longer. The install renames the old copy to DATA_DIR/shard-NNN.trash.ID (one rename)
 * and queues it here; one thread, started at the first use, deletes what is queued.
 * kv_close finishes the queue; a crash leaves trash directories, which the next kv_open
 * deletes before any shard opens (nothing else ever reads them). */

struct kv_trash {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char **paths; /* (mu) queued, owned */
	size_t n, cap;
	int started, stop; /* (mu) */
	pthread_t thread;
};

#define TRASH_INFIX ".trash."

static void *trash_main(void *arg)
{
	struct kv_trash *t = arg;
	pthread_mutex_lock(&t->mu);
	for (;;) {
		while (!t->n && !t->stop)
			pthread_cond_wait(&t->cond, &t->mu);
		if (!t->n)
			break; /* stopping with nothing queued */
		char *path = t->paths[--t->n];
		pthread_mutex_unlock(&t->mu);
		rm_rf(path);
		free(path);
		pthread_mutex_lock(&t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* Is this directory entry a trash directory of a shard ("shard-NNN.trash.ID")? */
static int is_trash_name(const char *name)
{
	return !strncmp(name, "shard-", 6) && strstr(name, TRASH_INFIX) != NULL;
}

int kv_trash_open(struct kv_db *db, struct st_error *err)
{
	struct kv_trash *t = calloc(1, sizeof(*t));
	if (!t)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cond, NULL);
	db->trash = t;
	DIR *d = opendir(db->dir);
	if (!d)
		return st_error_set(err, ST_EIO, "%s: %m", db->dir);
	int rc = 0;
	for (struct dirent *e; !rc && (e = readdir(d));) {
		char path[4400];
		if (!is_trash_name(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", db->dir, e->d_name);
		if (rm_rf(path))
			rc = st_error_set(err, ST_EIO, "remove %s (a replaced shard copy): %m", path);
	}
	closedir(d);
	return rc;
}

void kv_trash_close(struct kv_db *db)
{
	struct kv_trash *t = db->trash;
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_signal(&t->cond);
	int started = t->started;
	pthread_mutex_unlock(&t->mu);
	if (started)
		pthread_join(t->thread, NULL); /* it empties the queue before it ends */
	free(t->paths);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cond);
	free(t);
	db->trash = NULL;
}

/* Moves `old` out of the way under a unique trash name and queues its deletion; deletes it
 * here when that is not possible (a failed rename, memory, no thread). */
static void trash_dir(struct kv_db *db, int shard, const char *old)
{
	static atomic_uint_fast64_t counter;
	struct kv_trash *t = db->trash;
	char path[4400];
	snprintf(path, sizeof(path), "%s/shard-%03d" TRASH_INFIX "%d-%llu", db->dir, shard,
		 (int)getpid(), (unsigned long long)atomic_fetch_add(&counter, 1));
	if (!exists(old))
		return;
	char *copy = rename(old, path) ? NULL : strdup(path);
	int queued = 0;
	if (copy) {
		pthread_mutex_lock(&t->mu);
		if (!t->started)
			t->started = !pthread_create(&t->thread, NULL, trash_main, t);
		queued = t->started && !t->stop &&
			 !st_grow((void **)&t->paths, &t->cap, t->n + 1, sizeof(char *), 4);
		if (queued) {
			t->paths[t->n++] = copy;
			pthread_cond_signal(&t->cond);
		}
		pthread_mutex_unlock(&t->mu);
	}
	if (!queued) {
		rm_rf(exists(old) ? old : path);
		free(copy);
	}
}

/* live -> live.old, stage -> live (the caller removes live.old, outside any lock). Each step
 * is a rename, so after a crash kv_shard_swap_recover finds one of: both, only old (+ a
 * complete stage), only live (+ perhaps old). */
static int swap_dirs(const char *data_dir, const char *live, const char *old, const char *stage,
		     struct st_error *err)
{
	if (rm_rf(old))
		return st_error_set(err, ST_EIO, "remove %s: %m", old);
	if (exists(live) && rename(live, old))
		return st_error_set(err, ST_EIO, "rename %s: %m", live);
	if (rename(stage, live))
		return st_error_set(err, ST_EIO, "rename %s: %m", stage);
	sync_dir(data_dir);
	return 0;
}

static void shard_paths(const char *dir, int s, char *live, char *old, char *stage, size_t n)
{
	snprintf(live, n, "%s/shard-%03d", dir, s);
	snprintf(old, n, "%s/shard-%03d.old", dir, s);
	snprintf(stage, n, "%s/shard-%03d.resync", dir, s);
}

/* The completion marker of a staged copy (STRATA-COMPLETE) holds the position the copy
 * starts from and its new copy id ("NEXT FOLLOWED-ID OWN-ID\n"), so the stage is never
 * opened with RocksDB (an install opens the shard once) and one synced file both marks the
 * copy complete and carries its position. A marker that does not parse is a crash while it
 * was written: the stage is incomplete. After the swap the marker is in the live copy;
 * kv_shard_install_finish writes the position into the shard as soon as it is open (at
 * kv_open too, after a crash in between) and removes the marker; until then nothing reads
 * the shard (the swap lock, or kv_open not yet returned). Copies staged by earlier versions
 * had an empty marker and the position in STRATA-POS (synced before the marker existed);
 * a swapped-in copy of theirs may still hold either file. */
#define DONE_FILE "STRATA-COMPLETE"
#define OLD_POS_FILE "STRATA-POS"

struct marker {
	struct kv_repl_pos pos;
	char id[KV_REPLID_MAX]; /* the new copy's own id */
};

/* 1 and *m when the file parses as a position, 0 when it is missing or does not (an
 * interrupted write, an earlier version's empty marker), < 0 when it cannot be read. */
static int read_pos_file(const char *path, struct marker *m)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	memset(m, 0, sizeof(*m));
	unsigned long long next = 0;
	int ok = fscanf(f, "%llu %39s %39s", &next, m->pos.replid, m->id) == 3 && next &&
		 m->id[0];
	int bad = ferror(f);
	fclose(f);
	m->pos.next_seq = next;
	return bad ? -EIO : ok;
}

/* Is DIR a complete copy (its marker, or an earlier version's marker + position file)? */
static int read_marker(const char *dir, struct marker *m)
{
	char path[4300];
	snprintf(path, sizeof(path), "%s/" DONE_FILE, dir);
	int rc = read_pos_file(path, m);
	if (rc || !exists(path))
		return rc;
	snprintf(path, sizeof(path), "%s/" OLD_POS_FILE, dir);
	return read_pos_file(path, m);
}

int kv_shard_swap_recover(const char *dir, int s, struct st_error *err)
{
	char live[4200], old[4200], stage[4200];
	shard_paths(dir, s, live, old, stage, sizeof(live));
	struct marker m;
	int done = read_marker(stage, &m);
	if (done < 0)
		return st_error_set(err, ST_EIO, "%s/" DONE_FILE ": %s", stage, strerror(-done));
	if (done) {
		int rc = swap_dirs(dir, live, old, stage, err);
		rm_rf(old);
		return rc;
	}
	if (!exists(live) && exists(old) && rename(old, live))
		return st_error_set(err, ST_EIO, "rename %s: %m", old);
	if (rm_rf(old) || rm_rf(stage))
		return st_error_set(err, ST_EIO, "remove the leftovers of a resync of shard %d: %m",
				    s);
	return 0;
}

int kv_shard_install_finish(struct kv_db *db, int shard, struct st_error *err)
{
	char dir[4200], path[4300];
	snprintf(dir, sizeof(dir), "%s/shard-%03d", db->dir, shard);
	struct marker m;
	int found = read_marker(dir, &m);
	if (found < 0)
		return st_error_set(err, ST_EIO, "%s/" DONE_FILE ": %s", dir, strerror(-found));
	if (found) {
		char buf[8 + KV_REPLID_MAX];
		size_t bl;
		kv_pos_encode(&m.pos, buf, &bl);
		rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
		rocksdb_writebatch_put(wb, kv_pos_key, KV_POS_KEY_LEN, buf, bl);
		rocksdb_writebatch_put(wb, kv_replid_key, KV_REPLID_KEY_LEN, m.id, strlen(m.id));
		char *rerr = NULL;
		/* the shard's instance itself: kv_shard_install holds the swap lock for writing */
		rocksdb_write(db->shards[shard].db, db->wo_sync, wb, &rerr);
		rocksdb_writebatch_destroy(wb);
		if (rerr)
			return kv_rocks_err(err, rerr, "write the position of the resynced copy");
	}
	/* the removal must be durable: replayed later, the marker would move the position
	 * back (an earlier version's empty marker left in a live copy goes too) */
	int removed = 0;
	for (const char *const *f = (const char *const[]){DONE_FILE, OLD_POS_FILE, NULL}; *f; f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		if (!unlink(path))
			removed = 1;
		else if (errno != ENOENT)
			return st_error_set(err, ST_EIO, "remove %s: %m", path);
	}
	if (removed && sync_dir(dir))
		return st_error_set(err, ST_EIO, "sync %s: %m", dir);
	return 0;
}

/* Marks the staged copy complete: its marker, with the position, synced, then the stage
 * directory synced (the files' entries and the marker's). Every file in it was synced
 * before (the transfer's end), so a marker that survives a crash names a whole copy. */
static int stage_finish(const char *stage, const struct kv_repl_pos *pos, struct st_error *err)
{
	char path[4300], id[KV_REPLID_MAX], buf[32 + 2 * KV_REPLID_MAX];
	snprintf(path, sizeof(path), "%s/" DONE_FILE, stage);
	kv_new_replid(id);
	int n = snprintf(buf, sizeof(buf), "%llu %s %s\n", (unsigned long long)pos->next_seq,
			 pos->replid, id);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 || write(fd, buf, (size_t)n) != n || fdatasync(fd);
	if (fd >= 0)
		close(fd);
	if (rc || sync_dir(stage))
		return st_error_set(err, ST_EIO, "%s: %m", path);
	return 0;
}

int kv_shard_install(struct kv_db *db, int shard, const char *dir, const struct kv_repl_pos *pos,
		     struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	char live[4200], old[4200], stage[4200];
	shard_paths(db->dir, shard, live, old, stage, sizeof(live));
	if (strcmp(dir, stage))
		return st_error_set(err, ST_EINVAL, "a resync of shard %d must be staged in %s",
				    shard, stage);
	if ((rc = stage_finish(stage, pos, err)))
		return rc;
	struct kv_shard *sh = &db->shards[shard];
	pthread_rwlock_wrlock(&sh->swap);
	char *rerr = NULL;
	rocksdb_flush_wal(sh->db, 1, &rerr);
	free(rerr);
	rocksdb_close(sh->db);
	sh->db = NULL;
	struct kv_ring *ring = atomic_load(&sh->ring);
	if (ring) /* the old copy's batches: the new copy's sequences may hold others */
		kv_ring_clear(ring);
	rc = swap_dirs(db->dir, live, old, stage, err);
	if (!rc && ST_FAULT("resync.install.crash")) {
		/* swapped, the position not yet written into the shard (kv_open finishes it) */
		fprintf(stderr, "injected crash during a resync install (resync.install.crash)\n");
		_exit(86);
	}
	rerr = NULL;
	sh->db = rocksdb_open(sh->opts, live, &rerr);
	struct st_error ferr = {0};
	if (!rerr && kv_shard_install_finish(db, shard, &ferr))
		rerr = strdup(ferr.msg);
	if (rerr) {
		/* no usable shard: every later write fails with this (reads fail on a NULL db
		 * would crash, so this is fatal for the process, as a failed open is; a restart
		 * finishes the install at kv_open) */
		kv_fail(db, ST_EIO, "open after resync", rerr);
		st_assert_fail("shard reopen after resync", __FILE__, __LINE__, rerr);
	}
	sh->wal_pinned = 0; /* a new RocksDB instance: nothing disabled on it */
	pthread_rwlock_unlock(&sh->swap);
	trash_dir(db, shard, old); /* deleted in the background: not on the install path */
	kv_rcache_bump(db->rcache);
	return rc;
}

/* ---- WAL pinning ---- */

static pthread_mutex_t wal_pin_mu = PTHREAD_MUTEX_INITIALIZER; /* kv_shard.wal_pinned */

static uint64_t wal_dir_bytes(const char *dir)
{
	uint64_t n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		struct stat st;
		char path[4400];
		if (l < 5 || strcmp(e->d_name + l - 4, ".log"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!stat(path, &st))
			n += (uint64_t)st.st_size;
	}
	closedir(d);
	return n;
}

int kv_wal_pin(struct kv_db *db, int shard, int on, uint64_t *wal_bytes, struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	struct kv_shard *sh = &db->shards[shard];
	char *rerr = NULL;
	/* read side of swap: an open WAL tail holds it too, and the pin must not wait for it */
	pthread_rwlock_rdlock(&sh->swap);
	pthread_mutex_lock(&wal_pin_mu);
	if (on && !sh->wal_pinned)
		rocksdb_disable_file_deletions(sh->db, &rerr);
	else if (!on && sh->wal_pinned)
		rocksdb_enable_file_deletions(sh->db, 0, &rerr); /* only ours: not forced */
	if (!rerr)
		sh->wal_pinned = on;
	pthread_mutex_unlock(&wal_pin_mu);
	pthread_rwlock_unlock(&sh->swap);
	if (rerr)
		return kv_rocks_err(err, rerr, on ? "pin WAL" : "unpin WAL");
	if (wal_bytes) {
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/shard-%03d", db->dir, shard);
		*wal_bytes = wal_dir_bytes(dir);
		strncat(dir, "/archive", sizeof(dir) - strlen(dir) - 1);
		*wal_bytes += wal_dir_bytes(dir);
	}
	return 0;
}

/* ---- hooks ---- */

void kv_set_repl_hooks(struct kv_db *db, const struct kv_repl_hooks *h)
{
	db->hooks = h ? *h : (struct kv_repl_hooks){0};
}

int kv_repl_committed(struct kv_db *db, int shard, rocksdb_writebatch_t *wb,
		      struct st_error *err)
{
	if (!db->hooks.committed)
		return 0;
	size_t len;
	const unsigned char *p = (const unsigned char *)rocksdb_writebatch_data(wb, &len);
	ST_ASSERT(len >= 12);
	/* RocksDB stamps the batch with its first sequence while writing it */
	uint64_t seq;
	uint32_t count;
	kv_batch_header(p, len, &seq, &count);
	ST_ASSERT(seq > 0 && count > 0);
	return db->hooks.committed(db->hooks.arg, shard, seq + count - 1, err);
}
