"""Isolation: an app cannot read another app's memory, AppData or unexposed servers; User, Airlock and
Usb need their grants (fs ``access.rs``: read without grant => AccessDenied, write => InvalidOperation);
a crash stays contained (keyos.md §1.4, §1.5, §2.1)."""

from __future__ import annotations


import re

import pytest

from hil import probe as P
from hil.flash.manifest import load_capability_matrix
from hil.link.protocol import LaunchStatus
from security_helpers import BUILTIN_SETTINGS, SETTINGS_APP, answer_prompt, manifest_for

pytestmark = [pytest.mark.security, pytest.mark.isolation]

CANARY = 0x2000_0000  # docs/probe.md: every app keeps a page of its own at this address
PAGE = 4096  # xous-rs definitions.rs PAGE_SIZE


def test_another_apps_memory_cannot_be_read(probe, probe_id, templates, unlocked_prime):
    target = unlocked_prime.launch_app(SETTINGS_APP)
    assert target.status in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING), f"Settings did not start: {target}"
    before = P.running(unlocked_prime, BUILTIN_SETTINGS)
    if not before:
        raise P.ProbeBroken(f"{unlocked_prime.device}: Settings is not running: no target to read")
    run, other = _read_canary_of(SETTINGS_APP, probe, probe_id(), templates)
    assert P.running(unlocked_prime, BUILTIN_SETTINGS) == before, "Settings died while the probe read its memory"
    # docs/probe.md §3: the kernel refuses to map a page another process owns with MemoryInUse
    assert other["result"] == "MemoryInUse", f"PID {run.pid} was not refused Settings' memory: {other}"


def _read_canary_of(target_id: str, probe, reader_id: str, templates):
    """A probe reads its own canary page (the control) and then ``target_id``'s: (the run, that read's record).
    A read that never reached the kernel's check (no such process, malformed target) is broken."""
    run = probe.run(manifest_for(reader_id, "Memory", {}, templates),
                    [P.read_memory(reader_id, CANARY, 32), P.read_memory(target_id, CANARY, 32)])
    own, other = run.finish()
    assert own["result"] == "Ok" and own["len"] == 32, f"the probe cannot read its own page (control): {own}"
    if other["result"] in ("ProcessNotFound", "InvalidArguments"):
        raise P.ProbeBroken(f"{probe.client.device}: the read never reached the kernel's check: {other}")
    return run, other


def test_a_read_stays_inside_its_page(probe, probe_id, templates):
    """A page is 4096 bytes (xous-rs ``PAGE_SIZE``) and the canary is one page (docs/probe.md; assumed: nothing is
    mapped right after it in a test build). The probe reads its page's last 32 bytes (the control); 32 bytes from
    one byte further cross into no mapping, BadAddress. A read of 0 bytes is BadAddress too: no route to memory an
    app has takes an empty range (MapMemory's size and a lent range's are ``NonZeroUsize``; ``MemoryRange::new``
    answers BadAddress for size 0, xous-rs ``definitions.rs``)."""
    reader_id = probe_id()
    run = probe.run(manifest_for(reader_id, "Page Edges", {}, templates),
                    [P.read_memory(reader_id, CANARY + PAGE - 32, 32), P.read_memory(reader_id, CANARY + PAGE - 31, 32),
                     P.read_memory(reader_id, CANARY, 0)])
    last, past, empty = run.finish()
    assert last["result"] == "Ok" and last["len"] == 32, f"the probe cannot read its own page's last 32 bytes: {last}"
    assert past["result"] == "BadAddress", f"32 bytes read across the end of the probe's own page answered {past}"
    assert empty["result"] == "BadAddress", f"a read of 0 bytes of the probe's own page answered {empty}"


