# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy's argument spec, declared once: the action validates with it, and a unit test
checks it against the module's documentation (plugins/modules/deploy.py).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

from ansible_collections.fleet.firmware.plugins.module_utils import detect as detect_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod, role_variables

POLICY_KEYS = ("allow_downgrade", "rewrite", "force", "only", "components")
# The site policy (issue 19): applied by the controller to every node's plan (plan.apply_site_policy).
SITE_POLICY_KEYS = ("approved_hashes", "denied_versions", "required_versions", "min_criticality")
ARGUMENT_SPEC = dict(
    repository=dict(type="path"),
    role=dict(type="str", choices=list(role_variables.ROLES)),
    tag=dict(type="str"),
    run_dir=dict(type="path"),
    delivery=dict(type="str", choices=["auto", "pull", "push", "url"], default="auto"),
    repository_url=dict(type="str"),
    open_firewall=dict(type="bool", default=True),
    open_controller_firewall=dict(type="bool"),
    controller_address=dict(type="list", elements="str"),
    engine_port=dict(type="int", default=engine_mod.DEFAULT_TLS_PORT),
    engine_address=dict(type="list", elements="str"),
    agent_port=dict(type="int", default=62286),
    staging_dir=dict(type="path"),
    lease=dict(type="int", default=120),
    firewall_backend=dict(type="str", default="auto", choices=["auto", "iptables", "nftables", "firewalld", "ufw", "windows"]),
    allow_downgrade=dict(type="bool", default=False),
    rewrite=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    only=dict(type="str", choices=["all", "firmware", "software"], default="all"),
    components=dict(type="list", elements="str", default=[]),
    approved_hashes=dict(type="list", elements="str", default=[]),
    denied_versions=dict(type="list", elements="dict", default=[]),
    required_versions=dict(type="list", elements="dict", default=[]),
    min_criticality=dict(type="str", choices=["critical", "recommended", "optional"]),
    on_failed_dependency=dict(type="str", choices=["omit_component", "omit_host", "force"], default="omit_component"),
    reboot=dict(type="str", choices=["never", "if_needed", "always"], default="never"),
    # Per OS (plugin_utils/deploy/reboot.py): an argument list, or {linux: [...], windows: [...]};
    # omitted, each option takes its OS's default there.
    reboot_command=dict(type="raw"),
    reboot_delay=dict(type="int"),
    reboot_timeout=dict(type="int"),
    resume=dict(type="bool", default=False),
    timeout=dict(type="int", default=3600),
    progress_interval=dict(type="int", default=5),
    agent_start=dict(type="str", choices=["auto", "stdin", "staged"], default="auto"),
    # Signatures (trust): every component is verified on the controller before anything reaches a node.
    trust=dict(type="path"),
    signatures=dict(type="str", choices=["required", "warn", "off"], default="required"),
    # The BMC for redfish detection, asked from the node (fleet.firmware.inventory's options).
    **detect_mod.REDFISH_OPTIONS,
)
# What the node needs of a manifest entry (not the controller path). The node's plan needs
# deployable/not_deployable and superseded_by too (plan.not_offered): without them a BMC-only
# .fwpkg was run in-band and an SPP's superseded version installed over the hotfix's newer one.
NODE_KEYS = ("name", "version", "file", "sha256", "size", "kind", "os", "applies_to", "detect", "install", "args",
             "timeout", "reboot", "requires", "returncodes", "env", "action", "force",
             # what plan.not_offered and the site policy read (an older SPP version is not planned by itself)
             "deployable", "not_deployable", "superseded_by", "criticality")
# Deploy's redfish_* options, as fleet.firmware.inventory takes them.
REDFISH_KEYS = tuple(detect_mod.REDFISH_OPTIONS)
