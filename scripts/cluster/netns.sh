#!/usr/bin/env bash
# netns.sh: an emulated multi-host cluster on this one machine, for tests of multi-host MPI runs.
#
# Each "host" is a network namespace (PREFIX1..PREFIXN) with its own veth on a private bridge in
# the root namespace, its own address in a private IPv4 subnet, its own /etc/hosts (ip netns'
# /etc/netns/NAME/hosts, which `ip netns exec` bind-mounts) and, through rsh-agent.sh or the sshd
# started by `ssh-up`, its own hostname (a UTS namespace per command). mpirun runs in the root
# namespace (its address is the bridge's) and reaches the hosts through rsh-agent.sh (plm_rsh_agent)
# or through real ssh.
#
# What it is not: the hosts share this machine's CPUs, memory, file system, /dev/shm, PID and user
# namespaces; only the network and the hostname are separate. Nothing is installed here (ssh-up
# needs openssh-server and openssh-client already installed). Every host sees every core, so a
# program that sizes its thread count by cores oversubscribes the machine (pass e.g. --threads 1).
#
#   netns.sh up N [--prefix P] [--subnet CIDR] [--slots K] [--ssh]   create N hosts (P1..PN)
#   netns.sh down [--prefix P | --all]                 remove everything `up`/`ssh-up` created
#   netns.sh status [--prefix P]                       what exists now
#   netns.sh ssh-up [--prefix P] / ssh-down [--prefix P]   one sshd per host, a key, an ssh config
#   netns.sh shape RATE [--prefix P] / unshape [--prefix P]   tbf on both ends of every veth
#   netns.sh link-down HOST / link-up HOST             take a host's veth (root side) down or up
#   netns.sh exec HOST CMD...                          run CMD inside HOST (its netns and hostname)
#   netns.sh env [--prefix P]                          print the path of the env file
#
# Defaults: prefix dtnode, slots 1, subnet: the first 10.77.X.0/24 not in use on the machine (an
# explicit --subnet that overlaps an address or route already present is refused). The bridge gets
# the subnet's first address, host i the (i+1)-th. Everything `up` creates is journaled (before it
# is created) in $DTCLUSTER_STATE_ROOT/P/created (default /run/dist-trainer-cluster), so `down`
# removes exactly that, idempotently, also after a partial or failed `up` (a failed `up` runs
# `down` itself); `down` also kills whatever still runs inside the hosts. `up` writes P's hostfile
# (names; hostfile-addr: addresses) and cluster.env there: `source "$(netns.sh env)"`, then
#   mpirun "${DTCLUSTER_MPIRUN_ARGS[@]}" -np 2 CMD        (rsh-agent path)
#   mpirun "${DTCLUSTER_MPIRUN_SSH_ARGS[@]}" -np 2 CMD    (ssh path, after ssh-up)
# (also as plain strings, *_ARGS_STR). Those carry --bind-to none: each host's orted would otherwise
# bind its first rank to core 0 of the same machine. Add "${DTCLUSTER_MPIRUN_FAILFAST_ARGS[@]}" (OOB
# TCP keepalive 1 s/1 s/3 probes) to make mpirun end the job ~6 s after a host's link goes down.
# The env file quotes every value (printf %q), so a state directory with spaces is fine for the
# rsh-agent path; the ssh path refuses one (Open MPI splits plm_rsh_agent, "ssh -F CONFIG", at spaces).
# Every command refuses an argument it does not know with one line and a non-zero exit.
# Needs root, iproute2 (ip, tc), util-linux (unshare, flock) and python3 (netaddr.py, the subnet
# arithmetic).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_ROOT="${DTCLUSTER_STATE_ROOT:-/run/dist-trainer-cluster}"
AGENT="$HERE/rsh-agent.sh"
PROG="netns.sh"

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
    sed -n '/^#   netns.sh /s/^#   //p' "${BASH_SOURCE[0]}"
    exit "${1:-2}"
}

# --- IPv4 arithmetic: netaddr.py ------------------------------------------------------------------
# Every IPv4 network that is in use on the machine (addresses with their prefixes, routes of every
# table except default routes), one CIDR a line.
used_networks() {
    ip -4 -o addr show | awk '{ for (i = 1; i <= NF; i++) if ($i == "inet") print $(i + 1) }'
    ip -4 route show table all | awk '
        $1 == "default" { next }
        $1 ~ /^(local|broadcast|unicast|anycast|multicast|blackhole|unreachable|prohibit|throw|nat)$/ { print $2; next }
        { print $1 }'
}

