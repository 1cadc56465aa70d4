#!/usr/bin/env bash
# test.sh: install what is missing (system packages and the Python test oracles, at pinned
# versions), build, lint every shell script (scripts/lint.sh), and run every test: Swift unit tests
# (finite differences, hand-computed values), the NumPy reference, end-to-end runs of the release
# binary, and mpirun jobs on 1, 2 and 3 ranks.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --filter Adam   # extra arguments go to `swift test` (run instead of the suite)
#
# It can be started from any directory (the package is found from this script's location).
set -euo pipefail
# The Slurm tests run real (one-node and emulated two-node) clusters; the multi-host tests make
# emulated hosts with network namespaces (iproute2) and real sshd's; the deployment test runs the
# binary under qemu-user as an older CPU; python3-pip installs the oracles below on a machine that
# has only Debian's python3. Their packages are installed with the rest.
export EXTRA_APT_PACKAGES="${EXTRA_APT_PACKAGES:-} slurm-wlm munge iproute2 openssh-server openssh-client qemu-user python3 python3-pip"
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# Every shell script of the repository passes shellcheck (and whatever else lint.sh checks).
say "linting (scripts/lint.sh)"
"$ROOT/scripts/lint.sh"

# Test oracles and tools: NumPy (reference implementation of the seed's math), safetensors (the
# reference reader/writer of the checkpoint format), matplotlib (the plotting script), tensorboard
# (its own reader checks the event files), scikit-learn (real data sets to train on, and its
# MLPClassifier to compare with), onnx and onnxruntime (the ONNX export, and a real consumer of it).
# Pinned to exact versions (what pip chose for Python 3.11 on 2026-12-02 and 2026-12-04), so that every machine tests against the same oracles; a package installed at
# another version is replaced. Raise a pin deliberately, after running the suite with the new one.
PY_PINS=(numpy==2.4.6 safetensors==0.8.0 matplotlib==3.11.2 tensorboard==2.21.0 scikit-learn==1.9.1 onnx==1.23.2 onnxruntime==1.32.0)
py_version() {  # DIST -> its installed version, or nothing
    python3 -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true
}
py_wrong_versions() {  # the pins whose package is missing or at another version
    local pin
    for pin in "${PY_PINS[@]}"; do
        [ "$(py_version "${pin%%==*}")" = "${pin#*==}" ] || echo "$pin"
    done
}
mapfile -t py_install < <(py_wrong_versions)
if [ ${#py_install[@]} -gt 0 ]; then
    say "installing Python packages: ${py_install[*]}"
    # Debian's own python3 refuses pip without --break-system-packages (PEP 668); a python3 of
    # pyenv, a venv or conda takes the plain form.
    python3 -m pip install --quiet "${py_install[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${py_install[@]}" \
        || { say "pip could not install ${py_install[*]}"; exit 1; }
fi
for pin in "${PY_PINS[@]}"; do
    p="${pin%%==*}" want="${pin#*==}" found="$(py_version "${pin%%==*}")"
    [ "$found" = "$want" ] || { say "python package $p: the tests need $want, python3 finds ${found:-none}"; exit 1; }
    module="$p"
    [ "$p" = scikit-learn ] && module=sklearn
    python3 -c "import $module" || { say "python package $p $want is installed but does not import"; exit 1; }
done

# In CI every oracle must run: a missing one fails the test instead of skipping it.
export SAFETENSORS_REQUIRED=1 MATPLOTLIB_REQUIRED=1 TENSORBOARD_REQUIRED=1 SKLEARN_REQUIRED=1 ONNX_REQUIRED=1
export NUMPY_REFERENCE_REQUIRED=1  # the NumPy oracle must run in CI, not skip
export MULTIHOST_REQUIRED=1        # and so must the emulated cluster, sshd and qemu
say "running tests (binary under test: $DIST_TRAINER_BIN)"
if [ $# -gt 0 ]; then exec swift test --package-path "$ROOT" "$@"; fi
# The multi-host tests time how fast a lost host ends a job: they run alone, after the rest.
swift test --package-path "$ROOT" --explicit-target-dependency-import-check error --parallel --num-workers 2 --skip "MultiHost(Tests|ElasticTests)"
say "running the multi-host tests (emulated hosts, one at a time)"
swift test --package-path "$ROOT" --skip-build --filter "MultiHost(Tests|ElasticTests)"
# The parsers of untrusted files under libFuzzer and AddressSanitizer, a short fixed budget each
# (a longer run: scripts/fuzz.sh all 600). A finding fails the run.
say "fuzzing the file parsers (${FUZZ_SECONDS:-15} s per harness)"
"$ROOT/scripts/fuzz.sh" all "${FUZZ_SECONDS:-15}"
