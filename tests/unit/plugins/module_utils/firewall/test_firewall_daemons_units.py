# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""firewalld and ufw command lines, and auto detection, through a fake runner (fake_firewall.py).

A small emulation of each tool's rule list answers the backends, so rollback and "never the
user's rule" are checked as behaviour. Both daemons also run for real in a lab node:
tests/integration/test_firewall.py.
"""
from __future__ import annotations

import json

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api, firewalld, state, ufw
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import FirewallError, build_spec
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.firewalld import FirewalldBackend
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.ufw import UfwBackend

from fake_firewall import fake  # noqa: F401  pylint: disable=unused-import  # the fixture

V4, V6 = "198.18.2.1", "fd00:f1ee:7ab:2::1"


class RichRules:
    """firewall-cmd over a set of runtime rich rules; the ``fail_on``-th add fails."""

    def __init__(self, fake, fail_on: int = 0) -> None:
        self.rules: list[str] = []
        self.adds = 0
        self.fail_on = fail_on
        fake.on("firewall-cmd", handler=self.answer)

    def answer(self, argv, stdin):
        option, _sep, value = argv[1].partition("=")
        if option == "--state":
            return 0, "running\n", ""
        if option == "--query-rich-rule":
            return (0, "yes\n", "") if value in self.rules else (1, "no\n", "")
        if option == "--add-rich-rule":
            self.adds += 1
            if self.adds == self.fail_on:
                return 13, "", "Error: INVALID_RULE: bad"
            if value not in self.rules:
                self.rules.append(value)
            return 0, "success\n", ""
        if option == "--remove-rich-rule":
            if value in self.rules:
                self.rules.remove(value)
            return 0, "success\n", ""
        raise AssertionError("unexpected firewall-cmd call %r" % argv)


def rich(peer: str | None, port: str, proto: str = "tcp") -> str:
    family = ' family="ipv%d" source address="%s"' % (6 if ":" in peer else 4, peer) if peer else ""
    return 'rule priority="-32000"%s port port="%s" protocol="%s" accept' % (family, port, proto)


def adds(fake) -> list[list[str]]:
    return [argv[1:] for argv in fake.commands("firewall-cmd") if argv[1].startswith(("--add", "--remove"))]


def test_firewalld_single_port_any_source_is_one_runtime_rich_rule(fake):
    daemon = RichRules(fake)
    result = FirewalldBackend().open(build_spec("run-1", ["62286"]))
    assert adds(fake) == [["--add-rich-rule=" + rich(None, "62286")]]
    assert daemon.rules == [rich(None, "62286")] and result.added == daemon.rules
    assert not any("--permanent" in argv for argv in fake.commands("firewall-cmd"))
    assert state.read("firewalld-run-1") == {"rules": daemon.rules}


def test_firewalld_sources_ranges_udp_and_the_lease_timeout(fake):
    RichRules(fake)
    FirewalldBackend().open(build_spec("run-1", ["5000-5010/udp"], sources=[V4, V6], lease=600))
    assert adds(fake) == [
        ["--add-rich-rule=" + rich("198.18.2.1/32", "5000-5010", "udp"), "--timeout=600s"],
        ["--add-rich-rule=" + rich("fd00:f1ee:7ab:2::1/128", "5000-5010", "udp"), "--timeout=600s"],
    ]


@pytest.mark.parametrize("sources, family", [([V4], "ipv4"), ([V6], "ipv6")])
def test_firewalld_one_family_of_sources_gives_rules_of_that_family_only(fake, sources, family):
    daemon = RichRules(fake)
    FirewalldBackend().open(build_spec("run-1", ["62286/tcp"], sources=sources))
    assert len(daemon.rules) == 1 and ('family="%s"' % family) in daemon.rules[0]


def test_firewalld_direction_out_needs_no_rule_and_says_so(fake):
    daemon = RichRules(fake)
    result = FirewalldBackend().open(build_spec("run-1", ["63002/tcp"], direction="out", sources=[V4]))
    assert daemon.rules == [] and not result.changed
    assert "does not filter outbound" in result.warnings[0]


def test_firewalld_renewing_a_lease_re_adds_with_a_fresh_timeout(fake):
    daemon = RichRules(fake)
    spec = build_spec("run-1", ["62286/tcp"], lease=60)
    FirewalldBackend().open(spec)
    fake.calls.clear()
    result = FirewalldBackend().open(spec)
    assert not result.changed
    assert adds(fake) == [["--remove-rich-rule=" + rich(None, "62286")], ["--add-rich-rule=" + rich(None, "62286"), "--timeout=60s"]]
    assert daemon.rules == [rich(None, "62286")]


def test_firewalld_a_users_identical_rule_is_never_recorded_nor_removed(fake):
    daemon = RichRules(fake)
    daemon.rules.append(rich("198.18.2.1/32", "62286"))  # the user's, before our opening
    result = FirewalldBackend().open(build_spec("run-1", ["62286/tcp"], sources=[V4, V6]))
    assert result.added == [rich("fd00:f1ee:7ab:2::1/128", "62286")] and "not ours" in result.warnings[0]
    FirewalldBackend().close("run-1")
    assert daemon.rules == [rich("198.18.2.1/32", "62286")]


def test_firewalld_close_and_sweep_remove_only_recorded_rules(fake):
    daemon = RichRules(fake)
    daemon.rules.append(rich(None, "22"))
    FirewalldBackend().open(build_spec("run-1", ["62286/tcp"]))
    FirewalldBackend().open(build_spec("run-2", ["8443/tcp"]))
    FirewalldBackend().close("run-1")
    assert daemon.rules == [rich(None, "22"), rich(None, "8443")] and state.read("firewalld-run-1") is None
    FirewalldBackend().open(build_spec("run-1", ["62286/tcp"]))
    result = FirewalldBackend().close("*")
    assert daemon.rules == [rich(None, "22")] and len(result.removed) == 2
    assert state.tags("firewalld-") == []


def test_firewalld_third_of_four_rules_failing_removes_the_first_two(fake):
    daemon = RichRules(fake, fail_on=3)
    daemon.rules.append(rich(None, "22"))
    with pytest.raises(FirewallError, match="INVALID_RULE"):
        FirewalldBackend().open(build_spec("run-1", ["1001/tcp", "1002/tcp", "1003/tcp", "1004/tcp"]))
    assert daemon.rules == [rich(None, "22")]
    assert state.read("firewalld-run-1") is None


# ---- ufw ----------------------------------------------------------------------------------------

def rule_text(line: str) -> str:
    """A ``ufw show added`` line without its comment."""
    return line.split(" comment ", maxsplit=1)[0]


class UfwRules:
    """ufw over its list of added rules, printed as ``ufw show added`` does."""

    def __init__(self, fake, fail_on: int = 0) -> None:
        self.added: list[str] = ["ufw allow 22/tcp"]
        self.prepends = 0
        self.fail_on = fail_on
        fake.on("ufw", handler=self.answer)

    @staticmethod
    def shown(words: list[str]) -> str:
        """``allow in proto tcp from P to any port N comment C`` -> ufw's own printing."""
        action, hook, proto, src, dst, port, comment = words[0], words[1], words[3], words[5], words[7], words[9], words[11]
        ends = ("from %s to any" % src if src != "any" else "to any") if hook == "in" else "out to %s" % dst
        return "ufw %s %s port %s proto %s comment '%s'" % (action, ends, port, proto, comment)

    def answer(self, argv, stdin):
        if argv[1:] == ["show", "added"]:
            return 0, "Added user rules (see 'ufw status' for running firewall):\n" + "\n".join(self.added) + "\n", ""
        if argv[1] == "prepend":
            self.prepends += 1
            if self.prepends == self.fail_on:
                return 1, "", "ERROR: Could not update running firewall"
            line = self.shown(argv[2:])
            if rule_text(line) in [rule_text(a) for a in self.added]:
                return 0, "Skipping inserting existing rule\n", ""
            self.added.insert(0, line)
            return 0, "Rule inserted\n", ""
        if argv[1:3] == ["--force", "delete"]:
            text = "ufw " + " ".join(argv[3:])
            self.added = [a for a in self.added if rule_text(a) != text]
            return 0, "Rule deleted\n", ""
        raise AssertionError("unexpected ufw call %r" % argv)


