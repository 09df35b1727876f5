"""The emulated KeyOS security model: kernel send checks, the broker, grants, fs locations, launch checks.

Unit level (in-process, no links): each part against the rules of keyos.md §1.4/§2.1 and the source
files named there. The suites prove the same behaviour end to end through the debug link.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

import coincurve
import pytest

from hil import probe as P
from hil.emulator.app_manager import APP_MANAGER_ID, GRANTS_FILE, AppManager, CertificateError
from hil.emulator.broker import ALWAYS, NEVER, NOT_NOW, PermissionBroker, cap_app_name
from hil.emulator.defects import CATALOG, Defects, UnknownDefect
from hil.emulator.fs import FileSystem, Location
from hil.emulator.kernel import Kernel, KernelError, MessagePermissions, XousError
from hil.emulator.keyos import KeyOS, foundation_keys
from hil.emulator.probe import PlanError, parse_plan
from hil.flash import manifest as mf

ROOT = Path(__file__).resolve().parents[1]
MATRIX = mf.load_capability_matrix(ROOT / "fixtures" / "keyos" / "capability_matrix.toml")
TEMPLATES = mf.load_templates(ROOT / "fixtures" / "keyos" / "permission_templates.toml")
DENY = re.compile(r"\[!\] Denying message send from (\d+) to SID\(\[([0-9a-f]{8}, ){3}[0-9a-f]{8}\]\)@(\d+), msgid=(\d+)(.*)")


# ------------------------------------------------------------------------ MessagePermissions


def test_mask_covers_ids_below_64_exactly():
    perms = MessagePermissions()
    perms.add(3, 6)
    assert [i for i in range(70) if perms.is_permitted(i)] == [3, 4, 5]
    assert perms.ranges == []  # ids below 64 take no range slot


def test_ranges_for_high_ids_merge_and_are_limited_to_four():
    perms = MessagePermissions()
    perms.add(0, 128)  # the 1.0.0 "0..128": mask full, and 64..127 in the list
    assert perms.mask == (1 << 64) - 1 and perms.ranges == [(0, 128)]
    assert perms.is_permitted(127) and not perms.is_permitted(128)
    perms.add(128, 130)  # contiguous: merged
    assert perms.ranges == [(0, 130)]
    for a in (200, 300, 400):
        perms.add(a, a + 1)
    with pytest.raises(KernelError) as err:
        perms.add(500, 501)
    assert err.value.error is XousError.KernelTableFull
    with pytest.raises(KernelError) as err:
        perms.add(7, 7)
    assert err.value.error is XousError.InvalidArguments


@pytest.mark.parametrize("defect", [[], ["run-ending-at-64-takes-a-range-slot"]])
def test_a_run_ending_at_64_takes_no_range_slot(defect):
    """server.rs: ``if messages.end <= 64`` returns before the range list, so ``0..64`` and four high runs fit."""
    perms = MessagePermissions(Defects.of(defect))
    perms.add(0, 64)
    for a in (1000, 2000, 3000):
        perms.add(a, a + 1)
    if defect:
        with pytest.raises(KernelError) as err:
            perms.add(4000, 4001)
        assert err.value.error is XousError.KernelTableFull
        return
    perms.add(4000, 4001)
    assert perms.ranges == [(1000, 1001), (2000, 2001), (3000, 3001), (4000, 4001)]
    assert perms.is_permitted(63) and not perms.is_permitted(64) and perms.is_permitted(4000)


def test_add_ids_uses_the_fewest_ranges():
    perms = MessagePermissions()
    perms.add_ids([104, 100, 101, 102, 103, 105, 8, 2])
    assert perms.ranges == [(100, 106)]
    assert [i for i in range(120) if perms.is_permitted(i)] == [2, 8, 100, 101, 102, 103, 104, 105]


# ------------------------------------------------------------------------ kernel send path


def _kernel(defects=()):
    lines: list[str] = []
    k = Kernel(lines.append, Defects.of(defects))
    server_proc = k.spawn("security", b"security".ljust(16, b"\0"), foundation=True)
    server = k.create_server(server_proc.pid, "os/security")
    app = k.spawn("app", b"A" * 16, foundation=False)
    perms = MessagePermissions(k.defects)
    perms.add(8, 9)
    cid = k.connect(app.pid, "os/security", perms)
    return k, lines, server, app, cid


def test_permitted_send_and_own_server():
    k, lines, server, app, cid = _kernel()
    assert k.send(app.pid, cid, 8, may_wait=False, timeout=1) is server
    own = k.connect(server.pid, "os/security", MessagePermissions())
    assert k.send(server.pid, own, 6, may_wait=False, timeout=1) is server  # a server's own process
    assert lines == []


def test_undeclared_send_that_cannot_wait_is_denied_with_the_kernel_line():
    k, lines, server, app, cid = _kernel()
    with pytest.raises(KernelError) as err:
        k.send(app.pid, cid, 6, may_wait=False, timeout=1)
    assert err.value.error is XousError.AccessDenied
    assert lines == [f"[!] Denying message send from {app.pid} to {server.sid_text}@{server.pid}, msgid=6"]
    m = DENY.fullmatch(lines[0])
    assert m and int(m[1]) == app.pid and int(m[3]) == server.pid and int(m[4]) == 6 and m[5] == ""


def test_waiting_send_without_a_broker_is_denied():
    k, lines, server, app, cid = _kernel()
    with pytest.raises(KernelError) as err:
        k.send(app.pid, cid, 6, may_wait=True, timeout=1)
    assert err.value.error is XousError.AccessDenied
    assert lines[-1].endswith("msgid=6: no permission broker")


def test_waiting_send_parks_until_the_broker_resolves_that_connection_only():
    k, lines, server, app, cid = _kernel()
    asked: list[int] = []
    k.set_broker(asked.append)
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("r", k.send(app.pid, cid, 6, may_wait=True, timeout=5)))
    t.start()
    deadline = time.monotonic() + 5
    while not asked and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.is_alive(), "the sender did not park"
    req = k.request(asked[0])
    assert (req.sender_pid, req.message_id, req.server) == (app.pid, 6, server)
    k.resolve(asked[0], True)
    t.join(5)
    assert result["r"] is server and lines == []
    assert k.process(app.pid).connections[cid].permissions.is_permitted(6)
    other = k.spawn("other", b"B" * 16, foundation=False)
    other_cid = k.connect(other.pid, "os/security", MessagePermissions())
    with pytest.raises(KernelError):
        k.send(other.pid, other_cid, 6, may_wait=False, timeout=1)  # granted to that connection, nobody else


def test_broker_denial_and_full_request_table():
    k, lines, server, app, cid = _kernel()
    k.set_broker(lambda rid: k.resolve(rid, False))
    with pytest.raises(KernelError) as err:
        k.send(app.pid, cid, 6, may_wait=True, timeout=1)
    assert err.value.error is XousError.AccessDenied and lines == []
    k.set_broker(lambda rid: None)  # a broker that never answers: requests pile up
    for _ in range(64):
        assert k.check_send(app.pid, cid, 6, may_wait=True) is not None
    with pytest.raises(KernelError) as err:
        k.check_send(app.pid, cid, 6, may_wait=True)
    assert err.value.error is XousError.KernelTableFull
    assert lines[-1].endswith("msgid=6: permission request table full")


def test_exit_frees_parked_requests_and_panic_is_logged_and_contained():
    k, lines, server, app, cid = _kernel()
    withdrawn: list[int] = []
    k.set_broker(lambda rid: None, withdrawn.append)
    req = k.check_send(app.pid, cid, 6, may_wait=True)
    bystander = k.spawn("bystander", b"C" * 16, foundation=False)
    k.terminate(app.pid, panic="index out of bounds")
    assert req.decided.is_set() and not req.valid and not req.allow
    assert k.request(req.id) is None and withdrawn == [req.id]  # the slot is free again, the broker told
    assert lines[-1] == f"[LOG] PANIC in PID {app.pid}: index out of bounds"
    assert server.pid in k.processes and bystander.pid in k.processes
    k.resolve(req.id, True, req)  # the broker answers late: nothing is granted


def test_server_exit_and_sender_timeout_free_the_slot_and_dismiss_the_prompt():
    k, am, modals, proc, cid, fs = _stack()
    # the server goes away while its request is parked: slot freed, prompt gone, sender told
    result = {}

    def send():
        try:
            k.send(proc.pid, cid, 8, may_wait=True, timeout=5)
        except KernelError as e:
            result["r"] = e.error
    t = threading.Thread(target=send)
    t.start()
    deadline = time.monotonic() + 5
    while not modals.shown and time.monotonic() < deadline:
        time.sleep(0.01)
    assert modals.shown, "no prompt"
    k.terminate(k.servers["os/security"].pid)
    t.join(5)
    assert result["r"] is XousError.ServerNotFound
    assert modals.dismissed == [0] and k.requests == [None] * len(k.requests)

    # a send that times out: its slot frees and a late "Always Allow" widens nothing
    k, am, modals, proc, cid, fs = _stack()
    with pytest.raises(KernelError) as err:
        k.send(proc.pid, cid, 8, may_wait=True, timeout=0.2)
    assert err.value.error is XousError.Timeout
    assert modals.dismissed == [0] and k.requests == [None] * len(k.requests)
    modals.shown[0][3](ALWAYS)  # an answer that arrives anyway (the dismissed modal's callback)
    assert not k.process(proc.pid).connections[cid].permissions.is_permitted(8)
    assert fs.system_read(Location.AppData, APP_MANAGER_ID, GRANTS_FILE) is None


def test_memory_of_another_process_is_not_mapped():
    k, lines, server, app, cid = _kernel()
    other = k.spawn("other", b"B" * 16, foundation=False)
    other.map_page(0x2000_0000, b"secret")
    app.map_page(0x2000_0000, b"mine")
    assert k.read_memory(app.pid, app.pid, 0x2000_0000, 4) == b"mine"
    with pytest.raises(KernelError) as err:
        k.read_memory(app.pid, other.pid, 0x2000_0000, 6)
    assert err.value.error is XousError.MemoryInUse
    with pytest.raises(KernelError) as err:
        k.read_memory(app.pid, app.pid, 0x3000_0000, 4)
    assert err.value.error is XousError.BadAddress


@pytest.mark.parametrize("defect", ["kernel-ignores-range-list", "mask-off-by-one", "no-deny-log-line",
                                    "kernel-shares-process-memory", "crash-takes-down-system"])
def test_kernel_defects_change_exactly_their_check(defect):
    k, lines, server, app, cid = _kernel([defect])
    perms = k.process(app.pid).connections[cid].permissions
    if defect == "kernel-ignores-range-list":
        perms.add(100, 101)
        assert perms.is_permitted(106)
    elif defect == "mask-off-by-one":
        assert perms.is_permitted(9) and not perms.is_permitted(8)
    elif defect == "no-deny-log-line":
        with pytest.raises(KernelError):
            k.send(app.pid, cid, 6, may_wait=False, timeout=1)
        assert lines == []
    elif defect == "kernel-shares-process-memory":
        server_proc = k.process(server.pid)
        server_proc.map_page(0x2000_0000, b"secret")
        assert k.read_memory(app.pid, server.pid, 0x2000_0000, 6) == b"secret"
    else:
        k.terminate(app.pid, panic="boom")
        assert server.pid not in k.processes


def test_unknown_defect_is_refused():
    with pytest.raises(UnknownDefect):
        Defects.of(["kernel-forgets-everything"])
    assert all(suite.startswith("suites/security/test_") and flavour in ("development", "production")
               for _, suite, flavour in CATALOG.values())


# ------------------------------------------------------------------------ fs locations


def test_fs_locations_need_their_grant():
    fs = FileSystem()
    me = b"M" * 16
    for loc in (Location.User, Location.Airlock, Location.Usb, Location.System, Location.Boot, Location.EncryptedRoot):
        with pytest.raises(KernelError) as err:
            fs.read(7, me, loc, "x")
        assert err.value.error is XousError.AccessDenied
        with pytest.raises(KernelError) as err:
            fs.write(7, me, loc, "x", b"1")
        assert err.value.error is XousError.InvalidOperation
    fs.record_access(7, "GetAirlockReadAccess")
    with pytest.raises(KernelError) as err:
        fs.write(7, me, Location.Airlock, "x", b"1")
    assert err.value.error is XousError.InvalidOperation  # a read grant is no write grant
    fs.record_access(7, "GetAirlockWriteAccess")
    fs.write(7, me, Location.Airlock, "x", b"1")
    assert fs.read(7, me, Location.Airlock, "x") == b"1"
    fs.forget(7)
    with pytest.raises(KernelError):
        fs.read(7, me, Location.Airlock, "x")  # a recycled pid starts with nothing


def test_a_reboot_forgets_every_processs_access_records_and_not_now():
    """The fs server and app-manager start afresh at boot (their records are in memory), so the app given a PID
    after a reboot inherits neither the old holder's location grants nor its "Not Now"."""
    ko = KeyOS(lambda line: None)
    ko.boot()
    pid = ko.kernel.spawn("holder", b"H" * 16, foundation=False).pid
    ko.fs.record_access(pid, "GetAirlockReadAccess")
    ko.app_manager.set_grant(b"H" * 16, pid, MATRIX.message("os/fs", "GetUserReadAccess"), "DenyForRun")
    ko.boot()
    heir = ko.kernel.spawn("heir", b"I" * 16, foundation=False).pid
    assert heir == pid
    with pytest.raises(KernelError):
        ko.fs.read(heir, b"I" * 16, Location.Airlock, "x")
    assert not ko.app_manager._deny_for_run


