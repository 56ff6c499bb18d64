# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Install one component on the node: build the command, run it, map its return code.

Runs on nodes (the agent) and in unit tests on the controller: Python 3.6+, standard library
only (no dataclasses, no ``from __future__ import annotations``).

* Commands are argv lists, never shell strings, and never carry secrets: values a component
  needs in secret go through its ``environment`` (never returned, never logged).
* Each installer runs in its own process group (session on POSIX). On timeout the whole group
  gets SIGTERM, then SIGKILL after a grace period, so a vendor script's children die with it.
* Output goes to an unnamed temporary file, not a pipe: an installer that leaves a daemon
  holding its stdout cannot make us wait for ever. The result keeps the last 4 KiB.

``component`` is one manifest entry (see docs/repository.md) as JSON, optionally with two keys
the plan adds: ``action`` (``install``, ``upgrade``, ``downgrade``, ``rewrite``) and
``force`` (bool), which turn on the installer's own downgrade / reinstall / force switches.
"""
import os
import shlex
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.fleet.firmware.plugins.module_utils import returncodes as rcs

INSTALL_KINDS = ("script", "rpm", "deb", "smart_component", "fwupd", "msi", "exe")
KINDS_BY_OS = {
    "linux": ("script", "rpm", "deb", "smart_component", "fwupd"),
    "windows": ("script", "smart_component", "msi", "exe"),
}
REBOOT_POLICIES = ("none", "required", "if_rc")
OUTPUT_TAIL = 4096
# Seconds between SIGTERM and SIGKILL of a timed-out installer's process group.
KILL_GRACE = 5.0

_POWERSHELL = ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File"]


class InstallError(ValueError):
    """A component that cannot be installed as described (bad kind, args, OS)."""


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def component_args(component):
    # type: (Mapping[str, Any]) -> List[str]
    """The component's extra ``args`` as a list of strings (a string is split like a shell would, never run by one)."""
    args = component.get("args") or []
    if isinstance(args, str):
        return shlex.split(args)
    if not isinstance(args, (list, tuple)):
        raise InstallError("component %r: args must be a list of strings" % component.get("name"))
    return [str(arg) for arg in args]


def _wants(component, what):
    # type: (Mapping[str, Any], str) -> bool
    """Whether the plan asked for a downgrade, a rewrite (same version again) or force."""
    if what == "force":
        return bool(component.get("force"))
    return component.get("action") == what


def _script_command(path, os_name):
    # type: (str, str) -> List[str]
    if os_name == "windows":
        lower = path.lower()
        if lower.endswith(".ps1"):
            return _POWERSHELL + [path]
        if lower.endswith((".cmd", ".bat")):
            return ["cmd.exe", "/d", "/c", path]
    return [path]


def _rpm_command(component, path):
    # type: (Mapping[str, Any], str) -> List[str]
    command = ["rpm", "-U"]
    if _wants(component, "rewrite") or _wants(component, "force"):
        command.append("--replacepkgs")
    if _wants(component, "downgrade") or _wants(component, "force"):
        command.append("--oldpackage")
    return command + [path]


def _smart_component_command(component, path, os_name):
    # type: (Mapping[str, Any], str, str) -> List[str]
    if os_name == "windows":
        command = [path, "/s"]
        if _wants(component, "downgrade") or _wants(component, "rewrite") or _wants(component, "force"):
            command.append("/f")
        return command
    command = [path, "--silent"]
    if _wants(component, "downgrade"):
        command.append("--downgrade")
    if _wants(component, "rewrite"):
        command.append("--rewrite")
    if _wants(component, "force"):
        command.append("--force")
    return command


def _fwupd_command(component, path):
    # type: (Mapping[str, Any], str) -> List[str]
    # The reboot is the deploy action's job (all-succeeded rule), never fwupdmgr's.
    command = ["fwupdmgr", "install", "--assume-yes", "--no-reboot-check"]
    if _wants(component, "rewrite"):
        command.append("--allow-reinstall")
    if _wants(component, "downgrade"):
        command.append("--allow-older")
    if _wants(component, "force"):
        command.append("--force")
    return command + [path]