# plan_addresses N [CIDR]: sets SUBNET, BRIDGE_ADDR, PREFIX_LEN and HOST_ADDRS (host 1..N) for N
# hosts on CIDR or on the first free 10.77.X.0/24 (netaddr.py); dies with its one line when the
# subnet is malformed, in use or too small.
plan_addresses() {
    local out
    out="$(used_networks | python3 "$HERE/netaddr.py" plan "$@" 2>&1)" || die "${out#netaddr.py: }"
    mapfile -t HOST_ADDRS <<<"$out"
    read -r SUBNET BRIDGE_ADDR PREFIX_LEN <<<"${HOST_ADDRS[0]}"
    HOST_ADDRS=("${HOST_ADDRS[@]:1}")
    [ "${#HOST_ADDRS[@]}" -eq "$1" ] || die "netaddr.py planned ${#HOST_ADDRS[@]} addresses for $1 hosts"
}

# --- state -----------------------------------------------------------------------------------------
valid_prefix() { [[ "$1" =~ ^[a-z][a-z0-9]{0,8}$ ]]; }

set_names() {  # PREFIX -> the cluster's paths and the bridge name
    PREFIX="$1"
    valid_prefix "$PREFIX" || die "prefix '$PREFIX': 1-9 characters, a lower-case letter then letters or digits"
    STATE="$STATE_ROOT/$PREFIX"
    JOURNAL="$STATE/created"
    HOSTS_TABLE="$STATE/hosts"
    ENV_FILE="$STATE/cluster.env"
    SSH_DIR="$STATE/ssh"
    BRIDGE="$PREFIX-br"
}

host_name() { echo "$PREFIX$1"; }
host_veth() { echo "$PREFIX-v$1"; }   # root-namespace end of host i's veth pair
host_peer() { echo "$PREFIX-p$1"; }   # the other end before it moves into the namespace (then eth0)

LOCK_FD=""
lock_state() {  # serialise ups and downs of every cluster (the subnet pick, /etc/netns, /run/sshd)
    mkdir -p "$STATE_ROOT"
    chmod 755 "$STATE_ROOT"
    local lock="$STATE_ROOT/.lock"
    while :; do
        exec {LOCK_FD}>>"$lock"
        flock "$LOCK_FD"
        # A `down` that removed the last cluster also removes the lock file; retry on a fresh one.
        if [ -e "$lock" ] && [ "$(stat -L -c %i "/proc/self/fd/$LOCK_FD")" = "$(stat -c %i "$lock")" ]; then
            return 0
        fi
        exec {LOCK_FD}>&-
    done
}

journal() { printf '%s\n' "$*" >>"$JOURNAL"; }   # before creating anything, so `down` finds it
# A directory that every cluster uses (/etc/netns, /run/sshd) and that did not exist: removed (if
# empty) when the last cluster goes.
journal_shared() { printf '%s\n' "$1" >>"$STATE_ROOT/shared-dirs"; }

