"""The one table of per-distribution facts: CA bundles by family, Apache's stapling cache by layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.ocsp.stapling.plugins.module_utils._platforms import (
    APACHE_LAYOUTS,
    CA_BUNDLES,
    PlatformError,
    apache_layout,
    apache_layout_name,
    ca_bundles,
)

ROOT = Path(__file__).resolve().parents[4]


def test_ca_bundles_list_every_family_once_debian_first():
    assert ca_bundles() == [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
    ]
    assert len(set(ca_bundles())) == len(CA_BUNDLES)
    # A copy: a caller that appends its own bundle does not change the table.
    ca_bundles().append("/tmp/mine.pem")
    assert "/tmp/mine.pem" not in ca_bundles()


def test_debian_layout_enables_the_cache_file_and_loads_shmcb_as_a2enconf_and_a2enmod_do():
    assert apache_layout("debian", "/etc/apache2") == {
        "cache_file": "/etc/apache2/conf-available/ocsp-stapling.conf",
        "cache_links": {"/etc/apache2/conf-enabled/ocsp-stapling.conf": "../conf-available/ocsp-stapling.conf"},
        "cache_spec": "shmcb:${APACHE_RUN_DIR}/ocsp-stapling(128000)",
        "shmcb_links": {"/etc/apache2/mods-enabled/socache_shmcb.load": "../mods-available/socache_shmcb.load"},
    }


def test_rhel_layout_puts_the_cache_file_in_conf_d_and_loads_nothing():
    assert apache_layout("rhel", "/etc/httpd") == {
        "cache_file": "/etc/httpd/conf.d/ocsp-stapling.conf",
        "cache_links": {},
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling(128000)",
        "shmcb_links": {},
    }


def test_suse_layout_uses_conf_d_and_the_run_folder():
    facts = apache_layout("suse", "/etc/apache2")
    assert facts["cache_file"] == "/etc/apache2/conf.d/ocsp-stapling.conf"
    assert facts["cache_spec"] == "shmcb:/run/ocsp-stapling(128000)"
    assert facts["cache_links"] == facts["shmcb_links"] == {}


def test_plain_layout_has_no_place_for_the_cache_file():
    facts = apache_layout("plain", "/usr/local/apache2")
    assert facts["cache_file"] is None
    assert facts["cache_links"] == facts["shmcb_links"] == {}
    # What the role has always used outside Debian, when the user names the file but not the value.
    assert facts["cache_spec"] == APACHE_LAYOUTS["rhel"]["cache_spec"]


def test_a_trailing_slash_on_the_server_root_changes_nothing():
    assert apache_layout("debian", "/etc/apache2/") == apache_layout("debian", "/etc/apache2")


@pytest.mark.parametrize("layout", ["Debian", "arch", "", None, ["debian"]])
def test_an_unknown_layout_is_refused_with_the_known_ones(layout):
    with pytest.raises(PlatformError, match=r"unknown Apache layout .*: expected one of debian, plain, rhel, suse"):
        apache_layout(layout, "/etc/apache2")


@pytest.mark.parametrize("server_root", ["", "etc/apache2", None])
def test_a_server_root_that_is_not_absolute_is_refused(server_root):
    with pytest.raises(PlatformError, match="ServerRoot .* is not absolute"):
        apache_layout("debian", server_root)


def test_no_role_spells_out_a_fact_of_the_table():
    """The roles take these facts from the table (ca_bundles lookup, apache_layout filter), never a copy."""
    facts = list(CA_BUNDLES.values()) + [
        "ocsp-stapling(128000)", "conf-available/ocsp-stapling.conf", "conf.d/ocsp-stapling.conf", "socache_shmcb.load"]
    for path in sorted((ROOT / "roles").rglob("*.yml")):
        text = path.read_text(encoding="utf-8")
        if path.name == "argument_specs.yml":
            # Descriptions may name the files for the reader; only a default value would be a copy.
            text = "\n".join(line for line in text.splitlines() if line.strip().startswith("default:"))
        for fact in facts:
            assert fact not in text, "%s spells out %s: take it from module_utils/_platforms.py" % (path.relative_to(ROOT), fact)


def test_the_role_defaults_read_the_ca_bundles_lookup():
    for role in ("nginx", "apache"):
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8"))
        assert defaults["%s_stapling_ca_bundles" % role] == "{{ query('ocsp.stapling.ca_bundles') }}"


@pytest.mark.parametrize("folders, layout", [
    ({"conf-available", "mods-available", "conf.d"}, "debian"),
    ({"conf.d", "vhosts.d", "sysconfig.d"}, "suse"),
    ({"conf.d", "conf.modules.d"}, "rhel"),
    ({"conf.d", "vhosts.d"}, "rhel"),
    ({"conf", "extra"}, "plain"),
])
def test_the_layout_is_told_by_the_folders_each_family_makes(folders, layout):
    root = "/etc/apache2"
    assert apache_layout_name(root, isdir=lambda path: path.rsplit("/", 1)[1] in folders) == layout
