# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compliance over time (issue 19 item 4): the fleet's firmware against the baseline, across runs.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. Controller-only code (standard library).

The history is a folder the user chooses (in AWX a mounted path: the job's container and its run
folders die with the job). Each ``inventory_report`` run adds one snapshot to it,
``inventory-<UTC time>-<random>.json`` (every node's plan: per component the installed and the
baseline's version); a retention rule (the newest N snapshots, and/or none older than D days)
removes older snapshots, and never any other file. The report is built from the snapshots and,
when given, the run folders' ledgers (which say when a run installed a component)::

    path = record(history, rows, now=...)     # rows: [{node, component, installed, baseline, action, reason}]
    model = build(history, runs_dir=...)
    write(model, folder, ("json", "csv", "html"))

Per node and component: the baseline's version, the installed one, whether it is at the baseline,
when it last changed (the first snapshot that saw the current version after another one; a
ledger's ``installed`` event if later), and its drift since the previous snapshot of that node
(``from``, ``to``, and the run that installed it, if a ledger says so: a drift no run explains was
made outside the collection). The fleet's share at the baseline is counted over components and
over nodes (a node is at the baseline when every component that applies to it is).
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re
import secrets
import typing as t

from ansible_collections.fleet.firmware.plugins.module_utils import versions
from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import report as report_mod

FORMAT_VERSION = 1
FORMATS = ("json", "csv", "html")
FILE_NAMES = {"json": "compliance.json", "csv": "compliance.csv", "html": "compliance.html"}
SNAPSHOT_RE = re.compile(r"^inventory-(\d{8}T\d{6}Z)-[0-9a-f]{6}\.json\Z")
CSV_FIELDS = ("node", "component", "baseline", "installed", "at_baseline", "last_changed", "changed_by_run", "drift_from", "drift_to",
              "drift_by_run", "seen")


class ComplianceError(Exception):
    """The history cannot be read or written; the message names the folder or file."""


# -- the history


def record(history_dir: str, rows: t.Iterable[dict], now: datetime.datetime | None = None, keep: int | None = None,
           keep_days: float | None = None, run_tag: str | None = None) -> tuple[str, list[str]]:
    """Add one snapshot (0600, atomically), then apply the retention rule; (its path, removed paths)."""
    if keep is not None and keep < 1:
        raise ComplianceError(f"keep={keep} must be 1 or more (the snapshot just taken is always kept)")
    if keep_days is not None and keep_days <= 0:
        raise ComplianceError(f"keep_days={keep_days} must be more than 0")
    taken = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    # A node that could not be planned (inventory_report's ERROR row) says nothing of its versions.
    clean = [_row(r) for r in rows if not (isinstance(r, dict) and (r.get("action") == "ERROR" or r.get("component") in (None, "-")))]
    try:
        os.makedirs(history_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ComplianceError(f"cannot create the history folder {history_dir}: {exc}") from exc
    name = f"inventory-{taken.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}.json"
    path = os.path.join(history_dir, name)
    document = {"format": FORMAT_VERSION, "taken_at": taken.isoformat(timespec="seconds"), "run_tag": run_tag, "rows": clean}
    report_mod.write_atomic(path, json.dumps(document, indent=1) + "\n", 0o600)
    return path, retain(history_dir, keep, keep_days, taken)


def _row(row: dict) -> dict:
    if not isinstance(row, dict) or not row.get("node") or not row.get("component"):
        raise ComplianceError(f"a compliance row needs node and component: {row!r}"[:300])
    return {"node": str(row["node"]), "component": str(row["component"]), "installed": _text(row.get("installed")),
            "baseline": _text(row.get("baseline") or row.get("target")), "action": _text(row.get("action")), "reason": _text(row.get("reason"))}


def _text(value: t.Any) -> str | None:
    return None if value in (None, "", "-") else str(value)


def snapshots(history_dir: str) -> list[tuple[str, dict]]:
    """Every snapshot of the folder, oldest first: (path, document)."""
    if not os.path.isdir(history_dir):
        raise ComplianceError(f"{history_dir} is no history folder (no inventory_report run wrote there yet)")
    found = []
    for name in sorted(os.listdir(history_dir)):
        if not SNAPSHOT_RE.match(name):
            continue
        path = os.path.join(history_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ComplianceError(f"cannot read the snapshot {path}: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION or not isinstance(document.get("rows"), list):
            raise ComplianceError(f"{path} is not a compliance snapshot of format {FORMAT_VERSION}")
        found.append((path, document))
    return sorted(found, key=lambda item: (item[1].get("taken_at") or "", item[0]))


def retain(history_dir: str, keep: int | None, keep_days: float | None, now: datetime.datetime) -> list[str]:
    """Remove the snapshots beyond the newest ``keep`` and those older than ``keep_days`` (never the newest)."""
    names = sorted(n for n in os.listdir(history_dir) if SNAPSHOT_RE.match(n))
    doomed = set(names[:-keep]) if keep else set()
    if keep_days is not None:
        limit = now - datetime.timedelta(days=keep_days)
        for name in names[:-1]:
            taken = datetime.datetime.strptime(SNAPSHOT_RE.match(name).group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
            if taken < limit:
                doomed.add(name)
    removed = []
    for name in sorted(doomed):
        path = os.path.join(history_dir, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


# -- the model


def build(history_dir: str, runs_dir: str | None = None, now: datetime.datetime | None = None) -> dict:
    """The compliance report from the history folder's snapshots (and the ledgers under ``runs_dir``)."""
    taken = snapshots(history_dir)
    if not taken:
        raise ComplianceError(f"{history_dir} holds no snapshot yet")
    installs = _ledger_installs(runs_dir) if runs_dir else {}
    # node -> [(taken_at, {component: row})], oldest first: a node left out of a run (--limit) keeps its last snapshot.
    history: dict[str, list[tuple[str, dict]]] = {}
    for _path, document in taken:
        by_node: dict[str, dict] = {}
        for row in document["rows"]:
            by_node.setdefault(row["node"], {})[row["component"]] = row
        for node, rows in by_node.items():
            history.setdefault(node, []).append((document["taken_at"], rows))
    entries = []
    for node in sorted(history):
        seen = history[node]
        latest_at, latest = seen[-1]
        previous = seen[-2][1] if len(seen) > 1 else None
        for component, row in latest.items():
            if not _applies(row):
                continue
            entries.append(_entry(node, component, row, seen, previous, latest_at, installs))
    return {"format": FORMAT_VERSION, "generated_at": (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds"),
            "history_dir": history_dir, "runs_dir": runs_dir, "snapshots": [d["taken_at"] for _p, d in taken],
            "summary": _summary(entries), "entries": entries}


def _applies(row: dict) -> bool:
    """A component the plan left out before detection (another OS, not selected, does not apply, refused by the
    site policy) is no compliance question; one to install (absent) is, and so is every detected one."""
    return row.get("action") != "skip" or row.get("installed") is not None


def _at_baseline(installed: str | None, baseline: str | None) -> bool:
    if installed is None or baseline is None:
        return False
    return installed == baseline or versions.compare(installed, baseline, "auto").order == 0


def _entry(node: str, component: str, row: dict, seen: list, previous: dict | None, latest_at: str, installs: dict) -> dict:
    installed = row.get("installed")
    # When it last changed: the oldest snapshot of the latest unbroken series holding this version.
    since, other_at = latest_at, None
    for taken_at, rows in reversed(seen[:-1]):
        if (rows.get(component) or {}).get("installed") != installed:
            other_at = taken_at  # the last snapshot with another version
            break
        since = taken_at
    last_changed, by_run = (since if other_at else None), None
    # A ledger's install after the last snapshot with another version is when it changed (more precise).
    install = installs.get((node, component))
    if install and (other_at is None or install["at"] > other_at) and install["at"] <= latest_at:
        last_changed, by_run = install["at"], install["run"]
    drift = None
    if previous is not None and (previous.get(component) or {}).get("installed") != installed:
        before = (previous.get(component) or {}).get("installed")
        prev_at = next(at for at, rows in reversed(seen[:-1]) if rows is previous)
        explained = install["run"] if install and prev_at <= install["at"] <= latest_at else None
        drift = {"from": before, "to": installed, "by_run": explained}
    return {"node": node, "component": component, "baseline": row.get("baseline"), "installed": installed,
            "at_baseline": _at_baseline(installed, row.get("baseline")), "last_changed": last_changed, "changed_by_run": by_run,
            "drift": drift, "seen": latest_at}


def _ledger_installs(runs_dir: str) -> dict[tuple[str, str], dict]:
    """(node, component) -> the latest ``installed`` event of any run under ``runs_dir``: {at, run}."""
    found: dict[tuple[str, str], dict] = {}
    if not os.path.isdir(runs_dir):
        return found
    for run in sorted(os.listdir(runs_dir)):
        run_dir = os.path.join(runs_dir, run)
        if not os.path.isdir(os.path.join(run_dir, "ledger")):
            continue
        for node in ledger_mod.nodes(run_dir):
            try:
                events = ledger_mod.read_since(run_dir, node, 0)[0]
            except (ledger_mod.LedgerError, ledger_mod.EventError):
                continue  # a broken ledger tells nothing; the snapshots still do
            for event in events:
                if event.get("stage") == "installed" and isinstance(event.get("component"), str) and isinstance(event.get("ts"), (int, float)):
                    at = datetime.datetime.fromtimestamp(event["ts"], datetime.timezone.utc).isoformat(timespec="seconds")
                    key = (node, event["component"])
                    if key not in found or at >= found[key]["at"]:
                        found[key] = {"at": at, "run": run}
    return found


def _summary(entries: list[dict]) -> dict:
    nodes: dict[str, bool] = {}
    for entry in entries:
        nodes[entry["node"]] = nodes.get(entry["node"], True) and entry["at_baseline"]
    at = sum(1 for e in entries if e["at_baseline"])
    return {"nodes": len(nodes), "nodes_at_baseline": sum(1 for ok in nodes.values() if ok),
            "nodes_at_baseline_pct": _pct(sum(1 for ok in nodes.values() if ok), len(nodes)),
            "components": len(entries), "components_at_baseline": at, "components_at_baseline_pct": _pct(at, len(entries)),
            "drifted": sum(1 for e in entries if e["drift"]),
            "drifted_outside_runs": sum(1 for e in entries if e["drift"] and not e["drift"]["by_run"])}


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# -- writers


def to_json(model: dict) -> str:
    return json.dumps(model, indent=2) + "\n"


def to_csv(model: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for e in model["entries"]:
        drift = e["drift"] or {}
        writer.writerow([_cell(v) for v in (e["node"], e["component"], e["baseline"], e["installed"], "yes" if e["at_baseline"] else "no",
                                            e["last_changed"], e["changed_by_run"], drift.get("from"), drift.get("to"), drift.get("by_run"),
                                            e["seen"])])
    return out.getvalue()


def _cell(value: t.Any) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts with = + - @ (CSV injection): such a value is quoted as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


_CSS = report_mod.CSS + """
.c-yes{background:#c7f0d2}.c-no{background:#ffc9c9}.c-drift{background:#fff3bf}
"""


def to_html(model: dict) -> str:
    """One self-contained page as the run report's: no script, no external resource, every value escaped."""
    esc = report_mod.esc
    s = model["summary"]
    cards = [("nodes at baseline", f"{s['nodes_at_baseline']}/{s['nodes']} ({s['nodes_at_baseline_pct']} %)"),
             ("components at baseline", f"{s['components_at_baseline']}/{s['components']} ({s['components_at_baseline_pct']} %)"),
             ("drifted since the last run", str(s["drifted"])), ("drifted outside any run", str(s["drifted_outside_runs"])),
             ("snapshots", str(len(model["snapshots"])))]
    rows = []
    for e in model["entries"]:
        drift = e["drift"]
        drift_text = ""
        if drift:
            drift_text = f"{esc(drift['from'] or '-')} &#8594; {esc(drift['to'] or '-')} ({esc(drift['by_run'] or 'outside any run')})"
        rows.append(f'<tr data-node="{esc(e["node"])}" data-component="{esc(e["component"])}">'
                    f"<td>{esc(e['node'])}</td><td>{esc(e['component'])}</td><td>{esc(e['baseline'] or '-')}</td>"
                    f"<td>{esc(e['installed'] or '-')}</td>"
                    f'<td class="c-{"yes" if e["at_baseline"] else "no"}" data-at="{"yes" if e["at_baseline"] else "no"}">'
                    f"{'yes' if e['at_baseline'] else 'no'}</td>"
                    f"<td>{esc(e['last_changed'] or 'not since ' + model['snapshots'][0])}"
                    f"{(' by ' + esc(e['changed_by_run'])) if e['changed_by_run'] else ''}</td>"
                    f'<td class="{"c-drift" if drift else ""}" data-drift="{"yes" if drift else "no"}">{drift_text}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("node", "component", "baseline", "installed", "at baseline", "last changed", "drift since the last run"))
    body = "".join(f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>fleet.firmware compliance</title><style>{_CSS}</style></head><body>",
        "<h1>fleet.firmware compliance</h1>",
        f'<p class="meta">generated {esc(model["generated_at"])}; {len(model["snapshots"])} snapshot(s) from '
        f'{esc(model["snapshots"][0])} to {esc(model["snapshots"][-1])}</p>',
        f'<div class="cards" id="summary">{body}</div>',
        f'<h2>Nodes &#215; components</h2><table id="compliance"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>',
        "</body></html>"]) + "\n"


RENDERERS: dict[str, t.Callable[[dict], str]] = {"json": to_json, "csv": to_csv, "html": to_html}


def write(model: dict, folder: str, formats: t.Iterable[str] = FORMATS) -> dict[str, str]:
    wanted = [str(f).strip().lower() for f in formats]
    unknown = sorted(set(wanted) - set(FORMATS))
    if unknown:
        raise ComplianceError(f"unknown compliance format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ComplianceError(f"cannot create {folder}: {exc}") from exc
    paths = {}
    for fmt in dict.fromkeys(wanted):
        paths[fmt] = os.path.join(folder, FILE_NAMES[fmt])
        report_mod.write_atomic(paths[fmt], RENDERERS[fmt](model), 0o644)
    return paths
