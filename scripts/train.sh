#!/usr/bin/env bash
# train.sh: the main job — install what is missing, build, and train the seed's recipe on every
# core of this machine (or of $HOSTFILE) with mpirun, then plot the run as the notebook does.
# Extra flags go to `dist-trainer train`; relative paths in them (--run-dir, --data-dir, --config,
# --resume) and in HOSTFILE mean what they mean in the directory train.sh is started from.
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

# The run directory, as the binary sees it (`train --print-run-dir`, the same flags): "given DIR"
# when --run-dir or --resume names it, "new DIR" (a fresh runs/<timestamp>) when neither does; this
# run is then told that DIR. Anything else (help, a bad flag: the probe's status is non-zero or its
# output is not that one line) goes to mpirun unchanged, so the binary reports it, and no plots.
run_dir="" extra=()
probe="$("$DIST_TRAINER_BIN" train --print-run-dir "$@" 2>/dev/null)" || probe=""
case "$probe" in
    *$'\n'*) ;;
    "given "?*) run_dir="${probe#given }" ;;
    "new "?*) run_dir="${probe#new }"; extra=(--run-dir "$run_dir") ;;
esac

# MPIRUN_ARGS holds mpirun options as one string, split into words on purpose.
# shellcheck disable=SC2086
mpirun -np "$NP" "${mpi_args[@]}" ${MPIRUN_ARGS:-} "$DIST_TRAINER_BIN" train "${extra[@]}" "$@"

[ -n "$run_dir" ] && [ -f "$run_dir/metrics.jsonl" ] || exit 0
if python3 -c 'import matplotlib' 2>/dev/null; then
    python3 "$ROOT/scripts/plot_metrics.py" "$run_dir" | sed 's/^/train.sh: /'
else
    echo "train.sh: plots skipped (no matplotlib): pip install matplotlib, then python3 $ROOT/scripts/plot_metrics.py $run_dir"
fi
