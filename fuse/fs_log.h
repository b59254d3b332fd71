/* stratafs's log destination (fs_log.c): --log-file PATH, or syslog when daemonised. */
#ifndef FS_LOG_H
#define FS_LOG_H

#include "common/st_err.h"

/* Opens --log-file (path may be NULL: none) before daemonising. Returns 0 or ST_EIO. */
int fs_log_open(const char *path, struct st_error *err);
/* After daemonising: points stderr at the log file, or (daemonised without one) at the
 * syslog forwarder. Returns 0 or ST_EIO. */
int fs_log_redirect(int daemonised, struct st_error *err);
/* Flushes the syslog forwarder and stops it (stderr becomes /dev/null). */
void fs_log_close(void);
/* Syslog priority of an st_log line, *msg pointing past its timestamp and level. */
int fs_log_line_priority(const char *line, const char **msg);

#endif
