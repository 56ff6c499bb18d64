# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What an installer's return code means, per install kind and per OS.

Runs on nodes and on the controller: Python 3.6+, standard library only.

Every install ends in one of the statuses below. The tables are the defaults; a component of
the manifest may give its own map (``returncodes: {0: installed, 10: reboot_required}``),
which replaces the default for that component.

HPE Smart Components return different codes on each OS (HP SUM user guide, return codes):

* Linux ``.scexe``: 0 installed, 1 installed + reboot, 2 not needed (already current),
  3 failed; multi-target components add 4 (no supported device found), 5 cancelled,
  6 dependency not met, 7 failed.
* Windows ``cp*.exe``: 0 failed, 1 installed, 2 installed + reboot, 3 not needed.
"""
from typing import Any, Dict, Mapping, Optional, Tuple

INSTALLED = "installed"
REBOOT_REQUIRED = "reboot_required"
NOT_NEEDED = "not_needed"
FAILED = "failed"
TIMEOUT = "timeout"
# Statuses a return code may map to (a timeout has no return code).
RC_STATUSES = (INSTALLED, REBOOT_REQUIRED, NOT_NEEDED, FAILED)
STATUSES = RC_STATUSES + (TIMEOUT,)
# Statuses after which the component's new version is in place (or was already).
SUCCESS_STATUSES = (INSTALLED, REBOOT_REQUIRED, NOT_NEEDED)

# (status, meaning) per return code.
RcTable = Dict[int, Tuple[str, str]]

SMART_COMPONENT_LINUX = {
    0: (INSTALLED, "installed"),
    1: (REBOOT_REQUIRED, "installed, a reboot is required to activate it"),
    2: (NOT_NEEDED, "not needed: the installed version is current"),
    3: (FAILED, "installation failed"),
    4: (FAILED, "multi-target: no supported device found"),
    5: (FAILED, "multi-target: installation cancelled"),
    6: (FAILED, "multi-target: a dependency is not met"),
    7: (FAILED, "multi-target: installation failed"),
}  # type: RcTable

SMART_COMPONENT_WINDOWS = {
    0: (FAILED, "installation failed"),
    1: (INSTALLED, "installed"),
    2: (REBOOT_REQUIRED, "installed, a reboot is required to activate it"),
    3: (NOT_NEEDED, "not needed: the installed version is current"),
}  # type: RcTable

# Windows Installer (msiexec) and most Windows setup programs.
WINDOWS_INSTALLER = {
    0: (INSTALLED, "installed"),
    1641: (REBOOT_REQUIRED, "installed, the installer started a reboot"),
    3010: (REBOOT_REQUIRED, "installed, a reboot is required to activate it"),
}  # type: RcTable

# fwupdmgr: 0 success, 2 "nothing to do" (fwupdmgr(1), EXIT STATUS).
FWUPD = {
    0: (INSTALLED, "installed"),
    2: (NOT_NEEDED, "not needed: fwupd had nothing to do"),
}  # type: RcTable

ZERO_IS_SUCCESS = {
    0: (INSTALLED, "installed"),
}  # type: RcTable


def default_table(install_kind, os_name):
    # type: (str, str) -> RcTable
    """The return-code table of an install kind on an OS (``linux`` or ``windows``)."""
    if install_kind == "smart_component":
        return SMART_COMPONENT_WINDOWS if os_name == "windows" else SMART_COMPONENT_LINUX
    if install_kind in ("msi", "exe"):
        return WINDOWS_INSTALLER
    if install_kind == "fwupd":
        return FWUPD
    return ZERO_IS_SUCCESS


def parse_table(mapping):
    # type: (Mapping[Any, Any]) -> RcTable
    """A component's own ``returncodes`` map -> table; keys may be strings (JSON), values statuses.

    Raises ValueError naming the bad entry.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError("returncodes must be a mapping of return code to status, not %s" % type(mapping).__name__)
    table = {}  # type: RcTable
    for key, value in mapping.items():
        try:
            code = int(key)
        except (TypeError, ValueError):
            raise ValueError("returncodes key %r is not an integer return code" % (key,))
        if isinstance(key, bool) or (isinstance(key, str) and key.strip() != str(code)):
            raise ValueError("returncodes key %r is not an integer return code" % (key,))
        if value not in RC_STATUSES:
            raise ValueError("returncodes %r: status %r is not one of %s" % (key, value, ", ".join(RC_STATUSES)))
        table[code] = (value, "%s (component's own return code map)" % value.replace("_", " "))
    return table


def interpret(rc, table):
    # type: (int, RcTable) -> Tuple[str, str]
    """(status, message) for a return code; a code the table does not know is a failure."""
    if rc in table:
        return table[rc]
    return FAILED, "return code %d is not a success code of this installer" % rc


def apply_reboot_policy(status, reboot):
    # type: (str, Optional[str]) -> str
    """The component's ``reboot`` setting over the status its return code gave.

    ``if_rc`` (default): the return code decides. ``required``: every successful install needs a
    reboot. ``none``: the component never needs one, whatever its return code says.
    """
    if status not in (INSTALLED, REBOOT_REQUIRED):
        return status
    if reboot == "required":
        return REBOOT_REQUIRED
    if reboot == "none":
        return INSTALLED
    return status
