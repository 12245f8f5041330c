#!/usr/bin/env bash
# The execution-environment check: build the example execution environment (execution-environment.yml)
# with ansible-builder and podman, then run the collection's main job from inside it, as AWX does,
# against a managed host it reaches over SSH.
#
#   1. .venv-ee/ with ansible-builder and ansible-navigator (tests/ee/requirements.txt);
#   2. the images, each built once and then taken from podman's cache: the Debian image of the
#      Molecule scenarios, the EE base on it (tests/ee/base.Containerfile; no registry is reachable,
#      so users' base images cannot be pulled) and the managed host with sshd (tests/ee/host.Containerfile);
#   3. the collection's tarball from this working tree, the definition derived from the example
#      (tests/ee/ci_definition.py prints every difference and why), `ansible-builder create`, then
#      `podman build` of that build context: ansible-builder's introspection must find
#      meta/execution-environment.yml and install cryptography, pyOpenSSL and ca-certificates;
#   4. the managed host container on the host's network, sshd on 127.0.0.1, and its TLS sites set up by
#      the Molecule scenarios' own prepare playbook (bench PKI and OCSP responder on this machine's loopback);
#   5. `ansible-navigator run` inside the EE: ocsp.stapling.enable, again (nothing may change), then
#      ocsp.stapling.verify, all from the collection installed in the image.
# Everything it starts (the host container, the bench responder) is stopped on exit, by name and pid.
# Needs: podman and debootstrap (CI: .ci/provision-podman.sh) and `make collections` (.venv, ansible.windows).
#
# Usage: scripts/ee-check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

suite=bookworm
debian_image=localhost/ocsp-stapling-debian:$suite
base_image=localhost/ocsp-stapling-ee-base:$suite
host_image=localhost/ocsp-stapling-ee-host:$suite
ee_image=localhost/ocsp-stapling-ee:check
host_container=ocsp-stapling-ee-host
# Loopback ports of this check (sshd, the nginx site, the Apache site), apart from the Molecule
# scenarios' (24401-24402, 24511-24532); prepare refuses a site port that is in use.
ssh_port=24622
nginx_port=24611
apache_port=24612
work=$root/.build/ee
project=$work/project
python=$root/.venv/bin/python
dependency=$root/.build/collections/ansible_collections/ansible/windows
venv=$root/.venv-ee

step() {
    local name=$1 start=$SECONDS
    shift
    echo "=== ee-check: $name"
    "$@"
    echo "=== ee-check: $name done in $((SECONDS - start)) s"
}

fail() {
    echo "ee-check: $*" >&2
    exit 1
}

for tool in podman debootstrap ssh ssh-keygen; do
    command -v "$tool" >/dev/null || fail "$tool is missing: install podman, debootstrap and openssh-client (CI: bash .ci/provision-podman.sh)"
done
# ansible-runner starts the EE with the host's IPC namespace under podman, which needs this folder.
[[ -d /dev/mqueue ]] || fail "/dev/mqueue is missing, which ansible-navigator needs with podman: mkdir /dev/mqueue (CI: .ci/provision-podman.sh)"
[[ -x $python && -f $dependency/MANIFEST.json ]] || fail "run \`make collections\` first (.venv and ansible.windows in .build/collections)"

tools() {
    scripts/ensure-venv.sh "$venv" tests/ee/requirements.txt python3
}

images() {
    scripts/build-molecule-image.sh "$suite" "$debian_image"
    # podman's layer cache makes these a no-op once built (and rebuilds them when a Containerfile changes).
    podman build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -f tests/ee/base.Containerfile -t "$base_image" tests/ee >/dev/null
    podman build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -f tests/ee/host.Containerfile -t "$host_image" tests/ee >/dev/null
}

build_ee() {
    rm -rf "$work/dist" "$work/context"
    "$python" -m ansible.cli.galaxy collection build --output-path "$work/dist" "$root" >/dev/null
    local tarball
    tarball=$(echo "$work"/dist/ocsp-stapling-*.tar.gz)
    "$venv/bin/python" tests/ee/ci_definition.py execution-environment.yml "$work/definition/execution-environment.yml" \
        "$base_image" "$tarball" "$dependency"
    "$venv/bin/ansible-builder" create --file "$work/definition/execution-environment.yml" --context "$work/context" \
        --output-filename Containerfile >/dev/null
    # Where this machine reaches PyPI only through its own CA bundle, the build's RUN steps see it
    # (mounted, never stored in the image).
    local trust=()
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
        trust=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
    if ! podman build "${trust[@]}" -f "$work/context/Containerfile" -t "$ee_image" "$work/context" >"$work/build.log" 2>&1; then
        tail -40 "$work/build.log" >&2
        fail "podman build of the execution environment failed (whole log: $work/build.log)"
    fi
    # ansible-builder's introspection must have found every requirement the collection declares.
    local found wanted
    found=$(sed -n '/introspect.py introspect/,/^--> /p' "$work/build.log" | grep 'from collection ocsp.stapling' || true)
    echo "$found"
    while read -r wanted; do
        grep -qF -- "'$wanted  # from collection ocsp.stapling'" <<<"$found" ||
            fail "ansible-builder did not pick up '$wanted' from meta/execution-environment.yml (build log: $work/build.log)"
    done < <(grep -hv -e '^#' -e '^[[:space:]]*$' meta/ee-requirements.txt bindep.txt)
}

cleanup() {
    podman rm --force --time 1 "$host_container" >/dev/null 2>&1 || true
    if [[ -d $work/state/bench ]]; then
        "$python" -m tests.bench.fleet stop "$work/state/bench" >/dev/null
    fi
}

