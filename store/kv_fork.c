/* Forks of a shard's history. A replica promoted to primary records where its own history
 * branched off the one it followed (kv_shard_fork_mark); the copy that wrote the old history
 * (the former primary) later undoes what it wrote after that point (kv_shard_rewind) and
 * continues as a replica of the new history, instead of fetching a whole checkpoint.
 *
 * Why a delete is the exact inverse of a divergent write: a cell key is
 * (table, entity, feature, event time, ingest time), every write batch gets one ingest time
 * strictly above every earlier one of the store (kv_next_ingest; a replica raises its clock
 * to every ingest time it applies), so a write never overwrites a key that existed before
 * it: a tombstone is a put of a new version too. Deleting the versions a divergent batch put
 * restores the shard's cells to what they were at the fork; the versions before it are
 * other keys and stay. What a delete cannot undo (a RocksDB delete or range delete, whose
 * victim's value is gone; an ingestion marker, whose files never were in the WAL) makes the
 * rewind refuse, and the caller resyncs. */
#include "store/kv_int.h"

#include <stdlib.h>
#include <string.h>

/* fork record: to_next u64be, from_next u64be, len u8 + replid, len u8 + from_replid */
static void fork_encode(const struct kv_repl_fork *f, char *buf, size_t *len)
{
	size_t a = strnlen(f->replid, KV_REPLID_MAX - 1),
	       b = strnlen(f->from_replid, KV_REPLID_MAX - 1);
	kv_put_be64(buf, f->to_next);
	kv_put_be64(buf + 8, f->from_next);
	buf[16] = (char)a;
	memcpy(buf + 17, f->replid, a);
	buf[17 + a] = (char)b;
	memcpy(buf + 18 + a, f->from_replid, b);
	*len = 18 + a + b;
}

static int fork_decode(const char *v, size_t vl, struct kv_repl_fork *f)
{
	memset(f, 0, sizeof(*f));
	if (vl < 18)
		return -1;
	size_t a = (unsigned char)v[16];
	if (a >= KV_REPLID_MAX || vl < 18 + a)
		return -1;
	size_t b = (unsigned char)v[17 + a];
	if (b >= KV_REPLID_MAX || vl != 18 + a + b)
		return -1;
	f->to_next = kv_get_be64(v);
	f->from_next = kv_get_be64(v + 8);
	memcpy(f->replid, v + 17, a);
	memcpy(f->from_replid, v + 18 + a, b);
	return 0;
}

static int check_shard(const struct kv_db *db, int shard, struct st_error *err)
{
	if (shard < 0 || shard >= db->nshards)
		return st_error_set(err, ST_EINVAL, "no shard %d (there are %d)", shard,
				    db->nshards);
	return 0;
}

/* The sequence RocksDB stamped on a batch it wrote. */
static uint64_t batch_seq(rocksdb_writebatch_t *wb)
{
	size_t len;
	const unsigned char *p = (const unsigned char *)rocksdb_writebatch_data(wb, &len);
	uint64_t seq = 0;
	for (int i = 7; i >= 0 && len >= 8; i--)
		seq = (seq << 8) | p[i];
	return seq;
}

