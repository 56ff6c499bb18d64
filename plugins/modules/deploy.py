#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
---
module: deploy
short_description: Update a node's firmware, drivers and software from a repository, with guaranteed cleanup
version_added: 0.1.0
description:
  - One task for a node's whole session, the way HP SUM deploys to a remote node, run by an action plugin on the
    controller.
  - Registers the node with the run's engine (one HTTPS engine per playbook run on the controller), stages and
    starts the node agent (M(fleet.firmware.agent)), plans on the node (inventory against the manifest and the
    policy), delivers the components the plan needs, installs them in dependency order, reboots when the policy
    says so and checks the new versions, and in a C(finally), whatever happened, stops the agent, closes every
    rule of the run on the node, removes the staged files and writes C(cleaned) to the ledger.
  - If the controller dies (even C(kill -9)), the agent's lease removes everything from the node by itself.
  - Check mode plans only (through M(fleet.firmware.inventory)), with no agent, no firewall change and no transfer.
  - See C(docs/deploy.md) for a walk through a run.
options:
  repository:
    description:
      - Controller folder holding C(manifest.yml) and the component files (see C(docs/repository.md)).
      - Required, unless O(role) is given (then it is the C(fleet_repository) variable).
    type: path
  role:
    description:
      - "Take every option from the host's C(fleet_*) variables, as the role of that name would: its argument spec and
        defaults (C(roles/<role>/meta/argument_specs.yml), C(defaults/main.yml)), the checks its tasks made (ranges,
        variables that depend on each other, WinRM settings that would send secrets in clear), and for V(fleet_update)
        the path (C(fleet_path), else the connection), the preflight (C(fleet_preflight)) and, on Linux, the free space
        of C(/var/tmp) (C(fleet_staging_min_free_mb)): all inside this one task, nothing touches the node when a check fails."
      - No other option may be given with it. The playbook C(fleet.firmware.update_fleet) runs C(role=fleet_update), one task per host.
      - Become (sudo or su) and the WinRM connection settings are task keywords, set on the task as the roles do.
    type: str
    choices: [fleet_update, linux_node, windows_node]
  tag:
    description:
      - "The run tag (C([a-z0-9-]{1,32})). It names the engine's run folder, the ledger, the agent's staging folder and every
        firewall rule of the run."
      - Defaults to C(fleet_run_tag), else a tag derived from the running C(ansible-playbook) process, the same for
        every host of the run.
    type: str
  run_dir:
    description: Controller folder of the run (engine state, CA, ledger). Defaults to C(~/.ansible/fleet-firmware/runs/<tag>).
    type: path
  delivery:
    description:
      - How components reach the node. V(pull) the node downloads from the engine; V(push) the controller uploads
        over the agent's TLS port; V(url) the node downloads from O(repository_url); V(auto) tries pull and falls
        back to push when the node cannot reach the engine (NAT, AWX pods, a blocked return direction).
      - Every byte is checked against the manifest's SHA-256 on the node before installing, whatever the delivery.
    type: str
    choices: [auto, pull, push, url]
    default: auto
  repository_url:
    description: With O(delivery=url), the base URL of an existing repository server holding the same files.
    type: str
  open_firewall:
    description:
      - Open the agent port on the node (for the controller only) and the engine port on the controller, for the run.
        V(false) means you opened them.
    type: bool
    default: true
  open_controller_firewall:
    description:
      - Open the engine port in the controller's own firewall (for the play's node addresses only).
      - Defaults to O(open_firewall). Set V(false) where the controller cannot or must not change its firewall
        (an AWX execution environment, a non-root controller) and open the port yourself.
    type: bool
  controller_address:
    description:
      - The controller's addresses as the nodes see them, when that differs from its own (NAT, an AWX pod behind a
        node port). The agent's port opens for these, and the engine's URLs use them.
      - Default, the controller's own address on the route to each node.
    type: list
    elements: str
  engine_port:
    description: The engine's HTTPS port on the controller.
    type: int
    default: 63002
  engine_address:
    description:
      - Controller addresses the engine listens on and nodes use. Default, the controller's address on the route to
        each host of the play (IPv4 and IPv6 as the hosts need).
    type: list
    elements: str
  agent_port:
    description: The agent's TLS port on the node.
    type: int
    default: 62286
  staging_dir:
    description:
      - The agent's folder on the node (see M(fleet.firmware.agent)); default C(/var/tmp/fleet-firmware-<tag>).
    type: path
  lease:
    description: The agent's lease in seconds, renewed every lease/3 while the task runs.
    type: int
    default: 120
  firewall_backend:
    description: The node's firewall backend (see M(fleet.firmware.firewall)).
    type: str
    default: auto
    choices: [auto, iptables, nftables, firewalld, ufw, windows]
  allow_downgrade:
    description: Install components older than the installed ones.
    type: bool
    default: false
  rewrite:
    description: Install components of the same version again.
    type: bool
    default: false
  force:
    description: Install whatever the installed version, also when it cannot be compared.
    type: bool
    default: false
  only:
    description: Which kinds of component to consider.
    type: str
    choices: [all, firmware, software]
    default: all
  components:
    description: Component names to consider (empty = all of the manifest).
    type: list
    elements: str
    default: []
  approved_hashes:
    description:
      - "Site policy: the SHA-256 of every component the site approved (an allow-list). Any other component is never installed and the plan says
        so (C(policy: approved_hashes)). Empty: no allow-list."
    type: list
    elements: str
    default: []
  denied_versions:
    description:
      - "Site policy: versions never installed, each C({name, version, reason}) (C(reason) optional, shown in the plan). An older SPP version
        (C(cp045678-1.40)) is named by the component that supersedes it (C(cp045678))."
    type: list
    elements: dict
    default: []
  required_versions:
    description:
      - "Site policy: intermediate versions, each C({name, version}): a node older than C(version) gets that version (the repository's
        C(<name>-<version>) with C(superseded_by: <name>)) before the newer target. When the intermediate may need a reboot
        (its C(reboot) is not V(none)), the target waits for the next run, and the plan says so."
    type: list
    elements: dict
    default: []
  min_criticality:
    description:
      - "Site policy: leave out components the baseline rates lower (C(criticality): V(optional) < V(recommended) < V(critical)); a component
        without a rating is kept."
    type: str
    choices: [critical, recommended, optional]
  on_failed_dependency:
    description:
      - When a component fails, what happens to the ones that require it. V(omit_component) skips those;
        V(omit_host) skips everything after the failure on this node; V(force) installs them anyway.
    type: str
    choices: [omit_component, omit_host, force]
    default: omit_component
  reboot:
    description:
      - V(if_needed) reboots only when every component succeeded and at least one needs a reboot (HP SUM's rule);
        V(always) after any install; V(never) reports C(reboot_required) and leaves the reboot to you.
    type: str
    choices: [never, if_needed, always]
    default: never
  reboot_command:
    description:
      - "The command that reboots the node, as an argument list (run without a shell; no string is spliced into one),
        or one per OS as a mapping C({linux: [...], windows: [...]})."
      - Omitted (or the node's OS missing from the mapping), the OS's own facility. Linux C([systemctl, reboot]), run
        detached as the become user. Windows C([shutdown.exe, /r, /t, <reboot_delay>, /c, ...]) through the play's
        WinRM/PSRP connection, with the semantics of C(ansible.windows.win_reboot); where BitLocker protects the
        system drive it is suspended for exactly one reboot first (RV(reboot.bitlocker_suspended)).
      - A command that is evidently for the other OS (for example C([systemctl, reboot]) for a Windows node) is an
        error naming both. A string (the form before 2.0) is an error that shows the list to write instead.
    type: raw
  reboot_delay:
    description:
      - Seconds between the agent's removal and the reboot. Windows' default command passes it to C(shutdown /t).
      - Default per OS, 0 on Linux, 2 on Windows (C(ansible.windows.win_reboot)'s C(pre_reboot_delay)).
    type: int
  reboot_timeout:
    description:
      - Seconds to wait for the node to come back. Linux, its boot id must change; Windows, its boot time
        (C(Win32_OperatingSystem.LastBootUpTime)) read over WinRM must change (so WinRM answers again).
      - Default per OS, 600 on both.
    type: int
  resume:
    description: Skip components the ledger shows installed in an earlier run of the same O(tag).
    type: bool
    default: false
  timeout:
    description: Seconds the installs of this node may take in all, after which the rest is cancelled.
    type: int
    default: 3600
  progress_interval:
    description: At most one progress line per node every this many seconds (0 = none).
    type: int
    default: 5
  trust:
    description:
      - Controller folder of trust anchors (certificates for C(.compsig), C(manifest.yml.sig) and Authenticode;
        GPG keys for RPM header signatures), as for O(fleet.firmware.repository#module:trust).
      - Every component is verified on the controller before anything reaches a node (in check mode too).
    type: path
  signatures:
    description:
      - V(required) refuses the run, naming each component and the reason (V(not signed), V(signature invalid),
        V(signature file missing), V(signer not trusted), V(signer expired), V(signature format not recognised)),
        when a component the run may install (all, or O(components) and what they require) has no valid
        signature of its own and is not covered by a valid signed manifest. Nothing is staged, opened or sent.
      - V(warn) deploys anyway and V(off) does not check; both print a warning in every run (and in the report).
      - V(required) without O(trust) is an error naming O(trust).
    type: str
    choices: [required, warn, "off"]
    default: required
  agent_start:
    description:
      - "How the agent starts on a Linux node. V(stdin): one command through the connection and become (sudo), whose stdin carries
        the agent's loader, its parameters and the zipapp (no temporary folder, no file transfer, no chmod, no rm); its answer
        carries the staging folder's free space and whether the node reaches the engine's port (then V(auto)
        delivery pushes at once instead of trying the pull first). V(staged): the path before 0.2: the zipapp copied into Ansible's
        temporary folder, then the agent module. V(auto): V(stdin), except where a node needs the staged path: C(su) (it reads the
        password from a terminal, and a terminal cannot carry binary stdin) and a C(sudo) with C(requiretty) (found out on the first
        try)."
      - Windows nodes ignore it (admin$ and WinRM).
    type: str
    choices: [auto, stdin, staged]
    default: auto
  redfish_address:
    description:
      - The BMC's host-interface address for C(redfish) detection, asked from the node by the agent
        (and by the inventory in check mode), as in P(fleet.firmware.inventory#module).
      - The settings travel to the agent in its plan request over the mutual-TLS channel, never on a command line.
    type: str
  redfish_username:
    description: The BMC account (HTTP Basic).
    type: str
  redfish_password:
    description: The BMC account's password; never part of a result or a log.
    type: str
  redfish_validate_certs:
    description: Check the BMC's TLS certificate.
    type: bool
    default: true
  redfish_ca_path:
    description: A PEM file on the node with the CA of the BMC's certificate.
    type: path
  redfish_timeout:
    description: Seconds each request to the BMC may take.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    description: Inventory and plan only, through M(fleet.firmware.inventory).
  diff_mode:
    support: none
    description: Nothing to show as a diff; the result lists every component before and after.
  platform:
    support: full
    platforms: [posix]
    description: Linux nodes over SSH (the controller side runs the engine).
  action:
    support: full
    description: The whole session runs in the action plugin on the controller.
notes:
  - Windows nodes are not driven by this version of deploy; M(fleet.firmware.agent) stages and removes the Windows
    agent over admin$.
seealso:
  - module: fleet.firmware.agent
  - module: fleet.firmware.inventory
  - module: fleet.firmware.repository
author:
  - fleet.firmware developers (@fleet-firmware)
"""

EXAMPLES = r"""
- name: Update every node from the repository (pull, falling back to push); signatures checked against the anchors
  fleet.firmware.deploy:
    repository: /srv/firmware/2026.11
    trust: /etc/fleet/trust
  become: true

- name: Firmware only, downgrades allowed, reboot when needed
  fleet.firmware.deploy:
    repository: /srv/firmware/2026.11
    only: firmware
    allow_downgrade: true
    reboot: if_needed
  become: true

- name: From an existing repository server, with the firewall opened by you
  fleet.firmware.deploy:
    repository: /srv/firmware/2026.11
    delivery: url
    repository_url: https://repo.example.com/firmware/2026.11
    open_firewall: false
  become: true
"""

RETURN = r"""
run_tag:
  description: The run tag.
  returned: always
  type: str
signature_warnings:
  description:
    - With O(signatures=warn) or O(signatures=off), the warnings of this run (the policy, and each component deployed
      although its signature does not verify). Also shown as Ansible warnings and in the report.
  returned: when O(signatures) is not V(required)
  type: list
  elements: str
  sample: ["signatures=warn: components whose signature does not verify are still deployed"]
ledger:
  description: Controller path of this node's ledger (JSON lines).
  returned: always
  type: str
delivery:
  description: The delivery used (pull, push or url); with auto, what it came to.
  returned: when something was delivered
  type: str
transfer:
  description: How the agent reached the node (ssh, paramiko, smb, winrm).
  returned: when the agent was staged
  type: str
agent_start:
  description: How the agent started on a Linux node (V(stdin) or V(staged), see O(agent_start)); null on Windows.
  returned: when the agent was started
  type: str
reboot_required:
  description: At least one installed component needs a reboot that did not happen.
  returned: always
  type: bool
rebooted:
  description: The node was rebooted (its boot id changed).
  returned: always
  type: bool
reboot:
  description: What the reboot did.
  returned: when the node was rebooted
  type: dict
  contains:
    os:
      description: C(linux) or C(windows).
      type: str
    command:
      description: The argument list that was run.
      type: list
      elements: str
    boot_before:
      description: The boot identifier before (Linux boot id; Windows LastBootUpTime, UTC, ISO 8601).
      type: str
    boot_after:
      description: The boot identifier after.
      type: str
    bitlocker_suspended:
      description: BitLocker protected the system drive and was suspended for exactly one reboot (Windows).
      type: bool
    bitlocker:
      description: Says so in words, when it was suspended.
      type: str
      returned: when bitlocker_suspended
components:
  description: Per component, in install order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The component's name.
      type: str
    before:
      description: The version found before.
      type: str
    after:
      description: The version found after (re-inventory).
      type: str
    action:
      description: What the plan decided.
      type: str
      sample: upgrade
    status:
      description:
        - C(installed), C(skipped), C(failed), C(not_attempted) or C(cancelled).
        - After a reboot, an installed component whose re-inventoried version is not the one installed is
          C(not_activated), a failure (of the task, in the report, for the canary); one that cannot be re-detected
          (its installer decides for itself) is C(unverified), not a failure.
      type: str
    rc:
      description: The installer's return code.
      type: int
    message:
      description: What happened, in words.
      type: str
    duration_s:
      description: Seconds the install took.
      type: float
    not_deployable:
      description:
        - Why the component can never go to this node (the repository holds it back, such as a BMC-only
          C(.fwpkg) or a superseded version; another OS; its C(applies_to) does not match the node's DMI),
          the plan's C(not_deployable) (see M(fleet.firmware.inventory)); null when it could.
      type: str
      sample: "not deployable: only a BMC can flash it (in-band deployment impossible)"
preflight:
  description:
    - With O(role=fleet_update) and C(fleet_preflight), what the preflight found for this host (M(fleet.firmware.preflight)'s
      C(path), C(controller), C(problems) and C(blocking)).
  returned: with O(role=fleet_update) when the preflight ran
  type: dict
cleanup:
  description: What the final cleanup removed and closed on the node.
  returned: always
  type: list
  elements: str
"""
