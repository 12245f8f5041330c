"""Write the execution-environment definition that scripts/ee-check.sh builds: the example, with overrides.

The example (execution-environment.yml at the collection's root) is what users build: a CentOS Stream
base from a registry, dnf, and the collection from its git URL with ansible.windows from Galaxy. These
machines reach no container registry and no Galaxy, so the check builds the same definition with the
few keys below replaced, and prints each one with its reason: that list is the whole difference
between a user's build and the one tested here (docs/execution-environment.md says the same).
Every other key (schema version, ansible-core, ansible-runner, the collection's own requirements
found by introspection) goes through untouched. A key the example no longer has is an error, so
that the two cannot drift apart unseen.

    python tests/ee/ci_definition.py EXAMPLE OUTPUT BASE_IMAGE COLLECTION_TARBALL DEPENDENCY_DIR
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

# Where the galaxy stage finds what additional_build_files puts into the build context.
CONTEXT = "/build/collections"


def overrides(base_image: str, tarball: Path, dependency: Path) -> list:
    """(path of keys, new value or None to remove, reason) for each difference from the example."""
    return [
        (("images", "base_image", "name"), base_image,
         "no container registry here: the base is built from Debian's packages (tests/ee/base.Containerfile)"),
        (("dependencies", "python_interpreter"), {"package_system": "python3", "python_path": "/usr/bin/python3"},
         "Debian's Python (3.11 on bookworm) instead of CentOS Stream's python3.12"),
        (("options", "skip_pip_install"), True,
         "Debian disables ensurepip for its system Python, which ansible-builder runs to get pip: the base has python3-pip"),
        (("options", "package_manager_path"), "/usr/bin/apt-get",
         "Debian's package manager: ansible-builder's scripts run it for bindep.txt as they run dnf"),
        (("dependencies", "galaxy"), {"collections": [
            {"name": "%s/%s" % (CONTEXT, tarball.name), "type": "file"},
            {"name": "%s/ansible.windows" % CONTEXT, "type": "dir"}]},
         "no Galaxy here: this working tree's tarball instead of the git URL, ansible.windows from PyPI's ansible package"),
        (("additional_build_files",), [
            {"src": str(tarball), "dest": "collections"},
            {"src": str(dependency), "dest": "collections/ansible.windows"}],
         "puts the tarball and ansible.windows into the build context"),
        (("build_arg_defaults", "ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"), "--offline",
         "ansible-galaxy must not ask Galaxy for the dependency it is handed"),
        (("additional_build_steps", "prepend_galaxy"), None,
         "no git clone, so no git in the galaxy stage (the example installs git-core with dnf)"),
    ]


def apply(definition: dict, keys: tuple, value) -> None:
    """Set (or, for None, remove) definition[keys...]; the parents of a new key are created."""
    parent = definition
    for key in keys[:-1]:
        parent = parent.setdefault(key, {})
    if value is None:
        del parent[keys[-1]]
        if not parent:
            del definition[keys[0]]
    else:
        parent[keys[-1]] = value


def main(argv: list) -> int:
    if len(argv) != 6:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    example, output, base_image, tarball, dependency = argv[1], Path(argv[2]), argv[3], Path(argv[4]), Path(argv[5])
    with open(example, encoding="utf-8") as stream:
        definition = yaml.safe_load(stream)
    derived = copy.deepcopy(definition)
    # The keys the example must have for each override to mean what its reason says.
    expected = {("images", "base_image", "name"), ("dependencies", "python_interpreter"), ("dependencies", "galaxy"),
                ("additional_build_steps", "prepend_galaxy")}
    for keys, value, reason in overrides(base_image, tarball.resolve(), dependency.resolve()):
        if keys in expected and not _has(definition, keys):
            print("%s: %s is gone from the example; update tests/ee/ci_definition.py so that the check builds what users build"
                  % (example, ".".join(keys)), file=sys.stderr)
            return 1
        apply(derived, keys, value)
        print("ee-check: %s: %s" % (".".join(keys), reason))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("---\n# Written by tests/ee/ci_definition.py from %s; do not edit.\n%s"
                      % (example, yaml.safe_dump(derived, sort_keys=False)), encoding="utf-8")
    return 0


def _has(definition: dict, keys: tuple) -> bool:
    node = definition
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv))
