"""Allure both ways: attach evidence (frames, screenshots, OCR text, logs) to the running test, and read
an `allure-results` folder back into plain records for the history, the summary and the sign-off.

Reading treats the folder as untrusted: a result file that does not parse is reported by name as a
problem (never skipped silently, never counted as a pass), and the rest is still read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("passed", "failed", "broken", "skipped")
FARM_LABELS = ("station", "serial", "profile", "firmware", "attempt")


# ------------------------------------------------------------------------------------ writing
# (camera frames and OCR text are attached by hil.vision.evidence; the farm attaches what it decides)


def attach_json(obj: Any, name: str) -> None:
    """A JSON attachment on the running test's result (until its logfinish)."""
    import allure

    allure.attach(json.dumps(obj, indent=2, default=str), name=name, attachment_type=allure.attachment_type.JSON)


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class ResultRecord:
    test_id: str
    name: str
    suite: str
    status: str
    labels: dict[str, str]
    message: str
    start: int
    stop: int
    attachments: tuple[str, ...]  # file names in the results folder
    source: str  # the result file
    attachment_names: tuple[str, ...] = ()  # what each attachment is ("screenshot", "OCR lines"), in order

    @property
    def station(self) -> str | None:
        return self.labels.get("station")

    @property
    def profile(self) -> str | None:
        return self.labels.get("profile")

    @property
    def firmware(self) -> str | None:
        return self.labels.get("firmware")

    @property
    def attempt(self) -> int:
        try:
            return int(self.labels.get("attempt", "1"))
        except ValueError:
            return 1


@dataclass
class Results:
    folder: Path
    records: list[ResultRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def final(self) -> dict[str, ResultRecord]:
        """Per test, the outcome of its last attempt across retries (what a re-run decided)."""
        out: dict[str, ResultRecord] = {}
        for r in sorted(self.records, key=lambda r: (r.attempt, r.stop)):
            out[r.test_id] = r
        return out

    def by_test(self) -> dict[str, list[ResultRecord]]:
        out: dict[str, list[ResultRecord]] = {}
        for r in sorted(self.records, key=lambda r: (r.attempt, r.stop)):
            out.setdefault(r.test_id, []).append(r)
        return out


def _attachments(node: dict, step: str = "") -> list[tuple[str, str]]:
    """(name, source) of every attachment of a result and its steps; a step's name prefixes its own."""
    found = [(f"{step}{a.get('name') or a['source']}", a["source"]) for a in node.get("attachments", [])
             if isinstance(a, dict) and "source" in a]
    for sub in node.get("steps", []) or []:
        if isinstance(sub, dict):
            found += _attachments(sub, f"{step}{sub.get('name') or 'step'} / ")
    return found


def result_id(result: dict) -> str:
    """The pytest node id where the farm labelled it (compact parameter ids), else `module::test[params]`;
    stable across runs and stations."""
    for lab in result.get("labels", []) or []:
        if isinstance(lab, dict) and lab.get("name") == "nodeid":
            return str(lab["value"])
    base = str(result.get("fullName") or result.get("name") or "?").replace("#", "::")
    params = [f"{p.get('value')}" for p in result.get("parameters", []) or [] if isinstance(p, dict)]
    return f"{base}[{'-'.join(params)}]" if params else base


def parse_result(data: dict, source: str) -> ResultRecord:
    status = data.get("status")
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    labels: dict[str, str] = {}
    for lab in data.get("labels", []) or []:
        labels.setdefault(str(lab["name"]), str(lab["value"]))
    suite = labels.get("package") or labels.get("suite") or "?"
    details = data.get("statusDetails") or {}
    atts = _attachments(data)
    return ResultRecord(
        test_id=result_id(data), name=str(data.get("name", "?")), suite=suite, status=status, labels=labels,
        message=str(details.get("message") or ""), start=int(data.get("start") or 0), stop=int(data.get("stop") or 0),
        attachments=tuple(src for _, src in atts), source=source, attachment_names=tuple(n for n, _ in atts),
    )


def read_results(folder: Path) -> Results:
    folder = Path(folder)
    res = Results(folder)
    if not folder.is_dir():
        res.problems.append(f"{folder}: no such results folder")
        return res
    for path in sorted(folder.glob("*-result.json")):
        try:
            record = parse_result(json.loads(path.read_text()), path.name)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, KeyError, TypeError) as e:
            res.problems.append(f"{path}: unreadable Allure result ({e}); re-run the test or delete the file")
            continue
        missing = [a for a in record.attachments if not (folder / a).is_file()]
        if missing:
            res.problems.append(f"{path}: evidence missing: {', '.join(missing)}")
        res.records.append(record)
    return res


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
