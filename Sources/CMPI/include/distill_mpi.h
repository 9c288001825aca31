// Open MPI (Debian's openmpi-bin / libopenmpi-dev) for data-parallel training, loaded at run
// time: nothing links against it, so a machine without it builds and runs Distillery in one
// process. The shim declares the few Open MPI ABI entry points it uses by hand (Open MPI's
// predefined handles, MPI_COMM_WORLD and the rest, are addresses of global objects in
// libmpi.so.40), and checks them against mpi.h at compile time where that header is
// installed. Built with DISTILL_NO_MPI, every call reports that MPI is unavailable.
//
// Threading: MPI is initialised with MPI_THREAD_SERIALIZED. Calls may come from several
// threads (the gradient reducer's communication thread, the main thread between steps), never
// at the same time: the caller serialises them.
#ifndef DISTILL_MPI_H
#define DISTILL_MPI_H

#ifdef __cplusplus
extern "C" {
#endif

/// The world size mpirun announced in the environment (OMPI_COMM_WORLD_SIZE), or 0 when the
/// process was not started by Open MPI's launcher.
int distill_mpi_launched_size(void);
/// Loads libmpi.so.40 and initialises MPI (once). 1 if usable, 0 if not (see distill_mpi_status).
int distill_mpi_init(void);
/// "Open MPI v4.1.4, 2 processes" or why MPI is not used.
const char *distill_mpi_status(void);
int distill_mpi_rank(void);
int distill_mpi_size(void);

/// An outstanding nonblocking operation (MPI_Request).
typedef void *distill_mpi_request;

/// Sums `count` values over all ranks into recv (recv == send: in place). Nonblocking: the
/// buffers belong to MPI until the request completes. 0 on success.
int distill_mpi_iallreduce_f32(const float *send, float *recv, long count, distill_mpi_request *request);
int distill_mpi_iallreduce_f64(const double *send, double *recv, long count, distill_mpi_request *request);
/// Rank `root`'s buffer to every rank. Nonblocking. 0 on success.
int distill_mpi_ibcast_f32(float *buffer, long count, int root, distill_mpi_request *request);
int distill_mpi_ibcast_f64(double *buffer, long count, int root, distill_mpi_request *request);
/// Rank `root`'s bytes to every rank (count ≤ INT_MAX). Nonblocking. 0 on success.
int distill_mpi_ibcast_bytes(void *buffer, long count, int root, distill_mpi_request *request);
int distill_mpi_ibarrier(distill_mpi_request *request);
/// Progresses the request: *done = 1 once it has completed. 0 on success.
int distill_mpi_test(distill_mpi_request *request, int *done);
/// Waits for the request, sleeping between tests (1 µs growing to 1 ms) rather than spinning,
/// so a rank waiting for another does not take its cores. 0 on success.
int distill_mpi_wait(distill_mpi_request *request);
/// A line written to standard error if the process is ended by SIGTERM (mpirun ending the job
/// because another rank died): set once per step, it names the step. The handler only calls
/// write(2), then dies of the signal as it would have.
void distill_mpi_set_notice(const char *text);
void distill_mpi_install_notice(void);
/// Ends every process of the job (MPI_Abort on MPI_COMM_WORLD).
void distill_mpi_abort(int code);
/// MPI_Finalize. 0 on success.
int distill_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
