"""The typed events that drivers emit and the device states they move through."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.member_card import CardReading


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


class CardEventKind(enum.StrEnum):
    INSERTED = "inserted"
    REMOVED = "removed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class CardEvent:
    """A card tapped on (``inserted``, with what was read), taken off, or unreadable.

    ``reading`` holds the card's record and its answer to our challenge; the
    gateway verifies it against the issuer keys before trusting it.
    ``pcsc_seconds`` is the time spent in PC/SC calls for this read.
    """

    device: str
    reader: str
    kind: CardEventKind
    at: float
    atr: bytes = b""
    reading: CardReading | None = None
    error: str | None = None
    error_code: str | None = None
    pcsc_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    """A card reader appeared or went away."""

    device: str
    reader: str
    present: bool


@dataclass(frozen=True, slots=True)
class PrinterEvent:
    """A receipt printer's state changed (or was first read): paper, cover, the cash drawer on its connector."""

    device: str
    paper_out: bool
    cover_open: bool
    drawer_open: bool
    problem: str | None  # what stops it printing, in words; None: ready


DriverEvent = ScanEvent | ScanRejected | CardEvent | ReaderEvent | PrinterEvent