def test_ufw_prepends_commented_rules_without_reply_rules(fake):
    ufw = UfwRules(fake)
    UfwBackend().open(build_spec("run-1", ["62286", "5000-5010/udp"], sources=[V4]))
    assert [argv[1:] for argv in fake.commands("ufw") if argv[1] == "prepend"] == [
        "prepend allow in proto tcp from 198.18.2.1/32 to any port 62286 comment fleet-firmware:run-1:in-tcp-62286-198.18.2.1/32".split(),
        "prepend allow in proto udp from 198.18.2.1/32 to any port 5000:5010 comment fleet-firmware:run-1:in-udp-5000-5010-198.18.2.1/32".split(),
    ]
    assert len(ufw.added) == 3


@pytest.mark.parametrize("sources, peer", [([], "any"), ([V6], "fd00:f1ee:7ab:2::1/128")])
def test_ufw_any_source_and_ipv6_sources(fake, sources, peer):
    UfwRules(fake)
    UfwBackend().open(build_spec("run-1", ["62286/tcp"], sources=sources))
    prepends = [argv[1:] for argv in fake.commands("ufw") if argv[1] == "prepend"]
    assert prepends == [["prepend", "allow", "in", "proto", "tcp", "from", peer, "to", "any", "port", "62286",
                         "comment", "fleet-firmware:run-1:in-tcp-62286-%s" % peer]]


