# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node agent: a small mutual-TLS server that lives on a node for one run.

Runs on nodes: Python 3.6+, standard library only. The controller builds it, with the other
module_utils it needs, into one zipapp (``plugin_utils/agent_build.py``); the agent module
starts it (``agent.pyz`` in the staging folder) and hands it its configuration on stdin.
The protocol, the lease and the lock are described in ``docs/agent.md``.

Life: take the node lock -> bind the port on the controller-facing addresses -> open the
port in the node's firewall for the controller only (tagged, with a firewall lease of its own
as a second guard) -> answer "ready" on stdout -> serve until shutdown or lease expiry ->
finish the in-flight component -> close the rules -> remove the staging folder -> unlock.
"""
import errno
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

DEFAULT_PORT = 62286
DEFAULT_LEASE = 300
# The firewall's own lease outlives the agent's by this much: it only matters when the agent
# itself dies (kill -9); otherwise the agent closes its rules at once.
FIREWALL_GRACE = 15
RUN_DIR_ENV = "FLEET_AGENT_RUN_DIR"
LOCK_NAME = "agent.lock"
HOLDER_NAME = "agent.json"
SOCKET_NAME = "agent-%s.sock"
COMPONENTS = "components"
CHUNK = 1024 * 1024
MAX_JSON_BODY = 8 * 1024 * 1024
# Pull delivery: attempts per component, and seconds a silent engine connection may stall.
FETCH_ATTEMPTS = 8
FETCH_TIMEOUT = 15
TAG_RE = re.compile(r"^[a-z0-9-]{1,32}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
NODE_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUIRED = ("tag", "token", "ca_cert", "ca_fingerprint", "server_cert", "server_key", "controller", "staging")


class AgentError(Exception):
    """The agent cannot start or do what was asked; the message names the cause."""


def run_dir() -> str:
    """Where the lock and the control socket live: root's /run (a tmpfs: gone after a reboot)."""
    if os.environ.get(RUN_DIR_ENV):
        return os.environ[RUN_DIR_ENV]
    if os.geteuid() == 0:
        return "/run/fleet-firmware"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "fleet-firmware-%d" % os.geteuid())


def utc(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pem_fingerprint(pem: str) -> str:
    """SHA-256 of a PEM certificate's DER form, lower-case hex (what the controller pins)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


# ---------------------------------------------------------------- configuration


def validate_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise AgentError("tag %r is invalid: 1 to 32 characters of a-z, 0-9 and '-'" % (tag,))
    return tag


def validate_config(raw: Dict[str, Any]) -> Dict[str, Any]:
    """Check the stdin document; return it with defaults filled in."""
    if not isinstance(raw, dict):
        raise AgentError("the configuration must be a JSON object")
    missing = [key for key in REQUIRED if not raw.get(key)]
    if missing:
        raise AgentError("the configuration lacks %s" % ", ".join(missing))
    config = dict(raw)
    validate_tag(config["tag"])
    config.setdefault("node_id", socket.gethostname())
    config.setdefault("run_id", config["tag"])
    if not NODE_RE.match(str(config["node_id"])):
        raise AgentError("node_id %r is invalid" % (config["node_id"],))
    config["port"] = _int_in(config.get("port", DEFAULT_PORT), 1, 65535, "port")
    config["lease"] = _int_in(config.get("lease", DEFAULT_LEASE), 5, 7 * 24 * 3600, "lease")
    config["controller"] = [_address(a, "controller") for a in _as_list(config["controller"])]
    config["bind"] = [_address(a, "bind") for a in _as_list(config.get("bind") or [])]
    firewall = config.get("firewall") or {}
    config["firewall"] = {"open": bool(firewall.get("open", True)), "backend": str(firewall.get("backend", "auto"))}
    staging = str(config["staging"])
    if not os.path.isabs(staging) or os.path.normpath(staging) != staging.rstrip("/") or staging in ("/", "/var/tmp", "/tmp"):
        raise AgentError("staging folder %r is invalid: an absolute, normalized path of its own" % (staging,))
    config["staging"] = staging.rstrip("/")
    if pem_fingerprint(config["ca_cert"]) != str(config["ca_fingerprint"]).lower().replace(":", ""):
        raise AgentError("the CA certificate does not match the pinned fingerprint %s" % (config["ca_fingerprint"],))
    return config


def _as_list(value: Any) -> List[str]:
    return [value] if isinstance(value, str) else list(value)


def _int_in(value: Any, low: int, high: int, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AgentError("%s %r is not a number" % (name, value))
    if isinstance(value, bool) or not low <= number <= high:
        raise AgentError("%s %r is out of range (%d-%d)" % (name, value, low, high))
    return number


def _address(value: Any, name: str) -> str:
    text = str(value).strip().strip("[]")
    try:
        socket.getaddrinfo(text, None, 0, 0, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        raise AgentError("%s address %r is not an IP address" % (name, value))
    return text


def facing_addresses(controllers: List[str]) -> List[str]:
    """The node's own address on the route to each controller address (a UDP connect sends nothing)."""
    found = []  # type: List[str]
    for controller in controllers:
        family = socket.AF_INET6 if ":" in controller else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_DGRAM)
        try:
            probe.connect((controller, 9))
            local = probe.getsockname()[0]
        except OSError as exc:
            raise AgentError("no route from this node to the controller address %s: %s" % (controller, exc))
        finally:
            probe.close()
        if local not in found:
            found.append(local)
    return found


