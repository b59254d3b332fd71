/* strata-admin trash list|restore|purge: through a live mount's control channel, or
 * offline on a backing directory (root only, and only when no stratafs serves it). */
#include "tools/admin.h"
#include "fuse/fs_ctlmsg.h"
#include "fuse/fs_rmr.h"
#include "fuse/fs_trash.h"
#include "fuse/fs_util.h"
#include "common/st_time.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct offline {
	int bfd;
	struct fs_rmr rmr;
	struct fs_trash trash;
};

static int offline_open(const struct admin_target *t, struct offline *o)
{
	struct st_error err = { 0 };
	if (geteuid() != 0) {
		fprintf(stderr, "strata-admin: offline access to %s needs root\n", t->backing);
		return -1;
	}
	o->bfd = open(t->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->bfd < 0) {
		fprintf(stderr, "strata-admin: %s: %s\n", t->backing, strerror(errno));
		return -1;
	}
	if (fs_rmr_open(&o->rmr, o->bfd, 2, 0, &err) != 0 ||
	    fs_trash_open(&o->trash, o->bfd, 0, &o->rmr, &err) != 0) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		close(o->bfd);
		return -1;
	}
	return 0;
}

static void offline_close(struct offline *o)
{
	fs_trash_close(&o->trash);
	fs_rmr_close(&o->rmr);
	close(o->bfd);
}

static struct fs_caller self_caller(void)
{
	struct fs_caller c = { .uid = getuid(), .gid = getgid(), .ngroups = -1,
			       .is_root = getuid() == 0 };
	return c;
}

static int parse_user(const char *u, int64_t *out)
{
	char *end;
	long v = strtol(u, &end, 10);
	if (*u && !*end && v >= 0) {
		*out = v;
		return 0;
	}
	struct passwd *pw = getpwnam(u);
	if (!pw) {
		fprintf(stderr, "strata-admin: unknown user '%s'\n", u);
		return -1;
	}
	*out = pw->pw_uid;
	return 0;
}

static void print_entries(json_t *resp)
{
	json_t *arr = json_object_get(resp, "entries"), *e;
	size_t i;
	printf("%-16s  %-20s  %-4s  %10s  %-8s  %s\n", "ID", "DELETED", "TYPE", "SIZE", "OWNER",
	       "PATH");
	json_array_foreach(arr, i, e) {
		char ts[ST_TS_BUFLEN], sz[32], owner[32];
		int64_t dt = (int64_t)json_integer_value(json_object_get(e, "dtime_us"));
		st_ts_format(dt - dt % 1000000, ts);
		uid_t uid = (uid_t)json_integer_value(json_object_get(e, "uid"));
		struct passwd *pw = getpwuid(uid);
		snprintf(owner, sizeof(owner), "%s", pw ? pw->pw_name : "?");
		if (!pw)
			snprintf(owner, sizeof(owner), "%u", (unsigned)uid);
		printf("%-16s  %-20s  %-4s  %10s  %-8s  %s%s\n",
		       json_string_value(json_object_get(e, "id")), ts,
		       json_string_value(json_object_get(e, "type")),
		       admin_bytes(json_integer_value(json_object_get(e, "size")), sz), owner,
		       json_string_value(json_object_get(e, "path")),
		       json_is_true(json_object_get(e, "present")) ? "" : "  (data missing)");
	}
	char b[32], r[32];
	int64_t ret = (int64_t)json_integer_value(json_object_get(resp, "retention_us"));
	printf("%zu entries, %s in trash", json_array_size(arr),
	       admin_bytes(json_integer_value(json_object_get(resp, "bytes")), b));
	if (ret > 0)
		printf(", retention %s", st_dur_format(ret, r));
	printf("\n");
}

