"""The local API's event streams described as AsyncAPI 3.0, served at ``GET /asyncapi.json``.

Generated from the typed events (``gateway/events.py``) and the status
model (``gateway/api/contract.py``): ``/v1/events`` sends a ``hello`` (the
status) and then one message per event; ``/status/ws`` sends the status
document with the recent errors after events, at most five times a second.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.api import contract as c
from gateway.events import EVENT_TYPES
from protocols.version import VERSION

_REFS, SCHEMAS = msgspec.json.schema_components(
    (*EVENT_TYPES, c.Status, c.StatusPage), ref_template="#/components/schemas/{name}"
)
for _event in EVENT_TYPES:
    # The wire's ``type`` is a class constant and ``at`` is always sent: both are said here.
    _schema = SCHEMAS[_event.__name__]
    _schema["properties"] = {"type": {"const": _event.type}, **_schema["properties"]}
    _schema["required"] = ["type", "at", *(r for r in _schema.get("required", []) if r != "at")]
SCHEMAS["Hello"] = {
    "description": "The first message on /v1/events: the daemon's status, as GET /v1/status answers it.",
    "allOf": [
        {"type": "object", "properties": {"type": {"const": "hello"}}, "required": ["type"]},
        {"$ref": "#/components/schemas/Status"},
    ],
}

_MESSAGES: dict[str, Any] = {
    "Hello": {"name": "hello", "payload": {"$ref": "#/components/schemas/Hello"}},
    **{
        e.__name__: {
            "name": e.type,
            "title": e.__name__,
            "summary": (e.__doc__ or e.__name__).strip().splitlines()[0],
            "payload": {"$ref": f"#/components/schemas/{e.__name__}"},
        }
        for e in EVENT_TYPES
    },
    "StatusPage": {"name": "status", "payload": {"$ref": "#/components/schemas/StatusPage"}},
}
_EVENTS = ["Hello", *(e.__name__ for e in EVENT_TYPES)]

DOCUMENT: dict[str, Any] = {
    "asyncapi": "3.0.0",
    "info": {"title": "posgw local event streams", "version": VERSION, "description": "See docs/api.md."},
    "defaultContentType": "application/json",
    "servers": {
        "till": {
            "host": "127.0.0.1:8765",
            "protocol": "ws",
            "description": "the till's own loopback address ([api] host and port)",
        }
    },
    "channels": {
        "events": {
            "address": "/v1/events",
            "description": "What happens at the till, for the POS application (needs the API token or a ticket).",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in _EVENTS},
        },
        "status": {
            "address": "/status/ws",
            "description": "The status page's live document (no personal data); the API token, or a browser "
            "on the till's own origin (the status page itself).",
            "messages": {"StatusPage": {"$ref": "#/components/messages/StatusPage"}},
        },
    },
    "operations": {
        "receiveEvents": {
            "action": "receive",
            "channel": {"$ref": "#/channels/events"},
            "messages": [{"$ref": f"#/channels/events/messages/{name}"} for name in _EVENTS],
        },
        "receiveStatus": {
            "action": "receive",
            "channel": {"$ref": "#/channels/status"},
            "messages": [{"$ref": "#/channels/status/messages/StatusPage"}],
        },
    },
    "components": {"schemas": SCHEMAS, "messages": _MESSAGES},
}
