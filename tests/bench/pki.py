"""A small certificate authority for tests: root -> intermediate -> leaves, with an OCSP index.

The index is kept in the exact format of ``openssl ca`` so that ``openssl ocsp -index`` answers
for every certificate issued here, and a revocation is a rewrite of one index line.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# The reasons `openssl ca -revoke -crl_reason` records without further arguments
# (certificateHold would also need a hold instruction, which no test needs).
REVOCATION_REASONS = frozenset({"unspecified", "keyCompromise", "CACompromise", "affiliationChanged", "superseded", "cessationOfOperation"})

# A site name becomes a folder name, so keep it to what a DNS name may hold.
_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")

RESPONDER_NAME = "Bench OCSP Responder"
_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=90)
# Start validity in the past so that a small clock difference between processes never
# makes a fresh certificate "not yet valid".
_BACKDATE = dt.timedelta(hours=1)


class _Default(enum.Enum):
    """Sentinel type: "use the PKI's own OCSP URL", distinct from None ("no OCSP URL")."""

    PKI_URL = enum.auto()


PKI_URL = _Default.PKI_URL


@dataclass
class Leaf:
    """One issued server certificate and the files a web server needs for it."""

    name: str
    cert_path: Path
    key_path: Path
    chain_path: Path
    fullchain_path: Path
    serial: int
    cert: x509.Certificate


@dataclass
class _IndexEntry:
    """One line of an `openssl ca` index.txt."""

    status: str
    expiry: str
    revocation: str
    serial_hex: str
    subject: str

    def line(self) -> str:
        # The filename column is always "unknown": `openssl ca` never fills it in either.
        return "\t".join((self.status, self.expiry, self.revocation, self.serial_hex, "unknown", self.subject)) + "\n"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _index_time(when: dt.datetime) -> str:
    """Format a time as `openssl ca` writes it: UTCTime before 2050, GeneralizedTime from then on."""
    when = when.astimezone(dt.timezone.utc)
    return when.strftime("%y%m%d%H%M%SZ" if when.year < 2050 else "%Y%m%d%H%M%SZ")


def _serial_hex(serial: int) -> str:
    """Serial as OpenSSL's BN_bn2hex prints it: upper case, whole bytes.

    `openssl ocsp` looks a request's serial up by this exact string, so "ABC" would never match "0ABC".
    """
    digits = f"{serial:X}"
    return digits.zfill(len(digits) + len(digits) % 2)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def _cn(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: str, public_key: PrivateKey, issuer: x509.Certificate | None, not_before: dt.datetime, not_after: dt.datetime) -> x509.CertificateBuilder:
    """Start a certificate with the fields every certificate of this PKI shares."""
    issuer_name = _cn(subject) if issuer is None else issuer.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(_cn(subject))
        .issuer_name(issuer_name)
        .public_key(public_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key.public_key()), critical=False)
    )
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    return builder


class Pki:
    """Root CA -> intermediate CA, a delegated OCSP responder, and the leaves issued so far."""

    def __init__(self, folder: Path, ocsp_url: str | None, key_type: KeyType) -> None:
        # Use Pki.create(): the constructor only fills in paths.
        self.folder = folder
        self.ocsp_url = ocsp_url
        self.key_type: KeyType = key_type
        self.root_cert_path = folder / "root.pem"
        self.intermediate_cert_path = folder / "intermediate.pem"
        self.intermediate_key_path = folder / "intermediate.key"
        self.responder_cert_path = folder / "responder.pem"
        self.responder_key_path = folder / "responder.key"
        self.chain_path = folder / "chain.pem"
        self.index_path = folder / "index.txt"
        self.root_cert: x509.Certificate
        self.intermediate_cert: x509.Certificate
        self.intermediate_key: PrivateKey
        self.responder_cert: x509.Certificate
        self.responder_key: PrivateKey
        self._leaves: dict[str, Leaf] = {}
        self._index: dict[int, _IndexEntry] = {}

    @classmethod
    def create(cls, folder: Path, ocsp_url: str | None, *, key_type: KeyType = "ec") -> Pki:
        """Create the CA hierarchy and an empty index in folder (created if missing)."""
        folder = folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        pki = cls(folder, ocsp_url, key_type)
        now = _now()
        start, end = now - _BACKDATE, now + _CA_LIFETIME

        root_key = _new_key(key_type)
        pki.root_cert = (
            _builder("Bench Root CA", root_key, None, start, end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(root_key, hashes.SHA256())
        )

        pki.intermediate_key = _new_key(key_type)
        pki.intermediate_cert = (
            _builder("Bench Intermediate CA", pki.intermediate_key, pki.root_cert, start, end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(root_key, hashes.SHA256())
        )

        pki.responder_key = _new_key(key_type)
        pki.responder_cert = (
            _builder(RESPONDER_NAME, pki.responder_key, pki.intermediate_cert, start, end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            # Clients must not ask an OCSP responder about its own certificate.
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(pki.intermediate_key, hashes.SHA256())
        )

        pki.root_cert_path.write_bytes(_cert_pem(pki.root_cert))
        pki.intermediate_cert_path.write_bytes(_cert_pem(pki.intermediate_cert))
        _write_private(pki.intermediate_key_path, _key_pem(pki.intermediate_key))
        pki.responder_cert_path.write_bytes(_cert_pem(pki.responder_cert))
        _write_private(pki.responder_key_path, _key_pem(pki.responder_key))
        pki.chain_path.write_bytes(_cert_pem(pki.intermediate_cert, pki.root_cert))
        # The attribute file `openssl ca` keeps next to its index. Without it, `openssl ca` assumes unique_subject = yes
        # and refuses a second valid certificate for one subject, which a test renewing a certificate with it would need.
        (folder / "index.txt.attr").write_text("unique_subject = no\n", encoding="ascii")
        # The responder certificate is issued by the intermediate like any leaf, so `openssl ca` would list it too.
        pki._record(pki.responder_cert, RESPONDER_NAME)
        return pki

    def issue_leaf(
        self,
        name: str,
        *,
        sans: list[str] | None = None,
        ocsp_url: str | None | Literal[_Default.PKI_URL] = PKI_URL,
        must_staple: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Leaf:
        """Issue a server certificate for name (and sans) and record it in the index as valid.

        ocsp_url=None leaves out the OCSP URL; a not_after in the past gives an expired certificate.
        """
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"leaf name {name!r} is not a DNS name")
        if name in self._leaves:
            raise ValueError(f"a leaf named {name!r} was already issued in {self.folder}")
        url = self.ocsp_url if ocsp_url is PKI_URL else ocsp_url
        now = _now()
        not_after = not_after or now + _LEAF_LIFETIME
        # An expired certificate still needs a validity period that starts before it ends.
        not_before = not_before or min(now - _BACKDATE, not_after - _LEAF_LIFETIME)

        key = _new_key(self.key_type)
        builder = (
            _builder(name, key, self.intermediate_cert, not_before, not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # RSA key exchange needs keyEncipherment; EC keys only sign.
            .add_extension(_key_usage(digital_signature=True, key_encipherment=self.key_type == "rsa"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns) for dns in [name, *(sans or [])]]), critical=False)
        )
        if url is not None:
            access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
        if must_staple:
            builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
        cert = builder.sign(self.intermediate_key, hashes.SHA256())

        folder = self.folder / "leaves" / name
        folder.mkdir(parents=True)
        leaf = Leaf(
            name=name,
            cert_path=folder / "cert.pem",
            key_path=folder / "key.pem",
            chain_path=self.chain_path,
            fullchain_path=folder / "fullchain.pem",
            serial=cert.serial_number,
            cert=cert,
        )
        leaf.cert_path.write_bytes(_cert_pem(cert))
        _write_private(leaf.key_path, _key_pem(key))
        leaf.fullchain_path.write_bytes(_cert_pem(cert, self.intermediate_cert))
        self._leaves[name] = leaf
        self._record(cert, name)
        return leaf

    def leaf(self, name: str) -> Leaf:
        """The leaf issued under name."""
        try:
            return self._leaves[name]
        except KeyError:
            raise KeyError(f"no leaf named {name!r} was issued; issued: {', '.join(sorted(self._leaves)) or 'none'}") from None

    @property
    def leaves(self) -> list[Leaf]:
        """Every leaf issued so far, in issue order."""
        return list(self._leaves.values())

    def revoke(self, leaf: Leaf, reason: str | None = "keyCompromise", when: dt.datetime | None = None) -> None:
        """Mark leaf revoked in the index, as `openssl ca -revoke [-crl_reason reason]` would.

        reason=None records no reason, like `openssl ca -revoke` without -crl_reason.
        """
        if reason is not None and reason not in REVOCATION_REASONS:
            raise ValueError(f"unknown revocation reason {reason!r}: use one of {', '.join(sorted(REVOCATION_REASONS))}")
        entry = self._index[leaf.serial]
        # `openssl ca` writes the revocation time as UTCTime whatever the year.
        revoked_at = (when or _now()).astimezone(dt.timezone.utc).strftime("%y%m%d%H%M%SZ")
        entry.status = "R"
        entry.revocation = revoked_at if reason is None else f"{revoked_at},{reason}"
        self._write_index()

    def _record(self, cert: x509.Certificate, common_name: str) -> None:
        # Every subject here is a lone CN, which `openssl ca` writes in its one-line form. Status V even for a
        # certificate issued expired, as `openssl ca` leaves it until -updatedb: for an E line `openssl ocsp`
        # answers with no certificate status at all.
        entry = _IndexEntry("V", _index_time(cert.not_valid_after_utc), "", _serial_hex(cert.serial_number), f"/CN={common_name}")
        self._index[cert.serial_number] = entry
        self._write_index()

    def _write_index(self) -> None:
        # Replace the file in one step: the responder reads it at any moment and must never see half of it.
        partial = self.index_path.with_name(self.index_path.name + ".new")
        partial.write_text("".join(entry.line() for entry in self._index.values()), encoding="ascii")
        os.replace(partial, self.index_path)
