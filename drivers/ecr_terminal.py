"""The bank-card payment terminal on a serial ECR link, as a payment provider.

The gateway asks the terminal for a sale; the customer taps or inserts a card
and enters a PIN on the terminal; the terminal answers with a result. Card
data never reaches the gateway beyond what ``docs/protocols/ecr.md`` allows:
the scheme, the authorisation code and a masked PAN (masked again here, so a
terminal that sends a full PAN still never gets one stored).

The link (``protocols/ecr.py``): every frame is acknowledged; a frame not
acknowledged within ``ack_timeout`` or answered with NAK is sent again, at
most 3 times, then the link is down. The micropay calls map onto the
terminal's messages: pay is ``SALE``, query is ``LAST`` (last-transaction
recovery: was our sale the last one, and how did it end?), reverse is
``CANCEL``, and a refund is ``REFUND`` (of part of an earlier sale). A link
that fails mid-sale is an *unknown* outcome, never a decline: the terminal
may have approved the card before it lost power.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

import serial
import serial_asyncio_fast

from drivers.errors import DeviceLostError
from drivers.payment_provider import ProviderClass
from protocols.ecr import (
    ACK,
    MAX_RETRANSMISSIONS,
    NAK,
    BadFrame,
    Control,
    EcrDecoder,
    EcrError,
    EcrMessage,
    Frame,
    MessageType,
    frame,
    masked_pan,
)
from protocols.micropay import Answer, Reply, Step
from protocols.records import MASKED_PAN
from protocols.schema import Fields


class LinkDownError(DeviceLostError):
    """No acknowledgement after every retransmission, or the port went away."""

    code = "ecr-link-down"


@dataclass(frozen=True, slots=True)
class EcrOptions:
    port: str
    baudrate: int = 9600
    currency: str = "CNY"
    ack_timeout: float = 1.0  # seconds for the terminal to acknowledge a frame
    sale_timeout: float = 90.0  # seconds for the customer to tap, insert, enter the PIN
    answer_timeout: float = 5.0  # seconds for an answer to LAST or CANCEL


class _Link(asyncio.Protocol):
    def __init__(self) -> None:
        self.decoder = EcrDecoder()
        self.events: asyncio.Queue[Frame | BadFrame | Control | None] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        for event in self.decoder.feed(data):
            self.events.put_nowait(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.put_nowait(None)


class EcrTerminal:
    """A payment provider for ``wallet = "card"``: one terminal on one serial port."""

    def __init__(self, name: str, options: EcrOptions) -> None:
        self.name = name
        self.options = options
        self._lock = asyncio.Lock()  # one exchange at a time on the line
        self._transport: asyncio.Transport | None = None
        self._link: _Link | None = None

    @classmethod
    def from_options(cls, name: str, options: Fields) -> EcrTerminal:
        return cls(
            name,
            EcrOptions(
                port=options.file_path("port"),
                baudrate=options.integer("baudrate", 9600, minimum=1200, maximum=115200),
                currency=options.text("currency", "CNY", choices=("CNY",)),
                ack_timeout=options.number("ack_timeout", 1.0, minimum=0.05, maximum=10.0),
                sale_timeout=options.number("sale_timeout", 90.0, minimum=5.0, maximum=600.0),
                answer_timeout=options.number("answer_timeout", 5.0, minimum=0.5, maximum=60.0),
            ),
        )

    async def call(self, step: Step, ref: str, code: str, amount: int) -> Reply:
        async with self._lock:
            try:
                link = await self._open()
            except (serial.SerialException, OSError, ValueError):
                # Nothing was sent: on pay the cashier hears at once that the terminal is not there.
                return Reply(Answer.UNREACHABLE if step is Step.PAY else Answer.UNKNOWN)
            request, wait = self._request(step, ref, code, amount)
            try:
                await self._send(link, request.encode())
                result = await self._result(link, None if step is Step.QUERY else ref, wait)
            except LinkDownError:
                self._close()
                return Reply(Answer.UNKNOWN)
            except TimeoutError:
                return Reply(Answer.UNKNOWN)
            return _interpret(step, ref, result)

    def _request(self, step: Step, ref: str, code: str, amount: int) -> tuple[EcrMessage, float]:
        o = self.options
        if step is Step.PAY:
            return EcrMessage(MessageType.SALE, {"amount": str(amount), "currency": o.currency, "ref": ref}), (
                o.sale_timeout
            )
        if step is Step.QUERY:
            return EcrMessage(MessageType.LAST, {}), o.answer_timeout
        if step is Step.REFUND:  # ``code`` is the original sale's reference; the card may be asked for again
            fields = {"amount": str(amount), "currency": o.currency, "ref": ref, "original": code}
            return EcrMessage(MessageType.REFUND, fields), o.sale_timeout
        return EcrMessage(MessageType.CANCEL, {"ref": ref}), o.answer_timeout

    async def _open(self) -> _Link:
        if self._transport is not None and not self._transport.is_closing() and self._link is not None:
            return self._link
        link = _Link()
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            asyncio.get_running_loop(), lambda: link, self.options.port, baudrate=self.options.baudrate
        )
        self._transport, self._link = transport, link
        return link

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        self._transport = self._link = None

    def _write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise LinkDownError("the terminal's port is closed")
        self._transport.write(data)

    async def _send(self, link: _Link, data: bytes) -> None:
        """Send one frame until it is acknowledged (at most 3 retransmissions)."""
        wire = frame(data)
        for _ in range(1 + MAX_RETRANSMISSIONS):
            self._write(wire)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.ack_timeout):
                    while True:
                        event = await link.events.get()
                        if event is None:
                            raise LinkDownError("the terminal's port went away")
                        if event == Control.ACK:
                            return
                        if event == Control.NAK:
                            break  # send it again
                        # A frame before our ACK: a late answer to an earlier request; not ours.
                        if isinstance(event, Frame):
                            self._write(bytes((ACK,)))
        raise LinkDownError(f"no acknowledgement after {MAX_RETRANSMISSIONS} retransmissions")

    async def _result(self, link: _Link, ref: str | None, wait: float) -> EcrMessage:
        """The terminal's RESULT (for ``ref``, or any for LAST), acknowledging every good frame."""
        async with asyncio.timeout(wait):
            while True:
                event = await link.events.get()
                if event is None:
                    raise LinkDownError("the terminal's port went away")
                if isinstance(event, BadFrame):
                    self._write(bytes((NAK,)))  # the terminal sends it again
                    continue
                if not isinstance(event, Frame):
                    continue  # a stray ACK/NAK
                self._write(bytes((ACK,)))
                try:
                    message = EcrMessage.decode(event.data)
                except EcrError:
                    continue  # well framed, not the protocol: wait for the real answer
                if message.kind is MessageType.RESULT and (ref is None or message.fields.get("ref") == ref):
                    return message

    async def close(self) -> None:
        self._close()


