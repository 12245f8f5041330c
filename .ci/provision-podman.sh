#!/usr/bin/env bash
# CI provisioning for the Molecule scenarios: podman on a Debian 12 machine without systemd.
#
# This is about the CI machines, not about what users run (users keep their docker or podman as
# it is). Measured on these machines (shared/docs/ENVIRONMENT.md):
# - crun fails on their hybrid cgroup set-up, so podman runs with runc and cgroupfs;
# - raising rlimits is not permitted, so containers get limits at or under the current ones.
# Idempotent: installs only missing packages and writes containers.conf only when it differs.
set -euo pipefail

packages=(podman runc debootstrap uidmap)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$package")
done
if ((${#missing[@]})); then
    echo "provision-podman: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf
wanted='# Written by ocsp.stapling .ci/provision-podman.sh (CI machines only).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
'
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$(printf '%s' "$wanted")" ]]; then
    mkdir -p "$(dirname "$conf")"
    [[ -f $conf ]] && cp -p "$conf" "$conf.before-ocsp-stapling"
    printf '%s' "$wanted" >"$conf"
    echo "provision-podman: wrote $conf"
fi
podman --version
