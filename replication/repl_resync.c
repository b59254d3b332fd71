/* Full resync: the primary checkpoints a shard and streams its files; the replica stages
 * them beside its live copy (DATA_DIR/shard-NNN.resync), checks every file's size and
 * XXH3 checksum and the totals, and only then installs the copy (kv_shard_install), so an
 * interrupted resync leaves the old copy serving and restarts from scratch next time. */
#include "replication/repl_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/st_fault.h"
#include "common/st_log.h"

#define CHUNK (1u << 20)
#define MAX_FILES 100000

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- primary ---- */

struct ckpt_file {
	char name[256];
	uint64_t size;
};

static int list_files(const char *dir, struct ckpt_file **out, size_t *n, uint64_t *total,
		      struct st_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return st_error_set(err, ST_EIO, "%s: %s", dir, strerror(errno));
	*out = NULL;
	*n = 0;
	*total = 0;
	size_t cap = 0;
	int rc = 0;
	for (struct dirent *e; !rc && (e = readdir(d));) {
		char path[4700];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct ckpt_file *nf = realloc(*out, cap * sizeof(*nf));
			if (!nf) {
				rc = st_error_set(err, ST_ENOMEM, "out of memory");
				break;
			}
			*out = nf;
		}
		snprintf((*out)[*n].name, sizeof((*out)[*n].name), "%s", e->d_name);
		(*out)[*n].size = (uint64_t)st.st_size;
		*total += (uint64_t)st.st_size;
		(*n)++;
	}
	closedir(d);
	return rc;
}

/* FILE, the file's bytes in DATA frames, FILE_END with its XXH3. The bytes go from the
 * page cache to the socket by sendfile; the checksums are computed on a read-only mapping
 * (checkpoint files are immutable: hard links of live SST files, or fresh copies). */
static int send_file(struct repl *r, int fd, const char *dir, const struct ckpt_file *cf,
		     struct st_error *err)
{
	char path[4700];
	snprintf(path, sizeof(path), "%s/%s", dir, cf->name);
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return st_error_set(err, ST_EIO, "%s: %s", path, strerror(errno));
	struct stat st;
	const uint8_t *map = NULL;
	int rc = 0;
	if (fstat(in, &st) || (uint64_t)st.st_size != cf->size)
		rc = st_error_set(err, ST_EIO, "%s: changed size while a checkpoint (%llu bytes "
				  "listed)", path, (unsigned long long)cf->size);
	else if (cf->size && (map = mmap(NULL, cf->size, PROT_READ, MAP_SHARED, in, 0)) == MAP_FAILED)
		rc = st_error_set(err, ST_EIO, "mmap %s: %s", path, strerror(errno));
	if (rc) {
		close(in);
		return rc;
	}
	struct repl_wbuf w = {0};
	repl_w_str(&w, cf->name);
	repl_w_u64(&w, cf->size);
	rc = w.bad ? ST_ENOMEM : repl_send(fd, REPL_FILE, w.p, w.n, err);
	repl_wbuf_release(&w);
	for (uint64_t off = 0; !rc && off < cf->size;) {
		size_t n = cf->size - off < CHUNK ? (size_t)(cf->size - off) : CHUNK;
		rc = repl_send_file_frame(fd, REPL_DATA, in, (off_t)off, map + off, n, err);
		off += n;
		atomic_fetch_add(&r->m.resync_bytes_sent, (uint64_t)n);
	}
	if (!rc) {
		uint8_t sum[8];
		uint64_t v = XXH3_64bits(map, cf->size);
		for (int i = 0; i < 8; i++)
			sum[i] = (uint8_t)(v >> (8 * i));
		rc = repl_send(fd, REPL_FILE_END, sum, 8, err);
	}
	if (map)
		munmap((void *)map, cf->size);
	close(in);
	return rc;
}