def test_appdata_is_per_app(probe, probe_id, templates):
    writer_id, reader_id = probe_id("writer"), probe_id("reader")
    writer = probe.run(manifest_for(writer_id, "Writer", {}, templates, template=("gui-app", "fs-generic")),
                       [P.open_file("AppData", "secret.bin", "write"), P.open_file("AppData", "secret.bin", "read")])
    wrote, read_back = writer.finish()
    assert wrote["result"] == "Ok" and read_back["result"] == "Ok", f"AppData does not work for its owner: {wrote}, {read_back}"
    reader = probe.run(manifest_for(reader_id, "Reader", {}, templates, template=("gui-app", "fs-generic")),
                       [P.open_file("AppData", "secret.bin", "read"),
                        P.open_file("AppData", f"../{writer_id}/secret.bin", "read"),
                        P.open_file("AppData", f"../{writer_id[2:]}/secret.bin", "read")])
    peek, *escapes = reader.finish()
    assert peek["result"] == "FileNotFound", f"another app's AppData file was visible: {peek}"
    # the fs refuses a path with '..' (InvalidArguments) or finds nothing under the reader's own AppData
    assert all(e["result"] in ("InvalidArguments", "FileNotFound") for e in escapes), \
        f"a relative path left the app's AppData: {escapes}"


def test_undeclared_server_is_closed_with_the_kernel_line(probe, probe_id, templates, deny_lines):
    run = probe.run(manifest_for(probe_id(), "Closed", {}, templates),
                    [P.send("os/app-manager", "ListApps", wait=False), P.send("os/power-manager", "Reboot", wait=False),
                     P.send("os/security", "GetSeed", wait=False)])
    records = run.finish()
    assert [r["result"] for r in records] == ["AccessDenied"] * 3, records
    if deny_lines:
        assert [d.msgid for d in run.denies if d.pid == run.pid] == [r["id"] for r in records]


ACCESS_MESSAGE = re.compile(r"Get(\w+)ReadAccess")  # the fs server's access message of one location (access.rs)


def pytest_generate_tests(metafunc):
    """``gated_location``: every location the capability matrix gives an access message on os/fs, the Foundation-only
    ones (Boot, System, ...) with the grantable ones, so a location the fs stops gating is a failing case here
    rather than one nobody listed."""
    if "gated_location" in metafunc.fixturenames:
        fs = load_capability_matrix(metafunc.config.getoption("--capability-matrix")).servers["os/fs"]
        metafunc.parametrize("gated_location", sorted(m.group(1) for name in fs if (m := ACCESS_MESSAGE.fullmatch(name))))


def test_location_needs_its_grant(gated_location, probe, probe_id, templates):
    """Without the Get…Access messages in the manifest, nothing of the location opens: a read is AccessDenied and
    a write InvalidOperation (``os/fs/src/access.rs``), for each location the fs gates, grantable or Foundation-only."""
    location = gated_location
    run = probe.run(manifest_for(probe_id(), "No Grant", {}, templates, template=("gui-app", "fs-generic")),
                    [P.open_file(location, "probe.bin", "write", timeout_s=20),
                     P.open_file(location, "probe.bin", "read", timeout_s=20)])
    write, read = run.finish(timeout=60)
    assert write["access"] == "AccessDenied" and write["result"] == "InvalidOperation", write
    assert read["access"] == "AccessDenied" and read["result"] == "AccessDenied", read


def test_airlock_with_its_grant_and_read_grant_is_not_write(probe, probe_id, templates, screen):
    """The positive control: granted, the location opens; a read grant does not make a writer, and opens
    only its own location (the fs records ``(pid, location)``: ``os/fs/src/access.rs``)."""
    m = manifest_for(probe_id(), "Airlock", {"os/fs": ["GetAirlockReadAccess"]}, templates, template=("gui-app", "fs-generic"))
    run = probe.run(m, [P.open_file("Airlock", "probe.bin", "read", timeout_s=60),
                        P.open_file("Airlock", "probe.bin", "write", timeout_s=20),
                        P.open_file("User", "probe.bin", "read", timeout_s=20),
                        P.open_file("Usb", "probe.bin", "read", timeout_s=20)])
    answer_prompt(screen, "Always Allow", run=run, step=0)
    read, write, *elsewhere = run.finish(timeout=90)
    assert read["access"] == "Ok" and read["result"] in ("Ok", "FileNotFound"), f"granted read refused: {read}"
    assert write["result"] == "InvalidOperation", f"a read grant allowed a write: {write}"
    assert [r["result"] for r in elsewhere] == ["AccessDenied"] * 2, f"the Airlock grant opened another location: {elsewhere}"


