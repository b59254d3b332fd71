/* Input files: decompression layer + CSV/TSV/JSONL record parsers (see kv_input.h). */
#include "store/kv_input.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

enum codec { CODEC_PLAIN, CODEC_GZIP, CODEC_ZSTD };

#define RAW_CHUNK (1 << 20)

struct kv_input {
	char *path;
	FILE *fp;
	enum kv_format fmt;
	enum codec codec;
	int64_t size, raw_read;
	/* decompression */
	char *raw;
	size_t raw_len, raw_pos;
	int raw_eof;
	z_stream zs;
	int zs_init;
	ZSTD_DCtx *zd;
	/* columns */
	char **names;
	size_t ncols, names_cap;
	/* current record being assembled */
	size_t nf, fcap;
	uint32_t *col;
	char **fptr;
	size_t *flen;
	char *fbuf;          /* field bytes of the current record */
	size_t fbuf_len, fbuf_cap;
	size_t line;
	/* run state */
	kv_record_cb cb;
	void *cb_arg;
	int stop_rc;
	int header_done;
	struct st_error *err;
};

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

static enum kv_format format_from_name(const char *path)
{
	char base[4096];
	snprintf(base, sizeof(base), "%s", path);
	if (has_suffix(base, ".gz"))
		base[strlen(base) - 3] = '\0';
	else if (has_suffix(base, ".zst"))
		base[strlen(base) - 4] = '\0';
	if (has_suffix(base, ".tsv") || has_suffix(base, ".tab"))
		return KV_FMT_TSV;
	if (has_suffix(base, ".jsonl") || has_suffix(base, ".json") || has_suffix(base, ".ndjson"))
		return KV_FMT_JSONL;
	return KV_FMT_CSV;
}

int kv_format_parse(const char *s, enum kv_format *out)
{
	if (!strcmp(s, "auto"))
		*out = KV_FMT_AUTO;
	else if (!strcmp(s, "csv"))
		*out = KV_FMT_CSV;
	else if (!strcmp(s, "tsv"))
		*out = KV_FMT_TSV;
	else if (!strcmp(s, "jsonl") || !strcmp(s, "json"))
		*out = KV_FMT_JSONL;
	else
		return ST_EINVAL;
	return 0;
}

/* Takes ownership of fp (closed by kv_input_close, also on failure). */
static int input_init(FILE *fp, const char *name, int64_t size, enum kv_format fmt,
		      struct kv_input **out, struct st_error *err)
{
	struct kv_input *in = calloc(1, sizeof(*in));
	if (!in) {
		fclose(fp);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	in->fp = fp;
	in->path = strdup(name);
	in->size = size;
	in->raw = malloc(RAW_CHUNK);
	in->fbuf_cap = 4096; /* never NULL: field pointers are fbuf + offset, even when empty */
	in->fbuf = malloc(in->fbuf_cap);
	if (!in->path || !in->raw || !in->fbuf) {
		kv_input_close(in);
		return st_error_set(err, ST_ENOMEM, "out of memory");
	}
	/* The first bytes name the codec. They stay in raw as the start of the stream, not
	 * rewound: a pipe or FIFO cannot seek back (its first 4 bytes were lost). */
	in->raw_len = fread(in->raw, 1, 4, in->fp);
	in->raw_read = (int64_t)in->raw_len;
	const unsigned char *magic = (const unsigned char *)in->raw;
	size_t m = in->raw_len;
	if (m >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
		in->codec = CODEC_GZIP;
		if (inflateInit2(&in->zs, 15 + 32) != Z_OK) {
			kv_input_close(in);
			return st_error_set(err, ST_ENOMEM, "zlib init failed");
		}
		in->zs_init = 1;
	} else if (m == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
		   magic[3] == 0xfd) {
		in->codec = CODEC_ZSTD;
		in->zd = ZSTD_createDCtx();
		if (!in->zd) {
			kv_input_close(in);
			return st_error_set(err, ST_ENOMEM, "zstd init failed");
		}
	}
	in->fmt = fmt == KV_FMT_AUTO ? format_from_name(name) : fmt;
	*out = in;
	return 0;
}

int kv_input_open(const char *path, enum kv_format fmt, struct kv_input **out,
		  struct st_error *err)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		return st_error_set(err, e == ENOENT ? ST_ENOTFOUND : ST_EIO, "%s: %s", path,
				    strerror(e));
	}
	struct stat st;
	int64_t size = fstat(fileno(fp), &st) == 0 ? st.st_size : 0;
	return input_init(fp, path, size, fmt, out, err);
}