int repl_resync_send(struct repl *r, struct repl_peer *p, const char *replid,
		     uint64_t *next_seq, struct st_error *err)
{
	int fd = p->fd, shard = p->shard;
	static atomic_uint seqno;
	char dir[4400];
	snprintf(dir, sizeof(dir), "%s/tmp/repl-ckpt-%d-%u-%d", r->data_dir, shard,
		 atomic_fetch_add(&seqno, 1), (int)getpid());
	rm_rf(dir);
	struct ckpt_file *files = NULL;
	size_t n = 0;
	uint64_t total = 0;
	int rc = kv_shard_checkpoint(r->db, shard, dir, next_seq, err);
	if (!rc)
		rc = list_files(dir, &files, &n, &total, err);
	if (!rc) {
		st_info("replication: shard %d: sending a checkpoint (%zu files, %llu bytes, "
			"from sequence %llu)", shard, n, (unsigned long long)total,
			(unsigned long long)*next_seq);
		struct repl_wbuf w = {0};
		repl_w_str(&w, replid);
		repl_w_u64(&w, *next_seq);
		repl_w_u64(&w, (uint64_t)kv_ingest_clock(r->db));
		repl_w_u32(&w, (uint32_t)n);
		repl_w_u64(&w, total);
		rc = w.bad ? ST_ENOMEM : repl_send(fd, REPL_RESYNC, w.p, w.n, err);
		repl_wbuf_release(&w);
	}
	for (size_t i = 0; i < n && !rc; i++)
		rc = send_file(r, fd, dir, &files[i], err);
	if (!rc) {
		pthread_mutex_lock(&r->mu);
		p->sent_next = *next_seq;
		pthread_mutex_unlock(&r->mu);
		rc = repl_send(fd, REPL_RESYNC_END, "", 0, err);
	}
	if (!rc)
		atomic_fetch_add(&r->m.resyncs_sent, 1);
	free(files);
	rm_rf(dir);
	return rc;
}

/* ---- replica ---- */

struct recv_file {
	int fd;
	char name[256];
	uint64_t size, got;
	XXH3_state_t *h;
};

/* A checkpoint file name: no path, no dot file, none of the store's own markers of a staged
 * copy (STRATA-COMPLETE, which carries its position, and an earlier version's STRATA-POS:
 * a primary must not be able to plant them). */
static int valid_name(const char *s)
{
	return s[0] && s[0] != '.' && !strchr(s, '/') && strncmp(s, "STRATA-", 7);
}

static int open_file(const char *stage, const struct repl_frame *f, struct recv_file *rf,
		     struct st_error *err)
{
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	repl_r_str(&rb, rf->name, sizeof(rf->name));
	rf->size = repl_r_u64(&rb);
	rf->got = 0;
	if (rb.bad || rb.off != rb.n || !valid_name(rf->name))
		return st_error_set(err, ST_EPROTO, "resync: bad file header");
	char path[4700];
	snprintf(path, sizeof(path), "%s/%s", stage, rf->name);
	/* read too: the frames' checksums are taken on the written pages */
	rf->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (rf->fd < 0)
		return st_error_set(err, errno == EEXIST ? ST_EPROTO : ST_EIO, "resync: %s: %s",
				    path, strerror(errno));
	XXH3_64bits_reset(rf->h);
	return 0;
}

/* A DATA frame (peeked: `len` payload bytes) into the open file: straight from the socket
 * to the file (repl_reader_to_file), its frame checksum and the file's running hash taken
 * on the written pages. */
static int write_data(struct repl *r, struct repl_shard *sh, struct recv_file *rf,
		      struct repl_reader *rd, const int pipefd[2], uint32_t len,
		      struct st_error *err)
{
	if (rf->fd < 0 || rf->got + len > rf->size)
		return st_error_set(err, ST_EPROTO, "resync: data beyond the announced file size");
	uint32_t n;
	int rc = repl_reader_to_file(rd, pipefd, rf->fd, rf->got, rf->h, &n, err);
	if (rc)
		return rc;
	rf->got += n;
	atomic_fetch_add(&r->m.resync_bytes_recv, n);
	pthread_mutex_lock(&r->mu);
	sh->resync_done += n;
	pthread_mutex_unlock(&r->mu);
	if (ST_FAULT("repl.resync.crash")) {
		/* a crash in the middle of a resync (tests: the live copy must survive it) */
		st_errlog("injected crash during resync (repl.resync.crash)");
		_exit(86);
	}
	return 0;
}

