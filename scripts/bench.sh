#!/usr/bin/env bash
# bench.sh: speed and memory figures of dist-trainer on this machine against its own roofline and
# against PyTorch on the same CPU, all measured in one run, interleaved, medians reported.
#
# Every round runs each configuration once: dist-trainer trains Model 2 on the real data ($EPOCHS
# epochs, one learning rate; the epoch time is the median of epochs 2..N, training steps only),
# then `dist-trainer roofline` times the same configuration's matrix products alone (as many
# processes at once as the configuration has ranks); then PyTorch (scripts/bench_torch.py: one
# process with 2 threads, and DDP over gloo with 2 processes) when torch is importable. After
# $ROUNDS rounds it prints, per configuration, the medians: seconds per epoch, samples/s, the share
# of step time in collectives, peak RSS, the roofline and the epoch as a multiple of it (twice: every
# product in the precision's own format, and the products as training computes them, see
# `dist-trainer roofline --help`), and the speed-up over PyTorch. This is a report, not a test: the
# machine is shared and noisy, so compare ratios within one run. Every training run is profiled
# (`train --profile`), and after the table comes each configuration's step accounted for by phase
# (rank 0's milliseconds per step, medians): the products by kind, the passes between them, Adam,
# the collectives; and the floor of Adam's phase: its bytes streamed alone from the last-level cache
# and from memory (`dist-trainer roofline --memory`).
#
#   scripts/bench.sh                     # default configurations, 3 rounds
#   ROUNDS=5 EPOCHS=4 scripts/bench.sh
#   CONFIGS="np=2" scripts/bench.sh      # only the configurations whose names are listed
set -euo pipefail
# No arguments: the settings come from the environment (above).
case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (it takes none; settings are environment variables, see --help)" >&2; exit 2 ;;
esac
for setting in ROUNDS EPOCHS; do
    [[ "${!setting:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: $setting=${!setting}: expected a positive integer" >&2; exit 2; }
done
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

HERE_BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EPOCHS="${EPOCHS:-3}"
ROUNDS="${ROUNDS:-3}"
CORES="$(nproc)"
OUT="$(mktemp -d /tmp/dist-trainer-bench.XXXXXX)"
BIN="$DIST_TRAINER_BIN"

# name | ranks | threads per rank | extra train flags
ALL_CONFIGS=(
    "np=1 threads=$CORES|1|$CORES|"
    "np=1 threads=1|1|1|"
    "np=2|2|1|"
    "np=2 bn=local|2|1|--bn local"
    # Augmentation happens while the batch is gathered; this measures what it costs.
    "np=2 augment|2|1|--augment --augment-shift 2 --augment-flip"
)
if grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
    ALL_CONFIGS+=("np=2 bf16|2|1|--precision bf16" "np=1 threads=$CORES bf16|1|$CORES|--precision bf16")
fi
CONFIG_LIST=()
for c in "${ALL_CONFIGS[@]}"; do
    name="${c%%|*}"
    if [ -z "${CONFIGS:-}" ] || [[ ",${CONFIGS}," == *",$name,"* ]]; then CONFIG_LIST+=("$c"); fi
done
[ ${#CONFIG_LIST[@]} -gt 0 ] || { echo "bench.sh: CONFIGS=$CONFIGS names no configuration (names: $(printf '%s\n' "${ALL_CONFIGS[@]}" | cut -d'|' -f1 | paste -sd, -))" >&2; exit 2; }

launch() {  # ranks -> the launcher words (a single process runs directly, as a user would)
    if [ "$1" -eq 1 ]; then echo ""; else echo "mpirun --oversubscribe -np $1"; fi
}

torch_ok=0
python3 -c 'import torch' 2>/dev/null && torch_ok=1
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $CORES cores; $("$BIN" roofline --samples 128 | sed -E 's/.*\((oneDNN[^)]*\)).*/\1/')"
echo "rounds: $ROUNDS, epochs per run: $EPOCHS (median of epochs 2..$EPOCHS); runs and logs: $OUT"

for round in $(seq 1 "$ROUNDS"); do
    for config in "${CONFIG_LIST[@]}"; do
        IFS='|' read -r name ranks threads flags <<<"$config"
        key="$(echo "$name" | tr ' =' '__')"
        dir="$OUT/$key-$round"
        # shellcheck disable=SC2046,SC2086
        $(launch "$ranks") "$BIN" train --model 2 --epochs "$EPOCHS" --lr 0.001 --threads "$threads" --run-dir "$dir" --profile $flags \
            >"$dir.log" 2>&1 || { echo "$name: failed, see $dir.log" >&2; continue; }
        # The roofline of the same shard and threads, with all ranks' processes running at once.
        precision=fp32; [[ "$flags" == *bf16* ]] && precision=bf16
        # Twice: every product in the precision's own format (the bound of float32 products), and
        # the products as training computes them (exact weight gradients from bf16 copies where the
        # CPU has bf16 arithmetic): what is left above the second is this trainer's own overhead.
        for kind in roofline as-trained; do
            as_trained=(); [ "$kind" = as-trained ] && as_trained=(--as-trained)
            # shellcheck disable=SC2046
            $(launch "$ranks") "$BIN" roofline --ranks "$ranks" --threads "$threads" --precision "$precision" "${as_trained[@]}" \
                | sed -E 's/.* ([0-9.]+) s\/epoch.*/\1/' | sort -n | tail -1 >"$dir.$kind"
        done
        # The optimizer's bytes of a step streamed from the last-level cache and from memory (the
        # floor of the step's memory-bound part), every rank's process at once.
        # shellcheck disable=SC2046
        $(launch "$ranks") "$BIN" roofline --memory --ranks "$ranks" --threads "$threads" --precision "$precision" >"$dir.memory"
    done
    if [ "$torch_ok" = 1 ]; then
        python3 "$HERE_BENCH/bench_torch.py" --threads "$CORES" --epochs "$EPOCHS" >"$OUT/torch-threads-$round.txt" 2>&1 || true
        python3 "$HERE_BENCH/bench_torch.py" --ddp 2 --epochs "$EPOCHS" >"$OUT/torch-ddp-$round.txt" 2>&1 || true
    fi
done

python3 - "$OUT" "$ROUNDS" "${CONFIG_LIST[@]}" <<'PY'
import csv, glob, json, os, re, statistics, sys
out, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def torch_median(kind):
    values = []
    for f in glob.glob(f"{out}/torch-{kind}-*.txt"):
        m = re.search(r"torch \S+ ([0-9.]+) s/epoch", open(f).read())
        if m: values.append(float(m.group(1)))
    return statistics.median(values) if values else None
torch_threads, torch_ddp = torch_median("threads"), torch_median("ddp")
print(f"{'configuration':<24} {'s/epoch':>8} {'samples/s':>10} {'comm':>6} {'RSS MB':>7} {'roofline':>9} {'x roofline':>10} {'as trained':>10} {'x as trained':>12} {'vs torch':>9}")
for config in configs:
    name, ranks = config.split("|")[0], int(config.split("|")[1])
    key = name.replace(" ", "_").replace("=", "_")
    secs, comms, rss, bounds, own = [], [], [], [], []
    for r in range(1, rounds + 1):
        d = f"{out}/{key}-{r}"
        if not os.path.exists(d + "/summary.json"): continue
        rows = list(csv.DictReader(open(d + "/metrics.csv")))[1:] or list(csv.DictReader(open(d + "/metrics.csv")))
        secs.append(statistics.median(float(x["train_seconds"]) for x in rows))
        comms.append(statistics.median(float(x["communication_seconds"]) / float(x["train_seconds"]) for x in rows))
        rss.append(json.load(open(d + "/summary.json"))["peak_rss_mb"]["max_over_ranks"])
        for kind, values in (("roofline", bounds), ("as-trained", own)):
            try: values.append(float(open(f"{d}.{kind}").read()))
            except (OSError, ValueError): pass
    if not secs:
        print(f"{name:<24} failed"); continue
    s = statistics.median(secs)
    b, o = (statistics.median(v) if v else float("nan") for v in (bounds, own))
    baseline = torch_ddp if ranks > 1 else torch_threads
    versus = f"{baseline / s:8.2f}x" if baseline else "       -"
    print(f"{name:<24} {s:8.3f} {48000 // 128 * 128 / s:10.0f} {100 * statistics.median(comms):5.1f}% {max(rss):7.0f} {b:9.3f} {s / b:10.2f} {o:10.3f} {s / o:12.2f} {versus}")
if torch_threads: print(f"{'torch, 1 process':<24} {torch_threads:8.3f}   (scripts/bench_torch.py --threads N: the 'vs torch' baseline of single-process rows)")
if torch_ddp: print(f"{'torch DDP gloo, 2 procs':<24} {torch_ddp:8.3f}   (scripts/bench_torch.py --ddp 2: the baseline of multi-rank rows)")
if not (torch_threads or torch_ddp): print("torch not importable: no PyTorch baseline (pip install torch)")
print()
print("the step by phase (rank 0, milliseconds per step, medians over the rounds; train --profile)")
names = [c.split("|")[0] for c in configs]
profiles = {}
for name in names:
    key = name.replace(" ", "_").replace("=", "_")
    runs = [json.load(open(f"{out}/{key}-{r}/summary.json")).get("step_profile") for r in range(1, rounds + 1)
            if os.path.exists(f"{out}/{key}-{r}/summary.json")]
    runs = [p for p in runs if p]
    if runs: profiles[name] = {k: statistics.median(p[k] for p in runs) for k in runs[0]}
phases = [k for k in next(iter(profiles.values()), {}) if k != "total"]
def memory_floors(name):
    """Medians over the rounds of the slowest rank's optimizer floor (ms/step) from each level."""
    key, levels = name.replace(" ", "_").replace("=", "_"), {"optimizer floor: LLC": [], "optimizer floor: memory": []}
    for r in range(1, rounds + 1):
        try: text = open(f"{out}/{key}-{r}.memory").read()
        except OSError: continue
        for label, pattern in zip(levels, (r"last-level cache ([0-9.]+) ms/step", r"from memory ([0-9.]+) ms/step")):
            found = [float(x) for x in re.findall(pattern, text)]
            if found: levels[label].append(max(found))
    return {label: statistics.median(v) for label, v in levels.items() if v}
if profiles:
    floors = {n: memory_floors(n) for n in profiles}
    print(f"{'phase':<24}" + "".join(f"{n[:14]:>15}" for n in profiles))
    for phase in phases + ["total"] + ["optimizer floor: LLC", "optimizer floor: memory"]:
        print(f"{phase:<24}" + "".join(f"{({**profiles[n], **floors[n]}).get(phase, float('nan')):15.3f}" for n in profiles))
    print("(optimizer floor: the optimizer's bytes of a step streamed alone, from the last-level cache and from memory:")
    print(" dist-trainer roofline --memory, every rank's process at once)")
PY
