"""The PC/SC driver through the real pcscd, real pyscard and a virtual card on vpcd."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.errors import DeviceUnavailableError
from drivers.events import CardEvent, CardEventKind, DeviceState, DeviceStatus, DriverEvent, ReaderEvent
from drivers.pcsc_reader import PcscCardReader, PcscOptions
from drivers.supervisor import DeviceSupervisor
from protocols.backoff import Backoff
from protocols.member_card import verify_reading
from protocols.tokens import key_id
from simulators.vcard import VirtualCard, make_applet
from tests.pcsc import PORT_0, PORT_1, READER_0, READER_1, start_pcscd, stop_pcscd, vpcd_listeners, vpcd_listening

pytestmark = [pytest.mark.pcsc, pytest.mark.usefixtures("pcscd")]
Published = DriverEvent | DeviceStatus


class Watcher:
    """Runs a supervised card reader and collects what it publishes."""

    def __init__(self) -> None:
        self.seen: list[Published] = []
        self._changed = asyncio.Event()
        device = PcscCardReader("cards", PcscOptions(readers=("Virtual PCD",), wait_timeout=0.5))
        self.supervisor = DeviceSupervisor(device, self._publish, Backoff(base=0.1, cap=0.5, rng=random.Random(0)))
        self.task: asyncio.Task[None] | None = None

    def _publish(self, event: Published) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait(self, pred: Callable[[Published], bool], within: float = 10.0) -> Published:
        async def loop() -> Published:
            while True:
                for event in self.seen:
                    if pred(event):
                        self.seen.remove(event)
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(loop(), within)

    async def card(self, kind: CardEventKind, reader: str = READER_0) -> CardEvent:
        event = await self.wait(lambda e: isinstance(e, CardEvent) and e.kind is kind and e.reader == reader)
        assert isinstance(event, CardEvent)
        return event

    async def state(self, state: DeviceState) -> DeviceStatus:
        event = await self.wait(lambda e: isinstance(e, DeviceStatus) and e.state is state)
        assert isinstance(event, DeviceStatus)
        return event

    async def reader(self, reader: str) -> None:
        await self.wait(lambda e: isinstance(e, ReaderEvent) and e.reader == reader and e.present)

    async def __aenter__(self) -> Watcher:
        self.task = asyncio.create_task(self.supervisor.run())
        await self.reader(READER_0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def insert(
    cards: list[VirtualCard], mode: str, issuer: Ed25519PrivateKey, port: int = PORT_0, number: str = "8600000001"
) -> VirtualCard:
    card = VirtualCard(make_applet(mode, issuer, number), port=port)
    cards.append(card)
    card.insert()
    return card


async def test_genuine_card_is_read_and_verifies(issuer_key: Ed25519PrivateKey, cards: list[VirtualCard]) -> None:
    async with Watcher() as w:
        card = insert(cards, "member", issuer_key, number="8600000042")
        event = await w.card(CardEventKind.INSERTED)
        assert event.reading is not None
        assert event.reading.identifier == "card:8600000042"
        assert event.atr.startswith(b"\x3b")
        assert event.pcsc_seconds > 0
        verify_reading(event.reading, {key_id(issuer_key.public_key()): issuer_key.public_key()}, "20260101")
        card.remove()
        await w.card(CardEventKind.REMOVED)


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        ("uid-only", "uid"),
        ("cloned", "reading"),
        ("expired", "reading"),
        ("garbage", "card-unreadable"),
        ("pulled", "card-removed"),
    ],
)
async def test_every_simulator_mode_gives_a_clear_event(
    mode: str, outcome: str, issuer_key: Ed25519PrivateKey, cards: list[VirtualCard]
) -> None:
    async with Watcher() as w:
        insert(cards, mode, issuer_key)
        event = await w.wait(lambda e: isinstance(e, CardEvent) and e.kind is not CardEventKind.REMOVED)
        assert isinstance(event, CardEvent)
        if outcome == "uid":
            assert event.kind is CardEventKind.INSERTED
            assert event.reading is not None
            assert event.reading.identifier.startswith("uid:04")
        elif outcome == "reading":
            # Read fine; the gateway's verification refuses it (tests/integration/test_card_checkout.py).
            assert event.kind is CardEventKind.INSERTED
            assert event.reading is not None
            assert event.reading.record is not None
        else:
            assert event.kind is CardEventKind.ERROR
            assert event.error_code == outcome
            assert event.error


async def test_two_readers_at_once(issuer_key: Ed25519PrivateKey, cards: list[VirtualCard]) -> None:
    async with Watcher() as w:
        await w.reader(READER_1)
        insert(cards, "member", issuer_key, port=PORT_0, number="8600000100")
        insert(cards, "member", issuer_key, port=PORT_1, number="8600000101")
        first = await w.card(CardEventKind.INSERTED, READER_0)
        second = await w.card(CardEventKind.INSERTED, READER_1)
        assert first.reading is not None
        assert second.reading is not None
        assert (first.reading.identifier, second.reading.identifier) == ("card:8600000100", "card:8600000101")


async def test_reader_filter(issuer_key: Ed25519PrivateKey, cards: list[VirtualCard]) -> None:
    reader = PcscCardReader("cards", PcscOptions(readers=("00 01",), wait_timeout=0.3))
    async with reader:
        events = reader.events()
        first = await asyncio.wait_for(anext(events), 5)
        assert first == ReaderEvent("cards", READER_1, present=True)
        insert(cards, "member", issuer_key, port=PORT_0)  # a card in the filtered-out reader
        insert(cards, "member", issuer_key, port=PORT_1, number="8600000200")
        event = await asyncio.wait_for(anext(events), 10)
        assert isinstance(event, CardEvent)
        assert event.reader == READER_1


async def test_survives_a_pcscd_restart(issuer_key: Ed25519PrivateKey, cards: list[VirtualCard]) -> None:
    async with Watcher() as w:
        try:
            stop_pcscd()
            status = await w.state(DeviceState.RETRYING)
            assert status.error
            await asyncio.sleep(0.5)  # a few failed reopen attempts while pcscd is away
        finally:
            if not vpcd_listening():
                start_pcscd()
        await w.state(DeviceState.IDLE)
        await w.reader(READER_0)
        insert(cards, "member", issuer_key, number="8600000300")
        event = await w.card(CardEventKind.INSERTED)
        assert event.reading is not None
        assert event.reading.identifier == "card:8600000300"


async def test_no_pcscd_is_a_typed_error() -> None:
    try:
        stop_pcscd()
        with pytest.raises(DeviceUnavailableError, match=r"cannot reach pcscd|not available"):
            async with PcscCardReader("cards", PcscOptions()):
                pass
    finally:
        start_pcscd()


def test_the_virtual_readers_listen_on_loopback_only() -> None:
    """vpcd would accept a virtual card from anyone on the network; the tests' pcscd binds it to 127.0.0.1."""
    for port in (PORT_0, PORT_1):
        assert vpcd_listeners(port) == ["0100007F"], port  # 127.0.0.1, and no other address
