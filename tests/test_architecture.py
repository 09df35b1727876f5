"""The house rule that keeps the emulator honest: it is the device, so it reaches the harness only
through pure codecs, never through the drivers it is used to test."""

import ast
from pathlib import Path

EMULATOR = Path(__file__).resolve().parents[1] / "hil" / "emulator"
CODECS = {"hil.link.protocol", "hil.stimuli.ur", "hil.stimuli.isodep", "hil.flash.cosign2", "hil.flash.manifest",
          "hil.flash.bootimg", "hil.flash.emulated"}
# The harness-side halves of the emulator's interfaces run in the harness's process.
HARNESS_SIDE = {"launcher.py": {"hil.errors"}, "usb_backend.py": {"hil.errors"}}


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
