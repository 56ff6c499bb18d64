#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
---
module: agent
short_description: Start or remove the fleet.firmware node agent for one run
version_added: 0.1.0
description:
  - Starts the node agent of a run (a small mutual-TLS server, see C(docs/agent.md)) or stops and removes it.
  - The agent runs detached from the connection, listens on O(agent_port) on the node's addresses that face the
    controller, opens that port in the node's firewall for the controller only (tagged with O(tag)), and holds a
    lease. When the lease runs out (controller gone, network cut) it finishes the component it is installing,
    skips the rest, closes its firewall rules, removes its staging folder and exits.
  - Use it through its action plugin of the same name, which builds the agent, issues its certificates, transfers
    it (Linux through the play's connection; Windows through the C(admin$) share with smbprotocol, or WinRM when
    C(admin$) is unreachable) and checks that the controller reaches it over mutual TLS.
  - O(state=absent) stops the agent, closes the rules of O(tag), removes the staging folder and reports what it
    removed; on a clean node it changes nothing.
  - One agent holds a node at a time; starting an agent for another run fails with a message naming the run that
    holds the node. Starting again for the same run changes nothing and renews the lease.
  - Linux nodes need Python 3.6 or later and root (V(become=true), through sudo or su); Windows nodes run the
    PowerShell twin of this module.
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Reports what would be started or removed; nothing is transferred, started or removed.
  diff_mode:
    support: none
    description: Nothing to show as a diff; O(state=absent) lists what it removed.
  platform:
    support: full
    platforms: [posix, windows]
    description: Python on Linux nodes, C(agent.ps1) on Windows nodes.
  action:
    support: full
    description: The action plugin does the transfer, the certificates and the check over mutual TLS.
options:
  state:
    description: V(started) starts (or renews) the agent; V(absent) stops and removes it.
    type: str
    choices: [started, absent]
    default: started
  tag:
    description:
      - The run identifier (C([a-z0-9-]{1,32})). It names the staging folder and tags the firewall rules.
    type: str
    required: true
  agent_port:
    description: TCP port the agent listens on.
    type: int
    default: 62286
  lease:
    description:
      - Seconds the agent lives without a renewal. The controller renews it (the deploy action every lease/3, or
        this module again with the same tag); when it runs out, the agent cleans up and exits.
    type: int
    default: 300
  open_firewall:
    description:
      - Open O(agent_port) in the node's firewall for the controller's addresses only, tagged with O(tag).
      - V(false) means you opened it yourself.
    type: bool
    default: true
  firewall_backend:
    description: Firewall backend on the node, as in M(fleet.firmware.firewall).
    type: str
    choices: [auto, iptables, nftables, firewalld, ufw, windows]
    default: auto
  controller:
    description:
      - The controller addresses the agent accepts (firewall source) and routes to.
      - The action fills it in with the controller's address on the route to each of the node's addresses.
    type: list
    elements: str
  bind:
    description:
      - Node addresses to listen on. Empty means the node's address on the route to each controller address.
    type: list
    elements: str
    default: []
  staging_dir:
    description:
      - The agent's folder on the node, mode 0700, owned by the become user, removed when the agent stops.
      - Defaults to C(/var/tmp/fleet-firmware-<tag>) on Linux and C(C:\Windows\Temp\fleet-firmware-<tag>) on Windows.
    type: path
  run_dir:
    description:
      - Controller folder of the run (its CA, the agent's certificates and the session file the deploy action and
        M(fleet.firmware.agent) use to reach the agent). Used by the action only.
      - Defaults to C(~/.ansible/fleet-firmware/runs/<tag>) on the controller.
    type: path
  start_timeout:
    description: Seconds to wait for the agent to say it is ready.
    type: int
    default: 30
  stop_timeout:
    description:
      - With O(state=absent), seconds to wait for the agent to finish the component it is installing and stop.
        After that it is killed and its leftovers are removed.
    type: int
    default: 120
  agent_pid:
    description:
      - With O(state=absent), the pid of the agent the caller started (the RV(pid) of its O(state=started)).
      - When the node's agent of O(tag) is another process, or a launcher is still starting one in the staging folder,
        that is a newer start of the same run (a resume while the worker of a killed run cleans up). Then nothing is
        stopped or removed, RV(left_alone) is true and RV(msg) says why.
      - Without it, the agent of O(tag), whichever it is, is stopped and its leftovers removed.
    type: int
  verify:
    description:
      - After starting, the action checks over mutual TLS that the controller reaches the agent; when it cannot,
        the agent is stopped and removed again and the task fails.
    type: bool
    default: true
  transfer:
    description:
      - How the agent gets to the node. V(auto) is the play's connection on Linux and C(admin$) (falling back to
        WinRM) on Windows. Used by the action only.
    type: str
    choices: [auto, connection, smb, winrm]
    default: auto
  smb_user:
    description: Windows only. The user for C(admin$); defaults to the connection's user.
    type: str
  smb_password:
    description: Windows only. The password for C(admin$); defaults to the connection's password.
    type: str
  node_id:
    description: The node's name in the run (defaults to the inventory hostname). Set by the action.
    type: str
  run_id:
    description: The run's identifier in the agent's status (defaults to O(tag)). Set by the action.
    type: str
  agent_src:
    description: Internal, set by the action. Remote path of the transferred agent.
    type: path
  agent_sha256:
    description:
      - Internal, set by the action (Windows). File name -> SHA-256 of every file it staged; the agent's scheduled
        task carries them in its own command line and checks each before it runs anything.
    type: dict
  secrets:
    description: Internal, set by the action (never logged). The agent's token, keys and certificates.
    type: dict
