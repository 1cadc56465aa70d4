# elastic.sh: restarting a training job on the hosts that are left after one was lost. Sourced by
# train.sh when MAX_RESTARTS > 0; not a command of its own.
#
# After a failed attempt, the exit status says whether a restart can help (the table is the
# binary's, Sources/DistTrainer/Commands/ExitStatus.swift, and the README's): bad input (65), a
# refused flag (64), a diverged run (3), a full disk (74), a preemption (75) and Ctrl-C (130) end the
# job as they are. Otherwise every host of the hostfile is probed through the launcher mpirun uses
# (MPIRUN_ARGS included, PROBE_TIMEOUT seconds each, in parallel); the job restarts with
# `--resume` on the hosts that answer, with the ranks their slots give, as long as at least MIN_HOSTS
# answer and fewer than MAX_RESTARTS restarts were made. A host that answers again takes part again
# from the next restart. A failure with every host answering (a killed rank, a link that came back)
# restarts too, except exit status 1, the binary's unexplained error, which a restart would repeat.
# Each restart prints one line and appends a record to RUN_DIR/restarts.jsonl, which the run's
# summary.json includes.
# shellcheck shell=bash

# Exit statuses after which a restart would fail the same way (see the README's table).
elastic_final_status() {
    case "$1" in
        3) echo "every learning rate diverged" ;;
        64) echo "a bad or refused flag" ;;
        65) echo "bad input (a data, checkpoint or config file, or the run directory)" ;;
        74) echo "a checkpoint or run file could not be written" ;;
        75) echo "preempted (SIGUSR1), state saved" ;;
        130) echo "interrupted (SIGINT), state saved" ;;
        *) return 1 ;;
    esac
}

# elastic_hosts FILE: "host slots" per host line of an Open MPI hostfile.
elastic_hosts() {
    awk '!/^[[:space:]]*#/ && NF { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, s, "="); n = s[2] } print $1, n }' "$1"
}

# elastic_probe HOST: whether HOST runs a process launched the way mpirun launches the job.
elastic_probe() {
    # The probes start together, and Open MPI 4.1's mpiruns starting at once race to create their
    # shared session directory: one fails at start-up ("mkdir ... File exists"), which made a host
    # that was there look lost (seen in the multi-host tests). Each probe gets a TMPDIR of its own,
    # as sweep.sh's jobs do (short: the session holds sockets).
    local session status
    session="$(mktemp -d "${TMPDIR:-/tmp}/dtp.XXXXXX")"
    # MPIRUN_ARGS holds mpirun options as one string, split into words on purpose.
    # shellcheck disable=SC2086
    TMPDIR="$session" timeout -k 2 "${PROBE_TIMEOUT:-5}" mpirun --host "$1" -np 1 ${MPIRUN_ARGS:-} true >/dev/null 2>&1
    status=$?
    rm -rf "$session"
    return "$status"
}

