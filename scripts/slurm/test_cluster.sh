#!/usr/bin/env bash
# test_cluster.sh: an end-to-end test of the Slurm scripts on a throwaway one-node Slurm cluster
# started on this machine: a private munged, slurmctld and slurmd (their config, state, sockets,
# logs and pid files all in one temporary directory, on their own ports), then one train.sbatch job
# and a 2-point learning-rate sweep submitted with submit_sweep.sh (an array job of 2-rank srun/PMIx
# MPI jobs, and the combine job after it) on a small synthetic data set, and checks of the results:
# every job COMPLETED with exit 0, clean job logs, comparison.csv and summary.json, and "ranks": 2
# in every run's config.json (srun + PMIx made one 2-rank MPI job, not two singletons).
#
#   scripts/slurm/test_cluster.sh            # exit 0 = passed, 1 = failed (logs printed), 77 = skipped
#   scripts/slurm/test_cluster.sh --nodes 2  # a 2-node cluster on emulated hosts instead (below)
#   scripts/slurm/test_cluster.sh --requeue  # preemption: requeued jobs resume and end exactly (below)
#   scripts/slurm/test_cluster.sh --elastic  # a node lost mid-run: the step restarts on the other (below)
#
# With --requeue it runs three train.sbatch jobs of the same recipe: one uninterrupted; one that
# `scontrol requeue` preempts mid-epoch (SIGTERM: the ranks save and stop, Slurm requeues the job,
# which resumes by itself with --resume auto); one signalled with SIGUSR1 as Slurm's
# --signal=USR1@SECONDS warning does (the ranks save and exit 75, the batch script requeues the job).
# Rank 0 pauses at a known step (DIST_TRAINER_FAULT=pause) so the signal always lands mid-epoch.
# Both preempted jobs must have run twice and end with the uninterrupted job's metrics, bitwise.
#
# With --elastic (2 emulated nodes) train.sbatch runs with MAX_RESTARTS=1 and --checkpoint-every 5,
# one task per node; the task on the second node pauses mid-epoch and that node dies (its slurmd and
# every process in it killed, its link down). The step fails, the batch script finds the node gone,
# starts the step again on the first node alone (srun --exclude) from the newest checkpoint, and the
# job must complete with the uninterrupted single-process run's metrics, test results and tensors.
#
# With --nodes N (N ≥ 2) the cluster is N emulated hosts of scripts/cluster/netns.sh (network
# namespaces with their own addresses and host names): slurmctld runs in the root namespace on the
# bridge's address, one slurmd per host (started with nsenter, since `ip netns exec` remounts /sys
# and hides the cgroup file system slurmd wants, and with its own UTS namespace for the host name),
# each with its own spool and TmpFS (PMIx's per-step directories must not collide). It then runs
# `srun --mpi=pmix -N N -n N dist-trainer check` and train.sbatch with one task per node, and checks
# both report N ranks on N hosts.
#
# Needs root (slurmd runs jobs as root here) and Debian's slurm-wlm and munge, which it installs with
# apt-get when missing; skips (77) when it cannot. The daemons are stopped by PID when the script
# exits, whatever the outcome. It never touches a system Slurm or munge: SLURM_CONF points at the
# private slurm.conf and AuthInfo at the private munge socket.
#
# Environment: DIST_TRAINER_BIN (default <repo>/.build/release/dist-trainer),
# SLURM_TEST_KEEP=1 keeps the temporary directory, SLURM_TEST_TIMEOUT (seconds to wait for the
# jobs, default 180).
# shellcheck disable=SC2317  # (cleanup, stop_pid and show_logs run from traps)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
START=$SECONDS

say() { printf '[slurm-test %3ds] %s\n' "$((SECONDS - START))" "$*"; }
skip() { printf '[slurm-test] SKIP: %s\n' "$*"; exit 77; }

TMP="" MUNGED_PID="" SLURMCTLD_PID="" SLURMD_PIDS=() FAILED=0 NODES=1 CLUSTER="" REQUEUE=0 ELASTIC=0
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) [ $# -ge 2 ] || { echo "test_cluster.sh: --nodes needs a value (a number of nodes)" >&2; exit 2; }
                 NODES="$2"; shift 2 ;;
        --requeue) REQUEUE=1; shift ;;
        --elastic) ELASTIC=1 NODES=2; shift ;;
        *) echo "test_cluster.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "test_cluster.sh: --nodes expects 1 to 9, found '$NODES'" >&2; exit 2; }