static int cmd_list(const struct admin_target *t, int64_t uid, int json)
{
	json_t *resp;
	if (t->live) {
		json_t *req = json_pack("{s:s}", "op", "trash_list");
		if (uid >= 0 || getuid() != 0)
			json_object_set_new(req, "uid", json_integer(uid >= 0 ? uid : getuid()));
		resp = admin_call(t, req, NULL);
		json_decref(req);
		if (!resp)
			return 1;
	} else {
		struct offline o;
		if (offline_open(t, &o))
			return 1;
		struct fs_trash_list l;
		struct st_error err = { 0 };
		int rc = fs_trash_list(&o.trash, uid, &l, &err);
		offline_close(&o);
		if (rc) {
			fprintf(stderr, "strata-admin: %s\n", err.msg);
			return 1;
		}
		json_t *arr = json_array();
		for (size_t i = 0; i < l.n; i++)
			json_array_append_new(arr, fs_trash_entry_json(&l.v[i]));
		resp = json_pack("{s:b,s:o,s:I,s:I}", "ok", 1, "entries", arr, "bytes",
				 (json_int_t)l.bytes, "retention_us", (json_int_t)0);
		fs_trash_list_release(&l);
	}
	if (json) {
		json_dumpf(resp, stdout, JSON_COMPACT);
		printf("\n");
	} else {
		print_entries(resp);
	}
	json_decref(resp);
	return 0;
}

/* A PATH under the mount point becomes relative to the mount root; others are taken as
 * already relative to it ("/a/b" means MOUNT/a/b). */
static const char *mount_rel(const struct admin_target *t, const char *p)
{
	size_t ml = strlen(t->mnt);
	if (ml && !strncmp(p, t->mnt, ml) && (p[ml] == '/' || !p[ml]))
		return p[ml] ? p + ml : "/";
	return p;
}

struct offline_restore {
	int n;
	json_t *arr;
};

static void offline_cb(void *arg, const struct fs_trash_rec *rec, const char *dest, int dfd,
		       const char *name, int rc)
{
	(void)dfd;
	(void)name;
	struct offline_restore *r = arg;
	json_array_append_new(r->arr, json_pack("{s:s,s:s,s:s,s:i,s:s}", "id", rec->id, "path",
						rec->path, "dest", dest, "errno",
						rc < 0 && rc > -4096 ? -rc : 0, "error",
						rc ? st_strerror(rc) : ""));
}

static int cmd_restore(const struct admin_target *t, const char *what, const char *to,
		       int overwrite, int json)
{
	json_t *resp;
	/* not copied: paths of any length (deep trees) */
	const char *w = mount_rel(t, what), *d = to ? mount_rel(t, to) : NULL;
	if (t->live) {
		json_t *req = json_pack("{s:s,s:s,s:b}", "op", "trash_restore", "what", w,
					"overwrite", overwrite);
		if (to)
			json_object_set_new(req, "to", json_string(d));
		resp = admin_call(t, req, NULL);
		json_decref(req);
		if (!resp)
			return 1;
	} else {
		struct offline o;
		if (offline_open(t, &o))
			return 1;
		struct fs_caller c = self_caller();
		struct offline_restore r = { .arr = json_array() };
		struct st_error err = { 0 };
		int n = fs_trash_restore(&o.trash, w, to ? d : NULL,
					 overwrite ? FS_RESTORE_OVERWRITE : 0, &c, offline_cb, &r,
					 &err);
		offline_close(&o);
		if (n < 0) {
			fprintf(stderr, "strata-admin: %s\n", err.msg);
			json_decref(r.arr);
			return 1;
		}
		resp = json_pack("{s:b,s:i,s:o}", "ok", 1, "restored", n, "entries", r.arr);
	}
	if (json) {
		json_dumpf(resp, stdout, JSON_COMPACT);
		printf("\n");
	} else {
		json_t *e;
		size_t i;
		json_array_foreach(json_object_get(resp, "entries"), i, e) {
			const char *er = json_string_value(json_object_get(e, "error"));
			printf("%s %s -> /%s%s%s\n", er && *er ? "skipped" : "restored",
			       json_string_value(json_object_get(e, "path")),
			       json_string_value(json_object_get(e, "dest")), er && *er ? ": " : "",
			       er ? er : "");
		}
	}
	json_decref(resp);
	return 0;
}

