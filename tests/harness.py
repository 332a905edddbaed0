"""Run real ledgers and gateways for tests: processes on loopback, ports picked free."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import GatewayConfig, parse_config
from gateway.daemon import Gateway
from gateway.ledger_link import enrolment
from ledger import secrets, terminals
from ledger.database import Tx
from ledger.demo_data import DEMO_BENEFITS, DEMO_EXCLUDED, DEMO_TIERS
from ledger.reports import reconcile, totals_by_terminal
from ledger.store import LedgerStore
from protocols.business_day import business_day
from protocols.chain import GENESIS, canonical, seal
from protocols.records import TransactionRecord
from protocols.rulebook import Rulebook, open_rulebook
from protocols.sync import SyncReply, SyncResult, batch_to_wire
from simulators import fleet
from simulators.ledger_session import SignedSession, enrol
from simulators.pos_client import PosClient
from simulators.processes import Proc, demo_env, ledger_proc, stable_port
from simulators.provider_keys import alipay_options, wechatpay_options
from simulators.wallet_sims import Wallets

DEMO_RULES = {
    "version": 1,
    "currency": "CNY",
    "tiers": DEMO_TIERS,
    "excluded_categories": DEMO_EXCLUDED,
    **DEMO_BENEFITS,
}


async def books(path: Path, database: str | None = None) -> LedgerStore:
    """A ledger's books without its process: the demo's rulebook loaded (version 1, as ``draft`` records name),
    no members."""
    store = await LedgerStore.open(path, database)
    await store.rules.add(DEMO_RULES)
    return store


def key_for(terminal_id: str) -> Ed25519PrivateKey:
    """Each test terminal's own journal key (the same for the same name, so records sealed in a test
    and the key enrolled for them agree)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"posgw test {terminal_id}".encode()).digest())


