"""``posgw-sim demo``: one mall till, end to end, on this machine.

Starts the reference ledger (embedded SQLite) and the gateway as real
processes, plugs a scanner in on a pseudo-terminal, and plays the cashier:
a member shows the app's QR code, three products are scanned, the basket is
priced with the member's tier discount, paid in cash, journaled and synced.
Then the ledger goes down, a second sale is made offline and a new customer
joins at the till and buys, the ledger comes back and the queue drains.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from protocols.money import format_cny
from simulators.pos_client import ApiProblemError, PosClient
from simulators.printer import PtyPrinter
from simulators.processes import (
    Proc,
    demo_env,
    enrol_gateway,
    free_port,
    gateway_proc,
    issuer_key,
    ledger_proc,
    stable_port,
    wallets_table,
)
from simulators.provider_keys import Credentials, make_credentials
from simulators.scanner import PtyScanner
from simulators.vcard import VirtualCard, make_applet

# The POS application's own catalogue: EAN-13 → (name, category, unit price in fen).
CATALOGUE: dict[str, tuple[str, str, int]] = {
    "6901234567892": ("Egg tart ×6", "bakery", 3_800),
    "6909876543212": ("Birthday cake", "bakery", 19_800),
    "6921168509256": ("Mall gift card ¥200", "gift-card", 20_000),
    "6954767430386": ("Matcha roll cake", "bakery", 12_800),
}


def say(text: str = "") -> None:
    print(text, flush=True)


def render_config(
    repo: Path, demo_dir: Path, api_port: int, ledger_port: int, creds: Credentials, wallet_urls: tuple[str, str]
) -> Path:
    """config/demo.toml with this run's free ports and the wallets' simulators (the file's paths stay as they are)."""
    text = (repo / "config" / "demo.toml").read_text() + wallets_table(creds, *wallet_urls)
    text = re.sub(r"(?m)^port = 8765$", f"port = {api_port}", text)
    text = text.replace("http://127.0.0.1:8780", f"http://127.0.0.1:{ledger_port}")
    path = demo_dir / "gateway.toml"
    path.write_text(text)
    return path


async def member_coupon(ledger_url: str, app_token: str, member_id: str, coupon_id: str) -> str:
    """A coupon the mall pushed to the member's app, as a CP1 token."""
    headers = {"Authorization": f"Bearer {app_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{ledger_url}/v1/members/{member_id}/coupons", json={"coupon_id": coupon_id}) as r,
    ):
        r.raise_for_status()
        token: str = (await r.json())["token"]
        return token


async def member_qr(ledger_url: str, app_token: str, member_id: str) -> str:
    """What the member app does when the customer opens their virtual card."""
    headers = {"Authorization": f"Bearer {app_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{ledger_url}/v1/members/{member_id}/qr") as r,
    ):
        r.raise_for_status()
        token: str = (await r.json())["token"]
        return token


async def member_points(ledger_url: str, app_token: str, member_id: str) -> int:
    return int((await member_account(ledger_url, app_token, member_id))["points"])


