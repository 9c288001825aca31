// See include/distill_dnnl.h.
#include "distill_dnnl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DISTILL_NO_DNNL

int distill_dnnl_load(void) { return 0; }
const char *distill_dnnl_status(void) { return "not built in (compiled with DISTILL_NO_DNNL)"; }
int distill_dnnl_state(void) { return DISTILL_DNNL_STATE_COMPILED_OUT; }
int distill_dnnl_isa(void) { return 0; }
const char *distill_dnnl_isa_name(void) { return "none"; }
int distill_dnnl_amx(void) { return 0; }
int distill_dnnl_bf16_isa(void) { return 0; }
void distill_dnnl_set_threads(int n) { (void)n; }
int distill_dnnl_parallel(int threads, void (*fn)(void *, int), void *ctx) { (void)threads; (void)fn; (void)ctx; return -1; }
int distill_dnnl_sgemm(char ta, char tb, long M, long N, long K, float alpha, const float *A, long lda, const float *B, long ldb,
                       float beta, float *C, long ldc) {
    (void)ta; (void)tb; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
    return -1;
}
int distill_dnnl_matmul(int types, long M, long N, long K, const void *src, long sm, long sk, const void *wei, long wk, long wn,
                        const float *bias, void *dst, long ldc, int accumulate) {
    (void)types; (void)M; (void)N; (void)K; (void)src; (void)sm; (void)sk; (void)wei; (void)wk; (void)wn; (void)bias; (void)dst; (void)ldc;
    (void)accumulate;
    return -1;
}
int distill_dnnl_supports(int types) { (void)types; return 0; }
void distill_dnnl_check_u8s8(int on) { (void)on; }

#else

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

// The part of the oneDNN 2.x C ABI (libdnnl.so.2) used here, written out so that the build does
// not depend on dnnl.h: a build made before libdnnl-dev was installed uses oneDNN as soon as it
// is (SwiftPM would not recompile this file when a header it could not find appears). Handles
// are pointers; descriptors are filled by the library and only passed by address, so they are
// opaque blocks at least as large as the real structs.
typedef int dnnl_status_t_;
typedef int dnnl_data_type_t_;
typedef int dnnl_cpu_isa_t_;
typedef int dnnl_query_t_;
typedef int dnnl_engine_kind_t_;
typedef int64_t dnnl_dim_t_;
typedef dnnl_dim_t_ dnnl_dims_t_[12];
typedef struct { _Alignas(16) unsigned char bytes[1024]; } dnnl_memory_desc_t_;
typedef struct { _Alignas(16) unsigned char bytes[4096]; } dnnl_matmul_desc_t_;
typedef void *dnnl_engine_t_, *dnnl_stream_t_, *dnnl_primitive_attr_t_, *dnnl_post_ops_t_, *dnnl_primitive_desc_t_,
    *dnnl_primitive_t_, *dnnl_memory_t_;
typedef const void *const_dnnl_op_desc_t_, *const_dnnl_primitive_attr_t_, *const_dnnl_post_ops_t_,
    *const_dnnl_primitive_desc_t_, *const_dnnl_primitive_t_;
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; } dnnl_version_t_;
typedef struct { int arg; dnnl_memory_t_ memory; } dnnl_exec_arg_t_;
enum {
    dnnl_success_ = 0, dnnl_bf16_ = 2, dnnl_f32_ = 3, dnnl_s32_ = 4, dnnl_s8_ = 5, dnnl_u8_ = 6,
    dnnl_cpu_ = 1, dnnl_stream_default_flags_ = 1, dnnl_query_impl_info_str_ = 8,
    DNNL_ARG_SRC_ = 1, DNNL_ARG_DST_ = 17, DNNL_ARG_WEIGHTS_ = 33, DNNL_ARG_BIAS_ = 41, DNNL_VERSION_MAJOR_ = 2,
    dnnl_cpu_isa_sse41_ = 0x1, dnnl_cpu_isa_avx_ = 0x3, dnnl_cpu_isa_avx2_ = 0x7, dnnl_cpu_isa_avx2_vnni_ = 0x407,
    dnnl_cpu_isa_avx512_core_ = 0x27, dnnl_cpu_isa_avx512_core_vnni_ = 0x67, dnnl_cpu_isa_avx512_core_bf16_ = 0xe7,
    dnnl_cpu_isa_avx512_core_amx_ = 0x3e7,
};
#define DNNL_MEMORY_NONE_ NULL

