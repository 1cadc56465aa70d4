# mpi-env.sh: the Open MPI launcher settings every script of this project runs mpirun with, and a
# helper for hostfiles. Sourced by setup.sh (so train.sh, sweep.sh, bench.sh and test.sh get it).
#
# Liveness: when a host's link goes down, Open MPI 4.1's mpirun notices only through TCP keepalive
# on its daemons' out-of-band connections, whose defaults (300 s idle, then 9 probes 20 s apart)
# keep a broken job — and the allocation — alive for minutes; the cut-off host's daemon lingers
# the same way. Probing after 1 s idle, every 1 s, 3 times, ends the job about 5 s after the loss
# (measured on the emulated cluster of scripts/cluster/); a link that is back within ~4 s is not
# noticed at all. odls_base_sigkill_timeout gives a rank that mpirun stops with SIGTERM 3 s (the
# default is 1) to print where it was stuck before SIGKILL follows. Any value set in the
# environment beforehand wins. For bare mpirun, pass the same as --mca options or put them in
# $HOME/.openmpi/mca-params.conf (see the README's multi-node section).
# shellcheck shell=bash

: "${OMPI_MCA_oob_tcp_keepalive_time:=1}"
: "${OMPI_MCA_oob_tcp_keepalive_intvl:=1}"
: "${OMPI_MCA_oob_tcp_keepalive_probes:=3}"
: "${OMPI_MCA_odls_base_sigkill_timeout:=3}"
export OMPI_MCA_oob_tcp_keepalive_time OMPI_MCA_oob_tcp_keepalive_intvl OMPI_MCA_oob_tcp_keepalive_probes \
    OMPI_MCA_odls_base_sigkill_timeout

# mpirun as root (containers, CI, test clusters) must be allowed explicitly.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# hostfile_slots FILE: the number of slots an Open MPI hostfile offers (a host without slots=N
# counts 1; comments and blank lines are skipped).
hostfile_slots() {
    awk '!/^[[:space:]]*#/ && NF { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, s, "="); n = s[2] } total += n }
         END { print total + 0 }' "$1"
}
