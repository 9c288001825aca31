// int8 matrix products: a portable reference and x86 SIMD versions chosen at run time.
// See include/distill_int8.h for the layout. Every kernel accumulates the same integers and
// dequantizes with the same single fused multiply-add, so given the same activation codes the
// results are bit-identical (AVX2 without VNNI takes 7-bit codes; see Int8Kernel.activationLevels).
//
// The VNNI kernels multiply the unsigned activations by the signed weights as they are
// (vpdpbusd) and subtract the zero point afterwards: Σ (x − z)·w = Σ x·w − z·Σ w.

#include "distill_int8.h"

// Every kernel must round exactly as the reference does: no fused multiply-adds the compiler
// invents (the fmaf calls below are written out).
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

// What row m, column n's product is added to: y's old value or the bias, then the outlier
// channels' fp32 products, in channel order.
static inline float addend(const args_t *a, int m, const float *dst, int n) {
    float t = a->accumulate ? *dst : (a->bias ? a->bias[n] : 0.0f);
    for (int j = 0; j < a->ko; j++) t = fmaf(a->xo[(long)m * a->ko + j], a->wo[(long)j * a->ldwo + n], t);
    return t;
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
            *dst = fmaf((float)acc, a->xs[m] * a->ws[n], addend(a, m, dst, n));
        }
    }
}

#ifdef DISTILL_X86

#define UNROLL _Pragma("clang loop unroll(full)")

// ---------------------------------------------------------------- AVX-512 VNNI
// Tile: MR ≤ 6 rows × NB ≤ 4 blocks of 16 columns, 24 accumulators in registers. MR and NB
// are compile-time constants in each instance (always inlined from the dispatch below), so
// the loops unroll and nothing spills (in the z_ instance; the emulated one spills,
// harmlessly). The column panel is the outer loop: its weights stay in cache while every row
// tile passes over them.
//
// The tile and its loops are written once over the few 512-bit operations they use, named by a
// prefix: z_ are the AVX-512 instructions; e_ (further down) the same on two AVX2 halves, with
// vpdpbusd written out and the masked loads and stores lane by lane, so that CPUs without
// AVX-512 run this kernel's indexing, tails and dequantization in the tests.

#define Z_TARGET "avx512f,avx512bw,avx512vnni"
#define Z_OP __attribute__((always_inline, target(Z_TARGET))) static inline
typedef __m512i z_vi;
typedef __m512 z_vf;
typedef __mmask16 z_mask;
Z_OP z_vi z_zero_i(void) { return _mm512_setzero_si512(); }
Z_OP z_vi z_loadu_i(const void *p) { return _mm512_loadu_si512(p); }
Z_OP z_vi z_set1_i(int32_t v) { return _mm512_set1_epi32(v); }
Z_OP z_vi z_dpbusd(z_vi acc, z_vi x, z_vi w) { return _mm512_dpbusd_epi32(acc, x, w); }
Z_OP z_vi z_sub_i(z_vi p, z_vi q) { return _mm512_sub_epi32(p, q); }
Z_OP z_vi z_mullo_i(z_vi p, z_vi q) { return _mm512_mullo_epi32(p, q); }
Z_OP z_vf z_zero_f(void) { return _mm512_setzero_ps(); }
Z_OP z_vf z_set1_f(float v) { return _mm512_set1_ps(v); }
Z_OP z_vf z_loadu_f(const float *p) { return _mm512_loadu_ps(p); }
Z_OP z_vf z_maskz_loadu_f(z_mask k, const float *p) { return _mm512_maskz_loadu_ps(k, p); }
Z_OP z_vf z_mul_f(z_vf p, z_vf q) { return _mm512_mul_ps(p, q); }
Z_OP z_vf z_fmadd_f(z_vf p, z_vf q, z_vf r) { return _mm512_fmadd_ps(p, q, r); }
Z_OP z_vf z_cvt_f(z_vi v) { return _mm512_cvtepi32_ps(v); }
Z_OP void z_mask_storeu_f(float *p, z_mask k, z_vf v) { _mm512_mask_storeu_ps(p, k, v); }

