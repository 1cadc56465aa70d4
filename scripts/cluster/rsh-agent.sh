#!/usr/bin/env bash
# rsh-agent.sh: an ssh stand-in for the emulated cluster of netns.sh, used as Open MPI's
# plm_rsh_agent (`mpirun --mca plm_rsh_agent /path/rsh-agent.sh`). mpirun calls it the way it calls
# ssh:  rsh-agent.sh [ssh options] [user@]HOST [COMMAND...]
# It looks HOST (a host name or address) up in the hosts tables of every cluster under
# $DTCLUSTER_STATE_ROOT (default /run/dist-trainer-cluster) and runs COMMAND in that host's network
# namespace with the host's name (`ip netns exec NS unshare --uts`), the way sshd does: the words
# of COMMAND joined by spaces and given to the user's login shell with -c, in a fresh login-like
# environment (HOME, USER, LOGNAME, SHELL, sshd's PATH, LANG/LC_*), from the home directory.
#
# What it is not: no network is involved, so it neither authenticates nor notices a link that goes
# down after the command started (a new call to a host whose veth is down fails like ssh, exit 255).
# ssh options are parsed and ignored (Open MPI passes none to an agent not named ssh; -x/-T/-o ...
# are accepted anyway). DTCLUSTER_AGENT_KEEP_ENV=1 passes the caller's environment through instead;
# DTCLUSTER_AGENT_LOG=FILE appends every call's argv to FILE; DTCLUSTER_AGENT_DIRECT: see the end.
set -euo pipefail

STATE_ROOT="${DTCLUSTER_STATE_ROOT:-/run/dist-trainer-cluster}"

fail() { printf 'rsh-agent: %s\n' "$*" >&2; exit 255; }

if [ -n "${DTCLUSTER_AGENT_LOG:-}" ]; then
    { printf '%s pid %s argv:' "$(date +%T.%N)" "$$"; printf ' [%s]' "$@"; printf '\n'; } >>"$DTCLUSTER_AGENT_LOG"
fi

# ssh's option syntax: flags may be grouped (-xT); these take an argument (-oFoo=1 or -o Foo=1).
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -[BbcDEeFIiJLlmOopQRSWw]) [ $# -ge 2 ] || fail "option $1 needs an argument"; shift 2 ;;
        -[46AaCfGgKkMNnqsTtVvXxYy]*)
            opt="${1#-}"
            # a group of flags, possibly ending in an option that takes the rest as its argument
            while [ -n "$opt" ]; do
                c="${opt:0:1}" opt="${opt:1}"
                case "$c" in
                    [BbcDEeFIiJLlmOopQRSWw])
                        if [ -z "$opt" ]; then [ $# -ge 2 ] || fail "option -$c needs an argument"; shift; fi
                        opt="" ;;
                    [46AaCfGgKkMNnqsTtVvXxYy]) ;;
                    *) fail "unknown option -$c" ;;
                esac
            done
            shift ;;
        -[BbcDEeFIiJLlmOopQRSWw]*) shift ;;   # -oKey=value, -p22 ...
        -*) fail "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || fail "usage: rsh-agent.sh [ssh options] [user@]HOST [COMMAND...]"
host="${1##*@}"
shift

ns="" name="" veth=""
for table in "$STATE_ROOT"/*/hosts; do
    [ -f "$table" ] || continue
    while read -r t_name t_addr t_ns t_veth; do
        if [ "$host" = "$t_name" ] || [ "$host" = "$t_addr" ]; then
            name="$t_name" ns="$t_ns" veth="$t_veth"
            break 2
        fi
    done <"$table"
done
[ -n "$ns" ] || fail "ssh: Could not resolve hostname $host: not a host of any cluster under $STATE_ROOT"
[ -e "/run/netns/$ns" ] || fail "ssh: connect to host $host port 22: No route to host (no namespace $ns)"
# A host whose link is down has no carrier on its eth0 (asked over netlink in the host's namespace,
# which works also when this agent itself runs inside a host, as when an orted tree-spawns).
link="$(ip -n "$ns" -o link show dev eth0 2>/dev/null || true)"
if [ -z "$link" ] || [[ "$link" == *NO-CARRIER* ]] || [[ "$link" != *"state UP"* ]]; then
    fail "ssh: connect to host $host port 22: No route to host ($veth is down)"
fi

user="$(id -un)"
login_shell="$(getent passwd "$user" | cut -d: -f7)"
[ -x "${login_shell:-/nonexistent}" ] || login_shell=/bin/sh
home="$(getent passwd "$user" | cut -d: -f6)"
[ -d "${home:-/nonexistent}" ] || home=/

# Like sshd: the command words joined by single spaces, run by the login shell; none: a login shell.
if [ $# -gt 0 ]; then
    set -- "$login_shell" -c "$*"
else
    set -- "$login_shell" -l
fi

if [ "${DTCLUSTER_AGENT_KEEP_ENV:-0}" = 1 ]; then
    envcmd=(env)
else
    envcmd=(env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL="$login_shell"
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
    while IFS= read -r var; do
        envcmd+=("$var")
    done < <(env | grep -E '^(LANG|LC_[A-Z]+)=' || true)
fi

# Like a command started by sshd without a tty, the remote command runs in its own session, so that
# signals for this process (the "ssh client", mpirun's child) do not reach it: killing the client
# leaves it running with its stdio closed, as ssh does. DTCLUSTER_AGENT_DIRECT=1 execs the command
# in this process instead (then mpirun's signals reach it directly).
session=(setsid --fork --wait)
if [ "${DTCLUSTER_AGENT_DIRECT:-0}" = 1 ]; then session=(); fi

cd "$home"
# shellcheck disable=SC2016  # the inner shell expands these
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && shift && exec "$@"' sh "$name" \
    "${session[@]}" "${envcmd[@]}" "$@"
