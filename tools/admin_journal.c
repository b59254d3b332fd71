/* strata-admin journal inspect|replay: an SSD journal of stratafs (--journal-dir) read or
 * applied offline, for recovery without mounting (fuse/fs_journal.h does the work). */
#include "tools/admin.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Dirty bytes per file (by handle) and per segment, gathered by the scan. */
struct jfile {
	int32_t htype;
	uint32_t hlen;
	unsigned char h[FS_JH_MAX];
	uint64_t bytes, records;
};
struct jseg {
	uint64_t no, records, bytes;
	uint64_t end;     /* offset after its last intact record */
};
struct inspect {
	uint64_t ckpt;
	struct jfile *f;
	size_t nf;
	struct jseg *s;
	size_t ns;
	int oom;
};

static struct jfile *file_of(struct inspect *in, const struct fs_jrec *r)
{
	for (size_t i = 0; i < in->nf; i++)
		if (in->f[i].htype == r->htype && in->f[i].hlen == r->hlen &&
		    !memcmp(in->f[i].h, r->h, r->hlen))
			return &in->f[i];
	struct jfile *nf = realloc(in->f, (in->nf + 1) * sizeof(*nf));
	if (!nf)
		return NULL;
	in->f = nf;
	struct jfile *f = &in->f[in->nf++];
	memset(f, 0, sizeof(*f));
	f->htype = r->htype;
	f->hlen = r->hlen;
	memcpy(f->h, r->h, r->hlen);
	return f;
}

static int inspect_cb(void *arg, uint64_t seg, uint64_t pos, const struct fs_jrec *r,
		      const unsigned char *data)
{
	(void)data;
	struct inspect *in = arg;
	if (!in->ns || in->s[in->ns - 1].no != seg) {
		struct jseg *ns = realloc(in->s, (in->ns + 1) * sizeof(*ns));
		if (!ns)
			return in->oom = 1;
		in->s = ns;
		in->s[in->ns++] = (struct jseg){ .no = seg };
	}
	in->s[in->ns - 1].records++;
	in->s[in->ns - 1].end = pos + FS_JREC_HDR + r->len;
	if (r->type != FS_JREC_DATA)
		return 0;
	in->s[in->ns - 1].bytes += r->len;
	if (r->seq <= in->ckpt)
		return 0;
	struct jfile *f = file_of(in, r);
	if (!f)
		return in->oom = 1;
	f->bytes += r->len;
	f->records++;
	return 0;
}

static void hex(const unsigned char *h, uint32_t n, char *out)
{
	for (uint32_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
	out[2 * n] = 0;
}

static int print_inspect(const struct fs_jmeta *m, const struct fs_jscan *sc,
			 const struct inspect *in, int json)
{
	char hx[2 * FS_JH_MAX + 1], b1[32];
	uint64_t dirty = 0;
	for (size_t i = 0; i < in->nf; i++)
		dirty += in->f[i].bytes;
	if (!json) {
		printf("journal %s  segment size %s  checkpoint %llu\n", m->uuid,
		       admin_bytes((int64_t)m->seg_size, b1), (unsigned long long)m->ckpt);
		printf("%llu segment(s), %llu record(s) (%llu data, %llu commit), last seq %llu, "
		       "committed through %llu\n", (unsigned long long)sc->segments,
		       (unsigned long long)sc->records, (unsigned long long)sc->data_records,
		       (unsigned long long)sc->commits, (unsigned long long)sc->last_seq,
		       (unsigned long long)sc->last_commit);
		for (size_t i = 0; i < in->ns; i++)
			printf("  segment %llu: %llu record(s), %s of data\n",
			       (unsigned long long)in->s[i].no, (unsigned long long)in->s[i].records,
			       admin_bytes((int64_t)in->s[i].bytes, b1));
		printf("dirty: %s in %zu file(s)\n", admin_bytes((int64_t)dirty, b1), in->nf);
		for (size_t i = 0; i < in->nf; i++) {
			hex(in->f[i].h, in->f[i].hlen, hx);
			printf("  file %d:%s  %llu record(s), %s\n", in->f[i].htype, hx,
			       (unsigned long long)in->f[i].records,
			       admin_bytes((int64_t)in->f[i].bytes, b1));
		}
		if (sc->damaged)
			printf("damaged: segment %llu offset %llu: %s (records after it are ignored)\n",
			       (unsigned long long)sc->damaged_seg,
			       (unsigned long long)sc->damaged_pos, sc->damage);
		return 0;
	}
	json_t *segs = json_array(), *files = json_array();
	for (size_t i = 0; i < in->ns; i++)
		json_array_append_new(segs, json_pack("{s:I,s:I,s:I,s:I}", "segment",
						      (json_int_t)in->s[i].no, "records",
						      (json_int_t)in->s[i].records, "bytes",
						      (json_int_t)in->s[i].bytes, "end",
						      (json_int_t)in->s[i].end));
	for (size_t i = 0; i < in->nf; i++) {
		hex(in->f[i].h, in->f[i].hlen, hx);
		json_array_append_new(files, json_pack("{s:i,s:s,s:I,s:I}", "handle_type",
					  (int)in->f[i].htype, "handle", hx,
					  "records", (json_int_t)in->f[i].records,
					  "dirty_bytes", (json_int_t)in->f[i].bytes));
	}
	json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:b}",
			      "uuid", m->uuid, "segment_size", (json_int_t)m->seg_size,
			      "checkpoint", (json_int_t)m->ckpt,
			      "records", (json_int_t)sc->records,
			      "data_records", (json_int_t)sc->data_records,
			      "commits", (json_int_t)sc->commits,
			      "last_seq", (json_int_t)sc->last_seq,
			      "committed_through", (json_int_t)sc->last_commit,
			      "dirty_bytes", (json_int_t)dirty, "segments", segs, "files", files,
			      "damaged", sc->damaged);
	if (sc->damaged)
		json_object_set_new(o, "damage", json_pack("{s:I,s:I,s:s}", "segment",
				    (json_int_t)sc->damaged_seg, "offset",
				    (json_int_t)sc->damaged_pos, "reason", sc->damage));
	char *s = json_dumps(o, JSON_INDENT(2));
	puts(s ? s : "{}");
	free(s);
	json_decref(o);
	return 0;
}