#define DISTILL_TILE512(P, TARGET)                                                                     \
__attribute__((always_inline, target(TARGET)))                                                         \
static inline void tile512_##P(const int MR, const int NB, const args_t *a, int m0, int b0) {         \
    const int Kp = a->Kp, K4 = Kp / 4;                                                                 \
    const long bstride = (long)K4 * 64;                                                                \
    const uint8_t *x0 = a->xq + (long)m0 * Kp;                                                         \
    const int8_t *w0 = a->wp + (long)b0 * bstride;                                                     \
    P##vi acc[6][4];                                                                                   \
    UNROLL for (int r = 0; r < MR; r++) UNROLL for (int j = 0; j < NB; j++) acc[r][j] = P##zero_i();  \
    for (int g = 0; g < K4; g++) {                                                                     \
        P##vi w[4];                                                                                    \
        UNROLL for (int j = 0; j < NB; j++) w[j] = P##loadu_i(w0 + j * bstride);                       \
        UNROLL for (int r = 0; r < MR; r++) {                                                          \
            int32_t x4;                                                                                \
            memcpy(&x4, x0 + (long)r * Kp, 4);                                                         \
            const P##vi xb = P##set1_i(x4);                                                            \
            UNROLL for (int j = 0; j < NB; j++) acc[r][j] = P##dpbusd(acc[r][j], xb, w[j]);            \
        }                                                                                              \
        x0 += 4;                                                                                       \
        w0 += 64;                                                                                      \
    }                                                                                                  \
    UNROLL for (int j = 0; j < NB; j++) {                                                              \
        const int n = 16 * (b0 + j), left = a->N - n;                                                  \
        const P##mask mask = left >= 16 ? (P##mask)0xFFFF : (P##mask)((1u << left) - 1);              \
        const P##vi cs = P##loadu_i(a->colsum + n);                                                    \
        const P##vf wsv = P##loadu_f(a->ws + n);                                                       \
        const P##vf b = a->bias ? P##maskz_loadu_f(mask, a->bias + n) : P##zero_f();                   \
        UNROLL for (int r = 0; r < MR; r++) {                                                          \
            const int m = m0 + r;                                                                      \
            const P##vi v = P##sub_i(acc[r][j], P##mullo_i(P##set1_i(a->xzero[m]), cs));               \
            const P##vf sc = P##mul_f(P##set1_f(a->xs[m]), wsv);                                       \
            float *dst = a->y + (long)m * a->ldy + n;                                                  \
            P##vf add = a->accumulate ? P##maskz_loadu_f(mask, dst) : b;                               \
            for (int o = 0; o < a->ko; o++)                                                            \
                add = P##fmadd_f(P##set1_f(a->xo[(long)m * a->ko + o]),                                \
                                 P##maskz_loadu_f(mask, a->wo + (long)o * a->ldwo + n), add);          \
            P##mask_storeu_f(dst, mask, P##fmadd_f(P##cvt_f(v), sc, add));                             \
        }                                                                                              \
    }                                                                                                  \
}

#define DISTILL_GEMM512(NAME, P, TARGET)                                                               \
__attribute__((target(TARGET)))                                                                        \
static void gemm_##NAME(const args_t *a) {                                                             \
    const int blocks = (a->N + 15) / 16;                                                               \
    for (int b0 = 0; b0 < blocks; b0 += 4) {                                                           \
        const int nb = blocks - b0 < 4 ? blocks - b0 : 4;                                              \
        for (int m = 0; m < a->M; m += 6) {                                                            \
            const int mr = a->M - m < 6 ? a->M - m : 6;                                                \
            switch (mr * 8 + nb) {                                                                     \
            TILE512_ROW(P, 1) TILE512_ROW(P, 2) TILE512_ROW(P, 3)                                      \
            TILE512_ROW(P, 4) TILE512_ROW(P, 5) TILE512_ROW(P, 6)                                      \
            default: abort();  /* every (mr, nb) has a case */                                         \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
}
#define TILE512_CASE(P, MR, NB) case MR * 8 + NB: tile512_##P(MR, NB, a, m, b0); break;
#define TILE512_ROW(P, MR) TILE512_CASE(P, MR, 1) TILE512_CASE(P, MR, 2) TILE512_CASE(P, MR, 3) TILE512_CASE(P, MR, 4)

DISTILL_TILE512(z_, Z_TARGET)
DISTILL_GEMM512(avx512vnni, z_, Z_TARGET)

// ---------------------------------------------------------------- 256-bit VNNI
// A 16-column block is two 8-column halves. One tile source, two encodings of vpdpbusd: VEX
// (AVX-VNNI: Alder Lake and later clients, Sierra Forest) and EVEX (AVX-512 VNNI + VL, which
// also lets AVX-512 machines run and test this kernel). Each instance's tile fits its register
// file: VEX has 16 ymm registers, so MR ≤ 6 rows × one block (12 accumulators, 2 weight
// vectors, the broadcast; 12 independent sums also cover vpdpbusd's 5-cycle latency). A 4 × 2
// tile there needed 21 and clang kept five accumulators on the stack: 12 stack loads and stores
// per 16 vpdpbusd in the inner loop. EVEX has 32: MR ≤ 4 rows × NB ≤ 2 blocks, 16 accumulators.

#define DISTILL_VNNI256_TILE(NAME, TARGET, DPBUSD)                                                     \
__attribute__((always_inline, target(TARGET)))                                                         \
static inline void tile_##NAME(const int MR, const int NB, const args_t *a, int m0, int b0) {         \
    const int Kp = a->Kp, K4 = Kp / 4;                                                                 \
    const long bstride = (long)K4 * 64;                                                                \
    const uint8_t *x0 = a->xq + (long)m0 * Kp;                                                         \
    const int8_t *w0 = a->wp + (long)b0 * bstride;                                                     \
    __m256i acc[6][4];                                                                                 \
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
            __m256 add = _mm256_loadu_ps(out);                                                         \
            for (int o = 0; o < a->ko; o++) {                                                          \
                float wo8[8] = {0};                                                                    \
                memcpy(wo8, a->wo + (long)o * a->ldwo + n, 4 * count);                                 \
                add = _mm256_fmadd_ps(_mm256_set1_ps(a->xo[(long)m * a->ko + o]), _mm256_loadu_ps(wo8), add); \
            }                                                                                          \
            _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), sc, add));                    \
            memcpy(dst, out, 4 * count);                                                               \
        }                                                                                              \
    }                                                                                                  \
}