GRANT_GATED = ["User", "Airlock", "Usb"]  # the locations a third-party app opens with its grants (keyos.md §2.1)


@pytest.mark.parametrize("location", GRANT_GATED)
def test_a_locations_grants_open_it_and_no_other(location, probe, probe_id, templates, screen):
    """Scope per location (``access.rs`` records ``(pid, location)``): both grants of one location open it, and
    every other grant-gated location stays closed, to reads (AccessDenied) and writes (InvalidOperation)."""
    others = [o for o in GRANT_GATED if o != location]
    m = manifest_for(probe_id(), "One Location", {"os/fs": [f"Get{location}ReadAccess", f"Get{location}WriteAccess"]},
                     templates, template=("gui-app", "fs-generic"))
    run = probe.run(m, [P.open_file(location, "probe.bin", "write", timeout_s=60), P.open_file(location, "probe.bin", "read"),
                        *(P.open_file(o, "probe.bin", mode, timeout_s=20) for o in others for mode in ("read", "write"))])
    answer_prompt(screen, "Always Allow", run=run, step=0)
    write, read, *elsewhere = run.finish(timeout=90)
    assert write["access"] == read["access"] == "Ok", f"{location}'s own grants were refused (control): {write}, {read}"
    for opened in (write, read):
        _opened(opened, location)
    answers = [(r["access"], r["result"]) for r in elsewhere]
    assert answers == [("AccessDenied", "AccessDenied"), ("AccessDenied", "InvalidOperation")] * len(others), \
        f"{location}'s grants opened {', '.join(others)} (read, write each): {answers}"


REFUSED = ("AccessDenied", "InvalidOperation")  # the fs access layer's answers (os/fs/src/access.rs)


def _opened(record: dict, location: str, missing_file: bool = False) -> None:
    """Positive evidence that an open with its grants reached the location: Ok (or FileNotFound, when a read may
    find no file there).  Refused by the access layer is a failure; any other answer means the location was not
    there to open (User is there from the first unlock; a USB drive and the Airlock come and go, keyos.md §2.1):
    broken, not a pass."""
    result = record["result"]
    assert result not in REFUSED, f"{location} with its grant refused the open: {record}"
    if result != "Ok" and not (missing_file and result == "FileNotFound"):
        if location == "User":
            raise AssertionError(f"User with its grants did not open: {record}")
        raise P.ProbeBroken(f"{location} did not open with its grants ({result}): it is not there, no evidence either way")


def test_own_resources_read_only(probe, probe_id, templates):
    """AppResources is the app's own bundle ``resources/``, read without a grant and never written
    (keyos.md §2.1); CommonAssets is read-only too. The probe reads its own plan there (docs/probe.md §1)."""
    run = probe.run(manifest_for(probe_id(), "Resources", {}, templates, template=("gui-app", "fs-generic")),
                    [P.open_file("AppResources", "probe-plan.json", "read"),
                     P.open_file("AppResources", "probe-plan.json", "write"),
                     P.open_file("CommonAssets", "probe.bin", "write")])
    read, *writes = run.finish(timeout=60)
    assert read["result"] == "Ok", f"the probe cannot read its own plan: {read}"
    assert [w["result"] for w in writes] == ["InvalidOperation"] * 2, f"a read-only location took a write: {writes}"


