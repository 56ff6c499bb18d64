# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report: one model of a run, written as JSON, JUnit XML and one HTML page.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. Controller-only code (standard library).

The model is built from a run folder's ledger files (``<run_dir>/ledger/<node>.jsonl``) and,
when given, the ``fleet.firmware.deploy`` task results of the nodes (the results know the
versions before and after, which the ledger does not)::

    model = build_model(run_dir, results={"lin01": deploy_result, ...})
    paths = write_reports(model, "/some/folder", formats=("json", "xml", "html"))

Users: the callback ``fleet.firmware.report`` and the action ``fleet.firmware.render_report``.
"""
from __future__ import annotations

import datetime
import html
import json
import os
import re
import tempfile
import typing as t
import xml.etree.ElementTree as ET

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod

FORMAT_VERSION = 1
FORMATS = ("json", "xml", "html")
FILE_NAMES = {"json": "report.json", "xml": "report.xml", "html": "report.html"}
# not_activated: installed, but after the reboot the node runs another version (a failure);
# unverified: installed, and it cannot be re-detected after the reboot (not a failure).
COMPONENT_STATUSES = ("installed", "failed", "skipped", "not_attempted", "cancelled", "not_activated", "unverified")
# skipped: a host of the play the deploy never ran on (its reason says why: a failed earlier task, a
# false condition, a wave that never started).
NODE_STATUSES = ("ok", "failed", "cancelled", "unreachable", "incomplete", "skipped")
# Component stages the agent reports (copied into the ledger by the deploy action).
TERMINAL_COMPONENT_STAGES = ("installed", "failed", "skipped")
# The timeline's colour groups: the ledger's stages by phase of the session.
PHASES = {
    "preflight": "setup", "staged": "setup", "started": "setup", "firewall_open": "setup",
    "inventoried": "plan", "planned": "plan",
    "downloading": "delivery", "verified": "delivery",
    "installing": "install", "installed": "install", "skipped": "skipped", "failed": "failed",
    "reboot_pending": "reboot", "rebooting": "reboot", "activated": "reboot",
    "cancelled": "cancelled", "cleaned": "cleaned",
}

_NULL_STR = {"type": ["string", "null"]}
_NULL_NUM = {"type": ["number", "null"]}
_COMPONENT_SCHEMA = {
    "type": "object",
    "required": ["name", "before", "after", "action", "status", "rc", "message", "duration_s"],
    "properties": {
        "name": {"type": "string"}, "before": _NULL_STR, "after": _NULL_STR, "action": _NULL_STR,
        "status": {"enum": list(COMPONENT_STATUSES)}, "rc": {"type": ["integer", "null"]},
        "message": _NULL_STR, "duration_s": _NULL_NUM, "source": {"enum": ["result", "ledger"]},
        # Why the plan chose this (a site policy rule, "not deployable: ..."), when the result says.
        "reason": _NULL_STR, "policy": _NULL_STR,
        # Why the component can never go to this node (the plan's not_deployable), when it cannot.
        "not_deployable": _NULL_STR,
    },
    "additionalProperties": False,
}
_STAGE_SCHEMA = {
    "type": "object",
    "required": ["stage", "phase", "start", "end", "duration_s"],
    "properties": {
        "stage": {"enum": list(ledger_mod.STAGES)}, "phase": {"type": "string"}, "component": _NULL_STR,
        "start": {"type": "number"}, "end": {"type": "number"}, "duration_s": {"type": "number", "minimum": 0},
        "message": _NULL_STR, "rc": {"type": ["integer", "null"]},
    },
    "additionalProperties": False,
}
_NODE_SCHEMA = {
    "type": "object",
    "required": ["node", "status", "components", "stages", "start", "end", "duration_s", "reboot_required", "rebooted"],
    "properties": {
        "node": {"type": "string"}, "host": _NULL_STR, "status": {"enum": list(NODE_STATUSES)},
        "task_status": {"enum": ["ok", "changed", "failed", "unreachable", "skipped", None]}, "msg": _NULL_STR,
        "reason": _NULL_STR,
        "run_tag": _NULL_STR, "ledger": _NULL_STR, "delivery": _NULL_STR, "transfer": _NULL_STR,
        "reboot_required": {"type": ["boolean", "null"]}, "rebooted": {"type": ["boolean", "null"]},
        "cleanup": {"type": "array", "items": {"type": "string"}}, "last_stage": _NULL_STR,
        "start": _NULL_NUM, "end": _NULL_NUM, "duration_s": _NULL_NUM,
        "components": {"type": "array", "items": _COMPONENT_SCHEMA},
        "stages": {"type": "array", "items": _STAGE_SCHEMA},
        "engine_events": {"type": "array", "items": {"type": "object"}},
        # signatures=warn/off (and what warn let through): printed in every run and in the report.
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
# The JSON schema of report.json (draft 2020-12); shipped here so that it is always the code's.
SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "fleet.firmware/report.schema.json",
    "title": "fleet.firmware fleet report",
    "type": "object",
    "required": ["format", "generated_at", "run_tag", "run_dir", "summary", "components", "nodes"],
    "properties": {
        "format": {"const": FORMAT_VERSION},
        "generated_at": {"type": "string"},
        "run_tag": _NULL_STR,
        "run_dir": _NULL_STR,
        "start": _NULL_NUM, "end": _NULL_NUM, "duration_s": _NULL_NUM,
        "summary": {
            "type": "object",
            "required": ["nodes", "nodes_by_status", "components", "components_by_status", "rebooted", "reboot_required"],
            "properties": {
                "nodes": {"type": "integer", "minimum": 0},
                "nodes_by_status": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                "components": {"type": "integer", "minimum": 0},
                "components_by_status": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                "rebooted": {"type": "integer", "minimum": 0},
                "reboot_required": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False,
        },
        "components": {"type": "array", "items": {"type": "string"}},
        "nodes": {"type": "array", "items": _NODE_SCHEMA},
    },
    "additionalProperties": False,
}


class ReportError(Exception):
    """A report cannot be built or written; the message names the folder or file."""


# -- the model


def build_model(run_dir: str | None, results: dict[str, dict] | None = None, run_tag: str | None = None,
                now: datetime.datetime | None = None) -> dict:
    """The report of one run: every node of the ledger and of ``results`` (host -> deploy result).

    A node is known by its ledger file name (the deploy's node id); a result is matched to its
    ledger file through the result's ``ledger`` path, else through the host name.
    """
    results = results or {}
    ledger_nodes = ledger_mod.nodes(run_dir) if run_dir else []
    by_node: dict[str, tuple[str | None, dict | None]] = {}
    for host, result in results.items():
        by_node[_node_of(host, result)] = (host, result)
    for node in ledger_nodes:
        by_node.setdefault(node, (None, None))
    nodes = [_node_model(run_dir, node, host, result) for node, (host, result) in sorted(by_node.items())]
    tag = run_tag or next((n["run_tag"] for n in nodes if n.get("run_tag")), None) or (os.path.basename(os.path.normpath(run_dir)) if run_dir else None)
    starts = [n["start"] for n in nodes if n["start"] is not None]
    ends = [n["end"] for n in nodes if n["end"] is not None]
    generated = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds")
    return {
        "format": FORMAT_VERSION, "generated_at": generated, "run_tag": tag, "run_dir": run_dir,
        "start": min(starts) if starts else None, "end": max(ends) if ends else None,
        "duration_s": round(max(ends) - min(starts), 3) if starts and ends else None,
        "summary": _summary(nodes), "components": _component_names(nodes), "nodes": nodes,
    }


def _node_of(host: str, result: dict) -> str:
    path = result.get("ledger") if isinstance(result, dict) else None
    if isinstance(path, str) and path.endswith(".jsonl"):
        return os.path.basename(path)[: -len(".jsonl")]
    # The deploy action's node id: the host name with anything but letters, digits, . _ : - replaced.
    return re.sub(r"[^A-Za-z0-9._:-]", "_", host).lstrip(".")[:128] or "node"


def _node_model(run_dir: str | None, node: str, host: str | None, result: dict | None) -> dict:
    events = _events(run_dir, node)
    stages = _stages(events)
    result = result if isinstance(result, dict) else None
    components = _components_from_result(result) if result and isinstance(result.get("components"), list) else _components_from_ledger(events)
    times = [e["ts"] for e in events]
    model = {
        "node": node, "host": host, "status": "ok", "task_status": _task_status(result), "msg": _text(result.get("msg")) if result else None,
        "reason": _text(result.get("reason") or result.get("why")) if result else None,
        "run_tag": _text(result.get("run_tag")) if result else None,
        "ledger": ledger_mod.ledger_path(run_dir, node) if run_dir and events else (_text(result.get("ledger")) if result else None),
        "delivery": _text(result.get("delivery")) if result else None, "transfer": _text(result.get("transfer")) if result else None,
        "reboot_required": _bool(result.get("reboot_required")) if result else None,
        "rebooted": _bool(result.get("rebooted")) if result else _rebooted_from_ledger(events),
        "cleanup": [str(c) for c in result.get("cleanup") or []] if result else [],
        "last_stage": stages[-1]["stage"] if stages else None,
        "start": min(times) if times else None, "end": max(times) if times else None,
        "duration_s": round(max(times) - min(times), 3) if times else None,
        "components": components, "stages": stages,
        "engine_events": [_engine_event(e) for e in events if e.get("source") == "engine"],
        "warnings": [str(w) for w in result.get("signature_warnings") or []] if result else [],
    }
    model["status"] = _node_status(model, events)
    return model


def _events(run_dir: str | None, node: str) -> list[dict]:
    if not run_dir:
        return []
    try:
        events = ledger_mod.read_since(run_dir, node, 0)[0]
    except (ledger_mod.LedgerError, ledger_mod.EventError) as exc:
        raise ReportError(str(exc)) from exc
    good = [e for e in events if isinstance(e, dict) and isinstance(e.get("ts"), (int, float)) and not isinstance(e.get("ts"), bool)]
    # Engine and deploy count their own seq; the timestamps order the lines of both writers.
    return sorted(good, key=lambda e: (e["ts"], e.get("seq", 0)))


def _stages(events: list[dict]) -> list[dict]:
    """Consecutive events of the same stage and component form one segment, which lasts until the next
    (except the outcome of the last component of a series: an instant)."""
    staged = [e for e in events if e.get("stage") in PHASES]
    segments: list[dict] = []
    for event in staged:
        component = _text(event.get("component"))
        if segments and segments[-1]["stage"] == event["stage"] and segments[-1]["component"] == component:
            _update_outcome(segments[-1], event)
            continue
        if segments:
            segments[-1]["end"] = event["ts"]
        segments.append({"stage": event["stage"], "phase": PHASES[event["stage"]], "component": component,
                         "start": event["ts"], "end": event["ts"], "message": None, "rc": None})
        _update_outcome(segments[-1], event)
    for segment, following in zip(segments, segments[1:] + [None]):
        if segment["stage"] in TERMINAL_COMPONENT_STAGES and segment["component"] and (following is None or not following["component"]):
            # The last component's outcome is an instant: what follows until the next stage (the
            # reboot decision, stopping the agent, the cleanup) is no install; the bar shows a gap.
            segment["end"] = segment["start"]
        segment["duration_s"] = round(max(0.0, segment["end"] - segment["start"]), 6)
    return segments


def _update_outcome(segment: dict, event: dict) -> None:
    if isinstance(event.get("message"), str):
        segment["message"] = event["message"]
    if isinstance(event.get("rc"), int) and not isinstance(event.get("rc"), bool):
        segment["rc"] = event["rc"]


def _components_from_result(result: dict) -> list[dict]:
    rows = []
    for item in result["components"]:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        status = item.get("status") if item.get("status") in COMPONENT_STATUSES else "not_attempted"
        row = {"name": str(item["name"]), "before": _text(item.get("before")), "after": _text(item.get("after")),
               "action": _text(item.get("action")), "status": status, "rc": _int(item.get("rc")),
               "message": _text(item.get("message")), "duration_s": _number(item.get("duration_s")), "source": "result"}
        # Rendered generically: any result's reason for a component (spelt reason or why), and the site rule.
        for key, value in (("reason", item.get("reason") or item.get("why")), ("policy", item.get("policy")),
                           ("not_deployable", item.get("not_deployable"))):
            if value not in (None, ""):
                row[key] = str(value)
        rows.append(row)
    return rows


def _components_from_ledger(events: list[dict]) -> list[dict]:
    """Without a task result: what the ledger says of each component (no versions there)."""
    order: list[str] = []
    seen: dict[str, dict] = {}
    ended_cancelled = any(e.get("stage") == "cancelled" for e in events)
    for event in events:
        name = event.get("component")
        if not isinstance(name, str) or event.get("source") == "engine" or event.get("stage") not in PHASES:
            continue
        if name not in seen:
            order.append(name)
            seen[name] = {"name": name, "before": None, "after": None, "action": None, "status": None, "rc": None,
                          "message": None, "duration_s": None, "source": "ledger", "_start": None}
        row = seen[name]
        stage = event["stage"]
        if stage == "installing" and row["_start"] is None:
            row["_start"] = event["ts"]
        if stage in TERMINAL_COMPONENT_STAGES:
            row["status"] = stage
            if row["_start"] is not None:
                row["duration_s"] = round(event["ts"] - row["_start"], 6)
        if _int(event.get("rc")) is not None:
            row["rc"] = _int(event.get("rc"))
        if isinstance(event.get("message"), str):
            row["message"] = event["message"]
    rows = []
    for name in order:
        row = seen[name]
        del row["_start"]
        if row["status"] is None:
            row["status"] = "cancelled" if ended_cancelled else "not_attempted"
        elif row["status"] == "skipped" and not (row["message"] or "").startswith("omit_"):
            # As the deploy action: a skip that is not a dependency skip ("omit_...") was a cancel.
            row["status"] = "cancelled"
        rows.append(row)
    return rows


def _rebooted_from_ledger(events: list[dict]) -> bool | None:
    if not events:
        return None
    return any(e.get("stage") == "activated" for e in events)


def _engine_event(event: dict) -> dict:
    return {k: event[k] for k in ("ts", "event", "component", "message") if k in event}


def _task_status(result: dict | None) -> str | None:
    if not result:
        return None
    if result.get("unreachable"):
        return "unreachable"
    if result.get("skipped"):
        return "skipped"
    if result.get("failed"):
        return "failed"
    return "changed" if result.get("changed") else "ok"


def _node_status(node: dict, events: list[dict]) -> str:
    stages = {e.get("stage") for e in events}
    if node["task_status"] == "unreachable":
        return "unreachable"
    if node["task_status"] == "skipped" and not events:
        return "skipped"
    if "cancelled" in stages or any(c["status"] == "cancelled" for c in node["components"]):
        return "cancelled"
    if node["task_status"] == "failed" or "failed" in stages or any(c["status"] in ("failed", "not_activated") for c in node["components"]):
        return "failed"
    if node["task_status"] is None and "cleaned" not in stages:
        return "incomplete"  # no result and the session never reached its cleanup: still running, or killed
    return "ok"


def _summary(nodes: list[dict]) -> dict:
    by_node = {s: 0 for s in NODE_STATUSES}
    by_component = {s: 0 for s in COMPONENT_STATUSES}
    for node in nodes:
        by_node[node["status"]] += 1
        for component in node["components"]:
            by_component[component["status"]] += 1
    return {"nodes": len(nodes), "nodes_by_status": by_node, "components": sum(by_component.values()),
            "components_by_status": by_component, "rebooted": sum(1 for n in nodes if n["rebooted"]),
            "reboot_required": sum(1 for n in nodes if n["reboot_required"])}


def _component_names(nodes: list[dict]) -> list[str]:
    names: list[str] = []
    for node in nodes:
        for component in node["components"]:
            if component["name"] not in names:
                names.append(component["name"])
    return names


def _text(value: t.Any) -> str | None:
    return None if value is None else str(value)


def _int(value: t.Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: t.Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _bool(value: t.Any) -> bool | None:
    return value if isinstance(value, bool) else None


# -- writers


def to_json(model: dict) -> str:
    return json.dumps(model, indent=2, sort_keys=False) + "\n"


def to_junit(model: dict) -> str:
    """JUnit XML: a testsuite per node, a testcase per node x component.

    ``failed`` is a <failure>, ``skipped``/``not_attempted``/``cancelled`` a <skipped>. A node that
    failed, was cancelled, never reached its cleanup or was unreachable without a failed component
    gets one more testcase, ``session``, with that <failure> (<error> when unreachable): otherwise
    CI would show it green.
    """
    root = ET.Element("testsuites", name=f"fleet.firmware {model.get('run_tag') or ''}".strip())
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for node in model["nodes"]:
        suite = ET.SubElement(root, "testsuite", name=node["node"])
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        classname = f"fleet.firmware.{model.get('run_tag') or 'run'}.{node['node']}"
        for component in node["components"]:
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase", name=component["name"], classname=classname,
                                 time=f"{component['duration_s'] or 0:.3f}")
            detail = _component_detail(component)
            if component["status"] in ("failed", "not_activated"):
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", message=_xml_text(component["message"] or component["status"]), type=component["status"])
                failure.text = _xml_text(detail)
            elif component["status"] in ("skipped", "not_attempted", "cancelled"):
                counts["skipped"] += 1
                said = f"not deployable: {component['not_deployable']}" if component.get("not_deployable") else component["message"] or ""
                ET.SubElement(case, "skipped", message=_xml_text(f"{component['status']}: {said}".rstrip(": ")))
            ET.SubElement(case, "system-out").text = _xml_text(detail)
        _session_case(suite, node, classname, counts)
        node_time = node["duration_s"] or 0.0
        total_time += node_time
        suite.set("time", f"{node_time:.3f}")
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        if node["start"] is not None:
            suite.set("timestamp", _iso(node["start"]))
        suite.set("hostname", node["host"] or node["node"])
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _session_case(suite: ET.Element, node: dict, classname: str, counts: dict) -> None:
    if node["status"] == "ok" or any(c["status"] == "failed" for c in node["components"]):
        return
    counts["tests"] += 1
    case = ET.SubElement(suite, "testcase", name="session", classname=classname, time=f"{node['duration_s'] or 0:.3f}")
    message = node["reason"] or node["msg"] or f"the node's session ended {node['status']} (last stage {node['last_stage'] or 'none'})"
    if node["status"] == "skipped":
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", message=_xml_text(f"skipped: {message}"))
    elif node["status"] == "unreachable":
        counts["errors"] += 1
        ET.SubElement(case, "error", message=_xml_text(message), type="unreachable").text = _xml_text(message)
    else:
        counts["failures"] += 1
        ET.SubElement(case, "failure", message=_xml_text(message), type=node["status"]).text = _xml_text(message)


def _component_detail(component: dict) -> str:
    return (f"status={component['status']} action={component['action']} before={component['before']} "
            f"after={component['after']} rc={component['rc']} message={component['message']}")


# XML 1.0 cannot carry most control characters, even escaped: drop them.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return _XML_BAD.sub("", value)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


# -- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .5em}
.meta{color:#57606a;font-size:.9em}
.cards{display:flex;flex-wrap:wrap;gap:.6em}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.4em .8em;min-width:6em}
.card b{display:block;font-size:1.4em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.st{min-width:7em}
td.st small{display:block;color:#1b1f24;opacity:.8}
.s-installed{background:#c7f0d2}.s-failed,.s-not_activated{background:#ffc9c9}.s-unverified{background:#fff3bf}.s-skipped{background:#e6e6e6}
.s-not_attempted{background:#fff3bf}.s-cancelled{background:#ffd8a8}.s-none{background:#fff}
.n-ok{color:#1a7f37}.n-failed,.n-unreachable{color:#cf222e}.n-cancelled,.n-incomplete{color:#9a6700}.n-skipped{color:#57606a}
.legend span{display:inline-block;padding:.1em .5em;margin-right:.3em;border:1px solid #d0d7de}
svg text{font-size:12px;fill:#1b1f24}
svg rect{stroke:#fff;stroke-width:.5}
.p-setup{fill:#8da9c4}.p-plan{fill:#a5d8ff}.p-delivery{fill:#74c0fc}.p-install{fill:#51cf66}
.p-skipped{fill:#ced4da}.p-failed{fill:#fa5252}.p-reboot{fill:#b197fc}.p-cancelled{fill:#ffa94d}.p-cleaned{fill:#495057}
.l-setup{background:#8da9c4}.l-plan{background:#a5d8ff}.l-delivery{background:#74c0fc}.l-install{background:#51cf66}
.l-skipped{background:#ced4da}.l-failed{background:#fa5252}.l-reboot{background:#b197fc}.l-cancelled{background:#ffa94d}
.l-cleaned{background:#495057;color:#fff}
"""
_URL_SCHEME = re.compile(r"(?i)\b(https?|ftp|wss?):(?=//)")


def esc(value: t.Any) -> str:
    """Escape for HTML text and attribute values (control characters dropped). A URL in a message
    stays readable but is no URL in the page's source (its colon becomes ``&#58;``), so the page
    holds no link of any kind."""
    text = html.escape(_XML_BAD.sub("", "" if value is None else str(value)), quote=True)
    return _URL_SCHEME.sub(lambda m: m.group(1) + "&#58;", text)


def to_html(model: dict) -> str:
    """One self-contained page: no script, no external resource (a CSP forbids any fetch)."""
    title = f"fleet.firmware report {model.get('run_tag') or ''}".strip()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">generated {esc(model["generated_at"])}; run folder {esc(model.get("run_dir") or "-")}; '
        f'started {esc(_iso(model["start"]) if model.get("start") else "-")}; duration {esc(_seconds(model.get("duration_s")))}</p>',
        _html_summary(model), _html_matrix(model), _html_not_deployable(model), _html_timeline(model), _html_nodes(model),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _html_summary(model: dict) -> str:
    summary = model["summary"]
    cards = [("nodes", summary["nodes"], "")]
    cards += [(f"nodes {s}", n, f"n-{s}") for s, n in summary["nodes_by_status"].items() if n]
    cards += [("components", summary["components"], "")]
    cards += [(s.replace("_", " "), n, f"s-{s}") for s, n in summary["components_by_status"].items() if n]
    cards += [("rebooted", summary["rebooted"], ""), ("reboot required", summary["reboot_required"], "")]
    body = "".join(f'<div class="card {cls}" data-count="{esc(label)}"><b>{n}</b>{esc(label)}</div>' for label, n, cls in cards)
    return f'<h2>Summary</h2><div class="cards" id="summary">{body}</div>'


def _html_matrix(model: dict) -> str:
    names = model["components"]
    head = "".join(f"<th scope=\"col\">{esc(name)}</th>" for name in names)
    rows = []
    for node in model["nodes"]:
        by_name = {c["name"]: c for c in node["components"]}
        cells = []
        for name in names:
            component = by_name.get(name)
            if component is None:
                cells.append('<td class="st s-none" data-status="">-</td>')
                continue
            versions = f"{_version(component['before'])} &#8594; {_version(component['after'])}" if component["source"] == "result" else ""
            tip = f"rc={component['rc']}; {component['message'] or ''}; {_seconds(component['duration_s'])}"
            why = "".join(f"<small class='{key}'>{esc(key.replace('_', ' '))}: {esc(component[key])}</small>"
                          for key in ("reason", "policy", "not_deployable") if component.get(key))
            cells.append(f'<td class="st s-{esc(component["status"])}" data-status="{esc(component["status"])}" title="{esc(tip)}">'
                         f"{esc(component['status'].replace('_', ' '))}<small class='versions'>{versions}</small>"
                         f"<small>{esc(component['message'] or '')}</small>{why}</td>")
        rows.append(f'<tr data-node="{esc(node["node"])}"><th scope="row" class="n-{esc(node["status"])}">{esc(node["node"])}'
                    f"<small> {esc(node['status'])}</small></th>{''.join(cells)}</tr>")
    legend = "".join(f'<span class="s-{s}">{esc(s.replace("_", " "))}</span>' for s in COMPONENT_STATUSES)
    return (f'<h2>Nodes &#215; components</h2><p class="legend">{legend}</p>'
            f'<table id="matrix"><thead><tr><th>node</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def not_deployable(model: dict) -> list[dict]:
    """The "why not deployable" table: one row per component and reason, with the nodes it holds for."""
    rows: dict[tuple[str, str], list[str]] = {}
    for node in model["nodes"]:
        for component in node["components"]:
            if component.get("not_deployable"):
                rows.setdefault((component["name"], component["not_deployable"]), []).append(node["node"])
    return [{"component": name, "why": why, "nodes": nodes} for (name, why), nodes in sorted(rows.items())]


def _html_not_deployable(model: dict) -> str:
    rows = not_deployable(model)
    if not rows:
        return ""
    body = "".join(f'<tr><td>{esc(r["component"])}</td><td class="not_deployable">{esc(r["why"])}</td>'
                   f'<td>{esc(", ".join(r["nodes"]))}</td></tr>' for r in rows)
    return ('<h2>Why not deployable</h2><table id="not-deployable"><thead><tr><th>component</th><th>why not deployable</th>'
            f"<th>nodes</th></tr></thead><tbody>{body}</tbody></table>")


def _version(value: str | None) -> str:
    return esc(value) if value else "&#8211;"


def _html_timeline(model: dict) -> str:
    """One bar per node, a rectangle per stage segment, on a common time axis from the run's start."""
    nodes = [n for n in model["nodes"] if n["stages"]]
    label_w, bar_h, gap, width = 160, 18, 8, 900
    height = 30 + len(nodes) * (bar_h + gap) + 20
    start = model.get("start") or 0.0
    span = max(model.get("duration_s") or 0.0, 0.001)
    scale = (width - label_w - 20) / span
    out = [f'<svg id="timeline" role="img" aria-label="timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for tick in _ticks(span):
        x = label_w + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 15}" stroke="#d0d7de"/>'
                   f'<text x="{x:.1f}" y="14" text-anchor="middle">{tick:g} s</text>')
    for row, node in enumerate(nodes):
        y = 28 + row * (bar_h + gap)
        out.append(f'<g class="bar" data-node="{esc(node["node"])}"><text x="0" y="{y + bar_h - 5}">{esc(node["node"])}</text>')
        for segment in node["stages"]:
            x = label_w + (segment["start"] - start) * scale
            w = max(segment["duration_s"] * scale, 2.0)  # instant stages (cleaned) stay visible
            what = segment["stage"] + (f" {segment['component']}" if segment["component"] else "")
            tip = f"{node['node']}: {what}, {segment['duration_s']:.3f} s" + (f", rc {segment['rc']}" if segment["rc"] is not None else "")
            out.append(f'<rect class="p-{esc(segment["phase"])}" data-stage="{esc(segment["stage"])}" x="{x:.2f}" y="{y}" '
                       f'width="{w:.2f}" height="{bar_h}"><title>{esc(tip)}</title></rect>')
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(f'<span class="l-{p}">{esc(p)}</span>' for p in dict.fromkeys(PHASES.values()))
    empty = "" if nodes else "<p>No ledger events: no timeline.</p>"
    return f'<h2>Timeline</h2><p class="legend">{legend}</p>{empty}{"".join(out)}'


def _ticks(span: float) -> list[float]:
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 10), 7200)
    count = int(span / step) + 1
    return [round(i * step, 3) for i in range(count)]