// The loops around a tile: column panels of NBMAX blocks outside (their weights stay in cache
// while every row tile passes over them), row tiles of MRMAX inside. CASES lists one
// VNNI256_CASE per (rows, blocks) a tile can have, so each is a compile-time shape.
#define VNNI256_CASE(TILE, MR, NB) case MR * 4 + NB: tile_##TILE(MR, NB, a, m, b0); break;
#define DISTILL_VNNI256_GEMM(NAME, TILE, TARGET, MRMAX, NBMAX, CASES)                                 \
__attribute__((target(TARGET)))                                                                        \
static void gemm_##NAME(const args_t *a) {                                                             \
    const int blocks = (a->N + 15) / 16;                                                               \
    for (int b0 = 0; b0 < blocks; b0 += NBMAX) {                                                       \
        const int nb = blocks - b0 < NBMAX ? blocks - b0 : NBMAX;                                      \
        for (int m = 0; m < a->M; m += MRMAX) {                                                        \
            const int mr = a->M - m < MRMAX ? a->M - m : MRMAX;                                        \
            switch (mr * 4 + nb) { CASES default: abort(); /* every (mr, nb) has a case */ }          \
        }                                                                                              \
    }                                                                                                  \
}

#define VEX_CASES(TILE) VNNI256_CASE(TILE, 1, 1) VNNI256_CASE(TILE, 2, 1) VNNI256_CASE(TILE, 3, 1)   \
                        VNNI256_CASE(TILE, 4, 1) VNNI256_CASE(TILE, 5, 1) VNNI256_CASE(TILE, 6, 1)
#define EVEX_CASES(TILE) VNNI256_CASE(TILE, 1, 1) VNNI256_CASE(TILE, 1, 2) VNNI256_CASE(TILE, 2, 1)  \
                         VNNI256_CASE(TILE, 2, 2) VNNI256_CASE(TILE, 3, 1) VNNI256_CASE(TILE, 3, 2)  \
                         VNNI256_CASE(TILE, 4, 1) VNNI256_CASE(TILE, 4, 2)

DISTILL_VNNI256_TILE(avxvnni, "avx2,fma,avxvnni", _mm256_dpbusd_avx_epi32)
DISTILL_VNNI256_GEMM(avxvnni, avxvnni, "avx2,fma,avxvnni", 6, 1, VEX_CASES(avxvnni))
DISTILL_VNNI256_TILE(avx512vl_vnni, "avx2,fma,avx512f,avx512vl,avx512vnni", _mm256_dpbusd_epi32)
DISTILL_VNNI256_GEMM(avx512vl_vnni, avx512vl_vnni, "avx2,fma,avx512f,avx512vl,avx512vnni", 4, 2, EVEX_CASES(avx512vl_vnni))

// vpdpbusd written out in AVX2, exactly: each 32-bit lane gains Σ_j x_j · w_j over its four
// unsigned × signed byte pairs. Even and odd bytes widen to 16 bits (zero- and sign-extended),
// and vpmaddwd sums each pair in int32, where nothing saturates (2 · 255 · 128 fits). With it
// the 256-bit kernels' tiles and loops (and, on two halves, the AVX-512 kernel's) run on any
// AVX2 CPU, so the tests check them on machines without VNNI (distill_i8_gemm_emulated).
__attribute__((always_inline, target("avx2,fma")))
static inline __m256i dpbusd_exact_avx2(__m256i acc, __m256i x, __m256i w) {
    const __m256i low = _mm256_set1_epi16(0x00ff);
    const __m256i xe = _mm256_and_si256(x, low), xo = _mm256_srli_epi16(x, 8);
    const __m256i we = _mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), wo = _mm256_srai_epi16(w, 8);
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(xe, we), _mm256_madd_epi16(xo, wo)));
}
DISTILL_VNNI256_TILE(emulated, "avx2,fma", dpbusd_exact_avx2)
DISTILL_VNNI256_GEMM(avxvnni_emulated, emulated, "avx2,fma", 6, 1, VEX_CASES(emulated))
DISTILL_VNNI256_GEMM(avx512vl_vnni_emulated, emulated, "avx2,fma", 4, 2, EVEX_CASES(emulated))

