#!/usr/bin/env bash
# test.sh: install what is missing (system packages and the Python test oracles), build, and run
# every test: Swift unit tests (finite differences, hand-computed values), the NumPy reference,
# end-to-end runs of the release binary, and mpirun jobs on 1, 2 and 3 ranks.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --filter Adam   # extra arguments go to `swift test`
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# Test oracles: NumPy (reference implementation of the seed's math).
PY_PACKAGES=(numpy)
if ! python3 -c 'import numpy' >/dev/null 2>&1; then
    say "installing Python packages: ${PY_PACKAGES[*]}"
    python3 -m pip install --quiet "${PY_PACKAGES[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${PY_PACKAGES[@]}" 2>/dev/null \
        || { command -v apt-get >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-numpy >/dev/null; }
fi
python3 -c 'import numpy' || { say "numpy is required for the reference tests"; exit 1; }

export NUMPY_REFERENCE_REQUIRED=1  # the NumPy oracle must run in CI, not skip
say "running tests (binary under test: $DIST_TRAINER_BIN)"
swift test --parallel --num-workers 2 "$@"
