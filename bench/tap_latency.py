"""Tap → identified member on the WebSocket, with the share spent in PC/SC calls.

Each tap inserts a virtual member card into pcscd's vpcd reader and times
until the ``card`` event with a verified member arrives on the WebSocket. That
includes pcscd noticing the card (it polls the reader driver), the driver's
PC/SC round trips (connect, SELECT, record with GET RESPONSE, INTERNAL
AUTHENTICATE, disconnect: reported by the driver as ``pcsc_ms``), the
gateway's certificate and signature checks, and the WebSocket. The card is
then removed and its removal awaited before the next tap.
"""

from __future__ import annotations

import time
from typing import Any

from bench.environment import BenchRig
from bench.stats import summary
from simulators.vcard import VirtualCard, make_applet


async def run(rig: BenchRig, taps: int = 200) -> dict[str, Any]:
    issuer = rig.issuer_key()
    card = VirtualCard(make_applet("member", issuer, "8600000002"))
    await rig.pos.connect_events()
    totals: list[float] = []
    pcsc: list[float] = []
    for _ in range(taps):
        t0 = time.perf_counter()
        card.insert()
        event = await rig.pos.next_event("card", within=15)
        while event["kind"] != "inserted":
            event = await rig.pos.next_event("card", within=15)
        totals.append(time.perf_counter() - t0)
        assert event["member"]["member_id"] == "M0002", event
        pcsc.append(event["pcsc_ms"] / 1000)
        card.remove()
        removed = await rig.pos.next_event("card", within=15)
        assert removed["kind"] == "removed", removed
    total, in_pcsc = summary(totals), summary(pcsc)
    return {
        "tap_to_member_on_ws": total,
        "pcsc_round_trips": in_pcsc,
        "pcsc_share_p50": in_pcsc["p50_ms"] / total["p50_ms"],
    }
