/*
 * Zero-copy sends for Node, as a Node-API addon (issue 16).
 *
 * Why: a RAM hit written with writev costs the kernel a copy of every byte
 * into socket buffers. Under the tail row (200 players on one hot title) that
 * copy was 57 % of the edge's busy time, and the edge, at a whole core,
 * became the machine's bottleneck next to wrk; nginx sends from the page
 * cache with sendfile and leaves the CPU to the players. Node has no
 * sendfile, and the edge's hits are in memory, not files.
 *
 * Theory of operation. `send(fd, buf)` moves the bytes of a
 * Buffer into a TCP socket without copying them: vmsplice maps the Buffer's
 * pages into a pipe (references to the pages, not a copy), and splice moves
 * those references into the socket, where the skbs hold them until the peer
 * has them. Each thread (Node-API instance) owns one pipe, emptied before
 * every call returns: what the socket did not take (it was full) is spliced
 * to /dev/null, and if even that fails the pipe is replaced, so no byte of
 * one call can ever reach another socket. The return value is the number of
 * bytes the socket took (0 when it was full), or -errno: EPIPE or ECONNRESET
 * when the peer is gone (splice raises SIGPIPE then, as write does; Node
 * ignores SIGPIPE), anything else when splicing cannot be used at all (the
 * caller copies instead).
 *
 * The pages are shared with the kernel until the peer has read them, so the
 * memory must not be written meanwhile. Hence `alloc(size)`: page-aligned
 * anonymous memory (mmap, huge pages advised, unmapped when the Buffer is
 * garbage-collected, which leaves pages still in flight to the kernel's
 * references), and `recycle(buf, offset, length)`: MADV_DONTNEED over the
 * pages that were sent, before their owner writes new bytes into them, which
 * gives the mapping fresh pages and leaves the old ones to the skbs still
 * holding them. Only memory from `alloc` is
 * sent this way (lib/net/zero-copy.ts keeps that rule). `populate(buf)` faults
 * such memory in on a thread of libuv's pool, changing nothing: a fresh huge
 * page costs milliseconds on a VM, which the event loop should not spend.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include "napi-errors.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)

typedef struct {
  int r, w, null;
} Pipe;

static int open_pipe(Pipe *p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
  fcntl(fds[1], F_SETPIPE_SZ, PIPE_BYTES); /* a smaller pipe (pipe-max-size) only means more calls */
  p->r = fds[0];
  p->w = fds[1];
  return 0;
}

static void close_pipe(Pipe *p) {
  if (p->r >= 0) close(p->r);
  if (p->w >= 0) close(p->w);
  p->r = p->w = -1;
}

static void free_pipe(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Pipe *p = data;
  close_pipe(p);
  if (p->null >= 0) close(p->null);
  free(p);
}

/* empties the pipe of `left` bytes the socket did not take; replaces the pipe if it cannot */
static void drop(Pipe *p, size_t left) {
  while (left > 0) {
    ssize_t d = splice(p->r, NULL, p->null, NULL, left, SPLICE_F_NONBLOCK);
    if (d < 0 && errno == EINTR) continue;
    if (d <= 0) {
      close_pipe(p);
      open_pipe(p);
      return;
    }
    left -= (size_t)d;
  }
}

static napi_value number(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

/* send(fd: number, buf: Buffer): number -- all of buf (a view: the caller's subarray is the range) */
static napi_value send_pages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Pipe *p;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_type(env, "send: expected (fd, buffer)");
  if (napi_get_instance_data(env, (void **)&p) != napi_ok || p == NULL) return throw_type(env, "send: addon not initialised");
  int32_t fd;
  uint8_t *data;
  size_t len;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_buffer_info(env, argv[1], (void **)&data, &len) != napi_ok)
    return throw_type(env, "send: expected (fd: number, buffer: Buffer)");
  if (p->r < 0) {
    int e = open_pipe(p);
    if (e != 0) return number(env, e);
  }
  size_t sent = 0;
  int err = 0;
  while (sent < len) {
    struct iovec iov = {data + sent, len - sent};
    ssize_t in = vmsplice(p->w, &iov, 1, SPLICE_F_NONBLOCK);
    if (in < 0 && errno == EINTR) continue;
    if (in <= 0) {
      err = in < 0 ? errno : EIO;
      break;
    }
    size_t out = 0;
    while (out < (size_t)in) {
      ssize_t s = splice(p->r, NULL, fd, NULL, (size_t)in - out, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (s < 0 && errno == EINTR) continue;
      if (s <= 0) {
        err = s < 0 ? errno : EPIPE;
        break;
      }
      out += (size_t)s;
    }
    sent += out;
    if (out < (size_t)in) {
      drop(p, (size_t)in - out);
      break;
    }
  }
  if (sent == 0 && err != 0 && err != EAGAIN) return number(env, -err);
  return number(env, (int64_t)sent);
}

