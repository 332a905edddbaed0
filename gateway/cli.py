"""``posgw``: run the daemon, check a config file, look after the journal, fetch a wallet's statement."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.config import GatewayConfig, load_config
from gateway.daemon import run_gateway
from gateway.errors import StartupError
from gateway.ledger_link import enrolment as enrollment
from gateway.ops import journal_cli, status_cli
from gateway.ops.logs import configure_logging
from gateway.payments import statement_cli
from protocols.errors import FinalError, RetryableError, SchemaError
from protocols.version import VERSION

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd will not restart-loop on it
EXIT_REFUSED = 70  # EX_SOFTWARE: a journal or key problem that needs a person


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posgw", description="POS payment-and-membership gateway")
    parser.add_argument("--version", action="version", version=f"posgw {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway daemon")
    run.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    check = sub.add_parser("config", help="configuration tools")
    check_sub = check.add_subparsers(dest="action", required=True)
    check_file = check_sub.add_parser("check", help="validate a config file and report every problem")
    check_file.add_argument("file", type=Path)
    journal_cli.add_parser(sub)
    statement_cli.add_parser(sub)
    status_cli.add_parsers(sub)
    enrol = sub.add_parser("enroll", help="enrol this till with the ledger, with an operator's one-time code")
    enrol.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    enrol.add_argument("--ledger", help="the ledger's URL (default: [ledger] url)")
    enrol.add_argument("--code", required=True, help="the code `posgw-ledger terminal add` printed")
    enrol.add_argument(
        "--ca-file", help="the CA the ledger's certificate is checked against (default: [ledger] ca_file)"
    )
    args = parser.parse_args(argv)

    path: Path | None = getattr(args, "config", None) or getattr(args, "file", None)
    config: GatewayConfig | None = None
    if path is not None:
        try:
            config = load_config(path)
        except SchemaError as err:
            print(f"posgw: invalid configuration\n{err}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        if args.command == "journal":
            return journal_cli.run(args, config)
        assert config is not None
        if args.command == "payments":
            return statement_cli.run(args, config)
        if args.command in ("status", "devices"):
            return status_cli.run(args, config)
        if args.command == "config":
            print(f"{path}: OK (terminal {config.terminal.terminal_id}, {len(config.devices)} device(s))")
            return 0
        if args.command == "enroll":
            return _enroll(config, args)
        configure_logging(config.log_level, config.log_format)
        asyncio.run(run_gateway(config))
    except StartupError as err:  # one line, and a code systemd will not restart on
        print(f"posgw: cannot start: {err}", file=sys.stderr)
        return err.exit_code
    except FinalError as err:
        print(f"posgw: refusing to continue: {err}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def _enroll(config: GatewayConfig, args: argparse.Namespace) -> int:
    url, ca_file = args.ledger or config.ledger.url, args.ca_file or config.ledger.ca_file
    try:
        done = asyncio.run(enrollment.enroll(config, url, args.code, ca_file))
    except RetryableError as err:
        print(f"posgw: {err}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    print(
        f"{done.terminal_id} enrolled at {url}: chain epoch {done.epoch}, store {done.store_id}, merchant "
        f"{done.merchant_id}; the ledger's key is pinned in {config.state_dir / enrollment.ENROLMENT_FILE}"
    )
    if (done.store_id, done.merchant_id) != (config.terminal.store_id, config.terminal.merchant_id):
        print(
            f"posgw: the config says store {config.terminal.store_id}, merchant {config.terminal.merchant_id}: "
            "the ledger will quarantine this till's records until they agree",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