#if __has_include(<oneapi/dnnl/dnnl.h>) && !defined(DISTILL_DNNL_NO_HEADER_CHECK)
// Where the header is installed, the hand-written declarations are checked against it.
// (.ci/run also compiles this file with DISTILL_DNNL_NO_HEADER_CHECK: the code below this
// block must not need the header.)
#include <oneapi/dnnl/dnnl.h>
#if DNNL_VERSION_MAJOR == 2
_Static_assert(sizeof(dnnl_memory_desc_t) <= sizeof(dnnl_memory_desc_t_) && _Alignof(dnnl_memory_desc_t) <= 16, "memory descriptor block");
_Static_assert(sizeof(dnnl_matmul_desc_t) <= sizeof(dnnl_matmul_desc_t_) && _Alignof(dnnl_matmul_desc_t) <= 16, "matmul descriptor block");
_Static_assert(sizeof(dnnl_dims_t) == sizeof(dnnl_dims_t_) && sizeof(dnnl_dim_t) == sizeof(dnnl_dim_t_), "dims");
_Static_assert(sizeof(dnnl_version_t) == sizeof(dnnl_version_t_) && offsetof(dnnl_version_t, hash) == offsetof(dnnl_version_t_, hash), "version");
_Static_assert(sizeof(dnnl_exec_arg_t) == sizeof(dnnl_exec_arg_t_) && offsetof(dnnl_exec_arg_t, memory) == offsetof(dnnl_exec_arg_t_, memory), "exec arg");
_Static_assert(sizeof(dnnl_status_t) == sizeof(int) && sizeof(dnnl_data_type_t) == sizeof(int) && sizeof(dnnl_cpu_isa_t) == sizeof(int), "enums are ints");
// SAME(x): the header's constant x equals the hand-written x_.
#define SAME(x) ((int)(x) == (int)(x##_))
_Static_assert(SAME(dnnl_success) && SAME(dnnl_bf16) && SAME(dnnl_f32) && SAME(dnnl_s32) && SAME(dnnl_s8) && SAME(dnnl_u8), "data types");
_Static_assert(SAME(dnnl_cpu) && SAME(dnnl_stream_default_flags) && SAME(dnnl_query_impl_info_str), "engine, stream, query");
_Static_assert(SAME(DNNL_ARG_SRC) && SAME(DNNL_ARG_DST) && SAME(DNNL_ARG_WEIGHTS) && SAME(DNNL_ARG_BIAS), "arguments");
_Static_assert(SAME(dnnl_cpu_isa_sse41) && SAME(dnnl_cpu_isa_avx) && SAME(dnnl_cpu_isa_avx2) && SAME(dnnl_cpu_isa_avx2_vnni)
               && SAME(dnnl_cpu_isa_avx512_core) && SAME(dnnl_cpu_isa_avx512_core_vnni) && SAME(dnnl_cpu_isa_avx512_core_bf16)
               && SAME(dnnl_cpu_isa_avx512_core_amx), "ISA values");
#undef SAME
#endif
#endif