static int close_file(struct recv_file *rf, const struct repl_frame *f, struct st_error *err)
{
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	uint64_t sum = repl_r_u64(&rb);
	if (rf->fd < 0 || rb.bad || rb.off != rb.n)
		return st_error_set(err, ST_EPROTO, "resync: unexpected end of file");
	int rc = 0;
	if (rf->got != rf->size)
		rc = st_error_set(err, ST_EPROTO, "resync: %s: %llu of %llu bytes", rf->name,
				  (unsigned long long)rf->got, (unsigned long long)rf->size);
	else if (sum != XXH3_64bits_digest(rf->h))
		rc = st_error_set(err, ST_ECORRUPT, "resync: %s: checksum mismatch", rf->name);
	/* writeback starts now, without waiting for it: sync_stage waits for every file once,
	 * after the last one (a synced file per file stalled the stream on every one) */
	else if (sync_file_range(rf->fd, 0, 0, SYNC_FILE_RANGE_WRITE) && errno != ENOSYS)
		rc = st_error_set(err, ST_EIO, "resync: write back %s: %s", rf->name, strerror(errno));
	close(rf->fd);
	rf->fd = -1;
	return rc;
}

/* Makes every staged file durable before the copy can be marked complete: one fdatasync
 * per file, after the whole transfer (their writeback was started as each one ended). A
 * new file's size is flushed by fdatasync (it is needed to read the data back); the
 * directory entries are made durable with the marker (kv_shard_install: one fsync of the
 * stage directory after the marker is synced). */
