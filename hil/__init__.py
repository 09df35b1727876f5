"""prime-hil: hardware-in-the-loop harness for Passport Prime (KeyOS)."""

__version__ = "0.1.0"