// The entry points used, resolved from the library at run time.
#define FUNCS(X)                                                                                                   \
    X(const dnnl_version_t_ *, dnnl_version, (void))                                                                \
    X(dnnl_cpu_isa_t_, dnnl_get_effective_cpu_isa, (void))                                                          \
    X(dnnl_status_t_, dnnl_sgemm, (char, char, dnnl_dim_t_, dnnl_dim_t_, dnnl_dim_t_, float, const float *, dnnl_dim_t_, \
                                  const float *, dnnl_dim_t_, float, float *, dnnl_dim_t_))                          \
    X(dnnl_status_t_, dnnl_engine_create, (dnnl_engine_t_ *, dnnl_engine_kind_t_, size_t))                            \
    X(dnnl_status_t_, dnnl_stream_create, (dnnl_stream_t_ *, dnnl_engine_t_, unsigned))                               \
    X(dnnl_status_t_, dnnl_stream_wait, (dnnl_stream_t_))                                                            \
    X(dnnl_status_t_, dnnl_memory_desc_init_by_strides, (dnnl_memory_desc_t_ *, int, const dnnl_dims_t_,              \
                                                        dnnl_data_type_t_, const dnnl_dims_t_))                      \
    X(dnnl_status_t_, dnnl_matmul_desc_init, (dnnl_matmul_desc_t_ *, const dnnl_memory_desc_t_ *,                     \
                                             const dnnl_memory_desc_t_ *, const dnnl_memory_desc_t_ *,               \
                                             const dnnl_memory_desc_t_ *))                                          \
    X(dnnl_status_t_, dnnl_primitive_attr_create, (dnnl_primitive_attr_t_ *))                                        \
    X(dnnl_status_t_, dnnl_primitive_attr_destroy, (dnnl_primitive_attr_t_))                                        \
    X(dnnl_status_t_, dnnl_post_ops_create, (dnnl_post_ops_t_ *))                                                    \
    X(dnnl_status_t_, dnnl_post_ops_destroy, (dnnl_post_ops_t_))                                                     \
    X(dnnl_status_t_, dnnl_post_ops_append_sum, (dnnl_post_ops_t_, float))                                           \
    X(dnnl_status_t_, dnnl_primitive_attr_set_post_ops, (dnnl_primitive_attr_t_, const_dnnl_post_ops_t_))             \
    X(dnnl_status_t_, dnnl_primitive_desc_create, (dnnl_primitive_desc_t_ *, const_dnnl_op_desc_t_,                   \
                                                  const_dnnl_primitive_attr_t_, dnnl_engine_t_,                      \
                                                  const_dnnl_primitive_desc_t_))                                    \
    X(dnnl_status_t_, dnnl_primitive_desc_destroy, (dnnl_primitive_desc_t_))                                         \
    X(dnnl_status_t_, dnnl_primitive_desc_query, (const_dnnl_primitive_desc_t_, dnnl_query_t_, int, void *))          \
    X(dnnl_status_t_, dnnl_primitive_create, (dnnl_primitive_t_ *, const_dnnl_primitive_desc_t_))                     \
    X(dnnl_status_t_, dnnl_primitive_destroy, (dnnl_primitive_t_))                                                   \
    X(dnnl_status_t_, dnnl_primitive_execute, (const_dnnl_primitive_t_, dnnl_stream_t_, int, const dnnl_exec_arg_t_ *)) \
    X(dnnl_status_t_, dnnl_memory_create, (dnnl_memory_t_ *, const dnnl_memory_desc_t_ *, dnnl_engine_t_, void *))    \
    X(dnnl_status_t_, dnnl_memory_destroy, (dnnl_memory_t_))                                                         \
    X(dnnl_status_t_, dnnl_memory_set_data_handle, (dnnl_memory_t_, void *))

#define DECLARE(ret, name, args) static ret(*p_##name) args;
FUNCS(DECLARE)
static void (*p_omp_set_num_threads)(int);
static int (*p_omp_get_thread_num)(void), (*p_omp_get_num_threads)(void), (*p_omp_in_parallel)(void);
static void (*p_GOMP_parallel)(void (*)(void *), void *, unsigned, unsigned);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char status[256] = "not loaded";
/// What load() found; usable exactly when DISTILL_DNNL_STATE_LOADED.
static int state = DISTILL_DNNL_STATE_UNUSABLE;
static dnnl_engine_t_ engine;
static dnnl_stream_t_ stream;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void load(void) {
    // With threads of Distillery's own beside oneDNN's (DISTILL_POOL=own), oneDNN's should sleep
    // between products rather than spin against them. Otherwise the OpenMP team runs all
    // parallel work, and its threads wait for the next loop as Distillery's own did: spinning
    // for some tens of microseconds, then sleeping (libgomp's default spins up to 300,000
    // pauses, milliseconds taken from any other thread or process on the cores). A user's
    // OMP_WAIT_POLICY or GOMP_SPINCOUNT stays theirs.
    const char *pool = getenv("DISTILL_POOL");
    if (pool && strcmp(pool, "own") == 0) setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    else if (!getenv("OMP_WAIT_POLICY")) setenv("GOMP_SPINCOUNT", "3000", 0);
    const char *off = getenv("DISTILL_BACKEND");
    if (off && strcmp(off, "openblas") == 0) {
        state = DISTILL_DNNL_STATE_DISABLED;
        snprintf(status, sizeof status, "not used (DISTILL_BACKEND=openblas)");
        return;
    }
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        state = DISTILL_DNNL_STATE_NOT_INSTALLED;
        snprintf(status, sizeof status, "not installed (libdnnl.so.2: %s)", dlerror());
        return;
    }
