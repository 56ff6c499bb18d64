# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure half of benchmarks/fleet.py: parsing what the tools print, ratios, the Markdown section
and the plot. No lab, no root: tests/unit/test_bench_fleet.py tests it.

The results are one dict (also written with ``--json``)::

    {"environment": {...}, "settings": {...}, "lab": {...}, "floor": {...},
     "runs": [{"size": 10, "round": 1, "way": "update_fleet", "wall_s": .., "cpu_s": .., "peak_mib": .., "ok": true}, ...]}

``way`` is one of WAYS; a size's figure is the median over its rounds.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Iterable, Optional

MIB = 1024 * 1024
BEGIN = "<!-- fleet-benchmark:begin (written by benchmarks/fleet.py --write-doc; edits here are replaced) -->"
END = "<!-- fleet-benchmark:end -->"
HEADING = "## Fleet update"
# The ways measured, in the order of the table. naive: copy + command; get_url: the second way users pick,
# get_url from a plain HTTP server on the controller + command; raw: `ansible -m raw -a true`, the cost of
# reaching every node once, which a no-op update_fleet is measured against.
NAIVE, GET_URL, FLEET, NOOP, RAW = "naive", "get_url", "update_fleet", "update_fleet no-op", "raw true"
WAVES = "update_fleet default waves"
# A diagnosis: the no-op again with the firewall backend named, so the nodes skip auto-detection.
NOOP_NAMED = "update_fleet no-op, firewall_backend=iptables"
WAYS = (NAIVE, GET_URL, FLEET, NOOP, RAW, WAVES, NOOP_NAMED)
# The alternatives that move the components, each measured against update_fleet.
ALTERNATIVES = (NAIVE, GET_URL)
# The goals of issue 15, at the largest size: naive/update_fleet >= 5, update_fleet/floor <= 1.5,
# no-op/raw <= 2; controller CPU and peak memory per node below the naive playbook's; cost per node flat.
GOAL_SPEED, GOAL_FLOOR, GOAL_NOOP = 5.0, 1.5, 2.0
# "Flat": seconds per node at the largest size within this factor of those at the smallest.
FLAT_WITHIN = 1.25
ADHOC_LINE = re.compile(r"^(?P<host>\S+) \| (?P<status>[A-Z]+)", re.M)
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                   r"failed=(?P<failed>\d+)", re.M)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of ``ansible-playbook``: host -> {ok, changed, unreachable, failed}."""
    recap = {}
    for match in RECAP.finditer(output):
        recap[match["host"]] = {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
    return recap


def recap_problems(recap: dict[str, dict[str, int]], hosts: Iterable[str]) -> list[str]:
    """Hosts that failed, were unreachable, or are missing from the recap (empty: every host ran)."""
    problems = []
    for host in hosts:
        row = recap.get(host)
        if row is None:
            problems.append(f"{host}: not in the recap")
        elif row["failed"] or row["unreachable"]:
            problems.append(f"{host}: failed={row['failed']} unreachable={row['unreachable']}")
    return problems


def adhoc_problems(output: str, hosts: Iterable[str]) -> list[str]:
    """Hosts of an ad-hoc ``ansible -o`` run that did not report CHANGED or SUCCESS (empty: every host ran)."""
    status = {match["host"]: match["status"] for match in ADHOC_LINE.finditer(output)}
    problems = []
    for host in hosts:
        if host not in status:
            problems.append(f"{host}: no result")
        elif status[host] not in ("CHANGED", "SUCCESS"):
            problems.append(f"{host}: {status[host]}")
    return problems


def parse_cpu_stat(text: str) -> float:
    """cgroup v2 ``cpu.stat``: CPU seconds (usage_usec)."""
    for line in text.splitlines():
        key, _sep, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("cpu.stat has no usage_usec line")


def parse_iperf3(text: str) -> float:
    """Bytes per second received, from ``iperf3 --json`` (client side, either direction)."""
    data = json.loads(text)
    if "error" in data:
        raise ValueError(f"iperf3: {data['error']}")
    return data["end"]["sum_received"]["bits_per_second"] / 8


# The deploy's stages in the ledger (docs/deploy.md), grouped into the phases a node goes through.
PHASES = (("agent staged and started", "preflight", "staged"), ("inventory and plan", "staged", "planned"),
          ("download and verify", "planned", "verified"), ("install", "verified", "installed"), ("cleanup", "installed", "cleaned"))


def stage_seconds(events: list[dict]) -> dict[str, float]:
    """Median seconds per phase over the nodes, from the run's ledger events (engine events have no stage).

    A phase runs from the node's first ``start`` stage to its last ``end`` stage; a no-op run has no
    download or install, and its cleanup then starts at ``planned``."""
    per_node: dict[str, dict[str, list[float]]] = {}
    for event in events:
        if event.get("stage") and event.get("node"):
            per_node.setdefault(event["node"], {}).setdefault(event["stage"], []).append(event["ts"])
    phases: dict[str, list[float]] = {}
    for stages in per_node.values():
        for label, start, end in PHASES:
            if label == "cleanup" and "installed" not in stages:
                start = "planned"
            if start in stages and end in stages:
                phases.setdefault(label, []).append(max(stages[end]) - min(stages[start]))
    return {label: statistics.median(values) for label, values in phases.items()}


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def floor_seconds(total_bytes: int, bytes_per_s: float, nodes: int, handshake_s: float) -> float:
    """The floor of a fleet update: every byte over the measured link once, plus one SSH handshake per node."""
    if bytes_per_s <= 0:
        raise ValueError("throughput must be > 0")
    return total_bytes / bytes_per_s + nodes * handshake_s


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def median_of(runs: list[dict], size: int, way: str, key: str) -> Optional[float]:
    values = [r[key] for r in runs if r["size"] == size and r["way"] == way and r.get("ok") and r.get(key) is not None]
    return statistics.median(values) if values else None


def paired_ratio(runs: list[dict], size: int, slow: str, fast: str, key: str) -> Optional[float]:
    """Median over the rounds of slow/fast, each pair measured back to back in the same round."""
    pairs = []
    for round_no in sorted({r["round"] for r in runs if r["size"] == size}):
        one = {r["way"]: r for r in runs if r["size"] == size and r["round"] == round_no and r.get("ok")}
        if slow in one and fast in one and one[fast].get(key):
            pairs.append(one[slow][key] / one[fast][key])
    return statistics.median(pairs) if pairs else None


def sizes_of(runs: list[dict]) -> list[int]:
    return sorted({r["size"] for r in runs})


def summarize(results: dict) -> dict[int, dict]:
    """Per size: medians of every way, the ratios, seconds per node, the floor and how far above it."""
    runs, floor = results["runs"], results.get("floor", {})
    table: dict[int, dict] = {}
    for size in sizes_of(runs):
        row: dict = {"size": size}
        for way in WAYS:
            for key in ("wall_s", "cpu_s", "peak_mib"):
                row[f"{way}:{key}"] = median_of(runs, size, way, key)
            for key, per in (("wall_s", "s_per_node"), ("cpu_s", "cpu_per_node"), ("peak_mib", "mib_per_node")):
                value = row[f"{way}:{key}"]
                row[f"{way}:{per}"] = value / size if value is not None else None
        row["speed_ratio"] = paired_ratio(runs, size, NAIVE, FLEET, "wall_s")
        row["cpu_ratio"] = paired_ratio(runs, size, NAIVE, FLEET, "cpu_s")
        row["get_url_ratio"] = paired_ratio(runs, size, GET_URL, FLEET, "wall_s")
        row["noop_raw_ratio"] = paired_ratio(runs, size, NOOP, RAW, "wall_s")
        if floor.get("bytes_per_s") and floor.get("handshake_s") is not None:
            row["floor_s"] = floor_seconds(results["settings"]["repository_bytes"] * size, floor["bytes_per_s"], size, floor["handshake_s"])
            row["floor_ratio"] = ratio(row[f"{FLEET}:wall_s"], row["floor_s"])
        else:
            row["floor_s"] = row["floor_ratio"] = None
        table[size] = row
    return table


def flatness(summary: dict[int, dict], way: str) -> Optional[float]:
    """Seconds per node at the largest size over those at the smallest (1.0: perfectly flat); None with one size."""
    points = [(size, row[f"{way}:s_per_node"]) for size, row in sorted(summary.items()) if row[f"{way}:s_per_node"]]
    if len(points) < 2:
        return None
    return points[-1][1] / points[0][1]


def goals(summary: dict[int, dict]) -> list[tuple[str, str, Optional[bool]]]:
    """Each goal of issue 15 at the largest size: (goal, measured, met); met is None when not measured."""
    if not summary:
        return []
    size = max(summary)
    row = summary[size]

    def check(value: Optional[float], good: bool) -> Optional[bool]:
        return None if value is None else good

    speed, floor, noop = row["speed_ratio"], row["floor_ratio"], row["noop_raw_ratio"]
    found = [(f"update_fleet >= {GOAL_SPEED:g}x faster than naive at {size} nodes", fmt(speed, "x", 2),
              check(speed, speed is not None and speed >= GOAL_SPEED)),
             (f"update_fleet within {GOAL_FLOOR:g}x the floor", fmt(floor, "x", 2), check(floor, floor is not None and floor <= GOAL_FLOOR)),
             (f"no-op at most {GOAL_NOOP:g}x `raw true`", fmt(noop, "x", 2), check(noop, noop is not None and noop <= GOAL_NOOP))]
    for key, label, unit in (("cpu_per_node", "controller CPU per node", " s"), ("mib_per_node", "controller peak memory per node", " MiB")):
        ours, naive = row[f"{FLEET}:{key}"], row[f"{NAIVE}:{key}"]
        met = None if ours is None or naive is None else ours < naive
        found.append((f"{label} below naive's", f"{fmt(ours, unit, 2)} vs {fmt(naive, unit, 2)}", met))
    flat = flatness(summary, FLEET)
    span = f"from {min(summary)} to {size} nodes" if len(summary) > 1 else "(needs two sizes)"
    found.append((f"cost per node flat {span} (within {FLAT_WITHIN:g}x)" if len(summary) > 1 else f"cost per node flat {span}", fmt(flat, "x", 2),
                  None if flat is None else flat <= FLAT_WITHIN))
    return found


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt(value: Optional[float], unit: str = "", digits: int = 1) -> str:
    """A figure for the table; a missing one is a dash."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def fmt_ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"**{value:.1f}x**"


