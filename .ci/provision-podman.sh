#!/usr/bin/env bash
# CI provisioning for the Molecule scenarios: podman on a Debian 12 machine without systemd.
#
# This is about the CI machines, not about what users run (users keep their docker or podman as
# it is). Measured on these machines (shared/docs/ENVIRONMENT.md):
# - crun fails on their hybrid cgroup set-up, so podman runs with runc and cgroupfs;
# - raising rlimits is not permitted, so containers get limits at or under the current ones.
# Idempotent: installs only missing packages and writes containers.conf only when it differs.
set -euo pipefail

# openssh-client: the execution-environment check (scripts/ee-check.sh) reaches its managed host over SSH.
packages=(podman runc debootstrap uidmap openssh-client)
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
default_ulimits = ["nofile=1024:1024", "nproc=8192:8192"]

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
# nproc counts every process of the user on the whole machine: 1024 starved Apache's worker threads (www-data)
# in the containers when other jobs ran (AH00480), so the limit is 8192.
# ansible-navigator runs podman containers with the host's IPC namespace, which needs this folder.
[[ -d /dev/mqueue ]] || mkdir /dev/mqueue
podman --version