def test_grants_die_with_the_process(probe, probe_id, templates, screen, unlocked_prime):
    """A process's access records go when it exits: another app given the same PID inherits nothing."""
    _heir_of_an_airlock_grant(probe, probe_id, templates, screen, unlocked_prime, [], "exited")


def test_grants_die_with_a_crashed_process(probe, probe_id, templates, screen, unlocked_prime):
    """The crash path too: a panic ends the process like an exit (keyos.md §1.5, ``[LOG] PANIC in PID``), and its
    access records go with it (``os/fs/src/access.rs`` records ``(pid, location)``): the app given its PID next
    inherits nothing."""
    _heir_of_an_airlock_grant(probe, probe_id, templates, screen, unlocked_prime,
                              [P.panic("holder panics on purpose")], "crashed")


def _heir_of_an_airlock_grant(probe, probe_id, templates, screen, prime, ending: list, how: str) -> None:
    """A holder opens the Airlock with its read and write grants, then its plan's ``ending`` (none: it is closed);
    the app given its PID next must be refused the Airlock, to reads and writes."""
    holder = probe.run(manifest_for(probe_id("holder"), "Holder", {"os/fs": ["GetAirlockReadAccess", "GetAirlockWriteAccess"]},
                                    templates, template=("gui-app", "fs-generic")),
                       [P.open_file("Airlock", "probe.bin", "write", timeout_s=60),
                        P.open_file("Airlock", "probe.bin", "read"), *ending])
    answer_prompt(screen, "Always Allow", run=holder, step=0)
    for step in (0, 1):
        held = holder.step(step, timeout=90)
        assert held["access"] == "Ok", f"the holder's granted open was refused (control): {held}"
        _opened(held, "Airlock")
    if ending:
        holder.wait(lambda: holder.panic is not None, 20, "the PANIC line")
    probe.close(holder)  # after a panic, only the probe's own bookkeeping
    heir_id = probe_id("heir")
    probe.install(manifest_for(heir_id, "Heir", {}, templates, template=("gui-app", "fs-generic")),
                  [P.open_file("Airlock", "probe.bin", "read", timeout_s=20),
                   P.open_file("Airlock", "probe.bin", "write", timeout_s=20)])
    heir = probe.launch(heir_id)
    if heir.pid != holder.pid:
        raise P.ProbeBroken(f"{prime.device}: the kernel gave PID {heir.pid}, not the {how} app's PID {holder.pid}: "
                            "no reuse to test")
    read, write = heir.finish(timeout=60)
    assert (read["result"], write["result"]) == ("AccessDenied", "InvalidOperation"), \
        f"PID {heir.pid} inherited the {how} app's Airlock grants (read, write): {read}, {write}"


def test_third_party_apps_cannot_read_each_others_memory(probe, probe_id, templates):
    """Isolation holds between two third-party apps, not only against a Foundation one."""
    target_id, reader_id = probe_id("target"), probe_id("reader")
    target = probe.run(manifest_for(target_id, "Target", {}, templates), [])
    target.finish()  # its plan is empty: it keeps running, its canary page mapped
    run, other = _read_canary_of(target_id, probe, reader_id, templates)
    assert other["result"] == "MemoryInUse", f"PID {run.pid} was not refused PID {target.pid}'s memory: {other}"


def test_user_files_with_write_grant(probe, probe_id, templates, screen):
    m = manifest_for(probe_id(), "User Files", {"os/fs": ["GetUserReadAccess", "GetUserWriteAccess"]}, templates,
                     template=("gui-app", "fs-generic"))
    run = probe.run(m, [P.open_file("User", "probe.bin", "write", timeout_s=60), P.open_file("User", "probe.bin", "read")])
    answer_prompt(screen, "Always Allow", run=run, step=0)
    write, read = run.finish(timeout=90)
    assert write["result"] == "Ok" and read["result"] == "Ok", (write, read)


