// int8 matrix products: a portable reference and x86 SIMD versions chosen at run time.
// See include/distill_int8.h for the layout. Every kernel accumulates the same integers and
// dequantizes with the same single fused multiply-add, so results are bit-identical.
//
// The VNNI kernels multiply the unsigned activations by the signed weights as they are
// (vpdpbusd) and subtract the zero point afterwards: Σ (x − z)·w = Σ x·w − z·Σ w.

#include "distill_int8.h"

// Every kernel must round exactly as the reference does: no fused multiply-adds the compiler
// invents (the one fmaf below is written out).
#pragma STDC FP_CONTRACT OFF
#ifdef __clang__
#pragma clang fp contract(off)
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DISTILL_X86 1
#endif

typedef distill_i8_args args_t;

static inline float addend(const args_t *a, const float *dst, int n) {
    return a->accumulate ? *dst : (a->bias ? a->bias[n] : 0.0f);
}

// ---------------------------------------------------------------- portable reference

static void gemm_scalar(const args_t *a) {
    const int K4 = a->Kp / 4;
    for (int m = 0; m < a->M; m++) {
        const uint8_t *x = a->xq + (long)m * a->Kp;
        const int32_t z = a->xzero[m];
        for (int n = 0; n < a->N; n++) {
            const int8_t *blk = a->wp + (long)(n / 16) * K4 * 64 + (n % 16) * 4;
            int32_t acc = 0;
            for (int g = 0; g < K4; g++) {
                const int8_t *w = blk + (long)g * 64;
                for (int j = 0; j < 4; j++) acc += ((int32_t)x[4 * g + j] - z) * (int32_t)w[j];
            }
            float *dst = a->y + (long)m * a->ldy + n;
            *dst = fmaf((float)acc, a->xs[m] * a->ws[n], addend(a, dst, n));
        }
    }
}

#ifdef DISTILL_X86

#define UNROLL _Pragma("clang loop unroll(full)")

// ---------------------------------------------------------------- AVX-512 VNNI
// Tile: MR ≤ 6 rows × NB ≤ 4 blocks of 16 columns, 24 accumulators in registers. MR and NB
// are compile-time constants in each instance (always inlined from the dispatch below), so
// the loops unroll and nothing spills. The column panel is the outer loop: its weights stay
// in cache while every row tile passes over them.

__attribute__((always_inline, target("avx512f,avx512bw,avx512vnni")))
static inline void tile512(const int MR, const int NB, const args_t *a, int m0, int b0) {
    const int Kp = a->Kp, K4 = Kp / 4;
    const long bstride = (long)K4 * 64;
    const uint8_t *x0 = a->xq + (long)m0 * Kp;
    const int8_t *w0 = a->wp + (long)b0 * bstride;
    __m512i acc[6][4];
    UNROLL for (int r = 0; r < MR; r++) UNROLL for (int j = 0; j < NB; j++) acc[r][j] = _mm512_setzero_si512();
    for (int g = 0; g < K4; g++) {
        __m512i w[4];
        UNROLL for (int j = 0; j < NB; j++) w[j] = _mm512_loadu_si512((const void *)(w0 + j * bstride));
        UNROLL for (int r = 0; r < MR; r++) {
            int32_t x4;
            memcpy(&x4, x0 + (long)r * Kp, 4);
            __m512i xb = _mm512_set1_epi32(x4);
            UNROLL for (int j = 0; j < NB; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], xb, w[j]);
        }
        x0 += 4;
        w0 += 64;
    }
    UNROLL for (int j = 0; j < NB; j++) {
        const int n = 16 * (b0 + j), left = a->N - n;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512i cs = _mm512_loadu_si512((const void *)(a->colsum + n));
        const __m512 wsv = _mm512_loadu_ps(a->ws + n);
        const __m512 b = a->bias ? _mm512_maskz_loadu_ps(mask, a->bias + n) : _mm512_setzero_ps();
        UNROLL for (int r = 0; r < MR; r++) {
            const int m = m0 + r;
            __m512i v = _mm512_sub_epi32(acc[r][j], _mm512_mullo_epi32(_mm512_set1_epi32(a->xzero[m]), cs));
            __m512 sc = _mm512_mul_ps(_mm512_set1_ps(a->xs[m]), wsv);
            float *dst = a->y + (long)m * a->ldy + n;
            __m512 add = a->accumulate ? _mm512_maskz_loadu_ps(mask, dst) : b;
            _mm512_mask_storeu_ps(dst, mask, _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), sc, add));
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void gemm_avx512vnni(const args_t *a) {
    const int blocks = (a->N + 15) / 16;
    for (int b0 = 0; b0 < blocks; b0 += 4) {
        const int nb = blocks - b0 < 4 ? blocks - b0 : 4;
        for (int m = 0; m < a->M; m += 6) {
            const int mr = a->M - m < 6 ? a->M - m : 6;
            switch (mr * 8 + nb) {
#define T(MR, NB) case MR * 8 + NB: tile512(MR, NB, a, m, b0); break;
#define ROW(MR) T(MR, 1) T(MR, 2) T(MR, 3) T(MR, 4)
                ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6)
#undef ROW
#undef T
            }
        }
    }
}

