/*
 * CRC32C (Castagnoli) for Node, as a Node-API addon (issue 16).
 *
 * Why: every byte a shard serves, the router relays and an edge fills is
 * checked against its 64 KiB block's CRC32C, so the checksum is on every hop's
 * byte path. @node-rs/crc32 ran at 3–4 GB/s on these machines (about 0.25
 * CPU-s per GB, a third of the router's relay cost); the CPU's own CRC32
 * instruction, three streams at once, runs at about 17 GB/s.
 *
 * Theory of operation. The CRC register (reflected, polynomial 0x82F63B78,
 * pre- and post-inverted as iSCSI and the manifests define it) is advanced
 * over the data in three places at once: three interleaved streams over
 * consecutive 8 KiB (then 256-byte) blocks, so the instruction's 3-cycle
 * latency is hidden. The three registers are joined by "shifting" the first
 * over the length of the next block (appending that many zero bytes, a linear
 * map on 32 bits, applied with four 256-entry tables computed once at load)
 * and xoring in the next. What is left after the blocks runs one stream.
 * Without SSE4.2 (checked at load), or on another architecture than x86-64,
 * a table-driven software loop (slicing by 8) gives the same answers, slower.
 *
 * crc32c(data, initial = 0) takes bytes (a Buffer, a Uint8Array) and returns the
 * CRC as an unsigned 32-bit number; `initial` continues a previous result over
 * more bytes, as @node-rs/crc32's `crc32c(data, initial)` does. The tables are
 * filled once per process (pthread_once), read-only afterwards, so serve
 * threads share them.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include "napi-errors.h"
#include <pthread.h>

#include "crc32c-core.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* crc32c(data: Uint8Array, initial?: number, software?: boolean): number */
static napi_value crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool is_typed = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed)
    return throw_type(env, "crc32c: expected data to be a Buffer or Uint8Array");
  napi_typedarray_type type;
  size_t length;
  void *data;
  /* data already points at the view's first byte: its ArrayBuffer and offset are not needed */
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array)
    return throw_type(env, "crc32c: expected data to be a Buffer or Uint8Array");
  uint32_t initial = 0;
  if (argc >= 2) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t == napi_number) napi_get_value_uint32(env, argv[1], &initial);
    else if (t != napi_undefined) return throw_type(env, "crc32c: expected initial to be a number");
  }
  bool software = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &software);
  uint32_t c = ~initial;
  c = crc32c_update(c, data, length, software);
  napi_value out;
  napi_create_uint32(env, ~c, &out);
  return out;
}

NAPI_MODULE_INIT() {
  pthread_once(&once, crc32c_init_tables);
  napi_value fn, hw;
  napi_create_function(env, "crc32c", NAPI_AUTO_LENGTH, crc32c, NULL, &fn);
  napi_set_named_property(env, exports, "crc32c", fn);
  napi_get_boolean(env, has_sse42, &hw);
  napi_set_named_property(env, exports, "hardware", hw);
  return exports;
}
