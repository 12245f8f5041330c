#!/usr/bin/env bash
# Create or update a virtual environment from a pinned requirements file, quickly when nothing changed.
#
# The stamp (VENV/.requirements.sha256) is keyed on the content of the requirements file, not on its
# modification time: an unchanged file costs one hash and returns; a changed file re-runs pip over
# the existing venv. A venv whose interpreter no longer runs (its base Python went away) is rebuilt.
#
# Usage: scripts/ensure-venv.sh VENV REQUIREMENTS [PYTHON]   (PYTHON: base interpreter, default python3)
set -euo pipefail

venv=${1:?usage: $0 VENV REQUIREMENTS [PYTHON]}
requirements=${2:?usage: $0 VENV REQUIREMENTS [PYTHON]}
python=${3:-python3}
stamp=$venv/.requirements.sha256

key=$(sha256sum "$requirements" | cut -d' ' -f1)

if "$venv/bin/python" -c '' 2>/dev/null; then
    if [[ -f $stamp && $(<"$stamp") == "$key" ]]; then
        exit 0
    fi
else
    if ! command -v "$python" >/dev/null; then
        echo "error: $python not found; install python3 and python3-venv (make os-deps)" >&2
        exit 1
    fi
    echo "Creating $venv with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

echo "Installing $requirements into $venv"
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --require-virtualenv --disable-pip-version-check -r "$requirements"
echo "$key" > "$stamp"
