"""Address schemes of the drivers, as pyserial's URL handlers: an address such as ``bridge:HOST:PORT`` says
how a driver reaches its instrument, and the module that knows the scheme opens it.

A driver asks here by kind (``serial``, ``nfc``) and never imports the module that serves a scheme: the
installed packages name them as entry points of the group ``hil.schemes``, ``KIND.SCHEME = module:opener``
(pyproject.toml). An address with no registered scheme (a tty path, ``rfc2217://``, an nfcpy path) is the
driver's own to open.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

GROUP = "hil.schemes"


def opener(kind: str, address: str) -> Callable[..., Any] | None:
    """What opens ``address`` for a driver of ``kind``, or None when no package registers its scheme."""
    scheme, sep, _ = address.partition(":")
    if not sep:
        return None
    found = entry_points(group=GROUP, name=f"{kind}.{scheme}")
    return next(iter(found)).load() if found else None
