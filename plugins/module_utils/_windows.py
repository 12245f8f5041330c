# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Server: read the HTTP.sys TLS bindings, gate on the version, plan the stapling changes and check them.

Runs on the controller on what the Windows host printed (``netsh http show sslcert``, the IIS
https bindings, the gathered facts), so that all of it can be tested without Windows. Standard
library only, Python 3.8 compatible; nothing here knows about Ansible.

Nothing here can be run against a real Windows host in this project, so every decision fails
closed: a binding is only ever written when each of its lines is understood, and after every write
the binding is read back (:func:`readback`). What each fact rests on (Microsoft's documentation,
Microsoft's generated API bindings, ansible.windows, published captures) is listed in
``roles/windows/README.md``, "Tested how".
"""

from __future__ import annotations

import base64
import hashlib
import re

from ._audit import not_audited_row
from ._pem import CertificateFileError, block_der, bundle_certificates, canonical_pem, site_certificates, wanted_issuers

SCHANNEL_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL"
SNI_REGISTRY_VALUE = "EnableOcspStaplingForSni"
# HTTP_SERVICE_CONFIG_SSL_FLAG_DISABLE_OCSP_STAPLING in http.h: 0x80 (Win32 metadata).
HTTP_FLAG_DISABLE_OCSP_STAPLING = 0x80
# IIS sslFlags bits of a <binding>: Sni=1, CentralCertStore=2, then the per-binding switches of IIS 10
# version 1809 and later, DisableHTTP2=4 and DisableOCSPStp=8 (the names as IIS's schema and the DSC
# resources spell them; the value 8 itself is not in Microsoft's prose documentation).
IIS_SSL_FLAG_SNI = 1
IIS_SSL_FLAG_CCS = 2
IIS_SSL_FLAG_DISABLE_OCSP_STAPLING = 8

ENGLISH_UI = (
    "run netsh on the host with an English display language (the Windows display language decides the "
    "labels; `chcp 437` does not change them), for example through a user whose display language is en-US"
)

NO_BINDINGS_MESSAGES = (
    # netsh http show sslcert on a specific endpoint that has no binding.
    "the system cannot find the file specified",
)

# The header line of each binding block: label -> kind.
_HEADERS = {
    "ip:port": "ip",
    "hostname:port": "hostname",
    "central certificate store": "ccs",
}

# How a line's value reads: a free value, Enabled / Disabled, or Set / Not Set (the newer flags).
VALUE, ENABLED, FLAG = "value", "enabled", "flag"

# Every English label of `netsh http show sslcert` known here (lower case, single spaces), as
# (the `netsh http update sslcert` parameter that sets it or None, True when that parameter exists
# since Windows Server 2008, how the value reads). Labels and their order: as in the published
# captures listed in roles/windows/README.md; parameter names: Microsoft's netsh http reference
# (add sslcert; update sslcert is taken to take the same ones). A label that is not here is not
# understood, and a binding that shows one with a value other than Not Set is never written.
NETSH_PARAMETERS = {
    "certificate hash": ("certhash", True, VALUE),
    "application id": ("appid", True, VALUE),
    "certificate store name": ("certstorename", True, VALUE),
    "verify client certificate revocation": ("verifyclientcertrevocation", True, ENABLED),
    "verify revocation using cached client certificate only": ("verifyrevocationwithcachedclientcertonly", True, ENABLED),
    "usage check": ("usagecheck", True, ENABLED),
    "revocation freshness time": ("revocationfreshnesstime", True, VALUE),
    "url retrieval timeout": ("urlretrievaltimeout", True, VALUE),
    "ctl identifier": ("sslctlidentifier", True, VALUE),
    "ctl store name": ("sslctlstorename", True, VALUE),
    "ds mapper usage": ("dsmapperusage", True, ENABLED),
    "negotiate client certificate": ("clientcertnegotiation", True, ENABLED),
    # Newer builds (2016 and later); a build knows only some of them, so they are passed only when
    # they are not at their default (see netsh_update_command).
    "reject connections": ("reject", False, ENABLED),
    "disable http2": ("disablehttp2", False, FLAG),
    "disable quic": ("disablequic", False, FLAG),
    "disable tls1.2": ("disabletls12", False, FLAG),
    "disable tls1.3": ("disabletls13", False, FLAG),
    "disable ocsp stapling": ("disableocspstapling", False, FLAG),
    "enable token binding": ("enabletokenbinding", False, FLAG),
    "log extended events": ("logextendedevents", False, FLAG),
    "disable legacy tls versions": ("disablelegacytls", False, FLAG),
    "enable session ticket": ("enablesessionticket", False, FLAG),
    "disable session id": ("disablesessionid", False, FLAG),
    # Shown by the newest builds, but Microsoft's netsh reference names no parameter for it: an update
    # would clear it, so a binding where it is Set is not written.
    "enable caching client hello": (None, False, FLAG),
}

# The lines after an "Extended Properties:" line (HTTP/2 window and settings limits and their
# successors) belong to the binding's extended parameters, which netsh shows but cannot set; they
# are never passed, and the read-back proves an update left them as they were.
EXTENDED_HEADER = "extended properties"

# The parameters that name the binding; netsh_update_command puts the endpoint first itself.
_ENDPOINT_PARAMETER = {"ip": "ipport", "hostname": "hostnameport", "ccs": "ccs"}

_LINE = re.compile(r"^\s*(?P<label>[^:\r\n][^\r\n]*?)\s*:\s*(?P<value>.*?)\s*$")
_HEADER = re.compile(r"^\s*(?P<label>IP:port|Hostname:port|Central Certificate Store)\s*:\s*(?P<value>\S.*?)\s*$", re.IGNORECASE)
_BANNER = re.compile(r"^\s*(SSL Certificate bindings:?|-{3,})\s*$", re.IGNORECASE)
_NULL = ("", "(null)")
# Facts that Ansible leaves empty come through templates as None or as its text.
_MISSING = ("", "none", "null")


class WindowsParseError(Exception):
    """What the host printed or reported cannot be understood; the message says what and what to do."""


def _key(label: str) -> str:
    return " ".join(str(label).lower().split())


def _fact(facts: dict, *names) -> str:
    """A fact as text, '' when it is absent, null, or null rendered as text ('None')."""
    for name in names:
        value = facts.get(name)
        if value is not None and str(value).strip().lower() not in _MISSING:
            return str(value).strip()
    return ""


def _split_endpoint(kind: str, endpoint: str) -> tuple:
    """(port, host) of an endpoint as netsh shows it: 0.0.0.0:443, [::]:443, www.example.com:443, 443."""
    text = endpoint.strip()
    if kind == "ccs":
        host, port = None, text
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise WindowsParseError("netsh http show sslcert: the endpoint %r has no host:port form; %s" % (endpoint, ENGLISH_UI))
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise WindowsParseError("netsh http show sslcert: the port of %r is not a port number; %s" % (endpoint, ENGLISH_UI))
    return int(port), host


def _finish(block: dict) -> dict:
    properties = block["properties"]
    known = [label for label in properties if _key(label) in NETSH_PARAMETERS]
    if not known:
        raise WindowsParseError(
            "netsh http show sslcert: the binding %s shows none of the English labels (Certificate Hash, Application ID, "
            "...): the output looks localized; %s" % (block["endpoint"], ENGLISH_UI))
    by_key = {_key(label): value for label, value in properties.items()}
    certificate_hash = by_key.get("certificate hash")
    if certificate_hash in _NULL:
        certificate_hash = None
    if certificate_hash is not None:
        certificate_hash = certificate_hash.replace(" ", "").lower() or None
        if certificate_hash is not None and not re.fullmatch(r"[0-9a-f]+", certificate_hash):
            raise WindowsParseError("netsh http show sslcert: the certificate hash %r of %s is not hexadecimal; %s" % (
                by_key["certificate hash"], block["endpoint"], ENGLISH_UI))
    stapling = by_key.get("disable ocsp stapling")
    disable = None
    if stapling is not None:
        disable = {"set": True, "not set": False}.get(_key(stapling))
        if disable is None:
            raise WindowsParseError("netsh http show sslcert: %s shows 'Disable OCSP Stapling : %s', neither Set nor Not Set; %s" % (
                block["endpoint"], stapling, ENGLISH_UI))
    block.update({
        "certificate_hash": certificate_hash,
        "application_id": by_key.get("application id") or None,
        "certificate_store": None if by_key.get("certificate store name") in (None, "(null)", "") else by_key["certificate store name"],
        "disable_ocsp_stapling": disable,
    })
    return block


def parse_sslcert(text: str) -> list:
    """The bindings of ``netsh http show sslcert`` (English UI), in the order shown.

    Each binding is ``{"kind": "ip" | "hostname" | "ccs", "endpoint": str (as shown), "port": int,
    "host": str | None, "certificate_hash": str | None (lower-case hex), "application_id": str | None,
    "certificate_store": str | None, "disable_ocsp_stapling": bool | None (None when netsh shows no
    such line: before Server 2019), "properties": {label: value}, "extended_properties": [{label:
    value}]}``. ``properties`` holds every ``Label : value`` line of the block before its first
    ``Extended Properties:`` line, labels as printed (a repeated label keeps its first value);
    ``extended_properties`` one mapping per ``Extended Properties:`` group. No bindings give an empty
    list; anything not understood raises :class:`WindowsParseError` (never a guess).
    """
    if not isinstance(text, str):
        raise WindowsParseError("netsh http show sslcert: expected its output as text, got %s" % type(text).__name__)
    bindings = []
    current = None
    unparsed = []
    banner = False
    for line in text.splitlines():
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            if current is not None:
                bindings.append(_finish(current))
            kind = _HEADERS[_key(header.group("label"))]
            endpoint = header.group("value")
            port, host = _split_endpoint(kind, endpoint)
            current = {"kind": kind, "endpoint": endpoint, "port": port, "host": host, "properties": {},
                       "extended_properties": []}
            continue
        if _BANNER.match(line):
            banner = True
            continue
        pair = _LINE.match(line)
        if current is not None and pair:
            if _key(pair.group("label")) == EXTENDED_HEADER:
                current["extended_properties"].append({})
            elif current["extended_properties"]:
                current["extended_properties"][-1].setdefault(pair.group("label"), pair.group("value"))
            else:
                current["properties"].setdefault(pair.group("label"), pair.group("value"))
        elif _key(line).rstrip(".") in NO_BINDINGS_MESSAGES and current is None and not bindings:
            return []
        else:
            unparsed.append(line.strip())
    if current is not None:
        bindings.append(_finish(current))
    if unparsed:
        raise WindowsParseError(
            "netsh http show sslcert: could not understand %r (no IP:port, Hostname:port or Central Certificate Store "
            "line before it); if netsh runs in another language, %s" % (unparsed[0][:80], ENGLISH_UI))
    if not bindings and not banner:
        raise WindowsParseError(
            "netsh http show sslcert: the output is empty, not even the 'SSL Certificate bindings:' title; check that the "
            "command ran (netsh http show sslcert) and that its output was passed as it is")
    return bindings


# --- the version gate ---------------------------------------------------------------------------------

# NT version -> Windows Server name; build numbers for NT 10.0.
_SERVER_NAMES = {(6, 0): "Windows Server 2008", (6, 1): "Windows Server 2008 R2", (6, 2): "Windows Server 2012",
                 (6, 3): "Windows Server 2012 R2", (5, 2): "Windows Server 2003", (5, 0): "Windows 2000"}
_SERVER_BUILDS = ((26100, "Windows Server 2025"), (20348, "Windows Server 2022"), (17763, "Windows Server 2019"),
                  (14393, "Windows Server 2016"))
SNI_MINIMUM = (6, 2)
PER_BINDING_FLAG_BUILD = 17763
# ansible.windows (3.x) supports NT 10.0 only: its setup module warns that anything older than Windows
# Server 2016 "is no longer supported or tested by Ansible", and Ansible's Windows guide asks for
# Windows Server 2016 or later.
ANSIBLE_MANAGED_BUILD = 14393


def _server_name(major: int, minor: int, build: int) -> str:
    if (major, minor) in _SERVER_NAMES:
        return _SERVER_NAMES[(major, minor)]
    if (major, minor) == (10, 0):
        for first, name in _SERVER_BUILDS:
            if build >= first:
                return name if build == first else "%s or later (build %d)" % (name, build)
    return "Windows Server NT %d.%d build %d" % (major, minor, build)


def version_gate(facts: dict) -> dict:
    """Whether this collection can handle the Windows host described by its gathered facts.

    Reads ``ansible_distribution_version`` (``10.0.17763.0``), ``ansible_os_product_type``
    (``server`` / ``domain_controller`` / ``workstation``; when absent, ``ansible_distribution`` is
    searched for "Server") and ``ansible_distribution`` for messages; a fact that is null (as
    ``ansible_distribution`` is on a connection without administrator rights) or null rendered as
    text counts as absent and never shows in a message. Returns ``{"supported": bool (= stapling
    available), "stapling_available": bool (Windows Server 2008, NT 6.0, and later), "ansible_managed":
    bool (Windows Server 2016, build 14393, and later: what ansible.windows supports), "version":
    "10.0.17763", "name": "Windows Server 2019", "sni_capable": bool (NT 6.2+), "per_binding_flag":
    bool (build 17763+), "reason": str, "warnings": [str]}``. Raises :class:`WindowsParseError` on
    facts without a readable version.
    """
    if not isinstance(facts, dict):
        raise WindowsParseError("windows gate: expected the host's facts as a mapping, got %s" % type(facts).__name__)
    raw = _fact(facts, "ansible_distribution_version", "distribution_version")
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", raw)
    if not match:
        raise WindowsParseError(
            "windows gate: ansible_distribution_version is %s, not an NT version such as 10.0.17763.0; gather the "
            "facts of the Windows host (ansible.builtin.setup) and pass them as they are" % (repr(raw) if raw else "missing",))
    major, minor, build = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    version = "%d.%d.%d" % (major, minor, build)
    distribution = _fact(facts, "ansible_distribution", "distribution")
    product_type = _fact(facts, "ansible_os_product_type", "os_product_type").lower()
    if product_type:
        is_server = product_type in ("server", "domain_controller")
    else:
        # Without the product type, only a distribution that says Server counts as one; none at all refuses.
        is_server = "server" in distribution.lower()
    name = _server_name(major, minor, build) if is_server else (distribution or "Windows NT %s" % version)
    nt10_build = build if (major, minor) == (10, 0) else (10 ** 6 if (major, minor) > (10, 0) else 0)
    result = {
        "supported": False,
        "stapling_available": False,
        "ansible_managed": nt10_build >= ANSIBLE_MANAGED_BUILD,
        "version": version,
        "name": name,
        "sni_capable": (major, minor) >= SNI_MINIMUM,
        "per_binding_flag": nt10_build >= PER_BINDING_FLAG_BUILD,
        "reason": "",
        "warnings": [],
    }
    if not is_server:
        what = "product type %s" % product_type if product_type else "no product type or distribution name in the facts"
        result["reason"] = ("%s (NT %s, %s) is not Windows Server: this collection targets Windows Server "
                            "(IIS / HTTP.sys on Windows Server 2008 or later)" % (name, version, what))
        return result
    if (major, minor) < (6, 0):
        result["reason"] = ("%s (NT %s) has no OCSP stapling: upgrade to Windows Server 2008 or later (NT 6.0)" % (name, version))
        return result
    result["supported"] = result["stapling_available"] = True
    parts = ["%s (NT %s) staples OCSP for IP:port bindings by default" % (name, version)]
    parts.append("SNI and Centralized Certificate Store bindings need %s = 1" % SNI_REGISTRY_VALUE if result["sni_capable"]
                 else "it has no SNI or Centralized Certificate Store bindings (Server 2012+)")
    if result["per_binding_flag"]:
        parts.append("a per-binding 'disable OCSP stapling' flag can be set (Server 2019+)")
    result["reason"] = "; ".join(parts)
    if not result["ansible_managed"]:
        result["warnings"].append(
            "%s (NT %s) can staple OCSP, but ansible.windows supports Windows Server 2016 and later only: its modules are "
            "not tested there and may fail; upgrade the host, or turn stapling on by hand as roles/windows/README.md "
            "describes" % (name, version))
    return result


# --- IIS bindings ---------------------------------------------------------------------------------------


def xpath_literal(value: str) -> str:
    """An XPath 1.0 string literal for ``value``: XPath has no escape, so quote with the quote it lacks, or concat()."""
    value = str(value)
    if "'" not in value:
        return "'%s'" % value
    if '"' not in value:
        return '"%s"' % value
    parts = value.split("'")
    pieces = []
    for index, part in enumerate(parts):
        if part:
            pieces.append("'%s'" % part)
        if index < len(parts) - 1:
            pieces.append('"\'"')
    return "concat(%s)" % ", ".join(pieces)


def iis_binding_filter(site: str, binding_information: str) -> str:
    """The IIS configuration filter of one https binding of one site, quote-safe for any site name."""
    return ("/system.applicationHost/sites/site[@name=%s]/bindings/binding[@protocol='https' and @bindingInformation=%s]"
            % (xpath_literal(site), xpath_literal(binding_information)))


def _site_from_xpath(xpath: str):
    """The site name in a Get-WebBinding ItemXPath: @name='...' (a quote doubled inside) or @name="..."."""
    found = re.search(r"@name='((?:[^']|'')*)'", xpath)
    if found:
        return found.group(1).replace("''", "'")
    found = re.search(r'@name="((?:[^"]|"")*)"', xpath)
    if found:
        return found.group(1).replace('""', '"')
    return None


def _iis_binding(item, number: int) -> dict:
    """One IIS https binding as {site, binding_information, ssl_flags}, from that shape or Get-WebBinding's."""
    if not isinstance(item, dict):
        raise WindowsParseError("IIS binding %d: expected a mapping, got %s" % (number, type(item).__name__))
    site = item.get("site")
    if site is None and isinstance(item.get("ItemXPath"), str):
        site = _site_from_xpath(item["ItemXPath"])
        if site is None:
            raise WindowsParseError("IIS binding %d: no site name in ItemXPath %r; pass {site, binding_information, ssl_flags} "
                                    "as the role lists them" % (number, item["ItemXPath"]))
    if not isinstance(site, str) or not site:
        raise WindowsParseError("IIS binding %d: the site name is %r; pass the name as IIS shows it" % (number, site))
    information = item.get("binding_information", item.get("bindingInformation"))
    flags = item.get("ssl_flags", item.get("sslFlags", 0))
    if not isinstance(information, str) or information.count(":") < 2:
        raise WindowsParseError("IIS binding %d (site %s): binding_information %r is not 'IP:port:host name' such as "
                                "'*:443:www.example.com'" % (number, site, information))
    if isinstance(flags, str) and flags.strip().isdigit():
        flags = int(flags)
    if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
        raise WindowsParseError("IIS binding %d (site %s): ssl_flags %r is not a whole number; pass sslFlags as the number "
                                "IIS returns" % (number, site, flags))
    address, port, host = information.rsplit(":", 2)
    if not port.isdigit():
        raise WindowsParseError("IIS binding %d (site %s): the port of %r is not a number" % (number, site, information))
    address = address.strip("[]")
    return {"site": site, "binding_information": information, "ssl_flags": flags,
            "_address": "0.0.0.0" if address in ("*", "") else address.lower(), "_port": int(port), "_host": host.lower()}


def _owned_by(binding: dict, iis: list):
    """The IIS binding that owns an HTTP.sys binding (same port, and the same host name, IP or CCS), or None."""
    for item in iis:
        if item["_port"] != binding["port"]:
            continue
        if binding["kind"] == "hostname" and item["_host"] == (binding["host"] or "").lower() \
                and not item["ssl_flags"] & IIS_SSL_FLAG_CCS:
            return item
        if binding["kind"] == "ccs" and item["ssl_flags"] & IIS_SSL_FLAG_CCS:
            return item
        # IIS's "*" address is HTTP.sys's 0.0.0.0 (all IPv4) or [::] (all IPv6) binding.
        address = (binding["host"] or "").lower()
        if binding["kind"] == "ip" and not item["ssl_flags"] & (IIS_SSL_FLAG_SNI | IIS_SSL_FLAG_CCS) \
                and (item["_address"] == address or (item["_address"] == "0.0.0.0" and address == "::")):
            return item
    return None


# --- what a write may do to a binding ----------------------------------------------------------------


def _drop_keys(drop_flags) -> set:
    if drop_flags in (None, ""):
        return set()
    if isinstance(drop_flags, str) or not isinstance(drop_flags, (list, tuple, set)):
        raise WindowsParseError("windows_stapling_drop_flags must be a list of netsh labels such as ['Enable Caching Client "
                                "Hello'], got %r" % (drop_flags,))
    return {_key(label) for label in drop_flags}


def not_understood(binding: dict, drop_flags=None) -> list:
    """Why ``netsh http update sslcert`` could change this binding beyond the stapling flag: one line per label.

    ``update sslcert`` replaces the binding with the parameters given. A line is understood when it
    has a parameter and a value of its kind (Enabled / Disabled, Set / Not Set), or when it shows the
    default that leaving a parameter out keeps (``Not Set``). Anything else - a label this
    collection does not know, a label without a parameter that is Set, a value of the wrong kind -
    would be dropped or mangled by the update, so the binding is not written; labels listed in
    ``drop_flags`` are let go on purpose. Extended properties are not flags and are checked by
    :func:`readback` instead.
    """
    drop = _drop_keys(drop_flags)
    problems = []
    for label, value in binding.get("properties", {}).items():
        key = _key(label)
        if key in drop or key == "disable ocsp stapling":
            continue
        entry = NETSH_PARAMETERS.get(key)
        if entry is None:
            if _key(value) == "not set":
                continue
            problems.append("'%s : %s' is a line this collection does not know" % (label, value))
            continue
        parameter, _since, kind = entry
        lowered = _key(value)
        if kind == FLAG and lowered not in ("set", "not set"):
            problems.append("'%s : %s' is neither Set nor Not Set" % (label, value))
        elif kind == ENABLED and lowered not in ("enabled", "disabled"):
            problems.append("'%s : %s' is neither Enabled nor Disabled" % (label, value))
        elif parameter is None and lowered == "set":
            problems.append("'%s : Set' has no parameter in netsh http update sslcert, which would clear it" % label)
    return problems


def _refusal(binding: dict, problems: list) -> str:
    return ("%s was not written: %s. netsh http update sslcert replaces the whole binding, so it would change what the "
            "administrator chose. Clear 'Disable OCSP Stapling' on this binding by hand (IIS Manager, or netsh with every "
            "value it shows), or list the labels in windows_stapling_drop_flags to let them go back to their default on "
            "purpose" % (binding["endpoint"], "; ".join(problems)))


def plan(gate: dict, bindings: list, iis_bindings=None, drop_flags=None) -> dict:
    """What to change on one Windows host so that every TLS binding staples.

    ``gate`` is :func:`version_gate`'s result, ``bindings`` :func:`parse_sslcert`'s, ``iis_bindings``
    the IIS https bindings as ``[{"site": str, "binding_information": "*:443:www.example.com",
    "ssl_flags": int}]`` (Get-WebBinding objects with ``ItemXPath`` are accepted too) or None
    without IIS, ``drop_flags`` the netsh labels an update may let go back to their default.

    Returns ``{"sni_registry": bool, "netsh_updates": [binding], "netsh_commands": [argv],
    "iis_updates": [{"site", "binding_information", "ssl_flags", "new_ssl_flags", "filter"}],
    "readback": [{"kind", "endpoint", "route": "iis" | "netsh", "before": binding}], "refused":
    [{"endpoint", "reason"}], "certificates": [hash], "targets": [{"host": None, "port", "server_name"}],
    "sni_targets": [{"port", "server_name"}], "warnings": [str]}``.
    """
    if not isinstance(gate, dict) or "supported" not in gate:
        raise WindowsParseError("windows plan: the gate must be the result of the windows_gate filter")
    if not isinstance(bindings, list):
        raise WindowsParseError("windows plan: the bindings must be the list the windows_sslcert filter returns")
    iis = [_iis_binding(item, number) for number, item in enumerate(iis_bindings or [], 1)]
    _drop_keys(drop_flags)
    warnings = list(gate.get("warnings") or [])
    result = {"sni_registry": False, "netsh_updates": [], "netsh_commands": [], "iis_updates": [], "readback": [],
              "refused": [], "certificates": [], "targets": [], "sni_targets": [], "warnings": warnings}
    if not gate["supported"]:
        warnings.append("nothing planned: %s" % (gate.get("reason") or "the host is not supported"))
        return result

    sni = [binding for binding in bindings if binding["kind"] in ("hostname", "ccs")]
    if sni and gate.get("sni_capable"):
        result["sni_registry"] = True
    elif sni:
        warnings.append("%s shows SNI or Centralized Certificate Store bindings, which need Windows Server 2012 or later: "
                        "left as they are" % gate.get("name"))

    for item in iis:
        if item["ssl_flags"] & IIS_SSL_FLAG_DISABLE_OCSP_STAPLING:
            result["iis_updates"].append({
                "site": item["site"], "binding_information": item["binding_information"], "ssl_flags": item["ssl_flags"],
                "new_ssl_flags": item["ssl_flags"] & ~IIS_SSL_FLAG_DISABLE_OCSP_STAPLING,
                "filter": iis_binding_filter(item["site"], item["binding_information"])})

    for binding in bindings:
        if not binding.get("disable_ocsp_stapling"):
            continue
        if not gate.get("per_binding_flag"):
            warnings.append("%s shows 'Disable OCSP Stapling' set, which %s should not have: left as it is" % (
                binding["endpoint"], gate.get("name")))
            continue
        owner = _owned_by(binding, iis)
        check = {"kind": binding["kind"], "endpoint": binding["endpoint"], "route": "netsh", "before": binding}
        if owner is not None and owner["ssl_flags"] & IIS_SSL_FLAG_DISABLE_OCSP_STAPLING:
            # IIS owns it and carries the flag: change IIS, then the read-back shows whether HTTP.sys followed.
            check["route"] = "iis"
            result["readback"].append(check)
            continue
        # Not IIS's, or IIS's configuration already has the flag clear: only HTTP.sys can change it.
        problems = not_understood(binding, drop_flags)
        if problems:
            result["refused"].append({"endpoint": binding["endpoint"], "reason": _refusal(binding, problems)})
            continue
        if owner is not None:
            warnings.append("%s has 'Disable OCSP Stapling' set in HTTP.sys while its IIS binding %s of site %s does not: "
                            "cleared through HTTP.sys" % (binding["endpoint"], owner["binding_information"], owner["site"]))
        result["netsh_updates"].append(binding)
        result["readback"].append(check)

    result["certificates"] = sorted({binding["certificate_hash"] for binding in bindings if binding.get("certificate_hash")})

    seen = set()
    for binding in bindings:
        names = [binding["host"] if binding["kind"] == "hostname" else None]
        if binding["kind"] == "ccs":
            # The names of a CCS binding live in IIS only: each CCS https binding on that port is a site to verify.
            names = sorted({item["_host"] for item in iis if item["ssl_flags"] & IIS_SSL_FLAG_CCS
                            and item["_port"] == binding["port"] and item["_host"]}) or [None]
            if names == [None]:
                warnings.append("the Centralized Certificate Store binding on port %d names no host; verify it with the host "
                                "names of its sites (pass the IIS bindings to name them)" % binding["port"])
        for name in names:
            if (binding["port"], name) not in seen:
                seen.add((binding["port"], name))
                result["targets"].append({"host": None, "port": binding["port"], "server_name": name})
                if binding["kind"] != "ip" and name:
                    result["sni_targets"].append({"port": binding["port"], "server_name": name.lower()})
    result["netsh_commands"] = [netsh_update_command(binding, drop_flags) for binding in result["netsh_updates"]]
    return result


def _netsh_value(kind: str, value: str):
    """The netsh argument value of a shown property, or None to leave the parameter out (netsh's default)."""
    if value in _NULL:
        return None
    lowered = _key(value)
    if kind == FLAG:
        # Not Set is the default, which leaving the parameter out keeps.
        return "enable" if lowered == "set" else None
    if kind == ENABLED:
        return "enable" if lowered == "enabled" else "disable"
    return value


def netsh_update_command(binding: dict, drop_flags=None) -> list:
    """The argv of ``netsh http update sslcert`` that clears the binding's "disable OCSP stapling" flag.

    update sslcert replaces the binding with the parameters given, so every property that
    :func:`parse_sslcert` captured and that has a parameter (see :data:`NETSH_PARAMETERS`) is passed
    again: values as shown, Enabled / Disabled as enable / disable, flags shown as Set as enable;
    flags shown as ``Not Set`` and ``(null)`` values are left out (netsh's default), as are the
    parameters newer than Windows Server 2008 whose value is their default ``disable``;
    ``disableocspstapling=disable`` comes last. Raises :class:`WindowsParseError` for a binding
    :func:`not_understood` refuses: the command is never built for one.
    """
    kind = binding.get("kind")
    if kind not in _ENDPOINT_PARAMETER or not binding.get("endpoint"):
        raise WindowsParseError("netsh update: expected a binding from the windows_sslcert filter, got %r" % (binding,))
    problems = not_understood(binding, drop_flags)
    if problems:
        raise WindowsParseError("netsh update: " + _refusal(binding, problems))
    return _update_argv(binding, _drop_keys(drop_flags))


def _update_argv(binding: dict, drop: set) -> list:
    """The update's argv for a binding, without judging it (netsh_update_command judges first)."""
    argv = ["netsh", "http", "update", "sslcert", "%s=%s" % (_ENDPOINT_PARAMETER[binding["kind"]], binding["endpoint"])]
    done = set()
    for label, value in binding.get("properties", {}).items():
        key = _key(label)
        entry = NETSH_PARAMETERS.get(key)
        if entry is None or entry[0] is None or entry[0] == "disableocspstapling" or entry[0] in done or key in drop:
            continue
        parameter, since_2008, value_kind = entry
        if parameter == "certhash" and binding.get("certificate_hash"):
            argument = binding["certificate_hash"]
        else:
            argument = _netsh_value(value_kind, value)
        # A newer parameter is passed only when it must be (its value is not the default, disable): one
        # that this build's netsh does not know would make it refuse the whole update.
        if argument is None or (not since_2008 and argument == "disable"):
            continue
        done.add(parameter)
        argv.append("%s=%s" % (parameter, argument))
    argv.append("disableocspstapling=disable")
    return argv


# --- read back ------------------------------------------------------------------------------------------


def _comparable(binding: dict, drop: set) -> dict:
    """The values a write must keep: every line but the stapling flag and the labels let go on purpose."""
    values = {}
    for label, value in binding.get("properties", {}).items():
        key = _key(label)
        if key in drop or key == "disable ocsp stapling":
            continue
        if key == "certificate hash":
            value = value.replace(" ", "")
        values[key] = (label, _key(value))
    return values


def _differences(before: dict, after: dict, drop: set) -> list:
    old, new = _comparable(before, drop), _comparable(after, drop)
    changes = []
    for key in sorted(set(old) | set(new)):
        if key in old and key in new and old[key][1] == new[key][1]:
            continue
        # A line that appears or disappears at its default is the same setting (a Not Set flag is shown or not).
        was = before["properties"].get(old[key][0]) if key in old else None
        now = after["properties"].get(new[key][0]) if key in new else None
        if _key(was or "not set") == "not set" and _key(now or "not set") == "not set":
            continue
        label = (old.get(key) or new.get(key))[0]
        changes.append("%s was %s, is now %s" % (label, was if was is not None else "not shown", now if now is not None else "not shown"))
    ext_before = [{_key(k): _key(v) for k, v in group.items()} for group in before.get("extended_properties", [])]
    ext_after = [{_key(k): _key(v) for k, v in group.items()} for group in after.get("extended_properties", [])]
    if ext_before != ext_after:
        changes.append("its Extended Properties changed from %s to %s (netsh has no parameter for them: set them again with "
                       "the tool that set them)" % (before.get("extended_properties"), after.get("extended_properties")))
    return changes


def readback(planned: dict, after: list, drop_flags=None, final: bool = False) -> dict:
    """Whether each binding the run changed now staples, read from ``netsh http show sslcert`` again.

    ``planned`` is :func:`plan`'s result, ``after`` :func:`parse_sslcert` of the output read after
    the changes. For each binding of ``planned["readback"]``: gone -> failed; "Disable OCSP
    Stapling" no longer Set and every other line (extended properties included) as before -> confirmed;
    still Set after an IIS change that did not reach HTTP.sys -> cleared through HTTP.sys
    (``http_sys_fixes`` and their ``netsh_commands``) when every line is understood, else failed with
    what to do; still Set after netsh, or in the ``final`` read-back -> failed. Returns ``{"ok": bool,
    "confirmed": [endpoint], "http_sys_fixes": [binding], "netsh_commands": [argv], "failed":
    [{"endpoint", "reason"}]}``.
    """
    if not isinstance(planned, dict) or "readback" not in planned:
        raise WindowsParseError("windows read-back: the plan must be the result of the windows_plan filter")
    if not isinstance(after, list):
        raise WindowsParseError("windows read-back: the bindings must be the list the windows_sslcert filter returns")
    drop = _drop_keys(drop_flags)
    now = {(binding["kind"], _key(binding["endpoint"])): binding for binding in after}
    result = {"ok": True, "confirmed": [], "http_sys_fixes": [], "netsh_commands": [], "failed": []}
    for check in planned["readback"]:
        endpoint, before = check["endpoint"], check["before"]
        current = now.get((check["kind"], _key(endpoint)))
        if current is None:
            result["failed"].append({"endpoint": endpoint, "reason": (
                "%s is gone from netsh http show sslcert after the change; re-create it (IIS Manager for an IIS site, or netsh "
                "http add sslcert with the values it had: %s)" % (endpoint, " ".join(_update_argv(before, drop)[4:-1])))})
            continue
        if current.get("disable_ocsp_stapling"):
            if check["route"] == "iis" and not final:
                problems = not_understood(current, drop_flags)
                if problems:
                    result["failed"].append({"endpoint": endpoint, "reason": (
                        "IIS's sslFlags were cleared but HTTP.sys still shows 'Disable OCSP Stapling : Set' for %s, and it "
                        "cannot be cleared through HTTP.sys safely: %s" % (endpoint, _refusal(current, problems)))})
                else:
                    result["http_sys_fixes"].append(current)
                    result["netsh_commands"].append(netsh_update_command(current, drop_flags))
                continue
            result["failed"].append({"endpoint": endpoint, "reason": (
                "%s still shows 'Disable OCSP Stapling : Set' after %s; clear it by hand (IIS Manager: the binding's "
                "'Disable OCSP Stapling' box; else netsh http update sslcert with every value it shows and "
                "disableocspstapling=disable) and run again" % (
                    endpoint, "IIS and netsh" if check["route"] == "iis" else "netsh http update sslcert"))})
            continue
        changes = _differences(before, current, drop)
        if changes:
            result["failed"].append({"endpoint": endpoint, "reason": (
                "%s staples now, but the change altered it: %s; put those values back (IIS Manager or netsh http update "
                "sslcert)" % (endpoint, "; ".join(changes)))})
            continue
        result["confirmed"].append(endpoint)
    result["ok"] = not result["failed"] and not result["http_sys_fixes"]
    return result


# --- verify's verdicts ----------------------------------------------------------------------------------


RESTART_HINT = (
    "EnableOcspStaplingForSni was set in this run and the HTTP service was not restarted; Microsoft does not say whether "
    "HTTP.sys reads it without a restart, so a restart may be needed: run again with windows_stapling_restart_http: true, "
    "or restart the HTTP service (and the services that depend on it) or the host in a maintenance window")


def verify_failures(results: list, planned: dict, restart_pending: bool = False) -> list:
    """The reasons of the verified bindings that fail the host, with the pending restart named where it may be why.

    A binding whose served certificate has no OCSP URL cannot staple (the preflight reported it as not
    applicable) and does not fail the host; every other failed result does. When the SNI registry
    value was set and the HTTP service not restarted, the reason of each failed SNI / CCS binding says
    that a restart may be needed.
    """
    if not isinstance(results, list):
        raise WindowsParseError("windows verify failures: expected the targets that ocsp.stapling.verify returned")
    sni = {(int(target["port"]), _key(target["server_name"])) for target in (planned or {}).get("sni_targets", [])}
    reasons = []
    for result in results:
        if not isinstance(result, dict) or result.get("ok"):
            continue
        certificate = result.get("certificate")
        if isinstance(certificate, dict) and not certificate.get("ocsp_urls"):
            continue
        reason = str(result.get("reason") or "no reason given")
        where = "%s:%s" % (result.get("server_name") or result.get("host"), result.get("port"))
        if restart_pending and (int(result.get("port") or 0), _key(result.get("server_name") or "")) in sni:
            reason += "; " + RESTART_HINT
        reasons.append("%s: %s" % (where, reason))
    return reasons


# --- the audit: each binding as a site record -------------------------------------------------------------

# The server of a binding in the audit's rows and site records: HTTP.sys terminates TLS for IIS and every
# other user of the HTTP Server API, and its bindings are what is audited.
AUDIT_SERVER = "http.sys"
# A binding that names no store (netsh shows "(null)") uses the machine's personal store.
DEFAULT_STORE = "My"
# The stores of Cert:\LocalMachine whose certificates the read-only script returns whole, for the issuers:
# intermediate CAs and trusted roots (bundle_certificates keeps only those in a bound certificate's chain).
AUTHORITY_STORES = ("CA", "Root")


def store_path(store: str) -> str:
    """The PowerShell path of a machine store: Cert:\\LocalMachine\\My."""
    return "Cert:\\LocalMachine\\%s" % store


def certificate_path(store: str, thumbprint: str) -> str:
    """The PowerShell path of a machine-store certificate, as a person pastes it into Get-Item: Cert:\\LocalMachine\\My\\<THUMBPRINT>."""
    return "%s\\%s" % (store_path(store), thumbprint.upper())


def _der_pem(der_base64, where: str) -> str:
    """The PEM text of a certificate the host returned as base64 DER; WindowsParseError when it is not base64."""
    if not isinstance(der_base64, str) or not der_base64.strip():
        raise WindowsParseError("%s: no base64 DER (der) was returned" % where)
    try:
        der = base64.b64decode("".join(der_base64.split()), validate=True)
    except ValueError:
        raise WindowsParseError("%s: der is not base64 ([Convert]::ToBase64String of the certificate's RawData)" % where) from None
    return canonical_pem(der) + "\n"


def _bound_certificate(item: dict, thumbprint: str, path: str) -> dict:
    """The certificate entry (``{source, blocks}`` or ``{source, error}``, as server_info's) of a bound certificate."""
    try:
        text = _der_pem(item.get("der"), path)
    except WindowsParseError as exc:
        return {"source": path, "error": str(exc)}
    # A thumbprint is the SHA-1 of the DER: anything else is not the certificate the binding names.
    if hashlib.sha1(block_der(text)).hexdigest() != thumbprint:
        return {"source": path, "error": "%s: the DER returned does not hash to the thumbprint %s; read the host again" % (path, thumbprint.upper())}
    return site_certificates(text, path)


def _store_read(read) -> tuple:
    """The read-only script's result, checked: (bound certificates, authorities, SNI registry value, IIS bindings or None)."""
    if not isinstance(read, dict):
        raise WindowsParseError("windows audit: the host's read must be the result the audit's PowerShell returns "
                                "({certificates, authorities, sni_stapling, iis}), got %s" % type(read).__name__)
    certificates, authorities = read.get("certificates"), read.get("authorities")
    if not isinstance(certificates, list) or not isinstance(authorities, list):
        raise WindowsParseError("windows audit: the host's read has no certificates and authorities lists; pass the result "
                                "of the audit's PowerShell as it is (win_powershell's result)")
    for number, item in enumerate(certificates + authorities, 1):
        if not isinstance(item, dict) or not isinstance(item.get("store"), str) or not item["store"]:
            raise WindowsParseError("windows audit: certificate %d of the host's read has no store name: %r" % (number, item))
    sni = read.get("sni_stapling")
    if isinstance(sni, str) and sni.strip().isdigit():
        sni = int(sni)
    if sni is not None and (isinstance(sni, bool) or not isinstance(sni, int)):
        raise WindowsParseError("windows audit: sni_stapling is %r, not the DWORD of %s or null" % (sni, SNI_REGISTRY_VALUE))
    iis = read.get("iis")
    if iis is not None and not isinstance(iis, list):
        raise WindowsParseError("windows audit: iis must be the list of IIS https bindings, or null without IIS")
    unreadable = read.get("unreadable_stores") or []
    if not isinstance(unreadable, list) or not all(isinstance(item, dict) and isinstance(item.get("store"), str) for item in unreadable):
        raise WindowsParseError("windows audit: unreadable_stores must be a list of {store, error}")
    return certificates, authorities, sni, iis, {item["store"].upper(): str(item.get("error") or "no reason given") for item in unreadable}


def _iis_names(binding: dict, iis: list) -> tuple:
    """(host names, IIS sites) that IIS maps to an HTTP.sys binding: the https bindings of IIS it serves.

    A hostname:port binding serves IIS's SNI bindings of that name and port; a CCS binding the CCS bindings of
    that port; an IP:port binding the bindings without SNI or CCS on that address and port (IIS's "*" is
    HTTP.sys's 0.0.0.0 or [::]), whose host names are the host headers of the sites behind it.
    """
    names, sites = [], []
    address = (binding.get("host") or "").lower()
    for item in iis:
        if item["_port"] != binding["port"]:
            continue
        flags = item["ssl_flags"]
        if binding["kind"] == "hostname":
            serves = item["_host"] == address and not flags & IIS_SSL_FLAG_CCS
        elif binding["kind"] == "ccs":
            serves = bool(flags & IIS_SSL_FLAG_CCS)
        else:
            serves = not flags & (IIS_SSL_FLAG_SNI | IIS_SSL_FLAG_CCS) and (
                item["_address"] == address or (item["_address"] == "0.0.0.0" and address == "::"))
        if not serves:
            continue
        if item["_host"] and item["_host"] not in names:
            names.append(item["_host"])
        if item["site"] not in sites:
            sites.append(item["site"])
    return names, sites


def _binding_stapling(binding: dict, sni) -> tuple:
    """("on" | "off" | "absent", why) of one binding: the per-binding flag first, then what HTTP.sys does by default.

    No line of a binding ever turns stapling on: "on" is HTTP.sys's default (IP:port) or the host-wide registry
    value (SNI, CCS), so a binding whose certificate cannot be stapled has nothing of its own to remove.
    """
    if binding.get("disable_ocsp_stapling"):
        return "off", "netsh http show sslcert shows 'Disable OCSP Stapling : Set' for the HTTP.sys binding %s" % binding["endpoint"]
    if binding["kind"] == "ip":
        return "on", "HTTP.sys staples OCSP on IP:port bindings by default (Windows Server 2008 and later)"
    if sni is None:
        return "absent", ("%s is not set: HTTP.sys staples nothing on SNI and Centralized Certificate Store bindings" % SNI_REGISTRY_VALUE)
    if sni == 1:
        return "on", "%s = 1 (host-wide): HTTP.sys staples on SNI and Centralized Certificate Store bindings" % SNI_REGISTRY_VALUE
    return "off", ("%s = %d (1 turns stapling on for SNI and Centralized Certificate Store bindings) under %s" % (
        SNI_REGISTRY_VALUE, sni, SCHANNEL_KEY))


def audit_info(gate: dict, bindings: list, read: dict) -> dict:
    """A Windows host's HTTP.sys bindings in the shape of a server_info result, for the audit's judgement.

    ``gate`` is :func:`version_gate`'s result, ``bindings`` :func:`parse_sslcert`'s, ``read`` what the audit's
    read-only PowerShell returned: ``{"certificates": [{"store", "thumbprint", "der"}]`` (every machine-store
    certificate whose thumbprint a binding names, in each store it is in), ``"unreadable_stores": [{"store",
    "error"}]`` (the stores that could not be opened), ``"authorities": [{"store", "thumbprint", "der"}]``
    (every certificate of the :data:`AUTHORITY_STORES`), ``"sni_stapling"`` (the DWORD
    ``EnableOcspStaplingForSni``, or null when it is not set) and ``"iis"`` (the IIS https bindings as the
    windows role lists them, or null without IIS)``}``.

    Returns ``{"server": "http.sys", "version", "name", "sites": [site record], "certificates": {path: {source,
    blocks | error}}, "bundles": [{source, blocks | error}], "refused": [{"endpoint", "port", "server_names",
    "reason"}]}``: ``sites`` are site records as ``_sites.site_record`` makes them (``path`` and ``line`` null;
    ``details`` with the binding), one per IP:port or hostname:port binding, and one per Centralized Certificate
    Store binding that IIS names hosts for; a certificate path is the machine store's, ``Cert:\\LocalMachine\\My\\
    <THUMBPRINT>``. ``refused`` are the bindings that cannot be judged, each with why: no certificate, a
    certificate that is not in the store the binding names, a CCS binding without host names.
    """
    if not isinstance(gate, dict) or "supported" not in gate:
        raise WindowsParseError("windows audit: the gate must be the result of the windows_gate filter")
    if not gate["supported"]:
        raise WindowsParseError("windows audit: %s" % (gate.get("reason") or "the host is not supported"))
    if not isinstance(bindings, list):
        raise WindowsParseError("windows audit: the bindings must be the list the windows_sslcert filter returns")
    stored, authorities, sni, iis_read, unreadable = _store_read(read)
    iis = [_iis_binding(item, number) for number, item in enumerate(iis_read or [], 1)]
    # thumbprint -> {store (upper case) -> the store's name as the host spells it, and the DER}
    found = {}
    for item in stored:
        thumbprint = str(item.get("thumbprint") or "").replace(" ", "").lower()
        found.setdefault(thumbprint, {})[item["store"].upper()] = item
    info = {"server": AUDIT_SERVER, "version": gate.get("version"), "name": gate.get("name"), "sites": [], "certificates": {},
            "bundles": [], "refused": []}
    for index, binding in enumerate(bindings):
        names, iis_sites = _iis_names(binding, iis)
        if binding["kind"] == "hostname":
            names = [binding["host"].lower()] + [name for name in names if name != binding["host"].lower()]
        # A hostname:port or CCS binding answers on every address of its port.
        address = "*" if binding["kind"] != "ip" else ("[%s]" % binding["host"] if ":" in binding["host"] else binding["host"])
        refusal = None
        paths = []
        if binding["kind"] == "ccs":
            if not names:
                refusal = ("a Centralized Certificate Store binding whose host names IIS does not list (no IIS https binding "
                           "with 'Use Centralized Certificate Store' on port %d): nothing to send as SNI; check its sites with "
                           "ocsp.stapling.verify and their host names" % binding["port"])
        elif not binding.get("certificate_hash"):
            refusal = "the binding names no certificate (Certificate Hash is (null)): bind one with IIS Manager or netsh http update sslcert"
        else:
            named = binding.get("certificate_store") or DEFAULT_STORE
            store = named.upper()
            where = found.get(binding["certificate_hash"], {})
            if store not in where and store in unreadable:
                refusal = ("the store %s that holds its certificate could not be read (%s): run the audit as an administrator "
                           "of the host" % (store_path(named), unreadable[store]))
            elif store not in where:
                refusal = ("the certificate %s that the binding names is not in %s%s: HTTP.sys cannot serve it; bind a certificate "
                           "of that store (IIS Manager, or netsh http update sslcert certhash=... certstorename=...)" % (
                               binding["certificate_hash"].upper(), store_path(named),
                               " (it is in %s)" % ", ".join(store_path(other["store"]) for other in where.values()) if where else ""))
            else:
                path = certificate_path(where[store]["store"], binding["certificate_hash"])
                paths = [path]
                if path not in info["certificates"]:
                    info["certificates"][path] = _bound_certificate(where[store], binding["certificate_hash"], path)
        if refusal:
            info["refused"].append({"endpoint": binding["endpoint"], "kind": binding["kind"], "port": binding["port"],
                                    "address": address, "server_names": names, "reason": refusal})
            continue
        stapling, why = _binding_stapling(binding, sni)
        negotiate = any(_key(label) == "negotiate client certificate" and _key(value) == "enabled"
                        for label, value in binding.get("properties", {}).items())
        info["sites"].append({
            "server": AUDIT_SERVER,
            "index": index,
            "path": None,
            "line": None,
            "server_names": names,
            "sockets": [{"address": address, "port": binding["port"], "tls": True, "quic": False}],
            "ssl_certificate": paths,
            # The private key stays with the certificate in the store: named by the same path, never read.
            "ssl_certificate_key": list(paths),
            "chain_file": None,
            "stapling": stapling,
            "verifies_clients": negotiate,
            "uses_variables": False,
            "outcome": None,
            "reason": None,
            "details": {
                "endpoint": binding["endpoint"],
                "kind": binding["kind"],
                "certificate_hash": binding.get("certificate_hash"),
                "certificate_store": binding.get("certificate_store"),
                "application_id": binding.get("application_id"),
                "disable_ocsp_stapling": binding.get("disable_ocsp_stapling"),
                "sni_stapling": sni,
                "stapling_reason": why,
                # Stapling on without a line of this binding saying so (see _binding_stapling): not a configuration to remove.
                "stapling_by_default": stapling == "on",
                "iis_sites": iis_sites,
                "where": "the HTTP.sys binding %s" % binding["endpoint"],
            },
        })
    bundles = []
    for store in AUTHORITY_STORES:
        blocks = []
        for item in authorities:
            if item["store"].upper() != store.upper():
                continue
            try:
                blocks.append(_der_pem(item.get("der"), certificate_path(item["store"], str(item.get("thumbprint") or "?"))))
            except WindowsParseError as exc:
                blocks.append(exc)
        source = store_path(store)
        errors = [block for block in blocks if isinstance(block, WindowsParseError)]
        bundles.append((CertificateFileError(str(errors[0])) if errors else "".join(blocks), source))
    info["bundles"] = bundle_certificates(bundles, wanted_issuers(list(info["certificates"].values())))
    return info


def refused_rows(host: str, info: dict) -> list:
    """The audit rows of the bindings :func:`audit_info` could not judge: ``not audited``, each with why and where."""
    if not isinstance(info, dict) or not isinstance(info.get("refused"), list):
        raise WindowsParseError("windows audit: expected the result of the windows_audit_sites filter")
    rows = []
    for refused in info["refused"]:
        row = not_audited_row(str(host), refused["reason"], info.get("server") or AUDIT_SERVER)
        names = list(refused.get("server_names") or [])
        row.update(version=info.get("version"), site=names[0] if names else "(default server)", server_names=names,
                   socket="%s:%s" % (refused["address"], refused["port"]), port=refused["port"],
                   action="fix the HTTP.sys binding %s as the reason says, then run the audit again" % refused["endpoint"])
        rows.append(row)
    return rows