// The AVX-512 kernel's operations on two AVX2 halves (lanes 0-7 in lo, 8-15 in hi). Masked
// loads and stores go lane by lane through a buffer, touching only the lanes the mask names,
// as the instructions do.
#define E_TARGET "avx2,fma"
#define E_OP __attribute__((always_inline, target(E_TARGET))) static inline
typedef struct { __m256i lo, hi; } e_vi;
typedef struct { __m256 lo, hi; } e_vf;
typedef uint32_t e_mask;
E_OP e_vi e_zero_i(void) { return (e_vi){_mm256_setzero_si256(), _mm256_setzero_si256()}; }
E_OP e_vi e_loadu_i(const void *p) {
    return (e_vi){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)p + 1)};
}
E_OP e_vi e_set1_i(int32_t v) { return (e_vi){_mm256_set1_epi32(v), _mm256_set1_epi32(v)}; }
E_OP e_vi e_dpbusd(e_vi acc, e_vi x, e_vi w) {
    return (e_vi){dpbusd_exact_avx2(acc.lo, x.lo, w.lo), dpbusd_exact_avx2(acc.hi, x.hi, w.hi)};
}
E_OP e_vi e_sub_i(e_vi p, e_vi q) { return (e_vi){_mm256_sub_epi32(p.lo, q.lo), _mm256_sub_epi32(p.hi, q.hi)}; }
E_OP e_vi e_mullo_i(e_vi p, e_vi q) { return (e_vi){_mm256_mullo_epi32(p.lo, q.lo), _mm256_mullo_epi32(p.hi, q.hi)}; }
E_OP e_vf e_zero_f(void) { return (e_vf){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
E_OP e_vf e_set1_f(float v) { return (e_vf){_mm256_set1_ps(v), _mm256_set1_ps(v)}; }
E_OP e_vf e_loadu_f(const float *p) { return (e_vf){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
E_OP e_vf e_maskz_loadu_f(e_mask k, const float *p) {
    float t[16];
    for (int i = 0; i < 16; i++) t[i] = (k >> i) & 1 ? p[i] : 0.0f;
    return e_loadu_f(t);
}
E_OP e_vf e_mul_f(e_vf p, e_vf q) { return (e_vf){_mm256_mul_ps(p.lo, q.lo), _mm256_mul_ps(p.hi, q.hi)}; }
E_OP e_vf e_fmadd_f(e_vf p, e_vf q, e_vf r) {
    return (e_vf){_mm256_fmadd_ps(p.lo, q.lo, r.lo), _mm256_fmadd_ps(p.hi, q.hi, r.hi)};
}
E_OP e_vf e_cvt_f(e_vi v) { return (e_vf){_mm256_cvtepi32_ps(v.lo), _mm256_cvtepi32_ps(v.hi)}; }
E_OP void e_mask_storeu_f(float *p, e_mask k, e_vf v) {
    float t[16];
    _mm256_storeu_ps(t, v.lo);
    _mm256_storeu_ps(t + 8, v.hi);
    for (int i = 0; i < 16; i++) if ((k >> i) & 1) p[i] = t[i];
}
DISTILL_TILE512(e_, E_TARGET)
DISTILL_GEMM512(avx512vnni_emulated, e_, E_TARGET)

// ---------------------------------------------------------------- AVX2 (no VNNI)
// vpdpbusd emulated: vpmaddubsw multiplies four broadcast activations by eight columns' four
// weights and adds neighbouring products into int16 pairs, vpmaddwd by ones adds the pairs
// into int32. vpmaddubsw saturates a pair above 32,767, so this kernel takes activations of
// at most 7 bits (x ≤ 127, what Int8Kernel.avx2 asks QuantizedActivations for): a pair is then
// at most 2 · 127 · 128 = 32,512 and every product is exact, whatever the weights. Same packed
// weights as the VNNI kernels. Tile: MR ≤ 4 rows × one 16-column block, 8 accumulators; the
// block's weights (Kp · 16 bytes) stay in L1 while every row tile passes over them.

__attribute__((always_inline, target("avx2,fma")))
static inline __m256i dpbusd_avx2(__m256i acc, __m256i x, __m256i w, __m256i ones) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
}

/// One row's eight columns n ..< n + 8 from their int32 sums p:
///   y = fmaf(p − xzero[m]·colsum[n], xs[m]·ws[n], addend), addend as in addend() above.
/// Plain vector loads and stores (AMD's masked stores are slow): full groups only.
__attribute__((always_inline, target("avx2,fma")))
static inline void dequantize8_avx2(const args_t *a, __m256i p, int m, int n, __m256 wsv, __m256i cs, __m256 b) {
    float *dst = a->y + (long)m * a->ldy + n;
    const __m256 sc = _mm256_mul_ps(_mm256_set1_ps(a->xs[m]), wsv);
    __m256 add = a->accumulate ? _mm256_loadu_ps(dst) : b;
    for (int o = 0; o < a->ko; o++)
        add = _mm256_fmadd_ps(_mm256_set1_ps(a->xo[(long)m * a->ko + o]), _mm256_loadu_ps(a->wo + (long)o * a->ldwo + n), add);
    const __m256i v = _mm256_sub_epi32(p, _mm256_mullo_epi32(_mm256_set1_epi32(a->xzero[m]), cs));
    _mm256_storeu_ps(dst, _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), sc, add));
}

/// Fewer than eight columns left (N not a multiple of 8): the same arithmetic column by column,
/// from the row's sums p.
__attribute__((noinline, target("avx2,fma")))
static void dequantize_partial_avx2(const args_t *a, __m256i p, int m, int n, int left) {
    int32_t sums[8];
    _mm256_storeu_si256((__m256i *)sums, p);
    for (int c = 0; c < left; c++) {
        float *dst = a->y + (long)m * a->ldy + n + c;
        const int32_t v = sums[c] - a->xzero[m] * a->colsum[n + c];
        *dst = fmaf((float)v, a->xs[m] * a->ws[n + c], addend(a, m, dst, n + c));
    }
}

// MR rows (from m0) × the 16-column block from n0, w its packed weights: Σ_k x·w in eight
// accumulators, then dequantized straight from them, eight columns at a time.
// Kept out of line, one copy per MR, so each loop is compiled on its own.
#define DISTILL_AVX2_TILE(MR)                                                                                \
__attribute__((noinline, target("avx2,fma")))                                                                \
static void tile_avx2_##MR(const args_t *a, const int8_t *w, int m0, int n0) {                               \
    const int Kp = a->Kp, K4 = Kp / 4;                                                                       \
    const uint8_t *x = a->xq + (long)m0 * Kp;                                                                \
    const __m256i ones = _mm256_set1_epi16(1);                                                               \
    __m256i acc[MR][2];                                                                                      \
    UNROLL for (int r = 0; r < MR; r++) { acc[r][0] = _mm256_setzero_si256(); acc[r][1] = _mm256_setzero_si256(); } \
    for (int g = 0; g < K4; g++) {                                                                           \
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + 0));                                     \
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + 32));                                    \
        UNROLL for (int r = 0; r < MR; r++) {                                                                \
            int32_t x4;                                                                                      \
            memcpy(&x4, x + (long)r * Kp + 4 * g, 4);                                                        \
            const __m256i xb = _mm256_set1_epi32(x4);                                                        \
            acc[r][0] = dpbusd_avx2(acc[r][0], xb, w0, ones);                                                \
            acc[r][1] = dpbusd_avx2(acc[r][1], xb, w1, ones);                                                \
        }                                                                                                    \
        w += 64;                                                                                             \
    }                                                                                                        \
    UNROLL for (int j = 0; j < 2; j++) {                                                                     \
        const int n = n0 + 8 * j, left = a->N - n;                                                           \
        if (left >= 8) {                                                                                     \
            const __m256 wsv = _mm256_loadu_ps(a->ws + n);                                                   \
            const __m256i cs = _mm256_loadu_si256((const __m256i *)(a->colsum + n));                         \
            const __m256 b = a->bias ? _mm256_loadu_ps(a->bias + n) : _mm256_setzero_ps();                   \
            UNROLL for (int r = 0; r < MR; r++) dequantize8_avx2(a, acc[r][j], m0 + r, n, wsv, cs, b);      \
        } else if (left > 0) {                                                                               \
            UNROLL for (int r = 0; r < MR; r++) dequantize_partial_avx2(a, acc[r][j], m0 + r, n, left);     \
        }                                                                                                    \
    }                                                                                                        \
}
DISTILL_AVX2_TILE(1)
DISTILL_AVX2_TILE(2)
DISTILL_AVX2_TILE(3)
DISTILL_AVX2_TILE(4)

