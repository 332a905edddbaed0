"""A thin, typed, blocking wrapper over pyscard's PC/SC calls.

Everything here blocks and must run on the card reader's own thread, never on
the event loop. PC/SC result codes become typed errors: the service going
away is :class:`PcscServiceLostError`; a card pulled mid-exchange is
:class:`CardRemovedError`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from smartcard import scard

from drivers.errors import DeviceLostError, DeviceUnavailableError
from protocols.errors import RetryableError

PNP_READER = "\\\\?PnP?\\Notification"
SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_INVALID_HANDLE,
}
CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_E_READER_UNAVAILABLE,
}
STATE_PRESENT = scard.SCARD_STATE_PRESENT
STATE_CHANGED = scard.SCARD_STATE_CHANGED
STATE_UNAWARE = scard.SCARD_STATE_UNAWARE


class PcscServiceLostError(DeviceLostError):
    code = "pcsc-service-lost"


class CardRemovedError(RetryableError):
    code = "card-removed"


def _hex(hr: int) -> str:
    return f"0x{hr & 0xFFFFFFFF:08X}"


def _message(hr: int) -> str:
    try:
        return f"{scard.SCardGetErrorMessage(hr).strip()} ({_hex(hr)})"
    except (SystemError, TypeError):
        return _hex(hr)


def _check(hr: int, what: str) -> None:
    if hr == scard.SCARD_S_SUCCESS:
        return
    if hr in SERVICE_GONE:
        raise PcscServiceLostError(f"PC/SC service lost during {what}: {_message(hr)}")
    if hr in CARD_GONE:
        raise CardRemovedError(f"card was removed during {what}; tap again")
    raise DeviceLostError(f"PC/SC {what} failed: {_message(hr)}")


@dataclass(frozen=True, slots=True)
class ReaderState:
    reader: str
    state: int
    atr: bytes


class PcscContext:
    """One PC/SC context; every method blocks."""

    def __init__(self) -> None:
        try:
            hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        except SystemError as err:
            raise DeviceUnavailableError(f"PC/SC not available: {err}") from err
        if hr != scard.SCARD_S_SUCCESS:
            raise DeviceUnavailableError(f"cannot reach pcscd: {_message(hr)}")
        self._ctx: Any = ctx

    def release(self) -> None:
        with contextlib.suppress(SystemError):  # the service may already be gone
            scard.SCardReleaseContext(self._ctx)

    def cancel(self) -> None:
        """Wake a blocked :meth:`wait`; safe to call from another thread."""
        with contextlib.suppress(SystemError):
            scard.SCardCancel(self._ctx)

    def readers(self) -> list[str]:
        try:
            hr, names = scard.SCardListReaders(self._ctx, [])
        except SystemError as err:
            raise PcscServiceLostError(f"PC/SC list failed: {err}") from err
        if hr in (scard.SCARD_E_NO_READERS_AVAILABLE,):
            return []
        _check(hr, "listing readers")
        return [str(n) for n in names]

    def wait(self, states: list[ReaderState], timeout_ms: int) -> list[ReaderState] | None:
        """Block until a reader's state differs from ``states``; ``None`` on timeout or cancel."""
        query = [(s.reader, s.state & ~STATE_CHANGED) for s in states]
        try:
            hr, result = scard.SCardGetStatusChange(self._ctx, timeout_ms, query)
        except SystemError as err:
            raise PcscServiceLostError(f"PC/SC wait failed: {err}") from err
        if hr in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
            return None
        _check(hr, "waiting for cards")
        return [ReaderState(str(r), int(st), bytes(atr)) for r, st, atr in result]

    def connect(self, reader: str) -> PcscCard:
        try:
            hr, handle, protocol = scard.SCardConnect(
                self._ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            )
        except SystemError as err:
            raise CardRemovedError("card was removed before it could be read; tap again") from err
        _check(hr, "connecting to the card")
        return PcscCard(handle, protocol)


class PcscCard:
    def __init__(self, handle: Any, protocol: int) -> None:
        self._handle = handle
        self._protocol = protocol

    def transmit(self, command: bytes) -> bytes:
        try:
            hr, response = scard.SCardTransmit(self._handle, self._protocol, list(command))
        except SystemError as err:
            raise CardRemovedError("card was removed during the read; tap again") from err
        _check(hr, "the card exchange")
        if not response:
            raise CardRemovedError("card stopped answering during the read; tap again")
        return bytes(response)

    def disconnect(self) -> None:
        with contextlib.suppress(SystemError):  # card or service already gone
            scard.SCardDisconnect(self._handle, scard.SCARD_LEAVE_CARD)
