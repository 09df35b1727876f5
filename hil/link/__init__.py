"""The KeyOS usb-debug link: wire protocol, transports (usb, tcp), device client.

``open_client`` (from :mod:`hil.link.resolve`) is re-exported lazily, so that importing the pure
``hil.link.protocol`` (as the emulator does) does not pull in the harness side.
"""


def __getattr__(name: str):
    if name == "open_client":
        from hil.link.resolve import open_client

        return open_client
    raise AttributeError(f"module 'hil.link' has no attribute {name!r}")
