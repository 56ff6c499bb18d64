# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report of a real deploy against the lab: ansible-playbook with the callback
fleet.firmware.report enabled deploys fake components (deploy_helpers.make_repo) to lin01 (one
component fails, one is skipped because it needs it) and the IPv6-only v6n01 (all install); the
report files must say what the deploy results say. Then the report playbook renders the same
run from its ledger alone, and report.html is checked in headless chromium."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import conftest
from deploy_helpers import component, lab_trust, make_repo

from ansible_collections.fleet.firmware.plugins.plugin_utils import report

# The browser helper lives with the unit tests of the report.
sys.path.insert(0, str(conftest.REPO / "tests" / "unit" / "plugins" / "plugin_utils"))
import report_browser  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.lab

TAG = "rep-int"
HOSTS = ("lin01", "v6n01")
# v6n01 deploys only fw-a and sw-b: the deploy reports the others as skipped by the plan.
CHOSEN = {"lin01": ["fw-a", "bad", "needs-bad", "sw-b"], "v6n01": ["fw-a", "sw-b"]}
WANTED = {
    "lin01": {"fw-a": "installed", "bad": "failed", "needs-bad": "skipped", "sw-b": "installed"},
    "v6n01": {"fw-a": "installed", "bad": "skipped", "needs-bad": "skipped", "sw-b": "installed"},
}
# The ledger holds what the agent ran (a plan skip never reaches it; a dependency skip does).
FROM_LEDGER = {"lin01": WANTED["lin01"], "v6n01": {"fw-a": "installed", "sw-b": "installed"}}


def write_playbook(tmp_path: Path, repo: Path, run_dir: Path) -> Path:
    book = tmp_path / "deploy.yml"
    book.write_text(
        f"- hosts: {':'.join(HOSTS)}\n  gather_facts: false\n  vars:\n"
        f"    wanted: {json.dumps(CHOSEN)}\n"
        "  tasks:\n    - name: Deploy\n      fleet.firmware.deploy:\n"
        f"        repository: {repo}\n        trust: {lab_trust()}\n        tag: {TAG}\n        run_dir: {run_dir}\n        lease: 30\n"
        "        components: \"{{ wanted[inventory_hostname] }}\"\n      register: deployed\n"
        "    - name: Keep the result for the test\n      ansible.builtin.copy:\n"
        "        content: \"{{ deployed | to_json }}\"\n"
        f"        dest: \"{tmp_path}/result-{{{{ inventory_hostname }}}}.json\"\n        mode: '0600'\n"
        "      delegate_to: localhost\n      when: deployed is defined\n")
    return book


@pytest.fixture(scope="module")
def deployed(lab, tmp_path_factory):
    """One deploy run with the callback enabled; its results and the run folder."""
    tmp_path = tmp_path_factory.mktemp("report")
    state = str(lab.lab.home / "node")
    for host in HOSTS:
        lab.node_run(host, ["sh", "-c", f"rm -f {state}/*.version"])
    repo = make_repo(tmp_path / "repo", state, [
        component("fw-a", "2.0"), component("bad", "1.0", rc=3), component("needs-bad", "1.0", requires=["bad"]),
        component("sw-b", "1.5", kind="software")])
    run_dir = lab.lab.home / "runs" / TAG
    env = dict(conftest.ansible_env(), ANSIBLE_CALLBACKS_ENABLED="fleet.firmware.report")
    for key in ("FLEET_REPORT_DIR", "FLEET_REPORT_FORMATS"):
        env.pop(key, None)
    argv = [conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(write_playbook(tmp_path, repo, run_dir)),
            "-v"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path)
    # The playbook's copy task runs only for hosts still in the play: read lin01's result from the -v output.
    results = {h: json.loads((tmp_path / f"result-{h}.json").read_text()) for h in HOSTS if (tmp_path / f"result-{h}.json").exists()}
    results.update(failed_results(proc.stdout))
    return {"proc": proc, "run_dir": run_dir, "results": results, "tmp": tmp_path}