show_logs() {  # the jobs' logs first, then the daemons'
    [ -n "$TMP" ] || return 0
    local f d
    for f in "$TMP"/train-*.out "$TMP"/check.out "$TMP"/submit.out "$TMP"/sweep/slurm-logs/*.out "$TMP"/log/slurmd*.log "$TMP"/log/{slurmctld,munged}.log; do
        [ -s "$f" ] || continue
        printf '\n----- %s (last 30 lines) -----\n' "${f#"$TMP"/}"
        tail -n 30 "$f"
    done
    # A daemon that died before opening its log file said why on stderr.
    for d in slurmd slurmctld; do
        if [ ! -s "$TMP/log/$d.log" ] && [ -s "$TMP/log/$d.stderr.log" ]; then
            printf '\n----- log/%s.stderr.log -----\n' "$d"
            tail -n 30 "$TMP/log/$d.stderr.log"
        fi
    done
    printf '%s\n' "-----"
}

fail() {
    printf '[slurm-test] FAIL: %s\n' "$*" >&2
    FAILED=1
    show_logs >&2
    exit 1
}

stop_pid() {  # pid name: SIGTERM, wait up to 10 s, then SIGKILL
    local pid="$1" name="$2" i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name ($pid) did not stop; SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [ -n "$SLURMCTLD_PID" ] && kill -0 "$SLURMCTLD_PID" 2>/dev/null; then
        # Jobs first, so that no slurmstepd (or rank) outlives slurmd.
        if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
            say "cancelling the remaining jobs"
            scancel --user="$(id -un)" 2>/dev/null
            for _ in $(seq 1 50); do
                [ -z "$(squeue -h -t PD,R,CG,CF -o %i 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    [ -n "${SLURMD_PIDS[*]}$SLURMCTLD_PID$MUNGED_PID" ] && say "stopping slurmd, slurmctld, munged"
    for pid in "${SLURMD_PIDS[@]}"; do stop_pid "$pid" slurmd; done
    stop_pid "$SLURMCTLD_PID" slurmctld
    stop_pid "$MUNGED_PID" munged
    [ -n "$CLUSTER" ] && "$ROOT/scripts/cluster/netns.sh" down --prefix "$CLUSTER" >/dev/null 2>&1
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "${SLURM_TEST_KEEP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
    fi
    [ "$status" -eq 0 ] && [ "$FAILED" -eq 0 ] && say "PASS"
    exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 1' INT TERM HUP

# --- (a) prerequisites ---------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "needs root (a private slurmd runs the jobs as root)"
BIN="${DIST_TRAINER_BIN:-$ROOT/.build/release/dist-trainer}"
[ -x "$BIN" ] || fail "$BIN: not an executable; build it (scripts/setup.sh, or swift build -c release) or set DIST_TRAINER_BIN"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
command -v python3 >/dev/null 2>&1 || skip "python3 not found (writes the synthetic data set)"

need_install() {
    local t
    for t in munged slurmctld slurmd sbatch srun squeue scontrol sinfo scancel; do
        command -v "$t" >/dev/null 2>&1 || return 0
    done
    return 1
}
if need_install; then
    command -v apt-get >/dev/null 2>&1 || skip "Slurm and munge are not installed and apt-get is not available"
    say "installing slurm-wlm munge with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
        >/tmp/slurm-test-apt.log 2>&1; then
        tail -n 20 /tmp/slurm-test-apt.log
        skip "could not install slurm-wlm and munge with apt-get (log above)"
    fi
    need_install && skip "slurm-wlm/munge installed, but some of munged slurmctld slurmd sbatch srun squeue are missing"
fi

# Everything private lives here (mktemp's 0700 directory also satisfies munged's permission checks).
TMP="$(mktemp -d /tmp/dist-trainer-slurm.XXXXXX)" || fail "mktemp failed"
mkdir -p "$TMP"/{munge,log,run,state,spool,tmpfs,data,sweep}
# munged wants its socket's directory searchable by all (the key itself stays 0600).
chmod 711 "$TMP" && chmod 755 "$TMP/munge"
FIRST_JOB_ID=$(( (RANDOM * 32768 + RANDOM) % 60000000 + 1000 ))

# Two free TCP ports for slurmctld and slurmd (a system Slurm may own 6817/6818).
read -r CTLD_PORT SLURMD_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
for x in s: x.close()')
[ -n "$SLURMD_PORT" ] || fail "could not find free ports"

# --- (b) munge -------------------------------------------------------------------------------------
say "starting munged (socket $TMP/munge/munge.socket)"
dd if=/dev/urandom of="$TMP/munge/munge.key" bs=1024 count=1 status=none && chmod 600 "$TMP/munge/munge.key"
munged -F --force --socket="$TMP/munge/munge.socket" --key-file="$TMP/munge/munge.key" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/log/munged.log" --seed-file="$TMP/munge/munged.seed" \
    >>"$TMP/log/munged.log" 2>&1 &
MUNGED_PID=$!
for _ in $(seq 1 50); do [ -S "$TMP/munge/munge.socket" ] && break; kill -0 "$MUNGED_PID" 2>/dev/null || break; sleep 0.1; done
[ -S "$TMP/munge/munge.socket" ] || fail "munged did not create its socket"
munge -n --socket="$TMP/munge/munge.socket" | unmunge --socket="$TMP/munge/munge.socket" >/dev/null \
    || fail "munge credential round trip failed"

# --- (c) slurm.conf --------------------------------------------------------------------------------
NODE="$(hostname -s)"
# The node's topology exactly as slurmd will report it (a node declared with more CPUs, sockets or
# cores than slurmd finds is drained); RealMemory left out (default 1 MB: no memory requests here).
TOPOLOGY="$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')"
[[ "$TOPOLOGY" == *CPUs=* ]] || TOPOLOGY="CPUs=$(nproc)"
CPUS="$(echo "$TOPOLOGY" | sed -E 's/.*CPUs=([0-9]+).*/\1/')"
OVERRIDES=""
if [ "$CPUS" -lt 2 ]; then  # 2-rank tasks need 2 CPUs: declare them and let slurmd accept that
    TOPOLOGY="CPUs=2" CPUS=2 OVERRIDES="SlurmdParameters=config_overrides"
fi
# One node (this machine on loopback), or NODES emulated hosts with slurmctld on the bridge.
CTLD_ADDR=127.0.0.1 NODE_NAMES=() NODE_LINES="NodeName=$NODE NodeAddr=127.0.0.1 $TOPOLOGY State=UNKNOWN" PER_NODE=""
if [ "$NODES" -gt 1 ]; then
    CLUSTER="dts$$"
    "$ROOT/scripts/cluster/netns.sh" up "$NODES" --prefix "$CLUSTER" >"$TMP/log/cluster.log" 2>&1 \
        || skip "cannot make emulated hosts: $(tail -n 3 "$TMP/log/cluster.log" | tr '\n' ' ')"
    # shellcheck source=/dev/null
    source "$("$ROOT/scripts/cluster/netns.sh" env --prefix "$CLUSTER")"
    CTLD_ADDR="$DTCLUSTER_BRIDGE_ADDR" NODE_LINES="" PER_NODE="%n"
    while read -r name addr _ _; do
        NODE_NAMES+=("$name")
        NODE_LINES+="NodeName=$name NodeAddr=$addr NodeHostname=$name $TOPOLOGY State=UNKNOWN"$'\n'
        mkdir -p "$TMP/spool/$name" "$TMP/tmpfs/$name"
    done <"$DTCLUSTER_STATE/hosts"
fi
SLURMD_TIMEOUT=300
[ "$ELASTIC" = 1 ] && SLURMD_TIMEOUT=10
export SLURM_CONF="$TMP/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# Throwaway one-node cluster for scripts/slurm/test_cluster.sh
ClusterName=dttest
SlurmctldHost=$NODE($CTLD_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$TMP/munge/munge.socket
StateSaveLocation=$TMP/state
# Job ids unique to this cluster: two test clusters on one machine (the suite runs tests in
# parallel) would both run job 1 step 0, and the PMIx namespace and Open MPI session directory
# named after it collide between them ("A system call failed during shared memory initialization").
FirstJobId=$FIRST_JOB_ID
# Job temporary space, and with it the PMIx plugin's per-step directories (spmix_appdir_*).
# (%n: per node, when several slurmds share this machine's file system)
TmpFS=$TMP/tmpfs/$PER_NODE
MailProg=/bin/true
SlurmdSpoolDir=$TMP/spool/$PER_NODE
SlurmctldPidFile=$TMP/run/slurmctld.pid
SlurmdPidFile=$TMP/run/slurmd$PER_NODE.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd$PER_NODE.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (containers, gVisor): track processes by /proc, no task binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Jobs must ask for PMIx explicitly (srun --mpi=pmix), as on a site whose default is none.
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
# Keep finished jobs visible to squeue/scontrol (states, exit codes) for the whole test.
MinJobAge=600
# A combine job whose array failed is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
InactiveLimit=0
KillWait=5
# A node that stops answering is declared down after this many seconds (the elastic test waits for
# that before the job can leave "completing"; the default is 300 s).
SlurmdTimeout=$SLURMD_TIMEOUT
$OVERRIDES
$NODE_LINES
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# --- (d) slurmctld, slurmd ---------------------------------------------------------------------------
say "starting slurmctld (port $CTLD_PORT) and $NODES slurmd ($CPUS CPUs each, port $SLURMD_PORT)"
slurmctld -D -i -f "$SLURM_CONF" >>"$TMP/log/slurmctld.stderr.log" 2>&1 &
SLURMCTLD_PID=$!
if [ "$NODES" -eq 1 ]; then
    slurmd -D -f "$SLURM_CONF" -N "$NODE" >>"$TMP/log/slurmd.stderr.log" 2>&1 &
    SLURMD_PIDS+=($!)
    NODE_NAMES=("$NODE")
else
    for name in "${NODE_NAMES[@]}"; do
        # shellcheck disable=SC2016  # expanded by the inner shell
        nsenter --net="/run/netns/$name" unshare --uts sh -c 'hostname "$1" && exec slurmd -D -f "$2" -N "$1"' sh "$name" "$SLURM_CONF" \
            >>"$TMP/log/slurmd-$name.stderr.log" 2>&1 &
        SLURMD_PIDS+=($!)
    done
fi
idle=0
for _ in $(seq 1 120); do
    kill -0 "$SLURMCTLD_PID" 2>/dev/null || fail "slurmctld exited"
    for pid in "${SLURMD_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a slurmd exited"; done
    state="$(sinfo -h -o %T 2>/dev/null | sort -u | tr '\n' ' ')"
    if [ "$state" = "idle " ] && [ "$(sinfo -h -N -o %N 2>/dev/null | sort -u | wc -l)" -eq "$NODES" ]; then idle=1; break; fi
    sleep 0.5
done
[ "$idle" = 1 ] || fail "nodes not idle after 60 s (sinfo: ${state:-no answer})"
say "nodes ${NODE_NAMES[*]} idle ($(sbatch --version), $(munged --version 2>&1 | head -n 1))"
srun --mpi=list 2>&1 | grep -q pmix || fail "srun --mpi=list shows no pmix plugin: $(srun --mpi=list 2>&1 | tr '\n' ' ')"

# --- (e) synthetic data -----------------------------------------------------------------------------
say "writing a synthetic IDX data set (8x8 images, 1500 train / 300 test, 10 classes)"
python3 - "$TMP/data" <<'PY' || fail "could not write the synthetic data set"
import gzip, random, struct, sys
out = sys.argv[1]
rng = random.Random(7)
side, classes = 8, 10
templates = [[rng.randrange(256) for _ in range(side * side)] for _ in range(classes)]
def split(n):
    labels = [rng.randrange(classes) for _ in range(n)]
    pixels = bytearray()
    for y in labels:
        pixels += bytes(max(0, min(255, t + rng.randint(-60, 60))) for t in templates[y])
    return labels, pixels
def write(name, magic, dims, payload):
    with gzip.open(f"{out}/{name}.gz", "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload))
for prefix, n in (("train", 1500), ("t10k", 300)):
    labels, pixels = split(n)
    write(f"{prefix}-images-idx3-ubyte", 0x803, [n, side, side], pixels)
    write(f"{prefix}-labels-idx1-ubyte", 0x801, [n], labels)
PY

# --- (f'') preemption and requeue ------------------------------------------------------------------
wait_jobs() {  # until no job of ours is pending, running or completing (or the timeout)
    local deadline=$((SECONDS + ${SLURM_TEST_TIMEOUT:-180})) id hurried=""
    while [ -n "$(squeue -h -t PD,R,CG,CF,S -o %i 2>/dev/null)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || fail "jobs not finished after ${SLURM_TEST_TIMEOUT:-180} s: $(squeue -h -o '%i %T %r' | tr '\n' ';')"
        # Slurm holds a requeued job back for a while (reason BeginTime); a test need not wait that
        # long, but the restart must come at least a second after the requeue: slurmd refuses a
        # credential issued in the second it revoked the job's ("Job credential revoked").
        for id in $(squeue -h -t PD -o '%i %r' 2>/dev/null | awk '$2 == "BeginTime" { print $1 }'); do
            case " $hurried " in *" $id:$(scontrol -o show job "$id" | grep -o -E 'Restarts=[0-9]+') "*) continue ;; esac
            scontrol update JobId="$id" StartTime=now+2 2>/dev/null || true
            hurried="$hurried $id:$(scontrol -o show job "$id" | grep -o -E 'Restarts=[0-9]+')"
        done
        sleep 0.5
    done
}
submit_train() {  # name [env assignments...] -> job id
    local name="$1"; shift
    (cd "$TMP" && env "$@" DIST_TRAINER_BIN="$BIN" RUN_DIR="$TMP/$name" sbatch --parsable --ntasks=2 --output="$TMP/train-$name-%j.out" \
        "$HERE/train.sbatch" --model 1 --hidden 16,8 --epochs 4 --batch-size 50 --lr 0.01 --threads 1 --data-dir "$TMP/data") \
        | cut -d';' -f1
}
if [ "$REQUEUE" = 1 ]; then
    say "uninterrupted reference job"
    submit_train ref >/dev/null || fail "sbatch failed"
    wait_jobs
    for how in requeue usr1; do
        ready="$TMP/$how.paused"
        # Rank 0 pauses before its 30th step (epoch 2 of 24-step epochs) until a signal arrives.
        JOB="$(submit_train "$how" DIST_TRAINER_FAULT=pause:0:30 DIST_TRAINER_FAULT_READY="$ready")" || fail "sbatch failed"
        for _ in $(seq 1 600); do [ -e "$ready" ] && break; sleep 0.1; done
        [ -e "$ready" ] || fail "job $JOB ($how) never reached its pause"
        if [ "$how" = requeue ]; then
            say "job $JOB paused mid-epoch: scontrol requeue"
            scontrol requeue "$JOB" || fail "scontrol requeue $JOB failed"
        else
            say "job $JOB paused mid-epoch: SIGUSR1 to its steps (Slurm's time-limit warning)"
            scancel --signal=USR1 "$JOB" || fail "scancel --signal=USR1 $JOB failed"
        fi
        wait_jobs
        scontrol -o show job "$JOB" | grep -q -E 'JobState=COMPLETED .*ExitCode=0:0' \
            || fail "job $JOB ($how) did not complete: $(scontrol -o show job "$JOB" | grep -o -E 'JobState=[^ ]+|ExitCode=[^ ]+|Restarts=[^ ]+' | tr '\n' ' ')"
        restarts="$(scontrol -o show job "$JOB" | grep -o -E 'Restarts=[0-9]+' | cut -d= -f2)"
        [ "${restarts:-0}" -ge 1 ] || fail "job $JOB ($how) was not requeued (Restarts=${restarts:-?})"
        python3 - "$TMP/ref" "$TMP/$how" <<'PY' || fail "job $JOB ($how): the resumed run's numbers differ from the uninterrupted run's"
import json, sys
def rows(d): return [json.loads(l) for l in open(d + "/metrics.jsonl")]
keys = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
same = len(a) == len(b) == 4 and all(x[k] == y[k] for x, y in zip(a, b) for k in keys)
ta, tb = (json.load(open(d + "/summary.json"))["test"] for d in sys.argv[1:3])
print(f"    {sys.argv[2]}: {len(b)} epochs, test accuracy {tb['accuracy']:.4f} (uninterrupted {ta['accuracy']:.4f}), identical: {same and ta == tb}")
sys.exit(0 if same and ta == tb else 1)
PY
        # --open-mode=append: the requeued run's log follows the first run's instead of replacing it.
        out="$TMP/train-$how-$JOB.out"
        if ! { grep -q "(restart 0)" "$out" && grep -q "(restart 1)" "$out" && grep -q "resuming from" "$out"; }; then
            fail "job $JOB ($how): $out does not hold both runs' logs (first run, then the resumed one)"
        fi
        say "job $JOB ($how): requeued $restarts time(s), resumed, COMPLETED, metrics bitwise the uninterrupted run's; one log for both runs"
    done
    exit 0
fi

# --- (f3) elastic: a node lost mid-run -----------------------------------------------------------------
if [ "$ELASTIC" = 1 ]; then
    recipe=(--model 1 --hidden "16,8" --epochs 3 --batch-size 50 --lr 0.01 --threads 1 --data-dir "$TMP/data")
    say "uninterrupted reference: one process"
    "$BIN" train "${recipe[@]}" --run-dir "$TMP/reference" >"$TMP/reference.out" 2>&1 || fail "the reference run failed: $(tail -n 3 "$TMP/reference.out")"
    ready="$TMP/elastic.paused"
    # Rank 1 (the second node) pauses before its 30th step (epoch 2 of 24-step epochs).
    JOB="$(cd "$TMP" && DIST_TRAINER_BIN="$BIN" MAX_RESTARTS=1 PROBE_TIMEOUT=10 DIST_TRAINER_FAULT=pause:1:30 DIST_TRAINER_FAULT_READY="$ready" \
        sbatch --parsable --nodes=2 --ntasks=2 --ntasks-per-node=1 --output="$TMP/train-elastic-%j.out" "$HERE/train.sbatch" \
        "${recipe[@]}" --run-dir "$TMP/elastic" --checkpoint-every 5 --collective-timeout 5 | cut -d';' -f1)" || fail "sbatch failed"
    for _ in $(seq 1 600); do [ -e "$ready" ] && break; sleep 0.1; done
    [ -e "$ready" ] || fail "job $JOB never reached its pause"
    dead="${NODE_NAMES[1]}"
    say "job $JOB paused mid-epoch: node $dead dies (slurmd and every process in it killed, link down)"
    kill -9 "${SLURMD_PIDS[1]}" 2>/dev/null
    ip netns pids "$dead" | xargs -r kill -9
    "$ROOT/scripts/cluster/netns.sh" link-down "$dead" >/dev/null 2>&1
    SLURM_TEST_TIMEOUT=${SLURM_TEST_TIMEOUT:-240} wait_jobs
    out="$TMP/train-elastic-$JOB.out"
    scontrol -o show job "$JOB" | grep -q -E 'JobState=COMPLETED .*ExitCode=0:0' \
        || fail "job $JOB did not complete: $(scontrol -o show job "$JOB" | grep -o -E 'JobState=[^ ]+|ExitCode=[^ ]+' | tr '\n' ' ')"
    grep -q "train.sbatch: restart 1 of 1: lost $dead" "$out" || fail "job $JOB: no restart line naming $dead in $out"
    grep -q "resuming from" "$out" || fail "job $JOB: the restarted step did not resume: $out"
    python3 - "$TMP/reference" "$TMP/elastic" <<'PY' || fail "job $JOB: the elastic run's bits differ from the uninterrupted run's"
import hashlib, json, struct, sys
T = {"train_seconds", "val_seconds", "communication_seconds", "slowest_rank", "compute_seconds_min", "compute_seconds_max"}
def rows(d): return [{k: v for k, v in json.loads(l).items() if k not in T} for l in open(d + "/metrics.jsonl")]
def results(d):
    s = json.load(open(d + "/summary.json"))
    return {k: s[k] for k in ("best", "validation", "test")}
def tensors(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); body = raw[8 + n:]
    return {k: hashlib.sha256(body[v["data_offsets"][0]:v["data_offsets"][1]]).hexdigest() for k, v in h.items() if k != "__metadata__"}
a, b = sys.argv[1:3]
same = rows(a) == rows(b) and results(a) == results(b) and all(tensors(f"{a}/{f}") == tensors(f"{b}/{f}") for f in ("best.safetensors", "last.safetensors"))
restarts = json.load(open(b + "/summary.json")).get("restarts", [])
print(f"    elastic run: {len(rows(b))} epochs, test accuracy {results(b)['test']['accuracy']:.4f} "
      f"(uninterrupted {results(a)['test']['accuracy']:.4f}), restarts {[(r['lost_hosts'], r['ranks']) for r in restarts]}, identical: {same}")
sys.exit(0 if same and len(restarts) == 1 else 1)
PY
    say "job $JOB: lost $dead mid-run, restarted on ${NODE_NAMES[0]} alone, COMPLETED, bitwise the uninterrupted run"
    exit 0
fi

# --- (f') across NODES hosts: check, then one training job with a task per node -----------------------
if [ "$NODES" -gt 1 ]; then
    say "srun --mpi=pmix -N $NODES -n $NODES dist-trainer check"
    (cd "$TMP" && timeout 120 srun --mpi=pmix -N "$NODES" -n "$NODES" "$BIN" check >"$TMP/check.out" 2>&1) \
        || fail "srun check failed: $(tail -n 5 "$TMP/check.out" | tr '\n' ' ')"
    if ! grep -q "$NODES rank(s) on $NODES host(s)" "$TMP/check.out" || ! grep -q '^all checks passed' "$TMP/check.out"; then
        fail "check did not run $NODES ranks on $NODES hosts: $(tr '\n' ' ' <"$TMP/check.out")"
    fi
    say "submitting train.sbatch: $NODES nodes, one task each"
    TRAIN_ID="$(cd "$TMP" && DIST_TRAINER_BIN="$BIN" sbatch --parsable --nodes="$NODES" --ntasks="$NODES" --ntasks-per-node=1 \
        --output="$TMP/train-%j.out" "$HERE/train.sbatch" --model 1 --hidden 16,8 --epochs 2 --batch-size 100 --lr 0.01 \
        --threads 1 --data-dir "$TMP/data" --run-dir "$TMP/train-run" 2>&1)" || fail "sbatch train.sbatch failed: $TRAIN_ID"
    TRAIN_ID="${TRAIN_ID%%;*}"
    deadline=$((SECONDS + ${SLURM_TEST_TIMEOUT:-180}))
    while [ -n "$(squeue -h -t PD,R,CG,CF,S -o %i 2>/dev/null)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || fail "train job not finished after ${SLURM_TEST_TIMEOUT:-180} s"
        sleep 1
    done
    scontrol -o show job "$TRAIN_ID" | grep -q -E 'JobState=COMPLETED .*ExitCode=0:0' \
        || fail "train job did not complete with exit 0: $(scontrol -o show job "$TRAIN_ID" | grep -o -E 'JobState=[^ ]+|ExitCode=[^ ]+' | tr '\n' ' ')"
    tlog="$TMP/train-$TRAIN_ID.out"
    grep -q -E "^dist-trainer: $NODES ranks on $NODES hosts" "$tlog" || fail "train.sbatch's job did not run on $NODES hosts: $tlog"
    grep -q -E '^test: loss' "$tlog" || fail "train.sbatch's job did not finish: $tlog"
    say "checked: check and train.sbatch ran $NODES ranks on $NODES hosts (${NODE_NAMES[*]}), job COMPLETED with exit 0"
    exit 0
fi

# --- (f) one training job, then the sweep -----------------------------------------------------------
say "submitting train.sbatch: 2 ranks, lr 0.01"
TRAIN_ID="$(cd "$TMP" && DIST_TRAINER_BIN="$BIN" sbatch --parsable --ntasks=2 --output="$TMP/train-%j.out" \
    "$HERE/train.sbatch" --model 1 --hidden 16,8 --epochs 2 --batch-size 100 --lr 0.01 --threads 1 \
    --data-dir "$TMP/data" --run-dir "$TMP/train-run" 2>&1)" || fail "sbatch train.sbatch failed: $TRAIN_ID"
TRAIN_ID="${TRAIN_ID%%;*}"

SWEEP="$TMP/sweep"
LRS="0.01,0.001"
say "submitting the sweep: lr $LRS, 2 ranks per array task"
DIST_TRAINER_BIN="$BIN" "$HERE/submit_sweep.sh" --sweep-dir "$SWEEP" --lr "$LRS" --model 1 --batch-size 100 --ntasks 2 \
    -- --hidden 16,8 --epochs 2 --threads 1 --data-dir "$TMP/data" >"$TMP/submit.out" 2>&1 \
    || fail "submit_sweep.sh failed: $(cat "$TMP/submit.out")"
sed 's/^/    /' "$TMP/submit.out"
ARRAY_ID="$(awk '/^array job:/ { print $3 }' "$TMP/submit.out")"
COMBINE_ID="$(awk '/^combine job:/ { print $3 }' "$TMP/submit.out")"
[[ "$ARRAY_ID" =~ ^[0-9]+$ && "$COMBINE_ID" =~ ^[0-9]+$ ]] || fail "could not read the job ids from submit_sweep.sh's output"

deadline=$((SECONDS + ${SLURM_TEST_TIMEOUT:-180}))
last=""
while :; do
    # Finished jobs stay listed (MinJobAge), so wait for all of ours to leave the active states.
    active="$(squeue -h -t PD,R,CG,CF,S -o '%i %T %r' 2>/dev/null)"
    [ -z "$active" ] && break
    now="$(echo "$active" | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')"
    [ "$now" != "$last" ] && say "jobs: $now"
    last="$now"
    [ "$SECONDS" -lt "$deadline" ] || fail "jobs not finished after ${SLURM_TEST_TIMEOUT:-180} s: $(squeue -h -t all -o '%i %T %r' | tr '\n' ';')"
    sleep 1
done
say "all jobs finished"

# --- (g) checks -------------------------------------------------------------------------------------
# Every job, array tasks included, must have completed with exit code 0.
scontrol -o show job >"$TMP/jobs.txt" 2>&1 || fail "scontrol show job failed: $(cat "$TMP/jobs.txt")"
bad="$(grep -v -E 'JobState=COMPLETED .*ExitCode=0:0' "$TMP/jobs.txt" | grep -o -E '^JobId=[0-9]+|JobName=[^ ]+|ArrayTaskId=[^ ]+|JobState=[^ ]+|Reason=[^ ]+|ExitCode=[^ ]+' | tr '\n' ' ')"
[ -z "$bad" ] || fail "not every job completed with exit code 0: $bad"
njobs="$(grep -c '^JobId=' "$TMP/jobs.txt")"
[ "$njobs" -eq 4 ] || fail "expected 4 jobs (train, 2 array tasks, combine), scontrol shows $njobs"

tlog="$TMP/train-$TRAIN_ID.out"
[ -s "$tlog" ] || fail "missing train.sbatch log $tlog"
grep -q -i -E 'error|fatal|abort|killed' "$tlog" && fail "train.sbatch's log has errors: $tlog: $(grep -i -m 3 -E 'error|fatal|abort|killed' "$tlog" | tr '\n' ' ')"
grep -q -E '^dist-trainer: 2 ranks' "$tlog" || fail "train.sbatch's job did not run 2 ranks: $tlog"

ntasks_logs=0
for i in 0 1; do
    log="$SWEEP/slurm-logs/sweep-${ARRAY_ID}_$i.out"
    [ -s "$log" ] || fail "missing array task log $log"
    grep -q -i -E 'error|fatal|abort|killed' "$log" && fail "array task $i's log has errors: $log"
    grep -q -E '^lr .*epoch +2/2' "$log" || fail "array task $i's log has no epoch 2/2 line: $log"
    ntasks_logs=$((ntasks_logs + 1))
done
clog="$SWEEP/slurm-logs/combine-$COMBINE_ID.out"
[ -s "$clog" ] || fail "missing combine log $clog"
grep -q -i -E 'error|fatal|abort|killed' "$clog" && fail "the combine job's log has errors: $clog"

python3 - "$SWEEP" "$LRS" "$TMP/train-run" <<'PY' || fail "the sweep's results are wrong (above)"
import csv, json, os, sys
sweep, lrs = sys.argv[1], sys.argv[2].split(",")
names = [f"model1-batch100-lr{lr}" for lr in lrs]
problems = []
with open(os.path.join(sweep, "comparison.csv")) as f:
    rows = list(csv.DictReader(f))
if sorted(r["run"] for r in rows) != sorted(names):
    problems.append(f"comparison.csv rows {[r['run'] for r in rows]}, expected {names}")
if any(r["complete"] != "true" for r in rows):
    problems.append("comparison.csv has incomplete runs")
summary = json.load(open(os.path.join(sweep, "summary.json")))
if summary.get("best_run") not in names:
    problems.append(f"summary.json best_run {summary.get('best_run')!r} is not one of {names}")
if summary.get("complete_runs") != len(names):
    problems.append(f"summary.json complete_runs {summary.get('complete_runs')}, expected {len(names)}")
if not os.path.exists(os.path.join(sweep, "best.safetensors")):
    problems.append("no best.safetensors in the sweep directory")
for name in names:
    config = json.load(open(os.path.join(sweep, name, "config.json")))
    # 2 means srun + PMIx wired the two tasks into one MPI job (singletons would say 1, or refuse).
    if config.get("ranks") != 2:
        problems.append(f"{name}/config.json: ranks {config.get('ranks')!r}, expected 2")
    run_summary = json.load(open(os.path.join(sweep, name, "summary.json")))
    print(f"    {name}: ranks {config.get('ranks')}, best val macro-F1 {run_summary['best']['val_macro_f1']:.4f}")
train = json.load(open(os.path.join(sys.argv[3], "config.json")))
if train.get("ranks") != 2:
    problems.append(f"train.sbatch's config.json: ranks {train.get('ranks')!r}, expected 2")
acc = summary.get("test", {}).get("accuracy", 0)
print(f"    best run {summary.get('best_run')}, test accuracy {acc:.4f}")
if acc < 0.3:
    problems.append(f"the best run's test accuracy {acc} is not above chance (0.1) on learnable data")
for p in problems:
    print("    " + p)
sys.exit(1 if problems else 0)
PY
say "checked: 4 jobs COMPLETED with exit 0, clean logs (train job, $ntasks_logs array tasks, combine), comparison.csv, summary.json, ranks 2 in every config.json"
exit 0