def _msi_command(component, path):
    # type: (Mapping[str, Any], str) -> List[str]
    # The reboot is the deploy action's job: /norestart, and 3010 says a reboot is needed.
    command = ["msiexec.exe", "/i", path, "/qn", "/norestart", "/l*v", path + ".log"]
    if _wants(component, "rewrite") or _wants(component, "force"):
        command += ["REINSTALL=ALL", "REINSTALLMODE=vomus"]
    return command


def build_command(component, path, os_name="linux"):
    # type: (Mapping[str, Any], str, str) -> List[str]
    """The argv that installs ``component`` from the local file ``path`` on ``os_name``.

    Pure: looks at nothing on disk. Raises InstallError naming the component for a kind the OS
    does not have.
    """
    kind = component.get("install")
    name = component.get("name")
    if os_name not in KINDS_BY_OS:
        raise InstallError("component %r: unknown os %r (linux or windows)" % (name, os_name))
    if kind not in KINDS_BY_OS[os_name]:
        raise InstallError("component %r: install kind %r does not exist on %s (there: %s)"
                           % (name, kind, os_name, ", ".join(KINDS_BY_OS[os_name])))
    if kind == "script":
        command = _script_command(path, os_name)
    elif kind == "rpm":
        command = _rpm_command(component, path)
    elif kind == "deb":
        # dpkg -i installs any version, older or the same one, so no switch is needed.
        command = ["dpkg", "-i", path]
    elif kind == "smart_component":
        command = _smart_component_command(component, path, os_name)
    elif kind == "fwupd":
        command = _fwupd_command(component, path)
    elif kind == "msi":
        command = _msi_command(component, path)
    else:  # exe: silent switches are vendor-specific and come from args
        command = [path]
    args = component_args(component)
    if command[0] == "cmd.exe":
        unsafe = cmd_unsafe_arg(args)
        if unsafe is not None:
            raise InstallError("component %r: %s" % (name, unsafe))
    return command + args


# What cmd.exe interprets in a batch file's command line whatever the quoting: an argv element
# with one of these would run as a command of its own (CreateProcess quotes for the program's C
# runtime, and cmd.exe parses the line again).
CMD_METACHARACTERS = '&|<>^%!"()\r\n'


def is_batch_file(filename):
    # type: (Any) -> bool
    return isinstance(filename, str) and filename.lower().endswith((".cmd", ".bat"))


def cmd_unsafe_arg(args):
    # type: (Sequence[Any]) -> Optional[str]
    """Why ``args`` cannot be passed to a .cmd/.bat component (cmd.exe parses them), or None."""
    for index, arg in enumerate(args):
        found = sorted(set(str(arg)) & set(CMD_METACHARACTERS))
        if found:
            return ("args[%d] %r has %s, which cmd.exe interprets in a .cmd/.bat command line; such an argument cannot be "
                    "passed safely (write it into the script instead)" % (index, str(arg), " ".join(repr(c) for c in found)))
    return None


def returncode_table(component, os_name="linux"):
    # type: (Mapping[str, Any], str) -> rcs.RcTable
    """The component's own ``returncodes`` map if it has one, else its kind's default."""
    own = component.get("returncodes")
    if own:
        try:
            return rcs.parse_table(own)
        except ValueError as exc:
            raise InstallError("component %r: %s" % (component.get("name"), exc))
    return rcs.default_table(component.get("install", ""), os_name)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _shebang(path):
    # type: (str) -> Optional[List[str]]
    """The interpreter argv of a ``#!`` script, else None.

    Running the interpreter ourselves works where /var/tmp is mounted noexec and needs no chmod.
    """
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").strip().split(None, 1)
    return words[:1] + ([words[1]] if len(words) > 1 else []) if words else None


def _runnable(command, component, path, os_name):
    # type: (List[str], Mapping[str, Any], str, str) -> List[str]
    """On POSIX, run a script or .scexe through its interpreter, or make a binary executable."""
    if os_name != "linux" or component.get("install") not in ("script", "smart_component") or command[0] != path:
        return command
    interpreter = _shebang(path)
    if interpreter:
        return interpreter + command
    mode = os.stat(path).st_mode
    if not mode & 0o100:
        os.chmod(path, mode | 0o100)
    return command


def _environment(component):
    # type: (Mapping[str, Any]) -> Dict[str, str]
    env = dict(os.environ)
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if component.get("install") == "deb":
        env["DEBIAN_FRONTEND"] = "noninteractive"
    for key, value in (component.get("environment") or {}).items():
        env[str(key)] = str(value)
    return env


