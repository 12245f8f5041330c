"""The corpus (tests/corpus): configuration trees shaped like real ones, read by the collection and by the servers.

For each tree: copy it into a sandbox (``{root}`` in its files becomes the sandbox folder), create the
certificates and keys it names, then

- read it with the collection (``NginxConfig.load`` / ``ApacheConfig.load``) and build the site records;
- where the Debian binaries here can load it, hold that reading against the server's own listing with the
  functions production runs on the host (``_crosscheck``): every file ``nginx -T`` read, every virtual
  host ``apache2 -S`` lists; a difference must be explained in the tree's ``tree.json``;
- plan stapling for every certificate that can be stapled: every TLS site gets exactly the outcome the
  tree says, the edited files pass the server's ``-t``, and a second plan on the edited texts changes nothing.

tests/corpus/README.md lists the trees, what each models, where its facts come from, and every explained difference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from bench.pki import Pki

from ansible_collections.ocsp.stapling.plugins.module_utils import _apache, _nginx
from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import read_text
from ansible_collections.ocsp.stapling.plugins.module_utils._crosscheck import apache_virtual_hosts, differences, nginx_files
from ansible_collections.ocsp.stapling.plugins.module_utils._detect import parse_apache_modules, parse_envvars
from ansible_collections.ocsp.stapling.plugins.module_utils._sites import site_record

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
DEBIAN_MODULES = "/usr/lib/apache2/modules"
# A fact of the test, not of the trees: the trees of other distributions load their modules from their own folders;
# here every LoadModule is pointed at the Debian build's file of the same name.
LOAD_MODULE = re.compile(rb"^([ \t]*LoadModule[ \t]+\w+[ \t]+)\"?[^\s\"]*?(mod_\w+\.so)\"?", re.MULTILINE | re.IGNORECASE)
# Modules compiled into Debian's apache2 (`apache2 -l`): it refuses a LoadModule of one ("built-in and can't be loaded"),
# so such a line of another distribution's tree becomes a comment of the same line count.
BUILT_IN = re.compile(r"^\s+mod_(\w+)\.c$", re.MULTILINE)
OUTCOMES_PRESENT = ("stapled", "already", "not applicable", "not handled")
TIMEOUT = 30


def manifests() -> list:
    found = []
    for folder in sorted(CORPUS.iterdir()):
        if not (folder / "tree.json").is_file():
            continue
        manifest = json.loads((folder / "tree.json").read_text(encoding="utf-8"))
        manifest["name"] = folder.name
        found.append(manifest)
    return found


MANIFESTS = manifests()


def params(check: str) -> list:
    found = []
    for manifest in MANIFESTS:
        marks = []
        reason = manifest.get("xfail", {}).get(check)
        if reason:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        found.append(pytest.param(manifest, id=manifest["name"], marks=marks))
    return found


def built_in_modules() -> set:
    try:
        listed = subprocess.run(["apache2", "-l"], capture_output=True, text=True, check=False, timeout=TIMEOUT).stdout
    except OSError:
        return set()
    return {name + "_module" for name in BUILT_IN.findall(listed) if name not in ("so", "core")}


BUILT_IN_MODULES = built_in_modules()


def debian_module(match: re.Match) -> bytes:
    """A LoadModule line pointed at Debian's module file, or commented out for a module built into Debian's apache2."""
    name = match.group(1).split()[1].decode()
    if name in BUILT_IN_MODULES:
        return b"# (built into Debian's apache2) " + match.group(0)
    return match.group(1) + (DEBIAN_MODULES + "/").encode() + match.group(2)


# --- The sandbox -------------------------------------------------------------------------------------


class Tree:
    """One corpus tree copied into a sandbox, with its certificates, and the collection's reading of it."""

    def __init__(self, manifest: dict, root: Path, pki: Pki) -> None:
        self.manifest = manifest
        self.server = manifest["server"]
        self.root = root
        self.pki = pki
        self.main = str(root / manifest["main"])
        self.chains = {}
        self.not_applicable = {}
        self.env = {}
        self.defines = list(manifest.get("defines", []))
        self.modules = None
        self._copy()
        self._certificates()

    def path(self, relative: str) -> str:
        return str(self.root / relative.replace("{root}/", ""))

    def shown(self, text: str) -> str:
        return text.replace(str(self.root), "{root}")

    def _copy(self) -> None:
        source = CORPUS / self.manifest["name"]
        replace = [(old.encode(), new.encode()) for old, new in self.manifest.get("replace", [])]
        for folder, dummy, names in os.walk(source):
            for name in names:
                if name == "tree.json" and Path(folder) == source:
                    continue
                origin = Path(folder) / name
                target = self.root / origin.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                data = origin.read_bytes().replace(b"{root}", str(self.root).encode())
                if self.server == "apache" and self.manifest.get("debian_modules"):
                    data = LOAD_MODULE.sub(debian_module, data)
                for old, new in replace:
                    data = data.replace(old, new)
                if str(origin.relative_to(source)) in self.manifest.get("crlf", []):
                    # Kept with LF in the repository (its line-endings check); the tree is CRLF as found in the wild.
                    data = data.replace(b"\n", b"\r\n")
                target.write_bytes(data)
        for relative, text in self.manifest.get("files", {}).items():
            where = Path(self.path(relative))
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(text.replace("{root}", str(self.root)), encoding="utf-8")
        for folder in self.manifest.get("dirs", []):
            Path(self.path(folder)).mkdir(parents=True, exist_ok=True)
        for link, target in self.manifest.get("links", {}).items():
            where = Path(self.path(link))
            where.parent.mkdir(parents=True, exist_ok=True)
            where.symlink_to(target.replace("{root}", str(self.root)))

    def _certificates(self) -> None:
        chain_pem = self.pki.intermediate_cert_path.read_bytes() + self.pki.root_cert_path.read_bytes()
        for number, spec in enumerate(self.manifest.get("certificates", [])):
            name = "%s-%d.corpus.test" % (self.manifest["name"].replace("_", "-"), number)
            issued = {leaf.name: leaf for leaf in self.pki.leaves}
            leaf = issued.get(name) or self.pki.issue_leaf(name, ocsp_url=None if spec.get("no_ocsp") else "http://127.0.0.1:9/ocsp")
            cert = Path(self.path(spec["cert"]))
            cert.parent.mkdir(parents=True, exist_ok=True)
            form = spec.get("form", "leaf")
            body = leaf.cert_path.read_bytes() if form == "leaf" else leaf.fullchain_path.read_bytes()
            if form == "combined":
                # The certificate file holds the key too (Apache documents it): leaf, key, intermediate.
                body = leaf.cert_path.read_bytes() + leaf.key_path.read_bytes() + self.pki.intermediate_cert_path.read_bytes()
            self._write_real(cert, body)
            if spec.get("key"):
                key = Path(self.path(spec["key"]))
                key.parent.mkdir(parents=True, exist_ok=True)
                self._write_real(key, leaf.key_path.read_bytes())
            absolute = os.path.normpath(str(cert))
            if spec.get("no_ocsp"):
                self.not_applicable[absolute] = "the certificate names no OCSP responder"
            else:
                self.chains[absolute] = str(self.root / "chains" / (name + ".pem"))
        for ca_file in self.manifest.get("ca_files", []):
            where = Path(self.path(ca_file))
            where.parent.mkdir(parents=True, exist_ok=True)
            self._write_real(where, chain_pem)
        chains = self.root / "chains"
        chains.mkdir(exist_ok=True)
        for chain in self.chains.values():
            Path(chain).write_bytes(chain_pem)

    @staticmethod
    def _write_real(path: Path, data: bytes) -> None:
        # A certificate path may be a link (certbot's live/ folder): write where it points.
        real = Path(os.path.realpath(path))
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_bytes(data)

    # --- the real servers ---------------------------------------------------------------------------

    @property
    def loadable(self) -> bool:
        return not self.manifest.get("not_loadable")

    def run(self, flags: list) -> subprocess.CompletedProcess:
        if self.server == "nginx":
            argv = ["nginx", "-p", str(self.root) + "/", "-e", str(self.root / "nginx-error.log"), "-c", self.main] + flags
        else:
            argv = ["apache2", "-d", self.server_root, "-f", self.main] + [word for name in self.defines for word in ("-D", name)] + flags
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, **self.env))

    @property
    def server_root(self) -> str:
        return self.path(self.manifest.get("server_root", os.path.dirname(self.manifest["main"])))

    def load(self):
        if self.server == "nginx":
            return _nginx.NginxConfig.load(self.main, reader=read_text)
        envvars = Path(self.server_root) / "envvars"
        if envvars.is_file():
            self.env = parse_envvars(envvars.read_text(encoding="utf-8"), self.server_root)
        if self.loadable:
            listed = self.run(["-M"])
            assert listed.returncode == 0, listed.stderr
            self.modules = parse_apache_modules(listed.stdout)
        elif "modules" in self.manifest:
            self.modules = set(self.manifest["modules"])
        return _apache.ApacheConfig.load(self.main, reader=read_text, server_root=self.server_root, env=self.env, defines=self.defines,
                                         modules=self.modules)

    def plan(self, config) -> tuple:
        if self.server == "nginx":
            return _nginx.plan_stapling(config, self.chains, resolver=["127.0.0.1"], not_applicable=self.not_applicable)
        return _apache.plan_stapling(config, self.chains, cache_path=self.path(self.manifest["cache_file"]),
                                     cache_spec="shmcb:%s/ocsp-stapling(128000)" % self.root, not_applicable=self.not_applicable)

    def where(self, outcome: dict) -> str:
        return "%s:%d" % (os.path.relpath(outcome["path"], self.root) if outcome["path"].startswith("/") else self.shown(outcome["path"]),
                          outcome["line"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA for every tree; its OCSP URL is never asked (nothing here listens or fetches)."""
    return Pki.create(tmp_path_factory.mktemp("corpus-pki"), "http://127.0.0.1:9/ocsp")


@pytest.fixture
def tree(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki) -> Tree:
    root = tmp_path / "root"
    root.mkdir()
    return Tree(request.param, root, pki)


def unexplained(found: list, explained: list, tree: Tree) -> tuple:
    """(differences no explanation covers, explanations that cover nothing): both must be empty."""
    shown = [tree.shown(sentence) for sentence in found]
    left = [sentence for sentence in shown if not any(entry["difference"] in sentence for entry in explained)]
    stale = [entry["difference"] for entry in explained if not any(entry["difference"] in sentence for sentence in shown)]
    return left, stale


# --- The checks --------------------------------------------------------------------------------------


def test_corpus_is_large_enough() -> None:
    servers = [manifest["server"] for manifest in MANIFESTS]
    assert len(servers) >= 20 and servers.count("nginx") >= 8 and servers.count("apache") >= 8, servers
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    missing = [manifest["name"] for manifest in MANIFESTS if "`%s`" % manifest["name"] not in readme]
    assert not missing, "trees not described in tests/corpus/README.md: %s" % missing


@pytest.mark.parametrize("tree", params("listing"), indirect=True)
def test_listing(tree: Tree) -> None:
    """The collection's reading against the server's own listing: no unexplained difference."""
    config = tree.load()
    sites = config.sites()
    records = [site_record(site, tree.server) for site in config.tls_sites()]
    expected = tree.manifest["sites"]
    assert (len(sites), len(records)) == (expected["all"], expected["tls"]), [tree.shown("%s:%d" % (s.path, s.line)) for s in sites]
    for record in records:
        assert record["path"] in config.files or record["path"].startswith("macro "), record
    if not tree.loadable:
        pytest.skip("the Debian binary cannot load this tree: %s" % tree.manifest["not_loadable"])
    if tree.server == "nginx":
        dump = tree.run(["-T"])
        assert dump.returncode == 0, dump.stderr
        found = differences(set(config.files), nginx_files(dump.stdout), "the file", "nginx")
    else:
        dump = tree.run(["-S"])
        assert dump.returncode == 0, dump.stderr
        ours = {(os.path.realpath(site.path), site.line) for site in sites}
        found = differences(ours, apache_virtual_hosts(dump.stdout), "the virtual host at", "Apache")
    left, stale = unexplained(found, tree.manifest.get("explained", []), tree)
    assert not left, "unexplained differences:\n" + "\n".join(left)
    assert not stale, "explained differences that no longer occur: %s" % stale


@pytest.mark.parametrize("tree", params("plan"), indirect=True)
def test_plan(tree: Tree) -> None:
    """One outcome per TLS site, as the tree expects; the edits pass the server's test; a second plan changes nothing."""
    config = tree.load()
    edits, dummy, outcomes = tree.plan(config)
    tls = config.tls_sites()
    assert sorted(outcome["index"] for outcome in outcomes) == sorted(site.index for site in tls)
    assert all(outcome["outcome"] in OUTCOMES_PRESENT and outcome["reason"] for outcome in outcomes), outcomes
    got = {tree.where(outcome): outcome["outcome"] for outcome in outcomes}
    assert len(got) == len(outcomes), "two TLS sites at one place: %s" % outcomes
    shown = ["%s: %s (%s)" % (tree.where(outcome), outcome["outcome"], tree.shown(outcome["reason"])) for outcome in outcomes]
    assert got == tree.manifest["outcomes"], "\n".join(shown + [json.dumps(got)])

    for path, text in edits.items():
        if text is None:
            os.unlink(path)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
                handle.write(text)
    for link, target in tree.manifest.get("cache_links", {}).items():
        Path(tree.path(link)).symlink_to(target)
    if tree.loadable:
        tested = tree.run(["-t"])
        assert tested.returncode == 0, tested.stderr

    again, dummy, second = tree.plan(tree.load())
    assert again == {}, "a second plan still changes %s" % sorted(tree.shown(path) for path in again)
    # Lines added above a site move it down: the second plan's sites are matched by their index.
    first = {outcome["index"]: outcome["outcome"] for outcome in outcomes}
    settled = {outcome["index"]: outcome["outcome"] for outcome in second}
    assert settled == {index: "already" if outcome == "stapled" else outcome for index, outcome in first.items()}
