"""Seeded defects: named, realistic regressions of one security check each.

An emulated build lists the defects it carries (``build.py``: ``"defects": [...]``). Each module
asks ``defects.has(NAME)`` at the one place its check lives, so a defect removes exactly that
check and nothing else. The harness's own tests prove that every defect turns at least one
suite red and that the good build (no defects) stays green.
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> (the check it breaks, the suite expected to catch it, the build flavour it shows on)
CATALOG: dict[str, tuple[str, str, str]] = {
    "kernel-ignores-range-list": (
        "the kernel treats every id >= 64 as permitted on any connection that has a range at all",
        "suites/security/test_permissions.py", "development"),
    "mask-off-by-one": (
        "MessagePermissions.add sets bit id+1 instead of id for ids below 64",
        "suites/security/test_permissions.py", "development"),
    "kernel-skips-server-pid-check": (
        "a connection with an empty mask is treated as the server's own process",
        "suites/security/test_permissions.py", "development"),
    "no-deny-log-line": (
        "the kernel denies an undeclared send silently, without its log line",
        "suites/security/test_permissions.py", "development"),
    "foundation-tier-not-enforced": (
        "foundation-only messages are granted to third-party apps that declare them",
        "suites/security/test_permissions.py", "development"),
    "broker-persists-not-now": (
        "'Not Now' is stored like 'Never Allow' instead of denying for this run only",
        "suites/security/test_permissions.py", "development"),
    "broker-allows-on-timeout": (
        "a prompt dropped unanswered resolves as allowed",
        "suites/security/test_permissions.py", "development"),
    "broker-ignores-persisted-deny": (
        "a stored 'Never Allow' is ignored and the user is asked again",
        "suites/security/test_permissions.py", "development"),
    "grant-per-message-not-subgroup": (
        "grants are stored per message, so approving one message does not cover its subgroup",
        "suites/security/test_permissions.py", "development"),
    "modal-over-lockscreen": (
        "the permission prompt is drawn over the lock screen instead of queued until unlock",
        "suites/security/test_trusted_display.py", "development"),
    "status-band-unprotected": (
        "the compositor lets an app surface draw into gui-server's status band (and its prompt marker)",
        "suites/security/test_trusted_display.py", "development"),
    "fs-skips-airlock-grant": (
        "the fs server opens Airlock files without a recorded GetAirlock…Access grant",
        "suites/security/test_isolation.py", "development"),
    "fs-write-with-read-grant": (
        "a read grant is accepted for writes",
        "suites/security/test_isolation.py", "development"),
    "fs-appdata-not-scoped": (
        "AppData paths resolve to one shared directory instead of one per app",
        "suites/security/test_isolation.py", "development"),
    "kernel-shares-process-memory": (
        "a process can map another process's pages",
        "suites/security/test_isolation.py", "development"),
    "crash-takes-down-system": (
        "a panicking app takes its server connections' peers down with it",
        "suites/security/test_isolation.py", "development"),
    "app-seed-without-prompt": (
        "GetAppSeed is answered without the grant-on-first-use prompt",
        "suites/security/test_secure_element.py", "development"),
    "app-seed-not-scoped": (
        "every app receives the same app seed",
        "suites/security/test_secure_element.py", "development"),
    "production-allows-reboot-samba": (
        "a production build answers REBOOT_SAMBA (the door to reflashing it)",
        "suites/security/test_lockdown.py", "production"),
    "production-answers-kernel-cmd": (
        "a production build answers KERNEL_CMD (process, server and memory tables to anyone on USB)",
        "suites/security/test_lockdown.py", "production"),
    "screenshot-while-locked": (
        "a locked production build answers SCREENSHOT",
        "suites/security/test_trusted_display.py", "production"),
    "network-stack-present": (
        "the build registers a network server apps can connect to",
        "suites/security/test_lockdown.py", "development"),
    "sideload-skips-cert-expiry": (
        "an app signed by an expired publisher certificate launches",
        "suites/security/test_permissions.py", "development"),
    "sideload-accepts-tampered-manifest": (
        "a sideloaded manifest edited after signing launches",
        "suites/security/test_permissions.py", "development"),
    "sideload-shadows-foundation-app": (
        "a sideload may take the app id of a built-in Foundation app",
        "suites/security/test_permissions.py", "development"),
    "bootloader-accepts-partially-trusted": (
        "keyos-boot boots an image only one known signer signed (PartiallyTrusted)",
        "suites/security/test_firmware.py", "development"),
    "bootloader-ignores-anti-rollback": (
        "keyos-boot boots a validly signed image older than the secure element's firmware timestamp",
        "suites/security/test_firmware.py", "development"),
    "bootloader-ignores-chip": (
        "keyos-boot boots a validly signed image made for another chip (magic blef, not PRM1)",
        "suites/security/test_firmware.py", "development"),
}


class UnknownDefect(ValueError):
    pass


@dataclass(frozen=True)
class Defects:
    """The defects a build carries; an unknown name is refused, so a typo never yields a good build."""

    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: list[str] | tuple[str, ...] | frozenset[str] = ()) -> "Defects":
        unknown = set(names) - set(CATALOG)
        if unknown:
            raise UnknownDefect(f"unknown seeded defect(s) {sorted(unknown)}; known: {', '.join(sorted(CATALOG))}")
        return cls(frozenset(names))

    def has(self, name: str) -> bool:
        if name not in CATALOG:
            raise UnknownDefect(f"check asks for unknown defect {name!r}")
        return name in self.names
