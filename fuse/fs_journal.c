/* SSD journal format, scanner and replay (see fs_journal.h and docs/journal.md). Kept
 * apart from the daemon so strata-admin can inspect and replay a journal offline, and so the
 * record parser can be fuzzed on its own. */
#include "fuse/fs_journal.h"
#include "fuse/fs_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* ---- record encoding (little-endian) ------------------------------------------------ */

static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(unsigned char *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const unsigned char *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static uint64_t get64(const unsigned char *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* header layout: magic 0, version 4, type 6, seq 8, off 16, len 24, flags 28, htype 32,
 * hlen 36, handle 40..103, hash 104 */
#define H_HASH 104

static uint64_t rec_hash(const unsigned char *hdr, const void *data, uint32_t len)
{
	XXH64_state_t *st = XXH64_createState();
	unsigned char h[FS_JREC_HDR];
	memcpy(h, hdr, FS_JREC_HDR);
	memset(h + H_HASH, 0, 8);
	uint64_t v = 0;
	if (st) {
		XXH64_reset(st, 0);
		XXH64_update(st, h, FS_JREC_HDR);
		if (len)
			XXH64_update(st, data, len);
		v = XXH64_digest(st);
		XXH64_freeState(st);
	}
	return v;
}

void fs_jrec_encode(const struct fs_jrec *r, const void *data, unsigned char *hdr)
{
	memset(hdr, 0, FS_JREC_HDR);
	put32(hdr, FS_JREC_MAGIC);
	put16(hdr + 4, FS_JVERSION);
	put16(hdr + 6, r->type);
	put64(hdr + 8, r->seq);
	put64(hdr + 16, r->off);
	put32(hdr + 24, r->len);
	put32(hdr + 28, r->flags);
	put32(hdr + 32, (uint32_t)r->htype);
	put32(hdr + 36, r->hlen);
	memcpy(hdr + 40, r->h, r->hlen <= FS_JH_MAX ? r->hlen : FS_JH_MAX);
	put64(hdr + H_HASH, rec_hash(hdr, data, r->len));
}

enum fs_jparse fs_jrec_parse(const unsigned char *buf, size_t avail, struct fs_jrec *r,
			     const unsigned char **data, size_t *total)
{
	if (avail < 4)
		return avail == 0 ? FS_JP_END : FS_JP_SHORT;
	if (get32(buf) == 0) {
		size_t n = avail < FS_JREC_HDR ? avail : FS_JREC_HDR;
		for (size_t i = 0; i < n; i++)
			if (buf[i])
				return FS_JP_BAD;
		return FS_JP_END;
	}
	if (get32(buf) != FS_JREC_MAGIC)
		return FS_JP_BAD;
	if (avail < FS_JREC_HDR)
		return FS_JP_SHORT;
	memset(r, 0, sizeof(*r));
	r->type = get16(buf + 6);
	r->seq = get64(buf + 8);
	r->off = get64(buf + 16);
	r->len = get32(buf + 24);
	r->flags = get32(buf + 28);
	r->htype = (int32_t)get32(buf + 32);
	r->hlen = get32(buf + 36);
	if (get16(buf + 4) != FS_JVERSION || r->hlen > FS_JH_MAX || r->len > FS_JREC_MAXDATA ||
	    (r->type != FS_JREC_DATA && r->type != FS_JREC_COMMIT && r->type != FS_JREC_TRUNC) ||
	    (r->type == FS_JREC_COMMIT && (r->len || r->hlen)) ||
	    (r->type == FS_JREC_TRUNC && (r->len || r->hlen == 0 || r->off > (uint64_t)INT64_MAX)) ||
	    (r->type == FS_JREC_DATA && (r->hlen == 0 || r->off > (uint64_t)INT64_MAX - r->len)))
		return FS_JP_BAD;
	memcpy(r->h, buf + 40, r->hlen);
	for (uint32_t i = r->hlen; i < FS_JH_MAX; i++) /* one encoding per record */
		if (buf[40 + i])
			return FS_JP_BAD;
	if (avail - FS_JREC_HDR < r->len)
		return FS_JP_SHORT;
	if (rec_hash(buf, buf + FS_JREC_HDR, r->len) != get64(buf + H_HASH))
		return FS_JP_BAD;
	*data = buf + FS_JREC_HDR;
	*total = FS_JREC_HDR + (size_t)r->len;
	return FS_JP_OK;
}

void fs_jseg_name(uint64_t no, char *out, size_t n)
{
	snprintf(out, n, "seg-%016" PRIx64 ".jnl", no);
}

void fs_jseg_header(uint64_t no, const char *uuid, unsigned char *hdr)
{
	memset(hdr, 0, FS_JSEG_HDR);
	put32(hdr, FS_JSEG_MAGIC);
	put32(hdr + 4, FS_JVERSION);
	put64(hdr + 8, no);
	memcpy(hdr + 16, uuid, 32);
	put64(hdr + 56, XXH64(hdr, 56, 0));
}

/* ---- meta, checkpoint, identity -------------------------------------------------- */

static int read_small(int dirfd, const char *name, char *buf, size_t n)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = read(fd, buf, n - 1);
	int e = errno;
	close(fd);
	if (r < 0)
		return -e;
	buf[r] = 0;
	return 0;
}

/* Writes name durably through a temp file and rename. */
static int write_small(int dirfd, const char *name, const char *text, struct st_error *err)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t n = strlen(text);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return st_error_set(err, ST_EIO, "journal %s: %s", name, strerror(e));
	}
	close(fd);
	if (renameat(dirfd, tmp, dirfd, name) != 0 || fsync(dirfd) != 0)
		return st_error_set(err, ST_EIO, "journal %s: %s", name, strerror(errno));
	return 0;
}

