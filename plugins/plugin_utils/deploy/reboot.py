# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node's reboot per the deploy's policy, on Linux and on Windows, over the play's connection.

Linux: the command (an argument list, never a shell string) detached after ``reboot_delay``,
then a new ``/proc/sys/kernel/random/boot_id``.

Windows, with the semantics of ansible.windows.win_reboot: the node's own shutdown facility
(``shutdown.exe /r /t <reboot_delay>`` unless told otherwise) through the play's WinRM/PSRP
connection, after the agent is removed; the boot time (Win32_OperatingSystem LastBootUpTime)
as the boot identifier; waiting up to ``reboot_timeout`` for a new boot time read over WinRM
(so WinRM is back too). Where BitLocker protects the system drive it is suspended for exactly
one reboot (``Suspend-BitLocker -RebootCount 1``) before the reboot command, and the result says
so: a firmware update changes what the TPM measures, and the node would stop at the recovery
screen otherwise. The Windows side cannot run here (no Windows): its PowerShell is parse-tested
and the controller side runs against a stand-in connection (tests/unit/plugins/plugin_utils/
test_reboot.py); the Linux side is tested in the lab (tests/integration/test_deploy.py).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import json
import ntpath
import posixpath
import shlex
import time
import typing as t
from dataclasses import dataclass, field

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.fleet.firmware.plugins.module_utils import versions
from ansible_collections.fleet.firmware.plugins.module_utils.plan import ORDER_WORD
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import DeployError

LINUX, WINDOWS = "linux", "windows"
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
REBOOT_MESSAGE = "fleet.firmware: rebooting to activate firmware"
# Every reboot option has a default per OS (win_reboot's for Windows: pre_reboot_delay 2,
# reboot_timeout 600). The Windows default command takes the delay itself (/t).
DEFAULT_COMMAND = {LINUX: ("systemctl", "reboot"), WINDOWS: ("shutdown.exe", "/r", "/t", "{delay}", "/c", REBOOT_MESSAGE)}
DEFAULT_DELAY = {LINUX: 0, WINDOWS: 2}
DEFAULT_TIMEOUT = {LINUX: 600, WINDOWS: 600}
# shutdown.exe's "a system shutdown has already been scheduled": cancelled once, then retried (as win_reboot).
ERROR_SHUTDOWN_IS_SCHEDULED = 1190
POLL_INTERVAL = 2.0

# Commands that tell their OS (the rest are taken as given).
LINUX_PROGRAMS = {"systemctl", "reboot", "init", "telinit", "sudo", "sh", "bash", "dash", "busctl", "loginctl", "kexec", "touch", "true"}
WINDOWS_SUFFIXES = (".exe", ".cmd", ".bat", ".ps1", ".com")
WINDOWS_PROGRAMS = {"restart-computer"}


def decide(policy: str, outcomes: t.Sequence[dict]) -> tuple[bool, bool]:
    """(reboot now, a component needs one): ``always`` after any install attempt; ``if_needed``
    when every component succeeded and one needs it; ``never``."""
    needs = any(c.get("result") == "reboot_required" for c in outcomes)
    all_ok = all(c.get("status") == "installed" for c in outcomes)
    wanted = bool(policy == "always" and outcomes or policy == "if_needed" and needs and all_ok)
    return wanted, needs


# --------------------------------------------------------------------------------------------
# The activation check: after the reboot, is what was installed what the node now runs?
# --------------------------------------------------------------------------------------------

ACTIVATED, NOT_ACTIVATED, UNVERIFIED = "activated", "not_activated", "unverified"
# Component statuses of the task result, the report and the canary: not_activated is a failure,
# unverified is not (the component cannot be re-detected, e.g. a Smart Component that decides
# for itself).
FAILED_STATUSES = ("failed", NOT_ACTIVATED)


def activation(inventory_entry: dict | None) -> tuple[str, str]:
    """(state, why) of one installed component from its entry in the re-inventory."""
    if not inventory_entry:
        return UNVERIFIED, "not in the re-inventory after the reboot"
    detection = inventory_entry.get("detection") or {}
    state = detection.get("state")
    if state in (None, "deferred", "error"):
        why = {"deferred": "cannot be re-detected (the component decides for itself)",
               "error": f"re-detection failed after the reboot: {detection.get('reason') or 'no reason given'}"}.get(state, "cannot be re-detected")
        return UNVERIFIED, why
    installed, available = inventory_entry.get("installed"), inventory_entry.get("available")
    comparison = inventory_entry.get("comparison")
    if comparison == "same" or (installed is not None and installed == available):
        return ACTIVATED, f"after the reboot the node runs {installed}"
    if comparison == "newer":
        # A later step of the same run (the target after its required intermediate) went past it.
        return ACTIVATED, f"after the reboot the node runs {installed}, past the installed {available}"
    return NOT_ACTIVATED, f"after the reboot the node runs {installed if installed is not None else 'nothing detectable'}, not the installed {available}"


