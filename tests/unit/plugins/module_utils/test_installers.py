# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""installers: real tiny installers in a temporary folder (return codes, reboot policy, output,
timeout killing the whole process group) and the commands built for every kind and OS."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import installers, returncodes as rcs


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o644)  # not executable: the installer must cope (noexec /var/tmp does the same)
    return path


class SteppingClock:
    """installers' ``time`` module with a monotonic clock that reads the given values in turn
    (the rest is the real module): a duration is then an exact number, not a race."""

    def __init__(self, *readings: float):
        self.readings = list(readings)

    def monotonic(self) -> float:
        return self.readings.pop(0)

    def __getattr__(self, name):
        return getattr(time, name)


def exits_with(folder: Path, rc: int, name: str = "fake.scexe") -> Path:
    return write_script(folder, name, f"echo installing\necho oops >&2\nexit {rc}\n")


@pytest.mark.parametrize("rc, status", [
    (0, "installed"), (1, "reboot_required"), (2, "not_needed"), (3, "failed"),
    (4, "failed"), (5, "failed"), (6, "failed"), (7, "failed"), (9, "failed"),
])
def test_linux_smart_component_return_codes(tmp_path, monkeypatch, rc, status):
    path = exits_with(tmp_path, rc)
    monkeypatch.setattr(installers, "time", SteppingClock(1000.0, 1002.25))  # started, then ended
    result = installers.install({"name": "sc", "install": "smart_component"}, str(path))
    assert result["status"] == status
    assert result["rc"] == rc
    assert result["command"][-2:] == [str(path), "--silent"]
    assert "installing" in result["output"] and "oops" in result["output"]
    assert result["duration"] == 2.25


@pytest.mark.parametrize("rc, status", [(0, "failed"), (1, "installed"), (2, "reboot_required"), (3, "not_needed"), (4, "failed")])
def test_windows_smart_component_table(rc, status):
    table = installers.returncode_table({"install": "smart_component"}, "windows")
    assert rcs.interpret(rc, table)[0] == status


def test_multi_target_codes_say_what_went_wrong():
    table = rcs.default_table("smart_component", "linux")
    assert "dependency" in rcs.interpret(6, table)[1]
    assert "no supported device" in rcs.interpret(4, table)[1]


@pytest.mark.parametrize("rc, status", [(0, "installed"), (1, "failed"), (2, "failed")])
def test_script_zero_is_success(tmp_path, rc, status):
    path = exits_with(tmp_path, rc, "fake.sh")
    assert installers.install({"name": "s", "install": "script"}, str(path))["status"] == status


def test_script_with_its_own_return_code_map(tmp_path):
    component = {"name": "s", "install": "script", "returncodes": {"0": "installed", "10": "reboot_required", "20": "not_needed"}}
    for rc, status in ((10, "reboot_required"), (20, "not_needed"), (0, "installed"), (1, "failed")):
        assert installers.install(component, str(exits_with(tmp_path, rc, f"s{rc}.sh")))["status"] == status


def test_bad_return_code_map_fails_naming_the_component(tmp_path):
    result = installers.install({"name": "bad", "install": "script", "returncodes": {"x": "installed"}}, str(exits_with(tmp_path, 0)))
    assert result["status"] == "failed" and result["rc"] is None
    assert "'bad'" in result["message"] and "'x'" in result["message"]


@pytest.mark.parametrize("reboot, rc, status", [
    ("required", 0, "reboot_required"), ("none", 1, "installed"), ("if_rc", 1, "reboot_required"),
    ("if_rc", 0, "installed"), (None, 1, "reboot_required"), ("required", 3, "failed"), ("required", 2, "not_needed"),
])
def test_reboot_policy(tmp_path, reboot, rc, status):
    component = {"name": "sc", "install": "smart_component", "reboot": reboot}
    assert installers.install(component, str(exits_with(tmp_path, rc)))["status"] == status


