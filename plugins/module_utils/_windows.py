# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows Server: read the HTTP.sys TLS bindings, gate on the version, and plan the stapling changes.

Runs on the controller on what the Windows host printed (``netsh http show sslcert``, the
``Get-WebBinding`` JSON, the gathered facts), so that all of it can be tested without Windows.
Standard library only, Python 3.8 compatible; nothing here knows about Ansible.

What Microsoft documents and what is inferred:

- Confirmed: the HTTP.sys flag ``HTTP_SERVICE_CONFIG_SSL_FLAG_DISABLE_OCSP_STAPLING`` is 0x80 (128)
  (Win32 metadata for http.h); the ``netsh http add sslcert`` parameter names, ``hostnameport``,
  ``ccs``, ``reject`` and ``disableocspstapling`` included (Microsoft's netsh http reference, see
  :data:`NETSH_PARAMETERS`); stapling is off by default for SNI and Centralized Certificate Store
  bindings and is turned on with the DWORD ``EnableOcspStaplingForSni`` = 1 under
  ``HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL`` (Microsoft's TLS/SSL
  (Schannel SSP) overview, OCSP stapling section, as quoted in the field).
- Not confirmed from Microsoft documentation: the English labels of ``netsh http show sslcert``
  (no sample output is documented; above all the newer ones such as ``Disable OCSP Stapling``), that
  ``update sslcert`` takes the same parameters as ``add sslcert``, and the IIS ``sslFlags`` bit 8
  (DisableOCSPStp). The parser therefore matches labels case-insensitively with collapsed spaces and
  keeps unknown labels in ``properties``.
