# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one file-hashing function: SHA-256 of a file, with the identity of the inode hashed.

Runs on nodes and on the controller: Python 3.6+, standard library only. The manifest, the
agent (before installing, after a download) and the engine (at registration) use it.
"""
import hashlib
import os

CHUNK = 1024 * 1024


class FileChanged(Exception):
    """The file changed while it was being hashed; the message names it."""


def identity(st):
    # type: (os.stat_result) -> tuple
    """What says "the same file, unchanged": device, inode, size, mtime and ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_open_file(fd):
    # type: (int) -> str
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with os.fdopen(os.dup(fd), "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
    return digest.hexdigest()


def sha256_and_stat(path):
    # type: (str) -> tuple
    """(SHA-256 hex, stat) of a file, both from the same open file (the hashed object is that inode).

    Raises FileChanged when the file's identity differs after the hash from before it.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        before = os.fstat(fd)
        digest = _hash_open_file(fd)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if identity(before) != identity(after):
        raise FileChanged("%s changed while it was being hashed" % path)
    return digest, after


def sha256_of(path):
    # type: (str) -> str
    """SHA-256 hex of a file's content (OSError when it cannot be read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return _hash_open_file(fd)
    finally:
        os.close(fd)
