"""KeyOS as the emulated Prime runs it: the kernel, app-manager, the permission broker, the fs access
layer and the security server, wired together, plus the kernel debug output.

Real names and shapes: app ids are 16 bytes (system components spell their ASCII name, padded or cut
to 16 bytes, as ``just service-id`` does; third-party ids are the first 16 bytes of sha256 of the
lower-cased name), servers are named ``os/<name>``, and the kernel debug commands print the columns
of ``xous/kernel/src/debug``.  The enforcement itself lives in ``kernel.py`` (send checks),
``app_manager.py`` (launch checks, permissions, grants), ``broker.py`` (the prompt) and ``fs.py``
(locations); this module routes what an app does (the probe app, ``probe.py``) through them.
"""

from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hil.emulator.app_manager import AppManager, CertificateError, InstalledApp
from hil.emulator.broker import PermissionBroker
from hil.emulator.defects import Defects
from hil.emulator.fs import ACCESS_MESSAGES, FileSystem, FsError, Location
from hil.emulator.kernel import Kernel, KernelError, MessagePermissions, Process, XousError
from hil.emulator.probe import PLAN_PATH, ProbeRun, is_probe
from hil.flash import cosign2
from hil.flash.manifest import ManifestError, load_capability_matrix, load_dir, loads

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

RAM_TOTAL_KIB = 128 * 1024
ROOT = Path(__file__).resolve().parents[2]
CAPABILITY_MATRIX = ROOT / "fixtures" / "keyos" / "capability_matrix.toml"
FOUNDATION_SIGNERS = ROOT / "firmware" / "keys" / "test-signers.toml"  # the emulator's stand-in for Foundation's keys
CANARY_ADDRESS = 0x2000_0000  # where every app process keeps a page of its own secret bytes


def service_id(name: str) -> bytes:
    """``just service-id``: the ASCII name, zero-padded or cut to 16 bytes."""
    return name.encode("ascii")[:16].ljust(16, b"\0")


def app_id_for_name(name: str) -> bytes:
    """``just app-id``: the first 16 bytes of sha256 of the lower-cased app name."""
    return hashlib.sha256(name.lower().encode()).digest()[:16]


class AppKind(enum.Enum):
    """``AppKind`` of gui-server: the role an app plays on screen."""
    APP = "App"
    CONTROL_CENTER = "ControlCenter"
    LAUNCHER = "Launcher"
    SETTINGS = "Settings"
    LOCK_SCREEN = "LockScreen"
    ALERTS = "Alerts"


@dataclass
class App:
    app_id: bytes
    name: str  # appName.en
    elf: str  # process name, the crate name
    kind: AppKind = AppKind.APP
    builtin: bool = True
    in_launcher: bool = True

    @property
    def path(self) -> str:
        if self.builtin:
            return f"/keyos/apps/{self.elf}/app.elf"
        return f"/keyos/sideloaded-apps/{self.app_id.hex()}/app.elf"


LOCK_SCREEN = App(bytes.fromhex("0a" + "00" * 15), "Lock Screen", "gui-app-lock-screen",
                  AppKind.LOCK_SCREEN, in_launcher=False)
LAUNCHER = App(service_id("gui-app-launcher"), "App Launcher", "gui-app-launcher", AppKind.LAUNCHER,
               in_launcher=False)
CONTROL_CENTER = App(service_id("gui-app-control-center"), "Control Center", "gui-app-control-center",
                     AppKind.CONTROL_CENTER, in_launcher=False)
ALERTS = App(service_id("gui-app-alerts"), "Alerts", "gui-app-alerts", AppKind.ALERTS, in_launcher=False)
SETTINGS = App(bytes.fromhex("c192b79230473875f159d4423d74d00f"), "Settings", "gui-app-settings",
               AppKind.SETTINGS)
