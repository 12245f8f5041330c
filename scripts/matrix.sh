#!/usr/bin/env bash
# The version matrix (issue 15, items 1 and 2): each supported ansible-core line in a venv of its own, and the
# code that runs on managed hosts under every Python from 3.8 to 3.13.
#
# A job per ansible-core LINE (2.17 ... 2.21), on the Python of LINE_PYTHON below, in .venv-matrix/LINE made by
# scripts/ensure-venv.sh from tests/matrix/requirements-LINE.txt (the latest patch pinned; rebuilt only when
# that file changes), runs these stages:
#   sanity        ansible-test sanity, every test, with no ignore entries, on a copy of the files git sees, of
#                 all but tests/ and benchmarks/ (which `make sanity` checks; see sanity() below)
#   units         the unit tests whose outcome can change with ansible-core: those that import ansible or a
#                 plugin beyond module_utils (tests/matrix/matrix_selection.py reads it from their imports)
#   docs          ansible-doc of every plugin and role (scripts/check-docs.sh)
#   main-job      the demo's main job on the bench: enable, idempotent rerun, verify (tests/matrix/main_job.py)
#   host-modules  ocsp.stapling.server_info on every pyenv Python this ansible-core supports on managed hosts,
#                 and a clear refusal on every older one (tests/matrix/host_modules.py)
# The job `hosts` runs the unit tests of the managed-host code that need only the standard library under each
# pyenv Python from 3.8 to 3.13, in .venv-matrix/host-X.Y (pytest and PyYAML only: requirements-host.txt).
#
# Shared, not repeated per line: the rest of tests/unit (cryptography, the bench) does not depend on the
# ansible-core version and runs in `make unit`; the integration tests run once, in `make integration`.
# Downloads are cached by pip and ansible-test (~/.cache/pip, ~/.ansible/test); venvs stay until their
# requirements change. Jobs run MATRIX_JOBS at a time (default 2, the cores of CI): every venv and
# ansible-test's pip bootstrap are made first, one after the other, so that no two jobs download the same file.
#
# Usage: scripts/matrix.sh [JOB...]     JOB: 2.17 2.18 2.19 2.20 2.21 hosts (default: all of them)
# Environment: MATRIX_JOBS, PYENV_ROOT (default: `pyenv root`, else ~/.pyenv), ANSIBLE_COLLECTIONS_PATH (a
# path holding ansible_collections/ocsp/stapling -> this repository and its dependencies: `make collections`).
# Logs and timings: .build/matrix/logs/JOB.log and .build/matrix/summary.txt.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

# The Python of each line: one the line supports as a controller (2.20+ need 3.12+), spread over 3.10-3.13.
# 2.19 uses 3.11, the Python of .venv, so that its sanity shares ansible-test's venvs with `make sanity`.
declare -A LINE_PYTHON=([2.17]=3.10 [2.18]=3.12 [2.19]=3.11 [2.20]=3.12 [2.21]=3.13)
LINES=(2.17 2.18 2.19 2.20 2.21)
HOST_PYTHONS=(3.8 3.9 3.10 3.11 3.12 3.13)

