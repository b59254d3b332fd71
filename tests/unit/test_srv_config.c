/* stratad configuration: defaults, flags, an INI file overridden by flags, bad values with
 * clear messages, and the auth token file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "server/srv.h"

static int parse(struct srv_config *c, struct st_error *e, int argc, char **argv)
{
	srv_config_defaults(c);
	return srv_config_parse(c, argc, argv, e);
}

static void test_defaults(void **state)
{
	(void)state;
	struct srv_config c;
	struct st_error e = {0};
	char *argv[] = {"stratad", NULL};
	assert_int_equal(parse(&c, &e, 1, argv), 0);
	assert_string_equal(c.data_dir, "./data");
	assert_string_equal(c.listen, "127.0.0.1:7070");
	assert_string_equal(c.admin, "127.0.0.1:7071");
	assert_int_equal(c.io, SRV_IO_AUTO);
	assert_int_equal(c.sync, KV_SYNC_BATCH);
	assert_null(c.token);
	assert_true(c.threads >= 1 && c.workers >= 1);
}

static void test_flags_and_ini(void **state)
{
	(void)state;
	char ini[] = "/tmp/strata-cfg-XXXXXX";
	int fd = mkstemp(ini);
	const char *text = "[server]\nlisten = 127.0.0.1:9000\nsync = always\nmax_conns = 5\n"
			   "idle-timeout = 2m\nmax-frame = 2m\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct srv_config c;
	struct st_error e = {0};
	char *argv[] = {"stratad", "--io", "epoll", "--config", ini, "--sync", "none",
			"--threads", "3", NULL};
	assert_int_equal(parse(&c, &e, 9, argv), 0);
	assert_string_equal(c.listen, "127.0.0.1:9000");
	assert_int_equal(c.sync, KV_SYNC_NONE); /* the flag wins over the file */
	assert_int_equal(c.max_conns, 5);
	assert_int_equal(c.io, SRV_IO_EPOLL);
	assert_int_equal(c.threads, 3);
	assert_true(c.idle_timeout_us == 120000000LL);
	assert_int_equal(c.max_frame, 2u << 20);
	unlink(ini);
}

static void test_bad_values(void **state)
{
	(void)state;
	struct srv_config c;
	struct st_error e = {0};
	char *a1[] = {"stratad", "--sync", "sometimes", NULL};
	assert_int_equal(parse(&c, &e, 3, a1), ST_EINVAL);
	assert_non_null(strstr(e.msg, "sometimes"));
	char *a2[] = {"stratad", "--threads", "0", NULL};
	assert_int_equal(parse(&c, &e, 3, a2), ST_EINVAL);
	char *a3[] = {"stratad", "--io", "kqueue", NULL};
	assert_int_equal(parse(&c, &e, 3, a3), ST_EINVAL);
	char *a4[] = {"stratad", "--config", "/nonexistent/x.ini", NULL};
	assert_int_equal(parse(&c, &e, 3, a4), ST_EINVAL);
	char *a5[] = {"stratad", "extra", NULL};
	assert_int_equal(parse(&c, &e, 2, a5), ST_EINVAL);
	char *a7[] = {"stratad", "--net-slice-us", "50", NULL}; /* under the kernel's 0.1 ms */
	assert_int_equal(parse(&c, &e, 3, a7), ST_EINVAL);
	char *a8[] = {"stratad", "--net-slice-us", "250", NULL};
	assert_int_equal(parse(&c, &e, 3, a8), 0);
	assert_int_equal(c.net_slice_us, 250);
	char *a6[] = {"stratad", "--auth-token-file", "/nonexistent/tok", NULL};
	assert_true(parse(&c, &e, 3, a6) < 0);
	assert_non_null(strstr(e.msg, "token file"));
	char host[64];
	int port;
	assert_int_equal(srv_parse_addr("[::1]:80", host, sizeof(host), &port, &e), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 80);
	assert_int_equal(srv_parse_addr(":7070", host, sizeof(host), &port, &e), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(srv_parse_addr("host", host, sizeof(host), &port, &e), ST_EINVAL);
	assert_int_equal(srv_parse_addr("h:70000", host, sizeof(host), &port, &e), ST_EINVAL);
}

static void test_token_file(void **state)
{
	(void)state;
	char tf[] = "/tmp/strata-tok-XXXXXX";
	int fd = mkstemp(tf);
	assert_int_equal(write(fd, "abc def\n\n", 9), 9);
	close(fd);
	struct srv_config c;
	struct st_error e = {0};
	char *argv[] = {"stratad", "--auth-token-file", tf, NULL};
	assert_int_equal(parse(&c, &e, 3, argv), 0);
	assert_string_equal(c.token, "abc def"); /* trailing newlines are not part of it */
	assert_int_equal(c.token_len, 7);
	srv_config_release(&c);
	fd = open(tf, O_WRONLY | O_TRUNC);
	close(fd);
	assert_int_equal(parse(&c, &e, 3, argv), ST_EINVAL);
	assert_non_null(strstr(e.msg, "empty"));
	unlink(tf);
}

/* --resp (off by default, "off" turns it off) and --resp-writes (0 by default, 0 or 1). */
static void test_resp_flags(void **state)
{
	(void)state;
	struct srv_config c;
	struct st_error e = {0};
	char *argv0[] = {"stratad", NULL};
	assert_int_equal(parse(&c, &e, 1, argv0), 0);
	assert_string_equal(c.resp, "");
	assert_int_equal(c.resp_writes, 0);
	char *argv1[] = {"stratad", "--resp", "127.0.0.1:7072", "--resp-writes", "1", NULL};
	assert_int_equal(parse(&c, &e, 5, argv1), 0);
	assert_string_equal(c.resp, "127.0.0.1:7072");
	assert_int_equal(c.resp_writes, 1);
	char *argv2[] = {"stratad", "--resp", "off", NULL};
	assert_int_equal(parse(&c, &e, 3, argv2), 0);
	assert_string_equal(c.resp, "");
	char *argv3[] = {"stratad", "--resp-writes", "2", NULL};
	assert_int_equal(parse(&c, &e, 3, argv3), ST_EINVAL);
	assert_non_null(strstr(e.msg, "resp-writes"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_flags_and_ini),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_resp_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
