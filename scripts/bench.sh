#!/usr/bin/env bash
# bench.sh: speed and memory figures of dist-trainer on this machine, all measured in one run.
#
# For each configuration it trains Model 2 on the real data for $EPOCHS epochs (one learning rate)
# and prints the median seconds per epoch (training steps only), samples/s, the share of step
# time spent in collectives (including waiting for the slowest rank), peak RSS per rank, and the
# epoch time as a multiple of the sgemm roofline measured just before (`dist-trainer roofline`).
# This is a report, not a test: the machine is shared and noisy, so compare ratios within one run.
#
#   scripts/bench.sh                 # default configurations
#   EPOCHS=5 scripts/bench.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

HERE_BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EPOCHS="${EPOCHS:-3}"
CORES="$(nproc)"
OUT="$(mktemp -d /tmp/dist-trainer-bench.XXXXXX)"
BIN="$DIST_TRAINER_BIN"

roofline() { "$BIN" roofline --ranks "$1" --threads "$2" | sed -E 's/.* ([0-9.]+) s\/epoch.*/\1/'; }

# name | ranks | threads per rank | extra flags
CONFIGS=(
    "np=1 threads=$CORES|1|$CORES|"
    "np=1 threads=1|1|1|"
    "np=2 bn=sync|2|1|--bn sync"
    "np=2 bn=local|2|1|--bn local"
)

printf '%-20s %10s %10s %10s %9s %10s %10s\n' configuration "s/epoch" "samples/s" "comm" "RSS MB" "roofline" "x roofline"
for config in "${CONFIGS[@]}"; do
    IFS='|' read -r name ranks threads flags <<<"$config"
    bound=$(roofline "$ranks" "$threads")
    dir="$OUT/$(echo "$name" | tr ' =' '__')"
    # One process runs directly, as a user would (under mpirun -np 1 it would be bound to one core).
    launch=(mpirun --oversubscribe -np "$ranks")
    [ "$ranks" -eq 1 ] && launch=()
    # shellcheck disable=SC2086
    "${launch[@]}" "$BIN" train --model 2 --epochs "$EPOCHS" --lr 0.001 --threads "$threads" \
        --run-dir "$dir" $flags >"$dir.log" 2>&1 || { echo "$name: failed, see $dir.log" >&2; continue; }
    python3 - "$dir" "$name" "$bound" <<'PY'
import csv, json, statistics, sys
d, name, bound = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = list(csv.DictReader(open(d + "/metrics.csv")))
cfg = json.load(open(d + "/config.json"))
summary = json.load(open(d + "/summary.json"))
secs = statistics.median(float(r["train_seconds"]) for r in rows)
comm = statistics.median(float(r["communication_seconds"]) / float(r["train_seconds"]) for r in rows)
samples = cfg["train_samples"] // cfg["batch_size"] * cfg["batch_size"]
rss = summary["peak_rss_mb"]["max_over_ranks"]
print(f"{name:<20} {secs:10.3f} {samples / secs:10.0f} {100 * comm:9.1f}% {rss:9.0f} {bound:10.3f} {secs / bound:10.2f}")
PY
done
# Same-machine baseline: the seed's NumPy math (float64, NumPy's BLAS threads), and each
# configuration's speed-up over it. The seed's own figures (NumPy 3.9 s, PyTorch 1.64 s, PyTorch DDP
# 3.76 s per epoch) were measured on another machine; dividing by the NumPy ratio scales them here.
if python3 -c 'import numpy' 2>/dev/null; then
    numpy_s=$(python3 "$HERE_BENCH/bench_numpy.py" | awk '{print $3}')
    printf '%-20s %10.3f   (the seed notebook'"'"'s math in NumPy; machine factor vs the seed'"'"'s 3.9 s: %.2f)\n' \
        "numpy seed" "$numpy_s" "$(echo "$numpy_s / 3.9" | bc -l)"
    for config in "${CONFIGS[@]}"; do
        IFS='|' read -r name _ <<<"$config"
        f="$OUT/$(echo "$name" | tr ' =' '__')/metrics.csv"
        [ -f "$f" ] || continue
        python3 - "$f" "$numpy_s" "$name" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
secs = statistics.median(float(r["train_seconds"]) for r in rows)
numpy_s = float(sys.argv[2]); factor = numpy_s / 3.9
name = sys.argv[3]
print(f"  {name:<18} {numpy_s / secs:5.2f}x the NumPy seed; vs PyTorch (1.64 s x {factor:.2f} = {1.64 * factor:.2f} s): "
      f"{1.64 * factor / secs:4.2f}x; vs PyTorch DDP gloo (3.76 s x {factor:.2f} = {3.76 * factor:.2f} s): {3.76 * factor / secs:4.2f}x")
PY
    done
fi
echo "runs and logs: $OUT"