int fs_jmeta_read(int dirfd, struct fs_jmeta *m, struct st_error *err)
{
	char buf[256];
	memset(m, 0, sizeof(*m));
	int rc = read_small(dirfd, "meta", buf, sizeof(buf));
	if (rc == -ENOENT)
		return st_error_set(err, ST_ENOTFOUND, "no journal (no meta file)");
	if (rc)
		return st_error_set(err, ST_EIO, "journal meta: %s", strerror(-rc));
	unsigned long long ss;
	if (sscanf(buf, "stratafs-journal 1\nuuid %32[0-9a-f]\nsegment_size %llu", m->uuid, &ss) != 2 ||
	    strlen(m->uuid) != 32 || ss < 2 * (FS_JREC_HDR + FS_JSEG_HDR))
		return st_error_set(err, ST_ECORRUPT, "journal meta: unreadable");
	m->seg_size = ss;
	rc = read_small(dirfd, "checkpoint", buf, sizeof(buf));
	if (rc == -ENOENT)
		return 0;
	unsigned long long ck;
	if (rc || sscanf(buf, "checkpoint %llu", &ck) != 1)
		return st_error_set(err, rc ? ST_EIO : ST_ECORRUPT, "journal checkpoint: %s",
				    rc ? strerror(-rc) : "unreadable");
	m->ckpt = ck;
	return 0;
}

int fs_jmeta_write(int dirfd, const struct fs_jmeta *m, struct st_error *err)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "stratafs-journal 1\nuuid %s\nsegment_size %llu\n", m->uuid,
		 (unsigned long long)m->seg_size);
	return write_small(dirfd, "meta", buf, err);
}

int fs_jckpt_write(int dirfd, uint64_t ckpt, struct st_error *err)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "checkpoint %llu\n", (unsigned long long)ckpt);
	return write_small(dirfd, "checkpoint", buf, err);
}