# ---------------------------------------------------------------- the node lock


class NodeLock(object):
    """One agent per node: an exclusive flock held for the agent's life, and who holds it."""

    def __init__(self, folder: Optional[str] = None) -> None:
        self.folder = folder or run_dir()
        self.fd = -1

    @property
    def lock_path(self) -> str:
        return os.path.join(self.folder, LOCK_NAME)

    @property
    def holder_path(self) -> str:
        return os.path.join(self.folder, HOLDER_NAME)

    def holder(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.holder_path) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def held(self) -> bool:
        """Is the lock held by a live process (ours or another)?"""
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def acquire(self, tag: str, info: Dict[str, Any]) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                other = self.holder() or {}
                raise AgentError("node is held by run %r (agent pid %s since %s): stop that run first, or wait for its lease to run out"
                                 % (other.get("tag", "?"), other.get("pid", "?"), other.get("since", "?")))
            # The holder before us may have unlinked the file after we opened it: lock the live one.
            try:
                if os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino:
                    break
            except OSError:
                pass
            os.close(fd)
        self.fd = fd
        data = dict(info, tag=tag, pid=os.getpid(), since=utc(time.time()))
        tmp = self.holder_path + ".tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            json.dump(data, handle)
        os.rename(tmp, self.holder_path)

    def release(self) -> None:
        if self.fd < 0:
            return
        for path in (self.holder_path, self.lock_path):
            try:
                os.unlink(path)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = -1
        try:
            os.rmdir(self.folder)  # only when nothing else of ours is left there
        except OSError:
            pass


# ---------------------------------------------------------------- a running agent, from the node (module, sweep)


