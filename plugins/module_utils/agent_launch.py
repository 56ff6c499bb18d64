# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start the node agent in one command: this loader and the zipapp arrive on stdin (issue 15).

Runs on nodes: Python 3.6+, standard library only. The controller runs one command through
its connection, with become (sudo):

    python3 -c 'import sys;b=sys.stdin.buffer;exec(b.read(int(b.readline())))'

and writes on its stdin: the size of this file's source, this source, one JSON line (the
agent's parameters and secrets, what to plan, where the engine is) and the zipapp (its size is
in the JSON). No temporary folder, no sftp, no chmod, no rm: the zipapp is written once, into
the agent's own staging folder. What the controller would ask next rides on the answer, one
JSON line on stdout: the module's answer (``fleet.firmware.agent``), the plan of the given
components (the same ``plan.plan`` the agent's ``/v1/plan`` runs), the staging folder's free
space, and whether the node reaches the engine's port (pull or push under ``auto``).

Imported from the zipapp, nothing runs: ``main()`` runs only when this file is the program.
"""
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time

PACKAGE = "ansible_collections.fleet.firmware.plugins.module_utils"
SECRET_KEYS = ("token", "ca_cert", "ca_fingerprint", "server_cert", "server_key")


def read_exact(stream, size):
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise ValueError("stdin ended after %d of %d bytes of the agent" % (size - left, size))
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def prepare_staging(staging):
    """The staging folder, 0700 and ours (as the module's copy_agent checks it)."""
    os.makedirs(staging, mode=0o700, exist_ok=True)
    info = os.lstat(staging)
    if not os.path.isdir(staging) or os.path.islink(staging) or info.st_uid != os.geteuid():
        raise OSError("staging folder %s exists and is not a folder owned by uid %d" % (staging, os.geteuid()))
    os.chmod(staging, 0o700)


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def stage_incoming(staging, incoming, data):
    """Write the zipapp into the staging folder as ``incoming``: from then on, a cleanup of an
    older start of this tag (teardown.staging_in_use) leaves the folder alone. One more try if
    that cleanup removed the folder between its creation and this write."""
    for attempt in (1, 2):
        prepare_staging(staging)
        try:
            write_private(incoming, data)
            return
        except (IOError, OSError) as exc:
            if attempt == 2 or exc.errno != errno.ENOENT:
                raise


def log_tail(staging, limit=2000):
    try:
        with open(os.path.join(staging, "agent.log"), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return ""


def read_ready(process, timeout):
    """The agent's one line on stdout: ready, or why not."""
    import select
    deadline = time.time() + timeout
    line = b""
    while not line.endswith(b"\n") and time.time() < deadline:
        if not select.select([process.stdout], [], [], max(0.0, deadline - time.time()))[0]:
            break
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        line += chunk
    if not line:
        return {"ready": False, "error": "the agent did not answer within %d s (exit status %s)" % (timeout, process.poll())}
    try:
        return json.loads(line.decode("utf-8").splitlines()[0])
    except (ValueError, IndexError):
        return {"ready": False, "error": "the agent said: %s" % line[:500].decode("utf-8", "replace")}


def spawn(agent_utils, params, staging, pyz):
    """Start the agent in its own session and hand it its configuration on stdin."""
    config = dict((key, params["secrets"][key]) for key in SECRET_KEYS)
    config.update(params["config"])
    config["staging"] = staging
    if params.get("pull") and params.get("engine_reachable"):
        # Pull mode: the node calls the engine; no inbound port, no firewall opening (uplink.py).
        config.update(engine=params["pull"], inbound=False)
    log = os.open(os.path.join(staging, "agent.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen([sys.executable, pyz], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   close_fds=True, start_new_session=True, cwd=staging)
    finally:
        os.close(log)
    try:
        process.stdin.write(json.dumps(config).encode("utf-8"))
        process.stdin.close()
    except (IOError, OSError):
        pass
    answer = read_ready(process, params.get("start_timeout", 30))
    process.stdout.close()
    if not answer.get("ready"):
        agent_utils.stop_process(process.pid, 5)
        process.wait()
    return answer


def reaches(targets, timeout):
    """Whether a TCP connection to one of ``targets`` ([address, port]) opens (the engine's port)."""
    for address, port in targets:
        try:
            socket.create_connection((address, int(port)), timeout=timeout).close()
            return True
        except (OSError, ValueError):
            continue
    return False


def extras(params, staging):
    """What the controller would ask next: the plan, the free space, the way back to the engine."""
    found = {}
    if params.get("plan") is not None:
        plan_mod = __import__(PACKAGE + ".plan", fromlist=["plan"])
        try:
            found["plan"] = plan_mod.plan(params["plan"]["components"], params["plan"].get("policy") or {}, os_name="linux",
                                          redfish=plan_mod.redfish_settings(params["plan"].get("redfish")))
        except ValueError as exc:
            found["plan_error"] = str(exc)
    try:
        usage = os.statvfs(staging)
        found["free_bytes"] = usage.f_bavail * usage.f_frsize
    except OSError:
        pass
    if params.get("engine"):
        found["engine_reachable"] = params["engine_reachable"]
    return found


def already_running(agent_utils, params, staging):
    status = agent_utils.control(params["tag"], {"op": "status"})
    renewed = agent_utils.control(params["tag"], {"op": "lease", "seconds": params["config"]["lease"]})
    return {"changed": False, "agent_port": status["port"], "pid": status["pid"], "address": status["addresses"], "staged_path": staging,
            "lease_expires": renewed.get("lease_expires", status["lease_expires"]), "inbound": bool(status.get("inbound", True)),
            "msg": "the agent of run %s is already running; lease renewed" % params["tag"]}


def launch(params, data):
    """Stage the zipapp, start the agent (or renew the one of this run), answer like the module."""
    tag = params["tag"]
    staging = params["staging"].rstrip("/")
    # Before the start: whether the agent needs an inbound port depends on it.
    params["engine_reachable"] = reaches(params["engine"], params.get("engine_timeout", 2.0)) if params.get("engine") else None
    existed = os.path.lexists(staging)
    incoming = os.path.join(staging, ".agent-%d.pyz" % os.getpid())
    try:
        stage_incoming(staging, incoming, data)
        sys.path.insert(0, incoming)
        agent_utils = __import__(PACKAGE + ".agent", fromlist=["agent"])
        lock = agent_utils.NodeLock()
        other = (lock.holder() or {"tag": "?"}) if lock.held() else None
        if other is not None and other.get("tag") != tag:
            raise LaunchRefused("node is held by run %r (agent pid %s since %s): stop that run first, or wait for its lease to run out"
                                % (other.get("tag"), other.get("pid"), other.get("since")))
        if other is not None:
            # The running agent keeps its own zipapp; ours goes at the end.
            answer = already_running(agent_utils, params, staging)
        else:
            pyz = os.path.join(staging, "agent.pyz")
            if os.path.lexists(pyz):
                os.unlink(pyz)  # left by a killed agent of this tag; nobody runs from it
            os.link(incoming, pyz)  # one file, two names: this process imports from the first until it ends
            ready = spawn(agent_utils, params, staging, pyz)
            answer_inbound = ready.get("inbound", True)
            if not ready.get("ready"):
                raise LaunchFailed("the agent of run %s did not start: %s" % (tag, ready.get("error")))
            answer = {"changed": True, "agent_port": ready["port"], "pid": ready["pid"], "address": ready["addresses"],
                      "staged_path": staging, "lease_expires": ready["lease_expires"], "firewall_opened": ready.get("firewall", False),
                      "inbound": answer_inbound}
    except LaunchRefused as exc:
        _discard(incoming, staging, existed)
        return {"failed": True, "msg": str(exc), "staged_path": staging}
    except (LaunchFailed, OSError, ValueError, KeyError, ImportError) as exc:
        tail = log_tail(staging)
        _discard(incoming, staging, existed)
        message = str(exc) if isinstance(exc, LaunchFailed) else "the agent of run %s did not start: %s" % (tag, exc)
        return {"failed": True, "msg": message, "agent_log": tail, "staged_path": staging}
    answer.update(extras(params, staging))
    _unlink(incoming)
    return answer


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _discard(incoming, staging, existed):
    _unlink(incoming)
    if not existed:
        shutil.rmtree(staging, ignore_errors=True)


class LaunchRefused(Exception):
    """Another run holds the node."""


class LaunchFailed(Exception):
    """The agent did not say ready."""


def main():
    stdin = sys.stdin.buffer
    try:
        params = json.loads(stdin.readline().decode("utf-8"))
        data = read_exact(stdin, int(params["agent_size"]))
    except (ValueError, KeyError) as exc:
        answer = {"failed": True, "msg": "the agent's launcher got no usable input on stdin: %s" % exc}
    else:
        answer = launch(params, data)
    sys.stdout.write("FLEET-LAUNCH " + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 1 if answer.get("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main())