notes:
  - The agent's secrets (bearer token, TLS key) reach it on its standard input, never on a command line or in the
    environment; on the controller they live in the run folder with mode 0600.
  - The Windows twin cannot be run in this project's tests (there is no Windows here); see C(docs/agent.md) for
    what was verified.
seealso:
  - module: fleet.firmware.firewall
  - module: fleet.firmware.reach
author:
  - fleet.firmware developers (@fleet-firmware)
"""

EXAMPLES = r"""
- name: Start the agent of this run on every node (lease renewed by later tasks)
  fleet.firmware.agent:
    tag: run-42
    lease: 600
  become: true

- name: The same on a node behind a firewall you manage yourself
  fleet.firmware.agent:
    tag: run-42
    open_firewall: false
    agent_port: 62500
  become: true

- name: Stop and remove everything of the run
  fleet.firmware.agent:
    tag: run-42
    state: absent
  become: true
"""

RETURN = r"""
agent_port:
  description: The port the agent listens on.
  returned: state is started
  type: int
  sample: 62286
pid:
  description: The agent's process id on the node.
  returned: state is started
  type: int
address:
  description: The node addresses the agent listens on.
  returned: state is started
  type: list
  elements: str
  sample: ["198.18.0.10", "fd00:f1ee:7ab::10"]
staged_path:
  description: The agent's folder on the node.
  returned: always
  type: str
  sample: /var/tmp/fleet-firmware-run-42
transfer:
  description: How the agent reached the node (C(ssh), C(paramiko), C(local), C(smb) or C(winrm)).
  returned: state is started and changed
  type: str
lease_expires:
  description: When the lease runs out unless renewed (UTC).
  returned: state is started
  type: str
  sample: "2026-11-21T10:15:00Z"
firewall_opened:
  description: Whether the agent opened its port in the node's firewall.
  returned: state is started
  type: bool
session:
  description: Controller path of the session file (addresses, port, paths of the certificates; mode 0600).
  returned: state is started
  type: str
removed:
  description: What O(state=absent) removed (agent process, firewall rules, files).
  returned: state is absent
  type: list
  elements: str
left_alone:
  description:
    - With O(state=absent), true when a newer start of the run owns the node (see O(agent_pid)), whose agent,
      rules and folder were not touched; RV(msg) says which.
  returned: when O(state=absent) left the node to a newer start of the run
  type: bool
msg:
  description: With O(state=absent), why nothing or not everything was removed (a newer start of the run owns the node).
  returned: when O(state=absent) left the node to a newer start of the run
  type: str
