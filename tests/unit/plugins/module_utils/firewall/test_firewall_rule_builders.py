# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure rule builders of the firewall backends, case by case: what the backend tests reach
only through whole scripts. Written for the mutants that survived those (make mutation)."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import common, nftables
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import Port, Rule


def rule(family: int, peer=None) -> Rule:
    return Rule("in-tcp-62286-any", "in", family, "tcp", Port("tcp", 62286, 62286), peer, False)


@pytest.mark.parametrize("family, table, fits", [
    (0, "ip", True), (0, "ip6", True), (0, "inet", True),  # a rule without an address fits every table
    (4, "ip", True), (4, "ip6", False), (4, "inet", True),
    (6, "ip", False), (6, "ip6", True), (6, "inet", True),
])
def test_which_rule_goes_into_which_nftables_family(family, table, fits):
    assert nftables.rule_fits(rule(family, None if family == 0 else "x"), table) is fits


# ---------------------------------------------------------------- common: validation, exact messages

TAG_RULE = "it must be 1 to 32 characters of a-z, 0-9 and '-'"


@pytest.mark.parametrize("tag, allow_sweep, expected", [
    ("run-1", False, "run-1"), ("a", False, "a"), ("a" * 32, False, "a" * 32), ("*", True, "*"), ("run-1", True, "run-1"),
])
def test_good_tags_come_back_as_given(tag, allow_sweep, expected):
    assert common.validate_tag(tag, allow_sweep) == expected


@pytest.mark.parametrize("tag, allow_sweep, message", [
    ("*", False, "tag '*' is invalid: %s" % TAG_RULE),
    ("Run_1", False, "tag 'Run_1' is invalid: %s" % TAG_RULE),
    ("a" * 33, False, "tag '%s' is invalid: %s" % ("a" * 33, TAG_RULE)),
    ("", False, "tag '' is invalid: %s" % TAG_RULE),
    (7, False, "tag 7 is invalid: %s" % TAG_RULE),
    ("**", True, "tag '**' is invalid: %s (or '*' with state=closed to sweep)" % TAG_RULE),
    (None, True, "tag None is invalid: %s (or '*' with state=closed to sweep)" % TAG_RULE),
])
def test_bad_tags_are_refused_naming_the_tag(tag, allow_sweep, message):
    with pytest.raises(common.FirewallError) as error:
        common.validate_tag(tag, allow_sweep)
    assert str(error.value) == message


@pytest.mark.parametrize("value, expected", [
    ("62286", Port("tcp", 62286, 62286)), (62286, Port("tcp", 62286, 62286)), ("137/udp", Port("udp", 137, 137)),
    ("1000-2000/TCP", Port("tcp", 1000, 2000)), (" 1/tcp ", Port("tcp", 1, 1)), ("65535", Port("tcp", 65535, 65535)),
    ("5-5/udp", Port("udp", 5, 5)),
])
def test_ports_parse(value, expected):
    assert common.parse_port(value) == expected


PORT_FORMS = "use PORT, PORT/PROTO or FROM-TO/PROTO, e.g. 62286/tcp or 1000-2000/udp"


@pytest.mark.parametrize("value, message", [
    ("x", "port 'x' is invalid: %s" % PORT_FORMS),
    (True, "port True is invalid: %s" % PORT_FORMS),
    ("62286/sctp", "protocol 'sctp' of port '62286/sctp' is not supported: use one of tcp, udp"),
    ("0", "port 0 is out of range: port numbers go from 1 to 65535 (in '0')"),
    ("65536/tcp", "port 65536 is out of range: port numbers go from 1 to 65535 (in '65536/tcp')"),
    ("1-65536", "port 65536 is out of range: port numbers go from 1 to 65535 (in '1-65536')"),
    ("2000-1000", "port range '2000-1000' is reversed: the first port must not be above the last"),
])
def test_bad_ports_are_refused_naming_the_value(value, message):
    with pytest.raises(common.FirewallError) as error:
        common.parse_port(value)
    assert str(error.value) == message


