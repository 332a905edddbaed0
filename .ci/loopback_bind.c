/* Test machines only: vsmartcard-vpcd (the virtual card reader inside pcscd)
 * listens on every interface, so anyone on the network could insert a virtual
 * card. It cannot be told otherwise (its reversed mode crashes pcscd when no
 * card listens), so pcscd is started with this library preloaded: a bind() to
 * the any-address on a port named in POSGW_LOOPBACK_PORTS ("35963,35964") is
 * made to the loopback address instead. Every other bind is untouched. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int listed(unsigned short port) {
    const char *ports = getenv("POSGW_LOOPBACK_PORTS");
    if (ports == NULL) return 0;
    char *copy = strdup(ports), *save = NULL;
    int found = 0;
    for (char *p = strtok_r(copy, ",", &save); p != NULL && !found; p = strtok_r(NULL, ",", &save))
        found = (unsigned short)atoi(p) == port;
    free(copy);
    return found;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in = *(const struct sockaddr_in *)addr;
        if (in.sin_addr.s_addr == htonl(INADDR_ANY) && listed(ntohs(in.sin_port))) {
            in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&in, sizeof in);
        }
    }
    if (addr != NULL && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6 = *(const struct sockaddr_in6 *)addr;
        if (memcmp(&in6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0 && listed(ntohs(in6.sin6_port))) {
            in6.sin6_addr = in6addr_loopback;
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        }
    }
    return real_bind(fd, addr, len);
}