jobs=("$@")
((${#jobs[@]})) || jobs=("${LINES[@]}" hosts)
parallel=${MATRIX_JOBS:-2}
out=$root/.build/matrix
logs=$out/logs
pyenv_root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
collections=${ANSIBLE_COLLECTIONS_PATH:-$root/.build/collections}
export PIP_DISABLE_PIP_VERSION_CHECK=1 ANSIBLE_COLLECTIONS_PATH=$collections

die() { echo "matrix: error: $*" >&2; exit 2; }
since() { awk -v now="$EPOCHREALTIME" -v start="$1" 'BEGIN { printf "%.0f", now - start }'; }

for job in "${jobs[@]}"; do
    [[ $job == hosts || -n ${LINE_PYTHON[$job]:-} ]] || die "unknown job '$job' (known: ${LINES[*]} hosts)"
done

# The newest installed patch of pyenv's Python X.Y.
pyenv_python() {
    local version=$1 dir
    dir=$(compgen -G "$pyenv_root/versions/$version.*" | grep -E "/$version\.[0-9]+$" | sort -V | tail -n 1) || true
    [[ -n $dir && -x $dir/bin/python$version ]] || die "Python $version not found under $pyenv_root/versions (pyenv install $version)"
    echo "$dir/bin/python$version"
}

# Every pyenv Python 3.X, newest patch of each: the managed hosts of the host-modules stage, old ones included.
all_pyenv_pythons() {
    local version
    for version in $(compgen -G "$pyenv_root/versions/3.*" | sed -E 's|.*/(3\.[0-9]+)\.[0-9]+$|\1|' | sort -uV); do
        pyenv_python "$version"
    done
}

link=$collections/ansible_collections/ocsp/stapling
[[ -e $link && $(realpath "$link") == "$(realpath "$root")" ]] ||
    die "$link is not this repository: run \`make collections\` (or make matrix), or set ANSIBLE_COLLECTIONS_PATH"
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || die "the sanity copy is made from git's view of the files: run in a git checkout"

# Stage timings: clock before a stage, lap after it. `times` runs in this shell (a subshell's would count
# nothing), so the CPU seconds are those of everything the job has waited for (user + system).
clock() {
    t0=$EPOCHREALTIME
    times >"$out/.times.$BASHPID"
    { read -r _ _; read -r cpu0_user cpu0_system; } <"$out/.times.$BASHPID"
}

# lap JOB NAME STATUS: append "NAME ok|FAILED WALL CPU" to the job's timings file; STATUS out.
lap() {
    local user system
    times >"$out/.times.$BASHPID"
    { read -r _ _; read -r user system; } <"$out/.times.$BASHPID"
    printf '%s %s %s %s\n' "$2" "$([[ $3 -eq 0 ]] && echo ok || echo FAILED)" "$(since "$t0")" "$(awk -v now="$user $system" \
        -v then="$cpu0_user $cpu0_system" 'function s(t, p) { split(t, p, /[ms]/); return p[1] * 60 + p[2] }
        BEGIN { split(now, a, " "); split(then, b, " "); printf "%.0f", s(a[1]) + s(a[2]) - s(b[1]) - s(b[2]) }')" >>"$out/$1.times"
    return "$3"
}

# --- Preparation: venvs and ansible-test's pip bootstrap, one after the other ------------------------------

prepare_line() {
    local line=$1 python
    python=$(pyenv_python "${LINE_PYTHON[$line]}") || return 1
    scripts/ensure-venv.sh "$root/.venv-matrix/$line" "tests/matrix/requirements-$line.txt" "$python"
    scripts/seed-ansible-test-pip.sh "$root/.venv-matrix/$line/bin/python" "${LINE_PYTHON[$line]}"
}

prepare_hosts() {
    local version python
    for version in "${HOST_PYTHONS[@]}"; do
        python=$(pyenv_python "$version") || return 1
        scripts/ensure-venv.sh "$root/.venv-matrix/host-$version" tests/matrix/requirements-host.txt "$python" || return 1
    done
}

# --- Stages ------------------------------------------------------------------------------------------------

sanity() {
    local line=$1 venv=$root/.venv-matrix/$1 copy=$out/sanity-$1/ansible_collections/ocsp/stapling ignore
    ignore=tests/sanity/ignore-$line.txt
    if [[ -f $ignore ]] && grep -Hn '[^[:space:]]' "$ignore"; then
        echo "error: sanity ignore entries are not allowed (listed above); fix the findings instead" >&2
        return 1
    fi
    # The files ansible-test sees in a git checkout: tracked, and untracked but not ignored.
    # (A tracked file deleted in the working tree is left out, as ansible-test would not see it.)
    rm -rf "$copy" && mkdir -p "$copy" || return 1
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do [[ ! -e $file && ! -L $file ]] || printf '%s\0' "$file"; done |
        tar --null -T - -cf - | tar -xf - -C "$copy" || return 1
    # Each line checks what runs under the users' ansible-core: everything but tests/ and benchmarks/, whose code
    # only this repository's toolchain runs (`make sanity`, ansible-core 2.19, checks it; the units and main-job
    # stages run the test code each line needs). Measured on 2.17: pylint of the whole tree 67 CPU s, of this 27.
    mapfile -t targets < <(cd "$copy" && for entry in * .[!.]*; do
        [[ ! -e $entry || $entry == tests || $entry == benchmarks ]] || { [[ -d $entry ]] && echo "$entry/" || echo "$entry"; }
    done)
    # The content root is given: searching upwards from the copy, ansible-test would find this repository's .git.
    (cd "$copy" && PATH=$venv/bin:$PATH ANSIBLE_TEST_CONTENT_ROOT=$copy \
        ansible-test sanity --python "${LINE_PYTHON[$line]}" "${targets[@]}")
}

units() {
    PYTHONPATH=$root/tests/matrix:$collections "$root/.venv-matrix/$1/bin/python" -m pytest -q -p no:cacheprovider \
        -p matrix_selection --matrix-select=ansible tests/unit
}

docs() {
    scripts/check-docs.sh "$root/.venv-matrix/$1/bin/ansible-doc"
}

main_job() {
    PYTHONPATH=$root/tests "$root/.venv-matrix/$1/bin/python" tests/matrix/main_job.py
}

host_modules() {
    local pythons
    mapfile -t pythons < <(all_pyenv_pythons)
    PYTHONPATH=$root/tests:$collections "$root/.venv-matrix/$1/bin/python" tests/matrix/host_modules.py "${pythons[@]}"
}

host_units() {
    PYTHONPATH=$root/tests/matrix:$collections "$root/.venv-matrix/host-$1/bin/python" -m pytest -q -p no:cacheprovider \
        -p matrix_selection --matrix-select=host tests/unit
}

# A job's result goes to a file: `wait -n` in the scheduler may have reaped its process already.
# Every stage runs even when one before it failed; a stage's output goes to the job's log.
run_line() {
    local line=$1 log=$logs/$1.log failed=0 rc
    clock; rc=0; sanity "$line" >>"$log" 2>&1 || rc=$?; lap "$line" sanity "$rc" || failed=1
    clock; rc=0; units "$line" >>"$log" 2>&1 || rc=$?; lap "$line" units "$rc" || failed=1
    clock; rc=0; docs "$line" >>"$log" 2>&1 || rc=$?; lap "$line" docs "$rc" || failed=1
    clock; rc=0; main_job "$line" >>"$log" 2>&1 || rc=$?; lap "$line" main-job "$rc" || failed=1
    clock; rc=0; host_modules "$line" >>"$log" 2>&1 || rc=$?; lap "$line" host-modules "$rc" || failed=1
    echo "$failed" >"$out/$line.failed"
}

run_hosts() {
    local log=$logs/hosts.log failed=0 rc version
    for version in "${HOST_PYTHONS[@]}"; do
        clock; rc=0; host_units "$version" >>"$log" 2>&1 || rc=$?; lap hosts "units-$version" "$rc" || failed=1
    done
    echo "$failed" >"$out/hosts.failed"
}

# --- Main --------------------------------------------------------------------------------------------------

mkdir -p "$logs"
start=$EPOCHREALTIME
for job in "${jobs[@]}"; do
    rm -f "$logs/$job.log" "$out/$job.times" "$out/$job.failed"
    clock
    rc=0
    if [[ $job == hosts ]]; then
        prepare_hosts >>"$logs/$job.log" 2>&1 || rc=$?
    else
        prepare_line "$job" >>"$logs/$job.log" 2>&1 || rc=$?
    fi
    lap "$job" venv "$rc" || die "$job: the venv could not be made: $(tail -n 5 "$logs/$job.log")"
done

declare -A pids=() status=()
for job in "${jobs[@]}"; do
    while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
    echo "matrix: $job started"
    if [[ $job == hosts ]]; then run_hosts & else run_line "$job" & fi
    pids[$job]=$!
done
for job in "${jobs[@]}"; do
    wait "${pids[$job]}" || true
    if [[ $(cat "$out/$job.failed" 2>/dev/null) == 0 ]]; then status[$job]=passed; else status[$job]=FAILED; fi
    echo "matrix: $job ${status[$job]}"
done

# The summary: a row per job, a column per stage (wall seconds / CPU seconds), slowest stages visible at once.
{
    printf 'matrix: %s, %d jobs at once, %s s in all (load average at the end: %s)\n' "$(date -u +%FT%TZ)" \
        "$parallel" "$(since "$start")" "$(cut -d' ' -f1-3 /proc/loadavg)"
    for job in "${jobs[@]}"; do
        if [[ $job == hosts ]]; then label="hosts (stdlib unit tests)"; else
            label="ansible-core $(sed -n 's/^ansible-core==//p' "tests/matrix/requirements-$job.txt") on Python ${LINE_PYTHON[$job]}"
        fi
        printf '  %-6s %-7s %-36s' "$job" "${status[$job]}" "$label"
        while read -r name result wall cpu; do
            printf ' %s %s/%ss%s' "$name" "$wall" "$cpu" "$([[ $result == ok ]] || echo ' FAILED')"
        done <"$out/$job.times"
        echo
    done
    echo "  (each stage: wall seconds/CPU seconds)"
} | tee "$out/summary.txt"

failed=0
for job in "${jobs[@]}"; do
    if [[ ${status[$job]} != passed ]]; then
        failed=1
        echo "--- $job failed; the end of $logs/$job.log:"
        grep -v '^WARNING: Location' "$logs/$job.log" | tail -n 60
    fi
done
exit "$failed"
