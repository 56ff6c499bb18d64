# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one fuzz target under atheris (libFuzzer): ``python tests/fuzz/run.py TARGET [libFuzzer flags]``.

    build/venv/bin/python tests/fuzz/run.py cp_xml -atheris_runs=200000 tests/fuzz/corpus/cp_xml

The seeds in ``tests/fuzz/corpus/<target>`` start it from real inputs (libFuzzer adds what it
finds to the first corpus folder given; a scratch copy keeps the checked-in one as it is). A
finding stops the run with a non-zero status and writes the input as ``crash-<sha1>`` in the
current folder (``-artifact_prefix=`` to choose). ``make fuzz`` runs every target.
"""
from __future__ import annotations

import sys

import atheris


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(f"usage: {argv[0]} TARGET [libFuzzer flags] [corpus folders]")
    import targets  # after argv is checked: the import instruments the collection's modules
    name = argv[1]
    if name not in targets.TARGETS:
        raise SystemExit(f"unknown fuzz target {name!r}; the targets are: {', '.join(sorted(targets.TARGETS))}")
    atheris.Setup([argv[0]] + argv[2:], targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
