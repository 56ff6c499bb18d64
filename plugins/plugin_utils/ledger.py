# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's ledger: one append-only JSON-lines file per node under ``<run_dir>/ledger/``.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. Controller-only code (standard library).

Writers (the engine) append one line per accepted event, with a server timestamp and a
per-node sequence number, and ``fsync`` the file whenever the node's stage changes, so that
a controller crash loses at most progress lines, never a stage transition. Readers (the
deploy action, the report) never need the engine: they read the files.

Reader API::

    events, offset = read_since(run_dir, "lin01", 0)     # everything so far
    events, offset = read_since(run_dir, "lin01", offset)  # only what is new
    state = node_state(run_dir, "lin01")  # {"stage": ..., "failed": bool, "events": n, ...}

``offset`` is a byte offset into the node's file; only complete lines are returned, so a
line being written while a reader reads is picked up on the next call.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import re
import threading
import time
import typing as t

# The node session states (docs/architecture.md, "the ledger's vocabulary").
STAGES = (
    "preflight", "staged", "started", "firewall_open", "inventoried", "planned",
    "downloading", "verified", "installing", "installed", "skipped", "failed",
    "reboot_pending", "rebooting", "activated", "cancelled", "cleaned",
)
# Events the engine writes itself (not sent by a node): they carry "source": "engine".
ENGINE_EVENTS = ("session_opened", "session_closed", "component_refused", "component_resumed", "job_served")
MAX_MESSAGE = 4096
MAX_COMPONENT = 256
MAX_EVENTS_PER_REQUEST = 100
EVENT_KEYS = frozenset(("stage", "component", "progress", "rc", "message"))
# Node ids become file names: no path separator, no leading dot, bounded length.
NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
LEDGER_DIR = "ledger"


class LedgerError(Exception):
    """A ledger file cannot be written or read; the message names the file."""


class EventError(ValueError):
    """An event does not match the schema; the message names the bad field and value."""


def check_node_id(node_id: t.Any) -> str:
    """Return ``node_id`` if it is a valid node id, else raise ``EventError`` naming it."""
    if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
        raise EventError(f"invalid node id {node_id!r}: 1-128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit")
    return node_id


