# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PEM blocks and certificate names with Python's standard library only.

This runs on managed hosts, which have no ``cryptography``: ``server_info`` uses it to send the
controller only the certificates of a site file (never a key) and only the CA bundle certificates
that can be in a site's chain, instead of the whole bundle on every run. A block is sent only when
its DER has the structure of a certificate, and then re-encoded from that DER, so that no other
byte of a file (headers, stray text, whatever hides between the markers) leaves the host. The
controller parses and judges what it receives with ``cryptography`` (``_chain``).
"""

from __future__ import annotations

import base64
import os
import re

from ._configtext import read_bytes

# One BEGIN or END line of a PEM text. Only the markers matter: bundles carry comments between blocks.
_PEM_MARKER = re.compile(r"-----(BEGIN|END) ([^-\r\n]*)-----")
# A label as RFC 7468 and OpenSSL write them. Messages show only such a label: any other text of a
# marker line is content of the file, which must not leave the host.
_PLAIN_LABEL = re.compile(r"[A-Z0-9][A-Z0-9 ]{0,63}")

# The most server_info reads of one certificate file or CA bundle. The largest real ones are system
# bundles (Debian's ca-certificates.crt: about 220 KB for some 150 roots); a file of 2 GiB once took
# the module to 4.2 GB of memory. Larger files are refused unread.
MAX_PEM_BYTES = 16 * 1024 * 1024

# Base64 characters per line of a PEM block, as RFC 7468 and OpenSSL write them.
_PEM_COLUMNS = 64


class CertificateFileError(Exception):
    """A certificate file that cannot be used - a site's certificate, a CA bundle, a chain file or its path;
    the message names it and says what to do."""


def _shown(label: str) -> str:
    """``label`` for a message, when it is a plain label; another marker text is not repeated."""
    return label if _PLAIN_LABEL.fullmatch(label) else "block with an unusual label"


def unparsable_block(source: str, number: int) -> str:
    """The message for a CERTIFICATE block that holds no certificate; the same on the host and the controller."""
    return ("%s: PEM block %d does not parse as a certificate (damaged base64 or DER, or a malformed extension): replace it "
            "with the certificate as the CA delivered it" % (source, number))


# What a server's certificate file may hold besides certificates, as Apache's SSLCertificateFile and
# nginx's ssl_certificate document it: the site's private key (when no separate key file is named),
# and the parameters of its ephemeral keys (openssl dhparam / ecparam output).
_SITE_FILE_EXTRAS = ("PRIVATE KEY", "DH PARAMETERS", "EC PARAMETERS")


def _site_file_extra(label: str) -> bool:
    return label.endswith("PRIVATE KEY") or label in _SITE_FILE_EXTRAS


def pem_blocks(text: str, source: str, site_file: bool = False) -> list:
    """Every certificate block of a PEM text as (number counted from 1, block text), in order.

    Refuses the whole text when it holds a private key or any other kind of PEM block, or a block
    whose BEGIN and END lines do not pair up. Messages name ``source``, the block number and its
    label, never the content of a block. Text between the blocks is dropped.

    ``site_file``: the text is a server's certificate file, which may also hold the site's private
    key and key parameters: those blocks are passed over (never decoded, kept or returned), and only
    the certificates are used.
    """
    markers = list(_PEM_MARKER.finditer(text))
    # A key is looked for first, so that no other problem of the file can hide it.
    begins = [marker.group(2) for marker in markers if marker.group(1) == "BEGIN"]
    for number, label in enumerate(begins, 1):
        if "PRIVATE KEY" in label and not site_file:
            raise CertificateFileError(
                "%s: PEM block %d is a private key (%s): a private key must never go into a chain file or a CA bundle, so "
                "nothing of this file is used. Keep the key in a file of its own (ssl_certificate_key / SSLCertificateKeyFile) "
                "and give only certificates here" % (source, number, _shown(label)))

    blocks = []
    number = 0
    begin = None
    for marker in markers:
        kind, label = marker.groups()
        if kind == "BEGIN":
            if begin is not None:
                raise CertificateFileError("%s: PEM block %d (%s) has no END line before the next BEGIN line: the file is cut or two blocks "
                                           "are merged; replace it with an intact copy" % (source, number, _shown(begin.group(2))))
            number += 1
            if label != "CERTIFICATE" and not (site_file and _site_file_extra(label)):
                raise CertificateFileError("%s: PEM block %d is a %s, not a CERTIFICATE: remove it, only certificates belong in a chain "
                                           "file or a CA bundle" % (source, number, _shown(label)))
            begin = marker
            continue
        if begin is None or label != begin.group(2):
            raise CertificateFileError("%s: an END %s line after PEM block %d has no matching BEGIN line: the file is damaged; replace it "
                                       "with an intact copy" % (source, _shown(label), number))
        if begin.group(2) == "CERTIFICATE":
            blocks.append((number, text[begin.start():marker.end()]))
        begin = None
    if begin is not None:
        raise CertificateFileError("%s: PEM block %d (%s) has no END line: the file is cut; replace it with an intact copy" % (
            source, number, _shown(begin.group(2))))
    return blocks


def block_der(block: str) -> bytes:
    """The DER bytes of one PEM block; ValueError when its base64 is damaged.

    RFC 1421 headers (``Name: value`` lines up to a blank line, right after the BEGIN line) are
    skipped, as ``cryptography`` skips them on the controller; they are never sent.
    """
    body = block.split("-----", 2)[2].split("-----END", 1)[0]
    lines = body.splitlines()[1:]  # after the end of the BEGIN line
    if lines and ":" in lines[0]:
        blank = next((index for index, line in enumerate(lines) if not line.strip()), None)
        if blank is None:
            raise ValueError("headers without the blank line that ends them")
        body = "\n".join(lines[blank + 1:])
    try:
        # validate: a character outside base64 (a header line, stray text) is damage, not something to skip.
        return base64.b64decode("".join(body.split()), validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise ValueError("damaged base64") from None


def canonical_pem(der: bytes) -> str:
    """The PEM block of DER bytes as OpenSSL writes it: 64 base64 characters a line, no newline after the END line."""
    encoded = base64.b64encode(der).decode("ascii")
    lines = [encoded[start:start + _PEM_COLUMNS] for start in range(0, len(encoded), _PEM_COLUMNS)]
    return "\n".join(["-----BEGIN CERTIFICATE-----"] + lines + ["-----END CERTIFICATE-----"])


def _element(data: bytes, offset: int, end: int) -> tuple:
    """(tag, start of content, end of element) of the DER element at ``offset``; ValueError when it overruns ``end``."""
    if offset + 2 > end:
        raise ValueError("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        # Multi-byte tags never occur in the parts of a certificate read here.
        raise ValueError("unsupported DER tag")
    length = data[offset + 1]
    position = offset + 2
    if length & 0x80:
        count = length & 0x7F
        # DER has no indefinite length (0x80); four length bytes are far beyond any certificate.
        if count == 0 or count > 4 or position + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[position:position + count], "big")
        position += count
    if position + length > end:
        raise ValueError("truncated DER")
    return tag, position, position + length


def _children(data: bytes, start: int, end: int):
    offset = start
    while offset < end:
        tag, content, stop = _element(data, offset, end)
        yield tag, content, stop
        offset = stop


_INTEGER, _BIT_STRING, _OID, _SEQUENCE, _SET = 0x02, 0x03, 0x06, 0x30, 0x31
# How each ASN.1 string type of a name attribute decodes, as cryptography decodes it.
_STRING_CODECS = {
    0x0C: "utf-8",       # UTF8String
    0x12: "latin-1",     # NumericString
    0x13: "latin-1",     # PrintableString
    0x14: "latin-1",     # T61String
    0x16: "latin-1",     # IA5String
    0x1A: "latin-1",     # VisibleString
    0x1C: "utf-32-be",   # UniversalString
    0x1E: "utf-16-be",   # BMPString
}


def certificate_names(der: bytes) -> tuple:
    """(issuer, subject) of a DER certificate, each as the DER bytes of its Name; ValueError when ``der`` is no certificate.

    The structure is checked as far as a certificate always has it: one SEQUENCE and nothing after
    it, holding exactly tbsCertificate (SEQUENCE), signatureAlgorithm (SEQUENCE) and signature (BIT
    STRING); tbsCertificate starting with serialNumber, signature, issuer, validity, subject and
    subjectPublicKeyInfo. The controller still parses every certificate in full.
    """
    tag, start, end = _element(der, 0, len(der))
    if tag != _SEQUENCE or end != len(der):
        raise ValueError("not a certificate")
    if [part[0] for part in _children(der, start, end)] != [_SEQUENCE, _SEQUENCE, _BIT_STRING]:
        raise ValueError("not a certificate")
    tag, start, end = _element(der, start, end)  # tbsCertificate
    fields = list(_children(der, start, end))
    if fields and fields[0][0] == 0xA0:  # the explicit [0] version is absent in v1 certificates
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    if [field[0] for field in fields[:6]] != [_INTEGER, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE]:
        raise ValueError("not a certificate")
    issuer, subject = fields[2], fields[4]
    return der[issuer[1]:issuer[2]], der[subject[1]:subject[2]]


def name_key(name: bytes) -> tuple:
    """A comparable form of a DER Name (its content, without the outer SEQUENCE header).

    Two names that cryptography calls equal always get the same key: values are compared decoded,
    whatever their string type, and more loosely still (case and runs of blanks ignored). A looser
    key only means a few more bundle certificates are sent; the controller still checks each
    signature, so it never changes which chain is built.
    """
    rdns = []
    for tag, start, end in _children(name, 0, len(name)):
        if tag != _SET:
            raise ValueError("not a name")
        attributes = []
        for attr_tag, attr_start, attr_end in _children(name, start, end):
            if attr_tag != _SEQUENCE:
                raise ValueError("not a name")
            parts = list(_children(name, attr_start, attr_end))
            if len(parts) != 2 or parts[0][0] != _OID:
                raise ValueError("not a name")
            oid = name[parts[0][1]:parts[0][2]]
            value_tag, value_start, value_end = parts[1]
            raw = name[value_start:value_end]
            codec = _STRING_CODECS.get(value_tag)
            if codec:
                value = " ".join(raw.decode(codec, errors="replace").casefold().split())
            else:
                value = (value_tag, raw)
            attributes.append((oid, value))
        rdns.append(frozenset(attributes))
    return tuple(rdns)


def read_certificate(block: str) -> tuple:
    """(canonical PEM, issuer key, subject key) of one CERTIFICATE block; ValueError when it holds no certificate."""
    der = block_der(block)
    issuer, subject = certificate_names(der)
    return canonical_pem(der), name_key(issuer), name_key(subject)


def block_name_keys(block: str) -> tuple:
    """(issuer key, subject key) of one certificate block; ValueError when it holds no certificate."""
    return read_certificate(block)[1:]


def _certificates(text: str, source: str, site_file: bool = False) -> list:
    """(number, canonical PEM, issuer key, subject key) of every block of a PEM text; CertificateFileError when one is no certificate."""
    found = []
    for number, block in pem_blocks(text, source, site_file):
        try:
            found.append((number,) + read_certificate(block))
        except ValueError:
            raise CertificateFileError(unparsable_block(source, number)) from None
    return found


def site_certificates(text: str, source: str) -> dict:
    """What the controller needs of a site certificate file: its certificates only.

    ``{"source": ..., "blocks": [[number, pem], ...]}``, each block re-encoded from its DER, or
    ``{"source": ..., "error": message}`` when the file cannot be used (another kind of block, a cut
    block, a CERTIFICATE block that holds no certificate). The file may hold the site's private key
    too (Apache documents it for SSLCertificateFile without SSLCertificateKeyFile, nginx allows it):
    the key is passed over. It never leaves the host, nor any other byte of the file than the DER
    of its certificates.
    """
    try:
        return {"source": source, "blocks": [[number, block] for number, block, _issuer, _subject in _certificates(text, source, site_file=True)]}
    except CertificateFileError as exc:
        return {"source": source, "error": str(exc)}


def wanted_issuers(site_files: list) -> set:
    """The issuer name keys of every certificate of the site files (entries of :func:`site_certificates`)."""
    return {block_name_keys(block)[0] for entry in site_files for _number, block in entry.get("blocks", [])}


def bundle_certificates(bundles: list, wanted: set) -> list:
    """Per bundle, the certificates that can be in the chain of a certificate issued by a name in ``wanted``.

    ``bundles`` is a list of (PEM text, source); in place of the text, a CertificateFileError says why the
    bundle could not be read. A bundle certificate is kept when its subject is a wanted name; its
    own issuer then becomes wanted too, up to the roots, across all bundles. Block numbers stay
    those of the original file; the blocks are re-encoded from their DER. A bundle that cannot be
    used at all gives its error, the verdict the controller gives on the whole file: a private key,
    a cut block, or a CERTIFICATE block that holds no certificate.
    """
    entries = []
    candidates = []  # (entry index, number, block, issuer key, subject key)
    for index, (text, source) in enumerate(bundles):
        try:
            if isinstance(text, CertificateFileError):
                raise text
            found = _certificates(text, source)
        except CertificateFileError as exc:
            entries.append({"source": source, "error": str(exc)})
            continue
        entries.append({"source": source, "blocks": []})
        candidates.extend((index,) + certificate for certificate in found)

    wanted = set(wanted)
    keep = set()
    grew = True
    while grew:
        grew = False
        for position, (_index, _number, _block, issuer, subject) in enumerate(candidates):
            if position not in keep and subject in wanted:
                keep.add(position)
                if issuer not in wanted:
                    wanted.add(issuer)
                    grew = True
    for position in sorted(keep):
        index, number, block = candidates[position][:3]
        entries[index]["blocks"].append([number, block])
    return entries


def _read_pem(path: str, kind: str) -> str:
    # A regular file of at most MAX_PEM_BYTES only: a FIFO hung the run and a 2 GiB file filled the host's memory.
    # PEM is ASCII; a stray byte elsewhere in the file must not stop the reading (it never leaves the host).
    return read_bytes(path, MAX_PEM_BYTES, kind).decode("utf-8", errors="replace")


def read_site_certificates(sites: list, ca_bundles: list) -> dict:
    """The certificate files of server_info's site records and the useful part of the CA bundles, as the preflight filter takes them."""
    paths = []
    for site in sites:
        # A path with variables names no single file; the roles leave such sites alone too.
        if site.get("uses_variables"):
            continue
        paths.extend(path for path in site["ssl_certificate"] if path not in paths)
    certificates = {}
    for path in paths:
        try:
            certificates[path] = site_certificates(_read_pem(path, "certificate file"), path)
        except OSError as exc:
            message = "cannot read %s (%s): check the file that ssl_certificate / SSLCertificateFile names" % (path, exc.strerror or exc)
            certificates[path] = {"source": path, "error": message}
    # The chain a site already names (Apache's SSLCertificateChainFile, nginx's ssl_trusted_certificate) is
    # where its owner put the intermediates when the certificate file holds the leaf alone: searched first.
    chain_sources = []
    for site in sites:
        if site.get("uses_variables"):
            continue
        path = site.get("chain_file")
        if path and path not in chain_sources and path not in ca_bundles:
            chain_sources.append(path)
    bundles = []
    for path in chain_sources + list(ca_bundles):
        if not os.path.exists(path):
            continue
        try:
            bundles.append((_read_pem(path, "CA bundle"), path))
        except OSError as exc:
            bundles.append((CertificateFileError("cannot read the CA bundle %s (%s): check the chain file the sites name (SSLCertificateChainFile / "
                                                 "ssl_trusted_certificate) or the ca_bundles option" % (path, exc.strerror or exc)), path))
    entries = bundle_certificates(bundles, wanted_issuers(list(certificates.values())))
    return {"certificates": certificates, "bundles": entries}