/// Rows a pass over the column blocks takes at a time in the AVX2 kernel (see gemm_avx2).
#define AVX2_ROW_BLOCK 32

__attribute__((target("avx2,fma")))
static void gemm_avx2(const args_t *a) {
    const int Kp = a->Kp, blocks = (a->N + 15) / 16;
    const long bstride = (long)(Kp / 4) * 64;
    // Blocks of 32 rows; in each, column blocks outside (a block's weights stay in L1 while the
    // row tiles pass over them) and row tiles inside. With more rows a block, its activations
    // (Kp bytes a row) and the scattered output rows it writes crowd the weights out of L1:
    // all-MiniLM-L6-v2's products, 1,024 rows in 64-row calls, ran 2-5% slower per call
    // without the blocks, interleaved on a Zen 3 core (24-32 rows were best, 16 and 48 slower).
    for (int m0 = 0; m0 < a->M; m0 += AVX2_ROW_BLOCK) {
        const int m1 = a->M - m0 < AVX2_ROW_BLOCK ? a->M : m0 + AVX2_ROW_BLOCK;
        for (int b = 0; b < blocks; b++) {
            const int8_t *w = a->wp + b * bstride;
            for (int m = m0; m < m1; m += 4) {
                switch (m1 - m < 4 ? m1 - m : 4) {
                case 1: tile_avx2_1(a, w, m, 16 * b); break;
                case 2: tile_avx2_2(a, w, m, 16 * b); break;
                case 3: tile_avx2_3(a, w, m, 16 * b); break;
                default: tile_avx2_4(a, w, m, 16 * b); break;
                }
            }
        }
    }
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
    case DISTILL_I8_AVX2: gemm_avx2(a); return;
#endif
    default: gemm_scalar(a); return;
    }
}

