"""The probe app, harness side (contract: ``docs/probe.md``): build a bundle, sideload it, read its records.

The suites drive the KeyOS kernel of a unit through the probe: the plan says what to try, the probe
reports each outcome as the OS returned it in ``PROBE {json}`` log records. A record that never
comes (link lost, log ring overrun, probe hung) is an infrastructure fault, never a verdict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import coincurve
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hil.errors import InfrastructureError
from hil.flash import cosign2
from hil.flash.manifest import Manifest, sign_manifest
from hil.link.client import DeviceError, PrimeClient
from hil.link.protocol import LaunchStatus
from hil.machine import scaled

PREFIX = "PROBE "
PLAN_PATH = "resources/probe-plan.json"
MAX_STEPS = 256
LOG_RING_BYTES = 16 * 1024  # keyos.md §5.1: the log server's ring, oldest records overwritten first
MAX_RECORD_BYTES = 2048  # margin for the longest record the ring may have dropped
_DENY = re.compile(r"\[!\] Denying message send from (\d+) to (.+)@(\d+), msgid=(\d+)(.*)")
_PANIC = re.compile(r"\[LOG\] PANIC in PID (\d+): (.*)")


class ProbeBroken(InfrastructureError):
    """The probe's records did not arrive as the contract says (no verdict on the device)."""


class ProbePanicked(AssertionError):
    """The probe's process panicked while the plan ran: what the device did to it is a device failure."""


def probe_app_id(label: str) -> str:
    """A stable app id per test label, so grants of one test never leak into another."""
    return "0x" + hashlib.sha256(b"keyos-probe:" + label.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Publisher:
    """The lab's third-party publisher identity: a secp256k1 key and its X.509 code-signing cert."""

    secret: bytes
    pem: bytes

    @property
    def pubkey(self) -> bytes:
        return coincurve.PrivateKey(self.secret).public_key.format(compressed=True)

    @property
    def fingerprint(self) -> str:
        """sha256 of the compressed public key the certificate carries (INSTALL_CERTIFICATE's fingerprint)."""
        key = x509.load_pem_x509_certificate(self.pem).public_key()
        return hashlib.sha256(key.public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.CompressedPoint)).hexdigest()

    @classmethod
    def create(cls, now: int, valid_from: int = -86400, valid_for: int = 365 * 86400, name: str = "prime-hil lab", *,
               ca: bool = False, usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING,
               curve: ec.EllipticCurve | None = None) -> Publisher:
        """A cert valid from ``now + valid_from`` for ``valid_for`` seconds (device time); ``ca``, ``usage`` and
        ``curve`` make one outside the publisher profile KeyOS imports (a CA, an extended key usage other than
        codeSigning, a key on another curve than secp256k1: such a publisher cannot sign a probe)."""
        key = ec.generate_private_key(curve or ec.SECP256K1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start = dt.datetime.fromtimestamp(now + valid_from, dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start)
                .not_valid_after(start + dt.timedelta(seconds=valid_for))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(key, hashes.SHA256()))
        secret = key.private_numbers().private_value.to_bytes(32, "big")
        return cls(secret, cert.public_bytes(serialization.Encoding.PEM))


def bundle(elf: bytes, manifest: Manifest, steps: list[dict[str, Any]], publisher: Publisher, *,
           timestamp: int, version: str = "1.0.0") -> dict[str, bytes]:
    """``app.elf`` and ``manifest.json`` (listing the ELF's hash), both developer-signed with cosign2 as
    KeyOS's builder signs them (xtask ``builder.rs``), and the plan."""
    if len(steps) > MAX_STEPS:
        raise ValueError(f"a probe plan has at most {MAX_STEPS} steps, got {len(steps)}")
    signed_elf = cosign2.sign(elf, coincurve.PrivateKey(publisher.secret), version=version, timestamp=timestamp,
                              developer=True)
    manifest.file_hashes = {**manifest.file_hashes, "app.elf": hashlib.sha256(signed_elf).hexdigest()}
    return {"app.elf": signed_elf,
            "manifest.json": sign_manifest(manifest, publisher.secret, version=version, timestamp=timestamp),
            PLAN_PATH: json.dumps({"probe": 1, "steps": steps}, indent=1).encode()}


