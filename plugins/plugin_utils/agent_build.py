# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Linux node agent: one zipapp of the collection's node-side Python code.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

The zipapp holds every ``.py`` under ``plugins/module_utils`` (standard library only, so it
runs on any Python 3.6+ node) with the package ``__init__`` files a zip import needs, and a
``__main__`` that calls ``module_utils.agent.main``. The build is reproducible (sorted names,
fixed timestamps), so its SHA-256 names the agent's version, and it is cached by that hash.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

PACKAGE = ("ansible_collections", "fleet", "firmware", "plugins", "module_utils")
MAIN = (
    "import sys\n"
    "from ansible_collections.fleet.firmware.plugins.module_utils import agent\n"
    "sys.exit(agent.main())\n"
)
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def module_utils_root() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")


def _sources(root: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in names:
            if name.endswith(".py"):
                relative = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                with open(os.path.join(folder, name), "rb") as handle:
                    files["/".join(PACKAGE) + "/" + relative] = handle.read()
    return files


def _init_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """Empty ``__init__.py`` for every package folder that has none (zipimport needs them)."""
    inits: dict[str, bytes] = {}
    for name in files:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            init = "/".join(parts[:depth]) + "/__init__.py"
            if init not in files:
                inits[init] = b""
    return inits


def build_bytes(root: str | None = None) -> bytes:
    """The zipapp's bytes (deterministic for the same sources)."""
    files = _sources(root or module_utils_root())
    files.update(_init_files(files))
    files["__main__.py"] = MAIN.encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr = 0o600 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


def sources_key(root: str | None = None) -> str:
    """What the zipapp is made of, cheaply: every source's name, size and mtime (no read, no deflate)."""
    root = root or module_utils_root()
    lines = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                lines.append(f"{os.path.relpath(os.path.join(folder, name), root)}\0{st.st_size}\0{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:24]


def build(cache_dir: str) -> tuple[str, str]:
    """Write the zipapp into ``cache_dir`` (0700) once per content; return ``(path, sha256)``.

    Built once per run (the run folder's ``build``): the first worker builds it and records it
    under the sources' key; every later worker of the run finds it there and reads nothing else."""
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    index = os.path.join(cache_dir, f"sources-{sources_key()}.json")
    try:
        with open(index, encoding="utf-8") as handle:
            known = json.load(handle)
        if os.path.isfile(known["path"]):
            return known["path"], known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not built in this run yet (or torn by a killed worker): build it
    data = build_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(cache_dir, f"agent-{digest[:16]}.pyz")
    if not os.path.exists(path):
        _write_private(path, data)
    _write_private(index, json.dumps({"path": path, "sha256": digest}).encode("utf-8"))
    return path, digest


def _write_private(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
