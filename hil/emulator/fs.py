"""The fs server's location access layer (``os/fs/src/access.rs``, keyos.md §1.4 and §2.1).

Kernel permissions decide who may *send* ``Get<Loc>Read/WriteAccess``; this layer is the additional
check on the files themselves: a client must first have sent the access message, the server records
``(pid, location, write)``, and opening without a record fails with ``AccessDenied`` (read) or
``InvalidOperation`` (write). AppData is per app and needs no grant; CommonAssets and AppResources
are read-only; System, Boot, EncryptedRoot and SystemAppData are reached only through their access
messages, which the kernel lets through for Foundation-signed callers only.
"""

from __future__ import annotations

import enum
import posixpath
import threading

from hil.emulator.defects import Defects
from hil.emulator.kernel import KernelError, XousError


class Location(enum.IntEnum):
    """``fs::Location`` (``api/fs/src/lib.rs``)."""

    CommonAssets = 1
    AppData = 2
    System = 3
    EncryptedRoot = 4
    Boot = 5
    Usb = 6
    User = 7
    Airlock = 8
    SystemAppData = 9
    AppResources = 10


# location -> (read access message, write access message); None = no grant needed
ACCESS_MESSAGES: dict[Location, tuple[str, str]] = {
    Location.Usb: ("GetUsbReadAccess", "GetUsbWriteAccess"),
    Location.User: ("GetUserReadAccess", "GetUserWriteAccess"),
    Location.Airlock: ("GetAirlockReadAccess", "GetAirlockWriteAccess"),
    Location.Boot: ("GetBootReadAccess", "GetBootWriteAccess"),
    Location.EncryptedRoot: ("GetEncryptedRootReadAccess", "GetEncryptedRootWriteAccess"),
    Location.System: ("GetSystemReadAccess", "GetSystemWriteAccess"),
    Location.SystemAppData: ("GetSystemAppDataReadAccess", "GetSystemAppDataWriteAccess"),
}
READ_ONLY = frozenset({Location.CommonAssets, Location.AppResources})


class FsError(KernelError):
    """An fs server answer other than Ok (the server's own error, not the kernel's)."""


class FileSystem:
    """The volumes' files (path -> bytes per location root) and the per-process access records."""

    def __init__(self, defects: Defects = Defects()):
        self.defects = defects
        self._lock = threading.Lock()
        self.files: dict[str, bytes] = {}  # "<root>/<path>" -> contents
        self._grants: set[tuple[int, Location, bool]] = set()  # (pid, location, write)

    # ------------------------------------------------------------ the access messages

    def record_access(self, pid: int, message: str) -> Location:
        """The fs server's handler of ``Get<Loc>Read/WriteAccess``: the kernel already let it through."""
        for loc, (read, write) in ACCESS_MESSAGES.items():
            if message in (read, write):
                if loc is Location.Usb and self.defects.has("fs-usb-access-not-recorded"):
                    return loc
                with self._lock:
                    self._grants.add((pid, loc, message == write))
                return loc
        raise FsError(XousError.InvalidArguments, f"{message} is not an access message")

    def forget(self, pid: int) -> None:
        """A process exited: its access records go with it (a recycled pid starts with none)."""
        if self.defects.has("fs-grants-outlive-process"):
            return
        kept = self.defects.has("fs-exit-keeps-write-grants")  # the defect: only read records are dropped
        with self._lock:
            self._grants = {g for g in self._grants if g[0] != pid or (kept and g[2])}

    def _allowed(self, pid: int, loc: Location, write: bool) -> bool:
        if write and self.defects.has("fs-write-with-read-grant"):
            return (pid, loc, True) in self._grants or (pid, loc, False) in self._grants
        if loc is Location.Airlock and self.defects.has("fs-skips-airlock-grant"):
            return True
        if self.defects.has("fs-grant-opens-every-location"):
            return any(g[0] == pid and (g[2] or not write) for g in self._grants)
        if loc is Location.Usb and self.defects.has("fs-user-grant-opens-usb"):
            return self._allowed(pid, Location.User, write)
        if self.defects.has("fs-grant-not-bound-to-its-pid"):
            return any(g[1] is loc and (g[2] or not write) for g in self._grants)
        if not write and self.defects.has("fs-write-grant-reads"):
            return (pid, loc, False) in self._grants or (pid, loc, True) in self._grants
        return (pid, loc, write) in self._grants  # access.rs: read and write records are two sets, each checked alone

    # ------------------------------------------------------------ files

    def root(self, loc: Location, app_id: bytes) -> str:
        if loc is Location.AppData:
            return "encrypted/appdata/shared" if self.defects.has("fs-appdata-not-scoped") \
                else f"encrypted/appdata/0x{app_id.hex()}"
        if loc is Location.AppResources:
            return f"system/keyos/sideloaded-apps/{app_id.hex()}/resources"
        if loc is Location.SystemAppData:
            return f"system/state/0x{app_id.hex()}"
        return {Location.CommonAssets: "system/common", Location.System: "system", Location.EncryptedRoot: "encrypted",
                Location.Boot: "boot", Location.Usb: "usb", Location.User: "encrypted/user",
                Location.Airlock: "encrypted/user/airlock.img"}[loc]

    def _path(self, loc: Location, app_id: bytes, path: str) -> str:
        clean = posixpath.normpath("/" + path).lstrip("/")
        if not path or clean.startswith("..") or path.startswith("/") or ".." in path.split("/"):
            raise FsError(XousError.InvalidArguments, f"path {path!r} must be relative without '..'")
        return f"{self.root(loc, app_id)}/{clean}"

    def check(self, pid: int, app_id: bytes, loc: Location, write: bool) -> None:
        """The open-time check of ``access.rs``."""
        writable = loc is Location.AppResources and self.defects.has("fs-app-resources-writable")
        if write and loc in READ_ONLY and not writable:
            raise FsError(XousError.InvalidOperation, f"{loc.name} is read-only")
        ungated = self.defects.has("fs-gates-only-the-user-locations") and loc not in (Location.User, Location.Airlock, Location.Usb)
        if loc in ACCESS_MESSAGES and not ungated and not self._allowed(pid, loc, write):
            if write:
                raise FsError(XousError.InvalidOperation, f"no write access to {loc.name} recorded for PID {pid}")
            raise FsError(XousError.AccessDenied, f"no read access to {loc.name} recorded for PID {pid}")

    def read(self, pid: int, app_id: bytes, loc: Location, path: str) -> bytes:
        self.check(pid, app_id, loc, write=False)
        full = self._path(loc, app_id, path)
        with self._lock:
            if full not in self.files:
                raise FsError(XousError.FileNotFound, f"{loc.name}:{path}")
            return self.files[full]

    def write(self, pid: int, app_id: bytes, loc: Location, path: str, data: bytes) -> None:
        self.check(pid, app_id, loc, write=True)
        with self._lock:
            self.files[self._path(loc, app_id, path)] = bytes(data)

    # ------------------------------------------------------------ for system services (no access layer)

    def system_read(self, loc: Location, app_id: bytes, path: str) -> bytes | None:
        with self._lock:
            return self.files.get(self._path(loc, app_id, path))

    def system_write(self, loc: Location, app_id: bytes, path: str, data: bytes) -> None:
        with self._lock:
            self.files[self._path(loc, app_id, path)] = bytes(data)