# elastic_alive FILE: the hosts of FILE that answer, as "host slots" lines (probed in parallel).
elastic_alive() {
    local host slots dir
    dir="$(mktemp -d)"
    while read -r host slots; do
        (elastic_probe "$host" && echo "$host $slots" >"$dir/$host") &
    done < <(elastic_hosts "$1")
    wait
    cat "$dir"/* 2>/dev/null | sort
    rm -rf "$dir"
}

# elastic_failure_point LOG: "L E S" (learning rate #L, epoch E, step S in progress, all 1-based)
# from the error lines of a failed attempt, the furthest one named; nothing if none is.
elastic_failure_point() {
    grep -o 'at learning rate #[0-9]* epoch [0-9]* step [0-9]*' "$1" 2>/dev/null \
        | awk '{ print $4, $6, $8 }' | sed 's/#//' | sort -k1,1n -k2,2n -k3,3n | tail -1
}

# elastic_resume_point RUN_DIR: sets rp_lr_index, rp_epochs_done, rp_step_in_epoch,
# rp_steps_per_epoch, rp_epochs and rp_file from the binary's --print-resume-point line (numbers
# first, the checkpoint's path last: it may hold spaces).
elastic_resume_point() {
    local line key value
    line="$("$DIST_TRAINER_BIN" train --resume "$1" --print-resume-point 2>/dev/null)" || return 1
    rp_file="${line#* file=}"
    for key in lr_index epochs_done step_in_epoch steps_per_epoch epochs; do
        value="$(printf '%s\n' "${line% file=*}" | tr ' ' '\n' | sed -n "s/^$key=\([0-9]*\)$/\1/p")"
        printf -v "rp_$key" '%s' "${value:-0}"
    done
}

# elastic_run RUN_DIR RESTART_ARGS -- FIRST_ARGS: trains with restarts (see the top of this file).
# FIRST_ARGS are the first attempt's train arguments; RESTART_ARGS those of every restart (the same,
# resuming). Returns the job's final status.
elastic_run() {
    local run_dir="$1"; shift
    local restart_args=() first_args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do restart_args+=("$1"); shift; done
    shift
    first_args=("$@")
    local hostfile="$HOSTFILE" np="$NP" restarts=0 status=0 attempt_log args=("${first_args[@]}")
    local current="$hostfile" interrupted=0
    trap 'interrupted=1' INT TERM
    while true; do
        attempt_log="$(mktemp)"
        status=0
        # MPIRUN_ARGS holds mpirun options as one string, split into words on purpose.
        # shellcheck disable=SC2086
        mpirun -np "$np" --hostfile "$current" ${MPIRUN_ARGS:-} "$DIST_TRAINER_BIN" train "${args[@]}" 2> >(tee "$attempt_log" >&2) || status=$?
        local failed_at_seconds
        failed_at_seconds="$(date +%s.%N)"
        wait  # for tee
        [ "$status" -eq 0 ] && { rm -f "$attempt_log"; return 0; }
        if [ "$interrupted" -eq 1 ]; then
            echo "train.sh: interrupted; not restarting (resume with --resume $run_dir)" >&2
            rm -f "$attempt_log"; return "$status"
        fi
        local why
        if why="$(elastic_final_status "$status")"; then
            echo "train.sh: not restarting: $why (exit $status)" >&2
            rm -f "$attempt_log"; return "$status"
        fi
        if [ "$restarts" -ge "$MAX_RESTARTS" ]; then
            echo "train.sh: the job failed (exit $status) after $restarts restart(s) of MAX_RESTARTS=$MAX_RESTARTS; giving up" >&2
            rm -f "$attempt_log"; return "$status"
        fi
        local alive lost host slots hosts_alive=() count=0 ranks=0
        alive="$(elastic_alive "$hostfile")"
        while read -r host slots; do
            [ -n "$host" ] || continue
            hosts_alive+=("$host"); count=$((count + 1)); ranks=$((ranks + slots))
        done <<<"$alive"
        lost="$(comm -23 <(elastic_hosts "$current" | awk '{print $1}' | sort) <(printf '%s\n' "${hosts_alive[@]}" | sort) | tr '\n' ' ' | sed 's/ $//')"
        if [ -z "$lost" ] && [ "$status" -eq 1 ]; then
            echo "train.sh: the job failed (exit $status) and every host answers: not a lost host; not restarting" >&2
            rm -f "$attempt_log"; return "$status"
        fi
        if [ "$count" -lt "$MIN_HOSTS" ]; then
            echo "train.sh: lost ${lost:-a rank}; only $count host(s) answer, fewer than MIN_HOSTS=$MIN_HOSTS; giving up (resume later with --resume $run_dir)" >&2
            rm -f "$attempt_log"; return 69
        fi
        restarts=$((restarts + 1))
        current="$run_dir/hosts.restart-$restarts"
        printf '%s\n' "$alive" | awk '{ print $1, "slots=" $2 }' >"$current"
        [ -n "${NP_GIVEN:-}" ] && [ "$NP_GIVEN" -lt "$ranks" ] && ranks="$NP_GIVEN"
        np="$ranks"
        elastic_record "$run_dir" "$restarts" "$status" "$lost" "$np" "$attempt_log" "$failed_at_seconds" "${hosts_alive[@]}"
        rm -f "$attempt_log"
        args=("${restart_args[@]}")
    done
}

# elastic_record RUN_DIR K STATUS LOST NP LOG FAILED_AT HOSTS...: the restart's line and its record.
elastic_record() {
    local run_dir="$1" k="$2" status="$3" lost="$4" np="$5" log="$6" failed_at="$7"; shift 7
    local rp_file="" rp_lr_index=0 rp_epochs_done=0 rp_step_in_epoch=0 rp_steps_per_epoch=1 rp_epochs=1
    elastic_resume_point "$run_dir" || true
    [ "$rp_steps_per_epoch" -gt 0 ] || rp_steps_per_epoch=1
    local resume_step=$(( (rp_lr_index * rp_epochs + rp_epochs_done) * rp_steps_per_epoch + rp_step_in_epoch ))
    local point lost_steps="null" lost_text="steps lost unknown"
    point="$(elastic_failure_point "$log")"
    if [ -n "$point" ]; then
        read -r fl fe fs <<<"$point"
        local failed_step=$(( ((fl - 1) * rp_epochs + fe - 1) * rp_steps_per_epoch + fs - 1 ))
        lost_steps=$(( failed_step - resume_step ))
        lost_text="$lost_steps steps lost"
    fi
    local seconds
    seconds="$(awk -v a="$failed_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
    echo "train.sh: restart $k of $MAX_RESTARTS: lost ${lost:-a rank} (exit $status); $np ranks on $*; resuming from lr $((rp_lr_index + 1)) epoch $((rp_epochs_done + 1)) step $rp_step_in_epoch (${rp_file##*/}); $lost_text" >&2
    local hosts_json lost_json
    hosts_json="$(printf '"%s",' "$@" | sed 's/,$//')"
    lost_json="$(for h in $lost; do printf '"%s",' "$h"; done | sed 's/,$//')"
    printf '{"restart":%d,"max_restarts":%d,"exit_status":%d,"lost_hosts":[%s],"hosts":[%s],"ranks":%d,"resume_lr_index":%d,"resume_epochs_done":%d,"resume_step_in_epoch":%d,"resume_checkpoint":"%s","steps_lost":%s,"seconds_to_relaunch":%s}\n' \
        "$k" "$MAX_RESTARTS" "$status" "$lost_json" "$hosts_json" "$np" "$rp_lr_index" "$rp_epochs_done" "$rp_step_in_epoch" "${rp_file##*/}" "$lost_steps" "$seconds" \
        >>"$run_dir/restarts.jsonl"
}
