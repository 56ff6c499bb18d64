# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mutation run (cosmic-ray) over the pure modules, with their unit tests only: ``make mutation``.

Each mutant (an operator flipped, a constant changed, a condition negated...) is applied to a
copy of the tree in build/mutation/tree (never the working copy: an interrupted run must not leave
a mutant behind), the module's unit tests run, and the mutant is *killed* when a test fails.
Only the pure functions are mutated: in modules that also run commands (the firewall backends)
only the rule builders named below; the rest is tested against the lab, not by unit tests.

    build/venv/bin/python tests/mutation/run_mutation.py [--only NAME ...] [--timeout S]

prints one line per module (killed / all, the share) and writes the survivors' diffs to
build/mutation/<name>-survivors.txt. Equivalent survivors are explained in docs/testing.md.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "mutation"
TREE = OUT / "tree"
UNIT = "tests/unit/plugins/module_utils"
FIREWALL_TESTS = [f"{UNIT}/firewall"]

# name: (module, the functions mutated (None: all of it), the unit tests that must kill them)
TARGETS = {
    "versions": ("plugins/module_utils/versions.py", None, [f"{UNIT}/test_versions.py", f"{UNIT}/test_versions_edges.py"]),
    "returncodes": ("plugins/module_utils/returncodes.py", None,
                    [f"{UNIT}/test_returncodes.py", f"{UNIT}/test_installers.py"]),
    "ports": ("plugins/module_utils/ports.py", None,
              ["tests/unit/test_ports.py", "tests/unit/test_preflight_logic.py", "tests/unit/test_probe.py"]),
    "firewall.common": ("plugins/module_utils/firewall/common.py",
                        ["validate_tag", "parse_port", "parse_source", "build_spec", "rules_for", "comment_for", "comment_prefix",
                         "Port", "OpenSpec", "Rule"], FIREWALL_TESTS),
    "firewall.iptables": ("plugins/module_utils/firewall/iptables.py", ["tool_names", "rule_args", "as_insert"], FIREWALL_TESTS),
    "firewall.nftables": ("plugins/module_utils/firewall/nftables.py", ["table_name", "rule_expr", "rule_fits"], FIREWALL_TESTS),
    "firewall.firewalld": ("plugins/module_utils/firewall/firewalld.py", ["rich_rule"], FIREWALL_TESTS),
    "firewall.ufw": ("plugins/module_utils/firewall/ufw.py", ["ufw_args"], FIREWALL_TESTS),
    "report": ("plugins/plugin_utils/report.py",
               ["build_model", "_node_of", "_node_model", "_events", "_stages", "_update_outcome", "_components_from_result",
                "_components_from_ledger", "_rebooted_from_ledger", "_engine_event", "_task_status", "_node_status", "_summary",
                "_component_names", "_text", "_int", "_number", "_bool", "check_formats"],
               ["tests/unit/plugins/plugin_utils/test_report_model.py", "tests/unit/plugins/plugin_utils/test_report_model_parts.py"]),
}


def copy_tree() -> None:
    """The files git knows, copied to build/mutation/tree with a collection link of its own."""
    shutil.rmtree(TREE, ignore_errors=True)
    TREE.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if source.is_file() and not source.is_symlink():
            target = TREE / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    link = TREE / "build" / "collections" / "ansible_collections" / "fleet" / "firmware"
    link.parent.mkdir(parents=True)
    link.symlink_to(TREE)


def function_lines(module: Path, names: list[str] | None) -> set[int] | None:
    """The lines of the named top-level functions and classes (None: every line)."""
    if names is None:
        return None
    lines: set[int] = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