int kv_input_open_mem(const void *data, size_t len, const char *name, enum kv_format fmt,
		      struct kv_input **out, struct st_error *err)
{
	/* fmemopen cannot open an empty buffer */
	FILE *fp = len ? fmemopen((void *)data, len, "rb") : fopen("/dev/null", "rb");
	if (!fp)
		return st_error_set(err, ST_ENOMEM, "fmemopen: %s", strerror(errno));
	return input_init(fp, name, (int64_t)len, fmt, out, err);
}

void kv_input_close(struct kv_input *in)
{
	if (!in)
		return;
	if (in->fp)
		fclose(in->fp);
	if (in->zs_init)
		inflateEnd(&in->zs);
	ZSTD_freeDCtx(in->zd);
	for (size_t i = 0; i < in->ncols; i++)
		free(in->names[i]);
	free(in->names);
	free(in->col);
	free(in->fptr);
	free(in->flen);
	free(in->fbuf);
	free(in->raw);
	free(in->path);
	free(in);
}

size_t kv_input_ncols(const struct kv_input *in) { return in->ncols; }
const char *kv_input_colname(const struct kv_input *in, size_t i) { return in->names[i]; }
enum kv_format kv_input_format(const struct kv_input *in) { return in->fmt; }
const char *kv_input_path(const struct kv_input *in) { return in->path; }
int64_t kv_input_bytes_read(const struct kv_input *in) { return in->raw_read; }
int64_t kv_input_bytes_total(const struct kv_input *in) { return in->size; }

/* ---- decompression: fills buf with up to cap decoded bytes; 0 at end ---- */

static int refill_raw(struct kv_input *in)
{
	if (in->raw_pos < in->raw_len || in->raw_eof)
		return 0;
	in->raw_len = fread(in->raw, 1, RAW_CHUNK, in->fp);
	in->raw_pos = 0;
	in->raw_read += (int64_t)in->raw_len;
	if (in->raw_len == 0) {
		if (ferror(in->fp))
			return ST_EIO;
		in->raw_eof = 1;
	}
	return 0;
}

static int64_t decode(struct kv_input *in, char *buf, size_t cap, struct st_error *err)
{
	for (;;) {
		if (refill_raw(in))
			return st_error_set(err, ST_EIO, "%s: read error: %s", in->path,
					    strerror(errno));
		size_t avail = in->raw_len - in->raw_pos;
		if (in->codec == CODEC_PLAIN) {
			size_t n = avail < cap ? avail : cap;
			memcpy(buf, in->raw + in->raw_pos, n);
			in->raw_pos += n;
			return (int64_t)n;
		}
		if (in->raw_eof && avail == 0)
			return 0;
		if (in->codec == CODEC_GZIP) {
			in->zs.next_in = (Bytef *)in->raw + in->raw_pos;
			in->zs.avail_in = (uInt)avail;
			in->zs.next_out = (Bytef *)buf;
			in->zs.avail_out = (uInt)cap;
			int zr = inflate(&in->zs, Z_NO_FLUSH);
			in->raw_pos = in->raw_len - in->zs.avail_in;
			if (zr == Z_STREAM_END)
				inflateReset(&in->zs); /* concatenated gzip members */
			else if (zr != Z_OK && zr != Z_BUF_ERROR)
				return st_error_set(err, ST_ECORRUPT, "%s: gzip: %s", in->path,
						    in->zs.msg ? in->zs.msg : "corrupt stream");
			size_t got = cap - in->zs.avail_out;
			if (got)
				return (int64_t)got;
		} else {
			ZSTD_inBuffer ib = {in->raw + in->raw_pos, avail, 0};
			ZSTD_outBuffer ob = {buf, cap, 0};
			size_t zr = ZSTD_decompressStream(in->zd, &ob, &ib);
			in->raw_pos += ib.pos;
			if (ZSTD_isError(zr))
				return st_error_set(err, ST_ECORRUPT, "%s: zstd: %s", in->path,
						    ZSTD_getErrorName(zr));
			if (ob.pos)
				return (int64_t)ob.pos;
		}
	}
}