async def member_account(ledger_url: str, app_token: str, member_id: str) -> dict[str, Any]:
    """The member's balances as the member app shows them."""
    headers = {"Authorization": f"Bearer {app_token}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.get(f"{ledger_url}/v1/members/{member_id}") as r:
        r.raise_for_status()
        account: dict[str, Any] = await r.json()
        return account


def print_basket(basket: dict[str, Any]) -> None:
    member = basket["member"]
    who = f"member {member['member_id']} ({member['tier']}, via {member['via']})" if member else "no member"
    say(f"  basket {basket['basket_id'][:8]}…, {who}")
    for line in basket["lines"]:
        rate = f"{line['rate'] / 100:.0f}%"
        say(
            f"    {line['name']:<22} {line['quantity']} × {format_cny(line['unit_price']):>9}"
            f"  pays {rate:>4}  discount {format_cny(line['discount']):>8}  net {format_cny(line['net']):>9}"
        )
    say(
        f"    total {format_cny(basket['total_gross'])}, discount {format_cny(basket['total_discount'])},"
        f" due {format_cny(basket['total_due'])}, points to earn {basket['points_earned']}"
    )
    for text in basket["breakdown"]:
        if text.startswith("  "):
            say(f"      {text.strip()}")
    for note in basket["notices"]:
        say(f"      note: {note}")


async def scan_products(pos: PosClient, scanner: PtyScanner, basket_id: str, codes: list[str]) -> None:
    """Scan each code; the POS app adds a line when the gateway reports a product."""
    for code in codes:
        scanner.send(code, aim="]E0")
        event = await pos.next_event("scan")
        assert event["kind"] == "product", event
        name, category, price = CATALOGUE[event["data"]]
        await pos.add_line(basket_id, sku=event["data"], name=name, category=category, unit_price=price)
        say(f"  scanned {event['data']} ({event['detail']}) → {name}")


async def sell(pos: PosClient, basket_id: str) -> dict[str, Any]:
    basket = await pos.basket(basket_id)
    print_basket(basket)
    due = basket["total_due"]
    cash = -(-due // 1000) * 1000  # the customer hands over the next ¥10 up
    key = secrets.token_hex(8)
    sale: dict[str, Any] = await pos.complete_cash(basket_id, cash, key)
    again = await pos.complete_cash(basket_id, cash, key)
    rec = sale["record"]
    say(
        f"  paid cash {format_cny(cash)}, change {format_cny(rec['change'])};"
        f" journaled as seq {rec['seq']} ({rec['txn_id'][:13]}…), offline={rec['offline']}"
    )
    say(
        "  retried completion with the same Idempotency-Key →"
        f" replayed={again['replayed']}, same seq {again['record']['seq']}"
    )
    return sale


async def scan_to_pay(pos: PosClient, scanner: PtyScanner, basket_id: str, code: str) -> None:
    """The cashier scans the customer's payment code; every step shows, then the sale completes."""
    scanner.send(code, aim="]C0")
    event = await pos.next_event("payment")
    while "outcome" not in event and "error" not in event:
        say(f"  payment: {event['step']} → {event['answer']}")
        event = await pos.next_event("payment")
    if event.get("outcome") != "paid":
        raise RuntimeError(f"the demo payment did not go through: {event}")
    say(f"  paid {format_cny(event['amount'])} with {event['wallet']} (intent and outcome journaled before the answer)")
    sale = (await pos.complete(basket_id, key=secrets.token_hex(8)))["record"]
    say(f"  sale seq {sale['seq']}: tenders {[(t['kind'], format_cny(t['amount'])) for t in sale['tenders']]}")
    paid = next(t for t in sale["tenders"] if t["kind"] != "cash")
    say(f"  the wallet's own transaction id on the tender, for the day's statement: {paid['provider_txn']}")


async def ledger_command(demo_dir: Path, env: dict[str, str], *args: str, stdin: str = "") -> str:
    """An operator's ``posgw-ledger`` command against the demo's books; its output (RuntimeError if it fails)."""
    argv = [sys.executable, "-m", "ledger.cli", *args, "--data", str(demo_dir / "ledger")]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"posgw-ledger {' '.join(args[:2])}: {done.stderr.strip()}")
    return done.stdout


async def _printer_until(ready: Callable[[], bool], failure: str) -> None:
    """Until ``ready()`` says the printer simulator has done it (10 s), else ``failure`` raised."""
    for _ in range(200):
        if ready():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(failure)


async def show_receipt(printer: PtyPrinter, count: int) -> None:
    """The receipt the printer simulator cut, as it came out."""
    await _printer_until(lambda: len(printer.printed) >= count, "the receipt printer printed nothing")
    page = printer.printed[count - 1]
    say("  receipt printed (decoded from the ESC/POS the printer was sent):")
    say("\n".join(f"    | {line}" for line in page.lines if line))
    say(f"    | [QR {page.qr[0]}]" if page.qr else "    | (no QR)")


async def drawer_kicked(printer: PtyPrinter, count: int) -> None:
    """Until the printer has had ``count`` drawer kicks: the gateway kicks after the receipt is cut, so a look
    at the drawer the moment the receipt is out can come before the kick does."""
    await _printer_until(lambda: printer.kicks >= count, "the cash drawer was never kicked")


def wallet_proc(name: str, creds: Credentials, env: dict[str, str], demo_dir: Path) -> Proc:
    """``posgw-sim wechatpay`` or ``alipay`` on a free port, over TLS with the demo's CA."""
    port = free_port()
    return Proc(
        name,
        [sys.executable, "-m", "simulators.cli", name, "--port", str(port), "--credentials", str(creds.folder)],
        env,
        demo_dir / f"{name}.log",
        f"https://127.0.0.1:{port}/books",
        health_ssl=ssl.create_default_context(cafile=str(creds.ca)),
    )


async def run_demo(repo: Path) -> int:
    demo_dir = repo / ".demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir()
    api_port, ledger_port = free_port(), stable_port()  # the ledger stops and starts again on its port
    tokens = [secrets.token_urlsafe(24) for _ in range(3)]
    env = demo_env(*tokens)
    ledger_url = f"http://127.0.0.1:{ledger_port}"
    ledger = ledger_proc(demo_dir / "ledger", ledger_port, env, demo_dir / "ledger.log")
    creds = make_credentials(demo_dir / "providers")
    wallets = [wallet_proc(name, creds, env, demo_dir) for name in ("wechatpay", "alipay")]
    wallet_urls = (wallets[0].health_url.removesuffix("/books"), wallets[1].health_url.replace("/books", "/gateway.do"))
    gateway: Proc = gateway_proc(
        render_config(repo, demo_dir, api_port, ledger_port, creds, wallet_urls),
        api_port,
        env,
        demo_dir / "gateway.log",
    )
    scanner = PtyScanner(demo_dir / "scanner")
    printer = PtyPrinter(demo_dir / "printer")
    pos = PosClient(f"http://127.0.0.1:{api_port}", tokens[0])
    try:
        say("== posgw demo: one checkout terminal, one mall ledger, all on this machine")
        ledger.start()
        await ledger.wait_healthy()
        say(f"ledger up on {ledger_url} (embedded SQLite in .demo/ledger)")
        for wallet in wallets:
            wallet.start()
        for wallet in wallets:
            await wallet.wait_healthy()
        say(
            f"WeChat Pay and Alipay simulators up on {wallet_urls[0]} and {wallet_urls[1]}: their published APIs"
            " (XML signed HMAC-SHA256, forms signed RSA2) over TLS, the merchant's keys in .demo/providers"
        )
        config = demo_dir / "gateway.toml"
        enrol_gateway(config, demo_dir / "ledger", "T-DEMO-01", "S-JOYCITY-B1", "M-BAKERY", env)
        enrolled = json.loads((demo_dir / "gateway" / "enrolment.json").read_text())
        say(
            f"till T-DEMO-01 enrolled: the operator's one-time code (posgw-ledger terminal add), then posgw enroll;"
            f" its own key signs every request (chain epoch {enrolled['epoch']}), the ledger's key is pinned"
        )
        for staff_id, name, role, pin in (
            ("C001", "Wang Fang", "cashier", "2468"),
            ("S001", "Li Qiang", "supervisor", "1357"),
        ):
            await ledger_command(
                demo_dir, env, "staff", "add", staff_id, "--name", name, "--role", role, stdin=pin + "\n"
            )
        say("staff registered at the ledger: cashier C001, supervisor S001 (PINs kept as salted scrypt hashes only)")
        scanner.plug()
        printer.plug()
        gateway.start()
        await gateway.wait_healthy()
        hello = await pos.connect_events()
        st = await pos.wait_status(
            lambda s: s["members_cached"] > 0 and s["devices"][0]["state"] == "idle" and s["ledger"]["online"]
        )
        say(
            f"gateway {hello['terminal_id']} up on 127.0.0.1:{api_port}: scanner {st['devices'][0]['state']},"
            f" rulebook v{st['rulebook_version']}, {st['members_cached']} members cached"
        )

        await pos.wait_status(lambda s: True)
        for _ in range(200):  # the staff list comes with the rules
            if (await pos.call("GET", "/v1/cashier"))["required"]:
                break
            await asyncio.sleep(0.05)
        me = await pos.call("POST", "/v1/cashier", {"staff_id": "C001", "pin": "2468"})
        shift = await pos.call("POST", "/v1/shifts", {"float": 500_00})
        say(f"cashier {me['staff_id']} ({me['role']}) signed in with her PIN; shift opened with a ¥500.00 float "
            f"(a signed shift_open record, seq {shift['record']['seq']})")  # fmt: skip

        say("\n-- sale 1: a member shows the app's QR code, three products, cash")
        basket = await pos.new_basket()
        qr = await member_qr(ledger_url, tokens[2], "M0001")
        scanner.send(qr, aim="]Q1")
        scan = await pos.next_event("scan")
        member = scan["member"]
        say(f"  scanned a {scan['kind']} ({scan['symbology']}) → member {member['member_id']}, tier {member['tier']}")
        await scan_products(pos, scanner, basket["basket_id"], ["6901234567892", "6909876543212", "6921168509256"])
        scanner.send(await member_coupon(ledger_url, tokens[2], "M0001", "C-20-OFF-200"), aim="]Q1")
        coupon = await pos.next_event("coupon")
        say(f"  scanned the member's coupon from the app → {coupon.get('name') or coupon['error']['message']}")
        first_sale = await sell(pos, basket["basket_id"])
        await show_receipt(printer, 1)
        await drawer_kicked(printer, 1)
        say(f"  the cash drawer opened (kicked through the printer): {printer.drawer_open}")
        printer.close_drawer()
        st = await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        say(f"  synced: queue pending {st['journal']['pending']}, ledger holds seq ≤ {st['journal']['last_seq']}")
        say(f"  ledger: M0001 now has {await member_points(ledger_url, tokens[2], 'M0001')} points")

        say("\n-- sale 2: a member taps their member card, pays by scanning their WeChat Pay code")
        basket = await pos.new_basket()
        bureau = issuer_key(demo_dir / "ledger", env)  # the key a card personalisation bureau is given
        card = VirtualCard(make_applet("member", bureau, "8600000002"))
        card.insert()
        tap = await pos.next_event("card", within=15)
        if "card_error" in tap:
            raise RuntimeError(f"card refused: {tap['card_error']}")
        member = tap["member"]
        say(
            f"  card read through pcscd in {tap['pcsc_ms']:.0f} ms of PC/SC calls, certificate and challenge verified"
            f" → member {member['member_id']}, tier {member['tier']}"
        )
        await scan_products(pos, scanner, basket["basket_id"], ["6954767430386"])
        await scan_to_pay(pos, scanner, basket["basket_id"], "134567890123456702")  # the customer types a password
        card.remove()
        fake = VirtualCard(make_applet("cloned", bureau, "8600000002"))
        fake.insert()
        tap = await pos.next_event("card", within=15)
        while tap["kind"] == "removed":
            tap = await pos.next_event("card", within=15)
        say(f"  a cloned copy of that card is tapped → refused: {tap['card_error']['message']}")
        fake.remove()
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)

        say("\n-- a member tops up their stored value (充值): ¥500 in cash, ¥50 more as a bonus (充500送50)")
        wallet_before = (await member_account(ledger_url, tokens[2], "M0001"))["wallet"]
        basket = await pos.new_basket()
        scanner.send(await member_qr(ledger_url, tokens[2], "M0001"), aim="]Q1")
        await pos.next_event("scan")
        topup = await pos.call("POST", f"/v1/baskets/{basket['basket_id']}/topup", {"amount": 50_000})
        say(f"  top-up {format_cny(topup['topup'])}, bonus {format_cny(topup['topup_bonus'])}; nothing earned on it")
        sold = (await pos.complete_cash(basket["basket_id"], 50_000))["record"]
        say(f"  journaled as a signed {sold['kind']} record, seq {sold['seq']}")
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        wallet_after = (await member_account(ledger_url, tokens[2], "M0001"))["wallet"]
        say(
            f"  ledger: M0001's stored value {format_cny(wallet_before)} → {format_cny(wallet_after)} "
            "(the bonus a separate grant, spent first, lapsing in a year)"
        )

        say("\n-- a walk-in customer scans the spring flyer's code: ¥20 off ¥150 for everyone, no member needed")
        basket = await pos.new_basket()
        await scan_products(pos, scanner, basket["basket_id"], ["6909876543212"])
        scanner.send("PR1.SPRING20", aim="]Q1")
        flyer = await pos.next_event("scan")
        say(f"  scanned a {flyer['kind']} → {flyer['data']} (the ledger prices it again before it believes it)")
        await sell(pos, basket["basket_id"])

        say("\n-- sale 3: the mall network drops (ledger stopped); the till keeps selling")
        qr = await member_qr(ledger_url, tokens[2], "M0001")  # the app fetched its code while online
        ledger.stop()
        st = await pos.wait_status(lambda s: not s["ledger"]["online"])
        say(f"  gateway noticed: online={st['ledger']['online']} ({st['ledger']['last_error']})")
        basket = await pos.new_basket()
        scanner.send(qr, aim="]Q1")
        await pos.next_event("scan")
        await scan_products(pos, scanner, basket["basket_id"], ["6954767430386", "6954767430386"])
        await sell(pos, basket["basket_id"])
        say("  a new customer joins at the till (开卡) by phone number, still offline, and buys a cake")
        basket = await pos.new_basket()
        joined = await pos.call("POST", f"/v1/baskets/{basket['basket_id']}/join", {"phone": "139 1234 5678"})
        newcomer = joined["member"]
        say(f"  enrolled as {newcomer['member_id']} (tier {newcomer['tier']}); only the number's salted hash is kept")
        await scan_products(pos, scanner, basket["basket_id"], ["6954767430386"])
        first = await sell(pos, basket["basket_id"])
        st = await pos.status()
        say(f"  queued on disk: pending {st['journal']['pending']}, oldest {st['journal']['oldest_pending']}")

        say("\n-- the ledger comes back; the queue drains by itself")
        ledger.start()
        await ledger.wait_healthy()
        st = await pos.wait_status(lambda s: s["journal"]["pending"] == 0 and s["ledger"]["online"], within=60)
        say(f"  drained: pending {st['journal']['pending']}, synced this run {st['ledger']['synced_total']}")
        say(f"  ledger: M0001 now has {await member_points(ledger_url, tokens[2], 'M0001')} points")
        joined_points = await member_points(ledger_url, tokens[2], newcomer["member_id"])
        say(f"  ledger: the new member {newcomer['member_id']} exists, with {joined_points} points "
            f"(their first sale earned {first['record']['points_earned']})")  # fmt: skip

        say("\n-- a customer brings back the birthday cake from sale 1")
        sale = first_sale["record"]
        refund = await pos.call(
            "POST",
            "/v1/refunds",
            {"txn_id": sale["txn_id"], "lines": [{"line": 2, "quantity": 1}]},
            {"Idempotency-Key": secrets.token_hex(8)},
        )
        rec = refund["record"]
        say(
            f"  refunded {format_cny(rec['total_due'])} in cash (what was paid for it, after its discounts);"
            f" {rec['points_clawback']} point(s) taken back; journaled as seq {rec['seq']}"
        )
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0)
        say(f"  ledger: M0001 now has {await member_points(ledger_url, tokens[2], 'M0001')} points")

        say("\n-- the day ends: X report, the drawer counted, Z report")
        x = await pos.call("GET", "/v1/shifts/current")
        say(f"  X report: cash expected in the drawer {format_cny(x['expected_cash'])}")
        z = await pos.call("POST", "/v1/shifts/current/close", {"counted": x["expected_cash"] - 50})
        say("\n".join(f"    | {line}" for line in z["lines"]))
        await pos.wait_status(lambda s: s["journal"]["pending"] == 0 and s["journal"]["quarantined"] == 0)
        say("  the ledger worked the Z report out again from the till's chain and believed it; by who did it:")
        staff_report = await ledger_command(demo_dir, env, "staff", "report")
        say("\n".join(f"  {line}" for line in staff_report.strip().splitlines()))

        await pos.close()
        code = gateway.stop()
        for wallet in wallets:
            wallet.stop()
        say(f"\ngateway stopped on SIGTERM with exit code {code}; logs in .demo/gateway.log, .demo/ledger.log")
        verify = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "journal",
            "verify",
            "-c",
            str(demo_dir / "gateway.toml"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await verify.communicate()
        say(f"posgw journal verify: {output.decode().strip()}")
        settled = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ledger.cli", "report", "settlement", "--data", str(demo_dir / "ledger"),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        report, _ = await settled.communicate()
        say("\n-- the day's tenant settlement (what the mall owes each shop, to the fen):")
        say("\n".join(f"  {line}" for line in report.decode().strip().splitlines()))
        code = code or (verify.returncode or 0) or (settled.returncode or 0)
        return 0 if code == 0 else 1
    finally:
        await pos.close()
        gateway.stop()
        ledger.stop()
        for wallet in wallets:
            wallet.stop()
        scanner.unplug()
        printer.unplug()


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    try:
        return asyncio.run(run_demo(repo))
    except (ApiProblemError, AssertionError, OSError, RuntimeError, TimeoutError, aiohttp.ClientError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
