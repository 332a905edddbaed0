"""Typed gateway configuration, loaded from TOML and validated at start.

Every problem in the file is reported at once, each naming the key and what
was expected (``posgw config check FILE``). Secrets (the API and ledger
tokens) are never in the file itself: they come from a file or an environment
variable that the config names.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from drivers.base import Device
from drivers.credentials import read_secret
from drivers.errors import DriverLoadError, DriverNotFoundError
from drivers.payment_provider import WALLETS, PaymentProvider, ProviderRegistry
from drivers.registry import DriverRegistry
from protocols.errors import SchemaError
from protocols.records import ID_PATTERN
from protocols.schema import Fields, Problems


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    terminal_id: str
    store_id: str
    merchant_id: str
    currency: str = "CNY"
    # A department store's central checkout: the counters (merchants) a line may be sold for; empty: none.
    counters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str = field(default="", repr=False)
    max_body_bytes: int = 64 * 1024
    allow_remote: bool = False
    # Browser pages allowed to use the API (CORS), as origins: "http://127.0.0.1:8080".
    allowed_origins: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()  # names the Host header may carry besides the loopback ones and ``host``
    max_connections: int = 256  # at once (gateway/api/door.py); never more than the descriptor limit allows
    first_byte_timeout: float = 10.0  # seconds a new connection may stay silent before it is closed
    keepalive_timeout: float = 15.0  # seconds an idle keep-alive connection is kept between requests


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    url: str
    timeout: float = 5.0
    sync_interval: float = 5.0
    batch_size: int = 100
    refresh_interval: float = 60.0
    # Seconds left between two refreshes a notice asks for, plus up to half of it at random
    # (protocols/pacing.py): a mall's terminals do not all fetch at the same instant. 0: at once.
    min_refresh_interval: float = 5.0
    rulebook_key: str | None = None  # the ledger's signing key (base64url); None: from the enrolment
    ca_file: str | None = None  # the CA the ledger's HTTPS certificate is checked against (else the system's)


@dataclass(frozen=True, slots=True)
class JournalConfig:
    # Personal-data keyring (offline_queue/personal.py): from a file or an environment variable.
    keys: str = field(default="", repr=False)
    keys_source: str = ""
    max_records: int = 100_000
    max_bytes: int = 1024 * 1024 * 1024
    max_pending_age: float = 72 * 3600.0
    retention_days: float = 90.0


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    name: str
    driver: str
    device: Device


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    deadline: float = 30.0  # seconds a scan-to-pay may stay open before it is reversed
    providers: tuple[tuple[str, PaymentProvider], ...] = ()  # (wallet, provider)
    refund_retry: float = 1.0  # seconds before an unclear refund is asked again; doubles, 4 more tries


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    mall: str  # the mall this terminal belongs to: its topics are posgw/<mall>/...
    port: int = 1883
    keepalive: int = 30  # seconds; the broker declares the terminal offline after 1.5× this
    heartbeat: float = 15.0  # seconds between status messages
    username: str | None = None  # the terminal's own broker account, if the broker wants one
    password: str = field(default="", repr=False)
    tls: bool = False  # TLS to the broker, its certificate checked against ca_file or the system's CAs
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    source: str
    terminal: TerminalConfig
    api: ApiConfig
    ledger: LedgerConfig
    state_dir: Path
    devices: tuple[DeviceConfig, ...]
    journal: JournalConfig = JournalConfig()
    payments: PaymentsConfig = PaymentsConfig()
    mqtt: MqttConfig | None = None  # None: no broker; everything works over HTTP alone
    # Plugins that tried to take a built-in driver's name: refused, reported at start.
    refused_plugins: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "auto"
    token_leeway: int = 5

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite3"

    @property
    def cache_path(self) -> Path:
        return self.state_dir / "ledger-cache.json"

    @property
    def key_path(self) -> Path:
        return self.state_dir / "terminal.key"


def _secret(f: Fields, what: str, default_env: str, env: dict[str, str]) -> str:
    """A token from ``<key>_file`` or the environment variable ``<key>_env`` names; at least 16 characters."""
    value = read_secret(f, what, default_env, env)
    if value and len(value) < 16:
        f.problems.add(f"{f.path}.{what}", f"the {what} must be at least 16 characters")
    return value


def _read_api(f: Fields, env: dict[str, str]) -> ApiConfig:
    api = ApiConfig(
        host=f.text("host", "127.0.0.1"),
        port=f.integer("port", 8765, minimum=0, maximum=65535),
        token=_secret(f, "token", "POSGW_API_TOKEN", env),
        max_body_bytes=f.integer("max_body_bytes", 64 * 1024, minimum=1024, maximum=16 * 1024 * 1024),
        allow_remote=f.flag("allow_remote", False),
        allowed_origins=tuple(o.rstrip("/") for o in f.texts("allowed_origins")),
        hosts=tuple(f.texts("hosts")),
        max_connections=f.integer("max_connections", 256, minimum=8, maximum=100_000),
        first_byte_timeout=f.number("first_byte_timeout", 10.0, minimum=0.1, maximum=300.0),
        keepalive_timeout=f.number("keepalive_timeout", 15.0, minimum=1.0, maximum=3600.0),
    )
    for i, origin in enumerate(api.allowed_origins):
        if not re.fullmatch(r"https?://[^/\s?#]+", origin):
            f.problems.add(f"{f.path}.allowed_origins[{i}]", f"{origin!r} is not an origin (scheme://host[:port])")
    try:
        loopback = ipaddress.ip_address(api.host).is_loopback
    except ValueError:
        loopback = api.host == "localhost"
    if not loopback and not api.allow_remote:
        f.problems.add(f"{f.path}.host", f"{api.host} is not a loopback address; set allow_remote = true to mean it")
    f.done()
    return api


def _read_ledger(f: Fields, env: dict[str, str]) -> LedgerConfig:
    # No shared ledger token any more: a till signs its requests with its own key (``posgw enroll``).
    # The keys of configs written before are read and ignored, so those configs still load.
    f.text("token_env", "")
    f.text("token_file", "")
    ca_file = f.file_path("ca_file", "") or None
    if ca_file and not Path(ca_file).is_file():
        f.problems.add(f"{f.path}.ca_file", f"no such file: {ca_file}")
    ledger = LedgerConfig(
        url=f.text("url", pattern=r"https?://[^\s]+"),
        ca_file=ca_file,
        timeout=f.number("timeout", 5.0, minimum=0.1, maximum=120),
        sync_interval=f.number("sync_interval", 5.0, minimum=0.05, maximum=3600),
        batch_size=f.integer("batch_size", 100, minimum=1, maximum=200),
        refresh_interval=f.number("refresh_interval", 60.0, minimum=1, maximum=86400),
        min_refresh_interval=f.number("min_refresh_interval", 5.0, minimum=0, maximum=3600),
        rulebook_key=f.optional_text("rulebook_key", pattern=r"[A-Za-z0-9_-]{43}"),
    )
    f.done()
    return ledger


def _read_journal(f: Fields, env: dict[str, str]) -> JournalConfig:
    key_file = f.file_path("keys_file", "")
    key_env = f.text("keys_env", "POSGW_JOURNAL_KEYS", pattern=r"[A-Z_][A-Z0-9_]*")
    keys, source = "", ""
    if key_file:
        try:
            keys, source = Path(key_file).read_text(), key_file
        except OSError as err:
            f.problems.add(f"{f.path}.keys_file", f"cannot read {key_file}: {err.strerror}")
    elif env.get(key_env):
        keys, source = env[key_env], f"${key_env}"
    journal = JournalConfig(
        keys=keys,
        keys_source=source,
        max_records=f.integer("max_records", 100_000, minimum=100),
        max_bytes=f.integer("max_bytes", 1024 * 1024 * 1024, minimum=1024 * 1024),
        max_pending_age=f.number("max_pending_age", 72 * 3600.0, minimum=60),
        retention_days=f.number("retention_days", 90.0, minimum=1),
    )
    f.done()
    return journal


def _read_devices(f: Fields, registry: DriverRegistry) -> tuple[DeviceConfig, ...]:
    devices: list[DeviceConfig] = []
    names: set[str] = set()
    for df in f.tables("devices", max_items=32):
        name = df.text("name", pattern=r"[a-z0-9][a-z0-9_-]{0,31}")
        driver = df.text("driver")
        if name in names:
            df.problems.add(f"{df.path}.name", f"device name {name!r} is used twice")
        names.add(name)
        options = df.table("options")
        df.done()
        if not driver:
            continue
        try:
            cls = registry.load(driver)
        except (DriverNotFoundError, DriverLoadError) as err:
            df.problems.add(f"{df.path}.driver", str(err))
            continue
        devices.append(DeviceConfig(name, driver, cls.from_options(name, options)))
        options.done()
    return tuple(devices)


def _read_payments(f: Fields, registry: ProviderRegistry) -> PaymentsConfig:
    deadline = f.number("deadline", 30.0, minimum=5.0, maximum=300.0)
    refund_retry = f.number("refund_retry", 1.0, minimum=0.05, maximum=60.0)
    providers: list[tuple[str, PaymentProvider]] = []
    for pf in f.tables("providers", max_items=8):
        wallet = pf.text("wallet", choices=WALLETS)
        name = pf.text("provider")
        if wallet in dict(providers):
            pf.problems.add(f"{pf.path}.wallet", f"{wallet!r} has two providers; keep one")
        options = pf.table("options")
        pf.done()
        if not name:
            continue
        try:
            cls = registry.load(name)
        except (DriverNotFoundError, DriverLoadError) as err:
            pf.problems.add(f"{pf.path}.provider", str(err))
            continue
        providers.append((wallet, cls.from_options(wallet, options)))
        options.done()
    f.done()
    return PaymentsConfig(deadline, tuple(providers), refund_retry)


def _read_mqtt(f: Fields, env: dict[str, str]) -> MqttConfig | None:
    if not f.has("host"):
        f.done()
        return None
    username = f.optional_text("username", pattern=r"[A-Za-z0-9_.@-]{1,64}")
    password = _secret(f, "password", "POSGW_MQTT_PASSWORD", env) if username else ""
    ca_file = f.file_path("ca_file", "") or None
    tls = f.flag("tls", ca_file is not None)
    if ca_file and not Path(ca_file).is_file():
        f.problems.add(f"{f.path}.ca_file", f"no such file: {ca_file}")
    config = MqttConfig(
        username=username,
        password=password,
        tls=tls,
        ca_file=ca_file,
        host=f.text("host", pattern=r"[A-Za-z0-9.:_-]{1,253}"),
        mall=f.text("mall", pattern=r"[A-Za-z0-9_-]{1,64}"),
        port=f.integer("port", 8883 if tls else 1883, minimum=1, maximum=65535),
        keepalive=f.integer("keepalive", 30, minimum=1, maximum=3600),
        heartbeat=f.number("heartbeat", 15.0, minimum=0.1, maximum=3600),
    )
    f.done()
    return config


def parse_config(
    data: object,
    source: str,
    *,
    env: dict[str, str] | None = None,
    registry: DriverRegistry | None = None,
    providers: ProviderRegistry | None = None,
    base_dir: Path | None = None,
) -> GatewayConfig:
    env = dict(os.environ) if env is None else env
    registry = registry or DriverRegistry.discover()
    providers = providers or ProviderRegistry.discover()
    problems = Problems(source)
    root = Fields(data, problems, base_dir=str(base_dir) if base_dir else "")
    tf = root.table("terminal", required=True)
    terminal = TerminalConfig(
        terminal_id=tf.text("id", pattern=ID_PATTERN),
        store_id=tf.text("store_id", pattern=ID_PATTERN),
        merchant_id=tf.text("merchant_id", pattern=ID_PATTERN),
        currency=tf.text("currency", "CNY", choices=("CNY",)),
        counters=tuple(tf.texts("counters")),
    )
    for counter in terminal.counters:
        if not re.fullmatch(ID_PATTERN, counter):
            problems.add("terminal.counters", f"{counter[:40]!r} is not a merchant id")
    tf.done()
    state_dir = Path(root.file_path("state_dir", "/var/lib/posgw"))
    lf = root.table("logging")
    log_level = lf.text("level", "info", choices=("debug", "info", "warning", "error"))
    log_format = lf.text("format", "auto", choices=("auto", "json", "console"))
    lf.done()
    mf = root.table("membership")
    token_leeway = mf.integer("token_leeway", 5, minimum=0, maximum=300)
    mf.done()
    config = GatewayConfig(
        source=source,
        terminal=terminal,
        api=_read_api(root.table("api"), env),
        ledger=_read_ledger(root.table("ledger", required=True), env),
        state_dir=state_dir,
        devices=_read_devices(root, registry),
        journal=_read_journal(root.table("journal"), env),
        payments=_read_payments(root.table("payments"), providers),
        mqtt=_read_mqtt(root.table("mqtt"), env),
        log_level=log_level,
        log_format=log_format,
        token_leeway=token_leeway,
        refused_plugins=(*registry.refused.values(), *providers.refused.values()),
    )
    root.done()
    problems.raise_if_any()
    return config


def load_config(path: Path, *, env: dict[str, str] | None = None) -> GatewayConfig:
    """Read and validate a TOML config file; raise :class:`SchemaError` with every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise SchemaError(str(path), [f"cannot read the file: {err.strerror}"]) from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SchemaError(str(path), [f"not valid TOML: {err}"]) from err
    return parse_config(data, str(path), env=env, base_dir=Path(path).resolve().parent)
