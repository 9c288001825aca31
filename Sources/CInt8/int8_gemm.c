// int8 matrix products: a portable reference and x86 SIMD versions chosen at run time.
// See include/distill_int8.h for the layout. Every kernel accumulates the same integers and
// dequantizes with the same single fused multiply-add, so results are bit-identical.

#include "distill_int8.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DISTILL_X86 1
#endif

static inline float dequant(int32_t acc, float xs, float ws, const float *bias, int n) {
    return fmaf((float)acc, xs * ws, bias ? bias[n] : 0.0f);
}

// ---------------------------------------------------------------- portable reference

static void gemm_scalar(int M, int N, int Kp, const uint8_t *xq, const int8_t *wp, const int32_t *wsum,
                        const float *xs, const float *ws, const float *bias, float *y, int ldy) {
    const int K4 = Kp / 4;
    for (int m = 0; m < M; m++) {
        const uint8_t *x = xq + (long)m * Kp;
        for (int n = 0; n < N; n++) {
            const int8_t *blk = wp + (long)(n / 16) * K4 * 64 + (n % 16) * 4;
            int32_t acc = 0;
            for (int g = 0; g < K4; g++) {
                const int8_t *w = blk + (long)g * 64;
                for (int j = 0; j < 4; j++) acc += (int32_t)x[4 * g + j] * (int32_t)w[j];
            }
            acc -= wsum[n];
            y[(long)m * ldy + n] = dequant(acc, xs[m], ws[n], bias, n);
        }
    }
}

#ifdef DISTILL_X86

// ---------------------------------------------------------------- AVX-512 VNNI
// Tile: up to 6 rows × 4 blocks of 16 columns, 24 accumulators.

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void tile_avx512vnni(int mr, int nb, int N0, int N, int Kp, const uint8_t *xq, const int8_t *wp,
                            const int32_t *wsum, const float *xs, const float *ws, const float *bias,
                            float *y, int ldy) {
    const int K4 = Kp / 4;
    const long bstride = (long)K4 * 64;
    __m512i acc[6][4];
    for (int r = 0; r < 6; r++) for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_si512();
    for (int g = 0; g < K4; g++) {
        __m512i w[4];
        for (int j = 0; j < nb; j++) w[j] = _mm512_loadu_si512((const void *)(wp + j * bstride + (long)g * 64));
        for (int r = 0; r < mr; r++) {
            int32_t x4;
            memcpy(&x4, xq + (long)r * Kp + 4 * g, 4);
            __m512i xb = _mm512_set1_epi32(x4);
            for (int j = 0; j < nb; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], xb, w[j]);
        }
    }
    for (int j = 0; j < nb; j++) {
        int n = N0 + 16 * j;
        int left = N - n;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512i sum = _mm512_loadu_si512((const void *)(wsum + n));
        __m512 wsv = _mm512_loadu_ps(ws + n);
        __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + n) : _mm512_setzero_ps();
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][j], sum));
            __m512 s = _mm512_mul_ps(_mm512_set1_ps(xs[r]), wsv);
            _mm512_mask_storeu_ps(y + (long)r * ldy + n, mask, _mm512_fmadd_ps(a, s, b));
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void gemm_avx512vnni(int M, int N, int Kp, const uint8_t *xq, const int8_t *wp, const int32_t *wsum,
                            const float *xs, const float *ws, const float *bias, float *y, int ldy) {
    const long bstride = (long)(Kp / 4) * 64;
    const int blocks = (N + 15) / 16;
    for (int b0 = 0; b0 < blocks; b0 += 4) {
        int nb = blocks - b0 < 4 ? blocks - b0 : 4;
        for (int m = 0; m < M; m += 6) {
            int mr = M - m < 6 ? M - m : 6;
            tile_avx512vnni(mr, nb, 16 * b0, N, Kp, xq + (long)m * Kp, wp + b0 * bstride, wsum, xs + m, ws, bias,
                            y + (long)m * ldy, ldy);
        }
    }
}

// ---------------------------------------------------------------- 256-bit VNNI
// A 16-column block is two 8-column halves. Tile: up to 4 rows × 2 blocks (4 halves).
// One source, two encodings of vpdpbusd: VEX (AVX-VNNI, e.g. Alder Lake) and EVEX
// (AVX-512 VNNI + VL, which also lets AVX-512 machines run and test this kernel).