managed_host() {
    cleanup
    rm -rf "$project" "$work/sshd" "$work/state"
    mkdir -p "$project/inventory/group_vars" "$project/ssh" "$work/sshd"
    ssh-keygen -q -t ed25519 -N '' -C ee-check-host -f "$work/sshd/host_key"
    ssh-keygen -q -t ed25519 -N '' -C ee-check-controller -f "$project/ssh/id_ed25519"
    cp "$project/ssh/id_ed25519.pub" "$work/sshd/authorized_keys"
    echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$work/sshd/host_key.pub")" >"$project/ssh/known_hosts"
    # The EE runs as uid 1000 (ansible-builder's default user) and must read the controller's key.
    chown 1000 "$project/ssh/id_ed25519"
    # The Molecule scenarios' variables for their hosts, and one host with an nginx and an Apache site
    # and a certificate without an OCSP URL.
    cp molecule/shared/group_vars/*.yml "$project/inventory/group_vars/"
    cat >"$project/inventory/hosts.yml" <<EOF
---
scenario_hosts:
  hosts:
    ee-web:
      ansible_host: 127.0.0.1
      ansible_port: $ssh_port
      ansible_user: root
      ansible_ssh_private_key_file: $project/ssh/id_ed25519
      ansible_ssh_common_args: -o UserKnownHostsFile=$project/ssh/known_hosts -o StrictHostKeyChecking=yes
      scenario_sites:
        - {server_name: www.ee.test, server: nginx, port: $nginx_port}
        - {server_name: nourl.ee.test, server: nginx, port: $nginx_port, ocsp: false}
        - {server_name: shop.ee.test, server: apache, port: $apache_port}
EOF
    # The servers run as www-data, and the process limit counts every process of that user on the
    # machine, other tests' bench servers included: under containers.conf's nproc=1024, Apache could not
    # start its worker threads on a busy machine. 8192 leaves room and stays under what these machines
    # let a container set (their own limit is refused); one --ulimit replaces all of containers.conf's
    # defaults, so the open files limit is given again, as there.
    local limits=(--ulimit nproc=8192:8192 --ulimit nofile=1024:1024)
    podman run --detach --name "$host_container" --network host --stop-timeout 1 "${limits[@]}" \
        --volume "$work/sshd:/etc/ssh/ee:ro" "$host_image" \
        /usr/sbin/sshd -D -e -p "$ssh_port" -o ListenAddress=127.0.0.1 -h /etc/ssh/ee/host_key \
        -o AuthorizedKeysFile=/etc/ssh/ee/authorized_keys -o PermitRootLogin=prohibit-password \
        -o PasswordAuthentication=no >/dev/null
    local waited=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null; do
        ((waited++ < 50)) || { podman logs "$host_container" >&2; fail "sshd of $host_container did not listen on 127.0.0.1:$ssh_port"; }
        sleep 0.2
    done
    # The prepare playbook of the Molecule scenarios, from this machine (it starts the bench here);
    # pipelining only saves SSH round trips in this set-up, which is no part of what is checked.
    env MOLECULE_PROJECT_DIRECTORY="$root" MOLECULE_EPHEMERAL_DIRECTORY="$work/state" \
        ANSIBLE_COLLECTIONS_PATH="$root/.build/collections" ANSIBLE_PYTHON_INTERPRETER="$python" ANSIBLE_NOCOLOR=1 \
        ANSIBLE_PIPELINING=1 \
        "$root/.venv/bin/ansible-playbook" -i "$project/inventory" molecule/shared/prepare.yml >"$work/prepare.log" 2>&1 ||
        { tail -40 "$work/prepare.log" >&2; fail "preparing the managed host failed (log: $work/prepare.log)"; }
}

navigator() {
    # Nothing of this shell's Ansible configuration reaches the EE: it holds its own.
    (cd "$project" && env -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_PYTHON_INTERPRETER \
        "$venv/bin/ansible-navigator" "$1" --mode stdout --execution-environment true \
        --execution-environment-image "$ee_image" --pull-policy never --container-engine podman \
        --container-options=--network=host --log-file "$work/navigator.log" "${@:2}")
}

# One playbook of the collection, by its name, inside the EE; judged from its artifact (tests/ee/check_run.py).
play() {
    local name=$1 label=$2
    shift 2
    rm -f "$work/$label.json"
    navigator run "ocsp.stapling.$name" -i inventory --senv ANSIBLE_NOCOLOR=1 \
        --playbook-artifact-enable true --playbook-artifact-save-as "$work/$label.json" >"$work/$label.navigator.log" 2>&1 || true
    [[ -f $work/$label.json ]] || { tail -30 "$work/$label.navigator.log" >&2; fail "ansible-navigator left no artifact for $label"; }
    if ! "$venv/bin/python" tests/ee/check_run.py "$work/$label.json" "$work/$label.log" "$@"; then
        # What the servers said, before the trap removes their container.
        podman exec "$host_container" tail -n 15 /var/log/apache2/error.log /var/log/nginx/error.log >&2 || true
        fail "the $label run in the execution environment failed (output: $work/$label.log)"
    fi
}

run_job() {
    # The collections the image holds, as ansible-navigator's own exec sees them.
    navigator exec -- ansible-galaxy collection list 2>/dev/null | grep -E '^(# |ocsp\.stapling|ansible\.windows)'
    play enable enable --changed
    play enable enable-again --unchanged
    # www.ee.test and shop.ee.test staple; nourl.ee.test has no OCSP URL and is reported not applicable.
    play verify verify --verify 3
}

trap cleanup EXIT
step "tools (.venv-ee)" tools
step "images" images
step "build the execution environment" build_ee
step "managed host" managed_host
step "run the main job in the execution environment" run_job
