"""The house rules, checked on the source: imports run one way down the layer table of docs/architecture.md
(relative imports and imports inside functions included), the import graph has no circle, drivers do not reach
into each other's internals, and the emulator stays behind its interfaces: it is the device, so it reaches the
harness only through pure codecs, never through the drivers it is used to test."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EMULATOR = ROOT / "hil" / "emulator"
# What the emulator may import of the harness: the codecs both sides speak, and the lab's test provisioning
# (the PIN and mnemonic every emulated unit carries, the harness's defaults).
CODECS = {"hil.link.protocol", "hil.stimuli.ur", "hil.stimuli.isodep", "hil.flash.cosign2", "hil.flash.manifest",
          "hil.flash.bootimg", "hil.flash.emulated", "hil.provisioning"}
# The harness-side halves of the emulator's interfaces run in the harness's process.
HARNESS_SIDE = {"launcher.py": {"hil.errors", "hil.machine"}, "usb_backend.py": {"hil.errors"}}
# What the harness may import of the emulator: its launcher, its build catalogue and its command.
EMULATOR_INTERFACES = {"hil.emulator.launcher", "hil.emulator.build", "hil.emulator.defects", "hil.emulator.cli"}

# The layer table, bottom first (docs/architecture.md "Layers" draws the same). A module may import its own
# layer and the layers below; `cli` modules of a package are commands, in the top layer.
LAYERS = (
    ("base", ("hil.errors", "hil.profile", "hil.yamlfile", "hil.schemes", "hil.machine", "hil.terminal",
              "hil.provisioning")),
    ("drivers", ("hil.link", "hil.flash", "hil.stimuli", "hil.vision", "hil.probe")),
    ("lab", ("hil.lab",)),
    ("report", ("hil.report",)),
    ("top", ("hil.plugin", "hil.cli", "hil.pytest_farm")),
)
COMMANDS = re.compile(r"hil\.\w+\.(cli|lab_cli)")
DRIVERS = dict(LAYERS)["drivers"]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def harness_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "hil").rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[tuple[str, str]]:
    """(module, imported name or "") of every hil import in the file, wherever it stands; `from pkg import mod`
    counts as importing the module, a relative import is resolved against the file's package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add((sub, "") if sub in known else (base, alias.name))
    return {(m, n) for m, n in found if m == "hil" or m.startswith("hil.")}


def layer_of(module: str) -> int | None:
    if module.startswith("hil.emulator"):
        return None
    if module == "hil" or COMMANDS.fullmatch(module):  # the package itself holds nothing but its docstring
        return len(LAYERS) - 1
    best = max(((i, p) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if module == p or module.startswith(p + ".")), key=lambda ip: len(ip[1]), default=None)
    return best[0] if best else None


def driver_of(module: str) -> str | None:
    return next((d for d in DRIVERS if module == d or module.startswith(d + ".")), None)


def offences(root: Path = ROOT) -> list[str]:
    """Every import that breaks the layer table, reaches into another driver's internals or past the
    emulator's interfaces, and every harness module the table does not place."""
    modules = harness_modules(root)
    found = []
    for name, path in modules.items():
        if name.startswith("hil.emulator"):
            continue
        mine = layer_of(name)
        if mine is None:
            found.append(f"{name}: not in the layer table")
            continue
        for module, imported in sorted(imports_of(name, path, set(modules))):
            if module.startswith("hil.emulator"):
                if module not in EMULATOR_INTERFACES:
                    found.append(f"{name} imports {module}: the emulator is reached through its interfaces only")
                continue
            theirs = layer_of(module)
            if theirs is not None and theirs > mine:
                found.append(f"{name} ({LAYERS[mine][0]}) imports {module} ({LAYERS[theirs][0]}): an upward import")
            mine_d, theirs_d = driver_of(name), driver_of(module)
            private = imported.startswith("_") or any(p.startswith("_") and p != "__init__" for p in module.split("."))
            if mine_d and theirs_d and mine_d != theirs_d and private and mine == theirs:
                found.append(f"{name} imports {module}.{imported}: another driver's internals")
    return found