# The user apps of KeyOS release 1.0.0 (ids from KeyOS-Releases 1.0.0/apps/*/manifest.json).
USER_APPS = [
    App(bytes.fromhex("426974636f696e2057616c6c65740000"), "Bitcoin Wallet", "gui-app-bitcoin"),
    SETTINGS,
    App(bytes.fromhex("5365637572697479204b657973000000"), "Security Keys", "gui-app-security-keys"),
    App(bytes.fromhex("53656564205661756c74000000000000"), "Seed Vault", "gui-app-seed-vault"),
    App(bytes.fromhex("41757468656e74696361746f72203246"), "Authenticator", "gui-app-authenticator"),
    App(bytes.fromhex("6775692d6170702d6578616d706c652e"), "QR Scanner", "gui-app-qr-scanner"),
    App(bytes.fromhex("46696c652042726f7773657200000000"), "File Browser", "gui-app-file-browser"),
]
SYSTEM_APPS = [LOCK_SCREEN, LAUNCHER, CONTROL_CENTER, ALERTS]
# Runs instead of the lock screen until a PIN is set (KeyOS-Releases 1.0.0/apps/gui-app-onboarding).
ONBOARDING = App(service_id("onboarding"), "Onboarding", "gui-app-onboarding")

# Services started at boot, in order, after the kernel (pid 1); each serves ``os/<name>``
# unless it is one of Xous's own (names, log, ticktimer). There is no network stack.
BOOT_SERVICES = ["xous-ticktimer", "xous-log", "xous-names", "gui-server", "security", "fs", "settings",
                 "app-manager", "usb", "usbdev", "usb-debug", "nfc", "camera", "bt", "crypto", "haptics",
                 "rgb-server", "power-manager", "keycard", "quantum-link", "update", "fido"]
SYSTEM_SERVICES = {"app-manager", "gui-server", "security", "fs", "usb-debug", "settings"}


@dataclass(frozen=True)
class RunApp:
    """gui-server's ``RunAppResponse``."""
    outcome: str  # Launched | AlreadyRunning | Locked | AppIdNotFound | LaunchFailed | NotReady
    pid: int = 0
    reason: str = ""  # LaunchFailureReason: SignatureRejected, NoCertificate, ..., Internal


def foundation_keys() -> frozenset[bytes]:
    keys = cosign2.load_keyset(FOUNDATION_SIGNERS)
    return frozenset(s.pubkey for s in keys.signers if s.name != "test-developer")


