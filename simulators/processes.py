"""Start and stop posgw processes (ledger, gateway) for the demo, tests and benchmarks.

Everything talks to them as the real deployment does: over HTTP on loopback,
with tokens in the environment, and signals to stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from simulators.pos_client import PosClient
from simulators.provider_keys import Credentials, alipay_options, wechatpay_options
from simulators.scanner import PtyScanner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def stable_port() -> int:
    """A free port below the kernel's ephemeral range, for a service restarted on the same port (a stack killed
    and started again): while it is down, no other process's ``free_port`` (port 0) can be given it. Found when
    a chaos run's till, killed, came back to find another test's ledger on its port."""
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10_000, max(low, 10_001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


# Every child this process started and has not stopped: a test session stops what its tests left (by pid).
STARTED: dict[int, Proc] = {}


def stop_leftovers(pids: Collection[int] | None = None) -> list[str]:
    """Stop the children this process started (of ``pids``, when given) still running; return what they were."""
    chosen = {pid: p for pid, p in list(STARTED.items()) if pids is None or pid in pids}
    left = [f"{p.name} (pid {pid})" for pid, p in chosen.items() if p.popen is not None and p.popen.poll() is None]
    for proc in chosen.values():
        proc.stop()
    return left


@dataclass
class Proc:
    """One child process with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    before_start: Callable[[], None] | None = field(default=None, repr=False)  # e.g. enrol a till, once
    health_ssl: ssl.SSLContext | bool = field(default=True, repr=False)  # a test CA's, for an HTTPS service

    def start(self) -> None:
        if self.before_start is not None:
            self.before_start()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)
        log.close()
        STARTED[self.popen.pid] = self

    async def wait_healthy(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while time.monotonic() < deadline:
                if self.popen is not None and self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log_path}")
                try:
                    async with http.get(self.health_url, ssl=self.health_ssl) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        # Nobody will use a process that never came up, and a caller's clean-up may not cover it: stop it here.
        self.stop()
        raise TimeoutError(f"{self.name} did not become healthy within {within} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.popen is None:
            return 0
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        code = self.popen.returncode
        STARTED.pop(self.popen.pid, None)
        self.popen = None
        return code


def ledger_proc(data_dir: Path, port: int, env: dict[str, str], log_path: Path, extra: tuple[str, ...] = ()) -> Proc:
    argv = [sys.executable, "-m", "ledger.cli", "serve", "--data", str(data_dir), "--port", str(port), "--demo-data"]
    argv += extra
    return Proc("ledger", argv, env, log_path, f"http://127.0.0.1:{port}/healthz")


def gateway_proc(config: Path, port: int, env: dict[str, str], log_path: Path) -> Proc:
    argv = [sys.executable, "-m", "gateway.cli", "run", "-c", str(config)]
    return Proc("gateway", argv, env, log_path, f"http://127.0.0.1:{port}/healthz")


def demo_env(api_token: str, operator_token: str, app_token: str) -> dict[str, str]:
    return {
        **os.environ,
        "POSGW_API_TOKEN": api_token,
        "POSGW_LEDGER_OPERATOR_TOKEN": operator_token,
        "POSGW_LEDGER_APP_TOKEN": app_token,
    }


def enrol_gateway(
    config: Path, data_dir: Path, terminal_id: str, store_id: str, merchant_id: str, env: dict[str, str],
    database: str | None = None,
) -> None:  # fmt: skip
    """What an installer does once per till: the operator's ``terminal add`` prints a code, the till's
    ``posgw enroll`` uses it (the ledger must be running). Nothing to do when the till is enrolled."""
    state = _state_dir(config)
    if (state / "enrolment.json").exists():
        return
    where = ["--data", str(data_dir), *(["--database", database] if database else [])]
    add = [sys.executable, "-m", "ledger.cli", "terminal", "add", terminal_id, "--store", store_id,
           "--merchant", merchant_id, *where]  # fmt: skip
    made = subprocess.run(add, env=env, capture_output=True, text=True, timeout=60, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"posgw-ledger terminal add {terminal_id}: {made.stderr.strip()}")
    code = made.stdout.strip().splitlines()[-1]
    enrol = [sys.executable, "-m", "gateway.cli", "enroll", "-c", str(config), "--code", code]
    done = subprocess.run(enrol, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"posgw enroll {terminal_id}: {done.stderr.strip()}")


def issuer_key(data_dir: Path, env: dict[str, str], database: str | None = None) -> Ed25519PrivateKey:
    """The ledger's issuer key as an operator exports it for the card bureau (``posgw-ledger secrets issuer-pem``)."""
    argv = [sys.executable, "-m", "ledger.cli", "secrets", "issuer-pem", "--data", str(data_dir)]
    done = subprocess.run([*argv, *(["--database", database] if database else [])], env=env, capture_output=True,
                          timeout=60, check=True)  # fmt: skip
    key = load_pem_private_key(done.stdout, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError("the ledger's issuer key is not an Ed25519 key")
    return key


def _state_dir(config: Path) -> Path:
    data = tomllib.loads(config.read_text())
    state = Path(str(data.get("state_dir", "/var/lib/posgw")))
    return state if state.is_absolute() else (config.parent / state).resolve()


CARD_READER_TABLE = """
[[devices]]
name = "cards"
driver = "pcsc"
[devices.options]
readers = ["Virtual PCD 00 00"]
wait_timeout = 0.5
"""


def payments_table(acquirer_url: str, deadline: float = 30.0, terminal: Path | None = None) -> str:
    """Both scan-to-pay wallets sent to the JSON acquirer (the plugin example's); cards to ``terminal``."""
    providers = "".join(
        f"""
[[payments.providers]]
wallet = "{wallet}"
provider = "micropay-http"
[payments.providers.options]
url = "{acquirer_url}"
timeout = 2.0
"""
        for wallet in ("wechat", "alipay")
    )
    return _with_terminal(providers, deadline, terminal)


def wallets_table(
    creds: Credentials, wechat_url: str, alipay_url: str, deadline: float = 30.0, terminal: Path | None = None
) -> str:
    """WeChat Pay and Alipay on their published APIs at the simulators' URLs; cards to ``terminal``."""
    providers = ""
    for wallet, provider, options in (
        ("wechat", "wechatpay", wechatpay_options(creds, wechat_url, timeout=2.0)),
        ("alipay", "alipay", alipay_options(creds, alipay_url, timeout=2.0)),
    ):
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
        providers += f"""
[[payments.providers]]
wallet = "{wallet}"
provider = "{provider}"
[payments.providers.options]
{lines}"""
    return _with_terminal(providers, deadline, terminal)


def _with_terminal(providers: str, deadline: float, terminal: Path | None) -> str:
    if terminal is not None:
        providers += f"""
[[payments.providers]]
wallet = "card"
provider = "ecr-serial"
[payments.providers.options]
port = "{terminal}"
ack_timeout = 0.2
sale_timeout = 5.0
"""
    return f"\n[payments]\ndeadline = {deadline}\n{providers}"


def write_gateway_config(
    path: Path,
    *,
    api_port: int,
    ledger_port: int,
    state_dir: Path,
    scanner: Path,
    card_reader: bool = False,
    extra: str = "",
) -> Path:
    """A gateway config for a throw-away run on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""state_dir = "{state_dir}"

[terminal]
id = "T-DEMO-01"
store_id = "S-JOYCITY-B1"
merchant_id = "M-BAKERY"

[api]
port = {api_port}

[ledger]
url = "http://127.0.0.1:{ledger_port}"
timeout = 2.0
sync_interval = 1.0
refresh_interval = 30.0

[logging]
format = "json"

[[devices]]
name = "scanner"
driver = "serial-scanner"
[devices.options]
port = "{scanner}"
aim = true
"""
        + (CARD_READER_TABLE if card_reader else "")
        + extra
    )
    return path


@dataclass
class Stack:
    """A ledger process, a gateway process (not yet started) and a pty scanner, in ``workdir``."""

    workdir: Path
    tokens: dict[str, str]
    api_port: int
    ledger_port: int
    scanner: PtyScanner
    ledger: Proc
    gateway: Proc

    @classmethod
    def create(cls, workdir: Path, *, card_reader: bool = False, extra_config: str = "") -> Stack:
        tokens = {name: secrets.token_urlsafe(24) for name in ("api", "operator", "app")}
        env = demo_env(tokens["api"], tokens["operator"], tokens["app"])
        ledger_port, api_port = stable_port(), stable_port()  # both come back on their port after a kill
        scanner = PtyScanner(workdir / "scanner")
        scanner.plug()
        config = write_gateway_config(
            workdir / "gateway.toml",
            api_port=api_port,
            ledger_port=ledger_port,
            state_dir=workdir / "state",
            scanner=scanner.link,
            card_reader=card_reader,
            extra=extra_config,
        )
        gateway = gateway_proc(config, api_port, env, workdir / "gateway.log")
        # The till is enrolled the first time it starts (the ledger up by then), as an installer would.
        gateway.before_start = lambda: enrol_gateway(
            config, workdir / "ledger", "T-DEMO-01", "S-JOYCITY-B1", "M-BAKERY", env
        )
        return cls(
            workdir,
            tokens,
            api_port,
            ledger_port,
            scanner,
            ledger_proc(workdir / "ledger", ledger_port, env, workdir / "ledger.log"),
            gateway,
        )

    async def enrol(self) -> None:
        """Enrol the till now, as an installer does once (the ledger is started for it if it is not up)."""
        running = self.ledger.popen is not None
        if not running:
            self.ledger.start()
            await self.ledger.wait_healthy()
        try:
            assert self.gateway.before_start is not None
            await asyncio.to_thread(self.gateway.before_start)
        finally:
            if not running:
                self.ledger.stop()

    @property
    def ledger_url(self) -> str:
        return f"http://127.0.0.1:{self.ledger_port}"

    def pos(self) -> PosClient:
        return PosClient(f"http://127.0.0.1:{self.api_port}", self.tokens["api"])

    def shutdown(self, sig: int = signal.SIGTERM) -> None:
        self.gateway.stop(sig)
        self.ledger.stop()
        self.scanner.unplug()
