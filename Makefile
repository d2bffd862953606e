# eegpi developer commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
GRPC   ?= 127.0.0.1:50051
WS     ?= 127.0.0.1:9001

.PHONY: run test lint typecheck unit bench bench-host proto clean system-deps test-deploy bytecode

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "eegpi needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Editable install with dev tools; re-run when the project metadata or the protos change.
$(VENV)/.installed: $(PY) pyproject.toml hatch_build.py $(wildcard proto/eegpi/v1/*.proto)
	$(PY) -m pip install --quiet -e '.[dev]'
	@# the native acquisition reader, for this machine (device.reader: native; docs/hardware.md)
	@$(VENV)/bin/eegpi build-native --if-stale || echo "(device.reader: native is unavailable until \`eegpi build-native\` succeeds)"
	@touch $@

# ansible-core and ansible-lint (the `deploy` extra): only `make test-deploy` needs them.
$(VENV)/.installed-deploy: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,deploy]'
	@touch $@

proto: $(VENV)/.installed
	$(PY) hatch_build.py

# Bytecode for the editable tree, written even where PYTHONDONTWRITEBYTECODE is set (as on CI
# machines): every daemon, CLI and acquisition process the tests and `make run` start would
# otherwise compile eegpi again, a quarter of a second each. Up-to-date files are skipped.
bytecode: $(VENV)/.installed
	@$(PY) -m compileall -q eegpi bench > /dev/null || echo "(no bytecode written: every process compiles eegpi itself)"

run: $(VENV)/.installed bytecode
	@echo "eegpi on the emulated ADS1299:"
	@echo "  viewer     http://$(WS)/"
	@echo "  websocket  ws://$(WS)/ws/data"
	@echo "  gRPC       $(GRPC)   (try: $(VENV)/bin/grpcurl -plaintext $(GRPC) list)"
	$(VENV)/bin/eegpi serve --mock --autostart default --grpc $(GRPC) --ws $(WS) --pipelines pipelines

system-deps:
	@scripts/install-system-deps.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check eegpi tests bench scripts hatch_build.py
	$(VENV)/bin/ruff format --check eegpi tests bench scripts hatch_build.py

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

unit: $(VENV)/.installed bytecode
	$(VENV)/bin/pytest

test: $(VENV)/.installed system-deps lint typecheck unit

# The Ansible content, then the playbook on a real systemd host (a bookworm container booted
# with systemd-nspawn; needs root; the image is cached in ~/.cache/eegpi-ci). docs/deployment.md
test-deploy: $(VENV)/.installed-deploy bytecode
	@scripts/install-system-deps.sh --deploy
	cd ansible && PATH="$(abspath $(VENV))/bin:$$PATH" ansible-lint --profile production --strict
	cd ansible && ../$(VENV)/bin/ansible-playbook -i inventory/example --syntax-check site.yml
	cd ansible && ../$(VENV)/bin/ansible-playbook -i inventory/single-pi.yml --syntax-check site.yml
	$(VENV)/bin/pytest -m deploy tests/deploy -p no:cacheprovider

# Figures and ratios against their targets, a few minutes (bench/__main__.py). The published
# table: make bench BENCH_ARGS="--full --write docs/performance.md" (docs/performance.md)
bench: $(VENV)/.installed bytecode
	$(PY) -m bench $(BENCH_ARGS)

# Real-time checks whose outcome depends on how promptly this host schedules the reader (the
# RPi.GPIO fallback's labels under load): run on a quiet host or a Pi, not in CI.
bench-host: $(VENV)/.installed
	$(VENV)/bin/pytest -m host_timing tests -p no:cacheprovider

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	rm -f eegpi/v1/*_pb2*.py eegpi/v1/*_pb2.pyi eegpi/v1/*.protoset
