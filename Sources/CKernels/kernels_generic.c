// The kernels for the architecture's baseline (SSE2 on x86-64): the portable fallback, and the
// reference the AVX2 and AVX-512 copies are tested against.
#define K(name) KCAT(distill_generic_, name)
#include "kernels_impl.h"
