// CDNNL shim: oneDNN's C API (Debian's libdnnl-dev, which has no pkg-config file), plus the two
// OpenMP calls that set and read the thread count of oneDNN's OpenMP runtime (libgomp).
#ifndef DIST_TRAINER_CDNNL_SHIM_H
#define DIST_TRAINER_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int);
int omp_get_max_threads(void);

#endif
