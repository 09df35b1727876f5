"""The Xous kernel as KeyOS runs it: processes, servers, connections and the send permission check.

Enforcement follows ``xous/kernel/src/syscall.rs`` (``check_message_permission``), ``server.rs``
(``MessagePermissions``) and ``permission_requests.rs`` (keyos.md §1.4):

* a send is allowed when the sender owns the server or the connection's permissions cover the id;
* otherwise a sender that cannot wait (``TrySendMessage``) gets ``AccessDenied`` and the kernel
  prints ``[!] Denying message send from {pid} to {sid}@{server_pid}, msgid={id}``;
* a sender that can wait is recorded in a table of 64 requests and parked while the permission
  broker decides; no broker => ``AccessDenied`` with ``: no permission broker``; a full table =>
  ``KernelTableFull``. A request whose sender or server goes away is tombstoned and its sender woken
  with an error.

Each process has its own address space: one process cannot map another's pages.
"""

from __future__ import annotations

import enum
import hashlib
import random
import threading
from dataclasses import dataclass, field
from typing import Callable

from hil.emulator.defects import Defects

MESSAGE_PERMISSION_COUNT = 4
MAX_PERMISSION_REQUESTS = 64
MAX_PID = 255
PAGE = 4096


class XousError(enum.Enum):
    """The errors a probe can observe: ``xous::Error`` values and the fs server's own answers."""

    AccessDenied = "AccessDenied"
    ServerNotFound = "ServerNotFound"
    KernelTableFull = "KernelTableFull"
    InvalidArguments = "InvalidArguments"
    ProcessNotFound = "ProcessNotFound"
    MemoryInUse = "MemoryInUse"
    BadAddress = "BadAddress"
    ProcessTerminated = "ProcessTerminated"
    Timeout = "Timeout"
    InvalidOperation = "InvalidOperation"  # fs: write without a write grant, or to a read-only location
    FileNotFound = "FileNotFound"  # fs


class KernelError(Exception):
    def __init__(self, error: XousError, detail: str = ""):
        super().__init__(f"{error.value}{': ' + detail if detail else ''}")
        self.error = error


class MessagePermissions:
    """A u64 mask for ids 0..63 plus up to four half-open ranges for ids >= 64 (``server.rs``): a range that
    ends at 64 or below lives in the mask alone and takes no range slot."""

    def __init__(self, defects: Defects = Defects()):
        self.mask = 0
        self.ranges: list[tuple[int, int]] = []
        self._defects = defects

    def add(self, start: int, end: int) -> None:
        """Permit ``start..end`` (end exclusive); contiguous ranges merge, a fifth one is refused."""
        if start >= end:
            raise KernelError(XousError.InvalidArguments, f"empty range {start}..{end}")
        shift = 1 if self._defects.has("mask-off-by-one") else 0
        for mid in range(start, min(end, 64)):
            if mid + shift < 64:
                self.mask |= 1 << (mid + shift)
        in_mask_only = end <= 64
        if end == 64 and self._defects.has("run-ending-at-64-takes-a-range-slot"):
            in_mask_only = False
        if in_mask_only:
            return
        gap = 1 if self._defects.has("kernel-merges-runs-one-apart") else \
            -1 if self._defects.has("kernel-keeps-touching-runs-apart") else 0
        for i, (a, b) in enumerate(self.ranges):
            if a <= end + gap and start <= b + gap:
                self.ranges[i] = (min(a, start), max(b, end))
                return
        if len(self.ranges) == MESSAGE_PERMISSION_COUNT:
            if self._defects.has("kernel-merges-a-fifth-range-into-the-last"):
                self.ranges[-1] = (min(self.ranges[-1][0], start), max(self.ranges[-1][1], end))
                return
            raise KernelError(XousError.KernelTableFull, "all four permission ranges are in use")
        self.ranges.append((start, end))

    def add_ids(self, ids: list[int]) -> None:
        """Add individual ids as the fewest ranges (what app-manager does for a list of message names)."""
        for a, b in _runs(sorted(set(ids))):
            self.add(a, b)

    def is_permitted(self, mid: int) -> bool:
        if mid < 64:
            return bool(self.mask >> mid & 1)
        if self._defects.has("kernel-ignores-range-list") and self.ranges:
            return True
        return any(a <= mid < b for a, b in self.ranges)

    def is_empty(self) -> bool:
        return self.mask == 0 and not self.ranges


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Consecutive ids as half-open runs."""
    out: list[tuple[int, int]] = []
    for mid in ids:
        if out and out[-1][1] == mid:
            out[-1] = (out[-1][0], mid + 1)
        else:
            out.append((mid, mid + 1))
    return out


@dataclass
class Process:
    pid: int
    name: str
    app_id: bytes
    ppid: int
    foundation: bool  # signed by Foundation (built-in) rather than a third-party publisher
    memory: dict[int, bytearray] = field(default_factory=dict)  # page address -> contents (own space)
    connections: dict[int, "Connection"] = field(default_factory=dict)
    threads: str = "w"  # one char per thread, the kernel's ThreadState letters (debug output)

    @property
    def ram_kib(self) -> int:
        return 96 + hashlib.sha256(self.name.encode()).digest()[0] * 4

    def map_page(self, address: int, data: bytes) -> None:
        self.memory[address - address % PAGE] = bytearray(data.ljust(PAGE, b"\0")[:PAGE])


@dataclass
class Server:
    sid: tuple[int, int, int, int]
    pid: int
    name: str

    @property
    def sid_text(self) -> str:
        """The SID as the kernel's ``{:08x?}`` prints it."""
        return "SID([" + ", ".join(f"{w:08x}" for w in self.sid) + "])"