def control(tag: str, request: Dict[str, Any], timeout: float = 10.0) -> Dict[str, Any]:
    """One request over the running agent's local socket (root's /run, mode 0600)."""
    path = os.path.join(run_dir(), SOCKET_NAME % tag)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall((json.dumps(request) + "\n").encode("utf-8"))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    answer = json.loads(data.decode("utf-8") or "{}")
    if answer.get("error"):
        raise AgentError(answer["error"])
    return answer


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` is gone (reaped, if it is our child)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            pass  # not our child: kill(pid, 0) above still tells whether it lives
        except OSError:
            return True
        time.sleep(0.1)
    return False


def stop_process(pid: int, timeout: float) -> bool:
    """SIGTERM (the agent finishes and cleans up), then SIGKILL after ``timeout`` seconds."""
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, signum)
        except OSError:
            return True
        if wait_gone(pid, wait):
            return True
    return False


# ---------------------------------------------------------------- the job


class Job(object):
    """The components to install, in order, and what became of each."""

    def __init__(self, components: List[Dict[str, Any]], on_failed_dependency: str = "omit_component") -> None:
        self.components = [dict(c) for c in components]
        self.on_failed_dependency = on_failed_dependency
        self.broken = set()  # type: set  # names that failed, or were left out because of a failure
        for entry in self.components:
            entry.setdefault("status", "pending")

    def public(self) -> List[Dict[str, Any]]:
        keep = ("name", "version", "sha256", "status", "result", "rc", "duration", "output", "reason")
        return [dict((k, c[k]) for k in keep if k in c) for c in self.components]


ON_FAILED_DEPENDENCY = ("omit_component", "omit_host", "force")


def validate_job(body: Any) -> List[Dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("components"), list):
        raise AgentError("a job is {\"components\": [...]}")
    if body.get("on_failed_dependency", "omit_component") not in ON_FAILED_DEPENDENCY:
        raise AgentError("on_failed_dependency %r is not one of %s" % (body.get("on_failed_dependency"), ", ".join(ON_FAILED_DEPENDENCY)))
    for index, component in enumerate(body["components"]):
        if not isinstance(component, dict):
            raise AgentError("component #%d is not an object" % index)
        sha = str(component.get("sha256", ""))
        if not SHA_RE.match(sha):
            raise AgentError("component #%d (%s): sha256 %r is not 64 lower-case hex digits" % (index, component.get("name"), sha))
        if not component.get("name"):
            raise AgentError("component #%d: name is missing" % index)
    return body["components"]


# ---------------------------------------------------------------- the agent


class Agent(object):
    """State, lease and job of one agent; the HTTP handler and the local socket call into it."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.config = config
        self.tag = config["tag"]
        self.staging = config["staging"]
        self.lock = NodeLock()
        self.lease_expires = time.time() + config["lease"]
        self.state = "starting"
        self.cancelled = False
        self.cancel_reason = ""
        self.current = None  # type: Optional[Dict[str, Any]]
        self.job = None  # type: Optional[Job]
        self.events = []  # type: List[Dict[str, Any]]
        self.events_total = 0
        self.transfers = {}  # type: Dict[str, Dict[str, Any]]
        self.addresses = []  # type: List[str]
        self.servers = []  # type: List[HTTPServer]
        self.worker = None  # type: Optional[threading.Thread]
        self.mutex = threading.RLock()
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.firewall_opened = False
        self.renew_backend = (config.get("firewall") or {}).get("backend", "auto")  # resolved by _open_firewall
        self.control = None  # type: Optional[socketserver.BaseServer]

    # -- events and state

    def event(self, state: str, keep_state: bool = False, **fields: Any) -> None:
        """Record an event; ``keep_state`` for events that do not move the agent (a cancel request)."""
        with self.mutex:
            self.state = self.state if keep_state else state
            # seq numbers the events: a reader of the bounded window tells what it has not seen yet.
            self.events_total += 1
            entry = dict(fields, state=state, time=utc(time.time()), seq=self.events_total)
            self.events.append(entry)
            del self.events[:-200]  # a bounded history: status stays small
        log("event %s" % json.dumps(entry, sort_keys=True))

    def status(self) -> Dict[str, Any]:
        with self.mutex:
            return {
                "tag": self.tag, "run_id": self.config["run_id"], "node_id": self.config["node_id"],
                "pid": os.getpid(), "state": self.state, "cancelled": self.cancelled, "cancel_reason": self.cancel_reason,
                "lease_expires": utc(self.lease_expires), "lease_remaining": max(0.0, round(self.lease_expires - time.time(), 1)),
                "addresses": self.addresses, "port": self.config["port"],
                "current": dict(self.current) if self.current else None, "job": self.job_state(),
                "components": self.job.public() if self.job else [], "events": self.events[-50:],
                "downloads": dict(self.transfers),
            }

    def job_state(self) -> Optional[str]:
        """None (no job yet), running, done, or cancelled (the job ended early)."""
        if self.job is None:
            return None
        if self.worker is not None and self.worker.is_alive():
            return "running"
        return "cancelled" if any(c["status"] == "skipped" for c in self.job.components) else "done"

    # -- start

    def start(self) -> Dict[str, Any]:
        os.umask(0o077)
        self.lock.acquire(self.tag, {"port": self.config["port"], "staging": self.staging})
        try:
            self._prepare_staging()
            context = self._tls_context()
            self.addresses = self.config["bind"] or facing_addresses(self.config["controller"])
            self._listen(context)
            self._open_firewall()
            self._start_control()
        except BaseException:
            self.cleanup(remove_staging=False)
            raise
        self.event("firewall_open" if self.firewall_opened else "started", addresses=self.addresses, port=self.config["port"])
        for server in self.servers:
            threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        threading.Thread(target=self._watch_lease, name="lease", daemon=True).start()
        return {"ready": True, "pid": os.getpid(), "addresses": self.addresses, "port": self.config["port"],
                "lease_expires": utc(self.lease_expires), "staging": self.staging, "firewall": self.firewall_opened}

    def _prepare_staging(self) -> None:
        try:
            os.makedirs(self.staging, mode=0o700, exist_ok=True)
            info = os.lstat(self.staging)
        except OSError as exc:
            raise AgentError("cannot create the staging folder %s: %s" % (self.staging, exc.strerror))
        if not os.path.isdir(self.staging) or os.path.islink(self.staging) or info.st_uid != os.geteuid():
            raise AgentError("staging folder %s is not a folder owned by uid %d" % (self.staging, os.geteuid()))
        os.chmod(self.staging, 0o700)
        os.makedirs(os.path.join(self.staging, COMPONENTS), mode=0o700, exist_ok=True)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if hasattr(ssl, "TLSVersion"):
            context.minimum_version = ssl.TLSVersion.TLSv1_2
        else:  # Python 3.6
            context.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.config["ca_cert"])
        # load_cert_chain wants files: written 0600 in our own folder, removed right after.
        cert_file, key_file = os.path.join(self.staging, ".server.pem"), os.path.join(self.staging, ".server.key")
        try:
            for path, text in ((cert_file, self.config["server_cert"]), (key_file, self.config["server_key"])):
                with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
                    handle.write(text)
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError) as exc:
            raise AgentError("the agent's certificate or key is unusable: %s" % exc)
        finally:
            for path in (cert_file, key_file):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        return context

    def _listen(self, context: ssl.SSLContext) -> None:
        for address in self.addresses:
            try:
                self.servers.append(make_server(self, context, address, self.config["port"]))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AgentError("port %d is already in use on %s: another program listens there (choose another agent_port)"
                                     % (self.config["port"], address))
                raise AgentError("cannot listen on [%s]:%d: %s" % (address, self.config["port"], exc.strerror))

    def _firewall_spec(self):
        from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api
        return api, api.build_spec(self.tag, ["%d/tcp" % self.config["port"]], sources=self.config["controller"],
                                   lease=self.config["lease"] + FIREWALL_GRACE)

    def _open_firewall(self) -> None:
        if not self.config["firewall"]["open"]:
            return
        api, spec = self._firewall_spec()
        try:
            result = api.open_ports(spec, backend=self.config["firewall"]["backend"])
        except api.FirewallError as exc:
            raise AgentError("cannot open port %d/tcp in the node's firewall: %s" % (self.config["port"], exc))
        # "auto" is resolved once: renewals go to the backend the rules went into (detecting
        # again per renewal costs firewall-cmd/ufw runs and could pick another backend half-way).
        # The close stays as configured: "auto" sweeps every backend and iptables variant.
        self.renew_backend = str(result.get("backend") or self.config["firewall"]["backend"])
        self.firewall_opened = True
        log("firewall opened with %s: %s" % (result.get("backend"), result.get("rules")))

    def _start_control(self) -> None:
        """A local Unix socket (0600, root's /run): the agent module's way to renew and stop us."""
        path = os.path.join(run_dir(), SOCKET_NAME % self.tag)
        try:
            os.unlink(path)
        except OSError:
            pass
        agent = self

        class ControlHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline(65536).decode("utf-8") or "{}")
                    answer = agent.local_command(request)
                except Exception as exc:  # pylint: disable=broad-except  # answer, never die
                    answer = {"error": str(exc)}
                self.wfile.write((json.dumps(answer) + "\n").encode("utf-8"))

        class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.control = ControlServer(path, ControlHandler)
        os.chmod(path, 0o600)
        threading.Thread(target=self.control.serve_forever, name="control", daemon=True).start()

    def local_command(self, request: Dict[str, Any]) -> Dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "lease":
            return self.renew(request.get("seconds"))
        if op == "shutdown":
            self.request_stop("shutdown requested by the agent module")
            return {"stopping": True, "pid": os.getpid()}
        raise AgentError("unknown operation %r" % (op,))

    # -- lease

    def renew(self, seconds: Any = None) -> Dict[str, Any]:
        seconds = self.config["lease"] if seconds is None else _int_in(seconds, 5, 7 * 24 * 3600, "seconds")
        if self.stopping.is_set():
            raise AgentError("the agent is stopping (%s): the lease cannot be renewed" % (self.cancel_reason or "stop"))
        with self.mutex:
            self.lease_expires = time.time() + seconds
        if self.firewall_opened:
            api, spec = self._firewall_spec()
            api.open_ports(spec._replace(lease=seconds + FIREWALL_GRACE), backend=self.renew_backend)
        return {"lease_expires": utc(self.lease_expires), "lease_remaining": float(seconds)}

    def _watch_lease(self) -> None:
        while not self.stopping.is_set():
            if time.time() >= self.lease_expires:
                self.request_stop("lease expired")
                return
            self.stopping.wait(0.5)

    # -- job

    def submit(self, components: List[Dict[str, Any]], on_failed_dependency: str = "omit_component") -> int:
        with self.mutex:
            if self.stopping.is_set():
                raise AgentError("the agent is stopping: no new job")
            if self.worker is not None and self.worker.is_alive():
                raise AgentError("a job is already running")
            self.job = Job(components, on_failed_dependency)
            self.worker = threading.Thread(target=self._run_job, args=(self.job,), name="job", daemon=True)
            self.worker.start()
        return len(components)

    def cancel(self, reason: str) -> Dict[str, Any]:
        with self.mutex:
            if not self.cancelled:
                self.cancelled, self.cancel_reason = True, reason
                self.event("cancelled", keep_state=True, reason=reason)
            return {"cancelled": True, "current": dict(self.current) if self.current else None}

    def _run_job(self, job: Job) -> None:
        for component in job.components:
            blocked = self._blocked_by(job, component)
            if self.cancelled or blocked:
                component.update(status="skipped", reason=blocked or self.cancel_reason or "cancelled")
                if blocked:
                    job.broken.add(component["name"])  # what depends on it is left out too
                self.event("skipped", component=component["name"], reason=component["reason"])
                continue
            with self.mutex:
                self.current = {"name": component["name"], "sha256": component["sha256"], "since": utc(time.time())}
            try:
                self._install_one(component)
            except Exception as exc:  # pylint: disable=broad-except  # one component's failure is reported, not fatal
                component.update(status="failed", reason=str(exc))
                log(traceback.format_exc())
            finally:
                with self.mutex:
                    self.current = None
            if component["status"] == "failed":
                job.broken.add(component["name"])
            self.event(component["status"], component=component["name"], rc=component.get("rc"), reason=component.get("reason"))
        self.event("cancelled" if self.cancelled else "done", components=len(job.components))

    @staticmethod
    def _blocked_by(job: Job, component: Dict[str, Any]) -> str:
        """Why a failure earlier in the job leaves this component out ('' when it does not)."""
        if not job.broken or job.on_failed_dependency == "force":
            return ""
        if job.on_failed_dependency == "omit_host":
            return "omit_host: %s failed earlier on this node" % ", ".join(sorted(job.broken))
        failed = sorted(set(component.get("requires") or []) & job.broken)
        return "omit_component: its dependency %s failed" % ", ".join(failed) if failed else ""

    def component_path(self, sha256: str) -> str:
        return os.path.join(self.staging, COMPONENTS, sha256)

    def no_space(self, needed: Optional[int] = None) -> "NoSpace":
        """The error a full staging folder gives: the OS's words, the folder, the numbers."""
        numbers = "%d bytes free" % free_bytes(self.staging)
        if needed is not None:
            numbers = "%d more bytes needed, %s" % (needed, numbers)
        return NoSpace("No space left on device in the staging folder %s (%s): free some space or choose another staging_dir"
                       % (self.staging, numbers))

    def _install_one(self, component: Dict[str, Any]) -> None:
        path = self.component_path(component["sha256"])
        if not os.path.exists(path):
            raise AgentError("component %s (%s) was not delivered to the node" % (component["name"], component["sha256"]))
        if sha256_of(path) != component["sha256"]:
            raise AgentError("component %s: the staged file's SHA-256 does not match the manifest" % component["name"])
        self.event("verified", component=component["name"])
        from ansible_collections.fleet.firmware.plugins.module_utils import installers
        self.event("installing", component=component["name"])
        os.chmod(path, 0o700)
        outcome = installers.install(component, path, os_name="linux", timeout=component.get("timeout"), workdir=self.staging)
        component.update(rc=outcome.get("rc"), duration=outcome.get("duration"), output=outcome.get("output", "")[-2048:])
        status = outcome.get("status")
        component["status"] = "installed" if status in ("installed", "reboot_required", "not_needed") else "failed"
        component["result"], component["reason"] = status, outcome.get("message") or status

    # -- component upload (push delivery)

    def receive_component(self, sha256: str, stream: Any, length: int) -> Dict[str, Any]:
        final = self.component_path(sha256)
        partial = final + ".part"
        digest = hashlib.sha256()
        remaining = length
        try:
            if length > free_bytes(self.staging):
                raise self.no_space(length)
            with open(partial, "wb") as handle:
                while remaining:
                    chunk = stream.read(min(CHUNK, remaining))
                    if not chunk:
                        raise AgentError("the upload ended after %d of %d bytes" % (length - remaining, length))
                    digest.update(chunk)
                    remaining -= len(chunk)
                    try:
                        handle.write(chunk)
                    except OSError as exc:
                        if _out_of_space(exc):
                            raise self.no_space(remaining + len(chunk))
                        raise
                handle.flush()
                os.fsync(handle.fileno())
            if digest.hexdigest() != sha256:
                raise HashMismatch("the uploaded bytes hash to %s, not %s: nothing kept" % (digest.hexdigest(), sha256))
            os.rename(partial, final)
        except NoSpace:
            _unlink(partial)
            _drain(stream, remaining)  # read the rest of the body: the controller then hears why
            raise
        except BaseException:
            _unlink(partial)
            raise
        self.event("downloaded", sha256=sha256, size=length, delivery="push")
        return {"sha256": sha256, "size": length}

    # -- pull delivery (the node downloads from the engine, or from a repository URL)

    def fetch(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """Download one component into the staging folder, resuming with Range, hash checked.

        Retries with back-off while bytes keep coming (a link down for a few seconds); gives up
        at once when no URL can be reached at all (the controller then pushes instead).
        """
        sha256, urls = str(body.get("sha256", "")), body.get("urls") or []
        if not SHA_RE.match(sha256) or not isinstance(urls, list) or not urls:
            raise AgentError("a fetch is {\"sha256\": <64 hex>, \"urls\": [...], \"token\": ..., \"size\": ...}")
        final = self.component_path(sha256)
        if os.path.exists(final) and sha256_of(final) == sha256:
            return {"sha256": sha256, "size": os.path.getsize(final), "cached": True}
        partial, errors = final + ".part", []  # type: str, List[str]
        self.event("downloading", sha256=sha256, delivery="pull")
        for attempt in range(FETCH_ATTEMPTS):
            before = _size(partial)
            for url in urls:
                try:
                    self._download(str(url), body.get("token"), partial, sha256, bool(body.get("run_ca", True)))
                except NoSpace:
                    _unlink(partial)  # a full disk is no network trouble: no retry, no push instead
                    raise
                except (OSError, ssl.SSLError, http.client.HTTPException, AgentError) as exc:
                    errors.append("%s: %s" % (url, exc))
                    continue
                return self._finish_fetch(partial, final, sha256)
            if _size(partial) == before and (attempt >= 2 or before == 0 and attempt >= 1):
                break
            time.sleep(min(2.0 ** attempt, 5.0))
        raise FetchFailed("the node cannot download %s: %s" % (sha256[:12], "; ".join(errors[-len(urls):])))

    def _finish_fetch(self, partial: str, final: str, sha256: str) -> Dict[str, Any]:
        if sha256_of(partial) != sha256:
            _unlink(partial)
            raise HashMismatch("the downloaded bytes of %s do not match the manifest's SHA-256: nothing kept" % sha256[:12])
        os.rename(partial, final)
        with self.mutex:
            self.transfers.pop(sha256, None)
        self.event("downloaded", sha256=sha256, size=os.path.getsize(final), delivery="pull")
        return {"sha256": sha256, "size": os.path.getsize(final), "cached": False}

    def _download(self, url: str, token: Optional[str], partial: str, sha256: str, run_ca: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AgentError("URL %r is not http(s)" % url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cadata=self.config["ca_cert"]) if run_ca else ssl.create_default_context()
            connection = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=FETCH_TIMEOUT, context=context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=FETCH_TIMEOUT)
        have = _size(partial)
        headers = {"Range": "bytes=%d-" % have} if have else {}
        if token:
            headers["Authorization"] = "Bearer " + token
        try:
            connection.request("GET", parts.path or "/", headers=headers)
            response = connection.getresponse()
            if response.status == 416:
                _unlink(partial)  # more than the file: start again
                raise AgentError("the server refused the resume point (416)")
            if response.status not in (200, 206):
                raise AgentError("HTTP %d %s" % (response.status, response.reason))
            self._stream(response, partial, sha256, append=response.status == 206)
        finally:
            connection.close()

    def _stream(self, response: Any, partial: str, sha256: str, append: bool) -> None:
        total = response.getheader("Content-Range", "").rpartition("/")[2] if append else response.getheader("Content-Length", "")
        with open(partial, "ab" if append else "wb") as handle:
            done = handle.tell()
            if total.isdigit() and int(total) - done > free_bytes(self.staging):
                raise self.no_space(int(total) - done)
            try:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
                    done += len(chunk)
                    with self.mutex:
                        self.transfers[sha256] = {"bytes": done, "size": int(total) if total.isdigit() else None}
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                if _out_of_space(exc):
                    raise self.no_space(int(total) - done if total.isdigit() else None)
                raise
        if total.isdigit() and done < int(total):
            raise AgentError("the download stopped after %d of %s bytes" % (done, total))

    # -- plan (inventory against a manifest, side-effect free)

    def plan(self, body: Dict[str, Any]) -> Dict[str, Any]:
        from ansible_collections.fleet.firmware.plugins.module_utils import plan as plan_mod
        components = body.get("components")
        if not isinstance(components, list):
            raise AgentError("a plan request is {\"components\": [...], \"policy\": {...}}")
        try:
            entries = plan_mod.plan(components, body.get("policy") or {}, os_name="linux",
                                    redfish=redfish_settings(body.get("redfish")))  # detect stream
        except ValueError as exc:
            raise AgentError(str(exc))
        self.event("planned", components=len(entries))
        return {"plan": entries}

    # -- stop and cleanup

    def request_stop(self, reason: str) -> None:
        """Finish the in-flight component, skip the rest, then clean up (in the main thread)."""
        if self.stopping.is_set():
            return
        self.cancel(reason)
        self.stopping.set()

    def wait_and_clean(self) -> None:
        # A timed wait: the main thread must come back to run signal handlers.
        while not self.stopping.wait(1.0):
            pass
        worker = self.worker
        if worker is not None:
            worker.join()
        self.cleanup(remove_staging=True)

    def cleanup(self, remove_staging: bool) -> None:
        for server in self.servers:
            try:
                server.shutdown() if server.serving else None
                server.server_close()
            except Exception:  # pylint: disable=broad-except  # keep cleaning
                pass
        if self.control is not None:
            self.control.server_close()
            _unlink(os.path.join(run_dir(), SOCKET_NAME % self.tag))
        if self.firewall_opened:
            self._close_firewall()
        if remove_staging:
            close_log()
            shutil.rmtree(self.staging, ignore_errors=True)
        self.lock.release()

    def _close_firewall(self) -> None:
        from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api
        for attempt in range(5):
            try:
                api.close_tag(self.tag, backend=self.config["firewall"]["backend"])
                self.firewall_opened = False
                return
            except Exception as exc:  # pylint: disable=broad-except  # retry: a port must not stay open
                log("closing the firewall failed (attempt %d): %s" % (attempt + 1, exc))
                time.sleep(1 + attempt)
        # The firewall lease still closes the rules, FIREWALL_GRACE seconds after the agent's lease.


class HashMismatch(AgentError):
    """Bytes that do not hash to what the manifest says (409; nothing is kept)."""


class FetchFailed(AgentError):
    """The node cannot download a component (504: the controller may push it instead)."""


class NoSpace(AgentError):
    """The staging folder's file system is full (507): neither retried nor pushed instead."""


def free_bytes(folder: str) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s file system."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def _out_of_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _drain(stream: Any, remaining: int) -> None:
    """Read and drop what is left of a request body (bounded by its Content-Length)."""
    while remaining > 0:
        chunk = stream.read(min(CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------- HTTP


class AgentHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, agent: Agent, context: ssl.SSLContext, address: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.agent = agent
        self.context = context
        self.serving = False
        HTTPServer.__init__(self, (address, port), AgentHandler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.serving = True
        HTTPServer.serve_forever(self, poll_interval)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs here, in the request's own thread: a slow or silent client
        # cannot hold up the accept loop.
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log("TLS refused for %s: %s" % (client_address[0], exc))
            return
        try:
            AgentHandler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        log("request from %s failed: %s" % (client_address[0], traceback.format_exc(limit=3)))


def make_server(agent: Agent, context: ssl.SSLContext, address: str, port: int) -> AgentHTTPServer:
    return AgentHTTPServer(agent, context, address, port)


class AgentHandler(BaseHTTPRequestHandler):
    server_version = "fleet-firmware-agent/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        log("%s %s" % (self.client_address[0], format % args))

    @property
    def agent(self) -> Agent:
        return self.server.agent  # type: ignore[attr-defined]

    def _send(self, status: int, body: Dict[str, Any]) -> None:
        data = (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = "Bearer " + self.agent.config["token"]
        if hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            return True
        self._send(401, {"error": "missing or wrong bearer token"})
        return False

    def _length(self, limit: Optional[int]) -> Optional[int]:
        text = self.headers.get("Content-Length")
        if text is None or not text.isdigit():
            self._send(411, {"error": "Content-Length is required"})
            return None
        if limit is not None and int(text) > limit:
            # Read the body first (the controller is authenticated): answering while it still
            # sends makes its TLS end with an EOF instead of this answer.
            _drain(self.rfile, int(text))
            self.close_connection = True
            # A plan or a job carries every component of the manifest: this is its size limit.
            self._send(413, {"error": "a request body of %s bytes is larger than the agent's limit of %d bytes (a plan or job of "
                                      "more than about 25,000 components): split the repository" % (text, limit)})
            return None
        return int(text)

    def _json_body(self) -> Any:
        length = self._length(MAX_JSON_BODY)
        if length is None:
            return None
        try:
            return json.loads(self.rfile.read(length).decode("utf-8") or "{}")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return None

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        if not self._authorized():
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        routes = {
            ("GET", "/v1/status"): self._status, ("POST", "/v1/lease"): self._lease, ("POST", "/v1/cancel"): self._cancel,
            ("GET", "/v1/inventory"): self._inventory, ("POST", "/v1/jobs"): self._jobs, ("POST", "/v1/shutdown"): self._shutdown,
            ("POST", "/v1/fetch"): self._fetch, ("POST", "/v1/plan"): self._plan,
        }
        try:
            if (method, path) in routes:
                routes[(method, path)]()
            elif path.startswith("/v1/components/"):
                self._component(method, path[len("/v1/components/"):])
            elif any(route_path == path for _method, route_path in routes):
                self._send(405, {"error": "%s is not allowed on %s" % (method, path)})
            else:
                self._send(404, {"error": "no such resource: %s" % path})
        except HashMismatch as exc:
            self._send(409, {"error": str(exc)})
        except FetchFailed as exc:
            self._send(504, {"error": str(exc)})
        except NoSpace as exc:
            self._send(507, {"error": str(exc)})
        except AgentError as exc:
            self._send(409, {"error": str(exc)})
        except OSError as exc:
            status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500
            self._send(status, {"error": "on the node: %s" % (exc.strerror or exc)})
            self.close_connection = True

    def _status(self) -> None:
        self._send(200, self.agent.status())

    def _lease(self) -> None:
        body = self._json_body()
        if body is not None:
            self._send(200, self.agent.renew(body.get("seconds") if isinstance(body, dict) else None))

    def _cancel(self) -> None:
        if self._json_body() is not None:
            self._send(200, self.agent.cancel("cancelled by the controller"))

    def _inventory(self) -> None:
        self._send(200, inventory(self.agent))

    def _jobs(self) -> None:
        body = self._json_body()
        if body is not None:
            try:
                components = validate_job(body)
            except AgentError as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(202, {"accepted": self.agent.submit(components, body.get("on_failed_dependency", "omit_component"))})

    def _fetch(self) -> None:
        body = self._json_body()
        if body is not None:
            self._send(200, self.agent.fetch(body if isinstance(body, dict) else {}))

    def _plan(self) -> None:
        body = self._json_body()
        if body is not None:
            self._send(200, self.agent.plan(body if isinstance(body, dict) else {}))

    def _shutdown(self) -> None:
        if self._json_body() is not None:
            self._send(202, {"stopping": True, "pid": os.getpid()})
            self.close_connection = True
            self.agent.request_stop("shutdown requested by the controller")

    def _component(self, method: str, sha256: str) -> None:
        if method != "PUT":
            self._send(405, {"error": "components are uploaded with PUT"})
            return
        if not SHA_RE.match(sha256):
            self._send(400, {"error": "%r is not a SHA-256 (64 lower-case hex digits)" % sha256[:80]})
            return
        length = self._length(None)
        if length is None:
            return
        self._send(201, self.agent.receive_component(sha256, self.rfile, length))


def redfish_settings(options: Any) -> Dict[str, Any]:
    """detect stream: deploy's redfish_* options (plan request body) as detect.RedfishSource's settings."""
    if not isinstance(options, dict) or not options.get("redfish_address"):
        return {}
    return {"address": options["redfish_address"], "username": options.get("redfish_username"),
            "password": options.get("redfish_password"), "validate_certs": options.get("redfish_validate_certs", True),
            "ca_path": options.get("redfish_ca_path"), "timeout": options.get("redfish_timeout"), "origin": "node"}


def inventory(agent: Agent) -> Dict[str, Any]:
    """What the node is, and what it has of the job's components (detection is side-effect free)."""
    uname = os.uname()
    facts = {"hostname": socket.gethostname(), "system": uname.sysname, "kernel": uname.release, "machine": uname.machine,
             "python": "%d.%d.%d" % sys.version_info[:3], "boot_id": _read("/proc/sys/kernel/random/boot_id")}
    components = []
    for component in (agent.job.components if agent.job else []):
        entry = {"name": component["name"], "available": component.get("version")}
        if isinstance(component.get("detect"), dict):
            from ansible_collections.fleet.firmware.plugins.module_utils import detect
            found = detect.detect(component["detect"], "linux")
            entry.update(installed=found.get("version"), detect=found)
        components.append(entry)
    return {"facts": facts, "components": components}


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return ""


# ---------------------------------------------------------------- logging and main

_LOG = None  # type: Any


def open_log(staging: str) -> None:
    global _LOG  # pylint: disable=global-statement
    _LOG = os.fdopen(os.open(os.path.join(staging, "agent.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", 1)


def close_log() -> None:
    global _LOG  # pylint: disable=global-statement
    if _LOG is not None:
        _LOG.close()
        _LOG = None


def log(message: str) -> None:
    if _LOG is not None:
        try:
            _LOG.write("%s %s\n" % (utc(time.time()), message))
        except (IOError, OSError, ValueError):
            pass


def _detach_streams() -> None:
    """After "ready": stdout and stdin are the module's pipes; let go of them."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)


def main() -> int:
    """Entry point of agent.pyz: configuration on stdin, one readiness line on stdout."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = validate_config(json.loads(sys.stdin.read() or "null"))
    except (AgentError, ValueError) as exc:
        return _not_ready("invalid configuration: %s" % exc)
    agent = Agent(config)
    try:
        ready = agent.start()
        open_log(config["staging"])
    except AgentError as exc:
        return _not_ready(str(exc))
    except Exception as exc:  # pylint: disable=broad-except  # the module must hear why
        return _not_ready("the agent failed to start: %r" % (exc,))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.request_stop("stopped by signal"))
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    _detach_streams()
    log("ready: %s" % json.dumps(ready, sort_keys=True))
    agent.wait_and_clean()
    return 0


def _not_ready(message: str) -> int:
    sys.stdout.write(json.dumps({"ready": False, "error": message}) + "\n")
    sys.stdout.flush()
    return 1
