"""Lockdown of the debug interface (keyos.md §5.1): a production build refuses REBOOT_SAMBA, KERNEL_CMD and
SET_SYSTEM_TIME; the interface exists only with Developer Mode; and KeyOS has no network stack."""

from __future__ import annotations

import re

import pytest

from hil import probe as P
from hil.link.client import CommandRefused, DeviceError
from security_helpers import manifest_for

pytestmark = [pytest.mark.security, pytest.mark.lockdown]

NETWORK_SERVERS = ("os/net", "os/network", "os/tcp", "os/udp", "os/dns", "os/wifi", "os/ethernet", "os/http")


@pytest.mark.production_only
def test_production_refuses_kernel_commands(prime):
    for char in "tpsam":
        with pytest.raises(DeviceError):
            prime.kernel_cmd(char)


@pytest.mark.production_only
def test_production_refuses_setting_the_clock(prime):
    now = prime.system_time()
    with pytest.raises(CommandRefused):  # Err by the allow-list (Locked while locked also refuses)
        prime.set_system_time(now + 86400 * 400)
    assert abs(prime.system_time() - now) < 60, "the refused SET_SYSTEM_TIME still moved the clock"


@pytest.mark.production_only
def test_production_refuses_reboot_to_samba(prime):
    with pytest.raises(DeviceError):
        prime.reboot_to_samba()
    assert prime.version()  # still KeyOS on the other end


def test_debug_interface_present_only_with_developer_mode(prime):
    """The interface answering at all means Developer Mode is on (production omits it otherwise)."""
    assert prime.developer_mode() is True


def test_no_network_server(probe, probe_id, templates):
    run = probe.run(manifest_for(probe_id(), "Net", {}, templates), [P.connect(s) for s in NETWORK_SERVERS])
    records = run.finish()
    assert [r["result"] for r in records] == ["ServerNotFound"] * len(NETWORK_SERVERS), records


@pytest.mark.development_only
def test_no_network_server_in_the_kernel_table(prime):
    servers = prime.kernel_cmd("s")
    assert "Servers in use" in servers or re.search(r"\bidx\b", servers), f"unexpected 's' output: {servers[:200]!r}"
    names = " ".join(prime.kernel_cmd("t").split())
    assert not re.search(r"\b(net|network|tcp|udp|dns|wifi|http)\b", names), f"a network process runs: {names}"
