# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hold COUNT slow, unauthenticated connections to HOST:PORT (run inside a lab node, with the
node's own python3: standard library only).

Each connection drips one byte of a TLS ClientHello-looking prefix every STEP seconds and
never completes anything, as a slowloris does. The script prints one JSON line when every
connection has ended, saying how many the SERVER closed (EOF or reset while we still wrote or
read) and how many could not even connect; the test reads that line. It closes nothing itself
before its own --give-up bound, which only keeps a broken server from hanging the test.

    python3 slow_clients.py HOST PORT COUNT [--source ADDR] [--step 2] [--give-up 600]
"""
import argparse
import json
import selectors
import socket
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--source", action="append", default=[], help="source address (repeat: round robin)")
    parser.add_argument("--step", type=float, default=2.0)
    parser.add_argument("--give-up", type=float, default=600.0)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sel = selectors.DefaultSelector()
    open_socks = {}
    result = {"connected": 0, "connect_failed": 0, "closed_by_server": 0, "still_open": 0}
    for index in range(args.count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        if args.source:
            sock.bind((args.source[index % len(args.source)], 0))
        sock.settimeout(30)
        try:
            sock.connect((args.host, args.port))
        except OSError:
            result["connect_failed"] += 1
            sock.close()
            continue
        sock.setblocking(False)
        result["connected"] += 1
        open_socks[sock.fileno()] = sock
        sel.register(sock, selectors.EVENT_READ)
    sys.stdout.write(json.dumps({"holding": len(open_socks)}) + "\n")
    sys.stdout.flush()
    drip = b"\x16\x03\x01"
    started = time.monotonic()
    last_drip = 0.0
    while open_socks and time.monotonic() - started < args.give_up:
        for key, _mask in sel.select(timeout=0.5):
            _close_if_ended(key.fileobj, sel, open_socks, result)
        if time.monotonic() - last_drip >= args.step:
            last_drip = time.monotonic()
            for sock in list(open_socks.values()):
                try:
                    sock.send(drip[:1])
                except BlockingIOError:
                    pass
                except OSError:
                    _forget(sock, sel, open_socks, result)
    result["still_open"] = len(open_socks)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def _close_if_ended(sock, sel, open_socks, result) -> None:
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        _forget(sock, sel, open_socks, result)


def _forget(sock, sel, open_socks, result) -> None:
    if sock.fileno() in open_socks:
        result["closed_by_server"] += 1
        sel.unregister(sock)
        del open_socks[sock.fileno()]
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
