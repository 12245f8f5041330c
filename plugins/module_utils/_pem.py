# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PEM blocks and certificate names with Python's standard library only.

This runs on managed hosts, which have no ``cryptography``: ``server_info`` uses it to send the
controller only the certificate blocks of a site file (never a key) and only the CA bundle
certificates that can be in a site's chain, instead of the whole bundle on every run. The
controller parses and judges what it receives with ``cryptography`` (``_chain``).
"""

from __future__ import annotations

import base64
import binascii
import re

# One BEGIN or END line of a PEM text. Only the markers matter: bundles carry comments between blocks.
_PEM_MARKER = re.compile(r"-----(BEGIN|END) ([^-\r\n]*)-----")


class ChainError(Exception):
    """A certificate file or bundle that cannot be used; the message names it and says what to do."""


def pem_blocks(text: str, source: str) -> list:
    """Every certificate block of a PEM text as (number counted from 1, block text), in order.

    Refuses the whole text when it holds a private key or any other kind of PEM block, or a block
    whose BEGIN and END lines do not pair up. Messages name ``source``, the block number and its
    label, never the content of a block. Text between the blocks is dropped.
    """
    markers = list(_PEM_MARKER.finditer(text))
    # A key is looked for first, so that no other problem of the file can hide it.
    begins = [marker.group(2) for marker in markers if marker.group(1) == "BEGIN"]
    for number, label in enumerate(begins, 1):
        if "PRIVATE KEY" in label:
            raise ChainError(
                "%s: PEM block %d is a private key (%s): a private key must never go into a chain file or a CA bundle, so "
                "nothing of this file is used. Keep the key in a file of its own (ssl_certificate_key / SSLCertificateKeyFile) "
                "and give only certificates here" % (source, number, label))

    blocks = []
    number = 0
    begin = None
    for marker in markers:
        kind, label = marker.groups()
        if kind == "BEGIN":
            if begin is not None:
                raise ChainError("%s: PEM block %d (%s) has no END line before the next BEGIN line: the file is cut or two blocks "
                                 "are merged; replace it with an intact copy" % (source, number, begin.group(2)))
            number += 1
            if label != "CERTIFICATE":
                raise ChainError("%s: PEM block %d is a %s, not a CERTIFICATE: remove it, only certificates belong in a chain "
                                 "file or a CA bundle" % (source, number, label))
            begin = marker
            continue
        if begin is None or label != begin.group(2):
            raise ChainError("%s: an END %s line after PEM block %d has no matching BEGIN line: the file is damaged; replace it "
                             "with an intact copy" % (source, label, number))
        blocks.append((number, text[begin.start():marker.end()]))
        begin = None
    if begin is not None:
        raise ChainError("%s: PEM block %d (%s) has no END line: the file is cut; replace it with an intact copy" % (
            source, number, begin.group(2)))
    return blocks


def block_der(block: str) -> bytes:
    """The DER bytes of one PEM block; ValueError when its base64 is damaged."""
    body = block.split("-----", 2)[2].split("-----END", 1)[0]
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        raise ValueError("damaged base64") from None


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


_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
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
    """(issuer, subject) of a DER certificate, each as the DER bytes of its Name."""
    tag, start, end = _element(der, 0, len(der))
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    tag, start, end = _element(der, start, end)  # tbsCertificate
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    fields = list(_children(der, start, end))
    if fields and fields[0][0] == 0xA0:  # the explicit [0] version is absent in v1 certificates
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5 or [field[0] for field in fields[:5]] != [0x02, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE]:
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


def block_name_keys(block: str) -> tuple:
    """(issuer key, subject key) of one certificate block; ValueError when it cannot be read here."""
    issuer, subject = certificate_names(block_der(block))
    return name_key(issuer), name_key(subject)


def site_certificates(text: str, source: str) -> dict:
    """What the controller needs of a site certificate file: its certificate blocks only.

    ``{"source": ..., "blocks": [[number, pem], ...]}``, or ``{"source": ..., "error": message}``
    when the file cannot be used (a private key in it, another kind of block, a cut block). A key
    never leaves the host: neither its bytes nor any text of the file outside certificate blocks.
    """
    try:
        return {"source": source, "blocks": [[number, block] for number, block in pem_blocks(text, source)]}
    except ChainError as exc:
        return {"source": source, "error": str(exc)}


def wanted_issuers(site_files: list) -> set | None:
    """The issuer name keys of every certificate of the site files; None when one cannot be read here.

    None tells the caller to send the whole bundles: the controller may still parse a certificate
    this reader cannot, and must then find its issuers as before.
    """
    wanted = set()
    for entry in site_files:
        for _number, block in entry.get("blocks", []):
            try:
                issuer, _subject = block_name_keys(block)
            except ValueError:
                return None
            wanted.add(issuer)
    return wanted


def bundle_certificates(bundles: list, wanted: set | None) -> list:
    """Per bundle, the certificate blocks that can be in the chain of a certificate issued by a name in ``wanted``.

    ``bundles`` is a list of (PEM text, source); in place of the text, a ChainError says why the
    bundle could not be read. A bundle certificate is kept when its subject is a
    wanted name; its own issuer then becomes wanted too, up to the roots, across all bundles.
    Blocks that cannot be read here are kept, so that the controller reports them as before; block
    numbers stay those of the original file. A bundle that cannot be used at all gives its error.
    With ``wanted`` None every certificate is kept.
    """
    entries = []
    candidates = []  # (entry index, number, block, issuer key or None, subject key or None)
    for index, (text, source) in enumerate(bundles):
        try:
            if isinstance(text, ChainError):
                raise text
            blocks = pem_blocks(text, source)
        except ChainError as exc:
            entries.append({"source": source, "error": str(exc)})
            continue
        entries.append({"source": source, "blocks": []})
        for number, block in blocks:
            try:
                issuer, subject = block_name_keys(block)
            except ValueError:
                issuer = subject = None
            candidates.append((index, number, block, issuer, subject))

    keep = set()
    if wanted is None:
        keep = set(range(len(candidates)))
    else:
        wanted = set(wanted)
        grew = True
        while grew:
            grew = False
            for position, (_index, _number, _block, issuer, subject) in enumerate(candidates):
                if position in keep:
                    continue
                if subject is None or subject in wanted:
                    keep.add(position)
                    if issuer is not None and issuer not in wanted:
                        wanted.add(issuer)
                        grew = True
    for position in sorted(keep):
        index, number, block = candidates[position][:3]
        entries[index]["blocks"].append([number, block])
    return entries
