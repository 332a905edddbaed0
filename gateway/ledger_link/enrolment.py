"""Enrolling this till with the ledger: ``posgw enroll --ledger URL --code CODE -c FILE``.

The till makes (or loads) its journal key, signs the one-time code with it
to prove it holds the key, and sends code, key and proof to the ledger. The
ledger binds the key to the terminal's next chain epoch and answers with its
own public keys, which are written to ``state_dir/enrolment.json`` (mode
0600) and pinned: from then on the till signs every request with its key and
believes only what those keys signed (``docs/protocols/sync.md``).
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import GatewayConfig
from gateway.errors import LedgerError
from offline_queue.keys import load_or_create_signing_key
from protocols.enrolment import proof_message
from protocols.errors import FinalError
from protocols.schema import Fields, Problems
from protocols.tokens import public_key_from_text, public_key_text
from protocols.untrusted_json import read_json

ENROLMENT_FILE = "enrolment.json"


class EnrolmentError(FinalError):
    """This till is not enrolled, or the ledger refused the enrolment (the code, the key, the terminal)."""

    code = "enrolment"


@dataclass(frozen=True, slots=True)
class Enrolment:
    terminal_id: str
    store_id: str | None
    merchant_id: str | None
    epoch: int
    issuer_keys: dict[str, str]  # kid -> base64url Ed25519 public key: what the till believes
    ledger_url: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal_id,
            "store_id": self.store_id,
            "merchant_id": self.merchant_id,
            "epoch": self.epoch,
            "issuer_keys": self.issuer_keys,
            "ledger_url": self.ledger_url,
        }

    @classmethod
    def from_wire(cls, data: object, source: str) -> Enrolment:
        problems = Problems(source)
        f = Fields(data, problems)
        keys = f.table("issuer_keys")
        enrolment = cls(
            f.text("terminal_id"),
            f.optional_text("store_id"),
            f.optional_text("merchant_id"),
            f.integer("epoch", minimum=1, maximum=10**6),
            {kid: keys.text(kid, pattern=r"[A-Za-z0-9_-]{43}") for kid in keys.names()},
            f.text("ledger_url", ""),
        )
        f.done()
        problems.raise_if_any()
        if not enrolment.issuer_keys:
            raise EnrolmentError(f"{source} names no ledger key to believe")
        return enrolment

    @property
    def pinned_key(self) -> str:
        """The ledger key rulebooks and member lists must be signed by."""
        return next(iter(self.issuer_keys.values()))


def load(config: GatewayConfig) -> Enrolment | None:
    """This till's enrolment, if it has one; a damaged file is an :class:`EnrolmentError` (never ignored)."""
    path = config.state_dir / ENROLMENT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise EnrolmentError(f"cannot read {path}: {err.strerror}") from err
    try:
        enrolment = Enrolment.from_wire(read_json(text, str(path), max_bytes=64 * 1024), str(path))
    except (ValueError, FinalError) as err:
        raise EnrolmentError(f"{path} is damaged ({err}); enrol this till again with a new code") from err
    if enrolment.terminal_id != config.terminal.terminal_id:
        raise EnrolmentError(
            f"{path} enrols {enrolment.terminal_id}, but the config says {config.terminal.terminal_id}"
        )
    return enrolment


def ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Verify the ledger's certificate against ``ca_file`` (else the system's CAs, for https:// URLs)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


async def enroll(config: GatewayConfig, ledger_url: str, code: str, ca_file: str | None = None) -> Enrolment:
    """Enrol this till with the ledger at ``ledger_url`` using an operator's one-time ``code``."""
    if load(config) is not None:
        raise EnrolmentError(
            f"this till is enrolled already ({config.state_dir / ENROLMENT_FILE}); a till that replaces another "
            "starts from an empty state directory"
        )
    key = load_or_create_signing_key(config.key_path)
    public = public_key_text(key.public_key())
    terminal_id = config.terminal.terminal_id
    body = {
        "terminal_id": terminal_id,
        "code": code.strip().upper(),
        "public_key": public,
        "proof": key.sign(proof_message(terminal_id, code, public)).hex(),
    }
    url = ledger_url.rstrip("/") + "/v1/enrol"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.ledger.timeout * 3)) as http,
            http.post(url, json=body, ssl=ssl_context(ca_file) or True) as resp,
        ):
            answer = await resp.json(content_type=None)
            if resp.status != 201:
                detail = answer.get("detail", resp.reason) if isinstance(answer, dict) else resp.reason
                raise EnrolmentError(f"the ledger refused the enrolment ({resp.status}): {detail}")
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise LedgerError(f"could not reach the ledger at {ledger_url}: {err or type(err).__name__}") from err
    enrolment = Enrolment.from_wire({**answer, "ledger_url": ledger_url}, "the ledger's enrolment answer")
    for text in enrolment.issuer_keys.values():
        public_key_from_text(text)
    if enrolment.terminal_id != terminal_id:
        raise EnrolmentError(f"the ledger enrolled {enrolment.terminal_id}, not {terminal_id}")
    _write(config.state_dir / ENROLMENT_FILE, enrolment)
    return enrolment


def _write(path: Path, enrolment: Enrolment) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(enrolment.to_wire(), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
