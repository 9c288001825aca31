// The kernels' one source, included by kernels_avx512.c (AVX-512), kernels_avx2.c (AVX2 + FMA)
// and kernels_generic.c (the architecture's baseline). K(name) gives each copy its own names.
//
// Vector types are clang's ext_vector_type: eight floats become one AVX register in the AVX2
// copy and two SSE registers in the generic one; the hot row kernels also run on the copy's
// widest vector fw (sixteen floats, one AVX-512 register, in the AVX-512 copy). Multiply-adds
// are fused exactly where FMA(...) is written (fmaf semantics in every copy; a library call
// where the CPU has no FMA), and the compiler fuses nothing else. Sums over a row add the wide
// vector's halves in the order eight-lane code adds them, so all copies give identical results
// (up to the sign and payload of a NaN result, which the compiler does not fix).
#include <math.h>
#include <string.h>
#include <stdint.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)
#pragma clang diagnostic ignored "-Wpsabi"

typedef float f8 __attribute__((ext_vector_type(8)));
typedef float f4 __attribute__((ext_vector_type(4)));
typedef float f2 __attribute__((ext_vector_type(2)));
typedef int32_t i8 __attribute__((ext_vector_type(8)));
typedef double d4 __attribute__((ext_vector_type(4)));
typedef int64_t l4 __attribute__((ext_vector_type(4)));

#define FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))

// The widest vector of this copy: KW floats (16 in the AVX-512 copy, 8 in the others).
#ifndef KW
#define KW 8
#endif
typedef float fw __attribute__((ext_vector_type(KW)));
typedef int32_t iw __attribute__((ext_vector_type(KW)));
typedef uint32_t uw __attribute__((ext_vector_type(KW)));
typedef uint16_t hw __attribute__((ext_vector_type(KW)));

// Names pasted after macro expansion: V(exp) below names this copy's exp_8, then its exp_w.
#define KCAT_(a, b) a##b
#define KCAT(a, b) KCAT_(a, b)

#define VF f8
#define VI i8
#define V(name) K(KCAT(name, _8))
#include "kernels_vmath.h"
#undef VF
#undef VI
#undef V
#define VF fw
#define VI iw
#define V(name) K(KCAT(name, _w))
#include "kernels_vmath.h"
#undef VF
#undef VI
#undef V

static inline __attribute__((always_inline)) float K(hsum)(f8 v) { f4 s4 = v.lo + v.hi; f2 s2 = s4.lo + s4.hi; return s2.x + s2.y; }
static inline __attribute__((always_inline)) float K(hmax)(f8 v) {
    float m = v[0];
    for (int l = 1; l < 8; l++) m = v[l] > m ? v[l] : m;
    return m;
}

// A wide vector folded into eight-lane accumulators in the order the eight-lane loop would fold
// its two halves (low, then high), so row sums do not depend on the copy's width.
/// acc + v.
static inline __attribute__((always_inline)) f8 K(add_w)(f8 acc, fw v) {
#if KW == 16
    return (acc + v.lo) + v.hi;
#else
    return acc + v;
#endif
}
/// acc + v ⊙ v, fused.
static inline __attribute__((always_inline)) f8 K(addsq_w)(f8 acc, fw v) {
#if KW == 16
    return FMA(v.hi, v.hi, FMA(v.lo, v.lo, acc));
#else
    return FMA(v, v, acc);
#endif
}
/// The lane-wise maximum of m and v (NaN lanes of v never win).
static inline __attribute__((always_inline)) f8 K(max_w)(f8 m, fw v) {
#if KW == 16
    m = K(sel_8)(v.lo > m, v.lo, m);
    return K(sel_8)(v.hi > m, v.hi, m);
#else
    return K(sel_8)(v > m, v, m);
#endif
}

/// e^x in double precision, four lanes: the same reduction with a degree-12 Taylor polynomial on
/// |r| ≤ ln2/2 (relative error about 3e-16).
static inline __attribute__((always_inline)) d4 K(exp4d)(d4 x) {
    d4 hi = 708.0, lo = -708.0;
    x = (d4)(((x > hi) & (l4)hi) | (~(x > hi) & (l4)x));
    x = (d4)(((x < lo) & (l4)lo) | (~(x < lo) & (l4)x));
    const d4 magic = 6755399441055744.0;  // 1.5·2⁵²
    d4 t = FMA(x, (d4)1.4426950408889634, magic);
    d4 n = t - magic;
    d4 r = FMA(n, (d4)-0.6931471803691238, x);
    r = FMA(n, (d4)-1.9082149292705877e-10, r);
    d4 p = 1.0 / 479001600.0;
    p = FMA(p, r, (d4)(1.0 / 39916800.0));
    p = FMA(p, r, (d4)(1.0 / 3628800.0));
    p = FMA(p, r, (d4)(1.0 / 362880.0));
    p = FMA(p, r, (d4)(1.0 / 40320.0));
    p = FMA(p, r, (d4)(1.0 / 5040.0));
    p = FMA(p, r, (d4)(1.0 / 720.0));
    p = FMA(p, r, (d4)(1.0 / 120.0));
    p = FMA(p, r, (d4)(1.0 / 24.0));
    p = FMA(p, r, (d4)(1.0 / 6.0));
    p = FMA(p, r, (d4)0.5);
    p = FMA(p, r, (d4)1.0);
    p = FMA(p, r, (d4)1.0);
    l4 bits = ((l4)t - 0x4338000000000000LL + 1023) << 52;
    return p * (d4)bits;
}