int distill_i8_gemm_emulated(int kernel, const distill_i8_args *a) {
#ifdef DISTILL_X86
    if (!(distill_i8_available() & (1u << DISTILL_I8_AVX2))) return -1;
    if (a->M <= 0 || a->N <= 0) return 0;
    switch (kernel) {
    case DISTILL_I8_AVXVNNI: gemm_avxvnni_emulated(a); return 0;
    case DISTILL_I8_AVX512VL_VNNI256: gemm_avx512vl_vnni_emulated(a); return 0;
    case DISTILL_I8_AVX512VNNI: gemm_avx512vnni_emulated(a); return 0;
    default: return -1;
    }
#else
    (void)kernel; (void)a;
    return -1;
#endif
}

// ---------------------------------------------------------------- activation quantization

// The row's range, then its parameters; 0 when the row is quantized (a code row follows),
// else the row was filled here (non-finite range or all zero).
static int row_parameters(float lo, float hi, int levels, uint8_t *q, int Kp, float *scale, int32_t *zero,
                          float *inv, float *zf) {
    const float L = (float)levels;
    const float range = hi - lo;
    if (!isfinite(range) || hi == lo) {
        *scale = hi == lo ? 0.0f : NAN;
        *zero = 0;
        memset(q, 0, (size_t)Kp);
        return 1;
    }
    *inv = L / range;
    *scale = range / L;
    float zr = rintf(-lo * *inv);
    int z = zr > 0.0f ? (int)zr : 0;
    if (z > levels) z = levels;
    *zero = z;
    *zf = (float)z;
    return 0;
}

static inline uint8_t code(float v, float inv, float zf, int levels) {
    const float t = v * inv + zf;
    if (!(t > 0.0f)) return 0;           // NaN lands here too
    return t < (float)levels ? (uint8_t)rintf(t) : (uint8_t)levels;
}

// The row's values k0 ≤ k < K folded into [lo, hi] (NaN ignored), one at a time: the whole row
// in the portable loop, the tail after the vectors in the AVX2 one.
static inline void widen_range(const float *xr, const float *c, int k0, int K, float *lo, float *hi) {
    for (int k = k0; k < K; k++) {
        const float v = c ? xr[k] * c[k] : xr[k];
        if (v < *lo) *lo = v;
        if (v > *hi) *hi = v;
    }
}

// Codes for k0 ≤ k < K one at a time, then the padding K ≤ k < Kp at the zero point.
static inline void write_codes(const float *xr, const float *c, uint8_t *qr, int k0, int K, int Kp, float inv, float zf,
                               int levels, int32_t zero) {
    for (int k = k0; k < K; k++) qr[k] = code(c ? xr[k] * c[k] : xr[k], inv, zf, levels);
    for (int k = K; k < Kp; k++) qr[k] = (uint8_t)zero;
}

static void quantize_rows_scalar(const float *x, long ldx, int M, int K, const float *c, uint8_t *q, int Kp,
                                 float *scales, int32_t *zeros, int levels) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (long)m * ldx;
        uint8_t *qr = q + (long)m * Kp;
        float lo = 0.0f, hi = 0.0f, inv, zf;
        widen_range(xr, c, 0, K, &lo, &hi);
        if (row_parameters(lo, hi, levels, qr, Kp, scales + m, zeros + m, &inv, &zf)) continue;
        write_codes(xr, c, qr, 0, K, Kp, inv, zf, levels, zeros[m]);
    }
}

