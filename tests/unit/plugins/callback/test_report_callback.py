# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The callback fleet.firmware.report and the playbook fleet.firmware.report in real
ansible-playbook runs, without the lab: the deploy is a stand-in action plugin (next to the
playbook, named ``fake_deploy``) that writes ledger lines the way the deploy action does and
returns a deploy result. The real deploy against the lab: tests/integration/test_report.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema

from ansible_collections.fleet.firmware.plugins.plugin_utils import report

REPO = Path(__file__).resolve().parents[4]

FAKE_DEPLOY = '''
from __future__ import annotations
import os
from ansible.plugins.action import ActionBase
from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger

class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        args = self._task.args
        host = task_vars["inventory_hostname"]
        outcome = args["outcomes"][host]
        if outcome == "unreachable":
            return {"unreachable": True, "msg": "Failed to connect to the host via ssh"}
        writer = ledger.LedgerWriter(args["run_dir"])
        rows = []
        for stage in ("preflight", "staged", "started", "firewall_open", "inventoried", "planned"):
            writer.append(host, {"stage": stage}, source="deploy")
        for name in args["components"]:
            status = "failed" if outcome == "fail" and name == "bad" else "installed"
            writer.append(host, {"stage": "installing", "component": name}, source="deploy")
            writer.append(host, {"stage": status, "component": name, "rc": 3 if status == "failed" else 0}, source="deploy")
            rows.append({"name": name, "before": "1.0", "after": "1.0" if status == "failed" else "2.0", "action": "upgrade",
                         "status": status, "rc": 3 if status == "failed" else 0, "message": status, "duration_s": 0.01})
        writer.append(host, {"stage": "cleaned"}, source="deploy")
        result = {"changed": True, "run_tag": args["tag"], "ledger": ledger.ledger_path(args["run_dir"], host), "delivery": "pull",
                  "transfer": "ssh", "reboot_required": False, "rebooted": False, "components": rows, "cleanup": []}
        if any(r["status"] == "failed" for r in rows):
            result.update(failed=True, msg=f"component(s) failed on {host}: bad")
        return result
'''


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_RETRY_FILES_ENABLED="False")
    for key in ("FLEET_REPORT_DIR", "FLEET_REPORT_FORMATS", "ANSIBLE_CALLBACKS_ENABLED"):
        env.pop(key, None)
    env.update(extra)
    return env


def playbook_bin() -> str:
    return str(Path(sys.executable).parent / "ansible-playbook")