"""

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleet.firmware.plugins.module_utils.agent import config as agent_cfg
from ansible_collections.fleet.firmware.plugins.module_utils.agent import control_socket, teardown
from ansible_collections.fleet.firmware.plugins.module_utils.agent.lock import NodeLock
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api as firewall_api

SECRET_KEYS = ("token", "ca_cert", "ca_fingerprint", "server_cert", "server_key")


def argument_spec():
    return dict(
        state=dict(type="str", choices=["started", "absent"], default="started"),
        tag=dict(type="str", required=True),
        agent_port=dict(type="int", default=agent_cfg.DEFAULT_PORT),
        lease=dict(type="int", default=agent_cfg.DEFAULT_LEASE),
        open_firewall=dict(type="bool", default=True),
        firewall_backend=dict(type="str", choices=["auto", "iptables", "nftables", "firewalld", "ufw", "windows"], default="auto"),
        controller=dict(type="list", elements="str"),
        bind=dict(type="list", elements="str", default=[]),
        staging_dir=dict(type="path"),
        run_dir=dict(type="path"),
        start_timeout=dict(type="int", default=30),
        stop_timeout=dict(type="int", default=120),
        agent_pid=dict(type="int"),
        verify=dict(type="bool", default=True),
        transfer=dict(type="str", choices=["auto", "connection", "smb", "winrm"], default="auto"),
        smb_user=dict(type="str"),
        smb_password=dict(type="str", no_log=True),
        node_id=dict(type="str"),
        run_id=dict(type="str"),
        agent_src=dict(type="path"),
        agent_sha256=dict(type="dict"),
        secrets=dict(type="dict", no_log=True),
    )


def staging_of(params):
    return (params["staging_dir"] or "/var/tmp/fleet-firmware-%s" % params["tag"]).rstrip("/")


def holder():
    """The tag and pid of the agent holding this node, or None."""
    lock = NodeLock()
    return (lock.holder() or {"tag": "?"}) if lock.held() else None


def log_tail(staging, limit=2000):
    try:
        with open(os.path.join(staging, "agent.log"), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return ""


def copy_agent(source, staging):
    """Put the transferred zipapp into the staging folder (0700, ours)."""
    try:
        os.makedirs(staging, mode=0o700, exist_ok=True)
        info = os.lstat(staging)
        if not os.path.isdir(staging) or os.path.islink(staging) or info.st_uid != os.geteuid():
            raise agent_cfg.AgentError("staging folder %s exists and is not a folder owned by uid %d" % (staging, os.geteuid()))
        os.chmod(staging, 0o700)
        target = os.path.join(staging, "agent.pyz")
        shutil.copyfile(source, target)
        os.chmod(target, 0o600)
        return target
    except (IOError, OSError) as exc:
        raise agent_cfg.AgentError("cannot stage the agent in %s: %s" % (staging, exc.strerror or exc))


def agent_config(params, staging):
    secrets = params["secrets"] or {}
    missing = [key for key in SECRET_KEYS if not secrets.get(key)]
    if missing:
        raise agent_cfg.AgentError("secrets lacks %s (the fleet.firmware.agent action provides them)" % ", ".join(missing))
    if not params["controller"]:
        raise agent_cfg.AgentError("controller is required: the addresses the agent accepts")
    config = dict((key, secrets[key]) for key in SECRET_KEYS)
    config.update(tag=params["tag"], run_id=params["run_id"] or params["tag"], node_id=params["node_id"] or socket.gethostname(),
                  port=params["agent_port"], bind=params["bind"], controller=params["controller"], lease=params["lease"],
                  staging=staging, firewall={"open": params["open_firewall"], "backend": params["firewall_backend"]})
    return config


def read_ready(process, timeout):
    """The agent's one line on stdout: ready, or why not."""
    deadline = time.time() + timeout
    line = b""
    while not line.endswith(b"\n") and time.time() < deadline:
        readable = select.select([process.stdout], [], [], max(0.0, deadline - time.time()))[0]
        if not readable:
            break
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        line += chunk
    if not line:
        return {"ready": False, "error": "the agent did not answer within %d s (exit status %s)" % (timeout, process.poll())}
    try:
        return json.loads(line.decode("utf-8").splitlines()[0])
    except (ValueError, IndexError):
        return {"ready": False, "error": "the agent said: %s" % line[:500].decode("utf-8", "replace")}