# One counterpart per operator, as mutmut does: cosmic-ray also swaps every binary and comparison
# operator for each of the others (``"%s" % x`` becomes ``"%s" ** x``, ``"%s" << x`` ...), mutants
# that die of a TypeError on the first call and only multiply the run time by ten.
COUNTERPART = {
    "Add": "Sub", "Sub": "Add", "Mul": "Div", "Div": "Mul", "FloorDiv": "Mul", "Mod": "FloorDiv", "Pow": "Mul",
    "LShift": "RShift", "RShift": "LShift", "BitOr": "BitAnd", "BitAnd": "BitOr", "BitXor": "BitOr",
    "Eq": "NotEq", "NotEq": "Eq", "Lt": "LtE", "LtE": "Lt", "Gt": "GtE", "GtE": "Gt",
    "Is": "IsNot", "IsNot": "Is", "In": "NotIn", "NotIn": "In",
}


def kept(operator: str) -> bool:
    """Is this cosmic-ray operator (``core/ReplaceBinaryOperator_Add_Mul``...) one that is run?"""
    family, _sep, pair = operator.partition("_")
    if family not in ("core/ReplaceBinaryOperator", "core/ReplaceComparisonOperator"):
        return True
    source, _sep, target = pair.partition("_")
    return COUNTERPART.get(source) == target


def skip_outside(session: Path, lines: set[int] | None) -> None:
    """Mark as skipped (not counted) the mutants outside the pure functions and the operator
    swaps that are not the counterpart."""
    from cosmic_ray.work_db import use_db  # pylint: disable=import-outside-toplevel
    from cosmic_ray.work_item import WorkerOutcome, WorkResult  # pylint: disable=import-outside-toplevel
    with use_db(str(session)) as db:
        for item in db.work_items:
            outside = lines is not None and any(m.start_pos[0] not in lines for m in item.mutations)
            if outside or not all(kept(m.operator_name) for m in item.mutations):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def tally(session: Path) -> dict:
    from cosmic_ray.work_db import use_db  # pylint: disable=import-outside-toplevel
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome  # pylint: disable=import-outside-toplevel
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "pending": 0}
    survivors = []
    with use_db(str(session)) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                survivors.append(result.diff or "")
            elif result.test_outcome == TestOutcome.INCOMPETENT or result.worker_outcome != WorkerOutcome.NORMAL:
                counts["incompetent"] += 1
            else:
                counts["killed"] += 1
        counts["pending"] = sum(1 for _item in db.pending_work_items)
    return {"counts": counts, "survivors": survivors}


def sample(session: Path, every: int) -> None:
    """Keep one pending mutant in ``every`` (in the session's order, so spread over the module):
    a quicker, still representative figure; ``make mutation`` without --sample runs them all."""
    if every <= 1:
        return
    from cosmic_ray.work_db import use_db  # pylint: disable=import-outside-toplevel
    from cosmic_ray.work_item import WorkerOutcome, WorkResult  # pylint: disable=import-outside-toplevel
    with use_db(str(session)) as db:
        for index, item in enumerate(sorted(db.pending_work_items, key=lambda i: i.job_id)):
            if index % every:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def run_target(name: str, timeout: float, plan_only: bool = False, resume: bool = False, every: int = 1) -> dict:
    module, functions, tests = TARGETS[name]
    tests = [t for t in tests if (TREE / t).exists()]
    config = OUT / f"{name}.toml"
    session = OUT / f"{name}.sqlite"
    resume = resume and session.exists()
    if not resume:
        session.unlink(missing_ok=True)
    command = test_command(tests)
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(module)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\nname = \"local\"\n")
    cosmic = str(Path(sys.executable).with_name("cosmic-ray"))
    if not resume:
        subprocess.run([cosmic, "init", str(config), str(session)], cwd=TREE, check=True)
        skip_outside(session, function_lines(TREE / module, functions))
    sample(session, every)
    if plan_only:
        return tally(session)["counts"]
    baseline = subprocess.run(command.split(), cwd=TREE, capture_output=True, text=True, check=False)
    if baseline.returncode != 0:
        raise SystemExit(f"{name}: the unit tests fail without a mutant:\n{baseline.stdout[-3000:]}")
    subprocess.run([cosmic, "exec", str(config), str(session)], cwd=TREE, check=True)
    result = tally(session)
    (OUT / f"{name}-survivors.txt").write_text("\n".join(result["survivors"]))
    return result["counts"]


