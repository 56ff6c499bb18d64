#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the run's engine (issue 5) against nginx and ``python3 -m http.server``.

Everything is measured in one run, over the lab's veth links: the servers listen on the
controller's lab addresses, the clients are ``curl`` processes inside the lab nodes' network
namespaces (half of them over IPv4, half over IPv6), with the same files and the same clients
for every server.

1. Aggregate throughput: one 1 GiB component to 16 and to 64 concurrent clients. Every client
   downloads for ``--duration`` seconds (``curl --max-time``, so no client finishes early);
   the aggregate is the sum of the clients' rates. Servers: the engine over plain HTTP
   (``sendfile``) and over TLS, nginx (the Debian package; ``sendfile on``, two workers) over
   plain HTTP and TLS with a certificate of the same kind (ECDSA P-256), and
   ``python3 -m http.server`` for reference. Each engine is measured right next to its nginx
   (the machine is shared: neighbours see the same load), who goes first alternates from round
   to round; the ratios are the median of the per-round ratios.
2. Peak RSS of the engine (``VmHWM`` of its process, from /proc): a fresh engine per case
   serves a 1 GiB and a 4 GiB (sparse) component in full, cut into 16 concurrent Range
   requests, over plain HTTP and over TLS.
3. Time to first byte of a 1 KiB component: 64 clients at once, each making
   ``--ttfb-requests`` requests, every one on a fresh connection (``Connection: close``).

This is not a test: nothing is asserted; the ratios are printed next to the targets of the
issue. Needs root (the lab). Run it with the lab instance of your choice::

    FLEET_LAB_ID=6 build/venv/bin/python benchmarks/bench_engine.py [--duration 5] [--rounds 1]
        [--json build/bench-engine.json] [--write-doc docs/performance.md]

