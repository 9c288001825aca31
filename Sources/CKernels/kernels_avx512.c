// The kernels compiled for x86-64 with AVX-512 (F, BW, DQ, VL: Intel Skylake-SP and later, AMD
// Zen 4 and later): the hot row kernels on sixteen-float vectors. Run only where the CPU has all
// four and AVX2 + FMA (see dispatch.c); the same numbers as the other copies.
#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"), min_vector_width(512))), apply_to = function)
#define KW 16
#define K(name) KCAT(distill_avx512_, name)
#include "kernels_impl.h"
#pragma clang attribute pop
#endif
