"""Allure both ways: attach evidence (frames, screenshots, OCR text, logs) to the running test, and read
an `allure-results` folder back into plain records for the history, the summary and the sign-off.

Reading treats the folder as untrusted: a result file that does not parse is reported by name as a
problem (never skipped silently, never counted as a pass), and the rest is still read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

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
    def retried(self) -> bool:
        """The farm re-ran this attempt after an infrastructure fault: it is not the test's final result."""
        return self.labels.get("retried") == "true"

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
        """Per test, the outcome of its last attempt across retries (what a re-run decided); an attempt labelled
        retried is never final while another is."""
        out: dict[str, ResultRecord] = {}
        for r in sorted(self.records, key=lambda r: (not r.retried, r.attempt, r.stop)):
            out[r.test_id] = r
        return out

    def duplicates(self) -> dict[str, list[ResultRecord]]:
        """Tests with more than one final (not retried) result: two runs wrote into one folder, and `final`
        alone would let the later one stand for both."""
        return {t: finals for t, attempts in self.by_test().items()
                if len(finals := [r for r in attempts if not r.retried]) > 1}

    def of_sessions(self, sessions: set[str]) -> Results:
        """Only the results of these pytest sessions (the `session` label the plan's recorder sets)."""
        return Results(self.folder, [r for r in self.records if r.labels.get("session") in sessions],
                       list(self.problems))

    def by_test(self) -> dict[str, list[ResultRecord]]:
        out: dict[str, list[ResultRecord]] = {}
        for r in sorted(self.records, key=lambda r: (r.attempt, r.stop)):
            out.setdefault(r.test_id, []).append(r)
        return out


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Label(_Loose):
    name: Any
    value: Any


class _Attachment(_Loose):
    name: Any = None
    source: str | None = None


class _Step(_Loose):
    name: Any = None
    attachments: list[_Attachment | Any] | None = None
    steps: list[_Step | Any] | None = None

    def attachment_files(self, prefix: str = "") -> list[tuple[str, str]]:
        """(name, source) of every attachment here and in the steps below; a step's name prefixes its own."""
        found = [(f"{prefix}{a.name or a.source}", a.source) for a in self.attachments or []
                 if isinstance(a, _Attachment) and a.source is not None]
        for step in self.steps or []:
            if isinstance(step, _Step):
                found += step.attachment_files(f"{prefix}{step.name or 'step'} / ")
        return found


class _Details(_Loose):
    message: Any = None


class _Parameter(_Loose):
    value: Any = None


class _Result(_Step):
    """The fields of an Allure `*-result.json` we read; anything else in it is ignored."""

    status: Literal["passed", "failed", "broken", "skipped"]
    name: Any = "?"
    fullName: Any = None
    labels: list[_Label] | None = None
    parameters: list[_Parameter | Any] | None = None
    statusDetails: _Details | None = None
    start: int | None = None
    stop: int | None = None

    def test_id(self) -> str:
        """The pytest node id where the farm labelled it (compact parameter ids), else `module::test[params]`;
        stable across runs and stations."""
        for lab in self.labels or []:
            if lab.name == "nodeid":
                return str(lab.value)
        base = str(self.fullName or self.name or "?").replace("#", "::")
        params = [f"{p.value}" for p in self.parameters or [] if isinstance(p, _Parameter)]
        return f"{base}[{'-'.join(params)}]" if params else base


def parse_result(data: Any, source: str) -> ResultRecord:
    """One decoded result file as a record; ValueError (a pydantic ValidationError) names the bad field."""
    result = _Result.model_validate(data)
    labels: dict[str, str] = {}
    for lab in result.labels or []:
        labels.setdefault(str(lab.name), str(lab.value))
    suite = labels.get("package") or labels.get("suite") or "?"
    details = result.statusDetails or _Details()
    atts = result.attachment_files()
    return ResultRecord(
        test_id=result.test_id(), name=str(result.name), suite=suite, status=result.status, labels=labels,
        message=str(details.message or ""), start=result.start or 0, stop=result.stop or 0,
        attachments=tuple(src for _, src in atts), source=source, attachment_names=tuple(str(n) for n, _ in atts),
    )


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    msg = "must be a JSON object" if err["type"] == "model_type" else err["msg"]
    where = ".".join(str(p) for p in err["loc"]) or "top level"
    value = err.get("input")
    if isinstance(value, (str, int, float)) and len(repr(value)) <= 40:
        where += f" {value!r}"
    return f"{where}: {msg}"


def read_results(folder: Path) -> Results:
    folder = Path(folder)
    res = Results(folder)
    if not folder.is_dir():
        res.problems.append(f"{folder}: no such results folder")
        return res
    for path in sorted(folder.glob("*-result.json")):
        try:
            record = parse_result(json.loads(path.read_bytes()), path.name)
        except ValidationError as e:
            problem = _first_error(e)
        except RecursionError:
            problem = "nested too deeply"
        except (OSError, ValueError) as e:  # ValueError: not UTF-8, not JSON
            problem = str(e)
        else:
            problem = None
        if problem is not None:
            res.problems.append(f"{path}: unreadable Allure result ({problem}); re-run the test or delete the file")
            continue
        outside = [a for a in record.attachments if not is_file_name(a)]
        if outside:
            res.problems.append(f"{path}: attachment source(s) {', '.join(map(repr, outside))} not a file name in "
                                f"the results folder; evidence is only the files beside the result")
            kept = [(n, a) for n, a in zip(record.attachment_names, record.attachments) if is_file_name(a)]
            record = replace(record, attachments=tuple(a for _, a in kept), attachment_names=tuple(n for n, _ in kept))
        missing = [a for a in record.attachments if not (folder / a).is_file()]
        if missing:
            res.problems.append(f"{path}: evidence missing: {', '.join(missing)}")
        res.records.append(record)
    return res


def is_file_name(source: str) -> bool:
    """A plain file name (what allure-pytest writes), never a path: `../x` or `/etc/x` would pull a file from
    outside the results folder into the signed evidence."""
    return source not in ("", ".", "..") and not any(c in source for c in "/\\\0") and Path(source).name == source


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def finished_tests(results: Path) -> set[str]:
    """Node ids whose final attempt left a result (a retried attempt is not final)."""
    done = set()
    for r in read_results(results).records:
        if "nodeid" in r.labels and not r.retried:
            done.add(r.labels["nodeid"])
    return done