#ifdef DISTILL_X86
// Eight values a step. _mm256_min_ps(v, lo) keeps lo when v is NaN, as the scalar comparison
// does; the codes clamp to [0, levels] first (max(t, 0) turns NaN into 0, as the scalar test
// does) and round to nearest even in the conversion, as rintf does.
__attribute__((target("avx2,fma")))
static void quantize_rows_avx2(const float *x, long ldx, int M, int K, const float *c, uint8_t *q, int Kp,
                               float *scales, int32_t *zeros, int levels) {
    const int K8 = K & ~7;
    const __m256i gather = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
    for (int m = 0; m < M; m++) {
        const float *xr = x + (long)m * ldx;
        uint8_t *qr = q + (long)m * Kp;
        __m256 lo8 = _mm256_setzero_ps(), hi8 = _mm256_setzero_ps();
        for (int k = 0; k < K8; k += 8) {
            __m256 v = _mm256_loadu_ps(xr + k);
            if (c) v = _mm256_mul_ps(v, _mm256_loadu_ps(c + k));
            lo8 = _mm256_min_ps(v, lo8);
            hi8 = _mm256_max_ps(v, hi8);
        }
        float los[8], his[8];
        _mm256_storeu_ps(los, lo8);
        _mm256_storeu_ps(his, hi8);
        float lo = 0.0f, hi = 0.0f, inv, zf;
        for (int l = 0; l < 8; l++) { if (los[l] < lo) lo = los[l]; if (his[l] > hi) hi = his[l]; }
        widen_range(xr, c, K8, K, &lo, &hi);
        if (row_parameters(lo, hi, levels, qr, Kp, scales + m, zeros + m, &inv, &zf)) continue;
        const __m256 inv8 = _mm256_set1_ps(inv), z8 = _mm256_set1_ps(zf), top = _mm256_set1_ps((float)levels);
        const __m256 zero = _mm256_setzero_ps();
        int k = 0;
        // 32 codes a step: four vectors packed together, one store (three shuffles per 8 codes
        // in the 8-wide loop below are one here).
        for (; k + 32 <= K8; k += 32) {
            __m256i i4[4];
            for (int u = 0; u < 4; u++) {
                __m256 v = _mm256_loadu_ps(xr + k + 8 * u);
                if (c) v = _mm256_mul_ps(v, _mm256_loadu_ps(c + k + 8 * u));
                __m256 t = _mm256_add_ps(_mm256_mul_ps(v, inv8), z8);
                i4[u] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(t, zero), top));
            }
            // packus works within 128-bit lanes: words [0..3 8..11 | 4..7 12..15] and
            // [16..19 24..27 | 20..23 28..31], bytes [0..3 8..11 16..19 24..27 | 4..7 ...],
            // so dwords 0, 4, 1, 5, 2, 6, 3, 7 restore the order.
            __m256i w01 = _mm256_packus_epi32(i4[0], i4[1]), w23 = _mm256_packus_epi32(i4[2], i4[3]);
            __m256i b = _mm256_packus_epi16(w01, w23);
            b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(qr + k), b);
        }
        for (; k < K8; k += 8) {
            __m256 v = _mm256_loadu_ps(xr + k);
            if (c) v = _mm256_mul_ps(v, _mm256_loadu_ps(c + k));
            __m256 t = _mm256_add_ps(_mm256_mul_ps(v, inv8), z8);
            t = _mm256_min_ps(_mm256_max_ps(t, zero), top);
            __m256i i = _mm256_cvtps_epi32(t);                        // 0…255 in each lane
            __m256i w = _mm256_packus_epi32(i, i);                    // u16: lane 0 = 0..3, lane 1 = 4..7
            __m256i b = _mm256_packus_epi16(w, w);                    // bytes: dword 0 = 0..3, dword 4 = 4..7
            __m256i g = _mm256_permutevar8x32_epi32(b, gather);       // dwords 0, 4 first
            _mm_storel_epi64((__m128i *)(qr + k), _mm256_castsi256_si128(g));
        }
        write_codes(xr, c, qr, K8, K, Kp, inv, zf, levels, zeros[m]);
    }
}

// x [M × ldx] → q [M × Kp], scales[M], zeros[M] as distill_int8.h defines it: quantize_rows_avx2
// sixteen values a step, each value through the same operations (so the same bytes). The tail
// is a masked load, its lanes past K 0 (× 0 with colscale), which leave lo ≤ 0 ≤ hi as they
// are, and a masked store. No lane of lo or hi is ever NaN or −0 (they start at +0 and take
// only a strictly smaller or larger v), so reducing them in any order gives the scalar lo, hi.
__attribute__((target("avx512f,avx512bw")))
static void quantize_rows_avx512(const float *x, long ldx, int M, int K, const float *c, uint8_t *q, int Kp,
                                 float *scales, int32_t *zeros, int levels) {
    const int K16 = K & ~15;
    const __mmask16 tail = (__mmask16)((1u << (K - K16)) - 1);
    // After the in-lane packs below, dword 4j + u holds vector u's values 4j…4j+3.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int m = 0; m < M; m++) {
        const float *xr = x + (long)m * ldx;
        uint8_t *qr = q + (long)m * Kp;
        // Two accumulators each: min/max latency, not the loads, would bound one.
        __m512 lo0 = _mm512_setzero_ps(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
        int k = 0;
        for (; k + 32 <= K16; k += 32) {
            __m512 v0 = _mm512_loadu_ps(xr + k), v1 = _mm512_loadu_ps(xr + k + 16);
            if (c) {
                v0 = _mm512_mul_ps(v0, _mm512_loadu_ps(c + k));
                v1 = _mm512_mul_ps(v1, _mm512_loadu_ps(c + k + 16));
            }
            lo0 = _mm512_min_ps(v0, lo0);   // v first: a NaN v keeps lo, as in the scalar test
            hi0 = _mm512_max_ps(v0, hi0);
            lo1 = _mm512_min_ps(v1, lo1);
            hi1 = _mm512_max_ps(v1, hi1);
        }
        for (; k < K; k += 16) {
            const __mmask16 mk = k < K16 ? (__mmask16)0xFFFF : tail;
            __m512 v = _mm512_maskz_loadu_ps(mk, xr + k);
            if (c) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mk, c + k));
            lo0 = _mm512_min_ps(v, lo0);
            hi0 = _mm512_max_ps(v, hi0);
        }
        float lo = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
        float hi = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
        float inv, zf;
        if (row_parameters(lo, hi, levels, qr, Kp, scales + m, zeros + m, &inv, &zf)) continue;
        const __m512 inv16 = _mm512_set1_ps(inv), z16 = _mm512_set1_ps(zf), top = _mm512_set1_ps((float)levels);
        const __m512 zero = _mm512_setzero_ps();
        k = 0;
        // 64 codes a step: four vectors packed together, one store.
        for (; k + 64 <= K16; k += 64) {
            __m512i i4[4];
            for (int u = 0; u < 4; u++) {
                __m512 v = _mm512_loadu_ps(xr + k + 16 * u);
                if (c) v = _mm512_mul_ps(v, _mm512_loadu_ps(c + k + 16 * u));
                __m512 t = _mm512_add_ps(_mm512_mul_ps(v, inv16), z16);
                i4[u] = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t, zero), top));
            }
            __m512i w01 = _mm512_packus_epi32(i4[0], i4[1]), w23 = _mm512_packus_epi32(i4[2], i4[3]);
            __m512i b = _mm512_permutexvar_epi32(order, _mm512_packus_epi16(w01, w23));
            _mm512_storeu_si512((void *)(qr + k), b);
        }
        for (; k < K; k += 16) {
            const __mmask16 mk = k < K16 ? (__mmask16)0xFFFF : tail;
            __m512 v = _mm512_maskz_loadu_ps(mk, xr + k);
            if (c) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mk, c + k));
            __m512 t = _mm512_add_ps(_mm512_mul_ps(v, inv16), z16);
            __m512i i = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t, zero), top));
            _mm512_mask_cvtepi32_storeu_epi8(qr + k, mk, i);   // 0…levels: truncation is exact
        }
        if (Kp > K) memset(qr + K, zeros[m], (size_t)(Kp - K));
    }
}

