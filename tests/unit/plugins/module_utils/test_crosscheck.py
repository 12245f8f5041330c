"""The server's own listing held against the collection's reading (issue 13: no site skipped silently)."""

from __future__ import annotations

from ansible_collections.ocsp.stapling.plugins.module_utils._crosscheck import apache_virtual_hosts, differences, nginx_files

# Real `apache2 -S` output (Apache 2.4 on Debian), with a mod_macro site, a name-based address and a lone one.
APACHE_DUMP = """AH00558: apache2: Could not reliably determine the server's fully qualified domain name
VirtualHost configuration:
127.0.0.1:18555        is a NameVirtualHost
         default server a.test (macro 'site' (defined on line 8 of "/srv/test-apache/macros.conf") used on line 13 of "/srv/test-apache/sites.conf":1)
         port 18555 namevhost a.test (macro 'site' (defined on line 8 of "/srv/test-apache/macros.conf") used on line 13 of "/srv/test-apache/sites.conf":1)
         port 18555 namevhost b.test (macro 'site' (defined on line 8 of "/srv/test-apache/macros.conf") used on line 14 of "/srv/test-apache/sites.conf":1)
         port 18555 namevhost c.test (/srv/test-apache/sites.conf:15)
*:80                   127.0.0.1 (/srv/test-apache/sites-enabled/000-default.conf:1)
ServerRoot: "/etc/apache2"
Main DocumentRoot: "/var/www/html"
PidFile: "/var/run/apache2/apache2.pid"
Define: DUMP_VHOSTS
"""

NGINX_DUMP = """nginx: the configuration file /srv/test-nginx/nginx.conf syntax is ok
# configuration file /srv/test-nginx/nginx.conf:
user www-data;
http { include /srv/test-nginx/sites-enabled/*; }

# configuration file /srv/test-nginx/mime.types:
types { text/html html; }

# configuration file /srv/test-nginx/sites-enabled/default:
server { listen 80; }
"""


def test_apache_listing_gives_every_virtual_host_once_at_its_place():
    assert apache_virtual_hosts(APACHE_DUMP) == {
        ("/srv/test-apache/sites.conf", 13), ("/srv/test-apache/sites.conf", 14), ("/srv/test-apache/sites.conf", 15),
        ("/srv/test-apache/sites-enabled/000-default.conf", 1)}


def test_nginx_listing_gives_every_file_read():
    assert nginx_files(NGINX_DUMP) == {"/srv/test-nginx/nginx.conf", "/srv/test-nginx/mime.types", "/srv/test-nginx/sites-enabled/default"}


def test_differences_name_both_directions():
    ours = {("/srv/test-apache/sites.conf", 15), ("/srv/test-apache/extra.conf", 3)}
    theirs = {("/srv/test-apache/sites.conf", 15), ("/srv/test-apache/sites.conf", 13)}
    assert differences(ours, theirs, "the virtual host at", "Apache") == [
        "Apache loads the virtual host at /srv/test-apache/sites.conf:13, which the collection does not see: it is not handled; "
        "report the configuration shape",
        "the collection sees the virtual host at /srv/test-apache/extra.conf:3, which Apache does not load: check the defines and "
        "modules it is started with"]
    assert differences(ours, ours, "the virtual host at", "Apache") == []
