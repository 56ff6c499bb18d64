#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet benchmark (issues 9 and 15): fleet.firmware.update_fleet against the playbooks users write, on 10, 25 and 50 lab nodes.

Measured side by side in one run, on the same nodes with the same forks (= nodes):

* ``fleet.firmware.update_fleet`` (``-e fleet_waves=["100%"]``) against the two playbooks users
  write today: *naive*, ``ansible.builtin.copy`` each component, ``ansible.builtin.command`` its
  installer, ``ansible.builtin.file state=absent``; and *get_url*, ``ansible.builtin.get_url`` each
  component (with its sha256) from nginx on the controller's lab addresses, then the same command
  and removal. Wall time, controller CPU seconds and controller peak memory (nginx's included for
  get_url); every node's versions are removed before each run and checked after it.
* the no-op run (every node current) against ``ansible -m raw -a true`` over the same nodes and
  forks (the cost of reaching every node once), and, at the largest size, update_fleet's default waves.
* the floor: the bytes to move through the lab's measured veth throughput (iperf3 between the
  controller and a node) plus one SSH handshake per node.
* the lab itself: how long 50 nodes take to come up on this machine.

The repository has three fake components (64, 16 and 1 MiB): shell installers that write a version
file in the node's private state folder, followed after ``exit`` by random bytes up to their size
(incompressible: ssh -C must not make a copy look cheaper than it is).

Controller CPU and memory are those of a cgroup this benchmark makes for each run (removed after
it), holding ``ansible-playbook`` and everything it starts: its forks, the ssh clients and the
detached run engine, but not the nodes' sshd or agents. Nothing is asserted; the ratios are printed.

    FLEET_LAB_ID=21 build/venv/bin/python benchmarks/fleet.py [--sizes 10 25 50] [--rounds 1] [--forks N]
        [--skip-naive] [--skip-get-url] [--no-default-waves] [--quick] [--json out.json] [--write-doc docs/performance.md]
        [--plot docs/images/fleet-scaling.png]

Needs root (the lab), nginx and iperf3 (``make bench-deps``). Takes its lab up and down (also on failure or Ctrl-C).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "lab"), str(Path(__file__).resolve().parent)]

import fleetlab  # noqa: E402  pylint: disable=wrong-import-position
import spp_pki  # noqa: E402  pylint: disable=wrong-import-position
import benchlib  # noqa: E402  pylint: disable=wrong-import-position
import fleet_report as report  # noqa: E402  pylint: disable=wrong-import-position

MIB = report.MIB
VERSION = "2.0"
# name, size in bytes: what the issue asks for (a system ROM, a NIC firmware, a driver).
COMPONENTS = (("system-rom", 64 * MIB), ("nic-firmware", 16 * MIB), ("raid-driver", 1 * MIB))
NAIVE_STAGING = "/var/tmp/naive-firmware"
TOOLS = ("iperf3", "nginx")
COLLECTIONS = REPO / "build" / "collections"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
ANSIBLE = str(Path(sys.executable).parent / "ansible")
CGROUP_PREFIX = f"fleet-bench-{os.getpid()}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _die_with_parent() -> None:
    # The iperf3 server must not outlive the benchmark, even after SIGKILL of this process.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------------------------
# Repository and playbooks
# --------------------------------------------------------------------------------------------


def installer(name: str, state_dir: str, size: int) -> bytes:
    """A fake installer of exactly ``size`` bytes: writes its version, then random bytes sh never reads
    (it stops at ``exit``); random, so that no transport's compression shrinks them."""
    body = f"#!/bin/sh\necho {VERSION} > {state_dir}/{name}.version\necho {name} {VERSION} installed\nexit 0\n".encode()
    return body + os.urandom(max(0, size - len(body)))


