#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: preflight
author: fleet.firmware developers (@fleet-firmware)
short_description: Which port blocks which deployment step, in both directions, for one node
version_added: 0.1.0
description:
  - Checks, from the controller, the ports of the node's path (controller -> node), then runs
    M(fleet.firmware.reach) on the node towards the controller's engine port (node -> controller),
    and says for every port that is not usable which deployment step it breaks.
  - "For example C(445/tcp filtered: admin$ staging will fail; WinRM fallback possible) or
    C(63002/tcp from node filtered: pull delivery impossible, use push or url)."
  - While the node checks the return direction, the controller listens on the engine port, only
    on the controller address the node should use (never on a wildcard address), and stops
    listening right after. Several nodes are checked at once. Where the run's engine already
    listens (O(engine_run_dir)), the check uses the engine.
  - One row per address of the node (O(addresses)). A blocking problem fails the node only when it
    holds on every address of the node, since a client uses the address that answers.
  - The playbook C(fleet.firmware.preflight) runs this action on every host, then
    M(fleet.firmware.preflight_report) prints one table for the run and writes it as JSON.
  - The steps, consequences and severities are defined once, beside the ports, in the
    collection's C(plugins/module_utils/ports.py); C(docs/ports.md) lists them.
  - This is an action plugin; it runs on the controller and runs M(fleet.firmware.reach) on the node.
options:
  path:
    description:
      - The node's deployment path, which picks the controller -> node ports.
      - V(linux) checks SSH (the connection's port, V(22/tcp) by default) and the agent port.
      - V(windows) checks V(445/tcp), V(139/tcp), V(137/udp), V(138/udp), V(5985/tcp),
        V(5986/tcp) and the agent port, plus the connection's port when it is not one of these.
      - Default V(windows) for C(winrm) and C(psrp) connections or a PowerShell shell, else V(linux).
    type: str
    choices: [linux, windows]
  addresses:
    description:
      - The node's addresses to check; each gives a row of its address family.
      - Default every address the connection's host (C(ansible_host)) resolves to on the controller.
    type: list
    elements: str
  controller_address:
    description:
      - The controller's address(es) the node should use for the engine, names or literals.
        Per address family of the node the first one of that family is used.
      - For a family not given, the controller's source address on its route to the node
        (the kernel's choice; nothing is sent to find it).
    type: list
    elements: str
    default: []
  engine_port:
    description: The engine's TCP port, checked from the node (node -> controller).
    type: int
    default: 63002
  agent_port:
    description: The agent's TCP port, checked from the controller (controller -> node).
    type: int
    default: 62286
  engine_run_dir:
    description:
      - The run folder of an engine that already listens on O(engine_port). When its engine runs
        there, the check uses it and the preflight does not listen itself.
      - Without it, another program on O(engine_port) is reported (the engine could not listen
        there during a run) and the check tests that program.
    type: path
  listen:
    description:
      - Whether the controller listens on O(engine_port) for the check. V(false) tests whatever
        listens there (for example an engine behind NAT or a load balancer).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for an answer, per probe; every probe of a direction waits at the same time.
      - The default covers one lost TCP SYN (Linux resends it after 1 s).
    type: float
    default: 2.0
  delivery:
    description:
      - How the run will deliver components. With V(push) or V(url) a blocked engine port is a
        warning, because neither needs the node to reach the engine.
    type: str
    choices: [auto, pull, push, url]
    default: auto
  fail_on_blocking:
    description:
      - Fail the task when the node has a blocking problem. The preflight playbook sets V(false)
        to print the run's table first and fails the nodes afterwards.
    type: bool
    default: true
attributes:
  action:
    support: full
    description: Runs on the controller, and runs M(fleet.firmware.reach) on the node.
  async:
    support: none
    description: The probes take about two timeouts.
  check_mode:
    support: full
    description: Only probes; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes on the node.
  platform:
    support: full
    platforms: [posix, windows]
    description: The return direction runs the Python or PowerShell twin of M(fleet.firmware.reach).
notes:
  - Nothing is sent to find the controller's route source; the probes go only to the node's
    addresses (controller -> node) and the controller's addresses (node -> controller).
  - When the connection's port is not open, the return direction is not checked (nothing can run
    on the node) and the connection is the reason the node fails.
seealso:
  - module: fleet.firmware.preflight_report
  - module: fleet.firmware.reach
  - plugin: fleet.firmware.reachable_ports
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Check every node (the playbook fleet.firmware.preflight does this and prints a table)
  fleet.firmware.preflight:
  register: fleet_preflight_result

- name: A dual-stack node on both families, engine on another port, delivery by push
  fleet.firmware.preflight:
    addresses: [198.18.0.11, "fd00:f1ee:7ab::b"]
    controller_address: [198.18.0.1, "fd00:f1ee:7ab::1"]
    engine_port: 64002
    delivery: push

- name: A Windows node reached over SSH
  fleet.firmware.preflight:
    path: windows
"""

RETURN = r"""
path:
  description: The node's path.
  returned: success
  type: str
  sample: linux
connection:
  description: The Ansible connection's C(type), C(host), C(port) and C(shell) family.
  returned: success
  type: dict
  sample: {type: ssh, host: 198.18.0.11, port: 22, shell: sh}
engine_port:
  description: The engine port checked from the node.
  returned: success
  type: int
  sample: 63002
controller:
  description: The controller address the node should use, per family (null when there is none).
  returned: success
  type: dict
  sample: {ipv4: 198.18.0.1}
listener:
  description:
    - Per controller address, who listened on the engine port during the check
      (C(listener) V(preflight), V(engine), V(other) or V(failed)) and a C(detail) text.
  returned: success
  type: dict
  sample: {198.18.0.1: {listener: preflight, detail: "the preflight listened on 198.18.0.1:63002 for the check"}}
rows:
  description:
    - One row per node address, with C(family), C(address), C(controller_address) and C(ports),
      a dictionary keyed by V(PORT/PROTO) of C(state), C(role), C(direction), C(connection),
      C(latency_ms) and C(error).
    - States are those of P(fleet.firmware.reachable_ports#lookup), plus V(not checked) for the
      return direction when nothing can run on the node.
  returned: success
  type: list
  elements: dict
problems:
  description:
    - Every port that is not usable, with C(port), C(role), C(direction), C(state), C(family),
      C(address), C(severity) (V(blocking), V(warning) or V(info)) and C(message), the text of
      the table.
  returned: success
  type: list
  elements: dict
  sample:
    - port: 63002/tcp
      direction: node -> controller
      state: filtered
      severity: blocking
      message: "63002/tcp from node filtered: pull delivery impossible, use push or url"
blocking:
  description: The reasons the node fails; empty when it passes.
  returned: success
  type: list
  elements: str
  sample: ["63002/tcp from node filtered: pull delivery impossible, use push or url"]
"""
