# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nftables backend's exact ``nft -f -`` scripts, through a fake runner (fake_firewall.py)."""
from __future__ import annotations

import json

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import build_spec
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.nftables import NftablesBackend

from fake_firewall import fake  # noqa: F401  pylint: disable=unused-import  # the fixture

V4, V6 = "198.18.2.1", "fd00:f1ee:7ab:2::1"
T = "fleet_firmware_run_1"
HEAD = [
    'add table inet %s { comment "fleet-firmware:run-1" ; }' % T,
    'add chain inet %s input { type filter hook input priority -10 ; policy accept ; comment "fleet-firmware:run-1" ; }' % T,
    'add chain inet %s output { type filter hook output priority -10 ; policy accept ; comment "fleet-firmware:run-1" ; }' % T,
]


def c(key: str, tag: str = "run-1") -> str:
    return '"fleet-firmware:%s:%s"' % (tag, key)


def table(family, name):
    return {"table": {"family": family, "name": name, "handle": 1}}


def chain(family, tbl, name, hook=None, policy="accept"):
    item = {"family": family, "table": tbl, "name": name, "handle": 2}
    if hook:
        item.update(type="filter", hook=hook, prio=0, policy=policy)
    return {"chain": item}


def rule(family, tbl, chn, handle, comment=None):
    item = {"family": family, "table": tbl, "chain": chn, "handle": handle, "expr": []}
    if comment:
        item["comment"] = comment
    return {"rule": item}


# The user's ruleset: an inet table with a drop input chain and a custom chain, an ip6-only
# table with an output hook, and an iptables-nft table (which native rules must not enter).
USER = [
    table("inet", "user_fw"), chain("inet", "user_fw", "input", "input", "drop"), chain("inet", "user_fw", "user_tail"),
    rule("inet", "user_fw", "input", 5), table("ip6", "user6"), chain("ip6", "user6", "out", "output", "drop"),
    table("ip", "filter"), chain("ip", "filter", "INPUT", "input"),
]


def ruleset(fake, items):
    fake.on("nft", "-j", "list", "ruleset", out=json.dumps({"nftables": [{"metainfo": {}}] + items}))


def script(fake) -> list[str]:
    batches = fake.batches("nft")
    assert len(batches) == 1, batches
    return batches[0].splitlines()


def test_single_port_any_source_on_an_empty_ruleset_is_our_table_only(fake):
    ruleset(fake, [])
    result = NftablesBackend().open(build_spec("run-1", ["62286"]))
    assert result.changed
    assert ["nft", "-f", "-"] in fake.commands("nft")
    assert script(fake) == HEAD + [
        "add rule inet %s input tcp dport 62286 accept comment %s" % (T, c("in-tcp-62286-any")),
        "add rule inet %s output tcp sport 62286 ct state established accept comment %s" % (T, c("ret-in-tcp-62286-any")),
    ]


def test_accepts_also_go_first_into_the_users_base_chains_of_the_right_family_and_hook(fake):
    ruleset(fake, USER)
    result = NftablesBackend().open(build_spec("run-1", ["5000-5010/udp"], sources=[V4]))
    v4 = "ip saddr 198.18.2.1/32 udp dport 5000-5010 accept comment %s" % c("in-udp-5000-5010-198.18.2.1/32")
    ret = "ip daddr 198.18.2.1/32 udp sport 5000-5010 ct state established accept comment %s" % c("ret-in-udp-5000-5010-198.18.2.1/32")
    assert script(fake) == HEAD + [
        "add rule inet %s input %s" % (T, v4),
        "add rule inet %s output %s" % (T, ret),
        "insert rule inet user_fw input %s" % v4,   # not into ip6 user6 (IPv4 rule), not into ip filter
    ]
    assert result.warnings == ["table ip filter belongs to iptables-nft; use backend=iptables for it"]


