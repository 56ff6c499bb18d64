#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
DOCUMENTATION = r"""
module: firewall
short_description: Open and close tagged firewall rules with a lease, on Linux and Windows
version_added: 0.1.0
description:
  - Opens ports in the node's firewall for one run, tagged with O(tag), and closes exactly those
    rules again; a rule the collection did not write is never touched.
  - Opened rules act even under a DROP policy and ahead of the user's REJECT/DROP rules, for IPv4
    and IPv6 both.
  - With O(lease), the rules close by themselves when the lease runs out, through a watchdog
    on the node that survives the SSH session and the controller (on Windows, a scheduled task).
  - Linux backends live in C(plugins/module_utils/firewall/); the Windows twin is C(firewall.ps1)
    over C(FleetFirewall.psm1). The Windows twin is checked by a PowerShell parser and unit
    tests only; it has not been run on a real Windows host (see C(docs/firewall.md)).
  - Delegated to C(localhost), the same module opens the engine port on the controller.
options:
  state:
    description:
      - V(open) makes the rules of O(tag) exactly those of O(ports), O(direction) and O(source);
        opening again with the same arguments changes nothing and renews the lease.
      - V(closed) removes every object of O(tag) (every object of the collection with O(tag=*)).
    type: str
    choices: [open, closed]
    default: open
  ports:
    description:
      - Ports to open, each V(PORT), V(PORT/PROTO) or V(FROM-TO/PROTO); the protocol is V(tcp) or
        V(udp) (V(tcp) when left out).
      - Required with O(state=open).
    type: list
    elements: str
    default: []
  direction:
    description:
      - V(in) opens the ports on this node for inbound connections; V(out) lets this node
        connect out to those ports (for example the controller's engine).
    type: str
    choices: [in, out]
    default: in
  source:
    description:
      - Addresses or CIDRs allowed to connect (with O(direction=out), the peers this node may
        connect to). Empty means any address.
      - If only IPv4 (only IPv6) sources are given, the other family stays closed.
    type: list
    elements: str
    default: []
  tag:
    description:
      - The run identifier carried by every rule, V([a-z0-9-]{1,32}).
      - V(*) with O(state=closed) sweeps every rule this collection ever made.
    type: str
    required: true
  lease:
    description:
      - Seconds after which the rules close by themselves, even if nothing connects to the node
        again. V(0) means no lease. Opening again renews the lease.
    type: int
    default: 0
  backend:
    description:
      - The firewall to use. V(auto) picks firewalld if it runs, else ufw if it is active, else
        nftables if it holds a ruleset and no iptables-nft tables, else iptables (legacy or nft).
      - With O(state=closed), V(auto) visits every firewall present (rules may sit in any).
      - V(windows) is the Windows Firewall (the only backend of the Windows twin).
      - V(firewalld) and V(ufw) fail before any change when the daemon is installed but not running.
    type: str
    choices: [auto, iptables, nftables, firewalld, ufw, windows]
    default: auto
attributes:
  check_mode:
    support: full
    description: Reports the rules it would add or remove; nothing changes, no lease starts.
  diff_mode:
    support: full
    description: Before and after of the collection's own objects of O(tag).
  idempotent:
    support: full
    description: Opening again with the same arguments changes nothing (and renews the lease).
  platform:
    support: full
    platforms: [posix, windows]
    description: Python on Linux nodes and the controller, C(firewall.ps1) on Windows nodes.
notes:
  - Needs root (Administrator on Windows) on the node.
  - Rules are runtime only (never saved, never C(--permanent)), so a reboot closes them too; ufw
    keeps rules in its own files, so sweep after a reboot during a lease there.
  - With iptables-nft, a C(filter) table or built-in chain an opening had to create is deleted again
    by the close once it is empty; one that existed before is never deleted.
  - A firewalld or ufw rule of the user's identical to one the module would add stays the user's;
    it is not recorded and never removed (a warning says so).
  - The lease watchdog polls twice a second; a lease closes within a second of running out.
seealso:
  - name: Firewall openings of fleet.firmware
    description: What is touched, how the lease works, how to sweep by hand (docs/firewall.md).
    link: https://github.com/fleet-firmware/fleet.firmware/blob/main/docs/firewall.md
author:
  - fleet.firmware developers (@fleet-firmware)
"""

EXAMPLES = r"""
---
- name: Open the agent port for the controller only, for at most one hour
  fleet.firmware.firewall:
    state: open
    ports: [62286/tcp]
    source: ["{{ fleet_controller_address }}"]
    tag: run-20260121-a
    lease: 3600

- name: Open the engine port on the controller itself (open_firewall)
  fleet.firmware.firewall:
    ports: [63002/tcp]
    source: "{{ groups['linux'] | map('extract', hostvars, 'ansible_host') | list }}"
    tag: run-20260121-a
    lease: 3600
  delegate_to: localhost
  run_once: true

- name: Let the node reach the engine when its OUTPUT policy is DROP
  fleet.firmware.firewall:
    ports: [63002/tcp]
    direction: out
    source: [198.18.0.1]
    tag: run-20260121-a

- name: Close the run's rules
  fleet.firmware.firewall:
    state: closed
    tag: run-20260121-a

- name: Sweep every rule fleet.firmware ever made on these nodes
  fleet.firmware.firewall:
    state: closed
    tag: "*"
"""

RETURN = r"""
backend:
  description: The backend used (with O(state=closed) and O(backend=auto), every one visited).
  returned: always
  type: str
  sample: nftables
tool:
  description: The command the backend drove (C(iptables-legacy), C(iptables), C(nft), ...).
  returned: always
  type: str
  sample: iptables-legacy
rules:
  description: Rules added (O(state=open)) or removed (O(state=closed)), as the firewall prints them.
  returned: always
  type: list
  elements: str
  sample: ["-A INPUT -s 198.18.0.1/32 -p tcp -m tcp --dport 62286 -m comment --comment fleet-firmware:run-1:in-tcp-62286-198.18.0.1/32 -j ACCEPT"]
rules_removed:
  description: With O(state=open), rules of O(tag) removed because the new arguments no longer ask for them.
  returned: always
  type: list
  elements: str
  sample: []
lease_expires:
  description: When the lease runs out (UTC, ISO 8601), or null without a lease.
  returned: always
  type: str
  sample: "2026-01-21T10:00:00Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.api import BACKENDS, FirewallError, build_spec, close_tag, open_ports


def run_module(module: AnsibleModule) -> dict:
    params = module.params
    if params["state"] == "open":
        if params["tag"] == "*":
            raise FirewallError("tag '*' is only for state=closed (a sweep); give the run's own tag to open")
        spec = build_spec(params["tag"], params["ports"], params["direction"], params["source"], params["lease"])
        return open_ports(spec, params["backend"], check_mode=module.check_mode)
    return close_tag(params["tag"], params["backend"], check_mode=module.check_mode)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["open", "closed"], default="open"),
            ports=dict(type="list", elements="str", default=[]),
            direction=dict(type="str", choices=["in", "out"], default="in"),
            source=dict(type="list", elements="str", default=[]),
            tag=dict(type="str", required=True),
            lease=dict(type="int", default=0),
            backend=dict(type="str", choices=list(BACKENDS), default="auto"),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module)
    except FirewallError as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff")
    for warning in result.pop("warnings"):
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
