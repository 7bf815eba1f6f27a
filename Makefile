# The two commands of the README: `make demo` and `make test`. Both set up everything they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SITE ?= example
PYTEST_ARGS ?=

# Installed without recommends; provisioner/controller/needs.py names what each package is for, and
# tests/unit/controller/test_install_closure.py proves a machine with nothing installed gets every program the code runs.
APT_PACKAGES := lxc debootstrap nftables iproute2 openssh-client systemd-journal-remote python3-venv python3-dev gcc make git
# `provision watch` where systemd does not run: cron runs the verification tick (the daemon must be started)
APT_PACKAGES += cron
# the libvirt/KVM backend: daemons started by hand (python -m provisioner.backends.libvirt.daemons), never as services
APT_PACKAGES += libvirt-daemon libvirt-daemon-driver-qemu libvirt-dev pkg-config \
	qemu-system-x86 qemu-utils openvswitch-switch genisoimage e2fsprogs
# the evidence pack and the web checks: headless Chromium, graphviz diagrams, PDF (weasyprint needs pango)
APT_PACKAGES += chromium graphviz poppler-utils fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0

.PHONY: apt-packages setup apt venv peer-venv doctor image images demo demo-release test lint unit role-docs clean-lab help libvirt-up libvirt-down
.DEFAULT_GOAL := help

help:
	@echo "make demo   - set up this Debian 12 machine, build the example lab, verify it, write the evidence pack"
	@echo "make test   - set up and run the whole test suite"
	@echo "make unit   - the tests that need no lab (about a minute)"
	@echo "make lint   - ruff and ansible-lint"
	@echo "make role-docs - render each role README's Role Variables table from its argument spec"

setup: apt venv

# apt: installs only what is missing, so a second run does not touch the network.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# the pinned Ansible collections (collections/requirements.yml) into the virtualenv, out of the PyPI `ansible` wheel;
# nothing is downloaded when they are installed already
venv: $(VENV)/.installed
	@$(BIN)/python -m provisioner.controller.collection_pins
	@$(BIN)/python -m compileall -q provisioner plugins >/dev/null  # the editable install's bytecode, as pip writes it for the rest

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,lxc,proxmox,libvirt]'
	touch $@

# what this machine lacks for every backend and the test suite, with the command that fixes it
doctor: venv
	$(BIN)/provision doctor --backend all --suite

# the demo needs only the LXC base; the test suite also boots libvirt guests
image: venv
	$(BIN)/provision image build --backend lxc

images: venv
	$(BIN)/provision image build --backend all

demo: setup
	$(BIN)/provision doctor $(SITE)
	$(BIN)/provision image build --backend lxc
	$(BIN)/provision validate $(SITE)
	$(BIN)/provision plan $(SITE)
	$(BIN)/provision apply $(SITE)
	$(BIN)/provision status $(SITE)
	$(BIN)/provision data seed $(SITE) --env dev
	$(MAKE) --no-print-directory demo-release
	$(BIN)/provision verify $(SITE)
	$(BIN)/provision report $(SITE)
	@echo "run artifacts: $$(ls -d $(CURDIR)/.provision/$(SITE)/runs/*-apply-* | tail -n 1)"
	@echo "conformance results: $$(ls -d $(CURDIR)/.provision/$(SITE)/runs/*-verify-* | tail -n 1)"
	@echo "evidence pack: $$(ls -d $(CURDIR)/.provision/$(SITE)/evidence/reports/* | tail -n 1)"

# The example shop's first release along the path to live (once: later demos find r1 and leave it be).
DEMO_RELEASE := .provision/$(SITE)-release.tar.gz
demo-release: venv
	@if $(BIN)/provision release show r1 --site $(SITE) >/dev/null 2>&1; then \
		echo "release r1 is already recorded: $(BIN)/provision release log --site $(SITE)"; \
	else \
		set -e; mkdir -p .provision; \
		tar -czf $(DEMO_RELEASE) -C inventories/$(SITE)/release VERSION index.html; \
		$(BIN)/provision release create --site $(SITE) --artifact $(DEMO_RELEASE) --as alice \
			--sign-key inventories/$(SITE)/demo-keys/alice; \
		$(BIN)/provision release deploy r1 --site $(SITE) --env dev --as dave; \
		$(BIN)/provision release deploy r1 --site $(SITE) --env test --as dave; \
		$(BIN)/provision verify $(SITE); \
		$(BIN)/provision release approve r1 --site $(SITE) --as erin --sign-key inventories/$(SITE)/demo-keys/erin; \
		$(BIN)/provision release deploy r1 --site $(SITE) --env prod --as dave; \
		$(BIN)/provision release log --site $(SITE); \
	fi

# Two workers: the shared LXC lab and the labs that use it run on one, in order (tests/lab/conftest.py groups
# them); the labs with names and networks of their own (libvirt, whose TCG guests keep one core busy, the Proxmox
# fake, make demo) and the in-process tests run on the other. A timing summary per test file ends the run. ruff
# and ansible-lint run inside the suite (tests/unit/test_lint.py).
test: setup peer-venv
	$(BIN)/provision doctor --backend all --suite
	$(BIN)/provision image build --backend all
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# everything that needs no lab, in parallel: a quick check while working
unit: venv
	$(BIN)/pytest -m "not lab and not contract and not peer" -n 2 --dist loadfile $(PYTEST_ARGS)

# the peer-client test's own virtualenv (the community Proxmox modules), made once and cached by its pins
peer-venv: venv
	$(BIN)/python tests/support/peer_venv.py

lint: venv
	$(BIN)/ruff check provisioner tests bench tools plugins
	$(BIN)/ansible-lint --profile production playbooks roles

# each role README's "Role Variables" table, rendered from its meta/argument_specs.yml
# (tests/unit/roles/test_role_docs.py fails while a README is out of date)
role-docs: venv
	$(BIN)/python tools/role_variables.py

clean-lab: venv
	$(BIN)/provision destroy $(SITE) --confirm-prod $(SITE)

# libvirtd, virtlogd and Open vSwitch started by hand (no systemd); `down` stops only what `up` started
libvirt-up: venv
	$(BIN)/python -m provisioner.backends.libvirt.daemons start

libvirt-down: venv
	$(BIN)/python -m provisioner.backends.libvirt.daemons stop

# the apt line, for the install-closure test
apt-packages:
	@echo $(APT_PACKAGES)