def test_sources_parse_strictly():
    assert str(common.parse_source(" 198.18.2.0/24 ")) == "198.18.2.0/24"
    assert str(common.parse_source("fd00:f1ee:7ab:2::1")) == "fd00:f1ee:7ab:2::1/128"
    with pytest.raises(common.FirewallError) as error:
        common.parse_source("198.18.2.1/24")
    assert str(error.value) == "source '198.18.2.1/24' has host bits set: did you mean 198.18.2.0/24?"
    with pytest.raises(common.FirewallError) as error:
        common.parse_source("controller")
    assert str(error.value) == "source 'controller' is not an IP address or CIDR: 'controller' does not appear to be an IPv4 or IPv6 network"


def test_a_spec_drops_duplicates_and_keeps_the_order():
    spec = common.build_spec("run-1", ["62286/tcp", 62286, "137/udp"], "out", ["198.18.2.1", "198.18.2.1/32", "fd00::1"], 600)
    assert spec.tag == "run-1" and spec.direction == "out" and spec.lease == 600
    assert spec.ports == (Port("tcp", 62286, 62286), Port("udp", 137, 137))
    assert [str(net) for net in spec.sources] == ["198.18.2.1/32", "fd00::1/128"]
    assert common.build_spec("run-1", ["1"]).lease == 0 and common.build_spec("run-1", ["1"]).direction == "in"


@pytest.mark.parametrize("kwargs, message", [
    ({"tag": "*", "ports": ["1"]}, "tag '*' is invalid: %s" % TAG_RULE),
    ({"tag": "t", "ports": ["1"], "direction": "both"}, "direction 'both' is invalid: use one of in, out"),
    ({"tag": "t", "ports": []}, "ports is empty: state=open needs at least one port"),
    ({"tag": "t", "ports": ["1"], "lease": -1}, "lease -1 is invalid: give whole seconds, 0 for no lease"),
    ({"tag": "t", "ports": ["1"], "lease": True}, "lease True is invalid: give whole seconds, 0 for no lease"),
    ({"tag": "t", "ports": ["1"], "lease": "60"}, "lease '60' is invalid: give whole seconds, 0 for no lease"),
    ({"tag": "t", "ports": ["1"], "lease": 1.5}, "lease 1.5 is invalid: give whole seconds, 0 for no lease"),
])
def test_a_bad_spec_is_refused_before_anything_is_touched(kwargs, message):
    with pytest.raises(common.FirewallError) as error:
        common.build_spec(**kwargs)
    assert str(error.value) == message


def test_rules_for_any_source_one_address_less_pair_per_port():
    spec = common.build_spec("run-1", ["62286/tcp", "137/udp"])
    assert [(r.key, r.hook, r.family, r.peer, r.reply) for r in common.rules_for(spec)] == [
        ("in-tcp-62286-any", "in", 0, None, False), ("ret-in-tcp-62286-any", "out", 0, None, True),
        ("in-udp-137-any", "in", 0, None, False), ("ret-in-udp-137-any", "out", 0, None, True),
    ]


def test_rules_for_sources_one_pair_per_port_and_peer_of_each_family():
    spec = common.build_spec("run-1", ["62286/tcp"], "out", ["fd00::1", "198.18.2.1"])
    assert [(r.key, r.hook, r.family, r.peer, r.reply) for r in common.rules_for(spec)] == [
        ("out-tcp-62286-198.18.2.1/32", "out", 4, "198.18.2.1/32", False),
        ("ret-out-tcp-62286-198.18.2.1/32", "in", 4, "198.18.2.1/32", True),
        ("out-tcp-62286-fd00::1/128", "out", 6, "fd00::1/128", False),
        ("ret-out-tcp-62286-fd00::1/128", "in", 6, "fd00::1/128", True),
    ]


def test_comments_carry_the_marker_the_tag_and_the_rule():
    [first, _reply] = common.rules_for(common.build_spec("run-1", ["62286"]))
    assert common.comment_for("run-1", first) == "fleet-firmware:run-1:in-tcp-62286-any"
    assert common.comment_prefix("run-1") == "fleet-firmware:run-1:"
    assert Port("tcp", 1000, 2000).text == "1000-2000" and Port("tcp", 7, 7).text == "7"
