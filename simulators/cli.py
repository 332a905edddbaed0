"""``posgw-sim``: hardware simulators for demos and manual testing.

``posgw-sim card --issuer-key DIR/issuer.key [--mode cloned]`` puts a virtual
member card into pcscd's vpcd reader (``insert`` / ``remove`` on standard
input with ``--stdin``).

``posgw-sim printer --link /tmp/posgw-printer`` is a receipt printer (ESC/POS) with a cash drawer on a real
pseudo-terminal: every receipt it is sent is decoded and shown as it would come out.

``posgw-sim scanner --link /tmp/posgw-scanner [CODE ...]`` opens a scanner on a
real pseudo-terminal, sends the given codes (or those of ``--file``, or one
per line from standard input) and keeps the port plugged in until stopped.
On standard input, ``!unplug`` and ``!plug`` pull and replug the cable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

from aiohttp import web

from simulators.acquirer import Acquirer
from simulators.acquirer import build_app as build_acquirer
from simulators.alipay import build_app as build_alipay
from simulators.demo import main as demo_main
from simulators.fleet import FleetError, run_fleet
from simulators.fleet_news import FleetBroker, quiet_links
from simulators.printer import serve as serve_printer
from simulators.provider_keys import make_credentials, server_tls
from simulators.scanner import PtyScanner
from simulators.terminal import MODES as TERMINAL_MODES
from simulators.terminal import serve as serve_terminal
from simulators.vcard import MODES, VPCD_PORT, VirtualCard, load_issuer_key, make_applet
from simulators.wallet_sims import alipay_sim, wechatpay_sim
from simulators.wechatpay import build_app as build_wechatpay


def _scanner(args: argparse.Namespace) -> int:
    suffix = args.suffix.encode("latin-1").decode("unicode_escape").encode("latin-1")
    scanner = PtyScanner(args.link, suffix=suffix)
    scanner.plug()
    print(f"scanner plugged in at {args.link}", file=sys.stderr)
    time.sleep(args.delay)
    codes = list(args.codes)
    if args.file:
        codes += [line.strip() for line in Path(args.file).read_text().splitlines() if line.strip()]
    try:
        for code in codes:
            scanner.send(code, aim=args.aim)
            print(f"sent {code[:24]}", file=sys.stderr)
            time.sleep(args.interval)
        if args.stdin:
            for line in sys.stdin:
                text = line.strip()
                if text == "!unplug":
                    scanner.unplug()
                elif text == "!plug":
                    scanner.plug()
                elif text:
                    scanner.send(text, aim=args.aim)
        elif args.hold:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        scanner.unplug()
    return 0


def _card(args: argparse.Namespace) -> int:
    try:
        issuer = load_issuer_key(args.issuer_key)
    except (OSError, ValueError) as err:
        print(
            f"posgw-sim: cannot use issuer key {args.issuer_key}: {err} (the ledger's --data dir holds issuer.key)",
            file=sys.stderr,
        )
        return 2
    uid = bytes.fromhex(args.uid) if args.uid else None
    card = VirtualCard(make_applet(args.mode, issuer, args.number, uid=uid), port=args.port)
    print(f"virtual {args.mode} card {args.number}; commands: insert, remove, quit", file=sys.stderr)
    try:
        if not args.stdin:
            card.insert()
            print("inserted; Ctrl-C removes it", file=sys.stderr)
            while True:
                time.sleep(3600)
        for line in sys.stdin:
            command = line.strip()
            if command == "insert":
                card.insert()
            elif command == "remove":
                card.remove()
            elif command == "quit":
                break
            elif command:
                print(f"unknown command {command!r}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(
            f"posgw-sim: cannot reach the vpcd reader on port {args.port}: {err} (is pcscd running?)", file=sys.stderr
        )
        return 1
    finally:
        card.remove()
    return 0


def _fleet(args: argparse.Namespace) -> int:
    try:
        codes = dict(line.split() for line in args.codes.read_text().splitlines() if line.strip())
    except (OSError, ValueError) as err:
        print(f"posgw-sim fleet: cannot read the codes in {args.codes}: {err}", file=sys.stderr)
        return 66  # EX_NOINPUT
    broker = None
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        broker = FleetBroker(host, int(port), args.mall)
        quiet_links()
    try:
        result, _ = asyncio.run(
            run_fleet(
                args.ledger or ["http://127.0.0.1:8780"],
                codes,
                args.records,
                offline_share=args.offline_share,
                broker=broker,
            )
        )
    except FleetError as err:
        print(f"posgw-sim fleet: {err}", file=sys.stderr)
        return 1
    lags = sorted(result.lags) or [0.0]
    print(
        f"{result.terminals} terminals, {result.records:,} records in {result.seconds:.1f} s "
        f"({result.records / max(result.seconds, 1e-9):,.0f}/s): accepted {result.accepted:,}, "
        f"duplicate {result.duplicates}, rejected {result.rejected}; "
        f"lag p50 {lags[len(lags) // 2] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )
    if result.news is not None:
        print(
            f"MQTT: {result.news.refreshes:,} refreshes on news ({result.news.refresh_failures} failed), "
            f"{result.news.members_fetched:,} member entries fetched; every terminal held the last member "
            f"revision {result.news_settled:.1f} s after the last answer"
        )
    return 0 if result.rejected == 0 and result.accepted == result.records else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posgw-sim", description="posgw hardware simulators")
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("scanner", help="a barcode scanner on a pseudo-terminal")
    sc.add_argument("--link", type=Path, required=True, help="stable path to create for the serial port")
    sc.add_argument("--suffix", default="\\r\\n", help="frame suffix, with escapes (default \\r\\n)")
    sc.add_argument("--aim", default=None, help="AIM symbology identifier to prefix, such as ]E0")
    sc.add_argument("--file", help="send one code per line of this file")
    sc.add_argument("--stdin", action="store_true", help="read codes (and !unplug / !plug) from standard input")
    sc.add_argument("--delay", type=float, default=1.0, help="seconds to wait before sending (let the reader open)")
    sc.add_argument("--interval", type=float, default=0.2, help="seconds between codes")
    sc.add_argument("--hold", action="store_true", help="stay plugged in after sending, until Ctrl-C")
    sc.add_argument("codes", nargs="*")
    cd = sub.add_parser("card", help="a virtual member card in pcscd's vpcd reader")
    cd.add_argument("--issuer-key", type=Path, required=True, help="the ledger's issuer.key (PEM) that certifies cards")
    cd.add_argument("--number", default="8600000002", help="card number (default: the demo's card of M0002)")
    cd.add_argument("--mode", choices=MODES, default="member")
    cd.add_argument("--uid", help="contactless UID in hex (default: random, 7 bytes)")
    cd.add_argument("--port", type=int, default=VPCD_PORT, help="vpcd reader port (35963 first reader, 35964 second)")
    cd.add_argument("--stdin", action="store_true", help="read insert / remove / quit from standard input")
    aq = sub.add_parser("acquirer", help="a scan-to-pay provider over HTTP with scripted outcomes")
    aq.add_argument("--port", type=int, default=8790)
    aq.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer (a provider far away)")
    for wallet, what in (("wechatpay", "WeChat Pay's payment-code API (v2 XML)"), ("alipay", "Alipay's open API")):
        sim = sub.add_parser(wallet, help=f"{what} over HTTPS, scripted by the code's last two digits")
        sim.add_argument("--port", type=int, default=8791 if wallet == "wechatpay" else 8792)
        sim.add_argument(
            "--credentials", type=Path, default=Path(".posgw-sim"), help="folder of the simulated keys (made if empty)"
        )
        sim.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer (a provider far away)")
    tm = sub.add_parser("terminal", help="a bank-card payment terminal (ECR link) on a pseudo-terminal")
    tm.add_argument("--link", type=Path, required=True, help="stable path to create for the serial port")
    tm.add_argument("--mode", choices=TERMINAL_MODES, default="approve")
    pr = sub.add_parser("printer", help="an ESC/POS receipt printer with its cash drawer on a pseudo-terminal")
    pr.add_argument("--link", type=Path, required=True, help="stable path to create for the serial port")
    fl = sub.add_parser("fleet", help="many terminals' sync clients (own keys, seqs, offline spells) against a ledger")
    fl.add_argument(
        "--codes",
        type=Path,
        required=True,
        help="the terminals and their enrolment codes, a line each (`posgw-ledger terminal add PREFIX --count N`)",
    )
    fl.add_argument("--records", type=int, default=20, help="sales per terminal")
    fl.add_argument(
        "--ledger",
        action="append",
        metavar="URL",
        help="a ledger node (default http://127.0.0.1:8780); again for more nodes: the terminals are shared out",
    )
    fl.add_argument("--offline-share", type=float, default=0.2, help="share of terminals that go offline a while")
    fl.add_argument("--mqtt", metavar="HOST:PORT", help="the terminals on this broker too: status out, news in")
    fl.add_argument("--mall", default="demo", help="the mall's id in MQTT topics (default: demo)")
    sub.add_parser("demo", help="run the end-to-end demo (ledger, gateway, scanner, card) on this machine")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo_main()
    if args.command == "card":
        return _card(args)
    if args.command == "fleet":
        return _fleet(args)
    if args.command == "terminal":
        print(f"payment terminal at {args.link}, mode {args.mode}; Ctrl-C to stop", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_terminal(args.link, args.mode))
        return 0
    if args.command == "printer":
        print(f"receipt printer at {args.link}: each receipt is shown as it is cut; Ctrl-C to stop", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_printer(args.link))
        return 0
    if args.command in ("wechatpay", "alipay"):
        return _wallet(args)
    if args.command == "acquirer":
        print(
            f"acquirer on 127.0.0.1:{args.port}; outcomes by the code's last two digits (see --help)", file=sys.stderr
        )
        acquirer = Acquirer(latency=args.latency_ms / 1000)
        web.run_app(build_acquirer(acquirer), host="127.0.0.1", port=args.port, print=None)
        return 0
    return _scanner(args)


def _wallet(args: argparse.Namespace) -> int:
    creds = make_credentials(args.credentials)
    if args.command == "wechatpay":
        wechat = wechatpay_sim(creds)
        wechat.books.latency = args.latency_ms / 1000
        app, path = build_wechatpay(wechat), ""
    else:
        alipay = alipay_sim(creds)
        alipay.books.latency = args.latency_ms / 1000
        app, path = build_alipay(alipay), "/gateway.do"
    print(
        f"{args.command} on https://127.0.0.1:{args.port}{path}; credentials and CA in {creds.folder}; "
        "outcomes by the code's last two digits (simulators/wallet_books.py)",
        file=sys.stderr,
    )
    web.run_app(app, host="127.0.0.1", port=args.port, ssl_context=server_tls(creds), print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