int kv_shard_fork_mark(struct kv_db *db, int shard, int follows, struct kv_repl_fork *out,
		       struct st_error *err)
{
	struct kv_repl_pos old, own = {{0}, 0};
	int rc = check_shard(db, shard, err);
	if (!rc)
		rc = kv_shard_repl_pos(db, shard, &old, err);
	if (!rc)
		rc = kv_shard_replid(db, shard, own.replid, err);
	if (rc)
		return rc;
	struct kv_repl_fork f = {.from_next = old.next_seq};
	memcpy(f.replid, own.replid, sizeof(f.replid));
	if (out)
		*out = f;
	int self = !strcmp(old.replid, own.replid);
	if (!follows && self)
		return 0; /* already marked */
	/* a copy that already writes its own history (pos names itself) forks from nothing */
	if (follows && !self && old.next_seq)
		memcpy(f.from_replid, old.replid, sizeof(f.from_replid));
	char pbuf[8 + KV_REPLID_MAX], fbuf[18 + 2 * KV_REPLID_MAX];
	size_t pl, fl;
	kv_pos_encode(&own, pbuf, &pl);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_writebatch_put(wb, kv_pos_key, KV_POS_KEY_LEN, pbuf, pl);
	if (f.from_replid[0]) {
		/* the record names the sequence of its own batch: the first one after the fork */
		f.to_next = kv_shard_latest_seq(db, shard) + 1;
		fork_encode(&f, fbuf, &fl);
		rocksdb_writebatch_put(wb, kv_fork_key, KV_FORK_KEY_LEN, fbuf, fl);
	}
	rc = kv_shard_write(db, shard, wb, err);
	uint64_t seq = batch_seq(wb);
	rocksdb_writebatch_destroy(wb);
	if (rc)
		return rc;
	if (f.from_replid[0] && seq != f.to_next) {
		/* something else wrote to the shard meanwhile: the caller broke the contract, and
		 * the record must not claim a prefix it does not describe */
		wb = rocksdb_writebatch_create();
		rocksdb_writebatch_delete(wb, kv_fork_key, KV_FORK_KEY_LEN);
		rc = kv_shard_write(db, shard, wb, err);
		rocksdb_writebatch_destroy(wb);
		return rc ? rc
			  : st_error_set(err, ST_EBUSY, "shard %d: a write landed at %llu while "
					 "the fork record for %llu was written", shard,
					 (unsigned long long)seq, (unsigned long long)f.to_next);
	}
	if (out)
		*out = f;
	return 0;
}

int kv_shard_fork_get(struct kv_db *db, int shard, struct kv_repl_fork *out,
		      struct st_error *err)
{
	char own[KV_REPLID_MAX];
	int rc = check_shard(db, shard, err);
	if (!rc)
		rc = kv_shard_replid(db, shard, own, err);
	if (rc)
		return rc;
	char *rerr = NULL;
	size_t vl;
	char *v = rocksdb_get(kv_shard_pin(db, shard), db->ro, kv_fork_key, KV_FORK_KEY_LEN, &vl,
			      &rerr);
	kv_shard_unpin(db, shard);
	if (rerr)
		return kv_rocks_err(err, rerr, "fork record");
	if (!v)
		return st_error_set(err, ST_ENOTFOUND, "shard %d has no fork record", shard);
	rc = fork_decode(v, vl, out);
	free(v);
	if (rc)
		return st_error_set(err, ST_ECORRUPT, "shard %d: bad fork record", shard);
	if (strcmp(out->replid, own) || !out->from_replid[0])
		return st_error_set(err, ST_ENOTFOUND, "shard %d: the fork record belongs to an "
				    "earlier copy", shard);
	return 0;
}

/* ---- rewind ---- */

struct undo {
	rocksdb_writebatch_t *wb; /* the inverse */
	struct kv_rewind_report *rep;
	uint64_t next;            /* the sequence the next batch must start at */
	int shard;
	struct st_error *err;
};

static int undo_record(void *arg, int tag, const char *k, size_t kl)
{
	struct undo *u = arg;
	struct kv_key key;
	if (tag == KV_REC_PUT && kv_key_decode(k, kl, &key) == 0) {
		rocksdb_writebatch_delete(u->wb, k, kl);
		u->rep->keys++;
		return 0;
	}
	/* the rewind's own batch rewrites these */
	if (tag == KV_REC_PUT && ((kl == KV_POS_KEY_LEN && !memcmp(k, kv_pos_key, kl)) ||
				  (kl == KV_REPLID_KEY_LEN && !memcmp(k, kv_replid_key, kl)) ||
				  (kl == KV_FORK_KEY_LEN && !memcmp(k, kv_fork_key, kl))))
		return 0;
	if (kl == KV_INGEST_KEY_LEN && !memcmp(k, kv_ingest_key, kl))
		return st_error_set(u->err, ST_EINVAL, "shard %d: the divergent tail ingested files "
				    "(a preload) that are not in the WAL", u->shard);
	return st_error_set(u->err, ST_EINVAL, "shard %d: the divergent tail holds a %s that "
			    "cannot be undone", u->shard,
			    tag == KV_REC_PUT ? "record of an unknown kind" : "delete");
}

static int undo_batch(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct undo *u = arg;
	uint64_t bseq;
	uint32_t count;
	if (seq != u->next)
		return st_error_set(u->err, ST_ENOTFOUND, "shard %d: the WAL skips from %llu to %llu",
				    u->shard, (unsigned long long)u->next, (unsigned long long)seq);
	int rc = kv_batch_records(data, len, undo_record, u, &bseq, &count);
	if (rc != -1 && rc)
		return rc; /* undo_record's refusal */
	if (rc)
		return st_error_set(u->err, ST_ECORRUPT, "shard %d: malformed batch at %llu in the WAL",
				    u->shard, (unsigned long long)seq);
	u->rep->batches++;
	u->next = seq + count;
	return 0;
}

