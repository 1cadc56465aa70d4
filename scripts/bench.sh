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
    # shellcheck disable=SC2086
    mpirun --oversubscribe -np "$ranks" "$BIN" train --model 2 --epochs "$EPOCHS" --lr 0.001 --threads "$threads" \
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
echo "runs and logs: $OUT"