def main_table(summary: dict[int, dict]) -> list[str]:
    lines = ["| nodes (forks) | naive | get_url | update_fleet | update_fleet no-op | raw true | floor "
             f"| **naive / update_fleet** (goal >= {GOAL_SPEED:g}x) | get_url / update_fleet | update_fleet / floor (goal <= {GOAL_FLOOR:g}x) "
             f"| no-op / raw (goal <= {GOAL_NOOP:g}x) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, row in summary.items():
        lines.append(f"| {size} | {fmt(row[f'{NAIVE}:wall_s'], ' s')} | {fmt(row[f'{GET_URL}:wall_s'], ' s')} | {fmt(row[f'{FLEET}:wall_s'], ' s')} "
                     f"| {fmt(row[f'{NOOP}:wall_s'], ' s')} | {fmt(row[f'{RAW}:wall_s'], ' s')} | {fmt(row['floor_s'], ' s')} "
                     f"| {fmt_ratio(row['speed_ratio'])} | {fmt(row['get_url_ratio'], 'x')} | {fmt(row['floor_ratio'], 'x')} "
                     f"| {fmt(row['noop_raw_ratio'], 'x')} |")
    return lines


def per_node_table(summary: dict[int, dict]) -> list[str]:
    ways = (NAIVE, GET_URL, FLEET, NOOP, RAW)
    lines = ["| nodes (forks) | " + " | ".join(f"{way} s/node" for way in ways) + " | "
             + " | ".join(f"{way} CPU/node" for way in ways[:4]) + " | " + " | ".join(f"{way} peak mem/node" for way in ways[:4]) + " |",
             "|---" * (1 + len(ways) + 8) + "|"]
    for size, row in summary.items():
        cells = [fmt(row[f"{way}:s_per_node"], " s", 2) for way in ways]
        cells += [fmt(row[f"{way}:cpu_per_node"], " s", 2) for way in ways[:4]]
        cells += [fmt(row[f"{way}:mib_per_node"], " MiB", 1) for way in ways[:4]]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return lines


def goals_table(summary: dict[int, dict]) -> list[str]:
    lines = ["| goal (issue 15) | measured | met |", "|---|---|---|"]
    for goal, measured_value, met in goals(summary):
        lines.append(f"| {goal} | {measured_value} | {'-' if met is None else ('yes' if met else '**no**')} |")
    return lines


def extra_table(summary: dict[int, dict]) -> list[str]:
    """The diagnoses, where measured: default waves and the no-op with the firewall backend named."""
    rows = [(size, row) for size, row in summary.items() if row[f"{WAVES}:wall_s"] is not None or row[f"{NOOP_NAMED}:wall_s"] is not None]
    if not rows:
        return []
    lines = ["| nodes (forks) | update_fleet default waves | default waves s/node | no-op, firewall_backend=iptables |", "|---|---|---|---|"]
    for size, row in rows:
        lines.append(f"| {size} | {fmt(row[f'{WAVES}:wall_s'], ' s')} | {fmt(row[f'{WAVES}:s_per_node'], ' s', 2)} "
                     f"| {fmt(row[f'{NOOP_NAMED}:wall_s'], ' s')} |")
    return lines


def runs_table(runs: list[dict]) -> list[str]:
    lines = ["| nodes | round | way | wall | controller CPU | controller peak memory | result |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        result = "ok" if run.get("ok") else f"FAILED: {run.get('problem', '?')}"
        lines.append(f"| {run['size']} | {run['round']} | {run['way']} | {fmt(run.get('wall_s'), ' s')} | {fmt(run.get('cpu_s'), ' s')} "
                     f"| {fmt(run.get('peak_mib'), ' MiB', 0)} | {result} |")
    return lines


def short_task(name: str) -> str:
    """A task's name without its role prefix and explanation: ``Deploy the baseline over SSH``."""
    name = name.split(" : ", 1)[-1]
    for cut in (" (", " - every", ": "):
        name = name.split(cut, 1)[0]
    return name if len(name) <= 60 else name[:57] + "..."


def reading(results: dict, summary: dict[int, dict]) -> list[str]:
    """What the figures say, computed from them (the largest size)."""
    if not summary:
        return []
    size = max(summary)
    row, env = summary[size], results["environment"]
    notes = []
    full, noop, named, raw = row[f"{FLEET}:wall_s"], row[f"{NOOP}:wall_s"], row[f"{NOOP_NAMED}:wall_s"], row[f"{RAW}:wall_s"]
    if row["speed_ratio"] is not None:
        verdict = "met" if row["speed_ratio"] >= GOAL_SPEED else f"NOT met (short by {GOAL_SPEED / row['speed_ratio']:.1f}x)"
        notes.append(f"The goal (update_fleet >= {GOAL_SPEED:g}x faster than the naive playbook) is {verdict} on this machine: "
                     f"{row['speed_ratio']:.2f}x at {size} nodes.")
    if row["get_url_ratio"] is not None:
        notes.append(f"Against the second alternative (get_url from nginx on the controller, then command): "
                     f"{row['get_url_ratio']:.2f}x at {size} nodes.")
    if full and noop:
        stages = next((r.get("stages") for r in results["runs"] if r["size"] == size and r["way"] == FLEET and r.get("stages")), {})
        download = stages.get("download and verify")
        mib = results["settings"]["repository_bytes"] / MIB
        notes.append(f"The no-op run (nothing to download or install) takes {100 * noop / full:.0f} % of the full update at {size} nodes"
                     + (f" and {noop / raw:.1f}x an `ansible -m raw -a true` over the same nodes and forks ({raw:.1f} s)" if raw else "")
                     + (f"; download and verify of the {mib:.0f} MiB: {download:.1f} s per node, median, all nodes at once." if download else "."))
    cpu = row[f"{FLEET}:cpu_s"]
    if full and cpu:
        notes.append(f"update_fleet's controller processes used {cpu:.0f} CPU-s in {full:.0f} s of wall time on {env['cpus']} CPUs "
                     f"({100 * cpu / (full * env['cpus']):.0f} % of the machine): in the lab the nodes' side (sshd, Python modules, "
                     "the agents and their firewall commands) runs on the same CPUs, as do other developers' tests; on a real "
                     "fleet each node brings its own CPU, so the node-side part would overlap instead of queueing.")
    if noop and named:
        notes.append(f"Diagnosis: the same no-op with `fleet_firewall_backend=iptables` (the nodes skip firewall auto-detection) took "
                     f"{named:.0f} s instead of {noop:.0f} s.")
    return notes


def where_time_goes(runs: list[dict], size: int) -> list[str]:
    """The biggest tasks of each way at ``size`` (first round), and update_fleet's phases per node."""
    lines = []
    for way in (NAIVE, GET_URL, FLEET, NOOP, NOOP_NAMED):
        run = next((r for r in runs if r["size"] == size and r["way"] == way and r.get("tasks")), None)
        if run is None:
            continue
        tasks = sorted(run["tasks"].items(), key=lambda item: -item[1])[:6]
        shown = "; ".join(f"{short_task(name)} {seconds:.1f} s ({100 * seconds / run['wall_s']:.0f} %)" for name, seconds in tasks)
        lines.append(f"- {way}, {size} nodes, {run['wall_s']:.0f} s: {shown}")
        if run.get("stages"):
            phases = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in run["stages"].items())
            lines.append(f"  - per node (median, from the run's ledger): {phases}")
    return lines


def headline(summary: dict[int, dict]) -> str:
    """One line for the console and the README: the figures at the largest size."""
    if not summary:
        return "no measurements"
    size = max(summary)
    row = summary[size]
    parts = [f"N={size}: update_fleet {fmt(row[f'{FLEET}:wall_s'], ' s')}"]
    if row["speed_ratio"] is not None:
        parts.append(f"naive {fmt(row[f'{NAIVE}:wall_s'], ' s')}: speed ratio naive/update_fleet {row['speed_ratio']:.2f}x (goal >= {GOAL_SPEED:g}x)")
    if row["get_url_ratio"] is not None:
        parts.append(f"get_url {fmt(row[f'{GET_URL}:wall_s'], ' s')}: {row['get_url_ratio']:.2f}x")
    if row["cpu_ratio"] is not None:
        parts.append(f"controller CPU ratio {row['cpu_ratio']:.2f}x")
    if row["floor_ratio"] is not None:
        parts.append(f"{row['floor_ratio']:.1f}x the floor ({fmt(row['floor_s'], ' s')}; goal <= {GOAL_FLOOR:g}x)")
    if row[f"{NOOP}:s_per_node"] is not None:
        parts.append(f"no-op {row[f'{NOOP}:s_per_node']:.2f} s/node")
    if row["noop_raw_ratio"] is not None:
        parts.append(f"no-op {row['noop_raw_ratio']:.1f}x `raw true` (goal <= {GOAL_NOOP:g}x)")
    return ", ".join(parts)


def markdown(results: dict, plot: Optional[str] = None) -> str:
    """The "## Fleet update" section, between its markers."""
    env, settings, lab, floor = results["environment"], results["settings"], results.get("lab", {}), results.get("floor", {})
    summary = summarize(results)
    sizes = " + ".join(f"{size // MIB} MiB" for size in settings.get("component_bytes", [])) or "three components"
    lines = [BEGIN, HEADING, "",
             "`fleet.firmware.update_fleet` against the two playbooks users write today, measured side by side in one run by",
             "`benchmarks/fleet.py` on the lab (Linux nodes in network namespaces: 4 dual-stack reached over IPv4 for every",
             "IPv6-only one):", "",
             "- **naive**: `ansible.builtin.copy` each file, `ansible.builtin.command` the installer, `ansible.builtin.file state=absent`;",
             "- **get_url**: `ansible.builtin.get_url` each file (with its sha256) from nginx on the controller's lab addresses,",
             "  then `command` and `file state=absent` (nginx's CPU and memory count as the controller's);",
             "- **raw true**: `ansible -m raw -a true`, the cost of reaching every node once, against which the no-op update_fleet",
             "  (every node already current) is measured.", "",
             f"Repository: three fake components ({sizes}; shell installers writing a version file on the node, then random",
             "bytes after `exit`, so that ssh's compression cannot make a copy look cheaper than it is). Same nodes, same forks",
             f"(= nodes), all with `become` except `raw`; every node's versions removed before each run and checked after it; waves {settings['waves_label']}",
             "for update_fleet. Each round measures every way back to back (the order reverses between rounds); ratios are",
             "the median of the per-round ratios.", "",
             f"**Headline: {headline(summary)}.**", "",
             f"Machine: {env['cpus']} CPUs, Linux {env['kernel']}, Python {env['python']}, ansible-core {env['ansible_core']}; "
             f"measured {env['date']}, one run ({settings['rounds']} round(s)) taking {env.get('elapsed_s', 0) / 60:.0f} min; "
             f"1-minute load average {env['load_before']:.1f} before, {env['load_after']:.1f} after (the machine is shared "
             "with other developers' lab tests: absolute seconds move, the back-to-back ratios much less).", "",
             "Reproduce (root; takes its own lab up and down; needs nginx and iperf3: `make bench-deps`):", "", "```", settings["command"], "```", "",
             f"Controller CPU and peak memory: {env['accounting']}", ""]
    if plot:
        lines += [f"![wall time and seconds per node against the number of nodes]({plot})", ""]
    lines += ["Wall time (median of the rounds) and the ratios:", ""] + main_table(summary) + [""]
    lines += [f"The goals at {max(summary) if summary else '-'} nodes:", ""] + goals_table(summary) + [""]
    lines += ["Per node (wall, controller CPU seconds and controller peak memory, each divided by the number of nodes; forks = nodes):", ""]
    lines += per_node_table(summary) + [""]
    extra = extra_table(summary)
    if extra:
        lines += ["Diagnoses at the largest size (update_fleet's default waves `[1, \"10%\", \"100%\"]`, canary first; the no-op",
                  "with the nodes told their firewall backend):", ""] + extra + [""]
    if floor:
        lines += [f"The floor: {floor['repository_mib']:.0f} MiB per node through the lab's measured veth throughput "
                  f"(iperf3, one TCP stream, {floor['node']}, controller to node {floor['bytes_per_s'] / MIB:.0f} MiB/s, node to "
                  f"controller {floor.get('reverse_bytes_per_s', 0) / MIB:.0f} MiB/s; measured at the start and at the end, "
                  f"{measured(floor, 'bytes_per_s')} and {measured(floor, 'reverse_bytes_per_s')}, the better one kept; the "
                  "controller-to-node figure is used) plus one SSH "
                  f"handshake per node (`ssh ... true`, median {floor['handshake_s'] * 1000:.0f} ms), one after the other. No "
                  "real tool reaches it; it says how much of update_fleet's time is Ansible, SSH and the agent rather than bytes.", ""]
    if lab:
        lines += [f"Lab: {lab['nodes']} nodes ({lab['dual']} dual-stack, {lab['ipv6_only']} IPv6-only) up in {lab['up_s']:.1f} s "
                  f"({lab['up_s'] / lab['nodes']:.2f} s per node, from nothing), down in {fmt(lab.get('down_s'), ' s')}. "
                  "A size of N uses the first nodes of each kind in the same proportion.", ""]
    biggest = max(summary) if summary else None
    if biggest is not None and where_time_goes(results["runs"], biggest):
        lines += [f"Where the time goes at {biggest} nodes (seconds from each task's start to the next task's start: every host",
                  "finishes a task before the next starts; the 6 biggest tasks):", ""] + where_time_goes(results["runs"], biggest) + [""]
    notes = reading(results, summary) + list(results.get("notes", []))
    if notes:
        lines += ["Reading the numbers:", ""] + [f"- {note}" for note in notes] + [""]
    lines += ["Every run:", ""] + runs_table(results["runs"]) + ["", END]
    return "\n".join(lines) + "\n"


def measured(floor: dict, key: str) -> str:
    values = floor.get(f"{key}_measured") or [floor.get(key, 0)]
    return "/".join(f"{v / MIB:.0f}" for v in values) + " MiB/s"


def write_doc(path: Path, section: str) -> None:
    """Replace our section (between the markers) of ``path``; put it right after the intro the first time."""
    text = path.read_text() if path.exists() else "# Performance\n\nMeasured by the benchmarks under `benchmarks/` (`make bench`).\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _match: section, text, count=1)
    else:
        first = re.search(r"^## ", text, re.M)
        if first:
            text = text[:first.start()] + section + "\n" + text[first.start():]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def plot(results: dict, path: Path) -> Path:
    """Wall time, seconds per node and controller peak memory against the number of nodes, both ways."""
    import matplotlib  # pylint: disable=import-outside-toplevel  # only the plot needs it (requirements-bench.txt)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    summary = summarize(results)
    sizes = list(summary)
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    styles = {NAIVE: ("tab:red", "o"), GET_URL: ("tab:orange", "D"), FLEET: ("tab:blue", "s"), NOOP: ("tab:green", "^"),
              RAW: ("tab:grey", "v")}
    panels = (("wall_s", "wall time (s)"), ("s_per_node", "seconds per node"), ("peak_mib", "controller peak memory (MiB)"))
    for axis, (key, title) in zip(axes, panels):
        for way, (colour, marker) in styles.items():
            points = [(size, summary[size][f"{way}:{key}"]) for size in sizes if summary[size][f"{way}:{key}"] is not None]
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour, label=way)
        if key == "wall_s":
            floor = [(size, summary[size]["floor_s"]) for size in sizes if summary[size]["floor_s"] is not None]
            if floor:
                axis.plot([p[0] for p in floor], [p[1] for p in floor], linestyle="--", color="grey", label="floor")
        axis.set_title(title)
        axis.set_xlabel("nodes (forks = nodes)")
        axis.set_xticks(sizes)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[0].legend()
    mib = results["settings"]["repository_bytes"] / MIB
    figure.suptitle(f"fleet.firmware update_fleet vs the naive and get_url playbooks, {mib:.0f} MiB per node ({results['environment']['date']})")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