# lookup_host HOST -> sets HNAME HADDR HNS HVETH from any cluster's hosts table
lookup_host() {
    local want="$1" t name addr ns veth
    for t in "$STATE_ROOT"/*/hosts; do
        [ -f "$t" ] || continue
        while read -r name addr ns veth; do
            if [ "$want" = "$name" ] || [ "$want" = "$addr" ]; then
                HNAME="$name" HADDR="$addr" HNS="$ns" HVETH="$veth"
                return 0
            fi
        done <"$t"
    done
    return 1
}

require_root() { [ "$(id -u)" -eq 0 ] || die "needs root (ip netns, veth, bridge)"; }

# reachable NS ADDR: a TCP connection from NS to a closed port of ADDR is refused at once when ADDR
# is reachable, and times out when not (no ping needed).
reachable() {
    local out
    # shellcheck disable=SC2016  # the inner shell expands $0
    out="$(ip netns exec "$1" timeout 3 bash -c ': <>"/dev/tcp/$0/9"' "$2" 2>&1)" && return 0
    [[ "$out" == *"refused"* ]]
}

# --- processes in a namespace -------------------------------------------------------------------------
kill_ns_pids() {  # NS: SIGTERM every process in it, wait up to 3 s, then SIGKILL what is left
    local ns="$1" pids i
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')" || true
    [ -n "${pids// /}" ] || return 0
    # shellcheck disable=SC2086  # a list of pids
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 30); do
        pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')" || true
        [ -n "${pids// /}" ] || return 0
        sleep 0.1
    done
    say "SIGKILL to what is left in $ns: $pids"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
}

stop_pidfile() {  # PIDFILE: stop the daemon it names, if it still runs
    local f="$1" pid i
    [ -s "$f" ] || return 0
    pid="$(head -n 1 "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

# value OPTION "$@": OPTION's value (the word after it); dies naming OPTION when there is none.
value() {
    [ $# -ge 3 ] || die "$1 needs a value"
    [[ "$3" != --* ]] || die "$1 needs a value (found option '$3')"
    printf '%s' "$3"
}

# prefix_only VERB ARGS...: the options of the commands whose only option is --prefix P.
prefix_only() {
    local verb="$1"
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix) PREFIX="$(value "$1" "$@")"; shift 2 ;;
            *) die "$verb: unknown argument '$1'" ;;
        esac
    done
}

# --- down ----------------------------------------------------------------------------------------------
down_one() {  # remove what PREFIX's journal lists, newest first; missing objects are fine
    set_names "$1"
    [ -d "$STATE" ] || { say "$PREFIX: nothing to remove"; return 0; }
    local kind what
    if [ -f "$JOURNAL" ]; then
        # Processes first (sshds, then anything still running in a namespace), then the objects.
        while read -r kind what; do
            if [ "$kind" = sshd ]; then stop_pidfile "$what"; fi
        done < <(tac "$JOURNAL")
        while read -r kind what; do
            if [ "$kind" = netns ] && [ -e "/run/netns/$what" ]; then kill_ns_pids "$what"; fi
        done < <(tac "$JOURNAL")
        while read -r kind what; do
            case "$kind" in
                netns)
                    if [ -e "/run/netns/$what" ]; then ip netns del "$what" 2>/dev/null || say "could not delete netns $what"; fi ;;
                link | bridge)
                    if ip link show "$what" >/dev/null 2>&1; then ip link del "$what" 2>/dev/null || say "could not delete $what"; fi ;;
                etcdir) rm -rf -- "$what" ;;
                emptydir) journal_shared "$what" ;;   # removed with the last cluster
                sshd | state) ;;
                *) say "journal: unknown entry '$kind $what'" ;;
            esac
        done < <(tac "$JOURNAL")
    fi
    # Open MPI's session directories of the hosts' daemons (/tmp/ompi.HOST.UID): a daemon killed with
    # its namespace leaves its own behind in the shared /tmp.
    if [ -f "$HOSTS_TABLE" ]; then
        local name _
        while read -r name _; do rm -rf -- "${TMPDIR:-/tmp}/ompi.$name".*; done <"$HOSTS_TABLE"
    fi
    rm -rf -- "$STATE"
    say "$PREFIX: removed"
}

cleanup_root() {  # the shared directories, the state root and its lock go with the last cluster
    local d
    for d in "$STATE_ROOT"/*/; do
        if [ -d "$d" ]; then return 0; fi
    done
    if [ -f "$STATE_ROOT/shared-dirs" ]; then
        while read -r d; do
            # /run/sshd stays while any sshd runs (its preauth children chroot there).
            if [ "$d" = /run/sshd ] && pgrep -x sshd >/dev/null 2>&1; then continue; fi
            rmdir -- "$d" 2>/dev/null || true
        done < <(sort -u "$STATE_ROOT/shared-dirs")
        rm -f "$STATE_ROOT/shared-dirs"
    fi
    rm -f "$STATE_ROOT/.lock"
    rmdir "$STATE_ROOT" 2>/dev/null || true
}

