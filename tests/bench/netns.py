"""A fleet of managed hosts on one machine: each in its own network and mount namespace, with its own sshd.

    with NetnsFleet(folder, hosts=10, rtt_ms=30) as fleet:
        inventory = fleet.write_inventory()
        ...  # ansible-playbook -i inventory ... (over SSH with pipelining, as a real inventory is reached)
        fleet.session_counts()  # SSH connections and remote commands per host, from each sshd's own log

Each host ``hNNN`` is a network namespace on a private bridge (10.231.R.0/24, R picked free at start;
the controller is 10.231.R.1, host i is 10.231.R.(i+1), and hosts have no other route, so no packet can
leave these namespaces), with its own sshd, its own nginx or Apache and its own configuration. Every
process of a host, sshd and through it every SSH session, sees the host's own files at the usual
places: a mount namespace bind-mounts the host's folder over /etc/nginx, /etc/apache2, /etc/ssl (chain
files), /var/backups (journal and backups), /var/log, /var/lib/nginx and /run (lock, pid files), and
hides the binary of the server the host does not run, so that the roles find what a one-server host has.
The configuration is Debian's, as installed on this machine, with two TLS sites per host on port 443
laid out like the Molecule scenarios' hosts (benchmarks/naive_fleet.yml relies on it).

sshd listens on the host's loopback; bench.delay_proxy, run in the host's namespace, accepts on the
host's address, port 22, and adds the round-trip time (the kernel here has no netem). The bench PKI's
OCSP responder runs on the controller's loopback, and a second proxy makes it reachable from the hosts at
the URL the certificates carry. Everything is stopped by process id: every process left in a host's
namespace (`ip netns pids`), then the namespaces, the bridge and the folders. After a hard kill of the
process that started a fleet, `python -m bench.netns cleanup FOLDER` removes what its state file lists.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .delay_proxy import READY, DelayProxy
from .pki import Leaf, Pki
from .ports import LOOPBACK, free_port, wait_until
from .processes import BenchError, process_table
from .responder import OcspResponder

SUBNET = "10.231"
# Interface and namespace names: ocf<R> is the bridge, ocf<R>h<i> a host's veth, ocf<R>-h<NNN> its namespace.
PREFIX = "ocf"
MAX_HOSTS = 250
ALLOCATION_LOCK = Path("/run/lock/ocsp-stapling-netns.lock")
STATE_FILE = "fleet.json"
SERVERS = ("nginx", "apache")
# The folders of a host that are its own (bind-mounted over the machine's), relative to /.
HOST_PATHS = ("etc/nginx", "etc/apache2", "etc/ssl", "var/backups", "var/log", "var/lib/nginx", "run")
# What a host that runs one server must not find: the other server's binary.
HIDDEN_BINARY = {"nginx": "/usr/sbin/apache2", "apache": "/usr/sbin/nginx"}
SERVICE = {"nginx": "nginx", "apache": "apache2"}
# Debian's `a2enmod ssl`, which also enables the shared-memory cache that mod_ssl depends on.
APACHE_SSL_LINKS = ("ssl.load", "ssl.conf", "socache_shmcb.load")
# What the servers and the service scripts run with: not the caller's virtualenv or Ansible settings.
SERVER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
TLS_PORT = 443
SSH_PORT = 22
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

NGINX_SITE = """# {name}: a TLS site as its owner set it up, before OCSP stapling
server {{
    listen {port} ssl;
    server_name {name};

    ssl_certificate /etc/ssl/scenario/{name}/fullchain.pem;
    ssl_certificate_key /etc/ssl/scenario/{name}/key.pem;

    root /var/www/html;
}}
"""

APACHE_SITE = """# {name}: a TLS site as its owner set it up, before OCSP stapling.
<VirtualHost *:{port}>
    ServerName {name}
    DocumentRoot /var/www/html

    SSLEngine on
    SSLCertificateFile /etc/ssl/scenario/{name}/fullchain.pem
    SSLCertificateKeyFile /etc/ssl/scenario/{name}/key.pem
