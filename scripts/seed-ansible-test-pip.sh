#!/usr/bin/env bash
# Seed ansible-test's pip bootstrap cache so that `ansible-test sanity` works without its download host.
#
# ansible-test builds a fresh virtual environment for each sanity test and bootstraps pip into it with
# a get-pip script that it downloads from a host these machines cannot reach; a copy already in
# ~/.ansible/test/cache/get_pip_<version with underscores>.py is used instead. This script asks the
# installed ansible-test which pip version it wants, downloads that pip wheel from PyPI next to the
# cache file, and writes a small stand-in get-pip script that installs the wheel.
#
# Idempotent: does nothing once seeded; never replaces a bootstrap script it did not write.
#
# Usage: scripts/seed-ansible-test-pip.sh PYTHON [PYTHON_VERSION]
#   PYTHON          the interpreter that runs ansible-test (e.g. .venv/bin/python)
#   PYTHON_VERSION  the --python version given to ansible-test (default: PYTHON's own X.Y)
set -euo pipefail

python=${1:?usage: $0 PYTHON [PYTHON_VERSION]}
python_version=${2:-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
cache=$HOME/.ansible/test/cache
marker='written by ocsp.stapling scripts/seed-ansible-test-pip.sh'

# The version comes from ansible-test itself, so an ansible-core upgrade picks the new file name.
pip_version=$("$python" - "$python_version" <<'PY'
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages

print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))['pip'])
PY
)

script=$cache/get_pip_${pip_version//./_}.py
wheel=$cache/pip-$pip_version-py3-none-any.whl

if [[ -s $script ]] && ! grep -qF "$marker" "$script"; then
    exit 0  # a real bootstrap script is there already (e.g. downloaded on a machine that can)
fi

mkdir -p "$cache"

if [[ ! -s $wheel ]]; then
    echo "Seeding ansible-test: downloading pip $pip_version into $cache"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "$cache" "pip==$pip_version"
    [[ -s $wheel ]] || { echo "error: pip download did not produce $wheel" >&2; exit 1; }
fi

if [[ ! -s $script ]]; then
    echo "Seeding ansible-test: writing $script"
    cat > "$script.tmp" <<PY
"""Stand-in for ansible-test's get-pip script, $marker.

ansible-test runs it inside an empty virtual environment as
``python -m get_pip_X_Y [pip options] pip==$pip_version --no-setuptools --no-wheel``;
it installs pip from the wheel beside this file, as the real get-pip script does.
"""
import os
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), '${wheel##*/}')


def main():
    # --no-setuptools and --no-wheel are get-pip options that pip itself does not know;
    # the pip requirement is served from the local wheel.
    args = [WHEEL if arg.startswith('pip==') else arg
            for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    sys.path.insert(0, WHEEL)
    from pip._internal.cli.main import main as pip_main
    sys.exit(pip_main(['install', '--upgrade', '--force-reinstall'] + args))


if __name__ == '__main__':
    main()
PY
    mv "$script.tmp" "$script"
fi