def _html_nodes(model: dict) -> str:
    rows = []
    for node in model["nodes"]:
        rows.append(
            f"<tr><td>{esc(node['node'])}</td><td class=\"n-{esc(node['status'])}\">{esc(node['status'])}</td>"
            f"<td>{esc(node['last_stage'] or '-')}</td><td>{esc(node['delivery'] or '-')}</td>"
            f"<td>{esc(_yes_no(node['reboot_required']))}</td><td>{esc(_yes_no(node['rebooted']))}</td>"
            f"<td>{esc(_seconds(node['duration_s']))}</td><td class=\"reason\">{esc(node.get('reason') or '')}</td>"
            f"<td>{esc(node['msg'] or '')}{_html_warnings(node)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("node", "status", "last stage", "delivery", "reboot required", "rebooted", "duration", "why", "message"))
    return f'<h2>Nodes</h2><table id="nodes"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _html_warnings(node: dict) -> str:
    return "".join(f'<div class="warning">warning: {esc(w)}</div>' for w in node.get("warnings") or [])


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


# -- files

RENDERERS: dict[str, t.Callable[[dict], str]] = {"json": to_json, "xml": to_junit, "html": to_html}


def check_formats(formats: t.Iterable[str]) -> list[str]:
    wanted = [str(f).strip().lower() for f in formats if str(f).strip()]
    unknown = sorted(set(wanted) - set(FORMATS))
    if unknown:
        raise ReportError(f"unknown report format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    return list(dict.fromkeys(wanted))


def write_reports(model: dict, folder: str, formats: t.Iterable[str] = FORMATS, mode: int = 0o644) -> dict[str, str]:
    """Write each format to ``folder`` (created), atomically; return format -> path."""
    wanted = check_formats(formats)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {folder}: {exc.strerror}") from exc
    written = {}
    for fmt in wanted:
        path = os.path.join(folder, FILE_NAMES[fmt])
        _write_atomic(path, RENDERERS[fmt](model), mode)
        written[fmt] = path
    return written


def _write_atomic(path: str, text: str, mode: int) -> None:
    """A reader (a browser, CI) never sees half a file."""
    handle, temp = tempfile.mkstemp(prefix=".report-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        raise ReportError(f"cannot write {path}: {exc.strerror}") from exc


# Shared with the compliance report (plugin_utils/compliance.py): one page style, one atomic write.
CSS = _CSS
write_atomic = _write_atomic