def test_args_and_environment_reach_the_installer_but_not_the_command(tmp_path):
    path = write_script(tmp_path, "args.sh", 'echo "args:$*"\necho "token:$FLEET_TEST_TOKEN"\n')
    component = {"name": "s", "install": "script", "args": ["--mode", "a b"], "environment": {"FLEET_TEST_TOKEN": "s3cret"}}
    result = installers.install(component, str(path))
    assert result["status"] == "installed"
    assert "args:--mode a b" in result["output"] and "token:s3cret" in result["output"]
    assert "s3cret" not in " ".join(result["command"])
    assert result["command"][-3:] == [str(path), "--mode", "a b"]


def test_output_keeps_the_last_4_kib(tmp_path):
    path = write_script(tmp_path, "loud.sh", "i=0\nwhile [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done\n")
    result = installers.install({"name": "s", "install": "script"}, str(path))
    assert len(result["output"].encode()) <= 4096
    assert result["output"].rstrip().endswith("line1999")
    assert "line0\n" not in result["output"]


def test_missing_file_and_missing_tool_are_failures(tmp_path):
    result = installers.install({"name": "s", "install": "script"}, str(tmp_path / "nope.sh"))
    assert result["status"] == "failed" and result["rc"] is None and "does not exist" in result["message"]
    binary = tmp_path / "not-a-program"
    binary.write_bytes(b"\x00\x01garbage")
    result = installers.install({"name": "b", "install": "script"}, str(binary))
    assert result["status"] == "failed" and result["rc"] is None and "cannot start" in result["message"]


def test_workdir_is_the_current_folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    path = write_script(tmp_path, "pwd.sh", "pwd\n")
    result = installers.install({"name": "s", "install": "script"}, str(path), workdir=str(work))
    assert result["output"].strip() == str(work)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of someone else counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_timeout_kills_the_whole_process_group(tmp_path, monkeypatch):
    """The installer starts a child that ignores SIGTERM; both are gone when install returns."""
    monkeypatch.setattr(installers, "KILL_GRACE", 1.0)
    pids = tmp_path / "pids"
    path = write_script(tmp_path, "hang.sh", f"""
sh -c 'trap "" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &
echo $$ >> {pids}
echo started
wait
""")
    result = installers.install({"name": "hang", "install": "script", "timeout": 600}, str(path), timeout=1.5)
    assert result["status"] == "timeout" and result["rc"] is None
    assert "started" in result["output"] and "killed" in result["message"]
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 2
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in recorded)


def test_installer_runs_in_its_own_session(tmp_path):
    path = write_script(tmp_path, "sid.sh", "ps -o sid= -p $$\n")
    result = installers.install({"name": "s", "install": "script"}, str(path))
    assert int(result["output"].strip()) != os.getsid(0)


def test_the_smaller_timeout_wins():
    assert installers._effective_timeout({"timeout": 30}, 600) == 30
    assert installers._effective_timeout({}, 5) == 5
    assert installers._effective_timeout({"timeout": 7}, None) == 7
    assert installers._effective_timeout({}, None) is None


# --------------------------------------------------------------------------------------------
# Built commands
# --------------------------------------------------------------------------------------------

P = "/var/tmp/fleet/c"


