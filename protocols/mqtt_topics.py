"""Topics and payloads between the ledger and the terminals over MQTT, sans I/O.

MQTT is the fast lane for news; HTTP stays the path for data (signed
rulebooks and member snapshots, sync batches, holds). A terminal that hears
of a newer rulebook or member revision fetches it over HTTP and verifies it
as always, so a forged MQTT message can at most cause a fetch. Layout, per
mall (``docs/protocols/sync.md``)::

    posgw/<mall>/rulebook                      retained  {"version": n}
    posgw/<mall>/members                       retained  {"version": n}
    posgw/<mall>/coupons/revoked               retained  {"version": n}  (the signed list itself: HTTP)
    posgw/<mall>/terminals/<id>/command        -         {"command": "refresh" | "sync"}
    posgw/<mall>/terminals/<id>/status         retained  {"online": bool, ...}; the last will says offline
    posgw/<mall>/alerts                        -         {"kind": "conflict", "txn_id", "terminal_id", "detail"}
"""

from __future__ import annotations

import json
from typing import Any

from protocols.errors import ProtocolError
from protocols.untrusted_json import UntrustedJsonError, read_json

COMMANDS = ("refresh", "sync")
PREFIX = "posgw"


class MqttPayloadError(ProtocolError):
    code = "mqtt-payload"


def rulebook_topic(mall: str) -> str:
    return f"{PREFIX}/{mall}/rulebook"


def members_topic(mall: str) -> str:
    return f"{PREFIX}/{mall}/members"


def revoked_topic(mall: str) -> str:
    return f"{PREFIX}/{mall}/coupons/revoked"


def alerts_topic(mall: str) -> str:
    """For the mall's operators: what the ledger accepted but someone must settle."""
    return f"{PREFIX}/{mall}/alerts"


def command_topic(mall: str, terminal_id: str) -> str:
    return f"{PREFIX}/{mall}/terminals/{terminal_id}/command"


def status_topic(mall: str, terminal_id: str) -> str:
    return f"{PREFIX}/{mall}/terminals/{terminal_id}/status"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def version_notice(data: bytes) -> int:
    """A rulebook or members notice: the version it announces."""
    value = _object(data).get("version")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MqttPayloadError("a version notice needs a whole, non-negative version")
    return value


def command(data: bytes) -> str:
    name = _object(data).get("command")
    if name not in COMMANDS:
        raise MqttPayloadError(f"unknown command {str(name)[:32]!r} (known: {', '.join(COMMANDS)})")
    return str(name)


def _object(data: bytes, limit: int = 4096) -> dict[str, Any]:
    try:
        value = read_json(data, "MQTT payload", max_bytes=limit)
    except UntrustedJsonError as err:
        raise MqttPayloadError(str(err)) from err
    if not isinstance(value, dict):
        raise MqttPayloadError("payload is not a JSON object")
    return value
