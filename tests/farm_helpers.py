"""Shared by the farm and report tests: a signed stand-in build and hand-written Allure results."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from hil.flash import cosign2

ROOT = Path(__file__).resolve().parents[1]
SESSION = "session-1"  # the pytest session of a hand-written run (its plan and its results)


def signed_build(path: Path, payload: bytes = b'{"keyos": "emulated"}', version: str = "1.0.0") -> Path:
    """A cosign2 image FullyTrusted by the test key set (two TEST ONLY signers)."""
    keys = cosign2.load_keyset(ROOT / "firmware" / "keys" / "test-signers.toml")
    image = cosign2.sign(payload, keys.signer("test-signer-1").private_key(), version=version, timestamp=1_760_000_000)
    image = cosign2.add_second_signature(image, keys.signer("test-signer-2").private_key())
    path.write_bytes(image)
    return path


STAND_IN_SUITE = '''
from pathlib import Path

FLASHED = Path(__file__).resolve().parents[2] / "flashed"

def test_kernel_denies_undeclared_send(farm_station):
    with farm_station.client() as p:
        assert p.version() == "1.0.0"
    assert b"skips-permission-check" not in (FLASHED / farm_station.name).read_bytes(), "AccessDenied missing"

def test_storage_scoped(farm_station):
    assert (FLASHED / farm_station.name).exists()
'''


def stand_in_suites(root: Path) -> Path:
    """``root/suites/security``: a security suite that passes only on a station whose stand-in flasher wrote
    a build without the seeded defect into the returned ``root/flashed/<station>`` (the device's answer)."""
    (root / "suites" / "security").mkdir(parents=True)
    (root / "suites" / "security" / "test_isolation.py").write_text(STAND_IN_SUITE)
    (root / "flashed").mkdir()
    return root / "flashed"


def firmware_hash(build: Path) -> str:
    return cosign2.reproducible_hash(build.read_bytes())


def write_result(folder: Path, module: str, name: str, status: str, *, station: str = "emu-1",
                 profile: str = "prime-emulated", firmware: str = "?", version: str = "1.0.0", attempt: int = 1,
                 message: str = "", session: str = SESSION,
                 evidence: dict[str, bytes] | None = None, extra_labels: dict[str, str] | None = None) -> Path:
    """One `*-result.json` as allure-pytest writes it, with its attachments, labelled as the farm and the
    plan's recorder label it (`session`: the pytest session of the plan it belongs to)."""
    folder.mkdir(parents=True, exist_ok=True)
    attachments = []
    for att_name, data in (evidence or {}).items():
        src = f"{uuid.uuid4()}-attachment.txt"
        (folder / src).write_bytes(data)
        attachments.append({"name": att_name, "source": src, "type": "text/plain"})
    labels = {"package": module, "suite": module.rsplit(".", 1)[-1], "station": station, "serial": f"SER-{station}",
              "profile": profile, "firmware": firmware, "version": version, "attempt": str(attempt),
              "nodeid": f"{module}::{name}", "session": session,
              **(extra_labels or {})}
    now = int(time.time() * 1000)
    result = {"name": name, "status": status, "statusDetails": {"message": message}, "attachments": attachments,
              "start": now, "stop": now + attempt, "uuid": str(uuid.uuid4()), "fullName": f"{module}#{name}",
              "labels": [{"name": k, "value": v} for k, v in labels.items()]}
    path = folder / f"{result['uuid']}-result.json"
    path.write_text(json.dumps(result))
    return path


def write_plan(folder: Path, tests: list[str], **more) -> Path:
    """The `plan.json` the plugin records before a run (hil/report/plan.py): these test ids were collected."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.json"
    path.write_text(json.dumps({"tests": tests, "session": SESSION, **more}))
    return path


def lab_in(tmp_path: Path) -> Path:
    """The repository's emulated lab, with its state, key and paths moved into ``tmp_path``."""
    text = (ROOT / "lab_config.yaml").read_text()
    for key, val in (("state_dir: .hil", f"state_dir: {tmp_path / 'state'}"),
                     ("profiles_dir: device_profiles", f"profiles_dir: {ROOT / 'device_profiles'}"),
                     ("signoff_criteria: ", f"signoff_criteria: {ROOT}/"),
                     ("path: .hil/keys/lab-signoff-ed25519.pem", f"path: {tmp_path / 'keys' / 'lab.pem'}")):
        text = text.replace(key, val)
    (tmp_path / "lab.yaml").write_text(text)
    return tmp_path / "lab.yaml"


def write_claims(path: Path, checks) -> Path:
    """A claims catalogue (suites/claims.yaml's schema) whose one claim names these checks: what criteria
    whose `claims` point here require."""
    from hil.report.claims import DIMENSIONS

    cells = {d: {"reason": "not probed here"} for d in DIMENSIONS}
    cells["binding"] = {"checks": list(checks)}
    path.write_text(json.dumps({"claims": [{"id": "c", "claim": "c", "source": "test", "cells": cells}]}))
    return path


def criteria_requiring(path: Path, checks) -> Path:
    """The emulated lab's criteria file, copied to ``path``, requiring these checks instead of the
    repository's claims (a lab whose suites are stand-ins)."""
    catalogue = write_claims(path.with_name(path.stem + "-claims.yaml"), checks)
    text = (ROOT / "signoff_criteria.emulated.yaml").read_text()
    assert "claims: suites/claims.yaml" in text
    path.write_text(text.replace("claims: suites/claims.yaml", f"claims: {catalogue}"))
    return path