/* ---- record assembly ---- */

static int add_col(struct kv_input *in, const char *name, size_t len)
{
	if (in->ncols == in->names_cap) {
		size_t nc = in->names_cap ? in->names_cap * 2 : 16;
		char **nn = realloc(in->names, nc * sizeof(*nn));
		if (!nn)
			return ST_ENOMEM;
		in->names = nn;
		in->names_cap = nc;
	}
	char *s = malloc(len + 1);
	if (!s)
		return ST_ENOMEM;
	memcpy(s, name, len);
	s[len] = '\0';
	in->names[in->ncols++] = s;
	return 0;
}

static int add_field(struct kv_input *in, uint32_t col, const char *p, size_t len)
{
	if (in->nf == in->fcap) {
		size_t nc = in->fcap ? in->fcap * 2 : 16;
		uint32_t *c = realloc(in->col, nc * sizeof(*c));
		if (c)
			in->col = c;
		size_t *l = realloc(in->flen, nc * sizeof(*l));
		if (l)
			in->flen = l;
		char **f = realloc(in->fptr, nc * sizeof(*f));
		if (f)
			in->fptr = f;
		if (!c || !l || !f)
			return ST_ENOMEM;
		in->fcap = nc;
	}
	if (in->fbuf_len + len > in->fbuf_cap) {
		size_t nc = in->fbuf_cap ? in->fbuf_cap * 2 : 4096;
		while (nc < in->fbuf_len + len)
			nc *= 2;
		char *nb = realloc(in->fbuf, nc);
		if (!nb)
			return ST_ENOMEM;
		in->fbuf = nb;
		in->fbuf_cap = nc;
	}
	if (len)
		memcpy(in->fbuf + in->fbuf_len, p, len);
	in->col[in->nf] = col;
	in->flen[in->nf] = len;
	in->fptr[in->nf] = (char *)(uintptr_t)in->fbuf_len; /* offset; fixed up on emit */
	in->fbuf_len += len;
	in->nf++;
	return 0;
}

static void emit(struct kv_input *in)
{
	in->line++;
	if (in->stop_rc)
		goto reset;
	for (size_t i = 0; i < in->nf; i++)
		in->fptr[i] = in->fbuf + (uintptr_t)in->fptr[i];
	struct kv_record r = {in->line, in->nf, in->col, (const char *const *)in->fptr, in->flen, NULL};
	char why[96];
	if (in->fmt != KV_FMT_JSONL && in->nf != in->ncols) { /* short rows too: a lost field */
		snprintf(why, sizeof(why), "%zu fields, the header has %zu", in->nf, in->ncols);
		r.bad = why;
		r.n = 0;
	}
	in->stop_rc = in->cb(in->cb_arg, in, &r);
reset:
	in->nf = 0;
	in->fbuf_len = 0;
}

/* ---- CSV / TSV ---- */

static void csv_field(void *s, size_t len, void *arg)
{
	struct kv_input *in = arg;
	if (in->stop_rc)
		return;
	int rc = in->header_done ? add_field(in, (uint32_t)in->nf, s, len) : add_col(in, s, len);
	if (rc)
		in->stop_rc = st_error_set(in->err, rc, "out of memory");
}

static void csv_row(int c, void *arg)
{
	struct kv_input *in = arg;
	if (!in->header_done) {
		in->header_done = 1;
		in->line++;
		return;
	}
	emit(in);
}