def test_appdata_is_per_app_and_paths_stay_inside():
    fs = FileSystem()
    fs.write(7, b"A" * 16, Location.AppData, "secret", b"s")
    with pytest.raises(KernelError) as err:
        fs.read(8, b"B" * 16, Location.AppData, "secret")
    assert err.value.error is XousError.FileNotFound
    for path in ("../0x" + ("41" * 16) + "/secret", "/etc/x", "a/../../b"):
        with pytest.raises(KernelError) as err:
            fs.read(8, b"B" * 16, Location.AppData, path)
        assert err.value.error is XousError.InvalidArguments
    with pytest.raises(KernelError) as err:
        fs.write(8, b"B" * 16, Location.CommonAssets, "x", b"1")
    assert err.value.error is XousError.InvalidOperation


# ------------------------------------------------------------------------ app-manager and broker


class FakeModals:
    def __init__(self):
        self.shown: list = []
        self.dismissed: list = []

    def show_modal(self, title, body, buttons, on_answer):
        self.shown.append((title, body, buttons, on_answer))
        return len(self.shown) - 1

    def dismiss(self, modal):
        self.dismissed.append(modal)
        self.shown[modal][3](None)


def _stack(defects=()):
    d = Defects.of(defects)
    fs = FileSystem(d)
    am = AppManager(MATRIX, fs, d, foundation_keys(), "1.0.0")
    k = Kernel(lambda line: None, d)
    modals = FakeModals()
    broker = PermissionBroker(k, am, modals, lambda: threading.RLock(), lambda line: None)
    broker.subscribe()
    sec = k.spawn("security", b"security".ljust(16, b"\0"), foundation=True)
    k.create_server(sec.pid, "os/security")
    app_id = bytes.fromhex("ab" * 16)
    manifest = mf.loads(json.dumps({"appId": "0x" + "ab" * 16, "appName": {"en": "A" * 30},
                                    "permissions": {"os/security": ["GetAppSeed", "GetSeed", "GetRandom"]}}), "m.json")
    installed = am.install_builtin(manifest)
    installed.foundation = False
    proc = k.spawn("app", app_id, foundation=False)
    cid = k.connect(proc.pid, "os/security", am.connection_permissions(installed, "os/security"))
    return k, am, modals, proc, cid, fs


