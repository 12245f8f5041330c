"""The action of ocsp.stapling.apache_stapling: the module, with a clear message when the host's Python is too old.

See plugins/plugin_utils/host_python.py.
"""

from __future__ import annotations

from ansible_collections.ocsp.stapling.plugins.plugin_utils.host_python import HostPythonAction


class ActionModule(HostPythonAction):
    """Runs ocsp.stapling.apache_stapling on the managed host (see HostPythonAction)."""