def activation_states(outcomes: t.Sequence[dict], inventory: t.Sequence[dict],
                      superseded_by: t.Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """name -> (state, why) for every component installed in this run.

    ``superseded_by``: name -> the name of the component that supersedes it (the repository's
    ``superseded_by``). Such an older version (an intermediate the site policy required) is held
    back by the re-inventory's plan, so it has no detection of its own: its device is the
    superseding component's, whose re-detection tells."""
    by_name = {entry.get("name"): entry for entry in inventory}
    states = {}
    for outcome in outcomes:
        name = outcome.get("name")
        if outcome.get("status") != "installed" or not name:
            continue
        entry = by_name.get(name) or {}
        device = by_name.get((superseded_by or {}).get(name)) or {}
        if not entry.get("detection") and device.get("detection"):
            entry = _as_version_of(device, entry.get("available"))
        states[name] = activation(entry or None)
    return states


def _as_version_of(device: dict, version: t.Any) -> dict:
    """The superseding component's re-inventory entry, compared with ``version`` instead."""
    detection = device["detection"]
    order = versions.compare(device.get("installed"), version, detection.get("scheme") or "auto").order
    return dict(device, available=version, comparison=ORDER_WORD[order])


def apply_activation(row: dict, plan_entry: dict) -> dict:
    """The result row of a component with its activation: ``installed`` becomes
    ``not_activated`` (a failure) or ``unverified`` (not one), the reason added to its message."""
    state = plan_entry.get("activation")
    if row.get("status") != "installed" or state not in (NOT_ACTIVATED, UNVERIFIED):
        return row
    why = plan_entry.get("activation_reason")
    row.update(status=state, message=" -> ".join(m for m in (row.get("message"), why) if m) or None)
    return row


# --------------------------------------------------------------------------------------------
# The options, per OS
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The reboot options resolved for one node's OS."""

    os_name: str
    command: tuple[str, ...]
    delay: int
    timeout: int
    default_command: bool = False


def command_os(argv: t.Sequence[str]) -> str | None:
    """The OS a command is evidently for (linux, windows), None when it does not tell."""
    program = argv[0]
    base = ntpath.basename(program).lower() if "\\" in program else posixpath.basename(program).lower()
    flags = argv[1:]
    if base.endswith(WINDOWS_SUFFIXES) or base in WINDOWS_PROGRAMS or "\\" in program or program[1:3] == ":/":
        return WINDOWS
    if base == "shutdown":
        if any(a.startswith("/") for a in flags):
            return WINDOWS
        return LINUX
    if program.startswith("/") or base in LINUX_PROGRAMS:
        return LINUX
    return None


def _argv(value: t.Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise DeployError(f"{where} must be an argument list, not the string {value!r}: the shell string form was removed "
                          f"(no shell splicing); write it as {json.dumps(shlex.split(value)) if value.strip() else '[...]'}")
    if not isinstance(value, (list, tuple)) or not value:
        raise DeployError(f"{where} must be a non-empty list of strings, not {value!r}")
    for item in value:
        if not isinstance(item, (str, int)) or isinstance(item, bool) or not str(item) or "\0" in str(item):
            raise DeployError(f"{where}: {item!r} is not a usable argument (a non-empty string)")
    return tuple(str(item) for item in value)


def _int_option(name: str, value: t.Any, os_name: str, minimum: int, defaults: dict) -> int:
    if isinstance(value, dict):
        unknown = set(value) - {LINUX, WINDOWS}
        if unknown:
            raise DeployError(f"{name}: unknown OS {sorted(unknown)!r} (use linux and windows)")
        value = value.get(os_name)
    if value is None:
        return defaults[os_name]
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DeployError(f"{name}={value!r} is not a number") from None
    if number < minimum:
        raise DeployError(f"{name}={number} must be {minimum} or more")
    return number


def settings(args: dict, os_name: str, node: str = "the node") -> Settings:
    """``reboot_command`` / ``reboot_delay`` / ``reboot_timeout`` for a node of ``os_name``.

    ``reboot_command`` is an argument list for the node's OS, or a mapping ``{linux: [...],
    windows: [...]}``; omitted (or the OS missing from the mapping), the OS's default. A command
    that is evidently for the other OS is refused, naming both. ``reboot_delay`` and
    ``reboot_timeout`` are numbers (or such a mapping); omitted, the OS's default.
    """
    if os_name not in (LINUX, WINDOWS):
        raise DeployError(f"unknown node OS {os_name!r}")
    value = args.get("reboot_command")
    if isinstance(value, dict):
        unknown = set(value) - {LINUX, WINDOWS}
        if unknown:
            raise DeployError(f"reboot_command: unknown OS {sorted(unknown)!r} (use linux and windows)")
        value = value.get(os_name)
        where = f"reboot_command.{os_name}"
    else:
        where = "reboot_command"
    delay = _int_option("reboot_delay", args.get("reboot_delay"), os_name, 0, DEFAULT_DELAY)
    timeout = _int_option("reboot_timeout", args.get("reboot_timeout"), os_name, 1, DEFAULT_TIMEOUT)
    if value is None:
        command = tuple(a.replace("{delay}", str(delay)) for a in DEFAULT_COMMAND[os_name])
        return Settings(os_name, command, delay, timeout, default_command=True)
    command = _argv(value, where)
    meant = command_os(command)
    if meant is not None and meant != os_name:
        example = json.dumps([a.replace("{delay}", "0") for a in DEFAULT_COMMAND[os_name]])
        raise DeployError(f"{where} {json.dumps(list(command))} is a {meant.capitalize()} command, but {node} is a "
                          f"{os_name.capitalize()} node: give a {os_name.capitalize()} command (for example {example}), "
                          f"or one per OS as {{linux: [...], windows: [...]}}")
    return Settings(os_name, command, delay, timeout)


# --------------------------------------------------------------------------------------------
# PowerShell for Windows (run through the connection's shell; cannot run here, parse-tested)
# --------------------------------------------------------------------------------------------


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string literal of ``value``."""
    return "'" + value.replace("'", "''") + "'"


PS_BOOT_TIME = """$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
ConvertTo-Json -Compress -InputObject @{ boot = $os.LastBootUpTime.ToUniversalTime().ToString('o') }
"""

PS_REBOOT = """$ErrorActionPreference = 'Stop'
$command = @({argv})
$delay = {delay}
$default = ${default}
# BitLocker: a firmware update changes what the TPM measures; suspended for exactly one reboot.
$bitlocker = $false
if (Get-Command -Name Suspend-BitLocker -ErrorAction SilentlyContinue) {{
    $volume = Get-BitLockerVolume -MountPoint $env:SystemDrive -ErrorAction SilentlyContinue
    if ($null -ne $volume -and [string]$volume.ProtectionStatus -eq 'On') {{
        Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1 | Out-Null
        $bitlocker = $true
    }}
}}
if (-not $default -and $delay -gt 0) {{ Start-Sleep -Seconds $delay }}
$program = $command[0]
$arguments = @($command | Select-Object -Skip 1)
# A native command's stderr must not become a terminating error: its rc and output are the answer.
$ErrorActionPreference = 'Continue'
$output = & $program @arguments 2>&1 | Out-String
$rc = $LASTEXITCODE
if ($default -and $rc -eq {scheduled}) {{
    # Another shutdown was already scheduled (win_reboot does the same): cancel it, ask again.
    & shutdown.exe /a 2>&1 | Out-Null
    $output = & $program @arguments 2>&1 | Out-String
    $rc = $LASTEXITCODE
}}
if ($null -eq $rc) {{ $rc = 0 }}
ConvertTo-Json -Compress -InputObject @{{ rc = $rc; output = $output.Trim(); bitlocker_suspended = $bitlocker }}
"""


def windows_reboot_script(settings_: Settings) -> str:
    return PS_REBOOT.format(argv=", ".join(ps_quote(a) for a in settings_.command), delay=int(settings_.delay),
                            default="true" if settings_.default_command else "false", scheduled=ERROR_SHUTDOWN_IS_SCHEDULED)


def linux_reboot_command(settings_: Settings) -> str:
    """Detached (a raw command's background job dies with its pty); the argument list goes to
    ``exec "$@"`` as quoted words, never spliced into the script."""
    script = 'sleep "$1"; shift; exec "$@"'
    return f"nohup sh -c {shlex.quote(script)} fleet-reboot {int(settings_.delay)} {shlex.join(settings_.command)} >/dev/null 2>&1 &"


# --------------------------------------------------------------------------------------------
# The reboot
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the reboot did, for the task result (``reboot``)."""

    os_name: str
    command: list[str]
    boot_before: str
    boot_after: str = ""
    bitlocker_suspended: bool = False
    notes: list[str] = field(default_factory=list)

    def as_result(self) -> dict:
        result = {"os": self.os_name, "command": self.command, "boot_before": self.boot_before, "boot_after": self.boot_after,
                  "bitlocker_suspended": self.bitlocker_suspended}
        if self.bitlocker_suspended:
            result["bitlocker"] = "BitLocker was suspended for exactly one reboot (Suspend-BitLocker -RebootCount 1); it resumed at boot"
        return result


class NodeReboot:
    """Reboots the node of ``action`` (an ActionBase on its connection) and waits for it."""

    def __init__(self, action, os_name: str | None = None) -> None:
        self.action = action
        self.os_name = os_name or node_os(action)

    # -- the boot identifier

    def boot_id(self) -> str:
        if self.os_name == WINDOWS:
            return str(self._powershell(PS_BOOT_TIME).get("boot") or "")
        answer = self.action._low_level_execute_command(BOOT_ID, sudoable=False)
        return to_text(answer.get("stdout", "")).strip()

    # -- the command

    def trigger(self, settings_: Settings, task_vars: dict) -> Outcome:
        """Runs the reboot command; returns what was done (boot_before filled by the caller)."""
        outcome = Outcome(self.os_name, list(settings_.command), "")
        if self.os_name == WINDOWS:
            answer = self._powershell(windows_reboot_script(settings_), tolerate_drop=True)
            if answer.get("dropped"):
                return outcome  # the connection went with the reboot before it answered
            outcome.bitlocker_suspended = bool(answer.get("bitlocker_suspended"))
            if int(answer.get("rc", 1)) != 0:
                suspended = " (BitLocker had been suspended for one reboot: it resumes at the next one)" if outcome.bitlocker_suspended else ""
                raise DeployError(f"the reboot command {json.dumps(outcome.command)} failed on the node (rc={answer.get('rc')}): "
                                  f"{answer.get('output') or 'no output'}{suspended}")
            return outcome
        try:
            answer = self.action._execute_module(module_name="ansible.builtin.command", task_vars=task_vars, module_args={
                "_raw_params": linux_reboot_command(settings_), "_uses_shell": True})
        except AnsibleConnectionFailure:
            # The reboot took the session before the module answered (a reboot_delay of 0 races
            # the answer; ansible.builtin.reboot carries on the same way): the new boot id tells.
            return outcome
        if answer.get("failed") or answer.get("unreachable"):
            raise DeployError(f"the reboot command {json.dumps(outcome.command)} could not be started on the node: "
                              f"{answer.get('msg') or answer.get('stderr') or 'no message'}")
        return outcome

    def wait_for_new_boot(self, before: str, timeout: int) -> str:
        """Polls until the boot identifier differs from ``before`` (Windows: read over WinRM, so
        WinRM answers again); returns the new one."""
        connection = self.action._connection
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            try:
                connection.reset()
                now = self.boot_id()
            except (AnsibleError, DeployError, OSError):
                continue
            if now and now != before:
                # The remote temporary folder went with the reboot (/root, /tmp, %TEMP% start empty).
                connection._shell.tmpdir = None
                return now
        what = "boot time" if self.os_name == WINDOWS else "boot id"
        raise DeployError(f"the node did not come back within {timeout} s ({what} still {before or 'unknown'})")

    def run(self, settings_: Settings, task_vars: dict) -> Outcome:
        """boot id, command, wait: the whole reboot."""
        before = self.boot_id()
        if not before:
            raise DeployError("the node's boot identifier could not be read before the reboot: not rebooting "
                              "(its coming back could not be told)")
        outcome = self.trigger(settings_, task_vars)
        outcome.boot_before = before
        outcome.boot_after = self.wait_for_new_boot(before, settings_.timeout)
        return outcome

    # -- PowerShell through the play's connection

    def _powershell(self, script: str, tolerate_drop: bool = False) -> dict:
        command = self.action._connection._shell._encode_script(script)
        try:
            result = self.action._low_level_execute_command(command, sudoable=False)
        except AnsibleError:
            if tolerate_drop:
                return {"dropped": True}
            raise
        stdout = to_text(result.get("stdout", "")).strip()
        if result.get("rc", 1) != 0 or not stdout:
            detail = (to_text(result.get("stderr", "")) or stdout).strip().splitlines()
            raise DeployError(f"PowerShell on the node failed (rc={result.get('rc')}): {detail[0] if detail else 'no output'}")
        try:
            return json.loads(stdout.splitlines()[-1])
        except ValueError:
            raise DeployError(f"unexpected answer from PowerShell on the node: {stdout[:200]!r}") from None


def node_os(action) -> str:
    """windows when the play's connection speaks PowerShell (WinRM, PSRP), else linux."""
    family = getattr(getattr(action._connection, "_shell", None), "SHELL_FAMILY", "")
    return WINDOWS if family == "powershell" else LINUX
