#!/usr/bin/env bash
# Check that ansible-doc renders documentation for every module and plugin of the collection.
#
# Plugins are discovered from the files under plugins/ (nothing is listed by hand). ansible-doc exits 0
# with empty output when it cannot find a plugin, so empty output counts as a failure here.
# Needs ANSIBLE_COLLECTIONS_PATH to hold this collection (the Makefile exports it).
#
# Usage: scripts/check-docs.sh [ANSIBLE_DOC]   (default: ansible-doc from PATH)
set -euo pipefail

cd "$(dirname "$0")/.."
ansible_doc=${1:-ansible-doc}
collection=$(sed -n -e 's/^namespace: *//p' galaxy.yml).$(sed -n -e 's/^name: *//p' galaxy.yml)

checked=0
failed=0

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

check() {
    local type=$1 name=$2 output line
    local args=("$collection.$name")
    [[ $type == module ]] || args=(-t "$type" "$collection.$name")
    # Only standard output counts: for a plugin it cannot find, ansible-doc warns on standard error
    # and exits 0.
    if output=$(ANSIBLE_NOCOLOR=1 "$ansible_doc" "${args[@]}" 2>"$errors") && [[ -n $output ]]; then
        echo "ok: ansible-doc ${args[*]} ($(wc -l <<<"$output") lines)"
    else
        echo "FAILED: ansible-doc ${args[*]} (exit code or empty output)"
        while IFS= read -r line; do echo "    $line"; done < <([[ -z $output ]] || printf '%s\n' "$output"; cat "$errors")
        failed=$((failed + 1))
    fi
    checked=$((checked + 1))
}

shopt -s nullglob
for dir in plugins/*/; do
    dir=${dir%/}
    kind=${dir#plugins/}
    case $kind in
        # Not plugins that ansible-doc documents: shared code, doc fragments, and action plugins
        # (which share their module's documentation).
        module_utils | plugin_utils | doc_fragments | action | terminal) continue ;;
        modules) type=module ;;
        *) type=$kind ;;
    esac

    names=()
    for file in "$dir"/*.py "$dir"/*.ps1 "$dir"/*.yml "$dir"/*.yaml; do
        base=${file##*/}
        [[ $base != __init__.py ]] || continue
        # Filter and test plugin files may hold several plugins documented in <name>.yml files;
        # such a .py file is only a plugin name of its own when it carries its own DOCUMENTATION.
        if [[ ($type == filter || $type == test) && $base == *.py ]] && ! grep -q '^DOCUMENTATION' "$file"; then
            continue
        fi
        names+=("${base%.*}")
    done

    # A Windows module is a .ps1 with its documentation in a .py or .yml beside it: check it once.
    while read -r name; do
        [[ -z $name ]] || check "$type" "$name"
    done < <(printf '%s\n' "${names[@]}" | sort -u)
done

# Roles that declare their arguments are documented too.
for spec in roles/*/meta/argument_specs.yml roles/*/meta/argument_specs.yaml; do
    role=${spec#roles/}
    check role "${role%%/*}"
done

echo "docs: $checked checked, $failed failed"
[[ $checked -gt 0 ]] || echo "warning: no documented plugins found under plugins/"
[[ $failed -eq 0 ]]
