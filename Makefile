# The two commands of the README. Each installs what it needs (apt + .venv) first.
.PHONY: setup nightly test fuzz

setup:
	bash scripts/setup.sh

nightly: setup
	.venv/bin/hil nightly

# Everything, the slow tests too (-m "" lifts pyproject's "not slow"). pytest exits 5 when no test
# ran; make passes that on as a failure. Six workers on two cores: most of the slow tests wait on
# emulated devices (power-button holds, boots, child pytest runs) rather than compute (four kept about
# 1.3 of the 2 cores busy). loadgroup keeps
# each xdist_group (the labgrid lab) on one worker. The 20 slowest phases are printed, so a CI log shows
# where the 15-minute budget goes. Where PYTHONDONTWRITEBYTECODE is set (this kind of machine sets it), every
# process the tests start (emulators, child pytest runs) would compile the harness again: bytecode goes to
# .venv/pycache instead, out of the tree, compiled once.
test: setup
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(CURDIR)/.venv/pycache \
		.venv/bin/python -m pytest -n 6 --dist loadgroup -q -m "" --durations=20

# The decoders of untrusted bytes with a long Hypothesis budget and fresh inputs (tests/test_hostile_input.py).
fuzz: setup
	HIL_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_hostile_input.py
