#!/usr/bin/env bash
# train.sh: the main job — install what is missing, build, and train the seed's recipe on every
# core of this machine (or of $HOSTFILE) with mpirun, then plot the run as the notebook does.
# Extra flags go to `dist-trainer train`.
#
#   scripts/train.sh                          # Model 2, lr sweep 0.005,0.001,0.0005,0.0001, 10 epochs
#   scripts/train.sh --lr 0.005 --epochs 20   # any flag of `dist-trainer train --help`
#   scripts/train.sh --config recipes/best.json
#   NP=4 HOSTFILE=hostfiles/cluster scripts/train.sh
#
# Environment: NP (ranks; default: all local cores, or all slots of $HOSTFILE), HOSTFILE (an Open
# MPI hostfile), MPIRUN_ARGS (more mpirun options). mpirun runs with the liveness settings of
# scripts/mpi-env.sh: a lost host ends the job within seconds instead of hanging it. At the end the
# run's plots (scripts/plot_metrics.py: loss, accuracy, macro-F1 per epoch, confusion matrices) are
# written into RUN_DIR/plots when matplotlib is installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

mpi_args=()
if [ -n "${HOSTFILE:-}" ]; then
    [ -f "$HOSTFILE" ] || { echo "train.sh: HOSTFILE=$HOSTFILE: no such file" >&2; exit 1; }
    mpi_args+=(--hostfile "$HOSTFILE")
    NP="${NP:-$(hostfile_slots "$HOSTFILE")}"
else
    NP="${NP:-$(nproc)}"
fi
# More ranks than cores is allowed (slower) but must be asked for explicitly in Open MPI.
if [ -z "${HOSTFILE:-}" ] && [ "$NP" -gt "$(nproc)" ]; then mpi_args+=(--oversubscribe); fi

# The run directory: the one given with --run-dir or --resume, else a new runs/<timestamp>.
run_dir="" next=""
for a in "$@"; do
    case "$next" in run) run_dir="$a" ;; resume) [ "$a" = auto ] || run_dir="$a" ;; esac
    next=""
    case "$a" in
        --run-dir) next=run ;; --run-dir=*) run_dir="${a#--run-dir=}" ;;
        --resume) next=resume ;; --resume=*) [ "${a#--resume=}" = auto ] || run_dir="${a#--resume=}" ;;
    esac
done
extra=()
if [ -z "$run_dir" ] && [[ " $* " != *" --help "* ]]; then
    run_dir="runs/$(date +%Y%m%d-%H%M%S)"
    extra=(--run-dir "$run_dir")
fi

# shellcheck disable=SC2086
mpirun -np "$NP" "${mpi_args[@]}" ${MPIRUN_ARGS:-} "$DIST_TRAINER_BIN" train "${extra[@]}" "$@"

[ -n "$run_dir" ] && [ -f "$run_dir/metrics.jsonl" ] || exit 0
if python3 -c 'import matplotlib' 2>/dev/null; then
    python3 "$ROOT/scripts/plot_metrics.py" "$run_dir" | sed 's/^/train.sh: /'
else
    echo "train.sh: plots skipped (no matplotlib): pip install matplotlib, then python3 scripts/plot_metrics.py $run_dir"
fi