def _kill_group(proc):
    # type: (subprocess.Popen) -> str
    """SIGTERM the installer's whole process group, SIGKILL after KILL_GRACE seconds.

    Returns the signal that ended the installer: ``SIGTERM`` (it could roll back) or ``SIGKILL``.
    """
    if os.name == "nt":  # pragma: no cover - Windows
        subprocess.call(["taskkill", "/F", "/T", "/PID", str(proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.wait()
        return "taskkill"
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return "SIGTERM"
    deadline = time.monotonic() + KILL_GRACE
    while time.monotonic() < deadline:
        # Every member must end, not only the leader: a child may ignore SIGTERM.
        if proc.poll() is not None and not _group_alive(proc.pid):
            return "SIGTERM"
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return "SIGKILL"


def _group_alive(pgid):
    # type: (int) -> bool
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def timeout_message(limit, ended_by):
    # type: (float, str) -> str
    """What the result says of an installer stopped at its timeout (the ledger keeps it)."""
    if ended_by == "SIGTERM":
        return "timed out after %g s: the installer's process group was stopped with SIGTERM (it could roll back)" % limit
    return ("timed out after %g s: the installer's process group was killed (%s; it did not end within %g s of SIGTERM): "
            "the component may be half-installed" % (limit, ended_by, KILL_GRACE))


def _tail(handle):
    # type: (Any) -> str
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - OUTPUT_TAIL))
    return handle.read().decode("utf-8", "replace")


def _effective_timeout(component, timeout):
    # type: (Mapping[str, Any], Optional[float]) -> Optional[float]
    """The smaller of the caller's and the component's timeout (either may be absent)."""
    limits = [float(t) for t in (timeout, component.get("timeout")) if t not in (None, "", 0)]
    return min(limits) if limits else None


def _result(status, rc, output, started, command, message):
    # type: (str, Optional[int], str, float, List[str], str) -> Dict[str, Any]
    return {"status": status, "rc": rc, "output": output[-OUTPUT_TAIL:], "duration": round(time.monotonic() - started, 3),
            "command": command, "message": message}


def _popen(command, workdir, env, output):
    # type: (List[str], Optional[str], Dict[str, str], Any) -> subprocess.Popen
    kwargs = {"cwd": workdir, "env": env, "stdin": subprocess.DEVNULL, "stdout": output, "stderr": subprocess.STDOUT}  # type: Dict[str, Any]
    if os.name == "nt":  # pragma: no cover - Windows
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    return subprocess.Popen(command, **kwargs)


def install(component, path, os_name="linux", timeout=None, workdir=None):
    # type: (Mapping[str, Any], str, str, Optional[float], Optional[str]) -> Dict[str, Any]
    """Install ``component`` from the verified local file ``path``.

    Returns ``status`` (installed, reboot_required, not_needed, failed, timeout), ``rc`` (None when
    the installer did not finish or did not start), ``output`` (last 4 KiB of stdout+stderr),
    ``duration`` (seconds), ``command`` (the argv, which never holds secrets) and ``message``
    (what the return code means). Never raises for installer problems: they are ``failed``.
    ``timeout`` (seconds) and the component's ``timeout``: the smaller one applies.
    """
    started = time.monotonic()
    command = []  # type: List[str]
    try:
        command = build_command(component, path, os_name)
        table = returncode_table(component, os_name)
        if not os.path.isfile(path):
            return _result(rcs.FAILED, None, "", started, command, "component file %s does not exist" % path)
        command = _runnable(command, component, path, os_name)
    except (InstallError, OSError) as exc:
        return _result(rcs.FAILED, None, "", started, command, str(exc))
    limit = _effective_timeout(component, timeout)
    with tempfile.TemporaryFile(dir=workdir) as output:
        try:
            proc = _popen(command, workdir or os.path.dirname(os.path.abspath(path)), _environment(component), output)
        except OSError as exc:
            return _result(rcs.FAILED, None, "", started, command, "cannot start %s: %s" % (command[0], exc))
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            ended_by = _kill_group(proc)
            return _result(rcs.TIMEOUT, None, _tail(output), started, command, timeout_message(limit, ended_by))
        status, message = rcs.interpret(rc, table)
        status = rcs.apply_reboot_policy(status, component.get("reboot"))
        return _result(status, rc, _tail(output), started, command, message)
