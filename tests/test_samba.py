"""The SAM-BA client against the emulated ROM monitor, over a real pty with pyserial."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import serial
from serial import rfc2217

from hil.emulator import samba as rom
from hil.emulator.emmc import Emmc
from hil.flash import emulated
from hil.flash.samba import EmmcFile, Samba, SambaError
from hil.machine import scaled

APPLET = emulated.APPLET.read_bytes()


@pytest.fixture
def monitor(tmp_path):
    emmc = Emmc(tmp_path / "emmc.img", 4 * 1024 * 1024)
    mon = rom.SambaMonitor(emmc, APPLET)
    mon.start_pty()
    mon.enter()
    yield mon
    mon.stop()
    emmc.close()


@pytest.fixture
def client(monitor):
    s = Samba.open(monitor.path, timeout=1)
    yield s
    s.close()


def test_connect_checks_chip_and_maps_l2(client, monitor):
    assert not monitor.l2_sram
    client.connect()
    assert client.version().startswith("v3.0")  # a round trip: the W before it has been handled
    assert monitor.binary and monitor.l2_sram
    assert client.read_u32(0xFC069000) & 0xFFFFFFE0 == 0x8A5C08C0


def test_sram_write_read_and_terminal_mode(client, monitor):
    with serial.Serial(monitor.path, timeout=1) as raw:
        raw.write(b"w200000,#")
        assert raw.read(15) == b"\n\r0x00000000\n\r>"  # terminal mode until N#
    client.connect()
    client.write(0x200010, b"hello world!")
    assert client.read(0x200010, 12) == b"hello world!"
    client.write_u32(0x200100, 0xDEADBEEF)
    assert client.read_u32(0x200100) == 0xDEADBEEF


def test_wrong_chip_is_refused(client, monkeypatch):
    monkeypatch.setattr(rom, "SAMA5D27_CIDR", 0x12345678)
    with pytest.raises(SambaError, match="is not a SAMA5D2"):
        client.connect()


def test_applet_needs_l2_as_sram_and_the_right_code(client, monitor):
    client.send(b"N#")
    assert client._read(2, 1, "N#") == b"\n\r"
    with pytest.raises(SambaError, match="did not acknowledge"):  # L2 still a cache: nothing at 0x220000
        client.sdmmc(APPLET)
    client.write_u32(0xF8030058, 0)
    with pytest.raises(SambaError, match="did not acknowledge"):
        client.sdmmc(APPLET[:-1] + b"X")
    assert client.sdmmc(APPLET).page_size == 512


def test_applet_init_arguments_are_checked(client):
    client.connect()
    with pytest.raises(SambaError, match="failed to initialise"):
        client.sdmmc(APPLET, bus_width=3)


def test_pages_write_read_verify_and_rewrite(client, monitor):
    client.connect()
    sd = client.sdmmc(APPLET)
    assert (sd.chunk_size, sd.pages) == (65536, 8192)
    data = os.urandom(200 * 1024)
    done = []
    sd.write(1024, data, done.append)
    assert done[-1] == len(data) and len(done) == 4
    assert sd.read(1024, len(data)) == data
    assert sd.verify(1024, data).chunks_patched == 0
    monitor.emmc.arm_bad_writes(1)
    sd.write(0, data[:65536])
    stats = sd.verify(0, data[:65536])
    assert (stats.chunks_patched, stats.attempts) == (1, 1)
    assert monitor.emmc.read_pages(0, 128) == data[:65536]
    monitor.emmc.arm_bad_writes(10)
    sd.write(0, data[:512])
    with pytest.raises(SambaError, match="differ from the image after 3 rewrite"):
        sd.verify(0, data[:512])


def test_out_of_range_and_unaligned(client):
    client.connect()
    sd = client.sdmmc(APPLET)
    with pytest.raises(SambaError, match="status 15"):
        sd.read_pages(sd.pages - 1, 2)
    with pytest.raises(ValueError, match="not a multiple"):
        sd.write(100, bytes(512))


def test_emmc_file_reads_and_patches_in_place(client, monitor):
    client.connect()
    sd = client.sdmmc(APPLET)
    f = EmmcFile(sd, sd.pages * 512, writable=True)
    f.seek(1000)
    f.write(b"patch across a page boundary" * 3)
    assert monitor.emmc.read_pages(1, 2)[1000 - 512:1000 - 512 + 28] == b"patch across a page boundary"
    f.seek(1000)
    assert f.read(28) == b"patch across a page boundary"
    with pytest.raises(Exception):
        EmmcFile(sd, sd.pages * 512).write(b"x")


def test_silent_or_absent_monitor_is_broken_not_hung(client, monitor):
    monitor.leave()  # device not in SAM-BA mode: nothing answers
    start = time.monotonic()
    with pytest.raises(SambaError, match="no SAM-BA monitor answered"):
        client.connect(timeout=0.5)
    assert time.monotonic() - start < 5
    with pytest.raises(SambaError, match="cannot open"):
        Samba.open("/dev/does-not-exist")


def test_power_cut_mid_write_goes_dark(client, monitor):
    cuts = []
    monitor.on_power_cut = lambda: cuts.append(1)
    client.connect()
    sd = client.sdmmc(APPLET)
    monitor.emmc.arm_power_cut(3000)
    with pytest.raises(SambaError):
        sd.write(0, os.urandom(65536))
    assert cuts == [1] and not monitor.active
    assert monitor.emmc.read_pages(6, 1) == bytes(512)  # only whole pages before the cut were stored


def test_pipelined_transfers_keep_answers_in_step(client, monitor):
    """Several chunks are in flight at once: a chunk rewritten mid-verify, and failures in the middle of a
    write or a read, leave every later answer with the command it belongs to."""
    client.connect()
    sd = client.sdmmc(APPLET)
    data = os.urandom(8 * 65536)
    sd.write(0, data)
    monitor.emmc.arm_bad_writes(1)
    sd.write_pages(5 * 128, data[5 * 65536:6 * 65536])  # the sixth of eight chunks goes bad
    stats = sd.verify(0, data)
    assert (stats.chunks_patched, stats.attempts) == (1, 1)
    assert monitor.emmc.read_pages(0, 8 * 128) == data
    beyond_end = (sd.pages - 3 * 128) * 512  # chunks 4.. of 8 run past the eMMC's end
    with pytest.raises(SambaError, match="status 15 after writing 128 page"):
        sd.write(beyond_end, data)
    assert client.read_u32(0xFC069000) & 0xFFFFFFE0 == 0x8A5C08C0  # the link is in step
    with pytest.raises(SambaError, match="status 15 after reading 128 page"):
        sd.verify(beyond_end, data)
    assert client.read_u32(0xFC069000) & 0xFFFFFFE0 == 0x8A5C08C0
    assert sd.read(0, 65536) == data[:65536]


def test_an_answer_is_what_memory_held_when_its_command_ran(client, monitor):
    """The monitor sends the answers of one read of the cable as one write; an R's answer is what memory held
    when the R ran, though the commands after it in the same read change that memory."""
    client.connect()
    client.write(0x200000, b"old!")
    client.send(b"R200000,4#", *client.write_request(0x200000, b"new!"), b"W200004,3f3f3f3f#R200000,8#")
    assert client.read_answer(0x200000, 4) == b"old!"
    assert client.read_answer(0x200000, 8) == b"new!????"


def test_a_monitor_that_hangs_up_is_gone_at_once_not_waited_for(client, monitor):
    """A local tty is read straight into one buffer (no select before each read): a hung-up port still ends the
    read at once as broken, not after the timeout, and not as an empty answer."""
    client.connect()
    monitor.stop()  # the unit's USB goes away under the open port
    start = time.monotonic()
    with pytest.raises(SambaError, match="read failed.*device gone"):
        client.read_answer(0x220000, 65536)
    assert time.monotonic() - start < client.timeout


def test_a_monitor_that_stops_reading_fails_the_write_by_its_deadline():
    """A unit that stops draining its port (a wedged monitor) ends the write as broken at the session's
    deadline, never blocks the lab host for good."""
    master, slave = os.openpty()  # nobody reads the master: the tty's buffer fills and writes block
    try:
        with Samba.open(os.ttyname(slave), timeout=0.5) as samba:
            with pytest.raises(SambaError, match="write failed"):
                samba.send(bytes(1 << 20))
    finally:
        os.close(master)
        os.close(slave)


class _Answers:
    """The connection as ``PortManager`` answers through it."""

    def __init__(self, conn: socket.socket):
        self.write = conn.sendall


class _Rfc2217Server:
    """pyserial's own RFC 2217 server side (``PortManager``, what its ``rfc2217_server.py`` example runs) on a
    loopback socket: it negotiates the options as a ser2net port does, then stops reading, as a wedged bench would."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.negotiated = threading.Event()
        self.done = threading.Event()
        self.url = f"rfc2217://127.0.0.1:{self.listener.getsockname()[1]}?ign_set_control"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        manager = rfc2217.PortManager(serial.serial_for_url("loop://"), _Answers(conn))
        conn.settimeout(0.05)
        while not self.negotiated.is_set():
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            list(manager.filter(data))
        self.done.wait()  # holds the connection open, reading nothing
        conn.close()

    def close(self) -> None:
        self.done.set()
        self.listener.close()