int fs_jbacking_id(int bfd, int create, char *uuid, struct st_error *err)
{
	char buf[64];
	int rc = read_small(bfd, FS_STATE_DIR "/journal-id", buf, sizeof(buf));
	if (rc == 0 && sscanf(buf, "%32[0-9a-f]", uuid) == 1 && strlen(uuid) == 32)
		return 0;
	if (rc == 0)
		return st_error_set(err, ST_ECORRUPT, "%s/journal-id: unreadable", FS_STATE_DIR);
	if (rc != -ENOENT || !create)
		return st_error_set(err, rc == -ENOENT ? ST_ENOTFOUND : ST_EIO,
				    "%s/journal-id: %s", FS_STATE_DIR, strerror(-rc));
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return st_error_set(err, ST_EIO, "getrandom: %s", strerror(errno));
	for (int i = 0; i < 16; i++)
		snprintf(uuid + 2 * i, 3, "%02x", r[i]);
	mkdirat(bfd, FS_STATE_DIR, 0700);
	int sfd = openat(bfd, FS_STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return st_error_set(err, ST_EIO, "%s: %s", FS_STATE_DIR, strerror(errno));
	snprintf(buf, sizeof(buf), "%s\n", uuid);
	rc = write_small(sfd, "journal-id", buf, err);
	close(sfd);
	return rc;
}

/* ---- segments and scanning ----------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int fs_jseg_list(int dirfd, uint64_t **out, struct st_error *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		st_error_set(err, ST_EIO, "journal dir: %s", strerror(errno));
		return -1;
	}
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned long long no;
		char chk[40];
		if (sscanf(e->d_name, "seg-%16llx.jnl", &no) != 1)
			continue;
		fs_jseg_name(no, chk, sizeof(chk));
		if (strcmp(chk, e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				st_error_set(err, ST_ENOMEM, "out of memory");
				return -1;
			}
			v = nv;
		}
		v[n++] = no;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	*out = v;
	return (int)n;
}

static void damage(struct fs_jscan *sc, uint64_t seg, uint64_t pos, const char *why)
{
	sc->damaged = 1;
	sc->damaged_seg = seg;
	sc->damaged_pos = pos;
	snprintf(sc->damage, sizeof(sc->damage), "%s", why);
}

/* Scans one segment; 1 = stop (damage or cb), 0 = continue with the next, <0 error. */
static int scan_seg(int dirfd, const char *uuid, uint64_t no, unsigned char **buf, size_t *cap,
		    fs_jscan_cb cb, void *arg, struct fs_jscan *sc, struct st_error *err)
{
	char name[40];
	fs_jseg_name(no, name, sizeof(name));
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return st_error_set(err, ST_EIO, "%s: %s", name, strerror(errno));
	struct stat st;
	unsigned char sh[FS_JSEG_HDR], want[FS_JSEG_HDR];
	fs_jseg_header(no, uuid, want);
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = st_error_set(err, ST_EIO, "%s: %s", name, strerror(errno));
		goto out;
	}
	ssize_t r = pread(fd, sh, sizeof(sh), 0);
	if (r < 0) {
		rc = st_error_set(err, ST_EIO, "%s: %s", name, strerror(errno));
		goto out;
	}
	if (r != (ssize_t)sizeof(sh) || memcmp(sh, want, FS_JSEG_HDR) != 0) {
		damage(sc, no, 0, "bad segment header");
		rc = 1;
		goto out;
	}
	sc->segments++;
	uint64_t pos = FS_JSEG_HDR, size = (uint64_t)st.st_size;
	while (pos < size) {
		size_t want_n = FS_JREC_HDR;
		struct fs_jrec rec;
		const unsigned char *data = NULL;
		size_t total = 0;
		enum fs_jparse p;
		for (;;) {
			if (*cap < want_n) {
				unsigned char *nb = realloc(*buf, want_n);
				if (!nb) {
					rc = st_error_set(err, ST_ENOMEM, "out of memory");
					goto out;
				}
				*buf = nb;
				*cap = want_n;
			}
			size_t left = size - pos < want_n ? (size_t)(size - pos) : want_n;
			r = pread(fd, *buf, left, (off_t)pos);
			if (r < 0) {
				rc = st_error_set(err, ST_EIO, "%s: %s", name, strerror(errno));
				goto out;
			}
			p = fs_jrec_parse(*buf, (size_t)r, &rec, &data, &total);
			if (p != FS_JP_SHORT || (size_t)r < left || want_n > FS_JREC_HDR ||
			    (size_t)r < FS_JREC_HDR)
				break;
			want_n = FS_JREC_HDR + rec.len; /* header read: now the data too */
		}
		if (p == FS_JP_END)
			break;
		if (p != FS_JP_OK) {
			damage(sc, no, pos, p == FS_JP_SHORT ? "torn record" : "corrupt record");
			rc = 1;
			goto out;
		}
		if (rec.seq <= sc->last_seq && sc->records) {
			damage(sc, no, pos, "sequence number went backwards");
			rc = 1;
			goto out;
		}
		sc->records++;
		sc->last_seq = rec.seq;
		if (rec.type == FS_JREC_COMMIT) {
			sc->commits++;
			if (rec.off > sc->last_commit && rec.off < rec.seq)
				sc->last_commit = rec.off;
		} else if (rec.type == FS_JREC_DATA) {
			sc->data_records++;
			sc->bytes += rec.len;
		}
		if (cb && cb(arg, no, pos, &rec, data)) {
			rc = 1;
			goto out;
		}
		pos += total;
	}
out:
	close(fd);
	return rc;
}

