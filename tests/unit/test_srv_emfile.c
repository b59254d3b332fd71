/* Out of file descriptors: with a low RLIMIT_NOFILE, connections past the limit wait in the
 * listen backlog while the server backs off (no accept spin), and are served once others
 * close. Both io backends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_srv_harness.h"

static double cpu_seconds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	unsigned long ut = 0, st = 0;
	int ok = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	fclose(f);
	return ok == 2 ? (double)(ut + st) / (double)sysconf(_SC_CLK_TCK) : -1;
}

static void run(const char *io)
{
	struct srvh h;
	memset(&h, 0, sizeof(h));
	snprintf(h.dir, sizeof(h.dir), "/tmp/strata-emfile-%d-XXXXXX", (int)getpid());
	assert_non_null(mkdtemp(h.dir));
	snprintf(h.io, sizeof(h.io), "%s", io);
	h.nofile = 160;
	srvh_launch(&h);
	enum { N = 220 };
	static int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = srvh_raw(&h);
	uint8_t *f;
	size_t n = srvh_ping_frame(1, &f);
	for (int i = 0; i < N; i++)
		srvh_write_all(fds[i], f, n);
	/* Collect answers for a while: the connections the server could accept are answered. */
	static char got[N];
	memset(got, 0, sizeof(got));
	int served = 0, first_unserved = -1;
	int64_t until = srvh_ms() + 1500;
	while (srvh_ms() < until) {
		static struct pollfd p[N];
		for (int i = 0; i < N; i++)
			p[i] = (struct pollfd){.fd = got[i] ? -1 : fds[i], .events = POLLIN};
		if (poll(p, N, 100) <= 0)
			continue;
		for (int i = 0; i < N; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			Strata__Response *r = srvh_read_resp(fds[i], 1000, NULL);
			assert_non_null(r);
			strata__response__free_unpacked(r, NULL);
			got[i] = 1;
			served++;
		}
	}
	for (int i = 0; i < N && first_unserved < 0; i++)
		if (!got[i])
			first_unserved = i;
	assert_true(served > 0);
	assert_true(first_unserved >= 0); /* the limit was really hit */
	/* Stuck at the limit: the server must not spin on accept. */
	double c0 = cpu_seconds(h.pid);
	usleep(1000000);
	double c1 = cpu_seconds(h.pid);
	fprintf(stderr, "%s: %d of %d served at the limit; server cpu while waiting %.2f s/s\n", io,
		served, N, c1 - c0);
	assert_true(c1 - c0 < 0.5);
	/* Free descriptors: the waiting connections get accepted and answered. */
	for (int i = 0; i < N; i++)
		if (got[i]) {
			close(fds[i]);
			fds[i] = -1;
		}
	Strata__Response *r = srvh_read_resp(fds[first_unserved], 5000, NULL);
	assert_non_null(r);
	assert_int_equal(r->id, 1);
	strata__response__free_unpacked(r, NULL);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(f);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "grep -q 'retrying in 100 ms' %s/log", h.dir);
	assert_int_equal(system(cmd), 0);
	srvh_stop(&h);
}

static void test_emfile_uring(void **state)
{
	(void)state;
	run("uring");
}

static void test_emfile_epoll(void **state)
{
	(void)state;
	run("epoll");
}

int main(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 1024 && rl.rlim_max >= 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_emfile_uring),
		cmocka_unit_test(test_emfile_epoll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