def _ask(k, proc, cid, modals, button):
    result = {}

    def send():
        try:
            k.send(proc.pid, cid, 8, may_wait=True, timeout=5)
            result["r"] = "Ok"
        except KernelError as e:
            result["r"] = e.error.value

    t = threading.Thread(target=send)
    n = len(modals.shown)
    t.start()
    deadline = time.monotonic() + 5
    while len(modals.shown) == n and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    prompted = len(modals.shown) > n
    if prompted:
        modals.shown[-1][3](button)
    t.join(5)
    return prompted, result["r"]


def test_connection_permissions_follow_tier_and_approval():
    k, am, modals, proc, cid, fs = _stack()
    perms = k.process(proc.pid).connections[cid].permissions
    assert perms.is_permitted(29)  # GetRandom: auto-allowed, third-party tier
    assert not perms.is_permitted(6)  # GetSeed: Foundation only
    assert not perms.is_permitted(8)  # GetAppSeed: only after the user allows it


def test_prompt_strings_and_always_allow_persists_per_subgroup():
    k, am, modals, proc, cid, fs = _stack()
    prompted, result = _ask(k, proc, cid, modals, ALWAYS)
    assert prompted and result == "Ok"
    title, body, buttons, _ = modals.shown[0]
    assert title == "Allow Access?" and buttons == ["Always Allow", "Not Now", "Never Allow"]
    assert body == f"{'A' * 24}… wants to access App-scoped seed"
    stored = json.loads(fs.system_read(Location.AppData, APP_MANAGER_ID, GRANTS_FILE))
    assert stored == {"grants": {"0x" + "ab" * 16: {"device-secrets.app-scoped-seed": True}}}