"""

from __future__ import annotations

import re

SCHANNEL_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL"
SNI_REGISTRY_VALUE = "EnableOcspStaplingForSni"
# HTTP_SERVICE_CONFIG_SSL_FLAG_DISABLE_OCSP_STAPLING in http.h (confirmed: 128).
HTTP_FLAG_DISABLE_OCSP_STAPLING = 0x80
# IIS sslFlags bits (applicationHost.config <binding sslFlags>): Sni=1, CentralCertStore=2,
# DisableHTTP2=4, DisableOCSPStp=8 (IIS 10 on Server 2019+; the names come from IIS's schema).
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

# Every English label of `netsh http show sslcert` known here (lower case, single spaces), with the
# `netsh http update sslcert` parameter it maps to, and whether that parameter exists since Windows
# Server 2008 (True) or only on newer builds (False). None: shown, but no parameter takes it.
# Parameter names: confirmed from Microsoft's netsh http reference - the Windows Server 2008 page
# (technet Cc725882) for the first group, the current "netsh http" page (Windows Server networking
# docs; add sslcert syntax, read through a mirror) for all of them, hostnameport, ccs, reject and the
# disable*/enable* flags included. The update sslcert syntax is taken to be that of add sslcert.
# Labels: NOT confirmed from Microsoft's documentation, which shows no sample output; spellings as
# netsh prints them on the builds seen, matched case-insensitively with collapsed spaces.
NETSH_PARAMETERS = {
    "certificate hash": ("certhash", True),
    "application id": ("appid", True),
    "certificate store name": ("certstorename", True),
    "verify client certificate revocation": ("verifyclientcertrevocation", True),
    "verify revocation using cached client certificate only": ("verifyrevocationwithcachedclientcertonly", True),
    "usage check": ("usagecheck", True),
    "revocation freshness time": ("revocationfreshnesstime", True),
    "url retrieval timeout": ("urlretrievaltimeout", True),
    "ctl identifier": ("sslctlidentifier", True),
    "ctl store name": ("sslctlstorename", True),
    "ds mapper usage": ("dsmapperusage", True),
    "negotiate client certificate": ("clientcertnegotiation", True),
    # Newer builds (2016 / 2019 / 2022 / 2025); a build knows only some of them, so they are passed
    # only when set (see netsh_update_command).
    "reject connections": ("reject", False),
    "disable http2": ("disablehttp2", False),
    "disable quic": ("disablequic", False),
    "disable tls1.2": ("disabletls12", False),
    "disable tls 1.2": ("disabletls12", False),
    "disable tls1.3": ("disabletls13", False),
    "disable tls 1.3": ("disabletls13", False),
    "disable ocsp stapling": ("disableocspstapling", False),
    "enable token binding": ("enabletokenbinding", False),
    "log extended events": ("logextendedevents", False),
    "disable legacy tls versions": ("disablelegacytls", False),
    "enable session ticket": ("enablesessionticket", False),
    "disable session id": ("disablesessionid", False),
    # Shown, but no parameter of update sslcert takes them.
    "extended properties": (None, False),
    "propertyid": (None, False),
    "receive window": (None, False),
    "max settings per frame": (None, False),
    "max settings per minute": (None, False),
}

# The parameters that name the binding; netsh_update_command puts the endpoint first itself.
_ENDPOINT_PARAMETER = {"ip": "ipport", "hostname": "hostnameport", "ccs": "ccs"}

_LINE = re.compile(r"^\s*(?P<label>[^:\r\n][^\r\n]*?)\s*:\s*(?P<value>.*?)\s*$")
_HEADER = re.compile(r"^\s*(?P<label>IP:port|Hostname:port|Central Certificate Store)\s*:\s*(?P<value>\S.*?)\s*$", re.IGNORECASE)
_BANNER = re.compile(r"^\s*(SSL Certificate bindings:?|-{3,})\s*$", re.IGNORECASE)
_ON = ("set", "enabled", "enable", "yes", "true")
_OFF = ("not set", "disabled", "disable", "no", "false")
_NULL = ("", "(null)")


class WindowsParseError(Exception):
    """What the host printed or reported cannot be understood; the message says what and what to do."""


def _key(label: str) -> str:
    return " ".join(label.lower().split())


def _flag(value):
    lowered = _key(value)
    if lowered in _ON:
        return True
    if lowered in _OFF:
        return False
    return None


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
        disable = _flag(stapling)
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
    such line: before Server 2019), "properties": {label: value}}``; ``properties`` holds every
    ``Label : value`` line of the block, labels as printed. A repeated label (the ``Extended
    Properties`` groups) keeps its first value. No bindings give an empty list; anything not
    understood raises :class:`WindowsParseError` (never a guess).
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
            current = {"kind": kind, "endpoint": endpoint, "port": port, "host": host, "properties": {}}
            continue
        if _BANNER.match(line):
            banner = True
            continue
        pair = _LINE.match(line)
        if current is not None and pair:
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


# NT version -> Windows Server name; build numbers for NT 10.0.
_SERVER_NAMES = {(6, 0): "Windows Server 2008", (6, 1): "Windows Server 2008 R2", (6, 2): "Windows Server 2012",
                 (6, 3): "Windows Server 2012 R2", (5, 2): "Windows Server 2003", (5, 0): "Windows 2000"}
_SERVER_BUILDS = ((26100, "Windows Server 2025"), (20348, "Windows Server 2022"), (17763, "Windows Server 2019"),
                  (14393, "Windows Server 2016"))
SNI_MINIMUM = (6, 2)
PER_BINDING_FLAG_BUILD = 17763


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
    searched for "Server") and ``ansible_distribution`` for messages. Returns ``{"supported": bool,
    "version": "10.0.17763", "name": "Windows Server 2019", "sni_capable": bool (NT 6.2+),
    "per_binding_flag": bool (build 17763+), "reason": str}``. Raises :class:`WindowsParseError` on
    facts without a readable version.
    """
    if not isinstance(facts, dict):
        raise WindowsParseError("windows gate: expected the host's facts as a mapping, got %s" % type(facts).__name__)
    raw = facts.get("ansible_distribution_version", facts.get("distribution_version"))
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(raw or ""))
    if not match:
        raise WindowsParseError(
            "windows gate: ansible_distribution_version is %r, not an NT version such as 10.0.17763.0; gather the "
            "facts of the Windows host (ansible.builtin.setup) and pass them as they are" % (raw,))
    major, minor, build = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    version = "%d.%d.%d" % (major, minor, build)
    distribution = str(facts.get("ansible_distribution", facts.get("distribution")) or "")
    product_type = str(facts.get("ansible_os_product_type", facts.get("os_product_type")) or "").lower()
    is_server = product_type in ("server", "domain_controller") if product_type else "server" in distribution.lower()
    name = _server_name(major, minor, build) if is_server else (distribution or "Windows NT %s" % version)
    result = {
        "supported": False,
        "version": version,
        "name": name,
        "sni_capable": (major, minor) >= SNI_MINIMUM,
        "per_binding_flag": (major, minor) > (10, 0) or ((major, minor) == (10, 0) and build >= PER_BINDING_FLAG_BUILD),
        "reason": "",
    }
    if not is_server:
        result["reason"] = ("%s (NT %s, product type %s) is not Windows Server: this collection targets Windows Server "
                            "(IIS / HTTP.sys on Windows Server 2008 or later)" % (name, version, product_type or "unknown"))
    elif (major, minor) < (6, 0):
        result["reason"] = ("%s (NT %s) has no OCSP stapling: upgrade to Windows Server 2008 or later (NT 6.0)" % (name, version))
    else:
        result["supported"] = True
        parts = ["%s (NT %s) staples OCSP for IP:port bindings by default" % (name, version)]
        parts.append("SNI and Centralized Certificate Store bindings need %s = 1" % SNI_REGISTRY_VALUE if result["sni_capable"]
                     else "it has no SNI or Centralized Certificate Store bindings (Server 2012+)")
        if result["per_binding_flag"]:
            parts.append("a per-binding 'disable OCSP stapling' flag can be set (Server 2019+)")
        result["reason"] = "; ".join(parts)
    return result


