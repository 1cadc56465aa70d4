// The source revision of this build: scripts/setup.sh writes it into generated_revision.h (not
// committed: every checkout has its own) before it builds; a build without it says "unknown".
#include "build_info.h"

#if __has_include("generated_revision.h")
#include "generated_revision.h"
#endif
#ifndef DIST_TRAINER_REVISION
#define DIST_TRAINER_REVISION "unknown"
#endif

const char *dist_trainer_revision(void) { return DIST_TRAINER_REVISION; }