static int invalidate_record(void *arg, int tag, const char *k, size_t kl)
{
	struct kv_db *db = arg;
	struct kv_key key;
	if (kv_key_decode(k, kl, &key) == 0)
		kv_rcache_invalidate(db->rcache, key.table_id, key.entity, key.entity_len);
	return 0;
}

int kv_shard_rewind(struct kv_db *db, int shard, uint64_t from, const struct kv_repl_pos *pos,
		    struct kv_rewind_report *rep, struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	memset(rep, 0, sizeof(*rep));
	uint64_t end = kv_shard_latest_seq(db, shard) + 1;
	if (from && (from > end))
		return st_error_set(err, ST_EINVAL, "shard %d: cannot rewind to %llu, beyond the "
				    "latest sequence %llu", shard, (unsigned long long)from,
				    (unsigned long long)end - 1);
	struct undo u = {rocksdb_writebatch_create(), rep, from, shard, err};
	if (from && from < end) {
		rc = kv_shard_updates_since(db, shard, from, undo_batch, &u, err);
		if (!rc && u.next != end)
			rc = st_error_set(err, ST_ENOTFOUND, "shard %d: the WAL ends at %llu, not at "
					  "the latest sequence %llu", shard,
					  (unsigned long long)u.next, (unsigned long long)end - 1);
		rep->first = from;
		rep->last = end - 1;
		rep->seqs = end - from;
	}
	if (rc) {
		rocksdb_writebatch_destroy(u.wb);
		memset(rep, 0, sizeof(*rep));
		return rc;
	}
	char pbuf[8 + KV_REPLID_MAX], id[KV_REPLID_MAX];
	size_t pl;
	kv_pos_encode(pos, pbuf, &pl);
	kv_new_replid(id);
	rocksdb_writebatch_put(u.wb, kv_pos_key, KV_POS_KEY_LEN, pbuf, pl);
	rocksdb_writebatch_put(u.wb, kv_replid_key, KV_REPLID_KEY_LEN, id, strlen(id));
	rocksdb_writebatch_delete(u.wb, kv_fork_key, KV_FORK_KEY_LEN);
	rc = kv_shard_write(db, shard, u.wb, err);
	if (!rc) {
		size_t len;
		const char *data = rocksdb_writebatch_data(u.wb, &len);
		uint64_t s;
		uint32_t c;
		kv_batch_records(data, len, invalidate_record, db, &s, &c);
	}
	rocksdb_writebatch_destroy(u.wb);
	return rc;
}

/* ---- the followed history in this copy's own WAL ----
 * A replica applies each batch of the history it follows with its new position appended
 * (kv_shard_apply_at: the batch's records, a replid put when the batch had one, then the
 * position put). So every batch of that history is in the copy's WAL, ending with the
 * position it reached there: [b - n, b) in that history, where n is the batch's own record
 * count. Batches merged on the replica or overlapping what it had (a re-sent batch) keep
 * the same shape. The walk trusts a batch only when it continues the one before it, so a
 * WAL that does not map the history exactly is refused (ST_ENOTFOUND), never mis-served. */

#define FOLLOW_END 2 /* the walk reached local_end (not an error) */

struct follow {
	const char *replid;
	uint64_t from, local_end;
	uint64_t reached;  /* the history position after the last trusted batch (0 = none yet) */
	int too_late;      /* the walk started after the batch before `from` */
	kv_followed_cb cb;
	void *arg;
	int shard;
	struct kv_ring_buf buf, sub;
	struct st_error *err;
};

/* What a local batch holds: its record count, replid puts before the last record, cell or
 * other records, and whether the last record is a position put (its value in *pos). */
struct follow_scan {
	uint32_t n, replids;
	int foreign; /* a record that is neither a reserved key put nor a cell put */
	int cells;
	const char *last_k;
	size_t last_kl;
	int last_tag;
};

