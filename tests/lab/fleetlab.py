#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet.firmware test lab: real nodes in Linux network namespaces on this machine.

Each node is a network namespace linked by a veth pair to the lab bridge, which lives in the
controller's (the host's) namespace and carries the controller's lab addresses. A node runs:

* a *holder* process (``sleep infinity``) that owns the node's private mount and UTS
  namespaces, in which /tmp, /var/tmp, /run, /root and the node state folder are private
  tmpfs, and /proc/sys/kernel/random/boot_id is the node's own (so a simulated reboot can
  change it);
* its own sshd (key auth with the lab key), bound to the node's lab addresses only;
* for Windows-like nodes, smbd with an ``ADMIN$`` share and nmbd for NetBIOS;
* its own SMBIOS values: ``/sys/class/dmi/id`` inside the node is a per-node folder (the
  node's hardware profile, ``--hardware NODE=PROFILE``, see ``labhardware.py``);
* its own BMC: a real Redfish server (sushy-tools' ``sushy-static``) on the node's
  host-interface address (``BMC_NET``, on the node's loopback, reachable from that node only)
  over HTTPS with a lab CA, serving the node's firmware inventory.

Every process of a node is started with ``nsenter`` into the holder's namespaces. The
node's iptables, ip6tables and nftables rulesets are those of its network namespace.

Addresses come only from the benchmarking range 198.18.0.0/15 and the ULA range fd00::/8;
nodes have no default route, so no lab traffic can leave the lab.

Usage: ``fleetlab.py up|down|status|inventory|reboot`` (``--help`` for the options).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import labhardware


def _lab_id() -> int:
    raw = os.environ.get("FLEET_LAB_ID", "0")
    if not raw.isdigit() or int(raw) > 99:
        raise SystemExit(f"fleetlab: error: FLEET_LAB_ID must be a whole number from 0 to 99, got {raw!r}")
    return int(raw)


# Several labs can live side by side (parallel test runs): FLEET_LAB_ID picks the instance and
# with it every name, subnet and folder. Instance 0 is the default.
LAB_ID = _lab_id()
_SUFFIX = str(LAB_ID) if LAB_ID else ""
PREFIX = f"ffl{_SUFFIX}-"
BRIDGE = f"fflbr{LAB_ID}"
VETH_PREFIX = f"ffl{_SUFFIX}v"
DEFAULT_HOME = Path(os.environ.get("FLEET_LAB_HOME", f"/var/lib/fleet-lab{'-' + _SUFFIX if _SUFFIX else ''}"))
IPV4_NET = ipaddress.IPv4Network(f"198.18.{LAB_ID}.0/24")
IPV6_NET = ipaddress.IPv6Network(f"fd00:f1ee:7ab:{LAB_ID:x}::/64")
CONTROLLER_IPV4 = IPV4_NET.network_address + 1
CONTROLLER_IPV6 = IPV6_NET.network_address + 1
# The BMC's host-interface addresses (iLO's "Virtual NIC" role): one per node, on the node's
# loopback, so only that node reaches its BMC. sushy-static serves IPv4 only (http.server's
# AF_INET), so this is IPv4 also on IPv6-only nodes, as a real iLO host interface is.
BMC_NET = ipaddress.IPv4Network(f"198.19.{LAB_ID}.0/24")
BMC_PORT = 443
BMC_USER = "fleetbmc"
FIRST_HOST = 10
MAX_NODES = 200
SMB_USER = "Administrator"
# The second, unprivileged SMB account (the operator's Unix account) and its share: a local user.
LOCAL_USER = "LocalUser"
LOCAL_SHARE = "USERTEMP"
# The lab home is 0700, so a local user reaches the node's %SystemRoot% through a bind mount of it
# in the node's private /run (made again with every start of its Samba).
LOCAL_VIEW = "/run/fleet-windows"
ADMINISTRATORS_SID = "S-1-5-32-544"
# Windows' C:\\Windows\\Temp: SYSTEM, Administrators (OI)(CI) F; CREATOR OWNER (OI)(CI)(IO) F; the
# users (here Authenticated Users) (CI) traverse, add file, add subfolder, synchronize.
TEMP_ACL = ("REVISION:1,OWNER:S-1-5-32-544,GROUP:S-1-5-18,ACL:S-1-5-18:ALLOWED/OI|CI/FULL,"
            "ACL:S-1-5-32-544:ALLOWED/OI|CI/FULL,ACL:S-1-3-0:ALLOWED/OI|CI|IO/FULL,ACL:S-1-5-11:ALLOWED/CI/0x00100026")
SAMBA_VFS_DIRS = ("/usr/lib/x86_64-linux-gnu/samba/vfs", "/usr/lib/aarch64-linux-gnu/samba/vfs", "/usr/lib64/samba/vfs", "/usr/lib/samba/vfs")
NODE_PYTHON = "/usr/bin/python3"
# Folders that are private tmpfs inside every node: a file staged on one node is seen by no
# other node and not by the controller.
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run", "/root", "/home")
# A non-root operator on every node, for become (sudo with a password, or su to root). The
# node's /etc/passwd, /etc/group, /etc/shadow and /etc/sudoers.d are its own (bind mounts), so
# the host's accounts are never changed.
OPERATOR = "fleetop"
OPERATOR_UID = 4242
ACCOUNT_FILES = ("passwd", "group", "shadow")
KINDS = ("linux", "windows", "firewalld")
FAMILIES = ("dual", "ipv4", "ipv6")
NAME_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
REQUIRED_TOOLS = ("ip", "nsenter", "unshare", "sshd", "ssh-keygen", "iptables", "ip6tables", "nft", "openssl", "sudo", "mount")
WINDOWS_TOOLS = ("smbd", "nmbd", "smbpasswd")
# The lab's generated secrets (lab.json, 0600): SMB Administrator, the operator's sudo password,
# root's su password, the BMC account's password.
SECRETS = ("smb_password", "local_user_password", "become_password", "root_password", "bmc_password")
FIREWALLD_TOOLS = ("dbus-daemon", "firewalld", "firewall-cmd")


class LabError(Exception):
    """A lab operation failed; the message says what and why."""


# --------------------------------------------------------------------------------------------
# The plan: which nodes, which addresses. Pure functions, unit-tested without root.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    index: int
    kind: str  # linux | windows | firewalld (a Linux node whose firewall is firewalld, on a D-Bus system bus of its own)
    family: str  # dual | ipv4 | ipv6
    hardware: str = labhardware.DEFAULT_HARDWARE  # labhardware.PROFILES: DMI values and BMC inventory
    bmc: bool = True  # a Redfish server on the host interface (about 20 MB per node: big labs may go without)

    @property
    def netns(self) -> str:
        return PREFIX + self.name

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.index}"

    @property
    def ipv4(self) -> str | None:
        if self.family == "ipv6":
            return None
        return str(IPV4_NET.network_address + FIRST_HOST + self.index)

    @property
    def ipv6(self) -> str | None:
        if self.family == "ipv4":
            return None
        return str(IPV6_NET.network_address + FIRST_HOST + self.index)

    @property
    def mac(self) -> str:
        # A fixed MAC per node: a rebuilt node is reached at once, not after the controller's
        # neighbour cache for its address times out.
        return f"02:f1:ee:{LAB_ID:02x}:{self.index >> 8:02x}:{self.index & 0xFF:02x}"

    @property
    def bmc_address(self) -> str:
        return str(BMC_NET.network_address + FIRST_HOST + self.index)

    @property
    def bmc_url(self) -> str:
        return f"https://{self.bmc_address}"

    @property
    def addresses(self) -> list[str]:
        return [a for a in (self.ipv4, self.ipv6) if a]

    @property
    def ansible_host(self) -> str:
        # Dual-stack nodes are reached over IPv4 by default; IPv6-only nodes by their literal.
        return self.ipv4 or str(self.ipv6)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def plan_nodes(linux: int = 2, ipv6_only: int = 1, ipv4_only: int = 0, windows: int = 1,
               hardware: Mapping[str, str] | None = None, bmc: bool = True, firewalld: int = 0) -> list[Node]:
    """Return the nodes of a lab, in a stable order (so addresses are stable across `up`s).

    ``hardware`` gives nodes (by name) another hardware profile than the default; ``bmc=False``
    leaves the BMCs out (a benchmark's many nodes need no Redfish server)."""
    counts = {"linux": linux, "ipv6_only": ipv6_only, "ipv4_only": ipv4_only, "windows": windows, "firewalld": firewalld}
    for what, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise LabError(f"--{what.replace('_', '-')} must be a whole number >= 0, got {count!r}")
    total = sum(counts.values())
    if total == 0:
        raise LabError("a lab needs at least one node: all of --linux, --ipv6-only, --ipv4-only, --windows and --firewalld are 0")
    if total > MAX_NODES:
        raise LabError(f"a lab holds at most {MAX_NODES} nodes, {total} were asked for")
    groups = (
        ("lin", "linux", "dual", linux),
        ("v6n", "linux", "ipv6", ipv6_only),
        ("v4n", "linux", "ipv4", ipv4_only),
        ("win", "windows", "dual", windows),
        ("fwd", "firewalld", "dual", firewalld),  # last: the other nodes keep their addresses
    )
    nodes: list[Node] = []
    for stem, kind, family, count in groups:
        for number in range(1, count + 1):
            name = f"{stem}{number:02d}"
            nodes.append(Node(name=name, index=len(nodes) + 1, kind=kind, family=family,
                              hardware=(hardware or {}).get(name, labhardware.DEFAULT_HARDWARE), bmc=bmc))
    _check_hardware(nodes, hardware or {})
    return nodes


def _check_hardware(nodes: Sequence[Node], hardware: Mapping[str, str]) -> None:
    unknown_nodes = sorted(set(hardware) - {n.name for n in nodes})
    if unknown_nodes:
        raise LabError(f"--hardware names no node of this lab: {', '.join(unknown_nodes)} (nodes: {', '.join(n.name for n in nodes)})")
    for node in nodes:
        try:
            labhardware.profile(node.hardware)
        except labhardware.HardwareError as exc:
            raise LabError(f"--hardware {node.name}={node.hardware}: {exc}") from exc


def parse_hardware(pairs: Sequence[str]) -> dict[str, str]:
    """``["lin02=dl360-gen10", ...]`` -> ``{"lin02": "dl360-gen10"}``."""
    chosen: dict[str, str] = {}
    for pair in pairs:
        name, sep, profile = pair.partition("=")
        if not sep or not name or not profile:
            raise LabError(f"--hardware takes NODE=PROFILE, got {pair!r}")
        chosen[name] = profile
    return chosen


def node_path(node: Node) -> str:
    """The fleet.firmware path of a node: a firewalld node is a Linux node reached over SSH."""
    return "windows" if node.kind == "windows" else "linux"


def inventory_data(nodes: Sequence[Node], home: Path, passwords: dict[str, str]) -> dict:
    """The Ansible YAML inventory (as a dict) for the lab's nodes."""
    groups: dict[str, dict] = {"linux": {}, "windows": {}, "firewalld": {}, "ipv6_only": {}, "ipv4_only": {}}
    for node in nodes:
        host = {
            "ansible_host": node.ansible_host,
            "fleet_lab_netns": node.netns,
            "fleet_lab_ipv4": node.ipv4,
            "fleet_lab_ipv6": node.ipv6,
            "fleet_path": node_path(node),
            # The node's hardware and its BMC (Redfish over the host interface, lab CA).
            "fleet_lab_hardware": node.hardware,
            "fleet_lab_rom_family": labhardware.profile(node.hardware)["family"],
            "fleet_lab_bmc_address": node.bmc_url if node.bmc else None,
        }
        if node.kind == "windows":
            host.update({"fleet_smb_user": SMB_USER, "fleet_smb_password": passwords["smb_password"]})
        groups[node.kind][node.name] = host
        if node.family == "ipv6":
            groups["ipv6_only"][node.name] = {}
        elif node.family == "ipv4":
            groups["ipv4_only"][node.name] = {}
    known_hosts = home / "ssh" / "known_hosts"
    return {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(home / "ssh" / "id_ed25519"),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes",
                "ansible_python_interpreter": NODE_PYTHON,
                "fleet_lab_controller_ipv4": str(CONTROLLER_IPV4),
                "fleet_lab_controller_ipv6": str(CONTROLLER_IPV6),
                "fleet_lab_state_dir": str(home / "node"),
                "fleet_lab_become_user": OPERATOR,
                "fleet_lab_become_password": passwords["become_password"],
                "fleet_lab_root_password": passwords["root_password"],
                "fleet_lab_bmc_ca": str(home / "bmc" / "ca.pem"),
                "fleet_lab_bmc_user": BMC_USER,
                "fleet_lab_bmc_password": passwords.get("bmc_password", ""),
            },
            "children": {name: {"hosts": hosts} for name, hosts in groups.items()},
        }
    }


