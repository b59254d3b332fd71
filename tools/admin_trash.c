/* strata-admin trash list|restore|purge: through a live mount's control channel, or
 * offline on a backing directory (root only, and only when no stratafs serves it). */
#include "tools/admin.h"
#include "fuse/fs_cmd.h"
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

/* The offline transport: runs req through fs_cmd_run on o, reclaims what a purge queued
 * (no stratafs runs to do it) and closes o. Returns the ok reply or NULL (error printed). */
static json_t *offline_run(struct offline *o, json_t *req)
{
	struct fs_caller c = self_caller();
	const struct fs_cmd_ctx ctx = { .bfd = o->bfd, .trash = &o->trash, .rmr = &o->rmr };
	json_t *resp = fs_cmd_run(&ctx, &c, req);
	int ok = json_is_true(json_object_get(resp, "ok"));
	if (ok && !strcmp(json_string_value(json_object_get(req, "op")), "trash_purge"))
		fs_rmr_drain(&o->rmr, NULL, NULL);
	offline_close(o);
	if (!ok) {
		fprintf(stderr, "strata-admin: %s\n",
			json_string_value(json_object_get(resp, "error")));
		json_decref(resp);
		return NULL;
	}
	return resp;
}

/* The only difference between a live mount and a backing directory: how req gets to
 * fs_cmd_run. Returns the ok reply or NULL (error printed). */
static json_t *transport_call(const struct admin_target *t, json_t *req)
{
	if (t->live)
		return admin_call(t, req, NULL);
	struct offline o;
	return offline_open(t, &o) ? NULL : offline_run(&o, req);
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
		int64_t folded = (int64_t)json_integer_value(json_object_get(e, "folded"));
		char inside[64] = "";
		if (folded)
			snprintf(inside, sizeof(inside), "  (+%lld inside)", (long long)folded);
		printf("%-16s  %-20s  %-4s  %10s  %-8s  %s%s%s\n",
		       json_string_value(json_object_get(e, "id")), ts,
		       json_string_value(json_object_get(e, "type")),
		       admin_bytes(json_integer_value(json_object_get(e, "size")) +
					   json_integer_value(json_object_get(e, "folded_bytes")),
				   sz),
		       owner, json_string_value(json_object_get(e, "path")), inside,
		       json_is_true(json_object_get(e, "present")) ? "" : "  (data missing)");
	}
	char b[32], r[32];
	int64_t ret = (int64_t)json_integer_value(json_object_get(resp, "retention_us"));
	size_t shown = json_array_size(arr);
	int64_t objects = (int64_t)json_integer_value(json_object_get(resp, "objects"));
	printf("%zu entr%s", shown, shown == 1 ? "y" : "ies");
	if (objects > (int64_t)shown)
		printf(" (%lld deleted objects; --flat lists each)", (long long)objects);
	printf(", %s in trash",
	       admin_bytes(json_integer_value(json_object_get(resp, "bytes")), b));
	if (ret > 0)
		printf(", retention %s", st_dur_format(ret, r));
	printf("\n");
}

static const char *mount_rel(const struct admin_target *t, const char *p);

static int cmd_list(const struct admin_target *t, int64_t uid, const char *path, int flat,
		    int json)
{
	json_t *req = json_pack("{s:s,s:b}", "op", "trash_list", "fold", !flat);
	if (path)
		json_object_set_new(req, "path", json_string(mount_rel(t, path)));
	if (uid >= 0 || getuid() != 0)
		json_object_set_new(req, "uid", json_integer(uid >= 0 ? uid : getuid()));
	json_t *resp = transport_call(t, req);
	json_decref(req);
	if (!resp)
		return 1;
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

static int cmd_restore(const struct admin_target *t, const char *what, const char *to,
		       int overwrite, int json)
{
	json_t *resp;
	/* not copied: paths of any length (deep trees) */
	const char *w = mount_rel(t, what), *d = to ? mount_rel(t, to) : NULL;
	json_t *req = json_pack("{s:s,s:s,s:b}", "op", "trash_restore", "what", w, "overwrite",
				overwrite);
	if (to)
		json_object_set_new(req, "to", json_string(d));
	resp = transport_call(t, req);
	json_decref(req);
	if (!resp)
		return 1;
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
	json_t *arr = json_array();
	for (int i = 0; i < nids; i++)
		json_array_append_new(arr, json_string(ids[i]));
	json_t *req = json_pack("{s:s,s:o,s:I,s:b}", "op", "trash_purge", "ids", arr,
				"older_than_us", (json_int_t)older, "all", all);
	json_t *resp;
	resp = transport_call(t, req);
	json_decref(req);
	if (!resp)
		return 1;
	int n = (int)json_integer_value(json_object_get(resp, "purged"));
	json_decref(resp);
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
	int json = 0, all = 0, overwrite = 0, flat = 0;
	int64_t uid = -1, older = 0;
	static const struct option lo[] = {
		{ "mount", required_argument, 0, 'm' }, { "backing", required_argument, 0, 'b' },
		{ "user", required_argument, 0, 'u' },  { "json", no_argument, 0, 'j' },
		{ "to", required_argument, 0, 't' },    { "older-than", required_argument, 0, 'o' },
		{ "all-users", no_argument, 0, 'a' },   { "overwrite", no_argument, 0, 'w' },
		{ "flat", no_argument, 0, 'f' },        { 0, 0, 0, 0 },
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
		case 'f': flat = 1; break;
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
		if (nrest > 1) {
			fprintf(stderr, "usage: strata-admin trash list [--mount M | --backing DIR] "
					"[--user U] [--flat] [--json] [PATH]\n");
			return 2;
		}
		if (admin_target_resolve(mount, backing, NULL, &t))
			return 1;
		if (uid >= 0 && getuid() != 0 && uid != (int64_t)getuid()) {
			fprintf(stderr, "strata-admin: only root may list other users' trash\n");
			return 1;
		}
		return cmd_list(&t, uid, nrest ? rest[0] : NULL, flat, json);
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
