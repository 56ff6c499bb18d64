# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every benchmark shares (benchmarks/README.md): the tools it needs, checked before it starts,
and the ``measurements`` its ``--json`` file carries, which the smoke test of ``make test`` reads.

Pure functions, no lab: tests/unit/test_bench_lib.py tests them."""
from __future__ import annotations

import math
import os
import shutil
import typing as t

# Where a missing tool comes from: the Debian package and the make target that installs it.
BENCH_DEPS = "`make bench-deps` (bindep.txt, profile bench; `make test` and `make bench` install it too)"
DEPS = "`make deps` (bindep.txt)"
TOOL_SOURCES = {"nginx": ("nginx", BENCH_DEPS), "iperf3": ("iperf3", BENCH_DEPS), "curl": ("curl", DEPS),
                "nft": ("nftables", DEPS), "iptables-legacy": ("iptables", DEPS), "ip": ("iproute2", DEPS)}


def missing_tools(tools: t.Iterable[str], path: t.Optional[str] = None) -> list[str]:
    """The tools of ``tools`` not found on PATH (or on /usr/sbin and /sbin, where Debian puts daemons)."""
    search = (path if path is not None else os.environ.get("PATH", "")) + ":/usr/sbin:/sbin"
    return [tool for tool in tools if shutil.which(tool, path=search) is None]


def missing_tools_message(program: str, missing: t.Sequence[str]) -> str:
    """One line naming each missing tool, its Debian package and the make target that installs it."""
    parts = []
    for tool in missing:
        package, target = TOOL_SOURCES.get(tool, (tool, DEPS))
        parts.append(f"{tool} (Debian package {package}; {target} installs it)")
    return f"{program}: missing tool{'s' if len(parts) > 1 else ''}: " + "; ".join(parts)


def missing_python_message(program: str, module: str, purpose: str) -> str:
    return (f"{program}: {purpose} needs the Python package {module} (requirements-bench.txt): `make bench-deps` installs it "
            f"into build/venv, as does `make bench`")


def require_python(program: str, module: str, purpose: str) -> None:
    """Stop before anything starts when a Python package of requirements-bench.txt is missing."""
    try:
        __import__(module)
    except ImportError:
        raise SystemExit(missing_python_message(program, module, purpose)) from None


def require_tools(program: str, tools: t.Iterable[str]) -> None:
    """Stop before anything starts when a tool is missing, saying how to get it."""
    missing = missing_tools(tools)
    if missing:
        raise SystemExit(missing_tools_message(program, missing))


def bad_measurements(measurements: t.Any) -> list[str]:
    """What is wrong with a benchmark's ``measurements`` (empty: every one a finite number > 0).

    The smoke test asserts only this: each measurement completed and produced a number, never a speed."""
    if not isinstance(measurements, dict) or not measurements:
        return [f"no measurements (expected a non-empty mapping of name -> number, got {measurements!r})"]
    problems = []
    for name, value in measurements.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name}: not a number ({value!r})")
        elif not math.isfinite(value) or value <= 0:
            problems.append(f"{name}: {value!r} is not a finite number > 0")
    return problems
