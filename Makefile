# fleet.firmware: build, test and demo.
#
#   make test    install what is missing, then sanity + unit + integration (lab) tests
#   make demo    lab up, sample repository, preflight, update_fleet, report, lab down
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

.PHONY: help deps apt venv collection sanity units integration test test-faults mutation demo bench lab-up lab-down lab-status clean

help:
	@echo "make test         sanity, unit and integration tests (installs what is missing; needs root for the lab)"
	@echo "make demo         lab up, sample repository, preflight + update_fleet with progress, report, lab down"
	@echo "make sanity       ansible-test sanity only"
	@echo "make units        unit tests only"
	@echo "make integration  lab integration tests only"
	@echo "make test-faults  every fault-injection scenario (tests/faults), the slow half and the soak included"
	@echo "make mutation     mutation run (cosmic-ray) over the pure modules with their unit tests; slow, not part of make test"
	@echo "make bench        benchmarks (benchmarks/bench_*.py and benchmarks/fleet.py), ratios against the alternative; not part of make test"
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

apt: venv
	@missing="$$($(BIN)/bindep -b 2>/dev/null | tr '\n' ' ')"; \
	if [ -n "$${missing// }" ]; then \
		echo "apt-get install: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

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

units: collection
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The lab comes down even when a test fails (the pytest session does it, and so does this).
integration: collection
	@rc=0; $(BIN)/pytest tests/integration $(PYTEST_ARGS) || rc=$$?; \
	$(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; exit $$rc

# Sanity first; unit and integration tests run in one pytest session so that its summary line
# is the last line printed. Any failure makes the target fail.
test: collection
	@rc=0; \
	$(MAKE) --no-print-directory sanity || { rc=1; echo "*** ansible-test sanity FAILED (see above)"; }; \
	$(BIN)/pytest tests/unit tests/integration tests/faults -m "not faults_slow" $(PYTEST_ARGS) || rc=1; \
	$(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; \
	exit $$rc

# Every fault scenario: the kill matrix, network, node and input faults, and the soak.
test-faults: collection
	@rc=0; $(BIN)/pytest tests/faults $(PYTEST_ARGS) || rc=$$?; \
	$(LAB) down >$(BUILD)/lab-down.log 2>&1 || true; exit $$rc

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
	$(PY) tests/lab/sample_repo.py $(DEMO)/repository --state-dir "$$state_dir" && \
	if [ -f plugins/callback/report.py ]; then export ANSIBLE_CALLBACKS_ENABLED=fleet.firmware.report FLEET_REPORT_DIR=$(DEMO)/report; fi && \
	$(BIN)/ansible-playbook -i $(DEMO)/inventory.yml tests/lab/demo.yml \
		-e fleet_repository=$(DEMO)/repository -e fleet_hosts=linux -e demo_report_dir=$(DEMO)/report || rc=$$?; \
	if [ -f $(DEMO)/report/report.html ]; then echo "report: $(DEMO)/report/report.html"; \
	else echo "report: none written (plugins/callback/report.py missing or failed)"; fi; \
	$(LAB) down || rc=1; trap - EXIT; \
	exit $$rc

# Benchmarks are never timed assertions: each prints its measurements side by side.
# benchmarks/fleet.py (update_fleet against a naive playbook on 10, 25 and 50 nodes) runs last; BENCH_FLEET_ARGS
# passes options to it (e.g. BENCH_FLEET_ARGS="--write-doc docs/performance.md --plot docs/images/fleet-scaling.png").
BENCH_FLEET_ARGS ?=
bench: collection
	@# The bench profile of bindep.txt (nginx for the engine comparison, iperf3 for the fleet floor) only for benchmarks.
	@missing="$$($(BIN)/bindep -b bench 2>/dev/null | tr '\n' ' ')"; \
	if [ -n "$${missing// }" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	@# Python packages of the benchmarks only (matplotlib for the fleet plot), into the same venv.
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
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