def to_yaml(data: object, indent: int = 0) -> str:
    """Minimal YAML writer for the inventory (str/int/None/dict): no PyYAML needed to run the lab."""
    pad = "  " * indent
    lines: list[str] = []
    assert isinstance(data, dict)
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:" + ("" if value else " {}"))
            if value:
                lines.append(to_yaml(value, indent + 1))
        else:
            lines.append(f"{pad}{key}: {json.dumps(value)}")
    return "\n".join(lines)


def sshd_config(node: Node, home: Path) -> str:
    listen = "\n".join(f"ListenAddress {address}" for address in node.addresses)
    return f"""# fleet.firmware lab: sshd of node {node.name}
{listen}
HostKey {home}/nodes/{node.name}/ssh_host_ed25519_key
AuthorizedKeysFile {home}/ssh/authorized_keys .ssh/authorized_keys
PidFile {home}/nodes/{node.name}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 200:30:400
MaxSessions 50
Subsystem sftp internal-sftp
"""


def smb_config(node: Node, home: Path) -> str:
    state = home / "node" / "samba"
    return f"""# fleet.firmware lab: Samba of Windows-like node {node.name}
[global]
  netbios name = {node.name.upper()}
  workgroup = FLEETLAB
  server role = standalone server
  interfaces = {" ".join(node.addresses)}
  bind interfaces only = yes
  smb ports = 445 139
  disable netbios = no
  server min protocol = SMB2_02
  passdb backend = tdbsam:{state}/private/passdb.tdb
  private dir = {state}/private
  lock directory = {state}/lock
  state directory = {state}/state
  cache directory = {state}/cache
  pid directory = {home}/nodes/{node.name}
  ncalrpc dir = {state}/ncalrpc
  log file = {state}/log.%m
  max log size = 1000
  username map = {home}/nodes/{node.name}/smbusers
  map to guest = never
  restrict anonymous = 2
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  # NT ACLs as Windows keeps them: the descriptor a client sets (owner, DACL, protection) is
  # stored whole in the security.NTACL xattr and read back as set, not mapped onto POSIX modes.
  vfs objects = acl_xattr
  acl_xattr:ignore system acls = yes
  acl_xattr:default acl style = windows
  # BUILTIN\\Administrators (S-1-5-32-544) is a group: it has no Unix user, so an owner of that
  # SID is recorded in the descriptor while the Unix owner stays the account's (root).
  force unknown acl user = yes
  # A link inside a share is followed (Samba's default), as a junction a local user plants is on
  # Windows: the cleanup must not follow it.
  follow symlinks = yes

[ADMIN$]
  comment = Remote Admin (fleet.firmware lab)
  path = {home}/node/windows
  read only = no
  browseable = no
  valid users = root

# What a local, unprivileged user of the node can reach: %SystemRoot%\\Temp, where users may
# create folders (Windows grants them CreateDirectories there). The lab's tests use it to plant
# a folder before a run.
[{LOCAL_SHARE}]
  comment = A local user's view of Temp (fleet.firmware lab)
  path = {LOCAL_VIEW}/Temp
  read only = no
  browseable = no
  valid users = {OPERATOR}
"""


