/* Listening sockets. Each protocol has one socket shared by all network threads, bound
 * without SO_REUSEPORT: with it, a second stratad on the same address would join the reuse
 * group and the kernel would split connections between two servers and two stores. */
#include "server/srv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int srv_listen_open(const char *addr, int *port, struct st_error *err)
{
	char host[256];
	int rc = srv_parse_addr(addr, host, sizeof(host), port, err);
	if (rc)
		return rc;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", *port);
	rc = getaddrinfo(host, ps, &hints, &ai);
	if (rc)
		return st_error_set(err, ST_EINVAL, "cannot resolve %s: %s", host, gai_strerror(rc));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = st_error_set(err, -errno, "socket: %s", strerror(errno));
		goto free_ai;
	}
	/* SO_REUSEADDR only lets a restarted server bind past TIME_WAIT connections; two TCP
	 * listeners on one address still conflict. */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096)) {
		int e = errno;
		rc = st_error_set(err, -e, "cannot listen on %s: %s%s", addr, strerror(e),
				  e == EADDRINUSE ? " (is another server running there?)" : "");
		goto close_fd;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	freeaddrinfo(ai);
	return fd;
close_fd:
	close(fd);
free_ai:
	freeaddrinfo(ai);
	return rc;
}
