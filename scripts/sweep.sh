#!/usr/bin/env bash
# sweep.sh: a scripted sweep — one mpirun job per grid point (learning rate × model × batch size),
# each into its own run directory under one sweep directory, then `dist-trainer summarize`.
#
#   scripts/sweep.sh --lr 0.005,0.001 --model 1,2 --batch-size 128 -- --epochs 10
#   scripts/sweep.sh --sweep-dir runs/sweep1 --np 2 --parallel 2 --hostfile hostfiles/cluster ...
#   scripts/sweep.sh --list ...      # print the grid: index, run name, train arguments
#   scripts/sweep.sh --args I ...    # print point I's train arguments (used by Slurm array tasks)
#
# Options (lists are comma-separated):
#   --sweep-dir DIR     where the runs go (default runs/sweep-<timestamp>)
#   --lr LIST           learning rates (default: the seed's 0.005,0.001,0.0005,0.0001)
#   --model LIST        seed model presets (default 2)
#   --batch-size LIST   global batch sizes (default 128)
#   --np N              ranks per job (default: with --hostfile, the slots of the smallest host group;
#                       else all local cores, or with --parallel K: cores / K)
#   --parallel K        run K jobs at once; with --hostfile each job gets its own disjoint group of
#                       hosts (the hostfile's lines dealt round-robin into K groups), without one
#                       they share this machine (default 1: one job after another)
#   --hostfile FILE     an Open MPI hostfile
#   -- FLAGS...         passed to every `dist-trainer train` (e.g. --epochs 20 --seed 3)
# Every grid point trains with the same seed, so its numbers equal the matching learning rate of an
# in-process sweep (`dist-trainer train --lr A,B,...`) with the same settings.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

SWEEP_DIR="" LRS="0.005,0.001,0.0005,0.0001" MODELS="2" BATCHES="128" NP="" PARALLEL=1 HOSTFILE="" MODE=run POINT=""
EXTRA=()
die() { echo "sweep.sh: $*" >&2; exit 2; }
# value OPTION "$@": OPTION's value (the next word), or one line naming OPTION when it has none.
value() {
    [ $# -ge 3 ] || die "$1 needs a value (see --help)"
    [[ "$3" != --* ]] || die "$1 needs a value (found option '$3') (see --help)"
    printf '%s' "$3"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --sweep-dir) SWEEP_DIR="$(value "$1" "$@")"; shift 2 ;;
        --lr) LRS="$(value "$1" "$@")"; shift 2 ;;
        --model) MODELS="$(value "$1" "$@")"; shift 2 ;;
        --batch-size) BATCHES="$(value "$1" "$@")"; shift 2 ;;
        --np) NP="$(value "$1" "$@")"; shift 2 ;;
        --parallel) PARALLEL="$(value "$1" "$@")"; shift 2 ;;
        --hostfile) HOSTFILE="$(value "$1" "$@")"; shift 2 ;;
        --list) MODE=list; shift ;;
        --args) MODE=args; POINT="$(value "$1" "$@")"; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$SWEEP_DIR" ] || SWEEP_DIR="runs/sweep-$(date +%Y%m%d-%H%M%S)"
for flag in "${EXTRA[@]}"; do
    case "$flag" in
        --lr|--lr=*|--model|--model=*|--batch-size|--batch-size=*|--run-dir|--run-dir=*|--resume|--resume=*)
            die "'$flag' after -- would override the grid; give the grid with sweep.sh's own --lr/--model/--batch-size" ;;
    esac
done
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "--parallel expects a positive integer, found '$PARALLEL'"
[ -z "$NP" ] || [[ "$NP" =~ ^[1-9][0-9]*$ ]] || die "--np expects a positive integer, found '$NP'"

# The grid, in a fixed order (model, then batch size, then learning rate): index i is the same
# for --list, --args and the Slurm array task id.
# args: each point's train arguments as one line (for --list and --args; word-split by the Slurm
# tasks); the local jobs below pass the same values as separate words (a sweep directory may hold spaces).
names=() args=() models=() batches=() lrs=()
IFS=',' read -r -a model_list <<<"$MODELS"
IFS=',' read -r -a batch_list <<<"$BATCHES"
IFS=',' read -r -a lr_list <<<"$LRS"
for m in "${model_list[@]}"; do
    for b in "${batch_list[@]}"; do
        for lr in "${lr_list[@]}"; do
            name="model${m}-batch${b}-lr${lr}"
            names+=("$name") models+=("$m") batches+=("$b") lrs+=("$lr")
            args+=("--model $m --batch-size $b --lr $lr --run-dir $SWEEP_DIR/$name")
        done
    done
done

