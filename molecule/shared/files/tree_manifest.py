"""Print one line per path under the given folders: type, mode, owner, size and content hash.

The scenarios take this manifest after prepare and again at the end of the check-mode run: equal
manifests prove that the check-mode run changed nothing on disk. Symlinks are listed with their
target and not followed; missing folders are listed as missing.
"""

import hashlib
import os
import stat
import sys


def describe(path):
    info = os.lstat(path)
    kind = stat.S_IFMT(info.st_mode)
    head = "%s %o %d:%d" % (path, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    if kind == stat.S_IFLNK:
        return "%s link -> %s" % (head, os.readlink(path))
    if kind == stat.S_IFDIR:
        return "%s dir" % head
    if kind == stat.S_IFREG:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
        return "%s file %d %s" % (head, info.st_size, digest.hexdigest())
    return "%s other" % head


def main(folders):
    lines = []
    for folder in folders:
        if not os.path.lexists(folder):
            lines.append("%s missing" % folder)
            continue
        lines.append(describe(folder))
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                lines.append(describe(os.path.join(root, name)))
    sys.stdout.write("\n".join(sorted(lines)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
