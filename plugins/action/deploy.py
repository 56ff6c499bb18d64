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

import contextlib
import os
import shutil
import time

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.module_utils import manifest as manifest_mod, plan as plan_mod
from ansible_collections.fleet.firmware.plugins.module_utils.agent import AgentError, validate_tag
from ansible_collections.fleet.firmware.plugins.module_utils.baseline import trust as trust_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, engine as engine_mod, ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import role_variables, run_cache, safe_text, tls
from ansible_collections.fleet.firmware.plugins.plugin_utils._twin_action import prefer_native_twin
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy import delivery, pull, reboot, signals
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.addresses import (
    AddressError, check_run_dir, default_run_dir, facing_address, resolve, run_lock, unique_node_id,
)
# The rooms' names stay importable from here (tests, callers of the old module).
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import (  # noqa: F401  pylint: disable=unused-import
    ControllerGone, ControllerWatch, DeployError, default_tag,
)
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.lease import LeaseKeeper
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.session import Session
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.spec import ARGUMENT_SPEC, NODE_KEYS, POLICY_KEYS, REDFISH_KEYS, SITE_POLICY_KEYS  # noqa: F401

display = Display()


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
            update = None
            if args["role"]:
                update, args = self._from_role_variables(args, task_vars)
            elif not args["repository"]:
                raise DeployError("missing required arguments: repository")
            tag = validate_tag(args["tag"] or task_vars.get("fleet_run_tag") or default_tag())
            reboot.settings(args, reboot.node_os(self), to_text(task_vars.get("inventory_hostname", "the node")))  # before anything is installed
            run_dir = args["run_dir"] or default_run_dir(tag)
            # Check mode writes nothing, not even the run folder: it hashes the files itself.
            components = self._components(args, None if self._task.check_mode else run_dir)
            self._site_policy(args)  # a bad site policy fails here, before anything reaches the node
            if update is not None:
                result.update(self._node_checks(update, task_vars))
        except (AgentError, manifest_mod.ManifestError, DeployError, run_cache.DigestMismatch,
                role_variables.RoleVariablesError, trust_mod.TrustError) as exc:
            return dict(result, failed=True, msg=str(exc))
        self._warn_signatures(result)
        try:
            # Before anything is staged: two hosts sharing one node id both fail here, naming each other.
            node = unique_node_id(to_text(task_vars.get("inventory_hostname", "node")),
                                  [to_text(h) for h in task_vars.get("ansible_play_hosts_all") or []])
            check_run_dir(run_dir)
        except AddressError as exc:
            return dict(result, failed=True, msg=str(exc))
        if self._task.check_mode:
            return dict(result, **self._check_mode(args, task_vars, components, tag))
        session = Session(node, tag, run_dir)
        previous = signals.trap()
        try:
            self._session(session, args, task_vars, components)
        except ControllerGone as exc:
            result.update(failed=True, msg=str(exc))
            session.stage("cancelled", message=str(exc)[:4000])
        except (DeployError, AddressError, agent_client.AgentClientError, engine_mod.EngineError, AnsibleError) as exc:
            result.update(failed=True, msg=str(exc))
            session.stage("failed", message=str(exc)[:4000])
        except KeyboardInterrupt:
            result.update(failed=True, msg="cancelled (Ctrl-C): the component in flight finished, the rest were cancelled")
            session.stage("cancelled")
        finally:
            self._clean(session, args, task_vars)
            signals.restore(previous)
        result.update(self._result(session))
        if session.cleanup_problems:
            # The update may have succeeded; the node still holds pieces of the run until its
            # lease ends. Ansible shows warnings even for an ok task, so the operator hears of it.
            result.setdefault("warnings", []).extend(f"{node}: {problem}" for problem in session.cleanup_problems)
        if not result.get("failed") and any(c["status"] in reboot.FAILED_STATUSES for c in result["components"]):
            failed = [c["name"] if c["status"] == "failed" else f"{c['name']} (not activated)" for c in result["components"]
                      if c["status"] in reboot.FAILED_STATUSES]
            result.update(failed=True, msg=f"component(s) failed on {node}: {', '.join(failed)}")
        # Messages from the node (installer output, agent errors) reach the operator's terminal.
        return safe_text.clean(result)

    # -- one task per host: the roles' variables and per-host checks, here

    def _from_role_variables(self, args: dict, task_vars: dict) -> tuple[role_variables.NodeUpdate, dict]:
        """``role=...``: every option from the host's ``fleet_*`` variables (the roles' argument specs
        and defaults), checked as the roles checked them; no other option may be given."""
        given = sorted(k for k, v in self._task.args.items() if k != "role" and v is not None)
        if given:
            raise DeployError(f"role={args['role']} takes every option from the fleet_* variables: do not also give {', '.join(given)}")

        def lookup(name: str):
            if name not in task_vars:
                raise KeyError(name)
            return self._templar.template(task_vars[name])

        host = to_text(task_vars.get("inventory_hostname", "node"))
        update = role_variables.node_update(args["role"], host, self._connection.transport, lookup, os.path.expanduser("~"))
        _validation, deploy_args = self._validate_deploy_args(update.deploy)
        return update, dict(deploy_args, role=args["role"])

    @staticmethod
    def _validate_deploy_args(values: dict):
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate({k: v for k, v in values.items() if v is not None})
        if validated.error_messages:
            raise DeployError("; ".join(validated.error_messages))
        return validated, validated.validated_parameters

    def _node_checks(self, update: role_variables.NodeUpdate, task_vars: dict) -> dict:
        """The preflight (both directions, a blocking problem fails the node here) and the free
        space of /var/tmp: what the fleet_update and linux_node roles ran as tasks of their own."""
        extra: dict = {}
        if update.preflight is not None:
            with self._as_connection_user_piped():
                answer = self._sub_action("fleet.firmware.preflight", {k: v for k, v in update.preflight.items() if v is not None}, task_vars)
            extra["preflight"] = {k: answer.get(k) for k in ("path", "controller", "problems", "blocking") if k in answer}
            if answer.get("failed"):
                raise DeployError(answer.get("msg") or "the preflight failed")
        if update.staging_min_free_mb > 0:
            host = to_text(task_vars.get("inventory_hostname", "node"))
            answer = self._low_level_execute_command("df -Pk /var/tmp", sudoable=False)  # any user may ask df
            if answer.get("rc") != 0:
                raise DeployError(f"df -Pk /var/tmp failed on {host}: {to_text(answer.get('stderr') or answer.get('stdout'))[:300]}")
            problem = role_variables.free_space_problem(to_text(answer.get("stdout", "")), host, update.staging_min_free_mb)
            if problem:
                raise DeployError(problem)
        return extra

    # -- inputs

    def _components(self, args: dict, run_dir: str | None = None) -> list[dict]:
        """The manifest's components; each file's hash checked once per run (``run_cache``), not once per host."""
        if args["delivery"] == "url" and not args["repository_url"]:
            raise DeployError("delivery=url needs repository_url")
        try:
            # Signatures first (fail closed, before anything reaches a node); the verdicts once per run.
            components, self._signature_warnings = run_cache.trusted_components(
                run_dir, args, lambda verify: trust_mod.load_trusted_components(
                    args["repository"], trust=args["trust"], policy=args["signatures"], verify=verify, only=args["components"]))
            if run_dir is not None:
                run_cache.verify_digests(run_dir, components)
        except manifest_mod.ManifestError:
            if run_dir is not None:
                run_cache.discard_if_only_cache(run_dir)
            # A bad manifest: every problem, the hashes too (only this failing path hashes here).
            manifest_mod.load_components(args["repository"], verify=True)
            raise
        except Exception:
            if run_dir is not None:
                run_cache.discard_if_only_cache(run_dir)  # a failed validation leaves nothing behind
            raise
        unknown = sorted(set(args["components"]) - {c["name"] for c in components})
        if unknown:
            raise DeployError(f"components {', '.join(unknown)} are not in the manifest of {args['repository']}")
        return components

    def _warn_signatures(self, result: dict) -> None:
        """signatures=warn/off: a warning in every run (Ansible shows it; the report lists it)."""
        warnings = getattr(self, "_signature_warnings", [])
        if warnings:
            result.setdefault("warnings", []).extend(warnings)
            result["signature_warnings"] = list(warnings)

    @staticmethod
    def _policy(args: dict) -> dict:
        return {key: args[key] for key in POLICY_KEYS}

    @staticmethod
    def _site_policy(args: dict) -> dict:
        """issue 19: applied here to every node's plan (whatever the node's OS), never left to the node."""
        policy = {key: args.get(key) for key in SITE_POLICY_KEYS}
        try:
            plan_mod.normalise_policy(policy)
        except ValueError as exc:
            raise DeployError(str(exc)) from exc
        return policy

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
        entries = plan_mod.apply_site_policy(answer.get("inventory") or [], components, self._site_policy(args))
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
                "message": " -> ".join(dict.fromkeys(said)) or None, "duration_s": outcome.get("duration"),
                "not_deployable": plan_entry.get("not_deployable")}

    # -- the session

    def _addresses(self, task_vars: dict, run_dir: str) -> tuple[list[str], list[str], list[str]]:
        """(this node's addresses, every address of every host of the play, the controller's
        addresses facing them). The engine listens on the last and opens its port for the second.
        The play's part is the same for every host: computed once per run (``run_cache``)."""
        host = to_text(self._templar.template(task_vars.get("ansible_host") or task_vars.get("inventory_hostname")))
        node_addresses = resolve(host)
        play_hosts = [to_text(name) for name in task_vars.get("ansible_play_hosts_all") or []]
        play = run_cache.play_addresses(run_dir, play_hosts, lambda: self._play_addresses(task_vars, play_hosts))
        addresses = sorted(set(play["addresses"]) | set(node_addresses))
        controller = play["controller"] or [facing_address(a) for a in node_addresses]
        return node_addresses, addresses, controller

    def _play_addresses(self, task_vars: dict, play_hosts: list[str]) -> dict:
        hostvars = task_vars.get("hostvars", {})
        play: set[str] = set()
        for name in play_hosts:
            target = to_text(self._templar.template(hostvars.get(name, {}).get("ansible_host", name)))
            try:
                play.update(resolve(target))
            except AddressError:
                continue  # another host's trouble is its own task's failure
        controller: set[str] = set()
        for address in play:
            try:
                controller.add(facing_address(address))
            except AddressError:
                continue
        return {"addresses": sorted(play), "controller": sorted(controller)}

    def _session(self, session: Session, args: dict, task_vars: dict, components: list[dict]) -> None:
        node_addresses, play_addresses, controller = self._addresses(task_vars, session.run_dir)
        engine_addresses = args["engine_address"] or controller
        open_controller = args["open_firewall"] if args["open_controller_firewall"] is None else args["open_controller_firewall"]
        session.stage("preflight")
        self._fresh_ca_for_a_new_run(session.run_dir)
        engine = engine_mod.attach_or_start(session.run_dir, engine_mod.EngineSettings(
            address=engine_addresses, port=args["engine_port"], tls=True, open_firewall=open_controller,
            advertise=args["controller_address"] or [], firewall_tag=session.tag,
            firewall_sources=play_addresses, run_id=session.tag))
        session.engine = engine  # the ledger's one writer from now on
        token = engine.register_node(session.node)
        # Behind NAT (an AWX pod) the nodes see the controller under another address than its own.
        facing = args["controller_address"] or [facing_address(a) for a in node_addresses]
        node_components = [self._for_node(c) for c in components]
        pulling = args["delivery"] in ("auto", "pull")
        # Pull mode (issue 15): the node calls the engine and needs no inbound port. Its agent has no
        # port to plan over then, so the launcher plans (the same plan code) before it answers.
        launch = {"start": args["agent_start"],
                  "plan": {"components": node_components, "policy": self._policy(args), "redfish": self._redfish(args)} if pulling else None,
                  "engine": [[address, args["engine_port"]] for address in facing] if pulling else None,
                  "pull": {"urls": delivery.engine_urls(engine, facing), "token": token, "fallback": args["delivery"] == "auto"} if pulling else None}
        started = self._start_agent(session, args, task_vars, facing, launch)
        session.checkpoint("the agent started")
        session.stage("inventoried")
        if session.uplink:
            session.keeper.renew = lambda seconds: engine.node_order(session.node, lease=seconds)
            engine.node_order(session.node, lease=args["lease"])
        # Started over stdin, the agent's launcher planned already (the same plan code): no round trip.
        entries = started.get("plan") if isinstance(started.get("plan"), list) else session.client.plan(
            node_components, self._policy(args), redfish=self._redfish(args))
        session.agent_start = started.get("agent_start")
        if session.agent_start == "stdin":
            self._pipeline_from_now_on()
        if started.get("engine_reachable") is False and args["delivery"] == "auto":
            session.engine_unreachable = True
        session.plan = {e["name"]: e for e in plan_mod.apply_site_policy(entries, components, self._site_policy(args))}
        session.components = components
        session.stage("planned")
        todo = self._todo(session, args, components)
        if not todo:
            if session.uplink:
                self._nothing_to_do_through_engine(session, args, engine)
            return
        self._check_space(started, todo)
        session.checkpoint("planning")
        if session.uplink:
            self._through_engine(session, args, engine, todo, node_components)
        else:
            self._deliver(session, args, engine, token, facing, todo)
            self._install(session, args, todo)
        if not self._reboot_if_needed(session, args, task_vars, node_components):
            self._versions_after(session, self._plan_after(session, args, task_vars, node_components))

    def _nothing_to_do_through_engine(self, session: Session, args: dict, engine) -> None:
        """Nothing to install: an empty job tells the agent so, and it tears itself down as after a
        real one, instead of waiting for the cleanup's SSH round trip (a no-op's dearest step, issue 15)."""
        engine.set_job(session.node, pull.job_for([], args["on_failed_dependency"], None))
        waiter = pull.EngineWait(session, engine, args, fallback=args["delivery"] == "auto")
        try:
            status = waiter.until_done()
        except pull.TakeOver:
            return  # it listens on its port now: the cleanup over SSH stops it
        self._note_agent_stopped_itself(session, args, waiter, status)

    @staticmethod
    def _note_agent_stopped_itself(session: Session, args: dict, waiter: pull.EngineWait, status: dict) -> None:
        if waiter.final and status.get("clean"):
            # The agent tore itself down (process, staging, lock; it opened no rule): no round trip.
            session.agent_started = False
            session.agent_gone = True
            session.cleanup.append(f"agent pid {status.get('pid') or '?'} (stopped itself after its job)")
            session.cleanup.append(args["staging_dir"] or f"/var/tmp/fleet-firmware-{session.tag}")

    def _plan_after(self, session: Session, args: dict, task_vars: dict, node_components: list[dict]) -> list[dict]:
        """The versions after the installs: from the agent's final report in pull mode, else asked."""
        if session.after is not None:
            return session.after
        if session.agent_started and not session.uplink:
            return session.client.plan(node_components, dict(self._policy(args), rewrite=True), redfish=self._redfish(args))
        prefer_native_twin(self._connection)
        answer = self._execute_module(module_name="fleet.firmware.inventory", task_vars=task_vars,
                                      module_args=dict(self._policy(args), baseline=node_components, rewrite=True, **self._redfish(args)))
        return answer.get("inventory") or []

    # -- pull mode: the node calls the engine (plugin_utils/deploy/pull.py)

    def _through_engine(self, session: Session, args: dict, engine, todo: list[dict], node_components: list[dict]) -> None:
        """The job goes to the engine, the agent fetches it with its components; we wait on the engine."""
        for component in todo:
            session.checkpoint(f"delivering {component['name']}")
            engine.register_component(component["path"], component["sha256"], node_id=session.node)
        plan_after = {"components": node_components, "policy": dict(self._policy(args), rewrite=True), "redfish": self._redfish(args) or None}
        engine.set_job(session.node, pull.job_for(todo, args["on_failed_dependency"], plan_after))
        session.delivery = "pull"
        waiter = pull.EngineWait(session, engine, args, fallback=args["delivery"] == "auto")
        try:
            status = waiter.until_done(lambda current: self._progress(session, current))
        except pull.TakeOver as over:
            self._take_over(session, args, engine, todo, over.status)
            return
        except engine_mod.EngineError:
            session.checkpoint("installing", in_flight=True)  # the engine went with ansible-playbook
            raise
        session.installed = status.get("components") or []
        if isinstance(status.get("plan_after"), list):
            session.after = status["plan_after"]
        self._note_agent_stopped_itself(session, args, waiter, status)
        if status.get("pull_error") and not session.installed:
            raise DeployError(status["pull_error"])

    def _take_over(self, session: Session, args: dict, engine, todo: list[dict], status: dict) -> None:
        """auto: the node lost the engine and opened its port; from here on as push does."""
        display.warning(f"{session.node}: the node cannot reach the engine ({status.get('pull_error') or 'no uplink'}); "
                        "pushing over the agent's port instead")
        session.uplink = False
        session.keeper.renew = session.client.renew
        session.client.renew(args["lease"])
        if status.get("job") is None:
            delivery.deliver_all(session, delivery.Push(), engine, todo)
            self._install(session, args, todo)
        else:
            seen = max([e.get("seq", 0) for e in status.get("events", [])] or [0])
            session.delivery = "push"
            self._install(session, args, todo, submit=False, seen=seen)

    @staticmethod
    def _fresh_ca_for_a_new_run(run_dir: str) -> None:
        """A tag used again (resume) after its run ended: its CA key is gone, so its certificates go too."""
        with run_lock(run_dir):
            folder = tls.tls_dir(run_dir)
            ended = os.path.exists(os.path.join(folder, "ca.pem")) and not os.path.exists(os.path.join(folder, "ca.key"))
            if ended and engine_mod.attach(run_dir) is None:
                shutil.rmtree(folder)

    def _start_agent(self, session: Session, args: dict, task_vars: dict, facing: list[str], launch: dict | None = None) -> dict:
        agent_args = {"tag": session.tag, "run_dir": session.run_dir, "agent_port": args["agent_port"], "lease": args["lease"],
                      "open_firewall": args["open_firewall"], "firewall_backend": args["firewall_backend"], "controller": facing,
                      "staging_dir": args["staging_dir"]}
        # Set first: a signal while the module runs may come after the agent started on the node,
        # and the cleanup (idempotent) must then stop it rather than write "cleaned" over it.
        session.agent_started = True
        self._launch_extras = launch
        answer = self._sub_action("fleet.firmware.agent", agent_args, task_vars)
        if answer.get("failed"):
            raise DeployError(f"the agent did not start: {answer.get('msg')}")
        session.transfer = answer.get("transfer")
        session.agent_pid = answer.get("pid")
        session.client = agent_client.AgentClient.from_session(agent_client.load_session(session.run_dir, session.node))
        session.keeper = LeaseKeeper(session.client, args["lease"], session.controller)
        session.keeper.start()
        # The agent runs from its staging folder now: the copy in Ansible's temporary folder goes
        # at once (no lease would ever remove it, were this worker killed too).
        self._remove_tmp_path(self._connection._shell.tmpdir)
        session.stage("staged")
        session.stage("started")
        session.uplink = answer.get("inbound", True) is False
        if not session.uplink:
            session.stage("firewall_open")  # pull mode opens nothing on the node
        return answer

    @contextlib.contextmanager
    def _as_connection_user_piped(self):
        """The preflight's probe on the node needs no root (the fleet_update role ran it without
        become): without become, the module can always be piped (one SSH operation; only sudo's
        requiretty forbids pipelining)."""
        become = self._connection.become
        try:
            pipelining = self._connection.get_option("pipelining")
        except (KeyError, AnsibleError):
            pipelining = None
        self._connection.become = None
        if pipelining is not None:
            self._connection.set_option("pipelining", True)
        try:
            yield
        finally:
            self._connection.become = become
            if pipelining is not None:
                self._connection.set_option("pipelining", pipelining)

    @staticmethod
    def _check_space(started: dict, todo: list[dict]) -> None:
        """The launcher said how much room the staging folder has: a delivery that cannot fit fails
        now, in the agent's own words, instead of after a download that fills the disk."""
        free = started.get("free_bytes")
        needed = sum(int(c.get("size") or 0) for c in todo)
        if isinstance(free, int) and needed > free:
            raise DeployError(f"No space left on device in the staging folder {started.get('staged_path')} ({needed} bytes needed for "
                              f"{len(todo)} component(s), {free} bytes free): free some space or choose another staging_dir")

    def _pipeline_from_now_on(self) -> None:
        """The node just took a program on stdin through become: the session's later modules (the
        agent's removal, the re-inventory after a reboot) are piped the same way, one SSH operation
        each instead of mkdir, sftp, chmod, exec and rm."""
        try:
            self._connection.set_option("pipelining", True)
        except (KeyError, AttributeError, AnsibleError):
            pass  # a connection without the option keeps its way

    def _sub_action(self, name: str, args: dict, task_vars: dict) -> dict:
        task = self._task.copy()
        task.args = args
        action = self._shared_loader_obj.action_loader.get(
            name, task=task, connection=self._connection, play_context=self._play_context, loader=self._loader,
            templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        if name == "fleet.firmware.agent" and getattr(self, "_launch_extras", None):
            action.launch_extras = self._launch_extras  # how to start it and what to answer along (deploy/agent only)
        return action.run(task_vars=task_vars)

    def _todo(self, session: Session, args: dict, components: list[dict]) -> list[dict]:
        done_before = self._installed_earlier(session) if args["resume"] else set()
        todo = []
        by_name = {c["name"]: c for c in components}
        # The plan's order (a required intermediate version goes before its target) and its requires.
        for name, entry in session.plan.items():
            component = by_name[name]
            if entry["action"] == "skip":
                continue
            if component["name"] in done_before:
                entry.update(action="skip", reason="resume: installed and verified in an earlier run of this tag")
                continue
            todo.append(dict(self._for_node(component), action=entry["action"], force=args["force"], path=component["path"],
                             requires=entry.get("requires", component.get("requires", []))))
        return todo

    @staticmethod
    def _installed_earlier(session: Session) -> set[str]:
        events = ledger_mod.read_since(session.run_dir, session.node, 0)[0]
        return {e["component"] for e in events if e.get("stage") == "installed" and e.get("component")}

    # -- delivery

    def _deliver(self, session: Session, args: dict, engine, token: str, facing: list[str], todo: list[dict]) -> None:
        """The delivery strategy is chosen once per session (plugin_utils/deploy/delivery.py)."""
        delivery.deliver_all(session, delivery.choose(args, session, engine, token, facing), engine, todo)

    # -- installs

    def _install(self, session: Session, args: dict, todo: list[dict], submit: bool = True, seen: int = 0) -> None:
        job = [{k: v for k, v in c.items() if k != "path"} for c in todo]
        session.checkpoint("delivering")
        if submit:
            session.client.submit(job, args["on_failed_dependency"])
        deadline, last_line = time.monotonic() + args["timeout"], 0.0
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
        display.display(safe_text.printable(", ".join(parts)))  # names and states come from the node

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
        wanted, session.reboot_required = reboot.decide(args["reboot"], session.installed)
        if not wanted:
            return False
        session.reboot_required = False
        node = reboot.NodeReboot(self)
        options = reboot.settings(args, node.os_name, session.node)
        self._stop_agent(session, args, task_vars)
        session.stage("rebooting")
        session.reboot = node.run(options, task_vars).as_result()
        session.rebooted = True
        session.stage("activated")
        prefer_native_twin(self._connection)
        answer = self._execute_module(module_name="fleet.firmware.inventory", task_vars=task_vars,
                                      module_args=dict(self._policy(args), baseline=node_components, rewrite=True, **self._redfish(args)))
        self._versions_after(session, answer.get("inventory") or [])
        return True

    @staticmethod
    def _versions_after(session: Session, entries: list[dict]) -> None:
        """The re-inventory: what the node reports installed now, and, after a reboot, whether each
        installed component is active (reboot.activation_states)."""
        for entry in entries:
            if entry.get("name") in session.plan:
                session.plan[entry["name"]]["after"] = entry.get("installed")
        if not session.rebooted:
            return  # without a reboot, what needs one is not active yet: the check belongs after it
        superseded_by = {c["name"]: c["superseded_by"] for c in session.components or [] if c.get("superseded_by")}
        for name, (state, why) in reboot.activation_states(session.installed, entries, superseded_by).items():
            if name in session.plan:
                session.plan[name].update(activation=state, activation_reason=why)

    # -- cleanup

    def _stop_agent(self, session: Session, args: dict, task_vars: dict) -> None:
        if session.keeper is not None:
            session.keeper.halt.set()
        if not session.agent_started:
            return
        absent = {"tag": session.tag, "run_dir": session.run_dir, "state": "absent", "staging_dir": args["staging_dir"],
                  "firewall_backend": args["firewall_backend"], "open_firewall": args["open_firewall"], "agent_pid": session.agent_pid}
        answer = self._sub_action("fleet.firmware.agent", absent, task_vars)
        if answer.get("failed"):
            raise DeployError(f"removing the agent failed: {answer.get('msg')}")
        session.cleanup.extend(answer.get("removed", []))
        session.agent_started = False

    def _clean(self, session: Session, args: dict, task_vars: dict) -> None:
        """Whatever happened: agent stopped, rules closed, files removed (also Ansible's temporary
        folder, which may hold a copy of the agent), then ``cleaned``: true when it is written."""
        problems = []
        self._end_engine_session(session)
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

    @staticmethod
    def _end_engine_session(session: Session) -> None:
        """The node's engine token stops working and its grants go (issue 18: a token lives as long as its session)."""
        try:
            handle = engine_mod.attach(session.run_dir)
            if handle is not None:
                handle.end_session(session.node)
        except engine_mod.EngineError:
            pass  # no engine (push, check mode) or it stopped: no token left to revoke

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
            components.append(reboot.apply_activation(row, entry))
        return {"changed": any(c["status"] == "installed" for c in components) or session.rebooted, "run_tag": session.tag,
                "ledger": ledger_mod.ledger_path(session.run_dir, session.node), "delivery": session.delivery,
                "transfer": session.transfer, "agent_start": session.agent_start, "reboot_required": session.reboot_required, "rebooted": session.rebooted,
                "components": components, "cleanup": session.cleanup,
                **({"reboot": session.reboot} if getattr(session, "reboot", None) else {})}
