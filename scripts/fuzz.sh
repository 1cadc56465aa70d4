#!/usr/bin/env bash
# fuzz.sh: coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the parsers of untrusted files:
# IDX data files, gzip, safetensors, and checkpoints (header, model, resume state and its checks).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]    TARGET: idx | gzip | safetensors | checkpoint | all
#   scripts/fuzz.sh all 15                                   # what CI runs: each harness for 15 s
#
# Builds .build/fuzz/dist-trainer-fuzz once (Core's modules and fuzz/Harness.swift, compiled with
# -sanitize=fuzzer,address), writes the seed corpus (fuzz/make_corpus.py: hand-made IDX, gzip and
# safetensors files, and the checkpoints of a tiny run of the release binary, $DIST_TRAINER_BIN or
# .build/release/dist-trainer), then runs each harness on it (new inputs go to
# .build/fuzz/corpus/TARGET, crashes to .build/fuzz/crashes/). Prints one line per
# target: executions, corpus size, and the findings. Exit 1 on any finding (the crashing input's
# path is printed; turn it into a regression test). Runs from any directory: relative paths in the
# libFuzzer options and in DIST_TRAINER_BIN mean the caller's directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGETS=(idx gzip safetensors checkpoint)
usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; }
die() { echo "fuzz.sh: $*" >&2; exit 2; }
case "${1:-}" in
    "") usage >&2; exit 2 ;;
    -h | --help) usage; exit 0 ;;
esac
TARGET="$1"
[ "$TARGET" = all ] || [[ " ${TARGETS[*]} " == *" $TARGET "* ]] || die "unknown target '$TARGET' (targets: ${TARGETS[*]} all)"
[ $# -ge 2 ] || die "SECONDS missing after $TARGET (usage: fuzz.sh TARGET SECONDS [libFuzzer options...])"
SECONDS_EACH="$2"
[[ "$SECONDS_EACH" =~ ^[1-9][0-9]*$ ]] || die "SECONDS: expected a positive number of seconds, found '$SECONDS_EACH'"
shift 2
command -v swiftc >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
OUT="$ROOT/.build/fuzz"
BIN="$OUT/dist-trainer-fuzz"
mkdir -p "$OUT" "$OUT/crashes"

# Core's targets in their layering order (Package.swift), each TARGET:FOLDER under Sources/Core,
# compiled one module at a time as SwiftPM would, then linked with the harness.
MODULES=(CoreSupport:Support Kernels:Kernels Collectives:Collectives Model:Model Training:Training Formats:Formats Datasets:Datasets)
sources=("$ROOT/fuzz/Harness.swift")
while IFS= read -r f; do sources+=("$f"); done < <(find "$ROOT/Sources/Core" -name '*.swift' | sort)
build_fuzzer() {
    local flags=("-sanitize=fuzzer,address" -parse-as-library -swift-version 6 -O -I "$OUT/modules" -I "$ROOT/Sources/CZlib" -I "$ROOT/Sources/CDNNL")
    local objects=() entry name folder files
    rm -rf "$OUT/modules" "$OUT/objects"
    mkdir -p "$OUT/modules" "$OUT/objects"
    for entry in "${MODULES[@]}"; do
        name="${entry%%:*}" folder="${entry#*:}"
        files=()
        while IFS= read -r f; do files+=("$f"); done < <(find "$ROOT/Sources/Core/$folder" -name '*.swift' | sort)
        swiftc "${flags[@]}" -wmo -module-name "$name" -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" \
            -emit-object -o "$OUT/objects/$name.o" "${files[@]}" || return 1
        objects+=("$OUT/objects/$name.o")
    done
    swiftc "${flags[@]}" -module-name FuzzHarness -lz -ldnnl -lgomp "$ROOT/fuzz/Harness.swift" "${objects[@]}" -o "$BIN"
}
if [ ! -x "$BIN" ] || [ -n "$(find "${sources[@]}" -newer "$BIN" -print -quit)" ]; then
    echo "fuzz.sh: building $BIN (libFuzzer + AddressSanitizer; a minute or two)" >&2
    build_fuzzer 2>"$OUT/build.log" \
        || { grep -E 'error' "$OUT/build.log" | head -20 >&2; echo "fuzz.sh: build failed (log: $OUT/build.log)" >&2; exit 1; }
fi

TRAINER="${DIST_TRAINER_BIN:-$ROOT/.build/release/dist-trainer}"
[ -x "$TRAINER" ] || { echo "fuzz.sh: $TRAINER: not an executable; build it first (scripts/setup.sh) or set DIST_TRAINER_BIN" >&2; exit 2; }
rm -rf "$OUT/seed"
python3 "$ROOT/fuzz/make_corpus.py" "$OUT/seed" "$TRAINER" || { echo "fuzz.sh: fuzz/make_corpus.py could not write the seed corpus" >&2; exit 1; }

targets=("$TARGET")
[ "$TARGET" = all ] && targets=("${TARGETS[@]}")
found=0
for t in "${targets[@]}"; do
    [ -d "$OUT/seed/$t" ] || { echo "fuzz.sh: fuzz/make_corpus.py wrote no seed corpus for $t ($OUT/seed/$t)" >&2; exit 1; }
    corpus="$OUT/corpus/$t"
    mkdir -p "$corpus"
    cp -n "$OUT/seed/$t"/* "$corpus"/ 2>/dev/null || true
    log="$OUT/$t.log"
    status=0
    FUZZ_TARGET="$t" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" "$BIN" "$corpus" \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=10 -artifact_prefix="$OUT/crashes/$t-" -print_final_stats=1 "$@" \
        >"$log" 2>&1 || status=$?
    execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{ print $2 }')"
    if [ "$status" -ne 0 ]; then
        found=1
        artifact="$(grep -o -E "$OUT/crashes/$t-[a-z]+-[0-9a-f]+" "$log" | head -n 1)"
        echo "fuzz $t: FINDING after ${execs:-?} executions: $(grep -m1 -E 'ERROR|Fatal error|SUMMARY' "$log" | cut -c1-160); input: ${artifact:-see $log}"
    else
        echo "fuzz $t: ${execs:-?} executions in ${SECONDS_EACH} s, corpus $(find "$corpus" -type f | wc -l) inputs, no findings"
    fi
done
exit "$found"