// ---------------------------------------------------------------- 256-bit VNNI
// A 16-column block is two 8-column halves. Tile: MR ≤ 4 rows × NB ≤ 2 blocks (4 halves).
// One source, two encodings of vpdpbusd: VEX (AVX-VNNI, e.g. Alder Lake) and EVEX (AVX-512
// VNNI + VL, which also lets AVX-512 machines run and test this kernel).

#define DISTILL_VNNI256(NAME, TARGET, DPBUSD)                                                          \
__attribute__((always_inline, target(TARGET)))                                                         \
static inline void tile_##NAME(const int MR, const int NB, const args_t *a, int m0, int b0) {         \
    const int Kp = a->Kp, K4 = Kp / 4;                                                                 \
    const long bstride = (long)K4 * 64;                                                                \
    const uint8_t *x0 = a->xq + (long)m0 * Kp;                                                         \
    const int8_t *w0 = a->wp + (long)b0 * bstride;                                                     \
    __m256i acc[4][4];                                                                                 \
    UNROLL for (int r = 0; r < MR; r++) UNROLL for (int h = 0; h < 2 * NB; h++) acc[r][h] = _mm256_setzero_si256(); \
    for (int g = 0; g < K4; g++) {                                                                     \
        __m256i w[4];                                                                                  \
        UNROLL for (int h = 0; h < 2 * NB; h++)                                                        \
            w[h] = _mm256_loadu_si256((const __m256i *)(w0 + (h / 2) * bstride + (h % 2) * 32));       \
        UNROLL for (int r = 0; r < MR; r++) {                                                          \
            int32_t x4;                                                                                \
            memcpy(&x4, x0 + (long)r * Kp, 4);                                                         \
            __m256i xb = _mm256_set1_epi32(x4);                                                        \
            UNROLL for (int h = 0; h < 2 * NB; h++) acc[r][h] = DPBUSD(acc[r][h], xb, w[h]);           \
        }                                                                                              \
        x0 += 4;                                                                                       \
        w0 += 64;                                                                                      \
    }                                                                                                  \
    UNROLL for (int h = 0; h < 2 * NB; h++) {                                                          \
        const int n = 16 * b0 + 8 * h;                                                                 \
        if (n >= a->N) break;                                                                          \
        const int left = a->N - n, count = left >= 8 ? 8 : left;                                       \
        const __m256i cs = _mm256_loadu_si256((const __m256i *)(a->colsum + n));                       \
        const __m256 wsv = _mm256_loadu_ps(a->ws + n);                                                 \
        float bb[8] = {0};                                                                             \
        if (a->bias) for (int i = 0; i < count; i++) bb[i] = a->bias[n + i];                           \
        UNROLL for (int r = 0; r < MR; r++) {                                                          \
            const int m = m0 + r;                                                                      \
            __m256i v = _mm256_sub_epi32(acc[r][h], _mm256_mullo_epi32(_mm256_set1_epi32(a->xzero[m]), cs)); \
            __m256 sc = _mm256_mul_ps(_mm256_set1_ps(a->xs[m]), wsv);                                  \
            float *dst = a->y + (long)m * a->ldy + n;                                                  \
            float out[8] = {0};                                                                        \
            if (a->accumulate) memcpy(out, dst, 4 * count); else memcpy(out, bb, 32);                  \
            _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), sc, _mm256_loadu_ps(out)));   \
            memcpy(dst, out, 4 * count);                                                               \
        }                                                                                              \
    }                                                                                                  \
}                                                                                                      \
__attribute__((target(TARGET)))                                                                        \
static void gemm_##NAME(const args_t *a) {                                                             \
    const int blocks = (a->N + 15) / 16;                                                               \
    for (int b0 = 0; b0 < blocks; b0 += 2) {                                                           \
        const int nb = blocks - b0 < 2 ? blocks - b0 : 2;                                              \
        for (int m = 0; m < a->M; m += 4) {                                                            \
            const int mr = a->M - m < 4 ? a->M - m : 4;                                                \
            switch (mr * 4 + nb) {                                                                     \
            case 1 * 4 + 1: tile_##NAME(1, 1, a, m, b0); break;                                        \
            case 1 * 4 + 2: tile_##NAME(1, 2, a, m, b0); break;                                        \
            case 2 * 4 + 1: tile_##NAME(2, 1, a, m, b0); break;                                        \
            case 2 * 4 + 2: tile_##NAME(2, 2, a, m, b0); break;                                        \
            case 3 * 4 + 1: tile_##NAME(3, 1, a, m, b0); break;                                        \
            case 3 * 4 + 2: tile_##NAME(3, 2, a, m, b0); break;                                        \
            case 4 * 4 + 1: tile_##NAME(4, 1, a, m, b0); break;                                        \
            case 4 * 4 + 2: tile_##NAME(4, 2, a, m, b0); break;                                        \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
}

DISTILL_VNNI256(avxvnni, "avx2,fma,avxvnni", _mm256_dpbusd_avx_epi32)
DISTILL_VNNI256(avx512vl_vnni, "avx2,fma,avx512f,avx512vl,avx512vnni", _mm256_dpbusd_epi32)

// ---------------------------------------------------------------- AVX2 (no VNNI)
// Exact 16-bit products. Weights are widened to int16 once per matrix, in panels of 24 columns
// ([⌈N/24⌉][Kp/2][24][2], `wp16`); (x − zero point) is widened to int16 once per block of
// rows. vpmaddwd multiplies a broadcast pair (x_k, x_k+1) by eight columns' pairs and sums
// each pair into int32: |x − z| ≤ 255 and |w| ≤ 127, so a pair is at most 64,770 and nothing
// saturates. Tile: MR ≤ 3 rows × 24 columns: 9 accumulators, 3 weight vectors, the broadcast
// pair and the product fit the 16 registers without spilling. The products of a tile are
// written to a small int32 block, then dequantized like every other kernel's.

#define NR16 24
#define MC16 96

// The products of MR rows (int16 (x − z), row stride Kp) with one panel: acc [MR][24] int32.
// Kept out of line, one copy per MR, so each loop is compiled on its own.
#define DISTILL_AVX2_PRODUCTS(MR)                                                                            \
__attribute__((noinline, target("avx2,fma")))                                                                \
static void products_avx2_##MR(const int16_t *xw, int Kp, const int16_t *w, int32_t *out) {                \
    const int K2 = Kp / 2;                                                                                   \
    __m256i acc[MR][3];                                                                                      \
    UNROLL for (int r = 0; r < MR; r++) UNROLL for (int j = 0; j < 3; j++) acc[r][j] = _mm256_setzero_si256(); \
    for (int p = 0; p < K2; p++) {                                                                           \
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + 0));                                     \
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + 16));                                    \
        const __m256i w2 = _mm256_loadu_si256((const __m256i *)(w + 32));                                    \
        UNROLL for (int r = 0; r < MR; r++) {                                                                \
            int32_t pair;                                                                                    \
            memcpy(&pair, xw + (long)r * Kp + 2 * p, 4);                                                     \
            const __m256i xb = _mm256_set1_epi32(pair);                                                      \
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(xb, w0));                              \
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(xb, w1));                              \
            acc[r][2] = _mm256_add_epi32(acc[r][2], _mm256_madd_epi16(xb, w2));                              \
        }                                                                                                    \
        w += 2 * NR16;                                                                                       \
    }                                                                                                        \
    UNROLL for (int r = 0; r < MR; r++) UNROLL for (int j = 0; j < 3; j++)                                   \
        _mm256_storeu_si256((__m256i *)(out + r * NR16 + 8 * j), acc[r][j]);                                 \
}
DISTILL_AVX2_PRODUCTS(1)
DISTILL_AVX2_PRODUCTS(2)
DISTILL_AVX2_PRODUCTS(3)

