"""The one table of per-distribution facts: CA bundles by family, Apache's stapling cache by layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.ocsp.stapling.plugins.module_utils._platforms import (
    APACHE_LAYOUTS,
    CA_BUNDLES,
    PlatformError,
    apache_layout,
    apache_layout_name,
    apache_layout_root,
    ca_bundles,
    runtime_env,
    start_defines,
)

ROOT = Path(__file__).resolve().parents[4]


def test_ca_bundles_list_every_family_once_debian_first():
    assert ca_bundles() == [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/usr/local/etc/ssl/cert.pem",
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
        "service": "apache2",
    }


def test_rhel_layout_puts_the_cache_file_in_conf_d_and_loads_nothing():
    assert apache_layout("rhel", "/etc/httpd") == {
        "cache_file": "/etc/httpd/conf.d/ocsp-stapling.conf",
        "cache_links": {},
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling(128000)",
        "shmcb_links": {},
        "service": "httpd",
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


@pytest.mark.parametrize("layout", ["Debian", "ubuntu", "", None, ["debian"]])
def test_an_unknown_layout_is_refused_with_the_known_ones(layout):
    with pytest.raises(PlatformError, match=r"unknown Apache layout .*: expected one of alpine, arch, debian, freebsd, gentoo, plain, rhel, suse"):
        apache_layout(layout, "/etc/apache2")


@pytest.mark.parametrize("server_root", ["", "etc/apache2", None])
def test_a_server_root_that_is_not_absolute_is_refused(server_root):
    with pytest.raises(PlatformError, match="the root of Apache's tree .* is not absolute"):
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
    ({"conf.d", "conf.modules.d", "run", "modules"}, "rhel"),
    ({"conf.d", "run", "modules"}, "alpine"),
    ({"modules.d", "vhosts.d"}, "gentoo"),
    ({"Includes", "extra", "modules.d"}, "freebsd"),
    ({"conf", "conf/extra", "modules", "logs", "run"}, "arch"),
    ({"conf", "conf/extra", "bin", "modules", "logs"}, "plain"),
])
def test_the_layout_is_told_by_the_folders_each_family_makes(folders, layout):
    root = "/etc/apache2"
    assert apache_layout_name(root, isdir=lambda path: path[len(root) + 1:] in folders) == layout


# What each distribution's package installs: (ServerRoot, main configuration file, folders).
DISTRIBUTIONS = {
    "debian": ("/etc/apache2", "/etc/apache2/apache2.conf",
               {"/etc/apache2/" + name for name in ("conf-available", "conf-enabled", "mods-available", "mods-enabled", "sites-available")}),
    "rhel": ("/etc/httpd", "/etc/httpd/conf/httpd.conf", {"/etc/httpd/conf", "/etc/httpd/conf.d", "/etc/httpd/conf.modules.d"}),
    # SUSE's ServerRoot is /srv/www; its tree is /etc/apache2.
    "suse": ("/srv/www", "/etc/apache2/httpd.conf", {"/etc/apache2/conf.d", "/etc/apache2/vhosts.d", "/etc/apache2/sysconfig.d",
                                                     "/srv/www/htdocs"}),
    "gentoo": ("/usr/lib64/apache2", "/etc/apache2/httpd.conf", {"/etc/apache2/modules.d", "/etc/apache2/vhosts.d",
                                                                 "/usr/lib64/apache2/modules"}),
    # Alpine's ServerRoot /var/www holds links to the run, log and module folders.
    "alpine": ("/var/www", "/etc/apache2/httpd.conf", {"/etc/apache2/conf.d", "/var/www/run", "/var/www/modules", "/var/www/logs"}),
    "freebsd": ("/usr/local", "/usr/local/etc/apache24/httpd.conf", {"/usr/local/etc/apache24/Includes", "/usr/local/etc/apache24/extra",
                                                                     "/usr/local/etc/apache24/modules.d"}),
    "arch": ("/etc/httpd", "/etc/httpd/conf/httpd.conf", {"/etc/httpd/conf", "/etc/httpd/conf/extra", "/etc/httpd/modules"}),
    "plain": ("/usr/local/apache2", "/usr/local/apache2/conf/httpd.conf", {"/usr/local/apache2/conf", "/usr/local/apache2/conf/extra",
                                                                           "/usr/local/apache2/bin"}),
}
FACTS = {
    # layout: (layout root, cache file, cache spec, service)
    "debian": ("/etc/apache2", "/etc/apache2/conf-available/ocsp-stapling.conf", "shmcb:${APACHE_RUN_DIR}/ocsp-stapling(128000)", "apache2"),
    "rhel": ("/etc/httpd", "/etc/httpd/conf.d/ocsp-stapling.conf", "shmcb:/run/httpd/ocsp-stapling(128000)", "httpd"),
    "suse": ("/etc/apache2", "/etc/apache2/conf.d/ocsp-stapling.conf", "shmcb:/run/ocsp-stapling(128000)", "apache2"),
    "gentoo": ("/etc/apache2", "/etc/apache2/modules.d/ocsp-stapling.conf", "shmcb:/run/ocsp-stapling(128000)", "apache2"),
    "alpine": ("/etc/apache2", "/etc/apache2/conf.d/ocsp-stapling.conf", "shmcb:/run/apache2/ocsp-stapling(128000)", "apache2"),
    "freebsd": ("/usr/local/etc/apache24", "/usr/local/etc/apache24/Includes/ocsp-stapling.conf", "shmcb:/var/run/ocsp-stapling(128000)",
                "apache24"),
    "arch": ("/etc/httpd", None, "shmcb:/run/httpd/ocsp-stapling(128000)", "httpd"),
    "plain": ("/usr/local/apache2", None, "shmcb:/run/httpd/ocsp-stapling(128000)", "httpd"),
}


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_each_distribution_s_tree_gets_its_row_and_its_facts(distribution):
    server_root, conf_path, folders = DISTRIBUTIONS[distribution]
    layout, root = apache_layout_root(server_root, conf_path, isdir=folders.__contains__)
    expected_root, cache_file, cache_spec, service = FACTS[distribution]
    assert (layout, root) == (distribution, expected_root)
    facts = apache_layout(layout, root)
    assert (facts["cache_file"], facts["cache_spec"], facts["service"], facts["cache_links"] != {}) == (
        cache_file, cache_spec, service, distribution == "debian")


def test_every_row_has_every_fact():
    keys = set(APACHE_LAYOUTS["debian"])
    for layout, row in APACHE_LAYOUTS.items():
        assert set(row) == keys, layout
        assert row["cache_spec"].startswith("shmcb:") and row["service"]
        assert (row["defines_file"] is None) == (row["defines_variable"] is None)


@pytest.mark.parametrize("layout, path, text, defines", [
    ("rhel", "/etc/sysconfig/httpd", '# OPTIONS=-DNOT\nOPTIONS="-D FOO -DBAR -k start"\nLANG=C\n', ["FOO", "BAR"]),
    ("gentoo", "/etc/conf.d/apache2", 'APACHE2_OPTS="-D DEFAULT_VHOST -D INFO -D SSL -D SSL_DEFAULT_VHOST -D LANGUAGE"\n',
     ["DEFAULT_VHOST", "INFO", "SSL", "SSL_DEFAULT_VHOST", "LANGUAGE"]),
    ("suse", "/etc/sysconfig/apache2", 'APACHE_MODULES="ssl"\nAPACHE_SERVER_FLAGS="SSL STATUS"\n', ["SSL", "STATUS"]),
    ("debian", "/etc/apache2/envvars", "export APACHE_RUN_DIR=/var/run/apache2$SUFFIX\n## export APACHE_ARGUMENTS=''\n", []),
    ("debian", "/etc/apache2/envvars", "export APACHE_ARGUMENTS='-D MACROS'\n", ["MACROS"]),
    ("alpine", None, "", []),
])
def test_the_defines_the_service_starts_apache_with(layout, path, text, defines):
    root = "/etc/apache2"
    files = {path: text} if path else {}
    read = []

    def reader(name):
        read.append(name)
        if name not in files:
            raise FileNotFoundError(name)
        return files[name]
    assert start_defines(layout, root, reader) == defines
    assert read == ([path] if path else [])


def test_a_defines_file_that_cannot_be_read_gives_no_defines():
    def unreadable(path):
        raise PermissionError(path)
    assert start_defines("rhel", "/etc/httpd", unreadable) == []


def test_runtime_folders_that_do_not_exist_point_at_the_scratch_folder(tmp_path):
    """Debian's /run/apache2 exists only once apache2ctl made it: before, apache2 -M / -S / -t refuse the configuration
    ("DefaultRuntimeDir must be a valid directory"). The collection's own read-only calls use a scratch folder instead,
    and create nothing in /run."""
    existing = tmp_path / "lock"
    existing.mkdir()
    env = {"APACHE_RUN_DIR": str(tmp_path / "missing"), "APACHE_LOCK_DIR": str(existing), "APACHE_LOG_DIR": str(tmp_path / "logs")}
    with runtime_env(env) as call_env:
        scratch = call_env["APACHE_RUN_DIR"]
        assert call_env == dict(env, APACHE_RUN_DIR=scratch) and os.path.isdir(scratch) and scratch != env["APACHE_RUN_DIR"]
        assert os.stat(scratch).st_mode & 0o077 == 0
    assert not os.path.exists(scratch) and not (tmp_path / "missing").exists()


def test_no_scratch_folder_where_every_runtime_folder_exists(tmp_path, monkeypatch):
    """Nothing is written when nothing is missing: the modules write only where the collection may."""
    monkeypatch.setattr("tempfile.mkdtemp", lambda *args, **kwargs: pytest.fail("a scratch folder was made"))
    with runtime_env({"APACHE_RUN_DIR": str(tmp_path)}) as call_env:
        assert call_env == {"APACHE_RUN_DIR": str(tmp_path)}
    with runtime_env({}) as call_env:
        assert call_env == {}