#define RESOLVE(ret, name, args)                                                                          \
    p_##name = (ret(*) args)dlsym(h, #name);                                                              \
    if (!p_##name) { snprintf(status, sizeof status, "libdnnl.so.2 lacks %s", #name); return; }
    FUNCS(RESOLVE)
    p_omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
    p_omp_get_thread_num = (int (*)(void))dlsym(h, "omp_get_thread_num");
    p_omp_get_num_threads = (int (*)(void))dlsym(h, "omp_get_num_threads");
    p_omp_in_parallel = (int (*)(void))dlsym(h, "omp_in_parallel");
    p_GOMP_parallel = (void (*)(void (*)(void *), void *, unsigned, unsigned))dlsym(h, "GOMP_parallel");
    const dnnl_version_t_ *v = p_dnnl_version();
    if (v->major != DNNL_VERSION_MAJOR_) {
        snprintf(status, sizeof status, "libdnnl.so.2 is version %d.%d; Distillery speaks the oneDNN %d C API", v->major, v->minor, DNNL_VERSION_MAJOR_);
        return;
    }
    if (p_dnnl_engine_create(&engine, dnnl_cpu_, 0) != dnnl_success_ || p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags_) != dnnl_success_) {
        snprintf(status, sizeof status, "oneDNN %d.%d.%d: cannot create a CPU engine", v->major, v->minor, v->patch);
        return;
    }
    state = DISTILL_DNNL_STATE_LOADED;
    snprintf(status, sizeof status, "oneDNN %d.%d.%d, ISA %s", v->major, v->minor, v->patch, distill_dnnl_isa_name());
}

int distill_dnnl_load(void) { pthread_once(&once, load); return state == DISTILL_DNNL_STATE_LOADED; }
const char *distill_dnnl_status(void) { distill_dnnl_load(); return status; }
int distill_dnnl_state(void) { distill_dnnl_load(); return state; }
int distill_dnnl_isa(void) { return distill_dnnl_load() ? (int)p_dnnl_get_effective_cpu_isa() : 0; }

// oneDNN's ISA values are sets of feature bits; later AMX ISAs (fp16) include these.
int distill_dnnl_amx(void) { return (distill_dnnl_isa() & dnnl_cpu_isa_avx512_core_amx_) == dnnl_cpu_isa_avx512_core_amx_; }
int distill_dnnl_bf16_isa(void) { return (distill_dnnl_isa() & dnnl_cpu_isa_avx512_core_bf16_) == dnnl_cpu_isa_avx512_core_bf16_; }

const char *distill_dnnl_isa_name(void) {
    if (state != DISTILL_DNNL_STATE_LOADED) return "none";
    switch (p_dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41_: return "sse41";
    case dnnl_cpu_isa_avx_: return "avx";
    case dnnl_cpu_isa_avx2_: return "avx2";
    case dnnl_cpu_isa_avx2_vnni_: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core_: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni_: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16_: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx_: return "avx512_core_amx";
    default: return "other";
    }
}

/// The thread count last set: part of a cached primitive's key (brgemm fixes its split when
/// it is made). omp_set_num_threads sets the calling thread's count: products are issued from
/// the thread that sets it (the main thread), as the header says calls are made.
static int threads_set = 0;

void distill_dnnl_set_threads(int n) {
    if (!distill_dnnl_load() || !p_omp_set_num_threads) return;
    p_omp_set_num_threads(n);
    pthread_mutex_lock(&lock);
    threads_set = n;
    pthread_mutex_unlock(&lock);
}