The files live in a folder under build/ that is removed at the end; nginx and the HTTP
servers are children of this process with their own configuration, pid file and ports (never
the system's nginx service), and they get SIGTERM if this process dies.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The collection as Ansible sees it (a link to this tree, made by `make collection`) and the lab.
sys.path[:0] = [str(REPO / "build" / "collections"), str(REPO / "tests" / "lab"), str(Path(__file__).resolve().parent)]

import fleetlab  # noqa: E402  pylint: disable=wrong-import-position
import benchlib  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, tls  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024
GIB = 1024 * MIB
V4 = str(fleetlab.CONTROLLER_IPV4)
V6 = str(fleetlab.CONTROLLER_IPV6)
FILES = {"big": GIB, "huge": 4 * GIB, "small": 1024}
# --quick (the smoke test of make test): the same measurements on tiny files, in well under a minute.
QUICK_FILES = {"big": 16 * MIB, "huge": 64 * MIB, "small": 1024}
TOOLS = ("nginx", "curl")
WRITE_OUT = "%{http_code} %{size_download} %{time_total} %{time_starttransfer} %{time_pretransfer}\\n"
TARGETS = {"plain": 0.9, "tls": 0.8}
NODE_PYTHON = "/usr/bin/python3"


def _die_with_parent() -> None:
    # A child server must not outlive the benchmark, even after SIGKILL of this process.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port free on both controller lab addresses (briefly bound, then released)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET6) as six, socket.socket(socket.AF_INET) as four:
            six.bind((V6, 0))
            port = six.getsockname()[1]
            try:
                four.bind((V4, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no TCP port is free on both controller lab addresses")


def wait_port(address: str, port: int, proc: t.Optional[subprocess.Popen] = None, timeout: float = 15.0) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with rc={proc.returncode} before listening on [{address}]:{port}")
        with socket.socket(family) as sock:
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on [{address}]:{port} after {timeout} s")


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def proc_memory(pid: int) -> dict:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in MiB, from /proc/PID/status."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _sep, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


# --------------------------------------------------------------------------------------------
# The servers
# --------------------------------------------------------------------------------------------


class Server:
    """A server under test: where its files are and which extra curl arguments it needs."""

    label = ""
    tls = False

    def start(self) -> "Server":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def url(self, key: str, address: str) -> str:
        raise NotImplementedError

    def curl_args(self) -> list:
        return []

    def curl_stdin(self) -> str:
        """What curl reads on its stdin (the engine's bearer token header); nothing for the others."""
        return ""


class EngineServer(Server):
    """The engine as the deploy action will run it: a daemon started by ``attach_or_start``."""

    def __init__(self, workdir: Path, files: dict, use_tls: bool, name: str, shared: Path) -> None:
        self.tls = use_tls
        self.label = "engine TLS" if use_tls else "engine HTTP"
        self.run_dir = workdir / f"run-{name}"
        self.files = files
        self.handle: t.Optional[engine.EngineHandle] = None
        self.shas: dict = {}
        self.header = ""
        # The clients run inside the nodes, which do not see the checkout when it lives under a folder
        # they privatize (/tmp, /root, /home...): their CA goes into the lab's shared folder.
        self.ca_copy = shared / f"engine-{name}-ca.pem"

    def start(self) -> "EngineServer":
        # Watch this process: if the benchmark dies, the engine stops by itself.
        settings = engine.EngineSettings(address=[V4, V6], port=0, tls=self.tls, watch_pid=os.getpid(), idle_timeout=900.0)
        self.handle = engine.attach_or_start(str(self.run_dir), settings)
        token = self.handle.register_node("bench")
        self.shas = {key: self.handle.register_component(str(path), node_id="bench") for key, path in self.files.items()}
        # The token goes to curl on its stdin (curl -H @-): never in argv, never in a file a node may not see.
        self.header = f"Authorization: Bearer {token}\n"
        if self.tls:
            shutil.copyfile(self.handle.ca_path, self.ca_copy)
        return self

    @property
    def pid(self) -> int:
        assert self.handle is not None
        return self.handle.pid

    def stop(self) -> None:
        if self.handle is not None:
            pid = self.handle.pid
            # The daemon is this process's child: once it exits it is a zombie until reaped, which keeps
            # its start time, so the handle's own wait (up to 10 s) would take it for alive. Ask, then reap.
            self.handle.stop(timeout=0)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # not our child (attached to): its parent reaps it
                deadline = time.monotonic() + 10
                while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                    time.sleep(0.05)
            self.handle = None

    def url(self, key: str, address: str) -> str:
        assert self.handle is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host(address)}:{self.handle.port}/v1/components/{self.shas[key]}"

    def curl_args(self) -> list:
        assert self.handle is not None
        return ["-H", "@-"] + (["--cacert", str(self.ca_copy)] if self.tls else [])

    def curl_stdin(self) -> str:
        return self.header


NGINX_CONF = """worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {v4}:{port}{ssl};
        listen [{v6}]:{port}{ssl};
        root {www};
{tls_lines}    }}
}}
"""


class NginxServer(Server):
    """Our own nginx instance: own configuration, pid file and port, a child of this process."""

    def __init__(self, workdir: Path, www: Path, cert: t.Optional[tuple]) -> None:
        self.tls = cert is not None
        self.label = "nginx TLS" if self.tls else "nginx HTTP"
        self.prefix = workdir / ("nginx-tls" if self.tls else "nginx-plain")
        self.www, self.cert = www, cert
        self.port = 0
        self.proc: t.Optional[subprocess.Popen] = None

    def start(self) -> "NginxServer":
        self.prefix.mkdir(mode=0o700)
        self.port = free_port()
        tls_lines = ""
        if self.cert:
            tls_lines = f"        ssl_certificate {self.cert[0]};\n        ssl_certificate_key {self.cert[1]};\n"
        conf = NGINX_CONF.format(prefix=self.prefix, v4=V4, v6=V6, port=self.port, ssl=" ssl" if self.tls else "",
                                 www=self.www, tls_lines=tls_lines)
        (self.prefix / "nginx.conf").write_text(conf)
        argv = [shutil.which("nginx", path="/usr/sbin:/usr/bin") or "nginx", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                "-e", str(self.prefix / "error.log")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                     stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        wait_port(V4, self.port, self.proc)
        wait_port(V6, self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the master takes its workers down
            self.proc.wait(15)
        self.proc = None

    def url(self, key: str, address: str) -> str:
        return f"{'https' if self.tls else 'http'}://{host(address)}:{self.port}/{key}.bin"

    def curl_args(self) -> list:
        return ["--cacert", self.cert[2]] if self.cert else []


class PythonHTTPServer(Server):
    """``python3 -m http.server``, once per controller address (it binds one address)."""

    label = "python3 -m http.server"

    def __init__(self, www: Path) -> None:
        self.www = www
        self.port = 0
        self.procs: list = []

    def start(self) -> "PythonHTTPServer":
        self.port = free_port()
        for address in (V4, V6):
            argv = [NODE_PYTHON, "-m", "http.server", "-b", address, "-d", str(self.www), str(self.port)]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                    stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            self.procs.append(proc)
            wait_port(address, self.port, proc)
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
        self.procs = []

    def url(self, key: str, address: str) -> str:
        return f"http://{host(address)}:{self.port}/{key}.bin"


# --------------------------------------------------------------------------------------------
# The clients: curl inside the lab nodes
# --------------------------------------------------------------------------------------------


class Clients:
    """Client slots spread over the lab nodes: half reach the controller over IPv4, half over IPv6."""

    def __init__(self, lab: fleetlab.Lab) -> None:
        self.lab = lab
        nodes = {n.name: n for n in lab.nodes()}
        # lin01 and win01 over IPv4, lin02 (dual-stack) and v6n01 (IPv6-only) over IPv6.
        self.slots = [(nodes["lin01"], V4), (nodes["lin02"], V6), (nodes["v6n01"], V6), (nodes["win01"], V4)]

    def reach(self, server: Server, timeout: float = 30.0) -> None:
        """Until every client slot gets an answer from ``server`` (a lab just up may still be settling its
        IPv6 addresses): no measurement starts with a client that cannot connect yet."""
        for node, address in self.slots:
            argv = self.lab.node_exec_argv(node, ["curl", "-sS", "-g", "-o", "/dev/null", "--max-time", "2",
                                                  "--retry", str(int(timeout / 2)), "--retry-all-errors", "--retry-delay", "1"]
                                           + server.curl_args() + [server.url("small", address)])
            proc = subprocess.run(argv, input=server.curl_stdin(), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{node.name} cannot reach {server.label} at {address}: {proc.stderr.strip()[-300:]}")

    def run(self, count: int, argv_for: t.Callable[[str], list], stdin: str = "") -> list:
        """Start ``count`` clients at once, each given ``stdin``; return every transfer's write-out fields."""
        procs = []
        for index in range(count):
            node, address = self.slots[index % len(self.slots)]
            argv = self.lab.node_exec_argv(node, ["curl", "-sS", "-g", "-w", WRITE_OUT] + argv_for(address))
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                    stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
            # Written before the next client starts (a line, far below a pipe's buffer): no client waits for another.
            proc.stdin.write(stdin)
            proc.stdin.close()
            proc.stdin = None
            procs.append(proc)
        transfers = []
        for proc in procs:
            out, err = proc.communicate(timeout=900)
            # 28: --max-time reached, which is how the throughput clients end.
            if proc.returncode not in (0, 28):
                raise RuntimeError(f"a client failed (rc={proc.returncode}): {err.strip()[-300:]}")
            for line in out.splitlines():
                code, size, total, first_byte, pretransfer = line.split()
                transfers.append({"code": code, "bytes": int(size), "time": float(total), "ttfb": float(first_byte),
                                  "pretransfer": float(pretransfer), "rc": proc.returncode})
        return transfers


def throughput(clients: Clients, server: Server, count: int, duration: float) -> dict:
    """Aggregate MiB/s of ``count`` clients each downloading the 1 GiB component for ``duration``."""
    def argv_for(address: str) -> list:
        return ["-o", "/dev/null", "--max-time", str(duration)] + server.curl_args() + [server.url("big", address)]

    transfers = clients.run(count, argv_for, server.curl_stdin())
    # A client whose --max-time ran out before the response began (under load, a TLS handshake
    # can wait that long) got nothing from the server: it counts, with 0 bytes.
    stalled = [x for x in transfers if x["code"] == "000" and x["rc"] == 28]
    bad = [x for x in transfers if x["code"] != "200" and x not in stalled]
    if bad or len(stalled) == count:
        raise RuntimeError(f"{server.label}: {len(bad) or len(stalled)} of {count} clients got HTTP {(bad or stalled)[0]['code']}")
    early = sum(1 for x in transfers if x["bytes"] == FILES["big"])
    rate = sum(x["bytes"] / x["time"] for x in transfers if x["time"] > 0) / MIB
    return {"mib_s": rate, "bytes": sum(x["bytes"] for x in transfers), "finished_early": early, "stalled": len(stalled)}


def ranged_download(clients: Clients, server: Server, key: str, parts: int = 16) -> None:
    """Download component ``key`` once in full, as ``parts`` concurrent Range requests."""
    size = FILES[key]
    bounds = [(i * size // parts, (i + 1) * size // parts - 1) for i in range(parts)]
    pending = iter(bounds)

    def argv_for(address: str) -> list:
        first, last = next(pending)
        return ["-o", "/dev/null", "--max-time", "600", "-r", f"{first}-{last}"] + server.curl_args() + [server.url(key, address)]

    transfers = clients.run(parts, argv_for, server.curl_stdin())
    if any(x["code"] != "206" for x in transfers) or sum(x["bytes"] for x in transfers) != size:
        raise RuntimeError(f"{server.label}: the ranged download of the {key} component is incomplete: {transfers[:2]}")


def first_bytes(clients: Clients, server: Server, count: int, requests: int) -> dict:
    """TTFB of the 1 KiB component: ``count`` clients, ``requests`` fresh connections each."""
    def argv_for(address: str) -> list:
        urls = []
        for _index in range(requests):
            urls += ["-o", "/dev/null", server.url("small", address)]
        return ["-H", "Connection: close", "--max-time", "60"] + server.curl_args() + urls

    transfers = clients.run(count, argv_for, server.curl_stdin())
    if any(x["code"] != "200" or x["bytes"] != FILES["small"] for x in transfers):
        raise RuntimeError(f"{server.label}: a 1 KiB request failed")
    ttfb = sorted(x["ttfb"] * 1000 for x in transfers)
    answer = sorted((x["ttfb"] - x["pretransfer"]) * 1000 for x in transfers)
    return {"requests": len(transfers), "ttfb_median_ms": statistics.median(ttfb), "ttfb_p95_ms": _percentile(ttfb, 95),
            "ttfb_max_ms": ttfb[-1], "answer_median_ms": statistics.median(answer), "answer_p95_ms": _percentile(answer, 95)}


def _percentile(values: list, pct: float) -> float:
    return values[min(len(values) - 1, int(round(pct / 100 * (len(values) - 1))))]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def make_files(workdir: Path) -> tuple:
    """www/{big,huge,small}.bin readable by nginx's workers (nobody); big is random data, huge
    is sparse (its size is what matters for memory, and it costs no disk)."""
    www = workdir / "www"
    www.mkdir(mode=0o755)
    paths = {key: www / f"{key}.bin" for key in FILES}
    with open(paths["big"], "wb") as handle:
        for _chunk in range(max(1, FILES["big"] // (64 * MIB))):
            handle.write(os.urandom(min(64 * MIB, FILES["big"])))
    with open(paths["huge"], "wb") as handle:
        handle.write(os.urandom(min(MIB, FILES["huge"])))
        handle.truncate(FILES["huge"])
    paths["small"].write_bytes(os.urandom(FILES["small"]))
    for path in paths.values():
        path.chmod(0o644)
    return www, paths


def nginx_certificate(workdir: Path, shared: Path) -> tuple:
    """A server certificate for nginx from a CA of its own, of the same kind as the engine's; the
    certificate the clients check it with is copied into the lab's shared folder (the nodes see it)."""
    pki = workdir / "nginx-pki"
    tls.create_ca(str(pki), "bench-nginx")
    cert, key = tls.issue(str(pki), "nginx", "server", [V4, V6])
    client_copy = shared / "nginx-cert.pem"
    shutil.copyfile(cert, client_copy)
    return cert, key, str(client_copy)


def round_order(servers: list, round_no: int) -> list:
    """The order of one round: each engine right next to its nginx (so their ratio compares
    moments of the same machine load), who goes first alternating from round to round."""
    plain, tls_pair = servers[0:2], servers[3:5]
    pairs = [plain, tls_pair] if round_no % 2 == 0 else [tls_pair[::-1], plain[::-1]]
    return pairs[0] + [servers[2]] + pairs[1]


def run_throughput(clients: Clients, servers: list, counts: list, duration: float, rounds: int) -> dict:
    results: dict = {}
    for count in counts:
        for round_no in range(rounds):
            for server in round_order(servers, round_no):
                measured = throughput(clients, server, count, duration)
                if isinstance(server, EngineServer):
                    measured.update(proc_memory(server.pid))
                results.setdefault(str(count), {}).setdefault(server.label, []).append(measured)
                note = f" ({measured['stalled']} clients got no response within {duration:g} s)" if measured["stalled"] else ""
                print(f"  {count:3d} clients  {server.label:24s} {measured['mib_s']:9.0f} MiB/s{note}", flush=True)
    return results


def run_memory(clients: Clients, workdir: Path, paths: dict, shared: Path, keys: tuple = ("big", "huge")) -> list:
    rows = []
    for key in keys:
        for use_tls in (False, True):
            server = EngineServer(workdir, {key: paths[key]}, use_tls, f"mem-{key}-{'tls' if use_tls else 'plain'}", shared).start()
            try:
                before = proc_memory(server.pid)
                ranged_download(clients, server, key)
                after = proc_memory(server.pid)
            finally:
                server.stop()
            rows.append({"file_gib": FILES[key] / GIB, "file": size_label(FILES[key]), "tls": use_tls, "rss_before_mib": before["VmRSS"],
                         "peak_rss_mib": after["VmHWM"]})
            print(f"  engine {'TLS ' if use_tls else 'HTTP'} {size_label(FILES[key])}: peak RSS {after['VmHWM']:.1f} MiB "
                  f"(after registration {before['VmRSS']:.1f} MiB)", flush=True)
    return rows


def run_ttfb(clients: Clients, servers: list, count: int, requests: int) -> dict:
    results = {}
    for server in servers:
        results[server.label] = first_bytes(clients, server, count, requests)
        row = results[server.label]
        print(f"  {server.label:24s} median {row['ttfb_median_ms']:.1f} ms  p95 {row['ttfb_p95_ms']:.1f} ms", flush=True)
    return results


def environment() -> dict:
    def first_line(argv: list) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else "?"

    return {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "openssl": __import__("ssl").OPENSSL_VERSION, "nginx": first_line(["nginx", "-v"]),
            "curl": first_line(["curl", "--version"]).split(" (")[0], "lab_id": fleetlab.LAB_ID,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": os.getloadavg()[0],
            "loadavg_before": list(os.getloadavg()), **checkout()}


def checkout() -> dict:
    """Which checkout measured: its commit, whether it had local changes, and where it lives."""
    def git(*argv: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or "?", "clean": git("status", "--porcelain", "--untracked-files=no") == "",
            "checkout": str(REPO)}


def world_traversable(folder: Path) -> bool:
    """Whether anyone (nginx's workers run as nobody) may pass through every folder above ``folder``."""
    return all(os.stat(parent).st_mode & 0o001 for parent in folder.resolve().parents)


def size_label(size: int) -> str:
    return f"{size // GIB} GiB" if size >= GIB else f"{size // MIB} MiB"


def benchmark(args: argparse.Namespace) -> dict:
    lab, was_up = fleetlab.up_standard()
    (REPO / "build").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"ffl{fleetlab.LAB_ID}-bench-engine-", dir=REPO / "build"))
    # nginx's workers (nobody) read www/ below it: every folder above must let them through. A checkout
    # under /root (0700) does not, so the files then live in /var/tmp instead (the servers run on the host).
    if not world_traversable(workdir):
        shutil.rmtree(workdir)
        workdir = Path(tempfile.mkdtemp(prefix=f"ffl{fleetlab.LAB_ID}-bench-engine-", dir="/var/tmp"))
    workdir.chmod(0o755)
    shared = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=lab.shared_dir()))
    servers: list = []
    try:
        www, paths = make_files(workdir)
        cert = nginx_certificate(workdir, shared)
        served = {"big": paths["big"], "small": paths["small"]}
        servers = [EngineServer(workdir, served, False, "plain", shared), NginxServer(workdir, www, None), PythonHTTPServer(www),
                   EngineServer(workdir, served, True, "tls", shared), NginxServer(workdir, www, cert)]
        for server in servers:
            server.start()
        clients = Clients(lab)
        clients.reach(servers[2])
        print(f"throughput, one {size_label(FILES['big'])} component, {args.duration} s per measurement, {args.rounds} round(s):", flush=True)
        results = {"environment": environment(), "settings": vars(args)}
        results["throughput"] = run_throughput(clients, servers, args.clients, args.duration, args.rounds)
        print(f"time to first byte, 1 KiB component, {args.ttfb_clients} clients x {args.ttfb_requests} requests:", flush=True)
        results["ttfb"] = run_ttfb(clients, servers, args.ttfb_clients, args.ttfb_requests)
        for server in servers:
            server.stop()
        print("peak RSS of the engine serving a whole file as 16 concurrent ranges:", flush=True)
        results["memory"] = run_memory(clients, workdir, paths, shared, ("big",) if args.quick else ("big", "huge"))
        # The machine is shared: the load says how quiet it was while measuring.
        results["environment"]["load_after"] = os.getloadavg()[0]
        results["environment"]["loadavg_after"] = list(os.getloadavg())
        return results
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
        if not was_up and not args.keep_lab:
            lab.down()


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _ratio(per_server: dict, mine: str, theirs: str) -> float:
    """Median over the rounds of the per-round ratio (both measured back to back)."""
    return statistics.median(a["mib_s"] / b["mib_s"] for a, b in zip(per_server[mine], per_server[theirs]))


def summarize(results: dict) -> dict:
    """Median MiB/s per server and client count, and the engine/nginx ratios."""
    summary: dict = {}
    for count, per_server in results["throughput"].items():
        medians = {label: statistics.median(r["mib_s"] for r in runs) for label, runs in per_server.items()}
        summary[count] = {"mib_s": medians,
                          "ratio_plain": _ratio(per_server, "engine HTTP", "nginx HTTP"),
                          "ratio_tls": _ratio(per_server, "engine TLS", "nginx TLS"),
                          "ratio_http_server": _ratio(per_server, "engine HTTP", "python3 -m http.server"),
                          "engine_peak_rss_mib": max(r.get("VmHWM", 0) for label in ("engine HTTP", "engine TLS")
                                                     for r in per_server[label])}
    return summary


def loadavg(env: dict, when: str) -> str:
    values = env.get(f"loadavg_{when}") or [env.get(f"load_{when}", 0.0)]
    return ", ".join(f"{value:.2f}" for value in values)


def markdown(results: dict) -> str:
    env, summary = results["environment"], summarize(results)
    settings = results["settings"]
    lines = ["## Engine", "",
             "The run's engine (`plugins/plugin_utils/engine/`, issue 5) against nginx and `python3 -m http.server`,",
             "measured side by side in one run by `benchmarks/bench_engine.py`: the servers listen on the controller's lab",
             "addresses, the clients are `curl` processes in the lab nodes' network namespaces (half over IPv4, half over",
             "IPv6), same files and same clients for every server. The clients share the machine's CPUs with the servers,",
             "as in the lab they do; the numbers are for this machine and for comparing, not absolute.", "",
             f"Machine: {env['cpus']} CPUs, Linux {env['kernel']}, Python {env['python']}, {env['openssl']}, "
             f"{env['nginx'].replace('nginx version: ', '')}, {env['curl']}; measured {env['date']} "
             f"by a checkout of commit {env.get('commit', '?')}{'' if env.get('clean', True) else ' with local changes'} in "
             f"`{env.get('checkout', '?')}`, in {results.get('elapsed_s', 0) / 60:.0f} min; load average (1, 5, 15 min, as `uptime` shows it) "
             f"{loadavg(env, 'before')} before and {loadavg(env, 'after')} after: the machine is shared with other engineers' "
             "test runs, so absolute figures move; engine and nginx are measured back to back.", "",
             "Reproduce on a fresh clone, anywhere (root; nginx comes from `make bench-deps`; takes the lab up and down if it "
             "was not up; about 4 minutes with `--rounds 1`, 6.5 with `--rounds 3` on a quiet machine):", "",
             "```",
             "make collection bench-deps",
             f"FLEET_LAB_ID=<id> build/venv/bin/python benchmarks/bench_engine.py --duration {settings['duration']:g} "
             f"--rounds {settings['rounds']} --write-doc docs/performance.md",
             "```", "",
             f"### Aggregate throughput, one 1 GiB component ({settings['duration']:g} s per measurement, "
             f"median of {settings['rounds']} round(s); ratios: median of the per-round ratios, engine and nginx measured back to back)", "",
             "| clients | engine HTTP | nginx HTTP | engine/nginx (target >= 0.9) | engine TLS | nginx TLS | "
             "engine/nginx TLS (target >= 0.8) | python3 -m http.server | engine HTTP / http.server |",
             "|---|---|---|---|---|---|---|---|---|"]
    for count, row in summary.items():
        mib = row["mib_s"]
        lines.append(f"| {count} | {mib['engine HTTP']:.0f} MiB/s | {mib['nginx HTTP']:.0f} MiB/s | **{row['ratio_plain']:.2f}** | "
                     f"{mib['engine TLS']:.0f} MiB/s | {mib['nginx TLS']:.0f} MiB/s | **{row['ratio_tls']:.2f}** | "
                     f"{mib['python3 -m http.server']:.0f} MiB/s | {row['ratio_http_server']:.2f} |")
    lines += ["", "### Peak RSS of the engine (VmHWM), one whole file served as 16 concurrent Range requests (target < 80 MiB)", "",
              "| file | transport | RSS after start and registration | peak RSS while serving |", "|---|---|---|---|"]
    for row in results["memory"]:
        lines.append(f"| {row['file_gib']:.0f} GiB | {'TLS' if row['tls'] else 'HTTP (sendfile)'} | {row['rss_before_mib']:.1f} MiB | "
                     f"**{row['peak_rss_mib']:.1f} MiB** |")
    peak = max(row["engine_peak_rss_mib"] for row in summary.values())
    lines += ["", f"Peak RSS of the engine processes during the throughput runs above (up to 64 connections): {peak:.1f} MiB.", "",
              f"### Time to first byte, 1 KiB component, {settings['ttfb_clients']} concurrent clients x "
              f"{settings['ttfb_requests']} requests, a fresh connection each", "",
              "`ttfb` is curl's `time_starttransfer` (connect, TLS handshake, request, first byte); `answer` is the part",
              "after the request was sent (`time_starttransfer - time_pretransfer`).", "",
              "| server | requests | ttfb median | ttfb p95 | ttfb max | answer median | answer p95 |", "|---|---|---|---|---|---|---|"]
    for label, row in results["ttfb"].items():
        lines.append(f"| {label} | {row['requests']} | {row['ttfb_median_ms']:.1f} ms | {row['ttfb_p95_ms']:.1f} ms | "
                     f"{row['ttfb_max_ms']:.1f} ms | {row['answer_median_ms']:.1f} ms | {row['answer_p95_ms']:.1f} ms |")
    lines += ["", "Reading the numbers: on 2 CPUs the curl clients, the veth links and the server share the same cores, so",
              "a server that spends less CPU per byte leaves more to the clients. The engine's one thread per connection",
              "(`sendfile` of the whole range, or one bounded buffer under TLS) keeps every client busy; nginx's two",
              "event-loop workers serve 64 connections in turns. `make bench` runs one round (`--rounds 1`); single",
              "rounds on a shared machine vary by +-30 %, which is why engine and nginx are measured back to back."]
    return "\n".join(lines) + "\n"


def write_doc(path: Path, section: str) -> None:
    """Replace (or append) the "## Engine" section of ``path``; the other sections stay as they are."""
    text = path.read_text() if path.exists() else "# Performance\n\nMeasured by the benchmarks under `benchmarks/` (`make bench`).\n"
    pattern = re.compile(r"^## Engine\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _match: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def measurements(results: dict) -> dict:
    """Every figure measured, by name (benchmarks/README.md: what the smoke test checks)."""
    found = {}
    for count, per_server in results["throughput"].items():
        for label, runs in per_server.items():
            found[f"throughput {count} clients {label} MiB/s"] = statistics.median(r["mib_s"] for r in runs)
    for label, row in results["ttfb"].items():
        found[f"ttfb median {label} ms"] = row["ttfb_median_ms"]
    for row in results["memory"]:
        found[f"peak RSS engine {'TLS' if row['tls'] else 'HTTP'} {row['file']} MiB"] = row["peak_rss_mib"]
    return found


def print_summary(results: dict) -> None:
    for count, row in summarize(results).items():
        print(f"{count} clients: engine/nginx HTTP {row['ratio_plain']:.2f} (target >= {TARGETS['plain']}), "
              f"engine/nginx TLS {row['ratio_tls']:.2f} (target >= {TARGETS['tls']}), "
              f"engine/http.server {row['ratio_http_server']:.2f}")
    for row in results["memory"]:
        size = row.get("file") or f"{row['file_gib']:.0f} GiB"
        print(f"engine {'TLS' if row['tls'] else 'HTTP'} serving {size}: peak RSS {row['peak_rss_mib']:.1f} MiB (target < 80)")


def parse_args(argv: t.Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="throughput rounds, median reported (default 1)")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64], help="concurrent clients (default 16 64)")
    parser.add_argument("--ttfb-clients", type=int, default=64, help="concurrent clients for time to first byte (default 64)")
    parser.add_argument("--ttfb-requests", type=int, default=20, help="requests per client for time to first byte (default 20)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--write-doc", type=Path, help="replace the '## Engine' section of this Markdown file with the results")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up even if this run brought it up")
    parser.add_argument("--from-json", type=Path, help="measure nothing: report the results saved by an earlier --json")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test (make test): 16 and 64 MiB files, 4 clients for 1 s, one round, 4 x 2 first-byte requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.clients, args.ttfb_clients, args.ttfb_requests = 1.0, 1, [4], 4, 2
    for name in ("duration", "rounds", "ttfb_clients", "ttfb_requests"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if any(count <= 0 for count in args.clients):
        parser.error(f"--clients must be > 0, got {args.clients}")
    return args


def main(argv: t.Optional[list] = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    elif os.geteuid() != 0:
        print("bench_engine: the lab needs root", file=sys.stderr)
        return 2
    else:
        benchlib.require_tools("bench_engine", TOOLS)
        if args.quick:
            FILES.update(QUICK_FILES)
        started = time.monotonic()
        results = benchmark(args)
        results["elapsed_s"] = time.monotonic() - started
    print_summary(results)
    print(f"benchmark took {results['elapsed_s']:.0f} s")
    if args.json:
        results["measurements"] = measurements(results)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.write_doc:
        write_doc(args.write_doc, markdown(results))
        print(f"wrote the '## Engine' section of {args.write_doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
