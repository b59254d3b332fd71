/* Trash record encoding: a JSON object (jansson) prefixed by its XXH64 checksum. */
#include "fuse/fs_rec.h"
#include "fuse/fs_util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

static int put_str(json_t *o, const char *k, const char *v)
{
	return v ? json_object_set_new(o, k, json_string(v)) : 0;
}

char *fs_rec_encode(const struct fs_trash_rec *r, size_t *len)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	char *line = NULL;
	json_object_set_new(o, "op", json_string(r->op == FS_REC_DEL ? "del" : "gone"));
	json_object_set_new(o, "id", json_string(r->id));
	if (r->op == FS_REC_DEL) {
		put_str(o, "path", r->path);
		put_str(o, "parent", r->parent);
		put_str(o, "tpath", r->tpath);
		char t[2] = { r->type, 0 };
		json_object_set_new(o, "type", json_string(t));
		json_object_set_new(o, "uid", json_integer(r->uid));
		json_object_set_new(o, "gid", json_integer(r->gid));
		json_object_set_new(o, "mode", json_integer(r->mode));
		json_object_set_new(o, "size", json_integer(r->size));
		json_object_set_new(o, "atime_ns", json_integer(r->atime_ns));
		json_object_set_new(o, "mtime_ns", json_integer(r->mtime_ns));
		json_object_set_new(o, "ctime_ns", json_integer(r->ctime_ns));
		json_object_set_new(o, "by", json_integer(r->by_uid));
		if (r->nxattr) {
			json_t *xa = json_object();
			for (size_t i = 0; i < r->nxattr; i++) {
				char *hex = malloc(r->xattrs[i].len * 2 + 1);
				if (!hex) {
					json_decref(xa);
					goto out;
				}
				fs_hex_encode(r->xattrs[i].value, r->xattrs[i].len, hex);
				json_object_set_new(xa, r->xattrs[i].name, json_string(hex));
				free(hex);
			}
			json_object_set_new(o, "xattrs", xa);
		}
	} else {
		json_object_set_new(o, "why", json_string(r->why));
	}
	json_object_set_new(o, "dtime_us", json_integer(r->dtime_us));
	char *js = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!js)
		goto out;
	size_t jl = strlen(js);
	line = malloc(jl + 19);
	if (line) {
		unsigned long long h = (unsigned long long)XXH64(js, jl, 0);
		int n = snprintf(line, jl + 19, "%016llx %s\n", h, js);
		*len = (size_t)n;
	}
	free(js);
out:
	json_decref(o);
	return line;
}

static char *dup_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? strdup(s) : NULL;
}