static int follow_record(void *arg, int tag, const char *k, size_t kl)
{
	struct follow_scan *s = arg;
	if (s->last_k && s->last_tag == KV_REC_PUT && s->last_kl == KV_REPLID_KEY_LEN &&
	    !memcmp(s->last_k, kv_replid_key, s->last_kl))
		s->replids++;
	struct kv_key key;
	if (tag == KV_REC_PUT && kv_key_decode(k, kl, &key) == 0)
		s->cells = 1;
	else if (tag != KV_REC_PUT || kl < KV_POS_KEY_LEN || memcmp(k, kv_pos_key, 6))
		s->foreign = 1; /* reserved keys share the 6-byte prefix of kv_pos_key */
	s->last_k = k;
	s->last_kl = kl;
	s->last_tag = tag;
	s->n++;
	return 0;
}

/* The first n records of the valid batch data, as a batch of its own with sequence seq. */
static int batch_prefix(const void *data, size_t len, uint32_t n, uint64_t seq,
			struct kv_ring_buf *out)
{
	size_t end;
	if (kv_batch_walk_to(data, len, n, &end, NULL, NULL) || kv_ring_buf_reserve(out, end))
		return -1;
	memcpy(out->p, data, end);
	out->n = end;
	for (int i = 0; i < 8; i++)
		out->p[i] = (char)(seq >> (8 * i));
	for (int i = 0; i < 4; i++)
		out->p[8 + i] = (char)(n >> (8 * i));
	return 0;
}

static int follow_deliver(struct follow *f, uint64_t a, uint64_t b, uint64_t local,
			  const void *data, size_t len, uint32_t n)
{
	/* records before max(from, what the previous batch reached) were delivered already */
	uint64_t start = a < f->from ? f->from : a;
	if (f->reached > start)
		start = f->reached;
	if (b <= start)
		return 0;
	if (batch_prefix(data, len, n, a, &f->buf))
		return st_error_set(f->err, ST_ECORRUPT, "shard %d: malformed batch at %llu in the WAL",
				    f->shard, (unsigned long long)local);
	const void *d = f->buf.p;
	size_t dl = f->buf.n;
	if (start > a) {
		if (kv_batch_suffix(f->buf.p, f->buf.n, start - a, &f->sub))
			return st_error_set(f->err, ST_ECORRUPT, "shard %d: the batch at %llu cannot "
					    "be split at %llu", f->shard, (unsigned long long)local,
					    (unsigned long long)(start - a));
		d = f->sub.p;
		dl = f->sub.n;
	}
	return f->cb(f->arg, start, local + (start - a), d, dl);
}

static int follow_batch(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct follow *f = arg;
	if (seq >= f->local_end)
		return FOLLOW_END;
	struct follow_scan s = {0};
	uint64_t bseq;
	uint32_t count;
	if (kv_batch_records(data, len, follow_record, &s, &bseq, &count) || bseq != seq)
		return st_error_set(f->err, ST_ECORRUPT, "shard %d: malformed batch at %llu in the WAL",
				    f->shard, (unsigned long long)seq);
	struct kv_repl_pos pos = {{0}, 0};
	int ends_at_pos = s.last_tag == KV_REC_PUT && s.last_kl == KV_POS_KEY_LEN &&
			  !memcmp(s.last_k, kv_pos_key, KV_POS_KEY_LEN);
	if (ends_at_pos) {
		size_t end, vl;
		const char *v;
		ends_at_pos = !kv_batch_walk_to(data, len, s.n, &end, &v, &vl) &&
			      !kv_pos_decode(v, vl, &pos) && !strcmp(pos.replid, f->replid) &&
			      pos.next_seq;
	}
	if (!ends_at_pos) {
		/* not a batch of the history: harmless when it holds reserved keys only */
		if ((s.cells || s.foreign) && f->reached)
			return st_error_set(f->err, ST_ENOTFOUND, "shard %d: the WAL holds writes "
					    "outside history %s at %llu", f->shard, f->replid,
					    (unsigned long long)seq);
		return 0;
	}
	/* the history's own records: all but the position put and the replid put the replica
	 * appended when the batch had one */
	uint32_t n = s.n - 1 - (s.replids ? 1 : 0);
	uint64_t b = pos.next_seq;
	if (b < n)
		return st_error_set(f->err, ST_ENOTFOUND, "shard %d: the batch at %llu does not map "
				    "onto history %s", f->shard, (unsigned long long)seq, f->replid);
	uint64_t a = b - n;
	if (!f->reached) {
		/* the first batch seen cannot be checked against one before it */
		if (b > f->from && (f->too_late = 1))
			return st_error_set(f->err, ST_ENOTFOUND, "shard %d: this copy's WAL does not "
					    "reach sequence %llu of history %s", f->shard,
					    (unsigned long long)f->from, f->replid);
		f->reached = b;
		return 0;
	}
	if (a > f->reached)
		return st_error_set(f->err, ST_ENOTFOUND, "shard %d: history %s skips from %llu to "
				    "%llu in this copy's WAL", f->shard, f->replid,
				    (unsigned long long)f->reached, (unsigned long long)a);
	int rc = follow_deliver(f, a, b, seq, data, len, n);
	if ((!rc || rc == KV_FOLLOW_DONE) && b > f->reached)
		f->reached = b;
	return rc;
}