def _iis_binding(item, number: int) -> dict:
    """One IIS https binding as {site, binding_information, ssl_flags}, from that shape or Get-WebBinding's."""
    if not isinstance(item, dict):
        raise WindowsParseError("IIS binding %d: expected a mapping, got %s" % (number, type(item).__name__))
    site = item.get("site")
    if site is None and isinstance(item.get("ItemXPath"), str):
        found = re.search(r"@name='((?:[^']|'')*)'", item["ItemXPath"])
        site = found.group(1).replace("''", "'") if found else item["ItemXPath"]
    information = item.get("binding_information", item.get("bindingInformation"))
    flags = item.get("ssl_flags", item.get("sslFlags", 0))
    if not isinstance(information, str) or information.count(":") < 2:
        raise WindowsParseError("IIS binding %d (site %s): binding_information %r is not 'IP:port:host name' such as "
                                "'*:443:www.example.com'" % (number, site, information))
    if isinstance(flags, str) and flags.strip().isdigit():
        flags = int(flags)
    if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
        raise WindowsParseError("IIS binding %d (site %s): ssl_flags %r is not a whole number; pass sslFlags as the number "
                                "Get-WebBinding returns" % (number, site, flags))
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


def plan(gate: dict, bindings: list, iis_bindings=None) -> dict:
    """What to change on one Windows host so that every TLS binding staples.

    ``gate`` is :func:`version_gate`'s result, ``bindings`` :func:`parse_sslcert`'s, ``iis_bindings``
    the IIS https bindings as ``[{"site": str, "binding_information": "*:443:www.example.com",
    "ssl_flags": int}]`` (the raw ``Get-WebBinding -Protocol https | Select-Object ItemXPath,
    bindingInformation, sslFlags`` objects are accepted too) or None without IIS.

    Returns ``{"sni_registry": bool, "netsh_updates": [binding], "netsh_commands": [argv of
    netsh_update_command, one per netsh update], "iis_updates": [{"site",
    "binding_information", "ssl_flags", "new_ssl_flags"}], "certificates": [hash], "targets":
    [{"host": None, "port": int, "server_name": str | None}], "warnings": [str]}``.
    """
    if not isinstance(gate, dict) or "supported" not in gate:
        raise WindowsParseError("windows plan: the gate must be the result of the windows_gate filter")
    if not isinstance(bindings, list):
        raise WindowsParseError("windows plan: the bindings must be the list the windows_sslcert filter returns")
    iis = [_iis_binding(item, number) for number, item in enumerate(iis_bindings or [], 1)]
    warnings = []
    result = {"sni_registry": False, "netsh_updates": [], "netsh_commands": [], "iis_updates": [], "certificates": [],
              "targets": [], "warnings": warnings}
    if not gate["supported"]:
        warnings.append("nothing planned: %s" % gate.get("reason", "the host is not supported"))
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
                "new_ssl_flags": item["ssl_flags"] & ~IIS_SSL_FLAG_DISABLE_OCSP_STAPLING})

    for binding in bindings:
        if not binding.get("disable_ocsp_stapling"):
            continue
        owner = _owned_by(binding, iis)
        if owner is not None:
            if not owner["ssl_flags"] & IIS_SSL_FLAG_DISABLE_OCSP_STAPLING:
                warnings.append("%s has 'Disable OCSP Stapling' set in HTTP.sys but its IIS binding %s of site %s does not: "
                                "IIS owns it, so re-apply the site's bindings in IIS rather than with netsh" % (
                                    binding["endpoint"], owner["binding_information"], owner["site"]))
            continue
        if not gate.get("per_binding_flag"):
            warnings.append("%s shows 'Disable OCSP Stapling' set, which %s should not have: left as it is" % (
                binding["endpoint"], gate.get("name")))
            continue
        if _lost_properties(binding):
            warnings.append("netsh http update sslcert on %s cannot keep %s: check them after the update" % (
                binding["endpoint"], ", ".join(_lost_properties(binding))))
        result["netsh_updates"].append(binding)

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
    result["netsh_commands"] = [netsh_update_command(binding) for binding in result["netsh_updates"]]
    return result


