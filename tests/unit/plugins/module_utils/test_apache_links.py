"""The Apache dialect's links and cache file: made only where the collection's cache file is the server's
SSLStaplingCache (issue 13: no dangling link), and the outcome of every virtual host."""

from __future__ import annotations

import os

from ansible_collections.ocsp.stapling.plugins.module_utils._apache import ApacheDialect

VHOST = """<VirtualHost *:443>
    ServerName {name}
    SSLEngine on
    SSLCertificateFile /c/{name}.pem
    SSLCertificateKeyFile /c/{name}.key
</VirtualHost>
"""


def tree(tmp_path, server_cache: bool) -> tuple:
    """A Debian-shaped tree with conf-enabled/*.conf included by Include (not IncludeOptional)."""
    for folder in ("conf-available", "conf-enabled", "sites"):
        (tmp_path / folder).mkdir()
    main = tmp_path / "apache2.conf"
    main.write_text("Include conf-enabled/*.conf\nInclude sites/*.conf\n"
                    + ("SSLStaplingCache shmcb:/run/apache2/their-cache(64000)\n" if server_cache else ""))
    (tmp_path / "sites" / "a.conf").write_text(VHOST.format(name="a.test") + VHOST.format(name="b.test"))
    cache = str(tmp_path / "conf-available" / "ocsp-stapling.conf")
    links = {str(tmp_path / "conf-enabled" / "ocsp-stapling.conf"): "../conf-available/ocsp-stapling.conf"}
    return ApacheDialect(str(main), cache_path=cache, cache_spec="shmcb:/run/x(128000)", server_root=str(tmp_path), links=links), cache


def planned(dialect, chains, state="present", not_applicable=None) -> tuple:
    config = dialect.load()
    edits, dummy, outcomes = dialect.plan(config, chains, state, not_applicable)
    return edits, dialect.links(None, state), outcomes


def test_no_link_to_a_cache_file_never_written_where_the_server_has_its_own_cache(tmp_path):
    dialect, cache = tree(tmp_path, server_cache=True)
    edits, links, outcomes = planned(dialect, {"/c/a.test.pem": "/c/chain.pem"})
    assert cache not in edits and links == {}
    assert [entry["outcome"] for entry in outcomes] == ["stapled", "not handled"]


def test_our_cache_file_and_its_link_go_together(tmp_path):
    dialect, cache = tree(tmp_path, server_cache=False)
    edits, links, dummy = planned(dialect, {"/c/a.test.pem": "/c/chain.pem"})
    assert cache in edits and links == {str(tmp_path / "conf-enabled" / "ocsp-stapling.conf"): "../conf-available/ocsp-stapling.conf"}
    # Once both are there (and the cache file loaded through the link), a rerun keeps them and adds nothing.
    for path, text in edits.items():
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
    for path, target in links.items():
        os.symlink(target, path)
    edits, links, outcomes = planned(dialect, {"/c/a.test.pem": "/c/chain.pem"})
    assert edits == {} and links == {}
    assert outcomes[0]["outcome"] == "already"


def test_no_site_to_staple_writes_no_cache_and_no_link(tmp_path):
    dialect, cache = tree(tmp_path, server_cache=False)
    reasons = {"/c/a.test.pem": "the certificate has no OCSP URL", "/c/b.test.pem": "the certificate has no OCSP URL"}
    edits, links, outcomes = planned(dialect, {}, not_applicable=reasons)
    assert edits == {} and links == {}
    assert [(entry["outcome"], entry["reason"]) for entry in outcomes] == [
        ("not applicable", "/c/a.test.pem: the certificate has no OCSP URL"), ("not applicable", "/c/b.test.pem: the certificate has no OCSP URL")]


def md_tree(tmp_path, md: str) -> ApacheDialect:
    (tmp_path / "sites").mkdir()
    main = tmp_path / "httpd.conf"
    main.write_text(md + "IncludeOptional sites/*.conf\n")
    (tmp_path / "sites" / "a.conf").write_text(VHOST.format(name="a.test") + VHOST.format(name="b.test"))
    return ApacheDialect(str(main), cache_path=str(tmp_path / "ocsp-stapling.conf"), cache_spec="shmcb:/run/x(128000)", server_root=str(tmp_path))


def test_a_site_that_mod_md_staples_is_not_applicable(tmp_path):
    chains = {"/c/a.test.pem": "/c/chain.pem", "/c/b.test.pem": "/c/chain.pem"}
    # MDStapling for one managed domain: that site is mod_md's, the other is the collection's.
    dialect = md_tree(tmp_path, "MDomain a.test\n<MDomain a.test>\n    MDStapling on\n</MDomain>\n")
    edits, dummy, outcomes = planned(dialect, chains)
    assert [(entry["server_names"][0], entry["outcome"]) for entry in outcomes] == [("a.test", "not applicable"), ("b.test", "stapled")]
    assert "mod_md staples this site's certificate itself" in outcomes[0]["reason"]
    assert edits[str(tmp_path / "sites" / "a.conf")].count("SSLUseStapling on") == 1


def test_mdstapling_for_every_certificate_leaves_every_site_to_mod_md(tmp_path):
    dialect = md_tree(tmp_path, "MDStapling on\n")
    edits, links, outcomes = planned(dialect, {"/c/a.test.pem": "/c/chain.pem", "/c/b.test.pem": "/c/chain.pem"})
    assert edits == {} and {entry["outcome"] for entry in outcomes} == {"not applicable"}
    # MDStaplingOthers off: mod_md staples the certificates it manages only, and there is no managed domain here.
    (tmp_path / "others-off").mkdir()
    dialect = md_tree(tmp_path / "others-off", "MDStapling on\nMDStaplingOthers off\n")
    dummy, dummy, outcomes = planned(dialect, {"/c/a.test.pem": "/c/chain.pem"})
    assert outcomes[0]["outcome"] == "stapled"