</VirtualHost>
"""

SSHD_CONFIG = """# A fleet host's sshd (tests/bench/netns.py): root by key only, on the host's loopback behind the delay proxy.
ListenAddress 127.0.0.1:{port}
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
# The bench's files live under /tmp, which is world-writable: StrictModes would refuse them.
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
# VERBOSE logs one line per session ("Starting session: command ..."): the count of remote calls.
LogLevel VERBOSE
# A playbook with many forks opens many connections at once.
MaxStartups 200
MaxSessions 200
Subsystem sftp internal-sftp
"""


def run(argv: list[str], *, check: bool = True, timeout: float = 60.0, **kwargs) -> subprocess.CompletedProcess:
    """A command of the bench's plumbing (ip, nsenter, ssh-keygen...), its failure a BenchError with its output."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode:
        raise BenchError(f"{' '.join(argv)} failed with status {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
    return result


@dataclass
class FleetHost:
    """One managed host: its name, server, address, namespace, folder and TLS sites."""

    name: str
    server: str
    address: str
    netns: str
    veth: str
    folder: Path
    sites: list[str]
    sshd: subprocess.Popen | None = None
    proxy: subprocess.Popen | None = None

    @property
    def root(self) -> Path:
        """The host's own view of / for HOST_PATHS: root / 'etc/nginx' is its /etc/nginx."""
        return self.folder / "root"

    @property
    def ssh_log(self) -> Path:
        return self.folder / "sshd.log"

    def scenario_sites(self) -> list[dict]:
        """The sites as benchmarks/naive_fleet.yml (and the Molecule scenarios) describe them."""
        return [{"server_name": name, "server": self.server, "port": TLS_PORT} for name in self.sites]


@dataclass
class NetnsFleet:
    """N hosts in network namespaces, their PKI and OCSP responder; a context manager that stops it all."""

    folder: Path
    hosts: int
    rtt_ms: float = 0.0
    servers: tuple = SERVERS
    sites_per_host: int = 2
    members: list[FleetHost] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= MAX_HOSTS:
            raise ValueError(f"a fleet has 1 to {MAX_HOSTS} hosts, not {self.hosts}")
        unknown = set(self.servers) - set(SERVERS)
        if not self.servers or unknown:
            raise ValueError(f"servers must be among {', '.join(SERVERS)}, got {', '.join(self.servers) or 'none'}")
        self.folder = self.folder.resolve()
        self.subnet: int | None = None
        self.pki: Pki | None = None
        self.responder: OcspResponder | None = None
        self.responder_front: DelayProxy | None = None
        self.ssh_dir = self.folder / "ssh"
        self.control_dir = self.folder / "cp"

    # -- names and addresses -------------------------------------------------------------------------------

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.subnet}"

    @property
    def controller_address(self) -> str:
        """The controller's address on the hosts' bridge: where they reach the OCSP responder."""
        return f"{SUBNET}.{self.subnet}.1"

    @property
    def client_key(self) -> Path:
        return self.ssh_dir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    # -- start and stop --------------------------------------------------------------------------------------

    def __enter__(self) -> NetnsFleet:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Bring every host up; on any failure, take down what was made and raise."""
        try:
            self._start()
        except BaseException:
            with contextlib.suppress(BenchError, OSError):
                self.stop()
            raise

    def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys()
        self._bridge()
        # The OCSP URL names the controller's bridge address, where the front proxy hands requests to the
        # responder on loopback: the certificates must exist before any host, the responder's port before them.
        front_port, responder_port = free_port(), free_port()
        self.pki = Pki.create(self.folder / "pki", f"http://{self.controller_address}:{front_port}/")
        self.responder = OcspResponder(self.pki, self.folder / "responder", port=responder_port)
        self.responder.start()
        self.responder_front = DelayProxy([self.controller_address], upstream=(LOOPBACK, responder_port), rtt=0.0, port=front_port)
        self.responder_front.start()
        for index in range(1, self.hosts + 1):
            name = f"h{index:03d}"
            server = self.servers[(index - 1) % len(self.servers)]
            self.members.append(FleetHost(
                name=name, server=server, address=f"{SUBNET}.{self.subnet}.{index + 1}",
                netns=f"{PREFIX}{self.subnet}-{name}", veth=f"{PREFIX}{self.subnet}h{index}", folder=self.folder / "hosts" / name,
                sites=[f"{kind}.{name}.fleet.test" for kind in ("www", "shop", "api", "docs")[:self.sites_per_host]],
            ))
        for host in self.members:
            for site in host.sites:
                self.pki.issue_leaf(site)
        self._save_state()
        # Plumbing and processes of many hosts at once: the work is mostly waiting for ip, sshd and the servers.
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(self._bring_up, host) for host in self.members]:
                future.result()
        self._save_state()

    def stop(self) -> None:
        """Stop every process of every host by pid, delete the namespaces, the bridge, the responder and the folders."""
        failures: list[str] = []
        self.close_ssh_masters()
        for host in self.members:
            try:
                self._take_down(host)
            except (BenchError, OSError, subprocess.SubprocessError) as error:
                failures.append(f"{host.name}: {error}")
        for part in (self.responder_front, self.responder):
            if part is not None:
                try:
                    part.stop()
                except (BenchError, OSError, subprocess.SubprocessError) as error:
                    failures.append(f"{type(part).__name__}: {error}")
        if self.subnet is not None and run(["ip", "link", "show", self.bridge], check=False).returncode == 0:
            result = run(["ip", "link", "del", self.bridge], check=False)
            if result.returncode:
                failures.append(f"bridge {self.bridge}: {result.stderr.strip()}")
        if failures:
            raise BenchError("the fleet did not stop cleanly:\n" + "\n".join(failures))
        self.members = []
        shutil.rmtree(self.folder / "hosts", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / STATE_FILE).unlink()

    def close_ssh_masters(self) -> None:
        """End the SSH connection masters that Ansible left (ControlPersist) for this fleet, by their sockets."""
        if not self.control_dir.is_dir():
            return
        for socket_path in self.control_dir.iterdir():
            if socket_path.is_socket():
                run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "fleet"], check=False, timeout=10)

    # -- the pieces ------------------------------------------------------------------------------------------

    def _keys(self) -> None:
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.control_dir.mkdir(mode=0o700, exist_ok=True)
        for key in (self.client_key, self.ssh_dir / "host_key"):
            if not key.exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ocsp.stapling fleet bench {key.name}", "-f", str(key)])
        shutil.copyfile(self.client_key.with_suffix(".pub"), self.ssh_dir / "authorized_keys")
        os.chmod(self.ssh_dir / "authorized_keys", 0o600)

    def _bridge(self) -> None:
        """Pick a free 10.231.R.0/24 and make its bridge, under a lock shared with other fleets on this machine."""
        ALLOCATION_LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(ALLOCATION_LOCK, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            links = run(["ip", "-o", "link", "show"]).stdout
            addresses = run(["ip", "-4", "-o", "addr", "show"]).stdout
            for candidate in range(1, 255):
                if f" {PREFIX}{candidate}:" not in links and f" {SUBNET}.{candidate}." not in addresses:
                    break
            else:
                raise BenchError(f"no free {SUBNET}.R.0/24 left for a fleet on this machine")
            self.subnet = candidate
            self._save_state()
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            run(["ip", "addr", "add", f"{self.controller_address}/24", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])

    def _bring_up(self, host: FleetHost) -> None:
        run(["ip", "netns", "add", host.netns])
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
        run(["ip", "link", "set", host.veth, "master", self.bridge])
        run(["ip", "link", "set", host.veth, "up"])
        # Only the bridge's subnet is routed: no default route, so nothing a host sends can leave the bench.
        run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
        self._lay_out(host)
        self._start_sshd(host)
        self._start_proxy(host)
        self._service(host, "start")
        if not wait_until(lambda: _accepts(host.address, TLS_PORT), START_TIMEOUT):
            raise BenchError(f"{host.name}: {SERVICE[host.server]} does not accept on {host.address}:{TLS_PORT}\n"
                             + _tail(host.root / "var" / "log" / SERVICE[host.server] / "error.log"))

    def _lay_out(self, host: FleetHost) -> None:
        """Write the host's own tree: Debian's configuration, its TLS sites and certificates, empty state folders."""
        assert self.pki is not None
        root = host.root
        for relative in HOST_PATHS:
            folder = root / relative
            folder.mkdir(parents=True, exist_ok=True)
            _empty(folder)
        for relative in ("etc/nginx", "etc/apache2", "etc/ssl"):
            shutil.copytree("/" + relative, root / relative, symlinks=True, dirs_exist_ok=True)
        for relative, mode in (("var/log/nginx", 0o755), ("var/log/apache2", 0o750), ("run/sshd", 0o755), ("run/lock", 0o1777)):
            (root / relative).mkdir(mode=mode, exist_ok=True)
            os.chmod(root / relative, mode)
        # The bench's root is trusted system-wide, as an organisation adds its own CA (update-ca-certificates).
        with open(root / "etc/ssl/certs/ca-certificates.crt", "ab") as bundle:
            bundle.write(self.pki.root_cert_path.read_bytes())
        for name in host.sites:
            self._install_site(host, self.pki.leaf(name))
        if host.server == "apache":
            for link in APACHE_SSL_LINKS:
                target = root / "etc/apache2/mods-enabled" / link
                if not target.is_symlink():
                    target.symlink_to("../mods-available/" + link)
        hidden = host.folder / "not-installed"
        hidden.write_text(f"{HIDDEN_BINARY[host.server]} is not installed on {host.name} (tests/bench/netns.py)\n", encoding="utf-8")
        os.chmod(hidden, 0o644)
        (host.folder / "sshd_config").write_text(SSHD_CONFIG.format(
            port=SSH_PORT, host_key=self.ssh_dir / "host_key", authorized_keys=self.ssh_dir / "authorized_keys"), encoding="utf-8")

    def _install_site(self, host: FleetHost, leaf: Leaf) -> None:
        certificates = host.root / "etc/ssl/scenario" / leaf.name
        certificates.mkdir(parents=True, exist_ok=True)
        for source, target, mode in ((leaf.fullchain_path, "fullchain.pem", 0o644), (leaf.cert_path, "cert.pem", 0o644),
                                     (leaf.chain_path, "chain.pem", 0o644), (leaf.key_path, "key.pem", 0o600)):
            shutil.copyfile(source, certificates / target)
            os.chmod(certificates / target, mode)
        if host.server == "nginx":
            text, folder = NGINX_SITE, host.root / "etc/nginx"
        else:
            text, folder = APACHE_SITE, host.root / "etc/apache2"
        (folder / "sites-available" / f"{leaf.name}.conf").write_text(text.format(name=leaf.name, port=TLS_PORT), encoding="utf-8")
        link = folder / "sites-enabled" / f"{leaf.name}.conf"
        if not link.is_symlink():
            link.symlink_to(f"../sites-available/{leaf.name}.conf")

    def _start_sshd(self, host: FleetHost) -> None:
        """sshd in the host's network namespace and in a mount namespace of its own that every session inherits."""
        mounts = "".join(f"mount --bind '{host.root / relative}' '/{relative}'\n" for relative in HOST_PATHS)
        mounts += f"mount --bind '{host.folder / 'not-installed'}' '{HIDDEN_BINARY[host.server]}'\n"
        script = f"{mounts}exec /usr/sbin/sshd -D -f '{host.folder / 'sshd_config'}' -E '{host.ssh_log}'\n"
        # The child keeps its own copy of the log's descriptor; ours closes with the block.
        with open(host.folder / "console.log", "ab") as console:
            # unshare execs the shell, which execs sshd: the pid of this Popen is sshd's.
            host.sshd = subprocess.Popen(  # stopped by pid in _take_down, not by a with block
                ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-ec", script],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True, env=SERVER_ENV)

        def listening() -> bool:
            return host.sshd.poll() is not None or "Server listening on" in _read(host.ssh_log)

        wait_until(listening, START_TIMEOUT)
        if host.sshd.poll() is not None or "Server listening on" not in _read(host.ssh_log):
            raise BenchError(f"{host.name}: sshd did not start\n{_tail(host.folder / 'console.log')}\n{_tail(host.ssh_log)}")

    def _start_proxy(self, host: FleetHost) -> None:
        """bench.delay_proxy in the host's network namespace: the host's address, port 22, to its sshd, rtt_ms later."""
        tests = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
        with open(host.folder / "proxy.log", "ab") as errors:
            # nsenter execs the proxy: the pid of this Popen is the proxy's.
            host.proxy = subprocess.Popen(  # stopped by pid in _take_down, not by a with block
                ["nsenter", f"--net=/run/netns/{host.netns}", "--", sys.executable, "-m", "bench.delay_proxy",
                 "--listen", f"{host.address}:{SSH_PORT}", "--upstream", f"{LOOPBACK}:{SSH_PORT}", "--rtt-ms", repr(float(self.rtt_ms))],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env, start_new_session=True, text=True)
        line = host.proxy.stdout.readline()
        host.proxy.stdout.close()
        if line.strip() != READY:
            raise BenchError(f"{host.name}: the SSH delay proxy did not start\n{_tail(host.folder / 'proxy.log')}")

    def _service(self, host: FleetHost, action: str) -> None:
        """The host's server through Debian's service script, inside the host's namespaces (there is no systemd)."""
        assert host.sshd is not None
        run(["nsenter", f"--target={host.sshd.pid}", "--mount", "--net", "--", "service", SERVICE[host.server], action], env=SERVER_ENV)

    def _take_down(self, host: FleetHost) -> None:
        """Every process in the host's namespace, by pid (TERM, then KILL), then the namespace and its veth."""
        exists = Path("/run/netns", host.netns).exists()
        if exists:
            _end_processes(lambda: _netns_pids(host.netns), host.name)
        for child in (host.sshd, host.proxy):
            if child is not None and child.poll() is None:
                child.kill()
            if child is not None:
                child.wait(STOP_TIMEOUT)
        host.sshd = host.proxy = None
        if exists:
            run(["ip", "netns", "del", host.netns])
        # The veth pair goes with the namespace's end of it, a moment after the namespace.
        if not wait_until(lambda: run(["ip", "link", "show", host.veth], check=False).returncode != 0, 5.0):
            run(["ip", "link", "del", host.veth], check=False)

    def _save_state(self) -> None:
        # The controller-side processes, with what their command line must hold, so that a recycled pid is never signalled.
        controller = [(part.pid, marker) for part, marker in ((self.responder, "ocsp_front.py"), (self.responder_front, "bench.delay_proxy"))
                      if part is not None and part.pid is not None]
        state = {"subnet": self.subnet, "bridge": self.bridge if self.subnet else None, "owner": os.getpid(),
                 "netns": [host.netns for host in self.members], "controller_pids": controller}
        (self.folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    # -- what a benchmark or test uses -----------------------------------------------------------------------

    def reset(self) -> None:
        """Put every host back as it was before any run: Debian's configuration and the sites, no state, server restarted."""
        def one(host: FleetHost) -> None:
            self._service(host, "stop")
            # The folders are bind-mounted in the host's namespace: they are emptied and filled, never replaced.
            self._lay_out(host)
            self._service(host, "start")
            if not wait_until(lambda: _accepts(host.address, TLS_PORT), START_TIMEOUT):
                raise BenchError(f"{host.name}: {SERVICE[host.server]} did not come back on {host.address}:{TLS_PORT}")

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(one, host) for host in self.members]:
                future.result()

    def write_inventory(self, path: Path | None = None) -> Path:
        """The inventory a user would write for these hosts (group scenario_hosts), in JSON, which is YAML."""
        assert self.pki is not None
        path = path or self.folder / "inventory.yml"
        # benchmarks/naive_fleet.yml copies each site's chain from the state file the Molecule bench writes.
        bench_dir = self.folder / "naive"
        bench_dir.mkdir(exist_ok=True)
        leaves = {site: {"chain": str(self.pki.leaf(site).chain_path)} for host in self.members for site in host.sites}
        (bench_dir / "state.json").write_text(json.dumps({"leaves": leaves}, indent=2) + "\n", encoding="utf-8")
        hosts = {host.name: {"ansible_host": host.address, "scenario_sites": host.scenario_sites()} for host in self.members}
        group_vars = {
            "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes",
            "scenario_bench_dir": str(bench_dir),
        }
        host_key = (self.ssh_dir / "host_key.pub").read_text(encoding="ascii").split()
        self.known_hosts.write_text("".join(f"{host.address} {host_key[0]} {host_key[1]}\n" for host in self.members), encoding="ascii")
        path.write_text(json.dumps({"all": {"children": {"scenario_hosts": {"hosts": hosts, "vars": group_vars}}}}, indent=2) + "\n",
                        encoding="utf-8")
        return path

    def ansible_env(self, forks: int = 10) -> dict:
        """The environment of an ansible-playbook run against this fleet: SSH with pipelining, this fleet's control sockets."""
        return dict(
            os.environ,
            ANSIBLE_PIPELINING="True",
            ANSIBLE_FORKS=str(forks),
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.control_dir),
            ANSIBLE_HOST_KEY_CHECKING="True",
            ANSIBLE_RETRY_FILES_ENABLED="False",
        )

    def wait_connections_closed(self, timeout: float = 30.0) -> bool:
        """Wait until no host's sshd has a connection left (its connection processes are its children)."""
        listeners = {host.sshd.pid for host in self.members if host.sshd is not None}

        def closed() -> bool:
            return not any(proc.ppid in listeners and proc.state != "Z" for proc in process_table())

        return wait_until(closed, timeout)

    def session_counts(self) -> dict:
        """Per host, so far: SSH connections accepted and sessions started (remote calls), from its sshd's log, and
        the CPU seconds of its finished connections (sshd's and every command's that ran in them)."""
        counts = {}
        for host in self.members:
            text = _read(host.ssh_log)
            counts[host.name] = {"connections": text.count("Accepted publickey for root"), "sessions": text.count("Starting session:"),
                                 "cpu": _children_cpu(host.sshd.pid) if host.sshd is not None else 0.0}
        return counts


