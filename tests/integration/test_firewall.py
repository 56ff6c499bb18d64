# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.firewall against real firewalls: iptables-legacy and nftables in lab nodes.

Every node gets a rich ruleset of its "user" first (DROP policies on both families, custom
chains, a REJECT catch-all, counters running). Traffic is real TCP from the controller (the
host's lab addresses) and from another lab node. firewalld and ufw run for real in a node too
(Debian packages; firewalld in the lab's firewalld node, fwd01: a D-Bus system bus of its own and
its user's zones, services and rich rules; ufw on a private copy of /etc/ufw), see the end of this
file; their command lines are also unit-tested.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

import conftest
import fleetlab
from checks import wait_for
from firewall_helpers import (
    PORT, fail_bin, host_rulesets, load_iptables_legacy, load_nft, module_args, ours, probe_from_controller, probe_from_node,
    reset_firewall, snapshot, ssh_sessions, start_listener, ufw_down, ufw_listing, ufw_up, wait_until, write,
)

pytestmark = pytest.mark.lab

NODE = "lin01"
OTHER = "lin02"
FWD = "fwd01"  # the lab's firewalld node
CTL4, CTL6 = str(fleetlab.CONTROLLER_IPV4), str(fleetlab.CONTROLLER_IPV6)
MODULE = "fleet.firmware.firewall"
# A lease that is the test's subject: still long enough that the check "open now" cannot race its
# end on a loaded 2-core machine (its logic is unit-tested with an injected clock: test_lease_clock.py).
SUBJECT_LEASE = 30


@pytest.fixture(scope="module")
def lab(lab_session):
    """The standard lab plus the firewalld node (the next module's standard lab removes it again)."""
    lab_session.up(fleetlab.plan_nodes(**conftest.STANDARD_LAB, firewalld=1))
    return conftest.LabHandle(lab_session)


def fw(lab, node=NODE, check=False, diff=False, **kwargs):
    # The callbacks drop "diff" from results below -vvv (ansible/plugins/callback/__init__.py).
    extra = (["--check"] if check else []) + (["--diff", "-vvv"] if diff else [])
    return lab.adhoc(node, MODULE, module_args(**kwargs), extra=extra)[node]


@pytest.fixture(params=["iptables", "nftables"])
def ruleset(request, lab):
    """The node with the user's ruleset of one kind, and a listener on the agent port."""
    reset_firewall(lab, NODE)
    (load_iptables_legacy if request.param == "iptables" else load_nft)(lab, NODE)
    listener = start_listener(lab, NODE)
    yield request.param
    listener.kill()
    listener.wait()
    fw(lab, state="closed", tag="*")
    reset_firewall(lab, NODE)


def test_open_lets_the_controller_in_on_both_families_and_close_restores_the_ruleset_exactly(lab, ruleset):
    node = lab.node(NODE)
    before = snapshot(lab, NODE)
    assert probe_from_controller(node.ipv4) != "open" and probe_from_controller(node.ipv6) != "open"

    opened = fw(lab, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-a")
    assert opened.status == "CHANGED", opened.data
    assert opened.data["backend"] == ruleset  # auto detection picked the firewall in use
    assert opened.data["rules"] and all("fleet-firmware:run-a:" in r for r in opened.data["rules"])
    assert probe_from_controller(node.ipv4) == "open"
    assert probe_from_controller(node.ipv6) == "open"
    # The source restriction is real: another lab node is still refused.
    assert probe_from_node(lab, OTHER, node.ipv4) != "open"
    assert probe_from_node(lab, OTHER, node.ipv6) != "open"

    again = fw(lab, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-a")
    assert again.status == "SUCCESS" and again.data["changed"] is False

    would = fw(lab, check=True, state="closed", tag="run-a")
    assert would.data["changed"] is True and would.data["rules"]
    assert probe_from_controller(node.ipv4) == "open"  # check mode closed nothing

    closed = fw(lab, state="closed", tag="run-a")
    assert closed.status == "CHANGED" and len(closed.data["rules"]) >= len(opened.data["rules"])
    assert probe_from_controller(node.ipv4) != "open" and probe_from_controller(node.ipv6) != "open"
    assert snapshot(lab, NODE) == before
    assert fw(lab, state="closed", tag="run-a").data["changed"] is False


def test_check_mode_and_diff_change_nothing_and_report_what_would_be_added(lab, ruleset):
    before = snapshot(lab, NODE)
    result = fw(lab, check=True, diff=True, ports=[f"{PORT}/tcp", "5000-5010/udp"], source=[CTL4], tag="run-c")
    assert result.data["changed"] is True
    assert any("5000" in r for r in result.data["rules"]) and any(str(PORT) in r for r in result.data["rules"])
    assert "fleet-firmware:run-c:" in result.data["diff"]["after"] and result.data["diff"]["before"] == ""
    assert snapshot(lab, NODE) == before


def test_two_tags_do_not_disturb_each_other_and_the_sweep_removes_both(lab, ruleset):
    node = lab.node(NODE)
    before = snapshot(lab, NODE)
    fw(lab, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-one")
    fw(lab, ports=["8443/tcp"], source=[CTL4], tag="run-two")
    closed = fw(lab, state="closed", tag="run-two")
    assert closed.data["changed"] and all("run-two" in r for r in closed.data["rules"])
    assert "run-one" in ours(lab, NODE) and "run-two" not in ours(lab, NODE)
    assert probe_from_controller(node.ipv4) == "open"
    fw(lab, ports=["8443/tcp"], source=[CTL4], tag="run-two")
    swept = fw(lab, state="closed", tag="*")
    assert swept.data["changed"] and {"run-one", "run-two"} <= {r.split("fleet-firmware:")[1].split(":")[0] for r in swept.data["rules"]}
    assert ours(lab, NODE) == ""
    assert snapshot(lab, NODE) == before


@pytest.mark.parametrize("args, bad", [
    (dict(ports=["70000/tcp"]), "70000"),
    (dict(ports=["2000-1000/tcp"]), "2000-1000"),
    (dict(ports=["22/icmp"]), "icmp"),
    (dict(ports=["62286/tcp"], source=["198.18.5.1/8"]), "198.18.5.1/8"),
    (dict(ports=["62286/tcp"], source=["not-an-ip"]), "not-an-ip"),
    (dict(ports=["62286/tcp"], tag="Bad_Tag"), "Bad_Tag"),
    (dict(ports=["62286/tcp"], tag="*"), "*"),
    (dict(ports=["62286/tcp"], backend="pf"), "pf"),
    (dict(ports=["62286/tcp"], backend="firewalld"), "firewalld"),
])
def test_bad_input_fails_naming_the_value_and_touches_nothing(lab, args, bad):
    before = snapshot(lab, NODE)
    args.setdefault("tag", "run-bad")
    result = fw(lab, **args)
    assert result.status == "FAILED", result.data
    assert bad in result.data["msg"]
    assert snapshot(lab, NODE) == before


# The real tools fail for real: a stand-in first in PATH hands the real tool our batch with its
# third rule broken (a chain that does not exist), so the commit really fails half-way.
BREAK_THIRD_IPTABLES = '/^-[AID] /{n++; if(n==3){print "-I FLEET-NO-SUCH-CHAIN 1 -j ACCEPT"; next}} {print}'
BREAK_THIRD_NFT = '/^add rule /{n++; if(n==3){sub(/ (input|output) /, " no_such_chain ")}} {print}'


@pytest.mark.parametrize("kind, tool, awk", [
    ("iptables", "iptables-legacy-restore", BREAK_THIRD_IPTABLES),   # inside one batch: nothing committed
    ("iptables", "ip6tables-legacy-restore", BREAK_THIRD_IPTABLES),  # IPv4 committed, IPv6 fails: IPv4 undone
    ("nftables", "nft", BREAK_THIRD_NFT),                            # one transaction
], ids=["iptables-ipv4-batch", "iptables-ipv6-after-ipv4", "nftables"])
def test_a_failing_third_rule_leaves_the_ruleset_as_it_was(lab, tmp_path, kind, tool, awk):
    reset_firewall(lab, NODE)
    (load_iptables_legacy if kind == "iptables" else load_nft)(lab, NODE)
    try:
        before = snapshot(lab, NODE)
        folder = fail_bin(lab, NODE, tool, f"/usr/sbin/{tool}", awk)
        play = write(tmp_path / "fail.yml", f"""
- hosts: {NODE}
  gather_facts: false
  tasks:
    - {MODULE}:
        ports: ["{PORT}/tcp", "8443/tcp"]
        source: ["{CTL4}", "{CTL6}"]
        tag: run-half
        backend: {kind}
      environment:
        PATH: {folder}:/usr/sbin:/usr/bin:/sbin:/bin
""")
        proc = lab.playbook(play)
        assert proc.returncode != 0, proc.stdout
        assert f"{folder}/{tool}" in proc.stdout, proc.stdout  # the message names the failing command
        assert snapshot(lab, NODE) == before
        assert ours(lab, NODE) == ""
    finally:
        lab.node_run(NODE, ["rm", "-rf", "/tmp/fw-failbin"])
        reset_firewall(lab, NODE)


def _lease_state(lab, tag, node=NODE):
    proc = lab.node_run(node, ["cat", f"/run/fleet-firmware/firewall/lease-{tag}.json"], check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _alive(lab, pid):
    return lab.node_run(NODE, ["kill", "-0", str(pid)], check=False).returncode == 0


def test_renewing_keeps_one_watchdog_and_a_normal_close_removes_it(lab):
    reset_firewall(lab, NODE)
    load_nft(lab, NODE)
    try:
        first = fw(lab, ports=[f"{PORT}/tcp"], source=[CTL4], tag="run-renew", lease=300)
        state = _lease_state(lab, "run-renew")
        assert state and _alive(lab, state["pid"])
        sid = lab.node_run(NODE, ["ps", "-o", "sid=", "-p", str(state["pid"])]).stdout.strip()
        assert sid == str(state["pid"]), "the watchdog leads its own session"
        renewed = fw(lab, ports=[f"{PORT}/tcp"], source=[CTL4], tag="run-renew", lease=600)  # 300 before: a later end
        assert renewed.data["changed"] is False
        assert renewed.data["lease_expires"] > first.data["lease_expires"]
        assert _lease_state(lab, "run-renew")["pid"] == state["pid"]
        fw(lab, state="closed", tag="run-renew")
        wait_for(lambda: not _alive(lab, state["pid"]), 60, "the watchdog to stop after the close")
        assert _lease_state(lab, "run-renew") is None
    finally:
        fw(lab, state="closed", tag="*")
        reset_firewall(lab, NODE)


@pytest.mark.parametrize("kind", ["iptables", "nftables", "firewalld"])
def test_the_lease_closes_the_rules_after_the_controller_was_killed_and_ssh_is_gone(lab, tmp_path, kind):
    node = FWD if kind == "firewalld" else NODE  # firewalld: the node with its user's zones as they are
    if kind != "firewalld":
        reset_firewall(lab, node)
        (load_iptables_legacy if kind == "iptables" else load_nft)(lab, node)
    listener = start_listener(lab, node)
    lease = SUBJECT_LEASE
    try:
        before = snapshot(lab, node)
        play = write(tmp_path / "lease.yml", f"""
- hosts: {node}
  gather_facts: false
  tasks:
    - {MODULE}:
        ports: ["{PORT}/tcp"]
        source: ["{CTL4}", "{CTL6}"]
        tag: run-lease
        lease: {lease}
    - ansible.builtin.pause:
        seconds: 300
""")
        env = conftest.ansible_env()
        env["ANSIBLE_SSH_ARGS"] = "-o ControlMaster=no"  # no lingering master: the session really ends
        argv = [conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(play)]
        sessions_before = ssh_sessions(lab, node)  # e.g. ControlPersist masters of earlier ad-hoc calls
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert wait_until(lambda: "run-lease" in ours(lab, node), 60), "the rules never appeared"
            assert probe_from_controller(lab.node(node).ipv4) == "open"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert wait_until(lambda: not ssh_sessions(lab, node) - sessions_before, 10), "the playbook's SSH session is still there"
        # Nothing but the lease can close them now; the deadline only keeps a failure from hanging.
        wait_for(lambda: ours(lab, node) == "", lease + 120, f"the lease to close the rules (still: {ours(lab, node)!r})")
        assert probe_from_controller(lab.node(node).ipv4) != "open"
        assert snapshot(lab, node) == before
        assert _lease_state(lab, "run-lease", node) is None
    finally:
        listener.kill()
        listener.wait()
        fw(lab, node=node, state="closed", tag="*")
        if kind != "firewalld":
            reset_firewall(lab, node)


def test_ipv6_only_node_gets_only_ipv6_rules_for_a_dual_source(lab):
    node = lab.node("v6n01")
    listener = start_listener(lab, "v6n01")
    try:
        opened = fw(lab, node="v6n01", ports=[f"{PORT}/tcp"], source=[CTL6], tag="run-v6", backend="nftables")
        assert opened.status == "CHANGED", opened.data
        assert all("ip6 " in r for r in opened.data["rules"])
        assert probe_from_controller(node.ipv6) == "open"
    finally:
        fw(lab, node="v6n01", state="closed", tag="run-v6")
        listener.kill()
        listener.wait()
        lab.node_run("v6n01", ["nft", "flush", "ruleset"], check=False)


CTL_NS = fleetlab.PREFIX + "fwctl"


@pytest.fixture
def controller_namespace():
    """A network namespace of this test (never the host's own firewall) standing in for the
    controller; /run inside it is a private tmpfs so the lease record stays in there too."""
    subprocess.run(["ip", "netns", "del", CTL_NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", CTL_NS], check=True)
    inode = fleetlab.netns_inode(CTL_NS)
    yield CTL_NS
    # Anything this test started in there (a watchdog, if a step failed) goes with it.
    fleetlab.kill_all(fleetlab.pids_in_netns([inode] if inode else []))
    subprocess.run(["ip", "netns", "del", CTL_NS], check=True)


# The controller's own firewall, reached the way open_firewall will: the module delegated to
# localhost from a play over the nodes (the first of them a WinRM host: the delegated task still
# runs firewall.py locally), and ad hoc on localhost. nftables with a user table of its own, and
# iptables (iptables-nft here) on an empty ruleset, whose filter tables must go again.
CTL_USER_NFT = """table inet ctluser {
    chain input { type filter hook input priority filter; policy drop; tcp dport 22 accept; counter reject; }
}
"""


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_localhost_delegation_opens_the_engine_port_in_the_controller_namespace_only(controller_namespace, tmp_path, backend):
    bindir = os.path.dirname(conftest.ansible_bin("ansible"))
    user = CTL_USER_NFT if backend == "nftables" else ""
    inventory = write(tmp_path / "inventory.ini", "[nodes]\nwin9 ansible_host=198.18.250.9 ansible_connection=winrm\n"
                      "lin9 ansible_host=198.18.250.10\n")
    play = write(tmp_path / "open_firewall.yml", f"""
- hosts: nodes
  gather_facts: false
  tasks:
    - name: Open the engine port on the controller for the nodes
      {MODULE}:
        ports: [63002/tcp]
        source: "{{{{ groups['nodes'] | map('extract', hostvars, 'ansible_host') | list }}}}"
        tag: run-ctl
        lease: 600
        backend: {backend}
      delegate_to: localhost
      run_once: true
      register: opened
    - name: Record what the open did and the ruleset it left
      ansible.builtin.shell: |
        echo '{{{{ opened | to_json }}}}' > {tmp_path}/pb-open.json
        nft list ruleset > {tmp_path}/pb-opened
        ls /run/fleet-firmware/firewall > {tmp_path}/pb-leases
      delegate_to: localhost
      run_once: true
    - name: Close it
      {MODULE}:
        state: closed
        tag: run-ctl
      delegate_to: localhost
      run_once: true
""")
    adhoc = f"ports=63002/tcp source=198.18.5.10,fd00:f1ee:7ab:5::a tag=run-ctl lease=600 backend={backend}"
    script = write(tmp_path / "ctl.sh", f"""set -e
mount -t tmpfs fleet-fw-run /run
echo '{user}' | nft -f -
nft list ruleset > {tmp_path}/before
{bindir}/ansible-playbook -i {inventory} {play} > {tmp_path}/playbook.out
nft list ruleset > {tmp_path}/after-playbook
{bindir}/ansible localhost -o -m {MODULE} -a '{adhoc}' > {tmp_path}/open.out
nft list ruleset > {tmp_path}/opened
{bindir}/ansible localhost -o -m {MODULE} -a 'state=closed tag=run-ctl' > {tmp_path}/close.out
nft list ruleset > {tmp_path}/after
test ! -e /run/fleet-firmware
""")
    proc = subprocess.run(["ip", "netns", "exec", controller_namespace, "unshare", "--mount", "--propagation", "private", "sh", str(script)],
                          capture_output=True, text=True, env=conftest.ansible_env(), timeout=180, check=False)
    outputs = "".join((tmp_path / name).read_text() for name in ("playbook.out", "open.out", "close.out") if (tmp_path / name).exists())
    assert proc.returncode == 0, proc.stdout + proc.stderr + outputs
    before = (tmp_path / "before").read_text()
    from_play = json.loads((tmp_path / "pb-open.json").read_text())
    assert from_play["changed"] and from_play["backend"] == backend and from_play["lease_expires"]
    assert any("198.18.250.9" in r for r in from_play["rules"]) and any("198.18.250.10" in r for r in from_play["rules"])
    assert "63002" in (tmp_path / "pb-opened").read_text() and "lease-run-ctl.json" in (tmp_path / "pb-leases").read_text()
    assert (tmp_path / "after-playbook").read_text() == before
    opened = json.loads((tmp_path / "open.out").read_text().split(" => ", 1)[1])
    assert opened["changed"] and opened["backend"] == backend and opened["lease_expires"]
    assert "63002" in (tmp_path / "opened").read_text()
    assert (tmp_path / "after").read_text() == before  # iptables-nft: the filter tables it made are gone again
    # The host's own firewall never saw this tag (other runs on a shared machine may change it
    # meanwhile: only our tag's absence is ours to assert).
    assert not any("run-ctl" in text or "run_ctl" in text for text in host_rulesets().values())
    assert not os.path.exists("/run/fleet-firmware/firewall/lease-run-ctl.json")


# ---- iptables-nft on an empty ruleset: the tables an opening makes go again --------------------

EMPTY_NODE = "v6n01"  # only ever reset with nft: no legacy table exists there, so iptables means iptables-nft


@pytest.mark.parametrize("user_table", [None, "ip6"])
def test_iptables_nft_on_an_empty_ruleset_leaves_no_table_behind(lab, user_table):
    lab.node_run(EMPTY_NODE, ["nft", "flush", "ruleset"])
    legacy = lab.node_run(EMPTY_NODE, ["cat", "/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"]).stdout.strip()
    assert not legacy, f"legacy tables exist in {EMPTY_NODE} ({legacy}): the test needs a namespace where iptables means iptables-nft"
    if user_table:  # an empty filter table of the user's: it existed before, so it stays
        lab.node_run(EMPTY_NODE, ["nft", "add table ip6 filter; add chain ip6 filter INPUT { type filter hook input priority 0; policy accept; }"])
    listener = start_listener(lab, EMPTY_NODE)
    try:
        before = lab.node_run(EMPTY_NODE, ["nft", "list", "ruleset"]).stdout
        opened = fw(lab, node=EMPTY_NODE, ports=[f"{PORT}/tcp", "5000-5001/udp"], source=[CTL6], tag="run-empty", backend="iptables")
        assert opened.status == "CHANGED", opened.data
        assert opened.data["tool"] == "iptables"
        assert "table ip6 filter" in lab.node_run(EMPTY_NODE, ["nft", "list", "ruleset"]).stdout
        assert probe_from_controller(lab.node(EMPTY_NODE).ipv6) == "open"
        closed = fw(lab, node=EMPTY_NODE, state="closed", tag="run-empty")
        assert closed.status == "CHANGED", closed.data
        assert lab.node_run(EMPTY_NODE, ["nft", "list", "ruleset"]).stdout == before
        assert lab.node_run(EMPTY_NODE, ["ls", "/run/fleet-firmware"], check=False).returncode != 0
        # With nft directly (the nftables backend) the same open and close leave the same nothing.
        fw(lab, node=EMPTY_NODE, ports=[f"{PORT}/tcp"], source=[CTL6], tag="run-empty", backend="nftables")
        fw(lab, node=EMPTY_NODE, state="closed", tag="run-empty")
        assert lab.node_run(EMPTY_NODE, ["nft", "list", "ruleset"]).stdout == before
    finally:
        listener.kill()
        listener.wait()
        lab.node_run(EMPTY_NODE, ["nft", "flush", "ruleset"])


# ---- ufw and firewalld, for real in a node --------------------------------------------------------

DAEMON_NODE = "lin02"  # its firewall is driven through iptables-nft / nftables only
PROBE_NODE = "lin01"


@pytest.fixture
def ufw(lab):
    lab.node_run(DAEMON_NODE, ["nft", "flush", "ruleset"])
    ufw_up(lab, DAEMON_NODE)
    listener = start_listener(lab, DAEMON_NODE)
    yield
    listener.kill()
    listener.wait()
    ufw_down(lab, DAEMON_NODE)


def test_ufw_opens_for_the_controller_only_and_close_and_sweep_restore_its_rules(lab, ufw):
    node = lab.node(DAEMON_NODE)
    before = ufw_listing(lab, DAEMON_NODE)
    assert probe_from_controller(node.ipv4) != "open" and probe_from_controller(node.ipv6) != "open"
    # A rule of the user's identical to one we would add: ufw keeps one, and it stays the user's.
    lab.node_run(DAEMON_NODE, ["ufw", "allow", "proto", "tcp", "from", CTL4, "to", "any", "port", "8443"])
    user_before = ufw_listing(lab, DAEMON_NODE)

    opened = fw(lab, node=DAEMON_NODE, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-u")
    assert opened.status == "CHANGED" and opened.data["backend"] == "ufw", opened.data
    assert probe_from_controller(node.ipv4) == "open" and probe_from_controller(node.ipv6) == "open"
    assert probe_from_node(lab, PROBE_NODE, node.ipv4) != "open" and probe_from_node(lab, PROBE_NODE, node.ipv6) != "open"
    assert fw(lab, node=DAEMON_NODE, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-u").data["changed"] is False

    other = fw(lab, node=DAEMON_NODE, ports=["8443/tcp"], source=[CTL4], tag="run-u2")
    assert other.data["changed"] is False and other.data["rules"] == []  # (the warning goes to Ansible's stderr)
    closed = fw(lab, node=DAEMON_NODE, state="closed", tag="run-u")
    assert closed.data["changed"] and all("run-u:" in r for r in closed.data["rules"])
    assert probe_from_controller(node.ipv4) != "open" and probe_from_controller(node.ipv6) != "open"
    assert ufw_listing(lab, DAEMON_NODE) == user_before

    fw(lab, node=DAEMON_NODE, ports=[f"{PORT}/tcp"], tag="run-u")
    fw(lab, node=DAEMON_NODE, ports=["5000-5001/udp"], direction="out", source=[CTL6], tag="run-u2")
    swept = fw(lab, node=DAEMON_NODE, state="closed", tag="*")
    assert {"run-u", "run-u2"} <= {r.split("fleet-firmware:")[1].split(":")[0] for r in swept.data["rules"]}
    assert ufw_listing(lab, DAEMON_NODE) == user_before
    lab.node_run(DAEMON_NODE, ["ufw", "delete", "allow", "proto", "tcp", "from", CTL4, "to", "any", "port", "8443"])
    assert ufw_listing(lab, DAEMON_NODE) == before


# ---- firewalld, in the lab's firewalld node ------------------------------------------------------
# fwd01 runs firewalld on a D-Bus system bus of its own (tests/lab/fleetlab.py), with its user's
# permanent configuration: eth0 in the default zone (services ssh and https, a rich rule of the
# user's) and a management zone bound to a source. snapshot() compares every zone, runtime and
# permanent, and the node's nftables ruleset (counters stripped).


@pytest.fixture
def firewalld_node(lab):
    """The firewalld node as its user configured it, a listener on the agent port; anything of
    ours left by a failed test is swept afterwards."""
    listener = start_listener(lab, FWD)
    yield lab.node(FWD)
    listener.kill()
    listener.wait()
    fw(lab, node=FWD, state="closed", tag="*")


def test_firewalld_opens_for_the_controller_only_in_runtime_and_close_restores_every_zone(lab, firewalld_node):
    node = firewalld_node
    before = snapshot(lab, FWD)
    assert "198.18.251.7/32" in before["firewalld-runtime"] and "9100" in before["firewalld-runtime"]  # the user's zones are live
    assert probe_from_controller(node.ipv4) != "open" and probe_from_controller(node.ipv6) != "open"

    opened = fw(lab, node=FWD, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-f")
    assert opened.status == "CHANGED" and opened.data["backend"] == "firewalld", opened.data  # auto detection
    assert len(opened.data["rules"]) == 2 and all(f'port="{PORT}"' in r for r in opened.data["rules"]), opened.data  # one per family
    assert probe_from_controller(node.ipv4) == "open" and probe_from_controller(node.ipv6) == "open"
    assert probe_from_node(lab, NODE, node.ipv4) != "open" and probe_from_node(lab, NODE, node.ipv6) != "open"
    assert snapshot(lab, FWD)["firewalld-permanent"] == before["firewalld-permanent"]  # runtime only
    assert {line.split(":")[1] for line in ours(lab, FWD).splitlines()} == {"run-f"}

    again = fw(lab, node=FWD, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-f")
    assert again.status == "SUCCESS" and again.data["changed"] is False
    would = fw(lab, node=FWD, check=True, state="closed", tag="run-f")
    assert would.data["changed"] is True and would.data["rules"]
    assert probe_from_controller(node.ipv4) == "open"  # check mode closed nothing

    closed = fw(lab, node=FWD, state="closed", tag="run-f")
    assert closed.status == "CHANGED" and sorted(closed.data["rules"]) == sorted(opened.data["rules"])
    assert probe_from_controller(node.ipv4) != "open" and probe_from_controller(node.ipv6) != "open"
    assert snapshot(lab, FWD) == before
    assert fw(lab, node=FWD, state="closed", tag="run-f").data["changed"] is False


def test_firewalld_two_tags_do_not_disturb_each_other_and_the_sweep_removes_both(lab, firewalld_node):
    node = firewalld_node
    before = snapshot(lab, FWD)
    fw(lab, node=FWD, ports=[f"{PORT}/tcp"], source=[CTL4, CTL6], tag="run-one")
    fw(lab, node=FWD, ports=["8443/tcp", "5000-5010/udp"], source=[CTL4], tag="run-two")
    closed = fw(lab, node=FWD, state="closed", tag="run-two")
    assert closed.data["changed"] and all("8443" in r or "5000-5010" in r for r in closed.data["rules"]), closed.data
    assert "run-one" in ours(lab, FWD) and "run-two" not in ours(lab, FWD)
    assert probe_from_controller(node.ipv4) == "open"
    fw(lab, node=FWD, ports=["8443/tcp"], source=[CTL4], tag="run-two")
    swept = fw(lab, node=FWD, state="closed", tag="*")
    assert swept.data["changed"] and any("8443" in r for r in swept.data["rules"]) and any(str(PORT) in r for r in swept.data["rules"])
    assert ours(lab, FWD) == ""
    assert snapshot(lab, FWD) == before


def test_firewalld_leaves_the_users_identical_rich_rule_alone_and_the_lease_closes_ours(lab, firewalld_node):
    node = firewalld_node
    # The user's own rule, identical to one we would add: it stays the user's, never recorded.
    user_rule = f'rule priority="-32000" family="ipv4" source address="{CTL4}" port port="8443" protocol="tcp" accept'
    lab.node_run(FWD, ["firewall-cmd", "--add-rich-rule=" + user_rule])
    try:
        before = snapshot(lab, FWD)
        opened = fw(lab, node=FWD, ports=[f"{PORT}/tcp", "8443/tcp"], source=[CTL4], tag="run-u")
        assert opened.status == "CHANGED" and user_rule not in opened.data["rules"], opened.data
        fw(lab, node=FWD, state="closed", tag="*")
        assert user_rule in lab.node_run(FWD, ["firewall-cmd", "--list-rich-rules"]).stdout
        assert snapshot(lab, FWD) == before

        lease = SUBJECT_LEASE
        fw(lab, node=FWD, ports=[f"{PORT}/tcp"], source=[CTL4], tag="run-fl", lease=lease)
        assert probe_from_controller(node.ipv4) == "open"
        wait_for(lambda: probe_from_controller(node.ipv4) != "open", lease + 120, "firewalld to end the opening with its lease")
        wait_for(lambda: lab.node_run(FWD, ["ls", "/run/fleet-firmware"], check=False).returncode != 0, 60,
                 "the lease's state folder to go")
        assert snapshot(lab, FWD) == before
    finally:
        lab.node_run(FWD, ["firewall-cmd", "--remove-rich-rule=" + user_rule], check=False)
