/*
 * bare-relay MODE SHARD_PORT TOKEN SIZE PATH...: bench/lib/bare-relay.ts
 * without Node, and two relays that do less, for the fill row (since stop
 * 38), which compiles it (cc -O2 -march=native) into its work directory.
 *
 * Why: bare-relay.ts shows what a relay written in Node reaches when it does
 * nothing but read, check and write. Whether the runtime is what stands
 * between that and a shard's own read, or the machine is (the shard, the
 * relay and the client sharing two cores, every byte crossing loopback twice),
 * needs the same relay with no runtime at all, and what the check itself
 * costs needs the same relay without it.
 *
 * Theory of operation. One thread, blocking sockets, one player connection
 * at a time (accepted in turn, each answered with the whole title and closed:
 * `connection: close`). For each PATH in turn, a GET to the shard on
 * 127.0.0.1:SHARD_PORT (Bearer TOKEN) on one connection per player, the block
 * list asked for in the answer's head (reelcdn-want-block-crcs) as an edge's
 * fill asks. Then, by MODE:
 *   verify: the body read into one 1 MiB buffer (a read loop until it is
 *           full or the body ends), every 64 KiB block's CRC32C checked
 *           against the list (native/crc32c-core.h, the addon's
 *           implementation), then one write loop to the player. A block that fails
 *           closes the player's connection and is printed to stderr.
 *   copy:   the same without the check: what a relay that trusts its shard
 *           pays (no fill may).
 *   splice: the body moved socket -> pipe -> socket with splice(2), 1 MiB at
 *           a time: no byte in user memory, nothing checked (no fill may).
 * Bodies that do not add up to SIZE cut the player too, said on stderr.
 * Prints {"msg":"bare relay ready","url":...} once listening; exits on SIGTERM
 * (the default action).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../native/crc32c-core.h"

#define MIB (1 << 20)
#define BLOCK (64 * 1024)
#define HEAD_MAX (16 * 1024)

/* the project's CRC32C (native/crc32c-core.h: the addon's, three streams of the CPU's instruction) */
static uint32_t crc32c(const uint8_t *p, size_t n) { return ~crc32c_update(~0u, p, n, 0); }

/* writes all of it; 0 when the peer is gone */
static int write_all(int fd, const void *b, size_t n) {
  const char *p = b;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return 0;
    p += w;
    n -= (size_t)w;
  }
  return 1;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* decodes base64 from `s` up to the first character outside the alphabet; returns the bytes written */
static size_t b64decode(const char *s, uint8_t *out, size_t max) {
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0, v;
  for (; (v = b64val(*s)) >= 0; s++) {
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n < max) out[n++] = (uint8_t)(acc >> bits);
    }
  }
  return n;
}

typedef enum { VERIFY, COPY, SPLICE } Mode;

typedef struct {
  char head[HEAD_MAX + 1];
  size_t len;  /* bytes in head[] */
  size_t body; /* where the body starts in head[] */
} Head;

/* reads an answer's head; 0 on a cut or a head too long */
static int read_head(int fd, Head *h) {
  h->len = 0;
  for (;;) {
    ssize_t r = read(fd, h->head + h->len, HEAD_MAX - h->len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    h->len += (size_t)r;
    h->head[h->len] = 0;
    char *end = strstr(h->head, "\r\n\r\n");
    if (end) {
      h->body = (size_t)(end - h->head) + 4;
      /* the head ends at its last line's CRLF, so `header` never looks into body bytes */
      end[2] = 0;
      return 1;
    }
    if (h->len == HEAD_MAX) return 0;
  }
}

static const char *header(const char *head, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
      const char *v = p + 3 + n;
      while (*v == ' ') v++;
      return v;
    }
  }
  return NULL;
}

