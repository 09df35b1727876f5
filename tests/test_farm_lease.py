"""Leases: one holder per station across processes, the holder named, a lost lease noticed."""

import subprocess
import sys
import textwrap

import pytest

from hil.lab.lease import FileLeases, Holder, LeaseLost, NoStationFree


def _hold_in_other_process(state, station):
    """A child process that leases `station` and waits for stdin to close."""
    code = textwrap.dedent(f"""
        import sys
        from hil.lab.lease import FileLeases, Holder
        lease = FileLeases({str(state)!r}).acquire({station!r}, Holder.me("gw7", "run-x"))
        print("held", flush=True)
        sys.stdin.read()
        lease.release()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lease_names_holder_and_excludes_others(tmp_path):
    leases = FileLeases(tmp_path)
    child = _hold_in_other_process(tmp_path, "emu-1")
    try:
        holder = leases.holder("emu-1")
        assert (holder.worker, holder.run_id, holder.pid) == ("gw7", "run-x", child.pid)
        with pytest.raises(NoStationFree, match=r"emu-1 is leased by gw7 \(pid \d+ on .*, run run-x\)"):
            leases.acquire("emu-1", Holder.me("gw0", "run-y"))
        got = leases.acquire_any(["emu-1", "emu-2"], Holder.me("gw0", "run-y"), timeout=0)
        assert got.station == "emu-2"
        got.release()
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    assert leases.holder("emu-1") is None
    lease = leases.acquire("emu-1", Holder.me("gw0", "run-y"))
    lease.check()
    lease.release()


def test_no_station_free_names_holders(tmp_path):
    leases = FileLeases(tmp_path)
    child = _hold_in_other_process(tmp_path, "emu-1")
    try:
        with pytest.raises(NoStationFree, match=r"no station free after 0s \(emu-1: gw7"):
            leases.acquire_any(["emu-1"], Holder.me("gw0", "r"), timeout=0)
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_second_lease_in_same_process_refused(tmp_path):
    leases = FileLeases(tmp_path)
    lease = leases.acquire("emu-1", Holder.me("gw0", "r"))
    with pytest.raises(NoStationFree, match="already leased in this process"):
        FileLeases(tmp_path).acquire("emu-1", Holder.me("gw1", "r"))
    lease.release()


def test_cleared_lease_is_lost(tmp_path):
    leases = FileLeases(tmp_path)
    lease = leases.acquire("emu-1", Holder.me("gw0", "r"))
    assert leases.clear("emu-1") == lease.holder
    with pytest.raises(LeaseLost, match="emu-1: its lease was cleared"):
        lease.check()
    lease.release()


def test_lock_file_replaced_is_lost(tmp_path):
    leases = FileLeases(tmp_path)
    lease = leases.acquire("emu-1", Holder.me("gw0", "r"))
    (tmp_path / "leases" / "emu-1.lock").unlink()
    (tmp_path / "leases" / "emu-1.lock").touch()
    with pytest.raises(LeaseLost, match="lock file was replaced"):
        lease.check()
    lease.release()