static inline __attribute__((always_inline)) float K(exp1)(float x) { return K(exp_8)(K(splat_8)(x)).x; }

// ------------------------------------------------------------------------------ activations


static inline __attribute__((always_inline)) f8 K(actgrad8)(f8 x, int kind) {
    switch (kind) {
    case 0: {
        f8 cdf = 0.5f * (1.0f + K(erf_8)(x * 0.70710678118654752f));
        f8 pdf = K(exp_8)(-0.5f * x * x) * 0.39894228040143268f;
        return cdf + x * pdf;
    }
    case 1: {
        f8 x2 = x * x;
        f8 u = (x + 0.044715f * x2 * x) * 0.79788456080286536f;
        f8 t = K(tanh_8)(u);
        f8 du = (1.0f + (3.0f * 0.044715f) * x2) * 0.79788456080286536f;
        f8 sech2 = 1.0f - t * t;
        return 0.5f * (1.0f + t) + 0.5f * x * sech2 * du;
    }
    default: return K(sel_8)(x <= 0.0f, K(splat_8)(0.0f), K(splat_8)(1.0f));
    }
}

void K(activation_rows)(float *out, float *pre, const float *inp, const float *bias, long rows, long C, int kind) {
    for (long n = 0; n < rows; n++) {
        const float *x = inp + n * C;
        float *o = out + n * C, *pr = pre ? pre + n * C : 0;
        long c = 0;
        for (; c + KW <= C; c += KW) {
            fw v = K(ld_w)(x + c);
            if (bias) v += K(ld_w)(bias + c);
            if (pr) K(st_w)(pr + c, v);
            K(st_w)(o + c, K(act_w)(v, kind));
        }
        for (; c + 8 <= C; c += 8) {
            f8 v = K(ld_8)(x + c);
            if (bias) v += K(ld_8)(bias + c);
            if (pr) K(st_8)(pr + c, v);
            K(st_8)(o + c, K(act_8)(v, kind));
        }
        for (; c < C; c++) {
            float v = x[c] + (bias ? bias[c] : 0.0f);
            if (pr) pr[c] = v;
            o[c] = K(act_8)(K(splat_8)(v), kind).x;
        }
    }
}

void K(activation_backward)(float *dinp, const float *dout, const float *pre, long count, int kind, int overwrite) {
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        f8 g = K(ld_8)(dout + i) * K(actgrad8)(K(ld_8)(pre + i), kind);
        K(st_8)(dinp + i, overwrite ? g : K(ld_8)(dinp + i) + g);
    }
    for (; i < count; i++) {
        float g = dout[i] * K(actgrad8)(K(splat_8)(pre[i]), kind).x;
        dinp[i] = overwrite ? g : dinp[i] + g;
    }
}

// ------------------------------------------------------------------------------ LayerNorm