static int run_csv(struct kv_input *in, struct st_error *err)
{
	struct csv_parser p;
	if (csv_init(&p, 0))
		return st_error_set(err, ST_ENOMEM, "csv init failed");
	if (in->fmt == KV_FMT_TSV)
		csv_set_delim(&p, '\t');
	char *buf = malloc(RAW_CHUNK);
	int rc = 0;
	if (!buf) {
		rc = st_error_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		int64_t n = decode(in, buf, RAW_CHUNK, err);
		if (n < 0) {
			rc = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		if (csv_parse(&p, buf, (size_t)n, csv_field, csv_row, in) != (size_t)n) {
			rc = st_error_set(err, ST_EINVAL, "%s:%zu: %s", in->path, in->line + 1,
					  csv_strerror(csv_error(&p)));
			goto out;
		}
		if (in->stop_rc)
			break;
	}
	if (!in->stop_rc)
		csv_fini(&p, csv_field, csv_row, in);
	rc = in->stop_rc;
	if (!rc && !in->header_done)
		rc = st_error_set(err, ST_EINVAL, "%s: empty file (no header line)", in->path);
out:
	csv_free(&p);
	free(buf);
	return rc;
}

/* ---- JSON lines ---- */

static int col_of(struct kv_input *in, const char *name, uint32_t *out)
{
	for (size_t i = 0; i < in->ncols; i++)
		if (!strcmp(in->names[i], name)) {
			*out = (uint32_t)i;
			return 0;
		}
	int rc = add_col(in, name, strlen(name));
	*out = (uint32_t)(in->ncols - 1);
	return rc;
}

/* Text form of a JSON value as a field: strings as is, numbers in full precision, arrays of
 * numbers as "[a,b]", null as absent (returns 1). */
static int json_field_text(json_t *v, char *tmp, size_t tmpcap, const char **p, size_t *len,
			   char **heap)
{
	*heap = NULL;
	if (json_is_null(v))
		return 1;
	if (json_is_string(v)) {
		*p = json_string_value(v);
		*len = json_string_length(v);
		return 0;
	}
	if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v)) {
		if (json_is_integer(v))
			*len = (size_t)snprintf(tmp, tmpcap, "%lld", (long long)json_integer_value(v));
		else if (json_is_real(v))
			*len = (size_t)snprintf(tmp, tmpcap, "%.17g", json_real_value(v));
		else
			*len = (size_t)snprintf(tmp, tmpcap, "%d", json_is_true(v));
		*p = tmp;
		return 0;
	}
	*heap = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!*heap)
		return ST_ENOMEM;
	*p = *heap;
	*len = strlen(*heap);
	return 0;
}

static int jsonl_line(struct kv_input *in, const char *s, size_t len, struct st_error *err)
{
	while (len && (s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0) { /* blank lines are skipped but counted */
		in->line++;
		return 0;
	}
	json_error_t je;
	json_t *o = json_loadb(s, len, 0, &je);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return st_error_set(err, ST_EINVAL, "%s:%zu: not a JSON object: %s", in->path,
				    in->line + 1, o ? "value is not an object" : je.text);
	}
	const char *key;
	json_t *v;
	int rc = 0;
	json_object_foreach(o, key, v)
	{
		uint32_t col;
		char tmp[64], *heap;
		const char *p;
		size_t fl;
		if ((rc = col_of(in, key, &col)))
			break;
		int r = json_field_text(v, tmp, sizeof(tmp), &p, &fl, &heap);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 0)
			rc = add_field(in, col, p, fl);
		free(heap);
		if (rc)
			break;
	}
	json_decref(o);
	if (rc)
		return st_error_set(err, rc, "out of memory");
	emit(in);
	return in->stop_rc;
}

static int run_jsonl(struct kv_input *in, struct st_error *err)
{
	size_t cap = RAW_CHUNK * 2, len = 0;
	char *buf = malloc(cap);
	int rc = 0;
	if (!buf)
		return st_error_set(err, ST_ENOMEM, "out of memory");
	in->header_done = 1;
	for (;;) {
		if (cap - len < RAW_CHUNK) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = st_error_set(err, ST_ENOMEM, "out of memory (line too long?)");
				break;
			}
			buf = nb;
			cap *= 2;
		}
		int64_t n = decode(in, buf + len, cap - len, err);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		len += (size_t)n;
		size_t start = 0;
		for (;;) {
			char *nl = memchr(buf + start, '\n', len - start);
			if (!nl && n > 0)
				break;
			size_t end = nl ? (size_t)(nl - buf) : len;
			if (end > start || nl)
				rc = jsonl_line(in, buf + start, end - start, err);
			start = nl ? end + 1 : len;
			if (rc || start >= len)
				break;
		}
		memmove(buf, buf + start, len - start);
		len -= start;
		if (rc || n == 0)
			break;
	}
	free(buf);
	return rc;
}

int kv_input_run(struct kv_input *in, kv_record_cb cb, void *arg, struct st_error *err)
{
	in->cb = cb;
	in->cb_arg = arg;
	in->err = err;
	in->stop_rc = 0;
	return in->fmt == KV_FMT_JSONL ? run_jsonl(in, err) : run_csv(in, err);
}