def spawn(params, staging, pyz):
    """Start the agent in its own session and hand it its configuration on stdin."""
    config = agent_config(params, staging)
    log = os.open(os.path.join(staging, "agent.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, pyz], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            close_fds=True, start_new_session=True, cwd=staging,
        )
    finally:
        os.close(log)
    try:
        process.stdin.write(json.dumps(config).encode("utf-8"))
        process.stdin.close()
    except (IOError, OSError):
        pass
    answer = read_ready(process, params["start_timeout"])
    process.stdout.close()
    if not answer.get("ready"):
        control_socket.stop_process(process.pid, 5)
        process.wait()
    return answer


def start(module):
    params = module.params
    staging = staging_of(params)
    other = holder()
    if other is not None and other.get("tag") != params["tag"]:
        module.fail_json(msg="node is held by run %r (agent pid %s since %s): stop that run first, or wait for its lease to run out"
                         % (other.get("tag"), other.get("pid"), other.get("since")))
    if other is not None:
        renewed = {} if module.check_mode else control_socket.control(params["tag"], {"op": "lease", "seconds": params["lease"]})
        status = control_socket.control(params["tag"], {"op": "status"})
        module.exit_json(changed=False, agent_port=status["port"], pid=status["pid"], address=status["addresses"],
                         staged_path=staging, lease_expires=renewed.get("lease_expires", status["lease_expires"]),
                         msg="the agent of run %s is already running; lease renewed" % params["tag"])
    if module.check_mode:
        module.exit_json(changed=True, staged_path=staging, msg="would stage and start the agent of run %s" % params["tag"])
    if not params["agent_src"] or not os.path.isfile(params["agent_src"]):
        module.fail_json(msg="agent_src %r is not a file on the node (the fleet.firmware.agent action transfers it)" % params["agent_src"])
    existed = os.path.lexists(staging)
    try:
        pyz = copy_agent(params["agent_src"], staging)
        answer = spawn(params, staging, pyz)
    except agent_cfg.AgentError as exc:
        answer = {"ready": False, "error": str(exc)}
    if not answer.get("ready"):
        tail = log_tail(staging)
        if not existed:
            shutil.rmtree(staging, ignore_errors=True)
        module.fail_json(msg="the agent of run %s did not start: %s" % (params["tag"], answer.get("error")), agent_log=tail, staged_path=staging)
    module.exit_json(changed=True, agent_port=answer["port"], pid=answer["pid"], address=answer["addresses"], staged_path=staging,
                     lease_expires=answer["lease_expires"], firewall_opened=answer.get("firewall", False))


def absent(module):
    params = module.params
    tag, staging = params["tag"], staging_of(params)
    removed = []
    # What exists now is what gets removed, by the agent itself or here after it.
    rules = close_rules(module, tag, check_mode=True)
    staged = os.path.lexists(staging)
    other = holder()
    of_this_run = other is not None and other.get("tag") == tag
    if of_this_run and params["agent_pid"] and int(other.get("pid") or 0) != params["agent_pid"]:
        leave_alone(module, removed, staging, "the agent of run %s is pid %s, not the pid %d this cleanup was to stop"
                    % (tag, other.get("pid"), params["agent_pid"]))
    if of_this_run:
        removed.append("agent pid %s" % other.get("pid"))
        if not module.check_mode:
            stop_agent(module, tag, other)
    now = holder()
    if now is not None and now.get("tag") == tag and (other is None or now.get("pid") != other.get("pid")):
        leave_alone(module, removed, staging, "a new agent of run %s (pid %s) started meanwhile" % (tag, now.get("pid")))
    busy = teardown.staging_in_use(staging) if staged else None
    if busy:
        leave_alone(module, removed, staging, busy)  # its launcher is writing the folder; it holds no lock yet
    if rules and not module.check_mode:
        close_rules(module, tag, check_mode=False)
    removed.extend("firewall rule: %s" % rule for rule in rules)
    if staged:
        removed.append(staging)
        if not module.check_mode and not teardown.remove_staging(staging):
            module.fail_json(msg="cannot remove the staging folder %s" % staging, removed=removed)
    module.exit_json(changed=bool(removed), removed=removed, staged_path=staging)


def leave_alone(module, removed, staging, why):
    """A newer start of the run owns the node (a resume while the worker of a killed run still
    cleans up): its agent, rules and folder are its own, not leftovers of the one stopped here."""
    module.exit_json(changed=bool(removed), removed=removed, staged_path=staging, left_alone=True,
                     msg="%s: a newer start of run %s owns the node; its agent, rules and folder were left alone" % (why, module.params["tag"]))


def stop_agent(module, tag, info):
    """Ask the agent to stop (it finishes its component and cleans up); force it after stop_timeout."""
    pid = int(info.get("pid") or 0)
    outcome = teardown.stop_agent(tag, pid, module.params["stop_timeout"])
    if outcome == teardown.STOPPED:
        return
    if outcome == teardown.ALIVE:
        module.fail_json(msg="the agent of run %s (pid %d) does not stop" % (tag, pid))
    module.warn("the agent of run %s did not stop within %d s and was killed; its leftovers were removed" % (tag, module.params["stop_timeout"]))
    teardown.forget_killed_agent(tag)


def close_rules(module, tag, check_mode):
    """Close (or list) the run's rules on the node: the agent's own, and any left by a killed agent."""
    try:
        return teardown.close_rules(tag, backend=module.params["firewall_backend"], check_mode=check_mode)
    except firewall_api.FirewallError as exc:
        if not module.params["open_firewall"] or "no firewall tool found" in str(exc):
            return []
        module.fail_json(msg="cannot close the firewall rules of run %s: %s" % (tag, exc))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        agent_cfg.validate_tag(module.params["tag"])
    except agent_cfg.AgentError as exc:
        module.fail_json(msg=str(exc))
    if module.params["state"] == "absent":
        absent(module)
    start(module)


if __name__ == "__main__":
    main()
