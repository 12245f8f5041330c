# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one import of the certificate libraries, and the one record of whether it worked.

``cryptography`` (certificates, OCSP) and ``pyOpenSSL`` (the handshake that asks for a staple) are
needed only where certificates are judged, usually the controller. A module or plugin that imports
the helpers built on them must still load without them, so that it can fail with a message naming
the missing library (HAS_CRYPTOGRAPHY / CRYPTOGRAPHY_IMPORT_ERROR, HAS_PYOPENSSL /
PYOPENSSL_IMPORT_ERROR) instead of a traceback. Without a library its names are None here, so
``from ._crypto import x509`` never fails; only a call that needs it does.
"""

from __future__ import annotations

import traceback

# The names the helpers use, re-exported: __all__ says so to readers and to pylint.
__all__ = [
    "HAS_CRYPTOGRAPHY", "CRYPTOGRAPHY_IMPORT_ERROR", "HAS_PYOPENSSL", "PYOPENSSL_IMPORT_ERROR",
    "x509", "ocsp", "ExtendedKeyUsageOID", "InvalidSignature", "UnsupportedAlgorithm", "hashes", "serialization",
    "dsa", "ec", "ed448", "ed25519", "padding", "rsa", "SSL",
]

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
    x509 = ocsp = ExtendedKeyUsageOID = InvalidSignature = UnsupportedAlgorithm = hashes = serialization = None
    dsa = ec = ed448 = ed25519 = padding = rsa = None
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

try:
    from OpenSSL import SSL
except ImportError:
    HAS_PYOPENSSL = False
    PYOPENSSL_IMPORT_ERROR = traceback.format_exc()
    SSL = None
else:
    HAS_PYOPENSSL = True
    PYOPENSSL_IMPORT_ERROR = None
