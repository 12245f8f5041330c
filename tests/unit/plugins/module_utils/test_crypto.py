"""The one import guard of the certificate libraries: the helpers built on them load without them."""

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.ocsp.stapling.plugins.module_utils import _chain, _crypto, _ocsp, _tls

# Run in a fresh interpreter, as on a host without the libraries: importing either of them fails there.
WITHOUT_LIBRARIES = r"""
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("cryptography", "OpenSSL"):
            raise ImportError("No module named %r" % name)
        return None

sys.meta_path.insert(0, Missing())
from ansible_collections.ocsp.stapling.plugins.module_utils import _chain, _crypto, _ocsp, _tls, _verify
assert not _crypto.HAS_CRYPTOGRAPHY and not _crypto.HAS_PYOPENSSL
assert "cryptography" in _crypto.CRYPTOGRAPHY_IMPORT_ERROR and "OpenSSL" in _crypto.PYOPENSSL_IMPORT_ERROR
assert _ocsp.x509 is None and _tls.SSL is None
# What needs no certificate library still works.
print(_chain.chain_file_name("/etc/ssl/a.pem"))
"""


def test_the_helpers_share_the_one_import():
    assert _crypto.HAS_CRYPTOGRAPHY and _crypto.HAS_PYOPENSSL
    assert _crypto.CRYPTOGRAPHY_IMPORT_ERROR is None and _crypto.PYOPENSSL_IMPORT_ERROR is None
    assert _chain.x509 is _ocsp.x509 is _crypto.x509
    assert _tls.SSL is _crypto.SSL


def test_the_helpers_load_without_cryptography_and_pyopenssl():
    # The collection is found where this test found it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    done = subprocess.run([sys.executable, "-c", WITHOUT_LIBRARIES], capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("etc_ssl_a.pem.")
