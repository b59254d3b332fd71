/* Control channel framing (JSON lines on a unix socket) and mount discovery. */
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_util.h"
#include "fuse/fs_rmr.h"
#include "fuse/fs_trash.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int fs_ctl_send(int fd, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	s[n] = '\n'; /* json_dumps leaves room: replace the NUL, length known */
	size_t off = 0;
	int rc = 0;
	while (off < n + 1) {
		ssize_t k = send(fd, s + off, n + 1 - off, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)k;
	}
	free(s);
	return rc;
}

json_t *fs_ctl_recv(int fd, struct st_error *err)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		st_error_set(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= (1u << 30)) {
				free(buf);
				st_error_set(err, ST_ELIMIT, "control message too long");
				return NULL;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				st_error_set(err, ST_ENOMEM, "out of memory");
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t k = recv(fd, buf + len, cap - len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(buf);
			st_error_set(err, ST_ECLOSED, "control channel closed before a full message");
			return NULL;
		}
		char *nl = memchr(buf + len, '\n', (size_t)k);
		len += (size_t)k;
		if (nl) {
			json_error_t je;
			json_t *o = json_loadb(buf, (size_t)(nl - buf), 0, &je);
			free(buf);
			if (!o || !json_is_object(o)) {
				json_decref(o);
				st_error_set(err, ST_EPROTO, "bad control message: %s", je.text);
				return NULL;
			}
			return o;
		}
	}
}

int fs_ctl_connect(const char *backing_real)
{
	struct sockaddr_un a;
	socklen_t al = fs_ctl_addr(backing_real, &a);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, al) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int fs_ctl_call(const char *backing_real, json_t *req, json_t **resp, struct st_error *err)
{
	*resp = NULL;
	int fd = fs_ctl_connect(backing_real);
	if (fd < 0)
		return st_error_set(err, fd, "no stratafs is serving %s (%s)", backing_real,
				    strerror(-fd));
	int rc = fs_ctl_send(fd, req);
	if (rc) {
		close(fd);
		return st_error_set(err, rc, "control channel: %s", strerror(-rc));
	}
	*resp = fs_ctl_recv(fd, err);
	close(fd);
	return *resp ? 0 : err ? err->code : ST_EPROTO;
}

/* Undoes mountinfo's octal escapes (\040 for space etc.) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] && r[3]) {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

int fs_find_mount(const char *path, char *mnt, size_t mlen, char *backing, size_t blen,
		  struct st_error *err)
{
	char real[PATH_MAX * 2 + 2];
	real[0] = 0;
	if (path) {
		/* resolve the parent, keep the last component as is (it may be a symlink) */
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof(tmp), "%s", path);
		size_t l = strlen(tmp);
		while (l > 1 && tmp[l - 1] == '/')
			tmp[--l] = 0;
		char *slash = strrchr(tmp, '/');
		const char *last = slash ? slash + 1 : tmp;
		char dir[PATH_MAX];
		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == tmp)
			snprintf(dir, sizeof(dir), "/");
		else
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - tmp), tmp);
		char rd[PATH_MAX];
		if (!realpath(dir, rd))
			return st_error_set(err, ST_ENOTFOUND, "%s: %s", dir, strerror(errno));
		if (!strcmp(last, ".") || !strcmp(last, "..") || !*last) {
			char both[PATH_MAX * 2];
			snprintf(both, sizeof(both), "%s/%s", rd, last);
			if (!realpath(both, real))
				return st_error_set(err, ST_ENOTFOUND, "%s: %s", path, strerror(errno));
		} else {
			snprintf(real, sizeof(real), "%s%s%s", rd, strcmp(rd, "/") ? "/" : "", last);
		}
	}
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return st_error_set(err, ST_EIO, "cannot read /proc/self/mountinfo");
	char line[8192];
	size_t best = 0;
	int found = 0, count = 0;
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts ... - fstype source superopts */
		char *fields[16];
		int nf = 0;
		for (char *tok = strtok(line, " \n"); tok && nf < 16; tok = strtok(NULL, " \n"))
			fields[nf++] = tok;
		int dash = -1;
		for (int i = 6; i < nf; i++)
			if (!strcmp(fields[i], "-")) {
				dash = i;
				break;
			}
		if (dash < 0 || dash + 2 >= nf || strcmp(fields[dash + 1], "fuse.stratafs"))
			continue;
		char *mp = fields[4], *src = fields[dash + 2];
		unescape(mp);
		unescape(src);
		count++;
		size_t ml = strlen(mp);
		int inside = !path || (!strncmp(real, mp, ml) &&
				       (real[ml] == '/' || real[ml] == 0 || !strcmp(mp, "/")));
		if (inside && ml >= best) {
			best = ml;
			found = 1;
			snprintf(mnt, mlen, "%s", mp);
			snprintf(backing, blen, "%s", src);
		}
	}
	fclose(f);
	if (!found)
		return st_error_set(err, ST_ENOTFOUND, "%s is not inside a stratafs mount",
				    path ? path : "no path given and there");
	if (!path && count > 1)
		return st_error_set(err, ST_EINVAL, "several stratafs mounts: pass --mount");
	return 0;
}

json_t *fs_rmr_job_json(const struct fs_rmr_jobinfo *j)
{
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:s}", "id", j->id,
			 "path", j->path ? j->path : "", "uid", (json_int_t)j->uid, "kind",
			 j->kind, "state", fs_rmr_state_name(j->state), "queued_us",
			 (json_int_t)j->queued_us, "files_total", (json_int_t)j->files_total,
			 "bytes_total", (json_int_t)j->bytes_total, "files_done",
			 (json_int_t)j->files_done, "bytes_done", (json_int_t)j->bytes_done,
			 "files_left",
			 (json_int_t)(j->files_total >= 0 ? j->files_total - j->files_done : -1),
			 "rate_files", j->rate_files, "rate_bytes", j->rate_bytes, "error",
			 j->error);
}

json_t *fs_trash_entry_json(const struct fs_trash_entry *e)
{
	json_t *xa = json_object();
	for (size_t i = 0; i < e->rec.nxattr; i++) {
		char *hex = malloc(e->rec.xattrs[i].len * 2 + 1);
		if (!hex)
			continue;
		fs_hex_encode(e->rec.xattrs[i].value, e->rec.xattrs[i].len, hex);
		json_object_set_new(xa, e->rec.xattrs[i].name, json_string(hex));
		free(hex);
	}
	char t[2] = { e->rec.type, 0 };
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:o}", "id",
			 e->rec.id, "path", e->rec.path, "bucket", e->bucket, "tpath",
			 e->rec.tpath, "type", t, "uid", (json_int_t)e->rec.uid, "gid",
			 (json_int_t)e->rec.gid, "mode", (json_int_t)e->rec.mode, "size",
			 (json_int_t)e->rec.size, "mtime_ns", (json_int_t)e->rec.mtime_ns,
			 "dtime_us", (json_int_t)e->rec.dtime_us, "by", (json_int_t)e->rec.by_uid,
			 "present", e->present, "xattrs", xa);
}

