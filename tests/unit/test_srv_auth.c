/* Authentication on both io backends: with --auth-token-file a connection must present the
 * token first; a missing or wrong token is refused and the connection closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_srv_harness.h"

static void run_auth(const char *io)
{
	char tokfile[] = "/tmp/strata-token-XXXXXX";
	int tfd = mkstemp(tokfile);
	assert_true(tfd >= 0);
	assert_int_equal(write(tfd, "s3cret-token\n", 13), 13);
	close(tfd);
	struct srvh h;
	const char *args[] = {"--auth-token-file", tokfile, NULL};
	srvh_start(&h, io, args);
	struct strata_error e = {0};

	/* right token: served */
	strata *c = srvh_client(&h, "s3cret-token");
	assert_int_equal(strata_ping(c, &e), 0);
	char *json;
	assert_int_equal(strata_status(c, &json, &e), 0);
	assert_non_null(strstr(json, "\"auth\":true"));
	free(json);
	strata_close(c);

	/* wrong token: refused at connect */
	struct strata_connect_opts o;
	strata_connect_opts_init(&o);
	o.token = "wrong";
	assert_int_equal(strata_connect(h.addr, &o, &c, &e), STRATA_EAUTH);
	assert_non_null(strstr(e.msg, "authentication"));
	/* a prefix of the right token is wrong too */
	o.token = "s3cret";
	assert_int_equal(strata_connect(h.addr, &o, &c, &e), STRATA_EAUTH);

	/* no token: the first request is refused and the connection closed */
	strata_connect_opts_init(&o);
	o.reconnect = 0;
	assert_int_equal(strata_connect(h.addr, &o, &c, &e), 0);
	assert_int_equal(strata_ping(c, &e), STRATA_EAUTH);
	assert_non_null(strstr(e.msg, "authentication required"));
	strata_close(c);

	/* raw: a request before auth gets EAUTH, then EOF */
	int fd = srvh_raw(&h);
	Strata__Response *r = srvh_ping(fd, 9);
	assert_non_null(r);
	assert_int_equal(r->id, 9);
	assert_int_equal(r->code, STRATA_EAUTH);
	strata__response__free_unpacked(r, NULL);
	assert_true(srvh_wait_closed(fd, 3000));
	close(fd);

	int st;
	char *m = srvh_http_get(&h, "/metrics", &st);
	char *p = strstr(m, "\nstrata_auth_failures_total ");
	assert_non_null(p);
	assert_true(atol(p + 28) >= 4);
	free(m);
	srvh_stop(&h);
	unlink(tokfile);
}

static void test_auth_uring(void **state)
{
	(void)state;
	run_auth("uring");
}

static void test_auth_epoll(void **state)
{
	(void)state;
	run_auth("epoll");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_uring),
		cmocka_unit_test(test_auth_epoll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