typedef struct { void (*fn)(void *, int); void *ctx; int size; } team_job_t;
static void team_body(void *p) {
    team_job_t *j = (team_job_t *)p;
    int t = p_omp_get_thread_num();
    if (t == 0) j->size = p_omp_get_num_threads();
    if (j->fn) j->fn(j->ctx, t);
}

int distill_dnnl_parallel(int threads, void (*fn)(void *, int), void *ctx) {
    if (!distill_dnnl_load() || !p_GOMP_parallel || !p_omp_get_thread_num || !p_omp_get_num_threads || threads < 1) return -1;
    team_job_t j = {fn, ctx, 0};
    p_GOMP_parallel(team_body, &j, (unsigned)threads, 0);
    return j.size;
}

/// Inside a chunk of a loop on the team (an active OpenMP region) a product would run on this
/// one thread with the split made for the whole team: the products decline it there, and the
/// caller's fallback runs it.
static int inside_team(void) { return p_omp_in_parallel && p_omp_in_parallel(); }

int distill_dnnl_sgemm(char ta, char tb, long M, long N, long K, float alpha, const float *A, long lda, const float *B, long ldb,
                       float beta, float *C, long ldc) {
    if (!distill_dnnl_load() || inside_team()) return -1;
    return p_dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == dnnl_success_ ? 0 : -1;
}

// ---------------------------------------------------------------- matmul primitives, cached

typedef struct {
    int types, accumulate, biased, threads;
    long M, N, K, sm, sk, wk, wn, ldc;
    dnnl_primitive_t_ prim;   // NULL: oneDNN cannot run this shape and types
    dnnl_memory_t_ src, wei, bia, dst;   // bia: NULL without a bias
    int exact;                // u8 × s8: 0 not checked yet, 1 exact, -1 saturates
} entry_t;

// Every distinct shape makes an entry (bucketed batches give many row counts), so the cache is
// emptied when it reaches CACHE_LIMIT entries rather than growing without end.
enum { CACHE_LIMIT = 512 };
static entry_t *cache = NULL;
static int cached = 0, capacity = 0;
static int check_u8s8 = 1;

void distill_dnnl_check_u8s8(int on) {
    pthread_mutex_lock(&lock);
    check_u8s8 = on;
    pthread_mutex_unlock(&lock);
}

/// Destroys what make() created for e, leaving its key: e can no longer run.
static void release(entry_t *e) {
    if (e->prim) p_dnnl_primitive_destroy(e->prim);
    if (e->src) p_dnnl_memory_destroy(e->src);
    if (e->wei) p_dnnl_memory_destroy(e->wei);
    if (e->bia) p_dnnl_memory_destroy(e->bia);
    if (e->dst) p_dnnl_memory_destroy(e->dst);
    e->prim = NULL; e->src = e->wei = e->bia = e->dst = NULL;
}

static dnnl_data_type_t_ src_type(int t) { return t == DISTILL_DNNL_BF16 ? dnnl_bf16_ : t == DISTILL_DNNL_U8S8 ? dnnl_u8_ : dnnl_f32_; }
static dnnl_data_type_t_ wei_type(int t) { return t == DISTILL_DNNL_BF16 ? dnnl_bf16_ : t == DISTILL_DNNL_U8S8 ? dnnl_s8_ : dnnl_f32_; }
static dnnl_data_type_t_ dst_type(int t) { return t == DISTILL_DNNL_U8S8 ? dnnl_s32_ : dnnl_f32_; }