/// y = fmaf(acc, xs[m]·ws[n], addend) for mr rows × the panel's columns. Full groups of eight
/// columns use plain vector loads and stores (AMD's masked stores are slow); the last, partial
/// group is done column by column with the same arithmetic.
__attribute__((target("avx2,fma")))
static void dequantize_avx2(const args_t *a, const int32_t *acc, int mr, int m0, int n0) {
    for (int j = 0; j < 3; j++) {
        const int n = n0 + 8 * j, left = a->N - n;
        if (left <= 0) break;
        if (left < 8) {
            for (int r = 0; r < mr; r++) {
                const int m = m0 + r;
                for (int c = 0; c < left; c++) {
                    float *dst = a->y + (long)m * a->ldy + n + c;
                    *dst = fmaf((float)acc[r * NR16 + 8 * j + c], a->xs[m] * a->ws[n + c], addend(a, dst, n + c));
                }
            }
            break;
        }
        const __m256 wsv = _mm256_loadu_ps(a->ws + n);
        const __m256 b = a->bias ? _mm256_loadu_ps(a->bias + n) : _mm256_setzero_ps();
        for (int r = 0; r < mr; r++) {
            const int m = m0 + r;
            float *dst = a->y + (long)m * a->ldy + n;
            const __m256 sc = _mm256_mul_ps(_mm256_set1_ps(a->xs[m]), wsv);
            const __m256 add = a->accumulate ? _mm256_loadu_ps(dst) : b;
            const __m256i v = _mm256_loadu_si256((const __m256i *)(acc + r * NR16 + 8 * j));
            _mm256_storeu_ps(dst, _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), sc, add));
        }
    }
}

