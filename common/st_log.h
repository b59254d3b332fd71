/* One-line log records with timestamp and level on stderr, safe from any thread. */
#ifndef ST_LOG_H
#define ST_LOG_H

enum st_log_level { ST_LOG_DEBUG, ST_LOG_INFO, ST_LOG_WARN, ST_LOG_ERROR };

void st_log_set_level(enum st_log_level level);
void st_log(enum st_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define st_debug(...) st_log(ST_LOG_DEBUG, __VA_ARGS__)
#define st_info(...)  st_log(ST_LOG_INFO, __VA_ARGS__)
#define st_warn(...)  st_log(ST_LOG_WARN, __VA_ARGS__)
#define st_errlog(...) st_log(ST_LOG_ERROR, __VA_ARGS__)

#endif
