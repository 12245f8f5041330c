#!/usr/bin/env bash
# Run one pytest gate (unit, integration, ...) and summarise the gates afterwards.
#
#   scripts/pytest-gate.sh run NAME DIR [PYTEST_ARGS...]
#       Runs `python -m pytest DIR` from the repository root (pytest-ansible needs that) and writes a
#       JUnit report to .build/pytest/NAME.xml. A gate that collects nothing (pytest exit code 5, or
#       DIR missing) passes on its own but leaves .build/pytest/NAME.empty behind.
#   scripts/pytest-gate.sh summary NAME...
#       Fails when every named gate collected nothing; otherwise prints one closing line
#       "pytest: N passed, N failed, N skipped" for all of them together.
#
# PYTHON (environment) is the interpreter with pytest installed; default: .venv/bin/python.
set -euo pipefail

cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=.build/pytest

# pytest-ansible builds collections/ansible_collections/<ns>/<name>/ once, as absolute symlinks to each
# top-level entry of the repository, and never updates it: a tree made before a new top-level folder
# existed, or in a copy of the repository made elsewhere, would hide code or test the wrong one.
# Drop such a stale tree so that pytest-ansible rebuilds it.
refresh_collection_tree() {
    local tree entry namespace collection
    namespace=$(sed -n -e 's/^namespace: *//p' galaxy.yml)
    collection=$(sed -n -e 's/^name: *//p' galaxy.yml)
    tree=collections/ansible_collections/$namespace/$collection
    [[ -d $tree ]] || return 0
    for entry in * .[!.]*; do
        [[ -e $entry && $entry != collections ]] || continue
        if [[ $(readlink "$tree/$entry") != "$PWD/$entry" ]]; then
            echo "Rebuilding pytest-ansible's stale collections/ tree ($entry)"
            rm -rf collections
            return 0
        fi
    done
}

run() {
    local name=${1:?NAME} dir=${2:?DIR}
    shift 2
    refresh_collection_tree
    mkdir -p "$out"
    rm -f "$out/$name.xml" "$out/$name.empty"

    if [[ ! -d $dir ]]; then
        echo "$name: $dir does not exist; no tests collected"
        touch "$out/$name.empty"
        return 0
    fi

    local rc=0
    "$python" -m pytest --junitxml="$out/$name.xml" "$dir" "$@" || rc=$?
    if [[ $rc -eq 5 ]]; then
        echo "$name: no tests collected in $dir"
        touch "$out/$name.empty"
        return 0
    fi
    return "$rc"
}

summary() {
    local name reports=() all_empty=1
    for name in "$@"; do
        [[ -e $out/$name.empty ]] || all_empty=0
        [[ -e $out/$name.xml ]] && reports+=("$out/$name.xml")
    done
    if [[ $all_empty -eq 1 ]]; then
        echo "error: no tests collected by any pytest gate ($*)" >&2
        return 5
    fi
    "$python" - "${reports[@]}" <<'PY'
import sys
import xml.etree.ElementTree as ET

totals = dict(tests=0, failures=0, errors=0, skipped=0)
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    for suite in root.iter('testsuite'):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
failed = totals['failures'] + totals['errors']
passed = totals['tests'] - failed - totals['skipped']
print('pytest: %d passed, %d failed, %d skipped' % (passed, failed, totals['skipped']))
sys.exit(1 if failed else 0)
PY
}

case ${1:-} in
    run) shift; run "$@" ;;
    summary) shift; summary "$@" ;;
    *) echo "usage: $0 run NAME DIR [PYTEST_ARGS...] | summary NAME..." >&2; exit 2 ;;
esac