cmd_down() {
    local all=0 p
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix) PREFIX="$(value "$1" "$@")"; shift 2 ;;
            --all) all=1; shift ;;
            *) die "down: unknown argument '$1'" ;;
        esac
    done
    require_root
    [ -d "$STATE_ROOT" ] || { say "nothing to remove"; return 0; }
    lock_state
    if [ "$all" = 1 ]; then
        for p in "$STATE_ROOT"/*/; do
            if [ -d "$p" ]; then down_one "$(basename "$p")"; fi
        done
    else
        down_one "$PREFIX"
    fi
    cleanup_root
}

# --- up ------------------------------------------------------------------------------------------------
UP_IN_PROGRESS=0
up_failed() {
    local status=$?
    trap - EXIT
    if [ "$UP_IN_PROGRESS" = 1 ] && [ "${DTCLUSTER_KEEP_ON_ERROR:-0}" != 1 ]; then
        say "up failed (exit $status); removing what it created"
        down_one "$PREFIX" || true
        cleanup_root
    fi
    exit "$status"
}

# env_value NAME VALUE / env_array NAME WORDS...: one line of the env file, every word quoted for
# bash (printf %q), so a path with spaces or quotes reads back as it was.
env_value() { printf '%s=%q\n' "$1" "$2"; }
env_array() {
    local name="$1" word line=""
    shift
    for word in "$@"; do line+="${line:+ }$(printf '%q' "$word")"; done
    printf '%s=(%s)\n' "$name" "$line"
}

# The mpirun options every path shares (TCP on the subnet, yield while idle, no binding).
common_mpirun_args() {
    COMMON_ARGS=(--mca btl "tcp,self" --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET"
        --mca mpi_yield_when_idle 1 --bind-to none)
}

write_env() {
    local hosts="$1" agent_args
    common_mpirun_args
    agent_args=(--hostfile "$STATE/hostfile" --mca plm_rsh_agent "$AGENT" "${COMMON_ARGS[@]}")
    {
        printf '# cluster %s (%s hosts): source this file (bash). Written by scripts/cluster/netns.sh up.\n' "$PREFIX" "$N"
        env_value DTCLUSTER_PREFIX "$PREFIX"
        env_value DTCLUSTER_STATE "$STATE"
        env_value DTCLUSTER_SUBNET "$SUBNET"
        env_value DTCLUSTER_BRIDGE "$BRIDGE"
        env_value DTCLUSTER_BRIDGE_ADDR "$BRIDGE_ADDR"
        env_value DTCLUSTER_HOSTS "$hosts"
        env_value DTCLUSTER_SLOTS "$SLOTS"
        env_value DTCLUSTER_HOSTFILE "$STATE/hostfile"
        env_value DTCLUSTER_HOSTFILE_ADDR "$STATE/hostfile-addr"
        env_value DTCLUSTER_RSH_AGENT "$AGENT"
        printf 'export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n'
        printf '# mpirun options: hosts through rsh-agent.sh (ip netns exec), TCP on the private subnet only,\n'
        printf '# ranks that yield while they wait (2 cores also run the namespaces'"'"' packet processing),\n'
        printf '# no binding (every orted would bind its first rank to core 0 of the same machine).\n'
        env_array DTCLUSTER_MPIRUN_COMMON_ARGS "${COMMON_ARGS[@]}"
        env_array DTCLUSTER_MPIRUN_ARGS "${agent_args[@]}"
        printf '# The same as one string, for a variable that is split into words (no spaces in its paths then).\n'
        env_value DTCLUSTER_MPIRUN_ARGS_STR "${agent_args[*]}"
        printf '# Optional: notice a lost host within ~6 s (TCP keepalive on the daemons'"'"' out-of-band connections;\n'
        printf '# Open MPI 4.1 defaults 300/20/9 s); mpirun then ends the job and the cut-off orted exits itself.\n'
        env_array DTCLUSTER_MPIRUN_FAILFAST_ARGS --mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3
    } >"$ENV_FILE"
}

# ssh_path_usable: dies when the state directory has whitespace, which the ssh path cannot carry
# (Open MPI splits plm_rsh_agent at spaces).
ssh_path_usable() {
    [[ "$STATE" != *[[:space:]]* ]] \
        || die "ssh: the state directory '$STATE' contains whitespace, which Open MPI's plm_rsh_agent (\"ssh -F CONFIG\") cannot carry; set DTCLUSTER_STATE_ROOT to a path without it"
}

cmd_up() {
    local subnet="" ssh=0 i name addr ns veth peer hosts=""
    N="${1:-}"
    [[ "$N" =~ ^[1-9][0-9]*$ ]] || die "up N: N must be a positive number of hosts, found '$N'"
    shift
    SLOTS=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix) PREFIX="$(value "$1" "$@")"; shift 2 ;;
            --subnet) subnet="$(value "$1" "$@")"; shift 2 ;;
            --slots) SLOTS="$(value "$1" "$@")"; shift 2 ;;
            --ssh) ssh=1; shift ;;
            *) die "up: unknown argument '$1'" ;;
        esac
    done
    [[ "$SLOTS" =~ ^[1-9][0-9]*$ ]] || die "--slots: a positive number, found '$SLOTS'"
    require_root
    set_names "$PREFIX"
    local t
    for t in ip tc unshare flock python3; do
        command -v "$t" >/dev/null || die "$t not found: needs ip and tc (iproute2), unshare and flock (util-linux), python3"
    done
    if [[ "$AGENT" == *[[:space:]]* ]]; then
        say "warning: $AGENT contains whitespace; Open MPI splits plm_rsh_agent at spaces, so mpirun cannot use it"
    fi
    lock_state
    [ ! -e "$STATE" ] || die "cluster $PREFIX exists ($STATE); run: $0 down --prefix $PREFIX"
    if [ "$ssh" = 1 ]; then ssh_check_tools; fi
    for i in $(seq 1 "$N"); do
        [ ! -e "/run/netns/$(host_name "$i")" ] || die "a network namespace $(host_name "$i") exists already (not ours)"
        ! ip link show "$(host_veth "$i")" >/dev/null 2>&1 || die "interface $(host_veth "$i") exists already"
        [ ! -e "/etc/netns/$(host_name "$i")" ] || die "/etc/netns/$(host_name "$i") exists already"
    done
    ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "interface $BRIDGE exists already"
    plan_addresses "$N" ${subnet:+"$subnet"}

    UP_IN_PROGRESS=1
    trap up_failed EXIT
    trap 'exit 130' INT TERM HUP
    mkdir -m 700 "$STATE"
    : >"$JOURNAL"
    journal state "$STATE"
    printf '%s\n' "$SUBNET" >"$STATE/subnet"

    journal link "$BRIDGE"
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_ADDR/$PREFIX_LEN" dev "$BRIDGE"
    ip link set "$BRIDGE" up

    if [ ! -d /etc/netns ]; then journal_shared /etc/netns; mkdir -p /etc/netns; fi
    : >"$HOSTS_TABLE.tmp"
    for i in $(seq 1 "$N"); do
        name="$(host_name "$i")" addr="${HOST_ADDRS[$((i - 1))]}" veth="$(host_veth "$i")"
        ns="$name"
        printf '%s %s %s %s\n' "$name" "$addr" "$ns" "$veth" >>"$HOSTS_TABLE.tmp"
        hosts="${hosts:+$hosts }$name"
    done

    local etc_hosts
    etc_hosts="$(awk '{ printf "%s\t%s\n", $2, $1 }' "$HOSTS_TABLE.tmp")"
    while read -r name addr ns veth; do
        i="${name#"$PREFIX"}" peer="$(host_peer "$i")"
        journal netns "$ns"
        ip netns add "$ns"
        journal link "$veth"
        journal link "$peer"
        ip link add "$veth" type veth peer name "$peer"
        ip link set "$veth" master "$BRIDGE"
        ip link set "$veth" up
        ip link set "$peer" netns "$ns"
        ip -n "$ns" link set "$peer" name eth0
        ip -n "$ns" addr add "$addr/$PREFIX_LEN" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$BRIDGE_ADDR" dev eth0
        journal etcdir "/etc/netns/$ns"
        mkdir -p "/etc/netns/$ns"
        {
            printf '# %s: written by scripts/cluster/netns.sh (bind-mounted over /etc/hosts by ip netns exec)\n' "$name"
            printf '127.0.0.1\tlocalhost\n'
            printf '%s\t%s-gw\n' "$BRIDGE_ADDR" "$PREFIX"
            printf '%s\n' "$etc_hosts"
        } >"/etc/netns/$ns/hosts"
    done <"$HOSTS_TABLE.tmp"
    mv "$HOSTS_TABLE.tmp" "$HOSTS_TABLE"

    awk -v k="$SLOTS" '{ printf "%s slots=%s\n", $1, k }' "$HOSTS_TABLE" >"$STATE/hostfile"
    awk -v k="$SLOTS" '{ printf "%s slots=%s\n", $2, k }' "$HOSTS_TABLE" >"$STATE/hostfile-addr"
    write_env "$hosts"

    # Every host reaches the root namespace over the bridge (a failure here means a broken setup).
    while read -r name addr ns veth; do
        reachable "$ns" "$BRIDGE_ADDR" || die "$name cannot reach $BRIDGE_ADDR"
    done <"$HOSTS_TABLE"

    if [ "$ssh" = 1 ]; then ssh_up; fi
    UP_IN_PROGRESS=0
    trap - EXIT INT TERM HUP
    say "cluster $PREFIX: $N hosts ($hosts) on $SUBNET, bridge $BRIDGE $BRIDGE_ADDR"
    say "env file: $ENV_FILE   hostfile: $STATE/hostfile"
}

# --- ssh -----------------------------------------------------------------------------------------------
load_cluster() {  # for commands on an existing cluster
    require_root
    set_names "$PREFIX"
    [ -f "$HOSTS_TABLE" ] || die "no cluster $PREFIX (run: $0 up N --prefix $PREFIX)"
    SUBNET="$(cat "$STATE/subnet")"
}

# ssh-up's steps, in order (ssh_up), after ssh_check_tools (which its callers run before they change
# anything). Each is called with the lock held and the cluster's names set (SSH_DIR is the
# cluster's ssh directory); SSHD is the sshd binary.
ssh_check_tools() {  # the programs exist, the path is usable, ssh is not up yet
    local t
    for t in sshd ssh ssh-keygen; do
        command -v "$t" >/dev/null 2>&1 || die "ssh-up: $t not found (apt-get install openssh-server openssh-client)"
    done
    SSHD="$(command -v sshd)"
    ssh_path_usable
    [ ! -d "$SSH_DIR" ] || die "ssh is up already for $PREFIX (ssh-down first)"
    if [ "$(getent shadow root 2>/dev/null | cut -d: -f2 | cut -c1)" = "!" ]; then
        say "warning: root's password is locked ('!'); sshd with UsePAM no refuses locked accounts"
    fi
}

ssh_make_client_key() {  # the cluster's key, accepted from the cluster's subnet only
    mkdir -m 700 "$SSH_DIR"
    ssh-keygen -q -t ed25519 -N '' -C "dist-trainer-cluster-$PREFIX" -f "$SSH_DIR/id_ed25519"
    printf 'from="%s" %s\n' "$SUBNET" "$(cat "$SSH_DIR/id_ed25519.pub")" >"$SSH_DIR/authorized_keys"
    chmod 600 "$SSH_DIR/authorized_keys"
    # sshd's privilege separation directory (Debian's service creates it at boot; no service here).
    if [ ! -d /run/sshd ]; then journal_shared /run/sshd; mkdir -m 755 /run/sshd; fi
}

ssh_write_client_config() {  # ssh -F CONFIG HOST reaches every host as root with the cluster key
    local name addr ns veth
    {
        printf '# ssh config of cluster %s (scripts/cluster/netns.sh ssh-up): ssh -F THIS HOST\n' "$PREFIX"
        while read -r name addr ns veth; do
            printf 'Host %s %s\n    HostName %s\n' "$name" "$addr" "$addr"
        done <"$HOSTS_TABLE"
        printf 'Host *\n'
        printf '    User root\n    IdentityFile "%s"\n    IdentitiesOnly yes\n' "$SSH_DIR/id_ed25519"
        printf '    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    GlobalKnownHostsFile /dev/null\n'
        printf '    BatchMode yes\n    ConnectTimeout 5\n    LogLevel ERROR\n    ServerAliveInterval 5\n    ServerAliveCountMax 2\n'
    } >"$SSH_DIR/config"
}

ssh_write_client_wrapper() {
    # The same client for tools that take a program name without arguments (its basename is ssh, so
    # Open MPI treats it as ssh), and, first on PATH, for mpirun's default launcher. It calls the
    # real ssh by its full path, or it would find itself on that PATH.
    local real_ssh
    mkdir -p "$SSH_DIR/bin"
    real_ssh="$(command -v ssh)" || die "ssh-up: ssh (openssh-client) not found"
    [ "$real_ssh" != "$SSH_DIR/bin/ssh" ] || real_ssh=/usr/bin/ssh
    # shellcheck disable=SC2016  # "$@" is the wrapper's own
    printf '#!/bin/sh\nexec %q -F %q "$@"\n' "$real_ssh" "$SSH_DIR/config" >"$SSH_DIR/bin/ssh"
    chmod 755 "$SSH_DIR/bin/ssh"
}

ssh_start_daemon() {  # NAME ADDR NS: host NAME's sshd, on its address only, root with the cluster key only
    local name="$1" addr="$2" ns="$3" dir="$SSH_DIR/$1"
    mkdir -m 700 "$dir"
    ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/ssh_host_ed25519_key"
    cat >"$dir/sshd_config" <<EOF
# sshd of emulated host $name (cluster $PREFIX): its address only, root with the cluster key only.
ListenAddress $addr
Port 22
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
PrintLastLog no
UseDNS no
# A session whose client vanished (link down) ends after ~10 s instead of the kernel's 2 h keepalive.
ClientAliveInterval 5
ClientAliveCountMax 2
AcceptEnv LANG LC_*
MaxStartups 100:30:200
Subsystem sftp internal-sftp
EOF
    "$SSHD" -t -f "$dir/sshd_config" || die "sshd -t rejects $dir/sshd_config"
    journal sshd "$dir/sshd.pid"
    # sshd daemonizes and writes its pid file; its own UTS namespace carries the host's name.
    # shellcheck disable=SC2016  # the inner shell expands these
    ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && exec "$2" -f "$3" -E "$4"' \
        sh "$name" "$SSHD" "$dir/sshd_config" "$dir/sshd.log"
}

ssh_wait_for_logins() {  # every sshd answers, and a real login works on each (10 s each at most)
    local name addr ns veth ok i
    while read -r name addr ns veth; do
        ok=0
        for i in $(seq 1 50); do
            if ssh -n -F "$SSH_DIR/config" -o ConnectTimeout=2 "$name" true 2>/dev/null; then ok=1; break; fi
            sleep 0.2
        done
        [ "$ok" = 1 ] || die "ssh to $name ($addr) does not work; see $SSH_DIR/$name/sshd.log"
    done <"$HOSTS_TABLE"
}

ssh_write_env() {  # the ssh part of the env file (ssh_down_locked removes it again)
    local ssh_args str_args
    common_mpirun_args
    ssh_args=(--hostfile "$STATE/hostfile" --mca plm_rsh_agent "ssh -F $SSH_DIR/config" "${COMMON_ARGS[@]}")
    str_args=(--hostfile "$STATE/hostfile" --mca plm_rsh_agent "$SSH_DIR/bin/ssh" "${COMMON_ARGS[@]}")
    {
        printf '# ssh path (netns.sh ssh-up): one sshd per host, the cluster key, this ssh config.\n'
        env_value DTCLUSTER_SSH_CONFIG "$SSH_DIR/config"
        env_value DTCLUSTER_SSH_KEY "$SSH_DIR/id_ed25519"
        env_value DTCLUSTER_SSH "$SSH_DIR/bin/ssh"
        env_array DTCLUSTER_MPIRUN_SSH_ARGS "${ssh_args[@]}"
        env_value DTCLUSTER_MPIRUN_SSH_ARGS_STR "${str_args[*]}"
    } >>"$ENV_FILE"
}

ssh_up() {  # one sshd per host, a key, an ssh config and client, and the env file's ssh part
    local name addr ns veth
    ssh_make_client_key
    ssh_write_client_config
    ssh_write_client_wrapper
    while read -r name addr ns veth; do
        ssh_start_daemon "$name" "$addr" "$ns"
    done <"$HOSTS_TABLE"
    ssh_wait_for_logins
    ssh_write_env
    say "ssh up: ssh -F $SSH_DIR/config HOST"
}

cmd_ssh_up() {
    prefix_only ssh-up "$@"
    load_cluster
    lock_state
    ssh_check_tools   # before the trap: refusing must not stop the sshds of an ssh that is up
    trap ssh_up_failed EXIT
    trap 'exit 130' INT TERM HUP
    ssh_up
    trap - EXIT INT TERM HUP
}

ssh_up_failed() {
    local status=$?
    trap - EXIT
    if [ "$status" -ne 0 ]; then
        say "ssh-up failed (exit $status); stopping what it started"
        ssh_down_locked
    fi
    exit "$status"
}

ssh_down_locked() {  # stop every sshd of the cluster, remove the keys and the env file's ssh part
    local kind what
    while read -r kind what; do
        if [ "$kind" = sshd ]; then stop_pidfile "$what"; fi
    done < <(tac "$JOURNAL")
    rm -rf -- "$STATE/ssh"
    sed -i '/^# ssh path/,$d' "$ENV_FILE"
}

cmd_ssh_down() {
    prefix_only ssh-down "$@"
    load_cluster
    lock_state
    # The journal keeps its sshd lines (harmless once their pid files are gone).
    ssh_down_locked
    say "ssh down for $PREFIX"
}

# --- status, shape, links, exec --------------------------------------------------------------------------
cmd_status() {
    local p name addr ns veth state qdisc pids sshd only=""
    # Only --prefix P (one cluster); without it every cluster.
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix) only="$(value "$1" "$@")"; shift 2 ;;
            *) die "status: unknown argument '$1'" ;;
        esac
    done
    if [ -n "$only" ]; then valid_prefix "$only" || die "prefix '$only': 1-9 characters, a lower-case letter then letters or digits"; fi
    [ -d "$STATE_ROOT" ] || { echo "no clusters"; return 0; }
    local any=0
    for p in "$STATE_ROOT"/*/; do
        [ -d "$p" ] || continue
        p="$(basename "$p")"
        if [ -n "$only" ] && [ "$p" != "$only" ]; then continue; fi
        any=1
        set_names "$p"
        printf 'cluster %s: subnet %s, bridge %s %s, state %s\n' "$p" "$(cat "$STATE/subnet" 2>/dev/null || echo '?')" \
            "$BRIDGE" "$(ip -br link show "$BRIDGE" 2>/dev/null | awk '{ print $2 }' || echo missing)" "$STATE"
        [ -f "$HOSTS_TABLE" ] || { echo "  (no hosts table: partial up; run down)"; continue; }
        while read -r name addr ns veth; do
            state="$(ip -br link show "$veth" 2>/dev/null | awk '{ print $2 }')"
            qdisc="$(tc qdisc show dev "$veth" 2>/dev/null | awk '$2 == "tbf" { for (i = 1; i <= NF; i++) if ($i == "rate") print "tbf " $(i + 1) }')"
            pids="$(ip netns pids "$ns" 2>/dev/null | wc -l)"
            sshd="no"
            [ -s "$STATE/ssh/$name/sshd.pid" ] && kill -0 "$(cat "$STATE/ssh/$name/sshd.pid")" 2>/dev/null && sshd="pid $(cat "$STATE/ssh/$name/sshd.pid")"
            printf '  %-12s %-15s netns %-12s veth %-12s %-5s %s processes %s sshd %s\n' "$name" "$addr" \
                "$([ -e "/run/netns/$ns" ] && echo "$ns" || echo MISSING)" "$veth" "${state:-MISSING}" "${qdisc:-}" "$pids" "$sshd"
        done <"$HOSTS_TABLE"
    done
    [ "$any" = 1 ] || echo "no clusters"
}

