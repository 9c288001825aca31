// See include/distill_mpi.h.
#include "distill_mpi.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

// The SIGTERM notice: two buffers, the handler reads the one last completed.
static char notices[2][1024];
static atomic_int notice_index = -1;

void distill_mpi_set_notice(const char *text) {
    int next = atomic_load(&notice_index) == 0 ? 1 : 0;
    snprintf(notices[next], sizeof notices[next], "%s\n", text);
    atomic_store(&notice_index, next);
}

static void on_term(int sig) {
    int i = atomic_load(&notice_index);
    if (i >= 0) {
        ssize_t unused = write(2, notices[i], strlen(notices[i]));
        (void)unused;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void distill_mpi_install_notice(void) { signal(SIGTERM, on_term); }

#ifndef DISTILL_NO_MPI

#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

// The Open MPI ABI (libmpi.so.40, Open MPI 3.x and 4.x): handles are pointers, the
// predefined ones the addresses of global objects; statuses may be NULL (MPI_STATUS_IGNORE).
typedef void *MPI_Comm_;
typedef void *MPI_Datatype_;
typedef void *MPI_Op_;
typedef void *MPI_Request_;
enum { MPI_SUCCESS_ = 0, MPI_THREAD_SERIALIZED_ = 2, MPI_MAX_LIBRARY_VERSION_STRING_ = 256 };
#define MPI_IN_PLACE_ ((void *)1)

#if __has_include(<openmpi/mpi.h>)
// Where the header is installed, the hand-written declarations are checked against it.
#include <openmpi/mpi.h>
_Static_assert(MPI_SUCCESS == MPI_SUCCESS_, "MPI_SUCCESS");
_Static_assert(MPI_THREAD_SERIALIZED == MPI_THREAD_SERIALIZED_, "MPI_THREAD_SERIALIZED");
_Static_assert(MPI_MAX_LIBRARY_VERSION_STRING == MPI_MAX_LIBRARY_VERSION_STRING_, "MPI_MAX_LIBRARY_VERSION_STRING");
_Static_assert(sizeof(MPI_Comm) == sizeof(MPI_Comm_) && sizeof(MPI_Request) == sizeof(MPI_Request_), "handles are pointers");
_Static_assert(OMPI_MAJOR_VERSION >= 3 && OMPI_MAJOR_VERSION <= 4, "libmpi.so.40 is Open MPI 3.x or 4.x");
#endif

#define FUNCS(X)                                                                                          \
    X(int, MPI_Initialized, (int *))                                                                      \
    X(int, MPI_Init_thread, (int *, char ***, int, int *))                                                \
    X(int, MPI_Comm_rank, (MPI_Comm_, int *))                                                             \
    X(int, MPI_Comm_size, (MPI_Comm_, int *))                                                             \
    X(int, MPI_Get_library_version, (char *, int *))                                                      \
    X(int, MPI_Iallreduce, (const void *, void *, int, MPI_Datatype_, MPI_Op_, MPI_Comm_, MPI_Request_ *)) \
    X(int, MPI_Ibcast, (void *, int, MPI_Datatype_, int, MPI_Comm_, MPI_Request_ *))                      \
    X(int, MPI_Ibarrier, (MPI_Comm_, MPI_Request_ *))                                                     \
    X(int, MPI_Test, (MPI_Request_ *, int *, void *))                                                     \
    X(int, MPI_Abort, (MPI_Comm_, int))                                                                   \
    X(int, MPI_Finalize, (void))

#define DECLARE(ret, name, args) static ret(*p_##name) args;
FUNCS(DECLARE)
static MPI_Comm_ world;
static MPI_Datatype_ type_float, type_double, type_byte;
static MPI_Op_ op_sum;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ready = 0, rank = 0, size = 1;
static char status[320] = "not started (the process was not launched by mpirun)";

int distill_mpi_launched_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    return s ? atoi(s) : 0;
}

static void load(void) {
    // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols from the global scope.
    void *h = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    if (!h) { snprintf(status, sizeof status, "Open MPI is not installed (libmpi.so.40: %s; install openmpi-bin)", dlerror()); return; }
#define RESOLVE(ret, name, args)                                                                      \
    p_##name = (ret(*) args)dlsym(h, #name);                                                          \
    if (!p_##name) { snprintf(status, sizeof status, "libmpi.so.40 lacks %s", #name); return; }
    FUNCS(RESOLVE)
    world = dlsym(h, "ompi_mpi_comm_world");
    type_float = dlsym(h, "ompi_mpi_float");
    type_double = dlsym(h, "ompi_mpi_double");
    type_byte = dlsym(h, "ompi_mpi_byte");
    op_sum = dlsym(h, "ompi_mpi_op_sum");
    if (!world || !type_float || !type_double || !type_byte || !op_sum) {
        snprintf(status, sizeof status, "libmpi.so.40 is not Open MPI (no ompi_mpi_comm_world)");
        return;
    }
    int provided = 0, already = 0;
    p_MPI_Initialized(&already);
    if (!already && p_MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED_, &provided) != MPI_SUCCESS_) {
        snprintf(status, sizeof status, "MPI_Init_thread failed");
        return;
    }
    if (!already && provided < MPI_THREAD_SERIALIZED_) {
        snprintf(status, sizeof status, "this Open MPI gives thread level %d, and Distillery needs MPI_THREAD_SERIALIZED", provided);
        return;
    }
    p_MPI_Comm_rank(world, &rank);
    p_MPI_Comm_size(world, &size);
    char version[MPI_MAX_LIBRARY_VERSION_STRING_] = "";
    int n = 0;
    p_MPI_Get_library_version(version, &n);
    char *end = strpbrk(version, ",\n");  // "Open MPI v4.1.4, package: …" → "Open MPI v4.1.4"
    if (end) *end = 0;
    snprintf(status, sizeof status, "%s, %d process%s", version, size, size == 1 ? "" : "es");
    ready = 1;
}

int distill_mpi_init(void) { pthread_once(&once, load); return ready; }
const char *distill_mpi_status(void) { return status; }
int distill_mpi_rank(void) { return rank; }
int distill_mpi_size(void) { return size; }

static int ok(int rc) { return rc == MPI_SUCCESS_ ? 0 : -1; }

int distill_mpi_iallreduce_f32(const float *send, float *recv, long count, distill_mpi_request *request) {
    if (!ready) return -1;
    if (count < 0 || count > INT_MAX) return -2;
    return ok(p_MPI_Iallreduce(send == recv ? MPI_IN_PLACE_ : send, recv, (int)count, type_float, op_sum, world, request));
}

int distill_mpi_iallreduce_f64(const double *send, double *recv, long count, distill_mpi_request *request) {
    if (!ready) return -1;
    if (count < 0 || count > INT_MAX) return -2;
    return ok(p_MPI_Iallreduce(send == recv ? MPI_IN_PLACE_ : send, recv, (int)count, type_double, op_sum, world, request));
}

int distill_mpi_ibcast_f32(float *buffer, long count, int root, distill_mpi_request *request) {
    if (!ready) return -1;
    if (count < 0 || count > INT_MAX) return -2;
    return ok(p_MPI_Ibcast(buffer, (int)count, type_float, root, world, request));
}

int distill_mpi_ibcast_f64(double *buffer, long count, int root, distill_mpi_request *request) {
    if (!ready) return -1;
    if (count < 0 || count > INT_MAX) return -2;
    return ok(p_MPI_Ibcast(buffer, (int)count, type_double, root, world, request));
}

int distill_mpi_ibcast_bytes(void *buffer, long count, int root, distill_mpi_request *request) {
    if (!ready) return -1;
    if (count < 0 || count > INT_MAX) return -2;
    return ok(p_MPI_Ibcast(buffer, (int)count, type_byte, root, world, request));
}

int distill_mpi_ibarrier(distill_mpi_request *request) {
    if (!ready) return -1;
    return ok(p_MPI_Ibarrier(world, request));
}

int distill_mpi_test(distill_mpi_request *request, int *done) {
    if (!ready) return -1;
    return ok(p_MPI_Test(request, done, NULL));
}

int distill_mpi_wait(distill_mpi_request *request) {
    if (!ready) return -1;
    long ns = 1000;
    for (;;) {
        int done = 0;
        if (p_MPI_Test(request, &done, NULL) != MPI_SUCCESS_) return -1;
        if (done) return 0;
        struct timespec t = {0, ns};
        nanosleep(&t, NULL);
        if (ns < 1000000) ns *= 2;
    }
}

void distill_mpi_abort(int code) {
    if (ready) p_MPI_Abort(world, code);
    exit(code);
}

int distill_mpi_finalize(void) {
    if (!ready) return 0;
    ready = 0;
    return ok(p_MPI_Finalize());
}

#else

int distill_mpi_launched_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    return s ? atoi(s) : 0;
}
int distill_mpi_init(void) { return 0; }
const char *distill_mpi_status(void) { return "not built in (Distillery was built with DISTILL_NO_MPI)"; }
int distill_mpi_rank(void) { return 0; }
int distill_mpi_size(void) { return 1; }
int distill_mpi_iallreduce_f32(const float *s, float *r, long n, distill_mpi_request *q) { (void)s; (void)r; (void)n; (void)q; return -1; }
int distill_mpi_iallreduce_f64(const double *s, double *r, long n, distill_mpi_request *q) { (void)s; (void)r; (void)n; (void)q; return -1; }
int distill_mpi_ibcast_f32(float *b, long n, int root, distill_mpi_request *q) { (void)b; (void)n; (void)root; (void)q; return -1; }
int distill_mpi_ibcast_f64(double *b, long n, int root, distill_mpi_request *q) { (void)b; (void)n; (void)root; (void)q; return -1; }
int distill_mpi_ibcast_bytes(void *b, long n, int root, distill_mpi_request *q) { (void)b; (void)n; (void)root; (void)q; return -1; }
int distill_mpi_ibarrier(distill_mpi_request *q) { (void)q; return -1; }
int distill_mpi_test(distill_mpi_request *q, int *done) { (void)q; *done = 1; return -1; }
int distill_mpi_wait(distill_mpi_request *q) { (void)q; return -1; }
void distill_mpi_abort(int code) { exit(code); }
int distill_mpi_finalize(void) { return 0; }

#endif
