#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the SPP import (issue 14) against its floor: hashing the same files once.

One run generates an SPP (tests/lab/spp_gen.py: ``--count`` components in the real cp*.xml
schema, random bytes, sizes log-uniform between ``--min-size`` and ``--max-size``, scaled to
``--total-size`` when given), every component signed by the lab CA (tests/lab/spp_pki.py: real
detached CMS ``.compsig`` files by openssl, ``_partN`` sets above 32 MiB), then measures side by
side, each in a fresh child process, alternating who goes first from round to round:

* import: what ``fleet.firmware.repository spp=...`` does on the controller (module overhead
  aside) with ``signatures: off``: read and map every cp*.xml, SHA-256 of every file, validate
  the manifest, write the YAML;
* import+signatures: the same, then every signature verified against the anchors
  (``signatures: required``, trust.check_repository, as the module calls it);
* floor: SHA-256 of every component file once, with the same number of threads.

For each: wall time, bytes read (``rchar`` of /proc/self/io, which includes the reaped openssl
children), peak RSS (the largest process: the child itself or one of its openssl processes).
The ratio import/floor is the median of the per-round ratios. Goal: within 1.5x. Nothing is
asserted; the page cache is warmed once before the first round, so both sides read from memory
when the SPP fits in it (the line "page cache" says whether it did).

    build/venv/bin/python benchmarks/bench_spp_import.py [--count 800] [--total-size 12GiB] [--rounds 3]
        [--workers 2] [--json build/bench-spp-import.json] [--keep DIR]
    build/venv/bin/python benchmarks/bench_spp_import.py --quick     # 40 tiny components, one round, seconds

The generated SPP lives in a temporary folder under build/ that is removed at the end (unless
``--keep``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "build" / "collections"), str(REPO / "tests" / "lab")]

import spp_gen  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024
VARIANTS = ("floor", "import", "import+signatures")


