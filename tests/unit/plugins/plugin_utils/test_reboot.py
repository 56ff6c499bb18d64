# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy's reboot (plugin_utils/deploy/reboot.py), controller side.

Windows cannot run here: the Windows reboot runs against a stand-in WinRM connection that records
every PowerShell script it is sent and simulates the node: its boot time, a reboot that takes
the connection away for a few polls and comes back with a new boot time, BitLocker. The scripts
it receives are parsed (tree-sitter-powershell). The Linux reboot is tested for real in the lab
(tests/integration/test_deploy.py, the lab's simulated reboot).
"""
from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.shell.powershell import ShellModule

from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy import reboot
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import DeployError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))
import powershell_source as source  # noqa: E402


def decode(command: str) -> str:
    encoded = re.search(r"-EncodedCommand (\S+)", command).group(1)
    return base64.b64decode(encoded).decode("utf-16-le")


def parse_errors(script: str) -> list:
    return [n.start_point for n in source.walk(source.syntax_tree(script)) if n.type == "ERROR" or n.is_missing]


class StandInWindows:
    """A WinRM connection to a simulated Windows node."""

    def __init__(self, bitlocker: bool = False, down_polls: int = 2, reboot_rc: int = 0, comes_back: bool = True,
                 drop_on_reboot: bool = False) -> None:
        self._shell = ShellModule()
        self._shell.tmpdir = "C:\\Users\\x\\AppData\\Local\\Temp\\ansible-tmp"
        self.boot = "2026-12-01T08:00:00.0000000Z"
        self.bitlocker = bitlocker
        self.down_polls, self.reboot_rc, self.comes_back, self.drop_on_reboot = down_polls, reboot_rc, comes_back, drop_on_reboot
        self.scripts: list[str] = []
        self.resets = 0
        self.rebooting = False
        self.down_left = 0

    def reset(self) -> None:
        self.resets += 1

    def run(self, script: str) -> dict:
        self.scripts.append(script)
        assert not parse_errors(script), script
        if self.down_left > 0:
            self.down_left -= 1
            raise AnsibleConnectionFailure("winrm: connection refused (the node is rebooting)")
        if "LastBootUpTime" in script:
            if self.rebooting and self.down_left == 0 and self.comes_back:
                self.rebooting = False
                self.boot = "2026-12-01T08:07:30.0000000Z"
            return {"rc": 0, "stdout": '{"boot":"%s"}' % self.boot, "stderr": ""}
        if "Suspend-BitLocker" in script:
            self.rebooting = self.reboot_rc == 0
            self.down_left = self.down_polls if self.rebooting else 0
            if self.drop_on_reboot:
                raise AnsibleConnectionFailure("winrm: the node went away mid-answer")
            suspended = "true" if self.bitlocker else "false"
            return {"rc": 0, "stdout": '{"rc":%d,"output":"%s","bitlocker_suspended":%s}' % (
                self.reboot_rc, "" if self.reboot_rc == 0 else "Access is denied.(5)", suspended), "stderr": ""}
        raise AssertionError(f"unexpected script: {script}")


class StandInAction:
    def __init__(self, connection) -> None:
        self._connection = connection
        self.modules: list[dict] = []
        self.raw: list[str] = []

    def _low_level_execute_command(self, cmd, sudoable=True, **kwargs):
        assert sudoable is False
        if isinstance(self._connection, StandInWindows):
            return self._connection.run(decode(cmd))
        self.raw.append(cmd)
        return self._connection.run(cmd)

    def _execute_module(self, module_name, task_vars, module_args):
        self.modules.append({"name": module_name, "args": module_args})
        self._connection.reboot_requested = True
        if getattr(self._connection, "module_answer", None) == "dropped":
            raise AnsibleConnectionFailure('Data could not be sent to remote host "node". Make sure this host can be reached over ssh: ')
        return getattr(self._connection, "module_answer", None) or {"changed": True}


class StandInLinux:
    class Shell:
        SHELL_FAMILY = "sh"
        tmpdir = "/root/.ansible/tmp/x"

    def __init__(self) -> None:
        self._shell = self.Shell()
        self.boot = "aaaa-1"
        self.reboot_requested = False
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        if self.reboot_requested:
            self.boot, self.reboot_requested = "bbbb-2", False

    def run(self, cmd: str) -> dict:
        assert cmd == reboot.BOOT_ID
        return {"rc": 0, "stdout": self.boot + "\n", "stderr": ""}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(reboot, "POLL_INTERVAL", 0)


# ---------------------------------------------------------------- options, per OS


def test_every_reboot_option_has_a_default_per_os():
    linux = reboot.settings({}, "linux")
    assert (linux.command, linux.delay, linux.timeout, linux.default_command) == (("systemctl", "reboot"), 0, 600, True)
    windows = reboot.settings({"reboot_command": None, "reboot_delay": None, "reboot_timeout": None}, "windows")
    assert windows.command == ("shutdown.exe", "/r", "/t", "2", "/c", reboot.REBOOT_MESSAGE)
    assert (windows.delay, windows.timeout, windows.default_command) == (2, 600, True)
    assert reboot.settings({"reboot_delay": 30}, "windows").command[:4] == ("shutdown.exe", "/r", "/t", "30")


def test_a_per_os_mapping_picks_the_nodes_command():
    both = {"reboot_command": {"linux": ["/usr/sbin/reboot"], "windows": ["shutdown.exe", "/r", "/t", "0", "/f"]}}
    assert reboot.settings(both, "linux").command == ("/usr/sbin/reboot",)
    assert reboot.settings(both, "windows").command == ("shutdown.exe", "/r", "/t", "0", "/f")
    only_linux = {"reboot_command": {"linux": ["systemctl", "reboot", "--force"]}}
    assert reboot.settings(only_linux, "windows").default_command is True


@pytest.mark.parametrize("command, node_os, meant", [
    (["systemctl", "reboot"], "windows", "Linux"),
    (["shutdown", "-r", "now"], "windows", "Linux"),
    (["/sbin/reboot"], "windows", "Linux"),
    (["shutdown.exe", "/r", "/t", "0"], "linux", "Windows"),
    (["shutdown", "/r", "/t", "0"], "linux", "Windows"),
    (["Restart-Computer", "-Force"], "linux", "Windows"),
    (["C:\\Tools\\reboot.cmd"], "linux", "Windows"),
])
def test_a_command_for_the_other_os_is_a_clear_error(command, node_os, meant):
    with pytest.raises(DeployError) as caught:
        reboot.settings({"reboot_command": command}, node_os, "node7")
    message = str(caught.value)
    assert message.startswith(f"reboot_command {reboot.json.dumps(command)} is a {meant} command, but node7 is a {node_os.capitalize()} node")
    assert "{linux: [...], windows: [...]}" in message


def test_a_mapping_entry_for_the_other_os_is_refused_naming_its_key():
    with pytest.raises(DeployError, match=r"^reboot_command.windows \[\"systemctl\", \"reboot\"\] is a Linux command"):
        reboot.settings({"reboot_command": {"windows": ["systemctl", "reboot"]}}, "windows")


def test_the_string_form_is_gone_and_the_error_shows_the_list_to_write():
    with pytest.raises(DeployError) as caught:
        reboot.settings({"reboot_command": "systemctl reboot --message 'fw update'"}, "linux")
    assert str(caught.value) == ("reboot_command must be an argument list, not the string \"systemctl reboot --message 'fw update'\": "
                                 "the shell string form was removed (no shell splicing); write it as "
                                 '["systemctl", "reboot", "--message", "fw update"]')


@pytest.mark.parametrize("args, message", [
    ({"reboot_command": []}, "reboot_command must be a non-empty list of strings, not []"),
    ({"reboot_command": ["systemctl", ""]}, "reboot_command: '' is not a usable argument"),
    ({"reboot_command": {"solaris": ["reboot"]}}, "reboot_command: unknown OS ['solaris']"),
    ({"reboot_delay": -1}, "reboot_delay=-1 must be 0 or more"),
    ({"reboot_timeout": 0}, "reboot_timeout=0 must be 1 or more"),
])
def test_bad_reboot_options_name_the_bad_value(args, message):
    with pytest.raises(DeployError) as caught:
        reboot.settings(args, "linux")
    assert str(caught.value).startswith(message)


# ---------------------------------------------------------------- Windows, against the stand-in


def test_a_windows_reboot_uses_the_shutdown_facility_and_waits_for_a_new_boot_time():
    connection = StandInWindows()
    node = reboot.NodeReboot(StandInAction(connection))
    assert node.os_name == "windows"
    outcome = node.run(reboot.settings({}, "windows"), {})
    assert outcome.boot_before == "2026-12-01T08:00:00.0000000Z" and outcome.boot_after == "2026-12-01T08:07:30.0000000Z"
    assert outcome.command == ["shutdown.exe", "/r", "/t", "2", "/c", reboot.REBOOT_MESSAGE]
    kinds = ["boot" if "LastBootUpTime" in s else "reboot" for s in connection.scripts]
    # The boot time first, the reboot, then polls (two while WinRM is down) until the boot time changed.
    assert kinds[:2] == ["boot", "reboot"] and set(kinds[2:]) == {"boot"} and len(kinds) == 5
    assert connection.resets == 3 and connection._shell.tmpdir is None
    script = connection.scripts[1]
    assert "$command = @('shutdown.exe', '/r', '/t', '2', '/c', 'fleet.firmware: rebooting to activate firmware')" in script
    assert outcome.as_result()["bitlocker_suspended"] is False and "bitlocker" not in outcome.as_result()


def test_bitlocker_is_suspended_for_exactly_one_reboot_before_the_command_and_the_result_says_so():
    connection = StandInWindows(bitlocker=True)
    outcome = reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({}, "windows"), {})
    result = outcome.as_result()
    assert result["bitlocker_suspended"] is True
    assert result["bitlocker"].startswith("BitLocker was suspended for exactly one reboot")
    script = connection.scripts[1]
    suspend = script.index("Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1")
    assert script.index("[string]$volume.ProtectionStatus -eq 'On'") < suspend < script.index("$output = & $program @arguments")


def test_a_command_given_as_a_list_is_run_as_words_with_the_delay_before_it():
    connection = StandInWindows()
    hostile = ["C:\\Tools\\reboot.cmd", "it's; Remove-Item C:\\ -Recurse", "$env:x"]
    reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({"reboot_command": hostile, "reboot_delay": 5}, "windows"), {})
    script = connection.scripts[1]
    assert "$command = @('C:\\Tools\\reboot.cmd', 'it''s; Remove-Item C:\\ -Recurse', '$env:x')" in script
    assert "$delay = 5" in script and "$default = $false" in script
    assert "if (-not $default -and $delay -gt 0) { Start-Sleep -Seconds $delay }" in script


def test_an_already_scheduled_shutdown_is_cancelled_and_asked_again():
    script = reboot.windows_reboot_script(reboot.settings({}, "windows"))
    assert "if ($default -and $rc -eq 1190) {" in script and "& shutdown.exe /a" in script


def test_a_failed_reboot_command_is_an_error_with_its_output_and_no_wait():
    connection = StandInWindows(reboot_rc=5, bitlocker=True)
    with pytest.raises(DeployError) as caught:
        reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({}, "windows"), {})
    message = str(caught.value)
    assert message.startswith('the reboot command ["shutdown.exe", "/r", "/t", "2", "/c", ')
    assert "failed on the node (rc=5): Access is denied.(5)" in message and "BitLocker had been suspended for one reboot" in message
    assert len(connection.scripts) == 2


def test_the_connection_going_away_with_the_reboot_is_not_an_error():
    connection = StandInWindows(drop_on_reboot=True)
    outcome = reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({}, "windows"), {})
    assert outcome.boot_after != outcome.boot_before


def test_a_node_that_does_not_come_back_times_out_naming_the_boot_time():
    connection = StandInWindows(comes_back=False)
    with pytest.raises(DeployError, match=r"^the node did not come back within 1 s \(boot time still 2026-12-01T08:00:00.0000000Z\)$"):
        reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({"reboot_timeout": 1}, "windows"), {})


@pytest.mark.parametrize("script", [reboot.PS_BOOT_TIME, reboot.windows_reboot_script(reboot.settings({}, "windows"))])
def test_the_windows_reboot_powershell_parses(script):
    assert not parse_errors(script)


# ---------------------------------------------------------------- Linux, against the stand-in


def test_a_linux_reboot_runs_the_argument_list_detached_without_splicing_it():
    connection = StandInLinux()
    action = StandInAction(connection)
    node = reboot.NodeReboot(action)
    assert node.os_name == "linux"
    outcome = node.run(reboot.settings({"reboot_command": ["touch", "/var/tmp/a b; reboot"], "reboot_delay": 3}, "linux"), {})
    assert (outcome.boot_before, outcome.boot_after) == ("aaaa-1", "bbbb-2")
    [module] = action.modules
    assert module["name"] == "ansible.builtin.command" and module["args"]["_uses_shell"] is True
    assert module["args"]["_raw_params"] == ("nohup sh -c 'sleep \"$1\"; shift; exec \"$@\"' fleet-reboot 3 touch '/var/tmp/a b; reboot' "
                                             ">/dev/null 2>&1 &")
    assert outcome.as_result() == {"os": "linux", "command": ["touch", "/var/tmp/a b; reboot"], "boot_before": "aaaa-1",
                                   "boot_after": "bbbb-2", "bitlocker_suspended": False}


def test_a_linux_reboot_that_takes_the_session_before_the_answer_still_waits_for_the_new_boot_id():
    connection = StandInLinux()
    connection.module_answer = "dropped"  # what ssh says when the reboot kills the session (rc 255)
    outcome = reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({}, "linux"), {})
    assert (outcome.boot_before, outcome.boot_after) == ("aaaa-1", "bbbb-2")


def test_a_linux_reboot_command_that_cannot_start_is_an_error_with_the_modules_message():
    connection = StandInLinux()
    connection.module_answer = {"failed": True, "msg": "[Errno 2] No such file or directory: b'nohup'"}
    with pytest.raises(DeployError, match=r'^the reboot command \["systemctl", "reboot"\] could not be started on the node: '
                                          r"\[Errno 2\] No such file or directory: b'nohup'$"):
        reboot.NodeReboot(StandInAction(connection)).run(reboot.settings({}, "linux"), {})
    assert connection.resets == 0, "no wait for a reboot that did not start"


# ---------------------------------------------------------------- the activation check


@pytest.mark.parametrize("entry, state", [
    ({"name": "a", "installed": "2.0", "available": "2.0", "comparison": "same", "detection": {"state": "present"}}, "activated"),
    ({"name": "a", "installed": "2.92_11-03-2023", "available": "U30 v2.92 (11/03/2023)", "comparison": "same",
      "detection": {"state": "present"}}, "activated"),
    ({"name": "a", "installed": "1.9", "available": "2.0", "comparison": "older", "detection": {"state": "present"}}, "not_activated"),
    ({"name": "a", "installed": "2.10", "available": "1.40", "comparison": "newer", "detection": {"state": "present"}}, "activated"),
    ({"name": "a", "installed": None, "available": "2.0", "comparison": None, "detection": {"state": "absent"}}, "not_activated"),
    ({"name": "a", "installed": None, "available": "2.0", "detection": {"state": "deferred"}}, "unverified"),
    ({"name": "a", "installed": None, "available": "2.0", "detection": {"state": "error", "reason": "BMC refused"}}, "unverified"),
    (None, "unverified"),
])
def test_activation_from_the_re_inventory(entry, state):
    assert reboot.activation(entry)[0] == state


def test_activation_changes_only_installed_rows_and_not_activated_is_a_failure():
    outcomes = [{"name": "a", "status": "installed"}, {"name": "b", "status": "installed"}, {"name": "c", "status": "failed"}]
    inventory = [{"name": "a", "installed": "1.0", "available": "2.0", "comparison": "older", "detection": {"state": "present"}},
                 {"name": "b", "installed": None, "available": "1.0", "detection": {"state": "deferred"}},
                 {"name": "c", "installed": "1.0", "available": "3.0", "comparison": "older", "detection": {"state": "present"}}]
    states = reboot.activation_states(outcomes, inventory)
    assert set(states) == {"a", "b"}
    plan = {name: {"activation": s, "activation_reason": why} for name, (s, why) in states.items()}
    row = reboot.apply_activation({"name": "a", "status": "installed", "message": "rc 0"}, plan["a"])
    assert row == {"name": "a", "status": "not_activated", "message": "rc 0 -> after the reboot the node runs 1.0, not the installed 2.0"}
    assert reboot.apply_activation({"name": "b", "status": "installed", "message": None}, plan["b"])["status"] == "unverified"
    assert reboot.apply_activation({"name": "c", "status": "failed"}, {"activation": "not_activated"})["status"] == "failed"
    assert "not_activated" in reboot.FAILED_STATUSES and "unverified" not in reboot.FAILED_STATUSES


def test_an_intermediate_is_judged_by_the_device_of_the_component_that_supersedes_it():
    """ilo5-1.40 (superseded_by ilo5) is held back by the re-inventory's plan (no detection of its
    own): the node running ilo5's 2.10 is past 1.40, running 1.20 is not even 1.40."""
    outcomes = [{"name": "ilo5-1.40", "status": "installed"}, {"name": "ilo5", "status": "installed"}]
    held_back = {"name": "ilo5-1.40", "installed": None, "available": "1.40", "detection": None}
    for runs, state in (("2.10", "activated"), ("1.40", "activated"), ("1.20", "not_activated")):
        device = {"name": "ilo5", "installed": runs, "available": "2.10", "comparison": "same" if runs == "2.10" else "older",
                  "detection": {"state": "present", "scheme": "auto"}}
        states = reboot.activation_states(outcomes, [held_back, device], {"ilo5-1.40": "ilo5"})
        assert states["ilo5-1.40"][0] == state, (runs, states)
        assert runs in states["ilo5-1.40"][1]
    # Without the repository's superseded_by, it cannot be re-detected: unverified, not a failure.
    assert reboot.activation_states(outcomes, [held_back, device])["ilo5-1.40"][0] == "unverified"


def test_the_report_counts_not_activated_as_a_failure_and_unverified_as_not():
    from ansible_collections.fleet.firmware.plugins.plugin_utils import report
    assert {"not_activated", "unverified"} <= set(report.COMPONENT_STATUSES)
    node = {"task_status": "ok", "components": [{"status": "unverified"}]}
    assert report._node_status(node, [{"stage": "cleaned"}]) == "ok"
    node = {"task_status": "ok", "components": [{"status": "not_activated"}]}
    assert report._node_status(node, [{"stage": "cleaned"}]) == "failed"