static int sync_stage(const char *stage, struct st_error *err)
{
	DIR *d = opendir(stage);
	if (!d)
		return st_error_set(err, ST_EIO, "%s: %s", stage, strerror(errno));
	int rc = 0;
	for (struct dirent *e; !rc && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fdatasync(fd))
			rc = st_error_set(err, ST_EIO, "resync: fdatasync %s/%s: %s", stage, e->d_name,
					  strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	return rc;
}

struct install_arg {
	const char *stage;
	const struct kv_repl_pos *pos;
	struct st_error *err;
};

static int install(struct repl *r, struct repl_shard *sh, void *arg)
{
	struct install_arg *a = arg;
	return kv_shard_install(r->db, sh->shard, a->stage, a->pos, a->err);
}

int repl_resync_recv(struct repl *r, struct repl_shard *sh, struct repl_reader *rd,
		     const struct repl_frame *f, struct kv_repl_pos *pos, struct st_error *err)
{
	struct repl_rbuf rb = {f->payload, f->len, 0, 0};
	memset(pos, 0, sizeof(*pos));
	repl_r_str(&rb, pos->replid, sizeof(pos->replid));
	pos->next_seq = repl_r_u64(&rb);
	int64_t clock = (int64_t)repl_r_u64(&rb);
	uint32_t nfiles = repl_r_u32(&rb);
	uint64_t total = repl_r_u64(&rb);
	if (rb.bad || rb.off != rb.n || !pos->replid[0] || !pos->next_seq || nfiles > MAX_FILES)
		return st_error_set(err, ST_EPROTO, "malformed RESYNC frame");
	char stage[4400];
	kv_shard_stage_dir(r->db, sh->shard, stage, sizeof(stage));
	rm_rf(stage);
	if (mkdir(stage, 0755))
		return st_error_set(err, ST_EIO, "%s: %s", stage, strerror(errno));
	pthread_mutex_lock(&r->mu);
	repl_set_state(r, sh, REPL_S_RESYNCING);
	sh->resync_done = 0;
	sh->resync_total = total;
	pthread_mutex_unlock(&r->mu);
	st_info("replication: shard %d: resync of %u files, %llu bytes", sh->shard, nfiles,
		(unsigned long long)total);
	struct recv_file rf = {.fd = -1, .h = XXH3_createState()};
	uint32_t done_files = 0;
	uint64_t bytes = 0;
	int rc = 0, finished = 0, pipefd[2];
	if (!rf.h)
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
	else if (pipe2(pipefd, O_CLOEXEC))
		rc = st_error_set(err, ST_EIO, "resync: pipe: %s", strerror(errno));
	else
		fcntl(pipefd[1], F_SETPIPE_SZ, (int)CHUNK); /* fewer splices; the default is fine too */
	int have_pipe = !rc;
	/* where the time goes (logged with the install): receiving, writing, syncing, installing */
	int64_t t_start = repl_now_us(), t_recv = 0, t_write = 0;
	while (!rc && !finished) {
		struct repl_frame g;
		uint8_t type;
		uint32_t len;
		int64_t t = repl_now_us();
		rc = repl_reader_peek(rd, REPL_FRAME_MAX, &type, &len, err);
		if (!rc && type == REPL_DATA) {
			/* file data: from the socket to the file, no copy through user space */
			rc = write_data(r, sh, &rf, rd, pipefd, len, err);
			bytes += len;
			t_write += repl_now_us() - t;
			continue;
		}
		if (!rc)
			rc = repl_reader_view(rd, REPL_FRAME_MAX, &g, err);
		t_recv += repl_now_us() - t;
		if (rc)
			break;
		t = repl_now_us();
		switch (g.type) {
		case REPL_FILE:
			rc = rf.fd >= 0 || done_files == nfiles
				     ? st_error_set(err, ST_EPROTO, "resync: unexpected file")
				     : open_file(stage, &g, &rf, err);
			break;
		case REPL_FILE_END:
			if (!(rc = close_file(&rf, &g, err)))
				done_files++;
			break;
		case REPL_RESYNC_END:
			if (rf.fd >= 0 || done_files != nfiles || bytes != total)
				rc = st_error_set(err, ST_EPROTO, "resync ended early: %u of %u files, "
						  "%llu of %llu bytes", done_files, nfiles,
						  (unsigned long long)bytes, (unsigned long long)total);
			finished = 1;
			break;
		case REPL_ERROR: {
			struct repl_rbuf eb = {g.payload, g.len, 0, 0};
			char msg[400];
			repl_r_u32(&eb);
			repl_r_str(&eb, msg, sizeof(msg));
			rc = st_error_set(err, ST_ECLOSED, "primary: %s", msg[0] ? msg : "error");
			break;
		}
		default:
			rc = st_error_set(err, ST_EPROTO, "unexpected frame %u during resync", g.type);
		}
		t_write += repl_now_us() - t;
	}
	if (rf.fd >= 0)
		close(rf.fd);
	if (have_pipe) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	XXH3_freeState(rf.h);
	int64_t t_synced = 0, t_received = repl_now_us();
	if (!rc)
		rc = sync_stage(stage, err);
	t_synced = repl_now_us();
	struct install_arg ia = {stage, pos, err};
	if (!rc) /* invariant 9: not after a promotion of this copy */
		rc = repl_role_apply(sh, install, &ia, err);
	if (rc) {
		rm_rf(stage);
		return rc;
	}
	kv_ingest_clock_raise(r->db, clock);
	atomic_fetch_add(&r->m.resyncs_done, 1);
	pthread_mutex_lock(&r->mu);
	sh->resyncs++;
	sh->applied_next = pos->next_seq;
	repl_set_state(r, sh, REPL_S_TAILING);
	pthread_mutex_unlock(&r->mu);
	int64_t t_end = repl_now_us();
	st_info("replication: shard %d: resync installed, streaming from %llu (%lld ms: receiving "
		"%lld, writing %lld, syncing %lld, installing %lld)", sh->shard,
		(unsigned long long)pos->next_seq, (long long)(t_end - t_start) / 1000,
		(long long)t_recv / 1000, (long long)t_write / 1000,
		(long long)(t_synced - t_received) / 1000, (long long)(t_end - t_synced) / 1000);
	return 0;
}
