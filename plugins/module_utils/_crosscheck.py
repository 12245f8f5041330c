# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's reading of a configuration, held against the server's own.

The parsers read the configuration as the servers do, but a server can say itself what it loaded:
``apache2 -S`` lists every virtual host with its file and line, ``nginx -T`` every file it read.
A difference means a site the collection does not see (and so would skip silently) or one it sees
that the server does not load; ``server_info`` reports each one. Standard library only: this runs on
managed hosts.
"""

from __future__ import annotations

import os
import re
import stat

# `apache2 -S`: "(/path/file.conf:12)" after a virtual host, or, for one made by mod_macro,
# "(macro 'name' (defined on line 8 of "/path") used on line 13 of "/path":1)": the Use line is the site's place.
_APACHE_PLACE = re.compile(r"\((?:macro '[^']*' \(defined on line \d+ of \"[^\"]*\"\) used on line (?P<use_line>\d+) of \"(?P<use_path>[^\"]*)\""
                           r"|(?P<path>/[^()]*?)):(?P<line>\d+)\)\s*$")
# `nginx -T`: one line before the text of every file it read.
_NGINX_FILE = re.compile(r"^# configuration file (?P<path>.+):$", re.MULTILINE)


def apache_virtual_hosts(dump: str) -> set:
    """{(real path, line)} of every virtual host that ``apache2 -S`` lists (a name-based one may be listed twice, as
    the default server of its address too; an address with one virtual host lists it on the address's line)."""
    found = set()
    in_vhosts = False
    for line in dump.splitlines():
        if line.startswith("VirtualHost configuration:"):
            in_vhosts = True
            continue
        if line.startswith("ServerRoot:"):
            break
        place = _APACHE_PLACE.search(line) if in_vhosts else None
        if place is None:
            continue
        if place.group("use_path"):
            found.add((os.path.realpath(place.group("use_path")), int(place.group("use_line"))))
        else:
            found.add((os.path.realpath(place.group("path")), int(place.group("line"))))
    return found


def nginx_files(dump: str) -> set:
    """{real path} of every file ``nginx -T`` says it read."""
    return {os.path.realpath(match.group("path")) for match in _NGINX_FILE.finditer(dump)}


# The nginx directives whose file `nginx -t` / `nginx -T` opens and reads while it checks the configuration.
NGINX_READ_FILES = ("ssl_certificate", "ssl_certificate_key", "ssl_trusted_certificate", "ssl_client_certificate", "ssl_dhparam",
                    "ssl_crl", "ssl_stapling_file", "ssl_password_file")


def files_that_would_block(paths) -> list:
    """The paths that exist but are not regular files (a FIFO, a device): the server's own check would wait on them."""
    found = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a missing file makes the server's check fail at once, which is reported as such
        if not stat.S_ISREG(mode) and path not in found:
            found.append(path)
    return found


def differences(ours: set, theirs: set, what: str, server: str) -> list:
    """Sentences for what the server loads and the collection does not see, and the other way round."""
    found = []
    for place in sorted(theirs - ours):
        found.append("%s loads %s %s, which the collection does not see: it is not handled; report the configuration shape" % (
            server, what, _shown(place)))
    for place in sorted(ours - theirs):
        found.append("the collection sees %s %s, which %s does not load: check the defines and modules it is started with" % (
            what, _shown(place), server))
    return found


def _shown(place) -> str:
    return "%s:%d" % place if isinstance(place, tuple) else place
