"""The typed events that drivers emit and the device states they move through."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DeviceState(enum.StrEnum):
    """UnifiedPOS-style device states, plus ``retrying`` between reopen attempts."""

    CLOSED = "closed"
    OPENING = "opening"
    IDLE = "idle"
    BUSY = "busy"
    ERROR = "error"
    RETRYING = "retrying"


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """One framed code from a scanner; ``at`` is wall-clock Unix seconds."""

    device: str
    data: str
    symbology: str | None
    aim: str | None
    at: float


@dataclass(frozen=True, slots=True)
class ScanRejected:
    """Bytes from a scanner that were not a code (noise, a cut-off frame)."""

    device: str
    reason: str
    length: int
    at: float


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device: str
    state: DeviceState
    error: str | None = None
    retry_in: float | None = None


DriverEvent = ScanEvent | ScanRejected
