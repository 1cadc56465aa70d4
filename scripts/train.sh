#!/usr/bin/env bash
# train.sh: the main job — install what is missing, build, and train the seed's recipe on every
# core of this machine (or of $HOSTFILE) with mpirun. Extra flags go to `dist-trainer train`.
#
#   scripts/train.sh                          # Model 2, lr sweep 0.005,0.001,0.0005,0.0001, 10 epochs
#   scripts/train.sh --lr 0.005 --epochs 20   # any flag of `dist-trainer train --help`
#   NP=4 HOSTFILE=hostfiles/cluster scripts/train.sh
#
# Environment: NP (ranks; default: all local cores, or all slots of $HOSTFILE), HOSTFILE (an Open
# MPI hostfile), MPIRUN_ARGS (more mpirun options). mpirun runs with the liveness settings of
# scripts/mpi-env.sh: a lost host ends the job within seconds instead of hanging it.
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
# shellcheck disable=SC2086
exec mpirun -np "$NP" "${mpi_args[@]}" ${MPIRUN_ARGS:-} "$DIST_TRAINER_BIN" train "$@"