# --------------------------------------------------------------------------------------------
# Running things
# --------------------------------------------------------------------------------------------


def run(argv: Sequence[str], check: bool = True, stdin: str | None = None, quiet: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"command failed (rc={proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purpose.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def process_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def pids_in_netns(inodes: Iterable[int]) -> list[int]:
    """Every process whose network namespace is one of ``inodes`` (also after `ip netns del`)."""
    wanted = set(inodes)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and process_netns_inode(int(entry)) in wanted:
            found.append(int(entry))
    return found


def kill_all(pids: Iterable[int], grace: float = 3.0) -> None:
    pids = [p for p in pids if pid_alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------------------------
# The lab
# --------------------------------------------------------------------------------------------


BUS_CONFIG = "/usr/share/dbus-1/system.conf"
# A firewalld user's permanent configuration, as on a managed server: the default zone with the
# node's interface bound to it, SSH and a web service allowed, a rich rule of the user's, and a
# second zone that takes a management source (an address no lab host uses) with a port of its own.
FIREWALLD_USER_CONFIG = {
    "zones/public.xml": """<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <description>The lab user's default zone.</description>
  <interface name="eth0"/>
  <service name="ssh"/>
  <service name="https"/>
  <rule family="ipv4">
    <source address="198.18.250.0/24"/>
    <port port="9100" protocol="tcp"/>
    <accept/>
  </rule>
  <forward/>
</zone>
""",
    "zones/mgmt.xml": """<?xml version="1.0" encoding="utf-8"?>
<zone target="default">
  <short>Management</short>
  <description>The lab user's management zone.</description>
  <source address="198.18.251.7/32"/>
  <port port="9090" protocol="tcp"/>
</zone>
""",
}


def firewalld_bus_config(system_conf: str) -> str:
    """The system bus configuration of a firewalld node: Debian's, with no switch to the
    messagebus user (the daemon stays root inside the node), the policy folders as absolute
    paths, and no SELinux contexts."""
    conf = system_conf.replace("<user>messagebus</user>", "")
    conf = conf.replace("<includedir>system.d</includedir>", "<includedir>/usr/share/dbus-1/system.d</includedir>")
    return re.sub(r"<include [^>]*>[^<]*dbus_contexts</include>", "", conf)


class Lab:
    """The lab on this machine, rooted at ``home`` (lab key, node configs, pid files, state)."""

    def __init__(self, home: Path = DEFAULT_HOME) -> None:
        self.home = Path(home)
        if not self.home.is_absolute():
            raise LabError(f"the lab home must be an absolute path, got {str(home)!r}")
        for private in PRIVATE_DIRS:
            if self.home == Path(private) or Path(private) in self.home.parents:
                raise LabError(f"the lab home {self.home} cannot live under {private}: that folder is private inside each node")

    # ---- state ----------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.home / "lab.json"

    def load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        write_file(tmp, json.dumps(state, indent=2), 0o600)
        os.replace(tmp, self.state_file)

    def nodes(self) -> list[Node]:
        return [Node(**n) for n in self.load_state().get("nodes", [])]

    def node(self, name: str) -> Node:
        for node in self.nodes():
            if node.name == name:
                return node
        raise LabError(f"no lab node named {name!r}; nodes: {', '.join(n.name for n in self.nodes()) or 'none'}")

    def shared_dir(self) -> Path:
        """The one folder the lab shares with its nodes on purpose: a process inside a node reads it
        at the same path as the controller (the lab home is never under PRIVATE_DIRS). For what a
        client run inside a node must read (a benchmark's CA certificate): a checkout may live under
        /root or /home, which the nodes do not see. Root only; removed by ``down`` with the home."""
        path = self.home / "shared"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    @property
    def passwords(self) -> dict[str, str]:
        """The lab's generated secrets (SECRETS)."""
        state = self.load_state()
        return {key: state.get(key, "") for key in SECRETS}

    @property
    def smb_password(self) -> str:
        return self.passwords["smb_password"]

    @property
    def local_user_password(self) -> str:
        return self.passwords["local_user_password"]

    def holder_pid(self, node: Node) -> int | None:
        try:
            pid = int((self.home / "nodes" / node.name / "holder.pid").read_text())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and process_netns_inode(pid) == netns_inode(node.netns):
            return pid
        return None

    # ---- up -------------------------------------------------------------------------------

    def up(self, nodes: Sequence[Node]) -> list[Node]:
        """Make the lab match ``nodes``: build what is missing, repair what is broken, remove extra nodes."""
        require_root()
        require_tools(REQUIRED_TOOLS + (WINDOWS_TOOLS if any(n.kind == "windows" for n in nodes) else ())
                      + (FIREWALLD_TOOLS if any(n.kind == "firewalld" for n in nodes) else ()))
        state = self.load_state()
        for key in SECRETS:
            state.setdefault(key, secrets.token_urlsafe(18))
        wanted = {n.name: n for n in nodes}
        recorded = {n["name"]: Node(**n) for n in state.get("nodes", [])}
        # Record the plan (and namespace inodes as they appear) before building, so that `down`
        # after a crash half-way finds everything.
        state["nodes"] = [n.to_json() for n in nodes]
        state.setdefault("netns_inodes", {})
        self.save_state(state)
        try:
            for name, old in recorded.items():
                if name not in wanted or old != wanted[name]:
                    self._remove_node(old, state)
            self._ensure_keys()
            self._ensure_bridge()
            for node in nodes:
                if not self.node_healthy(node):
                    self._remove_node(node, state)
                    try:
                        self._build_node(node, state)
                    except Exception as exc:
                        # No half-built node is left behind: what this node got so far goes,
                        # after its logs were read into the error.
                        logs = self._log_tails(node)
                        self._remove_node(node, state)
                        raise LabError(f"node {node.name} could not be built: {exc}\n{logs}".rstrip()) from exc
            self._write_known_hosts(nodes)
            self.write_inventory(self.home / "inventory.yml")
        finally:
            self.save_state(state)
        return list(nodes)

    def _ensure_keys(self) -> None:
        ssh_dir = self.home / "ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ssh_dir / "id_ed25519"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-firmware-lab", "-f", str(key)])
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text((ssh_dir / "id_ed25519.pub").read_text())
        authorized.chmod(0o600)

    def _ensure_bridge(self) -> None:
        if not Path(f"/sys/class/net/{BRIDGE}").exists():
            run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        # Only our own bridge's settings: no host-wide sysctl is changed.
        for knob, value in (("accept_ra", "0"), ("accept_dad", "0"), ("disable_ipv6", "0")):
            Path(f"/proc/sys/net/ipv6/conf/{BRIDGE}/{knob}").write_text(value)
        have = run(["ip", "-o", "addr", "show", "dev", BRIDGE]).stdout
        if f" {CONTROLLER_IPV4}/" not in have:
            run(["ip", "addr", "add", f"{CONTROLLER_IPV4}/{IPV4_NET.prefixlen}", "dev", BRIDGE])
        if f" {CONTROLLER_IPV6}/" not in have:
            run(["ip", "-6", "addr", "add", f"{CONTROLLER_IPV6}/{IPV6_NET.prefixlen}", "dev", BRIDGE, "nodad"])
        run(["ip", "link", "set", BRIDGE, "up"])

    def _build_node(self, node: Node, state: dict) -> None:
        node_dir = self.home / "nodes" / node.name
        node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / "node").mkdir(mode=0o755, exist_ok=True)  # mount point of the node's private state
        run(["ip", "netns", "add", node.netns])
        state["netns_inodes"][node.name] = netns_inode(node.netns)
        self.save_state(state)
        run(["ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns])
        run(["ip", "link", "set", node.veth, "master", BRIDGE, "up"])
        ns = ["ip", "-n", node.netns]
        run(ns + ["link", "set", "eth0", "address", node.mac])
        run(ns + ["link", "set", "lo", "up"])
        if node.bmc:  # the BMC's host-interface address: on the node's loopback, so only this node reaches it
            run(ns + ["addr", "add", f"{node.bmc_address}/32", "dev", "lo"])
        run(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_dad=0", "net.ipv6.conf.eth0.accept_ra=0"])
        if node.ipv4:
            run(ns + ["addr", "add", f"{node.ipv4}/{IPV4_NET.prefixlen}", "dev", "eth0"])
        if node.ipv6:
            run(ns + ["-6", "addr", "add", f"{node.ipv6}/{IPV6_NET.prefixlen}", "dev", "eth0", "nodad"])
        else:
            run(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"])
        for address in node.addresses:
            run(["ip", "neigh", "flush", "dev", BRIDGE, "to", address], check=False)
        run(ns + ["link", "set", "eth0", "up"])
        self._start_holder(node)
        self._start_services(node)

    def _start_holder(self, node: Node) -> None:
        node_dir = self.home / "nodes" / node.name
        boot_id = node_dir / "boot_id"
        boot_id.write_text(str(uuid.uuid4()) + "\n")
        etc = self._write_accounts(node)
        dmi = self._write_dmi(node)
        mounts = " && ".join(
            [f"mount -t tmpfs -o mode={private_mode(d)} fleetlab {d}" for d in PRIVATE_DIRS]
            + [f"mount --bind {etc / name} /etc/{name}" for name in ACCOUNT_FILES + ("sudoers.d",)]
            + [
                f"mount -t tmpfs -o mode=0755 fleetlab {self.home}/node",
                f"mount --bind {boot_id} /proc/sys/kernel/random/boot_id",
                f"hostname {node.name}",
            ]
            + dmi_mounts(node_dir, dmi)
        )
        script = f"{mounts} && echo $$ > {node_dir}/holder.pid && exec sleep infinity"
        # One pid all the way: ip netns exec -> unshare -> sh -> sleep each exec the next.
        with open(node_dir / "holder.log", "w", encoding="utf-8") as log:
            subprocess.Popen(  # pylint: disable=consider-using-with  # the holder outlives this call on purpose
                ["ip", "netns", "exec", node.netns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + 10
        while self.holder_pid(node) is None:
            if time.monotonic() > deadline:
                raise LabError(f"node {node.name}: its namespace holder did not start: {(node_dir / 'holder.log').read_text().strip()}")
            time.sleep(0.02)

    def _write_accounts(self, node: Node) -> Path:
        """The node's own account files: the host's accounts (without their secrets) plus the operator."""
        etc = self.home / "nodes" / node.name / "etc"
        (etc / "sudoers.d").mkdir(mode=0o755, parents=True, exist_ok=True)
        passwords = self.passwords
        hashes = {"root": hash_password(passwords["root_password"]), OPERATOR: hash_password(passwords["become_password"])}
        users = [line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines() if line and line.split(":")[0] != OPERATOR]
        operator = f"{OPERATOR}:x:{OPERATOR_UID}:{OPERATOR_UID}:fleet.firmware lab operator:/home/{OPERATOR}:/bin/bash"
        write_file(etc / "passwd", Path("/etc/passwd").read_text().rstrip("\n") + f"\n{operator}\n", 0o644)
        write_file(etc / "group", Path("/etc/group").read_text().rstrip("\n") + f"\n{OPERATOR}:x:{OPERATOR_UID}:\n", 0o644)
        shadow = [f"{user}:{hashes.get(user, '*')}:19000:0:99999:7:::" for user in users + [OPERATOR]]
        write_file(etc / "shadow", "\n".join(shadow) + "\n", 0o640)
        write_file(etc / "sudoers.d" / "fleet-lab", f"{OPERATOR} ALL=(ALL:ALL) ALL\n", 0o440)
        return etc

    def _write_dmi(self, node: Node, values: Mapping[str, str] | None = None) -> Path:
        """The node's /sys/class/dmi/id: its hardware profile's values (or ``values``), written in
        place (the node's bind mount of the folder sees a change at once)."""
        folder = self.home / "nodes" / node.name / "dmi"
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        wanted = dict(values) if values is not None else labhardware.dmi_values(node.hardware, node.name, node.index)
        for field, value in wanted.items():
            if not re.match(r"^[a-z0-9_]+$", field):
                raise LabError(f"{field!r} is not a DMI field name (lower-case letters, digits, _)")
            # As in sysfs: serial numbers and the UUID are root's only.
            write_file(folder / field, f"{value}\n", 0o400 if field.endswith(("_serial", "_uuid")) else 0o444)
        return folder

    def set_dmi(self, node: Node, **values: str) -> dict[str, str]:
        """Change DMI values of a running node (e.g. a flashed ROM); returns all of them."""
        self._write_dmi(node, values)
        return self.dmi(node)

    def dmi(self, node: Node) -> dict[str, str]:
        folder = self.home / "nodes" / node.name / "dmi"
        return {path.name: path.read_text().strip() for path in sorted(folder.iterdir())}

    def set_firmware(self, node: Node, firmware: Mapping[str, str] | None = None, expand: bool = True) -> list[dict]:
        """(Re)write the node's BMC firmware inventory: the profile's versions, ``firmware`` (item
        id -> version) overriding them; ``expand=False`` makes a BMC that does not expand
        collections. The running server serves the new files at its next request."""
        try:
            items = labhardware.firmware_items(node.hardware, self.dmi(node), dict(firmware or {}))
        except labhardware.HardwareError as exc:
            raise LabError(f"node {node.name}: {exc}") from exc
        labhardware.write_mockup(self.home / "nodes" / node.name / "redfish", labhardware.mockup_files(items, expand))
        return items

    def node_exec_argv(self, node: Node, argv: Sequence[str]) -> list[str]:
        """argv that runs ``argv`` inside the node (its network, mount and UTS namespaces)."""
        pid = self.holder_pid(node)
        if pid is None:
            raise LabError(f"node {node.name} is not running (no namespace holder); run `fleetlab.py up`")
        return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--"] + list(argv)

    def node_run(self, node: Node, argv: Sequence[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        return run(self.node_exec_argv(node, argv), check=check, stdin=stdin)

    def _start_services(self, node: Node) -> None:
        node_dir = self.home / "nodes" / node.name
        host_key = node_dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fleet-firmware-lab-{node.name}", "-f", str(host_key)])
        (node_dir / "sshd_config").write_text(sshd_config(node, self.home))
        self.node_run(node, ["mkdir", "-p", "-m", "0755", "/run/sshd"])
        owner = ["-o", str(OPERATOR_UID), "-g", str(OPERATOR_UID)]
        self.node_run(node, ["install", "-d", "-m", "0700", *owner, f"/home/{OPERATOR}", f"/home/{OPERATOR}/.ssh"])
        # sshd reads a user's keys as that user: the operator gets its own copy of the lab key.
        self.node_run(node, ["install", "-m", "0600", *owner, f"{self.home}/ssh/authorized_keys", f"/home/{OPERATOR}/.ssh/authorized_keys"])
        self.node_run(node, ["/usr/sbin/sshd", "-f", str(node_dir / "sshd_config"), "-E", str(node_dir / "sshd.log")])
        if node.kind == "windows":
            self._start_samba(node)
        if node.bmc:
            self._start_bmc(node)
        if node.kind == "firewalld":
            self._start_firewalld(node)
        self._wait_for_port(node, 22)
        self._wait_for_services(node)

    def _start_bmc(self, node: Node) -> None:
        """The node's BMC: sushy-static (a real Redfish mockup server) inside the node's
        namespaces, HTTPS with a lab-CA certificate, on the host-interface address only."""
        node_dir = self.home / "nodes" / node.name
        if not (node_dir / "redfish").exists():
            self.set_firmware(node)
        cert, key = self._bmc_certificate(node)
        argv = ["env", f"PYTHONPATH={self._sushy_path()}", NODE_PYTHON, "-m", "sushy_tools.static.main",
                "-i", node.bmc_address, "-p", str(BMC_PORT), "-m", str(node_dir / "redfish"), "-c", str(cert), "-k", str(key)]
        # sushy-static prints every request's headers (an Authorization header too) to stdout:
        # stdout goes nowhere, stderr (request lines, errors) to the log.
        with open(node_dir / "bmc.log", "a", encoding="utf-8") as log:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with  # a service of the node
                self.node_exec_argv(node, argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, close_fds=True,
            )
        (node_dir / "bmc.pid").write_text(f"{proc.pid}\n")
        probe = ("import socket, sys, time\n"
                 "deadline = time.monotonic() + 15\n"
                 "while True:\n"
                 "    try:\n"
                 f"        socket.create_connection(({node.bmc_address!r}, {BMC_PORT}), 1).close()\n"
                 "        break\n"
                 "    except OSError:\n"
                 "        if time.monotonic() > deadline:\n"
                 "            sys.exit(1)\n"
                 "        time.sleep(0.05)\n")
        if self.node_run(node, [NODE_PYTHON, "-c", probe], check=False).returncode != 0:
            raise LabError(f"node {node.name}: the BMC (sushy-static) does not answer on {node.bmc_address}:{BMC_PORT}: "
                           + (node_dir / "bmc.log").read_text(errors="replace")[-500:])

    def _sushy_path(self) -> Path:
        """A folder holding a copy of sushy-tools' static server, for the node's Python: the venv
        the tests run in may live under /root, which is private inside the node, and the rest of
        its site-packages has no business in the BMC's interpreter."""
        lib = self.home / "bmc" / "lib"
        if not (lib / "sushy_tools" / "static" / "main.py").exists():
            source = sushy_tools_package()
            (lib / "sushy_tools" / "static").mkdir(parents=True, exist_ok=True)
            for relative in ("__init__.py", "static/__init__.py", "static/main.py"):
                shutil.copyfile(source / relative, lib / "sushy_tools" / relative)
        return lib

    def _bmc_certificate(self, node: Node) -> tuple[Path, Path]:
        """A lab CA (once per lab) and a server certificate for the node's BMC address."""
        bmc = self.home / "bmc"
        bmc.mkdir(mode=0o755, exist_ok=True)
        ca, ca_key = bmc / "ca.pem", bmc / "ca.key"
        if not ca.exists():
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                 "-subj", "/CN=fleet.firmware lab BMC CA", "-keyout", str(ca_key), "-out", str(ca),
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            ca.chmod(0o644)
        node_dir = self.home / "nodes" / node.name
        cert, key, csr, ext = node_dir / "bmc.pem", node_dir / "bmc.key", node_dir / "bmc.csr", node_dir / "bmc.ext"
        if not cert.exists():
            run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-subj", f"/CN={node.bmc_address}", "-keyout", str(key), "-out", str(csr)])
            ext.write_text(f"subjectAltName=IP:{node.bmc_address}\nbasicConstraints=critical,CA:FALSE\n"
                           "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                           "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
            run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                 "-days", "30", "-extfile", str(ext), "-out", str(cert)])
        return cert, key

    def _wait_for_services(self, node: Node, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not all((pids := self.service_pids(node)).values()):
            if time.monotonic() > deadline:
                dead = ", ".join(name for name, pid in pids.items() if not pid)
                raise LabError(f"{dead} did not start")
            time.sleep(0.05)

    def _start_samba(self, node: Node) -> None:
        if not any(Path(d, "acl_xattr.so").exists() for d in SAMBA_VFS_DIRS):
            raise LabError("Samba's vfs module acl_xattr is missing (Debian: apt-get install samba-vfs-modules; bindep.txt)")
        node_dir = self.home / "nodes" / node.name
        state = self.home / "node" / "samba"
        conf = node_dir / "smb.conf"
        conf.write_text(smb_config(node, self.home))
        # The lab's Windows account maps onto the node's root (Samba needs a Unix account).
        (node_dir / "smbusers").write_text(f"root = {SMB_USER}\n{OPERATOR} = {LOCAL_USER}\n")
        for sub in ("private", "lock", "state", "cache", "ncalrpc"):
            self.node_run(node, ["mkdir", "-p", "-m", "0700", str(state / sub)])
        self.node_run(node, ["mkdir", "-p", "-m", "0755", f"{self.home}/node/windows", "/run/samba"])
        # Temp is writable by every local user, as %SystemRoot%\\Temp is on Windows.
        self.node_run(node, ["mkdir", "-p", "-m", "1777", f"{self.home}/node/windows/Temp"])
        self.node_run(node, ["chmod", "1777", f"{self.home}/node/windows/Temp"])
        self.node_run(node, ["sh", "-c", f"mkdir -p {LOCAL_VIEW} && {{ mountpoint -q {LOCAL_VIEW} || mount --bind {self.home}/node/windows {LOCAL_VIEW}; }}"])
        password = self.smb_password
        # The passwords go through stdin, never argv.
        self.node_run(node, ["smbpasswd", "-c", str(conf), "-s", "-a", "root"], stdin=f"{password}\n{password}\n")
        local = self.local_user_password
        self.node_run(node, ["smbpasswd", "-c", str(conf), "-s", "-a", OPERATOR], stdin=f"{local}\n{local}\n")
        # The Administrator's token carries BUILTIN\\Administrators (root's group maps to it), so a
        # descriptor naming that SID as owner and in its DACL is the account's own, as on Windows.
        mapped = self.node_run(node, ["net", "-s", str(conf), "groupmap", "list"], check=False).stdout
        if ADMINISTRATORS_SID not in mapped:
            self.node_run(node, ["net", "-s", str(conf), "groupmap", "add", f"sid={ADMINISTRATORS_SID}", "unixgroup=root",
                                 "type=builtin", "ntgroup=Administrators"])
        self.node_run(node, ["smbd", "-D", "-s", str(conf)])
        if node.ipv4:  # NetBIOS name service is IPv4 only
            self.node_run(node, ["nmbd", "-D", "-s", str(conf)])
        self._wait_for_port(node, 445)
        self._set_temp_acl(node)

    def _set_temp_acl(self, node: Node) -> None:
        """%SystemRoot%\\Temp's descriptor as Windows ships it: SYSTEM, Administrators and CREATOR
        OWNER full control, and every user may create files and folders there (and the folders
        inherit that): what a local user needs to plant a staging folder before a run."""
        auth = self.home / "nodes" / node.name / "smb-admin.auth"
        write_file(auth, f"username = {SMB_USER}\npassword = {self.smb_password}\n", 0o600)
        self.node_run(node, ["smbcacls", f"//{node.ipv4 or node.ipv6}/ADMIN$", "Temp", "-A", str(auth), "--set", TEMP_ACL])

    # ---- the firewalld node ---------------------------------------------------------------
    # Its own D-Bus system bus and firewalld, both inside the node's namespaces: the socket is in
    # the node's private /run, /etc/firewalld is a bind mount of the node's own copy, and every
    # rule firewalld makes is in the node's network namespace. The host runs no bus and no
    # firewalld; nothing of this reaches the host's firewall.

    def _start_firewalld(self, node: Node, timeout: float = 90.0) -> None:
        node_dir = self.home / "nodes" / node.name
        etc = f"{self.home}/node/firewalld/etc"  # the node's own disk: kept across a simulated reboot
        (node_dir / "bus.conf").write_text(firewalld_bus_config(Path(BUS_CONFIG).read_text()))
        first = self.node_run(node, ["test", "-d", etc], check=False).returncode != 0
        self.node_run(node, ["sh", "-c", f"mkdir -p -m 0755 /run/dbus && mkdir -p {etc} && {{ [ -n \"$(ls -A {etc})\" ] || cp -a /etc/firewalld/. {etc}/; }}"
                             f" && {{ mountpoint -q /etc/firewalld || mount --bind {etc} /etc/firewalld; }}"])
        if first:
            for relative, text in FIREWALLD_USER_CONFIG.items():
                self.node_run(node, ["sh", "-c", f"cat > /etc/firewalld/{relative}"], stdin=text)
        bus = self.node_run(node, ["dbus-daemon", "--fork", "--print-pid", f"--config-file={node_dir / 'bus.conf'}"]).stdout.split()
        (node_dir / "dbus.pid").write_text(bus[0] + "\n")
        self.node_run(node, ["firewalld", "--log-target=file", f"--log-file={node_dir / 'firewalld.log'}"])
        deadline = time.monotonic() + timeout
        while self.node_run(node, ["firewall-cmd", "--state"], check=False).returncode != 0:
            if time.monotonic() > deadline:
                log = (node_dir / "firewalld.log").read_text(errors="replace") if (node_dir / "firewalld.log").exists() else ""
                raise LabError(f"node {node.name}: firewalld not running after {timeout:.0f} s: {log[-2000:]}")
            time.sleep(0.2)
        (node_dir / "firewalld.pid").write_text(self.node_run(node, ["cat", "/run/firewalld.pid"]).stdout)

    def _wait_for_port(self, node: Node, port: int, timeout: float = 15.0) -> None:
        """Wait until the controller reaches ``port`` on every address of the node."""
        deadline = time.monotonic() + timeout
        for address in node.addresses:
            while True:
                try:
                    socket.create_connection((address, port), timeout=1).close()
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise LabError(f"node {node.name}: port {port} on {address} not reachable after {timeout:.0f} s: {exc}") from exc
                    time.sleep(0.05)

    def _log_tails(self, node: Node, lines: int = 5) -> str:
        """The last lines of the node's service logs, for an error message (the node may be removed next)."""
        tails = []
        sshd_log = self.home / "nodes" / node.name / "sshd.log"
        if sshd_log.exists():
            tails.append(f"{sshd_log}:\n" + "\n".join(sshd_log.read_text(errors="replace").splitlines()[-lines:]))
        if node.kind == "windows" and self.holder_pid(node) is not None:
            samba = [f"{self.home}/node/samba/log.smbd", f"{self.home}/node/samba/log.nmbd"]
            tails.append(self.node_run(node, ["tail", "-n", str(lines), *samba], check=False).stdout)
        return "\n".join(t.strip() for t in tails if t.strip())

    def _write_known_hosts(self, nodes: Sequence[Node]) -> None:
        lines = []
        for node in nodes:
            pub = (self.home / "nodes" / node.name / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{','.join(node.addresses)} {pub[0]} {pub[1]}")
        (self.home / "ssh" / "known_hosts").write_text("\n".join(lines) + "\n")

    def write_inventory(self, path: Path) -> Path:
        data = inventory_data(self.nodes(), self.home, self.passwords)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: the inventory holds the lab's passwords.
        write_file(path, "---\n# fleet.firmware lab inventory, written by tests/lab/fleetlab.py\n" + to_yaml(data) + "\n", 0o600)
        return path

    # ---- health and status -------------------------------------------------------------------

    def service_pids(self, node: Node) -> dict[str, int | None]:
        names = ["sshd"] + (["smbd", "nmbd"] if node.kind == "windows" else []) + (["dbus", "firewalld"] if node.kind == "firewalld" else []) \
            + (["bmc"] if node.bmc else [])
        found: dict[str, int | None] = {}
        for name in names:
            try:
                pid = int((self.home / "nodes" / node.name / f"{name}.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            found[name] = pid if pid and pid_alive(pid) else None
        if node.kind == "windows" and not node.ipv4:
            found.pop("nmbd")
        return found

    def node_healthy(self, node: Node) -> bool:
        if self.holder_pid(node) is None:
            return False
        if not Path(f"/sys/class/net/{node.veth}").exists():
            return False
        return all(self.service_pids(node).values())

    def status(self) -> dict:
        nodes = self.nodes()
        return {
            "home": str(self.home),
            "bridge": Path(f"/sys/class/net/{BRIDGE}").exists(),
            "controller": {"ipv4": str(CONTROLLER_IPV4), "ipv6": str(CONTROLLER_IPV6)},
            "nodes": [
                {
                    "name": n.name,
                    "kind": n.kind,
                    "family": n.family,
                    "hardware": n.hardware,
                    "bmc": n.bmc_url if n.bmc else None,
                    "addresses": n.addresses,
                    "netns": n.netns,
                    "up": self.node_healthy(n),
                    "services": self.service_pids(n),
                }
                for n in nodes
            ],
            "stray_namespaces": sorted(set(lab_namespaces()) - {n.netns for n in nodes}),
        }

    # ---- reboot -------------------------------------------------------------------------------

    def reboot(self, node: Node) -> None:
        """Simulate a reboot: every process of the node dies, /run, /tmp and /root start empty,
        /var/tmp and the state folder persist (as on disk), the boot id changes, services restart."""
        require_root()
        holder = self.holder_pid(node)
        if holder is None:
            raise LabError(f"node {node.name} is not running; cannot reboot it")
        self._kill_until_none_left(node, holder)
        boot_id = self.home / "nodes" / node.name / "boot_id"
        # Rewrite in place: the bind mount inside the node follows the inode.
        boot_id.write_text(str(uuid.uuid4()) + "\n")
        for private in ("/run", "/tmp", "/root"):
            self.node_run(node, ["sh", "-c", f"umount -l {private} && mount -t tmpfs -o mode={private_mode(private)} fleetlab {private}"])
        self._start_services(node)

    @staticmethod
    def _kill_until_none_left(node: Node, holder: int) -> None:
        """Every process of the node but its holder, until none is left: a process forked while
        the first round was being killed (sshd accepting a connection then) would outlive a real
        reboot's "every process dies", and a session on it could read the new boot id."""
        for _round in range(20):
            survivors = [p for p in pids_in_netns([netns_inode(node.netns) or -1]) if p != holder]
            if not survivors:
                return
            kill_all(survivors)
        raise LabError(f"node {node.name}: processes keep appearing while it reboots: {survivors}")

    # ---- down ---------------------------------------------------------------------------------

    def _remove_node(self, node: Node, state: dict) -> None:
        inode = state.get("netns_inodes", {}).get(node.name)
        inodes = [i for i in (inode, netns_inode(node.netns)) if i]
        kill_all(pids_in_netns(inodes))
        if netns_inode(node.netns) is not None:
            run(["ip", "netns", "del", node.netns], check=False)
        if Path(f"/sys/class/net/{node.veth}").exists():
            run(["ip", "link", "del", node.veth], check=False)
        shutil.rmtree(self.home / "nodes" / node.name, ignore_errors=True)
        state.get("netns_inodes", {}).pop(node.name, None)

    def down(self) -> list[str]:
        """Remove every namespace, link, process and file of the lab, also after a crashed run."""
        require_root()
        state = self.load_state()
        removed: list[str] = []
        inodes = [i for i in state.get("netns_inodes", {}).values() if i]
        for name in lab_namespaces():
            inode = netns_inode(name)
            if inode:
                inodes.append(inode)
        kill_all(pids_in_netns(inodes))
        for name in lab_namespaces():
            run(["ip", "netns", "del", name], check=False)
            removed.append(name)
        for link in lab_links():
            run(["ip", "link", "del", link], check=False)
            removed.append(link)
        if self.home.exists():
            shutil.rmtree(self.home)
            removed.append(str(self.home))
        return removed


def dmi_mounts(node_dir: Path, dmi: Path) -> list[str]:
    """Shell commands (run in the node's new mount namespace) that put ``dmi`` at /sys/class/dmi/id.

    sysfs cannot get a folder it lacks (a VM without SMBIOS has no /sys/class/dmi), so
    /sys/class becomes an overlay (the node's sysfs below, a tmpfs above) in which the folder can
    be made; the bind mount then shows the node's own values. The tmpfs lives in the node's mount
    namespace only: it goes with the holder, nothing to unmount on `down`.
    """
    layer = node_dir / "sysclass"
    return [
        f"mkdir -p {layer}",
        f"mount -t tmpfs -o mode=0700 fleetlab {layer}",
        f"mkdir {layer}/upper {layer}/work",
        f"mount -t overlay fleetlab -o lowerdir=/sys/class,upperdir={layer}/upper,workdir={layer}/work /sys/class",
        "mkdir -p /sys/class/dmi/id",
        f"mount --bind {dmi} /sys/class/dmi/id",
    ]


def sushy_tools_package() -> Path:
    """sushy-tools' package folder (requirements-dev.txt); its static server uses only the
    standard library, so the node's own Python runs it."""
    spec = importlib.util.find_spec("sushy_tools")
    if spec is None or not spec.submodule_search_locations:
        raise LabError("sushy-tools (the lab's Redfish server, sushy-static) is missing: pip install -r requirements-dev.txt")
    return Path(list(spec.submodule_search_locations)[0])


def private_mode(folder: str) -> str:
    return {"/root": "0700", "/home": "0755"}.get(folder, "1777")


def hash_password(password: str) -> str:
    """A SHA-512 crypt hash (the password goes through stdin, never argv)."""
    return run(["openssl", "passwd", "-6", "-stdin"], stdin=password + "\n").stdout.strip()


def write_file(path: Path, content: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)


def lab_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def lab_links() -> list[str]:
    names = os.listdir("/sys/class/net")
    links = [n for n in names if n.startswith(VETH_PREFIX) and n[len(VETH_PREFIX):].isdigit()]
    return links + ([BRIDGE] if BRIDGE in names else [])


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veth links, sshd, mounts): run it with sudo or as root")


def require_tools(tools: Iterable[str]) -> None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in tools if shutil.which(t, path=path) is None]
    if missing:
        raise LabError(f"missing tools: {', '.join(missing)}; install the packages in bindep.txt (`make deps`)")


# Links, addresses and routes of any lab instance (they come and go with parallel labs); the
# current instance's own leftovers are checked by name instead (lab_namespaces, lab_links).
LAB_OBJECT = re.compile(r"\bffl(br)?\d*[v-]?\d*\b|198\.18\.\d+\.|fd00:f1ee:7ab:")


def host_network_snapshot() -> dict[str, str]:
    """The host's addresses, links, routes and firewall rulesets, without the labs' own links
    (to prove a lab leaves the host as it found it)."""
    commands = {
        "links": ["ip", "-br", "link"],
        "addresses": ["ip", "-br", "addr"],
        "routes4": ["ip", "-4", "route", "show", "table", "all"],
        "routes6": ["ip", "-6", "route", "show", "table", "all"],
        "rules4": ["ip", "-4", "rule"],
        "rules6": ["ip", "-6", "rule"],
        "iptables": ["iptables-save"],
        "ip6tables": ["ip6tables-save"],
        "nft": ["nft", "list", "ruleset"],
    }
    snapshot = {}
    for key, argv in commands.items():
        out = run(argv, check=False).stdout
        # Drop comment lines with timestamps (iptables-save) and counters.
        snapshot[key] = "\n".join(
            re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in out.splitlines() if not line.startswith("#") and not LAB_OBJECT.search(line)
        )
    return snapshot


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fleetlab.py", description="The fleet.firmware network-namespace test lab.")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"lab folder (default {DEFAULT_HOME}, or $FLEET_LAB_HOME)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build (or repair) the lab; idempotent")
    up.add_argument("--linux", type=int, default=2, help="dual-stack Linux nodes (default 2)")
    up.add_argument("--ipv6-only", type=int, default=1, help="IPv6-only Linux nodes (default 1)")
    up.add_argument("--ipv4-only", type=int, default=0, help="IPv4-only Linux nodes (default 0)")
    up.add_argument("--windows", type=int, default=1, help="Windows-like nodes with Samba ADMIN$ (default 1)")
    up.add_argument("--firewalld", type=int, default=0, help="Linux nodes whose firewall is firewalld, on a system bus of their own (default 0)")
    up.add_argument("--inventory", type=Path, help="also write the inventory to this file")
    up.add_argument("--no-bmc", action="store_true", help="no Redfish server per node (saves about 20 MB a node)")
    up.add_argument("--hardware", action="append", default=[], metavar="NODE=PROFILE",
                    help=f"a node's hardware (DMI values, BMC inventory): one of {', '.join(sorted(labhardware.PROFILES))}; "
                         f"default {labhardware.DEFAULT_HARDWARE} (repeatable)")
    sub.add_parser("down", help="remove everything the lab made, also after a crash")
    sub.add_parser("status", help="say what is up (JSON)")
    inv = sub.add_parser("inventory", help="write the Ansible YAML inventory")
    inv.add_argument("path", type=Path, nargs="?", help="where to write it (default: print it)")
    reboot = sub.add_parser("reboot", help="simulate a reboot of a node")
    reboot.add_argument("node")
    return parser.parse_args(argv)


def up_standard() -> tuple["Lab", bool]:
    """The standard lab (the one the integration tests use), and whether it was up already
    (a benchmark then leaves it up)."""
    lab = Lab()
    plan = plan_nodes()
    was_up = lab.nodes() == plan and all(lab.node_healthy(n) for n in plan)
    lab.up(plan)
    return lab, was_up


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        lab = Lab(args.home)
        if args.command == "up":
            nodes = lab.up(plan_nodes(args.linux, args.ipv6_only, args.ipv4_only, args.windows, parse_hardware(args.hardware),
                                      bmc=not args.no_bmc, firewalld=args.firewalld))
            if args.inventory:
                lab.write_inventory(args.inventory)
            print(f"lab up: {len(nodes)} nodes ({', '.join(n.name for n in nodes)}); inventory {args.inventory or lab.home / 'inventory.yml'}")
        elif args.command == "down":
            removed = lab.down()
            print(f"lab down: removed {len(removed)} objects" + (f" ({', '.join(removed)})" if removed else ""))
        elif args.command == "status":
            print(json.dumps(lab.status(), indent=2))
        elif args.command == "inventory":
            if not lab.nodes():
                raise LabError("the lab is not up: run `fleetlab.py up` first")
            if args.path:
                print(lab.write_inventory(args.path))
            else:
                print("---\n" + to_yaml(inventory_data(lab.nodes(), lab.home, lab.passwords)))
        elif args.command == "reboot":
            lab.reboot(lab.node(args.node))
            print(f"node {args.node} rebooted")
    except LabError as exc:
        print(f"fleetlab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
