"""Scan-to-paid latency over the local API against the WeChat Pay and Alipay simulators, beside each
provider's own round trip, and what signing and verifying cost.

Both simulators run as processes over TLS, speaking their published formats.
Each gateway sample is one ``POST /v1/baskets/{id}/payments`` answered ``paid``
(intent fsync'd, the request signed, the provider called, its answer's
signature verified, the outcome fsync'd). The peer is the same pay call made
straight to the same simulator over the same kind of connection, with its
request signed before the clock starts and its answer not verified: the
provider's raw round trip. Their difference is the gateway's own overhead,
signing and verification included; those two are also timed alone. The same
till with its wallets on the made-up ``micropay-http`` JSON protocol (plain
HTTP) is the baseline measured in the same run: the journal's two fsync'd
commits, pricing and the local API hop, without any wallet's format.
"""

from __future__ import annotations

import shutil
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.stats import line, summary
from protocols import alipay as ali
from protocols import wechatpay as wx
from simulators.processes import Proc, Stack, demo_env, free_port, payments_table, wallets_table
from simulators.provider_keys import ALIPAY_APP_ID, APPID, MCH_ID, Credentials, make_credentials

CODES = {"wechat": "1345678901234567", "alipay": "2845678901234567"}
TART = {"sku": "6901234567892", "name": "Egg tart", "category": "bakery", "unit_price": 3800}
SIMULATORS = {"wechat": "wechatpay", "alipay": "alipay"}