int fs_jscan(int dirfd, const char *uuid, fs_jscan_cb cb, void *arg, struct fs_jscan *sc,
	     struct st_error *err)
{
	memset(sc, 0, sizeof(*sc));
	uint64_t *segs;
	int n = fs_jseg_list(dirfd, &segs, err);
	if (n < 0)
		return err ? err->code : ST_EIO;
	unsigned char *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++)
		rc = scan_seg(dirfd, uuid, segs[i], &buf, &cap, cb, arg, sc, err);
	free(buf);
	free(segs);
	return rc < 0 ? rc : 0;
}

/* ---- replay -------------------------------------------------------------------------- */

/* A file replay writes to: found by handle, kept open until the end (then fsynced). */
struct rfile {
	int32_t htype;
	uint32_t hlen;
	unsigned char h[FS_JH_MAX];
	int fd;                       /* -1: no longer exists (its data no longer matters) */
};

struct replay_ctx {
	int bfd;
	uint64_t ckpt, upto;
	struct fs_jreplay *rep;
	struct rfile *f;
	size_t nf;
	int err;                      /* first errno from applying */
};

/* fsyncs and closes every file; returns the first errno. */
static int replay_close(struct replay_ctx *c)
{
	int rc = 0;
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i].fd >= 0) {
			if (fsync(c->f[i].fd) != 0 && !rc)
				rc = errno;
			close(c->f[i].fd);
		}
	free(c->f);
	c->f = NULL;
	c->nf = 0;
	return rc;
}

static struct rfile *replay_file(struct replay_ctx *c, const struct fs_jrec *r)
{
	for (size_t i = c->nf; i-- > 0;)
		if (c->f[i].htype == r->htype && c->f[i].hlen == r->hlen &&
		    !memcmp(c->f[i].h, r->h, r->hlen))
			return &c->f[i];
	struct rfile *nf = realloc(c->f, (c->nf + 1) * sizeof(*nf));
	if (!nf) {
		c->err = ENOMEM;
		return NULL;
	}
	c->f = nf;
	struct rfile *f = &c->f[c->nf];
	union { struct file_handle fh; unsigned char b[sizeof(struct file_handle) + FS_JH_MAX]; } u;
	u.fh.handle_bytes = r->hlen;
	u.fh.handle_type = r->htype;
	memcpy(u.fh.f_handle, r->h, r->hlen);
	f->fd = open_by_handle_at(c->bfd, &u.fh, O_WRONLY | O_CLOEXEC);
	if (f->fd < 0 && errno != ESTALE && errno != ENOENT) {
		c->err = errno;
		return NULL;
	}
	f->htype = r->htype;
	f->hlen = r->hlen;
	memcpy(f->h, r->h, r->hlen);
	c->nf++;
	if (f->fd >= 0)
		c->rep->files++;
	return f;
}

