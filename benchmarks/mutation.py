"""Mutation score of the security suites over the emulator's security model: how many small, general
regressions of the model (not our seeded list) the suites catch.

An AST-operator runner: each mutant changes one node of one module (a comparison flipped, ``and``/``or``
swapped, a ``not`` dropped, an integer constant moved by one, a returned boolean inverted). It is written
into a private copy of the repository, and the suites that exercise that module run against an emulated
Prime built from the copy (``-x``: the first red test kills it). A run that ends broken (infrastructure) or
times out is counted apart, never as killed. Prints killed / run per module and lists the survivors with
their line, for a person to judge (an equivalent mutant) or to write the missing check.

    .venv/bin/python benchmarks/mutation.py [--modules kernel fs ...] [--max-mutants 5] [--timeout 600]
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEC = "suites/security/"
# module of hil/emulator -> the suites that exercise it (the lanes a regression there shows in)
MODULES = {
    "kernel": [SEC + "test_isolation.py", SEC + "test_permissions.py"],
    "broker": [SEC + "test_permissions.py", SEC + "test_trusted_display.py"],
    "app_manager": [SEC + "test_permissions.py", SEC + "test_secure_element.py"],
    "fs": [SEC + "test_isolation.py"],
    "secure_element": [SEC + "test_secure_element.py"],
    "debug": [SEC + "test_lockdown.py", SEC + "test_trusted_display.py"],
    "bootloader": [SEC + "test_firmware.py"],
    "ctap2": [SEC + "test_fido.py"],
}
FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
        ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # the index-th mutable site of the module, in ast.walk order
    line: int
    what: str


def _asks_defect(source: str) -> bool:
    return "defects.has(" in source or "_defect(" in source


def _seeded(tree: ast.AST) -> set[int]:
    """Nodes of seeded-defect code: an ``if`` on ``defects.has(...)`` alone runs only on a build with that
    defect, so its mutants are equivalent on the good build and are left out."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _asks_defect(ast.unparse(node.test)) and not isinstance(node.test, ast.UnaryOp):
            for part in [node.test, *node.body]:
                out.update(id(n) for n in ast.walk(part))
        elif isinstance(node, ast.Call) and _asks_defect(ast.unparse(node) + "("):
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


def mutants(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / "hil" / "emulator" / f"{module}.py").read_text())
    return [Mutant(module, i, getattr(node, "lineno", 0), what) for i, (node, what) in enumerate(_sites(tree))]


def mutated_source(m: Mutant) -> str:
    tree = ast.parse((ROOT / "hil" / "emulator" / f"{m.module}.py").read_text())
    node, _ = _sites(tree)[m.index]
    return ast.unparse(ast.fix_missing_locations(_Apply(node).visit(tree)))


def run(m: Mutant, copy: Path, timeout: float) -> str:
    """killed | survived | broken | timeout."""
    target = copy / "hil" / "emulator" / f"{m.module}.py"
    original = target.read_text()
    target.write_text(mutated_source(m))
    try:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", "-rfE", "--device=emulator",
               *MODULES[m.module]]
        proc = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=timeout,
                              env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_text(original)
    out = proc.stdout + proc.stderr
    failed = set(re.findall(r"^FAILED (\S+)", out, re.MULTILINE)) - set(re.findall(r"^BROKEN (\S+)", out, re.MULTILINE))
    if proc.returncode == 0:
        return "survived"
    return "killed" if failed else "broken"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    ap.add_argument("--max-mutants", type=int, default=0, help="a random sample of this many per module (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant run")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="hil-mutation-") as tmp:
        copy = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for rel in files:
            if (ROOT / rel).is_file():
                (copy / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, copy / rel)
        for module in args.modules:
            todo = mutants(module)
            if args.max_mutants:
                todo = sorted(rng.sample(todo, min(args.max_mutants, len(todo))), key=lambda m: m.index)
            results: dict[str, list[Mutant]] = {"killed": [], "survived": [], "broken": [], "timeout": []}
            start = time.monotonic()
            for m in todo:
                results[run(m, copy, args.timeout)].append(m)
            ran = len(results["killed"]) + len(results["survived"])
            pct = 100 * len(results["killed"]) / ran if ran else 0.0
            print(f"{module}: killed {len(results['killed'])} / {ran} ({pct:.0f} %) of {len(todo)} sampled "
                  f"(of {len(mutants(module))}); broken {len(results['broken'])}, timeout {len(results['timeout'])}; "
                  f"{time.monotonic() - start:.0f} s", flush=True)
            for m in results["survived"]:
                print(f"  survived: hil/emulator/{module}.py:{m.line}: {m.what}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