def test_ipv6_only_sources_use_ip6_addresses_and_reach_ip6_chains(fake):
    ruleset(fake, USER)
    NftablesBackend().open(build_spec("run-1", ["62286/tcp"], sources=[V6]))
    key = "in-tcp-62286-fd00:f1ee:7ab:2::1/128"
    inbound = "ip6 saddr fd00:f1ee:7ab:2::1/128 tcp dport 62286 accept comment %s" % c(key)
    reply = "ip6 daddr fd00:f1ee:7ab:2::1/128 tcp sport 62286 ct state established accept comment %s" % c("ret-" + key)
    assert script(fake) == HEAD + [
        "add rule inet %s input %s" % (T, inbound),
        "add rule inet %s output %s" % (T, reply),
        "insert rule inet user_fw input %s" % inbound,
        "insert rule ip6 user6 out %s" % reply,
    ]


def test_direction_out_opens_output_and_lets_the_replies_in(fake):
    ruleset(fake, [])
    NftablesBackend().open(build_spec("run-1", ["63002/tcp"], direction="out", sources=[V4]))
    assert script(fake) == HEAD + [
        "add rule inet %s output ip daddr 198.18.2.1/32 tcp dport 63002 accept comment %s" % (T, c("out-tcp-63002-198.18.2.1/32")),
        "add rule inet %s input ip saddr 198.18.2.1/32 tcp sport 63002 ct state established accept comment %s"
        % (T, c("ret-out-tcp-63002-198.18.2.1/32")),
    ]


def opened_run_1():
    """Our objects of run-1 (62286/tcp from V4) as ``nft -j list ruleset`` shows them."""
    return [
        table("inet", T), chain("inet", T, "input", "input"), chain("inet", T, "output", "output"),
        rule("inet", T, "input", 2, "fleet-firmware:run-1:in-tcp-62286-198.18.2.1/32"),
        rule("inet", T, "output", 3, "fleet-firmware:run-1:ret-in-tcp-62286-198.18.2.1/32"),
        rule("inet", "user_fw", "input", 7, "fleet-firmware:run-1:in-tcp-62286-198.18.2.1/32"),
    ]


def opened_run_2():
    t2 = "fleet_firmware_run_2"
    return [table("inet", t2), chain("inet", t2, "input", "input"),
            rule("inet", t2, "input", 2, "fleet-firmware:run-2:in-tcp-8443-any"),
            rule("inet", "user_fw", "input", 8, "fleet-firmware:run-2:in-tcp-8443-any")]


def test_opening_the_same_spec_again_runs_no_transaction(fake):
    ruleset(fake, USER + opened_run_1())
    result = NftablesBackend().open(build_spec("run-1", ["62286/tcp"], sources=[V4]))
    assert not result.changed and not fake.batches("nft")


def test_close_deletes_our_table_and_our_rules_in_the_users_chains_by_handle(fake):
    ruleset(fake, USER + opened_run_1() + opened_run_2())
    result = NftablesBackend().close("run-1")
    assert result.changed
    assert script(fake) == ["delete rule inet user_fw input handle 7", "delete table inet %s" % T]


def test_sweep_deletes_every_tag_of_ours_and_nothing_of_the_user(fake):
    lookalike = rule("inet", "user_fw", "input", 9, "user: fleet-firmware:run-1")
    ruleset(fake, USER + opened_run_1() + opened_run_2() + [lookalike, table("inet", "fleet_firmwarex")])
    NftablesBackend().close("*")
    assert script(fake) == [
        "delete rule inet user_fw input handle 7", "delete rule inet user_fw input handle 8",
        "delete table inet %s" % T, "delete table inet fleet_firmware_run_2",
    ]


def test_close_of_a_tag_with_nothing_left_changes_nothing(fake):
    ruleset(fake, USER + opened_run_2())
    result = NftablesBackend().close("run-1")
    assert not result.changed and not fake.batches("nft")


def test_check_mode_runs_no_transaction_and_says_what_it_would_add(fake):
    ruleset(fake, [])
    result = NftablesBackend().open(build_spec("run-1", ["62286/tcp"]), check_mode=True)
    assert result.changed and not fake.batches("nft")
    assert result.added == ["inet %s input: tcp dport 62286 accept comment %s" % (T, c("in-tcp-62286-any")),
                            "inet %s output: tcp sport 62286 ct state established accept comment %s" % (T, c("ret-in-tcp-62286-any"))]