/* Reads this copy's WAL from the first batch that holds `start` or, when the files before
 * it are gone, from the first one there is, through local_end. */
static int follow_read(struct kv_db *db, int shard, uint64_t start, struct follow *f)
{
	rocksdb_t *rdb = kv_shard_pin(db, shard);
	uint64_t next = start;
	int rc = 0;
	while (!rc && next < f->local_end) {
		char *rerr = NULL;
		rocksdb_wal_iterator_t *wi = rocksdb_get_updates_since(rdb, next, NULL, &rerr);
		if (rerr) {
			rc = st_error_set(f->err, ST_ENOTFOUND, "shard %d: WAL from %llu: %s", shard,
					  (unsigned long long)next, rerr);
			free(rerr);
			break;
		}
		uint64_t before = next;
		for (; !rc && rocksdb_wal_iter_valid(wi); rocksdb_wal_iter_next(wi)) {
			uint64_t bseq;
			rocksdb_writebatch_t *wb = rocksdb_wal_iter_get_batch(wi, &bseq);
			size_t len;
			const char *data = rocksdb_writebatch_data(wb, &len);
			if (bseq + (uint64_t)rocksdb_writebatch_count(wb) > next) {
				rc = follow_batch(f, bseq, data, len);
				next = bseq + (uint64_t)rocksdb_writebatch_count(wb);
			}
			rocksdb_writebatch_destroy(wb);
		}
		rocksdb_wal_iter_status(wi, &rerr);
		rocksdb_wal_iter_destroy(wi);
		if (!rc && rerr && !strstr(rerr, "Try again"))
			rc = kv_rocks_err(f->err, rerr, "WAL iterator");
		else
			free(rerr);
		if (!rc && next == before)
			break; /* nothing more */
	}
	kv_shard_unpin(db, shard);
	return rc;
}

static int follow_walk(struct kv_db *db, int shard, uint64_t start, struct follow *f)
{
	f->reached = 0;
	f->too_late = 0;
	int rc = follow_read(db, shard, start, f);
	return rc == FOLLOW_END || rc == KV_FOLLOW_DONE ? 0 : rc;
}

int kv_shard_followed(struct kv_db *db, int shard, const char *replid, uint64_t from,
		      uint64_t hist_end, uint64_t local_end, kv_followed_cb cb, void *arg,
		      uint64_t *reached, struct st_error *err)
{
	int rc = check_shard(db, shard, err);
	if (rc)
		return rc;
	if (!replid[0] || !from || hist_end < from)
		return st_error_set(err, ST_EINVAL, "shard %d: no history position %s at %llu",
				    shard, replid, (unsigned long long)from);
	struct follow f = {.replid = replid, .from = from, .local_end = local_end, .cb = cb,
			   .arg = arg, .shard = shard, .err = err};
	/* each batch of the history takes at least one of its sequences and adds at most two
	 * here (its position, a replid): start a little before 3x the distance back, and from
	 * the WAL's beginning when that was too late */
	uint64_t back = 3 * (hist_end - from) + 64;
	uint64_t start = local_end > back ? local_end - back : 1;
	rc = follow_walk(db, shard, start, &f);
	if (rc && f.too_late && start > 1) {
		memset(err, 0, sizeof(*err));
		rc = follow_walk(db, shard, 1, &f);
	}
	if (!rc && f.reached < from)
		rc = st_error_set(err, ST_ENOTFOUND, "shard %d: this copy's WAL holds history %s only "
				  "up to %llu, not %llu", shard, replid, (unsigned long long)f.reached,
				  (unsigned long long)from);
	free(f.buf.p);
	free(f.sub.p);
	*reached = f.reached;
	return rc;
}
