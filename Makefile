# The two commands of the README:
#   make demo   build ferroloop (release) and run a real asyncio program on it, beside asyncio
#   make test   build it and run every test: cargo test, pytest, CPython's asyncio suite (set a)
#   make fuzz   the property-based fuzz of tests/test_fuzz.py at length (make test runs it briefly)
# Everything lives in .venv; the first run creates it and installs maturin, pytest, hypothesis
# and uvloop. CPython's suite runs through tests/compat/ against the interpreter's own
# test.test_asyncio.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-libraries fuzz compat-all compat-baseline build venv pythons test-versions wheels lint bench clean

demo: build
	$(PY) examples/echo_demo.py

test: build
	cargo test --quiet
	$(PY) -m pytest -q
	$(PY) scripts/compat_check.py

# The own test suites of anyio and uvicorn (pinned sdists from PyPI, each in its venv under
# .library-suites/), each run on asyncio's loop and on ferroloop: fails when a test passing on
# asyncio's fails on ferroloop and tests/libraries/known_differences/ does not list it. About
# 5 minutes (scripts/library_suites.py; `-- PYTEST ARGS` there to run a part).
test-libraries: build
	$(PY) scripts/library_suites.py

# CPython's asyncio suite beyond `make test`: both sets on ferroloop (set b tests asyncio's own
# internals and is only reported), and both on asyncio's loop, which must pass all of set (a).
compat-all: build
	$(PY) scripts/compat_check.py --sets ab

compat-baseline: venv
	$(PY) scripts/compat_check.py --loop asyncio:new_event_loop --sets ab

# Every public loop, transport, server and handle method, FUZZ_EXAMPLES random examples each
# (about 15 minutes at 50), on asyncio and ferroloop; failures found are kept in .hypothesis/
# and tried first next time.
FUZZ_EXAMPLES ?= 50
fuzz: build
	FERROLOOP_FUZZ_PROFILE=fuzz FERROLOOP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(PY) -m pytest -q tests/test_fuzz.py

build: venv
	$(VENV)/bin/maturin develop --release --quiet

venv: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt uvloop
	touch $@

# The other CPython versions ferroloop supports, from Debian's packages (scripts/pythons):
# each made once under ~/.cache/ferroloop/pythons, with a venv .venv-3.X holding pip, for
# `.venv-3.X/bin/maturin build -i .venv-3.X/bin/python` once maturin is installed in it.
PYTHONS := 3.13 3.14 3.15

pythons:
	$(PYTHON) scripts/pythons --venv '.venv-{version}' $(PYTHONS)

# Every test of `make test`, on each of PYTHONS: a build for it, pytest, and CPython's own
# test_asyncio of that version (tests/compat/known_failures/3.X.txt). About 5 minutes each.
test-versions:
	$(PYTHON) scripts/test_versions.py $(PYTHONS)

# A manylinux wheel per supported version into dist/, each then installed into a fresh venv
# with no Rust toolchain on the PATH and tried with a small real program.
wheels:
	$(PYTHON) scripts/wheels.py 3.11 $(PYTHONS)

# The benchmark suite (bench/README.md): about 10 minutes; writes bench/results/latest.{md,json,png}.
# `make bench BENCH_ARGS=--quick` for a one-minute smoke run. wrk comes from Debian's packages.
bench: build
	$(VENV)/bin/pip install --quiet -r bench/requirements.txt
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| echo 'wrk is missing: the HTTP rows will say skipped'
	$(PY) -m bench.run $(BENCH_ARGS)

# Rust formatting and clippy, then the native module's typed stub against a fresh build:
# mypy.stubtest checks the signatures it gives and the public names it lacks, and
# scripts/check_stub_members.py the underscore-prefixed members stubtest does not look for.
lint: build $(VENV)/.lint-ready
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(PY) -m mypy.stubtest ferroloop._ferroloop
	$(PY) scripts/check_stub_members.py

$(VENV)/.lint-ready: lint-requirements.txt $(VENV)/.ready
	$(VENV)/bin/pip install --quiet -r lint-requirements.txt
	touch $@

clean:
	rm -rf $(VENV) $(VENV)-3.* target dist .library-suites
