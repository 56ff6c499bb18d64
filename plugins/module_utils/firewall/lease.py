# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease: a dead-man switch that closes a tag's rules when its time runs out.

A watchdog process per leased tag runs on the node in its own session (``setsid``): it
survives the SSH session that started it and the death of the controller (even ``kill -9``),
and needs no further connection. It watches ``lease-<tag>.json``: a renewal moves
``expires`` forward, a normal close removes the file and stops the watchdog; when ``expires``
passes, it closes the tag with the very backend code the module uses. The module's code lives
in a temporary zip that Ansible deletes, so the watchdog runs from a copy of this package
under the state folder (``lib-<hash>/``), removed with the last lease that uses it.
"""
import hashlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from typing import Dict, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import state

PACKAGE = "ansible_collections.fleet.firmware.plugins.module_utils.firewall"
MODULES = ("__init__", "common", "state", "lease", "iptables", "nftables", "firewalld", "ufw", "api")
# module_utils outside the package that it imports (the watchdog has no other copy of them).
PARENT = PACKAGE.rsplit(".", 1)[0]
SHARED = ("runtag",)
BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
        "from %s.lease import watchdog_main; watchdog_main(sys.argv[2], sys.argv[3], sys.argv[4])" % PACKAGE)
POLL = 0.5  # seconds between looks at the lease file: a lease closes at most this late


def _source(full: str) -> str:
    module = importlib.import_module(full)
    loader = getattr(module, "__loader__", None)
    source = loader.get_source(full) if loader is not None and hasattr(loader, "get_source") else None
    if source is None:
        with open(module.__file__) as handle:
            source = handle.read()
    return source


def install_lib() -> str:
    """Copy this package, and the module_utils it imports, under the state folder (once per
    version); return the sys.path entry."""
    names = [PACKAGE] + [PACKAGE + "." + name for name in MODULES if name != "__init__"] + [PARENT + "." + name for name in SHARED]
    sources = {full: _source(full) for full in names}
    digest = hashlib.sha256("".join(sources[n] for n in sorted(sources)).encode("utf-8")).hexdigest()[:16]
    root = os.path.join(state.state_dir(), "lib-" + digest)
    target = os.path.join(root, *PACKAGE.split("."))
    if not os.path.exists(os.path.join(target, "api.py")):
        os.makedirs(target, mode=0o700, exist_ok=True)
        for full, source in sources.items():
            if full == PACKAGE:
                path = os.path.join(target, "__init__.py")
            else:
                path = os.path.join(root, *full.split(".")) + ".py"
            with open(path, "w") as handle:
                handle.write(source)
    return root


def prune_libs() -> None:
    """Remove the copies no lease uses any more."""
    used = set((state.read("lease-" + t) or {}).get("lib") for t in state.tags("lease-"))
    try:
        names = os.listdir(state.state_dir())
    except OSError:
        return
    for name in names:
        full = os.path.join(state.state_dir(), name)
        if name.startswith("lib-") and full not in used:
            shutil.rmtree(full, ignore_errors=True)
    state.prune()


def _alive(data: Optional[Dict]) -> bool:
    """Is the watchdog of this lease running (the pid, and its token in its command line)?"""
    if not data or not data.get("pid"):
        return False
    try:
        with open("/proc/%d/cmdline" % data["pid"], "rb") as handle:
            return data["token"].encode() in handle.read()
    except (IOError, OSError):
        return False


def expires(tag: str) -> Optional[float]:
    data = state.read("lease-" + tag)
    return data["expires"] if data else None


def start(tag: str, backend: str, options: Dict[str, object], seconds: int) -> float:
    """Start or renew the lease of ``tag``; return when it runs out (epoch seconds)."""
    data = state.read("lease-" + tag)
    until = time.time() + seconds
    if _alive(data) and data["backend"] == backend and data["options"] == options:
        data["expires"] = until
        state.write("lease-" + tag, data)
        return until
    cancel(tag)
    lib = install_lib()
    token = uuid.uuid4().hex
    data = {"tag": tag, "backend": backend, "options": options, "expires": until, "token": token, "lib": lib, "pid": 0}
    # The file first: a watchdog that starts and finds no file exits at once.
    state.write("lease-" + tag, data)
    proc = subprocess.Popen(
        [sys.executable, "-c", BOOT, lib, state.state_dir(), tag, token],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=True, start_new_session=True, cwd="/",
    )
    data["pid"] = proc.pid
    state.write("lease-" + tag, data)
    return until


def cancel(tag: str) -> bool:
    """Stop the watchdog of ``tag`` and forget its lease (the rules are the caller's business)."""
    data = state.read("lease-" + tag)
    if data is None:
        return False
    state.remove("lease-" + tag)
    if _alive(data):
        try:
            os.kill(data["pid"], signal.SIGTERM)
        except OSError:
            pass
    prune_libs()
    return True


def watchdog_main(state_folder: str, tag: str, token: str) -> None:
    """The watchdog's life: wait for the lease to run out, then close the tag and go."""
    os.environ["FLEET_FIREWALL_STATE_DIR"] = state_folder
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.umask(0o077)
    from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api
    failures = 0
    while True:
        data = state.read("lease-" + tag)
        if not data or data.get("token") != token:
            return  # closed normally, or replaced by a newer watchdog
        remaining = data["expires"] - time.time()
        if remaining > 0:
            time.sleep(min(remaining, POLL))
            continue
        try:
            with state.lock():
                data = state.read("lease-" + tag)
                if not data or data.get("token") != token or data["expires"] > time.time():
                    continue
                api.make_backend(data["backend"], data["options"]).close(tag)
                state.remove("lease-" + tag)
                prune_libs()
            return
        except Exception:  # pylint: disable=broad-except  # keep trying: a port must not stay open
            failures += 1
            time.sleep(min(2.0 ** min(failures, 5), 30.0))
