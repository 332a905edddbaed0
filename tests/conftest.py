"""Shared fixtures: real pseudo-terminals, real processes, throw-away tokens."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulators.acquirer import Acquirer
from simulators.acquirer import build_app as build_acquirer
from simulators.processes import free_port, stop_leftovers
from simulators.provider_keys import Credentials, make_credentials
from simulators.scanner import PtyScanner
from simulators.terminal import PtyTerminal
from simulators.vcard import VirtualCard
from simulators.wallet_sims import Wallets, serving_wallets
from tests.harness import LedgerHandle, tmpfs
from tests.pcsc import one_at_a_time, require_pcscd, vpcd_listening, wait_readers_empty


@pytest.fixture
def pty_scanner(tmp_path: Path) -> Iterator[PtyScanner]:
    scanner = PtyScanner(tmp_path / "scanner")
    scanner.plug()
    yield scanner
    scanner.unplug()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A really small file system (a 1 MiB tmpfs) that a test can fill up, as a full disk."""
    with tmpfs(tmp_path / "fs", "1m") as mount:
        yield mount


@pytest.fixture
def tokens() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in ("api", "operator", "app")}


@pytest.fixture
def ledger_database() -> str | None:
    """The ledger's storage: None for its SQLite file (``tests/ledger`` runs on PostgreSQL too)."""
    return None


@pytest.fixture
async def ledger(tmp_path: Path, tokens: dict[str, str], ledger_database: str | None) -> AsyncIterator[LedgerHandle]:
    """A real ``posgw-ledger`` process with the demo mall, on a free port."""
    handle = LedgerHandle(tmp_path / "ledger", tokens, database=ledger_database)
    await handle.start()
    yield handle
    handle.stop()
    assert await handle.books_problems() == []  # double entry holds after every test that used a ledger


@pytest.fixture
def pcscd() -> Iterator[None]:
    """The real pcscd with its vpcd virtual readers, running, for this test alone (``one_at_a_time``)."""
    with one_at_a_time():
        require_pcscd()
        yield


@pytest.fixture
def issuer_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def cards(pcscd: None) -> Iterator[list[VirtualCard]]:
    """Virtual cards a test creates; all removed at the end so none leaks into the next test."""
    made: list[VirtualCard] = []
    yield made
    for card in made:
        card.remove()
    if made and vpcd_listening():
        wait_readers_empty()


@pytest.fixture
async def acquirer() -> AsyncIterator[tuple[str, Acquirer]]:
    """The scan-to-pay acquirer simulator over real HTTP on a free port, and its books."""
    books = Acquirer()
    runner = web.AppRunner(build_acquirer(books), shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", books
    await runner.cleanup()


@pytest.fixture(scope="session")
def provider_credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    """The simulated wallets' credentials (CA, TLS and API certificates, API key, RSA2 keys): made once."""
    return make_credentials(tmp_path_factory.mktemp("providers"))


@pytest.fixture
async def wallets(provider_credentials: Credentials) -> AsyncIterator[Wallets]:
    """WeChat Pay and Alipay simulators over real HTTPS on free ports, speaking their published formats."""
    async with serving_wallets(provider_credentials) as wallets:
        yield wallets


@pytest.fixture
async def card_terminal(tmp_path: Path) -> AsyncIterator[PtyTerminal]:
    """The bank-card terminal simulator on a real pty (quick customer, a 1 s outage on power loss)."""
    sim = PtyTerminal(tmp_path / "terminal", pin_seconds=0.05, outage_seconds=1.0)
    sim.plug()
    yield sim
    sim.unplug()


@pytest.hookimpl(trylast=True)  # after the session's fixtures were torn down: only true leftovers remain
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A process a test started and did not stop (its clean-up never ran) is stopped here, by pid, and named."""
    left = stop_leftovers()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if left and reporter is not None:
        reporter.write_line(f"stopped {len(left)} process(es) a test left running: {', '.join(left)}", yellow=True)