// Two passes (mean, then the variance of the centred values): accurate for rows whose mean
// is large.
/// One row: o [C] = (x − μ) · r · w + b, r = 1/√(var + eps), writing μ and r to *mean, *rstd.
static inline __attribute__((always_inline)) void K(layernorm_row)(float *o, float *mean, float *rstd, const float *x,
                                                                  const float *w, const float *b, long C, float eps) {
    long Cw = C - C % KW, C8 = C & ~7L;
    f8 acc = 0.0f;
    long c = 0;
    for (; c < Cw; c += KW) acc = K(add_w)(acc, K(ld_w)(x + c));
    for (; c < C8; c += 8) acc += K(ld_8)(x + c);
    float s = K(hsum)(acc);
    for (; c < C; c++) s += x[c];
    float m = s / (float)C;
    f8 m8 = K(splat_8)(m);
    fw mw = K(splat_w)(m);
    acc = 0.0f;
    for (c = 0; c < Cw; c += KW) acc = K(addsq_w)(acc, K(ld_w)(x + c) - mw);
    for (; c < C8; c += 8) { f8 d = K(ld_8)(x + c) - m8; acc = FMA(d, d, acc); }
    float v = K(hsum)(acc);
    for (; c < C; c++) { float d = x[c] - m; v += d * d; }
    float r = 1.0f / sqrtf(v / (float)C + eps);
    f8 r8 = K(splat_8)(r);
    fw rw = K(splat_w)(r);
    for (c = 0; c < Cw; c += KW) K(st_w)(o + c, ((K(ld_w)(x + c) - mw) * rw) * K(ld_w)(w + c) + K(ld_w)(b + c));
    for (; c < C8; c += 8) K(st_8)(o + c, ((K(ld_8)(x + c) - m8) * r8) * K(ld_8)(w + c) + K(ld_8)(b + c));
    for (; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (mean) *mean = m;
    if (rstd) *rstd = r;
}

void K(layernorm_rows)(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       long rows, long C, float eps) {
    for (long n = 0; n < rows; n++)
        K(layernorm_row)(out + n * C, mean ? mean + n : 0, rstd ? rstd + n : 0, inp + n * C, w, b, C, eps);
}

/// sum = xa + xb, then out = LayerNorm(sum), a row at a time: the residual add and the norm in
/// one pass, the row still in L1 when it is normalized. Bit for bit the two kernels in turn.
void K(residual_layernorm_rows)(float *out, float *mean, float *rstd, float *sum, const float *xa, const float *xb,
                                const float *w, const float *b, long rows, long C, float eps) {
    for (long n = 0; n < rows; n++) {
        float *x = sum + n * C;
        const float *pa = xa + n * C, *pb = xb + n * C;
        long c = 0;
        for (; c + KW <= C; c += KW) K(st_w)(x + c, K(ld_w)(pa + c) + K(ld_w)(pb + c));
        for (; c + 8 <= C; c += 8) K(st_8)(x + c, K(ld_8)(pa + c) + K(ld_8)(pb + c));
        for (; c < C; c++) x[c] = pa[c] + pb[c];
        K(layernorm_row)(out + n * C, mean ? mean + n : 0, rstd ? rstd + n : 0, x, w, b, C, eps);
    }
}

void K(layernorm_apply_rows)(float *out, const float *inp, const float *mean, const float *rstd,
                             const float *w, const float *b, long rows, long C) {
    long Cw = C - C % KW, C8 = C & ~7L;
    for (long n = 0; n < rows; n++) {
        const float *x = inp + n * C;
        float *o = out + n * C;
        float m = mean[n], r = rstd[n];
        f8 m8 = K(splat_8)(m), r8 = K(splat_8)(r);
        fw mw = K(splat_w)(m), rw = K(splat_w)(r);
        long c = 0;
        for (; c < Cw; c += KW) K(st_w)(o + c, ((K(ld_w)(x + c) - mw) * rw) * K(ld_w)(w + c) + K(ld_w)(b + c));
        for (; c < C8; c += 8) K(st_8)(o + c, ((K(ld_8)(x + c) - m8) * r8) * K(ld_8)(w + c) + K(ld_8)(b + c));
        for (; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
    }
}

// ------------------------------------------------------------------------------ softmax

void K(softmax_masked_rows)(float *x, long rows, long S, const float *mask) {
    long valid = 0;
    for (long j = 0; j < S; j++) valid += mask[j] != 0.0f;
    // Every key real (the common case), or none (uniform attention): no per-key mask test.
    int all = valid == 0 || valid == S;
    long Sw = S - S % KW, S8 = S & ~7L;
    const f8 ninf = K(splat_8)(-INFINITY);
    const fw ninfw = K(splat_w)(-INFINITY), zerow = K(splat_w)(0.0f);
    for (long row = 0; row < rows; row++) {
        float *xr = x + row * S;
        f8 mx8 = ninf;
        long j = 0;
        if (all) {
            for (; j < Sw; j += KW) mx8 = K(max_w)(mx8, K(ld_w)(xr + j));
            for (; j < S8; j += 8) { f8 v = K(ld_8)(xr + j); mx8 = K(sel_8)(v > mx8, v, mx8); }
        } else {
            for (; j < Sw; j += KW) mx8 = K(max_w)(mx8, K(sel_w)(K(ld_w)(mask + j) == 0.0f, ninfw, K(ld_w)(xr + j)));
            for (; j < S8; j += 8) {
                f8 v = K(sel_8)(K(ld_8)(mask + j) == 0.0f, ninf, K(ld_8)(xr + j));
                mx8 = K(sel_8)(v > mx8, v, mx8);
            }
        }
        float mx = K(hmax)(mx8);
        for (; j < S; j++) if ((all || mask[j] != 0.0f) && xr[j] > mx) mx = xr[j];
        f8 sum8 = 0.0f;
        // x − max ≤ 0 at every real key (NaN stays NaN; a masked key's value is replaced by 0
        // whatever it was): exp without its upper clamp, the same values.
        if (all) {
            for (j = 0; j < Sw; j += KW) {
                fw e = K(exp_upto88_w)(K(ld_w)(xr + j) - mx);
                K(st_w)(xr + j, e);
                sum8 = K(add_w)(sum8, e);
            }
            for (; j < S8; j += 8) {
                f8 e = K(exp_upto88_8)(K(ld_8)(xr + j) - mx);
                K(st_8)(xr + j, e);
                sum8 += e;
            }
        } else {
            for (j = 0; j < Sw; j += KW) {
                fw e = K(exp_upto88_w)(K(ld_w)(xr + j) - mx);
                e = K(sel_w)(K(ld_w)(mask + j) == 0.0f, zerow, e);
                K(st_w)(xr + j, e);
                sum8 = K(add_w)(sum8, e);
            }
            for (; j < S8; j += 8) {
                f8 e = K(exp_upto88_8)(K(ld_8)(xr + j) - mx);
                e = K(sel_8)(K(ld_8)(mask + j) == 0.0f, K(splat_8)(0.0f), e);
                K(st_8)(xr + j, e);
                sum8 += e;
            }
        }
        float sum = K(hsum)(sum8);
        for (; j < S; j++) {
            float e = (all || mask[j] != 0.0f) ? K(exp1)(xr[j] - mx) : 0.0f;
            xr[j] = e; sum += e;
        }
        float inv = 1.0f / sum;
        for (j = 0; j < Sw; j += KW) K(st_w)(xr + j, K(ld_w)(xr + j) * inv);
        for (; j < S8; j += 8) K(st_8)(xr + j, K(ld_8)(xr + j) * inv);
        for (; j < S; j++) xr[j] *= inv;
    }
}

void K(softmax_backward_rows)(float *dp, const float *p, long rows, long S, float scale) {
    long S8 = S & ~7L;
    for (long row = 0; row < rows; row++) {
        float *g = dp + row * S;
        const float *pr = p + row * S;
        f8 acc = 0.0f;
        long j = 0;
        for (; j < S8; j += 8) acc = FMA(K(ld_8)(g + j), K(ld_8)(pr + j), acc);
        float dot = K(hsum)(acc);
        for (; j < S; j++) dot += g[j] * pr[j];
        f8 dot8 = K(splat_8)(dot);
        for (j = 0; j < S8; j += 8) K(st_8)(g + j, K(ld_8)(pr + j) * (K(ld_8)(g + j) - dot8) * scale);
        for (; j < S; j++) g[j] = pr[j] * (g[j] - dot) * scale;
    }
}

// ------------------------------------------------------------------------------ losses

// log Σ_j exp(z_j / T) in double precision: the KL divergence between close distributions is
// a small difference of two such values, and float exponentials alone would leave about 1e-9
// of error in each.
double K(logsumexp)(const float *z, long V, float invT) {
    long V8 = V & ~7L, j = 0;
    f8 m8 = K(splat_8)(-INFINITY);
    for (; j < V8; j += 8) { f8 v = K(ld_8)(z + j); m8 = K(sel_8)(v > m8, v, m8); }
    float mx = K(hmax)(m8);
    for (; j < V; j++) if (z[j] > mx) mx = z[j];
    double mT = (double)mx * (double)invT, t = (double)invT;
    d4 s4 = 0.0;
    for (j = 0; j + 4 <= V; j += 4) {
        d4 x = {(double)z[j], (double)z[j + 1], (double)z[j + 2], (double)z[j + 3]};
        s4 += K(exp4d)(x * t - mT);
    }
    double total = s4.x + s4.y + s4.z + s4.w;
    for (; j < V; j++) total += exp((double)z[j] * t - mT);
    return mT + log(total);
}

//   KL row  = Σ_j pt_j (log pt_j − log ps_j),  p = softmax(z / T)
//   CE row  = −log softmax(zs)[label]
//   MSE row = Σ_j (zs_j − zt_j)²
//   dL/dzs  = ceScale · (ps − pt) / T + mlmScale · (softmax(zs) − onehot) + mseScale · 2 (zs − zt)
void K(loss_row)(float *s, const float *t, long V, int label, int doCE, float T,
                 float ceScale, float mlmScale, float mseScale, double *klOut, double *mlmOut, double *mseOut) {
    float invT = 1.0f / T;
    long V8 = V & ~7L;
    *klOut = 0; *mlmOut = 0; *mseOut = 0;
    double lseSTd = K(logsumexp)(s, V, invT);
    double lseS1d = label >= 0 ? K(logsumexp)(s, V, 1.0f) : 0;
    double lseTTd = doCE ? K(logsumexp)(t, V, invT) : 0;
    if (label >= 0) *mlmOut = lseS1d - (double)s[label];
    float lseST = (float)lseSTd, lseTT = (float)lseTTd, lseS1 = (float)lseS1d;
    // log pt − log ps = (zt − zs)/T − c, with c taken in double precision.
    float c = (float)(lseTTd - lseSTd);
    float gCE = ceScale * invT, gMLM = mlmScale, gMSE = 2 * mseScale;
    double klSum = 0, mseSum = 0;
    // Compensated lanes for the KL sum (a small total of terms of both signs).
    f8 kl8 = 0.0f, klc8 = 0.0f, mse8 = 0.0f;
    long j = 0;
    for (; j < V8; j += 8) {
        f8 zsv = K(ld_8)(s + j);
        f8 g = 0.0f;
        if (doCE) {
            f8 ztv = K(ld_8)(t + j);
            f8 pt = K(exp_8)(ztv * invT - lseTT);
            f8 ps = K(exp_8)(zsv * invT - lseST);
            f8 y = pt * ((ztv - zsv) * invT - c) - klc8;
            f8 sum = kl8 + y;
            klc8 = (sum - kl8) - y;
            kl8 = sum;
            g += gCE * (ps - pt);
            if (mseScale != 0) { f8 d = zsv - ztv; mse8 += d * d; g += gMSE * d; }
        }
        if (label >= 0) g += gMLM * K(exp_8)(zsv - lseS1);
        K(st_8)(s + j, g);
    }
    for (int l = 0; l < 8; l++) { klSum += (double)kl8[l] - (double)klc8[l]; mseSum += (double)mse8[l]; }
    for (; j < V; j++) {
        float zsv = s[j], g = 0;
        if (doCE) {
            float ztv = t[j];
            float pt = K(exp1)(ztv * invT - lseTT), ps = K(exp1)(zsv * invT - lseST);
            klSum += (double)(pt * ((ztv - zsv) * invT - c));
            g += gCE * (ps - pt);
            if (mseScale != 0) { float d = zsv - ztv; mseSum += (double)(d * d); g += gMSE * d; }
        }
        if (label >= 0) g += gMLM * K(exp1)(zsv - lseS1);
        s[j] = g;
    }
    if (label >= 0) s[label] -= gMLM;
    if (doCE) { *klOut = klSum; *mseOut = mseSum; }
}

// The same row with the teacher given by its k largest logits (ids, tv) and one tail logit zr
// standing for each of the other n = V − k tokens, as a teacher cache stores it: the dense row
// above with teacher logits tv at ids and zr everywhere else, without reading or
// exponentiating V teacher logits. (zr is chosen when the cache is built so that n · exp(zr/T)
// is the tail's true mass at the cache's temperature; n = 0 when k = V.) With
//   lseTT = log(Σ_{j<k} exp(tv_j/T) + n·exp(zr/T)),  q_j = exp(tv_j/T − lseTT),  u = exp(zr/T − lseTT),
//   log ps = zs/T − lseS:
//   KL row = Σ_{j<k} q_j (log q_j − log ps_{id_j}) + n·u·log u − u · Σ_{i ∉ ids} log ps_i,
//   Σ_{i ∉ ids} log ps_i = Σ_i zs_i/T − V·lseS − Σ_{j<k} log ps_{id_j};
//   dL/dzs = ceScale · (ps − target) / T + MLM part, target = q at ids, u elsewhere.
// Sampled tail (m > 0): the tail's mass τ = n·u sits on m tokens sids drawn from the teacher's
// tail distribution instead of being spread evenly, τ/m on each draw (repeats add), and the
// tail's own Σ p log p (tailPlogp, computed when the cache was built) is exact:
//   KL row = Σ_{j<k} q_j (log q_j − log ps_{id_j}) + tailPlogp − (τ/m) Σ_{s<m} log ps_{sids_s},
//   target = q at ids, τ/m per draw at sids, 0 elsewhere.
// Its expectation over the draws is the exact KL against the full teacher row, and so is the
// gradient's (the draws are unbiased for Σ_tail p_i · f_i of any f).
void K(loss_row_topk)(float *s, const int *ids, const float *tv, long k, long V, float zr, const int *sids, long m,
                      float tailPlogp, int label, float T, float ceScale, float mlmScale, double *klOut, double *mlmOut) {
    float invT = 1.0f / T;
    long V8 = V & ~7L, n = V - k;
    *klOut = 0; *mlmOut = 0;
    double lseSTd = K(logsumexp)(s, V, invT);
    double lseS1d = label >= 0 ? K(logsumexp)(s, V, 1.0f) : 0;
    if (label >= 0) *mlmOut = lseS1d - (double)s[label];
    double t = (double)invT, mt = (double)tv[0];
    for (long j = 1; j < k; j++) if ((double)tv[j] > mt) mt = (double)tv[j];
    if (n > 0 && (double)zr > mt) mt = (double)zr;
    double sum = n > 0 ? (double)n * exp(((double)zr - mt) * t) : 0;
    for (long j = 0; j < k; j++) sum += exp(((double)tv[j] - mt) * t);
    double lseTT = mt * t + log(sum), kl = 0, lpsTop = 0;
    double lu = (double)zr * t - lseTT, u = n > 0 ? exp(lu) : 0;
    int sampled = m > 0 && u > 0;
    double perDraw = sampled ? (double)n * u / (double)m : 0, lpsDraws = 0;
    // Before s is overwritten with the gradient.
    for (long j = 0; j < k; j++) {
        double lq = (double)tv[j] * t - lseTT, lps = (double)s[ids[j]] * t - lseSTd;
        kl += exp(lq) * (lq - lps);
        lpsTop += lps;
    }
    if (sampled) for (long j = 0; j < m; j++) lpsDraws += (double)s[sids[j]] * t - lseSTd;
    // The even tail (the uniform target u) only without draws.
    float lseST = (float)lseSTd, lseS1 = (float)lseS1d, gCE = ceScale * invT, uf = sampled ? 0.0f : (float)u, gMLM = mlmScale;
    double zsum = 0;
    long j = 0;
    for (; j < V8; j += 8) {
        f8 zsv = K(ld_8)(s + j);
        // Σ zs in double (it is multiplied by u·V-sized terms in the KL): a float8 running sum
        // over thousands of logits would lose ~1e-5 relative.
        zsum += (double)(zsv[0] + zsv[1] + zsv[2] + zsv[3]) + (double)(zsv[4] + zsv[5] + zsv[6] + zsv[7]);
        f8 g = gCE * (K(exp_8)(zsv * invT - lseST) - uf);
        if (label >= 0) g += gMLM * K(exp_8)(zsv - lseS1);
        K(st_8)(s + j, g);
    }
    for (; j < V; j++) {
        float zsv = s[j], g = gCE * (K(exp1)(zsv * invT - lseST) - uf);
        zsum += (double)zsv;
        if (label >= 0) g += gMLM * K(exp1)(zsv - lseS1);
        s[j] = g;
    }
    for (long i = 0; i < k; i++) s[ids[i]] -= gCE * (float)(exp((double)tv[i] * t - lseTT) - (double)uf);
    if (sampled) {
        float w = gCE * (float)perDraw;
        for (long i = 0; i < m; i++) s[sids[i]] -= w;
        kl += (double)tailPlogp - perDraw * lpsDraws;
    } else if (u > 0) {
        kl += (double)n * u * lu - u * (zsum * t - (double)V * lseSTd - lpsTop);
    }
    if (label >= 0) s[label] -= gMLM;
    *klOut = kl;
}

// ------------------------------------------------------------------------------ dropout

typedef uint64_t u4 __attribute__((ext_vector_type(4)));

/// mix64(key ^ i·0xD6E8FEB86659FD93) >> 40 for four indices: DistilleryTensor.uniform's 24 bits
/// (Random.swift), SplitMix64's finalizer in 64-bit lanes. `ic` holds i·0xD6E8FEB86659FD93.
static inline __attribute__((always_inline)) u4 K(draw24)(u4 ic, uint64_t key) {
    u4 z = (ic ^ key) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) >> 40;
}

/// Inverted dropout over x [count], element j drawing stream index offset + j:
///   x[j] = draw24 ≥ threshold ? x[j] · scale : 0
/// with threshold = ⌈p·2²⁴⌉ (so draw ≥ threshold ⇔ uniform ≥ p) and scale = 1/(1 − p), exactly
/// what Dropout.swift's scalar definition gives, eight elements a step.
void K(dropout)(float *x, long count, long offset, uint64_t threshold, float scale, uint64_t key) {
    const uint64_t C = 0xD6E8FEB86659FD93ull;
    long j = 0;
    u4 ic = {(uint64_t)offset * C, ((uint64_t)offset + 1) * C, ((uint64_t)offset + 2) * C, ((uint64_t)offset + 3) * C};
    const uint64_t step4 = 4 * C;
    const u4 t = threshold;
    for (; j + 8 <= count; j += 8) {
        const u4 d0 = K(draw24)(ic, key);
        ic += step4;
        const u4 d1 = K(draw24)(ic, key);
        ic += step4;
        // Draws are below 2²⁴, so the signed 64-bit comparison is exact; narrow the masks to 32 bits.
        const l4 k0 = (l4)d0 >= (l4)t, k1 = (l4)d1 >= (l4)t;
        const i8 keep = __builtin_shufflevector(__builtin_convertvector(k0, __attribute__((ext_vector_type(4))) int32_t),
                                                __builtin_convertvector(k1, __attribute__((ext_vector_type(4))) int32_t),
                                                0, 1, 2, 3, 4, 5, 6, 7);
        const f8 v = K(ld_8)(x + j) * scale;
        K(st_8)(x + j, (f8)(keep & (i8)v));
    }
    for (; j < count; j++) {
        const uint64_t i = (uint64_t)(offset + j);
        u4 d = K(draw24)((u4)(i * C), key);
        x[j] = d.x >= threshold ? x[j] * scale : 0.0f;
    }
}

// ------------------------------------------------------------------------------ attention products

// The per-head products of attention, too small for a BLAS call to pay its packing and
// C-scaling passes (S×S×D with D = 32 or 64):
//   c [M×N] (row stride ldc) = scale · a [M×Kd] · b [Kd×N]   (+ c when accumulate)
// a row i at a + i·lda, b row k at b + k·ldb. Each element is one chain of fused multiply-adds
// over k in order, starting from 0, then × scale (then + c): the same in the vector body, the
// narrower column tails and the scalar tail, and in every compiled copy. Tiles of MR ≤ 6 rows ×
// two wide vectors keep twelve accumulators, more than the FMA latency needs in flight.

#define ATT_UNROLL _Pragma("clang loop unroll(full)")
// Row r, column k of the tile's a: a [M×Kd] as stored, or (TA) stored transposed as [Kd×M].
#define AEL(r, k) (TA ? a[(k) * lda + (r)] : a[(r) * lda + (k)])

static inline __attribute__((always_inline)) void K(small_gemm_rows)(const int MR, const int TA, float *c, long ldc, const float *a, long lda,
                                                                    const float *b, long ldb, long N, long Kd, float scale,
                                                                    int accumulate) {
    long n = 0;
    for (; n + 2 * KW <= N; n += 2 * KW) {
        fw acc[6][2];
        ATT_UNROLL for (int r = 0; r < MR; r++) { acc[r][0] = 0.0f; acc[r][1] = 0.0f; }
        for (long k = 0; k < Kd; k++) {
            const fw b0 = K(ld_w)(b + k * ldb + n), b1 = K(ld_w)(b + k * ldb + n + KW);
            ATT_UNROLL for (int r = 0; r < MR; r++) {
                const fw ar = K(splat_w)(AEL(r, k));
                acc[r][0] = FMA(ar, b0, acc[r][0]);
                acc[r][1] = FMA(ar, b1, acc[r][1]);
            }
        }
        ATT_UNROLL for (int r = 0; r < MR; r++) {
            float *cr = c + r * ldc + n;
            fw v0 = acc[r][0] * scale, v1 = acc[r][1] * scale;
            if (accumulate) { v0 = v0 + K(ld_w)(cr); v1 = v1 + K(ld_w)(cr + KW); }
            K(st_w)(cr, v0);
            K(st_w)(cr + KW, v1);
        }
    }
#if KW > 8
    for (; n + KW <= N; n += KW) K(columns_w)(MR, TA, c + n, ldc, a, lda, b + n, ldb, Kd, scale, accumulate);
#endif
    for (; n + 8 <= N; n += 8) K(columns_8)(MR, TA, c + n, ldc, a, lda, b + n, ldb, Kd, scale, accumulate);
    for (; n < N; n++) {
        ATT_UNROLL for (int r = 0; r < MR; r++) {
            float s = 0.0f;
            for (long k = 0; k < Kd; k++) s = fmaf(AEL(r, k), b[k * ldb + n], s);
            s = s * scale;
            if (accumulate) s = s + c[r * ldc + n];
            c[r * ldc + n] = s;
        }
    }
}

/// t [Kd×N] = bᵀ for b [N×Kd] with row stride ldb: the key (or value) block of one head laid
/// out for small_gemm. Eight rows at a time, so each store is one vector.
void K(transpose_block)(float *t, const float *b, long ldb, long N, long Kd) {
    long n = 0;
    for (; n + 8 <= N; n += 8) {
        const float *r = b + n * ldb;
        for (long k = 0; k < Kd; k++) {
            f8 v = {r[k], r[ldb + k], r[2 * ldb + k], r[3 * ldb + k], r[4 * ldb + k], r[5 * ldb + k], r[6 * ldb + k], r[7 * ldb + k]};
            K(st_8)(t + k * N + n, v);
        }
    }
    for (; n < N; n++) for (long k = 0; k < Kd; k++) t[k * N + n] = b[n * ldb + k];
}

/// t [rows×N] = b [rows×N] with row stride ldb, packed: a head's value (or key) block staged for
/// small_gemm. Read in place, its rows lie 3H floats apart and map onto a few L1 sets; packed,
/// the product over them runs about 20% faster.
void K(copy_block)(float *t, const float *b, long ldb, long rows, long N) {
    for (long r = 0; r < rows; r++) {
        const float *src = b + r * ldb;
        float *dst = t + r * N;
        long n = 0;
        for (; n + KW <= N; n += KW) K(st_w)(dst + n, K(ld_w)(src + n));
        for (; n + 8 <= N; n += 8) K(st_8)(dst + n, K(ld_8)(src + n));
        for (; n < N; n++) dst[n] = src[n];
    }
}

static inline __attribute__((always_inline)) void K(small_gemm_tiles)(const int TA, float *c, long ldc, const float *a, long lda,
                                                                     const float *b, long ldb, long M, long N, long Kd,
                                                                     float scale, int accumulate) {
    long m = 0;
    // Where the tile of rows m… starts in a: row m, or column m of the transposed layout.
#define TILE(MR) K(small_gemm_rows)(MR, TA, c + m * ldc, ldc, a + (TA ? m : m * lda), lda, b, ldb, N, Kd, scale, accumulate)
    for (; m + 6 <= M; m += 6) TILE(6);
    switch (M - m) {
    case 5: TILE(5); break;
    case 4: TILE(4); break;
    case 3: TILE(3); break;
    case 2: TILE(2); break;
    case 1: TILE(1); break;
    default: break;
    }
#undef TILE
}

void K(small_gemm)(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long M, long N, long Kd,
                   float scale, int accumulate) {
    K(small_gemm_tiles)(0, c, ldc, a, lda, b, ldb, M, N, Kd, scale, accumulate);
}

/// c [M×N] = scale · aᵀ · b (+ c), a [Kd×M] with row stride lda: the same tiles, each row's
/// broadcasts read down a column of a.
void K(small_gemm_at)(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long M, long N, long Kd,
                      float scale, int accumulate) {
    K(small_gemm_tiles)(1, c, ldc, a, lda, b, ldb, M, N, Kd, scale, accumulate);
}

// ------------------------------------------------------------------------------ bf16

/// The bf16 bits of float bits u: rounded to nearest, ties to even; a NaN stays NaN, quieted, its
/// sign and top payload bits kept (as bf16Bits in BF16.swift).
static inline __attribute__((always_inline)) uint32_t K(bf16_1)(uint32_t u) {
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
static inline __attribute__((always_inline)) uw K(bf16_w)(uw u) {
    uw r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    iw nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    return (uw)((nan & (iw)((u >> 16) | 0x40u)) | (~nan & (iw)r));
}

/// out [n] = bf16 bits of x [n].
void K(bf16_bits)(const float *x, uint16_t *out, long n) {
    long i = 0;
    for (; i + KW <= n; i += KW) {
        uw u;
        memcpy(&u, x + i, sizeof u);
        hw h = __builtin_convertvector(K(bf16_w)(u), hw);
        memcpy(out + i, &h, sizeof h);
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        out[i] = (uint16_t)K(bf16_1)(u);
    }
}

/// out [n] = x [n] rounded to bf16 precision, as floats (out may be x).
void K(round_bf16)(const float *x, float *out, long n) {
    long i = 0;
    for (; i + KW <= n; i += KW) {
        uw u;
        memcpy(&u, x + i, sizeof u);
        u = K(bf16_w)(u) << 16;
        memcpy(out + i, &u, sizeof u);
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u = K(bf16_1)(u) << 16;
        memcpy(out + i, &u, sizeof u);
    }
}

// ------------------------------------------------------------------------------ for tests

void K(exp)(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) K(st_8)(y + i, K(exp_8)(K(ld_8)(x + i)));
    for (; i < n; i++) y[i] = K(exp1)(x[i]);
}
void K(erf)(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) K(st_8)(y + i, K(erf_8)(K(ld_8)(x + i)));
    for (; i < n; i++) y[i] = K(erf_8)(K(splat_8)(x[i])).x;
}
void K(tanh)(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) K(st_8)(y + i, K(tanh_8)(K(ld_8)(x + i)));
    for (; i < n; i++) y[i] = K(tanh_8)(K(splat_8)(x[i])).x;
}
void K(exp_double)(const double *x, double *y, long n) {
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        d4 v = {x[i], x[i + 1], x[i + 2], x[i + 3]};
        d4 r = K(exp4d)(v);
        y[i] = r.x; y[i + 1] = r.y; y[i + 2] = r.z; y[i + 3] = r.w;
    }
    for (; i < n; i++) y[i] = exp(x[i]);
}
