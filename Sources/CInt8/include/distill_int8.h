// int8 × int8 → int32 matrix products for Distillery's quantized inference.
//
// The inner dot products live here, because Swift cannot spell the VNNI instructions, and the
// activations' quantization, which Swift compiles for the baseline (SSE) only; packing and
// everything around them are Swift.
#ifndef DISTILL_INT8_H
#define DISTILL_INT8_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Kernels. Given the same activation codes, all compute exactly the same numbers.
enum {
    DISTILL_I8_SCALAR = 0,            // portable C, the reference
    DISTILL_I8_AVX2 = 1,              // vpmaddubsw + vpmaddwd; activations ≤ 127 (7 bits)
    DISTILL_I8_AVXVNNI = 2,           // 256-bit vpdpbusd, VEX (AVX-VNNI)
    DISTILL_I8_AVX512VNNI = 3,        // 512-bit vpdpbusd
    DISTILL_I8_AVX512VL_VNNI256 = 4,  // the 256-bit VNNI kernel, EVEX-encoded (AVX-512 VL)
};

/// Which kernels this CPU can run, as a bit mask of (1 << kernel).
uint32_t distill_i8_available(void);

/// One product Y = dequantize(X · Wᵀ), rows m < M, columns n < N:
///
///   acc[m][n] = Σ_k (xq[m][k] − xzero[m]) · w[n][k]               (exact, in int32)
///   t = y's previous value when `accumulate` is set (a second pass over what the first
///       pass's quantization left), else bias[n], or 0 without bias
///   t = fmaf(xo[m·ko + j], wo[j·ldwo + n], t)   for j = 0 … ko − 1  (outlier channels, fp32)
///   y[m·ldy + n] = fmaf((float)acc, xs[m] · ws[n], t)
typedef struct {
    int M, N, Kp;
    /// Activations [M × Kp] uint8, quantized per row with zero point xzero[m] and scale xs[m];
    /// Kp is a multiple of 4 and the padding holds the row's zero point. At most 127 for
    /// DISTILL_I8_AVX2 (its 16-bit pair sums would saturate above).
    const uint8_t *xq;
    const int32_t *xzero;
    const float *xs;
    /// Packed weights: blocks of 16 columns, [⌈N/16⌉][Kp/4][16][4] int8 (padding zero), and
    /// per column (padded to a multiple of 16) Σ_k w[n][k] and the scale.
    const int8_t *wp;
    const int32_t *colsum;
    const float *ws;
    const float *bias;
    float *y;
    int ldy;
    int accumulate;
    /// Outlier channels, multiplied in fp32 (ko = 0: none): their activations xo [M × ko] and
    /// weights wo [ko × ldwo], column n of this product at wo[j·ldwo + n].
    const float *xo;
    const float *wo;
    int ko, ldwo;
} distill_i8_args;

void distill_i8_gemm(int kernel, const distill_i8_args *args);

/// Tests only: the loops and tiles of a VNNI kernel (DISTILL_I8_AVXVNNI,
/// DISTILL_I8_AVX512VL_VNNI256 or DISTILL_I8_AVX512VNNI) with vpdpbusd written out in AVX2 (and
/// a 512-bit vector as two AVX2 halves), single-threaded, so CPUs without VNNI or AVX-512 check
/// them against the scalar kernel. 0 when it ran; -1 without AVX2 or for another kernel.
int distill_i8_gemm_emulated(int kernel, const distill_i8_args *args);

/// The same dequantization from products computed elsewhere (oneDNN): acc[m·ldacc + n] =
/// Σ_k xq[m][k] · w[n][k] (without the zero point), so y = fmaf(acc − xzero[m]·colsum[n],
/// xs[m]·ws[n], addend) — bit for bit what the kernels give.
void distill_i8_dequantize(const distill_i8_args *args, const int32_t *acc, long ldacc);

/// Quantizes rows m < M of x (row stride ldx, K values; each first multiplied by colscale[k]
/// when colscale is not NULL) asymmetrically to codes 0…levels (255, or 127 for the AVX2
/// product), as QuantizedActivations defines it:
///   lo = min(0, min x), hi = max(0, max x) (NaN ignored);  inv = levels / (hi − lo),
///   scale = (hi − lo) / levels,  zero = clamp(rint(−lo · inv), 0, levels),
///   q = 0 if !(x · inv + zero > 0), levels if ≥ levels, else rint(x · inv + zero)
/// into q [M × Kp] (the padding k ≥ K holds the zero point), scales[m] and zeros[m]. A row whose
/// range is not finite gets scale NaN and zero codes; an all-zero row scale 0 and zero codes.
/// `kernel` DISTILL_I8_SCALAR forces the portable loop; the 512-bit kernel and oneDNN (5) use
/// an AVX-512 loop where the CPU has AVX-512 BW, any other AVX2 where the CPU has it. All give
/// the same bytes.
void distill_i8_quantize_rows(int kernel, const float *x, long ldx, int M, int K, const float *colscale,
                              uint8_t *q, int Kp, float *scales, int32_t *zeros, int levels);

#ifdef __cplusplus
}
#endif

#endif
