/* stratafs option parsing: defaults, every option, and bad numbers refused with a message
 * naming the option (no atoi: "12x", "0", "-1", overflow and NaN are errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fuse/fs_config.h"
#include "fuse/fs_log.h"

#include <syslog.h>

static int parse(struct fs_config *c, struct st_error *err, ...)
{
	char *argv[32] = { "stratafs" };
	int argc = 1;
	va_list ap;
	va_start(ap, err);
	for (char *a; argc < 31 && (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	fs_config_defaults(c);
	memset(err, 0, sizeof(*err));
	FILE *out = fopen("/dev/null", "w");
	int rc = fs_config_parse(c, argc, argv, out, err);
	fclose(out);
	return rc;
}

static void test_defaults(void **state)
{
	(void)state;
	struct fs_config c;
	struct st_error err;
	assert_int_equal(parse(&c, &err, "b", "m", NULL), 0);
	assert_string_equal(c.backing, "b");
	assert_string_equal(c.mountpoint, "m");
	assert_int_equal(c.threads, 8);
	assert_int_equal(c.rmr_threads, 2);
	assert_true(c.retention_us == 7LL * 86400 * 1000000);
	assert_true(c.attr_timeout < 0);
	assert_int_equal(c.passthrough, 1);
	assert_int_equal(c.max_inode_fds, -1);
	assert_int_equal(c.foreground, 0);
}

static void test_all_options(void **state)
{
	(void)state;
	struct fs_config c;
	struct st_error err;
	assert_int_equal(parse(&c, &err, "-d", "-o", "allow_other", "-o", "ro",
			       "--trash-retention", "12h", "--threads", "16", "--attr-timeout", "2.5",
			       "--writeback-cache", "--no-passthrough", "--rmr-threads=4",
			       "--rmr-rate", "1000", "--max-inode-fds", "0", "B", "M", NULL),
			 0);
	assert_int_equal(c.debug, 1);
	assert_int_equal(c.foreground, 1);
	assert_string_equal(c.user_opts, "allow_other,ro");
	assert_true(c.retention_us == 12LL * 3600 * 1000000);
	assert_int_equal(c.threads, 16);
	assert_true(c.attr_timeout == 2.5);
	assert_int_equal(c.writeback, 1);
	assert_int_equal(c.passthrough, 0);
	assert_int_equal(c.rmr_threads, 4);
	assert_true(c.rmr_rate == 1000);
	assert_int_equal(c.max_inode_fds, 0);
	assert_int_equal(parse(&c, &err, "--help", NULL), 1);
}

static void bad(const char *opt, const char *val)
{
	struct fs_config c;
	struct st_error err;
	assert_int_equal(parse(&c, &err, opt, val, "b", "m", NULL), ST_EINVAL);
	assert_non_null(strstr(err.msg, opt));
}

static void test_bad_numbers(void **state)
{
	(void)state;
	bad("--threads", "12x");
	bad("--threads", "0");
	bad("--threads", "");
	bad("--threads", "99999999999999999999");
	bad("--rmr-threads", "-1");
	bad("--rmr-rate", "-5");
	bad("--rmr-rate", "1e3");
	bad("--max-inode-fds", "-2");
	bad("--attr-timeout", "nan");
	bad("--attr-timeout", "-1");
	bad("--attr-timeout", "1s");
	bad("--trash-retention", "soon");
	bad("--metrics", "127.0.0.1");
	bad("--metrics", "127.0.0.1:65536");
	bad("--metrics", "127.0.0.1:-1");
	bad("--metrics", ":9100");
	bad("--metrics", "localhost:http");
	bad("--log-file", "");
}

static void test_metrics_log(void **state)
{
	(void)state;
	struct fs_config c;
	struct st_error err;
	assert_int_equal(parse(&c, &err, "b", "m", NULL), 0);
	assert_null(c.metrics);
	assert_int_equal(c.killpriv_v2, 1);
	assert_int_equal(parse(&c, &err, "--no-killpriv-v2", "b", "m", NULL), 0);
	assert_int_equal(c.killpriv_v2, 0);
	assert_int_equal(c.lifo_loop, 1);
	assert_int_equal(parse(&c, &err, "b", "--libfuse-loop", "m", NULL), 0);
	assert_int_equal(c.lifo_loop, 0);
	assert_null(c.log_file);
	assert_int_equal(parse(&c, &err, "--metrics", "127.0.0.1:9100", "--log-file", "/x/l", "b",
			       "m", NULL), 0);
	assert_string_equal(c.metrics, "127.0.0.1:9100");
	assert_string_equal(c.log_file, "/x/l");
	char host[64];
	int port;
	assert_int_equal(fs_config_hostport("[::1]:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(fs_config_hostport("0.0.0.0:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 65535);
	assert_int_equal(fs_config_hostport("averyveryverylonghostname:1", host, 8, &port), -1);
}

/* syslog priorities of st_log lines; anything else is a notice, passed whole */
static void test_log_priority(void **state)
{
	(void)state;
	const char *msg;
	assert_int_equal(fs_log_line_priority("2026-11-30T10:00:00.123Z WARN disk slow", &msg),
			 LOG_WARNING);
	assert_string_equal(msg, "disk slow");
	assert_int_equal(fs_log_line_priority("2026-11-30T10:00:00.123Z ERROR boom", &msg), LOG_ERR);
	assert_string_equal(msg, "boom");
	assert_int_equal(fs_log_line_priority("2026-11-30T10:00:00.123Z INFO mounted", &msg),
			 LOG_INFO);
	assert_int_equal(fs_log_line_priority("2026-11-30T10:00:00.123Z DEBUG x", &msg), LOG_DEBUG);
	assert_int_equal(fs_log_line_priority("stratafs: journal: bad", &msg), LOG_NOTICE);
	assert_string_equal(msg, "stratafs: journal: bad");
	assert_int_equal(fs_log_line_priority("2026-11-30T10:00:00.123Z NOPE x", &msg), LOG_NOTICE);
	assert_int_equal(fs_log_line_priority("", &msg), LOG_NOTICE);
}

static void test_bad_shapes(void **state)
{
	(void)state;
	struct fs_config c;
	struct st_error err;
	assert_int_equal(parse(&c, &err, "b", NULL), ST_EINVAL);
	assert_int_equal(parse(&c, &err, "b", "m", "x", NULL), ST_EINVAL);
	assert_int_equal(parse(&c, &err, "--bogus", "b", "m", NULL), ST_EINVAL);
	assert_non_null(strstr(err.msg, "--bogus"));
	assert_int_equal(parse(&c, &err, "b", "m", "--threads", NULL), ST_EINVAL);
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(parse(&c, &err, "-o", big, "b", "m", NULL), ST_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_bad_shapes),
		cmocka_unit_test(test_metrics_log),
		cmocka_unit_test(test_log_priority),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
