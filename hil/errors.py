"""The two kinds of bad news a lab run can bring, kept apart so a lost device is never a failed check."""


class HilError(Exception):
    """Base of every error the harness raises on purpose."""


class InfrastructureError(HilError):
    """The lab could not observe or drive the device (lost link, no frame, unreadable screen,
    timeout). Reported as *broken*, never as a pass and never as a device failure."""


class ConfigError(HilError):
    """A lab file, profile, manifest or image is malformed; the message names the thing and the fix."""
