# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for fleet.firmware.deploy: one node's whole session, with cleanup in a ``finally``.

engine (once per run) -> agent (staged, started, port opened for the controller) -> plan on the
node -> delivery (pull, push or url; auto falls back to push) -> installs in dependency order ->
reboot per policy -> re-inventory -> finally: agent absent (process, rules, files), ledger
``cleaned``. The agent's lease covers what a ``finally`` cannot: ``kill -9`` of the controller.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import threading
import time
import typing as t

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.action.agent import (
    AgentActionError, default_run_dir, facing_address, node_id_of, resolve, run_lock,
)
from ansible_collections.fleet.firmware.plugins.module_utils import manifest as manifest_mod
from ansible_collections.fleet.firmware.plugins.module_utils.agent import AgentError, validate_tag
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, engine as engine_mod, ledger as ledger_mod, tls
from ansible_collections.fleet.firmware.plugins.plugin_utils._twin_action import prefer_native_twin

display = Display()

POLICY_KEYS = ("allow_downgrade", "rewrite", "force", "only", "components")
ARGUMENT_SPEC = dict(
    repository=dict(type="path", required=True),
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
    on_failed_dependency=dict(type="str", choices=["omit_component", "omit_host", "force"], default="omit_component"),
    reboot=dict(type="str", choices=["never", "if_needed", "always"], default="never"),
    reboot_command=dict(type="str", default="systemctl reboot"),
    reboot_delay=dict(type="int", default=0),
    reboot_timeout=dict(type="int", default=600),
    resume=dict(type="bool", default=False),
    timeout=dict(type="int", default=3600),
    progress_interval=dict(type="int", default=5),
    # detect stream: the BMC for redfish detection, asked from the node (fleet.firmware.inventory's options).
    redfish_address=dict(type="str"),
    redfish_username=dict(type="str"),
    redfish_password=dict(type="str", no_log=True),
    redfish_validate_certs=dict(type="bool", default=True),
    redfish_ca_path=dict(type="path"),
    redfish_timeout=dict(type="float", default=30.0),
)
# detect stream: deploy's redfish_* options, as fleet.firmware.inventory takes them.
REDFISH_KEYS = ("redfish_address", "redfish_username", "redfish_password", "redfish_validate_certs", "redfish_ca_path", "redfish_timeout")
# What the node needs of a manifest entry (not the controller path).
NODE_KEYS = ("name", "version", "file", "sha256", "size", "kind", "os", "applies_to", "detect", "install", "args",
             "timeout", "reboot", "requires", "returncodes", "env", "action", "force")


class DeployError(Exception):
    """The session cannot go on; the message says why (the cleanup still runs)."""


def default_tag() -> str:
    """The same for every worker of one ansible-playbook run: its pid and start time."""
    pid = engine_mod.find_playbook_pid()
    seed = f"{pid}:{engine_mod.process_start_time(pid)}"
    return "run-" + hashlib.sha256(seed.encode()).hexdigest()[:12]


class ControllerWatch:
    """The ``ansible-playbook`` process this worker serves.

    Ansible's workers live in sessions of their own and outlive a ``kill -9`` of
    ``ansible-playbook``. Such an orphaned worker must not go on as if nothing happened (fall
    back to push once the engine is gone, start the next install): it starts nothing new, lets
    the component in flight finish, cleans up and says so in the ledger.
    """

    def __init__(self) -> None:
        self.pid = engine_mod.find_playbook_pid()
        self.start = engine_mod.process_start_time(self.pid)

    def alive(self) -> bool:
        return engine_mod.process_start_time(self.pid) == self.start


class ControllerGone(DeployError):
    """``ansible-playbook`` is gone (killed): the orphaned worker stops the session."""


class LeaseKeeper(threading.Thread):
    """Renews the agent's lease every lease/3 until stopped (the deploy's heartbeat).

    Once ``ansible-playbook`` is gone (see ``ControllerWatch``) the keeper stops renewing, so
    the node's lease runs out as it should when the controller dies, even if this worker dies
    too before it has cleaned up.
    """

    def __init__(self, client: agent_client.AgentClient, lease: int, controller: ControllerWatch) -> None:
        super().__init__(name="fleet-lease", daemon=True)
        self.client, self.lease, self.controller = client, lease, controller
        self.halt = threading.Event()
        self.failures = 0
        self.renewed_at = time.time()  # the agent was just started with a full lease

    def lease_ends(self) -> str:
        """When the node's lease runs out if nobody renews it again (UTC, ISO 8601)."""
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.renewed_at + self.lease))

    def run(self) -> None:
        while not self.halt.wait(max(1.0, self.lease / 3)):
            if not self.controller.alive():
                return
            try:
                self.client.renew(self.lease)
                self.renewed_at = time.time()
                self.failures = 0
            except agent_client.AgentClientError:
                self.failures += 1  # the lease still has two thirds left; try again next beat