# rate_bytes RATE -> bytes per second (tc's units: bit kbit mbit gbit tbit, bps kbps mbps gbps)
rate_bytes() {
    local r="${1,,}" n unit
    [[ "$r" =~ ^([0-9]+)([a-z]*)$ ]] || return 1
    n="${BASH_REMATCH[1]}" unit="${BASH_REMATCH[2]}"
    case "$unit" in
        bit | "") echo $((n / 8)) ;;
        kbit) echo $((n * 1000 / 8)) ;;
        mbit) echo $((n * 1000000 / 8)) ;;
        gbit) echo $((n * 1000000000 / 8)) ;;
        tbit) echo $((n * 1000000000000 / 8)) ;;
        bps) echo "$n" ;;
        kbps) echo $((n * 1000)) ;;
        mbps) echo $((n * 1000000)) ;;
        gbps) echo $((n * 1000000000)) ;;
        *) return 1 ;;
    esac
}

cmd_shape() {
    local rate="${1:-}" bps burst name addr ns veth
    [ -n "$rate" ] || die "shape RATE: which rate? (e.g. 10gbit, 1gbit, 100mbit)"
    shift
    prefix_only shape "$@"
    bps="$(rate_bytes "$rate")" || die "rate '$rate': a number and bit, kbit, mbit, gbit, bps, kbps, mbps or gbps"
    [ "$bps" -gt 0 ] || die "rate '$rate' is zero"
    load_cluster
    # Bucket: 10 ms of traffic, at least 64 KiB (a GSO segment) ; queue: 50 ms.
    burst=$((bps / 100))
    [ "$burst" -ge 65536 ] || burst=65536
    while read -r name addr ns veth; do
        tc qdisc replace dev "$veth" root tbf rate "$rate" burst "$burst" latency 50ms
        ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
    done <"$HOSTS_TABLE"
    say "$PREFIX: every veth shaped to $rate each way (tbf, burst $burst bytes)"
}

