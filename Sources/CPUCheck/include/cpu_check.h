// CPUCheck: the CPU features this build of dist-trainer was compiled for, checked before anything
// else runs. See cpu_check.c.
#ifndef DIST_TRAINER_CPU_CHECK_H
#define DIST_TRAINER_CPU_CHECK_H

/// The CPU the Swift code was compiled for (-target-cpu), e.g. "skylake-avx512", or "default".
const char *dist_trainer_target_cpu(void);

#endif
