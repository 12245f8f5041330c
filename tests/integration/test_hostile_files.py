"""server_info, run as root through Ansible on the bench's Debian-shaped nginx, when the configuration
names files that are no certificate files.

The security review of issue 11: a FIFO named by ``ssl_certificate`` hung the run forever, and a
2 GiB file took the module to 4.2 GB of memory. Now each comes back at once as an ``error`` of that
certificate, the other sites are read as before, and nothing is left waiting on the FIFO.

The module runs ad hoc in a child process with a timeout (a hang fails the test instead of the
suite), wrapped so that the peak memory of the largest process of the run is measured.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench import Bench
from bench.layouts import debian_nginx

ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
TIMEOUT = 60
# ansible-core on the controller and the module each take some 50-100 MiB; the module held 4.2 GB
# before the fix.
PEAK_LIMIT_KIB = 400 * 1024

# Runs the command given and prints the peak RSS (KiB) of its largest descendant on the last line of stderr.
WRAPPER = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=False); " \
          "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-files")
    with Bench(root) as bench:
        yield {"bench": bench, "root": root, "nginx": debian_nginx(bench, root)}


def server_info(host) -> tuple:
    """(result, seconds, peak RSS in KiB) of one ad hoc server_info call with read_certificates."""
    nginx, bench = host["nginx"], host["bench"]
    args = {"server": "nginx", "nginx_conf": str(nginx.server.conf_path), "read_certificates": True,
            "ca_bundles": [str(bench.pki.root_cert_path)]}
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    command = [sys.executable, "-c", WRAPPER, ANSIBLE, "localhost", "-c", "local", "-i", "localhost,", "-e",
               "ansible_python_interpreter=" + sys.executable, "-m", "ocsp.stapling.server_info", "-a", json.dumps(args)]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)
    seconds = time.monotonic() - started
    marker = run.stdout.find(" => ")
    assert marker >= 0, run.stdout + run.stderr
    assert not run.stdout[:marker].endswith("FAILED!"), run.stdout
    return json.loads(run.stdout[marker + 4:]), seconds, int(run.stderr.strip().splitlines()[-1])


def no_reader_waits_on(fifo: Path) -> bool:
    """Whether no process is blocked reading ``fifo``: opening it for writing without blocking fails then (ENXIO).

    When one is, the open sets it free, so that a regression leaves nothing behind."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return True
        raise
    return False


def waited_on(fifos: list) -> list:
    """The FIFOs that a process was blocked reading; each is set free until none is (a stuck reader moves on to the next)."""
    waited = []
    for _round in range(50):
        busy = [fifo for fifo in fifos if not no_reader_waits_on(fifo)]
        waited.extend(fifo for fifo in busy if fifo not in waited)
        if not busy and _round:
            break
        time.sleep(0.2)
    return waited


@pytest.fixture
def hostile(host):
    """Point good.test's ssl_certificate (and an ssl_trusted_certificate) at a path; the site file is restored afterwards."""
    site = host["nginx"].folder / "sites-available" / "default"
    original = site.read_text()
    fullchain = str(host["bench"].pki.leaf("good.test").fullchain_path)

    def point(certificate: Path, trusted: Path | None = None) -> None:
        text = original.replace("ssl_certificate %s;" % fullchain, "ssl_certificate %s;" % certificate)
        if trusted is not None:
            text = text.replace("\tserver_name good.test;", "\tssl_trusted_certificate %s;\n\tserver_name good.test;" % trusted)
        assert text != original
        site.write_text(text)

    yield point
    site.write_text(original)


def assert_others_read(host, result: dict, hostile_path: Path) -> None:
    shop = str(host["bench"].pki.leaf("shop.test").fullchain_path)
    assert [number for number, _block in result["certificates"][shop]["blocks"]] == [1, 2]
    assert set(result["certificates"][str(hostile_path)]) == {"source", "error"}
    root = host["bench"].pki.root_cert_path
    assert {"source": str(root), "blocks": [[1, root.read_text().strip()]]} in result["bundles"]


def test_a_fifo_as_ssl_certificate_and_as_ssl_trusted_certificate(host, hostile):
    fifo, trusted = host["root"] / "cert.fifo", host["root"] / "trusted.fifo"
    os.mkfifo(fifo)
    os.mkfifo(trusted)
    hostile(fifo, trusted)

    try:
        result, seconds, peak = server_info(host)
    finally:
        waiting = waited_on([fifo, trusted])
    assert not waiting, "a process was left waiting on %s" % waiting

    error = result["certificates"][str(fifo)]["error"]
    assert error == "cannot read %s (not a regular file but a FIFO, which the server would wait on or misread): check the file that " \
                    "ssl_certificate / SSLCertificateFile names" % fifo
    assert result["bundles"][0]["source"] == str(trusted)
    assert result["bundles"][0]["error"].startswith("cannot read the CA bundle %s (not a regular file but a FIFO" % trusted)
    assert_others_read(host, result, fifo)
    print("\nFIFO: server_info through ansible in %.2f s, largest process %d MiB" % (seconds, peak // 1024))
    assert seconds < 30


def test_a_2_gib_sparse_file_as_ssl_certificate(host, hostile):
    huge = host["root"] / "huge.pem"
    with open(huge, "wb") as stream:
        stream.truncate(2 * 1024 ** 3)  # sparse: no disk used
    hostile(huge)

    result, seconds, peak = server_info(host)

    error = result["certificates"][str(huge)]["error"]
    assert error.startswith("cannot read %s (the file holds 2147483648 bytes (2048 MiB), more than the 16 MiB cap for a certificate file, "
                            "so it is not read: check that the path names the right file" % huge)
    assert_others_read(host, result, huge)
    print("\n2 GiB file: server_info through ansible in %.2f s, largest process %d MiB" % (seconds, peak // 1024))
    assert seconds < 30
    assert peak < PEAK_LIMIT_KIB, "a process of the run took %d MiB" % (peak // 1024)