#define DISTILL_VNNI256(NAME, TARGET, DPBUSD)                                                          \
__attribute__((target(TARGET)))                                                                        \
static void tile_##NAME(int mr, int nb, int N0, int N, int Kp, const uint8_t *xq, const int8_t *wp,   \
                        const int32_t *wsum, const float *xs, const float *ws, const float *bias,       \
                        float *y, int ldy) {                                                           \
    const int K4 = Kp / 4;                                                                             \
    const long bstride = (long)K4 * 64;                                                                \
    __m256i acc[4][4];                                                                                 \
    for (int r = 0; r < 4; r++) for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_si256();       \
    const int halves = 2 * nb;                                                                         \
    for (int g = 0; g < K4; g++) {                                                                     \
        __m256i w[4];                                                                                  \
        for (int h = 0; h < halves; h++)                                                               \
            w[h] = _mm256_loadu_si256((const __m256i *)(wp + (h / 2) * bstride + (long)g * 64 + (h % 2) * 32)); \
        for (int r = 0; r < mr; r++) {                                                                 \
            int32_t x4;                                                                                \
            memcpy(&x4, xq + (long)r * Kp + 4 * g, 4);                                                 \
            __m256i xb = _mm256_set1_epi32(x4);                                                        \
            for (int h = 0; h < halves; h++) acc[r][h] = DPBUSD(acc[r][h], xb, w[h]);                  \
        }                                                                                              \
    }                                                                                                  \
    for (int h = 0; h < halves; h++) {                                                                 \
        int n = N0 + 8 * h;                                                                            \
        if (n >= N) break;                                                                             \
        __m256i sum = _mm256_loadu_si256((const __m256i *)(wsum + n));                                 \
        __m256 wsv = _mm256_loadu_ps(ws + n);                                                          \
        int left = N - n;                                                                              \
        float bb[8] = {0};                                                                             \
        if (bias) for (int i = 0; i < 8 && i < left; i++) bb[i] = bias[n + i];                        \
        __m256 b = _mm256_loadu_ps(bb);                                                                \
        for (int r = 0; r < mr; r++) {                                                                 \
            __m256 a = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][h], sum));                           \
            __m256 s = _mm256_mul_ps(_mm256_set1_ps(xs[r]), wsv);                                      \
            float out[8];                                                                              \
            _mm256_storeu_ps(out, _mm256_fmadd_ps(a, s, b));                                           \
            memcpy(y + (long)r * ldy + n, out, 4 * (left >= 8 ? 8 : left));                            \
        }                                                                                              \
    }                                                                                                  \
}                                                                                                      \
__attribute__((target(TARGET)))                                                                        \
static void gemm_##NAME(int M, int N, int Kp, const uint8_t *xq, const int8_t *wp, const int32_t *wsum, \
                        const float *xs, const float *ws, const float *bias, float *y, int ldy) {      \
    const long bstride = (long)(Kp / 4) * 64;                                                          \
    const int blocks = (N + 15) / 16;                                                                  \
    for (int b0 = 0; b0 < blocks; b0 += 2) {                                                           \
        int nb = blocks - b0 < 2 ? blocks - b0 : 2;                                                    \
        for (int m = 0; m < M; m += 4) {                                                               \
            int mr = M - m < 4 ? M - m : 4;                                                            \
            tile_##NAME(mr, nb, 16 * b0, N, Kp, xq + (long)m * Kp, wp + b0 * bstride, wsum, xs + m, ws, \
                        bias, y + (long)m * ldy, ldy);                                                 \
        }                                                                                              \
    }                                                                                                  \
}

DISTILL_VNNI256(avxvnni, "avx2,fma,avxvnni", _mm256_dpbusd_avx_epi32)
DISTILL_VNNI256(avx512vl_vnni, "avx2,fma,avx512f,avx512vl,avx512vnni", _mm256_dpbusd_epi32)

// ---------------------------------------------------------------- AVX2 (no VNNI)
// Exact 16-bit products: weights and (x − 128) widened to int16, vpmaddwd sums pairs of
// k into int32. For a block of 16 columns × 4 k, the 64 weight bytes widen to four vectors of
// 16 int16 (4 columns each); each accumulator lane holds one column's partial sum over two k,
// and the two lanes of a column are added at the end.

