"""Errors raised by drivers, under the project's one root."""

from __future__ import annotations

from protocols.errors import FinalError, RetryableError


class DeviceUnavailableError(RetryableError):
    """The device could not be opened (not plugged in, busy, no permission)."""

    code = "device-unavailable"


class DeviceLostError(RetryableError):
    """An open device went away (unplugged, cable pulled, daemon restarted)."""

    code = "device-lost"


class DriverNotFoundError(FinalError):
    """No driver of that name is installed."""

    code = "driver-not-found"


class DriverLoadError(FinalError):
    """A driver is registered but could not be imported or is not a driver."""

    code = "driver-load-failed"


class StatementUnavailableError(RetryableError):
    """A wallet's statement could not be fetched (no bill for the day yet, no network, not believed)."""

    code = "statement-unavailable"
