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
# The ways measured, in the order of the table.
NAIVE, FLEET, NOOP, WAVES = "naive", "update_fleet", "update_fleet no-op", "update_fleet default waves"
# A diagnosis: the no-op again with the firewall backend named, so the nodes skip auto-detection.
NOOP_NAMED = "update_fleet no-op, firewall_backend=iptables"
WAYS = (NAIVE, FLEET, NOOP, WAVES, NOOP_NAMED)
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
            wall = row[f"{way}:wall_s"]
            row[f"{way}:s_per_node"] = wall / size if wall is not None else None
        row["speed_ratio"] = paired_ratio(runs, size, NAIVE, FLEET, "wall_s")
        row["cpu_ratio"] = paired_ratio(runs, size, NAIVE, FLEET, "cpu_s")
        if floor.get("bytes_per_s") and floor.get("handshake_s") is not None:
            row["floor_s"] = floor_seconds(results["settings"]["repository_bytes"] * size, floor["bytes_per_s"], size, floor["handshake_s"])
            row["floor_ratio"] = ratio(row[f"{FLEET}:wall_s"], row["floor_s"])
        else:
            row["floor_s"] = row["floor_ratio"] = None
        table[size] = row
    return table


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
    lines = ["| nodes (forks) | naive wall | update_fleet wall | **speed ratio** | naive CPU | update_fleet CPU | CPU ratio "
             "| naive peak mem | update_fleet peak mem | floor | update_fleet / floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, row in summary.items():
        lines.append(f"| {size} | {fmt(row[f'{NAIVE}:wall_s'], ' s')} | {fmt(row[f'{FLEET}:wall_s'], ' s')} | {fmt_ratio(row['speed_ratio'])} "
                     f"| {fmt(row[f'{NAIVE}:cpu_s'], ' s')} | {fmt(row[f'{FLEET}:cpu_s'], ' s')} | {fmt_ratio(row['cpu_ratio'])} "
                     f"| {fmt(row[f'{NAIVE}:peak_mib'], ' MiB', 0)} | {fmt(row[f'{FLEET}:peak_mib'], ' MiB', 0)} "
                     f"| {fmt(row['floor_s'], ' s')} | {fmt(row['floor_ratio'], 'x')} |")
    return lines


def per_node_table(summary: dict[int, dict]) -> list[str]:
    lines = ["| nodes (forks) | naive s/node | update_fleet s/node | update_fleet no-op s/node | no-op wall | no-op CPU "
             "| default waves wall | default waves s/node | no-op, firewall_backend=iptables |", "|---|---|---|---|---|---|---|---|---|"]
    for size, row in summary.items():
        lines.append(f"| {size} | {fmt(row[f'{NAIVE}:s_per_node'], ' s', 2)} | {fmt(row[f'{FLEET}:s_per_node'], ' s', 2)} "
                     f"| {fmt(row[f'{NOOP}:s_per_node'], ' s', 2)} | {fmt(row[f'{NOOP}:wall_s'], ' s')} | {fmt(row[f'{NOOP}:cpu_s'], ' s')} "
                     f"| {fmt(row[f'{WAVES}:wall_s'], ' s')} | {fmt(row[f'{WAVES}:s_per_node'], ' s', 2)} "
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
    full, noop, named = row[f"{FLEET}:wall_s"], row[f"{NOOP}:wall_s"], row[f"{NOOP_NAMED}:wall_s"]
    if row["speed_ratio"] is not None:
        verdict = "met" if row["speed_ratio"] >= 5 else "NOT met"
        notes.append(f"The goal (update_fleet >= 5x faster than the naive playbook at 50 nodes) is {verdict} on this machine: "
                     f"{row['speed_ratio']:.2f}x at {size} nodes.")
    if full and noop:
        stages = next((r.get("stages") for r in results["runs"] if r["size"] == size and r["way"] == FLEET and r.get("stages")), {})
        download = stages.get("download and verify")
        notes.append(f"The no-op run (nothing to download or install) takes {100 * noop / full:.0f} % of the full update at {size} nodes: "
                     "update_fleet's time is its per-node fixed work (Ansible tasks, SSH round trips, the agent's start and "
                     "cleanup), not the bytes"
                     + (f" (download and verify of the 81 MiB: {download:.1f} s per node, median, all nodes at once)." if download else "."))
    cpu = row[f"{FLEET}:cpu_s"]
    if full and cpu:
        notes.append(f"update_fleet's controller processes used {cpu:.0f} CPU-s in {full:.0f} s of wall time on {env['cpus']} CPUs "
                     f"({100 * cpu / (full * env['cpus']):.0f} % of the machine): in the lab the nodes' side (sshd, Python modules, "
                     "the agents and their firewall commands) runs on the same CPUs, as do other developers' tests; on a real "
                     "fleet each node brings its own CPU, so the node-side part would overlap instead of queueing.")
    if noop and named:
        notes.append(f"Diagnosis: the same no-op with `fleet_firewall_backend=iptables` (the nodes skip auto-detection, which runs "
                     f"`firewall-cmd --state` and `ufw status`, two Python programs, on every open, lease renewal and close) took "
                     f"{named:.0f} s instead of {noop:.0f} s.")
    notes.append("Where update_fleet can gain (proposals, not done here): resolve the firewall backend once per run in the agent "
                 "and skip `firewall-cmd` when the node has no D-Bus system bus; fold the role's small per-host tasks (argument-spec "
                 "validations, `set_fact`, the `df` check, preflight's node-side probe) into the deploy action, since each "
                 "task costs every host a worker fork and templating on the controller, and the `df` check an SSH round "
                 "trip; stop the agent's servers at once rather than one after the other (0.5 s poll each).")
    return notes


def where_time_goes(runs: list[dict], size: int) -> list[str]:
    """The biggest tasks of each way at ``size`` (first round), and update_fleet's phases per node."""
    lines = []
    for way in (NAIVE, FLEET, NOOP, NOOP_NAMED):
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
        parts.append(f"naive {fmt(row[f'{NAIVE}:wall_s'], ' s')}: speed ratio naive/update_fleet {row['speed_ratio']:.2f}x (goal >= 5x)")
    if row["cpu_ratio"] is not None:
        parts.append(f"controller CPU ratio {row['cpu_ratio']:.2f}x")
    if row["floor_ratio"] is not None:
        parts.append(f"{row['floor_ratio']:.1f}x the floor ({fmt(row['floor_s'], ' s')})")
    if row[f"{NOOP}:s_per_node"] is not None:
        parts.append(f"no-op {row[f'{NOOP}:s_per_node']:.2f} s/node")
    return ", ".join(parts)


def markdown(results: dict, plot: Optional[str] = None) -> str:
    """The "## Fleet update" section, between its markers."""
    env, settings, lab, floor = results["environment"], results["settings"], results.get("lab", {}), results.get("floor", {})
    summary = summarize(results)
    lines = [BEGIN, HEADING, "",
             "`fleet.firmware.update_fleet` against the playbook users write today (`ansible.builtin.copy` each file,",
             "`ansible.builtin.command` the installer, `ansible.builtin.file state=absent`), measured side by side in one run by",
             "`benchmarks/fleet.py` on the lab (Linux nodes in network namespaces: 4 dual-stack reached over IPv4 for every",
             "IPv6-only one). Repository: three fake components of 64 MiB, 16 MiB and 1 MiB (shell installers writing a",
             "version file on the node, padded after `exit`). Same nodes, same forks (= nodes), both with `become`,",
             f"every node's versions removed before each run and checked after it; waves {settings['waves_label']} for the",
             "main comparison. Each pair is measured back to back (who goes first alternates between rounds); ratios are",
             "the median of the per-round ratios.", "",
             f"**Headline: {headline(summary)}.**", "",
             f"Machine: {env['cpus']} CPUs, Linux {env['kernel']}, Python {env['python']}, ansible-core {env['ansible_core']}; "
             f"measured {env['date']}, one run ({settings['rounds']} round(s)) taking {env.get('elapsed_s', 0) / 60:.0f} min; "
             f"1-minute load average {env['load_before']:.1f} before, {env['load_after']:.1f} after (the machine is shared "
             "with other developers' lab tests: absolute seconds move, the back-to-back ratios much less).", "",
             "Reproduce (root; takes its own lab up and down):", "", "```", settings["command"], "```", "",
             f"Controller CPU and peak memory: {env['accounting']}", ""]
    if plot:
        lines += [f"![wall time and seconds per node against the number of nodes]({plot})", ""]
    lines += main_table(summary) + [""]
    lines += ["Seconds per node (wall / nodes; forks = nodes), the no-op run (every node already current: update_fleet",
              "plans, finds nothing to do and cleans up; the naive playbook has no no-op, it copies and installs",
              "again, so its no-op costs its full run) and update_fleet with its default waves `[1, \"10%\", \"100%\"]`",
              "(canary first):", ""]
    lines += per_node_table(summary) + [""]
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
    styles = {NAIVE: ("tab:red", "o"), FLEET: ("tab:blue", "s"), NOOP: ("tab:green", "^")}
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
    figure.suptitle(f"fleet.firmware update_fleet vs naive copy+command playbook, 81 MiB per node ({results['environment']['date']})")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
