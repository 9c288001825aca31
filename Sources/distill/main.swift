import Glibc
import DistilleryTensor
import DistilleryCLI

// OpenBLAS chooses its kernels when it loads. When it did not recognise this CPU (a generic
// SSE3 core on a CPU with AVX2 or AVX-512), restart once with OPENBLAS_CORETYPE set to the right
// core: the only way to change it, since it is read at load time.
let blas = OpenBLAS.status()
if let core = OpenBLAS.correction(blas) {
    setenv("OPENBLAS_CORETYPE", core, 1)
    setenv(OpenBLAS.correctedMarker, blas.core, 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    // Only reached if the restart failed: carry on with the slow kernels.
    unsetenv(OpenBLAS.correctedMarker)
}
Distill.runMain()