static void make(entry_t *e) {
    dnnl_memory_desc_t_ s, w, b, d;
    dnnl_dims_t_ sd = {e->M, e->K}, ss = {e->sm, e->sk};
    dnnl_dims_t_ wd = {e->K, e->N}, ws = {e->wk, e->wn};
    dnnl_dims_t_ bd = {1, e->N}, bs = {e->N, 1};   // bias [1 × N], broadcast over the rows
    dnnl_dims_t_ dd = {e->M, e->N}, ds = {e->ldc, 1};
    e->prim = NULL;
    if (p_dnnl_memory_desc_init_by_strides(&s, 2, sd, src_type(e->types), ss) != dnnl_success_) return;
    if (p_dnnl_memory_desc_init_by_strides(&w, 2, wd, wei_type(e->types), ws) != dnnl_success_) return;
    if (e->biased && p_dnnl_memory_desc_init_by_strides(&b, 2, bd, dnnl_f32_, bs) != dnnl_success_) return;
    if (p_dnnl_memory_desc_init_by_strides(&d, 2, dd, dst_type(e->types), ds) != dnnl_success_) return;
    dnnl_matmul_desc_t_ md;
    if (p_dnnl_matmul_desc_init(&md, &s, &w, e->biased ? &b : NULL, &d) != dnnl_success_) return;
    dnnl_primitive_attr_t_ attr;
    p_dnnl_primitive_attr_create(&attr);
    dnnl_post_ops_t_ po = NULL;
    if (e->accumulate) {
        p_dnnl_post_ops_create(&po);
        p_dnnl_post_ops_append_sum(po, 1.0f);
        p_dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t_ pd;
    dnnl_status_t_ st = p_dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL);
    if (po) p_dnnl_post_ops_destroy(po);
    p_dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success_) return;
    // A reference implementation would be slower than our own kernels: only optimised ones count.
    const char *impl = NULL;
    if (p_dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str_, 0, &impl) != dnnl_success_ || !impl || strstr(impl, "ref")) {
        p_dnnl_primitive_desc_destroy(pd);
        return;
    }
    if (p_dnnl_primitive_create(&e->prim, pd) != dnnl_success_) { e->prim = NULL; p_dnnl_primitive_desc_destroy(pd); return; }
    p_dnnl_primitive_desc_destroy(pd);
    if (p_dnnl_memory_create(&e->src, &s, engine, DNNL_MEMORY_NONE_) != dnnl_success_ ||
        p_dnnl_memory_create(&e->wei, &w, engine, DNNL_MEMORY_NONE_) != dnnl_success_ ||
        (e->biased && p_dnnl_memory_create(&e->bia, &b, engine, DNNL_MEMORY_NONE_) != dnnl_success_) ||
        p_dnnl_memory_create(&e->dst, &d, engine, DNNL_MEMORY_NONE_) != dnnl_success_) {
        release(e);
    }
}

static int run(entry_t *e, const void *src, const void *wei, const float *bias, void *dst) {
    p_dnnl_memory_set_data_handle(e->src, (void *)src);
    p_dnnl_memory_set_data_handle(e->wei, (void *)wei);
    p_dnnl_memory_set_data_handle(e->dst, dst);
    dnnl_exec_arg_t_ args[4] = {{DNNL_ARG_SRC_, e->src}, {DNNL_ARG_WEIGHTS_, e->wei}, {DNNL_ARG_DST_, e->dst}, {DNNL_ARG_BIAS_, e->bia}};
    if (e->bia) p_dnnl_memory_set_data_handle(e->bia, (void *)bias);
    int n = e->bia ? 4 : 3;
    return p_dnnl_primitive_execute(e->prim, stream, n, args) == dnnl_success_ && p_dnnl_stream_wait(stream) == dnnl_success_ ? 0 : -1;
}

/// Whether e's u8 × s8 products are exact: all-255 activations times all-127 weights, every
/// sum 255 · 127 · K (a 16-bit pair sum would saturate at 32,767 < 2 · 255 · 127). dst is
/// scratch. 1 exact, -1 not, 0 not known (no memory, or the run failed: try again next call).
static int exact_u8s8(entry_t *e, void *dst) {
    if (e->K > 65536) return -1;   // 255 · 127 · K must fit in an int32
    size_t ns = (size_t)((e->M - 1) * e->sm + (e->K - 1) * e->sk + 1);
    size_t nw = (size_t)((e->K - 1) * e->wk + (e->N - 1) * e->wn + 1);
    uint8_t *a = (uint8_t *)malloc(ns);
    int8_t *b = (int8_t *)malloc(nw);
    int verdict = 0;
    if (a && b) {
        memset(a, 255, ns); memset(b, 127, nw);
        if (run(e, a, b, NULL, dst) == 0) {
            verdict = 1;
            const int32_t *c = (const int32_t *)dst, want = (int32_t)(255 * 127 * e->K);
            for (long m = 0; verdict > 0 && m < e->M; m++)
                for (long n = 0; n < e->N; n++) if (c[m * e->ldc + n] != want) { verdict = -1; break; }
        }
    }
    free(a); free(b);
    return verdict;
}

