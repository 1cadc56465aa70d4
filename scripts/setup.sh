#!/usr/bin/env bash
# setup.sh: make this machine ready to build and run dist-trainer, then build it (release).
#
# Sourced by train.sh, test.sh, bench.sh, bench_hosts.sh and sweep.sh; safe to run again (it only
# installs what is missing). It never changes the caller's working directory: every path it uses is
# absolute (under $ROOT), so the relative paths a user gives those scripts keep meaning what they
# mean in the user's directory.
# Installs with apt on Debian/Ubuntu: Open MPI, oneDNN, zlib and the Fashion-MNIST data set
# package. Elsewhere it says what to install and stops. The release binary links the Swift runtime
# and Foundation statically, so other nodes need only Open MPI, oneDNN and zlib (not Swift).
# Environment: DIST_TRAINER_SKIP_BUILD=1 skips the build (and keeps a given DIST_TRAINER_BIN);
# SWIFT_BIN overrides where swift is;
# EXTRA_APT_PACKAGES adds packages (the Slurm test uses it).

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '[setup] %s\n' "$*" >&2; }

# --- Swift -------------------------------------------------------------------------------------
if ! command -v swift >/dev/null 2>&1; then
    for candidate in "${SWIFT_BIN:-}" /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        if [ -n "$candidate" ] && [ -x "$candidate/swift" ]; then export PATH="$candidate:$PATH"; break; fi
    done
fi
command -v swift >/dev/null 2>&1 || { say "swift not found: install Swift 6 (https://swift.org/install) or set SWIFT_BIN"; exit 1; }

# --- System packages ---------------------------------------------------------------------------
APT_PACKAGES=(libopenmpi-dev openmpi-bin libdnnl-dev zlib1g-dev dataset-fashion-mnist pkg-config)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${APT_PACKAGES[@]}" ${EXTRA_APT_PACKAGES:-}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        say "installing ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    for tool in mpirun pkg-config; do
        command -v "$tool" >/dev/null 2>&1 || { say "$tool not found: install Open MPI, oneDNN and zlib (e.g. brew install open-mpi onednn)"; exit 1; }
    done
fi

# --- mpirun settings (liveness across hosts, running as root) --------------------------------
source "$ROOT/scripts/mpi-env.sh"

# --- Build ------------------------------------------------------------------------------------
if [ "${DIST_TRAINER_SKIP_BUILD:-0}" != 1 ]; then
    # The source revision for `dist-trainer --version`, config.json and checkpoints (rewritten only
    # when it changes, so an unchanged tree does not rebuild).
    revision="$(git -C "$ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
    line="#define DIST_TRAINER_REVISION \"$revision\""
    header="$ROOT/Sources/BuildInfo/generated_revision.h"
    [ "$(cat "$header" 2>/dev/null)" = "$line" ] || echo "$line" >"$header"
    build_log="$ROOT/.build/setup-build.log"
    say "building release (log: $build_log)"
    mkdir -p "$ROOT/.build"
    # The import check makes every import of a target not declared in Package.swift an error: the
    # layering of Sources/Core is the compiler's to hold, not a convention.
    if ! swift build --package-path "$ROOT" -c release --product dist-trainer --static-swift-stdlib \
        --explicit-target-dependency-import-check error >"$build_log" 2>&1; then
        grep -E 'error|warning: unable' "$build_log" >&2 || tail -30 "$build_log" >&2
        say "build failed"
        exit 1
    fi
fi
if [ "${DIST_TRAINER_SKIP_BUILD:-0}" = 1 ]; then
    export DIST_TRAINER_BIN="${DIST_TRAINER_BIN:-$ROOT/.build/release/dist-trainer}"
else
    export DIST_TRAINER_BIN="$ROOT/.build/release/dist-trainer"
fi