def test_a_monitor_that_stops_reading_over_rfc2217_fails_the_write_by_the_sessions_deadline():
    """A bench's ser2net port (rfc2217://) takes no write_timeout; its write is the socket's sendall, which
    pyserial leaves bounded by its 5 s connect timeout whatever the session's deadline, and reported as a
    socket error. The session's deadline holds there too, and the error says what happened."""
    server = _Rfc2217Server()
    try:
        with Samba.open(server.url, timeout=0.5) as samba:
            server.negotiated.set()  # the port is open: the options were negotiated
            with pytest.raises(SambaError, match=r"rfc2217://127\.0\.0\.1:\d+.*: write failed \(not taken within "
                                                 r"0\.5 s: the monitor stopped reading\)$"):
                for _ in range(256):  # until the socket's buffers are full, however large this host makes them
                    start = time.monotonic()
                    samba.send(bytes(1 << 20))
            assert time.monotonic() - start >= 0.5
    finally:
        server.close()


def test_a_monitor_that_stops_reading_over_a_raw_socket_fails_the_send_by_the_sessions_deadline():
    """A bench's plain TCP serial server (socket://) has no descriptor either, and pyserial waits on a peer that
    stopped reading forever unless given a write_timeout: each send ends by the session's deadline."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()  # accepts, never reads
    outcome: list[BaseException] = []
    sent = threading.Event()

    def flood() -> None:
        try:
            with Samba.open(f"socket://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5) as samba:
                for _ in range(256):  # until the socket's buffers are full, however large this host makes them
                    samba.send(bytes(1 << 20))
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            outcome.append(e)
        sent.set()

    threading.Thread(target=flood, daemon=True).start()
    try:
        assert sent.wait(scaled(10.0)), "a send to a peer that stopped reading is still blocked"
    finally:
        listener.close()  # today's blocked send: the peer's close ends it (its thread is a daemon)
        for conn in held:
            conn.close()
    assert len(outcome) == 1 and isinstance(outcome[0], SambaError), outcome
    assert "write failed (not taken within 0.5 s: the monitor stopped reading)" in str(outcome[0])


def test_a_raw_socket_is_read_by_its_deadline_and_a_hang_up_is_a_device_gone():
    """socket:// answers are read straight off the socket, as a local tty's are: whole, a short one broken at the
    timeout, and a peer that hangs up gone at once, not waited for."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer = os.urandom(70000)

    def serve() -> None:
        conn = listener.accept()[0]
        conn.recv(1)  # the request (pyserial drops what arrives before its open ends)
        conn.sendall(answer + b"abc")
        conn.recv(1)  # until the test says to hang up
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with Samba.open(f"socket://127.0.0.1:{listener.getsockname()[1]}", timeout=scaled(5.0)) as samba:
            samba.send(b"R")
            assert samba.read_answer(0, len(answer)) == answer
            with pytest.raises(SambaError, match="got 3 of 4 bytes"):
                samba._read(4, 0.3, "a short answer")
            samba.send(b"x")  # the peer hangs up
            start = time.monotonic()
            with pytest.raises(SambaError, match="read failed.*device gone"):
                samba._read(4, scaled(30.0), "after the hang-up")
            assert time.monotonic() - start < scaled(30.0)  # ended by the hang-up, not by the deadline
    finally:
        listener.close()


def test_a_port_without_a_descriptor_is_read_through_pyserial():
    """rfc2217:// and the like have no file descriptor: their answers come through pyserial's read,
    and a short answer is broken after the timeout."""
    port = serial.serial_for_url("loop://", timeout=0.05)
    samba = Samba(port, timeout=0.3)
    answer = os.urandom(4000)  # loop:// holds 4 KiB
    port.write(answer)
    assert samba.read_answer(0, len(answer)) == answer
    port.write(b"abc")
    with pytest.raises(SambaError, match="got 3 of 4 bytes"):
        samba.read_answer(0, 4)
