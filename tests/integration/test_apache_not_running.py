"""A Debian Apache that is installed but not running (a fresh container, a host after a reboot): envvars names
/run/apache2-like folders that only apache2ctl creates. server_info must still list the modules and check its sites
against apache2 -S, and the server test of apache_stapling must pass, without creating those folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench import Bench, Site

PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - name: Read the server
      ocsp.stapling.server_info:
        server: apache
        apache_conf: {conf}
        apache_server_root: {root}
      register: info
    - name: Turn stapling on
      ocsp.stapling.apache_stapling:
        conf_path: {conf}
        server_root: {root}
        env: "{{{{ info.env }}}}"
        modules: "{{{{ info.modules }}}}"
        chains: {{"{cert}": "{chain}"}}
        cache_path: {root}/ocsp-stapling.conf
        cache_spec: "shmcb:${{APACHE_RUN_DIR}}/ocsp-stapling(128000)"
        test_command: [apache2, -d, {root}, -f, {conf}, -t]
        lock_path: {state}/lock
        backup_dir: {state}/backups
      register: edit
    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{{{ {{'info': info, 'edit': edit}} | to_json }}}}"
        dest: {state}/result.json
        mode: "0600"
"""


def test_a_stopped_debian_apache_is_read_checked_and_tested(tmp_path):
    with Bench(tmp_path / "bench") as bench:
        leaf = bench.issue("stopped.test")
        server = bench.apache([Site("stopped.test", leaf, stapling=False)])
        folder = server.folder
        run_dir = tmp_path / "run" / "apache2"  # does not exist, as /run/apache2 before apache2ctl made it
        (folder / "envvars").write_text("export APACHE_RUN_DIR=%s\nexport APACHE_LOCK_DIR=%s/lock\n" % (run_dir, run_dir))
        text = server.conf_path.read_text()
        server.conf_path.write_text(text.replace("DefaultRuntimeDir", "DefaultRuntimeDir ${APACHE_RUN_DIR}\n# bench's was:"))
        assert "DefaultRuntimeDir must be a valid directory" in subprocess.run(
            ["apache2", "-d", str(folder), "-f", str(server.conf_path), "-S"], capture_output=True, text=True, check=False,
            env=dict(os.environ, APACHE_RUN_DIR=str(run_dir))).stderr
        playbook = tmp_path / "play.yml"
        playbook.write_text(PLAY.format(conf=server.conf_path, root=folder, cert=leaf.fullchain_path, chain=leaf.chain_path,
                                        state=tmp_path / "state", python=sys.executable))
        run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", str(playbook)],
                             capture_output=True, text=True, check=False, timeout=300,
                             env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false"))
        assert run.returncode == 0, run.stdout + run.stderr
        result = json.loads((tmp_path / "state" / "result.json").read_text())
        assert result["info"]["env"]["APACHE_RUN_DIR"] == str(run_dir)
        assert "ssl_module" in result["info"]["modules"]
        assert result["info"]["cross_check"]["differences"] == []
        assert result["edit"]["changed"] and result["edit"]["outcomes"][0]["outcome"] == "stapled"
        assert not run_dir.exists()
