/* --io auto falls back to epoll when io_uring cannot be set up (simulated with the
 * STRATA_FAULT_NO_URING seam), and --io uring then refuses to start with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_srv_harness.h"

static void test_auto_falls_back(void **state)
{
	(void)state;
	setenv("STRATA_FAULT_NO_URING", "1", 1);
	struct srvh h;
	srvh_start(&h, "auto", NULL);
	unsetenv("STRATA_FAULT_NO_URING");
	strata *c = srvh_client(&h, NULL);
	struct strata_error e = {0};
	char *json;
	assert_int_equal(strata_status(c, &json, &e), 0);
	assert_non_null(strstr(json, "\"io\":\"epoll\""));
	free(json);
	strata_close(c);
	char log[300], cmd[400];
	snprintf(log, sizeof(log), "%s/log", h.dir);
	snprintf(cmd, sizeof(cmd), "grep -q 'falling back to epoll' %s", log);
	assert_int_equal(system(cmd), 0);
	srvh_stop(&h);

	/* Without the fault, auto picks io_uring on this kernel. */
	srvh_start(&h, "auto", NULL);
	c = srvh_client(&h, NULL);
	assert_int_equal(strata_status(c, &json, &e), 0);
	assert_non_null(strstr(json, "\"io\":\"uring\""));
	free(json);
	strata_close(c);
	srvh_stop(&h);
}

static void test_uring_forced_fails(void **state)
{
	(void)state;
	char dir[] = "/tmp/strata-fallback-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cmd[1024];
	const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
	snprintf(cmd, sizeof(cmd),
		 "STRATA_FAULT_NO_URING=1 %s/stratad --data-dir %s/data --listen 127.0.0.1:0 "
		 "--admin off --io uring 2>%s/log; echo $? > %s/rc",
		 bin, dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "grep -qx 1 %s/rc && grep -q io_uring %s/log", dir, dir);
	assert_int_equal(system(cmd), 0);
	srvh_rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auto_falls_back),
		cmocka_unit_test(test_uring_forced_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