cmd_unshape() {
    local name addr ns veth
    prefix_only unshape "$@"
    load_cluster
    while read -r name addr ns veth; do
        tc qdisc del dev "$veth" root 2>/dev/null || true
        ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
    done <"$HOSTS_TABLE"
    say "$PREFIX: shaping removed"
}

cmd_link() {  # up|down HOST
    local how="$1" host="${2:-}"
    [ -n "$host" ] || die "link-$how HOST: which host?"
    [ $# -le 2 ] || die "link-$how: unknown argument '$3' (link-$how takes one HOST)"
    require_root
    lookup_host "$host" || die "unknown host '$host'"
    ip link set "$HVETH" "$how"
    say "$HNAME ($HADDR): $HVETH $how"
}

cmd_exec() {
    local host="${1:-}"
    if [ -z "$host" ] || [ $# -lt 2 ]; then die "exec HOST CMD...: needs a host and a command"; fi
    shift
    require_root
    lookup_host "$host" || die "unknown host '$host'"
    # shellcheck disable=SC2016  # the inner shell expands these
    exec ip netns exec "$HNS" unshare --uts sh -c 'hostname "$1" && shift && exec "$@"' sh "$HNAME" "$@"
}

cmd_env() {
    prefix_only env "$@"
    set_names "$PREFIX"
    [ -f "$ENV_FILE" ] || die "no cluster $PREFIX"
    echo "$ENV_FILE"
}

# --- main ----------------------------------------------------------------------------------------------
PREFIX="${DTCLUSTER_PREFIX:-dtnode}"
[ $# -ge 1 ] || die "a command is needed (see $PROG --help)"
cmd="$1"
shift
case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    ssh-up) cmd_ssh_up "$@" ;;
    ssh-down) cmd_ssh_down "$@" ;;
    shape) cmd_shape "$@" ;;
    unshape) cmd_unshape "$@" ;;
    link-down) cmd_link down "$@" ;;
    link-up) cmd_link up "$@" ;;
    exec) cmd_exec "$@" ;;
    env) cmd_env "$@" ;;
    -h | --help | help) usage 0 ;;
    *) die "unknown command '$cmd' (see $PROG --help)" ;;
esac
