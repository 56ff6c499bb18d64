# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent: state, events, start, lease and stop of one run's agent on a node. Its job and
delivery halves live in jobs.py and delivery.py, its end in teardown.py.

Life: take the node lock -> bind the port on the controller-facing addresses -> open the
port in the node's firewall for the controller only (tagged, with a firewall lease of its own
as a second guard) -> answer "ready" on stdout -> serve until shutdown or lease expiry ->
finish the in-flight component -> close the rules -> remove the staging folder -> unlock.

Node-side: Python 3.6+, standard library only.
"""
import errno
import json
import os
import socketserver
import ssl
import threading
import time
from http.server import HTTPServer
from typing import Any, Dict, List, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.agent import control_socket as control, teardown
from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import (
    COMPONENTS, FIREWALL_GRACE, AgentError, _int_in, facing_addresses, unlink_quietly, utc,
)
from ansible_collections.fleet.firmware.plugins.module_utils.agent.delivery import Delivery
from ansible_collections.fleet.firmware.plugins.module_utils.agent.httpd import make_server
from ansible_collections.fleet.firmware.plugins.module_utils.agent.jobs import Job, JobRunner
from ansible_collections.fleet.firmware.plugins.module_utils.agent.lock import NodeLock
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import close_log, log
from ansible_collections.fleet.firmware.plugins.module_utils.agent.uplink import Uplink
from ansible_collections.fleet.firmware.plugins.module_utils.tls_policy import TLS12_CIPHERS


class Agent(JobRunner, Delivery, Uplink):
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
        # Pull mode (uplink.py): no inbound port until the engine cannot be reached.
        self.inbound = config.get("inbound", True)
        self.inbound_lock = threading.Lock()
        self.tls_context = None  # type: Optional[ssl.SSLContext]
        self.pull_error = None  # type: Optional[str]
        self.link = None  # type: Any
        self.uplink_wake = None  # type: Optional[threading.Event]

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
        if self.uplink_wake is not None:
            self.uplink_wake.set()  # news goes to the engine at once, not at the next beat

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
            self.tls_context = self._tls_context()
            self.addresses = self.config["bind"] or facing_addresses(self.config["controller"])
            if self.inbound:
                self._listen(self.tls_context)
                self._open_firewall()
            self._start_control()
        except BaseException:
            self.cleanup(remove_staging=False)
            raise
        self.event("firewall_open" if self.firewall_opened else "started", addresses=self.addresses, port=self.config["port"])
        for server in self.servers:
            threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        threading.Thread(target=self._watch_lease, name="lease", daemon=True).start()
        if self.config.get("engine") is not None and not self.inbound:
            self._start_uplink()
        return {"ready": True, "pid": os.getpid(), "addresses": self.addresses, "port": self.config["port"],
                "lease_expires": utc(self.lease_expires), "staging": self.staging, "firewall": self.firewall_opened,
                "inbound": self.inbound}

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
        context.set_ciphers(TLS12_CIPHERS)  # forward secrecy and AEAD only (issue 18, sslyze-tested)
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
                unlink_quietly(path)
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
        self.control = control.serve(self.tag, self.local_command)

    def local_command(self, request: Dict[str, Any]) -> Dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return dict(self.status(), inbound=self.inbound)  # the launcher's "already running" says which mode
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
        if self.link is not None:
            self.final_report()  # pull mode: the deploy hears that nothing is left, without a round trip

    def cleanup(self, remove_staging: bool) -> None:
        """The agent's own teardown (teardown.py): servers, control socket, firewall, staging, lock."""
        for server in self.servers:
            try:
                server.shutdown() if server.serving else None
                server.server_close()
            except Exception:  # pylint: disable=broad-except  # keep cleaning
                pass
        if self.control is not None:
            self.control.server_close()
            teardown.remove_socket(self.tag)
        if self.firewall_opened:
            self._close_firewall()
        if remove_staging:
            close_log()
            teardown.remove_staging(self.staging)
        self.lock.release()

    def _close_firewall(self) -> None:
        # The close stays as configured: "auto" sweeps every backend and iptables variant. If every
        # attempt fails, the firewall lease still closes the rules, FIREWALL_GRACE s after the agent's lease.
        if teardown.close_rules_retrying(self.tag, self.config["firewall"]["backend"], log=log):
            self.firewall_opened = False