@dataclass
class Connection:
    cid: int
    server: Server
    permissions: MessagePermissions


@dataclass
class PermissionRequest:
    id: int
    sender_pid: int
    sender_app_id: bytes
    cid: int
    server: Server
    message_id: int
    valid: bool = True
    decided: threading.Event = field(default_factory=threading.Event)
    allow: bool = False


class Kernel:
    """Process, server and permission-request tables, guarded by one lock."""

    def __init__(self, log: Callable[[str], None], defects: Defects = Defects(), seed: int = 0):
        self.log = log
        self.defects = defects
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.processes: dict[int, Process] = {}
        self.servers: dict[str, Server] = {}
        self.requests: list[PermissionRequest | None] = [None] * MAX_PERMISSION_REQUESTS
        self._broker: Callable[[int], None] | None = None
        self._withdrawn: Callable[[int], None] = lambda rid: None

    # ------------------------------------------------------------------ processes

    def spawn(self, name: str, app_id: bytes, foundation: bool, ppid: int = 1) -> Process:
        with self._lock:
            pid = next((p for p in range(1, MAX_PID + 1) if p not in self.processes), None)
            if pid is None:
                raise KernelError(XousError.KernelTableFull, "no free pid")
            proc = Process(pid, name, app_id, ppid, foundation)
            self.processes[pid] = proc
            return proc

    def process(self, pid: int) -> Process:
        proc = self.processes.get(pid)
        if proc is None:
            raise KernelError(XousError.ProcessNotFound, f"pid {pid}")
        return proc

    def terminate(self, pid: int, panic: str | None = None) -> None:
        """End a process; its servers go away and the requests it sent or would have served are
        withdrawn (slot freed, sender woken, prompt dismissed)."""
        with self._lock:
            proc = self.processes.pop(pid, None)
            if proc is None:
                return
            if panic is not None:
                self.log(f"[LOG] PANIC in PID {pid}: {panic}")
            gone = [name for name, s in self.servers.items() if s.pid == pid]
            for name in gone:
                del self.servers[name]
            cut = [r for r in self.requests if r and (r.sender_pid == pid or r.server.pid == pid)]
            for req in cut:
                self._free(req)
        for req in cut:
            self._withdrawn(req.id)
        if panic is not None and self.defects.has("crash-takes-down-system"):
            for peer in {c.server.pid for c in proc.connections.values()} - {pid}:
                self.terminate(peer, f"connection to PID {pid} lost")

    def _free(self, req: PermissionRequest) -> None:
        """Take a request out of the table undecided (denied) and wake its sender; lock held."""
        self.requests[req.id] = None
        req.valid = False
        req.allow = False
        req.decided.set()

    # ------------------------------------------------------------------ servers

    def create_server(self, pid: int, name: str, aliases: tuple[str, ...] = ()) -> Server:
        with self._lock:
            self.process(pid)
            if name in self.servers:
                raise KernelError(XousError.MemoryInUse, f"server {name!r} already exists")
            server = Server(tuple(self._rng.getrandbits(32) for _ in range(4)), pid, name)  # type: ignore[arg-type]
            for n in (name, *aliases):
                self.servers[n] = server
            return server

    def connect(self, pid: int, server_name: str, permissions: MessagePermissions) -> int:
        """Open a connection carrying the permissions app-manager computed for this app and server."""
        with self._lock:
            proc = self.process(pid)
            server = self.servers.get(server_name)
            if server is None:
                raise KernelError(XousError.ServerNotFound, server_name)
            for cid, conn in proc.connections.items():
                if conn.server is server:
                    return cid
            cid = max(proc.connections, default=1) + 1
            proc.connections[cid] = Connection(cid, server, permissions)
            return cid

    def set_broker(self, broker: Callable[[int], None] | None,
                   withdrawn: Callable[[int], None] = lambda rid: None) -> None:
        """Subscribe the permission broker (gui-server); it is told each new request id, and each id
        withdrawn before it decided (sender or server gone, sender timed out) so it drops the prompt."""
        self._broker = broker
        self._withdrawn = withdrawn

    # ------------------------------------------------------------------ send

    def deny_line(self, pid: int, server: Server, mid: int, suffix: str = "") -> str:
        return f"[!] Denying message send from {pid} to {server.sid_text}@{server.pid}, msgid={mid}{suffix}"

    def _deny(self, pid: int, server: Server, mid: int, error: XousError, suffix: str = "") -> KernelError:
        if not self.defects.has("no-deny-log-line"):
            self.log(self.deny_line(pid, server, mid, suffix))
        return KernelError(error, suffix.lstrip(": "))

    def check_send(self, pid: int, cid: int, mid: int, may_wait: bool) -> PermissionRequest | None:
        """None when the send may proceed; a parked request when the broker must decide."""
        with self._lock:
            conn = self.process(pid).connections.get(cid)
            if conn is None or self.servers.get(conn.server.name) is not conn.server:
                raise KernelError(XousError.ServerNotFound, f"cid {cid}")
            server = conn.server
            own = server.pid == pid or (self.defects.has("kernel-skips-server-pid-check") and conn.permissions.is_empty())
            if own or conn.permissions.is_permitted(mid):
                return None
            if not may_wait:
                raise self._deny(pid, server, mid, XousError.AccessDenied)
            slot = next((i for i, r in enumerate(self.requests) if r is None), None)
            if slot is None:
                raise self._deny(pid, server, mid, XousError.KernelTableFull, ": permission request table full")
            if self._broker is None:
                raise self._deny(pid, server, mid, XousError.AccessDenied, ": no permission broker")
            req = PermissionRequest(slot, pid, self.process(pid).app_id, cid, server, mid)
            self.requests[slot] = req
        self._broker(slot)
        return req

    def send(self, pid: int, cid: int, mid: int, may_wait: bool, timeout: float) -> Server:
        """Run the permission check and, if parked, wait for the broker; returns the target server."""
        req = self.check_send(pid, cid, mid, may_wait)
        if req is not None:
            if not req.decided.wait(timeout):
                with self._lock:
                    mine = self.requests[req.id] is req
                    if mine:
                        self._free(req)
                if mine:  # a later answer must not widen the connection of a send that gave up
                    if not self.defects.has("timed-out-send-keeps-its-prompt"):
                        self._withdrawn(req.id)
                    raise KernelError(XousError.Timeout, f"permission request {req.id} still parked")
            with self._lock:
                if not req.valid:
                    raise KernelError(XousError.ServerNotFound, "request invalidated")
                if not req.allow:
                    raise KernelError(XousError.AccessDenied, "denied by the permission broker")
        return self.process(pid).connections[cid].server

    def request(self, rid: int) -> PermissionRequest | None:
        with self._lock:
            return self.requests[rid] if 0 <= rid < MAX_PERMISSION_REQUESTS else None

    def resolve(self, rid: int, allow: bool, req: PermissionRequest | None = None) -> None:
        """The broker's answer: allow adds the id to that exact connection, then wakes the sender.
        ``req`` is the request the broker was asked about: once withdrawn (its slot maybe reused since),
        the answer changes nothing."""
        with self._lock:
            current = self.requests[rid]
            if req is not None and current is not req:
                return
            req = current
            if req is None:
                raise KernelError(XousError.InvalidArguments, f"no permission request {rid}")
            self.requests[rid] = None
            if req.valid and allow:
                proc = self.processes[req.sender_pid]
                wider = 1 if self.defects.has("kernel-allow-adds-the-next-id") else 0
                every = self.defects.has("kernel-allow-opens-the-id-on-every-connection")
                for conn in proc.connections.values() if every else [proc.connections[req.cid]]:
                    conn.permissions.add(req.message_id, req.message_id + 1 + wider)
            req.allow = allow and req.valid
            req.decided.set()

    # ------------------------------------------------------------------ memory

    def read_memory(self, reader: int, owner: int, address: int, length: int) -> bytes:
        """A process reading memory: only its own pages are mapped; another's pages are in use."""
        with self._lock:
            proc = self.process(reader)
            target = self.process(owner)
            shared = self.defects.has("kernel-shares-process-memory") or (
                self.defects.has("kernel-isolates-only-foundation-memory") and not target.foundation)
            if target is not proc and not shared:
                raise KernelError(XousError.MemoryInUse, f"page {address:#x} belongs to PID {owner}")
            page = target.memory.get(address - address % PAGE)
            empty_taken = length == 0 and self.defects.has("kernel-reads-an-empty-range")
            if page is None or (length <= 0 and not empty_taken) or address % PAGE + length > PAGE:
                raise KernelError(XousError.BadAddress, f"{address:#x}+{length} is not mapped")
            off = address % PAGE
            return bytes(page[off:off + length])
