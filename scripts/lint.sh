#!/usr/bin/env bash
# lint.sh: the repository's static checks; scripts/test.sh (and so CI) runs them after setup.
#
#   scripts/lint.sh            # every check
#   scripts/lint.sh shell      # only the named checks
#
# Checks (each is a function check_NAME listed in CHECKS; to add one, write the function, which
# prints its findings and returns non-zero on any, and add its name to CHECKS):
#   shell   shellcheck (every severity, sources followed) on every shell script of the repository:
#           *.sh, *.sbatch, .ci/run and any other file whose first line runs sh or bash. shellcheck
#           is installed with apt-get when missing. A finding is fixed in the script; a
#           `# shellcheck disable=SCxxxx` is only for code that is right, with the reason beside it.
#   functions  no Swift function in Sources/ longer than 60 lines (scripts/function_lengths.py).
# Exit 0 when every check passes, 1 when any finds something, 2 on a bad argument.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECKS=(shell functions)

say() { printf '[lint] %s\n' "$*" >&2; }

# The repository's files (tracked, and new ones not ignored), NUL-separated, relative to ROOT.
repository_files() {
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$ROOT" ls-files -z --cached --others --exclude-standard
    else
        (cd "$ROOT" && find . -path ./.build -prune -o -path ./.git -prune -o -type f -printf '%P\0')
    fi
}

# The shell scripts among them, one path a line (absolute).
shell_scripts() {
    local f first
    while IFS= read -r -d '' f; do
        [ -f "$ROOT/$f" ] || continue   # deleted in the work tree but still tracked
        case "$f" in
            *.sh | *.sbatch | .ci/run) printf '%s\n' "$ROOT/$f"; continue ;;
        esac
        IFS= read -r first <"$ROOT/$f" 2>/dev/null || continue
        if [[ "$first" =~ ^\#!.*(/|[[:space:]])(ba)?sh([[:space:]]|$) ]]; then printf '%s\n' "$ROOT/$f"; fi
    done < <(repository_files)
}

ensure_shellcheck() {
    command -v shellcheck >/dev/null 2>&1 && return 0
    if command -v apt-get >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        say "installing shellcheck"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
    fi
    command -v shellcheck >/dev/null 2>&1 || { say "shellcheck not found: install it (apt-get install shellcheck, brew install shellcheck)"; return 1; }
}

check_shell() {
    ensure_shellcheck || return 1
    local scripts
    mapfile -t scripts < <(shell_scripts)
    [ ${#scripts[@]} -gt 0 ] || { say "shell: no shell scripts found under $ROOT"; return 1; }
    # --external-sources follows `source` lines; each script names what it sources with a
    # `# shellcheck source=FILE` directive, resolved against the script's own directory.
    if (cd "$ROOT" && shellcheck --external-sources --source-path=SCRIPTDIR --severity=style "${scripts[@]}"); then
        say "shell: ${#scripts[@]} scripts, no findings (shellcheck $(shellcheck --version | sed -n 's/^version: //p'))"
    else
        say "shell: shellcheck found problems (above)"
        return 1
    fi
}

check_functions() {
    if python3 "$ROOT/scripts/function_lengths.py" --limit 60 "$ROOT/Sources"; then
        say "functions: no function in Sources/ over 60 lines"
    else
        say "functions: split the functions above (scripts/function_lengths.py)"
        return 1
    fi
}

main() {
    local wanted=("$@") check failed=()
    [ ${#wanted[@]} -gt 0 ] || wanted=("${CHECKS[@]}")
    case "${1:-}" in
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    esac
    for check in "${wanted[@]}"; do
        [[ " ${CHECKS[*]} " == *" $check "* ]] || { say "unknown check '$check' (checks: ${CHECKS[*]})"; exit 2; }
    done
    for check in "${wanted[@]}"; do
        "check_$check" || failed+=("$check")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        say "failed: ${failed[*]}"
        exit 1
    fi
}

main "$@"
