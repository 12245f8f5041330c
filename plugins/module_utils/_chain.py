# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight a site certificate and build the full chain file that stapling needs.

The controller-side steps before any server is touched: read the certificate file and the CA
bundles (certificates only, never a key), find the issuers up to a root, and say whether the site
can be stapled at all. Plain Python on top of ``cryptography``; nothing here knows about Ansible.
"""

from __future__ import annotations

import datetime
import hashlib
import posixpath
import re

from ._crypto import serialization, x509
from ._pem import CertificateFileError, pem_blocks, unparsable_block
from ._ocsp import (
    UTC,
    find_issuer,
    format_duration,
    has_must_staple,
    is_issued_by,
    iso_time,
    load_pem_certificates,
    ocsp_urls,
    short_name,
    utc_attr,
)

# The readable part of a chain file name keeps the end of the certificate path (its most specific
# part); the hash of the whole path keeps apart the paths that the readable part confuses.
_READABLE_CHARS = 64
_HASH_CHARS = 12

NO_OCSP_URL = (
    "the certificate carries no OCSP responder URL, so it cannot be stapled "
    "(Let's Encrypt certificates issued since May 2025 carry none): leave stapling off for this site"
)
MUST_STAPLE = "the certificate carries OCSP Must-Staple: without a staple Firefox refuses the site — stapling is mandatory here"


def read_pem_certificates(content, source: str, site_file: bool = False) -> list:
    """Every certificate of a PEM text, in order; text between the blocks is ignored.

    ``content`` is PEM text, or what ``server_info`` read on the host: a list of (block number,
    block text) pairs, or the CertificateFileError it met. Refuses the whole text when it holds a private key
    or any other kind of PEM block, or a block that does not parse. Messages name ``source`` and the
    block number (counted from 1), never the content of a block. ``site_file``: a server's own
    certificate file, whose key and key parameters are passed over (see ``_pem.pem_blocks``).
    """
    if isinstance(content, CertificateFileError):
        raise content
    blocks = pem_blocks(content, source, site_file) if isinstance(content, str) else content
    certificates = []
    for number, block in blocks:
        try:
            (certificate,) = load_pem_certificates(block.encode("utf-8"))
            # cryptography parses extensions on first use: parse them now, while the block number is known.
            len(certificate.extensions)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
            raise CertificateFileError(unparsable_block(source, number)) from None
        certificates.append(certificate)
    return certificates


def _identity(cert) -> tuple:
    # A CA is its name and key: a duplicate or a cross-signed version of it (other issuer or
    # validity) has the same identity, and may appear in a chain only once.
    key = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.subject.public_bytes(), key


def _is_ca(cert) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _is_self_signed(cert) -> bool:
    return is_issued_by(cert, cert)


def build_chain(leaf, candidates: list, now: datetime.datetime | None = None) -> list:
    """The issuers of ``leaf`` found among ``candidates``: [intermediate, ..., root], each signed by the next.

    Stops at a self-signed root, or at the last certificate whose issuer is not among the
    candidates. When several candidates signed the current certificate (duplicates, cross-signed
    CAs), one valid at ``now`` wins over an expired or not yet valid one, then the one that
    expires last.
    """
    now = now or datetime.datetime.now(UTC)

    def preference(cert) -> tuple:
        not_before, not_after = utc_attr(cert, "not_valid_before"), utc_attr(cert, "not_valid_after")
        return not not_before <= now <= not_after, -not_after.timestamp()

    # find_issuer takes the first match, so the order of the candidates is the preference;
    # the sort is stable, so equal candidates keep the order of the files.
    ranked = sorted(candidates, key=preference)
    used = {_identity(leaf)}
    chain = []
    current = leaf
    while not _is_self_signed(current):
        issuer = find_issuer(current, [cert for cert in ranked if _identity(cert) not in used])
        if issuer is None:
            break
        chain.append(issuer)
        used.add(_identity(issuer))
        current = issuer
    return chain


def _either(sources: list) -> str:
    """'a', 'a or b', 'a, b or c': where a missing certificate was looked for."""
    if len(sources) == 1:
        return sources[0]
    return "%s or %s" % (", ".join(sources[:-1]), sources[-1])


def _chain_facts(cert) -> dict:
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": iso_time(utc_attr(cert, "not_valid_after")),
    }


def preflight(cert_pem: str, cert_source: str, candidate_pems: list = (), now: datetime.datetime | None = None,
              min_days: int = 0) -> dict:
    """Judge whether one site certificate file can be stapled, and build its chain.

    ``cert_pem`` is the text of the file the server serves: its first certificate is the leaf,
    any further ones (a fullchain) are candidate issuers, like every certificate of
    ``candidate_pems``, a list of (PEM text, source) pairs such as the CA bundle. Instead of PEM
    text, each may be what ``server_info`` read on the host (see read_pem_certificates). A file that
    cannot be used (a key in it, a damaged block, no certificate) gives status ``error``, so that
    one broken site does not hide the verdicts on the others.
    """
    now = now or datetime.datetime.now(UTC)
    result = {
        "certificate": cert_source,
        "subject": None,
        "issuer": None,
        "serial": None,
        "not_after": None,
        "days_left": None,
        "ocsp_urls": [],
        "must_staple": False,
        "issuer_found": False,
        "chain_complete": False,
        "chain": [],
        "chain_pem": "",
        "eligible": False,
        # No OCSP URL, or self-signed: no renewal of the same certificate nor a CA bundle on the host changes that.
        "can_never_staple": False,
        "status": "error",
        "reason": "",
        "warnings": [],
    }
    try:
        # The site's own file may hold its key too (Apache, nginx allow it): only its certificates are read.
        certificates = read_pem_certificates(cert_pem, cert_source, site_file=True)
        if not certificates:
            raise CertificateFileError("%s holds no PEM certificate: give the file that the server's ssl_certificate / SSLCertificateFile "
                                       "names (a DER file must be converted first: openssl x509 -inform DER -in FILE)" % cert_source)
        # A self-signed certificate made with `openssl req -x509` is a CA too, yet served as a site's own.
        if _is_ca(certificates[0]) and not _is_self_signed(certificates[0]):
            raise CertificateFileError("%s: the first certificate is the CA %r, not the site's: put the site certificate first, then its "
                                       "intermediates" % (cert_source, short_name(certificates[0].subject)))
        candidates = certificates[1:]
        for text, source in candidate_pems:
            candidates.extend(read_pem_certificates(text, source))
    except CertificateFileError as exc:
        result["reason"] = str(exc)
        return result

    leaf = certificates[0]
    chain = build_chain(leaf, candidates, now)
    not_before, not_after = utc_attr(leaf, "not_valid_before"), utc_attr(leaf, "not_valid_after")
    days_left = int((not_after - now).total_seconds() // 86400)
    complete = bool(chain) and _is_self_signed(chain[-1])
    urls = ocsp_urls(leaf)
    must_staple = has_must_staple(leaf)
    result.update(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial="%X" % leaf.serial_number,
        not_after=iso_time(not_after),
        days_left=days_left,
        ocsp_urls=urls,
        must_staple=must_staple,
        issuer_found=bool(chain),
        chain_complete=complete,
        chain=[_chain_facts(cert) for cert in chain],
        chain_pem="".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in chain),
    )
    searched = _either([cert_source] + [source for _text, source in candidate_pems])

    # What rules stapling out, the most urgent first: the first is the reason, the others are
    # kept as warnings, so that fixing one never reveals another only on the next run.
    blockers = []
    if not_after < now:
        blockers.append("the certificate expired on %s: renew it first" % iso_time(not_after))
    if not urls:
        blockers.append(NO_OCSP_URL)
    if _is_self_signed(leaf):
        blockers.append("the certificate is self-signed, so no CA answers OCSP for it: leave stapling off for this site")
    elif not chain:
        blockers.append("the issuer certificate %r is not in %s: add it to the certificate file (after the leaf) or to the "
                        "CA bundle" % (short_name(leaf.issuer), searched))

    warnings = result["warnings"]
    if must_staple:
        warnings.append(MUST_STAPLE if not blockers else
                        "the certificate carries OCSP Must-Staple but cannot be stapled: Firefox refuses the site until the "
                        "certificate is replaced by one that can be")
    warnings.extend(blockers[1:])
    if not_before > now:
        warnings.append("the certificate is not valid before %s (in %s): check the clock, or wait before serving it" % (
            iso_time(not_before), format_duration((not_before - now).total_seconds())))
    if chain and not complete:
        warnings.append(
            "the chain stops at %r, whose issuer %r is not in %s: the chain file holds intermediates only, and nginx's "
            "ssl_stapling_verify may fail with \"unable to get local issuer certificate\" unless that root is added to the "
            "CA bundle" % (short_name(chain[-1].subject), short_name(chain[-1].issuer), searched))
    if not_after >= now and days_left < min_days:
        warnings.append("the certificate expires on %s, in %d days (min_days is %d): renew it soon" % (
            iso_time(not_after), days_left, min_days))

    if blockers:
        result.update(status="not_applicable", reason=blockers[0], can_never_staple=not urls or _is_self_signed(leaf))
    else:
        result.update(status="eligible", eligible=True, reason="can be stapled: OCSP responder %s, chain %s" % (
            urls[0], " -> ".join(repr(short_name(cert.subject)) for cert in chain)))
    return result


def chain_file_name(cert_path: str) -> str:
    """A stable, safe file name for the chain file of the certificate at absolute path ``cert_path``.

    Sites that serve one certificate file get one chain file. The name shows the end of the path
    and a hash of all of it, e.g. ``etc_ssl_example.com_fullchain.pem.4682ec5c6d55.chain.pem``,
    and is never longer than 87 characters.
    """
    if not isinstance(cert_path, str) or not posixpath.isabs(cert_path):
        raise CertificateFileError("certificate path %r is not absolute: resolve it against the server's prefix or ServerRoot first" % (
            cert_path,))
    # One spelling per file: POSIX keeps a leading "//", normpath everything else.
    path = posixpath.normpath("/" + cert_path.lstrip("/"))
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", path[1:])[-_READABLE_CHARS:].lstrip("._-")
    if not readable:
        raise CertificateFileError("certificate path %r names no file: give the path of the certificate file itself" % (cert_path,))
    digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return "%s.%s.chain.pem" % (readable, digest)


def chain_file_path(cert_path: str, chain_dir: str) -> str:
    """The full path of the chain file of ``cert_path`` in the folder ``chain_dir``.

    The one place where folder and name are joined, so that the run that installs a chain file and
    the one that removes it name the same file. A relative folder would land wherever the module
    happens to run, so it is refused.
    """
    if not isinstance(chain_dir, str) or not posixpath.isabs(chain_dir):
        raise CertificateFileError("chain folder %r is not absolute: give the full path of the folder for the chain files "
                                   "(nginx_stapling_chain_dir, apache_stapling_chain_dir or preflight_chain_dir)" % (chain_dir,))
    return posixpath.join(chain_dir, chain_file_name(cert_path))