static void unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* alloc(size: number): Buffer, page-aligned, from mmap */
static napi_value alloc_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t size;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int64(env, argv[0], &size) != napi_ok || size <= 0)
    return throw_type(env, "alloc: expected a positive size");
  void *mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "alloc: mmap failed");
    return NULL;
  }
  madvise(mem, (size_t)size, MADV_HUGEPAGE);
  napi_value out;
  if (napi_create_external_buffer(env, (size_t)size, mem, unmap, (void *)(uintptr_t)size, &out) != napi_ok) {
    munmap(mem, (size_t)size);
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "alloc: external buffer refused");
    return NULL;
  }
  return out;
}

/*
 * The (buffer, offset, length) arguments of recycle and populate: `buffer` page-aligned
 * (memory from alloc), [offset, offset + length) inside it, and with `unaligned`
 * (its message) the offset a multiple of the page size. False once it threw.
 */
static int buffer_range(napi_env env, napi_callback_info info, const char *what, napi_value *buf, uint8_t **data, int64_t *off, int64_t *len,
  const char *unaligned) {
  size_t argc = 3, size;
  napi_value argv[3];
  char msg[96];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_buffer_info(env, argv[0], (void **)data, &size) != napi_ok ||
      napi_get_value_int64(env, argv[1], off) != napi_ok || napi_get_value_int64(env, argv[2], len) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: expected (buffer: Buffer, offset: number, length: number)", what);
    throw_type(env, msg);
    return 0;
  }
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  if (((uintptr_t)*data % page) != 0) {
    snprintf(msg, sizeof msg, "%s: not page-aligned memory from alloc", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  if (*off < 0 || *len < 0 || (uint64_t)*off + (uint64_t)*len > size) {
    snprintf(msg, sizeof msg, "%s: offset and length outside the buffer", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  if (unaligned != NULL && ((uintptr_t)*off % page) != 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", unaligned);
    return 0;
  }
  *buf = argv[0];
  return 1;
}

/*
 * recycle(buf: Buffer, offset: number, length: number): 0 or -errno. `buf` is a
 * whole Buffer from alloc (page-aligned: its mapping is page-rounded, so the
 * last page may extend past its length); the pages that hold
 * [offset, offset + length) are given up, rounded outward to whole pages.
 */
static napi_value recycle_pages(napi_env env, napi_callback_info info) {
  napi_value buf;
  uint8_t *data;
  int64_t off, len;
  if (!buffer_range(env, info, "recycle", &buf, &data, &off, &len, NULL)) return NULL;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  if (len == 0) return number(env, 0);
  uintptr_t from = (uintptr_t)off / page * page;
  uintptr_t to = ((uintptr_t)off + (uintptr_t)len + page - 1) / page * page;
  return number(env, madvise(data + from, to - from, MADV_DONTNEED) == 0 ? 0 : -errno);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ref;
  uint8_t *data;
  size_t len;
} Populate;

/*
 * One byte written with an atomic add of zero: the page is faulted in
 * writable and the byte left as it was, even if its owner (a fill, or the
 * kernel's copy of a socket read into it) writes it meanwhile, since the add
 * is one locked read-modify-write and another store lands wholly before or
 * after it. On x86-64 the instruction is written out: a compiler may turn an
 * atomic add of zero into a fence and a load, and a load faults in only the
 * shared zero page.
 */
static inline void touch_page(uint8_t *b) {
#if defined(__x86_64__)
  __asm__ volatile("lock addb $0, %0" : "+m"(*b) : : "memory");
#else
  __atomic_fetch_add((volatile uint8_t *)b, 0, __ATOMIC_RELAXED);
#endif
}

/*
 * On a thread of libuv's pool: each page touched once (touch_page). Not
 * MADV_POPULATE_WRITE: it holds the process's mmap lock for reading across the
 * whole range, so every mmap, munmap, brk or mprotect of the event loop (V8's
 * heap, malloc, a Buffer) waited for all of its faults (15-35 ms stalls while
 * 8 MiB of fresh huge pages were faulted in, measured on this VM,
 * docs/benchmarks.md); a fault taken by touching holds only its own mapping's
 * lock (Linux 6.4 and later), or the mmap lock for that one fault. A fill may
 * take the memory while this runs, and a recycle give its pages up: a touch
 * then writes back what the fill wrote, or faults in the fresh page, never
 * changing a byte the fill or a socket still reads.
 */
static void populate_execute(napi_env env, void *arg) {
  (void)env;
  Populate *p = arg;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t off = 0; off < p->len; off += page) touch_page(p->data + off);
}

static void populate_complete(napi_env env, napi_status status, void *arg) {
  Populate *p = arg;
  napi_value v;
  napi_create_int32(env, status != napi_ok ? -ECANCELED : 0, &v);
  napi_resolve_deferred(env, p->deferred, v);
  napi_delete_reference(env, p->ref);
  napi_delete_async_work(env, p->work);
  free(p);
}

/*
 * populate(buf: Buffer, offset: number, length: number): Promise<number> -- 0,
 * or -ECANCELED or -EAGAIN (the pool cancelled or refused the work). `buf`
 * is a whole Buffer from alloc, `offset` a multiple of the page size.
 * Faulting fresh memory in costs the kernel a zeroed page per 4 KiB (2 MiB
 * with huge pages), and on a VM the host's fault too: about 7 ms per 2 MiB
 * measured here, which a write per page on the event loop would block it
 * for. populate_execute takes the same faults on a pool thread and changes
 * no byte, so the owner may write into the memory meanwhile. The Buffer is
 * held until it is done. The caller asks a few MiB at a time, so one call
 * holds a pool thread (which file reads and writes share) for tens of ms at
 * most.
 */
static napi_value populate_pages(napi_env env, napi_callback_info info) {
  napi_value buf, promise, name;
  uint8_t *data;
  int64_t off, len;
  if (!buffer_range(env, info, "populate", &buf, &data, &off, &len, "populate: the offset is not a multiple of the page size")) return NULL;
  if (napi_create_string_utf8(env, "reelcdn.populate", NAPI_AUTO_LENGTH, &name) != napi_ok) return throw_type(env, "populate: no resource name");
  Populate *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "populate: out of memory");
    return NULL;
  }
  p->data = data + off;
  p->len = (size_t)len;
  if (napi_create_reference(env, buf, 1, &p->ref) != napi_ok) {
    free(p);
    return throw_type(env, "populate: could not hold the buffer");
  }
  if (napi_create_async_work(env, NULL, name, populate_execute, populate_complete, p, &p->work) != napi_ok) {
    napi_delete_reference(env, p->ref);
    free(p);
    napi_throw_error(env, "ERR_ZERO_COPY_UNAVAILABLE", "populate: could not create the work");
    return NULL;
  }
  if (napi_create_promise(env, &p->deferred, &promise) != napi_ok) {
    napi_delete_async_work(env, p->work);
    napi_delete_reference(env, p->ref);
    free(p);
    napi_throw_error(env, "ERR_ZERO_COPY_UNAVAILABLE", "populate: could not create the promise");
    return NULL;
  }
  if (napi_queue_async_work(env, p->work) != napi_ok) {
    /* the promise is settled here, as the work's completion would have */
    napi_value v;
    napi_create_int32(env, -EAGAIN, &v);
    napi_resolve_deferred(env, p->deferred, v);
    napi_delete_async_work(env, p->work);
    napi_delete_reference(env, p->ref);
    free(p);
  }
  return promise;
}

NAPI_MODULE_INIT() {
  Pipe *p = malloc(sizeof *p);
  if (p == NULL) return NULL;
  p->r = p->w = -1;
  p->null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (p->null < 0 || open_pipe(p) != 0) {
    free_pipe(env, p, NULL);
    napi_throw_error(env, "ERR_ZERO_COPY_UNAVAILABLE", "splice addon: no pipe or /dev/null");
    return NULL;
  }
  napi_set_instance_data(env, p, free_pipe, NULL);
  napi_value fn;
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, send_pages, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  napi_create_function(env, "alloc", NAPI_AUTO_LENGTH, alloc_pages, NULL, &fn);
  napi_set_named_property(env, exports, "alloc", fn);
  napi_create_function(env, "recycle", NAPI_AUTO_LENGTH, recycle_pages, NULL, &fn);
  napi_set_named_property(env, exports, "recycle", fn);
  napi_create_function(env, "populate", NAPI_AUTO_LENGTH, populate_pages, NULL, &fn);
  napi_set_named_property(env, exports, "populate", fn);
  return exports;
}
