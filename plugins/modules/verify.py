#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: verify
short_description: Prove that TLS endpoints staple a good, fresh OCSP response
version_added: 0.1.0
description:
  - Connects to each target with SNI, asks for the certificate status (TLS C(status_request))
    and judges the stapled OCSP response the way a careful client does.
  - A target passes when a response is stapled, its response status is C(successful), it names
    the served certificate (serial and issuer name and key hashes), it is signed by the issuer or
    by a responder the issuer authorised (OCSP Signing extended key usage) whose certificate is valid now
    (strictly, O(clock_skew) does not apply to it), the certificate status is C(good), and it is fresh
    (thisUpdate <= now <= nextUpdate, within O(clock_skew); without nextUpdate, thisUpdate at most O(max_age) old).
  - A target fails, with a reason saying so, when the response's nextUpdate is before its thisUpdate
    (an interval in which no time lies), when it holds several answers about the served certificate that
    contradict each other (for example V(good) and V(revoked)), when its CertID uses a hash algorithm that cannot
    be computed here, and when the server staples bytes that are not an OCSP response (also when the TLS library
    refuses them during the handshake; the handshake is then made again without the status request, to see the
    certificate). An error in one target's check never touches the results of the others.
  - The served certificate must be the right one. When a target carries O(targets[].expected_certificates) (the roles
    fill it from the certificate files the site is configured with), the served leaf must be one of them; without it, the
    leaf must be issued for the SNI name (a subjectAltName DNS name, or the common name when it has none; a wildcard
    stands for exactly one whole left-most label, RFC 6125). A target named by an IP address alone sends no SNI and
    skips the name check. Otherwise the target fails with C(the server answered with another site's certificate (...)),
    whatever it staples, and is not retried.
  - nginx fetches OCSP responses lazily and each worker process keeps its own cache, so the first
    handshakes after a start or reload carry no staple. A target without a staple is therefore
    tried again with back-off until O(retry_budget) is spent; the result says how many handshakes
    it took.
  - Many targets are checked concurrently in one call.
  - Each target has one deadline, O(retry_budget) + 2 x O(timeout) seconds after its first handshake starts, which
    covers the retries, one last handshake begun just before the budget is spent, and the diagnosis of the responder.
    Every handshake and the responder's fetch get at most O(timeout) and never more than the time left to that
    deadline, so neither a slow server nor a responder that drips its answer byte by byte holds a target longer.
    A reason says so when the deadline cut something short (C(... within the target's deadline of N s)).
  - "Read-only. Usually run on the controller (C(delegate_to: localhost) or C(connection: local))."
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
requirements:
  - pyOpenSSL >= 23.1 (TLS client that can ask for the certificate status)
  - cryptography >= 40 (OCSP parsing and signature checks)
extends_documentation_fragment:
  - ocsp.stapling.attributes.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the host it is placed on; that host needs network access to the targets.
options:
  targets:
    description:
      - The endpoints to check. Each item is a mapping with O(targets[].host), O(targets[].port) and
        O(targets[].server_name), or a string C(host), C(host:port) or C([v6address]:port).
      - Mutually exclusive with O(host).
    type: list
    elements: raw
    suboptions:
      host:
        description: Address or DNS name to connect to.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        default: 443
      server_name:
        description:
          - The SNI name to send, that is, which site on the server to check. Defaults to O(targets[].host).
          - Without the right name a server answers with its default site, which may be a different certificate.
          - A host name only. A name with a scheme, port or path (C(https://www.example.com), C(www.example.com:443)) is
            refused, with the name to write instead; the port goes in O(targets[].port). A trailing dot is dropped.
        type: str
      expected_certificates:
        description:
          - The certificates the site is configured with; the served leaf certificate must be one of them (a site may
            have several, such as an RSA and an ECDSA one).
          - Each is the certificate's SHA-256 fingerprint in hex (colons and spaces allowed, as
            C(openssl x509 -noout -fingerprint -sha256) prints it) or the certificate in PEM.
          - When empty, the served leaf must be issued for O(targets[].server_name) instead.
          - P(ocsp.stapling.verify_site_targets#filter) fills it from the RV(ocsp.stapling.server_info#module:certificates)
            result.
        type: list
        elements: str
  host:
    description: A single target's address or DNS name, instead of O(targets).
    type: str
  port:
    description: The single target's TCP port, with O(host).
    type: int
    default: 443
  server_name:
    description: The single target's SNI name, with O(host). Defaults to O(host). A host name only, as O(targets[].server_name).
    type: str
  expected_certificates:
    description: The single target's expected certificates, with O(host), as O(targets[].expected_certificates).
    type: list
    elements: str
  concurrency:
    description: How many targets are checked at the same time.
    type: int
    default: 16
  timeout:
    description:
      - Seconds allowed for one TLS handshake, name lookup and TCP connection included, and for the whole exchange
        with the responder when O(diagnose) asks it (connect, request, headers and body together, not per read).
      - Each is also bounded by the time left to the target's deadline, O(retry_budget) + 2 x O(timeout).
    type: float
    default: 5
  retry_budget:
    description:
      - Seconds to keep trying a target that staples nothing yet (cold cache) or whose responder said
        C(tryLater), before calling it broken. C(0) makes exactly one handshake, as a scanner does.
      - Definite failures (revoked, wrong certificate, bad signature, connection refused) are not retried.
      - No handshake starts after the budget is spent; the target's deadline, O(retry_budget) + 2 x O(timeout),
        leaves time for the last handshake and for the diagnosis.
    type: float
    default: 10
  retry_delay:
    description: Seconds to wait before the first retry; each further wait doubles, up to 2 seconds.
    type: float
    default: 0.25
  clock_skew:
    description:
      - Seconds of clock difference tolerated when judging thisUpdate and nextUpdate.
      - It does not apply to the validity of a delegated responder's certificate, which must be valid at the time of the check.
    type: int
    default: 300
  max_age:
    description:
      - Seconds after its thisUpdate that a response without nextUpdate is accepted as fresh (within O(clock_skew));
        older ones fail as stale.
      - RFC 6960 allows a response without nextUpdate ("newer information is always available"), RFC 5019 (section 4) has
        clients reject it; one day (the default) accepts an answer that is refreshed daily and never an old one.
      - The same rule as C(openssl ocsp -status_age).
    type: int
    default: 86400
  ca_file:
    description:
      - PEM file with extra certificates to look for the issuer in, for servers that do not send it
        (for example a leaf signed directly by a root). The served chain is always searched first.
    type: path
  diagnose:
    description:
      - When a target staples nothing, or staples a response without a certificate status (such as
        V(tryLater), which Apache makes up when it gets no answer from the responder), ask the
        certificate's OCSP responder directly from the host running this module, and add its answer to
        the reason and to RV(targets[].responder).
      - The answer names the fault, for example that the certificate has no OCSP URL, that the responder
        refuses connections (nothing listens), does not answer within O(timeout), answers an HTTP error
        status, a redirect or something that is not an OCSP response, answers V(tryLater) or V(unauthorized),
        signs with an unauthorised key, sends an expired response or one about another certificate, or says the
        certificate is revoked (nginx staples nothing rather than a revoked status).
      - The diagnosis contacts the URL named by the served certificate, which nothing has verified yet, from the
        host running this module. Addresses are not filtered (private PKIs keep their responders on private
        addresses, so those are not refused); turn O(diagnose) off for servers you do not trust to name a
        harmless URL.
      - Against a hostile responder, the request is one HTTP POST of C(application/ocsp-request) (RFC 6960,
        C(http) URLs, and C(https) with certificate verification) that never follows a redirect; an HTTP 3xx
        is reported as such. The whole exchange ends by O(timeout) and the target's deadline, however slowly the
        responder sends; an answer of more than 64 KiB (real OCSP responses are a few KiB) is refused without
        reading further; and no byte of what the responder or a server sent is copied into the result, only
        what was judged of it (for example its size and that it does not parse).
      - The proxy environment (C(http_proxy), C(https_proxy), C(no_proxy)) is honoured; the user agent is
        C(ansible-ocsp.stapling-verify).
    type: bool
    default: true
  report_only:
    description:
      - When V(true), report every result but do not fail the task when a target is not stapling a good,
        fresh response.
    type: bool
    default: false
notes:
  - The certificate chain is not validated against a trust store; this module is about the staple,
    whose signature is checked against the issuer found in the served chain or O(ca_file).
  - Scanners that make one handshake (sslyze, testssl.sh) report "not stapled" right after an nginx
    reload; the retry budget is what avoids that false negative.
  - Delegated to the controller (C(delegate_to=localhost), a local connection, no C(become), no C(async), and no
    other Python set for that host), the check runs inside Ansible's own worker process, through this module's action
    plugin, with the same options and the same answer; it then needs C(pyOpenSSL) in the Python that runs Ansible.
    This spares a new Python and the import of the TLS libraries for every host. Anywhere else the module runs as
    usual on the host it is delegated to.
seealso:
  - name: RFC 6960 (OCSP)
    description: The Online Certificate Status Protocol.
    link: https://www.rfc-editor.org/rfc/rfc6960
  - name: RFC 6066 section 8
    description: The TLS certificate status request extension.
    link: https://www.rfc-editor.org/rfc/rfc6066#section-8
"""

EXAMPLES = r"""
- name: Check one site from the controller
  ocsp.stapling.verify:
    host: www.example.com
  delegate_to: localhost

- name: Check every site of a server concurrently, without failing, and keep the results
  ocsp.stapling.verify:
    targets:
      - host: 192.0.2.10
        port: 443
        server_name: www.example.com
      - host: 192.0.2.10
        server_name: shop.example.com
      - "[2001:db8::10]:8443"
    retry_budget: 20
    report_only: true
  delegate_to: localhost
  register: stapling

- name: Show the sites that do not staple a good response
  ansible.builtin.debug:
    msg: "{{ stapling.targets | rejectattr('ok') | map(attribute='reason') | list }}"
"""

RETURN = r"""
targets:
  description: One result per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The address connected to.
      type: str
      sample: 192.0.2.10
    port:
      description: The port connected to.
      type: int
      sample: 443
    server_name:
      description: The SNI name sent.
      type: str
      sample: www.example.com
    ok:
      description: Whether a good, fresh, correctly signed staple for the served certificate was received.
      type: bool
      sample: true
    reason:
      description:
        - One line a person can act on.
        - "Among the failures, each its own class: C(the server answered with another site's certificate (...)),
          C(the staple's validity interval is inverted: nextUpdate ... is before thisUpdate ...),
          C(the staple's delegated responder certificate ... is not valid now: it expired ... ago),
          C(the staple is stale: it has no nextUpdate and its thisUpdate ... is ... old, more than the ... such a response is
          accepted), C(the staple holds 2 answers about the served certificate that contradict each other (good and revoked)),
          C(the staple names the served serial ... with a CertID hash algorithm that cannot be computed here),
          C(the server staples something that is not an OCSP response (the TLS library refused it: ...)) and
          C(the stapled bytes are not an OCSP response (N bytes; ...))."
      type: str
      sample: good, fresh staple signed by delegated responder 'Example OCSP'; next update in 6d23h
    certificate_matches:
      description:
        - Whether the served certificate is the right one, V(true) or V(false) (then the target fails and its reason starts
          with C(the server answered with another site's certificate)); null when nothing could be checked (no certificate
          received, or a target named by an IP address alone without O(targets[].expected_certificates)).
        - Checked against O(targets[].expected_certificates) when given, else against the SNI name.
      type: bool
    stapled:
      description: Whether the server stapled anything on the last handshake.
      type: bool
    response_status:
      description: OCSP response status (V(successful), V(tryLater), V(internalError), ...); null when nothing was stapled.
      type: str
      sample: successful
    cert_status:
      description: V(good), V(revoked) or V(unknown); null when the response could not be trusted.
      type: str
      sample: good
    revocation_time:
      description: When the certificate was revoked (ISO 8601, UTC).
      type: str
    revocation_reason:
      description: The revocation reason the responder gave, if any.
      type: str
      sample: keyCompromise
    produced_at:
      description: The response's producedAt (ISO 8601, UTC).
      type: str
    this_update:
      description: The response's thisUpdate (ISO 8601, UTC).
      type: str
    next_update:
      description: The response's nextUpdate (ISO 8601, UTC), null when the responder gave none.
      type: str
    seconds_to_expiry:
      description: Seconds until nextUpdate; negative when stale.
      type: int
    signer:
      description: Common name of the certificate that signed the response.
      type: str
    signer_kind:
      description: V(issuer), V(delegated), V(unauthorised) or V(unknown).
      type: str
    names_certificate:
      description: Whether the response is about the served certificate (serial, issuer name and key hashes).
      type: bool
    signature_valid:
      description: Whether the response signature verified with an authorised key.
      type: bool
    fresh:
      description: Whether thisUpdate <= now <= nextUpdate within the clock skew allowance.
      type: bool
    must_staple:
      description: Whether the served certificate carries OCSP Must-Staple (TLS feature status_request).
      type: bool
    applicable:
      description:
        - Whether stapling can work for this site at all. V(false) when the served certificate carries no OCSP
          responder URL (the result is then shown as C(n/a) and its reason starts with C(not applicable)); such a
          target is not retried. Null when no certificate was received.
      type: bool
    attempts:
      description: How many handshakes were made; more than 1 means the cache was cold or the responder busy.
      type: int
      sample: 2
    handshake_seconds:
      description: Duration of the last handshake.
      type: float
    elapsed_seconds:
      description: Time spent on this target, retries and diagnosis included; never much more than O(retry_budget) + 2 x O(timeout).
      type: float
    tls_version:
      description: Protocol of the last handshake.
      type: str
      sample: TLSv1.3
    issuer_found:
      description: Whether the issuer certificate was found in the served chain or O(ca_file).
      type: bool
    responder:
      description:
        - When nothing was stapled, or the staple carries no certificate status, and O(diagnose) is on, what the
          certificate's responder answered when asked directly (C(url), C(reachable), C(cert_status), C(reason)); null otherwise.
        - C(reachable) is V(false) when the responder refused the connection or did not answer within O(timeout),
          and null when it was not asked because the target's deadline was spent.
      type: dict
      sample: {url: "http://ocsp.example.com/", reachable: true, cert_status: revoked, reason: "its responder ... answers: ..."}
    certificate:
      description: The served certificate (subject, issuer, serial in hex, sha256 fingerprint in hex, not_after, ocsp_urls, issuer_subject).
      type: dict
summary:
  description: Counts over all targets.
  returned: always
  type: dict
  sample:
    total: 3
    ok: 2
    failed: 1
    not_stapled: 1
    not_applicable: 0
    revoked: 0
    must_staple_broken: 0
    failed_targets: ["192.0.2.10:443 (shop.example.com)"]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ocsp.stapling.plugins.module_utils import _crypto
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, VerifyError, answer


def main() -> None:
    # Delegated to the controller, the action plugin (plugins/action/verify.py) usually gives the same answer without running this.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE, required_one_of=REQUIRED_ONE_OF,
                           supports_check_mode=True)
    if not _crypto.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=_crypto.CRYPTOGRAPHY_IMPORT_ERROR)
    if not _crypto.HAS_PYOPENSSL:
        module.fail_json(msg=missing_required_lib("pyOpenSSL"), exception=_crypto.PYOPENSSL_IMPORT_ERROR)
    try:
        outcome = answer(module.params)
    except VerifyError as exc:
        module.fail_json(msg=str(exc))
    if outcome.pop("failed", False):
        module.fail_json(**outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