__attribute__((target("avx2,fma")))
static void tile_avx2(int mr, int N0, int N, int Kp, const uint8_t *xq, const int8_t *wp,
                      const int32_t *wsum, const float *xs, const float *ws, const float *bias,
                      float *y, int ldy) {
    const int K4 = Kp / 4;
    __m256i acc[4][4];
    for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++) acc[r][q] = _mm256_setzero_si256();
    const __m256i off = _mm256_set1_epi16(128);
    for (int g = 0; g < K4; g++) {
        const int8_t *blk = wp + (long)g * 64;
        __m256i w[4];
        for (int q = 0; q < 4; q++) w[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 16 * q)));
        for (int r = 0; r < mr; r++) {
            int32_t x4;
            memcpy(&x4, xq + (long)r * Kp + 4 * g, 4);
            // (x0, x1, x2, x3) − 128 as int16, repeated across the vector.
            __m256i xv = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_set1_epi32(x4)), off);
            for (int q = 0; q < 4; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(w[q], xv));
        }
    }
    // acc[r][q] lanes: (c0: k0k1, c0: k2k3, c1: k0k1, c1: k2k3, …) for columns 4q … 4q+3. The
    // activations were already centred (x − 128), so wsum is not subtracted here.
    (void)wsum;
    int left = N - N0;
    for (int r = 0; r < mr; r++) {
        int32_t lanes[32];
        for (int q = 0; q < 4; q++) _mm256_storeu_si256((__m256i *)(lanes + 8 * q), acc[r][q]);
        for (int c = 0; c < 16 && c < left; c++) {
            int32_t a = lanes[2 * c] + lanes[2 * c + 1];
            int n = N0 + c;
            y[(long)r * ldy + n] = dequant(a, xs[r], ws[n], bias, n);
        }
    }
}

__attribute__((target("avx2,fma")))
static void gemm_avx2(int M, int N, int Kp, const uint8_t *xq, const int8_t *wp, const int32_t *wsum,
                      const float *xs, const float *ws, const float *bias, float *y, int ldy) {
    const long bstride = (long)(Kp / 4) * 64;
    const int blocks = (N + 15) / 16;
    for (int b = 0; b < blocks; b++) {
        for (int m = 0; m < M; m += 4) {
            int mr = M - m < 4 ? M - m : 4;
            tile_avx2(mr, 16 * b, N, Kp, xq + (long)m * Kp, wp + b * bstride, wsum, xs + m, ws, bias,
                      y + (long)m * ldy, ldy);
        }
    }
}

#endif  // DISTILL_X86

uint32_t distill_i8_available(void) {
    uint32_t k = 1u << DISTILL_I8_SCALAR;
#ifdef DISTILL_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) k |= 1u << DISTILL_I8_AVX2;
    if (__builtin_cpu_supports("avxvnni")) k |= 1u << DISTILL_I8_AVXVNNI;
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) k |= 1u << DISTILL_I8_AVX512VNNI;
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
        k |= 1u << DISTILL_I8_AVX512VL_VNNI256;
#endif
    return k;
}

void distill_i8_gemm(int kernel, int M, int N, int Kp, const uint8_t *xq, const int8_t *wp, const int32_t *wsum,
                     const float *xs, const float *ws, const float *bias, float *y, int ldy) {
    if (M <= 0 || N <= 0) return;
#ifdef DISTILL_X86
    uint32_t avail = distill_i8_available();
    if (kernel == DISTILL_I8_AVX512VNNI && (avail & (1u << kernel))) { gemm_avx512vnni(M, N, Kp, xq, wp, wsum, xs, ws, bias, y, ldy); return; }
    if (kernel == DISTILL_I8_AVXVNNI && (avail & (1u << kernel))) { gemm_avxvnni(M, N, Kp, xq, wp, wsum, xs, ws, bias, y, ldy); return; }
    if (kernel == DISTILL_I8_AVX512VL_VNNI256 && (avail & (1u << kernel))) { gemm_avx512vl_vnni(M, N, Kp, xq, wp, wsum, xs, ws, bias, y, ldy); return; }
    if (kernel == DISTILL_I8_AVX2 && (avail & (1u << kernel))) { gemm_avx2(M, N, Kp, xq, wp, wsum, xs, ws, bias, y, ldy); return; }
#endif
    gemm_scalar(M, N, Kp, xq, wp, wsum, xs, ws, bias, y, ldy);
}
