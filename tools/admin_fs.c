/* strata-admin fs status: how a live stratafs mount runs (passthrough, caches) and how many
 * requests of each kind the kernel has sent it. */
#include "tools/admin.h"

#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void print_status(json_t *r)
{
	printf("mount        %s\n", json_string_value(json_object_get(r, "mount")));
	printf("backing      %s\n", json_string_value(json_object_get(r, "backing")));
	printf("pid          %d\n", (int)json_integer_value(json_object_get(r, "pid")));
	printf("passthrough  %s\n", json_is_true(json_object_get(r, "passthrough")) ? "on" : "off");
	printf("writeback    %s\n",
	       json_is_true(json_object_get(r, "writeback_cache")) ? "on" : "off");
	printf("attr timeout %.3g s\n", json_real_value(json_object_get(r, "attr_timeout")));
	printf("killpriv v2  %s\n", json_is_true(json_object_get(r, "killpriv_v2"))
					 ? "on (the daemon clears setuid/setgid)"
					 : "off (the kernel clears setuid/setgid)");
	const char *maddr = json_string_value(json_object_get(r, "metrics"));
	printf("metrics      %s%s\n", maddr && *maddr ? "http://" : "",
	       maddr && *maddr ? maddr : "off (--metrics HOST:PORT)");
	json_t *j = json_object_get(r, "journal");
	if (j) {
		char b1[32], b2[32], b3[32], b4[32];
		int64_t used = (int64_t)json_integer_value(json_object_get(j, "used_bytes"));
		int64_t cap = (int64_t)json_integer_value(json_object_get(j, "capacity_bytes"));
		printf("journal      %s of %s used (%.0f%%), %lld/%lld segments\n",
		       admin_bytes(used, b1), admin_bytes(cap, b2),
		       cap > 0 ? 100.0 * (double)used / (double)cap : 0.0,
		       (long long)json_integer_value(json_object_get(j, "segments_used")),
		       (long long)(json_integer_value(json_object_get(j, "segments_used")) +
				   json_integer_value(json_object_get(j, "segments_free"))));
		printf("  dirty      %s, oldest %.1f s\n",
		       admin_bytes(json_integer_value(json_object_get(j, "dirty_bytes")), b3),
		       json_real_value(json_object_get(j, "oldest_dirty_age_s")));
		printf("  writeback  %s/s (last 10 s), %s in total, %lld failed round(s), "
		       "%lld wait(s) for space\n",
		       admin_bytes((int64_t)json_real_value(json_object_get(j, "writeback_bytes_per_s")), b4),
		       admin_bytes(json_integer_value(json_object_get(j, "writeback_bytes")), b1),
		       (long long)json_integer_value(json_object_get(j, "writeback_failures")),
		       (long long)json_integer_value(json_object_get(j, "full_waits")));
		json_t *rp = json_object_get(j, "replay");
		printf("  replay     %lld record(s) at mount, %lld applied, %s, %lld file(s)%s\n",
		       (long long)json_integer_value(json_object_get(rp, "records")),
		       (long long)json_integer_value(json_object_get(rp, "applied")),
		       admin_bytes(json_integer_value(json_object_get(rp, "bytes")), b2),
		       (long long)json_integer_value(json_object_get(rp, "files")),
		       json_is_true(json_object_get(rp, "damaged")) ? ", damaged tail" : "");
	} else {
		printf("journal      off\n");
	}
	printf("requests    ");
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(r, "requests"), k, v)
		printf(" %s=%lld", k, (long long)json_integer_value(v));
	printf("\n");
}

int admin_fs(int argc, char **argv)
{
	const char *mount = NULL;
	int json = 0;
	static const struct option lo[] = {
		{ "mount", required_argument, 0, 'm' },
		{ "json", no_argument, 0, 'j' },
		{ 0, 0, 0, 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mount = optarg; break;
		case 'j': json = 1; break;
		default: return 2;
		}
	}
	if (argc - optind != 1 || strcmp(argv[optind], "status")) {
		fprintf(stderr, "usage: strata-admin fs status [--mount M] [--json]\n");
		return 2;
	}
	struct admin_target t;
	if (admin_target_resolve(mount, NULL, NULL, &t))
		return 1;
	json_t *req = json_pack("{s:s}", "op", "status");
	json_t *resp = admin_call(&t, req, NULL);
	json_decref(req);
	if (!resp)
		return 1;
	if (json) {
		json_object_del(resp, "ok");
		char *s = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%s\n", s);
		free(s);
	} else {
		print_status(resp);
	}
	json_decref(resp);
	return 0;
}
