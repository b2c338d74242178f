# The two commands a newcomer needs:
#   make demo   - set everything up, build the shim and the samples, run vecadd under the shim
#   make test   - set everything up and run the whole test suite
# Everything lands in .venv/ and build/; `make clean` removes both.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
AISHIM := $(VENV)/bin/aishim
STAMP  := $(VENV)/.installed
BUILD  := $(CURDIR)/build
SHIM   := $(BUILD)/lib/libaicard_preload.so

.PHONY: all demo test fuzz bench clean shim umd

all: shim umd

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

shim: $(SHIM)

$(SHIM): $(STAMP) interposer/preload.c interposer/preload.h interposer/usercopy.h interposer/build.py
	$(VPY) -m interposer.build --out $(BUILD)/lib

ASM_DEPS := $(CURDIR)/pydriver/asm.py $(CURDIR)/structs/isa.py $(CURDIR)/structs/module.py

umd: $(STAMP)
	$(MAKE) --no-print-directory -C umd BUILD=$(BUILD)/umd AS="$(CURDIR)/$(AISHIM) as" AS_DEPS="$(ASM_DEPS)"

demo: all
	@echo "== the simulated devices"
	$(AISHIM) info
	@echo "== vecadd under the shim (-v: every ioctl it makes, decoded)"
	$(AISHIM) run -v -- $(BUILD)/umd/bin/vecadd

test: all
	$(VPY) -m pytest -q

bench: all
	$(AISHIM) bench

# The long fuzz run (a short seeded one is part of `make test`).
# The default, 12000 examples, is a little over 100k ioctls (about 90 s).
FUZZ_EXAMPLES ?= 12000
fuzz: all
	LD_PRELOAD=$(SHIM) AICARD_KERNELS=$(BUILD)/umd/kernels AISHIM_WATCHDOG=0.2 AISHIM_LOG=error \
		$(VPY) tests/fuzz_ioctls.py --examples $(FUZZ_EXAMPLES)

clean:
	rm -rf $(VENV) build
