"""Unit tests of the one reader of files the configuration names (read_bytes, and read_text on top of it).

server_info runs as root and reads whatever a configuration names: a FIFO there hung the run
forever, a 2 GiB file took the module to 4.2 GB of memory. Only a regular file is read, and one
larger than the cap is refused by its size, without reading it; a file that holds more than its
size says (/proc) is cut off one byte past the cap.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils import _nginx
from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import MAX_CONFIG_BYTES, read_bytes, read_text, text_bytes
from ansible_collections.ocsp.stapling.plugins.module_utils._pem import MAX_PEM_BYTES

GIB = 1024 * 1024 * 1024
# Far above an os.open and an fstat, far below "hangs".
PROMPT = 5.0


def guarded(call, fifo: Path | None = None):
    """``call()`` in a thread that must end within PROMPT seconds: a regression fails instead of hanging the suite.

    Returns (seconds taken, the exception raised or None). A reader stuck on ``fifo`` is set free by
    opening the FIFO for writing, so that no thread is left behind.
    """
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            call()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PROMPT)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(PROMPT)
        pytest.fail("the read did not return within %.0f s: it waits on the file" % PROMPT)
    return outcome["seconds"], outcome.get("error")


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space."""
    with open(path, "wb") as stream:
        stream.truncate(size)
    return path


def test_the_caps_keep_real_files_and_stop_absurd_ones():
    # The parser is proven on a 50 MiB configuration (test_bad_input); Debian's CA bundle is about 220 KB.
    assert 50 * 1024 * 1024 < MAX_CONFIG_BYTES <= 64 * 1024 * 1024
    assert 1024 * 1024 < MAX_PEM_BYTES <= MAX_CONFIG_BYTES


def test_a_regular_file_is_read_byte_for_byte(tmp_path):
    data = b"server {\r\n  # caf\xe9\n}\n" + bytes(range(256)) * 1000
    path = tmp_path / "a.conf"
    path.write_bytes(data)
    assert read_bytes(str(path), len(data)) == data
    assert text_bytes(read_text(str(path))) == data
    (tmp_path / "empty").touch()
    assert read_bytes(str(tmp_path / "empty"), 10) == b""


def test_a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(tmp_path):
    path = tmp_path / "edge.pem"
    path.write_bytes(b"x" * 1000)
    assert len(read_bytes(str(path), 1000)) == 1000
    with pytest.raises(OSError) as raised:
        read_bytes(str(path), 999, "certificate file")
    assert raised.value.errno == errno.EFBIG and raised.value.filename == str(path)


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "cert.pem"
    os.mkfifo(fifo)

    seconds, error = guarded(lambda: read_bytes(str(fifo), MAX_PEM_BYTES, "certificate file"), fifo)

    assert isinstance(error, OSError) and error.errno == errno.EINVAL and error.filename == str(fifo)
    assert "not a regular file but a FIFO" in error.strerror
    assert seconds < 1
    # read_text, which the configuration readers use, is the same reader.
    _seconds, error = guarded(lambda: read_text(str(fifo)), fifo)
    assert isinstance(error, OSError) and "a FIFO" in error.strerror


def test_a_socket_and_devices_are_refused(tmp_path):
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "sock"))
    try:
        for path, kind in [(tmp_path / "sock", "a socket"), (Path("/dev/zero"), "a device"), (Path("/dev/null"), "a device")]:
            _seconds, error = guarded(lambda path=path: read_bytes(str(path), MAX_PEM_BYTES))
            if isinstance(error, OSError) and error.errno == errno.ENXIO:
                continue  # a socket cannot be opened on every system: refused all the same
            assert isinstance(error, OSError) and error.errno == errno.EINVAL, (path, error)
            assert "not a regular file but %s" % kind in error.strerror
    finally:
        listening.close()


def test_a_directory_is_an_is_a_directory_error(tmp_path):
    # The Apache loader includes every file of a directory on it.
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path), MAX_PEM_BYTES)


def test_a_2_gib_sparse_file_is_refused_by_its_size_without_reading_it(tmp_path):
    big = sparse(tmp_path / "huge.pem", 2 * GIB)

    tracemalloc.start()
    try:
        seconds, error = guarded(lambda: read_bytes(str(big), MAX_PEM_BYTES, "certificate file"))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert isinstance(error, OSError) and error.errno == errno.EFBIG and error.filename == str(big)
    # The message names the size, the cap and what to do.
    assert "2147483648 bytes (2048 MiB), more than the 16 MiB cap for a certificate file" in error.strerror
    assert "check that the path names the right file" in error.strerror
    assert seconds < 1
    assert peak < 1024 * 1024, "%d bytes allocated" % peak


def test_a_file_that_holds_more_than_its_size_says_is_cut_off_past_the_cap():
    # /proc files say they are empty: the cap is enforced on what is read, one byte past it.
    status = "/proc/self/status"
    assert os.stat(status).st_size == 0
    assert b"VmRSS" in read_bytes(status, MAX_PEM_BYTES)
    with pytest.raises(OSError) as raised:
        read_bytes(status, 64, "certificate file")
    assert raised.value.errno == errno.EFBIG
    assert "holds at least 65 bytes (its size says 0), more than the 64 bytes cap for a certificate file" in raised.value.strerror


def test_read_text_refuses_a_configuration_larger_than_its_cap(tmp_path):
    big = sparse(tmp_path / "big.conf", MAX_CONFIG_BYTES + 1)
    seconds, error = guarded(lambda: read_text(str(big)))
    assert isinstance(error, OSError) and error.errno == errno.EFBIG and seconds < 1
    assert "more than the 64 MiB cap for a configuration file" in error.strerror


def test_an_include_of_a_huge_file_names_the_include_and_what_to_do(tmp_path):
    sparse(tmp_path / "huge.conf", 2 * GIB)
    main = tmp_path / "nginx.conf"
    main.write_text("events {}\nhttp {\n    include %s;\n}\n" % (tmp_path / "huge.conf"))

    with pytest.raises(_nginx.NginxConfigError) as raised:
        _nginx.NginxConfig.load(str(main))

    message = str(raised.value)
    assert message.startswith("%s:3: " % main)
    assert "2147483648 bytes (2048 MiB), more than the 64 MiB cap for a configuration file" in message
    assert message.endswith("fix the path of the include")
