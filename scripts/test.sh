#!/usr/bin/env bash
# test.sh: install what is missing (system packages and the Python test oracles), build, and run
# every test: Swift unit tests (finite differences, hand-computed values), the NumPy reference,
# end-to-end runs of the release binary, and mpirun jobs on 1, 2 and 3 ranks.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --filter Adam   # extra arguments go to `swift test` (run instead of the suite)
set -euo pipefail
# The Slurm tests run real (one-node and emulated two-node) clusters; the multi-host tests make
# emulated hosts with network namespaces (iproute2) and real sshd's; the deployment test runs the
# binary under qemu-user as an older CPU. Their packages are installed with the rest.
export EXTRA_APT_PACKAGES="${EXTRA_APT_PACKAGES:-} slurm-wlm munge iproute2 openssh-server openssh-client qemu-user"
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# Test oracles and tools: NumPy (reference implementation of the seed's math), safetensors (the
# reference reader/writer of the checkpoint format), matplotlib (the plotting script), tensorboard
# (its own reader checks the event files).
PY_PACKAGES=(numpy safetensors matplotlib tensorboard)
py_missing=()
for p in "${PY_PACKAGES[@]}"; do python3 -c "import $p" >/dev/null 2>&1 || py_missing+=("$p"); done
if [ ${#py_missing[@]} -gt 0 ]; then
    say "installing Python packages: ${py_missing[*]}"
    python3 -m pip install --quiet "${py_missing[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${py_missing[@]}" \
        || { say "pip could not install ${py_missing[*]}"; exit 1; }
fi
for p in "${PY_PACKAGES[@]}"; do python3 -c "import $p" || { say "python package $p is required by the tests"; exit 1; }; done

# In CI every oracle must run: a missing one fails the test instead of skipping it.
export SAFETENSORS_REQUIRED=1 MATPLOTLIB_REQUIRED=1 TENSORBOARD_REQUIRED=1
export NUMPY_REFERENCE_REQUIRED=1  # the NumPy oracle must run in CI, not skip
export MULTIHOST_REQUIRED=1        # and so must the emulated cluster, sshd and qemu
say "running tests (binary under test: $DIST_TRAINER_BIN)"
if [ $# -gt 0 ]; then exec swift test "$@"; fi
# The multi-host tests time how fast a lost host ends a job: they run alone, after the rest.
swift test --explicit-target-dependency-import-check error --parallel --num-workers 2 --skip MultiHostTests
say "running the multi-host tests (emulated hosts, one at a time)"
swift test --skip-build --filter MultiHostTests
# The parsers of untrusted files under libFuzzer and AddressSanitizer, a short fixed budget each
# (a longer run: scripts/fuzz.sh all 600). A finding fails the run.
say "fuzzing the file parsers (${FUZZ_SECONDS:-15} s per harness)"
scripts/fuzz.sh all "${FUZZ_SECONDS:-15}"
