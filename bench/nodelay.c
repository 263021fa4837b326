/*
 * LD_PRELOAD shim for the benchmark's upstream: sets TCP_NODELAY on every accepted socket.
 * Debian's unbound 1.17 does not, so after the TLS 1.3 handshake its session tickets and the
 * first answers wait for the client's delayed ACK (~40 ms): that would measure Nagle, not proxies.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on non-TCP */
    }
}

int accept(int socket, struct sockaddr *address, socklen_t *length) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int fd = real(socket, address, length);
    nodelay(fd);
    return fd;
}

int accept4(int socket, struct sockaddr *address, socklen_t *length, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int fd = real(socket, address, length, flags);
    nodelay(fd);
    return fd;
}