case "$MODE" in
    list)
        for i in "${!names[@]}"; do printf '%d %s %s %s\n' "$i" "${names[$i]}" "${args[$i]}" "${EXTRA[*]:-}"; done
        exit 0 ;;
    args)
        if ! [[ "$POINT" =~ ^[0-9]+$ ]] || [ "$POINT" -ge "${#names[@]}" ]; then
            die "--args $POINT: the grid has points 0..$(( ${#names[@]} - 1 ))"
        fi
        echo "${args[$POINT]} ${EXTRA[*]:-}"
        exit 0 ;;
esac

source "$HERE/setup.sh"
mkdir -p "$SWEEP_DIR"

# Host groups for concurrent jobs: hostfile lines dealt round-robin into PARALLEL files.
groups=()
if [ -n "$HOSTFILE" ]; then
    [ -f "$HOSTFILE" ] || { echo "sweep.sh: --hostfile $HOSTFILE: no such file" >&2; exit 2; }
    mapfile -t hosts < <(grep -v -E '^[[:space:]]*(#|$)' "$HOSTFILE")
    [ "${#hosts[@]}" -ge "$PARALLEL" ] || { echo "sweep.sh: --parallel $PARALLEL needs at least $PARALLEL hosts in $HOSTFILE, found ${#hosts[@]}" >&2; exit 2; }
    for g in $(seq 0 $((PARALLEL - 1))); do
        f="$SWEEP_DIR/.hosts-$g"; : >"$f"
        for h in $(seq "$g" "$PARALLEL" $((${#hosts[@]} - 1))); do echo "${hosts[$h]}" >>"$f"; done
        groups+=("$f")
    done
fi
# Ranks per job: all slots of a job's host group, or this machine's cores shared among the jobs.
if [ -z "$NP" ] && [ -n "$HOSTFILE" ]; then
    NP="$(hostfile_slots "${groups[0]}")"
    for f in "${groups[@]}"; do [ "$(hostfile_slots "$f")" -lt "$NP" ] && NP="$(hostfile_slots "$f")"; done
fi
NP="${NP:-$(( $(nproc) / PARALLEL > 0 ? $(nproc) / PARALLEL : 1 ))}"

run_point() {  # index, group
    local i="$1" g="$2" mpi=(-np "$NP") session status=0
    if [ -n "$HOSTFILE" ]; then mpi+=(--hostfile "${groups[$g]}"); else mpi+=(--oversubscribe); fi
    # Open MPI 4.1's mpirun creates its session directory ($TMPDIR/ompi.HOST.UID) when none is
    # there, and two mpiruns starting together can race for it: one fails at start-up with "A call
    # to mkdir was unable to create the desired directory ... File exists" (1 in ~10 two-job sweeps
    # here). Each job's mpirun gets a TMPDIR of its own (short: the session holds sockets). Only this
    # machine's: remote daemons start with their own environment (and have a host group each).
    session="$(mktemp -d "${TMPDIR:-/tmp}/dts.XXXXXX")"
    # MPIRUN_ARGS holds mpirun options as one string, split into words on purpose.
    # shellcheck disable=SC2086
    TMPDIR="$session" \
        mpirun "${mpi[@]}" ${MPIRUN_ARGS:-} "$DIST_TRAINER_BIN" train --model "${models[$i]}" --batch-size "${batches[$i]}" \
        --lr "${lrs[$i]}" --run-dir "$SWEEP_DIR/${names[$i]}" "${EXTRA[@]}" \
        >"$SWEEP_DIR/${names[$i]}.log" 2>&1 || status=$?
    rm -rf "$session"
    return "$status"
}

echo "sweep: ${#names[@]} point(s) into $SWEEP_DIR, $PARALLEL at a time, $NP rank(s) each"
failed=0
pids=() slots=()
for i in "${!names[@]}"; do
    # Wait for a free slot (group) when PARALLEL jobs are running.
    while [ "${#pids[@]}" -ge "$PARALLEL" ]; do
        for k in "${!pids[@]}"; do
            if ! kill -0 "${pids[$k]}" 2>/dev/null; then
                wait "${pids[$k]}" || failed=$((failed + 1))
                unset 'pids[k]' 'slots[k]'
            fi
        done
        pids=("${pids[@]}"); slots=("${slots[@]}")
        [ "${#pids[@]}" -ge "$PARALLEL" ] && sleep 0.2
    done
    used=" ${slots[*]:-} "; g=0
    while [[ "$used" == *" $g "* ]]; do g=$((g + 1)); done
    echo "  [$i] ${names[$i]}"
    run_point "$i" "$g" &
    pids+=("$!"); slots+=("$g")
done
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] || echo "sweep: $failed job(s) failed; see the .log files in $SWEEP_DIR" >&2

"$DIST_TRAINER_BIN" summarize "$SWEEP_DIR"
[ "$failed" -eq 0 ]
