// oneDNN (Debian's libdnnl-dev) as an optional backend for the matrix products, loaded at run
// time: nothing links against it, so a machine without it builds and runs Distillery on
// OpenBLAS. The shim declares the part of oneDNN 2.x's C ABI it uses itself (checked against
// dnnl.h where that is installed), so a build made before libdnnl-dev was installed uses it as
// soon as it is. With DISTILL_NO_DNNL defined every call reports that oneDNN is unavailable.
//
// oneDNN chooses its kernels by CPUID: AMX and AVX512-BF16 for bf16, VNNI or AMX for int8.
// Products are called from one thread at a time, never from inside a parallel loop's chunk;
// oneDNN's OpenMP threads do the work, and where oneDNN is loaded they also run Distillery's
// parallel loops (distill_dnnl_parallel).
#ifndef DISTILL_DNNL_H
#define DISTILL_DNNL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads libdnnl.so.2 (once). 1 if usable, 0 if not (see distill_dnnl_state and _status).
int distill_dnnl_load(void);
/// "oneDNN 2.6.3, ISA avx2" or why it is not used.
const char *distill_dnnl_status(void);
/// Why oneDNN is or is not used, for callers that act on it (the status is for people).
enum {
    DISTILL_DNNL_STATE_LOADED = 0,
    DISTILL_DNNL_STATE_NOT_INSTALLED = 1,  // no libdnnl.so.2 to load
    DISTILL_DNNL_STATE_DISABLED = 2,       // DISTILL_BACKEND=openblas
    DISTILL_DNNL_STATE_COMPILED_OUT = 3,   // built with DISTILL_NO_DNNL
    DISTILL_DNNL_STATE_UNUSABLE = 4,       // loaded, but a symbol, the version or the engine failed
};
int distill_dnnl_state(void);
/// The ISA oneDNN runs (its dnnl_cpu_isa_t value; 0 when not loaded) and its name.
int distill_dnnl_isa(void);
const char *distill_dnnl_isa_name(void);
/// 1 when that ISA includes AMX's tile products.
int distill_dnnl_amx(void);
/// 1 when that ISA multiplies bf16 in hardware (AVX512-BF16 or AMX). Without it oneDNN may
/// still accept bf16 products on AVX-512 by converting them, which is no faster than fp32.
int distill_dnnl_bf16_isa(void);
/// OpenMP threads oneDNN uses.
void distill_dnnl_set_threads(int n);
/// Runs fn(ctx, thread) (fn may be NULL) on up to `threads` threads of oneDNN's OpenMP team (the
/// caller is thread 0) and returns when all have: Distillery's own parallel loops run on the
/// threads that run oneDNN's products, so two sets of threads never compete for the cores.
/// Returns the number of threads the team had (OMP_THREAD_LIMIT and the like may give fewer);
/// -1 when oneDNN (or its OpenMP runtime, libgomp) is not there, and nothing ran.
int distill_dnnl_parallel(int threads, void (*fn)(void *, int), void *ctx);

/// Row-major C[M×N] = alpha · op(A) · op(B) + beta · C (oneDNN's sgemm). 0 on success.
int distill_dnnl_sgemm(char transa, char transb, long M, long N, long K, float alpha, const float *A, long lda,
                       const float *B, long ldb, float beta, float *C, long ldc);

/// Data types of a matmul: 0 f32 × f32 → f32, 1 bf16 × bf16 → f32, 2 u8 × s8 → s32.
enum { DISTILL_DNNL_F32 = 0, DISTILL_DNNL_BF16 = 1, DISTILL_DNNL_U8S8 = 2 };

/// dst[M×N] (row stride ldc) = src · wei (+ bias[n] when bias is not NULL: f32 [N], f32
/// results only), or += with accumulate (f32 results only), where
/// src is logically [M×K] with element (m, k) at src[m·sm + k·sk] and wei is logically [K×N]
/// with element (k, n) at wei[k·wk + n·wn]. Primitives are made once per shape (and thread
/// count) and cached. oneDNN picks its implementation per shape, and one without VNNI or AMX
/// saturates u8 × s8 pair sums at 16 bits: each new u8 × s8 shape is therefore run once on
/// all-maximum operands (into dst, which the real call then overwrites) and refused unless
/// every sum is exact. Declined inside a loop running on the team (distill_dnnl_parallel). 0 on
/// success; nonzero when oneDNN cannot run it (the caller falls back).
int distill_dnnl_matmul(int types, long M, long N, long K, const void *src, long sm, long sk, const void *wei, long wk, long wn,
                        const float *bias, void *dst, long ldc, int accumulate);

/// Whether a kind of product runs here: types as above. For u8 × s8 it also checks that the
/// results are exact (oneDNN on AVX2 without VNNI saturates 16-bit intermediate sums).
int distill_dnnl_supports(int types);

/// Tests only: 0 skips the per-shape u8 × s8 exactness check above, so that oneDNN's int8 call
/// site can be checked on a CPU whose oneDNN saturates, with weights small enough not to.
void distill_dnnl_check_u8s8(int on);

#ifdef __cplusplus
}
#endif

#endif
