// Run-time choice between the kernel copies: AVX-512 where the CPU has F, BW, DQ and VL (with
// AVX2 and FMA), else AVX2 + FMA where it has both, else the baseline; DISTILL_SIMD=generic or
// =avx2 caps the choice.
#include "distill_kernels.h"
#include <stdlib.h>
#include <string.h>

#define DECLARE(P)                                                                                                       \
    void P##activation_rows(float *, float *, const float *, const float *, long, long, int);                           \
    void P##activation_backward(float *, const float *, const float *, long, int, int);                                 \
    void P##layernorm_rows(float *, float *, float *, const float *, const float *, const float *, long, long, float);   \
    void P##residual_layernorm_rows(float *, float *, float *, float *, const float *, const float *, const float *,    \
                                    const float *, long, long, float);                                                  \
    void P##layernorm_apply_rows(float *, const float *, const float *, const float *, const float *, const float *,   \
                                 long, long);                                                                           \
    void P##softmax_masked_rows(float *, long, long, const float *);                                                    \
    void P##softmax_backward_rows(float *, const float *, long, long, float);                                           \
    double P##logsumexp(const float *, long, float);                                                                    \
    void P##loss_row(float *, const float *, long, int, int, float, float, float, float, double *, double *, double *); \
    void P##loss_row_topk(float *, const int *, const float *, long, long, float, const int *, long, float, int, float, float, float, \
                          double *, double *);                                                                      \
    void P##exp(const float *, float *, long);                                                                          \
    void P##erf(const float *, float *, long);                                                                          \
    void P##tanh(const float *, float *, long);                                                                         \
    void P##exp_double(const double *, double *, long);                                                                 \
    void P##small_gemm(float *, long, const float *, long, const float *, long, long, long, long, float, int);           \
    void P##small_gemm_at(float *, long, const float *, long, const float *, long, long, long, long, float, int);        \
    void P##transpose_block(float *, const float *, long, long, long);                                                  \
    void P##copy_block(float *, const float *, long, long, long);                                                       \
    void P##dropout(float *, long, long, uint64_t, float, uint64_t);                                                   \
    void P##bf16_bits(const float *, uint16_t *, long);                                                                 \
    void P##round_bf16(const float *, float *, long);

DECLARE(distill_generic_)
#if defined(__x86_64__)
DECLARE(distill_avx2_)
DECLARE(distill_avx512_)
#endif

static int level = -1;

/// The best copy this CPU runs: 2 AVX-512, 1 AVX2 + FMA, 0 generic.
static int best(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return 2;
    return 1;
#else
    return 0;
#endif
}

static int detect(void) {
    const char *forced = getenv("DISTILL_SIMD");
    int b = best();
    if (forced && strcmp(forced, "generic") == 0) return 0;
    if (forced && strcmp(forced, "avx2") == 0 && b > 1) return 1;
    return b;
}

static inline int current(void) {
    // A benign race: every thread computes the same value.
    if (level < 0) level = detect();
    return level;
}

int distill_simd_level(void) { return current(); }
const char *distill_simd_name(void) {
    switch (current()) {
    case 2: return "avx512";
    case 1: return "avx2+fma";
    default: return "generic";
    }
}
int distill_simd_best(void) { return best(); }

int distill_simd_force(int wanted) {
    int b = best();
    level = wanted < 0 ? 0 : wanted <= b ? wanted : b;
    return level;
}

#if defined(__x86_64__)
#define CALL(name, ...)                                                                                                \
    (current() == 2   ? distill_avx512_##name(__VA_ARGS__)                                                           \
     : current() == 1 ? distill_avx2_##name(__VA_ARGS__)                                                             \
                      : distill_generic_##name(__VA_ARGS__))
#else
#define CALL(name, ...) distill_generic_##name(__VA_ARGS__)
#endif

void distill_activation_rows(float *out, float *pre, const float *inp, const float *bias, long rows, long C, int kind) {
    CALL(activation_rows, out, pre, inp, bias, rows, C, kind);
}
void distill_activation_backward(float *dinp, const float *dout, const float *pre, long count, int kind, int overwrite) {
    CALL(activation_backward, dinp, dout, pre, count, kind, overwrite);
}
void distill_layernorm_rows(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                            long rows, long C, float eps) {
    CALL(layernorm_rows, out, mean, rstd, inp, w, b, rows, C, eps);
}
void distill_residual_layernorm_rows(float *out, float *mean, float *rstd, float *sum, const float *xa, const float *xb,
                                     const float *w, const float *b, long rows, long C, float eps) {
    CALL(residual_layernorm_rows, out, mean, rstd, sum, xa, xb, w, b, rows, C, eps);
}
void distill_layernorm_apply_rows(float *out, const float *inp, const float *mean, const float *rstd,
                                  const float *w, const float *b, long rows, long C) {
    CALL(layernorm_apply_rows, out, inp, mean, rstd, w, b, rows, C);
}
void distill_softmax_masked_rows(float *x, long rows, long S, const float *mask) {
    CALL(softmax_masked_rows, x, rows, S, mask);
}
void distill_softmax_backward_rows(float *dp, const float *p, long rows, long S, float scale) {
    CALL(softmax_backward_rows, dp, p, rows, S, scale);
}
double distill_logsumexp(const float *z, long V, float invT) { return CALL(logsumexp, z, V, invT); }
void distill_loss_row(float *zs, const float *zt, long V, int label, int doCE, float T,
                      float ceScale, float mlmScale, float mseScale, double *kl, double *mlm, double *mse) {
    CALL(loss_row, zs, zt, V, label, doCE, T, ceScale, mlmScale, mseScale, kl, mlm, mse);
}
void distill_loss_row_topk(float *zs, const int *ids, const float *tv, long k, long V, float tail, const int *sids, long m,
                           float tailPlogp, int label, float T, float ceScale, float mlmScale, double *kl, double *mlm) {
    CALL(loss_row_topk, zs, ids, tv, k, V, tail, sids, m, tailPlogp, label, T, ceScale, mlmScale, kl, mlm);
}
void distill_exp(const float *x, float *y, long n) { CALL(exp, x, y, n); }
void distill_erf(const float *x, float *y, long n) { CALL(erf, x, y, n); }
void distill_tanh(const float *x, float *y, long n) { CALL(tanh, x, y, n); }
void distill_exp_double(const double *x, double *y, long n) { CALL(exp_double, x, y, n); }
void distill_small_gemm(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long M, long N, long Kd,
                        float scale, int accumulate) {
    CALL(small_gemm, c, ldc, a, lda, b, ldb, M, N, Kd, scale, accumulate);
}
void distill_small_gemm_at(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long M, long N, long Kd,
                           float scale, int accumulate) {
    CALL(small_gemm_at, c, ldc, a, lda, b, ldb, M, N, Kd, scale, accumulate);
}
void distill_transpose_block(float *t, const float *b, long ldb, long N, long Kd) { CALL(transpose_block, t, b, ldb, N, Kd); }
void distill_copy_block(float *t, const float *b, long ldb, long rows, long N) { CALL(copy_block, t, b, ldb, rows, N); }
void distill_dropout(float *x, long count, long offset, uint64_t threshold, float scale, uint64_t key) {
    CALL(dropout, x, count, offset, threshold, scale, key);
}
void distill_bf16_bits(const float *x, uint16_t *out, long n) { CALL(bf16_bits, x, out, n); }
void distill_round_bf16(const float *x, float *out, long n) { CALL(round_bf16, x, out, n); }