static int replay_cb(void *arg, uint64_t seg, uint64_t pos, const struct fs_jrec *r,
		     const unsigned char *data)
{
	(void)seg;
	(void)pos;
	struct replay_ctx *c = arg;
	if (r->type == FS_JREC_COMMIT || r->seq <= c->ckpt || r->seq > c->upto)
		return r->seq > c->upto;
	struct rfile *f = replay_file(c, r);
	if (!f)
		return 1;
	if (f->fd < 0) {
		c->rep->skipped_gone++;
		return 0;
	}
	if (r->type == FS_JREC_TRUNC) {
		if (ftruncate(f->fd, (off_t)r->off) != 0)
			return c->err = errno, 1;
		c->rep->truncates++;
		return 0;
	}
	if (pwrite(f->fd, data, r->len, (off_t)r->off) != (ssize_t)r->len)
		return c->err = errno ? errno : EIO, 1;
	c->rep->applied++;
	c->rep->bytes += r->len;
	return 0;
}

int fs_jreplay(int dirfd, int bfd, struct fs_jreplay *rep, struct st_error *err)
{
	memset(rep, 0, sizeof(*rep));
	struct fs_jmeta m;
	int rc = fs_jmeta_read(dirfd, &m, err);
	if (rc)
		return rc;
	char id[FS_JUUID_HEX];
	rc = fs_jbacking_id(bfd, 0, id, err);
	if (rc)
		return rc == ST_ENOTFOUND ? st_error_set(err, ST_EINVAL,
			"the backing dir has no journal identity; this journal (uuid %s) is not its own",
			m.uuid) : rc;
	if (strcmp(id, m.uuid))
		return st_error_set(err, ST_EINVAL,
				    "journal belongs to another backing dir (journal uuid %s, backing %s)",
				    m.uuid, id);
	/* pass 1: what is committed */
	rc = fs_jscan(dirfd, m.uuid, NULL, NULL, &rep->scan, err);
	if (rc)
		return rc;
	/* pass 2: apply it in journal order */
	struct replay_ctx c = { .bfd = bfd, .ckpt = m.ckpt, .upto = rep->scan.last_commit,
				.rep = rep };
	struct fs_jscan sc2;
	rc = fs_jscan(dirfd, m.uuid, replay_cb, &c, &sc2, err);
	int e = replay_close(&c);
	if (rc)
		return rc;
	if (c.err || e)
		return st_error_set(err, ST_EIO, "replay: applying to the backing dir: %s",
				    strerror(c.err ? c.err : e));
	if (syncfs(bfd) != 0)
		return st_error_set(err, ST_EIO, "replay: syncfs: %s", strerror(errno));
	rep->new_ckpt = rep->scan.last_seq > m.ckpt ? rep->scan.last_seq : m.ckpt;
	rc = fs_jckpt_write(dirfd, rep->new_ckpt, err);
	if (rc)
		return rc;
	uint64_t *segs;
	int n = fs_jseg_list(dirfd, &segs, err);
	if (n < 0)
		return err->code;
	for (int i = 0; i < n; i++) {
		char name[40];
		fs_jseg_name(segs[i], name, sizeof(name));
		if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
			free(segs);
			return st_error_set(err, ST_EIO, "%s: %s", name, strerror(errno));
		}
	}
	free(segs);
	return fsync(dirfd) == 0 ? 0 : st_error_set(err, ST_EIO, "journal dir: %s", strerror(errno));
}

void fs_jreplay_summary(const struct fs_jreplay *rep, char *buf, size_t n)
{
	snprintf(buf, n,
		 "%llu record(s): %llu applied, %llu bytes, %llu truncate(s), %llu file(s), %llu "
		 "for files gone; checkpoint %llu",
		 (unsigned long long)rep->scan.records, (unsigned long long)rep->applied,
		 (unsigned long long)rep->bytes, (unsigned long long)rep->truncates,
		 (unsigned long long)rep->files, (unsigned long long)rep->skipped_gone,
		 (unsigned long long)rep->new_ckpt);
}
