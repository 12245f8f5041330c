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
    ({"layout": "ubuntu", "server_root": "/etc/apache2"}, r"^ocsp\.stapling\.apache_layout: unknown Apache layout 'ubuntu'"),
    ({"layout": "debian", "server_root": "apache2"}, r"^ocsp\.stapling\.apache_layout: the root of Apache's tree 'apache2' is not absolute"),
])
def test_wrong_input_fails_the_filter(info, expected):
    with pytest.raises(AnsibleFilterError, match=expected):
        apache_layout(info)


def test_the_filter_places_the_cache_in_the_layout_root_when_server_info_gives_one():
    # SUSE: ServerRoot /srv/www, its tree in /etc/apache2.
    info = {"server": "apache", "layout": "suse", "server_root": "/srv/www", "layout_root": "/etc/apache2", "sites": []}
    assert apache_layout(info)["cache_file"] == "/etc/apache2/conf.d/ocsp-stapling.conf"