def test_never_allow_persists_not_now_holds_for_the_run_and_unanswered_denies():
    k, am, modals, proc, cid, fs = _stack()
    assert _ask(k, proc, cid, modals, NOT_NOW) == (True, "AccessDenied")
    assert _ask(k, proc, cid, modals, ALWAYS) == (False, "AccessDenied")  # same run: not asked again
    assert fs.system_read(Location.AppData, APP_MANAGER_ID, GRANTS_FILE) is None  # nothing stored
    am.forget_run(proc.pid)  # the app exited; a new run asks again
    assert _ask(k, proc, cid, modals, None) == (True, "AccessDenied")  # dropped unanswered
    assert _ask(k, proc, cid, modals, NEVER) == (True, "AccessDenied")
    am.forget_run(proc.pid)
    assert _ask(k, proc, cid, modals, ALWAYS) == (False, "AccessDenied")  # stored deny: never asked again


def test_cap_app_name():
    assert cap_app_name("x" * 24) == "x" * 24
    assert cap_app_name("é" * 30) == "é" * 24 + "…"


# ------------------------------------------------------------------------ launch checks


def _launch_case(now_offset=0, valid_from=-86400, tamper=None, cert=True, min_version=None):
    d = Defects()
    am = AppManager(MATRIX, FileSystem(d), d, foundation_keys(), "1.0.0")
    now = 1_800_000_000
    pub = P.Publisher.create(now, valid_from=valid_from, valid_for=30 * 86400)
    if cert:
        am.import_certificate(pub.fingerprint, pub.pem)
    extra = {"minKeyosVersion": min_version} if min_version else {}
    m = mf.loads(json.dumps({"appId": "0x" + "cd" * 16, "appName": {"en": "S"}, "permissions": {}, **extra}), "m.json")
    files = P.bundle(b"\x7fELF probe", m, [], pub, timestamp=now)
    if tamper == "manifest":
        files["manifest.json"] = files["manifest.json"].replace(b'"S"', b'"T"')
    if tamper == "elf":
        files["app.elf"] = files["app.elf"][:-1] + b"X"
    app = am.install_sideloaded(bytes.fromhex("cd" * 16), files)
    return am.verify_launch(app, now + now_offset)