def cycles(root: Path = ROOT) -> list[list[str]]:
    """The circles of the harness's import graph (strongly connected groups of more than one module)."""
    modules = harness_modules(root)
    graph = {n: {m for m, _ in imports_of(n, p, set(modules)) if m in modules and m != n}
             for n, p in modules.items() if not n.startswith("hil.emulator")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v] & graph.keys():
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_run_down_the_layer_table():
    assert offences() == []


def test_the_import_graph_has_no_circle():
    assert cycles() == []


def test_docs_draw_the_layer_table_the_code_has():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = re.search(r"<!-- layers -->\n(.*?)<!-- /layers -->", doc, re.S)
    assert table, "docs/architecture.md lost its layer table"
    rows = [line for line in table.group(1).splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    drawn = [(cells[0], tuple(re.findall(r"`([\w.]+)`", cells[1])))
             for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)]
    assert drawn == [(n, prefixes) for n, prefixes in reversed(LAYERS)]


def test_the_checker_sees_violations(tmp_path):
    """Each rule can fail: an upward import inside a function, a relative one, a reach into another driver's
    internals, an import past the emulator's interfaces, an unplaced module, and a circle."""
    hil = tmp_path / "hil"
    for pkg in ("link", "stimuli", "lab", "emulator"):
        (hil / pkg).mkdir(parents=True)
        (hil / pkg / "__init__.py").write_text("")
    (hil / "__init__.py").write_text("")
    (hil / "errors.py").write_text("def f():\n    from hil.lab import station\n")
    (hil / "link" / "client.py").write_text("from ..lab.station import Station\nfrom hil.stimuli.touch import _tap\n")
    (hil / "stimuli" / "touch.py").write_text("import hil.emulator.keyos\nfrom hil.link import client\n")
    (hil / "lab" / "station.py").write_text("from hil.errors import f\n")
    (hil / "gadget.py").write_text("")
    assert sorted(offences(tmp_path)) == sorted([
        "hil.errors (base) imports hil.lab.station (lab): an upward import",
        "hil.link.client (drivers) imports hil.lab.station (lab): an upward import",
        "hil.link.client imports hil.stimuli.touch._tap: another driver's internals",
        "hil.stimuli.touch imports hil.emulator.keyos: the emulator is reached through its interfaces only",
        "hil.gadget: not in the layer table",
    ])
    assert sorted(cycles(tmp_path)) == [["hil.errors", "hil.lab.station"], ["hil.link.client", "hil.stimuli.touch"]]


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" if node.module in ("hil", "hil.link", "hil.flash", "hil.stimuli") else node.module
                         for alias in node.names)
    return {m for m in found if m == "hil" or m.startswith("hil.")}


def test_emulator_imports_only_codecs_of_the_harness():
    offences = []
    for path in sorted(EMULATOR.rglob("*.py")):
        allowed = CODECS | HARNESS_SIDE.get(path.name, set())
        for module in imported_modules(path):
            if not module.startswith("hil.emulator") and module not in allowed:
                offences.append(f"{path.relative_to(EMULATOR.parents[1])}: imports {module}")
    assert offences == []


def test_the_rule_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from hil.vision import ocr\nfrom hil.link import protocol\nimport hil.lab.lease\n")
    assert imported_modules(bad) == {"hil.vision", "hil.link.protocol", "hil.lab.lease"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_no_driver_imports_the_lab_or_the_bench_bridge(driver):
    """Remote access is a transport or an address scheme of the driver (hil/schemes.py), never the bridge."""
    modules = harness_modules()
    reach = [f"{n} imports {m}" for n, p in modules.items() if driver_of(n) == driver and not COMMANDS.fullmatch(n)
             for m, _ in imports_of(n, p, set(modules)) if m.startswith(("hil.lab", "hil.bridge"))]
    assert reach == []