def _lost_properties(binding: dict) -> list:
    """The labels of a binding that netsh http update sslcert takes no parameter for, with a value worth keeping."""
    lost = []
    for label, value in binding["properties"].items():
        key = _key(label)
        if key in ("extended properties", "propertyid") or value in _NULL:
            continue
        if key not in NETSH_PARAMETERS or NETSH_PARAMETERS[key][0] is None:
            lost.append(label)
    return lost


def _netsh_value(parameter: str, value: str):
    """The netsh argument value of a shown property, or None to leave the parameter out (netsh's default)."""
    if value in _NULL:
        return None
    flag = _flag(value)
    if flag is None:
        return value
    if _key(value) in ("set", "not set"):
        # A flag line: Not Set is the default, which leaving the parameter out keeps.
        return "enable" if flag else None
    return "enable" if flag else "disable"


def netsh_update_command(binding: dict) -> list:
    """The argv of ``netsh http update sslcert`` that clears the binding's "disable OCSP stapling" flag.

    update sslcert replaces the binding with the parameters given, so every property that
    :func:`parse_sslcert` captured and that has a parameter (see :data:`NETSH_PARAMETERS`) is passed
    again; flags shown as ``Not Set`` and ``(null)`` values are left out (netsh's default), as are
    the parameters newer than Windows Server 2008 whose value is the default ``disable``;
    ``disableocspstapling=disable`` comes last. Properties without a parameter (Extended Properties)
    cannot be passed.
    """
    kind = binding.get("kind")
    if kind not in _ENDPOINT_PARAMETER or not binding.get("endpoint"):
        raise WindowsParseError("netsh update: expected a binding from the windows_sslcert filter, got %r" % (binding,))
    argv = ["netsh", "http", "update", "sslcert", "%s=%s" % (_ENDPOINT_PARAMETER[kind], binding["endpoint"])]
    done = set()
    for label, value in binding.get("properties", {}).items():
        entry = NETSH_PARAMETERS.get(_key(label))
        if entry is None or entry[0] is None or entry[0] == "disableocspstapling" or entry[0] in done:
            continue
        parameter, since_2008 = entry
        if parameter == "certhash" and binding.get("certificate_hash"):
            argument = binding["certificate_hash"]
        else:
            argument = _netsh_value(parameter, value)
        # A newer parameter is passed only when it must be (its value is not the default, disable): one
        # that this build's netsh does not know would make it refuse the whole update.
        if argument is None or (not since_2008 and argument == "disable"):
            continue
        done.add(parameter)
        argv.append("%s=%s" % (parameter, argument))
    argv.append("disableocspstapling=disable")
    return argv