// AVX-512 F and BW, which the kernel mask does not record (its AVX-512 kernels need VNNI too).
static int has_avx512bw(void) {
    static volatile int cached = -1;   // a benign race, as in distill_i8_available
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    }
    return cached;
}
#endif

void distill_i8_quantize_rows(int kernel, const float *x, long ldx, int M, int K, const float *colscale,
                              uint8_t *q, int Kp, float *scales, int32_t *zeros, int levels) {
#ifdef DISTILL_X86
    if (kernel != DISTILL_I8_SCALAR && (distill_i8_available() & (1u << DISTILL_I8_AVX2))) {
        // The 512-bit kernel's (and oneDNN's) activations take the AVX-512 copy; the 256-bit
        // kernels, EVEX ones included (kept to stay off 512-bit registers), keep theirs, so a
        // test of each kernel covers each copy.
        int wide = kernel == DISTILL_I8_AVX512VNNI || kernel == 5 /* onednn */;
        if (wide && has_avx512bw()) quantize_rows_avx512(x, ldx, M, K, colscale, q, Kp, scales, zeros, levels);
        else quantize_rows_avx2(x, ldx, M, K, colscale, q, Kp, scales, zeros, levels);
        return;
    }
#endif
    quantize_rows_scalar(x, ldx, M, K, colscale, q, Kp, scales, zeros, levels);
}

#ifdef DISTILL_X86
/// distill_i8_dequantize eight columns at a time, with the kernels' own dequantize8_avx2.
__attribute__((noinline, target("avx2,fma")))
static void dequantize_avx2(const args_t *a, const int32_t *acc, long ldacc) {
    const int N8 = a->N & ~7;
    for (int m = 0; m < a->M; m++) {
        const int32_t *row = acc + (long)m * ldacc;
        for (int n = 0; n < N8; n += 8) {
            const __m256 b = a->bias ? _mm256_loadu_ps(a->bias + n) : _mm256_setzero_ps();
            dequantize8_avx2(a, _mm256_loadu_si256((const __m256i *)(row + n)), m, n, _mm256_loadu_ps(a->ws + n),
                             _mm256_loadu_si256((const __m256i *)(a->colsum + n)), b);
        }
        if (N8 < a->N) {
            int32_t tail[8] = {0};
            memcpy(tail, row + N8, (size_t)(a->N - N8) * sizeof(int32_t));
            dequantize_partial_avx2(a, _mm256_loadu_si256((const __m256i *)tail), m, N8, a->N - N8);
        }
    }
}
#endif

void distill_i8_dequantize(const distill_i8_args *a, const int32_t *acc, long ldacc) {
#ifdef DISTILL_X86
    if (distill_i8_available() & (1u << DISTILL_I8_AVX2)) { dequantize_avx2(a, acc, ldacc); return; }
#endif
    for (int m = 0; m < a->M; m++) {
        for (int n = 0; n < a->N; n++) {
            const int32_t v = acc[(long)m * ldacc + n] - a->xzero[m] * a->colsum[n];
            float *dst = a->y + (long)m * a->ldy + n;
            *dst = fmaf((float)v, a->xs[m] * a->ws[n], addend(a, m, dst, n));
        }
    }
}
