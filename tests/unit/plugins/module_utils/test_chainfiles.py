"""Unit tests of the chain files written in the configuration transaction: idempotence, mode, the
folder, check-mode planning, refusal of keys, and a byte-for-byte rollback when the server refuses."""

from __future__ import annotations

import os
import stat
import tempfile

import pytest
from bench.pki import Pki
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.ocsp.stapling.plugins.module_utils._chainfiles import apply_chain_files, chain_file_diffs, plan_chain_files
from ansible_collections.ocsp.stapling.plugins.module_utils._pem import CertificateFileError
from ansible_collections.ocsp.stapling.plugins.module_utils._txn import ChangeRefused, Journal, apply_and_test, staging_writer


@pytest.fixture(scope="module")
def chain_pem(tmp_path_factory) -> str:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), "http://127.0.0.1:9/")
    return pki.chain_path.read_text(encoding="ascii")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run(changes: dict, passes: bool = True, edits: dict | None = None) -> None:
    def apply(transaction):
        apply_chain_files(transaction, changes)
        for path, data in (edits or {}).items():
            transaction.write(path, data)
    # The journal in a folder of its own, as the modules keep it beside the lock, outside the tree under test.
    with tempfile.TemporaryDirectory(prefix="journal-") as folder:
        apply_and_test(apply, lambda: (passes, "" if passes else "emerg: bad"), "nginx -t", Journal(folder), writer=staging_writer(os.replace))


def test_a_new_chain_file_is_written_0644_in_a_new_0755_folder(tmp_path, chain_pem):
    old_umask = os.umask(0o077)  # a strict umask must not make the chain unreadable to the server
    try:
        path = str(tmp_path / "ocsp" / "nested" / "site.chain.pem")
        changes = plan_chain_files({path: chain_pem})
        assert list(changes) == [path] and not os.path.exists(os.path.dirname(path))  # planning writes nothing
        run(changes)
    finally:
        os.umask(old_umask)
    assert open(path, encoding="ascii").read() == chain_pem
    assert mode(path) == 0o644
    assert mode(tmp_path / "ocsp") == mode(tmp_path / "ocsp" / "nested") == 0o755
    assert sorted(os.listdir(tmp_path / "ocsp" / "nested")) == ["site.chain.pem"]


def test_an_unchanged_chain_file_is_not_written_again(tmp_path, chain_pem):
    path = tmp_path / "site.chain.pem"
    run(plan_chain_files({str(path): chain_pem}))
    inode, mtime = path.stat().st_ino, path.stat().st_mtime_ns
    assert plan_chain_files({str(path): chain_pem}) == {}
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime)


def test_a_changed_content_or_mode_is_written(tmp_path, chain_pem):
    path = tmp_path / "site.chain.pem"
    path.write_text(chain_pem)
    path.chmod(0o600)
    assert plan_chain_files({str(path): chain_pem}) == {str(path): chain_pem.encode()}
    path.chmod(0o644)
    path.write_text("stale\n")
    assert plan_chain_files({str(path): chain_pem}) == {str(path): chain_pem.encode()}


def test_a_refused_server_test_puts_chain_files_and_folders_back_byte_for_byte(tmp_path, chain_pem):
    existing = tmp_path / "chains" / "old.chain.pem"
    existing.parent.mkdir()
    existing.write_bytes(b"the previous chain\r\n")
    existing.chmod(0o640)
    new = tmp_path / "new-folder" / "new.chain.pem"
    site = tmp_path / "site.conf"
    site.write_bytes(b"server {}\n")
    changes = plan_chain_files({str(existing): chain_pem, str(new): chain_pem})

    with pytest.raises(ChangeRefused) as refused:
        run(changes, passes=False, edits={str(site): b"server { ssl_stapling on; }\n"})

    assert existing.read_bytes() == b"the previous chain\r\n" and mode(existing) == 0o640
    assert not (tmp_path / "new-folder").exists()
    assert sorted(os.listdir(tmp_path)) == ["chains", "site.conf"]
    assert os.listdir(tmp_path / "chains") == ["old.chain.pem"]
    assert site.read_bytes() == b"server {}\n"
    assert str(tmp_path / "new-folder") in refused.value.restored


def test_absent_removes_the_existing_chain_files_only_and_a_refusal_brings_them_back(tmp_path, chain_pem):
    present = tmp_path / "a.chain.pem"
    present.write_text(chain_pem)
    changes = plan_chain_files({str(present): "", str(tmp_path / "never.chain.pem"): ""}, state="absent")
    assert changes == {str(present): None}

    with pytest.raises(ChangeRefused):
        run(changes, passes=False)
    assert present.read_text() == chain_pem

    run(changes)
    assert not present.exists()


@pytest.mark.parametrize("content, message", [
    ("", "holds no PEM certificate"),
    ("not pem at all\n", "holds no PEM certificate"),
    (None, "holds no PEM certificate"),
])
def test_content_without_a_certificate_is_refused(tmp_path, content, message):
    with pytest.raises(CertificateFileError, match=message):
        plan_chain_files({str(tmp_path / "x.pem"): content})


def test_a_private_key_never_goes_into_a_chain_file(tmp_path, chain_pem):
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii")
    with pytest.raises(CertificateFileError, match="PEM block 3 is a private key"):
        plan_chain_files({str(tmp_path / "x.pem"): chain_pem + key})
    assert not (tmp_path / "x.pem").exists()


def test_a_relative_path_is_refused(chain_pem):
    with pytest.raises(CertificateFileError, match="is not absolute"):
        plan_chain_files({"chains/x.pem": chain_pem})


def test_diffs_show_the_old_and_new_content(tmp_path, chain_pem):
    old = tmp_path / "old.pem"
    old.write_text("stale\n")
    new = tmp_path / "new.pem"
    diffs = chain_file_diffs({str(old): chain_pem.encode(), str(new): chain_pem.encode()})
    assert diffs == [
        {"before_header": str(new), "after_header": str(new), "before": "", "after": chain_pem},
        {"before_header": str(old), "after_header": str(old), "before": "stale\n", "after": chain_pem},
    ]
    assert chain_file_diffs({str(old): None}) == [{"before_header": str(old), "after_header": str(old), "before": "stale\n", "after": ""}]
