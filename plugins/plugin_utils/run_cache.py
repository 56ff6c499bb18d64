# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller work done once per run, not once per host (issue 15, item 4).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

Every host of a run is served by its own Ansible worker (a fresh process), so anything a worker
computes is lost with it. What is the same for every host of the run is kept in the run folder
instead, under an ``flock`` so that 50 workers starting at once compute it once and the other 49
read it:

* ``digests.json``: the SHA-256 of each component file, keyed by its real path and trusted while
  the file's identity (device, inode, size, mtime, ctime) is unchanged, as the engine does. The
  hashing function is the engine's (``engine.hash_file``): one hashing function on the controller.
* ``trusted-<hash>.json``: the signature verdicts (``trust.load_trusted_components``), keyed by the
  identity of the manifest, its signature, every component and signature file and every trust
  anchor, and by the policy: openssl reads each file whole, and that once per run is enough.
* ``play-<hash>.json``: the addresses of every host of the play and the controller's addresses
  facing them, keyed by the play's host names (resolving them was O(N) per host, O(N^2) per run).
"""
from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

DIGESTS = "digests.json"
# What this module writes into the run folder. A folder holding nothing else has no run in it yet
# (no CA, no engine, no ledger): a failed validation may remove it (``discard_if_only_cache``).
CACHE_PATTERNS = (DIGESTS, "trusted-*.json", "play-*.json", ".*.lock", "*.tmp")


class DigestMismatch(Exception):
    """A component file's SHA-256 is not the manifest's; the message names the file and both hashes."""


@contextlib.contextmanager
def locked(run_dir: str, name: str) -> t.Iterator[None]:
    """One worker at a time on ``<run_dir>/<name>`` (the others wait, then read its result)."""
    fd = None
    while fd is None:
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        try:
            fd = os.open(os.path.join(run_dir, f".{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # another worker's failed validation removed the folder just now: make it again
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_json(path: str) -> t.Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None  # absent, or torn by a killed writer: computed again


def write_json(path: str, data: t.Any) -> None:
    """Write ``path`` whole or not at all. A run folder removed meanwhile (another worker's failed
    validation, ``discard_if_only_cache``) is not made again: the cache is only a saving."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def discard_if_only_cache(run_dir: str) -> bool:
    """Remove the run folder when it holds nothing but this module's files; True when it is gone.

    Every worker whose validation fails calls this, so the last one to fail leaves nothing behind,
    whoever made the folder; a folder with a run in it (anything else) is kept."""
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return True
    if not all(any(fnmatch.fnmatchcase(name, pattern) for pattern in CACHE_PATTERNS) for name in names):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not os.path.exists(run_dir)


def identity(st: os.stat_result) -> list:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def verify_digests(run_dir: str, components: t.Sequence[dict]) -> int:
    """Check every component's ``sha256`` against its file (``path``), hashing a file only when this
    run has not hashed it with the same identity yet. Returns how many files were hashed now.
    Raises ``DigestMismatch`` naming the first component whose file differs."""
    path = os.path.join(run_dir, DIGESTS)
    hashed = 0
    with locked(run_dir, DIGESTS):
        known = read_json(path) or {}
        for component in components:
            real = os.path.realpath(component["path"])
            st = os.stat(real)
            entry = known.get(real)
            if entry is None or entry.get("identity") != identity(st):
                digest, st = engine_mod.hash_file(real)
                entry = known[real] = {"sha256": digest, "identity": identity(st)}
                hashed += 1
            if entry["sha256"] != component["sha256"]:
                raise DigestMismatch(f"component {component['name']!r}, field sha256: hash mismatch for {component['file']}: "
                                     f"manifest {component['sha256']}, file {entry['sha256']}")
        if hashed:
            write_json(path, known)
    return hashed


def play_addresses(run_dir: str, play_hosts: t.Sequence[str], compute: t.Callable[[], dict]) -> dict:
    """``compute()`` once per run and play (keyed by the play's host names), then read back."""
    key = hashlib.sha256("\n".join(play_hosts).encode("utf-8")).hexdigest()[:16]
    name = f"play-{key}.json"
    path = os.path.join(run_dir, name)
    cached = read_json(path)
    if cached is not None:
        return cached
    with locked(run_dir, name):
        cached = read_json(path)
        if cached is None:
            cached = compute()
            write_json(path, cached)
    return cached


def _identities(paths: t.Iterable[str]) -> list:
    """(path, identity or None) of each path, folders expanded one level (the anchors folder)."""
    listed = []
    for path in sorted(set(paths)):
        try:
            st = os.stat(path)
        except OSError:
            listed.append([path, None])
            continue
        listed.append([path, identity(st)])
        if os.path.isdir(path):
            listed.extend(_identities(os.path.join(path, name) for name in os.listdir(path)))
    return listed


def _trust_inputs(args: dict, components: t.Sequence[dict]) -> list[str]:
    """Every file a signature verdict depends on: manifest, its signature, components, signatures, anchors."""
    repository = args["repository"]
    manifest = repository if os.path.isfile(repository) else os.path.join(repository, "manifest.yml")
    paths = [manifest, manifest + ".sig"] + ([args["trust"]] if args.get("trust") else [])
    for component in components:
        paths.append(component["path"])
        for name in os.listdir(os.path.dirname(component["path"])):
            if name.startswith(os.path.basename(component["path"]).rsplit(".", 1)[0]):
                paths.append(os.path.join(os.path.dirname(component["path"]), name))  # .compsig, _partN, .tsr
    return paths


def trusted_components(run_dir: str | None, args: dict, load: t.Callable[[bool], tuple]) -> tuple:
    """``load(verify)`` -> (components, warnings), computed once per run while none of its inputs changed.

    Check mode (no ``run_dir``) and a first worker run ``load`` for real; later workers of the run
    read the result back when the manifest, the files, their signatures and the anchors have the same
    identity and the policy is the same. Failures are never cached: each worker raises them again."""
    if run_dir is None:
        return load(True)
    # The cheap part (YAML, no hashing) tells which files the verdict depends on.
    from ansible_collections.fleet.firmware.plugins.module_utils import manifest as manifest_mod
    listed = manifest_mod.load_components(args["repository"], verify=False)
    key_data = json.dumps([args.get("trust"), args.get("signatures"), sorted(args.get("components") or []),
                           _identities(_trust_inputs(args, listed))])
    name = "trusted-%s.json" % hashlib.sha256(key_data.encode("utf-8")).hexdigest()[:16]
    path = os.path.join(run_dir, name)
    with locked(run_dir, name):
        cached = read_json(path)
        if isinstance(cached, list) and len(cached) == 2:
            return cached[0], cached[1]
        components, warnings = load(False)
        write_json(path, [components, warnings])
    return components, warnings
