#!/usr/bin/env bash
# selftest.sh: an end-to-end check of netns.sh and rsh-agent.sh on this machine. It brings up a
# 2-host emulated cluster under a private prefix, runs MPI jobs on it through rsh-agent.sh and (when
# openssh-server and openssh-client are installed) through real ssh, checks that the two ranks ran
# in two different network namespaces with the hosts' names and that `dist-trainer check` passes,
# cuts host 2's link under a running job and checks that mpirun (with the keepalive settings of
# DTCLUSTER_MPIRUN_FAILFAST_ARGS) ends within 20 s and that nothing of the job is left, then tears
# the cluster down and checks that no namespace, interface, process or file of it remains.
#
#   scripts/cluster/selftest.sh        # exit 0 = passed, 1 = failed, 77 = skipped (not root, no mpirun, no binary)
#
# It does not install anything or train. DIST_TRAINER_BIN overrides <repo>/.build/release/dist-trainer.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NETNS="$HERE/netns.sh"
BIN="${DIST_TRAINER_BIN:-$ROOT/.build/release/dist-trainer}"
PREFIX="dts$(printf '%05d' $(($$ % 100000)))n"
PASSED=0 FAILED=0 MPIRUN_PID=""
case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "selftest.sh: unknown argument '$1' (it takes none)" >&2; exit 2 ;;
esac

skip() { printf 'selftest: SKIP: %s\n' "$*"; exit 77; }
ok() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$*"; }
bad() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
for t in ip tc unshare flock mpirun; do command -v "$t" >/dev/null 2>&1 || skip "$t not found"; done
[ -x "$BIN" ] || skip "$BIN not built"

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [ -n "$MPIRUN_PID" ] && kill -0 "$MPIRUN_PID" 2>/dev/null; then kill -KILL "$MPIRUN_PID" 2>/dev/null || true; fi
    "$NETNS" down --prefix "$PREFIX" >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ssh_flag=()
if command -v sshd >/dev/null 2>&1 && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; then
    ssh_flag=(--ssh)
fi
"$NETNS" up 2 --prefix "$PREFIX" "${ssh_flag[@]}" 2>/dev/null || { bad "netns.sh up 2 --prefix $PREFIX ${ssh_flag[*]}"; exit 1; }
# shellcheck source=/dev/null
source "$("$NETNS" env --prefix "$PREFIX")"
cd /tmp

paths=(DTCLUSTER_MPIRUN_ARGS)
if [ ${#ssh_flag[@]} -gt 0 ]; then paths+=(DTCLUSTER_MPIRUN_SSH_ARGS); else echo "skip ssh path (openssh-server/openssh-client not installed)"; fi
root_ns="$(readlink /proc/self/ns/net)"
for p in "${paths[@]}"; do
    declare -n args="$p"
    # shellcheck disable=SC2016  # expanded by the ranks' shell
    out="$(timeout 60 mpirun "${args[@]}" -np 2 sh -c 'echo "$(hostname) $(readlink /proc/self/ns/net)"' 2>&1)" || true
    names="$(awk '{ print $1 }' <<<"$out" | sort | tr '\n' ' ')"
    nets="$(awk '{ print $2 }' <<<"$out" | sort -u | grep -c -v -F "$root_ns" || true)"
    if [ "$names" = "${PREFIX}1 ${PREFIX}2 " ] && [ "$nets" = 2 ]; then
        ok "$p: 2 ranks on ${PREFIX}1 and ${PREFIX}2, in 2 network namespaces"
    else
        bad "$p: expected ranks on ${PREFIX}1 and ${PREFIX}2 in 2 namespaces, got: $(tr '\n' ';' <<<"$out")"
    fi
    out="$(timeout 120 mpirun "${args[@]}" -np 2 "$BIN" check 2>&1)" || true
    if grep -q '2 rank(s) on 2 host(s)' <<<"$out" && grep -q '^all checks passed' <<<"$out"; then
        ok "$p: dist-trainer check, 2 ranks on 2 hosts"
    else
        bad "$p: dist-trainer check: $(tail -n 5 <<<"$out" | tr '\n' ';')"
    fi
    unset -n args
done

# A lost host: mpirun must end the job by itself, and the cut-off daemon must exit by itself.
timeout 120 mpirun "${DTCLUSTER_MPIRUN_ARGS[@]}" "${DTCLUSTER_MPIRUN_FAILFAST_ARGS[@]}" -np 2 sleep 100 >/dev/null 2>&1 &
MPIRUN_PID=$!
for _ in $(seq 1 40); do
    [ "$(ip netns pids "${PREFIX}2" | wc -l)" -ge 2 ] && break   # orted and sleep (and sshd)
    sleep 0.25
done
sleep 1
"$NETNS" link-down "${PREFIX}2" 2>/dev/null
start=$SECONDS
while kill -0 "$MPIRUN_PID" 2>/dev/null && [ $((SECONDS - start)) -lt 20 ]; do sleep 0.25; done
if kill -0 "$MPIRUN_PID" 2>/dev/null; then
    bad "mpirun still running 20 s after ${PREFIX}2's link went down"
else
    ok "mpirun ended $((SECONDS - start)) s after ${PREFIX}2's link went down"
fi
left="$( { ip netns pids "${PREFIX}1"; ip netns pids "${PREFIX}2"; } | xargs -r ps -o comm= -p | grep -v -x sshd || true)"
if [ -z "$left" ]; then ok "no orted or rank left on either host"; else bad "left behind: $(tr '\n' ' ' <<<"$left")"; fi
"$NETNS" link-up "${PREFIX}2" 2>/dev/null

"$NETNS" down --prefix "$PREFIX" 2>/dev/null
left=""
[ -z "$(ip netns list | grep -E "^${PREFIX}[0-9]+( |$)" || true)" ] || left+=" namespaces"
[ -z "$(ip -br link | grep -E "^${PREFIX}-" || true)" ] || left+=" interfaces"
[ -z "$(ls -d /etc/netns/"${PREFIX}"* 2>/dev/null || true)" ] || left+=" /etc/netns"
[ ! -e "${DTCLUSTER_STATE:?}" ] || left+=" $DTCLUSTER_STATE"
[ -z "$(pgrep -f "$DTCLUSTER_STATE/" || true)" ] || left+=" processes"
if [ -z "$left" ]; then ok "down left nothing behind"; else bad "down left:$left"; fi

printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" -eq 0 ]
