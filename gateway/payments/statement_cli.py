"""``posgw payments statement``: fetch a wallet's daily statement with this till's merchant credentials.

The file is what the wallet published (WeChat Pay's CSV, Alipay's zip), written
whole or not at all; ``posgw-ledger report reconcile --statement FILE`` compares
it with the ledger's records, order by order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from drivers.errors import StatementUnavailableError
from drivers.payment_provider import StatementSource
from gateway.config import GatewayConfig
from protocols.business_day import CHINA
from protocols.money import format_cny
from protocols.statements import StatementError, read_statement

EX_DATAERR, EX_UNAVAILABLE, EX_USAGE, EX_CANTCREAT = 65, 69, 64, 73


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    payments = sub.add_parser("payments", help="the wallets' side of the money: daily statements")
    actions = payments.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("statement", help="download a wallet's statement for one day (China time)")
    fetch.add_argument("-c", "--config", type=Path, required=True, help="the till's TOML config file")
    fetch.add_argument("--wallet", choices=["wechat", "alipay"], required=True)
    fetch.add_argument("--day", type=date.fromisoformat, help="YYYY-MM-DD, China time (default: yesterday)")
    fetch.add_argument("-o", "--output", type=Path, required=True, help="where to write the statement")


def run(args: argparse.Namespace, config: GatewayConfig) -> int:
    provider: object = dict(config.payments.providers).get(args.wallet)  # a plugin may publish none
    if not isinstance(provider, StatementSource):
        print(f"posgw: {args.wallet} has no provider here that publishes statements", file=sys.stderr)
        return EX_USAGE
    day = args.day or (datetime.now(UTC).astimezone(CHINA).date() - timedelta(days=1))
    try:
        data = asyncio.run(_fetch(provider, day))
        statement = read_statement(data)
    except StatementUnavailableError as err:
        print(f"posgw: {err}", file=sys.stderr)
        return EX_UNAVAILABLE
    except StatementError as err:
        print(f"posgw: the {args.wallet} statement for {day} cannot be read: {err}", file=sys.stderr)
        return EX_DATAERR
    partial = args.output.with_name(args.output.name + ".part")
    try:
        partial.write_bytes(data)
        os.replace(partial, args.output)
    except OSError as err:
        partial.unlink(missing_ok=True)
        print(f"posgw: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return EX_CANTCREAT
    pays = [line for line in statement.lines if line.kind == "pay"]
    refunds = [line for line in statement.lines if line.kind == "refund"]
    paid, refunded = format_cny(sum(p.amount for p in pays)), format_cny(sum(r.amount for r in refunds))
    print(
        f"{args.output}: {args.wallet} statement for {day}: "
        f"{len(pays)} payments {paid}, {len(refunds)} refunds {refunded}"
    )
    return 0


async def _fetch(provider: StatementSource, day: date) -> bytes:
    try:
        return await provider.statement(day)
    finally:
        await provider.close()
