"""``posgw-sim terminal``: a bank-card payment terminal on a real pseudo-terminal.

It speaks the ECR link of ``docs/protocols/ecr.md`` on the master side of a
pty whose slave the gateway opens as a serial port (``link`` points at it).
Its behaviour is a ``mode``, changeable while it runs:

| mode | behaviour |
|---|---|
| approve | the customer pays after ``pin_seconds``: RESULT approved |
| decline | RESULT declined |
| silent | no answer at all, not even ACK (a dead or unplugged terminal) |
| garbled | noise on the line, and each RESULT first sent with a bad LRC |
| power-loss | ACKs the sale, approves the card, then is dark for ``outage_seconds``; back up, LAST tells |

It keeps books: every sale by the gateway's ``ref``, its status and how often
the card was charged. Like many real terminals it reports the full card
number in RESULT; the gateway must mask it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.ecr import ACK, NAK, BadFrame, Control, EcrDecoder, EcrError, EcrMessage, Frame, MessageType, frame
from simulators.scanner import close_linked_pty, open_linked_pty

MODES = ("approve", "decline", "silent", "garbled", "power-loss")
CARD = {"pan": "6225881234561234", "scheme": "UnionPay"}  # a test card number (full, as terminals send it)


@dataclass
class Sale:
    ref: str
    amount: int
    status: str = "pending"  # pending | approved | declined | cancelled
    auth: str = ""
    charges: int = 0
    refunded: int = 0


@dataclass
class PtyTerminal:
    link: Path
    mode: str = "approve"
    pin_seconds: float = 0.2
    outage_seconds: float = 2.0
    sales: dict[str, Sale] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)  # refund ref -> amount
    last: str | None = None
    _master: int | None = None
    _slave: int | None = None
    _decoder: EcrDecoder = field(default_factory=EcrDecoder)
    _powered: bool = True
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _unacked: bytes | None = None  # the RESULT frame the gateway has not acknowledged yet
    naks_received: int = 0

    def plug(self) -> Path:
        master, self._slave = open_linked_pty(self.link)
        self._master = master
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)
        return self.link

    def unplug(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
        for task in self._tasks:
            task.cancel()
        close_linked_pty(self.link, self._master, self._slave)
        self._master = self._slave = None

    def books(self) -> dict[str, dict[str, Any]]:
        return {
            ref: {"status": s.status, "amount": s.amount, "charges": s.charges, "refunded": s.refunded}
            for ref, s in self.sales.items()
        }

    # -- the line --------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._master is not None and self._powered:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._master, data)

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        if not self._powered or self.mode == "silent":
            return  # nobody home: the bytes fall on the floor
        for event in self._decoder.feed(data):
            if isinstance(event, BadFrame):
                self._write(bytes((NAK,)))
            elif isinstance(event, Control):
                if event is Control.ACK:
                    self._unacked = None
                else:  # NAK: send our frame again
                    self.naks_received += 1
                    if self._unacked is not None:
                        self._write(self._unacked)
            elif isinstance(event, Frame):
                self._write(bytes((ACK,)))
                with contextlib.suppress(EcrError):
                    self._spawn(self._handle(EcrMessage.decode(event.data)))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _answer(self, fields: dict[str, str]) -> None:
        wire = frame(EcrMessage(MessageType.RESULT, fields).encode())
        self._unacked = wire
        if self.mode == "garbled":
            self._write(b"\x00\xffnoise")
            broken = bytearray(wire)
            broken[-1] ^= 0x55  # a bad LRC: the gateway must NAK, and gets the good frame next
            self._write(bytes(broken))
        else:
            self._write(wire)

    # -- the terminal ------------------------------------------------------------

    def _result(self, sale: Sale) -> dict[str, str]:
        fields = {"ref": sale.ref, "status": sale.status}
        if sale.status == "approved":
            fields |= {"auth": sale.auth, **CARD}
        return fields

    async def _handle(self, message: EcrMessage) -> None:
        if message.kind is MessageType.SALE:
            await self._sale(message.fields.get("ref", ""), int(message.fields.get("amount", "0")))
        elif message.kind is MessageType.LAST:
            sale = self.sales.get(self.last or "")
            self._answer(self._result(sale) if sale else {"ref": "", "status": "none"})
        elif message.kind is MessageType.REFUND:
            self._refund(message.fields)
        elif message.kind is MessageType.CANCEL:
            ref = message.fields.get("ref", "")
            sale = self.sales.get(ref)
            if sale is not None and sale.status in ("approved", "pending"):
                sale.status = "cancelled"  # a charge, if any, is voided on the card
            self._answer({"ref": ref, "status": "cancelled"})

    def _refund(self, fields: dict[str, str]) -> None:
        ref, amount = fields.get("ref", ""), int(fields.get("amount", "0"))
        if ref in self.refunds:  # the same refund again: answered, never paid out twice
            self._answer({"ref": ref, "status": "approved"})
            return
        sale = self.sales.get(fields.get("original", ""))
        if self.mode == "decline" or sale is None or sale.status != "approved" or sale.refunded + amount > sale.amount:
            self._answer({"ref": ref, "status": "declined"})
            return
        sale.refunded += amount
        self.refunds[ref] = amount
        self._answer({"ref": ref, "status": "approved"})

    async def _sale(self, ref: str, amount: int) -> None:
        if ref in self.sales:  # the same sale again: answer how it went, never charge twice
            self._answer(self._result(self.sales[ref]))
            return
        sale = Sale(ref, amount)
        self.sales[ref], self.last = sale, ref
        await asyncio.sleep(self.pin_seconds)  # the customer taps the card, enters the PIN
        if self.mode == "decline":
            sale.status = "declined"
        else:
            sale.status, sale.auth, sale.charges = "approved", f"{secrets.randbelow(10**6):06d}", 1
        if self.mode == "power-loss":
            self._powered = False  # approved on the card, then dark before the answer left
            await asyncio.sleep(self.outage_seconds)
            self._powered = True
            self._decoder = EcrDecoder()
            return
        self._answer(self._result(sale))


async def serve(link: Path, mode: str) -> None:
    """Run a terminal until interrupted (``posgw-sim terminal``)."""
    terminal = PtyTerminal(link, mode=mode)
    terminal.plug()
    try:
        await asyncio.Event().wait()
    finally:
        terminal.unplug()