def rchar() -> int:
    with open("/proc/self/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("rchar:"))


def peak_rss() -> int:
    """Bytes: the largest of this process (VmHWM: its own memory since exec; ru_maxrss would carry
    the parent's high-water mark over fork and exec) and its reaped children (ru_maxrss, KiB)."""
    with open("/proc/self/status") as handle:
        own = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    return 1024 * max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def measure_floor(folder: Path, workers: int) -> dict:
    from ansible_collections.fleet.firmware.plugins.module_utils.baseline import spp
    files = [str(p) for p in (folder / "packages").iterdir() if p.is_file() and not p.name.endswith((".xml", ".compsig"))
             and p.name not in ("smartupdate",)]
    start = time.perf_counter()
    spp.hash_files(files, workers)
    return {"seconds": time.perf_counter() - start, "files": len(files)}


def measure_import(folder: Path, workers: int, anchors: str | None, out: Path) -> dict:
    from ansible_collections.fleet.firmware.plugins.module_utils import manifest
    from ansible_collections.fleet.firmware.plugins.module_utils.baseline import spp
    from ansible_collections.fleet.firmware.plugins.module_utils.baseline import trust
    start = time.perf_counter()
    # As the module does: the anchors first, then each signature checked while its file is hashed.
    anchor_set = trust.load_anchors(anchors) if anchors else None
    try:
        hasher = (lambda jobs, count: trust.hash_and_verify(jobs, anchor_set, count)) if anchor_set else None
        imported = spp.import_folders(str(folder), workers=workers, hasher=hasher)
        data = {"format": 2, "components": imported.components}
        problems = manifest.validate(data, str(out), known_hashes=imported.hashes)
        assert not problems, problems[:3]
        checked = imported.components
        if anchor_set:
            checked, _manifest_verdict = trust.check_repository(str(out), manifest.ordered_components(str(out), data), anchor_set, "required")
    finally:
        if anchor_set:
            anchor_set.close()
    (out / "manifest.yml").write_text(manifest.dump(data))
    bad = [c["name"] for c in checked if c.get("signature_verdict") and not c["signature_verdict"]["ok"]]
    return {"seconds": time.perf_counter() - start, "components": len(imported.components), "skipped": len(imported.skipped),
            "unverified": len(bad)}


def child(args: argparse.Namespace) -> int:
    """One measurement in this fresh process; prints one JSON line."""
    before = rchar()
    if args.measure == "floor":
        result = measure_floor(args.folder, args.workers)
    else:
        out = Path(tempfile.mkdtemp(prefix="bench-spp-repo-", dir=args.folder.parent))
        try:
            result = measure_import(args.folder, args.workers, args.anchors if args.measure == "import+signatures" else None, out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    result.update(bytes_read=rchar() - before, peak_rss=peak_rss())
    print(json.dumps(result))
    return 0


def run_child(what: str, folder: Path, workers: int, anchors: str | None) -> dict:
    argv = [sys.executable, __file__, "--measure", what, "--folder", str(folder), "--workers", str(workers)]
    if anchors:
        argv += ["--anchors", anchors]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("%s failed: %s" % (what, proc.stderr[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm(folder: Path) -> int:
    total = 0
    for path in (folder / "packages").iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                while True:
                    chunk = handle.read(8 * MIB)
                    if not chunk:
                        break
                    total += len(chunk)
    return total


def generate(folder: Path, args: argparse.Namespace, sign) -> tuple[int, float]:
    specs = spp_gen.bench_specs(args.count)
    sizes = spp_gen.log_uniform_sizes(len(specs), args.min_size, args.max_size, args.total_size)
    start = time.perf_counter()
    spp_gen.write_spp(folder, specs=specs, sizes=lambda i: sizes[i], sign=sign)
    return sum(sizes), time.perf_counter() - start


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return "%.1f %s" % (size, unit) if unit != "B" else "%d B" % size
        size /= 1024.0
    return str(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--count", type=int, default=800)
    parser.add_argument("--min-size", type=spp_gen.parse_size, default=MIB)
    parser.add_argument("--max-size", type=spp_gen.parse_size, default=64 * MIB)
    parser.add_argument("--total-size", type=spp_gen.parse_size, default=None,
                        help="scale the sizes to this total (default: log-uniform between min and max, ~12 GiB for 800)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--no-signatures", action="store_true", help="import without signature checks")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 components of 4-64 KiB, one round")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="generate into (or reuse) this folder and keep it")
    parser.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--anchors", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return child(args)
    if args.quick:
        args.count, args.min_size, args.max_size, args.total_size, args.rounds = 40, 4 * 1024, 64 * 1024, None, 1

    import spp_pki
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-spp-", dir=str(REPO / "build")))
    folder = base / "spp"
    # With --keep the PKI that signed the kept SPP is kept beside it (a new one would trust nothing of it).
    pki_folder = base / "pki" if args.keep else Path(tempfile.mkdtemp(prefix="bench-spp-pki-"))
    pki = None
    if not args.no_signatures:
        kept = (pki_folder / "anchors").is_dir() and (folder / "packages").is_dir()
        pki = SimpleNamespace(folder=pki_folder, anchors=pki_folder / "anchors") if kept else spp_pki.make_lab_pki(pki_folder)
    try:
        if (folder / "packages").is_dir():
            total, generated = sum(p.stat().st_size for p in (folder / "packages").iterdir() if p.is_file() and not p.name.endswith((".xml", ".compsig"))), 0.0
        else:
            total, generated = generate(folder, args, spp_gen.signer(pki.signer) if pki else None)
        cached = warm(folder)
        anchors = str(pki.anchors) if pki else None
        rounds = []
        variants = VARIANTS if anchors else VARIANTS[:2]
        for index in range(args.rounds):
            order = variants if index % 2 == 0 else tuple(reversed(variants))
            measured = {what: run_child(what, folder, args.workers, anchors) for what in order}
            measured["ratio"] = {what: measured[what]["seconds"] / measured["floor"]["seconds"] for what in variants[1:]}
            rounds.append(measured)
        report(args, total, generated, cached, rounds, anchors is not None)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
        if pki is not None and args.keep is None:
            shutil.rmtree(pki.folder, ignore_errors=True)
    return 0


def report(args, total, generated, cached, rounds, signed) -> None:
    variants = VARIANTS if signed else VARIANTS[:2]
    best = {what: min((r[what] for r in rounds), key=lambda m: m["seconds"]) for what in variants}
    ratios = {what: statistics.median(r["ratio"][what] for r in rounds) for what in variants[1:]}
    with open("/proc/meminfo") as handle:
        memory = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemTotal:"))
    imported = best["import"]
    lines = [
        "SPP import benchmark: %d components (%d imported, %d skipped), %s of component files, %d worker thread(s), %d round(s)%s"
        % (args.count, imported["components"], imported["skipped"], human(total), args.workers, len(rounds), " (--quick)" if args.quick else ""),
        "signature checks: %s" % (
            "measured (signatures=required, lab CA, real openssl CMS signatures); not verified: %d (the .fwpkg, signed inside)"
            % best["import+signatures"]["unverified"] if signed else "NOT measured (--no-signatures)"),
        "page cache: %s of %s RAM %s" % (
            human(total), human(memory),
            "(fits: every side reads from memory)" if total < memory * 0.6 else "(does not fit: every side reads from disk)"),
        "",
        "%-18s %10s %14s %10s %12s %8s" % ("", "seconds", "bytes read", "MiB/s", "peak RSS", "ratio"),
    ]
    for what in variants:
        row = best[what]
        ratio = "" if what == "floor" else "%.2fx" % ratios[what]
        cells = (what, row["seconds"], human(row["bytes_read"]), total / MIB / row["seconds"], human(row["peak_rss"]), ratio)
        lines.append("%-18s %10.2f %14s %10.0f %12s %8s" % cells)
    lines += [""]
    for what in variants[1:]:
        lines.append("ratio %s/floor (median of %d round(s)): %.2fx (goal <= 1.5x): %s; per round: %s"
                     % (what, len(rounds), ratios[what], "met" if ratios[what] <= 1.5 else "NOT met",
                        ", ".join("%.2fx" % r["ratio"][what] for r in rounds)))
    lines.append("machine: %d CPUs, %s, Python %s; SPP generated and signed in %.0f s"
                 % (os.cpu_count() or 0, platform.platform(), platform.python_version(), generated))
    print("\n".join(lines))
    if args.json:
        # Every figure by name (benchmarks/README.md: the smoke test checks each is a finite number > 0).
        measurements = {}
        for what in variants:
            measurements["%s seconds" % what] = best[what]["seconds"]
            measurements["%s bytes read" % what] = best[what]["bytes_read"]
            measurements["%s peak RSS bytes" % what] = best[what]["peak_rss"]
        measurements.update(("ratio %s/floor" % what, ratios[what]) for what in variants[1:])
        args.json.write_text(json.dumps({"rounds": rounds, "ratios": ratios, "total_bytes": total, "count": args.count,
                                         "workers": args.workers, "signatures": signed, "measurements": measurements}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