@pytest.mark.parametrize("component, os_name, expected", [
    ({"install": "rpm"}, "linux", ["rpm", "-U", P]),
    ({"install": "rpm", "action": "downgrade"}, "linux", ["rpm", "-U", "--oldpackage", P]),
    ({"install": "rpm", "action": "rewrite"}, "linux", ["rpm", "-U", "--replacepkgs", P]),
    ({"install": "rpm", "force": True}, "linux", ["rpm", "-U", "--replacepkgs", "--oldpackage", P]),
    ({"install": "deb"}, "linux", ["dpkg", "-i", P]),
    ({"install": "deb", "args": ["--force-confold"]}, "linux", ["dpkg", "-i", P, "--force-confold"]),
    ({"install": "fwupd"}, "linux", ["fwupdmgr", "install", "--assume-yes", "--no-reboot-check", P]),
    ({"install": "fwupd", "action": "downgrade"}, "linux", ["fwupdmgr", "install", "--assume-yes", "--no-reboot-check", "--allow-older", P]),
    ({"install": "fwupd", "action": "rewrite"}, "linux", ["fwupdmgr", "install", "--assume-yes", "--no-reboot-check", "--allow-reinstall", P]),
    ({"install": "smart_component"}, "linux", [P, "--silent"]),
    ({"install": "smart_component", "action": "downgrade"}, "linux", [P, "--silent", "--downgrade"]),
    ({"install": "smart_component", "action": "rewrite"}, "linux", [P, "--silent", "--rewrite"]),
    ({"install": "smart_component"}, "windows", [P, "/s"]),
    ({"install": "smart_component", "action": "downgrade"}, "windows", [P, "/s", "/f"]),
    ({"install": "script"}, "linux", [P]),
    ({"install": "script", "args": "--a 'b c'"}, "linux", [P, "--a", "b c"]),
    ({"install": "msi"}, "windows", ["msiexec.exe", "/i", P, "/qn", "/norestart", "/l*v", P + ".log"]),
    ({"install": "msi", "action": "rewrite"}, "windows",
     ["msiexec.exe", "/i", P, "/qn", "/norestart", "/l*v", P + ".log", "REINSTALL=ALL", "REINSTALLMODE=vomus"]),
    ({"install": "exe", "args": ["/quiet", "/norestart"]}, "windows", [P, "/quiet", "/norestart"]),
])
def test_build_command(component, os_name, expected):
    assert installers.build_command(dict(component, name="c"), P, os_name) == expected


@pytest.mark.parametrize("suffix, expected_head", [
    (".ps1", ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File"]),
    (".cmd", ["cmd.exe", "/d", "/c"]),
    (".BAT", ["cmd.exe", "/d", "/c"]),
    (".exe", []),
])
def test_windows_scripts(suffix, expected_head):
    path = "C:\\Windows\\Temp\\fleet\\setup" + suffix
    assert installers.build_command({"name": "w", "install": "script", "args": ["-X"]}, path, "windows") == expected_head + [path, "-X"]


@pytest.mark.parametrize("kind, os_name", [("msi", "linux"), ("rpm", "windows"), ("deb", "windows"), ("fwupd", "windows"), ("tarball", "linux")])
def test_kinds_that_do_not_exist_on_the_os(kind, os_name):
    with pytest.raises(installers.InstallError, match="'c'.*%s" % kind):
        installers.build_command({"name": "c", "install": kind}, P, os_name)


def test_windows_msi_table():
    table = installers.returncode_table({"install": "msi"}, "windows")
    assert [rcs.interpret(rc, table)[0] for rc in (0, 3010, 1641, 1603)] == ["installed", "reboot_required", "reboot_required", "failed"]


def test_fwupd_nothing_to_do_is_not_needed():
    assert rcs.interpret(2, installers.returncode_table({"install": "fwupd"}))[0] == "not_needed"


@pytest.mark.parametrize("arg", ["/s & del C:\\x", "a|b", "x>y", "x<y", "^", "%PATH%", "!v!", 'q"', "(x)", "a\r\nb"])
def test_a_batch_file_component_refuses_an_argument_cmd_exe_would_interpret(arg):
    component = {"name": "tool", "install": "script", "args": ["/quiet", arg]}
    with pytest.raises(installers.InstallError) as caught:
        installers.build_command(component, "C:\\stage\\tool.CMD", "windows")
    assert "component 'tool': args[1]" in str(caught.value) and "cmd.exe" in str(caught.value)


def test_a_batch_file_component_takes_plain_arguments_and_other_scripts_take_any():
    plain = {"name": "tool", "install": "script", "args": ["/quiet", "--log=C:\\logs\\x.txt", "a b"]}
    assert installers.build_command(plain, "C:\\stage\\tool.bat", "windows") == ["cmd.exe", "/d", "/c", "C:\\stage\\tool.bat", "/quiet",
                                                                                 "--log=C:\\logs\\x.txt", "a b"]
    shell = {"name": "tool", "install": "script", "args": ["a&b"]}
    assert installers.build_command(shell, "C:\\stage\\tool.ps1", "windows")[-1] == "a&b"  # an argv: PowerShell does not re-parse it
    assert installers.build_command(shell, "/stage/tool.sh", "linux") == ["/stage/tool.sh", "a&b"]
