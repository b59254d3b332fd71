/* Growable byte buffers (srv_buf.c). A buffer owns p; release with srv_buf_release. */
#ifndef SRV_BUF_H
#define SRV_BUF_H

#include <stddef.h>
#include <stdint.h>

struct srv_buf {
	uint8_t *p;
	size_t len, cap;
};
/* Makes room for `extra` more bytes; returns 0 or ST_ENOMEM (the buffer is unchanged). */
int srv_buf_reserve(struct srv_buf *b, size_t extra);
int srv_buf_append(struct srv_buf *b, const void *p, size_t n);
/* Drops the first n bytes (frees a large buffer once it is empty). */
void srv_buf_consume(struct srv_buf *b, size_t n);
void srv_buf_release(struct srv_buf *b);

#endif
