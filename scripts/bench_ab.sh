#!/usr/bin/env bash
# bench_ab.sh: is build B as fast as build A? Two dist-trainer binaries trained the same way,
# interleaved in one run (A B, then B A, ...), so the noise of a shared machine falls on both alike.
#
#   scripts/bench_ab.sh BIN_A BIN_B              # Model 2, one learning rate, 3 epochs, 5 rounds
#   ROUNDS=7 EPOCHS=4 scripts/bench_ab.sh old/dist-trainer .build/release/dist-trainer
#   FLAGS_B="--checkpoint-every 50" scripts/bench_ab.sh "$BIN" "$BIN"   # one binary, a flag's cost
#
# Per configuration (one process with 1 thread, one process with a thread per core, mpirun -np 2;
# FLAGS adds train flags) it prints the
# median and range over the rounds of each binary's epoch time (the median of epochs 2..N, training
# steps only, from metrics.jsonl), the ratio B / A of the medians, and the median and range of the
# ratios within a round (A and B back to back: the figure to trust on a noisy machine), then the
# step of each by phase (`train --profile`, rank 0's milliseconds per step, medians over the
# rounds) and its peak memory: where the time moved. A report, not a test.
# Environment: ROUNDS, EPOCHS, FLAGS (train flags of both), FLAGS_A and FLAGS_B (of A or B only),
# DATA_DIR (default: the usual search of the binary), ONLY (one configuration's name).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 2; }
for bin in "$1" "$2"; do [ -x "$bin" ] || { echo "bench_ab.sh: $bin: not an executable" >&2; exit 2; }; done
# shellcheck source=mpi-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/mpi-env.sh"
BINS=("$1" "$2")
ROUNDS="${ROUNDS:-5}" EPOCHS="${EPOCHS:-3}"
read -r -a extra <<<"${FLAGS:-}"
read -r -a extra_a <<<"${FLAGS_A:-}"
read -r -a extra_b <<<"${FLAGS_B:-}"
data=()
[ -n "${DATA_DIR:-}" ] && data=(--data-dir "$DATA_DIR")
OUT="$(mktemp -d /tmp/dist-trainer-ab.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
CORES="$(nproc)"
CONFIGS=("np=1 threads=1" "np=1 threads=$CORES" "np=2")
if [ -n "${ONLY:-}" ]; then
    case "$ONLY" in
        "np=1 threads=1" | "np=1 threads=$CORES" | "np=2") CONFIGS=("$ONLY") ;;
        *) echo "bench_ab.sh: ONLY=$ONLY: expected 'np=1 threads=1', 'np=1 threads=$CORES' or 'np=2'" >&2; exit 2 ;;
    esac
fi

# epoch_seconds RUN_DIR: the median training time of epochs 2..N.
epoch_seconds() {
    python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(statistics.median(r["train_seconds"] for r in rows[1:]))
PY
}

# run_one CONFIG BIN DIR WHICH: one training run of BIN (A: WHICH 0, B: 1) in configuration CONFIG into DIR.
run_one() {
    local threads=1
    [ "$1" = "np=1 threads=$CORES" ] && threads="$CORES"
    local args=(train "${data[@]}" --run-dir "$3" --epochs "$EPOCHS" --lr 0.005 --threads "$threads" --profile "${extra[@]}")
    if [ "$4" -eq 0 ]; then args+=("${extra_a[@]}"); else args+=("${extra_b[@]}"); fi
    case "$1" in
        "np=1 threads=1" | "np=1 threads=$CORES") "$2" "${args[@]}" >"$3.log" 2>&1 ;;
        "np=2") mpirun -np 2 "$2" "${args[@]}" >"$3.log" 2>&1 ;;
    esac || { echo "bench_ab.sh: $2 failed ($1), log: $3.log" >&2; tail -3 "$3.log" >&2; exit 1; }
}

for round in $(seq 1 "$ROUNDS"); do
    order=(0 1)
    [ $((round % 2)) -eq 0 ] && order=(1 0)
    for c in "${!CONFIGS[@]}"; do
        for i in "${order[@]}"; do
            dir="$OUT/r$round-c$c-b$i"
            run_one "${CONFIGS[$c]}" "${BINS[$i]}" "$dir" "$i"
            echo "$c $i $(epoch_seconds "$dir")" >>"$OUT/times"
            echo "$c $i $(python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); p = s.get("step_profile") or {}
if p: p["peak RSS MB (max over ranks)"] = s["peak_rss_mb"]["max_over_ranks"]
print(json.dumps(p))' "$dir/summary.json")" >>"$OUT/profiles"
        done
    done
    echo "bench_ab.sh: round $round/$ROUNDS done" >&2
done

python3 - "$OUT/times" "${CONFIGS[@]}" <<'PY'
import statistics, sys
times, configs = {}, sys.argv[2:]
for line in open(sys.argv[1]):
    c, b, t = line.split()
    times.setdefault((int(c), int(b)), []).append(float(t))
for c, name in enumerate(configs):
    a, b = times[(c, 0)], times[(c, 1)]
    ma, mb = statistics.median(a), statistics.median(b)
    # A and B of one round ran back to back: their ratio cancels most of a shared machine's drift.
    paired = [y / x for x, y in zip(a, b)]
    print(f"{name:16s} A {ma:.3f} s/epoch ({min(a):.3f}-{max(a):.3f})  B {mb:.3f} s/epoch ({min(b):.3f}-{max(b):.3f})  "
          f"B/A of medians {mb / ma:.3f}, paired B/A median {statistics.median(paired):.3f} ({min(paired):.3f}-{max(paired):.3f}), {len(a)} rounds")
PY

python3 - "$OUT/profiles" "${CONFIGS[@]}" <<'PY'
import json, statistics, sys
runs, configs = {}, sys.argv[2:]
for line in open(sys.argv[1]):
    c, b, profile = line.split(" ", 2)
    if json.loads(profile): runs.setdefault((int(c), int(b)), []).append(json.loads(profile))
if not runs: sys.exit()  # a binary without --profile's summary
print("\nthe step by phase (rank 0, ms per step, medians over the rounds; train --profile)")
for c, name in enumerate(configs):
    a, b = runs.get((c, 0), []), runs.get((c, 1), [])
    if not (a and b): continue
    print(f"{name:<24} {'A':>8} {'B':>8} {'B - A':>8}")
    for phase in sorted(a[0], key=lambda k: (k.startswith("peak"), k == "total", k)):
        ma, mb = statistics.median(p[phase] for p in a), statistics.median(p[phase] for p in b)
        print(f"  {phase:<22} {ma:8.3f} {mb:8.3f} {mb - ma:+8.3f}")
PY
