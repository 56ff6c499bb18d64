# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fuzzing the engine on loopback: at least 10,000 random and malformed requests (bad
methods, traversal paths, huge headers, slow clients, truncated bodies, invalid JSON), after
which it still serves the right bytes and has served no byte of anything unregistered.

Bounded in count, not in time (correctness only: every request answered or refused as it must
be, none lost; pytest's own timeout keeps a hung engine from hanging the run); the only target is
the engine on 127.0.0.1."""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import ssl
import threading
import time

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, ledger

REQUESTS = 10_000
THREADS = 8
# A connection must be accepted; this only keeps a hung engine from hanging the test (a loaded
# machine's full accept queue makes the kernel retry the SYN for a while, it never refuses).
CONNECT_TIMEOUT = 120
ALLOWED = {b"200", b"206", b"400", b"401", b"403", b"404", b"405", b"409", b"411", b"413", b"414", b"416", b"431", b"505"}
CANARY = b"CANARY-" + os.urandom(8).hex().encode()


@pytest.fixture
def target(tmp_path):
    # The registered component and, beside it, files that must never be served.
    component = tmp_path / "component.bin"
    component.write_bytes(os.urandom(256 * 1024))
    (tmp_path / "secret.txt").write_bytes(CANARY * 100)
    (tmp_path / "unregistered.bin").write_bytes(CANARY * 1000)
    # One source (loopback) for 24 slow clients and 8 fuzzers.
    settings = engine.EngineSettings(address=["127.0.0.1"], port=0, tls=False, client_timeout=2.0, max_unauthenticated_per_source=64)
    eng = engine.Engine(str(tmp_path / "run"), settings).start()
    token = eng.register_node("lin01")
    other = eng.register_node("lin02")
    sha = eng.register_component(str(component), node_id="lin01")
    yield eng, component.read_bytes(), sha, token, other, tmp_path
    eng.stop("test over")


def _paths(rng, sha):
    return rng.choice([
        f"/v1/components/{sha}", f"/v1/components/{sha.upper()}", f"/v1/components/{sha}/../../secret.txt",
        "/v1/components/../../secret.txt", "/v1/components/%2e%2e/%2e%2e/secret.txt", "/v1/components/%2e%2e%2fsecret.txt",
        "/../../../etc/passwd", "/secret.txt", "/unregistered.bin", "/v1/nodes/../../ledger/lin01.jsonl/job",
        "/v1/nodes/lin01/job", "/v1/nodes/lin02/job", "/v1/nodes/lin01/events", "/v1/nodes/%2e%2e/events",
        f"/v1/components/{hashlib.sha256(CANARY * 100).hexdigest()}", "/v1/components/" + "a" * 64 + "?x=/secret.txt",
        "/" + "A" * rng.randint(1, 5000), "*", "http://127.0.0.1/secret.txt", "/v1/components/" + "%00" * 20,
        "".join(chr(rng.randint(33, 126)) for _char in range(rng.randint(1, 80))),
    ])


def _near_valid(rng, sha, token):
    """A request that passes the request line and the token, to reach the deeper checks."""
    auth = f"Authorization: Bearer {token}\r\n"
    if rng.random() < 0.5:
        rng_header = rng.choice(["bytes=0-99", "bytes=-10", "bytes=999999999-", "bytes=5-1", "bytes=x", "bytes=262144-", ""])
        extra = f"Range: {rng_header}\r\n" if rng_header else ""
        return f"{rng.choice(['GET', 'HEAD'])} /v1/components/{sha} HTTP/1.1\r\nHost: x\r\n{auth}{extra}\r\n".encode()
    body = rng.choice([b'{"stage":"downloading","progress":5}', b"{not json", b'{"stage":"x"}', b"[]", b"y" * 70_000,
                       json.dumps({"stage": "installing", "message": "m" * 5000}).encode(), b'{"stage":"verified","rc":true}'])
    length = rng.choice([len(body), len(body), len(body) + 50])  # + 50: a truncated body
    return f"POST /v1/nodes/lin01/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {length}\r\n\r\n".encode() + body


def _request(rng, sha, token, other):
    """One malformed-or-not request as raw bytes, and whether to cut it short."""
    if rng.random() < 0.2:
        return _near_valid(rng, sha, token), False
    method = rng.choice(["GET", "GET", "GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT",
                         "PATCH", "G\x00T", "get", "X" * 300])
    version = rng.choice(["HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/2.0", "HTTP/9", "", "HTTP/1.1 extra"])
    headers = ["Host: 127.0.0.1"]
    auth = rng.random()
    if auth < 0.3:
        headers.append(f"Authorization: Bearer {token}")
    elif auth < 0.45:
        headers.append(f"Authorization: Bearer {other}")
    elif auth < 0.6:
        headers.append("Authorization: " + rng.choice(["Basic abc", "Bearer", "Bearer " + "x" * 43, "Bearer \x01\x02", "bearer " + token[:-1]]))
    kind = rng.random()
    body = b""
    if kind < 0.1:
        headers.append("X-Huge: " + "h" * rng.choice([70_000, 66_000, 10_000]))
    elif kind < 0.15:
        headers += [f"X-H{i}: v" for i in range(rng.choice([99, 101, 200]))]
    elif kind < 0.2:
        headers.append("Broken header line without colon")
    elif kind < 0.3:
        headers.append("Range: " + rng.choice(["bytes=0-", "bytes=-5", "bytes=999999999-", "bytes=5-1", "bytes=a-b", "bytes=0-1,2-3",
                                               "bytes=-0", "bytes=18446744073709551616-"]))
    if method in ("POST", "PUT", "PATCH") or rng.random() < 0.1:
        body = rng.choice([b'{"stage":"downloading","progress":5}', b"{not json", b'{"stage":"x"}', b"\xff\xfe\x00", b"[]",
                           json.dumps({"stage": "installing", "message": "m" * 5000}).encode(), os.urandom(rng.randint(0, 300)),
                           b"x" * 70_000])
        length = rng.choice([len(body), len(body), len(body) + 100, -1, 10 ** 15, "abc"])
        headers.append(f"Content-Length: {length}")
        if rng.random() < 0.05:
            headers.append("Transfer-Encoding: chunked")
    head = f"{method} {_paths(rng, sha)} {version}".strip() + "\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    data = head.encode("utf-8", "surrogateescape") + body
    cut = rng.random() < 0.1
    if cut:
        data = data[: rng.randint(1, len(data))]
    if rng.random() < 0.02:
        data = os.urandom(rng.randint(1, 2000))
    return data, cut


def _exchange(port, data, cut):
    with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks, total = [], 0
        try:
            while total < 4 * 1024 * 1024:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def _slow_clients(port, stop, count=24):
    """Clients that trickle a request byte by byte, or open and say nothing."""
    def trickle(i):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                for byte in b"GET /v1/components/" + b"a" * 64 + b" HTTP/1.1\r\n":
                    if stop.is_set():
                        return
                    if i % 2:
                        sock.send(bytes([byte]))
                    time.sleep(0.2)
        except OSError:
            pass
    threads = [threading.Thread(target=trickle, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_ten_thousand_bad_requests_crash_nothing_and_serve_no_unregistered_byte(target):
    eng, content, sha, token, other, folder = target
    stop = threading.Event()
    slow = _slow_clients(eng.port, stop)
    results, errors = [], []

    def worker(seed):
        rng = random.Random(seed)
        for _count in range(REQUESTS // THREADS):
            data, cut = _request(rng, sha, token, other)
            try:
                results.append((data, _exchange(eng.port, data, cut)))
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    # Every request was sent and its connection accepted: a refused or unanswered connect means
    # the engine died or stopped accepting.
    assert (len(results), errors[:5]) == (REQUESTS, [])
    statuses = {}
    for sent, reply in results:
        assert CANARY not in reply
        if reply:
            assert reply.startswith(b"HTTP/1.1 ") or reply.startswith(b"HTTP/1.0 "), reply[:100]
            code = reply[9:12]
            assert code in ALLOWED, reply[:200]
            statuses[code] = statuses.get(code, 0) + 1
            if code in (b"200", b"206") and b"application/octet-stream" in reply and sent.startswith(b"GET "):
                head, rest = reply.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                # Only this response's body: an unread request body may follow as a next request.
                assert rest[:length] in content, "served bytes that are not the registered component's"
    # The mix reached every refusal path, and some good requests got through too.
    expected = (b"200", b"400", b"401", b"403", b"404", b"405", b"413", b"416", b"431")
    assert all(statuses.get(code, 0) >= 1 for code in expected), str(sorted(statuses.items()))[-300:]
    # Afterwards: still up, still correct, and only the registered component was ever served.
    assert set(eng.stats()["served"]) <= {sha}
    reply = _exchange(eng.port, f"GET /v1/components/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode(), False)
    assert reply.startswith(b"HTTP/1.1 200") and reply.split(b"\r\n\r\n", 1)[1] == content
    assert all(e.get("source") in ("node", "engine") for e in ledger.read_since(eng.run_dir, "lin01", 0)[0])
    for thread in slow:
        thread.join(10)


def test_garbage_on_the_tls_port_does_not_stop_the_tls_engine(tmp_path):
    component = tmp_path / "c.bin"
    component.write_bytes(os.urandom(100_000))
    eng = engine.Engine(str(tmp_path / "run"), engine.EngineSettings(address=["127.0.0.1"], port=0, client_timeout=2.0)).start()
    try:
        token = eng.register_node("lin01")
        sha = eng.register_component(str(component), node_id="lin01")
        rng = random.Random(7)
        for _count in range(300):
            _exchange(eng.port, rng.choice([os.urandom(rng.randint(1, 600)), b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00" + os.urandom(50)]), False)
        context = ssl.create_default_context(cafile=os.path.join(eng.run_dir, "tls", "ca.pem"))
        with socket.create_connection(("127.0.0.1", eng.port), timeout=10) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            conn.sendall(f"GET /v1/components/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and reply.split(b"\r\n\r\n", 1)[1] == component.read_bytes()
    finally:
        eng.stop()
