#!/usr/bin/env bash
# Install the Debian/Ubuntu packages that the tests need, when some are missing.
#
# - Does nothing (and runs no apt) when every package is installed already, so repeated runs are fast.
# - Installs without starting daemons: Debian's nginx/apache2 postinst would start them on port 80.
#   A temporary /usr/sbin/policy-rc.d that answers 101 ("action forbidden") stops that; it is only
#   written when none exists (an existing policy is left alone) and is removed afterwards.
# - Never stops or restarts anything that is running.
#
# Usage: scripts/install-os-packages.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
    if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null) != ii* ]]; then
        missing+=("$package")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "Installing missing system packages: ${missing[*]}"

if ! command -v apt-get >/dev/null; then
    echo "error: apt-get not found; install these packages by hand: ${missing[*]}" >&2
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "error: installing packages needs root; run as root or install: ${missing[*]}" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# temporary, from ocsp.stapling scripts/install-os-packages.sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -q -y --no-install-recommends "${missing[@]}"