__attribute__((target("avx2,fma")))
static void gemm_avx2(const args_t *a) {
    const int Kp = a->Kp;
    int16_t *xw = (int16_t *)aligned_alloc(64, ((size_t)MC16 * Kp * 2 + 63) & ~(size_t)63);
    if (!xw) { gemm_scalar(a); return; }
    for (int mb = 0; mb < a->M; mb += MC16) {
        const int mc = a->M - mb < MC16 ? a->M - mb : MC16;
        // (x − z) of the block's rows as int16; the padding holds z, so it becomes 0.
        for (int r = 0; r < mc; r++) {
            const uint8_t *x = a->xq + (long)(mb + r) * Kp;
            int16_t *o = xw + (long)r * Kp;
            const __m256i z = _mm256_set1_epi16((short)a->xzero[mb + r]);
            int k = 0;
            for (; k + 16 <= Kp; k += 16)
                _mm256_storeu_si256((__m256i *)(o + k), _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + k))), z));
            for (; k < Kp; k++) o[k] = (int16_t)((int)x[k] - a->xzero[mb + r]);
        }
        // Column panels outside (a panel's weights stay in cache), row tiles inside.
        for (int n0 = 0; n0 < a->N; n0 += NR16) {
            const int16_t *w = a->wp16 + (long)(n0 / NR16) * (Kp / 2) * 2 * NR16;
            int32_t acc[3 * NR16];
            for (int m = 0; m < mc; m += 3) {
                const int16_t *xr = xw + (long)m * Kp;
                const int mr = mc - m < 3 ? mc - m : 3;
                switch (mr) {
                case 1: products_avx2_1(xr, Kp, w, acc); break;
                case 2: products_avx2_2(xr, Kp, w, acc); break;
                default: products_avx2_3(xr, Kp, w, acc); break;
                }
                dequantize_avx2(a, acc, mr, mb + m, n0);
            }
        }
    }
    free(xw);
}

static uint32_t detect(void) {
    uint32_t k = 1u << DISTILL_I8_SCALAR;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) k |= 1u << DISTILL_I8_AVX2;
    if (__builtin_cpu_supports("avxvnni") && __builtin_cpu_supports("fma")) k |= 1u << DISTILL_I8_AVXVNNI;
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) k |= 1u << DISTILL_I8_AVX512VNNI;
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
        k |= 1u << DISTILL_I8_AVX512VL_VNNI256;
    return k;
}

#else
static uint32_t detect(void) { return 1u << DISTILL_I8_SCALAR; }
#endif  // DISTILL_X86

uint32_t distill_i8_available(void) {
    static volatile int64_t cached = -1;   // a benign race: every thread computes the same value
    if (cached < 0) cached = detect();
    return (uint32_t)cached;
}

void distill_i8_gemm(int kernel, const distill_i8_args *a) {
    if (a->M <= 0 || a->N <= 0) return;
    const uint32_t avail = distill_i8_available();
    if (!(avail & (1u << kernel))) kernel = DISTILL_I8_SCALAR;
    switch (kernel) {
#ifdef DISTILL_X86
    case DISTILL_I8_AVX512VNNI: gemm_avx512vnni(a); return;
    case DISTILL_I8_AVXVNNI: gemm_avxvnni(a); return;
    case DISTILL_I8_AVX512VL_VNNI256: gemm_avx512vl_vnni(a); return;
    case DISTILL_I8_AVX2: if (a->wp16) { gemm_avx2(a); return; } gemm_scalar(a); return;
#endif
    default: gemm_scalar(a); return;
    }
}

void distill_i8_dequantize(const distill_i8_args *a, const int32_t *acc, long ldacc) {
    for (int m = 0; m < a->M; m++) {
        for (int n = 0; n < a->N; n++) {
            const int32_t v = acc[(long)m * ldacc + n] - a->xzero[m] * a->colsum[n];
            float *dst = a->y + (long)m * a->ldy + n;
            *dst = fmaf((float)v, a->xs[m] * a->ws[n], addend(a, dst, n));
        }
    }
}
