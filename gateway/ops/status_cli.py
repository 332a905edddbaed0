"""``posgw status`` and ``posgw devices``: a running daemon, asked over its local API, as readable tables."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import GatewayConfig
from protocols.money import format_cny


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text in (("status", "the running daemon at a glance"), ("devices", "the daemon's devices and states")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", type=Path, required=True, help="the daemon's TOML config file")
        if name == "status":
            p.add_argument(
                "--wait-drained", action="store_true", help="follow the queue with a progress bar until it is empty"
            )


def run(args: argparse.Namespace, config: GatewayConfig) -> int:
    try:
        if getattr(args, "wait_drained", False):
            return asyncio.run(_follow_drain(config))
        status = asyncio.run(_fetch(config))
    except (aiohttp.ClientError, TimeoutError) as err:
        print(f"posgw: the daemon does not answer at {config.api.host}:{config.api.port} ({err})")
        return 1
    print(devices_table(status) if args.command == "devices" else status_text(status))
    return 0


async def _follow_drain(config: GatewayConfig, every_seconds: float = 0.5) -> int:
    """A progress bar on stderr while the daemon syncs its backlog; 0 once the queue is empty."""
    first = last = (await _fetch(config))["journal"]["pending"]
    started = time.monotonic()
    while last:
        await asyncio.sleep(every_seconds)
        status = await _fetch(config)
        last = status["journal"]["pending"]
        done = first - last if first else 0
        rate = done / max(time.monotonic() - started, 1e-9)
        bar = "#" * int(30 * done / first) if first else ""
        ledger = "" if status["ledger"]["online"] else "  (ledger offline: waiting)"
        print(f"\rdraining [{bar:<30}] {last:,} of {first:,} left, {rate:,.0f}/s{ledger}", end="", file=sys.stderr)
    print(f"\rdrained: the queue is empty ({first:,} records synced)".ljust(80), file=sys.stderr)
    return 0


async def _fetch(config: GatewayConfig) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {config.api.token}"}
    url = f"http://{config.api.host}:{config.api.port}/v1/status"
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(url) as r,
    ):
        r.raise_for_status()
        body: dict[str, Any] = await r.json()
        return body


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def devices_table(status: dict[str, Any]) -> str:
    rows = [["DEVICE", "STATE", "ERROR", "RETRY IN"]]
    for d in status["devices"]:
        retry = f"{d['retry_in']:.1f} s" if d.get("retry_in") else ""
        rows.append([d["device"], d["state"], d.get("error") or "", retry])
    return table(rows) if len(rows) > 1 else "no devices configured"


def status_text(status: dict[str, Any]) -> str:
    journal, ledger = status["journal"], status["ledger"]
    amounts = ", ".join(format_cny(v) for v in journal["pending_amount"].values()) or "¥0.00"
    mqtt = status.get("mqtt")
    ledger_text = "online" if ledger["online"] else "OFFLINE"
    if ledger["last_error"]:
        ledger_text += f" ({ledger['last_error']})"
    queue = f"{journal['pending']} pending ({amounts}), oldest {journal['oldest_pending'] or '-'}"
    payments = status["payments"]
    mqtt_text = "not configured"
    if mqtt is not None:
        mqtt_text = "connected" if mqtt["connected"] else f"DOWN ({mqtt['last_error']})"
    rows = [
        ["terminal", status["terminal_id"] + (" (shutting down)" if status["draining"] else "")],
        ["ledger", ledger_text],
        ["last sync", ledger["last_sync"] or "never"],
        ["journal", f"{queue}, last seq {journal['last_seq']}"],
        ["limits", "; ".join(journal["limits_breached"]) or "none passed"],
        ["rulebook", f"v{status['rulebook_version']}, {status['members_cached']} members cached"],
        ["payments", f"{payments['running']} running, {len(payments['attention'])} need attention"],
        ["mqtt", mqtt_text],
    ]
    failing = [c for c in status.get("checks", []) if not c["ok"] and not c["name"].startswith("device:")]
    problems = "\n".join(f"  ! {c['name']}: {c['reason']}" for c in failing)
    said = f"\n\nneeds attention:\n{problems}" if failing else "\n\nevery check holds"
    return table(rows) + said + "\n\n" + devices_table(status)
