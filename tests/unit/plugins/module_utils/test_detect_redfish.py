# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""redfish and component detection: matching against a real iLO 5 inventory (fixtures/SOURCES.md),
and the client against a small real HTTPS server (Basic auth, expansion, errors), and the plan
(one BMC query per plan, errors never "absent", the password in no result)."""
from __future__ import annotations

import base64
import copy
import json
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import detect, plan

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = json.loads((FIXTURES / "ilo5_firmware_inventory.json").read_text())
ITEMS = SAMPLE["Members"]
SMART_ARRAY = "a6b1a447-382a-5a4f-9005-028f103c0654"
POWER_SUPPLY = "0302b505-0002-0000-0000-0cf38db966ea"
PLATFORM = "00000000-0000-0000-0000-000000000205"
PASSWORD = "pa55-w0rd-of-the-bmc"


def spec(*targets, **extra):
    return dict({"method": "redfish", "targets": list(targets)}, **extra)


# ---------------------------------------------------------------- matching (the real sample)


def test_a_pci_device_matches_by_its_target_with_its_version_and_context():
    result = detect.match_firmware(spec(SMART_ARRAY), ITEMS)
    assert (result["state"], result["version"], result["method"]) == ("present", "6.22", "redfish")
    assert result["devices"] == [{"id": "16", "name": "HPE Smart Array E208i-a SR Gen10", "context": "Embedded RAID", "version": "6.22"}]


def test_targets_compare_without_regard_to_case():
    assert detect.match_firmware(spec(SMART_ARRAY.upper()), ITEMS)["version"] == "6.22"


def test_the_nvme_backplane_target_of_a_real_cp_xml_matches_the_real_inventory():
    # cp037722.xml (NVMe backplane PIC firmware 1.20) lists this target; the iLO reports 1.24.
    result = detect.match_firmware(spec("00000000-0000-0000-0000-000049535320"), ITEMS)
    assert result["version"] == "1.24" and result["devices"][0]["name"] == "NVMe Backplane Firmware"


def test_several_matching_devices_report_the_lowest_version():
    items = copy.deepcopy(ITEMS)
    assert detect.match_firmware(spec(POWER_SUPPLY), items)["version"] == "2.00"
    bay2 = [i for i in items if i["Oem"]["Hpe"].get("DeviceContext") == "Bay 2"][0]
    bay2["Version"] = "1.90"
    result = detect.match_firmware(spec(POWER_SUPPLY), items)
    assert (result["version"], result["reason"]) == ("1.90", "the lowest of 2 matching items")
    assert [d["context"] for d in result["devices"]] == ["Bay 1", "Bay 2"]


def test_items_sharing_platform_targets_cannot_be_ordered_so_it_is_an_error_not_a_guess():
    result = detect.match_firmware(spec(PLATFORM), ITEMS)
    assert result["state"] == "error" and result["version"] is None
    assert "narrow the match with name" in result["reason"] and "System ROM (System Board): U30 v2.90 (07/20/2023)" in result["reason"]
    named = detect.match_firmware(spec(PLATFORM, name="^System ROM$"), ITEMS)
    assert (named["state"], named["version"]) == ("present", "U30 v2.90 (07/20/2023)")


def test_no_matching_item_is_absent_and_says_what_was_looked_for():
    result = detect.match_firmware(spec("a6b1a447-382a-5a4f-8086-15938086000e"), ITEMS)
    assert result["state"] == "absent"
    assert result["reason"] == "no firmware item with targets a6b1a447-382a-5a4f-8086-15938086000e (of 24 items in the inventory)"
    named = detect.match_firmware(spec(SMART_ARRAY, name="^Nothing"), ITEMS)
    assert named["state"] == "absent" and "named like '^Nothing'" in named["reason"]


def test_an_item_without_targets_never_matches():
    redundant = [i for i in ITEMS if i["Name"] == "Redundant System ROM"]
    assert "Targets" not in redundant[0]["Oem"]["Hpe"]
    assert detect.match_firmware(spec(PLATFORM, name="Redundant"), ITEMS)["state"] == "absent"


def test_regex_picks_the_version_out_of_the_item_version():
    result = detect.match_firmware(spec("4764a662-b342-4fc7-9ce9-258c5d99e815", regex=r"^(\S+)"), ITEMS)
    assert result["version"] == "2.96"


def test_an_item_without_a_version_is_an_error():
    items = copy.deepcopy(ITEMS)
    [i for i in items if i["Id"] == "16"][0]["Version"] = ""
    assert detect.match_firmware(spec(SMART_ARRAY), items)["state"] == "error"


# ---------------------------------------------------------------- a small real BMC


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bmc-tls")
    cert, key = folder / "bmc.pem", folder / "bmc.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class Bmc:
    """A real HTTPS server answering Redfish GETs from ``routes`` (path with query -> JSON, bytes or
    an int status), with HTTP Basic auth when ``credentials`` is set; it records every request."""

    def __init__(self, certificate, routes, credentials=None):
        self.routes, self.credentials, self.requests = routes, credentials, []
        bmc = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                bmc.requests.append((self.path, dict(self.headers)))
                if bmc.credentials and self.headers.get("Authorization") != "Basic " + base64.b64encode(bmc.credentials.encode()).decode():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="iLO"')
                    self.end_headers()
                    return
                answer = bmc.routes.get(self.path, 404)
                if isinstance(answer, int):
                    self.send_response(answer)
                    self.end_headers()
                    return
                body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, certificate))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.ca = str(certificate[0])

    @property
    def address(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def settings(self, **extra):
        return dict({"address": self.address, "username": "fleet", "password": PASSWORD, "ca_path": self.ca, "timeout": 5}, **extra)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


EXPANDED = "/redfish/v1/UpdateService/FirmwareInventory/?$expand=."
PLAIN = "/redfish/v1/UpdateService/FirmwareInventory/"


@pytest.fixture
def bmc(certificate):
    servers = []

    def make(routes=None, credentials="fleet:" + PASSWORD):
        server = Bmc(certificate, {EXPANDED: SAMPLE} if routes is None else routes, credentials)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_the_expanded_inventory_is_one_request_with_basic_auth(bmc):
    server = bmc()
    items = detect.fetch_firmware_inventory(server.settings())
    assert len(items) == 24 and len(server.requests) == 1
    path, headers = server.requests[0]
    assert path == EXPANDED and headers["Authorization"].startswith("Basic ")


def test_a_bmc_that_does_not_expand_is_asked_member_by_member(bmc):
    routes = {EXPANDED: 400, PLAIN: dict(SAMPLE, Members=[{"@odata.id": i["@odata.id"]} for i in ITEMS[:3]])}
    routes.update({i["@odata.id"]: i for i in ITEMS[:3]})
    server = bmc(routes)
    items = detect.fetch_firmware_inventory(server.settings())
    assert [i["Name"] for i in items] == ["iLO 5", "System ROM", "Intelligent Platform Abstraction Data"]
    assert [p for p, _h in server.requests] == [EXPANDED, PLAIN] + [i["@odata.id"] for i in ITEMS[:3]]


def test_bare_links_in_an_expanded_answer_are_followed_too(bmc):
    routes = {EXPANDED: dict(SAMPLE, Members=[{"@odata.id": ITEMS[15]["@odata.id"]}]), ITEMS[15]["@odata.id"]: ITEMS[15]}
    assert detect.fetch_firmware_inventory(bmc(routes).settings())[0]["Version"] == "6.22"


def test_a_member_link_to_another_host_is_not_followed(bmc):
    routes = {EXPANDED: dict(SAMPLE, Members=[{"@odata.id": "https://198.18.0.99/redfish/v1/x"}])}
    with pytest.raises(detect.RedfishError, match="outside https://127.0.0.1"):
        detect.fetch_firmware_inventory(bmc(routes).settings())


@pytest.mark.parametrize("routes, settings, message", [
    ({EXPANDED: b"<html>login</html>"}, {}, "is not JSON"),
    ({EXPANDED: {"Name": "not a collection"}}, {}, "is not a Redfish collection (no Members list)"),
    ({EXPANDED: 500}, {}, "HTTP 500"),
    (None, {"password": "wrong"}, "refused user fleet (HTTP 401)"),
    (None, {"username": None, "password": None}, "refused no credentials (redfish_username) (HTTP 401)"),
    (None, {"ca_path": None}, "TLS with the BMC at https://127.0.0.1"),
])
def test_bmc_problems_are_errors_never_absent(bmc, routes, settings, message):
    server = bmc(routes)
    result = detect.detect(spec(SMART_ARRAY), redfish=server.settings(**settings))
    assert result["state"] == "error" and message in result["reason"], result
    assert PASSWORD not in json.dumps(result)


def test_certificate_checks_can_be_turned_off(bmc):
    result = detect.detect(spec(SMART_ARRAY), redfish=bmc().settings(ca_path=None, validate_certs=False))
    assert result["version"] == "6.22"


def test_an_unreachable_bmc_is_an_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = detect.detect(spec(SMART_ARRAY), redfish={"address": "127.0.0.1:%d" % port, "timeout": 2})
    assert result["state"] == "error" and "cannot reach the BMC at https://127.0.0.1:%d" % port in result["reason"]


@pytest.mark.parametrize("settings, message", [
    (None, "no BMC settings: give redfish_address"),
    ({"address": ""}, "no BMC address"),
    ({"address": "bmc", "password": PASSWORD}, "a BMC password without a username"),
    ({"address": "bmc", "user": "x"}, "unknown BMC setting 'user'"),
    ({"address": "bmc", "timeout": "soon"}, "the BMC timeout must be a number of seconds, got 'soon'"),
    ({"address": "https://bmc/redfish/v1"}, "without a path"),
    ({"address": "https://root:%s@bmc" % PASSWORD, "username": "root"}, "the BMC address holds credentials"),
    ({"address": "bmc", "ca_path": "/nonexistent/ca.pem"}, "the BMC CA file /nonexistent/ca.pem does not exist"),
])
def test_bad_settings_are_errors_naming_the_setting_and_never_the_password(settings, message):
    result = detect.detect(spec(SMART_ARRAY), redfish=settings)
    assert result["state"] == "error" and message in result["reason"]
    assert PASSWORD not in json.dumps(result)


@pytest.mark.parametrize("address, url", [("16.1.15.1", "https://16.1.15.1"), ("fe80::2", "https://[fe80::2]"),
                                          ("[fd00::5]:8443", "https://[fd00::5]:8443"), ("http://127.0.0.1:8000/", "http://127.0.0.1:8000")])
def test_base_url_from_the_host_interface_address(address, url):
    assert detect.redfish_base_url(address) == url


# ---------------------------------------------------------------- the plan


def component(name, detect_spec, version="7.00", kind="firmware"):
    return {"name": name, "version": version, "kind": kind, "os": "linux", "detect": detect_spec}


def test_the_plan_asks_the_bmc_once_and_says_where_each_version_came_from(bmc):
    server = bmc()
    components = [component("smart-array", spec(SMART_ARRAY), "6.22"),
                  component("psu", spec(POWER_SUPPLY), "2.10"),
                  component("nic-x", spec("a6b1a447-382a-5a4f-8086-15938086000e"), "4.20"),
                  component("drive", {"method": "component"}, "HPD4")]
    entries = plan.plan(components, redfish=server.settings())
    assert len(server.requests) == 1
    actions = {e["name"]: (e["action"], e["reason"]) for e in entries}
    assert actions["smart-array"] == ("skip", "already current (6.22)")
    assert actions["psu"] == ("upgrade", "installed 2.00 is older than 2.10")
    assert actions["nic-x"][0] == "install" and "no firmware item with targets" in actions["nic-x"][1]
    assert actions["drive"] == ("install", plan.COMPONENT_DECIDES)
    drive = entries[3]
    assert drive["detection"]["method"] == "component" and drive["source"] == "the Smart Component itself"
    assert entries[0]["source"] == "the BMC's Redfish firmware inventory of https://%s (asked from the node)" % server.address
    assert PASSWORD not in json.dumps(entries)


def test_an_unreachable_bmc_leaves_every_redfish_component_skipped_never_installed_as_absent():
    components = [component("a", spec(SMART_ARRAY)), component("b", spec(POWER_SUPPLY))]
    entries = plan.plan(components, redfish={"address": "127.0.0.1:1", "username": "u", "password": PASSWORD, "timeout": 2})
    assert [e["action"] for e in entries] == ["skip", "skip"]
    assert all("cannot tell the installed version: cannot read the BMC's firmware inventory" in e["reason"] for e in entries)
    assert all(e["detection"]["state"] == "error" for e in entries)
    assert PASSWORD not in json.dumps(entries)
    forced = plan.plan(components[:1], {"force": True}, redfish={"address": "127.0.0.1:1", "timeout": 2})
    assert forced[0]["action"] == "install" and forced[0]["reason"].startswith("force: ")


def test_an_inventory_from_the_controller_is_used_without_asking_the_bmc():
    entries = plan.plan([component("smart-array", spec(SMART_ARRAY), "7.00")], redfish_inventory=ITEMS)
    assert entries[0]["action"] == "upgrade"
    assert entries[0]["source"] == "the BMC's Redfish firmware inventory of the BMC (asked from the controller)"


def test_the_bmc_is_not_asked_for_components_left_out(bmc):
    server = bmc()
    entries = plan.plan([component("smart-array", spec(SMART_ARRAY)), component("other-os", spec(SMART_ARRAY))],
                        {"only": "software"}, redfish=server.settings())
    assert [e["source"] for e in entries] == [None, None] and server.requests == []


def test_asked_by_the_controller_the_module_gets_the_items_and_no_credentials(bmc):
    from ansible_collections.fleet.firmware.plugins.action import inventory as action

    server = bmc()
    args = {"baseline": [], "redfish_from": "controller", "redfish_address": server.address, "redfish_username": "fleet",
            "redfish_password": PASSWORD, "redfish_ca_path": server.ca, "redfish_timeout": 5}
    module_args = action.asked_by_controller(args)
    assert len(module_args["redfish_inventory"]) == 24
    assert not set(action.CONTROLLER_ONLY) & set(module_args) and PASSWORD not in json.dumps(module_args)
    refused = action.asked_by_controller(dict(args, redfish_password="wrong"))
    assert "redfish_inventory" not in refused and "refused user fleet (HTTP 401)" in refused["redfish_inventory_error"]
    entries = plan.plan([component("smart-array", spec(SMART_ARRAY))], redfish={"address": server.address, "origin": "controller"},
                        redfish_error=refused["redfish_inventory_error"])
    assert entries[0]["action"] == "skip" and "refused user fleet" in entries[0]["reason"]


@pytest.mark.parametrize("bad, field, message", [
    ({"targets": "a6b1a447"}, "detect.targets", "must be a list of target identifiers"),
    ({"targets": [SMART_ARRAY, 5]}, "detect.targets", "must be a list of target identifiers"),
    ({"targets": []}, "detect.targets", "required for method redfish"),
    ({"targets": [SMART_ARRAY], "name": "("}, "detect.name", "not a valid regular expression"),
    ({"targets": [SMART_ARRAY], "device_class": "x"}, "detect.device_class", "unknown key for method redfish"),
    ({"x": 1}, "detect.x", "unknown key for method component"),
])
def test_bad_redfish_and_component_specs_name_the_field(bad, field, message):
    method = "component" if "x" in bad else "redfish"
    problems = detect.spec_problems(dict(bad, method=method))
    assert any(f == field and message in m for f, m in problems), problems
