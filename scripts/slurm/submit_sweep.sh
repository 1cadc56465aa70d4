#!/usr/bin/env bash
# submit_sweep.sh: run a scripted sweep on Slurm — one array task per grid point (learning rate ×
# model × batch size, the order of `scripts/sweep.sh --list`), each an srun/PMIx MPI job, then a
# combine job (`dist-trainer summarize`) that starts only if every array task succeeded.
#
#   scripts/slurm/submit_sweep.sh --lr 0.005,0.001 --model 1,2 -- --epochs 10
#   scripts/slurm/submit_sweep.sh --sweep-dir /shared/runs/sweep1 --ntasks 8 --sbatch-arg --time=2:00:00
#
# Options (lists are comma-separated):
#   --sweep-dir DIR     where the runs go (default runs/sweep-<timestamp>; made absolute)
#   --lr LIST           learning rates (default: sweep.sh's, the seed's four)
#   --model LIST        model presets (default: sweep.sh's, 2)
#   --batch-size LIST   global batch sizes (default: sweep.sh's, 128)
#   --ntasks N          MPI ranks (Slurm tasks) per grid point (default 2)
#   --sbatch-arg ARG    one more option for both sbatch calls (repeatable), e.g. --partition=gpu
#   -- FLAGS...         passed to every `dist-trainer train` (word-split in the tasks: no spaces in values)
#
# Environment: DIST_TRAINER_BIN (default <repo>/.build/release/dist-trainer; must be visible on the
# compute nodes at that path, as must the repository, the sweep directory and the data).
#
# Prints the array job id, the combine job id and where the results and logs will be. The grid is
# handed to every task through the environment (SWEEP_DIR, SWEEP_LR, SWEEP_MODEL, SWEEP_BATCH,
# SWEEP_EXTRA, DIST_TRAINER_ROOT, DIST_TRAINER_BIN), so each task computes the same grid.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

SDIR="" LRS="" MODELS="" BATCHES="" NTASKS=2
SBATCH_ARGS=() EXTRA=()
die() { echo "submit_sweep.sh: $*" >&2; exit 2; }
# value OPTION "$@": OPTION's value (the next word), or one line naming OPTION when it has none.
# (--sbatch-arg's value is an sbatch option, so it may start with a dash.)
value() {
    [ $# -ge 3 ] || die "$1 needs a value (see --help)"
    [ "$1" = --sbatch-arg ] || [[ "$3" != --* ]] || die "$1 needs a value (found option '$3') (see --help)"
    printf '%s' "$3"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --sweep-dir) SDIR="$(value "$1" "$@")"; shift 2 ;;
        --lr) LRS="$(value "$1" "$@")"; shift 2 ;;
        --model) MODELS="$(value "$1" "$@")"; shift 2 ;;
        --batch-size) BATCHES="$(value "$1" "$@")"; shift 2 ;;
        --ntasks) NTASKS="$(value "$1" "$@")"; shift 2 ;;
        --sbatch-arg) SBATCH_ARGS+=("$(value "$1" "$@")"); shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ "$NTASKS" =~ ^[1-9][0-9]*$ ]] || die "--ntasks expects a positive integer, found '$NTASKS'"
for a in "${EXTRA[@]}"; do
    [[ "$a" != *[[:space:]]* ]] || die "train flag '$a' contains whitespace; not supported by the array tasks"
done
command -v sbatch >/dev/null 2>&1 || { echo "submit_sweep.sh: sbatch not found (is this a Slurm submit host?)" >&2; exit 1; }

[ -n "$SDIR" ] || SDIR="runs/sweep-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$SDIR/slurm-logs"
SDIR="$(cd "$SDIR" && pwd)"   # absolute: tasks may start in another directory
[[ "$SDIR" != *[[:space:]]* ]] || die "sweep directory '$SDIR' contains whitespace; not supported by the array tasks (their train arguments are one line, split into words)"
BIN="${DIST_TRAINER_BIN:-$ROOT/.build/release/dist-trainer}"
[ -x "$BIN" ] || { echo "submit_sweep.sh: $BIN: not an executable; build it (swift build -c release) or set DIST_TRAINER_BIN" >&2; exit 1; }

# Exactly the grid options the tasks will pass to sweep.sh (empty = sweep.sh's default).
grid=(--sweep-dir "$SDIR")
[ -z "$LRS" ] || grid+=(--lr "$LRS")
[ -z "$MODELS" ] || grid+=(--model "$MODELS")
[ -z "$BATCHES" ] || grid+=(--batch-size "$BATCHES")
N=$("$ROOT/scripts/sweep.sh" --list "${grid[@]}" -- "${EXTRA[@]}" | wc -l)
[ "$N" -gt 0 ] || { echo "submit_sweep.sh: the grid is empty" >&2; exit 2; }

# The values travel as the sbatch process's environment and are named in --export without a value:
# `--export=ALL,VAR=value` would be wrong twice (a comma in the value starts a new variable, and
# with ALL a VAR already in the caller's environment wins over the given value).
export SWEEP_DIR="$SDIR" SWEEP_LR="$LRS" SWEEP_MODEL="$MODELS" SWEEP_BATCH="$BATCHES" SWEEP_EXTRA="${EXTRA[*]:-}"
export DIST_TRAINER_ROOT="$ROOT" DIST_TRAINER_BIN="$BIN"
EXPORT="--export=ALL,SWEEP_DIR,SWEEP_LR,SWEEP_MODEL,SWEEP_BATCH,SWEEP_EXTRA,DIST_TRAINER_ROOT,DIST_TRAINER_BIN"

array_id=$(sbatch --parsable "$EXPORT" --array="0-$((N - 1))" --ntasks="$NTASKS" --cpus-per-task=1 \
    --job-name=dist-trainer-sweep --output="$SDIR/slurm-logs/sweep-%A_%a.out" \
    "${SBATCH_ARGS[@]}" "$HERE/sweep.sbatch")
array_id="${array_id%%;*}"   # --parsable prints "id" or "id;cluster"
combine_id=$(sbatch --parsable "$EXPORT" --dependency="afterok:$array_id" --ntasks=1 --cpus-per-task=1 \
    --job-name=dist-trainer-combine --output="$SDIR/slurm-logs/combine-%j.out" \
    "${SBATCH_ARGS[@]}" "$HERE/combine.sbatch")
combine_id="${combine_id%%;*}"

echo "array job: $array_id ($N grid point(s), $NTASKS rank(s) each)"
echo "combine job: $combine_id (runs after every array task succeeded)"
echo "results: $SDIR (one run directory per grid point; comparison.md, comparison.csv, summary.json)"
echo "logs: $SDIR/slurm-logs/sweep-${array_id}_<task>.out, $SDIR/slurm-logs/combine-${combine_id}.out"
"$ROOT/scripts/sweep.sh" --list "${grid[@]}" -- "${EXTRA[@]}" | sed 's/^/  /'
