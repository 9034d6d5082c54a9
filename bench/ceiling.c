/* The least an HTTP/1.1 server can do per request, for bench/http.py's reference row.
 *
 * epoll, keep-alive, pipelining, one fixed JSON reply per request; PROCESSES processes on
 * one listening socket on 127.0.0.1, as the servers it is compared with. No parsing past
 * the header end and Content-Length: it says how many requests per second this machine
 * allows when the server costs next to nothing, with wrk on the same cores.
 *
 *     cc -O2 -o ceiling bench/ceiling.c && ./ceiling PORT [PROCESSES]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define MAX_REPLIES 256

typedef struct {
    int fd;
    int len;
    char buf[BUF];
} conn;

static const char REPLY[] =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n"
    "{\"hello\":\"world\",\"items\":[1,2,3],\"nested\":{\"k\":\"v\"}}";

static void serve(int ep, int listener) {
    struct epoll_event events[256];
    static char out[MAX_REPLIES * (sizeof REPLY - 1)];
    int one = 1;
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            int r = read(c->fd, c->buf + c->len, BUF - 1 - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(c->fd);
                free(c);
                continue;
            }
            c->len += r;
            c->buf[c->len] = 0;
            int off = 0, replies = 0;
            for (;;) {
                char *end = memmem(c->buf + off, c->len - off, "\r\n\r\n", 4);
                if (end == NULL) break;
                *end = 0;
                char *cl = strcasestr(c->buf + off, "content-length:");
                *end = '\r';
                int head = end + 4 - (c->buf + off), body = cl ? atoi(cl + 15) : 0;
                if (off + head + body > c->len) break;
                off += head + body;
                if (replies < MAX_REPLIES) {
                    memcpy(out + replies * (sizeof REPLY - 1), REPLY, sizeof REPLY - 1);
                    replies++;
                }
            }
            memmove(c->buf, c->buf + off, c->len - off);
            c->len -= off;
            if (replies && write(c->fd, out, replies * (sizeof REPLY - 1)) < 0) {
                close(c->fd);
                free(c);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [PROCESSES]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), processes = argc > 2 ? atoi(argv[2]) : 2, one = 1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 1024)) {
        perror("listen");
        return 1;
    }
    for (int i = 1; i < processes; i++)
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* ends with the process that was started */
            break;
        }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    serve(ep, listener);
}