def test_ufw_direction_out(fake):
    UfwRules(fake)
    UfwBackend().open(build_spec("run-1", ["63002/tcp"], direction="out", sources=[V4]))
    assert [argv[2:] for argv in fake.commands("ufw") if argv[1] == "prepend"] == [
        "allow out proto tcp from any to 198.18.2.1/32 port 63002 comment fleet-firmware:run-1:out-tcp-63002-198.18.2.1/32".split()]


def test_ufw_open_again_is_idempotent_close_and_sweep_delete_only_ours(fake):
    ufw = UfwRules(fake)
    spec = build_spec("run-1", ["62286/tcp"], sources=[V4])
    UfwBackend().open(spec)
    assert not UfwBackend().open(spec).changed
    UfwBackend().open(build_spec("run-2", ["8443/tcp"]))
    UfwBackend().close("run-1")
    assert ["ufw", "--force", "delete", "allow", "from", "198.18.2.1/32", "to", "any", "port", "62286", "proto", "tcp"] in fake.commands("ufw")
    assert len(ufw.added) == 2 and "run-2" in ufw.added[0]
    UfwBackend().close("*")
    assert ufw.added == ["ufw allow 22/tcp"]


def test_ufw_a_users_identical_rule_is_left_alone(fake):
    ufw = UfwRules(fake)
    ufw.added.append("ufw allow from 198.18.2.1/32 to any port 62286 proto tcp")
    result = UfwBackend().open(build_spec("run-1", ["62286/tcp"], sources=[V4]))
    assert not result.changed and result.added == [] and "not ours" in result.warnings[0]
    UfwBackend().close("*")
    assert "ufw allow from 198.18.2.1/32 to any port 62286 proto tcp" in ufw.added


def test_ufw_third_of_four_rules_failing_removes_the_first_two(fake):
    ufw = UfwRules(fake, fail_on=3)
    with pytest.raises(FirewallError, match="Could not update"):
        UfwBackend().open(build_spec("run-1", ["1001/tcp", "1002/tcp", "1003/tcp", "1004/tcp"]))
    assert ufw.added == ["ufw allow 22/tcp"]


# ---- auto detection -----------------------------------------------------------------------------

