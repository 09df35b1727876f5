"""Declarative permissions, enforced by the kernel, with no escalation (keyos.md §1.3, §1.4).

Generated, not hand-written: for every app manifest under ``--manifests`` the probe takes that app's
declarations (under its own app id) and tries every message of the capability matrix. Declared and
within the app's signature tier => delivered; everything else => ``AccessDenied`` with the kernel's
``[!] Denying message send from …`` line for that very send. Grant-on-first-use messages show the
broker's prompt (read on the display) and each answer behaves and persists as specified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from hil import probe as P
from hil.flash import cosign2
from hil.errors import InfrastructureError
from hil.flash.manifest import CapabilityMatrix, Manifest, load_dir, load_templates, loads, sign_manifest
from hil.link.client import CommandRefused, DeviceError, DeviceLocked, ResponseTimeout
from hil.link.protocol import (MAX_CHUNK, Cmd, LaunchStatus, load_app_begin, load_app_chunk, load_app_file_begin,
                               request)
from hil.link.state import show_lock_screen, wait_unlocked
from hil.link.transport import LinkClosed, LinkError
from hil.stimuli.touch import DebugTouch, enter_pin
from hil.vision.pin_screen import wait_pin_screen

from security_helpers import (BUILTIN_SETTINGS, PROMPT_GONE_S, SETTINGS_APP, answer_prompt,
                              manifest_for, normal, outside_the_prompt, result_without_prompt, trusted_lab_signers, twin,
                              wait_prompt_gone)

pytestmark = [pytest.mark.security, pytest.mark.permissions]


HIGH_IDS = (64, 100, 127, 128, 200, 255, 1000)  # the range list: ids >= 64 live there, not in the mask


def pytest_generate_tests(metafunc):
    if "app_manifest" in metafunc.fixturenames:
        opt = metafunc.config.getoption
        manifests = load_dir(opt("--manifests"), load_templates(opt("--permission-templates")))
        metafunc.parametrize("app_manifest", manifests, ids=[Path(m.source).parent.name for m in manifests])


# ------------------------------------------------------------------------------ expectations


def delivered_unasked(msg) -> bool:
    """Whether a declared message reaches a third-party app at once: foundation-tier messages stay out and
    grant-on-first-use ones wait for the user, however they were declared (by name, or inside a 1.0.0 id range)."""
    return msg.signature_satisfied_by(False) and msg.approval != "grantOnFirstUse"


def ranges_overflow(ids: set[int]) -> bool:
    """Whether a connection permitting exactly ``ids`` needs more than the kernel's four range slots: each maximal
    run holding an id >= 64 takes one (server.rs ``MessagePermissions``); KeyOS then refuses the connection itself
    (xous/names ``connect_impl``: ``allow_messages_on_connection`` fails), so every send to that server fails."""
    runs = [mid for mid in ids if mid >= 64 and (mid - 1 not in ids or mid == 64)]
    return len(runs) > 4


def expectations(manifest: Manifest, matrix: CapabilityMatrix) -> list[tuple[dict, str]]:
    """(probe step, its answer: Ok, AccessDenied, or KernelTableFull where the connection cannot be made) for a
    third-party probe holding ``manifest``'s declarations."""
    cases: list[tuple[dict, bool]] = []
    declared_ids: dict[str, set[int]] = {}
    for server, names in manifest.permissions.items():
        for name in names:
            msg = matrix.message(server, name)
            if msg is None:
                continue  # a message of a server the matrix does not list: nothing to expect
            cases.append((P.send(server, name, wait=False), delivered_unasked(msg)))
            declared_ids.setdefault(matrix.canonical(server), set()).add(msg.id)
    for server, ranges in manifest.permission_ranges.items():
        ids = declared_ids.setdefault(matrix.canonical(server), set())
        known = {m.id: m for m in matrix.servers.get(matrix.canonical(server), {}).values()}
        for a, b in ranges:
            ids.update(range(a, b))
            edges = {a, a + 1, (a + b) // 2, min(b, 64) - 1, 64 if a <= 64 < b else a, b - 1}
            for mid in sorted((edges | set(known)) & set(range(a, b))):  # the edges and every message inside
                cases.append((P.send(server, id=mid, wait=False), mid not in known or delivered_unasked(known[mid])))
    permitted: dict[str, set[int]] = {}  # per server, the ids a ranged declaration hands the kernel
    for server, ranges in manifest.permission_ranges.items():
        known = {m.id: m for m in matrix.servers.get(matrix.canonical(server), {}).values()}
        permitted.setdefault(matrix.canonical(server), set()).update(
            mid for a, b in ranges for mid in range(a, b) if mid not in known or delivered_unasked(known[mid]))
    for server in sorted({*matrix.servers, *manifest.permission_ranges}):
        canonical = matrix.canonical(server)
        ids = declared_ids.get(canonical, set())
        # 1.0.0 manifests name servers by their 1.0.0 names; probe a declared server under the name it used
        name = next((s for s in manifest.permission_ranges if matrix.canonical(s) == canonical), server)
        if name != server and server in matrix.servers:
            continue
        known = {m.id: m.name for m in matrix.servers.get(canonical, {}).values()}
        for mid in sorted(set(known) | set(HIGH_IDS)):
            if mid not in ids:
                step = P.send(name, known[mid], wait=False) if mid in known and not manifest.permission_ranges \
                    else P.send(name, id=mid, wait=False)
                cases.append((step, False))
    full = {server for server, ids in permitted.items() if ranges_overflow(ids)}
    return [(step, "KernelTableFull" if matrix.canonical(step["server"]) in full else "Ok" if ok else "AccessDenied")
            for step, ok in cases]


CHUNK = 30  # ~280 ring bytes per denied send: a chunk stays well inside the 16 KiB log ring (docs/probe.md §4)


def test_declared_messages_delivered_undeclared_denied_with_log_line(app_manifest, matrix, probe, probe_id,
                                                                     deny_lines):
    all_cases = expectations(app_manifest, matrix)
    assert {"Ok", "AccessDenied"} <= {want for _, want in all_cases}, "nothing to check on both sides"
    for start in range(0, len(all_cases), CHUNK):
        _check_chunk(all_cases[start:start + CHUNK], app_manifest, matrix, probe, probe_id(str(start)), deny_lines)


def _check_chunk(cases, app_manifest, matrix, probe, app_id, deny_lines: bool):
    run = probe.run(twin(app_manifest, app_id), [step for step, _ in cases])
    records = run.finish()
    probe.close(run)
    assert len(records) == len(cases), f"{len(records)} records for {len(cases)} sends"
    wrong = []
    for (step, want), rec in zip(cases, records):
        if rec["result"] != want:
            wrong.append(f"{step['server']} {step.get('message', '')}#{rec.get('id', step.get('id'))}: "
                         f"{rec['result']}, expected {want}")
    assert not wrong, f"{len(wrong)} sends not enforced as declared:\n" + "\n".join(wrong[:40])
    if not deny_lines:
        return
    # every denial is the kernel's own, logged for that send, in order, naming sender and message
    denied_ids = [rec["id"] for (_, want), rec in zip(cases, records) if want == "AccessDenied"]
    logged = [d.msgid for d in run.denies if d.pid == run.pid]
    assert logged == denied_ids, (f"kernel deny lines for PID {run.pid} do not match the denied sends: "
                                  f"logged {logged[:20]}…, denied {denied_ids[:20]}…")
    # the line names the target: one SID per server, a different SID for different servers
    sids: dict[str, set[str]] = {}
    for (step, _), d in zip([c for c in cases if c[1] == "AccessDenied"], [d for d in run.denies if d.pid == run.pid]):
        sids.setdefault(matrix.canonical(step["server"]), set()).add(d.sid)
    assert all(len(s) == 1 for s in sids.values()), f"one server, several SIDs in deny lines: {sids}"
    assert len({next(iter(s)) for s in sids.values()}) == len(sids), f"two servers share a SID: {sids}"


def test_declared_message_of_another_apps_server_is_delivered(probe, probe_id, templates, deny_lines):
    """Declarations name the servers apps expose as well as the OS's (keyos.md §1.1 ``servers``): a message of
    another app's server is delivered when declared and denied, with the kernel's line, when not."""
    server = f"probe/{probe_id('server')[2:10]}"
    messages = {"Ping": {"id": 1, "type": "scalar", "requiredSignature": "thirdParty"},
                "Pong": {"id": 2, "type": "scalar", "requiredSignature": "thirdParty"}}
    exposer = manifest_for(probe_id("server"), "Echo", {}, templates, servers={server: messages})
    host = probe.run(exposer, [P.await_locked(timeout_s=120)])  # runs, its server up, while the other sends
    caller = manifest_for(probe_id("caller"), "Caller", {server: ["Ping"]}, templates)
    run = probe.run(caller, [P.send(server, id=1, wait=False), P.send(server, id=2, wait=False)])
    records = run.finish()
    probe.close(host)
    assert [r["result"] for r in records] == ["Ok", "AccessDenied"], \
        f"declared Ping / undeclared Pong to {server} answered {records}"
    if deny_lines:
        assert [d.msgid for d in run.denies if d.pid == run.pid] == [2]


# a 1.0.0 manifest's runs on one server: 0..64 fills the mask up to id 63 and, ending at 64, takes none of the
# kernel's four range slots (server.rs ``MessagePermissions::add``: ``if messages.end <= 64`` returns before the
# list), so four separate runs of high ids fit beside it; ids far above any message the matrix names
RUNS_ON_ONE_SERVER = ((0, 64), (1000, 1001), (2000, 2002), (3000, 3001), (4000, 4001))


def test_a_run_ending_at_64_takes_no_range_slot(probe, probe_id, deny_lines):
    """Every run is delivered at its ends (0..64 at 63) and the ids just outside each are refused; were the low run
    given a slot, the fourth high run would find none (``KernelTableFull``) and the connection would be lost."""
    cases = [(mid, a <= mid < b) for a, b in RUNS_ON_ONE_SERVER for mid in sorted({a - 1, a, b - 1, b} - {-1, 0})]
    _runs_answer(probe, probe_id(), "Ranges", RUNS_ON_ONE_SERVER, cases, deny_lines)


# five separate runs of high ids on one server: one more than the kernel's four range slots
FIVE_RUNS = ((1000, 1001), (2000, 2001), (3000, 3001), (4000, 4001), (5000, 5001))


def test_a_fifth_run_of_high_ids_is_refused_not_merged(probe, probe_id):
    """The kernel keeps four ranges for ids >= 64 (server.rs ``MessagePermissions``): a fifth separate run does not
    fit and is refused (``KernelTableFull``), and with it the connection (KeyOS's name server cannot make it,
    xous/names ``connect_impl``); it is never folded into a neighbouring range, which would permit every undeclared
    id between them. Every send to that server, declared, undeclared or between the runs, fails the same way."""
    server, app_id = "os/gui-server", probe_id()
    doc = {"appName": {"en": "Five Runs"}, "appDescription": {}, "appId": app_id, "appSignature": "0x00", "servers": [],
           "permissions": [{"server": server, "messages": f"{a}..{b}"} for a, b in FIVE_RUNS]}
    ids = [1000, 4000, 4500, 5000]  # a declared id, the fourth run, the gap, the fifth run
    assert ranges_overflow({mid for a, b in FIVE_RUNS for mid in range(a, b)})
    run = probe.run(loads(json.dumps(doc), "<probe Five Runs>/manifest.json"),
                    [P.send(server, id=mid, wait=False) for mid in ids])
    got = {mid: rec["result"] for mid, rec in zip(ids, run.finish())}
    assert got == {mid: "KernelTableFull" for mid in ids}, f"five runs {FIVE_RUNS} on {server}: answered {got}"


# two runs with exactly one id between them (server.rs ``MessagePermissions::add``: a run joins a range it overlaps
# or touches, so the id between stays out); ids far above any message the matrix names
RUNS_ONE_APART = ((1000, 1001), (1002, 1003))


def test_runs_one_id_apart_stay_apart(probe, probe_id, deny_lines):
    """Each run is delivered and the ids around and between them are refused: the id between two runs one apart
    is no more permitted than any other undeclared id."""
    cases = [(mid, any(a <= mid < b for a, b in RUNS_ONE_APART)) for mid in range(999, 1004)]
    _runs_answer(probe, probe_id(), "Apart", RUNS_ONE_APART, cases, deny_lines)


# six high runs, added in this order, that fit the kernel's four slots only because touching runs join (server.rs
# ``MessagePermissions::add``: ``list_slot.start <= messages.end && messages.start <= list_slot.end``): 990..1000
# ends where 1000..1002 starts, 1002..1004 starts where it ends, so the three take one slot
RUNS_TOUCHING = ((1000, 1002), (990, 1000), (1002, 1004), (2000, 2001), (3000, 3001), (4000, 4001))


def test_touching_runs_share_one_range_slot(probe, probe_id, deny_lines):
    """Every run is delivered at its ends and the ids just outside the joined 990..1004 and the others are refused;
    were a touching run given a slot of its own, the last run would find none (``KernelTableFull``)."""
    joined = ((990, 1004), *RUNS_TOUCHING[3:])
    cases = [(mid, any(a <= mid < b for a, b in joined))
             for mid in sorted({m for a, b in RUNS_TOUCHING for m in (a - 1, a, b - 1, b)})]
    _runs_answer(probe, probe_id(), "Touching", RUNS_TOUCHING, cases, deny_lines)


def _runs_answer(probe, app_id: str, name: str, runs, cases, deny_lines) -> None:
    """A 1.0.0 manifest declaring ``runs`` on os/gui-server, in order; each ``(id, permitted)`` case sent: a
    permitted id delivered, any other refused (with the kernel's deny line where the lab reads them)."""
    server = "os/gui-server"
    doc = {"appName": {"en": name}, "appDescription": {}, "appId": app_id, "appSignature": "0x00", "servers": [],
           "permissions": [{"server": server, "messages": f"{a}..{b}"} for a, b in runs]}
    run = probe.run(loads(json.dumps(doc), f"<probe {name}>/manifest.json"),
                    [P.send(server, id=mid, wait=False) for mid, _ in cases])
    got = {mid: rec["result"] for (mid, _), rec in zip(cases, run.finish())}
    want = {mid: "Ok" if ok else "AccessDenied" for mid, ok in cases}
    assert got == want, f"runs {runs} on {server}: answered {got}, expected {want}"
    if deny_lines:
        assert [d.msgid for d in run.denies if d.pid == run.pid] == [mid for mid, ok in cases if not ok]


def test_a_ranged_declaration_keeps_each_messages_tier_and_grant(probe, probe_id, matrix, screen,
                                                                 deny_lines):
    """A 1.0.0 manifest declares id ranges, and a range declares each message in it, with that message's signature
    tier and grant (KeyOS resolves every declared permission to its message, xous/names/src/main.rs, and holds it to
    its tier, app-manager permission_catalog.rs): a third-party app declaring os/security 0..64 is delivered the
    general-status messages at once, but not GetSeed (Foundation only) nor GetAppSeed (grant on first use), and a
    waiting GetAppSeed is asked for on the display as if it had been declared by name. The range is the declared
    server's alone: an id in it that another server delivers unasked to any app declaring it stays refused there."""
    server, app_id = "os/security", probe_id()
    doc = {"appName": {"en": "Ranged"}, "appDescription": {}, "appId": app_id, "appSignature": "0x00", "servers": [],
           "permissions": [{"server": server, "messages": "0..64"}]}
    names = ("GetOsVersionInfo", "GetDeviceId", "GetRandom", "GetSeed", "SetSeed", "GetAppSeed")
    msgs = [matrix.message(server, n) for n in names]
    assert all(m is not None and m.id < 64 for m in msgs), f"{names} are not all ids below 64 of {server}"
    cases = [(m.id, delivered_unasked(m)) for m in msgs]
    assert {ok for _, ok in cases} == {True, False}, f"{names}: nothing to check on both sides"
    other, beside = next((srv, m) for srv, known in sorted(matrix.servers.items()) if srv != server
                         for m in known.values() if m.id < 64 and delivered_unasked(m))
    run = probe.run(loads(json.dumps(doc), "<probe Ranged>/manifest.json"),
                    [P.send(server, id=mid, wait=False) for mid, _ in cases]
                    + [P.send(other, id=beside.id, wait=False), P.send(server, "GetAppSeed", wait=True, timeout_s=60)])
    # the sends above wait for nothing, so the last step's prompt may be up before their records are read: each
    # record is read as it comes, and answer_prompt below proves the prompt is the waiting GetAppSeed's
    got = {name: run.step(i, timeout=60)["result"] for i, name in enumerate(names)}
    want = {name: "Ok" if ok else "AccessDenied" for name, (_, ok) in zip(names, cases)}
    assert got == want, f"{server} 0..64 declared by a third-party app: answered {got}, expected {want}"
    outside = run.step(len(names), timeout=60)["result"]
    assert outside == "AccessDenied", f"{server} 0..64 opened {other} id {beside.id} ({beside.name}) too: {outside}"
    asked = answer_prompt(screen, "Not Now", run=run, step=len(names) + 1)
    assert asked["result"] == "AccessDenied", f"'Not Now' on the ranged GetAppSeed's prompt answered {asked}"
    if deny_lines:  # the broker's denial is not the kernel's: no line
        assert [d.msgid for d in run.denies if d.pid == run.pid] == [mid for mid, ok in cases if not ok] + [beside.id]


def test_undeclared_grantable_message_is_denied_without_a_prompt(probe, probe_id, templates, screen):
    """A waiting send of a grantable message the app never declared: the broker denies it silently."""
    m = manifest_for(probe_id(), "Undeclared", {}, templates)
    run = probe.run(m, [P.send("os/security", "GetAppSeed", wait=True, timeout_s=20)])
    assert result_without_prompt(screen, run, 0)["result"] == "AccessDenied"


def test_foundation_tier_refused_to_a_third_party_app(probe, probe_id, templates, matrix, screen, deny_lines):
    """Declaring a Foundation-only message does not give it to a third-party app, waiting or not."""
    foundation = [("os/security", "GetSeed"), ("os/settings", "GetDeveloperMode"), ("os/settings", "SetDeveloperMode"),
                  ("os/gui-server", "CaptureScreen"), ("os/gui-server", "InjectTouch"),
                  ("os/quantum-link", "SendAccountUpdate"), ("os/fs", "GetSystemWriteAccess")]
    assert all(not matrix.message(s, n).signature_satisfied_by(False) for s, n in foundation)
    perms: dict[str, list[str]] = {}
    for s, n in foundation:
        perms.setdefault(s, []).append(n)
    steps = [P.send(s, n, wait=False) for s, n in foundation] + [P.send(s, n, wait=True, timeout_s=20) for s, n in foundation]
    run = probe.run(manifest_for(probe_id(), "Tier", perms, templates), steps)
    records = [result_without_prompt(screen, run, i) for i in range(len(steps))]
    assert [r["result"] for r in records] == ["AccessDenied"] * len(steps), records
    assert run.finish() == records  # the whole plan ran and the ring kept every line of it
    if deny_lines:
        assert [d.msgid for d in run.denies if d.pid == run.pid] == [r["id"] for r in records[:len(foundation)]]


# ------------------------------------------------------------------------------ grant on first use

GRANTABLE = [("os/security", "GetAppSeed", "App-scoped seed"), ("os/fs", "GetAirlockReadAccess", "Airlock files"),
             ("os/fs", "GetUserWriteAccess", "User files"), ("os/fs", "GetUsbReadAccess", "USB files"),
             ("os/gui-server", "ShowModal", "System dialogs"), ("os/camera", "Subscribe", "Camera use")]


@pytest.mark.parametrize("server,message,label", GRANTABLE, ids=[g[1] for g in GRANTABLE])
def test_first_use_prompts_then_always_allow_persists_for_the_subgroup(server, message, label, matrix, probe,
                                                                        probe_id, templates, screen):
    msg = matrix.message(server, message)
    assert msg.approval == "grantOnFirstUse" and matrix.label(msg.permission_group) == label
    siblings = [m.name for m in matrix.servers[server].values()
                if m.permission_group == msg.permission_group and m.name != message]
    app_id = probe_id()
    m = manifest_for(app_id, "Grant Probe", {server: [message, *siblings]}, templates)
    run = probe.run(m, [P.send(server, message, wait=False), P.send(server, message, wait=True, timeout_s=60)])
    assert run.step(0)["result"] == "AccessDenied", "a grantable message was delivered before the user allowed it"
    answer_prompt(screen, "Always Allow", body=f"Grant Probe wants to access {label}", run=run, step=1)
    assert run.step(1, timeout=60)["result"] == "Ok"
    probe.close(run)
    # persisted: a new run has it (and its whole subgroup) without asking
    again = probe.launch(app_id)
    # the relaunched probe runs the same plan: the non-waiting send now goes through
    assert again.step(0)["result"] == "Ok", "'Always Allow' did not persist across runs"
    assert again.step(1)["result"] == "Ok"
    probe.close(again)
    if siblings:
        m2 = manifest_for(app_id, "Grant Probe", {server: [message, *siblings]}, templates)
        sib = probe.run(m2, [P.send(server, s, wait=False) for s in siblings])
        assert [r["result"] for r in sib.finish()] == ["Ok"] * len(siblings), \
            "the grant did not cover the rest of its subgroup"


def test_an_allow_opens_the_asked_message_and_not_its_neighbours(probe, probe_id, templates, matrix, screen):
    """The broker's Allow widens the waiting connection by the one id it asked about (permission_requests.rs
    ``resolve_message_permission``: the request's message id on the request's connection, nothing around it): after
    GetAppSeed is allowed, the ids just below and above it on the same connection, which the app never declared, are
    still refused, and so is the same id on the app's connection to another server (os/fs), refused before the Allow."""
    server, name, elsewhere = "os/security", "GetAppSeed", "os/fs"
    mid = matrix.message(server, name).id
    declared = {m.id for m in matrix.servers[server].values() if m.name == name}
    neighbours = [n for n in (mid - 1, mid + 1) if n >= 0 and n not in declared]
    run = probe.run(manifest_for(probe_id(), "Neighbours", {server: [name]}, templates),
                    [P.send(elsewhere, id=mid, wait=False), P.send(server, name, wait=True, timeout_s=60),
                     P.send(elsewhere, id=mid, wait=False)] + [P.send(server, id=n, wait=False) for n in neighbours])
    assert answer_prompt(screen, "Always Allow", run=run, step=1)["result"] == "Ok", "the allowed GetAppSeed failed"
    before, _, after, *around = run.finish()
    if before["result"] != "AccessDenied":
        raise P.ProbeBroken(f"id {mid} on {elsewhere} answered {before['result']} before any Allow: the manifest "
                            "template opens it, so it cannot show what the Allow opened")
    assert after["result"] == "AccessDenied", f"allowing {name} (id {mid}) opened id {mid} on {elsewhere} too: {after}"
    got = {n: rec["result"] for n, rec in zip(neighbours, around)}
    assert got == {n: "AccessDenied" for n in neighbours}, \
        f"allowing {name} (id {mid}) also opened the undeclared ids around it on its connection: {got}"


@pytest.mark.parametrize("name", ["Wallet Companion Extended Edition Pro", "Wallet Companion Edition"],
                         ids=["long", "exactly-24"])
def test_prompt_caps_the_apps_name(name, probe, probe_id, templates, screen):
    """The app name is the app's own text: the prompt shows exactly 24 characters of it, then "…"; a name of
    24 characters shows whole (gui-server's MAX_APP_NAME, keyos.md §1.4)."""
    run = probe.run(manifest_for(probe_id(), name, {"os/security": ["GetAppSeed"]}, templates),
                    [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    shown = screen.wait_for("Allow Access?")
    text = " ".join(line.text for line in shown.lines)
    if len(name) > 24:
        assert normal(name[:24]) in normal(text) and normal(name[:25]) not in normal(text), \
            f"name not capped at 24 characters: {text!r}"
    else:
        assert normal(f"{name} wants to access") in normal(text), f"a 24-character name was cut: {text!r}"
    assert normal("wants to access App-scoped seed") in normal(text), text
    answer_prompt(screen, "Not Now", run=run, step=0)
    assert run.step(0, timeout=60)["result"] == "AccessDenied"


def test_a_subgroups_grant_leaves_its_sibling_subgroups_asking(probe, probe_id, templates, screen):
    """Grants are kept per app per *subgroup* (``permission_grants.rs``, keyos.md §1.4): allowing User files
    (file-system.user-files) answers nothing for Airlock files (file-system.airlock-files), a subgroup of the same
    group that the app declares too; its first use is asked for itself."""
    m = manifest_for(probe_id(), "Two Subgroups", {"os/fs": ["GetUserReadAccess", "GetAirlockReadAccess"]}, templates)
    run = probe.run(m, [P.send("os/fs", "GetUserReadAccess", wait=True, timeout_s=60),
                        P.send("os/fs", "GetAirlockReadAccess", wait=True, timeout_s=60)])
    allowed = answer_prompt(screen, "Always Allow", body="Two Subgroups wants to access User files", run=run, step=0)
    assert allowed["result"] == "Ok", f"the allowed User files grant (control) answered {allowed}"
    sibling = answer_prompt(screen, "Not Now", body="Two Subgroups wants to access Airlock files", run=run, step=1)
    assert sibling["result"] == "AccessDenied", f"Airlock files, answered 'Not Now', answered {sibling}"


def test_a_subgroups_grant_covers_only_the_messages_declared(probe, probe_id, templates, screen):
    """A subgroup's grant covers the messages of it the app *declared* (GetPermissionRequestInfo answers Unauthorized
    for an undeclared one before it looks at grants, os/app-manager, keyos.md §1.4): an app declaring only
    GetAirlockReadAccess, once Airlock files are allowed, is still refused GetAirlockWriteAccess, unasked."""
    m = manifest_for(probe_id(), "Read Only", {"os/fs": ["GetAirlockReadAccess"]}, templates)
    run = probe.run(m, [P.send("os/fs", "GetAirlockReadAccess", wait=True, timeout_s=60),
                        P.send("os/fs", "GetAirlockWriteAccess", wait=True, timeout_s=20)])
    allowed = answer_prompt(screen, "Always Allow", body="Read Only wants to access Airlock files", run=run, step=0)
    assert allowed["result"] == "Ok", f"the allowed Airlock files grant (control) answered {allowed}"
    write = result_without_prompt(screen, run, 1)
    assert write["result"] == "AccessDenied", f"the undeclared GetAirlockWriteAccess, its subgroup allowed, answered {write}"


def _seed_probe(probe, app_id, templates, steps):
    return probe.run(manifest_for(app_id, "Seed Probe", {"os/security": ["GetAppSeed"]}, templates), steps)


def test_never_allow_persists(probe, probe_id, templates, screen):
    app_id = probe_id()
    run = _seed_probe(probe, app_id, templates, [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    answer_prompt(screen, "Never Allow", run=run, step=0)
    assert run.step(0, timeout=60)["result"] == "AccessDenied"
    probe.close(run)
    again = probe.launch(app_id)
    assert result_without_prompt(screen, again, 0)["result"] == "AccessDenied", "a stored 'Never Allow' was allowed"


def test_not_now_denies_for_this_run_only(probe, probe_id, templates, screen):
    app_id = probe_id()
    steps = [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60),
             P.send("os/security", "GetAppSeed", wait=True, timeout_s=20)]
    run = _seed_probe(probe, app_id, templates, steps)
    answer_prompt(screen, "Not Now", run=run, step=0)
    assert run.step(0, timeout=60)["result"] == "AccessDenied"
    assert result_without_prompt(screen, run, 1)["result"] == "AccessDenied", "'Not Now' did not hold for the run"
    probe.close(run)
    again = probe.launch(app_id)
    answer_prompt(screen, "Always Allow", run=again, step=0)  # asked again: 'Not Now' was not stored
    assert again.step(0, timeout=60)["result"] == "Ok"


def test_not_now_binds_only_the_app_that_said_it(probe, probe_id, templates, screen):
    """'Not Now' is kept for the requesting run only (gui-server ``DenyForRun``, keyos.md §1.4): while the app that
    was told it still runs, another app asking for the same subgroup is asked for itself."""
    first = _seed_probe(probe, probe_id("first"), templates,
                        [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60), P.await_locked(timeout_s=120)])
    denied = answer_prompt(screen, "Not Now", run=first, step=0)
    assert denied["result"] == "AccessDenied", f"'Not Now' (control) answered {denied}"
    other = _seed_probe(probe, probe_id("other"), templates, [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    try:
        asked = answer_prompt(screen, "Not Now", run=other, step=0)
    finally:
        probe.close(first)
    assert asked["result"] == "AccessDenied", f"the second app's own 'Not Now' answered {asked}"


def test_unanswered_prompt_denies_and_stores_nothing(probe, probe_id, templates, screen, unlocked_prime):
    app_id = probe_id()
    run = _seed_probe(probe, app_id, templates, [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    screen.wait_for("Allow Access?")
    unlocked_prime.home()  # leaving the prompt drops it unanswered
    assert run.step(0, timeout=60)["result"] == "AccessDenied", "a prompt dropped unanswered did not deny"
    probe.close(run)
    again = probe.launch(app_id)
    answer_prompt(screen, "Not Now", run=again, step=0)  # asked again: nothing was stored
    assert again.step(0, timeout=60)["result"] == "AccessDenied"


# assumed: a drag long enough for gui-server to take it as a move, not a press (modal.rs names no threshold), and
# short enough to stay above the popup from `outside_the_prompt`, which leaves room for it
DRAG_PX = 40


@pytest.mark.parametrize("gesture", ["tap", "drag"])
def test_a_touch_outside_the_prompt_denies_and_stores_nothing(gesture, probe, probe_id, templates, screen, touch,
                                                               station):
    """gui-server cancels the popup on a press above it (os/gui-server/src/modal.rs ``modal_process_touch``),
    and a canceled permission prompt denies without recording a decision (permissions.rs
    ``PendingPermissionPrompt::finish``: ``AlertResult::Canceled``)."""
    app_id = probe_id()
    run = _seed_probe(probe, app_id, templates, [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    screen.wait_for("Allow Access?")
    run.pump(0.05)
    assert 0 not in run.records, f"step 0 was answered {run.records[0]['result']!r} before the prompt was dismissed"
    x, y = outside_the_prompt(station.profile)
    if gesture == "tap":
        touch.tap(x, y)
    else:  # a drag that starts above the popup and stays there: the press point decides (modal_process_touch)
        touch.swipe(x, y, x, y + DRAG_PX)
    # the popup goes at the press: failed if it is still read at the deadline, broken if nothing is read (the app's
    # own 60 s wait never decides: its end is no evidence either way)
    wait_prompt_gone(screen, PROMPT_GONE_S, f" after a {gesture} above it")
    assert run.step(0, timeout=60)["result"] == "AccessDenied", f"a prompt dismissed by a {gesture} outside it did not deny"
    probe.close(run)
    again = probe.launch(app_id)
    answer_prompt(screen, "Not Now", run=again, step=0)  # asked again: nothing was stored
    assert again.step(0, timeout=60)["result"] == "AccessDenied"


@pytest.mark.parametrize("row", ["first-row-of-the-prompt", "row-above-the-prompt"])
def test_the_prompts_top_edge_is_exact(row, probe, probe_id, templates, screen, touch, station):
    """A press cancels the popup only outside its area (os/gui-server/src/modal.rs ``modal_process_touch``: not
    ``is_within_area(0, modal_y, SCREEN_WIDTH, SCREEN_HEIGHT - modal_y)``, gui_server_api ``Touch::is_within_area``:
    ``y <= py < y + h``; ``modal_y = SCREEN_HEIGHT - MODAL_HEIGHT`` once it is up): a press on the popup's first row
    leaves it up, a press on the row above cancels it, denying.  Pressed by the debug link's touch, exact to a pixel
    (never a stylus), which an unlocked unit takes on either flavour.  assumed: the Alerts app answers nothing for a press on its own top row (its
    buttons sit at the bottom of the popup; its layout is not public)."""
    if not isinstance(touch, DebugTouch):  # a stylus is not exact to a pixel; the unit is unlocked for the probe,
        touch = DebugTouch(probe.client, station.profile.touch.home_button.centre)  # so its link takes the press
    app_id = probe_id()
    run = _seed_probe(probe, app_id, templates, [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60)])
    screen.wait_for("Allow Access?")
    top = station.profile.display.height - station.profile.display.modal_height
    if row == "first-row-of-the-prompt":
        touch.tap(station.profile.display.width // 2, top)
        answer_prompt(screen, "Always Allow", run=run, step=0)
        assert run.step(0, timeout=60)["result"] == "Ok", "a press on the prompt's first row canceled it"
        return
    touch.tap(station.profile.display.width // 2, top - 1)
    assert run.step(0, timeout=60)["result"] == "AccessDenied", "a press on the row above the prompt did not cancel it"


# ------------------------------------------------------------------------------ no escalation


def test_running_app_cannot_widen_its_manifest(probe, probe_id, templates, screen):
    app_id = probe_id()
    narrow = manifest_for(app_id, "Narrow", {"os/security": ["GetAppSeed"]}, templates)
    steps = [P.send("os/security", "GetAppSeed", wait=True, timeout_s=60),  # parks: the moment to widen
             P.send("os/security", "GetDeviceId", wait=False),
             P.send("os/app-manager", "RefreshInstalledApp", wait=False),
             P.open_file("AppResources", "manifest.json", "write"),
             P.send("os/security", "GetDeviceId", wait=False)]
    run = probe.run(narrow, steps)
    screen.wait_for("Allow Access?")
    wide = manifest_for(app_id, "Narrow", {"os/security": ["GetAppSeed", "GetDeviceId"],
                                           "os/app-manager": ["RefreshInstalledApp"]}, templates)
    probe.install(wide, steps)  # a validly signed, wider manifest lands while the app runs
    answer_prompt(screen, "Not Now", run=run, step=0)
    records = run.finish(timeout=60)
    assert records[1]["result"] == "AccessDenied", "the running app gained a message its launch manifest lacks"
    assert records[2]["result"] == "AccessDenied"
    assert records[3]["result"] == "InvalidOperation", f"AppResources is not read-only to the app: {records[3]}"
    assert records[4]["result"] == "AccessDenied"


def test_sideload_cannot_take_a_foundation_app_id(probe, templates, unlocked_prime):
    """Either LOAD_APP_END refuses the bundle, or launching the id still starts the built-in process."""
    for pid in P.running(unlocked_prime, BUILTIN_SETTINGS):
        unlocked_prime.close_app(pid)  # a Settings left running would answer AlreadyRunning with the old PID
    if P.running(unlocked_prime, BUILTIN_SETTINGS):
        raise P.ProbeBroken(f"{unlocked_prime.device}: Settings still runs after CLOSE_APP; cannot launch it afresh")
    m = manifest_for(SETTINGS_APP, "Settings", {"os/security": ["GetSeed", "GetAppSeed"]}, templates)
    plan = [P.send("os/security", "GetSeed", wait=False)]
    try:
        probe.install(m, plan)
    except DeviceError as e:
        if e.command != "LOAD_APP_END":
            raise P.ProbeBroken(f"the sideload failed before the device judged the bundle: {e}") from None
        return  # LOAD_APP_END refused the bundle: the built-in keeps its id
    P.drain(unlocked_prime)
    result = unlocked_prime.launch_app(SETTINGS_APP)
    assert result.status is LaunchStatus.LAUNCHED, f"Settings did not launch after the shadowing sideload: {result}"
    name = P.processes(unlocked_prime).get(result.pid)
    assert name == BUILTIN_SETTINGS, f"PID {result.pid} runs {name!r} for the Settings id, not the built-in {BUILTIN_SETTINGS}"
    run = P.ProbeRun(unlocked_prime, SETTINGS_APP, result.pid, plan)
    run.pump(1.0)
    assert run.steps is None and not run.records, f"the sideloaded probe ran as Settings: {run.lines[-5:]}"


def _bundle(probe, manifest, steps):
    return P.bundle(probe.elf, manifest, steps, probe.publisher, timestamp=probe.client.system_time())


# paths a sideload must not write: out of the bundle, absolute, or with an empty or '.' part or a trailing '/'
ESCAPES = ["../escape.bin", "/escape.bin", "resources/../../escape.bin", "resources//x", "resources/./x", "resources/"]


def test_sideload_paths_stay_inside_the_bundle(probe_id, unlocked_prime):
    """LOAD_APP_FILE_BEGIN takes a relative path without empty, '.' or '..' parts or a trailing '/'
    (``os/usb-debug/src/dispatch.rs`` ``is_valid_upload_relative_path``): the device itself refuses each escape
    with Err, sent past the host's own check, and takes the shortest path, one character."""
    app_id = probe_id()
    taken = {}
    for path in [*ESCAPES, "x"]:
        unlocked_prime.request(load_app_begin(app_id))  # each path in a session of its own
        try:
            unlocked_prime.request(request(Cmd.LOAD_APP_FILE_BEGIN, struct.pack("<Q", 1) + path.encode()))
            taken[path] = True
        except CommandRefused:
            taken[path] = False
    assert taken == {**dict.fromkeys(ESCAPES, False), "x": True}, f"LOAD_APP_FILE_BEGIN took (path: taken): {taken}"


def _staged(prime, app_id: str, files: dict[str, bytes], cut: bytes = b"") -> None:
    """LOAD_APP_BEGIN and ``files`` sent whole, as the host sends them, and no LOAD_APP_END; ``cut`` (a
    path) is the one file whose upload stops halfway."""
    prime.request(load_app_begin(app_id))
    for path, data in files.items():
        prime.request(load_app_file_begin(len(data), path))
        sent = data[:len(data) // 2] if path == cut else data
        for i in range(0, len(sent), MAX_CHUNK):
            prime.request(load_app_chunk(sent[i:i + MAX_CHUNK]))


def _stale_and_own(probe, app_id: str) -> tuple[str, str]:
    """Launch the installed probe: what it finds of the stale file, and of its own plan (the control)."""
    run = probe.launch(app_id)
    stale, own = run.finish()
    probe.close(run)
    assert own["result"] == "Ok", f"the probe cannot read its own plan (control): {own}"
    return stale["result"], own["result"]


def test_load_app_end_takes_only_a_whole_fresh_bundle(probe, probe_id, templates, unlocked_prime):
    """``os/usb-debug/src/dispatch.rs``: LOAD_APP_END with a file still open is refused ("incomplete session")
    and the installed bundle "remains intact until the replacement upload completes"; a chunk past its file's
    declared size is refused ("would exceed expected size"); LOAD_APP_BEGIN aborts the unfinished session and
    removes its staged files, so nothing of it reaches the next bundle."""
    prime, app_id = unlocked_prime, probe_id()
    m = manifest_for(app_id, "Whole", {}, templates)
    plan = [P.open_file("AppResources", "stale.bin", "read"), P.open_file("AppResources", "probe-plan.json", "read")]
    files = probe.install(m, plan)
    assert _stale_and_own(probe, app_id)[0] == "FileNotFound", "the installed bundle has a file it was not given"
    stale = {"resources/stale.bin": b"stale", "manifest.json": files["manifest.json"], "app.elf": files["app.elf"]}
    _staged(prime, app_id, stale, cut="app.elf")
    with pytest.raises(DeviceError):
        prime.request(request(Cmd.LOAD_APP_END))
    assert _stale_and_own(probe, app_id)[0] == "FileNotFound", "a refused LOAD_APP_END changed the installed bundle"
    _staged(prime, app_id, {"resources/stale.bin": b"stale"})
    prime.request(load_app_file_begin(4, "resources/size.bin"))
    with pytest.raises(DeviceError):
        prime.request(load_app_chunk(b"12345678"))  # twice the size declared: refused, the session left open
    probe.install(m, plan)  # a fresh LOAD_APP_BEGIN .. LOAD_APP_END
    assert _stale_and_own(probe, app_id)[0] == "FileNotFound", "the unfinished session's file reached the new bundle"


def _answer_to(prime, body: bytes) -> str:
    """The device's answer to one request it must refuse: "Ok", "Err", "Locked", or "link dropped" when the
    device closed the link at it and a fresh open finds the unit answering (the device's doing: it did not answer
    the request). An answer that did not come in time, or a unit that does not answer the fresh open, is raised:
    no evidence either way."""
    try:
        prime.request(body)
        return "Ok"
    except DeviceLocked:
        return "Locked"
    except DeviceError:
        return "Err"
    except ResponseTimeout:
        raise
    except LinkClosed:
        prime.close()
        prime.open()
        prime.version()
        return "link dropped"


def test_a_chunk_with_no_file_open_is_refused(probe_id, unlocked_prime):
    """``dispatch.rs`` ``load_app_chunk``: a LOAD_APP_CHUNK while no file of the session is open ("no open file")
    is answered Err, right after LOAD_APP_BEGIN and after a file's last chunk closed it; the unit stays on the
    link (``DebugProtocol::process`` answers every decoded request)."""
    prime, app_id = unlocked_prime, probe_id()
    prime.request(load_app_begin(app_id))
    answer = _answer_to(prime, load_app_chunk(b"x"))
    assert answer == "Err", f"a LOAD_APP_CHUNK right after LOAD_APP_BEGIN, no file open, was answered {answer}"
    prime.request(load_app_file_begin(1, "resources/one.bin"))
    prime.request(load_app_chunk(b"1"))  # the whole file: it is closed
    answer = _answer_to(prime, load_app_chunk(b"2"))
    assert answer == "Err", f"a LOAD_APP_CHUNK after its file's last chunk was answered {answer}"


def test_sideload_and_certificates_wait_for_the_unlock(probe, probe_id, templates, unlocked_prime, touch, look, pin):
    """On every build (keyos.md §10 "Lock rules"; ``dispatch.rs`` ``reject_load_app_if_locked`` on each LOAD_APP_*
    command, and ``install_certificate``'s own check) a locked unit answers Locked to LOAD_APP_END and to
    INSTALL_CERTIFICATE, and the locked LOAD_APP_END aborts its session: nothing of it is installed. A malformed
    INSTALL_CERTIFICATE (the fingerprint, no PEM) is refused at decoding, before the lock is looked at: Err, not
    Locked (usb-debug-protocol ``Command::decode`` refuses an empty PEM; ``dispatch.rs`` ``process`` answers a
    decoding error Err before its lock checks)."""
    prime, app_id = unlocked_prime, probe_id()
    files = _bundle(probe, manifest_for(app_id, "Locked", {}, templates), [])
    stranger = P.Publisher.create(prime.system_time(), name="prime-hil locked")
    before = prime.publisher_count()
    _staged(prime, app_id, files)  # the whole bundle: only LOAD_APP_END is left
    show_lock_screen(prime, touch)
    try:
        with pytest.raises(DeviceLocked):
            prime.request(request(Cmd.LOAD_APP_END))
        with pytest.raises(DeviceLocked):
            prime.install_certificate(stranger.fingerprint, stranger.pem)
        with pytest.raises(CommandRefused) as no_pem:
            prime.request(request(Cmd.INSTALL_CERTIFICATE, stranger.fingerprint.encode()))
    finally:
        enter_pin(touch, wait_pin_screen(look, touch), pin)  # the keys where the lock screen shows them
    assert wait_unlocked(prime), "the test PIN typed on the lock screen did not unlock"
    with pytest.raises(DeviceError):
        prime.request(request(Cmd.LOAD_APP_END))  # the session went with the locked answer
    assert prime.launch_app(app_id).status is LaunchStatus.APP_ID_NOT_FOUND, "a bundle ended while locked was installed"
    assert prime.publisher_count() == before, "a certificate was installed while the unit was locked"
    assert isinstance(no_pem.value, DeviceError), f"a fingerprint without a PEM, sent locked, was answered {no_pem.value}"


# A bundle that does not verify is refused either way KeyOS has: newer app-managers verify a sideloaded bundle when they
# scan it and skip it, so its id is not found (os/app-manager/src/registry.rs load_app: check_manifest_signature(..)?,
# then "Skipping app bundle"); a KeyOS that verifies at launch answers SignatureRejected (usb-debug dispatch.rs).
UNVERIFIED = {LaunchStatus.SIGNATURE_REJECTED, LaunchStatus.APP_ID_NOT_FOUND}


def _sideload_refused(prime, app_id: str, files: dict[str, bytes]) -> bool:
    """True if LOAD_APP_END refused the bundle, False if it took it; broken if the sideload failed before the
    device judged the bundle (Developer Mode off, a lost session): that is no evidence about the bundle."""
    try:
        prime.sideload(app_id, files)
    except DeviceError as e:
        if e.command != "LOAD_APP_END":
            raise P.ProbeBroken(f"the sideload failed before the device judged the bundle: {e}") from None
        return True
    return False


def test_tampered_manifest_does_not_launch(probe, probe_id, templates, unlocked_prime):
    app_id = probe_id()
    files = _bundle(probe, manifest_for(app_id, "Tamper", {"os/security": ["GetRandom"]}, templates), [])
    doc = files["manifest.json"].replace(b'"GetRandom"', b'"GetRandom", "GetSeed"')  # the JSON behind the header
    assert doc != files["manifest.json"]
    unlocked_prime.sideload(app_id, {**files, "manifest.json": doc})
    assert unlocked_prime.launch_app(app_id).status in UNVERIFIED


# assumed: which LaunchFailureReason KeyOS gives a bundle without app.elf is not in its source (dispatch.rs names
# SignatureRejected for what does not verify, Internal for the rest); refused at LOAD_APP_END, the id is not found
NOTHING_TO_LAUNCH = {LaunchStatus.SIGNATURE_REJECTED, LaunchStatus.INTERNAL_ERROR, LaunchStatus.APP_ID_NOT_FOUND}


def test_bundle_without_its_elf_does_not_launch(probe, probe_id, templates, unlocked_prime):
    """A validly signed manifest alone is not an app: with no app.elf whose signature could verify, nothing
    launches under its id."""
    app_id = probe_id()
    files = _bundle(probe, manifest_for(app_id, "No Elf", {"os/security": ["GetRandom"]}, templates), [])
    del files["app.elf"]
    _sideload_refused(unlocked_prime, app_id, files)  # refused at LOAD_APP_END, or the launch below finds nothing
    status = unlocked_prime.launch_app(app_id).status
    assert status in NOTHING_TO_LAUNCH, f"a bundle without app.elf answered {status.name} to LAUNCH_APP"


def test_tampered_binary_does_not_launch(probe, probe_id, templates, unlocked_prime):
    app_id = probe_id()
    files = _bundle(probe, manifest_for(app_id, "Tamper", {}, templates), [])
    elf = bytearray(files["app.elf"])
    elf[-1] ^= 0xFF
    unlocked_prime.sideload(app_id, {**files, "app.elf": bytes(elf)})
    assert unlocked_prime.launch_app(app_id).status in UNVERIFIED


def test_manifest_signed_by_another_key_does_not_launch(probe, probe_id, templates, unlocked_prime):
    """The manifest must be signed by the ELF's own publisher: not by a stranger, and not by another
    publisher whose certificate is installed too (keyos.md §3.2: pubkey2 is the app's publisher)."""
    app_id = probe_id()
    other = P.Publisher.create(unlocked_prime.system_time(), name="prime-hil other publisher")
    unlocked_prime.install_certificate(other.fingerprint, other.pem)
    m = manifest_for(app_id, "Other", {}, templates)
    files = _bundle(probe, m, [])
    resigned = sign_manifest(loads(files["manifest.json"], "manifest.json"), other.secret, version="1.0.0",
                             timestamp=unlocked_prime.system_time())
    unlocked_prime.sideload(app_id, {**files, "manifest.json": resigned})
    assert unlocked_prime.launch_app(app_id).status in UNVERIFIED


def test_manifest_is_bound_to_its_elf(probe, probe_id, templates, unlocked_prime):
    """A validly signed manifest with another validly signed ELF of the same publisher is refused: its
    ``fileHashes`` name the ELF it was signed with (keyos.md §1.1, §10 "Signed manifests")."""
    app_id = probe_id()
    m = manifest_for(app_id, "Bound", {}, templates)
    now = unlocked_prime.system_time()
    first = P.bundle(probe.elf, m, [], probe.publisher, timestamp=now)
    second = P.bundle(probe.elf, manifest_for(app_id, "Bound", {}, templates), [], probe.publisher, timestamp=now - 1)
    assert first["app.elf"] != second["app.elf"] and first["manifest.json"] != second["manifest.json"]
    unlocked_prime.sideload(app_id, {**first, "app.elf": second["app.elf"]})
    assert unlocked_prime.launch_app(app_id).status in UNVERIFIED
    unlocked_prime.sideload(app_id, second)  # the positive control: the pair as signed launches
    result = unlocked_prime.launch_app(app_id)
    assert result.status is LaunchStatus.LAUNCHED, result
    unlocked_prime.close_app(result.pid)


def test_certificate_with_a_wrong_fingerprint_installs_nothing(probe, probe_id, templates, unlocked_prime):
    """INSTALL_CERTIFICATE whose fingerprint is not sha256 of the PEM's key is refused, and nothing is
    installed (keyos.md §3.2, §9: fingerprint = sha256 of the 33-byte compressed public key)."""
    pub = P.Publisher.create(unlocked_prime.system_time(), name="prime-hil mismatched publisher")
    decoy = P.Publisher.create(unlocked_prime.system_time(), name="prime-hil decoy")
    before = unlocked_prime.publisher_count()
    with pytest.raises(DeviceError):
        unlocked_prime.install_certificate(decoy.fingerprint, pub.pem)
    assert unlocked_prime.publisher_count() == before, "a refused certificate changed the installed count"
    app_id = probe_id()
    unlocked_prime.sideload(app_id, P.bundle(probe.elf, manifest_for(app_id, "Mismatch", {}, templates), [], pub,
                                             timestamp=unlocked_prime.system_time()))
    assert unlocked_prime.launch_app(app_id).status is LaunchStatus.NO_CERTIFICATE, \
        "an app of the refused certificate's publisher is trusted"


def test_certificate_fingerprint_is_compared_whole(unlocked_prime):
    """The fingerprint is all 64 hex characters of sha256 of the key (keyos.md §3.2,
    ``os/app-manager/THIRD_PARTY_CERTIFICATE_FORMAT.md``); its short form ``12345678…90abcdef`` is for people. A
    fingerprint that agrees with the key's only in those 16 characters is refused and installs nothing; the same
    PEM with its own fingerprint then installs (the control: the refusal was the fingerprint's)."""
    prime = unlocked_prime
    pub = P.Publisher.create(prime.system_time(), name="prime-hil short-form look-alike")
    fp = pub.fingerprint
    look_alike = fp[:8] + "".join("1" if c == "0" else "0" for c in fp[8:-8]) + fp[-8:]
    before = prime.publisher_count()
    with pytest.raises(DeviceError):
        prime.install_certificate(look_alike, pub.pem)
    assert prime.publisher_count() == before, "a certificate whose fingerprint matched only in its short form installed"
    prime.install_certificate(fp, pub.pem)
    assert prime.publisher_count().installed == before.installed + 1, "the certificate with its own fingerprint (control)"


CERT_PEM_MAX = 16 * 1024  # keyos.md §3.2 (os/app-manager/THIRD_PARTY_CERTIFICATE_FORMAT.md) and §5.1 INSTALL_CERTIFICATE


def test_a_certificate_is_taken_up_to_16_kib_and_no_larger(unlocked_prime):
    """A publisher certificate's PEM is at most 16 KiB (keyos.md §3.2, §5.1).  The same certificate padded after its
    END line to one byte over is refused and installs nothing; padded to exactly 16 KiB it installs (the control:
    the refusal was the size's).  Sent as given, unchecked by the host.  assumed: KeyOS's PEM reader ignores blank
    lines after the END line (RFC 7468 §2 lets text stand outside the encapsulation boundaries)."""
    prime = unlocked_prime
    pub = P.Publisher.create(prime.system_time(), name="prime-hil 16 KiB publisher")

    def padded(size: int) -> bytes:
        return request(Cmd.INSTALL_CERTIFICATE, pub.fingerprint.encode() + pub.pem.ljust(size, b"\n"))

    before = prime.publisher_count()
    with pytest.raises(CommandRefused):
        prime.request(padded(CERT_PEM_MAX + 1))
    assert prime.publisher_count() == before, "a certificate over 16 KiB changed the installed count"
    prime.request(padded(CERT_PEM_MAX))
    assert prime.publisher_count().installed == before.installed + 1, "a certificate of exactly 16 KiB did not install"


PROFILE_FLAWS = {"certificate-authority": {"ca": True},
                 "not-for-code-signing": {"usage": ExtendedKeyUsageOID.SERVER_AUTH},
                 "not-secp256k1": {"curve": ec.SECP256R1()}}


@pytest.mark.parametrize("flaw", list(PROFILE_FLAWS))
def test_certificate_outside_the_publisher_profile_installs_nothing(flaw, unlocked_prime):
    """A publisher certificate is X.509 v3, a secp256k1 key, CA:FALSE, digitalSignature, EKU codeSigning (keyos.md
    §3.2, ``os/app-manager/THIRD_PARTY_CERTIFICATE_FORMAT.md``): one that is a CA, whose extended key usage is not
    code signing, or whose key is on another curve, is refused with its own, matching fingerprint, and installs
    nothing."""
    prime = unlocked_prime
    pub = P.Publisher.create(prime.system_time(), name=f"prime-hil {flaw}", **PROFILE_FLAWS[flaw])
    before = prime.publisher_count()
    with pytest.raises(DeviceError):
        prime.install_certificate(pub.fingerprint, pub.pem)
    assert prime.publisher_count() == before, f"a certificate that is {flaw} changed the installed count"


def test_publisher_without_certificate_does_not_launch(probe, probe_id, templates, unlocked_prime):
    app_id = probe_id()
    stranger = P.Publisher.create(unlocked_prime.system_time())
    files = P.bundle(probe.elf, manifest_for(app_id, "Stranger", {}, templates), [], stranger,
                     timestamp=unlocked_prime.system_time())
    unlocked_prime.sideload(app_id, files)
    assert unlocked_prime.launch_app(app_id).status is LaunchStatus.NO_CERTIFICATE


@pytest.mark.parametrize("valid_from,valid_for,status", [
    (-3 * 86400, 86400, LaunchStatus.CERT_EXPIRED),
    (2 * 86400, 86400, LaunchStatus.CERT_NOT_YET_ACTIVE),
], ids=["expired", "not-yet-active"])
def test_publisher_certificate_validity_is_enforced(valid_from, valid_for, status, probe, probe_id, templates,
                                                    unlocked_prime):
    now = unlocked_prime.system_time()
    pub = P.Publisher.create(now, valid_from=valid_from, valid_for=valid_for)
    try:
        unlocked_prime.install_certificate(pub.fingerprint, pub.pem)
        expected = status
    except DeviceError:
        expected = LaunchStatus.NO_CERTIFICATE  # the device refused the certificate itself: also safe
    app_id = probe_id()
    unlocked_prime.sideload(app_id, P.bundle(probe.elf, manifest_for(app_id, "Dated", {}, templates), [], pub,
                                             timestamp=now))
    assert unlocked_prime.launch_app(app_id).status is expected


class ClockNotHeld(InfrastructureError):
    """The unit's clock never held the second a question was to be asked at: no evidence either way."""


T = TypeVar("T")


def _at(prime, second: int, ask: Callable[[], T]) -> T:
    """``ask()`` with the unit's clock at ``second``: the clock is set, and the answer counts only when a read
    after it still shows that second (the clock ticks on by itself; an attempt that straddles a tick is
    tried again)."""
    for _ in range(5):
        prime.set_system_time(second)
        answer = ask()
        if prime.system_time() == second:
            return answer
    raise ClockNotHeld(f"{prime.device}: the clock set to {second} moved on before each of 5 answers came")


def _launch_at(prime, second: int, app_id: str) -> LaunchStatus:
    """LAUNCH_APP with the unit's clock at ``second`` (a launched app is closed again)."""
    def launch() -> LaunchStatus:
        result = prime.launch_app(app_id)
        if result.status is LaunchStatus.LAUNCHED:
            prime.close_app(result.pid)
        return result.status
    return _at(prime, second, launch)


@pytest.mark.development_only  # a production build refuses SET_SYSTEM_TIME
@pytest.mark.parametrize("edge", ["not-before", "not-after"])
def test_publisher_certificate_is_valid_through_both_edges(edge, probe, probe_id, templates, unlocked_prime):
    """X.509 validity includes both its ends (RFC 5280 §4.1.2.5; assumed: KeyOS's "valid now" check,
    THIRD_PARTY_CERTIFICATE_FORMAT.md, follows it): at the very second of notBefore or notAfter the app
    launches, one second outside it does not. GET_ALLOWED_PUBLISHER_COUNT's usable count takes the same
    test as the launch (``dispatch.rs`` counts ``cert.is_usable()``; app-manager's ``third_party_certs.rs``
    ``allowed`` lets a publisher launch by the same ``is_usable``), so it counts the certificate at that second
    and not one second outside. The certificate is installed with the clock inside its window: KeyOS
    imports only one that is valid now (``third_party_certs.rs`` ``preview``)."""
    prime = unlocked_prime
    start, since = prime.system_time(), time.monotonic()
    pub = P.Publisher.create(start, valid_from=3600, valid_for=3600)
    if edge == "not-before":
        inside, outside, refused = start + 3600, start + 3599, LaunchStatus.CERT_NOT_YET_ACTIVE
    else:
        inside, outside, refused = start + 7200, start + 7201, LaunchStatus.CERT_EXPIRED
    try:
        prime.set_system_time(start + 3600)
        prime.install_certificate(pub.fingerprint, pub.pem)
        app_id = probe_id()
        prime.sideload(app_id, P.bundle(probe.elf, manifest_for(app_id, "Edge", {}, templates), [], pub,
                                        timestamp=start))
        assert _launch_at(prime, outside, app_id) is refused, f"launched one second outside its certificate ({edge})"
        status = _launch_at(prime, inside, app_id)
        assert status is LaunchStatus.LAUNCHED, f"at the {edge} second of its certificate the app answered {status.name}"
        counts = {second: _at(prime, second, prime.publisher_count) for second in (outside, inside)}
        assert counts[inside] == (counts[outside].usable + 1, counts[outside].installed), \
            f"GET_ALLOWED_PUBLISHER_COUNT one second outside the certificate and at its {edge} second: {counts}"
    finally:  # the clock back; a lost link is already the run's error, not to be hidden behind this one
        with contextlib.suppress(LinkError):
            prime.set_system_time(start + round(time.monotonic() - since))


@pytest.mark.development_only  # a production build refuses SET_SYSTEM_TIME
def test_certificate_validity_is_judged_at_every_launch(probe, probe_id, templates, unlocked_prime):
    """A launch that passed once decides nothing for the next: the publisher's certificate must be valid *now*
    at each launch (keyos.md §1.4 ``LaunchFailureReason``, §3.2), so the same installed app, launched again once
    its certificate has expired, answers PublisherCertificateExpired."""
    prime = unlocked_prime
    start, since = prime.system_time(), time.monotonic()
    pub = P.Publisher.create(start, valid_from=-60, valid_for=3600)  # valid until start + 3540
    prime.install_certificate(pub.fingerprint, pub.pem)
    app_id = probe_id()
    prime.sideload(app_id, P.bundle(probe.elf, manifest_for(app_id, "Again", {}, templates), [], pub, timestamp=start))
    try:
        status = _launch_at(prime, start + 1, app_id)
        assert status is LaunchStatus.LAUNCHED, f"the app did not launch inside its certificate (control): {status.name}"
        status = _launch_at(prime, start + 3600, app_id)
        assert status is LaunchStatus.CERT_EXPIRED, f"launched again after its certificate expired: {status.name}"
    finally:  # the clock back; a lost link is already the run's error, not to be hidden behind this one
        with contextlib.suppress(LinkError):
            prime.set_system_time(start + round(time.monotonic() - since))


def test_app_needing_a_newer_keyos_does_not_launch(probe, probe_id, templates, unlocked_prime):
    app_id = probe_id()
    m = manifest_for(app_id, "Future", {}, templates, minKeyosVersion="99.0.0")
    unlocked_prime.sideload(app_id, _bundle(probe, m, []))
    assert unlocked_prime.launch_app(app_id).status is LaunchStatus.KEYOS_VERSION_TOO_OLD


def test_app_whose_keyos_requirement_cannot_be_read_does_not_launch(probe, probe_id, templates, unlocked_prime):
    """An app runs only on a KeyOS it says it supports: a ``min-keyos-version`` that is no SemVer (keyos.md §1.1;
    versions are SemVer, §3.2) cannot be met, so the app does not launch, whichever step refuses it: KeyOS's parser
    refuses the whole manifest (``os/app-manifest/src/lib.rs`` test ``app_version_accepts_legacy_formats_but_minimum_
    keyos_requires_semver``: ``"minKeyosVersion":"banana"`` is an error), and the scan skips the bundle."""
    app_id = probe_id()
    m = manifest_for(app_id, "Unreadable", {}, templates, minKeyosVersion="1.x")
    if _sideload_refused(unlocked_prime, app_id, _bundle(probe, m, [])):
        return  # refused at LOAD_APP_END: nothing to launch
    result = unlocked_prime.launch_app(app_id)
    if result.status is LaunchStatus.LAUNCHED:
        unlocked_prime.close_app(result.pid)
    assert result.status is not LaunchStatus.LAUNCHED, "an app whose minimum KeyOS version is unreadable launched"


def test_app_needing_exactly_this_keyos_launches(probe, probe_id, templates, unlocked_prime):
    """``min-keyos-version`` is the least version the app runs on (keyos.md §1.1 app-config.toml): an app asking for
    exactly the version the unit reports (GET_VERSION, "same as Settings → About → KeyOS", §3.3) launches."""
    app_id, version = probe_id(), unlocked_prime.version()
    probe.install(manifest_for(app_id, "Exact", {}, templates, minKeyosVersion=version), [])
    result = unlocked_prime.launch_app(app_id)
    assert result.status is LaunchStatus.LAUNCHED, f"an app needing KeyOS {version} answered {result.status.name} on it"
    unlocked_prime.close_app(result.pid)


def test_a_valid_sideload_launches(probe, probe_id, templates):
    """The positive control of the launch checks above: the lab's own signed bundle runs."""
    run = probe.run(manifest_for(probe_id(), "Valid", {}, templates), [P.send("os/gui-server", "RequestRedraw", wait=False)])
    assert [r["result"] for r in run.finish()] == ["Ok"]


def test_an_app_with_one_foundation_signature_does_not_launch(probe, probe_id, templates, unlocked_prime, request):
    """An app launches FullyTrusted (both signatures by trusted signers) or ThirdParty (the second slot only, by an
    installed publisher), keyos.md §3.2: an ELF and manifest signed by one trusted signer in the first slot alone
    (PartiallyTrusted) are neither, and answer SignatureRejected. The same pair with both signatures launches (the
    control). Needs two keys the units trust (``--firmware-signers``: test-signed units), else skipped."""
    first, second = trusted_lab_signers(request)[:2]
    app_id, now = probe_id(), unlocked_prime.system_time()
    manifest = manifest_for(app_id, "One Signature", {}, templates)
    elf = cosign2.sign(probe.elf, first, version="1.0.0", timestamp=now)
    manifest.file_hashes = {"app.elf": hashlib.sha256(elf).hexdigest()}
    doc = cosign2.sign(manifest.dumps(), first, version="1.0.0", timestamp=now)
    unlocked_prime.sideload(app_id, {"app.elf": elf, "manifest.json": doc})
    launched = unlocked_prime.launch_app(app_id)
    if launched.status is LaunchStatus.LAUNCHED:  # the failure below: it must not stay up into the next test
        unlocked_prime.close_app(launched.pid)
    assert launched.status in UNVERIFIED, f"an app signed by one trusted signer only answered {launched.status.name}"
    both = {"app.elf": cosign2.add_second_signature(elf, second)}
    manifest.file_hashes = {"app.elf": hashlib.sha256(both["app.elf"]).hexdigest()}
    both["manifest.json"] = cosign2.add_second_signature(cosign2.sign(manifest.dumps(), first, version="1.0.0",
                                                                       timestamp=now), second)
    unlocked_prime.sideload(app_id, both)
    result = unlocked_prime.launch_app(app_id)
    assert result.status is LaunchStatus.LAUNCHED, f"the same app with both signatures (control) answered {result}"
    unlocked_prime.close_app(result.pid)
