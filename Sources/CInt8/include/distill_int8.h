// int8 × int8 → int32 matrix products for Distillery's quantized inference.
//
// Only the inner dot products live here, because Swift cannot spell the VNNI instructions;
// quantization, packing and everything around the products are Swift.
#ifndef DISTILL_INT8_H
#define DISTILL_INT8_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Kernels, fastest first. All compute exactly the same numbers.
enum {
    DISTILL_I8_SCALAR = 0,      // portable C, the reference
    DISTILL_I8_AVX2 = 1,        // 16-bit products (vpmaddwd), exact
    DISTILL_I8_AVXVNNI = 2,     // 256-bit vpdpbusd
    DISTILL_I8_AVX512VNNI = 3,  // 512-bit vpdpbusd
    DISTILL_I8_AVX512VL_VNNI256 = 4,  // the 256-bit VNNI kernel, EVEX-encoded (AVX-512 VL)
};

/// Which kernels this CPU can run, as a bit mask of (1 << kernel).
uint32_t distill_i8_available(void);

/// Y = dequantize(X · Wᵀ), for rows m < M and columns n < N:
///
///   acc[m][n] = Σ_k (xq[m][k] − 128) · w[n][k]                   (exact, in int32)
///   y[m·ldy + n] = fmaf((float)acc, xs[m] · ws[n], bias ? bias[n] : 0)
///
/// xq   [M × Kp] uint8: activations quantized per row, offset by +128 (so 128 is zero);
///      Kp is a multiple of 4 and the padding holds 128.
/// wp   packed weights: blocks of 16 columns, [⌈N/16⌉][Kp/4][16][4] int8 (padding zero);
///      `wp` points at the block of column 0 of this call.
/// wsum [⌈N/16⌉·16] int32: 128 · Σ_k w[n][k], which cancels the +128 of the activations.
/// xs   [M] row scales; ws [⌈N/16⌉·16] column scales; bias [N] or NULL.
void distill_i8_gemm(int kernel, int M, int N, int Kp,
                     const uint8_t *xq, const int8_t *wp, const int32_t *wsum,
                     const float *xs, const float *ws, const float *bias,
                     float *y, int ldy);

#ifdef __cplusplus
}
#endif

#endif