def acquirer(workdir: Path) -> tuple[Proc, str]:
    """The made-up JSON protocol (``micropay-http``, plain HTTP): the same run's baseline for the real formats."""
    port = free_port()
    argv = [sys.executable, "-m", "simulators.cli", "acquirer", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    return Proc("acquirer", argv, demo_env("x", "y", "z"), workdir / "acquirer.log", url + "/books"), url


def simulator(workdir: Path, creds: Credentials, wallet: str) -> tuple[Proc, str]:
    port, name = free_port(), SIMULATORS[wallet]
    argv = [sys.executable, "-m", "simulators.cli", name, "--port", str(port), "--credentials", str(creds.folder)]
    base = f"https://127.0.0.1:{port}"
    tls = ssl.create_default_context(cafile=str(creds.ca))
    proc = Proc(name, argv, demo_env("x", "y", "z"), workdir / f"{name}.log", base + "/books", health_ssl=tls)
    return proc, base + ("/gateway.do" if wallet == "alipay" else "")


async def through_gateway(stack: Stack, wallet: str, n: int) -> list[float]:
    samples = []
    async with stack.pos() as pos:
        for _ in range(n):
            basket = (await pos.new_basket())["basket_id"]
            await pos.add_line(basket, **TART)
            t0 = time.perf_counter()
            paid = await pos.pay(basket, CODES[wallet] + "00")
            samples.append(time.perf_counter() - t0)
            assert paid["payment"]["state"] == "paid", paid
            await pos.complete(basket)
    return samples


def raw_requests(creds: Credentials, wallet: str, n: int) -> list[tuple[bytes, str]]:
    """``n`` pay requests, signed now, before any clock starts: (body, content type)."""
    code = CODES[wallet] + "00"
    if wallet == "wechat":
        key = creds.wechat_key.read_text().strip()
        fields = {"appid": APPID, "mch_id": MCH_ID, "body": "x", "total_fee": "3800",
                  "spbill_create_ip": "127.0.0.1", "auth_code": code}  # fmt: skip
        signed = [wx.signed({**fields, "nonce_str": wx.nonce(), "out_trade_no": uuid.uuid4().hex}, key)
                  for _ in range(n)]  # fmt: skip
        return [(wx.to_xml(request), "text/xml") for request in signed]
    private = _private(creds)
    biz = {"scene": "bar_code", "auth_code": code, "subject": "x", "total_amount": "38.00"}
    forms = [ali.request(ALIPAY_APP_ID, "alipay.trade.pay", {**biz, "out_trade_no": uuid.uuid4().hex},
                         datetime.now(UTC)) for _ in range(n)]  # fmt: skip
    return [(urlencode(ali.signed(form, private)).encode(), "application/x-www-form-urlencoded") for form in forms]


def _private(creds: Credentials) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(creds.app_private.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the simulated merchant key is not RSA")
    return key


async def straight_to_acquirer(url: str, n: int) -> list[float]:
    samples = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            body = {"ref": uuid.uuid4().hex, "code": CODES["wechat"] + "00", "amount": 3800}
            t0 = time.perf_counter()
            async with http.post(f"{url}/pay", json=body) as resp:
                assert (await resp.json())["result"] == "success"
            samples.append(time.perf_counter() - t0)
    return samples


async def straight_to_provider(creds: Credentials, wallet: str, url: str, n: int) -> list[float]:
    samples = []
    tls = ssl.create_default_context(cafile=str(creds.ca))
    pay_url = url + ("/pay/micropay" if wallet == "wechat" else "")
    async with aiohttp.ClientSession() as http:
        for body, content_type in raw_requests(creds, wallet, n):
            t0 = time.perf_counter()
            async with http.post(pay_url, data=body, headers={"Content-Type": content_type}, ssl=tls) as resp:
                answer = await resp.read()
            samples.append(time.perf_counter() - t0)
            assert b"SUCCESS" in answer or b'"10000"' in answer, answer[:200]
    return samples


def timed(n: int, work: Callable[[], object]) -> dict[str, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        work()
        samples.append(time.perf_counter() - t0)
    return summary(samples)


def signing_costs(creds: Credentials, n: int = 300) -> dict[str, dict[str, float]]:
    """Each provider's signing and verification alone, on this machine, in this run."""
    key = creds.wechat_key.read_text().strip()
    fields = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": wx.nonce(), "out_trade_no": uuid.uuid4().hex,
              "total_fee": "3800", "auth_code": CODES["wechat"] + "00", "body": "x"}  # fmt: skip
    signed = wx.signed(fields, key)
    private = _private(creds)
    content = ali.sign_content(ali.request(ALIPAY_APP_ID, "alipay.trade.pay", fields, datetime.now(UTC)))
    signature = ali.sign_rsa2(content, private)
    public = private.public_key()
    return {
        "wechat_sign_hmac_sha256": timed(n, lambda: wx.signed(fields, key)),
        "wechat_verify_hmac_sha256": timed(n, lambda: wx.verify(signed, key)),
        "alipay_sign_rsa2": timed(n, lambda: ali.sign_rsa2(content, private)),
        "alipay_verify_rsa2": timed(n, lambda: ali.verify_rsa2(content, signature, public)),
    }


async def run(n: int = 300) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="posgw-pay-bench-"))
    creds = make_credentials(workdir / "providers")
    (wechat, wechat_url), (alipay, alipay_url) = (
        simulator(workdir, creds, "wechat"),
        simulator(workdir, creds, "alipay"),
    )
    json_acquirer, json_url = acquirer(workdir)
    stack = Stack.create(workdir, extra_config=wallets_table(creds, wechat_url, alipay_url))
    try:
        for proc in (wechat, alipay, json_acquirer, stack.ledger, stack.gateway):
            proc.start()
            await proc.wait_healthy()
        results: dict[str, Any] = {"signing": signing_costs(creds)}
        for wallet, url in (("wechat", wechat_url), ("alipay", alipay_url), ("json", json_url)):
            if wallet == "json":  # the same till, its wallets on the made-up protocol instead
                stack.shutdown()
                (workdir / "baseline").mkdir()
                stack = Stack.create(workdir / "baseline", extra_config=payments_table(json_url))
                for proc in (stack.ledger, stack.gateway):
                    proc.start()
                    await proc.wait_healthy()
            sells = "wechat" if wallet == "json" else wallet
            await through_gateway(stack, sells, 10)  # warm up
            gateway = summary(await through_gateway(stack, sells, n))
            if wallet == "json":
                direct = summary(await straight_to_acquirer(url, n))
            else:
                direct = summary(await straight_to_provider(creds, wallet, url, n))
            results[wallet] = {
                "gateway_scan_to_paid": gateway,
                "provider_pay_round_trip": direct,
                "overhead_p50_ms": gateway["p50_ms"] - direct["p50_ms"],
                "overhead_p99_ms": gateway["p99_ms"] - direct["p99_ms"],
            }
        return results
    finally:
        stack.shutdown()
        for proc in (wechat, alipay, json_acquirer):
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(r: dict[str, Any]) -> None:
    cases = (
        ("wechat", "WeChat Pay (XML, HMAC-SHA256, TLS)"),
        ("alipay", "Alipay (form + JSON, RSA2, TLS)"),
        ("json", "baseline, the same run: micropay-http (made-up JSON, plain HTTP)"),
    )
    for wallet, label in cases:
        x = r[wallet]
        print(f"  {label}:")
        print(line("  gateway: POST …/payments → paid", x["gateway_scan_to_paid"]))
        print(line("  peer: the same pay call, straight, raw", x["provider_pay_round_trip"]))
        print(f"    gateway's own overhead: p50 {x['overhead_p50_ms']:.2f} ms, p99 {x['overhead_p99_ms']:.2f} ms")
    for wallet in ("wechat", "alipay"):
        extra = r[wallet]["overhead_p50_ms"] - r["json"]["overhead_p50_ms"]
        print(f"  {wallet}: the published format's own cost over the baseline's overhead, p50 {extra:+.2f} ms")
    print("  signing and verification alone (one core):")
    for name, s in r["signing"].items():
        print(line(f"  {name}", s))


if __name__ == "__main__":
    import asyncio

    report(asyncio.run(run()))
