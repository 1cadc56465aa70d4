#!/usr/bin/env bash
# bench_hosts.sh: what crossing hosts costs — Model 2's epoch time and communication share on one
# node against 2 and 3 emulated hosts (scripts/cluster/netns.sh: one rank per host, TCP over veth
# pairs on a bridge), unshaped and with the links shaped by tbf to 10 Gbit/s and 1 Gbit/s, all
# interleaved in one run over $ROUNDS rounds, medians reported. It also measures what the scaling
# model needs (scripts/scaling_model.py): the network's latency and bandwidth on every link setting
# (`dist-trainer check --network`), the per-rank compute of every shard size (epoch time outside
# collectives on one node), and every run's collectives per step; everything goes into
# $OUT/bench_hosts.json.
#
#   scripts/bench_hosts.sh                          # 3 rounds of 3 epochs
#   ROUNDS=5 EPOCHS=4 scripts/bench_hosts.sh
#   FLAGS="--grad-compression bf16" scripts/bench_hosts.sh    # extra train flags for every run
#
# Needs root (network namespaces). A report, not a test: compare ratios within one run.
set -euo pipefail
# No arguments: the settings come from the environment (above).
case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "bench_hosts.sh: unknown argument '$1' (it takes none; settings are environment variables, see --help)" >&2; exit 2 ;;
esac
for setting in ROUNDS EPOCHS; do
    [[ "${!setting:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "bench_hosts.sh: $setting=${!setting}: expected a positive integer" >&2; exit 2; }
done
HERE_BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE_BENCH/setup.sh"

ROUNDS="${ROUNDS:-3}"
EPOCHS="${EPOCHS:-3}"
FLAGS="${FLAGS:-}"
OUT="$(mktemp -d /tmp/dist-trainer-bench-hosts.XXXXXX)"
BIN="$DIST_TRAINER_BIN"
NETNS="$HERE_BENCH/cluster/netns.sh"
PREFIX="dtb$$"

[ "$(id -u)" -eq 0 ] || { echo "bench_hosts.sh: needs root (network namespaces)" >&2; exit 1; }
cleanup() { "$NETNS" down --prefix "$PREFIX" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$NETNS" up 3 --prefix "$PREFIX" >"$OUT/cluster.log" 2>&1 || { cat "$OUT/cluster.log" >&2; exit 1; }
# shellcheck source=/dev/null
source "$("$NETNS" env --prefix "$PREFIX")"
head -n 2 "$DTCLUSTER_HOSTFILE" >"$OUT/hosts2"
cp "$DTCLUSTER_HOSTFILE" "$OUT/hosts3"
AGENT=(--mca plm_rsh_agent "$DTCLUSTER_RSH_AGENT" "${DTCLUSTER_MPIRUN_COMMON_ARGS[@]}")

# name | ranks | where (node or hosts) | shaping (none, 10gbit, 1gbit) | extra train flags
CONFIGS=(
    "node np=2|2|node|none|" "node np=3|3|node|none|"
    "2 hosts|2|hosts|none|" "3 hosts|3|hosts|none|"
    "2 hosts 10gbit|2|hosts|10gbit|" "3 hosts 10gbit|3|hosts|10gbit|"
    "2 hosts 1gbit|2|hosts|1gbit|" "3 hosts 1gbit|3|hosts|1gbit|"
    "2 hosts bf16 grads|2|hosts|none|--grad-compression bf16" "2 hosts 1gbit bf16 grads|2|hosts|1gbit|--grad-compression bf16"
    "2 hosts 1gbit accumulate 4|2|hosts|1gbit|--accumulate 4"
)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; rounds $ROUNDS, epochs $EPOCHS; flags: ${FLAGS:-none}"
echo "runs and logs: $OUT"

launch() {  # ranks where -> the launcher words (one node as a user runs it: oversubscribed only beyond its cores)
    if [ "$2" = hosts ]; then echo "mpirun ${AGENT[*]} --hostfile $OUT/hosts$1 -np $1"
    elif [ "$1" -gt "$(nproc)" ]; then echo "mpirun --oversubscribe -np $1"
    else echo "mpirun -np $1"; fi
}
shape() { if [ "$1" = none ]; then "$NETNS" unshape --prefix "$PREFIX" >/dev/null 2>&1 || true; else "$NETNS" shape "$1" --prefix "$PREFIX" >/dev/null 2>&1; fi; }

# The network on every link setting (2 and 3 hosts), once.
for rate in none 10gbit 1gbit; do
    shape "$rate"
    for n in 2 3; do
        # shellcheck disable=SC2046
        $(launch "$n" hosts) "$BIN" check --network --json 2>/dev/null | tail -n 1 >"$OUT/network-$n-$rate.json" || true
    done
done
shape none
# shellcheck disable=SC2046
$(launch 2 node) "$BIN" check --network --json 2>/dev/null | tail -n 1 >"$OUT/network-node.json" || true

for round in $(seq 1 "$ROUNDS"); do
    # One process, the compute of a whole batch (the shard of np=1), for the model.
    # shellcheck disable=SC2086
    "$BIN" train --model 2 --epochs "$EPOCHS" --lr 0.001 --threads 1 --run-dir "$OUT/node_np_1-$round" $FLAGS >"$OUT/node_np_1-$round.log" 2>&1 || true
    for config in "${CONFIGS[@]}"; do
        IFS='|' read -r name ranks where rate extra <<<"$config"
        key="$(echo "$name" | tr ' =' '__')"
        shape "$rate"
        # shellcheck disable=SC2046,SC2086
        $(launch "$ranks" "$where") "$BIN" train --model 2 --epochs "$EPOCHS" --lr 0.001 --threads 1 --run-dir "$OUT/$key-$round" $FLAGS $extra \
            >"$OUT/$key-$round.log" 2>&1 || echo "$name: failed, see $OUT/$key-$round.log" >&2
    done
    shape none
done

python3 - "$OUT" "$ROUNDS" "${CONFIGS[@]}" <<'PY'
import csv, json, os, statistics, sys
out, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def run(key):
    """Median epoch seconds, comm share and compute seconds per epoch over the rounds."""
    secs, comm, compute, steps, collectives = [], [], [], None, None
    for r in range(1, rounds + 1):
        d = f"{out}/{key}-{r}"
        if not os.path.exists(d + "/summary.json"): continue
        rows = list(csv.DictReader(open(d + "/metrics.csv")))
        rows = rows[1:] or rows
        secs.append(statistics.median(float(x["train_seconds"]) for x in rows))
        comm.append(statistics.median(float(x["communication_seconds"]) for x in rows))
        compute.append(statistics.median(float(x["compute_seconds_max"]) for x in rows))
        config, summary = json.load(open(d + "/config.json")), json.load(open(d + "/summary.json"))
        steps = config["train_samples"] // config["batch_size"]
        collectives = summary.get("collectives")
    if not secs: return None
    return {"epoch_seconds": statistics.median(secs), "communication_seconds": statistics.median(comm),
            "compute_seconds": statistics.median(compute), "steps": steps, "collectives": collectives}
result = {"runs": {}, "network": {}}
for f in os.listdir(out):
    if f.startswith("network-") and f.endswith(".json"):
        try: result["network"][f[len("network-"):-5]] = json.load(open(os.path.join(out, f)))
        except ValueError: pass
result["runs"]["node np=1"] = run("node_np_1")
print(f"{'configuration':<18} {'s/epoch':>8} {'comm':>6} {'x node':>7}")
base = {}
for config in configs:
    name, ranks, where, rate, _ = config.split("|")
    r = run(name.replace(" ", "_").replace("=", "_"))
    result["runs"][name] = r
    if r is None:
        print(f"{name:<18} failed"); continue
    if where == "node": base[ranks] = r["epoch_seconds"]
    ratio = r["epoch_seconds"] / base[ranks] if ranks in base else float("nan")
    print(f"{name:<18} {r['epoch_seconds']:8.3f} {100 * r['communication_seconds'] / r['epoch_seconds']:5.1f}% {ratio:7.2f}")
for key, n in sorted(result["network"].items()):
    links = n.get("links", [])
    if links:
        print(f"network {key:<12} latency {min(l['latency'] for l in links) * 1e6:6.1f} us, bandwidth {min(l['bandwidth'] for l in links) / 1e9:5.2f} GB/s, "
              f"small allreduce {n['small_allreduce'] * 1e6:6.1f} us")
json.dump(result, open(f"{out}/bench_hosts.json", "w"), indent=1)
print(f"wrote {out}/bench_hosts.json (input of scripts/scaling_model.py)")
PY
