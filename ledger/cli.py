"""``posgw-ledger``: run the reference ledger (embedded SQLite, or PostgreSQL with ``--database``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import ssl
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiomqtt
import structlog
from aiohttp import web

from ledger import admin, rulebooks, secrets, workers
from ledger.app import build_app
from ledger.database import DATABASE_HELP, StorageError
from ledger.demo_data import DEMO_BENEFITS, DEMO_EXCLUDED, DEMO_MEMBERS, DEMO_PHONES, DEMO_TIERS
from ledger.duties import AUDIT_EVERY, announce, duties
from ledger.group_writer import LANES, MAX_LANES
from ledger.notices import MEMBERS_EVERY, NoticePublisher, add_broker_options, broker_from, send_command
from ledger.rulebooks import RulebookRefusedError
from ledger.service import LedgerService, follow
from ledger.store import LedgerStore
from ledger.sync_desk import VERIFY_WORKERS
from protocols.errors import GatewayError
from protocols.masking import mask_processor
from protocols.mqtt_topics import COMMANDS
from protocols.phone import phone_identifier
from protocols.tokens import b64url_decode
from protocols.version import VERSION

log = structlog.get_logger("posgw.ledger")


def _configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # the node, when it has a name
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            structlog.processors.JSONRenderer(),
        ],
        # One write a line: the workers of ``--workers`` share stderr, and print's two writes (the line, then
        # its newline) let two processes' lines run into one.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
    )


async def open_service(
    data_dir: Path,
    database: str | None,
    *,
    demo: bool,
    app_token: str | None,
    operator_token: str | None = None,
    secrets_key_file: Path | None = None,
    replica: str | None = None,
    lanes: int = LANES,
) -> LedgerService:
    store = await LedgerStore.open(data_dir, database, replica, lanes)
    try:
        issuer = await secrets.issuer_key(store.db, data_dir, secrets.secrets_key(data_dir, secrets_key_file))
    except BaseException:
        await store.close()
        raise
    if demo and await store.get_meta("rulebook") is None:
        await store.members.upsert(list(DEMO_MEMBERS))
        demo_rules = {"version": 1, "currency": "CNY", "tiers": DEMO_TIERS, "excluded_categories": DEMO_EXCLUDED}
        with contextlib.suppress(RulebookRefusedError):  # another node, starting at the same moment, put it in
            await store.rules.add({**demo_rules, **DEMO_BENEFITS})
    salt = await store.rules.phone_salt()
    if demo:
        for member_id, phone in DEMO_PHONES.items():
            await store.members.add_identifier(member_id, phone_identifier(phone, b64url_decode(salt)))
    body = await store.get_meta("rulebook") or {"version": 0, "currency": "CNY", "tiers": {}}
    return LedgerService(
        store, issuer, rulebooks.assemble(body, salt, issuer), app_token=app_token, operator_token=operator_token
    )


async def serve(args: argparse.Namespace) -> None:
    svc = await open_service(
        args.data,
        args.database,
        replica=args.read_database,
        demo=args.demo_data,
        app_token=os.environ.get("POSGW_LEDGER_APP_TOKEN") or None,
        operator_token=os.environ.get("POSGW_LEDGER_OPERATOR_TOKEN") or None,
        secrets_key_file=args.secrets_key_file,
        lanes=args.lanes,
    )
    if args.mqtt:
        svc.notices = NoticePublisher(broker_from(args), args.mall, max(args.member_notices_every, 0.0), _node(args))
    await run(
        svc, args.host, args.port, tls_context(args.tls_cert, args.tls_key), audit_every=args.audit_every,
        reuse_port=args.reuse_port, parent=args.worker_of,
    )  # fmt: skip


def _node(args: argparse.Namespace) -> str:
    """This node's name among several: ``--node``, else host name and pid."""
    return str(args.node or f"{socket.gethostname()}-{os.getpid()}")


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """HTTPS with this certificate and key (TLS 1.2 and newer); None: plain HTTP (behind a TLS proxy)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise OSError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def run(
    svc: LedgerService,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    *,
    audit_every: float = AUDIT_EVERY,
    reuse_port: bool = False,
    parent: int | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; ``reuse_port``: the port shared with the other workers (``--workers``),
    ``parent``: their supervisor, without which this worker stops."""
    runner = web.AppRunner(build_app(svc), handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls, reuse_port=reuse_port or None).start()
    scheme = "https" if tls else "http"
    log.info("ledger_started", address=f"{scheme}://{host}:{runner.addresses[0][1]}", rulebook=svc.rulebook.version)
    # forkserver: worker processes are not forked from this (threaded) process.
    svc.new_verifier = lambda: ProcessPoolExecutor(VERIFY_WORKERS, mp_context=multiprocessing.get_context("forkserver"))
    svc.verifier = svc.new_verifier()
    publisher = None
    following = asyncio.create_task(follow(svc, svc.rulebook.phone_salt), name="rulebook-versions")
    if svc.notices is not None:
        await announce(svc.store, svc.notices)  # if this node announces: the news as it stands
        publisher = asyncio.create_task(svc.notices.run(), name="mqtt-notices")
    duty = asyncio.create_task(duties(svc.store, svc.notices, audit_every=audit_every), name="ledger-duties")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphaned = asyncio.create_task(_orphaned(parent, stop), name="supervisor-watch") if parent else None
    try:
        await stop.wait()
    finally:
        if orphaned is not None:
            orphaned.cancel()
        following.cancel()
        duty.cancel()
        if publisher is not None:
            publisher.cancel()
        await runner.cleanup()
        svc.verifier.shutdown(cancel_futures=True)
        await svc.store.close()
        log.info("ledger_stopped")


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor is gone (killed outright) stops: nothing would start it again."""
    while os.getppid() == parent:  # noqa: ASYNC110 - a parent's end is no event this process can await
        await asyncio.sleep(1.0)
    log.error("ledger_worker_orphaned", detail="the supervisor is gone: this worker stops")
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posgw-ledger", description="posgw reference central ledger")
    parser.add_argument("--version", action="version", version=f"posgw-ledger {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the ledger API")
    run.add_argument("--data", type=Path, required=True, help="data directory (issuer key; the SQLite file)")
    run.add_argument("--database", default=os.environ.get("POSGW_LEDGER_DATABASE"), help=DATABASE_HELP)
    run.add_argument(
        "--read-database",
        default=os.environ.get("POSGW_LEDGER_READ_DATABASE") or None,
        metavar="URL",
        help="a read replica of --database (PostgreSQL) for member snapshots, deltas and lookups (a moment behind)",
    )
    run.add_argument("--node", default=None, help="this node's name among several (default: host name and pid)")
    run.add_argument(
        "--audit-every",
        type=float,
        default=AUDIT_EVERY,
        metavar="SECONDS",
        help=f"audit stored records' own signatures this often, on one node (default {AUDIT_EVERY:g}; 0: never)",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8780)
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N ledger processes on one port, each a node (PostgreSQL only; default 1): use the machine's cores",
    )
    run.add_argument(
        "--lanes",
        type=int,
        default=LANES,
        metavar="N",
        help=f"groups of batches in flight at once in each process (PostgreSQL; default {LANES}; "
        "more for a database far away)",
    )
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker: the port is shared
    run.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)  # ... and its supervisor
    run.add_argument("--demo-data", action="store_true", help="seed the demo mall's tiers and members when empty")
    run.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM, with its chain)")
    run.add_argument("--tls-key", type=Path, help="… and this private key (PEM)")
    admin.add_secrets_option(run)
    add_broker_options(run, None)  # --mqtt: announce rulebook and member revisions over MQTT
    run.add_argument(
        "--member-notices-every",
        type=float,
        default=MEMBERS_EVERY,
        metavar="SECONDS",
        help=f"at most one member-revision notice per this many seconds (default {MEMBERS_EVERY})",
    )
    cmd = sub.add_parser("command", help="send a terminal a command over MQTT (refresh its rules, sync now)")
    cmd.add_argument("terminal_id")
    cmd.add_argument("name", choices=COMMANDS)
    add_broker_options(cmd, "127.0.0.1:1883")
    admin.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "command":
        try:
            asyncio.run(send_command(broker_from(args), args.mall, args.terminal_id, args.name))
        except (OSError, aiomqtt.MqttError) as err:
            print(f"posgw-ledger: command not sent: {err}", file=sys.stderr)
            return 69  # EX_UNAVAILABLE
        return 0
    if args.command != "serve":
        return admin.run(args)

    for name in ("POSGW_LEDGER_APP_TOKEN", "POSGW_LEDGER_OPERATOR_TOKEN"):
        if 0 < len(os.environ.get(name, "")) < 16:
            print(f"posgw-ledger: {name} must be 16 characters or more", file=sys.stderr)
            return 78  # EX_CONFIG
    _configure_logging()
    if args.node:
        structlog.contextvars.bind_contextvars(node=args.node)
    if not 1 <= args.lanes <= MAX_LANES:
        print(f"posgw-ledger: --lanes is 1 to {MAX_LANES}", file=sys.stderr)
        return 78
    if args.workers != 1:
        if args.workers < 1 or args.workers > 64:
            print("posgw-ledger: --workers is 1 to 64", file=sys.stderr)
            return 78
        if not (args.database or "").startswith(("postgresql://", "postgres://")):
            print("posgw-ledger: --workers needs PostgreSQL (--database): SQLite has one writer", file=sys.stderr)
            return 78  # EX_CONFIG
        try:
            port = workers.free_port(args.host, args.port)
        except OSError as err:  # the port taken, the address not this machine's
            print(f"posgw-ledger: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
            return 69  # EX_UNAVAILABLE
        child = workers.child_argv(sys.argv[1:] if argv is None else argv)
        return workers.supervise(child, args.workers, args.host, port, _node(args))
    try:
        asyncio.run(serve(args))
    except StorageError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 74  # EX_IOERR
    except secrets.SecretsError as err:
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 78  # EX_CONFIG
    except ssl.SSLError as err:
        print(f"posgw-ledger: TLS: {err}", file=sys.stderr)
        return 78
    except GatewayError as err:  # any other refusal at start: one line, never a traceback
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 70  # EX_SOFTWARE
    except OSError as err:  # a broker password or CA file that cannot be read
        print(f"posgw-ledger: {err}", file=sys.stderr)
        return 66  # EX_NOINPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