def make_repository(folder: Path, state_dir: str, scale: int = 1) -> list[int]:
    """The three components and manifest.yml (docs/repository.md); returns each component's bytes.

    Each component is signed (a detached CMS ``.compsig`` by the lab signer), as the collection
    requires by default: update_fleet's measured time includes checking the signatures."""
    folder.mkdir(parents=True, exist_ok=True)
    entries, sizes = [], []
    for name, size in COMPONENTS:
        path = folder / f"{name}-{VERSION}.sh"
        data = installer(name, state_dir, size // scale)
        path.write_bytes(data)
        path.chmod(0o755)
        sizes.append(len(data))
        entries.append({"name": name, "version": VERSION, "kind": "firmware", "os": "linux", "file": path.name,
                        "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                        "detect": {"method": "file", "path": f"{state_dir}/{name}.version"},
                        "install": "script", "reboot": "none", "requires": [],
                        "signature": spp_pki.sign_file(path, spp_pki.shared_lab_pki().signer).name})
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": entries}, sort_keys=False))
    return sizes


def get_url_playbook(path: Path, repository: Path, port: int) -> Path:
    """The second way users pick: get_url each file from a plain HTTP server on the controller (with its
    sha256, as a careful user does), run each installer, remove the files (with become, as update_fleet)."""
    manifest = yaml.safe_load((repository / "manifest.yml").read_text())
    files = [{"file": c["file"], "sha256": c["sha256"]} for c in manifest["components"]]
    # An IPv6-only node reaches the controller over IPv6, the others over IPv4 (as they are reached).
    base = (f"{{{{ 'http://[{fleetlab.CONTROLLER_IPV6}]:{port}' if ':' in ansible_host "
            f"else 'http://{fleetlab.CONTROLLER_IPV4}:{port}' }}}}")
    play = {"name": "get_url firmware update", "hosts": "all", "gather_facts": False, "become": True, "tasks": [
        {"name": "Staging folder", "ansible.builtin.file": {"path": NAIVE_STAGING, "state": "directory", "mode": "0700"}},
        {"name": "Download each component", "ansible.builtin.get_url": {
            "url": base + "/{{ item.file }}", "dest": f"{NAIVE_STAGING}/{{{{ item.file }}}}", "mode": "0700",
            "checksum": "sha256:{{ item.sha256 }}"}, "loop": files},
        {"name": "Run each installer", "ansible.builtin.command": f"{NAIVE_STAGING}/{{{{ item.file }}}}", "loop": files},
        {"name": "Remove the files", "ansible.builtin.file": {"path": NAIVE_STAGING, "state": "absent"}},
    ]}
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


NGINX_CONF = """# fleet.py's own nginx (never the service): the get_url alternative's plain HTTP server.
# Workers as root: the repository may live in a checkout under /root, which nobody cannot enter.
user root;
worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {v4}:{port};
        listen [{v6}]:{port};
        root {www};
    }}
}}
"""


class StaticServer:
    """nginx serving the repository on the controller's lab addresses, started inside a run's cgroup
    (its CPU and memory are the controller's cost of the get_url way) and stopped when the run ends."""

    def __init__(self, prefix: Path, www: Path, port: int) -> None:
        self.prefix, self.www, self.port = prefix, www, port
        self.proc: t.Optional[subprocess.Popen] = None

    def start(self, enter: t.Callable[[], None]) -> None:
        self.prefix.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf = NGINX_CONF.format(prefix=self.prefix, v4=fleetlab.CONTROLLER_IPV4, v6=fleetlab.CONTROLLER_IPV6, port=self.port, www=self.www)
        (self.prefix / "nginx.conf").write_text(conf)
        argv = [shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin") or "nginx", "-p", str(self.prefix), "-c",
                str(self.prefix / "nginx.conf"), "-e", str(self.prefix / "error.log")]

        def child() -> None:
            enter()
            _die_with_parent()

        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                     stderr=subprocess.DEVNULL, preexec_fn=child)
        wait_for_port(str(fleetlab.CONTROLLER_IPV4), self.port, what="nginx", proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the master takes its workers down
            self.proc.wait(15)
        self.proc = None


def naive_playbook(path: Path, repository: Path) -> Path:
    """What users write today: copy each file, run each installer, remove the files (with become, as update_fleet)."""
    files = [f"{name}-{VERSION}.sh" for name, _size in COMPONENTS]
    play = {"name": "Naive firmware update", "hosts": "all", "gather_facts": False, "become": True, "tasks": [
        {"name": "Staging folder", "ansible.builtin.file": {"path": NAIVE_STAGING, "state": "directory", "mode": "0700"}},
        {"name": "Copy each component", "ansible.builtin.copy": {"src": f"{repository}/{{{{ item }}}}", "dest": f"{NAIVE_STAGING}/{{{{ item }}}}",
                                                                 "mode": "0700"}, "loop": files},
        {"name": "Run each installer", "ansible.builtin.command": f"{NAIVE_STAGING}/{{{{ item }}}}", "loop": files},
        {"name": "Remove the files", "ansible.builtin.file": {"path": NAIVE_STAGING, "state": "absent"}},
    ]}
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# Controller accounting: a cgroup per run
# --------------------------------------------------------------------------------------------


def cgroup2_root() -> t.Optional[Path]:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return Path(fields[4])
    return None


def cgroup1_memory_dir() -> t.Optional[Path]:
    """This process's cgroup v1 memory cgroup (hybrid hosts), under which ours is made (its limits still apply)."""
    mount = Path("/sys/fs/cgroup/memory")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _num, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and (mount / "memory.max_usage_in_bytes").exists():
            return mount / path.lstrip("/")
    return None


class Accounting:
    """CPU seconds and peak memory of one run's process tree, the detached engine included."""

    def __init__(self, label: str) -> None:
        self.dirs: list[Path] = []
        self.cpu_file: t.Optional[Path] = None
        self.peak_file: t.Optional[Path] = None
        root = cgroup2_root()
        if root is not None:
            self.cpu_file = self._make(root, label) / "cpu.stat"
            if (self.cpu_file.parent / "memory.peak").exists():
                self.peak_file = self.cpu_file.parent / "memory.peak"
        if self.peak_file is None and cgroup1_memory_dir() is not None:
            self.peak_file = self._make(cgroup1_memory_dir(), label) / "memory.max_usage_in_bytes"

    def _make(self, parent: Path, label: str) -> Path:
        path = parent / f"{CGROUP_PREFIX}-{label}"
        path.mkdir()
        self.dirs.append(path)
        return path

    def enter(self) -> None:
        """In the child before exec: join every cgroup, so that all it starts is counted."""
        for path in self.dirs:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs:
            try:
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def cpu_seconds(self) -> t.Optional[float]:
        return report.parse_cpu_stat(self.cpu_file.read_text()) if self.cpu_file else None

    def peak_mib(self) -> t.Optional[float]:
        return int(self.peak_file.read_text()) / MIB if self.peak_file else None

    def wait_idle(self, timeout: float) -> None:
        """Until only ssh's ControlPersist masters are left (the engine has stopped), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(command_of(pid) == "ssh" for pid in self.pids()):
                return
            time.sleep(0.2)

    def close(self) -> None:
        """End what is left (our own ssh masters, or everything after a Ctrl-C), then remove the cgroups."""
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
        for path in reversed(self.dirs):
            for _attempt in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                log(f"WARNING: could not remove cgroup {path}")

    @property
    def measurable(self) -> list[str]:
        """The figures this host lets us measure (a missing one is then a failure, not a dash)."""
        return ["wall_s"] + (["cpu_s"] if self.cpu_file else []) + (["peak_mib"] if self.peak_file else [])

    @property
    def description(self) -> str:
        if not self.dirs:
            return "no cgroup available: figures missing"
        parts = []
        if self.cpu_file:
            parts.append(f"CPU from cgroup v2 cpu.stat usage_usec ({self.cpu_file.parent.parent}/{CGROUP_PREFIX.rsplit('-', 1)[0]}-<pid>-<run>)")
        if self.peak_file and self.peak_file.name == "memory.peak":
            parts.append("peak memory from the same cgroup's memory.peak")
        elif self.peak_file:
            parts.append("peak memory from memory.max_usage_in_bytes of a cgroup v1 memory cgroup holding the same processes "
                         "(this host mounts cgroups hybrid: the memory controller is on v1; it counts the processes' RSS, "
                         "the page cache they brought in and their kernel memory)")
        return "; ".join(parts) + (". One cgroup per run, made by the benchmark and removed after it; it holds ansible-playbook and "
                                   "everything it starts (forks, ssh clients, the detached run engine), not the nodes' sshd or agents.")


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# Running a playbook
# --------------------------------------------------------------------------------------------


def ansible_env(control_dir: Path, times: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_TIMEOUT="60",
               # A control socket folder per run: each run starts with cold SSH connections, whoever ran before.
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir),
               # Seconds per task (benchmarks/callback_plugins/fleet_bench_times.py): where the time goes.
               ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="fleet_bench_times", FLEET_BENCH_TIMES=str(times))
    return env


def run_playbook(argv: list[str], label: str, logs: Path, hosts: list[str], server: t.Optional[StaticServer] = None,
                 adhoc: bool = False) -> dict:
    """Run ``argv`` in a cgroup of its own (with ``server``, started in it first); wall seconds, CPU seconds,
    peak MiB, ok/problem. ``adhoc``: an ``ansible -o`` command, whose per-host lines say how each host did."""
    accounting = Accounting(label)
    control_dir = logs / f"cp-{label}"
    control_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{label}.log"
    times = logs / f"{label}.times.json"
    try:
        if server is not None:
            server.start(accounting.enter)
        with open(log_path, "w", encoding="utf-8") as out:
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ansible_env(control_dir, times),  # pylint: disable=consider-using-with
                                    cwd=str(logs), preexec_fn=accounting.enter)
            try:
                proc.wait()
            except KeyboardInterrupt:
                # Ctrl-C or SIGTERM: ansible-playbook gets a Ctrl-C too, and the time to clean its nodes up.
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    pass
                raise
            wall = time.monotonic() - started
        if server is not None:
            server.stop()
        # The engine stops once the play ends; its last CPU seconds count too.
        accounting.wait_idle(20)
        result = {"wall_s": wall, "cpu_s": accounting.cpu_seconds(), "peak_mib": accounting.peak_mib(), "rc": proc.returncode,
                  "log": str(log_path), "measurable": accounting.measurable}
    finally:
        if server is not None:
            server.stop()
        accounting.close()
        shutil.rmtree(control_dir, ignore_errors=True)
    output = log_path.read_text()
    problems = report.adhoc_problems(output, hosts) if adhoc else report.recap_problems(report.parse_recap(output), hosts)
    if proc.returncode != 0 and not problems:
        problems.append(f"rc={proc.returncode}")
    result.update(ok=not problems, problem="; ".join(problems[:3]), accounting=accounting.description,
                  tasks=json.loads(times.read_text()) if times.exists() else {})
    return result


# --------------------------------------------------------------------------------------------
# The lab's nodes
# --------------------------------------------------------------------------------------------


def plan_for(size: int) -> tuple[int, int]:
    """Dual-stack and IPv6-only nodes for ``size`` nodes: one IPv6-only in five, at least one from 2 nodes."""
    ipv6_only = max(1, size // 5) if size >= 2 else 0
    return size - ipv6_only, ipv6_only


def pick(nodes: list[fleetlab.Node], size: int) -> list[fleetlab.Node]:
    dual, ipv6_only = plan_for(size)
    return [n for n in nodes if n.family == "dual"][:dual] + [n for n in nodes if n.family == "ipv6"][:ipv6_only]


def write_inventory(lab: fleetlab.Lab, nodes: list[fleetlab.Node], path: Path) -> Path:
    data = fleetlab.inventory_data(nodes, lab.home, lab.passwords)
    fleetlab.write_file(path, "---\n" + fleetlab.to_yaml(data) + "\n", 0o600)
    return path


def on_nodes(lab: fleetlab.Lab, nodes: list[fleetlab.Node], script: str) -> dict[str, str]:
    """Run ``script`` (sh) in every node at once; node name -> stdout."""
    def one(node: fleetlab.Node) -> tuple[str, str]:
        return node.name, lab.node_run(node, ["sh", "-c", script], check=False).stdout

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        return dict(pool.map(one, nodes))


def reset_nodes(lab: fleetlab.Lab, nodes: list[fleetlab.Node]) -> None:
    state = lab.home / "node"
    on_nodes(lab, nodes, f"rm -f {state}/*.version; rm -rf {NAIVE_STAGING}")


def not_updated(lab: fleetlab.Lab, nodes: list[fleetlab.Node]) -> list[str]:
    """Nodes where a component's version file is not the new version (empty: every node updated)."""
    state = lab.home / "node"
    script = " ; ".join(f"cat {state}/{name}.version 2>/dev/null || echo missing" for name, _size in COMPONENTS)
    return [name for name, out in on_nodes(lab, nodes, script).items() if out.split() != [VERSION] * len(COMPONENTS)]


# --------------------------------------------------------------------------------------------
# The floor: veth throughput and one SSH handshake
# --------------------------------------------------------------------------------------------


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def free_dual_port() -> int:
    """A TCP port free on both controller lab addresses (briefly bound, then released)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET6) as six, socket.socket(socket.AF_INET) as four:
            six.bind((str(fleetlab.CONTROLLER_IPV6), 0))
            port = six.getsockname()[1]
            try:
                four.bind((str(fleetlab.CONTROLLER_IPV4), port))
            except OSError:
                continue
            return port
    raise RuntimeError("no TCP port is free on both controller lab addresses")


def measure_floor(lab: fleetlab.Lab, node: fleetlab.Node, seconds: int, handshakes: int = 7) -> dict:
    """iperf3 between the controller and ``node`` (both directions, one stream), and ``ssh node true``."""
    address = str(fleetlab.CONTROLLER_IPV4)
    port = free_port(address)
    # Our own iperf3 server on the controller's lab address (never the iperf3 service), a child that dies with us.
    server = subprocess.Popen(["iperf3", "-s", "-B", address, "-p", str(port)], stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                              stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        wait_for_port(address, port)
        client = ["ip", "netns", "exec", node.netns, "iperf3", "-c", address, "-p", str(port), "-t", str(seconds), "--json"]
        # -R: the server (controller) sends, as the controller does when it delivers the components.
        to_node = report.parse_iperf3(subprocess.run(client + ["-R"], capture_output=True, text=True, check=False).stdout)
        to_controller = report.parse_iperf3(subprocess.run(client, capture_output=True, text=True, check=False).stdout)
    finally:
        server.terminate()
        server.wait(10)
    times = [ssh_true(lab, node) for _attempt in range(handshakes)]
    return {"node": node.name, "bytes_per_s": to_node, "reverse_bytes_per_s": to_controller,
            "handshake_s": statistics.median(times), "handshakes_s": times}


def merge_floors(first: dict, second: dict) -> dict:
    """The better throughput of two measurements (the floor must not be raised by a busy moment)."""
    merged = dict(first)
    for key in ("bytes_per_s", "reverse_bytes_per_s"):
        merged[key] = max(first[key], second[key])
        merged[f"{key}_measured"] = [first[key], second[key]]
    merged["handshakes_s"] = first["handshakes_s"] + second["handshakes_s"]
    merged["handshake_s"] = statistics.median(merged["handshakes_s"])
    return merged


def wait_for_port(address: str, port: int, timeout: float = 10.0, what: str = "iperf3",
                  proc: t.Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with rc={proc.returncode} before listening on {address}:{port}")
        with socket.socket(socket.AF_INET) as sock:
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {address}:{port}")


def ssh_true(lab: fleetlab.Lab, node: fleetlab.Node) -> float:
    """One fresh SSH connection, authentication and ``true`` (no multiplexing)."""
    argv = ["ssh", "-i", str(lab.home / "ssh" / "id_ed25519"), "-o", f"UserKnownHostsFile={lab.home / 'ssh' / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
            f"root@{node.ansible_host}", "true"]
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def environment() -> dict:
    from ansible.release import __version__ as ansible_version  # pylint: disable=import-outside-toplevel

    return {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(), "ansible_core": ansible_version,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": os.getloadavg()[0]}


class Bench:
    """One benchmark run: the lab, the repository, the measurements."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.lab = fleetlab.Lab()
        self.runs: list[dict] = []
        self.nodes: list[fleetlab.Node] = []
        self.repository = workdir / "repository"
        self.naive = workdir / "naive.yml"
        self.get_url = workdir / "get_url.yml"
        self.http_port = 0

    def lab_up(self) -> dict:
        biggest = max(self.args.sizes)
        dual, ipv6_only = plan_for(biggest)
        if self.lab.nodes():
            log("the lab was up: taking it down first, to time a lab up from nothing")
            self.lab.down()
        log(f"lab up: {biggest} nodes ({dual} dual-stack, {ipv6_only} IPv6-only)")
        started = time.monotonic()
        # No BMCs: Redfish detection is not what this measures, and 50 of them cost about 1 GB.
        self.nodes = self.lab.up(fleetlab.plan_nodes(linux=dual, ipv6_only=ipv6_only, windows=0, bmc=False))
        up_s = time.monotonic() - started
        log(f"lab up in {up_s:.1f} s ({up_s / biggest:.2f} s per node)")
        return {"nodes": biggest, "dual": dual, "ipv6_only": ipv6_only, "up_s": up_s}

    def measure(self, size: int, round_no: int, way: str, nodes: list[fleetlab.Node], inventory: Path, reset: bool = True) -> dict:
        forks = self.args.forks or size
        if reset:
            reset_nodes(self.lab, nodes)
        tag = f"bench-{size}-{round_no}-{WAY_SLUG[way]}"
        server = None
        if way == report.NAIVE:
            argv = [ANSIBLE_PLAYBOOK, "-i", str(inventory), "-f", str(forks), str(self.naive)]
        elif way == report.GET_URL:
            argv = [ANSIBLE_PLAYBOOK, "-i", str(inventory), "-f", str(forks), str(self.get_url)]
            server = StaticServer(self.workdir / f"nginx-{tag}", self.repository, self.http_port)
        elif way == report.RAW:
            argv = [ANSIBLE, "all", "-i", str(inventory), "-f", str(forks), "-o", "-m", "ansible.builtin.raw", "-a", "true"]
        else:
            waves = '["100%"]' if way != report.WAVES else '[1, "10%", "100%"]'
            named = ["-e", "fleet_firewall_backend=iptables"] if way == report.NOOP_NAMED else []
            argv = [ANSIBLE_PLAYBOOK, "-i", str(inventory), "-f", str(forks), "fleet.firmware.update_fleet",
                    "-e", f"fleet_repository={self.repository}", "-e", f"fleet_run_tag={tag}",
                    "-e", f"fleet_trust={spp_pki.shared_lab_pki().anchors}",
                    "-e", f"fleet_run_dir={self.workdir / 'runs' / tag}", "-e", f'{{"fleet_waves": {waves}}}'] + named
        log(f"N={size} round {round_no}: {way} (forks {forks}) ...")
        result = run_playbook(argv, tag, self.logs, [n.name for n in nodes], server=server, adhoc=way == report.RAW)
        if result["ok"] and way in MOVES_COMPONENTS:
            stale = not_updated(self.lab, nodes)
            if stale:
                result.update(ok=False, problem=f"not updated afterwards: {', '.join(stale[:5])}")
        result.update(size=size, round=round_no, way=way, forks=forks)
        ledger = self.workdir / "runs" / tag / "ledger"
        if ledger.is_dir():
            result["stages"] = report.stage_seconds([json.loads(line) for path in ledger.glob("*.jsonl")
                                                     for line in path.read_text().splitlines() if line.strip()])
        log(f"  {way}: {result['wall_s']:.1f} s wall, {report.fmt(result['cpu_s'], ' s')} CPU, "
            f"{report.fmt(result['peak_mib'], ' MiB', 0)} peak, {'ok' if result['ok'] else 'FAILED ' + result['problem']}")
        shutil.rmtree(self.workdir / "runs" / tag, ignore_errors=True)
        self.runs.append(result)
        return result

    def measure_size(self, size: int) -> None:
        nodes = pick(self.nodes, size)
        inventory = write_inventory(self.lab, nodes, self.workdir / f"inventory-{size}.yml")
        skipped = {report.NAIVE: self.args.skip_naive, report.GET_URL: self.args.skip_get_url}
        for round_no in range(1, self.args.rounds + 1):
            # The order reverses every other round: no way always meets the warmer (or busier) machine.
            order = [report.NAIVE, report.GET_URL, report.FLEET, report.RAW]
            for way in (order if round_no % 2 else order[::-1]):
                if skipped.get(way):
                    continue
                result = self.measure(size, round_no, way, nodes, inventory, reset=way != report.RAW)
                if way == report.FLEET and result["ok"]:
                    # Everything is current now: the same run again has nothing to do.
                    self.measure(size, round_no, report.NOOP, nodes, inventory, reset=False)
        if self.args.default_waves and size == max(self.args.sizes):
            self.measure(size, 1, report.WAVES, nodes, inventory)
        if self.args.diagnose and size == max(self.args.sizes):
            # Every node is current: the no-op again, the nodes told their firewall backend instead of detecting it.
            if not_updated(self.lab, nodes):
                self.measure(size, 1, report.FLEET, nodes, inventory)
            self.measure(size, 1, report.NOOP_NAMED, nodes, inventory, reset=False)

    def run(self) -> dict:
        results: dict = {"environment": environment(), "runs": self.runs, "notes": []}
        results["settings"] = {"sizes": self.args.sizes, "rounds": self.args.rounds, "forks": self.args.forks or "nodes",
                               "waves_label": '`["100%"]` (every node at once)', "command": command_line(),
                               "repository_bytes": 0}
        started = time.monotonic()
        try:
            results["lab"] = self.lab_up()
            state_dir = str(self.lab.home / "node")
            sizes = make_repository(self.repository, state_dir, 16 if self.args.quick else 1)
            results["settings"].update(repository_bytes=sum(sizes), component_bytes=sizes)
            naive_playbook(self.naive, self.repository)
            self.http_port = free_dual_port()
            get_url_playbook(self.get_url, self.repository, self.http_port)
            log("the floor: iperf3 and ssh handshakes ...")
            results["floor"] = measure_floor(self.lab, self.nodes[0], *((1, 3) if self.args.quick else (5, 7)))
            results["floor"]["repository_mib"] = results["settings"]["repository_bytes"] / MIB
            log(f"  {results['floor']['bytes_per_s'] / MIB:.0f} MiB/s to the node, {results['floor']['reverse_bytes_per_s'] / MIB:.0f} "
                f"MiB/s back, ssh handshake {results['floor']['handshake_s'] * 1000:.0f} ms")
            for size in sorted(self.args.sizes):
                self.measure_size(size)
            reset_nodes(self.lab, self.nodes)
            if not self.args.quick:
                # Once more at the end: neighbours' load moves the link's throughput; the floor takes the better figure.
                again = measure_floor(self.lab, self.nodes[0], 5)
                results["floor"] = merge_floors(results["floor"], again)
        finally:
            results["environment"]["load_after"] = os.getloadavg()[0]
            results["environment"]["elapsed_s"] = time.monotonic() - started
            results["environment"]["accounting"] = next((r.pop("accounting") for r in self.runs if "accounting" in r), "no run measured")
            started = time.monotonic()
            if not self.args.keep_lab:
                self.lab.down()
                results.setdefault("lab", {})["down_s"] = time.monotonic() - started
            shutil.rmtree(self.repository, ignore_errors=True)
            shutil.rmtree(self.workdir / "runs", ignore_errors=True)
        return results


WAY_SLUG = {report.NAIVE: "naive", report.GET_URL: "get-url", report.FLEET: "fleet", report.NOOP: "noop", report.RAW: "raw",
            report.WAVES: "waves", report.NOOP_NAMED: "noop-ipt"}
# The ways after which every node must carry the new versions.
MOVES_COMPONENTS = (report.NAIVE, report.GET_URL, report.FLEET, report.NOOP, report.WAVES, report.NOOP_NAMED)


def measurements(results: dict) -> dict:
    """Every figure measured, by name (benchmarks/README.md: what the smoke test checks): each run's wall
    time and, where this host can measure them, its controller CPU and peak memory; the floor's parts."""
    found: dict = {}
    for run in results["runs"]:
        for key in run.get("measurable", ["wall_s"]):
            found[f"N={run['size']} round {run['round']} {run['way']} {key}"] = run.get(key)
    floor = results.get("floor", {})
    for key in ("bytes_per_s", "reverse_bytes_per_s", "handshake_s"):
        if key in floor:
            found[f"floor {key}"] = floor[key]
    return found


def command_line() -> str:
    return "FLEET_LAB_ID=<id> build/venv/bin/python benchmarks/fleet.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def parse_args(argv: t.Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50], help="numbers of nodes (default 10 25 50; at most 200)")
    parser.add_argument("--forks", type=int, default=0, help="Ansible forks for both playbooks (default: the number of nodes)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per size; figures are medians, ratios medians of per-round ratios")
    parser.add_argument("--skip-naive", action="store_true", help="do not measure the naive playbook")
    parser.add_argument("--skip-get-url", action="store_true", help="do not measure the get_url playbook")
    parser.add_argument("--no-default-waves", dest="default_waves", action="store_false",
                        help="do not also measure update_fleet's default waves at the largest size")
    parser.add_argument("--no-diagnose", dest="diagnose", action="store_false",
                        help="do not also measure, at the largest size, the no-op with fleet_firewall_backend=iptables (no detection)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test (make test): 2 nodes (one IPv6-only), components 1/16 of their size, 1 round, the floor once")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--from-json", type=Path, help="measure nothing: report the results of an earlier --json")
    parser.add_argument("--write-doc", type=Path, help="replace the 'Fleet update' section of this Markdown file")
    parser.add_argument("--plot", type=Path, help="draw the scaling plot (PNG) here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.default_waves, args.diagnose = [2], 1, False, False
    if any(size < 1 or size > fleetlab.MAX_NODES for size in args.sizes):
        parser.error(f"--sizes must be 1 to {fleetlab.MAX_NODES}, got {args.sizes}")
    if args.rounds < 1 or args.forks < 0:
        parser.error("--rounds must be >= 1 and --forks >= 0")
    return args


def _interrupted(signum: int, _frame: t.Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: t.Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, even when started in the background with it ignored) end the run through its cleanup.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    if args.plot:
        # Before measuring: the plot is drawn at the end of a run that may take a quarter of an hour.
        benchlib.require_python("fleet benchmark", "matplotlib", "--plot")
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    elif os.geteuid() != 0:
        print("fleet benchmark: the lab needs root", file=sys.stderr)
        return 2
    else:
        benchlib.require_tools("fleet benchmark", TOOLS)
        workdir = REPO / "build" / f"bench-fleet{fleetlab.LAB_ID}"
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "logs").mkdir(parents=True)
        try:
            results = Bench(args, workdir).run()
        except KeyboardInterrupt as exc:
            print(f"fleet benchmark interrupted ({exc}): the lab is down, the cgroups and the iperf3 server are gone", file=sys.stderr)
            return 130
    summary = report.summarize(results)
    print("\n".join(report.main_table(summary) + [""] + report.per_node_table(summary)))
    print(report.headline(summary))
    if args.json:
        results["measurements"] = measurements(results)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    plot_link = None
    if args.plot:
        report.plot(results, args.plot)
        print(f"plot: {args.plot}")
        if args.write_doc:
            plot_link = os.path.relpath(args.plot.resolve(), args.write_doc.resolve().parent)
    if args.write_doc:
        report.write_doc(args.write_doc, report.markdown(results, plot_link))
        print(f"wrote the '{report.HEADING}' section of {args.write_doc}")
    return 0 if all(r.get("ok") for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