def test_a_write_grant_is_not_a_read_grant(probe, probe_id, templates, screen):
    """Read apart from write, the other way round from the Airlock check: ``os/fs/src/access.rs`` keeps read and
    write records in two sets and ``check_read_access`` looks in the read set alone, so an app holding User's write
    grant only writes there (the control) and cannot open what it wrote for reading (AccessDenied)."""
    m = manifest_for(probe_id(), "Write Only", {"os/fs": ["GetUserWriteAccess"]}, templates, template=("gui-app", "fs-generic"))
    run = probe.run(m, [P.open_file("User", "probe.bin", "write", timeout_s=60),
                        P.open_file("User", "probe.bin", "read", timeout_s=20)])
    answer_prompt(screen, "Always Allow", run=run, step=0)
    write, read = run.finish(timeout=90)
    assert write["access"] == "Ok" and write["result"] == "Ok", f"User's write grant did not open it (control): {write}"
    assert read["result"] == "AccessDenied", f"a write grant alone opened User for reading: {read}"


def test_crash_is_contained(probe, probe_id, templates, unlocked_prime):
    other = unlocked_prime.launch_app(SETTINGS_APP)
    assert other.status in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING), f"Settings did not start: {other}"
    before = P.processes(unlocked_prime)
    run = probe.run(manifest_for(probe_id("crash"), "Crash", {"os/fs": ["GetAirlockReadAccess"]}, templates,
                                 template=("gui-app", "fs-generic")),
                    [P.send("os/gui-server", "RequestRedraw", wait=False), P.panic("probe panic on purpose")])
    run.wait(lambda: run.panic is not None, 20, "the PANIC line")
    assert run.panic == "probe panic on purpose"
    after = P.processes(unlocked_prime)
    assert run.pid not in after, "the panicked process is still listed"
    lost = {pid: name for pid, name in before.items() if pid not in after}
    assert not lost, f"the crash took other processes with it: {lost}"
    assert other.pid in after
    # the system still serves apps
    ok = probe.run(manifest_for(probe_id("after"), "After", {}, templates),
                   [P.send("os/gui-server", "RequestRedraw", wait=False)])
    assert [r["result"] for r in ok.finish()] == ["Ok"]


def test_a_grant_opens_the_location_for_its_holder_only(probe, probe_id, templates, screen):
    """The fs records a grant as ``(pid, location)`` (``os/fs/src/access.rs``): while one app holds the Airlock open
    with its grant, another running app without one is still refused it, to reads and writes."""
    holder = probe.run(manifest_for(probe_id("holder"), "Holder", {"os/fs": ["GetAirlockReadAccess", "GetAirlockWriteAccess"]},
                                    templates, template=("gui-app", "fs-generic")),
                       [P.open_file("Airlock", "probe.bin", "write", timeout_s=60), P.open_file("Airlock", "probe.bin", "read")])
    answer_prompt(screen, "Always Allow", run=holder, step=0)
    wrote, read = holder.finish(timeout=90)  # its plan done, the holder keeps running with its grants
    assert wrote["access"] == read["access"] == "Ok", f"the holder's grants were refused (control): {wrote}, {read}"
    _opened(wrote, "Airlock")
    other = probe.run(manifest_for(probe_id("other"), "Other", {}, templates, template=("gui-app", "fs-generic")),
                      [P.open_file("Airlock", "probe.bin", "read", timeout_s=20),
                       P.open_file("Airlock", "probe.bin", "write", timeout_s=20)])
    answers = [(r["access"], r["result"]) for r in other.finish(timeout=60)]
    if holder.pid not in P.processes(probe.client):  # its grants died with it: the refusal then proves nothing
        raise P.ProbeBroken(f"{probe.client.device}: the holder (PID {holder.pid}) was gone by the end of the other "
                            f"app's plan: no grant was held to be refused")
    assert answers == [("AccessDenied", "AccessDenied"), ("AccessDenied", "InvalidOperation")], \
        f"PID {other.pid} opened the Airlock on PID {holder.pid}'s grant (read, write): {answers}"
