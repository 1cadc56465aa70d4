#!/usr/bin/env bash
# test.sh: install what is missing (system packages and the Python test oracles), build, and run
# every test: Swift unit tests (finite differences, hand-computed values), the NumPy reference,
# end-to-end runs of the release binary, and mpirun jobs on 1, 2 and 3 ranks.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --filter Adam   # extra arguments go to `swift test`
set -euo pipefail
# The Slurm test runs a real one-node cluster: its packages are installed with the rest.
export EXTRA_APT_PACKAGES="${EXTRA_APT_PACKAGES:-} slurm-wlm munge"
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# Test oracles and tools: NumPy (reference implementation of the seed's math), safetensors (the
# reference reader/writer of the checkpoint format), matplotlib (the plotting script).
PY_PACKAGES=(numpy safetensors matplotlib)
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
export SAFETENSORS_REQUIRED=1 MATPLOTLIB_REQUIRED=1
export NUMPY_REFERENCE_REQUIRED=1  # the NumPy oracle must run in CI, not skip
say "running tests (binary under test: $DIST_TRAINER_BIN)"
swift test --parallel --num-workers 2 "$@"
