// The kernels' vector math, written once over a vector type and included by kernels_impl.h
// once per width: VF (VW floats), VI (VW int32 lanes), V(name) naming the copy (name_8 for
// eight lanes, name_w for the copy's widest vector, which is also eight lanes except in the
// AVX-512 copy). Lane-wise, so every width gives the same value for the same input (NaN sign and
// payload aside).

static inline __attribute__((always_inline)) VF V(ld)(const float *p) { VF v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void V(st)(float *p, VF v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) VF V(splat)(float x) { VF v = x; return v; }
/// a where m, else b (m: a comparison's all-ones / zero lanes).
static inline __attribute__((always_inline)) VF V(sel)(VI m, VF a, VF b) { return (VF)((m & (VI)a) | (~m & (VI)b)); }

/// e^x for x ≤ 88.376 (larger x overflow): Cephes' range reduction x = n·ln2 + r and a degree-6
/// polynomial; 0 below −87.3, NaN stays NaN. Softmax's x − max ≤ 0 needs no upper clamp.
static inline __attribute__((always_inline)) VF V(exp_upto88)(VF x) {
    const float lo = -87.3365447505531f;
    VF input = x;
    x = V(sel)(x < lo, V(splat)(lo), x);
    // n = round(x / ln2): adding 1.5·2²³ leaves the rounded integer in the low mantissa bits.
    const VF magic = V(splat)(12582912.0f);
    VF t = FMA(x, V(splat)(1.44269504088896341f), magic);
    VF fx = t - magic;
    x = FMA(fx, V(splat)(-0.693359375f), x);
    x = FMA(fx, V(splat)(2.12194440e-4f), x);
    VF z = x * x;
    VF y = V(splat)(1.9875691500e-4f);
    y = FMA(y, x, V(splat)(1.3981999507e-3f));
    y = FMA(y, x, V(splat)(8.3334519073e-3f));
    y = FMA(y, x, V(splat)(4.1665795894e-2f));
    y = FMA(y, x, V(splat)(1.6666665459e-1f));
    y = FMA(y, x, V(splat)(5.0000001201e-1f));
    y = FMA(y, z, x + 1.0f);
    VI n = (VI)t - 0x4B400000;
    VF scale = (VF)((n + 127) << 23);
    return V(sel)(input < lo, V(splat)(0.0f), y * scale);
}

/// e^x: exp_upto88 with x clamped from above first (a large finite value above 88.4).
static inline __attribute__((always_inline)) VF V(exp)(VF x) {
    const float hi = 88.3762626647949f;
    return V(exp_upto88)(V(sel)(x > hi, V(splat)(hi), x));
}

/// erf(x): a rational minimax form on [−4, 4] (±1 to float precision outside).
static inline __attribute__((always_inline)) VF V(erf)(VF x) {
    x = V(sel)(x > 4.0f, V(splat)(4.0f), x);
    x = V(sel)(x < -4.0f, V(splat)(-4.0f), x);
    VF x2 = x * x;
    VF p = V(splat)(-2.72614225801306e-10f);
    p = FMA(p, x2, V(splat)(2.77068142495902e-08f));
    p = FMA(p, x2, V(splat)(-2.10102402082508e-06f));
    p = FMA(p, x2, V(splat)(-5.69250639462346e-05f));
    p = FMA(p, x2, V(splat)(-7.34990630326855e-04f));
    p = FMA(p, x2, V(splat)(-2.95459980854025e-03f));
    p = FMA(p, x2, V(splat)(-1.60960333262415e-02f));
    p = p * x;
    VF q = V(splat)(-1.45660718464996e-05f);
    q = FMA(q, x2, V(splat)(-2.13374055278905e-04f));
    q = FMA(q, x2, V(splat)(-1.68282697438203e-03f));
    q = FMA(q, x2, V(splat)(-7.37332916720468e-03f));
    q = FMA(q, x2, V(splat)(-1.42647390514189e-02f));
    return p / q;
}

/// tanh(x) = 1 − 2 / (e^{2x} + 1), clamped where tanh is ±1 in float.
static inline __attribute__((always_inline)) VF V(tanh)(VF x) {
    x = V(sel)(x > 9.0f, V(splat)(9.0f), x);
    x = V(sel)(x < -9.0f, V(splat)(-9.0f), x);
    VF e = V(exp)(x * 2.0f);
    return 1.0f - 2.0f / (e + 1.0f);
}


// ------------------------------------------------------------------------------ activations

static inline __attribute__((always_inline)) VF V(act)(VF x, int kind) {
    switch (kind) {
    case 0: return 0.5f * x * (1.0f + V(erf)(x * 0.70710678118654752f));
    case 1: {
        VF x3 = x * x * x;
        VF u = (x + 0.044715f * x3) * 0.79788456080286536f;
        return 0.5f * x * (1.0f + V(tanh)(u));
    }
    default: return V(sel)(x < 0.0f, V(splat)(0.0f), x);
    }
}

// ------------------------------------------------------------------------------ attention products

/// One vector of columns of the per-head product (kernels_impl.h's small_gemm_rows): c [MR × VW]
/// = scale · a [MR × Kd] · b [Kd × VW] (+ c), each element one chain of fused multiply-adds over
/// k in order; a row r, column k at a[r·lda + k], or a[k·lda + r] when TA (a stored transposed).
static inline __attribute__((always_inline)) void V(columns)(const int MR, const int TA, float *c, long ldc, const float *a,
                                                             long lda, const float *b, long ldb, long Kd, float scale,
                                                             int accumulate) {
    VF acc[6];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) acc[r] = 0.0f;
    for (long k = 0; k < Kd; k++) {
        const VF bk = V(ld)(b + k * ldb);
        _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) acc[r] = FMA(V(splat)(TA ? a[k * lda + r] : a[r * lda + k]), bk, acc[r]);
    }
    _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) {
        VF v = acc[r] * scale;
        if (accumulate) v = v + V(ld)(c + r * ldc);
        V(st)(c + r * ldc, v);
    }
}