def _interpret(step: Step, ref: str, result: EcrMessage) -> Reply:
    status = result.fields.get("status", "")
    if step is Step.QUERY and result.fields.get("ref") != ref:
        return Reply(Answer.NOT_FOUND)  # the terminal's last transaction is another one: ours never ran
    if step is Step.REVERSE:
        return Reply(Answer.SUCCESS if status == "cancelled" else Answer.UNKNOWN)
    if step is Step.REFUND:
        return Reply({"approved": Answer.SUCCESS, "declined": Answer.FAILED}.get(status, Answer.UNKNOWN))
    if status == "approved":
        return Reply(Answer.SUCCESS, _card_detail(result.fields))
    if status in ("declined", "cancelled"):
        return Reply(Answer.FAILED)
    return Reply(Answer.UNKNOWN)


def _card_detail(fields: dict[str, str]) -> dict[str, str]:
    """Scheme, authorisation and the PAN masked to first 6 and last 4, whatever the terminal sent."""
    detail = {}
    if re.fullmatch(r"[A-Za-z0-9 _-]{1,32}", scheme := fields.get("scheme", "")):
        detail["scheme"] = scheme
    if re.fullmatch(r"[A-Za-z0-9]{1,12}", auth := fields.get("auth", "")):
        detail["auth"] = auth
    pan = fields.get("pan", "")
    if re.fullmatch(MASKED_PAN, pan):
        detail["pan"] = pan
    elif re.fullmatch(r"[0-9]{12,19}", pan):
        detail["pan"] = masked_pan(pan)
    return detail


# mypy checks the terminal keeps the payment provider contract (drivers/payment_provider.py).
_CONTRACT: ProviderClass = EcrTerminal
