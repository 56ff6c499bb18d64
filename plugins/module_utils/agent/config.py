# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent's configuration: defaults, names, patterns, and the check of the stdin document.

Node-side: Python 3.6+, standard library only.
"""
import hashlib
import os
import re
import socket
import ssl
import time
from typing import Any, Dict, List, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.route import route_source
from ansible_collections.fleet.firmware.plugins.module_utils.runtag import TAG_RE, TAG_RULE

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
# Pull mode: seconds between uplinks when nothing happens, and how long the engine may stay
# unreachable before an agent allowed to fall back opens its inbound port for the deploy.
UPLINK_INTERVAL = 1.0
UPLINK_PATIENCE = 10.0
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


def unlink_quietly(path: str) -> None:
    """Remove a file if it is there (cleanup goes on whatever is left)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def utc(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pem_fingerprint(pem: str) -> str:
    """SHA-256 of a PEM certificate's DER form, lower-case hex (what the controller pins)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


# ---------------------------------------------------------------- configuration


def validate_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise AgentError("tag %r is invalid: %s" % (tag, TAG_RULE))
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
    if not NODE_RE.fullmatch(str(config["node_id"])):
        raise AgentError("node_id %r is invalid" % (config["node_id"],))
    config["port"] = _int_in(config.get("port", DEFAULT_PORT), 1, 65535, "port")
    config["lease"] = _int_in(config.get("lease", DEFAULT_LEASE), 5, 7 * 24 * 3600, "lease")
    config["controller"] = [_address(a, "controller") for a in _as_list(config["controller"])]
    config["bind"] = [_address(a, "bind") for a in _as_list(config.get("bind") or [])]
    firewall = config.get("firewall") or {}
    config["firewall"] = {"open": bool(firewall.get("open", True)), "backend": str(firewall.get("backend", "auto"))}
    config["engine"] = _engine(config.get("engine"))
    # Pull mode: no inbound port (and no firewall opening) unless the engine cannot be reached.
    config["inbound"] = bool(config.get("inbound", True)) or config["engine"] is None
    staging = str(config["staging"])
    if not os.path.isabs(staging) or os.path.normpath(staging) != staging.rstrip("/") or staging in ("/", "/var/tmp", "/tmp"):
        raise AgentError("staging folder %r is invalid: an absolute, normalized path of its own" % (staging,))
    config["staging"] = staging.rstrip("/")
    if pem_fingerprint(config["ca_cert"]) != str(config["ca_fingerprint"]).lower().replace(":", ""):
        raise AgentError("the CA certificate does not match the pinned fingerprint %s" % (config["ca_fingerprint"],))
    return config


def _engine(value: Any) -> Optional[Dict[str, Any]]:
    """Pull mode's engine: {"urls": [https://...], "token": ..., "fallback": bool} (None: push as before)."""
    if not value:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("urls"), list) or not value["urls"] or not value.get("token"):
        raise AgentError('engine must be {"urls": ["https://..."], "token": ..., "fallback": true|false}')
    for url in value["urls"]:
        if not isinstance(url, str) or not url.startswith("https://"):
            raise AgentError("engine URL %r is not https" % (url,))
    return {"urls": list(value["urls"]), "token": str(value["token"]), "fallback": bool(value.get("fallback", False))}


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
        try:
            local = route_source(controller)
        except OSError as exc:
            # Behind NAT (an AWX pod) the node knows the controller under another address: say which option fixes it.
            raise AgentError("no route from this node to the controller address %s: %s; if the nodes reach the controller "
                             "through NAT, set controller_address (role variable fleet_controller_address) to the controller's "
                             "address as the nodes see it" % (controller, exc))
        if local not in found:
            found.append(local)
    return found