int distill_dnnl_matmul(int types, long M, long N, long K, const void *src, long sm, long sk, const void *wei, long wk, long wn,
                        const float *bias, void *dst, long ldc, int accumulate) {
    if (!distill_dnnl_load() || M <= 0 || N <= 0 || K <= 0 || inside_team()) return -1;
    if (types == DISTILL_DNNL_U8S8) { accumulate = 0; bias = NULL; }
    int biased = bias != NULL;
    pthread_mutex_lock(&lock);
    entry_t *e = NULL;
    for (int i = 0; i < cached; i++) {
        entry_t *c = &cache[i];
        if (c->types == types && c->accumulate == accumulate && c->biased == biased && c->threads == threads_set && c->M == M && c->N == N && c->K == K &&
            c->sm == sm && c->sk == sk && c->wk == wk && c->wn == wn && c->ldc == ldc) { e = c; break; }
    }
    if (!e) {
        if (cached == CACHE_LIMIT) {
            for (int i = 0; i < cached; i++) release(&cache[i]);
            cached = 0;
        }
        if (cached == capacity) {
            int cap = capacity ? 2 * capacity : 64;
            entry_t *grown = (entry_t *)realloc(cache, (size_t)cap * sizeof(entry_t));
            if (!grown) { pthread_mutex_unlock(&lock); return -1; }
            cache = grown; capacity = cap;
        }
        e = &cache[cached++];
        memset(e, 0, sizeof *e);
        e->types = types; e->accumulate = accumulate; e->biased = biased; e->threads = threads_set; e->M = M; e->N = N; e->K = K;
        e->sm = sm; e->sk = sk; e->wk = wk; e->wn = wn; e->ldc = ldc;
        make(e);
    }
    if (e->prim && types == DISTILL_DNNL_U8S8 && check_u8s8 && e->exact == 0) e->exact = exact_u8s8(e, dst);
    int usable = e->prim && !(types == DISTILL_DNNL_U8S8 && check_u8s8 && e->exact <= 0);
    int rc = usable ? run(e, src, wei, bias, dst) : -1;
    pthread_mutex_unlock(&lock);
    return rc;
}

int distill_dnnl_supports(int types) {
    if (!distill_dnnl_load()) return 0;
    enum { M = 32, N = 48, K = 256 };
    if (types == DISTILL_DNNL_U8S8) {
        // All-maximum operands: exact only without 16-bit intermediate saturation.
        static uint8_t a[M * K]; static int8_t b[N * K]; static int32_t c[M * N];
        memset(a, 255, sizeof a); memset(b, 127, sizeof b);
        if (distill_dnnl_matmul(types, M, N, K, a, K, 1, b, 1, K, NULL, c, N, 0) != 0) return 0;
        for (int i = 0; i < M * N; i++) if (c[i] != 255 * 127 * K) return 0;
        return 1;
    }
    static uint16_t a16[M * K], b16[N * K]; static float af[M * K], bf[N * K], c[M * N];
    for (int i = 0; i < M * K; i++) { a16[i] = 0x3F80; af[i] = 1; }   // 1.0
    for (int i = 0; i < N * K; i++) { b16[i] = 0x4000; bf[i] = 2; }   // 2.0
    const void *a = types == DISTILL_DNNL_BF16 ? (const void *)a16 : (const void *)af;
    const void *b = types == DISTILL_DNNL_BF16 ? (const void *)b16 : (const void *)bf;
    if (distill_dnnl_matmul(types, M, N, K, a, K, 1, b, 1, K, NULL, c, N, 0) != 0) return 0;
    for (int i = 0; i < M * N; i++) if (c[i] != 2.0f * K) return 0;
    return 1;
}

#endif