static int64_t get_int(json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

int fs_rec_decode(const char *line, size_t len, struct fs_trash_rec *r, struct st_error *err)
{
	memset(r, 0, sizeof(*r));
	if (len && line[len - 1] == '\n')
		len--;
	if (len < 18 || line[16] != ' ')
		return st_error_set(err, ST_ECORRUPT, "trash record: short or torn line");
	unsigned char hb[8];
	if (fs_hex_decode(line, 16, hb) != 8)
		return st_error_set(err, ST_ECORRUPT, "trash record: bad checksum field");
	unsigned long long want = 0;
	for (int i = 0; i < 8; i++)
		want = want << 8 | hb[i];
	const char *js = line + 17;
	size_t jl = len - 17;
	if ((unsigned long long)XXH64(js, jl, 0) != want)
		return st_error_set(err, ST_ECORRUPT, "trash record: checksum mismatch");
	json_error_t je;
	json_t *o = json_loadb(js, jl, 0, &je);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return st_error_set(err, ST_EINVAL, "trash record: bad JSON: %s", je.text);
	}
	int rc = 0;
	const char *op = json_string_value(json_object_get(o, "op"));
	const char *id = json_string_value(json_object_get(o, "id"));
	if (!op || !id || strlen(id) != 16) {
		rc = st_error_set(err, ST_EINVAL, "trash record: missing op or id");
		goto out;
	}
	memcpy(r->id, id, 17);
	r->dtime_us = get_int(o, "dtime_us");
	if (strcmp(op, "gone") == 0) {
		r->op = FS_REC_GONE;
		snprintf(r->why, sizeof(r->why), "%s",
			 json_string_value(json_object_get(o, "why")) ?: "");
		goto out;
	}
	if (strcmp(op, "del") != 0) {
		rc = st_error_set(err, ST_EINVAL, "trash record: unknown op '%s'", op);
		goto out;
	}
	r->op = FS_REC_DEL;
	r->path = dup_str(o, "path");
	r->parent = dup_str(o, "parent");
	r->tpath = dup_str(o, "tpath");
	const char *t = json_string_value(json_object_get(o, "type"));
	if (!r->path || !r->parent || !r->tpath || !t || strlen(t) != 1 ||
	    !strchr("fdlo", t[0])) {
		rc = st_error_set(err, ST_EINVAL, "trash record %s: missing path/tpath/type", id);
		goto out;
	}
	r->type = t[0];
	r->uid = (uint32_t)get_int(o, "uid");
	r->gid = (uint32_t)get_int(o, "gid");
	r->mode = (uint32_t)get_int(o, "mode");
	r->size = get_int(o, "size");
	r->atime_ns = get_int(o, "atime_ns");
	r->mtime_ns = get_int(o, "mtime_ns");
	r->ctime_ns = get_int(o, "ctime_ns");
	r->by_uid = (uint32_t)get_int(o, "by");
	json_t *xa = json_object_get(o, "xattrs");
	if (xa) {
		const char *k;
		json_t *v;
		json_object_foreach(xa, k, v) {
			const char *hex = json_string_value(v);
			size_t hl = hex ? strlen(hex) : 1;
			unsigned char *buf = malloc(hl / 2 + 1);
			ssize_t n = buf && hex ? fs_hex_decode(hex, hl, buf) : -1;
			if (n < 0) {
				free(buf);
				rc = st_error_set(err, ST_EINVAL, "trash record %s: bad xattr %s", id, k);
				goto out;
			}
			rc = fs_rec_add_xattr(r, k, buf, (size_t)n);
			free(buf);
			if (rc) {
				st_error_set(err, rc, "out of memory");
				goto out;
			}
		}
	}
out:
	json_decref(o);
	if (rc)
		fs_rec_release(r);
	return rc;
}

void fs_rec_release(struct fs_trash_rec *r)
{
	free(r->path);
	free(r->parent);
	free(r->tpath);
	for (size_t i = 0; i < r->nxattr; i++) {
		free(r->xattrs[i].name);
		free(r->xattrs[i].value);
	}
	free(r->xattrs);
	memset(r, 0, sizeof(*r));
}

int fs_rec_add_xattr(struct fs_trash_rec *r, const char *name, const void *val, size_t len)
{
	struct fs_xattr *nx = realloc(r->xattrs, (r->nxattr + 1) * sizeof(*nx));
	if (!nx)
		return ST_ENOMEM;
	r->xattrs = nx;
	struct fs_xattr *x = &nx[r->nxattr];
	x->name = strdup(name);
	x->value = malloc(len ? len : 1);
	if (!x->name || !x->value) {
		free(x->name);
		free(x->value);
		return ST_ENOMEM;
	}
	memcpy(x->value, val, len);
	x->len = len;
	r->nxattr++;
	return 0;
}

int fs_rec_copy(struct fs_trash_rec *dst, const struct fs_trash_rec *src)
{
	*dst = *src;
	dst->path = dst->parent = dst->tpath = NULL;
	dst->nxattr = 0;
	dst->xattrs = NULL;
	if ((src->path && !(dst->path = strdup(src->path))) ||
	    (src->parent && !(dst->parent = strdup(src->parent))) ||
	    (src->tpath && !(dst->tpath = strdup(src->tpath))))
		goto nomem;
	for (size_t i = 0; i < src->nxattr; i++)
		if (fs_rec_add_xattr(dst, src->xattrs[i].name, src->xattrs[i].value,
				     src->xattrs[i].len))
			goto nomem;
	return 0;
nomem:
	fs_rec_release(dst);
	return ST_ENOMEM;
}

void fs_bucket_name(int64_t dtime_us, int64_t width_s, char out[16])
{
	if (width_s < 1)
		width_s = 1;
	time_t s = (time_t)(dtime_us / 1000000);
	s -= s % width_s;
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(out, 16, "%Y%m%dT%H%M%S", &tm);
}

int64_t fs_bucket_width(int64_t retention_us)
{
	int64_t w = retention_us / 24 / 1000000;
	if (w < 1)
		w = 1;
	if (w > 3600)
		w = 3600;
	return w;
}
