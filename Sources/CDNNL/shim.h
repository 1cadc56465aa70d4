// CDNNL shim: oneDNN's C API (Debian's libdnnl-dev, which has no pkg-config file), plus the
// OpenMP calls of oneDNN's OpenMP runtime (libgomp) that the trainer uses: the thread count, and
// GOMP_parallel, libgomp's entry point for a parallel region (what `#pragma omp parallel` compiles
// to), so that the passes between the products run on the products' own thread team (Parallel.swift)
// without a second runtime or compiler OpenMP support; and a prefetch hint, which Swift lacks.
#ifndef DIST_TRAINER_CDNNL_SHIM_H
#define DIST_TRAINER_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int);
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_in_parallel(void);
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

// A hint to bring the cache line at `p` in ahead of its use (no fault if `p` is not mapped, no
// effect on any result): the gather asks for the next minibatch's samples this way (Network).
static inline void dist_trainer_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