class LedgerHandle:
    """A real ``posgw-ledger`` process with the demo data."""

    _running: ClassVar[dict[str, LedgerHandle]] = {}  # by URL: a gateway under test enrols with its ledger

    def __init__(
        self,
        data_dir: Path,
        tokens: dict[str, str],
        extra: tuple[str, ...] = (),
        database: str | None = None,
        env: dict[str, str] | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self.port = stable_port()  # the tests stop and start it again on this port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.tokens = tokens
        self.data_dir = data_dir
        self.database = database  # PostgreSQL URL, or None for the SQLite file in data_dir
        self.env = {**demo_env(tokens["api"], tokens["operator"], tokens["app"]), **(env or {})}
        if tls is not None:  # (CA, certificate, key): HTTPS, checked against the test's own CA
            extra = (*extra, "--tls-cert", str(tls[1]), "--tls-key", str(tls[2]))
        extra = (*self.database_args(), *extra)
        self.proc: Proc = ledger_proc(data_dir, self.port, self.env, data_dir / "ledger.log", extra)
        if tls is not None:
            self.proc.health_url = self.proc.health_url.replace("http://", "https://")
            self.proc.health_ssl = ssl.create_default_context(cafile=tls[0])
        self.ca_file = None if tls is None else str(tls[0])

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
        LedgerHandle._running[self.url] = self

    def stop(self) -> None:
        self.proc.stop()
        LedgerHandle._running.pop(self.url, None)

    @classmethod
    def at(cls, url: str) -> LedgerHandle | None:
        return cls._running.get(url.rstrip("/"))

    async def codes(self, *ids: str, store: str = "S-1", merchant: str = "M-1") -> dict[str, str]:
        """What ``posgw-ledger terminal add`` prints: a one-time enrolment code per terminal."""
        books = await self.open_store()

        async def add(tx: Tx) -> dict[str, str]:
            """A new terminal's code, or (its name taken by a till of an earlier step) its replacement's."""
            return {
                t: await (
                    terminals.add(tx, t, store, merchant, "test")
                    if await terminals.get(tx, t) is None
                    else terminals.replace(tx, t, "test", store_id=store, merchant_id=merchant)
                )
                for t in ids
            }

        try:
            return await books.db.write(add)
        finally:
            await books.close()

    async def fleet_codes(self, count: int, prefix: str = "T-FLEET") -> dict[str, str]:
        """Codes for a simulated fleet (``posgw-ledger terminal add PREFIX --count N``)."""
        ids = [f"{prefix}-{i:04d}" for i in range(count)]
        return await self.codes(*ids, store=fleet.STORE, merchant=fleet.MERCHANT)

    async def terminal(
        self, terminal_id: str, key: Ed25519PrivateKey | None = None, store: str = "S-1", merchant: str = "M-1"
    ) -> TestTerminal:
        """A terminal enrolled here (with its own key, ``key_for`` unless given), to act as a till does."""
        key = key or key_for(terminal_id)
        (code,) = (await self.codes(terminal_id, store=store, merchant=merchant)).values()
        till = TestTerminal(self.url, terminal_id, key, ca_file=self.ca_file)
        async with till.session() as http:
            status, answer = await enrol(http, self.url, terminal_id, key, code)
        assert status == 201, answer
        till.epoch = int(answer["epoch"])
        return till

    async def enrol_gateway(self, config: GatewayConfig) -> None:
        """Enrol a gateway under test as its installer would (operator's code, then ``posgw enroll``)."""
        term = config.terminal
        (code,) = (await self.codes(term.terminal_id, store=term.store_id, merchant=term.merchant_id)).values()
        await enrolment.enroll(config, self.url, code, config.ledger.ca_file)

    async def books_problems(self) -> list[str]:
        """The double-entry check of this ledger's books (``ledger/postings.py``)."""
        store = await self.open_store()
        try:
            return [str(p) for p in await store.reports.check()]
        finally:
            await store.close()

    async def _app_call(self, method: str, path: str, role: str = "app") -> dict[str, object]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
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
        """The ledger's own issuer key, as a card personalisation bureau would hold it (from its database)."""

        async def read() -> Ed25519PrivateKey:
            store = await self.open_store()
            try:
                key = secrets.secrets_key(self.data_dir, env=self.env)
                return await secrets.issuer_key(store.db, self.data_dir, key)
            finally:
                await store.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # callable from sync and async code alike
            return pool.submit(asyncio.run, read()).result()

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
        await self._app_call("POST", f"/v1/coupons/{key}/revoke", role="operator")

    async def wallet_code(self, member_id: str) -> str:
        """A ``PW1.`` code from the member app: it identifies the member and pays from their stored value."""
        return str((await self._app_call("POST", f"/v1/members/{member_id}/qr?kind=wallet"))["token"])

    async def wallet(self, member_id: str) -> int:
        balance = (await self._app_call("GET", f"/v1/members/{member_id}"))["wallet"]
        assert isinstance(balance, int)
        return balance

    async def wallet_hold(self, ref: str) -> str:
        """The hold's state, as the ledger's books have it."""
        store = await self.open_store()
        try:
            return await store.holds.state(ref)
        finally:
            await store.close()

    async def observer(self) -> TestTerminal:
        """A terminal of the tests' own, enrolled once, to see what terminals are served."""
        if self._observer is None:
            self._observer = await self.terminal("T-OBSERVER")
        return self._observer

    _observer: TestTerminal | None = None

    async def rulebook(self) -> Rulebook:
        """The rulebook as a terminal gets it, its signature checked."""
        status, envelope = await (await self.observer()).call("GET", "/v1/rulebook")
        assert status == 200, envelope
        book, _ = open_rulebook(envelope, self.issuer_key().public_key())
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


def ledger_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """An operator's ``posgw-ledger`` command, run as a process (``stdin``: what the operator types, a PIN;
    ``env``: more of its environment, a secrets key)."""
    argv = [sys.executable, "-m", "ledger.cli", *args]
    environ = {**os.environ, **env} if env else None
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, input=stdin, env=environ)


def add_staff(ledger: LedgerHandle, staff_id: str, pin: str, role: str = "cashier") -> None:
    """``posgw-ledger staff add``, the PIN typed on standard input."""
    done = ledger_cli("staff", "add", staff_id, "--name", f"Staff {staff_id}", "--role", role, *ledger.store_args(),
                      stdin=f"{pin}\n")  # fmt: skip
    assert done.returncode == 0, done.stderr


