"""The apache_layout filter: the table's facts for a server_info result, and how it fails."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.filter.platforms import FilterModule, apache_layout
from ansible_collections.ocsp.stapling.plugins.module_utils import _platforms


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"apache_layout"}


def test_the_filter_reads_layout_and_server_root_of_a_server_info_result():
    info = {"server": "apache", "layout": "rhel", "server_root": "/etc/httpd", "sites": []}
    assert apache_layout(info) == _platforms.apache_layout("rhel", "/etc/httpd")


@pytest.mark.parametrize("info, expected", [
    ("debian", r"give the result of ocsp\.stapling\.server_info for Apache"),
    ({"layout": "debian"}, r"give the result of ocsp\.stapling\.server_info for Apache"),
    ({"layout": "gentoo", "server_root": "/etc/apache2"}, r"^ocsp\.stapling\.apache_layout: unknown Apache layout 'gentoo'"),
    ({"layout": "debian", "server_root": "apache2"}, r"^ocsp\.stapling\.apache_layout: Apache's ServerRoot 'apache2' is not absolute"),
])
def test_wrong_input_fails_the_filter(info, expected):
    with pytest.raises(AnsibleFilterError, match=expected):
        apache_layout(info)
