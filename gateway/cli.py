"""``posgw``: run the daemon, check a config file."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.config import load_config
from gateway.daemon import run_gateway
from gateway.logs import configure_logging
from protocols.errors import SchemaError

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd will not restart-loop on it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posgw", description="POS payment-and-membership gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway daemon")
    run.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    check = sub.add_parser("config", help="configuration tools")
    check_sub = check.add_subparsers(dest="action", required=True)
    check_file = check_sub.add_parser("check", help="validate a config file and report every problem")
    check_file.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    path: Path = args.config if args.command == "run" else args.file
    try:
        config = load_config(path)
    except SchemaError as err:
        print(f"posgw: invalid configuration\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "config":
        print(f"{path}: OK (terminal {config.terminal.terminal_id}, {len(config.devices)} device(s))")
        return 0
    configure_logging(config.log_level, config.log_format)
    asyncio.run(run_gateway(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
