/* Where the bytes that matter to the scanner lie, 16 (or 8) bytes at once.
 *
 * classify.pyx skips strings and nested objects or arrays by counting brackets outside strings.
 * Byte by byte that cost ~1 ns a byte, most of an HTTP event's classification (its headers
 * are skipped whole), and a libc memchr call per short string cost more than the string.
 * Here one 16-byte block gives bitmasks (bit j is byte j) of its quotes and backslashes
 * (rw_string_masks) and of its brackets too (rw_block_masks), with SSE2 on x86-64 (always
 * there) and NEON on arm64 (Graviton); elsewhere, or with -DRW_NO_SIMD, a plain loop gives
 * the same masks. rw_leading_spaces8 reads a pretty-printed line's indentation.
 */
#ifndef RW_STRUCTURAL_H
#define RW_STRUCTURAL_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) && !defined(RW_NO_SIMD)
#include <emmintrin.h>

static inline void rw_block_masks(const unsigned char *p, uint32_t *quote, uint32_t *slash,
                                  uint32_t *open, uint32_t *close) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    /* `{` is 0x7B and `[` 0x5B, `}` 0x7D and `]` 0x5D: they differ only in bit 0x20, so
       setting that bit folds each pair into one comparison. */
    __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
    *quote = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    *slash = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    *open = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8('{')));
    *close = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8('}')));
}

static inline void rw_string_masks(const unsigned char *p, uint32_t *quote, uint32_t *slash) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    *quote = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    *slash = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

#elif defined(__aarch64__) && !defined(RW_NO_SIMD)
#include <arm_neon.h>

static inline uint32_t rw_movemask(uint8x16_t m) {
    static const uint8_t weights[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                        1, 2, 4, 8, 16, 32, 64, 128};
    uint8x16_t bits = vandq_u8(m, vld1q_u8(weights));
    return (uint32_t)vaddv_u8(vget_low_u8(bits)) | ((uint32_t)vaddv_u8(vget_high_u8(bits)) << 8);
}

static inline void rw_block_masks(const unsigned char *p, uint32_t *quote, uint32_t *slash,
                                  uint32_t *open, uint32_t *close) {
    uint8x16_t v = vld1q_u8(p);
    uint8x16_t folded = vorrq_u8(v, vdupq_n_u8(0x20));
    *quote = rw_movemask(vceqq_u8(v, vdupq_n_u8('"')));
    *slash = rw_movemask(vceqq_u8(v, vdupq_n_u8('\\')));
    *open = rw_movemask(vceqq_u8(folded, vdupq_n_u8('{')));
    *close = rw_movemask(vceqq_u8(folded, vdupq_n_u8('}')));
}

static inline void rw_string_masks(const unsigned char *p, uint32_t *quote, uint32_t *slash) {
    uint8x16_t v = vld1q_u8(p);
    *quote = rw_movemask(vceqq_u8(v, vdupq_n_u8('"')));
    *slash = rw_movemask(vceqq_u8(v, vdupq_n_u8('\\')));
}

#else

static inline void rw_block_masks(const unsigned char *p, uint32_t *quote, uint32_t *slash,
                                  uint32_t *open, uint32_t *close) {
    uint32_t q = 0, s = 0, o = 0, c = 0;
    for (int j = 0; j < 16; j++) {
        unsigned char b = p[j];
        q |= (uint32_t)(b == '"') << j;
        s |= (uint32_t)(b == '\\') << j;
        o |= (uint32_t)(b == '{' || b == '[') << j;
        c |= (uint32_t)(b == '}' || b == ']') << j;
    }
    *quote = q;
    *slash = s;
    *open = o;
    *close = c;
}

static inline void rw_string_masks(const unsigned char *p, uint32_t *quote, uint32_t *slash) {
    uint32_t o, c;
    rw_block_masks(p, quote, slash, &o, &c);
}

#endif

/* How many of the 8 bytes at p are spaces before the first other byte (0 to 8): a
   pretty-printed line's indentation, read without a loop whose exit is mispredicted. */
static inline int rw_leading_spaces8(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x;
    memcpy(&x, p, 8);
    x ^= 0x2020202020202020ull; /* spaces become zero bytes */
    return x ? __builtin_ctzll(x) >> 3 : 8;
#else
    int k = 0;
    while (k < 8 && p[k] == ' ') k++;
    return k;
#endif
}

/* The index of the lowest set bit of a nonzero mask. */
static inline int rw_lowest(uint32_t m) { return __builtin_ctz(m); }

#endif
