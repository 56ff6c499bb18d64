# fleet.firmware: build, test and demo.
#
#   make test    install what is missing, then sanity + unit + integration (lab) tests, with coverage
#   make demo    lab up, sample repository, preflight, update_fleet, report, lab down
#   make demo-spp  the same on an imported, signed SPP (tests/lab/spp_gen.py --lab)
#   make help    every target
#
# Everything the tests need is installed from this repository's own files: Debian packages
# from bindep.txt (apt-get), Python packages from requirements*.txt (a venv in build/).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
BUILD := $(CURDIR)/build
VENV := $(BUILD)/venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# The collection as Ansible sees it: build/collections/ansible_collections/fleet/firmware is a
# link to this tree, so playbooks and tests always run the working copy.
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/fleet/firmware
# ansible-test wants a real (not linked) ansible_collections/fleet/firmware folder: a copy of
# the files git knows (tracked, and untracked but not ignored).
# One copy per lab instance (FLEET_LAB_ID), so that parallel runs do not share it.
SANITY_ROOT := $(BUILD)/sanity$(FLEET_LAB_ID)/ansible_collections/fleet/firmware
LAB := $(PY) tests/lab/fleetlab.py
PYTEST_ARGS ?=
SANITY_ARGS ?=

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_DEPRECATION_WARNINGS := 0
export PATH := $(BIN):$(PATH):/usr/sbin:/sbin

.PHONY: help deps apt venv collection sanity galaxy galaxy-venv docs-lint typecheck lint units integration test test-faults fuzz mutation demo demo-spp bench bench-deps bench-apt lab-up lab-down lab-status clean

help:
	@echo "make test         sanity, unit and integration tests with coverage (build/coverage; installs what is missing; needs root for the lab)"
	@echo "make demo         lab up, sample repository, preflight + update_fleet with progress, report, lab down"
	@echo "make demo-spp     the same on a generated, signed SPP plus a hotfix folder imported by fleet.firmware.repository"
	@echo "make sanity       ansible-test sanity only"
	@echo "make galaxy       galaxy-importer (Galaxy's import checks) on the built tarball, offline"
	@echo "make docs-lint    antsibull-docs: the collection's docs as the documentation site renders them"
	@echo "make typecheck    mypy over plugins/ (mypy.ini); not part of make test yet"
	@echo "make lint         ansible-lint (roles, playbooks) and mypy alone; not part of make test"
	@echo "make units        unit tests only"
	@echo "make integration  lab integration tests only"
	@echo "make test-faults  every fault-injection scenario (tests/faults), the slow half and the soak included"
	@echo "make fuzz         coverage-guided fuzzing (atheris) of the Range header, cp*.xml, manifest and version parsers (FUZZ_RUNS each)"
	@echo "make mutation     mutation run (cosmic-ray) over the pure modules with their unit tests; slow, not part of make test"
	@echo "make bench        benchmarks (benchmarks/bench_*.py and benchmarks/fleet.py), ratios against the alternative (make test runs only their --quick smoke)"
	@echo "make bench-deps   what the benchmarks need: Debian packages (nginx, iperf3; no service started) and requirements-bench.txt"
	@echo "make lab-up | lab-status | lab-down   drive the test lab by hand"
	@echo "make deps         install Debian packages (bindep.txt) and the venv (requirements*.txt)"
	@echo "make clean        remove build/ (takes the lab down first)"

deps: venv apt

# The venv first: bindep (a pip package) reads bindep.txt and names the missing Debian packages.
venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt requirements-dev.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# No package may start or enable a host-wide service (the lab runs its own sshd, Samba and firewalld
# inside its nodes): hacking/apt-install.sh installs behind a policy-rc.d that refuses every start
# and disables again the units a postinst enabled (firewalld's here, nginx's and iperf3's for bench-apt).
apt: venv
	@hacking/apt-install.sh $(BIN)/bindep -- firewalld

collection: deps
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	@# --ignore-failed-read: a tracked file deleted in the working tree but not yet staged is skipped.
	@git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(SANITY_ROOT)
	@# A git repo of its own: otherwise ansible-test sees the outer repo, where build/ is ignored.
	@cd $(SANITY_ROOT) && git init -q && git add -A

sanity: collection
	@$(PY) tests/sanity/seed_get_pip.py >/dev/null
	cd $(SANITY_ROOT) && $(BIN)/ansible-test sanity --venv --python 3.11 --color no $(SANITY_ARGS) | grep -v -E '^(WARNING: Location|Looking in|Collecting|Downloading|Installing|Successfully|Processing|  |Attempting|Found existing|Uninstalling|Using cached)'; exit $${PIPESTATUS[0]}

