"""nginx and Apache from the distribution, each run from a folder of its own on one loopback port.

Every path a server would write to by default (logs, pid file, temp and runtime folders, caches) is
set to a place inside that folder, so that several servers can run at once and nothing outside it changes.
The configuration is a plain file (conf_path) written by write_config(); start() runs whatever that file
holds, so that a test can edit it, or have the collection edit it, in between.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .pki import Leaf
from .ports import LOOPBACK, accepts, free_port, wait_until
from .processes import START_TIMEOUT, BenchError, ChildProcess, tail

APACHE_MODULES = Path("/usr/lib/apache2/modules")
# As root, workers drop to these; Debian has both.
RUN_USER = "nobody"
RUN_GROUP = "nogroup"


@dataclass
class Site:
    """One TLS site: an nginx server block or an Apache VirtualHost."""

    server_name: str
    leaf: Leaf
    stapling: bool = True
    default: bool = False
    aliases: list[str] = field(default_factory=list)
    # Seconds Apache waits for the OCSP responder (SSLStaplingResponderTimeout); None keeps 5, what the apache
    # role sets. Apache holds the handshake while it waits, so fault tests shorten it. nginx has no such
    # directive: it waits a fixed 60 s, without holding any handshake.
    responder_timeout: int | None = None


def _quote(value: Path | str) -> str:
    # Both nginx and Apache take a double-quoted argument as one word, spaces included.
    return f'"{value}"'


def _ordered(sites: list[Site]) -> list[Site]:
    """Sites with the default one first: Apache takes the first VirtualHost as the default."""
    defaults = [site for site in sites if site.default]
    if len(defaults) > 1:
        raise ValueError(f"only one default site per port, got {', '.join(site.server_name for site in defaults)}")
    return defaults + [site for site in sites if not site.default]


class _Server:
    """What nginx and Apache share: a folder, a port, a config file and a foreground process."""

    name = "server"
    # What makes the server re-read its configuration, and what its log says when it refuses the result.
    _reload_signal = signal.SIGHUP
    _fatal_marker = b"[emerg]"

    def __init__(self, folder: Path, sites: list[Site], port: int | None) -> None:
        self.folder = folder.resolve()
        self.sites = sites
        self.port = port or free_port()
        self.log_dir = self.folder / "logs"
        self.run_dir = self.folder / "run"
        self.error_log_path = self.log_dir / "error.log"
        self.conf_path = self.folder / f"{self.name}.conf"
        self._process = ChildProcess(f"{self.name} on port {self.port}", self.log_dir / "console.log", [self.error_log_path])

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return self._process.running()

    def worker_pids(self) -> set[int]:
        """Process ids of the nginx workers or Apache children serving right now."""
        return self._process.children()

    def write_config(self) -> None:
        """Write the generated configuration to conf_path, replacing what is there."""
        self._make_dirs()
        self.conf_path.write_text(self.render_config(), encoding="utf-8")

    def render_config(self) -> str:
        """The configuration write_config() writes."""
        raise NotImplementedError

    def test(self) -> subprocess.CompletedProcess[str]:
        """The server's own configuration test on conf_path, as the collection would run it."""
        self._make_dirs()
        return subprocess.run(self._test_argv(), capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> None:
        """Start the server from conf_path and wait until it accepts TCP connections on its port."""
        self._make_dirs()
        self._process.start(self._argv(), self.port)

    def stop(self) -> None:
        self._process.stop()

    def reload(self, timeout: float = START_TIMEOUT) -> None:
        """Have the running server re-read conf_path; return once only workers of the new generation run."""
        old_workers = self.worker_pids()
        log_size = self._log_size()
        self._process.signal(self._reload_signal)

        def failure() -> str | None:
            if not self.running():
                return "exited"
            # A rejected configuration leaves its reason in the log, and the old workers keep serving.
            if self._fatal_marker in self._log_since(log_size):
                return "rejected the new configuration"
            return None

        def new_generation() -> bool:
            workers = self.worker_pids()
            return bool(workers) and not workers & old_workers and accepts(self.port)

        wait_until(lambda: failure() is not None or new_generation(), timeout)
        problem = failure()
        if problem is None and not new_generation():
            problem = f"still had workers of the old generation after {timeout:.0f} s"
        if problem:
            raise BenchError(f"{self.name} (pid {self.pid}) {problem} on reload of {self.conf_path}\n{self._process.logs()}")

    def error_log(self) -> str:
        """The last 200 lines of the error log."""
        return tail(self.error_log_path, lines=200)

    def _log_size(self) -> int:
        return self.error_log_path.stat().st_size if self.error_log_path.exists() else 0

    def _log_since(self, offset: int) -> bytes:
        if not self.error_log_path.exists():
            return b""
        with self.error_log_path.open("rb") as log:
            log.seek(offset)
            return log.read()

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _test_argv(self) -> list[str]:
        raise NotImplementedError

    def _make_dirs(self) -> None:
        for folder in (self.log_dir, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)


class NginxServer(_Server):
    """nginx in the foreground (`daemon off`), one server block per site."""

    name = "nginx"

    def __init__(self, folder: Path, sites: list[Site], *, port: int | None = None, workers: int = 1, resolver: str | None = None) -> None:
        self.workers = workers
        self.resolver = resolver
        super().__init__(folder, sites, port)
        self.temp_dir = self.folder / "temp"

    def render_config(self) -> str:
        temp_paths = "".join(f"    {kind}_temp_path {_quote(self.temp_dir / kind)};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        resolver = f"    resolver {self.resolver};\n" if self.resolver else ""
        servers = "".join(self._server_block(site) for site in _ordered(self.sites))
        return (
            "# Written by the test bench (tests/bench/servers.py).\n"
            f"user {RUN_USER} {RUN_GROUP};\n"
            f"worker_processes {self.workers};\n"
            f"pid {_quote(self.run_dir / 'nginx.pid')};\n"
            f"error_log {_quote(self.error_log_path)} info;\n"
            "\n"
            "events {\n"
            "    worker_connections 256;\n"
            "}\n"
            "\n"
            "http {\n"
            f"    access_log {_quote(self.log_dir / 'access.log')};\n"
            f"{temp_paths}"
            f"{resolver}"
            f"{servers}"
            "}\n"
        )

    def _server_block(self, site: Site) -> str:
        default = " default_server" if site.default else ""
        stapling = (
            "        ssl_stapling on;\n"
            "        ssl_stapling_verify on;\n"
            f"        ssl_trusted_certificate {_quote(site.leaf.chain_path)};\n"
        ) if site.stapling else ""
        return (
            "\n"
            "    server {\n"
            f"        listen {LOOPBACK}:{self.port} ssl{default};\n"
            f"        server_name {' '.join([site.server_name, *site.aliases])};\n"
            f"        ssl_certificate {_quote(site.leaf.fullchain_path)};\n"
            f"        ssl_certificate_key {_quote(site.leaf.key_path)};\n"
            f"{stapling}"
            f'        return 200 "{site.server_name}\\n";\n'
            "    }\n"
        )

    def _options(self) -> list[str]:
        # -p and -e keep nginx away from /usr/share/nginx and its compiled-in log before the config is read.
        return ["-p", f"{self.folder}/", "-e", str(self.error_log_path), "-c", str(self.conf_path)]

    def _argv(self) -> list[str]:
        return ["nginx", *self._options(), "-g", "daemon off;"]

    def _test_argv(self) -> list[str]:
        return ["nginx", *self._options(), "-t"]

    def _make_dirs(self) -> None:
        super()._make_dirs()
        self.temp_dir.mkdir(exist_ok=True)


class ApacheServer(_Server):
    """Apache httpd in the foreground (-DFOREGROUND), one VirtualHost per site."""

    name = "apache2"
    # SIGUSR1 is a graceful restart, what `apachectl graceful` and Debian's reload send.
    _reload_signal = signal.SIGUSR1
    _fatal_marker = b":emerg]"

    def __init__(self, folder: Path, sites: list[Site], *, port: int | None = None) -> None:
        super().__init__(folder, sites, port)
        self.stapling_cache = f"shmcb:{self.run_dir}/ocsp(128000)"
        # An empty folder, so that Apache neither warns about a missing DocumentRoot nor falls back to /var/www.
        self.docroot = self.folder / "htdocs"

    def render_config(self) -> str:
        modules = "".join(
            f"LoadModule {module}_module {_quote(APACHE_MODULES / f'mod_{module}.so')}\n" for module in ("mpm_event", "alias", "socache_shmcb", "ssl")
        )
        # Server scope only: Apache rejects SSLStaplingCache inside a VirtualHost.
        cache = f"SSLStaplingCache {_quote(self.stapling_cache)}\n" if any(site.stapling for site in self.sites) else ""
        vhosts = "".join(self._virtual_host(site) for site in _ordered(self.sites))
        return (
            "# Written by the test bench (tests/bench/servers.py).\n"
            f"ServerRoot {_quote(self.folder)}\n"
            # A global name spares a reverse lookup of the host name and its warning at every start.
            f"ServerName {LOOPBACK}\n"
            f"PidFile {_quote(self.run_dir / 'apache2.pid')}\n"
            f"DefaultRuntimeDir {_quote(self.run_dir)}\n"
            f"ErrorLog {_quote(self.error_log_path)}\n"
            "LogLevel info\n"
            f"Mutex {_quote(f'file:{self.run_dir}')} default\n"
            f"User {RUN_USER}\n"
            f"Group {RUN_GROUP}\n"
            f"{modules}"
            # A test needs a handful of connections; one child process keeps start and stop fast.
            "StartServers 1\n"
            "ServerLimit 1\n"
            "ThreadsPerChild 16\n"
            "MinSpareThreads 1\n"
            "MaxSpareThreads 16\n"
            "MaxRequestWorkers 16\n"
            f"Listen {LOOPBACK}:{self.port}\n"
            f"{cache}"
            f"{vhosts}"
        )

    def _virtual_host(self, site: Site) -> str:
        aliases = f"    ServerAlias {' '.join(site.aliases)}\n" if site.aliases else ""
        stapling = (
            "    SSLUseStapling on\n"
            # Apache looks the issuer up here to build the OCSP request and to check the answer.
            f"    SSLCACertificateFile {_quote(site.leaf.chain_path)}\n"
            f"    SSLStaplingResponderTimeout {site.responder_timeout or 5}\n"
            "    SSLStaplingReturnResponderErrors off\n"
        ) if site.stapling else ""
        return (
            "\n"
            f"<VirtualHost {LOOPBACK}:{self.port}>\n"
            f"    ServerName {site.server_name}\n"
            f"{aliases}"
            f"    DocumentRoot {_quote(self.docroot)}\n"
            # The children run as nobody and may not be able to enter the bench folder (pytest's is 0700),
            # so the answer comes from the config, not from a file: mod_alias ends every request with
            # status 200, and the ErrorDocument of status 200 is the body.
            "    Redirect 200 /\n"
            f"    ErrorDocument 200 {_quote(site.server_name)}\n"
            "    SSLEngine on\n"
            f"    SSLCertificateFile {_quote(site.leaf.fullchain_path)}\n"
            f"    SSLCertificateKeyFile {_quote(site.leaf.key_path)}\n"
            f"{stapling}"
            "</VirtualHost>\n"
        )

    def _options(self) -> list[str]:
        return ["-d", str(self.folder), "-f", str(self.conf_path)]

    def _make_dirs(self) -> None:
        super()._make_dirs()
        self.docroot.mkdir(exist_ok=True)

    def _argv(self) -> list[str]:
        return ["apache2", *self._options(), "-DFOREGROUND"]

    def _test_argv(self) -> list[str]:
        return ["apache2", *self._options(), "-t"]
