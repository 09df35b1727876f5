"""Mutation score of the security suites over the emulator's security model: how many small, general
regressions of the model (not our seeded list) the suites catch.

An AST-operator runner: each mutant changes one node of one module (a comparison flipped, ``and``/``or``
swapped, a ``not`` dropped, an integer constant moved by one, a returned boolean inverted). It is written
into a private copy of the repository, and the suites that exercise that module run against an emulated
Prime built from the copy, a development build and then, if it passed there, a production one
(``-x``: the first red test kills it; a run stopped by a broken test runs again to the end, where a later check
may still fail). A run that ends broken (infrastructure) is counted apart, never
as killed; a run that outlives ``--timeout`` (a mutant that hangs the device) is ended with its whole process
group and counted as killed by timeout, shown apart. Mutants a person judged equivalent
(``mutation_equivalent.yaml``, one line of reason each) are left out of the score, which is killed /
non-equivalent mutants run. Each mutant is listed as it ends, with its line and key and the test that killed
it: a survivor is for a person to judge (equivalent) or to write the missing check for.
``--max-mutants N --seed S`` samples N mutants of each module, the same ones for the same seed and module
source whatever other modules run; ``--functions`` keeps a module's policy code only (its pages and layout
left out); ``--keys`` runs exactly the mutants named (a sample's survivors again, once a check is added).

    .venv/bin/python benchmarks/mutation.py --modules broker --max-mutants 8 --seed 1 [--timeout 300]
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import field_validator

from hil.lab.nightly import UNUSED_PLUGINS
from hil.yamlfile import Strict, load_yaml_model

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = Path(__file__).resolve().with_name("mutation_equivalent.yaml")
SEC = "suites/security/"
# module of hil/emulator -> the suites that exercise it (the lanes a regression there shows in)
MODULES = {
    "kernel": [SEC + "test_isolation.py", SEC + "test_permissions.py", SEC + "test_trusted_display.py"],  # + withdrawals
    "broker": [SEC + "test_permissions.py", SEC + "test_trusted_display.py"],
    "app_manager": [SEC + "test_permissions.py", SEC + "test_secure_element.py"],
    "fs": [SEC + "test_isolation.py"],
    "secure_element": [SEC + "test_secure_element.py"],
    "debug": [SEC + "test_lockdown.py", SEC + "test_trusted_display.py", SEC + "test_permissions.py"],  # + sideloads
    "bootloader": [SEC + "test_firmware.py"],
    "ctap2": [SEC + "test_fido.py"],
    "ui": [SEC + "test_trusted_display.py", SEC + "test_permissions.py",  # the Alerts role's prompts
           SEC + "test_lockdown.py"],  # + a tap with no prompt up reaching the app (Settings' Developer Mode toggle)
}
FLAVOURS = ("development", "production")  # the emulated builds each mutant runs on, until one kills it
FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
        ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # the index-th mutable site of the module, in ast.walk order
    line: int
    what: str
    key: str  # "function: operator: source", stable while the code it mutates is unchanged (#n if repeated)


class Equivalents(Strict):
    """``mutation_equivalent.yaml``: module -> mutant key -> why no claim of the catalogue can tell it apart."""

    equivalent: dict[str, dict[str, str]]

    @field_validator("equivalent")
    @classmethod
    def _reasoned(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for module, keys in value.items():
            if module not in MODULES:
                raise ValueError(f"{module!r} is not a mutated module ({', '.join(MODULES)})")
            for key, reason in keys.items():
                if not reason.strip():
                    raise ValueError(f"{module}: {key!r} gives no reason")
        return value


def _defect_only(node: ast.AST) -> bool:
    """An expression that is false on a build without seeded defects: ``defects.has(X)`` (or the module's
    ``_defect(X)``), an ``and`` with such an operand, an ``or`` of nothing else."""
    if isinstance(node, ast.Call):
        return "defects.has" in ast.unparse(node.func) or ast.unparse(node.func).endswith("_defect")
    if isinstance(node, ast.BoolOp):
        return (any if isinstance(node.op, ast.And) else all)(_defect_only(v) for v in node.values)
    return False


def _seeded(tree: ast.AST) -> set[int]:
    """Nodes that only a build with a seeded defect evaluates or can be changed by: a defect-only expression,
    and the body of an ``if`` (or ``x if … else``) on one. Their mutants are equivalent on the good build and
    are left out; the real check beside a defect switch (``a < b and not defects.has(X)``) is mutated."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.IfExp)) and _defect_only(node.test):
            for part in [node.test, *(node.body if isinstance(node.body, list) else [node.body])]:
                out.update(id(n) for n in ast.walk(part))
        elif isinstance(node, ast.expr) and _defect_only(node):
            out.update(id(n) for n in ast.walk(node))
    return out


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every node an operator applies to (outside seeded-defect code), with what it does to it."""
    out = []
    seeded = _seeded(tree)
    for node in ast.walk(tree):
        if id(node) in seeded:
            continue
        if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIP:
            out.append((node, f"{type(node.ops[0]).__name__} -> {FLIP[type(node.ops[0])].__name__}"))
        elif isinstance(node, ast.BoolOp):
            out.append((node, "and <-> or"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((node, "drop not"))
        elif isinstance(node, ast.Constant) and type(node.value) is int and not isinstance(node.value, bool):
            out.append((node, f"{node.value} -> {node.value + 1}"))
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and type(node.value.value) is bool:
            out.append((node, f"return {node.value.value} -> {not node.value.value}"))
    return out


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST):
        self.target = target

    def visit(self, node):
        if node is not self.target:
            return self.generic_visit(node)
        if isinstance(node, ast.Compare):
            node.ops[0] = FLIP[type(node.ops[0])]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            node.value += 1
        elif isinstance(node, ast.Return):
            node.value.value = not node.value.value
        return node


def _scopes(tree: ast.AST) -> dict[int, tuple[str, ast.AST]]:
    """id(node) -> the qualified name of the function or class it sits in ("" at module level), and its parent."""
    out: dict[int, tuple[str, ast.AST]] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            out[id(child)] = (inner, node)
            visit(child, inner)

    visit(tree, "")
    return out


def _source(node: ast.AST, parent: ast.AST | None) -> str:
    """The mutated code as the key shows it: a bare number with the expression around it (70 characters)."""
    text = ast.unparse(parent if isinstance(node, ast.Constant) and isinstance(parent, ast.expr) else node)
    return text if len(text) <= 70 else text[:69] + "…"


def _within(key: str, functions: tuple[str, ...]) -> bool:
    """Whether a mutant's function (its key's first part) is one of ``functions`` or sits inside one."""
    scope = key.split(": ", 1)[0]
    return not functions or any(scope == f or scope.startswith(f + ".") for f in functions)


def mutants(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / "hil" / "emulator" / f"{module}.py").read_text())
    scopes, seen, out = _scopes(tree), {}, []
    for i, (node, what) in enumerate(_sites(tree)):
        scope, parent = scopes.get(id(node), ("", None))
        key = f"{scope}: {what}: {_source(node, parent)}"
        seen[key] = seen.get(key, 0) + 1
        out.append(Mutant(module, i, getattr(node, "lineno", 0), what,
                          key if seen[key] == 1 else f"{key} #{seen[key]}"))
    return out


def sample(module: str, count: int, seed: int, functions: tuple[str, ...] = ()) -> list[Mutant]:
    """``count`` mutants of the module (all when 0), drawn by a generator seeded with the seed and the module
    name, so a module's sample does not depend on which other modules run before it; only those inside
    ``functions`` when given (a module's policy code, not the pages it draws)."""
    todo = [m for m in mutants(module) if _within(m.key, functions)]
    if count:
        todo = sorted(random.Random(f"{seed}:{module}").sample(todo, min(count, len(todo))), key=lambda m: m.index)
    return todo


def mutated_source(m: Mutant) -> str:
    tree = ast.parse((ROOT / "hil" / "emulator" / f"{m.module}.py").read_text())
    node, _ = _sites(tree)[m.index]
    return ast.unparse(ast.fix_missing_locations(_Apply(node).visit(tree)))


def _kill_group(proc: subprocess.Popen) -> None:
    """The pytest run and the emulated Prime it started share one process group: end them all (SIGTERM lets
    the run stop its emulator; SIGKILL then takes whatever is left)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _suites(copy: Path, module: str, timeout: float, *options: str) -> tuple[str, str]:
    """One run of the module's suites against the copy: killed | survived | broken | timeout, and the test that
    decided it (with the plugin's one-line reason for a broken one)."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *UNUSED_PLUGINS, "-q", "-rfE", "--device=emulator",
           *options, *MODULES[module]]
    proc = subprocess.Popen(cmd, cwd=copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"still running after {timeout:g} s"
    finally:
        _kill_group(proc)
    broken = re.findall(r"^BROKEN (\S+.*)$", out, re.MULTILINE)
    failed = sorted(set(re.findall(r"^FAILED (\S+)", out, re.MULTILINE)) - {b.split()[0] for b in broken})
    if proc.returncode == 0:
        return "survived", ""
    if failed:
        return "killed", failed[0]
    return "broken", (broken or out.strip().splitlines()[-1:] or ["no output"])[0][:200]


def _judged(copy: Path, module: str, timeout: float, flavour: str, *extra: str) -> tuple[str, str]:
    """The module's suites on one build flavour, stopping at the first red test; a run that stops on a broken
    test is run again to the end, since a check after it may still judge the mutant (a probe that no longer
    launches breaks the probe's checks, and fails the launch checks)."""
    options = ("--emulator-flavour", flavour, *extra)
    outcome = _suites(copy, module, timeout, "-x", *options)
    if outcome[0] == "broken":
        again = _suites(copy, module, timeout, *options)
        outcome = again if again[0] == "killed" else outcome  # a full run of broken checks may well time out
    return outcome


def run(m: Mutant, copy: Path, timeout: float, *extra: str) -> tuple[str, str]:
    """The mutant against its suites on each build flavour in turn (production-only checks, such as the
    lockdown of the debug link, run only there), until one does not pass: a survivor passed on every one."""
    target = copy / "hil" / "emulator" / f"{m.module}.py"
    original = target.read_text()
    target.write_text(mutated_source(m))
    try:
        for flavour in FLAVOURS:
            outcome, by = _judged(copy, m.module, timeout, flavour, *extra)
            if outcome != "survived":
                return outcome, f"{by} ({flavour})"
        return "survived", ""
    finally:
        target.write_text(original)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    ap.add_argument("--max-mutants", type=int, default=0, help="a random sample of this many per module (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--functions", nargs="+", default=[], metavar="NAME",
                    help="only mutants inside these functions or classes (e.g. boot AntiRollback), for every module run")
    ap.add_argument("--keys", nargs="+", default=[], metavar="KEY",
                    help="only the mutants with these keys, as a run prints them (e.g. survivors, after a new check)")
    ap.add_argument("--destructive", action="store_true",
                    help="run the suites' destructive checks too (seed wipes: the emulated Prime is disposable)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant run; past it: killed by timeout")
    args = ap.parse_args()
    equivalent = load_yaml_model(EQUIVALENT, Equivalents).equivalent
    with tempfile.TemporaryDirectory(prefix="hil-mutation-") as tmp:
        copy = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for rel in files:
            if (ROOT / rel).is_file():
                (copy / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, copy / rel)
        for module in args.modules:
            judged = equivalent.get(module, {})
            every = {m.key for m in mutants(module)}
            todo = sample(module, args.max_mutants, args.seed, tuple(args.functions))
            if args.keys:
                todo = [m for m in mutants(module) if m.key in args.keys]
            if not todo:
                print(f"{module}: no mutant sampled ({' '.join(args.functions + args.keys)})", flush=True)
                continue
            results: dict[str, list[Mutant]] = {"killed": [], "survived": [], "broken": [], "timeout": []}
            skipped = [m for m in todo if m.key in judged]
            start = time.monotonic()
            for m in todo:  # one line per mutant as it ends: a campaign of hours shows its survivors early
                outcome, by = ("equivalent", judged[m.key]) if m.key in judged else \
                    run(m, copy, args.timeout, *(["--destructive"] if args.destructive else []))
                if outcome != "equivalent":
                    results[outcome].append(m)
                print(f"  {outcome}: hil/emulator/{module}.py:{m.line}: {m.key}", flush=True)
                if by:
                    print(f"    {by}", flush=True)
            killed = len(results["killed"]) + len(results["timeout"])
            ran = killed + len(results["survived"])
            pct = 100 * killed / ran if ran else 0.0
            print(f"{module}: killed {killed} / {ran} non-equivalent ({pct:.0f} %; {len(results['timeout'])} of them "
                  f"by timeout) of {len(todo)} sampled (of {len(every)}); equivalent {len(skipped)}, "
                  f"broken {len(results['broken'])}; {time.monotonic() - start:.0f} s", flush=True)
            for key in sorted(set(judged) - every):
                print(f"  stale equivalent entry (no such mutant now): {module}: {key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