static int cmd_purge(const struct admin_target *t, char **ids, int nids, int64_t older,
		     int all)
{
	int n;
	if (t->live) {
		json_t *arr = json_array();
		for (int i = 0; i < nids; i++)
			json_array_append_new(arr, json_string(ids[i]));
		json_t *req = json_pack("{s:s,s:o,s:I,s:b}", "op", "trash_purge", "ids", arr,
					"older_than_us", (json_int_t)older, "all", all);
		json_t *resp = admin_call(t, req, NULL);
		json_decref(req);
		if (!resp)
			return 1;
		n = (int)json_integer_value(json_object_get(resp, "purged"));
		json_decref(resp);
	} else {
		struct offline o;
		if (offline_open(t, &o))
			return 1;
		struct fs_caller c = self_caller();
		struct st_error err = { 0 };
		n = fs_trash_purge(&o.trash, (const char *const *)ids, (size_t)nids, older, &c, all,
				   &err);
		if (n >= 0)
			fs_rmr_drain(&o.rmr, NULL, NULL);
		offline_close(&o);
		if (n < 0) {
			fprintf(stderr, "strata-admin: %s\n", err.msg);
			return 1;
		}
	}
	printf("purged %d entr%s\n", n, n == 1 ? "y" : "ies");
	return 0;
}

int admin_trash(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: strata-admin trash list|restore|purge ...\n");
		return 2;
	}
	const char *sub = argv[1];
	const char *mount = NULL, *backing = NULL, *to = NULL;
	int json = 0, all = 0, overwrite = 0;
	int64_t uid = -1, older = 0;
	static const struct option lo[] = {
		{ "mount", required_argument, 0, 'm' }, { "backing", required_argument, 0, 'b' },
		{ "user", required_argument, 0, 'u' },  { "json", no_argument, 0, 'j' },
		{ "to", required_argument, 0, 't' },    { "older-than", required_argument, 0, 'o' },
		{ "all-users", no_argument, 0, 'a' },   { "overwrite", no_argument, 0, 'w' },
		{ 0, 0, 0, 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc - 1, argv + 1, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mount = optarg; break;
		case 'b': backing = optarg; break;
		case 'j': json = 1; break;
		case 't': to = optarg; break;
		case 'a': all = 1; break;
		case 'w': overwrite = 1; break;
		case 'u':
			if (parse_user(optarg, &uid))
				return 2;
			break;
		case 'o':
			if (st_dur_parse(optarg, &older) != 0) {
				fprintf(stderr, "strata-admin: bad duration '%s'\n", optarg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	char **rest = argv + 1 + optind;
	int nrest = argc - 1 - optind;
	struct admin_target t;
	if (!strcmp(sub, "list")) {
		if (nrest || admin_target_resolve(mount, backing, NULL, &t))
			return nrest ? 2 : 1;
		if (uid >= 0 && getuid() != 0 && uid != (int64_t)getuid()) {
			fprintf(stderr, "strata-admin: only root may list other users' trash\n");
			return 1;
		}
		return cmd_list(&t, uid, json);
	}
	if (!strcmp(sub, "restore")) {
		if (nrest != 1) {
			fprintf(stderr, "usage: strata-admin trash restore ID|PATH [--to PATH]\n");
			return 2;
		}
		if (admin_target_resolve(mount, backing, NULL, &t))
			return 1;
		return cmd_restore(&t, rest[0], to, overwrite, json);
	}
	if (!strcmp(sub, "purge")) {
		if (admin_target_resolve(mount, backing, NULL, &t))
			return 1;
		return cmd_purge(&t, rest, nrest, older, all);
	}
	fprintf(stderr, "strata-admin: unknown trash command '%s'\n", sub);
	return 2;
}
