/*
 * CRC32C (Castagnoli), the implementation native/crc32c.c exposes to Node,
 * as static functions any C file of the project can include: the addon, and
 * the fill row's bare relay (bench/lib/bare-relay.c), so both check blocks at
 * the same speed. See native/crc32c.c for the theory of operation.
 *
 * crc32c_init_tables() once before use (not thread-safe: the addon calls it
 * under pthread_once); then crc32c_update(~initial, data, n, software) and
 * invert the result, as crc32c.c does.
 */
#ifndef REELCDN_CRC32C_CORE_H
#define REELCDN_CRC32C_CORE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define LONG_BLOCK 8192
#define SHORT_BLOCK 256
#define POLY 0x82f63b78u

static uint32_t table[8][256];
static uint32_t shift_long[4][256], shift_short[4][256];
static int has_sse42;

/* the raw register over bytes, in software (slicing by 8) */
static uint32_t soft_update(uint32_t c, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) { c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8); n--; }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= c;
    c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
        table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

/* tables for the map "append len zero bytes to the register": one per byte of the register */
static void fill_shift(uint32_t t[4][256], size_t len) {
  static const uint8_t zeros[LONG_BLOCK];
  uint32_t basis[32];
  for (int b = 0; b < 32; b++) basis[b] = soft_update(1u << b, zeros, len);
  for (int k = 0; k < 4; k++)
    for (int v = 0; v < 256; v++) {
      uint32_t r = 0;
      for (int b = 0; b < 8; b++)
        if (v & (1 << b)) r ^= basis[8 * k + b];
      t[k][v] = r;
    }
}

static inline uint32_t shift(uint32_t t[4][256], uint32_t c) {
  return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

#if defined(__x86_64__)
/* three streams over consecutive `block`-byte runs, joined into c0 */
#define THREE_STREAMS(block, tables)                                              \
  while (n >= 3 * (block)) {                                                      \
    uint64_t c1 = 0, c2 = 0;                                                      \
    const uint8_t *end = p + (block);                                             \
    do {                                                                          \
      uint64_t a, b, d;                                                           \
      memcpy(&a, p, 8);                                                           \
      memcpy(&b, p + (block), 8);                                                 \
      memcpy(&d, p + 2 * (block), 8);                                             \
      c0 = _mm_crc32_u64(c0, a);                                                  \
      c1 = _mm_crc32_u64(c1, b);                                                  \
      c2 = _mm_crc32_u64(c2, d);                                                  \
      p += 8;                                                                     \
    } while (p < end);                                                            \
    c0 = shift(tables, (uint32_t)c0) ^ (uint32_t)c1;                              \
    c0 = shift(tables, (uint32_t)c0) ^ (uint32_t)c2;                              \
    p += 2 * (block);                                                             \
    n -= 3 * (block);                                                             \
  }

__attribute__((target("sse4.2"))) static uint32_t hard_update(uint32_t c, const uint8_t *p, size_t n) {
  uint64_t c0 = c;
  while (n && ((uintptr_t)p & 7)) { c0 = _mm_crc32_u8((uint32_t)c0, *p++); n--; }
  THREE_STREAMS(LONG_BLOCK, shift_long)
  THREE_STREAMS(SHORT_BLOCK, shift_short)
  while (n >= 8) {
    uint64_t a;
    memcpy(&a, p, 8);
    c0 = _mm_crc32_u64(c0, a);
    p += 8;
    n -= 8;
  }
  while (n--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
  return (uint32_t)c0;
}
#else
/* elsewhere (arm64 has its own CRC32C instructions, not used yet): the table loop */
static uint32_t hard_update(uint32_t c, const uint8_t *p, size_t n) { return soft_update(c, p, n); }
#endif

static void crc32c_init_tables(void) {
  for (uint32_t v = 0; v < 256; v++) {
    uint32_t c = v;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
    table[0][v] = c;
  }
  for (uint32_t v = 0; v < 256; v++)
    for (int k = 1; k < 8; k++) table[k][v] = table[0][table[k - 1][v] & 0xff] ^ (table[k - 1][v] >> 8);
  fill_shift(shift_long, LONG_BLOCK);
  fill_shift(shift_short, SHORT_BLOCK);
#if defined(__x86_64__)
  __builtin_cpu_init();
  has_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

/* the register advanced over n bytes: the CPU's instruction when it has it, unless `software` */
static inline uint32_t crc32c_update(uint32_t c, const uint8_t *p, size_t n, int software) {
  return has_sse42 && !software ? hard_update(c, p, n) : soft_update(c, p, n);
}
#endif