@pytest.mark.parametrize("kwargs,reason", [
    ({}, None),
    ({"cert": False}, "NoCertificate"),
    ({"now_offset": 40 * 86400}, "PublisherCertificateExpired"),
    ({"valid_from": 86400}, "PublisherCertificateNotYetActive"),
    ({"tamper": "manifest"}, "SignatureRejected"),
    ({"tamper": "elf"}, "SignatureRejected"),
    ({"min_version": "2.0.0"}, "KeyOsVersionTooOld"),
])
def test_sideload_launch_checks(kwargs, reason):
    assert _launch_case(**kwargs) == reason


def test_publisher_certificate_import_rules():
    d = Defects()
    am = AppManager(MATRIX, FileSystem(d), d, foundation_keys(), "1.0.0")
    pub = P.Publisher.create(1_800_000_000)
    assert pub.fingerprint == hashlib.sha256(coincurve.PrivateKey(pub.secret).public_key.format()).hexdigest()
    with pytest.raises(CertificateError, match="does not match"):
        am.import_certificate("00" * 32, pub.pem)
    with pytest.raises(CertificateError, match="not a PEM"):
        am.import_certificate(pub.fingerprint, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_probe_plan_is_checked_before_it_runs():
    assert parse_plan(json.dumps({"probe": 1, "steps": [P.send("os/fs", "ReadFile")]}).encode())
    for bad in (b"\xff", b"[]", json.dumps({"probe": 1, "steps": [{"op": "format"}]}).encode(),
                json.dumps({"probe": 1, "steps": [{"op": "send", "server": "os/fs"}]}).encode(),
                json.dumps({"probe": 1, "steps": [{"op": "open", "location": "User", "path": "a", "mode": "rw"}]}).encode()):
        with pytest.raises(PlanError):
            parse_plan(bad)


# ------------------------------------------------------------------------ the real 1.0.0 apps


def test_release_1_0_0_apps_load_and_get_their_ranges(release_1_0_0):
    from hil.emulator.build import Build
    from hil.emulator.prime import Prime

    prime = Prime(build=Build(flavour="development"), boot_seconds=0, apps_dir=str(release_1_0_0 / "apps"))
    with prime.lock:
        assert prime.login("123456")
        for manifest in mf.load_dir(release_1_0_0 / "apps"):
            result = prime.launch_app(manifest.app_id_bytes)
            assert result.outcome == "Launched", (manifest.name, result)
            installed = prime.keyos.app_manager.apps[manifest.app_id_bytes]
            for server, ranges in manifest.permission_ranges.items():
                perms = prime.keyos.app_manager.connection_permissions(installed, server)
                assert all(perms.is_permitted(i) for a, b in ranges for i in range(a, b))
                assert not perms.is_permitted(max(b for _, b in ranges))
            assert not prime.keyos.app_manager.connection_permissions(installed, "os/security").is_permitted(6)
            prime.close_app(result.pid)