class KeyOS:
    """One running KeyOS: kernel tables, installed apps, grants, files, and the running probes."""

    MAX_PROCESSES = 64

    def __init__(self, log: Callable[[str], None], defects: tuple[str, ...] = (), version: str = "1.0.0",
                 seed: int = 0, apps_dir: str | Path | None = None):
        self.log = log
        self.defects = Defects.of(defects)
        self.seed = seed
        self.matrix = load_capability_matrix(CAPABILITY_MATRIX)
        self.fs = FileSystem(self.defects)
        self.app_manager = AppManager(self.matrix, self.fs, self.defects, foundation_keys(), version)
        self.apps: dict[bytes, App] = {a.app_id: a for a in SYSTEM_APPS + USER_APPS}
        if apps_dir is not None:
            self._install_builtins(Path(apps_dir))
        for app in self.apps.values():  # every built-in is a Foundation app, manifest loaded or not
            self.app_manager.apps.setdefault(app.app_id, InstalledApp(app.app_id, None, True, False))
        self.kernel = Kernel(self._log, self.defects, seed)
        self.prime: Prime | None = None
        self.broker: PermissionBroker | None = None
        self._probes: dict[int, ProbeRun] = {}
        self._run_apps: dict[int, InstalledApp] = {}  # pid -> the app as launched (its manifest is fixed)

    def _install_builtins(self, apps_dir: Path) -> None:
        """Built-in apps from a release's ``apps/<name>/manifest.json`` (Foundation apps, in the image)."""
        for manifest in load_dir(apps_dir):
            self.app_manager.install_builtin(manifest)
            if manifest.app_id_bytes not in self.apps:
                elf = Path(manifest.source).parent.name
                self.apps[manifest.app_id_bytes] = App(manifest.app_id_bytes, manifest.name, elf)

    def attach(self, prime: Prime) -> None:
        """Wire the parts that live in the device: the display's modal API, the clock, the SE."""
        self.prime = prime
        self.broker = PermissionBroker(self.kernel, self.app_manager, prime.ui, lambda: prime.lock, self._log)

    def _log(self, line: str) -> None:
        if self.prime is None:
            self.log(line)
            return
        with self.prime.lock:
            self.log(line)

    @property
    def processes(self) -> dict[int, Process]:
        return self.kernel.processes

    @property
    def servers(self):
        seen, out = set(), {}
        for name, server in self.kernel.servers.items():
            if id(server) not in seen:
                seen.add(id(server))
                out[name] = server
        return out

    @property
    def certificates(self):
        return self.app_manager.certs

    # ------------------------------------------------------------ boot
    def boot(self) -> None:
        self.halt()
        if self.prime is not None:  # the build the bootloader just verified decides (and its defects)
            self.defects = self.fs.defects = self.app_manager.defects = self.prime.se.defects = \
                Defects.of(self.prime.build.defects)
            self.app_manager.keyos_version = self.prime.build.version
        self.kernel = Kernel(self._log, self.defects, self.seed)
        if self.broker is not None:
            self.broker.kernel = self.kernel
            self.broker.subscribe()
        self.kernel.spawn("kernel", service_id("kernel"), foundation=True, ppid=0)
        services = BOOT_SERVICES + (["net"] if self.defects.has("network-stack-present") else [])
        for name in services:
            proc = self.kernel.spawn(name, service_id(name), foundation=True, ppid=1)
            if not name.startswith("xous-"):
                server = f"os/{name}"
                aliases = tuple(a for a, c in self.matrix.aliases.items() if c == server)
                self.kernel.create_server(proc.pid, server, aliases)
        for app in SYSTEM_APPS + ([ONBOARDING] if self.prime is not None and self.prime.onboarding else []):
            self.kernel.spawn(app.elf, app.app_id, foundation=True, ppid=self.pid_of("app-manager"))

    def halt(self) -> None:
        """Power gone: every process stops, running probes first, and what the servers kept per process goes with
        them (fs access records, "Not Now" answers: both live in a server's memory, which the next boot starts
        afresh), so an app given the same PID after a reboot inherits nothing."""
        for pid in set(self.kernel.processes) | set(self._probes):
            self._gone(pid)
        self.kernel.processes.clear()

    def pid_of(self, name: str) -> int:
        return next(p.pid for p in self.processes.values() if p.name == name)

    def running(self, app_id: bytes) -> Process | None:
        return next((p for p in self.processes.values() if p.app_id == app_id), None)

    # ------------------------------------------------------------ apps
    def launch(self, app_id: bytes, locked: bool) -> RunApp:
        """gui-server ``RunApp``: refuse while locked, reuse a running instance, check the bundle."""
        if locked:
            return RunApp("Locked")
        app = self.apps.get(app_id)
        if app is None or app.kind is not AppKind.APP and app.kind is not AppKind.SETTINGS:
            return RunApp("AppIdNotFound")
        if (proc := self.running(app_id)) is not None:
            return RunApp("AlreadyRunning", proc.pid)
        installed = self.app_manager.apps.get(app_id)
        now = self.prime.now() if self.prime else int(time.time())
        if installed is not None and (reason := self.app_manager.verify_launch(installed, now)):
            self.log(f"WARN:app_manager: {app.name}: launch failed: {reason}")
            return RunApp("LaunchFailed", reason=reason)
        if len(self.processes) >= self.MAX_PROCESSES:
            return RunApp("LaunchFailed", reason="Internal")
        proc = self.kernel.spawn(app.elf, app.app_id, foundation=installed is None or installed.foundation,
                                 ppid=self.pid_of("app-manager"))
        proc.map_page(CANARY_ADDRESS, hashlib.sha256(b"canary" + app_id + self.seed.to_bytes(8, "little")).digest())
        if installed is not None:
            self._run_apps[proc.pid] = installed
            for server in (installed.manifest.servers if installed.manifest else {}):
                self.kernel.create_server(proc.pid, server)
        if installed is not None and installed.manifest is not None:
            app.name = installed.manifest.name
        self.log(f"INFO:app_manager: launched {app.name} ({app.app_id.hex()}) as PID {proc.pid}")
        if installed is not None and installed.sideloaded and is_probe(installed.files.get("app.elf", b"")[cosign2.DEFAULT_SIZE:]):
            self._start_probe(proc, installed)
        return RunApp("Launched", proc.pid)

    def _start_probe(self, proc: Process, installed: InstalledApp) -> None:
        from hil.emulator.apps.probe import ProbeScreen  # apps/ imports this module

        if self.prime is not None:
            self.prime.app_screens[proc.pid] = ProbeScreen(self.prime, self.apps[installed.app_id])
        run = ProbeRun(self, proc.pid, installed.app_id, installed.files.get(PLAN_PATH), self._log)
        self._probes[proc.pid] = run
        run.start()

    def _gone(self, pid: int) -> None:
        run = self._probes.pop(pid, None)
        if run is not None:
            run.stopped.set()
        self._run_apps.pop(pid, None)
        self.fs.forget(pid)
        self.app_manager.forget_run(pid)  # its pending permission requests: the kernel withdraws them

    def terminate(self, pid: int) -> Process | None:
        """Stop an app process (CloseRequested, then exit). System processes cannot be closed."""
        proc = self.processes.get(pid)
        app = self.apps.get(proc.app_id) if proc else None
        if app is None or app.kind not in (AppKind.APP, AppKind.SETTINGS):
            return None
        self.kernel.terminate(pid)
        self._gone(pid)
        self.log(f"INFO:app_manager: PID {pid} ({proc.name}) exited with code 0")
        return proc

    def crash(self, pid: int, message: str) -> None:
        """An app panic: the log server's line, then the process is gone; nothing else is."""
        proc = self.processes.get(pid)
        if proc is None:
            return
        before = set(self.processes)
        self.kernel.terminate(pid, panic=message)
        for gone in before - set(self.processes):
            if self.defects.has("crash-path-keeps-fs-grants"):
                self._probes.pop(gone, None)
            else:
                self._gone(gone)
            if self.prime is not None:
                self.prime.app_screens.pop(gone, None)
                self.prime.ui.remove_app(gone)
        self.log(f"WARN:app_manager: {proc.name} crashed (PID {pid})")

    def install_bundle(self, app_id: bytes, files: dict[str, bytes]) -> str | None:
        """LOAD_APP_END: swap the uploaded bundle in and refresh the app; an error message or None.

        Only the shape is checked here; authenticity is checked at every launch."""
        raw = files.get("manifest.json")
        if raw is None:
            return "bundle has no manifest.json"
        try:
            manifest = loads(raw, f"sideloaded-apps/{app_id.hex()}/manifest.json")
        except (ManifestError, UnicodeDecodeError) as e:
            return f"manifest.json is not a valid app manifest ({e})"
        if manifest.app_id_bytes != app_id:
            return f"manifest.json declares app id {manifest.app_id[2:]}, uploaded as {app_id.hex()}"
        if not self.app_manager.may_sideload(app_id):
            return f"app id {app_id.hex()} belongs to a built-in app and cannot be sideloaded"
        self.app_manager.install_sideloaded(app_id, files)
        self.apps[app_id] = App(app_id, manifest.name, app_id.hex(), builtin=False, in_launcher=False)
        self.log(f"INFO:app_manager: refreshed installed app {manifest.name} ({app_id.hex()})")
        return None

    def import_certificate(self, pem: bytes, expected_fingerprint: str) -> str | None:
        """ImportThirdPartyCertificate: an error message, or None once installed."""
        try:
            self.app_manager.import_certificate(expected_fingerprint, pem)
        except CertificateError as e:
            return str(e)
        return None

    # ------------------------------------------------------------ what an app does (the probe's host)
    def _connection(self, pid: int, server: str) -> int:
        app = self._run_apps.get(pid)
        perms = self.app_manager.connection_permissions(app, server) if app else None
        return self.kernel.connect(pid, server, perms or MessagePermissions(self.defects))

    def probe_send(self, pid: int, server: str, message: str | None, mid: int | None, wait: bool,
                   timeout: float) -> dict[str, Any]:
        if mid is None:
            app = self._run_apps.get(pid)
            msg = self.app_manager.resolve(app.manifest, server, message) if app and app.manifest else \
                self.matrix.message(server, message)
            if msg is None:
                return {"result": XousError.InvalidArguments.value}
            mid = msg.id
        try:
            cid = self._connection(pid, server)
            target = self.kernel.send(pid, cid, mid, wait, timeout)
            return {"result": "Ok", "id": mid, **self._serve(pid, target.name, mid, timeout)}
        except KernelError as e:
            return {"result": e.error.value, "id": mid}

    def _serve(self, pid: int, server: str, mid: int, timeout: float) -> dict[str, Any]:
        """What the receiving server does with a delivered message (the parts the suites observe)."""
        msg = self.matrix.by_id(server, mid)
        name = msg.name if msg else None
        server = self.matrix.canonical(server)
        if server == "os/fs" and name and any(name in pair for pair in ACCESS_MESSAGES.values()):
            self.fs.record_access(pid, name)
        if server == "os/security" and name in ("GetAppSeed", "GetSeed"):
            secret = self._secret(pid, name, timeout)
            return {"sha256": hashlib.sha256(secret).hexdigest(), "len": len(secret)}
        return {}

    def _secret(self, pid: int, name: str, timeout: float) -> bytes:
        """Requests made while logged out wait for login (``atsama5d2.rs``)."""
        se = self.prime.se
        deadline = time.monotonic() + timeout
        while not se.logged_in and not self.defects.has("app-seed-served-while-locked"):
            if time.monotonic() > deadline:
                raise KernelError(XousError.Timeout, "waiting for login")
            time.sleep(0.05)
        with self.prime.lock:
            if name == "GetSeed":
                return se.mnemonic().encode()
            app_id = bytes(16) if self.defects.has("app-seed-not-scoped") else self.kernel.process(pid).app_id
            return se.app_seed(app_id)

    def probe_open(self, pid: int, location: str, path: str, mode: str, timeout: float) -> dict[str, Any]:
        try:
            loc = Location[location]
        except KeyError:
            return {"result": XousError.InvalidArguments.value}
        write = mode == "write"
        out: dict[str, Any] = {}
        if loc in ACCESS_MESSAGES:
            out["access"] = self.probe_send(pid, "os/fs", ACCESS_MESSAGES[loc][write], None, True, timeout)["result"]
        opened = self.probe_send(pid, "os/fs", "OpenFileMessage", None, True, timeout)
        if opened["result"] != "Ok":
            return {**out, "result": opened["result"]}
        proc = self.kernel.process(pid)
        try:
            if write:
                self.fs.write(pid, proc.app_id, loc, path, hashlib.sha256(proc.app_id).digest()[:16])
            else:
                self.fs.read(pid, proc.app_id, loc, path)
        except FsError as e:
            return {**out, "result": e.error.value}
        return {**out, "result": "Ok"}

    def probe_read_memory(self, pid: int, target: str, address: int, length: int) -> dict[str, Any]:
        try:
            owner = self.running(bytes.fromhex(target.removeprefix("0x")))
        except ValueError:
            return {"result": XousError.InvalidArguments.value}
        if owner is None:
            return {"result": XousError.ProcessNotFound.value}
        try:
            data = self.kernel.read_memory(pid, owner.pid, address, length)
        except KernelError as e:
            return {"result": e.error.value}
        return {"result": "Ok", "sha256": hashlib.sha256(data).hexdigest(), "len": len(data)}

    def probe_connect(self, pid: int, server: str) -> dict[str, Any]:
        try:
            self._connection(pid, server)
        except KernelError as e:
            return {"result": e.error.value}
        return {"result": "Ok"}

    def probe_draw_prompt(self, pid: int, title: str, body: str, buttons: list[str]) -> dict[str, Any]:
        with self.prime.lock:
            screen = self.prime.app_screens.get(pid)
            if screen is None or not hasattr(screen, "look_alike"):
                return {"result": XousError.ProcessNotFound.value}
            screen.look_alike = (title, body, buttons)
            self.prime.invalidate()
        return {"result": "Ok"}

    def probe_await_locked(self, pid: int, timeout: float) -> dict[str, Any]:
        """Until the lock screen covers the app (gui-server sends it ``Hidden``, keyos.md §1.5)."""
        deadline = time.monotonic() + timeout
        while not self.prime.is_locked():
            if time.monotonic() > deadline:
                return {"result": XousError.Timeout.value}
            time.sleep(0.05)
        return {"result": "Ok"}

    def probe_panic(self, pid: int, message: str) -> None:
        with self.prime.lock:
            self.crash(pid, message)
            self.prime.app_screens.pop(pid, None)
            self.prime.ui.remove_app(pid)

    # ------------------------------------------------------------ kernel debug output
    def kernel_cmd(self, char: str) -> str:
        """The text the kernel debug command prints; unknown characters print nothing."""
        return {"p": self._processes, "t": self._processes_compact, "a": self._app_ids,
                "s": self._servers, "h": _help, "P": self._threads, "i": self._irqs,
                "o": self._ownership, "m": self._page_tables, "k": self._consistency,
                "c": lambda: "L2 cache: enabled\n"}.get(char, lambda: "")()

    def _threads(self) -> str:
        out = ["Printing processes and threads"]
        for p in self._rows():
            out.append(f"PID {p.pid} {p.name}:")
            out += [f"  tid {tid}: {state}" for tid, state in enumerate(p.threads)]
        return "\n".join(out) + "\n"

    def _irqs(self) -> str:
        return "Interrupt handlers:\n  IRQ | Process | Handler | Argument\n"

    def _ownership(self) -> str:
        return "RAM ownership stats:\n" + "".join(f"  {p.pid:3} {p.name:32} {p.ram_kib} K\n" for p in self._rows())

    def _page_tables(self) -> str:
        return "Printing memory page tables\n" + "".join(f"PID {p.pid} {p.name}:\n" for p in self._rows())

    def _consistency(self) -> str:
        head = "Page table and ownership consistency check\n"
        return head + "".join(f"PID {p.pid} {p.name}:\nConsistency check finished\n\n" for p in self._rows())

    def _rows(self):
        return sorted(self.processes.values(), key=lambda p: p.pid)

    def _processes_compact(self) -> str:
        rows = self._rows()
        out = [f"PROC {len(rows)}"]
        out += [f"R {p.pid} {p.ppid} {p.name} {p.threads} 0 {p.ram_kib} {len(p.connections)}" for p in rows]
        out.append(f"SUM 3 {sum(p.ram_kib for p in rows)} {RAM_TOTAL_KIB}")
        return "\n".join(out) + "\n"

    def _processes(self) -> str:
        rule = " --- + ---- + -------------------------------- + ------- + ---- + -------- + -----------"
        out = [" pid | ppid | process                          | state   | CPU  | RAM      | connections", rule]
        out += [f" {p.pid:3} | {p.ppid:4} | {p.name:<32} | {p.threads:<7} | {0:3}% | {p.ram_kib:6} K | "
                f"{len(p.connections):11}" for p in self._rows()]
        used = sum(p.ram_kib for p in self._rows())
        pct = used * 100 // RAM_TOTAL_KIB
        out += [rule, f"CPU Usage:{_bar(3)}3%", f"RAM Usage:{_bar(pct)}{pct}% ({used}K / {RAM_TOTAL_KIB}K)"]
        return "\n".join(out) + "\n"

    def _app_ids(self) -> str:
        head = [" pid | process                          | AppId",
                " --- + -------------------------------- | --------------------------------"]
        rows = [f" {p.pid:3} | {p.name:32} | {p.app_id.hex()}" for p in self._rows()]
        return "\n".join(head + rows + head[::-1]) + "\n"

    def _servers(self) -> str:
        out = ["Servers in use:", " idx | pid | process              | sid",
               " --- + --- + -------------------- + ------------------"]
        for idx, s in enumerate(self.servers.values()):
            out.append(f" {idx:3} | {s.pid:3} | {self.processes[s.pid].name:20} | {''.join(f'{w:08x}' for w in s.sid)}")
        return "\n".join(out) + "\n"


def _bar(pct: int) -> str:
    return "[" + "=" * len(range(0, pct, 3)) + " " * len(range(0, 100 - pct, 3)) + "] "


def _help() -> str:
    return "\n".join([
        "KeyOS Kernel Debug", "key | command", "--- + -----------------------",
        " h  | print this message", " i  | print irq handlers", " m  | print MMU page tables of all processes",
        " p  | print all processes", " t  | print all processes (compact)",
        " P  | print all processes and threads", " s  | print all allocated servers",
        " c  | print L2 cache stats", " a  | print App IDs", " o  | print Memory ownership",
        " k  | check page table and ownership consistency"]) + "\n"