def recheck(name: str, timeout: float) -> None:
    """Judge a finished session's survivors again with today's unit tests (after tests were added
    for them), without running the whole module again; the session keeps the new verdicts."""
    from cosmic_ray.mutating import mutate_and_test  # pylint: disable=import-outside-toplevel
    from cosmic_ray.work_db import use_db  # pylint: disable=import-outside-toplevel
    from cosmic_ray.work_item import TestOutcome  # pylint: disable=import-outside-toplevel
    _module, _functions, tests = TARGETS[name]
    command = test_command([t for t in tests if (TREE / t).exists()])
    here = os.getcwd()
    os.chdir(TREE)
    try:
        with use_db(str(OUT / f"{name}.sqlite")) as db:
            survivors = [item for item, result in db.completed_work_items if result.test_outcome == TestOutcome.SURVIVED]
            for item in survivors:
                db.set_result(item.job_id, mutate_and_test(item.mutations, command, timeout))
    finally:
        os.chdir(here)


def test_command(tests: list[str]) -> str:
    return f"{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly {' '.join(tests)}"


def report(names: list[str]) -> int:
    """The figures of the sessions already run (one line per module, then the total)."""
    killed = scored = 0
    for name in names:
        session = OUT / f"{name}.sqlite"
        if not session.exists():
            print(f"mutation {name:20s} not run")
            continue
        counts = tally(session)["counts"]
        done = counts["killed"] + counts["survived"]
        killed, scored = killed + counts["killed"], scored + done
        print(f"mutation {name:20s} killed {counts['killed']:4d} / {done:4d} ({100.0 * counts['killed'] / max(done, 1):5.1f} %), "
              f"pending {counts['pending']}, incompetent {counts['incompetent']}")
    print(f"mutation total: killed {killed} / {scored} ({100.0 * killed / max(scored, 1):.1f} %)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(TARGETS), help="these modules only")
    parser.add_argument("--plan", action="store_true", help="only count the mutants each module gets")
    parser.add_argument("--report", action="store_true", help="only print the figures of the sessions in build/mutation")
    parser.add_argument("--recheck", action="store_true", help="judge the survivors of the sessions again with today's tests")
    parser.add_argument("--resume", action="store_true", help="go on with the sessions in build/mutation (mutants not run yet)")
    parser.add_argument("--sample", type=int, default=1, metavar="K", help="run one pending mutant in K (default: all)")
    parser.add_argument("--work", default="tree", help="the copy's folder under build/mutation (two runs at once need two)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant's test run (a hung mutant counts as killed)")
    args = parser.parse_args()
    global TREE  # pylint: disable=global-statement
    TREE = OUT / args.work
    if args.report:
        return report(args.only or list(TARGETS))
    copy_tree()
    if args.recheck:
        for name in args.only or TARGETS:
            recheck(name, args.timeout)
        return report(args.only or list(TARGETS))
    summary = {}
    for name in args.only or TARGETS:
        counts = run_target(name, args.timeout, args.plan, args.resume, args.sample)
        if args.plan:
            print(f"mutation {name:20s} {counts['pending']} mutants", flush=True)
            continue
        scored = counts["killed"] + counts["survived"]
        share = 100.0 * counts["killed"] / scored if scored else 100.0
        summary[name] = dict(counts, share=round(share, 1))
        print(f"mutation {name:20s} killed {counts['killed']:4d} / {scored:4d} ({share:5.1f} %), "
              f"incompetent {counts['incompetent']}, survivors in build/mutation/{name}-survivors.txt", flush=True)
    if args.plan:
        return 0
    (OUT / f"summary-{args.work}.json").write_text(json.dumps(summary, indent=2))
    killed = sum(s["killed"] for s in summary.values())
    scored = killed + sum(s["survived"] for s in summary.values())
    print(f"mutation total: killed {killed} / {scored} ({100.0 * killed / max(scored, 1):.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