class Session:
    """What one node's deploy holds; ``result()`` turns it into the task result."""

    def __init__(self, node: str, tag: str, run_dir: str) -> None:
        self.node, self.tag, self.run_dir = node, tag, run_dir
        self.ledger = ledger_mod.LedgerWriter(run_dir)
        self.components: list[dict] = []
        self.plan: dict[str, dict] = {}
        self.delivery: str | None = None
        self.transfer: str | None = None
        self.cleanup: list[str] = []
        self.cleanup_problems: list[str] = []
        self.rebooted = False
        self.reboot_required = False
        self.client: agent_client.AgentClient | None = None
        self.keeper: LeaseKeeper | None = None
        self.agent_started = False
        self.installed: list[dict] = []
        self.controller = ControllerWatch()

    def checkpoint(self, doing: str, in_flight: bool = False) -> None:
        """Raise ``ControllerGone`` if ``ansible-playbook`` is gone; called before each new step."""
        if self.controller.alive():
            return
        finished = "; the component in flight, if any, finished" if in_flight else ""
        lease = f" by {self.keeper.lease_ends()}" if self.keeper is not None else ""
        raise ControllerGone(
            f"ansible-playbook (pid {self.controller.pid}) is gone (killed?) while {doing}: nothing new was started{finished}; "
            f"its orphaned worker cleans the node up now (had the worker died too, the node's lease would have done it{lease})")

    def stage(self, stage: str, **fields: t.Any) -> None:
        event = {"stage": stage}
        event.update({k: v for k, v in fields.items() if k in ("component", "progress", "rc", "message") and v is not None})
        self.ledger.append(self.node, event, source="deploy")


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        args = dict(args)
        try:
            tag = validate_tag(args["tag"] or task_vars.get("fleet_run_tag") or default_tag())
            components = self._components(args)
        except (AgentError, manifest_mod.ManifestError, DeployError) as exc:
            return dict(result, failed=True, msg=str(exc))
        run_dir = args["run_dir"] or default_run_dir(tag)
        node = node_id_of(to_text(task_vars.get("inventory_hostname", "node")))
        if self._task.check_mode:
            return dict(result, **self._check_mode(args, task_vars, components, tag))
        session = Session(node, tag, run_dir)
        previous = self._trap_signals()
        try:
            self._session(session, args, task_vars, components)
        except ControllerGone as exc:
            result.update(failed=True, msg=str(exc))
            session.stage("cancelled", message=str(exc)[:4000])
        except (DeployError, AgentActionError, agent_client.AgentClientError, engine_mod.EngineError, AnsibleError) as exc:
            result.update(failed=True, msg=str(exc))
            session.stage("failed", message=str(exc)[:4000])
        except KeyboardInterrupt:
            result.update(failed=True, msg="cancelled (Ctrl-C): the component in flight finished, the rest were cancelled")
            session.stage("cancelled")
        finally:
            self._clean(session, args, task_vars)
            self._restore_signals(previous)
        result.update(self._result(session))
        if session.cleanup_problems:
            # The update may have succeeded; the node still holds pieces of the run until its
            # lease ends. Ansible shows warnings even for an ok task, so the operator hears of it.
            result.setdefault("warnings", []).extend(f"{node}: {problem}" for problem in session.cleanup_problems)
        if not result.get("failed") and any(c["status"] == "failed" for c in result["components"]):
            failed = [c["name"] for c in result["components"] if c["status"] == "failed"]
            result.update(failed=True, msg=f"component(s) failed on {node}: {', '.join(failed)}")
        return result

    # -- signals

    @staticmethod
    def _trap_signals() -> dict:
        """On Ctrl-C Ansible sends SIGTERM to its workers, whose own handler exits at once, and
        multiprocessing's exit handler sends another while it waits for them. While a node
        session runs, the first SIGINT/SIGTERM becomes a KeyboardInterrupt instead (the component
        in flight finishes, the rest is cancelled, the ``finally`` cleans up) and later ones are
        ignored until the cleanup is done. SIGKILL still stops everything: the lease cleans up."""
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

        def cleaning_up(signum, frame):
            pass  # the cleanup is under way; it ends the session

        def interrupted(signum, frame):
            for trapped in previous:
                signal.signal(trapped, cleaning_up)
            raise KeyboardInterrupt(f"signal {signum}")

        for signum in previous:
            signal.signal(signum, interrupted)
        return previous

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    # -- inputs

    def _components(self, args: dict) -> list[dict]:
        if args["delivery"] == "url" and not args["repository_url"]:
            raise DeployError("delivery=url needs repository_url")
        components = manifest_mod.load_components(args["repository"])
        unknown = sorted(set(args["components"]) - {c["name"] for c in components})
        if unknown:
            raise DeployError(f"components {', '.join(unknown)} are not in the manifest of {args['repository']}")
        return components

    @staticmethod
    def _policy(args: dict) -> dict:
        return {key: args[key] for key in POLICY_KEYS}

    @staticmethod
    def _redfish(args: dict) -> dict:
        """detect stream: the inventory module's BMC options (the agent gets them in its plan request body)."""
        return {key: args[key] for key in REDFISH_KEYS if args.get("redfish_address")}

    @staticmethod
    def _for_node(component: dict) -> dict:
        return {k: v for k, v in component.items() if k in NODE_KEYS}

    def _check_mode(self, args: dict, task_vars: dict, components: list[dict], tag: str) -> dict:
        """Plan only, side-effect free: the inventory module with the same plan code the agent uses."""
        prefer_native_twin(self._connection)
        module_args = dict(self._policy(args), baseline=[self._for_node(c) for c in components], **self._redfish(args))
        answer = self._execute_module(module_name="fleet.firmware.inventory", module_args=module_args, task_vars=task_vars)
        if answer.get("failed"):
            return answer
        entries = answer.get("inventory") or []
        return {"changed": any(e.get("action") != "skip" for e in entries), "run_tag": tag, "plan": entries,
                "components": [self._entry(e, "not_attempted") for e in entries], "reboot_required": False, "rebooted": False,
                "cleanup": [], "msg": "check mode: planned only (no agent, no firewall change, no transfer)"}

    @staticmethod
    def _entry(plan_entry: dict, status: str, outcome: dict | None = None) -> dict:
        outcome = outcome or {}
        # Why the plan chose the action, then what the installer said.
        said = [text for text in (plan_entry.get("reason"), outcome.get("reason")) if text]
        return {"name": plan_entry.get("name"), "before": plan_entry.get("installed"), "after": None,
                "action": plan_entry.get("action"), "status": status, "rc": outcome.get("rc"),
                "message": " -> ".join(dict.fromkeys(said)) or None, "duration_s": outcome.get("duration")}

    # -- the session

    def _addresses(self, task_vars: dict) -> tuple[list[str], list[str], list[str]]:
        """(this node's addresses, every address of every host of the play, the controller's
        addresses facing them). The engine listens on the last and opens its port for the second."""
        host = to_text(self._templar.template(task_vars.get("ansible_host") or task_vars.get("inventory_hostname")))
        node_addresses = resolve(host)
        hostvars = task_vars.get("hostvars", {})
        play: set[str] = set(node_addresses)
        for name in task_vars.get("ansible_play_hosts_all") or []:
            target = to_text(self._templar.template(hostvars.get(name, {}).get("ansible_host", name)))
            try:
                play.update(resolve(target))
            except AgentActionError:
                continue  # another host's trouble is its own task's failure
        controller: set[str] = set()
        for address in play:
            try:
                controller.add(facing_address(address))
            except AgentActionError:
                continue
        return node_addresses, sorted(play), sorted(controller) or [facing_address(a) for a in node_addresses]

    def _session(self, session: Session, args: dict, task_vars: dict, components: list[dict]) -> None:
        node_addresses, play_addresses, controller = self._addresses(task_vars)
        engine_addresses = args["engine_address"] or controller
        open_controller = args["open_firewall"] if args["open_controller_firewall"] is None else args["open_controller_firewall"]
        session.stage("preflight")
        self._fresh_ca_for_a_new_run(session.run_dir)
        engine = engine_mod.attach_or_start(session.run_dir, engine_mod.EngineSettings(
            address=engine_addresses, port=args["engine_port"], tls=True, open_firewall=open_controller,
            advertise=args["controller_address"] or [], firewall_tag=session.tag,
            firewall_sources=play_addresses, run_id=session.tag))
        token = engine.register_node(session.node)
        # Behind NAT (an AWX pod) the nodes see the controller under another address than its own.
        facing = args["controller_address"] or [facing_address(a) for a in node_addresses]
        self._start_agent(session, args, task_vars, facing)
        session.checkpoint("the agent started")
        session.stage("inventoried")
        node_components = [self._for_node(c) for c in components]
        entries = session.client.plan(node_components, self._policy(args), redfish=self._redfish(args))
        session.plan = {e["name"]: e for e in entries}
        session.components = components
        session.stage("planned")
        todo = self._todo(session, args, components)
        if not todo:
            return
        session.checkpoint("planning")
        self._deliver(session, args, engine, token, facing, todo)
        self._install(session, args, todo)
        if not self._reboot_if_needed(session, args, task_vars, node_components):
            self._versions_after(session, session.client.plan(node_components, dict(self._policy(args), rewrite=True), redfish=self._redfish(args)))

    @staticmethod
    def _fresh_ca_for_a_new_run(run_dir: str) -> None:
        """A tag used again (resume) after its run ended: its CA key is gone, so its certificates go too."""
        with run_lock(run_dir):
            folder = tls.tls_dir(run_dir)
            ended = os.path.exists(os.path.join(folder, "ca.pem")) and not os.path.exists(os.path.join(folder, "ca.key"))
            if ended and engine_mod.attach(run_dir) is None:
                shutil.rmtree(folder)

    def _start_agent(self, session: Session, args: dict, task_vars: dict, facing: list[str]) -> None:
        agent_args = {"tag": session.tag, "run_dir": session.run_dir, "agent_port": args["agent_port"], "lease": args["lease"],
                      "open_firewall": args["open_firewall"], "firewall_backend": args["firewall_backend"], "controller": facing,
                      "staging_dir": args["staging_dir"]}
        # Set first: a signal while the module runs may come after the agent started on the node,
        # and the cleanup (idempotent) must then stop it rather than write "cleaned" over it.
        session.agent_started = True
        answer = self._sub_action("fleet.firmware.agent", agent_args, task_vars)
        if answer.get("failed"):
            raise DeployError(f"the agent did not start: {answer.get('msg')}")
        session.transfer = answer.get("transfer")
        session.client = agent_client.AgentClient.from_session(agent_client.load_session(session.run_dir, session.node))
        session.keeper = LeaseKeeper(session.client, args["lease"], session.controller)
        session.keeper.start()
        # The agent runs from its staging folder now: the copy in Ansible's temporary folder goes
        # at once (no lease would ever remove it, were this worker killed too).
        self._remove_tmp_path(self._connection._shell.tmpdir)
        session.stage("staged")
        session.stage("started")
        session.stage("firewall_open")

    def _sub_action(self, name: str, args: dict, task_vars: dict) -> dict:
        task = self._task.copy()
        task.args = args
        action = self._shared_loader_obj.action_loader.get(
            name, task=task, connection=self._connection, play_context=self._play_context, loader=self._loader,
            templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        return action.run(task_vars=task_vars)

    def _todo(self, session: Session, args: dict, components: list[dict]) -> list[dict]:
        done_before = self._installed_earlier(session) if args["resume"] else set()
        todo = []
        for component in components:
            entry = session.plan[component["name"]]
            if entry["action"] == "skip":
                continue
            if component["name"] in done_before:
                entry.update(action="skip", reason="resume: installed and verified in an earlier run of this tag")
                continue
            todo.append(dict(self._for_node(component), action=entry["action"], force=args["force"], path=component["path"]))
        return todo

    @staticmethod
    def _installed_earlier(session: Session) -> set[str]:
        events = ledger_mod.read_since(session.run_dir, session.node, 0)[0]
        return {e["component"] for e in events if e.get("stage") == "installed" and e.get("component")}

    # -- delivery

    def _deliver(self, session: Session, args: dict, engine, token: str, facing: list[str], todo: list[dict]) -> None:
        mode = args["delivery"]
        urls = self._engine_urls(engine, facing)
        for component in todo:
            session.checkpoint(f"delivering {component['name']}")
            sha = engine.register_component(component["path"], component["sha256"])
            session.stage("downloading", component=component["name"])
            if mode == "url":
                base = args["repository_url"].rstrip("/")
                session.client.fetch(sha, [f"{base}/{component['file']}"], None, run_ca=False)
            elif mode in ("pull", "auto"):
                try:
                    session.client.fetch(sha, [f"{u}/v1/components/{sha}" for u in urls], token)
                    mode = "pull"
                except agent_client.AgentClientError as exc:
                    session.checkpoint(f"downloading {component['name']}")  # the engine went with ansible-playbook
                    if exc.status != 504 or mode == "pull":
                        raise DeployError(f"pull delivery of {component['name']} failed: {exc}") from None
                    display.warning(f"{session.node}: the node cannot reach the engine ({exc}); pushing over the agent's port instead")
                    mode = "push"
            if mode == "push":
                session.client.push(component["path"], sha)
            session.stage("verified", component=component["name"])
        session.delivery = mode if mode != "auto" else "pull"

    @staticmethod
    def _engine_urls(engine, facing: list[str]) -> list[str]:
        """The engine URLs on the controller addresses this node faces, first."""
        wanted = [u for u in engine.urls if any(f"[{a}]" in u or f"//{a}:" in u for a in facing)]
        return wanted + [u for u in engine.urls if u not in wanted]

    # -- installs

    def _install(self, session: Session, args: dict, todo: list[dict]) -> None:
        job = [{k: v for k, v in c.items() if k != "path"} for c in todo]
        session.checkpoint("delivering")
        session.client.submit(job, args["on_failed_dependency"])
        deadline, last_line, seen = time.monotonic() + args["timeout"], 0.0, 0
        cancelled = False
        while True:
            try:
                status = session.client.status()
                seen = self._record(session, status, seen)
                if status.get("job") in ("done", "cancelled"):
                    break
                if not session.controller.alive():
                    self._cancel_and_wait(session)
                    session.checkpoint("installing", in_flight=True)
                if time.monotonic() > deadline and not cancelled:
                    session.client.cancel()
                    cancelled = True
                if args["progress_interval"] and time.monotonic() - last_line >= args["progress_interval"]:
                    self._progress(session, status)
                    last_line = time.monotonic()
                time.sleep(0.5)
            except KeyboardInterrupt:
                self._cancel_and_wait(session)
                raise
        session.installed = status.get("components", [])

    def _record(self, session: Session, status: dict, seen: int) -> int:
        """Copy the agent's new component events into the ledger; return the last ``seq`` seen
        (the status carries a window of the agent's latest events, numbered by ``seq``)."""
        for event in status.get("events", []):
            if event.get("seq", 0) <= seen:
                continue
            seen = event["seq"]
            if event.get("state") in ("installing", "installed", "failed", "skipped") and event.get("component"):
                session.stage(event["state"], component=event["component"], rc=event.get("rc"),
                              message=(event.get("reason") or None))
        return seen

    @staticmethod
    def _progress(session: Session, status: dict) -> None:
        current = status.get("current") or {}
        parts = [f"{session.node}: {status.get('state')}"]
        if current:
            parts.append(f"component {current.get('name')}")
        done = [c for c in status.get("components", []) if c.get("status") not in ("pending",)]
        parts.append(f"{len(done)}/{len(status.get('components', []))} done")
        display.display(", ".join(parts))

    @staticmethod
    def _cancel_and_wait(session: Session, limit: float = 600.0) -> None:
        """Ctrl-C: the component in flight finishes, the rest are cancelled (bounded wait)."""
        try:
            session.client.cancel()
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                if session.client.status().get("job") in ("done", "cancelled"):
                    return
                time.sleep(0.5)
        except (agent_client.AgentClientError, KeyboardInterrupt):
            return

    # -- reboot

    def _reboot_if_needed(self, session: Session, args: dict, task_vars: dict, node_components: list[dict]) -> bool:
        outcomes = session.installed
        needs = any(c.get("result") == "reboot_required" for c in outcomes)
        all_ok = all(c.get("status") == "installed" for c in outcomes)
        wanted = args["reboot"] == "always" and outcomes or args["reboot"] == "if_needed" and needs and all_ok
        if not wanted:
            session.reboot_required = needs
            return False
        self._stop_agent(session, args, task_vars)
        before = self._boot_id()
        session.stage("rebooting")
        delay = max(0, args["reboot_delay"])
        # Detached, through a module (a raw command's background job dies with its pty): the
        # command may take the connection down before it answers.
        self._execute_module(module_name="ansible.builtin.command", task_vars=task_vars, module_args={
            "_raw_params": f"nohup sh -c 'sleep {delay}; {args['reboot_command']}' >/dev/null 2>&1 &", "_uses_shell": True})
        self._wait_for_new_boot(before, args["reboot_timeout"])
        session.rebooted = True
        session.stage("activated")
        prefer_native_twin(self._connection)
        answer = self._execute_module(module_name="fleet.firmware.inventory", task_vars=task_vars,
                                      module_args=dict(self._policy(args), baseline=node_components, rewrite=True, **self._redfish(args)))
        self._versions_after(session, answer.get("inventory") or [])
        return True

    @staticmethod
    def _versions_after(session: Session, entries: list[dict]) -> None:
        """The re-inventory: what the node reports installed now."""
        for entry in entries:
            if entry.get("name") in session.plan:
                session.plan[entry["name"]]["after"] = entry.get("installed")

    def _boot_id(self) -> str:
        answer = self._low_level_execute_command("cat /proc/sys/kernel/random/boot_id", sudoable=False)
        return to_text(answer.get("stdout", "")).strip()

    def _wait_for_new_boot(self, before: str, timeout: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                self._connection.reset()
                now = self._boot_id()
            except AnsibleError:
                continue
            if now and now != before:
                # The remote temporary folder went with the reboot (/root and /tmp start empty).
                self._connection._shell.tmpdir = None
                return
        raise DeployError(f"the node did not come back within {timeout} s (boot id still {before or 'unknown'})")

    # -- cleanup

    def _stop_agent(self, session: Session, args: dict, task_vars: dict) -> None:
        if session.keeper is not None:
            session.keeper.halt.set()
        if not session.agent_started:
            return
        absent = {"tag": session.tag, "run_dir": session.run_dir, "state": "absent", "staging_dir": args["staging_dir"],
                  "firewall_backend": args["firewall_backend"], "open_firewall": args["open_firewall"]}
        answer = self._sub_action("fleet.firmware.agent", absent, task_vars)
        if answer.get("failed"):
            raise DeployError(f"removing the agent failed: {answer.get('msg')}")
        session.cleanup.extend(answer.get("removed", []))
        session.agent_started = False

    def _clean(self, session: Session, args: dict, task_vars: dict) -> None:
        """Whatever happened: agent stopped, rules closed, files removed (also Ansible's temporary
        folder, which may hold a copy of the agent), then ``cleaned``: true when it is written."""
        problems = []
        try:
            self._stop_agent(session, args, task_vars)
        except (DeployError, AnsibleError) as exc:
            problems.append(f"cleanup failed: {exc} (the agent's lease will finish it)")
        try:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        except AnsibleError as exc:
            problems.append(f"Ansible's temporary folder on the node was not removed: {exc}")
        if problems:
            session.cleanup.extend(problems)
            session.cleanup_problems = problems
            session.stage("failed", message="; ".join(problems)[:4000])
        else:
            session.stage("cleaned")

    # -- result

    def _result(self, session: Session) -> dict:
        outcomes = {c["name"]: c for c in session.installed}
        components = []
        for component in session.components:
            entry = session.plan.get(component["name"], {"name": component["name"], "action": None})
            outcome = outcomes.get(component["name"])
            if entry.get("action") == "skip":
                status = "skipped"
            elif outcome is None:
                status = "not_attempted"
            elif outcome.get("status") == "skipped" and not (outcome.get("reason") or "").startswith("omit_"):
                status = "cancelled"  # cancel, lease expiry or stop; "omit_..." is a dependency skip
            else:
                status = outcome.get("status")
            row = self._entry(entry, status, outcome)
            row["after"] = entry.get("after", entry.get("installed"))
            components.append(row)
        return {"changed": any(c["status"] == "installed" for c in components) or session.rebooted, "run_tag": session.tag,
                "ledger": ledger_mod.ledger_path(session.run_dir, session.node), "delivery": session.delivery,
                "transfer": session.transfer, "reboot_required": session.reboot_required, "rebooted": session.rebooted,
                "components": components, "cleanup": session.cleanup}
