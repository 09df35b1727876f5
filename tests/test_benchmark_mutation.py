"""The mutation benchmark's own rules: a module's sample is the same for the same seed whatever else runs,
a ``--functions`` sample holds only mutants of those functions, every equivalent-mutant judgement still names a mutant of today's source, and a run that outlives its
timeout takes its whole process group (the emulated Prime it started) with it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import mutation  # noqa: E402

from hil.yamlfile import load_yaml_model  # noqa: E402


def test_a_modules_sample_repeats_for_its_seed():
    first = mutation.sample("broker", 5, seed=3)
    assert [m.key for m in first] == [m.key for m in mutation.sample("broker", 5, seed=3)]
    assert len(first) == 5 and len({m.key for m in first}) == 5
    assert {m.key for m in mutation.sample("broker", 0, seed=3)} == {m.key for m in mutation.mutants("broker")}


def test_a_function_filter_samples_only_inside_those_functions():
    policy = mutation.sample("bootloader", 0, seed=3, functions=("boot", "AntiRollback"))
    assert policy and all(m.key.split(": ")[0] in ("boot", "AntiRollback.value", "AntiRollback.raise_to")
                          for m in policy)
    assert len(policy) < len(mutation.mutants("bootloader"))  # the drawing code is left out
    assert not mutation.sample("bootloader", 0, seed=3, functions=("boo",))  # a name, not a prefix


def test_every_equivalent_judgement_names_a_mutant_of_todays_source():
    judged = load_yaml_model(mutation.EQUIVALENT, mutation.Equivalents).equivalent
    for module, keys in judged.items():
        stale = set(keys) - {m.key for m in mutation.mutants(module)}
        assert not stale, f"{module}: judged mutants that no longer exist (judge them again): {sorted(stale)}"


def test_a_timed_out_run_ends_its_process_group():
    proc = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = int(proc.stdout.readline())
    mutation._kill_group(proc)
    assert proc.poll() is not None
    deadline = time.monotonic() + 10  # SIGKILL is delivered at once; the deadline only bounds a broken kill
    while _alive(child):
        assert time.monotonic() < deadline, f"the run's child {child} outlived the timeout"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
