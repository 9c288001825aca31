// Distillery's element-wise and row kernels that need AVX2 and FMA to be fast: the
// exponentials of softmax and of the losses over a vocabulary, GELU, LayerNorm.
//
// Each kernel is written once (kernels_impl.h, with vector types the compiler lowers to the
// target's registers) and compiled three times: for x86-64 with AVX-512, with AVX2 and FMA, and
// for the baseline of the architecture. The set is chosen at run time from what the CPU
// supports, or capped with DISTILL_SIMD=avx2 or =generic. All compute the same numbers:
// multiply-adds are fused only where the source says so (fmaf), never by the compiler, and row
// sums add in the same order whatever the vector width (a NaN result's sign and payload may
// differ between copies: the compiler does not fix which NaN operand an add returns).
//
// The kernels are serial; callers split rows across threads.
#ifndef DISTILL_KERNELS_H
#define DISTILL_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Which compiled set runs: 0 generic, 1 AVX2+FMA, 2 AVX-512.
int distill_simd_level(void);
/// "avx512", "avx2+fma" or "generic".
const char *distill_simd_name(void);
/// The best set this CPU runs (whatever DISTILL_SIMD says).
int distill_simd_best(void);
/// Forces a set (for tests): the level asked for, or the best the CPU has below it. Returns the
/// set in use.
int distill_simd_force(int level);

/// Activation kinds: 0 gelu (erf), 1 gelu_new (tanh), 2 relu.
/// out[n,c] = act(inp[n,c] + bias[c]) over rows × C; pre (when given) keeps inp + bias.
/// out may alias inp.
void distill_activation_rows(float *out, float *pre, const float *inp, const float *bias, long rows, long C, int kind);
/// dinp[i] (+)= dout[i] · act'(pre[i]) over count elements (= with overwrite).
void distill_activation_backward(float *dinp, const float *dout, const float *pre, long count, int kind, int overwrite);

/// LayerNorm of rows × C: out = (x − μ)·r·w + b, r = 1/sqrt(var + eps); mean/rstd optional.
void distill_layernorm_rows(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                            long rows, long C, float eps);
/// sum [rows×C] = xa + xb, then out = LayerNorm(sum) as distill_layernorm_rows computes it, a row
/// at a time (the residual add and the norm in one pass).
void distill_residual_layernorm_rows(float *out, float *mean, float *rstd, float *sum, const float *xa, const float *xb,
                                     const float *w, const float *b, long rows, long C, float eps);
/// out = (x − mean[n])·rstd[n]·w + b with the statistics given.
void distill_layernorm_apply_rows(float *out, const float *inp, const float *mean, const float *rstd,
                                  const float *w, const float *b, long rows, long C);

/// Softmax of rows × S scores sharing one key mask [S] (0 = padding key, probability 0; all
/// keys when none is real), in place.
void distill_softmax_masked_rows(float *x, long rows, long S, const float *mask);
/// dS = P ⊙ (dP − Σ_j dP ⊙ P) · scale over rows × S, in place over dp.
void distill_softmax_backward_rows(float *dp, const float *p, long rows, long S, float scale);

/// The per-head products of attention: c [M×N] (row stride ldc) = scale · a [M×Kd] · b [Kd×N]
/// (+ c when accumulate), a row i at a + i·lda, b row k at b + k·ldb; serial. Each element is
/// a chain of fused multiply-adds over k in order, in every copy (the generic one calls fmaf
/// per lane where the CPU has no FMA: callers use a BLAS product there instead).
void distill_small_gemm(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long M, long N, long Kd,
                        float scale, int accumulate);
/// The same with a stored transposed: c [M×N] = scale · aᵀ · b (+ c), a [Kd×M] (row stride lda).
void distill_small_gemm_at(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long M, long N, long Kd,
                           float scale, int accumulate);
/// t [Kd×N] = bᵀ for b [N×Kd] with row stride ldb.
void distill_transpose_block(float *t, const float *b, long ldb, long N, long Kd);
/// Inverted dropout of x [count] drawing stream indices offset ..< offset + count under key:
/// x[j] = (mix64(key ^ i·0xD6E8FEB86659FD93) >> 40) ≥ threshold ? x[j]·scale : 0, i = offset + j.
void distill_dropout(float *x, long count, long offset, uint64_t threshold, float scale, uint64_t key);
/// t [rows×N] = b [rows×N] with row stride ldb, rows packed.
void distill_copy_block(float *t, const float *b, long ldb, long rows, long N);

/// log Σ_j exp(z_j · invT) of one row, in double precision.
double distill_logsumexp(const float *z, long V, float invT);

/// One row of DistilBERT's logit losses (see Loss.swift): overwrites zs [V] with dL/dzs and
/// returns the row's KL (soft targets, when doCE), MLM cross-entropy (when label ≥ 0) and
/// logit MSE. zt may be NULL when doCE is 0.
void distill_loss_row(float *zs, const float *zt, long V, int label, int doCE, float T,
                      float ceScale, float mlmScale, float mseScale,
                      double *kl, double *mlm, double *mse);
/// The soft-target row against a teacher given by its k largest logits (ids, values) and one
/// logit `tail` for each of the other V − k tokens, or (m > 0) by the tail's mass spread over
/// m draws `sids` from the tail with its Σ p log p `tailPlogp` (see kernels_impl.h).
void distill_loss_row_topk(float *zs, const int *ids, const float *tv, long k, long V, float tail, const int *sids, long m,
                           float tailPlogp, int label, float T, float ceScale, float mlmScale, double *kl, double *mlm);

/// out [n] = the bf16 bits of x [n], rounded to nearest even; NaN stays NaN (quiet, sign kept).
void distill_bf16_bits(const float *x, uint16_t *out, long n);
/// out [n] = x [n] rounded to bf16 precision, as floats (out may be x).
void distill_round_bf16(const float *x, float *out, long n);

/// Vectorised exp, erf and tanh of n floats (for tests of accuracy).
void distill_exp(const float *x, float *y, long n);
void distill_erf(const float *x, float *y, long n);
void distill_tanh(const float *x, float *y, long n);
void distill_exp_double(const double *x, double *y, long n);

#ifdef __cplusplus
}
#endif

#endif
