# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The coverage-guided fuzz targets (atheris, issue 18): the parsers that read what an untrusted
party writes, each with the contract it must keep on any input.

- ``range_header``: the engine's Range header (any HTTP client on the run's network sends it);
- ``cp_xml``: an SPP's cp*.xml (whoever writes the repository folder);
- ``manifest``: a manifest.yml (the same), parsed and validated;
- ``versions``: version strings (from the node's inventory and from the metadata).

A target returns quietly when the input is handled as documented (a value, or the module's own
error naming the problem); anything else escapes and is a finding. ``selftest_broken`` breaks a
contract on purpose: the smoke test proves that the harness reports a finding at all.
"""
from __future__ import annotations

import os
import tempfile
import typing as t

import atheris

with atheris.instrument_imports(include=["ansible_collections.fleet.firmware"]):
    from ansible_collections.fleet.firmware.plugins.module_utils import manifest, versions
    from ansible_collections.fleet.firmware.plugins.module_utils.baseline import spp
    from ansible_collections.fleet.firmware.plugins.plugin_utils.engine import httpd

# One scratch folder per fuzzing process: the XML reader takes a path.
SCRATCH = tempfile.mkdtemp(prefix="fleet-fuzz-")


class ContractBroken(AssertionError):
    """The function answered, but not as its contract says."""


def range_header(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    size = fdp.ConsumeIntInRange(0, 1 << 40)
    header = fdp.ConsumeUnicodeNoSurrogates(64)
    try:
        found = httpd.parse_range(header, size)
    except ValueError:
        return  # 416: the engine refuses the range
    if found is None:
        return  # the whole file
    start, end = found
    if not 0 <= start <= end < size:
        raise ContractBroken(f"parse_range({header!r}, {size}) gave {found}, outside the file")


def cp_xml(data: bytes) -> None:
    path = os.path.join(SCRATCH, "cp000001.xml")
    with open(path, "wb") as handle:
        handle.write(data)
    try:
        facts = spp.read_cp_xml(path)
    except spp.SppError as exc:
        if not str(exc):
            raise ContractBroken("an SppError without a message") from exc
        return
    for key in ("filename", "version"):
        if not isinstance(facts[key], str) or not facts[key]:
            raise ContractBroken(f"read_cp_xml accepted an empty {key}: {facts[key]!r}")


def manifest_text(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        parsed = manifest.parse_text(text, "fuzz.yml")
    except manifest.ManifestError:
        return
    problems = manifest.validate(parsed, SCRATCH, verify=False)
    for problem in problems:
        if not problem.message:
            raise ContractBroken(f"a problem without a message: {problem!r}")


def versions_compare(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    scheme = fdp.PickValueInList(["auto", "dpkg", "rpm"])
    first, second = fdp.ConsumeUnicodeNoSurrogates(40), fdp.ConsumeUnicodeNoSurrogates(40)
    forward, backward = versions.compare(first, second, scheme), versions.compare(second, first, scheme)
    if forward.order not in (-1, 0, 1, None):
        raise ContractBroken(f"compare({first!r}, {second!r}) gave {forward.order!r}")
    if forward.order is not None and backward.order is not None and forward.order != -backward.order:
        raise ContractBroken(f"compare is not antisymmetric for {first!r} and {second!r} ({scheme}): {forward.order}, {backward.order}")
    if forward.order is None and not forward.reason:
        raise ContractBroken(f"an unknown order without a reason for {first!r} and {second!r}")


def selftest_broken(data: bytes) -> None:
    if data[:1] == b"!":
        raise ContractBroken("the harness's own self-test: a finding on any input starting with '!'")


TARGETS: dict[str, t.Callable[[bytes], None]] = {
    "range_header": range_header,
    "cp_xml": cp_xml,
    "manifest": manifest_text,
    "versions": versions_compare,
    "selftest_broken": selftest_broken,
}
