#!/usr/bin/env bash
# Build the local image a Molecule platform runs on, from Debian's own packages, unless it exists.
#
# These machines reach Debian's package mirror but no container registry, so images are made with
# debootstrap and imported into podman. podman keeps them, so later runs on the same machine cost
# one `podman image exists`. Users with a registry keep the public images (molecule/README.md).
#
# Usage: scripts/build-molecule-image.sh SUITE [IMAGE]   e.g. bookworm localhost/ocsp-stapling-debian:bookworm
set -euo pipefail

suite=${1:?usage: $0 SUITE [IMAGE]}
image=${2:-localhost/ocsp-stapling-debian:$suite}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the scenarios' hosts start with: Python for Ansible, the two servers as Debian ships them,
# and openssl; everything else (sites, certificates, ports) is the scenario's prepare step.
packages=python3,nginx,apache2,openssl,ca-certificates

if podman image exists "$image"; then
    exit 0
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/ocsp-stapling-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "build-molecule-image: debootstrap $suite into $root (about a minute)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
    tail -20 "$root.log" >&2
    echo "build-molecule-image: debootstrap of $suite from $mirror failed (log above);" \
        "set DEBIAN_MIRROR to a mirror that still carries $suite (e.g. http://archive.debian.org/debian)" >&2
    rm -f "$root.log"
    exit 1
fi
rm -f "$root.log"
# Keep the image small and free of this machine's traces; the package lists go, apt can refetch.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
tar -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "build-molecule-image: $image ready in $((SECONDS - start)) s"
