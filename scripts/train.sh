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
#   HOSTFILE=hostfiles/cluster MAX_RESTARTS=3 scripts/train.sh --checkpoint-every 50   # elastic
#
# Environment: NP (ranks; default: all local cores, or all slots of $HOSTFILE), HOSTFILE (an Open
# MPI hostfile), MPIRUN_ARGS (more mpirun options). mpirun runs with the liveness settings of
# scripts/mpi-env.sh: a lost host ends the job within seconds instead of hanging it.
# MAX_RESTARTS=N (default 0: none) restarts a job that lost a host or rank on the hosts that still
# answer, resuming from its newest checkpoint, at most N times, while at least MIN_HOSTS (default
# 1) answer; PROBE_TIMEOUT (default 5 s) bounds each host's probe (scripts/elastic.sh). At the end the
# run's plots (scripts/plot_metrics.py: loss, accuracy, macro-F1 per epoch, confusion matrices) are
# written into RUN_DIR/plots when matplotlib is installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

MAX_RESTARTS="${MAX_RESTARTS:-0}" MIN_HOSTS="${MIN_HOSTS:-1}" NP_GIVEN="${NP:-}"
[[ "$MAX_RESTARTS" =~ ^[0-9]+$ ]] || { echo "train.sh: MAX_RESTARTS=$MAX_RESTARTS: expected a number of restarts ≥ 0" >&2; exit 64; }
[[ "$MIN_HOSTS" =~ ^[1-9][0-9]*$ ]] || { echo "train.sh: MIN_HOSTS=$MIN_HOSTS: expected a number of hosts ≥ 1" >&2; exit 64; }
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

status=0
if [ "$MAX_RESTARTS" -gt 0 ] && [ -n "$run_dir" ]; then
    # Elastic: restarts resume the run (--resume auto in its directory, or the user's own --resume).
    # shellcheck source=elastic.sh
    source "$ROOT/scripts/elastic.sh"
    if [ -z "${HOSTFILE:-}" ]; then
        HOSTFILE="$(mktemp)"
        echo "localhost slots=$NP" >"$HOSTFILE"
    fi
    restart_args=() resuming=0
    for a in "$@"; do case "$a" in --resume | --resume=*) resuming=1 ;; esac; done
    if [ "$resuming" -eq 1 ]; then
        restart_args=("$@")
    else
        for a in "$@"; do [ "$a" = --overwrite ] || restart_args+=("$a"); done
        restart_args=("${extra[@]}" "${restart_args[@]}" --resume auto)
    fi
    elastic_run "$run_dir" "${restart_args[@]}" -- "${extra[@]}" "$@" || status=$?
else
    # MPIRUN_ARGS holds mpirun options as one string, split into words on purpose.
    # shellcheck disable=SC2086
    mpirun -np "$NP" "${mpi_args[@]}" ${MPIRUN_ARGS:-} "$DIST_TRAINER_BIN" train "${extra[@]}" "$@" || status=$?
fi
[ "$status" -eq 0 ] || exit "$status"

[ -n "$run_dir" ] && [ -f "$run_dir/metrics.jsonl" ] || exit 0
if python3 -c 'import matplotlib' 2>/dev/null; then
    python3 "$ROOT/scripts/plot_metrics.py" "$run_dir" | sed 's/^/train.sh: /'
else
    echo "train.sh: plots skipped (no matplotlib): pip install matplotlib, then python3 $ROOT/scripts/plot_metrics.py $run_dir"
fi