def _short(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_event(data: t.Any) -> dict:
    """Check one event sent by a node and return it normalized.

    Schema: ``stage`` (required, one of ``STAGES``), ``component`` (str, at most 256
    characters), ``progress`` (number 0..100), ``rc`` (integer), ``message`` (str, at most
    4096 characters). Any other key is an error.
    """
    if not isinstance(data, dict):
        raise EventError(f"an event must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - EVENT_KEYS)
    if unknown:
        raise EventError(f"unknown event field(s) {', '.join(_short(k) for k in unknown)}; allowed: {', '.join(sorted(EVENT_KEYS))}")
    stage = data.get("stage")
    if stage not in STAGES:
        raise EventError(f"invalid stage {_short(stage)}; one of: {', '.join(STAGES)}")
    event = {"stage": stage}
    _optional_str(data, event, "component", MAX_COMPONENT)
    _optional_str(data, event, "message", MAX_MESSAGE)
    if "progress" in data:
        progress = data["progress"]
        if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not math.isfinite(progress) or not 0 <= progress <= 100:
            raise EventError(f"invalid progress {_short(progress)}: a number from 0 to 100")
        event["progress"] = progress
    if "rc" in data:
        rc = data["rc"]
        if isinstance(rc, bool) or not isinstance(rc, int) or not -(2 ** 31) <= rc < 2 ** 32:
            raise EventError(f"invalid rc {_short(rc)}: an integer")
        event["rc"] = rc
    return event


def _optional_str(data: dict, event: dict, key: str, limit: int) -> None:
    if key not in data:
        return
    value = data[key]
    if not isinstance(value, str) or len(value) > limit:
        raise EventError(f"invalid {key} {_short(value)}: a string of at most {limit} characters")
    event[key] = value


def parse_events(body: bytes) -> list[dict]:
    """Parse a request body (one event object or a list of them) into validated events."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventError(f"the body is not valid UTF-8 JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_EVENTS_PER_REQUEST:
        raise EventError(f"a request carries 1 to {MAX_EVENTS_PER_REQUEST} events, got {len(items)}")
    return [validate_event(item) for item in items]


def ledger_path(run_dir: str, node_id: str) -> str:
    return os.path.join(run_dir, LEDGER_DIR, check_node_id(node_id) + ".jsonl")


class LedgerWriter:
    """Appends events to the per-node files of one run (thread-safe).

    The engine is the ledger's one writer while it runs (the deploy sends its stages over the
    engine's control socket). A worker whose engine is gone (``kill -9`` of ansible-playbook)
    still writes its ``cancelled``/``cleaned`` itself: every append therefore takes an ``flock``
    on the node's file and continues from the file's last ``seq``, so a node has one sequence
    whoever wrote a line.
    """

    def __init__(self, run_dir: str) -> None:
        self.folder = os.path.join(run_dir, LEDGER_DIR)
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._stage: dict[str, str | None] = {}

    def append(self, node_id: str, event: dict, source: str = "node") -> dict:
        """Append one event (already validated) for ``node_id``; return the stored record."""
        path = ledger_path(os.path.dirname(self.folder), node_id)
        with self._lock:
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise LedgerError(f"cannot open ledger file {path}: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                seq, last_stage = _tail(fd)
                record = {"ts": round(time.time(), 6), "seq": seq + 1, "node": node_id, "source": source}
                record.update(event)
                line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")
                stage = event.get("stage")
                # A stage change must survive a crash; progress lines may be lost with the page cache.
                durable = stage is not None and stage != self._stage.get(node_id, last_stage)
                # One write() of a whole line with O_APPEND: lines never interleave.
                os.write(fd, line)
                if durable:
                    os.fsync(fd)
            except OSError as exc:
                raise LedgerError(f"cannot write ledger file {path}: {exc.strerror}") from exc
            finally:
                os.close(fd)  # releases the flock
            if stage is not None:
                self._stage[node_id] = stage
            return record


def _tail(fd: int, window: int = 65536) -> tuple[int, str | None]:
    """(the last complete line's ``seq``, the last stage in the window) of an open ledger file."""
    size = os.fstat(fd).st_size
    start = max(0, size - window)
    data = os.pread(fd, size - start, start)
    seq, stage = 0, None
    for raw in reversed(data.splitlines()):
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a torn line (a crash mid-write), or the first, cut line of the window
        if not isinstance(record, dict):
            continue
        if not seq and isinstance(record.get("seq"), int):
            seq = record["seq"]
        if stage is None and "stage" in record:
            stage = record["stage"]
        if seq and stage is not None:
            break
    return seq, stage


def read_since(run_dir: str, node_id: str, offset: int = 0) -> tuple[list[dict], int]:
    """Return ``(events, next_offset)``: the complete lines of the node's file after ``offset``.

    A missing file is an empty ledger. A line that is not JSON (a crash mid-write) is skipped.
    """
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise LedgerError(f"invalid ledger offset {offset!r}: a byte offset >= 0")
    path = ledger_path(run_dir, node_id)
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    except OSError as exc:
        raise LedgerError(f"cannot read ledger file {path}: {exc.strerror}") from exc
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue
    return events, offset + end


def node_state(run_dir: str, node_id: str) -> dict:
    """The node's current state from its ledger: last stage, last event, failure, counts."""
    events, offset = read_since(run_dir, node_id, 0)
    state: dict[str, t.Any] = {"node": node_id, "stage": None, "events": len(events), "offset": offset,
                               "failed": False, "last": events[-1] if events else None, "engine_errors": []}
    for event in events:
        if "stage" in event:
            state["stage"] = event["stage"]
            if event["stage"] == "failed":
                state["failed"] = True
        if event.get("source") == "engine" and event.get("event") == "component_refused":
            state["engine_errors"].append(event)
    return state


def nodes(run_dir: str) -> list[str]:
    """The node ids that have a ledger file in this run."""
    folder = os.path.join(run_dir, LEDGER_DIR)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n[: -len(".jsonl")] for n in names if n.endswith(".jsonl") and NODE_ID_RE.match(n[: -len(".jsonl")]))
