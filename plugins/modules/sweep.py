#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
---
module: sweep
short_description: Remove every trace of a fleet.firmware run from a node or from the controller
version_added: 0.1.0
description:
  - On a Linux node, removes what a run of O(tag) left there, or what any run left with O(tag=*)
    after a killed controller, a lost network or a crashed agent, without waiting for the leases.
  - "On the node: the agent processes of the run (asked to stop over their local socket, so the
    component being installed finishes, then killed after O(stop_timeout)), the staging folders
    C(<staging_root>/fleet-firmware-<tag>), the firewall rules of the tag with their leases
    (M(fleet.firmware.firewall) O(fleet.firmware.firewall#module:state=closed)), and the agent's lock,
    holder and socket files in C(/run/fleet-firmware)."
  - With O(controller=true) (run it delegated to C(localhost), once) the action works on the
    controller instead, and only on runs whose C(ansible-playbook) is gone (dead runs) - a live run
    is left alone and listed in RV(live_runs). It stops the dead runs' engines still running, closes
    their engine port on the controller's firewall, destroys their CA keys, and, only with
    O(remove_runs_older_than), removes run folders older than that many days.
  - A rule, process or file the collection did not make is never touched; a clean node or
    controller changes nothing.
options:
  tag:
    description:
      - The run tag (C([a-z0-9-]{1,32})) whose traces go, or V(*) for every run of the collection.
    type: str
    required: true
  staging_root:
    description: The folder holding the agents' staging folders on the node.
    type: path
    default: /var/tmp
  stop_timeout:
    description:
      - Seconds an agent gets to finish the component it is installing and stop; it is killed after.
    type: int
    default: 60
  firewall_backend:
    description: Firewall backend on the node, as in M(fleet.firmware.firewall); V(auto) visits every firewall present.
    type: str
    choices: [auto, iptables, nftables, firewalld, ufw]
    default: auto
  controller:
    description: Sweep the controller (dead runs' engines, CA keys, old run folders) instead of the node.
    type: bool
    default: false
  runs_dir:
    description: With O(controller=true), the folder holding the run folders.
    type: path
    default: ~/.ansible/fleet-firmware/runs
  remove_runs_older_than:
    description:
      - With O(controller=true), remove the run folders (ledger included) of dead runs last changed
        more than this many days ago. When unset, no run folder is removed.
    type: int
attributes:
  check_mode:
    support: full
    description: Lists what would be removed; nothing is stopped, closed or removed.
  diff_mode:
    support: none
    description: RV(removed) lists what went.
  platform:
    support: full
    platforms: posix
    description:
      - Linux nodes (Python 3.6+) and the controller.
      - Windows nodes are swept by the C(fleet.firmware.sweep) playbook with M(fleet.firmware.agent) and M(fleet.firmware.firewall).
  action:
    support: full
    description: The action plugin runs O(controller=true) on the controller and the module on the node otherwise.
notes:
  - Needs root on the node (V(become=true)) and, for the engine's firewall rule, on the controller.
  - O(tag=*) also stops the agent of a run that is still going on the node; sweep a live run only when
    you mean to end it.
seealso:
  - module: fleet.firmware.agent
  - module: fleet.firmware.firewall
author:
  - fleet.firmware developers (@fleet-firmware)
"""

EXAMPLES = r"""
- name: Remove what run-42 left on the nodes
  fleet.firmware.sweep:
    tag: run-42
  become: true

- name: Remove what any run left on the nodes
  fleet.firmware.sweep:
    tag: "*"
  become: true

- name: On the controller, stop dead runs' engines, destroy their CA keys, drop run folders older than 30 days
  fleet.firmware.sweep:
    tag: "*"
    controller: true
    remove_runs_older_than: 30
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
removed:
  description: What was removed (or would be, in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample: ["agent pid 4242 (run-42)", "firewall rule: -A INPUT ... fleet-firmware:run-42:...", "/var/tmp/fleet-firmware-run-42"]
live_runs:
  description: With O(controller=true), the runs left alone because their C(ansible-playbook) still runs.
  returned: when O(controller=true)
  type: list
  elements: str
warnings_list:
  description: What could not be removed and why (the sweep goes on with the rest).
  returned: always
  type: list
  elements: str
"""

import glob
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleet.firmware.plugins.module_utils.agent import config as agent_config
from ansible_collections.fleet.firmware.plugins.module_utils.agent import teardown
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api as firewall_api
from ansible_collections.fleet.firmware.plugins.module_utils.runtag import TAG_PATTERN, TAG_RE

PREFIX = "fleet-firmware-"
AGENT_RE = re.compile(r"/" + re.escape(PREFIX) + "(" + TAG_PATTERN + r")/agent\.pyz\Z")


ARGUMENT_SPEC = dict(
    tag=dict(type="str", required=True),
    staging_root=dict(type="path", default="/var/tmp"),
    stop_timeout=dict(type="int", default=60),
    firewall_backend=dict(type="str", choices=["auto", "iptables", "nftables", "firewalld", "ufw"], default="auto"),
    controller=dict(type="bool", default=False),
    runs_dir=dict(type="path", default="~/.ansible/fleet-firmware/runs"),
    remove_runs_older_than=dict(type="int"),
)


def matches(wanted, tag):
    return wanted == "*" or wanted == tag


def agent_processes(wanted, staging_root):
    """(pid, tag) of every agent process of ``wanted``: its command line runs <root>/fleet-firmware-<tag>/agent.pyz."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except (IOError, OSError):
            continue
        for arg in argv[1:3]:
            match = AGENT_RE.search(arg)
            if match and os.path.dirname(os.path.dirname(arg)) == staging_root.rstrip("/") and matches(wanted, match.group(1)):
                found.append((int(name), match.group(1)))
                break
    return found


def stop_agents(module, wanted, removed, warnings):
    for pid, tag in agent_processes(wanted, module.params["staging_root"]):
        removed.append("agent pid %d (%s)" % (pid, tag))
        if module.check_mode:
            continue
        # It finishes its component and cleans up; a killed agent's leftovers go in remove_agent_state.
        if teardown.stop_agent(tag, pid, module.params["stop_timeout"], ask_timeout=5.0) == teardown.ALIVE:
            warnings.append("agent pid %d (%s) does not stop" % (pid, tag))


def close_rules(module, wanted, warnings, check_mode):
    """The tag's rules (and leases) on the node: listed with ``check_mode``, else closed."""
    try:
        return teardown.close_rules(wanted, backend=module.params["firewall_backend"], check_mode=check_mode)
    except firewall_api.FirewallError as exc:
        if "no firewall tool found" not in str(exc):
            warnings.append("firewall: %s" % exc)
        return []


def staging_folders(wanted, staging_root):
    pattern = os.path.join(staging_root, PREFIX + ("*" if wanted == "*" else wanted))
    found = []
    for path in sorted(glob.glob(pattern)):
        tag = os.path.basename(path)[len(PREFIX):]
        # Only folders of ours: a real folder (no symlink) whose name is a valid tag.
        if os.path.isdir(path) and not os.path.islink(path) and TAG_RE.fullmatch(tag):
            found.append(path)
    return found


def remove_folders(module, folders, removed, warnings):
    for path in folders:
        removed.append(path)
        if not module.check_mode and os.path.lexists(path) and not teardown.remove_staging(path):
            warnings.append("cannot remove %s" % path)


def remove_agent_state(module, wanted, removed):
    """The lock, holder and sockets an agent killed with SIGKILL left in /run/fleet-firmware."""
    paths = teardown.agent_state_files(wanted)
    removed.extend(paths)
    if not module.check_mode:
        teardown.remove_agent_state(paths)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    wanted = module.params["tag"]
    if wanted != "*":
        try:
            agent_config.validate_tag(wanted)
        except agent_config.AgentError as exc:
            module.fail_json(msg="%s (or '*' for every run)" % exc)
    if module.params["controller"]:
        module.fail_json(msg="controller=true runs in the fleet.firmware.sweep action on the controller; call the module by its FQCN")
    removed, warnings = [], []
    # What exists now is what the sweep reports, whether a stopping agent or the sweep removes it.
    rules = close_rules(module, wanted, warnings, check_mode=True)
    folders = staging_folders(wanted, module.params["staging_root"])
    stop_agents(module, wanted, removed, warnings)
    if rules and not module.check_mode:
        close_rules(module, wanted, warnings, check_mode=False)
    removed.extend("firewall rule: %s" % rule for rule in rules)
    remove_folders(module, folders, removed, warnings)
    remove_agent_state(module, wanted, removed)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=bool(removed), removed=removed, warnings_list=warnings)


if __name__ == "__main__":
    main()