static int open_dir(const char *p)
{
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "strata-admin: %s: %s\n", p, strerror(errno));
	return fd;
}

static int journal_inspect(const char *dir, int json)
{
	int dfd = open_dir(dir);
	if (dfd < 0)
		return 1;
	struct st_error err = { 0 };
	struct fs_jmeta m;
	struct fs_jscan sc;
	struct inspect in = { 0 };
	int rc = fs_jmeta_read(dfd, &m, &err);
	if (rc == 0) {
		in.ckpt = m.ckpt;
		rc = fs_jscan(dfd, m.uuid, inspect_cb, &in, &sc, &err);
	}
	close(dfd);
	if (rc == 0 && in.oom)
		rc = st_error_set(&err, ST_ENOMEM, "out of memory");
	if (rc == 0)
		print_inspect(&m, &sc, &in, json);
	else
		fprintf(stderr, "strata-admin: journal %s: %s\n", dir, err.msg);
	free(in.f);
	free(in.s);
	return rc ? 1 : 0;
}

static int journal_replay(const char *dir, const char *backing, int json)
{
	char real[PATH_MAX];
	if (!realpath(backing, real)) {
		fprintf(stderr, "strata-admin: %s: %s\n", backing, strerror(errno));
		return 1;
	}
	int cfd = fs_ctl_connect(real);
	if (cfd >= 0) {
		close(cfd);
		fprintf(stderr, "strata-admin: %s is served by a running stratafs; it replays its "
			"journal itself\n", real);
		return 1;
	}
	int dfd = open_dir(dir), bfd = open_dir(real);
	struct st_error err = { 0 };
	struct fs_jreplay rep;
	int rc = dfd < 0 || bfd < 0 ? -1 : fs_jreplay(dfd, bfd, &rep, &err);
	if (dfd >= 0)
		close(dfd);
	if (bfd >= 0)
		close(bfd);
	if (rc == -1)
		return 1;
	if (rc) {
		fprintf(stderr, "strata-admin: journal replay: %s\n", err.msg);
		return 1;
	}
	if (json) {
		json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s}",
				      "records", (json_int_t)rep.scan.records,
				      "applied", (json_int_t)rep.applied, "bytes", (json_int_t)rep.bytes,
				      "truncates", (json_int_t)rep.truncates,
				      "files", (json_int_t)rep.files,
				      "skipped_gone", (json_int_t)rep.skipped_gone,
				      "checkpoint", (json_int_t)rep.new_ckpt, "damaged", rep.scan.damaged,
				      "damage", rep.scan.damage);
		char *s = json_dumps(o, JSON_INDENT(2));
		puts(s ? s : "{}");
		free(s);
		json_decref(o);
	} else {
		char line[256];
		fs_jreplay_summary(&rep, line, sizeof(line));
		printf("replayed %s\n", line);
		if (rep.scan.damaged)
			printf("damaged tail: segment %llu offset %llu: %s (ignored)\n",
			       (unsigned long long)rep.scan.damaged_seg,
			       (unsigned long long)rep.scan.damaged_pos, rep.scan.damage);
	}
	return 0;
}

int admin_journal(int argc, char **argv)
{
	static const struct option lo[] = { { "json", no_argument, 0, 'j' }, { 0, 0, 0, 0 } };
	int json = 0, o;
	optind = 1;
	if (argc < 2) {
		fprintf(stderr, "strata-admin journal: expected inspect or replay\n");
		return 2;
	}
	const char *sub = argv[1];
	argc--;
	argv++;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o != 'j') {
			fprintf(stderr, "strata-admin journal: unknown option\n");
			return 2;
		}
		json = 1;
	}
	int n = argc - optind;
	if (!strcmp(sub, "inspect") && n == 1)
		return journal_inspect(argv[optind], json);
	if (!strcmp(sub, "replay") && n == 2)
		return journal_replay(argv[optind], argv[optind + 1], json);
	fprintf(stderr, "strata-admin journal: expected inspect SSD_DIR or replay SSD_DIR BACKING_DIR\n");
	return 2;
}