@dataclass
class Deny:
    pid: int
    sid: str
    server_pid: int
    msgid: int
    suffix: str


@dataclass
class ProbeRun:
    """What one launched probe reported, read as it arrives; ``plan`` is what it was given to run."""

    client: PrimeClient
    app_id: str
    pid: int
    plan: list[dict[str, Any]]
    steps: int | None = None
    error: str | None = None
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    ended: bool = False
    panic: str | None = None
    denies: list[Deny] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # every log record seen while this run was read
    logged: int = 0  # ring bytes of those records: the evidence that the ring did not overrun

    def _broken(self, what: str) -> ProbeBroken:
        return ProbeBroken(f"{self.client.device}: probe {self.app_id} (PID {self.pid}): {what}")

    def _take(self, line: str) -> None:
        self.lines.append(line)
        self.logged += len(line.encode()) + 1
        if m := _DENY.fullmatch(line):
            self.denies.append(Deny(int(m[1]), m[2], int(m[3]), int(m[4]), m[5]))
        elif (m := _PANIC.fullmatch(line)) and int(m[1]) == self.pid:
            self.panic = m[2]
        elif line.startswith(PREFIX):
            try:
                rec = json.loads(line[len(PREFIX):])
            except json.JSONDecodeError:
                raise ProbeBroken(f"{self.client.device}: probe record is not JSON: {line[:120]!r}") from None
            if not isinstance(rec, dict) or rec.get("app") != self.app_id or rec.get("pid") != self.pid:
                return
            step = rec.get("step")
            if step == "start":
                self.steps, self.error = rec.get("steps"), rec.get("error")
                if self.error is None and self.steps != len(self.plan):
                    raise self._broken(f"start record says {self.steps!r} steps, the plan has {len(self.plan)}")
            elif step == "end":
                self.ended = True
            elif isinstance(step, int):
                if not 0 <= step < len(self.plan) or rec.get("op") != self.plan[step]["op"]:
                    raise self._broken(f"record for a step the plan does not have: {line[:160]!r}")
                self.records[step] = rec

    def pump(self, timeout: float) -> None:
        """Read log records for up to ``timeout`` seconds of silence."""
        for line in self.client.logs(timeout):
            self._take(line)

    def wait(self, done, timeout: float, what: str) -> None:
        """Pump until ``done()``, ``timeout`` idle-host seconds (scaled with the load: a loaded host runs the probe
        late, not wrongly); a panic of the probe first is the device's doing (a failure)."""
        deadline = time.monotonic() + scaled(timeout)
        while not done():
            if self.panic is not None:
                raise ProbePanicked(f"{self.client.device}: probe {self.app_id} (PID {self.pid}) panicked before "
                                    f"{what}: {self.panic} (records so far: {sorted(self.records)})")
            if time.monotonic() > deadline:
                raise self._broken(f"{what} did not arrive within {timeout:g} s (records so far: {sorted(self.records)})")
            self.pump(0.1)

    def step(self, i: int, timeout: float = 30.0) -> dict[str, Any]:
        self.wait(lambda: i in self.records or self.error is not None, timeout, f"step {i}")
        if self.error is not None:
            raise self._broken(f"the probe rejected its plan: {self.error}")
        return self.records[i]

    def finish(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """One record per plan step, or broken: only a complete, un-overrun run is evidence."""
        self.wait(lambda: self.ended, timeout, "the end record")
        if self.error is not None:
            raise self._broken(f"the probe rejected its plan: {self.error}")
        if self.steps is None:
            raise self._broken("the end record arrived without a start record (log ring overrun?)")
        missing = [i for i in range(len(self.plan)) if i not in self.records]
        if missing:
            raise self._broken(f"records of steps {missing[:20]} never arrived (log ring overrun?)")
        self.check_no_overrun()
        return [self.records[i] for i in range(len(self.plan))]

    def check_no_overrun(self) -> None:
        """The ring drops records only once it holds more than ``LOG_RING_BYTES`` newer ones, all of
        which the host then reads: so fewer bytes read than that proves nothing was dropped."""
        if self.logged > LOG_RING_BYTES - MAX_RECORD_BYTES:
            raise self._broken(f"{self.logged} bytes of log records during the run: the "
                               f"{LOG_RING_BYTES // 1024} KiB log ring may have dropped some; use a shorter plan")

    def deny_for(self, msgid: int, server_pid: int | None = None) -> list[Deny]:
        return [d for d in self.denies if d.pid == self.pid and d.msgid == msgid
                and (server_pid is None or d.server_pid == server_pid)]


class Probe:
    """Sideloads and launches probe bundles on one connected Prime."""

    def __init__(self, client: PrimeClient, elf: bytes, publisher: Publisher):
        self.client = client
        self.elf = elf
        self.publisher = publisher
        self.launched: list[int] = []
        self.plans: dict[str, list[dict[str, Any]]] = {}  # app id -> the plan its installed bundle carries
        self.runs: list[ProbeRun] = []  # every launch, its report and log lines (the check's evidence)

    def install(self, manifest: Manifest, steps: list[dict[str, Any]], timestamp: int | None = None) -> dict[str, bytes]:
        files = bundle(self.elf, manifest, steps, self.publisher, timestamp=timestamp or self.client.system_time())
        self.client.sideload(manifest.app_id, files)
        self.plans[manifest.app_id] = list(steps)
        return files

    def launch(self, app_id: str) -> ProbeRun:
        drain(self.client)
        result = self.client.launch_app(app_id)
        if result.status is not LaunchStatus.LAUNCHED:
            raise ProbeBroken(f"{self.client.device}: probe {app_id} did not launch: {result.status.name}")
        self.launched.append(result.pid)
        self.runs.append(ProbeRun(self.client, app_id, result.pid, self.plans[app_id]))
        return self.runs[-1]

    def close(self, run: ProbeRun) -> None:
        """Close a probe that is still running (its prompts go with it)."""
        if run.pid in self.launched:
            self.launched.remove(run.pid)
            try:
                self.client.close_app(run.pid)
            except DeviceError:
                pass  # it already exited (its plan ended in a panic, or it was closed)

    def close_all(self) -> None:
        for pid in self.launched:
            try:
                self.client.close_app(pid)
            except DeviceError:
                pass
        self.launched.clear()

    def run(self, manifest: Manifest, steps: list[dict[str, Any]]) -> ProbeRun:
        self.install(manifest, steps)
        return self.launch(manifest.app_id)


_PROCESS_ROW = re.compile(r"^\w+ (\d+) \d+ (\S+)", re.MULTILINE)


def processes(client: PrimeClient) -> dict[int, str]:
    """PID -> process name from GET_PROCESS_LIST (the kernel's compact 't' list, ``R pid ppid name ...``
    rows), which production builds answer too, unlike KERNEL_CMD."""
    return {int(m[1]): m[2] for m in _PROCESS_ROW.finditer(client.process_list())}


def running(client: PrimeClient, name: str) -> set[int]:
    """PIDs of the processes called ``name``."""
    return {pid for pid, proc in processes(client).items() if proc == name}


def drain(client: PrimeClient) -> list[str]:
    """Log records already queued, so a run reads only what happens after it starts."""
    return list(client.logs(0.05))


# ------------------------------------------------------------------------------------- plan steps


def send(server: str, message: str | None = None, *, id: int | None = None, wait: bool = True,
         timeout_s: float | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "send", "server": server, "wait": wait}
    step.update({"message": message} if message is not None else {"id": id})
    if timeout_s is not None:
        step["timeout_s"] = timeout_s
    return step


def open_file(location: str, path: str, mode: str, timeout_s: float | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "open", "location": location, "path": path, "mode": mode}
    if timeout_s is not None:
        step["timeout_s"] = timeout_s
    return step


def read_memory(target: str, address: int, length: int) -> dict[str, Any]:
    return {"op": "read_memory", "target": target, "address": address, "length": length}


def connect(server: str) -> dict[str, Any]:
    return {"op": "connect", "server": server}


def draw_prompt(title: str, body: str, buttons: Iterable[str]) -> dict[str, Any]:
    return {"op": "draw_prompt", "title": title, "body": body, "buttons": list(buttons)}


def await_locked(timeout_s: float | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "await_locked"}
    if timeout_s is not None:
        step["timeout_s"] = timeout_s
    return step


def panic(message: str) -> dict[str, Any]:
    return {"op": "panic", "message": message}