def _accepts(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _children_cpu(pid: int) -> float:
    """User + system seconds of the children a process has waited for (cutime + cstime of /proc/PID/stat).

    sshd waits for each connection's process when the connection ends, and that one for each session's
    command: the listener's figure grows by the host's whole share of a connection once it is closed.
    """
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 of stat(5): cutime and cstime are fields 16 and 17.
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail(path: Path, lines: int = 20) -> str:
    return f"--- {path}:\n" + "\n".join(_read(path).splitlines()[-lines:])


def _empty(folder: Path) -> None:
    """Remove what a folder holds, keeping the folder itself (a bind mount's source must stay the same inode)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _netns_pids(netns: str) -> set[int]:
    result = run(["ip", "netns", "pids", netns], check=False)
    return {int(word) for word in result.stdout.split()}


def _end_processes(pids, what: str) -> None:
    """SIGTERM every pid that pids() lists, then SIGKILL what is left; raise if anything survives."""
    for signum, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, STOP_TIMEOUT)):
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if wait_until(lambda: not _live(pids()), wait):
            return
    raise BenchError(f"{what}: processes {sorted(_live(pids()))} survived SIGKILL")


def _live(pids: set[int]) -> set[int]:
    """The pids that are not zombies (a zombie is dead already; its parent reaps it)."""
    alive = set()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            alive.add(pid)
    return alive


def cleanup(folder: Path) -> list[str]:
    """Remove what a fleet's state file lists, for a fleet whose owner was killed before it could stop it."""
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    owner = state.get("owner")
    if owner and owner != os.getpid() and Path(f"/proc/{owner}").exists():
        raise BenchError(f"the fleet in {folder} still has its owner, pid {owner}: stop that instead")
    removed = []
    for pid, marker in state.get("controller_pids", []):
        with contextlib.suppress(OSError):
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                _end_processes(lambda pid=pid: {pid} if Path(f"/proc/{pid}").exists() else set(), f"pid {pid}")
                removed.append(f"pid {pid}")
    for netns in state.get("netns", []):
        if Path("/run/netns", netns).exists():
            _end_processes(lambda netns=netns: _netns_pids(netns), netns)
            run(["ip", "netns", "del", netns])
            removed.append(netns)
    bridge = state.get("bridge")
    if bridge and run(["ip", "link", "show", bridge], check=False).returncode == 0:
        run(["ip", "link", "del", bridge])
        removed.append(bridge)
    shutil.rmtree(folder / "hosts", ignore_errors=True)
    (folder / STATE_FILE).unlink()
    return removed


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "cleanup":
        print("usage: python -m bench.netns cleanup FOLDER", file=sys.stderr)
        return 2
    try:
        removed = cleanup(Path(argv[1]))
    except (BenchError, OSError, ValueError) as error:
        print(f"fleet cleanup: {error}", file=sys.stderr)
        return 1
    print("removed: " + (", ".join(removed) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
