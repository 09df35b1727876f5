"""The release sign-off: go or no-go for one build against the criteria in `signoff_criteria.yaml`,
with the suite × profile matrix, every evidence file by SHA-256, the firmware's cosign2 identity and
the harness version, signed with the lab's Ed25519 key, so it can be checked later without the lab.

The decision rests on what is on disk: each deciding run's test plan (`plan.json`, every check that
should have a final result), the version each unit reported (the `version` label), `run.json`'s broken
stations, and per suite and profile the counts of its results with every skip and whether the criteria
allow its reason. Only the results of the plan's pytest session(s) count; the claims catalogue's checks are
required whatever pytest collected; a check that failed on any attempt, in any suite, is a no-go.

A bundle is a folder: `signoff.json` ({"payload", "signature"}), `signoff.html`, `signoff.pdf` and
`evidence/<run>/...` (the plan, each result file and its attachments; fixture containers are not
evidence). The signature covers the canonical JSON of the payload, which lists the hash of every other
file; `verify` needs only the signer's public key and fails on any change, any missing file, any extra
file and any symlink. Missing or unreadable evidence is a no-go, never a go.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from hil.errors import ConfigError, HilError
from hil.lab.config import SigningKey
from hil.yamlfile import load_yaml_model
from hil.report.allure import Results, read_results, sha256_file
from hil.report.plan import PLAN, Plan, read_plan
from hil.report.summary import TEMPLATES, environment, iso

ROOT = Path(__file__).resolve().parents[2]
KEYSETS = ROOT / "firmware" / "keys"
RESULT_DIR = "allure-results"
RELEASE_KEYSET = "production"  # firmware/keys/production.toml: Foundation's release signers
FLAVOUR_SKIP = re.compile(r"needs a (\w+) build")  # hil.plugin's skip reason for a flavour marker


class VerifyError(HilError):
    """A sign-off bundle that does not verify: the message names the file and what changed."""


class Criteria(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    security_suites: tuple[str, ...] = Field(min_length=1)  # fnmatch patterns over suite (module) names
    required_profiles: tuple[str, ...] = ()  # besides every profile that ran
    clean_runs: int = Field(1, ge=1)
    allow_broken_stations: bool = False
    # per suite (fnmatch over suite names), the skip reasons (regular expressions searched in the reason)
    # that do not count against it; any other skip makes its cell "skipped", a no-go
    allowed_skips: dict[str, tuple[str, ...]] = {}
    # flavours whose flavour-only checks must have run: a security test skipped because it needs one of
    # these (the plugin's "needs a production build") and passed in no deciding run is a no-go
    required_flavours: tuple[str, ...] = ()
    accepted_keysets: tuple[str, ...] = Field(min_length=1)  # firmware/keys/<name>.toml that must FullyTrust the build
    # the claims catalogue (relative to the repository) whose checks every deciding run must have planned,
    # each with a final result the criteria allow: a narrowed run (a path, --ignore, a module skipped or
    # renamed) cannot sign GO on what it happened to collect
    claims: str | None = None


def load_criteria(path: Path) -> Criteria:
    return load_yaml_model(Path(path), Criteria)


# ------------------------------------------------------------------------------------ keys


def lab_key(spec: SigningKey) -> Ed25519PrivateKey:
    """The lab's signing key; generated (mode 0600) only where the lab file says so (the emulated lab)."""
    if not spec.path.exists():
        if not spec.generate:
            raise ConfigError(f"sign-off key {spec.path} not found; provision the lab's key there")
        spec.path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(spec.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    try:
        key = serialization.load_pem_private_key(spec.path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"sign-off key {spec.path}: not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"sign-off key {spec.path}: not an Ed25519 key")
    if spec.generate and not spec.trusted_signers.exists():  # a real lab provisions its trusted-signers file
        spec.trusted_signers.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# ------------------------------------------------------------------------------------ inputs


def firmware_identity(build: Path) -> dict[str, Any]:
    """What the build is, by the cosign2 header of its app.bin (the image itself, or the app.bin inside a
    boot.img), and which trust set signs it fully. `reproducible_hash` is the hash results are labelled with."""
    from hil.flash import bootimg, cosign2

    data = Path(build).read_bytes()
    ident: dict[str, Any] = {"file": Path(build).name, "sha256": sha256_file(build), "size": len(data)}
    app = data
    if data[:4] not in {m.value for m in cosign2.Magic} and data[510:512] == b"\x55\xaa":
        try:
            app = bootimg.BootImage.read(build).app
        except bootimg.BootImageError as e:
            ident["error"] = f"boot.img: {e}"
            return ident
        ident["kind"] = "boot.img"
    header = cosign2.parse_unverified(app)
    if header is None:
        ident["error"] = "no cosign2 header"
        return ident
    ident.update(version=header.version, timestamp=header.timestamp, date=header.date, magic=header.magic.decode(),
                 reproducible_hash=cosign2.reproducible_hash(app),
                 pubkey1=header.pubkey1.hex(), pubkey2=header.pubkey2.hex(), trust={})
    for path in sorted(KEYSETS.glob("*.toml")):
        keyset = cosign2.load_keyset(path)
        try:
            ident["trust"][keyset.name] = cosign2.verify(app, keyset.pubkeys).trust.name
        except cosign2.Cosign2Error as e:
            ident["trust"][keyset.name] = f"rejected: {e}"
    return ident


def harness_version() -> dict[str, str]:
    out = {"prime-hil": metadata.version("prime-hil")}
    try:
        out["git"] = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["git"] = "unknown"
    return out


def find_runs(results: Path) -> list[Path]:
    """Allure result folders under `results`: the folder itself, `*/allure-results` or `*/` with results."""
    results = Path(results)
    if not results.is_dir():
        raise ConfigError(f"{results}: no such results folder")
    if any(results.glob("*-result.json")):
        return [results]
    runs = [p for p in sorted(results.iterdir()) if p.is_dir() and any(p.glob(f"{RESULT_DIR}/*-result.json"))]
    runs = [p / RESULT_DIR for p in runs]
    runs += [p for p in sorted(results.iterdir()) if p.is_dir() and any(p.glob("*-result.json"))]
    return runs


def _run_meta(folder: Path) -> dict[str, Any]:
    """`run.json` the nightly writes beside a run's results (broken stations), if there is one."""
    meta = folder.parent / "run.json" if folder.name == RESULT_DIR else folder / "run.json"
    try:
        return json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# ------------------------------------------------------------------------------------ decision


CELL_STATUSES = ("passed", "failed", "broken", "skipped")


@dataclass
class Decision:
    go: bool
    reasons: list[str]
    failing_suites: list[str]
    matrix: dict[str, dict[str, dict[str, Any]]]  # suite -> profile -> cell (verdict, counts, skips)
    runs: list[dict[str, Any]]
    deciding: list[Path]  # the results folders the decision rests on (their files are the evidence)
    counted: dict[Path, Results] | None = None  # per deciding folder, the results of its plan's sessions


class Cell:
    """One suite on one profile: the counts of its final results, every skip with its reason and whether
    the criteria allow it, and planned checks that left no result. Green only when something passed and
    nothing else happened that the criteria do not allow: one pass never carries a suite."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(CELL_STATUSES, 0)
        self.skips: list[dict[str, Any]] = []
        self.missing: list[str] = []

    def add(self, record, allowed: bool) -> None:
        self.counts[record.status] += 1
        if record.status == "skipped":
            self.skips.append({"test": record.test_id, "reason": _skip_reason(record.message), "allowed": allowed})

    def verdict(self) -> str:
        for worst in ("broken", "failed"):
            if self.counts[worst]:
                return worst
        if self.missing:
            return "missing"
        if not self.counts["passed"] or any(not s["allowed"] for s in self.skips):
            return "skipped"
        return "passed"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict(), **self.counts, "skips": self.skips, "missing": self.missing}


def _skip_reason(message: str) -> str:
    return message.removeprefix("Skipped: ").strip() or "no reason given"


def _is_security(criteria: Criteria, suite: str) -> bool:
    return any(fnmatch.fnmatch(suite, pat) for pat in criteria.security_suites)


def skip_allowed(criteria: Criteria, suite: str, message: str) -> bool:
    reason = _skip_reason(message)
    return any(re.search(rx, reason) for pat, rxs in criteria.allowed_skips.items()
               if fnmatch.fnmatch(suite, pat) for rx in rxs)


def suite_of(test_id: str) -> str:
    """The suite (dotted module) of a pytest node id, as the results name it: `suites/a/test_b.py::t` ->
    `suites.a.test_b`."""
    return test_id.split("::", 1)[0].removesuffix(".py").replace("/", ".")


def _plan_reasons(run: Results, plan: Plan | None, final: dict) -> tuple[list[str], dict[str, list[str]]]:
    """What the plan says about a run: no plan, a partial plan, modules that did not collect, planned
    checks without a final result (per suite)."""
    name = _run_name(run.folder)
    if plan is None:
        return [f"run {name}: no test plan ({PLAN}); the checks that should have run are unknown"], {}
    reasons = []
    if plan.partial:
        flt = " ".join(f"{k} {v!r}" for k, v in plan.filters.items()) or "a filter"
        what = (f"deselected {len(plan.deselected_by_filters)} check(s)" if plan.deselected_by_filters
                else "narrowed what was collected")
        reasons.append(f"run {name}: a partial plan ({flt} {what}), never a release")
    for module, why in sorted(plan.collection_errors.items()):
        reasons.append(f"run {name}: module {module} could not be collected: {why}")
    missing: dict[str, list[str]] = {}
    for test in plan.tests:
        if test not in final and test not in plan.deselected_by_filters:
            missing.setdefault(suite_of(test), []).append(test)
    if missing:
        tests = [t for ts in missing.values() for t in ts]
        reasons.append(f"run {name}: {len(tests)} planned check(s) have no result: " + ", ".join(tests[:10])
                       + (f" and {len(tests) - 10} more" if len(tests) > 10 else ""))
    return reasons, missing


def _run_name(folder: Path) -> str:
    return folder.parent.name if folder.name == RESULT_DIR else folder.name


def measured_identity(identity: dict[str, Any], records) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Per station, the build its unit reported (the `version` label: what GET_VERSION answered on the
    station's health check) against the build under sign-off. A station that reported another version, or
    none, ran something else: it is broken, whatever the operator's --farm-firmware said."""
    seen: dict[str, tuple[str, set[str]]] = {}
    for x in records:
        serial, versions = seen.setdefault(x.station or "unknown", (x.labels.get("serial", "unknown"), set()))
        versions.add(x.labels.get("version") or "not reported")
    stations = {n: {"serial": serial, "versions": sorted(v)} for n, (serial, v) in sorted(seen.items())}
    broken = {}
    for name, entry in stations.items():
        other = [v for v in entry["versions"] if v != identity.get("version")]
        if other:
            broken[name] = (f"its unit reported version {', '.join(other)}, the build under sign-off is "
                            f"{identity.get('version')} (measured identity)")
    return stations, broken


def of_build(run: Results, identity: dict[str, Any]) -> bool:
    """A run of the build under sign-off: its `run.json` names the build, or any result's firmware label
    does. One record without (or with another) label does not drop the run: `decide` makes it a no-go."""
    fw = identity.get("reproducible_hash")
    meta = _run_meta(run.folder).get("firmware") or {}
    return (fw is not None and meta.get("hash") == fw) or meta.get("sha256") == identity.get("sha256") \
        or any(x.firmware == fw for x in run.records)


def required_checks(criteria: Criteria) -> tuple[set[str], list[str]]:
    """The check keys the criteria require (the claims catalogue's checks by their base), and why they
    cannot be known (an unreadable catalogue is a no-go, never no requirement)."""
    if criteria.claims is None:
        return set(), []
    from hil.report.claims import CatalogueError, load

    try:
        return {check_key(c) for c in load(ROOT / criteria.claims).checks()}, []
    except CatalogueError as e:
        return set(), [f"required checks unknown: {e}"]


def check_key(test_id: str) -> str:
    """A check by its suite and function, whatever its parameters and however the id spells the module:
    `suites/a/test_b.py::t[x]` and `suites.a.test_b::t` are `suites.a.test_b::t`."""
    module, _, name = test_id.partition("::")
    return f"{suite_of(module)}::{name.split('[', 1)[0]}"


def _names(tests: list[str], limit: int = 10) -> str:
    return ", ".join(tests[:limit]) + (f" and {len(tests) - limit} more" if len(tests) > limit else "")


def decide(criteria: Criteria, identity: dict[str, Any], runs: list[Results], profiles: set[str]) -> Decision:
    reasons: list[str] = []
    if "error" in identity:
        reasons.append(f"firmware {identity['file']}: {identity['error']}")
    elif not any(identity["trust"].get(k) == "FULLY_TRUSTED" for k in criteria.accepted_keysets):
        reasons.append(f"firmware {identity['file']} is not fully trusted by {', '.join(criteria.accepted_keysets)} "
                       f"({identity['trust']})")
    fw = identity.get("reproducible_hash")
    required, why = required_checks(criteria)
    reasons += why
    mine = [r for r in runs if r.records and of_build(r, identity)]
    for r in runs:
        if not r.records:  # nothing readable: it may have been a run of this build
            reasons.append(f"run {r.folder}: {'; '.join(r.problems) or 'no results'}")
    deciding = sorted(mine, key=lambda r: max(x.stop for x in r.records))[-criteria.clean_runs:]
    if len(deciding) < criteria.clean_runs:
        reasons.append(f"{len(deciding)} run(s) of this build in the results, the criteria need {criteria.clean_runs}")
    cells: dict[tuple[str, str], Cell] = {}
    seen_profiles = set(profiles) | set(criteria.required_profiles)
    run_info = []
    counted: dict[Path, Results] = {}
    all_final = []
    for whole in deciding:
        name = _run_name(whole.folder)
        reasons += [f"evidence: {p}" for p in whole.problems]
        meta = _run_meta(whole.folder)
        seen_profiles |= set(meta.get("profiles", []))
        try:
            plan = read_plan(whole.folder)
        except ValueError as e:
            plan = None
            reasons.append(str(e))
        r, others = whole, 0
        if plan is not None and plan.session is None:
            reasons.append(f"run {name}: its plan names no session, so its results cannot be told from an earlier "
                           f"run's in the same folder; re-run the suites")
        elif plan is not None:  # results an earlier session left in the same folder are not this run's
            r = whole.of_sessions(plan.sessions)
            others = len(whole.records) - len(r.records)
        counted[whole.folder] = r
        for test, finals in sorted(r.duplicates().items()):
            reasons.append(f"run {name}: {len(finals)} final results for {test} ("
                           + ", ".join(f"{x.status} in {x.source}" for x in finals) + "); one run, one result")
        final_by_id = r.final()
        final = list(final_by_id.values())
        all_final += final
        plan_reasons, missing = _plan_reasons(r, plan, final_by_id)
        reasons += plan_reasons
        foreign = [x for x in r.records if x.firmware != fw]
        if foreign:
            reasons.append(f"run {name}: {len(foreign)} result(s) without this build's firmware label (another "
                           f"build's, or none): " + _names([f"{x.test_id} ({x.firmware or 'no label'})"
                                                            for x in foreign]))
        for x in r.records:  # a check that failed is a no-go, retried or not, in any suite
            if x.status == "failed":
                reasons.append(f"run {name}: {x.test_id} failed (attempt {x.attempt}"
                               + (", then re-run" if x.retried else "") + f"): {x.message or 'no message'}")
            elif x.status == "broken" and not x.retried and not _is_security(criteria, x.suite):
                reasons.append(f"run {name}: {x.test_id} broken: {x.message or 'no message'}")
        stations, mismatched = measured_identity(identity, r.records)  # every attempt, retried ones too
        broken = {**meta.get("broken_stations", {}), **mismatched}
        if broken and not criteria.allow_broken_stations:
            reasons.append(f"run {_run_name(r.folder)}: broken station(s) " + "; ".join(f"{s}: {w}" for s, w in broken.items()))
        for x in final:
            profile = x.profile or "unknown"
            seen_profiles.add(profile)
            if _is_security(criteria, x.suite):
                cell = cells.setdefault((x.suite, profile), Cell())
                if (x.station or "unknown") in mismatched or x.firmware != fw:  # no evidence for this build
                    cell.counts["broken"] += 1
                else:
                    cell.add(x, skip_allowed(criteria, x.suite, x.message))
        for suite, tests in missing.items():
            if _is_security(criteria, suite):
                for p in sorted(seen_profiles):
                    cells.setdefault((suite, p), Cell()).missing += tests
        run_info.append({"folder": str(r.folder), "tests": len(final),
                         "counts": {s: sum(1 for x in final if x.status == s) for s in CELL_STATUSES},
                         "broken_stations": broken, "stations": stations,
                         "results_of_other_sessions": others,
                         "plan": None if plan is None else {"tests": len(plan.tests), "partial": plan.partial,
                                                            "collection_errors": dict(plan.collection_errors),
                                                            "session": plan.session,
                                                            "resumed_sessions": list(plan.resumed_sessions)}})
    suites = sorted({s for s, _ in cells})
    if deciding and not suites:
        reasons.append(f"no security suite ({', '.join(criteria.security_suites)}) ran")
    not_run = flavour_checks_not_run(criteria, all_final)
    for r in (counted[w.folder] for w in deciding):
        reasons += _required_reasons(criteria, required, r, {id(x) for x in not_run}, fw)
    for x in not_run:  # an allowed skip reason does not cover these
        cell = cells[(x.suite, x.profile or "unknown")]
        for skip in cell.skips:
            if skip["test"] == x.test_id:
                skip["allowed"] = False
    if not_run:
        reasons.append("security checks never run on the flavour they need: "
                       + ", ".join(sorted({f"{x.test_id} ({FLAVOUR_SKIP.search(x.message).group(0)})" for x in not_run})))
    matrix = {s: {p: cells.get((s, p), Cell()).to_json() for p in sorted(seen_profiles)} for s in suites}
    for s in suites:
        for p, cell in matrix[s].items():
            for skip in cell["skips"]:
                if not skip["allowed"]:
                    reasons.append(f"suite {s}: {p}: {skip['test']} skipped, a reason the criteria do not allow "
                                   f"({skip['reason']})")
    failing = sorted({s for s, row in matrix.items() for cell in row.values() if cell["verdict"] != "passed"})
    for s in failing:
        reasons.append(f"suite {s}: " + ", ".join(f"{p} {c['verdict']} ({_counts(c)})"
                                                  for p, c in matrix[s].items() if c["verdict"] != "passed"))
    return Decision(not reasons, reasons, failing, matrix, run_info, [r.folder for r in deciding], counted)


def _required_reasons(criteria: Criteria, required: set[str], run: Results, not_run: set[int], fw) -> list[str]:
    """Each required check planned in the run, every planned case of it with a final result the criteria
    allow: passed, or skipped for an allowed reason (not a flavour-only check the build never ran)."""
    if not required:
        return []
    name = _run_name(run.folder)
    try:
        plan = read_plan(run.folder)
    except ValueError:
        plan = None  # already a reason
    planned = plan.tests if plan is not None else ()
    final = run.final()
    cases: dict[str, list[str]] = {}
    for test in planned:
        cases.setdefault(check_key(test), []).append(test)
    unplanned = sorted(required - set(cases))
    out = []
    if unplanned:
        out.append(f"run {name}: {len(unplanned)} required check(s) (claims) not planned, so never run: "
                   + _names(unplanned))
    bad = []
    for key in sorted(required & set(cases)):
        for test in cases[key]:
            x = final.get(test)
            ok = x is not None and x.firmware == fw and (x.status == "passed" or (
                x.status == "skipped" and id(x) not in not_run and skip_allowed(criteria, x.suite, x.message)))
            if not ok:
                bad.append(f"{test} ({x.status if x is not None else 'no result'})")
    if bad:
        out.append(f"run {name}: {len(bad)} required check(s) (claims) without a result the criteria allow: "
                   + _names(bad))
    return out


def _counts(cell: dict[str, Any]) -> str:
    parts = [f"{cell[s]} {s}" for s in CELL_STATUSES if cell[s]]
    parts += [f"{len(cell['missing'])} missing"] if cell["missing"] else []
    return ", ".join(parts) or "no results"


def flavour_checks_not_run(criteria: Criteria, records) -> list:
    """Security results skipped because they need a required flavour, of checks that passed in no deciding
    run: the build they were meant for never ran them (wrong stations, or a flavour not declared so)."""
    security = [x for x in records if any(fnmatch.fnmatch(x.suite, pat) for pat in criteria.security_suites)]
    passed = {x.test_id for x in security if x.status == "passed"}
    return [x for x in security if x.status == "skipped" and x.test_id not in passed
            and (m := FLAVOUR_SKIP.search(x.message)) and m.group(1) in criteria.required_flavours]


# ------------------------------------------------------------------------------------ bundle


def refuse_symlinks(folder: Path) -> None:
    """A symlink in a results folder or a bundle would put files from elsewhere under the signature."""
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if os.path.islink(os.path.join(root, name)):
                raise ConfigError(f"{Path(root) / name}: a symlink in a results folder; evidence must be the "
                                  f"files themselves (copy them in, then sign)")


def copy_evidence(results: Results, dest: Path) -> list[dict[str, Any]]:
    """The plan, every result file of a deciding run and what it attached, copied to `dest`; fixture
    containers are not evidence. Returns the checks: per test, its final status and its files."""
    dest.mkdir(parents=True)
    if (results.folder / PLAN).is_file():
        shutil.copy2(results.folder / PLAN, dest / PLAN)
    checks = []
    for test_id, attempts in sorted(results.by_test().items()):
        files = []
        for x in attempts:
            for name, src in (("result", x.source), *zip(x.attachment_names, x.attachments)):
                if not (results.folder / src).is_file():
                    continue  # missing evidence: the decision already says so
                shutil.copy2(results.folder / src, dest / src)
                files.append({"name": f"attempt {x.attempt}: {name}" if len(attempts) > 1 else name,
                              "path": str(Path(dest.name) / src), "sha256": sha256_file(dest / src)})
        last = attempts[-1]
        checks.append({"test": test_id, "status": last.status, "station": last.station or "unknown",
                       "version": last.labels.get("version", "not reported"), "files": files})
    return checks


def criteria_in_words(c: Criteria) -> list[str]:
    """The criteria as a release manager reads them."""
    skips = "; ".join(f"{suite}: {', '.join(rxs)}" for suite, rxs in c.allowed_skips.items()) or "none"
    return [
        f"The build must be fully trusted (both signatures) by the key set(s): {', '.join(c.accepted_keysets)}.",
        f"Security suites ({', '.join(c.security_suites)}) must each pass on every profile that ran"
        + (f" and on {', '.join(c.required_profiles)}" if c.required_profiles else "") + ".",
        f"The latest {c.clean_runs} run(s) of this build must each be clean, with a complete test plan: "
        "every planned check has a final result, no module failed to collect, no -k/-m filter.",
        "Every result must come from a unit that reported this build's version.",
        "A station broken during a deciding run " + ("is tolerated." if c.allow_broken_stations else "makes it a no-go."),
        f"Skips allowed (reason patterns per suite): {skips}. Any other skip, or a cell with nothing passed, is a no-go.",
        "Checks that need a flavour must have run on it: " + (", ".join(c.required_flavours) or "no flavour required") + ".",
        "A check that failed, in any suite and on any attempt (re-run or not), or a final result broken, is a no-go; "
        "so is more than one final result for one check in a run. Only results of the run's own pytest session(s) "
        "count, and each must carry this build's firmware label.",
    ] + ([f"Every check the claims catalogue {c.claims} names must be planned in each deciding run and end passed "
          "or skipped for an allowed reason."] if c.claims else [])


def not_a_release(identity: dict[str, Any], criteria: Criteria) -> list[str]:
    """Why this verdict can never release anything: a build not fully trusted by the production signers,
    or criteria that accept other signers (the emulated lab's)."""
    why = []
    if identity.get("trust", {}).get(RELEASE_KEYSET) != "FULLY_TRUSTED":
        why.append("test keys")
    if set(criteria.accepted_keysets) != {RELEASE_KEYSET}:
        why.append("emulated criteria")
    return why


def create(build: Path, results: Path, bundle: Path, *, criteria_path: Path, key: Ed25519PrivateKey,
           lab: str, profiles: set[str], signer: SigningKey | None = None) -> Decision:
    """Decide, copy the evidence, render, sign. Written to a temporary folder, renamed at the end."""
    bundle = Path(bundle)
    if bundle.exists():
        raise ConfigError(f"{bundle} exists; choose a new bundle path")
    refuse_symlinks(Path(results))
    criteria = load_criteria(criteria_path)
    identity = firmware_identity(build)
    folders = find_runs(results)
    runs = [read_results(f) for f in folders]
    decision = decide(criteria, identity, runs, profiles)
    tmp = bundle.with_name(bundle.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "evidence").mkdir(parents=True)
    by_folder = {r.folder: r for r in runs}
    checks = []
    for i, f in enumerate(decision.deciding):
        for check in copy_evidence((decision.counted or by_folder)[f], tmp / "evidence" / f"{i:02d}-{_run_name(f)}"):
            check["files"] = [{**e, "path": f"evidence/{e['path']}"} for e in check["files"]]
            checks.append(check)
    evidence = [{"path": str(p.relative_to(tmp)), "sha256": sha256_file(p), "size": p.stat().st_size}
                for p in sorted((tmp / "evidence").rglob("*")) if p.is_file()]
    payload: dict[str, Any] = {
        "format": "prime-hil-signoff/2", "created": iso(time.time()), "lab": lab,
        "decision": "go" if decision.go else "no-go", "reasons": decision.reasons,
        "not_a_release": not_a_release(identity, criteria),
        "failing_suites": decision.failing_suites, "matrix": decision.matrix, "runs": decision.runs,
        "criteria": {"file": Path(criteria_path).name, "sha256": sha256_file(criteria_path),
                     "rules": criteria.model_dump(mode="json"), "in_words": criteria_in_words(criteria)},
        "firmware": identity, "harness": harness_version(), "evidence": evidence, "checks": checks,
        "signer": {"algorithm": "ed25519", "public_key": public_hex(key.public_key()),
                   "name": signer.name if signer else "unnamed signer",
                   "role": signer.role if signer else "role not stated"},
    }
    html = render(payload)
    (tmp / "signoff.html").write_text(html)
    from weasyprint import HTML

    HTML(string=html).write_pdf(tmp / "signoff.pdf")
    payload["renderings"] = {n: sha256_file(tmp / n) for n in ("signoff.html", "signoff.pdf")}
    signed = {"payload": payload, "signature": base64.b64encode(key.sign(canonical(payload))).decode()}
    (tmp / "signoff.json").write_text(json.dumps(signed, indent=2, sort_keys=True))
    tmp.rename(bundle)
    return decision


def evidence_by_module(checks: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The checks grouped by test module, each named by its test alone, its files under the step that
    attached them (an attachment is named `step / what`), for the evidence list."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        module, _, name = c["test"].rpartition("::")
        steps: dict[str, list[dict[str, str]]] = {}
        for f in c["files"]:
            step, _, what = f["name"].rpartition(" / ")
            steps.setdefault(step, []).append({"name": what, "sha256": f["sha256"]})
        groups.setdefault(module or "?", []).append({**c, "name": name, "steps": list(steps.items())})
    return list(groups.items())


def render(payload: dict[str, Any]) -> str:
    return environment().get_template("signoff.html.j2").render(
        p=payload, evidence=evidence_by_module(payload["checks"]), css=(TEMPLATES / "base.css").read_text())


def verify(bundle: Path, trusted: Ed25519PublicKey | list[Ed25519PublicKey]) -> dict[str, Any]:
    """Check the signature against the trusted signers' public keys and every file's hash; return the payload."""
    bundle = Path(bundle)
    keys = trusted if isinstance(trusted, list) else [trusted]
    doc_path = bundle / "signoff.json"
    try:
        refuse_symlinks(bundle)
        doc = json.loads(doc_path.read_bytes())
        payload, sig = doc["payload"], base64.b64decode(doc["signature"], validate=True)
        signer = payload["signer"]["public_key"]
        signed = canonical(payload)
    except ConfigError as e:
        raise VerifyError(str(e)) from None
    except KeyError as e:
        raise VerifyError(f"{doc_path}: not a sign-off document (no {e} field)") from None
    except (OSError, TypeError, ValueError, RecursionError) as e:  # ValueError: not UTF-8, not JSON, not base64
        raise VerifyError(f"{doc_path}: not a sign-off document ({type(e).__name__}: {e})") from None
    key = next((k for k in keys if public_hex(k) == signer), None)
    if key is None:
        raise VerifyError(f"{doc_path}: signed by key {signer!r}, not one of the trusted signers "
                          f"({', '.join(public_hex(k)[:16] + '…' for k in keys)})")
    try:
        key.verify(sig, signed)
    except InvalidSignature:
        raise VerifyError(f"{doc_path}: signature does not match its content (edited after signing)") from None
    listed = {e["path"]: e for e in payload["evidence"]}
    listed.update({n: {"path": n, "sha256": h} for n, h in payload["renderings"].items()})
    present = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} - {"signoff.json"}
    for extra in sorted(present - set(listed)):
        raise VerifyError(f"{bundle / extra}: not listed in the signed sign-off (added after signing)")
    for rel, entry in sorted(listed.items()):
        path = bundle / rel
        if not path.is_file():
            raise VerifyError(f"{path}: listed in the sign-off but missing")
        if sha256_file(path) != entry["sha256"]:
            raise VerifyError(f"{path}: SHA-256 differs from the signed sign-off (changed after signing)")
    return payload


def load_trusted(path: Path) -> list[Ed25519PublicKey]:
    """A trusted-signers file: one or more PEM public keys (Ed25519). A private key is refused: whoever
    verifies needs none, and should not hold one."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"trusted signers {path}: cannot read it ({e})") from None
    if "PRIVATE KEY" in text:
        raise ConfigError(f"trusted signers {path}: holds a private key; give the signers' public keys only "
                          f"(the lab's is in {Path(path).stem}.trusted-signers.pem beside its key)")
    keys = []
    for block in re.findall(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", text, re.S):
        try:
            key = serialization.load_pem_public_key(block.encode())
        except ValueError as e:
            raise ConfigError(f"trusted signers {path}: a key does not parse ({e})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"trusted signers {path}: not an Ed25519 key")
        keys.append(key)
    if not keys:
        raise ConfigError(f"trusted signers {path}: no PEM public key in it")
    return keys


def load_public(path: Path) -> Ed25519PublicKey:
    """The public half of a PEM key, public or private: the lab's own check right after signing."""
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{path}: neither a PEM public key nor a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key
