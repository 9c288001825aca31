// OpenBLAS: CBLAS for every matrix product, plus the few LAPACK and
// threading entry points Distillery uses (declared here because Debian's
// OpenBLAS ships no lapacke.h by default).
#include <cblas.h>

// Singular value decomposition (LAPACK, column-major; carried by OpenBLAS).
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda,
             float *s, float *u, const int *ldu, float *vt, const int *ldvt,
             float *work, const int *lwork, int *iwork, int *info);
