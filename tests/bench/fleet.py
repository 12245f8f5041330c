"""The bench's PKI and OCSP responder for the Molecule scenarios, as a command run by their playbooks.

The scenarios' containers share the controller's network (host networking), so the responder started
here on 127.0.0.1 is the one their servers fetch staples from, exactly as the certificates say.
Unlike the pytest bench, the responder must outlive the command that starts it (prepare starts it,
cleanup stops it), so its process id goes into a state file and `stop` ends it by that id.

    python -m tests.bench.fleet start STATE_DIR '[{"server_name": "shop.test"}, {"server_name": "old.test", "ocsp": false}]'
    python -m tests.bench.fleet stop STATE_DIR

`start` prints the state as JSON: the responder's URL and pid, the root certificate and, per site name,
the paths of its certificate, key, leaf + intermediate bundle and intermediate + root chain. Running
`start` again while the responder lives prints the same state, so a repeated prepare changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

from .pki import Pki
from .ports import LOOPBACK, accepts, free_port, wait_until
from .processes import BenchError
from .responder import OcspResponder

STATE_FILE = "state.json"
# What identifies our responder in /proc/PID/cmdline, so that a recycled pid is never signalled.
FRONT = "ocsp_front.py"


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return FRONT.encode() in cmdline


def _load(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sites(text: str) -> list:
    sites = json.loads(text)
    if not isinstance(sites, list) or not all(isinstance(site, dict) and site.get("server_name") for site in sites):
        raise BenchError(f"sites must be a JSON list of mappings with a server_name, got {text!r}")
    return sites


def start(folder: Path, sites: list) -> dict:
    folder = folder.resolve()
    state = _load(folder)
    if state and _alive(state["responder_pid"]) and accepts(state["responder_port"]):
        missing = sorted({site["server_name"] for site in sites} - set(state["leaves"]))
        if not missing:
            return state
        raise BenchError(f"the fleet bench in {folder} runs without certificates for {', '.join(missing)}: "
                         f"stop it first (python -m tests.bench.fleet stop {folder})")
    if state:
        stop(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pki = Pki.create(folder / "pki", f"http://{LOOPBACK}:{port}/")
    leaves = {}
    for site in sites:
        if site["server_name"] in leaves:
            continue
        extra = {} if site.get("ocsp", True) else {"ocsp_url": None}
        leaf = pki.issue_leaf(site["server_name"], sans=list(site.get("aliases") or []), **extra)
        leaves[leaf.name] = {
            "cert": str(leaf.cert_path),
            "key": str(leaf.key_path),
            "fullchain": str(leaf.fullchain_path),
            "chain": str(leaf.chain_path),
            "ocsp": site.get("ocsp", True),
        }
    responder = OcspResponder(pki, folder / "responder", port=port)
    responder.start()
    state = {
        "responder_url": responder.url,
        "responder_port": port,
        "responder_pid": responder.pid,
        "root": str(pki.root_cert_path),
        "intermediate": str(pki.intermediate_cert_path),
        "leaves": leaves,
    }
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return state


def stop(folder: Path) -> dict:
    """End the responder by its recorded pid (its whole process group) and remove the folder."""
    folder = folder.resolve()
    state = _load(folder) or {}
    pid = state.get("responder_pid")
    stopped = False
    if pid and _alive(pid):
        # The responder leads its own process group (start_new_session): the group holds its openssl children.
        for signum, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, signum)
            except ProcessLookupError:
                break
            if wait_until(lambda: not _alive(pid), wait):
                break
        stopped = not _alive(pid)
        if not stopped:
            raise BenchError(f"the fleet responder (pid {pid}) survived SIGKILL")
    if folder.exists():
        shutil.rmtree(folder)
    return {"stopped": stopped, "pid": pid}


def main(argv: list) -> int:
    if len(argv) < 2 or argv[0] not in ("start", "stop") or (argv[0] == "start" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            result = start(Path(argv[1]), _sites(argv[2]))
        else:
            result = stop(Path(argv[1]))
    except (BenchError, OSError, ValueError) as error:
        print(f"fleet bench: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
