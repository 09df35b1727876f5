"""A bench instrument behind one pyserial port: the stylus robot and the power-button relay.

Opening one is opening the port by URL (a tty, ``rfc2217://``, ``socket://``, or an address scheme of
``hil.schemes`` such as ``bridge:HOST:PORT`` for one on a bench host) and bringing the
instrument to a known state. Either failing is the station's fault (an
:class:`~hil.errors.InfrastructureError` naming the instrument and its URL), and a port whose
instrument did not come up is closed, never left open.
"""

from __future__ import annotations

import serial

from hil import schemes
from hil.errors import InfrastructureError


class SerialInstrument:
    """Base of a serial instrument; a subclass sets the class attributes and :meth:`bring_up`."""

    what: str  # names the instrument in errors
    error: type[InfrastructureError]
    baudrate: int
    read_timeout: float  # pyserial's per-read timeout; the instrument bounds whole answers itself
    port: serial.SerialBase

    @classmethod
    def open(cls, url: str, *args, **kw):
        """Open the port at ``url``, construct the instrument on it (``args``/``kw`` are the
        constructor's after the port) and bring it up."""
        try:
            remote = schemes.opener("serial", url)  # e.g. `bridge:`, a bench's instrument behind its `hil bridge`
            opened = remote or serial.serial_for_url
            port = opened(url, baudrate=cls.baudrate, timeout=cls.read_timeout)
        except (serial.SerialException, OSError) as e:
            raise cls.error(f"cannot open {cls.what} at {url}: {e}") from None
        instrument = cls(port, *args, **kw)
        try:
            instrument.bring_up()
        except BaseException:
            port.close()
            raise
        return instrument

    def bring_up(self) -> None:
        """Put a freshly opened instrument into its known idle state, or raise ``error``."""
        raise NotImplementedError

    def close(self) -> None:
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
