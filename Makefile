# Vehicle terminal firmware: host set-up, simulation, tests and device deployment
#
#   make sim                 run the firmware on this PC (default scenario, embedded broker)
#   make sim BROKER=host:port SCENARIO=file DURATION=s
#   make test                unit tests under the unix port, then end-to-end tests (needs mosquitto)
#   make deploy PORT=/dev/ttyUSB0   compile with mpy-cross and copy to a board with mpremote
#   make bench               hot-path speed and memory table (unix port)

VENV ?= .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.installed-requirements
BUILD := build

.PHONY: venv sim test test-unit test-e2e deploy bench clean

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(STAMP)

sim: $(STAMP)
	$(PY) tools/vterm.py run $(if $(BROKER),--broker $(BROKER)) $(if $(SCENARIO),--scenario $(SCENARIO)) \
		$(if $(DURATION),--duration $(DURATION)) $(ARGS)

# All unit tests share one interpreter; the flash stand-ins need 256 KiB in one
# piece, which the port's default 2 MiB heap may no longer have by the end.
test-unit: $(STAMP)
	$(MP) -X heapsize=8M tests/mp_runner.py

test-e2e: $(STAMP)
	bash tools/ensure_mosquitto.sh
	$(PY) -m pytest -q -n 2 --dist loadfile tests/e2e

# Both parts always run; the target fails when either failed.
test: $(STAMP)
	@rc=0; $(MAKE) --no-print-directory test-unit || rc=1; \
	$(MAKE) --no-print-directory test-e2e || rc=1; exit $$rc

deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "make deploy: set PORT, e.g. make deploy PORT=/dev/ttyUSB0" >&2; exit 1; }
	$(PY) tools/vterm.py build --out $(BUILD)/device
	$(VENV)/bin/mpremote connect $(PORT) exec "import os; [os.mkdir(d) for d in ('firmware', 'drivers') if d not in os.listdir('/')]"
	$(VENV)/bin/mpremote connect $(PORT) fs cp $(BUILD)/device/firmware/*.mpy :firmware/ + \
		fs cp $(BUILD)/device/drivers/*.mpy :drivers/ + fs cp boot.py main.py : + reset

clean:
	rm -rf $(BUILD) .pytest_cache

# Speed and memory of the hot paths under the unix port (numbers, not pass/fail).
bench: $(STAMP)
	$(PY) tools/bench.py