# galaxy-importer, the checks Galaxy and Automation Hub run on an upload, on the tarball that
# `ansible-galaxy collection build` makes. Its own venv (it pins its own ansible-core and
# ansible-lint), its settings in tests/galaxy/galaxy-importer.cfg, and as root a network namespace of
# its own (`unshare --net`: it must need no network). Any WARNING or ERROR fails, except those in
# tests/galaxy/accepted-warnings.txt (each with its reason).
GALAXY_VENV := $(BUILD)/galaxy-venv
GALAXY_OUT := $(BUILD)/galaxy
galaxy-venv: $(GALAXY_VENV)/.stamp
$(GALAXY_VENV)/.stamp: requirements-galaxy.txt
	$(PYTHON) -m venv $(GALAXY_VENV)
	$(GALAXY_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-galaxy.txt
	touch $@

galaxy: collection galaxy-venv
	@rm -rf $(GALAXY_OUT) && mkdir -p $(GALAXY_OUT)
	@$(BIN)/ansible-galaxy collection build --force --output-path $(GALAXY_OUT) . >/dev/null
	@cd $(GALAXY_OUT) && netns=""; [ "$$(id -u)" = 0 ] && netns="unshare --net"; \
	env -u ANSIBLE_COLLECTIONS_PATH PATH=$(GALAXY_VENV)/bin:/usr/bin:/bin GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/galaxy/galaxy-importer.cfg \
		$$netns $(GALAXY_VENV)/bin/python -m galaxy_importer.main fleet-firmware-*.tar.gz >importer.log 2>&1; rc=$$?; \
	grep -v -E '^(Loading|Finding) ' importer.log; \
	sed -E -e 's/[[:space:]]+# .*//' -e '/^#/d' -e '/^$$/d' $(CURDIR)/tests/galaxy/accepted-warnings.txt >accepted.re; \
	unexpected="$$(grep -E '^(WARNING|ERROR)' importer.log | grep -v -x -E -f accepted.re)"; \
	if [ -n "$$unexpected" ]; then echo "*** galaxy-importer: not accepted (tests/galaxy/accepted-warnings.txt):"; echo "$$unexpected"; rc=1; fi; \
	exit $$rc

# The collection's documentation as the Ansible documentation site renders it (antsibull-docs):
# every module, lookup, callback and role, its markup, its references (to this collection and to
# ansible.builtin; a reference to any other collection is an error) and the RST it becomes. Any
# message fails. As root in a network namespace of its own: it must need no network.
docs-lint: collection
	@netns=""; [ "$$(id -u)" = 0 ] && netns="unshare --net"; \
	out="$$($$netns $(BIN)/antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs=dependent \
		--disallow-unknown-collection-refs $(COLLECTION_LINK) 2>&1)"; rc=$$?; \
	if [ -n "$$out" ]; then echo "$$out"; rc=1; fi; \
	[ $$rc = 0 ] && echo "antsibull-docs: every plugin and role renders without a message"; exit $$rc

# mypy over plugins/, as the package its imports name (from build/collections). Not part of
# `make test` yet: plugins/ is being rewritten by several streams at once, and the 81 findings of
# its first run (2026-12) are theirs to settle; this target is where that gate will come from.
typecheck: collection
	cd $(COLLECTIONS) && $(BIN)/mypy --config-file $(CURDIR)/mypy.ini -p ansible_collections.fleet.firmware.plugins

# The linters alone (ansible-lint as tests/integration/test_collection_build.py runs it, and mypy).
lint: collection
	@rc=0; $(BIN)/ansible-lint --offline --profile production --nocolor roles playbooks || rc=1; \
	$(MAKE) --no-print-directory typecheck || rc=1; exit $$rc

units: collection
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The benchmarks' Debian packages (bindep.txt profile "bench": nginx, iperf3), which make test needs for
# the benchmarks' smoke (tests/integration/test_bench_smoke.py). No service may start: the benchmarks run
# their own instances. Debian's nginx starts its service from its postinst through invoke-rc.d or
# deb-systemd-invoke, which both obey policy-rc.d; exit 101 there denies it. Where the host has no
# policy-rc.d (a container usually has one), one is placed for the install only and removed after it;
# under systemd the services installed here are also disabled, so that no boot starts them either.
BENCH_SERVICES := nginx iperf3
bench-apt: venv
	@hacking/apt-install.sh $(BIN)/bindep bench -- $(BENCH_SERVICES)

# Everything the benchmarks need: their Debian packages and their Python packages (matplotlib for
# fleet.py's --plot; make test's smoke draws no plot, so it needs bench-apt only).
bench-deps: bench-apt
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt

# The lab comes down even when a test fails (the pytest session does it, and so does this).
integration: collection bench-apt
	@rc=0; $(BIN)/pytest tests/integration $(PYTEST_ARGS) || rc=$$?; \
	$(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; exit $$rc

# Coverage (docs/testing.md, "Coverage"): coverage.py through pytest-cov, settings in .coveragerc.
# The data goes to build/coverage (one file per process, combined at the end); FLEET_COVERAGE_ROOT
# makes the measured source (plugins/) absolute for the tests' subprocesses, which run elsewhere.
# COVERAGE_FLOOR: the total below which the run fails (measured figure, rounded down, minus a margin).
COVERAGE_DIR := $(BUILD)/coverage
COVERAGE_FLOOR ?= 80
COVERAGE_ENV := FLEET_COVERAGE_ROOT=$(CURDIR) COVERAGE_FILE=$(COVERAGE_DIR)/.coverage
COVERAGE_ARGS = --cov --cov-config=$(CURDIR)/$(1) --cov-report=term --cov-report=html:$(COVERAGE_DIR)/html \
	--cov-report=json:$(COVERAGE_DIR)/coverage.json --cov-fail-under=$(2)

# Sanity first; unit and integration tests run in one pytest session so that its summary line
# is the last line printed (after the coverage table and its total). Any failure makes the target fail.
test: collection bench-apt
	@rc=0; \
	$(MAKE) --no-print-directory sanity || { rc=1; echo "*** ansible-test sanity FAILED (see above)"; }; \
	$(MAKE) --no-print-directory galaxy || { rc=1; echo "*** galaxy-importer FAILED (see above)"; }; \
	$(MAKE) --no-print-directory docs-lint || { rc=1; echo "*** antsibull-docs FAILED (see above)"; }; \
	rm -rf $(COVERAGE_DIR) && mkdir -p $(COVERAGE_DIR); \
	env $(COVERAGE_ENV) $(BIN)/pytest tests/unit tests/integration tests/faults -m "not faults_slow" \
		$(call COVERAGE_ARGS,.coveragerc,$(COVERAGE_FLOOR)) $(PYTEST_ARGS) || rc=1; \
	$(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; \
	exit $$rc

# Every fault scenario: the kill matrix, network, node and input faults, and the soak; then the
# long fuzz runs.
test-faults: collection
	@rc=0; $(BIN)/pytest tests/faults $(PYTEST_ARGS) || rc=$$?; \
	$(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; \
	$(PY) tests/fuzz/campaign.py $(FUZZ_RUNS) || rc=1; exit $$rc

# Coverage-guided fuzzing (atheris) of the parsers of untrusted input, FUZZ_RUNS inputs per
# target (tests/fuzz/targets.py); a finding is kept as build/fuzz/<target>/crash-<sha1>.
FUZZ_RUNS ?= 300000
fuzz: collection
	$(PY) tests/fuzz/campaign.py $(FUZZ_RUNS)

# Mutants of the pure modules (versions, returncodes, ports, the firewall rule builders, the
# report's model), each run against the unit tests only, on a copy of the tree in build/mutation;
# prints the share killed per module (docs/testing.md). Slow: not part of make test.
MUTATION_ARGS ?=
mutation: collection
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-mutation.txt
	$(PY) tests/mutation/run_mutation.py $(MUTATION_ARGS)

# The main job for real: lab up (3 Linux nodes, one IPv6-only, and a Windows-like one), a sample
# repository, fleet.firmware.preflight and fleet.firmware.update_fleet (waves, a canary, progress
# lines), the report (callback fleet.firmware.report) in build/demo/report, lab down (also on failure).
DEMO := $(BUILD)/demo
demo: collection
	@rc=0; rm -rf $(DEMO) && mkdir -p $(DEMO); \
	trap '$(LAB) down >$(DEMO)/lab-down.log 2>&1' EXIT; \
	$(LAB) up --linux 2 --ipv6-only 1 --windows 1 --inventory $(DEMO)/inventory.yml && \
	state_dir="$$(sed -n 's/^ *fleet_lab_state_dir: *"\(.*\)"$$/\1/p' $(DEMO)/inventory.yml)" && \
	$(PY) tests/lab/sample_repo.py $(DEMO)/repository --state-dir "$$state_dir" --pki $(DEMO)/pki && \
	if [ -f plugins/callback/report.py ]; then export ANSIBLE_CALLBACKS_ENABLED=fleet.firmware.report FLEET_REPORT_DIR=$(DEMO)/report; fi && \
	$(BIN)/ansible-playbook -i $(DEMO)/inventory.yml tests/lab/demo.yml \
		-e fleet_repository=$(DEMO)/repository -e fleet_trust=$(DEMO)/pki/anchors -e fleet_hosts=linux \
		-e demo_report_dir=$(DEMO)/report || rc=$$?; \
	if [ -f $(DEMO)/report/report.html ]; then echo "report: $(DEMO)/report/report.html"; \
	else echo "report: none written (plugins/callback/report.py missing or failed)"; fi; \
	$(LAB) down || rc=1; trap - EXIT; \
	exit $$rc

# The same on an imported SPP (issue 14): a generated, signed SPP plus a hotfix folder
# (tests/lab/spp_gen.py --lab: Smart Components that run on the nodes), imported by
# fleet.firmware.repository (tests/lab/demo_spp_import.yml, signatures required), then preflight +
# update_fleet on lab nodes of three ROM families; report in build/demo-spp/report, lab down.
DEMO_SPP := $(BUILD)/demo-spp
DEMO_SPP_HARDWARE := --hardware lin01=dl380-gen10 --hardware v6n01=dl360-gen10 --hardware lin02=dl385-gen10
demo-spp: collection
	@rc=0; rm -rf $(DEMO_SPP) && mkdir -p $(DEMO_SPP)/repository; \
	trap '$(LAB) down >$(DEMO_SPP)/lab-down.log 2>&1' EXIT; \
	$(LAB) up --linux 2 --ipv6-only 1 --windows 1 $(DEMO_SPP_HARDWARE) --inventory $(DEMO_SPP)/inventory.yml && \
	state_dir="$$(sed -n 's/^ *fleet_lab_state_dir: *"\(.*\)"$$/\1/p' $(DEMO_SPP)/inventory.yml)" && \
	$(PY) tests/lab/spp_gen.py $(DEMO_SPP)/spp --lab --hotfix $(DEMO_SPP)/hotfix --state-dir "$$state_dir" --pki $(DEMO_SPP)/pki && \
	$(BIN)/ansible-playbook tests/lab/demo_spp_import.yml -e demo_spp=$(DEMO_SPP)/spp -e demo_hotfix=$(DEMO_SPP)/hotfix \
		-e demo_repository=$(DEMO_SPP)/repository -e fleet_trust=$(DEMO_SPP)/pki/anchors && \
	if [ -f plugins/callback/report.py ]; then export ANSIBLE_CALLBACKS_ENABLED=fleet.firmware.report FLEET_REPORT_DIR=$(DEMO_SPP)/report; fi && \
	$(BIN)/ansible-playbook -i $(DEMO_SPP)/inventory.yml tests/lab/demo.yml \
		-e fleet_repository=$(DEMO_SPP)/repository -e fleet_trust=$(DEMO_SPP)/pki/anchors -e fleet_hosts=linux \
		-e demo_report_dir=$(DEMO_SPP)/report || rc=$$?; \
	if [ -f $(DEMO_SPP)/report/report.html ]; then echo "report: $(DEMO_SPP)/report/report.html"; \
	else echo "report: none written (plugins/callback/report.py missing or failed)"; fi; \
	$(LAB) down || rc=1; trap - EXIT; \
	exit $$rc

# Benchmarks are never timed assertions: each prints its measurements side by side.
# benchmarks/fleet.py (update_fleet against a naive playbook on 10, 25 and 50 nodes) runs last; BENCH_FLEET_ARGS
# passes options to it (e.g. BENCH_FLEET_ARGS="--write-doc docs/performance.md --plot docs/images/fleet-scaling.png").
BENCH_FLEET_ARGS ?=
bench: collection bench-deps
	@rc=0; for bench in benchmarks/bench_*.py benchmarks/fleet.py; do \
		[ -e "$$bench" ] || continue; \
		args=""; [ "$$bench" = benchmarks/fleet.py ] && args="$(BENCH_FLEET_ARGS)"; \
		echo "== $$bench"; $(PY) $$bench $$args || rc=1; \
	done; $(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; exit $$rc

lab-up: collection
	$(LAB) up --inventory $(BUILD)/lab/inventory.yml

lab-status: venv
	$(LAB) status

lab-down: venv
	$(LAB) down

clean:
	-@test -x $(PY) && $(LAB) down
	rm -rf $(BUILD)
