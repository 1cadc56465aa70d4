// cpu_check.c (BuildInfo): refuses, with one clear line, to run this binary on a CPU that lacks the vector
// instructions the Swift code was compiled for — instead of dying on an illegal instruction in the
// middle of a job on some node of a cluster.
//
// It runs as an ELF constructor, before Swift's runtime and main, and is itself compiled for the
// baseline x86-64 (Package.swift gives this C target no -march), so the check cannot trip over the
// instructions it checks for. Not a dispatcher: the build targets one CPU level (Package.swift).
#include "build_info.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DIST_TRAINER_TARGET_CPU
#define DIST_TRAINER_TARGET_CPU "default"
#endif

const char *dist_trainer_target_cpu(void) { return DIST_TRAINER_TARGET_CPU; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
static int level_at_least(const char *target, const char *level) {
    // The CPUs a build may target, by the x86-64 level they imply (v3: AVX2, FMA; v4: AVX-512).
    if (strcmp(level, "v3") == 0) {
        return strcmp(target, "x86-64-v3") == 0 || strcmp(target, "x86-64-v4") == 0 || strcmp(target, "haswell") == 0
            || strcmp(target, "skylake") == 0 || strcmp(target, "znver2") == 0 || strcmp(target, "znver3") == 0
            || level_at_least(target, "v4");
    }
    return strcmp(target, "x86-64-v4") == 0 || strcmp(target, "skylake-avx512") == 0 || strcmp(target, "icelake-server") == 0
        || strcmp(target, "sapphirerapids") == 0 || strcmp(target, "znver4") == 0 || strcmp(target, "znver5") == 0;
}

__attribute__((constructor)) static void dist_trainer_check_cpu(void) {
    const char *target = DIST_TRAINER_TARGET_CPU;
    const char *missing[8];
    int n = 0;
    __builtin_cpu_init();
    if (level_at_least(target, "v3")) {
        if (!__builtin_cpu_supports("avx2")) missing[n++] = "avx2";
        if (!__builtin_cpu_supports("fma")) missing[n++] = "fma";
        if (!__builtin_cpu_supports("bmi2")) missing[n++] = "bmi2";
    }
    if (level_at_least(target, "v4")) {
        if (!__builtin_cpu_supports("avx512f")) missing[n++] = "avx512f";
        if (!__builtin_cpu_supports("avx512bw")) missing[n++] = "avx512bw";
        if (!__builtin_cpu_supports("avx512dq")) missing[n++] = "avx512dq";
        if (!__builtin_cpu_supports("avx512vl")) missing[n++] = "avx512vl";
    }
    if (n == 0) return;
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, missing[i], sizeof list - strlen(list) - 1);
    }
    char host[256] = "this host";
    gethostname(host, sizeof host - 1);
    fprintf(stderr, "dist-trainer: error: this binary was built for CPU %s, but %s lacks %s; rebuild it for the oldest CPU of the "
                    "cluster (DIST_TRAINER_TARGET_CPU=haswell for AVX2, x86-64 for any) and run that build everywhere\n",
            target, host, list);
    exit(1);
}
#endif
