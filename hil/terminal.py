"""Text from a device, a result file or a bundle is untrusted: before it reaches a terminal, every control
character (ESC of an ANSI sequence, BEL, backspace, carriage return, C1) and every bidirectional override
becomes U+FFFD, so it cannot clear the screen, set the title or disguise what is shown."""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with newlines and tabs kept and every other control character replaced."""
    return _UNPRINTABLE.sub("\N{REPLACEMENT CHARACTER}", text)
