/* Where stratafs logs once it runs in the background. fuse_daemonize points stderr at
 * /dev/null, which used to drop every warning of a daemonised mount. Now stderr (st_log and
 * every fprintf(stderr), libfuse's included) goes to --log-file PATH (appended), or, without
 * it, through a pipe to a thread that hands each line to syslog(3) with the level st_log
 * wrote into it. In the foreground stderr stays where it is unless --log-file is given. */
#include "fuse/fs_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static struct {
	int file_fd;        /* --log-file, opened before daemonising (relative paths) */
	int pipe_rd;        /* syslog forwarder's end */
	pthread_t thread;
	int running;
} lg = { .file_fd = -1, .pipe_rd = -1 };

int fs_log_open(const char *path, struct st_error *err)
{
	if (!path)
		return 0;
	lg.file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (lg.file_fd < 0)
		return st_error_set(err, ST_EIO, "--log-file %s: %s", path, strerror(errno));
	return 0;
}

/* "2026-11-30T10:00:00.123Z WARN msg" -> priority and the message after the level;
 * other lines (libfuse, startup messages) are notices, kept whole. */
int fs_log_line_priority(const char *line, const char **msg)
{
	static const struct {
		const char *name;
		int prio;
	} lv[] = { { "DEBUG ", LOG_DEBUG }, { "INFO ", LOG_INFO }, { "WARN ", LOG_WARNING },
		   { "ERROR ", LOG_ERR } };
	*msg = line;
	const char *sp = strchr(line, ' ');
	if (!sp || sp - line != 24 || line[23] != 'Z' || line[10] != 'T')
		return LOG_NOTICE;
	for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++)
		if (!strncmp(sp + 1, lv[i].name, strlen(lv[i].name))) {
			*msg = sp + 1 + strlen(lv[i].name);
			return lv[i].prio;
		}
	return LOG_NOTICE;
}

static void *forward_main(void *arg)
{
	(void)arg;
	FILE *f = fdopen(lg.pipe_rd, "r");
	if (!f)
		return NULL;
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		const char *msg;
		int prio = fs_log_line_priority(line, &msg);
		syslog(prio, "%s", msg);
	}
	fclose(f);
	closelog();
	return NULL;
}

int fs_log_redirect(int daemonised, struct st_error *err)
{
	if (lg.file_fd >= 0) {
		if (dup2(lg.file_fd, STDERR_FILENO) < 0)
			return st_error_set(err, ST_EIO, "log file: %s", strerror(errno));
		close(lg.file_fd);
		lg.file_fd = -1;
		return 0;
	}
	if (!daemonised)
		return 0;
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return st_error_set(err, ST_EIO, "log pipe: %s", strerror(errno));
	openlog("stratafs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	lg.pipe_rd = p[0];
	int e = dup2(p[1], STDERR_FILENO) < 0 ? errno : 0;
	close(p[1]);
	if (!e)
		e = pthread_create(&lg.thread, NULL, forward_main, NULL);
	if (e) {
		close(p[0]);
		lg.pipe_rd = -1;
		return st_error_set(err, ST_EIO, "syslog forwarder: %s", strerror(e));
	}
	lg.running = 1;
	return 0;
}

void fs_log_close(void)
{
	if (!lg.running)
		return;
	/* the forwarder sees end of file once no stderr refers to the pipe */
	int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, STDERR_FILENO);
		close(nul);
	}
	pthread_join(lg.thread, NULL);
	lg.running = 0;
}
