"""Pieces both OpenAPI documents (the gateway's and the ledger's) are built from: pure data."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
PROBLEM = "application/problem+json"

# RFC 9457 problem documents, as both services answer every error.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
        "retryable": {"type": "boolean"},
    },
}


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}  # the one problem schema each document holds


def errors(*statuses: int) -> dict[str, Any]:
    """Responses for these statuses: each the shared problem document."""
    return {
        str(s): {"description": "a problem document", "content": {PROBLEM: {"schema": PROBLEM_REF}}} for s in statuses
    }


def ok(status: int = 200, description: str = "done", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {JSON: {"schema": schema or {"type": "object"}}}}}
