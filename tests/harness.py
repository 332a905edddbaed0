"""Run real ledgers and gateways for tests: processes on loopback, ports picked free."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import GatewayConfig, parse_config
from gateway.daemon import Gateway
from ledger.issuer import load_or_create_key
from ledger.reports import reconcile, totals_by_terminal
from ledger.store import LedgerStore
from protocols.chain import GENESIS, canonical, seal
from protocols.records import TransactionRecord
from protocols.rulebook import Rulebook, open_rulebook
from protocols.tokens import public_key_text
from simulators.pos_client import PosClient
from simulators.processes import Proc, demo_env, free_port, ledger_proc


class LedgerHandle:
    """A real ``posgw-ledger`` process with the demo data."""

    def __init__(
        self, data_dir: Path, tokens: dict[str, str], extra: tuple[str, ...] = (), database: str | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = tokens
        self.data_dir = data_dir
        self.database = database  # PostgreSQL URL, or None for the SQLite file in data_dir
        env = demo_env(tokens["api"], tokens["ledger"], tokens["app"])
        extra = (*self.database_args(), *extra)
        self.proc: Proc = ledger_proc(data_dir, self.port, env, data_dir / "ledger.log", extra)

    def database_args(self) -> tuple[str, ...]:
        return ("--database", self.database) if self.database else ()

    def store_args(self) -> list[str]:
        """Where an operator command finds this ledger's books."""
        return ["--data", str(self.data_dir), *self.database_args()]

    async def open_store(self) -> LedgerStore:
        return await LedgerStore.open(self.data_dir, self.database)

    async def tamper(self, sql: str) -> None:
        """Change the books behind the ledger's back (as a careless DBA would), on either engine."""
        store = await self.open_store()
        try:
            await store.db.write(lambda tx: tx.run(sql))
        finally:
            await store.close()

    @classmethod
    def attach(cls, url: str, tokens: dict[str, str], data_dir: Path) -> LedgerHandle:
        """A handle on a ledger started elsewhere (a Stack's), for its app and terminal calls."""
        handle = cls(data_dir, tokens)
        handle.url = url
        return handle

    async def start(self) -> None:
        self.proc.start()
        await self.proc.wait_healthy()

    def stop(self) -> None:
        self.proc.stop()

    async def books_problems(self) -> list[str]:
        """The double-entry check of this ledger's books (``ledger/postings.py``)."""
        store = await self.open_store()
        try:
            return [str(p) for p in await store.check()]
        finally:
            await store.close()

    async def _app_call(self, method: str, path: str) -> dict[str, object]:
        headers = {"Authorization": f"Bearer {self.tokens['app']}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.request(method, self.url + path) as r:
            r.raise_for_status()
            body: dict[str, object] = await r.json()
            return body

    async def add_identifier(self, member_id: str, identifier: str) -> None:
        headers = {"Authorization": f"Bearer {self.tokens['app']}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.post(f"{self.url}/v1/members/{member_id}/identifiers", json={"identifier": identifier}) as r,
        ):
            r.raise_for_status()

    def issuer_key(self) -> Ed25519PrivateKey:
        """The ledger's own issuer key, as a card personalisation bureau would hold it."""
        return load_or_create_key(self.data_dir / "issuer.key")

    async def member_qr(self, member_id: str) -> str:
        return str((await self._app_call("POST", f"/v1/members/{member_id}/qr"))["token"])

    async def coupon(self, member_id: str, coupon_id: str) -> tuple[str, str]:
        """A ``CP1.`` coupon issued to a member: (token, "<coupon id>:<instance>")."""
        headers = {"Authorization": f"Bearer {self.tokens['app']}"}
        url = f"{self.url}/v1/members/{member_id}/coupons"
        async with aiohttp.ClientSession(headers=headers) as http, http.post(url, json={"coupon_id": coupon_id}) as r:
            r.raise_for_status()
            body = await r.json()
            return str(body["token"]), f"{coupon_id}:{body['instance']}"

    async def revoke_coupon(self, key: str) -> None:
        await self._app_call("POST", f"/v1/coupons/{key}/revoke")

    async def wallet_code(self, member_id: str) -> str:
        """A ``PW1.`` code from the member app: it identifies the member and pays from their stored value."""
        return str((await self._app_call("POST", f"/v1/members/{member_id}/qr?kind=wallet"))["token"])

    async def wallet(self, member_id: str) -> int:
        balance = (await self._app_call("GET", f"/v1/members/{member_id}"))["wallet"]
        assert isinstance(balance, int)
        return balance

    async def wallet_hold(self, ref: str) -> str:
        """The hold's state, asked as a terminal would."""
        headers = {"Authorization": f"Bearer {self.tokens['ledger']}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.get(f"{self.url}/v1/wallet/holds/{ref}") as r:
            r.raise_for_status()
            return str((await r.json())["state"])

    async def rulebook(self) -> Rulebook:
        """The rulebook as a terminal gets it, its signature checked."""
        headers = {"Authorization": f"Bearer {self.tokens['ledger']}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.get(f"{self.url}/v1/rulebook") as r:
            r.raise_for_status()
            book, _ = open_rulebook(await r.json(), self.issuer_key().public_key())
            return book

    async def wait_rulebook(self, version: int, within: float = 10.0) -> Rulebook:
        """The served rulebook once it is at ``version`` (a running ledger picks a new one up by itself)."""
        deadline = asyncio.get_running_loop().time() + within
        while (book := await self.rulebook()).version < version:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the ledger still serves rulebook version {book.version}")
            await asyncio.sleep(0.1)
        return book

    async def account(self, member_id: str) -> dict[str, object]:
        """The member's balances as the member app sees them."""
        return await self._app_call("GET", f"/v1/members/{member_id}")

    async def points(self, member_id: str) -> int:
        points = (await self._app_call("GET", f"/v1/members/{member_id}"))["points"]
        assert isinstance(points, int)
        return points


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    """Wait for ``check`` to hold (polled every 50 ms); TimeoutError after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def ledger_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """An operator's ``posgw-ledger`` command, run as a process."""
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def gateway_config(
    state_dir: Path,
    ledger_url: str,
    tokens: dict[str, str],
    scanner: Path | None = None,
    card_reader: bool = False,
    terminal_id: str = "T-TEST-01",
    payments: dict[str, object] | None = None,
    mqtt: dict[str, object] | None = None,
    max_body_bytes: int = 4096,
    **ledger: object,
) -> GatewayConfig:
    devices: list[dict[str, object]] = []
    if scanner is not None:
        devices.append({"name": "scanner", "driver": "serial-scanner", "options": {"port": str(scanner), "aim": True}})
    if card_reader:
        devices.append(
            {"name": "cards", "driver": "pcsc", "options": {"readers": ["Virtual PCD"], "wait_timeout": 0.5}}
        )
    data = {
        "state_dir": str(state_dir),
        "terminal": {"id": terminal_id, "store_id": "S-1", "merchant_id": "M-BAKERY"},
        "api": {"port": 0, "max_body_bytes": max_body_bytes},
        "ledger": {"url": ledger_url, "timeout": 1.0, "sync_interval": 0.2, **ledger},
        "logging": {"level": "warning"},
        "devices": devices,
        "payments": payments or {},
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    env = {"POSGW_API_TOKEN": tokens["api"], "POSGW_LEDGER_TOKEN": tokens["ledger"]}
    return parse_config(data, "test config", env=env)


@asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[tuple[Gateway, PosClient]]:
    """An in-process gateway on a free port, and a POS client for it."""
    gw = Gateway(config)
    task = asyncio.create_task(gw.run(), name="gateway-under-test")
    while gw.port is None:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    pos = PosClient(f"http://127.0.0.1:{gw.port}", config.api.token)
    try:
        yield gw, pos
    finally:
        await pos.close()
        gw.request_stop()
        await asyncio.wait_for(task, 20)


def acquirer_payments(
    url: str,
    deadline: float = 5.0,
    wallets: tuple[str, ...] = ("wechat", "alipay"),
    terminal: Path | None = None,
) -> dict[str, object]:
    """A ``[payments]`` table sending both wallets to one acquirer simulator (and cards to a terminal on a pty)."""
    providers: list[dict[str, object]] = [
        {"wallet": w, "provider": "micropay-http", "options": {"url": url, "timeout": 1.0}} for w in wallets
    ]
    if terminal is not None:
        providers.append(
            {"wallet": "card", "provider": "ecr-serial", "options": {"port": str(terminal), "ack_timeout": 0.2}}
        )
    return {"deadline": deadline, "providers": providers, "refund_retry": 0.05}


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Files under ``root`` whose bytes contain ``needle`` (for "never stored" checks)."""
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


SIGNING_KEY = Ed25519PrivateKey.generate()


def sealed(records: list[TransactionRecord], key: Ed25519PrivateKey = SIGNING_KEY) -> list[TransactionRecord]:
    """Records numbered from 1 and sealed onto a chain as a terminal's journal does."""
    out, prev = [], GENESIS
    for i, r in enumerate(records, 1):
        r = dataclasses.replace(r, seq=i)
        digest, signature = seal(prev, canonical(r.to_wire()), key)
        out.append(dataclasses.replace(r, prev_hash=prev.hex(), hash=digest.hex(), signature=signature.hex()))
        prev = digest
    return out


async def register_key(ledger: LedgerHandle, terminal_id: str, key: Ed25519PrivateKey = SIGNING_KEY) -> None:
    headers = {"Authorization": f"Bearer {ledger.tokens['ledger']}"}
    body = {"public_key": public_key_text(key.public_key())}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.put(f"{ledger.url}/v1/terminals/{terminal_id}/key", json=body) as r,
    ):
        r.raise_for_status()


async def post_batch(ledger: LedgerHandle, body: object, token: str | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token or ledger.tokens['ledger']}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.post(f"{ledger.url}/v1/sync/batch", json=body) as r:
        return r.status, await r.json(content_type=None)


def schemathesis_argv(openapi_url: str, token: str) -> list[str]:
    """A deterministic schemathesis run against a live service, every check but one.

    Not "schema-valid means accepted": a valid request may still be refused by
    the business (a member code whose signature is not the ledger's, a basket
    that does not exist, a short tender), which schemathesis cannot know.
    """
    return [
        sys.executable, "-m", "schemathesis.cli", "run", openapi_url,
        "-H", f"Authorization: Bearer {token}",
        "--max-examples", "25", "--seed", "20261124", "--request-timeout", "10",
        "--phases", "examples,coverage,fuzzing",
        "--exclude-checks", "positive_data_acceptance",
    ]  # fmt: skip


@asynccontextmanager
async def paying_gateway(
    tmp_path: Path, ledger: LedgerHandle, tokens: dict[str, str], url: str
) -> AsyncIterator[PosClient]:
    """An in-process gateway sending both wallets to the acquirer simulator at ``url``."""
    async with running_gateway(gateway_config(tmp_path, ledger.url, tokens, payments=acquirer_payments(url))) as (
        _gw,
        pos,
    ):
        yield pos


async def fleet_differences(ledger: LedgerHandle, made: list[TransactionRecord]) -> list[str]:
    """What the ledger holds against what a fleet made today, per terminal, to the fen (empty: they agree)."""
    today = datetime.now(UTC).date().isoformat()
    store = await ledger.open_store()
    try:
        held = totals_by_terminal(await store.records_of_day(today), today)
    finally:
        await store.close()
    mine = totals_by_terminal((r.to_wire() for r in made), today)
    return [f"{d.terminal_id} {d.what}" for d in reconcile(mine, {t: held[t] for t in mine})]
