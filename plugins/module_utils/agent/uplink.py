# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull mode: the node calls the controller (issue 15).

An agent started with an ``engine`` and without ``inbound`` opens no port and no firewall
rule. It posts its events and its job's status to the engine about once a second over one
keep-alive TLS connection (``POST /v1/nodes/<node>/uplink``, the run's CA pinned, the node's
bearer token) and takes its orders from the answers: the job, the lease, a cancel. It downloads
the job's components from the engine, installs them, plans again (the versions after) and then
tears itself down and says so (``final``): the deploy needs no round trip to clean up.

When it may fall back (``delivery: auto``) and the engine cannot be reached (a download fails
for that reason, or the uplink fails for ``UPLINK_PATIENCE`` seconds), the agent opens its
tagged, leased inbound port as in push mode and waits: the deploy, hearing nothing, connects
to it and takes over (push, lease, cancel and status over that port).

Node-side: Python 3.6+, standard library only. ``Uplink`` is a part of ``core.Agent``.
"""
import http.client
import json
import os
import socket
import ssl
import threading
import time
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import UPLINK_INTERVAL, UPLINK_PATIENCE, AgentError
from ansible_collections.fleet.firmware.plugins.module_utils.agent.delivery import FetchFailed
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import log


class EngineLink(object):
    """One keep-alive HTTPS connection to the engine, to the first of its URLs that answers."""

    def __init__(self, urls: List[str], token: str, ca_cert: str, node_id: str, timeout: float = 15.0) -> None:
        self.targets = [urlsplit(u) for u in urls]
        self.token = token
        self.context = ssl.create_default_context(cadata=ca_cert)
        self.path = "/v1/nodes/%s/uplink" % node_id
        self.timeout = timeout
        self.connection = None  # type: Optional[http.client.HTTPSConnection]

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def post(self, body: Dict[str, Any], timeout: Optional[float] = None) -> Dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json", "Content-Length": str(len(data))}
        errors = []
        # The open connection first (keep-alive: no new handshake), then every URL afresh.
        for attempt in range(len(self.targets) + 1):
            if self.connection is None:
                if attempt >= len(self.targets):
                    break
                target = self.targets[attempt]
                self.connection = http.client.HTTPSConnection(target.hostname, target.port or 443, timeout=timeout or self.timeout,
                                                              context=self.context)
            try:
                self.connection.request("POST", self.path, body=data, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                errors.append(str(exc))
                self.close()
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            if response.status != 200:
                raise AgentError("the engine refused the uplink: %d %s" % (response.status, payload[:200].decode("utf-8", "replace")))
            return json.loads(payload.decode("utf-8"))
        raise OSError("the engine cannot be reached: %s" % "; ".join(errors[-2:]))


class Uplink(object):
    """The agent's pull-mode half: uplink, job from the engine, fallback to an inbound port."""

    def _start_uplink(self) -> None:
        engine = self.config["engine"]
        self.link = EngineLink(engine["urls"], engine["token"], self.config["ca_cert"], self.config["node_id"])
        self.uplink_wake = threading.Event()
        self.uplink_stop = threading.Event()
        self.pull_job = None  # type: Optional[Dict[str, Any]]
        self.after_plan = None  # type: Optional[List[Dict[str, Any]]]
        self.fetching = None  # type: Optional[str]  # the component being downloaded (the deploy names it when the uplink fails)
        self.acked = 0
        self.uplink_failing = False
        self.uplink_thread = threading.Thread(target=self._uplink_loop, name="uplink", daemon=True)
        self.uplink_thread.start()

    def _uplink_body(self, final: bool = False) -> Dict[str, Any]:
        with self.mutex:
            events = [e for e in self.events if e["seq"] > self.acked]
            status = {"state": self.state, "pid": os.getpid(), "job": self.job_state(), "cancelled": self.cancelled, "inbound": self.inbound,
                      "addresses": self.addresses, "port": self.config["port"], "pull_error": self.pull_error,
                      "current": dict(self.current) if self.current else None, "fetching": self.fetching, "plan_after": self.after_plan,
                      "clean": final and not self.firewall_opened and self.lock.fd < 0,
                      "components": [dict((k, v) for k, v in c.items() if k != "output") for c in (self.job.public() if self.job else [])]}
        return {"events": events, "status": status, "has_job": self.pull_job is not None, "final": final}

    def _uplink_once(self, final: bool = False, timeout: Optional[float] = None) -> Dict[str, Any]:
        answer = self.link.post(self._uplink_body(final), timeout)
        with self.mutex:
            self.acked = max(self.acked, int(answer.get("ack") or 0))
        return answer

    def _uplink_loop(self) -> None:
        failing_since = None  # type: Optional[float]
        while not self.uplink_stop.is_set():
            self.uplink_wake.clear()
            try:
                answer = self._uplink_once()
                failing_since, self.uplink_failing = None, False
                self._obey(answer)
            except (OSError, ValueError, AgentError) as exc:
                now = time.time()
                failing_since, self.uplink_failing = failing_since or now, True
                if now - failing_since >= UPLINK_PATIENCE and self._may_fall_back():
                    self.open_inbound("the engine cannot be reached for %d s: %s" % (now - failing_since, exc))
            # Until the job comes, a short beat: the deploy sets it a moment after the agent said ready.
            self.uplink_wake.wait(UPLINK_INTERVAL if self.pull_job is not None else UPLINK_INTERVAL / 4)

    def _may_fall_back(self) -> bool:
        return self.config["engine"]["fallback"] and not self.inbound and not self.stopping.is_set()

    def _obey(self, answer: Dict[str, Any]) -> None:
        """The deploy's orders, riding on the engine's answer: lease, cancel, job."""
        lease = answer.get("lease")
        if isinstance(lease, (int, float)) and not isinstance(lease, bool) and not self.stopping.is_set():
            with self.mutex:
                self.lease_expires = time.time() + float(lease)
        if answer.get("cancel") and not self.cancelled:
            self.cancel(str(answer["cancel"]))
        job = answer.get("job")
        if isinstance(job, dict) and self.pull_job is None and not self.stopping.is_set():
            self.pull_job = job
            threading.Thread(target=self._run_pull_job, args=(job,), name="pull-job", daemon=True).start()

    # -- the job from the engine

    def _run_pull_job(self, job: Dict[str, Any]) -> None:
        try:
            components = job.get("components") or []
            if not self._fetch_all(components):
                return
            self.submit(components, job.get("on_failed_dependency", "omit_component"))
            self.worker.join()
            if isinstance(job.get("plan_after"), dict) and not self.cancelled:
                try:
                    self.after_plan = self.plan(job["plan_after"])["plan"]
                except AgentError as exc:
                    log("the plan after the installs failed: %s" % exc)
            if self.uplink_failing and self._may_fall_back():
                # Done, but the engine cannot hear it: wait on the port for the deploy instead.
                self.open_inbound("the job is done and the engine cannot be reached")
            if self.inbound:
                return  # the deploy took over on the inbound port: it stops us
            self.request_stop("the job is done")
        except Exception as exc:  # pylint: disable=broad-except  # the deploy hears of it in the status
            self.pull_error = "the agent's job failed: %r" % (exc,)
            log(self.pull_error)
            self.request_stop(self.pull_error)

    def _fetch_all(self, components: List[Dict[str, Any]]) -> bool:
        engine = self.config["engine"]
        for component in components:
            if self.cancelled:
                return True  # the job skips every component and says so
            urls = [u.rstrip("/") + str(component.get("url") or "/v1/components/" + component["sha256"]) for u in engine["urls"]]
            self.fetching = component["name"]
            try:
                self.fetch({"sha256": component["sha256"], "urls": urls, "token": engine["token"], "component": component["name"]})
            except FetchFailed as exc:
                message = "pull delivery of %s failed: %s" % (component["name"], exc)
                if engine["fallback"]:
                    self.open_inbound(message)  # the deploy pushes from here on (or, failing that, we stopped)
                    return False
                self.pull_error = message
                self.event("failed", component=component["name"], reason=message)
                self.request_stop(message)
                return False
            except AgentError as exc:
                self.pull_error = "pull delivery of %s failed: %s" % (component["name"], exc)
                self.event("failed", component=component["name"], reason=self.pull_error)
                self.request_stop(self.pull_error)
                return False
            finally:
                self.fetching = None
        return True

    # -- the fallback: the port push mode uses

    def open_inbound(self, reason: str) -> None:
        """Listen and open the tagged, leased firewall rule: the deploy takes over as in push mode."""
        with self.inbound_lock:
            if self.inbound or self.stopping.is_set():
                return
            log("falling back to an inbound port: %s" % reason)
            try:
                self._listen(self.tls_context)
                self._open_firewall()
            except (AgentError, OSError) as exc:
                # Neither way works: stop (the deploy hears it, or its cleanup and the lease end it).
                self.pull_error = "%s; and the agent's port cannot be opened: %s" % (reason, exc)
                log(self.pull_error)
                for server in self.servers:
                    server.server_close()
                self.servers = []
                self.request_stop(self.pull_error)
                return
            for server in self.servers:
                if not server.serving:
                    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
            self.inbound = True
            self.pull_error = reason
        self.event("firewall_open" if self.firewall_opened else "started", addresses=self.addresses, port=self.config["port"],
                   reason=reason)

    def final_report(self) -> None:
        """After the teardown: one last uplink saying so (best effort; the deploy's cleanup covers a lost one)."""
        self.uplink_stop.set()
        self.uplink_wake.set()
        self.uplink_thread.join(20)
        try:
            self._uplink_once(final=True, timeout=5)
        except (OSError, ValueError, AgentError, socket.timeout) as exc:
            log("the final uplink was not delivered: %s" % exc)
        self.link.close()
