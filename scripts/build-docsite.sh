#!/usr/bin/env bash
# Build the HTML documentation site of the collection into .build/docsite/html, from the collection's
# own documentation (DOCUMENTATION/RETURN of modules and plugins, role argument specs,
# docs/docsite/links.yml), the way Ansible's collection docs are built, and fail on any broken reference.
#
# 1. antsibull-docs lint-collection-docs: every reference in the docs (M(), P(), R(), O(), RV() ...)
#    names something that exists, in this collection, in ansible.builtin or in a collection this one
#    depends on (ansible.windows), checked against the installed collections;
# 2. antsibull-docs collection: one RST page per plugin and role, plus the indexes; any documentation it
#    cannot parse fails the build (--fail-on-error) instead of becoming an error page;
# 3. sphinx-build -n -W: every cross-reference between the pages resolves, every warning is an error
#    (references into Ansible's own site, proven by step 1, are linked by docs/sphinx/conf.py).
#
# Needs ANSIBLE_COLLECTIONS_PATH to hold this collection and its dependencies (the Makefile exports it).
# Takes about 20 s of CPU (most of it ansible-doc, run by both antsibull-docs steps); 50 to 80 s
# on the 2-core CI machine while other jobs run.
#
# Usage: scripts/build-docsite.sh [BIN]   (BIN: folder of antsibull-docs and sphinx-build; default: from PATH)
set -euo pipefail

cd "$(dirname "$0")/.."
bin=${1:+$1/}
collection=$(sed -n -e 's/^namespace: *//p' galaxy.yml).$(sed -n -e 's/^name: *//p' galaxy.yml)
out=.build/docsite
rst=$out/rst

# The linter copies each collection it loads with `git ls-files` when the collection sits in a git work
# tree: .build/collections (the dependencies) is inside this one and ignored by it, so it would be
# copied empty. Git is kept from looking above .build for the dependencies; this repository is found as before.
GIT_CEILING_DIRECTORIES=$PWD/.build "${bin}antsibull-docs" lint-collection-docs --plugin-docs \
    --validate-collection-refs dependent --disallow-unknown-collection-refs --skip-rstcheck .

mkdir -p "$rst"
# antsibull-docs refuses a destination that others can write to.
chmod og-w "$rst"
"${bin}antsibull-docs" --config-file docs/sphinx/antsibull-docs.cfg collection --use-current --squash-hierarchy \
    --fail-on-error --cleanup everything --dest-dir "$rst" "$collection"

rm -rf "$out/html"
"${bin}sphinx-build" -b html -n -W --keep-going -q -c docs/sphinx "$rst" "$out/html"
echo "docsite: $(find "$out/html" -maxdepth 1 -name '*.html' | wc -l) pages in $out/html (open $out/html/index.html)"
