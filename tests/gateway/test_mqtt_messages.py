"""A message no reader can handle ends its own handling, never the MQTT link (the supervision of #21)."""

from __future__ import annotations

from typing import Any

from gateway.config import MqttConfig
from gateway.ledger_link.mqtt import MqttLink


async def _status() -> dict[str, Any]:
    return {}


def link(refresh: list[str]) -> MqttLink:
    def boom() -> None:
        raise KeyError("a bug in a reader")

    return MqttLink(
        MqttConfig(host="127.0.0.1", mall="m"),
        "T-1",
        _status,
        lambda: (1, 1),
        boom,
        lambda: refresh.append("sync"),
    )


def test_bad_and_failing_messages_are_dropped_one_by_one() -> None:
    heard: list[str] = []
    mqtt = link(heard)
    mqtt._handle("posgw/m/rulebook", b"[" * 1000)  # not the protocol: refused, typed
    mqtt._handle("posgw/m/members", b'{"version": 7}')  # the reader's callback fails: this message only
    mqtt._handle("posgw/m/terminals/T-1/command", b'{"command": "sync"}')  # the next one is handled
    assert heard == ["sync"]
    assert mqtt.state.messages_refused == 2