def nft_json(*tables: tuple[str, str, str]) -> str:
    items = []
    for family, name, chain in tables:
        items += [{"table": {"family": family, "name": name}}, {"chain": {"family": family, "table": name, "name": chain}}]
    return json.dumps({"nftables": items})


@pytest.mark.parametrize("firewalld, ufw, ruleset, expected", [
    (0, "Status: active\n", nft_json(("inet", "user_fw", "input")), "firewalld"),
    (252, "Status: active\n", nft_json(("inet", "user_fw", "input")), "ufw"),
    (252, "Status: inactive\n", nft_json(("inet", "user_fw", "input")), "nftables"),
    (252, "Status: inactive\n", nft_json(("inet", "user_fw", "input"), ("ip", "filter", "INPUT")), "iptables"),
    (252, "Status: inactive\n", nft_json(("inet", "fleet_firmware_run_1", "input")), "iptables"),
    (252, "Status: inactive\n", nft_json(), "iptables"),
])
def test_auto_detection_order(fake, firewalld, ufw, ruleset, expected):
    fake.on("firewall-cmd", "--state", rc=firewalld)
    fake.on("ufw", "status", out=ufw)
    fake.on("nft", "-j", "list", "ruleset", out=ruleset)
    assert api.detect_backend().name == expected


def test_auto_detection_without_any_tool_names_them(fake):
    fake.tools.clear()
    with pytest.raises(FirewallError, match="none of firewall-cmd, ufw, nft, iptables"):
        api.detect_backend()


@pytest.mark.parametrize("backend, setup, message, asked", [
    ("firewalld", ("firewall-cmd", "--state"), "'firewalld' is installed but not running", [["firewall-cmd", "--state"]]),
    # ufw's chain is there (the fake's iptables answers 0), so ufw itself is asked.
    ("ufw", ("ufw", "status"), "'ufw' is installed but not active", [["iptables", "-n"], ["ufw", "status"]]),
])
def test_an_installed_daemon_that_does_not_run_is_refused_before_any_change(fake, backend, setup, message, asked):
    fake.on(*setup, rc=252 if backend == "firewalld" else 0, out="Status: inactive\n")
    with pytest.raises(FirewallError, match=message):
        api.open_ports(build_spec("run-1", ["62286/tcp"]), backend=backend)
    assert [argv[:2] for argv in fake.commands()] == asked


def test_without_a_system_bus_firewall_cmd_is_not_started(fake, monkeypatch):
    monkeypatch.setattr(firewalld, "system_bus_present", lambda: False)
    fake.on("firewall-cmd", "--state", rc=0)
    assert firewalld.FirewalldBackend().running() is False
    assert fake.commands("firewall-cmd") == []


def test_without_ufws_chain_ufw_status_is_not_started(fake):
    fake.on("iptables", "-n", "-L", "ufw-user-input", rc=1)
    fake.on("ufw", "status", out="Status: active\n")
    assert ufw.UfwBackend().active() is False
    assert fake.commands("ufw") == [] and fake.commands("iptables") == [["iptables", "-n", "-L", "ufw-user-input"]]


def test_system_bus_present_follows_the_socket_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setattr(firewalld, "SYSTEM_BUS_SOCKETS", (str(tmp_path / "system_bus_socket"),))
    assert firewalld.system_bus_present() is False
    (tmp_path / "system_bus_socket").touch()
    assert firewalld.system_bus_present() is True
    (tmp_path / "system_bus_socket").unlink()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/elsewhere")
    assert firewalld.system_bus_present() is True


@pytest.mark.parametrize("backend, tool", [("nftables", "nft"), ("firewalld", "firewall-cmd"), ("ufw", "ufw"), ("iptables", "iptables-restore")])
def test_a_missing_tool_is_named_and_nothing_runs(fake, backend, tool):
    fake.tools.discard(tool)
    with pytest.raises(FirewallError, match="backend %r needs the command" % backend):
        api.open_ports(build_spec("run-1", ["62286/tcp"]), backend=backend)
    assert fake.commands() == [] or all(argv[0] == "iptables" for argv in fake.commands())
