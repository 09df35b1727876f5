"""The emulated firmware build: what an emulated ``app.bin`` (inside a cosign2 image) says it is.

Its payload is JSON: ``{"keyos": "emulated", "version", "flavour", "defects": [...]}``.  The flavour
decides what the usb-debug interface allows; defects are seeded bugs the suites must catch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

FLAVOURS = ("production", "development")
DEFAULT_FLAVOUR = "development"  # of an emulator started without one: takes debug-link input while locked


class BuildError(ValueError):
    """An emulated app.bin payload that is not a valid build description."""


@dataclass(frozen=True)
class Build:
    version: str = "1.0.0"
    flavour: str = "production"
    defects: tuple[str, ...] = ()

    def __post_init__(self):
        if self.flavour not in FLAVOURS:
            raise BuildError(f"build flavour {self.flavour!r} is not one of {', '.join(FLAVOURS)}")
        if not self.version or not isinstance(self.version, str):
            raise BuildError("build version must be a non-empty string such as '1.0.0'")

    @property
    def production(self) -> bool:
        return self.flavour == "production"

    def payload(self) -> bytes:
        return json.dumps({"keyos": "emulated", "version": self.version, "flavour": self.flavour,
                           "defects": list(self.defects)}, sort_keys=True).encode()

    @classmethod
    def from_payload(cls, data: bytes) -> Build:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BuildError(f"emulated app.bin is not JSON ({e}); build it with hil.emulator.build.Build.payload()") from None
        if not isinstance(doc, dict) or doc.get("keyos") != "emulated":
            raise BuildError('emulated app.bin must be a JSON object with "keyos": "emulated"')
        defects = doc.get("defects", [])
        if not isinstance(defects, list) or not all(isinstance(d, str) for d in defects):
            raise BuildError('emulated app.bin "defects" must be a list of strings')
        return cls(version=doc.get("version", ""), flavour=doc.get("flavour", ""), defects=tuple(defects))
