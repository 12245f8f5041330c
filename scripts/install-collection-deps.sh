#!/usr/bin/env bash
# Put the collections this one depends on (galaxy.yml `dependencies`) into the collections path.
#
# Ansible Galaxy is not reachable from these machines; the same collections ship inside PyPI's
# `ansible` package. Its wheel is downloaded once (pinned, cached under .build/cache) and only the
# needed collection folders are unpacked, which takes about a second.
#
# Usage: scripts/install-collection-deps.sh PYTHON COLLECTIONS_DIR
set -euo pipefail

python=${1:?usage: $0 PYTHON COLLECTIONS_DIR}
collections=${2:?usage: $0 PYTHON COLLECTIONS_DIR}
ansible_release=12.3.0
# containers.podman: the connection plugin of the Molecule scenarios when they run on podman.
wanted=(ansible/windows containers/podman)
cache=.build/cache
wheel=$cache/ansible-$ansible_release-py3-none-any.whl

missing=()
for name in "${wanted[@]}"; do
    [[ -f $collections/ansible_collections/$name/MANIFEST.json ]] || missing+=("$name")
done
((${#missing[@]})) || exit 0

if [[ ! -f $wheel ]]; then
    mkdir -p "$cache"
    "$python" -m pip download --quiet --no-deps --dest "$cache" "ansible==$ansible_release"
fi
for name in "${missing[@]}"; do
    "$python" - "$wheel" "$collections" "$name" <<'PY'
import sys
import zipfile

wheel, target, name = sys.argv[1:]
prefix = "ansible_collections/%s/" % name
with zipfile.ZipFile(wheel) as archive:
    members = [member for member in archive.namelist() if member.startswith(prefix)]
    archive.extractall(target, members)
print("collection %s: %d files from the ansible wheel" % (name.replace("/", "."), len(members)))
PY
done
