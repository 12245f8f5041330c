"""Judge one `ansible-navigator run` of scripts/ee-check.sh from its playbook artifact (JSON).

The artifact holds every task result with the file the task came from, so the check reads facts,
not the console: ansible-navigator's stdout mode prints runner's event markers when it has no
terminal, as in CI. It writes the playbook's output, without colours, to LOG for people, then:

- the run was successful, no task failed and no host was unreachable;
- every task came from the collection installed in the image (/usr/share/ansible/collections),
  none from this repository, which the execution environment never sees;
- --changed: some task changed something (a first run); --unchanged: none did (the rerun);
- --verify N: the ocsp.stapling.verify module (run inside the execution environment, the
  controller) judged N endpoints, and every one of them that can staple has a good, fresh staple.

    python tests/ee/check_run.py ARTIFACT LOG (--changed | --unchanged | --verify N)
"""

from __future__ import annotations

import argparse
import json
import re
import sys

INSTALLED = "/usr/share/ansible/collections/ansible_collections/ocsp/stapling/"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def tasks(artifact: dict) -> list:
    return [task for play in artifact["plays"] for task in play["tasks"]]


def problems(artifact: dict, changed: bool | None, verify: int | None) -> tuple:
    """(what went wrong, a one-line summary) of one run."""
    found = []
    results = tasks(artifact)
    if artifact.get("status") != "successful":
        found.append("the run ended %r" % artifact.get("status"))
    for task in results:
        if task["__result"] in ("Failed", "Unreachable"):
            found.append("%s on %s: %s" % (task["__result"].lower(), task["host"], task["task"]))
    elsewhere = sorted({task["task_path"] for task in results if task.get("task_path") and not task["task_path"].startswith(INSTALLED)})
    if elsewhere:
        found.append("tasks not from the collection installed in the image: %s" % ", ".join(elsewhere))
    changes = [task["task"] for task in results if task["__changed"]]
    if changed is True and not changes:
        found.append("nothing changed, although the sites did not staple yet")
    if changed is False and changes:
        found.append("the rerun changed something: %s" % ", ".join(changes))
    summary = "%d task results, %d changed" % (len(results), len(changes))
    if verify is not None:
        checks = [task for task in results if task["resolved_action"] == "ocsp.stapling.verify"]
        targets = [target for task in checks for target in task["res"].get("targets", [])]
        eligible = [target for target in targets if target.get("applicable", True)]
        if len(targets) != verify:
            found.append("verify judged %d endpoints, not %d" % (len(targets), verify))
        found.extend("%s does not staple a good, fresh response: %s" % (target.get("server_name"), target.get("reason"))
                     for target in eligible if not target.get("ok"))
        summary += "; verify: %d of %d eligible endpoints staple a good, fresh OCSP response, %d not applicable" % (
            sum(1 for target in eligible if target.get("ok")), len(eligible), len(targets) - len(eligible))
    return found, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("log")
    expect = parser.add_mutually_exclusive_group(required=True)
    expect.add_argument("--changed", action="store_const", const=True, dest="changed")
    expect.add_argument("--unchanged", action="store_const", const=False, dest="changed")
    expect.add_argument("--verify", type=int)
    args = parser.parse_args()
    with open(args.artifact, encoding="utf-8") as stream:
        artifact = json.load(stream)
    with open(args.log, "w", encoding="utf-8") as stream:
        stream.write(ANSI.sub("", "\n".join(artifact["stdout"])) + "\n")
    found, summary = problems(artifact, args.changed, args.verify)
    print("ee-check: %s: %s" % (artifact["plays"][0]["playbook"] if artifact["plays"] else args.artifact, summary))
    for problem in found:
        print("ee-check: %s (output: %s)" % (problem, args.log), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