def failed_results(stdout: str) -> dict[str, dict]:
    """`fatal: [host]: FAILED! => {...}` lines of a -v run."""
    found = {}
    for match in re.finditer(r"^fatal: \[(?P<host>[^\]]+)\]: FAILED! => (?P<json>\{.*\})$", stdout, re.M):
        found[match["host"]] = json.loads(match["json"])
    return found


def statuses_of(model: dict) -> dict[str, dict[str, str]]:
    return {n["node"]: {c["name"]: c["status"] for c in n["components"]} for n in model["nodes"]}


def test_the_callback_report_matches_the_deploy_results(deployed):
    proc, run_dir, results = deployed["proc"], deployed["run_dir"], deployed["results"]
    assert proc.returncode == 2, proc.stdout[-4000:] + proc.stderr[-2000:]  # lin01's component failed
    assert sorted(results) == list(HOSTS), proc.stdout[-4000:]
    from_results = {h: {c["name"]: c["status"] for c in r["components"]} for h, r in results.items()}
    assert from_results == WANTED
    assert f"{run_dir}/report.html" in proc.stdout

    model = json.loads((run_dir / "report.json").read_text())
    jsonschema.validate(model, report.SCHEMA, cls=jsonschema.Draft202012Validator)
    assert statuses_of(model) == WANTED
    nodes = {n["node"]: n for n in model["nodes"]}
    assert nodes["lin01"]["status"] == "failed" and nodes["v6n01"]["status"] == "ok"
    for host, result in results.items():
        rows = {c["name"]: c for c in nodes[host]["components"]}
        for row in result["components"]:
            assert (rows[row["name"]]["before"], rows[row["name"]]["after"], rows[row["name"]]["rc"]) == (row["before"], row["after"], row["rc"])
        assert nodes[host]["delivery"] == result["delivery"] and nodes[host]["rebooted"] is False
        stages = [s["stage"] for s in nodes[host]["stages"]]
        assert stages[0] == "preflight" and stages[-1] == "cleaned" and "installing" in stages
    assert nodes["lin01"]["components"][1]["rc"] == 3

    suites = {s.get("name"): s for s in ET.parse(run_dir / "report.xml").getroot().findall("testsuite")}
    assert sorted(suites) == list(HOSTS)
    cases = {(n, c.get("name")): c for n, s in suites.items() for c in s.findall("testcase")}
    assert sorted(cases) == sorted((h, name) for h, comps in WANTED.items() for name in comps)
    assert cases[("lin01", "bad")].find("failure") is not None and cases[("lin01", "needs-bad")].find("skipped") is not None
    assert all(c.find("failure") is None and c.find("skipped") is None for k, c in cases.items() if WANTED[k[0]][k[1]] == "installed")


def test_the_report_html_of_the_run_in_chromium(deployed):
    if report_browser.missing():
        pytest.skip(report_browser.missing())
    seen = report_browser.inspect(deployed["run_dir"] / "report.html", "report-integration.png")
    assert seen["console"] == []
    assert seen["matrix_rows"] == list(HOSTS) and seen["bars"] == list(HOSTS)
    shown = {}
    for node, status, _colour in seen["cells"]:
        if status:
            shown.setdefault(node, []).append(status)
    assert {n: sorted(s) for n, s in shown.items()} == {n: sorted(c.values()) for n, c in WANTED.items()}


def test_the_report_playbook_renders_the_run_from_its_ledger_alone(deployed):
    out = deployed["tmp"] / "from-ledger"
    proc = subprocess.run([conftest.ansible_bin("ansible-playbook"), "fleet.firmware.report", "-e", f"fleet_run_dir={deployed['run_dir']}",
                           "-e", f"fleet_report_dir={out}"], capture_output=True, text=True, env=conftest.ansible_env(), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads((out / "report.json").read_text())
    jsonschema.validate(model, report.SCHEMA, cls=jsonschema.Draft202012Validator)
    # The ledger knows every component the agent ran, with the deploy's status; no versions.
    assert statuses_of(model) == FROM_LEDGER
    assert {c["before"] for n in model["nodes"] for c in n["components"]} == {None}
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.xml"]
