// The kernels compiled for x86-64 with AVX2 and FMA (Intel Haswell, AMD Zen and later); run
// only where the CPU has both (see dispatch.c).
#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx2,fma"))), apply_to = function)
#define K(name) KCAT(distill_avx2_, name)
#include "kernels_impl.h"
#pragma clang attribute pop
#endif