def gateway_config(
    state_dir: Path,
    ledger_url: str,
    tokens: dict[str, str],
    scanner: Path | None = None,
    card_reader: bool = False,
    terminal_id: str = "T-TEST-01",
    merchant_id: str = "M-BAKERY",
    payments: dict[str, object] | None = None,
    mqtt: dict[str, object] | None = None,
    max_body_bytes: int = 4096,
    api: dict[str, object] | None = None,
    printer: Path | None = None,
    **ledger: object,
) -> GatewayConfig:
    devices: list[dict[str, object]] = []
    if printer is not None:  # a quick poll: the tests watch paper run out
        options = {"port": str(printer), "poll_seconds": 0.2}
        devices.append({"name": "printer", "driver": "escpos-printer", "options": options})
    if scanner is not None:
        devices.append({"name": "scanner", "driver": "serial-scanner", "options": {"port": str(scanner), "aim": True}})
    if card_reader:
        devices.append(
            {"name": "cards", "driver": "pcsc", "options": {"readers": ["Virtual PCD"], "wait_timeout": 0.5}}
        )
    data = {
        "state_dir": str(state_dir),
        "terminal": {"id": terminal_id, "store_id": "S-1", "merchant_id": merchant_id},
        "api": {"port": 0, "max_body_bytes": max_body_bytes, **(api or {})},
        "ledger": {"url": ledger_url, "timeout": 1.0, "sync_interval": 0.2, **ledger},
        "logging": {"level": "warning"},
        "devices": devices,
        "payments": payments or {},
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    env = {"POSGW_API_TOKEN": tokens["api"]}
    return parse_config(data, "test config", env=env)


@asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[tuple[Gateway, PosClient]]:
    """An in-process gateway on a free port (enrolled with its ledger first, if that is a test's), and a POS
    client for it."""
    ledger = LedgerHandle.at(config.ledger.url)
    if ledger is not None and enrolment.load(config) is None:
        await ledger.enrol_gateway(config)
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


# Long enough that a payment the provider takes (a customer typing a password for 3 s, an answer
# lost and found by query) meets two queries after it on a loaded machine, where one request can
# take longer than its 1 s timeout; short enough that the flows meant to reverse end soon.
PAYMENT_DEADLINE = 8.0


def acquirer_payments(
    url: str,
    deadline: float = PAYMENT_DEADLINE,
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


def wallet_payments(
    wallets: Wallets, deadline: float = PAYMENT_DEADLINE, options: dict[str, object] | None = None
) -> dict[str, object]:
    """A ``[payments]`` table with WeChat Pay and Alipay on their published APIs, at the simulators."""
    providers = [
        {"wallet": "wechat", "provider": "wechatpay",
         "options": wechatpay_options(wallets.creds, wallets.wechat_url, timeout=1.0, **(options or {}))},
        {"wallet": "alipay", "provider": "alipay",
         "options": alipay_options(wallets.creds, wallets.alipay_url, timeout=1.0, **(options or {}))},
    ]  # fmt: skip
    return {"deadline": deadline, "providers": providers, "refund_retry": 0.05}


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Files under ``root`` whose bytes contain ``needle`` (for "never stored" checks)."""
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


class TestTerminal:
    """A terminal's signed requests to a ledger (what a till's ``LedgerClient`` sends), answers as they come."""

    __test__ = False  # not a test class, for pytest

    def __init__(
        self, url: str, terminal_id: str, key: Ed25519PrivateKey, epoch: int = 1, ca_file: str | None = None
    ) -> None:
        self.url, self.terminal_id, self.key, self.epoch = url, terminal_id, key, epoch
        self.seq, self.head = 0, GENESIS  # its chain, as its journal would keep it
        self.ca_file = ca_file  # the test CA of an HTTPS ledger

    def session(self) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context) if context else None)

    def seal(self, records: list[TransactionRecord]) -> list[TransactionRecord]:
        """The records as this terminal's journal commits them: its id and epoch, the next seqs, its chain."""
        out = []
        for r in records:
            self.seq += 1
            r = dataclasses.replace(r, terminal_id=self.terminal_id, seq=self.seq, epoch=self.epoch)
            digest, signature = seal(self.head, canonical(r.to_wire()), self.key)
            out.append(dataclasses.replace(r, prev_hash=self.head.hex(), hash=digest.hex(), signature=signature.hex()))
            self.head = digest
        return out

    async def send(self, *records: TransactionRecord) -> list[SyncResult]:
        """Seal and sync records, as the till's outbox does; the ledger's answer for each."""
        status, body = await self.post_batch(self.seal(list(records)))
        assert status == 200, body
        return list(SyncReply.from_wire(body).results)

    async def call(
        self,
        method: str,
        path: str,
        body: object = None,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self.session() as http:
            return await SignedSession(http, self.url, self.terminal_id, self.key).request(
                method, path, body, params=params, raw=raw
            )

    async def post_batch(self, records: list[TransactionRecord]) -> tuple[int, Any]:
        return await self.call("POST", "/v1/sync/batch", batch_to_wire(self.terminal_id, records))


def sealed(records: list[TransactionRecord], key: Ed25519PrivateKey | None = None) -> list[TransactionRecord]:
    """Records numbered from 1 and sealed onto a chain as a terminal's journal does (with its ``key_for``)."""
    if not records:
        return []
    key = key or key_for(records[0].terminal_id)
    out, prev = [], GENESIS
    for i, r in enumerate(records, 1):
        r = dataclasses.replace(r, seq=i)
        digest, signature = seal(prev, canonical(r.to_wire()), key)
        out.append(dataclasses.replace(r, prev_hash=prev.hex(), hash=digest.hex(), signature=signature.hex()))
        prev = digest
    return out


async def register_key(ledger: LedgerHandle, terminal_id: str, key: Ed25519PrivateKey | None = None) -> None:
    """Enrol ``terminal_id`` (store S-1, merchant M-1, as ``draft`` records say) with its key."""
    await ledger.terminal(terminal_id, key)


async def post_batch(
    ledger: LedgerHandle, body: dict[str, Any], key: Ed25519PrivateKey | None = None
) -> tuple[int, Any]:
    """A batch sent as the terminal it names (signed with its ``key_for`` unless another key is given)."""
    terminal_id = str(body["terminal_id"])
    return await TestTerminal(ledger.url, terminal_id, key or key_for(terminal_id)).call("POST", "/v1/sync/batch", body)


# The programs the tests run, in their own venv (.ci/tools-requirements.txt): never imported here.
TOOLS = Path(__file__).resolve().parents[1] / ".venv-tools" / "bin"


def schemathesis_argv(openapi_url: str, token: str) -> list[str]:
    """A deterministic schemathesis run against a live service, every check but one.

    Not "schema-valid means accepted": a valid request may still be refused by
    the business (a member code whose signature is not the ledger's, a basket
    that does not exist, a short tender), which schemathesis cannot know.
    """
    return [
        str(TOOLS / "python"), "-m", "schemathesis.cli", "run", openapi_url,
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
    today = business_day(datetime.now(UTC)).isoformat()
    store = await ledger.open_store()
    try:
        held = totals_by_terminal(await store.reports.records_of_day(today), today)
    finally:
        await store.close()
    mine = totals_by_terminal((r.to_wire() for r in made), today)
    assert not made or mine, "none of the records is of today's business day: the check would say nothing"
    return [f"{d.terminal_id} {d.what}" for d in reconcile(mine, {t: held[t] for t in mine})]


def _as_root(*argv: str) -> None:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    result = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"cannot {' '.join(argv)}: {result.stderr.strip()} (these tests need root or sudo -n)")


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mount`` while the block runs: a real disk that really fills up."""
    mount.mkdir(parents=True, exist_ok=True)
    _as_root("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount))
    try:
        yield mount
    finally:
        _as_root("umount", "-l", str(mount))


def member_news(delta: list[Any], held: list[Any], id_of: Callable[[Any], str], database: str | None) -> list[Any]:
    """What a member delta brings that differs from the members a till holds. On PostgreSQL a delta may bring
    a member again at the state already held (a transaction in flight anywhere in the cluster holds the
    revision back: docs/protocols/sync.md, "Member revisions without a shared row"); never one changed
    beyond what it says. SQLite's one counter brings exactly what changed."""
    before = {id_of(m): m for m in held}
    news = [m for m in delta if before.get(id_of(m)) != m]
    if database is None:
        assert news == delta, "SQLite's delta brought a member again"
    return news
