"""Options and lanes shared by the regression suites.

A lab picks a lane with ``-m``: ``-m permissions``, ``-m "security and not destructive"``, ...
The security suites drive the kernel of the unit through the probe app (``docs/probe.md``).
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LANES = {
    "security": "the security regression suites (all of suites/security)",
    "permissions": "declarative permissions, the broker prompt, grants, no escalation",
    "isolation": "process memory, storage scoping, unexposed servers, crash containment",
    "secure_element": "app seeds, the master seed, PIN attempts, security words",
    "trusted_display": "system prompts vs look-alikes, nothing over the lock screen",
    "lockdown": "production debug-link lockdown, Developer Mode, no network",
    "fido": "FIDO2/CTAP2 over NFC: user presence, the lock screen, credentials scoped to their RP id",
    "firmware": "unsigned, wrongly signed and rolled-back images are refused by the device",
    "destructive": "erases or bricks the unit under test (seed wipe); run only with --destructive",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil-suites", "prime-hil regression suites")
    group.addoption("--manifests", default=str(ROOT / "fixtures" / "keyos" / "manifests"), metavar="DIR",
                    help="apps (<app>/manifest.json|toml) the permissions suite is generated from")
    group.addoption("--capability-matrix", default=str(ROOT / "fixtures" / "keyos" / "capability_matrix.toml"),
                    metavar="FILE", help="services, messages and their permission policy")
    group.addoption("--permission-templates", default=str(ROOT / "fixtures" / "keyos" / "permission_templates.toml"),
                    metavar="FILE", help="the permission_templates.toml source manifests expand")
    group.addoption("--probe-elf", default=str(ROOT / "firmware" / "emulated" / "keyos-probe.elf"), metavar="FILE",
                    help="the probe app binary of the build under test (docs/probe.md)")
    group.addoption("--samba-applet", default=str(ROOT / "firmware" / "emulated" / "sdmmc-applet.bin"), metavar="FILE",
                    help="the SAM-BA SD/MMC applet the firmware lane writes the eMMC with")
    group.addoption("--firmware-keys", default=None, metavar="SET",
                    help="the key set the units' bootloader trusts: production, test or a cosign2 key set TOML "
                         "(default: the device profile's firmware_keys)")
    group.addoption("--firmware-signers", default=str(ROOT / "firmware" / "keys" / "test-signers.toml"),
                    metavar="FILE", help="signing keys the lab holds (key set TOML with secrets): the firmware "
                                         "lane re-signs images with those of them the units trust")
    group.addoption("--firmware-rollback", default=None, metavar="FILE",
                    help="a validly signed app.bin older than the unit's, for the anti-rollback check "
                         "(default: the unit's own, re-signed older with --firmware-signers)")
    group.addoption("--destructive", action="store_true",
                    help="also run tests that erase the unit (PIN wipe at 10 attempts)")


def pytest_configure(config: pytest.Config) -> None:
    for lane, doc in LANES.items():
        config.addinivalue_line("markers", f"{lane}: {doc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--destructive"):
        return
    skip = pytest.mark.skip(reason="erases the unit; pass --destructive to run it")
    for item in items:
        if "destructive" in item.keywords:
            item.add_marker(skip)