static int upstream(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("bare relay: connecting to the shard");
    if (fd >= 0) close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* relays one chunk's body to the player, adding its length to *relayed (more than `size` in all: a cut); 0 when the
   player is to be cut (a shard's fault printed; a player that left is not) */
static int relay_chunk(long long *relayed, long long size, Mode mode, int up, int player, const char *token, const char *path, uint8_t *buf, uint8_t *crcs, int pipefd[2]) {
  char req[1024];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer %s\r\nreelcdn-want-block-crcs: 1\r\n\r\n", path, token);
  if (n <= 0 || (size_t)n >= sizeof req || !write_all(up, req, (size_t)n)) return fprintf(stderr, "bare relay: sending the GET for %s failed\n", path), 0;
  static Head h;
  if (!read_head(up, &h)) return fprintf(stderr, "bare relay: no answer head for %s\n", path), 0;
  const char *cl = header(h.head, "content-length"), *list = header(h.head, "reelcdn-block-crcs");
  if (strncmp(h.head, "HTTP/1.1 200", 12) != 0 || !cl || !list) {
    h.head[h.body > 200 ? 200 : h.body] = 0;
    return fprintf(stderr, "bare relay: the shard answered: %s\n", h.head), 0;
  }
  long long left = atoll(cl);
  if (left < 0 || left > (16LL << 30)) return fprintf(stderr, "bare relay: a body of %lld bytes for %s (at most 16 GiB)\n", left, path), 0;
  *relayed += left;
  if (*relayed > size) return fprintf(stderr, "bare relay: the bodies come to more than SIZE (%lld) with %s\n", size, path), 0;
  size_t blocks = (size_t)((left + BLOCK - 1) / BLOCK);
  if (b64decode(list, crcs, 4 * blocks + 4) != 4 * blocks) return fprintf(stderr, "bare relay: a block list of the wrong length for %s\n", path), 0;
  size_t pos = h.len - h.body;
  if ((long long)pos > left) return fprintf(stderr, "bare relay: bytes past the body of %s\n", path), 0;
  memcpy(buf, h.head + h.body, pos);
  left -= (long long)pos;
  long long at = 0; /* the body offset buf[0] holds */
  if (mode == SPLICE) {
    if (pos && !write_all(player, buf, pos)) return 0;
    while (left > 0) {
      ssize_t m = splice(up, NULL, pipefd[1], NULL, left < MIB ? (size_t)left : MIB, SPLICE_F_MOVE);
      if (m <= 0) return fprintf(stderr, "bare relay: the shard's body of %s broke off\n", path), 0;
      left -= m;
      while (m > 0) {
        ssize_t w = splice(pipefd[0], NULL, player, NULL, (size_t)m, SPLICE_F_MOVE);
        if (w <= 0) return 0;
        m -= w;
      }
    }
    return 1;
  }
  while (left > 0 || pos > 0) {
    while (pos < MIB && left > 0) {
      ssize_t r = read(up, buf + pos, (size_t)(MIB - pos) < (unsigned long long)left ? MIB - pos : (size_t)left);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return fprintf(stderr, "bare relay: the shard's body of %s broke off\n", path), 0;
      pos += (size_t)r;
      left -= r;
    }
    for (size_t off = 0; mode == VERIFY && off < pos; off += BLOCK) {
      size_t b = (size_t)((at + (long long)off) / BLOCK);
      uint32_t want = (uint32_t)crcs[4 * b] << 24 | (uint32_t)crcs[4 * b + 1] << 16 | (uint32_t)crcs[4 * b + 2] << 8 | crcs[4 * b + 3];
      if (crc32c(buf + off, pos - off < BLOCK ? pos - off : BLOCK) != want) return fprintf(stderr, "bare relay: block %zu of %s failed its CRC32C\n", b, path), 0;
    }
    if (!write_all(player, buf, pos)) return 0;
    at += (long long)pos;
    pos = 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  Mode mode = argc < 2 ? -1 : !strcmp(argv[1], "verify") ? VERIFY : !strcmp(argv[1], "copy") ? COPY : !strcmp(argv[1], "splice") ? SPLICE : -1;
  if (argc < 6 || atoll(argv[4]) < 0 || mode == (Mode)-1) {
    fprintf(stderr, "usage: bare-relay verify|copy|splice SHARD_PORT TOKEN SIZE PATH...\n");
    return 2;
  }
  const char *token = argv[3];
  int port = atoi(argv[2]);
  long long size = atoll(argv[4]);
  crc32c_init_tables();
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 8) != 0 || getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
    perror("bare relay: listening");
    return 1;
  }
  uint8_t *buf = aligned_alloc(4096, MIB), *crcs = malloc(4 * (MIB / 4) + 8);
  int pipefd[2];
  if (!buf || !crcs || pipe(pipefd) != 0) return perror("bare relay"), 1;
  memset(buf, 0, MIB); /* faulted in now, not by the first measured read */
  fcntl(pipefd[1], F_SETPIPE_SZ, MIB);
  printf("{\"msg\":\"bare relay ready\",\"url\":\"http://127.0.0.1:%d\"}\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int player = accept(ls, NULL, NULL);
    if (player < 0) continue;
    setsockopt(player, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static Head req;
    int up = -1;
    if (read_head(player, &req) && (up = upstream(port)) >= 0) {
      char h[256];
      int n = snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: %lld\r\nconnection: close\r\n\r\n", size);
      int ok = write_all(player, h, (size_t)n);
      long long relayed = 0;
      for (int i = 5; ok && i < argc; i++) ok = relay_chunk(&relayed, size, mode, up, player, token, argv[i], buf, crcs, pipefd);
      if (ok && relayed != size) ok = 0, fprintf(stderr, "bare relay: the bodies came to %lld bytes, not SIZE (%lld)\n", relayed, size);
      if (!ok && mode == SPLICE) {
        /* a splice cut midway leaves bytes in the pipe: a new one, so none reach the next player */
        close(pipefd[0]);
        close(pipefd[1]);
        if (pipe(pipefd) != 0) return perror("bare relay"), 1;
        fcntl(pipefd[1], F_SETPIPE_SZ, MIB);
      }
    }
    if (up >= 0) close(up);
    close(player);
  }
}
