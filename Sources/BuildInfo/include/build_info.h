// BuildInfo: facts about this build of dist-trainer — the CPU its Swift code was compiled for
// (checked before anything else runs, see cpu_check.c) and the source revision it was built from.
#ifndef DIST_TRAINER_BUILD_INFO_H
#define DIST_TRAINER_BUILD_INFO_H

/// The CPU the Swift code was compiled for (-target-cpu), e.g. "skylake-avx512", or "default".
const char *dist_trainer_target_cpu(void);

/// The source revision (`git describe --always --dirty` when scripts/setup.sh built it), or "unknown".
const char *dist_trainer_revision(void);

#endif