def fake_play(tmp_path: Path, run_dir: Path) -> Path:
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "fake_deploy.py").write_text(FAKE_DEPLOY)
    (tmp_path / "inventory.ini").write_text("ok1 ansible_connection=local\nbad1 ansible_connection=local\ngone1 ansible_connection=local\n")
    outcomes = {"ok1": "ok", "bad1": "fail", "gone1": "unreachable"}
    (tmp_path / "play.yml").write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: Not a deploy (ignored by the report)
              ansible.builtin.debug:
                msg: hello
            - name: Deploy (stand-in)
              fake_deploy:
                tag: cb-run
                run_dir: {run_dir}
                components: [fw-a, bad]
                outcomes: {json.dumps(outcomes)}
        """))
    return tmp_path / "play.yml"


def run_play(tmp_path: Path, play: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([playbook_bin(), "-i", str(tmp_path / "inventory.ini"), str(play)], capture_output=True, text=True,
                          env=ansible_env(**env), cwd=tmp_path, timeout=300, check=False)


def test_the_callback_writes_the_three_files_next_to_the_ledger(tmp_path):
    run_dir = tmp_path / "runs" / "cb-run"
    proc = run_play(tmp_path, fake_play(tmp_path, run_dir), ANSIBLE_CALLBACKS_ENABLED="fleet.firmware.report")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # 4: a host unreachable (and one failed)
    assert sorted(p.name for p in run_dir.iterdir()) == ["ledger", "report.html", "report.json", "report.xml"]
    assert f"{run_dir}/report.html" in proc.stdout and "fleet report of run cb-run (3 nodes" in proc.stdout
    model = json.loads((run_dir / "report.json").read_text())
    jsonschema.validate(model, report.SCHEMA, cls=jsonschema.Draft202012Validator)
    assert {n["node"]: (n["status"], {c["name"]: c["status"] for c in n["components"]}) for n in model["nodes"]} == {
        "ok1": ("ok", {"fw-a": "installed", "bad": "installed"}),
        "bad1": ("failed", {"fw-a": "installed", "bad": "failed"}),
        "gone1": ("unreachable", {}),
    }
    ok1 = next(n for n in model["nodes"] if n["node"] == "ok1")
    assert ok1["components"][0]["before"] == "1.0" and ok1["components"][0]["after"] == "2.0"
    assert [s["stage"] for s in ok1["stages"]][:2] == ["preflight", "staged"] and ok1["stages"][-1]["stage"] == "cleaned"
    junit = ET.parse(run_dir / "report.xml").getroot()
    assert junit.get("tests") == "5" and junit.get("failures") == "1" and junit.get("errors") == "1"
    assert "<svg" in (run_dir / "report.html").read_text()


def test_output_dir_and_formats_from_the_environment(tmp_path):
    run_dir = tmp_path / "runs" / "cb-run"
    out = tmp_path / "reports"
    proc = run_play(tmp_path, fake_play(tmp_path, run_dir), ANSIBLE_CALLBACKS_ENABLED="fleet.firmware.report",
                    FLEET_REPORT_DIR=str(out), FLEET_REPORT_FORMATS="xml,json")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.xml"]
    assert not (run_dir / "report.html").exists()


def test_not_enabled_no_report(tmp_path):
    run_dir = tmp_path / "runs" / "cb-run"
    run_play(tmp_path, fake_play(tmp_path, run_dir))
    assert sorted(p.name for p in run_dir.iterdir()) == ["ledger"]


def test_the_report_playbook_renders_from_the_ledger_alone(tmp_path):
    run_dir = tmp_path / "runs" / "cb-run"
    run_play(tmp_path, fake_play(tmp_path, run_dir))
    out = tmp_path / "from-ledger"
    proc = subprocess.run([playbook_bin(), "fleet.firmware.report", "-e", f"fleet_run_dir={run_dir}", "-e", f"fleet_report_dir={out}"],
                          capture_output=True, text=True, env=ansible_env(), cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads((out / "report.json").read_text())
    jsonschema.validate(model, report.SCHEMA, cls=jsonschema.Draft202012Validator)
    # the unreachable host never wrote a ledger line: from the ledger alone it is not known
    assert {n["node"]: {c["name"]: c["status"] for c in n["components"]} for n in model["nodes"]} == {
        "ok1": {"fw-a": "installed", "bad": "installed"}, "bad1": {"fw-a": "installed", "bad": "failed"}}
    assert ET.parse(out / "report.xml").getroot().get("failures") == "1"
    assert (out / "report.html").exists()


def test_the_report_playbook_without_a_run_folder_says_what_to_give(tmp_path):
    proc = subprocess.run([playbook_bin(), "fleet.firmware.report"], capture_output=True, text=True, env=ansible_env(), cwd=tmp_path,
                          timeout=300, check=False)
    assert proc.returncode != 0 and "fleet_run_dir" in proc.stdout
    proc = subprocess.run([playbook_bin(), "fleet.firmware.report", "-e", f"fleet_run_dir={tmp_path}"], capture_output=True, text=True,
                          env=ansible_env(), cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode != 0 and "is not a run folder" in proc.stdout


def test_every_host_of_the_play_is_in_the_report_with_why(tmp_path):
    """issue 19: a host the deploy never ran on is in the report: skipped with the task that failed
    before (a preflight, a pre-hook), skipped by its condition, or unreachable earlier; a host left
    out with --limit is not."""
    run_dir = tmp_path / "runs" / "cb-why"
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "fake_deploy.py").write_text(FAKE_DEPLOY)
    hosts = ["ok1", "pre1", "cond1", "away1", "limited1"]
    # away1: SSH to a closed loopback port (refused at once; nothing leaves the machine).
    inventory = "".join(f"{h} ansible_connection=local\n" for h in hosts[:-2])
    inventory += "away1 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=9\nlimited1 ansible_connection=local\n"
    (tmp_path / "inventory.ini").write_text(inventory)
    (tmp_path / "play.yml").write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: Pre-hook (stand-in)
              ansible.builtin.fail:
                msg: the cluster refuses maintenance mode
              when: inventory_hostname == 'pre1'
            - name: Reach the node
              ansible.builtin.ping:
              when: inventory_hostname == 'away1'
            - name: Deploy (stand-in)
              fake_deploy:
                tag: cb-why
                run_dir: {run_dir}
                components: [fw-a]
                outcomes: {{"ok1": "ok"}}
              when: inventory_hostname != 'cond1'
        """))
    proc = subprocess.run([playbook_bin(), "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml"), "--limit", "all:!limited1"],
                          capture_output=True, text=True, env=ansible_env(ANSIBLE_CALLBACKS_ENABLED="fleet.firmware.report"),
                          cwd=tmp_path, timeout=300, check=False)
    model = json.loads((run_dir / "report.json").read_text())
    jsonschema.validate(model, report.SCHEMA, cls=jsonschema.Draft202012Validator)
    nodes = {n["node"]: n for n in model["nodes"]}
    assert sorted(nodes) == ["away1", "cond1", "ok1", "pre1"], proc.stdout
    assert nodes["ok1"]["status"] == "ok"
    assert nodes["pre1"]["status"] == "skipped"
    assert nodes["pre1"]["reason"] == "task 'Pre-hook (stand-in)' failed: the cluster refuses maintenance mode"
    assert nodes["cond1"]["status"] == "skipped" and nodes["cond1"]["reason"] == "task 'Deploy (stand-in)' was skipped (its condition)"
    assert nodes["away1"]["status"] == "unreachable" and nodes["away1"]["reason"] == "unreachable in task 'Reach the node'"
    assert model["summary"]["nodes_by_status"]["skipped"] == 2
    junit = ET.parse(run_dir / "report.xml").getroot()
    skipped = {s.get("name"): s.find("testcase/skipped") for s in junit.findall("testsuite")}
    assert skipped["pre1"] is not None and "the cluster refuses maintenance mode" in skipped["pre1"].get("message")
    page = (run_dir / "report.html").read_text()
    assert "task &#x27;Deploy (stand-in)&#x27; was skipped (its condition)" in page
